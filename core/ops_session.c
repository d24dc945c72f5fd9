/* ops_session.c - the sandbox's life: create/launch and close. */
#include "client.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

/* ===================================================================== */
/* public: create                                                           */

typedef struct create_cont {
    mlk_client *c;
    route rt;                    /* copied by value: the waiter lives in the caller's frame */
    route *rtp;
    uint64_t op;
    char *pf_params;             /* rendered port_forward params, or NULL */
    int64_t timeout_ms;
    mlk_result *created;
} create_cont;

static void create_cont_free(create_cont *k)
{
    free(k->pf_params);
    mlk_result_free(k->created);
    free(k);
}

static void pf_done(void *ud, uint64_t op, const mlk_result *res)
{
    create_cont *k = ud;
    /* the sandbox exists either way: report the port-forward failure, or the create result */
    mlk_result *final = res->status ? result_dup(res) : k->created;
    if (res->status == 0) k->created = NULL;
    route_deliver(k->c, k->rtp, k->op, final);
    create_cont_free(k);
}

static void create_done(void *ud, uint64_t op, const mlk_result *res)
{
    create_cont *k = ud;
    mlk_client *c = k->c;
    pthread_mutex_lock(&c->mu);
    c->creating = 0;
    pthread_mutex_unlock(&c->mu);
    if (res->status != 0 || !k->pf_params) {
        if (res->status != 0) hooks_free(c); /* a failed create leaves no socket behind */
        route_deliver(c, k->rtp, k->op, result_dup(res));
        create_cont_free(k);
        return;
    }
    k->created = result_dup(res);
    req *r = req_new(c, K_PORTFWD, k->timeout_ms);
    if (!r) { route_deliver(c, k->rtp, k->op, result_dup(res)); create_cont_free(k); return; }
    jw w;
    begin_line(&w, "port_forward", r->id);
    jw_value(&w, k->pf_params, strlen(k->pf_params));
    end_line(&w);
    r->q = route_queue(c, k->rtp);
    r->done = pf_done;
    r->ud = k;
    submit_or_fail(c, r, &w);
}

/* port_forward params {"forwards":[...],"addresses":[...]} into w. */
int render_port_forward(const char *const *specs, size_t n, const char *const *addrs, size_t naddrs,
                               jw *w, char **msg)
{
    jw fw;
    jw_init(&fw);
    int rc = port_forward_render(specs, n, &fw, msg);
    if (rc == 0) {
        jw_obj(w);
        jw_key(w, "forwards"); jw_value(w, fw.buf, fw.len);
        jw_key(w, "addresses");
        jw_arr(w);
        if (naddrs == 0 || !addrs) jw_str(w, "127.0.0.1");
        for (size_t i = 0; addrs && i < naddrs; i++) jw_str(w, addrs[i]);
        jw_arr_end(w);
        jw_obj_end(w);
        if (w->oom) rc = MLK_ENOMEM;
    }
    jw_free(&fw);
    return rc;
}

