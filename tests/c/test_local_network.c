/* test_local_network.c - matchlock-local's network proxy end to end: a
 * small HTTP origin server runs in the test process on 127.0.0.1, commands
 * in the sandbox reach it with curl through the proxy, and the public C
 * API drives the sandbox (allow-list, rules, secrets, hooks, events). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <criterion/criterion.h>
#include <msgpack.h>

#include "internal.h"
#include "matchlock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef MLK_LOCAL_BIN
#define MLK_LOCAL_BIN "matchlock-local"
#endif

/* ===================================================================== */
/* the origin server                                                      */

/* Answers every request with 200 and a body that echoes what it saw:
 *   ORIGIN-BODY\nREQ <request line>\nHDR <name>: <value>\n...BODY <body>\n
 * "/chunked..." answers the same text chunked. */
static struct origin {
    int fd, port;
    pthread_t t;
    volatile int stop;
    int hits;
    pthread_mutex_t mu;
} origin = {.fd = -1, .mu = PTHREAD_MUTEX_INITIALIZER};

static void write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) { if (w < 0 && errno == EINTR) continue; return; }
        p += w;
        n -= (size_t)w;
    }
}

static void serve_one(int fd)
{
    char buf[65536];
    size_t len = 0;
    char *end = NULL;
    while (len < sizeof buf - 1) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 5000) <= 0) return;
        ssize_t n = recv(fd, buf + len, sizeof buf - 1 - len, 0);
        if (n <= 0) return;
        len += (size_t)n;
        buf[len] = '\0';
        if ((end = strstr(buf, "\r\n\r\n"))) break;
    }
    if (!end) return;
    size_t head_len = (size_t)(end - buf) + 4;
    size_t clen = 0;
    char *cl = strcasestr(buf, "\r\ncontent-length:");
    if (cl && cl < end) clen = strtoul(cl + 17, NULL, 10);
    int req_chunked = strcasestr(buf, "\r\ntransfer-encoding: chunked") != NULL;
    while (req_chunked && !strstr(buf + head_len, "0\r\n\r\n") && len < sizeof buf - 1) {
        ssize_t n = recv(fd, buf + len, sizeof buf - 1 - len, 0);
        if (n <= 0) break;
        len += (size_t)n;
        buf[len] = '\0';
    }
    while (len < head_len + clen && len < sizeof buf - 1) {
        ssize_t n = recv(fd, buf + len, sizeof buf - 1 - len, 0);
        if (n <= 0) break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    pthread_mutex_lock(&origin.mu);
    origin.hits++;
    pthread_mutex_unlock(&origin.mu);

    char *body = malloc(len + 256);
    size_t bl = 0;
    bl += (size_t)sprintf(body + bl, "ORIGIN-BODY\n");
    char *line = buf, *nl;
    int first = 1;
    while ((nl = strstr(line, "\r\n")) && line < end) {
        *nl = '\0';
        bl += (size_t)sprintf(body + bl, "%s %s\n", first ? "REQ" : "HDR", line);
        first = 0;
        line = nl + 2;
    }
    bl += (size_t)sprintf(body + bl, "BODY %.*s\n", (int)(len - head_len), buf + head_len);
    char head[512];
    if (strstr(buf, " /sse")) {
        /* an event stream, delimited by the close */
        static const char sse[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
                                  "data: ORIGIN-BODY one\n\ndata: two ORIGIN-BODY\n\n";
        write_all(fd, sse, sizeof sse - 1);
        free(body);
        return;
    }
    int chunked = strncmp(buf, "GET /chunked", 12) == 0 || strstr(buf, " /chunked") != NULL;
    if (chunked) {
        int hl = snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Origin: yes\r\n"
                          "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
        write_all(fd, head, (size_t)hl);
        /* in two chunks, split inside the marker */
        size_t half = 5;
        char ch[32];
        int cl1 = snprintf(ch, sizeof ch, "%zx\r\n", half);
        write_all(fd, ch, (size_t)cl1);
        write_all(fd, body, half);
        write_all(fd, "\r\n", 2);
        cl1 = snprintf(ch, sizeof ch, "%zx\r\n", bl - half);
        write_all(fd, ch, (size_t)cl1);
        write_all(fd, body + half, bl - half);
        write_all(fd, "\r\n0\r\n\r\n", 7);
    } else {
        int hl = snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Origin: yes\r\n"
                          "Content-Length: %zu\r\nConnection: close\r\n\r\n", bl);
        write_all(fd, head, (size_t)hl);
        write_all(fd, body, bl);
    }
    free(body);
}

