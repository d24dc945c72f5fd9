/* test_remote_ssh.c - a sandbox on "another machine": the launcher prefix
 * over a real OpenSSH connection.  Each test starts its own sshd (Debian's
 * openssh-server, tests/apt-packages.txt) on a loopback port with keys made
 * for it; the launcher is
 *   ssh -p PORT -i KEY -o StrictHostKeyChecking=no
 *       -o UserKnownHostsFile=/dev/null 127.0.0.1 --
 * and matchlock-local runs on the remote side, where sshd's SetEnv gives it
 * a state directory of the test's.  Where sshd cannot start (not installed,
 * no privilege separation directory, not root), the tests skip with the
 * reason.  docs/remote.md says what works remotely. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "matchlock.h"
#include "e2e_server.h"

#ifndef MLK_LOCAL_BIN
#define MLK_LOCAL_BIN "matchlock-local"
#endif
#define SSHD "/usr/sbin/sshd"

static struct {
    pid_t pid;
    char dir[128], port[16], key[200], bad_key[200], state[200];
} S;

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *)&a, &l) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0) close(fd);
    return port;
}

static int port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0) close(fd);
    return ok;
}

static void sshd_stop(void)
{
    if (S.pid > 0) {
        kill(S.pid, SIGTERM);
        waitpid(S.pid, NULL, 0);
        S.pid = 0;
    }
    if (S.dir[0]) sh("rm -rf '%s'", S.dir);
}

/* Every test ends with sshd stopped, whatever happened. */
TestSuite(remote_ssh, .fini = sshd_stop);

/* Start sshd for this test; skip the test when it cannot run. */
static void sshd_start(void)
{
    if (access(SSHD, X_OK) != 0) cr_skip_test("sshd cannot start: " SSHD " is missing (openssh-server)");
    if (geteuid() != 0) cr_skip_test("sshd cannot start: the test runs sshd as root for a root login");
    if (mkdir("/run/sshd", 0755) != 0 && errno != EEXIST)
        cr_skip_test("sshd cannot start: no privilege separation directory /run/sshd (%s)", strerror(errno));
    snprintf(S.dir, sizeof S.dir, "/tmp/mlk-ssh-XXXXXX");
    cr_assert_not_null(mkdtemp(S.dir));
    snprintf(S.key, sizeof S.key, "%s/user_key", S.dir);
    snprintf(S.bad_key, sizeof S.bad_key, "%s/other_key", S.dir);
    snprintf(S.state, sizeof S.state, "%s/state", S.dir);
    mkdir(S.state, 0700);
    if (sh("cd '%s' && ssh-keygen -q -t ed25519 -N '' -f host_key && ssh-keygen -q -t ed25519 -N '' -f user_key && "
           "ssh-keygen -q -t ed25519 -N '' -f other_key && cp user_key.pub authorized_keys && "
           "echo 'a banner from the remote side' > banner", S.dir) != 0) {
        sshd_stop();
        cr_skip_test("sshd cannot start: ssh-keygen failed");
    }
    int port = free_port();
    snprintf(S.port, sizeof S.port, "%d", port);
    char path[300];
    snprintf(path, sizeof path, "%s/sshd_config", S.dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f,
            "Port %d\nListenAddress 127.0.0.1\nHostKey %s/host_key\nAuthorizedKeysFile %s/authorized_keys\n"
            "PidFile none\nStrictModes no\nUsePAM no\nPermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nBanner %s/banner\n"
            "SetEnv XDG_STATE_HOME=%s\nLogLevel ERROR\n",
            port, S.dir, S.dir, S.dir, S.state);
    fclose(f);
    char log[300];
    snprintf(log, sizeof log, "%s/sshd.log", S.dir);
    S.pid = fork();
    cr_assert_geq(S.pid, 0);
    if (S.pid == 0) {
        int null = open("/dev/null", O_RDWR); /* never the test's output pipes */
        dup2(null, 0), dup2(null, 1), dup2(null, 2);
        execl(SSHD, SSHD, "-D", "-f", path, "-E", log, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500; i++) {
        if (port_open(port)) return;
        if (waitpid(S.pid, NULL, WNOHANG) == S.pid) {
            S.pid = 0;
            break;
        }
        usleep(10000);
    }
    char msg[512] = "";
    FILE *lf = fopen(log, "r");
    if (lf) {
        size_t n = fread(msg, 1, sizeof msg - 1, lf);
        msg[n] = '\0';
        fclose(lf);
    }
    sshd_stop();
    cr_skip_test("sshd cannot start: %s", msg[0] ? msg : "it did not listen within 5 s");
}

static mlk_config *ssh_config(const char *key)
{
    mlk_config *cfg = mlk_config_new();
    const char *launcher[] = {"ssh", "-p", S.port, "-i", key, "-o", "StrictHostKeyChecking=no",
                              "-o", "UserKnownHostsFile=/dev/null", "127.0.0.1", "--"};
    cr_assert_eq(mlk_config_set_launcher(cfg, launcher, sizeof launcher / sizeof *launcher), 0);
    cr_assert_eq(mlk_config_set_launcher_shell(cfg, 1), 0); /* ssh hands the words to a shell: quoted */
    mlk_config_set_binary(cfg, MLK_LOCAL_BIN); /* its path on the remote side */
    return cfg;
}

static mlk_client *ssh_client(void) { return e2e_client_from(ssh_config(S.key)); }

static void create(mlk_client *c) { e2e_create(c, 60000, "create over ssh"); }

/* ---- /proc: our children, the remote side's processes ------------------ */

static int read_file(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n < 0) return -1;
    buf[n] = '\0';
    return (int)n;
}

