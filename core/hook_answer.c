/* hook_answer.c - what a hook may answer, checked and rendered once for
 * every language.
 *
 * mlk_hook_reply() and mlk_hook_answer_check() read the answer's shape from
 * the tables below: a network answer is a map of known keys (anything else
 * is an error that names the key and the keys it may have), its values of
 * the types the server reads; a VFS action answer is "allow" or "block";
 * a mutate answer is bytes.  The bindings convert their values to msgpack
 * and hold no rule of their own. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The shape of one value in a network answer. */
typedef enum {
    A_MAP,      /* a map of the fields in `sub` */
    A_ACTION,   /* "allow" | "block" | "mutate" (case and surrounding blanks ignored) */
    A_STR,      /* a string */
    A_STRMAP,   /* {name: string}, or nil (no change) */
    A_SLICEMAP, /* {name: string | [string]}, or nil (no change); sent as lists */
    A_REPLACE,  /* [{find: string, replace?: string}] */
    A_BODY,     /* bytes (bin or str): sent base64-encoded as set_body_base64 */
    A_BODY_B64, /* str: base64 already, sent as is; bin: encoded by the core */
} atype;

typedef struct afield {
    const char *key;
    const char *wire; /* the key on the wire when it differs (NULL: key) */
    atype type;
    const struct afield *sub;
    const char *not_with; /* a key that may not be given too */
} afield;

static const afield net_request[] = {
    {"headers", NULL, A_SLICEMAP, NULL},
    {"query", NULL, A_STRMAP, NULL},
    {"path", NULL, A_STR, NULL},
    {NULL, NULL, 0, NULL},
};
static const afield net_response[] = {
    {"headers", NULL, A_SLICEMAP, NULL},
    {"body_replacements", NULL, A_REPLACE, NULL},
    {"set_body", "set_body_base64", A_BODY, NULL, "set_body_base64"},
    {"set_body_base64", NULL, A_BODY_B64, NULL},
    {NULL, NULL, 0, NULL},
};
static const afield net_answer[] = {
    {"action", NULL, A_ACTION, NULL},
    {"request", NULL, A_MAP, net_request},
    {"response", NULL, A_MAP, net_response},
    {NULL, NULL, 0, NULL},
};
static const afield replacement[] = {
    {"find", NULL, A_STR, NULL},
    {"replace", NULL, A_STR, NULL},
    {NULL, NULL, 0, NULL},
};

static const char *const net_actions[] = {"allow", "block", "mutate", NULL};
static const char *const vfs_decisions[] = {"allow", "block", NULL};

static int is_str(const msgpack_object *o) { return o->type == MSGPACK_OBJECT_STR; }
static int is_bytes(const msgpack_object *o) { return o->type == MSGPACK_OBJECT_STR || o->type == MSGPACK_OBJECT_BIN; }

/* Set *msg (once: the first error wins) and return -1. */
static int fail(char **msg, const char *where, const char *fmt, const char *a, const char *b)
{
    if (*msg) return -1;
    char what[256];
    snprintf(what, sizeof what, fmt, a ? a : "", b ? b : "");
    *msg = xasprintf("%s: %s", where, what);
    return -1;
}

/* `s` (n bytes) trimmed of blanks and lowered into buf; the index of the
 * word in `words` it is, or -1. */
static int word_index(const char *s, size_t n, const char *const *words, char *buf, size_t cap)
{
    while (n && (*s == ' ' || *s == '\t')) s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    size_t m = n < cap - 1 ? n : cap - 1;
    for (size_t i = 0; i < m; i++) buf[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] | 0x20 : s[i]);
    buf[m] = '\0';
    if (m != n) return -1;
    for (int i = 0; words[i]; i++)
        if (strcmp(buf, words[i]) == 0) return i;
    return -1;
}

/* The keys of a table, "a, b, c". */
static void key_list(const afield *f, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = '\0';
    for (; f->key && n < cap; f++) n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? ", " : "", f->key);
}

/* A map key as text for a message (bounded, control bytes shown as '?'). */
static void key_text(const msgpack_object *k, char *buf, size_t cap)
{
    if (!is_str(k)) { snprintf(buf, cap, "(%s)", mp_kind_text(k)); return; }
    size_t n = k->via.str.size < cap - 1 ? k->via.str.size : cap - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)k->via.str.ptr[i];
        buf[i] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
    }
    buf[n] = '\0';
}

static int check_value(const afield *f, const msgpack_object *v, jw *w, const char *where, char **msg);

/* The value of `key` in map o, or NULL when absent or nil. */
static const msgpack_object *field_value(const msgpack_object *o, const char *key)
{
    const msgpack_object *v = mp_get(o, key);
    return v && v->type != MSGPACK_OBJECT_NIL ? v : NULL;
}

