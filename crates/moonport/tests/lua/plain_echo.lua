-- Plain byte echo on 127.0.0.1 and a free port: what examples/echo.lua does,
-- without the fixed port.
local moonport = require("moonport")
moonport.tcp.listen({ host = "127.0.0.1", port = 0 }, function(conn)
  while true do
    local data = conn:read()
    if not data or not conn:write(data) then return end
  end
end)
