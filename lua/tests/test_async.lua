-- Driving the client from a host loop: dispatch, the fd, async calls,
-- coroutines, callbacks that raise.
return function(T)
  local H = require("helpers")
  local ml = H.ml

  local shared
  local function client()
    if not shared then shared = H.created() end
    return shared
  end
  local prev = T.cleanup
  T.cleanup = function() if prev then prev() end if shared then H.done(shared) end end

  local function now_ms()
    local f = io.popen("date +%s%3N")
    local t = tonumber(f:read("*l"))
    f:close()
    return t
  end

  T.test("fd is a descriptor; dispatch with nothing waiting returns 0", function()
    local c = client()
    local fd = c:fd()
    T.eq(type(fd), "number")
    T.ok(fd >= 0)
    if math.type then T.eq(math.type(fd), "integer") end
    T.eq(c:dispatch(), 0)
  end)

  T.test("exec_async completes from dispatch, never before", function()
    local c = client()
    local res, err
    local h = c:exec_async("echo async", function(r, e) res, err = r, e end)
    T.eq(type(h.op), "number")
    T.eq(res, nil, "nothing runs before dispatch")
    H.pump(c, function() return res or err end)
    T.eq(err, nil)
    T.eq(res.stdout, "async\n")
  end)

  T.test("async streaming output arrives across frames without blocking a frame", function()
    local c = client()
    local chunks, done = {}, false
    c:exec_async("for i in 1 2 3 4 5; do echo $i; sleep 0.05; done",
      { on_stdout = function(d) chunks[#chunks + 1] = d end },
      function() done = true end)
    local frames, frames_with_output, worst = 0, 0, 0
    local t_start = os.clock()
    while not done do
      local t0 = os.clock()
      local before = #chunks
      c:dispatch()             -- once per frame, never waits
      if #chunks > before then frames_with_output = frames_with_output + 1 end
      worst = math.max(worst, os.clock() - t0)
      frames = frames + 1
      c:wait(5)                -- the rest of the frame: sleep, waking early on the fd
      if os.clock() - t_start > 20 then error("stream never finished") end
    end
    T.eq(table.concat(chunks), "1\n2\n3\n4\n5\n")
    T.ok(frames > 5, "took several frames: " .. frames)
    T.ok(frames_with_output >= 1, "output delivered during frames")
    T.ok(worst < 0.05, "no frame blocked: worst " .. worst)
  end)

  T.test("file calls async", function()
    local c = client()
    local wrote, data, list
    c:write_file_async("/tmp/async.txt", "A\0B", function(ok, e) wrote = ok or e end)
    H.pump(c, function() return wrote ~= nil end)
    T.eq(wrote, true)
    c:read_file_async("/tmp/async.txt", function(d, e) data = d or e end)
    c:list_files_async("/tmp", function(l, e) list = l or e end)
    H.pump(c, function() return data ~= nil and list ~= nil end)
    T.eq(data, "A\0B")
    local seen
    for _, e in ipairs(list) do if e.name == "async.txt" then seen = true end end
    T.ok(seen)
  end)

  T.test("many concurrent async execs", function()
    local c = client()
    local n, got = 100, 0
    for i = 1, n do
      c:exec_async("echo " .. i, function(r) if r and r.stdout == i .. "\n" then got = got + 1 end end)
    end
    H.pump(c, function() return got == n end, 20000)
    T.eq(got, n)
  end)

  T.test("coroutine form yields until the result arrives", function()
    local c = client()
    local out, finished
    local co = ml.spawn(function()
      local r = c:await("exec", "echo co")
      local d = (c:write_file("/tmp/co.txt", "x") and c:await("read_file", "/tmp/co.txt"))
      out = r.stdout .. d
      finished = true
    end)
    T.eq(coroutine.status(co), "suspended")
    H.pump(c, function() return finished end)
    T.eq(out, "co\nx")
  end)

  T.test("coroutine form raises errors inside the coroutine", function()
    local c = client()
    local caught
    ml.spawn(function()
      local ok, e = pcall(c.await, c, "read_file", "/nonexistent/file")
      caught = (not ok) and e or "no error"
    end)
    H.pump(c, function() return caught end)
    T.ok(ml.is_error(caught), tostring(caught))
    T.ok(caught:is("ERPC"), tostring(caught))
  end)

  T.test("matchlock.poll dispatches every client", function()
    local c = client()
    local res
    c:exec_async("echo p", function(r) res = r end)
    local t0 = os.time()
    while not res and os.time() - t0 < 10 do c:poll(0); ml.poll() ; os.execute("sleep 0.01") end
    T.eq(res.stdout, "p\n")
  end)

  T.test("a done callback that raises is re-raised by dispatch, and the client keeps working", function()
    local c = client()
    local ran = 0
    c:exec_async("true", function() ran = ran + 1 error("boom in done") end)
    c:exec_async("true", function() ran = ran + 1 end)
    local err
    local t0 = os.time()
    while ran < 2 and os.time() - t0 < 10 do
      local ok, e = pcall(c.poll, c, 50)
      if not ok then err = e end
    end
    T.eq(ran, 2, "the other callback still ran")
    T.ok(ml.is_error(err), tostring(err))
    T.ok(err:is("EUSER"))
    T.ok(tostring(err.cause):find("boom in done", 1, true), tostring(err.cause))
    T.ok(tostring(err.cause):find("traceback", 1, true), "cause carries a traceback")
    T.eq(c:exec("echo still").stdout, "still\n")
  end)

  T.test("on_error receives callback errors instead of raising", function()
    local c = client()
    local seen, done
    c.on_error = function(e) seen = e end
    c:exec_async("true", function() done = true error({ custom = 1 }) end)
    H.pump(c, function() return done end)
    c.on_error = nil
    T.ok(seen and seen:is("EUSER"))
    T.eq(seen.cause.custom, 1, "a table error keeps its identity")
  end)

  T.test("an output callback that raises cancels a blocking exec and raises EUSER", function()
    local c = client()
    local t0 = now_ms()
    local e = T.raises(function()
      c:exec_stream("echo first; sleep 5; echo late", { on_stdout = function() error("bad chunk") end })
    end, "EUSER")
    T.ok(now_ms() - t0 < 4000, "cancelled, not waited out")
    T.ok(tostring(e.cause):find("bad chunk", 1, true), tostring(e.cause))
    T.ok(e.message:find("bad chunk", 1, true), e.message)
    T.eq(c:exec("echo ok").stdout, "ok\n")
  end)

  T.test("an async output callback that raises completes the call with EUSER", function()
    local c = client()
    local err, finished
    c:exec_async("echo x; sleep 5", { on_stdout = function() error("async chunk") end },
      function(_, e) err = e finished = true end)
    H.pump(c, function() return finished end, 4000)
    T.ok(err and err:is("EUSER"), tostring(err))
    T.ok(tostring(err.cause):find("async chunk", 1, true))
  end)

  T.test("an event callback that raises is reported by dispatch", function()
    local c = H.created(ml.Sandbox.new("alpine:latest"):with_workspace("/workspace"):mount_memory("/workspace")
      :with_vfs_interception({ emit_events = true }))
    c:on_event(function() error("event boom") end)
    c:write_file("/workspace/x", "\n") -- a file call: every backend emits its event
    local err
    local t0 = os.time()
    while not err and os.time() - t0 < 5 do
      local ok, e = pcall(c.poll, c, 50)
      if not ok then err = e end
    end
    T.ok(err and err:is("EUSER"), tostring(err))
    c:on_event(nil)
    H.done(c)
  end)

  T.test("blocking calls from inside a callback complete", function()
    local c = client()
    local inner
    c:exec_async("true", function() inner = c:exec("echo nested").stdout end)
    H.pump(c, function() return inner end)
    T.eq(inner, "nested\n")
  end)

  T.test("a collected client with calls in flight does not crash", function()
    do
      local c = H.created()
      c:exec_async("sleep 10", function() error("must not run") end)
      c:exec_async("sleep 10", { on_stdout = function() end }, function() end)
    end
    collectgarbage()
    collectgarbage()
    T.ok(true)
  end)

  T.test("freeing a client from inside its own callbacks is deferred safely", function()
    local c = H.created()
    local a, b = false, false
    c:exec_async("true", function() a = true c:free() end)
    c:exec_async("true", function() b = true end)
    local t0 = os.time()
    while not a and os.time() - t0 < 10 do c:poll(50) end
    T.ok(a)
    T.raises(function() c:exec("true") end, "freed")
    T.raises(function() c:dispatch() end, "freed")
    local c2 = H.created()
    -- the exec in progress completes; the client is released when it returns
    local r = c2:exec_stream("echo x", { on_stdout = function() c2:free() end })
    T.eq(r.exit_code, 0)
    T.raises(function() c2:exec("true") end, "freed")
  end)

  T.test("a dropped client is collected even with calls in flight", function()
    local weak = setmetatable({}, { __mode = "k" })
    local function start()
      local c = H.created()
      weak[c] = true
      c:exec_async("sleep 10", { on_stdout = function() end }, function() end)
    end
    start()
    for _ = 1, 4 do collectgarbage() end
    T.eq(next(weak), nil, "collected")
  end)

  T.test("the whole lifecycle without blocking: create, log, network, close, remove async", function()
    local c = H.client()
    local steps = {}
    local function step(name) return function(v, e) steps[name] = e or v or "nil" end end
    c:create_async(ml.Sandbox.new("alpine:latest"):allow_host("a.example.com"), step("create"))
    H.pump(c, function() return steps.create end)
    T.eq(type(steps.create), "string", tostring(steps.create))
    T.eq(c:vm_id(), steps.create)
    c:log_async(step("log"))
    -- upstream's server runs requests concurrently: the delete is sent once
    -- the add has answered, or it may find nothing to remove
    c:allow_list_add_async({ "b.example.com" }, function(v, e)
      step("allow")(v, e)
      c:allow_list_delete_async("b.example.com", step("deny"))
    end)
    local base = 30000 + (os.time() % 4000) * 2
    c:port_forward_async({ base .. ":" .. (base + 1) }, step("pf"))
    H.pump(c, function() return steps.log and steps.allow and steps.deny and steps.pf end)
    T.eq(type(steps.log), "string")
    T.deep_eq(steps.allow.added, { "b.example.com" })
    T.deep_eq(steps.deny.removed, { "b.example.com" })
    T.eq(steps.pf[1].local_port, base)
    c:close_async(step("close"))
    H.pump(c, function() return steps.close end)
    T.eq(steps.close, true)
    c:remove_async(step("remove"))
    H.pump(c, function() return steps.remove end)
    T.eq(steps.remove, true, tostring(steps.remove))
    c:free()
  end)

  T.test("async create reports validation errors through done", function()
    local c = H.client()
    local err
    c:create_async(ml.Sandbox.new(""), function(_, e) err = e end)
    H.pump(c, function() return err end)
    T.ok(err:is("EIMAGE_REQUIRED"), tostring(err))
    c:free()
  end)

  T.test("async volumes and await on lifecycle calls", function()
    local c = H.client()
    local name = "luaav" .. os.time() % 100000
    local out
    ml.spawn(function()
      c:await("create", "alpine:latest")
      local v = c:await("volume_create", name, 4)
      local l = c:await("volume_list")
      c:await("volume_remove", name)
      c:await("close")
      out = { v = v, n = #l }
    end)
    H.pump(c, function() return out end)
    T.eq(out.v.name, name)
    T.ok(out.n >= 1)
    c:free()
  end)

  T.test("cancel an async exec", function()
    local c = client()
    local err, finished
    local h = c:exec_async("sleep 5", function(_, e) err = e finished = true end)
    h:cancel()
    H.pump(c, function() return finished end, 3000)
    T.ok(err and err:is("ECANCELED"), tostring(err))
  end)
end
