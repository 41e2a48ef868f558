-- TLS listeners for tests/tls.rs's independent peer (Python's ssl module,
-- i.e. OpenSSL): an upper-casing line echo, an HTTPS server, and a line
-- echo that requires client certificates. Prints "ports ECHO HTTPS MTLS".
local dir = assert((...), "usage: tls_server.lua CERT_DIR")
local tls = { cert = dir .. "/server.pem", key = dir .. "/server.key" }

local function echo(c)
  while true do
    local line = c:read_line()
    if not line then return end
    local info = c:tls_info()
    c:write(line:upper() .. " " .. info.version .. (info.peer_certificate and " with-cert" or "") .. "\n")
  end
end

local e = assert(moonport.tcp.listen({ host = "127.0.0.1", port = 0, tls = tls }, echo))
local h = assert(moonport.http.listen({ host = "127.0.0.1", port = 0, tls = tls }, function(req, res)
  res:header("Content-Type", "text/plain")
  res:send("https " .. req.method .. " " .. req.path .. " " .. #req.body)
end))
local m = assert(moonport.tcp.listen({ host = "127.0.0.1", port = 0,
  tls = { cert = tls.cert, key = tls.key, client_ca = dir .. "/ca.pem" } }, echo))
if moonport.worker_id() == 1 then
  print(string.format("ports %d %d %d", e:port(), h:port(), m:port()))
end
