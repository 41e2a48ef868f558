-- copas_echo.lua: the LuaSocket + copas echo peer of the benchmark suite
-- (bench/peers/start copas PORT WORKERS). Run with luajit2's `luajit`:
-- Debian's copas is installed for Lua 5.1/5.2 only.
--
-- Usage: luajit copas_echo.lua PORT [WORKERS] [ADDR]
--
-- Each connection is a copas coroutine that reads whatever has arrived (up
-- to 64 KiB) and writes it back, until EOF. copas is single-threaded (one
-- socket.select() loop), so WORKERS > 1 means WORKERS processes: this one
-- binds its listener, then forks WORKERS - 1 children (through LuaJIT's FFI)
-- that each bind their own SO_REUSEPORT listener on the same port, so the
-- kernel shards connections across them. Children ask for SIGTERM when this
-- process dies (PR_SET_PDEATHSIG), so killing its pid stops them all.

local socket = require "socket"
local copas = require "copas"

local BUF = 64 * 1024
local port = tonumber(arg[1] or "")
local workers = tonumber(arg[2] or "1")
local host = arg[3] or "127.0.0.1"
if not port or not workers or workers < 1 or workers ~= math.floor(workers) then
  io.stderr:write("usage: luajit copas_echo.lua PORT [WORKERS] [ADDR]\n")
  os.exit(2)
end

local function listen(p)
  local s = assert(socket.tcp4())
  assert(s:setoption("reuseaddr", true))
  assert(s:setoption("reuseport", true))
  assert(s:bind(host, p))
  assert(s:listen(1024))
  return s
end

local function echo(skt)
  skt:setoption("tcp-nodelay", true)
  while true do
    -- Returns on any data: `data` if a full 64 KiB arrived, else the
    -- partial chunk in `part` with err "timeout"; err "closed" at EOF.
    local data, err, part = copas.receivePartial(skt, BUF)
    local chunk = data or part
    if chunk and chunk ~= "" then
      if not copas.send(skt, chunk) then
        return
      end
    end
    if not data and err ~= "timeout" then
      return
    end
  end
end

local server = listen(port)
local _, bound = server:getsockname()
bound = tonumber(bound)

local worker = 0
if workers > 1 then
  local ffi = require "ffi"
  ffi.cdef [[
    int fork(void);
    int getpid(void);
    int getppid(void);
    int prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5);
  ]]
  local PR_SET_PDEATHSIG, SIGTERM = 1, 15
  local parent = ffi.C.getpid()
  for i = 1, workers - 1 do
    local pid = ffi.C.fork()
    assert(pid >= 0, "fork failed")
    if pid == 0 then
      ffi.C.prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0)
      if ffi.C.getppid() ~= parent then
        os.exit(0) -- the parent is already gone
      end
      server:close() -- the parent's copy stays open
      server = listen(bound)
      worker = i
      break
    end
  end
end

copas.addserver(server, echo, 0)
if worker == 0 then
  io.stdout:write(("listening on %s:%d\n"):format(host, bound))
  io.stdout:flush()
  io.stderr:write(("copas_echo: %s, %d process(es), SO_REUSEPORT sharding\n"):format(copas._VERSION, workers))
end
copas.loop()
