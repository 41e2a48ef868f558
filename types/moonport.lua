---@meta moonport
-- LuaLS type annotations for moonport. Add this folder to your editor's
-- `workspace.library` (or `Lua.workspace.library` in settings) for completion.
-- The reference is docs/lua-api.md.

---@class moonport
moonport = {}

---@class moonport.ListenOptions
---@field host? string  address to bind (default "0.0.0.0")
---@field port? integer port; 0 picks a free one (default 0)
---@field backlog? integer kernel accept queue (default 1024)
---@field ipv6_only? boolean for IPv6 hosts: refuse IPv4-mapped connections
---@field read_buffer? integer bytes per read (default 16384)

---@class moonport.ConnectOptions
---@field timeout? number seconds to wait for the connection (default 30, 0 = forever)
---@field read_buffer? integer bytes per read (default 16384)

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

---Returns 1..max bytes as they arrive.
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

---Sends all of data.
---@param data string|number
---@return integer? bytes
---@return string? err "closed", "reset", "timeout"
function Conn:write(data) end

---Half-closes: sends end-of-stream, reading goes on.
---@param how "write"
---@return true? ok
---@return string? err
function Conn:shutdown(how) end

---Closes the connection now.
---@return true? ok
---@return string? err "closed" if it already was
function Conn:close() end

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

moonport.tcp = {}

---Listens and runs handler(conn) in a new coroutine per connection.
---@param opts moonport.ListenOptions
---@param handler fun(conn: moonport.Conn)
---@return moonport.Listener? listener
---@return string? err
function moonport.tcp.listen(opts, handler) end

---Connects to host:port.
---@param host string
---@param port integer
---@param opts? moonport.ConnectOptions
---@return moonport.Conn? conn
---@return string? err "refused", "timeout", "unreachable", ...
function moonport.tcp.connect(host, port, opts) end

---Runs fn(...) as a new coroutine on this worker.
---@param fn function
---@param ... any
function moonport.spawn(fn, ...) end

---Suspends the calling coroutine for `seconds`.
---@param seconds number
function moonport.sleep(seconds) end

---Monotonic seconds since the process started.
---@return number
function moonport.now() end

---This worker's number, from 1.
---@return integer
function moonport.worker_id() end

---How many workers the process runs.
---@return integer
function moonport.workers() end

---True once a shutdown has begun.
---@return boolean
function moonport.exiting() end

moonport.log = {}

---@param ... any
function moonport.log.debug(...) end

---@param ... any
function moonport.log.info(...) end

---@param ... any
function moonport.log.warn(...) end

---@param ... any
function moonport.log.error(...) end

return moonport
