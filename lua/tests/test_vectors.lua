-- The shared vectors (<repo>/tests/vectors or $MLK_VECTORS_DIR):
-- create.jsonl through the builder compared with mlk_sandbox_params_json,
-- port_forward.jsonl through mlk_port_forward_parse, allow_list.jsonl
-- through mlk_allow_list_normalize; errors compared by upstream name.
return function(T)
  local H = require("helpers")
  local json = require("json")
  local ml, core = H.ml, H.ml.core

  local dir = os.getenv("MLK_VECTORS_DIR") or (H.repo .. "/tests/vectors")

  local function lines(name)
    local f = io.open(dir .. "/" .. name, "r")
    if not f then error("vectors not found: " .. dir .. "/" .. name .. " (set MLK_VECTORS_DIR)", 0) end
    local out = {}
    for line in f:lines() do
      if line:match("%S") then out[#out + 1] = json.decode(line) end
    end
    f:close()
    return out
  end

  -- JSON values as builder inputs: arrays marked so empty ones stay arrays.
  local function to_lua(v)
    if type(v) ~= "table" or v == json.null then return v end
    local out = {}
    for k, x in pairs(v) do out[k] = to_lua(x) end
    if getmetatable(v) == json.ARRAY then return ml.array(out) end
    return out
  end

  local function is_empty_list(v)
    return v == json.null or (type(v) == "table" and next(v) == nil)
  end

  -- Compare parsed JSON: numbers by value; absent must be absent;
  -- network.allowed_hosts may be null or [] when empty.
  local function cmp(a, b, path)
    if path == "$.network.allowed_hosts" and is_empty_list(a) and is_empty_list(b) then return nil end
    if type(a) ~= type(b) then return path .. ": " .. tostring(a) .. " vs " .. tostring(b) end
    if type(a) ~= "table" then
      if a ~= b then return path .. ": got " .. tostring(a) .. ", want " .. tostring(b) end
      return nil
    end
    for k, v in pairs(a) do
      if b[k] == nil then return path .. "." .. tostring(k) .. ": present but not expected" end
      local d = cmp(v, b[k], path .. "." .. tostring(k))
      if d then return d end
    end
    for k in pairs(b) do
      if a[k] == nil then return path .. "." .. tostring(k) .. ": missing" end
    end
  end

  local SPECIAL = { NaN = 0 / 0, Infinity = 1 / 0 }

  -- Apply ops; returns the builder and the launch flag (raises setter errors).
  local function build(ops)
    local sb, launch
    for _, op in ipairs(ops) do
      local name = op[1]
      local args = {}
      for i = 2, #op do args[i - 1] = to_lua(op[i]) end
      if name == "new" then
        sb = ml.Sandbox.new(args[1])
      elseif name == "launch" then
        launch = true
      else
        local f = ml.Sandbox[name]
        if not f then error("the builder has no method " .. name, 0) end
        if name == "with_cpus" and type(args[1]) == "string" then args[1] = SPECIAL[args[1]] end
        f(sb, (table.unpack or unpack)(args, 1, #op - 1))
      end
    end
    return sb, launch
  end

  for _, case in ipairs(lines("create.jsonl")) do
    T.test("create " .. case.name, function()
      local ok, res = pcall(function()
        local sb, launch = build(case.ops)
        return sb:params_json(launch)
      end)
      if case.error then
        T.eq(ok, false, "expected " .. case.error .. ", got params " .. tostring(res))
        T.ok(ml.is_error(res), "a matchlock error object: " .. tostring(res))
        T.eq(core.mlk_err_upstream_name(res.code), case.error, tostring(res))
        T.ok(#res.message > 0, "has a message")
      else
        T.ok(ok, tostring(res))
        local d = cmp(json.decode(res), case.create_params, "$")
        if d then error(d .. "\n  got: " .. res, 0) end
      end
    end)
  end

  for i, case in ipairs(lines("port_forward.jsonl")) do
    T.test("port_forward #" .. i .. " " .. table.concat(case.specs, ","), function()
      local ok, res = pcall(ml.port_forward_parse, to_lua(case.specs))
      if case.error then
        T.eq(ok, false, "expected an error, got " .. tostring(res))
        T.eq(core.mlk_err_upstream_name(res.code), case.error)
      else
        T.ok(ok, tostring(res))
        local d = cmp(json.decode(res), case.forwards, "$")
        if d then error(d, 0) end
      end
    end)
  end

  for i, case in ipairs(lines("allow_list.jsonl")) do
    T.test("allow_list #" .. i, function()
      local ok, res = pcall(ml.allow_list_normalize, to_lua(case.hosts))
      if case.error then
        T.eq(ok, false, "expected an error")
        T.eq(core.mlk_err_upstream_name(res.code), case.error)
      else
        T.ok(ok, tostring(res))
        T.deep_eq(res, to_lua(case.wire))
      end
    end)
  end

  -- the hook-answer contract: the answer encoded by this binding, checked by
  -- the core; the same code and message as in C, Python and Node
  local KINDS = { network = ml.HOOK_NETWORK, action = ml.VFS_HOOK_ACTION, mutate = ml.VFS_HOOK_MUTATE }
  for _, case in ipairs(lines("hook_answers.jsonl")) do
    T.test("hook answer: " .. case.name, function()
      local answer = case.answer ~= json.null and to_lua(case.answer) or nil
      local rc, msg = core.mlk_hook_answer_check(KINDS[case.kind], ml.encode(answer))
      if case.error then
        T.eq(core.mlk_errname(rc), case.error)
        T.eq(msg, case.message)
      else
        T.eq(rc, 0, tostring(msg))
        T.eq(msg, nil)
      end
    end)
  end

  -- interception configs through the Lua builder, functions for the
  -- callbacks: the same wire, or code and message, as in C, Python and Node
  for _, case in ipairs(lines("interception.jsonl")) do
    T.test("interception: " .. case.name, function()
      local cfg = to_lua(case.config)
      for _, r in ipairs(cfg.rules or {}) do
        if type(r) == "table" then
          for k, v in pairs(r) do
            if v == true and k:match("hook$") then r[k] = function() end end
          end
        end
      end
      local sb = ml.Sandbox.new("alpine:latest")
      local set = case.which == "network" and sb.with_network_interception or sb.with_vfs_interception
      local ok, err = pcall(set, sb, cfg)
      if case.error then
        T.eq(ok, false, "expected an error")
        T.eq(core.mlk_errname(err.code), case.error)
        T.eq(err.message, case.message)
      else
        T.ok(ok, tostring(err))
        local p = json.decode(sb:params_json())
        local sec = p[case.which]
        local got = sec and sec.interception
        if case.wire == json.null then
          T.eq(got, nil)
        else
          local d = cmp(got, case.wire, "$")
          if d then error(d, 0) end
        end
      end
    end)
  end

  T.test("the VFS op constants are the core's list", function()
    local i = 0
    while core.mlk_vfs_op_name(i) do i = i + 1 end
    T.eq(i, 16)
  end)

  -- errors.jsonl: the class, category and hint the core gives a code are
  -- those of the error object Lua raises (the same file runs in C, Python
  -- and Node)
  for _, case in ipairs(lines("errors.jsonl")) do
    T.test("errors " .. (case.errname or ("rpc " .. case.rpc_code)), function()
      local code = case.errname and core[case.errname] or case.rpc_code
      if case.errname then T.eq(code, case.code) end
      local hint = case.hint ~= json.null and case.hint or nil
      T.eq(core.mlk_error_class(code), case.class)
      T.eq(core.mlk_error_category(code), case.category)
      T.eq(core.mlk_error_hint(code), hint)
      local e = ml.new_error(code, "boom")
      T.eq(e.class, case.class)
      T.eq(e.category, case.category)
      T.eq(e.hint, hint)
      T.ok(e:is(case.class) and e:is(case.category))
      if hint then T.eq(e.message, "boom (" .. hint .. ")") else T.eq(e.message, "boom") end
    end)
  end
end
