/* rpc.c - the JSON-RPC server: reads request lines from stdin on a
 * libevent loop, dispatches them, and writes responses and notifications
 * to stdout.  Concurrency follows PROTOCOL.md section 3:
 *   - create and close are synchronous: nothing else is read meanwhile;
 *     create waits for in-flight requests first; close stops every process
 *     and answers once the in-flight requests have ended;
 *   - cancel and the stdin/EOF/resize notifications are handled inline, in
 *     transport order;
 *   - everything else runs concurrently (the file calls complete inline).
 * A line over 10 MiB is a protocol error that ends the session (as
 * upstream's line scanner does); stdin EOF means the client went away:
 * every process is killed and the server exits. */
#include "local.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

static void process_lines(server *s);
static void begin_shutdown(server *s, int code);

/* ===================================================================== */
/* output                                                                 */

static void flush_out(server *s)
{
    while (evbuffer_get_length(s->outbuf) > 0) {
        int n = evbuffer_write(s->outbuf, 1);
        if (n > 0) continue;
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) break;
        /* the client closed its end: nothing more can be delivered */
        evbuffer_drain(s->outbuf, evbuffer_get_length(s->outbuf));
        if (!s->exiting) begin_shutdown(s, 1);
        return;
    }
    if (s->out_stalled && evbuffer_get_length(s->outbuf) < RPC_OUT_LOW) {
        s->out_stalled = 0;
        procs_output_pause(s, 0);
    }
    if (evbuffer_get_length(s->outbuf) > 0) event_add(s->ev_out, NULL);
    else event_del(s->ev_out);
}

static void on_stdout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    flush_out(arg);
}

void srv_send(server *s, jw *w)
{
    jw_nl(w);
    if (w->oom) { fprintf(stderr, "matchlock-local: out of memory composing a message\n"); return; }
    evbuffer_add(s->outbuf, w->buf, w->len);
    flush_out(s);
    if (!s->out_stalled && evbuffer_get_length(s->outbuf) > RPC_OUT_HIGH) {
        s->out_stalled = 1;
        procs_output_pause(s, 1);
    }
}

void srv_result_start(jw *w, uint64_t id)
{
    jw_obj(w);
    jw_key(w, "jsonrpc"); jw_str(w, "2.0");
    jw_key(w, "id"); jw_uint(w, id);
    jw_key(w, "result");
}

void srv_result_end(server *s, jw *w)
{
    jw_obj_end(w);
    srv_send(s, w);
}

void srv_empty_result(server *s, uint64_t id)
{
    jw w;
    jw_init(&w);
    srv_result_start(&w, id);
    jw_obj(&w);
    jw_obj_end(&w);
    srv_result_end(s, &w);
    jw_free(&w);
}

void srv_error(server *s, const uint64_t *id, int code, const char *fmt, ...)
{
    char *msg = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0) msg = NULL;
    va_end(ap);
    jw w;
    jw_init(&w);
    jw_obj(&w);
    jw_key(&w, "jsonrpc"); jw_str(&w, "2.0");
    jw_key(&w, "error");
    jw_obj(&w);
    jw_key(&w, "code"); jw_int(&w, code);
    jw_key(&w, "message"); jw_str(&w, msg ? msg : "error");
    jw_obj_end(&w);
    if (id) {                        /* upstream leaves out an unknown id */
        jw_key(&w, "id");
        jw_uint(&w, *id);
    }
    jw_obj_end(&w);
    srv_send(s, &w);
    jw_free(&w);
    free(msg);
}

void srv_notify_data(server *s, const char *method, uint64_t id, const void *p, size_t n)
{
    jw w;
    jw_init(&w);
    jw_obj(&w);
    jw_key(&w, "jsonrpc"); jw_str(&w, "2.0");
    jw_key(&w, "method"); jw_str(&w, method);
    jw_key(&w, "params");
    jw_obj(&w);
    jw_key(&w, "id"); jw_uint(&w, id);
    jw_key(&w, "data"); jw_b64(&w, p, n);
    jw_obj_end(&w);
    jw_obj_end(&w);
    srv_send(s, &w);
    jw_free(&w);
}

