-- "flood": write 50 MiB to the client; any other line is echoed.
local moonport = require("moonport")
local chunk = string.rep("0123456789abcdef", 4096) -- 64 KiB

moonport.tcp.listen({ host = "127.0.0.1", port = 0 }, function(conn)
  while true do
    local line = conn:read_line()
    if not line then return end
    if line == "flood" then
      local total = 0
      while total < 50 * 1024 * 1024 do
        local n, err = conn:write(chunk)
        if not n then
          moonport.log.warn(("flood write failed: %s after %d bytes"):format(tostring(err), total))
          -- the connection is closed now: later calls fail fast
          local n2, err2 = conn:write("x")
          moonport.log.warn(("write after failure: %s %s"):format(tostring(n2), tostring(err2)))
          return
        end
        total = total + n
      end
      moonport.log.info("flood finished", total)
      return
    end
    conn:write(line .. "\n")
  end
end)
