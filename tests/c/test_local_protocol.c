/* test_local_protocol.c - drives the real server binary (matchlock-local,
 * or another server: e2e_server.h) over pipes with raw JSON lines and
 * checks the raw answers. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <criterion/criterion.h>

#include "e2e_server.h"
#include "internal.h"
#include "json.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>


typedef struct peer {
    pid_t pid;
    int in, out;            /* our ends: write requests, read answers */
    char *buf;
    size_t len, cap;
    char state[256];        /* XDG_STATE_HOME */
    int shared;             /* state dir not ours to remove */
} peer;

/* A parsed answer line (keeps its own buffer). */
typedef struct msg {
    char *text, *buf;
    jdoc d;
    const jnode *root;
} msg;

static void msg_free(msg *m)
{
    if (!m) return;
    jd_free(&m->d);
    free(m->text);
    free(m->buf);
    free(m);
}

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* When set, the next peers' stderr goes to this file (appended). */
static const char *peer_stderr_to;

/* Start matchlock-local rpc with its state in dir (NULL: a fresh one,
 * removed by peer_stop). */
static void peer_start_at(peer *p, const char *dir)
{
    memset(p, 0, sizeof *p);
    if (dir) {
        snprintf(p->state, sizeof p->state, "%s", dir);
    } else {
        snprintf(p->state, sizeof p->state, "/tmp/mlk-local-test-XXXXXX");
        cr_assert_not_null(mkdtemp(p->state));
    }
    int to[2], from[2];
    cr_assert_eq(pipe2(to, O_CLOEXEC), 0);
    cr_assert_eq(pipe2(from, O_CLOEXEC), 0);
    p->pid = fork();
    cr_assert_geq(p->pid, 0);
    if (p->pid == 0) {
        dup2(to[0], 0);
        dup2(from[1], 1);
        e2e_setenv(p->state);
        if (peer_stderr_to) {
            int fd = open(peer_stderr_to, O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (fd >= 0) dup2(fd, 2);
        }
        execl(e2e_server(), e2e_server(), "rpc", (char *)NULL);
        _exit(127);
    }
    close(to[0]);
    close(from[1]);
    p->in = to[1];
    p->out = from[0];
    signal(SIGPIPE, SIG_IGN);
    p->shared = dir != NULL;
}

static void peer_start(peer *p) { peer_start_at(p, NULL); }

static void rm_tree(const char *path)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0) {}
}

static int peer_wait(peer *p, int ms)
{
    int st;
    for (int64_t end = now_ms() + ms; now_ms() < end; usleep(10000)) {
        pid_t r = waitpid(p->pid, &st, WNOHANG);
        if (r == p->pid) { p->pid = 0; return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st); }
    }
    return -1;
}

static void peer_stop(peer *p)
{
    if (p->in >= 0) close(p->in);
    p->in = -1;
    if (p->pid > 0 && peer_wait(p, 5000) < 0) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, NULL, 0);
    }
    if (p->out >= 0) close(p->out);
    free(p->buf);
    if (!p->shared) rm_tree(p->state);
}

/* Close the server's stdin, as a client does after close: upstream's
 * server exits at the next line or at EOF, matchlock-local at once. */
static void end_input(peer *p)
{
    if (p->in >= 0) close(p->in);
    p->in = -1;
}

static void sendl(peer *p, const char *line)
{
    size_t n = strlen(line);
    for (size_t off = 0; off < n;) {
        ssize_t w = write(p->in, line + off, n - off);
        cr_assert_gt(w, 0, "write to matchlock-local failed: %s", strerror(errno));
        off += (size_t)w;
    }
    if (n == 0 || line[n - 1] != '\n') cr_assert_eq(write(p->in, "\n", 1), 1);
}

/* Next line, or NULL after ms. */
static char *recv_line(peer *p, int ms)
{
    int64_t end = now_ms() + ms;
    for (;;) {
        char *nl = p->len ? memchr(p->buf, '\n', p->len) : NULL;
        if (nl) {
            size_t l = (size_t)(nl - p->buf);
            char *line = strndup(p->buf, l);
            memmove(p->buf, nl + 1, p->len - l - 1);
            p->len -= l + 1;
            return line;
        }
        int left = (int)(end - now_ms());
        if (left <= 0) return NULL;
        struct pollfd pf = {.fd = p->out, .events = POLLIN};
        if (poll(&pf, 1, left) <= 0) continue;
        if (p->cap - p->len < 65536) {
            p->cap = p->cap ? p->cap * 2 : 131072;
            p->buf = realloc(p->buf, p->cap);
        }
        ssize_t n = read(p->out, p->buf + p->len, p->cap - p->len);
        if (n <= 0) return NULL;
        p->len += (size_t)n;
    }
}

static msg *recv_msg(peer *p, int ms)
{
    char *line = recv_line(p, ms);
    if (!line) return NULL;
    msg *m = calloc(1, sizeof *m);
    m->text = line;
    m->buf = strdup(line);
    jd_init(&m->d);
    cr_assert_eq(jd_parse(&m->d, m->buf, strlen(m->buf)), 0, "unparsable answer: %s", line);
    m->root = jd_root(&m->d);
    return m;
}

static int64_t msg_id(msg *m)
{
    const jnode *id = jd_get(&m->d, m->root, "id");
    int64_t v;
    return id && jn_int(id, &v) == 0 ? v : -1;
}

static int msg_code(msg *m)
{
    const jnode *e = jd_get(&m->d, m->root, "error");
    return e ? (int)jd_int(&m->d, e, "code", 0) : 0;
}

static const char *msg_errmsg(msg *m)
{
    const jnode *e = jd_get(&m->d, m->root, "error");
    return e ? jd_str(&m->d, e, "message", "") : "";
}

static const jnode *msg_result(msg *m) { return jd_get(&m->d, m->root, "result"); }
static const jnode *msg_params(msg *m) { return jd_get(&m->d, m->root, "params"); }
static const char *msg_method(msg *m) { return jd_str(&m->d, m->root, "method", NULL); }

/* Decode a base64 string field of obj (malloc'd, NUL-terminated). */
static char *b64field(msg *m, const jnode *obj, const char *key, size_t *len)
{
    const jnode *n = jd_get(&m->d, obj, key);
    cr_assert(n && n->type == JN_STR, "missing base64 field %s in %s", key, m->text);
    char *out = malloc(n->len + 1);
    long long l = b64_decode(n->s, n->len, (unsigned char *)out);
    cr_assert_geq(l, 0, "bad base64 in %s", m->text);
    out[l] = '\0';
    if (len) *len = (size_t)l;
    return out;
}

/* Read until the response with this id; notifications for it are
 * appended (decoded data) to *notes when given. */
static msg *until_id(peer *p, int64_t id, int ms, char **notes, int *nnotes)
{
    int64_t end = now_ms() + ms;
    size_t nl = 0;
    if (notes) *notes = calloc(1, 1);
    for (;;) {
        int left = (int)(end - now_ms());
        msg *m = recv_msg(p, left > 0 ? left : 0);
        cr_assert_not_null(m, "no answer for request %lld", (long long)id);
        if (msg_method(m) && msg_params(m)) {
            int64_t pid = jd_int(&m->d, msg_params(m), "id", -1);
            if (pid == id) {
                if (nnotes) (*nnotes)++;
                if (notes && jd_get(&m->d, msg_params(m), "data")) {
                    size_t l;
                    char *data = b64field(m, msg_params(m), "data", &l);
                    *notes = realloc(*notes, nl + l + 1);
                    memcpy(*notes + nl, data, l);
                    nl += l;
                    (*notes)[nl] = '\0';
                    free(data);
                }
            }
            msg_free(m);
            continue;
        }
        if (msg_id(m) == id) return m;
        msg_free(m);
    }
}

static msg *call(peer *p, int64_t id, const char *method, const char *params)
{
    char *line = NULL;
    cr_assert_geq(asprintf(&line, "{\"jsonrpc\":\"2.0\",\"method\":\"%s\",\"params\":%s,\"id\":%lld}",
                           method, params, (long long)id), 0);
    sendl(p, line);
    free(line);
    return until_id(p, id, 15000, NULL, NULL);
}

/* Start a peer and create a VM; returns the VM id (static buffer). */
static const char *start_vm(peer *p, const char *params)
{
    static char vmid[32];
    peer_start(p);
    msg *m = call(p, 1, "create", params ? params : "{\"image\":\"alpine:latest\"}");
    cr_assert_eq(msg_code(m), 0, "create failed: %s", m->text);
    snprintf(vmid, sizeof vmid, "%s", jd_str(&m->d, msg_result(m), "id", ""));
    cr_assert(!strncmp(vmid, "vm-", 3) && strlen(vmid) == 11, "bad vm id: %s", m->text);
    msg_free(m);
    return vmid;
}

/* Skip a test that needs bubblewrap isolation when the VM log says the
 * commands run as plain processes (no bwrap on this machine). */
static void need_isolation(peer *p)
{
    if (e2e_lacks("isolation")) peer_stop(p);
    E2E_NEEDS("isolation");
    msg *m = call(p, 999, "log", "{}");
    char *log = b64field(m, msg_result(m), "content", NULL);
    int isolated = strstr(log, "under bubblewrap") != NULL;
    free(log);
    msg_free(m);
    if (!isolated) {
        peer_stop(p);
        cr_skip_test("bwrap is not available: commands run as plain processes");
    }
}

/* exec -> exit code, stdout and stderr */
static int run(peer *p, int64_t id, const char *cmd_json, char **out, char **err)
{
    char *params = NULL;
    cr_assert_geq(asprintf(&params, "{\"command\":%s}", cmd_json), 0);
    msg *m = call(p, id, "exec", params);
    free(params);
    cr_assert_eq(msg_code(m), 0, "exec failed: %s", m->text);
    int code = (int)jd_int(&m->d, msg_result(m), "exit_code", -1);
    if (out) *out = b64field(m, msg_result(m), "stdout", NULL);
    if (err) *err = b64field(m, msg_result(m), "stderr", NULL);
    msg_free(m);
    return code;
}

static char *b64(const char *s)
{
    size_t n = strlen(s);
    char *o = calloc(1, b64_encoded_len(n) + 1);
    b64_encode((const unsigned char *)s, n, o);
    return o;
}

/* ===================================================================== */