/* A map of the fields in `fields`: unknown keys are errors; nil values are
 * left out; rendered with the wire names. */
static int check_map(const afield *fields, const msgpack_object *o, jw *w, const char *where, char **msg)
{
    if (o->type != MSGPACK_OBJECT_MAP) return fail(msg, where, "expected a map, got %s", mp_kind_text(o), NULL);
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key;
        const afield *f = fields;
        while (f->key && !mp_key_is(k, f->key)) f++;
        if (!f->key) {
            char name[64], keys[160];
            key_text(k, name, sizeof name);
            key_list(fields, keys, sizeof keys);
            return fail(msg, where, "unknown key \"%s\"; expected %s", name, keys);
        }
    }
    if (w) jw_obj(w);
    for (const afield *f = fields; f->key; f++) {
        const msgpack_object *v = field_value(o, f->key);
        if (!v || (f->type == A_STR && is_str(v) && v->via.str.size == 0)) continue; /* "": no change */
        if (f->not_with && field_value(o, f->not_with))
            return fail(msg, where, "give \"%s\" or \"%s\", not both", f->key, f->not_with);
        char sub[128];
        snprintf(sub, sizeof sub, "%s.%s", where, f->key);
        if (w) jw_key(w, f->wire ? f->wire : f->key);
        if (check_value(f, v, w, sub, msg) != 0) return -1;
    }
    if (w) jw_obj_end(w);
    return 0;
}

static int check_value(const afield *f, const msgpack_object *v, jw *w, const char *where, char **msg)
{
    char buf[16];
    switch (f->type) {
    case A_MAP:
        return check_map(f->sub, v, w, where, msg);
    case A_ACTION:
        if (!is_str(v)) return fail(msg, where, "expected \"allow\", \"block\" or \"mutate\", got %s", mp_kind_text(v), NULL);
        {
            int i = word_index(v->via.str.ptr, v->via.str.size, net_actions, buf, sizeof buf);
            if (i < 0 && buf[0] == '\0' && v->via.str.size < sizeof buf) i = 0; /* blank: allow */
            if (i < 0) return fail(msg, where, "invalid action \"%s\"; expected allow, block or mutate", buf, NULL);
            if (w) jw_str(w, net_actions[i]);
        }
        return 0;
    case A_STR:
        if (!is_str(v)) return fail(msg, where, "expected a string, got %s", mp_kind_text(v), NULL);
        if (w) jw_strn(w, v->via.str.ptr, v->via.str.size);
        return 0;
    case A_STRMAP:
    case A_SLICEMAP:
        if (v->type != MSGPACK_OBJECT_MAP)
            return fail(msg, where, f->type == A_STRMAP ? "expected a map of name to string, got %s"
                                                        : "expected a map of name to string or list of strings, got %s",
                        mp_kind_text(v), NULL);
        if (w) jw_obj(w);
        for (uint32_t i = 0; i < v->via.map.size; i++) {
            const msgpack_object *k = &v->via.map.ptr[i].key, *x = &v->via.map.ptr[i].val;
            char name[64];
            key_text(k, name, sizeof name);
            if (!is_str(k)) return fail(msg, where, "a name is %s, expected a string", mp_kind_text(k), NULL);
            if (w) { jw_strn(w, k->via.str.ptr, k->via.str.size); jw_raw(w, ":", 1); w->need_comma[w->depth] = 2; }
            if (is_str(x)) {
                if (w && f->type == A_SLICEMAP) jw_arr(w);
                if (w) jw_strn(w, x->via.str.ptr, x->via.str.size);
                if (w && f->type == A_SLICEMAP) jw_arr_end(w);
            } else if (f->type == A_SLICEMAP && x->type == MSGPACK_OBJECT_ARRAY) {
                if (w) jw_arr(w);
                for (uint32_t j = 0; j < x->via.array.size; j++) {
                    const msgpack_object *y = &x->via.array.ptr[j];
                    if (!is_str(y)) return fail(msg, where, "\"%s\" has a value that is %s, expected a string", name, mp_kind_text(y));
                    if (w) jw_strn(w, y->via.str.ptr, y->via.str.size);
                }
                if (w) jw_arr_end(w);
            } else {
                return fail(msg, where, f->type == A_STRMAP ? "\"%s\" is %s, expected a string"
                                                            : "\"%s\" is %s, expected a string or a list of strings",
                            name, mp_kind_text(x));
            }
        }
        if (w) jw_obj_end(w);
        return 0;
    case A_REPLACE:
        if (v->type != MSGPACK_OBJECT_ARRAY)
            return fail(msg, where, "expected a list of {find, replace}, got %s", mp_kind_text(v), NULL);
        if (w) jw_arr(w);
        for (uint32_t j = 0; j < v->via.array.size; j++) {
            const msgpack_object *r = &v->via.array.ptr[j];
            if (check_map(replacement, r, w, where, msg) != 0) return -1;
            const msgpack_object *find = field_value(r, "find");
            if (!find || find->via.str.size == 0) return fail(msg, where, "a replacement needs a non-empty \"find\"%s%s", NULL, NULL);
        }
        if (w) jw_arr_end(w);
        return 0;
    case A_BODY:
        if (!is_bytes(v)) return fail(msg, where, "expected bytes or a string, got %s", mp_kind_text(v), NULL);
        if (w) jw_b64(w, v->via.str.ptr, v->via.str.size); /* str and bin share their layout */
        return 0;
    case A_BODY_B64:
        if (!is_bytes(v)) return fail(msg, where, "expected a base64 string (or bytes), got %s", mp_kind_text(v), NULL);
        if (w && is_str(v)) jw_strn(w, v->via.str.ptr, v->via.str.size);
        else if (w) jw_b64(w, v->via.bin.ptr, v->via.bin.size);
        return 0;
    }
    return fail(msg, where, "unknown field type%s%s", NULL, NULL);
}

