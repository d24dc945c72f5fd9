/* client.h - the client's private structures, shared by the client's files
 * (client.c: lifecycle and routing; transport.c and reader.c: the RPC state
 * machine; ops_*.c: the operations) and hooks.c (hook sockets, tokens and
 * chains).
 * See client.c for the threading rules behind the "I/O" marks. */
#ifndef MLK_CLIENT_H
#define MLK_CLIENT_H

#include "internal.h"
#include "loop.h"
#include "process.h"

#include <event2/buffer.h>
#include <stdatomic.h>

enum {
    K_CREATE, K_EXEC, K_EXEC_STREAM, K_EXEC_PIPE, K_EXEC_TTY, K_WRITE, K_WRITE_PIPE,
    K_READ, K_LIST, K_LOG, K_LOG_STREAM, K_ALLOW, K_PORTFWD, K_CLOSE,
    K_CANCEL,  /* a cancel the core sent: in the table only so its answer is known */
};


#define NBUCKETS 64
#define STEAL_MIN (64 * 1024)          /* results this big take the line buffer */
#define FEED_HIGH (1024 * 1024)        /* stop feeding stdin above this many buffered bytes */
#define STDIN_LIMIT (8 * 1024 * 1024)  /* mlk_stdin_write answers MLK_EAGAIN above this */
#define SERVER_MAX_LINE (10 * 1024 * 1024)
#define CANCEL_TRIES 10            /* cancels sent for one request at most (about 0.5 s) */


typedef struct pline {
    struct pline *next;
    size_t len;
    char data[];
} pline;

struct waiter;

typedef struct req {
    uint64_t id;
    int kind;
    struct mlk_client *c;
    mlk_queue *q;                 /* where this call's callbacks go */
    struct waiter *w;             /* blocking caller, or NULL */
    mlk_done_cb done;
    mlk_output_cb on_output;
    mlk_ready_cb on_ready;
    void *ud;                     /* for done */
    void *out_ud;                 /* for on_output and on_ready */
    int64_t timeout_ms;
    struct event *timer;          /* I/O */
    int ready, abandoned, interactive;
    uint64_t target;              /* K_CANCEL: the id it cancels */
    int cancel_tries;             /* abandoned: cancels sent for it so far */
    int cancel_open;              /* abandoned: its cancel is not yet known to have landed */
    int streams;                  /* counted in c->streams (table_put) */
    pline *pend, *pend_tail;      /* stdin held until ready (I/O) */
    char *feed;                   /* stdin to push after ready (owned) */
    size_t feed_len, feed_off;
    int eof_sent;
    int secret_line;              /* its line holds a secret (create): wiped, never copied */
    char *errbuf;                 /* K_WRITE_PIPE: collected stderr */
    size_t errlen;
    char *path;                   /* K_WRITE_PIPE: for messages */
    struct req *hnext;
} req;

enum { ST_OPEN, ST_CLOSING, ST_CLOSED };

struct mlk_client {
    mlk_config *cfg;
    pid_t pid;
    int in_fd, out_fd, err_fd;
    mlk_queue mainq;
    _Atomic uint64_t next_id;
    _Atomic size_t stdin_pending;  /* stdin bytes posted but not yet in outbuf */
    _Atomic size_t out_buffered;   /* outbuf length, as last seen by the I/O thread */
    _Atomic int in_dispatch;
    _Atomic size_t queued_out;     /* stream output bytes queued for the host */
    _Atomic int read_paused;       /* the I/O thread stopped reading the child (flow control) */
    _Atomic int free_pending;

