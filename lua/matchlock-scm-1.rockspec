-- LuaRocks package of the Lua binding.  Needs libmatchlock (headers and
-- libmatchlock.so.1, e.g. `cmake --install`), libmsgpack-dev and swig.
--   luarocks make lua/matchlock-scm-1.rockspec MATCHLOCK_DIR=/usr/local
rockspec_format = "3.0"
package = "matchlock"
version = "scm-1"
source = { url = "git+https://example.invalid/libmatchlock.git" }
description = {
  summary = "Drive Matchlock sandboxes from Lua 5.4 and LuaJIT (libmatchlock binding)",
  license = "MIT",
}
dependencies = { "lua >= 5.1" }
external_dependencies = {
  MATCHLOCK = { header = "matchlock.h", library = "matchlock" },
  MSGPACK = { header = "msgpack.h", library = "msgpackc" },
}
build = {
  type = "command",
  -- run from the repository root (the rockspec lives in lua/)
  build_command = [[
    cd lua && swig -lua -nomoduleglobal -no-old-metatable-bindings -I../bindings -I$(MATCHLOCK_INCDIR) -Isrc \
      -o matchlock_lua_wrap.c matchlock_lua.i &&
    mkdir -p matchlock &&
    $(CC) $(CFLAGS) $(LIBFLAG) -Isrc -I$(MATCHLOCK_INCDIR) -I$(MSGPACK_INCDIR) -I$(LUA_INCDIR) \
      -o matchlock/core.so matchlock_lua_wrap.c -L$(MATCHLOCK_LIBDIR) -lmatchlock -L$(MSGPACK_LIBDIR) -lmsgpackc
  ]],
  install = {
    lua = { matchlock = "lua/matchlock.lua" },
    lib = { ["matchlock.core"] = "lua/matchlock/core.so" },
  },
}
