-- A handler passing a table where read expects a size.
local moonport = require("moonport")

moonport.tcp.listen({ host = "127.0.0.1", port = 0 }, function(conn)
  local line = conn:read_line()
  if line == "bad" then
    conn:read({})
  end
  conn:write("ok " .. tostring(line) .. "\n")
end)
