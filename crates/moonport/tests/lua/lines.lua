-- Delimited reads. The first line picks the mode and limit:
--   "line N"  : records are read with conn:read_line(N)
--   "until N" : records are read with conn:read_until("\r\n\r\n", N)
--   "exact N" : records are read with conn:read_exact(N)
-- Each record is answered with "OK <len> <record, \r and \n escaped>\n".
-- A too-long record is answered with "ERR <err> <head> <rest len>\n": <head>
-- is conn:read(4) (the bytes stay buffered after the error), <rest len> the
-- length of the rest of the record up to its delimiter. Then reading goes on.
-- At end of stream the result is logged: "eof: <mode> err=<err> partial=[...]".
local moonport = require("moonport")

local function esc(s)
  return (s:gsub("\r", "\\r"):gsub("\n", "\\n"))
end

moonport.tcp.listen({ host = "127.0.0.1", port = 0 }, function(conn)
  local mode = assert(conn:read_line())
  local kind, max = mode:match("^(%a+) (%d+)$")
  max = assert(tonumber(max), "bad mode line")
  local delim = kind == "until" and "\r\n\r\n" or "\n"
  while true do
    local data, err, partial
    if kind == "line" then
      data, err, partial = conn:read_line(max)
    elseif kind == "until" then
      data, err, partial = conn:read_until(delim, max)
    else
      data, err, partial = conn:read_exact(max)
    end
    if data then
      conn:write(("OK %d %s\n"):format(#data, esc(data)))
    elseif err == "line too long" or err == "too long" then
      local head = assert(conn:read(4))
      local rest = assert(conn:read_until(delim, 1024 * 1024))
      conn:write(("ERR %s %s %d\n"):format(err, head, #rest))
    else
      moonport.log.info(("eof: %s err=%s partial=[%s]"):format(kind, tostring(err), esc(tostring(partial))))
      return
    end
  end
end)
