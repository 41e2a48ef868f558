-- examples/ws_echo.lua: a WebSocket echo server, the one scripts/autobahn
-- runs the Autobahn|Testsuite against.
--
--   moonport run examples/ws_echo.lua          (listens on 127.0.0.1:9001)
--   moonport run examples/ws_echo.lua 9002
--
-- Every text or binary message comes back as it was received. Pings are
-- answered inside ws:recv(); a close from the client is answered there too
-- and ends the loop.
local moonport = require("moonport")

local port = tonumber(arg[1] or "9001")

moonport.ws.listen({
  host = "127.0.0.1",
  port = port,
  -- Autobahn sends messages of up to 16 MiB (case 9.1.6 and friends).
  max_message = 64 * 1024 * 1024,
  -- permessage-deflate when the client offers it (Autobahn groups 12 and 13).
  deflate = true,
}, function(ws)
  while true do
    local data, kind = ws:recv() -- whole message, or reason, "close", code; or nil, err
    if not data or kind == "close" then break end
    if kind == "text" then ws:send_text(data) else ws:send_binary(data) end
  end
end)
