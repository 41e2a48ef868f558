-- Lua-side tests of moonport.dns against a real DNS server (dnslib, started
-- by tests/dns.rs) whose port is arg[1]. Zone: tests/dns/zone.txt.
local T = require("harness")
local dns, udp = moonport.dns, moonport.udp
local upstream = tonumber(arg[1])
local ns = "127.0.0.1:" .. upstream

-- A UDP relay in front of the server that counts the queries reaching it,
-- so the tests can see what the cache saved.
local function counting_proxy()
  local front = assert(udp.bind("127.0.0.1", 0))
  local back = assert(udp.bind("127.0.0.1", 0))
  local p = { queries = 0, clients = {} }
  moonport.spawn(function()
    while true do
      local q, from = front:recvfrom()
      if not q then break end
      p.queries = p.queries + 1
      p.clients[q:sub(1, 2)] = from -- by DNS message id
      back:sendto(q, "127.0.0.1", upstream)
    end
  end)
  moonport.spawn(function()
    while true do
      local r = back:recvfrom()
      if not r then break end
      local to = p.clients[r:sub(1, 2)]
      if to then front:sendto(r, to) end
    end
  end)
  local _, port = front:local_addr()
  p.address = "127.0.0.1:" .. port
  function p.close() front:close(); back:close() end
  return p
end

