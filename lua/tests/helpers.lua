-- helpers.lua - shared setup for the tests: the module, the local backend.
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

--- The matchlock-local binary: $MATCHLOCK_LOCAL_BIN, else <repo>/build/matchlock-local.
function H.local_bin()
  local b = os.getenv("MATCHLOCK_LOCAL_BIN") or (H.repo .. "/build/matchlock-local")
  if not exists(b) then
    error("matchlock-local not found at " .. b .. "; build it (make build) or set MATCHLOCK_LOCAL_BIN", 0)
  end
  return b
end

--- A client of the hostile peer (tests/peer/hostile_peer.c) in `mode`,
--- well-behaved for the first `after` requests: $MLK_HOSTILE_PEER, else
--- <repo>/build/mlk_hostile_peer.
function H.hostile(mode, after)
  local b = os.getenv("MLK_HOSTILE_PEER") or (H.repo .. "/build/mlk_hostile_peer")
  if not exists(b) then
    error("the hostile peer is not built at " .. b .. " (make build) or set MLK_HOSTILE_PEER", 0)
  end
  return H.ml.Client.new({ binary = b, env = { MLK_HOSTILE_MODE = mode, MLK_HOSTILE_AFTER = tostring(after or 0) } })
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
  local o = { binary = H.local_bin(), env = { XDG_STATE_HOME = H.state_dir() } }
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
