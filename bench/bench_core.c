/* bench_core.c - benchmarks of libmatchlock's public API against the canned
 * peer (canned_peer.c).  Not a test: it measures and prints a table.
 *
 *   bench_core [--quick] [--reps N] [--peer PATH]
 *
 * (a) exec round trip, blocking mlk_exec, side by side with the floor
 *     (floor_client.c, no library) in the same run: median of N reps;
 * (b) streamed stdout decoded to a callback, GB/s (blocking and async);
 * (c) 1000 concurrent async execs on one client and 100 clients in one
 *     process: library threads (from /proc/self/task);
 * (d) a 256 MiB read_file: peak RSS (ru_maxrss of a fresh process);
 * (e) a 4 GiB stream: RSS before/after (fresh process), plus a slow
 *     consumer variant;
 * (s) only when asked for (--only s): the blocking stream of (b) alone,
 *     --stream-bytes per rep (default 256 MiB), for the binding benchmarks
 *     (bench/python, bench/lua, bench/node) to set beside their own.
 * (d) and (e) re-run this program as `bench_core --child ...` so that
 * ru_maxrss belongs to that measurement alone. */
#define _GNU_SOURCE
#define FLOOR_NO_MAIN
#include "floor_client.c"

#include <matchlock.h>

#include <dirent.h>
#include <stdarg.h>
#include <poll.h>
#include <sys/resource.h>

#ifndef BENCH_PEER
#define BENCH_PEER "canned_peer"
#endif

static const char *g_peer;
static int g_reps = 7;
static int g_quick;
static uint64_t g_stream_bytes = 256ull << 20;

/* ---- helpers ------------------------------------------------------------ */

static double now_s(void) { return floor_now(); }

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(const double *v, int n)
{
    double t[256];
    if (n <= 0) return 0;
    if (n > 256) n = 256;
    memcpy(t, v, (size_t)n * sizeof *t);
    qsort(t, (size_t)n, sizeof *t, cmp_d);
    return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

static int count_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

/* current resident set in KiB */
static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return -1;
    long size = 0, res = 0;
    if (fscanf(f, "%ld %ld", &size, &res) != 2) res = -1;
    fclose(f);
    return res < 0 ? -1 : res * (sysconf(_SC_PAGESIZE) / 1024);
}

static long maxrss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static double tv_s(struct timeval t) { return (double)t.tv_sec + (double)t.tv_usec * 1e-6; }

/* CPU seconds (user + system) of the whole process / of the calling thread.
 * The process has two threads while a client exists (this one and the
 * library's I/O thread), so process - thread is the I/O thread. */
static double cpu_self(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return tv_s(ru.ru_utime) + tv_s(ru.ru_stime);
}

static double cpu_thread(void)
{
    struct rusage ru;
    getrusage(RUSAGE_THREAD, &ru);
    return tv_s(ru.ru_utime) + tv_s(ru.ru_stime);
}

static void die_res(const char *what, int rc, mlk_result *r)
{
    fprintf(stderr, "bench: %s failed: %s (%s)\n", what, mlk_strerror(rc), r ? mlk_result_message(r) : "");
    exit(1);
}

/* A client on the canned peer; env is NULL-terminated NAME, VALUE pairs. */
static mlk_client *new_client(const char *const *env)
{
    mlk_config *cfg = mlk_config_new();
    mlk_config_set_binary(cfg, g_peer);
    for (; env && env[0]; env += 2) mlk_config_set_env(cfg, env[0], env[1]);
    mlk_client *c;
    mlk_result *r = NULL;
    int rc = mlk_client_new(&c, cfg, &r);
    mlk_config_free(cfg);
    if (rc != 0) die_res("mlk_client_new", rc, r);
    mlk_result_free(r);
    return c;
}

static void create_sandbox(mlk_client *c)
{
    mlk_sandbox *sb = mlk_sandbox_new("alpine:latest");
    mlk_result *r = NULL;
    int rc = mlk_create(c, sb, 0, &r);
    if (rc != 0) die_res("mlk_create", rc, r);
    mlk_result_free(r);
    mlk_sandbox_free(sb);
}

/* ---- the result table ------------------------------------------------------ */

