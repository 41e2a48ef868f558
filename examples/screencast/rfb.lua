-- rfb.lua: a small VNC (RFB 3.8, RFC 6143) client for moonport scripts:
-- enough to watch a screen. It asks the server for 32-bit pixels laid out as
-- R, G, B, X bytes (what a browser's ImageData wants, but for alpha) and
-- for the Raw encoding, so rectangles need no decoding at all. A client
-- that only counts updates may ask for ZRLE too (`encodings`): its
-- rectangles come back compressed, undecoded.
--
--   local rfb = require("rfb")
--   local vnc, err = rfb.connect("127.0.0.1", 5900, { timeout = 5 })
--   vnc:request(false)                -- the whole screen
--   local rects, err = vnc:update()   -- { {x=, y=, w=, h=, pixels=}, ... }
--   vnc:request(true)                 -- then only what changes
--
-- Errors are `nil, err`, as the rest of moonport's API: "refused",
-- "closed", "timeout", or "rfb: ..." for a server that breaks the protocol.
local moonport = require("moonport")

local M = {}
local Client = {}
Client.__index = Client

-- A screen larger than this is refused: the framebuffer is kept in memory.
local MAX_SIDE = 8192

local function u16(s, i) return s:byte(i) * 256 + s:byte(i + 1) end
local function u32(s, i) return ((s:byte(i) * 256 + s:byte(i + 1)) * 256 + s:byte(i + 2)) * 256 + s:byte(i + 3) end
local function be16(n) return string.char(math.floor(n / 256) % 256, n % 256) end
local function be32(n)
  if n < 0 then n = n + 4294967296 end
  return be16(math.floor(n / 65536)) .. be16(n % 65536)
end

local function read(self, n)
  local data, err = self.conn:read_exact(n)
  if not data then return nil, err end
  return data
end

local function skip(self, n)
  if n == 0 then return true end
  local data, err = read(self, n)
  if not data then return nil, err end
  return true
end

local function fail(self, why)
  self.conn:close()
  return nil, "rfb: " .. why
end

-- The version handshake, security "None", and the init messages.
local ENCODINGS = { raw = 0, zrle = 16 }

local function handshake(self, encodings)
  local version, err = read(self, 12)
  if not version then return nil, err end
  local major, minor = version:match("^RFB (%d%d%d)%.(%d%d%d)\n$")
  if major ~= "003" or tonumber(minor) < 3 then return fail(self, "not a VNC server") end
  minor = tonumber(minor) >= 8 and 8 or (tonumber(minor) >= 7 and 7 or 3)
  self.conn:write(("RFB 003.%03d\n"):format(minor))

  local security
  if minor == 3 then
    -- 3.3: the server decides and sends the type as a u32.
    local t, terr = read(self, 4)
    if not t then return nil, terr end
    security = u32(t, 1)
  else
    local count, cerr = read(self, 1)
    if not count then return nil, cerr end
    local types = count:byte() > 0 and read(self, count:byte()) or ""
    if not types then return nil, "closed" end
    if not types:find("\1", 1, true) then
      return fail(self, "the server wants authentication (only security type None is supported)")
    end
    security = 1
    self.conn:write("\1")
  end
  if security ~= 1 then return fail(self, "the server wants authentication") end
  if minor == 8 then
    local result, rerr = read(self, 4)
    if not result then return nil, rerr end
    if u32(result, 1) ~= 0 then return fail(self, "security handshake failed") end
  end

  self.conn:write("\1") -- ClientInit: share the desktop with other clients
  local init, ierr = read(self, 24)
  if not init then return nil, ierr end
  self.width, self.height = u16(init, 1), u16(init, 3)
  if self.width == 0 or self.height == 0 or self.width > MAX_SIDE or self.height > MAX_SIDE then
    return fail(self, ("unusable screen size %dx%d"):format(self.width, self.height))
  end
  local name_len = u32(init, 21)
  if name_len > 4096 then return fail(self, "desktop name too long") end
  self.name = name_len > 0 and read(self, name_len) or ""

  -- SetPixelFormat: 32 bpp, depth 24, little-endian, true colour, 8 bits
  -- per channel at shifts 0/8/16, so bytes in memory are R, G, B, X.
  self.conn:write("\0\0\0\0" .. string.char(32, 24, 0, 1) .. be16(255) .. be16(255) .. be16(255)
    .. string.char(0, 8, 16, 0, 0, 0))
  -- SetEncodings, in order of preference.
  local list = {}
  for i, name in ipairs(encodings) do
    list[i] = be32(ENCODINGS[name] or error("rfb: unknown encoding " .. tostring(name)))
  end
  self.conn:write("\2\0" .. be16(#list) .. table.concat(list))
  return self
end

-- Connects and handshakes. opts.timeout (default 10 s) bounds the connect
-- and each later read of a whole message.
function M.connect(host, port, opts)
  opts = opts or {}
  local timeout = opts.timeout or 10
  local conn, err = moonport.tcp.connect(host, port, { timeout = timeout, read_buffer = 256 * 1024 })
  if not conn then return nil, err end
  conn:set_timeouts(timeout, timeout, 0)
  conn:set_nodelay(true)
  return M.open(conn, opts)
end

-- Handshakes over `conn`: anything with read_exact(n), write(data) and
-- close() in moonport's style (a TCP connection, or a WebSocket wrapped to
-- look like one, as bench/screencast_viewers.lua does for websockify).
-- opts.encodings: names in order of preference, default { "raw" }.
function M.open(conn, opts)
  return handshake(setmetatable({ conn = conn }, Client), (opts or {}).encodings or { "raw" })
end

-- FramebufferUpdateRequest for the whole screen; `incremental` asks only for
-- what changed since the last update.
function Client:request(incremental)
  return self.conn:write(string.char(3, incremental and 1 or 0) .. be16(0) .. be16(0)
    .. be16(self.width) .. be16(self.height))
end

-- Waits for the next FramebufferUpdate (skipping bells, clipboard text and
-- colour maps) and returns its rectangles, each with `pixels`: w*h*4 bytes,
-- row after row (Raw), or with `zrle`: the rectangle's compressed data.
-- Waits as long as the screen does not change.
function Client:update()
  while true do
    local kind, err = read(self, 1)
    if not kind then return nil, err end
    kind = kind:byte()
    if kind == 0 then
      local head, herr = read(self, 3)
      if not head then return nil, herr end
      local rects = {}
      for i = 1, u16(head, 2) do
        local r, rerr = read(self, 12)
        if not r then return nil, rerr end
        local x, y, w, h, encoding = u16(r, 1), u16(r, 3), u16(r, 5), u16(r, 7), u32(r, 9)
        if x + w > self.width or y + h > self.height then
          return fail(self, ("rectangle %dx%d+%d+%d outside the screen"):format(w, h, x, y))
        end
        local rect = { x = x, y = y, w = w, h = h }
        if encoding == 0 then
          rect.pixels = ""
          if w > 0 and h > 0 then
            local perr
            rect.pixels, perr = read(self, w * h * 4)
            if not rect.pixels then return nil, perr end
          end
        elseif encoding == 16 then
          local len, lerr = read(self, 4)
          if not len then return nil, lerr end
          len = u32(len, 1)
          if len > w * h * 4 + 65536 then return fail(self, "ZRLE rectangle too long") end
          local data, derr = "", nil
          if len > 0 then data, derr = read(self, len) end
          if not data then return nil, derr end
          rect.zrle = data
        else
          return fail(self, ("unexpected encoding %d"):format(encoding))
        end
        rects[i] = rect
      end
      return rects
    elseif kind == 1 then -- SetColourMapEntries: not used with true colour
      local head, herr = read(self, 5)
      if not head then return nil, herr end
      local ok, serr = skip(self, u16(head, 4) * 6)
      if not ok then return nil, serr end
    elseif kind == 2 then -- Bell
    elseif kind == 3 then -- ServerCutText
      local head, herr = read(self, 7)
      if not head then return nil, herr end
      local len = u32(head, 4)
      if len > 1048576 then return fail(self, "clipboard text too long") end
      local ok, serr = skip(self, len)
      if not ok then return nil, serr end
    else
      return fail(self, ("unknown message type %d"):format(kind))
    end
  end
end

function Client:close()
  return self.conn:close()
end

return M
