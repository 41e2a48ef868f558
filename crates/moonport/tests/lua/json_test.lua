-- Lua-side tests of moonport.json.
local T = require("harness")
local json = moonport.json

T.test("scalars and strings round-trip", function()
  T.eq(json.encode(1), "1")
  T.eq(json.encode(2.5), "2.5")
  T.eq(json.encode(-0.125), "-0.125")
  T.eq(json.encode(true), "true")
  T.eq(json.encode(nil), "null")
  T.eq(json.encode(json.null), "null")
  T.eq(json.encode("a\"b\\c\n\1é"), [["a\"b\\c\n\u0001é"]])
  T.eq(json.decode([["\u00e9\ud83d\ude00"]]), "é😀")
  T.eq(json.decode("42"), 42)
  T.eq(json.decode("-1.5e3"), -1500)
  T.eq(json.decode("null"), json.null)
end)

T.test("arrays and objects", function()
  T.eq(json.encode({ 1, 2, "x" }), [=[[1,2,"x"]]=])
  -- Objects come out with sorted keys, so the text is stable.
  T.eq(json.encode({ b = 1, a = { c = false } }), [[{"a":{"c":false},"b":1}]])
  T.eq(json.encode({}), "{}")
  T.eq(json.encode(json.array()), "[]")
  T.eq(json.encode(json.array({ 1 })), "[1]")
  -- Sparse or mixed tables are objects with string keys.
  T.eq(json.encode({ [1] = "a", [3] = "c" }), [[{"1":"a","3":"c"}]])
  T.eq(json.encode({ 1, x = 2 }), [[{"1":1,"x":2}]])
  local v = json.decode([=[{"list":[1,{"n":null}],"empty":[],"obj":{}}]=])
  T.eq(v.list[1], 1)
  T.eq(v.list[2].n, json.null)
  T.eq(#v.empty, 0)
  -- Decoded arrays stay arrays, empty ones too.
  T.eq(json.encode(v), [=[{"empty":[],"list":[1,{"n":null}],"obj":{}}]=])
  T.eq(json.encode({ a = { 1, 2 } }, { pretty = true }), '{\n  "a": [\n    1,\n    2\n  ]\n}')
end)

T.test("buffers encode as their text", function()
  local b = moonport.buffer.from("hello")
  T.eq(json.encode({ msg = b }), [[{"msg":"hello"}]])
  T.eq(select(2, json.encode(moonport.buffer.from("\255"))), "cannot encode: a buffer is not valid UTF-8")
end)

T.test("big integers", function()
  T.eq(json.decode("9007199254740992"), 9007199254740992)
  local big = "123456789012345678901"
  T.eq(type(json.decode(big)), "number")
  T.eq(json.decode(big, { big_integers = "string" }), big)
  T.eq(json.decode("[18446744073709551615]", { big_integers = "string" })[1], "18446744073709551615")
  T.raises("big_integers", json.decode, "1", { big_integers = "maybe" })
end)

T.test("invalid input is nil, err", function()
  local v, err = json.decode("{\"a\": 1,}")
  T.eq(v, nil)
  T.truthy(err:find("^invalid JSON: trailing comma at line 1 column 9"), err)
  T.truthy(select(2, json.decode("")):find("^invalid JSON"))
  T.truthy(select(2, json.decode("[1] x")):find("trailing characters"))
  T.truthy(select(2, json.decode(string.rep("[", 200) .. string.rep("]", 200))):find("recursion limit"))
  T.eq(select(2, json.encode(0 / 0)), "cannot encode NaN")
  T.eq(select(2, json.encode(math.huge)), "cannot encode inf")
  T.eq(select(2, json.encode({ f = print })), "cannot encode a function")
  T.eq(select(2, json.encode({ [true] = 1 })), "cannot encode a boolean key")
  T.eq(select(2, json.encode("\255")), "cannot encode: a string is not valid UTF-8")
  local cycle = {}
  cycle.self = cycle
  T.truthy(select(2, json.encode(cycle)):find("nested deeper than 128"))
  T.raises("string expected", json.decode, {})
  T.raises("table expected", json.encode, 1, "pretty")
end)

T.done()
