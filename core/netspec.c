/* netspec.c - client-side parsing of port-forward specs and allow-list
 * input (PROTOCOL section 4, `port_forward` and `allow_list_add`). */
#include "internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* Bounds of s[0..n) without leading and trailing whitespace. */
static void trim(const char **s, size_t *n)
{
    while (*n > 0 && isspace((unsigned char)**s)) { (*s)++; (*n)--; }
    while (*n > 0 && isspace((unsigned char)(*s)[*n - 1])) (*n)--;
}

/* One port: digits only, 1..65535.  Returns the port or -1. */
static long parse_port(const char *s, size_t n)
{
    trim(&s, &n);
    if (n == 0 || n > 5) return -1;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v >= 1 && v <= 65535 ? v : -1;
}

int port_forward_render(const char *const *specs, size_t n, jw *w, char **msg)
{
    if (msg) *msg = NULL;
    if (n > 0 && !specs) {
        if (msg) *msg = xstrdup("parse port-forward spec: the spec list is NULL");
        return MLK_EINVAL;
    }
    jw tmp;
    jw_init(&tmp);
    jw_arr(&tmp);
    for (size_t i = 0; i < n; i++) {
        const char *spec = specs[i] ? specs[i] : "";
        const char *colon = strchr(spec, ':');
        long local, remote;
        if (colon && strchr(colon + 1, ':')) {
            local = remote = -1;
        } else if (colon) {
            local = parse_port(spec, (size_t)(colon - spec));
            remote = parse_port(colon + 1, strlen(colon + 1));
        } else {
            local = remote = parse_port(spec, strlen(spec));
        }
        if (local < 0 || remote < 0) {
            if (msg)
                /* the seed's words, then the official SDKs' (Python
                 * 0.2.17, TypeScript: "invalid port-forward spec") */
                *msg = xasprintf("parse port-forward spec: invalid port-forward spec: \"%s\" (expected "
                                 "[LOCAL_PORT:]REMOTE_PORT with ports 1..65535 written as digits, for example "
                                 "\"8080\" or \"18080:80\")",
                                 spec);
            jw_free(&tmp);
            return MLK_EPORT_FORWARD;
        }
        jw_obj(&tmp);
        jw_key(&tmp, "local_port");
        jw_int(&tmp, local);
        jw_key(&tmp, "remote_port");
        jw_int(&tmp, remote);
        jw_obj_end(&tmp);
    }
    jw_arr_end(&tmp);
    if (tmp.oom) { jw_free(&tmp); return MLK_ENOMEM; }
    jw_value(w, tmp.buf, tmp.len);
    jw_free(&tmp);
    return w->oom ? MLK_ENOMEM : 0;
}

/* ---- allow-list normalisation ----------------------------------------- */

typedef struct {
    const char **s;   /* pointers into a private copy */
    size_t *len;
    size_t n;
    char *copy;       /* all items joined by commas, split in place */
} hostlist;

static void hostlist_free(hostlist *h)
{
    free(h->s);
    free(h->len);
    free(h->copy);
    memset(h, 0, sizeof *h);
}

/* Split each item on commas, trim, drop empties, de-duplicate keeping the
 * first occurrence. */
static int hostlist_build(const char *const *hosts, size_t n, hostlist *h, char **msg)
{
    memset(h, 0, sizeof *h);
    if (msg) *msg = NULL;
    if (n > 0 && !hosts) {
        if (msg) *msg = xstrdup("allow-list hosts are required: the host list is NULL");
        return MLK_EINVAL;
    }
    size_t total = 1, parts = 1;
    for (size_t i = 0; i < n; i++) {
        const char *s = hosts[i] ? hosts[i] : "";
        total += strlen(s) + 1;
        for (; *s; s++) parts += *s == ',';
        parts++;
    }
    h->copy = malloc(total);
    h->s = malloc(parts * sizeof *h->s);
    h->len = malloc(parts * sizeof *h->len);
    if (!h->copy || !h->s || !h->len) { hostlist_free(h); return MLK_ENOMEM; }
    char *o = h->copy;
    for (size_t i = 0; i < n; i++) {
        const char *s = hosts[i] ? hosts[i] : "";
        size_t l = strlen(s);
        memcpy(o, s, l);
        o[l] = ',';
        o += l + 1;
    }
    *o = '\0';
    for (char *p = h->copy; *p;) {
        char *end = strchr(p, ',');
        const char *item = p;
        size_t l = (size_t)(end - p);
        p = end + 1;
        trim(&item, &l);
        if (l == 0) continue;
        int dup = 0;
        for (size_t j = 0; j < h->n && !dup; j++)
            dup = h->len[j] == l && memcmp(h->s[j], item, l) == 0;
        if (dup) continue;
        h->s[h->n] = item;
        h->len[h->n] = l;
        h->n++;
    }
    if (h->n == 0) {
        if (msg)
            *msg = xstrdup("allow-list hosts are required: none given (after splitting on commas and trimming, "
                           "nothing was left); pass at least one host such as \"api.example.com\"");
        hostlist_free(h);
        return MLK_EALLOW_LIST_HOSTS;
    }
    return 0;
}

int allow_list_render(const char *const *hosts, size_t n, jw *w, char **msg)
{
    hostlist h;
    int rc = hostlist_build(hosts, n, &h, msg);
    if (rc != 0) return rc;
    jw_arr(w);
    for (size_t i = 0; i < h.n; i++) jw_strn(w, h.s[i], h.len[i]);
    jw_arr_end(w);
    hostlist_free(&h);
    return w->oom ? MLK_ENOMEM : 0;
}

MLK_API int mlk_allow_list_normalize(const char *const *hosts, size_t n, char **msgpack, size_t *len)
{
    if (!msgpack) return MLK_EINVAL;
    *msgpack = NULL;
    if (len) *len = 0;
    hostlist h;
    int rc = hostlist_build(hosts, n, &h, NULL);
    if (rc != 0) return rc;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int bad = msgpack_pack_array(&pk, h.n) != 0;
    for (size_t i = 0; i < h.n && !bad; i++)
        bad = msgpack_pack_str(&pk, h.len[i]) != 0 || msgpack_pack_str_body(&pk, h.s[i], h.len[i]) != 0;
    hostlist_free(&h);
    if (bad) { msgpack_sbuffer_destroy(&sb); return MLK_ENOMEM; }
    *msgpack = sb.data;
    if (len) *len = sb.size;
    return 0;
}

MLK_API int mlk_port_forward_parse(const char *const *specs, size_t n, char **json, size_t *len)
{
    if (!json) return MLK_EINVAL;
    *json = NULL;
    if (len) *len = 0;
    jw w;
    jw_init(&w);
    int rc = port_forward_render(specs, n, &w, NULL);
    if (rc != 0) { jw_free(&w); return rc; }
    *json = jw_take(&w, len);
    if (!*json) { jw_free(&w); return MLK_ENOMEM; }
    return 0;
}
