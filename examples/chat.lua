-- examples/chat.lua: a line chat with rooms, across all workers.
--
--   moonport run examples/chat.lua [PORT]        (default 7200; 0 = any free port)
--
-- Connect with `nc 127.0.0.1 7200`. Every line you type goes to everyone in
-- your room, whichever worker thread serves them. Commands:
--   /nick NAME   change your name        /join ROOM   switch rooms (start: lobby)
--   /who         how many are here       /quit        leave
-- A reader who falls far behind misses the oldest lines (the room's
-- drop_oldest policy) instead of slowing the room down.
local moonport = require("moonport")

local port = tonumber(arg[1] or os.getenv("PORT") or "7200")
local MAX_LINE = 1024

local listener = moonport.tcp.listen({ host = "127.0.0.1", port = port }, function(conn)
  local _, peer_port = conn:peer()
  local name = string.format("guest%d", peer_port or 0)
  local room, sub

  local function say(text) room:publish(text .. "\n") end

  local function join(room_name)
    if sub then
      sub:close()
      say("* " .. name .. " left")
    end
    room = moonport.room("chat:" .. room_name)
    sub = room:subscribe({ queue = 128, policy = "drop_oldest" })
    -- Forward this room to the connection until the subscription closes.
    local mine = sub
    moonport.spawn(function()
      while true do
        local line = mine:recv()
        if not line or not conn:write(line) then return end
      end
    end)
    say(string.format("* %s joined %s (%d here)", name, room_name, room:count()))
  end

  conn:write("welcome to moonport chat: /nick NAME, /join ROOM, /who, /quit\n")
  join("lobby")
  while true do
    local line, err = conn:read_line(MAX_LINE)
    if not line then
      if err == "line too long" then conn:write("! lines are limited to " .. MAX_LINE .. " bytes\n") end
      break
    end
    local cmd, rest = line:match("^/(%a+)%s*(.-)%s*$")
    if cmd == "join" and rest ~= "" then
      join(rest)
    elseif cmd == "nick" and rest ~= "" then
      say("* " .. name .. " is now " .. rest)
      name = rest
    elseif cmd == "who" then
      conn:write(string.format("* %d here\n", room:count()))
    elseif cmd == "quit" then
      break
    elseif cmd then
      conn:write("! unknown command\n")
    elseif line ~= "" then
      say(string.format("<%s> %s", name, line))
    end
  end
  sub:close()
  say("* " .. name .. " left")
end)

if listener and moonport.worker_id() == 1 then
  moonport.log.info("chat on 127.0.0.1:", listener:port())
end
