-- examples/tls_terminator.lua: TLS in front of a plain TCP service, as
-- stunnel or nginx's stream ssl do. Clients connect over TLS; moonport
-- decrypts and relays bytes both ways natively to the upstream.
--
--   moonport run examples/tls_terminator.lua 8443 server.pem server.key 127.0.0.1:7000 [client_ca.pem]
--
-- listens on 127.0.0.1:8443 (0 = any free port) with the given certificate
-- chain and key. With a client CA, only clients holding a certificate from
-- it get through (mutual TLS), and the log says which certificate each had.
-- For a quick self-signed pair:
--   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
--     -keyout server.key -out server.pem -days 30 -subj /CN=localhost
-- (then connect with `openssl s_client -connect 127.0.0.1:8443`).
local moonport = require("moonport")

local port, cert, key, upstream, client_ca = tonumber(arg[1] or ""), arg[2], arg[3], arg[4], arg[5]
local up_host, up_port = (upstream or ""):match("^%[?([^%]]+)%]?:(%d+)$")
assert(port and cert and key and up_host,
  "usage: tls_terminator.lua LISTEN_PORT CERT.pem KEY.pem HOST:PORT [CLIENT_CA.pem]")

local tls = { cert = cert, key = key, client_ca = client_ca }

assert(moonport.tcp.listen({ host = "127.0.0.1", port = port, tls = tls }, function(client)
  local info = client:tls_info()
  local peer = table.concat({ client:peer() }, ":")
  local server, err = moonport.tcp.connect(up_host, tonumber(up_port), { timeout = 5 })
  if not server then
    moonport.log.warn(string.format("%s: upstream %s: %s", peer, upstream, err))
    return
  end
  moonport.log.info(string.format("%s: %s %s%s -> %s", peer, info.version, info.cipher,
    info.peer_certificate and string.format(", client certificate of %d bytes", #info.peer_certificate) or "",
    upstream))
  local up, down, reason = moonport.relay(client, server, { idle_timeout = 300 })
  moonport.log.info(string.format("%s: done, %d bytes up, %d bytes down, %s", peer, up, down, reason))
  server:close()
end))
