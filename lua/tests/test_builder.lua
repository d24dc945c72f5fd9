-- The fluent builder: every setter, errors from setters and validation.
return function(T)
  local H = require("helpers")
  local json = require("json")
  local ml = H.ml

  local function params(sb, launch) return json.decode(sb:params_json(launch)) end

  T.test("mount owner overrides: each sent only when set, range-checked", function()
    local sb = ml.Sandbox.new("alpine:latest")
      :mount_host_dir("/w/a", "/srv/a", { owner_uid = 1000, owner_gid = 0 })
      :mount_host_dir_readonly("/w/b", "/srv/b", { owner_gid = 4294967295 })
      :mount_host_dir("/w/c", "/srv/c")
    local m = params(sb).vfs.mounts
    T.deep_eq(m["/w/a"], { type = "host_fs", host_path = "/srv/a", owner_uid = 1000, owner_gid = 0 })
    T.deep_eq(m["/w/b"], { type = "host_fs", host_path = "/srv/b", readonly = true, owner_gid = 4294967295 })
    T.deep_eq(m["/w/c"], { type = "host_fs", host_path = "/srv/c" })
    local e = T.raises(function()
      ml.Sandbox.new("alpine:latest"):mount_host_dir("/w/a", "/srv/a", { owner_uid = -1 })
    end, "EINVALID_MOUNT_OWNER")
    T.eq(e.message, "owner_uid must be in [0, 4294967295], got -1")
    T.eq(e.upstream, "InvalidMountOwner")
    T.raises(function() ml.Sandbox.new("x"):mount_host_dir("/w", "/s", { owner = 1 }) end)
  end)

  T.test("chaining returns the builder", function()
    local sb = ml.Sandbox.new("alpine:latest")
    T.eq(sb:with_cpus(1):with_memory(256):with_disk_size(1024):with_timeout(60), sb)
  end)

  T.test("every option reaches the params", function()
    local sb = ml.Sandbox.new("alpine:latest")
      :with_cpus(1):with_memory(256):with_disk_size(1024):with_timeout(60):with_privileged()
      :with_workspace("/ws"):mount_memory("/ws/tmp"):mount_host_dir("/ws/a", "/tmp")
      :mount_host_dir_readonly("/ws/b", "/tmp"):mount_overlay("/ws/c", "/tmp")
      :with_env("A", "1"):with_env_map({ B = "2" })
      :allow_host("a.com", "b.com"):allow_host({ "c.com" })
      :add_host("db", "10.0.0.1"):add_secret("K", "v", "a.com")
      :add_secret_with_placeholder("P", "w", "PH", { "b.com" })
      :with_block_private_ips(false):with_dns_servers("1.1.1.1"):with_hostname("box"):with_network_mtu(1400)
      :with_network_interception({ rules = { { name = "r", hosts = {}, action = "block" } } })
      :with_vfs_interception({ emit_events = true, rules = {} })
      :add_port_forward("8080"):with_port_forward_addresses("127.0.0.1")
      :with_user("app"):with_entrypoint("sh", "-c", "true")
      :with_image_config({ working_dir = "/srv", cmd = {}, env = { M = "p" } })
      :with_kernel("file:///k"):add_extra_disk("/tmp/d.ext4", "/mnt/d", true)
    local p = params(sb, true)
    T.eq(p.image, "alpine:latest")
    T.eq(p.privileged, true)
    T.eq(p.launch_entrypoint, true)
    T.eq(p.resources.memory_mb, 256)
    T.eq(p.vfs.workspace, "/ws")
    T.eq(p.vfs.mounts["/ws/b"].readonly, true)
    T.eq(p.env.A, "1")
    T.eq(p.env.B, "2")
    T.deep_eq(p.network.allowed_hosts, { "a.com", "b.com", "c.com" })
    T.eq(p.network.block_private_ips, false)
    T.eq(p.network.secrets.P.placeholder, "PH")
    T.eq(p.network.interception.rules[1].action, "block")
    T.eq(p.vfs.interception.emit_events, true)
    T.eq(p.image_config.user, "app")
    T.deep_eq(p.image_config.entrypoint, { "sh", "-c", "true" })
    T.eq(p.image_config.working_dir, "/srv")
    T.deep_eq(p.kernel, { ref = "file:///k" })
    T.eq(p.extra_disks[1].readonly, true)
  end)

  T.test("no_network conflicts are raised at render", function()
    local sb = ml.Sandbox.new("alpine:latest"):with_no_network():allow_host("a.com")
    local e = T.raises(function() sb:params_json() end, "ENO_NETWORK_CONFLICT")
    T.eq(e.upstream, "ErrNoNetworkConflict")
    T.ok(#e.message > 10, "message says why")
  end)

  T.test("a bad structured input raises at the setter with the builder's message", function()
    local sb = ml.Sandbox.new("alpine:latest")
    local e = T.raises(function() sb:with_image_config({ cmd = "not a list" }) end, "EINVAL")
    T.ok(e.message:find("cmd", 1, true), "message names the field: " .. e.message)
    local e2 = T.raises(function() ml.Sandbox.new("x"):with_network_interception({ rules = { 5 } }) end, "EINVAL")
    T.ok(e2.message:find("rules", 1, true), e2.message)
    T.raises(function() ml.Sandbox.new("x"):with_network_interception({ bogus = 1 }) end, "EINVAL")
  end)

  T.test("argument type errors are clear", function()
    T.raises(function() ml.Sandbox.new(5) end, "image must be a string")
    T.raises(function() ml.Sandbox.new("x"):with_memory("lots") end, "memory %(MiB%) must be a number")
    T.raises(function() ml.Sandbox.new("x"):allow_host("a", 5) end, "must be strings")
    T.raises(function() ml.Sandbox.new("x"):with_env_map({ A = print }) end, "cannot encode")
  end)

  T.test("empty image is ErrImageRequired", function()
    local e = T.raises(function() ml.Sandbox.new(""):params_json() end, "EIMAGE_REQUIRED")
    T.eq(ml.core.mlk_err_upstream_name(e.code), "ErrImageRequired")
  end)
  -- The keys whose empty table is sent as an array, and the rule key of each
  -- VFS hook kind's function, come from the core's tables (mlk_rule_key_info),
  -- not from a copy in matchlock.lua.
  T.test("list keys and callback keys are the core's", function()
    local core = ml.core
    local lists, callbacks = {}, {}
    for _, which in ipairs { core.MLK_INTERCEPT_NETWORK, core.MLK_INTERCEPT_VFS, core.MLK_KEYS_NETWORK_CONFIG,
      core.MLK_KEYS_VFS_CONFIG, core.MLK_KEYS_IMAGE_CONFIG } do
      local i = 0
      while true do
        local key, flags, kind = core.mlk_rule_key_info(which, i)
        if key == nil then break end
        T.eq(select(2, core.mlk_rule_key(which, i)), flags, "mlk_rule_key's flags for " .. key)
        if math.floor(flags / core.MLK_RULE_KEY_LIST) % 2 == 1 then lists[key] = true end
        if which == core.MLK_INTERCEPT_VFS and kind ~= 0 then callbacks[key] = kind end
        i = i + 1
      end
    end
    T.deep_eq(ml._LIST_KEYS, lists)
    T.deep_eq(ml._VFS_CALLBACKS, callbacks)
    -- what the literals said: every list key of the builder's maps, and the kinds
    for _, k in ipairs { "rules", "hosts", "methods", "delete_headers", "delete_query", "delete_response_headers",
      "body_replacements", "ops", "entrypoint", "cmd" } do
      T.ok(lists[k], k .. " is a list key")
    end
    T.eq(lists.name, nil)
    T.eq(lists.env, nil)
    T.deep_eq(callbacks, { hook = ml.VFS_HOOK_AFTER, dangerous_hook = ml.VFS_HOOK_DANGEROUS,
      action_hook = ml.VFS_HOOK_ACTION, mutate_hook = ml.VFS_HOOK_MUTATE })
  end)

  T.test("an empty table under a list key is sent as an array", function()
    -- a map here would be refused by the core ("must be an array of strings")
    local sb = ml.Sandbox.new("alpine:latest")
      :with_network_interception({ rules = { { name = "r", hosts = {}, methods = {}, delete_headers = {},
        body_replacements = {}, action = "block" } } })
      :with_vfs_interception({ rules = { { name = "v", ops = {}, path = "/x", action = "block" } } })
      :with_image_config({ entrypoint = {}, cmd = {}, user = "u" })
    local p = params(sb)
    T.eq(p.image_config.user, "u")
    T.eq(p.network.interception.rules[1].name, "r")
    -- a callback under its rule key, found through the core's kind map
    sb:add_vfs_hook("mutate", { name = "m", ops = {}, path = "/w/*", mutate_hook = function() end })
    sb:add_vfs_hook("action", { name = "a", action_hook = function() return "allow" end })
    T.raises(function() sb:add_vfs_hook("action", { name = "x", mutate_hook = function() end }) end,
      "EINVALID_VFS_HOOK")
    -- and a map under a list key is still refused
    T.raises(function() ml.Sandbox.new("x"):with_image_config({ cmd = { a = "b" } }) end, "EINVAL")
  end)
end