    /* The child's socket, the request table and the read state: taken by
     * the I/O thread while it works on this client and by host threads
     * while they register and send a request (recursive). */
    pthread_mutex_t io_mu;
    /* under io_mu: */
    struct event *ev_read, *ev_write, *ev_err;
    struct event *ev_exit;        /* the child's exit: its pidfd, or a polling timer */
    int pid_fd;                   /* -1 when none */
    int exited;                   /* the child exited; seen while reading was paused */
    struct evbuffer *outbuf;
    char *buf;
    size_t off, len, cap, scan;   /* buf: unprocessed bytes are [off, len); scanned for '\n' up to scan */
    jdoc doc;
    req *table[NBUCKETS];
    int dead, detached;
    int spoke;                    /* a valid JSON-RPC message arrived */
    int cancels_open;             /* requests with cancel_open set */
    _Atomic int streams;          /* requests in the table that get notifications (req.streams): while
                                   * any is, a blocking caller leaves all reading to the I/O thread */
    req *graveyard;               /* answered by a waiting thread with their deadline timer still
                                   * set (hnext list): the I/O thread frees them (free_graveyard) */
    int closing;                  /* the host's close was submitted: no request is sent after it, and
                                   * the child's exit fails what is pending as closed, not dead */
    int close_out;                /* the close line is written: nothing else is (the server reads no more) */
    char *held_close;             /* the close line, held while cancels_open > 0 */
    size_t held_close_len;
    char banner[BANNER_MAX];      /* stdout lines before it (a launcher's banner) */
    size_t banner_len;
    /* an oversized line being discarded (skip_len > 0): its length so
     * far, and its first and last LINE_KEEP bytes, which may name its id */
    uint64_t skip_len;
    char skip_head[LINE_KEEP], skip_tail[LINE_KEEP];
    size_t skip_head_len, skip_tail_len;

    /* shared, under mu */
    pthread_mutex_t mu;
    int state;
    char *vm_id;
    char *workspace;              /* the created sandbox's vfs.workspace as given, or NULL (guest_path_canon) */
    char *dead_msg;
    int dead_status;
    char tail[STDERR_TAIL];
    size_t tail_len;
    mlk_event_cb event_cb;
    void *event_ud;

    /* bounded host queues (reader.c, hooks.c): items waiting in mainq,
     * items dropped since the last notice, and whether a notice waits */
    _Atomic size_t queued_events, queued_after;
    _Atomic size_t dropped_events, dropped_after;
    _Atomic int notice_queued;

    /* hooks (hooks.c) */
    struct hookrt *hooks;         /* NULL until a create with hooks */
    _Atomic int tokens_out;       /* references: unanswered mlk_hook_calls, CLI jobs */
    int creating;                 /* a create is in flight (under mu) */
    _Atomic int free_deferred;    /* mlk_client_free waits for tokens_out == 0 */
    unsigned fork_gen;            /* ioloop_fork_generation() when made */
};

/* ===================================================================== */
/* queue items                                                            */

typedef struct waiter {
    mlk_queue q;
    struct mlk_client *c;         /* whose answers the waiter may read itself */
    mlk_result *res;
    int done;
} waiter;

typedef struct done_item {
    qitem base;
    mlk_done_cb done;
    void *ud;
    uint64_t op;
    mlk_result *res;
    waiter *w;
} done_item;

/* ---- shared by the client's files (client.c, transport.c, reader.c, ops_*.c) */
extern const char *const method_names[];

/* I/O-thread entry points run their _locked body under the client's io_mu
 * (host threads take it too, to register and send requests).  Prefix
 * `static` for one used in its own file only. */
#define IO_EVENT(name, client_of)                                   \
    void name(evutil_socket_t fd, short what, void *ARG)            \
    {                                                               \
        mlk_client *lc = client_of;                                 \
        pthread_mutex_lock(&lc->io_mu);                             \
        name##_locked(fd, what, ARG);                               \
        pthread_mutex_unlock(&lc->io_mu);                           \
    }
#define IO_TASK(name, client_of)                                    \
    void name(void *ARG)                                            \
    {                                                               \
        mlk_client *lc = client_of;                                 \
        pthread_mutex_lock(&lc->io_mu);                             \
        name##_locked(ARG);                                         \
        pthread_mutex_unlock(&lc->io_mu);                           \
    }

enum { SI_DATA, SI_EOF, SI_RESIZE };

typedef struct stdin_task {
    mlk_client *c;
    uint64_t op;
    int type;
    size_t len;       /* of tail */
    char tail[];      /* `"params":{...}}\n` */
} stdin_task;

/* Where a call's completion goes.  Blocking calls wait on `wt`. */
typedef struct route {
    int blocking;
    waiter wt;
    mlk_done_cb done;
    void *ud;
} route;

