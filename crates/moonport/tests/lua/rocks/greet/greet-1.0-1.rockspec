-- A pure-Lua rock for tests/modules.rs: `luarocks make` installs it into a
-- tree the test creates, with no network (its source is this folder).
package = "greet"
version = "1.0-1"
source = { url = "file:///dev/null" }
description = { summary = "A two-module pure-Lua rock for moonport's require test." }
build = {
  type = "builtin",
  modules = {
    ["greet"] = "src/greet/init.lua",
    ["greet.util"] = "src/greet/util.lua",
  },
}