Test(local_protocol, malformed_line_keeps_serving, .timeout = 20)
{
    peer p;
    peer_start(&p);
    sendl(&p, "this is not json");
    msg *m = recv_msg(&p, 5000);
    cr_assert_not_null(m);
    cr_assert_eq(msg_code(m), -32700, "%s", m->text);
    cr_assert_str_eq(msg_errmsg(m), "Parse error");
    cr_assert_null(jd_get(&m->d, m->root, "id"), "parse errors carry no id: %s", m->text);
    msg_free(m);
    /* a request that does not decode: cut short, not an object, an id that
     * is not an unsigned integer; each is a parse error without an id */
    const char *bad[] = {"{\"jsonrpc\":\"2.0\",\"method\":\"create\",\"params\":{\"image\":\"alpine:latest\"},\"id\":",
                         "[1,2]", "{\"jsonrpc\":\"2.0\",\"method\":\"exec\",\"params\":{},\"id\":\"abc\"}",
                         "{\"jsonrpc\":\"2.0\",\"method\":\"exec\",\"params\":{},\"id\":-5}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sendl(&p, bad[i]);
        m = recv_msg(&p, 5000);
        cr_assert_not_null(m, "no answer to %s", bad[i]);
        cr_assert_eq(msg_code(m), -32700, "%s -> %s", bad[i], m->text);
        cr_assert_null(jd_get(&m->d, m->root, "id"), "%s -> %s", bad[i], m->text);
        msg_free(m);
    }
    m = call(&p, 7, "no_such_method", "{}");
    cr_assert_eq(msg_code(m), -32601, "%s", m->text);
    cr_assert_str_eq(msg_errmsg(m), "Method not found");
    cr_assert_eq(msg_id(m), 7);
    msg_free(m);
    sendl(&p, "{\"jsonrpc\":\"2.0\",\"params\":{},\"id\":9}");
    m = until_id(&p, 9, 5000, NULL, NULL);
    cr_assert_eq(msg_code(m), -32601, "no method: %s", m->text);
    msg_free(m);
    m = call(&p, 8, "exec", "{\"command\":\"true\"}");
    cr_assert_eq(msg_code(m), -32000, "exec before create: %s", m->text);
    msg_free(m);
    peer_stop(&p);
}

Test(local_protocol, create_validation, .timeout = 20)
{
    peer p;
    peer_start(&p);
    msg *m = call(&p, 1, "create", "{}");
    cr_assert_eq(msg_code(m), -32602, "%s", m->text);
    cr_assert(strstr(msg_errmsg(m), "image"), "%s", m->text);
    msg_free(m);
    m = call(&p, 2, "create", "{\"image\":\"alpine\",\"id\":\"vm-mine\"}");
    cr_assert_eq(msg_code(m), -32602, "%s", m->text);
    cr_assert(strstr(msg_errmsg(m), "id"), "%s", m->text);
    msg_free(m);
    m = call(&p, 3, "create", "{\"image\":\"alpine\",\"vfs\":{\"mounts\":{\"/workspace/x\":{\"type\":\"memory\"}}}}");
    cr_assert_eq(msg_code(m), -32602, "mounts without workspace: %s", m->text);
    cr_assert(strstr(msg_errmsg(m), "workspace"), "%s", m->text);
    msg_free(m);
    m = call(&p, 4, "create", "{\"image\":\"alpine\",\"vfs\":{\"workspace\":\"/workspace\","
                              "\"mounts\":{\"/data\":{\"type\":\"memory\"}}}}");
    cr_assert_eq(msg_code(m), -32602, "mount outside the workspace: %s", m->text);
    msg_free(m);
    m = call(&p, 5, "create", "{\"image\":\"alpine\",\"network\":{\"no_network\":true,\"allowed_hosts\":[\"a.com\"]}}");
    cr_assert_eq(msg_code(m), -32602, "no_network with hosts: %s", m->text);
    msg_free(m);
    m = call(&p, 7, "create", "{\"image\":\"alpine\"}");
    cr_assert_eq(msg_code(m), 0, "valid create after failures: %s", m->text);
    msg_free(m);
    peer_stop(&p);
}

/* matchlock-local checks add_hosts IPs at create; upstream accepts any
 * string there (docs/testing.md). */
Test(local_protocol, add_hosts_ip_checked, .timeout = 20)
{
    E2E_NEEDS("local_behaviour");
    peer p;
    peer_start(&p);
    msg *m = call(&p, 6, "create", "{\"image\":\"alpine\",\"network\":{\"add_hosts\":[{\"host\":\"db\",\"ip\":\"not-an-ip\"}]}}");
    cr_assert_eq(msg_code(m), -32602, "bad add_host: %s", m->text);
    cr_assert(strstr(msg_errmsg(m), "add_hosts"), "%s", m->text);
    msg_free(m);
    peer_stop(&p);
}

Test(local_protocol, exec_exit_code_and_output, .timeout = 20)
{
    peer p;
    start_vm(&p, "{\"image\":\"alpine\",\"env\":{\"GREETING\":\"hello there\"}}");
    char *out, *err;
    int code = run(&p, 2, "\"echo \\\"$GREETING\\\"; echo oops >&2; exit 7\"", &out, &err);
    cr_assert_eq(code, 7);
    cr_assert_str_eq(out, "hello there\n");
    cr_assert_str_eq(err, "oops\n");
    free(out); free(err);
    /* no command: an empty one, which succeeds */
    cr_assert_eq(run(&p, 4, "\"\"", NULL, NULL), 0);
    msg *m = call(&p, 5, "exec", "{}");
    cr_assert_eq(msg_code(m), 0, "%s", m->text);
    cr_assert_eq(jd_int(&m->d, msg_result(m), "exit_code", -1), 0, "%s", m->text);
    msg_free(m);
    peer_stop(&p);
}

/* A command killed by a signal: matchlock-local reports 128+N (what
 * bubblewrap reports), upstream -1 (docs/testing.md). */
Test(local_protocol, signal_exit_code, .timeout = 20)
{
    E2E_NEEDS("local_behaviour");
    peer p;
    start_vm(&p, NULL);
    cr_assert_eq(run(&p, 3, "\"kill -9 $$\"", NULL, NULL), 137, "killed by a signal: 128+9");
    peer_stop(&p);
}

Test(local_protocol, exec_stream_notifications_before_response, .timeout = 20)
{
    peer p;
    start_vm(&p, NULL);
    sendl(&p, "{\"jsonrpc\":\"2.0\",\"method\":\"exec_stream\",\"params\":{\"command\":"
              "\"echo one; sleep 0.2; echo two; echo err >&2\"},\"id\":5}");
    int nout = 0, nerr = 0, got_result = 0;
    char acc[256] = "";
    for (;;) {
        msg *m = recv_msg(&p, 10000);
        cr_assert_not_null(m);
        const char *meth = msg_method(m);
        if (meth) {
            cr_assert_not(got_result, "notification after the final response: %s", m->text);
            cr_assert_eq(jd_int(&m->d, msg_params(m), "id", -1), 5);
            char *data = b64field(m, msg_params(m), "data", NULL);
            if (!strcmp(meth, "exec_stream.stdout")) { nout++; strncat(acc, data, sizeof acc - strlen(acc) - 1); }
            else if (!strcmp(meth, "exec_stream.stderr")) { nerr++; cr_assert_str_eq(data, "err\n"); }
            free(data);
        } else {
            cr_assert_eq(msg_id(m), 5);
            cr_assert_eq(jd_int(&m->d, msg_result(m), "exit_code", -1), 0);
            cr_assert_geq(jd_int(&m->d, msg_result(m), "duration_ms", -1), 150);
            got_result = 1;
            msg_free(m);
            break;
        }
        msg_free(m);
    }
    cr_assert_geq(nout, 2, "output arrives as it is produced");
    cr_assert_eq(nerr, 1);
    cr_assert_str_eq(acc, "one\ntwo\n");
    peer_stop(&p);
}

Test(local_protocol, exec_pipe_stdin_echo, .timeout = 20)
{
    peer p;
    start_vm(&p, NULL);
    sendl(&p, "{\"jsonrpc\":\"2.0\",\"method\":\"exec_pipe\",\"params\":{\"command\":\"cat; echo end\"},\"id\":3}");
    msg *m = recv_msg(&p, 10000);
    cr_assert_not_null(m);
    cr_assert_str_eq(msg_method(m), "exec_pipe.ready", "%s", m->text);
    msg_free(m);
    char *a = b64("first line\n"), *b = b64("second\n"), line[256];
    snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"method\":\"exec_pipe.stdin\",\"params\":{\"id\":3,\"data\":\"%s\"}}", a);
    sendl(&p, line);
    snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"method\":\"exec_pipe.stdin\",\"params\":{\"id\":3,\"data\":\"%s\"}}", b);
    sendl(&p, line);
    sendl(&p, "{\"jsonrpc\":\"2.0\",\"method\":\"exec_pipe.stdin_eof\",\"params\":{\"id\":3}}");
    char *notes;
    m = until_id(&p, 3, 10000, &notes, NULL);
    cr_assert_eq(msg_code(m), 0, "%s", m->text);
    cr_assert_eq(jd_int(&m->d, msg_result(m), "exit_code", -1), 0);
    cr_assert_str_eq(notes, "first line\nsecond\nend\n");
    free(notes); free(a); free(b);
    msg_free(m);
    /* exec_pipe needs an id */
    sendl(&p, "{\"jsonrpc\":\"2.0\",\"method\":\"exec_pipe\",\"params\":{\"command\":\"cat\"}}");
    m = recv_msg(&p, 5000);
    cr_assert_eq(msg_code(m), -32600, "%s", m->text);
    msg_free(m);
    peer_stop(&p);
}

Test(local_protocol, exec_tty_size_and_resize, .timeout = 20)
{
    peer p;
    start_vm(&p, NULL);
    sendl(&p, "{\"jsonrpc\":\"2.0\",\"method\":\"exec_tty\",\"params\":{\"command\":"
              "\"test -t 0 && echo is-a-tty; stty size; read x; stty size; echo got-$x\","
              "\"rows\":33,\"cols\":101},\"id\":4}");
    msg *m = recv_msg(&p, 10000);
    cr_assert_str_eq(msg_method(m), "exec_tty.ready", "%s", m->text);
    msg_free(m);
    /* wait for the first size line before resizing */
    char acc[1024] = "";
    while (!strstr(acc, "33 101")) {
        m = recv_msg(&p, 10000);
        cr_assert_not_null(m, "no tty output; so far: %s", acc);
        cr_assert_str_eq(msg_method(m), "exec_tty.stdout", "%s", m->text);
        char *d = b64field(m, msg_params(m), "data", NULL);
        strncat(acc, d, sizeof acc - strlen(acc) - 1);
        free(d);
        msg_free(m);
    }
    cr_assert(strstr(acc, "is-a-tty"), "a real terminal: %s", acc);
    sendl(&p, "{\"jsonrpc\":\"2.0\",\"method\":\"exec_tty.resize\",\"params\":{\"id\":4,\"rows\":40,\"cols\":120}}");
    char *in = b64("abc\n"), line[256];
    snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"method\":\"exec_tty.stdin\",\"params\":{\"id\":4,\"data\":\"%s\"}}", in);
    sendl(&p, line);
    free(in);
    char *notes;
    m = until_id(&p, 4, 10000, &notes, NULL);
    cr_assert_eq(jd_int(&m->d, msg_result(m), "exit_code", -1), 0, "%s", m->text);
    cr_assert(strstr(notes, "40 120"), "resize seen by stty: %s", notes);
    cr_assert(strstr(notes, "got-abc"), "%s", notes);
    free(notes);
    msg_free(m);
    peer_stop(&p);
}

