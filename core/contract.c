/* contract.c - the interception rules of the wire contract, as data
 * (contract.h), and the shape check every reader of a rule shares. */
#include "contract.h"
#include "internal.h"

#include <stdio.h>
#include <string.h>

#define W RK_WIRE
#define H RK_HOOK

static const rule_key net_keys[] = {
    {"name", RT_STR, W | H, 0, NULL},
    {"phase", RT_STR, W | H, 0, NULL},
    {"hosts", RT_STRS, W | H, 0, NULL},
    {"methods", RT_STRS, W | H, 0, NULL},
    {"path", RT_STR, W | H, 0, NULL},
    {"action", RT_STR, W | H, 0, NULL},
    {"callback_id", RT_STR, W, 0, NULL},
    {"timeout_ms", RT_INT, W | H, 0, NULL},
    /* static mutations may ride along with a callback, as upstream allows */
    {"set_headers", RT_STRMAP, W | H, 0, NULL},
    {"delete_headers", RT_STRS, W | H, 0, NULL},
    {"set_query", RT_STRMAP, W | H, 0, NULL},
    {"delete_query", RT_STRS, W | H, 0, NULL},
    {"rewrite_path", RT_STR, W | H, 0, NULL},
    {"set_response_headers", RT_STRMAP, W | H, 0, NULL},
    {"delete_response_headers", RT_STRS, W | H, 0, NULL},
    {"body_replacements", RT_BODY, W | H, 0, NULL},
    {"hook", RT_CALLBACK, RK_CALLBACK, MLK_HOOK_NETWORK, NULL},
    {NULL, 0, 0, 0, NULL},
};

static const rule_key vfs_keys[] = {
    {"name", RT_STR, W | H, 0, NULL},
    {"phase", RT_STR, W | H, 0, NULL},
    {"ops", RT_OPS, W | H, 0, NULL},
    {"path", RT_STR, W | H, 0, NULL},
    {"action", RT_STR, W | H, 0, NULL},
    {"timeout_ms", RT_INT, W | H, 0, NULL},
    {"hook", RT_CALLBACK, RK_CALLBACK, MLK_HOOK_VFS_AFTER, "after"},
    {"dangerous_hook", RT_CALLBACK, RK_CALLBACK, MLK_HOOK_VFS_DANGEROUS, "after"},
    {"action_hook", RT_CALLBACK, RK_CALLBACK, MLK_HOOK_VFS_ACTION, "before"},
    {"mutate_hook", RT_CALLBACK, RK_CALLBACK, MLK_HOOK_VFS_MUTATE, "before"},
    {NULL, 0, 0, 0, NULL},
};

