-- Connections that wait for the client forever.
local moonport = require("moonport")

moonport.tcp.listen({ host = "127.0.0.1", port = 0 }, function(conn)
  moonport.log.info("idle connection accepted")
  local data, err = conn:read()
  moonport.log.info("idle connection read:", tostring(data), tostring(err))
end)
