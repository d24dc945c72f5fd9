/* host.c - a tiny "game" host embedding Lua with a frame loop.
 *
 *   host SCRIPT.lua [MAX_FRAMES]
 *
 * The script returns a table { frame = function(n) -> done?, fd = function() -> fd|nil }.
 * Every frame (about 16 ms) the host calls script.frame(n); between frames
 * it sleeps in poll() on the fd the script gives (matchlock's notification
 * descriptor), so it wakes early when callbacks are waiting but never blocks
 * past the frame budget.  It reports the slowest frame and exits 0 when the
 * script finished without any frame going over budget.
 *
 * Build against Lua 5.4 or LuaJIT (see lua/run-tests.sh):
 *   cc -I<repo>/abi/include $(pkg-config --cflags lua5.4) host.c $(pkg-config --libs lua5.4) -Wl,-E
 * -Wl,-E exports the Lua API to C modules loaded with require (matchlock.core).
 *
 * A host that links the module statically instead defines MLK_LUA_STATIC
 * and links the SWIG wrapper object and libmatchlock; the module is then
 * registered in package.preload, and require("matchlock.core") finds it
 * without searching the disk. */
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#ifdef MLK_LUA_STATIC
int luaopen_matchlock_core(lua_State *L);
#endif

#define FRAME_MS 16.0
#define BUDGET_MS 12.0 /* what the script may use of a frame */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int traceback(lua_State *L)
{
    const char *m = lua_tostring(L, 1);
    luaL_traceback(L, L, m ? m : "(error object is not a string)", 1);
    return 1;
}

/* Call script[name](arg) protected; leaves one result. */
static int call(lua_State *L, int script, const char *name, int arg)
{
    lua_pushcfunction(L, traceback);
    lua_getfield(L, script, name);
    if (lua_isnil(L, -1)) { lua_pop(L, 2); lua_pushnil(L); return 0; }
    lua_pushinteger(L, arg);
    if (lua_pcall(L, 1, 1, -3) != 0) {
        fprintf(stderr, "host: script.%s failed: %s\n", name, lua_tostring(L, -1));
        lua_pop(L, 2);
        return -1;
    }
    lua_remove(L, -2);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) { fprintf(stderr, "usage: %s SCRIPT.lua [MAX_FRAMES]\n", argv[0]); return 2; }
    int max_frames = argc > 2 ? atoi(argv[2]) : 3000;
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
#ifdef MLK_LUA_STATIC
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, luaopen_matchlock_core);
    lua_setfield(L, -2, "matchlock.core");
    lua_pop(L, 2);
#endif
    lua_pushcfunction(L, traceback);
    if (luaL_loadfile(L, argv[1]) != 0 || lua_pcall(L, 0, 1, -2) != 0) {
        fprintf(stderr, "host: loading %s: %s\n", argv[1], lua_tostring(L, -1));
        return 1;
    }
    if (!lua_istable(L, -1)) { fprintf(stderr, "host: the script must return a table\n"); return 1; }
    int script = lua_gettop(L);
    double worst = 0;
    int frame, done = 0, over = 0;
    for (frame = 1; frame <= max_frames && !done; frame++) {
        double t0 = now_ms();
        if (call(L, script, "frame", frame) != 0) return 1;
        done = lua_toboolean(L, -1);
        lua_pop(L, 1);
        double spent = now_ms() - t0;
        if (spent > worst) worst = spent;
        if (spent > BUDGET_MS) over++;
        /* sleep for the rest of the frame, waking early on matchlock's fd */
        int fd = -1;
        if (call(L, script, "fd", 0) == 0 && lua_isnumber(L, -1)) fd = (int)lua_tointeger(L, -1);
        lua_pop(L, 1);
        double left = FRAME_MS - (now_ms() - t0);
        if (left > 0) {
            struct pollfd p = {fd, POLLIN, 0};
            poll(&p, fd >= 0 ? 1 : 0, (int)left);
        }
        if (lua_gettop(L) != script) { fprintf(stderr, "host: unbalanced Lua stack\n"); return 1; }
    }
    printf("host: frames=%d done=%s worst_frame_ms=%.2f over_budget=%d\n", frame - 1, done ? "yes" : "no", worst, over);
    if (call(L, script, "finish", 0) == 0) lua_pop(L, 1);
    lua_close(L);
    return done && over == 0 ? 0 : 1;
}
