"""An independent TLS peer for tests/tls.rs: Python's ssl module (OpenSSL).

client CERT_DIR ECHO HTTPS MTLS  talks to moonport's lua/tls_server.lua and
                                 prints one "ok ..." line per check;
serve CERT_DIR                   serves one TLS connection (an upper-casing
                                 line echo) for moonport's client, printing
                                 its port first.
Any failed check raises, so the exit status says whether all passed.
"""
import http.client
import os
import socket
import ssl
import sys


def context(certs, client_cert=False, max_version=None):
    ctx = ssl.create_default_context(cafile=os.path.join(certs, "ca.pem"))
    if client_cert:
        ctx.load_cert_chain(os.path.join(certs, "client.pem"), os.path.join(certs, "client.key"))
    if max_version:
        ctx.maximum_version = max_version
    return ctx


def line_exchange(ctx, port, line):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(line.encode() + b"\n")
            return s.makefile("rb").readline().decode().strip()


def client(certs, echo, https, mtls):
    got = line_exchange(context(certs), echo, "hello")
    assert got == "HELLO TLSv1_3", got
    print("ok echo over TLS 1.3")
    got = line_exchange(context(certs, max_version=ssl.TLSVersion.TLSv1_2), echo, "twelve")
    assert got == "TWELVE TLSv1_2", got
    print("ok echo over TLS 1.2")

    conn = http.client.HTTPSConnection("localhost", https, context=context(certs), timeout=5)
    conn.request("POST", "/path?q=1", body=b"x" * 1000)
    resp = conn.getresponse()
    body = resp.read().decode()
    assert resp.status == 200 and body == "https POST /path 1000", (resp.status, body)
    # Keep-alive: a second request on the same TLS connection.
    conn.request("GET", "/again")
    body = conn.getresponse().read().decode()
    assert body == "https GET /again 0", body
    conn.close()
    print("ok https keep-alive")

    got = line_exchange(context(certs, client_cert=True), mtls, "mine")
    assert got == "MINE TLSv1_3 with-cert", got
    print("ok client certificate accepted")
    try:
        got = line_exchange(context(certs), mtls, "anonymous")
        raise AssertionError("served without a client certificate: %r" % got)
    except (ssl.SSLError, ConnectionError, OSError) as e:
        print("ok refused without a client certificate:", type(e).__name__)

    # Peers that refuse moonport's certificate (no CA loaded) fail; moonport carries on.
    try:
        line_exchange(ssl.create_default_context(), echo, "untrusted")
        raise AssertionError("verified without the CA")
    except ssl.SSLCertVerificationError:
        pass
    got = line_exchange(context(certs), echo, "still")
    assert got == "STILL TLSv1_3", got
    print("ok server carries on after a refused handshake")


def serve(certs):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(certs, "server.pem"), os.path.join(certs, "server.key"))
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(10)
        print(listener.getsockname()[1], flush=True)
        raw, _ = listener.accept()
        with ctx.wrap_socket(raw, server_side=True) as s:
            f = s.makefile("rb")
            line = f.readline()
            s.sendall(line.upper())
            # moonport closes with close_notify: a clean end of stream.
            assert f.read() == b"", "data after the line"
    print("ok served", line.decode().strip(), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "client":
        client(sys.argv[2], *map(int, sys.argv[3:6]))
    else:
        serve(sys.argv[2])
