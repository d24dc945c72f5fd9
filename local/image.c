/* image.c - imported images: `image import TAG < docker-save.tar`,
 * `image ls`, `image rm`, and the lookup behind create.
 *
 * An image lives in images/<tag, escaped>/: rootfs/ (the layers applied in
 * order, OCI whiteouts honoured) and image.json ({"tag","created","size",
 * "image_config":{user,working_dir,entrypoint,cmd,env}}, the last in the
 * shape of create's image_config).  The tarball is the one `docker save`
 * writes: manifest.json naming a config blob and the layer tarballs, which
 * may be gzip-compressed.
 *
 * Tar members are extracted by hand (ustar, GNU long names, pax path/
 * linkpath/size) so that every path is resolved with openat2
 * RESOLVE_IN_ROOT inside the target: a hostile layer (absolute or ".."
 * names, symlinks planted by an earlier layer) cannot write outside it.
 * Devices and fifos are skipped; owners are kept when running as root. */
#include "local.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

/* ---- names ---------------------------------------------------------------- */

char *image_normalize(const char *tag)
{
    const char *slash = strrchr(tag, '/');
    char *out = NULL;
    if (strchr(slash ? slash : tag, ':') || strchr(tag, '@')) return strdup(tag);
    if (asprintf(&out, "%s:latest", tag) < 0) out = NULL;
    return out;
}

/* images/<tag with every byte outside [A-Za-z0-9._-] as %XX> */
static char *image_dir(const char *tag)
{
    char *norm = image_normalize(tag);
    if (!norm) return NULL;
    char *esc = malloc(strlen(norm) * 3 + 2), *o = esc;
    if (!esc) { free(norm); return NULL; }
    if (norm[0] == '.') { o += sprintf(o, "%%2E"); }
    for (const char *c = norm + (norm[0] == '.'); *c; c++) {
        unsigned char ch = (unsigned char)*c;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-')
            *o++ = (char)ch;
        else
            o += sprintf(o, "%%%02X", ch);
    }
    *o = '\0';
    char *dir = state_sub("images", esc);
    free(esc);
    free(norm);
    return dir;
}

static int err_set(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int err_set(char **err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(err, fmt, ap) < 0) *err = NULL;
    va_end(ap);
    return -1;
}

/* ---- extraction inside a root ------------------------------------------------- */

/* Member name -> a relative path without "." parts; NULL when it holds "..". */
static char *clean_member(const char *name)
{
    char *out = malloc(strlen(name) + 2), *o = out;
    if (!out) return NULL;
    for (const char *c = name; *c;) {
        while (*c == '/') c++;
        if (!*c) break;
        const char *e = strchr(c, '/');
        size_t n = e ? (size_t)(e - c) : strlen(c);
        if (n == 2 && c[0] == '.' && c[1] == '.') { free(out); return NULL; }
        if (!(n == 1 && c[0] == '.')) {
            if (o != out) *o++ = '/';
            memcpy(o, c, n);
            o += n;
        }
        c += n;
    }
    *o = '\0';
    return out;
}

/* The directory holding rel (created as needed), opened O_PATH inside
 * rootfd; *base points at rel's last component.  -errno on failure. */
static int parent_dir(int rootfd, char *rel, const char **base)
{
    char *slash = strrchr(rel, '/');
    *base = slash ? slash + 1 : rel;
    if (!slash) return open_beneath(rootfd, ".", O_PATH | O_DIRECTORY, 0);
    *slash = '\0';
    int fd = open_beneath(rootfd, rel, O_PATH | O_DIRECTORY, 0);
    if (fd == -ENOENT || fd == -ENOTDIR) {
        /* create each missing component, each resolved in the root */
        for (char *c = rel;; c++) {
            if (*c != '/' && *c != '\0') continue;
            char save = *c;
            *c = '\0';
            const char *b;
            char *sub = strdup(rel);
            int p = sub ? parent_dir(rootfd, sub, &b) : -ENOMEM;
            if (p >= 0) {
                struct stat st;
                if (fstatat(p, b, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode))
                    unlinkat(p, b, 0);
                mkdirat(p, b, 0755);
                close(p);
            }
            free(sub);
            *c = save;
            if (!save) break;
        }
        fd = open_beneath(rootfd, rel, O_PATH | O_DIRECTORY, 0);
    }
    *slash = '/';
    return fd;
}