void srv_notify_id(server *s, const char *method, uint64_t id)
{
    jw w;
    jw_init(&w);
    jw_obj(&w);
    jw_key(&w, "jsonrpc"); jw_str(&w, "2.0");
    jw_key(&w, "method"); jw_str(&w, method);
    jw_key(&w, "params");
    jw_obj(&w);
    jw_key(&w, "id"); jw_uint(&w, id);
    jw_obj_end(&w);
    jw_obj_end(&w);
    srv_send(s, &w);
    jw_free(&w);
}

/* ===================================================================== */
/* requests                                                               */

static req *req_new(server *s, uint64_t id, int method)
{
    req *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->srv = s;
    r->id = id;
    r->method = method;
    r->log_fd = -1;
    r->next = s->reqs;
    if (s->reqs) s->reqs->prev = r;
    s->reqs = r;
    s->inflight++;
    return r;
}

void req_done(req *r)
{
    server *s = r->srv;
    if (r->prev) r->prev->next = r->next; else s->reqs = r->next;
    if (r->next) r->next->prev = r->prev;
    if (r->proc) proc_detach(r->proc);
    if (r->timer) event_free(r->timer);
    if (r->log_fd >= 0) close(r->log_fd);
    s->inflight--;
    free(r);
    srv_progress(s);
}

static req *req_find(server *s, uint64_t id)
{
    for (req *r = s->reqs; r; r = r->next)
        if (r->id == id) return r;
    return NULL;
}

/* ===================================================================== */
/* methods handled here                                                   */

static const struct { const char *name; int m; } methods[] = {
    {"create", M_CREATE}, {"exec", M_EXEC}, {"exec_stream", M_EXEC_STREAM},
    {"exec_pipe", M_EXEC_PIPE}, {"exec_tty", M_EXEC_TTY}, {"write_file", M_WRITE_FILE},
    {"read_file", M_READ_FILE}, {"list_files", M_LIST_FILES}, {"log", M_LOG},
    {"log_stream", M_LOG_STREAM}, {"allow_list_add", M_ALLOW_ADD},
    {"allow_list_delete", M_ALLOW_DEL}, {"port_forward", M_PORT_FORWARD},
    {"cancel", M_CANCEL}, {"close", M_CLOSE},
};

static int method_of(const char *name)
{
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (!strcmp(methods[i].name, name)) return methods[i].m;
    return M_UNKNOWN;
}

/* A string param: 0 ok (absent -> *out = def), -1 after answering -32602. */
static int param_str(server *s, uint64_t id, const jdoc *d, const jnode *params,
                     const char *key, int required, const char **out)
{
    const jnode *n = jd_get(d, params, key);
    if (!n || n->type == JN_NULL) {
        if (required) { srv_error(s, &id, MLK_RPC_INVALID_PARAMS, "%s: required", key); return -1; }
        *out = NULL;
        return 0;
    }
    if (n->type != JN_STR) { srv_error(s, &id, MLK_RPC_INVALID_PARAMS, "%s: expected a string", key); return -1; }
    *out = n->s;
    return 0;
}

static int param_uint(server *s, uint64_t id, const jdoc *d, const jnode *params,
                      const char *key, uint64_t max, uint64_t def, uint64_t *out)
{
    const jnode *n = jd_get(d, params, key);
    if (!n || n->type == JN_NULL) { *out = def; return 0; }
    if (jn_uint(n, out) != 0 || *out > max) {
        srv_error(s, &id, MLK_RPC_INVALID_PARAMS, "%s: expected an integer 0..%llu", key, (unsigned long long)max);
        return -1;
    }
    return 0;
}

