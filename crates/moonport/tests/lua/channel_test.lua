-- Lua-side tests of moonport.channel, moonport.select and moonport.timeout.
local T = require("harness")

T.test("a channel carries values in order and waits while full", function()
  local ch = moonport.channel(2)
  local got = {}
  moonport.spawn(function()
    for i = 1, 10 do assert(ch:send({ n = i })) end
    ch:close()
  end)
  while true do
    local v, err = ch:recv()
    if not v then T.eq(err, "closed"); break end
    got[#got + 1] = v.n
    T.truthy(#ch <= 2, "never more than the capacity queued")
  end
  T.eq(table.concat(got, ","), "1,2,3,4,5,6,7,8,9,10")
end)

T.test("try_send, try_recv, recv timeout, closed channels", function()
  local ch = moonport.channel(1)
  T.eq(ch:try_send("a"), true)
  local ok, err = ch:try_send("b")
  T.eq(ok, nil); T.eq(err, "full")
  T.eq(ch:try_recv(), "a")
  T.eq(select(2, ch:try_recv()), "empty")
  T.eq(select(2, ch:recv(0.02)), "timeout")
  ch:close()
  T.truthy(ch:is_closed(), "closed")
  T.eq(select(2, ch:send("x")), "closed")
  T.eq(select(2, ch:recv()), "closed")
  T.raises("nil cannot be sent", function() ch:try_send(nil) end)
end)

T.test("select returns the first ready case, or times out", function()
  local a, b = moonport.channel(), moonport.channel()
  local sub = moonport.room("select-test"):subscribe()
  moonport.spawn(function() moonport.sleep(0.02); b:send("from b") end)
  local case, v = moonport.select({ a, b, sub })
  T.truthy(case == b, "b was ready first"); T.eq(v, "from b")
  moonport.room("select-test"):publish("news")
  case, v = moonport.select({ a, b, sub })
  T.truthy(case == sub, "the subscription"); T.eq(v, "news")
  local none, err = moonport.select({ a, b }, 0.02)
  T.eq(none, nil); T.eq(err, "timeout")
  a:close()
  local closed_case, value, why = moonport.select({ a, b })
  T.truthy(closed_case == a, "a closed channel is ready"); T.eq(value, nil); T.eq(why, "closed")
  sub:close()
end)

T.test("timeout returns results in time, or nil, 'timeout' and cancels the wait", function()
  local x, y = moonport.timeout(1, function(p, q) moonport.sleep(0.01); return p + q, "ok" end, 2, 3)
  T.eq(x, 5); T.eq(y, "ok")
  local ch = moonport.channel()
  local t0 = moonport.now()
  local v, err = moonport.timeout(0.05, function() return ch:recv() end)
  T.eq(v, nil); T.eq(err, "timeout")
  T.truthy(moonport.now() - t0 < 1, "did not wait for the channel")
  -- The cancelled recv took nothing: a later value goes to a later receiver.
  ch:try_send("kept")
  T.eq(ch:recv(), "kept")
  T.raises("inner failure", moonport.timeout, 1, function() error("inner failure") end)
end)

-- A connected pair: the client conn, the server's side of it, and `done()`,
-- which ends the server's handler and closes both ends and the listener.
local function conn_pair()
  local server_side, finished
  local l = assert(moonport.tcp.listen({ host = "127.0.0.1", port = 0 }, function(conn)
    server_side = conn
    while not finished do moonport.sleep(0.01) end
  end))
  local c = assert(moonport.tcp.connect("127.0.0.1", l:port()))
  while not server_side do moonport.sleep(0.001) end
  return c, server_side, function()
    finished = true
    c:close()
    l:close()
  end
end

T.test("a socket read abandoned by timeout loses no bytes", function()
  local c, server_side, done = conn_pair()
  local v, err = moonport.timeout(0.05, function() return c:read() end)
  T.eq(v, nil); T.eq(err, "timeout")
  server_side:write("arrived later")
  T.eq(c:read_exact(13), "arrived later")
  done()
end)

T.test("a second reader gets busy while a read waits, and a cancelled read frees the connection", function()
  local c, server_side, done = conn_pair()
  local first = {}
  moonport.spawn(function() first.line, first.err = c:read_line() end)
  moonport.sleep(0.01)
  T.eq(select(2, c:read()), "busy")
  T.eq(select(2, c:read_exact(1)), "busy")
  server_side:write("one\n")
  while not first.line do moonport.sleep(0.001) end
  T.eq(first.line, "one")
  -- Cancelled while it waits: the next reader, in another coroutine, is not busy.
  T.eq(select(2, moonport.timeout(0.05, function() return c:read_line() end)), "timeout")
  local second = {}
  moonport.spawn(function() second.data, second.err = c:read_exact(3) end)
  moonport.sleep(0.01)
  server_side:write("two")
  while not (second.data or second.err) do moonport.sleep(0.001) end
  T.eq(second.data, "two")
  done()
end)

T.test("reads and writes return as many values as the docs say", function()
  local c, server_side, done = conn_pair()
  local n = function(...) return select("#", ...) end
  -- Buffered, and waited for: the wrappers pass results on unpadded.
  T.eq(n(server_side:write("one\ntwo\n")), 1)
  T.eq(n(c:read_line()), 1)
  T.eq(n(c:read_line()), 1)
  moonport.spawn(function() moonport.sleep(0.01); server_side:write("xyz") end)
  T.eq(n(c:read_exact(3)), 1)
  T.eq(n(c:write("x")), 1)
  c:set_timeouts(nil, nil, 0.01)
  T.eq(select(2, c:read_line()), "timeout")
  done()
end)

T.done()