/* The first process whose command line (NULs as spaces) starts with
 * prefix and, when env is given, whose environment holds env. */
static pid_t find_process(const char *prefix, const char *env, pid_t parent)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    pid_t found = 0;
    while (!found && (e = readdir(d))) {
        pid_t pid = (pid_t)atoi(e->d_name);
        if (pid <= 0) continue;
        char path[64], buf[8192];
        snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
        int n = read_file(path, buf, sizeof buf);
        if (n <= 0) continue;
        for (int i = 0; i < n - 1; i++) if (!buf[i]) buf[i] = ' ';
        if (strncmp(buf, prefix, strlen(prefix)) != 0) continue;
        if (parent > 0) {
            snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
            if (read_file(path, buf, sizeof buf) <= 0) continue;
            char *rp = strrchr(buf, ')');
            int ppid = 0;
            if (!rp || sscanf(rp + 2, "%*c %d", &ppid) != 1 || ppid != parent) continue;
        }
        if (env) {
            snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
            n = read_file(path, buf, sizeof buf);
            if (n <= 0 || !memmem(buf, (size_t)n, env, strlen(env))) continue;
        }
        found = pid;
    }
    closedir(d);
    return found;
}

static int alive(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    if (read_file(path, buf, sizeof buf) <= 0) return 0;
    char *rp = strrchr(buf, ')');
    return rp && rp[2] != 'Z';
}

/* The remote matchlock-local of this test (found by its state directory). */
static pid_t remote_server(void)
{
    char env[300];
    snprintf(env, sizeof env, "XDG_STATE_HOME=%s", S.state);
    for (int i = 0; i < 300; i++) {
        pid_t p = find_process(MLK_LOCAL_BIN " rpc", env, 0);
        if (p) return p;
        usleep(10000);
    }
    return 0;
}

/* ---- the whole job over ssh --------------------------------------------- */

struct collect {
    char out[256];
    size_t on;
};

static void collect_output(void *ud, uint64_t op, int fd, const char *data, size_t len)
{
    struct collect *s = ud;
    if (fd == 1 && s->on + len < sizeof s->out) {
        memcpy(s->out + s->on, data, len);
        s->on += len;
    }
}

static void pass_hook(void *ud, mlk_client *c, int kind, mlk_hook_call *call, const char *req, size_t len)
{
    mlk_hook_reply(call, NULL, 0);
}

