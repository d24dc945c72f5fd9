--- matchlock: drive Matchlock sandboxes from Lua (5.4 and LuaJIT 2.1).
--
-- A thin idiomatic layer over the C module `matchlock.core` (SWIG wrapper of
-- libmatchlock's C ABI).  Protocol logic lives in the C core; this file only
-- shapes arguments, results and errors.  See docs/lua.md.
--
--   local ml = require("matchlock")
--   local client = ml.Client.new{binary = "matchlock"}
--   client:create(ml.Sandbox.new("alpine:latest"):with_memory(1024))
--   print(client:exec("echo hi").stdout)
--   client:close()
--
-- Errors are raised as matchlock.Error objects (tables with code, name,
-- message, rpc_code, upstream, cause, and a __tostring); use pcall,
-- matchlock.try(f, ...) or obj:nothrow() for the `nil, err` style.

local core = require("matchlock.core")

local M = {}
M.core = core
M.null = core.null

local unpack = table.unpack or unpack
local floor = math.floor

-- ---------------------------------------------------------------------
-- version check: a module built against header H runs with runtime R when
-- the majors match and R >= H.
-- M._check_version(runtime, header, runtime_str) raises the error; the
-- module runs it on the real values at load (tests call it with others).
function M._check_version(runtime, header, runtime_str)
  if floor(runtime / 10000) ~= floor(header / 10000) or runtime < header then
    error(string.format("matchlock: the loaded libmatchlock is %s but this module was built for %d.%d or newer "
      .. "within major %d; install a matching libmatchlock.so.1 or rebuild the module",
      runtime_str, floor(header / 10000), floor(header / 100) % 100, floor(header / 10000)), 2)
  end
end
M._check_version(core.mlk_version(), core.HEADER_VERSION, core.mlk_version_str())
M.VERSION = core.mlk_version_str()
M._VERSION = "matchlock " .. M.VERSION

-- ---------------------------------------------------------------------
-- error codes and error objects

--- codes.EINVAL == -1, ...; names[-1] == "MLK_EINVAL"
M.codes, M.names = {}, {}
for k, v in pairs(core) do
  if type(k) == "string" and k:match("^MLK_E") and type(v) == "number" then
    M.codes[k:sub(5)] = v
    M.names[v] = k
  end
end
local C = M.codes

local Error = {}
Error.__index = Error
M.Error = Error

Error.__tostring = function(e)
  local s = (e.name or "MLK_E?") .. ": " .. tostring(e.message)
  if e.rpc_code and e.rpc_code ~= 0 then s = s .. " (rpc code " .. e.rpc_code .. ")" end
  return s
end

--- err:is("ETIMEDOUT") / err:is(ml.codes.ETIMEDOUT) / err:is("ClosedError")
function Error:is(what)
  if type(what) == "string" then
    return self.name == what or self.name == "MLK_" .. what or self.upstream == what
      or self.class == what or self.category == what
  end
  return self.code == what
end

function M.is_error(e) return getmetatable(e) == Error end

--- Make an error object.  fields: message, rpc_code, cause, op, ...
--- Its class, category and hint are the core's (mlk_error_class,
--- mlk_error_category, mlk_error_hint): the hint ends the message.
function M.new_error(code, message, fields)
  local e = fields or {}
  e.code = code
  e.name = core.mlk_errname(code) or "MLK_E?"
  e.class = core.mlk_error_class(code)
  e.category = core.mlk_error_category(code)
  e.hint = core.mlk_error_hint(code)
  message = message or core.mlk_strerror(code)
  if e.hint and not message:find(e.hint, 1, true) then message = message .. " (" .. e.hint .. ")" end
  e.message = message
  e.upstream = core.mlk_err_upstream_name(code)
  return setmetatable(e, Error)
end
local new_error = M.new_error

-- A result table (status ~= 0) as an error object.
local function result_error(res, op)
  return new_error(res.status, res.message, { rpc_code = res.rpc_code, cause = res.cause, op = op })
end

local function raise(e) error(e, 0) end

local function argerror(fname, msg)
  raise(new_error(C.EINVAL, fname .. ": " .. msg))
end

--- Call f(...) and return its results, or nil and the error.
local function tryret(ok, ...)
  if ok then return ... end
  return nil, (...)
end
function M.try(f, ...) return tryret(pcall(f, ...)) end

--- A proxy whose methods return `nil, err` instead of raising:
---   local res, err = client:nothrow():exec("false")
function M.nothrow(obj)
  return setmetatable({}, { __index = function(_, name)
    local f = obj[name]
    if type(f) ~= "function" then return f end
    return function(_, ...) return M.try(f, obj, ...) end
  end })
end

-- ---------------------------------------------------------------------
-- msgpack shaping: empty tables are maps unless marked; the builder's
-- known list fields get their empty tables marked as arrays.

local ARRAY_MT = { __matchlock = "array" }
local MAP_MT = { __matchlock = "map" }
--- Mark a table as a msgpack array (needed only for an empty one).
function M.array(t) return setmetatable(t or {}, ARRAY_MT) end
--- Mark a table as a msgpack map.
function M.map(t) return setmetatable(t or {}, MAP_MT) end
local BIN_MT = { __matchlock = "bin" }
--- A string to encode as msgpack bin (not str).
function M.bin(s)
  if type(s) ~= "string" then error("matchlock.bin: expected a string, got " .. type(s), 2) end
  return setmetatable({ s }, BIN_MT)
end

-- From the core's wire tables (mlk_rule_key_info): the keys whose value is
-- an array, so that an empty Lua table under one is encoded as [] (not {}),
-- and, per VFS hook kind, the rule key that holds its function.
local LIST_KEYS, VFS_CALLBACKS = {}, {}
for _, which in ipairs { core.MLK_INTERCEPT_NETWORK, core.MLK_INTERCEPT_VFS, core.MLK_KEYS_NETWORK_CONFIG,
  core.MLK_KEYS_VFS_CONFIG, core.MLK_KEYS_IMAGE_CONFIG } do
  local i = 0
  while true do
    local key, flags, kind = core.mlk_rule_key_info(which, i)
    if key == nil then break end
    -- bit tests without operators LuaJIT lacks
    if floor(flags / core.MLK_RULE_KEY_LIST) % 2 == 1 then LIST_KEYS[key] = true end
    if which == core.MLK_INTERCEPT_VFS and kind ~= 0 then VFS_CALLBACKS[key] = kind end
    i = i + 1
  end
end
M._LIST_KEYS, M._VFS_CALLBACKS = LIST_KEYS, VFS_CALLBACKS
local function shape(v, depth)
  if type(v) ~= "table" or getmetatable(v) or (depth or 0) > 32 then return v end
  local out = {}
  for k, x in pairs(v) do
    if LIST_KEYS[k] and type(x) == "table" and next(x) == nil and not getmetatable(x) then
      out[k] = M.array {}
    else
      out[k] = shape(x, (depth or 0) + 1)
    end
  end
  return out
end

M.encode = core.mp_encode
M.decode = core.mp_decode

-- ---------------------------------------------------------------------
-- small helpers

local function list_of(fname, what, ...)
  local n = select("#", ...)
  local first = ...
  if n == 1 and type(first) == "table" then return first end
  local t = {}
  for i = 1, n do
    local v = select(i, ...)
    if type(v) ~= "string" then
      argerror(fname, string.format("%s must be strings (or one list of strings), argument %d is a %s", what, i, type(v)))
    end
    t[i] = v
  end
  return t