Test(local_protocol, write_read_list_files, .timeout = 20)
{
    peer p;
    start_vm(&p, NULL);
    need_isolation(&p);
    char *c = b64("file body\n"), params[512];
    snprintf(params, sizeof params, "{\"path\":\"/workspace/sub/dir/f.txt\",\"content\":\"%s\",\"mode\":384}", c);
    free(c);
    msg *m = call(&p, 2, "write_file", params);
    cr_assert_eq(msg_code(m), 0, "%s", m->text);
    msg_free(m);
    m = call(&p, 3, "read_file", "{\"path\":\"/workspace/sub/dir/f.txt\"}");
    cr_assert_eq(msg_code(m), 0, "%s", m->text);
    char *body = b64field(m, msg_result(m), "content", NULL);
    cr_assert_str_eq(body, "file body\n");
    free(body);
    msg_free(m);
    /* commands see the same tree */
    char *out;
    cr_assert_eq(run(&p, 4, "\"cat /workspace/sub/dir/f.txt && stat -c %a /workspace/sub/dir/f.txt && "
                            "mkdir /workspace/sub/dir/inner && printf xyz > /tmp/t\"", &out, NULL), 0);
    cr_assert_str_eq(out, "file body\n600\n");
    free(out);
    m = call(&p, 5, "list_files", "{\"path\":\"/workspace/sub/dir\"}");
    cr_assert_eq(msg_code(m), 0, "%s", m->text);
    const jnode *files = jd_get(&m->d, msg_result(m), "files");
    cr_assert(files && files->type == JN_ARR && files->count == 2, "%s", m->text);
    const jnode *f = jd_first(&m->d, files);
    cr_assert_str_eq(jd_str(&m->d, f, "name", ""), "f.txt");
    cr_assert_eq(jd_int(&m->d, f, "size", -1), 10);
    cr_assert_eq(jd_int(&m->d, f, "mode", 0) & 0777, 0600);
    cr_assert_eq(jd_bool(&m->d, f, "is_dir", 1), 0);
    const char *mt = jd_str(&m->d, f, "mod_time", "");
    cr_assert(strlen(mt) >= 20 && mt[4] == '-' && mt[10] == 'T', "RFC3339 mod_time: %s", mt);
    f = jd_next(&m->d, f);
    cr_assert_str_eq(jd_str(&m->d, f, "name", ""), "inner");
    cr_assert_eq(jd_bool(&m->d, f, "is_dir", 0), 1);
    msg_free(m);
    m = call(&p, 6, "read_file", "{\"path\":\"/tmp/t\"}");
    body = b64field(m, msg_result(m), "content", NULL);
    cr_assert_str_eq(body, "xyz");
    free(body);
    msg_free(m);
    m = call(&p, 7, "read_file", "{\"path\":\"/workspace/missing\"}");
    cr_assert_eq(msg_code(m), -32002, "%s", m->text);
    msg_free(m);
    m = call(&p, 8, "read_file", "{}");
    cr_assert_eq(msg_code(m), -32602, "%s", m->text);
    cr_assert(strstr(msg_errmsg(m), "path"), "%s", m->text);
    msg_free(m);
    peer_stop(&p);
}

Test(local_protocol, path_escapes_rejected, .timeout = 20)
{
    peer p;
    start_vm(&p, NULL);
    need_isolation(&p);
    /* a host directory outside the sandbox with a secret in it */
    char host[] = "/tmp/mlk-local-secret-XXXXXX", path[300], cmd[600];
    cr_assert_not_null(mkdtemp(host));
    snprintf(path, sizeof path, "%s/secret", host);
    FILE *f = fopen(path, "w");
    fputs("TOPSECRET", f);
    fclose(f);
    msg *m = call(&p, 2, "read_file", "{\"path\":\"../../etc/passwd\"}");
    cr_assert_eq(msg_code(m), -32002, "%s", m->text);
    msg_free(m);
    m = call(&p, 3, "read_file", "{\"path\":\"/workspace/../../../etc/passwd\"}");
    cr_assert_eq(msg_code(m), -32002, "%s", m->text);
    msg_free(m);
    snprintf(cmd, sizeof cmd, "\"ln -s %s /workspace/hostlink && ln -s /etc /workspace/etclink && "
                              "ln -s ../../../../../../../..%s /workspace/rellink\"", host, host);
    cr_assert_eq(run(&p, 4, cmd, NULL, NULL), 0);
    const char *tries[] = {"/workspace/hostlink/secret", "/workspace/rellink/secret", "/workspace/etclink/shadow"};
    for (int i = 0; i < 3; i++) {
        char params[256];
        snprintf(params, sizeof params, "{\"path\":\"%s\"}", tries[i]);
        m = call(&p, 10 + i, "read_file", params);
        cr_assert_eq(msg_code(m), -32002, "%s must not resolve outside: %s", tries[i], m->text);
        cr_assert_not(strstr(m->text, "VE9QU0VDUkVU"), "secret leaked");
        msg_free(m);
    }
    /* writing through the link stays inside the sandbox too */
    m = call(&p, 20, "write_file", "{\"path\":\"/workspace/hostlink/planted\",\"content\":\"eA==\"}");
    snprintf(path, sizeof path, "%s/planted", host);
    cr_assert_neq(access(path, F_OK), 0, "write_file escaped to the host: %s", m->text);
    msg_free(m);
    /* commands do not see host secrets */
    char *out;
    cr_assert_eq(run(&p, 21, "\"test -e /etc/shadow && echo shadow; cat /workspace/hostlink/secret 2>/dev/null; echo end\"",
                     &out, NULL), 0);
    cr_assert_str_eq(out, "end\n");
    free(out);
    rm_tree(host);
    peer_stop(&p);
}

Test(local_protocol, cancel_running_command, .timeout = 20)
{
    peer p;
    start_vm(&p, NULL);
    sendl(&p, "{\"jsonrpc\":\"2.0\",\"method\":\"exec\",\"params\":{\"command\":\"sleep 2963\"},\"id\":2}");
    usleep(300000);
    int64_t t0 = now_ms();
    sendl(&p, "{\"jsonrpc\":\"2.0\",\"method\":\"cancel\",\"params\":{\"id\":2},\"id\":3}");
    int seen_cancel = 0, seen_exec = 0;
    while (!(seen_cancel && seen_exec)) {
        msg *m = recv_msg(&p, 5000);
        cr_assert_not_null(m);
        if (msg_id(m) == 3) {
            cr_assert(jd_bool(&m->d, msg_result(m), "cancelled", 0), "%s", m->text);
            seen_cancel = 1;
        } else if (msg_id(m) == 2) {
            cr_assert_eq(msg_code(m), -32003, "%s", m->text);
            seen_exec = 1;
        }
        msg_free(m);
    }
    cr_assert_lt(now_ms() - t0, 3000, "cancel answered quickly");
    msg *m = call(&p, 4, "cancel", "{\"id\":99}");
    cr_assert_eq(jd_bool(&m->d, msg_result(m), "cancelled", 1), 0, "%s", m->text);
    msg_free(m);
    /* the process group is gone */
    usleep(500000);
    char *out;
    run(&p, 5, "\"true\"", NULL, NULL);
    FILE *ps = popen("ps -eo args | grep -c '^sleep 2963$'", "r");
    out = calloc(1, 32);
    if (fgets(out, 32, ps)) {}
    pclose(ps);
    cr_assert_eq(atoi(out), 0, "sleep 2963 still running");
    free(out);
    peer_stop(&p);
}

Test(local_protocol, log_and_log_stream, .timeout = 20)
{
    peer p;
    /* an entrypoint writes to the VM log after log_stream has started */
    const char *vmid = start_vm(&p, "{\"image\":\"alpine:latest\",\"launch_entrypoint\":true,\"image_config\":{"
                                    "\"entrypoint\":[\"/bin/sh\",\"-c\"],\"cmd\":[\"sleep 1; echo later-line; sleep 30\"]}}");
    char id[32];
    snprintf(id, sizeof id, "%s", vmid);
    msg *m = call(&p, 2, "log", "{}");
    cr_assert_eq(msg_code(m), 0, "%s", m->text);
    char *log = b64field(m, msg_result(m), "content", NULL);
    cr_assert(strstr(log, id), "log mentions the VM: %s", log);
    free(log);
    msg_free(m);
    sendl(&p, "{\"jsonrpc\":\"2.0\",\"method\":\"log_stream\",\"id\":3}");
    m = recv_msg(&p, 5000);
    cr_assert_str_eq(msg_method(m), "log_stream.data", "%s", m->text);
    log = b64field(m, msg_params(m), "data", NULL);
    cr_assert(strstr(log, id), "%s", log);
    free(log);
    msg_free(m);
    usleep(1500000);
    char *notes;
    sendl(&p, "{\"jsonrpc\":\"2.0\",\"method\":\"cancel\",\"params\":{\"id\":3},\"id\":6}");
    m = until_id(&p, 3, 5000, &notes, NULL);
    cr_assert_eq(msg_code(m), -32003, "%s", m->text);
    cr_assert(strstr(notes, "later-line"), "appended log data streamed: %s", notes);
    free(notes);
    msg_free(m);
    peer_stop(&p);
}

Test(local_protocol, close_answers_then_exits, .timeout = 20)
{
    peer p;
    start_vm(&p, NULL);
    sendl(&p, "{\"jsonrpc\":\"2.0\",\"method\":\"exec_stream\",\"params\":{\"command\":\"sleep 1\"},\"id\":2}");
    usleep(200000);
    sendl(&p, "{\"jsonrpc\":\"2.0\",\"method\":\"close\",\"params\":{\"timeout_seconds\":2},\"id\":3}");
    int seen_exec = 0;
    for (;;) {
        msg *m = recv_msg(&p, 8000);
        cr_assert_not_null(m);
        if (msg_id(m) == 2) seen_exec = 1;
        if (msg_id(m) == 3) {
            cr_assert(seen_exec, "in-flight requests end before close answers");
            cr_assert_eq(msg_code(m), 0, "%s", m->text);
            cr_assert_eq(msg_result(m)->type, JN_OBJ);
            msg_free(m);
            break;
        }
        msg_free(m);
    }
    cr_assert_null(recv_line(&p, 200), "nothing after close");
    end_input(&p);
    cr_assert_eq(peer_wait(&p, 5000), 0, "the server exits after close");
    peer_stop(&p);
}

