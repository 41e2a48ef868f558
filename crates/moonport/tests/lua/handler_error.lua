-- Line echo; the line "boom" makes the handler fail.
local moonport = require("moonport")

moonport.tcp.listen({ host = "127.0.0.1", port = 0 }, function(conn)
  while true do
    local line = conn:read_line()
    if not line then return end
    if line == "boom" then
      error("boom")
    end
    conn:write(line .. "\n")
  end
end)
