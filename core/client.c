/* client.c - the RPC state machine: one client talks to one `matchlock rpc`
 * child over pipes.
 *
 * Threads.  Host threads compose request lines (JSON, base64 included) and
 * post them to the I/O thread (loop.c), which owns everything marked "I/O"
 * below: the child's pipes, the request table, the line buffer.  Results
 * and callbacks go back through an mlk_queue: the client's main queue for
 * async calls and events (drained by mlk_dispatch), or a private queue
 * for a blocking call (drained by the thread blocked in it). */
#include "client.h"

#include <errno.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *const method_names[] = {
    "create", "exec", "exec_stream", "exec_pipe", "exec_tty", "write_file", "exec_pipe",
    "read_file", "list_files", "log", "log_stream", "allow_list", "port_forward", "close",
};

/* I/O-thread entry points run their _locked body under the client's io_mu
 * (host threads take it too, to register and send requests). */
#define IO_EVENT(name, client_of)                                   \
    static void name(evutil_socket_t fd, short what, void *ARG)     \
    {                                                               \
        mlk_client *lc = client_of;                                 \
        pthread_mutex_lock(&lc->io_mu);                             \
        name##_locked(fd, what, ARG);                               \
        pthread_mutex_unlock(&lc->io_mu);                           \
    }
#define IO_TASK(name, client_of)                                    \
    static void name(void *ARG)                                     \
    {                                                               \
        mlk_client *lc = client_of;                                 \
        pthread_mutex_lock(&lc->io_mu);                             \
        name##_locked(ARG);                                         \
        pthread_mutex_unlock(&lc->io_mu);                           \
    }

const char *kind_method(int kind) { return method_names[kind]; }

static void done_run(qitem *it)
{
    done_item *d = (done_item *)it;
    if (d->w) {
        d->w->res = d->res;
        d->w->done = 1;
    } else {
        if (d->done) d->done(d->ud, d->op, d->res);
        mlk_result_free(d->res);
    }
    free(d);
}

static void done_drop(qitem *it)
{
    done_item *d = (done_item *)it;
    mlk_result_free(d->res);
    free(d);
}

typedef struct out_item {
    qitem base;
    mlk_client *c;                /* stream output counts in c->queued_out */
    mlk_output_cb cb;
    mlk_ready_cb ready;
    void *ud;
    uint64_t op;
    int fd;
    size_t len;
    char data[];
} out_item;

static void output_consumed(mlk_client *c, size_t n);

static void out_run(qitem *it)
{
    out_item *o = (out_item *)it;
    if (o->cb) o->cb(o->ud, o->op, o->fd, o->data, o->len);
    else if (o->ready) o->ready(o->ud, o->op);
    if (o->c) output_consumed(o->c, o->len);
    free(o);
}

static void plain_drop(qitem *it) { free(it); }

static void out_drop(qitem *it)
{
    out_item *o = (out_item *)it;
    if (o->c) o->c->queued_out -= o->len;
    free(o);
}

typedef struct event_item {
    qitem base;
    mlk_client *c;
    size_t len;
    char data[];
} event_item;

static void event_run(qitem *it)
{
    event_item *e = (event_item *)it;
    pthread_mutex_lock(&e->c->mu);
    mlk_event_cb cb = e->c->event_cb;
    void *ud = e->c->event_ud;
    pthread_mutex_unlock(&e->c->mu);
    if (cb) cb(ud, e->data, e->len);
    free(e);
}

/* ===================================================================== */
/* I/O thread: request table, output, completion                           */

static void table_put(mlk_client *c, req *r)
{
    req **b = &c->table[r->id % NBUCKETS];
    r->hnext = *b;
    *b = r;
}

static req *table_get(mlk_client *c, uint64_t id)
{
    for (req *r = c->table[id % NBUCKETS]; r; r = r->hnext)
        if (r->id == id) return r;
    return NULL;
}

static void table_del(mlk_client *c, req *r)
{
    for (req **p = &c->table[r->id % NBUCKETS]; *p; p = &(*p)->hnext)
        if (*p == r) { *p = r->hnext; return; }
}

void req_free(req *r)
{
    if (!r) return;
    if (r->timer) event_free(r->timer);
    while (r->pend) {
        pline *n = r->pend->next;
        free(r->pend);
        r->pend = n;
    }
    free(r->feed);
    free(r->errbuf);
    free(r->path);
    free(r);
}

/* Hand the result to the call's queue (exactly once per request). */
void post_done(req *r, mlk_result *res)
{
    done_item *d = calloc(1, sizeof *d);
    if (!d) { mlk_result_free(res); return; } /* nothing sane left to do */
    d->base.run = done_run;
    d->base.drop = done_drop;
    d->done = r->done;
    d->ud = r->ud;
    d->op = r->id;
    d->res = res;
    d->w = r->w;
    queue_push(r->q, &d->base);
}

void post_fail(req *r, int status, const char *msg)
{
    mlk_result *res = result_new();
    if (res) result_fail(res, status, "%s", msg);
    post_done(r, res);
}

static void flush_out(mlk_client *c);

/* Send bytes to the child (any thread, io_mu held).  With nothing queued
 * they go straight into the socket (send with MSG_NOSIGNAL: never a
 * SIGPIPE, whichever thread this is); the rest waits in outbuf for the I/O
 * thread, which also notices a dead child. */