/* matchlock-local's close stops the commands still running (after a
 * grace of at most 2 s) where upstream waits for them (docs/testing.md). */
Test(local_protocol, close_stops_running_commands, .timeout = 20)
{
    E2E_NEEDS("close_stops_commands");
    peer p;
    start_vm(&p, NULL);
    sendl(&p, "{\"jsonrpc\":\"2.0\",\"method\":\"exec_stream\",\"params\":{\"command\":\"sleep 30\"},\"id\":2}");
    usleep(200000);
    int64_t t0 = now_ms();
    sendl(&p, "{\"jsonrpc\":\"2.0\",\"method\":\"close\",\"params\":{\"timeout_seconds\":2},\"id\":3}");
    msg *m = until_id(&p, 3, 8000, NULL, NULL);
    cr_assert_eq(msg_code(m), 0, "%s", m->text);
    msg_free(m);
    cr_assert_lt(now_ms() - t0, 4000);
    cr_assert_eq(peer_wait(&p, 5000), 0, "the server exits after close");
    peer_stop(&p);
}

Test(local_protocol, stdin_eof_kills_children, .timeout = 20)
{
    peer p;
    start_vm(&p, NULL);
    sendl(&p, "{\"jsonrpc\":\"2.0\",\"method\":\"exec\",\"params\":{\"command\":\"sleep 31.5\"},\"id\":2}");
    usleep(300000);
    close(p.in);
    p.in = -1;
    cr_assert_geq(peer_wait(&p, 5000), 0, "server exits on stdin EOF");
    usleep(200000);
    FILE *ps = popen("ps -eo args | grep -c '^sleep 31.5$'", "r");
    char buf[32] = "";
    if (fgets(buf, sizeof buf, ps)) {}
    pclose(ps);
    cr_assert_eq(atoi(buf), 0, "children are killed when the client goes away");
    peer_stop(&p);
}

Test(local_protocol, oversized_line_ends_session, .timeout = 20)
{
    peer p;
    peer_start(&p);
    size_t n = 10u * 1024 * 1024 + 4096;
    char *big = malloc(n + 1);
    memset(big, 'a', n);
    big[0] = '"';
    big[n] = '\0';
    for (size_t off = 0; off < n;) {
        ssize_t w = write(p.in, big + off, n - off);
        if (w <= 0) break;
        off += (size_t)w;
    }
    free(big);
    cr_assert_null(recv_msg(&p, 10000), "no answer: the session ends");
    cr_assert_geq(peer_wait(&p, 5000), 0, "an oversized line ends the session");
    peer_stop(&p);
}

Test(local_protocol, port_forward_carries_tcp, .timeout = 20)
{
    peer p;
    start_vm(&p, NULL);
    /* the "sandbox side" service: the sandbox shares the host's loopback */
    int srv = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    cr_assert_eq(bind(srv, (struct sockaddr *)&a, sizeof a), 0);
    listen(srv, 4);
    getsockname(srv, (struct sockaddr *)&a, &al);
    int remote = ntohs(a.sin_port);
    char params[256];
    snprintf(params, sizeof params, "{\"forwards\":[{\"local_port\":0,\"remote_port\":%d}],\"addresses\":[\"127.0.0.1\"]}", remote);
    msg *m = call(&p, 2, "port_forward", params);
    cr_assert_eq(msg_code(m), 0, "%s", m->text);
    const jnode *b = jd_first(&m->d, jd_get(&m->d, msg_result(m), "bindings"));
    cr_assert_not_null(b, "%s", m->text);
    cr_assert_str_eq(jd_str(&m->d, b, "address", ""), "127.0.0.1");
    cr_assert_eq(jd_int(&m->d, b, "remote_port", 0), remote);
    int local = (int)jd_int(&m->d, b, "local_port", 0);
    cr_assert_gt(local, 0);
    msg_free(m);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in la = {.sin_family = AF_INET, .sin_port = htons((uint16_t)local),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(c, (struct sockaddr *)&la, sizeof la), 0, "%s", strerror(errno));
    struct pollfd pf = {.fd = srv, .events = POLLIN};
    cr_assert_eq(poll(&pf, 1, 5000), 1, "the forward connects to the remote port");
    int s2 = accept(srv, NULL, NULL);
    cr_assert_eq(write(c, "ping", 4), 4);
    char buf[16] = "";
    pf.fd = s2;
    cr_assert_eq(poll(&pf, 1, 5000), 1);
    cr_assert_eq(read(s2, buf, sizeof buf), 4);
    cr_assert(!memcmp(buf, "ping", 4));
    cr_assert_eq(write(s2, "pong", 4), 4);
    pf.fd = c;
    cr_assert_eq(poll(&pf, 1, 5000), 1);
    cr_assert_eq(read(c, buf, sizeof buf), 4);
    cr_assert(!memcmp(buf, "pong", 4));
    close(c); close(s2); close(srv);
    peer_stop(&p);
}

Test(local_protocol, allow_list_needs_interception, .timeout = 20)
{
    peer p;
    start_vm(&p, NULL);
    msg *m = call(&p, 2, "allow_list_add", "{\"hosts\":[\"example.com\"]}");
    cr_assert_eq(msg_code(m), -32000, "%s", m->text);
    msg_free(m);
    peer_stop(&p);
    start_vm(&p, "{\"image\":\"alpine:latest\",\"network\":{\"allowed_hosts\":[\"a.com\"],\"block_private_ips\":true}}");
    m = call(&p, 2, "allow_list_add", "{\"hosts\":[\"b.com\",\"a.com\"]}");
    cr_assert_eq(msg_code(m), 0, "%s", m->text);
    cr_assert(strstr(m->text, "\"added\":[\"b.com\"]"), "%s", m->text);
    cr_assert(strstr(m->text, "\"allowed_hosts\":[\"a.com\",\"b.com\"]"), "%s", m->text);
    msg_free(m);
    m = call(&p, 3, "allow_list_delete", "{\"hosts\":[\"a.com\"]}");
    cr_assert(strstr(m->text, "\"removed\":[\"a.com\"]") && strstr(m->text, "\"allowed_hosts\":[\"b.com\"]"), "%s", m->text);
    msg_free(m);
    m = call(&p, 4, "allow_list_add", "{\"hosts\":[]}");
    cr_assert_eq(msg_code(m), -32602, "%s", m->text);
    msg_free(m);
    peer_stop(&p);
}

Test(local_protocol, sandbox_identity_and_mounts, .timeout = 20)
{
    char host[] = "/tmp/mlk-local-mnt-XXXXXX", ovl[] = "/tmp/mlk-local-ovl-XXXXXX", path[300], params[1024];
    cr_assert_not_null(mkdtemp(host));
    cr_assert_not_null(mkdtemp(ovl));
    snprintf(path, sizeof path, "%s/hello.txt", host);
    FILE *f = fopen(path, "w"); fputs("from host", f); fclose(f);
    snprintf(path, sizeof path, "%s/base.txt", ovl);
    f = fopen(path, "w"); fputs("original", f); fclose(f);
    snprintf(params, sizeof params,
             "{\"image\":\"alpine:latest\",\"network\":{\"hostname\":\"boxy\",\"add_hosts\":[{\"host\":\"db.internal\",\"ip\":\"10.1.2.3\"}],"
             "\"allowed_hosts\":[],\"block_private_ips\":true},"
             "\"vfs\":{\"workspace\":\"/workspace\",\"mounts\":{\"/workspace/host\":{\"type\":\"host_fs\",\"host_path\":\"%s\"},"
             "\"/workspace/ro\":{\"type\":\"host_fs\",\"host_path\":\"%s\",\"readonly\":true},"
             "\"/workspace/mem\":{\"type\":\"memory\"},"
             "\"/workspace/ovl\":{\"type\":\"overlay\",\"host_path\":\"%s\"}},"
             "\"interception\":{\"rules\":[{\"name\":\"no-secrets\",\"phase\":\"before\",\"ops\":[\"write\",\"read\"],"
             "\"path\":\"/workspace/mem/secret*\",\"action\":\"block\"}]}}}",
             host, host, ovl);
    peer p;
    start_vm(&p, params);
    need_isolation(&p);
    char *out;
    cr_assert_eq(run(&p, 2, "\"hostname; grep db.internal /etc/hosts; cat /workspace/host/hello.txt; echo; "
                            "echo new > /workspace/host/made.txt; echo x > /workspace/ro/x 2>/dev/null || echo ro-refused; "
                            "echo changed > /workspace/ovl/base.txt; echo m > /workspace/mem/m.txt; cat /workspace/mem/m.txt\"",
                     &out, NULL), 0);
    cr_assert_str_eq(out, "boxy\n10.1.2.3 db.internal\nfrom host\nro-refused\nm\n");
    free(out);
    snprintf(path, sizeof path, "%s/made.txt", host);
    cr_assert_eq(access(path, F_OK), 0, "host_fs is a read-write bind");
    snprintf(path, sizeof path, "%s/base.txt", ovl);
    f = fopen(path, "r");
    char buf[32] = "";
    if (fgets(buf, sizeof buf, f)) {}
    fclose(f);
    cr_assert_str_eq(buf, "original", "overlay is copy-on-write");
    msg *m = call(&p, 3, "read_file", "{\"path\":\"/workspace/ovl/base.txt\"}");
    char *body = b64field(m, msg_result(m), "content", NULL);
    cr_assert_str_eq(body, "changed\n", "file calls see the overlay copy");
    free(body);
    msg_free(m);
    m = call(&p, 4, "write_file", "{\"path\":\"/workspace/ro/y\",\"content\":\"eA==\"}");
    cr_assert_eq(msg_code(m), -32002, "read-only mount: %s", m->text);
    msg_free(m);
    m = call(&p, 5, "write_file", "{\"path\":\"/workspace/mem/secret.txt\",\"content\":\"eA==\"}");
    cr_assert_eq(msg_code(m), -32002, "VFS block rule: %s", m->text);
    cr_assert(strstr(msg_errmsg(m), "blocked"), "%s", m->text);
    msg_free(m);
    m = call(&p, 6, "write_file", "{\"path\":\"/workspace/mem/fine.txt\",\"content\":\"eA==\"}");
    cr_assert_eq(msg_code(m), 0, "%s", m->text);
    msg_free(m);
    cr_assert_eq(run(&p, 7, "\"cat /workspace/mem/fine.txt\"", &out, NULL), 0);
    cr_assert_str_eq(out, "x");
    free(out);
    peer_stop(&p);
    rm_tree(host);
    rm_tree(ovl);
}

