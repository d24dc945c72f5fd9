/* bounds.c - what a server can make the host hold, past its bounds
 * (the bounds are in internal.h; docs/c-api.md "Bounds"): lines longer than
 * the limit or over the parser's budget, and the "dropped" notice of the
 * bounded event and after-hook queues.  I/O thread, under io_mu, except
 * where said. */
#include "client.h"

#include <msgpack.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Host thread (mlk_dispatch): an event document to the event callback. */
void event_deliver(mlk_client *c, const char *mp, size_t len)
{
    pthread_mutex_lock(&c->mu);
    mlk_event_cb cb = c->event_cb;
    void *ud = c->event_ud;
    pthread_mutex_unlock(&c->mu);
    if (cb) cb(ud, mp, len);
}

/* ---- the "dropped" notice ----------------------------------------------
 * Events beyond EVENT_QUEUE_MAX and after-hook calls beyond AFTER_QUEUE_MAX
 * waiting for mlk_dispatch are dropped (the server keeps sending while the
 * host does not dispatch; holding them all would let it fill the host's
 * memory, and stopping to read would stall every call's answer).  The
 * first drop queues one notice, which reaches the event callback as an
 * event {"type":"dropped","events":N,"after_hooks":M,"message":...}
 * counting every drop until it runs. */
typedef struct notice_item {
    qitem base;
    mlk_client *c;
} notice_item;