T.test("A and AAAA records, IPv4 first, and by family", function()
  local all = assert(dns.resolve("www.example.test", { nameserver = ns }))
  T.eq(#all, 2); T.eq(all[1], "192.0.2.10"); T.eq(all[2], "2001:db8::10")
  local v4 = assert(dns.resolve("www.example.test", { nameserver = ns, family = "inet" }))
  T.eq(#v4, 1); T.eq(v4[1], "192.0.2.10")
  local v6 = assert(dns.resolve("WWW.Example.Test.", { nameserver = ns, family = moonport.AF_INET6 }))
  T.eq(#v6, 1); T.eq(v6[1], "2001:db8::10")
  local only6 = assert(dns.resolve("v6only.example.test", { nameserver = ns }))
  T.eq(#only6, 1); T.eq(only6[1], "2001:db8::6")
  T.eq(select(2, dns.resolve("v6only.example.test", { nameserver = ns, family = "inet" })), "not found")
  local multi = assert(dns.resolve("multi.example.test", { nameserver = ns }))
  T.eq(table.concat(multi, " "), "192.0.2.1 192.0.2.2 192.0.2.3")
end)

T.test("gethostbyname follows CNAMEs like hostent", function()
  local h = assert(dns.gethostbyname("alias.example.test", { nameserver = ns }))
  T.eq(h.name, "www.example.test")
  T.eq(#h.aliases, 1); T.eq(h.aliases[1], "alias.example.test")
  T.eq(#h.addresses, 1); T.eq(h.addresses[1], "192.0.2.10")
end)

T.test("unknown names: nil, 'not found'; malformed names: 'invalid name'", function()
  local r, err = dns.resolve("nope.example.test", { nameserver = ns })
  T.eq(r, nil); T.eq(err, "not found")
  T.eq(select(2, dns.gethostbyname("nope.example.test", { nameserver = ns })), "not found")
  T.eq(select(2, dns.resolve("a..b", { nameserver = ns })), "invalid name")
  T.eq(select(2, dns.resolve(string.rep("x", 64) .. ".test", { nameserver = ns })), "invalid name")
end)

T.test("a reply too big for UDP is fetched again over TCP", function()
  local big = assert(dns.resolve("big.example.test", { nameserver = ns, family = "inet" }))
  T.eq(#big, 60); T.eq(big[1], "198.51.100.1"); T.eq(big[60], "198.51.100.60")
end)

T.test("reverse lookups of IPv4 and IPv6 addresses", function()
  T.eq(dns.reverse("192.0.2.10", { nameserver = ns }), "www.example.test")
  T.eq(dns.reverse("2001:db8::10", { nameserver = ns }), "www.example.test")
  T.eq(select(2, dns.reverse("192.0.2.77", { nameserver = ns })), "not found")
  T.eq(select(2, dns.reverse("not-an-ip")), "invalid address")
end)

T.test("no answer: nil, 'timeout' within the timeout", function()
  local silent = assert(udp.bind("127.0.0.1", 0)) -- bound, never answers
  local ip, port = silent:local_addr()
  local t0 = moonport.now()
  local r, err = dns.resolve("www.example.test", { nameserver = ip .. ":" .. port, timeout = 0.3 })
  local took = moonport.now() - t0
  T.eq(r, nil); T.eq(err, "timeout")
  T.truthy(took >= 0.25 and took < 2, "took " .. took .. " s")
  -- nothing listening at all behaves the same
  silent:close()
  T.eq(select(2, dns.resolve("www.example.test", { nameserver = ip .. ":" .. port, timeout = 0.2 })), "timeout")
end)

T.test("the hosts file answers first, without asking a server", function()
  local r = assert(dns.resolve("localhost", { nameserver = "127.0.0.1:1", timeout = 0.2, family = "inet" }))
  T.eq(r[1], "127.0.0.1")
  T.eq(dns.reverse("127.0.0.1", { nameserver = "127.0.0.1:1", timeout = 0.2 }), "localhost")
  -- IP literals need no lookup either
  T.eq(assert(dns.resolve("::1", { nameserver = "127.0.0.1:1" }))[1], "::1")
end)

T.test("answers are cached for their TTL, and not after", function()
  local p = counting_proxy()
  local opts = { nameserver = p.address, family = "inet" }
  T.eq(assert(dns.resolve("multi.example.test", opts))[1], "192.0.2.1")
  T.eq(p.queries, 1)
  T.eq(assert(dns.resolve("multi.example.test", opts))[1], "192.0.2.1")
  T.eq(p.queries, 1, "second lookup from the cache")
  T.eq(select(2, dns.resolve("nope.example.test", opts)), "not found")
  T.eq(select(2, dns.resolve("nope.example.test", opts)), "not found")
  T.eq(p.queries, 2, "negative answers are cached too")
  -- short.example.test has a TTL of one second
  T.eq(assert(dns.resolve("short.example.test", opts))[1], "192.0.2.99")
  T.eq(assert(dns.resolve("short.example.test", opts))[1], "192.0.2.99")
  T.eq(p.queries, 3)
  moonport.sleep(1.2)
  T.eq(assert(dns.resolve("short.example.test", opts))[1], "192.0.2.99")
  T.eq(p.queries, 4, "asked again once the TTL passed")
  p.close()
end)

T.test("configure sets the servers, search list and cache for this worker", function()
  dns.configure({ nameserver = { "127.0.0.1:1", ns }, timeout = 0.2, attempts = 1, search = { "corp.test" } })
  -- the first server is dead: the second answers
  T.eq(assert(dns.resolve("www.example.test", { family = "inet" }))[1], "192.0.2.10")
  -- a single-label name goes through the search list; a trailing dot opts out
  T.eq(assert(dns.resolve("host", { family = "inet" }))[1], "192.0.2.50")
  T.eq(select(2, dns.resolve("host.", { family = "inet" })), "not found")
  -- and TCP connects resolve names through it too (loop.example.test is 127.0.0.1)
  local s = assert(moonport.socket("inet", "stream"))
  assert(s:bind("127.0.0.1", 0)); assert(s:listen())
  moonport.spawn(function() local c = s:accept(); if c then c:send("found"); c:close() end end)
  local conn = assert(moonport.tcp.connect("loop.example.test", s:getsockname().port, { timeout = 2 }))
  T.eq(conn:read(), "found")
  conn:close(); s:close()
  dns.configure({ cache_size = 0 })
  T.eq(assert(dns.resolve("www.example.test", { family = "inet" }))[1], "192.0.2.10")
end)

T.test("wrong arguments are programmer errors", function()
  T.raises("bad argument #1 to 'resolve'", dns.resolve, {})
  T.raises("bad argument #2 to 'resolve' (family:", dns.resolve, "x", { family = "ipx" })
  T.raises("bad argument #2 to 'resolve' (nameserver:", dns.resolve, "x", { nameserver = "nowhere" })
  T.raises("bad argument #1 to 'configure'", dns.configure)
  T.raises("seconds must be above 0", dns.resolve, "x", { timeout = 0 })
end)

T.done()
