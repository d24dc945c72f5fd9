/* reader.c - the I/O thread's reading side: the child's stdout lines
 * (responses, notifications, output), its stderr tail, and the queue items
 * that carry results and output back to the host.  The threading rules are
 * in client.c. */
#include "client.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void done_run(qitem *it)
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

void done_drop(qitem *it)
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
    atomic_fetch_sub(&e->c->queued_events, 1);
    event_deliver(e->c, e->data, e->len);
    free(e);
}

static void event_drop(qitem *it)
{
    event_item *e = (event_item *)it;
    atomic_fetch_sub(&e->c->queued_events, 1);
    free(e);
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

static void t_resume_locked(void *p)
{
    mlk_client *c = p;
    if (c->read_paused && c->queued_out < OUT_LOW && c->ev_read && !c->dead && !c->detached) {
        c->read_paused = 0;
        event_add(c->ev_read, NULL);
        if (c->exited) child_exited(c);
    }
}

static IO_TASK(t_resume, (mlk_client *)ARG)

/* Host thread, after an output callback. */
static void output_consumed(mlk_client *c, size_t n)
{
    size_t left = atomic_fetch_sub(&c->queued_out, n) - n; /* clang 14 rejects the value of `a -= n` on _Atomic */
    if (left < OUT_LOW && c->read_paused) ioloop_post(t_resume, c);
}

/* A notification for r that cannot be delivered: the call fails (and is
 * cancelled on the server) rather than lose the data silently. */
static void output_lost(mlk_client *c, req *r, int status, const char *method, const char *why)
{
    char msg[256];
    snprintf(msg, sizeof msg, "%s: the server's %s notification %s; the call was cancelled",
             kind_call(r->kind), method, why);
    abandon(c, r, status, msg);
}

/* Queue a chunk of output: the base64 is decoded straight into the item
 * handed to the callback (one pass over the bytes, no copy).  Without a
 * callback the data is only checked. */
static void post_output(mlk_client *c, req *r, const char *method, int fd, const jnode *b64)
{
    if (!b64 || b64->type != JN_STR) {
        output_lost(c, r, MLK_EPROTO, method, "has no base64 \"data\" string (protocol error)");
        return;
    }
    out_item *o = r->on_output ? malloc(sizeof *o + b64->len / 4 * 3 + 3) : NULL;
    if (r->on_output && !o) { output_lost(c, r, MLK_ENOMEM, method, "could not be stored (out of memory)"); return; }
    /* without a callback the bytes are only checked, decoded in place */
    long long dn = b64_decode(b64->s, b64->len, o ? (unsigned char *)o->data : (unsigned char *)b64->s);
    if (dn < 0) {
        free(o);
        output_lost(c, r, MLK_EPROTO, method, "carries invalid base64 (protocol error)");
        return;
    }
    if (!o) return;
    size_t n = (size_t)dn;
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
        if (!params) return;
        if (atomic_load(&c->queued_events) >= EVENT_QUEUE_MAX) {
            note_dropped(c, &c->dropped_events);
        } else if (json_to_mp_buf(d, params, &mp, &n) == 0) {
            event_item *e = malloc(sizeof *e + n);
            if (e) {
                e->base.run = event_run;
                e->base.drop = event_drop;
                e->c = c;
                e->len = n;
                memcpy(e->data, mp, n);
                atomic_fetch_add(&c->queued_events, 1);
                queue_push(&c->mainq, &e->base);
            }
            free(mp);
        }
        if (c->hooks) hooks_on_file_event(c, d, jd_get(d, params, "file"));
        return;
    }
    uint64_t id;
    if (jn_uint(jd_get(d, params, "id"), &id) != 0) return;
    req *r = table_get(c, id);
    if (!r && (id == 0 || id >= c->next_id)) {
        char why[160];
        snprintf(why, sizeof why, "protocol error: the server sent %.40s for id %llu, which this client never used",
                 method, (unsigned long long)id);
        die(c, MLK_EPROTO, why);
        return;
    }
    if (!r || r->abandoned) return; /* late output of a call already answered or given up */
    const char *dot = strrchr(method, '.');
    if (!dot) return;
    dot++;
    if (strcmp(dot, "ready") == 0) { on_ready(c, r); return; }
    int fd = strcmp(dot, "stderr") == 0 ? 2 : 1;
    if (fd == 1 && strcmp(dot, "stdout") != 0 && strcmp(dot, "data") != 0) return;
    const jnode *data = jd_get(d, params, "data");
    if (r->kind != K_WRITE_PIPE || fd == 1) {
        post_output(c, r, method, fd, data);
        return;
    }
    /* a big write's `cat` keeps its stderr for the error message */
    const char *p;
    size_t n;
    if (decode_field(data, &p, &n) != 0 || !data) {
        output_lost(c, r, MLK_EPROTO, method, "carries no valid base64 \"data\" (protocol error)");
        return;
    }
    if (r->errlen >= WRITE_ERR_MAX) return;
    size_t k = n < WRITE_ERR_MAX - r->errlen ? n : WRITE_ERR_MAX - r->errlen;
    char *e = realloc(r->errbuf, r->errlen + k + 1);
    if (e) {
        memcpy(e + r->errlen, p, k);
        r->errlen += k;
        e[r->errlen] = '\0';
        r->errbuf = e;
    }
}

