/* loop.c - the I/O thread and the completion queues (see loop.h). */
#include "loop.h"
#include "internal.h"
#include "platform.h"

#include <errno.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ===================================================================== */
/* the I/O thread                                                         */

typedef struct task {
    struct task *next;
    void (*fn)(void *);
    void *arg;
} task;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;   /* task list */
static pthread_mutex_t lc_mu = PTHREAD_MUTEX_INITIALIZER;  /* start/stop; never taken by the I/O thread */
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static struct {
    int refs;
    pthread_t th;
    struct event_base *base;
    struct event *wake;
    mlk_queue wq;          /* only its fd, L.wake's: readable while tasks wait.
                            * Posting writes it directly, not through
                            * event_active(), so a host thread never waits
                            * for the base lock the I/O thread holds while
                            * it runs callbacks. */
    task *head, *tail;     /* guarded by g_mu */
    int stop;
} L;

/* fork(): the child has no I/O thread.  Clients it inherited see a new
 * generation and refuse every call (client.c); the parent's loop is
 * forgotten without being touched (its memory stays reachable through
 * `stale`), so a client the child creates starts a loop of its own. */
static _Atomic unsigned g_fork_gen;
static struct { struct event_base *base; task *head; } stale[4];

static void on_fork_child(void)
{
    g_fork_gen++;
    static unsigned n;
    if (L.base && n < sizeof stale / sizeof stale[0]) { stale[n].base = L.base; stale[n].head = L.head; n++; }
    if (L.wq.rfd >= 0) close(L.wq.rfd); /* the child's copy: writing it would wake the parent's loop */
    if (L.wq.wfd >= 0 && L.wq.wfd != L.wq.rfd) close(L.wq.wfd);
    memset(&L, 0, sizeof L);
    L.wq.rfd = L.wq.wfd = -1;
    g_mu = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
    lc_mu = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
}

unsigned ioloop_fork_generation(void) { return g_fork_gen; }

/* libevent's own log: a library never writes to the host's stderr, so
 * libevent's messages (a warning such as "evutil_make_internal_pipe_:
 * pipe: Too many open files" when descriptors run out) are kept, the last
 * first one per thread since the loop last started, and a failure they explain carries them in its message
 * (ioloop_last_log). */
static _Thread_local char last_log[200];

static void on_event_log(int severity, const char *msg)
{
    if (severity < EVENT_LOG_WARN || !msg || last_log[0]) return; /* the first one names the cause */
    snprintf(last_log, sizeof last_log, "%s", msg);
}

const char *ioloop_last_log(void) { return last_log; }

static void evthread_setup(void)
{
    event_set_log_callback(on_event_log);
    evthread_use_pthreads();
    pthread_atfork(NULL, NULL, on_fork_child);
}
static void fd_signal(mlk_queue *q);
static void fd_reset(mlk_queue *q);

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what; (void)arg;
    fd_reset(&L.wq);
    for (;;) {
        pthread_mutex_lock(&g_mu);
        task *t = L.head;
        if (t) {
            L.head = t->next;
            if (!L.head) L.tail = NULL;
        }
        int stop = L.stop && !t;
        pthread_mutex_unlock(&g_mu);
        if (stop) { event_base_loopbreak(L.base); return; }
        if (!t) return;
        t->fn(t->arg);
        free(t);
    }
}

