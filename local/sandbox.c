/* sandbox.c - create: validate the sandbox config like upstream, build the
 * VM's state directory (vms/<id>: root/ tree, vm.log, etc/hosts), and
 * compose the bubblewrap command line that gives each command a root of
 * its own:
 *   /            the VM's root/ dir (writable: /tmp, /root, /home, /etc,
 *                the workspace and anything else a command creates)
 *   /usr /bin /lib /lib64 /sbin ...   read-only from the host (MT_SYSTEM
 *                mounts, so that the file calls see them too)
 *   /etc         in root/: a copy of the host's /etc minus secrets (shadow,
 *                gshadow, sudoers, ssh), with the VM's own hosts, hostname
 *                and resolv.conf
 *   /proc /dev /sys   bwrap's own, and the host's sysfs read-only
 *   mounts       vfs.mounts (host_fs, memory, overlay) and extra_disks
 * Without a working bwrap commands run as plain processes (the root/ tree
 * then only backs the file calls), and the VM log says so. */
#include "local.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- string vectors ---------------------------------------------------- */

size_t strv_len(char **v)
{
    size_t n = 0;
    while (v && v[n]) n++;
    return n;
}

char **strv_push(char **v, const char *s)
{
    size_t n = strv_len(v);
    char **nv = realloc(v, (n + 2) * sizeof *nv);
    if (!nv) return v;
    nv[n] = strdup(s ? s : "");
    nv[n + 1] = NULL;
    return nv;
}

void strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++) free(v[i]);
    free(v);
}

/* Set NAME=VALUE in an env list, replacing an existing NAME. */
static char **env_set(char **env, const char *name, const char *value)
{
    size_t nl = strlen(name);
    char *kv = NULL;
    if (asprintf(&kv, "%s=%s", name, value) < 0) return env;
    for (size_t i = 0; env && env[i]; i++)
        if (!strncmp(env[i], name, nl) && env[i][nl] == '=') {
            free(env[i]);
            env[i] = kv;
            return env;
        }
    env = strv_push(env, kv);
    free(kv);
    return env;
}

void vm_setenv(vm *v, const char *name, const char *value)
{
    v->env = env_set(v->env, name, value);
}

/* ---- log ---------------------------------------------------------------- */

void vm_log(vm *v, const char *fmt, ...)
{
    if (!v || v->log_fd < 0) return;
    char *msg = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0) msg = NULL;
    va_end(ap);
    if (!msg) return;
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    char ts[32];
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    dprintf(v->log_fd, "%s matchlock-local: %s\n", ts, msg);
    free(msg);
}

/* ---- validation helpers ------------------------------------------------- */

static int fail(char **msg, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char **msg, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(msg, fmt, ap) < 0) *msg = NULL;
    va_end(ap);
    return code;
}

static int is_type(const jnode *n, int t) { return n && n->type == t; }
static int absent(const jnode *n) { return !n || n->type == JN_NULL; }

/* Guest path: absolute, lexically clean, no "..".  malloc'd or NULL. */
static char *clean_abs(const char *p)
{
    return p && p[0] == '/' ? guest_clean(NULL, p) : NULL;
}

static int under(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    if (!strcmp(dir, "/")) return 1;
    return !strncmp(path, dir, n) && (path[n] == '\0' || path[n] == '/');
}

static int valid_workspace(const char *w)
{
    if (!w || w[0] != '/') return 0;
    for (const char *c = w; *c; c++)
        if (!(isalnum((unsigned char)*c) || *c == '/' || *c == '_' || *c == '.' || *c == '-')) return 0;
    return 1;
}

static int valid_host_entry(const char *h)
{
    if (!h || !*h) return 0;
    for (const char *c = h; *c; c++)
        if (isspace((unsigned char)*c) || *c == ':') return 0;
    return 1;
}

static int valid_ip(const char *ip)
{
    unsigned char b[16];
    return ip && (inet_pton(AF_INET, ip, b) == 1 || inet_pton(AF_INET6, ip, b) == 1);
}

/* An object of string values -> env list. */
static int add_env_obj(vm *v, const jdoc *d, const jnode *obj, const char *field, char **msg)
{
    if (absent(obj)) return 0;
    if (!is_type(obj, JN_OBJ)) return fail(msg, MLK_RPC_INVALID_PARAMS, "%s: expected an object of strings", field);
    for (const jnode *k = jd_first(d, obj); k; k = jd_next(d, k)) {
        const jnode *val = jd_val(k);
        if (val->type != JN_STR) return fail(msg, MLK_RPC_INVALID_PARAMS, "%s.%s: expected a string", field, k->s);
        if (!k->len || strchr(k->s, '=')) return fail(msg, MLK_RPC_INVALID_PARAMS, "%s: invalid variable name \"%s\"", field, k->s);
        v->env = env_set(v->env, k->s, val->s);
    }
    return 0;
}

static int str_array(const jdoc *d, const jnode *arr, const char *field, char ***out, char **msg)
{
    if (absent(arr)) return 0;
    if (!is_type(arr, JN_ARR)) return fail(msg, MLK_RPC_INVALID_PARAMS, "%s: expected an array of strings", field);
    for (const jnode *n = jd_first(d, arr); n; n = jd_next(d, n)) {
        if (n->type != JN_STR) return fail(msg, MLK_RPC_INVALID_PARAMS, "%s: expected an array of strings", field);
        *out = strv_push(*out, n->s);
    }
    return 0;
}

static int add_mount(vm *v, const char *guest, const char *host, int type, int ro)
{
    mount *nm = realloc(v->mounts, (v->nmounts + 1) * sizeof *nm);
    if (!nm) return -1;
    v->mounts = nm;
    nm[v->nmounts].guest = strdup(guest);
    nm[v->nmounts].host = strdup(host);
    nm[v->nmounts].type = type;
    nm[v->nmounts].ro = ro;
    v->nmounts++;
    return 0;
}

