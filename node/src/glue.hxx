/* glue.hxx - the hand-written half of the Node addon: everything SWIG cannot
 * generate because it calls back into JavaScript or blocks.
 *
 * Written against Node-API only (node-addon-api's C++ classes over the C
 * functions of node_api.h), like the SWIG -napi wrapper it is included into,
 * so one binary loads in every Node version with Node-API 8 (Node >= 16.14;
 * the package says >= 20).  The only other symbols it uses are six libuv
 * functions that Node exports and whose ABI libuv keeps stable within
 * major version 1 (uv_min.h), for the core's fd on the event loop.
 *
 * Model
 *  - Env: one per Node environment (main thread or worker), found through a
 *    thread-local pointer (each environment runs on its own thread; SWIG's
 *    runtime owns the Node-API instance data).  Freed after the environment's
 *    cleanup hook once the finalizers and threadpool jobs that use it are gone.
 *  - Handles (sandbox builder, config, client) are plain objects carrying a
 *    Node-API type tag and a wrapped Box; the wrap's finalizer frees the C
 *    object (a client's finalizer frees what close() has not already freed).
 *  - Client: an mlk_client plus a uv_poll on mlk_client_fd() on the
 *    environment's loop.  The poll runs mlk_dispatch() inside a HandleScope
 *    and a callback scope (so promise reactions run after it); done callbacks
 *    resolve promises, output callbacks call JS functions and catch what they
 *    throw.  The poll is referenced only while async requests are pending, so
 *    an idle process exits.  When close() completes, the C client is freed
 *    at once, its notification fd with it (the core already released the
 *    process's pipes when the close ended); remove() after close runs
 *    `matchlock rm` on the threadpool with the config handle and the kept
 *    vm id (removeVm, mlk_remove_vm).  A freed client's JS handle keeps the
 *    vm id and stderr tail for messages.
 *  - Every client call goes through the core's *_async functions (create,
 *    close, remove, log, allow-list, port-forward and volumes through a
 *    client included), so an AbortSignal can mlk_cancel it.  Only volume
 *    calls without a client and remove() after close run on the libuv
 *    threadpool (napi async work).
 *  - Hooks: a HookFn (refcounted; held by the builder handle and by every
 *    client created from it) is the `ud` of mlk_sandbox_add_*_hook.  The
 *    core runs HookCb from mlk_dispatch (inside OnPoll); it calls the JS
 *    trampoline and catches what it throws.  A Buffer answers the token at
 *    once; a Promise gets then/catch handlers that answer it later (a
 *    PendingHook, which refs the poll until answered or the client is
 *    closed); a throw or rejection becomes mlk_hook_fail with the message.
 *  - Events: mlk_client_set_event_cb delivers `event` notifications to a JS
 *    function, also from OnPoll.
 *  - C++ exceptions (node-addon-api's Napi::Error) never cross the core's C
 *    frames: every callback the core calls catches them.
 */
#ifndef MLK_NODE_GLUE_HXX
#define MLK_NODE_GLUE_HXX

#include <napi.h>

#include <cmath>
#include <cstring>
#include <string>
#include <unordered_set>
#include <vector>

#include "matchlock.h"
#include "uv_min.h"

