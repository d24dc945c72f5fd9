-- helpers.lua - shared setup for the tests: the module, the server of the
-- end-to-end tests, and the one table of what only one backend can show.
--
-- The server is $MLK_E2E_SERVER (default $MATCHLOCK_LOCAL_BIN, else the built
-- matchlock-local); scripts/test-all.sh runs the end-to-end files a second
-- time against the conformance peer (upstream's own handler with a
-- process-backed VM).  $MLK_E2E_BACKEND names the backend ("local" or
-- "conformance"); without it the server's `version` decides.  A test that
-- needs what only matchlock-local shows starts with H.needs(CAP).
local H = {}
local here = debug.getinfo(1, "S").source:sub(2):match("(.*/)") or "./"
H.repo = os.getenv("MLK_REPO") or (here .. "../..")
H.ml = require("matchlock")

H.interp = (jit and jit.version) or _VERSION

local function exists(p)
  local f = io.open(p, "rb")
  if f then f:close() return true end
  return false
end
H.exists = exists

--- The server binary: $MLK_E2E_SERVER, $MATCHLOCK_LOCAL_BIN, else <repo>/build/matchlock-local.
function H.local_bin()
  local b = os.getenv("MLK_E2E_SERVER") or os.getenv("MATCHLOCK_LOCAL_BIN") or (H.repo .. "/build/matchlock-local")
  if not exists(b) then
    error("server not found at " .. b .. "; build matchlock-local (make build) or set MLK_E2E_SERVER", 0)
  end
  return b
end

--- A client of the hostile peer (tests/peer/hostile_peer.c) in `mode`,
--- well-behaved for the first `after` requests: $MLK_HOSTILE_PEER, else
--- <repo>/build/mlk_hostile_peer.  `log`: a file that receives every request.
function H.hostile(mode, after, log)
  local b = os.getenv("MLK_HOSTILE_PEER") or (H.repo .. "/build/mlk_hostile_peer")
  if not exists(b) then
    error("the hostile peer is not built at " .. b .. " (make build) or set MLK_HOSTILE_PEER", 0)
  end
  return H.ml.Client.new({ binary = b, env = { MLK_HOSTILE_MODE = mode, MLK_HOSTILE_AFTER = tostring(after or 0), LOG = log } })
end

-- What the conformance peer cannot show, and why (its README); matchlock-local
-- shows all of it.  The same table is in tests/c/e2e_server.c.
H.CONFORMANCE_LACKS = {
  cmd_file_events = "no FUSE layer: a command's own writes produce no VFS events (only the SDK's file calls on VFS mounts do)",
  net_traffic = "no network proxy runs: no network events, hooks or allow-list enforcement on traffic",
  isolation = "commands are plain processes (no namespaces, no resource limits)",
  close_stops_commands = "upstream's close waits for in-flight requests to end, so a close while a command runs "
    .. "ends at the SDK's close deadline (the server is killed)",
  local_behaviour = "this checks matchlock-local's own behaviour where upstream's differs (docs/testing.md lists each difference)",
}

local backend_name = os.getenv("MLK_E2E_BACKEND")
function H.backend()
  if not backend_name or backend_name == "" then
    local f = io.popen("'" .. H.local_bin() .. "' version 2>/dev/null")
    local out = f and f:read("*a") or ""
    if f then f:close() end
    -- matchlock-local's version says so: "matchlock 0.1.0-local (commit: ...)"
    backend_name = (out:match("^[^\n]*") or ""):find("-local", 1, true) and "local" or "conformance"
  end
  return backend_name
end

--- Why the server cannot show cap, or nil when it can.
function H.lacks(cap)
  local why = H.CONFORMANCE_LACKS[cap]
  if not why then error("unknown capability " .. tostring(cap), 2) end
  if H.backend() == "local" then return nil end
  return why
end

--- Skip the calling test when the server cannot show cap.
function H.needs(cap)
  local why = H.lacks(cap)
  if why then error("SKIP: " .. H.backend() .. " backend: " .. why, 0) end
end

local state
--- A private state directory for the backend ($XDG_STATE_HOME when set).
function H.state_dir()
  if state then return state end
  state = os.getenv("XDG_STATE_HOME")
  if not state or state == "" then
    state = os.tmpname()
    os.remove(state)
    os.execute("mkdir -p '" .. state .. "'")
  end
  return state
end

--- Client options for the local backend, merged with extra.
function H.opts(extra)
  -- matchlock-local keeps state under $XDG_STATE_HOME, upstream under
  -- $HOME/.matchlock, the conformance peer its VM roots in $CONFPEER_STATE
  local d = H.state_dir()
  local o = { binary = H.local_bin(), env = { XDG_STATE_HOME = d, HOME = d, CONFPEER_STATE = d .. "/confpeer" } }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

function H.client(extra) return H.ml.Client.new(H.opts(extra)) end

--- A created client (alpine image name; the local backend ignores it).
function H.created(sb, extra)
  local c = H.client(extra)
  c:create(sb or H.ml.Sandbox.new("alpine:latest"))
  return c
end

--- How many descriptors this test process holds (the runner is $PPID of the shell).
function H.fds()
  local p = io.popen("ls /proc/$PPID/fd | wc -l")
  local n = tonumber(p:read("*a"))
  p:close()
  return n
end

--- Close and remove, ignoring errors.
function H.done(c)
  pcall(c.close, c)
  pcall(c.remove, c)
  pcall(c.free, c)
end

--- Dispatch c until pred() is true or timeout_ms passes.
function H.pump(c, pred, timeout_ms)
  local deadline = os.time() + math.ceil((timeout_ms or 10000) / 1000) + 1
  while not pred() do
    if os.time() > deadline then error("timed out waiting (" .. tostring(timeout_ms) .. " ms)", 2) end
    c:poll(50)
  end
end

return H
