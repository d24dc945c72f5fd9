/* sandbox.h - the sandbox builder's state, shared by its files (private):
 * sandbox.c (lifecycle, setters, their failures), sandbox_intercept.c
 * (interception configs and hooks), sandbox_render.c (the create params:
 * validation and rendering). */
#ifndef MLK_SANDBOX_H
#define MLK_SANDBOX_H

#include "internal.h"

/* ===================================================================== */
/* small containers                                                       */

typedef struct {
    char **v;
    size_t n;
} strvec;

typedef struct {
    char *key, *val;
} kv;

typedef struct {
    kv *v;
    size_t n;
} kvlist;

struct mount {
    char *guest;
    const char *type;   /* "memory", "host_fs", "overlay" */
    char *host;         /* NULL for memory */
    int readonly;
    int owner_set;      /* MLK_MOUNT_OWNER_UID | MLK_MOUNT_OWNER_GID */
    int64_t owner_uid, owner_gid;
};

struct add_host {
    char *host, *ip;
};

struct secret {
    char *name, *value, *placeholder;
    strvec hosts;
};


struct extra_disk {
    char *host_path, *guest_mount;
    int readonly;
};

struct mlk_sandbox {
    char *image;
    double cpus;
    int64_t memory_mb, disk_mb, timeout_s;
    int privileged;

    char *workspace;
    struct mount *mounts;
    size_t nmounts;

    kvlist env;

    /* network */
    strvec allowed_hosts;
    struct add_host *add_hosts;
    size_t nadd_hosts;
    struct secret *secrets;
    size_t nsecrets;
    int block_private_ips, block_private_ips_set;
    strvec dns_servers;
    char *hostname;
    int64_t mtu;
    int no_network;
    int force_interception;
    char *net_rules_mp;         /* msgpack {"rules":[...]} or NULL */
    size_t net_rules_len;

    char *vfs_mp;               /* msgpack {"emit_events","rules"} or NULL */
    size_t vfs_len;

    strvec port_forwards;
    strvec pf_addresses;

    /* image_config */
    int has_image_config;
    char *ic_user, *ic_working_dir;
    strvec ic_entrypoint, ic_cmd;
    kvlist ic_env;

    char *kernel;
    struct extra_disk *disks;
    size_t ndisks;

    hookset hooks;              /* network and VFS hooks (hooks.c) */

    int err;                    /* first failed setter, 0 when none */
    char *errmsg;
};

void strvec_clear(strvec *s);
int strvec_push(strvec *s, const char *str);
void kvlist_clear(kvlist *l);

/* Record a setter failure (the first one sticks) and return its code. */
int sandbox_fail(mlk_sandbox *sb, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int sandbox_nomem(mlk_sandbox *sb, const char *what);
/* Parse a msgpack document that must be a map (u is always initialised). */
int sandbox_parse_map(mlk_sandbox *sb, const char *what, const char *buf, size_t len, msgpack_unpacked *u);
/* Fail on the first key of `map` that is not a string or not in `known`
 * (a contract table, {NULL}-ended); 0 when all keys are fine. */
int sandbox_check_keys(mlk_sandbox *sb, const char *what, const msgpack_object *map, const rule_key *known);

#endif
