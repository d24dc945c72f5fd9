/* mp.c - msgpack <-> Lua values for the matchlock Lua module.
 *
 * Structured values cross the libmatchlock ABI as msgpack documents (file
 * listings, port-forward bindings, allow-list answers, volumes, events; env
 * maps, image configs and interception configs given to the builder).  This
 * file converts them once, generically.  It is #included by the SWIG
 * wrapper (lua/matchlock_lua.i) and compiles against Lua 5.1 (LuaJIT) and
 * Lua 5.4.
 *
 * Lua -> msgpack: nil and matchlock.null are nil; integers (and integral
 * floats, which is all LuaJIT has) are integers; other numbers are doubles;
 * strings are str; a table is an array when its keys are exactly 1..n
 * (n > 0), else a map.  An empty table is a map unless its metatable has
 * __matchlock = "array" (matchlock.array{}); __matchlock = "map" forces a
 * map; __matchlock = "bin" (matchlock.bin(s)) packs the string t[1] as bin.
 * msgpack -> Lua: nil is matchlock.null (a light userdata), so arrays keep
 * their length; integers use lua_pushinteger; str and bin are strings. */
#include <lua.h>
#include <lauxlib.h>
#include <msgpack.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if LUA_VERSION_NUM < 502
#define mlkL_rawlen(L, i) lua_objlen(L, (i))
#else
#define mlkL_rawlen(L, i) lua_rawlen(L, (i))
#endif

#define MLKL_MP_DEPTH 64

/* The value used for msgpack nil inside tables: a light userdata NULL.
 * matchlock.null is this value. */
static void mlkL_push_null(lua_State *L) { lua_pushlightuserdata(L, NULL); }

static int mlkL_is_null(lua_State *L, int i)
{
    return lua_islightuserdata(L, i) && lua_touserdata(L, i) == NULL;
}

/* ---------------------------------------------------------------------- */
/* msgpack -> Lua                                                          */

static void mlkL_push_mpobj(lua_State *L, const msgpack_object *o, int depth)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: mlkL_push_null(L); break;
    case MSGPACK_OBJECT_BOOLEAN: lua_pushboolean(L, o->via.boolean); break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
#if LUA_VERSION_NUM >= 503
        if (o->via.u64 > (uint64_t)LUA_MAXINTEGER) lua_pushnumber(L, (lua_Number)o->via.u64);
        else lua_pushinteger(L, (lua_Integer)o->via.u64);
#else
        lua_pushnumber(L, (lua_Number)o->via.u64);
#endif
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
#if LUA_VERSION_NUM >= 503
        lua_pushinteger(L, (lua_Integer)o->via.i64);
#else
        lua_pushnumber(L, (lua_Number)o->via.i64);
#endif
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: lua_pushnumber(L, (lua_Number)o->via.f64); break;
    case MSGPACK_OBJECT_STR: lua_pushlstring(L, o->via.str.size ? o->via.str.ptr : "", o->via.str.size); break;
    case MSGPACK_OBJECT_BIN: lua_pushlstring(L, o->via.bin.size ? o->via.bin.ptr : "", o->via.bin.size); break;
    case MSGPACK_OBJECT_ARRAY:
        lua_createtable(L, (int)o->via.array.size, 0);
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            mlkL_push_mpobj(L, &o->via.array.ptr[i], depth + 1);
            lua_rawseti(L, -2, (int)i + 1);
        }
        break;
    case MSGPACK_OBJECT_MAP:
        lua_createtable(L, 0, (int)o->via.map.size);
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            mlkL_push_mpobj(L, &kv->key, depth + 1);
            if (lua_isnil(L, -1) || mlkL_is_null(L, -1)) { lua_pop(L, 1); continue; } /* nil key: drop */
            mlkL_push_mpobj(L, &kv->val, depth + 1);
            lua_rawset(L, -3);
        }
        break;
    default: /* ext types: carried as their raw bytes */
        lua_pushlstring(L, o->via.ext.size ? o->via.ext.ptr : "", o->via.ext.size);
        break;
    }
}