Test(local_protocol, launch_entrypoint_logs_output, .timeout = 20)
{
    peer p;
    start_vm(&p, "{\"image\":\"alpine:latest\",\"launch_entrypoint\":true,\"image_config\":{\"entrypoint\":[\"/bin/sh\",\"-c\"],"
                 "\"cmd\":[\"echo entry-$MODE; sleep 30\"],\"env\":{\"MODE\":\"on\"}}}");
    int found = 0;
    for (int i = 0; i < 50 && !found; i++) {
        msg *m = call(&p, 10 + i, "log", "{}");
        char *log = b64field(m, msg_result(m), "content", NULL);
        found = strstr(log, "entry-on") != NULL;
        free(log);
        msg_free(m);
        if (!found) usleep(100000);
    }
    cr_assert(found, "entrypoint output lands in the VM log");
    msg *m = call(&p, 90, "close", "{\"timeout_seconds\":1}");
    cr_assert_eq(msg_code(m), 0);
    msg_free(m);
    end_input(&p);
    cr_assert_eq(peer_wait(&p, 5000), 0, "close stops the entrypoint and exits");
    peer_stop(&p);
}

/* A close sent right after create reaches the entrypoint while it is still
 * being set up (before its setsid, or inside bubblewrap's start): SIGTERM
 * must still end it, not the SIGKILL at the end of the grace. */
Test(local_protocol, a_close_right_after_launch_stops_the_entrypoint_before_the_grace, .timeout = 60)
{
    for (int i = 0; i < 10; i++) {
        peer p;
        start_vm(&p, "{\"image\":\"alpine:latest\",\"launch_entrypoint\":true,\"resources\":{\"cpus\":1,\"memory_mb\":512,"
                     "\"disk_size_mb\":5120,\"timeout_seconds\":300},\"image_config\":{\"entrypoint\":[\"sleep\",\"30\"]}}");
        int64_t t0 = now_ms();
        msg *m = call(&p, 90, "close", "{\"timeout_seconds\":0}");
        cr_assert_eq(msg_code(m), 0, "%s", m->text);
        msg_free(m);
        int64_t spent = now_ms() - t0;
        cr_assert_lt(spent, 1500, "round %d: close took %lld ms: the entrypoint outlived SIGTERM", i, (long long)spent);
        end_input(&p);
        cr_assert_eq(peer_wait(&p, 5000), 0);
        peer_stop(&p);
    }
}

Test(local_protocol, file_events_for_mounts, .timeout = 20)
{
    E2E_NEEDS("cmd_file_events");
    peer p;
    start_vm(&p, "{\"image\":\"alpine:latest\",\"vfs\":{\"workspace\":\"/workspace\",\"mounts\":"
                 "{\"/workspace/mem\":{\"type\":\"memory\"}},\"interception\":{\"emit_events\":true}}}");
    cr_assert_eq(run(&p, 2, "\"mkdir /workspace/mem/d\"", NULL, NULL), 0);
    sendl(&p, "{\"jsonrpc\":\"2.0\",\"method\":\"exec\",\"params\":{\"command\":"
              "\"printf hello > /workspace/mem/d/a.txt; echo x > /workspace/outside.txt\"},\"id\":3}");
    int write_seen = 0, outside_seen = 0;
    for (int64_t end = now_ms() + 3000; now_ms() < end && !write_seen;) {
        msg *m = recv_msg(&p, 500);
        if (!m) continue;
        if (msg_method(m) && !strcmp(msg_method(m), "event")) {
            const jnode *f = jd_get(&m->d, msg_params(m), "file");
            cr_assert_not_null(f, "%s", m->text);
            cr_assert_str_eq(jd_str(&m->d, msg_params(m), "type", ""), "file");
            cr_assert_gt(jd_int(&m->d, msg_params(m), "timestamp", 0), 1600000000000LL, "milliseconds");
            const char *path = jd_str(&m->d, f, "path", "");
            if (strstr(path, "outside")) outside_seen = 1;
            if (!strcmp(path, "/workspace/mem/d/a.txt") && !strcmp(jd_str(&m->d, f, "op", ""), "write")) {
                cr_assert_eq(jd_int(&m->d, f, "size", -1), 5, "%s", m->text);
                write_seen = 1;
            }
        }
        msg_free(m);
    }
    cr_assert(write_seen, "a write event for a file under the mount");
    cr_assert_not(outside_seen, "no events outside the mounts");
    peer_stop(&p);
}

/* ---- behaviour that matches upstream (issue 13) ----------------------------- */

/* One command in a fresh VM: its stdout (malloc'd); *code gets the exit code. */
static char *run_in(const char *create, const char *cmd_json, int *code)
{
    peer p;
    start_vm(&p, create);
    char *out = NULL;
    int c = run(&p, 2, cmd_json, &out, NULL);
    if (code) *code = c;
    peer_stop(&p);
    return out;
}

Test(local_compat, working_dir_defaults_like_upstream, .timeout = 30)
{
    char *out = run_in(NULL, "\"pwd\"", NULL);
    cr_assert_str_eq(out, "/\n", "no workspace: commands start in /");
    free(out);
#define WS "\"vfs\":{\"workspace\":\"/ws\",\"mounts\":{\"/ws/m\":{\"type\":\"memory\"}}}"
    out = run_in("{\"image\":\"alpine:latest\"," WS "}", "\"pwd\"", NULL);
    cr_assert_str_eq(out, "/ws\n", "the configured workspace");
    free(out);
    out = run_in("{\"image\":\"alpine:latest\"," WS ",\"image_config\":{\"working_dir\":\"/tmp\"}}", "\"pwd\"", NULL);
    cr_assert_str_eq(out, "/tmp\n", "the image's working dir comes before the workspace");
    free(out);
    peer p;
    start_vm(&p, "{\"image\":\"alpine:latest\"," WS "}");
#undef WS
    msg *m = call(&p, 2, "exec", "{\"command\":\"pwd\",\"working_dir\":\"/var\"}");
    cr_assert_eq(msg_code(m), 0, "%s", m->text);
    out = b64field(m, msg_result(m), "stdout", NULL);
    cr_assert_str_eq(out, "/var\n", "the request's working dir first");
    free(out);
    msg_free(m);
    peer_stop(&p);
}

Test(local_compat, etc_hosts_layout, .timeout = 20)
{
    peer p;
    start_vm(&p, "{\"image\":\"alpine:latest\",\"network\":{\"hostname\":\"boxy\",\"add_hosts\":["
                 "{\"host\":\"db.internal\",\"ip\":\"10.1.2.3\"},{\"host\":\"v6\",\"ip\":\"fd00::1\"}]}}");
    need_isolation(&p);
    char *out;
    cr_assert_eq(run(&p, 2, "\"cat /etc/hosts\"", &out, NULL), 0);
    cr_assert_str_eq(out, "127.0.0.1 localhost localhost.localdomain boxy\n10.1.2.3 db.internal\nfd00::1 v6\n"
                          "::1 localhost ip6-localhost ip6-loopback\nff02::1 ip6-allnodes\nff02::2 ip6-allrouters\n");
    free(out);
    peer_stop(&p);
    /* without a hostname the VM id is the name */
    const char *id = start_vm(&p, NULL);
    char want[128];
    snprintf(want, sizeof want, "127.0.0.1 localhost localhost.localdomain %s\n", id);
    need_isolation(&p);
    cr_assert_eq(run(&p, 2, "\"head -n1 /etc/hosts\"", &out, NULL), 0);
    cr_assert_str_eq(out, want);
    free(out);
    peer_stop(&p);
}

Test(local_compat, resolv_conf_lists_dns_servers, .timeout = 20)
{
    peer p;
    start_vm(&p, NULL);
    need_isolation(&p);
    char *out;
    cr_assert_eq(run(&p, 2, "\"cat /etc/resolv.conf\"", &out, NULL), 0);
    cr_assert_str_eq(out, "nameserver 8.8.8.8\nnameserver 8.8.4.4\n", "upstream's default servers");
    free(out);
    peer_stop(&p);
    start_vm(&p, "{\"image\":\"alpine:latest\",\"network\":{\"dns_servers\":[\"1.1.1.1\",\"9.9.9.9\"]}}");
    cr_assert_eq(run(&p, 2, "\"cat /etc/resolv.conf\"", &out, NULL), 0);
    cr_assert_str_eq(out, "nameserver 1.1.1.1\nnameserver 9.9.9.9\n");
    free(out);
    peer_stop(&p);
    peer_start(&p);
    msg *m = call(&p, 1, "create", "{\"image\":\"alpine:latest\",\"network\":{\"dns_servers\":[\"1.1.1.1 evil\"]}}");
    cr_assert_eq(msg_code(m), -32602, "a server with a space would break the file: %s", m->text);
    msg_free(m);
    peer_stop(&p);
}

Test(local_compat, no_network_lists_only_lo, .timeout = 20)
{
    peer p;
    start_vm(&p, "{\"image\":\"alpine:latest\",\"network\":{\"no_network\":true}}");
    need_isolation(&p);
    char *out;
    cr_assert_eq(run(&p, 2, "\"ls /sys/class/net; cat /sys/class/net/lo/mtu >/dev/null && echo lo-readable\"", &out, NULL), 0);
    cr_assert_str_eq(out, "lo\nlo-readable\n");
    free(out);
    peer_stop(&p);
    start_vm(&p, NULL);
    cr_assert_eq(run(&p, 2, "\"ls /sys/class/net\"", &out, NULL), 0);
    cr_assert(strstr(out, "lo\n"), "with a network the host's devices, lo among them: %s", out);
    free(out);
    peer_stop(&p);
}

