/* transport.c - the client's side of the pipes to `matchlock rpc`: the
 * request table, writing requests, deadlines and cancels, the death of the
 * child, and the tasks host threads post to the I/O thread.  The threading
 * rules are in client.c. */
#include "client.h"
#include "platform.h"

#include <errno.h>
#include <event2/buffer.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

const char *const method_names[] = {
    "create", "exec", "exec_stream", "exec_pipe", "exec_tty", "write_file", "exec_pipe",
    "read_file", "list_files", "log", "log_stream", "allow_list", "port_forward", "close",
    "cancel",
};

/* The call's name in messages: a large write_file goes as exec_pipe but is
 * the caller's write_file. */
const char *kind_call(int kind) { return kind == K_WRITE_PIPE ? "write_file" : method_names[kind]; }

/* ===================================================================== */
/* I/O thread: request table, output, completion                           */

void table_put(mlk_client *c, req *r)
{
    switch (r->kind) {
    case K_EXEC_STREAM: case K_EXEC_PIPE: case K_EXEC_TTY: case K_WRITE_PIPE: case K_LOG_STREAM:
        if (!r->streams) { r->streams = 1; c->streams++; }
        break;
    default:
        break;
    }
    req **b = &c->table[r->id % NBUCKETS];
    r->hnext = *b;
    *b = r;
}

req *table_get(mlk_client *c, uint64_t id)
{
    for (req *r = c->table[id % NBUCKETS]; r; r = r->hnext)
        if (r->id == id) return r;
    return NULL;
}

void table_del(mlk_client *c, req *r)
{
    for (req **p = &c->table[r->id % NBUCKETS]; *p; p = &(*p)->hnext)
        if (*p == r) { *p = r->hnext; return; }
}

