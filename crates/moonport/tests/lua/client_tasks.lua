-- Client mode: spawned tasks with sleeps all run before the process exits.
local moonport = require("moonport")

local function say_after(secs, word)
  moonport.sleep(secs)
  print(word)
end

moonport.spawn(say_after, 0.2, "second")
moonport.spawn(say_after, 0.1, "first")
moonport.spawn(function()
  moonport.sleep(0.3)
  print("third")
  -- a task spawned by a task also keeps the process alive
  moonport.spawn(say_after, 0.1, "fourth")
end)
moonport.spawn(function()
  moonport.sleep(0)
  print("yielded")
end)
print("main done", moonport.worker_id(), moonport.workers())
