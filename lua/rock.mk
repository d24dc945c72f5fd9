# rock.mk - how the rock (matchlock.rockspec.in) installs: one compiler run
# per module, straight into the rock tree, so no object file is left in the
# sources.  Variables come from LuaRocks (install_variables).
SOURCES = matchlock_lua_wrap.c $(wildcard core/*.c)

install:
	mkdir -p "$(LIBDIR)/matchlock" "$(LUADIR)"
	$(CC) $(CFLAGS) $(LIBFLAG) -std=gnu11 -DMLK_BUILDING -D_GNU_SOURCE -Iinclude -Icore -Isrc \
	  -I"$(LUA_INCDIR)" -I"$(LIBEVENT_INCDIR)" -I"$(MSGPACK_INCDIR)" -o "$(LIBDIR)/matchlock/core.so" $(SOURCES) \
	  -L"$(LIBEVENT_LIBDIR)" -L"$(MSGPACK_LIBDIR)" -levent_core -levent_pthreads -lmsgpackc -lpthread -lm
	cp matchlock.lua "$(LUADIR)/matchlock.lua"

.PHONY: install
