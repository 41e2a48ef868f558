-- examples/tiles.lua: screen tiles streamed over TCP with moonport.buffer.
--
-- A sender cuts frames of a WIDTH x HEIGHT screen into TILE x TILE tiles,
-- packs each tile (header + pixel bytes) into a buffer with the typed writers
-- and sends the buffer with conn:write(buf) (zero-copy). A receiver appends
-- whatever arrives to its own buffer with conn:read_into(buf), decodes the
-- complete tiles with a reader, waits for more bytes when a read says
-- "short buffer" (the reader does not move), and drops decoded bytes with
-- reader:compact(). Both sides compute an Adler-32 of all pixel bytes; the
-- receiver checks tile count, byte count and checksum against the sender's
-- end record.
--
--   moonport run --workers 1 examples/tiles.lua          both sides in one process
--                                                         (mode "both"), exits when done
--   PORT=7002 moonport run --workers 1 examples/tiles.lua recv     receiver only
--   PORT=7002 moonport run examples/tiles.lua send                 sender only
--
-- Mode "both" prints one line on stdout and exits 0, or exits 1 with the
-- reason in the log on any mismatch; with the defaults the line is
--   tiles ok: 960 tiles, 10961892 pixel bytes, adler32 0xe889f63c
-- and the elapsed time and MB/s go to stderr.
--
-- Environment (defaults in brackets): PORT [0: any free port; recv mode
-- prints the port it got in the log line "listening on 127.0.0.1:PORT"],
-- HOST [127.0.0.1] for send, FRAMES [4], WIDTH [1280], HEIGHT [720],
-- TILE [64], SEED [1].
--
-- Wire format, big-endian (network order), one record per tile:
--
--   x u16 | y u16 | w u16 | h u16 | encoding u8 | payload length u32 | payload
--
--   encoding 0  raw:   w*h*4 bytes, RGBA row by row
--   encoding 1  solid: 4 bytes, one RGBA colour for the whole tile
--   encoding 255 end:  x = y = w = h = 0; 16 bytes: tile count u32,
--                      pixel bytes u64, Adler-32 u32 of all payloads in order
local moonport = require("moonport")
local buffer = moonport.buffer

local RAW, SOLID, END = 0, 1, 255
local HEADER = 13 -- bytes before the payload
local BATCH = 64 * 1024 -- the sender writes once this many bytes are packed
local READ_MAX = 256 * 1024 -- most bytes one conn:read_into appends

local function env_int(name, default, min, max)
  local v = os.getenv(name)
  if v == nil or v == "" then return default end
  local n = tonumber(v)
  if not n or n % 1 ~= 0 or n < min or n > max then
    error(string.format("tiles: %s must be an integer in %d..%d (got %q)", name, min, max, v), 0)
  end
  return n
end

local mode = arg[1] or "both"
if mode ~= "both" and mode ~= "send" and mode ~= "recv" then
  error("tiles: mode must be both, send or recv (got " .. tostring(mode) .. ")", 0)
end
local PORT = env_int("PORT", 0, 0, 65535)
local HOST = os.getenv("HOST") or "127.0.0.1"
local FRAMES = env_int("FRAMES", 4, 1, 1000000)
local WIDTH = env_int("WIDTH", 1280, 1, 65535)
local HEIGHT = env_int("HEIGHT", 720, 1, 65535)
local TILE = env_int("TILE", 64, 1, 1024)
local SEED = env_int("SEED", 1, 1, 2147483646)

-- Adler-32 over a string, continuing from the sums a and b (start: 1, 0).
-- Only + and %: the same code runs on LuaJIT (doubles) and Lua 5.4 (integers).
local byte = string.byte
local function adler(a, b, s)
  local n = #s
  local i = 1
  while i <= n do
    local stop = i + 5551 -- zlib's NMAX: the sums stay small between reductions
    if stop > n then stop = n end
    local j = i
    for k = i, stop - 7, 8 do
      local c1, c2, c3, c4, c5, c6, c7, c8 = byte(s, k, k + 7)
      a = a + c1; b = b + a
      a = a + c2; b = b + a
      a = a + c3; b = b + a
      a = a + c4; b = b + a
      a = a + c5; b = b + a
      a = a + c6; b = b + a
      a = a + c7; b = b + a
      a = a + c8; b = b + a
      j = k + 8
    end
    for k = j, stop do
      a = a + byte(s, k); b = b + a
    end
    a = a % 65521
    b = b % 65521
    i = stop + 1
  end
  return a, b