static int cmp_mount(const void *a, const void *b)
{
    return (int)strlen(((const mount *)a)->guest) - (int)strlen(((const mount *)b)->guest);
}

/* ---- bwrap --------------------------------------------------------------- */

static const char *sys_dirs[] = {"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", NULL};

/* /etc entries a sandbox must not see (masked), and ones it gets its own of. */
static const char *const etc_hidden[] = {"shadow", "shadow-", "gshadow", "gshadow-", "sudoers", "sudoers.d",
                                         "ssh", "ssl/private", "security", "subuid", "subuid-", "subgid",
                                         "subgid-", "machine-id", NULL};

static int etc_secret(const char *name)
{
    for (int i = 0; etc_hidden[i]; i++)
        if (!strcmp(name, etc_hidden[i])) return 1;
    return !strcmp(name, "hosts") || !strcmp(name, "hostname") || !strcmp(name, "resolv.conf");
}

/* Copy the host's /etc into the VM's etc dir, leaving out its secrets;
 * symlinks into /run (resolv.conf and friends) are copied as the files
 * they point to, since the sandbox has no /run of the host. */
static void populate_etc(const char *dst)
{
    DIR *d = opendir("/etc");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || etc_secret(e->d_name)) continue;
        char *src = NULL, *to = NULL, target[4096];
        if (asprintf(&src, "/etc/%s", e->d_name) < 0) continue;
        if (asprintf(&to, "%s/%s", dst, e->d_name) < 0) { free(src); continue; }
        ssize_t n = readlink(src, target, sizeof target - 1);
        if (n > 0) target[n] = '\0';
        copy_tree(n > 0 && !strncmp(target, "/run/", 5) ? target : src, to); /* unreadable entries are skipped */
        free(src);
        free(to);
    }
    if (d) closedir(d);
    char *priv = NULL;
    if (asprintf(&priv, "%s/ssl/private", dst) >= 0) rm_rf(priv);
    free(priv);
}

static char *find_bwrap(void)
{
    if (getenv("MATCHLOCK_LOCAL_NO_BWRAP")) return NULL;
    const char *path = getenv("PATH");
    if (!path) path = "/usr/local/bin:/usr/bin:/bin";
    char *copy = strdup(path), *save = NULL;
    for (char *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
        char *cand = NULL;
        if (asprintf(&cand, "%s/bwrap", *dir ? dir : ".") < 0) continue;
        if (access(cand, X_OK) == 0) { free(copy); return cand; }
        free(cand);
    }
    free(copy);
    return NULL;
}

static char *bwrap_path;

static char **push2(char **v, const char *a, const char *b) { return strv_push(strv_push(v, a), b); }
static char **push3(char **v, const char *a, const char *b, const char *c)
{
    return strv_push(push2(v, a, b), c);
}

/* matchlock-local-init, next to our own binary; NULL when it is not there. */
static const char *init_path(void)
{
    static char *path;
    static int looked;
    if (looked) return path;
    looked = 1;
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return NULL;
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (!slash) return NULL;
    *slash = '\0';
    if (asprintf(&path, "%s/matchlock-local-init", self) < 0) path = NULL;
    if (path && access(path, X_OK) != 0) { free(path); path = NULL; }
    return path;
}

#define INIT_GUEST "/dev/.matchlock-local-init"   /* bwrap's own /dev tmpfs */

char **vm_command_argv(vm *v, char **cmd, const char *cwd, const sandbox_user *su, int tty,
                       int *inner_tty, char **err)
{
    char **a = NULL;
    const char *init = init_path();
    int switch_user = su && su->active;
    /* under bwrap the command is in a PID namespace: only a process in
     * there can give it a session with the terminal */
    int init_tty = tty && v->use_bwrap && init;
    int init_bind = switch_user || init_tty || !strcmp(cmd[0], INIT_GUEST);
    if (inner_tty) *inner_tty = init_tty;
    if (switch_user && !init) {
        if (asprintf(err, "cannot switch to uid %u: matchlock-local-init is missing next to matchlock-local",
                     (unsigned)su->uid) < 0) *err = NULL;
        return NULL;
    }
    if (v->use_bwrap) {
        a = strv_push(a, bwrap_path);
        a = strv_push(a, "--die-with-parent");
        a = strv_push(a, "--unshare-pid");
        a = strv_push(a, "--unshare-ipc");
        a = strv_push(a, "--unshare-uts");
        a = strv_push(a, "--unshare-cgroup-try");
        if (v->no_network) a = strv_push(a, "--unshare-net");
        a = push2(a, "--hostname", v->hostname);
        a = push3(a, "--bind", v->root, "/");
        a = push2(a, "--proc", "/proc");
        a = push2(a, "--dev", "/dev");
        /* sysfs is the host's (read-only); without a network only lo is
         * listed, as in upstream's VM without eth0 */
        a = push3(a, "--ro-bind", "/sys", "/sys");
        if (v->no_network) {
            a = push2(a, "--tmpfs", "/sys/class/net");
            a = push3(a, "--symlink", "../../devices/virtual/net/lo", "/sys/class/net/lo");
        }
        /* the host's system dirs are read-only mounts like the others */
        for (size_t i = 0; i < v->nmounts; i++)
            a = push3(a, v->mounts[i].ro ? "--ro-bind" : "--bind", v->mounts[i].host, v->mounts[i].guest);
        if (init_bind) a = push3(a, "--ro-bind", init, INIT_GUEST);
        a = push2(a, "--chdir", cwd && *cwd ? cwd : "/");
        a = strv_push(a, "--");
    }
    if (switch_user || init_tty) {
        a = strv_push(a, v->use_bwrap ? INIT_GUEST : init);
        if (init_tty) a = strv_push(a, "-t");
        if (switch_user) {
            char u[32], g[32];
            snprintf(u, sizeof u, "%u", (unsigned)su->uid);
            snprintf(g, sizeof g, "%u", (unsigned)su->gid);
            a = push2(a, "-u", u);
            a = push2(a, "-g", g);
            if (su->groups[0]) a = push2(a, "-G", su->groups);
        }
        a = strv_push(a, "--");
    }
    for (char **c = cmd; *c; c++) a = strv_push(a, *c);
    return a;
}

