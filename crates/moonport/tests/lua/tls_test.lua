-- Lua-side tests of TLS: moonport.tcp, moonport.http and moonport.ws over
-- TLS, client and server in one script. The first argument is a folder of
-- certificates made by tests/tls.rs: ca.pem, server.pem/server.key (for
-- localhost, 127.0.0.1 and ::1), client.pem/client.key (signed by ca.pem),
-- rogue.pem/rogue.key (a client certificate from another CA).
local T = require("harness")
local dir = assert((...), "usage: tls_test.lua CERT_DIR")
local function file(name) return dir .. "/" .. name end
local function slurp(name)
  local f = assert(io.open(file(name), "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local tcp = moonport.tcp
local server_tls = { cert = file("server.pem"), key = file("server.key") }
local trust = { ca = file("ca.pem") }

-- An upper-casing line echo over TLS that reports what the handshake agreed.
local echo = assert(tcp.listen({ host = "127.0.0.1", port = 0, tls = server_tls }, function(c)
  while true do
    local line, err = c:read_line(2000000)
    if not line then
      if err == "closed" then c:write("bye\n") end
      return
    end
    if line == "info" then
      local info = c:tls_info()
      c:write(info.version .. " " .. tostring(info.server_name) .. "\n")
    else
      c:write(line:upper() .. "\n")
    end
  end
end))
local port = echo:port()

T.test("a TLS client and server exchange lines, big ones too", function()
  local c = assert(tcp.connect("localhost", port, { tls = trust }))
  T.eq(c:write("hello\n"), 6)
  T.eq(c:read_line(), "HELLO")
  local big = string.rep("abcdefgh", 200000)
  c:write(big .. "\n")
  local got = c:read_line(2000000)
  T.eq(#got, #big)
  T.truthy(got == big:upper(), "1.6 MB came back upper-cased")
  c:write("info\n")
  T.eq(c:read_line(), "TLSv1_3 localhost")
  local info = c:tls_info()
  T.eq(info.version, "TLSv1_3")
  T.truthy(info.cipher:find("^TLS13_"), "cipher " .. info.cipher)
  T.truthy(#info.peer_certificate > 100, "the server's certificate")
  -- Half-close: the server sees the end of our stream and still answers.
  T.eq(c:shutdown("write"), true)
  T.eq(c:read_line(), "bye")
  T.eq(select(2, c:read_line()), "closed")
  c:close()
end)

T.test("an address connects when the certificate names it", function()
  local c = assert(tcp.connect("127.0.0.1", port, { tls = trust }))
  c:write("x\n")
  T.eq(c:read_line(), "X")
  c:close()
  local ep = moonport.net.endpoint("127.0.0.1", port)
  c = assert(tcp.connect(ep, { tls = trust }))
  c:write("y\n")
  T.eq(c:read_line(), "Y")
  c:close()
end)

T.test("certificate problems are nil, err", function()
  local c, err = tcp.connect("127.0.0.1", port, { tls = true })
  T.eq(c, nil)
  T.eq(err, "tls: certificate not trusted (unknown issuer)")
  c, err = tcp.connect("127.0.0.1", port, { tls = { ca = file("ca.pem"), server_name = "example.com" } })
  T.eq(err, "tls: certificate does not match the server name")
  -- verify = false: encrypted to whoever answers, names unchecked.
  c = assert(tcp.connect("127.0.0.1", port, { tls = { verify = false, server_name = "example.com" } }))
  c:write("z\n")
  T.eq(c:read_line(), "Z")
  c:close()
  c, err = tcp.connect("127.0.0.1", port, { tls = { ca = file("missing.pem") } })
  T.truthy(err:find("^tls: cannot read ca .*missing.pem"), err)
end)

T.test("inline PEM works as well as files", function()
  local l = assert(tcp.listen({ host = "127.0.0.1", port = 0,
    tls = { cert = slurp("server.pem"), key = slurp("server.key") } }, function(c) c:write("inline\n") end))
  local c = assert(tcp.connect("localhost", l:port(), { tls = { ca = slurp("ca.pem") } }))
  T.eq(c:read_line(), "inline")
  l:close()
end)

T.test("a plain client on a TLS port is turned away; others carry on", function()
  local c = assert(tcp.connect("127.0.0.1", port))
  c:write("GET / HTTP/1.0\r\n\r\n")
  local data, err = c:read()
  -- The server answers garbage with an alert record or just closes.
  T.truthy(data == nil or data:byte(1) == 21, "an alert or nothing, got " .. tostring(data))
  local good = assert(tcp.connect("localhost", port, { tls = trust }))
  good:write("still\n")
  T.eq(good:read_line(), "STILL")
  good:close()
end)

T.test("a client that never finishes its handshake is closed", function()
  local l = assert(tcp.listen({ host = "127.0.0.1", port = 0,
    tls = { cert = file("server.pem"), key = file("server.key"), handshake_timeout = 0.2 } }, function() end))
  local c = assert(tcp.connect("127.0.0.1", l:port()))
  c:set_timeouts(nil, nil, 3)
  local data, err = c:read()
  T.eq(data, nil)
  T.eq(err, "closed")
  l:close()
end)

T.test("listen reports a certificate it cannot load", function()
  local l, err = tcp.listen({ host = "127.0.0.1", port = 0, tls = { cert = file("nope.pem"), key = file("server.key") } },
    function() end)
  T.eq(l, nil)
  T.truthy(err:find("^tls: cannot read cert .*nope.pem"), err)
  T.raises("key", tcp.listen, { port = 0, tls = { cert = file("server.pem") } }, function() end)
  T.raises("verify_client", tcp.listen, { port = 0, tls = { cert = "a", key = "b", verify_client = "maybe" } },
    function() end)
end)

-- Client certificates: required on one listener, optional on another.
local function whoami(c)
  local info = c:tls_info()
  c:write(info.peer_certificate and "cert " .. #info.peer_certificate .. "\n" or "anonymous\n")
end
local mtls = assert(tcp.listen({ host = "127.0.0.1", port = 0,
  tls = { cert = file("server.pem"), key = file("server.key"), client_ca = file("ca.pem") } }, whoami))
local optional = assert(tcp.listen({ host = "127.0.0.1", port = 0,
  tls = { cert = file("server.pem"), key = file("server.key"), client_ca = file("ca.pem"), verify_client = "optional" } },
  whoami))

-- With TLS 1.3 the client finishes its side before the server checks its
-- certificate, so a refusal may show at connect or at the first read.
local function refused(p, opts)
  local c, err = tcp.connect("localhost", p, { tls = opts })
  if c then
    local line
    line, err = c:read_line()
    T.eq(line, nil)
  end
  return err
end

T.test("a listener that requires client certificates checks them", function()
  local with = { ca = file("ca.pem"), cert = file("client.pem"), key = file("client.key") }
  local c = assert(tcp.connect("localhost", mtls:port(), { tls = with }))
  T.truthy(c:read_line():find("^cert %d+$"))
  c:close()
  T.truthy(refused(mtls:port(), trust):find("^tls: "), "no certificate")
  local rogue = { ca = file("ca.pem"), cert = file("rogue.pem"), key = file("rogue.key") }
  T.truthy(refused(mtls:port(), rogue):find("^tls: "), "a certificate from another CA")
  T.raises("both", function() return tcp.connect("localhost", mtls:port(), { tls = { cert = file("client.pem") } }) end)
end)

T.test("optional client certificates let anonymous clients in", function()
  local c = assert(tcp.connect("localhost", optional:port(), { tls = trust }))
  T.eq(c:read_line(), "anonymous")
  c:close()
  c = assert(tcp.connect("localhost", optional:port(),
    { tls = { ca = file("ca.pem"), cert = file("client.pem"), key = file("client.key") } }))
  T.truthy(c:read_line():find("^cert "))
  c:close()
end)

T.test("starttls upgrades a plain connection, on both sides", function()
  local l = assert(tcp.listen({ host = "127.0.0.1", port = 0 }, function(c)
    c:write("220 ready\n")
    T.eq(c:read_line(), "STARTTLS")
    c:write("220 go ahead\n")
    assert(c:starttls({ server = true, cert = file("server.pem"), key = file("server.key") }))
    c:write("secret " .. c:read_line() .. "\n")
  end))
  local c = assert(tcp.connect("127.0.0.1", l:port()))
  T.eq(c:tls_info(), nil)
  T.eq(c:read_line(), "220 ready")
  c:write("STARTTLS\n")
  T.eq(c:read_line(), "220 go ahead")
  T.eq(c:starttls({ ca = file("ca.pem"), server_name = "localhost" }), true)
  T.eq(c:tls_info().version, "TLSv1_3")
  c:write("hi\n")
  T.eq(c:read_line(), "secret hi")
  T.eq(select(2, c:starttls(trust)), "already tls")
  l:close()
end)

T.test("relays and pipes carry TLS connections", function()
  local plain = assert(tcp.listen({ host = "127.0.0.1", port = 0 }, function(c)
    while true do
      local data = c:read()
      if not data then return end
      c:write(data)
    end
  end))
  -- A TLS front that relays to a plain back end, as a TLS terminator does.
  local front = assert(tcp.listen({ host = "127.0.0.1", port = 0, tls = server_tls }, function(c)
    local back = assert(tcp.connect("127.0.0.1", plain:port()))
    moonport.relay(c, back)
  end))
  local c = assert(tcp.connect("localhost", front:port(), { tls = trust }))
  local chunk = string.rep("0123456789", 20000)
  local sent, got = 0, {}
  moonport.spawn(function()
    for _ = 1, 10 do c:write(chunk) end
  end)
  local want = #chunk * 10
  while sent < want do
    local data = assert(c:read())
    got[#got + 1] = data
    sent = sent + #data
  end
  T.truthy(table.concat(got) == string.rep(chunk, 10), "2 MB relayed intact")
  c:close()
  front:close()
  plain:close()
end)

T.test("https: a TLS HTTP server and the client", function()
  local l = assert(moonport.http.listen({ host = "127.0.0.1", port = 0, tls = server_tls }, function(req, res)
    res:send(req.method .. " " .. req.path .. " " .. req.body)
  end))
  local url = "https://localhost:" .. l:port() .. "/x"
  local r = assert(moonport.http.request({ url = url, tls = trust, body = "b" }))
  T.eq(r.status, 200)
  T.eq(r.body, "POST /x b")
  local _, err = moonport.http.request({ url = url })
  T.eq(err, "tls: certificate not trusted (unknown issuer)")
  -- A plain request to the TLS port fails without hurting the listener.
  _, err = moonport.http.request({ url = "http://127.0.0.1:" .. l:port() .. "/", timeout = 2 })
  T.truthy(err, "plain http to a TLS port fails")
  r = assert(moonport.http.request({ url = url, tls = trust }))
  T.eq(r.body, "GET /x ")
  l:close()
end)

T.test("wss: a TLS WebSocket server and the client", function()
  local l = assert(moonport.ws.listen({ host = "127.0.0.1", port = 0, tls = server_tls }, function(ws)
    while true do
      local data, kind = ws:recv()
      if not data or kind == "close" then return end
      ws:send_text("wss:" .. data)
    end
  end))
  local url = "wss://localhost:" .. l:port() .. "/"
  local ws = assert(moonport.ws.connect(url, { tls = trust }))
  ws:send_text("hi")
  T.eq(ws:recv(), "wss:hi")
  local big = string.rep("y", 300000)
  ws:send_text(big)
  T.truthy(ws:recv() == "wss:" .. big, "300 kB message echoed")
  T.eq(ws:close(), true)
  T.eq(select(2, moonport.ws.connect(url)), "tls: certificate not trusted (unknown issuer)")
  l:close()
end)

echo:close()
mtls:close()
optional:close()
T.done()
