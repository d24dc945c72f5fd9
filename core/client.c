/* client.c - one client talks to one `matchlock rpc` child over pipes:
 * its lifecycle, submitting calls and routing their completions.  The RPC
 * state machine is in transport.c (writing, the request table, death) and
 * reader.c (incoming lines); the operations are in ops_*.c.
 *
 * Threads.  Host threads compose request lines (JSON, base64 included) and
 * post them to the I/O thread (loop.c), which owns everything marked "I/O"
 * below: the child's pipes, the request table, the line buffer.  Results
 * and callbacks go back through an mlk_queue: the client's main queue for
 * async calls and events (drained by mlk_dispatch), or a private queue
 * for a blocking call (drained by the thread blocked in it).  A thread
 * that waits (a blocking call, mlk_dispatch_wait) may also read the
 * child's stdout itself while it spins, under io_mu, and handle the simple
 * answers it finds there (reader_self_read in reader.c); it hands
 * everything else to the I/O thread. */
#include "client.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ===================================================================== */
/* host side: submitting calls                                             */

int client_inherited(const mlk_client *c) { return c->fork_gen != ioloop_fork_generation(); }

int client_state(mlk_client *c)
{
    if (client_inherited(c)) return ST_CLOSED; /* no lock: a thread of the parent may have held it */
    pthread_mutex_lock(&c->mu);
    int st = c->state;
    pthread_mutex_unlock(&c->mu);
    return st;
}

req *req_new(mlk_client *c, int kind, int64_t timeout_ms)
{
    req *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->c = c;
    r->kind = kind;
    r->id = c->next_id++;
    r->timeout_ms = timeout_ms > 0 ? timeout_ms : 0;
    return r;
}

void begin_line(jw *w, const char *method, uint64_t id)
{
    jw_init(w);
    jw_obj(w);
    jw_key(w, "jsonrpc"); jw_str(w, "2.0");
    jw_key(w, "method"); jw_str(w, method);
    jw_key(w, "id"); jw_uint(w, id);
    jw_key(w, "params");
}

void end_line(jw *w)
{
    jw_obj_end(w);
    jw_nl(w);
}

/* Post r with its line (w is consumed).  On failure r is freed and the
 * error returned (no callback will run). */
int submit(mlk_client *c, req *r, jw *w)
{
    size_t len;
    r->secret_line = w->secret;
    char *line = w->oom ? NULL : jw_take(w, &len);
    jw_free(w);
    if (!line) { req_free(r); return MLK_ENOMEM; }
    submit_line(c, r, line, len);
    return 0;
}

/* Like submit, but a failure is reported through r's route (for calls
 * whose caller already returned, e.g. after a hook chain). */
void submit_or_fail(mlk_client *c, req *r, jw *w)
{
    size_t len;
    r->secret_line = w->secret;
    char *line = w->oom ? NULL : jw_take(w, &len);
    jw_free(w);
    if (!line) {
        post_fail(r, MLK_ENOMEM, "out of memory");
        req_free(r);
        return;
    }
    submit_line(c, r, line, len);
}

int closed_result(const mlk_client *c, mlk_result **out)
{
    mlk_result *r = result_new();
    if (r && client_inherited(c))
        result_fail(r, MLK_ECLOSED, "client closed: this client was inherited across fork() and belongs to the "
                    "parent process (create a new one in this process)");
    else if (r)
        result_fail(r, MLK_ECLOSED, "client closed: this call needs an open client (create a new one)");
    return result_give(r, out);
}

/* Start an async call: callbacks go to the main queue. */
int call_async(mlk_client *c, req *r, jw *w, mlk_done_cb done, void *ud, uint64_t *op)
{
    r->q = &c->mainq;
    r->done = done;
    r->ud = ud;
    if (op) *op = r->id;
    return submit(c, r, w);
}