#define START(c, rt, blocking, done, ud, out)                                                \
    do {                                                                                     \
        if (!(c)) return (blocking) ? fail_now(MLK_EINVAL, out, "client is NULL") : MLK_EINVAL; \
        if (client_state(c) != ST_OPEN) return (blocking) ? closed_result(c, out) : MLK_ECLOSED; \
        if (route_init(rt, blocking, done, ud) != 0)                                         \
            return (blocking) ? fail_now(MLK_ENOMEM, out, "out of memory") : MLK_ENOMEM;      \
    } while (0)

/* ---- transport.c: the request table, writing, death, I/O tasks ------- */
void table_put(mlk_client *c, req *r);
req *table_get(mlk_client *c, uint64_t id);
void table_del(mlk_client *c, req *r);
/* Send bytes to the child (any thread, io_mu held). */
void out_add(mlk_client *c, const char *p, size_t n);
void flush_out(mlk_client *c);
void feed_more(mlk_client *c, req *r);
void send_notice(mlk_client *c, req *r, int type, const char *tail, size_t tlen);
void fail_all(mlk_client *c, int status, const char *msg);
void stop_events(mlk_client *c);
/* The child exited (I/O thread): read what it left, then fail what is
 * pending even when a process it started keeps its pipes open. */
void child_exited(mlk_client *c);
/* Stop every event and close every descriptor of the child (I/O thread,
 * after the close or at free); the tail of its stderr is kept. */
void release_child_fds(mlk_client *c);
/* Give up on r: its caller gets status now, the server is asked to cancel,
 * and whatever the server still sends for r is dropped. */
void abandon(mlk_client *c, req *r, int status, const char *msg);
/* The server answered the core's cancel k (cancelled: its "cancelled"):
 * when the server did not find the request and it is still unanswered, the
 * cancel is sent again a little later (transport.c). */
void cancel_answered(mlk_client *c, req *k, int cancelled);
/* An abandoned request r was answered: its cancel no longer holds up close. */
void cancel_settle(mlk_client *c, req *r);
/* Free the requests a waiting thread answered (I/O thread: their timers). */
void free_graveyard(mlk_client *c);
/* The child is gone or broke the protocol: fail everything with status. */
void die(mlk_client *c, int status, const char *why);
/* Register r and send its line from the calling thread (takes line). */
void submit_line(mlk_client *c, req *r, char *line, size_t len);
/* I/O tasks (ioloop_post / ioloop_run_sync) */
void t_attach(void *arg);
void t_cancel(void *arg);
void t_release(void *arg);
void t_shutdown(void *arg);
void t_stdin(void *arg);

/* ---- reader.c: incoming lines, stderr, queue items ------------------- */
void on_readable(evutil_socket_t fd, short what, void *arg);
void on_readable_locked(evutil_socket_t fd, short what, void *arg);
void on_stderr(evutil_socket_t fd, short what, void *arg);
/* Read what the child wrote to stderr so far into its tail. */
void read_stderr(mlk_client *c);
/* A blocking caller, while it spins: read the child's stdout itself when
 * the I/O thread is not at it, and handle the answers that are safe off
 * that thread (reader.c).  1 when it handled a line.  Any thread. */
int reader_self_read(void *c);
void done_run(qitem *it);
void done_drop(qitem *it);

/* ---- bounds.c: past the bounds ---------------------------------------- */
/* Host thread: hand an event document to the event callback, if any. */
void event_deliver(mlk_client *c, const char *mp, size_t len);
/* An event or after-hook call was dropped (its queue is full): count it in
 * *counter and make sure a "dropped" notice waits for the event callback. */
void note_dropped(mlk_client *c, _Atomic size_t *counter);
/* A line refused for its size: fail the call whose id its head h or tail t
 * names (a response's or an output notification's), or the session. */
void line_refused(mlk_client *c, const char *h, size_t hn, const char *t, size_t tn, const char *what);
/* The partial line [off, len) outgrew the limit: skip it from now on.
 * 1 when the client is dead or detached. */
int line_too_long(mlk_client *c);
/* Skipping a line: drop the new bytes [off, len) up to its end.  1 when
 * it ended (what follows is in [off, len), not yet scanned). */
