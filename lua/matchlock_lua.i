/* lua/matchlock_lua.i - the Lua C module `matchlock.core` (SWIG 4.1).
 *
 *   swig -lua -nomoduleglobal -no-old-metatable-bindings \
 *        -I<repo>/bindings -I<repo>/abi/include -o matchlock_lua_wrap.c matchlock_lua.i
 *
 * One wrapper, compiled once per interpreter (Lua 5.4, LuaJIT 2.1) without
 * linking liblua.  It wraps the shared description bindings/matchlock.i with
 * Lua typemaps; functions that take callbacks are replaced by the natives in
 * src/glue.c; the idiomatic API is the pure-Lua layer matchlock.lua.
 *
 * What the typemaps do:
 *   - integers in and out are Lua integers (lua_pushinteger), booleans are
 *     accepted where the C side takes an on/off int;
 *   - (const char *data, size_t len): a Lua string, NUL bytes kept, no copy;
 *   - (const char *msgpack, size_t len): a Lua table (encoded here), a
 *     string of msgpack bytes, or nil;
 *   - string arrays: a Lua list of strings (or one string, or nil);
 *   - mlk_result **out: a result table (src/glue.c mlkL_push_result), the
 *     mlk_result freed at once;
 *   - library-allocated char ** outputs: Lua strings, freed with mlk_free;
 *     (char **msgpack, size_t *len) is decoded into a Lua value;
 *   - config, sandbox and exec-option handles are freed by the collector.
 */
%module matchlock_core

%{
#include "matchlock.h"
%}

/* the hand-written natives and the msgpack codec (after the SWIG runtime) */
%header %{
#include "mp.c"
#include "glue.c"
%}

/* ---------------------------------------------------------------------- */
/* integers                                                                */

%typemap(in, checkfn="lua_isnumber") int, short, long, long long, signed char,
    int64_t, int32_t, int16_t, int8_t
%{ $1 = ($1_ltype)mlkL_toint(L, $input); %}

%typemap(in, checkfn="lua_isnumber") unsigned int, unsigned short, unsigned long, unsigned long long,
    unsigned char, uint64_t, uint32_t, uint16_t, uint8_t, size_t
%{ if (lua_tonumber(L, $input) < 0) {
     lua_pushfstring(L, "%s: argument %d must not be negative", "$symname", $argnum - 0);
     SWIG_fail;
   }
   $1 = ($1_ltype)mlkL_toint(L, $input); %}

%typemap(out) int, short, long, long long, signed char, unsigned int, unsigned short,
    unsigned long, unsigned long long, unsigned char, int64_t, int32_t, int16_t, int8_t,
    uint64_t, uint32_t, uint16_t, uint8_t, size_t
%{ lua_pushinteger(L, (lua_Integer)$1); SWIG_arg++; %}

/* on/off switches take booleans or numbers */
%typemap(in, checkfn="mlkL_isboolish") int on, int use_sudo, int through_shell, int launch, int readonly
%{ $1 = mlkL_toboolish(L, $input); %}

/* ---------------------------------------------------------------------- */
/* bytes                                                                    */

%typemap(in, checkfn="lua_isstring") (const char *data, size_t len)
%{ $1 = (char *)lua_tolstring(L, $input, &$2); %}

/* mlk_check_cstring's bytes: a Lua string, NULs kept */
%apply (const char *data, size_t len) { (const char *s, size_t len) };

/* const char *: a Lua string (or nil for NULL).  One holding a NUL would be
 * cut short as a C string: it is refused with the core's message, which
 * names the argument and the NUL's offset, never the value. */
%typemap(in, checkfn="SWIG_lua_isnilstring", fragment="SWIG_lua_isnilstring") const char *
%{ if (!mlkL_cstr(L, $input, "argument $argnum of $symname", (const char **)&$1)) SWIG_fail; %}

/* msgpack documents: a table (encoded), raw msgpack bytes, or nil */
%typemap(in, checkfn="mlkL_ismsgpackarg") (const char *msgpack, size_t len)
%{ if (lua_istable(L, $input)) {
     mlkL_push_encoded(L, $input, "$symname");
     lua_replace(L, $input);
   }
   if (lua_isnil(L, $input)) { $1 = NULL; $2 = 0; }
   else $1 = (char *)lua_tolstring(L, $input, &$2); %}
%{
static int mlkL_ismsgpackarg(lua_State *L, int i)
{
    int t = lua_type(L, i);
    return t == LUA_TTABLE || t == LUA_TSTRING || t == LUA_TNIL;
}
%}

/* ---------------------------------------------------------------------- */
/* string arrays                                                            */

