/* glue.c - the hand-written part of the matchlock Lua module: results as
 * tables, the client object, and Lua callbacks.
 *
 * #included by the SWIG wrapper (lua/matchlock_lua.i) after the SWIG
 * runtime, so it may use SWIG_ConvertPtr and the SWIGTYPE_p_* descriptors.
 *
 * Callbacks.  libmatchlock runs callbacks only inside three kinds of calls:
 * mlk_dispatch() (async completions, async output, events, hooks), a
 * blocking mlk_exec() (that exec's own output and ready callbacks) and a
 * blocking write/read/list_files (its VFS action and mutate hooks).  Every
 * native (or %exception wrapper) that makes such a call records the
 * lua_State it was called with in the client (g->L, saved and restored so
 * calls nest) and pushes a frame on a per-thread stack, and the trampolines
 * call the Lua function on that state: the state of the dispatch call, never
 * one saved at registration (which may be a finished coroutine).
 * A Lua function is called with lua_pcall under a traceback handler, so an
 * error never unwinds through library frames; the error is stored and
 * raised by the Lua layer after the C call returns:
 *   - an output/ready callback that fails cancels its call; the call then
 *     completes with MLK_EUSER carrying the error (field `cause`);
 *   - a done or event callback that fails is kept on the client and
 *     returned by the dispatch that ran it.
 * Function references are released when their call completes, or when the
 * client is collected (async calls never completed). */
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

/* Lua 5.2+ or LuaJIT 2.1 (which has the 5.2 functions used here, and says
 * LUA_VERSION_NUM 501 like plain 5.1): plain Lua 5.1 is refused here, with
 * the reason, rather than failing at load time on luaL_traceback. */
#if LUA_VERSION_NUM < 502 && !defined(LUA_JITLIBNAME)
#error "matchlock needs Lua 5.2 or later, or LuaJIT 2.1; plain Lua 5.1 lacks luaL_traceback and other functions it uses"
#endif

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MLKL_CLIENT_MT "matchlock.client"

/* ---------------------------------------------------------------------- */
/* numbers                                                                  */

static lua_Integer mlkL_toint(lua_State *L, int i)
{
#if LUA_VERSION_NUM >= 503
    int isnum = 0;
    lua_Integer v = lua_tointegerx(L, i, &isnum);
    if (isnum) return v;
#endif
    return (lua_Integer)lua_tonumber(L, i);
}

/* booleans and numbers both pass as C ints (true = 1) */
static int mlkL_isboolish(lua_State *L, int i)
{
    int t = lua_type(L, i);
    return t == LUA_TBOOLEAN || t == LUA_TNUMBER || t == LUA_TNIL;
}

static int mlkL_toboolish(lua_State *L, int i)
{
    if (lua_type(L, i) == LUA_TNUMBER) return (int)mlkL_toint(L, i);
    return lua_toboolean(L, i);
}


/* A `const char *` argument (nil: NULL).  0, with the core's message on the
 * stack, when the string holds a NUL (mlk_check_cstring: the argument, the
 * offset, the length; never the bytes, which may be a secret). */
