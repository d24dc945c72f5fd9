/* glue.hxx - the hand-written half of the Node addon: everything SWIG cannot
 * generate because it calls back into JavaScript or blocks.
 *
 * Included into the SWIG wrapper's header section (matchlock_node.i), so
 * the SWIG-generated functions and this code form one translation unit.
 *
 * Model
 *  - Env: one per Node environment (main thread or worker).  Everything
 *    V8 lives here or under a client; nothing V8 is process-global, so the
 *    addon is safe with worker_threads.  Freed by an environment cleanup hook.
 *  - Handles (sandbox builder, config, client) are plain objects from a
 *    per-environment template with two internal fields (box, magic); a weak
 *    finalizer frees the C object.
 *  - Client: an mlk_client plus a uv_poll_t on mlk_client_fd() on the
 *    environment's loop.  The poll runs mlk_dispatch() inside a HandleScope
 *    and a node::CallbackScope; done callbacks resolve promises, output
 *    callbacks call JS functions under a TryCatch.  The poll is referenced
 *    only while async requests are pending, so an idle process exits.
 *  - Every client call goes through the core's *_async functions (create,
 *    close, remove, log, allow-list, port-forward and volumes through a
 *    client included), so an AbortSignal can mlk_cancel it.  Only volume
 *    calls without a client run on the libuv threadpool (uv_queue_work).
 *  - Hooks: a HookFn (refcounted; held by the builder handle and by every
 *    client created from it) is the `ud` of mlk_sandbox_add_*_hook.  The
 *    core runs HookCb from mlk_dispatch (inside OnPoll); it calls the JS
 *    trampoline under a TryCatch.  A Buffer answers the token at once; a
 *    Promise gets then/catch handlers that answer it later (a PendingHook,
 *    which refs the poll until answered or the client is closed); a throw
 *    or rejection becomes mlk_hook_fail with the message.
 *  - Events: mlk_client_set_event_cb delivers `event` notifications to a JS
 *    function, also from OnPoll.
 */
#ifndef MLK_NODE_GLUE_HXX
#define MLK_NODE_GLUE_HXX

#include <node.h>
#include <node_buffer.h>
#include <uv.h>

#include <cmath>
#include <cstring>
#include <string>
#include <unordered_set>
#include <vector>

#include "matchlock.h"

/* SWIG's V8 runtime stores class templates in process globals and resets
 * them in every module init, which races between isolates.  This binding
 * never creates a SWIG proxy (see matchlock_node.i), so the templates are
 * not needed at all. */
#undef SWIGV8_SET_CLASS_TEMPL
#define SWIGV8_SET_CLASS_TEMPL(class_templ, cls) ((void)(cls))

