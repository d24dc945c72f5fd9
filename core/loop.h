/* loop.h - the library's one I/O thread and the callback queues.
 *
 * One libevent loop on one library-owned thread serves every client of the
 * process.  Host threads hand work to it with ioloop_post(); the I/O thread
 * hands results back through an mlk_queue, whose pollable fd wakes the host,
 * and which the host drains on a thread of its choosing. */
#ifndef MLK_LOOP_H
#define MLK_LOOP_H

#include <event2/event.h>
#include <pthread.h>
#include <stddef.h>

/* ---- the I/O thread ---------------------------------------------------- */

/* Start the loop thread if needed and take a reference.  0 or MLK_E*. */
int ioloop_acquire(void);
/* What libevent last logged on this thread (a warning or an error; ""
 * when none since this thread's last ioloop_acquire): libevent never
 * writes to stderr, its words go into the message of the failure they
 * explain. */
const char *ioloop_last_log(void);
/* Drop a reference; the last one stops and joins the thread. */
void ioloop_release(void);
/* The loop's base (valid between acquire and release). */
struct event_base *ioloop_base(void);
/* Run fn(arg) on the I/O thread, in posting order.  0 or MLK_ENOMEM. */
int ioloop_post(void (*fn)(void *), void *arg);
/* Post and wait until fn has run. */
int ioloop_run_sync(void (*fn)(void *), void *arg);
/* Incremented in the child of every fork() (after the first acquire): a
 * client made under another generation was inherited and has no I/O thread. */
unsigned ioloop_fork_generation(void);

/* ---- completion queues --------------------------------------------------- */

typedef struct qitem {
    struct qitem *next;
    void (*run)(struct qitem *);   /* runs the callback, then frees the item */
    void (*drop)(struct qitem *);  /* frees without running (queue destroyed) */
} qitem;

typedef struct mlk_queue {
    pthread_mutex_t mu;
    qitem *head, *tail;
    int rfd, wfd;                  /* eventfd (rfd == wfd) or a pipe; -1 for a waiter queue */
    int signaled;
    pthread_cond_t cv;             /* waiter queues: signalled on push */
} mlk_queue;

int queue_init(mlk_queue *q);
/* A queue only its owner thread waits on (a blocking call): no fd, a
 * condition variable instead (cheaper: no descriptor per call). */
int queue_init_waiter(mlk_queue *q);
void queue_destroy(mlk_queue *q);  /* drops whatever is left */
void queue_clear(mlk_queue *q);    /* drops what is queued now; the queue stays usable */
/* Append an item (any thread) and make the fd readable. */
void queue_push(mlk_queue *q, qitem *it);
/* Run up to max items (0: all queued when the call starts) on the calling thread. */
int queue_drain(mlk_queue *q, int max);
/* Block until the queue has items (or timeout_ms passes; -1 waits),
 * spinning up to 50 us first (timeout_ms 0: only that).  A queue with an
 * fd also returns early when a signal interrupts the wait.  While it
 * spins, poke(arg) runs between looks at the queue when poke is set (it
 * may fill the queue; see reader_self_read). */
void queue_wait(mlk_queue *q, int timeout_ms, int (*poke)(void *), void *arg);

#endif
