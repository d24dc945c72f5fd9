-- helpers.lua - shared setup for the tests: the module, the server of the
-- end-to-end tests, and what the server may not show.
--
-- The server is $MLK_E2E_SERVER (default $MATCHLOCK_LOCAL_BIN, else the built
-- matchlock-local); `make test-e2e MATCHLOCK_BIN=...` names one.
-- $MLK_E2E_BACKEND names the backend ("local" or "matchlock"); without it
-- the server's `version` decides.  A test that needs what a server may lack
-- starts with H.needs(CAP), CAP from tests/e2e/capabilities.tsv, the table
-- the four languages share.
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
--- `extra`: more client options; its env is added to the peer's.
function H.hostile(mode, after, log, extra)
  local b = os.getenv("MLK_HOSTILE_PEER") or (H.repo .. "/build/mlk_hostile_peer")
  if not exists(b) then
    error("the hostile peer is not built at " .. b .. " (make build) or set MLK_HOSTILE_PEER", 0)
  end
  local o = { binary = b, env = { MLK_HOSTILE_MODE = mode, MLK_HOSTILE_AFTER = tostring(after or 0), LOG = log } }
  for k, v in pairs(extra or {}) do
    if k == "env" then
      for ek, ev in pairs(v) do o.env[ek] = ev end
    else
      o[k] = v
    end
  end
  return H.ml.Client.new(o)
end

-- tests/e2e/capabilities.tsv: capability -> { lacked_by = {backend = true}, why }
local capabilities
local function capability(cap)
  if not capabilities then
    capabilities = {}
    local path = H.repo .. "/tests/e2e/capabilities.tsv"
    local f = assert(io.open(path, "r"))
    for line in f:lines() do
      local name, by, why = line:match("^([^#\t][^\t]*)\t([^\t]*)\t([^\t]*)$")
      if name then
        local set = {}
        for b in by:gmatch("[^,]+") do set[b] = true end
        capabilities[name] = { lacked_by = set, why = why }
      end
    end
    f:close()
  end
  return capabilities[cap]
end

local backend_name = os.getenv("MLK_E2E_BACKEND")
function H.backend()
  if backend_name and backend_name ~= "" then
    if backend_name ~= "local" and backend_name ~= "matchlock" then
      error("MLK_E2E_BACKEND=" .. backend_name .. ': the backends are "local" and "matchlock"', 0)
    end
  else
    local f = io.popen("'" .. H.local_bin() .. "' version 2>/dev/null")
    local out = f and f:read("*a") or ""
    if f then f:close() end
    -- matchlock-local's version says so: "matchlock 0.1.0-local (commit: ...)";
    -- the binary's name never counts
    backend_name = (out:match("^[^\n]*") or ""):find("-local", 1, true) and "local" or "matchlock"
  end
  return backend_name
end

--- Why the server cannot show cap, or nil when it can.
function H.lacks(cap)
  local c = capability(cap)
  if not c then error("unknown capability " .. tostring(cap) .. " (not in tests/e2e/capabilities.tsv)", 2) end
  local declared = ("," .. (os.getenv("MLK_E2E_LACKS") or "") .. ","):find("," .. cap .. ",", 1, true)
  if c.lacked_by[H.backend()] or declared then return c.why end
  return nil
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
  -- $HOME/.matchlock
  local d = H.state_dir()
  local o = { binary = H.local_bin(), env = { XDG_STATE_HOME = d, HOME = d } }
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
