/* sandbox.c - the sandbox builder (mlk_sandbox_*): its lifecycle and
 * setters.  Interception configs and hooks are in sandbox_intercept.c, the
 * rendering of the `create` params (PROTOCOL section 5) in sandbox_render.c.
 *
 * Setters only record what they are given (copying it); the upstream
 * validation rules run in sandbox_render(), before anything is sent, so a
 * builder can be filled in any order.  Structured inputs given as msgpack
 * (env maps, image config, interception configs) are checked for shape when
 * they are set.  A setter that fails is remembered: the first failure is
 * reported again by sandbox_render(), so a caller that ignored a setter's
 * return value never creates a sandbox other than the one it asked for. */
#include "sandbox.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void strvec_clear(strvec *s)
{
    for (size_t i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
    s->v = NULL;
    s->n = 0;
}

int strvec_push(strvec *s, const char *str)
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

void kvlist_clear(kvlist *l)
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

int sandbox_fail(mlk_sandbox *sb, int code, const char *fmt, ...)
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

int sandbox_nomem(mlk_sandbox *sb, const char *what)
{
    return sandbox_fail(sb, MLK_ENOMEM, "%s: out of memory", what);
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
    return set_str(&sb->workspace, guest_path) ? sandbox_nomem(sb, "set_workspace") : 0;
}

/* Add or replace (same guest path) a mount. */
static int add_mount(mlk_sandbox *sb, const char *what, const char *guest, const char *type,
                     const char *host, int readonly)
{
    if (!sb) return MLK_EINVAL;
    if (!guest || !*guest)
        return sandbox_fail(sb, MLK_EINVAL, "%s: the guest path is empty; pass an absolute path under the workspace", what);
    if (host && !*host)
        return sandbox_fail(sb, MLK_EINVAL, "%s \"%s\": the host path is empty; pass the host directory to mount", what,
                    guest);
    char *g = strdup(guest), *h = host ? strdup(host) : NULL;
    if (!g || (host && !h)) { free(g); free(h); return sandbox_nomem(sb, what); }
    for (size_t i = 0; i < sb->nmounts; i++) {
        if (strcmp(sb->mounts[i].guest, guest) == 0) {
            free(sb->mounts[i].guest);
            free(sb->mounts[i].host);
            sb->mounts[i] = (struct mount){g, type, h, readonly, 0, 0, 0};
            return 0;
        }
    }
    struct mount *m = realloc(sb->mounts, (sb->nmounts + 1) * sizeof *m);
    if (!m) { free(g); free(h); return sandbox_nomem(sb, what); }
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
        return sandbox_fail(sb, MLK_EINVALID_MOUNT_OWNER, "%s must be in [0, 4294967295], got %lld", name, (long long)v);
    return 0;
}

MLK_API int mlk_sandbox_set_mount_owner(mlk_sandbox *sb, const char *guest_path, int which, int64_t uid,
                                        int64_t gid)
{
    if (!sb) return MLK_EINVAL;
    if (which & ~(MLK_MOUNT_OWNER_UID | MLK_MOUNT_OWNER_GID))
        return sandbox_fail(sb, MLK_EINVAL, "set_mount_owner: which %d has unknown bits; pass MLK_MOUNT_OWNER_UID and/or "
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
    return sandbox_fail(sb, MLK_EINVAL, "set_mount_owner: no mount at \"%s\"; add the mount first (e.g. "
                                "mlk_sandbox_mount_host_dir())", guest_path ? guest_path : "");
}

MLK_API int mlk_sandbox_set_env(mlk_sandbox *sb, const char *name, const char *value)
{
    if (!sb) return MLK_EINVAL;
    if (!name || !*name)
        return sandbox_fail(sb, MLK_EINVAL, "set_env: the variable name is empty; pass a name such as \"PATH\"");
    if (strchr(name, '='))
        return sandbox_fail(sb, MLK_EINVAL, "set_env: the name \"%s\" contains '='; pass the name and the value separately",
                    name);
    if (!value) value = "";
    return kvlist_put(&sb->env, name, strlen(name), value, strlen(value)) ? sandbox_nomem(sb, "set_env") : 0;
}

MLK_API int mlk_sandbox_allow_host(mlk_sandbox *sb, const char *host)
{
    if (!sb) return MLK_EINVAL;
    if (!host || !*host)
        return sandbox_fail(sb, MLK_EINVAL, "allow_host: the host is empty; pass a host name or glob such as \"*.example.com\"");
    return strvec_push(&sb->allowed_hosts, host) ? sandbox_nomem(sb, "allow_host") : 0;
}

MLK_API int mlk_sandbox_add_host(mlk_sandbox *sb, const char *host, const char *ip)
{
    if (!sb) return MLK_EINVAL;
    /* validity is checked in sandbox_render (upstream ErrInvalidAddHost) */
    char *h = strdup(host ? host : ""), *i = strdup(ip ? ip : "");
    struct add_host *a = h && i ? realloc(sb->add_hosts, (sb->nadd_hosts + 1) * sizeof *a) : NULL;
    if (!a) { free(h); free(i); return sandbox_nomem(sb, "add_host"); }
    a[sb->nadd_hosts++] = (struct add_host){h, i};
    sb->add_hosts = a;
    return 0;
}

MLK_API int mlk_sandbox_add_secret(mlk_sandbox *sb, const char *name, const char *value,
                                   const char *placeholder, const char *const *hosts, size_t nhosts)
{
    if (!sb) return MLK_EINVAL;
    if (!name || !*name)
        return sandbox_fail(sb, MLK_EINVAL, "add_secret: the secret name is empty; pass the environment variable name "
                                    "the guest sees, such as \"API_KEY\"");
    if (nhosts > 0 && !hosts)
        return sandbox_fail(sb, MLK_EINVAL, "add_secret \"%s\": hosts is NULL but nhosts is %zu", name, nhosts);
    for (size_t i = 0; i < nhosts; i++)
        if (!hosts[i] || !*hosts[i])
            return sandbox_fail(sb, MLK_EINVAL, "add_secret \"%s\": host %zu is empty; pass host names or globs", name, i);
    struct secret s = {0};
    s.name = strdup(name);
    s.value = strdup(value ? value : "");
    s.placeholder = placeholder && *placeholder ? strdup(placeholder) : NULL;
    int bad = !s.name || !s.value || (placeholder && *placeholder && !s.placeholder) ||
              strvec_set(&s.hosts, hosts, nhosts) != 0;
    if (bad) {
        secret_clear(&s);
        return sandbox_nomem(sb, "add_secret");
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
        return sandbox_nomem(sb, "add_secret");
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
    if (n > 0 && !v) return sandbox_fail(sb, MLK_EINVAL, "%s: the list is NULL but its length is %zu", what, n);
    for (size_t i = 0; i < n; i++)
        if (!v[i]) return sandbox_fail(sb, MLK_EINVAL, "%s: item %zu is NULL", what, i);
    return 0;
}

MLK_API int mlk_sandbox_set_dns_servers(mlk_sandbox *sb, const char *const *servers, size_t n)
{
    if (!sb) return MLK_EINVAL;
    /* the addresses are the server's to judge, as upstream */
    int rc = check_str_list(sb, "set_dns_servers", servers, n);
    if (rc) return rc;
    return strvec_set(&sb->dns_servers, servers, n) ? sandbox_nomem(sb, "set_dns_servers") : 0;
}

MLK_API int mlk_sandbox_set_hostname(mlk_sandbox *sb, const char *hostname)
{
    if (!sb) return MLK_EINVAL;
    return set_str(&sb->hostname, hostname) ? sandbox_nomem(sb, "set_hostname") : 0;
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
    if (!spec) return sandbox_fail(sb, MLK_EINVAL, "add_port_forward: the spec is NULL; pass \"[LOCAL_PORT:]REMOTE_PORT\"");
    return strvec_push(&sb->port_forwards, spec) ? sandbox_nomem(sb, "add_port_forward") : 0;
}

MLK_API int mlk_sandbox_set_port_forward_addresses(mlk_sandbox *sb, const char *const *addrs, size_t n)
{
    if (!sb) return MLK_EINVAL;
    int rc = check_str_list(sb, "set_port_forward_addresses", addrs, n);
    if (rc) return rc;
    for (size_t i = 0; i < n; i++)
        if (!*addrs[i])
            return sandbox_fail(sb, MLK_EINVAL, "set_port_forward_addresses: address %zu is empty; pass bind addresses "
                                        "such as \"127.0.0.1\"", i);
    return strvec_set(&sb->pf_addresses, addrs, n) ? sandbox_nomem(sb, "set_port_forward_addresses") : 0;
}

MLK_API int mlk_sandbox_set_user(mlk_sandbox *sb, const char *user)
{
    if (!sb) return MLK_EINVAL;
    sb->has_image_config = 1;
    return set_str(&sb->ic_user, user) ? sandbox_nomem(sb, "set_user") : 0;
}

MLK_API int mlk_sandbox_set_entrypoint(mlk_sandbox *sb, const char *const *argv, size_t n)
{
    if (!sb) return MLK_EINVAL;
    int rc = check_str_list(sb, "set_entrypoint", argv, n);
    if (rc) return rc;
    sb->has_image_config = 1;
    return strvec_set(&sb->ic_entrypoint, argv, n) ? sandbox_nomem(sb, "set_entrypoint") : 0;
}

MLK_API int mlk_sandbox_set_kernel(mlk_sandbox *sb, const char *ref)
{
    if (!sb) return MLK_EINVAL;
    return set_str(&sb->kernel, ref) ? sandbox_nomem(sb, "set_kernel") : 0;
}

MLK_API int mlk_sandbox_add_extra_disk(mlk_sandbox *sb, const char *host_path, const char *guest_mount, int readonly)
{
    if (!sb) return MLK_EINVAL;
    if (!host_path || !*host_path)
        return sandbox_fail(sb, MLK_EINVAL, "add_extra_disk: the host path is empty; pass the path of an ext4 image "
                                    "(for example a volume's path)");
    if (!guest_mount || guest_mount[0] != '/')
        return sandbox_fail(sb, MLK_EINVAL, "add_extra_disk \"%s\": the guest mount \"%s\" is not an absolute path; "
                                    "pass where the disk appears in the guest, such as \"/mnt/data\"",
                    host_path, guest_mount ? guest_mount : "");
    char *h = strdup(host_path), *g = strdup(guest_mount);
    struct extra_disk *d = h && g ? realloc(sb->disks, (sb->ndisks + 1) * sizeof *d) : NULL;
    if (!d) { free(h); free(g); return sandbox_nomem(sb, "add_extra_disk"); }
    d[sb->ndisks++] = (struct extra_disk){h, g, readonly != 0};
    sb->disks = d;
    return 0;
}

/* ===================================================================== */
/* msgpack inputs                                                         */

static int mp_is_str(const msgpack_object *o) { return o->type == MSGPACK_OBJECT_STR; }

int sandbox_parse_map(mlk_sandbox *sb, const char *what, const char *buf, size_t len, msgpack_unpacked *u)
{
    if (!buf || len == 0) {
        msgpack_unpacked_init(u);
        return sandbox_fail(sb, MLK_EINVAL, "%s: no msgpack document given; pass a msgpack map", what);
    }
    if (mp_parse(buf, len, u) != 0)
        return sandbox_fail(sb, MLK_EINVAL, "%s: the %zu bytes given are not one complete msgpack document; "
                                    "pass a single msgpack map", what, len);
    if (u->data.type != MSGPACK_OBJECT_MAP)
        return sandbox_fail(sb, MLK_EINVAL, "%s: expected a msgpack map but got %s", what, mp_kind_text(&u->data));
    return 0;
}

int sandbox_check_keys(mlk_sandbox *sb, const char *what, const msgpack_object *map, const rule_key *known)
{
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (!mp_is_str(k)) return sandbox_fail(sb, MLK_EINVAL, "%s: a key is %s; keys must be strings", what, mp_kind_text(k));
        int ok = 0;
        for (const rule_key *n = known; n->key && !ok; n++) ok = mp_key_is(k, n->key);
        if (!ok) {
            char list[256] = "";
            for (const rule_key *n = known; n->key; n++) {
                if (n != known) strncat(list, ", ", sizeof list - strlen(list) - 1);
                strncat(list, n->key, sizeof list - strlen(list) - 1);
            }
            return sandbox_fail(sb, MLK_EINVAL, "%s: unknown key \"%.*s\"; known keys are %s", what, (int)k->via.str.size,
                        k->via.str.ptr, list);
        }
    }
    return 0;
}

MLK_API int mlk_sandbox_set_env_map(mlk_sandbox *sb, const char *msgpack, size_t len)
{
    if (!sb) return MLK_EINVAL;
    msgpack_unpacked u;
    int rc = sandbox_parse_map(sb, "set_env_map", msgpack, len, &u);
    if (rc == 0 && !mp_is_str_map(&u.data))
        rc = sandbox_fail(sb, MLK_EINVAL, "set_env_map: every key and value must be a string");
    for (uint32_t i = 0; rc == 0 && i < u.data.via.map.size; i++) {
        const msgpack_object_str *k = &u.data.via.map.ptr[i].key.via.str;
        if (k->size == 0 || memchr(k->ptr, '=', k->size))
            rc = sandbox_fail(sb, MLK_EINVAL, "set_env_map: the name \"%.*s\" is empty or contains '='; "
                                      "pass plain variable names", (int)k->size, k->ptr);
    }
    /* all checked: merge (a later value for the same name wins) */
    for (uint32_t i = 0; rc == 0 && i < u.data.via.map.size; i++) {
        const msgpack_object_kv *p = &u.data.via.map.ptr[i];
        if (kvlist_put(&sb->env, p->key.via.str.ptr, p->key.via.str.size, p->val.via.str.ptr, p->val.via.str.size))
            rc = sandbox_nomem(sb, "set_env_map");
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
    static const char *what = "set_image_config";
    if (!sb) return MLK_EINVAL;
    msgpack_unpacked u;
    int rc = sandbox_parse_map(sb, what, msgpack, len, &u);
    if (rc == 0) rc = sandbox_check_keys(sb, what, &u.data, contract_image_config);
    const msgpack_object *user = rc ? NULL : mp_get(&u.data, "user");
    const msgpack_object *wd = rc ? NULL : mp_get(&u.data, "working_dir");
    const msgpack_object *ep = rc ? NULL : mp_get(&u.data, "entrypoint");
    const msgpack_object *cmd = rc ? NULL : mp_get(&u.data, "cmd");
    const msgpack_object *env = rc ? NULL : mp_get(&u.data, "env");
    if (rc == 0 && user && !mp_is_str(user))
        rc = sandbox_fail(sb, MLK_EINVAL, "%s: \"user\" must be a string, got %s", what, mp_kind_text(user));
    if (rc == 0 && wd && !mp_is_str(wd))
        rc = sandbox_fail(sb, MLK_EINVAL, "%s: \"working_dir\" must be a string, got %s", what, mp_kind_text(wd));
    if (rc == 0 && ep && !mp_is_str_array(ep))
        rc = sandbox_fail(sb, MLK_EINVAL, "%s: \"entrypoint\" must be an array of strings", what);
    if (rc == 0 && cmd && !mp_is_str_array(cmd))
        rc = sandbox_fail(sb, MLK_EINVAL, "%s: \"cmd\" must be an array of strings", what);
    if (rc == 0 && env && !mp_is_str_map(env))
        rc = sandbox_fail(sb, MLK_EINVAL, "%s: \"env\" must be a map of strings to strings", what);
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
        if (bad) rc = sandbox_nomem(sb, what);
    }
    msgpack_unpacked_destroy(&u);
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

MLK_API int mlk_sandbox_error(const mlk_sandbox *sb, const char **msg)
{
    if (msg) *msg = NULL;
    if (!sb) return MLK_EINVAL;
    if (msg && sb->err) *msg = sb->errmsg ? sb->errmsg : mlk_strerror(sb->err);
    return sb->err;
}