static void out_add(mlk_client *c, const char *p, size_t n)
{
    if (c->dead || c->detached) return;
    size_t off = 0;
    if (evbuffer_get_length(c->outbuf) == 0) {
        ssize_t k;
        do k = send(c->in_fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        while (k < 0 && errno == EINTR);
        if (k > 0) off = (size_t)k;
    }
    if (off < n) {
        evbuffer_add(c->outbuf, p + off, n - off);
        event_add(c->ev_write, NULL);
    }
    c->out_buffered = evbuffer_get_length(c->outbuf);
}

static void send_stdin_eof(mlk_client *c, req *r);
static void feed_more(mlk_client *c, req *r);

static void feed_all(mlk_client *c)
{
    for (int b = 0; b < NBUCKETS; b++)
        for (req *r = c->table[b]; r; r = r->hnext)
            if (r->ready && !r->abandoned && r->feed) feed_more(c, r);
}

static void die(mlk_client *c, int status, const char *why);

static void flush_out(mlk_client *c)
{
    if (c->dead || c->detached) return;
    while (evbuffer_get_length(c->outbuf) > 0) {
        int n = evbuffer_write(c->outbuf, c->in_fd);
        if (n > 0) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (n < 0 && errno == EINTR) continue;
        die(c, MLK_EDEAD, "the matchlock process stopped reading its input");
        return;
    }
    c->out_buffered = evbuffer_get_length(c->outbuf);
    if (c->out_buffered > 0) event_add(c->ev_write, NULL);
    else event_del(c->ev_write);
}

static void on_writable_locked(evutil_socket_t fd, short what, void *arg)
{
    mlk_client *c = arg;
    flush_out(c);
    if (!c->dead && !c->detached && evbuffer_get_length(c->outbuf) < FEED_HIGH) feed_all(c);
}

IO_EVENT(on_writable, (mlk_client *)ARG)

/* Give up on a request: its caller gets `status` now, the server is asked
 * to cancel, and whatever the server still sends for it is dropped. */
static void abandon(mlk_client *c, req *r, int status, const char *msg)
{
    if (r->abandoned) return;
    r->abandoned = 1;
    if (r->timer) { event_free(r->timer); r->timer = NULL; }
    post_fail(r, status, msg);
    jw w;
    jw_init(&w);
    jw_obj(&w);
    jw_key(&w, "jsonrpc"); jw_str(&w, "2.0");
    jw_key(&w, "method"); jw_str(&w, "cancel");
    jw_key(&w, "params"); jw_obj(&w); jw_key(&w, "id"); jw_uint(&w, r->id); jw_obj_end(&w);
    jw_key(&w, "id"); jw_uint(&w, c->next_id++);
    jw_obj_end(&w);
    jw_nl(&w);
    if (!w.oom) out_add(c, w.buf, w.len);
    jw_free(&w);
}

static void on_timeout_locked(evutil_socket_t fd, short what, void *arg)
{
    req *r = arg;
    char msg[128];
    snprintf(msg, sizeof msg, "%s: deadline of %lld ms exceeded (the call was cancelled)",
             method_names[r->kind], (long long)r->timeout_ms);
    abandon(r->c, r, MLK_ETIMEDOUT, msg);
}

IO_EVENT(on_timeout, ((req *)ARG)->c)

static void fail_all(mlk_client *c, int status, const char *msg)
{
    for (int b = 0; b < NBUCKETS; b++) {
        req *r = c->table[b];
        c->table[b] = NULL;
        while (r) {
            req *n = r->hnext;
            if (!r->abandoned) post_fail(r, status, msg);
            req_free(r);
            r = n;
        }
    }
}

static void stop_events(mlk_client *c)
{
    if (c->ev_read) { event_free(c->ev_read); c->ev_read = NULL; }
    if (c->ev_write) { event_free(c->ev_write); c->ev_write = NULL; }
}

static void read_stderr(mlk_client *c);

static void die(mlk_client *c, int status, const char *why)
{
    if (c->dead) return;
    c->dead = 1;
    read_stderr(c); /* what it said before it died is already in the pipe */
    pthread_mutex_lock(&c->mu);
    char *msg = xasprintf("%s%s%.*s", why, c->tail_len ? "; its stderr ends with: " : "",
                          (int)c->tail_len, c->tail);
    free(c->dead_msg);
    c->dead_msg = msg;
    c->dead_status = status;
    pthread_mutex_unlock(&c->mu);
    stop_events(c);
    fail_all(c, status, msg ? msg : why);
}

/* ===================================================================== */
/* I/O thread: incoming lines                                              */

static int decode_field(const jnode *n, const char **p, size_t *len)
{
    if (!n || n->type != JN_STR) { *p = ""; *len = 0; return n ? -1 : 0; }
    long long k = b64_decode(n->s, n->len, (unsigned char *)n->s);
    if (k < 0) return -1;
    *p = n->s;
    *len = (size_t)k;
    return 0;
}

/* Flow control: while the host has more than OUT_HIGH bytes of stream
 * output queued, the I/O thread stops reading the child (the child then
 * blocks on its pipe); below OUT_LOW it reads again.  A stream of any
 * length thus runs in bounded memory however slow the consumer. */
#define OUT_HIGH (16 * 1024 * 1024)
#define OUT_LOW (4 * 1024 * 1024)

static void t_resume_locked(void *p)
{
    mlk_client *c = p;
    if (c->read_paused && c->queued_out < OUT_LOW && c->ev_read && !c->dead && !c->detached) {
        c->read_paused = 0;
        event_add(c->ev_read, NULL);
    }
}

IO_TASK(t_resume, (mlk_client *)ARG)

/* Host thread, after an output callback. */
static void output_consumed(mlk_client *c, size_t n)
{
    size_t left = atomic_fetch_sub(&c->queued_out, n) - n; /* clang 14 rejects the value of `a -= n` on _Atomic */
    if (left < OUT_LOW && c->read_paused) ioloop_post(t_resume, c);
}

/* Queue a chunk of output: the base64 is decoded straight into the item
 * handed to the callback (one pass over the bytes, no copy). */
static void post_output(req *r, int fd, const jnode *b64)
{
    if (!r->on_output || !b64 || b64->type != JN_STR) return;
    out_item *o = malloc(sizeof *o + b64->len / 4 * 3 + 3);
    if (!o) return;
    long long dn = b64_decode(b64->s, b64->len, (unsigned char *)o->data);
    if (dn < 0) { free(o); return; }
    size_t n = (size_t)dn;
    mlk_client *c = r->c;
    o->c = c;
    o->base.run = out_run;
    o->base.drop = out_drop;
    o->cb = r->on_output;
    o->ready = NULL;
    o->ud = r->out_ud;
    o->op = r->id;
    o->fd = fd;
    o->len = n;
    if (atomic_fetch_add(&c->queued_out, n) + n > OUT_HIGH && !c->read_paused && c->ev_read) {
        c->read_paused = 1;
        event_del(c->ev_read);
    }
    queue_push(r->q, &o->base);
}

static void on_ready(mlk_client *c, req *r)
{
    if (r->ready) return;
    r->ready = 1;
    while (r->pend) {
        pline *p = r->pend;
        r->pend = p->next;
        c->stdin_pending -= p->len;
        out_add(c, p->data, p->len);
        free(p);
    }
    r->pend_tail = NULL;
    if (r->on_ready) {
        out_item *o = calloc(1, sizeof *o);
        if (o) {
            o->base.run = out_run;
            o->base.drop = plain_drop;
            o->ready = r->on_ready;
            o->ud = r->out_ud;
            o->op = r->id;
            queue_push(r->q, &o->base);
        }
    }
    feed_more(c, r);
}

static void on_notification(mlk_client *c, const char *method, const jnode *params)
{
    jdoc *d = &c->doc;
    if (strcmp(method, "event") == 0) {
        char *mp;
        size_t n;
        if (!params || json_to_mp_buf(d, params, &mp, &n) != 0) return;
        event_item *e = malloc(sizeof *e + n);
        if (e) {
            e->base.run = event_run;
            e->base.drop = plain_drop;
            e->c = c;
            e->len = n;
            memcpy(e->data, mp, n);
            queue_push(&c->mainq, &e->base);
        }
        free(mp);
        if (c->hooks) hooks_on_file_event(c, d, jd_get(d, params, "file"));
        return;
    }
    uint64_t id;
    if (jn_uint(jd_get(d, params, "id"), &id) != 0) return;
    req *r = table_get(c, id);
    if (!r || r->abandoned) return;
    const char *dot = strrchr(method, '.');
    if (!dot) return;
    dot++;
    if (strcmp(dot, "ready") == 0) { on_ready(c, r); return; }
    int fd = strcmp(dot, "stderr") == 0 ? 2 : 1;
    if (fd == 1 && strcmp(dot, "stdout") != 0 && strcmp(dot, "data") != 0) return;
    const jnode *data = jd_get(d, params, "data");
    if (r->kind != K_WRITE_PIPE) {
        post_output(r, fd, data);
        return;
    }
    /* a big write's `cat` keeps its stderr for the error message */
    const char *p;
    size_t n;
    if (fd != 2 || r->errlen >= 4096 || decode_field(data, &p, &n) != 0) return;
    size_t k = n < 4096 - r->errlen ? n : 4096 - r->errlen;
    char *e = realloc(r->errbuf, r->errlen + k + 1);
    if (e) {
        memcpy(e + r->errlen, p, k);
        r->errlen += k;
        e[r->errlen] = '\0';
        r->errbuf = e;
    }
}

/* Build the result of a successful response.  *steal is set when the
 * result took ownership of the whole line buffer. */
static mlk_result *make_result(mlk_client *c, req *r, const jnode *res, int can_steal, int *steal)
{
    jdoc *d = &c->doc;
    mlk_result *out = result_new();
    if (!out) return NULL;
    const char *p;
    size_t n;
    switch (r->kind) {
    case K_CREATE: {
        const char *id = jd_str(d, res, "id", NULL);
        if (!id) { result_fail(out, MLK_EPARSE, "parse create result: the server's answer has no VM id"); break; }
        result_set_copy(out, 'd', id, strlen(id));
        pthread_mutex_lock(&c->mu);
        free(c->vm_id);
        c->vm_id = xstrdup(id);
        pthread_mutex_unlock(&c->mu);
        break;
    }
    case K_EXEC:
        if (decode_field(jd_get(d, res, "stdout"), &p, &n) != 0) {
            result_fail(out, MLK_EPARSE, "parse exec result: stdout is not valid base64");
            break;
        }
        result_set_copy(out, 'o', p, n);
        if (decode_field(jd_get(d, res, "stderr"), &p, &n) != 0) {
            result_fail(out, MLK_EPARSE, "parse exec result: stderr is not valid base64");
            break;
        }
        result_set_copy(out, 'e', p, n);
        /* fallthrough */
    case K_EXEC_STREAM: case K_EXEC_PIPE: case K_EXEC_TTY:
        out->exit_code = (int)jd_int(d, res, "exit_code", -1);
        out->duration_ms = jd_int(d, res, "duration_ms", 0);
        break;
    case K_WRITE_PIPE:
        out->exit_code = (int)jd_int(d, res, "exit_code", -1);
        if (out->exit_code != 0) {
            out->rpc_code = -32002;
            result_fail(out, MLK_ERPC, "write_file %s: %s", r->path ? r->path : "",
                        r->errlen ? r->errbuf : "the copy command failed");
        }
        out->exit_code = -1;
        break;
    case K_READ: case K_LOG:
        if (decode_field(jd_get(d, res, "content"), &p, &n) != 0) {
            result_fail(out, MLK_EPARSE, "parse %s result: content is not valid base64", method_names[r->kind]);
            break;
        }
        if (can_steal && n >= STEAL_MIN) {
            out->owned = c->buf;
            out->data = p;
            out->data_len = n;
            *steal = 1;
        } else {
            result_set_copy(out, 'd', p, n);
        }
        break;
    case K_LIST: case K_PORTFWD: case K_ALLOW: {
        const jnode *v = r->kind == K_LIST ? jd_get(d, res, "files")
                       : r->kind == K_PORTFWD ? jd_get(d, res, "bindings") : res;
        char *mp;
        if (v && v->type != JN_NULL && json_to_mp_buf(d, v, &mp, &n) == 0) {
            out->mp_own = mp;
            out->mp = mp;
            out->mp_len = n;
        } else {
            /* null lists are empty lists */
            static const char empty_array = (char)0x90;
            result_set_copy(out, 'm', &empty_array, 1);
        }
        break;
    }
    default:
        break;
    }
    return out;
}

static void handle_line(mlk_client *c, char *line, size_t len, int can_steal, int *steal)
{
    size_t i = 0;
    while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) i++;
    if (i == len) return;
    jdoc *d = &c->doc;
    if (line[i] != '{') return; /* not a message (a launcher's banner, say): skipped */
    if (jd_parse(d, line, len) != 0) {
        char why[160];
        snprintf(why, sizeof why, "protocol error: the server sent a malformed line (%s)", d->err);
        die(c, MLK_EPROTO, why);
        return;
    }
    const jnode *root = jd_root(d);
    if (!root || root->type != JN_OBJ) return;
    const jnode *idn = jd_get(d, root, "id");
    const char *method = jd_str(d, root, "method", NULL);
    if (method && (!idn || idn->type == JN_NULL)) {
        on_notification(c, method, jd_get(d, root, "params"));
        return;
    }
    uint64_t id;
    if (jn_uint(idn, &id) != 0) return;
    req *r = table_get(c, id);
    if (!r) return;
    table_del(c, r);
    if (r->abandoned) { req_free(r); return; }
    const jnode *err = jd_get(d, root, "error");
    mlk_result *res;
    if (err && err->type == JN_OBJ) {
        res = result_new();
        if (res) {
            int code = (int)jd_int(d, err, "code", -32603);
            res->rpc_code = code;
            result_fail(res, code == -32003 ? MLK_ECANCELED : MLK_ERPC, "%s: %s (code %d)",
                        method_names[r->kind], jd_str(d, err, "message", "error"), code);
        }
    } else {
        res = make_result(c, r, jd_get(d, root, "result"), can_steal, steal);
    }
    post_done(r, res);
    req_free(r);
}