/* Remove dir/name whatever it is (a tree included). */
static void remove_at(int dirfd, const char *name)
{
    if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT) return;
    rm_rf_at(dirfd, name);
}

static int read_full(gzFile z, void *buf, size_t n)
{
    char *p = buf;
    while (n) {
        int r = gzread(z, p, n > (1u << 30) ? (1u << 30) : (unsigned)n);
        if (r <= 0) return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static int skip_bytes(gzFile z, uint64_t n)
{
    char buf[65536];
    while (n) {
        size_t k = n > sizeof buf ? sizeof buf : (size_t)n;
        if (read_full(z, buf, k) != 0) return -1;
        n -= k;
    }
    return 0;
}

/* A numeric header field: octal text, or base-256 when the top bit is set. */
static uint64_t tar_num(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    if (p[0] & 0x80) {
        for (size_t i = 1; i < n; i++) v = (v << 8) | p[i];
        return v;
    }
    for (size_t i = 0; i < n && p[i]; i++)
        if (p[i] >= '0' && p[i] <= '7') v = (v << 3) | (uint64_t)(p[i] - '0');
    return v;
}

/* pax records "LEN key=value\n": path, linkpath, size */
static void pax_parse(char *data, size_t n, char **path, char **link, uint64_t *size, int *have_size)
{
    size_t off = 0;
    while (off < n) {
        char *e;
        unsigned long len = strtoul(data + off, &e, 10);
        if (len == 0 || off + len > n || *e != ' ') return;
        char *kv = e + 1, *end = data + off + len - 1;   /* the '\n' */
        char *eq = memchr(kv, '=', (size_t)(end - kv));
        if (eq) {
            *eq = '\0';
            *end = '\0';
            if (!strcmp(kv, "path")) { free(*path); *path = strdup(eq + 1); }
            else if (!strcmp(kv, "linkpath")) { free(*link); *link = strdup(eq + 1); }
            else if (!strcmp(kv, "size")) { *size = strtoull(eq + 1, NULL, 10); *have_size = 1; }
        }
        off += len;
    }
}

/* Whether this layer itself wrote path (or something under it). */
static int layer_wrote(char **seen, size_t n, const char *path)
{
    size_t l = strlen(path);
    for (size_t i = 0; i < n; i++)
        if (!strncmp(seen[i], path, l) && (seen[i][l] == '\0' || seen[i][l] == '/')) return 1;
    return 0;
}

/* Extract the tar stream z into rootfd.  layer: apply OCI whiteouts
 * (.wh.NAME removes NAME, .wh..wh..opq empties the directory of what the
 * lower layers put there, wherever the marker sits in the archive). */
static int tar_extract(gzFile z, int rootfd, int layer, char **err)
{
    unsigned char h[512];
    char *long_name = NULL, *long_link = NULL, *pax_path = NULL, *pax_link = NULL;
    uint64_t pax_size = 0;
    int have_pax_size = 0, rc = 0, zero_blocks = 0;
    int as_root = geteuid() == 0;
    char **seen = NULL;          /* layer: the paths this layer wrote */
    size_t nseen = 0;
    for (;;) {
        if (read_full(z, h, sizeof h) != 0) {
            if (zero_blocks) break;     /* some writers stop after one zero block */
            rc = err_set(err, "truncated tar archive");
            break;
        }
        int zero = 1;
        for (size_t i = 0; i < sizeof h && zero; i++) zero = h[i] == 0;
        if (zero) { if (++zero_blocks == 2) break; continue; }
        zero_blocks = 0;
        unsigned sum = 0;
        for (size_t i = 0; i < sizeof h; i++) sum += (i >= 148 && i < 156) ? ' ' : h[i];
        if (sum != (unsigned)tar_num(h + 148, 8)) { rc = err_set(err, "not a tar archive (bad header checksum)"); break; }
        char type = (char)h[156];
        uint64_t size = have_pax_size ? pax_size : tar_num(h + 124, 12);
        uint64_t pad = (512 - size % 512) % 512;
        if (type == 'L' || type == 'K' || type == 'x') {
            if (size > (1u << 20)) { rc = err_set(err, "tar: oversized extended header"); break; }
            char *data = malloc((size_t)size + 1);
            if (!data || read_full(z, data, (size_t)size) != 0 || skip_bytes(z, pad) != 0) {
                free(data);
                rc = err_set(err, "truncated tar archive");
                break;
            }
            data[size] = '\0';
            if (type == 'L') { free(long_name); long_name = data; }
            else if (type == 'K') { free(long_link); long_link = data; }
            else { pax_parse(data, (size_t)size, &pax_path, &pax_link, &pax_size, &have_pax_size); free(data); }
            continue;
        }
        if (type == 'g') { if (skip_bytes(z, size + pad) != 0) { rc = err_set(err, "truncated tar archive"); break; } continue; }

        char name[256 + 2], link[101];
        if (!memcmp(h + 257, "ustar", 5) && h[345]) snprintf(name, sizeof name, "%.155s/%.100s", (char *)h + 345, (char *)h);
        else snprintf(name, sizeof name, "%.100s", (char *)h);
        snprintf(link, sizeof link, "%.100s", (char *)h + 157);
        const char *mname = pax_path ? pax_path : long_name ? long_name : name;
        const char *mlink = pax_link ? pax_link : long_link ? long_link : link;
        mode_t mode = (mode_t)tar_num(h + 100, 8) & 07777;
        uid_t uid = (uid_t)tar_num(h + 108, 8);
        gid_t gid = (gid_t)tar_num(h + 116, 8);
        char *rel = clean_member(mname);
        uint64_t left = size;

        if (rel && *rel) {
            const char *base;
            int pfd = parent_dir(rootfd, rel, &base);
            if (pfd < 0) {
                rc = err_set(err, "extract %s: %s", mname, strerror(-pfd));
            } else if (layer && !strcmp(base, ".wh..wh..opq")) {
                /* opaque: what lower layers put in this directory goes */
                int dfd = openat(pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
                struct dirent *e;
                size_t dl = (size_t)(base - rel);          /* "dir/" or "" */
                while (d && (e = readdir(d))) {
                    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
                    char *path = NULL;
                    if (asprintf(&path, "%.*s%s", (int)dl, rel, e->d_name) < 0) continue;
                    if (!layer_wrote(seen, nseen, path)) remove_at(dirfd(d), e->d_name);
                    free(path);
                }
                if (d) closedir(d); else if (dfd >= 0) close(dfd);
            } else if (layer && !strncmp(base, ".wh.", 4)) {
                remove_at(pfd, base + 4);
            } else if (type == '5') {
                struct stat st;
                if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(st.st_mode)) remove_at(pfd, base);
                if (mkdirat(pfd, base, 0700) != 0 && errno != EEXIST) rc = err_set(err, "extract %s: %s", mname, strerror(errno));
                if (as_root) fchownat(pfd, base, uid, gid, AT_SYMLINK_NOFOLLOW);
                fchmodat(pfd, base, mode, 0);
            } else if (type == '0' || type == '\0' || type == '7') {
                struct stat st;
                if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0) remove_at(pfd, base);
                int fd = openat(pfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
                if (fd < 0) rc = err_set(err, "extract %s: %s", mname, strerror(errno));
                char buf[65536];
                while (left && !rc) {
                    size_t k = left > sizeof buf ? sizeof buf : (size_t)left;
                    if (read_full(z, buf, k) != 0) { rc = err_set(err, "truncated tar archive"); break; }
                    for (size_t off = 0; off < k;) {
                        ssize_t w = write(fd, buf + off, k - off);
                        if (w < 0) { if (errno == EINTR) continue; rc = err_set(err, "extract %s: %s", mname, strerror(errno)); break; }
                        off += (size_t)w;
                    }
                    left -= k;
                }
                if (fd >= 0) {
                    if (as_root && fchown(fd, uid, gid) != 0) {}
                    fchmod(fd, mode);
                    close(fd);
                }
            } else if (type == '2') {
                remove_at(pfd, base);
                if (symlinkat(mlink, pfd, base) != 0) rc = err_set(err, "extract %s: %s", mname, strerror(errno));
                else if (as_root) fchownat(pfd, base, uid, gid, AT_SYMLINK_NOFOLLOW);
            } else if (type == '1') {
                char *target = clean_member(mlink);
                const char *tbase;
                int tfd = target && *target ? parent_dir(rootfd, target, &tbase) : -EINVAL;
                remove_at(pfd, base);
                if (tfd < 0 || linkat(tfd, tbase, pfd, base, 0) != 0)
                    rc = err_set(err, "extract %s: hard link to %s: %s", mname, mlink, strerror(tfd < 0 ? -tfd : errno));
                if (tfd >= 0) close(tfd);
                free(target);
            }
            /* devices, fifos and anything else: skipped */
            if (pfd >= 0) close(pfd);
            if (layer && strncmp(base, ".wh.", 4)) {
                char **ns = realloc(seen, (nseen + 1) * sizeof *ns);
                if (ns) { seen = ns; seen[nseen++] = strdup(rel); }
            }
        } else if (!rel) {
            rc = err_set(err, "tar member %s leaves the archive (\"..\")", mname);
        }
        free(rel);
        free(long_name); free(long_link); free(pax_path); free(pax_link);
        long_name = long_link = pax_path = pax_link = NULL;
        have_pax_size = 0;
        if (rc || skip_bytes(z, left + pad) != 0) {
            if (!rc) rc = err_set(err, "truncated tar archive");
            break;
        }
    }
    free(long_name); free(long_link); free(pax_path); free(pax_link);
    for (size_t i = 0; i < nseen; i++) free(seen[i]);
    free(seen);
    return rc;
}

/* ---- import ----------------------------------------------------------------- */

/* A whole (small) file inside rootfd, NUL-terminated; NULL when unreadable. */
static char *slurp_in(int rootfd, const char *rel, size_t *len)
{
    int fd = open_beneath(rootfd, rel, O_RDONLY, 0);
    if (fd < 0) return NULL;
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    ssize_t r;
    while (buf && (r = read(fd, buf + n, cap - n - 1)) > 0) {
        n += (size_t)r;
        if (cap - n < 2) {
            if (cap > (16u << 20)) { free(buf); buf = NULL; break; }
            char *nb = realloc(buf, cap *= 2);
            if (!nb) { free(buf); buf = NULL; break; }
            buf = nb;
        }
    }
    close(fd);
    if (buf) buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

static void json_strings(jw *w, const jdoc *d, const jnode *arr)
{
    jw_arr(w);
    for (const jnode *n = arr && arr->type == JN_ARR ? jd_first(d, arr) : NULL; n; n = jd_next(d, n))
        if (n->type == JN_STR) jw_str(w, n->s);
    jw_arr_end(w);
}

/* The image's OCI config -> our image_config object. */
static void write_image_config(jw *w, const jdoc *d, const jnode *cfg)
{
    jw_obj(w);
    jw_key(w, "user"); jw_str(w, jd_str(d, cfg, "User", ""));
    jw_key(w, "working_dir"); jw_str(w, jd_str(d, cfg, "WorkingDir", ""));
    jw_key(w, "entrypoint"); json_strings(w, d, jd_get(d, cfg, "Entrypoint"));
    jw_key(w, "cmd"); json_strings(w, d, jd_get(d, cfg, "Cmd"));
    jw_key(w, "env");
    jw_obj(w);
    const jnode *env = jd_get(d, cfg, "Env");
    for (const jnode *n = env && env->type == JN_ARR ? jd_first(d, env) : NULL; n; n = jd_next(d, n)) {
        const char *eq = n->type == JN_STR ? strchr(n->s, '=') : NULL;
        if (!eq || eq == n->s) continue;
        char *k = strndup(n->s, (size_t)(eq - n->s));
        if (k && valid_name(k)) {   /* names needing JSON escapes are left out */
            jw_key(w, k);
            jw_str(w, eq + 1);
        }
        free(k);
    }
    jw_obj_end(w);
    jw_obj_end(w);
}

static long long tree_bytes(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0) return 0;
    if (!S_ISDIR(st.st_mode)) return S_ISREG(st.st_mode) ? (long long)st.st_size : 0;
    long long total = 0;
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char *sub = NULL;
        if (asprintf(&sub, "%s/%s", path, e->d_name) < 0) continue;
        total += tree_bytes(sub);
        free(sub);
    }
    if (d) closedir(d);
    return total;
}

static int do_import(const char *tag, int in_fd, int *nlayers, long long *size, char **err)
{
    char *dir = image_dir(tag), *norm = image_normalize(tag);
    char *work = NULL, *unpack = NULL, *rootfs = NULL, *final = NULL;
    int rc = -1, ufd = -1, rfd = -1;
    jdoc d;
    jd_init(&d);
    char *manifest = NULL;
    if (!dir || !norm || asprintf(&work, "%s.import-%d", dir, (int)getpid()) < 0 ||
        asprintf(&unpack, "%s/tarball", work) < 0 || asprintf(&rootfs, "%s/rootfs", work) < 0) {
        err_set(err, "out of memory");
        goto out;
    }
    rm_rf(work);
    char *idir = state_make("images", NULL, err);   /* images/ and the import's directory are private */
    int made = idir && private_dir(work, err) == 0;
    free(idir);
    if (!made) goto out;
    if (mkdir(unpack, 0700) != 0 || mkdir(rootfs, 0755) != 0) { err_set(err, "create %s: %s", work, strerror(errno)); goto out; }
    ufd = open(unpack, O_PATH | O_DIRECTORY | O_CLOEXEC);
    rfd = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    gzFile z = gzdopen(dup(in_fd), "rb");
    if (!z || ufd < 0 || rfd < 0) { err_set(err, "open the tarball: %s", strerror(errno)); if (z) gzclose(z); goto out; }
    int x = tar_extract(z, ufd, 0, err);
    gzclose(z);
    if (x != 0) goto out;
    size_t mlen;
    manifest = slurp_in(ufd, "manifest.json", &mlen);
    if (!manifest || jd_parse(&d, manifest, mlen) != 0 || jd_root(&d)->type != JN_ARR || !jd_root(&d)->count) {
        err_set(err, "not a docker-save tarball: manifest.json is missing or invalid");
        goto out;
    }
    const jnode *m = jd_first(&d, jd_root(&d));
    const char *cfg_path = jd_str(&d, m, "Config", NULL);
    const jnode *layers = jd_get(&d, m, "Layers");
    if (!cfg_path || !layers || layers->type != JN_ARR) { err_set(err, "manifest.json: Config and Layers are required"); goto out; }
    int i = 0;
    for (const jnode *l = jd_first(&d, layers); l; l = jd_next(&d, l), i++) {
        if (l->type != JN_STR) { err_set(err, "manifest.json: Layers[%d] is not a string", i); goto out; }
        int lfd = open_beneath(ufd, l->s, O_RDONLY, 0);
        if (lfd < 0) { err_set(err, "layer %s: %s", l->s, strerror(-lfd)); goto out; }
        gzFile lz = gzdopen(lfd, "rb");
        if (!lz) { close(lfd); err_set(err, "layer %s: cannot read", l->s); goto out; }
        char *lerr = NULL;
        x = tar_extract(lz, rfd, 1, &lerr);
        gzclose(lz);
        if (x != 0) { err_set(err, "layer %s: %s", l->s, lerr ? lerr : "extract failed"); free(lerr); goto out; }
    }
    /* the image config */
    size_t clen;
    char *cfg_text = slurp_in(ufd, cfg_path, &clen);
    jdoc cd;
    jd_init(&cd);
    if (!cfg_text || jd_parse(&cd, cfg_text, clen) != 0 || jd_root(&cd)->type != JN_OBJ) {
        jd_free(&cd);
        free(cfg_text);
        err_set(err, "image config %s is missing or invalid", cfg_path);
        goto out;
    }
    const jnode *cfg = jd_get(&cd, jd_root(&cd), "config");
    jw w;
    jw_init(&w);
    jw_obj(&w);
    jw_key(&w, "tag"); jw_str(&w, norm);
    jw_key(&w, "created"); jw_int(&w, (int64_t)time(NULL));
    *nlayers = i;
    *size = tree_bytes(rootfs);
    jw_key(&w, "size"); jw_int(&w, *size);
    jw_key(&w, "image_config");
    write_image_config(&w, &cd, cfg && cfg->type == JN_OBJ ? cfg : NULL);
    jw_obj_end(&w);
    jw_nl(&w);
    jd_free(&cd);
    free(cfg_text);
    char *meta = NULL;
    FILE *f = asprintf(&meta, "%s/image.json", work) >= 0 ? fopen(meta, "w") : NULL;
    free(meta);
    if (!f || fwrite(w.buf, 1, w.len, f) != w.len) { if (f) fclose(f); jw_free(&w); err_set(err, "write image.json: %s", strerror(errno)); goto out; }
    fclose(f);
    jw_free(&w);
    rm_rf(unpack);
    /* replace an earlier import of the same tag */
    if (asprintf(&final, "%s.old-%d", dir, (int)getpid()) >= 0) {
        if (rename(dir, final) == 0) rm_rf(final);
    }
    if (rename(work, dir) != 0) { err_set(err, "install %s: %s", dir, strerror(errno)); goto out; }
    rc = 0;
out:
    if (ufd >= 0) close(ufd);
    if (rfd >= 0) close(rfd);
    if (rc != 0 && work) rm_rf(work);
    jd_free(&d);
    free(manifest); free(dir); free(norm); free(work); free(unpack); free(rootfs); free(final);
    return rc;
}

/* ---- the CLI -------------------------------------------------------------------- */

static char *human_size(long long bytes, char *buf, size_t cap)
{
    snprintf(buf, cap, "%.1f MB", (double)bytes / (1024.0 * 1024.0));
    return buf;
}

int image_main(int argc, char **argv)
{
    const char *sub = argc > 0 ? argv[0] : "";
    if (!strcmp(sub, "import")) {
        if (argc != 2) { fprintf(stderr, "accepts 1 arg(s), received %d\n", argc - 1); return 1; }
        if (isatty(0)) { fprintf(stderr, "image import reads a docker-save tarball from stdin\n"); return 1; }
        char *err = NULL, sz[48];
        int nlayers = 0;
        long long size = 0;
        fprintf(stderr, "Importing %s from stdin...\n", argv[1]);
        if (do_import(argv[1], 0, &nlayers, &size, &err) != 0) {
            fprintf(stderr, "import image: %s\n", err ? err : "failed");
            free(err);
            return 1;
        }
        printf("Imported: %s\nLayers: %d\nSize: %s\n", argv[1], nlayers, human_size(size, sz, sizeof sz));
        return 0;
    }
    if (!strcmp(sub, "ls") || !strcmp(sub, "list")) {
        char *root = state_root(NULL), *idir = NULL;
        if (!root || asprintf(&idir, "%s/images", root) < 0) { free(root); return 1; }
        free(root);
        DIR *d = opendir(idir);
        struct dirent *e;
        /* Go tabwriter columns: each as wide as its widest cell, two spaces apart */
        char **rows[4] = {0};
        size_t n = 0;
        const char *head[4] = {"TAG", "SOURCE", "SIZE", "CREATED"};
        while (d && (e = readdir(d))) {
            if (e->d_name[0] == '.' || strstr(e->d_name, ".import-") || strstr(e->d_name, ".old-")) continue;
            image_info info;
            char *tagdir = NULL;
            if (asprintf(&tagdir, "%s/%s", idir, e->d_name) < 0) continue;
            int ok = image_read(tagdir, &info) == 0;
            free(tagdir);
            if (!ok) continue;
            char sz[48], when[32];
            struct tm tm;
            time_t t = (time_t)info.created;
            localtime_r(&t, &tm);
            strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
            const char *cells[4] = {info.tag, "import", human_size(info.size, sz, sizeof sz), when};
            for (int c = 0; c < 4; c++) {
                char **nr = realloc(rows[c], (n + 1) * sizeof *nr);
                if (nr) { rows[c] = nr; nr[n] = strdup(cells[c]); }
            }
            n++;
            image_info_free(&info);
        }
        if (d) closedir(d);
        free(idir);
        int width[4];
        for (int c = 0; c < 4; c++) {
            width[c] = (int)strlen(head[c]);
            for (size_t i = 0; i < n; i++) if ((int)strlen(rows[c][i]) > width[c]) width[c] = (int)strlen(rows[c][i]);
        }
        printf("%-*s  %-*s  %-*s  %s\n", width[0], head[0], width[1], head[1], width[2], head[2], head[3]);
        for (size_t i = 0; i < n; i++)
            printf("%-*s  %-*s  %-*s  %s\n", width[0], rows[0][i], width[1], rows[1][i], width[2], rows[2][i], rows[3][i]);
        for (int c = 0; c < 4; c++) {
            for (size_t i = 0; i < n; i++) free(rows[c][i]);
            free(rows[c]);
        }
        return 0;
    }
    if (!strcmp(sub, "rm") || !strcmp(sub, "remove")) {
        if (argc != 2) { fprintf(stderr, "accepts 1 arg(s), received %d\n", argc - 1); return 1; }
        char *dir = image_dir(argv[1]);
        struct stat st;
        int rc = 0;
        if (!dir || stat(dir, &st) != 0) {
            fprintf(stderr, "image not found: \"%s\"\n", argv[1]);
            rc = 1;
        } else if (rm_rf(dir) != 0) {
            fprintf(stderr, "remove image %s: %s\n", argv[1], strerror(errno));
            rc = 1;
        } else {
            printf("Removed %s\n", argv[1]);
        }
        free(dir);
        return rc;
    }
    fprintf(stderr, "usage: matchlock-local image import <tag> < image.tar | image ls | image rm <tag>\n");
    return 2;
}

/* ---- lookup for create --------------------------------------------------------- */

int image_read(const char *dir, image_info *info)
{
    memset(info, 0, sizeof *info);
    char *path = NULL, *text = NULL;
    if (asprintf(&path, "%s/image.json", dir) < 0) return -1;
    int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    size_t len = 0;
    text = dfd >= 0 ? slurp_in(dfd, "image.json", &len) : NULL;
    if (dfd >= 0) close(dfd);
    free(path);
    if (!text) return -1;
    jd_init(&info->doc);
    info->text = text;
    if (jd_parse(&info->doc, text, len) != 0 || jd_root(&info->doc)->type != JN_OBJ) {
        image_info_free(info);
        return -1;
    }
    const jnode *r = jd_root(&info->doc);
    info->tag = jd_str(&info->doc, r, "tag", "");
    info->created = jd_int(&info->doc, r, "created", 0);
    info->size = jd_int(&info->doc, r, "size", 0);
    info->config = jd_get(&info->doc, r, "image_config");
    if (asprintf(&info->rootfs, "%s/rootfs", dir) < 0) info->rootfs = NULL;
    return info->rootfs ? 0 : -1;
}

int image_find(const char *tag, image_info *info)
{
    char *dir = image_dir(tag);
    int rc = dir ? image_read(dir, info) : -1;
    free(dir);
    return rc;
}

void image_info_free(image_info *info)
{
    jd_free(&info->doc);
    free(info->text);
    free(info->rootfs);
    memset(info, 0, sizeof *info);
}