/* Run `true` the way commands will run; 0 when bwrap works here. */
static int bwrap_works(vm *v, char **why)
{
    /* the init helper when there is one: an image may have no /bin/true */
    char *cmd[] = {init_path() ? INIT_GUEST : "/bin/true", "-p", NULL};
    if (!init_path()) cmd[1] = NULL;
    char **argv = vm_command_argv(v, cmd, "/", NULL, 0, NULL, NULL);
    int errp[2];
    if (!argv || pipe2(errp, O_CLOEXEC) != 0) { strv_free(argv); return -1; }
    pid_t pid = fork();
    if (pid == 0) {
        int nul = open("/dev/null", O_RDWR);
        dup2(nul, 0); dup2(nul, 1); dup2(errp[1], 2);
        execv(argv[0], argv);
        _exit(127);
    }
    close(errp[1]);
    strv_free(argv);
    char buf[512];
    ssize_t n = 0, r;
    while (n < (ssize_t)sizeof buf - 1 && (r = read(errp[0], buf + n, sizeof buf - 1 - (size_t)n)) > 0) n += r;
    close(errp[0]);
    buf[n > 0 ? n : 0] = '\0';
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid) return -1;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return 0;
    char *nl = strchr(buf, '\n');
    if (nl) *nl = '\0';
    if (asprintf(why, "%s", buf) < 0) *why = NULL;
    return -1;
}

/* ---- create --------------------------------------------------------------- */

/* Write the VM's own etc/NAME (replacing whatever the copy of the host's
 * or the image's /etc had there, symlinks included). */
static void write_etc(vm *v, const char *name, const char *text)
{
    char *path = NULL;
    if (!text || asprintf(&path, "%s/%s", v->etc_dir, name) < 0) return;
    unlink(path);
    FILE *f = fopen(path, "w");
    if (f) { fputs(text, f); fclose(f); }
    free(path);
}

static int build_tree(vm *v, char **msg)
{
    static const char *dirs[] = {"tmp", "root", "home", "var/tmp", "proc", "dev", "etc", NULL};
    for (int i = 0; dirs[i]; i++) {
        char *p = NULL;
        if (asprintf(&p, "%s/%s", v->root, dirs[i]) < 0 || mkdir_p(p, 0755) != 0) {
            free(p);
            return fail(msg, MLK_RPC_VM_FAILED, "creating the VM root: %s", strerror(errno));
        }
        if (!strcmp(dirs[i], "tmp") || !strcmp(dirs[i], "var/tmp")) chmod(p, 01777);
        if (!strcmp(dirs[i], "root")) chmod(p, 0700);
        free(p);
    }
    for (int i = 0; !v->from_image && sys_dirs[i]; i++) {
        char host[64], target[4096], *p = NULL;
        snprintf(host, sizeof host, "/%s", sys_dirs[i]);
        struct stat st;
        if (lstat(host, &st) != 0) continue;
        if (asprintf(&p, "%s/%s", v->root, sys_dirs[i]) < 0) continue;
        if (S_ISLNK(st.st_mode)) {
            ssize_t n = readlink(host, target, sizeof target - 1);
            if (n > 0) { target[n] = '\0'; if (symlink(target, p) != 0 && errno != EEXIST) {} }
        } else {
            mkdir(p, 0755);
        }
        free(p);
    }
    char *ws = NULL;
    if (asprintf(&ws, "%s%s", v->root, v->workspace) < 0 || mkdir_p(ws, 0755) != 0) {
        free(ws);
        return fail(msg, MLK_RPC_VM_FAILED, "creating the workspace: %s", strerror(errno));
    }
    free(ws);
    return 0;
}

/* ---- create: parse the request into a spec, lay out, mount, isolate ---- */

/* What the layout, the mounts and the isolation read besides the vm's own
 * fields (which parsing fills too): parts of the request, borrowed from it,
 * and what parsing made. */
typedef struct {
    const jnode *img, *net, *mounts, *disks, *ic;
    const char *hostname;   /* network.hostname; NULL: the VM's id */
    char **dns;             /* network.dns_servers, or upstream's default (owned) */
    image_info image;       /* the imported image, when have_image */
    int have_image;
} vm_spec;