static int mlkL_cstr(lua_State *L, int idx, const char *what, const char **out)
{
    size_t n = 0;
    const char *s = lua_isnil(L, idx) ? NULL : lua_tolstring(L, idx, &n);
    char *msg = NULL;
    *out = s;
    if (!s || mlk_check_cstring(what, s, n, &msg) == 0) return 1;
    lua_pushstring(L, msg ? msg : "a string argument contains a NUL character");
    mlk_free(msg);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* string arrays (const char *const *argv, size_t n)                        */

/* Raise the core's refusal when the string at the top of the stack holds a
 * NUL (a C string would end there, silently): its message names the element
 * ("hosts[1] of fname"), the offset and the length, never the bytes. */
static void mlkL_strv_nul(lua_State *L, const char *fname, const char *arg, int i)
{
    size_t len = 0;
    const char *s = lua_tolstring(L, -1, &len);
    if (!memchr(s, '\0', len)) return;
    char what[160], *msg = NULL;
    if (i) snprintf(what, sizeof what, "%s[%d] of %s", arg, i, fname);
    else snprintf(what, sizeof what, "%s of %s", arg, fname);
    mlk_check_cstring(what, s, len, &msg);
    lua_pushstring(L, msg ? msg : "a list element contains a NUL character");
    mlk_free(msg);
    lua_error(L);
}

/* A Lua table of strings (or nil) as a malloc'd array of pointers into the
 * Lua strings; they stay valid while the table is an argument of the call.
 * Raises before allocating, so nothing leaks on error. */
static const char **mlkL_strv(lua_State *L, int idx, size_t *n, const char *fname, const char *arg)
{
    *n = 0;
    if (lua_isnoneornil(L, idx)) return NULL;
    if (lua_type(L, idx) == LUA_TSTRING) {
        /* a single string is a one-element list */
        lua_pushvalue(L, idx);
        mlkL_strv_nul(L, fname, arg, 0);
        lua_pop(L, 1);
        const char **v = (const char **)malloc(sizeof *v);
        if (!v) { luaL_error(L, "%s: out of memory", fname); return NULL; }
        v[0] = lua_tostring(L, idx);
        *n = 1;
        return v;
    }
    if (!lua_istable(L, idx))
        luaL_error(L, "%s: %s must be a list of strings, got %s", fname, arg, luaL_typename(L, idx));
    size_t len = mlkL_rawlen(L, idx);
    for (size_t i = 1; i <= len; i++) {
        lua_rawgeti(L, idx, (int)i);
        int t = lua_type(L, -1);
        if (t == LUA_TSTRING) mlkL_strv_nul(L, fname, arg, (int)i);
        lua_pop(L, 1);
        if (t != LUA_TSTRING && t != LUA_TNUMBER)
            luaL_error(L, "%s: %s[%d] must be a string, got %s", fname, arg, (int)i, lua_typename(L, t));
    }
    const char **v = (const char **)malloc((len ? len : 1) * sizeof *v);
    if (!v) { luaL_error(L, "%s: out of memory", fname); return NULL; }
    for (size_t i = 1; i <= len; i++) {
        lua_rawgeti(L, idx, (int)i);
        if (lua_type(L, -1) == LUA_TNUMBER) { /* convert in the table so the string stays alive */
            lua_tostring(L, -1);
            lua_pushvalue(L, -1);
            lua_rawseti(L, idx, (int)i);
        }
        v[i - 1] = lua_tostring(L, -1);
        lua_pop(L, 1);
    }
    *n = len;
    return v;
}

/* ---------------------------------------------------------------------- */
/* results                                                                  */

/* Push an mlk_result as a table:
 *   status (0 or MLK_E*), name ("MLK_E..."), message (when failed),
 *   rpc_code (when non-zero), exit_code and duration_ms (exec results),
 *   stdout / stderr (buffered exec), data (bytes payload), value (the
 *   decoded msgpack payload, when there is one). */
static void mlkL_push_result(lua_State *L, const mlk_result *r)
{
    int st = mlk_result_status(r);
    lua_createtable(L, 0, 8);
    lua_pushinteger(L, st);
    lua_setfield(L, -2, "status");
    if (st != 0) {
        const char *nm = mlk_errname(st);
        lua_pushstring(L, nm ? nm : "MLK_E?");
        lua_setfield(L, -2, "name");
        lua_pushstring(L, mlk_result_message(r));
        lua_setfield(L, -2, "message");
        int rpc = mlk_result_rpc_code(r);
        if (rpc) { lua_pushinteger(L, rpc); lua_setfield(L, -2, "rpc_code"); }
        return;
    }
    int ec = mlk_result_exit_code(r);
    size_t n;
    const char *p;
    if (ec != -1) {
        lua_pushinteger(L, ec);
        lua_setfield(L, -2, "exit_code");
        lua_pushinteger(L, (lua_Integer)mlk_result_duration_ms(r));
        lua_setfield(L, -2, "duration_ms");
        p = mlk_result_stdout(r, &n);
        lua_pushlstring(L, p, n);
        lua_setfield(L, -2, "stdout");
        p = mlk_result_stderr(r, &n);
        lua_pushlstring(L, p, n);
        lua_setfield(L, -2, "stderr");
    }
    p = mlk_result_data(r, &n);
    lua_pushlstring(L, p, n);
    lua_setfield(L, -2, "data");
    p = mlk_result_msgpack(r, &n);
    if (p && n) {
        mlkL_push_msgpack(L, p, n);
        lua_setfield(L, -2, "value");
    }
}

/* ---------------------------------------------------------------------- */
/* the client object                                                        */

typedef struct mlkL_ctx mlkL_ctx;

typedef struct {
    mlk_client *c;
    lua_State *L;      /* state of the innermost call that may run callbacks */
    int event_ref;     /* event function, or LUA_NOREF */
    int err_ref;       /* first failed done/event callback, or LUA_NOREF */
    int nerr;          /* how many failed since the last take */
    mlkL_ctx *ctxs;    /* async calls not completed yet */
    int depth;         /* dispatch/exec calls of this client in progress */
    int free_pending;  /* freed from inside one of them: free at the end */
    struct mlkL_hook **hooks; /* hooks of the builders it was created from */
    size_t nhooks, caphooks;
} mlkL_client;

/* The Lua functions of one call. */
struct mlkL_ctx {
    mlkL_client *g;
    int done_ref, out_ref, ready_ref;
    int uerr_ref;      /* error of this call's output/ready callback */
    mlkL_ctx *prev, *next;
};

static mlkL_client *mlkL_checkclient_ud(lua_State *L, int idx)
{
    return (mlkL_client *)luaL_checkudata(L, idx, MLKL_CLIENT_MT);
}

/* The mlk_client of the client at idx; a Lua error when it was freed. */
static mlk_client *mlkL_checkclient(lua_State *L, int idx)
{
    mlkL_client *g = mlkL_checkclient_ud(L, idx);
    if (!g->c || g->free_pending)
        luaL_error(L, "matchlock: this client was freed; create a new one with Client.new");
    return g->c;
}

static void mlkL_unref(lua_State *L, int *ref)
{
    if (*ref != LUA_NOREF && *ref != LUA_REFNIL) luaL_unref(L, LUA_REGISTRYINDEX, *ref);
    *ref = LUA_NOREF;
}

/* Reference the function at idx (nil -> LUA_NOREF); raises on other types. */
static int mlkL_reffn(lua_State *L, int idx, const char *fname, const char *what)
{
    if (lua_isnoneornil(L, idx)) return LUA_NOREF;
    if (lua_type(L, idx) != LUA_TFUNCTION && !luaL_getmetafield(L, idx, "__call"))
        luaL_error(L, "%s: %s must be a function, got %s", fname, what, luaL_typename(L, idx));
    else if (lua_type(L, idx) != LUA_TFUNCTION)
        lua_pop(L, 1); /* the __call field pushed by luaL_getmetafield */
    lua_pushvalue(L, idx);
    return luaL_ref(L, LUA_REGISTRYINDEX);
}

static mlkL_ctx *mlkL_ctx_new(lua_State *L, mlkL_client *g)
{
    mlkL_ctx *x = (mlkL_ctx *)calloc(1, sizeof *x);
    if (!x) { luaL_error(L, "matchlock: out of memory"); return NULL; }
    x->g = g;
    x->done_ref = x->out_ref = x->ready_ref = x->uerr_ref = LUA_NOREF;
    return x;
}

static void mlkL_ctx_link(mlkL_client *g, mlkL_ctx *x)
{
    x->prev = NULL;
    x->next = g->ctxs;
    if (g->ctxs) g->ctxs->prev = x;
    g->ctxs = x;
}

static void mlkL_ctx_release(lua_State *L, mlkL_ctx *x, int linked)
{
    if (linked) {
        if (x->prev) x->prev->next = x->next;
        else x->g->ctxs = x->next;
        if (x->next) x->next->prev = x->prev;
    }
    mlkL_unref(L, &x->done_ref);
    mlkL_unref(L, &x->out_ref);
    mlkL_unref(L, &x->ready_ref);
    mlkL_unref(L, &x->uerr_ref);
}

/* ---------------------------------------------------------------------- */
/* running a Lua callback                                                   */

enum { MLKL_CB_DONE, MLKL_CB_OUTPUT, MLKL_CB_READY, MLKL_CB_EVENT };

typedef struct {
    int kind;
    int ref;
    uint64_t op;
    int fd;
    const char *data;
    size_t len;
    const mlk_result *res;
    mlkL_ctx *ctx;
} mlkL_cbcall;

/* Message handler: a traceback for string errors; a table error (a
 * matchlock error object) keeps its identity and gets a `traceback` field. */
static int mlkL_msgh(lua_State *L)
{
    if (lua_type(L, 1) == LUA_TTABLE) {
        lua_getfield(L, 1, "traceback");
        int has = !lua_isnil(L, -1);
        lua_pop(L, 1);
        if (!has) {
            luaL_traceback(L, L, NULL, 1);
            lua_setfield(L, 1, "traceback");
        }
        lua_settop(L, 1);
        return 1;
    }
    const char *m = lua_tostring(L, 1);
    if (!m) m = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    luaL_traceback(L, L, m, 1);
    return 1;
}

/* Push the result of a finished call; when one of the call's own callbacks
 * failed, the result says so (MLK_EUSER, cause = the error). */
static void mlkL_push_call_result(lua_State *L, const mlk_result *res, mlkL_ctx *x)
{
    mlkL_push_result(L, res);
    if (x && x->uerr_ref != LUA_NOREF) {
        lua_pushinteger(L, MLK_EUSER);
        lua_setfield(L, -2, "status");
        lua_pushstring(L, "MLK_EUSER");
        lua_setfield(L, -2, "name");
        lua_rawgeti(L, LUA_REGISTRYINDEX, x->uerr_ref);
        const char *m = lua_tostring(L, -1);
        if (!m && lua_istable(L, -1)) {
            lua_getfield(L, -1, "message");
            m = lua_tostring(L, -1);
            lua_pop(L, 1);
        }
        lua_pushfstring(L, "a Lua callback of this call raised an error (the call was cancelled): %s",
                        m ? m : "(no message)");
        lua_setfield(L, -3, "message");
        lua_setfield(L, -2, "cause");
    }
}

static int mlkL_cb_inner(lua_State *L)
{
    mlkL_cbcall *a = (mlkL_cbcall *)lua_touserdata(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, a->ref);
    int n = 0;
    switch (a->kind) {
    case MLKL_CB_OUTPUT:
        lua_pushinteger(L, a->fd);
        lua_pushlstring(L, a->data, a->len);
        lua_pushinteger(L, (lua_Integer)a->op);
        n = 3;
        break;
    case MLKL_CB_READY:
        lua_pushinteger(L, (lua_Integer)a->op);
        n = 1;
        break;
    case MLKL_CB_DONE:
        mlkL_push_call_result(L, a->res, a->ctx);
        lua_pushinteger(L, (lua_Integer)a->op);
        n = 2;
        break;
    case MLKL_CB_EVENT:
        mlkL_push_msgpack(L, a->data, a->len);
        n = 1;
        break;
    }
    lua_call(L, n, 0);
    return 0;
}

/* Call the callback described by a on g->L.  Returns 0, or 1 with the
 * error value pushed on g->L. */
static int mlkL_run(mlkL_client *g, mlkL_cbcall *a)
{
    lua_State *L = g->L;
    if (!L || a->ref == LUA_NOREF || a->ref == LUA_REFNIL) return 0;
    if (!lua_checkstack(L, 8)) return 0;
    int base = lua_gettop(L);
    lua_pushcfunction(L, mlkL_msgh);
    lua_pushcfunction(L, mlkL_cb_inner);
    lua_pushlightuserdata(L, a);
    if (lua_pcall(L, 1, 0, base + 1) == 0) {
        lua_settop(L, base);
        return 0;
    }
    lua_remove(L, base + 1); /* the handler; the error stays on top */
    return 1;
}

/* Keep the error on top of g->L on the client (the first one wins). */
static void mlkL_keep_client_error(mlkL_client *g)
{
    lua_State *L = g->L;
    g->nerr++;
    if (g->err_ref == LUA_NOREF) g->err_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    else lua_pop(L, 1);
}

static void mlkL_tramp_output(void *ud, uint64_t op, int fd, const char *data, size_t len)
{
    mlkL_ctx *x = (mlkL_ctx *)ud;
    if (x->uerr_ref != LUA_NOREF) return; /* already failed: drop the rest */
    mlkL_cbcall a = {MLKL_CB_OUTPUT, x->out_ref, op, fd, data, len, NULL, x};
    if (mlkL_run(x->g, &a)) {
        x->uerr_ref = luaL_ref(x->g->L, LUA_REGISTRYINDEX);
        if (x->g->c) mlk_cancel(x->g->c, op);
    }
}

static void mlkL_tramp_ready(void *ud, uint64_t op)
{
    mlkL_ctx *x = (mlkL_ctx *)ud;
    if (x->uerr_ref != LUA_NOREF) return;
    mlkL_cbcall a = {MLKL_CB_READY, x->ready_ref, op, 0, NULL, 0, NULL, x};
    if (mlkL_run(x->g, &a)) {
        x->uerr_ref = luaL_ref(x->g->L, LUA_REGISTRYINDEX);
        if (x->g->c) mlk_cancel(x->g->c, op);
    }
}

/* Completion of an async call: runs its function, then releases the call. */
static void mlkL_tramp_done(void *ud, uint64_t op, const mlk_result *res)
{
    mlkL_ctx *x = (mlkL_ctx *)ud;
    mlkL_client *g = x->g;
    mlkL_cbcall a = {MLKL_CB_DONE, x->done_ref, op, 0, NULL, 0, res, x};
    if (mlkL_run(g, &a)) mlkL_keep_client_error(g);
    if (g->L) {
        mlkL_ctx_release(g->L, x, 1);
        free(x);
    }
    /* without a state (cannot happen: done runs inside dispatch) the ctx
     * stays linked and is released when the client is collected */
}

static void mlkL_tramp_event(void *ud, const char *mp, size_t len)
{
    mlkL_client *g = (mlkL_client *)ud;
    mlkL_cbcall a = {MLKL_CB_EVENT, g->event_ref, 0, 0, mp, len, NULL, NULL};
    if (mlkL_run(g, &a)) mlkL_keep_client_error(g);
}

/* Push the client's kept callback error (or nil) and clear it. */
static void mlkL_push_take_error(lua_State *L, mlkL_client *g)
{
    if (g->err_ref == LUA_NOREF) { lua_pushnil(L); return; }
    lua_rawgeti(L, LUA_REGISTRYINDEX, g->err_ref);
    mlkL_unref(L, &g->err_ref);
    g->nerr = 0;
}

/* ---------------------------------------------------------------------- */
/* natives                                                                  */

typedef struct mlkL_hook mlkL_hook;
static void mlkL_hook_unref(lua_State *L, mlkL_hook *h);

static void mlkL_client_release(lua_State *L, mlkL_client *g)
{
    if (g->c) {
        mlk_client_set_event_cb(g->c, NULL, NULL);
        mlk_client_free(g->c);
        g->c = NULL;
    }
    /* async calls that never completed: their callbacks will not run */
    while (g->ctxs) {
        mlkL_ctx *x = g->ctxs;
        mlkL_ctx_release(L, x, 1);
        free(x);
    }
    mlkL_unref(L, &g->event_ref);
    mlkL_unref(L, &g->err_ref);
    /* the core's copies of the hooks went with the client */
    for (size_t i = 0; i < g->nhooks; i++) mlkL_hook_unref(L, g->hooks[i]);
    free(g->hooks);
    g->hooks = NULL;
    g->nhooks = g->caphooks = 0;
}

/* __gc and client_free.  Freed from inside one of its own callbacks, the
 * client is released when the outermost dispatch/exec returns (queued
 * callbacks still need their contexts). */
static int mlkL_client_gc(lua_State *L)
{
    mlkL_client *g = (mlkL_client *)luaL_checkudata(L, 1, MLKL_CLIENT_MT);
    if (g->depth > 0) { g->free_pending = 1; return 0; }
    mlkL_client_release(L, g);
    return 0;
}

/* A call that may run callbacks (dispatch, a blocking exec or file call)
 * pushes a frame on this thread's stack: hooks find the client (and the
 * state to run on) by the mlk_client the core hands them, and know whether
 * they run inside a blocking call (where an answer cannot wait). */
typedef struct mlkL_frame {
    mlkL_client *g;
    lua_State *saved;  /* g->L before this call */
    int blocking;      /* a blocking call: nothing else runs until it returns */
    struct mlkL_frame *prev;
} mlkL_frame;

static _Thread_local mlkL_frame *mlkL_frames;

static void mlkL_enter(mlkL_client *g, lua_State *L, mlkL_frame *f, int blocking)
{
    f->g = g;
    f->saved = g->L;
    f->blocking = blocking;
    f->prev = mlkL_frames;
    mlkL_frames = f;
    g->L = L;
    g->depth++;
}

static void mlkL_leave(mlkL_client *g, lua_State *L, mlkL_frame *f)
{
    /* frames nest strictly (C calls), so f is on top */
    mlkL_frames = f->prev;
    g->L = f->saved;
    if (--g->depth == 0 && g->free_pending) {
        g->free_pending = 0;
        mlkL_client_release(L, g);
    }
}

/* The innermost frame of this thread running a call of c, or NULL. */
static mlkL_frame *mlkL_frame_of(const mlk_client *c)
{
    for (mlkL_frame *f = mlkL_frames; f; f = f->prev)
        if (f->g->c == c && c) return f;
    return NULL;
}

static int mlkL_client_tostring(lua_State *L)
{
    mlkL_client *g = (mlkL_client *)luaL_checkudata(L, 1, MLKL_CLIENT_MT);
    const char *id = g->c ? mlk_client_vm_id(g->c) : NULL;
    lua_pushfstring(L, "matchlock.core.client(%s)", g->c ? (id ? id : "not created") : "freed");
    return 1;
}

#define MLKL_CLIENTS "matchlock.clients"

/* Push the weak table lightuserdata(mlkL_client) -> client userdata. */
static void mlkL_push_clients(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, MLKL_CLIENTS);
    if (lua_istable(L, -1)) return;
    lua_pop(L, 1);
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "v");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, MLKL_CLIENTS);
}