/* Wait until the call routed to wt completes; its callbacks run here. */
static int wait_for(waiter *wt, mlk_result **out)
{
    while (!wt->done) {
        queue_wait(&wt->q, -1, wt->c ? reader_self_read : NULL, wt->c);
        queue_drain(&wt->q, 0);
    }
    queue_destroy(&wt->q);
    return result_give(wt->res, out);
}

/* Run a call and wait; its callbacks run on this thread. */
int call_blocking(mlk_client *c, req *r, jw *w, mlk_result **out)
{
    waiter wt;
    memset(&wt, 0, sizeof wt);
    if (queue_init_waiter(&wt.q) != 0) { jw_free(w); req_free(r); return result_give(NULL, out); }
    r->q = &wt.q;
    r->w = &wt;
    wt.c = c;
    int rc = submit(c, r, w);
    if (rc != 0) {
        queue_destroy(&wt.q);
        mlk_result *res = result_new();
        if (res) result_fail(res, rc, NULL);
        return result_give(res, out);
    }
    return wait_for(&wt, out);
}

int fail_now(int status, mlk_result **out, const char *msg)
{
    mlk_result *r = result_new();
    if (r) result_fail(r, status, "%s", msg);
    return result_give(r, out);
}

/* ===================================================================== */
/* public: client lifecycle                                                */

MLK_API int mlk_client_new(mlk_client **out, const mlk_config *cfg, mlk_result **res)
{
    if (!out) return fail_now(MLK_EINVAL, res, "mlk_client_new: out is NULL");
    *out = NULL;
    mlk_client *c = calloc(1, sizeof *c);
    if (!c) return fail_now(MLK_ENOMEM, res, "out of memory");
    c->in_fd = c->out_fd = c->err_fd = c->pid_fd = -1;
    c->next_id = 1;
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&c->io_mu, &ma);
    pthread_mutexattr_destroy(&ma);
    jd_init(&c->doc);
    c->cfg = config_copy(cfg);
    if (!c->cfg || queue_init(&c->mainq) != 0) {
        int e = errno;
        int fds = c->cfg && (e == EMFILE || e == ENFILE);
        mlk_config_free(c->cfg);
        free(c);
        if (fds) return fail_now(MLK_ESPAWN, res, "mlk_client_new: out of file descriptors (no descriptor "
                                 "for the client's dispatch queue: too many open files)");
        return fail_now(MLK_ENOMEM, res, "out of memory");
    }
    char *msg = NULL;
    const char *args[] = {"rpc"};
    int rc = spawn_child(c->cfg, args, 1, 1, &c->pid, &c->in_fd, &c->out_fd, &c->err_fd, &msg);
    if (rc == 0 && (rc = ioloop_acquire()) != 0 && (errno == EMFILE || errno == ENFILE)) {
        rc = MLK_ESPAWN;
        const char *ev = ioloop_last_log();
        msg = xasprintf("mlk_client_new: out of file descriptors (no descriptor for the I/O thread: too many open "
                        "files)%s%s", ev[0] ? "; libevent: " : "", ev);
    }
    if (rc != 0) {
        int st = fail_now(rc, res, msg ? msg : mlk_strerror(rc));
        free(msg);
        if (c->pid > 0) { close(c->in_fd); close(c->out_fd); close(c->err_fd); wait_child(c->pid, 0, &(int){0}); }
        queue_destroy(&c->mainq);
        mlk_config_free(c->cfg);
        free(c);
        return st;
    }
    fcntl(c->in_fd, F_SETFL, fcntl(c->in_fd, F_GETFL) | O_NONBLOCK);
    fcntl(c->out_fd, F_SETFL, fcntl(c->out_fd, F_GETFL) | O_NONBLOCK);
    fcntl(c->err_fd, F_SETFL, fcntl(c->err_fd, F_GETFL) | O_NONBLOCK);
    c->fork_gen = ioloop_fork_generation();
    ioloop_run_sync(t_attach, c);
    *out = c;
    if (res) *res = result_new();
    return 0;
}