static void process_lines(mlk_client *c)
{
    size_t start = 0;
    for (;;) {
        char *nl = memchr(c->buf + c->scan, '\n', c->len - c->scan);
        if (!nl) break;
        size_t end = (size_t)(nl - c->buf);
        int steal = 0;
        handle_line(c, c->buf + start, end - start, start == 0, &steal);
        if (c->dead || c->detached) return;
        if (steal) {
            size_t rem = c->len - end - 1;
            size_t cap = rem + 65536;
            char *nb = malloc(cap);
            if (!nb) { c->buf = NULL; c->len = c->cap = c->scan = 0; die(c, MLK_ENOMEM, "out of memory"); return; }
            memcpy(nb, c->buf + end + 1, rem);
            c->buf = nb;
            c->cap = cap;
            c->len = rem;
            c->scan = 0;
            start = 0;
            continue;
        }
        start = end + 1;
        c->scan = start;
    }
    if (start > 0) {
        memmove(c->buf, c->buf + start, c->len - start);
        c->len -= start;
    }
    c->scan = c->len;
}

static void on_readable_locked(evutil_socket_t fd, short what, void *arg)
{
    mlk_client *c = arg;
    for (int rounds = 0; rounds < 8 && !c->dead && !c->detached && !c->read_paused; rounds++) {
        if (c->cap - c->len < 65536) {
            size_t cap = c->cap ? c->cap * 2 : 256 * 1024;
            while (cap - c->len < 65536) cap *= 2;
            char *nb = realloc(c->buf, cap);
            if (!nb) { die(c, MLK_ENOMEM, "out of memory reading the server's output"); return; }
            c->buf = nb;
            c->cap = cap;
        }
        size_t room = c->cap - c->len - 1;
        ssize_t n = read(c->out_fd, c->buf + c->len, room);
        if (n > 0) {
            c->len += (size_t)n;
            process_lines(c);
            if (c->len > c->cfg->max_line) {
                die(c, MLK_EPROTO, "the server sent a line longer than the configured maximum");
                return;
            }
            if ((size_t)n < room) return; /* drained: the loop calls again when more comes */
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (n < 0 && errno == EINTR) continue;
        die(c, MLK_EDEAD, "connection closed: the matchlock process exited or closed its output");
        return;
    }
}

IO_EVENT(on_readable, (mlk_client *)ARG)

/* Keep the tail of the child's stderr; 0 while more may come, -1 at EOF. */
static int stderr_chunk(mlk_client *c)
{
    char tmp[4096];
    ssize_t n = read(c->err_fd, tmp, sizeof tmp);
    if (n > 0) {
        pthread_mutex_lock(&c->mu);
        if ((size_t)n >= STDERR_TAIL) {
            memcpy(c->tail, tmp + n - STDERR_TAIL, STDERR_TAIL);
            c->tail_len = STDERR_TAIL;
        } else {
            size_t keep = c->tail_len + (size_t)n > STDERR_TAIL ? STDERR_TAIL - (size_t)n : c->tail_len;
            memmove(c->tail, c->tail + c->tail_len - keep, keep);
            memcpy(c->tail + keep, tmp, (size_t)n);
            c->tail_len = keep + (size_t)n;
        }
        pthread_mutex_unlock(&c->mu);
        return 1;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
    return -1;
}

static void read_stderr(mlk_client *c)
{
    if (!c->ev_err) return;
    int rc;
    while ((rc = stderr_chunk(c)) > 0) {}
    if (rc < 0) {
        event_free(c->ev_err);
        c->ev_err = NULL;
    }
}

static void on_stderr_locked(evutil_socket_t fd, short what, void *arg)
{
    mlk_client *c = arg;
    if (stderr_chunk(c) < 0) {
        event_free(c->ev_err);
        c->ev_err = NULL;
    }
}

IO_EVENT(on_stderr, (mlk_client *)ARG)

/* ===================================================================== */
/* I/O thread: tasks posted by host threads                                */

/* Register r and send its line (any thread): the caller's own thread
 * writes the request; the I/O thread only reads the answer.  A dead or
 * closed client completes r at once with the reason.  Takes line. */
static void submit_line(mlk_client *c, req *r, char *line, size_t len)
{
    pthread_mutex_lock(&c->io_mu);
    if (c->dead || c->detached) {
        pthread_mutex_lock(&c->mu);
        char *m = xstrdup(c->detached ? "client closed" : c->dead_msg);
        int st = c->detached ? MLK_ECLOSED : c->dead_status;
        pthread_mutex_unlock(&c->mu);
        post_fail(r, st, m ? m : mlk_strerror(st));
        free(m);
        req_free(r);
    } else {
        table_put(c, r);
        if (r->timeout_ms > 0) {
            r->timer = evtimer_new(ioloop_base(), on_timeout, r);
            struct timeval tv = {(time_t)(r->timeout_ms / 1000), (suseconds_t)(r->timeout_ms % 1000) * 1000};
            if (r->timer) evtimer_add(r->timer, &tv);
        }
        out_add(c, line, len);
    }
    pthread_mutex_unlock(&c->io_mu);
    free(line);
}

enum { SI_DATA, SI_EOF, SI_RESIZE };

typedef struct stdin_task {
    mlk_client *c;
    uint64_t op;
    int type;
    size_t len;       /* of tail */
    char tail[];      /* `"params":{...}}\n` */
} stdin_task;

/* Queue or send a stdin-side notification for r. */
static void send_notice(mlk_client *c, req *r, int type, const char *tail, size_t tlen)
{
    const char *family = r->kind == K_EXEC_TTY ? "exec_tty" : "exec_pipe";
    const char *what = type == SI_DATA ? "stdin" : type == SI_EOF ? "stdin_eof" : "resize";
    char head[96];
    int hn = snprintf(head, sizeof head, "{\"jsonrpc\":\"2.0\",\"method\":\"%s.%s\",", family, what);
    if (r->ready) {
        out_add(c, head, (size_t)hn);
        out_add(c, tail, tlen);
        return;
    }
    pline *p = malloc(sizeof *p + (size_t)hn + tlen);
    if (!p) return;
    p->next = NULL;
    p->len = (size_t)hn + tlen;
    memcpy(p->data, head, (size_t)hn);
    memcpy(p->data + hn, tail, tlen);
    c->stdin_pending += p->len;
    if (r->pend_tail) r->pend_tail->next = p; else r->pend = p;
    r->pend_tail = p;
}

static void t_stdin_locked(void *p)
{
    stdin_task *t = p;
    mlk_client *c = t->c;
    c->stdin_pending -= t->len;
    req *r = c->dead || c->detached ? NULL : table_get(c, t->op);
    /* after EOF only a resize still makes sense */
    if (r && !r->abandoned && (!r->eof_sent || t->type == SI_RESIZE) &&
        (r->kind == K_EXEC_PIPE || r->kind == K_EXEC_TTY) && !(t->type == SI_RESIZE && r->kind != K_EXEC_TTY)) {
        if (t->type == SI_EOF) r->eof_sent = 1;
        send_notice(c, r, t->type, t->tail, t->len);
    }
    free(t);
}

IO_TASK(t_stdin, ((stdin_task *)ARG)->c)

static void send_stdin_eof(mlk_client *c, req *r)
{
    if (r->eof_sent) return;
    char tail[64];
    int n = snprintf(tail, sizeof tail, "\"params\":{\"id\":%llu}}\n", (unsigned long long)r->id);
    r->eof_sent = 1;
    send_notice(c, r, SI_EOF, tail, (size_t)n);
}

/* Push the next part of r's stdin (given up front) while the output buffer
 * is below the high-water mark; then EOF unless the caller keeps stdin. */
static void feed_more(mlk_client *c, req *r)
{
    jw w;
    jw_init(&w);
    while (r->feed && r->feed_off < r->feed_len && !c->dead && evbuffer_get_length(c->outbuf) < FEED_HIGH) {
        size_t k = r->feed_len - r->feed_off;
        if (k > 256 * 1024) k = 256 * 1024;
        jw_reset(&w);
        jw_raw(&w, "\"params\":{\"id\":", 15);
        char num[24];
        int nn = snprintf(num, sizeof num, "%llu", (unsigned long long)r->id);
        jw_raw(&w, num, (size_t)nn);
        jw_raw(&w, ",\"data\":", 8);
        w.need_comma[0] = 2;
        jw_b64(&w, r->feed + r->feed_off, k);
        jw_raw(&w, "}}\n", 3);
        if (w.oom) break;
        send_notice(c, r, SI_DATA, w.buf, w.len);
        r->feed_off += k;
    }
    jw_free(&w);
    if (r->feed && r->feed_off >= r->feed_len) {
        free(r->feed);
        r->feed = NULL;
    }
    if (!r->feed && !r->interactive) send_stdin_eof(c, r);
}

static void t_cancel_locked(void *p)
{
    uint64_t *a = p;
    mlk_client *c = (mlk_client *)(uintptr_t)a[0];
    req *r = c->dead || c->detached ? NULL : table_get(c, a[1]);
    if (r) {
        char msg[96];
        snprintf(msg, sizeof msg, "%s: cancelled by the caller", method_names[r->kind]);
        abandon(c, r, MLK_ECANCELED, msg);
    }
    free(a);
}

IO_TASK(t_cancel, (mlk_client *)(uintptr_t)((uint64_t *)ARG)[0])

static void t_attach_locked(void *p)
{
    mlk_client *c = p;
    struct event_base *b = ioloop_base();
    c->outbuf = evbuffer_new();
    c->ev_read = event_new(b, c->out_fd, EV_READ | EV_PERSIST, on_readable, c);
    c->ev_write = event_new(b, c->in_fd, EV_WRITE, on_writable, c);
    c->ev_err = event_new(b, c->err_fd, EV_READ | EV_PERSIST, on_stderr, c);
    if (c->ev_read) event_add(c->ev_read, NULL);
    if (c->ev_err) event_add(c->ev_err, NULL);
}

IO_TASK(t_attach, (mlk_client *)ARG)

/* Stop talking to the child: flush what we can, close its stdin, fail what
 * is still pending.  Runs on the I/O thread. */
static void t_shutdown_locked(void *p)
{
    mlk_client *c = p;
    if (!c->dead && c->outbuf) {
        while (evbuffer_get_length(c->outbuf) > 0 && evbuffer_write(c->outbuf, c->in_fd) > 0) {}
    }
    c->detached = 1;
    stop_events(c);
    fail_all(c, MLK_ECLOSED, "client closed");
    if (c->in_fd >= 0) { close(c->in_fd); c->in_fd = -1; }
}

IO_TASK(t_shutdown, (mlk_client *)ARG)

static void t_release_locked(void *p)
{
    mlk_client *c = p;
    stop_events(c);
    if (c->ev_err) { event_free(c->ev_err); c->ev_err = NULL; }
    if (c->outbuf) { evbuffer_free(c->outbuf); c->outbuf = NULL; }
    fail_all(c, MLK_ECLOSED, "client closed");
}

IO_TASK(t_release, (mlk_client *)ARG)

/* ===================================================================== */
/* host side: submitting calls                                             */

static int client_state(mlk_client *c)
{
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
    char *line = w->oom ? NULL : jw_take(w, &len);
    jw_free(w);
    if (!line) { req_free(r); return MLK_ENOMEM; }
    submit_line(c, r, line, len);
    return 0;
}

/* Like submit, but a failure is reported through r's route (for calls
 * whose caller already returned, e.g. after a hook chain). */
static void submit_or_fail(mlk_client *c, req *r, jw *w)
{
    size_t len;
    char *line = w->oom ? NULL : jw_take(w, &len);
    jw_free(w);
    if (!line) {
        post_fail(r, MLK_ENOMEM, "out of memory");
        req_free(r);
        return;
    }
    submit_line(c, r, line, len);
}

static int closed_result(mlk_result **out)
{
    mlk_result *r = result_new();
    if (r) result_fail(r, MLK_ECLOSED, "client closed: this call needs an open client (create a new one)");
    return result_give(r, out);
}

/* Start an async call: callbacks go to the main queue. */
static int call_async(mlk_client *c, req *r, jw *w, mlk_done_cb done, void *ud, uint64_t *op)
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
        queue_wait(&wt->q, -1);
        queue_drain(&wt->q, 0);
    }
    queue_destroy(&wt->q);
    return result_give(wt->res, out);
}

