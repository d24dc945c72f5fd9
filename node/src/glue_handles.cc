/* glue_handles.cc - handles (plain objects with a Node-API type tag and a
 * wrapped Box), the environment they belong to, and the errors thrown or
 * rejected with (made by the JS factory setup() registers). */
#include "glue.h"

namespace mlknode {

void HookUnref(HookFn *h)
{
    if (h && --h->refs == 0) {
        h->fn.Reset();
        delete h;
    }
}

thread_local Env *tl_env = nullptr;

void EnvMaybeDelete(Env *env)
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

Napi::Value Wrap(Napi::Env env, void *p, const napi_type_tag *tag, void (*fr)(void *))
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

Box *UnwrapBox(Napi::Env env, Napi::Value v, const napi_type_tag *tag)
{
    if (!v.IsObject()) return nullptr;
    bool ok = false;
    if (napi_check_object_type_tag(env, v, tag, &ok) != napi_ok || !ok) return nullptr;
    void *p = nullptr;
    if (napi_unwrap(env, v, &p) != napi_ok) return nullptr;
    return (Box *)p;
}

void *Unwrap(Napi::Env env, Napi::Value v, const napi_type_tag *tag)
{
    Box *b = UnwrapBox(env, v, tag);
    return b ? b->p : nullptr;
}

/* An Error from the JS factory (MatchlockError subclasses live in JS). */
Napi::Value MakeError(Env *e, int status, const char *msg, int rpc, Napi::Value cause)
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

Napi::Value ResultError(Env *e, const mlk_result *res, int status)
{
    return MakeError(e, status, res ? mlk_result_message(res) : mlk_strerror(status), res ? mlk_result_rpc_code(res) : 0);
}

[[noreturn]] void Throw(Napi::Env env, const char *msg) { throw Napi::TypeError::New(env, msg); }

[[noreturn]] void ThrowNul(Napi::Env env, const std::string &msg)
{
    Napi::Error e = Napi::Error::New(env, msg);
    e.Set("status", Napi::Number::New(env, MLK_EINVAL));
    throw e;
}

/* The message of a thrown value, for error texts. */
std::string ErrText(Napi::Value v)
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

Client *ArgClient(const Napi::CallbackInfo &a, int i)
{
    Box *b = UnwrapBox(a.Env(), a[i], &kTagClient);
    if (!b) Throw(a.Env(), "matchlock: expected a client handle");
    return (Client *)b->p;
}

} /* namespace mlknode */
