-- The package scenario (scripts/test-packages.sh) in Lua: launch on
-- matchlock-local ($MLK_BIN), exec, stream, files.
local ml = require("matchlock")

local c = ml.Client.new{ binary = os.getenv("MLK_BIN") }
c:launch(ml.Sandbox.new("alpine:latest"))
assert(c:exec("echo hi").stdout == "hi\n")
local out = {}
local r = c:exec_stream("printf 'a\\nb\\n'", { on_stdout = function(data) out[#out + 1] = data end })
assert(r.exit_code == 0 and table.concat(out) == "a\nb\n", table.concat(out))
c:write_file("/tmp/scenario.txt", "hello")
assert(c:read_file("/tmp/scenario.txt") == "hello")
local found = false
for _, f in ipairs(c:list_files("/tmp")) do found = found or f.name == "scenario.txt" end
assert(found)
c:close()
c:remove()
print(("scenario (%s, matchlock): ok"):format(jit and jit.version or _VERSION))
