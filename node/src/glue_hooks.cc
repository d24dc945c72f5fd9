/* glue_hooks.cc - the trampolines the core calls from mlk_dispatch: hooks
 * (a JS function's Buffer or Promise answers the token) and events. */
#include "glue.h"

namespace mlknode {

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
Napi::Value SandboxAddHook(const Napi::CallbackInfo &a)
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
Napi::Value SandboxSetInterception(const Napi::CallbackInfo &a)
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
Napi::Value ClientSetEventCb(const Napi::CallbackInfo &a)
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

} /* namespace mlknode */
