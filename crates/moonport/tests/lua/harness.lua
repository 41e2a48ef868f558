-- A tiny test harness for Lua-side tests run by `moonport run`.
-- Each case runs in pcall (I/O inside may yield); `done()` prints the tally
-- and raises an error (exit code 1) if any case failed.
local T = { passed = 0, failed = 0 }

local function show(v)
  if type(v) == "string" then return string.format("%q", v) end
  return tostring(v)
end

function T.test(name, fn)
  local ok, err = pcall(fn)
  if ok then
    T.passed = T.passed + 1
  else
    T.failed = T.failed + 1
    print("FAIL " .. name .. ": " .. tostring(err))
  end
end

function T.eq(got, want, what)
  if got ~= want then
    error((what or "value") .. ": expected " .. show(want) .. ", got " .. show(got), 2)
  end
end

function T.truthy(v, what)
  if not v then error((what or "condition") .. " failed", 2) end
end

-- Asserts that fn raises an error whose message contains `fragment`.
function T.raises(fragment, fn, ...)
  local ok, err = pcall(fn, ...)
  if ok then error("expected an error containing " .. show(fragment), 2) end
  if not tostring(err):find(fragment, 1, true) then
    error("error " .. show(tostring(err)) .. " does not contain " .. show(fragment), 2)
  end
end

function T.hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

function T.done()
  print(string.format("%d passed, %d failed", T.passed, T.failed))
  if T.failed > 0 then error(T.failed .. " Lua test(s) failed", 0) end
end

return T