void client_final_free(mlk_client *c)
{
    ioloop_release();
    if (c->out_fd >= 0) close(c->out_fd);
    if (c->err_fd >= 0) close(c->err_fd);
    if (c->in_fd >= 0) close(c->in_fd);
    if (c->pid_fd >= 0) close(c->pid_fd);
    queue_destroy(&c->mainq);
    hooks_free(c);
    jd_free(&c->doc);
    free(c->buf);
    free(c->vm_id);
    free(c->workspace);
    free(c->dead_msg);
    mlk_config_free(c->cfg);
    pthread_mutex_destroy(&c->mu);
    pthread_mutex_destroy(&c->io_mu);
    free(c);
}

void client_ref(mlk_client *c) { c->tokens_out++; }

void client_unref(mlk_client *c)
{
    int one = 1;
    if (--c->tokens_out == 0 && atomic_compare_exchange_strong(&c->free_deferred, &one, 0)) client_final_free(c);
}

static void client_destroy(mlk_client *c)
{
    mlk_close(c, 0, NULL);
    hooks_detach(c);
    ioloop_run_sync(t_release, c);
    /* Callbacks still queued never run; unanswered hook calls keep the
     * client's memory until they are answered (answering frees them). */
    queue_clear(&c->mainq);
    c->free_deferred = 1;
    int one = 1;
    if (c->tokens_out == 0 && atomic_compare_exchange_strong(&c->free_deferred, &one, 0)) client_final_free(c);
}

/* Free a client inherited across fork(): only this process's copies go.
 * Nothing is sent, the socket file is the parent's, and what the parent's
 * I/O thread or another thread of it owned (events, queued callbacks,
 * pending requests, locks) is left untouched. */
static void client_free_inherited(mlk_client *c)
{
    int fds[] = {c->in_fd, c->out_fd, c->err_fd, c->pid_fd, c->mainq.rfd,
                 c->mainq.wfd != c->mainq.rfd ? c->mainq.wfd : -1};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        if (fds[i] >= 0) close(fds[i]);
    hooks_forget(c);
    jd_free(&c->doc);
    free(c->buf);
    free(c->vm_id);
    free(c->workspace);
    free(c->dead_msg);
    mlk_config_free(c->cfg);
    free(c);
}

MLK_API void mlk_client_free(mlk_client *c)
{
    if (!c) return;
    if (client_inherited(c)) { client_free_inherited(c); return; }
    if (c->in_dispatch > 0) { c->free_pending = 1; return; }
    client_destroy(c);
}

MLK_API const char *mlk_client_vm_id(const mlk_client *c)
{
    if (!c) return NULL;
    if (client_inherited(c)) return c->vm_id;
    pthread_mutex_lock((pthread_mutex_t *)&c->mu);
    const char *id = c->vm_id;
    pthread_mutex_unlock((pthread_mutex_t *)&c->mu);
    return id;
}

MLK_API char *mlk_client_stderr_tail(const mlk_client *c)
{
    if (!c) return NULL;
    if (client_inherited(c)) return strdup("");
    pthread_mutex_lock((pthread_mutex_t *)&c->mu);
    char *s = malloc(c->tail_len + 1);
    if (s) {
        memcpy(s, c->tail, c->tail_len);
        s[c->tail_len] = '\0';
    }
    pthread_mutex_unlock((pthread_mutex_t *)&c->mu);
    return s;
}

MLK_API int mlk_client_fd(const mlk_client *c) { return c ? c->mainq.rfd : MLK_EINVAL; }

MLK_API int mlk_dispatch(mlk_client *c, int max)
{
    if (!c) return MLK_EINVAL;
    if (client_inherited(c)) return MLK_ECLOSED;
    c->in_dispatch++;
    int n = queue_drain(&c->mainq, max < 0 ? 0 : max);
    if (--c->in_dispatch == 0 && c->free_pending) client_destroy(c);
    return n;
}

