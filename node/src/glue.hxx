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
 *  - Blocking ABI calls without an _async variant (create, close, remove,
 *    log, allow-list, port-forward, volumes) run on the libuv threadpool
 *    (uv_queue_work); the main thread never blocks on the server.
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

/* ---- per-environment state --------------------------------------------------- */

struct Box {
    Env *env;
    Global<Object> obj;
    void *p;
    const int *tag;
    void (*fr)(void *);
};

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
    int pending = 0;          /* async requests whose done has not run */
    int jobs = 0;             /* threadpool jobs using c */
    bool in_poll = false;
    bool want_free = false;
    bool destroyed = false;
    std::unordered_set<Req *> reqs;
};

enum { R_EXEC_BUF, R_EXEC_STREAM, R_WRITE, R_READ, R_LIST, R_LOG_FOLLOW };

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
    a.GetReturnValue().Set(Wrap(iso, cl, &kTagClient, ClientRelease));
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
        p = mlk_result_msgpack(res, &n);
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

/* ---- blocking calls on the threadpool ------------------------------------------ */

enum { J_CREATE, J_CLOSE, J_REMOVE, J_LOG, J_ALLOW_ADD, J_ALLOW_DEL, J_PORTFWD,
       J_VOL_CREATE, J_VOL_LIST, J_VOL_RM, J_FREE };

struct Job {
    uv_work_t w;
    Env *env;
    int kind;
    Client *cl = nullptr;
    mlk_client *free_c = nullptr;
    const mlk_sandbox *sb = nullptr;
    const mlk_config *cfg = nullptr;
    int launch = 0;
    int64_t timeout_ms = 0;
    double timeout_s = 0;
    int64_t size = 0;
    std::string s;
    StrArray a1, a2;
    mlk_result *res = nullptr;
    int rc = 0;
    bool orphan = false;
    Global<Promise::Resolver> resolver;
    Global<Value> keep1, keep2;
};