static void start_exec(server *s, uint64_t id, int method, const jdoc *d, const jnode *params)
{
    exec_params ep = {0};
    uint64_t rows = 24, cols = 80;
    /* no command is an empty one, which succeeds (as upstream) */
    if (param_str(s, id, d, params, "command", 0, &ep.command) ||
        param_str(s, id, d, params, "working_dir", 0, &ep.working_dir) ||
        param_str(s, id, d, params, "user", 0, &ep.user))
        return;
    if (!ep.command) ep.command = "";
    if (method == M_EXEC_TTY &&
        (param_uint(s, id, d, params, "rows", 65535, 24, &rows) ||
         param_uint(s, id, d, params, "cols", 65535, 80, &cols)))
        return;
    ep.rows = rows ? (int)rows : 24;
    ep.cols = cols ? (int)cols : 80;
    req *r = req_new(s, id, method);
    if (!r) { srv_error(s, &id, MLK_RPC_INTERNAL, "out of memory"); return; }
    int kind = method == M_EXEC ? P_EXEC : method == M_EXEC_STREAM ? P_STREAM
             : method == M_EXEC_PIPE ? P_PIPE : P_TTY;
    char *err = NULL;
    proc *p = proc_start(s, s->vm, r, kind, &ep, NULL, &err);
    if (!p) {
        srv_error(s, &id, MLK_RPC_EXEC_FAILED, "%s", err ? err : "exec failed");
        free(err);
        req_done(r);
        return;
    }
    if (kind == P_PIPE) srv_notify_id(s, "exec_pipe.ready", id);
    if (kind == P_TTY) srv_notify_id(s, "exec_tty.ready", id);
}

static void rpc_log(server *s, uint64_t id)
{
    int fd = open(s->vm->log_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) { srv_error(s, &id, MLK_RPC_FILE_FAILED, "read log: %s", strerror(errno)); return; }
    struct evbuffer *b = evbuffer_new();
    int n;
    while ((n = evbuffer_read(b, fd, 1 << 20)) > 0) {}
    close(fd);
    size_t len = evbuffer_get_length(b);
    jw w;
    jw_init(&w);
    srv_result_start(&w, id);
    jw_obj(&w);
    jw_key(&w, "content"); jw_b64(&w, evbuffer_pullup(b, -1), len);
    jw_obj_end(&w);
    srv_result_end(s, &w);
    jw_free(&w);
    evbuffer_free(b);
}

/* log_stream: send what the log holds, then poll for appended data. */
static void log_stream_pump(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    req *r = arg;
    char buf[CHUNK_MAX];
    ssize_t n;
    while ((n = read(r->log_fd, buf, sizeof buf)) > 0)
        srv_notify_data(r->srv, "log_stream.data", r->id, buf, (size_t)n);
}

static void start_log_stream(server *s, uint64_t id)
{
    int fd = open(s->vm->log_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) { srv_error(s, &id, MLK_RPC_FILE_FAILED, "read log: %s", strerror(errno)); return; }
    req *r = req_new(s, id, M_LOG_STREAM);
    if (!r) { close(fd); srv_error(s, &id, MLK_RPC_INTERNAL, "out of memory"); return; }
    r->log_fd = fd;
    r->timer = event_new(s->base, -1, EV_PERSIST, log_stream_pump, r);
    struct timeval tv = {0, 100000};
    event_add(r->timer, &tv);
    log_stream_pump(-1, 0, r);
}

/* End every log_stream: the VM ends (close). */
static void end_log_streams(server *s)
{
    for (req *r = s->reqs, *nx; r; r = nx) {
        nx = r->next;
        if (r->method != M_LOG_STREAM) continue;
        log_stream_pump(-1, 0, r);
        srv_empty_result(s, r->id);
        req_done(r);
    }
}

static void rpc_cancel(server *s, uint64_t id, const jdoc *d, const jnode *params)
{
    uint64_t target;
    const jnode *n = jd_get(d, params, "id");
    if (!n || jn_uint(n, &target) != 0) {
        srv_error(s, &id, MLK_RPC_INVALID_PARAMS, "id: expected the id of an in-flight request");
        return;
    }
    req *r = req_find(s, target);
    jw w;
    jw_init(&w);
    srv_result_start(&w, id);
    jw_obj(&w);
    jw_key(&w, "cancelled"); jw_bool(&w, r != NULL);
    jw_obj_end(&w);
    srv_result_end(s, &w);
    jw_free(&w);
    if (!r) return;
    if (r->proc) {
        proc *p = r->proc;
        proc_detach(p);
        proc_kill(p, 2.0);
    }
    srv_error(s, &target, MLK_RPC_CANCELLED, "context canceled");
    req_done(r);
}

