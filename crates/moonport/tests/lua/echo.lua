-- Byte echo server. arg[1]: host to listen on (default 127.0.0.1).
-- Greets each connection with what it knows about the two ends:
--   HELLO <peer ip> <peer port> <local ip> <local port>\n
-- then echoes every byte until the client closes.
local moonport = require("moonport")
local host = arg[1] or "127.0.0.1"

moonport.tcp.listen({ host = host, port = 0 }, function(conn)
  assert(conn:set_nodelay(true))
  local pip, pport = conn:peer()
  local lip, lport = conn:local_addr()
  assert(conn:write(("HELLO %s %d %s %d\n"):format(pip, pport, lip, lport)))
  while true do
    local data, err = conn:read()
    if not data then
      assert(err == "closed" or err == "reset", "unexpected read error: " .. tostring(err))
      return
    end
    local n, werr = conn:write(data)
    if not n then return end
    assert(n == #data)
  end
end)
