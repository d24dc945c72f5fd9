/* Hostile peers (issue 11): a server that breaks the protocol, dies behind
 * a grandchild, stops reading or closes its stdout gets a clear error at
 * once; nothing waits for a deadline such a peer should have ended.  The
 * server is tests/peer/hostile_peer.c (MLK_HOSTILE_PEER) or a shell line. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <msgpack.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "matchlock.h"
#include "e2e_server.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static char logfile[64];

/* A client of the hostile peer in MODE, well-behaved for the first AFTER
 * requests; `name`=`value` (when name is set) is one more variable of its
 * environment, and max_line (when not 0) the client's line limit. */
static mlk_client *hostile_env(const char *mode, int after, const char *name, const char *value, long max_line)
{
    snprintf(logfile, sizeof logfile, "/tmp/mlk-hostile-XXXXXX");
    int lfd = mkstemp(logfile);
    cr_assert_geq(lfd, 0);
    close(lfd);
    mlk_config *cfg = mlk_config_new();
    char a[16];
    snprintf(a, sizeof a, "%d", after);
    mlk_config_set_binary(cfg, MLK_HOSTILE_PEER);
    mlk_config_set_env(cfg, "MLK_HOSTILE_MODE", mode);
    mlk_config_set_env(cfg, "MLK_HOSTILE_AFTER", a);
    mlk_config_set_env(cfg, "LOG", logfile);
    if (name) mlk_config_set_env(cfg, name, value);
    if (max_line) mlk_config_set_max_line(cfg, (uint64_t)max_line);
    return e2e_client_from(cfg);
}

static mlk_client *hostile(const char *mode, int after) { return hostile_env(mode, after, NULL, NULL, 0); }

static void finish(mlk_client *c)
{
    mlk_client_free(c);
    unlink(logfile);
}

/* A client whose server is `sh -c SCRIPT`. */
static mlk_client *shell_peer(const char *script)
{
    mlk_config *cfg = mlk_config_new();
    const char *launcher[] = {"sh", "-c", script, "peer"};
    mlk_config_set_launcher(cfg, launcher, 4);
    mlk_client *c = NULL;
    cr_assert_eq(mlk_client_new(&c, cfg, NULL), 0);
    mlk_config_free(cfg);
    return c;
}

static mlk_exec_opts *opts(int mode, int64_t timeout_ms)
{
    mlk_exec_opts *o = mlk_exec_opts_new();
    mlk_exec_opts_set_mode(o, mode);
    mlk_exec_opts_set_timeout_ms(o, timeout_ms);
    return o;
}

static void count_out(void *ud, uint64_t op, int fd, const char *data, size_t len) { *(size_t *)ud += len; }

/* Run an exec (with a 5 s deadline) that must fail with `want` and
 * `fragment` in its message within `within` seconds; returns its result. */
static mlk_result *exec_fails(mlk_client *c, int want, const char *fragment, double within)
{
    mlk_exec_opts *o = opts(MLK_EXEC_BUFFERED, 5000);
    mlk_result *r = NULL;
    double t0 = now_s();
    int rc = mlk_exec(c, "true", o, &r);
    double el = now_s() - t0;
    mlk_exec_opts_free(o);
    cr_assert_eq(rc, want, "rc=%d %s", rc, mlk_result_message(r));
    cr_assert(strstr(mlk_result_message(r), fragment), "wants \"%s\": %s", fragment, mlk_result_message(r));
    cr_assert(el < within, "took %.2fs: waited for the deadline", el);
    return r;
}

/* ---- 1. output whose base64 is invalid is never dropped silently -------- */

