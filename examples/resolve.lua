-- examples/resolve.lua: a small dig; looks names up through moonport.dns and prints the records.
--   moonport run examples/resolve.lua NAME [@SERVER[:PORT]] [-4 | -6]
--   moonport run examples/resolve.lua -x ADDRESS [@SERVER[:PORT]]
-- Without @SERVER it uses the system's configuration (hosts file first,
-- then the name servers in /etc/resolv.conf).
local name, server, reverse, family
local args = { ... }
local i = 1
while i <= #args do
  local a = args[i]
  if a == "-x" then reverse = true
  elseif a == "-4" then family = "inet"
  elseif a == "-6" then family = "inet6"
  elseif a:sub(1, 1) == "@" then server = a:sub(2)
  else name = a end
  i = i + 1
end
if not name then
  io.stderr:write("usage: moonport run resolve.lua NAME [@SERVER[:PORT]] [-4|-6] | -x ADDRESS\n")
  os.exit(2)
end

local function fail(err)
  io.stderr:write(name .. ": " .. err .. "\n")
  os.exit(1)
end

local opts = { nameserver = server, timeout = 5 }
local started = moonport.now()

if reverse then
  local host, err = moonport.dns.reverse(name, opts)
  if not host then fail(err) end
  print(name .. "\tPTR\t" .. host)
else
  local found, last_err = false, nil
  local families = family and { family } or { "inet", "inet6" }
  for _, f in ipairs(families) do
    opts.family = f
    local h, err = moonport.dns.gethostbyname(name, opts)
    if h then
      if not found then
        -- the CNAME chain, once
        for j, alias in ipairs(h.aliases) do
          print(alias .. "\tCNAME\t" .. (h.aliases[j + 1] or h.name))
        end
      end
      found = true
      local rtype = f == "inet" and "A" or "AAAA"
      for _, addr in ipairs(h.addresses) do
        print(h.name .. "\t" .. rtype .. "\t" .. addr)
      end
    elseif err ~= "not found" then
      last_err = err
    end
  end
  if not found then fail(last_err or "not found") end
end
print(string.format(";; %.1f ms via %s", (moonport.now() - started) * 1000, server or "system configuration"))
