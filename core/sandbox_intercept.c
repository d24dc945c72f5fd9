/* sandbox_intercept.c - the builder's interception: static rule configs,
 * SDK-local hooks, and whole configs that hold both
 * (mlk_sandbox_set_interception).  The rules' shapes are the contract's
 * tables (contract.c). */
#include "sandbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int add_hook(mlk_sandbox *sb, int kind, const char *rule, size_t len, mlk_hook_cb cb, void *ud)
{
    if (!sb) return MLK_EINVAL;
    hook h;
    char *msg = NULL;
    int rc = hook_parse(kind, rule, len, cb, ud, &h, &msg);
    if (rc == 0 && hookset_add(&sb->hooks, &h) != 0) rc = MLK_ENOMEM;
    if (rc != 0) sandbox_fail(sb, rc, "%s", msg ? msg : mlk_strerror(rc));
    free(msg);
    return rc;
}

MLK_API int mlk_sandbox_add_network_hook(mlk_sandbox *sb, const char *rule, size_t len, mlk_hook_cb cb, void *ud)
{
    return add_hook(sb, MLK_HOOK_NETWORK, rule, len, cb, ud);
}

MLK_API int mlk_sandbox_add_vfs_hook(mlk_sandbox *sb, int kind, const char *rule, size_t len, mlk_hook_cb cb,
                                     void *ud)
{
    if (kind == MLK_HOOK_NETWORK) return sb ? sandbox_fail(sb, MLK_EINVALID_VFS_HOOK, "add_vfs_hook: kind "
                                                   "MLK_HOOK_NETWORK is not a VFS hook; use "
                                                   "mlk_sandbox_add_network_hook") : MLK_EINVAL;
    return add_hook(sb, kind, rule, len, cb, ud);
}

MLK_API int mlk_sandbox_clear_hooks(mlk_sandbox *sb, int kind)
{
    if (!sb || kind < 0 || kind > MLK_HOOK_VFS_MUTATE) return MLK_EINVAL;
    hookset_remove_kind(&sb->hooks, kind);
    return 0;
}

const hookset *sandbox_hooks(const mlk_sandbox *sb) { return sb ? &sb->hooks : NULL; }

/* ===================================================================== */
/* interception configs                                                   */

/* An interception config checked and split: the static part re-packed
 * (callback rules taken out) and the hooks of the callback rules. */
typedef struct {
    msgpack_sbuffer wire;
    hookset hooks;
} split;

static void split_free(split *x)
{
    msgpack_sbuffer_destroy(&x->wire);
    hookset_clear(&x->hooks);
}

/* The callback key of rule r (NULL when none); fails when it has more
 * (named in the table's order, whatever the map's). */
static int rule_callback(mlk_sandbox *sb, const rule_table *t, const msgpack_object *r, const char *what,
                         const rule_key **out)
{
    *out = NULL;
    for (const rule_key *k = t->keys; k->key; k++) {
        const msgpack_object *v = k->type == RT_CALLBACK ? mp_get(r, k->key) : NULL;
        if (!v || v->type == MSGPACK_OBJECT_NIL || (v->type == MSGPACK_OBJECT_BOOLEAN && !v->via.boolean)) continue;
        if (*out)
            return sandbox_fail(sb, t->bad_hook, "%s: %s: cannot set more than one callback hook (%s and %s)",
                                t->seed_text, what, (*out)->key, k->key);
        *out = k;
    }
    return 0;
}

/* Check one rule of a config; a static one is packed into pk, a callback
 * one (with_callbacks only) becomes a hook in x. */