static int do_create(mlk_client *c, const mlk_sandbox *sb, int launch, int64_t timeout_ms, int blocking,
                     mlk_done_cb done, void *ud, uint64_t *op, mlk_result **out)
{
    route rt;
    START(c, &rt, blocking, done, ud, out);
    create_cont *k = calloc(1, sizeof *k);
    uint64_t id = c->next_id++;
    if (op) *op = id;
    if (!k) return route_fail(c, &rt, id, MLK_ENOMEM, NULL, out);
    k->c = c;
    k->op = id;
    k->timeout_ms = timeout_ms;
    k->rt = rt;
    k->rtp = blocking ? &rt : &k->rt;
    if (!sb) { free(k); return route_fail(c, &rt, id, MLK_EINVAL, "create: the sandbox is NULL", out); }
    /* the file calls take relative paths against this workspace (guest_path_canon) */
    char *ws = xstrdup(sandbox_workspace(sb));
    if (sandbox_workspace(sb) && !ws) { free(k); return route_fail(c, &rt, id, MLK_ENOMEM, NULL, out); }
    pthread_mutex_lock(&c->mu);
    int busy = c->vm_id || c->creating;
    if (!busy) {
        c->creating = 1;
        free(c->workspace);
        c->workspace = ws;
        ws = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    free(ws);
    if (busy) {
        free(k);
        return route_fail(c, &rt, id, MLK_ESTATE,
                          "create: this client already created a sandbox; use a new client for another one", out);
    }
    char *msg = NULL;
    const char *socket = NULL;
    int rc = hooks_attach(c, sandbox_hooks(sb), sandbox_net_rule_count(sb), &socket, &msg);
    jw w;
    jw_init(&w);
    if (rc == 0) {
        begin_line(&w, "create", id);
        rc = sandbox_render(sb, launch, socket, &w, &msg);
        end_line(&w);
    }
    const char *const *specs, *const *addrs;
    size_t naddrs = 0, nspecs = rc == 0 ? sandbox_port_forwards(sb, &specs, &addrs, &naddrs) : 0;
    if (rc == 0 && nspecs) {
        jw pf;
        jw_init(&pf);
        rc = render_port_forward(specs, nspecs, addrs, naddrs, &pf, &msg);
        k->pf_params = rc == 0 ? jw_take(&pf, NULL) : NULL;
        jw_free(&pf);
        if (rc == 0 && !k->pf_params) rc = MLK_ENOMEM;
    }
    if (rc != 0) {
        jw_free(&w);
        hooks_free(c);
        pthread_mutex_lock(&c->mu);
        c->creating = 0;
        pthread_mutex_unlock(&c->mu);
        create_cont_free(k);
        rc = route_fail(c, &rt, id, rc, msg, out);
        free(msg);
        return rc;
    }
    req *r = calloc(1, sizeof *r);
    if (!r) { jw_free(&w); hooks_free(c); create_cont_free(k); return route_fail(c, &rt, id, MLK_ENOMEM, NULL, out); }
    r->c = c;
    r->kind = K_CREATE;
    r->id = id;
    r->timeout_ms = timeout_ms > 0 ? timeout_ms : 0;
    r->q = route_queue(c, k->rtp);
    r->done = create_done;
    r->ud = k;
    submit_or_fail(c, r, &w);
    return route_finish(&rt, out);
}

MLK_API int mlk_create(mlk_client *c, const mlk_sandbox *sb, int64_t timeout_ms, mlk_result **out)
{
    return do_create(c, sb, 0, timeout_ms, 1, NULL, NULL, NULL, out);
}

MLK_API int mlk_launch(mlk_client *c, const mlk_sandbox *sb, int64_t timeout_ms, mlk_result **out)
{
    return do_create(c, sb, 1, timeout_ms, 1, NULL, NULL, NULL, out);
}

MLK_API int mlk_create_async(mlk_client *c, const mlk_sandbox *sb, int64_t timeout_ms, mlk_done_cb done, void *ud,
                             uint64_t *op)
{
    return do_create(c, sb, 0, timeout_ms, 0, done, ud, op, NULL);
}

MLK_API int mlk_launch_async(mlk_client *c, const mlk_sandbox *sb, int64_t timeout_ms, mlk_done_cb done, void *ud,
                             uint64_t *op)
{
    return do_create(c, sb, 1, timeout_ms, 0, done, ud, op, NULL);
}

/* ===================================================================== */
/* public: close                                                            */

typedef struct close_cont {
    mlk_client *c;
    route rt, *rtp;
    uint64_t op;
    int wait_ms;                 /* the whole close's budget */
    mlk_result *res;             /* the close RPC's outcome */
    struct event *timer;         /* I/O: polls for the child's exit */
    struct timespec start, deadline;
} close_cont;

static long ms_left(const struct timespec *deadline)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (deadline->tv_sec - now.tv_sec) * 1000 + (deadline->tv_nsec - now.tv_nsec) / 1000000;
}

static void close_complete(close_cont *k, int killed)
{
    mlk_client *c = k->c;
    release_child_fds(c);
    mlk_result *res = k->res ? k->res : result_new();
    if (res && (res->status == MLK_ETIMEDOUT || (killed && res->status == 0))) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long spent = (now.tv_sec - k->start.tv_sec) * 1000 + (now.tv_nsec - k->start.tv_nsec) / 1000000;
        result_fail(res, MLK_ECLOSE_TIMEOUT, "close timed out after %ld ms; the matchlock process was killed", spent);
    }
    /* A server that already exited, or a session that already failed (a
     * protocol error: the calls got the reason then), is closed now, not an
     * error: the official SDKs' close does not raise for either. */
    if (res && (res->status == MLK_EDEAD || res->status == MLK_ECLOSED || res->status == MLK_EPROTO))
        result_fail(res, 0, NULL);
    pthread_mutex_lock(&c->mu);
    c->state = ST_CLOSED;
    pthread_mutex_unlock(&c->mu);
    route_deliver(c, k->rtp, k->op, res);
    if (k->timer) event_free(k->timer);
    free(k);
}