static void rpc_allow_list(server *s, uint64_t id, int add, const jdoc *d, const jnode *params)
{
    vm *v = s->vm;
    const jnode *hosts = jd_get(d, params, "hosts");
    if (!hosts || hosts->type != JN_ARR || hosts->count == 0) {
        srv_error(s, &id, MLK_RPC_INVALID_PARAMS, "hosts: expected a non-empty array of strings");
        return;
    }
    for (const jnode *h = jd_first(d, hosts); h; h = jd_next(d, h))
        if (h->type != JN_STR || h->len == 0) {
            srv_error(s, &id, MLK_RPC_INVALID_PARAMS, "hosts: expected a non-empty array of strings");
            return;
        }
    if (!v->intercept) {
        srv_error(s, &id, MLK_RPC_VM_FAILED, "network interception is not active for this VM "
                  "(it needs an allow-list, secrets, interception rules or forced interception)");
        return;
    }
    jw w;
    jw_init(&w);
    srv_result_start(&w, id);
    jw_obj(&w);
    jw_key(&w, add ? "added" : "removed");
    jw_arr(&w);
    for (const jnode *h = jd_first(d, hosts); h; h = jd_next(d, h)) {
        size_t i;
        for (i = 0; i < v->nallowed; i++)
            if (!strcmp(v->allowed[i], h->s)) break;
        if (add && i == v->nallowed) {
            char **na = realloc(v->allowed, (v->nallowed + 2) * sizeof *na);
            if (!na) break;
            v->allowed = na;
            v->allowed[v->nallowed++] = strdup(h->s);
            v->allowed[v->nallowed] = NULL;
            jw_str(&w, h->s);
        } else if (!add && i < v->nallowed) {
            free(v->allowed[i]);
            memmove(&v->allowed[i], &v->allowed[i + 1], (v->nallowed - i) * sizeof *v->allowed);
            v->nallowed--;
            jw_str(&w, h->s);
        }
    }
    jw_arr_end(&w);
    jw_key(&w, "allowed_hosts");
    jw_arr(&w);
    for (size_t i = 0; i < v->nallowed; i++) jw_str(&w, v->allowed[i]);
    jw_arr_end(&w);
    jw_obj_end(&w);
    proxy_set_allowed(v);          /* the proxy enforces the new list from now on */
    srv_result_end(s, &w);
    jw_free(&w);
    vm_log(v, "allow-list %s: now %zu host(s)", add ? "add" : "delete", v->nallowed);
}

static void rpc_create(server *s, uint64_t id, const jdoc *d, const jnode *params)
{
    if (s->vm) {
        srv_error(s, &id, MLK_RPC_VM_FAILED, "a VM already exists in this session (%s)", s->vm->id);
        return;
    }
    char *msg = NULL;
    vm *v = NULL;
    int code = vm_create(s, d, params, &v, &msg);
    if (code) {
        srv_error(s, &id, code, "%s", msg ? msg : "create failed");
        free(msg);
        return;
    }
    s->vm = v;
    events_start(s, v);
    if (jd_bool(d, params, "launch_entrypoint", 0)) {
        if (!v->entry_argv || !v->entry_argv[0]) {
            vm_log(v, "launch_entrypoint: the image config has no entrypoint or cmd");
        } else {
            char *err = NULL;
            v->entry = proc_start(s, v, NULL, P_ENTRY, NULL, v->entry_argv, &err);
            if (v->entry) vm_log(v, "entrypoint started (pid %d)", (int)v->entry->pid);
            else vm_log(v, "entrypoint failed to start: %s", err ? err : "unknown error");
            free(err);
        }
    }
    jw w;
    jw_init(&w);
    srv_result_start(&w, id);
    jw_obj(&w);
    jw_key(&w, "id"); jw_str(&w, v->id);
    jw_obj_end(&w);
    srv_result_end(s, &w);
    jw_free(&w);
}