%typemap(in, checkfn="mlkL_isstrvarg") (const char *const *argv, size_t n)
%{ $1 = ($1_ltype)mlkL_strv(L, $input, &$2, "$symname", "$1_name"); %}
%typemap(freearg) (const char *const *argv, size_t n) %{ free((void *)$1); %}
%{
static int mlkL_isstrvarg(lua_State *L, int i)
{
    int t = lua_type(L, i);
    return t == LUA_TTABLE || t == LUA_TSTRING || t == LUA_TNIL || t == LUA_TNONE;
}
%}
%apply (const char *const *argv, size_t n) {
    (const char *const *hosts, size_t nhosts),
    (const char *const *servers, size_t n),
    (const char *const *addrs, size_t n),
    (const char *const *hosts, size_t n),
    (const char *const *specs, size_t n),
    (const char *const *addrs, size_t naddrs)
};

/* ---------------------------------------------------------------------- */
/* outputs                                                                  */

%typemap(in, numinputs=0) mlk_result **out (mlk_result *tmp = NULL) %{ $1 = &tmp; %}
%typemap(argout) mlk_result **out
%{ if (tmp$argnum) { mlkL_push_result(L, tmp$argnum); mlk_result_free(tmp$argnum); tmp$argnum = NULL; }
   else lua_pushnil(L);
   SWIG_arg++; %}
%typemap(freearg) mlk_result **out %{ mlk_result_free(tmp$argnum); %}

/* (char **json, size_t *len): a string (nil when the call failed) */
%typemap(in, numinputs=0) (char **json, size_t *len) (char *tmp = NULL, size_t tlen = 0)
%{ $1 = &tmp; $2 = &tlen; %}
%typemap(argout) (char **json, size_t *len)
%{ if (tmp$argnum) lua_pushlstring(L, tmp$argnum, tlen$argnum); else lua_pushnil(L);
   SWIG_arg++; %}
%typemap(freearg) (char **json, size_t *len) %{ mlk_free(tmp$argnum); %}

/* (char **msgpack, size_t *len): the decoded Lua value (nil on failure) */
%typemap(in, numinputs=0) (char **msgpack, size_t *len) (char *tmp = NULL, size_t tlen = 0)
%{ $1 = &tmp; $2 = &tlen; %}
%typemap(argout) (char **msgpack, size_t *len)
%{ if (tmp$argnum && tlen$argnum) mlkL_push_msgpack(L, tmp$argnum, tlen$argnum); else lua_pushnil(L);
   SWIG_arg++; %}
%typemap(freearg) (char **msgpack, size_t *len) %{ mlk_free(tmp$argnum); %}

/* char **msg: the validation message (nil when none) */
%typemap(in, numinputs=0) char **msg (char *tmp = NULL) %{ $1 = &tmp; %}
%typemap(argout) char **msg
%{ if (tmp$argnum) lua_pushstring(L, tmp$argnum); else lua_pushnil(L); SWIG_arg++; %}
%typemap(freearg) char **msg %{ mlk_free(tmp$argnum); %}

/* const char **msg: a message borrowed from the library (nil when none) */
%typemap(in, numinputs=0) const char **msg (const char *tmp = NULL) %{ $1 = ($1_ltype)&tmp; %}
%typemap(argout) const char **msg
%{ if (tmp$argnum) lua_pushstring(L, tmp$argnum); else lua_pushnil(L); SWIG_arg++; %}
%typemap(freearg) const char **msg "";

/* unsigned *flags, int *hook_kind (mlk_rule_key, mlk_rule_key_info):
 * extra integer results after the key */
%typemap(in, numinputs=0) unsigned *flags (unsigned tmp = 0) %{ $1 = &tmp; %}
%typemap(argout) unsigned *flags %{ lua_pushinteger(L, (lua_Integer)tmp$argnum); SWIG_arg++; %}
%typemap(in, numinputs=0) int *hook_kind (int tmp = 0) %{ $1 = &tmp; %}
%typemap(argout) int *hook_kind %{ lua_pushinteger(L, (lua_Integer)tmp$argnum); SWIG_arg++; %}

/* a library-allocated string to free with mlk_free */
%typemap(out) char *mlk_client_stderr_tail
%{ if ($1) { lua_pushstring(L, $1); mlk_free($1); } else lua_pushnil(L); SWIG_arg++; %}

/* async completions: a Lua function(result_table, op) run from dispatch();
 * the op id is returned after the status.  Every *_async call whose only
 * callback is `done` (and whose first argument is the client) uses this. */
%typemap(in, checkfn="lua_isfunction") (mlk_done_cb done, void *ud, uint64_t *op)
    (mlkL_ctx *ctx = NULL, uint64_t opv = 0)
%{ ctx = mlkL_ctx_new(L, mlkL_checkclient_ud(L, 1));
   lua_pushvalue(L, $input);
   ctx->done_ref = luaL_ref(L, LUA_REGISTRYINDEX);
   $1 = mlkL_tramp_done; $2 = ctx; $3 = &opv; %}
