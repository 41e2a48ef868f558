---@meta moonport
-- LuaLS type annotations for moonport. Add this folder to your editor's
-- `workspace.library` (or `Lua.workspace.library` in settings) for completion.
-- The reference is docs/lua-api.md.

---@class moonport
moonport = {}

---@class moonport.ListenOptions
---@field host? string|moonport.Endpoint address to bind (default "0.0.0.0"); an endpoint brings its port
---@field port? integer port; 0 picks a free one (default 0, or the endpoint's)
---@field backlog? integer kernel accept queue (default 1024)
---@field ipv6_only? boolean for IPv6 hosts: refuse IPv4-mapped connections
---@field read_buffer? integer bytes per read (default 16384)
---@field tls? moonport.ServerTls serve TLS

---@class moonport.ConnectOptions
---@field timeout? number seconds for the lookup, the connection and the TLS handshake (default 30, 0 = forever)
---@field read_buffer? integer bytes per read (default 16384)
---@field tls? true|moonport.ClientTls connect over TLS (true: verify against the built-in roots)

---A listener's TLS settings. PEM values are file paths, or PEM text starting with "-----BEGIN".
---@class moonport.ServerTls
---@field cert string certificate chain (PEM)
---@field key string private key (PEM)
---@field client_ca? string CA that client certificates must chain to
---@field verify_client? "none"|"optional"|"required" default "required" with client_ca, else "none"
---@field alpn? string[] protocols offered, in order of preference
---@field handshake_timeout? number seconds to finish the handshake (default 10)

---A client's TLS settings.
---@class moonport.ClientTls
---@field ca? string CA certificates to trust instead of the built-in roots (PEM)
---@field verify? boolean false accepts any certificate (tests only; default true)
---@field server_name? string name the certificate must carry (default: the host connected to)
---@field cert? string client certificate chain (PEM), with key
---@field key? string client private key (PEM), with cert
---@field alpn? string[] protocols offered

---@class moonport.TlsInfo
---@field version string "TLSv1_3" or "TLSv1_2"
---@field cipher string e.g. "TLS13_AES_256_GCM_SHA384"
---@field alpn? string protocol agreed
---@field server_name? string on a server: the name the client asked for (SNI)
---@field peer_certificate? string the peer's certificate (DER)

---@class moonport.Listener
local Listener = {}

---The port bound (useful with port = 0).
---@return integer
function Listener:port() end

---Stops accepting on this worker.
function Listener:close() end

---A TCP connection.
---@class moonport.Conn
local Conn = {}

---Returns 1..max bytes as they arrive; nil, "closed" at end of stream (writing still works).
---@param max? integer default 65536
---@return string? data
---@return string? err "closed", "reset", "timeout", "busy"
function Conn:read(max) end

---Returns exactly n bytes.
---@param n integer
---@return string? data
---@return string? err
---@return string? partial bytes received before the peer closed
function Conn:read_exact(n) end

---Returns the next line without "\n" or "\r\n".
---@param max? integer longest line accepted (default 65536)
---@return string? line
---@return string? err "line too long" (connection stays open), "closed", "timeout"
---@return string? partial
function Conn:read_line(max) end

---Returns the bytes before the next `delim` and consumes the delimiter.
---@param delim string
---@param max? integer default 65536
---@return string? data
---@return string? err "too long", "closed", "timeout"
---@return string? partial
function Conn:read_until(delim, max) end

---Copies everything arriving here to other natively, then half-closes other.
---@param other moonport.Conn
---@param opts? moonport.RelayOptions
---@return integer bytes
---@return string reason
function Conn:pipe_to(other, opts) end

---Sends all of data; a buffer is sent without copying.
---@param data string|number|moonport.Buffer
---@return integer? bytes
---@return string? err "closed", "reset", "timeout"
function Conn:write(data) end

---Appends 1..max received bytes to buf.
---@param buf moonport.Buffer
---@param max? integer default 65536
---@return integer? count
---@return string? err "buffer full", "closed", "timeout"
function Conn:read_into(buf, max) end

---Appends exactly n received bytes to buf.
---@param buf moonport.Buffer
---@param n integer
---@return integer? count
---@return string? err "buffer full", "closed", "timeout"
function Conn:read_exact_into(buf, n) end

---Half-closes: sends end-of-stream, reading goes on.
---@param how "write"
---@return true? ok
---@return string? err
function Conn:shutdown(how) end

---Closes the connection now (a TLS one sends close_notify first).
---@return true? ok
---@return string? err "closed" if it already was
function Conn:close() end

---Runs a TLS handshake on a plain connection (STARTTLS): as the client, or with server = true as the server.
---@param opts? true|moonport.ClientTls|(moonport.ServerTls|{server: true})
---@return true? ok
---@return string? err "tls: ...", "already tls", "timeout"
function Conn:starttls(opts) end

---What the TLS handshake agreed on; nil for a plain connection.
---@return moonport.TlsInfo?
function Conn:tls_info() end

---Deadlines in seconds: nil leaves one unchanged, 0 removes it.
---@param connect? number
---@param send? number
---@param read? number
function Conn:set_timeouts(connect, send, read) end

---@return string? ip
---@return integer|string port_or_err
function Conn:peer() end

---@return string? ip
---@return integer|string port_or_err
function Conn:local_addr() end

---@param on boolean true turns Nagle's algorithm off (the default)
---@return true? ok
---@return string? err
function Conn:set_nodelay(on) end

---An IP address and a port (moonport.net.endpoint); read-only.
---`tostring(ep)` gives "127.0.0.1:8080" / "[::1]:9000"; `==` compares address and port.
---@class moonport.Endpoint
---@field family "inet"|"inet6"
---@field address string the IP in canonical text
---@field port integer

---A UDP socket (moonport.udp.bind). No error closes it; only close() does.
---@class moonport.Udp
local Udp = {}

---Sends one datagram; a buffer is sent without copying.
---@param data string|number|moonport.Buffer
---@param host string|moonport.Endpoint IP literal, "*", a name, "ip:port", or an endpoint
---@param port? integer needed unless host is an endpoint or "ip:port"
---@return integer? bytes
---@return string? err "message too long", "address family not supported", "not found", "closed", ...
function Udp:sendto(data, host, port) end

---Sends one datagram to the connected peer.
---@param data string|number|moonport.Buffer
---@return integer? bytes
---@return string? err
function Udp:send(data) end

---Waits for one datagram; one longer than max gives nil, "truncated", partial, endpoint.
---@param max? integer 1..65535 (default 65535)
---@return string? data
---@return moonport.Endpoint|string from_or_err endpoint, or "truncated", "timeout", "busy", "closed", "refused"
---@return string? partial the first max bytes of a truncated datagram
---@return moonport.Endpoint? from the sender of a truncated datagram
function Udp:recvfrom(max) end

---Waits for one datagram (from the connected peer, if connected).
---@param max? integer 1..65535 (default 65535)
---@return string? data
---@return string? err "truncated", "timeout", "busy", "closed", "refused"
---@return string? partial
---@return moonport.Endpoint? from
function Udp:recv(max) end

---Fixes the peer: send goes there, and only its datagrams are received.
---@param host string|moonport.Endpoint
---@param port? integer
---@return true? ok
---@return string? err
function Udp:connect(host, port) end

---@param on? boolean default true
---@return true? ok
---@return string? err
function Udp:set_broadcast(on) end

---@param group string IP literal of the group
---@param iface? string|integer IPv4: local interface address (default "0.0.0.0"); IPv6: interface index (default 0)
---@return true? ok
---@return string? err
function Udp:join_multicast(group, iface) end

---@param group string
---@param iface? string|integer
---@return true? ok
---@return string? err
function Udp:leave_multicast(group, iface) end

---IPv4: the interface outgoing multicast leaves by.
---@param ip string IPv4 address of the interface
---@return true? ok
---@return string? err
function Udp:set_multicast_interface(ip) end

---IPv4: whether this host's sockets receive our multicast too.
---@param on? boolean default true
---@return true? ok
---@return string? err
function Udp:set_multicast_loop(on) end

---IPv4: time-to-live of outgoing multicast.
---@param ttl integer 0..255
---@return true? ok
---@return string? err
function Udp:set_multicast_ttl(ttl) end

---Deadline of each receive; 0 or nil waits forever (the default).
---@param seconds? number
function Udp:set_timeout(seconds) end

---@return string? ip
---@return integer|string port_or_err
function Udp:local_addr() end

---@return string? ip
---@return integer|string port_or_err
function Udp:peer() end

---Closes now; a receive in flight returns nil, "closed".
---@return true? ok
---@return string? err "closed" if it already was
function Udp:close() end

---A Berkeley-style socket (moonport.socket).
---@class moonport.Socket
local Socket = {}

---@param host string|moonport.Endpoint
---@param port? integer
---@return true? ok
---@return string? err "address in use", "address family not supported", ...
function Socket:bind(host, port) end

---Makes a fresh stream socket a listener.
---@param backlog? integer 1..65535 (default 128)
---@return true? ok
---@return string? err "not a fresh stream socket"
function Socket:listen(backlog) end

---Waits for a connection.
---@return moonport.Socket? conn
---@return moonport.Endpoint|string peer_or_err "timeout", "not listening", "closed"
function Socket:accept() end

---Connects a fresh stream socket (first address of a name), or fixes a datagram socket's peer.
---@param host string|moonport.Endpoint
---@param port? integer
---@return true? ok
---@return string? err "refused", "timeout", "already connected", "busy", ...
function Socket:connect(host, port) end

---Stream: conn:write. Datagram: one datagram to the connected peer.
---@param data string|number|moonport.Buffer
---@return integer? bytes
---@return string? err "not connected", "closed", "timeout", ...
function Socket:send(data) end

---Stream: 1..max bytes (default 65536). Datagram: one datagram (max 1..65535, default 65535).
---@param max? integer
---@return string? data
---@return string? err "closed", "timeout", "not connected", "truncated", ...
---@return string? partial
---@return moonport.Endpoint? from
function Socket:recv(max) end

---Datagram sockets only.
---@param data string|number|moonport.Buffer
---@param host string|moonport.Endpoint
---@param port? integer
---@return integer? bytes
---@return string? err "not a datagram socket", ...
function Socket:sendto(data, host, port) end

---Datagram sockets only.
---@param max? integer 1..65535 (default 65535)
---@return string? data
---@return moonport.Endpoint|string from_or_err
---@return string? partial
---@return moonport.Endpoint? from
function Socket:recvfrom(max) end

---@param name "SO_REUSEADDR"|"SO_REUSEPORT"|"SO_KEEPALIVE"|"SO_RCVBUF"|"SO_SNDBUF"|"SO_BROADCAST"|"TCP_NODELAY"|"IPV6_V6ONLY"|"SO_LINGER"
---@param value boolean|integer|number|false booleans; bytes for SO_RCVBUF/SO_SNDBUF; seconds or false for SO_LINGER
---@return true? ok
---@return string? err "not supported", ...
function Socket:setoption(name, value) end

---@param name "SO_REUSEADDR"|"SO_REUSEPORT"|"SO_KEEPALIVE"|"SO_RCVBUF"|"SO_SNDBUF"|"SO_BROADCAST"|"TCP_NODELAY"|"IPV6_V6ONLY"|"SO_LINGER"
---@return boolean|integer|number|nil value
---@return string? err
function Socket:getoption(name) end

---@param how? "read"|"write"|"both" default "both"
---@return true? ok
---@return string? err
function Socket:shutdown(how) end

---Deadline for connect, accept, sends and receives; 0 or nil waits forever.
---@param seconds? number
function Socket:settimeout(seconds) end

---@return moonport.Endpoint? addr
---@return string? err
function Socket:getsockname() end

---@return moonport.Endpoint? addr
---@return string? err
function Socket:getpeername() end

---The fd (Unix) or SOCKET handle (Windows); moonport still owns it.
---@return integer? fd
---@return string? err
function Socket:fileno() end

---@return true? ok
---@return string? err "closed" if it already was
function Socket:close() end

---C's hostent (moonport.dns.gethostbyname).
---@class moonport.HostEnt
---@field name string canonical name (end of the CNAME chain)
---@field aliases string[] names the CNAME chain went through, the name asked first
---@field addresses string[]

---@class moonport.LookupOptions
---@field family? "inet"|"inet6" default both (gethostbyname: "inet")
---@field timeout? number seconds for the whole call (default: timeout × attempts × servers)
---@field nameserver? string|moonport.Endpoint|(string|moonport.Endpoint)[] "ip", "ip:port", "[ip6]:port" or endpoints

---@class moonport.DnsConfig
---@field nameserver? string|moonport.Endpoint|(string|moonport.Endpoint)[]
---@field search? string[] domains to try names in
---@field ndots? integer 0..15
---@field timeout? number seconds one try waits for one server
---@field attempts? integer rounds over the servers, 1..5
---@field cache_size? integer answers cached per worker (default 4096, 0 = off)


---A byte buffer (moonport.buffer).
---@class moonport.Buffer
---@operator len: integer
local Buffer = {}

---@return integer
function Buffer:capacity() end

function Buffer:clear() end

---@param i? integer
---@param j? integer
---@return string
function Buffer:tostring(i, j) end

---@param i? integer
---@return integer?
function Buffer:byte(i) end

---A view sharing the bytes (no copy).
---@param i? integer
---@param j? integer
---@return moonport.Buffer
function Buffer:slice(i, j) end

---@param needle string|moonport.Buffer
---@param init? integer
---@return integer?
function Buffer:find(needle, init) end

---@param data string|moonport.Buffer
---@return moonport.Buffer
function Buffer:append(data) end

---@param data string|moonport.Buffer
---@return moonport.Buffer
function Buffer:write_string(data) end

---@param data string|moonport.Buffer
---@param prefix "u8"|"u16le"|"u16be"|"u32le"|"u32be"|"u64le"|"u64be"|"varint"
---@return moonport.Buffer
function Buffer:write_lstring(data, prefix) end

---Unsigned LEB128.
---@param n integer
---@return moonport.Buffer
function Buffer:write_varint(n) end

---Signed LEB128.
---@param n integer
---@return moonport.Buffer
function Buffer:write_svarint(n) end

---Appends a u8 (one byte).
---@param n number
---@return moonport.Buffer
function Buffer:write_u8(n) end

---Appends a i8 (one byte).
---@param n number
---@return moonport.Buffer
function Buffer:write_i8(n) end

---Appends a u16 (big-endian).
---@param n number
---@return moonport.Buffer
function Buffer:write_u16(n) end

---Appends a u16 (little-endian).
---@param n number
---@return moonport.Buffer
function Buffer:write_u16_le(n) end

---Appends a u16 (big-endian).
---@param n number
---@return moonport.Buffer
function Buffer:write_u16_be(n) end

---Appends a i16 (big-endian).
---@param n number
---@return moonport.Buffer
function Buffer:write_i16(n) end

---Appends a i16 (little-endian).
---@param n number
---@return moonport.Buffer
function Buffer:write_i16_le(n) end

---Appends a i16 (big-endian).
---@param n number
---@return moonport.Buffer
function Buffer:write_i16_be(n) end

---Appends a u32 (big-endian).
---@param n number
---@return moonport.Buffer
function Buffer:write_u32(n) end

---Appends a u32 (little-endian).
---@param n number
---@return moonport.Buffer
function Buffer:write_u32_le(n) end

---Appends a u32 (big-endian).
---@param n number
---@return moonport.Buffer
function Buffer:write_u32_be(n) end

---Appends a i32 (big-endian).
---@param n number
---@return moonport.Buffer
function Buffer:write_i32(n) end

---Appends a i32 (little-endian).
---@param n number
---@return moonport.Buffer
function Buffer:write_i32_le(n) end

---Appends a i32 (big-endian).
---@param n number
---@return moonport.Buffer
function Buffer:write_i32_be(n) end

---Appends a u64 (big-endian).
---@param n number
---@return moonport.Buffer
function Buffer:write_u64(n) end

---Appends a u64 (little-endian).
---@param n number
---@return moonport.Buffer
function Buffer:write_u64_le(n) end

---Appends a u64 (big-endian).
---@param n number
---@return moonport.Buffer
function Buffer:write_u64_be(n) end

---Appends a i64 (big-endian).
---@param n number
---@return moonport.Buffer
function Buffer:write_i64(n) end

---Appends a i64 (little-endian).
---@param n number
---@return moonport.Buffer
function Buffer:write_i64_le(n) end

---Appends a i64 (big-endian).
---@param n number
---@return moonport.Buffer
function Buffer:write_i64_be(n) end

---Appends a f32 (big-endian).
---@param n number
---@return moonport.Buffer
function Buffer:write_f32(n) end

---Appends a f32 (little-endian).
---@param n number
---@return moonport.Buffer
function Buffer:write_f32_le(n) end

---Appends a f32 (big-endian).
---@param n number
---@return moonport.Buffer
function Buffer:write_f32_be(n) end

---Appends a f64 (big-endian).
---@param n number
---@return moonport.Buffer
function Buffer:write_f64(n) end

---Appends a f64 (little-endian).
---@param n number
---@return moonport.Buffer
function Buffer:write_f64_le(n) end

---Appends a f64 (big-endian).
---@param n number
---@return moonport.Buffer
function Buffer:write_f64_be(n) end

---LuaJIT only: a uint8_t* to the bytes and the length; valid until the buffer next changes.
---@return ffi.cdata* ptr
---@return integer length
function Buffer:ptr() end

---A read position over a buffer.
---@class moonport.BufferReader
local Reader = {}

---@return number? value
---@return string? err "short buffer"
function Reader:read_u8() end

---@return number? value
---@return string? err "short buffer"
function Reader:read_i8() end

---@return number? value
---@return string? err "short buffer"
function Reader:read_u16() end

---@return number? value
---@return string? err "short buffer"
function Reader:read_u16_le() end

---@return number? value
---@return string? err "short buffer"
function Reader:read_u16_be() end

---@return number? value
---@return string? err "short buffer"
function Reader:read_i16() end

---@return number? value
---@return string? err "short buffer"
function Reader:read_i16_le() end

---@return number? value
---@return string? err "short buffer"
function Reader:read_i16_be() end

---@return number? value
---@return string? err "short buffer"
function Reader:read_u32() end

---@return number? value
---@return string? err "short buffer"
function Reader:read_u32_le() end

---@return number? value
---@return string? err "short buffer"
function Reader:read_u32_be() end

---@return number? value
---@return string? err "short buffer"
function Reader:read_i32() end

---@return number? value
---@return string? err "short buffer"
function Reader:read_i32_le() end

---@return number? value
---@return string? err "short buffer"
function Reader:read_i32_be() end

---@return number? value
---@return string? err "short buffer"
function Reader:read_u64() end

---@return number? value
---@return string? err "short buffer"
function Reader:read_u64_le() end

---@return number? value
---@return string? err "short buffer"
function Reader:read_u64_be() end

---@return number? value
---@return string? err "short buffer"
function Reader:read_i64() end

---@return number? value
---@return string? err "short buffer"
function Reader:read_i64_le() end

---@return number? value
---@return string? err "short buffer"
function Reader:read_i64_be() end

---@return number? value
---@return string? err "short buffer"
function Reader:read_f32() end

---@return number? value
---@return string? err "short buffer"
function Reader:read_f32_le() end

---@return number? value
---@return string? err "short buffer"
function Reader:read_f32_be() end

---@return number? value
---@return string? err "short buffer"
function Reader:read_f64() end

---@return number? value
---@return string? err "short buffer"
function Reader:read_f64_le() end

---@return number? value
---@return string? err "short buffer"
function Reader:read_f64_be() end

---@return integer? value
---@return string? err
function Reader:read_varint() end

---@return integer? value
---@return string? err
function Reader:read_svarint() end

---@param n integer
---@return string? bytes
---@return string? err
function Reader:read_bytes(n) end

---@param n integer
---@return moonport.Buffer? view
---@return string? err
function Reader:read_slice(n) end

---@param prefix "u8"|"u16le"|"u16be"|"u32le"|"u32be"|"u64le"|"u64be"|"varint"
---@return string? bytes
---@return string? err
function Reader:read_lstring(prefix) end

---@return integer
function Reader:remaining() end

---@return integer
function Reader:tell() end

---@param pos integer
---@return integer? pos
---@return string? err
function Reader:seek(pos) end

---@param n integer
---@return integer? pos
---@return string? err
function Reader:skip(n) end

---Drops the consumed bytes from the buffer; the position becomes 0.
function Reader:compact() end

---@return moonport.Buffer
function Reader:buffer() end

moonport.buffer = {}

---@param capacity? integer default 256
---@param max? integer default 64 MiB
---@return moonport.Buffer
function moonport.buffer.new(capacity, max) end

---@param data string|moonport.Buffer
---@param max? integer
---@return moonport.Buffer
function moonport.buffer.from(data, max) end

---@param buf moonport.Buffer
---@param pos? integer 0-based
---@return moonport.BufferReader
function moonport.buffer.reader(buf, pos) end

---@param v any
---@return boolean
function moonport.buffer.is_buffer(v) end

---@class moonport.UrlParts
---@field scheme string
---@field user? string
---@field password? string
---@field host? string
---@field port? integer
---@field path? string
---@field query? string
---@field fragment? string

moonport.url = {}

---@param s string
---@return moonport.UrlParts? parts
---@return string? err
function moonport.url.parse(s) end

---@param parts moonport.UrlParts
---@return string? url
---@return string? err
function moonport.url.build(parts) end

---@param q string
---@return table<string, string|string[]>
function moonport.url.parse_query(q) end

---@param t table<string, string|number|boolean|(string|number|boolean)[]>
---@return string
function moonport.url.encode_query(t) end

---@param s string
---@return string
function moonport.url.escape(s) end

---@param s string
---@return string
function moonport.url.unescape(s) end

---@class moonport.RelayOptions
---@field idle_timeout? number seconds without traffic before ending
---@field max_bytes? integer end after this many bytes in one direction

---Pumps bytes both ways between two connections natively until both end.
---@param a moonport.Conn
---@param b moonport.Conn
---@param opts? moonport.RelayOptions
---@return integer a_to_b
---@return integer b_to_a
---@return string reason "eof", "idle", "limit", "closed", "reset", ...
function moonport.relay(a, b, opts) end

---@class moonport.SubscribeOptions
---@field queue? integer messages waiting at most (default 64)
---@field bytes? integer bytes waiting at most (default 8 MiB)
---@field policy? "drop_oldest"|"keep_latest"|"disconnect"

---@class moonport.Subscription
local Subscription = {}

---@param timeout? number
---@return string? message
---@return string? err "closed", "overflow", "timeout"
function Subscription:recv(timeout) end

---@param timeout? number
---@return moonport.Buffer? message
---@return string? err
function Subscription:recv_buffer(timeout) end

---@return integer
function Subscription:missed() end

function Subscription:close() end

---@class moonport.Room
local Room = {}

---@param data string|moonport.Buffer
---@return integer subscribers
function Room:publish(data) end

---@param opts? moonport.SubscribeOptions
---@return moonport.Subscription
function Room:subscribe(opts) end

---Writes the room's messages to conn natively until it fails or is disconnected.
---A WebSocket gets one frame per message (opts.kind: "binary" or "text").
---@param conn moonport.Conn|moonport.Ws
---@param opts? moonport.SubscribeOptions|{kind?: "binary"|"text"}
---@return string reason
---@return integer missed
function Room:attach(conn, opts) end

---@return integer
function Room:count() end

---@return string
function Room:name() end

---@class moonport.RoomStats
---@field subscribers integer local subscriptions
---@field scope "local"|"cluster"
---@field connected? boolean cluster rooms: the link to Redis is up
---@field unsent? integer cluster rooms: messages that could not go to Redis
---@field received? integer cluster rooms: messages from other processes
---@field lost? integer cluster rooms: messages of other processes that never arrived
---@field duplicates? integer cluster rooms: messages seen twice and dropped

---@return moonport.RoomStats
function Room:stats() end

---@class moonport.RoomOptions
---@field scope? "local"|"cluster" "cluster": the room spans every process joined to the same Redis

---The room called name, the same on every worker (and with scope "cluster",
---on every process of the cluster).
---@param name string
---@param opts? moonport.RoomOptions
---@return moonport.Room
function moonport.room(name, opts) end

moonport.cluster = {}

---@class moonport.ClusterOptions
---@field queue? integer messages waiting for Redis at most, per process (default 4096)
---@field bytes? integer bytes waiting for Redis at most, per process (default 64 MiB)

---Joins this process to the cluster at url (redis://host:port), as --cluster does.
---Joining the same url again is a no-op; another url raises an error.
---@param url string
---@param opts? moonport.ClusterOptions
---@return true
function moonport.cluster.join(url, opts) end

---@class moonport.ClusterStatus
---@field url string
---@field node string this process's id (16 hex digits)
---@field connected boolean
---@field sent integer
---@field unsent integer
---@field received integer
---@field lost integer
---@field reconnects integer

---@return moonport.ClusterStatus? status nil when not in a cluster
function moonport.cluster.status() end

moonport.redis = {}

---The null reply (the same value as moonport.json.null).
---@type lightuserdata
moonport.redis.null = nil

---@class moonport.RedisOptions
---@field timeout? number seconds for the connect and each command (default 30, 0: none)
---@field max_reply? integer largest reply in bytes (default 64 MiB)
---@field read_buffer? integer bytes per socket read (default 16 KiB)

---A Redis client. Any command is a method: client:get("k"), client:hset("h", "f", 1).
---Replies: strings, integers, tables, moonport.redis.null; an error reply is nil, "ERR ...".
---@class moonport.Redis
---@field [string] fun(self: moonport.Redis, ...: string|number): any, string?
local Redis = {}

---@param url string redis://[user:password@]host[:port][/db]
---@param opts? moonport.RedisOptions
---@return moonport.Redis? client
---@return string? err "refused", "timeout", "closed", or the server's error
function moonport.redis.connect(url, opts) end

---@param name string
---@param ... string|number
---@return any reply
---@return string? err
function Redis:call(name, ...) end

---Sends the commands in one write; error replies come back as {false, "ERR ..."}.
---@param commands (string|number)[][]
---@return any[]? replies
---@return string? err
function Redis:pipeline(commands) end

---The next reply the server sends by itself (pub/sub messages).
---@param timeout? number
---@return any reply
---@return string? err "timeout" (not fatal), "closed", ...
function Redis:read_reply(timeout) end

---@param seconds number
function Redis:set_timeout(seconds) end

function Redis:close() end

---@class moonport.Channel
---@operator len: integer
local Channel = {}

---@param v any not nil
---@return true? ok
---@return string? err "closed"
function Channel:send(v) end

---@param timeout? number
---@return any value
---@return string? err "closed", "timeout"
function Channel:recv(timeout) end

---@param v any
---@return true? ok
---@return string? err "full", "closed"
function Channel:try_send(v) end

---@return any value
---@return string? err "empty", "closed"
function Channel:try_recv() end

function Channel:close() end

---@return boolean
function Channel:is_closed() end

---@param capacity? integer default 64
---@return moonport.Channel
function moonport.channel(capacity) end

---Waits for the first ready channel or subscription.
---@param cases (moonport.Channel|moonport.Subscription)[]
---@param timeout? number
---@return (moonport.Channel|moonport.Subscription)? case
---@return any value_or_err
---@return string? err
function moonport.select(cases, timeout) end

---Runs fn(...) with a deadline.
---@param seconds number
---@param fn function
---@param ... any
---@return any ...
function moonport.timeout(seconds, fn, ...) end

moonport.tcp = {}

---Listens and runs handler(conn) in a new coroutine per connection.
---@param opts moonport.ListenOptions
---@param handler fun(conn: moonport.Conn)
---@return moonport.Listener? listener
---@return string? err
function moonport.tcp.listen(opts, handler) end

---Connects to host:port; a name's addresses are tried in order.
---@overload fun(addr: moonport.Endpoint|string, opts?: moonport.ConnectOptions): moonport.Conn?, string?
---@param host string IP literal or a name (resolved through moonport.dns)
---@param port integer
---@param opts? moonport.ConnectOptions
---@return moonport.Conn? conn
---@return string? err "refused", "timeout", "unreachable", "not found", ...
function moonport.tcp.connect(host, port, opts) end

moonport.net = {}

---An endpoint from an IP literal and a port, or from "ip:port".
---@overload fun(text: string): moonport.Endpoint?, string?
---@param ip string IP literal (no names)
---@param port integer
---@return moonport.Endpoint? ep
---@return string? err "invalid address"
function moonport.net.endpoint(ip, port) end

---C's in_addr_t: network-order bytes read as a native integer.
---@param text string dotted IPv4 address
---@return integer? n
---@return string? err "invalid address"
function moonport.net.inet_addr(text) end

---@param n integer -2^31..2^32-1
---@return string
function moonport.net.inet_ntoa(n) end

---Raw network-order bytes: 4 for "inet", 16 for "inet6".
---@param family "inet"|"inet6"
---@param text string
---@return string? bytes
---@return string? err "invalid address"
function moonport.net.inet_pton(family, text) end

---@param family "inet"|"inet6"
---@param bytes string 4 or 16 bytes
---@return string? text
---@return string? err "invalid address"
function moonport.net.inet_ntop(family, bytes) end

---@param n integer 0..65535
---@return integer
function moonport.net.htons(n) end

---@param n integer 0..65535
---@return integer
function moonport.net.ntohs(n) end

---@param n integer -2^31..2^32-1
---@return integer
function moonport.net.htonl(n) end

---@param n integer -2^31..2^32-1
---@return integer
function moonport.net.ntohl(n) end

moonport.udp = {}

---A UDP socket bound to host:port (port 0 picks a free one).
---@overload fun(addr: moonport.Endpoint|string): moonport.Udp?, string?
---@param host string IP literal, "*", or a name
---@param port integer
---@return moonport.Udp? sock
---@return string? err "address in use", "permission denied", ...
function moonport.udp.bind(host, port) end

moonport.AF_INET = "inet"
moonport.AF_INET6 = "inet6"
moonport.SOCK_STREAM = "stream"
moonport.SOCK_DGRAM = "dgram"
moonport.IPPROTO_TCP = "tcp"
moonport.IPPROTO_UDP = "udp"
moonport.SO_REUSEADDR = "SO_REUSEADDR"
moonport.SO_REUSEPORT = "SO_REUSEPORT"
moonport.SO_KEEPALIVE = "SO_KEEPALIVE"
moonport.SO_RCVBUF = "SO_RCVBUF"
moonport.SO_SNDBUF = "SO_SNDBUF"
moonport.SO_BROADCAST = "SO_BROADCAST"
moonport.TCP_NODELAY = "TCP_NODELAY"
moonport.IPV6_V6ONLY = "IPV6_V6ONLY"
moonport.SO_LINGER = "SO_LINGER"

---A Berkeley-style socket.
---@param family "inet"|"inet6"
---@param type "stream"|"dgram"
---@param proto? "tcp"|"udp" must match type
---@return moonport.Socket? sock
---@return string? err
function moonport.socket(family, type, proto) end

moonport.dns = {}

---The addresses of name, IPv4 first.
---@param name string
---@param opts? moonport.LookupOptions
---@return string[]? addresses
---@return string? err "not found", "timeout", "server failure", "invalid name", ...
function moonport.dns.resolve(name, opts) end

---IPv4 unless opts.family is "inet6", as in C.
---@param name string
---@param opts? moonport.LookupOptions
---@return moonport.HostEnt? host
---@return string? err
function moonport.dns.gethostbyname(name, opts) end

---The name of an address: the hosts file's, else its PTR record's.
---@param ip string
---@param opts? moonport.LookupOptions
---@return string? name
---@return string? err "not found", "timeout", "invalid address", ...
function moonport.dns.reverse(ip, opts) end

---Changes this worker's resolver; fields left out keep their values.
---@param settings moonport.DnsConfig
function moonport.dns.configure(settings) end

---Runs fn(...) as a new coroutine on this worker.
---@param fn function
---@param ... any
---@return true? ok
---@return string? err "too many coroutines (...)" past the worker's --max-coroutines
function moonport.spawn(fn, ...) end

---Suspends the calling coroutine for `seconds`.
---@param seconds number
function moonport.sleep(seconds) end

---Monotonic seconds since the process started.
---@return number
function moonport.now() end

---Wall-clock seconds since 1970 (UTC), with sub-millisecond precision.
---@return number
function moonport.time() end

---This worker's number, from 1.
---@return integer
function moonport.worker_id() end

---How many workers the process runs.
---@return integer
function moonport.workers() end

---True once a shutdown has begun, or a reload has replaced this version of
---the script (it is draining: end long-running loops).
---@return boolean
function moonport.exiting() end

---Which version of the script this Lua state runs: 1 at start, one more per
---reload that took effect.
---@return integer
function moonport.generation() end

moonport.json = {}

---The JSON null sentinel: decode gives it for null; encode writes null for it.
---@type lightuserdata
moonport.json.null = nil

---Encodes a value as JSON text (sorted object keys; buffers as strings).
---@param value any
---@param opts? {pretty?: boolean}
---@return string? text
---@return string? err e.g. "cannot encode a function"
function moonport.json.encode(value, opts) end

---Decodes JSON text: null as moonport.json.null, arrays marked as arrays.
---@param text string
---@param opts? {big_integers?: "number"|"string"}
---@return any value
---@return string? err "invalid JSON: ... at line L column C"
function moonport.json.decode(text, opts) end

---Marks t (or a new table) as a JSON array, so it encodes as [] even when empty.
---@param t? table
---@return table
function moonport.json.array(t) end

moonport.zlib = {}

---Compresses a string or buffer with DEFLATE.
---@param data string|moonport.Buffer
---@param opts? {level?: integer, format?: "zlib"|"gzip"|"raw"}
---@return string
function moonport.zlib.compress(data, opts) end

---Inflates a string or buffer; bounded by opts.max (default 64 MiB).
---@param data string|moonport.Buffer
---@param opts? {max?: integer, format?: "zlib"|"gzip"|"raw"}
---@return string? data
---@return string? err "too large" | "invalid compressed data: ..."
function moonport.zlib.decompress(data, opts) end

moonport.log = {}

---@param ... any
function moonport.log.debug(...) end

---@param ... any
function moonport.log.info(...) end

---@param ... any
function moonport.log.warn(...) end

---@param ... any
function moonport.log.error(...) end

---Process-wide counters, gauges and histograms (docs/lua-api.md#moonportmetrics).
moonport.metrics = {}

---@class moonport.Counter
local Counter = {}

---Adds n (default 1, >= 0) to the series of these label values.
---@param n? number
---@param label_values? (string|number)[] one per label, in order; nil without labels
function Counter:inc(n, label_values) end

---@class moonport.Gauge
local Gauge = {}

---@param v number
---@param label_values? (string|number)[]
function Gauge:set(v, label_values) end

---@param n? number default 1
---@param label_values? (string|number)[]
function Gauge:inc(n, label_values) end

---@param n? number default 1
---@param label_values? (string|number)[]
function Gauge:dec(n, label_values) end

---@class moonport.Histogram
local Histogram = {}

---@param v number
---@param label_values? (string|number)[]
function Histogram:observe(v, label_values) end

---A counter, the same one on every worker that registers `name`.
---@param name string letters, digits, '_' and ':'; not "moonport_..."
---@param help? string
---@param labels? string[] label names
---@return moonport.Counter
function moonport.metrics.counter(name, help, labels) end

---@param name string
---@param help? string
---@param labels? string[]
---@return moonport.Gauge
function moonport.metrics.gauge(name, help, labels) end

---@param name string
---@param help? string
---@param labels? string[]
---@param buckets? number[] increasing upper bounds (default 0.005 .. 10 seconds)
---@return moonport.Histogram
function moonport.metrics.histogram(name, help, labels, buckets) end

---Every metric in the Prometheus text exposition format 0.0.4.
---@return string
function moonport.metrics.text() end

---Starts the admin listener (/metrics, /health) once per process, as --admin does.
---@param opts {listen: string} "ip:port"
---@return string? ip
---@return integer|string port_or_err
function moonport.admin(opts) end

moonport.http = {}

---@class moonport.HttpOptions: moonport.ListenOptions
---@field max_header? integer bytes of request line and headers (default 16384; beyond: 431)
---@field max_headers? integer header lines (default 64; beyond: 431)
---@field max_body? integer request body bytes (default 1048576; beyond: 413)
---@field header_timeout? number seconds to receive a request head (default 10; then 408)
---@field idle_timeout? number seconds a kept-alive connection waits for its next request (default 60)
---@field body_timeout? number seconds to receive a request body (default 30; then 408)

---@class moonport.Request
---@field method string
---@field path string still percent-encoded
---@field query string? after "?"
---@field target string path and query as sent
---@field version string "1.1" or "1.0"
---@field headers table<string, string> lowercase names; lookups ignore case
---@field body string "" when none

---@class moonport.Response
---@field status integer 200 unless set; set before the first write
local Response = {}

---Sets a header (nil removes it); before the first write only.
---@param name string
---@param value string?
function Response:header(name, value) end

---Sends the head if needed, then data (chunked without a Content-Length).
---@param data string|moonport.Buffer
---@return integer? bytes
---@return string? err
function Response:write(data) end

---Sends data as the whole (rest of the) body and ends the response.
---@param data? string|moonport.Buffer
---@return true? ok
---@return string? err
function Response:send(data) end

---Sends a file, honouring Range and If-None-Match.
---@param path string
---@return true? ok
---@return string? err
function Response:send_file(path) end

---Serves HTTP/1.1: handler(req, res) runs for every request.
---@param opts moonport.HttpOptions
---@param handler fun(req: moonport.Request, res: moonport.Response)
---@return moonport.Listener? listener
---@return string? err
function moonport.http.listen(opts, handler) end

---A handler serving the files under root.
---@param root string
---@param opts? {prefix?: string}
---@return fun(req: moonport.Request, res: moonport.Response)
function moonport.http.static(root, opts) end

---@class moonport.HttpClientResponse
---@field status integer
---@field headers table<string, string>
---@field body string

---One HTTP request; the whole response in memory.
---@param opts string|{url: string, method?: string, headers?: table<string, string>, body?: string|moonport.Buffer, timeout?: number, max_body?: integer, tls?: moonport.ClientTls}
---@return moonport.HttpClientResponse? response
---@return string? err
function moonport.http.request(opts) end

moonport.ws = {}

---@class moonport.WsOptions: moonport.HttpOptions
---@field max_message? integer largest message (default 1048576; beyond: close 1009)
---@field protocols? string[] subprotocols in order of preference
---@field deflate? boolean negotiate permessage-deflate when offered (default false)

---A WebSocket session.
---@class moonport.Ws
local Ws = {}

---The next whole message; pings are answered inside.
---@return string? data message, or the close reason
---@return string? kind "text", "binary" or "close"; or the error when data is nil
---@return integer? code with "close": the peer's close code (1005 when none)
function Ws:recv() end

---@param data string|moonport.Buffer
---@return integer? bytes
---@return string? err
function Ws:send_text(data) end

---@param data string|moonport.Buffer
---@return integer? bytes
---@return string? err
function Ws:send_binary(data) end

---@param data? string at most 125 bytes
---@return true? ok
---@return string? err
function Ws:ping(data) end

---Runs the close handshake and closes the connection.
---@param code? integer
---@param reason? string
---@return true? ok
---@return string? err
function Ws:close(code, reason) end

---The chosen subprotocol.
---@return string?
function Ws:protocol() end

---@return string? ip
---@return integer|string port_or_err
function Ws:peer() end

---Timeouts in seconds (nil leaves one as it is, 0 turns it off).
---@param send? number
---@param read? number
function Ws:set_timeouts(send, read) end

---Accepts WebSocket connections: handler(ws, req) runs for each.
---@param opts moonport.WsOptions
---@param handler fun(ws: moonport.Ws, req: moonport.Request)
---@return moonport.Listener? listener
---@return string? err
function moonport.ws.listen(opts, handler) end

---A client session to a ws:// or wss:// URL.
---@param url string
---@param opts? {protocols?: string[], max_message?: integer, headers?: table<string, string>, timeout?: number, tls?: moonport.ClientTls}
---@return moonport.Ws? ws
---@return string? err
function moonport.ws.connect(url, opts) end

---Turns an HTTP request into a WebSocket (or answers 426/400).
---@param req moonport.Request
---@param res moonport.Response
---@param opts? {max_message?: integer, protocols?: string[], deflate?: boolean}
---@return moonport.Ws? ws
---@return string? err
function moonport.ws.upgrade(req, res, opts) end

---Pumps a WebSocket and a TCP connection into each other natively (what
---websockify does for VNC): data messages go to `conn` as raw bytes, its
---bytes come back as binary frames. Ends, closing both, when either side
---closes or fails, after `idle_timeout`, or on shutdown.
---@param ws moonport.Ws
---@param conn moonport.Conn
---@param opts? {idle_timeout?: number}
---@return integer ws_to_tcp payload bytes
---@return integer tcp_to_ws
---@return string reason "close", "eof", "idle", "shutdown", "ws: <err>", "tcp: <err>"
---@return integer? code the peer's close code when reason is "close" (1005: none)
function moonport.ws.bridge(ws, conn, opts) end

return moonport