/* close: stop reading, stop forwards, end log streams, kill processes;
 * answer {} once every in-flight request has ended, then exit. */
static void rpc_close(server *s, uint64_t id, const jdoc *d, const jnode *params)
{
    double t = jd_num(d, params, "timeout_seconds", 0);
    double grace = 2.0;
    if (t > 0 && t < grace) grace = t;
    s->closing = 1;
    event_del(s->ev_in);
    s->close_req = calloc(1, sizeof *s->close_req);
    if (s->close_req) s->close_req->id = id;
    if (s->vm) {
        vm_log(s->vm, "close requested");
        portfwd_stop(s->vm);
        proxy_stop(s->vm);
        events_stop(s->vm);
    }
    end_log_streams(s);
    procs_kill_all(s, grace);
    srv_progress(s);
}

/* ===================================================================== */
/* notifications from the client                                          */

static void client_notification(server *s, const char *method, const jdoc *d, const jnode *params)
{
    uint64_t id;
    if (jn_uint(jd_get(d, params, "id"), &id) != 0) return;
    req *r = req_find(s, id);
    proc *p = r ? r->proc : NULL;
    if (!p) return;
    int tty = !strncmp(method, "exec_tty.", 9);
    if ((tty && p->kind != P_TTY) || (!tty && p->kind != P_PIPE)) return;
    const char *what = method + (tty ? 9 : 10);
    if (!strcmp(what, "stdin")) {
        const jnode *data = jd_get(d, params, "data");
        if (!data || data->type != JN_STR) return;
        long long n = b64_decode(data->s, data->len, (unsigned char *)data->s);
        if (n > 0) proc_stdin(p, data->s, (size_t)n);
    } else if (!strcmp(what, "stdin_eof")) {
        proc_stdin_eof(p);
    } else if (tty && !strcmp(what, "resize")) {
        int64_t rows = jd_int(d, params, "rows", 0), cols = jd_int(d, params, "cols", 0);
        if (rows > 0 && rows <= 65535 && cols > 0 && cols <= 65535) proc_resize(p, (int)rows, (int)cols);
    }
}

/* ===================================================================== */
/* line handling                                                          */

static int blank(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r') return 0;
    return 1;
}

/* Handle one line (owned; buffer has room for a NUL).  Returns 1 when the
 * line may have held a secret (a create, or a line whose method could not
 * be read): the line and every copy of it are wiped before they are freed
 * (the parsed strings live inside the line: wiping it wipes them), and the
 * caller wipes the bytes it read the line from.  Other lines cost nothing. */