%typemap(argout) (mlk_done_cb done, void *ud, uint64_t *op)
%{ if (result == 0) { mlkL_ctx_link(ctx$argnum->g, ctx$argnum); lua_pushinteger(L, (lua_Integer)opv$argnum); }
   else { mlkL_ctx_release(L, ctx$argnum, 0); free(ctx$argnum); lua_pushnil(L); }
   ctx$argnum = NULL;
   SWIG_arg++; %}

/* the client: the userdata made by client_new (src/glue.c) */
%typemap(in, checkfn="lua_isuserdata") mlk_client *c, const mlk_client *c
%{ $1 = ($1_ltype)mlkL_checkclient(L, $input); %}

/* ---------------------------------------------------------------------- */
/* handles freed by the collector                                          */

%nodefaultctor mlk_config;
%nodefaultctor mlk_sandbox;
%nodefaultctor mlk_exec_opts;
struct mlk_config {};
struct mlk_sandbox {};
struct mlk_exec_opts {};
%extend mlk_config { ~mlk_config() { mlk_config_free($self); } }
%extend mlk_sandbox { ~mlk_sandbox() { mlk_sandbox_free($self); } }
%extend mlk_exec_opts { ~mlk_exec_opts() { mlk_exec_opts_free($self); } }
%newobject mlk_config_new;
%newobject mlk_sandbox_new;
%newobject mlk_exec_opts_new;
%ignore mlk_config_free;
%ignore mlk_sandbox_free;
%ignore mlk_exec_opts_free;

/* ---------------------------------------------------------------------- */
/* replaced by natives (src/glue.c): callbacks and the client's lifetime  */

%ignore mlk_client_new;
%ignore mlk_client_free;
%ignore mlk_dispatch;
%ignore mlk_client_set_event_cb;
%ignore mlk_exec;
%ignore mlk_exec_async;
%ignore mlk_exec_opts_set_callbacks;
%ignore mlk_write_file_async;
%ignore mlk_read_file_async;
%ignore mlk_list_files_async;
%ignore mlk_log_follow_async;
/* hooks: Lua functions through the natives sandbox_add_hook & co. */
%ignore mlk_sandbox_add_network_hook;
%ignore mlk_sandbox_add_vfs_hook;
%ignore mlk_sandbox_clear_hooks;
%ignore mlk_sandbox_set_interception;
%ignore mlk_hook_reply;
%ignore mlk_hook_fail;
/* results never reach Lua as handles: they become tables */
%rename("$ignore", regextarget=1) "^mlk_result_";

%native(client_new) int mlkL_client_new(lua_State *L);
%native(client_free) int mlkL_client_free(lua_State *L);
%native(dispatch) int mlkL_dispatch(lua_State *L);
%native(wait) int mlkL_wait(lua_State *L);
%native(exec) int mlkL_exec(lua_State *L);
%native(exec_async) int mlkL_exec_async(lua_State *L);
%native(write_file_async) int mlkL_write_file_async(lua_State *L);
%native(read_file_async) int mlkL_read_file_async(lua_State *L);
%native(list_files_async) int mlkL_list_files_async(lua_State *L);
%native(log_follow_async) int mlkL_log_follow_async(lua_State *L);
%native(set_event_cb) int mlkL_set_event_cb(lua_State *L);
%native(hooks_new) int mlkL_hooks_new(lua_State *L);
%native(sandbox_add_hook) int mlkL_sandbox_add_hook(lua_State *L);
%native(sandbox_clear_hooks) int mlkL_sandbox_clear_hooks(lua_State *L);
%native(sandbox_set_interception) int mlkL_sandbox_set_interception(lua_State *L);
%native(client_adopt_hooks) int mlkL_client_adopt_hooks(lua_State *L);
%native(hook_reply) int mlkL_hook_reply(lua_State *L);
%native(hook_fail) int mlkL_hook_fail(lua_State *L);
%native(hook_pending) int mlkL_hook_pending(lua_State *L);

/* Blocking file calls run their VFS action and mutate hooks on the calling
 * thread while they wait: they record the calling state like dispatch. */
%define MLKL_BLOCKING_CALL(fn)
%exception fn {
    mlkL_frame mlkl_fr_;
    mlkL_client *mlkl_g_ = mlkL_checkclient_ud(L, 1);
    mlkL_enter(mlkl_g_, L, &mlkl_fr_, 1);
    $action
    mlkL_leave(mlkl_g_, L, &mlkl_fr_);
}
%enddef
MLKL_BLOCKING_CALL(mlk_write_file)
MLKL_BLOCKING_CALL(mlk_read_file)
MLKL_BLOCKING_CALL(mlk_list_files)
%native(mp_encode) int mlkL_mp_encode(lua_State *L);
%native(mp_decode) int mlkL_mp_decode(lua_State *L);

%init %{
    mlkL_init_extras(L);
%}

%include "matchlock.i"
