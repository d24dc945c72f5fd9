-- bench.lua - exec round trip and streamed stdout into a Lua callback.
--   MATCHLOCK_BIN=build/matchlock-local LUA_PATH="lua/?.lua;;" \
--   LUA_CPATH="build/lua/5.4/?.so;;" lua5.4 lua/bench.lua [N] [MiB]
local ml = require("matchlock")
local n = tonumber(arg and arg[1]) or 2000
local mib = tonumber(arg and arg[2]) or 512

local function now()
  local f = io.popen("date +%s.%N")
  local t = tonumber(f:read("*l"))
  f:close()
  return t
end

local c = ml.Client.new { binary = os.getenv("MATCHLOCK_BIN") or "matchlock" }
c:create("alpine:latest")
for _ = 1, 50 do c:exec("true") end
local t0 = now()
for _ = 1, n do c:exec("true") end
local rt = (now() - t0) / n
print(string.format("%s exec round trip: %.1f us (%d calls)", (jit and jit.version) or _VERSION, rt * 1e6, n))

local got = 0
t0 = now()
c:exec_stream(string.format("head -c %d /dev/zero", mib * 1048576), {
  on_stdout = function(d) got = got + #d end,
})
local dt = now() - t0
print(string.format("%s streamed stdout to a Lua callback: %.2f GB/s (%d MiB)", (jit and jit.version) or _VERSION,
  got / dt / 1e9, math.floor(got / 1048576)))
c:close()
c:remove()
