-- Not Lua.
local x = = 1
print("unreachable")
