/* matchlock_node.i - the Node binding's SWIG interface.
 *
 * swig -javascript -node -c++ -I<repo>/bindings -I<repo>/abi/include \
 *      -o build/matchlock_wrap.cxx node/src/matchlock_node.i
 *
 * SWIG generates the wrappers of the synchronous part of the ABI (version,
 * errors, config, the sandbox builder, the spec parsers).  Everything that
 * calls back (clients, every *_async call, hooks, events) or blocks
 * (client-less volume calls) is hand-written in glue.hxx, inserted into the same wrapper file, and
 * registered on the module's exports from %init.
 *
 * Worker threads: SWIG's V8 runtime keeps its proxy class templates in
 * process globals, which is unsafe with several isolates.  This binding
 * therefore never lets SWIG create a proxy object: every pointer type that
 * crosses has a typemap below, and handles are objects made by glue.hxx from
 * a per-environment template.
 */
%module matchlock

%{
#include "glue.hxx"
%}

/* ---- strings ------------------------------------------------------------- */

/* const char *: a JS string (UTF-8), or null/undefined for NULL. */
%typemap(in) const char * (std::string *tmp = nullptr) {
  if ($input->IsNullOrUndefined()) {
    $1 = NULL;
  } else if ($input->IsString()) {
    tmp = new std::string(mlknode::ToUtf8(args.GetIsolate(), $input));
    $1 = (char *)tmp->c_str();
  } else {
    SWIG_exception_fail(SWIG_TypeError, "in method '$symname', argument $argnum must be a string");
  }
}
%typemap(freearg) const char * { delete tmp$argnum; }
%typemap(typecheck, precedence=SWIG_TYPECHECK_STRING) const char * {
  $1 = $input->IsString() || $input->IsNullOrUndefined();
}
%typemap(out) const char * {
  $result = mlknode::StrOrNull(args.GetIsolate(), $1);
}

/* String arrays: a JS array of strings (or null/undefined for none).
 * Multi-argument typemaps match by name, so every pair the header uses is
 * listed (grep 'const char \*const \*' abi/include/matchlock.h). */
%typemap(in) (const char *const *argv, size_t n) (mlknode::StrArray tmp) {
  if (!tmp.From(args.GetIsolate(), $input)) {
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
%typemap(in) (const char *msgpack, size_t len) {
  if ($input->IsNullOrUndefined()) {
    $1 = NULL; $2 = 0;
  } else if ($input->IsArrayBufferView()) {
    v8::Local<v8::ArrayBufferView> view = $input.As<v8::ArrayBufferView>();
    $1 = (char *)view->Buffer()->Data() + view->ByteOffset();
    $2 = view->ByteLength();
  } else {
    SWIG_exception_fail(SWIG_TypeError, "in method '$symname': expected a Buffer holding msgpack");
  }
}

/* Library-allocated outputs become extra return values: [status, out...]. */
%typemap(in, numinputs=0) (char **json, size_t *len) (char *tmp = NULL, size_t tmplen = 0) {
  $1 = &tmp; $2 = &tmplen;
}
%typemap(argout) (char **json, size_t *len) {
  $result = SWIGV8_AppendOutput($result, tmp$argnum
      ? (v8::Local<v8::Value>)mlknode::Str(args.GetIsolate(), tmp$argnum, tmplen$argnum)
      : (v8::Local<v8::Value>)v8::Null(args.GetIsolate()));
}
%typemap(freearg) (char **json, size_t *len) { mlk_free(tmp$argnum); }

%typemap(in, numinputs=0) (char **msgpack, size_t *len) (char *tmp = NULL, size_t tmplen = 0) {
  $1 = &tmp; $2 = &tmplen;
}
%typemap(argout) (char **msgpack, size_t *len) {
  $result = SWIGV8_AppendOutput($result, tmp$argnum
      ? (v8::Local<v8::Value>)node::Buffer::Copy(args.GetIsolate(), tmp$argnum, tmplen$argnum).ToLocalChecked()
      : (v8::Local<v8::Value>)v8::Null(args.GetIsolate()));
}
%typemap(freearg) (char **msgpack, size_t *len) { mlk_free(tmp$argnum); }

%typemap(in, numinputs=0) char **msg (char *tmp = NULL) { $1 = &tmp; }
%typemap(argout) char **msg {
  $result = SWIGV8_AppendOutput($result, tmp$argnum
      ? (v8::Local<v8::Value>)mlknode::Str(args.GetIsolate(), tmp$argnum)
      : (v8::Local<v8::Value>)v8::Null(args.GetIsolate()));
}
%typemap(freearg) char **msg { mlk_free(tmp$argnum); }

/* ---- handles (never SWIG proxies; see the comment at the top) ------------- */

%define MLK_NODE_HANDLE(TYPE, TAG, FREE)
%typemap(in) TYPE *, const TYPE * {
  $1 = ($1_ltype)mlknode::Unwrap(args.GetIsolate(), $input, &mlknode::TAG);
  if (!$1) SWIG_exception_fail(SWIG_TypeError, "in method '$symname': expected a " #TYPE " handle");
}
%typemap(out) TYPE * {
  $result = mlknode::Wrap(args.GetIsolate(), (void *)$1, &mlknode::TAG, (void (*)(void *))FREE);
}
%enddef
MLK_NODE_HANDLE(mlk_sandbox, kTagSandbox, mlk_sandbox_free)
MLK_NODE_HANDLE(mlk_config, kTagConfig, mlk_config_free)

/* Freed by the handle's finalizer only. */
%ignore mlk_sandbox_free;
%ignore mlk_config_free;

/* ---- hand-written in glue.hxx --------------------------------------------- */

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

/* Hooks: glue.hxx registers them (sandboxAddHook) and answers the tokens. */
%ignore mlk_sandbox_add_network_hook;
%ignore mlk_sandbox_add_vfs_hook;
%ignore mlk_hook_reply;
%ignore mlk_hook_fail;

%include "matchlock.i"

%init %{
  mlknode::Init(exports_obj, context);
%}