Test(hostile, bad_base64_stream_output_fails_the_call, .timeout = 20)
{
    mlk_client *c = hostile("bad-base64", 0);
    for (int mode = MLK_EXEC_STREAM; mode <= MLK_EXEC_TTY; mode++) {
        for (int with_cb = 0; with_cb < 2; with_cb++) {
            mlk_exec_opts *o = opts(mode, 5000);
            size_t got = 0;
            if (with_cb) mlk_exec_opts_set_callbacks(o, count_out, NULL, &got);
            mlk_result *r = NULL;
            int rc = mlk_exec(c, "echo hi", o, &r);
            const char *want = mode == MLK_EXEC_STREAM ? "exec_stream.stdout"
                             : mode == MLK_EXEC_PIPE ? "exec_pipe.stdout" : "exec_tty.stdout";
            cr_assert_eq(rc, MLK_EPROTO, "mode %d cb %d: rc=%d %s", mode, with_cb, rc, mlk_result_message(r));
            cr_assert(strstr(mlk_result_message(r), want), "%s", mlk_result_message(r));
            cr_assert(strstr(mlk_result_message(r), "base64"), "%s", mlk_result_message(r));
            mlk_result_free(r);
            mlk_exec_opts_free(o);
        }
    }
    /* the session itself is still usable */
    mlk_result *r = NULL;
    cr_assert_eq(mlk_exec(c, "true", NULL, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    finish(c);
}

/* ---- 2. responses for ids never issued ---------------------------------- */

Test(hostile, unknown_response_id_fails_the_session_at_once, .timeout = 20)
{
    mlk_client *c = hostile("unknown-ids", 0);
    mlk_result *r = exec_fails(c, MLK_EPROTO, "not waiting for", 2.0);
    /* quotes the line as the server sent it (the in-place parse ends strings with NULs) */
    cr_assert(strstr(mlk_result_message(r), "{\"jsonrpc\":\"2.0\",\"id\":1001,"), "%s", mlk_result_message(r));
    mlk_result_free(r);
    mlk_result_free(exec_fails(c, MLK_EPROTO, "not waiting for", 2.0)); /* later calls: the same reason */
    finish(c);
}

Test(hostile, answers_to_the_cores_cancels_are_expected, .timeout = 20)
{
    mlk_client *c = hostile("silent", 0); /* answers cancels, nothing else */
    mlk_exec_opts *o = opts(MLK_EXEC_BUFFERED, 200);
    for (int i = 0; i < 3; i++) {
        mlk_result *r = NULL;
        int rc = mlk_exec(c, "sleep 9", o, &r);
        cr_assert_eq(rc, MLK_ETIMEDOUT, "round %d: rc=%d %s", i, rc, mlk_result_message(r));
        mlk_result_free(r);
        usleep(100 * 1000); /* the cancel's answer arrives meanwhile */
    }
    mlk_exec_opts_free(o);
    finish(c);
}

/* Upstream answers {"cancelled":false} to a cancel that overtook the call's
 * own registration, and its close then waits for that call for ever: the
 * core asks again while the call is unanswered and holds the close back
 * until a cancel has landed. */
Test(hostile, a_cancel_that_found_nothing_is_sent_again_before_close, .timeout = 20)
{
    mlk_client *c = hostile("late-cancel", 0);
    mlk_result *r = NULL;
    mlk_exec_opts *o = opts(MLK_EXEC_BUFFERED, 100);
    cr_assert_eq(mlk_exec(c, "cat", o, &r), MLK_ETIMEDOUT, "%s", mlk_result_message(r));
    mlk_result_free(r);
    mlk_exec_opts_free(o);
    double t0 = now_s();
    int rc = mlk_close(c, 2.0, &r);
    cr_assert_eq(rc, 0, "close: rc=%d %s", rc, mlk_result_message(r));
    cr_assert_lt(now_s() - t0, 2.0, "close took %.2f s", now_s() - t0);
    mlk_result_free(r);
    FILE *f = fopen(logfile, "r");
    cr_assert(f);
    char line[512];
    int cancels = 0, cancels_before_close = -1;
    while (fgets(line, sizeof line, f)) {
        if (strstr(line, "\"cancel\"")) cancels++;
        if (strstr(line, "\"close\"") && cancels_before_close < 0) cancels_before_close = cancels;
    }
    fclose(f);
    cr_assert_eq(cancels_before_close, 2, "cancels before the close: %d", cancels_before_close);
    finish(c);
}

/* A write too large for one request line goes as exec_pipe into `cat`;
 * its messages still name the caller's call. */
Test(hostile, a_large_write_that_times_out_is_named_write_file, .timeout = 20)
{
    mlk_client *c = hostile("silent", 0);
    size_t n = 9u << 20;
    char *data = calloc(1, n);
    cr_assert(data);
    mlk_result *r = NULL;
    int rc = mlk_write_file(c, "/tmp/big", data, n, 0644, 300, &r);
    cr_assert_eq(rc, MLK_ETIMEDOUT, "rc=%d %s", rc, mlk_result_message(r));
    cr_assert(strncmp(mlk_result_message(r), "write_file: deadline", 20) == 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    free(data);
    finish(c);
}

/* ---- a blocking caller reads its own answer ---------------------------------
 * While it waits, a blocking caller reads the server's output itself and
 * hands whatever it may not handle (notifications, blank lines, the rest of
 * a partial line) to the I/O thread: with all of these around every answer,
 * from one thread or several at once, every call gets its own answer and
 * every event arrives. */

static _Atomic int chatty_events;

static void count_event(void *ud, const char *mp, size_t len)
{
    (void)ud;
    if (len > 0 && memmem(mp, len, "chatty", 6)) chatty_events++;
}

static mlk_client *chatty_client;
static int64_t chatty_timeout_ms; /* of every call; 0: none */

/* 500 calls; with a deadline of 1 ms a call may also time out (the timer
 * then races the answer a waiting thread reads). */
static void *chatty_calls(void *arg)
{
    mlk_client *c = chatty_client;
    mlk_exec_opts *o = chatty_timeout_ms ? opts(MLK_EXEC_BUFFERED, chatty_timeout_ms) : NULL;
    intptr_t bad = 0;
    for (int i = 0; i < 500 && !bad; i++) {
        mlk_result *r = NULL;
        int rc = mlk_exec(c, "true", o, &r);
        size_t n = 0;
        const char *out = rc == 0 ? mlk_result_stdout(r, &n) : NULL;
        if (rc == MLK_ETIMEDOUT && chatty_timeout_ms == 1) {
            (*(int *)arg)++;
        } else if (rc != 0 || n != 8 || memcmp(out, "hostile\n", 8) != 0) {
            fprintf(stderr, "call %d: rc=%d %s\n", i, rc, mlk_result_message(r));
            bad = 1;
        }
        mlk_result_free(r);
    }
    mlk_exec_opts_free(o);
    return (void *)bad;
}

static void chatty_run(int threads, int64_t timeout_ms)
{
    mlk_client *c = hostile("chatty", 0);
    chatty_client = c;
    chatty_timeout_ms = timeout_ms;
    chatty_events = 0;
    cr_assert_eq(mlk_client_set_event_cb(c, count_event, NULL), 0);
    pthread_t t[8];
    int timed_out[8] = {0};
    for (int i = 0; i < threads; i++) cr_assert_eq(pthread_create(&t[i], NULL, chatty_calls, &timed_out[i]), 0);
    for (int i = 0; i < threads; i++) {
        void *bad = NULL;
        pthread_join(t[i], &bad);
        cr_assert_null(bad, "a call got a wrong answer (stderr says which)");
    }
    if (timeout_ms == 1) { /* the session goes on: every answer was delivered once */
        mlk_result *r = NULL;
        cr_assert_eq(mlk_exec(c, "true", NULL, &r), 0, "%s", mlk_result_message(r));
        mlk_result_free(r);
    } else {
        double t0 = now_s();
        while (chatty_events < 500 * threads && now_s() - t0 < 10) mlk_dispatch_wait(c, 100);
        cr_assert_eq(chatty_events, 500 * threads, "events: %d of %d", (int)chatty_events, 500 * threads);
    }
    finish(c);
}

Test(hostile, answers_among_events_and_split_lines_all_arrive, .timeout = 60) { chatty_run(1, 0); }
Test(hostile, answers_among_events_and_split_lines_all_arrive_to_four_threads, .timeout = 60) { chatty_run(4, 0); }
/* calls with a deadline: their timers are freed by the I/O thread */
Test(hostile, answers_to_calls_with_a_deadline_arrive_among_events, .timeout = 60) { chatty_run(4, 10000); }
Test(hostile, a_deadline_that_races_the_answer_completes_the_call_once, .timeout = 60) { chatty_run(2, 1); }

/* ---- 3. garbage lines ---------------------------------------------------- */

Test(hostile, garbage_after_the_first_message_fails_the_session, .timeout = 20)
{
    mlk_client *c = hostile("garbage", 1);
    mlk_result *r = NULL;
    cr_assert_eq(mlk_exec(c, "true", NULL, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    r = exec_fails(c, MLK_EPROTO, "not a JSON-RPC message", 2.0);
    cr_assert(strstr(mlk_result_message(r), "panic: runtime error"), "quotes the line: %s", mlk_result_message(r));
    mlk_result_free(r);
    /* the calls got the reason; closing the failed session is not an error
     * (as after a dead server, and as the official SDKs' close) */
    int rc = mlk_close(c, 1, &r);
    cr_assert_eq(rc, 0, "close after a protocol error: rc=%d %s", rc, mlk_result_message(r));
    mlk_result_free(r);
    finish(c);
}

Test(hostile, a_banner_before_the_first_message_is_fine, .timeout = 20)
{
    mlk_client *c = hostile("banner", 0);
    mlk_result *r = NULL;
    cr_assert_eq(mlk_exec(c, "true", NULL, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    finish(c);
}

Test(hostile, a_dead_servers_banner_is_quoted, .timeout = 20)
{
    mlk_client *c = shell_peer("echo 'usage: matchlock [--flags] COMMAND'; exit 2");
    mlk_result *r = NULL;
    int rc = mlk_exec(c, "true", NULL, &r);
    cr_assert_eq(rc, MLK_EDEAD, "rc=%d %s", rc, mlk_result_message(r));
    cr_assert(strstr(mlk_result_message(r), "usage: matchlock [--flags] COMMAND"), "%s", mlk_result_message(r));
    mlk_result_free(r);
    mlk_client_free(c);
}

Test(hostile, endless_output_before_the_first_message_fails_at_once, .timeout = 20)
{
    mlk_client *c = shell_peer("yes 'not json' | head -c 20000; exec sleep 10");
    mlk_result_free(exec_fails(c, MLK_EPROTO, "before its first JSON-RPC message", 4.0));
    mlk_client_free(c);
}

/* ---- 4. death behind a grandchild --------------------------------------- */

Test(hostile, death_behind_a_grandchild_fails_pending_calls_at_once, .timeout = 20)
{
    mlk_client *c = hostile("grandchild", 0);
    mlk_result *r = exec_fails(c, MLK_EDEAD, "connection closed", 1.0);
    cr_assert(strstr(mlk_result_message(r), "status 3"), "%s", mlk_result_message(r));
    cr_assert(strstr(mlk_result_message(r), "grandchild"), "the stderr tail: %s", mlk_result_message(r));
    mlk_result_free(r);
    cr_assert_eq(mlk_close(c, 0, NULL), 0);
    finish(c);
}

Test(hostile, death_mid_call_and_closed_stdout, .timeout = 20)
{
    const char *modes[] = {"dies-mid-call", "closes-stdout"};
    for (int i = 0; i < 2; i++) {
        mlk_client *c = hostile(modes[i], 1);
        mlk_result *r = NULL;
        cr_assert_eq(mlk_exec(c, "true", NULL, &r), 0, "%s", mlk_result_message(r));
        mlk_result_free(r);
        r = exec_fails(c, MLK_EDEAD, "connection closed", 1.0);
        if (i == 0) cr_assert(strstr(mlk_result_message(r), "died mid-call"), "%s", mlk_result_message(r));
        mlk_result_free(r);
        /* a call made after the death leads with the official SDKs' wording, then the detail */
        cr_assert_eq(mlk_exec(c, "true", NULL, &r), MLK_EDEAD);
        cr_assert(strncmp(mlk_result_message(r), "Matchlock process not running (connection closed", 48) == 0, "%s",
                  mlk_result_message(r));
        mlk_result_free(r);
        finish(c);
    }
}

/* ---- 5. close keeps to its budget ---------------------------------------- */

Test(hostile, close_of_a_server_that_stopped_reading_keeps_one_deadline, .timeout = 20)
{
    mlk_client *c = hostile("stops-reading", 1);
    mlk_result *r = NULL;
    cr_assert_eq(mlk_exec(c, "true", NULL, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    double t0 = now_s();
    int rc = mlk_close(c, 1.0, &r); /* budget: the timeout + 1 s */
    double el = now_s() - t0;
    cr_assert_eq(rc, MLK_ECLOSE_TIMEOUT, "rc=%d %s", rc, mlk_result_message(r));
    cr_assert(el < 2.8, "took %.2fs for a 2 s budget", el);
    int said = -1;
    const char *m = strstr(mlk_result_message(r), "after ");
    cr_assert(m && sscanf(m, "after %d ms", &said) == 1, "%s", mlk_result_message(r));
    cr_assert(said >= 1900 && said <= el * 1000 + 50, "said %d ms, took %.0f ms", said, el * 1000);
    mlk_result_free(r);
    finish(c);
}

/* ---- close and free release every descriptor at once -------------------- */

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - 1; /* the DIR's own */
}

static void never(void *ud, mlk_client *c, int kind, mlk_hook_call *call, const char *req, size_t len)
{
    mlk_hook_fail(call, "no");
}

Test(hostile, close_releases_the_childs_descriptors_and_free_the_rest, .timeout = 20)
{
    mlk_client *warm = hostile("ok", 0); /* the I/O thread's own descriptors exist already */
    int before = count_fds();
    mlk_client *c = hostile("ok", 0);
    mlk_sandbox *sb = mlk_sandbox_new("alpine:latest");
    const char rule[] = "\x81\xa5hosts\x91\xa1*"; /* {hosts: ["*"]} */
    cr_assert_eq(mlk_sandbox_add_network_hook(sb, rule, sizeof rule - 1, never, NULL), 0);
    mlk_result *r = NULL;
    cr_assert_eq(mlk_create(c, sb, 5000, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    mlk_sandbox_free(sb);
    int open_fds = count_fds();
    cr_assert_geq(open_fds, before + 5, "pipes, pidfd, queue and hook socket: %d -> %d", before, open_fds);
    cr_assert_eq(mlk_close(c, 1, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    int closed = count_fds();
    struct stat st; /* the dispatch queue: an eventfd, or a pipe with its write end (MLK_FORCE_PORTABLE, macOS) */
    cr_assert_eq(fstat(mlk_client_fd(c), &st), 0);
    int dispatch_fds = S_ISFIFO(st.st_mode) ? 2 : 1;
    cr_assert_eq(closed, before + dispatch_fds, "after close only the dispatch queue's %d fd(s) are left: %d -> %d -> %d",
                 dispatch_fds, before, open_fds, closed);
    finish(c);
    cr_assert_eq(count_fds(), before, "after free nothing is left");
    mlk_client_free(warm);
}

/* ---- 9. fork(): an inherited client refuses at once, free stays local ---- */

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return strdup("");
    char *buf = calloc(1, 1 << 16);
    size_t n = fread(buf, 1, (1 << 16) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static int child_checks(mlk_client *c)
{
    alarm(10); /* a hang fails the test instead of blocking it */
    mlk_result *r = NULL;
    if (mlk_exec(c, "echo from-child", NULL, &r) != MLK_ECLOSED) return 10;
    if (!strstr(mlk_result_message(r), "fork")) return 11;
    mlk_result_free(r);
    uint64_t op;
    if (mlk_exec_async(c, "true", NULL, NULL, NULL, &op) != MLK_ECLOSED) return 12;
    if (mlk_read_file(c, "/x", 0, NULL) != MLK_ECLOSED) return 13;
    if (mlk_dispatch(c, 0) != MLK_ECLOSED) return 14;
    if (mlk_close(c, 1, NULL) != MLK_ECLOSED) return 15;
    mlk_client_free(c); /* local memory only: no close RPC, no waiting for the parent's I/O thread */
    /* the child can still make a client of its own */
    mlk_config *cfg = mlk_config_new();
    mlk_config_set_binary(cfg, MLK_HOSTILE_PEER);
    mlk_client *mine = NULL;
    if (mlk_client_new(&mine, cfg, NULL) != 0) return 16;
    mlk_config_free(cfg);
    if (mlk_exec(mine, "true", NULL, NULL) != 0) return 17;
    mlk_client_free(mine);
    return 0;
}

Test(hostile, an_inherited_client_refuses_in_the_child, .timeout = 30)
{
    mlk_client *c = hostile("ok", 0);
    mlk_result *r = NULL;
    cr_assert_eq(mlk_exec(c, "true", NULL, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    for (int round = 0; round < 3; round++) {
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) _exit(child_checks(c));
        /* the parent keeps using its client meanwhile */
        for (int i = 0; i < 5; i++) {
            cr_assert_eq(mlk_exec(c, "true", NULL, &r), 0, "round %d: %s", round, mlk_result_message(r));
            mlk_result_free(r);
        }
        int st = 0;
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child: status %d exit %d", st, WEXITSTATUS(st));
    }
    cr_assert_eq(mlk_exec(c, "true", NULL, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    char *log = slurp(logfile);
    cr_assert_null(strstr(log, "\"close\""), "a child never closes the parent's session: %s", log);
    cr_assert_null(strstr(log, "from-child"), "%s", log);
    free(log);
    finish(c);
}

Test(hostile, an_error_for_no_request_fails_the_session_with_its_message, .timeout = 20)
{
    /* upstream answers a line it cannot parse with an error and no id */
    mlk_client *c = shell_peer("read -r line; echo '{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32700,\"message\":\"Parse error\"}}'; "
                               "exec sleep 10");
    mlk_result *r = exec_fails(c, MLK_EPROTO, "error for no request: Parse error", 2.0);
    mlk_result_free(r);
    mlk_client_free(c);
}

/* ---- 10. a server cannot exhaust the host (issue 23, item 5) ------------- */

/* Peak RSS since reset_peak(), in KiB (Linux: /proc/self/status VmHWM, reset
 * through /proc/self/clear_refs); -1 where the system cannot tell. */
static long status_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long v = -1;
    size_t k = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, k) == 0 && line[k] == ':') { v = atol(line + k + 1); break; }
    fclose(f);
    return v;
}

static int reset_peak(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return -1;
    int ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* Whether RSS says anything about the library's allocations: not under
 * AddressSanitizer (its quarantine keeps freed memory) or valgrind. */
#if defined(__SANITIZE_ADDRESS__)
#define MLK_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MLK_ASAN 1
#endif
#endif
static int rss_meaningful(void)
{
#ifdef MLK_ASAN
    return 0;
#else
    const char *pre = getenv("LD_PRELOAD");
    return !(pre && strstr(pre, "vgpreload"));
#endif
}

/* The peak RSS growth (KiB) while fn(c) runs, or -1 when unknown. */
static long peak_growth(void (*fn)(mlk_client *, void *), mlk_client *c, void *arg)
{
    int can = rss_meaningful() && reset_peak() == 0;
    long before = status_kb("VmRSS");
    fn(c, arg);
    long peak = status_kb("VmHWM");
    return can && before >= 0 && peak >= 0 ? peak - before : -1;
}

static void exec_wants_budget_error(mlk_client *c, void *arg)
{
    mlk_result *r = NULL;
    int rc = mlk_exec(c, "true", NULL, &r);
    cr_assert_eq(rc, MLK_EPROTO, "rc=%d %s", rc, mlk_result_message(r));
    cr_assert(strstr(mlk_result_message(r), "more JSON values"), "%s", mlk_result_message(r));
    mlk_result_free(r);
}

Test(hostile, a_line_of_values_costs_at_most_the_parser_budget, .timeout = 60)
{
    /* 8 MiB of `[0,0,...]`: 4 M values.  Before the budget the parser took
     * 147 MB of nodes for it and the call succeeded. */
    mlk_client *c = hostile_env("values", 0, NULL, NULL, 0);
    long kb = peak_growth(exec_wants_budget_error, c, NULL);
    cr_log_info("8 MiB line of values: peak RSS grew by %ld KiB", kb);
    /* the line buffer (16 MiB) plus at most 4x the line in nodes (32 MiB),
     * plus a growing array's copy */
    if (kb >= 0) cr_assert_lt(kb, 80 * 1024, "peak RSS grew by %ld KiB for an 8 MiB line", kb);
    /* only that call failed: the session goes on */
    mlk_result *r = NULL;
    cr_assert_eq(mlk_exec(c, "true", NULL, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    finish(c);
}

Test(hostile, an_oversized_answer_fails_only_its_call, .timeout = 30)
{
    /* a read_file answer of 4 MiB, its id last (as upstream writes it),
     * against a limit of 1 MiB: the read fails, the session goes on */
    mlk_client *c = hostile_env("huge-answer", 0, "MLK_HOSTILE_BYTES", "4194304", 1 << 20);
    mlk_result *r = NULL;
    int rc = mlk_read_file(c, "/big", 10000, &r);
    cr_assert_eq(rc, MLK_EPROTO, "rc=%d %s", rc, mlk_result_message(r));
    cr_assert(strstr(mlk_result_message(r), "read_file"), "%s", mlk_result_message(r));
    cr_assert(strstr(mlk_result_message(r), "longer than the line limit of 1048576 bytes"), "%s", mlk_result_message(r));
    mlk_result_free(r);
    cr_assert_eq(mlk_read_file(c, "/small", 10000, &r), 0, "%s", mlk_result_message(r));
    size_t n;
    const char *d = mlk_result_data(r, &n);
    cr_assert(n == 7 && memcmp(d, "hostile", 7) == 0);
    mlk_result_free(r);
    finish(c);
}

Test(hostile, an_oversized_output_notification_fails_only_its_call, .timeout = 30)
{
    mlk_client *c = hostile_env("huge-output", 0, "MLK_HOSTILE_BYTES", "4194304", 1 << 20);
    mlk_exec_opts *o = opts(MLK_EXEC_STREAM, 10000);
    size_t got = 0;
    mlk_exec_opts_set_callbacks(o, count_out, NULL, &got);
    mlk_result *r = NULL;
    int rc = mlk_exec(c, "cat big", o, &r);
    mlk_exec_opts_free(o);
    cr_assert_eq(rc, MLK_EPROTO, "rc=%d %s", rc, mlk_result_message(r));
    cr_assert(strstr(mlk_result_message(r), "output notification"), "%s", mlk_result_message(r));
    cr_assert(strstr(mlk_result_message(r), "longer than the line limit"), "%s", mlk_result_message(r));
    mlk_result_free(r);
    cr_assert_eq(mlk_exec(c, "true", NULL, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    finish(c);
}

Test(hostile, the_default_line_limit_fits_the_largest_read, .timeout = 10)
{
    /* the limit a read_file of MLK_LARGEST_READ bytes needs, and no more
     * than 64 KiB beyond (it was 1 GiB) */
    uint64_t b64 = (MLK_LARGEST_READ + 2) / 3 * 4;
    cr_assert_geq(MLK_DEFAULT_MAX_LINE, b64 + 4096);
    cr_assert_leq(MLK_DEFAULT_MAX_LINE, b64 + 65536);
    cr_assert_eq(MLK_LARGEST_READ, 256ull << 20);
}

struct seen_events {
    size_t events, notices, hooks;
    uint64_t dropped_events, dropped_after;
};

/* A msgpack map's uint value for key (the notice's counts), or 0. */
static uint64_t mp_uint(const char *mp, size_t len, const char *key)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    uint64_t v = 0;
    if (msgpack_unpack_next(&u, mp, len, NULL) == MSGPACK_UNPACK_SUCCESS && u.data.type == MSGPACK_OBJECT_MAP)
        for (uint32_t i = 0; i < u.data.via.map.size; i++) {
            msgpack_object_kv *kv = &u.data.via.map.ptr[i];
            if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == strlen(key) &&
                memcmp(kv->key.via.str.ptr, key, strlen(key)) == 0 && kv->val.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                v = kv->val.via.u64;
        }
    msgpack_unpacked_destroy(&u);
    return v;
}

static void on_event(void *ud, const char *mp, size_t len)
{
    struct seen_events *s = ud;
    if (memmem(mp, len, "dropped", 7) && memmem(mp, len, "after_hooks", 11)) {
        s->notices++;
        s->dropped_events += mp_uint(mp, len, "events");
        s->dropped_after += mp_uint(mp, len, "after_hooks");
    } else {
        s->events++;
    }
}

static void on_after(void *ud, mlk_client *c, int kind, mlk_hook_call *call, const char *req, size_t len)
{
    ((struct seen_events *)ud)->hooks++;
}

static void exec_ok(mlk_client *c, void *arg)
{
    mlk_result *r = NULL;
    cr_assert_eq(mlk_exec(c, "true", NULL, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
}

#define FLOOD 500000
#define EVENT_BOUND 4096 /* EVENT_QUEUE_MAX (core/client.h) */
#define AFTER_BOUND 1024 /* AFTER_QUEUE_MAX (core/client.h) */

Test(hostile, an_event_flood_nobody_dispatches_stays_bounded, .timeout = 120)
{
    /* 500,000 events while the host sits in a blocking call: they queued
     * without bound (55 MB and growing).  Now at most EVENT_QUEUE_MAX wait,
     * and one notice counts the rest. */
    mlk_client *c = hostile("event-flood", 0);
    struct seen_events s = {0};
    mlk_client_set_event_cb(c, on_event, &s);
    long kb = peak_growth(exec_ok, c, NULL);
    cr_log_info("event flood: peak RSS grew by %ld KiB", kb);
    if (kb >= 0) cr_assert_lt(kb, 16 * 1024, "peak RSS grew by %ld KiB for %d queued events", kb, FLOOD);
    while (mlk_dispatch(c, 0) > 0) {}
    cr_assert_leq(s.events, EVENT_BOUND, "%zu events were held for the host", s.events);
    cr_assert_eq(s.notices, 1, "one notice for the drops, got %zu", s.notices);
    cr_assert_eq(s.events + s.dropped_events, FLOOD, "%zu delivered + %llu dropped", s.events,
                 (unsigned long long)s.dropped_events);
    /* the queue takes events again once the host dispatched */
    exec_ok(c, NULL);
    while (mlk_dispatch(c, 0) > 0) {}
    cr_assert_leq(s.events, 2 * EVENT_BOUND);
    cr_assert_eq(s.events + s.dropped_events, 2 * FLOOD);
    finish(c);
}

Test(hostile, an_after_hook_flood_nobody_dispatches_stays_bounded, .timeout = 120)
{
    mlk_client *c = hostile("after-flood", 1);
    struct seen_events s = {0};
    mlk_client_set_event_cb(c, on_event, &s);
    mlk_sandbox *sb = mlk_sandbox_new("alpine:latest");
    mlk_sandbox_set_workspace(sb, "/workspace");
    mlk_sandbox_mount_memory(sb, "/workspace");
    cr_assert_eq(mlk_sandbox_add_vfs_hook(sb, MLK_HOOK_VFS_DANGEROUS, NULL, 0, on_after, &s), 0);
    mlk_result *r = NULL;
    cr_assert_eq(mlk_create(c, sb, 5000, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    mlk_sandbox_free(sb);
    long kb = peak_growth(exec_ok, c, NULL);
    cr_log_info("after-hook flood: peak RSS grew by %ld KiB", kb);
    if (kb >= 0) cr_assert_lt(kb, 16 * 1024, "peak RSS grew by %ld KiB for %d file events", kb, FLOOD);
    while (mlk_dispatch(c, 0) > 0) {}
    cr_assert_leq(s.hooks, AFTER_BOUND, "%zu after-hook calls were held for the host", s.hooks);
    cr_assert_eq(s.hooks + s.dropped_after, FLOOD, "%zu run + %llu dropped", s.hooks,
                 (unsigned long long)s.dropped_after);
    cr_assert_geq(s.notices, 1);
    finish(c);
}
