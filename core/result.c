/* result.c - the outcome of one call (mlk_result). */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char empty[1];

mlk_result *result_new(void)
{
    mlk_result *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->exit_code = -1;
    r->message = empty;
    return r;
}

int result_fail(mlk_result *r, int status, const char *fmt, ...)
{
    if (!r) return status;
    r->status = status;
    if (r->message != empty) free(r->message);
    r->message = empty;
    if (fmt) {
        va_list ap;
        char *p = NULL;
        va_start(ap, fmt);
        if (vasprintf(&p, fmt, ap) >= 0) {
            /* messages quote server and guest text: it is escaped here, once for all */
            char *e = text_escape(p, strlen(p));
            if (e) {
                free(p);
                p = e;
            } else { /* out of memory: every byte that might not be safe becomes '?' */
                for (unsigned char *q = (unsigned char *)p; *q; q++)
                    if ((*q < 0x20 && *q != '\n' && *q != '\t') || *q >= 0x7F) *q = '?';
            }
            r->message = p;
        }
        va_end(ap);
    }
    return status;
}

int result_set_copy(mlk_result *r, int which, const char *p, size_t n)
{
    char *c = malloc(n + 1);
    if (!c) return MLK_ENOMEM;
    if (n) memcpy(c, p, n);
    c[n] = '\0';
    switch (which) {
    case 'o': free(r->out_own); r->out_own = c; r->out = c; r->out_len = n; break;
    case 'e': free(r->err_own); r->err_own = c; r->err = c; r->err_len = n; break;
    case 'd': free(r->data_own); r->data_own = c; r->data = c; r->data_len = n; break;
    case 'm': free(r->mp_own); r->mp_own = c; r->mp = c; r->mp_len = n; break;
    default: free(c); return MLK_EINVAL;
    }
    return 0;
}

int result_give(mlk_result *r, mlk_result **out)
{
    if (!r) return MLK_ENOMEM;
    int st = r->status;
    if (out) *out = r;
    else mlk_result_free(r);
    return st;
}

MLK_API void mlk_result_free(mlk_result *r)
{
    if (!r) return;
    if (r->message != empty) free(r->message);
    free(r->owned);
    free(r->out_own);
    free(r->err_own);
    free(r->data_own);
    free(r->mp_own);
    free(r);
}

MLK_API int mlk_result_status(const mlk_result *r) { return r ? r->status : MLK_EINVAL; }
MLK_API const char *mlk_result_message(const mlk_result *r)
{
    if (!r) return "";
    if (r->status && !r->message[0]) return mlk_strerror(r->status);
    return r->message;
}
MLK_API int mlk_result_rpc_code(const mlk_result *r) { return r ? r->rpc_code : 0; }
MLK_API int mlk_result_exit_code(const mlk_result *r) { return r ? r->exit_code : -1; }
MLK_API int64_t mlk_result_duration_ms(const mlk_result *r) { return r ? r->duration_ms : 0; }

static const char *field(const char *p, size_t n, size_t *len)
{
    if (len) *len = p ? n : 0;
    return p ? p : "";
}

MLK_API const char *mlk_result_stdout(const mlk_result *r, size_t *len)
{
    return field(r ? r->out : NULL, r ? r->out_len : 0, len);
}
MLK_API const char *mlk_result_stderr(const mlk_result *r, size_t *len)
{
    return field(r ? r->err : NULL, r ? r->err_len : 0, len);
}
MLK_API const char *mlk_result_data(const mlk_result *r, size_t *len)
{
    return field(r ? r->data : NULL, r ? r->data_len : 0, len);
}
MLK_API const char *mlk_result_msgpack(const mlk_result *r, size_t *len)
{
    if (!r || !r->mp) { if (len) *len = 0; return NULL; }
    if (len) *len = r->mp_len;
    return r->mp;
}

MLK_API int mlk_result_is_vm_error(const mlk_result *r) { return r && r->rpc_code == MLK_RPC_VM_FAILED; }
MLK_API int mlk_result_is_exec_error(const mlk_result *r) { return r && r->rpc_code == MLK_RPC_EXEC_FAILED; }
MLK_API int mlk_result_is_file_error(const mlk_result *r) { return r && r->rpc_code == MLK_RPC_FILE_FAILED; }
MLK_API int mlk_result_is_cancelled(const mlk_result *r)
{
    return r && (r->rpc_code == MLK_RPC_CANCELLED || r->status == MLK_ECANCELED);
}