typedef struct row {
    char name[64], value[64], target[32], verdict[16];
} row;
static row g_rows[32];
static int g_nrows;

static void add_row(const char *name, const char *target, int met, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void add_row(const char *name, const char *target, int met, const char *fmt, ...)
{
    if (g_nrows >= 32) return;
    row *r = &g_rows[g_nrows++];
    snprintf(r->name, sizeof r->name, "%s", name);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->value, sizeof r->value, fmt, ap);
    va_end(ap);
    snprintf(r->target, sizeof r->target, "%s", target);
    snprintf(r->verdict, sizeof r->verdict, "%s", met < 0 ? "" : met ? "met" : "MISSED");
}

/* ===================================================================== */
/* (a) exec round trip vs the floor                                         */

static double lib_roundtrips(mlk_client *c, long n)
{
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        mlk_result *r = NULL;
        int rc = mlk_exec(c, "true", NULL, &r);
        if (rc != 0) die_res("mlk_exec", rc, r);
        mlk_result_free(r);
    }
    return now_s() - t0;
}

static void bench_roundtrip(void)
{
    long n = g_quick ? 5000 : 20000;
    int reps = g_reps;
    printf("\n(a) exec round trip: blocking mlk_exec vs the floor (plain write/read), %ld round trips x %d reps, alternating\n",
           n, reps);
    floor_peer fp;
    if (floor_start(&fp, g_peer) != 0) exit(1);
    mlk_client *c = new_client(NULL);
    create_sandbox(c);
    mlk_result *r = NULL;
    if (mlk_exec(c, "true", NULL, &r) != 0 || mlk_result_exit_code(r) != 0) die_res("exec check", mlk_result_status(r), r);
    size_t ol;
    const char *o = mlk_result_stdout(r, &ol);
    if (ol != 3 || memcmp(o, "ok\n", 3) != 0) { fprintf(stderr, "bench: unexpected exec stdout\n"); exit(1); }
    mlk_result_free(r);
    floor_roundtrips(&fp, n / 5);
    lib_roundtrips(c, n / 5);

    double fl[64], lb[64], df[64], fcpu[64], lcpu[64];
    if (reps > 64) reps = 64;
    for (int i = 0; i < reps; i++) {
        double f = 0, l = 0;
        for (int k = 0; k < 2; k++) {
            double p0 = cpu_self();
            if ((i + k) % 2 == 0) { f = floor_roundtrips(&fp, n); fcpu[i] = (cpu_self() - p0) * 1e6 / (double)n; }
            else { l = lib_roundtrips(c, n); lcpu[i] = (cpu_self() - p0) * 1e6 / (double)n; }
        }
        if (f < 0) { fprintf(stderr, "bench: floor peer went away\n"); exit(1); }
        fl[i] = f * 1e6 / (double)n;
        lb[i] = l * 1e6 / (double)n;
        df[i] = lb[i] - fl[i];
        printf("  rep %d: floor %6.2f us (%7.0f/s)   mlk_exec %6.2f us (%7.0f/s)   +%.2f us\n", i + 1, fl[i],
               1e6 / fl[i], lb[i], 1e6 / lb[i], df[i]);
    }
    double mf = median(fl, reps), ml = median(lb, reps), md = median(df, reps);
    printf("  median: floor %.2f us, mlk_exec %.2f us, difference (median of paired reps) %.2f us\n", mf, ml, md);
    printf("  CPU of this process per round trip (user+sys, both threads; the peer not counted): floor %.2f us, mlk_exec %.2f us\n",
           median(fcpu, reps), median(lcpu, reps));
    add_row("exec round trip, floor", "", -1, "%.2f us (%.0f/s)", mf, 1e6 / mf);
    add_row("exec round trip, mlk_exec", "", -1, "%.2f us (%.0f/s)", ml, 1e6 / ml);
    add_row("exec round trip, over the floor", "<= 10 us", md <= 10.0, "+%.2f us", md);
    add_row("exec round trip, CPU floor/mlk_exec", "", -1, "%.2f / %.2f us", median(fcpu, reps), median(lcpu, reps));
    mlk_client_free(c);
    floor_stop(&fp);
}

