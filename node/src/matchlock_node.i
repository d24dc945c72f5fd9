/* matchlock_node.i - the Node binding's SWIG interface (Node-API backend).
 *
 * swig -javascript -napi -c++ -I<repo>/bindings -I<repo>/abi/include \
 *      -o build/matchlock_wrap.cxx node/src/matchlock_node.i
 *
 * SWIG >= 4.2 (the -napi backend; scripts/build.js gets it from PyPI's
 * `swig` package, see node/scripts/swig.sh) generates the wrappers of the
 * synchronous part of the ABI (version, errors, config, the sandbox builder,
 * the spec parsers) on node-addon-api.  Everything that calls back (clients,
 * every *_async call, hooks, events) or blocks (client-less volume calls) is
 * hand-written in the glue_*.cc units (declared in glue.h, which the wrapper
 * includes for the typemaps' helpers), and
 * registered on the module's exports from %init.
 *
 * Handles: every pointer type that crosses has a typemap below, so SWIG
 * never makes a proxy object; handles are objects made by glue_handles.cc with a
 * Node-API type tag, the same kind for generated and hand-written functions.
 */
%module matchlock

%{
#include "glue.h"
%}

/* ---- strings ------------------------------------------------------------- */

/* const char *: a JS string (UTF-8), or null/undefined for NULL. */
%typemap(in) const char * (std::string *tmp = nullptr) {
  if ($input.IsNull() || $input.IsUndefined()) {
    $1 = NULL;
  } else if ($input.IsString()) {
    tmp = new std::string(mlknode::ToUtf8($input));
    std::string nul;
    if (mlknode::HasNul(*tmp, "argument $argnum of $symname", &nul)) {
      SWIG_exception_fail(SWIG_ValueError, nul.c_str());
    }
    $1 = (char *)tmp->c_str();
  } else {
    SWIG_exception_fail(SWIG_TypeError, "in method '$symname', argument $argnum must be a string");
  }
}
%typemap(freearg) const char * { delete tmp$argnum; }
%typemap(typecheck, precedence=SWIG_TYPECHECK_STRING) const char * {
  $1 = $input.IsString() || $input.IsNull() || $input.IsUndefined();
}
%typemap(out) const char * {
  $result = mlknode::StrOrNull(env, $1);
}

/* (const char *s, size_t len): a JS string as UTF-8 bytes, NULs kept. */
%typemap(in) (const char *s, size_t len) (std::string tmp) {
  if (!$input.IsString()) SWIG_exception_fail(SWIG_TypeError, "in method '$symname': expected a string");
  tmp = mlknode::ToUtf8($input);
  $1 = (char *)tmp.data(); $2 = tmp.size();
}

/* String arrays: a JS array of strings (or null/undefined for none); an
 * element holding a NUL is refused with the core's message (StrArray).
 * Multi-argument typemaps match by name, so every pair the header uses is
 * listed (grep 'const char \*const \*' abi/include/matchlock.h). */
%typemap(in) (const char *const *argv, size_t n) (mlknode::StrArray tmp) {
  if (!tmp.From($input, "$1_name", "$symname")) {
    if (!tmp.nul.empty()) mlknode::ThrowNul(env, tmp.nul);
    SWIG_exception_fail(SWIG_TypeError, "in method '$symname': expected an array of strings");
  }
  $1 = ($1_ltype)tmp.ptrs();
  $2 = tmp.size();
}
%apply (const char *const *argv, size_t n) {
  (const char *const *addrs, size_t n), (const char *const *addrs, size_t naddrs),
  (const char *const *hosts, size_t n), (const char *const *hosts, size_t nhosts),
  (const char *const *servers, size_t n), (const char *const *specs, size_t n)
};

/* msgpack documents in: a Buffer/Uint8Array, or null/undefined. */
%typemap(in) (const char *msgpack, size_t len) (mlknode::Bytes tmp) {
  if ($input.IsString() || !tmp.From($input)) {
    SWIG_exception_fail(SWIG_TypeError, "in method '$symname': expected a Buffer holding msgpack");
  }
  $1 = (char *)tmp.p; $2 = tmp.n;
}

/* Library-allocated outputs become extra return values: [status, out...]. */
%typemap(in, numinputs=0) (char **json, size_t *len) (char *tmp = NULL, size_t tmplen = 0) {
  $1 = &tmp; $2 = &tmplen;
}
%typemap(argout) (char **json, size_t *len) {
  $result = SWIG_NAPI_AppendOutput(env, $result, tmp$argnum
      ? (Napi::Value)mlknode::Str(env, tmp$argnum, tmplen$argnum) : env.Null());
}
%typemap(freearg) (char **json, size_t *len) { mlk_free(tmp$argnum); }

%typemap(in, numinputs=0) (char **msgpack, size_t *len) (char *tmp = NULL, size_t tmplen = 0) {
  $1 = &tmp; $2 = &tmplen;
}
%typemap(argout) (char **msgpack, size_t *len) {
  $result = SWIG_NAPI_AppendOutput(env, $result, tmp$argnum
      ? mlknode::BufferCopy(env, tmp$argnum, tmplen$argnum) : env.Null());
}
%typemap(freearg) (char **msgpack, size_t *len) { mlk_free(tmp$argnum); }

