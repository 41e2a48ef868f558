-- The rock's main module; requires its sibling through the tree's path.
local util = require("greet.util")
return { hello = function(name) return util.shout("hello " .. name) end }