/* Run a call and wait; its callbacks run on this thread. */
static int call_blocking(mlk_client *c, req *r, jw *w, mlk_result **out)
{
    waiter wt;
    memset(&wt, 0, sizeof wt);
    if (queue_init_waiter(&wt.q) != 0) { jw_free(w); req_free(r); return result_give(NULL, out); }
    r->q = &wt.q;
    r->w = &wt;
    int rc = submit(c, r, w);
    if (rc != 0) {
        queue_destroy(&wt.q);
        mlk_result *res = result_new();
        if (res) result_fail(res, rc, NULL);
        return result_give(res, out);
    }
    return wait_for(&wt, out);
}

static int fail_now(int status, mlk_result **out, const char *msg)
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
    c->in_fd = c->out_fd = c->err_fd = -1;
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
        mlk_config_free(c->cfg);
        free(c);
        return fail_now(MLK_ENOMEM, res, "out of memory");
    }
    char *msg = NULL;
    const char *args[] = {"rpc"};
    int rc = spawn_child(c->cfg, args, 1, 1, &c->pid, &c->in_fd, &c->out_fd, &c->err_fd, &msg);
    if (rc == 0) rc = ioloop_acquire();
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
    queue_destroy(&c->mainq);
    hooks_free(c);
    jd_free(&c->doc);
    free(c->buf);
    free(c->vm_id);
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

