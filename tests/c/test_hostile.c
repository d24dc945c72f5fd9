/* Hostile peers (issue 11): a server that breaks the protocol, dies behind
 * a grandchild, stops reading or closes its stdout gets a clear error at
 * once; nothing waits for a deadline such a peer should have ended.  The
 * server is tests/peer/hostile_peer.c (MLK_HOSTILE_PEER) or a shell line. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "matchlock.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static char logfile[64];

/* A client of the hostile peer in MODE, well-behaved for the first AFTER requests. */
static mlk_client *hostile(const char *mode, int after)
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
    mlk_client *c = NULL;
    mlk_result *r = NULL;
    cr_assert_eq(mlk_client_new(&c, cfg, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    mlk_config_free(cfg);
    return c;
}

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
    mlk_exec_opts *o = opts(MLK_EXEC_BUFFERED, 5000);
    mlk_result *r = NULL;
    double t0 = now_s();
    int rc = mlk_exec(c, "true", o, &r);
    double el = now_s() - t0;
    cr_assert_eq(rc, MLK_EPROTO, "rc=%d %s", rc, mlk_result_message(r));
    cr_assert(strstr(mlk_result_message(r), "not waiting for"), "%s", mlk_result_message(r));
    cr_assert(el < 2.0, "took %.2fs: waited for the deadline", el);
    mlk_result_free(r);
    /* later calls get the same reason at once */
    cr_assert_eq(mlk_exec(c, "true", o, NULL), MLK_EPROTO);
    mlk_exec_opts_free(o);
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

/* ---- 3. garbage lines ---------------------------------------------------- */

Test(hostile, garbage_after_the_first_message_fails_the_session, .timeout = 20)
{
    mlk_client *c = hostile("garbage", 1);
    mlk_result *r = NULL;
    cr_assert_eq(mlk_exec(c, "true", NULL, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    mlk_exec_opts *o = opts(MLK_EXEC_BUFFERED, 5000);
    double t0 = now_s();
    int rc = mlk_exec(c, "true", o, &r);
    double el = now_s() - t0;
    cr_assert_eq(rc, MLK_EPROTO, "rc=%d %s", rc, mlk_result_message(r));
    cr_assert(strstr(mlk_result_message(r), "not a JSON-RPC message"), "%s", mlk_result_message(r));
    cr_assert(strstr(mlk_result_message(r), "panic: runtime error"), "quotes the line: %s", mlk_result_message(r));
    cr_assert(el < 2.0, "took %.2fs", el);
    mlk_result_free(r);
    mlk_exec_opts_free(o);
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
    mlk_result *r = NULL;
    double t0 = now_s();
    int rc = mlk_exec(c, "true", NULL, &r);
    double el = now_s() - t0;
    cr_assert_eq(rc, MLK_EPROTO, "rc=%d %s", rc, mlk_result_message(r));
    cr_assert(strstr(mlk_result_message(r), "before its first JSON-RPC message"), "%s", mlk_result_message(r));
    cr_assert(el < 5.0, "took %.2fs", el);
    mlk_result_free(r);
    mlk_client_free(c);
}
