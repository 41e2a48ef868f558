-- A TLS client for tests/tls.rs: connects to an independent TLS server
-- (OpenSSL, through Python) on 127.0.0.1:PORT, trusting CERT_DIR/ca.pem,
-- exchanges one line and closes.
local dir, port = ...
local c = assert(moonport.tcp.connect("localhost", tonumber(port), { tls = { ca = dir .. "/ca.pem" } }))
c:write("from moonport\n")
print("reply " .. assert(c:read_line()) .. " " .. c:tls_info().version)
c:close()
