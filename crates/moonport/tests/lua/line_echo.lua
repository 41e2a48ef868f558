-- Line echo server.
local moonport = require("moonport")

moonport.tcp.listen({ host = "127.0.0.1", port = 0 }, function(conn)
  while true do
    local line = conn:read_line()
    if not line then return end
    if not conn:write(line .. "\n") then return end
  end
end)