/* ===================================================================== */
/* (b) streamed stdout                                                       */

typedef struct sink {
    uint64_t bytes;
    unsigned sum;
    uint64_t chunks;
    /* optional: slow consumer and RSS sampling */
    double ns_per_byte;
    uint64_t next_sample, sample_every;
    long rss_max;
    int done;               /* async: set by on_done_sink */
} sink;

static void on_out(void *ud, uint64_t op, int fd, const char *data, size_t len)
{
    sink *s = ud;
    s->bytes += len;
    s->chunks++;
    if (len) s->sum += (unsigned char)data[0] ^ (unsigned char)data[len - 1];
    if (s->ns_per_byte > 0) {
        double until = now_s() + (double)len * s->ns_per_byte * 1e-9;
        while (now_s() < until) {}
    }
    if (s->sample_every && s->bytes >= s->next_sample) {
        long r = rss_kb();
        if (r > s->rss_max) s->rss_max = r;
        s->next_sample += s->sample_every;
    }
}

static char *stream_cmd(uint64_t bytes, size_t chunk)
{
    static char b[64];
    snprintf(b, sizeof b, "stream %llu %zu", (unsigned long long)bytes, chunk);
    return b;
}

/* Blocking streamed exec; returns seconds. */
static double lib_stream(mlk_client *c, uint64_t bytes, size_t chunk, sink *s)
{
    mlk_exec_opts *o = mlk_exec_opts_new();
    mlk_exec_opts_set_mode(o, MLK_EXEC_STREAM);
    mlk_exec_opts_set_callbacks(o, on_out, NULL, s);
    uint64_t before = s->bytes;
    double t0 = now_s();
    mlk_result *r = NULL;
    int rc = mlk_exec(c, stream_cmd(bytes, chunk), o, &r);
    double t = now_s() - t0;
    if (rc != 0) die_res("streamed mlk_exec", rc, r);
    mlk_result_free(r);
    mlk_exec_opts_free(o);
    if (s->bytes - before != bytes) {
        fprintf(stderr, "bench: stream delivered %llu bytes, expected %llu\n",
                (unsigned long long)(s->bytes - before), (unsigned long long)bytes);
        exit(1);
    }
    return t;
}

/* The async stream passes the same sink as the done callback's ud and the
 * output callbacks' ud (see docs/benchmarks.md: the core currently hands
 * the done ud to the output callbacks of an async exec). */
static void on_done_sink(void *ud, uint64_t op, const mlk_result *r)
{
    sink *s = ud;
    if (mlk_result_status(r) != 0) { fprintf(stderr, "bench: async call failed: %s\n", mlk_result_message(r)); exit(1); }
    s->done = 1;
}

/* Async streamed exec driven by poll + mlk_dispatch; returns seconds. */
static double lib_stream_async(mlk_client *c, uint64_t bytes, size_t chunk, sink *s)
{
    mlk_exec_opts *o = mlk_exec_opts_new();
    mlk_exec_opts_set_mode(o, MLK_EXEC_STREAM);
    mlk_exec_opts_set_callbacks(o, on_out, NULL, s);
    s->done = 0;
    uint64_t before = s->bytes;
    double t0 = now_s();
    uint64_t op;
    int rc = mlk_exec_async(c, stream_cmd(bytes, chunk), o, on_done_sink, s, &op);
    if (rc != 0) die_res("mlk_exec_async", rc, NULL);
    struct pollfd p = {.fd = mlk_client_fd(c), .events = POLLIN};
    while (!s->done) {
        poll(&p, 1, -1);
        mlk_dispatch(c, 0);
    }
    mlk_exec_opts_free(o);
    double t = now_s() - t0;
    if (s->bytes - before != bytes) {
        fprintf(stderr, "bench: async stream delivered %llu bytes, expected %llu\n",
                (unsigned long long)(s->bytes - before), (unsigned long long)bytes);
        exit(1);
    }
    return t;
}