MLK_API void mlk_client_free(mlk_client *c)
{
    if (!c) return;
    if (c->in_dispatch > 0) { c->free_pending = 1; return; }
    client_destroy(c);
}

MLK_API const char *mlk_client_vm_id(const mlk_client *c)
{
    if (!c) return NULL;
    pthread_mutex_lock((pthread_mutex_t *)&c->mu);
    const char *id = c->vm_id;
    pthread_mutex_unlock((pthread_mutex_t *)&c->mu);
    return id;
}

MLK_API char *mlk_client_stderr_tail(const mlk_client *c)
{
    if (!c) return NULL;
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
    c->in_dispatch++;
    int n = queue_drain(&c->mainq, max < 0 ? 0 : max);
    if (--c->in_dispatch == 0 && c->free_pending) client_destroy(c);
    return n;
}

MLK_API int mlk_dispatch_wait(mlk_client *c, int timeout_ms)
{
    if (!c) return MLK_EINVAL;
    if (timeout_ms != 0 && !__atomic_load_n(&c->mainq.head, __ATOMIC_ACQUIRE))
        queue_wait(&c->mainq, timeout_ms < 0 ? -1 : timeout_ms);
    return mlk_dispatch(c, 0);
}

MLK_API int mlk_client_set_event_cb(mlk_client *c, mlk_event_cb cb, void *ud)
{
    if (!c) return MLK_EINVAL;
    pthread_mutex_lock(&c->mu);
    c->event_cb = cb;
    c->event_ud = ud;
    pthread_mutex_unlock(&c->mu);
    return 0;
}

/* ===================================================================== */
/* routing a call to its caller: blocking (a waiter) or async (done)       */

/* Where a call's completion goes.  Blocking calls wait on `wt`. */
typedef struct route {
    int blocking;
    waiter wt;
    mlk_done_cb done;
    void *ud;
} route;

static int route_init(route *rt, int blocking, mlk_done_cb done, void *ud)
{
    memset(rt, 0, sizeof *rt);
    rt->blocking = blocking;
    rt->done = done;
    rt->ud = ud;
    return blocking ? queue_init_waiter(&rt->wt.q) : 0;
}

static mlk_queue *route_queue(mlk_client *c, route *rt) { return rt->blocking ? &rt->wt.q : &c->mainq; }

/* Deliver res (owned) to the route's caller, as the call's one completion. */
static void route_deliver(mlk_client *c, route *rt, uint64_t op, mlk_result *res)
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
static int route_finish(route *rt, mlk_result **out)
{
    return rt->blocking ? wait_for(&rt->wt, out) : 0;
}

/* A failure before anything was sent: returned to a blocking caller,
 * delivered through done (with its message) to an async one. */
static int route_fail(mlk_client *c, route *rt, uint64_t op, int status, const char *msg, mlk_result **out)
{
    mlk_result *res = result_new();
    if (res) result_fail(res, status, "%s", msg ? msg : mlk_strerror(status));
    route_deliver(c, rt, op, res);
    return route_finish(rt, out);
}

/* Send r (line w) along the route. */
static int route_call(mlk_client *c, route *rt, req *r, jw *w, mlk_result **out)
{
    r->q = route_queue(c, rt);
    r->w = rt->blocking ? &rt->wt : NULL;
    r->done = rt->done;
    r->ud = rt->ud;
    submit_or_fail(c, r, w);
    return route_finish(rt, out);
}

/* Copy a borrowed result (for continuations that outlive a callback). */
static mlk_result *result_dup(const mlk_result *s)
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

#define START(c, rt, blocking, done, ud, out)                                                \
    do {                                                                                     \
        if (!(c)) return (blocking) ? fail_now(MLK_EINVAL, out, "client is NULL") : MLK_EINVAL; \
        if (client_state(c) != ST_OPEN) return (blocking) ? closed_result(out) : MLK_ECLOSED; \
        if (route_init(rt, blocking, done, ud) != 0)                                         \
            return (blocking) ? fail_now(MLK_ENOMEM, out, "out of memory") : MLK_ENOMEM;      \
    } while (0)

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
static int render_port_forward(const char *const *specs, size_t n, const char *const *addrs, size_t naddrs,
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
    pthread_mutex_lock(&c->mu);
    int busy = c->vm_id || c->creating;
    if (!busy) c->creating = 1;
    pthread_mutex_unlock(&c->mu);
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
    int wait_ms;
    mlk_result *res;             /* the close RPC's outcome */
    struct event *timer;         /* I/O: polls for the child's exit */
    struct timespec deadline;
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
    mlk_result *res = k->res ? k->res : result_new();
    if (res && (res->status == MLK_ETIMEDOUT || (killed && res->status == 0)))
        result_fail(res, MLK_ECLOSE_TIMEOUT, "close timed out after %d ms; the matchlock process was killed",
                    k->wait_ms);
    /* A server that already exited is a closed server, not an error. */
    if (res && (res->status == MLK_EDEAD || res->status == MLK_ECLOSED)) result_fail(res, 0, NULL);
    pthread_mutex_lock(&c->mu);
    c->state = ST_CLOSED;
    pthread_mutex_unlock(&c->mu);
    route_deliver(c, k->rtp, k->op, res);
    if (k->timer) event_free(k->timer);
    free(k);
}

/* I/O thread: wait for the child without blocking the loop. */
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
    clock_gettime(CLOCK_MONOTONIC, &k->deadline);
    k->deadline.tv_sec += k->wait_ms / 1000;
    k->deadline.tv_nsec += (long)(k->wait_ms % 1000) * 1000000;
    if (k->deadline.tv_nsec >= 1000000000) { k->deadline.tv_sec++; k->deadline.tv_nsec -= 1000000000; }
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
    if (!isfinite(timeout_s) || timeout_s < 0) timeout_s = 0;
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
    k->wait_ms = timeout_s > 0 ? (int)(timeout_s * 1000) + 1000 : 2000;
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

/* ===================================================================== */
/* public: exec                                                             */

struct mlk_exec_opts {
    int mode;
    char *working_dir, *user;
    int64_t timeout_ms;
    uint16_t rows, cols;
    char *stdin_data;
    size_t stdin_len;
    int has_stdin, interactive;
    mlk_output_cb on_output;
    mlk_ready_cb on_ready;
    void *ud;
};

MLK_API mlk_exec_opts *mlk_exec_opts_new(void)
{
    mlk_exec_opts *o = calloc(1, sizeof *o);
    if (o) { o->rows = 24; o->cols = 80; }
    return o;
}

MLK_API void mlk_exec_opts_free(mlk_exec_opts *o)
{
    if (!o) return;
    free(o->working_dir);
    free(o->user);
    free(o->stdin_data);
    free(o);
}

MLK_API int mlk_exec_opts_set_mode(mlk_exec_opts *o, int mode)
{
    if (!o || mode < MLK_EXEC_BUFFERED || mode > MLK_EXEC_TTY) return MLK_EINVAL;
    o->mode = mode;
    return 0;
}

static int set_str(char **dst, const char *s)
{
    char *p = NULL;
    if (s && *s && !(p = strdup(s))) return MLK_ENOMEM;
    free(*dst);
    *dst = p;
    return 0;
}

MLK_API int mlk_exec_opts_set_working_dir(mlk_exec_opts *o, const char *dir)
{
    return o ? set_str(&o->working_dir, dir) : MLK_EINVAL;
}

MLK_API int mlk_exec_opts_set_user(mlk_exec_opts *o, const char *user)
{
    return o ? set_str(&o->user, user) : MLK_EINVAL;
}

MLK_API int mlk_exec_opts_set_timeout_ms(mlk_exec_opts *o, int64_t ms)
{
    if (!o || ms < 0) return MLK_EINVAL;
    o->timeout_ms = ms;
    return 0;
}

MLK_API int mlk_exec_opts_set_tty_size(mlk_exec_opts *o, uint16_t rows, uint16_t cols)
{
    if (!o) return MLK_EINVAL;
    o->rows = rows ? rows : 24;
    o->cols = cols ? cols : 80;
    return 0;
}

MLK_API int mlk_exec_opts_set_stdin(mlk_exec_opts *o, const char *data, size_t len)
{
    if (!o || (len && !data)) return MLK_EINVAL;
    char *p = malloc(len ? len : 1);
    if (!p) return MLK_ENOMEM;
    if (len) memcpy(p, data, len);
    free(o->stdin_data);
    o->stdin_data = p;
    o->stdin_len = len;
    o->has_stdin = 1;
    return 0;
}

