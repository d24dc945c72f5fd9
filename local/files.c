/* files.c - write_file, read_file, list_files.  A guest path is mapped to
 * the host directory that backs it (the longest mount first, else the VM's
 * root/ tree) and opened with openat2(RESOLVE_IN_ROOT): ".." and symlinks,
 * absolute ones included, resolve as they would inside the sandbox and can
 * never leave that directory.  Paths holding ".." components are refused
 * outright.  Symlinks are first followed by guest_resolve, which crosses
 * mounts the way the sandbox's own lookups do.  Kernels without openat2 get a component walk with O_NOFOLLOW
 * (symlinks are then refused). */
#include "local.h"
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

char *guest_clean(const char *base, const char *in)
{
    if (!in || !*in) return NULL;
    for (const char *c = in; *c;) {          /* matchlock-local refuses every ".." component */
        size_t l = strcspn(c, "/");
        if (l == 2 && c[0] == '.' && c[1] == '.') return NULL;
        c += l;
        while (*c == '/') c++;
    }
    char *out = NULL;
    return guest_path_canon(base, in, &out) == 0 ? out : NULL;   /* the core's canonical form */
}

int guest_normalize(vm *v, const char *in, char **out)
{
    *out = guest_clean(v->workspace, in);
    return *out ? 0 : -1;
}

/* The mount (or NULL for the root tree) backing a normalised guest path;
 * *rel receives the path inside it ("." for its top). */
static const mount *backing(vm *v, const char *g, const char **rel)
{
    const mount *best = NULL;
    size_t bl = 0;
    for (size_t i = 0; i < v->nmounts; i++) {
        size_t l = strlen(v->mounts[i].guest);
        if (!strncmp(g, v->mounts[i].guest, l) && (g[l] == '\0' || g[l] == '/') && l >= bl) {
            best = &v->mounts[i];
            bl = l;
        }
    }
    const char *r = g + bl;
    while (*r == '/') r++;
    *rel = *r ? r : ".";
    return best;
}

