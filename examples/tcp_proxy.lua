-- examples/tcp_proxy.lua: a TCP proxy that picks an upstream per connection
-- and relays bytes both ways natively (no Lua per chunk).
--
--   moonport run examples/tcp_proxy.lua 8000 127.0.0.1:7000 127.0.0.1:7001
--
-- listens on 127.0.0.1:8000 (0 = any free port) and sends each new connection
-- to the next upstream in turn. Half-closes pass through: when the client
-- finishes sending, the upstream sees end of stream and can still answer.
local moonport = require("moonport")

local listen_port = tonumber(arg[1] or "8000")
local upstreams = {}
for i = 2, #arg do
  local host, port = arg[i]:match("^%[?([^%]]+)%]?:(%d+)$")
  assert(host, "upstream must be host:port, got " .. arg[i])
  upstreams[#upstreams + 1] = { host = host, port = tonumber(port) }
end
assert(#upstreams > 0, "usage: tcp_proxy.lua LISTEN_PORT HOST:PORT [HOST:PORT...]")

local next_upstream = moonport.worker_id() -- spread workers over upstreams

-- The Lua part: choose where a connection goes.
local function choose(client)
  local up = upstreams[(next_upstream - 1) % #upstreams + 1]
  next_upstream = next_upstream + 1
  return up
end

moonport.tcp.listen({ host = "127.0.0.1", port = listen_port }, function(client)
  local up = choose(client)
  local server, err = moonport.tcp.connect(up.host, up.port, { timeout = 5 })
  if not server then
    moonport.log.warn(string.format("upstream %s:%d: %s", up.host, up.port, err))
    return
  end
  local sent, received, reason = moonport.relay(client, server, { idle_timeout = 300 })
  moonport.log.info(string.format("relay done: %d bytes up, %d bytes down, %s", sent, received, reason))
  server:close()
end)