/* The request's own fields that need no VM: image, the flags, resources, kernel. */
static int spec_check_top(const jdoc *d, const jnode *params, vm_spec *sp, char **msg)
{
    if (!is_type(params, JN_OBJ)) return fail(msg, MLK_RPC_INVALID_PARAMS, "params: expected an object");
    if (jd_get(d, params, "id"))
        return fail(msg, MLK_RPC_INVALID_PARAMS, "id: a sandbox id cannot be supplied by the caller");
    const jnode *img = jd_get(d, params, "image");
    if (!absent(img) && !is_type(img, JN_STR)) return fail(msg, MLK_RPC_INVALID_PARAMS, "image: expected a string");
    if (absent(img) || img->len == 0) return fail(msg, MLK_RPC_INVALID_PARAMS, "image is required (e.g., alpine:latest)");
    static const char *bools[] = {"privileged", "launch_entrypoint", NULL};
    for (int i = 0; bools[i]; i++) {
        const jnode *b = jd_get(d, params, bools[i]);
        if (!absent(b) && !is_type(b, JN_BOOL)) return fail(msg, MLK_RPC_INVALID_PARAMS, "%s: expected a boolean", bools[i]);
    }
    const jnode *res = jd_get(d, params, "resources");
    if (!absent(res) && !is_type(res, JN_OBJ)) return fail(msg, MLK_RPC_INVALID_PARAMS, "resources: expected an object");
    if (is_type(res, JN_OBJ)) {
        static const char *nums[] = {"cpus", "memory_mb", "disk_size_mb", "timeout_seconds", NULL};
        for (int i = 0; nums[i]; i++) {
            const jnode *n = jd_get(d, res, nums[i]);
            double x;
            if (!absent(n) && (jn_double(n, &x) != 0 || x < 0))
                return fail(msg, MLK_RPC_INVALID_PARAMS, "resources.%s: expected a non-negative number", nums[i]);
        }
    }
    /* {"ref": "<REF>"}, as the SDKs send it (PROTOCOL.md); there is no
     * guest kernel here, so the ref is checked and not used */
    const jnode *kernel = jd_get(d, params, "kernel");
    if (!absent(kernel)) {
        if (!is_type(kernel, JN_OBJ)) return fail(msg, MLK_RPC_INVALID_PARAMS, "kernel: expected an object");
        const jnode *ref = jd_get(d, kernel, "ref");
        if (!absent(ref) && !is_type(ref, JN_STR)) return fail(msg, MLK_RPC_INVALID_PARAMS, "kernel.ref: expected a string");
    }
    sp->img = img;
    return 0;
}

/* network: the flags the proxy and bwrap read go into v, the rest into sp. */
static int spec_network(vm *v, const jdoc *d, const jnode *params, vm_spec *sp, char **msg)
{
    int code;
    const jnode *net = sp->net = jd_get(d, params, "network");
    if (!absent(net)) {
        if (!is_type(net, JN_OBJ)) return fail(msg, MLK_RPC_INVALID_PARAMS, "network: expected an object");
        const jnode *nn = jd_get(d, net, "no_network");
        if (!absent(nn) && !is_type(nn, JN_BOOL)) return fail(msg, MLK_RPC_INVALID_PARAMS, "network.no_network: expected a boolean");
        v->no_network = is_type(nn, JN_BOOL) && nn->bval;
        char **allowed = NULL;
        if ((code = str_array(d, jd_get(d, net, "allowed_hosts"), "network.allowed_hosts", &allowed, msg))) return code;
        v->allowed = allowed;
        v->nallowed = strv_len(allowed);
        const jnode *secrets = jd_get(d, net, "secrets");
        if (!absent(secrets) && !is_type(secrets, JN_OBJ)) return fail(msg, MLK_RPC_INVALID_PARAMS, "network.secrets: expected an object");
        const jnode *icp = jd_get(d, net, "interception");
        if (!absent(icp) && !is_type(icp, JN_OBJ)) return fail(msg, MLK_RPC_INVALID_PARAMS, "network.interception: expected an object");
        const jnode *rules = is_type(icp, JN_OBJ) ? jd_get(d, icp, "rules") : NULL;
        if (!absent(rules) && !is_type(rules, JN_ARR)) return fail(msg, MLK_RPC_INVALID_PARAMS, "network.interception.rules: expected an array");
        int forced = jd_bool(d, net, "intercept", 0);
        int nsecrets = is_type(secrets, JN_OBJ) ? (int)secrets->count : 0;
        int nrules = is_type(rules, JN_ARR) ? (int)rules->count : 0;
        if (v->no_network && (v->nallowed || nsecrets || forced || nrules)) {
            return fail(msg, MLK_RPC_INVALID_PARAMS, "network.no_network: cannot be combined with allowed_hosts, secrets, "
                        "intercept or interception rules");
        }
        v->intercept = forced || v->nallowed > 0 || nsecrets > 0 || nrules > 0;
        const jnode *ah = jd_get(d, net, "add_hosts");
        if (!absent(ah) && !is_type(ah, JN_ARR)) return fail(msg, MLK_RPC_INVALID_PARAMS, "network.add_hosts: expected an array");
        int i = 0;
        for (const jnode *h = jd_first(d, ah); h; h = jd_next(d, h), i++) {
            const char *host = jd_str(d, h, "host", NULL), *ip = jd_str(d, h, "ip", NULL);
            if (!valid_host_entry(host)) return fail(msg, MLK_RPC_INVALID_PARAMS, "network.add_hosts[%d].host: invalid host", i);
            if (!valid_ip(ip)) return fail(msg, MLK_RPC_INVALID_PARAMS, "network.add_hosts[%d].ip: invalid IP address", i);
        }
        if ((code = str_array(d, jd_get(d, net, "dns_servers"), "network.dns_servers", &sp->dns, msg))) return code;
        for (char **ns = sp->dns; ns && *ns; ns++)
            if (!valid_host_entry(*ns)) return fail(msg, MLK_RPC_INVALID_PARAMS, "network.dns_servers: invalid server \"%s\"", *ns);
        const jnode *mtu = jd_get(d, net, "mtu");
        int64_t m;
        if (!absent(mtu) && (jn_int(mtu, &m) != 0 || m < 0)) return fail(msg, MLK_RPC_INVALID_PARAMS, "network.mtu: expected a non-negative integer");
        const jnode *hn = jd_get(d, net, "hostname");
        if (!absent(hn)) {
            if (!is_type(hn, JN_STR) || !valid_host_entry(hn->s) || hn->len > 64) {
                return fail(msg, MLK_RPC_INVALID_PARAMS, "network.hostname: invalid hostname");
            }
            if (hn->len) sp->hostname = hn->s;
        }
    }
    return 0;
}

