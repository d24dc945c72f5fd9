/* Hooks against scripted peers: the test plays the server's side of the
 * network-hook socket itself, and shell peers answer the RPC calls. */
#include <criterion/criterion.h>
#include <errno.h>
#include <msgpack.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "matchlock.h"

static char logfile[256];

/* Answers create with an id, write/read/list/exec with canned results, and
 * logs every line to $LOG. */
#define PEER                                                                                        \
    "while IFS= read -r line; do printf '%s\\n' \"$line\" >> \"$LOG\"; "                          \
    "id=$(printf '%s' \"$line\" | sed -n 's/.*\"method\":\"[a-z_]*\",\"id\":\\([0-9]*\\).*/\\1/p'); " \
    "[ -n \"$id\" ] || continue; "                                                                  \
    "case \"$line\" in "                                                                            \
    "*'\"create\"'*) " CREATE_ANSWER " ;; "                                                         \
    "*'\"read_file\"'*) printf '{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"content\":\"aGk=\"}}\\n' \"$id\" ;; " \
    "*'\"exec\"'*) printf '{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"exit_code\":0,\"stdout\":\"b2s=\",\"stderr\":\"\",\"duration_ms\":1}}\\n' \"$id\" ;; " \
    "*) printf '{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{}}\\n' \"$id\" ;; "                      \
    "esac; done"
#define CREATE_ANSWER "printf '{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"id\":\"vm-hooks\"}}\\n' \"$id\""

static mlk_client *peer_client(const char *script)
{
    /* a fresh file per client: pids are reused, and an old log would mislead */
    snprintf(logfile, sizeof logfile, "/tmp/mlk-hooks-XXXXXX");
    int lfd = mkstemp(logfile);
    cr_assert_geq(lfd, 0);
    close(lfd);
    /* the script is the binary, not a launcher: network hooks refuse a
     * launcher (the server might run elsewhere) */
    char bin[300];
    snprintf(bin, sizeof bin, "%s.sh", logfile);
    FILE *f = fopen(bin, "w");
    cr_assert_not_null(f);
    fprintf(f, "#!/bin/sh\n%s\n", script);
    fclose(f);
    chmod(bin, 0700);
    mlk_config *cfg = mlk_config_new();
    mlk_config_set_binary(cfg, bin);
    mlk_config_set_env(cfg, "LOG", logfile);
    mlk_client *c = NULL;
    cr_assert_eq(mlk_client_new(&c, cfg, NULL), 0);
    mlk_config_free(cfg);
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

/* msgpack map from alternating key/value C strings (NULL value = skip). */
static char *mp_strmap(size_t *len, int n, const char *const *kv)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, (size_t)n);
    for (int i = 0; i < n; i++) {
        msgpack_pack_str_with_body(&pk, kv[2 * i], strlen(kv[2 * i]));
        msgpack_pack_str_with_body(&pk, kv[2 * i + 1], strlen(kv[2 * i + 1]));
    }
    *len = sb.size;
    return sb.data;
}

/* The value of a string key in a msgpack map (copied), or NULL. */
static char *mp_field(const char *mp, size_t len, const char *key)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    char *out = NULL;
    if (msgpack_unpack_next(&u, mp, len, NULL) == MSGPACK_UNPACK_SUCCESS && u.data.type == MSGPACK_OBJECT_MAP) {
        for (uint32_t i = 0; i < u.data.via.map.size; i++) {
            msgpack_object *k = &u.data.via.map.ptr[i].key, *v = &u.data.via.map.ptr[i].val;
            if (k->via.str.size == strlen(key) && !memcmp(k->via.str.ptr, key, k->via.str.size)) {
                if (v->type == MSGPACK_OBJECT_STR) out = strndup(v->via.str.ptr, v->via.str.size);
                else if (v->type == MSGPACK_OBJECT_BIN) out = strndup(v->via.bin.ptr, v->via.bin.size);
                else if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
                    out = malloc(32);
                    snprintf(out, 32, "%llu", (unsigned long long)v->via.u64);
                }
            }
        }
    }
    msgpack_unpacked_destroy(&u);
    return out;
}

/* ---- network hooks --------------------------------------------------- */

enum { ANSWER_MUTATE, ANSWER_FAIL, ANSWER_NEVER, ANSWER_LATER, ANSWER_INVALID };

struct net_state {
    int mode;
    int calls;
    int reply_rc;
    char method[16], host[64];
    mlk_hook_call *kept;
};

static void net_hook(void *ud, mlk_client *c, int kind, mlk_hook_call *call, const char *req, size_t len)
{
    struct net_state *st = ud;
    st->calls++;
    char *m = mp_field(req, len, "method"), *h = mp_field(req, len, "host");
    snprintf(st->method, sizeof st->method, "%s", m ? m : "");
    snprintf(st->host, sizeof st->host, "%s", h ? h : "");
    free(m);
    free(h);
    cr_assert_eq(kind, MLK_HOOK_NETWORK);
    if (st->mode == ANSWER_FAIL) { mlk_hook_fail(call, "boom from the host"); return; }
    if (st->mode == ANSWER_NEVER || st->mode == ANSWER_LATER) { st->kept = call; return; }
    if (st->mode == ANSWER_INVALID) { /* {"actoin": "block"}: a C caller's typo */
        static const char typo[] = "\x81\xa6" "actoin" "\xa5" "block";
        st->reply_rc = mlk_hook_reply(call, typo, sizeof typo - 1);
        return;
    }
    /* {action: "allow", request: {headers: {X-A: ["1"]}}, response: {set_body_base64: bin "new"}} */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    msgpack_pack_str_with_body(&pk, "action", 6);
    msgpack_pack_str_with_body(&pk, "allow", 5);
    msgpack_pack_str_with_body(&pk, "request", 7);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "headers", 7);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "X-A", 3);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_str_with_body(&pk, "1", 1);
    msgpack_pack_str_with_body(&pk, "response", 8);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "set_body_base64", 15);
    msgpack_pack_bin_with_body(&pk, "new", 3);
    cr_assert_eq(mlk_hook_reply(call, sb.data, sb.size), 0);
    msgpack_sbuffer_destroy(&sb);
}

/* Create a client whose sandbox has one network hook; returns the socket path. */
static mlk_client *net_client(struct net_state *st, int64_t timeout_ms, char *sock, size_t socklen)
{
    mlk_client *c = peer_client(PEER);
    mlk_sandbox *sb = mlk_sandbox_new("alpine:latest");
    char tbuf[32];
    snprintf(tbuf, sizeof tbuf, "%lld", (long long)timeout_ms);
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, timeout_ms ? 3 : 2);
    msgpack_pack_str_with_body(&pk, "name", 4);
    msgpack_pack_str_with_body(&pk, "tap", 3);
    msgpack_pack_str_with_body(&pk, "hosts", 5);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_str_with_body(&pk, "api.example.com", 15);
    if (timeout_ms) {
        msgpack_pack_str_with_body(&pk, "timeout_ms", 10);
        msgpack_pack_uint64(&pk, (uint64_t)timeout_ms);
    }
    cr_assert_eq(mlk_sandbox_add_network_hook(sb, b.data, b.size, net_hook, st), 0);
    msgpack_sbuffer_destroy(&b);
    mlk_result *r = NULL;
    cr_assert_eq(mlk_create(c, sb, 10000, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    mlk_sandbox_free(sb);
    char *log = slurp(logfile);
    char *p = strstr(log, "\"callback_socket\":\"");
    cr_assert_not_null(p, "create params: %s", log);
    p += 19;
    char *e = strchr(p, '"');
    snprintf(sock, socklen, "%.*s", (int)(e - p), p);
    cr_assert(strstr(log, "\"callback_id\":\"network_hook_1\""), "%s", log);
    cr_assert(strstr(log, "\"intercept\":true"), "%s", log);
    free(log);
    return c;
}

struct exchange {
    const char *sock;
    const char *request;
    char reply[4096];
    int connect_errno;
    int done;
};

static void *do_exchange(void *p)
{
    struct exchange *x = p;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", x->sock);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        x->connect_errno = errno;
        close(fd);
        x->done = 1;
        return NULL;
    }
    ssize_t n = send(fd, x->request, strlen(x->request), MSG_NOSIGNAL); /* a refused peer is closed at once */
    (void)n;
    size_t got = 0;
    while (got < sizeof x->reply - 1) {
        ssize_t k = read(fd, x->reply + got, sizeof x->reply - 1 - got);
        if (k <= 0) break;
        got += (size_t)k;
    }
    x->reply[got] = '\0';
    close(fd);
    x->done = 1;
    return NULL;
}