int open_beneath(int rootfd, const char *rel, int flags, mode_t mode)
{
    struct open_how how = {
        .flags = (uint64_t)(flags | O_CLOEXEC | ((flags & O_PATH) ? 0 : O_NOCTTY)),
        .mode = (flags & O_CREAT) ? mode : 0,
        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    long fd = syscall(SYS_openat2, rootfd, rel, &how, sizeof how);
    if (fd >= 0) return (int)fd;
    if (errno != ENOSYS) return -errno;
    /* fallback: walk with O_NOFOLLOW, refusing symlinks */
    char *copy = strdup(rel), *save = NULL;
    int cur = dup(rootfd);
    char *comp = strtok_r(copy, "/", &save);
    while (comp) {
        char *next = strtok_r(NULL, "/", &save);
        int nfd = next ? openat(cur, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                       : openat(cur, comp, flags | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, mode);
        int e = errno;
        close(cur);
        if (nfd < 0) { free(copy); return -e; }
        cur = nfd;
        comp = next;
    }
    free(copy);
    return cur;
}

/* The guest path g with its symlinks followed as the sandbox sees them:
 * each component is looked up in the mount (or the root tree) that backs
 * it, so a link may cross from one into another (/etc/os-release ->
 * ../usr/lib/os-release).  Components that do not exist are kept as they
 * are.  follow_last: resolve the last component too.  NULL with errno. */
static char *guest_resolve(vm *v, const char *g, int follow_last)
{
    char *todo = strdup(g), *done = calloc(1, strlen(g) + 2);
    size_t cap = strlen(g) + 2;
    int links = 0;
    if (!todo || !done) { free(todo); free(done); errno = ENOMEM; return NULL; }
    char *p = todo;
    for (;;) {
        while (*p == '/') p++;
        if (!*p) break;
        char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        const char *after = p + n;
        while (*after == '/') after++;
        int last = !*after;
        if (n == 1 && p[0] == '.') { p += n; continue; }
        if (n == 2 && p[0] == '.' && p[1] == '.') {       /* from a link target */
            char *slash = strrchr(done, '/');
            if (slash) *slash = '\0';
            p += n;
            continue;
        }
        size_t dl = strlen(done);
        if (dl + n + 2 > cap) {
            cap = (dl + n + 2) * 2;
            char *nd = realloc(done, cap);
            if (!nd) { free(todo); free(done); errno = ENOMEM; return NULL; }
            done = nd;
        }
        done[dl] = '/';
        memcpy(done + dl + 1, p, n);
        done[dl + 1 + n] = '\0';
        const char *rel;
        const mount *m = backing(v, done, &rel);
        int rootfd = open(m ? m->host : v->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
        int fd = rootfd >= 0 ? open_beneath(rootfd, rel, O_PATH | O_NOFOLLOW, 0) : -errno;
        if (rootfd >= 0) close(rootfd);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0) {
            /* missing: the rest stays as it is */
            if (fd >= 0) close(fd);
            if (*after) {
                char *full = NULL;
                if (asprintf(&full, "%s/%s", done, after) < 0) full = NULL;
                free(done);
                done = full;
            }
            break;
        }
        if (S_ISLNK(st.st_mode) && (!last || follow_last)) {
            char target[4096];
            ssize_t tl = readlinkat(fd, "", target, sizeof target - 1);
            close(fd);
            if (tl <= 0 || ++links > 40) { free(todo); free(done); errno = tl <= 0 ? EINVAL : ELOOP; return NULL; }
            target[tl] = '\0';
            done[dl] = '\0';                       /* the link's directory */
            if (target[0] == '/') done[0] = '\0';
            char *next = NULL;
            if (asprintf(&next, "%s/%s", target, after) < 0) { free(todo); free(done); errno = ENOMEM; return NULL; }
            free(todo);
            todo = p = next;
            continue;
        }
        close(fd);
        p = (char *)after;
    }
    free(todo);
    if (done && !*done) { free(done); done = strdup("/"); }
    return done;
}

int vm_open(vm *v, const char *guest, int flags, mode_t mode)
{
    char *g = guest_resolve(v, guest, !(flags & O_NOFOLLOW));
    if (!g) return -errno;
    const char *rel;
    const mount *m = backing(v, g, &rel);
    if (m && m->ro && (flags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC))) { free(g); return -EROFS; }
    int rootfd = open(m ? m->host : v->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0) { int e = errno; free(g); return -e; }
    if ((flags & O_CREAT) && strcmp(rel, ".")) {
        /* create missing parent directories, each resolved in the root */
        char *p = strdup(rel);
        for (char *c = strchr(p, '/'); c; c = strchr(c + 1, '/')) {
            *c = '\0';
            int fd = open_beneath(rootfd, p, O_PATH | O_DIRECTORY, 0);
            if (fd == -ENOENT) {
                char *slash = strrchr(p, '/');
                int parent = slash ? (*slash = '\0', open_beneath(rootfd, p, O_PATH | O_DIRECTORY, 0))
                                   : open_beneath(rootfd, ".", O_PATH | O_DIRECTORY, 0);
                if (slash) *slash = '/';
                if (parent >= 0) {
                    mkdirat(parent, slash ? slash + 1 : p, 0755);
                    close(parent);
                }
            } else if (fd >= 0) {
                close(fd);
            }
            *c = '/';
        }
        free(p);
    }
    int fd = open_beneath(rootfd, rel, flags, mode);
    close(rootfd);
    free(g);
    return fd;
}

/* Shared preamble: the path param, normalised, checked against rules. */
static char *file_path(server *s, req *r, const jdoc *d, const jnode *params, const char *op)
{
    const jnode *p = jd_get(d, params, "path");
    if (!p || p->type != JN_STR || p->len == 0) {
        srv_error(s, &r->id, MLK_RPC_INVALID_PARAMS, "path: required string");
        return NULL;
    }
    char *g = NULL;
    if (guest_normalize(s->vm, p->s, &g) != 0) {
        srv_error(s, &r->id, MLK_RPC_FILE_FAILED, "%s %s: path escapes the sandbox (\"..\" is not allowed)", op, p->s);
        return NULL;
    }
    char *why = NULL;
    if (vfs_check(s->vm, op, g, &why) != 0) {
        srv_error(s, &r->id, MLK_RPC_FILE_FAILED, "%s %s: %s", op, g, why ? why : "blocked by VFS rule");
        free(why);
        free(g);
        return NULL;
    }
    return g;
}

void rpc_write_file(server *s, req *r, const jdoc *d, const jnode *params)
{
    const jnode *c = jd_get(d, params, "content");
    if (c && c->type != JN_STR && c->type != JN_NULL) {
        srv_error(s, &r->id, MLK_RPC_INVALID_PARAMS, "content: expected a base64 string");
        return;
    }
    uint64_t mode = 0;
    const jnode *mn = jd_get(d, params, "mode");
    if (mn && mn->type != JN_NULL && (jn_uint(mn, &mode) != 0 || mode > 07777)) {
        srv_error(s, &r->id, MLK_RPC_INVALID_PARAMS, "mode: expected a permission mode (0..07777)");
        return;
    }
    if (mode == 0) mode = 0644;
    long long n = 0;
    if (c && c->type == JN_STR) {
        n = b64_decode(c->s, c->len, (unsigned char *)c->s);
        if (n < 0) { srv_error(s, &r->id, MLK_RPC_INVALID_PARAMS, "content: invalid base64"); return; }
    }
    char *g = file_path(s, r, d, params, "write");
    if (!g) return;
    int fd = vm_open(s->vm, g, O_WRONLY | O_CREAT | O_TRUNC, (mode_t)mode);
    if (fd < 0) {
        srv_error(s, &r->id, MLK_RPC_FILE_FAILED, "write %s: %s", g, strerror(-fd));
        free(g);
        return;
    }
    for (long long off = 0; off < n;) {
        ssize_t w = write(fd, c->s + off, (size_t)(n - off));
        if (w < 0) {
            if (errno == EINTR) continue;
            srv_error(s, &r->id, MLK_RPC_FILE_FAILED, "write %s: %s", g, strerror(errno));
            close(fd);
            free(g);
            return;
        }
        off += w;
    }
    fchmod(fd, (mode_t)mode);
    close(fd);
    free(g);
    srv_empty_result(s, r->id);
}

void rpc_read_file(server *s, req *r, const jdoc *d, const jnode *params)
{
    char *g = file_path(s, r, d, params, "read");
    if (!g) return;
    int fd = vm_open(s->vm, g, O_RDONLY, 0);
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) { close(fd); fd = -EISDIR; }
    if (fd < 0) {
        srv_error(s, &r->id, MLK_RPC_FILE_FAILED, "read %s: %s", g, strerror(-fd));
        free(g);
        return;
    }
    struct evbuffer *b = evbuffer_new();
    int n;
    while ((n = evbuffer_read(b, fd, 1 << 20)) > 0) {}
    int e = errno;
    close(fd);
    if (n < 0) {
        srv_error(s, &r->id, MLK_RPC_FILE_FAILED, "read %s: %s", g, strerror(e));
    } else {
        jw w;
        jw_init(&w);
        srv_result_start(&w, r->id);
        jw_obj(&w);
        jw_key(&w, "content");
        jw_b64(&w, evbuffer_pullup(b, -1), evbuffer_get_length(b));
        jw_obj_end(&w);
        srv_result_end(s, &w);
        jw_free(&w);
    }
    evbuffer_free(b);
    free(g);
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void rpc_list_files(server *s, req *r, const jdoc *d, const jnode *params)
{
    char *g = file_path(s, r, d, params, "readdir");
    if (!g) return;
    int fd = vm_open(s->vm, g, O_RDONLY | O_DIRECTORY, 0);
    DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
    if (!dir) {
        srv_error(s, &r->id, MLK_RPC_FILE_FAILED, "list %s: %s", g, strerror(fd < 0 ? -fd : errno));
        if (fd >= 0) close(fd);
        free(g);
        return;
    }
    char **names = NULL;
    size_t nn = 0;
    struct dirent *e;
    while ((e = readdir(dir))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char **x = realloc(names, (nn + 1) * sizeof *x);
        if (!x) break;
        names = x;
        names[nn++] = strdup(e->d_name);
    }
    if (nn) qsort(names, nn, sizeof *names, cmp_name);
    jw w;
    jw_init(&w);
    srv_result_start(&w, r->id);
    jw_obj(&w);
    jw_key(&w, "files");
    jw_arr(&w);
    for (size_t i = 0; i < nn; i++) {
        struct stat st;
        if (names[i] && fstatat(dirfd(dir), names[i], &st, AT_SYMLINK_NOFOLLOW) == 0) {
            struct tm tm;
            char ts[40];
            gmtime_r(&st.st_mtime, &tm);
            strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
            jw_obj(&w);
            jw_key(&w, "name"); jw_str(&w, names[i]);
            jw_key(&w, "size"); jw_int(&w, st.st_size);
            jw_key(&w, "mode"); jw_uint(&w, st.st_mode);
            jw_key(&w, "mod_time"); jw_str(&w, ts);
            jw_key(&w, "is_dir"); jw_bool(&w, S_ISDIR(st.st_mode));
            jw_obj_end(&w);
        }
        free(names[i]);
    }
    free(names);
    jw_arr_end(&w);
    jw_obj_end(&w);
    srv_result_end(s, &w);
    jw_free(&w);
    closedir(dir);
    free(g);
}