static void bench_stream(void)
{
    uint64_t total = g_quick ? (256ull << 20) : (1ull << 30);
    int reps = g_reps;
    printf("\n(b) streamed stdout decoded to a callback (exec_stream, %llu MiB per rep, GB = 1e9 bytes)\n",
           (unsigned long long)(total >> 20));
    mlk_client *c = new_client(NULL);
    floor_peer fp;
    if (floor_start(&fp, g_peer) != 0) exit(1);
    sink s = {0};
    lib_stream(c, 64u << 20, 65536, &s); /* warm up */

    double lib[64], wire[64];
    if (reps > 64) reps = 64;
    uint64_t wire_bytes = 0;
    double io_cpu[64], host_cpu[64];
    for (int i = 0; i < reps; i++) {
        double p0 = cpu_self(), h0 = cpu_thread();
        double t = lib_stream(c, total, 65536, &s);
        double h = cpu_thread() - h0, p = cpu_self() - p0;
        io_cpu[i] = (p - h) / ((double)total / 1e9);
        host_cpu[i] = h / ((double)total / 1e9);
        lib[i] = (double)total / t / 1e9;
        double w = floor_stream(&fp, total, 65536, &wire_bytes);
        wire[i] = (double)wire_bytes / w / 1e9;
        printf("  rep %d: mlk_exec stream %.2f GB/s decoded   (raw pipe from the peer, no parsing: %.2f GB/s of wire bytes = %.2f GB/s decoded-equivalent)\n",
               i + 1, lib[i], wire[i], (double)total / w / 1e9);
    }
    double m = median(lib, reps);
    printf("  median: %.2f GB/s decoded (64 KiB chunks); raw pipe %.2f GB/s wire\n", m, median(wire, reps));
    double mio = median(io_cpu, reps), mhost = median(host_cpu, reps);
    double bound = 1.0 / (mio > mhost ? mio : mhost);
    printf("  CPU per decoded GB: I/O thread %.2f s, calling thread %.2f s -> %.2f GB/s when each has a core of its own\n",
           mio, mhost, bound);
    add_row("stream, blocking, 64 KiB chunks", ">= 1 GB/s", m >= 1.0, "%.2f GB/s", m);
    add_row("stream, raw pipe (no parse)", "", -1, "%.2f GB/s wire", median(wire, reps));
    add_row("stream, CPU bound (1/busiest thread)", "", -1, "%.2f GB/s (I/O %.2f s/GB)", bound, mio);

    double as[64];
    for (int i = 0; i < reps; i++) {
        double t = lib_stream_async(c, total, 65536, &s);
        as[i] = (double)total / t / 1e9;
    }
    double ma = median(as, reps);
    printf("  async (mlk_exec_async + mlk_dispatch), 64 KiB chunks: median %.2f GB/s\n", ma);
    add_row("stream, async+dispatch, 64 KiB", ">= 1 GB/s", ma >= 1.0, "%.2f GB/s", ma);

    static const size_t chunks[] = {4096, 16384, 262144, 1048576};
    for (size_t k = 0; k < sizeof chunks / sizeof chunks[0]; k++) {
        double v[3];
        uint64_t tot = chunks[k] < 16384 ? total / 4 : total;
        for (int i = 0; i < 3; i++) v[i] = (double)tot / lib_stream(c, tot, chunks[k], &s) / 1e9;
        double mc = median(v, 3);
        printf("  chunk %7zu bytes: median of 3 %.2f GB/s\n", chunks[k], mc);
        char name[64];
        snprintf(name, sizeof name, "stream, blocking, %zu KiB chunks", chunks[k] >> 10);
        add_row(name, "", -1, "%.2f GB/s", mc);
    }
    if (s.sum == 0xdeadbeef) printf(" "); /* keep the checksum alive */
    mlk_client_free(c);
    floor_stop(&fp);
}

/* (s) the blocking 64 KiB-chunk stream alone (the core's own figure for the
 * binding benchmarks). */