static int handle_line(server *s, char *line, size_t len)
{
    if (blank(line, len)) { free(line); return 0; }
    int wipe = 1;                 /* until the method is known not to be create */
    jdoc d;
    jd_init(&d);
    /* Upstream decodes a line into its request struct in one step: bad
     * JSON, a non-object and an id that is not an unsigned integer are all
     * the same "Parse error", without an id. */
    const jnode *root = jd_parse(&d, line, len) == 0 ? jd_root(&d) : NULL;
    const jnode *idn = root && root->type == JN_OBJ ? jd_get(&d, root, "id") : NULL;
    uint64_t id = 0;
    int has_id = idn && idn->type != JN_NULL;
    if (!root || root->type != JN_OBJ || (has_id && jn_uint(idn, &id) != 0)) {
        srv_error(s, NULL, MLK_RPC_PARSE_ERROR, "Parse error");
        goto out;
    }
    const char *mname = jd_str(&d, root, "method", NULL);
    if (!mname) {
        srv_error(s, has_id ? &id : NULL, MLK_RPC_METHOD_NOT_FOUND, "Method not found");
        goto out;
    }
    const jnode *params = jd_get(&d, root, "params");
    if (params && params->type == JN_NULL) params = NULL;
    if (!has_id) {
        if (!strncmp(mname, "exec_pipe.", 10) || !strncmp(mname, "exec_tty.", 9)) {
            if (params && params->type == JN_OBJ) client_notification(s, mname, &d, params);
        } else if (method_of(mname) == M_EXEC_PIPE || method_of(mname) == M_EXEC_TTY ||
                   method_of(mname) == M_LOG_STREAM) {
            srv_error(s, NULL, MLK_RPC_INVALID_REQUEST, "Invalid Request: %s requires an id", mname);
        } else if (method_of(mname) != M_UNKNOWN) {
            srv_error(s, NULL, MLK_RPC_INVALID_REQUEST, "Invalid Request: %s requires an id", mname);
        }
        goto out;
    }
    int m = method_of(mname);
    wipe = m == M_CREATE;
    if (m == M_UNKNOWN) { srv_error(s, &id, MLK_RPC_METHOD_NOT_FOUND, "Method not found"); goto out; }
    if (params && params->type != JN_OBJ) {
        srv_error(s, &id, MLK_RPC_INVALID_PARAMS, "params: expected an object");
        goto out;
    }
    static const jnode empty = {.type = JN_OBJ};
    if (!params) params = &empty;
    if (m == M_CREATE) {
        if (s->inflight > 0) {
            /* wait for in-flight requests; read nothing meanwhile */
            jw w;
            jw_init(&w);
            w.secret = 1;                 /* grown without realloc, wiped */
            jd_write(&d, root, &w);       /* the line was parsed in place */
            s->sync_line = jw_take(&w, &s->sync_len);
            jd_free(&d);
            secret_wipe(line, len);
            free(line);
            if (!s->sync_line) { srv_error(s, &id, MLK_RPC_INTERNAL, "out of memory"); return 1; }
            s->paused = 1;
            event_del(s->ev_in);
            return 1;
        }
        rpc_create(s, id, &d, params);
        goto out;
    }
    if (m == M_CLOSE) { rpc_close(s, id, &d, params); goto out; }
    if (m == M_CANCEL) { rpc_cancel(s, id, &d, params); goto out; }
    if (!s->vm) { srv_error(s, &id, MLK_RPC_VM_FAILED, "VM not created"); goto out; }
    switch (m) {
    case M_EXEC: case M_EXEC_STREAM: case M_EXEC_PIPE: case M_EXEC_TTY:
        start_exec(s, id, m, &d, params);
        break;
    case M_WRITE_FILE: { req r = {.srv = s, .id = id}; rpc_write_file(s, &r, &d, params); break; }
    case M_READ_FILE: { req r = {.srv = s, .id = id}; rpc_read_file(s, &r, &d, params); break; }
    case M_LIST_FILES: { req r = {.srv = s, .id = id}; rpc_list_files(s, &r, &d, params); break; }
    case M_LOG: rpc_log(s, id); break;
    case M_LOG_STREAM: start_log_stream(s, id); break;
    case M_ALLOW_ADD: rpc_allow_list(s, id, 1, &d, params); break;
    case M_ALLOW_DEL: rpc_allow_list(s, id, 0, &d, params); break;
    case M_PORT_FORWARD: { req r = {.srv = s, .id = id}; rpc_port_forward(s, &r, &d, params); break; }
    }
out:
    jd_free(&d);
    if (wipe) secret_wipe(line, len);
    free(line);
    return wipe;
}

/* A create line kept aside until in-flight requests ended: run it now. */
static void run_sync_line(server *s)
{
    char *line = s->sync_line;
    size_t len = s->sync_len;
    s->sync_line = NULL;
    s->paused = 0;
    handle_line(s, line, len);    /* a create: wiped there */
    if (!s->closing && !s->exiting && !s->paused) {
        event_add(s->ev_in, NULL);
        process_lines(s);
    }
}

/* An oversized line ends the session as upstream's line scanner does: a
 * message on stderr, no answer on stdout. */
static void line_too_long(void)
{
    fprintf(stderr, "matchlock-local: request line exceeds %u bytes (token too long); ending the session\n", MAX_LINE);
}

