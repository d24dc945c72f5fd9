-- runner.lua - a tiny test runner: lua runner.lua [file.lua ...]
-- Each test file returns a function(T) that registers tests with T.test.
-- Prints one line per failure and a final line "N passed, N failed";
-- exits non-zero when anything failed.
local here = debug.getinfo(1, "S").source:sub(2):match("(.*/)") or "./"
package.path = here .. "?.lua;" .. package.path

local T = { tests = {}, env = {} }
local interp = (jit and jit.version) or _VERSION

function T.test(name, fn) T.tests[#T.tests + 1] = { name = T.prefix .. name, fn = fn } end

local function fmt(v)
  if type(v) == "string" then return string.format("%q", #v > 200 and v:sub(1, 200) .. "..." or v) end
  return tostring(v)
end

function T.eq(a, b, msg)
  if a ~= b then error((msg and msg .. ": " or "") .. "expected " .. fmt(b) .. ", got " .. fmt(a), 2) end
end

function T.ok(v, msg)
  if not v then error(msg or "expected a true value", 2) end
  return v
end

local function deep(a, b, path)
  if type(a) ~= "table" or type(b) ~= "table" then
    if a ~= b then return path .. ": " .. fmt(a) .. " ~= " .. fmt(b) end
    return nil
  end
  for k, v in pairs(a) do
    local d = deep(v, b[k], path .. "." .. tostring(k))
    if d then return d end
  end
  for k in pairs(b) do
    if a[k] == nil then return path .. "." .. tostring(k) .. ": missing" end
  end
end
T.deep_diff = deep
function T.deep_eq(a, b, msg)
  local d = deep(a, b, "$")
  if d then error((msg and msg .. ": " or "") .. d, 2) end
end

--- Run fn, expect a raise; returns the error.  `want` may be a code name
--- ("ETIMEDOUT"), a number, or a Lua pattern matched against tostring(err).
function T.raises(fn, want, msg)
  local ok, e = pcall(fn)
  if ok then error((msg and msg .. ": " or "") .. "expected an error" .. (want and (" " .. tostring(want)) or ""), 2) end
  if want ~= nil then
    local ml = package.loaded.matchlock
    local good
    if type(want) == "number" then good = type(e) == "table" and e.code == want
    elseif ml and ml.is_error(e) and want:match("^E[A-Z_]+$") then good = e:is(want)
    else good = tostring(e):find(want) ~= nil end
    if not good then error((msg and msg .. ": " or "") .. "expected error " .. tostring(want) .. ", got " .. tostring(e), 2) end
  end
  return e
end

local files = { ... }
if #files == 0 then
  for _, f in ipairs { "test_codec.lua", "test_builder.lua", "test_vectors.lua", "test_client.lua",
                       "test_async.lua", "test_errors.lua", "test_host.lua", "test_hooks.lua", "test_secrets.lua" } do
    files[#files + 1] = here .. f
  end
end

for _, f in ipairs(files) do
  T.prefix = (f:match("([^/]+)%.lua$") or f) .. ": "
  local chunk, err = loadfile(f)
  if not chunk then
    T.tests[#T.tests + 1] = { name = f, always = true, fn = function() error(err, 0) end }
  else
    local ok, e = pcall(function() chunk()(T) end)
    if not ok then T.tests[#T.tests + 1] = { name = f .. " (loading)", always = true, fn = function() error(e, 0) end } end
  end
end

local filter = os.getenv("MLK_TEST_FILTER")
local passed, failed, skipped = 0, 0, 0
for _, t in ipairs(T.tests) do
  if filter and not t.always and not t.name:find(filter, 1, true) then -- a file that fails to load always counts
    skipped = skipped + 1
  else
    local t0 = os.clock()
    local ok, e = xpcall(t.fn, function(m)
      return debug.traceback(tostring(m), 2)
    end)
    if ok then
      passed = passed + 1
      if os.getenv("MLK_TEST_VERBOSE") then print(string.format("ok   %s (%.1f ms cpu)", t.name, (os.clock() - t0) * 1000)) end
    elseif type(e) == "string" and e:find("^SKIP:") then
      skipped = skipped + 1
      print("skip " .. t.name .. ": " .. e:match("^SKIP:%s*([^\n]*)"))
    else
      failed = failed + 1
      print("FAIL " .. t.name .. ": " .. tostring(e))
    end
    collectgarbage()
  end
end
if T.cleanup then pcall(T.cleanup) end
if skipped > 0 then print(string.format("(%s: %d skipped)", interp, skipped)) end
print(string.format("%d passed, %d failed", passed, failed))
os.exit(failed == 0 and 0 or 1)
