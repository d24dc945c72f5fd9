/* sandbox.c - the sandbox builder (mlk_sandbox_*) and the rendering of the
 * `create` params (PROTOCOL section 5).
 *
 * Setters only record what they are given (copying it); the upstream
 * validation rules run in sandbox_render(), before anything is sent, so a
 * builder can be filled in any order.  Structured inputs given as msgpack
 * (env maps, image config, interception configs) are checked for shape when
 * they are set.  A setter that fails is remembered: the first failure is
 * reported again by sandbox_render(), so a caller that ignored a setter's
 * return value never creates a sandbox other than the one it asked for. */
#include "internal.h"

#include <arpa/inet.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_CPUS 1.0
#define DEFAULT_MEMORY_MB 512
#define DEFAULT_DISK_MB 5120
#define DEFAULT_TIMEOUT_S 300

/* The CPU count create is checked against: $MATCHLOCK_HOST_CPUS when set
 * (the sandbox runs on another machine through a launcher, or a test pins
 * it), else this host's online CPUs. */
static long host_cpus(void)
{
    const char *e = getenv("MATCHLOCK_HOST_CPUS");
    char *end;
    long n = e && *e ? strtol(e, &end, 10) : 0;
    if (n > 0 && *end == '\0') return n;
    return sysconf(_SC_NPROCESSORS_ONLN);
}

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

/* Free a secret's strings; its value is wiped first (never left in a
 * freed block). */
static void secret_clear(struct secret *s);

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