Test(local_compat, files_and_exec_see_one_filesystem, .timeout = 30)
{
    peer p;
    start_vm(&p, "{\"image\":\"alpine:latest\",\"network\":{\"hostname\":\"onefs\"}}");
    need_isolation(&p);
    char *out;
    cr_assert_eq(run(&p, 2, "\"cat /etc/os-release\"", &out, NULL), 0);
    msg *m = call(&p, 3, "read_file", "{\"path\":\"/etc/os-release\"}");
    cr_assert_eq(msg_code(m), 0, "a symlink into /usr (on most hosts) is followed: %s", m->text);
    char *body = b64field(m, msg_result(m), "content", NULL);
    cr_assert_str_eq(body, out, "read_file and cat agree");
    free(body); free(out);
    msg_free(m);
    /* list_files and ls agree on a system dir and on /etc */
    const char *dirs[] = {"/usr/bin", "/etc", "/bin"};
    for (int i = 0; i < 3; i++) {
        char cmd[128], params[128];
        snprintf(cmd, sizeof cmd, "\"ls -A %s/ | wc -l\"", dirs[i]);
        cr_assert_eq(run(&p, 10 + i, cmd, &out, NULL), 0);
        snprintf(params, sizeof params, "{\"path\":\"%s\"}", dirs[i]);
        m = call(&p, 20 + i, "list_files", params);
        cr_assert_eq(msg_code(m), 0, "%s: %s", dirs[i], m->text);
        const jnode *files = jd_get(&m->d, msg_result(m), "files");
        cr_assert_eq((long)files->count, atol(out), "%s: list_files %zu entries, ls %s", dirs[i], (size_t)files->count, out);
        free(out);
        msg_free(m);
    }
    /* a link resolves inside the sandbox, never to the host's file */
    cr_assert_eq(run(&p, 30, "\"ln -s ../../../../../../../etc/hostname /tmp/up && ln -s /etc/hostname /tmp/abs\"", NULL, NULL), 0);
    const char *links[] = {"{\"path\":\"/tmp/up\"}", "{\"path\":\"/tmp/abs\"}"};
    for (int i = 0; i < 2; i++) {
        m = call(&p, 31 + i, "read_file", links[i]);
        body = b64field(m, msg_result(m), "content", NULL);
        cr_assert_str_eq(body, "onefs\n", "the VM's own /etc/hostname");
        free(body);
        msg_free(m);
    }
    /* written through the file calls, seen by commands (and back) */
    m = call(&p, 40, "write_file", "{\"path\":\"/etc/app.conf\",\"content\":\"eHl6\"}");
    cr_assert_eq(msg_code(m), 0, "/etc is the VM's own: %s", m->text);
    msg_free(m);
    cr_assert_eq(run(&p, 41, "\"cat /etc/app.conf\"", &out, NULL), 0);
    cr_assert_str_eq(out, "xyz");
    free(out);
    m = call(&p, 42, "write_file", "{\"path\":\"/usr/local/x\",\"content\":\"eA==\"}");
    cr_assert_eq(msg_code(m), -32002, "the host's system dirs are read-only: %s", m->text);
    msg_free(m);
    peer_stop(&p);
}

/* exec_tty of an interactive /bin/sh fed "exit 0": its exit code. */
static int tty_shell_exit(void)
{
    peer p;
    start_vm(&p, NULL);
    sendl(&p, "{\"jsonrpc\":\"2.0\",\"method\":\"exec_tty\",\"params\":{\"command\":\"/bin/sh\","
              "\"rows\":24,\"cols\":80},\"id\":2}");
    msg *m = recv_msg(&p, 10000);
    cr_assert(m && msg_method(m) && !strcmp(msg_method(m), "exec_tty.ready"), "%s", m ? m->text : "no answer");
    msg_free(m);
    char *in = b64("echo in-tty; exit 0\n"), line[256];
    snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"method\":\"exec_tty.stdin\",\"params\":{\"id\":2,\"data\":\"%s\"}}", in);
    free(in);
    sendl(&p, line);
    char *notes;
    m = until_id(&p, 2, 10000, &notes, NULL);
    int code = (int)jd_int(&m->d, msg_result(m), "exit_code", -1);
    cr_assert(strstr(notes, "in-tty"), "%s", notes);
    cr_assert_null(strstr(notes, "Cannot set tty"), "the shell has its terminal: %s", notes);
    free(notes);
    msg_free(m);
    peer_stop(&p);
    return code;
}

Test(local_compat, tty_shell_exit_zero, .timeout = 30)
{
    cr_assert_eq(tty_shell_exit(), 0, "dash under a TTY: exit 0 is 0");
}

Test(local_compat, tty_shell_exit_zero_without_bwrap, .timeout = 30)
{
    E2E_NEEDS("local_behaviour");   /* matchlock-local's fallback path */
    setenv("MATCHLOCK_LOCAL_NO_BWRAP", "1", 1);
    cr_assert_eq(tty_shell_exit(), 0, "the fallback path too");
}

/* Run cmd as user (image_config.user) in a fresh VM. */
static void user_vm(peer *p, const char *user)
{
    char params[256];
    snprintf(params, sizeof params, "{\"image\":\"alpine:latest\",\"image_config\":{\"user\":\"%s\"}}", user);
    start_vm(p, params);
}

Test(local_compat, users_really_unprivileged, .timeout = 30)
{
    E2E_NEEDS("isolation");
    peer p;
    char *out, *err;
    if (geteuid() != 0) {
        /* a switch that cannot drop privileges must not happen */
        user_vm(&p, "nobody");
        msg *m = call(&p, 2, "exec", "{\"command\":\"id -u\"}");
        cr_assert_neq(msg_code(m), 0, "not root: the user switch is refused: %s", m->text);
        cr_assert(strstr(msg_errmsg(m), "cannot run as user nobody"), "%s", m->text);
        msg_free(m);
        peer_stop(&p);
        return;
    }
    user_vm(&p, "nobody");
    cr_assert_neq(run(&p, 2, "\"id -u; id -g; grep CapEff /proc/self/status; touch /root/x\"", &out, &err), 0,
                  "nobody cannot write /root");
    cr_assert_str_eq(out, "65534\n65534\nCapEff:\t0000000000000000\n", "uid, gid, no capabilities");
    cr_assert(strstr(err, "Permission denied"), "%s", err);
    free(out); free(err);
    /* what it creates is not root's on the host */
    cr_assert_eq(run(&p, 3, "\"echo x > /tmp/made-by-nobody\"", NULL, NULL), 0);
    struct stat st;
    char path[512];
    snprintf(path, sizeof path, "%s/matchlock-local/vms", p.state);
    DIR *d = opendir(path);
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') snprintf(path + strlen(path), sizeof path - strlen(path), "/%s/root/tmp/made-by-nobody", e->d_name);
    closedir(d);
    cr_assert_eq(stat(path, &st), 0, "%s", path);
    cr_assert_eq(st.st_uid, 65534, "owned by nobody on the host too");
    /* an exec's user overrides the image's; a bare uid works */
    msg *m = call(&p, 5, "exec", "{\"command\":\"id -u; id -g; touch /root/y\",\"user\":\"4321\"}");
    cr_assert_eq(msg_code(m), 0, "%s", m->text);
    cr_assert_neq(jd_int(&m->d, msg_result(m), "exit_code", 0), 0);
    out = b64field(m, msg_result(m), "stdout", NULL);
    cr_assert_str_eq(out, "4321\n4321\n");
    free(out);
    msg_free(m);
    m = call(&p, 6, "exec", "{\"command\":\"id -u\",\"user\":\"no-such-user\"}");
    cr_assert_neq(msg_code(m), 0, "%s", m->text);
    cr_assert(strstr(msg_errmsg(m), "unable to find user no-such-user"), "%s", m->text);
    msg_free(m);
    peer_stop(&p);
    /* the same without bubblewrap */
    setenv("MATCHLOCK_LOCAL_NO_BWRAP", "1", 1);
    user_vm(&p, "nobody");
    cr_assert_neq(run(&p, 2, "\"id -u; touch /root/x\"", &out, NULL), 0);
    cr_assert_str_eq(out, "65534\n");
    free(out);
    peer_stop(&p);
}

/* ---- CLI ------------------------------------------------------------------ */

static int cli(const char *state, const char *args, char *out, size_t cap)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "HOME='%s' XDG_STATE_HOME='%s' '%s' %s 2>&1", state, state, e2e_server(), args);
    FILE *f = popen(cmd, "r");
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = '\0';
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* upstream's shape, and a version that says it is the local backend */
Test(local_cli, version_like_upstream, .timeout = 20)
{
    E2E_NEEDS("local_behaviour");
    char state[] = "/tmp/mlk-local-cli-XXXXXX", out[4096];
    cr_assert_not_null(mkdtemp(state));
    cr_assert_eq(cli(state, "version", out, sizeof out), 0);
    /* matchlock <version> (commit: <c>, built: <date>) */
    cr_assert(!strncmp(out, "matchlock ", 10) && strstr(out, e2e_is_local() ? "-local (commit: " : " (commit: ") &&
              strstr(out, ", built: ") && !strcmp(out + strlen(out) - 2, ")\n"), "%s", out);
    rm_tree(state);
}

/* upstream's texts; matchlock-local's volume is a directory (upstream's an
 * ext4 image file), which the test writes into */
Test(local_cli, volumes_like_upstream, .timeout = 20)
{
    E2E_NEEDS("local_behaviour");
    char state[] = "/tmp/mlk-local-cli-XXXXXX", out[4096];
    cr_assert_not_null(mkdtemp(state));
    cr_assert_eq(cli(state, "volume ls --json", out, sizeof out), 0);
    cr_assert_str_eq(out, "[]\n");
    cr_assert_eq(cli(state, "volume ls", out, sizeof out), 0);
    cr_assert_str_eq(out, "NAME  SIZE\n");
    cr_assert_eq(cli(state, "volume create data1 --size 16 --json", out, sizeof out), 0, "%s", out);
    jdoc d;
    jd_init(&d);
    cr_assert_eq(jd_parse(&d, out, strlen(out)), 0, "%s", out);
    cr_assert_str_eq(jd_str(&d, jd_root(&d), "name", ""), "data1");
    cr_assert_str_eq(jd_str(&d, jd_root(&d), "size", ""), "16.0 MB", "upstream's display string");
    char path[512];
    snprintf(path, sizeof path, "%s/seed.txt", jd_str(&d, jd_root(&d), "path", ""));
    jd_free(&d);
    int local = e2e_is_local();     /* upstream's volume is an ext4 image, ours a directory */
    FILE *f = local ? fopen(path, "w") : NULL;
    if (local) {
        cr_assert_not_null(f, "the volume has a directory: %s", path);
        fputs("seed", f);
        fclose(f);
    }
    cr_assert_eq(cli(state, "volume create data1 --size 16 --json", out, sizeof out), 1);
    cr_assert_str_eq(out, "named volume already exists: data1\n");
    cr_assert_eq(cli(state, "volume create longer-name-here", out, sizeof out), 0);
    cr_assert_str_eq(out, "Created volume longer-name-here (10240 MB)\n", "upstream's default size");
    cr_assert_eq(cli(state, "volume create x --size 0", out, sizeof out), 1);
    cr_assert_str_eq(out, "create named volume: size must be > 0 MB\n");
    cr_assert_eq(cli(state, "volume ls", out, sizeof out), 0);
    cr_assert_str_eq(out, "NAME              SIZE\ndata1             16.0 MB\nlonger-name-here  10240.0 MB\n");
    cr_assert_eq(cli(state, "volume ls --json", out, sizeof out), 0);
    cr_assert(out[0] == '[' && strstr(out, "{\"name\":\"data1\",\"size\":\"16.0 MB\",\"path\":\""), "%s", out);
    /* cp copies the contents and refuses an existing destination */
    cr_assert_eq(cli(state, "volume cp data1 data2", out, sizeof out), 0, "%s", out);
    cr_assert_str_eq(out, "Copied volume data1 to data2\n");
    cr_assert_eq(cli(state, "volume cp data1 data2", out, sizeof out), 1);
    cr_assert_str_eq(out, "named volume already exists: data2\n");
    cr_assert_eq(cli(state, "volume cp nothing data3", out, sizeof out), 1);
    cr_assert_str_eq(out, "named volume not found: nothing\n");
    if (local) {
        snprintf(path, sizeof path, "%s/matchlock-local/volumes/data2/data/seed.txt", state);
        f = fopen(path, "r");
        cr_assert_not_null(f, "the copy holds the source's files");
        char buf[16] = "";
        if (fgets(buf, sizeof buf, f)) {}
        fclose(f);
        cr_assert_str_eq(buf, "seed");
    }
    cr_assert_eq(cli(state, "volume rm data1", out, sizeof out), 0, "%s", out);
    cr_assert_str_eq(out, "Removed volume data1\n");
    cr_assert_eq(cli(state, "volume rm data1", out, sizeof out), 1);
    cr_assert_str_eq(out, "named volume not found: data1\n");
    cr_assert_eq(cli(state, "volume create .bad", out, sizeof out), 1);
    cr_assert(strstr(out, "invalid volume name: \".bad\""), "%s", out);
    rm_tree(state);
}

