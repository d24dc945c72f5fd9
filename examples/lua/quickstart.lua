-- quickstart.lua - a sandbox from Lua: create, exec, stream, files, close.
--
--   make build && lua/build.sh build
--   MATCHLOCK_BIN=$PWD/build/matchlock-local \
--   LUA_PATH="lua/?.lua;;" LUA_CPATH="build/lua/5.4/?.so;;" lua5.4 examples/lua/quickstart.lua
-- (LuaJIT: LUA_CPATH="build/lua/jit/?.so;;" luajit examples/lua/quickstart.lua)
local ml = require("matchlock")

local client = ml.Client.new { binary = os.getenv("MATCHLOCK_BIN") or "matchlock" }

local sandbox = ml.Sandbox.new("alpine:latest")
  :with_cpus(1)
  :with_memory(512)
  :with_env("GREETING", "hello from Lua")

local vm = client:create(sandbox)
print("created " .. vm)

-- buffered: the whole output in the result
local r = client:exec("echo $GREETING; uname -s")
io.write(r.stdout)
print("exit code", r.exit_code)

-- streamed: chunks as they come
client:exec_stream("for i in 1 2 3; do echo tick $i; sleep 0.1; done", {
  on_stdout = function(data) io.write("[stream] ", data) end,
})

-- stdin through a pipe
local up = {}
client:exec_pipe("tr a-z A-Z", { stdin = "shout\n", on_stdout = function(d) up[#up + 1] = d end })
io.write(table.concat(up))

-- files
client:write_file("/tmp/hello.txt", "bytes\0and text\n")
print(#client:read_file("/tmp/hello.txt"), "bytes read back")
for _, e in ipairs(client:list_files("/tmp")) do
  if e.name == "hello.txt" then print(e.name, e.size, e.is_dir) end
end

-- errors are objects; pcall or nothrow for the non-raising style
local res, err = client:nothrow():read_file("/does/not/exist")
print("read_file failed:", res == nil, err.name, err.rpc_code)

-- async: completions run when you dispatch (e.g. once per frame)
local done = false
client:exec_async("echo async", function(result, e)
  print("async finished:", result and result.stdout or tostring(e))
  done = true
end)
while not done do client:poll(100) end

client:close()
client:remove()