end

local function check_opts(fname, opts, known)
  if opts == nil then return {} end
  if type(opts) ~= "table" then argerror(fname, "options must be a table, got " .. type(opts)) end
  for k in pairs(opts) do
    if not known[k] then
      local names = {}
      for n in pairs(known) do names[#names + 1] = n end
      table.sort(names)
      argerror(fname, string.format("unknown option %q (known: %s)", tostring(k), table.concat(names, ", ")))
    end
  end
  return opts
end

local function set(...)
  local t = {}
  for i = 1, select("#", ...) do t[select(i, ...)] = true end
  return t
end

-- ---------------------------------------------------------------------
-- configuration (shared by Client.new and the volume functions)

local CONFIG_KEYS = set("binary", "sudo", "launcher", "launcher_shell", "env", "max_line", "timeout_ms")

local function make_config(fname, opts)
  opts = check_opts(fname, opts, CONFIG_KEYS)
  local cfg = core.mlk_config_new()
  if not cfg then raise(new_error(C.ENOMEM, fname .. ": out of memory")) end
  local function ok(rc, what)
    if rc ~= 0 then raise(new_error(rc, fname .. ": " .. what .. ": " .. core.mlk_strerror(rc))) end
  end
  if opts.binary ~= nil then
    if type(opts.binary) ~= "string" then argerror(fname, "binary must be a path or a name, got " .. type(opts.binary)) end
    ok(core.mlk_config_set_binary(cfg, opts.binary), "binary")
  end
  if opts.sudo then ok(core.mlk_config_set_sudo(cfg, true), "sudo") end
  if opts.launcher ~= nil then
    if type(opts.launcher) ~= "table" then argerror(fname, "launcher must be a list of strings like {\"ssh\", \"host\"}") end
    ok(core.mlk_config_set_launcher(cfg, opts.launcher), "launcher")
  end
  -- the launcher hands its words to a shell, as ssh does: they are quoted
  if opts.launcher_shell then ok(core.mlk_config_set_launcher_shell(cfg, true), "launcher_shell") end
  if opts.env ~= nil then
    if type(opts.env) ~= "table" then argerror(fname, "env must be a table of NAME = value") end
    for k, v in pairs(opts.env) do
      if type(k) ~= "string" or (type(v) ~= "string" and type(v) ~= "number") then
        argerror(fname, "env must map string names to string values")
      end
      ok(core.mlk_config_set_env(cfg, k, tostring(v)), "env " .. k)
    end
  end
  if opts.max_line ~= nil then ok(core.mlk_config_set_max_line(cfg, opts.max_line), "max_line") end
  return cfg
end

-- ---------------------------------------------------------------------
-- hooks: Lua functions the core calls back (src/glue.c mlkL_tramp_hook)

M.HOOK_NETWORK = core.MLK_HOOK_NETWORK
M.VFS_HOOK_AFTER = core.MLK_HOOK_VFS_AFTER
M.VFS_HOOK_DANGEROUS = core.MLK_HOOK_VFS_DANGEROUS
M.VFS_HOOK_ACTION = core.MLK_HOOK_VFS_ACTION
M.VFS_HOOK_MUTATE = core.MLK_HOOK_VFS_MUTATE
local HOOK_NAMES = { network = M.HOOK_NETWORK, after = M.VFS_HOOK_AFTER, dangerous = M.VFS_HOOK_DANGEROUS,
  action = M.VFS_HOOK_ACTION, mutate = M.VFS_HOOK_MUTATE }
local KIND_LABEL = { [M.HOOK_NETWORK] = "network hook", [M.VFS_HOOK_AFTER] = "VFS after hook",
  [M.VFS_HOOK_DANGEROUS] = "VFS dangerous hook", [M.VFS_HOOK_ACTION] = "VFS action hook",
  [M.VFS_HOOK_MUTATE] = "VFS mutate hook" }

-- core client userdata -> Client (both weak: the Client holds its userdata)
local owners = setmetatable({}, { __mode = "kv" })

local function hook_kind(fname, kind)
  local k = kind
  if type(kind) == "string" then k = HOOK_NAMES[kind:lower()] end
  if type(k) ~= "number" or not KIND_LABEL[k] then
    argerror(fname, "kind must be ml.VFS_HOOK_AFTER, ml.VFS_HOOK_DANGEROUS, ml.VFS_HOOK_ACTION or ml.VFS_HOOK_MUTATE " ..
      "(or \"after\", \"dangerous\", \"action\", \"mutate\"), got " .. tostring(kind))
  end
  return floor(k)
end

local function callable(f)
  if type(f) == "function" then return true end
  local mt = getmetatable(f)
  return type(mt) == "table" and mt.__call ~= nil
end

local function err_text(e)
  if type(e) == "table" and getmetatable(e) ~= Error and e.message ~= nil then return tostring(e.message) end
  return tostring(e)
end

-- xpcall handler: the error and its traceback
local function capture(e)
  return { err = e, tb = debug.traceback(err_text(e), 2) }
end



-- A hook's answer as msgpack.  What it may hold is the core's rule
-- (mlk_hook_answer_check): a network answer that breaks it raises the
-- core's message here, so that it is reported; action and mutate answers
-- are judged by the core when it gets them (mlk_hook_reply), which fails
-- the file call with its own message.
local function network_answer(r)
  local mp = M.encode(r)
  local rc, msg = core.mlk_hook_answer_check(M.HOOK_NETWORK, mp)
  if rc ~= 0 then error(msg or "invalid network hook answer", 0) end
  return mp
end

local function vfs_answer(v) return M.encode(v) end

local ANSWER = { network_answer, nil, nil, vfs_answer, vfs_answer }

-- The function the C trampoline calls for one hook (the core says its kind):
--   runner(request, answer|nil, core_client, kind, blocking)
-- The user's function runs in a fresh coroutine, so it may yield (ml.await,
-- client:await) and answer when a later dispatch resumes it; the core's
-- token (`answer`) stays pending until then.  What it raises: network and
-- after-hooks answer with an error and report it (re-raised here, so the C
-- side keeps it for dispatch / client.on_error); action and mutate hooks
-- fail their file call with the message and traceback.
local function make_runner(fn, name)
  return function(req, answer, h, kind, blocking)
    local label = string.format("%s %q", KIND_LABEL[kind] or "hook", name or "")
    local convert = ANSWER[kind]
    local reports = kind ~= M.VFS_HOOK_ACTION and kind ~= M.VFS_HOOK_MUTATE
    local client = h and owners[h]
    if kind == M.VFS_HOOK_AFTER then
      -- plain after-hooks are suppressed while one runs (also while one
      -- waits in a coroutine; the core covers the synchronous part)
      if client then
        if client._plain_hook_active then return end
        client._plain_hook_active = true
      end
    end
    local function body()
      local ok, v = xpcall(function()
        if kind == M.VFS_HOOK_DANGEROUS then return fn(client, req) end
        return fn(req)
      end, capture)
      if ok and convert then ok, v = xpcall(function() return convert(v) end, capture) end
      if kind == M.VFS_HOOK_AFTER and client then client._plain_hook_active = nil end
      if answer and core.hook_pending(answer) then
        if ok then
          core.hook_reply(answer, v)
        else
          core.hook_fail(answer, reports and err_text(v.err) or v.tb)
        end
      end
      if not ok and reports then error(label .. " failed: " .. v.tb, 0) end
    end
    local co = coroutine.create(body)
    local ok, err = coroutine.resume(co)
    if not ok then error(err, 0) end
    if answer and blocking and coroutine.status(co) == "suspended" and core.hook_pending(answer) then
      core.hook_fail(answer, label .. " waited (yielded) inside a blocking call, where nothing can resume it; " ..
        "answer before returning, or use the _async form of the call")
    end
  end