static void strvec_clear(strvec *s)
{
    for (size_t i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
    s->v = NULL;
    s->n = 0;
}

static int strvec_push(strvec *s, const char *str)
{
    char *c = strdup(str);
    char **v = c ? realloc(s->v, (s->n + 1) * sizeof *v) : NULL;
    if (!v) { free(c); return MLK_ENOMEM; }
    v[s->n++] = c;
    s->v = v;
    return 0;
}

/* Replace s with a copy of argv[0..n). */
static int strvec_set(strvec *s, const char *const *argv, size_t n)
{
    strvec t = {0};
    for (size_t i = 0; i < n; i++)
        if (strvec_push(&t, argv[i]) != 0) { strvec_clear(&t); return MLK_ENOMEM; }
    strvec_clear(s);
    *s = t;
    return 0;
}

static void kvlist_clear(kvlist *l)
{
    for (size_t i = 0; i < l->n; i++) { free(l->v[i].key); free(l->v[i].val); }
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* Set key to val: an existing key keeps its position, a new one goes last. */
static int kvlist_put(kvlist *l, const char *key, size_t klen, const char *val, size_t vlen)
{
    char *v = strndup(val, vlen);
    if (!v) return MLK_ENOMEM;
    for (size_t i = 0; i < l->n; i++) {
        if (strlen(l->v[i].key) == klen && memcmp(l->v[i].key, key, klen) == 0) {
            free(l->v[i].val);
            l->v[i].val = v;
            return 0;
        }
    }
    char *k = strndup(key, klen);
    kv *nv = k ? realloc(l->v, (l->n + 1) * sizeof *nv) : NULL;
    if (!nv) { free(k); free(v); return MLK_ENOMEM; }
    nv[l->n].key = k;
    nv[l->n].val = v;
    l->n++;
    l->v = nv;
    return 0;
}

static void secret_clear(struct secret *s)
{
    free(s->name);
    secret_free(s->value);
    free(s->placeholder);
    strvec_clear(&s->hosts);
    memset(s, 0, sizeof *s);
}

/* Replace *dst with a copy of src (NULL and "" clear it). */
static int set_str(char **dst, const char *src)
{
    char *c = NULL;
    if (src && *src && !(c = strdup(src))) return MLK_ENOMEM;
    free(*dst);
    *dst = c;
    return 0;
}

/* Record a setter failure (the first one sticks) and return its code. */
static int fail(mlk_sandbox *sb, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(mlk_sandbox *sb, int code, const char *fmt, ...)
{
    if (sb && !sb->err) {
        va_list ap;
        char *m = NULL;
        va_start(ap, fmt);
        if (vasprintf(&m, fmt, ap) < 0) m = NULL;
        va_end(ap);
        sb->err = code;
        sb->errmsg = m;
    }
    return code;
}

static int nomem(mlk_sandbox *sb, const char *what)
{
    return fail(sb, MLK_ENOMEM, "%s: out of memory", what);
}

/* ===================================================================== */
/* lifecycle and simple setters                                           */

MLK_API mlk_sandbox *mlk_sandbox_new(const char *image)
{
    mlk_sandbox *sb = calloc(1, sizeof *sb);
    if (!sb) return NULL;
    if (set_str(&sb->image, image) != 0) { free(sb); return NULL; }
    return sb;
}

MLK_API void mlk_sandbox_free(mlk_sandbox *sb)
{
    if (!sb) return;
    free(sb->image);
    free(sb->workspace);
    for (size_t i = 0; i < sb->nmounts; i++) { free(sb->mounts[i].guest); free(sb->mounts[i].host); }
    free(sb->mounts);
    kvlist_clear(&sb->env);
    strvec_clear(&sb->allowed_hosts);
    for (size_t i = 0; i < sb->nadd_hosts; i++) { free(sb->add_hosts[i].host); free(sb->add_hosts[i].ip); }
    free(sb->add_hosts);
    for (size_t i = 0; i < sb->nsecrets; i++) secret_clear(&sb->secrets[i]);
    free(sb->secrets);
    strvec_clear(&sb->dns_servers);
    free(sb->hostname);
    free(sb->net_rules_mp);
    free(sb->vfs_mp);
    strvec_clear(&sb->port_forwards);
    strvec_clear(&sb->pf_addresses);
    free(sb->ic_user);
    free(sb->ic_working_dir);
    strvec_clear(&sb->ic_entrypoint);
    strvec_clear(&sb->ic_cmd);
    kvlist_clear(&sb->ic_env);
    free(sb->kernel);
    for (size_t i = 0; i < sb->ndisks; i++) { free(sb->disks[i].host_path); free(sb->disks[i].guest_mount); }
    free(sb->disks);
    hookset_clear(&sb->hooks);
    free(sb->errmsg);
    free(sb);
}

static int add_hook(mlk_sandbox *sb, int kind, const char *rule, size_t len, mlk_hook_cb cb, void *ud)
{
    if (!sb) return MLK_EINVAL;
    hook h;
    char *msg = NULL;
    int rc = hook_parse(kind, rule, len, cb, ud, &h, &msg);
    if (rc == 0 && hookset_add(&sb->hooks, &h) != 0) rc = MLK_ENOMEM;
    if (rc != 0) fail(sb, rc, "%s", msg ? msg : mlk_strerror(rc));
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
    if (kind == MLK_HOOK_NETWORK) return sb ? fail(sb, MLK_EINVALID_VFS_HOOK, "add_vfs_hook: kind "
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

const char *sandbox_workspace(const mlk_sandbox *sb) { return sb ? sb->workspace : NULL; }


MLK_API int mlk_sandbox_set_cpus(mlk_sandbox *sb, double cpus)
{
    if (!sb) return MLK_EINVAL;
    sb->cpus = cpus; /* checked in sandbox_render (upstream ErrInvalidCPUCount) */
    return 0;
}

MLK_API int mlk_sandbox_set_memory_mb(mlk_sandbox *sb, int64_t mb)
{
    if (!sb) return MLK_EINVAL;
    sb->memory_mb = mb;
    return 0;
}

MLK_API int mlk_sandbox_set_disk_size_mb(mlk_sandbox *sb, int64_t mb)
{
    if (!sb) return MLK_EINVAL;
    sb->disk_mb = mb;
    return 0;
}

MLK_API int mlk_sandbox_set_timeout_s(mlk_sandbox *sb, int64_t seconds)
{
    if (!sb) return MLK_EINVAL;
    sb->timeout_s = seconds;
    return 0;
}

MLK_API int mlk_sandbox_set_privileged(mlk_sandbox *sb, int on)
{
    if (!sb) return MLK_EINVAL;
    sb->privileged = on != 0;
    return 0;
}

MLK_API int mlk_sandbox_set_workspace(mlk_sandbox *sb, const char *guest_path)
{
    if (!sb) return MLK_EINVAL;
    return set_str(&sb->workspace, guest_path) ? nomem(sb, "set_workspace") : 0;
}

/* Add or replace (same guest path) a mount. */
static int add_mount(mlk_sandbox *sb, const char *what, const char *guest, const char *type,
                     const char *host, int readonly)
{
    if (!sb) return MLK_EINVAL;
    if (!guest || !*guest)
        return fail(sb, MLK_EINVAL, "%s: the guest path is empty; pass an absolute path under the workspace", what);
    if (host && !*host)
        return fail(sb, MLK_EINVAL, "%s \"%s\": the host path is empty; pass the host directory to mount", what,
                    guest);
    char *g = strdup(guest), *h = host ? strdup(host) : NULL;
    if (!g || (host && !h)) { free(g); free(h); return nomem(sb, what); }
    for (size_t i = 0; i < sb->nmounts; i++) {
        if (strcmp(sb->mounts[i].guest, guest) == 0) {
            free(sb->mounts[i].guest);
            free(sb->mounts[i].host);
            sb->mounts[i] = (struct mount){g, type, h, readonly, 0, 0, 0};
            return 0;
        }
    }
    struct mount *m = realloc(sb->mounts, (sb->nmounts + 1) * sizeof *m);
    if (!m) { free(g); free(h); return nomem(sb, what); }
    m[sb->nmounts++] = (struct mount){g, type, h, readonly, 0, 0, 0};
    sb->mounts = m;
    return 0;
}

MLK_API int mlk_sandbox_mount_host_dir(mlk_sandbox *sb, const char *guest_path, const char *host_path)
{
    return add_mount(sb, "mount_host_dir", guest_path, "host_fs", host_path ? host_path : "", 0);
}

MLK_API int mlk_sandbox_mount_host_dir_readonly(mlk_sandbox *sb, const char *guest_path, const char *host_path)
{
    return add_mount(sb, "mount_host_dir_readonly", guest_path, "host_fs", host_path ? host_path : "", 1);
}

MLK_API int mlk_sandbox_mount_memory(mlk_sandbox *sb, const char *guest_path)
{
    return add_mount(sb, "mount_memory", guest_path, "memory", NULL, 0);
}

MLK_API int mlk_sandbox_mount_overlay(mlk_sandbox *sb, const char *guest_path, const char *host_path)
{
    return add_mount(sb, "mount_overlay", guest_path, "overlay", host_path ? host_path : "", 0);
}

#define MLK_OWNER_MAX 4294967295LL

/* The official Python SDK's range check and message (MountConfig). */
static int check_owner_id(mlk_sandbox *sb, const char *name, int64_t v)
{
    if (v < 0 || v > MLK_OWNER_MAX)
        return fail(sb, MLK_EINVALID_MOUNT_OWNER, "%s must be in [0, 4294967295], got %lld", name, (long long)v);
    return 0;
}

MLK_API int mlk_sandbox_set_mount_owner(mlk_sandbox *sb, const char *guest_path, int which, int64_t uid,
                                        int64_t gid)
{
    if (!sb) return MLK_EINVAL;
    if (which & ~(MLK_MOUNT_OWNER_UID | MLK_MOUNT_OWNER_GID))
        return fail(sb, MLK_EINVAL, "set_mount_owner: which %d has unknown bits; pass MLK_MOUNT_OWNER_UID and/or "
                                    "MLK_MOUNT_OWNER_GID", which);
    if ((which & MLK_MOUNT_OWNER_UID) && check_owner_id(sb, "owner_uid", uid)) return sb->err;
    if ((which & MLK_MOUNT_OWNER_GID) && check_owner_id(sb, "owner_gid", gid)) return sb->err;
    for (size_t i = 0; guest_path && i < sb->nmounts; i++) {
        struct mount *m = &sb->mounts[i];
        if (strcmp(m->guest, guest_path) == 0) {
            m->owner_set = which;
            m->owner_uid = uid;
            m->owner_gid = gid;
            return 0;
        }
    }
    return fail(sb, MLK_EINVAL, "set_mount_owner: no mount at \"%s\"; add the mount first (e.g. "
                                "mlk_sandbox_mount_host_dir())", guest_path ? guest_path : "");
}

MLK_API int mlk_sandbox_set_env(mlk_sandbox *sb, const char *name, const char *value)
{
    if (!sb) return MLK_EINVAL;
    if (!name || !*name)
        return fail(sb, MLK_EINVAL, "set_env: the variable name is empty; pass a name such as \"PATH\"");
    if (strchr(name, '='))
        return fail(sb, MLK_EINVAL, "set_env: the name \"%s\" contains '='; pass the name and the value separately",
                    name);
    if (!value) value = "";
    return kvlist_put(&sb->env, name, strlen(name), value, strlen(value)) ? nomem(sb, "set_env") : 0;
}

MLK_API int mlk_sandbox_allow_host(mlk_sandbox *sb, const char *host)
{
    if (!sb) return MLK_EINVAL;
    if (!host || !*host)
        return fail(sb, MLK_EINVAL, "allow_host: the host is empty; pass a host name or glob such as \"*.example.com\"");
    return strvec_push(&sb->allowed_hosts, host) ? nomem(sb, "allow_host") : 0;
}

MLK_API int mlk_sandbox_add_host(mlk_sandbox *sb, const char *host, const char *ip)
{
    if (!sb) return MLK_EINVAL;
    /* validity is checked in sandbox_render (upstream ErrInvalidAddHost) */
    char *h = strdup(host ? host : ""), *i = strdup(ip ? ip : "");
    struct add_host *a = h && i ? realloc(sb->add_hosts, (sb->nadd_hosts + 1) * sizeof *a) : NULL;
    if (!a) { free(h); free(i); return nomem(sb, "add_host"); }
    a[sb->nadd_hosts++] = (struct add_host){h, i};
    sb->add_hosts = a;
    return 0;
}

MLK_API int mlk_sandbox_add_secret(mlk_sandbox *sb, const char *name, const char *value,
                                   const char *placeholder, const char *const *hosts, size_t nhosts)
{
    if (!sb) return MLK_EINVAL;
    if (!name || !*name)
        return fail(sb, MLK_EINVAL, "add_secret: the secret name is empty; pass the environment variable name "
                                    "the guest sees, such as \"API_KEY\"");
    if (nhosts > 0 && !hosts)
        return fail(sb, MLK_EINVAL, "add_secret \"%s\": hosts is NULL but nhosts is %zu", name, nhosts);
    for (size_t i = 0; i < nhosts; i++)
        if (!hosts[i] || !*hosts[i])
            return fail(sb, MLK_EINVAL, "add_secret \"%s\": host %zu is empty; pass host names or globs", name, i);
    struct secret s = {0};
    s.name = strdup(name);
    s.value = strdup(value ? value : "");
    s.placeholder = placeholder && *placeholder ? strdup(placeholder) : NULL;
    int bad = !s.name || !s.value || (placeholder && *placeholder && !s.placeholder) ||
              strvec_set(&s.hosts, hosts, nhosts) != 0;
    if (bad) {
        secret_clear(&s);
        return nomem(sb, "add_secret");
    }
    /* Secrets are a map by name on the wire: a later secret replaces. */
    for (size_t i = 0; i < sb->nsecrets; i++) {
        struct secret *o = &sb->secrets[i];
        if (strcmp(o->name, name) == 0) {
            secret_clear(o);
            *o = s;
            return 0;
        }
    }
    /* the array holds pointers only (the values are separate blocks) */
    struct secret *v = realloc(sb->secrets, (sb->nsecrets + 1) * sizeof *v);
    if (!v) {
        secret_clear(&s);
        return nomem(sb, "add_secret");
    }
    v[sb->nsecrets++] = s;
    sb->secrets = v;
    return 0;
}

MLK_API int mlk_sandbox_set_block_private_ips(mlk_sandbox *sb, int on)
{
    if (!sb) return MLK_EINVAL;
    sb->block_private_ips = on != 0;
    sb->block_private_ips_set = 1;
    return 0;
}

MLK_API int mlk_sandbox_unset_block_private_ips(mlk_sandbox *sb)
{
    if (!sb) return MLK_EINVAL;
    sb->block_private_ips = 0;
    sb->block_private_ips_set = 0;
    return 0;
}

static int check_str_list(mlk_sandbox *sb, const char *what, const char *const *v, size_t n)
{
    if (n > 0 && !v) return fail(sb, MLK_EINVAL, "%s: the list is NULL but its length is %zu", what, n);
    for (size_t i = 0; i < n; i++)
        if (!v[i]) return fail(sb, MLK_EINVAL, "%s: item %zu is NULL", what, i);
    return 0;
}

MLK_API int mlk_sandbox_set_dns_servers(mlk_sandbox *sb, const char *const *servers, size_t n)
{
    if (!sb) return MLK_EINVAL;
    /* the addresses are the server's to judge, as upstream */
    int rc = check_str_list(sb, "set_dns_servers", servers, n);
    if (rc) return rc;
    return strvec_set(&sb->dns_servers, servers, n) ? nomem(sb, "set_dns_servers") : 0;
}

MLK_API int mlk_sandbox_set_hostname(mlk_sandbox *sb, const char *hostname)
{
    if (!sb) return MLK_EINVAL;
    return set_str(&sb->hostname, hostname) ? nomem(sb, "set_hostname") : 0;
}

MLK_API int mlk_sandbox_set_network_mtu(mlk_sandbox *sb, int64_t mtu)
{
    if (!sb) return MLK_EINVAL;
    sb->mtu = mtu; /* checked in sandbox_render (upstream ErrInvalidNetworkMTU) */
    return 0;
}

MLK_API int mlk_sandbox_set_no_network(mlk_sandbox *sb, int on)
{
    if (!sb) return MLK_EINVAL;
    sb->no_network = on != 0;
    return 0;
}

MLK_API int mlk_sandbox_add_port_forward(mlk_sandbox *sb, const char *spec)
{
    if (!sb) return MLK_EINVAL;
    if (!spec) return fail(sb, MLK_EINVAL, "add_port_forward: the spec is NULL; pass \"[LOCAL_PORT:]REMOTE_PORT\"");
    return strvec_push(&sb->port_forwards, spec) ? nomem(sb, "add_port_forward") : 0;
}

MLK_API int mlk_sandbox_set_port_forward_addresses(mlk_sandbox *sb, const char *const *addrs, size_t n)
{
    if (!sb) return MLK_EINVAL;
    int rc = check_str_list(sb, "set_port_forward_addresses", addrs, n);
    if (rc) return rc;
    for (size_t i = 0; i < n; i++)
        if (!*addrs[i])
            return fail(sb, MLK_EINVAL, "set_port_forward_addresses: address %zu is empty; pass bind addresses "
                                        "such as \"127.0.0.1\"", i);
    return strvec_set(&sb->pf_addresses, addrs, n) ? nomem(sb, "set_port_forward_addresses") : 0;
}

MLK_API int mlk_sandbox_set_user(mlk_sandbox *sb, const char *user)
{
    if (!sb) return MLK_EINVAL;
    sb->has_image_config = 1;
    return set_str(&sb->ic_user, user) ? nomem(sb, "set_user") : 0;
}

MLK_API int mlk_sandbox_set_entrypoint(mlk_sandbox *sb, const char *const *argv, size_t n)
{
    if (!sb) return MLK_EINVAL;
    int rc = check_str_list(sb, "set_entrypoint", argv, n);
    if (rc) return rc;
    sb->has_image_config = 1;
    return strvec_set(&sb->ic_entrypoint, argv, n) ? nomem(sb, "set_entrypoint") : 0;
}

MLK_API int mlk_sandbox_set_kernel(mlk_sandbox *sb, const char *ref)
{
    if (!sb) return MLK_EINVAL;
    return set_str(&sb->kernel, ref) ? nomem(sb, "set_kernel") : 0;
}

MLK_API int mlk_sandbox_add_extra_disk(mlk_sandbox *sb, const char *host_path, const char *guest_mount, int readonly)
{
    if (!sb) return MLK_EINVAL;
    if (!host_path || !*host_path)
        return fail(sb, MLK_EINVAL, "add_extra_disk: the host path is empty; pass the path of an ext4 image "
                                    "(for example a volume's path)");
    if (!guest_mount || guest_mount[0] != '/')
        return fail(sb, MLK_EINVAL, "add_extra_disk \"%s\": the guest mount \"%s\" is not an absolute path; "
                                    "pass where the disk appears in the guest, such as \"/mnt/data\"",
                    host_path, guest_mount ? guest_mount : "");
    char *h = strdup(host_path), *g = strdup(guest_mount);
    struct extra_disk *d = h && g ? realloc(sb->disks, (sb->ndisks + 1) * sizeof *d) : NULL;
    if (!d) { free(h); free(g); return nomem(sb, "add_extra_disk"); }
    d[sb->ndisks++] = (struct extra_disk){h, g, readonly != 0};
    sb->disks = d;
    return 0;
}

/* ===================================================================== */
/* msgpack inputs                                                         */

static int mp_is_str(const msgpack_object *o) { return o->type == MSGPACK_OBJECT_STR; }

static int mp_key_is(const msgpack_object *k, const char *name)
{
    size_t n = strlen(name);
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n && memcmp(k->via.str.ptr, name, n) == 0;
}

/* Look a string key up in a msgpack map; NULL when absent. */
static const msgpack_object *mp_get(const msgpack_object *map, const char *name)
{
    if (map->type != MSGPACK_OBJECT_MAP) return NULL;
    for (uint32_t i = 0; i < map->via.map.size; i++)
        if (mp_key_is(&map->via.map.ptr[i].key, name)) return &map->via.map.ptr[i].val;
    return NULL;
}

static int mp_is_str_array(const msgpack_object *o)
{
    if (o->type != MSGPACK_OBJECT_ARRAY) return 0;
    for (uint32_t i = 0; i < o->via.array.size; i++)
        if (!mp_is_str(&o->via.array.ptr[i])) return 0;
    return 1;
}

static int mp_is_str_map(const msgpack_object *o)
{
    if (o->type != MSGPACK_OBJECT_MAP) return 0;
    for (uint32_t i = 0; i < o->via.map.size; i++)
        if (!mp_is_str(&o->via.map.ptr[i].key) || !mp_is_str(&o->via.map.ptr[i].val)) return 0;
    return 1;
}

static const char *mp_type_name(const msgpack_object *o)
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

/* Parse a msgpack document that must be a map. */
static int parse_map(mlk_sandbox *sb, const char *what, const char *buf, size_t len, msgpack_unpacked *u)
{
    if (!buf || len == 0) {
        msgpack_unpacked_init(u);
        return fail(sb, MLK_EINVAL, "%s: no msgpack document given; pass a msgpack map", what);
    }
    if (mp_parse(buf, len, u) != 0)
        return fail(sb, MLK_EINVAL, "%s: the %zu bytes given are not one complete msgpack document; "
                                    "pass a single msgpack map", what, len);
    if (u->data.type != MSGPACK_OBJECT_MAP)
        return fail(sb, MLK_EINVAL, "%s: expected a msgpack map but got %s", what, mp_type_name(&u->data));
    return 0;
}

/* Describe the first key of `map` that is not a string or not in `known`
 * (NULL-terminated); 0 when all keys are fine. */
static int check_keys(mlk_sandbox *sb, const char *what, const msgpack_object *map, const char *const *known)
{
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (!mp_is_str(k)) return fail(sb, MLK_EINVAL, "%s: a key is %s; keys must be strings", what, mp_type_name(k));
        int ok = 0;
        for (const char *const *n = known; *n && !ok; n++) ok = mp_key_is(k, *n);
        if (!ok) {
            char list[256] = "";
            for (const char *const *n = known; *n; n++) {
                if (n != known) strncat(list, ", ", sizeof list - strlen(list) - 1);
                strncat(list, *n, sizeof list - strlen(list) - 1);
            }
            return fail(sb, MLK_EINVAL, "%s: unknown key \"%.*s\"; known keys are %s", what, (int)k->via.str.size,
                        k->via.str.ptr, list);
        }
    }
    return 0;
}

MLK_API int mlk_sandbox_set_env_map(mlk_sandbox *sb, const char *msgpack, size_t len)
{
    if (!sb) return MLK_EINVAL;
    msgpack_unpacked u;
    int rc = parse_map(sb, "set_env_map", msgpack, len, &u);
    if (rc == 0 && !mp_is_str_map(&u.data))
        rc = fail(sb, MLK_EINVAL, "set_env_map: every key and value must be a string");
    for (uint32_t i = 0; rc == 0 && i < u.data.via.map.size; i++) {
        const msgpack_object_str *k = &u.data.via.map.ptr[i].key.via.str;
        if (k->size == 0 || memchr(k->ptr, '=', k->size))
            rc = fail(sb, MLK_EINVAL, "set_env_map: the name \"%.*s\" is empty or contains '='; "
                                      "pass plain variable names", (int)k->size, k->ptr);
    }
    /* all checked: merge (a later value for the same name wins) */
    for (uint32_t i = 0; rc == 0 && i < u.data.via.map.size; i++) {
        const msgpack_object_kv *p = &u.data.via.map.ptr[i];
        if (kvlist_put(&sb->env, p->key.via.str.ptr, p->key.via.str.size, p->val.via.str.ptr, p->val.via.str.size))
            rc = nomem(sb, "set_env_map");
    }
    msgpack_unpacked_destroy(&u);
    return rc;
}

static int copy_str_array(strvec *dst, const msgpack_object *a)
{
    strvec t = {0};
    for (uint32_t i = 0; i < a->via.array.size; i++) {
        const msgpack_object_str *s = &a->via.array.ptr[i].via.str;
        char *c = strndup(s->size ? s->ptr : "", s->size);
        if (!c || strvec_push(&t, c) != 0) { free(c); strvec_clear(&t); return MLK_ENOMEM; }
        free(c);
    }
    strvec_clear(dst);
    *dst = t;
    return 0;
}

MLK_API int mlk_sandbox_set_image_config(mlk_sandbox *sb, const char *msgpack, size_t len)
{
    static const char *const known[] = {"user", "working_dir", "entrypoint", "cmd", "env", NULL};
    static const char *what = "set_image_config";
    if (!sb) return MLK_EINVAL;
    msgpack_unpacked u;
    int rc = parse_map(sb, what, msgpack, len, &u);
    if (rc == 0) rc = check_keys(sb, what, &u.data, known);
    const msgpack_object *user = rc ? NULL : mp_get(&u.data, "user");
    const msgpack_object *wd = rc ? NULL : mp_get(&u.data, "working_dir");
    const msgpack_object *ep = rc ? NULL : mp_get(&u.data, "entrypoint");
    const msgpack_object *cmd = rc ? NULL : mp_get(&u.data, "cmd");
    const msgpack_object *env = rc ? NULL : mp_get(&u.data, "env");
    if (rc == 0 && user && !mp_is_str(user))
        rc = fail(sb, MLK_EINVAL, "%s: \"user\" must be a string, got %s", what, mp_type_name(user));
    if (rc == 0 && wd && !mp_is_str(wd))
        rc = fail(sb, MLK_EINVAL, "%s: \"working_dir\" must be a string, got %s", what, mp_type_name(wd));
    if (rc == 0 && ep && !mp_is_str_array(ep))
        rc = fail(sb, MLK_EINVAL, "%s: \"entrypoint\" must be an array of strings", what);
    if (rc == 0 && cmd && !mp_is_str_array(cmd))
        rc = fail(sb, MLK_EINVAL, "%s: \"cmd\" must be an array of strings", what);
    if (rc == 0 && env && !mp_is_str_map(env))
        rc = fail(sb, MLK_EINVAL, "%s: \"env\" must be a map of strings to strings", what);
    if (rc == 0) {
        /* merge: non-empty fields replace, empty or absent ones keep */
        int bad = 0;
        sb->has_image_config = 1;
        if (user && user->via.str.size) {
            char *c = strndup(user->via.str.ptr, user->via.str.size);
            bad |= !c;
            if (c) { free(sb->ic_user); sb->ic_user = c; }
        }
        if (wd && wd->via.str.size) {
            char *c = strndup(wd->via.str.ptr, wd->via.str.size);
            bad |= !c;
            if (c) { free(sb->ic_working_dir); sb->ic_working_dir = c; }
        }
        if (ep && ep->via.array.size) bad |= copy_str_array(&sb->ic_entrypoint, ep) != 0;
        if (cmd && cmd->via.array.size) bad |= copy_str_array(&sb->ic_cmd, cmd) != 0;
        if (env && env->via.map.size) {
            kvlist t = {0};
            for (uint32_t i = 0; i < env->via.map.size && !bad; i++) {
                const msgpack_object_kv *p = &env->via.map.ptr[i];
                bad |= kvlist_put(&t, p->key.via.str.ptr, p->key.via.str.size, p->val.via.str.ptr,
                                  p->val.via.str.size) != 0;
            }
            if (bad) kvlist_clear(&t);
            else { kvlist_clear(&sb->ic_env); sb->ic_env = t; }
        }
        if (bad) rc = nomem(sb, what);
    }
    msgpack_unpacked_destroy(&u);
    return rc;
}

/* Shape check of one network rule (types only; values in sandbox_render). */
static int check_net_rule(mlk_sandbox *sb, uint32_t idx, const msgpack_object *r)
{
    static const char *const str_keys[] = {"name", "phase", "path", "action", "callback_id", "rewrite_path", NULL};
    static const char *const arr_keys[] = {"hosts", "methods", "delete_headers", "delete_query",
                                           "delete_response_headers", NULL};
    static const char *const map_keys[] = {"set_headers", "set_query", "set_response_headers", NULL};
    static const char *const known[] = {"name", "phase", "hosts", "methods", "path", "action", "callback_id",
                                        "timeout_ms", "set_headers", "delete_headers", "set_query", "delete_query",
                                        "rewrite_path", "set_response_headers", "delete_response_headers",
                                        "body_replacements", NULL};
    char what[64];
    snprintf(what, sizeof what, "network interception rules[%u]", idx);
    if (r->type != MSGPACK_OBJECT_MAP)
        return fail(sb, MLK_EINVAL, "%s: expected a map but got %s", what, mp_type_name(r));
    int rc = check_keys(sb, what, r, known);
    if (rc) return rc;
    for (const char *const *k = str_keys; *k; k++) {
        const msgpack_object *v = mp_get(r, *k);
        if (v && !mp_is_str(v))
            return fail(sb, MLK_EINVAL, "%s: \"%s\" must be a string, got %s", what, *k, mp_type_name(v));
    }
    for (const char *const *k = arr_keys; *k; k++) {
        const msgpack_object *v = mp_get(r, *k);
        if (v && !mp_is_str_array(v))
            return fail(sb, MLK_EINVAL, "%s: \"%s\" must be an array of strings", what, *k);
    }
    for (const char *const *k = map_keys; *k; k++) {
        const msgpack_object *v = mp_get(r, *k);
        if (v && !mp_is_str_map(v))
            return fail(sb, MLK_EINVAL, "%s: \"%s\" must be a map of strings to strings", what, *k);
    }
    const msgpack_object *t = mp_get(r, "timeout_ms");
    if (t && t->type != MSGPACK_OBJECT_POSITIVE_INTEGER && t->type != MSGPACK_OBJECT_NEGATIVE_INTEGER)
        return fail(sb, MLK_EINVAL, "%s: \"timeout_ms\" must be an integer, got %s", what, mp_type_name(t));
    const msgpack_object *br = mp_get(r, "body_replacements");
    if (br) {
        static const char *const br_known[] = {"find", "replace", NULL};
        if (br->type != MSGPACK_OBJECT_ARRAY)
            return fail(sb, MLK_EINVAL, "%s: \"body_replacements\" must be an array of {find, replace} maps", what);
        for (uint32_t i = 0; i < br->via.array.size; i++) {
            const msgpack_object *b = &br->via.array.ptr[i];
            char bwhat[96];
            snprintf(bwhat, sizeof bwhat, "%s.body_replacements[%u]", what, i);
            if (b->type != MSGPACK_OBJECT_MAP)
                return fail(sb, MLK_EINVAL, "%s: expected a map {find, replace} but got %s", bwhat, mp_type_name(b));
            if ((rc = check_keys(sb, bwhat, b, br_known))) return rc;
            const msgpack_object *f = mp_get(b, "find"), *rp = mp_get(b, "replace");
            if (!f || !mp_is_str(f) || (rp && !mp_is_str(rp)))
                return fail(sb, MLK_EINVAL, "%s: \"find\" (required) and \"replace\" must be strings", bwhat);
        }
    }
    return 0;
}

MLK_API int mlk_sandbox_set_network_interception(mlk_sandbox *sb, const char *msgpack, size_t len)
{
    static const char *const known[] = {"rules", NULL};
    static const char *what = "set_network_interception";
    if (!sb) return MLK_EINVAL;
    if (!msgpack || len == 0) { /* force interception only; earlier rules stay */
        sb->force_interception = 1;
        return 0;
    }
    msgpack_unpacked u;
    int rc = parse_map(sb, what, msgpack, len, &u);
    if (rc == 0) rc = check_keys(sb, what, &u.data, known);
    const msgpack_object *rules = rc ? NULL : mp_get(&u.data, "rules");
    if (rc == 0 && rules && rules->type != MSGPACK_OBJECT_ARRAY)
        rc = fail(sb, MLK_EINVAL, "%s: \"rules\" must be an array of rule maps, got %s", what, mp_type_name(rules));
    for (uint32_t i = 0; rc == 0 && rules && i < rules->via.array.size; i++)
        rc = check_net_rule(sb, i, &rules->via.array.ptr[i]);
    if (rc == 0) {
        char *c = malloc(len);
        if (!c) {
            rc = nomem(sb, what);
        } else {
            memcpy(c, msgpack, len);
            free(sb->net_rules_mp);
            sb->net_rules_mp = c;
            sb->net_rules_len = len;
            sb->force_interception = 1;
        }
    }
    msgpack_unpacked_destroy(&u);
    return rc;
}

static int check_vfs_rule(mlk_sandbox *sb, uint32_t idx, const msgpack_object *r)
{
    static const char *const known[] = {"name", "phase", "ops", "path", "action", "timeout_ms", NULL};
    static const char *const str_keys[] = {"name", "phase", "path", "action", NULL};
    char what[64];
    snprintf(what, sizeof what, "vfs interception rules[%u]", idx);
    if (r->type != MSGPACK_OBJECT_MAP)
        return fail(sb, MLK_EINVAL, "%s: expected a map but got %s", what, mp_type_name(r));
    int rc = check_keys(sb, what, r, known);
    if (rc) return rc;
    for (const char *const *k = str_keys; *k; k++) {
        const msgpack_object *v = mp_get(r, *k);
        if (v && !mp_is_str(v))
            return fail(sb, MLK_EINVAL, "%s: \"%s\" must be a string, got %s", what, *k, mp_type_name(v));
    }
    const msgpack_object *ops = mp_get(r, "ops");
    if (ops && !mp_is_str_array(ops)) return fail(sb, MLK_EINVAL, "%s: \"ops\" must be an array of strings", what);
    const msgpack_object *t = mp_get(r, "timeout_ms");
    if (t && t->type != MSGPACK_OBJECT_POSITIVE_INTEGER && t->type != MSGPACK_OBJECT_NEGATIVE_INTEGER)
        return fail(sb, MLK_EINVAL, "%s: \"timeout_ms\" must be an integer, got %s", what, mp_type_name(t));
    return 0;
}

MLK_API int mlk_sandbox_set_vfs_interception(mlk_sandbox *sb, const char *msgpack, size_t len)
{
    static const char *const known[] = {"emit_events", "rules", NULL};
    static const char *what = "set_vfs_interception";
    if (!sb) return MLK_EINVAL;
    if (!msgpack || len == 0) { /* clear */
        free(sb->vfs_mp);
        sb->vfs_mp = NULL;
        sb->vfs_len = 0;
        return 0;
    }
    msgpack_unpacked u;
    int rc = parse_map(sb, what, msgpack, len, &u);
    if (rc == 0) rc = check_keys(sb, what, &u.data, known);
    const msgpack_object *ee = rc ? NULL : mp_get(&u.data, "emit_events");
    const msgpack_object *rules = rc ? NULL : mp_get(&u.data, "rules");
    if (rc == 0 && ee && ee->type != MSGPACK_OBJECT_BOOLEAN)
        rc = fail(sb, MLK_EINVAL, "%s: \"emit_events\" must be a boolean, got %s", what, mp_type_name(ee));
    if (rc == 0 && rules && rules->type != MSGPACK_OBJECT_ARRAY)
        rc = fail(sb, MLK_EINVAL, "%s: \"rules\" must be an array of rule maps, got %s", what, mp_type_name(rules));
    for (uint32_t i = 0; rc == 0 && rules && i < rules->via.array.size; i++)
        rc = check_vfs_rule(sb, i, &rules->via.array.ptr[i]);
    if (rc == 0) {
        char *c = malloc(len);
        if (!c) {
            rc = nomem(sb, what);
        } else {
            memcpy(c, msgpack, len);
            free(sb->vfs_mp);
            sb->vfs_mp = c;
            sb->vfs_len = len;
        }
    }
    msgpack_unpacked_destroy(&u);
    return rc;
}

/* ===================================================================== */
/* validation                                                             */

typedef struct {
    int code;
    char *msg;
} verr;

static int verror(verr *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int verror(verr *e, int code, const char *fmt, ...)
{
    va_list ap;
    char *m = NULL;
    va_start(ap, fmt);
    if (vasprintf(&m, fmt, ap) < 0) m = NULL;
    va_end(ap);
    e->code = code;
    e->msg = m;
    return code;
}

static int check_add_host(const struct add_host *a, verr *e)
{
    unsigned char buf[16];
    if (!a->host[0])
        return verror(e, MLK_EINVALID_ADD_HOST, "invalid add-host mapping: the host name is empty (ip \"%s\"); pass a "
                                                "name such as \"db.internal\"", a->ip);
    for (const char *p = a->host; *p; p++) {
        if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\v' || *p == '\f')
            return verror(e, MLK_EINVALID_ADD_HOST, "invalid add-host mapping: \"%s\" contains whitespace; host names may not "
                                                    "contain spaces or ':'", a->host);
        if (*p == ':')
            return verror(e, MLK_EINVALID_ADD_HOST, "invalid add-host mapping: \"%s\" contains ':'; pass the host name and the IP "
                                                    "as separate arguments", a->host);
    }
    if (!a->ip[0])
        return verror(e, MLK_EINVALID_ADD_HOST, "invalid add-host mapping: \"%s\": the IP is empty; pass an IPv4 or IPv6 address",
                      a->host);
    if (inet_pton(AF_INET, a->ip, buf) != 1 && inet_pton(AF_INET6, a->ip, buf) != 1)
        return verror(e, MLK_EINVALID_ADD_HOST, "invalid add-host mapping: \"%s\": \"%s\" is not an IPv4 or IPv6 address", a->host,
                      a->ip);
    return 0;
}

/* ===================================================================== */
/* rendering                                                              */

/* A key that may need escaping (mount paths, env names, secret names). */
static void key_esc(jw *w, const char *s, size_t n)
{
    jw_strn(w, s, n);
    jw_raw(w, ":", 1);
    w->need_comma[w->depth] = 2;
}

static void write_strvec(jw *w, const strvec *s)
{
    jw_arr(w);
    for (size_t i = 0; i < s->n; i++) jw_str(w, s->v[i]);
    jw_arr_end(w);
}

static void write_kvlist(jw *w, const kvlist *l)
{
    jw_obj(w);
    for (size_t i = 0; i < l->n; i++) {
        key_esc(w, l->v[i].key, strlen(l->v[i].key));
        jw_str(w, l->v[i].val);
    }
    jw_obj_end(w);
}

static void write_add_hosts(jw *w, const mlk_sandbox *sb)
{
    jw_key(w, "add_hosts");
    jw_arr(w);
    for (size_t i = 0; i < sb->nadd_hosts; i++) {
        jw_obj(w);
        jw_key(w, "host");
        jw_str(w, sb->add_hosts[i].host);
        jw_key(w, "ip");
        jw_str(w, sb->add_hosts[i].ip);
        jw_obj_end(w);
    }
    jw_arr_end(w);
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
    mp_to_json(v, w);
}

static void write_net_rules(jw *w, const msgpack_object *rules, const hookset *hooks)
{
    static const char *const order[] = {"name", "phase", "hosts", "methods", "path", "action", "callback_id",
                                        "timeout_ms", "set_headers", "delete_headers", "set_query", "delete_query",
                                        "rewrite_path", "set_response_headers", "delete_response_headers", NULL};
    jw_key(w, "rules");
    jw_arr(w);
    for (uint32_t i = 0; rules && i < rules->via.array.size; i++) {
        const msgpack_object *r = &rules->via.array.ptr[i];
        jw_obj(w);
        for (const char *const *k = order; *k; k++) write_field(w, r, *k);
        const msgpack_object *br = mp_get(r, "body_replacements");
        if (br && br->via.array.size) {
            jw_key(w, "body_replacements");
            jw_arr(w);
            for (uint32_t j = 0; j < br->via.array.size; j++) {
                const msgpack_object *b = &br->via.array.ptr[j];
                jw_obj(w);
                jw_key(w, "find");
                mp_to_json(mp_get(b, "find"), w);
                write_field(w, b, "replace");
                jw_obj_end(w);
            }
            jw_arr_end(w);
        }
        jw_obj_end(w);
    }
    hookset_write_net_rules(hooks, w, rules ? rules->via.array.size : 0);
    jw_arr_end(w);
}

static void write_vfs_rules(jw *w, const msgpack_object *rules)
{
    static const char *const order[] = {"name", "phase", "ops", "path", "action", "timeout_ms", NULL};
    jw_key(w, "rules");
    jw_arr(w);
    for (uint32_t i = 0; i < rules->via.array.size; i++) {
        jw_obj(w);
        for (const char *const *k = order; *k; k++) write_field(w, &rules->via.array.ptr[i], *k);
        jw_obj_end(w);
    }
    jw_arr_end(w);
}

static void write_network(jw *w, const mlk_sandbox *sb, const msgpack_object *net_rules, const char *socket)
{
    size_t nhooks = hookset_count(&sb->hooks, MLK_HOOK_NETWORK);
    int has_rules = (net_rules && net_rules->via.array.size > 0) || nhooks > 0;
    int include = sb->allowed_hosts.n || sb->nadd_hosts || sb->nsecrets || sb->dns_servers.n || sb->hostname ||
                  sb->mtu > 0 || sb->no_network || sb->block_private_ips_set || sb->force_interception || has_rules;
    if (!include) return;
    jw_key(w, "network");
    jw_obj(w);
    if (sb->no_network) {
        jw_key(w, "no_network");
        jw_bool(w, 1);
        if (sb->nadd_hosts) write_add_hosts(w, sb);
        if (sb->dns_servers.n) { jw_key(w, "dns_servers"); write_strvec(w, &sb->dns_servers); }
        if (sb->hostname) { jw_key(w, "hostname"); jw_str(w, sb->hostname); }
        jw_obj_end(w);
        return;
    }
    jw_key(w, "allowed_hosts");
    write_strvec(w, &sb->allowed_hosts);
    /* the server replaces its network defaults wholesale: re-state the default */
    jw_key(w, "block_private_ips");
    jw_bool(w, sb->block_private_ips_set ? sb->block_private_ips : 1);
    if (sb->force_interception || has_rules) { jw_key(w, "intercept"); jw_bool(w, 1); }
    if (has_rules) {
        jw_key(w, "interception");
        jw_obj(w);
        write_net_rules(w, net_rules, &sb->hooks);
        if (nhooks && socket) { jw_key(w, "callback_socket"); jw_str(w, socket); }
        jw_obj_end(w);
    }
    if (sb->nadd_hosts) write_add_hosts(w, sb);
    if (sb->nsecrets) {
        jw_key(w, "secrets");
        jw_obj(w);
        for (size_t i = 0; i < sb->nsecrets; i++) {
            const struct secret *s = &sb->secrets[i];
            key_esc(w, s->name, strlen(s->name));
            jw_obj(w);
            jw_key(w, "value");
            jw_str(w, s->value);
            jw_key(w, "hosts");
            write_strvec(w, &s->hosts);
            if (s->placeholder) { jw_key(w, "placeholder"); jw_str(w, s->placeholder); }
            jw_obj_end(w);
        }
        jw_obj_end(w);
    }
    if (sb->dns_servers.n) { jw_key(w, "dns_servers"); write_strvec(w, &sb->dns_servers); }
    if (sb->hostname) { jw_key(w, "hostname"); jw_str(w, sb->hostname); }
    if (sb->mtu > 0) { jw_key(w, "mtu"); jw_int(w, sb->mtu); }
    jw_obj_end(w);
}

static void write_vfs(jw *w, const mlk_sandbox *sb, const msgpack_object *vfs)
{
    const msgpack_object *rules = vfs ? mp_get(vfs, "rules") : NULL;
    const msgpack_object *ee = vfs ? mp_get(vfs, "emit_events") : NULL;
    /* after-hooks run on file events, so they switch events on */
    int emit = (ee && ee->via.boolean) || hookset_count(&sb->hooks, MLK_HOOK_VFS_AFTER) ||
               hookset_count(&sb->hooks, MLK_HOOK_VFS_DANGEROUS);
    int has_rules = rules && rules->via.array.size > 0;
    int has_interception = emit || has_rules;
    if (!sb->nmounts && !sb->workspace && !has_interception) return;
    jw_key(w, "vfs");
    jw_obj(w);
    if (sb->workspace) { jw_key(w, "workspace"); jw_str(w, sb->workspace); }
    if (sb->nmounts) {
        jw_key(w, "mounts");
        jw_obj(w);
        for (size_t i = 0; i < sb->nmounts; i++) {
            const struct mount *m = &sb->mounts[i];
            key_esc(w, m->guest, strlen(m->guest));
            jw_obj(w);
            jw_key(w, "type");
            jw_str(w, m->type);
            if (m->host) { jw_key(w, "host_path"); jw_str(w, m->host); }
            if (m->readonly) { jw_key(w, "readonly"); jw_bool(w, 1); }
            if (m->owner_set & MLK_MOUNT_OWNER_UID) { jw_key(w, "owner_uid"); jw_int(w, m->owner_uid); }
            if (m->owner_set & MLK_MOUNT_OWNER_GID) { jw_key(w, "owner_gid"); jw_int(w, m->owner_gid); }
            jw_obj_end(w);
        }
        jw_obj_end(w);
    }
    if (has_interception) {
        jw_key(w, "interception");
        jw_obj(w);
        if (emit) { jw_key(w, "emit_events"); jw_bool(w, 1); }
        if (has_rules) write_vfs_rules(w, rules);
        jw_obj_end(w);
    }
    jw_obj_end(w);
}

static void write_image_config(jw *w, const mlk_sandbox *sb)
{
    if (!sb->has_image_config) return;
    jw_key(w, "image_config");
    jw_obj(w);
    if (sb->ic_user) { jw_key(w, "user"); jw_str(w, sb->ic_user); }
    if (sb->ic_working_dir) { jw_key(w, "working_dir"); jw_str(w, sb->ic_working_dir); }
    if (sb->ic_entrypoint.n) { jw_key(w, "entrypoint"); write_strvec(w, &sb->ic_entrypoint); }
    if (sb->ic_cmd.n) { jw_key(w, "cmd"); write_strvec(w, &sb->ic_cmd); }
    if (sb->ic_env.n) { jw_key(w, "env"); write_kvlist(w, &sb->ic_env); }
    jw_obj_end(w);
}

/* The seed SDK's checks, in its order (image, CPUs, MTU, no-network
 * conflicts, add-hosts; each message begins with the seed's error text),
 * then ours on what upstream does not have (extra disks, the builder's port
 * forwards).  Everything else (workspace and mount paths, interception
 * without mounts, rule phases and actions, negative sizes) is the server's
 * to judge, as with the official SDKs. */
static int validate(const mlk_sandbox *sb, double cpus, int has_net_rules, verr *e)
{
    if (!sb->image)
        return verror(e, MLK_EIMAGE_REQUIRED, "image is required (e.g., alpine:latest)");
    if (!isfinite(cpus) || cpus <= 0)
        return verror(e, MLK_EINVALID_CPU, "invalid cpu count: cpus %g is not valid; pass a finite number "
                                           "greater than 0 (0 means the default, 1)", cpus);
    long host = host_cpus();
    if (host > 0 && ceil(cpus) > (double)host)
        return verror(e, MLK_EINVALID_CPU, "invalid cpu count: cpus %g is more than the %ld CPUs of this host; "
                                           "pass at most %ld", cpus, host, host);
    if (sb->mtu < 0)
        return verror(e, MLK_EINVALID_MTU, "network mtu must be > 0: got %lld; pass a positive MTU such as 1500 "
                                           "(0 keeps the server's default)", (long long)sb->mtu);
    if (sb->no_network) {
        const char *what = sb->allowed_hosts.n ? "allowed hosts"
                           : sb->nsecrets ? "secrets"
                           : (sb->force_interception || has_net_rules) ? "network interception"
                                                                       : NULL;
        if (what)
            return verror(e, MLK_ENO_NETWORK_CONFLICT, "no network cannot be combined with allowed hosts, secrets, "
                                                       "forced interception, or network interception rules: "
                                                       "%s are set; drop one of the two", what);
    }
    for (size_t i = 0; i < sb->nadd_hosts; i++)
        if (check_add_host(&sb->add_hosts[i], e)) return e->code;
    int rc;
    for (size_t i = 0; i < sb->ndisks; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(sb->disks[i].guest_mount, sb->disks[j].guest_mount) == 0)
                return verror(e, MLK_EINVALID_MOUNT, "two extra disks are mounted at \"%s\"; give each its own "
                                                     "guest mount", sb->disks[i].guest_mount);
    if (sb->port_forwards.n) {
        jw scratch;
        char *m = NULL;
        jw_init(&scratch);
        rc = port_forward_render((const char *const *)sb->port_forwards.v, sb->port_forwards.n, &scratch, &m);
        jw_free(&scratch);
        if (rc) {
            e->code = rc;
            e->msg = m;
            return rc;
        }
    }
    return 0;
}

int sandbox_render(const mlk_sandbox *sb, int launch, const char *socket, jw *out, char **msg)
{
    if (msg) *msg = NULL;
    if (!sb || !out) {
        if (msg) *msg = xstrdup("sandbox_render: no sandbox given");
        return MLK_EINVAL;
    }
    if (sb->err) {
        if (msg)
            *msg = xstrdup(sb->errmsg ? sb->errmsg : mlk_strerror(sb->err));
        return sb->err;
    }

    verr e = {0, NULL};
    msgpack_unpacked net, vfs;
    msgpack_unpacked_init(&net);
    msgpack_unpacked_init(&vfs);
    const msgpack_object *net_rules = NULL, *vfs_obj = NULL;
    int rc = 0;
    /* the setters checked these documents; parsing again cannot fail short of memory */
    if (sb->net_rules_mp) {
        if (mp_parse(sb->net_rules_mp, sb->net_rules_len, &net) != 0) rc = verror(&e, MLK_ENOMEM, "out of memory");
        else net_rules = mp_get(&net.data, "rules");
    }
    if (rc == 0 && sb->vfs_mp) {
        if (mp_parse(sb->vfs_mp, sb->vfs_len, &vfs) != 0) rc = verror(&e, MLK_ENOMEM, "out of memory");
        else vfs_obj = &vfs.data;
    }

    double cpus = sb->cpus == 0 ? DEFAULT_CPUS : sb->cpus;
    if (rc == 0) rc = validate(sb, cpus, (net_rules && net_rules->via.array.size > 0) ||
                                         hookset_count(&sb->hooks, MLK_HOOK_NETWORK) > 0, &e);

    jw w;
    jw_init(&w);
    w.secret = sb->nsecrets > 0;
    if (rc == 0) {
        jw_obj(&w);
        jw_key(&w, "image");
        jw_str(&w, sb->image);
        if (sb->privileged) { jw_key(&w, "privileged"); jw_bool(&w, 1); }
        if (launch) { jw_key(&w, "launch_entrypoint"); jw_bool(&w, 1); }
        jw_key(&w, "resources");
        jw_obj(&w);
        jw_key(&w, "cpus");
        jw_double(&w, cpus);
        jw_key(&w, "memory_mb");
        jw_int(&w, sb->memory_mb ? sb->memory_mb : DEFAULT_MEMORY_MB);
        jw_key(&w, "disk_size_mb");
        jw_int(&w, sb->disk_mb ? sb->disk_mb : DEFAULT_DISK_MB);
        jw_key(&w, "timeout_seconds");
        jw_int(&w, sb->timeout_s ? sb->timeout_s : DEFAULT_TIMEOUT_S);
        jw_obj_end(&w);
        write_network(&w, sb, net_rules, socket);
        write_vfs(&w, sb, vfs_obj);
        if (sb->env.n) { jw_key(&w, "env"); write_kvlist(&w, &sb->env); }
        write_image_config(&w, sb);
        if (sb->kernel) {
            jw_key(&w, "kernel");
            jw_obj(&w);
            jw_key(&w, "ref");
            jw_str(&w, sb->kernel);
            jw_obj_end(&w);
        }
        if (sb->ndisks) {
            jw_key(&w, "extra_disks");
            jw_arr(&w);
            for (size_t i = 0; i < sb->ndisks; i++) {
                jw_obj(&w);
                jw_key(&w, "host_path");
                jw_str(&w, sb->disks[i].host_path);
                jw_key(&w, "guest_mount");
                jw_str(&w, sb->disks[i].guest_mount);
                if (sb->disks[i].readonly) { jw_key(&w, "readonly"); jw_bool(&w, 1); }
                jw_obj_end(&w);
            }
            jw_arr_end(&w);
        }
        jw_obj_end(&w);
        if (w.oom) rc = verror(&e, MLK_ENOMEM, "out of memory while rendering the create params");
    }
    if (rc == 0) {
        if (w.secret) out->secret = 1; /* before the secret is copied in */
        jw_value(out, w.buf, w.len);
        if (out->oom) rc = verror(&e, MLK_ENOMEM, "out of memory while rendering the create params");
    }
    jw_free(&w);
    msgpack_unpacked_destroy(&net);
    msgpack_unpacked_destroy(&vfs);
    if (rc) {
        if (msg) *msg = e.msg ? e.msg : xstrdup(mlk_strerror(rc));
        else free(e.msg);
    }
    return rc;
}

size_t sandbox_port_forwards(const mlk_sandbox *sb, const char *const **specs, const char *const **addrs,
                             size_t *naddrs)
{
    if (!sb) {
        if (specs) *specs = NULL;
        if (addrs) *addrs = NULL;
        if (naddrs) *naddrs = 0;
        return 0;
    }
    if (specs) *specs = (const char *const *)sb->port_forwards.v;
    if (addrs) *addrs = (const char *const *)sb->pf_addresses.v;
    if (naddrs) *naddrs = sb->pf_addresses.n;
    return sb->port_forwards.n;
}

MLK_API int mlk_sandbox_params_json(const mlk_sandbox *sb, int launch, char **json, size_t *len, char **msg)
{
    if (json) *json = NULL;
    if (len) *len = 0;
    if (msg) *msg = NULL;
    if (!sb) {
        if (msg) *msg = xstrdup("mlk_sandbox_params_json: sb must not be NULL");
        return MLK_EINVAL;
    }
    jw w;
    jw_init(&w);
    w.secret = sb->nsecrets > 0;
    char *m = NULL;
    int rc = sandbox_render(sb, launch, NULL, &w, &m);
    if (rc == 0 && json) { /* json NULL: validate only, nothing leaves the core */
        *json = jw_take(&w, len);
        if (!*json) { rc = MLK_ENOMEM; m = xstrdup("out of memory"); }
    }
    jw_free(&w);
    if (msg) *msg = m;
    else free(m);
    return rc;
}

MLK_API int mlk_sandbox_error(const mlk_sandbox *sb, const char **msg)
{
    if (msg) *msg = NULL;
    if (!sb) return MLK_EINVAL;
    if (msg && sb->err) *msg = sb->errmsg ? sb->errmsg : mlk_strerror(sb->err);
    return sb->err;
}

size_t sandbox_net_rule_count(const mlk_sandbox *sb)
{
    size_t n = 0;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    if (sb && sb->net_rules_mp && mp_parse(sb->net_rules_mp, sb->net_rules_len, &u) == 0) {
        const msgpack_object *rules = mp_get(&u.data, "rules");
        if (rules && rules->type == MSGPACK_OBJECT_ARRAY) n = rules->via.array.size;
    }
    msgpack_unpacked_destroy(&u);
    return n;
}
