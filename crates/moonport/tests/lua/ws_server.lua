-- A WebSocket server for tests/ws.rs: echoes messages, and answers a few
-- commands sent as text. Small limits so the tests can hit them.
local moonport = require("moonport")

moonport.ws.listen({
  host = "127.0.0.1",
  port = 0,
  max_message = 4096,
  max_header = 2048,
  header_timeout = 1,
  protocols = { "echo", "chat" },
  deflate = arg[1] == "deflate",
}, function(ws, req)
  if req.path == "/viewer" then
    -- Room messages go to this viewer natively, as text frames.
    moonport.spawn(function()
      local reason = moonport.room("r"):attach(ws, { kind = "text" })
      print("attach ended: " .. reason)
    end)
    moonport.sleep(0)
    ws:send_text("ready")
  end
  while true do
    local data, kind, code = ws:recv()
    if kind == "timeout" then
      -- Not fatal: the next recv goes on where this one stopped.
      ws:send_text("timed out")
    elseif not data then
      print("recv error: " .. kind)
      return
    end
    if kind == "close" then
      print("closed by peer: " .. code .. " " .. data)
      return
    end
    if not data then -- timed out, answered above
    elseif data == "whoami" then
      ws:send_text(table.concat({ req.method, req.path, req.query or "-", req.headers["X-Test"] or "-",
        ws:protocol() or "-" }, " "))
    elseif data == "bye" then
      print("close: ", ws:close(4000, "bye now"))
      return
    elseif data == "buffer" then
      local buf = moonport.buffer.new()
      buf:append(string.rep("b", 100000))
      ws:send_binary(buf)
      ws:send_text(buf:slice(1, 3))
    elseif data == "ping" then
      ws:ping("hello")
      ws:send_text("pinged")
    elseif data:sub(1, 4) == "pub " then
      moonport.room("r"):publish(moonport.buffer.from(data:sub(5)))
    elseif data == "flood" then
      -- Two coroutines send at once, more than the socket buffers hold, so
      -- sends are cut short and wait: every frame must still arrive whole.
      local done = moonport.channel(2)
      for _, tag in ipairs({ "a", "b" }) do
        moonport.spawn(function()
          for i = 1, 3000 do
            assert(ws:send_text(string.format("%s %d %s", tag, i, string.rep("x", 1000))))
            if i % 50 == 0 then moonport.sleep(0) end -- the two take turns
          end
          done:send(tag)
        end)
      end
      done:recv()
      done:recv()
      ws:send_text("flooded")
    elseif data == "slow" then
      ws:set_timeouts(nil, 0.2)
      ws:send_text("slow")
    elseif data == "return" then
      return
    elseif kind == "text" then
      ws:send_text(data)
    else
      ws:send_binary(data)
    end
  end
end)