static void bench_stream_short(void)
{
    uint64_t total = g_stream_bytes;
    int reps = g_reps > 64 ? 64 : g_reps;
    printf("\n(s) streamed stdout, blocking mlk_exec to a C callback, %llu bytes per rep, 64 KiB chunks\n",
           (unsigned long long)total);
    mlk_client *c = new_client(NULL);
    sink s = {0};
    lib_stream(c, 64u << 20, 65536, &s); /* warm up */
    double v[64];
    for (int i = 0; i < reps; i++) {
        v[i] = (double)total / lib_stream(c, total, 65536, &s) / 1e9;
        printf("  rep %d: %.2f GB/s decoded\n", i + 1, v[i]);
    }
    printf("  stream median: %.2f GB/s decoded\n", median(v, reps));
    add_row("stream, blocking, 64 KiB chunks", "", -1, "%.2f GB/s", median(v, reps));
    mlk_client_free(c);
}

/* ===================================================================== */
/* (c) concurrency and threads                                               */

static int g_max_threads;
static void sample_threads(void)
{
    int t = count_threads();
    if (t > g_max_threads) g_max_threads = t;
}

static void on_exec_done(void *ud, uint64_t op, const mlk_result *r)
{
    int *n = ud;
    if (mlk_result_status(r) != 0 || mlk_result_exit_code(r) != 0) {
        fprintf(stderr, "bench: async exec failed: %s\n", mlk_result_message(r));
        exit(1);
    }
    (*n)++;
    if (*n % 100 == 0) sample_threads();
}

static void bench_threads(void)
{
    printf("\n(c) concurrency: threads in the process (from /proc/self/task; the main thread counts as one)\n");
    int t0 = count_threads();
    printf("  before any client: %d thread(s)\n", t0);
    g_max_threads = t0;

    /* 1000 concurrent async execs on one client */
    mlk_client *c = new_client(NULL);
    sample_threads();
    double times[16];
    int reps = g_reps > 16 ? 16 : g_reps;
    for (int rep = 0; rep < reps; rep++) {
        int done = 0;
        double t = now_s();
        for (int i = 0; i < 1000; i++) {
            uint64_t op;
            int rc = mlk_exec_async(c, "true", NULL, on_exec_done, &done, &op);
            if (rc != 0) die_res("mlk_exec_async", rc, NULL);
        }
        sample_threads();
        struct pollfd p = {.fd = mlk_client_fd(c), .events = POLLIN};
        while (done < 1000) {
            poll(&p, 1, -1);
            mlk_dispatch(c, 0);
            sample_threads();
        }
        times[rep] = now_s() - t;
    }
    double m1 = median(times, reps);
    int th1 = g_max_threads;
    printf("  1000 concurrent mlk_exec_async on one client: median %.2f ms for all 1000 (%.0f execs/s); max threads %d\n",
           m1 * 1e3, 1000 / m1, th1);
    mlk_client_free(c);

    /* 100 clients in one process, 10 async execs each, all in flight */
    enum { NC = 100 };
    mlk_client *cs[NC];
    double tc = now_s();
    for (int i = 0; i < NC; i++) {
        cs[i] = new_client(NULL);
        if (i % 10 == 0) sample_threads();
    }
    tc = now_s() - tc;
    sample_threads();
    int done = 0;
    double t = now_s();
    for (int i = 0; i < NC; i++)
        for (int k = 0; k < 10; k++) {
            uint64_t op;
            int rc = mlk_exec_async(cs[i], "true", NULL, on_exec_done, &done, &op);
            if (rc != 0) die_res("mlk_exec_async", rc, NULL);
        }
    sample_threads();
    struct pollfd p[NC];
    for (int i = 0; i < NC; i++) p[i] = (struct pollfd){.fd = mlk_client_fd(cs[i]), .events = POLLIN};
    while (done < NC * 10) {
        poll(p, NC, -1);
        for (int i = 0; i < NC; i++)
            if (p[i].revents) mlk_dispatch(cs[i], 0);
        sample_threads();
    }
    t = now_s() - t;
    int th2 = g_max_threads;
    printf("  100 clients (100 peer processes) started in %.0f ms; 1000 execs across them in %.2f ms; max threads %d\n",
           tc * 1e3, t * 1e3, th2);
    for (int i = 0; i < NC; i++) mlk_client_free(cs[i]);
    int t_after = count_threads();
    printf("  after freeing every client: %d thread(s)\n", t_after);
    int lib_threads = th2 - t0;
    add_row("1000 async execs, one client", "", -1, "%.1f ms (%.0f/s)", m1 * 1e3, 1000 / m1);
    add_row("threads, 1000 execs + 100 clients", "<= 2 total", th2 <= 2, "%d total (%d library)", th2, lib_threads);
    add_row("threads after every client freed", "", t_after == t0, "%d", t_after);
}