end

local function hex32(a, b)
  return string.format("0x%08x", b * 65536 + a)
end

-- Sender -------------------------------------------------------------------

-- Park-Miller minimal standard generator: exact in doubles and in integers.
local seed = SEED
local function rand(n)
  seed = (seed * 16807) % 2147483647
  return seed % n
end

local unpack = table.unpack or unpack
local VARIANTS = 4
local pool = {} -- raw pixels for a tile size: pool[w * 65536 + h][variant]

-- A few patterns per tile size, made once: gradients with a variant's tint.
local function raw_pixels(w, h, v)
  local key = w * 65536 + h
  local sizes = pool[key]
  if not sizes then
    sizes = {}
    pool[key] = sizes
  end
  local px = sizes[v]
  if px then return px end
  local rows, row = {}, {}
  for y = 0, h - 1 do
    for x = 0, w - 1 do
      row[x * 4 + 1] = (x * 4 + v * 53) % 256
      row[x * 4 + 2] = (y * 3 + v * 17) % 256
      row[x * 4 + 3] = (x * y + v) % 256
      row[x * 4 + 4] = 255
    end
    rows[y + 1] = string.char(unpack(row, 1, w * 4))
  end
  px = table.concat(rows)
  sizes[v] = px
  return px
end

local solids = {}
for i = 1, 16 do
  solids[i] = string.char((i * 40) % 256, (i * 90) % 256, (i * 15) % 256, 255)
end