static int intercept_rule(mlk_sandbox *sb, const rule_table *t, uint32_t idx, const msgpack_object *r,
                          int with_callbacks, mlk_hook_cb cb, void *const *uds, size_t nuds, size_t *next,
                          msgpack_packer *pk, split *x)
{
    char what[64];
    snprintf(what, sizeof what, "%s interception rules[%u]", t->what, idx);
    const rule_key *ck = NULL;
    int rc = 0;
    if (r->type == MSGPACK_OBJECT_MAP && with_callbacks && (rc = rule_callback(sb, t, r, what, &ck))) return rc;
    if (ck) {
        /* true: the next ud, in rule order */
        const msgpack_object *v = mp_get(r, ck->key);
        if (v->type != MSGPACK_OBJECT_BOOLEAN)
            return sandbox_fail(sb, t->bad_hook, "%s: %s: \"%s\" must be true (a callback), got %s", t->seed_text,
                                what, ck->key, mp_kind_text(v));
        if (*next >= nuds)
            return sandbox_fail(sb, t->bad_hook, "%s: %s: \"%s\" names callback %zu but %zu were given",
                                t->seed_text, what, ck->key, *next + 1, nuds);
        size_t i = (*next)++;
        hook h;
        char *msg = NULL;
        rc = hook_parse_obj(ck->kind, r, cb, uds[i], 1, &h, &msg);
        if (rc == 0 && hookset_add(&x->hooks, &h) != 0) rc = MLK_ENOMEM;
        if (rc) sandbox_fail(sb, rc, "%s", msg ? msg : mlk_strerror(rc));
        free(msg);
        return rc;
    }
    char *msg = NULL;
    if (contract_check_rule(t, RK_WIRE, r, what, &msg)) {
        rc = sandbox_fail(sb, MLK_EINVAL, "%s", msg ? msg : "out of memory");
        free(msg);
        return rc;
    }
    if (with_callbacks && t == &contract_vfs_rule) {   /* the SDK's check, as upstream */
        const msgpack_object *a = mp_get(r, "action"), *n = mp_get(r, "name");
        if (a && a->type == MSGPACK_OBJECT_STR && a->via.str.size >= 12) {
            const char *p = a->via.str.ptr;
            size_t len = a->via.str.size;
            while (len && (*p == ' ' || *p == '\t')) { p++; len--; }
            while (len && (p[len - 1] == ' ' || p[len - 1] == '\t')) len--;
            if (len == 12 && strncasecmp(p, "mutate_write", 12) == 0)
                return sandbox_fail(sb, t->bad_hook, "%s: %s \"%.*s\": mutate_write requires mutate_hook callback",
                                    t->seed_text, what, n && n->type == MSGPACK_OBJECT_STR ? (int)n->via.str.size : 0,
                                    n && n->type == MSGPACK_OBJECT_STR ? n->via.str.ptr : "");
        }
    }
    msgpack_pack_object(pk, *r);
    return 0;
}

/* Check and split a whole config (network: {rules}; VFS: {emit_events,
 * rules}); with_callbacks: rules may name a callback (an index into uds). */
static int intercept_parse(mlk_sandbox *sb, const rule_table *t, const char *what, const char *buf, size_t len,
                           int with_callbacks, mlk_hook_cb cb, void *const *uds, size_t nuds, split *x)
{
    int vfs = t == &contract_vfs_rule;
    msgpack_sbuffer_init(&x->wire);
    memset(&x->hooks, 0, sizeof x->hooks);
    msgpack_unpacked u;
    int rc = sandbox_parse_map(sb, what, buf, len, &u);
    if (rc == 0) rc = sandbox_check_keys(sb, what, &u.data, vfs ? contract_vfs_config : contract_net_config);
    const msgpack_object *ee = rc ? NULL : mp_get(&u.data, "emit_events");
    const msgpack_object *rules = rc ? NULL : mp_get(&u.data, "rules");
    if (rc == 0 && ee && ee->type != MSGPACK_OBJECT_BOOLEAN)
        rc = sandbox_fail(sb, MLK_EINVAL, "%s: \"emit_events\" must be a boolean, got %s", what, mp_kind_text(ee));
    if (rc == 0 && rules && rules->type != MSGPACK_OBJECT_ARRAY)
        rc = sandbox_fail(sb, MLK_EINVAL, "%s: \"rules\" must be an array of rule maps, got %s", what,
                          mp_kind_text(rules));
    if (rc == 0) {
        msgpack_packer pk;
        msgpack_packer_init(&pk, &x->wire, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, (ee ? 1 : 0) + (rules ? 1 : 0));
        if (ee) {
            msgpack_pack_str_with_body(&pk, "emit_events", 11);
            msgpack_pack_object(&pk, *ee);
        }
        if (rules) {
            uint32_t nstatic = 0;
            const rule_key *ck;
            for (uint32_t i = 0; i < rules->via.array.size; i++) {
                const msgpack_object *r = &rules->via.array.ptr[i];
                nstatic += !(with_callbacks && r->type == MSGPACK_OBJECT_MAP && !rule_callback(NULL, t, r, "", &ck) && ck);
            }
            msgpack_pack_str_with_body(&pk, "rules", 5);
            msgpack_pack_array(&pk, nstatic);
            size_t next = 0;
            for (uint32_t i = 0; rc == 0 && i < rules->via.array.size; i++)
                rc = intercept_rule(sb, t, i, &rules->via.array.ptr[i], with_callbacks, cb, uds, nuds, &next, &pk, x);
        }
        if (rc == 0 && !x->wire.data) rc = sandbox_nomem(sb, what);
    }
    msgpack_unpacked_destroy(&u);
    if (rc) split_free(x);
    return rc;
}