Test(remote_ssh, sandbox_over_ssh, .timeout = 120)
{
    sshd_start();
    mlk_client *c = ssh_client();
    create(c);
    const char *id = mlk_client_vm_id(c);
    char vmdir[400];
    snprintf(vmdir, sizeof vmdir, "%s/matchlock-local/vms/%s", S.state, id);
    cr_assert_eq(access(vmdir, F_OK), 0, "the VM lives on the remote side: %s", vmdir);

    /* ssh's warning and the server's banner are in the stderr tail, not
     * the protocol */
    char *tail = mlk_client_stderr_tail(c);
    cr_assert(tail && strstr(tail, "Permanently added") && strstr(tail, "a banner from the remote side"),
              "stderr tail: %s", tail ? tail : "(none)");
    mlk_free(tail);

    mlk_result *r = NULL;
    size_t n;
    cr_assert_eq(mlk_exec(c, "echo $XDG_STATE_HOME; echo oops >&2; exit 3", NULL, &r), 0, "%s", mlk_result_message(r));
    cr_assert_eq(mlk_result_exit_code(r), 3);
    const char *out = mlk_result_stderr(r, &n);
    cr_assert(n == 5 && !memcmp(out, "oops\n", 5));
    mlk_result_free(r);

    struct collect s = {0};
    mlk_exec_opts *o = mlk_exec_opts_new();
    mlk_exec_opts_set_mode(o, MLK_EXEC_STREAM);
    mlk_exec_opts_set_callbacks(o, collect_output, NULL, &s);
    cr_assert_eq(mlk_exec(c, "for i in 1 2 3; do echo $i; sleep 0.05; done", o, &r), 0, "%s", mlk_result_message(r));
    mlk_exec_opts_free(o);
    mlk_result_free(r);
    cr_assert_eq(s.on, 6);
    cr_assert(!memcmp(s.out, "1\n2\n3\n", 6), "%.*s", (int)s.on, s.out);

    /* a write past the server's 10 MiB line limit, and back */
    size_t big = 11u * 1024 * 1024 + 7;
    char *data = malloc(big);
    for (size_t i = 0; i < big; i++) data[i] = (char)(i * 7 + (i >> 11));
    cr_assert_eq(mlk_write_file(c, "/tmp/over-ssh.bin", data, big, 0600, 0, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    cr_assert_eq(mlk_read_file(c, "/tmp/over-ssh.bin", 0, &r), 0, "%s", mlk_result_message(r));
    const char *got = mlk_result_data(r, &n);
    cr_assert_eq(n, big);
    cr_assert(!memcmp(got, data, big), "the bytes came back");
    mlk_result_free(r);
    free(data);
    cr_assert_eq(mlk_list_files(c, "/tmp", 0, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);

    /* volumes go through the launcher too */
    mlk_config *cfg = ssh_config(S.key);
    cr_assert_eq(mlk_volume_create(cfg, "ssh-vol", 16, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    char voldir[400];
    snprintf(voldir, sizeof voldir, "%s/matchlock-local/volumes/ssh-vol", S.state);
    cr_assert_eq(access(voldir, F_OK), 0, "the volume is on the remote side");
    cr_assert_eq(mlk_volume_list(cfg, &r), 0, "%s", mlk_result_message(r));
    const char *mp = mlk_result_msgpack(r, &n);
    cr_assert(mp && memmem(mp, n, "ssh-vol", 7));
    mlk_result_free(r);
    cr_assert_eq(mlk_volume_remove(cfg, "ssh-vol", &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    cr_assert_neq(access(voldir, F_OK), 0);
    mlk_config_free(cfg);

    /* close, then rm through the launcher deletes the remote state */
    cr_assert_eq(mlk_close(c, 5, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    cr_assert_eq(access(vmdir, F_OK), 0, "close keeps the state");
    cr_assert_eq(mlk_remove(c, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    cr_assert_neq(access(vmdir, F_OK), 0, "rm over ssh deleted %s", vmdir);
    mlk_client_free(c);
    sshd_stop();
}

/* A network hook needs the server on this machine: refused before sending. */
Test(remote_ssh, network_hook_is_refused_early, .timeout = 60)
{
    sshd_start();
    mlk_client *c = ssh_client();
    mlk_sandbox *sb = mlk_sandbox_new("alpine:latest");
    cr_assert_eq(mlk_sandbox_add_network_hook(sb, NULL, 0, pass_hook, NULL), 0);
    mlk_result *r = NULL;
    int64_t t0 = now_ms();
    cr_assert_eq(mlk_create(c, sb, 60000, &r), MLK_EINVALID_NET_HOOK, "%s", mlk_result_message(r));
    cr_assert(strstr(mlk_result_message(r), "launcher"), "%s", mlk_result_message(r));
    cr_assert_lt(now_ms() - t0, 1000, "refused at once, not after a round trip");
    mlk_result_free(r);
    cr_assert_null(mlk_client_vm_id(c));
    /* the session is still usable without the hook */
    mlk_sandbox_free(sb);
    create(c);
    cr_assert_eq(mlk_close(c, 5, NULL), 0);
    mlk_remove(c, NULL);
    mlk_client_free(c);
    sshd_stop();
}

/* ---- failures: every pending call fails at once, with ssh's words -------- */

struct pending {
    int done[4], status[4];
    char msg[4][512];
    int64_t at[4];
};

static void on_done(void *ud, uint64_t op, const mlk_result *r)
{
    struct pending *p = ud;
    for (int k = 0; k < 4; k++) {
        if (!p->done[k]) {
            p->done[k] = 1;
            p->status[k] = mlk_result_status(r);
            snprintf(p->msg[k], sizeof p->msg[k], "%s", mlk_result_message(r));
            p->at[k] = now_ms();
            return;
        }
    }
}

static int all_done(struct pending *p, int n)
{
    for (int k = 0; k < n; k++) if (!p->done[k]) return 0;
    return 1;
}

static void wait_done(mlk_client *c, struct pending *p, int n, int ms)
{
    for (int64_t end = now_ms() + ms; !all_done(p, n) && now_ms() < end;) {
        mlk_dispatch(c, 0);
        usleep(1000);
    }
    mlk_dispatch(c, 0);
}

Test(remote_ssh, refused_login_fails_pending_calls, .timeout = 60)
{
    sshd_start();
    mlk_config *cfg = ssh_config(S.bad_key); /* not in authorized_keys */
    mlk_client *c = NULL;
    cr_assert_eq(mlk_client_new(&c, cfg, NULL), 0);
    mlk_config_free(cfg);
    struct pending p = {0};
    mlk_sandbox *sb = mlk_sandbox_new("alpine:latest");
    cr_assert_eq(mlk_create_async(c, sb, 60000, on_done, &p, NULL), 0);
    mlk_sandbox_free(sb);
    cr_assert_eq(mlk_log_async(c, 60000, on_done, &p, NULL), 0);
    wait_done(c, &p, 2, 30000);
    for (int k = 0; k < 2; k++) {
        cr_assert(p.done[k], "call %d still pending", k);
        cr_assert_eq(p.status[k], MLK_EDEAD, "call %d: %s", k, p.msg[k]);
        cr_assert(strstr(p.msg[k], "Permission denied"), "ssh's message in call %d: %s", k, p.msg[k]);
    }
    cr_assert_lt(p.at[1] > p.at[0] ? p.at[1] - p.at[0] : p.at[0] - p.at[1], 100, "at once");
    mlk_close(c, 0, NULL);
    mlk_client_free(c);
    sshd_stop();
}

/* Three commands in flight; `marker` makes the remote sleeps findable. */
static void start_sleeps(mlk_client *c, struct pending *p, const char *marker)
{
    char cmd[64];
    snprintf(cmd, sizeof cmd, "sleep %s", marker);
    for (int k = 0; k < 3; k++) cr_assert_eq(mlk_exec_async(c, cmd, NULL, on_done, p, NULL), 0);
    char prefix[64];
    snprintf(prefix, sizeof prefix, "sleep %s", marker);
    for (int i = 0; i < 500 && !find_process(prefix, NULL, 0); i++) usleep(10000);
    cr_assert(find_process(prefix, NULL, 0), "the remote commands run");
    mlk_dispatch(c, 0);
    cr_assert(!p->done[0], "nothing completed yet: %s", p->msg[0]);
}

static void assert_gone(pid_t server, const char *marker)
{
    char prefix[64];
    snprintf(prefix, sizeof prefix, "sleep %s", marker);
    int i;
    for (i = 0; i < 1000 && (alive(server) || find_process(prefix, NULL, 0)); i++) usleep(10000);
    cr_assert_not(alive(server), "the remote matchlock-local (pid %d) lingers", (int)server);
    cr_assert_not(find_process(prefix, NULL, 0), "its commands linger");
}

/* The remote side drops the connection (its sshd session dies): ssh says
 * so and exits; every pending call fails with its message. */
Test(remote_ssh, dead_connection_fails_pending_calls, .timeout = 90)
{
    sshd_start();
    mlk_client *c = ssh_client();
    create(c);
    pid_t server = remote_server();
    cr_assert_gt(server, 0);
    struct pending p = {0};
    start_sleeps(c, &p, "61.25");
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)server);
    cr_assert_gt(read_file(path, buf, sizeof buf), 0);
    int session = 0;
    cr_assert_eq(sscanf(strrchr(buf, ')') + 2, "%*c %d", &session), 1);
    cr_assert_eq(kill(session, SIGKILL), 0, "kill the sshd session %d", session);
    wait_done(c, &p, 3, 20000);
    for (int k = 0; k < 3; k++) {
        cr_assert(p.done[k], "call %d still pending", k);
        cr_assert_eq(p.status[k], MLK_EDEAD, "call %d: %s", k, p.msg[k]);
        cr_assert(strstr(p.msg[k], "closed by remote host"), "ssh's message in call %d: %s", k, p.msg[k]);
    }
    assert_gone(server, "61.25");
    mlk_close(c, 0, NULL);
    mlk_client_free(c);
    sshd_stop();
}

/* ssh itself is killed mid-call: every pending call fails within 100 ms,
 * and the remote matchlock-local does not linger.  What that relies on:
 * the dead client's socket closes, so sshd ends the session and closes the
 * server's stdin; matchlock-local exits at EOF on stdin and stops the
 * commands it runs (local_protocol::stdin_eof_kills_children). */
Test(remote_ssh, killed_ssh_fails_pending_calls_within_100ms, .timeout = 90)
{
    sshd_start();
    mlk_client *c = ssh_client();
    create(c);
    pid_t server = remote_server();
    cr_assert_gt(server, 0);
    struct pending p = {0};
    start_sleeps(c, &p, "62.75");
    pid_t ssh = find_process("ssh -p", NULL, getpid());
    cr_assert_gt(ssh, 0, "our ssh child");
    int64_t t0 = now_ms();
    cr_assert_eq(kill(ssh, SIGKILL), 0);
    wait_done(c, &p, 3, 5000);
    for (int k = 0; k < 3; k++) {
        cr_assert(p.done[k], "call %d still pending", k);
        cr_assert_eq(p.status[k], MLK_EDEAD, "call %d: %s", k, p.msg[k]);
        cr_assert_leq(p.at[k] - t0, 100, "call %d failed %lld ms after the kill", k, (long long)(p.at[k] - t0));
    }
    cr_log_info("pending calls failed %lld ms after ssh was killed", (long long)(p.at[2] - t0));
    assert_gone(server, "62.75");
    mlk_result *r = NULL;
    cr_assert_eq(mlk_exec(c, "true", NULL, &r), MLK_EDEAD, "later calls fail too");
    mlk_result_free(r);
    mlk_close(c, 0, NULL);
    mlk_client_free(c);
    sshd_stop();
}

/* ssh joins its words and hands them to the remote shell: with the launcher
 * marked as such (mlk_config_set_launcher_shell), a binary path with a
 * space, a quote and shell syntax arrives as the one word it is; a volume
 * name with shell syntax is refused before ssh starts. */
Test(remote_ssh, words_arrive_whole_through_the_remote_shell, .timeout = 60)
{
    sshd_start();
    char sub[300], bin[400], marker[300];
    snprintf(sub, sizeof sub, "%s/it's a dir;$(echo x)", S.dir);
    cr_assert_eq(mkdir(sub, 0755), 0);
    snprintf(bin, sizeof bin, "%s/match lock", sub);
    cr_assert_eq(symlink(MLK_LOCAL_BIN, bin), 0);
    mlk_config *cfg = ssh_config(S.key);
    mlk_config_set_binary(cfg, bin);
    mlk_result *r = NULL;
    cr_assert_eq(mlk_volume_create(cfg, "quoted-vol", 16, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    char voldir[400];
    snprintf(voldir, sizeof voldir, "%s/matchlock-local/volumes/quoted-vol", S.state);
    cr_assert_eq(access(voldir, F_OK), 0, "the volume is on the remote side");
    cr_assert_eq(mlk_volume_remove(cfg, "quoted-vol", &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    snprintf(marker, sizeof marker, "%s/injected", S.dir);
    char name[400];
    snprintf(name, sizeof name, "v; touch %s; echo", marker);
    cr_assert_eq(mlk_volume_create(cfg, name, 16, &r), MLK_EINVAL, "%s", mlk_result_message(r));
    mlk_result_free(r);
    cr_assert_neq(access(marker, F_OK), 0, "the remote shell ran the name");
    /* unquoted, the remote shell splits the path: the setting is what works */
    mlk_config_set_launcher_shell(cfg, 0);
    cr_assert_neq(mlk_volume_create(cfg, "quoted-vol", 16, &r), 0);
    mlk_result_free(r);
    mlk_config_free(cfg);
    sshd_stop();
}
