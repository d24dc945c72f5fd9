/* ops_exec.c - exec in its four modes, stdin, resize and cancel. */
#include "client.h"

#include <stdlib.h>
#include <string.h>

/* ===================================================================== */
/* public: exec                                                             */

struct mlk_exec_opts {
    int mode;
    char *working_dir, *user;
    int64_t timeout_ms;
    uint16_t rows, cols;
    char *stdin_data;
    size_t stdin_len;
    int has_stdin, interactive;
    mlk_output_cb on_output;
    mlk_ready_cb on_ready;
    void *ud;
};

MLK_API mlk_exec_opts *mlk_exec_opts_new(void)
{
    mlk_exec_opts *o = calloc(1, sizeof *o);
    if (o) { o->rows = 24; o->cols = 80; }
    return o;
}

MLK_API void mlk_exec_opts_free(mlk_exec_opts *o)
{
    if (!o) return;
    free(o->working_dir);
    free(o->user);
    free(o->stdin_data);
    free(o);
}

MLK_API int mlk_exec_opts_set_mode(mlk_exec_opts *o, int mode)
{
    if (!o || mode < MLK_EXEC_BUFFERED || mode > MLK_EXEC_TTY) return MLK_EINVAL;
    o->mode = mode;
    return 0;
}

static int set_str(char **dst, const char *s)
{
    char *p = NULL;
    if (s && *s && !(p = strdup(s))) return MLK_ENOMEM;
    free(*dst);
    *dst = p;
    return 0;
}

MLK_API int mlk_exec_opts_set_working_dir(mlk_exec_opts *o, const char *dir)
{
    return o ? set_str(&o->working_dir, dir) : MLK_EINVAL;
}

MLK_API int mlk_exec_opts_set_user(mlk_exec_opts *o, const char *user)
{
    return o ? set_str(&o->user, user) : MLK_EINVAL;
}

MLK_API int mlk_exec_opts_set_timeout_ms(mlk_exec_opts *o, int64_t ms)
{
    if (!o || ms < 0) return MLK_EINVAL;
    o->timeout_ms = ms;
    return 0;
}

MLK_API int mlk_exec_opts_set_tty_size(mlk_exec_opts *o, uint16_t rows, uint16_t cols)
{
    if (!o) return MLK_EINVAL;
    o->rows = rows ? rows : 24;
    o->cols = cols ? cols : 80;
    return 0;
}

MLK_API int mlk_exec_opts_set_stdin(mlk_exec_opts *o, const char *data, size_t len)
{
    if (!o || (len && !data)) return MLK_EINVAL;
    char *p = malloc(len ? len : 1);
    if (!p) return MLK_ENOMEM;
    if (len) memcpy(p, data, len);
    free(o->stdin_data);
    o->stdin_data = p;
    o->stdin_len = len;
    o->has_stdin = 1;
    return 0;
}

MLK_API int mlk_exec_opts_set_interactive_stdin(mlk_exec_opts *o, int on)
{
    if (!o) return MLK_EINVAL;
    o->interactive = on != 0;
    return 0;
}

MLK_API int mlk_exec_opts_set_callbacks(mlk_exec_opts *o, mlk_output_cb on_output, mlk_ready_cb on_ready, void *ud)
{
    if (!o) return MLK_EINVAL;
    o->on_output = on_output;
    o->on_ready = on_ready;
    o->ud = ud;
    return 0;
}

static const int mode_kind[] = {K_EXEC, K_EXEC_STREAM, K_EXEC_PIPE, K_EXEC_TTY};

/* Build the request of an exec; returns NULL (with *rc) on failure. */
static req *exec_request(mlk_client *c, const char *command, const mlk_exec_opts *o, jw *w, int *rc)
{
    static const mlk_exec_opts defaults = {.rows = 24, .cols = 80};
    if (!o) o = &defaults;
    *rc = MLK_ENOMEM;
    req *r = req_new(c, mode_kind[o->mode], o->timeout_ms);
    if (!r) return NULL;
    r->on_output = o->on_output;
    r->on_ready = o->on_ready;
    r->out_ud = o->ud;
    r->interactive = o->interactive;
    if ((o->mode == MLK_EXEC_PIPE || o->mode == MLK_EXEC_TTY) && o->has_stdin && o->stdin_len) {
        r->feed = malloc(o->stdin_len);
        if (!r->feed) { req_free(r); return NULL; }
        memcpy(r->feed, o->stdin_data, o->stdin_len);
        r->feed_len = o->stdin_len;
    }
    begin_line(w, method_names[r->kind], r->id);
    jw_obj(w);
    jw_key(w, "command"); jw_str(w, command);
    if (o->working_dir) { jw_key(w, "working_dir"); jw_str(w, o->working_dir); }
    if (o->user) { jw_key(w, "user"); jw_str(w, o->user); }
    if (o->mode == MLK_EXEC_TTY) {
        jw_key(w, "rows"); jw_uint(w, o->rows);
        jw_key(w, "cols"); jw_uint(w, o->cols);
    }
    jw_obj_end(w);
    end_line(w);
    *rc = 0;
    return r;
}