/* vfs: the workspace, the mounts (checked here, made by vm_mount) and the
 * interception rules. */
static int spec_vfs(vm *v, const jdoc *d, const jnode *params, vm_spec *sp, char **msg)
{
    const jnode *vfs = jd_get(d, params, "vfs");
    const char *workspace = NULL;
    const jnode *mounts = NULL, *vicp = NULL;
    if (!absent(vfs)) {
        if (!is_type(vfs, JN_OBJ)) return fail(msg, MLK_RPC_INVALID_PARAMS, "vfs: expected an object");
        const jnode *w = jd_get(d, vfs, "workspace");
        if (!absent(w) && !is_type(w, JN_STR)) return fail(msg, MLK_RPC_INVALID_PARAMS, "vfs.workspace: expected a string");
        if (is_type(w, JN_STR) && w->len) workspace = w->s;
        mounts = jd_get(d, vfs, "mounts");
        if (absent(mounts)) mounts = NULL;
        if (mounts && !is_type(mounts, JN_OBJ)) return fail(msg, MLK_RPC_INVALID_PARAMS, "vfs.mounts: expected an object");
        if (mounts && mounts->count == 0) mounts = NULL;
        vicp = jd_get(d, vfs, "interception");
        if (absent(vicp)) vicp = NULL;
        if (vicp && !is_type(vicp, JN_OBJ)) return fail(msg, MLK_RPC_INVALID_PARAMS, "vfs.interception: expected an object");
        if (mounts && !workspace) return fail(msg, MLK_RPC_INVALID_PARAMS, "vfs.workspace: required when mounts are set");
        if (vicp && !mounts) return fail(msg, MLK_RPC_INVALID_PARAMS, "vfs.interception: requires mounts");
        if (workspace && !valid_workspace(workspace)) {
            return fail(msg, MLK_RPC_INVALID_PARAMS, "vfs.workspace: must be an absolute path of [A-Za-z0-9/_.-]");
        }
    }
    v->workspace = clean_abs(workspace ? workspace : "/workspace");
    v->workspace_set = workspace != NULL;
    if (!v->workspace || !strcmp(v->workspace, "/")) return fail(msg, MLK_RPC_INVALID_PARAMS, "vfs.workspace: invalid path");
    for (const jnode *k = jd_first(d, mounts); k; k = jd_next(d, k)) {
        const jnode *m = jd_val(k);
        char *g = clean_abs(k->s);
        if (!g) return fail(msg, MLK_RPC_INVALID_PARAMS, "vfs.mounts[%s]: must be an absolute path without ..", k->s);
        int ok = under(g, v->workspace);
        free(g);
        if (!ok) return fail(msg, MLK_RPC_INVALID_PARAMS, "invalid configuration: guest path must be within workspace: \"%s\" not in \"%s\"", k->s, v->workspace);
        if (!is_type(m, JN_OBJ)) return fail(msg, MLK_RPC_INVALID_PARAMS, "vfs.mounts[%s]: expected an object", k->s);
        const char *type = jd_str(d, m, "type", NULL);
        if (!type || (strcmp(type, "memory") && strcmp(type, "host_fs") && strcmp(type, "overlay"))) {
            return fail(msg, MLK_RPC_INVALID_PARAMS, "vfs.mounts[%s].type: must be memory, host_fs or overlay", k->s);
        }
        if (strcmp(type, "memory")) {
            const char *hp = jd_str(d, m, "host_path", NULL);
            struct stat st;
            if (!hp || hp[0] != '/') return fail(msg, MLK_RPC_INVALID_PARAMS, "vfs.mounts[%s].host_path: an absolute path is required", k->s);
            if (stat(hp, &st) != 0 || !S_ISDIR(st.st_mode)) {
                return fail(msg, MLK_RPC_VM_FAILED, "vfs.mounts[%s].host_path: %s is not a directory", k->s, hp);
            }
        }
    }
    sp->mounts = mounts;
    if (vicp) return vfs_parse_rules(v, d, vicp, msg);
    return 0;
}

/* extra_disks: checked here, mounted by vm_mount. */
static int spec_disks(const jdoc *d, const jnode *params, vm_spec *sp, char **msg)
{
    const jnode *disks = sp->disks = jd_get(d, params, "extra_disks");
    if (!absent(disks) && !is_type(disks, JN_ARR)) return fail(msg, MLK_RPC_INVALID_PARAMS, "extra_disks: expected an array");
    {
        int i = 0;
        for (const jnode *x = jd_first(d, disks); x; x = jd_next(d, x), i++) {
            const char *hp = jd_str(d, x, "host_path", NULL), *gm = jd_str(d, x, "guest_mount", NULL);
            if (!hp || !*hp) return fail(msg, MLK_RPC_INVALID_PARAMS, "extra_disks[%d].host_path: required", i);
            char *g = clean_abs(gm);
            if (!g || !strcmp(g, "/")) { free(g); return fail(msg, MLK_RPC_INVALID_PARAMS, "extra_disks[%d].guest_mount: an absolute path is required", i); }
            free(g);
        }
    }
    return 0;
}