MLK_API int mlk_exec_opts_set_interactive_stdin(mlk_exec_opts *o, int on)
{
    if (!o) return MLK_EINVAL;
    o->interactive = on != 0;
    return 0;
}

MLK_API int mlk_exec_opts_set_callbacks(mlk_exec_opts *o, mlk_output_cb on_output, mlk_ready_cb on_ready, void *ud)
{
    if (!o) return MLK_EINVAL;
    o->on_output = on_output;
    o->on_ready = on_ready;
    o->ud = ud;
    return 0;
}

static const int mode_kind[] = {K_EXEC, K_EXEC_STREAM, K_EXEC_PIPE, K_EXEC_TTY};

/* Build the request of an exec; returns NULL (with *rc) on failure. */
static req *exec_request(mlk_client *c, const char *command, const mlk_exec_opts *o, jw *w, int *rc)
{
    static const mlk_exec_opts defaults = {.rows = 24, .cols = 80};
    if (!o) o = &defaults;
    *rc = MLK_ENOMEM;
    req *r = req_new(c, mode_kind[o->mode], o->timeout_ms);
    if (!r) return NULL;
    r->on_output = o->on_output;
    r->on_ready = o->on_ready;
    r->out_ud = o->ud;
    r->interactive = o->interactive;
    if ((o->mode == MLK_EXEC_PIPE || o->mode == MLK_EXEC_TTY) && o->has_stdin && o->stdin_len) {
        r->feed = malloc(o->stdin_len);
        if (!r->feed) { req_free(r); return NULL; }
        memcpy(r->feed, o->stdin_data, o->stdin_len);
        r->feed_len = o->stdin_len;
    }
    begin_line(w, method_names[r->kind], r->id);
    jw_obj(w);
    jw_key(w, "command"); jw_str(w, command);
    if (o->working_dir) { jw_key(w, "working_dir"); jw_str(w, o->working_dir); }
    if (o->user) { jw_key(w, "user"); jw_str(w, o->user); }
    if (o->mode == MLK_EXEC_TTY) {
        jw_key(w, "rows"); jw_uint(w, o->rows);
        jw_key(w, "cols"); jw_uint(w, o->cols);
    }
    jw_obj_end(w);
    end_line(w);
    *rc = 0;
    return r;
}

MLK_API int mlk_exec(mlk_client *c, const char *command, const mlk_exec_opts *o, mlk_result **out)
{
    if (!c || !command) return fail_now(MLK_EINVAL, out, "exec: client and command are required");
    if (client_state(c) != ST_OPEN) return closed_result(out);
    jw w;
    int rc;
    req *r = exec_request(c, command, o, &w, &rc);
    if (!r) return fail_now(rc, out, mlk_strerror(rc));
    return call_blocking(c, r, &w, out);
}

MLK_API int mlk_exec_async(mlk_client *c, const char *command, const mlk_exec_opts *o,
                           mlk_done_cb done, void *ud, uint64_t *op)
{
    if (!c || !command) return MLK_EINVAL;
    if (client_state(c) != ST_OPEN) return MLK_ECLOSED;
    jw w;
    int rc;
    req *r = exec_request(c, command, o, &w, &rc);
    if (!r) return rc;
    return call_async(c, r, &w, done, ud, op);
}

static int post_stdin(mlk_client *c, uint64_t op, int type, const char *data, size_t len,
                      uint16_t rows, uint16_t cols)
{
    if (!c) return MLK_EINVAL;
    if (client_state(c) != ST_OPEN) return MLK_ECLOSED;
    if (type == SI_DATA && c->stdin_pending + c->out_buffered > STDIN_LIMIT) return MLK_EAGAIN;
    jw w;
    jw_init(&w);
    char head[64];
    int n = snprintf(head, sizeof head, "\"params\":{\"id\":%llu", (unsigned long long)op);
    jw_raw(&w, head, (size_t)n);
    if (type == SI_DATA) {
        jw_raw(&w, ",\"data\":", 8);
        w.need_comma[0] = 2;
        jw_b64(&w, data, len);
    } else if (type == SI_RESIZE) {
        n = snprintf(head, sizeof head, ",\"rows\":%u,\"cols\":%u", rows, cols);
        jw_raw(&w, head, (size_t)n);
    }
    jw_raw(&w, "}}\n", 3);
    if (w.oom) { jw_free(&w); return MLK_ENOMEM; }
    stdin_task *t = malloc(sizeof *t + w.len);
    if (!t) { jw_free(&w); return MLK_ENOMEM; }
    t->c = c;
    t->op = op;
    t->type = type;
    t->len = w.len;
    memcpy(t->tail, w.buf, w.len);
    jw_free(&w);
    c->stdin_pending += t->len;
    if (ioloop_post(t_stdin, t) != 0) { c->stdin_pending -= t->len; free(t); return MLK_ENOMEM; }
    return 0;
}

MLK_API int mlk_stdin_write(mlk_client *c, uint64_t op, const char *data, size_t len)
{
    if (len && !data) return MLK_EINVAL;
    if (len == 0) return 0;
    return post_stdin(c, op, SI_DATA, data, len, 0, 0);
}

MLK_API int mlk_stdin_close(mlk_client *c, uint64_t op) { return post_stdin(c, op, SI_EOF, NULL, 0, 0, 0); }

MLK_API int mlk_tty_resize(mlk_client *c, uint64_t op, uint16_t rows, uint16_t cols)
{
    if (!rows || !cols) return MLK_EINVAL;
    return post_stdin(c, op, SI_RESIZE, NULL, 0, rows, cols);
}

MLK_API int mlk_cancel(mlk_client *c, uint64_t op)
{
    if (!c) return MLK_EINVAL;
    if (client_state(c) != ST_OPEN) return 0;
    if (c->hooks && hooks_cancel(c, op)) return 0;
    uint64_t *a = malloc(2 * sizeof *a);
    if (!a) return MLK_ENOMEM;
    a[0] = (uint64_t)(uintptr_t)c;
    a[1] = op;
    if (ioloop_post(t_cancel, a) != 0) { free(a); return MLK_ENOMEM; }
    return 0;
}

/* ===================================================================== */
/* public: files and logs                                                   */

/* Single-quote s for /bin/sh. */
static void sh_quote(jw *w, const char *s)
{
    jw_raw(w, "'", 1);
    for (; *s; s++) {
        if (*s == '\'') jw_raw(w, "'\\''", 4);
        else jw_raw(w, s, 1);
    }
    jw_raw(w, "'", 1);
}

static int write_too_big(const char *path, size_t len)
{
    return b64_encoded_len(len) + strlen(path) * 6 + 512 > SERVER_MAX_LINE;
}

/* Compose and send the file call r (routing set, kind K_WRITE, K_READ or
 * K_LIST); failures reach r's caller through its route. */
static void file_finish(mlk_client *c, req *r, const char *path, const char *data, size_t len, uint32_t mode)
{
    jw w;
    if (r->kind != K_WRITE) {
        begin_line(&w, method_names[r->kind], r->id);
        jw_obj(&w);
        jw_key(&w, "path"); jw_str(&w, path);
        jw_obj_end(&w);
        end_line(&w);
        submit_or_fail(c, r, &w);
        return;
    }
    if (mode == 0) mode = 0644;
    if (!write_too_big(path, len)) {
        begin_line(&w, "write_file", r->id);
        jw_obj(&w);
        jw_key(&w, "path"); jw_str(&w, path);
        jw_key(&w, "content"); jw_b64(&w, data, len);
        jw_key(&w, "mode"); jw_uint(&w, mode);
        jw_obj_end(&w);
        end_line(&w);
        submit_or_fail(c, r, &w);
        return;
    }
    /* Too big for one request line: stream it through `cat` instead. */
    r->kind = K_WRITE_PIPE;
    r->path = xstrdup(path);
    r->feed = malloc(len);
    if (!r->feed || !r->path) {
        post_fail(r, MLK_ENOMEM, "out of memory");
        req_free(r);
        return;
    }
    memcpy(r->feed, data, len);
    r->feed_len = len;
    jw cmd;
    jw_init(&cmd);
    jw_raw(&cmd, "cat > ", 6);
    sh_quote(&cmd, path);
    char m[48];
    int n = snprintf(m, sizeof m, " && chmod %o ", (unsigned)mode & 07777);
    jw_raw(&cmd, m, (size_t)n);
    sh_quote(&cmd, path);
    jw_raw(&cmd, "", 1);
    begin_line(&w, "exec_pipe", r->id);
    jw_obj(&w);
    jw_key(&w, "command"); jw_str(&w, cmd.oom ? "false" : cmd.buf);
    jw_obj_end(&w);
    end_line(&w);
    jw_free(&cmd);
    submit_or_fail(c, r, &w);
}

