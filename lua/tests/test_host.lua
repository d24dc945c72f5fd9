-- The embedding example: a C host with a frame loop runs examples/lua/frames.lua.
return function(T)
  local H = require("helpers")

  T.test("game-loop host streams output across frames without blocking", function()
    local host = os.getenv("MLK_LUA_HOST")
    if not host or not H.exists(host) then error("SKIP: MLK_LUA_HOST not built (lua/run-tests.sh builds it)", 0) end
    local cmd = string.format("MATCHLOCK_BIN='%s' XDG_STATE_HOME='%s' HOME='%s' '%s' '%s/examples/lua/frames.lua' 2>&1; echo \"exit=$?\"",
      H.local_bin(), H.state_dir(), H.state_dir(), host, H.repo)
    local f = io.popen(cmd)
    local out = f:read("*a")
    f:close()
    T.ok(out:find("exit=0", 1, true), out)
    T.ok(out:find("streamed 8 lines", 1, true), out)
    local frames = {}
    for fr in out:gmatch("frame%s+(%d+): line") do frames[fr] = true end
    local distinct = 0
    for _ in pairs(frames) do distinct = distinct + 1 end
    T.ok(distinct >= 3, "output spread over frames: " .. distinct .. "\n" .. out)
  end)
end
