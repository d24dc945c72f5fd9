/* ops_files.c - files (write, read, list; with VFS hooks) and logs. */
#include "client.h"

#include <stdlib.h>
#include <string.h>

/* ===================================================================== */
/* public: files and logs                                                   */

/* Single-quote s for /bin/sh. */
static void sh_quote(jw *w, const char *s)
{
    jw_raw(w, "'", 1);
    for (; *s; s++) {
        if (*s == '\'') jw_raw(w, "'\\''", 4);
        else jw_raw(w, s, 1);
    }
    jw_raw(w, "'", 1);
}

static int write_too_big(const char *path, size_t len)
{
    return b64_encoded_len(len) + strlen(path) * 6 + 512 > SERVER_MAX_LINE;
}

/* Compose and send the file call r (routing set, kind K_WRITE, K_READ or
 * K_LIST); failures reach r's caller through its route. */
static void file_finish(mlk_client *c, req *r, const char *path, const char *data, size_t len, uint32_t mode)
{
    jw w;
    if (r->kind != K_WRITE) {
        begin_line(&w, method_names[r->kind], r->id);
        jw_obj(&w);
        jw_key(&w, "path"); jw_str(&w, path);
        jw_obj_end(&w);
        end_line(&w);
        submit_or_fail(c, r, &w);
        return;
    }
    if (mode == 0) mode = 0644;
    if (!write_too_big(path, len)) {
        begin_line(&w, "write_file", r->id);
        jw_obj(&w);
        jw_key(&w, "path"); jw_str(&w, path);
        jw_key(&w, "content"); jw_b64(&w, data, len);
        jw_key(&w, "mode"); jw_uint(&w, mode);
        jw_obj_end(&w);
        end_line(&w);
        submit_or_fail(c, r, &w);
        return;
    }
    /* Too big for one request line: stream it through `cat` instead. */
    r->kind = K_WRITE_PIPE;
    r->path = xstrdup(path);
    r->feed = malloc(len);
    if (!r->feed || !r->path) {
        post_fail(r, MLK_ENOMEM, "out of memory");
        req_free(r);
        return;
    }
    memcpy(r->feed, data, len);
    r->feed_len = len;
    jw cmd;
    jw_init(&cmd);
    jw_raw(&cmd, "cat > ", 6);
    sh_quote(&cmd, path);
    char m[48];
    int n = snprintf(m, sizeof m, " && chmod %o ", (unsigned)mode & 07777);
    jw_raw(&cmd, m, (size_t)n);
    sh_quote(&cmd, path);
    jw_raw(&cmd, "", 1);
    begin_line(&w, "exec_pipe", r->id);
    jw_obj(&w);
    jw_key(&w, "command"); jw_str(&w, cmd.oom ? "false" : cmd.buf);
    jw_obj_end(&w);
    end_line(&w);
    jw_free(&cmd);
    submit_or_fail(c, r, &w);
}

static const char *file_op(int kind) { return kind == K_WRITE ? "write" : kind == K_READ ? "read" : "readdir"; }

/* write_file, read_file and list_files, blocking (out) or async (done):
 * the path made canonical (guest_path_canon), then local VFS action and
 * mutate hooks judge it, then the request carries that same path. */
static int file_call(mlk_client *c, int kind, const char *path, const char *data, size_t len, uint32_t mode,
                     int64_t timeout_ms, int blocking, mlk_done_cb done, void *ud, uint64_t *op, mlk_result **out)
{
    if (!path || !*path || (len && !data)) {
        if (!blocking) return MLK_EINVAL;
        char msg[64];
        snprintf(msg, sizeof msg, "%s: a path is required", method_names[kind]);
        return fail_now(MLK_EINVAL, out, msg);
    }
    route rt;
    START(c, &rt, blocking, done, ud, out);
    char *canon = NULL;
    pthread_mutex_lock(&c->mu);
    int rc = guest_path_canon(c->workspace, path, &canon);
    pthread_mutex_unlock(&c->mu);
    req *r = rc == 0 ? req_new(c, kind, timeout_ms) : NULL;
    if (!r) { free(canon); return route_fail(c, &rt, 0, MLK_ENOMEM, NULL, out); }
    if (op) *op = r->id;
    r->q = route_queue(c, &rt);
    r->w = blocking ? &rt.wt : NULL;
    rt.wt.c = c; /* the waiter may read its own answer (reader_self_read) */
    r->done = done;
    r->ud = ud;
    if (!data) data = "";
    if (c->hooks && hooks_match_before(c, file_op(kind), canon))
        rc = hooks_file_call(c, r, file_op(kind), canon, data, len, mode, file_finish);
    else
        file_finish(c, r, canon, data, len, mode);
    free(canon);
    if (rc != 0) return route_fail_unsent(c, &rt, r, rc, NULL, out);
    return route_finish(&rt, out);
}