namespace mlknode {

using v8::Array;
using v8::Context;
using v8::External;
using v8::Float64Array;
using v8::Function;
using v8::FunctionCallbackInfo;
using v8::FunctionTemplate;
using v8::Global;
using v8::HandleScope;
using v8::Integer;
using v8::Isolate;
using v8::Local;
using v8::MaybeLocal;
using v8::Number;
using v8::Object;
using v8::ObjectTemplate;
using v8::Promise;
using v8::String;
using v8::TryCatch;
using v8::Value;

const int kTagSandbox = 1;
const int kTagConfig = 2;
const int kTagClient = 3;
static const int kMagic = 0x6d6c6b;

/* ---- small helpers ---------------------------------------------------------- */

static inline std::string ToUtf8(Isolate *iso, Local<Value> v)
{
    String::Utf8Value u(iso, v);
    return *u ? std::string(*u, (size_t)u.length()) : std::string();
}

static inline Local<String> Str(Isolate *iso, const char *s, size_t n = (size_t)-1)
{
    if (!s) s = "";
    if (n == (size_t)-1) n = strlen(s);
    return String::NewFromUtf8(iso, s, v8::NewStringType::kNormal, (int)n).ToLocalChecked();
}

static inline Local<Value> StrOrNull(Isolate *iso, const char *s)
{
    if (!s) return v8::Null(iso);
    return Str(iso, s);
}

/* An owned array of C strings built from a JS array (or null/undefined). */
struct StrArray {
    std::vector<std::string> s;
    std::vector<const char *> p;
    bool From(Isolate *iso, Local<Value> v)
    {
        s.clear();
        p.clear();
        if (v->IsNullOrUndefined()) return true;
        if (!v->IsArray()) return false;
        Local<Array> a = v.As<Array>();
        Local<Context> ctx = iso->GetCurrentContext();
        uint32_t n = a->Length();
        s.reserve(n);
        for (uint32_t i = 0; i < n; i++) {
            Local<Value> e;
            if (!a->Get(ctx, i).ToLocal(&e) || !e->IsString()) return false;
            s.push_back(ToUtf8(iso, e));
        }
        for (auto &x : s) p.push_back(x.c_str());
        return true;
    }
    const char *const *ptrs() { return p.empty() ? nullptr : p.data(); }
    size_t size() const { return p.size(); }
};

/* Bytes of a Buffer/TypedArray/string argument (a string is taken as UTF-8). */
struct Bytes {
    std::string own;
    const char *p = nullptr;
    size_t n = 0;
    bool From(Isolate *iso, Local<Value> v)
    {
        if (v->IsNullOrUndefined()) return true;
        if (v->IsArrayBufferView()) {
            Local<v8::ArrayBufferView> view = v.As<v8::ArrayBufferView>();
            n = view->ByteLength();
            p = n ? (const char *)view->Buffer()->Data() + view->ByteOffset() : "";
            return true;
        }
        if (v->IsString()) {
            own = ToUtf8(iso, v);
            p = own.data();
            n = own.size();
            return true;
        }
        return false;
    }
};

struct Env;
struct Client;
struct Req;
struct Job;
struct HookFn;
struct PendingHook;

/* ---- per-environment state --------------------------------------------------- */

struct Box {
    Env *env;
    Global<Object> obj;
    void *p;
    const int *tag;
    void (*fr)(void *);
    std::vector<HookFn *> hooks;      /* sandbox builders: the hooks added to it */
};

/* The `ud` of one hook: the JS trampoline.  Held by the builder handle and
 * by each client created from it (the core copies `ud` into the client). */
struct HookFn {
    Env *env;
    Global<Function> fn;
    int refs = 1;
};

static void HookUnref(HookFn *h)
{
    if (h && --h->refs == 0) {
        h->fn.Reset();
        delete h;
    }
}

struct Env {
    Isolate *iso = nullptr;
    uv_loop_t *loop = nullptr;
    Global<Context> ctx;
    Global<Object> resource;          /* async resource of our callback scopes */
    Global<ObjectTemplate> tmpl;      /* handle objects */
    Global<Function> make_error;      /* (status, message, rpcCode, cause) -> Error */
    Global<Float64Array> op_slot;     /* the op id of the last async call */
    double *op_data = nullptr;
    std::unordered_set<Box *> boxes;
    std::unordered_set<Client *> clients;
    std::unordered_set<Job *> jobs;
    std::unordered_set<PendingHook *> hook_calls;   /* hook tokens a promise will answer */
    bool gone = false;
};

static thread_local Env *tl_env = nullptr;

static void BoxWeak(const v8::WeakCallbackInfo<Box> &info);

static Local<Value> Wrap(Isolate *iso, void *p, const int *tag, void (*fr)(void *))
{
    Env *env = tl_env;
    if (!p) return v8::Null(iso);
    Local<Context> ctx = iso->GetCurrentContext();
    Local<Object> o = env->tmpl.Get(iso)->NewInstance(ctx).ToLocalChecked();
    Box *b = new Box{env, {}, p, tag, fr};
    o->SetAlignedPointerInInternalField(0, b);
    o->SetAlignedPointerInInternalField(1, (void *)&kMagic);
    b->obj.Reset(iso, o);
    b->obj.SetWeak(b, BoxWeak, v8::WeakCallbackType::kParameter);
    env->boxes.insert(b);
    return o;
}

static Box *UnwrapBox(Local<Value> v, const int *tag)
{
    if (!v->IsObject()) return nullptr;
    Local<Object> o = v.As<Object>();
    if (o->InternalFieldCount() != 2) return nullptr;
    if (o->GetAlignedPointerFromInternalField(1) != (void *)&kMagic) return nullptr;
    Box *b = (Box *)o->GetAlignedPointerFromInternalField(0);
    return b && b->tag == tag ? b : nullptr;
}

static void *Unwrap(Isolate *, Local<Value> v, const int *tag)
{
    Box *b = UnwrapBox(v, tag);
    return b ? b->p : nullptr;
}

static void BoxWeak(const v8::WeakCallbackInfo<Box> &info)
{
    Box *b = info.GetParameter();
    b->obj.Reset();
    b->env->boxes.erase(b);
    if (b->fr && b->p) b->fr(b->p);
    for (HookFn *h : b->hooks) HookUnref(h);
    delete b;
}

/* An Error from the JS factory (MatchlockError subclasses live in JS). */
static Local<Value> MakeError(Env *env, int status, const char *msg, int rpc, Local<Value> cause = Local<Value>())
{
    Isolate *iso = env->iso;
    Local<Context> ctx = iso->GetCurrentContext();
    if (!msg || !*msg) msg = mlk_strerror(status);
    Local<Value> argv[4] = {Integer::New(iso, status), Str(iso, msg), Integer::New(iso, rpc),
                            cause.IsEmpty() ? (Local<Value>)v8::Undefined(iso) : cause};
    if (!env->make_error.IsEmpty()) {
        TryCatch tc(iso);
        Local<Value> e;
        if (env->make_error.Get(iso)->Call(ctx, v8::Undefined(iso), 4, argv).ToLocal(&e)) return e;
    }
    return v8::Exception::Error(Str(iso, msg));
}

static Local<Value> ResultError(Env *env, const mlk_result *res, int status)
{
    return MakeError(env, status, res ? mlk_result_message(res) : mlk_strerror(status),
                     res ? mlk_result_rpc_code(res) : 0);
}

static void Throw(Isolate *iso, const char *msg)
{
    iso->ThrowException(v8::Exception::TypeError(Str(iso, msg)));
}

/* ---- clients ------------------------------------------------------------------ */

struct Client {
    Env *env;
    mlk_client *c;
    uv_poll_t *poll;
    int pending = 0;          /* async requests (and referenced hook tokens) outstanding */
    int jobs = 0;             /* threadpool jobs using c */
    bool in_poll = false;
    bool want_free = false;
    bool destroyed = false;
    bool closed = false;      /* close started: hook tokens no longer keep the loop alive */
    Global<Object> handle;    /* weak: the JS handle, passed to hooks */
    Global<Function> on_event;
    std::vector<HookFn *> hooks;
    std::unordered_set<Req *> reqs;
    std::unordered_set<PendingHook *> tokens;
};

/* A hook token that a JS promise will answer. */
struct PendingHook {
    Env *env;
    Client *cl;               /* NULL once the client is destroyed */
    mlk_hook_call *call;
    bool reffed = false;
};

enum { R_EXEC_BUF, R_EXEC_STREAM, R_WRITE, R_READ, R_LIST, R_LOG_FOLLOW, R_DATA, R_MSGPACK, R_NONE };

struct Req {
    Client *cl;
    int kind;
    uint64_t op = 0;
    bool cb_failed = false;
    Global<Object> client_obj;               /* keeps the client alive */
    Global<Promise::Resolver> resolver;
    Global<Function> on_output, on_ready;
    Global<Value> user_error;
    Global<Value> keep;                      /* a buffer the call borrows */
};

static void ClientRef(Client *cl)
{
    if (cl->pending++ == 0) uv_ref((uv_handle_t *)cl->poll);
}

static void ClientUnref(Client *cl)
{
    if (--cl->pending == 0) uv_unref((uv_handle_t *)cl->poll);
}

static void JobQueueFree(Env *env, mlk_client *c);

static void PollClosed(uv_handle_t *h) { delete (uv_poll_t *)h; }

/* Stop watching and free the C client (off the main thread when the loop
 * still runs: a client that is still open is closed, which may wait). */
static void ClientDestroy(Client *cl, bool sync)
{
    if (cl->destroyed) return;
    cl->destroyed = true;
    cl->env->clients.erase(cl);
    uv_poll_stop(cl->poll);
    uv_close((uv_handle_t *)cl->poll, PollClosed);
    if (sync) mlk_client_free(cl->c);
    else JobQueueFree(cl->env, cl->c);
    for (Req *r : cl->reqs) delete r;   /* only at teardown: dropped, never run */
    cl->reqs.clear();
    for (PendingHook *ph : cl->tokens) ph->cl = nullptr;   /* still answerable: the token keeps the C client */
    cl->tokens.clear();
    for (HookFn *h : cl->hooks) HookUnref(h);
    cl->hooks.clear();
    cl->on_event.Reset();
    cl->handle.Reset();
    delete cl;
}

static void ClientMaybeDestroy(Client *cl)
{
    if (cl->want_free && cl->pending == 0 && cl->jobs == 0 && !cl->in_poll) ClientDestroy(cl, false);
}

/* Finalizer of a client handle (GC). */
static void ClientRelease(void *p)
{
    Client *cl = (Client *)p;
    cl->want_free = true;
    ClientMaybeDestroy(cl);
}

static void OnPoll(uv_poll_t *h, int status, int events)
{
    Client *cl = (Client *)h->data;
    Env *env = cl->env;
    Isolate *iso = env->iso;
    HandleScope hs(iso);
    Local<Context> ctx = env->ctx.Get(iso);
    Context::Scope cs(ctx);
    cl->in_poll = true;
    {
        node::CallbackScope scope(iso, env->resource.Get(iso), node::async_context{0, 0});
        mlk_dispatch(cl->c, 0);
    }
    cl->in_poll = false;
    ClientMaybeDestroy(cl);
}

static Client *ArgClient(const FunctionCallbackInfo<Value> &a, int i = 0)
{
    Box *b = UnwrapBox(a[i], &kTagClient);
    if (!b) {
        Throw(a.GetIsolate(), "matchlock: expected a client handle");
        return nullptr;
    }
    return (Client *)b->p;
}

/* clientNew(config|null) -> client handle; throws a MatchlockError. */
static void ClientNew(const FunctionCallbackInfo<Value> &a)
{
    Isolate *iso = a.GetIsolate();
    Env *env = tl_env;
    const mlk_config *cfg = nullptr;
    if (!a[0]->IsNullOrUndefined()) {
        cfg = (const mlk_config *)Unwrap(iso, a[0], &kTagConfig);
        if (!cfg) return Throw(iso, "matchlock: clientNew expects a config handle or null");
    }
    mlk_client *c = nullptr;
    mlk_result *res = nullptr;
    int rc = mlk_client_new(&c, cfg, &res);
    if (rc != 0) {
        iso->ThrowException(ResultError(env, res, rc));
        mlk_result_free(res);
        return;
    }
    mlk_result_free(res);
    Client *cl = new Client();
    cl->env = env;
    cl->c = c;
    cl->poll = new uv_poll_t;
    cl->poll->data = cl;
    if (uv_poll_init(env->loop, cl->poll, mlk_client_fd(c)) != 0) {
        delete cl->poll;
        mlk_client_free(c);
        delete cl;
        return Throw(iso, "matchlock: cannot watch the client's notification fd (uv_poll_init failed)");
    }
    uv_poll_start(cl->poll, UV_READABLE, OnPoll);
    uv_unref((uv_handle_t *)cl->poll);
    env->clients.insert(cl);
    Local<Value> h = Wrap(iso, cl, &kTagClient, ClientRelease);
    cl->handle.Reset(iso, h.As<Object>());
    cl->handle.SetWeak();
    a.GetReturnValue().Set(h);
}

static void ClientVmId(const FunctionCallbackInfo<Value> &a)
{
    Client *cl = ArgClient(a);
    if (!cl) return;
    const char *id = mlk_client_vm_id(cl->c);
    if (id) a.GetReturnValue().Set(Str(a.GetIsolate(), id));
    else a.GetReturnValue().SetNull();
}

static void ClientStderrTail(const FunctionCallbackInfo<Value> &a)
{
    Client *cl = ArgClient(a);
    if (!cl) return;
    char *s = mlk_client_stderr_tail(cl->c);
    a.GetReturnValue().Set(Str(a.GetIsolate(), s ? s : ""));
    mlk_free(s);
}

/* ---- async requests ---------------------------------------------------------- */

static Local<Value> BufferCopy(Isolate *iso, const char *p, size_t n)
{
    return node::Buffer::Copy(iso, p ? p : "", n).ToLocalChecked();
}

static Local<Value> DoneValue(Isolate *iso, int kind, const mlk_result *res)
{
    Local<Context> ctx = iso->GetCurrentContext();
    size_t n = 0;
    const char *p;
    switch (kind) {
    case R_EXEC_BUF:
    case R_EXEC_STREAM: {
        Local<Object> o = Object::New(iso);
        o->Set(ctx, Str(iso, "exitCode"), Integer::New(iso, mlk_result_exit_code(res))).Check();
        if (kind == R_EXEC_BUF) {
            p = mlk_result_stdout(res, &n);
            o->Set(ctx, Str(iso, "stdout"), BufferCopy(iso, p, n)).Check();
            p = mlk_result_stderr(res, &n);
            o->Set(ctx, Str(iso, "stderr"), BufferCopy(iso, p, n)).Check();
        }
        o->Set(ctx, Str(iso, "durationMs"), Number::New(iso, (double)mlk_result_duration_ms(res))).Check();
        return o;
    }
    case R_READ:
        p = mlk_result_data(res, &n);
        return BufferCopy(iso, p, n);
    case R_LIST:
    case R_MSGPACK:
        p = mlk_result_msgpack(res, &n);
        return p ? BufferCopy(iso, p, n) : (Local<Value>)v8::Null(iso);
    case R_DATA:
        p = mlk_result_data(res, &n);
        return p ? BufferCopy(iso, p, n) : (Local<Value>)v8::Null(iso);
    default:
        return v8::Undefined(iso);
    }
}

/* The message of a thrown value, for error texts. */
static std::string ErrText(Isolate *iso, Local<Value> v)
{
    TryCatch tc(iso);
    Local<Context> ctx = iso->GetCurrentContext();
    Local<Value> m;
    if (v->IsObject() && v.As<Object>()->Get(ctx, Str(iso, "message")).ToLocal(&m) && m->IsString())
        return ToUtf8(iso, m);
    return ToUtf8(iso, v);
}

static void OnDone(void *ud, uint64_t op, const mlk_result *res)
{
    Req *r = (Req *)ud;
    Client *cl = r->cl;
    Env *env = cl->env;
    Isolate *iso = env->iso;
    HandleScope hs(iso);
    Local<Context> ctx = iso->GetCurrentContext();
    Local<Promise::Resolver> pr = r->resolver.Get(iso);
    int st = mlk_result_status(res);
    if (!r->user_error.IsEmpty()) {
        Local<Value> cause = r->user_error.Get(iso);
        std::string m = "a callback threw, so the call was cancelled: " + ErrText(iso, cause);
        pr->Reject(ctx, MakeError(env, MLK_EUSER, m.c_str(), 0, cause)).Check();
    } else if (st != 0) {
        pr->Reject(ctx, ResultError(env, res, st)).Check();
    } else {
        pr->Resolve(ctx, DoneValue(iso, r->kind, res)).Check();
    }
    cl->reqs.erase(r);
    delete r;
    ClientUnref(cl);
}

static void CallbackFailed(Req *r, TryCatch &tc)
{
    r->cb_failed = true;
    if (tc.HasTerminated() || !tc.CanContinue()) return;
    r->user_error.Reset(r->cl->env->iso, tc.Exception());
    mlk_cancel(r->cl->c, r->op);
}

static void OnOutput(void *ud, uint64_t op, int fd, const char *data, size_t len)
{
    Req *r = (Req *)ud;
    if (r->cb_failed || r->on_output.IsEmpty()) return;
    Isolate *iso = r->cl->env->iso;
    HandleScope hs(iso);
    Local<Context> ctx = iso->GetCurrentContext();
    Local<Value> argv[2] = {Integer::New(iso, fd), BufferCopy(iso, data, len)};
    TryCatch tc(iso);
    if (r->on_output.Get(iso)->Call(ctx, v8::Undefined(iso), 2, argv).IsEmpty()) CallbackFailed(r, tc);
}

static void OnReady(void *ud, uint64_t op)
{
    Req *r = (Req *)ud;
    if (r->cb_failed || r->on_ready.IsEmpty()) return;
    Isolate *iso = r->cl->env->iso;
    HandleScope hs(iso);
    Local<Context> ctx = iso->GetCurrentContext();
    TryCatch tc(iso);
    if (r->on_ready.Get(iso)->Call(ctx, v8::Undefined(iso), 0, nullptr).IsEmpty()) CallbackFailed(r, tc);
}

/* Create a Req and its promise; `start` submits and returns 0 or a code. */
static Req *NewReq(const FunctionCallbackInfo<Value> &a, Client *cl, int kind, Local<Promise::Resolver> *pr)
{
    Isolate *iso = a.GetIsolate();
    *pr = Promise::Resolver::New(iso->GetCurrentContext()).ToLocalChecked();
    Req *r = new Req();
    r->cl = cl;
    r->kind = kind;
    r->client_obj.Reset(iso, a[0].As<Object>());
    r->resolver.Reset(iso, *pr);
    return r;
}

static void Started(const FunctionCallbackInfo<Value> &a, Req *r, Local<Promise::Resolver> pr, int rc, uint64_t op,
                    const char *what)
{
    Env *env = r->cl->env;
    Isolate *iso = a.GetIsolate();
    if (rc != 0) {
        std::string m = std::string(what) + ": " + mlk_strerror(rc);
        if (rc == MLK_ECLOSED) m += " (the client is closed; create a new Client)";
        pr->Reject(iso->GetCurrentContext(), MakeError(env, rc, m.c_str(), 0)).Check();
        delete r;
    } else {
        r->op = op;
        r->cl->reqs.insert(r);
        ClientRef(r->cl);
        env->op_data[0] = (double)op;
    }
    a.GetReturnValue().Set(pr->GetPromise());
}

static int64_t ArgInt64(const FunctionCallbackInfo<Value> &a, int i)
{
    if (!a[i]->IsNumber()) return 0;
    double d = a[i].As<Number>()->Value();
    return std::isfinite(d) && d > 0 ? (int64_t)d : 0;
}

/* exec(client, command, mode, workingDir, user, timeoutMs, rows, cols,
 *      stdin, interactive, onOutput(fd, buf), onReady()) -> Promise */
static void Exec(const FunctionCallbackInfo<Value> &a)
{
    Isolate *iso = a.GetIsolate();
    Client *cl = ArgClient(a);
    if (!cl) return;
    if (!a[1]->IsString()) return Throw(iso, "exec: the command must be a string");
    std::string cmd = ToUtf8(iso, a[1]);
    int mode = a[2]->IsNumber() ? (int)a[2].As<Number>()->Value() : 0;
    mlk_exec_opts *o = mlk_exec_opts_new();
    if (!o) return Throw(iso, "exec: out of memory");
    mlk_exec_opts_set_mode(o, mode);
    if (a[3]->IsString()) mlk_exec_opts_set_working_dir(o, ToUtf8(iso, a[3]).c_str());
    if (a[4]->IsString()) mlk_exec_opts_set_user(o, ToUtf8(iso, a[4]).c_str());
    mlk_exec_opts_set_timeout_ms(o, ArgInt64(a, 5));
    if (mode == MLK_EXEC_TTY) mlk_exec_opts_set_tty_size(o, (uint16_t)ArgInt64(a, 6), (uint16_t)ArgInt64(a, 7));
    Bytes in;
    if (!in.From(iso, a[8])) {
        mlk_exec_opts_free(o);
        return Throw(iso, "exec: stdin must be a Buffer, Uint8Array or string");
    }
    if (in.p) mlk_exec_opts_set_stdin(o, in.p, in.n);
    if (a[9]->IsTrue()) mlk_exec_opts_set_interactive_stdin(o, 1);
    Local<Promise::Resolver> pr;
    Req *r = NewReq(a, cl, mode == MLK_EXEC_BUFFERED ? R_EXEC_BUF : R_EXEC_STREAM, &pr);
    bool out = a[10]->IsFunction(), ready = a[11]->IsFunction();
    if (out) r->on_output.Reset(iso, a[10].As<Function>());
    if (ready) r->on_ready.Reset(iso, a[11].As<Function>());
    mlk_exec_opts_set_callbacks(o, out ? OnOutput : nullptr, ready ? OnReady : nullptr, r);
    uint64_t op = 0;
    int rc = mlk_exec_async(cl->c, cmd.c_str(), o, OnDone, r, &op);
    mlk_exec_opts_free(o);
    Started(a, r, pr, rc, op, "exec");
}

/* writeFile(client, path, data, mode, timeoutMs) -> Promise<undefined> */
static void WriteFile(const FunctionCallbackInfo<Value> &a)
{
    Isolate *iso = a.GetIsolate();
    Client *cl = ArgClient(a);
    if (!cl) return;
    if (!a[1]->IsString()) return Throw(iso, "writeFile: the path must be a string");
    Bytes data;
    if (!data.From(iso, a[2])) return Throw(iso, "writeFile: content must be a Buffer, Uint8Array or string");
    std::string path = ToUtf8(iso, a[1]);
    uint32_t mode = a[3]->IsNumber() ? (uint32_t)a[3].As<Number>()->Value() : 0;
    Local<Promise::Resolver> pr;
    Req *r = NewReq(a, cl, R_WRITE, &pr);
    uint64_t op = 0;
    /* The core copies the bytes into the request line before returning. */
    int rc = mlk_write_file_async(cl->c, path.c_str(), data.p, data.n, mode, ArgInt64(a, 4), OnDone, r, &op);
    Started(a, r, pr, rc, op, "writeFile");
}

static void PathCall(const FunctionCallbackInfo<Value> &a, int kind)
{
    Isolate *iso = a.GetIsolate();
    Client *cl = ArgClient(a);
    if (!cl) return;
    const char *what = kind == R_READ ? "readFile" : "listFiles";
    if (!a[1]->IsString()) return Throw(iso, "readFile/listFiles: the path must be a string");
    std::string path = ToUtf8(iso, a[1]);
    Local<Promise::Resolver> pr;
    Req *r = NewReq(a, cl, kind, &pr);
    uint64_t op = 0;
    int rc = kind == R_READ ? mlk_read_file_async(cl->c, path.c_str(), ArgInt64(a, 2), OnDone, r, &op)
                            : mlk_list_files_async(cl->c, path.c_str(), ArgInt64(a, 2), OnDone, r, &op);
    Started(a, r, pr, rc, op, what);
}

static void ReadFile(const FunctionCallbackInfo<Value> &a) { PathCall(a, R_READ); }
static void ListFiles(const FunctionCallbackInfo<Value> &a) { PathCall(a, R_LIST); }

/* logFollow(client, onOutput(fd, buf)) -> Promise<undefined> */
static void LogFollow(const FunctionCallbackInfo<Value> &a)
{
    Isolate *iso = a.GetIsolate();
    Client *cl = ArgClient(a);
    if (!cl) return;
    Local<Promise::Resolver> pr;
    Req *r = NewReq(a, cl, R_LOG_FOLLOW, &pr);
    if (a[1]->IsFunction()) r->on_output.Reset(iso, a[1].As<Function>());
    uint64_t op = 0;
    int rc = mlk_log_follow_async(cl->c, OnOutput, OnDone, r, &op);
    Started(a, r, pr, rc, op, "logStream");
}

static uint64_t ArgOp(const FunctionCallbackInfo<Value> &a, int i)
{
    return a[i]->IsNumber() ? (uint64_t)a[i].As<Number>()->Value() : 0;
}

/* stdinWrite(client, op, data) -> 0 | MLK_EAGAIN | code */
static void StdinWrite(const FunctionCallbackInfo<Value> &a)
{
    Client *cl = ArgClient(a);
    if (!cl) return;
    Bytes data;
    if (!data.From(a.GetIsolate(), a[2])) return Throw(a.GetIsolate(), "stdin chunks must be Buffer, Uint8Array or string");
    a.GetReturnValue().Set(mlk_stdin_write(cl->c, ArgOp(a, 1), data.p, data.n));
}

static void StdinClose(const FunctionCallbackInfo<Value> &a)
{
    Client *cl = ArgClient(a);
    if (!cl) return;
    a.GetReturnValue().Set(mlk_stdin_close(cl->c, ArgOp(a, 1)));
}

static void TtyResize(const FunctionCallbackInfo<Value> &a)
{
    Client *cl = ArgClient(a);
    if (!cl) return;
    a.GetReturnValue().Set(mlk_tty_resize(cl->c, ArgOp(a, 1), (uint16_t)ArgInt64(a, 2), (uint16_t)ArgInt64(a, 3)));
}

static void Cancel(const FunctionCallbackInfo<Value> &a)
{
    Client *cl = ArgClient(a);
    if (!cl) return;
    a.GetReturnValue().Set(mlk_cancel(cl->c, ArgOp(a, 1)));
}

/* ---- lifecycle, logs, network: the core's async calls ------------------------- */

/* create(client, sandbox, launch, timeoutMs) -> Promise<Buffer vm id>.  The
 * core renders the params and copies the hooks before returning, so the
 * builder may change (or be collected) at once.  The client takes a
 * reference on the builder's hooks: their `ud` now lives in the client. */
static void Create(const FunctionCallbackInfo<Value> &a)
{
    Isolate *iso = a.GetIsolate();
    Client *cl = ArgClient(a);
    if (!cl) return;
    Box *sbb = UnwrapBox(a[1], &kTagSandbox);
    if (!sbb) return Throw(iso, "create: expected a sandbox builder handle");
    for (HookFn *h : sbb->hooks) {
        h->refs++;
        cl->hooks.push_back(h);
    }
    Local<Promise::Resolver> pr;
    Req *r = NewReq(a, cl, R_DATA, &pr);
    uint64_t op = 0;
    const mlk_sandbox *sb = (const mlk_sandbox *)sbb->p;
    int rc = a[2]->IsTrue() ? mlk_launch_async(cl->c, sb, ArgInt64(a, 3), OnDone, r, &op)
                            : mlk_create_async(cl->c, sb, ArgInt64(a, 3), OnDone, r, &op);
    Started(a, r, pr, rc, op, a[2]->IsTrue() ? "launch" : "create");
}

/* Hook tokens stop keeping the loop alive once close starts. */
static void ClientUnrefTokens(Client *cl)
{
    for (PendingHook *ph : cl->tokens) {
        if (ph->reffed) {
            ph->reffed = false;
            ClientUnref(cl);
        }
    }
}

static void Close(const FunctionCallbackInfo<Value> &a)
{
    Client *cl = ArgClient(a);
    if (!cl) return;
    double t = a[1]->IsNumber() ? a[1].As<Number>()->Value() : 0;
    if (!std::isfinite(t) || t < 0) t = 0;
    Local<Promise::Resolver> pr;
    Req *r = NewReq(a, cl, R_NONE, &pr);
    uint64_t op = 0;
    int rc = mlk_close_async(cl->c, t, OnDone, r, &op);
    Started(a, r, pr, rc, op, "close");
    cl->closed = true;
    ClientUnrefTokens(cl);
}

static void Remove(const FunctionCallbackInfo<Value> &a)
{
    Client *cl = ArgClient(a);
    if (!cl) return;
    Local<Promise::Resolver> pr;
    Req *r = NewReq(a, cl, R_DATA, &pr);
    uint64_t op = 0;
    int rc = mlk_remove_async(cl->c, OnDone, r, &op);
    Started(a, r, pr, rc, op, "remove");
}

/* log(client, timeoutMs) -> Promise<Buffer> */
static void Log(const FunctionCallbackInfo<Value> &a)
{
    Client *cl = ArgClient(a);
    if (!cl) return;
    Local<Promise::Resolver> pr;
    Req *r = NewReq(a, cl, R_DATA, &pr);
    uint64_t op = 0;
    int rc = mlk_log_async(cl->c, ArgInt64(a, 1), OnDone, r, &op);
    Started(a, r, pr, rc, op, "log");
}

/* allowList(client, add, hosts[], timeoutMs) -> Promise<Buffer msgpack> */
static void AllowList(const FunctionCallbackInfo<Value> &a)
{
    Isolate *iso = a.GetIsolate();
    Client *cl = ArgClient(a);
    if (!cl) return;
    StrArray hosts;
    if (!hosts.From(iso, a[2])) return Throw(iso, "allowList: hosts must be an array of strings");
    Local<Promise::Resolver> pr;
    Req *r = NewReq(a, cl, R_MSGPACK, &pr);
    uint64_t op = 0;
    bool add = a[1]->IsTrue();
    int rc = add ? mlk_allow_list_add_async(cl->c, hosts.ptrs(), hosts.size(), ArgInt64(a, 3), OnDone, r, &op)
                 : mlk_allow_list_delete_async(cl->c, hosts.ptrs(), hosts.size(), ArgInt64(a, 3), OnDone, r, &op);
    Started(a, r, pr, rc, op, add ? "allowListAdd" : "allowListDelete");
}

/* portForward(client, specs[], addrs[], timeoutMs) -> Promise<Buffer msgpack> */
static void PortForward(const FunctionCallbackInfo<Value> &a)
{
    Isolate *iso = a.GetIsolate();
    Client *cl = ArgClient(a);
    if (!cl) return;
    StrArray specs, addrs;
    if (!specs.From(iso, a[1]) || !addrs.From(iso, a[2]))
        return Throw(iso, "portForward: specs and addresses must be arrays of strings");
    Local<Promise::Resolver> pr;
    Req *r = NewReq(a, cl, R_MSGPACK, &pr);
    uint64_t op = 0;
    int rc = mlk_port_forward_async(cl->c, specs.ptrs(), specs.size(), addrs.ptrs(), addrs.size(), ArgInt64(a, 3),
                                    OnDone, r, &op);
    Started(a, r, pr, rc, op, "portForward");
}

/* ---- volumes: through a client (async), or on the threadpool without one -------- */

enum { J_VOL_CREATE, J_VOL_LIST, J_VOL_RM, J_FREE };

struct Job {
    uv_work_t w;
    Env *env;
    int kind;
    mlk_client *free_c = nullptr;
    const mlk_config *cfg = nullptr;
    int64_t size = 0;
    std::string s;
    mlk_result *res = nullptr;
    int rc = 0;
    bool orphan = false;
    Global<Promise::Resolver> resolver;
    Global<Value> keep1;
};

static void JobWork(uv_work_t *w)
{
    Job *j = (Job *)w->data;
    switch (j->kind) {
    case J_VOL_CREATE: j->rc = mlk_volume_create(j->cfg, j->s.c_str(), j->size, &j->res); break;
    case J_VOL_LIST: j->rc = mlk_volume_list(j->cfg, &j->res); break;
    case J_VOL_RM: j->rc = mlk_volume_remove(j->cfg, j->s.c_str(), &j->res); break;
    case J_FREE: mlk_client_free(j->free_c); break;
    }
}

static void EnvMaybeDelete(Env *env);

static void JobAfter(uv_work_t *w, int status)
{
    Job *j = (Job *)w->data;
    Env *env = j->env;
    env->jobs.erase(j);
    if (j->kind == J_FREE || j->orphan) {
        mlk_result_free(j->res);
        delete j;
        EnvMaybeDelete(env);
        return;
    }
    Isolate *iso = env->iso;
    HandleScope hs(iso);
    Local<Context> ctx = env->ctx.Get(iso);
    Context::Scope cs(ctx);
    {
        node::CallbackScope scope(iso, env->resource.Get(iso), node::async_context{0, 0});
        Local<Promise::Resolver> pr = j->resolver.Get(iso);
        int st = j->res ? mlk_result_status(j->res) : j->rc;
        if (st != 0) {
            pr->Reject(ctx, ResultError(env, j->res, st)).Check();
        } else {
            size_t n = 0;
            const char *p = j->res ? mlk_result_msgpack(j->res, &n) : nullptr;
            pr->Resolve(ctx, p ? BufferCopy(iso, p, n) : (Local<Value>)v8::Null(iso)).Check();
        }
        mlk_result_free(j->res);
        delete j;
    }
}

static void JobQueueFree(Env *env, mlk_client *c)
{
    if (env->gone) {
        mlk_client_free(c);
        return;
    }
    Job *j = new Job();
    j->env = env;
    j->kind = J_FREE;
    j->free_c = c;
    j->w.data = j;
    env->jobs.insert(j);
    if (uv_queue_work(env->loop, &j->w, JobWork, JobAfter) != 0) {
        env->jobs.erase(j);
        mlk_client_free(c);
        delete j;
    }
}

/* Start a job whose promise is returned; the caller filled the inputs. */
static void JobStart(const FunctionCallbackInfo<Value> &a, Job *j)
{
    Isolate *iso = a.GetIsolate();
    Local<Promise::Resolver> pr = Promise::Resolver::New(iso->GetCurrentContext()).ToLocalChecked();
    j->resolver.Reset(iso, pr);
    j->w.data = j;
    j->env->jobs.insert(j);
    if (uv_queue_work(j->env->loop, &j->w, JobWork, JobAfter) != 0) {
        j->env->jobs.erase(j);
        pr->Reject(iso->GetCurrentContext(), MakeError(j->env, MLK_ENOMEM, "cannot queue work on the libuv threadpool", 0)).Check();
        delete j;
    }
    a.GetReturnValue().Set(pr->GetPromise());
}

/* Volume calls take a client handle (async through it) or a config handle /
 * null (threadpool).  Returns true when it started the call through a client. */
static bool VolumeViaClient(const FunctionCallbackInfo<Value> &a, int kind)
{
    Box *b = UnwrapBox(a[0], &kTagClient);
    if (!b) return false;
    Isolate *iso = a.GetIsolate();
    Client *cl = (Client *)b->p;
    std::string name = a[1]->IsString() ? ToUtf8(iso, a[1]) : std::string();
    Local<Promise::Resolver> pr;
    Req *r = NewReq(a, cl, R_MSGPACK, &pr);
    uint64_t op = 0;
    int rc;
    const char *what;
    switch (kind) {
    case J_VOL_CREATE: rc = mlk_volume_create_async(cl->c, name.c_str(), ArgInt64(a, 2), OnDone, r, &op); what = "volumeCreate"; break;
    case J_VOL_LIST: rc = mlk_volume_list_async(cl->c, OnDone, r, &op); what = "volumeList"; break;
    default: rc = mlk_volume_remove_async(cl->c, name.c_str(), OnDone, r, &op); what = "volumeRemove"; break;
    }
    Started(a, r, pr, rc, op, what);
    return true;
}

static Job *VolumeJob(const FunctionCallbackInfo<Value> &a, int kind)
{
    Isolate *iso = a.GetIsolate();
    const mlk_config *cfg = nullptr;
    if (!a[0]->IsNullOrUndefined()) {
        cfg = (const mlk_config *)Unwrap(iso, a[0], &kTagConfig);
        if (!cfg) {
            Throw(iso, "volume calls expect a client handle, a config handle or null");
            return nullptr;
        }
    }
    Job *j = new Job();
    j->env = tl_env;
    j->kind = kind;
    j->cfg = cfg;
    j->keep1.Reset(iso, a[0]);
    return j;
}

/* volumeCreate(client|config, name, sizeMb) */
static void VolumeCreate(const FunctionCallbackInfo<Value> &a)
{
    if (VolumeViaClient(a, J_VOL_CREATE)) return;
    Job *j = VolumeJob(a, J_VOL_CREATE);
    if (!j) return;
    j->s = a[1]->IsString() ? ToUtf8(a.GetIsolate(), a[1]) : std::string();
    j->size = ArgInt64(a, 2);
    JobStart(a, j);
}

static void VolumeList(const FunctionCallbackInfo<Value> &a)
{
    if (VolumeViaClient(a, J_VOL_LIST)) return;
    Job *j = VolumeJob(a, J_VOL_LIST);
    if (j) JobStart(a, j);
}

static void VolumeRemove(const FunctionCallbackInfo<Value> &a)
{
    if (VolumeViaClient(a, J_VOL_RM)) return;
    Job *j = VolumeJob(a, J_VOL_RM);
    if (!j) return;
    j->s = a[1]->IsString() ? ToUtf8(a.GetIsolate(), a[1]) : std::string();
    JobStart(a, j);
}

/* ---- hooks ------------------------------------------------------------------------ */

static Client *FindClient(Env *env, mlk_client *c)
{
    for (Client *cl : env->clients)
        if (cl->c == c) return cl;
    return nullptr;
}

/* Answer a token with the trampoline's value: a Buffer of msgpack. */
static void HookAnswer(Isolate *iso, mlk_hook_call *call, Local<Value> v)
{
    if (v->IsArrayBufferView()) {
        Local<v8::ArrayBufferView> view = v.As<v8::ArrayBufferView>();
        size_t n = view->ByteLength();
        const char *p = n ? (const char *)view->Buffer()->Data() + view->ByteOffset() : nullptr;
        mlk_hook_reply(call, p, n);
    } else if (v->IsNullOrUndefined()) {
        mlk_hook_reply(call, nullptr, 0);
    } else {
        mlk_hook_fail(call, "matchlock-native: the hook trampoline answered something that is not msgpack bytes");
    }
}

static void PendingHookDone(PendingHook *ph)
{
    Client *cl = ph->cl;
    if (cl) {
        cl->tokens.erase(ph);
        if (ph->reffed) ClientUnref(cl);
        ClientMaybeDestroy(cl);
    }
    ph->env->hook_calls.erase(ph);
    delete ph;
}

static void HookFulfilled(const FunctionCallbackInfo<Value> &a)
{
    PendingHook *ph = (PendingHook *)a.Data().As<External>()->Value();
    mlk_hook_call *call = ph->call;
    ph->call = nullptr;
    if (call) HookAnswer(a.GetIsolate(), call, a[0]);
    PendingHookDone(ph);
}

static void HookRejected(const FunctionCallbackInfo<Value> &a)
{
    PendingHook *ph = (PendingHook *)a.Data().As<External>()->Value();
    mlk_hook_call *call = ph->call;
    ph->call = nullptr;
    if (call) {
        std::string m = ErrText(a.GetIsolate(), a[0]);
        mlk_hook_fail(call, m.empty() ? "the hook's promise was rejected" : m.c_str());
    }
    PendingHookDone(ph);
}

/* The core's hook callback: runs from mlk_dispatch inside OnPoll. */
static void HookCb(void *ud, mlk_client *c, int kind, mlk_hook_call *call, const char *req, size_t len)
{
    HookFn *hf = (HookFn *)ud;
    Env *env = hf->env;
    Client *cl = env->gone ? nullptr : FindClient(env, c);
    if (!cl || hf->fn.IsEmpty()) {
        if (call) mlk_hook_fail(call, "matchlock-native: the hook's JavaScript environment is gone");
        return;
    }
    Isolate *iso = env->iso;
    HandleScope hs(iso);
    Local<Context> ctx = env->ctx.Get(iso);
    Context::Scope cs(ctx);
    Local<Value> h = cl->handle.IsEmpty() ? (Local<Value>)v8::Null(iso) : (Local<Value>)cl->handle.Get(iso);
    Local<Value> argv[3] = {BufferCopy(iso, req, len), h, Integer::New(iso, kind)};
    TryCatch tc(iso);
    Local<Value> ret;
    if (!hf->fn.Get(iso)->Call(ctx, v8::Undefined(iso), 3, argv).ToLocal(&ret)) {
        if (call) {
            std::string m = tc.HasCaught() && tc.CanContinue() ? ErrText(iso, tc.Exception()) : std::string("hook terminated");
            mlk_hook_fail(call, m.empty() ? "the hook threw" : m.c_str());
        }
        return;
    }
    if (!call) return;
    if (!ret->IsPromise()) {
        HookAnswer(iso, call, ret);
        return;
    }
    PendingHook *ph = new PendingHook();
    ph->env = env;
    ph->cl = cl;
    ph->call = call;
    env->hook_calls.insert(ph);
    cl->tokens.insert(ph);
    if (!cl->closed) {
        ph->reffed = true;
        ClientRef(cl);
    }
    Local<External> data = External::New(iso, ph);
    Local<Function> ok, bad;
    if (!Function::New(ctx, HookFulfilled, data, 1).ToLocal(&ok) ||
        !Function::New(ctx, HookRejected, data, 1).ToLocal(&bad) ||
        ret.As<Promise>()->Then(ctx, ok, bad).IsEmpty()) {
        ph->call = nullptr;
        mlk_hook_fail(call, "matchlock-native: cannot wait for the hook's promise");
        PendingHookDone(ph);
    }
}

/* sandboxAddHook(sandbox, kind, ruleMsgpack|null, trampoline) -> 0 | MLK_E* */
static void SandboxAddHook(const FunctionCallbackInfo<Value> &a)
{
    Isolate *iso = a.GetIsolate();
    Box *b = UnwrapBox(a[0], &kTagSandbox);
    if (!b) return Throw(iso, "sandboxAddHook: expected a sandbox builder handle");
    int kind = a[1]->IsNumber() ? (int)a[1].As<Number>()->Value() : 0;
    Bytes rule;
    if (!rule.From(iso, a[2])) return Throw(iso, "sandboxAddHook: the rule must be a Buffer of msgpack");
    if (!a[3]->IsFunction()) return Throw(iso, "sandboxAddHook: the hook must be a function");
    HookFn *hf = new HookFn();
    hf->env = tl_env;
    hf->fn.Reset(iso, a[3].As<Function>());
    mlk_sandbox *sb = (mlk_sandbox *)b->p;
    int rc = kind == MLK_HOOK_NETWORK ? mlk_sandbox_add_network_hook(sb, rule.p, rule.n, HookCb, hf)
                                      : mlk_sandbox_add_vfs_hook(sb, kind, rule.p, rule.n, HookCb, hf);
    if (rc == 0) b->hooks.push_back(hf);
    else HookUnref(hf);
    a.GetReturnValue().Set(rc);
}

/* ---- events ------------------------------------------------------------------------ */

static void EventCb(void *ud, const char *mp, size_t len)
{
    Client *cl = (Client *)ud;
    if (cl->on_event.IsEmpty()) return;
    Isolate *iso = cl->env->iso;
    HandleScope hs(iso);
    Local<Context> ctx = cl->env->ctx.Get(iso);
    Context::Scope cs(ctx);
    Local<Value> argv[1] = {BufferCopy(iso, mp, len)};
    TryCatch tc(iso);   /* the JS side reports its own errors; never propagate */
    Local<Value> ignored;
    if (!cl->on_event.Get(iso)->Call(ctx, v8::Undefined(iso), 1, argv).ToLocal(&ignored)) return;
}

/* clientSetEventCb(client, fn|null) -> 0 | MLK_E* */
static void ClientSetEventCb(const FunctionCallbackInfo<Value> &a)
{
    Client *cl = ArgClient(a);
    if (!cl) return;
    if (a[1]->IsFunction()) {
        cl->on_event.Reset(a.GetIsolate(), a[1].As<Function>());
        a.GetReturnValue().Set(mlk_client_set_event_cb(cl->c, EventCb, cl));
    } else {
        cl->on_event.Reset();
        a.GetReturnValue().Set(mlk_client_set_event_cb(cl->c, nullptr, nullptr));
    }
}

/* setup(makeError) -> Float64Array(1) where async calls leave their op id */
static void Setup(const FunctionCallbackInfo<Value> &a)
{
    Isolate *iso = a.GetIsolate();
    Env *env = tl_env;
    if (a[0]->IsFunction()) env->make_error.Reset(iso, a[0].As<Function>());
    a.GetReturnValue().Set(env->op_slot.Get(iso));
}

/* Pending work counters, for tests of handle leaks. */
static void Stats(const FunctionCallbackInfo<Value> &a)
{
    Isolate *iso = a.GetIsolate();
    Env *env = tl_env;
    Local<Context> ctx = iso->GetCurrentContext();
    int pending = 0;
    for (Client *cl : env->clients) pending += cl->pending;
    Local<Object> o = Object::New(iso);
    o->Set(ctx, Str(iso, "clients"), Integer::New(iso, (int)env->clients.size())).Check();
    o->Set(ctx, Str(iso, "pending"), Integer::New(iso, pending)).Check();
    o->Set(ctx, Str(iso, "jobs"), Integer::New(iso, (int)env->jobs.size())).Check();
    o->Set(ctx, Str(iso, "handles"), Integer::New(iso, (int)env->boxes.size())).Check();
    o->Set(ctx, Str(iso, "hookCalls"), Integer::New(iso, (int)env->hook_calls.size())).Check();
    a.GetReturnValue().Set(o);
}

/* ---- environment lifetime ----------------------------------------------------- */

static void EnvMaybeDelete(Env *env)
{
    if (env->gone && env->jobs.empty()) delete env;
}

static void Cleanup(void *arg)
{
    Env *env = (Env *)arg;
    env->gone = true;
    std::vector<Client *> cls(env->clients.begin(), env->clients.end());
    for (Client *cl : cls) ClientDestroy(cl, true);
    /* Tokens a promise would have answered: no JS runs any more. */
    std::vector<PendingHook *> phs(env->hook_calls.begin(), env->hook_calls.end());
    env->hook_calls.clear();
    for (PendingHook *ph : phs) {
        if (ph->call) mlk_hook_fail(ph->call, "the Node environment ended before the hook answered");
        delete ph;
    }
    for (Job *j : env->jobs) {
        j->orphan = true;
        j->resolver.Reset();
        j->keep1.Reset();
    }
    for (Box *b : env->boxes) {
        b->obj.Reset();
        if (b->tag != &kTagClient && b->fr && b->p) b->fr(b->p);
        for (HookFn *h : b->hooks) HookUnref(h);
        delete b;
    }
    env->boxes.clear();
    env->ctx.Reset();
    env->resource.Reset();
    env->tmpl.Reset();
    env->make_error.Reset();
    env->op_slot.Reset();
    if (tl_env == env) tl_env = nullptr;
    EnvMaybeDelete(env);
}

static void SetFn(Isolate *iso, Local<Context> ctx, Local<Object> exports, const char *name,
                  v8::FunctionCallback fn)
{
    exports->Set(ctx, Str(iso, name), FunctionTemplate::New(iso, fn)->GetFunction(ctx).ToLocalChecked()).Check();
}

static void Init(Local<Object> exports, Local<Context> ctx)
{
    Isolate *iso = ctx->GetIsolate();
    Env *env = new Env();
    env->iso = iso;
    env->loop = node::GetCurrentEventLoop(iso);
    env->ctx.Reset(iso, ctx);
    env->resource.Reset(iso, Object::New(iso));
    Local<ObjectTemplate> t = ObjectTemplate::New(iso);
    t->SetInternalFieldCount(2);
    env->tmpl.Reset(iso, t);
    Local<v8::ArrayBuffer> ab = v8::ArrayBuffer::New(iso, sizeof(double));
    env->op_data = (double *)ab->Data();
    env->op_slot.Reset(iso, Float64Array::New(ab, 0, 1));
    tl_env = env;
    node::AddEnvironmentCleanupHook(iso, Cleanup, env);

    SetFn(iso, ctx, exports, "setup", Setup);
    SetFn(iso, ctx, exports, "stats", Stats);
    SetFn(iso, ctx, exports, "clientNew", ClientNew);
    SetFn(iso, ctx, exports, "clientVmId", ClientVmId);
    SetFn(iso, ctx, exports, "clientStderrTail", ClientStderrTail);
    SetFn(iso, ctx, exports, "exec", Exec);
    SetFn(iso, ctx, exports, "writeFile", WriteFile);
    SetFn(iso, ctx, exports, "readFile", ReadFile);
    SetFn(iso, ctx, exports, "listFiles", ListFiles);
    SetFn(iso, ctx, exports, "logFollow", LogFollow);
    SetFn(iso, ctx, exports, "stdinWrite", StdinWrite);
    SetFn(iso, ctx, exports, "stdinClose", StdinClose);
    SetFn(iso, ctx, exports, "ttyResize", TtyResize);
    SetFn(iso, ctx, exports, "cancel", Cancel);
    SetFn(iso, ctx, exports, "create", Create);
    SetFn(iso, ctx, exports, "close", Close);
    SetFn(iso, ctx, exports, "remove", Remove);
    SetFn(iso, ctx, exports, "log", Log);
    SetFn(iso, ctx, exports, "allowList", AllowList);
    SetFn(iso, ctx, exports, "portForward", PortForward);
    SetFn(iso, ctx, exports, "volumeCreate", VolumeCreate);
    SetFn(iso, ctx, exports, "volumeList", VolumeList);
    SetFn(iso, ctx, exports, "volumeRemove", VolumeRemove);
    SetFn(iso, ctx, exports, "sandboxAddHook", SandboxAddHook);
    SetFn(iso, ctx, exports, "clientSetEventCb", ClientSetEventCb);
}

} /* namespace mlknode */

#endif