%typemap(in, numinputs=0) char **msg (char *tmp = NULL) { $1 = &tmp; }
%typemap(argout) char **msg {
  $result = SWIG_NAPI_AppendOutput(env, $result, mlknode::StrOrNull(env, tmp$argnum));
}
%typemap(freearg) char **msg { mlk_free(tmp$argnum); }

/* const char **msg: a message borrowed from the library (not freed). */
%typemap(in, numinputs=0) const char **msg (const char *tmp = NULL) { $1 = ($1_ltype)&tmp; }
%typemap(freearg) const char **msg "";
%typemap(argout) const char **msg {
  $result = SWIG_NAPI_AppendOutput(env, $result, mlknode::StrOrNull(env, tmp$argnum));
}

/* ---- handles (never SWIG proxies; see the comment at the top) ------------- */

%define MLK_NODE_HANDLE(TYPE, TAG, FREE)
%typemap(in) TYPE *, const TYPE * {
  $1 = ($1_ltype)mlknode::Unwrap(env, $input, &mlknode::TAG);
  if (!$1) SWIG_exception_fail(SWIG_TypeError, "in method '$symname': expected a " #TYPE " handle");
}
%typemap(out) TYPE * {
  $result = mlknode::Wrap(env, (void *)$1, &mlknode::TAG, (void (*)(void *))FREE);
}
%enddef
MLK_NODE_HANDLE(mlk_sandbox, kTagSandbox, mlk_sandbox_free)
MLK_NODE_HANDLE(mlk_config, kTagConfig, mlk_config_free)

/* Freed by the handle's finalizer only. */
%ignore mlk_sandbox_free;
%ignore mlk_config_free;

/* ---- hand-written in glue_*.cc ---------------------------------------------- */

%ignore mlk_result_status;
%ignore mlk_result_message;
%ignore mlk_result_rpc_code;
%ignore mlk_result_exit_code;
%ignore mlk_result_duration_ms;
%ignore mlk_result_stdout;
%ignore mlk_result_stderr;
%ignore mlk_result_data;
%ignore mlk_result_msgpack;
%ignore mlk_result_free;
%ignore mlk_client_new;
%ignore mlk_client_free;
%ignore mlk_client_vm_id;
%ignore mlk_client_stderr_tail;
%ignore mlk_client_fd;
%ignore mlk_dispatch;
%ignore mlk_client_set_event_cb;
%ignore mlk_create;
%ignore mlk_launch;
%ignore mlk_close;
%ignore mlk_remove;
%ignore mlk_exec_opts_new;
%ignore mlk_exec_opts_free;
%ignore mlk_exec_opts_set_mode;
%ignore mlk_exec_opts_set_working_dir;
%ignore mlk_exec_opts_set_user;
%ignore mlk_exec_opts_set_timeout_ms;
%ignore mlk_exec_opts_set_tty_size;
%ignore mlk_exec_opts_set_stdin;
%ignore mlk_exec_opts_set_interactive_stdin;
%ignore mlk_exec_opts_set_callbacks;
%ignore mlk_exec;
%ignore mlk_exec_async;
%ignore mlk_stdin_write;
%ignore mlk_stdin_close;
%ignore mlk_tty_resize;
%ignore mlk_cancel;
%ignore mlk_write_file;
%ignore mlk_write_file_async;
%ignore mlk_read_file;
%ignore mlk_read_file_async;
%ignore mlk_list_files;
%ignore mlk_list_files_async;
%ignore mlk_log;
%ignore mlk_log_follow_async;
%ignore mlk_allow_list_add;
%ignore mlk_allow_list_delete;
%ignore mlk_port_forward;
%ignore mlk_volume_create;
%ignore mlk_volume_list;
%ignore mlk_volume_remove;

%ignore mlk_create_async;
%ignore mlk_launch_async;
%ignore mlk_close_async;
%ignore mlk_remove_async;
%ignore mlk_log_async;
%ignore mlk_allow_list_add_async;
%ignore mlk_allow_list_delete_async;
%ignore mlk_port_forward_async;
%ignore mlk_volume_create_async;
%ignore mlk_volume_list_async;
%ignore mlk_volume_remove_async;

/* Hooks: glue_hooks.cc registers them (sandboxAddHook, sandboxSetInterception)
 * and answers the tokens. */
%ignore mlk_sandbox_add_network_hook;
%ignore mlk_sandbox_set_interception;
%ignore mlk_sandbox_add_vfs_hook;
%ignore mlk_hook_reply;
%ignore mlk_hook_fail;

%include "matchlock.i"

/* Check a builder before spawning without copying its create params (and
 * their secrets) into a JS string: mlk_sandbox_params_json with json NULL. */
%inline %{
static int sandbox_validate(const mlk_sandbox *sb, int launch, char **msg)
{
    return mlk_sandbox_params_json(sb, launch, NULL, NULL, msg);
}
%}

%init %{
  mlknode::Init(env, exports);
%}
