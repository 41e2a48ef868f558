-- bench/ws_bridge.lua: the WebSocket-to-TCP bridge that bench/run sets
-- beside websockify: every WebSocket connection on LISTEN_PORT is bridged
-- to a new TCP connection to HOST:PORT by moonport.ws.bridge (no Lua per
-- message), as `websockify LISTEN_PORT HOST:PORT` does.
--
--   moonport run bench/ws_bridge.lua LISTEN_PORT HOST:PORT
local moonport = require("moonport")

local listen_port = tonumber(arg[1] or "")
local host, port = (arg[2] or ""):match("^(.+):(%d+)$")
assert(listen_port and host, "usage: ws_bridge.lua LISTEN_PORT HOST:PORT")

moonport.ws.listen({ host = "127.0.0.1", port = listen_port }, function(ws)
  local conn, err = moonport.tcp.connect(host, tonumber(port), { timeout = 5 })
  if not conn then
    moonport.log.warn("target ", host, ":", port, ": ", err)
    ws:close(1011, "target unreachable")
    return
  end
  moonport.ws.bridge(ws, conn)
end)