static void notice_run(qitem *it)
{
    mlk_client *c = ((notice_item *)it)->c;
    free(it);
    atomic_store(&c->notice_queued, 0); /* before the counts: a drop from now on queues a new notice */
    size_t ne = atomic_exchange(&c->dropped_events, 0), na = atomic_exchange(&c->dropped_after, 0);
    if (ne == 0 && na == 0) return;
    char msg[240];
    snprintf(msg, sizeof msg, "%zu events and %zu after-hook calls dropped: the host did not dispatch "
             "(mlk_dispatch) while the server sent them, and at most %d events and %d after-hook calls wait",
             ne, na, EVENT_QUEUE_MAX, AFTER_QUEUE_MAX);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    msgpack_pack_str_with_body(&pk, "type", 4);
    msgpack_pack_str_with_body(&pk, "dropped", 7);
    msgpack_pack_str_with_body(&pk, "events", 6);
    msgpack_pack_uint64(&pk, ne);
    msgpack_pack_str_with_body(&pk, "after_hooks", 11);
    msgpack_pack_uint64(&pk, na);
    msgpack_pack_str_with_body(&pk, "message", 7);
    msgpack_pack_str_with_body(&pk, msg, strlen(msg));
    if (sb.data) event_deliver(c, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

static void notice_drop(qitem *it)
{
    atomic_store(&((notice_item *)it)->c->notice_queued, 0);
    free(it);
}

void note_dropped(mlk_client *c, _Atomic size_t *counter)
{
    atomic_fetch_add(counter, 1);
    if (atomic_exchange(&c->notice_queued, 1)) return;
    notice_item *n = malloc(sizeof *n);
    if (!n) { atomic_store(&c->notice_queued, 0); return; } /* the next drop tries again */
    n->base.run = notice_run;
    n->base.drop = notice_drop;
    n->c = c;
    queue_push(&c->mainq, &n->base);
}

/* ---- oversized lines ----------------------------------------------------
 * A line longer than the limit is never held whole: its bytes are dropped
 * as they arrive, keeping only its first and last LINE_KEEP bytes.  At its
 * end the id found there says which call it was for: that call fails
 * (MLK_EPROTO) and the session goes on.  Where the id sits: a response's
 * is its last member (upstream writes `...,"id":N}`) or an early one; an
 * output notification's is in its params, before the data.  A line that
 * names no pending call fails the session, as nothing else can be told. */

static void skip_keep_tail(mlk_client *c, const char *p, size_t n)
{
    if (n >= LINE_KEEP) {
        memcpy(c->skip_tail, p + n - LINE_KEEP, LINE_KEEP);
        c->skip_tail_len = LINE_KEEP;
        return;
    }
    size_t keep = c->skip_tail_len + n > LINE_KEEP ? LINE_KEEP - n : c->skip_tail_len;
    memmove(c->skip_tail, c->skip_tail + c->skip_tail_len - keep, keep);
    memcpy(c->skip_tail + keep, p, n);
    c->skip_tail_len = keep + n;
}

/* The id of `"id":N}` ending p[0..n) (blanks allowed), or of the first
 * `"id":N` in it (from = 1).  0, or -1 when there is none. */
static int find_id(const char *p, size_t n, int first, uint64_t *id)
{
    if (!first) {
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r')) n--;
        if (n == 0 || p[--n] != '}') return -1;
        while (n > 0 && p[n - 1] == ' ') n--;
        size_t e = n;
        while (n > 0 && p[n - 1] >= '0' && p[n - 1] <= '9') n--;
        if (n == e || e - n > 20) return -1;
        size_t d = n;
        while (n > 0 && p[n - 1] == ' ') n--;
        if (n < 5 || memcmp(p + n - 5, "\"id\":", 5) != 0) return -1;
        char b[24];
        memcpy(b, p + d, e - d);
        b[e - d] = '\0';
        *id = strtoull(b, NULL, 10);
        return 0;
    }
    for (size_t i = 0; i + 5 < n; i++) { /* the key's closing quote may be a NUL: jd_parse ran on it */
        if (memcmp(p + i, "\"id", 3) != 0 || (p[i + 3] != '"' && p[i + 3] != '\0') || p[i + 4] != ':') continue;
        size_t j = i + 5;
        while (j < n && p[j] == ' ') j++;
        if (j >= n || p[j] < '0' || p[j] > '9') continue;
        uint64_t v = 0;
        size_t k = j;
        for (; k < n && k - j < 20 && p[k] >= '0' && p[k] <= '9'; k++) v = v * 10 + (uint64_t)(p[k] - '0');
        if (k == n) return -1; /* cut off by LINE_KEEP: not known */
        *id = v;
        return 0;
    }
    return -1;
}

/* A line refused for its size (an oversized line: its head h and tail t
 * only; a line over the parser's node budget: all of it) fails the call
 * its id names, or the session when it names none.  `what` says why, after
 * "the server's answer" / "the server's output notification". */
void line_refused(mlk_client *c, const char *h, size_t hn, const char *t, size_t tn, const char *what)
{
    char why[400];
    uint64_t id = 0;
    int response = find_id(t, tn, 0, &id) == 0;
    int found = response || find_id(h, hn, 1, &id) == 0;
    int notification = !response && memmem(h, hn, "\"method", 7) != NULL;
    req *r = found && hn > 0 && h[0] == '{' ? table_get(c, id) : NULL;
    if (!r) {
        snprintf(why, sizeof why, "protocol error: the server sent a line that %s, and it answers no pending call", what);
        die(c, MLK_EPROTO, why);
        return;
    }
    c->spoke = 1;
    snprintf(why, sizeof why, "%s: protocol error: the server's %s %s", kind_call(r->kind),
             notification ? "output notification" : "answer", what);
    if (notification) { /* the call's output would be lost: the call fails and is cancelled */
        if (!r->abandoned) abandon(c, r, MLK_EPROTO, why);
        return;
    }
    table_del(c, r);
    if (r->abandoned) {
        if (r->kind == K_CANCEL) cancel_answered(c, r, 1);
        else cancel_settle(c, r);
    } else {
        post_fail(r, MLK_EPROTO, why);
    }
    req_free(r);
}

/* The oversized line ended. */
static void skip_done(mlk_client *c)
{
    char what[240];
    snprintf(what, sizeof what, "is %llu bytes, longer than the line limit of %llu bytes "
             "(mlk_config_set_max_line; the default fits a read_file of 256 MiB)",
             (unsigned long long)c->skip_len, (unsigned long long)c->cfg->max_line);
    c->skip_len = 0;
    line_refused(c, c->skip_head, c->skip_head_len, c->skip_tail, c->skip_tail_len, what);
    c->skip_head_len = c->skip_tail_len = 0;
}

/* The partial line [off, len) outgrew the limit: from now on it is skipped. */
static void skip_start(mlk_client *c)
{
    size_t n = c->len - c->off;
    c->skip_head_len = n < LINE_KEEP ? n : LINE_KEEP;
    memcpy(c->skip_head, c->buf + c->off, c->skip_head_len);
    c->skip_tail_len = 0;
    skip_keep_tail(c, c->buf + c->off, n);
    c->skip_len = n;
    c->off = c->len = c->scan = 0;
}

/* Skipping: drop the new bytes up to the line's end.  1 when it ended
 * (what follows is in [off, len), not yet scanned), 0 when all was dropped. */
int line_skip_more(mlk_client *c)
{
    char *p = c->buf + c->off;
    size_t n = c->len - c->off;
    char *nl = memchr(p, '\n', n);
    size_t k = nl ? (size_t)(nl - p) : n;
    skip_keep_tail(c, p, k);
    c->skip_len += k;
    if (!nl) { c->off = c->len = c->scan = 0; return 0; }
    c->off += k + 1;
    c->scan = c->off;
    skip_done(c);
    return 1;
}

/* The partial line outgrew the configured maximum: skip it.  1 when the
 * client died meanwhile. */
int line_too_long(mlk_client *c)
{
    if (c->skip_len == 0 && c->len - c->off > c->cfg->max_line) skip_start(c);
    return c->dead || c->detached;
}