/* Zero the first n bytes of an evbuffer in place (its chains are ordinary
 * memory that was read into: writing through evbuffer_peek is allowed). */
static void wipe_input(struct evbuffer *b, size_t n)
{
    struct evbuffer_iovec v[16];
    struct evbuffer_ptr at;
    size_t done = 0;
    while (done < n) {
        if (evbuffer_ptr_set(b, &at, done, EVBUFFER_PTR_SET) != 0) return;
        int k = evbuffer_peek(b, (ev_ssize_t)(n - done), &at, v, 16);
        if (k <= 0) return;
        for (int i = 0; i < k && i < 16 && done < n; i++) {
            size_t m = v[i].iov_len < n - done ? v[i].iov_len : n - done;
            secret_wipe(v[i].iov_base, m);
            done += m;
        }
    }
}

static void process_lines(server *s)
{
    while (!s->paused && !s->throttled && !s->closing && !s->exiting) {
        struct evbuffer_ptr p = evbuffer_search_eol(s->inbuf, NULL, NULL, EVBUFFER_EOL_LF);
        size_t avail = evbuffer_get_length(s->inbuf);
        size_t len;
        if (p.pos < 0) {
            if (avail > MAX_LINE) {
                line_too_long();
                begin_shutdown(s, 1);
                return;
            }
            if (!s->in_eof || avail == 0) return;
            len = avail;                     /* a last line without newline */
        } else {
            len = (size_t)p.pos;
            if (len > MAX_LINE) {
                line_too_long();
                begin_shutdown(s, 1);
                return;
            }
        }
        char *line = malloc(len + 1);
        if (!line) { begin_shutdown(s, 1); return; }
        /* copied, not removed: a create's bytes are wiped in the buffer
         * before its chains go back to the allocator (nothing in
         * handle_line reads inbuf) */
        evbuffer_copyout(s->inbuf, line, len);
        line[len] = '\0';
        if (handle_line(s, line, len)) wipe_input(s->inbuf, len);
        evbuffer_drain(s->inbuf, len + (p.pos >= 0));
    }
}

static void on_stdin(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    server *s = arg;
    for (int i = 0; i < 16; i++) {
        int n = evbuffer_read(s->inbuf, fd, 1 << 20);
        if (n > 0) {
            if (evbuffer_get_length(s->inbuf) > MAX_LINE + (1u << 20)) break;
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            s->in_eof = 1;
            event_del(s->ev_in);
        }
        break;
    }
    process_lines(s);
    if (s->in_eof && !s->closing && !s->exiting && !s->paused && !s->throttled) {
        /* the client went away: stop everything and leave */
        begin_shutdown(s, 0);
    }
}

/* ===================================================================== */
/* lifecycle                                                              */

static struct event *ev_resume, *ev_hard;

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    server *s = arg;
    if (s->sync_line && s->inflight == 0) run_sync_line(s);
    else if (!s->paused && !s->throttled && !s->exiting && !s->closing) {
        process_lines(s);
        if (s->in_eof && !s->closing && !s->exiting && !s->paused && !s->throttled) begin_shutdown(s, 0);
    }
}

void srv_unthrottle(server *s)
{
    if (!s->throttled) return;
    s->throttled = 0;
    if (s->paused || s->closing || s->exiting) return;
    if (!s->in_eof) event_add(s->ev_in, NULL);
    event_active(ev_resume, 0, 0);
}

static void finish_exit(server *s)
{
    if (s->vm) vm_log(s->vm, "server exiting");
    event_base_loopexit(s->base, NULL);
}

void srv_progress(server *s)
{
    if (s->sync_line && s->inflight == 0 && !s->exiting) event_active(ev_resume, 0, 0);
    if (s->procs || s->inflight > 0) return;
    if (s->closing && s->close_req && !s->exiting) {
        uint64_t id = s->close_req->id;
        free(s->close_req);
        s->close_req = NULL;
        if (s->vm && s->vm->shm_dir) rm_rf(s->vm->shm_dir); /* memory mounts die with the VM */
        srv_empty_result(s, id);
        s->exiting = 1;
        finish_exit(s);
    } else if (s->exiting) {
        finish_exit(s);
    }
}