static void *thread_main(void *arg)
{
    (void)arg;
    /* Host signals are never delivered here, and a write to a dead child's
     * pipe fails with EPIPE instead of killing the process. */
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    event_base_loop(L.base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

int ioloop_acquire(void)
{
    pthread_once(&g_once, evthread_setup);
    pthread_mutex_lock(&lc_mu);
    pthread_mutex_lock(&g_mu);
    if (L.refs++ > 0) { pthread_mutex_unlock(&g_mu); pthread_mutex_unlock(&lc_mu); return 0; }
    last_log[0] = '\0';
    L.stop = 0;
    L.wq.rfd = L.wq.wfd = -1;
    L.base = event_base_new();
    if (!L.base) goto fail;
    if (queue_init(&L.wq) != 0) { L.wq.rfd = L.wq.wfd = -1; goto fail; }
    L.wake = event_new(L.base, L.wq.rfd, EV_READ | EV_PERSIST, on_wake, NULL);
    if (!L.wake || event_add(L.wake, NULL) != 0) goto fail;
    /* Block every signal while creating the thread so it starts masked. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&L.th, NULL, thread_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) goto fail;
    pthread_mutex_unlock(&g_mu);
    pthread_mutex_unlock(&lc_mu);
    return 0;
fail:
    if (L.wake) event_free(L.wake);
    if (L.base) event_base_free(L.base);
    if (L.wq.rfd >= 0) queue_destroy(&L.wq);
    L.wake = NULL;
    L.base = NULL;
    L.refs--;
    pthread_mutex_unlock(&g_mu);
    pthread_mutex_unlock(&lc_mu);
    return MLK_ENOMEM;
}

void ioloop_release(void)
{
    pthread_mutex_lock(&lc_mu);
    pthread_mutex_lock(&g_mu);
    if (--L.refs > 0) { pthread_mutex_unlock(&g_mu); pthread_mutex_unlock(&lc_mu); return; }
    L.stop = 1;
    fd_signal(&L.wq);
    pthread_t th = L.th;
    pthread_mutex_unlock(&g_mu);
    pthread_join(th, NULL);
    pthread_mutex_lock(&g_mu);
    event_free(L.wake);
    event_base_free(L.base);
    queue_destroy(&L.wq);
    L.wake = NULL;
    L.base = NULL;
    while (L.head) { task *t = L.head; L.head = t->next; free(t); }
    L.tail = NULL;
    pthread_mutex_unlock(&g_mu);
    pthread_mutex_unlock(&lc_mu);
}

struct event_base *ioloop_base(void) { return L.base; }

int ioloop_post(void (*fn)(void *), void *arg)
{
    task *t = malloc(sizeof *t);
    if (!t) return MLK_ENOMEM;
    t->next = NULL;
    t->fn = fn;
    t->arg = arg;
    pthread_mutex_lock(&g_mu);
    /* Only the first task into an empty list wakes the thread (on_wake runs
     * until the list is empty), and it does so after unlocking so that the
     * woken thread does not block on g_mu. */
    int was_empty = L.head == NULL;
    if (L.tail) L.tail->next = t; else L.head = t;
    L.tail = t;
    pthread_mutex_unlock(&g_mu);
    if (was_empty) fd_signal(&L.wq);
    return 0;
}

struct sync_call {
    void (*fn)(void *);
    void *arg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
};

static void run_sync_task(void *p)
{
    struct sync_call *s = p;
    s->fn(s->arg);
    pthread_mutex_lock(&s->mu);
    s->done = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

int ioloop_run_sync(void (*fn)(void *), void *arg)
{
    struct sync_call s = {fn, arg, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    int rc = ioloop_post(run_sync_task, &s);
    if (rc != 0) return rc;
    pthread_mutex_lock(&s.mu);
    while (!s.done) pthread_cond_wait(&s.cv, &s.mu);
    pthread_mutex_unlock(&s.mu);
    pthread_cond_destroy(&s.cv);
    pthread_mutex_destroy(&s.mu);
    return 0;
}

/* ===================================================================== */
/* queues                                                                 */

int queue_init(mlk_queue *q)
{
    memset(q, 0, sizeof *q);
    pthread_mutex_init(&q->mu, NULL);
    if (plat_wake_fds(&q->rfd, &q->wfd) != 0) { pthread_mutex_destroy(&q->mu); return MLK_ENOMEM; }
    return 0;
}

int queue_init_waiter(mlk_queue *q)
{
    memset(q, 0, sizeof *q);
    q->rfd = q->wfd = -1;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    return 0;
}

/* q->head changes under q->mu, and a spinning waiter reads it without the
 * lock (spin_for, mlk_dispatch_wait): stored atomically. */
static void set_head(mlk_queue *q, qitem *it) { __atomic_store_n(&q->head, it, __ATOMIC_RELEASE); }

void queue_clear(mlk_queue *q)
{
    pthread_mutex_lock(&q->mu);
    qitem *it = q->head;
    set_head(q, NULL);
    q->tail = NULL;
    pthread_mutex_unlock(&q->mu);
    while (it) {
        qitem *n = it->next;
        it->drop(it);
        it = n;
    }
}

void queue_destroy(mlk_queue *q)
{
    queue_clear(q);
    if (q->rfd >= 0) close(q->rfd);
    else pthread_cond_destroy(&q->cv);
    if (q->wfd >= 0 && q->wfd != q->rfd) close(q->wfd);
    q->rfd = q->wfd = -1;
    pthread_mutex_destroy(&q->mu);
}

static void fd_signal(mlk_queue *q)
{
    if (q->wfd < 0) { pthread_cond_signal(&q->cv); return; }
    uint64_t one = 1;
    ssize_t n;
    if (q->rfd == q->wfd) n = write(q->wfd, &one, sizeof one);
    else n = write(q->wfd, "x", 1);
    (void)n;
}

static void fd_reset(mlk_queue *q)
{
    if (q->rfd < 0) return;
    char buf[64];
    while (read(q->rfd, buf, q->rfd == q->wfd ? 8 : sizeof buf) > 0)
        if (q->rfd == q->wfd) break;
}

/* The queue this thread spins on in queue_wait, if any. */
static __thread mlk_queue *spinning_on;

void queue_push(mlk_queue *q, qitem *it)
{
    it->next = NULL;
    pthread_mutex_lock(&q->mu);
    if (q->tail) q->tail->next = it; else set_head(q, it);
    q->tail = it;
    /* The thread spinning on q pushed this itself (reader_self_read): it
     * looks at the list next, so no descriptor write (and read) for it. */
    int self = q == spinning_on;
    int wake = !q->signaled && !self, has_fd = q->wfd >= 0;  /* read q only under the lock: a waiter queue may go at once */
    if (!self) q->signaled = 1;
    /* A waiter queue lives on its waiter's stack: signal it under the lock.
     * A queue with a descriptor outlives its pushers (the client's main
     * queue is destroyed after its I/O work has stopped): write after the
     * unlock, so the woken thread does not block on q->mu at once.  A
     * drain may then run between the unlock and the write and leave the
     * descriptor readable with nothing queued; the drain that finds the
     * queue empty resets it (queue_drain). */
    if (wake && !has_fd) fd_signal(q);
    pthread_mutex_unlock(&q->mu);
    if (wake && has_fd) fd_signal(q);
}

int queue_drain(mlk_queue *q, int max)
{
    int ran = 0;
    if (max <= 0) {
        /* everything queued now; what arrives meanwhile waits for the next call */
        pthread_mutex_lock(&q->mu);
        qitem *it = q->head;
        set_head(q, NULL);
        q->tail = NULL;
        if (q->signaled || !it) {  /* !it: a late write of queue_push */
            fd_reset(q);
            q->signaled = 0;
        }
        pthread_mutex_unlock(&q->mu);
        while (it) {
            qitem *n = it->next;
            it->run(it);
            it = n;
            ran++;
        }
        return ran;
    }
    for (;;) {
        if (max > 0 && ran >= max) break;
        pthread_mutex_lock(&q->mu);
        qitem *it = q->head;
        if (it) {
            set_head(q, it->next);
            if (!q->head) q->tail = NULL;
        }
        if (!q->head && (q->signaled || (!it && ran == 0))) {
            /* Reset under the lock: a push after this re-signals. */
            fd_reset(q);
            q->signaled = 0;
        }
        pthread_mutex_unlock(&q->mu);
        if (!it) break;
        it->run(it);
        ran++;
    }
    return ran;
}

/* How long a blocking caller spins for its answer before it sleeps: most
 * answers come within tens of microseconds, and waking a sleeping thread
 * costs about as much again on a virtual CPU.  -DWAIT_SPIN_NS=0 builds
 * without the spin, for comparing (docs/benchmarks.md). */
#ifndef WAIT_SPIN_NS
#define WAIT_SPIN_NS 50000
#endif

static int spin_for(mlk_queue *q, int (*poke)(void *), void *arg)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (unsigned i = 0;; i++) {
        if (__atomic_load_n(&q->head, __ATOMIC_ACQUIRE)) return 1;
        if (poke && poke(arg)) continue;
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
        if (poke || (i & 63) == 63) { /* a poke is a system call: look at the clock every time */
            clock_gettime(CLOCK_MONOTONIC, &t);
            if ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) > WAIT_SPIN_NS) return 0;
        }
    }
}

void queue_wait(mlk_queue *q, int timeout_ms, int (*poke)(void *), void *arg)
{
    if (q->rfd < 0) {
        if (spin_for(q, poke, arg)) return;
        pthread_mutex_lock(&q->mu);
        if (timeout_ms < 0) {
            while (!q->head) pthread_cond_wait(&q->cv, &q->mu);
        } else if (!q->head) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += timeout_ms / 1000;
            ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
            if (ts.tv_nsec >= 1000000000) { ts.tv_sec++; ts.tv_nsec -= 1000000000; }
            pthread_cond_timedwait(&q->cv, &q->mu, &ts);
        }
        pthread_mutex_unlock(&q->mu);
        return;
    }
    /* a queue with a descriptor (mlk_dispatch_wait): spin as well, then
     * poll once; a signal ends the wait early (the host may want to act) */
    spinning_on = q;
    int got = spin_for(q, poke, arg);
    spinning_on = NULL;
    if (got || timeout_ms == 0) return;
    struct pollfd p = {.fd = q->rfd, .events = POLLIN};
    (void)poll(&p, 1, timeout_ms);
}
