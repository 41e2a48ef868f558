-- examples/broadcast.lua: one publisher, many viewers, through a room.
--
--   moonport run examples/broadcast.lua [PUB_PORT [VIEW_PORT [POLICY [SCOPE [QUEUE]]]]]
--   moonport run --cluster redis://127.0.0.1:6379 examples/broadcast.lua 7100 7101 drop_oldest cluster
--
-- The publisher connects to PUB_PORT (default 7100) and sends frames: a
-- 4-byte big-endian length, then that many bytes. Each frame goes, unchanged
-- (length included), to every viewer connected to VIEW_PORT (default 7101),
-- on every worker, without a Lua loop per viewer: the room shares one copy of
-- the bytes and `room:attach` writes them out natively. A zero-length frame
-- is not broadcast: the server answers it with the viewer count (4 bytes).
--
-- A viewer that cannot keep up gets the room's POLICY (default
-- "drop_oldest"; also "keep_latest" or "disconnect"): the others never wait.
-- Each viewer may have QUEUE frames (default 256) waiting.
--
-- SCOPE "cluster" (with `--cluster URL`) makes the room span every moonport
-- process joined to that Redis: a frame published to any of them reaches the
-- viewers of all, fetched from Redis once per process. Processes on one
-- machine may share the ports (SO_REUSEPORT). The count query then answers
-- with this process's viewers.
local moonport = require("moonport")
local buffer = moonport.buffer

local pub_port = tonumber(arg[1] or "7100")
local view_port = tonumber(arg[2] or "7101")
local policy = arg[3] or "drop_oldest"
local scope = arg[4] or "local"
local queue = tonumber(arg[5] or "256")
local MAX_FRAME = 16 * 1024 * 1024

local room = moonport.room("broadcast", { scope = scope })

local publishers = moonport.tcp.listen({ host = "127.0.0.1", port = pub_port }, function(pub)
  local frame = buffer.new(64 * 1024, MAX_FRAME + 4)
  while true do
    frame:clear()
    if not pub:read_exact_into(frame, 4) then return end
    local len = buffer.reader(frame):read_u32()
    if len > MAX_FRAME then
      moonport.log.warn("frame of ", len, " bytes refused; closing the publisher")
      return
    end
    if len == 0 then
      pub:write(buffer.new(4):write_u32(room:count()))
    else
      if not pub:read_exact_into(frame, len) then return end
      -- The room now shares these bytes; clear() gives `frame` fresh storage.
      room:publish(frame)
    end
  end
end)

local viewers = moonport.tcp.listen({ host = "127.0.0.1", port = view_port }, function(viewer)
  local reason, missed = room:attach(viewer, { queue = queue, policy = policy })
  moonport.log.info(string.format("viewer left: %s, missed=%d", reason, missed))
end)

if moonport.worker_id() == 1 and publishers and viewers then
  moonport.log.info(string.format("publisher port %d, viewer port %d", publishers:port(), viewers:port()))
end
