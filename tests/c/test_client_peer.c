/* Unit tests of the client state machine against scripted peers: tiny
 * shell programs started through the launcher option, so every fault
 * (death, garbage, silence, huge lines) is real bytes on real pipes. */
#include <criterion/criterion.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "matchlock.h"

static char logfile[256];

/* A client whose child is `sh -c SCRIPT peer matchlock rpc`.  The script
 * may use $LOG (a file) to record what it read. */
static mlk_client *peer(const char *script, mlk_result **res)
{
    /* a fresh file per client: pids are reused, and an old log would mislead */
    snprintf(logfile, sizeof logfile, "/tmp/mlk-peer-XXXXXX");
    int lfd = mkstemp(logfile);
    cr_assert_geq(lfd, 0);
    close(lfd);
    mlk_config *cfg = mlk_config_new();
    const char *launcher[] = {"sh", "-c", script, "peer"};
    cr_assert_eq(mlk_config_set_launcher(cfg, launcher, 4), 0);
    cr_assert_eq(mlk_config_set_env(cfg, "LOG", logfile), 0);
    mlk_client *c = NULL;
    int rc = mlk_client_new(&c, cfg, res);
    mlk_config_free(cfg);
    cr_assert_eq(rc, 0, "client_new: %s", res && *res ? mlk_result_message(*res) : "");
    return c;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return strdup("");
    char *buf = calloc(1, 1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* Reads requests; answers each with what ANSWER (a shell snippet using $id) prints. */
#define LOOP(ANSWER)                                                          \
    "while IFS= read -r line; do printf '%s\\n' \"$line\" >> \"$LOG\"; "      \
    "id=$(printf '%s' \"$line\" | sed -n 's/.*\"method\":\"[a-z_]*\",\"id\":\\([0-9]*\\).*/\\1/p'); " \
    "[ -n \"$id\" ] || continue; " ANSWER "; done"

Test(peer, spawn_failure_names_the_binary)
{
    mlk_config *cfg = mlk_config_new();
    mlk_config_set_binary(cfg, "/nonexistent/matchlock-xyz");
    mlk_client *c = (mlk_client *)1;
    mlk_result *r = NULL;
    int rc = mlk_client_new(&c, cfg, &r);
    mlk_config_free(cfg);
    cr_assert_eq(rc, MLK_ESPAWN);
    cr_assert_null(c);
    cr_assert(strstr(mlk_result_message(r), "/nonexistent/matchlock-xyz"), "%s", mlk_result_message(r));
    mlk_result_free(r);
}

Test(peer, dead_server_reports_its_stderr, .timeout = 20)
{
    mlk_client *c = peer("echo 'fatal: kvm not available' >&2; exit 3", NULL);
    usleep(100 * 1000);
    mlk_result *r = NULL;
    int rc = mlk_exec(c, "true", NULL, &r);
    cr_assert_eq(rc, MLK_EDEAD, "rc=%d %s", rc, mlk_result_message(r));
    cr_assert(strstr(mlk_result_message(r), "kvm not available"), "%s", mlk_result_message(r));
    mlk_result_free(r);
    /* every later call fails the same way, without hanging */
    cr_assert_eq(mlk_read_file(c, "/x", 0, NULL), MLK_EDEAD);
    cr_assert_eq(mlk_close(c, 0, NULL), 0);
    mlk_client_free(c);
}

Test(peer, malformed_lines_are_skipped, .timeout = 20)
{
    mlk_client *c = peer(LOOP("echo 'garbage{'; echo; echo '[1,2]'; "
                              "printf '{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"exit_code\":7,"
                              "\"stdout\":\"aGk=\",\"stderr\":\"\",\"duration_ms\":3}}\\n' \"$id\""), NULL);
    mlk_result *r = NULL;
    cr_assert_eq(mlk_exec(c, "whatever", NULL, &r), 0, "%s", mlk_result_message(r));
    cr_assert_eq(mlk_result_exit_code(r), 7);
    size_t n;
    const char *out = mlk_result_stdout(r, &n);
    cr_assert_eq(n, 2);
    cr_assert(memcmp(out, "hi", 2) == 0);
    cr_assert_eq(mlk_result_duration_ms(r), 3);
    mlk_result_free(r);
    mlk_client_free(c);
}

Test(peer, malformed_message_is_a_protocol_error, .timeout = 20)
{
    mlk_client *c = peer(LOOP("echo '{\"jsonrpc\":\"2.0\",\"id\":'"), NULL);
    mlk_result *r = NULL;
    cr_assert_eq(mlk_exec(c, "x", NULL, &r), MLK_EPROTO, "%s", mlk_result_message(r));
    cr_assert(strstr(mlk_result_message(r), "malformed"), "%s", mlk_result_message(r));
    mlk_result_free(r);
    mlk_client_free(c);
}

Test(peer, invalid_base64_fails_the_call, .timeout = 20)
{
    mlk_client *c = peer(LOOP("printf '{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"content\":\"@@@\"}}\\n' \"$id\""), NULL);
    mlk_result *r = NULL;
    cr_assert_eq(mlk_read_file(c, "/x", 0, &r), MLK_EPARSE, "%s", mlk_result_message(r));
    mlk_result_free(r);
    mlk_client_free(c);
}

Test(peer, rpc_error_keeps_code_and_message, .timeout = 20)
{
    mlk_client *c = peer(LOOP("printf '{\"jsonrpc\":\"2.0\",\"id\":%s,\"error\":{\"code\":-32001,"
                              "\"message\":\"exec failed: no shell\"}}\\n' \"$id\""), NULL);
    mlk_result *r = NULL;
    cr_assert_eq(mlk_exec(c, "x", NULL, &r), MLK_ERPC);
    cr_assert_eq(mlk_result_rpc_code(r), -32001);
    cr_assert(strstr(mlk_result_message(r), "exec failed: no shell"), "%s", mlk_result_message(r));
    mlk_result_free(r);
    mlk_client_free(c);
}

Test(peer, deadline_sends_cancel_and_returns_at_once, .timeout = 20)
{
    mlk_client *c = peer(LOOP("true"), NULL); /* never answers */
    mlk_exec_opts *o = mlk_exec_opts_new();
    mlk_exec_opts_set_timeout_ms(o, 200);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    mlk_result *r = NULL;
    cr_assert_eq(mlk_exec(c, "sleep 100", o, &r), MLK_ETIMEDOUT);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double el = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    cr_assert(el < 5.0, "took %.2fs", el);
    mlk_result_free(r);
    mlk_exec_opts_free(o);
    usleep(200 * 1000);
    char *log = slurp(logfile);
    cr_assert(strstr(log, "\"method\":\"cancel\",\"params\":{\"id\":1}"), "log: %s", log);
    free(log);
    mlk_client_free(c);
}

static void count_done(void *ud, uint64_t op, const mlk_result *res)
{
    int *st = ud;
    *st = mlk_result_status(res);
}

Test(peer, cancel_completes_async_call, .timeout = 20)
{
    mlk_client *c = peer(LOOP("true"), NULL);
    int status = 1;
    uint64_t op = 0;
    cr_assert_eq(mlk_exec_async(c, "sleep 100", NULL, count_done, &status, &op), 0);
    cr_assert_eq(mlk_cancel(c, op), 0);
    for (int i = 0; i < 500 && status == 1; i++) {
        mlk_dispatch(c, 0);
        usleep(10 * 1000);
    }
    cr_assert_eq(status, MLK_ECANCELED);
    mlk_client_free(c);
}

Test(peer, oversized_line_fails_cleanly, .timeout = 20)
{
    mlk_config *cfg = mlk_config_new();
    const char *launcher[] = {"sh", "-c",
        "read -r line; head -c 100000 /dev/zero | tr '\\0' 'a'; echo; sleep 5", "peer"};
    mlk_config_set_launcher(cfg, launcher, 4);
    mlk_config_set_max_line(cfg, 4096);
    mlk_client *c = NULL;
    cr_assert_eq(mlk_client_new(&c, cfg, NULL), 0);
    mlk_config_free(cfg);
    mlk_result *r = NULL;
    cr_assert_eq(mlk_exec(c, "x", NULL, &r), MLK_EPROTO, "%s", mlk_result_message(r));
    cr_assert(strstr(mlk_result_message(r), "longer than"), "%s", mlk_result_message(r));
    mlk_result_free(r);
    mlk_client_free(c);
}

Test(peer, close_is_idempotent_and_later_calls_fail, .timeout = 20)
{
    mlk_client *c = peer(LOOP("printf '{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{}}\\n' \"$id\"; "
                              "case \"$line\" in *'\"close\"'*) exit 0;; esac"), NULL);
    mlk_result *r = NULL;
    cr_assert_eq(mlk_close(c, 1.5, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    cr_assert_eq(mlk_close(c, 0, NULL), 0);
    cr_assert_eq(mlk_exec(c, "true", NULL, &r), MLK_ECLOSED);
    cr_assert(strstr(mlk_result_message(r), "client closed"), "%s", mlk_result_message(r));
    mlk_result_free(r);
    uint64_t op;
    cr_assert_eq(mlk_exec_async(c, "true", NULL, NULL, NULL, &op), MLK_ECLOSED);
    char *log = slurp(logfile);
    cr_assert(strstr(log, "\"method\":\"close\""), "%s", log);
    cr_assert(strstr(log, "\"timeout_seconds\":1.5"), "%s", log);
    free(log);
    mlk_client_free(c);
}

Test(peer, close_without_a_timeout_sends_the_official_grace, .timeout = 20)
{
    mlk_client *c = peer(LOOP("printf '{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{}}\\n' \"$id\"; "
                              "case \"$line\" in *'\"close\"'*) exit 0;; esac"), NULL);
    cr_assert_eq(mlk_close(c, 0, NULL), 0);
    char *log = slurp(logfile);
    cr_assert(strstr(log, "\"timeout_seconds\":2"), "close(0) sends 2 s like the official SDK: %s", log);
    free(log);
    mlk_client_free(c);
}

struct stream_seen {
    char out[64], err[64];
    size_t on, en;
};

static void on_out(void *ud, uint64_t op, int fd, const char *data, size_t len)
{
    struct stream_seen *s = ud;
    if (fd == 1) { memcpy(s->out + s->on, data, len); s->on += len; }
    else { memcpy(s->err + s->en, data, len); s->en += len; }
}

Test(peer, stream_notifications_reach_callbacks_in_order, .timeout = 20)
{
    mlk_client *c = peer(LOOP(
        "printf '{\"jsonrpc\":\"2.0\",\"method\":\"exec_stream.stdout\",\"params\":{\"id\":%s,\"data\":\"b25l\"}}\\n' \"$id\"; "
        "printf '{\"jsonrpc\":\"2.0\",\"method\":\"exec_stream.stderr\",\"params\":{\"id\":%s,\"data\":\"ZXJy\"}}\\n' \"$id\"; "
        "printf '{\"jsonrpc\":\"2.0\",\"method\":\"exec_stream.stdout\",\"params\":{\"id\":%s,\"data\":\"dHdv\"}}\\n' \"$id\"; "
        "printf '{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"exit_code\":0,\"duration_ms\":1}}\\n' \"$id\""), NULL);
    struct stream_seen s = {0};
    mlk_exec_opts *o = mlk_exec_opts_new();
    mlk_exec_opts_set_mode(o, MLK_EXEC_STREAM);
    mlk_exec_opts_set_callbacks(o, on_out, NULL, &s);
    mlk_result *r = NULL;
    cr_assert_eq(mlk_exec(c, "x", o, &r), 0, "%s", mlk_result_message(r));
    cr_assert_eq(s.on, 6);
    cr_assert(memcmp(s.out, "onetwo", 6) == 0);
    cr_assert_eq(s.en, 3);
    cr_assert(memcmp(s.err, "err", 3) == 0);
    mlk_result_free(r);
    mlk_exec_opts_free(o);
    mlk_client_free(c);
}

static void stream_done(void *ud, uint64_t op, const mlk_result *r) { *(int *)ud = 1; }

Test(peer, async_output_gets_the_opts_user_data, .timeout = 20)
{
    mlk_client *c = peer(LOOP(
        "printf '{\"jsonrpc\":\"2.0\",\"method\":\"exec_stream.stdout\",\"params\":{\"id\":%s,\"data\":\"b25l\"}}\\n' \"$id\"; "
        "printf '{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"exit_code\":0,\"duration_ms\":1}}\\n' \"$id\""), NULL);
    struct stream_seen s = {0};
    int done = 0;
    mlk_exec_opts *o = mlk_exec_opts_new();
    mlk_exec_opts_set_mode(o, MLK_EXEC_STREAM);
    mlk_exec_opts_set_callbacks(o, on_out, NULL, &s);
    uint64_t op;
    cr_assert_eq(mlk_exec_async(c, "x", o, stream_done, &done, &op), 0);
    mlk_exec_opts_free(o);
    for (int i = 0; i < 500 && !done; i++) {
        mlk_dispatch(c, 0);
        usleep(5000);
    }
    cr_assert(done);
    cr_assert_eq(s.on, 3);
    cr_assert(memcmp(s.out, "one", 3) == 0);
    mlk_client_free(c);
}

static void on_event(void *ud, const char *mp, size_t len)
{
    char *type = ud;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, mp, len, NULL) == MSGPACK_UNPACK_SUCCESS && u.data.type == MSGPACK_OBJECT_MAP) {
        for (uint32_t i = 0; i < u.data.via.map.size; i++) {
            msgpack_object_kv *kv = &u.data.via.map.ptr[i];
            if (kv->key.via.str.size == 4 && memcmp(kv->key.via.str.ptr, "type", 4) == 0)
                snprintf(type, 32, "%.*s", (int)kv->val.via.str.size, kv->val.via.str.ptr);
        }
    }
    msgpack_unpacked_destroy(&u);
}

Test(peer, events_reach_the_subscription, .timeout = 20)
{
    mlk_client *c = peer("echo '{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"params\":{\"type\":\"file\","
                         "\"timestamp\":1,\"file\":{\"op\":\"write\",\"path\":\"/w/a\",\"size\":3}}}'; sleep 5", NULL);
    char type[32] = "";
    mlk_client_set_event_cb(c, on_event, type);
    for (int i = 0; i < 300 && !type[0]; i++) {
        mlk_dispatch(c, 0);
        usleep(10 * 1000);
    }
    cr_assert_str_eq(type, "file");
    mlk_client_free(c);
}

Test(peer, errors_have_names)
{
    cr_assert_str_eq(mlk_errname(MLK_ECLOSED), "MLK_ECLOSED");
    cr_assert_str_eq(mlk_strerror(MLK_ECLOSED), "client closed");
    cr_assert_str_eq(mlk_err_upstream_name(MLK_EIMAGE_REQUIRED), "ErrImageRequired");
    cr_assert_null(mlk_errname(-999));
    cr_assert_eq(mlk_version() / 10000, MLK_VERSION_MAJOR);
}

Test(peer, cli_deadline_kills_a_stuck_command, .timeout = 20)
{
    mlk_config *cfg = mlk_config_new();
    const char *launcher[] = {"sh", "-c", "sleep 30", "peer"};
    mlk_config_set_launcher(cfg, launcher, 4);
    cr_assert_eq(mlk_config_set_cli_timeout_ms(cfg, 200), 0);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    mlk_result *r = NULL;
    cr_assert_eq(mlk_volume_list(cfg, &r), MLK_ETIMEDOUT, "%s", mlk_result_message(r));
    clock_gettime(CLOCK_MONOTONIC, &b);
    cr_assert(b.tv_sec - a.tv_sec < 5, "returned promptly");
    cr_assert(strstr(mlk_result_message(r), "200 ms"), "%s", mlk_result_message(r));
    mlk_result_free(r);
    mlk_config_free(cfg);
}

Test(peer, cli_output_flood_is_cut_off, .timeout = 30)
{
    /* a CLI (or the host behind a launcher) that prints without end: its
     * stdout was collected without bound; now past 16 MiB it is killed */
    mlk_config *cfg = mlk_config_new();
    const char *launcher[] = {"sh", "-c", "exec yes '[{\"name\":\"v\",\"path\":\"/p\"}]'", "peer"};
    mlk_config_set_launcher(cfg, launcher, 4);
    mlk_result *r = NULL;
    int rc = mlk_volume_list(cfg, &r);
    cr_assert_eq(rc, MLK_EPROTO, "rc=%d %s", rc, mlk_result_message(r));
    cr_assert(strstr(mlk_result_message(r), "printed more than 16777216 bytes"), "%s", mlk_result_message(r));
    mlk_result_free(r);
    mlk_config_free(cfg);
}

/* ---- volume output, as the official SDKs read it ------------------------ */

/* Run a volume command whose CLI prints `out` (through a launcher script). */
static int fake_volume(const char *out, int list, mlk_result **r)
{
    mlk_config *cfg = mlk_config_new();
    char *script = NULL;
    cr_assert(asprintf(&script, "printf '%%s' '%s'", out) > 0);
    const char *launcher[] = {"sh", "-c", script, "peer"};
    mlk_config_set_launcher(cfg, launcher, 4);
    int rc = list ? mlk_volume_list(cfg, r) : mlk_volume_create(cfg, "asked", 8, r);
    mlk_config_free(cfg);
    free(script);
    return rc;
}

/* The msgpack result as the string field `key` of map `m` (or of the
 * array's first item when m is an array). */
static char *vol_str(const mlk_result *r, const char *key)
{
    size_t n;
    const char *mp = mlk_result_msgpack(r, &n);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    cr_assert_eq(msgpack_unpack_next(&u, mp, n, NULL), MSGPACK_UNPACK_SUCCESS);
    msgpack_object m = u.data;
    if (m.type == MSGPACK_OBJECT_ARRAY) m = m.via.array.ptr[0];
    cr_assert_eq(m.type, MSGPACK_OBJECT_MAP);
    char *out = NULL;
    for (uint32_t i = 0; i < m.via.map.size; i++) {
        msgpack_object_kv *kv = &m.via.map.ptr[i];
        if (kv->key.via.str.size == strlen(key) && memcmp(kv->key.via.str.ptr, key, strlen(key)) == 0) {
            cr_assert_eq(kv->val.type, MSGPACK_OBJECT_STR, "%s is a string", key);
            out = strndup(kv->val.via.str.ptr, kv->val.via.str.size);
        }
    }
    msgpack_unpacked_destroy(&u);
    cr_assert_not_null(out, "no %s", key);
    return out;
}

static void expect_vol(const mlk_result *r, const char *key, const char *want)
{
    char *got = vol_str(r, key);
    cr_assert_str_eq(got, want, "%s", key);
    free(got);
}

Test(peer, volume_output_is_parsed_as_upstream, .timeout = 20)
{
    mlk_result *r = NULL;
    /* size is a display string; a created volume without name/size takes what was asked */
    cr_assert_eq(fake_volume("{\"name\":\"v\",\"size\":\"16.0 MB\",\"path\":\"/p/v\"}", 0, &r), 0, "%s",
                 mlk_result_message(r));
    expect_vol(r, "size", "16.0 MB");
    expect_vol(r, "path", "/p/v");
    mlk_result_free(r);
    cr_assert_eq(fake_volume("{\"path\":\" /p/a \"}", 0, &r), 0, "%s", mlk_result_message(r));
    expect_vol(r, "name", "asked");
    expect_vol(r, "size", "8.0 MB");
    expect_vol(r, "path", "/p/a");
    mlk_result_free(r);
    /* no non-empty path is a parse error */
    const char *bad_create[] = {"{\"name\":\"v\",\"size\":\"1.0 MB\"}", "{\"name\":\"v\",\"path\":\"  \"}", "[]",
                                "not json"};
    for (size_t i = 0; i < sizeof bad_create / sizeof bad_create[0]; i++) {
        cr_assert_eq(fake_volume(bad_create[i], 0, &r), MLK_EPARSE, "%s accepted", bad_create[i]);
        cr_assert(strncmp(mlk_result_message(r), "parse volume create result", 26) == 0, "%s",
                  mlk_result_message(r));
        /* the official SDKs' words too */
        cr_assert(strstr(mlk_result_message(r), "failed to parse volume create output"), "%s", mlk_result_message(r));
        mlk_result_free(r);
    }
    cr_assert_eq(fake_volume("[{\"name\":\" a \",\"size\":\"2.0 MB\",\"path\":\"/a\"}]", 1, &r), 0, "%s",
                 mlk_result_message(r));
    expect_vol(r, "name", "a");
    expect_vol(r, "size", "2.0 MB");
    mlk_result_free(r);
    const char *bad_list[] = {"[{\"name\":\"a\",\"size\":\"1.0 MB\",\"path\":\"/a\"},{\"name\":\"b\",\"path\":\"\"}]",
                              "[{\"path\":\"/a\"}]", "[\"a\"]", "{\"name\":\"a\",\"path\":\"/a\"}"};
    for (size_t i = 0; i < sizeof bad_list / sizeof bad_list[0]; i++) {
        cr_assert_eq(fake_volume(bad_list[i], 1, &r), MLK_EPARSE, "%s accepted", bad_list[i]);
        cr_assert(strncmp(mlk_result_message(r), "parse volume list result", 24) == 0, "%s", mlk_result_message(r));
        cr_assert(strstr(mlk_result_message(r), i < 3 ? "failed to parse volume list output line"
                                                      : "failed to parse volume list output"),
                  "%s", mlk_result_message(r));
        mlk_result_free(r);
    }
}