const rule_key contract_net_config[] = {
    {"rules", RT_RULES, W, 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

const rule_key contract_vfs_config[] = {
    {"emit_events", RT_BOOL, W, 0, NULL},
    {"rules", RT_RULES, W, 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

const rule_key contract_image_config[] = {
    {"user", RT_STR, W, 0, NULL},
    {"working_dir", RT_STR, W, 0, NULL},
    {"entrypoint", RT_STRS, W, 0, NULL},
    {"cmd", RT_STRS, W, 0, NULL},
    {"env", RT_STRMAP, W, 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

#undef W
#undef H


static const char *const both_phases[] = {"before", "after", NULL};

const rule_table contract_net_rule = {"network", net_keys, both_phases, MLK_EINVALID_NET_HOOK, "invalid network hook"};
const rule_table contract_vfs_rule = {"vfs", vfs_keys, both_phases, MLK_EINVALID_VFS_HOOK, "invalid vfs hook"};

const char *const contract_vfs_ops[] = {"stat", "readdir", "open", "create", "mkdir", "chmod", "remove",
                                        "remove_all", "rename", "symlink", "readlink", "read", "write", "close",
                                        "sync", "truncate", NULL};

const rule_key *contract_keys_of(int which)
{
    switch (which) {
    case MLK_INTERCEPT_NETWORK: return contract_net_rule.keys;
    case MLK_INTERCEPT_VFS: return contract_vfs_rule.keys;
    case MLK_KEYS_NETWORK_CONFIG: return contract_net_config;
    case MLK_KEYS_VFS_CONFIG: return contract_vfs_config;
    case MLK_KEYS_IMAGE_CONFIG: return contract_image_config;
    default: return NULL;
    }
}

int contract_type_is_list(int type)
{
    return type == RT_STRS || type == RT_BODY || type == RT_OPS || type == RT_RULES;
}

const rule_key *contract_key(const rule_table *t, const char *key, size_t n)
{
    for (const rule_key *k = t->keys; k->key; k++)
        if (strlen(k->key) == n && memcmp(k->key, key, n) == 0) return k;
    return NULL;
}

int contract_vfs_op(const char *op, size_t n)
{
    for (int i = 0; contract_vfs_ops[i]; i++)
        if (strlen(contract_vfs_ops[i]) == n && memcmp(contract_vfs_ops[i], op, n) == 0) return i;
    return -1;
}

const char *contract_type_text(int type)
{
    switch (type) {
    case RT_STR: return "a string";
    case RT_STRS: return "an array of strings";
    case RT_STRMAP: return "a map of strings to strings";
    case RT_INT: return "an integer";
    case RT_BODY: return "an array of {find, replace} maps";
    case RT_OPS: return "an array of VFS op names";
    case RT_CALLBACK: return "true (a callback)";
    case RT_BOOL: return "a boolean";
    case RT_RULES: return "an array of rule maps";
    default: return "?";
    }
}

/* ---- the shape check on msgpack (the builder, hook_parse) ------------- */

const char *mp_kind_text(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return "nil";
    case MSGPACK_OBJECT_BOOLEAN: return "a boolean";
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "an integer";
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return "a float";
    case MSGPACK_OBJECT_STR: return "a string";
    case MSGPACK_OBJECT_BIN: return "binary";
    case MSGPACK_OBJECT_ARRAY: return "an array";
    case MSGPACK_OBJECT_MAP: return "a map";
    default: return "an ext value";
    }
}

int mp_key_is(const msgpack_object *k, const char *name)
{
    size_t n = strlen(name);
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n && memcmp(k->via.str.ptr, name, n) == 0;
}

const msgpack_object *mp_get(const msgpack_object *map, const char *name)
{
    if (!map || map->type != MSGPACK_OBJECT_MAP) return NULL;
    for (uint32_t i = 0; i < map->via.map.size; i++)
        if (mp_key_is(&map->via.map.ptr[i].key, name)) return &map->via.map.ptr[i].val;
    return NULL;
}

int mp_is_str_array(const msgpack_object *o)
{
    if (!o || o->type != MSGPACK_OBJECT_ARRAY) return 0;
    for (uint32_t i = 0; i < o->via.array.size; i++)
        if (o->via.array.ptr[i].type != MSGPACK_OBJECT_STR) return 0;
    return 1;
}

int mp_is_str_map(const msgpack_object *o)
{
    if (!o || o->type != MSGPACK_OBJECT_MAP) return 0;
    for (uint32_t i = 0; i < o->via.map.size; i++)
        if (o->via.map.ptr[i].key.type != MSGPACK_OBJECT_STR || o->via.map.ptr[i].val.type != MSGPACK_OBJECT_STR)
            return 0;
    return 1;
}

/* The keys of t allowed where `mode` says, for a message. */
static void key_list(const rule_table *t, unsigned mode, char *buf, size_t cap)
{
    buf[0] = '\0';
    for (const rule_key *k = t->keys; k->key; k++) {
        if (!(k->where & mode)) continue;
        if (buf[0]) strncat(buf, ", ", cap - strlen(buf) - 1);
        strncat(buf, k->key, cap - strlen(buf) - 1);
    }
}

static int type_ok(const rule_key *k, const msgpack_object *v, unsigned mode, char **msg, const char *what)
{
    switch (k->type) {
    case RT_STR: return v->type == MSGPACK_OBJECT_STR;
    case RT_STRS: return mp_is_str_array(v);
    case RT_STRMAP: return mp_is_str_map(v);
    case RT_INT:
        if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER && (mode & RK_HOOK)) {
            *msg = xasprintf("%s: \"%s\" must be a non-negative integer, got %lld", what, k->key,
                             (long long)v->via.i64);
            return -1;
        }
        return v->type == MSGPACK_OBJECT_POSITIVE_INTEGER || v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
    case RT_CALLBACK: return v->type == MSGPACK_OBJECT_BOOLEAN;
    case RT_OPS:
        if (!mp_is_str_array(v)) return 0;
        for (uint32_t i = 0; (mode & RK_HOOK) && i < v->via.array.size; i++) {
            const msgpack_object_str *s = &v->via.array.ptr[i].via.str;
            if (contract_vfs_op(s->ptr, s->size) < 0) {
                char ops[256] = "";
                for (const char *const *o = contract_vfs_ops; *o; o++) {
                    if (o != contract_vfs_ops) strncat(ops, ", ", sizeof ops - strlen(ops) - 1);
                    strncat(ops, *o, sizeof ops - strlen(ops) - 1);
                }
                *msg = xasprintf("%s: unknown op \"%.*s\"; the ops are %s", what, (int)s->size, s->ptr, ops);
                return -1;
            }
        }
        return 1;
    case RT_BODY:
        if (v->type != MSGPACK_OBJECT_ARRAY) return 0;
        for (uint32_t i = 0; i < v->via.array.size; i++) {
            const msgpack_object *b = &v->via.array.ptr[i];
            const msgpack_object *f = mp_get(b, "find"), *rp = mp_get(b, "replace");
            int extra = 0;
            for (uint32_t j = 0; b->type == MSGPACK_OBJECT_MAP && j < b->via.map.size; j++)
                extra |= !mp_key_is(&b->via.map.ptr[j].key, "find") && !mp_key_is(&b->via.map.ptr[j].key, "replace");
            if (b->type != MSGPACK_OBJECT_MAP || extra || !f || f->type != MSGPACK_OBJECT_STR ||
                (rp && rp->type != MSGPACK_OBJECT_STR)) {
                *msg = xasprintf("%s: body_replacements[%u] must be a map {find, replace} of strings "
                                 "(find required), got %s", what, i, mp_kind_text(b));
                return -1;
            }
        }
        return 1;
    }
    return 0;
}

int contract_check_rule(const rule_table *t, unsigned mode, const msgpack_object *r, const char *what, char **msg)
{
    *msg = NULL;
    if (r->type != MSGPACK_OBJECT_MAP) {
        *msg = xasprintf("%s: expected a map but got %s", what, mp_kind_text(r));
        return -1;
    }
    for (uint32_t i = 0; i < r->via.map.size; i++) {
        const msgpack_object *k = &r->via.map.ptr[i].key, *v = &r->via.map.ptr[i].val;
        if (k->type != MSGPACK_OBJECT_STR) {
            *msg = xasprintf("%s: a key is %s; keys must be strings", what, mp_kind_text(k));
            return -1;
        }
        const rule_key *rk = contract_key(t, k->via.str.ptr, k->via.str.size);
        if (!rk || !(rk->where & mode)) {
            char list[512];
            key_list(t, mode, list, sizeof list);
            *msg = xasprintf("%s: unknown key \"%.*s\"; known keys are %s", what, (int)k->via.str.size,
                             k->via.str.ptr, list);
            return -1;
        }
        if (v->type == MSGPACK_OBJECT_NIL) continue;   /* nil: absent */
        int ok = type_ok(rk, v, mode, msg, what);
        if (ok < 0) return -1;
        if (!ok) {
            *msg = xasprintf("%s: \"%s\" must be %s, got %s", what, rk->key, contract_type_text(rk->type),
                             mp_kind_text(v));
            return -1;
        }
    }
    return 0;
}

/* Copy a msgpack field into w under `key` when it is not empty (Go's
 * omitempty: "", [], {}, 0 and false are left out). */
static void write_field(jw *w, const msgpack_object *map, const char *key)
{
    const msgpack_object *v = mp_get(map, key);
    if (!v) return;
    switch (v->type) {
    case MSGPACK_OBJECT_NIL: return;
    case MSGPACK_OBJECT_BOOLEAN: if (!v->via.boolean) return; break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER: if (v->via.u64 == 0) return; break;
    case MSGPACK_OBJECT_STR: if (v->via.str.size == 0) return; break;
    case MSGPACK_OBJECT_ARRAY: if (v->via.array.size == 0) return; break;
    case MSGPACK_OBJECT_MAP: if (v->via.map.size == 0) return; break;
    default: break;
    }
    jw_key(w, key);
    if (!strcmp(key, "body_replacements")) {   /* {find, replace}: replace omitted when empty */
        jw_arr(w);
        for (uint32_t j = 0; j < v->via.array.size; j++) {
            const msgpack_object *b = &v->via.array.ptr[j];
            jw_obj(w);
            jw_key(w, "find");
            mp_to_json(mp_get(b, "find"), w);
            write_field(w, b, "replace");
            jw_obj_end(w);
        }
        jw_arr_end(w);
        return;
    }
    mp_to_json(v, w);
}

void contract_write_rule(const rule_table *t, unsigned mode, const msgpack_object *r, const char *const *skip,
                         jw *w)
{
    for (const rule_key *k = t->keys; k->key; k++) {
        if (!(k->where & mode) || k->type == RT_CALLBACK) continue;
        int skipped = 0;
        for (const char *const *s = skip; s && *s && !skipped; s++) skipped = !strcmp(*s, k->key);
        if (!skipped) write_field(w, r, k->key);
    }
}