int line_skip_more(mlk_client *c);

/* ---- client.c: submitting calls and routing their completion --------- */
int client_state(mlk_client *c);
int call_async(mlk_client *c, req *r, jw *w, mlk_done_cb done, void *ud, uint64_t *op);
int call_blocking(mlk_client *c, req *r, jw *w, mlk_result **out);
void submit_or_fail(mlk_client *c, req *r, jw *w);
int closed_result(const mlk_client *c, mlk_result **out);
/* The client was made in the parent of this process (fork()): every call
 * refuses with MLK_ECLOSED and free only releases this process's copies. */
int client_inherited(const mlk_client *c);
int fail_now(int status, mlk_result **out, const char *msg);
int route_init(route *rt, int blocking, mlk_done_cb done, void *ud);
mlk_queue *route_queue(mlk_client *c, route *rt);
void route_deliver(mlk_client *c, route *rt, uint64_t op, mlk_result *res);
int route_finish(route *rt, mlk_result **out);
int route_fail(mlk_client *c, route *rt, uint64_t op, int status, const char *msg, mlk_result **out);
int route_call(mlk_client *c, route *rt, req *r, jw *w, mlk_result **out);
int route_fail_unsent(mlk_client *c, route *rt, req *r, int status, char *msg, mlk_result **out);
mlk_result *result_dup(const mlk_result *s);

/* ---- ops_session.c --------------------------------------------------- */
int render_port_forward(const char *const *specs, size_t n, const char *const *addrs, size_t naddrs,
                        jw *w, char **msg);

/* ---- client.c internals used by hooks.c ------------------------------ */
req *req_new(mlk_client *c, int kind, int64_t timeout_ms);
void req_free(req *r);
void begin_line(jw *w, const char *method, uint64_t id);
void end_line(jw *w);
/* Post r with its line (w consumed); on failure r is freed. */
int submit(mlk_client *c, req *r, jw *w);
/* Post a done item with res for r's caller (exactly once per request). */
void post_done(req *r, mlk_result *res);
void post_fail(req *r, int status, const char *msg);
const char *kind_call(int kind); /* the call's name in messages */

/* ---- hooks.c -------------------------------------------------------- */
/* At create: copy the builder's hooks, open the callback socket when a
 * network hook exists.  *socket_path is borrowed (NULL when none);
 * first_index is the number of static network rules before the hooks. */
int hooks_attach(mlk_client *c, const hookset *hs, size_t first_index, const char **socket_path, char **msg);
/* Remove the callback socket and its directory (idempotent). */
void hooks_detach(mlk_client *c);
/* Free the client's hook state (after the I/O thread let go). */
void hooks_free(mlk_client *c);
/* Whether a hook-socket peer of uid `peer` may call the host's hooks:
 * the host's own uid, root only when the host is root or uses sudo. */
int hook_peer_uid_allowed(uid_t peer, uid_t host, int sudo);
/* In a fork() child: free the rules and paths, touch nothing else. */
void hooks_forget(mlk_client *c);
/* I/O thread: a file `event` arrived; queue matching after-hooks. */
void hooks_on_file_event(mlk_client *c, const jdoc *d, const jnode *file);
/* Whether an action or mutate hook applies to this op ("write", "read",
 * "readdir") and path. */
int hooks_match_before(mlk_client *c, const char *op, const char *path);
/* Run the action/mutate hooks for a file call, then finish(...) sends it
 * (or the call fails through r's route).  Copies path and data. */
int hooks_file_call(mlk_client *c, req *r, const char *op, const char *path, const char *data, size_t len,
                    uint32_t mode, void (*finish)(mlk_client *, req *, const char *, const char *, size_t, uint32_t));
/* mlk_cancel of a file call still waiting for its action/mutate hooks:
 * completes it with MLK_ECANCELED and returns 1; 0 when op is not such a call. */
int hooks_cancel(mlk_client *c, uint64_t op);
/* client.c: references that keep a freed client's memory until they end
 * (unanswered hook calls, CLI jobs); the last unref after mlk_client_free
 * finishes the free. */
void client_ref(mlk_client *c);
void client_unref(mlk_client *c);
void client_final_free(mlk_client *c);

#endif
