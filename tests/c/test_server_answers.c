/* test_server_answers.c - what a hostile server's answers may not do
 * (issue 23, items 6 and 7; docs/security.md): a number out of range is a
 * protocol error, never a value cut down to fit (4294967296 read as an int
 * is 0, and a failed command would look successful); text from the server
 * or the guest reaches a message with its control characters escaped.
 * The servers are shell scripts started through the launcher. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "matchlock.h"

/* A client whose server is `sh -c SCRIPT`. */
static mlk_client *scripted(const char *script)
{
    mlk_config *cfg = mlk_config_new();
    const char *launcher[] = {"sh", "-c", script, "peer"};
    cr_assert_eq(mlk_config_set_launcher(cfg, launcher, 4), 0);
    mlk_client *c = NULL;
    mlk_result *r = NULL;
    cr_assert_eq(mlk_client_new(&c, cfg, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    mlk_config_free(cfg);
    return c;
}

/* Reads requests; answers each with `{"jsonrpc":"2.0","id":ID,` ANSWER `}`
 * (ANSWER is part of a printf format: no %). */
#define ANSWER_HEAD                                                                                    \
    "while IFS= read -r line; do "                                                                    \
    "id=$(printf '%s' \"$line\" | sed -n 's/.*\"method\":\"[a-z_]*\",\"id\":\\([0-9]*\\).*/\\1/p'); "  \
    "[ -n \"$id\" ] || continue; printf '{\"jsonrpc\":\"2.0\",\"id\":%s,"
#define ANSWER_TAIL "}\\n' \"$id\"; done"
#define ANSWERING(ANSWER) ANSWER_HEAD ANSWER ANSWER_TAIL

static int exec_with(const char *result, mlk_result **r)
{
    char script[2048];
    snprintf(script, sizeof script, "%s\"result\":%s%s", ANSWER_HEAD, result, ANSWER_TAIL);
    mlk_client *c = scripted(script);
    int rc = mlk_exec(c, "false", NULL, r);
    mlk_client_free(c);
    return rc;
}

Test(server_numbers, an_exit_code_out_of_range_is_a_protocol_error, .timeout = 30)
{
    const char *bad[] = {
        "{\"exit_code\":4294967296,\"stdout\":\"\",\"stderr\":\"\",\"duration_ms\":1}",   /* was read as 0 */
        "{\"exit_code\":-4294967296,\"stdout\":\"\",\"stderr\":\"\",\"duration_ms\":1}",  /* was read as 0 */
        "{\"exit_code\":2147483648,\"stdout\":\"\",\"stderr\":\"\",\"duration_ms\":1}",
        "{\"exit_code\":1e400,\"stdout\":\"\",\"stderr\":\"\",\"duration_ms\":1}",
        "{\"exit_code\":0.5,\"stdout\":\"\",\"stderr\":\"\",\"duration_ms\":1}",
        "{\"exit_code\":\"0\",\"stdout\":\"\",\"stderr\":\"\",\"duration_ms\":1}",
        "{\"exit_code\":1,\"stdout\":\"\",\"stderr\":\"\",\"duration_ms\":-5}",
        "{\"exit_code\":1,\"stdout\":\"\",\"stderr\":\"\",\"duration_ms\":18446744073709551616}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        mlk_result *r = NULL;
        int rc = exec_with(bad[i], &r);
        cr_assert_eq(rc, MLK_EPROTO, "%s: rc %d exit %d: %s", bad[i], rc, mlk_result_exit_code(r),
                     mlk_result_message(r));
        cr_assert(strstr(mlk_result_message(r), "not an integer in"), "%s", mlk_result_message(r));
        mlk_result_free(r);
    }
    /* in range: as sent (a Go server reports a command killed by a signal as -1) */
    const char *good[] = {"{\"exit_code\":-1,\"stdout\":\"\",\"stderr\":\"\",\"duration_ms\":0}",
                          "{\"exit_code\":2147483647,\"stdout\":\"\",\"stderr\":\"\",\"duration_ms\":7}",
                          "{\"exit_code\":3.0,\"stdout\":\"\",\"stderr\":\"\",\"duration_ms\":7}"};
    const int want[] = {-1, 2147483647, 3};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        mlk_result *r = NULL;
        cr_assert_eq(exec_with(good[i], &r), 0, "%s: %s", good[i], mlk_result_message(r));
        cr_assert_eq(mlk_result_exit_code(r), want[i]);
        mlk_result_free(r);
    }
}

Test(server_numbers, an_error_code_out_of_range_is_a_protocol_error, .timeout = 30)
{
    /* -32003 + 2^32: cut to an int it read as "cancelled" */
    mlk_client *c = scripted(ANSWERING("\"error\":{\"code\":4294935293,\"message\":\"boom\"}"));
    mlk_result *r = NULL;
    cr_assert_eq(mlk_exec(c, "true", NULL, &r), MLK_EPROTO, "%s", mlk_result_message(r));
    cr_assert_eq(mlk_result_is_cancelled(r), 0);
    cr_assert(strstr(mlk_result_message(r), "4294935293"), "%s", mlk_result_message(r));
    mlk_result_free(r);
    mlk_client_free(c);
}

/* A write too big for one line goes through `cat` in an exec_pipe; the
 * server below answers it at once: ready, the guest's stderr, the result. */
static mlk_result *big_write_answered(const char *stderr_b64, const char *exit_code)
{
    char script[4096];
    snprintf(script, sizeof script,
             "IFS= read -r line; "
             "id=$(printf '%%s' \"$line\" | sed -n 's/.*\"method\":\"[a-z_]*\",\"id\":\\([0-9]*\\).*/\\1/p'); "
             "printf '{\"jsonrpc\":\"2.0\",\"method\":\"exec_pipe.ready\",\"params\":{\"id\":%%s}}\\n' \"$id\"; "
             "printf '{\"jsonrpc\":\"2.0\",\"method\":\"exec_pipe.stderr\",\"params\":{\"id\":%%s,\"data\":\"%s\"}}\\n' \"$id\"; "
             "printf '{\"jsonrpc\":\"2.0\",\"id\":%%s,\"result\":{\"exit_code\":%s,\"duration_ms\":1}}\\n' \"$id\"; "
             "exec cat > /dev/null",
             stderr_b64, exit_code);
    mlk_client *c = scripted(script);
    size_t big = 11 * 1024 * 1024;
    char *data = calloc(1, big);
    mlk_result *r = NULL;
    mlk_write_file(c, "/workspace/big.bin", data, big, 0, 20000, &r);
    free(data);
    mlk_client_free(c);
    return r;
}

Test(server_numbers, a_big_write_with_an_exit_code_out_of_range_fails, .timeout = 60)
{
    mlk_result *r = big_write_answered("", "4294967296");
    cr_assert_eq(mlk_result_status(r), MLK_EPROTO, "a failed copy passed for a success: %s", mlk_result_message(r));
    mlk_result_free(r);
}

/* ---- text ------------------------------------------------------------ */

/* No byte a terminal acts on: C0 but newline and tab, DEL, C1 (as UTF-8),
 * bytes that are not UTF-8. */
static void assert_clean(const char *msg)
{
    for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
        cr_assert(*p >= 0x20 || *p == '\n' || *p == '\t', "raw 0x%02x in: %s", *p, msg);
        cr_assert(*p != 0x7f, "raw DEL in: %s", msg);
        cr_assert(!(*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f), "a C1 control in: %s", msg);
        cr_assert(*p != 0xff && *p != 0x9b, "a byte that is not UTF-8 in: %s", msg);
    }
}