static const char *file_op(int kind) { return kind == K_WRITE ? "write" : kind == K_READ ? "read" : "readdir"; }

/* write_file, read_file and list_files, blocking (out) or async (done):
 * local VFS action and mutate hooks first, then the request. */
static int file_call(mlk_client *c, int kind, const char *path, const char *data, size_t len, uint32_t mode,
                     int64_t timeout_ms, int blocking, mlk_done_cb done, void *ud, uint64_t *op, mlk_result **out)
{
    if (!path || !*path || (len && !data)) {
        if (!blocking) return MLK_EINVAL;
        char msg[64];
        snprintf(msg, sizeof msg, "%s: a path is required", method_names[kind]);
        return fail_now(MLK_EINVAL, out, msg);
    }
    route rt;
    START(c, &rt, blocking, done, ud, out);
    req *r = req_new(c, kind, timeout_ms);
    if (!r) return route_fail(c, &rt, 0, MLK_ENOMEM, NULL, out);
    if (op) *op = r->id;
    r->q = route_queue(c, &rt);
    r->w = blocking ? &rt.wt : NULL;
    r->done = done;
    r->ud = ud;
    if (!data) data = "";
    int rc = 0;
    if (c->hooks && hooks_match_before(c, file_op(kind), path))
        rc = hooks_file_call(c, r, file_op(kind), path, data, len, mode, file_finish);
    else
        file_finish(c, r, path, data, len, mode);
    if (rc != 0) {
        uint64_t id = r->id;
        req_free(r);
        return route_fail(c, &rt, id, rc, NULL, out);
    }
    return route_finish(&rt, out);
}

MLK_API int mlk_write_file(mlk_client *c, const char *path, const char *data, size_t len,
                           uint32_t mode, int64_t timeout_ms, mlk_result **out)
{
    return file_call(c, K_WRITE, path, data, len, mode, timeout_ms, 1, NULL, NULL, NULL, out);
}

MLK_API int mlk_write_file_async(mlk_client *c, const char *path, const char *data, size_t len,
                                 uint32_t mode, int64_t timeout_ms, mlk_done_cb done, void *ud, uint64_t *op)
{
    return file_call(c, K_WRITE, path, data, len, mode, timeout_ms, 0, done, ud, op, NULL);
}

MLK_API int mlk_read_file(mlk_client *c, const char *path, int64_t timeout_ms, mlk_result **out)
{
    return file_call(c, K_READ, path, NULL, 0, 0, timeout_ms, 1, NULL, NULL, NULL, out);
}

MLK_API int mlk_read_file_async(mlk_client *c, const char *path, int64_t timeout_ms,
                                mlk_done_cb done, void *ud, uint64_t *op)
{
    return file_call(c, K_READ, path, NULL, 0, 0, timeout_ms, 0, done, ud, op, NULL);
}

MLK_API int mlk_list_files(mlk_client *c, const char *path, int64_t timeout_ms, mlk_result **out)
{
    return file_call(c, K_LIST, path, NULL, 0, 0, timeout_ms, 1, NULL, NULL, NULL, out);
}

MLK_API int mlk_list_files_async(mlk_client *c, const char *path, int64_t timeout_ms,
                                 mlk_done_cb done, void *ud, uint64_t *op)
{
    return file_call(c, K_LIST, path, NULL, 0, 0, timeout_ms, 0, done, ud, op, NULL);
}

/* ===================================================================== */
/* public: logs                                                             */

static int do_log(mlk_client *c, int64_t timeout_ms, int blocking, mlk_done_cb done, void *ud, uint64_t *op,
                  mlk_result **out)
{
    route rt;
    START(c, &rt, blocking, done, ud, out);
    req *r = req_new(c, K_LOG, timeout_ms);
    if (!r) return route_fail(c, &rt, 0, MLK_ENOMEM, NULL, out);
    if (op) *op = r->id;
    jw w;
    begin_line(&w, "log", r->id);
    jw_obj(&w);
    jw_obj_end(&w);
    end_line(&w);
    return route_call(c, &rt, r, &w, out);
}

MLK_API int mlk_log(mlk_client *c, int64_t timeout_ms, mlk_result **out)
{
    return do_log(c, timeout_ms, 1, NULL, NULL, NULL, out);
}

MLK_API int mlk_log_async(mlk_client *c, int64_t timeout_ms, mlk_done_cb done, void *ud, uint64_t *op)
{
    return do_log(c, timeout_ms, 0, done, ud, op, NULL);
}

MLK_API int mlk_log_follow_async(mlk_client *c, mlk_output_cb on_output, mlk_done_cb done,
                                 void *ud, uint64_t *op)
{
    if (!c) return MLK_EINVAL;
    if (client_state(c) != ST_OPEN) return MLK_ECLOSED;
    req *r = req_new(c, K_LOG_STREAM, 0);
    if (!r) return MLK_ENOMEM;
    jw w;
    begin_line(&w, "log_stream", r->id);
    jw_obj(&w);
    jw_obj_end(&w);
    end_line(&w);
    r->on_output = on_output;
    r->out_ud = ud;
    return call_async(c, r, &w, done, ud, op);
}

/* ===================================================================== */
/* public: network                                                          */

static int do_allow_list(mlk_client *c, const char *method, const char *const *hosts, size_t n, int64_t timeout_ms,
                         int blocking, mlk_done_cb done, void *ud, uint64_t *op, mlk_result **out)
{
    route rt;
    START(c, &rt, blocking, done, ud, out);
    req *r = req_new(c, K_ALLOW, timeout_ms);
    if (!r) return route_fail(c, &rt, 0, MLK_ENOMEM, NULL, out);
    if (op) *op = r->id;
    jw arr;
    jw_init(&arr);
    char *msg = NULL;
    int rc = allow_list_render(hosts, n, &arr, &msg);
    if (rc != 0) {
        jw_free(&arr);
        uint64_t id = r->id;
        req_free(r);
        rc = route_fail(c, &rt, id, rc, msg, out);
        free(msg);
        return rc;
    }
    jw w;
    begin_line(&w, method, r->id);
    jw_obj(&w);
    jw_key(&w, "hosts"); jw_value(&w, arr.buf, arr.len);
    jw_obj_end(&w);
    end_line(&w);
    jw_free(&arr);
    return route_call(c, &rt, r, &w, out);
}

MLK_API int mlk_allow_list_add(mlk_client *c, const char *const *hosts, size_t n, int64_t timeout_ms, mlk_result **out)
{
    return do_allow_list(c, "allow_list_add", hosts, n, timeout_ms, 1, NULL, NULL, NULL, out);
}

MLK_API int mlk_allow_list_delete(mlk_client *c, const char *const *hosts, size_t n, int64_t timeout_ms, mlk_result **out)
{
    return do_allow_list(c, "allow_list_delete", hosts, n, timeout_ms, 1, NULL, NULL, NULL, out);
}

MLK_API int mlk_allow_list_add_async(mlk_client *c, const char *const *hosts, size_t n, int64_t timeout_ms,
                                     mlk_done_cb done, void *ud, uint64_t *op)
{
    return do_allow_list(c, "allow_list_add", hosts, n, timeout_ms, 0, done, ud, op, NULL);
}

MLK_API int mlk_allow_list_delete_async(mlk_client *c, const char *const *hosts, size_t n, int64_t timeout_ms,
                                        mlk_done_cb done, void *ud, uint64_t *op)
{
    return do_allow_list(c, "allow_list_delete", hosts, n, timeout_ms, 0, done, ud, op, NULL);
}

