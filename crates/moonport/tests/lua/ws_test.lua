-- Lua-side tests of moonport.ws and moonport.http: the client and the server
-- of each in one script, and argument checks.
local T = require("harness")

local got_close
local wsl = moonport.ws.listen({ host = "127.0.0.1", port = 0, protocols = { "v2", "v1" }, max_message = 100 },
  function(ws, req)
    while true do
      local data, kind, code = ws:recv()
      if not data then return end
      if kind == "close" then got_close = code .. " " .. data return end
      if data == "close me" then return ws:close(4001, "as asked") end
      if kind == "text" then ws:send_text(req.path .. ":" .. data) else ws:send_binary(data) end
    end
  end)
local ws_url = "ws://127.0.0.1:" .. wsl:port() .. "/chat?x=1"

local httpl = moonport.http.listen({ host = "127.0.0.1", port = 0 }, function(req, res)
  res:header("X-Method", req.method)
  res:send(req.body == "" and req.target or req.body)
end)
local http_url = "http://127.0.0.1:" .. httpl:port()

T.test("a client session talks to a server", function()
  local ws = assert(moonport.ws.connect(ws_url, { protocols = { "v1" } }))
  T.eq(ws:protocol(), "v1")
  T.eq(ws:send_text("hi"), 2)
  local data, kind = ws:recv()
  T.eq(data, "/chat:hi"); T.eq(kind, "text")
  ws:send_binary(moonport.buffer.from("\0\1\2"))
  data, kind = ws:recv()
  T.eq(data, "\0\1\2"); T.eq(kind, "binary")
  T.eq(ws:ping("p"), true)
  ws:send_text("after ping")
  T.eq(ws:recv(), "/chat:after ping")
  T.eq(ws:close(1000, "done"), true)
  T.eq(select(2, ws:send_text("x")), "closed")
  moonport.sleep(0.05)
  T.eq(got_close, "1000 done")
end)

T.test("the server closes with a code; too big is 1009", function()
  local ws = assert(moonport.ws.connect(ws_url))
  T.eq(ws:protocol(), nil)
  ws:send_text("close me")
  local reason, kind, code = ws:recv()
  T.eq(kind, "close"); T.eq(code, 4001); T.eq(reason, "as asked")
  ws = assert(moonport.ws.connect(ws_url))
  ws:send_binary(string.rep("x", 101))
  reason, kind, code = ws:recv()
  T.eq(kind, "close"); T.eq(code, 1009); T.eq(reason, "message too big")
  T.eq(select(2, ws:recv()), "closed")
end)

T.test("connect failures are nil, err", function()
  T.eq(select(2, moonport.ws.connect("ws://127.0.0.1:1/")), "refused")
  T.eq(select(2, moonport.ws.connect("wss://127.0.0.1:1/")), "refused")
  T.eq(select(2, moonport.ws.connect("nope")), "invalid url")
  T.eq(select(2, moonport.ws.connect("ws://127.0.0.1:" .. httpl:port() .. "/")), "websocket upgrade refused")
end)

T.test("http.request against http.listen", function()
  local r = assert(moonport.http.request(http_url .. "/a?b=c"))
  T.eq(r.status, 200); T.eq(r.body, "/a?b=c"); T.eq(r.headers["X-METHOD"], "GET")
  r = assert(moonport.http.request({ url = http_url, method = "put", body = moonport.buffer.from("data") }))
  T.eq(r.body, "data"); T.eq(r.headers["x-method"], "PUT")
  T.eq(select(2, moonport.http.request({ url = http_url, max_body = 2, body = "long" })), "response too large")
end)

T.test("wrong arguments raise errors", function()
  T.raises("bad argument #2 to 'listen' (function expected, got nil)", moonport.ws.listen, {})
  T.raises("bad argument #1 to 'listen' (max_message: integer", moonport.ws.listen, { max_message = "x" }, print)
  T.raises("bad argument #1 to 'request' (url: string expected", moonport.http.request, {})
  T.raises("no such directory", moonport.http.static, "/no/such/dir")
  local ws = assert(moonport.ws.connect(ws_url))
  T.raises("bad argument #1 to 'close' (1005 is not a close code", ws.close, ws, 1005)
  T.raises("bad argument #1 to 'ping' (at most 125 bytes)", ws.ping, ws, string.rep("x", 126))
  T.raises("bad argument #1 to 'send_text' (string expected, got table)", ws.send_text, ws, {})
  ws:close()
end)

T.test("ws.bridge pumps a session to a TCP connection and back", function()
  local echo = assert(moonport.tcp.listen({ host = "127.0.0.1", port = 0 }, function(conn)
    while true do
      local data = conn:read()
      if not data then return end
      conn:write(data)
    end
  end))
  local ended
  local bl = assert(moonport.ws.listen({ host = "127.0.0.1", port = 0 }, function(ws)
    local conn = assert(moonport.tcp.connect("127.0.0.1", echo:port()))
    -- The argument checks run here, where a ws exists; a failure ends the wait below.
    local ok, err = pcall(function()
      T.raises("bad argument #1 to 'bridge' (ws expected, got userdata)", moonport.ws.bridge, conn, conn)
      T.raises("bad argument #2 to 'bridge' (conn expected, got string)", moonport.ws.bridge, ws, "x")
      T.raises("bad argument #3 to 'bridge' (idle_timeout:", moonport.ws.bridge, ws, conn, { idle_timeout = "x" })
    end)
    ended = ok and table.concat({ moonport.ws.bridge(ws, conn) }, " ") or err
  end))
  local ws = assert(moonport.ws.connect("ws://127.0.0.1:" .. bl:port() .. "/"))
  ws:send_binary("RFB ")
  ws:send_text("003.008\n")
  local got = ""
  while #got < 12 do
    local data, kind = ws:recv()
    T.eq(kind, "binary")
    got = got .. data
  end
  T.eq(got, "RFB 003.008\n")
  ws:close(1000)
  for _ = 1, 500 do
    if ended then break end
    moonport.sleep(0.01)
  end
  T.eq(ended, "12 12 close 1000")
  bl:close(); echo:close()
end)

wsl:close()
httpl:close()
T.done()