/* An integer member of a server's answer that must lie in [lo, hi]: 0 with
 * *v (def when absent or null), or -1 after failing out with MLK_EPROTO.  A
 * value out of range is never cut down to one that fits (4294967296 read
 * as an int is 0: a failed command would look successful). */
static int int_member(mlk_result *out, const jdoc *d, const jnode *obj, const char *what, const char *key,
                      int64_t lo, int64_t hi, int64_t def, int64_t *v)
{
    const jnode *n = jd_get(d, obj, key);
    int64_t x;
    if (!n || n->type == JN_NULL) { *v = def; return 0; }
    if (jn_int(n, &x) == 0 && x >= lo && x <= hi) { *v = x; return 0; }
    int shown = n->type == JN_NUM ? (int)(n->len > 40 ? 40 : n->len) : 0;
    result_fail(out, MLK_EPROTO, "protocol error: the server's %s has \"%s\": %s%.*s, which is not an integer in "
                "[%lld, %lld]", what, key, shown ? "" : "a value of another type", shown, shown ? n->s : "",
                (long long)lo, (long long)hi);
    return -1;
}

/* Build the result of a successful response.  *steal is set when the
 * result took ownership of the whole line buffer. */
static mlk_result *make_result(mlk_client *c, req *r, const jnode *res, int *steal)
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
        if (!name_valid(id)) { /* `rm` would put it on a command line */
            result_fail(out, MLK_EPROTO, "protocol error: the server's VM id \"%.80s%s\" does not match %s; it is "
                        "not kept, so no command line ever gets it", id, strlen(id) > 80 ? "..." : "", NAME_RULE);
            break;
        }
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
    case K_EXEC_STREAM: case K_EXEC_PIPE: case K_EXEC_TTY: {
        /* any int: a Go server reports a command killed by a signal as -1 */
        int64_t ec, ms;
        if (int_member(out, d, res, "exec result", "exit_code", INT_MIN, INT_MAX, -1, &ec) != 0 ||
            int_member(out, d, res, "exec result", "duration_ms", 0, INT64_MAX, 0, &ms) != 0)
            break;
        out->exit_code = (int)ec;
        out->duration_ms = ms;
        break;
    }
    case K_WRITE_PIPE: {
        int64_t ec;
        if (int_member(out, d, res, "write_file result", "exit_code", INT_MIN, INT_MAX, -1, &ec) != 0) break;
        if (ec != 0) {
            out->rpc_code = -32002;
            char *e = text_escape(r->errbuf ? r->errbuf : "", r->errlen); /* the guest's bytes, NULs included */
            result_fail(out, MLK_ERPC, "write_file %s: %s", r->path ? r->path : "",
                        r->errlen && e ? e : "the copy command failed");
            free(e);
        }
        out->exit_code = -1;
        break;
    }
    case K_READ: case K_LOG:
        if (decode_field(jd_get(d, res, "content"), &p, &n) != 0) {
            result_fail(out, MLK_EPARSE, "parse %s result: content is not valid base64", method_names[r->kind]);
            break;
        }
        if (n >= STEAL_MIN) {
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

/* The first QUOTE_MAX bytes of a line for a message, escaped as every
 * message is (text_escape: control bytes, NULs and what is not UTF-8 as
 * \xNN), "..." after a longer line; malloc'd, NULL when out of memory.
 * `parsed`: jd_parse ran on the line, which ends each string in place with
 * a NUL where its closing quote was (a raw NUL cannot be in a line that
 * parsed; a string with escapes shows its unescaped text and then what is
 * left of the escapes). */
#define QUOTE_MAX 72
static char *quote_line(const char *p, size_t n, int parsed)
{
    char raw[QUOTE_MAX + 3];
    size_t k = n < QUOTE_MAX ? n : QUOTE_MAX;
    for (size_t i = 0; i < k; i++) raw[i] = parsed && p[i] == '\0' ? '"' : p[i];
    if (k < n) { memcpy(raw + k, "...", 3); k += 3; }
    return text_escape(raw, k);
}

/* A line that is not a JSON-RPC message.  Before the first message it is a
 * launcher's banner, kept (up to BANNER_MAX bytes) for the error message;
 * after it, or beyond that much, the session fails. */
static void not_a_message(mlk_client *c, const char *line, size_t len, int parsed)
{
    char why[400];
    if (!c->spoke && c->banner_len + len + 1 <= BANNER_MAX) {
        memcpy(c->banner + c->banner_len, line, len);
        c->banner_len += len;
        c->banner[c->banner_len++] = '\n';
        return;
    }
    if (c->spoke) {
        char *q = quote_line(line, len, parsed);
        snprintf(why, sizeof why, "protocol error: the server sent a line that is not a JSON-RPC message: \"%s\"", q ? q : "");
        free(q);
    } else
        snprintf(why, sizeof why, "protocol error: the server printed more than %d bytes before its first "
                 "JSON-RPC message", BANNER_MAX);
    die(c, MLK_EPROTO, why);
}

static void answer(mlk_client *c, req *r, const jnode *root, int *steal);

static void handle_line(mlk_client *c, char *line, size_t len, int *steal)
{
    size_t i = 0;
    while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) i++;
    if (i == len) return;
    jdoc *d = &c->doc;
    if (line[i] != '{') { not_a_message(c, line, len, 0); return; }
    if (jd_parse(d, line, len) != 0) {
        if (d->err == jd_err_budget) { /* well-formed maybe, but too costly to hold: only its call fails */
            char what[160];
            snprintf(what, sizeof what, "holds more JSON values than a line of %zu bytes may (%zu)", len, jd_budget(len));
            size_t k = len - i < LINE_KEEP ? len - i : LINE_KEEP;
            line_refused(c, line + i, k, line + len - k, k, what);
            return;
        }
        char why[160];
        snprintf(why, sizeof why, "protocol error: the server sent a malformed line (%s)", d->err);
        die(c, MLK_EPROTO, why);
        return;
    }
    const jnode *root = jd_root(d);
    const jnode *idn = jd_get(d, root, "id");
    const char *method = jd_str(d, root, "method", NULL);
    if (!method && !idn && !jd_get(d, root, "result") && !jd_get(d, root, "error")) {
        not_a_message(c, line, len, 1);
        return;
    }
    c->spoke = 1;
    if (method && (!idn || idn->type == JN_NULL)) {
        on_notification(c, method, jd_get(d, root, "params"));
        return;
    }
    uint64_t id;
    req *r = idn && jn_uint(idn, &id) == 0 ? table_get(c, id) : NULL;
    if (!r) {
        /* Only ids this client sent and has not seen answered are legitimate
         * (abandoned calls and the core's own cancels stay in the table). */
        char *q = quote_line(line, len, 1), why[400];
        const char *em = jd_str(d, jd_get(d, root, "error"), "message", NULL);
        if ((!idn || idn->type == JN_NULL) && em) /* e.g. a parse error: upstream sends it without an id */
            snprintf(why, sizeof why, "protocol error: the server reported an error for no request: %.120s", em);
        else
            snprintf(why, sizeof why, "protocol error: the server answered an id this client is not waiting for: \"%s\"", q ? q : "");
        free(q);
        die(c, MLK_EPROTO, why);
        return;
    }
    table_del(c, r);
    if (r->abandoned) {
        if (r->kind == K_CANCEL) {
            const jnode *res = jd_get(d, root, "result");
            cancel_answered(c, r, !res || jd_bool(d, res, "cancelled", 1));
        } else {
            cancel_settle(c, r);
        }
        req_free(r);
        return;
    }
    answer(c, r, root, steal);
    req_free(r);
}