Test(server_text, an_rpc_error_message_is_escaped, .timeout = 30)
{
    /* ESC [2J (clear the screen), an OSC title, BEL, CR, backspace, a C1 CSI, a bidi override, raw 0xff */
    mlk_client *c = scripted(ANSWERING("\"error\":{\"code\":-32001,\"message\":\"bad \\\\u001b[2J\\\\u001b]0;owned\\\\u0007"
                                       "x\\\\ry\\\\bz \\\\u009b31m \\\\u202eevil \\377 caf\\303\\251\"}"));
    mlk_result *r = NULL;
    cr_assert_eq(mlk_exec(c, "true", NULL, &r), MLK_ERPC, "%s", mlk_result_message(r));
    const char *m = mlk_result_message(r);
    assert_clean(m);
    cr_assert(strstr(m, "bad \\x1b[2J\\x1b]0;owned\\x07x\\x0dy\\x08z \\xc2\\x9b31m \\xe2\\x80\\xaeevil \\xff caf\xc3\xa9"),
              "%s", m);
    cr_assert_eq(mlk_result_rpc_code(r), -32001);
    mlk_result_free(r);
    mlk_client_free(c);
}

Test(server_text, a_quoted_line_is_escaped_as_every_message, .timeout = 30)
{
    /* after a first message, a line that is none: ESC, a raw NUL, SOH, a
     * raw 0xff are shown as \xNN (text_escape), not lost or turned into '?' */
    mlk_client *c = scripted("printf '{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"params\":{}}\\n';"
                             "printf 'junk \\033[2J\\000x\\001y\\377z\\n'; sleep 5");
    usleep(200 * 1000);
    mlk_result *r = NULL;
    cr_assert_eq(mlk_exec(c, "true", NULL, &r), MLK_EPROTO, "%s", mlk_result_message(r));
    const char *m = mlk_result_message(r);
    assert_clean(m);
    cr_assert(strstr(m, "not a JSON-RPC message: \"junk \\x1b[2J\\x00x\\x01y\\xffz\""), "%s", m);
    mlk_result_free(r);
    mlk_client_free(c);
}

