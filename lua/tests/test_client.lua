-- Every client capability against the real matchlock-local.
return function(T)
  local H = require("helpers")
  local ml = H.ml

  local shared -- one created sandbox for the read-only style tests
  local function client()
    if not shared then shared = H.created() end
    return shared
  end
  local prev = T.cleanup
  T.cleanup = function() if prev then prev() end if shared then H.done(shared) end end

  T.test("create returns the VM id", function()
    local c = H.client()
    T.eq(c:vm_id(), nil)
    local id = c:create(ml.Sandbox.new("alpine:latest"):with_env("GREETING", "hi"))
    T.eq(type(id), "string")
    T.ok(#id > 0)
    T.eq(c:vm_id(), id)
    T.eq(c:exec("echo $GREETING").stdout, "hi\n")
    T.ok(c:close())
    T.ok(c:remove())
  end)

  T.test("create accepts an image name", function()
    local c = H.client()
    T.eq(type(c:create("alpine:latest")), "string")
    H.done(c)
  end)

  T.test("launch starts the entrypoint", function()
    local c = H.client()
    local id = c:launch(ml.Sandbox.new("alpine:latest"):with_entrypoint("sh", "-c", "echo started > /tmp/launched; sleep 30"))
    T.ok(#id > 0)
    local got
    for _ = 1, 50 do
      local r = c:exec("cat /tmp/launched 2>/dev/null")
      if r.stdout == "started\n" then got = true break end
      c:poll(50)
    end
    T.ok(got, "entrypoint ran")
    H.done(c)
  end)

  T.test("exec buffered: stdout, stderr, exit code, duration", function()
    local r = client():exec("echo out; echo err >&2; exit 3")
    T.eq(r.stdout, "out\n")
    T.eq(r.stderr, "err\n")
    T.eq(r.exit_code, 3)
    T.eq(r.ok, false)
    T.eq(type(r.duration_ms), "number")
    if math.type then T.eq(math.type(r.exit_code), "integer") end
  end)

  T.test("exec keeps NUL bytes", function()
    local r = client():exec("printf 'a\\000b\\000'")
    T.eq(r.stdout, "a\0b\0")
  end)

  T.test("exec working_dir", function()
    T.eq(client():exec("pwd", { working_dir = "/tmp" }).stdout, "/tmp\n")
  end)

  T.test("exec_stream delivers chunks to callbacks", function()
    local out, err, handles = {}, {}, 0
    local r = client():exec_stream("for i in 1 2 3; do echo $i; done; echo e >&2", {
      on_stdout = function(d, h) out[#out + 1] = d; if h and h.op then handles = handles + 1 end end,
      on_stderr = function(d) err[#err + 1] = d end,
    })
    T.eq(table.concat(out), "1\n2\n3\n")
    T.eq(table.concat(err), "e\n")
    T.eq(r.exit_code, 0)
    T.ok(handles > 0, "the exec handle has its op id")
  end)

  T.test("exec_stream with a plain on_output function", function()
    local got = {}
    client():exec_stream("echo x; echo y >&2", function(fd, d) got[#got + 1] = fd .. ":" .. d end)
    table.sort(got)
    T.deep_eq(got, { "1:x\n", "2:y\n" })
  end)

  T.test("exec_pipe with stdin bytes", function()
    local out = {}
    local data = "hello\0world\n" .. string.rep("z", 100000)
    local r = client():exec_pipe("cat", { stdin = data, on_stdout = function(d) out[#out + 1] = d end })
    T.eq(r.exit_code, 0)
    T.eq(table.concat(out), data)
  end)

  T.test("exec_pipe interactive: write from on_ready, then close", function()
    local out = {}
    local r = client():exec_pipe("tr a-z A-Z", {
      interactive = true,
      on_ready = function(h) T.ok(h:write("abc")) h:write("def\n") h:close_stdin() end,
      on_stdout = function(d) out[#out + 1] = d end,
    })
    T.eq(r.exit_code, 0)
    T.eq(table.concat(out), "ABCDEF\n")
  end)

  T.test("exec_tty: a terminal with its size, resize", function()
    local out = {}
    local r = client():exec_tty("test -t 0 && echo isatty; stty size", {
      rows = 30, cols = 100, on_stdout = function(d) out[#out + 1] = d end,
    })
    local s = table.concat(out)
    T.eq(r.exit_code, 0, s)
    T.ok(s:find("isatty", 1, true), s)
    T.ok(s:find("30 100", 1, true), s)
    local out2 = {}
    client():exec_tty("sleep 0.3; stty size", {
      interactive = true,
      on_ready = function(h) h:resize(40, 120) h:close_stdin() end,
      on_stdout = function(d) out2[#out2 + 1] = d end,
    })
    T.ok(table.concat(out2):find("40 120", 1, true), table.concat(out2))
  end)

  T.test("files: write, read, list, mode, binary", function()
    local c = client()
    local data = "bin\0ary\255" .. string.rep("x", 1000)
    T.ok(c:write_file("/tmp/f.bin", data, { mode = 384 }))
    T.eq(c:read_file("/tmp/f.bin"), data)
    T.eq(c:exec("stat -c %a /tmp/f.bin").stdout, "600\n")
    c:exec("mkdir -p /tmp/d && touch /tmp/d/a /tmp/d/b && mkdir -p /tmp/d/sub")
    local entries = c:list_files("/tmp/d")
    local names = {}
    for _, e in ipairs(entries) do names[e.name] = e end
    T.ok(names.a and names.b and names.sub, "entries listed")
    T.eq(names.sub.is_dir, true)
    T.eq(names.a.is_dir, false)
    T.eq(names.a.size, 0)
    if math.type then T.eq(math.type(names.a.size), "integer") end
  end)

  T.test("files: an empty file and a large one (streamed through exec_pipe)", function()
    local c = client()
    c:write_file("/tmp/empty", "")
    T.eq(c:read_file("/tmp/empty"), "")
    local big = string.rep("0123456789abcdef", 9 * 65536) -- 9 MiB: over the one-line limit
    T.ok(c:write_file("/tmp/big", big))
    local back = c:read_file("/tmp/big")
    T.eq(#back, #big)
    T.ok(back == big, "content equal")
  end)

  T.test("log and log_follow", function()
    local c = client()
    local log = c:log()
    T.eq(type(log), "string")
    T.ok(#log > 0, "the VM log has content")
    local chunks, done_err = {}, nil
    local finished = false
    local h = c:log_follow(function(d) chunks[#chunks + 1] = d end, function(_, e) done_err = e finished = true end)
    H.pump(c, function() return #chunks > 0 end, 5000)
    h:cancel()
    H.pump(c, function() return finished end, 5000)
    T.ok(done_err and done_err:is("ECANCELED"), "follow ends with ECANCELED: " .. tostring(done_err))
  end)

  T.test("allow list add and delete", function()
    local c = H.created(ml.Sandbox.new("alpine:latest"):allow_host("a.example.com"))
    local r = c:allow_list_add({ "b.example.com, c.example.com" })
    T.deep_eq(r.added, { "b.example.com", "c.example.com" })
    T.ok(#r.allowed_hosts >= 3)
    local d = c:allow_list_delete("b.example.com")
    T.deep_eq(d.removed, { "b.example.com" })
    H.done(c)
  end)

  T.test("port forwards from the builder and at run time", function()
    local base = 20000 + (os.time() % 5000) * 2
    local c = H.created(ml.Sandbox.new("alpine:latest"):add_port_forward(base .. ":" .. (base + 1)))
    local b = c:port_forward({ (base + 2) .. ":" .. (base + 3) }, { addresses = { "127.0.0.1" } })
    T.eq(#b, 1)
    T.eq(b[1].local_port, base + 2)
    T.eq(b[1].remote_port, base + 3)
    T.eq(b[1].address, "127.0.0.1")
    H.done(c)
  end)

  T.test("volumes: create, list, remove", function()
    local name = "luavol" .. os.time() % 100000
    local v = ml.volume_create(name, 16, H.opts())
    T.eq(v.name, name)
    T.eq(v.size, "16.0 MB")   -- upstream prints the size as a display string
    T.ok(type(v.path) == "string" and v.path ~= "", "a path")
    local found
    for _, x in ipairs(ml.volume_list(H.opts())) do if x.name == name then found = x end end
    T.ok(found, "listed")
    T.ok(ml.volume_remove(name, H.opts()))
    local c = H.client()
    c:volume_create(name, 8)
    T.ok(c:volume_remove(name))
    c:free()
  end)

  -- launcher_shell: a launcher that hands its words to a shell, as ssh does
  -- (issue 23, item 1).  The stand-in joins the words after it and runs them
  -- with `sh -c`; the binary sits at a path only a quoted word survives.
  T.test("launcher_shell quotes every word after the launcher; names are checked first", function()
    local tmp = os.tmpname()
    os.remove(tmp)
    local dir = tmp .. "/it's a dir;$(touch " .. tmp .. "-injected)"
    local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
    T.ok(os.execute("mkdir -p " .. q(dir) .. " && ln -s " .. q(H.local_bin()) .. " " .. q(dir .. "/match lock")))
    local fake_ssh = { "sh", "-c", 'exec sh -c "$*"', "fake-ssh" }
    local opts = H.opts({ binary = dir .. "/match lock", launcher = fake_ssh, launcher_shell = true })
    local v = ml.volume_create("lua-quoted", 16, opts)
    T.eq(v.name, "lua-quoted")
    T.ok(ml.volume_remove("lua-quoted", opts))
    local c = ml.Client.new(opts)
    c:create(ml.Sandbox.new("alpine:latest"))
    T.eq(c:exec("echo hi").stdout, "hi\n")
    T.ok(c:close())
    T.ok(c:remove())
    for _, name in ipairs { "vol; id > /tmp/x; echo", "--help", "--stopped" } do
      T.raises(function() ml.volume_create(name, 16, opts) end, "%[A%-Za%-z0%-9%]%[A%-Za%-z0%-9%._%-%]%*")
    end
    -- unquoted, the shell splits the path: the setting is what works
    T.raises(function() ml.volume_create("lua-quoted", 16, H.opts({ binary = dir .. "/match lock", launcher = fake_ssh })) end)
    local f = io.open(tmp .. "-injected")
    if f then f:close() end
    T.ok(not f, "the shell ran the path")
    os.execute("rm -rf " .. q(tmp))
  end)

  T.test("events from VFS interception", function()
    local c = H.created(ml.Sandbox.new("alpine:latest"):with_workspace("/workspace"):mount_memory("/workspace")
      :with_vfs_interception({ emit_events = true }))
    local events = {}
    c:on_event(function(e) events[#events + 1] = e end)
    c:write_file("/workspace/ev.txt", "hi\n") -- a file call: every backend emits its event
    H.pump(c, function()
      for _, e in ipairs(events) do if e.file and tostring(e.file.path):find("ev.txt", 1, true) then return true end end
    end, 5000)
    T.eq(type(events[1].type), "string")
    H.done(c)
  end)

  T.test("close is idempotent; remove after close", function()
    local c = H.created()
    T.ok(c:close(1))
    T.ok(c:close())
    T.ok(c:remove())
    c:free()
  end)

  -- Descriptors before and after n clients made by make(), closed and kept
  -- referenced (no collectgarbage), so only close() can free their fds.  An
  -- open anchor client (returned) keeps the core's shared I/O thread up.
  local function fds_over_closed(n, make)
    local anchor = H.client()
    local warm = H.created()
    warm:close()
    T.ok(warm:remove())
    local before = H.fds()
    local keep = {}
    for i = 1, n do
      local c = make()
      T.ok(c:close())
      keep[i] = c
    end
    return before, H.fds(), keep, anchor
  end

  T.test("close releases every descriptor of the client at once (200 clients)", function()
    local before, after, keep, anchor = fds_over_closed(200, H.client)
    anchor:close()
    T.ok(after - before <= 3, ("descriptors grew from %d to %d over 200 closed clients"):format(before, after))
    T.eq(keep[1]:vm_id(), nil)
    T.ok(keep[1]:close())
  end)

  T.test("close releases every descriptor of a client that created a sandbox; remove works after", function()
    -- remove() then runs `matchlock rm` with the config and the kept vm id
    local before, after, keep, anchor = fds_over_closed(20, H.created)
    T.ok(after - before <= 3, ("descriptors grew from %d to %d over 20 closed clients with sandboxes"):format(before, after))
    T.raises(function() keep[1]:exec("true") end, "client closed")
    for _, c in ipairs(keep) do
      T.eq(c:vm_id():sub(1, 3), "vm-")
      T.ok(c:remove())
      T.raises(function() c:remove() end, "MLK_EREMOVE") -- really removed the first time
    end
    local done
    keep[1]:remove_async(function(ok, err) done = err end)
    T.ok(done and tostring(done):find("MLK_EREMOVE", 1, true), tostring(done))
    T.ok(H.fds() - before <= 3)
    anchor:close()
  end)
end
