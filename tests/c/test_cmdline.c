/* test_cmdline.c - what reaches a command line (issue 23, items 1 and 6;
 * docs/security.md): names and ids are checked against the operand rule
 * before anything runs, operands follow `--`, a launcher that goes through
 * a shell gets quoted words, an id from the server is never spliced in
 * unchecked, and a CLI command whose exit status cannot be known is an
 * error.
 *
 * The "binary" of most tests is a recorder: a script that writes each of
 * its arguments on a line of its own into a log, then acts (prints a
 * volume, fails).  The ssh stand-in is `sh -c 'exec sh -c "$*"' fake-ssh`:
 * like ssh, it joins the words after it with spaces and hands the line to
 * a shell. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "e2e_server.h"
#include "matchlock.h"

#define RULE "[A-Za-z0-9][A-Za-z0-9._-]*"

static char dir[256];      /* this test's scratch directory */
static char logpath[320];  /* the recorder's log */

static void scratch(void)
{
    snprintf(dir, sizeof dir, "/tmp/mlk-cmdline-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(logpath, sizeof logpath, "%s/argv.log", dir);
    cr_assert_eq(chdir(dir), 0); /* an injected `touch injected` lands here */
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    fclose(f);
    chmod(path, mode);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return strdup("");
    char *buf = calloc(1, 65536);
    size_t n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static int exists(const char *path) { return access(path, F_OK) == 0; }

/* A recorder at `path`: logs its argv, then runs `then` (a shell snippet). */
static void recorder(const char *path, const char *then)
{
    char text[2048];
    snprintf(text, sizeof text, "#!/bin/sh\nfor a in \"$@\"; do printf '%%s\\n' \"$a\"; done >> '%s'\n%s\n",
             logpath, then);
    write_file(path, text, 0755);
}

/* A volume the way `volume create --json` prints it. */
#define PRINT_VOLUME "echo '{\"name\":\"v1\",\"size\":\"16.0 MB\",\"path\":\"/state/v1\"}'"

static const char *fake_ssh[] = {"sh", "-c", "exec sh -c \"$*\"", "fake-ssh"};

static mlk_config *config_for(const char *binary, int through_ssh, int quoted)
{
    mlk_config *cfg = mlk_config_new();
    cr_assert_eq(mlk_config_set_binary(cfg, binary), 0);
    if (through_ssh) cr_assert_eq(mlk_config_set_launcher(cfg, fake_ssh, 4), 0);
    cr_assert_eq(mlk_config_set_launcher_shell(cfg, quoted), 0);
    return cfg;
}

Test(cmdline, hostile_volume_name_is_refused_before_anything_runs)
{
    scratch();
    char bin[400], marker[400], name[600];
    snprintf(bin, sizeof bin, "%s/matchlock", dir);
    snprintf(marker, sizeof marker, "%s/injected", dir);
    recorder(bin, PRINT_VOLUME);
    snprintf(name, sizeof name, "vol; id > %s; echo", marker);
    /* through the ssh stand-in, quoted and not, and without a launcher */
    for (int mode = 0; mode < 3; mode++) {
        mlk_config *cfg = config_for(bin, mode > 0, mode == 2);
        mlk_result *r = NULL;
        cr_assert_eq(mlk_volume_create(cfg, name, 16, &r), MLK_EINVAL, "%s", mlk_result_message(r));
        cr_assert(strstr(mlk_result_message(r), RULE), "the message names the rule: %s", mlk_result_message(r));
        cr_assert(strstr(mlk_result_message(r), "invalid volume name"), "%s", mlk_result_message(r));
        mlk_result_free(r);
        cr_assert_eq(mlk_volume_remove(cfg, name, &r), MLK_EINVAL, "%s", mlk_result_message(r));
        mlk_result_free(r);
        cr_assert_eq(mlk_remove_vm(cfg, name, &r), MLK_EINVAL, "%s", mlk_result_message(r));
        cr_assert(strstr(mlk_result_message(r), "invalid VM id"), "%s", mlk_result_message(r));
        mlk_result_free(r);
        mlk_config_free(cfg);
    }
    cr_assert(!exists(marker), "the injected command ran");
    cr_assert(!exists(logpath), "the matchlock command ran: %s", slurp(logpath));
}

Test(cmdline, flags_and_odd_names_are_refused)
{
    scratch();
    char bin[400];
    snprintf(bin, sizeof bin, "%s/matchlock", dir);
    recorder(bin, PRINT_VOLUME);
    mlk_config *cfg = config_for(bin, 0, 0);
    char longname[200];
    memset(longname, 'a', 129);
    longname[129] = '\0';
    const char *bad[] = {"--stopped", "--help", "-x", ".hidden", "_x", "a b", "a/b", "a'b", "$(id)", "a\nb",
                         "\xc3\xa9t\xc3\xa9", longname};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        mlk_result *r = NULL;
        cr_assert_eq(mlk_remove_vm(cfg, bad[i], &r), MLK_EINVAL, "rm %s: %s", bad[i], mlk_result_message(r));
        mlk_result_free(r);
        cr_assert_eq(mlk_volume_create(cfg, bad[i], 16, &r), MLK_EINVAL, "%s: %s", bad[i], mlk_result_message(r));
        mlk_result_free(r);
        cr_assert_eq(mlk_volume_remove(cfg, bad[i], &r), MLK_EINVAL, "%s: %s", bad[i], mlk_result_message(r));
        mlk_result_free(r);
    }
    cr_assert(!exists(logpath), "the matchlock command ran: %s", slurp(logpath));
    /* the longest name allowed, and every kind of character the rule takes */
    longname[128] = '\0';
    const char *good[] = {longname, "v1", "A.b_c-9", "0"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        mlk_result *r = NULL;
        cr_assert_eq(mlk_volume_create(cfg, good[i], 16, &r), 0, "%s: %s", good[i], mlk_result_message(r));
        mlk_result_free(r);
    }
    mlk_config_free(cfg);
}

Test(cmdline, operands_follow_a_double_dash)
{
    scratch();
    char bin[400];
    snprintf(bin, sizeof bin, "%s/matchlock", dir);
    recorder(bin, PRINT_VOLUME);
    mlk_config *cfg = config_for(bin, 0, 0);
    mlk_result *r = NULL;
    cr_assert_eq(mlk_volume_create(cfg, "v1", 16, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    cr_assert_eq(mlk_volume_remove(cfg, "v1", &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    cr_assert_eq(mlk_remove_vm(cfg, "vm-1", &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    mlk_config_free(cfg);
    char *log = slurp(logpath);
    cr_assert_str_eq(log,
                     "volume\ncreate\n--size\n16\n--json\n--\nv1\n"
                     "volume\nrm\n--\nv1\n"
                     "rm\n--\nvm-1\n");
    free(log);
}

/* ssh joins its words and gives them to a shell: with the setting, each
 * word after the launcher arrives whole, however it is spelt. */
Test(cmdline, a_shell_launcher_gets_each_word_intact)
{
    scratch();
    char sub[600], bin[700], marker[400];
    snprintf(marker, sizeof marker, "%s/injected", dir);
    snprintf(sub, sizeof sub, "%s/a b'c;$(touch injected)", dir);
    cr_assert_eq(mkdir(sub, 0700), 0, "%s", sub);
    snprintf(bin, sizeof bin, "%s/match lock", sub);
    recorder(bin, "printf '%s\\n' \"$0\" >> \"$(dirname \"$0\")/../self.log\"; " PRINT_VOLUME);
    mlk_config *cfg = config_for(bin, 1, 1);
    mlk_result *r = NULL;
    cr_assert_eq(mlk_volume_create(cfg, "v1", 16, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    cr_assert_eq(mlk_remove_vm(cfg, "vm-1", &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    mlk_config_free(cfg);
    cr_assert(!exists(marker), "the shell ran what the binary's path holds");
    char *log = slurp(logpath);
    cr_assert_str_eq(log, "volume\ncreate\n--size\n16\n--json\n--\nv1\nrm\n--\nvm-1\n");
    free(log);
    char self[400];
    snprintf(self, sizeof self, "%s/self.log", dir);
    log = slurp(self);
    char want[1500];
    snprintf(want, sizeof want, "%s\n%s\n", bin, bin);
    cr_assert_str_eq(log, want, "the binary's path arrived as one word");
    free(log);

    /* the same launcher without the setting splits the path: the test can fail */
    cfg = config_for(bin, 1, 0);
    cr_assert_neq(mlk_volume_create(cfg, "v1", 16, &r), 0);
    mlk_result_free(r);
    mlk_config_free(cfg);
}

/* A whole session (rpc, create, exec, volumes, rm) through the ssh
 * stand-in, with matchlock-local at a path that needs quoting. */
Test(cmdline, a_session_through_a_shell_launcher, .timeout = 60)
{
    scratch();
    char sub[600], bin[700], marker[400];
    snprintf(marker, sizeof marker, "%s/injected", dir);
    snprintf(sub, sizeof sub, "%s/it's here;$(touch injected)`touch injected`", dir);
    cr_assert_eq(mkdir(sub, 0700), 0);
    snprintf(bin, sizeof bin, "%s/matchlock local", sub);
    cr_assert_eq(symlink(e2e_server(), bin), 0);
    mlk_config *cfg = e2e_config();
    cr_assert_eq(mlk_config_set_binary(cfg, bin), 0);
    cr_assert_eq(mlk_config_set_launcher(cfg, fake_ssh, 4), 0);
    cr_assert_eq(mlk_config_set_launcher_shell(cfg, 1), 0);
    mlk_result *r = NULL;
    cr_assert_eq(mlk_volume_create(cfg, "quoted-vol", 16, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    cr_assert_eq(mlk_volume_remove(cfg, "quoted-vol", &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    mlk_client *c = e2e_client_from(cfg);
    e2e_create(c, 30000, "create through the quoted launcher");
    cr_assert_eq(mlk_exec(c, "echo hi", NULL, &r), 0, "%s", mlk_result_message(r));
    size_t n;
    cr_assert(!strncmp(mlk_result_stdout(r, &n), "hi\n", 3));
    mlk_result_free(r);
    cr_assert_eq(mlk_close(c, 5, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    cr_assert_eq(mlk_remove(c, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    mlk_client_free(c);
    cr_assert(!exists(marker), "the shell ran what the binary's path holds");
}

/* A client whose server is a shell script (through the plain launcher). */
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

/* Answers create with the id put between HEAD and TAIL, anything else with {}. */
#define CREATE_HEAD                                                                                        \
    "while IFS= read -r line; do "                                                                        \
    "id=$(printf '%s' \"$line\" | sed -n 's/.*\"method\":\"[a-z_]*\",\"id\":\\([0-9]*\\).*/\\1/p'); "      \
    "[ -n \"$id\" ] || continue; "                                                                        \
    "case \"$line\" in *'\"create\"'*) printf '{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"id\":\"%s\"}}\\n' " \
    "\"$id\" '"
#define CREATE_TAIL "';; *) printf '{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{}}\\n' \"$id\";; esac; done"

Test(cmdline, a_hostile_vm_id_from_the_server_never_reaches_rm, .timeout = 30)
{
    scratch();
    const char *ids[] = {"vm-1; touch /tmp/mlk-cmdline-pwned", "--stopped", "-rf", ""};
    for (size_t i = 0; i < sizeof ids / sizeof *ids; i++) {
        char script[2048];
        snprintf(script, sizeof script, "%s%s%s", CREATE_HEAD, ids[i], CREATE_TAIL);
        mlk_client *c = scripted(script);
        mlk_sandbox *sb = mlk_sandbox_new("alpine:latest");
        mlk_result *r = NULL;
        int rc = mlk_create(c, sb, 10000, &r);
        mlk_sandbox_free(sb);
        if (*ids[i]) {
            cr_assert_eq(rc, MLK_EPROTO, "%s: %s", ids[i], mlk_result_message(r));
            cr_assert(strstr(mlk_result_message(r), RULE), "%s", mlk_result_message(r));
        } else {
            cr_assert_neq(rc, 0, "an empty id is no id");
        }
        mlk_result_free(r);
        cr_assert_null(mlk_client_vm_id(c), "the id was kept");
        cr_assert_eq(mlk_remove(c, &r), MLK_ENOTCREATED, "%s", mlk_result_message(r));
        mlk_result_free(r);
        uint64_t op;
        cr_assert_eq(mlk_remove_async(c, NULL, NULL, &op), MLK_ENOTCREATED);
        mlk_client_free(c);
    }
    cr_assert(!exists("/tmp/mlk-cmdline-pwned"));
}

/* With SIGCHLD ignored the system reaps children itself: the exit status
 * of `matchlock rm` is gone, and the call must not pass for a success. */
Test(cmdline, an_exit_status_that_cannot_be_known_is_an_error)
{
    scratch();
    char fails[400], works[400];
    snprintf(fails, sizeof fails, "%s/failing-matchlock", dir);
    snprintf(works, sizeof works, "%s/working-matchlock", dir);
    write_file(fails, "#!/bin/sh\necho 'Error: VM vm-1 not found' >&2\nexit 1\n", 0755);
    write_file(works, "#!/bin/sh\necho 'Removed vm-1'\n", 0755);
    struct sigaction ign = {.sa_handler = SIG_IGN}, old;
    sigemptyset(&ign.sa_mask);
    cr_assert_eq(sigaction(SIGCHLD, &ign, &old), 0);
    mlk_result *r1 = NULL, *r2 = NULL;
    mlk_config *cfg = config_for(fails, 0, 0);
    int rc1 = mlk_remove_vm(cfg, "vm-1", &r1);
    mlk_config_free(cfg);
    cfg = config_for(works, 0, 0);
    int rc2 = mlk_remove_vm(cfg, "vm-1", &r2);
    mlk_config_free(cfg);
    sigaction(SIGCHLD, &old, NULL);
    cr_assert_eq(rc1, MLK_EREMOVE, "a failing rm passed for a success: %s", mlk_result_message(r1));
    cr_assert(strstr(mlk_result_message(r1), "exit status cannot be known"), "%s", mlk_result_message(r1));
    cr_assert(strstr(mlk_result_message(r1), "SIGCHLD is ignored"), "%s", mlk_result_message(r1));
    cr_assert_eq(rc2, MLK_EREMOVE, "nothing tells a success here: %s", mlk_result_message(r2));
    mlk_result_free(r1);
    mlk_result_free(r2);
    /* and with the disposition back, the same commands are told apart */
    cfg = config_for(fails, 0, 0);
    cr_assert_eq(mlk_remove_vm(cfg, "vm-1", &r1), MLK_EREMOVE);
    cr_assert(strstr(mlk_result_message(r1), "not found"), "%s", mlk_result_message(r1));
    mlk_result_free(r1);
    mlk_config_free(cfg);
    cfg = config_for(works, 0, 0);
    cr_assert_eq(mlk_remove_vm(cfg, "vm-1", &r1), 0, "%s", mlk_result_message(r1));
    mlk_result_free(r1);
    mlk_config_free(cfg);
}

/* `matchlock-local ARGS...` in this test's state directory: its exit status,
 * its stdout+stderr in out. */
static int local_cli(char *out, size_t cap, const char *const *args)
{
    char cmd[1024] = "";
    size_t k = (size_t)snprintf(cmd, sizeof cmd, "'%s'", e2e_server());
    for (size_t i = 0; args[i]; i++) k += (size_t)snprintf(cmd + k, sizeof cmd - k, " '%s'", args[i]);
    snprintf(cmd + k, sizeof cmd - k, " 2>&1");
    e2e_setenv(e2e_state_dir());
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* matchlock-local reads `--` as cobra does: what follows is an operand. */
Test(cmdline, matchlock_local_accepts_a_double_dash, .timeout = 30)
{
    if (!e2e_is_local()) cr_skip_test("this checks matchlock-local's own command line");
    char out[4096];
    const char *create[] = {"volume", "create", "--size", "16", "--json", "--", "dashed", NULL};
    cr_assert_eq(local_cli(out, sizeof out, create), 0, "%s", out);
    cr_assert(strstr(out, "\"name\":\"dashed\""), "%s", out);
    const char *rm[] = {"volume", "rm", "--", "dashed", NULL};
    cr_assert_eq(local_cli(out, sizeof out, rm), 0, "%s", out);
    /* an operand after `--` is never a flag: not --stopped, not --help */
    const char *stopped[] = {"rm", "--", "--stopped", NULL};
    cr_assert_eq(local_cli(out, sizeof out, stopped), 1, "%s", out);
    cr_assert(strstr(out, "VM --stopped not found"), "%s", out);
    const char *help[] = {"volume", "create", "--json", "--", "--help", NULL};
    cr_assert_eq(local_cli(out, sizeof out, help), 1, "%s", out);
    cr_assert(strstr(out, "invalid volume name"), "%s", out);
    /* and the SDK's own calls, which send `--`, work against it */
    mlk_config *cfg = e2e_config();
    mlk_result *r = NULL;
    cr_assert_eq(mlk_volume_create(cfg, "dashed2", 16, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    cr_assert_eq(mlk_volume_remove(cfg, "dashed2", &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    cr_assert_eq(mlk_remove_vm(cfg, "vm-none", &r), MLK_EREMOVE);
    cr_assert(strstr(mlk_result_message(r), "vm-none not found"), "%s", mlk_result_message(r));
    mlk_result_free(r);
    mlk_config_free(cfg);
}

struct outcome {
    int done, status;
    char msg[512];
};

static void on_done(void *ud, uint64_t op, const mlk_result *r)
{
    struct outcome *o = ud;
    o->status = mlk_result_status(r);
    snprintf(o->msg, sizeof o->msg, "%s", mlk_result_message(r));
    o->done = 1;
}

/* The async forms refuse the same names, with the same message, through done. */
Test(cmdline, async_volume_calls_refuse_bad_names_through_done, .timeout = 30)
{
    scratch();
    mlk_client *c = scripted("while IFS= read -r line; do :; done");
    const char *bad[] = {"--help", "vol; id", "a b"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        for (int which = 0; which < 2; which++) {
            struct outcome o = {0};
            uint64_t op = 0;
            int rc = which ? mlk_volume_remove_async(c, bad[i], on_done, &o, &op)
                           : mlk_volume_create_async(c, bad[i], 16, on_done, &o, &op);
            cr_assert_eq(rc, 0);
            cr_assert_neq(op, 0);
            for (int k = 0; k < 200 && !o.done; k++) mlk_dispatch_wait(c, 10);
            cr_assert(o.done);
            cr_assert_eq(o.status, MLK_EINVAL, "%s: %s", bad[i], o.msg);
            cr_assert(strstr(o.msg, RULE), "%s", o.msg);
        }
    }
    mlk_client_free(c);
}