/* I/O thread: wait for the child without blocking the loop, until the
 * close's one deadline (set when the close started). */
static void close_poll(evutil_socket_t fd, short what, void *arg)
{
    close_cont *k = arg;
    int status;
    pid_t r = waitpid(k->c->pid, &status, WNOHANG);
    if (r == k->c->pid || (r < 0 && errno == ECHILD)) { close_complete(k, 0); return; }
    if (ms_left(&k->deadline) <= 0) {
        kill(k->c->pid, SIGKILL);
        while (waitpid(k->c->pid, &status, 0) < 0 && errno == EINTR) {}
        close_complete(k, 1);
        return;
    }
    struct timeval tv = {0, 10000};
    evtimer_add(k->timer, &tv);
}

static void t_close_finish(void *p)
{
    close_cont *k = p;
    t_shutdown(k->c);
    k->timer = evtimer_new(ioloop_base(), close_poll, k);
    if (!k->timer) { close_complete(k, 0); return; }
    close_poll(-1, 0, k);
}

static void close_rpc_done(void *ud, uint64_t op, const mlk_result *res)
{
    close_cont *k = ud;
    k->res = result_dup(res);
    hooks_detach(k->c);
    if (ioloop_post(t_close_finish, k) != 0) close_complete(k, 0);
}

static int do_close(mlk_client *c, double timeout_s, int blocking, mlk_done_cb done, void *ud, uint64_t *op,
                    mlk_result **out)
{
    if (!c) return blocking ? fail_now(MLK_EINVAL, out, "close: client is NULL") : MLK_EINVAL;
    if (client_inherited(c)) return blocking ? closed_result(c, out) : MLK_ECLOSED; /* never the parent's close */
    route rt;
    if (route_init(&rt, blocking, done, ud) != 0)
        return blocking ? fail_now(MLK_ENOMEM, out, "out of memory") : MLK_ENOMEM;
    uint64_t id = c->next_id++;
    if (op) *op = id;
    pthread_mutex_lock(&c->mu);
    int st = c->state;
    if (st == ST_OPEN) c->state = ST_CLOSING;
    pthread_mutex_unlock(&c->mu);
    if (st != ST_OPEN) { /* idempotent */
        route_deliver(c, &rt, id, result_new());
        return route_finish(&rt, out);
    }
    /* 0 (or nonsense) is the official SDKs' "short grace period": 2 s,
     * sent to the server as such, as the official Python SDK does */
    if (!isfinite(timeout_s) || timeout_s <= 0) timeout_s = 2.0;
    close_cont *k = calloc(1, sizeof *k);
    req *r = calloc(1, sizeof *r);
    if (!k || !r) {
        free(k);
        free(r);
        pthread_mutex_lock(&c->mu);
        c->state = ST_OPEN;
        pthread_mutex_unlock(&c->mu);
        return route_fail(c, &rt, id, MLK_ENOMEM, NULL, out);
    }
    k->c = c;
    k->op = id;
    k->rt = rt;
    k->rtp = blocking ? &rt : &k->rt;
    k->wait_ms = (int)(timeout_s * 1000) + 1000;
    clock_gettime(CLOCK_MONOTONIC, &k->start);
    k->deadline = k->start;
    k->deadline.tv_sec += k->wait_ms / 1000;
    k->deadline.tv_nsec += (long)(k->wait_ms % 1000) * 1000000;
    if (k->deadline.tv_nsec >= 1000000000) { k->deadline.tv_sec++; k->deadline.tv_nsec -= 1000000000; }
    r->c = c;
    r->kind = K_CLOSE;
    r->id = id;
    r->timeout_ms = k->wait_ms;
    r->q = route_queue(c, k->rtp);
    r->done = close_rpc_done;
    r->ud = k;
    jw w;
    begin_line(&w, "close", id);
    jw_obj(&w);
    jw_key(&w, "timeout_seconds"); jw_double(&w, timeout_s);
    jw_obj_end(&w);
    end_line(&w);
    submit_or_fail(c, r, &w);
    return route_finish(&rt, out);
}

MLK_API int mlk_close(mlk_client *c, double timeout_s, mlk_result **out)
{
    return do_close(c, timeout_s, 1, NULL, NULL, NULL, out);
}

MLK_API int mlk_close_async(mlk_client *c, double timeout_s, mlk_done_cb done, void *ud, uint64_t *op)
{
    return do_close(c, timeout_s, 0, done, ud, op, NULL);
}
