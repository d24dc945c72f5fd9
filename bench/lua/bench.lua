-- bench/lua/bench.lua - the Lua binding benchmark (bench/lua/run.sh builds
-- everything and runs it).  Not a test: it prints numbers.
--
-- Orchestrator (run under lua5.4):
--   lua5.4 bench.lua PEER FLOOR CORE REPS N STREAM_BYTES INTERP=CPATH...
-- Each repetition runs, in an order that rotates every repetition:
--   floor   bench/floor_client.c: exec round trip over plain write/read, and
--           the raw stream rate of the pipe (no parsing);
--   core    bench_core --only as: blocking mlk_exec and a stream to a C
--           callback (the C core's own figures);
--   each INTERP (lua5.4, luajit): a child `INTERP bench.lua --child ...`
--           that starts a client on the peer, warms up (not timed), then
--           times N blocking c:exec("true") and one c:exec_stream of
--           STREAM_BYTES with an on_stdout Lua callback.
-- Then medians, differences to the floor (median of the per-rep
-- differences) and to the core, ratios, and CPU time per round trip.

local function loadavg()
  local f = io.open("/proc/loadavg")
  if not f then return "?" end
  local s = f:read("*l") or "?"
  f:close()
  return (s:match("^(%S+ %S+ %S+)")) or s
end

local function sh_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function capture(cmd)
  local f = assert(io.popen(cmd, "r"))
  local out = f:read("*a")
  local ok, _, code = f:close()
  if ok == nil or ok == false or (type(code) == "number" and code ~= 0) then
    error("bench.lua: command failed: " .. cmd .. "\n" .. out, 0)
  end
  return out
end

local function grab(pattern, text, what)
  local v = text:match(pattern)
  if not v then error("bench.lua: could not find " .. what .. " in:\n" .. text, 0) end
  return tonumber(v)
end

-- ------------------------------------------------------------------ child

local function child(peer, n, stream_bytes)
  local clock = require("benchclock")
  local ml = require("matchlock")
  local c = ml.Client.new { binary = peer }
  c:create("alpine:latest")
  local r = c:exec("true")
  if r.exit_code ~= 0 or r.stdout ~= "ok\n" then error("bench.lua: unexpected exec result", 0) end
  local function roundtrips(k)
    local c0, t0 = clock.cpu(), clock.now()
    for _ = 1, k do c:exec("true") end
    local t = clock.now() - t0
    return t * 1e6 / k, (clock.cpu() - c0) * 1e6 / k
  end
  local function stream(bytes)
    local got = 0
    local t0 = clock.now()
    c:exec_stream(string.format("stream %d 65536", bytes), { on_stdout = function(d) got = got + #d end })
    local t = clock.now() - t0
    if got ~= bytes then error(string.format("bench.lua: stream delivered %d bytes, expected %d", got, bytes), 0) end
    return bytes / t / 1e9
  end
  roundtrips(math.max(500, math.floor(n / 5))) -- warm up (JIT traces, buffers)
  stream(64 * 1048576)
  local us, cpu = roundtrips(n)
  local gbps = stream(stream_bytes)
  c:close()
  io.write(string.format("rt=%.3f cpu=%.3f gbps=%.4f\n", us, cpu, gbps))
end

-- ------------------------------------------------------------------ orchestrator

local function median(t)
  local s = {}
  for i, v in ipairs(t) do s[i] = v end
  table.sort(s)
  local k = #s
  if k == 0 then return 0 end
  local h = math.floor(k / 2)
  if k % 2 == 1 then return s[h + 1] end
  return (s[h] + s[h + 1]) / 2
end

local function orchestrate(peer, floor, core, reps, n, stream_bytes, interps)
  local names, label = { "floor", "core" }, { floor = "floor (floor_client)", core = "C core (mlk_exec)" }
  local run = {}
  run.floor = function()
    local out = capture(string.format("%s %s %d 1 %d", sh_quote(floor), sh_quote(peer), n, stream_bytes))
    return { rt = grab("floor median: ([%d.]+) us", out, "the floor's round trip"),
             gbps = grab("floor stream median: ([%d.]+) GB/s", out, "the floor's stream rate") }
  end
  run.core = function()
    local out = capture(string.format("%s --peer %s --only as --reps 1 --stream-bytes %d", sh_quote(core),
      sh_quote(peer), stream_bytes))
    return { rt = grab("median: floor [%d.]+ us, mlk_exec ([%d.]+) us", out, "mlk_exec's round trip"),
             cpu = grab("CPU of this process[^\n]*mlk_exec ([%d.]+) us", out, "mlk_exec's CPU"),
             gbps = grab("stream median: ([%d.]+) GB/s", out, "the core's stream rate") }
  end
  local script = arg[0]
  for _, spec in ipairs(interps) do
    local interp, cpath = spec:match("^([^=]+)=(.*)$")
    names[#names + 1] = interp
    label[interp] = "Lua binding, " .. interp
    run[interp] = function()
      local out = capture(string.format("LUA_CPATH=%s %s %s --child %s %d %d", sh_quote(cpath), sh_quote(interp),
        sh_quote(script), sh_quote(peer), n, stream_bytes))
      return { rt = grab("rt=([%d.]+)", out, "rt"), cpu = grab("cpu=([%d.]+)", out, "cpu"),
               gbps = grab("gbps=([%d.]+)", out, "gbps") }
    end
  end
  local rt, cpu, gb = {}, {}, {}
  for _, k in ipairs(names) do rt[k], cpu[k], gb[k] = {}, {}, {} end
  print(string.format("%d reps of %d exec round trips and one %d MiB stream (64 KiB chunks) each; the order rotates every rep\n",
    reps, n, math.floor(stream_bytes / 1048576)))
  for i = 1, reps do
    local line = {}
    for j = 0, #names - 1 do
      local k = names[(i - 1 + j) % #names + 1]
      local v = run[k]()
      rt[k][#rt[k] + 1] = v.rt
      gb[k][#gb[k] + 1] = v.gbps
      if v.cpu then cpu[k][#cpu[k] + 1] = v.cpu end
    end
    for _, k in ipairs(names) do line[#line + 1] = string.format("%s %.2f us %.2f GB/s", k, rt[k][i], gb[k][i]) end
    print(string.format("rep %d (load %s): %s", i, loadavg(), table.concat(line, "  ")))
  end
  local function diffs(a, b)
    local d = {}
    for i = 1, #a do d[i] = a[i] - b[i] end
    return median(d)
  end
  local fl, fg = median(rt.floor), median(gb.floor)
  print(string.format("\nmedians of %d reps, load average %s at the end", reps, loadavg()))
  print(string.format("%-24s %11s %9s %8s %8s %8s %10s %8s", "", "round trip", "- floor", "/ floor", "- core",
    "CPU/rt", "stream", "/ floor"))
  for _, k in ipairs(names) do
    local c = #cpu[k] > 0 and string.format("%.2f", median(cpu[k])) or "-"
    print(string.format("%-24s %8.2f us %+7.2f %7.2fx %+8.2f %8s %5.2f GB/s %7.2fx", label[k], median(rt[k]),
      diffs(rt[k], rt.floor), median(rt[k]) / fl, diffs(rt[k], rt.core), c, median(gb[k]), median(gb[k]) / fg))
  end
  print("\ntargets (issue 6): exec round trip <= 10 us over the floor; streamed stdout to a Lua callback >= 0.6 GB/s")
  for _, spec in ipairs(interps) do
    local k = spec:match("^([^=]+)=")
    local d, g = diffs(rt[k], rt.floor), median(gb[k])
    print(string.format("  %-8s round trip %+.2f us -> %s; stream %.2f GB/s -> %s", k, d, d <= 10 and "met" or "MISSED",
      g, g >= 0.6 and "met" or "MISSED"))
  end
  print("(round trip: us per call; '- floor' and '- core': median of the per-rep differences; CPU/rt: CPU us of the " ..
    "measuring process per round trip, all threads, peer excluded; stream: decoded GB/s, the floor's is the raw " ..
    "pipe without parsing)")
end

if arg[1] == "--child" then
  child(arg[2], tonumber(arg[3]), tonumber(arg[4]))
else
  local interps = {}
  for i = 7, #arg do interps[#interps + 1] = arg[i] end
  orchestrate(arg[1], arg[2], arg[3], tonumber(arg[4]), tonumber(arg[5]), tonumber(arg[6]), interps)
end