/* image_config over the imported image's config: user, working dir, entrypoint and cmd. */
static int spec_image_config(vm *v, const jdoc *d, const jnode *params, vm_spec *sp, char **msg)
{
    int code = 0;
    const jnode *ic = sp->ic = jd_get(d, params, "image_config");
    if (!absent(ic) && !is_type(ic, JN_OBJ)) return fail(msg, MLK_RPC_INVALID_PARAMS, "image_config: expected an object");
    /* the imported image's config first, then the request's, field by field */
    char **entry = NULL, **cmdv = NULL;
    if (sp->have_image && is_type(sp->image.config, JN_OBJ)) {
        const char *u = jd_str(&sp->image.doc, sp->image.config, "user", ""), *wd = jd_str(&sp->image.doc, sp->image.config, "working_dir", "");
        if (*u) v->img_user = strdup(u);
        if (*wd) v->img_workdir = strdup(wd);
        str_array(&sp->image.doc, jd_get(&sp->image.doc, sp->image.config, "entrypoint"), "", &entry, msg);
        str_array(&sp->image.doc, jd_get(&sp->image.doc, sp->image.config, "cmd"), "", &cmdv, msg);
    }
    if (is_type(ic, JN_OBJ)) {
        const jnode *u = jd_get(d, ic, "user"), *wd = jd_get(d, ic, "working_dir");
        if (!absent(u) && !is_type(u, JN_STR)) { code = fail(msg, MLK_RPC_INVALID_PARAMS, "image_config.user: expected a string"); goto bad_entry; }
        if (!absent(wd) && !is_type(wd, JN_STR)) { code = fail(msg, MLK_RPC_INVALID_PARAMS, "image_config.working_dir: expected a string"); goto bad_entry; }
        if (is_type(u, JN_STR) && u->len) { free(v->img_user); v->img_user = strdup(u->s); }
        if (is_type(wd, JN_STR) && wd->len) { free(v->img_workdir); v->img_workdir = strdup(wd->s); }
        const jnode *ep = jd_get(d, ic, "entrypoint"), *cm = jd_get(d, ic, "cmd");
        if (!absent(ep)) { strv_free(entry); entry = NULL; }
        if (!absent(cm)) { strv_free(cmdv); cmdv = NULL; }
        if ((code = str_array(d, ep, "image_config.entrypoint", &entry, msg)) ||
            (code = str_array(d, cm, "image_config.cmd", &cmdv, msg)))
            goto bad_entry;
    }
    for (char **c = cmdv; c && *c; c++) entry = strv_push(entry, *c);
    strv_free(cmdv);
    cmdv = NULL;
    v->entry_argv = entry;
    entry = NULL;
bad_entry:
    strv_free(entry);
    strv_free(cmdv);
    return code;
}

/* The VM's id and hostname, its environment (defaults, the image's, the
 * request's), the proxy's configuration, the DNS servers. */
