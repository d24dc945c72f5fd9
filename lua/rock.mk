# rock.mk - how the rock (matchlock.rockspec.in) installs: one compiler run
# per module, straight into the rock tree, so no object file is left in the
# sources.  Variables come from LuaRocks (install_variables).
SOURCES = matchlock_lua_wrap.c $(wildcard core/*.c)
# msgpack-c's C library: msgpackc (Debian, msgpack-c < 6), msgpack-c (6.0 on:
# Homebrew; the rockspec sets it on macOS)
MSGPACK_LIB ?= msgpackc

install:
	mkdir -p "$(LIBDIR)/matchlock" "$(LUADIR)"
	$(CC) $(CFLAGS) $(LIBFLAG) -std=gnu11 -DMLK_BUILDING -D_GNU_SOURCE -Iinclude -Icore -Isrc \
	  -I"$(LUA_INCDIR)" -I"$(LIBEVENT_INCDIR)" -I"$(MSGPACK_INCDIR)" -o "$(LIBDIR)/matchlock/core.so" $(SOURCES) \
	  -L"$(LIBEVENT_LIBDIR)" -L"$(MSGPACK_LIBDIR)" -levent_core -levent_pthreads -l$(MSGPACK_LIB) -lpthread -lm
	cp matchlock.lua "$(LUADIR)/matchlock.lua"

.PHONY: install