static void exchange_while_dispatching(mlk_client *c, struct exchange *x)
{
    pthread_t th;
    pthread_create(&th, NULL, do_exchange, x);
    for (int i = 0; i < 1000 && !x->done; i++) {
        mlk_dispatch(c, 0);
        usleep(5000);
    }
    pthread_join(th, NULL);
}

static const char *REQ =
    "{\"callback_id\":\"network_hook_1\",\"phase\":\"before\",\"host\":\"api.example.com\","
    "\"method\":\"GET\",\"path\":\"/v1\",\"query\":{\"a\":\"b\"},\"request_headers\":{\"Accept\":[\"*/*\"]}}\n";

Test(hooks, network_reply_shape, .timeout = 30)
{
    struct net_state st = {.mode = ANSWER_MUTATE};
    char sock[256];
    mlk_client *c = net_client(&st, 0, sock, sizeof sock);
    struct stat s;
    cr_assert_eq(stat(sock, &s), 0);
    cr_assert_eq(s.st_mode & 0777, 0600, "socket mode %o", s.st_mode & 0777);
    char dir[256];
    snprintf(dir, sizeof dir, "%s", sock);
    *strrchr(dir, '/') = '\0';
    cr_assert_eq(stat(dir, &s), 0);
    cr_assert_eq(s.st_mode & 0777, 0700, "dir mode %o", s.st_mode & 0777);

    struct exchange x = {.sock = sock, .request = REQ};
    exchange_while_dispatching(c, &x);
    cr_assert_eq(st.calls, 1);
    cr_assert_str_eq(st.method, "GET");
    cr_assert_str_eq(st.host, "api.example.com");
    cr_assert(strstr(x.reply, "\"action\":\"allow\""), "%s", x.reply);
    cr_assert(strstr(x.reply, "\"request\":{\"headers\":{\"X-A\":[\"1\"]}}"), "%s", x.reply);
    cr_assert(strstr(x.reply, "\"set_body_base64\":\"bmV3\""), "%s", x.reply);
    cr_assert(x.reply[strlen(x.reply) - 1] == '\n');

    /* unknown callback ids get an error reply, not silence */
    struct exchange y = {.sock = sock, .request = "{\"callback_id\":\"network_hook_9\"}\n"};
    exchange_while_dispatching(c, &y);
    cr_assert(strstr(y.reply, "\"error\""), "%s", y.reply);

    mlk_close(c, 1, NULL);
    cr_assert_neq(stat(sock, &s), 0, "socket removed on close");
    cr_assert_neq(stat(dir, &s), 0, "directory removed on close");
    mlk_client_free(c);
}

Test(hooks, network_failing_callback_gives_error_reply, .timeout = 30)
{
    struct net_state st = {.mode = ANSWER_FAIL};
    char sock[256];
    mlk_client *c = net_client(&st, 0, sock, sizeof sock);
    struct exchange x = {.sock = sock, .request = REQ};
    exchange_while_dispatching(c, &x);
    cr_assert(strstr(x.reply, "{\"error\":\"boom from the host\"}"), "%s", x.reply);
    mlk_client_free(c);
}

/* mlk_hook_reply checks the answer for C callers too: an unknown key is
 * not sent to the server as it is, the server gets an error reply (the
 * traffic proceeds) and the caller gets the code. */
Test(hooks, network_invalid_answer_is_refused_by_the_core, .timeout = 30)
{
    struct net_state st = {.mode = ANSWER_INVALID};
    char sock[256];
    mlk_client *c = net_client(&st, 0, sock, sizeof sock);
    struct exchange x = {.sock = sock, .request = REQ};
    exchange_while_dispatching(c, &x);
    cr_assert_eq(st.reply_rc, MLK_EINVALID_NET_HOOK, "%d", st.reply_rc);
    cr_assert(strstr(x.reply, "{\"error\":\"invalid network hook: answer: unknown key \\\"actoin\\\"") != NULL,
              "%s", x.reply);
    cr_assert(!strstr(x.reply, "\"actoin\":"), "%s", x.reply);
    mlk_client_free(c);
}

Test(hooks, network_timeout_then_late_reply_is_safe, .timeout = 30)
{
    struct net_state st = {.mode = ANSWER_LATER};
    char sock[256];
    mlk_client *c = net_client(&st, 200, sock, sizeof sock);
    struct exchange x = {.sock = sock, .request = REQ};
    exchange_while_dispatching(c, &x);
    cr_assert(strstr(x.reply, "\"error\"") && strstr(x.reply, "200 ms"), "%s", x.reply);
    cr_assert_not_null(st.kept);
    cr_assert_eq(mlk_hook_reply(st.kept, NULL, 0), 0); /* dropped safely */
    mlk_client_free(c);
}

Test(hooks, unanswered_call_outlives_the_client, .timeout = 30)
{
    struct net_state st = {.mode = ANSWER_NEVER};
    char sock[256];
    mlk_client *c = net_client(&st, 5000, sock, sizeof sock);
    struct exchange x = {.sock = sock, .request = REQ};
    pthread_t th;
    pthread_create(&th, NULL, do_exchange, &x);
    for (int i = 0; i < 400 && !st.kept; i++) {
        mlk_dispatch(c, 0);
        usleep(5000);
    }
    cr_assert_not_null(st.kept);
    mlk_client_free(c); /* closes the connection: the server side sees EOF */
    pthread_join(th, NULL);
    struct stat s;
    cr_assert_neq(stat(sock, &s), 0, "socket removed when the client is freed");
    cr_assert_eq(mlk_hook_fail(st.kept, "too late"), 0); /* frees the call and the client */
}

Test(hooks, foreign_peer_is_refused, .timeout = 30)
{
    if (geteuid() != 0) cr_skip_test("needs root to act as another user");
    struct net_state st = {.mode = ANSWER_MUTATE};
    char sock[256];
    mlk_client *c = net_client(&st, 0, sock, sizeof sock);
    pid_t pid = fork();
    if (pid == 0) {
        if (setgid(65534) != 0 || setuid(65534) != 0) _exit(3);
        struct exchange x = {.sock = sock, .request = REQ};
        do_exchange(&x);
        _exit(x.reply[0] ? 1 : 0); /* refused: no reply at all */
    }
    int status = -1;
    for (int i = 0; i < 400; i++) {
        mlk_dispatch(c, 0);
        if (waitpid(pid, &status, WNOHANG) == pid) break;
        usleep(5000);
    }
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
    cr_assert_eq(st.calls, 0, "the hook never ran for a foreign peer");
    mlk_client_free(c);
}