/* ===================================================================== */
/* (d) read_file peak RSS and (e) long stream memory: fresh processes        */

static int child_readfile(uint64_t bytes)
{
    char num[32];
    snprintf(num, sizeof num, "%llu", (unsigned long long)bytes);
    const char *env[] = {"PEER_FILE_BYTES", num, NULL};
    mlk_client *c = new_client(env);
    create_sandbox(c);
    long base = rss_kb();
    double t = now_s();
    mlk_result *r = NULL;
    int rc = mlk_read_file(c, "/data/big.bin", 0, &r);
    t = now_s() - t;
    if (rc != 0) die_res("mlk_read_file", rc, r);
    size_t len;
    const char *d = mlk_result_data(r, &len);
    if (len != bytes) { fprintf(stderr, "bench: read %zu bytes, expected %llu\n", len, (unsigned long long)bytes); return 1; }
    for (size_t i = 0; i < len; i += 4093)
        if ((unsigned char)d[i] != (unsigned char)(i * 131 + 7)) { fprintf(stderr, "bench: wrong content at %zu\n", i); return 1; }
    long held = rss_kb();
    mlk_result_free(r);
    mlk_client_free(c);
    printf("base_kb=%ld held_kb=%ld maxrss_kb=%ld secs=%.3f\n", base, held, maxrss_kb(), t);
    return 0;
}

/* The floor's read_file in a fresh process, reported like child_readfile. */
static int child_floor_readfile(uint64_t bytes)
{
    char num[32];
    snprintf(num, sizeof num, "%llu", (unsigned long long)bytes);
    setenv("PEER_FILE_BYTES", num, 1);
    floor_peer fp;
    if (floor_start(&fp, g_peer) != 0) return 1;
    if (floor_roundtrips(&fp, 1) < 0) return 1; /* the peer is up */
    long base = rss_kb();
    const unsigned char *d = NULL;
    double t = now_s();
    long long len = floor_read_file(&fp, "/data/big.bin", &d);
    t = now_s() - t;
    if (len != (long long)bytes) { fprintf(stderr, "bench: floor read %lld bytes, expected %llu\n", len, (unsigned long long)bytes); return 1; }
    for (size_t i = 0; i < (size_t)len; i += 4093)
        if (d[i] != (unsigned char)(i * 131 + 7)) { fprintf(stderr, "bench: floor: wrong content at %zu\n", i); return 1; }
    long held = rss_kb();
    floor_stop(&fp);
    printf("base_kb=%ld held_kb=%ld maxrss_kb=%ld secs=%.3f\n", base, held, maxrss_kb(), t);
    return 0;
}

static int child_longstream(uint64_t bytes, double slow_ns_per_byte)
{
    mlk_client *c = new_client(NULL);
    sink s = {0};
    lib_stream(c, 256u << 20, 65536, &s); /* warm up: buffers reach their working size */
    long before = rss_kb();
    long hwm_before = maxrss_kb();
    s.sample_every = 64u << 20;
    s.next_sample = s.bytes + s.sample_every;
    s.rss_max = before;
    s.ns_per_byte = slow_ns_per_byte;
    double t = lib_stream(c, bytes, 65536, &s);
    long after = rss_kb();
    mlk_client_free(c);
    printf("before_kb=%ld after_kb=%ld max_kb=%ld hwm_before_kb=%ld maxrss_kb=%ld secs=%.3f\n", before, after,
           s.rss_max, hwm_before, maxrss_kb(), t);
    return 0;
}