Test(local_cli, rm_like_upstream, .timeout = 30)
{
    peer p;
    char id[32], id2[32], dir[512], out[1024], state[256], args[64];
    snprintf(id, sizeof id, "%s", start_vm(&p, NULL));
    snprintf(state, sizeof state, "%s", p.state);
    cr_assert_eq(cli(state, "rm", out, sizeof out), 1);
    cr_assert_str_eq(out, "VM ID required (or use --stopped)\n");
    snprintf(args, sizeof args, "rm %s", id);
    cr_assert_eq(cli(state, args, out, sizeof out), 1, "a running VM stays: %s", out);
    snprintf(dir, sizeof dir, "VM is running %s\n", id);
    cr_assert_str_eq(out, dir);
    msg *m = call(&p, 2, "close", "{\"timeout_seconds\":1}");
    msg_free(m);
    end_input(&p);
    cr_assert_eq(peer_wait(&p, 5000), 0);
    e2e_vm_dir(dir, sizeof dir, state, id);
    cr_assert_eq(access(dir, F_OK), 0, "close keeps the VM directory");
    cr_assert_eq(cli(state, args, out, sizeof out), 0, "%s", out);
    char want[64];
    snprintf(want, sizeof want, "Removed %s\n", id);
    cr_assert_str_eq(out, want);
    cr_assert_neq(access(dir, F_OK), 0, "rm deletes it");
    cr_assert_eq(cli(state, args, out, sizeof out), 1, "unknown VM");
    snprintf(want, sizeof want, "VM %s not found\n", id);
    cr_assert_str_eq(out, want);
    /* --stopped: every stopped VM goes, running ones stay */
    peer a, b;
    start_vm(&a, NULL);
    snprintf(state, sizeof state, "%s", a.state);
    peer_start_at(&b, state);
    m = call(&b, 1, "create", "{\"image\":\"alpine:latest\"}");
    snprintf(id2, sizeof id2, "%s", jd_str(&m->d, msg_result(m), "id", ""));
    msg_free(m);
    m = call(&b, 2, "close", "{\"timeout_seconds\":1}");
    msg_free(m);
    end_input(&b);
    cr_assert_eq(peer_wait(&b, 5000), 0);
    cr_assert_eq(cli(state, "rm --stopped", out, sizeof out), 0, "%s", out);
    snprintf(want, sizeof want, "Removed %s\n", id2);
    cr_assert_str_eq(out, want, "only the stopped VM");
    cr_assert_eq(cli(state, "rm --stopped", out, sizeof out), 0);
    cr_assert_str_eq(out, "");
    peer_stop(&b);
    peer_stop(&a);
    peer_stop(&p);
}

/* ---- images -------------------------------------------------------------------- */

/* Build a docker-save tarball at dir/image.tar from Debian's busybox-static:
 * layer 1 the busybox root (users root, nobody, app 1234 in group extra),
 * layer 2 (gzip) a whiteout and an opaque directory; the config sets user,
 * working dir, env, entrypoint and cmd. */
static void build_busybox_image(const char *dir)
{
    struct stat st;
    cr_assert_eq(stat("/bin/busybox", &st), 0,
                 "busybox-static is missing (/bin/busybox): scripts/deps.sh installs it (local/apt-packages.txt)");
    char *script = NULL;
    cr_assert_geq(asprintf(&script,
        "set -e; cd '%s'; mkdir -p l1/bin l1/etc l1/home/app l1/root l1/gone l2/etc l2/gone out/l1 out/l2\n"
        "cp /bin/busybox l1/bin/; for t in sh ls cat id touch echo pwd test; do ln -s busybox l1/bin/$t; done\n"
        "chmod 700 l1/root\n"
        "printf 'root:x:0:0:root:/root:/bin/sh\\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\\n"
        "app:x:1234:1234:app:/home/app:/bin/sh\\n' > l1/etc/passwd\n"
        "printf 'root:x:0:\\nnogroup:x:65534:\\napp:x:1234:\\nextra:x:2000:app\\n' > l1/etc/group\n"
        "printf 'ID=mlk-busybox\\nNAME=\"matchlock test busybox\"\\n' > l1/etc/os-release\n"
        "echo old > l1/etc/removed-me; echo lower > l1/gone/a\n"
        "touch l2/etc/.wh.removed-me l2/gone/.wh..wh..opq; echo upper > l2/gone/b\n"
        "tar -cf out/l1/layer.tar -C l1 . && tar -czf out/l2/layer.tar -C l2 .\n"
        "d1=$(sha256sum out/l1/layer.tar | cut -d' ' -f1); d2=$(gzip -dc out/l2/layer.tar | sha256sum | cut -d' ' -f1)\n"
        "printf '{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"User\":\"app\",\"WorkingDir\":\"/home/app\","
        "\"Env\":[\"PATH=/bin\",\"IMG_VAR=from-image\"],\"Entrypoint\":[\"/bin/sh\",\"-c\"],\"Cmd\":[\"echo from-entry; sleep 30\"]},"
        "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:%%s\",\"sha256:%%s\"]}}' $d1 $d2 > out/config.json\n"
        "echo '[{\"Config\":\"config.json\",\"RepoTags\":[\"mlk-busybox:test\"],\"Layers\":[\"l1/layer.tar\",\"l2/layer.tar\"]}]'"
        " > out/manifest.json\n"
        "cd out && tar -cf ../image.tar manifest.json config.json l1 l2\n", dir), 0);
    cr_assert_eq(system(script), 0, "building the test image failed");
    free(script);
}

Test(local_images, import_ls_run_rm, .timeout = 60)
{
    E2E_NEEDS("local_image_import");
    char state[] = "/tmp/mlk-local-img-XXXXXX", work[] = "/tmp/mlk-local-imgsrc-XXXXXX", out[4096], args[512];
    cr_assert_not_null(mkdtemp(state));
    cr_assert_not_null(mkdtemp(work));
    build_busybox_image(work);
    snprintf(args, sizeof args, "image import mlk-busybox:test < '%s/image.tar'", work);
    cr_assert_eq(cli(state, args, out, sizeof out), 0, "%s", out);
    const char *want = "Importing mlk-busybox:test from stdin...\nImported: mlk-busybox:test\nLayers: 2\nSize: ";
    cr_assert(!strncmp(out, want, strlen(want)) &&
              strstr(out, " MB\n"), "upstream's texts: %s", out);
    cr_assert_eq(cli(state, "image ls", out, sizeof out), 0);
    want = "TAG               SOURCE  SIZE    CREATED\nmlk-busybox:test  import  ";
    cr_assert(!strncmp(out, want, strlen(want)), "%s", out);

    /* a sandbox on the image: its files, users and config */
    peer p;
    peer_start_at(&p, state);
    msg *m = call(&p, 1, "create", "{\"image\":\"mlk-busybox:test\"}");
    cr_assert_eq(msg_code(m), 0, "%s", m->text);
    msg_free(m);
    need_isolation(&p);
    char *o, *e;
    cr_assert_neq(run(&p, 2, "\"id -u; id -G; pwd; echo $PATH $IMG_VAR; cat /etc/os-release; ls /gone; "
                             "test -e /etc/removed-me || echo whiteout-honoured; ls /usr >/dev/null 2>&1 || echo no-host-usr; "
                             "touch /root/x\"", &o, &e), 0, "user app cannot write /root");
    cr_assert_str_eq(o, "1234\n1234 2000\n/home/app\n/bin from-image\nID=mlk-busybox\nNAME=\"matchlock test busybox\"\n"
                        "b\nwhiteout-honoured\nno-host-usr\n");
    cr_assert(strstr(e, "Permission denied"), "%s", e);
    free(o); free(e);
    m = call(&p, 3, "read_file", "{\"path\":\"/etc/os-release\"}");
    cr_assert_eq(msg_code(m), 0, "%s", m->text);
    o = b64field(m, msg_result(m), "content", NULL);
    cr_assert_str_eq(o, "ID=mlk-busybox\nNAME=\"matchlock test busybox\"\n", "the file calls see the image too");
    free(o);
    msg_free(m);
    /* the request's image_config wins over the image's, field by field */
    m = call(&p, 4, "exec", "{\"command\":\"id -u; pwd\",\"user\":\"root\",\"working_dir\":\"/tmp\"}");
    o = b64field(m, msg_result(m), "stdout", NULL);
    cr_assert_str_eq(o, "0\n/tmp\n");
    free(o);
    msg_free(m);
    peer_stop(&p);

    /* the image's entrypoint and cmd with launch_entrypoint */
    peer_start_at(&p, state);
    m = call(&p, 1, "create", "{\"image\":\"mlk-busybox:test\",\"launch_entrypoint\":true}");
    msg_free(m);
    int found = 0;
    for (int i = 0; i < 50 && !found; i++) {
        m = call(&p, 10 + i, "log", "{}");
        char *log = b64field(m, msg_result(m), "content", NULL);
        found = strstr(log, "from-entry") != NULL;
        free(log);
        msg_free(m);
        if (!found) usleep(100000);
    }
    cr_assert(found, "the image's entrypoint + cmd ran");
    peer_stop(&p);

    cr_assert_eq(cli(state, "image rm mlk-busybox:test", out, sizeof out), 0, "%s", out);
    cr_assert_str_eq(out, "Removed mlk-busybox:test\n");
    cr_assert_eq(cli(state, "image rm mlk-busybox:test", out, sizeof out), 1);
    cr_assert_str_eq(out, "image not found: \"mlk-busybox:test\"\n");
    cr_assert_eq(cli(state, "image ls", out, sizeof out), 0);
    cr_assert_str_eq(out, "TAG  SOURCE  SIZE  CREATED\n");
    rm_tree(state);
    rm_tree(work);
}

