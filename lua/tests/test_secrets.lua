-- A secret's value never appears in an error, in tostring() of an error or
-- a builder, whichever path it takes (issue 23, item 2).
return function(T)
  local H = require("helpers")
  local ml = H.ml
  local core = ml.core
  local MARK = "sk-live-7Qz9XwVb3MarkOfTheSecret"

  -- every string reachable from v (an error's fields, nested causes)
  local function texts(v, out, seen)
    out, seen = out or {}, seen or {}
    if type(v) == "table" then
      if seen[v] then return out end
      seen[v] = true
      out[#out + 1] = tostring(v)
      for k, x in pairs(v) do texts(k, out, seen); texts(x, out, seen) end
    elseif v ~= nil then
      out[#out + 1] = tostring(v)
    end
    return out
  end

  local function shows_nothing(v)
    for _, t in ipairs(texts(v)) do
      T.ok(not t:find("sk-live", 1, true) and not t:find("MarkOfTheSecret", 1, true),
        "shows the secret: " .. t:sub(1, 300))
    end
  end

  T.test("a NUL in a secret value: the core's message names the offset, never the value", function()
    for _, case in ipairs({ { MARK .. "\0tail", #MARK }, { "\0" .. MARK, 0 }, { MARK:rep(30000) .. "\0", #MARK * 30000 } }) do
      local value, offset = case[1], case[2]
      for _, f in ipairs({
        function() ml.Sandbox.new("alpine:latest"):add_secret("API_KEY", value, "api.example.com") end,
        function() ml.Sandbox.new("alpine:latest"):add_secret_with_placeholder("API_KEY", value, "PH", "h") end,
      }) do
        local e = T.raises(f, "EINVAL")
        shows_nothing(e)
        T.ok(e.message:find("secret value", 1, true), e.message)
        T.ok(e.message:find(string.format("byte %d of %d", offset, #value), 1, true), e.message)
      end
    end
  end)

  T.test("a NUL in any other string argument is refused with the core's message, not cut short", function()
    local e = T.raises(function() ml.Sandbox.new("alpine:latest"):with_hostname(MARK .. "\0x") end)
    shows_nothing(e)
    T.ok(tostring(e):find(string.format("NUL character at byte %d of %d", #MARK, #MARK + 2), 1, true), tostring(e))
    local rc, msg = core.mlk_check_cstring("secret value", MARK .. "\0")
    T.eq(rc, core.MLK_EINVAL)
    shows_nothing(msg)
    T.eq(core.mlk_check_cstring("x", MARK), 0)
  end)

  -- A NUL inside an element of a string list would end that element as a C
  -- string (for a secret's hosts: another host than the one meant): it is
  -- refused where the binding converts the list, with the core's message
  -- (the element and the offset, never the value).
  T.test("a NUL inside a string list element is refused with the core's message, not cut short", function()
    local value = MARK .. "\0.evil.example"
    local at = string.format("contains a NUL character at byte %d of %d", #MARK, #value)
    local c = H.client()
    for _, case in ipairs({
      { function() ml.Sandbox.new("alpine:latest"):add_secret("API_KEY", "v", "api.example.com", value) end,
        "hosts[2] of mlk_sandbox_add_secret" },
      { function() ml.Sandbox.new("alpine:latest"):add_secret_with_placeholder("API_KEY", "v", "PH", value) end,
        "hosts[1] of mlk_sandbox_add_secret" },
      { function() ml.Sandbox.new("alpine:latest"):with_dns_servers("1.1.1.1", value) end,
        "servers[2] of mlk_sandbox_set_dns_servers" },
      { function() ml.Sandbox.new("alpine:latest"):with_entrypoint("sh", "-c", value) end,
        "argv[3] of mlk_sandbox_set_entrypoint" },
      { function() ml.Client.new({ binary = H.local_bin(), launcher = { "ssh", value } }) end,
        "argv[2] of mlk_config_set_launcher" },
      { function() c:allow_list_add({ "api.example.com", value }) end, "hosts[2] of mlk_allow_list_add" },
      { function() c:allow_list_add(value) end, "hosts of mlk_allow_list_add" },
      { function() c:port_forward({ "8080:80" }, { addresses = { value } }) end, "addrs[1] of mlk_port_forward" },
    }) do
      local e = T.raises(case[1])
      shows_nothing(e)
      T.ok(tostring(e):find(case[2] .. " " .. at, 1, true), tostring(e))
    end
    H.done(c)
  end)

  T.test("tostring of a builder shows no option", function()
    local sb = ml.Sandbox.new("alpine:latest"):add_secret("API_KEY", MARK, "api.example.com")
    shows_nothing(sb)
    T.eq(tostring(sb), "matchlock.Sandbox")
  end)

  T.test("a setter error is read without rendering the create params", function()
    local orig = core.mlk_sandbox_params_json
    local rendered = 0
    core.mlk_sandbox_params_json = function(...) rendered = rendered + 1; return orig(...) end
    local ok, e = pcall(function()
      ml.Sandbox.new("alpine:latest"):add_secret("API_KEY", MARK, "api.example.com"):add_secret("OTHER", MARK, "")
    end)
    core.mlk_sandbox_params_json = orig
    T.ok(not ok)
    T.eq(rendered, 0)
    T.ok(tostring(e):find("OTHER", 1, true), tostring(e))
    shows_nothing(e)
  end)

  T.test("validation errors never show the value", function()
    local sb = ml.Sandbox.new("alpine:latest"):add_secret("API_KEY", MARK .. "\"\\\n", "api.example.com"):with_no_network()
    shows_nothing(T.raises(function() sb:params_json() end))
    sb = ml.Sandbox.new("alpine:latest"):add_secret("API_KEY", MARK:rep(1000), "h"):add_host("db", "nope")
    shows_nothing(T.raises(function() sb:params_json() end))
  end)
end
