-- examples/udp_echo.lua: a UDP echo server; every datagram goes back to its sender.
--   moonport run examples/udp_echo.lua [port]        (default 7001)
-- Try it: echo hello | nc -u -w1 127.0.0.1 7001
--
-- One socket on worker 1 serves everyone: UDP needs no connection per
-- client, so there is nothing to spread over workers here.
local port = tonumber(arg[1]) or 7001

local sock = assert(moonport.udp.bind("127.0.0.1", port))
local ip, bound = sock:local_addr()
moonport.log.info(string.format("udp echo listening on %s:%d", ip, bound))

while not moonport.exiting() do
  local data, from = sock:recvfrom(65535)
  if data then
    sock:sendto(data, from)
  elseif from == "closed" then
    break -- a reload has handed the socket to the script's new version
  elseif from ~= "truncated" then
    moonport.log.warn("recvfrom: " .. tostring(from))
  end
end
