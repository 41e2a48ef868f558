-- Echo server for benchmarks: each connection echoes what it reads.
local port = tonumber(os.getenv("PORT") or "7000")
moonport.tcp.listen({ host = "127.0.0.1", port = port }, function(conn)
  while true do
    local data = conn:read(65536)
    if not data then break end
    conn:write(data)
  end
end)