Test(hooks, failed_create_removes_the_socket, .timeout = 30)
{
#undef CREATE_ANSWER
#define CREATE_ANSWER "printf '{\"jsonrpc\":\"2.0\",\"id\":%s,\"error\":{\"code\":-32000,\"message\":\"no kvm\"}}\\n' \"$id\""
    mlk_client *c = peer_client(PEER);
    mlk_sandbox *sb = mlk_sandbox_new("alpine:latest");
    struct net_state st = {0};
    cr_assert_eq(mlk_sandbox_add_network_hook(sb, NULL, 0, net_hook, &st), 0);
    mlk_result *r = NULL;
    cr_assert_eq(mlk_create(c, sb, 10000, &r), MLK_ERPC);
    cr_assert(mlk_result_is_vm_error(r));
    mlk_result_free(r);
    char *log = slurp(logfile);
    char *p = strstr(log, "\"callback_socket\":\"");
    cr_assert_not_null(p);
    p += 19;
    *strchr(p, '"') = '\0';
    struct stat s;
    cr_assert_neq(stat(p, &s), 0, "socket %s removed after a failed create", p);
    free(log);
    mlk_sandbox_free(sb);
    mlk_client_free(c);
#undef CREATE_ANSWER
#define CREATE_ANSWER "printf '{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"id\":\"vm-hooks\"}}\\n' \"$id\""
}

Test(hooks, rule_validation)
{
    mlk_sandbox *sb = mlk_sandbox_new("alpine:latest");
    size_t n;
    const char *blk[] = {"action", "block"};
    char *mp = mp_strmap(&n, 1, blk);
    cr_assert_eq(mlk_sandbox_add_network_hook(sb, mp, n, net_hook, NULL), MLK_EINVALID_NET_HOOK);
    free(mp);
    mlk_sandbox_free(sb);

    sb = mlk_sandbox_new("alpine:latest");
    cr_assert_eq(mlk_sandbox_add_network_hook(sb, NULL, 0, NULL, NULL), MLK_EINVALID_NET_HOOK);
    mlk_sandbox_free(sb);

    sb = mlk_sandbox_new("alpine:latest");
    const char *before[] = {"phase", "before"};
    mp = mp_strmap(&n, 1, before);
    cr_assert_eq(mlk_sandbox_add_vfs_hook(sb, MLK_HOOK_VFS_AFTER, mp, n, net_hook, NULL), MLK_EINVALID_VFS_HOOK);
    free(mp);
    char *json, *msg;
    size_t jl;
    cr_assert_eq(mlk_sandbox_params_json(sb, 0, &json, &jl, &msg), MLK_EINVALID_VFS_HOOK);
    cr_assert(strstr(msg, "phase"), "%s", msg);
    cr_assert(strncmp(msg, "invalid vfs hook: ", 18) == 0, "the seed's text leads: %s", msg);
    mlk_free(msg);
    mlk_sandbox_free(sb);

    sb = mlk_sandbox_new("alpine:latest");
    const char *after[] = {"phase", "after"};
    mp = mp_strmap(&n, 1, after);
    cr_assert_eq(mlk_sandbox_add_vfs_hook(sb, MLK_HOOK_VFS_MUTATE, mp, n, net_hook, NULL), MLK_EINVALID_VFS_HOOK);
    free(mp);
    mlk_sandbox_free(sb);

    sb = mlk_sandbox_new("alpine:latest");
    cr_assert_eq(mlk_sandbox_add_vfs_hook(sb, MLK_HOOK_VFS_MUTATE, NULL, 0, NULL, NULL), MLK_EINVALID_VFS_HOOK);
    mlk_sandbox_free(sb);

    /* after-hooks switch on emit_events; without a mount too (the server judges) */
    sb = mlk_sandbox_new("alpine:latest");
    cr_assert_eq(mlk_sandbox_add_vfs_hook(sb, MLK_HOOK_VFS_AFTER, NULL, 0, net_hook, NULL), 0);
    cr_assert_eq(mlk_sandbox_params_json(sb, 0, &json, &jl, &msg), 0, "%s", msg ? msg : "");
    cr_assert(strstr(json, "\"vfs\":{\"interception\":{\"emit_events\":true}}"), "%s", json);
    mlk_free(json);
    mlk_sandbox_set_workspace(sb, "/workspace");
    mlk_sandbox_mount_memory(sb, "/workspace");
    cr_assert_eq(mlk_sandbox_params_json(sb, 0, &json, &jl, &msg), 0, "%s", msg ? msg : "");
    cr_assert(strstr(json, "\"interception\":{\"emit_events\":true}"), "%s", json);
    mlk_free(json);
    mlk_sandbox_free(sb);
}

/* ---- VFS action and mutate hooks -------------------------------------- */

struct vfs_state {
    int calls;
    char op[16], path[128];
};

