-- examples/vnc_bridge.lua: a VNC desktop in the browser — a websockify-
-- compatible bridge that also serves the noVNC web client.
--
--   moonport run examples/vnc_bridge.lua [--port 6080] [--host 127.0.0.1]
--       [--web /usr/share/novnc] [--target NAME=HOST:PORT]... [--token-file PATH]
--       [--allow HOST:PORT]...
--
-- then open http://127.0.0.1:6080/vnc.html?autoconnect=1&path=websockify%3Ftoken%3DNAME
--
-- Plain HTTP requests get the noVNC files from --web (Debian's `novnc`
-- package puts them in /usr/share/novnc). /websockify becomes a WebSocket
-- (subprotocol "binary", as websockify offers, or none, as noVNC 1.3 asks)
-- and moonport.ws.bridge pumps it to and from the VNC server over TCP inside
-- Rust: no Lua runs per message.
--
-- Which VNC server a browser reaches is decided by a token, as websockify's
-- token plugins do: ?token=NAME or /websockify/NAME; no token means
-- "default". `lookup` maps it to host, port from the --target flags or a
-- token file in websockify's format ("NAME: HOST:PORT" lines, re-read for
-- every connection, so it can be edited while running). Whatever lookup
-- returns, only targets on the allow-list (the --target ones and --allow)
-- are ever dialled. An unknown token or a target not allowed is answered
-- 403 before the upgrade; a target that does not answer closes the
-- WebSocket with 1011. Without --target: default=127.0.0.1:5900.
local moonport = require("moonport")
local log = moonport.log

local opts = { host = "127.0.0.1", port = 6080, web = "/usr/share/novnc" }
local targets, allowed = {}, {}
local i = 1
while arg[i] do
  local flag, value = arg[i], arg[i + 1]
  if not value then error("usage: vnc_bridge.lua [--flag value]...: " .. flag .. " needs a value") end
  if flag == "--target" then
    local name, host, port = value:match("^([^=]+)=(.+):(%d+)$")
    if not name then error("--target expects NAME=HOST:PORT, got " .. value) end
    targets[name] = { host = host, port = tonumber(port) }
    allowed[host .. ":" .. port] = true
  elseif flag == "--allow" then
    allowed[value] = true
  elseif flag == "--port" then
    opts.port = tonumber(value) or error("--port expects a number, got " .. value)
  elseif flag == "--host" or flag == "--web" or flag == "--token-file" then
    opts[flag:sub(3)] = value
  else
    error("unknown flag " .. flag)
  end
  i = i + 2
end
if next(targets) == nil and not opts["token-file"] then
  targets.default = { host = "127.0.0.1", port = 5900 }
  allowed["127.0.0.1:5900"] = true
end

-- The token plugin: token -> host, port (nil when unknown). Replace it with
-- whatever knows your desktops (a database, a signed token, ...).
local function lookup(token)
  local t = targets[token]
  if t then return t.host, t.port end
  local path = opts["token-file"]
  local file = path and io.open(path)
  if not file then return nil end
  for line in file:lines() do
    local name, host, port = line:match("^%s*([^:#%s]+)%s*:%s*(%S+):(%d+)%s*$")
    if name == token then
      file:close()
      return host, tonumber(port)
    end
  end
  file:close()
end

local files = moonport.http.static(opts.web)

local function refuse(res, status, why)
  res.status = status
  res:header("Content-Type", "text/plain; charset=utf-8")
  res:send(why .. "\n")
end

moonport.http.listen({ host = opts.host, port = opts.port }, function(req, res)
  if req.path == "/" then
    res.status = 302
    res:header("Location", "/vnc.html")
    return res:send()
  end
  local name = req.path:match("^/websockify/?([^/]*)$")
  if not name then return files(req, res) end

  local query = req.query and moonport.url.parse_query(req.query) or {}
  local token = query.token or (name ~= "" and moonport.url.unescape(name)) or "default"
  local host, port
  if type(token) == "string" then host, port = lookup(token) end
  if not host then return refuse(res, 403, "unknown token") end
  local target = host .. ":" .. port
  if not allowed[target] then
    log.warn(("token %s names %s, which is not on the allow-list"):format(token, target))
    return refuse(res, 403, "target not allowed")
  end

  local ws, err = moonport.ws.upgrade(req, res, { protocols = { "binary" } })
  if not ws then return log.info("upgrade refused:", err) end
  -- Big reads: a screen update is often hundreds of kilobytes.
  local conn, cerr = moonport.tcp.connect(host, port, { timeout = 5, read_buffer = 256 * 1024 })
  if not conn then
    log.warn(("cannot reach %s: %s"):format(target, cerr))
    ws:close(1011, "target unavailable")
    return
  end
  local ip, from = ws:peer()
  local who = ("%s:%s -> %s (token %s)"):format(tostring(ip), tostring(from), target, token)
  log.info(who)
  local up, down, why, code = moonport.ws.bridge(ws, conn)
  log.info(("%s ended: %s%s; %d bytes up, %d down"):format(who, why, code and " " .. code or "", up, down))
end)