static void JobWork(uv_work_t *w)
{
    Job *j = (Job *)w->data;
    mlk_client *c = j->cl ? j->cl->c : nullptr;
    switch (j->kind) {
    case J_CREATE:
        j->rc = j->launch ? mlk_launch(c, j->sb, j->timeout_ms, &j->res) : mlk_create(c, j->sb, j->timeout_ms, &j->res);
        break;
    case J_CLOSE: j->rc = mlk_close(c, j->timeout_s, &j->res); break;
    case J_REMOVE: j->rc = mlk_remove(c, &j->res); break;
    case J_LOG: j->rc = mlk_log(c, j->timeout_ms, &j->res); break;
    case J_ALLOW_ADD: j->rc = mlk_allow_list_add(c, j->a1.ptrs(), j->a1.size(), j->timeout_ms, &j->res); break;
    case J_ALLOW_DEL: j->rc = mlk_allow_list_delete(c, j->a1.ptrs(), j->a1.size(), j->timeout_ms, &j->res); break;
    case J_PORTFWD:
        j->rc = mlk_port_forward(c, j->a1.ptrs(), j->a1.size(), j->a2.ptrs(), j->a2.size(), j->timeout_ms, &j->res);
        break;
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
    Client *cl = j->cl;
    {
        node::CallbackScope scope(iso, env->resource.Get(iso), node::async_context{0, 0});
        Local<Promise::Resolver> pr = j->resolver.Get(iso);
        int st = j->res ? mlk_result_status(j->res) : j->rc;
        if (st != 0) {
            pr->Reject(ctx, ResultError(env, j->res, st)).Check();
        } else {
            Local<Object> o = Object::New(iso);
            size_t n = 0;
            const char *p = j->res ? mlk_result_data(j->res, &n) : nullptr;
            o->Set(ctx, Str(iso, "data"), p ? BufferCopy(iso, p, n) : (Local<Value>)v8::Null(iso)).Check();
            n = 0;
            p = j->res ? mlk_result_msgpack(j->res, &n) : nullptr;
            o->Set(ctx, Str(iso, "msgpack"), p ? BufferCopy(iso, p, n) : (Local<Value>)v8::Null(iso)).Check();
            pr->Resolve(ctx, o).Check();
        }
        mlk_result_free(j->res);
        delete j;
    }
    if (cl) {
        cl->jobs--;
        ClientMaybeDestroy(cl);
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
    if (j->cl) j->cl->jobs++;
    if (uv_queue_work(j->env->loop, &j->w, JobWork, JobAfter) != 0) {
        j->env->jobs.erase(j);
        if (j->cl) j->cl->jobs--;
        pr->Reject(iso->GetCurrentContext(), MakeError(j->env, MLK_ENOMEM, "cannot queue work on the libuv threadpool", 0)).Check();
        delete j;
    }
    a.GetReturnValue().Set(pr->GetPromise());
}

static Job *ClientJob(const FunctionCallbackInfo<Value> &a, int kind)
{
    Client *cl = ArgClient(a);
    if (!cl) return nullptr;
    Job *j = new Job();
    j->env = cl->env;
    j->kind = kind;
    j->cl = cl;
    j->keep1.Reset(a.GetIsolate(), a[0]);
    return j;
}

/* create(client, sandbox, launch, timeoutMs) -> Promise<{data: vm id}> */
static void Create(const FunctionCallbackInfo<Value> &a)
{
    Isolate *iso = a.GetIsolate();
    const mlk_sandbox *sb = (const mlk_sandbox *)Unwrap(iso, a[1], &kTagSandbox);
    if (!sb) return Throw(iso, "create: expected a sandbox builder handle");
    Job *j = ClientJob(a, J_CREATE);
    if (!j) return;
    j->sb = sb;
    j->keep2.Reset(iso, a[1]);
    j->launch = a[2]->IsTrue();
    j->timeout_ms = ArgInt64(a, 3);
    JobStart(a, j);
}

static void Close(const FunctionCallbackInfo<Value> &a)
{
    Job *j = ClientJob(a, J_CLOSE);
    if (!j) return;
    j->timeout_s = a[1]->IsNumber() ? a[1].As<Number>()->Value() : 0;
    JobStart(a, j);
}

static void Remove(const FunctionCallbackInfo<Value> &a)
{
    Job *j = ClientJob(a, J_REMOVE);
    if (j) JobStart(a, j);
}

static void Log(const FunctionCallbackInfo<Value> &a)
{
    Job *j = ClientJob(a, J_LOG);
    if (!j) return;
    j->timeout_ms = ArgInt64(a, 1);
    JobStart(a, j);
}

/* allowList(client, add, hosts[], timeoutMs) */
static void AllowList(const FunctionCallbackInfo<Value> &a)
{
    Isolate *iso = a.GetIsolate();
    Job *j = ClientJob(a, a[1]->IsTrue() ? J_ALLOW_ADD : J_ALLOW_DEL);
    if (!j) return;
    if (!j->a1.From(iso, a[2])) {
        delete j;
        return Throw(iso, "allowList: hosts must be an array of strings");
    }
    j->timeout_ms = ArgInt64(a, 3);
    JobStart(a, j);
}

/* portForward(client, specs[], addrs[], timeoutMs) */
static void PortForward(const FunctionCallbackInfo<Value> &a)
{
    Isolate *iso = a.GetIsolate();
    Job *j = ClientJob(a, J_PORTFWD);
    if (!j) return;
    if (!j->a1.From(iso, a[1]) || !j->a2.From(iso, a[2])) {
        delete j;
        return Throw(iso, "portForward: specs and addresses must be arrays of strings");
    }
    j->timeout_ms = ArgInt64(a, 3);
    JobStart(a, j);
}

static Job *VolumeJob(const FunctionCallbackInfo<Value> &a, int kind)
{
    Isolate *iso = a.GetIsolate();
    const mlk_config *cfg = nullptr;
    if (!a[0]->IsNullOrUndefined()) {
        cfg = (const mlk_config *)Unwrap(iso, a[0], &kTagConfig);
        if (!cfg) {
            Throw(iso, "volume calls expect a config handle or null");
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

/* volumeCreate(config, name, sizeMb) */
static void VolumeCreate(const FunctionCallbackInfo<Value> &a)
{
    Job *j = VolumeJob(a, J_VOL_CREATE);
    if (!j) return;
    j->s = a[1]->IsString() ? ToUtf8(a.GetIsolate(), a[1]) : std::string();
    j->size = ArgInt64(a, 2);
    JobStart(a, j);
}

static void VolumeList(const FunctionCallbackInfo<Value> &a)
{
    Job *j = VolumeJob(a, J_VOL_LIST);
    if (j) JobStart(a, j);
}

static void VolumeRemove(const FunctionCallbackInfo<Value> &a)
{
    Job *j = VolumeJob(a, J_VOL_RM);
    if (!j) return;
    j->s = a[1]->IsString() ? ToUtf8(a.GetIsolate(), a[1]) : std::string();
    JobStart(a, j);
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
    for (Client *cl : cls) {
        if (cl->jobs > 0) {
            /* A job still uses it on the threadpool: leave it (and its
             * memory) alone rather than free it under the job. */
            env->clients.erase(cl);
            uv_poll_stop(cl->poll);
            uv_close((uv_handle_t *)cl->poll, PollClosed);
            for (Req *r : cl->reqs) delete r;
            continue;
        }
        ClientDestroy(cl, true);
    }
    for (Job *j : env->jobs) {
        j->orphan = true;
        j->resolver.Reset();
        j->keep1.Reset();
        j->keep2.Reset();
    }
    for (Box *b : env->boxes) {
        b->obj.Reset();
        if (b->tag != &kTagClient && b->fr && b->p) b->fr(b->p);
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
}

} /* namespace mlknode */

#endif
