-- Lua-side tests of moonport.metrics; run with --metrics-max-series 12.
local T = require("harness")
local metrics = moonport.metrics

-- The sample value of `series` (e.g. 'a_total{k="x"}') in the exposition.
local function sample(series)
  for line in metrics.text():gmatch("[^\n]+") do
    local name, value = line:match("^(%S+) (%S+)$")
    if name == series then return tonumber(value) end
  end
end

T.test("counters add up and registering again gives the same metric", function()
  local c = metrics.counter("t_hits_total", "Hits.", { "code" })
  c:inc(nil, { "200" })
  c:inc(2.5, { 200 })
  metrics.counter("t_hits_total", "Hits.", { "code" }):inc(1, { "200" })
  c:inc(1, { "404" })
  T.eq(sample('t_hits_total{code="200"}'), 4.5)
  T.eq(sample('t_hits_total{code="404"}'), 1)
  T.truthy(tostring(c):find("counter(t_hits_total)", 1, true), tostring(c))
end)

T.test("gauges set, rise and fall", function()
  local g = metrics.gauge("t_level")
  g:set(10)
  g:inc()
  g:dec(3.5)
  T.eq(sample("t_level"), 7.5)
  T.truthy(metrics.text():find("# TYPE t_level gauge\n", 1, true), "TYPE line")
end)

T.test("histograms count into cumulative buckets", function()
  local h = metrics.histogram("t_size", "Sizes.", { "op" }, { 1, 10 })
  for _, v in ipairs({ 0.5, 1, 5, 50 }) do h:observe(v, { "read" }) end
  T.eq(sample('t_size_bucket{op="read",le="1"}'), 2)
  T.eq(sample('t_size_bucket{op="read",le="10"}'), 3)
  T.eq(sample('t_size_bucket{op="read",le="+Inf"}'), 4)
  T.eq(sample('t_size_count{op="read"}'), 4)
  T.eq(sample('t_size_sum{op="read"}'), 56.5)
  -- Without buckets, the Prometheus defaults.
  metrics.histogram("t_latency"):observe(0.2)
  T.eq(sample('t_latency_bucket{le="0.25"}'), 1)
  T.eq(sample('t_latency_bucket{le="0.1"}'), 0)
end)

T.test("built-in metrics are there", function()
  T.eq(sample('moonport_coroutines{worker="1"}'), 1)
  T.truthy(sample("moonport_uptime_seconds") >= 0, "uptime")
  T.truthy(metrics.text():find('moonport_io_driver_info{driver="', 1, true), "driver")
end)

T.test("room messages a full queue drops are counted", function()
  local room = moonport.room("t_metrics")
  local oldest = room:subscribe({ queue = 1 })
  local latest = room:subscribe({ queue = 2, policy = "keep_latest" })
  local strict = room:subscribe({ queue = 2, policy = "disconnect" })
  for i = 1, 3 do room:publish("m" .. i) end
  -- drop_oldest lost m1 and m2; keep_latest m1 and m2; disconnect m3 and the two it held.
  T.eq(sample('moonport_room_dropped_messages_total{worker="1"}'), 7)
  oldest:close(); latest:close(); strict:close()
end)

T.test("wrong arguments raise errors", function()
  T.raises("bad argument #1 to 'counter' (string expected, got nil)", metrics.counter)
  T.raises("invalid metric name", metrics.counter, "no-dashes")
  T.raises("moonport's own", metrics.gauge, "moonport_mine")
  T.raises("bad argument #3 to 'gauge' (table expected, got string)", metrics.gauge, "t_g2", "help", "k")
  T.raises("invalid label name", metrics.gauge, "t_g3", "help", { "1x" })
  T.raises("already registered as a counter with labels {code}", metrics.gauge, "t_hits_total")
  T.raises("already registered", metrics.counter, "t_hits_total", "Hits.", { "other" })
  T.raises("increasing order", metrics.histogram, "t_h2", "help", nil, { 2, 1 })
  T.raises("\"le\"", metrics.histogram, "t_h3", "help", { "le" })
  local c = metrics.counter("t_errs_total", "help", { "a", "b" })
  T.raises("bad argument #1 to 'inc' (a counter only goes up, got -1)", c.inc, c, -1, { "x", "y" })
  T.raises("number expected, got string", c.inc, c, "1", { "x", "y" })
  T.raises("2 label values expected (a, b), got 1", c.inc, c, 1, { "x" })
  T.raises("2 label values expected (a, b), got 0", c.inc, c)
  T.raises("bad argument #2 to 'inc' (table expected, got string)", c.inc, c, 1, "x")
  T.raises("number expected, got nan", metrics.gauge("t_g4").set, metrics.gauge("t_g4"), 0 / 0)
  T.raises("attempt to call", function() c:set(1) end)
  -- The error names the script's line, not the harness's.
  T.raises("metrics_test.lua:", function() c:inc(-1, { "x", "y" }) end)
end)

T.test("past the series limit a new label combination is an error", function()
  local c = metrics.counter("t_users_total", "help", { "user" })
  local made, err = 0, nil
  for i = 1, 20 do
    local ok, e = pcall(c.inc, c, 1, { "user" .. i })
    if not ok then err = tostring(e) break end
    made = made + 1
  end
  T.truthy(err and err:find("too many metric series (the limit is 12", 1, true), tostring(err))
  T.truthy(made > 0 and made < 12, "made " .. made)
  -- Series made before the limit go on working, so does everything else.
  c:inc(1, { "user1" })
  T.eq(sample('t_users_total{user="user1"}'), 2)
  T.raises("too many metric series", metrics.counter, "t_one_more_total")
end)

T.test("admin takes an ip:port", function()
  T.raises("bad argument #1 to 'admin' (table expected, got nil)", moonport.admin)
  T.raises("\"ip:port\" expected", moonport.admin, { listen = "localhost" })
end)

T.done()
