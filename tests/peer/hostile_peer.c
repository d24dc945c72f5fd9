/* hostile_peer.c - a `matchlock rpc` stand-in that breaks the protocol on
 * purpose, for the tests of every language (docs/testing.md).
 *
 *   mlk_hostile_peer [MODE [AFTER]] [rpc]
 *
 * MODE (or $MLK_HOSTILE_MODE; default ok) says how it misbehaves; the first
 * AFTER requests (or $MLK_HOSTILE_AFTER; default 0) are answered properly
 * first, so a client can create a sandbox before the fault.  $LOG, when
 * set, names a file that receives every request line.
 *
 *   ok             a well-behaved server: generic success for every method
 *   silent         reads every request, answers none (close excepted)
 *   banner         prints a banner on stdout, then behaves
 *   garbage        answers with a line that is not JSON-RPC
 *   unknown-ids    answers with an id that was never sent
 *   bad-base64     streamed output whose base64 is invalid, then success
 *   grandchild     forks a grandchild that keeps the pipes, then dies
 *   stops-reading  never reads its stdin again (and never answers)
 *   dies-mid-call  writes to stderr and exits while a call is pending
 *   closes-stdout  closes its stdout and keeps running until stdin ends
 *   late-cancel    answers no call; the first cancel of a call finds nothing
 *                  ({"cancelled":false}, as upstream answers a cancel that
 *                  overtook the call's registration), the second ends the
 *                  call with -32003; a close while a call is pending is never
 *                  read (upstream's close waits for in-flight requests)
 *   chatty         well-behaved, but every answer comes with an event
 *                  notification and a blank line (before the answer for odd
 *                  ids, after it for even ones), and an exec's answer is
 *                  written in two parts 5 us apart
 *   values         answers (the first call after AFTER only) with a result of $MLK_HOSTILE_BYTES (default 8 MiB)
 *                  of `[0,0,0,...]`: the most JSON values a line can hold
 *   huge-answer    answers (once, as values) with a read_file-like result of $MLK_HOSTILE_BYTES
 *                  of base64, its id last as upstream writes it
 *   huge-output    (once, as values) exec_stream output: one notification of $MLK_HOSTILE_BYTES
 *                  of base64 (its id first, in params), then the answer
 *   event-flood    before answering, $MLK_HOSTILE_COUNT (default 500000)
 *                  `event` notifications (network events)
 *   after-flood    the same with file events (a write under /workspace),
 *                  which VFS after-hooks match
 *
 * Processes it leaves (the grandchild, a peer that stopped reading) end
 * when the client's end of their stdout goes away, or after 30 s. */
#include "json.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

static const char *mode = "ok";
static long after;
static FILE *logf;

static void put(const char *s, size_t n)
{
    while (n > 0) {
        ssize_t k = write(1, s, n);
        if (k <= 0) exit(0);
        s += k;
        n -= (size_t)k;
    }
}

static void send_w(jw *w)
{
    jw_nl(w);
    put(w->buf, w->len);
    jw_free(w);
}

/* {"jsonrpc":"2.0","id":ID,"result":RESULT} */
static void answer(uint64_t id, const char *result)
{
    jw w;
    jw_init(&w);
    jw_obj(&w);
    jw_key(&w, "jsonrpc"); jw_str(&w, "2.0");
    jw_key(&w, "id"); jw_uint(&w, id);
    jw_key(&w, "result"); jw_value(&w, result, strlen(result));
    jw_obj_end(&w);
    send_w(&w);
}

static void notify(const char *method, const char *what, uint64_t id, const char *b64)
{
    jw w;
    jw_init(&w);
    char m[64];
    snprintf(m, sizeof m, "%s.%s", method, what);
    jw_obj(&w);
    jw_key(&w, "jsonrpc"); jw_str(&w, "2.0");
    jw_key(&w, "method"); jw_str(&w, m);
    jw_key(&w, "params");
    jw_obj(&w);
    jw_key(&w, "id"); jw_uint(&w, id);
    if (b64) { jw_key(&w, "data"); jw_str(&w, b64); }
    jw_obj_end(&w);
    jw_obj_end(&w);
    send_w(&w);
}

/* Wait until nobody reads our stdout any more (or 30 s), then exit. */
static void linger(void)
{
    for (int i = 0; i < 300; i++) {
        struct pollfd p = {.fd = 1, .events = 0};
        if (poll(&p, 1, 100) > 0 && (p.revents & (POLLERR | POLLHUP | POLLNVAL))) break;
    }
    _exit(0);
}

static int streamed(const char *m)
{
    return strcmp(m, "exec_stream") == 0 || strcmp(m, "exec_pipe") == 0 || strcmp(m, "exec_tty") == 0;
}