/* r (out of the table, not abandoned) is answered by the response root;
 * the caller frees r. */
static void answer(mlk_client *c, req *r, const jnode *root, int *steal)
{
    jdoc *d = &c->doc;
    const jnode *err = jd_get(d, root, "error");
    mlk_result *res;
    if (err && err->type == JN_OBJ) {
        res = result_new();
        int64_t code;
        if (res && int_member(res, d, err, "error", "code", INT_MIN, INT_MAX, -32603, &code) == 0) {
            res->rpc_code = (int)code;
            result_fail(res, code == -32003 ? MLK_ECANCELED : MLK_ERPC, "%s: %s (code %d)",
                        kind_call(r->kind), jd_str(d, err, "message", "error"), (int)code);
        }
    } else {
        res = make_result(c, r, jd_get(d, root, "result"), steal);
    }
    post_done(r, res);
}

/* Handle every complete line in the buffer.  What is left of a partial
 * line stays where it is (c->off); on_readable_locked moves it to the
 * front only when the buffer lacks room for the next read, so a stream of
 * lines longer than one read is not copied once per read. */
static void process_lines(mlk_client *c)
{
    size_t start = c->off;
    for (;;) {
        char *nl = memchr(c->buf + c->scan, '\n', c->len - c->scan);
        if (!nl) break;
        size_t end = (size_t)(nl - c->buf);
        int steal = 0;
        handle_line(c, c->buf + start, end - start, &steal);
        if (c->dead || c->detached) return;
        if (steal) {
            size_t rem = c->len - end - 1;
            size_t cap = rem + 65536;
            char *nb = malloc(cap);
            if (!nb) { c->buf = NULL; c->off = c->len = c->cap = c->scan = 0; die(c, MLK_ENOMEM, "out of memory"); return; }
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
    if (start == c->len) start = c->len = 0; /* all handled: the next read starts at the front */
    c->off = start;
    c->scan = c->len;
    if (c->len == 0 && c->cap > LINE_BUF_KEEP) { /* a big line's buffer is not kept for the small ones */
        free(c->buf);
        c->buf = NULL;
        c->cap = 0;
    }
}

/* At EOF on stdout the child is usually about to exit, and its last words
 * (ssh's "Connection to HOST closed by remote host.") may still be on
 * their way to stderr: wait for stderr's EOF, at most ms, so that the
 * error of every pending call carries them. */
static void settle_stderr(mlk_client *c, int ms)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        read_stderr(c);
        if (!c->ev_err) return;
        clock_gettime(CLOCK_MONOTONIC, &t);
        long left = ms - ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
        if (left <= 0) return;
        struct pollfd pf = {.fd = c->err_fd, .events = POLLIN};
        if (poll(&pf, 1, (int)left) < 0 && errno != EINTR) return;
    }
}