end

-- ---------------------------------------------------------------------
-- Sandbox: the fluent builder over mlk_sandbox_*

local Sandbox = {}
Sandbox.__index = Sandbox
M.Sandbox = Sandbox

--- Sandbox.new(image) -> builder.  Every method returns the builder.
function Sandbox.new(image)
  if image ~= nil and type(image) ~= "string" then argerror("Sandbox.new", "image must be a string such as \"alpine:latest\"") end
  local h = core.mlk_sandbox_new(image or "")
  if not h then raise(new_error(C.ENOMEM, "Sandbox.new: out of memory")) end
  return setmetatable({ _h = h }, Sandbox)
end
M.sandbox = Sandbox.new
Sandbox.nothrow = M.nothrow

function M.is_sandbox(v) return getmetatable(v) == Sandbox end

-- A failed setter: the builder's own message says why (the builder keeps
-- the first failure and reports it again at create), read without
-- rendering the create params (and their secrets).
local function sb_check(self, rc, what)
  if rc ~= 0 then
    local erc, msg = core.mlk_sandbox_error(self._h)
    if erc ~= rc or not msg then msg = what .. ": " .. core.mlk_strerror(rc) end
    raise(new_error(rc, msg, { op = what }))
  end
  return self
end

-- A string argument that would be cut short at a NUL: the core's error
-- (it names the argument and the offset, never the value).
local function nul_free(fname, what, v)
  if type(v) == "string" and v:find("\0", 1, true) then
    local rc, msg = core.mlk_check_cstring(what, v)
    raise(new_error(rc, msg, { op = fname }))
  end
  return v
end

-- What tostring() shows of a builder: never its options (they may hold
-- secrets; they live in the core, not in the Lua table).
Sandbox.__tostring = function() return "matchlock.Sandbox" end

-- Register fn as a hook of `kind` on the builder; rule is the wire rule
-- (the key holding fn is dropped; another function is sent as `true`, which
-- the core refuses by its name).
local function add_hook(self, fname, kind, rule, fn)
  if not callable(fn) then
    raise(new_error(kind == M.HOOK_NETWORK and C.EINVALID_NET_HOOK or C.EINVALID_VFS_HOOK,
      fname .. ": the hook must be a function, got " .. type(fn)))
  end
  local wire = {}
  for k, v in pairs(rule or {}) do
    if v ~= fn then wire[k] = callable(v) or v end
  end
  local mp = next(wire) and M.encode(M.map(shape(wire))) or nil
  if not self._hk then self._hk = core.hooks_new() end
  return sb_check(self, core.sandbox_add_hook(self._h, self._hk, kind, mp, make_runner(fn, rule and rule.name)), fname)
end

local function num(fname, v, what)
  if type(v) ~= "number" then argerror(fname, what .. " must be a number, got " .. type(v)) end
  return v
end

function Sandbox:with_cpus(n) return sb_check(self, core.mlk_sandbox_set_cpus(self._h, num("with_cpus", n, "cpus")), "with_cpus") end
function Sandbox:with_memory(mb) return sb_check(self, core.mlk_sandbox_set_memory_mb(self._h, num("with_memory", mb, "memory (MiB)")), "with_memory") end
function Sandbox:with_disk_size(mb) return sb_check(self, core.mlk_sandbox_set_disk_size_mb(self._h, num("with_disk_size", mb, "disk size (MiB)")), "with_disk_size") end
function Sandbox:with_timeout(s) return sb_check(self, core.mlk_sandbox_set_timeout_s(self._h, num("with_timeout", s, "timeout (s)")), "with_timeout") end
function Sandbox:with_privileged(on) return sb_check(self, core.mlk_sandbox_set_privileged(self._h, on ~= false), "with_privileged") end
function Sandbox:with_workspace(p) return sb_check(self, core.mlk_sandbox_set_workspace(self._h, p), "with_workspace") end
-- Owner overrides {owner_uid = N, owner_gid = N} (each optional, 0..4294967295,
-- checked by the core) of the mount at g.
local function mount_owner(self, fname, g, owner)
  if owner == nil then return self end
  if type(owner) ~= "table" then argerror(fname, "owner must be a table {owner_uid = N, owner_gid = N}") end
  for k in pairs(owner) do
    if k ~= "owner_uid" and k ~= "owner_gid" then argerror(fname, "unknown owner key '" .. tostring(k) .. "'") end
  end
  local uid, gid = owner.owner_uid, owner.owner_gid
  if uid ~= nil then num(fname, uid, "owner_uid") end
  if gid ~= nil then num(fname, gid, "owner_gid") end
  local which = (uid ~= nil and core.MLK_MOUNT_OWNER_UID or 0) + (gid ~= nil and core.MLK_MOUNT_OWNER_GID or 0)
  if which == 0 then return self end
  return sb_check(self, core.mlk_sandbox_set_mount_owner(self._h, g, which, uid or 0, gid or 0), fname)
end

--- sb:mount_host_dir(guest, host [, {owner_uid = N, owner_gid = N}])
function Sandbox:mount_host_dir(g, h, owner)
  sb_check(self, core.mlk_sandbox_mount_host_dir(self._h, g, h), "mount_host_dir")
  return mount_owner(self, "mount_host_dir", g, owner)
end
--- sb:mount_host_dir_readonly(guest, host [, owner]) (owner as mount_host_dir)
function Sandbox:mount_host_dir_readonly(g, h, owner)
  sb_check(self, core.mlk_sandbox_mount_host_dir_readonly(self._h, g, h), "mount_host_dir_readonly")
  return mount_owner(self, "mount_host_dir_readonly", g, owner)
end
function Sandbox:mount_memory(g) return sb_check(self, core.mlk_sandbox_mount_memory(self._h, g), "mount_memory") end
function Sandbox:mount_overlay(g, h) return sb_check(self, core.mlk_sandbox_mount_overlay(self._h, g, h), "mount_overlay") end
function Sandbox:with_env(k, v) return sb_check(self, core.mlk_sandbox_set_env(self._h, k, tostring(v)), "with_env") end
function Sandbox:with_env_map(t)
  if type(t) ~= "table" then argerror("with_env_map", "expected a table of NAME = value") end
  return sb_check(self, core.mlk_sandbox_set_env_map(self._h, M.map(shape(t))), "with_env_map")
end
function Sandbox:allow_host(...)
  for _, h in ipairs(list_of("allow_host", "hosts", ...)) do
    sb_check(self, core.mlk_sandbox_allow_host(self._h, h), "allow_host")
  end
  return self
end
function Sandbox:add_host(host, ip) return sb_check(self, core.mlk_sandbox_add_host(self._h, host, ip), "add_host") end
function Sandbox:add_secret(name, value, ...)
  local f = "add_secret"
  return sb_check(self, core.mlk_sandbox_add_secret(self._h, nul_free(f, "secret name", name),
    nul_free(f, "secret value", value), nil, list_of(f, "hosts", ...)), f)
end
function Sandbox:add_secret_with_placeholder(name, value, placeholder, ...)
  local f = "add_secret_with_placeholder"
  return sb_check(self, core.mlk_sandbox_add_secret(self._h, nul_free(f, "secret name", name),
    nul_free(f, "secret value", value), nul_free(f, "placeholder", placeholder), list_of(f, "hosts", ...)), f)
