-- Client mode: connects to arg[1]:arg[2], sends a line, prints the answer.
local moonport = require("moonport")
local host, port = ...
assert(host == arg[1] and port == arg[2], "... and arg disagree")
local conn, err = moonport.tcp.connect(host, tonumber(port), { timeout = 5 })
if not conn then error("connect failed: " .. tostring(err)) end
conn:set_timeouts(nil, 5, 5)
assert(conn:write("hello from lua\n"))
local line = assert(conn:read_line())
print("got: " .. line)
local ip, p = conn:peer()
print("peer: " .. ip .. " " .. p)
conn:close()
print("done")