static int mlkL_mp_depth_ok(const msgpack_object *o, int depth)
{
    if (depth > MLKL_MP_DEPTH) return 0;
    if (o->type == MSGPACK_OBJECT_ARRAY) {
        for (uint32_t i = 0; i < o->via.array.size; i++)
            if (!mlkL_mp_depth_ok(&o->via.array.ptr[i], depth + 1)) return 0;
    } else if (o->type == MSGPACK_OBJECT_MAP) {
        for (uint32_t i = 0; i < o->via.map.size; i++)
            if (!mlkL_mp_depth_ok(&o->via.map.ptr[i].key, depth + 1) ||
                !mlkL_mp_depth_ok(&o->via.map.ptr[i].val, depth + 1)) return 0;
    }
    return 1;
}

/* Push the Lua value of one msgpack document, or raise a Lua error saying
 * what is wrong with it. */
static void mlkL_push_msgpack(lua_State *L, const char *buf, size_t len)
{
    msgpack_unpacked u;
    size_t off = 0;
    msgpack_unpacked_init(&u);
    if (!buf || len == 0) { lua_pushnil(L); return; }
    msgpack_unpack_return r = msgpack_unpack_next(&u, buf, len, &off);
    if (r != MSGPACK_UNPACK_SUCCESS) {
        msgpack_unpacked_destroy(&u);
        luaL_error(L, "matchlock: the %d bytes given are not a complete msgpack document", (int)len);
        return;
    }
    /* Check the depth before pushing, so the only error pushing can raise
     * is out of memory (which leaks the zone; nothing better is cheap). */
    if (!mlkL_mp_depth_ok(&u.data, 0)) {
        msgpack_unpacked_destroy(&u);
        luaL_error(L, "matchlock: msgpack document nested deeper than %d levels", MLKL_MP_DEPTH);
        return;
    }
    luaL_checkstack(L, 3 * MLKL_MP_DEPTH + 8, "matchlock: msgpack document too deep");
    mlkL_push_mpobj(L, &u.data, 0);
    msgpack_unpacked_destroy(&u);
}

/* ---------------------------------------------------------------------- */
/* Lua -> msgpack                                                          */

/* A growable buffer owned by a Lua userdata, so a Lua error raised in the
 * middle of encoding (a function value, a cycle) frees it through __gc. */
typedef struct {
    char *data;
    size_t len, cap;
} mlkL_mpbuf;

static int mlkL_mpbuf_gc(lua_State *L)
{
    mlkL_mpbuf *b = (mlkL_mpbuf *)lua_touserdata(L, 1);
    if (b) { free(b->data); b->data = NULL; b->len = b->cap = 0; }
    return 0;
}

static int mlkL_mpbuf_write(void *data, const char *p, size_t n)
{
    mlkL_mpbuf *b = (mlkL_mpbuf *)data;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->len + n) cap *= 2;
        char *nd = (char *)realloc(b->data, cap);
        if (!nd) return -1;
        b->data = nd;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

/* The __matchlock field of a table's metatable: 'a' array, 'm' map, 0. */
static int mlkL_table_hint(lua_State *L, int idx)
{
    int hint = 0;
    if (!lua_getmetatable(L, idx)) return 0;
    lua_pushliteral(L, "__matchlock");
    lua_rawget(L, -2);
    const char *s = lua_tostring(L, -1);
    if (s && strcmp(s, "array") == 0) hint = 'a';
    else if (s && strcmp(s, "map") == 0) hint = 'm';
    else if (s && strcmp(s, "bin") == 0) hint = 'b';
    lua_pop(L, 2);
    return hint;
}

/* Array length when the table at idx is a sequence 1..n with nothing
 * else, else -1.  0 for an empty table. */
static long mlkL_seq_len(lua_State *L, int idx)
{
    size_t n = mlkL_rawlen(L, idx);
    size_t count = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        count++;
        if (lua_type(L, -1) != LUA_TNUMBER) { lua_pop(L, 1); return -1; }
        lua_Number k = lua_tonumber(L, -1);
        if (k < 1 || k != floor(k) || k > (lua_Number)n) { lua_pop(L, 1); return -1; }
    }
    return count == n ? (long)n : -1;
}

static void mlkL_pack_number(lua_State *L, int idx, msgpack_packer *pk)
{
#if LUA_VERSION_NUM >= 503
    if (lua_isinteger(L, idx)) { msgpack_pack_int64(pk, (int64_t)lua_tointeger(L, idx)); return; }
#endif
    lua_Number d = lua_tonumber(L, idx);
    if (isfinite(d) && d == floor(d) && d >= -9007199254740992.0 && d <= 9007199254740992.0)
        msgpack_pack_int64(pk, (int64_t)d);
    else
        msgpack_pack_double(pk, (double)d);
}

