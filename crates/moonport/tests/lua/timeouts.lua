-- Read timeouts: each step reports to the client, which drives the next one.
local moonport = require("moonport")

local function report(conn, tag, data, err, t0)
  conn:write(("%s %s %s %.3f\n"):format(tag, tostring(data), tostring(err), moonport.now() - t0))
end

moonport.tcp.listen({ host = "127.0.0.1", port = 0 }, function(conn)
  conn:set_timeouts(nil, nil, 0.2)
  -- 1: nothing arrives: times out.
  local t0 = moonport.now()
  local data, err = conn:read()
  report(conn, "first", data, err, t0)
  -- 2: the client sends "hello world" in two parts: nothing lost.
  t0 = moonport.now()
  data, err = conn:read_exact(11)
  report(conn, "second", data, err, t0)
  -- 3: "abc" arrives without a newline: times out with the bytes kept.
  t0 = moonport.now()
  data, err = conn:read_line()
  report(conn, "third", data, err, t0)
  -- 4: the client then sends "def\n".
  t0 = moonport.now()
  data, err = conn:read_line()
  report(conn, "fourth", data, err, t0)
  -- 5: 0 turns the read timeout off; the client waits 0.5 s before sending.
  conn:set_timeouts(nil, nil, 0)
  t0 = moonport.now()
  data, err = conn:read_line()
  report(conn, "fifth", data, err, t0)
end)
