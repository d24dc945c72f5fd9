/* glue_calls.cc - the async call machinery (a Req and its promise, settled
 * from the core's done callback; output and ready callbacks into JS) and
 * the client calls made of it: exec, files, logs, stdin/TTY/cancel,
 * create/close/remove, allow-list and port-forward. */
#include "glue.h"

namespace mlknode {

/* The refusal of a call the core did not take (rc != 0): a rejected promise. */
static std::string RefusedText(int rc, const char *what)
{
    std::string m = std::string(what) + ": " + mlk_strerror(rc);
    if (rc == MLK_ECLOSED) m += " (the client is closed; create a new Client)";
    return m;
}

Napi::Value Rejected(Env *e, int rc, const char *what)
{
    Napi::Promise::Deferred d = Napi::Promise::Deferred::New(e->env);
    d.Reject(MakeError(e, rc, RefusedText(rc, what).c_str(), 0));
    return d.Promise();
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

void Settle(napi_env env, napi_deferred d, bool ok, Napi::Value v)
{
    if (ok) napi_resolve_deferred(env, d, v);
    else napi_reject_deferred(env, d, v);
}

void OnDone(void *ud, uint64_t, const mlk_result *res)
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
Req *NewReq(const Napi::CallbackInfo &a, Client *cl, int kind, Napi::Value *promise)
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
Napi::Value Started(Req *r, Napi::Value promise, int rc, uint64_t op, const char *what)
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

int64_t ArgInt64(const Napi::CallbackInfo &a, size_t i)
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
Napi::Value Exec(const Napi::CallbackInfo &a)
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
Napi::Value WriteFile(const Napi::CallbackInfo &a)
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

Napi::Value ReadFile(const Napi::CallbackInfo &a) { return PathCall(a, R_READ); }
Napi::Value ListFiles(const Napi::CallbackInfo &a) { return PathCall(a, R_LIST); }

/* logFollow(client, onOutput(fd, buf)) -> Promise<undefined> */
Napi::Value LogFollow(const Napi::CallbackInfo &a)
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
Napi::Value Code(Napi::Env env, int rc) { return Napi::Number::New(env, rc); }

/* stdinWrite(client, op, data) -> 0 | MLK_EAGAIN | code */
Napi::Value StdinWrite(const Napi::CallbackInfo &a)
{
    Client *cl = ArgClient(a);
    Bytes data;
    if (!data.From(a[2])) Throw(a.Env(), "stdin chunks must be Buffer, Uint8Array or string");
    return Code(a.Env(), cl->c ? mlk_stdin_write(cl->c, ArgOp(a, 1), data.p, data.n) : MLK_ECLOSED);
}

Napi::Value StdinClose(const Napi::CallbackInfo &a)
{
    Client *cl = ArgClient(a);
    return Code(a.Env(), cl->c ? mlk_stdin_close(cl->c, ArgOp(a, 1)) : MLK_ECLOSED);
}

Napi::Value TtyResize(const Napi::CallbackInfo &a)
{
    Client *cl = ArgClient(a);
    return Code(a.Env(), cl->c ? mlk_tty_resize(cl->c, ArgOp(a, 1), (uint16_t)ArgInt64(a, 2), (uint16_t)ArgInt64(a, 3))
                               : MLK_ECLOSED);
}

Napi::Value Cancel(const Napi::CallbackInfo &a)
{
    Client *cl = ArgClient(a);
    return Code(a.Env(), cl->c ? mlk_cancel(cl->c, ArgOp(a, 1)) : MLK_ECLOSED);
}

/* ---- lifecycle, logs, network: the core's async calls ------------------------- */

/* create(client, sandbox, launch, timeoutMs) -> Promise<Buffer vm id>.  The
 * core renders the params and copies the hooks before returning, so the
 * builder may change (or be collected) at once.  The client takes a
 * reference on the builder's hooks: their `ud` now lives in the client. */
Napi::Value Create(const Napi::CallbackInfo &a)
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
Napi::Value Close(const Napi::CallbackInfo &a)
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

Napi::Value Remove(const Napi::CallbackInfo &a)
{
    LIVE_CLIENT(cl, "remove");
    Napi::Value promise;
    Req *r = NewReq(a, cl, R_DATA, &promise);
    uint64_t op = 0;
    int rc = mlk_remove_async(cl->c, OnDone, r, &op);
    return Started(r, promise, rc, op, "remove");
}

/* log(client, timeoutMs) -> Promise<Buffer> */
Napi::Value Log(const Napi::CallbackInfo &a)
{
    LIVE_CLIENT(cl, "log");
    Napi::Value promise;
    Req *r = NewReq(a, cl, R_DATA, &promise);
    uint64_t op = 0;
    int rc = mlk_log_async(cl->c, ArgInt64(a, 1), OnDone, r, &op);
    return Started(r, promise, rc, op, "log");
}

/* allowList(client, add, hosts[], timeoutMs) -> Promise<Buffer msgpack> */
Napi::Value AllowList(const Napi::CallbackInfo &a)
{
    bool add = IsTrue(a[1]);
    LIVE_CLIENT(cl, add ? "allowListAdd" : "allowListDelete");
    StrArray hosts;
    if (!hosts.From(a[2], "hosts", add ? "allowListAdd" : "allowListDelete")) {
        if (!hosts.nul.empty()) ThrowNul(a.Env(), hosts.nul);
        Throw(a.Env(), "allowList: hosts must be an array of strings");
    }
    Napi::Value promise;
    Req *r = NewReq(a, cl, R_MSGPACK, &promise);
    uint64_t op = 0;
    int rc = add ? mlk_allow_list_add_async(cl->c, hosts.ptrs(), hosts.size(), ArgInt64(a, 3), OnDone, r, &op)
                 : mlk_allow_list_delete_async(cl->c, hosts.ptrs(), hosts.size(), ArgInt64(a, 3), OnDone, r, &op);
    return Started(r, promise, rc, op, add ? "allowListAdd" : "allowListDelete");
}

/* portForward(client, specs[], addrs[], timeoutMs) -> Promise<Buffer msgpack> */
Napi::Value PortForward(const Napi::CallbackInfo &a)
{
    LIVE_CLIENT(cl, "portForward");
    StrArray specs, addrs;
    if (!specs.From(a[1], "specs", "portForward") || !addrs.From(a[2], "addresses", "portForward")) {
        if (!specs.nul.empty()) ThrowNul(a.Env(), specs.nul);
        if (!addrs.nul.empty()) ThrowNul(a.Env(), addrs.nul);
        Throw(a.Env(), "portForward: specs and addresses must be arrays of strings");
    }
    Napi::Value promise;
    Req *r = NewReq(a, cl, R_MSGPACK, &promise);
    uint64_t op = 0;
    int rc = mlk_port_forward_async(cl->c, specs.ptrs(), specs.size(), addrs.ptrs(), addrs.size(), ArgInt64(a, 3),
                                    OnDone, r, &op);
    return Started(r, promise, rc, op, "portForward");
}

} /* namespace mlknode */
