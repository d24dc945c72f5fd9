-- Hooks (network, VFS after/dangerous/action/mutate) and events against the
-- real matchlock-local.  Network hooks are proven with curl inside the
-- sandbox going through matchlock-local's proxy to a small HTTP origin
-- (a python3 helper process bound to 127.0.0.1 on a free port).
return function(T)
  local H = require("helpers")
  local ml = H.ml

  -- ---------------------------------------------------------------------
  -- the origin: answers every GET with 200, header X-Origin: yes, and a
  -- body "ORIGIN <path>\nHDR <name>: <value>\n..."; logs each path.
  local ORIGIN_PY = [[
import http.server, os, sys
log = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        with open(log, "a") as f:
            f.write(self.path + "\n")
        body = ("ORIGIN " + self.path + "\n" +
                "".join("HDR %s: %s\n" % (k, v) for k, v in self.headers.items())).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("X-Origin", "yes")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(os.getpid(), s.server_address[1], flush=True)
s.serve_forever()
]]

  local origin -- {pid, port, log, pipe}
  local function origin_start()
    if origin then return origin end
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write(ORIGIN_PY)
    f:close()
    local log = os.tmpname()
    local p = assert(io.popen("exec python3 '" .. script .. "' '" .. log .. "'", "r"))
    local line = p:read("*l")
    local pid, port = tostring(line):match("^(%d+) (%d+)$")
    if not pid then
      p:close()
      error("SKIP: the python3 origin server did not start (" .. tostring(line) .. ")", 0)
    end
    origin = { pid = pid, port = tonumber(port), log = log, script = script, pipe = p }
    return origin
  end
  local function origin_hits()
    local f = io.open(origin.log, "rb")
    if not f then return "" end
    local s = f:read("*a")
    f:close()
    return s
  end

  local prev = T.cleanup
  T.cleanup = function()
    if prev then prev() end
    if origin then
      os.execute("kill " .. origin.pid .. " 2>/dev/null")
      origin.pipe:close()
      os.remove(origin.script)
      os.remove(origin.log)
      origin = nil
    end
  end

  -- curl through the proxy; output ends with "CODE=<status>"
  local CURL = "curl -sS --max-time 20 -w '\\nCODE=%{http_code}\\n' "

  -- Run cmd async, dispatching (hooks run from dispatch) until it ends.
  local function run(c, cmd, timeout_ms)
    local res, err, done
    c:exec_async(cmd, function(r, e) res, err, done = r, e, true end)
    H.pump(c, function() return done end, timeout_ms or 30000)
    if err then error(err, 2) end
    return res.stdout .. res.stderr
  end

  local function net_sandbox()
    return ml.Sandbox.new("alpine:latest"):with_block_private_ips(false)
  end

  -- ---------------------------------------------------------------------
  -- builder

  T.test("hook rules render as callback rules; replacing the config clears the hooks", function()
    local f = function() end
    local sb = net_sandbox():with_network_interception {
      rules = { { name = "static", hosts = { "a.test" }, action = "block" },
                { name = "cb", phase = "after", hosts = { "b.test" }, hook = f } } }
    local p = sb:params_json()
    local function ncb(j) local _, n = j:gsub('"callback_id":"network_hook_%d+"', "") return n end
    T.eq(ncb(p), 1, p)
    T.ok(p:find('"name":"static"', 1, true), p)
    sb:add_network_hook({ name = "more" }, f)
    T.eq(ncb(sb:params_json()), 2)
    sb:with_network_interception { rules = { { name = "only", hosts = { "c.test" }, action = "block" } } }
    p = sb:params_json()
    T.ok(not p:find("callback_id", 1, true), p)
    T.ok(not p:find('"static"', 1, true), p)
    -- after-hooks switch file events on; clearing VFS interception drops them
    local v = ml.Sandbox.new("alpine:latest"):with_workspace("/workspace"):mount_memory("/workspace")
      :add_vfs_hook(ml.VFS_HOOK_AFTER, { path = "/workspace/*" }, f)
    T.ok(v:params_json():find('"emit_events":true', 1, true))
    v:with_vfs_interception(nil)
    T.ok(not v:params_json():find("emit_events", 1, true))
    v:add_vfs_hook("dangerous", nil, f)
    T.ok(v:params_json():find('"emit_events":true', 1, true))
    v:clear_hooks()
    T.ok(not v:params_json():find("emit_events", 1, true))
  end)

  T.test("invalid hook rules are rejected with the hook error codes", function()
    local f = function() end
    T.raises(function()
      ml.Sandbox.new("x"):with_vfs_interception { rules = { { name = "two", hook = f, action_hook = f } } }
    end, "EINVALID_VFS_HOOK")
    T.raises(function()
      ml.Sandbox.new("x"):with_network_interception { rules = { { name = "n", hook = "not a function" } } }
    end, "EINVALID_NET_HOOK")
    T.raises(function() ml.Sandbox.new("x"):add_network_hook({ name = "gate", action = "block" }, f) end,
      "EINVALID_NET_HOOK")
    local e = T.raises(function() ml.Sandbox.new("x"):add_vfs_hook("after", { phase = "before" }, f) end,
      "EINVALID_VFS_HOOK")
    T.ok(tostring(e):find("phase", 1, true), tostring(e))
    T.raises(function() ml.Sandbox.new("x"):add_vfs_hook("sideways", nil, f) end, "EINVAL")
    T.raises(function() ml.Sandbox.new("x"):add_vfs_hook("mutate", { path = "/x" }) end, "EINVALID_VFS_HOOK")
  end)

  T.test("hook functions live as long as a client created from the builder", function()
    local weak = setmetatable({}, { __mode = "k" })
    local c = H.client()
    do
      local fn = function() end
      weak[fn] = true
      local sb = ml.Sandbox.new("alpine:latest"):add_vfs_hook("action", { path = "/nowhere/*" }, fn)
      c:create(sb)
    end
    collectgarbage()
    collectgarbage()
    T.ok(next(weak), "the client keeps the hook after the builder is collected")
    H.done(c)
    c = nil
    collectgarbage()
    collectgarbage()
    T.ok(next(weak) == nil, "released with the client")
  end)

  -- ---------------------------------------------------------------------
  -- network hooks

  T.test("a network hook changes a real HTTP response seen inside the sandbox", function()
    local o = origin_start()
    local seen = {}
    local c = H.created(net_sandbox():with_network_interception { rules = { {
      name = "tap", phase = "after", hosts = { "127.0.0.1" }, path = "/hook*",
      hook = function(req)
        seen[#seen + 1] = req
        return { action = "allow", response = { headers = { ["X-Hooked"] = "1" }, set_body = "HOOKED BODY\n" } }
      end } } })
    local out = run(c, CURL .. "-i 'http://127.0.0.1:" .. o.port .. "/hooked?a=1' -H 'X-Mine: m'")
    T.ok(out:find("CODE=200", 1, true), out)
    T.ok(out:find("\r\n\r\nHOOKED BODY\n", 1, true), out)
    T.ok(out:find("X-Hooked: 1", 1, true), out)
    T.eq(#seen, 1)
    local r = seen[1]
    T.eq(r.phase, "after")
    T.eq(r.path, "/hooked")
    T.eq(r.method, "GET")
    T.eq(r.query.a, "1")
    T.eq(r.request_headers["X-Mine"][1], "m")
    T.eq(r.status_code, 200)
    T.eq(r.response_headers["X-Origin"][1], "yes")
    -- a path the rule does not match never reaches the hook
    out = run(c, CURL .. "http://127.0.0.1:" .. o.port .. "/other")
    T.ok(out:find("ORIGIN /other", 1, true), out)
    T.eq(#seen, 1)
    H.done(c)
  end)

  T.test("a network hook rewrites the request (headers, query, path)", function()
    local o = origin_start()
    local c = H.created(net_sandbox():add_network_hook({ name = "rq", phase = "before" }, function()
      return { request = { headers = { ["X-From-Hook"] = { "h" } }, query = { q = "z" }, path = "/moved" } }
    end))
    local out = run(c, CURL .. "-H 'X-Old: o' 'http://127.0.0.1:" .. o.port .. "/orig?x=1'")
    T.ok(out:find("ORIGIN /moved?q=z", 1, true), out)
    T.ok(out:find("HDR X-From-Hook: h", 1, true), out)
    T.ok(not out:find("X-Old", 1, true), out)
    H.done(c)
  end)

  T.test("a block answer stops the request; events report it", function()
    local o = origin_start()
    local calls, events = 0, {}
    local c = H.created(net_sandbox():with_network_interception { rules = { {
      name = "gate", phase = "before", methods = { "GET" }, path = "/nope*",
      hook = function() calls = calls + 1 return { action = "block" } end } } })
    c:on_event(function(e) events[#events + 1] = e end)
    local out = run(c, CURL .. "http://127.0.0.1:" .. o.port .. "/nope")
    T.ok(out:find("CODE=403", 1, true), out)
    T.ok(out:find("blocked by network hook gate", 1, true), out)
    T.eq(calls, 1)
    T.ok(not origin_hits():find("/nope", 1, true), "the origin never saw it")
    H.pump(c, function()
      for _, e in ipairs(events) do
        if type(e.network) == "table" and e.network.blocked == true then return true end
      end
    end, 5000)
    H.done(c)
  end)

  T.test("a network hook answers later: awaiting an exec on the same client", function()
    local o = origin_start()
    local c
    c = H.created(net_sandbox():add_network_hook({ name = "slow", phase = "after", path = "/later*" }, function()
      -- yields; a later dispatch resumes it with the exec's result
      local r = c:await("exec", "echo from-exec")
      return { response = { set_body = "LATER " .. r.stdout } }
    end))
    local out = run(c, CURL .. "http://127.0.0.1:" .. o.port .. "/later")
    T.ok(out:find("LATER from-exec", 1, true), out)
    H.done(c)
  end)

  T.test("a network hook answers later from outside any callback", function()
    local o = origin_start()
    local pending
    local c = H.created(net_sandbox():add_network_hook({ name = "ext", phase = "after", path = "/ext*" }, function()
      return ml.await(function(answer) pending = answer end)
    end))
    local done, res
    c:exec_async(CURL .. "http://127.0.0.1:" .. o.port .. "/ext", function(r) res, done = r, true end)
    H.pump(c, function() return pending end, 20000)
    -- the hook is suspended; answer it from the main loop
    pending({ response = { body_replacements = { { find = "ORIGIN", replace = "REPLACED" } } } })
    H.pump(c, function() return done end, 20000)
    T.ok(res.stdout:find("REPLACED /ext", 1, true), res.stdout)
    H.done(c)
  end)

  T.test("a network hook that raises: error reply, traffic passes, error reported", function()
    local o = origin_start()
    local c = H.created(net_sandbox():add_network_hook({ name = "boom", phase = "after", path = "/err*", timeout_ms = 3000 },
      function() error("hook exploded") end))
    local reported = {}
    c.on_error = function(e) reported[#reported + 1] = e end
    local out = run(c, CURL .. "http://127.0.0.1:" .. o.port .. "/err")
    T.ok(out:find("CODE=200", 1, true) and out:find("ORIGIN /err", 1, true), out)
    T.eq(#reported, 1)
    local e = reported[1]
    T.ok(e:is("EUSER"), tostring(e))
    T.ok(tostring(e):find("hook exploded", 1, true), tostring(e))
    T.ok(tostring(e):find('network hook "boom"', 1, true), tostring(e))
    T.ok(tostring(e):find("traceback", 1, true), tostring(e))
    -- without on_error, dispatch raises it; a bad answer is an error too
    c.on_error = nil
    H.done(c)
    c = H.created(net_sandbox():add_network_hook({ name = "bad", phase = "after", path = "/bad*" },
      function() return { reponse = {} } end))
    local raised, done
    c:exec_async(CURL .. "http://127.0.0.1:" .. o.port .. "/bad", function() done = true end)
    local t0 = os.time()
    while not done and os.time() - t0 < 20 do
      local ok, err = pcall(c.poll, c, 50)
      if not ok then raised = err end
    end
    T.ok(done)
    T.ok(raised and raised:is("EUSER"), tostring(raised))
    T.ok(tostring(raised):find('unknown key "reponse"', 1, true), tostring(raised))
    T.eq(c:exec("echo alive").stdout, "alive\n")
    H.done(c)
  end)

  -- ---------------------------------------------------------------------
  -- VFS hooks

  local function ws() return ml.Sandbox.new("alpine:latest"):with_workspace("/workspace"):mount_memory("/workspace") end

  T.test("an after-hook sees a file written by a command", function()
    local seen = {}
    local c = H.created(ws():add_vfs_hook(ml.VFS_HOOK_AFTER, { name = "rec", path = "/workspace/*.txt" },
      function(ev) seen[#seen + 1] = ev end))
    c:exec("echo data > /workspace/from-cmd.txt")
    local hit
    H.pump(c, function()
      for _, ev in ipairs(seen) do if ev.path == "/workspace/from-cmd.txt" then hit = ev return true end end
    end, 10000)
    T.eq(type(hit.op), "string")
    H.done(c)
  end)

  T.test("a dangerous hook runs a blocking exec on the same client", function()
    local got
    local c = H.created(ws():with_vfs_interception { rules = { {
      name = "d", phase = "after", path = "/workspace/trigger*", ops = { "write" },
      dangerous_hook = function(client, ev)
        got = client:exec("cat " .. ev.path).stdout
      end } } })
    c:exec("echo payload > /workspace/trigger1")
    H.pump(c, function() return got end, 10000)
    T.eq(got, "payload\n")
    H.done(c)
  end)

  T.test("hooks run on the state of the dispatch that runs them, not a finished one", function()
    local paths = {}
    local c = H.created(ws():add_vfs_hook("dangerous", { path = "/workspace/st*", ops = { "write" } },
      function(_, ev) paths[#paths + 1] = ev.path end))
    local function saw(p) for _, x in ipairs(paths) do if x == p then return true end end end
    c:exec("echo > /workspace/st1")
    -- dispatch from a coroutine that then finishes
    local co = coroutine.create(function() H.pump(c, function() return saw("/workspace/st1") end, 10000) end)
    local ok, err = coroutine.resume(co)
    T.ok(ok, tostring(err))
    T.eq(coroutine.status(co), "dead")
    c:exec("echo > /workspace/st2")
    H.pump(c, function() return saw("/workspace/st2") end, 10000)
    H.done(c)
  end)

  T.test("an after-hook that raises is reported by dispatch", function()
    local c = H.created(ws():add_vfs_hook("after", { name = "bad-after", path = "/workspace/*" },
      function() error("after boom") end))
    c:exec("echo > /workspace/x")
    local err
    local t0 = os.time()
    while not err and os.time() - t0 < 10 do
      local ok, e = pcall(c.poll, c, 50)
      if not ok then err = e end
    end
    T.ok(err and err:is("EUSER"), tostring(err))
    T.ok(tostring(err):find("after boom", 1, true), tostring(err))
    H.done(c)
  end)

  T.test("an action hook blocks write_file; the error names the rule", function()
    local reqs = {}
    local c = H.created(ws():with_vfs_interception { rules = { {
      name = "deny-env", phase = "before", ops = { "write" },
      action_hook = function(req)
        reqs[#reqs + 1] = req
        if req.path:find("%.env$") then return "block" end
      end } } })
    local e = T.raises(function() c:write_file("/workspace/.env", "K=V") end, "EVFS_BLOCKED")
    T.ok(tostring(e):find('hook="deny-env"', 1, true), tostring(e))
    T.eq(reqs[1].op, "write")
    T.eq(reqs[1].path, "/workspace/.env")
    T.eq(reqs[1].size, 3)
    T.eq(c:exec("test -e /workspace/.env").exit_code, 1)
    T.ok(c:write_file("/workspace/ok.txt", "fine"))
    T.eq(c:read_file("/workspace/ok.txt"), "fine")
    -- the async form too
    local done, err
    c:write_file_async("/workspace/.env", "K=V", function(_, x) done, err = true, x end)
    H.pump(c, function() return done end)
    T.ok(err and err:is("EVFS_BLOCKED"), tostring(err))
    H.done(c)
  end)

  T.test("action hooks on read_file and list_files; raising fails the call with the traceback", function()
    local c = H.created(ws()
      :add_vfs_hook("action", { name = "no-read", ops = { "read" }, path = "/workspace/secret*" },
        function() return "block" end)
      :add_vfs_hook("action", { name = "no-list", ops = { "readdir" }, path = "/workspace/hidden" },
        function() return "BLOCK " end)
      :add_vfs_hook("action", { name = "raises", ops = { "write" }, path = "/workspace/raise*" },
        function() error("action exploded") end)
      :add_vfs_hook("action", { name = "nonsense", ops = { "write" }, path = "/workspace/nonsense*" },
        function() return 42 end))
    c:exec("echo s > /workspace/secret; mkdir /workspace/hidden")
    T.raises(function() c:read_file("/workspace/secret") end, "EVFS_BLOCKED")
    T.raises(function() c:list_files("/workspace/hidden") end, "EVFS_BLOCKED")
    local e = T.raises(function() c:write_file("/workspace/raise.txt", "x") end, "EUSER")
    T.ok(tostring(e):find("action exploded", 1, true), tostring(e))
    T.ok(tostring(e):find('"raises"', 1, true), tostring(e))
    T.ok(tostring(e):find("traceback", 1, true), tostring(e))
    -- a nonsense decision is the core's to judge: the same code and message as in C
    e = T.raises(function() c:write_file("/workspace/nonsense.txt", "x") end, "EINVALID_VFS_HOOK")
    T.ok(tostring(e):find('an action hook answers "allow" or "block"', 1, true), tostring(e))
    T.eq(c:exec("echo alive").stdout, "alive\n")
    H.done(c)
  end)

  T.test("an action hook answers later for an async call, not inside a blocking one", function()
    local pending
    local c = H.created(ws():add_vfs_hook("action", { name = "later", ops = { "write" }, path = "/workspace/later*" },
      function(req)
        return ml.await(function(answer) pending = answer end)
      end))
    local done, err
    c:write_file_async("/workspace/later.txt", "x", function(_, x) done, err = true, x end)
    H.pump(c, function() return pending end)
    local answer = pending
    pending = nil
    answer("block")
    H.pump(c, function() return done end)
    T.ok(err and err:is("EVFS_BLOCKED"), tostring(err))
    -- deferred again, allowed this time
    done, err = nil, nil
    c:write_file_async("/workspace/later2.txt", "y", function(_, x) done, err = true, x end)
    H.pump(c, function() return pending end)
    pending("allow")
    H.pump(c, function() return done end)
    T.eq(err, nil)
    T.eq(c:read_file("/workspace/later2.txt"), "y")
    -- a blocking call cannot wait: it fails at once, saying why
    local e = T.raises(function() c:write_file("/workspace/later3.txt", "z") end, "EUSER")
    T.ok(tostring(e):find("blocking call", 1, true), tostring(e))
    H.done(c)
  end)

  T.test("a mutate hook changes what lands in the file", function()
    local c = H.created(ws():with_vfs_interception { rules = {
      { name = "stamp", phase = "before", path = "/workspace/stamp/*",
        mutate_hook = function(req) return "stamped: " .. req.data end },
      { name = "keep", phase = "before", path = "/workspace/keep/*", mutate_hook = function() return nil end },
    } })
    c:exec("mkdir -p /workspace/stamp /workspace/keep")
    T.ok(c:write_file("/workspace/stamp/a", "original\0bytes"))
    T.eq(c:exec("cat /workspace/stamp/a").stdout, "stamped: original\0bytes")
    T.ok(c:write_file("/workspace/keep/b", "same"))
    T.eq(c:read_file("/workspace/keep/b"), "same")
    H.done(c)
  end)

  T.test("events arrive as tables", function()
    local c = H.created(ws():with_vfs_interception { emit_events = true })
    local events = {}
    c:on_event(function(e) events[#events + 1] = e end)
    c:exec("echo hi > /workspace/evt.txt")
    local hit
    H.pump(c, function()
      for _, e in ipairs(events) do
        if type(e.file) == "table" and e.file.path == "/workspace/evt.txt" then hit = e return true end
      end
    end, 5000)
    T.eq(type(hit.type), "string")
    T.eq(type(hit.file.op), "string")
    H.done(c)
  end)
end