MLK_API int mlk_dispatch_wait(mlk_client *c, int timeout_ms)
{
    if (!c) return MLK_EINVAL;
    if (client_inherited(c)) return MLK_ECLOSED;
    if (!__atomic_load_n(&c->mainq.head, __ATOMIC_ACQUIRE))
        queue_wait(&c->mainq, timeout_ms < 0 ? -1 : timeout_ms, reader_self_read, c);
    return mlk_dispatch(c, 0);
}

MLK_API int mlk_client_set_event_cb(mlk_client *c, mlk_event_cb cb, void *ud)
{
    if (!c) return MLK_EINVAL;
    if (client_inherited(c)) return MLK_ECLOSED;
    pthread_mutex_lock(&c->mu);
    c->event_cb = cb;
    c->event_ud = ud;
    pthread_mutex_unlock(&c->mu);
    return 0;
}

/* ===================================================================== */
/* routing a call to its caller: blocking (a waiter) or async (done)       */

int route_init(route *rt, int blocking, mlk_done_cb done, void *ud)
{
    memset(rt, 0, sizeof *rt);
    rt->blocking = blocking;
    rt->done = done;
    rt->ud = ud;
    return blocking ? queue_init_waiter(&rt->wt.q) : 0;
}

mlk_queue *route_queue(mlk_client *c, route *rt) { return rt->blocking ? &rt->wt.q : &c->mainq; }

/* Deliver res (owned) to the route's caller, as the call's one completion. */
void route_deliver(mlk_client *c, route *rt, uint64_t op, mlk_result *res)
{
    done_item *d = calloc(1, sizeof *d);
    if (!d) { mlk_result_free(res); return; }
    d->base.run = done_run;
    d->base.drop = done_drop;
    d->done = rt->done;
    d->ud = rt->ud;
    d->op = op;
    d->res = res;
    d->w = rt->blocking ? &rt->wt : NULL;
    queue_push(route_queue(c, rt), &d->base);
}

/* Finish starting a call: blocking calls wait here; async calls return. */
int route_finish(route *rt, mlk_result **out)
{
    return rt->blocking ? wait_for(&rt->wt, out) : 0;
}

/* A failure before anything was sent: returned to a blocking caller,
 * delivered through done (with its message) to an async one. */
int route_fail(mlk_client *c, route *rt, uint64_t op, int status, const char *msg, mlk_result **out)
{
    mlk_result *res = result_new();
    if (res) result_fail(res, status, "%s", msg ? msg : mlk_strerror(status));
    route_deliver(c, rt, op, res);
    return route_finish(rt, out);
}

/* r could not be sent (its params did not render, its hooks failed): it
 * goes, and the caller gets status with msg (taken; NULL for the code's text). */
int route_fail_unsent(mlk_client *c, route *rt, req *r, int status, char *msg, mlk_result **out)
{
    uint64_t id = r->id;
    req_free(r);
    int rc = route_fail(c, rt, id, status, msg, out);
    free(msg);
    return rc;
}

/* Send r (line w) along the route. */
int route_call(mlk_client *c, route *rt, req *r, jw *w, mlk_result **out)
{
    r->q = route_queue(c, rt);
    r->w = rt->blocking ? &rt->wt : NULL;
    rt->wt.c = c;
    r->done = rt->done;
    r->ud = rt->ud;
    submit_or_fail(c, r, w);
    return route_finish(rt, out);
}

/* Copy a borrowed result (for continuations that outlive a callback). */
mlk_result *result_dup(const mlk_result *s)
{
    mlk_result *r = result_new();
    if (!r || !s) return r;
    r->status = s->status;
    r->rpc_code = s->rpc_code;
    r->exit_code = s->exit_code;
    r->duration_ms = s->duration_ms;
    if (s->message && s->message[0]) result_fail(r, s->status, "%s", s->message);
    if (s->out) result_set_copy(r, 'o', s->out, s->out_len);
    if (s->err) result_set_copy(r, 'e', s->err, s->err_len);
    if (s->data) result_set_copy(r, 'd', s->data, s->data_len);
    if (s->mp) result_set_copy(r, 'm', s->mp, s->mp_len);
    return r;
}