void req_free(req *r)
{
    if (!r) return;
    if (r->streams) r->c->streams--;
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


/* How many of n bytes the socket takes at once (0 when bytes are queued
 * already: they go first). */
static size_t send_now(mlk_client *c, const char *p, size_t n)
{
    if (evbuffer_get_length(c->outbuf) > 0) return 0;
    ssize_t k;
    do k = send(c->in_fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (k < 0 && errno == EINTR);
    return k > 0 ? (size_t)k : 0;
}

/* Send bytes to the child (any thread, io_mu held).  With nothing queued
 * they go straight into the socket (send with MSG_NOSIGNAL: never a
 * SIGPIPE, whichever thread this is); the rest waits in outbuf for the I/O
 * thread, which also notices a dead child. */
void out_add(mlk_client *c, const char *p, size_t n)
{
    if (c->dead || c->detached || c->close_out) return;
    size_t off = send_now(c, p, n);
    if (off < n) {
        evbuffer_add(c->outbuf, p + off, n - off);
        event_add(c->ev_write, NULL);
    }
    c->out_buffered = evbuffer_get_length(c->outbuf);
}

/* The cleanup of a secret line's unsent rest: wipe it, free the line. */
static void secret_line_done(const void *data, size_t len, void *line)
{
    secret_wipe((void *)data, len);
    free(line);
}

/* out_add for a line that holds a secret (create), taking it: what the
 * socket does not take at once is queued by reference, so libevent never
 * copies it, and every byte is wiped before the line is freed. */
static void out_add_secret(mlk_client *c, char *line, size_t n)
{
    int gone = c->dead || c->detached || c->close_out;
    size_t off = gone ? 0 : send_now(c, line, n);
    secret_wipe(line, off);
    if (gone || off == n ||
        evbuffer_add_reference(c->outbuf, line + off, n - off, secret_line_done, line) != 0) {
        secret_wipe(line + off, n - off);
        free(line);
        return;
    }
    event_add(c->ev_write, NULL);
    c->out_buffered = evbuffer_get_length(c->outbuf);
}

static void send_stdin_eof(mlk_client *c, req *r);

static void feed_all(mlk_client *c)
{
    for (int b = 0; b < NBUCKETS; b++)
        for (req *r = c->table[b]; r; r = r->hnext)
            if (r->ready && !r->abandoned && r->feed) feed_more(c, r);
}


void flush_out(mlk_client *c)
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

static IO_EVENT(on_writable, (mlk_client *)ARG)

/* Ask the server to cancel r.  The cancel request stays in the table
 * (abandoned, no caller) so that its answer is a known id, and remembers
 * whom it cancels (cancel_answered). */
static void send_cancel(mlk_client *c, req *r)
{
    req *k = req_new(c, K_CANCEL, 0);
    r->cancel_tries++;
    if (!r->cancel_open) { r->cancel_open = 1; c->cancels_open++; }
    jw w;
    jw_init(&w);
    jw_obj(&w);
    jw_key(&w, "jsonrpc"); jw_str(&w, "2.0");
    jw_key(&w, "method"); jw_str(&w, "cancel");
    jw_key(&w, "params"); jw_obj(&w); jw_key(&w, "id"); jw_uint(&w, r->id); jw_obj_end(&w);
    jw_key(&w, "id"); jw_uint(&w, k ? k->id : c->next_id++);
    jw_obj_end(&w);
    jw_nl(&w);
    if (k) {
        k->abandoned = 1;
        k->target = r->id;
        table_put(c, k);
    }
    if (!w.oom) out_add(c, w.buf, w.len);
    jw_free(&w);
}

/* Give up on a request: its caller gets `status` now, the server is asked
 * to cancel, and whatever the server still sends for it is dropped. */
void abandon(mlk_client *c, req *r, int status, const char *msg)
{
    if (r->abandoned) return;
    r->abandoned = 1;
    if (r->timer) { event_free(r->timer); r->timer = NULL; }
    post_fail(r, status, msg);
    if (c->dead || c->detached) return;
    send_cancel(c, r);
}

static void on_cancel_retry_locked(evutil_socket_t fd, short what, void *arg)
{
    req *r = arg;
    mlk_client *c = r->c;
    if (!c->dead && !c->detached && table_get(c, r->id) == r) send_cancel(c, r);
}

static IO_EVENT(on_cancel_retry, ((req *)ARG)->c)

/* The answer to a cancel the core sent.  Upstream's server answers
 * {"cancelled": false} when the request is not (yet) in its table: a cancel
 * that overtakes the request's own registration (the request runs in a
 * goroutine, the cancel inline) is lost, and the command runs on.  So while
 * the cancelled request is still unanswered, ask again, 2 ms later, doubling
 * up to 100 ms, CANCEL_TRIES times in all.  Meanwhile a close is held back
 * (submit_line): upstream reads nothing while a close waits for in-flight
 * requests, so a cancel sent after it would never be read. */
void cancel_answered(mlk_client *c, req *k, int cancelled)
{
    req *r = table_get(c, k->target);
    if (!r || !r->abandoned) return; /* answered already (and settled then) */
    if (cancelled || r->cancel_tries >= CANCEL_TRIES || c->dead || c->detached) { cancel_settle(c, r); return; }
    if (!r->timer) r->timer = evtimer_new(ioloop_base(), on_cancel_retry, r);
    if (!r->timer) { cancel_settle(c, r); return; }
    long ms = 2L << (r->cancel_tries - 1);
    if (ms > 100) ms = 100;
    struct timeval tv = {0, ms * 1000};
    evtimer_add(r->timer, &tv);
}

void cancel_settle(mlk_client *c, req *r)
{
    if (!r->cancel_open) return;
    r->cancel_open = 0;
    if (--c->cancels_open > 0 || !c->held_close) return;
    out_add(c, c->held_close, c->held_close_len);
    c->close_out = 1;
    free(c->held_close);
    c->held_close = NULL;
}

void free_graveyard(mlk_client *c)
{
    while (c->graveyard) {
        req *r = c->graveyard;
        c->graveyard = r->hnext;
        req_free(r);
    }
}

static void on_timeout_locked(evutil_socket_t fd, short what, void *arg)
{
    req *r = arg;
    /* answered by a waiting thread while this timer fired: r waits in the
     * graveyard for the I/O thread to free it */
    if (table_get(r->c, r->id) != r) return;
    char msg[128];
    snprintf(msg, sizeof msg, "%s: deadline of %lld ms exceeded (the call was cancelled)",
             kind_call(r->kind), (long long)r->timeout_ms);
    abandon(r->c, r, MLK_ETIMEDOUT, msg);
}

static IO_EVENT(on_timeout, ((req *)ARG)->c)

void fail_all(mlk_client *c, int status, const char *msg)
{
    free_graveyard(c);
    free(c->held_close);
    c->held_close = NULL;
    c->cancels_open = 0;
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

void stop_events(mlk_client *c)
{
    if (c->ev_read) { event_free(c->ev_read); c->ev_read = NULL; }
    if (c->ev_write) { event_free(c->ev_write); c->ev_write = NULL; }
    if (c->ev_exit) { event_free(c->ev_exit); c->ev_exit = NULL; }
}

void release_child_fds(mlk_client *c)
{
    pthread_mutex_lock(&c->io_mu);
    stop_events(c);
    read_stderr(c);
    if (c->ev_err) { event_free(c->ev_err); c->ev_err = NULL; }
    if (c->in_fd >= 0) { close(c->in_fd); c->in_fd = -1; }
    if (c->out_fd >= 0) { close(c->out_fd); c->out_fd = -1; }
    if (c->err_fd >= 0) { close(c->err_fd); c->err_fd = -1; }
    if (c->pid_fd >= 0) { close(c->pid_fd); c->pid_fd = -1; }
    pthread_mutex_unlock(&c->io_mu);
}

/* ---- the child's exit ----------------------------------------------------
 * Death is not only EOF: a server that dies while a process it started
 * keeps its stdout open would otherwise leave every call waiting.  The I/O
 * thread watches the child itself (a pidfd; where there is none, a 50 ms
 * waitid(WNOWAIT) poll), without reaping it (close does that). */

void child_exited(mlk_client *c)
{
    if (c->dead || c->detached) return;
    if (c->read_paused) { c->exited = 1; return; } /* t_resume comes back here */
    /* what it wrote before it died is still in the pipe: read it first */
    if (c->ev_read) on_readable_locked(c->out_fd, EV_READ, c);
    if (c->dead || c->detached || c->read_paused) { if (c->read_paused) c->exited = 1; return; }
    int signaled = 0, code = 0;
    char why[200];
    if (plat_child_gone(c->pid, &signaled, &code) && signaled)
        snprintf(why, sizeof why, "connection closed: the matchlock process was killed by signal %d "
                 "(a process it started still holds its output)", code);
    else
        snprintf(why, sizeof why, "connection closed: the matchlock process exited with status %d "
                 "(a process it started still holds its output)", code);
    die(c, MLK_EDEAD, why);
}

static void on_child_exit_locked(evutil_socket_t fd, short what, void *arg)
{
    mlk_client *c = arg;
    int signaled, code;
    if (c->pid_fd < 0 && !plat_child_gone(c->pid, &signaled, &code)) return; /* polling */
    if (c->ev_exit) { event_free(c->ev_exit); c->ev_exit = NULL; }
    child_exited(c);
}

static IO_EVENT(on_child_exit, (mlk_client *)ARG)

static void watch_child(mlk_client *c)
{
    struct event_base *b = ioloop_base();
    c->pid_fd = plat_child_watch_fd(c->pid);
    if (c->pid_fd >= 0) {
        c->ev_exit = event_new(b, c->pid_fd, EV_READ, on_child_exit, c);
        if (c->ev_exit) event_add(c->ev_exit, NULL);
        return;
    }
    c->pid_fd = -1;
    c->ev_exit = event_new(b, -1, EV_PERSIST, on_child_exit, c);
    struct timeval tv = {0, 50000};
    if (c->ev_exit) event_add(c->ev_exit, &tv);
}


void die(mlk_client *c, int status, const char *why)
{
    if (c->dead) return;
    c->dead = 1;
    /* after the host's close the child is expected to go: what it leaves
     * unanswered lost the race with that close, it did not crash */
    if (c->closing && status == MLK_EDEAD) status = MLK_ECLOSED;
    read_stderr(c); /* what it said before it died is already in the pipe */
    pthread_mutex_lock(&c->mu);
    /* a launcher's banner (stdout before any message) often says what went wrong */
    size_t bl = c->spoke ? 0 : c->banner_len;
    while (bl && c->banner[bl - 1] == '\n') bl--;
    char *msg = xasprintf("%s%s%s%.*s%s%.*s", status == MLK_ECLOSED ? "client closed (the matchlock process exited "
                          "after close was called): " : "", why, bl ? "; its stdout began with: " : "", (int)bl, c->banner,
                          c->tail_len ? "; its stderr ends with: " : "", (int)c->tail_len, c->tail);
    free(c->dead_msg);
    c->dead_msg = msg;
    c->dead_status = status;
    pthread_mutex_unlock(&c->mu);
    stop_events(c);
    fail_all(c, status, msg ? msg : why);
}

/* ===================================================================== */
/* I/O thread: tasks posted by host threads                                */

/* Register r and send its line (any thread): the caller's own thread
 * writes the request; the I/O thread only reads the answer.  A dead or
 * closed client completes r at once with the reason, and so does a client
 * whose close was submitted: a call that passed its op's open-state check
 * while another thread closed is never written after the close line (the
 * server reads nothing after it).  Takes line. */
void submit_line(mlk_client *c, req *r, char *line, size_t len)
{
    int secret = r->secret_line;
    pthread_mutex_lock(&c->io_mu);
    if (c->closing && r->kind != K_CLOSE) {
        post_fail(r, MLK_ECLOSED, "client closed: close was called before this call was sent");
        req_free(r);
    } else if (c->dead || c->detached) {
        pthread_mutex_lock(&c->mu);
        /* the official SDKs' wording for a call made after the process is gone, then our detail */
        char *m = c->detached ? xstrdup("client closed") : xasprintf("Matchlock process not running (%s)", c->dead_msg);
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
        if (r->kind == K_CLOSE) c->closing = 1;
        if (r->kind == K_CLOSE && c->cancels_open > 0 && !c->held_close) {
            c->held_close = line; /* cancel_settle sends it */
            c->held_close_len = len;
            line = NULL;
        } else if (secret) {
            out_add_secret(c, line, len);
            line = NULL;
        } else {
            out_add(c, line, len);
            if (r->kind == K_CLOSE) c->close_out = 1;
        }
    }
    pthread_mutex_unlock(&c->io_mu);
    if (line && secret) secret_wipe(line, len);
    free(line);
}

/* Queue or send a stdin-side notification for r. */
void send_notice(mlk_client *c, req *r, int type, const char *tail, size_t tlen)
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
void feed_more(mlk_client *c, req *r)
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
        snprintf(msg, sizeof msg, "%s: cancelled by the caller", kind_call(r->kind));
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
    watch_child(c);
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
