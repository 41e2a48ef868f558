-- Each connection: read a request line, think for 1 s, answer, close.
local moonport = require("moonport")

moonport.tcp.listen({ host = "127.0.0.1", port = 0 }, function(conn)
  moonport.log.info("accepted on worker", moonport.worker_id())
  local line = conn:read_line()
  if not line then return end
  moonport.log.info("request:", line)
  moonport.sleep(1)
  conn:write(("reply to %s exiting=%s\n"):format(line, tostring(moonport.exiting())))
  moonport.log.info("replied to", line)
end)