MLK_API int mlk_write_file(mlk_client *c, const char *path, const char *data, size_t len,
                           uint32_t mode, int64_t timeout_ms, mlk_result **out)
{
    return file_call(c, K_WRITE, path, data, len, mode, timeout_ms, 1, NULL, NULL, NULL, out);
}

MLK_API int mlk_write_file_async(mlk_client *c, const char *path, const char *data, size_t len,
                                 uint32_t mode, int64_t timeout_ms, mlk_done_cb done, void *ud, uint64_t *op)
{
    return file_call(c, K_WRITE, path, data, len, mode, timeout_ms, 0, done, ud, op, NULL);
}

MLK_API int mlk_read_file(mlk_client *c, const char *path, int64_t timeout_ms, mlk_result **out)
{
    return file_call(c, K_READ, path, NULL, 0, 0, timeout_ms, 1, NULL, NULL, NULL, out);
}

MLK_API int mlk_read_file_async(mlk_client *c, const char *path, int64_t timeout_ms,
                                mlk_done_cb done, void *ud, uint64_t *op)
{
    return file_call(c, K_READ, path, NULL, 0, 0, timeout_ms, 0, done, ud, op, NULL);
}

MLK_API int mlk_list_files(mlk_client *c, const char *path, int64_t timeout_ms, mlk_result **out)
{
    return file_call(c, K_LIST, path, NULL, 0, 0, timeout_ms, 1, NULL, NULL, NULL, out);
}

MLK_API int mlk_list_files_async(mlk_client *c, const char *path, int64_t timeout_ms,
                                 mlk_done_cb done, void *ud, uint64_t *op)
{
    return file_call(c, K_LIST, path, NULL, 0, 0, timeout_ms, 0, done, ud, op, NULL);
}

/* ===================================================================== */
/* public: logs                                                             */

static int do_log(mlk_client *c, int64_t timeout_ms, int blocking, mlk_done_cb done, void *ud, uint64_t *op,
                  mlk_result **out)
{
    route rt;
    START(c, &rt, blocking, done, ud, out);
    req *r = req_new(c, K_LOG, timeout_ms);
    if (!r) return route_fail(c, &rt, 0, MLK_ENOMEM, NULL, out);
    if (op) *op = r->id;
    jw w;
    begin_line(&w, "log", r->id);
    jw_obj(&w);
    jw_obj_end(&w);
    end_line(&w);
    return route_call(c, &rt, r, &w, out);
}

MLK_API int mlk_log(mlk_client *c, int64_t timeout_ms, mlk_result **out)
{
    return do_log(c, timeout_ms, 1, NULL, NULL, NULL, out);
}

MLK_API int mlk_log_async(mlk_client *c, int64_t timeout_ms, mlk_done_cb done, void *ud, uint64_t *op)
{
    return do_log(c, timeout_ms, 0, done, ud, op, NULL);
}

MLK_API int mlk_log_follow_async(mlk_client *c, mlk_output_cb on_output, mlk_done_cb done,
                                 void *ud, uint64_t *op)
{
    if (!c) return MLK_EINVAL;
    if (client_state(c) != ST_OPEN) return MLK_ECLOSED;
    req *r = req_new(c, K_LOG_STREAM, 0);
    if (!r) return MLK_ENOMEM;
    jw w;
    begin_line(&w, "log_stream", r->id);
    jw_obj(&w);
    jw_obj_end(&w);
    end_line(&w);
    r->on_output = on_output;
    r->out_ud = ud;
    return call_async(c, r, &w, done, ud, op);
}
