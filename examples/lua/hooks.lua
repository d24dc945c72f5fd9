-- hooks.lua - hooks from Lua: watch files a command writes, block and
-- rewrite the SDK's own file writes, answer a network hook later, and print
-- every sandbox event.
--
--   make build
--   MATCHLOCK_BIN=$PWD/build/matchlock-local \
--   LUA_PATH="lua/?.lua;;" LUA_CPATH="build/lua/5.4/?.so;;" lua5.4 examples/lua/hooks.lua
-- (LuaJIT: LUA_CPATH="build/lua/jit/?.so;;" luajit examples/lua/hooks.lua)
local ml = require("matchlock")

local client = ml.Client.new { binary = os.getenv("MATCHLOCK_BIN") or "matchlock" }

local sandbox = ml.Sandbox.new("alpine:latest")
  :with_workspace("/workspace")
  :mount_memory("/workspace")
  :with_vfs_interception {
    rules = {
      -- after-hook: sees file events (switches emit_events on)
      { name = "log-txt", phase = "after", ops = { "write" }, path = "/workspace/*.txt",
        hook = function(ev) print(("after-hook: %s %s (%d bytes)"):format(ev.op, ev.path, ev.size or 0)) end },
      -- dangerous hook: gets the client and may call it (even blocking)
      { name = "inspect", phase = "after", ops = { "write" }, path = "/workspace/report*",
        dangerous_hook = function(c, ev)
          io.write("dangerous hook: ", c:exec("wc -c < " .. ev.path).stdout)
        end },
      -- action hook: allow or block the SDK's own write_file/read_file/list_files
      { name = "no-dotenv", phase = "before", ops = { "write" },
        action_hook = function(req) if req.path:match("/%.env$") then return "block" end end },
      -- mutate hook: the bytes write_file sends
      { name = "stamp", phase = "before", path = "/workspace/stamped/*",
        mutate_hook = function(req) return "# stamped by the host\n" .. req.data end },
    },
  }
  -- a network hook (rules with `hook` in with_network_interception work too)
  :add_network_hook({ name = "tap", phase = "after", hosts = { "example.com" } }, function(req)
    -- yielding defers the answer: a later dispatch resumes the hook
    local r = client:await("exec", "date +%s")
    return { response = { headers = { ["X-Checked-At"] = r.stdout:gsub("%s+$", "") } } }
  end)

client:on_event(function(e)
  if e.file then print("event: file " .. tostring(e.file.op) .. " " .. tostring(e.file.path)) end
  if e.network then print("event: network " .. tostring(e.network.host)) end
end)
client.on_error = function(err) print("a hook failed: " .. tostring(err)) end

client:create(sandbox)

-- file events arrive through dispatch (poll = wait + dispatch)
client:exec("echo hello > /workspace/a.txt; echo 12345 > /workspace/report1")
for _ = 1, 20 do client:poll(50) end

local ok, err = pcall(client.write_file, client, "/workspace/.env", "SECRET=1")
print("write .env:", ok, err and err.name, err and err.message)

client:exec("mkdir -p /workspace/stamped")
client:write_file("/workspace/stamped/notes", "original text\n")
io.write("stamped file:\n", client:read_file("/workspace/stamped/notes"))

client:close()
client:remove()