/* At least 64 KiB free at the end of the line buffer: the partial line
 * moves to the front only when the room is short.  -1: out of memory. */
static int make_room(mlk_client *c)
{
    if (c->cap - c->len < 65536 && c->off > 0) { /* the partial line to the front */
        memmove(c->buf, c->buf + c->off, c->len - c->off);
        c->len -= c->off;
        c->scan -= c->off;
        c->off = 0;
    }
    if (c->cap - c->len >= 65536) return 0;
    size_t cap = c->cap ? c->cap * 2 : 256 * 1024;
    while (cap - c->len < 65536) cap *= 2;
    char *nb = realloc(c->buf, cap);
    if (!nb) return -1;
    c->buf = nb;
    c->cap = cap;
    return 0;
}

void on_readable_locked(evutil_socket_t fd, short what, void *arg)
{
    mlk_client *c = arg;
    free_graveyard(c);
    if (c->dead || c->detached) return;
    if (c->scan < c->len) { /* lines a blocking caller left (self_lines) */
        process_lines(c);
        if (c->dead || c->detached) return;
    }
    if (line_too_long(c)) return;
    for (int rounds = 0; rounds < 8 && !c->dead && !c->detached && !c->read_paused; rounds++) {
        if (make_room(c) != 0) { die(c, MLK_ENOMEM, "out of memory reading the server's output"); return; }
        size_t room = c->cap - c->len - 1;
        ssize_t n = read(c->out_fd, c->buf + c->len, room);
        if (n > 0) {
            c->len += (size_t)n;
            if (c->skip_len > 0 && !line_skip_more(c)) {
                if ((size_t)n < room) return;
                continue;
            }
            if (c->dead || c->detached) return;
            process_lines(c);
            if (c->dead || c->detached || line_too_long(c)) return;
            if ((size_t)n < room) return; /* drained: the loop calls again when more comes */
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (n < 0 && errno == EINTR) continue;
        settle_stderr(c, 50);
        die(c, MLK_EDEAD, "connection closed: the matchlock process exited or closed its output");
        return;
    }
}

IO_EVENT(on_readable, (mlk_client *)ARG)

/* ---- a blocking caller reads its own answer ----------------------------
 * While a blocking caller spins for its answer (queue_wait), it reads the
 * child's stdout itself whenever the I/O thread is not at it (trylock):
 * the answer then reaches the caller without waking the I/O thread first
 * and being handed over by it, one cross-CPU wake-up less per call (issue
 * 15).  The caller handles only what is safe off the I/O thread: a small
 * response to a call that is not abandoned and is not a create, close or
 * cancel.  Answering it must free no event (event_free and event_del wait
 * for a running callback, which may be waiting for io_mu held here): a
 * call with a deadline timer goes to c->graveyard, and the I/O thread
 * frees it and its timer (a timer that fires meanwhile finds the call
 * gone from the table and does nothing).  At the first line that is anything else
 * (a notification, a malformed line, an unknown id...) it stops, leaves
 * that line and what follows in the buffer and wakes the I/O thread,
 * which handles them as if it had read them (on_readable_locked).  The
 * caller parses a copy: jd_parse writes into its input, and the line may
 * still go to the I/O thread. */
#define SELF_LINE_MAX 8192   /* far below STEAL_MIN: such an answer never takes the buffer */

static int self_kind(int kind)
{
    switch (kind) {
    case K_EXEC: case K_EXEC_STREAM: case K_EXEC_PIPE: case K_EXEC_TTY: case K_WRITE: case K_WRITE_PIPE:
    case K_READ: case K_LIST: case K_LOG: case K_ALLOW: case K_PORTFWD:
        return 1;
    default:
        return 0;
    }
}

/* 1: the line was handled here; 0: it is the I/O thread's. */
static int self_line(mlk_client *c, const char *line, size_t len)
{
    char tmp[SELF_LINE_MAX];
    size_t i = 0;
    while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) i++;
    if (i == len) return 1; /* blank: handle_line skips it too */
    if (line[i] != '{' || len >= sizeof tmp) return 0;
    memcpy(tmp, line, len);
    jdoc *d = &c->doc;
    if (jd_parse(d, tmp, len) != 0) return 0;
    const jnode *root = jd_root(d);
    const jnode *idn = jd_get(d, root, "id");
    uint64_t id;
    if (jd_get(d, root, "method") || !idn || jn_uint(idn, &id) != 0) return 0;
    if (!jd_get(d, root, "result") && !jd_get(d, root, "error")) return 0;
    req *r = table_get(c, id);
    if (!r || r->abandoned || !self_kind(r->kind)) return 0;
    c->spoke = 1;
    table_del(c, r);
    int steal = 0;
    answer(c, r, root, &steal);
    if (r->timer) { /* its timer is the I/O thread's to free (on_timeout skips r now) */
        r->hnext = c->graveyard;
        c->graveyard = r;
    } else {
        req_free(r);
    }
    return 1;
}

