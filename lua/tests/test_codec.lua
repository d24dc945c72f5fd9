-- msgpack codec, integers, bytes with NUL, version and error-code tables.
return function(T)
  local H = require("helpers")
  local ml, core = H.ml, H.ml.core

  T.test("version and codes", function()
    T.eq(type(ml.VERSION), "string")
    T.ok(ml.VERSION:match("^%d+%.%d+%.%d+$"), "version string")
    T.eq(ml.codes.EINVAL, -1)
    T.eq(ml.codes.EUSER, -10)
    T.eq(ml.names[-8], "MLK_ETIMEDOUT")
    if math.type then
      T.eq(math.type(core.mlk_version()), "integer", "mlk_version is an integer on 5.4")
      T.eq(math.type(ml.codes.EINVAL), "integer", "codes are integers on 5.4")
      T.eq(tostring(core.mlk_version()):find("%."), nil, "no float formatting")
    end
  end)

  T.test("a core the module was not built for is refused", function()
    local h = core.HEADER_VERSION
    T.ok(pcall(ml._check_version, h, h, "x"), "same version loads")
    T.ok(pcall(ml._check_version, h + 1, h, "x"), "a newer core of the same major loads")
    local ok, err = pcall(ml._check_version, h + 10000, h, "2.0.0")
    T.ok(not ok and err:find("loaded libmatchlock is 2.0.0", 1, true), "another major: " .. tostring(err))
    ok, err = pcall(ml._check_version, h - 1, h, "old")
    T.ok(not ok and err:find("rebuild the module", 1, true), "an older core: " .. tostring(err))
  end)

  T.test("roundtrip scalars and nesting", function()
    local v = { 1, -2, 3.5, "x", true, false, { a = { b = { 1, 2, 3 } } } }
    local back = ml.decode(ml.encode(v))
    T.deep_eq(back, v)
    if math.type then
      T.eq(math.type(back[1]), "integer")
      T.eq(math.type(back[2]), "integer")
      T.eq(math.type(back[3]), "float")
    end
  end)

  T.test("big integers stay exact on 5.4", function()
    if not math.type then return end
    local n = math.maxinteger
    T.eq(ml.decode(ml.encode(n)), n)
    T.eq(ml.decode(ml.encode(math.mininteger)), math.mininteger)
  end)

  T.test("bytes with NUL pass unchanged", function()
    local s = "a\0b\0\255\0"
    T.eq(ml.decode(ml.encode(s)), s)
    T.eq(ml.decode(ml.encode({ [s] = s }))[s], s)
  end)

  T.test("null, empty tables and markers", function()
    T.eq(ml.decode(ml.encode(nil)), ml.null)
    T.eq(ml.encode({}), "\128", "empty table is a map")
    T.eq(ml.encode(ml.array {}), "\144", "marked empty array")
    T.eq(ml.encode(ml.map { 1 }):byte(1), 0x81, "marked map")
    local arr = ml.decode(ml.encode({ 1, ml.null, 3 }))
    T.eq(#arr, 3)
    T.eq(arr[2], ml.null)
  end)

  T.test("encode errors say what is wrong", function()
    T.raises(function() ml.encode({ f = print }) end, "cannot encode a function")
    local t = {}
    t.self = t
    T.raises(function() ml.encode(t) end, "nested deeper")
    T.raises(function() ml.decode("\145") end, "not a complete msgpack")
    T.raises(function() ml.decode("") end, "empty")
  end)

  T.test("sparse tables encode as maps", function()
    local m = ml.decode(ml.encode({ [1] = "a", [3] = "c" }))
    T.eq(m[1], "a")
    T.eq(m[3], "c")
    T.eq(ml.encode({ [1] = "a", [3] = "c" }):byte(1), 0x82)
  end)

  T.test("error objects", function()
    local e = ml.new_error(ml.codes.EIMAGE_REQUIRED, "image is required")
    T.eq(e.code, -20)
    T.eq(e.name, "MLK_EIMAGE_REQUIRED")
    T.eq(e.upstream, "ErrImageRequired")
    T.ok(e:is("EIMAGE_REQUIRED"))
    T.ok(e:is("ErrImageRequired"))
    T.ok(e:is(-20))
    T.ok(tostring(e):find("MLK_EIMAGE_REQUIRED: image is required", 1, true))
    local ok, err = pcall(error, e)
    T.eq(ok, false)
    T.eq(err, e, "raised object keeps identity")
  end)

  T.test("try and nothrow", function()
    local v, err = ml.try(function() error(ml.new_error(-1, "bad")) end)
    T.eq(v, nil)
    T.eq(err.code, -1)
    local a, b = ml.try(function() return 1, 2 end)
    T.eq(a, 1)
    T.eq(b, 2)
    local sb = ml.Sandbox.new("alpine:latest")
    local r, e2 = sb:nothrow():with_cpus(-1)
    T.eq(r, sb, "negative cpus is reported at render, the setter records it")
    T.eq(e2, nil)
  end)
end