/* client_new(cfg|nil) -> status, client|nil, result */
static int mlkL_client_new(lua_State *L)
{
    mlk_config *cfg = NULL;
    if (!lua_isnoneornil(L, 1) && !SWIG_IsOK(SWIG_ConvertPtr(L, 1, (void **)&cfg, SWIGTYPE_p_mlk_config, 0)))
        return luaL_error(L, "client_new: argument 1 must be a config (mlk_config_new) or nil");
    mlkL_client *g = (mlkL_client *)lua_newuserdata(L, sizeof *g);
    memset(g, 0, sizeof *g);
    g->event_ref = g->err_ref = LUA_NOREF;
    if (luaL_newmetatable(L, MLKL_CLIENT_MT)) {
        lua_pushcfunction(L, mlkL_client_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, mlkL_client_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushliteral(L, "matchlock.client");
        lua_setfield(L, -2, "__name");
    }
    lua_setmetatable(L, -2);
    /* registry[MLKL_CLIENTS][lightuserdata g] = the client (weak values):
     * hooks get the client object from the frame's g */
    mlkL_push_clients(L);
    lua_pushlightuserdata(L, g);
    lua_pushvalue(L, -3);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    mlk_result *res = NULL;
    int rc = mlk_client_new(&g->c, cfg, &res);
    lua_pushinteger(L, rc);
    if (rc == 0) lua_pushvalue(L, -2);
    else lua_pushnil(L);
    if (res) {
        mlkL_push_result(L, res);
        mlk_result_free(res);
    } else {
        lua_pushnil(L);
    }
    return 3;
}

/* client_free(client): close and free now (idempotent). */
static int mlkL_client_free(lua_State *L)
{
    mlkL_checkclient_ud(L, 1);
    return mlkL_client_gc(L);
}

/* dispatch(client, max) -> ran, err|nil, nerr */
static int mlkL_dispatch(lua_State *L)
{
    mlkL_client *g = mlkL_checkclient_ud(L, 1);
    mlkL_checkclient(L, 1); /* raises when freed */
    int max = (int)luaL_optinteger(L, 2, 0);
    int n = 0;
    if (g->c && !g->free_pending) {
        mlkL_frame fr;
        mlkL_enter(g, L, &fr, 0);
        n = mlk_dispatch(g->c, max < 0 ? 0 : max);
        mlkL_leave(g, L, &fr);
    }
    int nerr = g->nerr;
    lua_pushinteger(L, n);
    mlkL_push_take_error(L, g);
    lua_pushinteger(L, nerr);
    return 3;
}

/* wait(client, timeout_ms) -> true when callbacks are waiting.
 * timeout_ms < 0 waits without limit. */
static int mlkL_wait(lua_State *L)
{
    mlk_client *c = mlkL_checkclient(L, 1);
    int t = (int)luaL_optinteger(L, 2, 0);
    struct pollfd p;
    p.fd = mlk_client_fd(c);
    p.events = POLLIN;
    p.revents = 0;
    int rc;
    do rc = poll(&p, 1, t); while (rc < 0 && errno == EINTR);
    lua_pushboolean(L, rc > 0);
    return 1;
}

static mlk_exec_opts *mlkL_optopts(lua_State *L, int idx, const char *fname)
{
    mlk_exec_opts *o = NULL;
    if (!lua_isnoneornil(L, idx) && !SWIG_IsOK(SWIG_ConvertPtr(L, idx, (void **)&o, SWIGTYPE_p_mlk_exec_opts, 0)))
        luaL_error(L, "%s: argument %d must be exec options (mlk_exec_opts_new) or nil", fname, idx);
    return o;
}

/* exec(client, command, opts|nil, on_output|nil, on_ready|nil) -> status, result
 * Blocking; the callbacks run on this state while it waits. */
static int mlkL_exec(lua_State *L)
{
    mlkL_client *g = mlkL_checkclient_ud(L, 1);
    mlk_client *c = mlkL_checkclient(L, 1);
    const char *cmd = luaL_checkstring(L, 2);
    mlk_exec_opts *o = mlkL_optopts(L, 3, "exec");
    mlkL_ctx x;
    memset(&x, 0, sizeof x);
    x.g = g;
    x.done_ref = x.uerr_ref = LUA_NOREF;
    x.out_ref = mlkL_reffn(L, 4, "exec", "on_output");
    x.ready_ref = mlkL_reffn(L, 5, "exec", "on_ready");
    int cbs = x.out_ref != LUA_NOREF || x.ready_ref != LUA_NOREF;
    if (cbs && !o) {
        mlkL_ctx_release(L, &x, 0);
        return luaL_error(L, "exec: callbacks need exec options with a streaming mode");
    }
    if (cbs) mlk_exec_opts_set_callbacks(o, mlkL_tramp_output, mlkL_tramp_ready, &x);
    mlkL_frame fr;
    mlkL_enter(g, L, &fr, 1);
    mlk_result *res = NULL;
    int rc = mlk_exec(c, cmd, o, &res);
    if (cbs) mlk_exec_opts_set_callbacks(o, NULL, NULL, NULL);
    mlkL_leave(g, L, &fr);
    if (x.uerr_ref != LUA_NOREF) rc = MLK_EUSER;
    lua_pushinteger(L, rc);
    mlkL_push_call_result(L, res, &x);
    mlk_result_free(res);
    mlkL_ctx_release(L, &x, 0);
    return 2;
}

/* Start an async call through `start`; pushes status, op. */
static int mlkL_finish_start(lua_State *L, mlkL_client *g, mlkL_ctx *x, int rc, uint64_t op)
{
    if (rc != 0) {
        mlkL_ctx_release(L, x, 0);
        free(x);
        lua_pushinteger(L, rc);
        lua_pushnil(L);
        return 2;
    }
    mlkL_ctx_link(g, x);
    lua_pushinteger(L, 0);
    lua_pushinteger(L, (lua_Integer)op);
    return 2;
}

/* exec_async(client, command, opts|nil, on_output|nil, on_ready|nil, done) -> status, op */
static int mlkL_exec_async(lua_State *L)
{
    mlkL_client *g = mlkL_checkclient_ud(L, 1);
    mlk_client *c = mlkL_checkclient(L, 1);
    const char *cmd = luaL_checkstring(L, 2);
    mlk_exec_opts *o = mlkL_optopts(L, 3, "exec_async");
    if (!lua_isnoneornil(L, 4)) luaL_checktype(L, 4, LUA_TFUNCTION);
    if (!lua_isnoneornil(L, 5)) luaL_checktype(L, 5, LUA_TFUNCTION);
    luaL_checktype(L, 6, LUA_TFUNCTION);
    mlkL_ctx *x = mlkL_ctx_new(L, g);
    x->out_ref = mlkL_reffn(L, 4, "exec_async", "on_output");
    x->ready_ref = mlkL_reffn(L, 5, "exec_async", "on_ready");
    lua_pushvalue(L, 6);
    x->done_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    int cbs = x->out_ref != LUA_NOREF || x->ready_ref != LUA_NOREF;
    mlk_exec_opts *tmp = NULL;
    if (cbs && !o) o = tmp = mlk_exec_opts_new();
    if (cbs && o) mlk_exec_opts_set_callbacks(o, mlkL_tramp_output, mlkL_tramp_ready, x);
    uint64_t op = 0;
    int rc = o || !cbs ? mlk_exec_async(c, cmd, o, mlkL_tramp_done, x, &op) : MLK_ENOMEM;
    if (cbs && o) mlk_exec_opts_set_callbacks(o, NULL, NULL, NULL);
    mlk_exec_opts_free(tmp);
    return mlkL_finish_start(L, g, x, rc, op);
}

/* write_file_async(client, path, data, mode, timeout_ms, done) -> status, op */
static int mlkL_write_file_async(lua_State *L)
{
    mlkL_client *g = mlkL_checkclient_ud(L, 1);
    mlk_client *c = mlkL_checkclient(L, 1);
    const char *path = luaL_checkstring(L, 2);
    size_t n;
    const char *data = luaL_checklstring(L, 3, &n);
    uint32_t mode = (uint32_t)luaL_optinteger(L, 4, 0);
    int64_t t = (int64_t)luaL_optinteger(L, 5, 0);
    luaL_checktype(L, 6, LUA_TFUNCTION);
    mlkL_ctx *x = mlkL_ctx_new(L, g);
    lua_pushvalue(L, 6);
    x->done_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    uint64_t op = 0;
    int rc = mlk_write_file_async(c, path, data, n, mode, t, mlkL_tramp_done, x, &op);
    return mlkL_finish_start(L, g, x, rc, op);
}

/* read_file_async / list_files_async (client, path, timeout_ms, done) -> status, op */
static int mlkL_path_async(lua_State *L, int list)
{
    mlkL_client *g = mlkL_checkclient_ud(L, 1);
    mlk_client *c = mlkL_checkclient(L, 1);
    const char *path = luaL_checkstring(L, 2);
    int64_t t = (int64_t)luaL_optinteger(L, 3, 0);
    luaL_checktype(L, 4, LUA_TFUNCTION);
    mlkL_ctx *x = mlkL_ctx_new(L, g);
    lua_pushvalue(L, 4);
    x->done_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    uint64_t op = 0;
    int rc = list ? mlk_list_files_async(c, path, t, mlkL_tramp_done, x, &op)
                  : mlk_read_file_async(c, path, t, mlkL_tramp_done, x, &op);
    return mlkL_finish_start(L, g, x, rc, op);
}

static int mlkL_read_file_async(lua_State *L) { return mlkL_path_async(L, 0); }
static int mlkL_list_files_async(lua_State *L) { return mlkL_path_async(L, 1); }

/* log_follow_async(client, on_output, done) -> status, op */
static int mlkL_log_follow_async(lua_State *L)
{
    mlkL_client *g = mlkL_checkclient_ud(L, 1);
    mlk_client *c = mlkL_checkclient(L, 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    luaL_checktype(L, 3, LUA_TFUNCTION);
    mlkL_ctx *x = mlkL_ctx_new(L, g);
    lua_pushvalue(L, 2);
    x->out_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, 3);
    x->done_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    uint64_t op = 0;
    int rc = mlk_log_follow_async(c, mlkL_tramp_output, mlkL_tramp_done, x, &op);
    return mlkL_finish_start(L, g, x, rc, op);
}

/* set_event_cb(client, fn|nil) -> status */
static int mlkL_set_event_cb(lua_State *L)
{
    mlkL_client *g = mlkL_checkclient_ud(L, 1);
    mlk_client *c = mlkL_checkclient(L, 1);
    int ref = mlkL_reffn(L, 2, "set_event_cb", "the event handler");
    int rc = mlk_client_set_event_cb(c, ref == LUA_NOREF ? NULL : mlkL_tramp_event, g);
    mlkL_unref(L, &g->event_ref);
    g->event_ref = ref;
    lua_pushinteger(L, rc);
    return 1;
}

/* ---------------------------------------------------------------------- */
/* hooks                                                                    */
/*
 * The Lua layer registers one runner function per hook (matchlock.lua
 * make_runner); its `ud` with the core is an mlkL_hook holding a registry
 * reference to it.  The core copies a builder's hooks into the client at
 * create, so an mlkL_hook is held by the builder's hook list (a userdata
 * kept in the Lua Sandbox) and by every client created from the builder;
 * the last holder releases the function.
 *
 * The core calls mlkL_tramp_hook from mlk_dispatch, or for action/mutate
 * hooks of a blocking file call from inside that call.  It finds the frame
 * of the call that is running on this thread for that mlk_client, and runs
 * the runner on the frame's state (never one remembered from registration):
 *     runner(request, answer|nil, client, kind, blocking)
 * `answer` is a "matchlock.hook_call" userdata owning the core's token:
 * hook_reply/hook_fail answer it once; when it is collected unanswered the
 * call fails.  Errors raised by the runner are kept on the client and
 * reported by dispatch (the runner raises only what should be reported);
 * a token still unanswered then is failed with the message.
 */

#define MLKL_HOOKS_MT "matchlock.hooks"
#define MLKL_HOOKCALL_MT "matchlock.hook_call"

struct mlkL_hook {
    int ref;   /* the runner function (registry) */
    int kind;
    int refs;  /* holders: a builder's list, clients created from it */
};

static void mlkL_hook_unref(lua_State *L, mlkL_hook *h)
{
    if (!h || --h->refs > 0) return;
    mlkL_unref(L, &h->ref);
    free(h);
}

/* Make room for one more pointer in a growable array. */
static int mlkL_hooks_reserve(mlkL_hook ***v, size_t n, size_t *cap)
{
    if (n < *cap) return 0;
    size_t nc = *cap ? *cap * 2 : 4;
    mlkL_hook **nv = (mlkL_hook **)realloc(*v, nc * sizeof *nv);
    if (!nv) return -1;
    *v = nv;
    *cap = nc;
    return 0;
}

typedef struct {
    mlkL_hook **v;
    size_t n, cap;
} mlkL_hooklist;

static int mlkL_hooklist_gc(lua_State *L)
{
    mlkL_hooklist *hl = (mlkL_hooklist *)luaL_checkudata(L, 1, MLKL_HOOKS_MT);
    for (size_t i = 0; i < hl->n; i++) mlkL_hook_unref(L, hl->v[i]);
    free(hl->v);
    hl->v = NULL;
    hl->n = hl->cap = 0;
    return 0;
}

/* hooks_new() -> the hook list of one builder */
static int mlkL_hooks_new(lua_State *L)
{
    mlkL_hooklist *hl = (mlkL_hooklist *)lua_newuserdata(L, sizeof *hl);
    memset(hl, 0, sizeof *hl);
    if (luaL_newmetatable(L, MLKL_HOOKS_MT)) {
        lua_pushcfunction(L, mlkL_hooklist_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushliteral(L, "matchlock.hooks");
        lua_setfield(L, -2, "__name");
    }
    lua_setmetatable(L, -2);
    return 1;
}

static mlk_sandbox *mlkL_checksandbox(lua_State *L, int idx, const char *fname)
{
    mlk_sandbox *sb = NULL;
    if (!SWIG_IsOK(SWIG_ConvertPtr(L, idx, (void **)&sb, SWIGTYPE_p_mlk_sandbox, 0)) || !sb)
        luaL_error(L, "%s: argument %d must be a sandbox builder (mlk_sandbox_new)", fname, idx);
    return sb;
}

static void mlkL_tramp_hook(void *ud, mlk_client *c, int kind, mlk_hook_call *call, const char *req, size_t len);

/* sandbox_add_hook(sb, hooks, kind, rule_msgpack|nil, runner) -> status */
static int mlkL_sandbox_add_hook(lua_State *L)
{
    mlk_sandbox *sb = mlkL_checksandbox(L, 1, "sandbox_add_hook");
    mlkL_hooklist *hl = (mlkL_hooklist *)luaL_checkudata(L, 2, MLKL_HOOKS_MT);
    int kind = (int)luaL_checkinteger(L, 3);
    size_t n = 0;
    const char *rule = lua_isnoneornil(L, 4) ? NULL : luaL_checklstring(L, 4, &n);
    luaL_checktype(L, 5, LUA_TFUNCTION);
    /* room first: nothing may fail once the core holds the hook */
    if (mlkL_hooks_reserve(&hl->v, hl->n, &hl->cap) != 0) return luaL_error(L, "sandbox_add_hook: out of memory");
    mlkL_hook *h = (mlkL_hook *)calloc(1, sizeof *h);
    if (!h) return luaL_error(L, "sandbox_add_hook: out of memory");
    lua_pushvalue(L, 5);
    h->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    h->kind = kind;
    h->refs = 1;
    int rc = kind == MLK_HOOK_NETWORK ? mlk_sandbox_add_network_hook(sb, rule, n, mlkL_tramp_hook, h)
                                      : mlk_sandbox_add_vfs_hook(sb, kind, rule, n, mlkL_tramp_hook, h);
    if (rc == 0) hl->v[hl->n++] = h;
    else mlkL_hook_unref(L, h);
    lua_pushinteger(L, rc);
    return 1;
}

/* sandbox_set_interception(sb, hooks, which, config_msgpack|nil, runners) -> status:
 * a whole interception config (mlk_sandbox_set_interception); the n-th
 * callback rule (its callback key set to true) runs runners[n].  On success
 * the builder's hooks of that kind are replaced: the list drops its old
 * ones (network: kind MLK_HOOK_NETWORK; VFS: kind -1, all four kinds). */
static int mlkL_sandbox_set_interception(lua_State *L)
{
    mlk_sandbox *sb = mlkL_checksandbox(L, 1, "sandbox_set_interception");
    mlkL_hooklist *hl = (mlkL_hooklist *)luaL_checkudata(L, 2, MLKL_HOOKS_MT);
    int which = (int)luaL_checkinteger(L, 3);
    size_t n = 0;
    const char *cfg = lua_isnoneornil(L, 4) ? NULL : luaL_checklstring(L, 4, &n);
    luaL_checktype(L, 5, LUA_TTABLE);
    int kind = which == MLK_INTERCEPT_NETWORK ? MLK_HOOK_NETWORK : -1;
    size_t nfn = (size_t)lua_rawlen(L, 5);
    /* room first: nothing may fail once the core holds the hooks */
    for (size_t i = 0; i < nfn; i++)
        if (mlkL_hooks_reserve(&hl->v, hl->n + i, &hl->cap) != 0)
            return luaL_error(L, "sandbox_set_interception: out of memory");
    mlkL_hook **hs = (mlkL_hook **)calloc(nfn ? nfn : 1, sizeof *hs);
    if (!hs) return luaL_error(L, "sandbox_set_interception: out of memory");
    for (size_t i = 0; i < nfn; i++) {
        lua_rawgeti(L, 5, (lua_Integer)(i + 1));
        if (!lua_isfunction(L, -1) || !(hs[i] = (mlkL_hook *)calloc(1, sizeof **hs))) {
            int fn = lua_isfunction(L, -1);
            lua_pop(L, 1);
            for (size_t j = 0; j < i; j++) mlkL_hook_unref(L, hs[j]);
            free(hs);
            return fn ? luaL_error(L, "sandbox_set_interception: out of memory")
                      : luaL_error(L, "sandbox_set_interception: runners[%d] is not a function", (int)i + 1);
        }
        hs[i]->ref = luaL_ref(L, LUA_REGISTRYINDEX);
        hs[i]->kind = kind;
        hs[i]->refs = 1;
    }
    int rc = mlk_sandbox_set_interception(sb, which, cfg, n, mlkL_tramp_hook, (void *const *)hs, nfn);
    if (rc == 0 && cfg && n) {
        size_t k = 0;
        for (size_t i = 0; i < hl->n; i++) {
            int old = hl->v[i]->kind == MLK_HOOK_NETWORK ? MLK_HOOK_NETWORK : -1;
            if (old == kind) mlkL_hook_unref(L, hl->v[i]);
            else hl->v[k++] = hl->v[i];
        }
        hl->n = k;
        for (size_t i = 0; i < nfn; i++) hl->v[hl->n++] = hs[i];
    } else {
        for (size_t i = 0; i < nfn; i++) mlkL_hook_unref(L, hs[i]);
    }
    free(hs);
    lua_pushinteger(L, rc);
    return 1;
}

/* sandbox_clear_hooks(sb, hooks|nil, kind) -> status: the builder's hooks
 * of one kind (0: all) go; clients created before keep theirs. */
static int mlkL_sandbox_clear_hooks(lua_State *L)
{
    mlk_sandbox *sb = mlkL_checksandbox(L, 1, "sandbox_clear_hooks");
    mlkL_hooklist *hl = lua_isnoneornil(L, 2) ? NULL : (mlkL_hooklist *)luaL_checkudata(L, 2, MLKL_HOOKS_MT);
    int kind = (int)luaL_checkinteger(L, 3);
    int rc = mlk_sandbox_clear_hooks(sb, kind);
    if (rc == 0 && hl) {
        size_t k = 0;
        for (size_t i = 0; i < hl->n; i++) {
            if (kind == 0 || hl->v[i]->kind == kind) mlkL_hook_unref(L, hl->v[i]);
            else hl->v[k++] = hl->v[i];
        }
        hl->n = k;
    }
    lua_pushinteger(L, rc);
    return 1;
}

/* client_adopt_hooks(client, hooks): the client holds the builder's hooks
 * (call it before create/launch: the core copies them into the client). */
static int mlkL_client_adopt_hooks(lua_State *L)
{
    mlkL_client *g = mlkL_checkclient_ud(L, 1);
    mlkL_checkclient(L, 1);
    mlkL_hooklist *hl = (mlkL_hooklist *)luaL_checkudata(L, 2, MLKL_HOOKS_MT);
    for (size_t i = 0; i < hl->n; i++) {
        if (mlkL_hooks_reserve(&g->hooks, g->nhooks, &g->caphooks) != 0)
            return luaL_error(L, "client_adopt_hooks: out of memory");
        hl->v[i]->refs++;
        g->hooks[g->nhooks++] = hl->v[i];
    }
    return 0;
}

/* The answer object of one hook call. */
typedef struct {
    mlk_hook_call *call; /* NULL once answered */
    int kind;
} mlkL_hookcall;

static int mlkL_hookcall_gc(lua_State *L)
{
    mlkL_hookcall *hc = (mlkL_hookcall *)luaL_checkudata(L, 1, MLKL_HOOKCALL_MT);
    mlk_hook_call *call = hc->call;
    hc->call = NULL;
    if (call) mlk_hook_fail(call, "the Lua hook never answered (its pending answer was garbage-collected)");
    return 0;
}

static mlkL_hookcall *mlkL_checkhookcall(lua_State *L, int idx)
{
    return (mlkL_hookcall *)luaL_checkudata(L, idx, MLKL_HOOKCALL_MT);
}

/* hook_reply(answer, msgpack|nil) -> status (MLK_ESTATE: answered before) */
static int mlkL_hook_reply(lua_State *L)
{
    mlkL_hookcall *hc = mlkL_checkhookcall(L, 1);
    size_t n = 0;
    const char *p = lua_isnoneornil(L, 2) ? NULL : luaL_checklstring(L, 2, &n);
    mlk_hook_call *call = hc->call;
    hc->call = NULL;
    lua_pushinteger(L, call ? mlk_hook_reply(call, p, n) : MLK_ESTATE);
    return 1;
}

/* hook_fail(answer, message) -> status (MLK_ESTATE: answered before) */
static int mlkL_hook_fail(lua_State *L)
{
    mlkL_hookcall *hc = mlkL_checkhookcall(L, 1);
    const char *m = luaL_optstring(L, 2, "the Lua hook failed");
    mlk_hook_call *call = hc->call;
    hc->call = NULL;
    lua_pushinteger(L, call ? mlk_hook_fail(call, m) : MLK_ESTATE);
    return 1;
}

/* hook_pending(answer) -> true until answered */
static int mlkL_hook_pending(lua_State *L)
{
    lua_pushboolean(L, mlkL_checkhookcall(L, 1)->call != NULL);
    return 1;
}

typedef struct {
    mlkL_hook *h;
    mlkL_client *g;
    mlk_hook_call *call;
    int kind;
    const char *req;
    size_t len;
    int blocking;
    mlkL_hookcall *hc;   /* the answer object, once it owns the token */
} mlkL_hookrun;

static int mlkL_hook_inner(lua_State *L)
{
    mlkL_hookrun *a = (mlkL_hookrun *)lua_touserdata(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, a->h->ref);
    mlkL_push_msgpack(L, a->req, a->len);
    if (a->call) {
        mlkL_hookcall *hc = (mlkL_hookcall *)lua_newuserdata(L, sizeof *hc);
        hc->call = NULL;
        hc->kind = a->kind;
        if (luaL_newmetatable(L, MLKL_HOOKCALL_MT)) {
            lua_pushcfunction(L, mlkL_hookcall_gc);
            lua_setfield(L, -2, "__gc");
            lua_pushliteral(L, "matchlock.hook_call");
            lua_setfield(L, -2, "__name");
        }
        lua_setmetatable(L, -2);
        hc->call = a->call; /* from here the object owns the token */
        a->hc = hc;
    } else {
        lua_pushnil(L);
    }
    mlkL_push_clients(L);
    lua_pushlightuserdata(L, a->g);
    lua_rawget(L, -2);
    lua_remove(L, -2);
    lua_pushinteger(L, a->kind);
    lua_pushboolean(L, a->blocking);
    lua_call(L, 5, 0);
    return 0;
}

static void mlkL_tramp_hook(void *ud, mlk_client *c, int kind, mlk_hook_call *call, const char *req, size_t len)
{
    mlkL_hook *h = (mlkL_hook *)ud;
    mlkL_frame *f = mlkL_frame_of(c);
    mlkL_client *g = f ? f->g : NULL;
    lua_State *L = g ? g->L : NULL;
    if (!L || h->ref == LUA_NOREF || !lua_checkstack(L, 12)) {
        if (call) mlk_hook_fail(call, "matchlock (Lua): the hook has no Lua state to run on");
        return;
    }
    mlkL_hookrun a = {h, g, call, kind, req, len, f->blocking, NULL};
    int base = lua_gettop(L);
    lua_pushcfunction(L, mlkL_msgh);
    lua_pushcfunction(L, mlkL_hook_inner);
    lua_pushlightuserdata(L, &a);
    if (lua_pcall(L, 1, 0, base + 1) == 0) {
        lua_settop(L, base);
        return;
    }
    lua_remove(L, base + 1); /* the handler; the error stays on top */
    mlk_hook_call *left = a.hc ? a.hc->call : call;
    if (a.hc) a.hc->call = NULL;
    if (left) {
        const char *m = lua_tostring(L, -1);
        mlk_hook_fail(left, m ? m : "the Lua hook raised an error");
    }
    mlkL_keep_client_error(g);
}

/* The module's constants that SWIG would push as floats on Lua 5.4, and
 * the null value.  Called from %init. */
static void mlkL_init_extras(lua_State *L)
{
    /* the module table is on top of the stack during SWIG's init */
    mlkL_push_null(L);
    lua_setfield(L, -2, "null");
    lua_pushinteger(L, MLK_VERSION);
    lua_setfield(L, -2, "HEADER_VERSION");
}
