-- cqueues_echo.lua: the cqueues echo peer of the benchmark suite
-- (bench/peers/start cqueues PORT WORKERS). Debian's lua-cqueues is built
-- for Lua 5.1 to 5.4; the suite runs it with luajit2's `luajit` (a Lua 5.1
-- VM), the same VM as moonport and the copas peer.
--
-- Usage: luajit cqueues_echo.lua PORT [WORKERS] [ADDR]
--
-- Each connection is a cqueues coroutine that reads whatever has arrived (up
-- to 64 KiB) and writes it back, until EOF. WORKERS > 1 starts WORKERS - 1
-- more OS threads (cqueues.thread: each its own Lua state and event loop),
-- and every worker binds its own SO_REUSEPORT listener on the same port, so
-- the kernel shards connections across them.

local cqueues = require "cqueues"
local thread = require "cqueues.thread"

local port = tonumber(arg[1] or "")
local workers = tonumber(arg[2] or "1")
local host = arg[3] or "127.0.0.1"
if not port or not workers or workers < 1 or workers ~= math.floor(workers) then
  io.stderr:write("usage: luajit cqueues_echo.lua PORT [WORKERS] [ADDR]\n")
  os.exit(2)
end

-- One worker: listens on host:port and echoes until killed. Self-contained
-- (no upvalues), because other threads receive it as dumped bytecode.
local function worker(host, port, ready)
  local cqueues = require "cqueues"
  local socket = require "cqueues.socket"
  local BUF = 64 * 1024
  local srv = assert(socket.listen { host = host, port = port, reuseaddr = true, reuseport = true })
  srv:listen() -- bind now, so the port is known and taken before we report
  if ready then
    ready(select(3, srv:localname()))
  end

  local cq = cqueues.new()
  local function echo(con)
    con:setmode("b", "bn") -- binary; output unbuffered: each write goes out
    while true do
      local chunk = con:xread(-BUF) -- whatever has arrived, up to BUF; nil at EOF
      if not chunk then
        break
      end
      if not con:xwrite(chunk, "bn") then
        break
      end
    end
    con:close()
  end
  cq:wrap(function()
    while true do
      local con, err = srv:accept { nodelay = true }
      if con then
        cq:wrap(echo, con)
      else
        -- E.g. EMFILE: report, back off briefly, keep serving.
        io.stderr:write("cqueues_echo: accept failed: ", tostring(err), "\n")
        cqueues.sleep(0.01)
      end
    end
  end)
  while true do
    local ok, err = cq:loop()
    if ok then
      break
    end
    io.stderr:write("cqueues_echo: ", tostring(err), "\n") -- one coroutine failed; keep serving the rest
  end
end

local bound
local threads = {}
local ok, err = pcall(worker, host, port, function(p)
  bound = tonumber(p)
  for i = 1, workers - 1 do
    threads[i] = assert(thread.start(function(_, h, p2, fn)
      return assert(load(fn))(h, tonumber(p2))
    end, host, tostring(bound), string.dump(worker)))
  end
  io.stdout:write(("listening on %s:%d\n"):format(host, bound))
  io.stdout:flush()
  io.stderr:write(("cqueues_echo: cqueues %s on %s, %d thread(s), SO_REUSEPORT sharding\n"):format(
    cqueues.VERSION, jit and jit.version or _VERSION, workers))
end)
if not ok then
  io.stderr:write("cqueues_echo: ", tostring(err), "\n")
  os.exit(1)
end
