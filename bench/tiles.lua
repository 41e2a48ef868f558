-- bench/tiles.lua: pack + send + unpack throughput of screen tiles, with
-- moonport.buffer ("buffer") against plain Lua string.pack/string.unpack
-- ("string"). Driven by bench/tiles; runs alone as
--
--   moonport run --workers 1 bench/tiles.lua
--
-- Each run streams tiles over one loopback TCP connection inside this process:
-- the main chunk packs and sends, a connection handler on the same worker
-- receives and decodes. Both variants put the same bytes on the wire:
--
--   x u16 | y u16 | w u16 | h u16 | encoding u8 | payload length u32 | payload
--
-- (big-endian; a header with encoding 255 and length 0 ends a run), in
-- batches of BATCH bytes per conn:write, and both receivers turn every
-- payload into a Lua string (buffer: reader:read_bytes; string: string.sub),
-- so the work is the same:
--
--   buffer  pack:   buf:write_u16(x)...:write_u8(enc):write_lstring(px, "u32"), conn:write(buf)
--           unpack: conn:read_into(buf), reader:read_u16()..., reader:read_bytes(len),
--                   "short buffer" -> wait for more, reader:compact()
--   string  pack:   string.pack(">I2I2I2I2I1I4", ...) and px into a table,
--                   conn:write(table.concat(parts))
--           unpack: conn:read(), pending .. data, string.unpack(">I2I2I2I2I1I4", s, pos),
--                   string.sub(s, p, p + len - 1)
--
-- MB/s counts wire bytes (headers + payloads) from the first pack to the last
-- decoded tile; sender and receiver share one core (one worker), so it is the
-- whole pipeline's cost per byte. MB/cpu-s divides by the process's CPU time
-- (os.clock) instead: steadier when other programs compete for the cores. Runs alternate the variants' order every
-- round (A B, B A, ...). `string` needs Lua 5.3+ (string.pack): under
-- LuaJIT only `buffer` runs.
--
-- Environment (defaults in brackets):
--   SIZES ["8 16 64"]  tile edges in pixels; a tile is raw RGBA, edge*edge*4 bytes
--   MB [32]            megabytes on the wire per run
--   ROUNDS [5]         rounds per size (each runs every variant once)
--   VARIANTS [buffer string]  which variants (string is skipped without string.pack)
--   BATCH [65536]      bytes packed per conn:write
--   SLICE [0]          1: the buffer receiver takes payloads as zero-copy
--                      reader:read_slice() views instead of read_bytes() strings
local moonport = require("moonport")
local buffer = moonport.buffer

local HEADER = 13
local END = 255
local READ_MAX = 256 * 1024

local function env(name, default)
  local v = os.getenv(name)
  if v == nil or v == "" then return default end
  return v
end
local function env_int(name, default)
  local v = tonumber(env(name, tostring(default)))
  if not v or v < 1 or v % 1 ~= 0 then error("bench/tiles: " .. name .. " must be a positive integer", 0) end
  return v
end

