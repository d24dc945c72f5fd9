/* clock.c - benchclock.now() (CLOCK_MONOTONIC seconds) and benchclock.cpu()
 * (user + system CPU seconds of the process, every thread) for
 * bench/lua/bench.lua: neither Lua 5.4 nor LuaJIT has a sub-second wall
 * clock.  Built by bench/lua/run.sh once per interpreter. */
#include <lauxlib.h>
#include <lua.h>
#include <sys/resource.h>
#include <time.h>

static int l_now(lua_State *L)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    lua_pushnumber(L, (lua_Number)t.tv_sec + (lua_Number)t.tv_nsec * 1e-9);
    return 1;
}

static int l_cpu(lua_State *L)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    lua_pushnumber(L, (lua_Number)ru.ru_utime.tv_sec + (lua_Number)ru.ru_utime.tv_usec * 1e-6 +
                          (lua_Number)ru.ru_stime.tv_sec + (lua_Number)ru.ru_stime.tv_usec * 1e-6);
    return 1;
}

int luaopen_benchclock(lua_State *L)
{
    lua_newtable(L);
    lua_pushcfunction(L, l_now);
    lua_setfield(L, -2, "now");
    lua_pushcfunction(L, l_cpu);
    lua_setfield(L, -2, "cpu");
    return 1;
}
