-- Lua-side tests of moonport.zlib and moonport.time.
local T = require("harness")
local zlib = moonport.zlib

T.test("round trips in every format and level", function()
  local text = string.rep("moonport screen tile ", 500) .. "\0\1\2\255"
  for _, format in ipairs({ "zlib", "gzip", "raw" }) do
    for _, level in ipairs({ 0, 1, 6, 9 }) do
      local z = zlib.compress(text, { format = format, level = level })
      T.eq(zlib.decompress(z, { format = format }), text, format .. " level " .. level)
      if level > 0 then T.truthy(#z < #text / 10, "compresses repetitive data") end
    end
  end
  T.eq(zlib.decompress(zlib.compress("")), "")
end)

T.test("the formats have their headers", function()
  local z = zlib.compress("abc")
  -- zlib: CMF 0x78, and the header's checksum makes it a multiple of 31.
  T.eq(z:byte(1), 0x78)
  T.eq((z:byte(1) * 256 + z:byte(2)) % 31, 0)
  local g = zlib.compress("abc", { format = "gzip" })
  T.eq(g:sub(1, 2), "\31\139")
end)

T.test("buffers in, strings out", function()
  local b = moonport.buffer.new():write_u32_le(7):append(string.rep("x", 1000))
  local z = zlib.compress(b, { level = 1 })
  T.eq(zlib.decompress(moonport.buffer.from(z)), b:tostring())
end)

T.test("inflating is bounded and corrupt input is an error value", function()
  local bomb = zlib.compress(string.rep("\0", 1000000), { level = 9 })
  T.truthy(#bomb < 2000, "a small input")
  local v, err = zlib.decompress(bomb, { max = 65536 })
  T.eq(v, nil)
  T.eq(err, "too large")
  T.eq(#zlib.decompress(bomb, { max = 1000000 }), 1000000)
  v, err = zlib.decompress("not deflate at all")
  T.eq(v, nil)
  T.truthy(err:find("^invalid compressed data"), err)
  -- A truncated stream is corrupt too, not a silent short result.
  local z = zlib.compress(string.rep("abcdefgh", 4096))
  v, err = zlib.decompress(z:sub(1, #z - 8))
  T.eq(v, nil)
  T.truthy(err:find("^invalid compressed data"), err)
end)

T.test("wrong arguments raise errors", function()
  T.raises("string expected", zlib.compress, {})
  T.raises("level", zlib.compress, "x", { level = 10 })
  T.raises("format", zlib.compress, "x", { format = "lz4" })
  T.raises("max", zlib.decompress, "x", { max = -1 })
end)

T.test("moonport.time is the wall clock", function()
  local t = moonport.time()
  T.truthy(t > 1.7e9 and t < 4e9, "seconds since 1970: " .. t)
  T.truthy(math.abs(t - os.time()) < 2, "agrees with os.time")
end)

T.done()