/* Run `self --child ARGS` and parse `key=value` numbers from its output. */
static int run_child(const char *args, const char *const *keys, double *vals, int nkeys)
{
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return -1;
    self[n] = '\0';
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' --peer '%s' --child %s", self, g_peer, args);
    FILE *f = popen(cmd, "r");
    if (!f) return -1;
    char line[1024] = "";
    char *got = fgets(line, sizeof line, f);
    int st = pclose(f);
    if (!got || st != 0) return -1;
    for (int k = 0; k < nkeys; k++) {
        char pat[64];
        snprintf(pat, sizeof pat, "%s=", keys[k]);
        char *p = strstr(line, pat);
        if (!p) return -1;
        vals[k] = strtod(p + strlen(pat), NULL);
    }
    return 0;
}

static void bench_readfile(void)
{
    uint64_t bytes = 64ull << 20;
    int reps = g_reps;
    printf("\n(d) read_file of %llu MiB in a fresh process, floor (plain read + table decode) and mlk_read_file "
           "alternating: time and peak RSS (ru_maxrss), %d reps\n", (unsigned long long)(bytes >> 20), reps);
    static const char *const keys[] = {"base_kb", "held_kb", "maxrss_kb", "secs"};
    double peak[100], fpeak[100], secs[100], fsecs[100], tratio[100], pratio[100];
    for (int i = 0; i < reps; i++) {
        double v[4], f[4];
        char args[64], fargs[64];
        snprintf(args, sizeof args, "readfile %llu", (unsigned long long)bytes);
        snprintf(fargs, sizeof fargs, "floor-readfile %llu", (unsigned long long)bytes);
        int bad;
        if (i % 2 == 0) bad = run_child(fargs, keys, f, 4) || run_child(args, keys, v, 4);
        else bad = run_child(args, keys, v, 4) || run_child(fargs, keys, f, 4);
        if (bad) { fprintf(stderr, "bench: readfile child failed\n"); exit(1); }
        peak[i] = v[2]; secs[i] = v[3]; fpeak[i] = f[2]; fsecs[i] = f[3];
        tratio[i] = v[3] / f[3];
        pratio[i] = v[2] / f[2];
        printf("  rep %d: floor %.0f ms, peak %.0f MiB; mlk_read_file %.0f ms (%.2fx), peak %.0f MiB (%.2fx the file, "
               "%.2fx the floor's)\n", i + 1, f[3] * 1e3, f[2] / 1024, v[3] * 1e3, tratio[i], v[2] / 1024,
               v[2] * 1024 / (double)bytes, pratio[i]);
    }
    double mp = median(peak, reps) * 1024 / (double)bytes;
    double mt = median(tratio, reps), mpr = median(pratio, reps);
    printf("  median: floor %.0f ms, mlk_read_file %.0f ms (%.2fx the floor's time, %.2f GB/s); peak %.2fx the file, "
           "%.2fx the floor's peak (%.0f vs %.0f MiB)\n", median(fsecs, reps) * 1e3, median(secs, reps) * 1e3, mt,
           (double)bytes / median(secs, reps) / 1e9, mp, mpr, median(peak, reps) / 1024, median(fpeak, reps) / 1024);
    add_row("read_file 64 MiB, time / floor's", "<= 1.2x", mt <= 1.2, "%.2fx", mt);
    add_row("read_file 64 MiB, peak RSS / floor's", "", -1, "%.2fx (%.2fx the file)", mpr, mp);
}

