-- examples/echo.lua: a TCP echo server.
--
--   moonport run examples/echo.lua            (listens on 127.0.0.1:7000)
--   PORT=7001 moonport run examples/echo.lua
--
-- Try it with `nc 127.0.0.1 7000`: every line you type comes back.
-- Each worker thread runs this script; the kernel spreads connections over them.
local moonport = require("moonport")

local port = tonumber(os.getenv("PORT") or "7000")

moonport.tcp.listen({ host = "127.0.0.1", port = port }, function(conn)
  while true do
    local data, err = conn:read(65536) -- what arrived (1..n bytes), or nil, "closed"/"timeout"
    if not data then break end
    conn:write(data)
  end
end)
