-- bench/soak.lua: the server of the soak benchmark (bench/soak, driven by
-- `moonport-bench soak`). A line protocol that walks the engine's paths a
-- long-running service walks: connections that come and go, rooms joined and
-- left, Lua errors in handlers and in tasks, timers, and hot reloads (the
-- module soak_version, which bench/soak rewrites before each reload, makes
-- every reload load new code).
--
--   ECHO text       -> text
--   VER             -> "v<version> g<generation>"
--   ERR             -> raises a Lua error: the connection ends unanswered
--   TERR            -> "OK"; a task spawned for it raises a Lua error
--   LATER ms text   -> text, written by a task after a timer of ms
--   SUB room n      -> "OK", then "MSG <data>" for the next n messages of the
--                      room (or "FAIL <err>"), then "DONE" (the room is left)
--   PUB room text   -> how many subscribers took the message
--   HOLD            -> "OK", then the handler sleeps an hour: only the drain
--                      of its generation (after the next reload) ends it
--
-- Usage: moonport run bench/soak.lua PORT
local version = require("soak_version")
local port = tonumber(arg[1]) or error("usage: soak.lua PORT")

local served = moonport.metrics.counter("soak_requests_total", "Requests the soak app served.", { "verb" })
local ticks = moonport.metrics.counter("soak_ticks_total", "Ticks of the soak app's timer task.")

-- How long a subscriber waits for each message.
local SUB_TIMEOUT = 5

local verbs = {}

function verbs.ECHO(conn, rest)
  return conn:write(rest .. "\n")
end

function verbs.VER(conn)
  return conn:write(("v%s g%d\n"):format(version.version, moonport.generation()))
end

function verbs.ERR()
  error("soak: deliberate error in a handler")
end

function verbs.TERR(conn)
  moonport.spawn(function()
    moonport.sleep(0.001)
    error("soak: deliberate error in a task")
  end)
  return conn:write("OK\n")
end

function verbs.LATER(conn, rest)
  local ms, text = rest:match("^(%d+) (.*)$")
  moonport.spawn(function()
    moonport.sleep(tonumber(ms) / 1000)
    conn:write(text .. "\n")
  end)
end

function verbs.SUB(conn, rest)
  local name, n = rest:match("^(%S+) (%d+)$")
  local sub = moonport.room(name):subscribe()
  conn:write("OK\n")
  for _ = 1, tonumber(n) do
    local msg, err = sub:recv(SUB_TIMEOUT)
    if not msg then
      sub:close()
      return conn:write("FAIL " .. err .. "\n")
    end
    conn:write("MSG " .. msg .. "\n")
  end
  sub:close()
  return conn:write("DONE\n")
end

function verbs.PUB(conn, rest)
  local name, text = rest:match("^(%S+) (.*)$")
  return conn:write(moonport.room(name):publish(text) .. "\n")
end

function verbs.HOLD(conn)
  conn:write("OK\n")
  moonport.sleep(3600)
end

moonport.tcp.listen({ host = "127.0.0.1", port = port }, function(conn)
  while true do
    local line = conn:read_line(4096)
    if not line then
      return
    end
    local verb, rest = line:match("^(%u+) ?(.*)$")
    local handler = verbs[verb]
    if not handler then
      conn:write("BAD\n")
    else
      served:inc(1, { verb })
      handler(conn, rest)
    end
  end
end)

-- A timer task per worker and generation: ticks until this generation is
-- replaced or the process stops, publishing into a room nobody may hear.
moonport.spawn(function()
  local heartbeat = moonport.room("soak-heartbeat")
  while not moonport.exiting() do
    moonport.sleep(0.5)
    ticks:inc()
    heartbeat:publish(("tick %d %d"):format(moonport.worker_id(), moonport.generation()))
  end
end)
