-- bench/tls.lua: what TLS costs moonport, plain and TLS side by side in one
-- run (driven by bench/tls, which makes the certificates).
--
--   moonport run bench/tls.lua server CERT KEY            echo servers on 7720 (plain) and 7721 (TLS)
--   moonport run bench/tls.lua client CA MODE CONNS SECS   load against both, alternating
--
-- MODE: "pingpong" (64-byte messages, one in flight per connection),
-- "stream" (64 KiB writes echoed back, bytes/s), or "handshake" (connect,
-- one 64-byte exchange, close: connections/s).
local moonport = require("moonport")
local tcp = moonport.tcp
local role = arg[1]

if role == "server" then
  local function echo(c)
    while true do
      local data = c:read(65536)
      if not data or not c:write(data) then return end
    end
  end
  assert(tcp.listen({ host = "127.0.0.1", port = 7720 }, echo))
  assert(tcp.listen({ host = "127.0.0.1", port = 7721, tls = { cert = arg[2], key = arg[3] } }, echo))
  return
end

local ca, mode, conns, secs = arg[2], arg[3], tonumber(arg[4]), tonumber(arg[5])
local function connect(port)
  return tcp.connect("localhost", port, port == 7721 and { tls = { ca = ca } } or nil)
end

-- Runs `conns` coroutines of `work(port, deadline)` and returns the sum of what they counted.
local function load(port, work)
  local deadline = moonport.now() + secs
  local done, total = moonport.channel(conns), 0
  for _ = 1, conns do
    moonport.spawn(function() done:send(work(port, deadline)) end)
  end
  for _ = 1, conns do total = total + done:recv() end
  return total
end

local msg = string.rep("m", 64)
local works = {
  pingpong = function(port, deadline)
    local c, n = assert(connect(port)), 0
    while moonport.now() < deadline do
      c:write(msg)
      assert(c:read_exact(64))
      n = n + 1
    end
    c:close()
    return n
  end,
  stream = function(port, deadline)
    local c, n = assert(connect(port)), 0
    local chunk = string.rep("s", 65536)
    moonport.spawn(function()
      while moonport.now() < deadline do
        if not c:write(chunk) then return end
      end
      c:shutdown("write")
    end)
    while true do
      local data = c:read(1048576)
      if not data then break end
      n = n + #data
    end
    c:close()
    return n
  end,
  handshake = function(port, deadline)
    local n = 0
    while moonport.now() < deadline do
      local c = assert(connect(port))
      c:write(msg)
      assert(c:read_exact(64))
      c:close()
      n = n + 1
    end
    return n
  end,
}
local work = assert(works[mode], "MODE must be pingpong, stream or handshake")
local plain = load(7720, work)
local tls = load(7721, work)
local unit = mode == "stream" and "MB/s" or (mode == "handshake" and "conns/s" or "msgs/s")
local scale = mode == "stream" and 1e6 or 1
print(string.format("%s %d conns: plain %.1f %s, tls %.1f %s, tls/plain %.2f", mode, conns,
  plain / secs / scale, unit, tls / secs / scale, unit, tls / plain))
