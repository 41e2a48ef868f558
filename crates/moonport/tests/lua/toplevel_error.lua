-- Client mode: an uncaught error at top level.
local moonport = require("moonport")
print("before")
error("bad")
print("after")