local MB = env_int("MB", 32)
local ROUNDS = env_int("ROUNDS", 5)
local BATCH = env_int("BATCH", 65536)
local SLICE = env("SLICE", "0") == "1"
local SIZES = {}
for s in env("SIZES", "8 16 64"):gmatch("%d+") do
  local n = tonumber(s)
  if n < 1 or n > 1024 then error("bench/tiles: tile edges must be 1..1024", 0) end
  SIZES[#SIZES + 1] = n
end
local HAVE_PACK = string.pack ~= nil
local VARIANTS = {}
for v in env("VARIANTS", "buffer string"):gmatch("%S+") do
  if v ~= "buffer" and v ~= "string" then error("bench/tiles: unknown variant " .. v, 0) end
  if v == "buffer" or HAVE_PACK then VARIANTS[#VARIANTS + 1] = v end
end
assert(#VARIANTS > 0, "bench/tiles: no variant to run")

local VM = jit and jit.version or _VERSION
if moonport.worker_id() ~= 1 then return end

local byte, ssub, concat = string.byte, string.sub, table.concat
local spack, sunpack = string.pack, string.unpack

-- The tiles of one run: a pattern of PATTERN tiles repeated. Payloads come
-- from a few prepared strings so that making pixels is not measured.
local PATTERN = 1024
local function workload(edge)
  local seed = 12345
  local function rand(n)
    seed = (seed * 16807) % 2147483647
    return seed % n
  end
  local pool = {}
  for v = 1, 4 do
    local t = {}
    for i = 1, edge * edge * 4 do t[i] = string.char(rand(256)) end
    pool[v] = concat(t)
  end
  local w = { n = PATTERN, xs = {}, ys = {}, ws = {}, hs = {}, pxs = {}, last = {} }
  for i = 1, PATTERN do
    local cell = i - 1
    w.xs[i] = (cell * edge) % 1280
    w.ys[i] = (math.floor(cell * edge / 1280) * edge) % 65536
    w.ws[i], w.hs[i] = edge, edge
    local px = pool[rand(4) + 1]
    w.pxs[i] = px
    w.last[i] = byte(px, #px)
  end
  local per = HEADER + edge * edge * 4
  w.tiles = math.ceil(MB * 1e6 / per)
  w.wire = w.tiles * per + HEADER
  -- What the receiver must add up: sum of x + y + w + h + len + last byte.
  local check = 0
  for k = 1, w.tiles do
    local i = (k - 1) % PATTERN + 1
    check = check + w.xs[i] + w.ys[i] + w.ws[i] + w.hs[i] + #w.pxs[i] + w.last[i]
  end
  w.check = check
  return w
end

-- Senders ------------------------------------------------------------------

local send = {}

function send.buffer(conn, w)
  local out = buffer.new(BATCH + HEADER + #w.pxs[1])
  local xs, ys, ws, hs, pxs, n = w.xs, w.ys, w.ws, w.hs, w.pxs, w.n
  local i = 0
  for _ = 1, w.tiles do
    i = i + 1
    if i > n then i = 1 end
    local px = pxs[i]
    out:write_u16(xs[i]):write_u16(ys[i]):write_u16(ws[i]):write_u16(hs[i])
    out:write_u8(0):write_lstring(px, "u32")
    if #out >= BATCH then
      assert(conn:write(out))
      out:clear()
    end
  end
  out:write_u16(0):write_u16(0):write_u16(0):write_u16(0):write_u8(END):write_u32(0)
  assert(conn:write(out))
end

function send.string(conn, w)
  local xs, ys, ws, hs, pxs, n = w.xs, w.ys, w.ws, w.hs, w.pxs, w.n
  local parts, np, size = {}, 0, 0
  local i = 0
  for _ = 1, w.tiles do
    i = i + 1
    if i > n then i = 1 end
    local px = pxs[i]
    parts[np + 1] = spack(">I2I2I2I2I1I4", xs[i], ys[i], ws[i], hs[i], 0, #px)
    parts[np + 2] = px
    np = np + 2
    size = size + HEADER + #px
    if size >= BATCH then
      assert(conn:write(concat(parts, "", 1, np)))
      np, size = 0, 0
    end
  end
  parts[np + 1] = spack(">I2I2I2I2I1I4", 0, 0, 0, 0, END, 0)
  assert(conn:write(concat(parts, "", 1, np + 1)))
end

-- Receivers: return tile count, payload bytes and the check sum -------------

local recv = {}

function recv.buffer(conn)
  local inbuf = buffer.new(2 * READ_MAX, 64 * 1024 * 1024)
  local r = buffer.reader(inbuf)
  local read_payload = SLICE and r.read_slice or r.read_bytes
  local count, bytes, check = 0, 0, 0
  local x, y, w, h, enc, len
  while true do
    while true do
      if not len then
        if r:remaining() < HEADER then break end
        x, y, w, h = r:read_u16(), r:read_u16(), r:read_u16(), r:read_u16()
        enc, len = r:read_u8(), r:read_u32()
        if enc == END then return count, bytes, check end
      end
      local px = read_payload(r, len)
      if not px then break end -- "short buffer": the rest has not arrived
      count = count + 1
      bytes = bytes + len
      check = check + x + y + w + h + len + px:byte(len)
      len = nil
    end
    r:compact()
    assert(conn:read_into(inbuf, READ_MAX))
  end
end

function recv.string(conn)
  local count, bytes, check = 0, 0, 0
  local pending, pos = "", 1
  while true do
    local n = #pending
    while n - pos + 1 >= HEADER do
      local x, y, w, h, enc, len, p = sunpack(">I2I2I2I2I1I4", pending, pos)
      if enc == END then return count, bytes, check end
      local stop = p + len - 1
      if stop > n then break end -- the rest has not arrived
      local px = ssub(pending, p, stop)
      count = count + 1
      bytes = bytes + len
      check = check + x + y + w + h + len + byte(px, len)
      pos = stop + 1
    end
    local data = assert(conn:read(READ_MAX))
    if pos > n then
      pending = data
    else
      pending = ssub(pending, pos) .. data
    end
    pos = 1
  end
end

-- Runs ---------------------------------------------------------------------

local done -- { count, bytes, check, t_end } from the handler
local listener = assert(moonport.tcp.listen({ host = "127.0.0.1", port = 0, read_buffer = READ_MAX }, function(conn)
  local variant = conn:read_exact(1) == "b" and "buffer" or "string"
  local ok, count, bytes, check = pcall(recv[variant], conn)
  done = { ok, count, bytes, check, moonport.now(), os.clock() }
end))

local function run(variant, w)
  collectgarbage()
  collectgarbage()
  done = nil
  local conn = assert(moonport.tcp.connect("127.0.0.1", listener:port()))
  conn:write(variant == "buffer" and "b" or "s")
  local t0, c0 = moonport.now(), os.clock()
  send[variant](conn, w)
  while not done do moonport.sleep(0.001) end
  conn:close()
  local ok, count, bytes, check, t1, c1 = done[1], done[2], done[3], done[4], done[5], done[6]
  if not ok then error("bench/tiles: " .. variant .. " receiver failed: " .. tostring(count), 0) end
  if count ~= w.tiles or check ~= w.check then
    error(string.format("bench/tiles: %s: got %d tiles, check %d; want %d, %d", variant, count, check, w.tiles, w.check), 0)
  end
  local secs = t1 - t0
  return w.wire / 1e6 / secs, w.tiles / secs, w.wire / 1e6 / (c1 - c0)
end

local function median(t)
  local s = {}
  for i, v in ipairs(t) do s[i] = v end
  table.sort(s)
  local n = #s
  if n % 2 == 1 then return s[(n + 1) / 2] end
  return (s[n / 2] + s[n / 2 + 1]) / 2
end

print(string.format("vm: %s", VM))
print(string.format("tiles: %s px edges, %d MB per run, %d round(s), batch %d B, buffer payloads as %s",
  table.concat(SIZES, "/"), MB, ROUNDS, BATCH, SLICE and "slices" or "strings"))
print(string.format("%-6s %-5s %-7s %10s %12s %12s", "edge", "round", "variant", "MB/s", "tiles/s", "MB/cpu-s"))
local summary = {}
for _, edge in ipairs(SIZES) do
  local w = workload(edge)
  local rates, cpu = {}, {}
  for _, v in ipairs(VARIANTS) do rates[v], cpu[v] = {}, {} end
  for round = 1, ROUNDS do
    local order = {}
    for i, v in ipairs(VARIANTS) do order[i] = v end
    if round % 2 == 0 then
      for i = 1, math.floor(#order / 2) do
        local j = #order - i + 1
        order[i], order[j] = order[j], order[i]
      end
    end
    for _, v in ipairs(order) do
      local mbps, tps, cpus = run(v, w)
      rates[v][#rates[v] + 1] = mbps
      cpu[v][#cpu[v] + 1] = cpus
      print(string.format("%-6d %-5d %-7s %10.1f %12.0f %12.1f", edge, round, v, mbps, tps, cpus))
    end
  end
  summary[#summary + 1] = { edge = edge, rates = rates, cpu = cpu }
end

print()
for _, s in ipairs(summary) do
  local line = string.format("median edge %-4d", s.edge)
  for _, v in ipairs(VARIANTS) do
    line = line .. string.format("  %s %.1f MB/s", v, median(s.rates[v]))
  end
  if s.rates.buffer and s.rates.string then
    line = line .. string.format("  ratio buffer/string %.2f", median(s.rates.buffer) / median(s.rates.string))
  end
  print(line)
  line = string.format("cpu    edge %-4d", s.edge)
  for _, v in ipairs(VARIANTS) do
    line = line .. string.format("  %s %.1f MB/cpu-s", v, median(s.cpu[v]))
  end
  if s.cpu.buffer and s.cpu.string then
    line = line .. string.format("  ratio buffer/string %.2f", median(s.cpu.buffer) / median(s.cpu.string))
  end
  print(line)
end
listener:close()
