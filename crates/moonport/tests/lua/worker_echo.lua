-- Answers each line with the line and the id of the worker serving it, then
-- keeps the connection open until the client closes it.
local moonport = require("moonport")

moonport.tcp.listen({ host = "127.0.0.1", port = 0, backlog = 4096 }, function(conn)
  local line = conn:read_line()
  if not line then return end
  conn:write(line .. " " .. moonport.worker_id() .. "\n")
  while conn:read() do end
end)
moonport.log.info("worker", moonport.worker_id(), "of", moonport.workers(), "ready")
