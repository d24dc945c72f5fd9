/* contract.h - the interception rules of the wire contract, as data.
 *
 * One table per rule object (a network rule, a VFS rule): its keys, each
 * key's type, whether a static (wire) rule, a callback rule, or both may
 * carry it, and the keys that name an SDK-local callback.  The builder's
 * checks and rendering (sandbox_intercept.c), hook_parse (hooks.c), the
 * split of a whole interception config (mlk_sandbox_set_interception) and
 * matchlock-local's rule parsers read these tables, so a shape the client
 * sends is by construction a shape the local backend reads.  Private to
 * the core and to matchlock-local; the bindings read the lists through
 * mlk_vfs_op_name and mlk_rule_key_info. */
#ifndef MLK_CONTRACT_H
#define MLK_CONTRACT_H

#include <stddef.h>

enum rule_type {
    RT_STR = 1,     /* a string */
    RT_STRS,        /* an array of strings */
    RT_STRMAP,      /* a map of strings to strings */
    RT_INT,         /* an integer */
    RT_BODY,        /* body replacements: an array of {find, replace} string maps */
    RT_OPS,         /* an array of VFS op names (contract_vfs_ops) */
    RT_CALLBACK,    /* names an SDK-local callback (never sent) */
    RT_BOOL,        /* a boolean */
    RT_RULES,       /* an array of rule maps (an interception config's rules) */
};

/* Where a key may appear: the same bits as MLK_RULE_KEY_* in matchlock.h. */
enum {
    RK_WIRE = 1,      /* in a static rule, sent as it is */
    RK_HOOK = 2,      /* in a callback rule (hook_parse) */
    RK_CALLBACK = 4,  /* names the callback of a callback rule */
    RK_LIST = 8,      /* reported, not stored: the value is an array */
};

typedef struct {
    const char *key;
    int type;         /* RT_* */
    unsigned where;   /* RK_* */
    int kind;         /* RT_CALLBACK: the MLK_HOOK_* kind it names */
    const char *phase;/* RT_CALLBACK: the phase a config's rule must say
                       * ("after"), or that it may say besides "" ("before") */
} rule_key;

typedef struct {
    const char *what;            /* "network" or "vfs" */
    const rule_key *keys;        /* in wire order, {NULL} at the end */
    const char *const *phases;   /* the phases a rule may name, NULL-ended */
    int bad_hook;                /* MLK_EINVALID_NET_HOOK or _VFS_HOOK */
    const char *seed_text;       /* the seed's error text for bad_hook */
} rule_table;

extern const rule_table contract_net_rule;
extern const rule_table contract_vfs_rule;

/* The keys of the other maps the builder takes, {NULL}-ended: a whole
 * interception config (network {rules}; VFS {emit_events, rules}) and an
 * image config (mlk_sandbox_set_image_config). */
extern const rule_key contract_net_config[];
extern const rule_key contract_vfs_config[];
extern const rule_key contract_image_config[];

/* The table of keys mlk_rule_key_info's `which` names, or NULL. */
const rule_key *contract_keys_of(int which);
/* Whether a key of this type holds an array (RK_LIST). */
int contract_type_is_list(int type);

/* The 16 VFS op names, NULL-ended; an op's index is its bit in masks. */
extern const char *const contract_vfs_ops[];

/* The entry for key (n bytes) in t, or NULL. */
const rule_key *contract_key(const rule_table *t, const char *key, size_t n);
/* The index of a VFS op name (n bytes), or -1. */
int contract_vfs_op(const char *op, size_t n);
/* A key type described for messages ("a string", "an array of strings"). */
const char *contract_type_text(int type);

#endif
