-- An HTTP server for tests/http.rs. arg[1] is a directory the test made
-- (files for the static handler). Small limits so the tests can hit them.
local moonport = require("moonport")

local root = arg[1]
local static = moonport.http.static(root .. "/www", { prefix = "/static" })

moonport.http.listen({
  host = "127.0.0.1",
  port = 0,
  max_body = 1000,
  max_header = 2048,
  max_headers = 20,
  header_timeout = 1,
  idle_timeout = 2,
}, function(req, res)
  local path = req.path
  if path == "/echo" then
    res:header("Content-Type", "text/plain")
    res:send(table.concat({ req.method, req.path, req.query or "-", req.headers["X-Test"] or "-", #req.body, req.body }, " "))
  elseif path == "/stream" then
    res:write("a")
    res:write(moonport.buffer.from("bb"))
  elseif path == "/status" then
    res.status = 201
    res:header("X-Custom", "v")
    res:send("created " .. res.status)
  elseif path == "/error" then
    error("boom")
  elseif path == "/file" then
    res:send_file(root .. "/www/hello.txt")
  elseif path:sub(1, 8) == "/static/" then
    static(req, res)
  elseif path == "/ws" then
    local ws, err = moonport.ws.upgrade(req, res)
    if not ws then
      print("upgrade failed: " .. err)
      return
    end
    while true do
      local data, kind = ws:recv()
      if not data or kind == "close" then break end
      ws:send_text("ws " .. data)
    end
  elseif path == "/client" then
    local r, err = moonport.http.request({
      method = "POST",
      url = "http://" .. req.headers.host .. "/echo?x=1",
      headers = { ["X-Test"] = "c" },
      body = "hi",
    })
    if not r then
      res.status = 502
      return res:send(err)
    end
    local chunked = moonport.http.request("http://" .. req.headers.host .. "/stream")
    local missing, err2 = moonport.http.request({ url = "http://127.0.0.1:1/" })
    res:send(r.status .. " " .. r.headers["content-type"] .. " " .. r.body .. " | " .. chunked.body
      .. " | " .. tostring(missing) .. " " .. err2)
  else
    res.status = 404
    res:send("not found")
  end
end)
