/* floor_client.c - the floor for the exec round trip: a minimal blocking
 * C client with no library.  It starts the canned peer with pipes, writes
 * an exec request line (the same bytes libmatchlock writes) and reads the
 * reply line with plain write()/read(), over and over.
 *
 * Usage: floor_client [PEER [ROUND_TRIPS [REPS [STREAM_BYTES]]]]
 *
 * With STREAM_BYTES > 0 it also reads REPS exec_stream replies of that
 * many decoded bytes (64 KiB chunks) without decoding them: the raw rate
 * at which the pipe and the peer deliver a stream (bench/python, bench/lua
 * and bench/node compare the bindings' streamed stdout with it).
 *
 * bench_core.c includes this file with FLOOR_NO_MAIN defined to run the
 * floor side by side with the library in one process. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

typedef struct floor_peer {
    pid_t pid;
    int in, out;          /* peer's stdin (we write), peer's stdout (we read) */
    char *buf;
    size_t len, cap;
    uint64_t next_id;
} floor_peer;

static double floor_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Start `peer rpc` with pipes on stdin/stdout (stderr inherited). */
static int floor_start(floor_peer *p, const char *peer)
{
    int pin[2], pout[2];
    memset(p, 0, sizeof *p);
    if (pipe2(pin, O_CLOEXEC) != 0) return -1;
    if (pipe2(pout, O_CLOEXEC) != 0) { close(pin[0]); close(pin[1]); return -1; }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pin[0], 0);
    posix_spawn_file_actions_adddup2(&fa, pout[1], 1);
    char *argv[] = {(char *)peer, "rpc", NULL};
    int err = posix_spawn(&p->pid, peer, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pin[0]);
    close(pout[1]);
    if (err != 0) {
        close(pin[1]);
        close(pout[0]);
        fprintf(stderr, "floor: cannot start %s: %s\n", peer, strerror(err));
        return -1;
    }
    p->in = pin[1];
    p->out = pout[0];
    p->cap = 1 << 16;
    p->buf = malloc(p->cap);
    p->next_id = 1;
    return p->buf ? 0 : -1;
}

static void floor_stop(floor_peer *p)
{
    if (p->in >= 0) close(p->in);
    if (p->out >= 0) close(p->out);
    int st;
    while (waitpid(p->pid, &st, 0) < 0 && errno == EINTR) {}
    free(p->buf);
    p->in = p->out = -1;
    p->buf = NULL;
}

static int floor_write(floor_peer *p, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t k = write(p->in, s, n);
        if (k < 0) { if (errno == EINTR) continue; return -1; }
        s += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Read until one full line is buffered; drop it.  Returns its length. */
static long floor_read_line(floor_peer *p)
{
    for (;;) {
        char *nl = p->len ? memchr(p->buf, '\n', p->len) : NULL;
        if (nl) {
            size_t l = (size_t)(nl - p->buf) + 1;
            memmove(p->buf, p->buf + l, p->len - l);
            p->len -= l;
            return (long)l;
        }
        if (p->len == p->cap) {
            p->cap *= 2;
            char *nb = realloc(p->buf, p->cap);
            if (!nb) return -1;
            p->buf = nb;
        }
        ssize_t k = read(p->out, p->buf + p->len, p->cap - p->len);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        p->len += (size_t)k;
    }
}

/* n blocking exec round trips; returns seconds elapsed (or -1). */
static double floor_roundtrips(floor_peer *p, long n)
{
    char line[160];
    double t0 = floor_now();
    for (long i = 0; i < n; i++) {
        int l = snprintf(line, sizeof line,
                         "{\"jsonrpc\":\"2.0\",\"method\":\"exec\",\"id\":%llu,\"params\":{\"command\":\"true\"}}\n",
                         (unsigned long long)p->next_id++);
        if (floor_write(p, line, (size_t)l) != 0 || floor_read_line(p) < 0) return -1;
    }
    return floor_now() - t0;
}

/* The raw wire rate: ask for an exec_stream of `bytes` in `chunk`-sized
 * notifications and read it without decoding (bytes on the wire / s).
 * Shows what the pipe plus the peer can deliver. */
__attribute__((unused)) static double floor_stream(floor_peer *p, uint64_t bytes, size_t chunk, uint64_t *wire)
{
    char line[200];
    int l = snprintf(line, sizeof line,
                     "{\"jsonrpc\":\"2.0\",\"method\":\"exec_stream\",\"id\":%llu,\"params\":{\"command\":\"stream %llu %zu\"}}\n",
                     (unsigned long long)p->next_id++, (unsigned long long)bytes, chunk);
    double t0 = floor_now();
    if (floor_write(p, line, (size_t)l) != 0) return -1;
    /* Count bytes until the final result line (the only line with "result"). */
    uint64_t total = 0;
    static char rb[1 << 20];
    size_t keep = 0;
    for (;;) {
        ssize_t k = read(p->out, rb + keep, sizeof rb - keep);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        total += (uint64_t)k;
        size_t have = keep + (size_t)k;
        /* the result line is the last thing sent: look for it at the end */
        if (rb[have - 1] == '\n') {
            size_t s = have - 1;
            while (s > 0 && rb[s - 1] != '\n') s--;
            if (memmem(rb + s, have - s, "\"result\"", 8)) break;
        }
        /* keep the unfinished last line's start (at most 200 bytes) so the
         * check above sees whole short lines */
        keep = 0;
        if (rb[have - 1] != '\n') {
            size_t s = have;
            while (s > 0 && rb[s - 1] != '\n' && have - s < 200) s--;
            if (have - s < 200 && s > 0) { keep = have - s; memmove(rb, rb + s, keep); }
        }
    }
    *wire = total;
    return floor_now() - t0;
}

/* The floor for read_file: write the request, read the one reply line
 * (the buffer doubles as it fills), find "content":"..." and decode it in
 * place with a plain table decoder, the way a minimal client would.
 * Returns the decoded length (or -1); the bytes are at *data, valid until
 * the next call. */
__attribute__((unused)) static long long floor_read_file(floor_peer *p, const char *path, const unsigned char **data)
{
    static signed char rev[256];
    if (!rev['B']) {
        static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        memset(rev, -1, sizeof rev);
        for (int i = 0; i < 64; i++) rev[(unsigned char)al[i]] = (signed char)i;
    }
    char line[600];
    int l = snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"method\":\"read_file\",\"id\":%llu,\"params\":{\"path\":\"%s\"}}\n",
                     (unsigned long long)p->next_id++, path);
    if (floor_write(p, line, (size_t)l) != 0) return -1;
    size_t scanned = 0;
    char *nl;
    for (;;) {
        nl = p->len > scanned ? memchr(p->buf + scanned, '\n', p->len - scanned) : NULL;
        if (nl) break;
        scanned = p->len;
        if (p->len == p->cap) {
            p->cap *= 2;
            char *nb = realloc(p->buf, p->cap);
            if (!nb) return -1;
            p->buf = nb;
        }
        ssize_t k = read(p->out, p->buf + p->len, p->cap - p->len);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        p->len += (size_t)k;
    }
    char *c = memmem(p->buf, (size_t)(nl - p->buf), "\"content\":\"", 11);
    if (!c) return -1;
    const unsigned char *in = (const unsigned char *)c + 11;
    unsigned char *out = (unsigned char *)c + 11, *o = out;
    const unsigned char *end = memchr(in, '"', (size_t)((const unsigned char *)nl - in));
    if (!end) return -1;
    while (end > in && end[-1] == '=') end--;
    for (; in + 4 <= end; in += 4) {
        int a = rev[in[0]], b = rev[in[1]], cc = rev[in[2]], d = rev[in[3]];
        if ((a | b | cc | d) < 0) return -1;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)cc << 6 | (uint32_t)d;
        *o++ = (unsigned char)(v >> 16);
        *o++ = (unsigned char)(v >> 8);
        *o++ = (unsigned char)v;
    }
    if (end - in >= 2) {
        int a = rev[in[0]], b = rev[in[1]], cc = end - in == 3 ? rev[in[2]] : 0;
        if ((a | b | cc) < 0) return -1;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)cc << 6;
        *o++ = (unsigned char)(v >> 16);
        if (end - in == 3) *o++ = (unsigned char)(v >> 8);
    }
    /* the line is consumed (the peer sends nothing after a lone call's answer) */
    if (p->len != (size_t)(nl - p->buf) + 1) return -1;
    p->len = 0;
    *data = out;
    return (long long)(o - out);
}