Test(local_images, not_imported_falls_back_and_says_so_once, .timeout = 30)
{
    E2E_NEEDS("local_image_import");
    char errlog[] = "/tmp/mlk-local-stderr-XXXXXX";
    int fd = mkstemp(errlog);
    cr_assert_geq(fd, 0);
    close(fd);
    peer_stderr_to = errlog;
    peer p;
    start_vm(&p, "{\"image\":\"never-imported:1\"}");
    need_isolation(&p);
    char *out;
    cr_assert_eq(run(&p, 2, "\"test -x /usr/bin/env && echo host-usr\"", &out, NULL), 0);
    cr_assert_str_eq(out, "host-usr\n", "the host's root stands in");
    free(out);
    msg *m = call(&p, 3, "create", "{\"image\":\"never-imported:1\"}");
    msg_free(m);
    peer_stop(&p);
    FILE *f = fopen(errlog, "r");
    char buf[4096] = "";
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    unlink(errlog);
    const char *said = "image never-imported:1 is not imported", *hit = strstr(buf, said);
    cr_assert(hit, "said on stderr: %s", buf);
    cr_assert_null(strstr(hit + strlen(said), said), "once: %s", buf);
}

Test(local_images, hostile_layers_stay_inside, .timeout = 30)
{
    E2E_NEEDS("local_image_import");
    char state[] = "/tmp/mlk-local-img-XXXXXX", work[] = "/tmp/mlk-local-imgsrc-XXXXXX", target[] = "/tmp/mlk-local-escape-XXXXXX";
    char out[4096], args[512], *script = NULL;
    cr_assert_not_null(mkdtemp(state));
    cr_assert_not_null(mkdtemp(work));
    cr_assert_not_null(mkdtemp(target));
    /* layer 1 plants a symlink to a host dir, layer 2 writes through it;
     * a third tarball holds a "../" member */
    cr_assert_geq(asprintf(&script,
        "set -e; cd '%s'; mkdir -p a b c out/l1 out/l2; ln -s '%s' a/esc; mkdir b/esc; echo pwned > b/esc/pwned\n"
        "echo x > c/evil\n"
        "tar -cf out/l1/layer.tar -C a esc && tar -cf out/l2/layer.tar -C b esc/pwned\n"
        "echo '{\"config\":{}}' > out/config.json\n"
        "echo '[{\"Config\":\"config.json\",\"Layers\":[\"l1/layer.tar\",\"l2/layer.tar\"]}]' > out/manifest.json\n"
        "(cd out && tar -cf ../link.tar manifest.json config.json l1 l2)\n"
        "tar -P -cf out/l1/layer.tar --transform 's,^evil,../../evil,' -C c evil\n"
        "echo '[{\"Config\":\"config.json\",\"Layers\":[\"l1/layer.tar\"]}]' > out/manifest.json\n"
        "(cd out && tar -cf ../dotdot.tar manifest.json config.json l1)\n", work, target), 0);
    cr_assert_eq(system(script), 0);
    free(script);
    snprintf(args, sizeof args, "image import hostile:1 < '%s/link.tar'", work);
    cli(state, args, out, sizeof out);
    char path[600];
    snprintf(path, sizeof path, "%s/pwned", target);
    cr_assert_neq(access(path, F_OK), 0, "a symlink from an earlier layer is resolved inside the image: %s", out);
    snprintf(args, sizeof args, "image import hostile:2 < '%s/dotdot.tar'", work);
    cr_assert_eq(cli(state, args, out, sizeof out), 1);
    cr_assert(strstr(out, "leaves the archive"), "%s", out);
    snprintf(args, sizeof args, "image import broken:1 < /dev/null");
    cr_assert_eq(cli(state, args, out, sizeof out), 1, "an empty stdin is not an image");
    cr_assert(strstr(out, "import image: "), "%s", out);
    cr_assert_eq(cli(state, "image ls", out, sizeof out), 0);
    cr_assert(!strstr(out, "hostile:2") && !strstr(out, "broken:1"), "failed imports leave nothing: %s", out);
    rm_tree(state);
    rm_tree(work);
    rm_tree(target);
}

/* matchlock-local reads interception rules by the contract's table
 * (core/contract.c): a key the client would never send, or a value of the
 * wrong type, is refused by name; what the builder renders is accepted.
 * Beyond upstream, whose server ignores keys it does not know. */
Test(local_protocol, interception_rules_follow_the_contract, .timeout = 30)
{
    E2E_NEEDS("local_behaviour");   /* upstream ignores keys it does not know */
    peer p;
    peer_start(&p);
    msg *m = call(&p, 1, "create", "{\"image\":\"alpine\",\"network\":{\"intercept\":true,\"interception\":"
                                   "{\"rules\":[{\"name\":\"r\",\"hots\":[\"a.com\"],\"action\":\"block\"}]}}}");
    cr_assert_eq(msg_code(m), -32602, "%s", m->text);
    cr_assert(strstr(msg_errmsg(m), "unknown key \"hots\""), "%s", m->text);
    msg_free(m);
    m = call(&p, 2, "create", "{\"image\":\"alpine\",\"vfs\":{\"workspace\":\"/workspace\",\"mounts\":"
                              "{\"/workspace\":{\"type\":\"memory\"}},\"interception\":{\"rules\":"
                              "[{\"name\":\"v\",\"hosts\":[\"a.com\"],\"action\":\"block\"}]}}}");
    cr_assert_eq(msg_code(m), -32602, "%s", m->text);
    cr_assert(strstr(msg_errmsg(m), "unknown key \"hosts\""), "%s", m->text);
    msg_free(m);
    m = call(&p, 3, "create", "{\"image\":\"alpine\",\"network\":{\"intercept\":true,\"interception\":"
                              "{\"rules\":[{\"name\":\"r\",\"set_headers\":[\"a\"]}]}}}");
    cr_assert_eq(msg_code(m), -32602, "%s", m->text);
    cr_assert(strstr(msg_errmsg(m), "set_headers: expected a map of strings to strings"), "%s", m->text);
    msg_free(m);

    /* every static key of the contract, as the builder renders it */
    mlk_sandbox *sb = mlk_sandbox_new("alpine");
    char cfg[] = "{\"rules\":[{\"name\":\"s\",\"phase\":\"before\",\"hosts\":[\"a.com\"],\"methods\":[\"GET\"],"
                      "\"path\":\"/x\",\"action\":\"mutate\",\"timeout_ms\":5,\"set_headers\":{\"A\":\"1\"},"
                      "\"delete_headers\":[\"B\"],\"set_query\":{\"q\":\"1\"},\"delete_query\":[\"r\"],"
                      "\"rewrite_path\":\"/y\",\"set_response_headers\":{\"C\":\"2\"},"
                 "\"delete_response_headers\":[\"D\"],\"body_replacements\":[{\"find\":\"a\",\"replace\":\"b\"}]}]}";
    jdoc d;
    jd_init(&d);
    char *mp = NULL;
    size_t len = 0;
    cr_assert_eq(jd_parse(&d, cfg, strlen(cfg)), 0);
    cr_assert_eq(json_to_mp_buf(&d, jd_root(&d), &mp, &len), 0);
    cr_assert_eq(mlk_sandbox_set_interception(sb, MLK_INTERCEPT_NETWORK, mp, len, NULL, NULL, 0), 0);
    char *json = NULL, *why = NULL;
    size_t jl = 0;
    cr_assert_eq(mlk_sandbox_params_json(sb, 0, &json, &jl, &why), 0, "%s", why ? why : "");
    m = call(&p, 4, "create", json);
    cr_assert_eq(msg_code(m), 0, "%s\nparams: %s", m->text, json);
    msg_free(m);
    mlk_free(json);
    free(mp);
    jd_free(&d);
    mlk_sandbox_free(sb);
    peer_stop(&p);
}

/* ---- the shared vectors' create params -------------------------------------- */

/* The raw text of the object after "key": in a JSON line (a copy), or NULL. */
static char *raw_object(const char *line, const char *key)
{
    const char *p = strstr(line, key);
    if (!p || !(p = strchr(p + strlen(key), '{'))) return NULL;
    int depth = 0, in_str = 0;
    for (const char *q = p; *q; q++) {
        if (in_str) {
            if (*q == '\\' && q[1]) q++;
            else if (*q == '"') in_str = 0;
        } else if (*q == '"') {
            in_str = 1;
        } else if (*q == '{' || *q == '[') {
            depth++;
        } else if ((*q == '}' || *q == ']') && --depth == 0) {
            return strndup(p, (size_t)(q - p + 1));
        }
    }
    return NULL;
}

/* What the client sends is what matchlock-local reads: the params of every
 * accepted case of tests/vectors/create.jsonl pass its parser.  Failing to
 * lay a VM out (a host path this machine lacks) is not a parse failure;
 * -32602 (Invalid params) is. */
Test(local_vectors, every_create_params_is_accepted, .timeout = 60)
{
    E2E_NEEDS("local_behaviour");
    const char *dir = getenv("MLK_VECTORS_DIR");
    char path[512];
    snprintf(path, sizeof path, "%s/create.jsonl", dir && *dir ? dir : MLK_SOURCE_DIR "/tests/vectors");
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "cannot read %s", path);
    char *line = NULL;
    size_t cap = 0;
    int cases = 0;
    while (getline(&line, &cap, f) > 0) {
        char *params = raw_object(line, "\"create_params\":");
        if (!params) continue;   /* a case the client refuses */
        char name[128] = "?";
        const char *n = strstr(line, "\"name\":\"");
        if (n) sscanf(n + 8, "%127[^\"]", name);
        peer p;
        peer_start(&p);
        msg *m = call(&p, 1, "create", params);
        cr_expect_neq(msg_code(m), MLK_RPC_INVALID_PARAMS, "%s: matchlock-local refuses the client's params %s: %s",
                      name, params, m->text);
        msg_free(m);
        msg_free(call(&p, 2, "close", "{\"timeout_seconds\":1}"));
        peer_stop(&p);
        free(params);
        cases++;
    }
    free(line);
    fclose(f);
    cr_assert_gt(cases, 20, "only %d accepted cases in %s", cases, path);
}
