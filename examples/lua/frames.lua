-- frames.lua - the script of examples/lua/host.c: start a sandbox and stream
-- a command's output across frames without ever blocking a frame.
--
--   MATCHLOCK_BIN=build/matchlock-local host examples/lua/frames.lua
local ml = require("matchlock")

local client = ml.Client.new { binary = os.getenv("MATCHLOCK_BIN") or "matchlock" }
local lines, finished, failure = {}, false, nil
local script = {}
local frame_no = 0

-- nothing below blocks a frame: create and exec are started async and
-- their callbacks run from client:dispatch()
client:create_async(ml.Sandbox.new("alpine:latest"), function(_, err)
  if err then error(err) end
  print(string.format("frame %4d: created %s", frame_no, client:vm_id()))
  client:exec_async("for i in 1 2 3 4 5 6 7 8; do echo line $i; sleep 0.03; done", {
    on_stdout = function(data)
      for l in data:gmatch("[^\n]+") do
        lines[#lines + 1] = l
        print(string.format("frame %4d: %s", frame_no, l))
      end
    end,
  }, function(res, err)
    finished, failure = true, err
  end)
end)

function script.frame(n)
  frame_no = n
  client:dispatch() -- runs waiting callbacks; never waits
  if finished then
    if failure then error(failure) end
    return true
  end
  return false
end

function script.fd() return client:fd() end

function script.finish()
  client:close()
  pcall(client.remove, client)
  print(string.format("streamed %d lines", #lines))
end

return script
