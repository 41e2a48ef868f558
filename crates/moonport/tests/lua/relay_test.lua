-- Lua-side tests of moonport.relay and conn:pipe_to.
local T = require("harness")

-- Connected pairs: the client end, and the server end the listener accepted.
local accepted = {}
local finished = false
local listener = assert(moonport.tcp.listen({ host = "127.0.0.1", port = 0 }, function(conn)
  accepted[#accepted + 1] = conn
  -- Keep the connection open until the tests are over.
  while not finished do moonport.sleep(0.01) end
end))

local function pair()
  local n = #accepted
  local c = assert(moonport.tcp.connect("127.0.0.1", listener:port()))
  while #accepted == n do moonport.sleep(0.001) end
  return c, accepted[#accepted]
end

T.test("pipe_to moves one way and passes end of stream on", function()
  local a_client, a_server = pair()
  local b_client, b_server = pair()
  a_client:write("hello ")
  a_client:write("world")
  a_client:shutdown("write")
  local moved, reason = a_server:pipe_to(b_server)
  T.eq(moved, 11); T.eq(reason, "eof")
  T.eq(b_client:read_exact(11), "hello world")
  T.eq(select(2, b_client:read()), "closed", "end of stream reached the other side")
  a_client:close(); b_client:close()
end)

T.test("relay ends with idle when nothing moves", function()
  local _, a = pair()
  local _, b = pair()
  local t0 = moonport.now()
  local up, down, reason = moonport.relay(a, b, { idle_timeout = 0.2 })
  T.eq(up, 0); T.eq(down, 0); T.eq(reason, "idle")
  T.truthy(moonport.now() - t0 >= 0.19, "waited for the idle timeout")
end)

T.test("relay stops at max_bytes", function()
  local a_client, a = pair()
  local _, b = pair()
  a_client:write(string.rep("x", 100))
  local up, _, reason = moonport.relay(a, b, { max_bytes = 10 })
  T.eq(reason, "limit")
  T.truthy(up >= 10, "moved at least the limit")
end)

T.test("relay ends with eof once both peers have closed, after moving everything", function()
  local a_client, a = pair()
  local b_client, b = pair()
  moonport.spawn(function()
    a_client:write("ping")
    T.eq(b_client:read_exact(4), "ping")
    b_client:write("pong!")
    b_client:close()
    T.eq(a_client:read_exact(5), "pong!")
    a_client:close()
  end)
  local up, down, reason = moonport.relay(a, b, { idle_timeout = 5 })
  T.eq(reason, "eof"); T.eq(up, 4); T.eq(down, 5)
end)

-- conn:write sends what the socket takes at once and waits only for the
-- rest: writes larger than the socket buffers, from several coroutines, must
-- still land whole and in call order.
T.test("big writes from three coroutines land whole, in call order", function()
  local c, s = pair()
  local a, b = string.rep("a", 4 * 1024 * 1024), string.rep("b", 4 * 1024 * 1024)
  local done = 0
  -- Each writer starts (and waits) before the next one calls write.
  for _, data in ipairs({ a, b, "c" }) do
    moonport.spawn(function() T.eq(s:write(data), #data); done = done + 1 end)
    moonport.sleep(0)
  end
  T.truthy(c:read_exact(#a + #b + 1) == a .. b .. "c", "a, then b, then c, each whole")
  moonport.sleep(0.05)
  T.eq(done, 3)
end)

T.test("a bad write argument names the script's line", function()
  local _, s = pair()
  T.raises("relay_test.lua:", function() s:write({}) end)
  T.raises("bad argument #1 to 'write'", function() s:write({}) end)
end)

T.test("wrong arguments", function()
  local _, a = pair()
  T.raises("cannot be relayed to itself", moonport.relay, a, a)
  T.raises("bad argument #2 to 'relay'", moonport.relay, a, "x")
  T.raises("bad argument #1 to 'pipe_to'", function() a:pipe_to(42) end)
end)

finished = true
listener:close()
T.done()
