# rock.mk - how the rock (matchlock.rockspec.in) installs: one compiler run
# per module, straight into the rock tree, so no object file is left in the
# sources.  Variables come from LuaRocks (install_variables); the core's
# sources, C standard, defines, flags and libraries come from its recipe
# (core/build.json), as core/build.mk, which lua/dist.sh writes from it.
include core/build.mk
SOURCES = matchlock_lua_wrap.c $(CORE_SOURCES)
# msgpack-c's C library: msgpackc (Debian, msgpack-c < 6), msgpack-c (6.0 on:
# Homebrew; the rockspec sets it on macOS)
MSGPACK_LIB ?= msgpackc

install:
	mkdir -p "$(LIBDIR)/matchlock" "$(LUADIR)"
	$(CC) $(CFLAGS) $(LIBFLAG) $(CORE_CFLAGS) -Iinclude -Icore -Isrc \
	  -I"$(LUA_INCDIR)" -I"$(LIBEVENT_INCDIR)" -I"$(MSGPACK_INCDIR)" -o "$(LIBDIR)/matchlock/core.so" $(SOURCES) \
	  -L"$(LIBEVENT_LIBDIR)" -L"$(MSGPACK_LIBDIR)" -levent_core -levent_pthreads -l$(MSGPACK_LIB) $(CORE_LIBS)
	cp matchlock.lua "$(LUADIR)/matchlock.lua"

.PHONY: install
