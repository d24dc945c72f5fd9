/* glue_env.cc - the module: Init (one Env per Node environment, the
 * functions on the exports), setup() and stats(), and the environment's
 * cleanup hook. */
#include "glue.h"

namespace mlknode {

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

void Init(Napi::Env env, Napi::Object exports)
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