/* The answer a real server would give (roughly). */
static void behave(const char *m, uint64_t id, int bad_b64)
{
    if (streamed(m)) {
        if (strcmp(m, "exec_stream") != 0) notify(m, "ready", id, NULL);
        notify(m, "stdout", id, bad_b64 ? "@@not base64!" : "b3V0Cg==");
        notify(m, "stderr", id, "ZXJyCg==");
        answer(id, "{\"exit_code\":0,\"duration_ms\":1}");
    } else if (strcmp(m, "create") == 0) {
        answer(id, "{\"id\":\"vm-hostile\"}");
    } else if (strcmp(m, "exec") == 0) {
        answer(id, "{\"exit_code\":0,\"stdout\":\"aG9zdGlsZQo=\",\"stderr\":\"\",\"duration_ms\":1}");
    } else if (strcmp(m, "read_file") == 0 || strcmp(m, "log") == 0) {
        answer(id, "{\"content\":\"aG9zdGlsZQ==\"}");
    } else if (strcmp(m, "list_files") == 0) {
        answer(id, "{\"files\":[]}");
    } else if (strcmp(m, "cancel") == 0) {
        answer(id, "{\"cancelled\":false}");
    } else {
        answer(id, "{}");
    }
}

static size_t env_size(const char *name, size_t def)
{
    const char *v = getenv(name);
    return v && *v ? (size_t)strtoull(v, NULL, 10) : def;
}

/* values, huge-answer, huge-output: one line of about `bytes` */
static void huge(const char *m, uint64_t id)
{
    size_t bytes = env_size("MLK_HOSTILE_BYTES", 8u << 20);
    char pre[160], post[64];
    int pn, qn;
    char fill[2] = "AA";
    if (strcmp(mode, "values") == 0) {
        pn = snprintf(pre, sizeof pre, "{\"jsonrpc\":\"2.0\",\"id\":%llu,\"result\":[0", (unsigned long long)id);
        qn = snprintf(post, sizeof post, "]}\n");
        fill[0] = ',', fill[1] = '0';
    } else if (strcmp(mode, "huge-answer") == 0) {
        pn = snprintf(pre, sizeof pre, "{\"jsonrpc\":\"2.0\",\"result\":{\"content\":\"");
        qn = snprintf(post, sizeof post, "\"},\"id\":%llu}\n", (unsigned long long)id);
    } else {
        pn = snprintf(pre, sizeof pre, "{\"jsonrpc\":\"2.0\",\"method\":\"%s.stdout\",\"params\":{\"id\":%llu,"
                      "\"data\":\"", m, (unsigned long long)id);
        qn = snprintf(post, sizeof post, "\"}}\n");
    }
    put(pre, (size_t)pn);
    char buf[65536];
    for (size_t i = 0; i < sizeof buf; i += 2) buf[i] = fill[0], buf[i + 1] = fill[1];
    for (size_t left = bytes / 4 * 4; left > 0;) { /* whole base64 groups */
        size_t k = left < sizeof buf ? left : sizeof buf;
        put(buf, k);
        left -= k;
    }
    put(post, (size_t)qn);
    if (strcmp(mode, "huge-output") == 0) answer(id, "{\"exit_code\":0,\"duration_ms\":1}");
}

/* event-flood, after-flood: many events, then the answer */
static void flood(const char *m, uint64_t id)
{
    size_t count = env_size("MLK_HOSTILE_COUNT", 500000);
    const char *ev = strcmp(mode, "after-flood") == 0
        ? "{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"params\":{\"type\":\"file\",\"timestamp\":1,"
          "\"file\":{\"op\":\"write\",\"path\":\"/workspace/flood.txt\",\"size\":5,\"mode\":420}}}\n"
        : "{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"params\":{\"type\":\"network\",\"timestamp\":1,"
          "\"network\":{\"method\":\"GET\",\"url\":\"http://example.com/\",\"status_code\":200}}}\n";
    size_t n = strlen(ev), per = 65536 / n;
    char *buf = malloc(per * n);
    if (!buf) _exit(2);
    for (size_t i = 0; i < per; i++) memcpy(buf + i * n, ev, n);
    for (size_t left = count; left > 0;) {
        size_t k = left < per ? left : per;
        put(buf, k * n);
        left -= k;
    }
    free(buf);
    behave(m, id, 0);
}

/* late-cancel: the calls not answered yet, and how often each was cancelled */
#define LATE_MAX 64
static struct { uint64_t id; int cancels; } late[LATE_MAX];
static int nlate;

static void late_cancel(uint64_t cancel_id, const jdoc *d, const jnode *root)
{
    uint64_t target;
    int i = 0;
    if (jn_uint(jd_get(d, jd_get(d, root, "params"), "id"), &target) == 0)
        while (i < nlate && late[i].id != target) i++;
    if (i >= nlate || late[i].cancels++ == 0) { answer(cancel_id, "{\"cancelled\":false}"); return; }
    answer(cancel_id, "{\"cancelled\":true}");
    char e[160];
    snprintf(e, sizeof e, "{\"jsonrpc\":\"2.0\",\"id\":%llu,\"error\":{\"code\":-32003,\"message\":\"context canceled\"}}\n",
             (unsigned long long)target);
    put(e, strlen(e));
    late[i] = late[--nlate];
}

/* chatty: an event and a blank line around each answer; an exec's answer
 * in two writes */
