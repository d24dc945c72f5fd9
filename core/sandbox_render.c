/* sandbox_render.c - the `create` params (PROTOCOL section 5): the seed's
 * validation of a builder, then its rendering as JSON. */
#include "sandbox.h"

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

static void write_net_rules(jw *w, const msgpack_object *rules, const hookset *hooks)
{
    jw_key(w, "rules");
    jw_arr(w);
    for (uint32_t i = 0; rules && i < rules->via.array.size; i++) {
        jw_obj(w);
        contract_write_rule(&contract_net_rule, RK_WIRE, &rules->via.array.ptr[i], NULL, w);
        jw_obj_end(w);
    }
    hookset_write_net_rules(hooks, w, rules ? rules->via.array.size : 0);
    jw_arr_end(w);
}

static void write_vfs_rules(jw *w, const msgpack_object *rules)
{
    jw_key(w, "rules");
    jw_arr(w);
    for (uint32_t i = 0; i < rules->via.array.size; i++) {
        jw_obj(w);
        contract_write_rule(&contract_vfs_rule, RK_WIRE, &rules->via.array.ptr[i], NULL, w);
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