end
function Sandbox:block_private_ips() return sb_check(self, core.mlk_sandbox_set_block_private_ips(self._h, true), "block_private_ips") end
function Sandbox:allow_private_ips() return sb_check(self, core.mlk_sandbox_set_block_private_ips(self._h, false), "allow_private_ips") end
function Sandbox:with_block_private_ips(on) return sb_check(self, core.mlk_sandbox_set_block_private_ips(self._h, on and true or false), "with_block_private_ips") end
function Sandbox:unset_block_private_ips() return sb_check(self, core.mlk_sandbox_unset_block_private_ips(self._h), "unset_block_private_ips") end
function Sandbox:with_dns_servers(...) return sb_check(self, core.mlk_sandbox_set_dns_servers(self._h, list_of("with_dns_servers", "servers", ...)), "with_dns_servers") end
function Sandbox:with_hostname(h) return sb_check(self, core.mlk_sandbox_set_hostname(self._h, h), "with_hostname") end
function Sandbox:with_network_mtu(n) return sb_check(self, core.mlk_sandbox_set_network_mtu(self._h, num("with_network_mtu", n, "mtu")), "with_network_mtu") end
function Sandbox:with_no_network(on) return sb_check(self, core.mlk_sandbox_set_no_network(self._h, on ~= false), "with_no_network") end
-- A whole interception config to the core (mlk_sandbox_set_interception),
-- which splits the static rules from the callback rules and checks both;
-- a function in a rule becomes `true` and the runner of the n-th callback.
local function set_interception(self, fname, which, cfg)
  local wire, runners = {}, {}
  for k, v in pairs(cfg) do wire[k] = v end
  if type(cfg.rules) == "table" then
    wire.rules = {}
    for i, r in ipairs(cfg.rules) do
      if type(r) == "table" and not getmetatable(r) then
        local c = {}
        for k, v in pairs(r) do
          if callable(v) then
            c[k] = true
            runners[#runners + 1] = make_runner(v, r.name)
          else
            c[k] = v
          end
        end
        r = c
      end
      wire.rules[i] = r
    end
  end
  if not self._hk then self._hk = core.hooks_new() end
  return sb_check(self, core.sandbox_set_interception(self._h, self._hk, which, M.encode(M.map(shape(wire))), runners),
    fname)
end

--- Force interception; cfg (optional) is {rules = {RULE...}} (PROTOCOL section 5).
--- A table replaces the earlier static rules and network hooks; rules with
--- a `hook = function(request) ... end` become network hooks (see
--- add_network_hook).  nil only forces interception.
function Sandbox:with_network_interception(cfg)
  if cfg == nil then
    return sb_check(self, core.mlk_sandbox_set_network_interception(self._h, nil), "with_network_interception")
  end
  if type(cfg) ~= "table" then argerror("with_network_interception", "expected nil or {rules = {...}}") end
  return set_interception(self, "with_network_interception", core.MLK_INTERCEPT_NETWORK, cfg)
end
--- VFS interception: {emit_events = bool, rules = {...}}; nil clears it.
--- A table replaces the earlier rules and VFS hooks; rules with `hook`
--- (after), `dangerous_hook`, `action_hook` or `mutate_hook` functions
--- become VFS hooks (see add_vfs_hook).
function Sandbox:with_vfs_interception(cfg)
  if cfg == nil then
    sb_check(self, core.mlk_sandbox_set_vfs_interception(self._h, nil), "with_vfs_interception")
    for kind = M.VFS_HOOK_AFTER, M.VFS_HOOK_MUTATE do self:clear_hooks(kind) end
    return self
  end
  if type(cfg) ~= "table" then argerror("with_vfs_interception", "expected nil or {emit_events = ..., rules = {...}}") end
  return set_interception(self, "with_vfs_interception", core.MLK_INTERCEPT_VFS, cfg)
end

--- Add a network hook: fn(request) -> answer table or nil, called for each
--- request/response matching rule {name, phase, hosts, methods, path,
--- timeout_ms} (plus optional static mutations).  See docs/lua.md.
function Sandbox:add_network_hook(rule, fn)
  if type(rule) == "function" and fn == nil then rule, fn = nil, rule end
  if rule ~= nil and type(rule) ~= "table" then argerror("add_network_hook", "rule must be a table {name, phase, hosts, ...} or nil") end
  fn = fn or (rule and rule.hook)
  return add_hook(self, "add_network_hook", M.HOOK_NETWORK, rule, fn)
end

--- Add a VFS hook of kind ml.VFS_HOOK_AFTER | _DANGEROUS | _ACTION | _MUTATE
--- (or "after", "dangerous", "action", "mutate"); rule {name, phase, ops,
--- path} (nil: every file).  after: fn(event); dangerous: fn(client, event);
--- action: fn(request) -> "allow" | "block"; mutate: fn(request) -> bytes | nil.
function Sandbox:add_vfs_hook(kind, rule, fn)
  kind = hook_kind("add_vfs_hook", kind)
  if kind == M.HOOK_NETWORK then
    raise(new_error(C.EINVALID_VFS_HOOK, "add_vfs_hook: network hooks are added with add_network_hook"))
  end
  if type(rule) == "function" and fn == nil then rule, fn = nil, rule end
  if rule ~= nil and type(rule) ~= "table" then argerror("add_vfs_hook", "rule must be a table {name, phase, ops, path} or nil") end
  if fn == nil and rule then
    for k, kk in pairs(VFS_CALLBACKS) do if kk == kind then fn = rule[k] end end
  end
  return add_hook(self, "add_vfs_hook", kind, rule, fn)
end

--- Remove the builder's hooks of one kind (nil or 0: all).  Clients
--- created before keep theirs.
function Sandbox:clear_hooks(kind)
  kind = kind == nil and 0 or (kind == 0 and 0 or hook_kind("clear_hooks", kind))
  if not self._hk then return self end
  return sb_check(self, core.sandbox_clear_hooks(self._h, self._hk, kind), "clear_hooks")
end

function Sandbox:add_port_forward(...)
  for _, s in ipairs(list_of("add_port_forward", "specs", ...)) do
    sb_check(self, core.mlk_sandbox_add_port_forward(self._h, s), "add_port_forward")
  end
  return self
end
function Sandbox:with_port_forward_addresses(...)
  return sb_check(self, core.mlk_sandbox_set_port_forward_addresses(self._h, list_of("with_port_forward_addresses", "addresses", ...)), "with_port_forward_addresses")
end
function Sandbox:with_user(u) return sb_check(self, core.mlk_sandbox_set_user(self._h, u), "with_user") end
function Sandbox:with_entrypoint(...) return sb_check(self, core.mlk_sandbox_set_entrypoint(self._h, list_of("with_entrypoint", "arguments", ...)), "with_entrypoint") end
--- Merge {user, working_dir, entrypoint, cmd, env}: non-empty fields replace.
function Sandbox:with_image_config(cfg)
  if type(cfg) ~= "table" then argerror("with_image_config", "expected a table {user, working_dir, entrypoint, cmd, env}") end
  return sb_check(self, core.mlk_sandbox_set_image_config(self._h, M.map(shape(cfg))), "with_image_config")
end
function Sandbox:with_kernel(ref) return sb_check(self, core.mlk_sandbox_set_kernel(self._h, ref), "with_kernel") end
function Sandbox:add_extra_disk(host_path, guest_mount, readonly)
  return sb_check(self, core.mlk_sandbox_add_extra_disk(self._h, host_path, guest_mount, readonly and true or false), "add_extra_disk")
end

--- The `create` params as JSON text (validates; raises on a broken builder).
function Sandbox:params_json(launch)
  local rc, json, msg = core.mlk_sandbox_params_json(self._h, launch and 1 or 0)
  if rc ~= 0 then raise(new_error(rc, msg or core.mlk_strerror(rc), { op = "params_json" })) end
  return json
end

-- ---------------------------------------------------------------------
-- Exec handles

-- A handle refers to its client weakly: the callbacks of a call in flight
-- hold their handle, and a strong reference would keep a dropped client
-- (and its process) alive until the call completes.
local Exec = {}
local WEAK_V = { __mode = "v" }
Exec.__index = function(t, k)
  if k == "client" then return rawget(t, "_ref").client end
  return Exec[k]
end
M.Exec = Exec

local function new_handle(client, op)
  return setmetatable({ _ref = setmetatable({ client = client }, WEAK_V), op = op }, Exec)
end

local function handle_core(self, what)
  local c = self.client
  if not c then raise(new_error(C.ECLOSED, what .. ": the client of this call was collected")) end
  return c._h
end

local function op_check(self, rc, what)
  if rc ~= 0 then
    raise(new_error(rc, what .. ": " .. core.mlk_strerror(rc) .. (self.op and "" or " (the exec has no id yet: use it from on_ready or after exec_async)"), { op = what }))
  end
  return true
end

--- Queue stdin bytes (pipe/TTY).  Returns true, or false when too much is
--- buffered (MLK_EAGAIN: let the exec drain, dispatch, and retry).
function Exec:write(data)
  if type(data) ~= "string" then argerror("Exec:write", "data must be a string") end
  if not self.op then return op_check(self, C.ESTATE, "Exec:write") end
  local rc = core.mlk_stdin_write(handle_core(self, "Exec:write"), self.op, data)
  if rc == C.EAGAIN then return false end
  return op_check(self, rc, "Exec:write")
end
function Exec:close_stdin()
  if not self.op then return op_check(self, C.ESTATE, "Exec:close_stdin") end
  return op_check(self, core.mlk_stdin_close(handle_core(self, "Exec:close_stdin"), self.op), "Exec:close_stdin")
end
function Exec:resize(rows, cols)
  if not self.op then return op_check(self, C.ESTATE, "Exec:resize") end
  return op_check(self, core.mlk_tty_resize(handle_core(self, "Exec:resize"), self.op, rows, cols), "Exec:resize")
end
--- Cancel: the call completes at once with MLK_ECANCELED.
function Exec:cancel()
  if not self.op then return op_check(self, C.ESTATE, "Exec:cancel") end
  return op_check(self, core.mlk_cancel(handle_core(self, "Exec:cancel"), self.op), "Exec:cancel")
end

-- ---------------------------------------------------------------------
-- Client

local Client = {}
Client.__index = Client
M.Client = Client
Client.nothrow = M.nothrow

local live = setmetatable({}, { __mode = "k" })
local ClosedClient -- the metatable of a client whose close completed (below)

--- Client.new{binary=, sudo=, launcher={...}, launcher_shell=, env={...}, max_line=, timeout_ms=}
--- starts `[launcher...] [sudo] binary rpc` (launcher_shell = true: the
--- launcher hands its words to a shell, as ssh does, so they are quoted).  timeout_ms is the default
--- deadline of every call made through this client (0: none).
function Client.new(opts)
  opts = opts or {}
  local cfg = make_config("Client.new", opts)
  local rc, h, res = core.client_new(cfg)
  if rc ~= 0 then raise(result_error(res or { status = rc, message = core.mlk_strerror(rc) }, "Client.new")) end
  local self = setmetatable({ _h = h, _cfg = cfg, _timeout = opts.timeout_ms or 0 }, Client)
  live[self] = true
  owners[h] = self
  return self
end
M.new = Client.new

function M.is_client(v) local mt = getmetatable(v) return mt == Client or mt == ClosedClient end

local function tmo(self, opts) return (opts and opts.timeout_ms) or self._timeout end

local function ok_result(res, op)
  if res.status ~= 0 then raise(result_error(res, op)) end
  return res
end

local TIMEOUT_ONLY = set("timeout_ms")

local function as_sandbox(fname, sb)
  if type(sb) == "string" then return Sandbox.new(sb) end
  if getmetatable(sb) ~= Sandbox then argerror(fname, "expected a matchlock.Sandbox (or an image name), got " .. type(sb)) end
  return sb
end

-- The builder handle for create/launch on self: the client first takes a
-- reference on the builder's hooks (the core copies them into the client).
local function create_handle(self, fname, sb)
  sb = as_sandbox(fname, sb)
  if sb._hk then core.client_adopt_hooks(self._h, sb._hk) end
  return sb._h
end

--- Create the sandbox (then apply its port forwards); returns the VM id.
function Client:create(sb, opts)
  opts = check_opts("create", opts, TIMEOUT_ONLY)
  local _, res = core.mlk_create(self._h, create_handle(self, "create", sb), tmo(self, opts))
  return ok_result(res, "create").data
end

--- As create, and start the image's entrypoint.
function Client:launch(sb, opts)
  opts = check_opts("launch", opts, TIMEOUT_ONLY)
  local _, res = core.mlk_launch(self._h, create_handle(self, "launch", sb), tmo(self, opts))
  return ok_result(res, "launch").data
end

function Client:vm_id()
  if self._released then return self._vm_id end
  return core.mlk_client_vm_id(self._h)
end
function Client:stderr_tail()
  if self._released then return self._tail end
  return core.mlk_client_stderr_tail(self._h)
end
--- The pollable fd: readable when callbacks wait for dispatch().
function Client:fd() return core.mlk_client_fd(self._h) end

local function callback_error(err, nerr)
  local msg = M.is_error(err) and tostring(err) or tostring(err)
  return new_error(C.EUSER, "a Lua callback raised an error" ..
    ((nerr or 1) > 1 and string.format(" (and %d more)", nerr - 1) or "") .. ": " .. msg, { cause = err })
end

--- Run waiting callbacks (async completions, output, events) on this
--- thread; at most `max` (0/nil: all).  Returns how many ran.  A callback
--- that raised is reported after all ran: to self.on_error(err) when set,
--- else raised as MLK_EUSER with the original error in err.cause.
function Client:dispatch(max)
  local n, err, nerr = core.dispatch(self._h, max or 0)
  if err ~= nil then
    local e = callback_error(err, nerr)
    if self.on_error then self.on_error(e) else raise(e) end
  end
  return n
end

--- Wait up to timeout_ms (nil/0: do not wait; < 0: no limit) for callbacks,
--- then dispatch them.  Returns how many ran.
function Client:poll(timeout_ms, max)
  if timeout_ms and timeout_ms ~= 0 then core.wait(self._h, timeout_ms) end
  return self:dispatch(max)
end

--- Wait up to timeout_ms (< 0: no limit) until callbacks are waiting,
--- without running them.  Returns true when some are.
function Client:wait(timeout_ms)
  return core.wait(self._h, timeout_ms or 0)
end

--- Dispatch every live client (a host's once-per-frame call).
function M.poll(max)
  local total, first = 0, nil
  for c in pairs(live) do
    if c._h then
      local ok, n = pcall(c.dispatch, c, max)
      if ok then total = total + n elseif not first then first = n end
    end
  end
  if first ~= nil then raise(first) end
  return total
end

--- Register fn(event) for `event` notifications (nil removes it).
function Client:on_event(fn)
  if fn ~= nil and type(fn) ~= "function" then argerror("on_event", "expected a function or nil") end
  core.set_event_cb(self._h, fn)
  return self
end

-- exec ------------------------------------------------------------------

local MODES = { buffered = 0, stream = 1, pipe = 2, tty = 3 }
M.MODES = MODES
local EXEC_KEYS = set("mode", "working_dir", "user", "timeout_ms", "stdin", "interactive", "rows", "cols",
  "on_stdout", "on_stderr", "on_output", "on_ready")

local cached_opts = {}

-- Returns opts handle (or nil), the output function and the ready function.
local function exec_setup(self, fname, opts, force_mode, handle)
  opts = check_opts(fname, opts, EXEC_KEYS)
  local mode = force_mode or opts.mode
  if type(mode) == "string" then
    local m = MODES[mode]
    if not m then argerror(fname, "mode must be one of buffered, stream, pipe, tty; got " .. mode) end
    mode = m
  end
  local on_out, on_so, on_se, on_ready = opts.on_output, opts.on_stdout, opts.on_stderr, opts.on_ready
  if mode == nil then
    if opts.stdin ~= nil or opts.interactive or on_ready then mode = 2
    elseif on_out or on_so or on_se then mode = 1
    else mode = 0 end
  end
  for _, f in ipairs { "on_output", "on_stdout", "on_stderr", "on_ready" } do
    if opts[f] ~= nil and type(opts[f]) ~= "function" then argerror(fname, f .. " must be a function") end
  end
  if mode == 0 and (on_out or on_so or on_se or on_ready) then
    argerror(fname, "output callbacks need mode stream, pipe or tty (buffered exec returns stdout in the result)")
  end
  if opts.stdin ~= nil and type(opts.stdin) ~= "string" then argerror(fname, "stdin must be a string") end
  local t = tmo(self, opts)
  local plain = opts.working_dir == nil and opts.user == nil and t == 0 and opts.stdin == nil
    and not opts.interactive and opts.rows == nil and opts.cols == nil
  local o
  if plain then
    if mode ~= 0 then
      o = cached_opts[mode]
      if not o then
        o = core.mlk_exec_opts_new()
        core.mlk_exec_opts_set_mode(o, mode)
        cached_opts[mode] = o
      end
    end
  else
    o = core.mlk_exec_opts_new()
    if not o then raise(new_error(C.ENOMEM, fname .. ": out of memory")) end
    local function ok(rc, what) if rc ~= 0 then argerror(fname, what .. ": " .. core.mlk_strerror(rc)) end end
    ok(core.mlk_exec_opts_set_mode(o, mode), "mode")
    if opts.working_dir then ok(core.mlk_exec_opts_set_working_dir(o, opts.working_dir), "working_dir") end
    if opts.user then ok(core.mlk_exec_opts_set_user(o, opts.user), "user") end
    if t and t ~= 0 then ok(core.mlk_exec_opts_set_timeout_ms(o, t), "timeout_ms must be >= 0") end
    if opts.rows or opts.cols then ok(core.mlk_exec_opts_set_tty_size(o, opts.rows or 24, opts.cols or 80), "rows/cols") end
    if opts.stdin then ok(core.mlk_exec_opts_set_stdin(o, opts.stdin), "stdin") end
    if opts.interactive then ok(core.mlk_exec_opts_set_interactive_stdin(o, true), "interactive") end
  end
  local out
  if on_out then
    out = function(fd, data, op) handle.op = op; on_out(fd, data, handle) end
  elseif on_so or on_se then
    out = function(fd, data, op)
      handle.op = op
      if fd == 1 then if on_so then on_so(data, handle) end
      elseif on_se then on_se(data, handle) end
    end
  end
  local ready
  if on_ready then ready = function(op) handle.op = op; on_ready(handle) end
  elseif mode >= 2 then ready = function(op) handle.op = op end end
  return o, out, ready
end

local function exec_result(res, handle)
  res.status, res.data = nil, nil
  res.ok = res.exit_code == 0
  return res
end

--- Run a command and wait.  opts: mode ("buffered" | "stream" | "pipe" |
--- "tty"; default from the other options), working_dir, user, timeout_ms,
--- stdin (bytes, then EOF), interactive (keep stdin open: write from
--- on_ready/on_stdout through the handle), rows, cols, on_stdout(data,
--- exec), on_stderr(data, exec), on_output(fd, data, exec), on_ready(exec).
--- Returns {exit_code, stdout, stderr, duration_ms, ok}; a non-zero exit
--- code is a result, not an error.
function Client:exec(cmd, opts)
  if type(cmd) ~= "string" then argerror("exec", "command must be a string (a shell command line)") end
  local handle = new_handle(self)
  local o, out, ready = exec_setup(self, "exec", opts, nil, handle)
  local _, res = core.exec(self._h, cmd, o, out, ready)
  return exec_result(ok_result(res, "exec"), handle)
end

local function with_mode(mode)
  return function(self, cmd, opts)
    if type(opts) == "function" then opts = { on_output = opts } end
    opts = opts or {}
    if opts.mode ~= nil then argerror("exec_" .. mode, "mode is fixed by this method; drop the mode option") end
    local copy = {}
    for k, v in pairs(opts) do copy[k] = v end
    copy.mode = mode
    return self:exec(cmd, copy)
  end
end
--- exec_stream(cmd, opts | on_output(fd, data, exec))
Client.exec_stream = with_mode("stream")
--- exec_pipe(cmd, opts): stdin = bytes or interactive = true
Client.exec_pipe = with_mode("pipe")
--- exec_tty(cmd, opts): rows, cols; stderr arrives merged in stdout
Client.exec_tty = with_mode("tty")

--- Start an exec; done(result, err, exec) runs from dispatch().  Returns the
--- exec handle (write, close_stdin, resize, cancel).
function Client:exec_async(cmd, opts, done)
  if type(opts) == "function" and done == nil then opts, done = nil, opts end
  if type(cmd) ~= "string" then argerror("exec_async", "command must be a string") end
  if type(done) ~= "function" then argerror("exec_async", "done must be a function(result, err, exec)") end
  local handle = new_handle(self)
  local o, out, ready = exec_setup(self, "exec_async", opts, nil, handle)
  local rc, op = core.exec_async(self._h, cmd, o, out, ready, function(res)
    if res.status ~= 0 then done(nil, result_error(res, "exec"), handle)
    else done(exec_result(res, handle), nil, handle) end
  end)
  if rc ~= 0 then raise(new_error(rc, "exec_async: " .. core.mlk_strerror(rc))) end
  handle.op = op
  return handle
end

-- files and logs ----------------------------------------------------------

local WRITE_KEYS = set("mode", "timeout_ms")

function Client:write_file(path, data, opts)
  if type(opts) == "number" then opts = { mode = opts } end
  opts = check_opts("write_file", opts, WRITE_KEYS)
  if type(data) ~= "string" then argerror("write_file", "data must be a string (bytes)") end
  local _, res = core.mlk_write_file(self._h, path, data, opts.mode or 0, tmo(self, opts))
  ok_result(res, "write_file")
  return true
end

function Client:read_file(path, opts)
  opts = check_opts("read_file", opts, TIMEOUT_ONLY)
  local _, res = core.mlk_read_file(self._h, path, tmo(self, opts))
  return ok_result(res, "read_file").data
end

--- -> list of {name, size, mode, mod_time, is_dir}
function Client:list_files(path, opts)
  opts = check_opts("list_files", opts, TIMEOUT_ONLY)
  local _, res = core.mlk_list_files(self._h, path, tmo(self, opts))
  return ok_result(res, "list_files").value or {}
end

local function async_start(self, fname, rc, op)
  if rc ~= 0 then raise(new_error(rc, fname .. ": " .. core.mlk_strerror(rc))) end
  return new_handle(self, op)
end

local function done_with(done, op_name, pick)
  return function(res)
    if res.status ~= 0 then done(nil, result_error(res, op_name)) else done(pick(res)) end
  end
end

function Client:write_file_async(path, data, opts, done)
  if type(opts) == "function" and done == nil then opts, done = nil, opts end
  if type(opts) == "number" then opts = { mode = opts } end
  opts = check_opts("write_file_async", opts, WRITE_KEYS)
  if type(done) ~= "function" then argerror("write_file_async", "done must be a function(ok, err)") end
  local rc, op = core.write_file_async(self._h, path, data, opts.mode or 0, tmo(self, opts),
    done_with(done, "write_file", function() return true end))
  return async_start(self, "write_file_async", rc, op)
end

function Client:read_file_async(path, opts, done)
  if type(opts) == "function" and done == nil then opts, done = nil, opts end
  opts = check_opts("read_file_async", opts, TIMEOUT_ONLY)
  if type(done) ~= "function" then argerror("read_file_async", "done must be a function(data, err)") end
  local rc, op = core.read_file_async(self._h, path, tmo(self, opts),
    done_with(done, "read_file", function(r) return r.data end))
  return async_start(self, "read_file_async", rc, op)
end

function Client:list_files_async(path, opts, done)
  if type(opts) == "function" and done == nil then opts, done = nil, opts end
  opts = check_opts("list_files_async", opts, TIMEOUT_ONLY)
  if type(done) ~= "function" then argerror("list_files_async", "done must be a function(entries, err)") end
  local rc, op = core.list_files_async(self._h, path, tmo(self, opts),
    done_with(done, "list_files", function(r) return r.value or {} end))
  return async_start(self, "list_files_async", rc, op)
end

--- The VM log so far.
function Client:log(opts)
  opts = check_opts("log", opts, TIMEOUT_ONLY)
  local _, res = core.mlk_log(self._h, tmo(self, opts))
  return ok_result(res, "log").data
end

--- Follow the log: on_data(bytes) from dispatch() until handle:cancel()
--- (done then gets an MLK_ECANCELED error) or the VM ends.
function Client:log_follow(on_data, done)
  if type(on_data) ~= "function" then argerror("log_follow", "on_data must be a function(data)") end
  done = done or function() end
  local rc, op = core.log_follow_async(self._h, function(_, data) on_data(data) end,
    done_with(done, "log_follow", function() return true end))
  return async_start(self, "log_follow", rc, op)
end

-- network --------------------------------------------------------------

--- allow_list_add(hosts | host, ..., opts?) -> {added = {...}, allowed_hosts = {...}}
function Client:allow_list_add(hosts, opts)
  opts = check_opts("allow_list_add", opts, TIMEOUT_ONLY)
  local _, res = core.mlk_allow_list_add(self._h, hosts, tmo(self, opts))
  return ok_result(res, "allow_list_add").value
end

function Client:allow_list_delete(hosts, opts)
  opts = check_opts("allow_list_delete", opts, TIMEOUT_ONLY)
  local _, res = core.mlk_allow_list_delete(self._h, hosts, tmo(self, opts))
  return ok_result(res, "allow_list_delete").value
end

--- port_forward(specs, {addresses = {...}, timeout_ms = }) -> list of
--- {address, local_port, remote_port}.  Replaces earlier forwards.
function Client:port_forward(specs, opts)
  opts = check_opts("port_forward", opts, set("addresses", "timeout_ms"))
  local _, res = core.mlk_port_forward(self._h, specs, opts.addresses, tmo(self, opts))
  return ok_result(res, "port_forward").value or {}
end

-- lifecycle --------------------------------------------------------------

--- Close: `close` RPC, then wait for the process (timeout_s 0: short grace).
function Client:close(timeout_s)
  if self._released then return true end
  local _, res = core.mlk_close(self._h, timeout_s or 0)
  self:_release_if_done()
  ok_result(res, "close")
  return true
end

-- A client whose close completed.  Its C client is freed, so every call
-- that needs one raises what the core answers a closed client.
local CLOSED_MSG = "client closed: this call needs an open client (create a new one)"
ClosedClient = { __index = function(_, k)
  if k == "_h" then raise(new_error(C.ECLOSED, CLOSED_MSG)) end
  return Client[k]
end }

-- Once closed, the C client is freed at once (its notification fd goes now,
-- not at collection; the core released the process's pipes when the close
-- ended).  The vm id and the config stay for remove() (mlk_remove_vm).
function Client:_release_if_done()
  if self._released then return end
  self._vm_id = core.mlk_client_vm_id(self._h)
  self._tail = core.mlk_client_stderr_tail(self._h)
  self:free()
  self._released = true
  self._freed_h, self._h = self._h, nil -- free() puts it back: then calls say "freed"
  setmetatable(self, ClosedClient)
end

-- After close: `matchlock rm` with the config and the kept vm id.
local function remove_closed(self)
  if not self._vm_id then
    return { status = C.ENOTCREATED, message = "remove: no sandbox was created by this client" }
  end
  local _, res = core.mlk_remove_vm(self._cfg, self._vm_id)
  return res
end

--- `matchlock rm <vm-id>` (after close).
function Client:remove()
  local res
  if self._released then res = remove_closed(self) else res = select(2, core.mlk_remove(self._h)) end
  ok_result(res, "remove")
  return true
end

--- Close and release the client now (instead of at collection).
function Client:free()
  local h = rawget(self, "_h")
  if h then core.client_free(h) end
  if getmetatable(self) == ClosedClient then
    self._h = self._freed_h
    setmetatable(self, Client)
  end
  live[self] = nil
end

-- volumes (CLI side channel) ---------------------------------------------

local function volume_cfg(self_or_opts, fname)
  if M.is_client(self_or_opts) then return self_or_opts._cfg end
  return make_config(fname, self_or_opts)
end

--- volume_create(name, size_mb, client_opts?) -> {name, size, path}
function M.volume_create(name, size_mb, opts)
  local _, res = core.mlk_volume_create(volume_cfg(opts, "volume_create"), name, size_mb)
  return ok_result(res, "volume_create").value
end
function M.volume_list(opts)
  local _, res = core.mlk_volume_list(volume_cfg(opts, "volume_list"))
  return ok_result(res, "volume_list").value or {}
end
function M.volume_remove(name, opts)
  local _, res = core.mlk_volume_remove(volume_cfg(opts, "volume_remove"), name)
  ok_result(res, "volume_remove")
  return true
end
function Client:volume_create(name, size_mb) return M.volume_create(name, size_mb, self) end
function Client:volume_list() return M.volume_list(self) end
function Client:volume_remove(name) return M.volume_remove(name, self) end

-- test helpers exported for parity checks ----------------------------------

--- Normalise allow-list input as the client does -> list, or raises.
function M.allow_list_normalize(hosts)
  local rc, v = core.mlk_allow_list_normalize(hosts)
  if rc ~= 0 then raise(new_error(rc, "allow_list_normalize: " .. core.mlk_strerror(rc))) end
  return v
end
--- Parse port-forward specs -> the wire `forwards` JSON text, or raises.
function M.port_forward_parse(specs)
  local rc, json = core.mlk_port_forward_parse(specs)
  if rc ~= 0 then raise(new_error(rc, "port_forward_parse: " .. core.mlk_strerror(rc))) end
  return json
end

-- async forms of the other calls --------------------------------------------
-- Each takes the blocking form's arguments plus done(value, err), returns a
-- handle (cancel), and completes from dispatch().

local function start_async(self, fname, rc, op)
  if rc ~= 0 then raise(new_error(rc, fname .. ": " .. core.mlk_strerror(rc))) end
  return new_handle(self, op)
end

local function need_done(fname, done, what)
  if type(done) ~= "function" then argerror(fname, "done must be a function(" .. what .. ", err)") end
end

local function shift(opts, done) -- (opts, done) or (done)
  if type(opts) == "function" and done == nil then return nil, opts end
  return opts, done
end

local function opt_done(fname, opts, done, keys, what)
  opts, done = shift(opts, done)
  opts = check_opts(fname, opts, keys)
  need_done(fname, done, what)
  return opts, done
end

function Client:create_async(sb, opts, done)
  opts, done = opt_done("create_async", opts, done, TIMEOUT_ONLY, "vm_id")
  local rc, op = core.mlk_create_async(self._h, create_handle(self, "create_async", sb), tmo(self, opts),
    done_with(done, "create", function(r) return r.data end))
  return start_async(self, "create_async", rc, op)
end

function Client:launch_async(sb, opts, done)
  opts, done = opt_done("launch_async", opts, done, TIMEOUT_ONLY, "vm_id")
  local rc, op = core.mlk_launch_async(self._h, create_handle(self, "launch_async", sb), tmo(self, opts),
    done_with(done, "launch", function(r) return r.data end))
  return start_async(self, "launch_async", rc, op)
end

function Client:close_async(timeout_s, done)
  if type(timeout_s) == "function" and done == nil then timeout_s, done = nil, timeout_s end
  need_done("close_async", done, "ok")
  if self._released then
    done(true)
    return new_handle(self, 0)
  end
  local rc, op = core.mlk_close_async(self._h, timeout_s or 0, done_with(done, "close", function()
    self:_release_if_done()
    return true
  end))
  return start_async(self, "close_async", rc, op)
end

function Client:remove_async(done)
  need_done("remove_async", done, "ok")
  if self._released then
    -- no C client left to complete through: `matchlock rm` runs now
    -- (a short command) and done runs before remove_async returns
    done_with(done, "remove", function() return true end)(remove_closed(self))
    return new_handle(self, 0)
  end
  local rc, op = core.mlk_remove_async(self._h, done_with(done, "remove", function() return true end))
  return start_async(self, "remove_async", rc, op)
end

function Client:log_async(opts, done)
  opts, done = opt_done("log_async", opts, done, TIMEOUT_ONLY, "data")
  local rc, op = core.mlk_log_async(self._h, tmo(self, opts), done_with(done, "log", function(r) return r.data end))
  return start_async(self, "log_async", rc, op)
end

function Client:allow_list_add_async(hosts, opts, done)
  opts, done = opt_done("allow_list_add_async", opts, done, TIMEOUT_ONLY, "answer")
  local rc, op = core.mlk_allow_list_add_async(self._h, hosts, tmo(self, opts),
    done_with(done, "allow_list_add", function(r) return r.value end))
  return start_async(self, "allow_list_add_async", rc, op)
end

function Client:allow_list_delete_async(hosts, opts, done)
  opts, done = opt_done("allow_list_delete_async", opts, done, TIMEOUT_ONLY, "answer")
  local rc, op = core.mlk_allow_list_delete_async(self._h, hosts, tmo(self, opts),
    done_with(done, "allow_list_delete", function(r) return r.value end))
  return start_async(self, "allow_list_delete_async", rc, op)
end

function Client:port_forward_async(specs, opts, done)
  opts, done = opt_done("port_forward_async", opts, done, set("addresses", "timeout_ms"), "bindings")
  local rc, op = core.mlk_port_forward_async(self._h, specs, opts.addresses, tmo(self, opts),
    done_with(done, "port_forward", function(r) return r.value or {} end))
  return start_async(self, "port_forward_async", rc, op)
end

function Client:volume_create_async(name, size_mb, done)
  need_done("volume_create_async", done, "volume")
  local rc, op = core.mlk_volume_create_async(self._h, name, size_mb,
    done_with(done, "volume_create", function(r) return r.value end))
  return start_async(self, "volume_create_async", rc, op)
end

function Client:volume_list_async(done)
  need_done("volume_list_async", done, "volumes")
  local rc, op = core.mlk_volume_list_async(self._h, done_with(done, "volume_list", function(r) return r.value or {} end))
  return start_async(self, "volume_list_async", rc, op)
end

function Client:volume_remove_async(name, done)
  need_done("volume_remove_async", done, "ok")
  local rc, op = core.mlk_volume_remove_async(self._h, name, done_with(done, "volume_remove", function() return true end))
  return start_async(self, "volume_remove_async", rc, op)
end

-- coroutines -------------------------------------------------------------

local function running()
  local co, main = coroutine.running()
  if co == nil or main then return nil end
  return co
end

--- Inside a coroutine: start(cb) begins an async call whose callback is
--- cb(value, err); await yields until it runs (from some dispatch()/poll())
--- and returns value, or raises err.
function M.await(start)
  local co = running()
  if not co then error("matchlock.await: call it inside a coroutine (see matchlock.spawn)", 2) end
  local state, v, e = "pending", nil, nil
  start(function(a, b)
    if state == "yielded" then
      state = "done"
      local ok, err = coroutine.resume(co, a, b)
      if not ok then error(debug.traceback(co, tostring(err)), 0) end
    else
      state, v, e = "done", a, b
    end
  end)
  if state == "pending" then
    state = "yielded"
    v, e = coroutine.yield()
  end
  if e ~= nil then error(e, 0) end
  return v
end

local AWAIT_ARITY = { exec = 2, read_file = 2, list_files = 2, write_file = 3, create = 2, launch = 2,
  close = 1, remove = 0, log = 1, allow_list_add = 2, allow_list_delete = 2, port_forward = 2,
  volume_create = 2, volume_list = 0, volume_remove = 1 }

--- Inside a coroutine: client:await("exec", cmd, opts) is the blocking-
--- looking form of exec_async (also "read_file", "list_files",
--- "write_file"): it yields until a dispatch() delivers the result.
function Client:await(method, ...)
  local arity = AWAIT_ARITY[method]
  if not arity then argerror("await", "no async form of " .. tostring(method)) end
  local f = self[method .. "_async"]
  local args = { ... }
  return M.await(function(cb)
    args[arity + 1] = cb
    return f(self, unpack(args, 1, arity + 1))
  end)
end

--- Run fn(...) as a coroutine now; returns the coroutine.  Errors raised
--- before its first yield propagate.
function M.spawn(fn, ...)
  local co = coroutine.create(fn)
  local ok, err = coroutine.resume(co, ...)
  if not ok then error(debug.traceback(co, tostring(err)), 0) end
  return co
end

return M
