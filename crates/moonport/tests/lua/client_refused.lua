-- Client mode: connecting to a closed port gives nil, "refused".
local moonport = require("moonport")
local conn, err = moonport.tcp.connect("127.0.0.1", tonumber(arg[1]), { timeout = 5 })
print(tostring(conn), tostring(err))