static void *origin_main(void *arg)
{
    (void)arg;
    while (!origin.stop) {
        struct pollfd p = {.fd = origin.fd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0) continue;
        int c = accept(origin.fd, NULL, NULL);
        if (c < 0) continue;
        serve_one(c);
        close(c);
    }
    return NULL;
}

static void origin_start(void)
{
    origin.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(origin.fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    cr_assert_eq(bind(origin.fd, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(listen(origin.fd, 16), 0);
    getsockname(origin.fd, (struct sockaddr *)&sa, &sl);
    origin.port = ntohs(sa.sin_port);
    cr_assert_eq(pthread_create(&origin.t, NULL, origin_main, NULL), 0);
}

static void origin_stop(void)
{
    origin.stop = 1;
    pthread_join(origin.t, NULL);
    close(origin.fd);
}

/* ===================================================================== */
/* the sandbox                                                            */

static char state_dir[256];

static char *json_mp(const char *json, size_t *len)
{
    char *copy = strdup(json);
    jdoc d;
    jd_init(&d);
    cr_assert_eq(jd_parse(&d, copy, strlen(copy)), 0, "bad test JSON: %s", json);
    char *buf = NULL;
    cr_assert_eq(json_to_mp_buf(&d, jd_root(&d), &buf, len), 0);
    jd_free(&d);
    free(copy);
    return buf;
}

static char *mp_json(const char *mp, size_t len)
{
    msgpack_unpacked u;
    if (mp_parse(mp, len, &u) != 0) { msgpack_unpacked_destroy(&u); return strdup("?"); }
    jw w;
    jw_init(&w);
    mp_to_json(&u.data, &w);
    msgpack_unpacked_destroy(&u);
    char *s = jw_take(&w, NULL);
    return s ? s : strdup("?");
}

/* Events seen (as JSON text, concatenated). */
static char events[65536];
static size_t events_len;

static void on_event(void *ud, const char *mp, size_t len)
{
    (void)ud;
    char *j = mp_json(mp, len);
    size_t n = strlen(j);
    if (events_len + n + 2 < sizeof events) {
        memcpy(events + events_len, j, n);
        events_len += n;
        events[events_len++] = '\n';
        events[events_len] = '\0';
    }
    free(j);
}

static mlk_client *client_new(void)
{
    snprintf(state_dir, sizeof state_dir, "/tmp/mlk-net-%d-XXXXXX", (int)getpid());
    cr_assert_not_null(mkdtemp(state_dir));
    mlk_config *cfg = mlk_config_new();
    mlk_config_set_binary(cfg, MLK_LOCAL_BIN);
    mlk_config_set_env(cfg, "XDG_STATE_HOME", state_dir);
    mlk_client *c = NULL;
    mlk_result *r = NULL;
    cr_assert_eq(mlk_client_new(&c, cfg, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    mlk_config_free(cfg);
    mlk_client_set_event_cb(c, on_event, NULL);
    return c;
}

static void create(mlk_client *c, mlk_sandbox *sb)
{
    mlk_result *r = NULL;
    cr_assert_eq(mlk_create(c, sb, 30000, &r), 0, "create: %s", mlk_result_message(r));
    mlk_result_free(r);
    mlk_sandbox_free(sb);
}

static void finish(mlk_client *c)
{
    mlk_result *r = NULL;
    cr_assert_eq(mlk_close(c, 5, &r), 0, "close: %s", mlk_result_message(r));
    mlk_result_free(r);
    mlk_remove(c, NULL);
    mlk_client_free(c);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", state_dir);
    if (system(cmd) != 0) {}
}

struct run {
    int done, status, exit_code;
    char out[65536];
};

static void run_done(void *ud, uint64_t op, const mlk_result *res)
{
    (void)op;
    struct run *r = ud;
    r->status = mlk_result_status(res);
    r->exit_code = mlk_result_exit_code(res);
    size_t n = 0;
    const char *o = mlk_result_stdout(res, &n);
    if (n >= sizeof r->out) n = sizeof r->out - 1;
    memcpy(r->out, o, n);
    r->out[n] = '\0';
    size_t m = 0;
    const char *e = mlk_result_stderr(res, &m);
    if (n + m >= sizeof r->out) m = sizeof r->out - 1 - n;
    memcpy(r->out + n, e, m);
    r->out[n + m] = '\0';
    r->done = 1;
}

static void dispatch_for(mlk_client *c, int ms)
{
    struct pollfd p = {.fd = mlk_client_fd(c), .events = POLLIN};
    poll(&p, 1, ms);
    mlk_dispatch(c, 0);
}

/* Run a command, dispatching callbacks (hooks, events) meanwhile; returns
 * its stdout+stderr (static). */
static const char *run(mlk_client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static const char *run(mlk_client *c, const char *fmt, ...)
{
    static struct run r;
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    memset(&r, 0, sizeof r);
    uint64_t op;
    cr_assert_eq(mlk_exec_async(c, cmd, NULL, run_done, &r, &op), 0);
    while (!r.done) dispatch_for(c, 100);
    cr_assert_eq(r.status, 0, "exec %s failed", cmd);
    return r.out;
}

/* curl through the proxy; the output ends with "CODE=<status>". */
#define CURL "curl -sS --max-time 20 -w '\\nCODE=%%{http_code}\\n' "

/* Wait (dispatching) until the events text contains all needles. */
static int wait_events(mlk_client *c, const char *a, const char *b)
{
    for (int i = 0; i < 50; i++) {
        if (strstr(events, a) && (!b || strstr(events, b))) return 1;
        dispatch_for(c, 100);
    }
    return 0;
}

static void allow_list(mlk_client *c, int add, const char *host)
{
    mlk_result *r = NULL;
    const char *hosts[] = {host};
    int rc = add ? mlk_allow_list_add(c, hosts, 1, 10000, &r) : mlk_allow_list_delete(c, hosts, 1, 10000, &r);
    cr_assert_eq(rc, 0, "allow-list: %s", mlk_result_message(r));
    mlk_result_free(r);
}

/* ===================================================================== */
/* tests                                                                  */

Test(local_net, no_network_config_means_no_proxy, .timeout = 30)
{
    mlk_client *c = client_new();
    create(c, mlk_sandbox_new("alpine:latest"));
    const char *out = run(c, "echo \"[$http_proxy][$HTTPS_PROXY]\"");
    cr_assert(strstr(out, "[][]"), "%s", out);
    finish(c);
}

Test(local_net, allow_list_blocks_then_runtime_add_allows, .timeout = 30)
{
    origin_start();
    mlk_client *c = client_new();
    mlk_sandbox *sb = mlk_sandbox_new("alpine:latest");
    mlk_sandbox_allow_host(sb, "*.allowed.example");
    mlk_sandbox_set_block_private_ips(sb, 0);
    create(c, sb);

    const char *out = run(c, "echo \"[$http_proxy]\"; echo \"[$no_proxy]\"");
    cr_assert(strstr(out, "[http://127.0.0.1:"), "%s", out);
    cr_assert(strstr(out, "\n[]"), "%s", out);

    out = run(c, CURL "http://127.0.0.1:%d/first", origin.port);
    cr_assert(strstr(out, "CODE=403"), "%s", out);
    cr_assert(strstr(out, "not in the allow-list"), "%s", out);
    cr_assert_eq(origin.hits, 0);

    allow_list(c, 1, "127.0.0.1");
    out = run(c, CURL "http://127.0.0.1:%d/second", origin.port);
    cr_assert(strstr(out, "CODE=200"), "%s", out);
    cr_assert(strstr(out, "REQ GET /second HTTP/1.1"), "%s", out);

    allow_list(c, 0, "127.0.0.1");
    out = run(c, CURL "http://127.0.0.1:%d/third", origin.port);
    cr_assert(strstr(out, "CODE=403"), "%s", out);
    cr_assert_eq(origin.hits, 1);
    finish(c);
    origin_stop();
}

Test(local_net, private_ips_blocked_by_default, .timeout = 30)
{
    origin_start();
    mlk_client *c = client_new();
    mlk_sandbox *sb = mlk_sandbox_new("alpine:latest");
    mlk_sandbox_set_network_interception(sb, NULL, 0);   /* forced, no list */
    create(c, sb);
    const char *out = run(c, CURL "http://127.0.0.1:%d/x", origin.port);
    cr_assert(strstr(out, "CODE=403"), "%s", out);
    cr_assert(strstr(out, "private IP 127.0.0.1"), "%s", out);
    out = run(c, CURL "http://localhost:%d/x", origin.port);
    cr_assert(strstr(out, "CODE=403"), "%s", out);
    /* CONNECT is judged by host too */
    out = run(c, CURL "-p http://127.0.0.1:%d/tunnel", origin.port);
    cr_assert(strstr(out, "403"), "%s", out);
    cr_assert_eq(origin.hits, 0);
    finish(c);
    origin_stop();
}

Test(local_net, static_rules_block_mutate_and_replace, .timeout = 30)
{
    origin_start();
    mlk_client *c = client_new();
    mlk_sandbox *sb = mlk_sandbox_new("alpine:latest");
    mlk_sandbox_set_block_private_ips(sb, 0);
    size_t len;
    char *rules = json_mp(
        "{\"rules\":["
        "{\"name\":\"no-admin\",\"phase\":\"before\",\"action\":\"block\",\"path\":\"/admin/*\"},"
        "{\"name\":\"post-only\",\"phase\":\"before\",\"action\":\"block\",\"methods\":[\"delete\"]},"
        "{\"name\":\"mut\",\"phase\":\"before\",\"hosts\":[\"127.0.0.1\"],\"path\":\"/orig\","
        " \"set_headers\":{\"x-injected\":\"yes\"},\"delete_headers\":[\"X-Remove\"],"
        " \"set_query\":{\"added\":\"a b\"},\"delete_query\":[\"drop\"],\"rewrite_path\":\"/rewritten\"},"
        "{\"name\":\"resp\",\"phase\":\"after\",\"hosts\":[\"*.0.0.1\"],"
        " \"set_response_headers\":{\"X-Resp\":\"1\"},\"delete_response_headers\":[\"X-Origin\"],"
        " \"body_replacements\":[{\"find\":\"ORIGIN-BODY\",\"replace\":\"REPLACED-BODY\"}]}"
        "]}", &len);
    cr_assert_eq(mlk_sandbox_set_network_interception(sb, rules, len), 0);
    free(rules);
    create(c, sb);

    const char *out = run(c, CURL "http://127.0.0.1:%d/admin/panel", origin.port);
    cr_assert(strstr(out, "CODE=403") && strstr(out, "blocked by rule no-admin"), "%s", out);
    out = run(c, CURL "-X DELETE http://127.0.0.1:%d/thing", origin.port);
    cr_assert(strstr(out, "CODE=403") && strstr(out, "post-only"), "%s", out);
    cr_assert_eq(origin.hits, 0);

    out = run(c, CURL "-i -H 'X-Remove: gone' -H 'X-Keep: kept' 'http://127.0.0.1:%d/orig?keep=1&drop=2'",
              origin.port);
    cr_assert(strstr(out, "CODE=200"), "%s", out);
    cr_assert(strstr(out, "REQ GET /rewritten?added=a+b&keep=1 HTTP/1.1"), "%s", out);
    cr_assert(strstr(out, "HDR X-Injected: yes"), "%s", out);
    cr_assert(strstr(out, "HDR X-Keep: kept"), "%s", out);
    cr_assert_null(strstr(out, "X-Remove"), "%s", out);
    /* the after rule: body replaced, headers edited, length updated */
    cr_assert(strstr(out, "REPLACED-BODY"), "%s", out);
    cr_assert_null(strstr(out, "ORIGIN-BODY"), "%s", out);
    cr_assert(strstr(out, "X-Resp: 1"), "%s", out);
    cr_assert_null(strstr(out, "X-Origin"), "%s", out);

    /* a chunked response is buffered, replaced, and sent with a length */
    out = run(c, CURL "-i http://127.0.0.1:%d/chunked", origin.port);
    cr_assert(strstr(out, "CODE=200"), "%s", out);
    cr_assert(strstr(out, "REPLACED-BODY"), "%s", out);
    cr_assert(strcasestr(out, "Content-Length:"), "%s", out);
    cr_assert_null(strcasestr(out, "Transfer-Encoding"), "%s", out);

    /* an event stream is not buffered: replaced line by line */
    out = run(c, CURL "http://127.0.0.1:%d/sse", origin.port);
    cr_assert(strstr(out, "data: REPLACED-BODY one\n\ndata: two REPLACED-BODY\n\n"), "%s", out);
    finish(c);
    origin_stop();
}

Test(local_net, chunked_and_bodies_pass_through, .timeout = 30)
{
    origin_start();
    mlk_client *c = client_new();
    mlk_sandbox *sb = mlk_sandbox_new("alpine:latest");
    mlk_sandbox_set_block_private_ips(sb, 0);
    mlk_sandbox_allow_host(sb, "127.0.0.1");
    create(c, sb);
    const char *out = run(c, CURL "http://127.0.0.1:%d/chunked", origin.port);
    cr_assert(strstr(out, "CODE=200") && strstr(out, "ORIGIN-BODY\nREQ GET /chunked"), "%s", out);
    out = run(c, CURL "--data-binary 'hello body' http://127.0.0.1:%d/post", origin.port);
    cr_assert(strstr(out, "REQ POST /post") && strstr(out, "BODY hello body"), "%s", out);
    /* a chunked request body (curl sends chunked for stdin uploads) */
    out = run(c, "printf 'streamed' | " CURL "-H 'Transfer-Encoding: chunked' --data-binary @- "
              "http://127.0.0.1:%d/up", origin.port);
    cr_assert(strstr(out, "CODE=200"), "%s", out);
    cr_assert(strstr(out, "REQ POST /up"), "%s", out);
    cr_assert(strstr(out, "HDR Transfer-Encoding: chunked") && strstr(out, "streamed"), "%s", out);
    /* a tunnel (CONNECT) carries the bytes blind */
    out = run(c, CURL "-p http://127.0.0.1:%d/tunnelled", origin.port);
    cr_assert(strstr(out, "CODE=200") && strstr(out, "REQ GET /tunnelled"), "%s", out);
    cr_assert(wait_events(c, "\"method\":\"CONNECT\"", "\"url\":\"127.0.0.1:"), "%s", events);
    finish(c);
    origin_stop();
}

Test(local_net, secret_replaced_for_its_host_only, .timeout = 30)
{
    origin_start();
    mlk_client *c = client_new();
    mlk_sandbox *sb = mlk_sandbox_new("alpine:latest");
    mlk_sandbox_set_block_private_ips(sb, 0);
    mlk_sandbox_add_host(sb, "api.test", "127.0.0.1");
    mlk_sandbox_add_host(sb, "other.test", "127.0.0.1");
    const char *hosts[] = {"api.test"};
    cr_assert_eq(mlk_sandbox_add_secret(sb, "API_TOKEN", "real-s3cret", NULL, hosts, 1), 0);
    create(c, sb);

    const char *out = run(c, "echo \"[$API_TOKEN]\"");
    cr_assert(strstr(out, "[SANDBOX_SECRET_"), "%s", out);
    cr_assert_null(strstr(out, "real-s3cret"), "%s", out);

    out = run(c, CURL "-H \"Authorization: Bearer $API_TOKEN\" --data-binary \"$API_TOKEN\" "
              "\"http://api.test:%d/s?k=$API_TOKEN\"", origin.port);
    cr_assert(strstr(out, "CODE=200"), "%s", out);
    cr_assert(strstr(out, "HDR Authorization: Bearer real-s3cret"), "%s", out);
    cr_assert(strstr(out, "REQ POST /s?k=real-s3cret HTTP/1.1"), "%s", out);
    cr_assert(strstr(out, "BODY SANDBOX_SECRET_"), "never in bodies: %s", out);
    cr_assert_eq(origin.hits, 1);

    /* the same placeholder bound for another host is refused */
    out = run(c, CURL "-H \"Authorization: Bearer $API_TOKEN\" http://other.test:%d/s", origin.port);
    cr_assert(strstr(out, "CODE=403"), "%s", out);
    cr_assert(strstr(out, "API_TOKEN"), "%s", out);
    cr_assert_null(strstr(out, "real-s3cret"), "%s", out);
    cr_assert_eq(origin.hits, 1);
    /* without the placeholder, the other host is fine */
    out = run(c, CURL "http://other.test:%d/plain", origin.port);
    cr_assert(strstr(out, "CODE=200"), "%s", out);
    finish(c);
    origin_stop();
}

/* ---- network hooks ------------------------------------------------------ */

struct hook_state {
    const char *reply_json;      /* the reply every call gets */
    int calls;
    char last[8192];
};

static void hook_cb(void *ud, mlk_client *c, int kind, mlk_hook_call *call, const char *req, size_t len)
{
    (void)c;
    struct hook_state *st = ud;
    st->calls++;
    char *j = mp_json(req, len);
    snprintf(st->last, sizeof st->last, "%s", j);
    free(j);
    if (kind != MLK_HOOK_NETWORK || !call) return;
    size_t n;
    char *mp = json_mp(st->reply_json, &n);
    mlk_hook_reply(call, mp, n);
    free(mp);
}

static mlk_client *hooked(struct hook_state *st, const char *rule_json)
{
    mlk_client *c = client_new();
    mlk_sandbox *sb = mlk_sandbox_new("alpine:latest");
    mlk_sandbox_set_block_private_ips(sb, 0);
    size_t len;
    char *rule = json_mp(rule_json, &len);
    cr_assert_eq(mlk_sandbox_add_network_hook(sb, rule, len, hook_cb, st), 0);
    free(rule);
    create(c, sb);
    return c;
}

Test(local_net, hook_sets_response_body, .timeout = 30)
{
    origin_start();
    struct hook_state st = {.reply_json = "{\"action\":\"allow\",\"response\":{\"headers\":{\"X-Hooked\":[\"1\"]},"
                                          "\"set_body_base64\":\"SE9PS0VEIEJPRFkK\"}}"};
    mlk_client *c = hooked(&st, "{\"name\":\"tap\",\"phase\":\"after\",\"hosts\":[\"127.0.0.1\"],\"path\":\"/hook*\"}");
    const char *out = run(c, CURL "-i 'http://127.0.0.1:%d/hooked?a=1' -H 'X-Mine: m'", origin.port);
    cr_assert(strstr(out, "CODE=200"), "%s", out);
    cr_assert(strstr(out, "\r\n\r\nHOOKED BODY\n"), "%s", out);
    cr_assert(strstr(out, "X-Hooked: 1"), "%s", out);
    cr_assert(strstr(out, "Content-Length: 12"), "%s", out);
    cr_assert_eq(st.calls, 1);
    cr_assert(strstr(st.last, "\"phase\":\"after\""), "%s", st.last);
    cr_assert(strstr(st.last, "\"path\":\"/hooked\""), "%s", st.last);
    cr_assert(strstr(st.last, "\"query\":{\"a\":\"1\"}"), "%s", st.last);
    cr_assert(strstr(st.last, "\"X-Mine\":[\"m\"]"), "%s", st.last);
    cr_assert(strstr(st.last, "\"status_code\":200"), "%s", st.last);
    cr_assert(strstr(st.last, "\"X-Origin\":[\"yes\"]"), "%s", st.last);
    /* a path the rule does not match is not sent to the hook */
    out = run(c, CURL "http://127.0.0.1:%d/other", origin.port);
    cr_assert(strstr(out, "ORIGIN-BODY"), "%s", out);
    cr_assert_eq(st.calls, 1);
    finish(c);
    origin_stop();
}

Test(local_net, hook_mutates_request, .timeout = 30)
{
    origin_start();
    struct hook_state st = {.reply_json = "{\"request\":{\"headers\":{\"X-From-Hook\":[\"h\"]},"
                                          "\"query\":{\"q\":\"z\"},\"path\":\"/moved\"}}"};
    mlk_client *c = hooked(&st, "{\"name\":\"rq\",\"phase\":\"before\"}");
    const char *out = run(c, CURL "-H 'X-Old: o' 'http://127.0.0.1:%d/orig?x=1'", origin.port);
    cr_assert(strstr(out, "CODE=200"), "%s", out);
    cr_assert(strstr(out, "REQ GET /moved?q=z HTTP/1.1"), "%s", out);
    cr_assert(strstr(out, "HDR X-From-Hook: h"), "%s", out);
    cr_assert_null(strstr(out, "X-Old"), "headers are replaced whole: %s", out);
    cr_assert(strstr(st.last, "\"phase\":\"before\""), "%s", st.last);
    finish(c);
    origin_stop();
}

Test(local_net, hook_block_stops_request, .timeout = 30)
{
    origin_start();
    struct hook_state st = {.reply_json = "{\"action\":\"block\"}"};
    mlk_client *c = hooked(&st, "{\"name\":\"gate\",\"phase\":\"before\",\"methods\":[\"GET\"]}");
    const char *out = run(c, CURL "http://127.0.0.1:%d/nope", origin.port);
    cr_assert(strstr(out, "CODE=403"), "%s", out);
    cr_assert(strstr(out, "blocked by network hook gate"), "%s", out);
    cr_assert_eq(st.calls, 1);
    cr_assert_eq(origin.hits, 0);
    cr_assert(wait_events(c, "\"blocked\":true", "\"block_reason\":\"blocked by network hook gate\""), "%s", events);
    finish(c);
    origin_stop();
}

Test(local_net, hook_error_or_silence_lets_traffic_pass, .timeout = 30)
{
    origin_start();
    struct hook_state st = {.reply_json = "{\"error\":\"host function raised\"}"};
    mlk_client *c = hooked(&st, "{\"name\":\"err\",\"phase\":\"after\",\"timeout_ms\":2000}");
    const char *out = run(c, CURL "http://127.0.0.1:%d/e", origin.port);
    cr_assert(strstr(out, "CODE=200") && strstr(out, "ORIGIN-BODY"), "%s", out);
    cr_assert_eq(st.calls, 1);
    finish(c);
    origin_stop();
}

Test(local_net, events_for_allowed_and_blocked, .timeout = 30)
{
    origin_start();
    mlk_client *c = client_new();
    mlk_sandbox *sb = mlk_sandbox_new("alpine:latest");
    mlk_sandbox_set_block_private_ips(sb, 0);
    mlk_sandbox_allow_host(sb, "127.0.0.1");
    create(c, sb);
    const char *out = run(c, CURL "--data-binary 'abc' http://127.0.0.1:%d/ev; " CURL "http://localhost:%d/no",
                          origin.port, origin.port);
    cr_assert(strstr(out, "CODE=200") && strstr(out, "CODE=403"), "%s", out);
    char want[128];
    snprintf(want, sizeof want, "\"url\":\"http://127.0.0.1:%d/ev\"", origin.port);
    cr_assert(wait_events(c, want, "\"host\":\"localhost\""), "%s", events);
    char *ev = strstr(events, want);
    char *eol = strchr(ev, '\n');
    *eol = '\0';
    char *line = ev;
    while (line > events && line[-1] != '\n') line--;
    cr_assert(strstr(line, "\"type\":\"network\""), "%s", line);
    cr_assert(strstr(line, "\"method\":\"POST\""), "%s", line);
    cr_assert(strstr(line, "\"status_code\":200"), "%s", line);
    cr_assert(strstr(line, "\"request_bytes\":3"), "%s", line);
    cr_assert(strstr(line, "\"blocked\":false"), "%s", line);
    cr_assert(strstr(line, "\"host\":\"127.0.0.1\""), "%s", line);
    cr_assert(strstr(line, "\"timestamp\":"), "%s", line);
    *eol = '\n';
    cr_assert(strstr(events, "\"block_reason\":\"host localhost is not in the allow-list\""), "%s", events);
    finish(c);
    origin_stop();
}

/* Bad input straight at the proxy port: answered, and the proxy lives on. */
Test(local_net, bad_input_never_kills_the_proxy, .timeout = 30)
{
    origin_start();
    mlk_client *c = client_new();
    mlk_sandbox *sb = mlk_sandbox_new("alpine:latest");
    mlk_sandbox_set_block_private_ips(sb, 0);
    mlk_sandbox_allow_host(sb, "127.0.0.1");
    create(c, sb);
    const char *out = run(c, "echo $http_proxy");
    const char *colon = strrchr(out, ':');
    cr_assert_not_null(colon, "%s", out);
    int port = atoi(colon + 1);
    cr_assert_gt(port, 0);
    static const char *bad[] = {
        "garbage\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n",                        /* origin-form */
        "GET http://127.0.0.1:0/ HTTP/1.1\r\n\r\n",                 /* port 0 */
        "GET http:///nohost HTTP/1.1\r\n\r\n",
        "POST http://127.0.0.1:1/ HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
        "POST http://127.0.0.1:1/ HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "CONNECT nohostport HTTP/1.1\r\n\r\n",
        "GET http://a b/ HTTP/1.1\r\n\r\n",
        "GET http://127.0.0.1:1/ HTTP/1.1\r\nBad Header\r\n\r\n",
        "\r\n\r\n",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
        write_all(fd, bad[i], strlen(bad[i]));
        shutdown(fd, SHUT_WR);
        char buf[4096];
        ssize_t n, tot = 0;
        while ((n = recv(fd, buf + tot, sizeof buf - 1 - (size_t)tot, 0)) > 0) tot += n;
        buf[tot > 0 ? tot : 0] = '\0';
        if (*bad[i] && strcmp(bad[i], "\r\n\r\n"))
            cr_assert(strncmp(buf, "HTTP/1.1 4", 10) == 0 || strncmp(buf, "HTTP/1.1 5", 10) == 0,
                      "input %zu got: %s", i, buf);
        close(fd);
    }
    /* an oversized head */
    {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
        write_all(fd, "GET http://127.0.0.1/ HTTP/1.1\r\n", 32);
        char *big = malloc(100000);
        memset(big, 'a', 100000);
        write_all(fd, "X-Big: ", 7);
        write_all(fd, big, 100000);
        free(big);
        char buf[256] = "";
        ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
        buf[n > 0 ? n : 0] = '\0';
        cr_assert(strstr(buf, "431"), "%s", buf);
        close(fd);
    }
    out = run(c, CURL "http://127.0.0.1:%d/still-alive", origin.port);
    cr_assert(strstr(out, "CODE=200") && strstr(out, "/still-alive"), "%s", out);
    finish(c);
    origin_stop();
}
