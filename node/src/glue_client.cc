/* glue_client.cc - a client: the C client, its uv_poll on mlk_client_fd()
 * running mlk_dispatch() on the loop, the spin before the loop sleeps, and
 * freeing it (after close(), at GC or at teardown). */
#include "glue.h"

namespace mlknode {

void ClientRef(Client *cl)
{
    if (cl->pending++ == 0 && cl->poll) uv_ref((uv_handle_t *)cl->poll);
}

void ClientUnref(Client *cl)
{
    if (--cl->pending == 0 && cl->poll) uv_unref((uv_handle_t *)cl->poll);
}

static void PollClosed(uv_handle_t *h) { free(h); }

/* Stop watching and free the C client.  `sync`: on this thread (a closed
 * client frees at once; teardown cannot wait); else on the threadpool (an
 * open client collected by GC is closed first, which may wait).  The Client
 * struct stays while the JS handle exists. */
void ClientFreeC(Client *cl, bool sync)
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
void ClientMaybeRelease(Client *cl)
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
void SpinStop(Env *e)
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

void SpinArm(Client *cl)
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

void SpinClosed(uv_handle_t *h) { free(h); }

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

/* clientNew(config|null) -> client handle; throws a MatchlockError. */
Napi::Value ClientNew(const Napi::CallbackInfo &a)
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

Napi::Value ClientVmId(const Napi::CallbackInfo &a)
{
    Client *cl = ArgClient(a);
    if (!cl->c) return cl->vm_id.empty() ? a.Env().Null() : (Napi::Value)Str(a.Env(), cl->vm_id.c_str());
    return StrOrNull(a.Env(), mlk_client_vm_id(cl->c));
}

Napi::Value ClientStderrTail(const Napi::CallbackInfo &a)
{
    Client *cl = ArgClient(a);
    if (!cl->c) return Str(a.Env(), cl->tail.c_str(), cl->tail.size());
    char *s = mlk_client_stderr_tail(cl->c);
    Napi::Value v = Str(a.Env(), s ? s : "");
    mlk_free(s);
    return v;
}

} /* namespace mlknode */