static void on_hard_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    server *s = arg;
    fprintf(stderr, "matchlock-local: processes did not exit in time; leaving anyway\n");
    event_base_loopexit(s->base, NULL);
}

/* Stop everything (EOF, protocol error, signal) and exit when done. */
static void begin_shutdown(server *s, int code)
{
    if (s->exiting) return;
    s->exiting = 1;
    s->exit_code = code;
    event_del(s->ev_in);
    if (s->vm) {
        vm_log(s->vm, "client went away; stopping");
        portfwd_stop(s->vm);
        proxy_stop(s->vm);
        events_stop(s->vm);
    }
    /* answer nothing more: requests end silently */
    while (s->reqs) {
        req *r = s->reqs;
        req_done(r);
    }
    procs_kill_all(s, 0.5);
    ev_hard = evtimer_new(s->base, on_hard_timeout, s);
    struct timeval tv = {5, 0};
    evtimer_add(ev_hard, &tv);
    srv_progress(s);
}

static void on_sigchld(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    procs_reap(arg);
}

static void on_sigterm(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    begin_shutdown(arg, 1);
}

int rpc_main(void)
{
    signal(SIGPIPE, SIG_IGN);
    /* orphans of our commands (e.g. bwrap's inner init after its parent
     * was killed) are reparented to us and reaped in procs_reap */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    server srv, *s = &srv;
    memset(s, 0, sizeof *s);
    s->base = event_base_new();
    if (!s->base) { fprintf(stderr, "matchlock-local: cannot create the event loop\n"); return 1; }
    fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
    fcntl(1, F_SETFL, fcntl(1, F_GETFL) | O_NONBLOCK);
    s->inbuf = evbuffer_new();
    s->outbuf = evbuffer_new();
    s->ev_in = event_new(s->base, 0, EV_READ | EV_PERSIST, on_stdin, s);
    s->ev_out = event_new(s->base, 1, EV_WRITE | EV_PERSIST, on_stdout, s);
    s->ev_sigchld = evsignal_new(s->base, SIGCHLD, on_sigchld, s);
    s->ev_sigterm = evsignal_new(s->base, SIGTERM, on_sigterm, s);
    s->ev_sigint = evsignal_new(s->base, SIGINT, on_sigterm, s);
    ev_resume = event_new(s->base, -1, 0, on_resume, s);
    evsignal_add(s->ev_sigchld, NULL);
    evsignal_add(s->ev_sigterm, NULL);
    evsignal_add(s->ev_sigint, NULL);
    if (event_add(s->ev_in, NULL) != 0) {
        /* stdin cannot be polled (a regular file): read it all at once */
        int n;
        while ((n = evbuffer_read(s->inbuf, 0, 1 << 20)) > 0) {}
        s->in_eof = 1;
        process_lines(s);
        if (!s->closing) begin_shutdown(s, 0);
    }
    event_base_dispatch(s->base);

    /* flush what is left, blocking */
    fcntl(1, F_SETFL, fcntl(1, F_GETFL) & ~O_NONBLOCK);
    while (evbuffer_get_length(s->outbuf) > 0)
        if (evbuffer_write(s->outbuf, 1) <= 0) break;
    procs_kill_all(s, 0);
    if (s->vm) { portfwd_stop(s->vm); proxy_stop(s->vm); events_stop(s->vm); vm_free(s->vm); }
    if (s->sync_line) secret_wipe(s->sync_line, s->sync_len);   /* a create never run */
    free(s->sync_line);
    free(s->close_req);
    struct event *evs[] = {s->ev_in, s->ev_out, s->ev_sigchld, s->ev_sigterm, s->ev_sigint, ev_resume, ev_hard};
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++) if (evs[i]) event_free(evs[i]);
    evbuffer_free(s->inbuf);
    evbuffer_free(s->outbuf);
    event_base_free(s->base);
    return s->exit_code;
}