namespace mlknode {

/* One Node-API type tag per kind of handle (random 128-bit values). */
static const napi_type_tag kTagSandbox = {0x6d6c6b5f73616e64ULL, 0x9d1c2e4f7a3b5c01ULL};
static const napi_type_tag kTagConfig = {0x6d6c6b5f636f6e66ULL, 0x4e7a91c3d2b8f602ULL};
static const napi_type_tag kTagClient = {0x6d6c6b5f636c6965ULL, 0x1f2a3b4c5d6e7f03ULL};

/* ---- small helpers ---------------------------------------------------------- */

static inline std::string ToUtf8(Napi::Value v) { return v.As<Napi::String>().Utf8Value(); }

static inline Napi::String Str(Napi::Env env, const char *s, size_t n = (size_t)-1)
{
    if (!s) s = "";
    if (n == (size_t)-1) n = strlen(s);
    return Napi::String::New(env, s, n);
}

/* A string holding a NUL cannot pass as a C string: *err gets the core's
 * message (the argument, the offset, the length; never the value). */
static inline bool HasNul(const std::string &s, const char *what, std::string *err)
{
    if (s.find('\0') == std::string::npos) return false;
    char *m = NULL;
    mlk_check_cstring(what, s.data(), s.size(), &m);
    *err = m ? m : "a string argument contains a NUL character";
    mlk_free(m);
    return true;
}

static inline Napi::Value StrOrNull(Napi::Env env, const char *s)
{
    if (!s) return env.Null();
    return Str(env, s);
}

static inline Napi::Value BufferCopy(Napi::Env env, const char *p, size_t n)
{
    return Napi::Buffer<char>::Copy(env, p ? p : "", n);
}

/* An owned array of C strings built from a JS array (or null/undefined). */
struct StrArray {
    std::vector<std::string> s;
    std::vector<const char *> p;
    bool From(Napi::Value v)
    {
        s.clear();
        p.clear();
        if (v.IsNull() || v.IsUndefined()) return true;
        if (!v.IsArray()) return false;
        Napi::Array a = v.As<Napi::Array>();
        uint32_t n = a.Length();
        s.reserve(n);
        for (uint32_t i = 0; i < n; i++) {
            Napi::Value e = a.Get(i);
            if (!e.IsString()) return false;
            s.push_back(ToUtf8(e));
        }
        for (auto &x : s) p.push_back(x.c_str());
        return true;
    }
    const char *const *ptrs() { return p.empty() ? nullptr : p.data(); }
    size_t size() const { return p.size(); }
};

/* Bytes of a Buffer/TypedArray/DataView/string argument (a string is taken as
 * UTF-8); `p` borrows the view's memory for the duration of the call. */
struct Bytes {
    std::string own;
    const char *p = nullptr;
    size_t n = 0;
    bool From(Napi::Value v)
    {
        if (v.IsNull() || v.IsUndefined()) return true;
        if (v.IsTypedArray()) {
            Napi::TypedArray t = v.As<Napi::TypedArray>();
            n = t.ByteLength();
            p = n ? (const char *)t.ArrayBuffer().Data() + t.ByteOffset() : "";
            return true;
        }
        if (v.IsDataView()) {
            Napi::DataView d = v.As<Napi::DataView>();
            n = d.ByteLength();
            p = n ? (const char *)d.ArrayBuffer().Data() + d.ByteOffset() : "";
            return true;
        }
        if (v.IsString()) {
            own = ToUtf8(v);
            p = own.data();
            n = own.size();
            return true;
        }
        return false;
    }
};

static inline bool IsNullish(Napi::Value v) { return v.IsNull() || v.IsUndefined(); }
static inline bool IsTrue(Napi::Value v) { return v.IsBoolean() && v.As<Napi::Boolean>().Value(); }

/* A reference to any JS value (Node-API before v10 references objects only). */
struct ValueRef {
    Napi::ObjectReference box;
    bool Empty() const { return box.IsEmpty(); }
    void Set(Napi::Env env, Napi::Value v)
    {
        Napi::Array a = Napi::Array::New(env, 1);
        a.Set((uint32_t)0, v);
        box = Napi::Persistent(a.As<Napi::Object>());
    }
    Napi::Value Get() const { return box.Value().Get((uint32_t)0); }
    void Reset() { box.Reset(); }
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
    void *p;
    const napi_type_tag *tag;
    void (*fr)(void *);
    std::vector<HookFn *> hooks;      /* sandbox builders: the hooks added to it */
};

/* The `ud` of one hook: the JS trampoline.  Held by the builder handle and
 * by each client created from it (the core copies `ud` into the client). */
struct HookFn {
    Env *env;
    Napi::FunctionReference fn;
    int refs = 1;
    int which = 0;   /* set by sandboxSetInterception: MLK_INTERCEPT_* */
};

static void HookUnref(HookFn *h)
{
    if (h && --h->refs == 0) {
        h->fn.Reset();
        delete h;
    }
}

struct Env {
    napi_env env = nullptr;
    uv_loop_t *loop = nullptr;
    Napi::ObjectReference resource;       /* async resource of our callback scopes */
    napi_async_context actx = nullptr;
    Napi::FunctionReference make_error;   /* (status, message, rpcCode, cause) -> Error */
    Napi::Reference<Napi::Float64Array> op_slot;   /* the op id of the last async call */
    double *op_data = nullptr;
    std::unordered_set<Box *> boxes;
    std::unordered_set<Client *> clients;
    std::unordered_set<Job *> jobs;
    std::unordered_set<PendingHook *> hook_calls;   /* hook tokens a promise will answer */
    bool gone = false;
    /* the spin before the loop sleeps (SpinArm): a prepare handle that
     * dispatches the client of the call started last, and an idle handle
     * that keeps the loop from blocking while answers keep coming */
    uv_prepare_t *spin = nullptr;
    uv_idle_t *keep = nullptr;
    Client *spin_cl = nullptr;
    uint64_t spin_since = 0;
};

static thread_local Env *tl_env = nullptr;

static void EnvMaybeDelete(Env *env)
{
    if (env->gone && env->jobs.empty() && env->boxes.empty()) delete env;
}

static void BoxFinalize(napi_env, void *data, void *)
{
    Box *b = (Box *)data;
    Env *env = b->env;
    env->boxes.erase(b);
    if (b->fr && b->p) b->fr(b->p);
    for (HookFn *h : b->hooks) HookUnref(h);
    delete b;
    EnvMaybeDelete(env);
}

static Napi::Value Wrap(Napi::Env env, void *p, const napi_type_tag *tag, void (*fr)(void *))
{
    if (!p) return env.Null();
    Env *e = tl_env;
    Napi::Object o = Napi::Object::New(env);
    Box *b = new Box{e, p, tag, fr, {}};
    if (napi_type_tag_object(env, o, tag) != napi_ok || napi_wrap(env, o, b, BoxFinalize, nullptr, nullptr) != napi_ok) {
        delete b;
        if (fr) fr(p);
        throw Napi::Error::New(env, "matchlock: cannot make a handle object");
    }
    e->boxes.insert(b);
    return o;
}

static Box *UnwrapBox(Napi::Env env, Napi::Value v, const napi_type_tag *tag)
{
    if (!v.IsObject()) return nullptr;
    bool ok = false;
    if (napi_check_object_type_tag(env, v, tag, &ok) != napi_ok || !ok) return nullptr;
    void *p = nullptr;
    if (napi_unwrap(env, v, &p) != napi_ok) return nullptr;
    return (Box *)p;
}

static void *Unwrap(Napi::Env env, Napi::Value v, const napi_type_tag *tag)
{
    Box *b = UnwrapBox(env, v, tag);
    return b ? b->p : nullptr;
}

/* An Error from the JS factory (MatchlockError subclasses live in JS). */
static Napi::Value MakeError(Env *e, int status, const char *msg, int rpc, Napi::Value cause = Napi::Value())
{
    Napi::Env env(e->env);
    if (!msg || !*msg) msg = mlk_strerror(status);
    if (!e->make_error.IsEmpty()) {
        try {
            return e->make_error.Call({Napi::Number::New(env, status), Str(env, msg), Napi::Number::New(env, rpc),
                                       cause.IsEmpty() ? env.Undefined() : cause});
        } catch (const Napi::Error &) {
            /* fall through to a plain Error */
        }
    }
    return Napi::Error::New(env, msg).Value();
}

static Napi::Value ResultError(Env *e, const mlk_result *res, int status)
{
    return MakeError(e, status, res ? mlk_result_message(res) : mlk_strerror(status), res ? mlk_result_rpc_code(res) : 0);
}

[[noreturn]] static void Throw(Napi::Env env, const char *msg) { throw Napi::TypeError::New(env, msg); }

/* The message of a thrown value, for error texts. */
static std::string ErrText(Napi::Value v)
{
    try {
        if (v.IsObject()) {
            Napi::Value m = v.As<Napi::Object>().Get("message");
            if (m.IsString()) return ToUtf8(m);
        }
        return v.ToString().Utf8Value();
    } catch (const Napi::Error &) {
        return std::string();
    }
}

/* ---- clients ------------------------------------------------------------------ */

struct Client {
    Env *env;
    mlk_client *c;            /* NULL once freed (close() completed, or teardown) */
    uv_poll_t *poll = nullptr;
    int pending = 0;          /* async requests (and referenced hook tokens) outstanding */
    int jobs = 0;             /* threadpool jobs using c */
    bool in_poll = false;
    bool release = false;     /* close() completed: free the C client as soon as nothing uses it */
    bool closed = false;      /* close started: hook tokens no longer keep the loop alive */
    std::string vm_id, tail;  /* kept when the C client is freed */
    Napi::ObjectReference handle;    /* weak: the JS handle, passed to hooks */
    Napi::FunctionReference on_event;
    std::vector<HookFn *> hooks;
    std::unordered_set<Req *> reqs;
    std::unordered_set<PendingHook *> tokens;
};

/* A hook token that a JS promise will answer. */
struct PendingHook {
    Env *env;
    Client *cl;               /* NULL once the client is freed */
    mlk_hook_call *call;
    bool reffed = false;
};

enum { R_EXEC_BUF, R_EXEC_STREAM, R_WRITE, R_READ, R_LIST, R_LOG_FOLLOW, R_DATA, R_MSGPACK, R_CLOSE };

struct Req {
    Client *cl;
    int kind;
    uint64_t op = 0;
    bool cb_failed = false;
    napi_deferred deferred = nullptr;
    Napi::ObjectReference client_obj;        /* keeps the client handle alive */
    Napi::FunctionReference on_output, on_ready;
    ValueRef user_error;
};

static void ClientRef(Client *cl)
{
    if (cl->pending++ == 0 && cl->poll) uv_ref((uv_handle_t *)cl->poll);
}

static void ClientUnref(Client *cl)
{
    if (--cl->pending == 0 && cl->poll) uv_unref((uv_handle_t *)cl->poll);
}

static void JobQueueFree(Env *env, mlk_client *c);
static void SpinStop(Env *e);

static void PollClosed(uv_handle_t *h) { free(h); }

/* Stop watching and free the C client.  `sync`: on this thread (a closed
 * client frees at once; teardown cannot wait); else on the threadpool (an
 * open client collected by GC is closed first, which may wait).  The Client
 * struct stays while the JS handle exists. */
static void ClientFreeC(Client *cl, bool sync)
{
    if (!cl->c) return;
    mlk_client *c = cl->c;
    const char *id = mlk_client_vm_id(c);
    cl->vm_id = id ? id : "";
    char *t = mlk_client_stderr_tail(c);
    cl->tail = t ? t : "";
    mlk_free(t);
    cl->c = nullptr;
    cl->env->clients.erase(cl);
    if (cl->env->spin_cl == cl) SpinStop(cl->env);
    if (cl->poll) {
        uv_poll_stop(cl->poll);
        uv_close((uv_handle_t *)cl->poll, PollClosed);
        cl->poll = nullptr;
    }
    if (sync) mlk_client_free(c);
    else JobQueueFree(cl->env, c);
    for (Req *r : cl->reqs) delete r;   /* only at teardown: dropped, never run */
    cl->reqs.clear();
    cl->pending = 0;
    for (PendingHook *ph : cl->tokens) ph->cl = nullptr;   /* still answerable: the token keeps the C client */
    cl->tokens.clear();
    for (HookFn *h : cl->hooks) HookUnref(h);
    cl->hooks.clear();
    cl->on_event.Reset();
}

/* After close() completed: free the C client once no dispatch, request or
 * job uses it. */
static void ClientMaybeRelease(Client *cl)
{
    if (cl->release && cl->c && cl->pending == 0 && cl->jobs == 0 && !cl->in_poll) ClientFreeC(cl, true);
}

/* Finalizer of a client handle (GC or teardown). */
static void ClientFinalize(void *p)
{
    Client *cl = (Client *)p;
    cl->handle.Reset();
    ClientFreeC(cl, cl->env->gone);
    delete cl;
}

/* The spin (issue 15).  An answer usually comes within tens of
 * microseconds of the request, and waking a sleeping loop costs about as
 * much again (an eventfd write, epoll, a context switch).  So after a call
 * starts, the loop's prepare phase (just before libuv would block) spins
 * up to 50 us for that client's callbacks (mlk_dispatch_wait(c, 0)) and
 * runs them; while that finds answers, the idle handle keeps the loop from
 * blocking, so the next call's answer is spun for too.  It stops, and the
 * loop sleeps on the client's fd as before, when a spin finds nothing or
 * the last call started more than 1 ms ago.  Neither handle keeps the
 * loop alive. */
static void SpinStop(Env *e)
{
    e->spin_cl = nullptr;
    if (e->spin) uv_prepare_stop(e->spin);
    if (e->keep) uv_idle_stop(e->keep);
}

static void OnKeep(uv_idle_t *) {}

static void OnSpin(uv_prepare_t *h)
{
    Env *e = (Env *)uv_handle_get_data((uv_handle_t *)h);
    Client *cl = e->spin_cl;
    if (!cl || !cl->c || cl->pending == 0 || cl->in_poll || uv_hrtime() - e->spin_since > 1000000) {
        SpinStop(e);
        return;
    }
    Napi::Env env(e->env);
    int n = 0;
    cl->in_poll = true;
    try {
        Napi::HandleScope hs(env);
        Napi::CallbackScope scope(env, e->actx);
        n = mlk_dispatch_wait(cl->c, 0);
    } catch (...) {
    }
    cl->in_poll = false;
    if (n <= 0 && e->spin_cl == cl) SpinStop(e);   /* (a new call re-armed it otherwise) */
    ClientMaybeRelease(cl);
}

static void SpinArm(Client *cl)
{
    Env *e = cl->env;
    if (e->gone) return;
    if (!e->spin) {
        e->spin = (uv_prepare_t *)malloc(uv_handle_size(MLK_UV_PREPARE));
        e->keep = (uv_idle_t *)malloc(uv_handle_size(MLK_UV_IDLE));
        if (!e->spin || !e->keep || uv_prepare_init(e->loop, e->spin) != 0) {
            free(e->spin);
            free(e->keep);
            e->spin = nullptr;
            e->keep = nullptr;
            return;
        }
        uv_idle_init(e->loop, e->keep);
        uv_handle_set_data((uv_handle_t *)e->spin, e);
        uv_unref((uv_handle_t *)e->spin);
        uv_unref((uv_handle_t *)e->keep);
    }
    e->spin_cl = cl;
    e->spin_since = uv_hrtime();
    uv_prepare_start(e->spin, OnSpin);
    uv_idle_start(e->keep, OnKeep);
}

static void SpinClosed(uv_handle_t *h) { free(h); }

static void OnPoll(uv_poll_t *h, int, int)
{
    Client *cl = (Client *)uv_handle_get_data((uv_handle_t *)h);
    Env *e = cl->env;
    Napi::Env env(e->env);
    cl->in_poll = true;
    try {
        Napi::HandleScope hs(env);
        Napi::CallbackScope scope(env, e->actx);
        mlk_dispatch(cl->c, 0);
    } catch (...) {
        /* the callbacks catch their own; a failing scope must not unwind into libuv */
    }
    cl->in_poll = false;
    ClientMaybeRelease(cl);
}

static Client *ArgClient(const Napi::CallbackInfo &a, int i = 0)
{
    Box *b = UnwrapBox(a.Env(), a[i], &kTagClient);
    if (!b) Throw(a.Env(), "matchlock: expected a client handle");
    return (Client *)b->p;
}

/* The refusal of a call the core did not take (rc != 0): a rejected promise. */
static std::string RefusedText(int rc, const char *what)
{
    std::string m = std::string(what) + ": " + mlk_strerror(rc);
    if (rc == MLK_ECLOSED) m += " (the client is closed; create a new Client)";
    return m;
}

static Napi::Value Rejected(Env *e, int rc, const char *what)
{
    Napi::Promise::Deferred d = Napi::Promise::Deferred::New(e->env);
    d.Reject(MakeError(e, rc, RefusedText(rc, what).c_str(), 0));
    return d.Promise();
}

/* The client of a call that needs the C client; one whose close() completed
 * (C client freed) gets MLK_ECLOSED, as the core answers a closed client. */
#define LIVE_CLIENT(cl, what)                                       \
    Client *cl = ArgClient(a);                                      \
    if (!cl->c) return Rejected(cl->env, MLK_ECLOSED, what)

/* clientNew(config|null) -> client handle; throws a MatchlockError. */
static Napi::Value ClientNew(const Napi::CallbackInfo &a)
{
    Napi::Env env = a.Env();
    Env *e = tl_env;
    const mlk_config *cfg = nullptr;
    if (!IsNullish(a[0])) {
        cfg = (const mlk_config *)Unwrap(env, a[0], &kTagConfig);
        if (!cfg) Throw(env, "matchlock: clientNew expects a config handle or null");
    }
    mlk_client *c = nullptr;
    mlk_result *res = nullptr;
    int rc = mlk_client_new(&c, cfg, &res);
    if (rc != 0) {
        Napi::Value err = ResultError(e, res, rc);
        mlk_result_free(res);
        throw Napi::Error(env, err.As<Napi::Object>());
    }
    mlk_result_free(res);
    Client *cl = new Client();
    cl->env = e;
    cl->c = c;
    cl->poll = (uv_poll_t *)malloc(uv_handle_size(MLK_UV_POLL));
    if (!cl->poll || uv_poll_init(e->loop, cl->poll, mlk_client_fd(c)) != 0) {
        free(cl->poll);
        mlk_client_free(c);
        delete cl;
        Throw(env, "matchlock: cannot watch the client's notification fd (uv_poll_init failed)");
    }
    uv_handle_set_data((uv_handle_t *)cl->poll, cl);
    uv_poll_start(cl->poll, MLK_UV_READABLE, OnPoll);
    uv_unref((uv_handle_t *)cl->poll);
    e->clients.insert(cl);
    Napi::Value h = Wrap(env, cl, &kTagClient, ClientFinalize);
    cl->handle = Napi::Weak(h.As<Napi::Object>());
    return h;
}

static Napi::Value ClientVmId(const Napi::CallbackInfo &a)
{
    Client *cl = ArgClient(a);
    if (!cl->c) return cl->vm_id.empty() ? a.Env().Null() : (Napi::Value)Str(a.Env(), cl->vm_id.c_str());
    return StrOrNull(a.Env(), mlk_client_vm_id(cl->c));
}

static Napi::Value ClientStderrTail(const Napi::CallbackInfo &a)
{
    Client *cl = ArgClient(a);
    if (!cl->c) return Str(a.Env(), cl->tail.c_str(), cl->tail.size());
    char *s = mlk_client_stderr_tail(cl->c);
    Napi::Value v = Str(a.Env(), s ? s : "");
    mlk_free(s);
    return v;
}

/* ---- async requests ---------------------------------------------------------- */

static Napi::Value DoneValue(Napi::Env env, int kind, const mlk_result *res)
{
    size_t n = 0;
    const char *p;
    switch (kind) {
    case R_EXEC_BUF:
    case R_EXEC_STREAM: {
        Napi::Object o = Napi::Object::New(env);
        o.Set("exitCode", Napi::Number::New(env, mlk_result_exit_code(res)));
        if (kind == R_EXEC_BUF) {
            p = mlk_result_stdout(res, &n);
            o.Set("stdout", BufferCopy(env, p, n));
            p = mlk_result_stderr(res, &n);
            o.Set("stderr", BufferCopy(env, p, n));
        }
        o.Set("durationMs", Napi::Number::New(env, (double)mlk_result_duration_ms(res)));
        return o;
    }
    case R_READ:
        p = mlk_result_data(res, &n);
        return BufferCopy(env, p, n);
    case R_LIST:
    case R_MSGPACK:
        p = mlk_result_msgpack(res, &n);
        return p ? BufferCopy(env, p, n) : env.Null();
    case R_DATA:
        p = mlk_result_data(res, &n);
        return p ? BufferCopy(env, p, n) : env.Null();
    default:
        return env.Undefined();
    }
}

static void Settle(napi_env env, napi_deferred d, bool ok, Napi::Value v)
{
    if (ok) napi_resolve_deferred(env, d, v);
    else napi_reject_deferred(env, d, v);
}

static void OnDone(void *ud, uint64_t, const mlk_result *res)
{
    Req *r = (Req *)ud;
    Client *cl = r->cl;
    Env *e = cl->env;
    Napi::Env env(e->env);
    try {
        Napi::HandleScope hs(env);
        int st = mlk_result_status(res);
        if (!r->user_error.Empty()) {
            Napi::Value cause = r->user_error.Get();
            std::string m = "a callback threw, so the call was cancelled: " + ErrText(cause);
            Settle(env, r->deferred, false, MakeError(e, MLK_EUSER, m.c_str(), 0, cause));
        } else if (st != 0) {
            Settle(env, r->deferred, false, ResultError(e, res, st));
        } else {
            Settle(env, r->deferred, true, DoneValue(env, r->kind, res));
        }
    } catch (...) {
    }
    /* Closed: nothing needs the C client any more (remove() goes by config
     * and vm id, removeVm), so it and its notification fd go now. */
    if (r->kind == R_CLOSE) cl->release = true;
    cl->reqs.erase(r);
    delete r;
    ClientUnref(cl);
}

static void CallbackFailed(Req *r, const Napi::Error &err)
{
    r->cb_failed = true;
    try {
        r->user_error.Set(err.Env(), err.Value());
    } catch (...) {
        return;   /* the environment is terminating */
    }
    mlk_cancel(r->cl->c, r->op);
}

static void OnOutput(void *ud, uint64_t, int fd, const char *data, size_t len)
{
    Req *r = (Req *)ud;
    if (r->cb_failed || r->on_output.IsEmpty()) return;
    Napi::Env env(r->cl->env->env);
    try {
        Napi::HandleScope hs(env);
        r->on_output.Call({Napi::Number::New(env, fd), BufferCopy(env, data, len)});
    } catch (const Napi::Error &err) {
        CallbackFailed(r, err);
    } catch (...) {
    }
}

static void OnReady(void *ud, uint64_t)
{
    Req *r = (Req *)ud;
    if (r->cb_failed || r->on_ready.IsEmpty()) return;
    Napi::Env env(r->cl->env->env);
    try {
        Napi::HandleScope hs(env);
        r->on_ready.Call({});
    } catch (const Napi::Error &err) {
        CallbackFailed(r, err);
    } catch (...) {
    }
}

/* A Req and its promise. */
static Req *NewReq(const Napi::CallbackInfo &a, Client *cl, int kind, Napi::Value *promise)
{
    Req *r = new Req();
    r->cl = cl;
    r->kind = kind;
    napi_value p;
    if (napi_create_promise(a.Env(), &r->deferred, &p) != napi_ok) {
        delete r;
        throw Napi::Error::New(a.Env(), "matchlock: cannot create a promise");
    }
    *promise = Napi::Value(a.Env(), p);
    r->client_obj = Napi::Persistent(a[0].As<Napi::Object>());
    return r;
}

/* The call was submitted (rc 0: the Req now waits for OnDone) or refused. */
static Napi::Value Started(Req *r, Napi::Value promise, int rc, uint64_t op, const char *what)
{
    Env *e = r->cl->env;
    if (rc != 0) {
        Settle(e->env, r->deferred, false, MakeError(e, rc, RefusedText(rc, what).c_str(), 0));
        delete r;
    } else {
        r->op = op;
        r->cl->reqs.insert(r);
        ClientRef(r->cl);
        SpinArm(r->cl);
        e->op_data[0] = (double)op;
    }
    return promise;
}

static int64_t ArgInt64(const Napi::CallbackInfo &a, size_t i)
{
    if (!a[i].IsNumber()) return 0;
    double d = a[i].As<Napi::Number>().DoubleValue();
    return std::isfinite(d) && d > 0 ? (int64_t)d : 0;
}

static uint64_t ArgOp(const Napi::CallbackInfo &a, size_t i)
{
    return a[i].IsNumber() ? (uint64_t)a[i].As<Napi::Number>().DoubleValue() : 0;
}

/* exec(client, command, mode, workingDir, user, timeoutMs, rows, cols,
 *      stdin, interactive, onOutput(fd, buf), onReady()) -> Promise */
static Napi::Value Exec(const Napi::CallbackInfo &a)
{
    Napi::Env env = a.Env();
    LIVE_CLIENT(cl, "exec");
    if (!a[1].IsString()) Throw(env, "exec: the command must be a string");
    std::string cmd = ToUtf8(a[1]);
    int mode = a[2].IsNumber() ? a[2].As<Napi::Number>().Int32Value() : 0;
    Bytes in;
    if (!in.From(a[8])) Throw(env, "exec: stdin must be a Buffer, Uint8Array or string");
    std::string wd = a[3].IsString() ? ToUtf8(a[3]) : std::string();
    std::string user = a[4].IsString() ? ToUtf8(a[4]) : std::string();
    mlk_exec_opts *o = mlk_exec_opts_new();
    if (!o) Throw(env, "exec: out of memory");
    mlk_exec_opts_set_mode(o, mode);
    if (a[3].IsString()) mlk_exec_opts_set_working_dir(o, wd.c_str());
    if (a[4].IsString()) mlk_exec_opts_set_user(o, user.c_str());
    mlk_exec_opts_set_timeout_ms(o, ArgInt64(a, 5));
    if (mode == MLK_EXEC_TTY) mlk_exec_opts_set_tty_size(o, (uint16_t)ArgInt64(a, 6), (uint16_t)ArgInt64(a, 7));
    if (in.p) mlk_exec_opts_set_stdin(o, in.p, in.n);
    if (IsTrue(a[9])) mlk_exec_opts_set_interactive_stdin(o, 1);
    Napi::Value promise;
    Req *r = NewReq(a, cl, mode == MLK_EXEC_BUFFERED ? R_EXEC_BUF : R_EXEC_STREAM, &promise);
    bool out = a[10].IsFunction(), ready = a[11].IsFunction();
    if (out) r->on_output = Napi::Persistent(a[10].As<Napi::Function>());
    if (ready) r->on_ready = Napi::Persistent(a[11].As<Napi::Function>());
    mlk_exec_opts_set_callbacks(o, out ? OnOutput : nullptr, ready ? OnReady : nullptr, r);
    uint64_t op = 0;
    int rc = mlk_exec_async(cl->c, cmd.c_str(), o, OnDone, r, &op);
    mlk_exec_opts_free(o);
    return Started(r, promise, rc, op, "exec");
}

/* writeFile(client, path, data, mode, timeoutMs) -> Promise<undefined> */
static Napi::Value WriteFile(const Napi::CallbackInfo &a)
{
    Napi::Env env = a.Env();
    LIVE_CLIENT(cl, "writeFile");
    if (!a[1].IsString()) Throw(env, "writeFile: the path must be a string");
    Bytes data;
    if (!data.From(a[2])) Throw(env, "writeFile: content must be a Buffer, Uint8Array or string");
    std::string path = ToUtf8(a[1]);
    uint32_t mode = a[3].IsNumber() ? a[3].As<Napi::Number>().Uint32Value() : 0;
    Napi::Value promise;
    Req *r = NewReq(a, cl, R_WRITE, &promise);
    uint64_t op = 0;
    /* The core copies the bytes into the request line before returning. */
    int rc = mlk_write_file_async(cl->c, path.c_str(), data.p, data.n, mode, ArgInt64(a, 4), OnDone, r, &op);
    return Started(r, promise, rc, op, "writeFile");
}

static Napi::Value PathCall(const Napi::CallbackInfo &a, int kind)
{
    const char *what = kind == R_READ ? "readFile" : "listFiles";
    LIVE_CLIENT(cl, what);
    if (!a[1].IsString()) Throw(a.Env(), "readFile/listFiles: the path must be a string");
    std::string path = ToUtf8(a[1]);
    Napi::Value promise;
    Req *r = NewReq(a, cl, kind, &promise);
    uint64_t op = 0;
    int rc = kind == R_READ ? mlk_read_file_async(cl->c, path.c_str(), ArgInt64(a, 2), OnDone, r, &op)
                            : mlk_list_files_async(cl->c, path.c_str(), ArgInt64(a, 2), OnDone, r, &op);
    return Started(r, promise, rc, op, what);
}

static Napi::Value ReadFile(const Napi::CallbackInfo &a) { return PathCall(a, R_READ); }
static Napi::Value ListFiles(const Napi::CallbackInfo &a) { return PathCall(a, R_LIST); }

/* logFollow(client, onOutput(fd, buf)) -> Promise<undefined> */
static Napi::Value LogFollow(const Napi::CallbackInfo &a)
{
    LIVE_CLIENT(cl, "logStream");
    Napi::Value promise;
    Req *r = NewReq(a, cl, R_LOG_FOLLOW, &promise);
    if (a[1].IsFunction()) r->on_output = Napi::Persistent(a[1].As<Napi::Function>());
    uint64_t op = 0;
    int rc = mlk_log_follow_async(cl->c, OnOutput, OnDone, r, &op);
    return Started(r, promise, rc, op, "logStream");
}

/* The stdin / TTY / cancel calls on a running op: a closed client gets
 * MLK_ECLOSED as the result code, like the core's answer. */
static Napi::Value Code(Napi::Env env, int rc) { return Napi::Number::New(env, rc); }

/* stdinWrite(client, op, data) -> 0 | MLK_EAGAIN | code */
static Napi::Value StdinWrite(const Napi::CallbackInfo &a)
{
    Client *cl = ArgClient(a);
    Bytes data;
    if (!data.From(a[2])) Throw(a.Env(), "stdin chunks must be Buffer, Uint8Array or string");
    return Code(a.Env(), cl->c ? mlk_stdin_write(cl->c, ArgOp(a, 1), data.p, data.n) : MLK_ECLOSED);
}

static Napi::Value StdinClose(const Napi::CallbackInfo &a)
{
    Client *cl = ArgClient(a);
    return Code(a.Env(), cl->c ? mlk_stdin_close(cl->c, ArgOp(a, 1)) : MLK_ECLOSED);
}

static Napi::Value TtyResize(const Napi::CallbackInfo &a)
{
    Client *cl = ArgClient(a);
    return Code(a.Env(), cl->c ? mlk_tty_resize(cl->c, ArgOp(a, 1), (uint16_t)ArgInt64(a, 2), (uint16_t)ArgInt64(a, 3))
                               : MLK_ECLOSED);
}

static Napi::Value Cancel(const Napi::CallbackInfo &a)
{
    Client *cl = ArgClient(a);
    return Code(a.Env(), cl->c ? mlk_cancel(cl->c, ArgOp(a, 1)) : MLK_ECLOSED);
}

/* ---- lifecycle, logs, network: the core's async calls ------------------------- */

/* create(client, sandbox, launch, timeoutMs) -> Promise<Buffer vm id>.  The
 * core renders the params and copies the hooks before returning, so the
 * builder may change (or be collected) at once.  The client takes a
 * reference on the builder's hooks: their `ud` now lives in the client. */
static Napi::Value Create(const Napi::CallbackInfo &a)
{
    bool launch = IsTrue(a[2]);
    LIVE_CLIENT(cl, launch ? "launch" : "create");
    Box *sbb = UnwrapBox(a.Env(), a[1], &kTagSandbox);
    if (!sbb) Throw(a.Env(), "create: expected a sandbox builder handle");
    for (HookFn *h : sbb->hooks) {
        h->refs++;
        cl->hooks.push_back(h);
    }
    Napi::Value promise;
    Req *r = NewReq(a, cl, R_DATA, &promise);
    uint64_t op = 0;
    const mlk_sandbox *sb = (const mlk_sandbox *)sbb->p;
    int rc = launch ? mlk_launch_async(cl->c, sb, ArgInt64(a, 3), OnDone, r, &op)
                    : mlk_create_async(cl->c, sb, ArgInt64(a, 3), OnDone, r, &op);
    return Started(r, promise, rc, op, launch ? "launch" : "create");
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

/* close(client, timeoutSeconds) -> Promise<undefined>.  When it completes,
 * the C client is freed (every descriptor released) without waiting for GC. */
static Napi::Value Close(const Napi::CallbackInfo &a)
{
    Client *cl = ArgClient(a);
    if (!cl->c) {
        Napi::Promise::Deferred d = Napi::Promise::Deferred::New(a.Env());
        d.Resolve(a.Env().Undefined());
        return d.Promise();
    }
    double t = a[1].IsNumber() ? a[1].As<Napi::Number>().DoubleValue() : 0;
    if (!std::isfinite(t) || t < 0) t = 0;
    Napi::Value promise;
    Req *r = NewReq(a, cl, R_CLOSE, &promise);
    uint64_t op = 0;
    int rc = mlk_close_async(cl->c, t, OnDone, r, &op);
    Napi::Value p = Started(r, promise, rc, op, "close");
    cl->closed = true;
    ClientUnrefTokens(cl);
    return p;
}

static Napi::Value Remove(const Napi::CallbackInfo &a)
{
    LIVE_CLIENT(cl, "remove");
    Napi::Value promise;
    Req *r = NewReq(a, cl, R_DATA, &promise);
    uint64_t op = 0;
    int rc = mlk_remove_async(cl->c, OnDone, r, &op);
    return Started(r, promise, rc, op, "remove");
}

/* log(client, timeoutMs) -> Promise<Buffer> */
static Napi::Value Log(const Napi::CallbackInfo &a)
{
    LIVE_CLIENT(cl, "log");
    Napi::Value promise;
    Req *r = NewReq(a, cl, R_DATA, &promise);
    uint64_t op = 0;
    int rc = mlk_log_async(cl->c, ArgInt64(a, 1), OnDone, r, &op);
    return Started(r, promise, rc, op, "log");
}

/* allowList(client, add, hosts[], timeoutMs) -> Promise<Buffer msgpack> */
static Napi::Value AllowList(const Napi::CallbackInfo &a)
{
    bool add = IsTrue(a[1]);
    LIVE_CLIENT(cl, add ? "allowListAdd" : "allowListDelete");
    StrArray hosts;
    if (!hosts.From(a[2])) Throw(a.Env(), "allowList: hosts must be an array of strings");
    Napi::Value promise;
    Req *r = NewReq(a, cl, R_MSGPACK, &promise);
    uint64_t op = 0;
    int rc = add ? mlk_allow_list_add_async(cl->c, hosts.ptrs(), hosts.size(), ArgInt64(a, 3), OnDone, r, &op)
                 : mlk_allow_list_delete_async(cl->c, hosts.ptrs(), hosts.size(), ArgInt64(a, 3), OnDone, r, &op);
    return Started(r, promise, rc, op, add ? "allowListAdd" : "allowListDelete");
}

/* portForward(client, specs[], addrs[], timeoutMs) -> Promise<Buffer msgpack> */
static Napi::Value PortForward(const Napi::CallbackInfo &a)
{
    LIVE_CLIENT(cl, "portForward");
    StrArray specs, addrs;
    if (!specs.From(a[1]) || !addrs.From(a[2])) Throw(a.Env(), "portForward: specs and addresses must be arrays of strings");
    Napi::Value promise;
    Req *r = NewReq(a, cl, R_MSGPACK, &promise);
    uint64_t op = 0;
    int rc = mlk_port_forward_async(cl->c, specs.ptrs(), specs.size(), addrs.ptrs(), addrs.size(), ArgInt64(a, 3),
                                    OnDone, r, &op);
    return Started(r, promise, rc, op, "portForward");
}

/* ---- volumes: through a client (async), or on the threadpool without one -------- */

enum { J_VOL_CREATE, J_VOL_LIST, J_VOL_RM, J_RM_VM, J_FREE };

struct Job {
    napi_async_work w = nullptr;
    Env *env;
    int kind;
    mlk_client *free_c = nullptr;
    const mlk_config *cfg = nullptr;
    int64_t size = 0;
    std::string s;
    mlk_result *res = nullptr;
    int rc = 0;
    napi_deferred deferred = nullptr;
    Napi::ObjectReference keep;       /* the config handle the job reads */
};

static void JobWork(napi_env, void *data)
{
    Job *j = (Job *)data;
    switch (j->kind) {
    case J_VOL_CREATE: j->rc = mlk_volume_create(j->cfg, j->s.c_str(), j->size, &j->res); break;
    case J_VOL_LIST: j->rc = mlk_volume_list(j->cfg, &j->res); break;
    case J_VOL_RM: j->rc = mlk_volume_remove(j->cfg, j->s.c_str(), &j->res); break;
    case J_RM_VM: j->rc = mlk_remove_vm(j->cfg, j->s.c_str(), &j->res); break;
    case J_FREE: mlk_client_free(j->free_c); break;
    }
}

/* Runs on the loop thread inside a handle and callback scope (Node-API). */
static void JobAfter(napi_env nenv, napi_status status, void *data)
{
    Job *j = (Job *)data;
    Env *e = j->env;
    e->jobs.erase(j);
    if (j->kind != J_FREE && !e->gone && status == napi_ok) {
        Napi::Env env(nenv);
        try {
            int st = j->res ? mlk_result_status(j->res) : j->rc;
            if (st != 0) {
                Settle(nenv, j->deferred, false, ResultError(e, j->res, st));
            } else {
                size_t n = 0;
                const char *p = j->res ? mlk_result_msgpack(j->res, &n) : nullptr;
                Settle(nenv, j->deferred, true, p ? BufferCopy(env, p, n) : env.Null());
            }
        } catch (...) {
        }
    }
    if (!e->gone) {
        j->keep.Reset();
        napi_delete_async_work(nenv, j->w);
    } else {
        j->keep.SuppressDestruct();
    }
    mlk_result_free(j->res);
    delete j;
    EnvMaybeDelete(e);
}

static bool JobQueue(Job *j)
{
    Env *e = j->env;
    napi_value name;
    if (napi_create_string_utf8(e->env, "matchlock", NAPI_AUTO_LENGTH, &name) != napi_ok ||
        napi_create_async_work(e->env, nullptr, name, JobWork, JobAfter, j, &j->w) != napi_ok)
        return false;
    if (napi_queue_async_work(e->env, j->w) != napi_ok) {
        napi_delete_async_work(e->env, j->w);
        return false;
    }
    e->jobs.insert(j);
    return true;
}

static void JobQueueFree(Env *e, mlk_client *c)
{
    if (e->gone) {
        mlk_client_free(c);
        return;
    }
    Job *j = new Job();
    j->env = e;
    j->kind = J_FREE;
    j->free_c = c;
    if (!JobQueue(j)) {
        mlk_client_free(c);
        delete j;
    }
}

/* Start a job whose promise is returned; the caller filled the inputs. */
static Napi::Value JobStart(const Napi::CallbackInfo &a, Job *j)
{
    napi_value p;
    if (napi_create_promise(a.Env(), &j->deferred, &p) != napi_ok) {
        delete j;
        throw Napi::Error::New(a.Env(), "matchlock: cannot create a promise");
    }
    if (!JobQueue(j)) {
        Settle(a.Env(), j->deferred, false, MakeError(j->env, MLK_ENOMEM, "cannot queue work on the libuv threadpool", 0));
        delete j;
    }
    return Napi::Value(a.Env(), p);
}

/* Volume calls take a client handle (async through it) or a config handle /
 * null (threadpool).  Returns the promise when it started the call through a client. */
static Napi::Value VolumeViaClient(const Napi::CallbackInfo &a, int kind)
{
    Box *b = UnwrapBox(a.Env(), a[0], &kTagClient);
    if (!b) return Napi::Value();
    const char *what = kind == J_VOL_CREATE ? "volumeCreate" : kind == J_VOL_LIST ? "volumeList" : "volumeRemove";
    LIVE_CLIENT(cl, what);
    std::string name = a[1].IsString() ? ToUtf8(a[1]) : std::string();
    Napi::Value promise;
    Req *r = NewReq(a, cl, R_MSGPACK, &promise);
    uint64_t op = 0;
    int rc;
    switch (kind) {
    case J_VOL_CREATE: rc = mlk_volume_create_async(cl->c, name.c_str(), ArgInt64(a, 2), OnDone, r, &op); break;
    case J_VOL_LIST: rc = mlk_volume_list_async(cl->c, OnDone, r, &op); break;
    default: rc = mlk_volume_remove_async(cl->c, name.c_str(), OnDone, r, &op); break;
    }
    return Started(r, promise, rc, op, what);
}

static Job *VolumeJob(const Napi::CallbackInfo &a, int kind)
{
    const mlk_config *cfg = nullptr;
    if (!IsNullish(a[0])) {
        cfg = (const mlk_config *)Unwrap(a.Env(), a[0], &kTagConfig);
        if (!cfg) Throw(a.Env(), kind == J_RM_VM ? "removeVm expects a config handle or null"
                                                 : "volume calls expect a client handle, a config handle or null");
    }
    Job *j = new Job();
    j->env = tl_env;
    j->kind = kind;
    j->cfg = cfg;
    if (cfg) j->keep = Napi::Persistent(a[0].As<Napi::Object>());
    j->s = a[1].IsString() ? ToUtf8(a[1]) : std::string();
    j->size = ArgInt64(a, 2);
    return j;
}

static Napi::Value Volume(const Napi::CallbackInfo &a, int kind)
{
    Napi::Value v = VolumeViaClient(a, kind);
    if (!v.IsEmpty()) return v;
    return JobStart(a, VolumeJob(a, kind));
}

/* volumeCreate(client|config, name, sizeMb), volumeList(client|config), volumeRemove(client|config, name) */
static Napi::Value VolumeCreate(const Napi::CallbackInfo &a) { return Volume(a, J_VOL_CREATE); }
static Napi::Value VolumeList(const Napi::CallbackInfo &a) { return Volume(a, J_VOL_LIST); }
static Napi::Value VolumeRemove(const Napi::CallbackInfo &a) { return Volume(a, J_VOL_RM); }
/* removeVm(config|null, vmId) -> Promise: `matchlock rm` on the threadpool,
 * no client needed (remove() after close, once the C client is freed). */
static Napi::Value RemoveVm(const Napi::CallbackInfo &a) { return JobStart(a, VolumeJob(a, J_RM_VM)); }

/* ---- hooks ------------------------------------------------------------------------ */

static Client *FindClient(Env *e, mlk_client *c)
{
    for (Client *cl : e->clients)
        if (cl->c == c) return cl;
    return nullptr;
}

/* Answer a token with the trampoline's value: a Buffer of msgpack. */
static void HookAnswer(mlk_hook_call *call, Napi::Value v)
{
    Bytes b;
    if (!v.IsString() && b.From(v)) mlk_hook_reply(call, b.n ? b.p : nullptr, b.n);
    else mlk_hook_fail(call, "matchlock-native: the hook trampoline answered something that is not msgpack bytes");
}

static void PendingHookDone(PendingHook *ph)
{
    Client *cl = ph->cl;
    if (cl) {
        cl->tokens.erase(ph);
        if (ph->reffed) ClientUnref(cl);
        ClientMaybeRelease(cl);
    }
    ph->env->hook_calls.erase(ph);
    delete ph;
}

static Napi::Value HookFulfilled(const Napi::CallbackInfo &a)
{
    PendingHook *ph = (PendingHook *)a.Data();
    mlk_hook_call *call = ph->call;
    ph->call = nullptr;
    if (call) HookAnswer(call, a[0]);
    PendingHookDone(ph);
    return a.Env().Undefined();
}

static Napi::Value HookRejected(const Napi::CallbackInfo &a)
{
    PendingHook *ph = (PendingHook *)a.Data();
    mlk_hook_call *call = ph->call;
    ph->call = nullptr;
    if (call) {
        std::string m = ErrText(a[0]);
        mlk_hook_fail(call, m.empty() ? "the hook's promise was rejected" : m.c_str());
    }
    PendingHookDone(ph);
    return a.Env().Undefined();
}

/* The core's hook callback: runs from mlk_dispatch inside OnPoll. */
static void HookCb(void *ud, mlk_client *c, int kind, mlk_hook_call *call, const char *req, size_t len)
{
    HookFn *hf = (HookFn *)ud;
    Env *e = hf->env;
    Client *cl = e->gone ? nullptr : FindClient(e, c);
    if (!cl || hf->fn.IsEmpty()) {
        if (call) mlk_hook_fail(call, "matchlock-native: the hook's JavaScript environment is gone");
        return;
    }
    Napi::Env env(e->env);
    PendingHook *ph = nullptr;
    try {
        Napi::HandleScope hs(env);
        Napi::Value h = env.Null();
        if (!cl->handle.IsEmpty()) {
            Napi::Object o = cl->handle.Value();
            if (!o.IsEmpty()) h = o;
        }
        Napi::Value ret;
        try {
            ret = hf->fn.Call({BufferCopy(env, req, len), h, Napi::Number::New(env, kind)});
        } catch (const Napi::Error &err) {
            if (call) {
                std::string m = ErrText(err.Value());
                mlk_hook_fail(call, m.empty() ? "the hook threw" : m.c_str());
            }
            return;
        }
        if (!call) return;
        if (!ret.IsPromise()) {
            HookAnswer(call, ret);
            return;
        }
        ph = new PendingHook();
        ph->env = e;
        ph->cl = cl;
        ph->call = call;
        e->hook_calls.insert(ph);
        cl->tokens.insert(ph);
        if (!cl->closed) {
            ph->reffed = true;
            ClientRef(cl);
        }
        Napi::Function ok = Napi::Function::New(env, HookFulfilled, "hookFulfilled", ph);
        Napi::Function bad = Napi::Function::New(env, HookRejected, "hookRejected", ph);
        ret.As<Napi::Object>().Get("then").As<Napi::Function>().Call(ret, {ok, bad});
    } catch (...) {
        if (ph) {
            if (ph->call) mlk_hook_fail(ph->call, "matchlock-native: cannot wait for the hook's promise");
            ph->call = nullptr;
            PendingHookDone(ph);
        } else if (call) {
            mlk_hook_fail(call, "matchlock-native: the hook could not run");
        }
    }
}

/* sandboxAddHook(sandbox, kind, ruleMsgpack|null, trampoline) -> 0 | MLK_E* */
static Napi::Value SandboxAddHook(const Napi::CallbackInfo &a)
{
    Napi::Env env = a.Env();
    Box *b = UnwrapBox(env, a[0], &kTagSandbox);
    if (!b) Throw(env, "sandboxAddHook: expected a sandbox builder handle");
    int kind = a[1].IsNumber() ? a[1].As<Napi::Number>().Int32Value() : 0;
    Bytes rule;
    if (!rule.From(a[2])) Throw(env, "sandboxAddHook: the rule must be a Buffer of msgpack");
    if (!a[3].IsFunction()) Throw(env, "sandboxAddHook: the hook must be a function");
    HookFn *hf = new HookFn();
    hf->env = tl_env;
    hf->fn = Napi::Persistent(a[3].As<Napi::Function>());
    mlk_sandbox *sb = (mlk_sandbox *)b->p;
    int rc = kind == MLK_HOOK_NETWORK ? mlk_sandbox_add_network_hook(sb, rule.p, rule.n, HookCb, hf)
                                      : mlk_sandbox_add_vfs_hook(sb, kind, rule.p, rule.n, HookCb, hf);
    if (rc == 0) b->hooks.push_back(hf);
    else HookUnref(hf);
    return Code(env, rc);
}

/* sandboxSetInterception(sandbox, which, configMsgpack|null, [trampoline...]) -> 0 | MLK_E*:
 * a whole interception config (mlk_sandbox_set_interception); the n-th
 * callback rule runs trampoline n.  On success the builder's earlier hooks
 * of that config kind are let go (clients made before keep theirs). */
static Napi::Value SandboxSetInterception(const Napi::CallbackInfo &a)
{
    Napi::Env env = a.Env();
    Box *b = UnwrapBox(env, a[0], &kTagSandbox);
    if (!b) Throw(env, "sandboxSetInterception: expected a sandbox builder handle");
    int which = a[1].IsNumber() ? a[1].As<Napi::Number>().Int32Value() : 0;
    Bytes cfg;
    if (!cfg.From(a[2])) Throw(env, "sandboxSetInterception: the config must be a Buffer of msgpack");
    if (!a[3].IsArray()) Throw(env, "sandboxSetInterception: expected an array of trampolines");
    Napi::Array fns = a[3].As<Napi::Array>();
    std::vector<HookFn *> hs;
    std::vector<void *> uds;
    for (uint32_t i = 0; i < fns.Length(); i++) {
        Napi::Value f = fns.Get(i);
        if (!f.IsFunction()) {
            for (HookFn *h : hs) HookUnref(h);
            Throw(env, "sandboxSetInterception: every trampoline must be a function");
        }
        HookFn *hf = new HookFn();
        hf->env = tl_env;
        hf->fn = Napi::Persistent(f.As<Napi::Function>());
        hf->which = which;
        hs.push_back(hf);
        uds.push_back(hf);
    }
    mlk_sandbox *sb = (mlk_sandbox *)b->p;
    int rc = mlk_sandbox_set_interception(sb, which, cfg.p, cfg.n, HookCb, uds.empty() ? nullptr : uds.data(),
                                          uds.size());
    if (rc == 0 && cfg.p && cfg.n) {
        std::vector<HookFn *> keep;
        for (HookFn *h : b->hooks) {
            if (h->which == which) HookUnref(h);
            else keep.push_back(h);
        }
        b->hooks.swap(keep);
        for (HookFn *h : hs) b->hooks.push_back(h);
    } else {
        for (HookFn *h : hs) HookUnref(h);
    }
    return Code(env, rc);
}

/* ---- events ------------------------------------------------------------------------ */

static void EventCb(void *ud, const char *mp, size_t len)
{
    Client *cl = (Client *)ud;
    if (cl->on_event.IsEmpty()) return;
    Napi::Env env(cl->env->env);
    try {   /* the JS side reports its own errors; never propagate */
        Napi::HandleScope hs(env);
        cl->on_event.Call({BufferCopy(env, mp, len)});
    } catch (...) {
    }
}

/* clientSetEventCb(client, fn|null) -> 0 | MLK_E* */
static Napi::Value ClientSetEventCb(const Napi::CallbackInfo &a)
{
    Client *cl = ArgClient(a);
    if (!cl->c) return Code(a.Env(), MLK_ECLOSED);
    if (a[1].IsFunction()) {
        cl->on_event = Napi::Persistent(a[1].As<Napi::Function>());
        return Code(a.Env(), mlk_client_set_event_cb(cl->c, EventCb, cl));
    }
    cl->on_event.Reset();
    return Code(a.Env(), mlk_client_set_event_cb(cl->c, nullptr, nullptr));
}

/* setup(makeError) -> Float64Array(1) where async calls leave their op id */
static Napi::Value Setup(const Napi::CallbackInfo &a)
{
    Env *e = tl_env;
    if (a[0].IsFunction()) e->make_error = Napi::Persistent(a[0].As<Napi::Function>());
    return e->op_slot.Value();
}

/* Pending work counters, for tests of handle leaks. */
static Napi::Value Stats(const Napi::CallbackInfo &a)
{
    Napi::Env env = a.Env();
    Env *e = tl_env;
    int pending = 0;
    for (Client *cl : e->clients) pending += cl->pending;
    Napi::Object o = Napi::Object::New(env);
    o.Set("clients", Napi::Number::New(env, (double)e->clients.size()));
    o.Set("pending", Napi::Number::New(env, pending));
    o.Set("jobs", Napi::Number::New(env, (double)e->jobs.size()));
    o.Set("handles", Napi::Number::New(env, (double)e->boxes.size()));
    o.Set("hookCalls", Napi::Number::New(env, (double)e->hook_calls.size()));
    return o;
}

/* ---- environment lifetime ----------------------------------------------------- */

/* The environment ends (process exit or worker termination): free every C
 * client now; the handles' finalizers, which Node-API runs after this hook,
 * free the rest and finally the Env. */
static void Cleanup(void *arg)
{
    Env *e = (Env *)arg;
    e->gone = true;
    std::vector<Client *> cls(e->clients.begin(), e->clients.end());
    for (Client *cl : cls) ClientFreeC(cl, true);
    if (e->spin) {
        SpinStop(e);
        uv_close((uv_handle_t *)e->spin, SpinClosed);
        uv_close((uv_handle_t *)e->keep, SpinClosed);
        e->spin = nullptr;
        e->keep = nullptr;
    }
    /* Tokens a promise would have answered: no JS runs any more. */
    std::vector<PendingHook *> phs(e->hook_calls.begin(), e->hook_calls.end());
    e->hook_calls.clear();
    for (PendingHook *ph : phs) {
        if (ph->call) mlk_hook_fail(ph->call, "the Node environment ended before the hook answered");
        delete ph;
    }
    if (e->actx) napi_async_destroy(e->env, e->actx);
    e->actx = nullptr;
    e->resource.Reset();
    e->make_error.Reset();
    e->op_slot.Reset();
    if (tl_env == e) tl_env = nullptr;
    EnvMaybeDelete(e);
}

static void Init(Napi::Env env, Napi::Object exports)
{
    Env *e = new Env();
    e->env = env;
    if (napi_get_uv_event_loop(env, &e->loop) != napi_ok) throw Napi::Error::New(env, "matchlock: no event loop");
    Napi::Object resource = Napi::Object::New(env);
    e->resource = Napi::Persistent(resource);
    napi_async_init(env, resource, Str(env, "matchlock"), &e->actx);
    Napi::Float64Array slot = Napi::Float64Array::New(env, 1);
    e->op_data = slot.Data();
    e->op_slot = Napi::Persistent(slot);
    tl_env = e;
    napi_add_env_cleanup_hook(env, Cleanup, e);

    struct { const char *name; Napi::Value (*fn)(const Napi::CallbackInfo &); } fns[] = {
        {"setup", Setup}, {"stats", Stats}, {"clientNew", ClientNew}, {"clientVmId", ClientVmId},
        {"clientStderrTail", ClientStderrTail}, {"exec", Exec}, {"writeFile", WriteFile}, {"readFile", ReadFile},
        {"listFiles", ListFiles}, {"logFollow", LogFollow}, {"stdinWrite", StdinWrite}, {"stdinClose", StdinClose},
        {"ttyResize", TtyResize}, {"cancel", Cancel}, {"create", Create}, {"close", Close}, {"remove", Remove}, {"removeVm", RemoveVm},
        {"log", Log}, {"allowList", AllowList}, {"portForward", PortForward}, {"volumeCreate", VolumeCreate},
        {"volumeList", VolumeList}, {"volumeRemove", VolumeRemove}, {"sandboxAddHook", SandboxAddHook},
        {"sandboxSetInterception", SandboxSetInterception},
        {"clientSetEventCb", ClientSetEventCb},
    };
    for (auto &f : fns) exports.Set(f.name, Napi::Function::New(env, f.fn, f.name));
}

} /* namespace mlknode */

#endif