/* Keep the static part of a checked config. */
static int store(mlk_sandbox *sb, int vfs, split *x)
{
    char **dst = vfs ? &sb->vfs_mp : &sb->net_rules_mp;
    size_t *dlen = vfs ? &sb->vfs_len : &sb->net_rules_len;
    free(*dst);
    *dlen = x->wire.size;
    *dst = msgpack_sbuffer_release(&x->wire);
    if (!vfs) sb->force_interception = 1;
    return 0;
}

MLK_API int mlk_sandbox_set_network_interception(mlk_sandbox *sb, const char *msgpack, size_t len)
{
    if (!sb) return MLK_EINVAL;
    if (!msgpack || len == 0) { /* force interception only; earlier rules stay */
        sb->force_interception = 1;
        return 0;
    }
    split x;
    int rc = intercept_parse(sb, &contract_net_rule, "set_network_interception", msgpack, len, 0, NULL, NULL, 0, &x);
    if (rc == 0) store(sb, 0, &x);
    if (rc == 0) split_free(&x);
    return rc;
}

MLK_API int mlk_sandbox_set_vfs_interception(mlk_sandbox *sb, const char *msgpack, size_t len)
{
    if (!sb) return MLK_EINVAL;
    if (!msgpack || len == 0) { /* clear */
        free(sb->vfs_mp);
        sb->vfs_mp = NULL;
        sb->vfs_len = 0;
        return 0;
    }
    split x;
    int rc = intercept_parse(sb, &contract_vfs_rule, "set_vfs_interception", msgpack, len, 0, NULL, NULL, 0, &x);
    if (rc == 0) store(sb, 1, &x);
    if (rc == 0) split_free(&x);
    return rc;
}

MLK_API int mlk_sandbox_set_interception(mlk_sandbox *sb, int which, const char *msgpack, size_t len,
                                         mlk_hook_cb cb, void *const *uds, size_t nuds)
{
    if (!sb) return MLK_EINVAL;
    if (which != MLK_INTERCEPT_NETWORK && which != MLK_INTERCEPT_VFS)
        return sandbox_fail(sb, MLK_EINVAL, "set_interception: which %d is not MLK_INTERCEPT_NETWORK or "
                                            "MLK_INTERCEPT_VFS", which);
    int vfs = which == MLK_INTERCEPT_VFS;
    if (!msgpack || len == 0)
        return vfs ? mlk_sandbox_set_vfs_interception(sb, NULL, 0) : mlk_sandbox_set_network_interception(sb, NULL, 0);
    split x;
    int rc = intercept_parse(sb, vfs ? &contract_vfs_rule : &contract_net_rule,
                             vfs ? "vfs interception" : "network interception", msgpack, len, 1, cb, uds, nuds, &x);
    if (rc) return rc;
    /* all checked: the config replaces the static rules and hooks of its kind */
    store(sb, vfs, &x);
    if (vfs) {
        for (int k = MLK_HOOK_VFS_AFTER; k <= MLK_HOOK_VFS_MUTATE; k++) hookset_remove_kind(&sb->hooks, k);
    } else {
        hookset_remove_kind(&sb->hooks, MLK_HOOK_NETWORK);
    }
    for (size_t i = 0; rc == 0 && i < x.hooks.n; i++)
        if (hookset_add(&sb->hooks, &x.hooks.v[i]) != 0) rc = sandbox_nomem(sb, "set_interception");
    split_free(&x);
    return rc;
}

/* ===================================================================== */
/* the contract's lists                                                   */

MLK_API const char *mlk_vfs_op_name(size_t i)
{
    for (size_t k = 0; contract_vfs_ops[k]; k++)
        if (k == i) return contract_vfs_ops[k];
    return NULL;
}

MLK_API const char *mlk_rule_key_info(int which, size_t i, unsigned *flags, int *hook_kind)
{
    if (flags) *flags = 0;
    if (hook_kind) *hook_kind = 0;
    const rule_key *keys = contract_keys_of(which);
    for (size_t k = 0; keys && keys[k].key; k++) {
        if (k != i) continue;
        if (flags) *flags = keys[k].where | (contract_type_is_list(keys[k].type) ? RK_LIST : 0);
        if (hook_kind) *hook_kind = keys[k].kind;
        return keys[k].key;
    }
    return NULL;
}

MLK_API const char *mlk_rule_key(int which, size_t i, unsigned *flags)
{
    return mlk_rule_key_info(which, i, flags, NULL);
}