-- Sends FRAMES frames and the end record; returns count, bytes, a, b.
local function send(conn)
  local out = buffer.new(BATCH + HEADER + TILE * TILE * 4)
  local count, bytes, a, b = 0, 0, 1, 0
  local function flush()
    local n, err = conn:write(out)
    if not n then error("tiles: send failed: " .. err, 0) end
    out:clear()
  end
  for _ = 1, FRAMES do
    for y = 0, HEIGHT - 1, TILE do
      local h = math.min(TILE, HEIGHT - y)
      for x = 0, WIDTH - 1, TILE do
        local w = math.min(TILE, WIDTH - x)
        local enc, px
        if rand(4) == 0 then
          enc, px = SOLID, solids[rand(#solids) + 1]
        else
          enc, px = RAW, raw_pixels(w, h, rand(VARIANTS) + 1)
        end
        out:write_u16(x):write_u16(y):write_u16(w):write_u16(h)
        out:write_u8(enc):write_u32(#px):write_string(px)
        a, b = adler(a, b, px)
        count = count + 1
        bytes = bytes + #px
        if #out >= BATCH then flush() end
      end
    end
  end
  out:write_u16(0):write_u16(0):write_u16(0):write_u16(0):write_u8(END):write_u32(16)
  out:write_u32(count):write_u64(bytes):write_u32(b * 65536 + a)
  flush()
  return count, bytes, a, b
end

-- Receiver -----------------------------------------------------------------

local function check_header(x, y, w, h, enc, len)
  if enc == RAW then
    if w == 0 or h == 0 or len ~= w * h * 4 then
      error(string.format("tiles: raw tile %dx%d at %d,%d has %d payload bytes", w, h, x, y, len), 0)
    end
  elseif enc == SOLID then
    if len ~= 4 then error("tiles: solid tile with " .. len .. " payload bytes", 0) end
  elseif enc == END then
    if len ~= 16 then error("tiles: end record with " .. len .. " payload bytes", 0) end
  else
    error("tiles: unknown encoding " .. enc, 0)
  end
end

-- Decodes tiles until the end record; returns count, bytes, a, b after
-- checking them against it.
local function receive(conn)
  local inbuf = buffer.new(READ_MAX, 16 * 1024 * 1024)
  local r = buffer.reader(inbuf)
  local count, bytes, a, b = 0, 0, 1, 0
  local x, y, w, h, enc, len -- header of a tile whose payload is still arriving
  while true do
    -- Decode every complete tile in the buffer.
    while true do
      if not len then
        if r:remaining() < HEADER then break end
        x, y, w, h = r:read_u16(), r:read_u16(), r:read_u16(), r:read_u16()
        enc, len = r:read_u8(), r:read_u32()
        check_header(x, y, w, h, enc, len)
      end
      local px, err = r:read_bytes(len)
      if not px then
        -- Only part of the payload is here; the reader stays at its start.
        assert(err == "short buffer", err)
        break
      end
      if enc == END then
        local pr = buffer.reader(buffer.from(px))
        local want_count, want_bytes, want_adler = pr:read_u32(), pr:read_u64(), pr:read_u32()
        local got = b * 65536 + a
        if want_count ~= count or want_bytes ~= bytes or want_adler ~= got then
          error(string.format("tiles: mismatch: sender %d tiles, %d bytes, adler32 0x%08x; "
            .. "receiver %d tiles, %d bytes, adler32 0x%08x",
            want_count, want_bytes, want_adler, count, bytes, got), 0)
        end
        if r:remaining() ~= 0 then error("tiles: " .. r:remaining() .. " bytes after the end record", 0) end
        return count, bytes, a, b
      end
      a, b = adler(a, b, px)
      count = count + 1
      bytes = bytes + len
      len = nil
    end
    r:compact() -- drop the decoded bytes; the reader is at 0 again
    local n, err = conn:read_into(inbuf, READ_MAX)
    if not n then
      error(string.format("tiles: connection %s after %d tiles (%d bytes buffered)", err, count, #inbuf), 0)
    end
  end
end

-- Modes --------------------------------------------------------------------

local t0 -- start of the transfer, for the MB/s on stderr

local function report(count, bytes, a, b)
  print(string.format("tiles ok: %d tiles, %d pixel bytes, adler32 %s", count, bytes, hex32(a, b)))
  local secs = moonport.now() - t0
  io.stderr:write(string.format("tiles: %.3f s, %.1f MB/s of pixel bytes\n", secs, bytes / 1e6 / secs))
end

if mode == "send" then
  if PORT == 0 then error("tiles: send needs PORT, the receiver's port", 0) end
  t0 = moonport.now()
  local conn, err = moonport.tcp.connect(HOST, PORT)
  if not conn then error("tiles: connect to " .. HOST .. ":" .. PORT .. ": " .. err, 0) end
  conn:set_timeouts(nil, 30, 30)
  local count, bytes, a, b = send(conn)
  conn:close()
  io.stderr:write(string.format("tiles: sent %d tiles, %d pixel bytes, adler32 %s\n", count, bytes, hex32(a, b)))
  return
end

-- recv and both: one receiving connection, on worker 1 only (other workers
-- started by --workers N have nothing to do and end at once).
if moonport.worker_id() ~= 1 then return end

local result -- { ok, count, bytes, a, b } or { false, message }
local listener
listener = assert(moonport.tcp.listen({ host = "127.0.0.1", port = PORT, read_buffer = 65536 }, function(conn)
  listener:close() -- one stream per run
  t0 = t0 or moonport.now()
  conn:set_timeouts(nil, 30, 30)
  result = { pcall(receive, conn) }
end))

local sent
if mode == "both" then
  t0 = moonport.now()
  local conn, err = moonport.tcp.connect("127.0.0.1", listener:port())
  if not conn then error("tiles: connect: " .. err, 0) end
  conn:set_timeouts(nil, 30, 30)
  sent = { pcall(send, conn) }
  conn:close()
  if not sent[1] and not result then
    -- The receiver may know better why sending failed; give it a moment.
    local deadline = moonport.now() + 1
    while not result and moonport.now() < deadline do moonport.sleep(0.01) end
    if not result then error(sent[2], 0) end
  end
end

while not result do moonport.sleep(0.005) end
if not result[1] then error(result[2], 0) end
if sent then
  if not sent[1] then error(sent[2], 0) end
  for i = 2, 5 do
    if sent[i] ~= result[i] then
      error(string.format("tiles: sender and receiver disagree: %s vs %s", tostring(sent[i]), tostring(result[i])), 0)
    end
  end
end
report(result[2], result[3], result[4], result[5])