MLK_API int mlk_exec(mlk_client *c, const char *command, const mlk_exec_opts *o, mlk_result **out)
{
    if (!c || !command) return fail_now(MLK_EINVAL, out, "exec: client and command are required");
    if (client_state(c) != ST_OPEN) return closed_result(c, out);
    jw w;
    int rc;
    req *r = exec_request(c, command, o, &w, &rc);
    if (!r) return fail_now(rc, out, mlk_strerror(rc));
    return call_blocking(c, r, &w, out);
}

MLK_API int mlk_exec_async(mlk_client *c, const char *command, const mlk_exec_opts *o,
                           mlk_done_cb done, void *ud, uint64_t *op)
{
    if (!c || !command) return MLK_EINVAL;
    if (client_state(c) != ST_OPEN) return MLK_ECLOSED;
    jw w;
    int rc;
    req *r = exec_request(c, command, o, &w, &rc);
    if (!r) return rc;
    return call_async(c, r, &w, done, ud, op);
}

static int post_stdin(mlk_client *c, uint64_t op, int type, const char *data, size_t len,
                      uint16_t rows, uint16_t cols)
{
    if (!c) return MLK_EINVAL;
    if (client_state(c) != ST_OPEN) return MLK_ECLOSED;
    if (type == SI_DATA && c->stdin_pending + c->out_buffered > STDIN_LIMIT) return MLK_EAGAIN;
    jw w;
    jw_init(&w);
    char head[64];
    int n = snprintf(head, sizeof head, "\"params\":{\"id\":%llu", (unsigned long long)op);
    jw_raw(&w, head, (size_t)n);
    if (type == SI_DATA) {
        jw_raw(&w, ",\"data\":", 8);
        w.need_comma[0] = 2;
        jw_b64(&w, data, len);
    } else if (type == SI_RESIZE) {
        n = snprintf(head, sizeof head, ",\"rows\":%u,\"cols\":%u", rows, cols);
        jw_raw(&w, head, (size_t)n);
    }
    jw_raw(&w, "}}\n", 3);
    if (w.oom) { jw_free(&w); return MLK_ENOMEM; }
    stdin_task *t = malloc(sizeof *t + w.len);
    if (!t) { jw_free(&w); return MLK_ENOMEM; }
    t->c = c;
    t->op = op;
    t->type = type;
    t->len = w.len;
    memcpy(t->tail, w.buf, w.len);
    jw_free(&w);
    c->stdin_pending += t->len;
    if (ioloop_post(t_stdin, t) != 0) { c->stdin_pending -= t->len; free(t); return MLK_ENOMEM; }
    return 0;
}

MLK_API int mlk_stdin_write(mlk_client *c, uint64_t op, const char *data, size_t len)
{
    if (len && !data) return MLK_EINVAL;
    if (len == 0) return 0;
    return post_stdin(c, op, SI_DATA, data, len, 0, 0);
}

MLK_API int mlk_stdin_close(mlk_client *c, uint64_t op) { return post_stdin(c, op, SI_EOF, NULL, 0, 0, 0); }

MLK_API int mlk_tty_resize(mlk_client *c, uint64_t op, uint16_t rows, uint16_t cols)
{
    if (!rows || !cols) return MLK_EINVAL;
    return post_stdin(c, op, SI_RESIZE, NULL, 0, rows, cols);
}

MLK_API int mlk_cancel(mlk_client *c, uint64_t op)
{
    if (!c) return MLK_EINVAL;
    if (client_inherited(c)) return MLK_ECLOSED;
    if (client_state(c) != ST_OPEN) return 0;
    if (c->hooks && hooks_cancel(c, op)) return 0;
    uint64_t *a = malloc(2 * sizeof *a);
    if (!a) return MLK_ENOMEM;
    a[0] = (uint64_t)(uintptr_t)c;
    a[1] = op;
    if (ioloop_post(t_cancel, a) != 0) { free(a); return MLK_ENOMEM; }
    return 0;
}