static void mlkL_pack(lua_State *L, int idx, msgpack_packer *pk, int depth, const char *what)
{
    if (depth > MLKL_MP_DEPTH)
        luaL_error(L, "%s: value nested deeper than %d levels (a table that contains itself?)", what, MLKL_MP_DEPTH);
    luaL_checkstack(L, 6, "matchlock: value too deep");
    switch (lua_type(L, idx)) {
    case LUA_TNIL: msgpack_pack_nil(pk); break;
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx)) msgpack_pack_true(pk);
        else msgpack_pack_false(pk);
        break;
    case LUA_TNUMBER: mlkL_pack_number(L, idx, pk); break;
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        msgpack_pack_str(pk, n);
        msgpack_pack_str_body(pk, s, n);
        break;
    }
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) { msgpack_pack_nil(pk); break; }
        /* fallthrough */
    default:
        luaL_error(L, "%s: cannot encode a %s value (use strings, numbers, booleans and tables)", what,
                   luaL_typename(L, idx));
        break;
    case LUA_TTABLE: {
        int hint = mlkL_table_hint(L, idx);
        if (hint == 'b') { /* matchlock.bin(s): {s} packed as bin */
            size_t bn;
            lua_rawgeti(L, idx, 1);
            const char *bs = lua_tolstring(L, -1, &bn);
            if (lua_type(L, -1) != LUA_TSTRING)
                luaL_error(L, "%s: a table marked as bin must hold one string, got %s", what, luaL_typename(L, -1));
            msgpack_pack_bin(pk, bn);
            msgpack_pack_bin_body(pk, bs, bn);
            lua_pop(L, 1);
            break;
        }
        long n = hint == 'm' ? -1 : mlkL_seq_len(L, idx);
        if (n > 0 || (n == 0 && hint == 'a')) {
            msgpack_pack_array(pk, (size_t)n);
            for (long i = 1; i <= n; i++) {
                lua_rawgeti(L, idx, (int)i);
                mlkL_pack(L, lua_gettop(L), pk, depth + 1, what);
                lua_pop(L, 1);
            }
        } else if (hint == 'a') {
            luaL_error(L, "%s: a table marked as an array has keys other than 1..n", what);
        } else {
            size_t count = 0;
            lua_pushnil(L);
            while (lua_next(L, idx)) { lua_pop(L, 1); count++; }
            msgpack_pack_map(pk, count);
            lua_pushnil(L);
            while (lua_next(L, idx)) {
                int top = lua_gettop(L);
                int kt = lua_type(L, top - 1);
                if (kt != LUA_TSTRING && kt != LUA_TNUMBER && kt != LUA_TBOOLEAN)
                    luaL_error(L, "%s: cannot encode a map key of type %s", what, luaL_typename(L, top - 1));
                if (kt == LUA_TSTRING) {
                    size_t kn;
                    const char *ks = lua_tolstring(L, top - 1, &kn);
                    msgpack_pack_str(pk, kn);
                    msgpack_pack_str_body(pk, ks, kn);
                } else {
                    mlkL_pack(L, top - 1, pk, depth + 1, what);
                }
                mlkL_pack(L, top, pk, depth + 1, what);
                lua_pop(L, 1);
            }
        }
        break;
    }
    }
}

/* Encode the value at idx and push the msgpack bytes as a Lua string.
 * `what` names the caller in error messages. */
static void mlkL_push_encoded(lua_State *L, int idx, const char *what)
{
    if (idx < 0) idx = lua_gettop(L) + idx + 1;
    mlkL_mpbuf *b = (mlkL_mpbuf *)lua_newuserdata(L, sizeof *b);
    memset(b, 0, sizeof *b);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, mlkL_mpbuf_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    msgpack_packer pk;
    msgpack_packer_init(&pk, b, mlkL_mpbuf_write);
    mlkL_pack(L, idx, &pk, 0, what);
    lua_pushlstring(L, b->data ? b->data : "", b->len);
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    lua_remove(L, -2); /* the buffer userdata */
}

/* core.mp_encode(value) -> string */
static int mlkL_mp_encode(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_settop(L, 1);
    mlkL_push_encoded(L, 1, "mp_encode");
    return 1;
}

/* core.mp_decode(string) -> value */
static int mlkL_mp_decode(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    if (n == 0) return luaL_error(L, "mp_decode: empty string (a msgpack document has at least one byte)");
    mlkL_push_msgpack(L, s, n);
    return 1;
}