#ifndef FLOOR_NO_MAIN
static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    const char *peer = argc > 1 ? argv[1] : getenv("BENCH_PEER");
#ifdef BENCH_PEER
    if (!peer) peer = BENCH_PEER;
#endif
    if (!peer) { fprintf(stderr, "usage: %s PEER [ROUND_TRIPS [REPS [STREAM_BYTES]]]\n", argv[0]); return 2; }
    long n = argc > 2 ? atol(argv[2]) : 20000;
    int reps = argc > 3 ? atoi(argv[3]) : 5;
    unsigned long long stream_bytes = argc > 4 ? strtoull(argv[4], NULL, 10) : 0;
    if (n <= 0 || reps <= 0 || reps > 100) return 2;
    signal(SIGPIPE, SIG_IGN);
    floor_peer p;
    if (floor_start(&p, peer) != 0) return 1;
    floor_roundtrips(&p, n / 10 + 1); /* warm up */
    double us[100];
    for (int r = 0; r < reps; r++) {
        double s = floor_roundtrips(&p, n);
        if (s < 0) { fprintf(stderr, "floor: the peer went away\n"); return 1; }
        us[r] = s * 1e6 / (double)n;
        printf("rep %d: %ld round trips in %.3f s: %.0f round trips/s, %.2f us per round trip\n", r + 1, n, s,
               (double)n / s, us[r]);
    }
    qsort(us, (size_t)reps, sizeof us[0], cmp_double);
    double med = us[reps / 2];
    printf("floor median: %.2f us per round trip (%.0f round trips/s)\n", med, 1e6 / med);
    if (stream_bytes > 0) {
        double gb[100];
        uint64_t wire = 0;
        for (int r = 0; r < reps; r++) {
            double s = floor_stream(&p, stream_bytes, 65536, &wire);
            if (s < 0) { fprintf(stderr, "floor: the peer went away\n"); return 1; }
            gb[r] = (double)stream_bytes / s / 1e9;
            printf("stream rep %d: %llu decoded bytes (%llu on the wire) in %.3f s: %.2f GB/s decoded-equivalent\n",
                   r + 1, stream_bytes, (unsigned long long)wire, s, gb[r]);
        }
        qsort(gb, (size_t)reps, sizeof gb[0], cmp_double);
        printf("floor stream median: %.2f GB/s decoded-equivalent (raw pipe, no parsing)\n", gb[reps / 2]);
    }
    floor_stop(&p);
    return 0;
}
#endif