static int do_port_forward(mlk_client *c, const char *const *specs, size_t n, const char *const *addrs, size_t naddrs,
                           int64_t timeout_ms, int blocking, mlk_done_cb done, void *ud, uint64_t *op, mlk_result **out)
{
    route rt;
    START(c, &rt, blocking, done, ud, out);
    req *r = req_new(c, K_PORTFWD, timeout_ms);
    if (!r) return route_fail(c, &rt, 0, MLK_ENOMEM, NULL, out);
    if (op) *op = r->id;
    jw w;
    begin_line(&w, "port_forward", r->id);
    char *msg = NULL;
    int rc = render_port_forward(specs, n, addrs, naddrs, &w, &msg);
    if (rc != 0) {
        jw_free(&w);
        uint64_t id = r->id;
        req_free(r);
        rc = route_fail(c, &rt, id, rc, msg, out);
        free(msg);
        return rc;
    }
    end_line(&w);
    return route_call(c, &rt, r, &w, out);
}

MLK_API int mlk_port_forward(mlk_client *c, const char *const *specs, size_t n, const char *const *addrs,
                             size_t naddrs, int64_t timeout_ms, mlk_result **out)
{
    return do_port_forward(c, specs, n, addrs, naddrs, timeout_ms, 1, NULL, NULL, NULL, out);
}

MLK_API int mlk_port_forward_async(mlk_client *c, const char *const *specs, size_t n, const char *const *addrs,
                                   size_t naddrs, int64_t timeout_ms, mlk_done_cb done, void *ud, uint64_t *op)
{
    return do_port_forward(c, specs, n, addrs, naddrs, timeout_ms, 0, done, ud, op, NULL);
}

/* ===================================================================== */
/* public: CLI side channels                                                */

/* Parse the CLI's JSON stdout into the result's msgpack field. */
static void cli_json_to_mp(mlk_result *r)
{
    if (r->status != 0) return;
    size_t n = r->data_len;
    char *copy = malloc(n + 1);
    if (!copy) { result_fail(r, MLK_ENOMEM, "out of memory"); return; }
    memcpy(copy, r->data, n);
    jdoc d;
    jd_init(&d);
    char *mp;
    size_t mlen;
    if (jd_parse(&d, copy, n) != 0 || json_to_mp_buf(&d, jd_root(&d), &mp, &mlen) != 0) {
        result_fail(r, MLK_EPARSE, "parse volume result: the matchlock command printed something that is not JSON: %.200s", r->data);
    } else {
        r->mp_own = mp;
        r->mp = mp;
        r->mp_len = mlen;
    }
    jd_free(&d);
    free(copy);
}

/* A CLI command run for an async call: on a short-lived thread of its own
 * (the command is a whole process; the thread ends with it).  The job holds
 * a reference on the client so freeing it waits for the job. */
typedef struct cli_job {
    mlk_client *c;
    route rt;
    uint64_t op;
    char *args[8];
    size_t nargs;
    int fail_code, json;
} cli_job;

static void cli_run(cli_job *j)
{
    mlk_result *r = result_new();
    if (r) {
        run_cli(j->c->cfg, (const char *const *)j->args, j->nargs, j->fail_code, r);
        if (j->json) cli_json_to_mp(r);
    }
    route_deliver(j->c, &j->rt, j->op, r);
}

static void *cli_thread(void *p)
{
    cli_job *j = p;
    cli_run(j);
    mlk_client *c = j->c;
    for (size_t i = 0; i < j->nargs; i++) free(j->args[i]);
    free(j);
    client_unref(c);
    return NULL;
}

static int cli_start(mlk_client *c, int blocking, mlk_done_cb done, void *ud, uint64_t *op, mlk_result **out,
                     int fail_code, int json, const char *const *args, size_t nargs)
{
    if (!c) return blocking ? fail_now(MLK_EINVAL, out, "client is NULL") : MLK_EINVAL;
    cli_job *j = calloc(1, sizeof *j);
    if (!j || route_init(&j->rt, blocking, done, ud) != 0) {
        free(j);
        return blocking ? fail_now(MLK_ENOMEM, out, "out of memory") : MLK_ENOMEM;
    }
    j->c = c;
    j->op = c->next_id++;
    if (op) *op = j->op;
    j->fail_code = fail_code;
    j->json = json;
    for (size_t i = 0; i < nargs && i < 8; i++) j->args[j->nargs++] = xstrdup(args[i]);
    if (blocking) { /* run it right here */
        cli_run(j);
        int st = route_finish(&j->rt, out);
        for (size_t i = 0; i < j->nargs; i++) free(j->args[i]);
        free(j);
        return st;
    }
    client_ref(c);
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pthread_t th;
    int rc = pthread_create(&th, &at, cli_thread, j);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&at);
    if (rc != 0) {
        client_unref(c);
        for (size_t i = 0; i < j->nargs; i++) free(j->args[i]);
        free(j);
        return MLK_ENOMEM;
    }
    return 0;
}

MLK_API int mlk_remove(mlk_client *c, mlk_result **out)
{
    if (!c) return fail_now(MLK_EINVAL, out, "remove: client is NULL");
    const char *id = mlk_client_vm_id(c);
    if (!id) return fail_now(MLK_ENOTCREATED, out, "remove: no sandbox was created by this client");
    const char *args[] = {"rm", id};
    return cli_start(c, 1, NULL, NULL, NULL, out, MLK_EREMOVE, 0, args, 2);
}

MLK_API int mlk_remove_async(mlk_client *c, mlk_done_cb done, void *ud, uint64_t *op)
{
    if (!c) return MLK_EINVAL;
    const char *id = mlk_client_vm_id(c);
    if (!id) return MLK_ENOTCREATED;
    const char *args[] = {"rm", id};
    return cli_start(c, 0, done, ud, op, NULL, MLK_EREMOVE, 0, args, 2);
}

MLK_API int mlk_volume_create(const mlk_config *cfg, const char *name, int64_t size_mb, mlk_result **out)
{
    if (!name || !*name) return fail_now(MLK_EVOLUME_NAME, out, "volume create: a volume name is required");
    if (size_mb <= 0) return fail_now(MLK_EVOLUME_SIZE, out, "volume create: the size must be > 0 MB");
    mlk_result *r = result_new();
    if (!r) return MLK_ENOMEM;
    char size[32];
    snprintf(size, sizeof size, "%lld", (long long)size_mb);
    const char *args[] = {"volume", "create", name, "--size", size, "--json"};
    run_cli(cfg, args, 6, MLK_ECLI, r);
    cli_json_to_mp(r);
    return result_give(r, out);
}

MLK_API int mlk_volume_list(const mlk_config *cfg, mlk_result **out)
{
    mlk_result *r = result_new();
    if (!r) return MLK_ENOMEM;
    const char *args[] = {"volume", "ls", "--json"};
    run_cli(cfg, args, 3, MLK_ECLI, r);
    cli_json_to_mp(r);
    return result_give(r, out);
}

MLK_API int mlk_volume_remove(const mlk_config *cfg, const char *name, mlk_result **out)
{
    if (!name || !*name) return fail_now(MLK_EVOLUME_NAME, out, "volume rm: a volume name is required");
    mlk_result *r = result_new();
    if (!r) return MLK_ENOMEM;
    const char *args[] = {"volume", "rm", name};
    run_cli(cfg, args, 3, MLK_ECLI, r);
    return result_give(r, out);
}

MLK_API int mlk_volume_create_async(mlk_client *c, const char *name, int64_t size_mb, mlk_done_cb done, void *ud,
                                    uint64_t *op)
{
    if (!name || !*name) return MLK_EVOLUME_NAME;
    if (size_mb <= 0) return MLK_EVOLUME_SIZE;
    char size[32];
    snprintf(size, sizeof size, "%lld", (long long)size_mb);
    const char *args[] = {"volume", "create", name, "--size", size, "--json"};
    return cli_start(c, 0, done, ud, op, NULL, MLK_ECLI, 1, args, 6);
}

MLK_API int mlk_volume_list_async(mlk_client *c, mlk_done_cb done, void *ud, uint64_t *op)
{
    const char *args[] = {"volume", "ls", "--json"};
    return cli_start(c, 0, done, ud, op, NULL, MLK_ECLI, 1, args, 3);
}

MLK_API int mlk_volume_remove_async(mlk_client *c, const char *name, mlk_done_cb done, void *ud, uint64_t *op)
{
    if (!name || !*name) return MLK_EVOLUME_NAME;
    const char *args[] = {"volume", "rm", name};
    return cli_start(c, 0, done, ud, op, NULL, MLK_ECLI, 0, args, 3);
}

#ifdef MLK_FUZZ
#include "client_fuzz.inc" /* the reader's fuzz entry (build-fuzz only; docs/testing.md) */
#endif