int hook_answer_network(const msgpack_object *o, jw *w, char **msg)
{
    *msg = NULL;
    if (!o || o->type == MSGPACK_OBJECT_NIL) {
        if (w) jw_raw(w, "{}", 2);
        return 0;
    }
    if (o->type != MSGPACK_OBJECT_MAP) {
        *msg = xasprintf("invalid network hook: the answer is %s, expected a map (or nil)", mp_kind_text(o));
        return MLK_EINVALID_NET_HOOK;
    }
    char *m = NULL;
    if (check_map(net_answer, o, w, "answer", &m) != 0) {
        *msg = xasprintf("invalid network hook: %s", m ? m : "out of memory");
        free(m);
        return MLK_EINVALID_NET_HOOK;
    }
    return 0;
}

int hook_answer_action(const msgpack_object *o, int *block, char **msg)
{
    *msg = NULL;
    *block = 0;
    if (o && o->type == MSGPACK_OBJECT_MAP) o = field_value(o, "action");
    if (!o || o->type == MSGPACK_OBJECT_NIL) return 0;
    char buf[16];
    int i = -1;
    if (is_str(o)) {
        if (o->via.str.size == 0) return 0;
        i = word_index(o->via.str.ptr, o->via.str.size, vfs_decisions, buf, sizeof buf);
        if (i < 0 && buf[0] == '\0') return 0; /* only blanks: allow */
    }
    if (i < 0) {
        *msg = xstrdup("invalid vfs hook: an action hook answers \"allow\" or \"block\"");
        return MLK_EINVALID_VFS_HOOK;
    }
    *block = i == 1;
    return 0;
}

int hook_answer_mutate(const msgpack_object *o, const char **p, size_t *n, char **msg)
{
    *msg = NULL;
    *p = NULL;
    *n = 0;
    if (o && o->type == MSGPACK_OBJECT_MAP) o = field_value(o, "data");
    if (!o || o->type == MSGPACK_OBJECT_NIL) return 0; /* keep the bytes */
    if (!is_bytes(o)) {
        *msg = xasprintf("invalid vfs hook: a mutate hook answers with bytes (or nil to keep them), got %s",
                         mp_kind_text(o));
        return MLK_EINVALID_VFS_HOOK;
    }
    *p = o->via.str.size ? o->via.str.ptr : "";
    *n = o->via.str.size;
    return 0;
}

MLK_API int mlk_hook_answer_check(int kind, const char *msgpack, size_t len, char **msg)
{
    char *why = NULL;
    int rc = 0;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    const msgpack_object *o = NULL;
    if (msgpack && len) {
        if (mp_parse(msgpack, len, &u) == 0) o = &u.data;
        else {
            rc = kind == MLK_HOOK_NETWORK ? MLK_EINVALID_NET_HOOK : MLK_EINVALID_VFS_HOOK;
            why = xstrdup("invalid hook answer: not a msgpack value");
        }
    }
    int block;
    const char *p;
    size_t n;
    if (!rc) switch (kind) {
        case MLK_HOOK_NETWORK: rc = hook_answer_network(o, NULL, &why); break;
        case MLK_HOOK_VFS_ACTION: rc = hook_answer_action(o, &block, &why); break;
        case MLK_HOOK_VFS_MUTATE: rc = hook_answer_mutate(o, &p, &n, &why); break;
        case MLK_HOOK_VFS_AFTER:
        case MLK_HOOK_VFS_DANGEROUS: break; /* nobody reads their answer */
        default: rc = MLK_EINVAL; why = xasprintf("unknown hook kind %d", kind); break;
        }
    msgpack_unpacked_destroy(&u);
    if (msg) *msg = rc ? (why ? why : xstrdup("out of memory")) : NULL;
    else free(why);
    return rc;
}
