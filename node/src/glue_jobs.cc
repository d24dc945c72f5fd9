/* glue_jobs.cc - work on the libuv threadpool (napi async work): volume
 * calls and removeVm without a client, and freeing a client that may wait;
 * volume calls with a client go through its async calls instead. */
#include "glue.h"

namespace mlknode {

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

void JobQueueFree(Env *e, mlk_client *c)
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
Napi::Value VolumeCreate(const Napi::CallbackInfo &a) { return Volume(a, J_VOL_CREATE); }
Napi::Value VolumeList(const Napi::CallbackInfo &a) { return Volume(a, J_VOL_LIST); }
Napi::Value VolumeRemove(const Napi::CallbackInfo &a) { return Volume(a, J_VOL_RM); }
/* removeVm(config|null, vmId) -> Promise: `matchlock rm` on the threadpool,
 * no client needed (remove() after close, once the C client is freed). */
Napi::Value RemoveVm(const Napi::CallbackInfo &a) { return JobStart(a, VolumeJob(a, J_RM_VM)); }

} /* namespace mlknode */