/* Answer an action hook with "block" or "allow". */
static void reply_decision(mlk_hook_call *call, int block)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_str_with_body(&pk, block ? "block" : "allow", 5);
    mlk_hook_reply(call, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

static void block_tmp(void *ud, mlk_client *c, int kind, mlk_hook_call *call, const char *req, size_t len)
{
    struct vfs_state *st = ud;
    st->calls++;
    char *op = mp_field(req, len, "op"), *path = mp_field(req, len, "path");
    snprintf(st->op, sizeof st->op, "%s", op ? op : "");
    snprintf(st->path, sizeof st->path, "%s", path ? path : "");
    int block = path && strncmp(path, "/ws/secret", 10) == 0;
    free(op);
    free(path);
    reply_decision(call, block);
}

static void upper(void *ud, mlk_client *c, int kind, mlk_hook_call *call, const char *req, size_t len)
{
    char *data = mp_field(req, len, "data");
    for (char *p = data; p && *p; p++)
        if (*p >= 'a' && *p <= 'z') *p -= 32;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_bin_with_body(&pk, data, strlen(data));
    mlk_hook_reply(call, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    free(data);
}

static void exclaim(void *ud, mlk_client *c, int kind, mlk_hook_call *call, const char *req, size_t len)
{
    char *data = mp_field(req, len, "data");
    char buf[256];
    snprintf(buf, sizeof buf, "%s!", data);
    free(data);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_str_with_body(&pk, buf, strlen(buf));
    mlk_hook_reply(call, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

static void failing(void *ud, mlk_client *c, int kind, mlk_hook_call *call, const char *req, size_t len)
{
    mlk_hook_fail(call, "host exception: KeyError");
}

static mlk_client *vfs_client_with(mlk_sandbox *sb, const char *script)
{
    mlk_client *c = peer_client(script);
    mlk_result *r = NULL;
    mlk_sandbox_set_workspace(sb, "/ws");
    mlk_sandbox_mount_memory(sb, "/ws");
    cr_assert_eq(mlk_create(c, sb, 10000, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    return c;
}

static mlk_client *vfs_client(mlk_sandbox *sb) { return vfs_client_with(sb, PEER); }

Test(hooks, action_hook_blocks_before_sending, .timeout = 30)
{
    struct vfs_state st = {0};
    mlk_sandbox *sb = mlk_sandbox_new("alpine:latest");
    const char *rule[] = {"name", "no-secrets", "path", "/ws/*"};
    size_t n;
    char *mp = mp_strmap(&n, 2, rule);
    cr_assert_eq(mlk_sandbox_add_vfs_hook(sb, MLK_HOOK_VFS_ACTION, mp, n, block_tmp, &st), 0);
    free(mp);
    mlk_client *c = vfs_client(sb);
    mlk_sandbox_free(sb);
    mlk_result *r = NULL;
    cr_assert_eq(mlk_write_file(c, "/ws/secret.txt", "x", 1, 0, 0, &r), MLK_EVFS_BLOCKED);
    cr_assert(strstr(mlk_result_message(r), "no-secrets"), "%s", mlk_result_message(r));
    mlk_result_free(r);
    cr_assert_str_eq(st.op, "write");
    cr_assert_eq(mlk_read_file(c, "/ws/ok.txt", 0, &r), 0, "%s", mlk_result_message(r));
    cr_assert_str_eq(st.op, "read");
    mlk_result_free(r);
    cr_assert_eq(mlk_list_files(c, "/ws/secret", 0, &r), MLK_EVFS_BLOCKED);
    cr_assert_str_eq(st.op, "readdir");
    mlk_result_free(r);
    /* paths outside the glob never reach the hook */
    int before = st.calls;
    cr_assert_eq(mlk_write_file(c, "/ws/deeper/x", "x", 1, 0, 0, &r), 0);
    mlk_result_free(r);
    cr_assert_eq(st.calls, before, "* does not cross /");
    char *log = slurp(logfile);
    cr_assert_null(strstr(log, "secret.txt"), "a blocked write is never sent: %s", log);
    free(log);
    mlk_client_free(c);
}

Test(hooks, mutate_hooks_chain_in_rule_order, .timeout = 30)
{
    mlk_sandbox *sb = mlk_sandbox_new("alpine:latest");
    cr_assert_eq(mlk_sandbox_add_vfs_hook(sb, MLK_HOOK_VFS_MUTATE, NULL, 0, upper, NULL), 0);
    cr_assert_eq(mlk_sandbox_add_vfs_hook(sb, MLK_HOOK_VFS_MUTATE, NULL, 0, exclaim, NULL), 0);
    mlk_client *c = vfs_client(sb);
    mlk_sandbox_free(sb);
    mlk_result *r = NULL;
    cr_assert_eq(mlk_write_file(c, "/ws/a.txt", "hello", 5, 0, 0, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    char *log = slurp(logfile);
    /* "HELLO!" in base64 */
    cr_assert(strstr(log, "\"content\":\"SEVMTE8h\""), "%s", log);
    free(log);
    mlk_client_free(c);
}

static int async_status = 1;
static void async_done(void *ud, uint64_t op, const mlk_result *r) { async_status = mlk_result_status(r); }

Test(hooks, failing_hook_fails_the_call_async_too, .timeout = 30)
{
    mlk_sandbox *sb = mlk_sandbox_new("alpine:latest");
    cr_assert_eq(mlk_sandbox_add_vfs_hook(sb, MLK_HOOK_VFS_ACTION, NULL, 0, failing, NULL), 0);
    mlk_client *c = vfs_client(sb);
    mlk_sandbox_free(sb);
    mlk_result *r = NULL;
    cr_assert_eq(mlk_read_file(c, "/ws/a", 0, &r), MLK_EUSER);
    cr_assert(strstr(mlk_result_message(r), "KeyError"), "%s", mlk_result_message(r));
    mlk_result_free(r);
    uint64_t op;
    cr_assert_eq(mlk_read_file_async(c, "/ws/a", 0, async_done, NULL, &op), 0);
    for (int i = 0; i < 400 && async_status == 1; i++) {
        mlk_dispatch(c, 0);
        usleep(5000);
    }
    cr_assert_eq(async_status, MLK_EUSER);
    mlk_client_free(c);
}

/* ---- canonical paths: a hook judges, and the server gets, one spelling -- */

struct seen_paths {
    int n;
    char path[16][160];
    const char *block_prefix;     /* paths starting with it are blocked */
};

static void judge(void *ud, mlk_client *c, int kind, mlk_hook_call *call, const char *req, size_t len)
{
    struct seen_paths *st = ud;
    char *path = mp_field(req, len, "path");
    if (st->n < 16) snprintf(st->path[st->n++], sizeof st->path[0], "%s", path ? path : "");
    int block = path && st->block_prefix && strncmp(path, st->block_prefix, strlen(st->block_prefix)) == 0;
    free(path);
    reply_decision(call, block);
}

static void add_judge(mlk_sandbox *sb, const char *glob, struct seen_paths *st)
{
    const char *rule[] = {"name", "judge", "path", glob};
    size_t n;
    char *mp = mp_strmap(&n, 2, rule);
    cr_assert_eq(mlk_sandbox_add_vfs_hook(sb, MLK_HOOK_VFS_ACTION, mp, n, judge, st), 0);
    free(mp);
}

/* The table of docs/hooks.md, "Paths are canonical", and its edges. */
Test(hooks, guest_path_canon_table)
{
    const char *t[][3] = {
        {"/workspace", "/workspace/secret//b", "/workspace/secret/b"},
        {"/workspace", "/workspace//secret/b", "/workspace/secret/b"},
        {"/workspace", "/workspace/./secret/b", "/workspace/secret/b"},
        {"/workspace", "secret/b", "/workspace/secret/b"},
        {"/workspace", "./secret/b", "/workspace/secret/b"},
        {"/workspace", "/workspace/public/../secret/b", "/workspace/secret/b"},
        {"/workspace", "/workspace/../etc/passwd", "/etc/passwd"},
        {"/workspace", "../../../../etc/passwd", "/etc/passwd"},
        {"/workspace", "/workspace/dir/", "/workspace/dir"},
        {NULL, "a.txt", "/workspace/a.txt"},    /* no workspace: upstream's default */
        {"", "a.txt", "/workspace/a.txt"},
        {"/w//x/./", "y", "/w/x/y"},            /* the workspace is made canonical too */
        {"/ws", "/..", "/"},
        {"/ws", "..", "/"},
        {"/ws", ".", "/ws"},
        {"/ws", "a/..", "/ws"},
        {"/ws", "//", "/"},
        {"/ws", "-rf", "/ws/-rf"},
        {"/ws", "...", "/ws/..."},              /* only "." and ".." are special */
        {"/ws", "a/.b/..c", "/ws/a/.b/..c"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char *out = NULL;
        cr_assert_eq(guest_path_canon(t[i][0], t[i][1], &out), 0, "%s", t[i][1]);
        cr_assert_str_eq(out, t[i][2], "%s against %s", t[i][1], t[i][0] ? t[i][0] : "NULL");
        free(out);
    }
    char *out = NULL;
    cr_assert_eq(guest_path_canon("/ws", "", &out), MLK_EINVAL);
    cr_assert_null(out);
}

Test(hooks, every_spelling_of_a_blocked_path_is_blocked, .timeout = 30)
{
    struct seen_paths st = {.block_prefix = "/ws/secret/"};
    mlk_sandbox *sb = mlk_sandbox_new("alpine:latest");
    add_judge(sb, "/ws/secret/*", &st);
    mlk_client *c = vfs_client(sb); /* workspace /ws */
    mlk_sandbox_free(sb);
    /* the spellings that went through before the core canonicalised paths */
    const char *spelled[] = {"/ws/secret//b", "/ws//secret/c", "/ws/./secret/d", "secret/e", "./secret//f/",
                             "/ws/secret/../secret/x", "/ws/public/../secret/y"};
    const char *canon[] = {"/ws/secret/b", "/ws/secret/c", "/ws/secret/d", "/ws/secret/e", "/ws/secret/f",
                           "/ws/secret/x", "/ws/secret/y"};
    for (int i = 0; i < 7; i++) {
        mlk_result *r = NULL;
        int before = st.n;
        cr_assert_eq(mlk_write_file(c, spelled[i], "x", 1, 0, 0, &r), MLK_EVFS_BLOCKED, "%s: %s", spelled[i],
                     mlk_result_message(r));
        cr_assert(strstr(mlk_result_message(r), canon[i]), "the message names the path judged: %s",
                  mlk_result_message(r));
        mlk_result_free(r);
        cr_assert_eq(st.n, before + 1, "%s: the hook ran once", spelled[i]);
        cr_assert_str_eq(st.path[before], canon[i], "%s", spelled[i]);
    }
    /* reads and listings too */
    mlk_result *r = NULL;
    cr_assert_eq(mlk_read_file(c, "secret//e", 0, &r), MLK_EVFS_BLOCKED);
    mlk_result_free(r);
    cr_assert_eq(mlk_list_files(c, "/ws/./secret/sub/..//f", 0, &r), MLK_EVFS_BLOCKED);
    mlk_result_free(r);
    cr_assert_str_eq(st.path[st.n - 1], "/ws/secret/f");
    char *log = slurp(logfile);
    cr_assert_null(strstr(log, "secret"), "nothing under /ws/secret was sent: %s", log);
    free(log);
    mlk_client_free(c);
}

Test(hooks, dotdot_resolves_lexically_and_never_climbs_above_root, .timeout = 30)
{
    struct seen_paths st = {.block_prefix = "/etc/"};
    mlk_sandbox *sb = mlk_sandbox_new("alpine:latest");
    add_judge(sb, "/etc/*", &st);
    mlk_client *c = vfs_client(sb);
    mlk_sandbox_free(sb);
    const char *spelled[] = {"/ws/../etc/passwd", "../../../../etc/passwd", "/../../etc/./passwd",
                             "/ws/secret/../../../../../etc//passwd"};
    for (int i = 0; i < 4; i++) {
        mlk_result *r = NULL;
        cr_assert_eq(mlk_read_file(c, spelled[i], 0, &r), MLK_EVFS_BLOCKED, "%s: %s", spelled[i],
                     mlk_result_message(r));
        mlk_result_free(r);
        cr_assert_str_eq(st.path[st.n - 1], "/etc/passwd", "%s", spelled[i]);
    }
    char *log = slurp(logfile);
    cr_assert_null(strstr(log, "passwd"), "%s", log);
    free(log);
    /* an allowed path is sent as the hook saw it */
    mlk_result *r = NULL;
    cr_assert_eq(mlk_write_file(c, "/ws/secret/../public/./x", "x", 1, 0, 0, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    cr_assert_eq(mlk_list_files(c, "../..", 0, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    log = slurp(logfile);
    cr_assert(strstr(log, "\"method\":\"write_file\"") && strstr(log, "\"path\":\"/ws/public/x\""), "%s", log);
    cr_assert(strstr(log, "\"method\":\"list_files\"") && strstr(log, "\"path\":\"/\""), "%s", log);
    cr_assert_null(strstr(log, ".."), "%s", log);
    free(log);
    mlk_client_free(c);
}

static void note_path(void *ud, mlk_client *c, int kind, mlk_hook_call *call, const char *req, size_t len)
{
    struct seen_paths *st = ud;
    char *path = mp_field(req, len, "path");
    if (st->n < 16) snprintf(st->path[st->n++], sizeof st->path[0], "%s", path ? path : "");
    free(path);
    mlk_hook_reply(call, NULL, 0); /* nil: the bytes stay */
}

Test(hooks, the_server_gets_the_path_the_hook_judged, .timeout = 30)
{
    struct seen_paths st = {0};
    mlk_sandbox *sb = mlk_sandbox_new("alpine:latest");
    cr_assert_eq(mlk_sandbox_add_vfs_hook(sb, MLK_HOOK_VFS_MUTATE, NULL, 0, note_path, &st), 0);
    mlk_client *c = vfs_client(sb);
    mlk_sandbox_free(sb);
    mlk_result *r = NULL;
    cr_assert_eq(mlk_write_file(c, "/ws//a/./b.txt", "hi", 2, 0, 0, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    cr_assert_eq(mlk_write_file(c, "rel/c.txt", "hi", 2, 0, 0, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    cr_assert_eq(st.n, 2);
    cr_assert_str_eq(st.path[0], "/ws/a/b.txt");
    cr_assert_str_eq(st.path[1], "/ws/rel/c.txt");
    char *log = slurp(logfile);
    cr_assert(strstr(log, "\"path\":\"/ws/a/b.txt\""), "%s", log);
    cr_assert(strstr(log, "\"path\":\"/ws/rel/c.txt\""), "%s", log);
    cr_assert_null(strstr(log, "//"), "%s", log);
    free(log);

    /* a write too large for one line goes through exec_pipe into `cat`: the
     * same canonical path, single-quoted, after the hook judged it */
    size_t big = 8 * 1024 * 1024;
    char *data = calloc(1, big);
    cr_assert_eq(mlk_write_file(c, "sub dir/it's $(id)//./x.bin", data, big, 0600, 3000, &r) != MLK_EVFS_BLOCKED, 1);
    mlk_result_free(r);
    free(data);
    cr_assert_str_eq(st.path[2], "/ws/sub dir/it's $(id)/x.bin");
    log = slurp(logfile);
    cr_assert(strstr(log, "\"method\":\"exec_pipe\""), "%s", log);
    cr_assert(strstr(log, "\"command\":\"cat > '/ws/sub dir/it'\\\\''s $(id)/x.bin' && chmod 600 "
                          "'/ws/sub dir/it'\\\\''s $(id)/x.bin'\""), "%s", log);
    free(log);
    mlk_client_free(c);
}

Test(hooks, relative_paths_default_to_the_workspace_without_hooks_too, .timeout = 30)
{
    mlk_client *c = peer_client(PEER);
    mlk_sandbox *sb = mlk_sandbox_new("alpine:latest"); /* no workspace: upstream's /workspace */
    mlk_result *r = NULL;
    cr_assert_eq(mlk_create(c, sb, 10000, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    mlk_sandbox_free(sb);
    cr_assert_eq(mlk_read_file(c, "notes.txt", 0, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    cr_assert_eq(mlk_list_files(c, "/tmp/", 0, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    cr_assert_eq(mlk_write_file(c, "-rf", "x", 1, 0, 0, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    char *log = slurp(logfile);
    cr_assert(strstr(log, "\"path\":\"/workspace/notes.txt\""), "%s", log);
    cr_assert(strstr(log, "\"path\":\"/tmp\""), "%s", log);
    cr_assert(strstr(log, "\"path\":\"/workspace/-rf\""), "never a leading '-': %s", log);
    free(log);
    mlk_client_free(c);
}

/* ---- after-hooks --------------------------------------------------------- */

#define EVENT(path) \
    "printf '{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"params\":{\"type\":\"file\",\"timestamp\":1," \
    "\"file\":{\"op\":\"write\",\"path\":\"" path "\",\"size\":1}}}\\n'; "

struct after_state {
    int plain, dangerous, exec_ok;
};

static void plain_hook(void *ud, mlk_client *c, int kind, mlk_hook_call *call, const char *req, size_t len)
{
    struct after_state *st = ud;
    cr_assert_null(call);
    cr_assert_eq(kind, MLK_HOOK_VFS_AFTER);
    st->plain++;
}

static void dangerous_hook(void *ud, mlk_client *c, int kind, mlk_hook_call *call, const char *req, size_t len)
{
    struct after_state *st = ud;
    st->dangerous++;
    /* a blocking call on the same client from inside a hook completes */
    mlk_result *r = NULL;
    if (mlk_exec(c, "echo ok", NULL, &r) == 0) st->exec_ok++;
    mlk_result_free(r);
}

Test(hooks, after_hooks_filter_suppress_and_may_call_the_client, .timeout = 30)
{
#undef CREATE_ANSWER
#define CREATE_ANSWER \
    "printf '{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"id\":\"vm-hooks\"}}\\n' \"$id\"; " \
    EVENT("/ws/a.txt") EVENT("/ws/b.txt") EVENT("/ws/sub/c.txt") EVENT("/ws/d.log")
    struct after_state st = {0};
    mlk_sandbox *sb = mlk_sandbox_new("alpine:latest");
    const char *rule[] = {"path", "/ws/*.txt"};
    size_t n;
    char *mp = mp_strmap(&n, 1, rule);
    cr_assert_eq(mlk_sandbox_add_vfs_hook(sb, MLK_HOOK_VFS_AFTER, mp, n, plain_hook, &st), 0);
    cr_assert_eq(mlk_sandbox_add_vfs_hook(sb, MLK_HOOK_VFS_DANGEROUS, mp, n, dangerous_hook, &st), 0);
    free(mp);
    mlk_client *c = vfs_client_with(sb, PEER);
    mlk_sandbox_free(sb);
    /* the peer writes the four events right after its create answer; let
     * them all be queued before the first dispatch (on a loaded machine a
     * dispatch between a.txt and b.txt would run the plain hook twice),
     * then dispatch until the dangerous hooks are done */
    usleep(300000);
    for (int i = 0; i < 2000 && (st.dangerous < 2 || st.exec_ok < 2); i++) {
        mlk_dispatch(c, 0);
        usleep(5000);
    }
    for (int i = 0; i < 20; i++) {
        mlk_dispatch(c, 0);
        usleep(5000);
    }
    /* a.txt and b.txt match; sub/c.txt and d.log do not.  b.txt arrived
     * while the plain hook for a.txt was queued: suppressed. */
    cr_assert_eq(st.plain, 1, "plain %d dangerous %d exec %d", st.plain, st.dangerous, st.exec_ok);
    cr_assert_eq(st.dangerous, 2, "dangerous %d", st.dangerous);
    cr_assert_eq(st.exec_ok, 2);
    char *log = slurp(logfile);
    cr_assert(strstr(log, "\"emit_events\":true"), "%s", log);
    free(log);
    mlk_client_free(c);
#undef CREATE_ANSWER
#define CREATE_ANSWER "printf '{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"id\":\"vm-hooks\"}}\\n' \"$id\""
}

static void keep_bytes(void *ud, mlk_client *c, int kind, mlk_hook_call *call, const char *req, size_t len)
{
    static const char nil = (char)0xc0;
    mlk_hook_reply(call, &nil, 1);
}

Test(hooks, nil_mutate_answer_keeps_the_bytes, .timeout = 30)
{
    mlk_sandbox *sb = mlk_sandbox_new("alpine:latest");
    cr_assert_eq(mlk_sandbox_add_vfs_hook(sb, MLK_HOOK_VFS_MUTATE, NULL, 0, keep_bytes, NULL), 0);
    cr_assert_eq(mlk_sandbox_add_vfs_hook(sb, MLK_HOOK_VFS_MUTATE, NULL, 0, upper, NULL), 0);
    mlk_client *c = vfs_client(sb);
    mlk_sandbox_free(sb);
    mlk_result *r = NULL;
    cr_assert_eq(mlk_write_file(c, "/ws/a.txt", "hey", 3, 0, 0, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    char *log = slurp(logfile);
    cr_assert(strstr(log, "\"content\":\"SEVZ\""), "HEY: %s", log);
    free(log);
    mlk_client_free(c);
}

Test(hooks, network_rule_carries_static_mutations_and_hooks_can_be_cleared)
{
    mlk_sandbox *sb = mlk_sandbox_new("alpine:latest");
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "set_headers", 11);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "X-Tag", 5);
    msgpack_pack_str_with_body(&pk, "1", 1);
    msgpack_pack_str_with_body(&pk, "rewrite_path", 12);
    msgpack_pack_int(&pk, 3); /* wrong type */
    cr_assert_eq(mlk_sandbox_add_network_hook(sb, b.data, b.size, net_hook, NULL), MLK_EINVALID_NET_HOOK);
    mlk_sandbox_free(sb);
    msgpack_sbuffer_clear(&b);
    sb = mlk_sandbox_new("alpine:latest");
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "set_headers", 11);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "X-Tag", 5);
    msgpack_pack_str_with_body(&pk, "1", 1);
    cr_assert_eq(mlk_sandbox_add_network_hook(sb, b.data, b.size, net_hook, NULL), 0);
    msgpack_sbuffer_destroy(&b);
    char *json, *msg;
    size_t jl;
    cr_assert_eq(mlk_sandbox_params_json(sb, 0, &json, &jl, &msg), 0);
    cr_assert(strstr(json, "\"set_headers\":{\"X-Tag\":\"1\"},\"callback_id\":\"network_hook_1\""), "%s", json);
    mlk_free(json);
    cr_assert_eq(mlk_sandbox_clear_hooks(sb, MLK_HOOK_NETWORK), 0);
    cr_assert_eq(mlk_sandbox_params_json(sb, 0, &json, &jl, &msg), 0);
    cr_assert_null(strstr(json, "callback_id"), "%s", json);
    mlk_free(json);
    mlk_sandbox_free(sb);
}

static mlk_hook_call *held_call;
static void hold(void *ud, mlk_client *c, int kind, mlk_hook_call *call, const char *req, size_t len)
{
    held_call = call;
}

Test(hooks, cancel_while_an_action_hook_decides, .timeout = 30)
{
    mlk_sandbox *sb = mlk_sandbox_new("alpine:latest");
    cr_assert_eq(mlk_sandbox_add_vfs_hook(sb, MLK_HOOK_VFS_ACTION, NULL, 0, hold, NULL), 0);
    mlk_client *c = vfs_client(sb);
    mlk_sandbox_free(sb);
    async_status = 1;
    uint64_t op;
    cr_assert_eq(mlk_write_file_async(c, "/ws/late.txt", "x", 1, 0, 0, async_done, NULL, &op), 0);
    for (int i = 0; i < 200 && !held_call; i++) {
        mlk_dispatch(c, 0);
        usleep(5000);
    }
    cr_assert_not_null(held_call);
    cr_assert_eq(mlk_cancel(c, op), 0);
    for (int i = 0; i < 200 && async_status == 1; i++) {
        mlk_dispatch(c, 0);
        usleep(5000);
    }
    cr_assert_eq(async_status, MLK_ECANCELED);
    static const char allow[] = "\xa5" "allow";
    cr_assert_eq(mlk_hook_reply(held_call, allow, 6), 0); /* too late: dropped */
    mlk_result *r = NULL;
    cr_assert_eq(mlk_exec(c, "true", NULL, &r), 0);
    mlk_result_free(r);
    char *log = slurp(logfile);
    cr_assert_null(strstr(log, "late.txt"), "a cancelled write is never sent: %s", log);
    free(log);
    mlk_client_free(c);
}

/* Issue 11 item 6: the call's deadline covers its action and mutate hooks. */
Test(hooks, deadline_covers_a_hook_that_never_answers, .timeout = 30)
{
    mlk_sandbox *sb = mlk_sandbox_new("alpine:latest");
    cr_assert_eq(mlk_sandbox_add_vfs_hook(sb, MLK_HOOK_VFS_ACTION, NULL, 0, hold, NULL), 0);
    mlk_client *c = vfs_client(sb);
    mlk_sandbox_free(sb);
    held_call = NULL;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    mlk_result *r = NULL;
    int rc = mlk_write_file(c, "/ws/held.txt", "x", 1, 0, 500, &r);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double el = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    cr_assert_eq(rc, MLK_ETIMEDOUT, "rc=%d %s", rc, mlk_result_message(r));
    cr_assert(strstr(mlk_result_message(r), "500 ms"), "%s", mlk_result_message(r));
    cr_assert(el >= 0.45 && el < 2.0, "took %.2fs for a 500 ms deadline", el);
    mlk_result_free(r);
    cr_assert_not_null(held_call);
    static const char allow[] = "\xa5" "allow";
    cr_assert_eq(mlk_hook_reply(held_call, allow, 6), 0); /* late: dropped safely */
    cr_assert_eq(mlk_exec(c, "true", NULL, &r), 0);
    mlk_result_free(r);
    char *log = slurp(logfile);
    cr_assert_null(strstr(log, "held.txt"), "a timed-out write is never sent: %s", log);
    free(log);
    mlk_client_free(c);
}

Test(hooks, deadline_covers_a_mutate_hook_async, .timeout = 30)
{
    mlk_sandbox *sb = mlk_sandbox_new("alpine:latest");
    cr_assert_eq(mlk_sandbox_add_vfs_hook(sb, MLK_HOOK_VFS_MUTATE, NULL, 0, hold, NULL), 0);
    mlk_client *c = vfs_client(sb);
    mlk_sandbox_free(sb);
    held_call = NULL;
    async_status = 1;
    uint64_t op;
    cr_assert_eq(mlk_write_file_async(c, "/ws/m.txt", "x", 1, 0, 300, async_done, NULL, &op), 0);
    for (int i = 0; i < 400 && async_status == 1; i++) {
        mlk_dispatch(c, 0);
        usleep(5000);
    }
    cr_assert_eq(async_status, MLK_ETIMEDOUT);
    cr_assert_not_null(held_call);
    cr_assert_eq(mlk_hook_fail(held_call, "too late"), 0); /* dropped safely */
    mlk_client_free(c);
}

/* ---- issue 11 item 7: root is trusted only when the server runs as root -- */

int hook_peer_uid_allowed(uid_t peer, uid_t host, int sudo); /* core/hooks.c */

Test(hooks, root_peer_is_trusted_only_for_a_root_server)
{
    cr_assert(hook_peer_uid_allowed(1000, 1000, 0), "the host's own uid");
    cr_assert(!hook_peer_uid_allowed(0, 1000, 0), "root, while neither the host nor its server is root");
    cr_assert(hook_peer_uid_allowed(0, 1000, 1), "root, when the server runs through sudo");
    cr_assert(hook_peer_uid_allowed(0, 0, 0), "root, when the host is root");
    cr_assert(!hook_peer_uid_allowed(1001, 1000, 1), "another user, sudo or not");
    cr_assert(!hook_peer_uid_allowed(1001, 0, 0), "another user of a root host");
}

Test(hooks, a_non_root_host_refuses_root_on_its_socket, .timeout = 30)
{
    if (geteuid() != 0) cr_skip_test("needs root to play both users");
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t pid = fork();
    if (pid == 0) { /* the host, as nobody, with its own client */
        close(p[0]);
        if (setgid(65534) != 0 || setuid(65534) != 0) _exit(3);
        alarm(20);
        struct net_state st = {.mode = ANSWER_MUTATE};
        char sock[256];
        mlk_client *c = net_client(&st, 0, sock, sizeof sock);
        size_t n = strlen(sock) + 1;
        if (write(p[1], sock, n) != (ssize_t)n) _exit(4);
        for (int i = 0; i < 100; i++) { /* 1 s of dispatching while root knocks */
            mlk_dispatch(c, 0);
            usleep(10000);
        }
        mlk_client_free(c);
        _exit(st.calls == 0 ? 0 : 5);
    }
    close(p[1]);
    char sock[256] = "";
    ssize_t k = read(p[0], sock, sizeof sock - 1);
    cr_assert_gt(k, 0, "the host child died before creating its socket");
    struct exchange x = {.sock = sock, .request = REQ};
    do_exchange(&x); /* as root */
    cr_assert_eq(x.reply[0], '\0', "root got a reply from a non-root host: %s", x.reply);
    int status = -1;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "host child: status %d", status);
    close(p[0]);
}

/* ---- issue 11 item 8: a flood of hook-socket connections --------------- */

static int count_fds(void)
{
    int n = 0;
    for (int fd = 0; fd < 4096; fd++)
        if (fcntl(fd, F_GETFD) >= 0) n++;
    return n;
}

static int knock(const char *sock)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EAGAIN && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

Test(hooks, a_flood_of_idle_connections_is_capped_and_timed_out, .timeout = 30)
{
    struct net_state st = {.mode = ANSWER_MUTATE};
    char sock[256];
    mlk_client *c = net_client(&st, 300, sock, sizeof sock); /* idle connections end after 300 ms */
    int before = count_fds();
    int fds[300], n = 0;
    for (int i = 0; i < 300; i++)
        if ((fds[n] = knock(sock)) >= 0) n++;
    cr_assert_gt(n, 64);
    usleep(150 * 1000);
    int accepted = count_fds() - before - n;
    cr_assert_leq(accepted, 64, "the host holds %d of %d idle connections", accepted, n);
    /* the first ones are closed by the host once idle for the rule's timeout */
    struct pollfd pf = {.fd = fds[0], .events = POLLIN};
    cr_assert_eq(poll(&pf, 1, 3000), 1, "an idle connection was never closed");
    char b;
    cr_assert_eq(read(fds[0], &b, 1), 0, "closed without a reply");
    for (int i = 0; i < n; i++) close(fds[i]);
    /* the socket still serves a real request */
    struct exchange x = {.sock = sock, .request = REQ};
    exchange_while_dispatching(c, &x);
    cr_assert(strstr(x.reply, "\"action\":\"allow\""), "%s", x.reply);
    mlk_client_free(c);
}

static double cpu_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

Test(hooks, descriptor_exhaustion_neither_spins_nor_says_out_of_memory, .timeout = 30)
{
    struct net_state st = {.mode = ANSWER_MUTATE};
    char sock[256];
    mlk_client *c = net_client(&st, 5000, sock, sizeof sock);
    struct rlimit old, low;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = old;
    low.rlim_cur = (rlim_t)count_fds() + 8; /* the host accepts a few, then hits EMFILE */
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    int go[2];
    cr_assert_eq(pipe(go), 0);
    pid_t pid = fork();
    if (pid == 0) { /* the flood, from a descriptor table of its own */
        close(go[1]);
        alarm(20);
        setrlimit(RLIMIT_NOFILE, &old);
        for (int i = 0; i < 200; i++) knock(sock);
        char b;
        ssize_t k = read(go[0], &b, 1); /* hold them until told */
        (void)k;
        _exit(0);
    }
    close(go[0]);
    usleep(300 * 1000);
    double t0 = cpu_s();
    usleep(500 * 1000); /* connections wait; the listener must not spin on EMFILE */
    double spent = cpu_s() - t0;
    cr_assert_lt(spent, 0.1, "%.2f s of CPU in 0.5 s while out of descriptors (spinning on EMFILE)", spent);
    mlk_client *c2 = NULL;
    mlk_result *r = NULL;
    int rc = mlk_client_new(&c2, NULL, &r);
    cr_assert_neq(rc, 0);
    cr_assert(strstr(mlk_result_message(r), "file descriptors"), "says what ran out: %s", mlk_result_message(r));
    mlk_result_free(r);
    close(go[1]);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
    struct exchange x = {.sock = sock, .request = REQ};
    exchange_while_dispatching(c, &x); /* accepting again */
    cr_assert(strstr(x.reply, "\"action\":\"allow\""), "%s", x.reply);
    mlk_client_free(c);
}

/* A reply the peer does not read never holds the I/O thread that serves
 * every client: another client's calls go on meanwhile. */
static void big_reply(void *ud, mlk_client *c, int kind, mlk_hook_call *call, const char *req, size_t len)
{
    size_t n = 8 << 20; /* far more than a socket buffer */
    char *body = calloc(1, n);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "response", 8);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "set_body_base64", 15);
    msgpack_pack_bin_with_body(&pk, body, n);
    cr_assert_eq(mlk_hook_reply(call, sb.data, sb.size), 0);
    msgpack_sbuffer_destroy(&sb);
    free(body);
    (*(int *)ud)++;
}

Test(hooks, an_unread_reply_does_not_hold_the_io_thread, .timeout = 30)
{
    mlk_client *c = peer_client(PEER);
    mlk_sandbox *sb = mlk_sandbox_new("alpine:latest");
    int calls = 0;
    const char rule[] = "\x81\xa5hosts\x91\xa1*"; /* {hosts: ["*"]} */
    cr_assert_eq(mlk_sandbox_add_network_hook(sb, rule, sizeof rule - 1, big_reply, &calls), 0);
    mlk_result *r = NULL;
    cr_assert_eq(mlk_create(c, sb, 10000, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    mlk_sandbox_free(sb);
    char *log = slurp(logfile);
    char *p = strstr(log, "\"callback_socket\":\"");
    cr_assert_not_null(p);
    p += 19;
    char sock[256];
    snprintf(sock, sizeof sock, "%.*s", (int)(strchr(p, '"') - p), p);
    free(log);
    mlk_client *other = peer_client(PEER);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%.100s", sock);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(write(fd, REQ, strlen(REQ)), (ssize_t)strlen(REQ));
    for (int i = 0; i < 400 && !calls; i++) {
        mlk_dispatch(c, 0);
        usleep(5000);
    }
    cr_assert_eq(calls, 1);
    /* the reply is stuck in a socket nobody reads; the I/O thread must be free */
    for (int i = 0; i < 5; i++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        cr_assert_eq(mlk_exec(other, "true", NULL, &r), 0, "%s", mlk_result_message(r));
        mlk_result_free(r);
        clock_gettime(CLOCK_MONOTONIC, &b);
        double el = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
        cr_assert(el < 0.5, "an exec on another client took %.2fs while a reply was unread", el);
    }
    mlk_client_free(other);
    close(fd);
    mlk_client_free(c);
}

/* The callback id's number is read as digits only: "-18446744073709551615"
 * wrapped to 1 through strtoull and reached the first hook (issue 23, 6). */
Test(hooks, a_callback_id_that_wraps_reaches_no_hook, .timeout = 30)
{
    struct net_state st = {.mode = ANSWER_MUTATE};
    char sock[256];
    mlk_client *c = net_client(&st, 0, sock, sizeof sock);
    const char *ids[] = {"-18446744073709551615", "18446744073709551617", "+1", " 1", "1x", ""};
    for (size_t i = 0; i < sizeof ids / sizeof *ids; i++) {
        char req[512];
        snprintf(req, sizeof req, "{\"callback_id\":\"network_hook_%s\",\"phase\":\"before\",\"host\":\"h\"}\n", ids[i]);
        struct exchange x = {.sock = sock, .request = req};
        exchange_while_dispatching(c, &x);
        cr_assert(strstr(x.reply, "unknown callback_id"), "%s: %s", ids[i], x.reply);
    }
    cr_assert_eq(st.calls, 0, "a hook ran for a callback id that is not its own");
    mlk_client_free(c);
}

/* {key: <empty array or empty map>}, wrapped in {rules: [...]} when `in_rule`. */
static char *mp_empty_under(size_t *len, const char *key, int as_array, int in_rule)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (in_rule) {
        msgpack_pack_map(&pk, 1);
        msgpack_pack_str_with_body(&pk, "rules", 5);
        msgpack_pack_array(&pk, 1);
    }
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, key, strlen(key));
    if (as_array) msgpack_pack_array(&pk, 0);
    else msgpack_pack_map(&pk, 0);
    *len = sb.size;
    return sb.data;
}

/* mlk_rule_key_info reports the contract's tables: the same keys and flags
 * as mlk_rule_key, the hook kind each callback key names, and
 * MLK_RULE_KEY_LIST exactly on the keys whose value the builder takes as
 * an array (an empty array passes, an empty map is refused by name). */
Test(hooks, rule_key_info_reports_the_contract)
{
    static const int whichs[] = {MLK_INTERCEPT_NETWORK, MLK_INTERCEPT_VFS, MLK_KEYS_NETWORK_CONFIG,
                                 MLK_KEYS_VFS_CONFIG, MLK_KEYS_IMAGE_CONFIG};
    int nlists = 0, ncallbacks = 0;
    for (size_t w = 0; w < sizeof whichs / sizeof whichs[0]; w++) {
        int which = whichs[w];
        size_t i = 0;
        const char *key;
        unsigned flags, flags2;
        int kind;
        for (; (key = mlk_rule_key_info(which, i, &flags, &kind)) != NULL; i++) {
            cr_assert_str_eq(mlk_rule_key(which, i, &flags2), key);
            cr_assert_eq(flags2, flags, "%s", key);
            cr_assert(flags & (MLK_RULE_KEY_WIRE | MLK_RULE_KEY_CALLBACK), "%s is somewhere", key);
            if (flags & MLK_RULE_KEY_CALLBACK) {
                ncallbacks++;
                int want = which == MLK_INTERCEPT_NETWORK ? MLK_HOOK_NETWORK
                         : !strcmp(key, "hook") ? MLK_HOOK_VFS_AFTER
                         : !strcmp(key, "dangerous_hook") ? MLK_HOOK_VFS_DANGEROUS
                         : !strcmp(key, "action_hook") ? MLK_HOOK_VFS_ACTION
                         : !strcmp(key, "mutate_hook") ? MLK_HOOK_VFS_MUTATE : -1;
                cr_assert_eq(kind, want, "%s names kind %d", key, kind);
                continue;
            }
            cr_assert_eq(kind, 0, "%s names no hook", key);
            /* the flag against the builder's own check */
            for (int as_array = 0; as_array <= 1; as_array++) {
                int in_rule = which == MLK_INTERCEPT_NETWORK || which == MLK_INTERCEPT_VFS;
                size_t n;
                char *mp = mp_empty_under(&n, key, as_array, in_rule);
                mlk_sandbox *sb = mlk_sandbox_new("alpine:latest");
                int rc = which == MLK_KEYS_IMAGE_CONFIG ? mlk_sandbox_set_image_config(sb, mp, n)
                       : mlk_sandbox_set_interception(sb, which == MLK_KEYS_VFS_CONFIG || which == MLK_INTERCEPT_VFS
                                                              ? MLK_INTERCEPT_VFS : MLK_INTERCEPT_NETWORK,
                                                      mp, n, NULL, NULL, 0);
                const char *msg = NULL;
                mlk_sandbox_error(sb, &msg);
                if (flags & MLK_RULE_KEY_LIST)
                    cr_assert_eq(rc, as_array ? 0 : MLK_EINVAL, "%d/%s as %s: %d %s", which, key,
                                 as_array ? "[]" : "{}", rc, msg ? msg : "");
                else if (as_array)
                    cr_assert_neq(rc, 0, "%d/%s is not a list, [] passed", which, key);
                free(mp);
                mlk_sandbox_free(sb);
            }
            nlists += !!(flags & MLK_RULE_KEY_LIST);
        }
        cr_assert_null(mlk_rule_key_info(which, i + 1, NULL, NULL));
    }
    /* hosts methods delete_headers delete_query delete_response_headers
     * body_replacements, ops, rules twice, entrypoint cmd */
    cr_assert_eq(nlists, 11);
    cr_assert_eq(ncallbacks, 5);
    unsigned flags = 99;
    int kind = 99;
    cr_assert_null(mlk_rule_key_info(0, 0, &flags, &kind));
    cr_assert_eq(flags, 0);
    cr_assert_eq(kind, 0);
    cr_assert_null(mlk_rule_key_info(MLK_KEYS_IMAGE_CONFIG + 1, 0, &flags, NULL));
}
