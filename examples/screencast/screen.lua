-- screen.lua: a framebuffer cut into square tiles, that knows which tiles
-- changed. Rectangles of R, G, B, X pixels go in (from rfb.lua); out come
-- the tiles whose pixels differ from what was last sent.
--
-- The screen is kept as one Lua string per pixel row; a tile is cut from
-- the rows when something touched it and compared with its last version,
-- so a VNC server that re-sends unchanged pixels costs no bandwidth.
local M = {}
local Screen = {}
Screen.__index = Screen

function M.new(width, height, tile)
  local self = setmetatable({
    width = width, height = height, tile = tile,
    cols = math.ceil(width / tile), rows_of_tiles = math.ceil(height / tile),
    rows = {}, dirty = {}, sent = {},
  }, Screen)
  local black = string.rep("\0", width * 4)
  for y = 1, height do self.rows[y] = black end
  return self
end

-- Copies a rectangle's pixels in and marks the tiles it touches.
function Screen:apply(r)
  local stride, rows = r.w * 4, self.rows
  local left = r.x * 4
  local full = r.x == 0 and r.w == self.width
  for i = 0, r.h - 1 do
    local seg = r.pixels:sub(i * stride + 1, (i + 1) * stride)
    local y = r.y + i + 1
    if full then
      rows[y] = seg
    else
      local row = rows[y]
      rows[y] = row:sub(1, left) .. seg .. row:sub(left + stride + 1)
    end
  end
  local t = self.tile
  for ty = math.floor(r.y / t), math.floor((r.y + r.h - 1) / t) do
    for tx = math.floor(r.x / t), math.floor((r.x + r.w - 1) / t) do
      self.dirty[ty * self.cols + tx] = true
    end
  end
end

-- The tile's geometry: x, y, w, h in pixels.
function Screen:geometry(id)
  local t = self.tile
  local x, y = (id % self.cols) * t, math.floor(id / self.cols) * t
  return x, y, math.min(t, self.width - x), math.min(t, self.height - y)
end

local function cut(self, id)
  local x, y, w, h = self:geometry(id)
  local parts, from, to = {}, x * 4 + 1, (x + w) * 4
  for row = y + 1, y + h do parts[#parts + 1] = self.rows[row]:sub(from, to) end
  return table.concat(parts)
end

-- The tiles touched since the last call whose pixels changed, as an array
-- of { x, y, w, h, pixels } (w*h*4 bytes).
function Screen:changes()
  local ids = {}
  for id in pairs(self.dirty) do ids[#ids + 1] = id end
  table.sort(ids)
  self.dirty = {}
  local out = {}
  for _, id in ipairs(ids) do
    local pixels = cut(self, id)
    if pixels ~= self.sent[id] then
      self.sent[id] = pixels
      out[#out + 1] = self:tile_of(id)
    end
  end
  return out
end

-- Tile `id` as last returned by `changes`.
function Screen:tile_of(id)
  local x, y, w, h = self:geometry(id)
  return { x = x, y = y, w = w, h = h, pixels = self.sent[id] }
end

-- Every tile as last returned by `changes`, for a viewer that needs the
-- whole picture.
function Screen:all()
  local out = {}
  for id = 0, self.cols * self.rows_of_tiles - 1 do
    if self.sent[id] then out[#out + 1] = self:tile_of(id) end
  end
  return out
end

return M
