/* glue.h - the hand-written half of the Node addon: everything SWIG cannot
 * generate because it calls back into JavaScript or blocks.  Its units:
 * glue_handles.cc (handles, tags, errors), glue_client.cc (clients on the
 * event loop), glue_calls.cc (the async call machinery and the calls),
 * glue_jobs.cc (threadpool jobs, volumes), glue_hooks.cc (hook and event
 * trampolines), glue_env.cc (the module, the environment's lifetime).
 * This header holds what they share and what the SWIG wrapper (which
 * includes it) uses: the string and bytes conversions, the tags, Wrap and
 * Unwrap, Init.
 *
 * Written against Node-API only (node-addon-api's C++ classes over the C
 * functions of node_api.h), like the SWIG -napi wrapper that includes it,
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
#ifndef MLK_NODE_GLUE_H
#define MLK_NODE_GLUE_H

/* as the SWIG wrapper sets it up: C++ exceptions (every unit is built with
 * -fexceptions), so the units and the wrapper see the same napi.h */
#if !defined(NAPI_CPP_EXCEPTIONS) && (defined(_CPPUNWIND) || defined(__EXCEPTIONS))
#define NAPI_CPP_EXCEPTIONS
#endif
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

/* The core's refusal of a string holding a NUL (MLK_EINVAL, its message),
 * as a JS Error with that `status`: the library makes it a ValidationError. */
[[noreturn]] void ThrowNul(Napi::Env env, const std::string &msg);

/* An owned array of C strings built from a JS array (or null/undefined).
 * From fails on anything but an array of strings, and on an element that
 * holds a NUL (a C string would end there, silently): then `nul` holds the
 * core's message, which names the element ("hosts[1] of fn"), never its
 * value. */
struct StrArray {
    std::vector<std::string> s;
    std::vector<const char *> p;
    std::string nul;
    bool From(Napi::Value v, const char *what = "list", const char *fn = nullptr)
    {
        s.clear();
        p.clear();
        nul.clear();
        if (v.IsNull() || v.IsUndefined()) return true;
        if (!v.IsArray()) return false;
        Napi::Array a = v.As<Napi::Array>();
        uint32_t n = a.Length();
        s.reserve(n);
        for (uint32_t i = 0; i < n; i++) {
            Napi::Value e = a.Get(i);
            if (!e.IsString()) return false;
            s.push_back(ToUtf8(e));
            if (s.back().find('\0') != std::string::npos) {
                std::string name = std::string(what) + "[" + std::to_string(i) + "]" + (fn ? std::string(" of ") + fn : "");
                HasNul(s.back(), name.c_str(), &nul);
                return false;
            }
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

/* ---- glue_handles.cc: handles, tags, errors --------------------------------------- */

extern thread_local Env *tl_env;
void HookUnref(HookFn *h);
void EnvMaybeDelete(Env *env);
Napi::Value Wrap(Napi::Env env, void *p, const napi_type_tag *tag, void (*fr)(void *));
Box *UnwrapBox(Napi::Env env, Napi::Value v, const napi_type_tag *tag);
void *Unwrap(Napi::Env env, Napi::Value v, const napi_type_tag *tag);
Napi::Value MakeError(Env *e, int status, const char *msg, int rpc, Napi::Value cause = Napi::Value());
Napi::Value ResultError(Env *e, const mlk_result *res, int status);
[[noreturn]] void Throw(Napi::Env env, const char *msg);
std::string ErrText(Napi::Value v);
Client *ArgClient(const Napi::CallbackInfo &a, int i = 0);

/* ---- glue_client.cc: clients on the event loop ------------------------------------- */

void ClientRef(Client *cl);
void ClientUnref(Client *cl);
void ClientFreeC(Client *cl, bool sync);
void ClientMaybeRelease(Client *cl);
void SpinStop(Env *e);
void SpinArm(Client *cl);
void SpinClosed(uv_handle_t *h);
Napi::Value ClientNew(const Napi::CallbackInfo &a);
Napi::Value ClientVmId(const Napi::CallbackInfo &a);
Napi::Value ClientStderrTail(const Napi::CallbackInfo &a);

/* ---- glue_calls.cc: the async call machinery and the calls ------------------------ */

Napi::Value Rejected(Env *e, int rc, const char *what);
void Settle(napi_env env, napi_deferred d, bool ok, Napi::Value v);
void OnDone(void *ud, uint64_t, const mlk_result *res);
Req *NewReq(const Napi::CallbackInfo &a, Client *cl, int kind, Napi::Value *promise);
Napi::Value Started(Req *r, Napi::Value promise, int rc, uint64_t op, const char *what);
int64_t ArgInt64(const Napi::CallbackInfo &a, size_t i);
Napi::Value Code(Napi::Env env, int rc);
Napi::Value Exec(const Napi::CallbackInfo &a);
Napi::Value WriteFile(const Napi::CallbackInfo &a);
Napi::Value ReadFile(const Napi::CallbackInfo &a);
Napi::Value ListFiles(const Napi::CallbackInfo &a);
Napi::Value LogFollow(const Napi::CallbackInfo &a);
Napi::Value StdinWrite(const Napi::CallbackInfo &a);
Napi::Value StdinClose(const Napi::CallbackInfo &a);
Napi::Value TtyResize(const Napi::CallbackInfo &a);
Napi::Value Cancel(const Napi::CallbackInfo &a);
Napi::Value Create(const Napi::CallbackInfo &a);
Napi::Value Close(const Napi::CallbackInfo &a);
Napi::Value Remove(const Napi::CallbackInfo &a);
Napi::Value Log(const Napi::CallbackInfo &a);
Napi::Value AllowList(const Napi::CallbackInfo &a);
Napi::Value PortForward(const Napi::CallbackInfo &a);

/* The client of a call that needs the C client; one whose close() completed
 * (C client freed) gets MLK_ECLOSED, as the core answers a closed client. */
#define LIVE_CLIENT(cl, what)                                       \
    Client *cl = ArgClient(a);                                      \
    if (!cl->c) return Rejected(cl->env, MLK_ECLOSED, what)

/* ---- glue_jobs.cc: threadpool jobs, volumes ----------------------------------------- */

void JobQueueFree(Env *env, mlk_client *c);
Napi::Value VolumeCreate(const Napi::CallbackInfo &a);
Napi::Value VolumeList(const Napi::CallbackInfo &a);
Napi::Value VolumeRemove(const Napi::CallbackInfo &a);
Napi::Value RemoveVm(const Napi::CallbackInfo &a);

/* ---- glue_hooks.cc: hook and event trampolines ------------------------------------ */

Napi::Value SandboxAddHook(const Napi::CallbackInfo &a);
Napi::Value SandboxSetInterception(const Napi::CallbackInfo &a);
Napi::Value ClientSetEventCb(const Napi::CallbackInfo &a);

/* ---- glue_env.cc: the module -------------------------------------------------------- */

/* %init of the SWIG wrapper: the Env of this environment, the hand-written functions on the exports. */
void Init(Napi::Env env, Napi::Object exports);

} /* namespace mlknode */

#endif
