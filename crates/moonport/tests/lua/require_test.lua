-- require's search order, for tests/modules.rs: next to the script, then
-- --lua-path (a directory and a template), then LUA_PATH.
local T = require("harness") -- next to the script
T.test("modules load from every place on the path", function()
  T.eq(require("from_dir").where, "--lua-path directory")
  T.eq(require("pkg").where, "--lua-path directory, pkg/init.lua")
  T.eq(require("from_template").where, "--lua-path template")
  T.eq(require("from_env").where, "LUA_PATH")
end)
T.test("a missing module is a clear error", function()
  T.raises("module 'nope' not found", require, "nope")
end)
T.test("moonport itself", function()
  T.eq(require("moonport"), moonport)
end)
T.done()
