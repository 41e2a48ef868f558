-- examples/screencast/server.lua: one screen, many viewers.
--
--   moonport run examples/screencast/server.lua [--port 8090] [--host 127.0.0.1]
--       [--vnc 127.0.0.1:5900] [--fps 30] [--tile 64] [--level 1] [--queue 8]
--
-- then open http://127.0.0.1:8090/ in any number of browsers.
--
-- Worker 1 captures the screen of a VNC server (x11vnc on an X display,
-- say) through rfb.lua, cuts it into tiles (screen.lua) and publishes, for
-- every screen update, one message with only the tiles that changed,
-- compressed with zlib (moonport.zlib; browsers inflate it natively with
-- DecompressionStream), to the room "screencast.frames". Every worker serves
-- the viewer page (web/) and WebSocket viewers on /ws; a viewer is attached
-- to the room, so frames go to it natively, the same bytes shared by all.
--
-- A new viewer starts with a keyframe (every tile): it sends the text "key",
-- which reaches the capture through the room "screencast.keys"; keyframes
-- are sent at most every 0.2 s, however many viewers ask. A viewer that
-- cannot keep up does not build a queue: when `--queue` frames wait for it
-- the room's keep_latest policy drops them all but the newest; the viewer
-- sees the gap in the sequence numbers, asks for a keyframe, and so skips
-- to the present.
--
-- Frames (little-endian): u8 kind (1 delta, 2 keyframe), u32 seq (a
-- keyframe carries the seq of the last delta it includes), f64 capture time
-- (seconds since 1970), u16 width, u16 height, u32 tile count, per tile
-- u16 x, y, w, h, then u32 length and that many bytes: zlib of every tile's
-- w*h R,G,B,X pixels, one after the other. One stream per frame, not per
-- tile: a browser inflates it in one call.
local moonport = require("moonport")
local rfb = require("rfb")
local Screen = require("screen")
local log = moonport.log

local opts = { host = "127.0.0.1", port = 8090, vnc = "127.0.0.1:5900", fps = 30, tile = 64, level = 1, queue = 8 }
local i = 1
while arg[i] do
  local flag, value = arg[i], arg[i + 1]
  local key = flag:match("^%-%-(%a+)$")
  if not key or opts[key] == nil or not value then error("usage: server.lua [--port N] [--host H] [--vnc HOST:PORT] [--fps N] [--tile N] [--level 0-9] [--queue N]; got " .. flag) end
  opts[key] = type(opts[key]) == "number" and (tonumber(value) or error(flag .. " expects a number, got " .. value)) or value
  i = i + 2
end
local vnc_host, vnc_port = opts.vnc:match("^(.+):(%d+)$")
if not vnc_host then error("--vnc expects HOST:PORT, got " .. opts.vnc) end
vnc_host, vnc_port = vnc_host:match("^%[(.*)%]$") or vnc_host, tonumber(vnc_port)

local FRAMES, KEYS = "screencast.frames", "screencast.keys"
local DELTA, KEYFRAME = 1, 2
local KEYFRAME_INTERVAL = 0.2

local web = arg[0]:match("^(.*)[/\\]") or "."
local files = moonport.http.static(web .. "/web")

local function pack(kind, seq, captured, screen, tiles)
  local pixels = {}
  local buf = moonport.buffer.new(21 + 8 * #tiles + 4)
  buf:write_u8(kind):write_u32_le(seq):write_f64_le(captured)
  buf:write_u16_le(screen.width):write_u16_le(screen.height):write_u32_le(#tiles)
  for i, t in ipairs(tiles) do
    buf:write_u16_le(t.x):write_u16_le(t.y):write_u16_le(t.w):write_u16_le(t.h)
    pixels[i] = t.pixels
  end
  return buf:write_lstring(moonport.zlib.compress(table.concat(pixels), { level = opts.level }), "u32le")
end

-- The capture, on worker 1: the screen, the seq of its last frame, and
-- the keyframe made of it (built on demand, kept until the next frame).
local current = { screen = nil, seq = 0, keyframe = nil }

local function advance(screen)
  current.screen, current.seq, current.keyframe = screen, current.seq + 1, nil
end

local function keyframe()
  local screen = current.screen
  if screen and not current.keyframe then
    current.keyframe = pack(KEYFRAME, current.seq, moonport.time(), screen, screen:all())
  end
  return current.keyframe
end

local function serve_keyframes(frames)
  local requests = moonport.room(KEYS):subscribe({ queue = 1, policy = "keep_latest" })
  local last = -KEYFRAME_INTERVAL
  while requests:recv() do
    local wait = last + KEYFRAME_INTERVAL - moonport.now()
    if wait > 0 then moonport.sleep(wait) end
    -- One keyframe answers every request made until now.
    while requests:recv(0.001) do end
    local frame = keyframe()
    if frame then frames:publish(frame) end
    last = moonport.now()
  end
end

-- Follows the VNC server's updates for as long as the connection lasts.
local function watch(vnc, frames)
  local screen = Screen.new(vnc.width, vnc.height, opts.tile)
  vnc:request(false)
  local first = true
  while true do
    local due = moonport.now() + 1 / opts.fps
    local rects, err = vnc:update()
    if not rects then return err end
    local captured = moonport.time()
    for _, r in ipairs(rects) do screen:apply(r) end
    local tiles = screen:changes()
    if first then
      -- A new connection may mean a new screen size: everyone starts over
      -- (a new seq, so that no viewer takes the keyframe as one it has).
      advance(screen)
      first = false
      frames:publish(keyframe())
    elseif #tiles > 0 then
      advance(screen)
      frames:publish(pack(DELTA, current.seq, captured, screen, tiles))
    end
    local wait = due - moonport.now()
    if wait > 0 then moonport.sleep(wait) end
    local ok, werr = vnc:request(true)
    if not ok then return werr end
  end
end

local function capture()
  local frames = moonport.room(FRAMES)
  moonport.spawn(serve_keyframes, frames)
  local backoff, said = 0.25, nil
  while not moonport.exiting() do
    local vnc, err = rfb.connect(vnc_host, vnc_port, { timeout = 5 })
    if vnc then
      log.info(("capturing %s: %dx%d %q, tiles of %d, at most %d fps"):format(opts.vnc, vnc.width, vnc.height, vnc.name, opts.tile, opts.fps))
      backoff, said = 0.25, nil
      local why = watch(vnc, frames)
      vnc:close()
      log.warn("capture of " .. opts.vnc .. " ended: " .. tostring(why))
    else
      -- Said once per kind of failure, not at every retry.
      if said ~= err then log.warn(("cannot capture %s: %s; retrying"):format(opts.vnc, err)) end
      said = err
      moonport.sleep(backoff)
      backoff = math.min(backoff * 2, 5)
    end
  end
end

local function viewer(req, res)
  local ws = moonport.ws.upgrade(req, res, { max_message = 1024 })
  if not ws then return end
  moonport.spawn(function()
    moonport.room(FRAMES):attach(ws, { policy = "keep_latest", queue = opts.queue })
  end)
  local keys, asked = moonport.room(KEYS), -1
  while true do
    local data, kind = ws:recv()
    if not data or kind == "close" then return end
    -- A viewer's requests are limited too: one per 0.25 s.
    if data == "key" and moonport.now() - asked >= 0.25 then
      keys:publish("key")
      asked = moonport.now()
    end
  end
end

moonport.http.listen({ host = opts.host, port = opts.port }, function(req, res)
  if req.path == "/ws" then return viewer(req, res) end
  return files(req, res)
end)

if moonport.worker_id() == 1 then moonport.spawn(capture) end