Test(server_text, a_big_writes_guest_stderr_is_escaped, .timeout = 60)
{
    /* "\x1b[31mred\x07\r\n\0after" in base64 */
    mlk_result *r = big_write_answered("G1szMW1yZWQHDQoAYWZ0ZXI=", "1");
    const char *m = mlk_result_message(r);
    cr_assert_eq(mlk_result_status(r), MLK_ERPC, "%s", m);
    assert_clean(m);
    cr_assert(strstr(m, "\\x1b[31mred\\x07\\x0d\n\\x00after"), "%s", m);
    mlk_result_free(r);
}

Test(server_text, a_dead_servers_stderr_is_escaped, .timeout = 30)
{
    mlk_client *c = scripted("printf 'fatal: \\033[2Jgone\\007\\n' >&2; exit 3");
    usleep(100 * 1000);
    mlk_result *r = NULL;
    cr_assert_eq(mlk_exec(c, "true", NULL, &r), MLK_EDEAD, "%s", mlk_result_message(r));
    assert_clean(mlk_result_message(r));
    cr_assert(strstr(mlk_result_message(r), "fatal: \\x1b[2Jgone\\x07"), "%s", mlk_result_message(r));
    mlk_result_free(r);
    mlk_client_free(c);
}

Test(server_text, a_cli_commands_stderr_and_output_are_escaped)
{
    char dir[] = "/tmp/mlk-text-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char bin[256];
    snprintf(bin, sizeof bin, "%s/matchlock", dir);
    FILE *f = fopen(bin, "w");
    fputs("#!/bin/sh\ncase \"$1\" in\n"
          "rm) printf 'Error: \\033]0;owned\\007\\033[2J\\n' >&2; exit 1;;\n"
          "*) printf 'not json \\033[5m\\377\\n';;\nesac\n", f);
    fclose(f);
    chmod(bin, 0755);
    mlk_config *cfg = mlk_config_new();
    mlk_config_set_binary(cfg, bin);
    mlk_result *r = NULL;
    cr_assert_eq(mlk_remove_vm(cfg, "vm-1", &r), MLK_EREMOVE);
    assert_clean(mlk_result_message(r));
    cr_assert(strstr(mlk_result_message(r), "Error: \\x1b]0;owned\\x07\\x1b[2J"), "%s", mlk_result_message(r));
    size_t n;
    const char *err = mlk_result_stderr(r, &n);
    cr_assert(memchr(err, 0x1b, n), "the stderr field keeps the bytes");
    mlk_result_free(r);
    cr_assert_eq(mlk_volume_list(cfg, &r), MLK_EPARSE);
    assert_clean(mlk_result_message(r));
    cr_assert(strstr(mlk_result_message(r), "not json \\x1b[5m\\xff"), "%s", mlk_result_message(r));
    mlk_result_free(r);
    mlk_config_free(cfg);
}
