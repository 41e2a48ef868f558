-- bench/screencast_viewers.lua: many simulated viewers of a screen, for
-- bench/screencast. They decode no pixels; they count what arrives.
--
--   moonport run --lua-path examples/screencast bench/screencast_viewers.lua \
--       MODE URL VIEWERS SECONDS
--
-- MODE "screencast": URL is examples/screencast's /ws. Each viewer asks for a
-- keyframe, then checks every frame's sequence number (a gap means frames
-- were dropped for it: it asks for a keyframe again) and measures the lag
-- from the frame's capture time to its arrival.
-- MODE "vnc": URL is a websockify (or moonport vnc_bridge) WebSocket. Each
-- viewer speaks RFB through it (rfb.lua over the WebSocket), asks for ZRLE
-- (x11vnc compresses for every client, as for a real noVNC) and keeps
-- asking for updates, as noVNC does.
--
-- Prints one JSON line: viewers connected, updates per second (mean and
-- slowest viewer), MB/s received in total, gaps, keyframes, lag p50/p99.
local moonport = require("moonport")
local mode, url, viewers, seconds = arg[1], arg[2], tonumber(arg[3]), tonumber(arg[4])
assert(mode == "screencast" or mode == "vnc", "usage: screencast_viewers.lua screencast|vnc URL VIEWERS SECONDS")
assert(url and viewers and seconds, "usage: screencast_viewers.lua screencast|vnc URL VIEWERS SECONDS")
local rfb = mode == "vnc" and require("rfb")

local stats = { connected = 0, failed = 0, updates = {}, bytes = 0, gaps = 0, keyframes = 0, lags = {} }
local running = viewers

-- A WebSocket that reads like a TCP connection, for rfb.lua.
local function stream(ws)
  local buf = moonport.buffer.new(65536, 64 * 1024 * 1024)
  local reader = moonport.buffer.reader(buf)
  return {
    read_exact = function(_, n)
      while reader:remaining() < n do
        local data, kind = ws:recv()
        if not data or kind == "close" then return nil, "closed" end
        stats.bytes = stats.bytes + #data
        reader:compact()
        buf:append(data)
      end
      return reader:read_bytes(n)
    end,
    write = function(_, data) return ws:send_binary(data) end,
    close = function() return ws:close() end,
  }
end

local function screencast_viewer(i, ws)
  local last, count = nil, 0
  ws:send_text("key")
  while true do
    local data, kind = ws:recv()
    if not data or kind == "close" then break end
    stats.bytes = stats.bytes + #data
    local r = moonport.buffer.reader(moonport.buffer.from(data:sub(1, 13)))
    local k, seq, captured = r:read_u8(), r:read_u32_le(), r:read_f64_le()
    if k == 2 then
      stats.keyframes = stats.keyframes + 1
      last = seq
    elseif last then
      count = count + 1
      stats.lags[#stats.lags + 1] = moonport.time() - captured
      if seq ~= last + 1 then
        stats.gaps = stats.gaps + 1
        ws:send_text("key")
      end
      last = seq
    end
    stats.updates[i] = count
  end
end

local function vnc_viewer(i, ws)
  local vnc = rfb.open(stream(ws), { encodings = { "zrle", "raw" } })
  if not vnc then return end
  local count = 0
  vnc:request(false)
  while vnc:update() do
    count = count + 1
    stats.updates[i] = count
    vnc:request(true)
  end
end

local started = moonport.now()
for i = 1, viewers do
  moonport.spawn(function()
    local ws, err = moonport.ws.connect(url, { protocols = mode == "vnc" and { "binary" } or nil, max_message = 64 * 1024 * 1024, timeout = 10 })
    if not ws then
      stats.failed = stats.failed + 1
      moonport.log.warn("viewer " .. i .. ": " .. err)
    else
      stats.connected = stats.connected + 1
      stats.updates[i] = 0
      -- Ends the viewer at the deadline: its pending recv sees the close.
      moonport.spawn(function()
        moonport.sleep(math.max(0, started + seconds - moonport.now()))
        ws:close()
      end)
      if mode == "vnc" then vnc_viewer(i, ws) else screencast_viewer(i, ws) end
    end
    running = running - 1
  end)
end
while running > 0 do moonport.sleep(0.1) end
local elapsed = math.min(moonport.now() - started, seconds)

local sum, slowest = 0, math.huge
for _, n in pairs(stats.updates) do
  sum = sum + n
  slowest = math.min(slowest, n)
end
table.sort(stats.lags)
local function pct(p)
  local n = #stats.lags
  if n == 0 then return moonport.json.null end
  return math.floor(stats.lags[math.max(1, math.ceil(n * p))] * 10000 + 0.5) / 10
end
local connected = math.max(stats.connected, 1)
print(moonport.json.encode({
  mode = mode, viewers = viewers, connected = stats.connected, failed = stats.failed,
  fps_mean = math.floor(sum / connected / elapsed * 10 + 0.5) / 10,
  fps_slowest = slowest == math.huge and 0 or math.floor(slowest / elapsed * 10 + 0.5) / 10,
  mb_per_s = math.floor(stats.bytes / elapsed / 1e5 + 0.5) / 10,
  gaps = stats.gaps, keyframes = stats.keyframes, lag_p50_ms = pct(0.5), lag_p99_ms = pct(0.99),
}))