static int spec_env(vm *v, const jdoc *d, const jnode *params, vm_spec *sp, char **msg)
{
    int code;
    unsigned char rnd[4];
    if (getrandom(rnd, sizeof rnd, 0) != sizeof rnd) {
        FILE *f = fopen("/dev/urandom", "r");
        if (!f || fread(rnd, 1, sizeof rnd, f) != sizeof rnd) { for (int i = 0; i < 4; i++) rnd[i] = (unsigned char)(rand() ^ getpid()); }
        if (f) fclose(f);
    }
    snprintf(v->id, sizeof v->id, "vm-%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3]);
    v->hostname = strdup(sp->hostname ? sp->hostname : v->id);
    /* environment: defaults, then image env, then the caller's env */
    v->env = env_set(v->env, "PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    v->env = env_set(v->env, "HOME", "/root");
    v->env = env_set(v->env, "HOSTNAME", v->hostname);
    if (sp->have_image && is_type(sp->image.config, JN_OBJ) &&
        (code = add_env_obj(v, &sp->image.doc, jd_get(&sp->image.doc, sp->image.config, "env"), "image env", msg))) return code;
    if (is_type(sp->ic, JN_OBJ) && (code = add_env_obj(v, d, jd_get(d, sp->ic, "env"), "image_config.env", msg))) return code;
    if ((code = add_env_obj(v, d, jd_get(d, params, "env"), "env", msg))) return code;
    /* network interception: secrets' placeholders override the env */
    if ((code = proxy_configure(v, d, is_type(sp->net, JN_OBJ) ? sp->net : NULL, msg))) return code;

    if (!sp->dns) sp->dns = strv_push(strv_push(NULL, "8.8.8.8"), "8.8.4.4");   /* upstream's default */
    return 0;
}

/* Render the create params as jd_write does, but with each secret's value
 * (network.secrets.NAME.value) replaced by its length: the value never
 * reaches the disk.  level: 0 the params, 1 network, 2 secrets, 3 one
 * secret, -1 anywhere else. */
static void write_redacted(const jdoc *d, const jnode *n, jw *w, int level)
{
    if (n->type != JN_OBJ || level < 0) { jd_write(d, n, w); return; }
    jw_obj(w);
    for (const jnode *k = jd_first(d, n); k; k = jd_next(d, k)) {
        const jnode *val = jd_val(k);
        jw_strn(w, k->s, k->len);
        jw_raw(w, ":", 1);
        w->need_comma[w->depth] = 2;
        if (level == 3 && !strcmp(k->s, "value") && val->type == JN_STR) {
            char said[64];
            snprintf(said, sizeof said, "(redacted: %zu bytes)", val->len);
            jw_str(w, said);
            continue;
        }
        int sub = level == 0 && !strcmp(k->s, "network") ? 1 : level == 1 && !strcmp(k->s, "secrets") ? 2
                : level == 2 ? 3 : -1;
        write_redacted(d, val, w, sub);
    }
    jw_obj_end(w);
}

/* config.json: the request as it came (mode 0600), secret values left out
 * (write_redacted): nothing reads it back, it is there for a person. */
static void write_config(vm *v, const jdoc *d, const jnode *params)
{
    jw w;
    jw_init(&w);
    write_redacted(d, params, &w, 0);
    jw_nl(&w);
    char *cfg = NULL;
    if (asprintf(&cfg, "%s/config.json", v->dir) >= 0) {
        int fd = open(cfg, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd >= 0) { if (write(fd, w.buf, w.len) < 0) {} close(fd); }
    }
    free(cfg);
    jw_free(&w);
}

/* etc/hosts, etc/hostname and etc/resolv.conf, laid out as upstream's
 * guest init writes them */
static void write_etc_files(vm *v, const jdoc *d, const vm_spec *sp)
{
    jw h;
    jw_init(&h);
    char line[512];
    int n = snprintf(line, sizeof line, "127.0.0.1 localhost localhost.localdomain %s\n", v->hostname);
    jw_raw(&h, line, (size_t)n);
    for (const jnode *x = jd_first(d, sp->net ? jd_get(d, sp->net, "add_hosts") : NULL); x; x = jd_next(d, x)) {
        n = snprintf(line, sizeof line, "%s %s\n", jd_str(d, x, "ip", ""), jd_str(d, x, "host", ""));
        jw_raw(&h, line, (size_t)n);
    }
    static const char tail[] = "::1 localhost ip6-localhost ip6-loopback\nff02::1 ip6-allnodes\nff02::2 ip6-allrouters\n";
    jw_raw(&h, tail, sizeof tail - 1);
    char *text = jw_take(&h, NULL);
    write_etc(v, "hosts", text);
    free(text);
    snprintf(line, sizeof line, "%s\n", v->hostname);
    write_etc(v, "hostname", line);
    jw_init(&h);
    for (char **ns = sp->dns; *ns; ns++) {
        n = snprintf(line, sizeof line, "nameserver %s\n", *ns);
        jw_raw(&h, line, (size_t)n);
    }
    text = jw_take(&h, NULL);
    write_etc(v, "resolv.conf", text);
    free(text);
}

/* The VM's directory: root/ (the image's copy, or the host's /etc and
 * system directories), vm.log, config.json, etc/hosts, hostname and resolv.conf. */
static int vm_lay_out(vm *v, const jdoc *d, const jnode *params, const vm_spec *sp, char **msg)
{
    int code;
    {
        char *why = NULL;
        v->dir = state_make("vms", v->id, &why);   /* private: 0700, ours, no symlink */
        if (!v->dir) {
            code = fail(msg, MLK_RPC_VM_FAILED, "creating the VM directory: %s", why ? why : "out of memory");
            free(why);
            return code;
        }
    }
    if (asprintf(&v->root, "%s/root", v->dir) < 0 || asprintf(&v->log_path, "%s/vm.log", v->dir) < 0 ||
        asprintf(&v->etc_dir, "%s/root/etc", v->dir) < 0) {
        return fail(msg, MLK_RPC_INTERNAL, "out of memory");
    }
    if (mkdir_p(v->root, 0755) != 0 || mkdir_p(v->etc_dir, 0755) != 0) {
        return fail(msg, MLK_RPC_VM_FAILED, "creating %s: %s", v->dir, strerror(errno));
    }
    vm_mark_running(v->dir);
    v->log_fd = open(v->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    vm_log(v, "creating VM %s (image %s; a local sandbox, not a VM)", v->id, sp->img->s);
    if (sp->have_image) {
        /* the VM's root is its own copy of the image's root filesystem */
        if (copy_tree(sp->image.rootfs, v->root) != 0) {
            return fail(msg, MLK_RPC_VM_FAILED, "copying the root filesystem of image %s: %s", sp->image.tag, strerror(errno));
        }
        vm_log(v, "root filesystem: image %s (imported)", sp->image.tag);
    } else {
        static int said;
        if (!said++)
            fprintf(stderr, "matchlock-local: image %s is not imported (matchlock-local image import); "
                    "the sandbox uses the host's root filesystem\n", sp->img->s);
        vm_log(v, "image %s is not imported: the host's system directories stand in for it", sp->img->s);
        populate_etc(v->etc_dir);
    }
    if ((code = build_tree(v, msg))) return code;
    write_config(v, d, params);
    write_etc_files(v, d, sp);
    return 0;
}

/* vfs.mounts, extra_disks and the host's system directories, sorted for bwrap. */
static int vm_mount(vm *v, const jdoc *d, const vm_spec *sp, char **msg)
{
    int code;
    int i = 0;
    for (const jnode *k = jd_first(d, sp->mounts); k; k = jd_next(d, k), i++) {
        const jnode *m = jd_val(k);
        const char *type = jd_str(d, m, "type", "");
        int ro = jd_bool(d, m, "readonly", 0);
        char *g = clean_abs(k->s), *backing = NULL;
        int mt;
        if (!strcmp(type, "host_fs")) {
            mt = MT_HOST;
            backing = realpath(jd_str(d, m, "host_path", ""), NULL);
        } else if (!strcmp(type, "memory")) {
            mt = MT_MEMORY;
            struct stat st;
            if (!v->shm_dir && stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode)) {
                /* /dev/shm is shared: the VM's directory there must be private and ours */
                char *shm = NULL, *why = NULL;
                if (asprintf(&shm, "/dev/shm/matchlock-local-%s", v->id) < 0) shm = NULL;
                if (!shm || private_dir(shm, &why) != 0) {
                    code = fail(msg, MLK_RPC_VM_FAILED, "vfs.mounts[%s]: %s", k->s, why ? why : "out of memory");
                    free(shm); free(why); free(g);
                    return code;
                }
                v->shm_dir = shm;
            }
            if (asprintf(&backing, "%s/mem%d", v->shm_dir ? v->shm_dir : v->dir, i) < 0) backing = NULL;
            if (backing && mkdir(backing, 0755) != 0 && errno != EEXIST) { free(backing); backing = NULL; }
        } else {
            mt = MT_OVERLAY;
            if (asprintf(&backing, "%s/overlay%d", v->dir, i) < 0) backing = NULL;
            if (backing && copy_tree(jd_str(d, m, "host_path", ""), backing) != 0) {
                code = fail(msg, MLK_RPC_VM_FAILED, "vfs.mounts[%s]: copying %s: %s", k->s, jd_str(d, m, "host_path", ""), strerror(errno));
                free(backing); free(g);
                return code;
            }
        }
        if (!g || !backing) { free(g); free(backing); return fail(msg, MLK_RPC_VM_FAILED, "vfs.mounts[%s]: cannot prepare the mount", k->s); }
        add_mount(v, g, backing, mt, ro);
        vm_log(v, "mount %s: %s %s%s", g, type, backing, ro ? " (read-only)" : "");
        free(g);
        free(backing);
    }
    i = 0;
    for (const jnode *x = jd_first(d, sp->disks); x; x = jd_next(d, x), i++) {
        const char *hp = jd_str(d, x, "host_path", "");
        char *g = clean_abs(jd_str(d, x, "guest_mount", "/")), *backing = NULL;
        struct stat st;
        if (stat(hp, &st) == 0 && S_ISDIR(st.st_mode)) {
            backing = realpath(hp, NULL);
        } else {
            if (asprintf(&backing, "%s/disk%d", v->dir, i) < 0) backing = NULL;
            if (backing) mkdir_p(backing, 0755);
            vm_log(v, "extra disk %s is not a directory; %s is backed by an empty directory instead", hp, g);
        }
        if (backing && g) add_mount(v, g, backing, MT_DISK, jd_bool(d, x, "readonly", 0));
        free(g);
        free(backing);
    }
    for (int k = 0; !v->from_image && sys_dirs[k]; k++) {
        char host[64];
        snprintf(host, sizeof host, "/%s", sys_dirs[k]);
        struct stat st;
        if (lstat(host, &st) != 0 || !S_ISDIR(st.st_mode)) continue; /* symlinks live in root/ */
        add_mount(v, host, host, MT_SYSTEM, 1);
    }
    if (v->nmounts) qsort(v->mounts, v->nmounts, sizeof *v->mounts, cmp_mount);
    return 0;
}

/* bubblewrap, when it works here; the VM log says how commands run. */
static void vm_isolate(vm *v)
{
    if (!bwrap_path) bwrap_path = find_bwrap();
    if (bwrap_path) {
        v->use_bwrap = 1;
        char *why = NULL;
        if (bwrap_works(v, &why) != 0) {
            v->use_bwrap = 0;
            vm_log(v, "bwrap does not work here (%s); commands run as plain processes without isolation",
                   why && *why ? why : "unknown error");
        } else {
            vm_log(v, "commands run under bubblewrap (%s)", bwrap_path);
        }
        free(why);
    } else {
        vm_log(v, "bwrap not found; commands run as plain processes without isolation "
               "(the VM root only backs the file calls)");
    }
    if (!v->use_bwrap && v->no_network) vm_log(v, "no_network is not enforced without bwrap");
    if (!v->use_bwrap && v->from_image)
        vm_log(v, "without bwrap commands run on the host: the image's root filesystem only backs the file calls");
}

int vm_create(server *s, const jdoc *d, const jnode *params, vm **out, char **msg)
{
    vm_spec sp = {0};
    int code = spec_check_top(d, params, &sp, msg);
    if (code) return code;

    vm *v = calloc(1, sizeof *v);
    if (!v) return fail(msg, MLK_RPC_INTERNAL, "out of memory");
    v->log_fd = -1;
    v->inotify_fd = -1;
    sp.have_image = image_find(sp.img->s, &sp.image) == 0;
    v->from_image = sp.have_image;
    if ((code = spec_network(v, d, params, &sp, msg)) || (code = spec_vfs(v, d, params, &sp, msg)) ||
        (code = spec_disks(d, params, &sp, msg)) || (code = spec_image_config(v, d, params, &sp, msg)) ||
        (code = spec_env(v, d, params, &sp, msg)))
        goto bad;
    /* ---- validated: build the VM */
    if ((code = vm_lay_out(v, d, params, &sp, msg)) || (code = vm_mount(v, d, &sp, msg))) goto bad;
    vm_isolate(v);
    if (v->intercept && (code = proxy_start(s, v, msg))) goto bad;
    vm_log(v, "VM %s ready", v->id);
    strv_free(sp.dns);
    if (sp.have_image) image_info_free(&sp.image);
    *out = v;
    return 0;
bad:
    strv_free(sp.dns);
    if (sp.have_image) image_info_free(&sp.image);
    if (v->dir) rm_rf(v->dir);
    if (v->shm_dir) rm_rf(v->shm_dir);
    vm_free(v);
    return code ? code : MLK_RPC_INTERNAL;
}

void vm_free(vm *v)
{
    if (!v) return;
    proxy_free(v);
    if (v->log_fd >= 0) close(v->log_fd);
    free(v->dir); free(v->root); free(v->log_path); free(v->etc_dir); free(v->shm_dir);
    free(v->workspace); free(v->img_user); free(v->img_workdir); free(v->hostname);
    for (size_t i = 0; i < v->nmounts; i++) { free(v->mounts[i].guest); free(v->mounts[i].host); }
    free(v->mounts);
    strv_free(v->env);
    strv_free(v->entry_argv);
    for (size_t i = 0; i < v->nallowed; i++) free(v->allowed[i]);
    free(v->allowed);
    for (size_t i = 0; i < v->nrules; i++) { free(v->rules[i].name); free(v->rules[i].path); }
    free(v->rules);
    for (int i = 0; i < v->nwatch; i++) free(v->watch_paths[i]);
    free(v->watch_paths);
    free(v);
}