static void bench_longstream(void)
{
    uint64_t bytes = g_quick ? (1ull << 30) : (4ull << 30);
    printf("\n(e) one stream of %llu MiB in a fresh process (64 KiB chunks): RSS after a 256 MiB warm-up vs during/after\n",
           (unsigned long long)(bytes >> 20));
    static const char *const keys[] = {"before_kb", "after_kb", "max_kb", "hwm_before_kb", "maxrss_kb", "secs"};
    double v[6];
    char args[96];
    snprintf(args, sizeof args, "longstream %llu 0", (unsigned long long)bytes);
    if (run_child(args, keys, v, 6) != 0) { fprintf(stderr, "bench: longstream child failed\n"); exit(1); }
    double growth = (v[2] - v[0]) / 1024;
    printf("  RSS after warm-up %.1f MiB, max while streaming %.1f MiB, after %.1f MiB (growth %+.1f MiB); peak RSS %.1f MiB (%.1f MiB after warm-up); %.2f GB/s\n",
           v[0] / 1024, v[2] / 1024, v[1] / 1024, growth, v[4] / 1024, v[3] / 1024, (double)bytes / v[5] / 1e9);
    char name[64];
    snprintf(name, sizeof name, "%llu GiB stream, RSS growth", (unsigned long long)(bytes >> 30));
    add_row(name, "constant", growth < 16, "%+.1f MiB (%.0f -> %.0f MiB)", growth, v[0] / 1024, v[2] / 1024);

    /* A consumer slower than the producer (about 0.25 GB/s). */
    uint64_t sb = 512ull << 20;
    snprintf(args, sizeof args, "longstream %llu 4.0", (unsigned long long)sb);
    if (run_child(args, keys, v, 6) != 0) { fprintf(stderr, "bench: slow longstream child failed\n"); exit(1); }
    growth = (v[2] - v[0]) / 1024;
    printf("  slow consumer (callback at ~0.25 GB/s), 512 MiB: RSS after warm-up %.1f MiB, max %.1f MiB (growth %+.1f MiB), peak %.1f MiB; %.2f GB/s\n",
           v[0] / 1024, v[2] / 1024, growth, v[4] / 1024, (double)sb / v[5] / 1e9);
    add_row("512 MiB stream, slow consumer", "constant", growth < 16, "%+.1f MiB (%.0f -> %.0f MiB)", growth,
            v[0] / 1024, v[2] / 1024);
}

/* ===================================================================== */

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    g_peer = getenv("BENCH_PEER");
    if (!g_peer || !*g_peer) g_peer = BENCH_PEER;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) { g_quick = 1; g_reps = 3; }
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) g_reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--peer") == 0 && i + 1 < argc) g_peer = argv[++i];
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) only = argv[++i];
        else if (strcmp(argv[i], "--stream-bytes") == 0 && i + 1 < argc) g_stream_bytes = strtoull(argv[++i], NULL, 0);
        else if (strcmp(argv[i], "--child") == 0 && i + 2 < argc) {
            uint64_t b = strtoull(argv[i + 2], NULL, 10);
            if (strcmp(argv[i + 1], "readfile") == 0) return child_readfile(b);
            if (strcmp(argv[i + 1], "floor-readfile") == 0) return child_floor_readfile(b);
            if (strcmp(argv[i + 1], "longstream") == 0)
                return child_longstream(b, i + 3 < argc ? strtod(argv[i + 3], NULL) : 0);
            return 2;
        } else {
            fprintf(stderr, "usage: %s [--quick] [--reps N] [--peer PATH] [--only a|b|c|d|e|s] [--stream-bytes N]\n",
                    argv[0]);
            return 2;
        }
    }
    if (g_reps < 1) g_reps = 1;
    if (access(g_peer, X_OK) != 0) { fprintf(stderr, "bench: peer %s is not executable\n", g_peer); return 1; }
    printf("libmatchlock %s benchmarks; peer %s; %ld CPUs; %d reps (medians reported)\n", mlk_version_str(), g_peer,
           sysconf(_SC_NPROCESSORS_ONLN), g_reps);

    /* threads first: nothing of ours has started a thread yet */
    if (!only || strchr(only, 'c')) bench_threads();
    if (!only || strchr(only, 'a')) bench_roundtrip();
    if (!only || strchr(only, 'b')) bench_stream();
    if (!only || strchr(only, 'd')) bench_readfile();
    if (!only || strchr(only, 'e')) bench_longstream();
    if (only && strchr(only, 's') && g_stream_bytes > 0) bench_stream_short();

    printf("\n%-36s %-30s %-14s %s\n", "benchmark", "measured (median)", "target", "");
    printf("%-36s %-30s %-14s %s\n", "------------------------------------", "------------------------------",
           "--------------", "------");
    int missed = 0;
    for (int i = 0; i < g_nrows; i++) {
        printf("%-36s %-30s %-14s %s\n", g_rows[i].name, g_rows[i].value, g_rows[i].target, g_rows[i].verdict);
        if (strcmp(g_rows[i].verdict, "MISSED") == 0) missed++;
    }
    printf("\n%d target(s) missed\n", missed);
    return 0;
}