static void chatty(const char *m, uint64_t id)
{
    char ev[160];
    int en = snprintf(ev, sizeof ev, "{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"params\":"
                      "{\"type\":\"chatty\",\"seq\":%llu}}\n \r\n", (unsigned long long)id);
    if (id % 2) put(ev, (size_t)en);
    if (strcmp(m, "exec") == 0) {
        char a[200];
        int an = snprintf(a, sizeof a, "{\"jsonrpc\":\"2.0\",\"id\":%llu,\"result\":{\"exit_code\":0,"
                          "\"stdout\":\"aG9zdGlsZQo=\",\"stderr\":\"\",\"duration_ms\":1}}\n", (unsigned long long)id);
        put(a, (size_t)an / 2);
        struct timespec t0, t; /* a few microseconds: within a waiting caller's spin */
        clock_gettime(CLOCK_MONOTONIC, &t0);
        do clock_gettime(CLOCK_MONOTONIC, &t);
        while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < 5000);
        put(a + an / 2, (size_t)an - (size_t)an / 2);
    } else {
        behave(m, id, 0);
    }
    if (id % 2 == 0) put(ev, (size_t)en);
}

int main(int argc, char **argv)
{
    int ai = 1;
    if (ai < argc && strcmp(argv[ai], "rpc") != 0) mode = argv[ai++];
    else if (getenv("MLK_HOSTILE_MODE")) mode = getenv("MLK_HOSTILE_MODE");
    if (ai < argc && strcmp(argv[ai], "rpc") != 0) after = atol(argv[ai++]);
    else if (getenv("MLK_HOSTILE_AFTER")) after = atol(getenv("MLK_HOSTILE_AFTER"));
    if (getenv("LOG") && *getenv("LOG")) logf = fopen(getenv("LOG"), "a");
    setvbuf(stdout, NULL, _IONBF, 0);

    if (strcmp(mode, "banner") == 0) {
        const char *b = "hostile peer 1.0 starting\nWARNING: this is a banner, not JSON-RPC\n";
        put(b, strlen(b));
    }
    if (strcmp(mode, "stops-reading") == 0 && after == 0) linger();

    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long seen = 0;
    jdoc d;
    jd_init(&d);
    while ((n = getline(&line, &cap, stdin)) > 0) {
        if (logf) { fwrite(line, 1, (size_t)n, logf); fflush(logf); }
        if (line[n - 1] == '\n') line[--n] = '\0';
        if (jd_parse(&d, line, (size_t)n) != 0) continue;
        const jnode *root = jd_root(&d);
        const char *m = jd_str(&d, root, "method", "");
        uint64_t id;
        if (jn_uint(jd_get(&d, root, "id"), &id) != 0) continue; /* stdin, EOF, resize: notifications */
        if (strcmp(mode, "stops-reading") == 0 && seen >= after) linger(); /* not even a close */
        int is_late = strcmp(mode, "late-cancel") == 0;
        if (strcmp(m, "close") == 0) {
            if (is_late && nlate > 0) linger();
            answer(id, "{}");
            continue;
        }
        if (strcmp(m, "cancel") == 0 && is_late) { late_cancel(id, &d, root); continue; }
        if (strcmp(m, "cancel") == 0 && strcmp(mode, "unknown-ids") != 0) { behave(m, id, 0); continue; }
        if (seen++ < after || strcmp(mode, "ok") == 0 || strcmp(mode, "banner") == 0) { behave(m, id, 0); continue; }
        if (strcmp(mode, "silent") == 0) continue;
        if (strcmp(mode, "chatty") == 0) { chatty(m, id); continue; }
        if (is_late) {
            if (nlate < LATE_MAX) { late[nlate].id = id; late[nlate].cancels = 0; nlate++; }
            continue;
        }
        if (strcmp(mode, "values") == 0 || strcmp(mode, "huge-answer") == 0 || strcmp(mode, "huge-output") == 0) {
            static int once; /* one such line; later calls are answered properly */
            if (once++ == 0) huge(m, id);
            else behave(m, id, 0);
        } else if (strcmp(mode, "event-flood") == 0 || strcmp(mode, "after-flood") == 0) {
            flood(m, id);
        } else if (strcmp(mode, "garbage") == 0) {
            const char *g = "panic: runtime error: this line is not JSON-RPC\n";
            put(g, strlen(g));
        } else if (strcmp(mode, "unknown-ids") == 0) {
            answer(id + 1000, "{}");
        } else if (strcmp(mode, "bad-base64") == 0) {
            behave(m, id, 1);
        } else if (strcmp(mode, "grandchild") == 0) {
            pid_t g = fork();
            if (g == 0) linger(); /* holds stdin, stdout and stderr */
            fprintf(stderr, "hostile peer: dying; grandchild %d keeps the pipes\n", (int)g);
            _exit(3);
        } else if (strcmp(mode, "dies-mid-call") == 0) {
            fprintf(stderr, "fatal: hostile peer died mid-call\n");
            _exit(3);
        } else if (strcmp(mode, "closes-stdout") == 0) {
            close(1);
        } else {
            fprintf(stderr, "hostile peer: unknown mode %s\n", mode);
            _exit(2);
        }
    }
    jd_free(&d);
    free(line);
    return 0;
}