/* process_lines for a blocking caller: 1 when it handled a line. */
static int self_lines(mlk_client *c)
{
    size_t start = c->off;
    int handled = 0;
    for (;;) {
        char *nl = memchr(c->buf + c->scan, '\n', c->len - c->scan);
        if (!nl) break;
        size_t end = (size_t)(nl - c->buf);
        if (!self_line(c, c->buf + start, end - start)) {
            c->off = c->scan = start; /* from here on the I/O thread's */
            event_active(c->ev_read, EV_READ, 0);
            return handled;
        }
        handled = 1;
        start = end + 1;
        c->scan = start;
    }
    if (start == c->len) start = c->len = 0;
    c->off = start;
    c->scan = c->len;
    /* too_long and free_graveyard are the I/O thread's */
    if (c->len - c->off > c->cfg->max_line || c->graveyard) event_active(c->ev_read, EV_READ, 0);
    return handled;
}

int reader_self_read(void *arg)
{
    mlk_client *c = arg;
    if (client_inherited(c)) return 0; /* across fork(): the pipes are the parent's */
    if (c->streams) return 0; /* output notifications are coming: the I/O thread's */
    struct pollfd p = {.fd = __atomic_load_n(&c->out_fd, __ATOMIC_RELAXED), .events = POLLIN};
    if (p.fd < 0 || poll(&p, 1, 0) != 1 || !(p.revents & POLLIN)) return 0;
    if (pthread_mutex_trylock(&c->io_mu) != 0) return 0;
    int handled = 0;
    if (!c->dead && !c->detached && !c->read_paused && !c->streams && c->ev_read && c->out_fd >= 0 &&
        c->scan == c->len && c->skip_len == 0 &&
        make_room(c) == 0) {
        ssize_t n = read(c->out_fd, c->buf + c->len, c->cap - c->len - 1);
        if (n > 0) {
            c->len += (size_t)n;
            handled = self_lines(c);
        }
        /* EOF and errors stay for the I/O thread, which sees them too */
    }
    pthread_mutex_unlock(&c->io_mu);
    return handled;
}

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

void read_stderr(mlk_client *c)
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

#ifdef MLK_FUZZ
#include "client_fuzz.inc" /* the reader's fuzz entry (build-fuzz only; docs/testing.md) */
#endif
