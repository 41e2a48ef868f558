-- Line echo that keeps metrics: messages by kind, message sizes, open
-- sessions. The line "boom" makes the handler fail; `admin` as the script's
-- argument starts the admin listener from the script instead of the CLI.
local moonport = require("moonport")
local metrics = moonport.metrics

local messages = metrics.counter("test_messages_total", "Lines echoed, by kind.", { "kind" })
local sizes = metrics.histogram("test_line_bytes", "Line sizes.", nil, { 4, 16, 64 })
local sessions = metrics.gauge("test_sessions", "Connections in the handler.")

if ... == "admin" then
  local ip, port = moonport.admin({ listen = "127.0.0.1:0" })
  print("admin from the script on " .. ip .. ":" .. port)
end

moonport.tcp.listen({ host = "127.0.0.1", port = 0 }, function(conn)
  sessions:inc()
  while true do
    local line = conn:read_line()
    if not line then break end
    if line == "boom" then
      sessions:dec()
      error("boom on purpose")
    end
    moonport.log.info("echoing", #line, "bytes")
    messages:inc(1, { line:sub(1, 1) == "#" and "comment" or "text" })
    sizes:observe(#line)
    conn:write(line .. "\n")
  end
  sessions:dec()
end)
moonport.log.info("worker", moonport.worker_id(), "ready")
