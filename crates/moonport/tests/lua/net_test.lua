-- Lua-side tests of moonport.net: endpoints and address translation.
local T = require("harness")
local net = moonport.net
local little_endian = net.htons(1) == 256

T.test("inet_addr gives C's in_addr_t and inet_ntoa reverses it", function()
  T.eq(net.inet_addr("10.0.0.1"), little_endian and 0x0100000A or 0x0A000001)
  T.eq(net.inet_addr("255.255.255.255"), 0xFFFFFFFF)
  T.eq(net.inet_ntoa(net.inet_addr("192.168.1.20")), "192.168.1.20")
  T.eq(net.inet_ntoa(0), "0.0.0.0")
  -- LuaJIT's bit operations give signed 32-bit numbers: both readings work.
  T.eq(net.inet_ntoa(-1), "255.255.255.255")
end)

T.test("invalid addresses give nil, 'invalid address', never a wrong value", function()
  for _, bad in ipairs({ "256.1.1.1", "1.2.3", "1.2.3.4.5", "01.2.3.4", "", " 1.2.3.4", "1.2.3.-4", "::1", "a.b.c.d" }) do
    local v, err = net.inet_addr(bad)
    T.eq(v, nil, bad); T.eq(err, "invalid address", bad)
  end
  local cases = {
    { "inet", "::1" }, { "inet6", "::g" }, { "inet6", "1:2:3:4:5:6:7:8:9" }, { "inet6", "1.2.3.4" },
    { "inet", "1.2.3" }, { "inet6", "" },
  }
  for _, c in ipairs(cases) do
    local v, err = net.inet_pton(c[1], c[2])
    T.eq(v, nil, c[2]); T.eq(err, "invalid address", c[2])
  end
  T.eq(select(2, net.inet_ntop("inet", "abc")), "invalid address")
  T.eq(select(2, net.inet_ntop("inet6", "\1\2\3\4")), "invalid address")
  T.eq(select(2, net.endpoint("1.2.3.4")), "invalid address")
  T.eq(select(2, net.endpoint("1.2.3.4:65536")), "invalid address")
  T.eq(select(2, net.endpoint("example.com", 80)), "invalid address")
  T.eq(select(2, net.endpoint("[::1]")), "invalid address")
end)

T.test("inet_pton / inet_ntop round-trip to canonical text", function()
  T.eq(T.hex(assert(net.inet_pton("inet", "192.0.2.1"))), "c0000201")
  local raw = assert(net.inet_pton("inet6", "2001:0db8:0000:0000:0000:ff00:0042:8329"))
  T.eq(#raw, 16)
  T.eq(net.inet_ntop("inet6", raw), "2001:db8::ff00:42:8329")
  T.eq(net.inet_ntop("inet6", assert(net.inet_pton("inet6", "::FFFF:1.2.3.4"))), "::ffff:1.2.3.4")
  T.eq(net.inet_ntop("inet6", string.rep("\0", 16)), "::")
  T.eq(net.inet_ntop(moonport.AF_INET, "\127\0\0\1"), "127.0.0.1")
end)

T.test("byte order helpers swap on little-endian hosts and round-trip", function()
  T.eq(net.htons(0x1234), little_endian and 0x3412 or 0x1234)
  T.eq(net.htonl(0x01020304), little_endian and 0x04030201 or 0x01020304)
  for _, v in ipairs({ 0, 1, 0x1234, 0xFFFF }) do T.eq(net.ntohs(net.htons(v)), v) end
  for _, v in ipairs({ 0, 1, 0x01020304, 0xFFFFFFFF }) do T.eq(net.ntohl(net.htonl(v)), v) end
  -- inet_addr's integer is htonl of the host-order address.
  T.eq(net.inet_addr("1.2.3.4"), net.htonl(0x01020304))
end)

T.test("endpoints: fields, text, equality, both ways to make one", function()
  local a = assert(net.endpoint("127.0.0.1", 8080))
  T.eq(a.family, "inet"); T.eq(a.address, "127.0.0.1"); T.eq(a.port, 8080)
  T.eq(tostring(a), "127.0.0.1:8080")
  T.truthy(a == assert(net.endpoint("127.0.0.1:8080")), "equal endpoints")
  T.truthy(a ~= assert(net.endpoint("127.0.0.1:8081")), "different ports")
  local b = assert(net.endpoint("[::1]:9000"))
  T.eq(b.family, "inet6"); T.eq(b.address, "::1"); T.eq(b.port, 9000); T.eq(tostring(b), "[::1]:9000")
  T.truthy(b == assert(net.endpoint("::1", 9000)), "bracketless IPv6 with a port")
  T.eq(b.family, moonport.AF_INET6)
end)

T.test("wrong argument types are programmer errors", function()
  T.raises("bad argument #1 to 'inet_pton'", net.inet_pton, "ipx", "1.2.3.4")
  T.raises("bad argument #1 to 'inet_addr'", net.inet_addr, {})
  T.raises("bad argument #2 to 'endpoint'", net.endpoint, "1.2.3.4", 70000)
  T.raises("bad argument #1 to 'htons'", net.htons, 65536)
end)

T.done()
