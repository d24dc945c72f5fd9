/* state.c - where matchlock-local keeps VMs and volumes, and small
 * filesystem helpers (mkdir -p, rm -rf, copy a tree).
 *
 * The state is private: the state root, vms/, volumes/, images/, each VM's,
 * volume's and image's directory and each VM's /dev/shm directory are
 * directories of ours with mode 0700 (private_dir), so another local user
 * reaches nothing below them.  The root is $XDG_STATE_HOME/matchlock-local,
 * else $HOME/.local/state/matchlock-local, else the same under the home
 * directory of the password database; never a shared directory such as
 * /tmp. */
#include "local.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void set_err(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(char **err, const char *fmt, ...)
{
    if (!err) return;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(err, fmt, ap) < 0) *err = NULL;
    va_end(ap);
}

char *state_root(char **err)
{
    const char *x = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
    char *p = NULL;
    if (x && x[0] == '/') {
        if (asprintf(&p, "%s/matchlock-local", x) < 0) p = NULL;
        return p;
    }
    if (!home || home[0] != '/') {
        struct passwd *pw = getpwuid(geteuid());
        home = pw && pw->pw_dir && pw->pw_dir[0] == '/' ? pw->pw_dir : NULL;
    }
    if (!home) {
        set_err(err, "no state directory: XDG_STATE_HOME and HOME are not set (or not absolute) and uid %u has "
                "no home directory in the password database; set XDG_STATE_HOME or HOME (matchlock-local never "
                "keeps its state in a shared directory such as /tmp)", (unsigned)geteuid());
        return NULL;
    }
    if (asprintf(&p, "%s/.local/state/matchlock-local", home) < 0) p = NULL;
    return p;
}

char *state_sub(const char *kind, const char *name)
{
    char *root = state_root(NULL), *p = NULL;
    if (!root) return NULL;
    if (asprintf(&p, "%s/%s/%s", root, kind, name) < 0) p = NULL;
    free(root);
    return p;
}

int private_dir(const char *path, char **err)
{
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        set_err(err, "create %s: %s", path, strerror(errno));
        return -1;
    }
    /* judge what is there now without following a symlink (a directory
     * someone else made, or a symlink to one, is refused, never used) */
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        int e = errno;
        struct stat l;
        if (fd >= 0) close(fd);
        if (lstat(path, &l) == 0 && S_ISLNK(l.st_mode))
            set_err(err, "refusing %s: it is a symbolic link, not a private directory of uid %u", path,
                    (unsigned)geteuid());
        else if (lstat(path, &l) == 0 && !S_ISDIR(l.st_mode))
            set_err(err, "refusing %s: it is not a directory", path);
        else
            set_err(err, "open %s: %s", path, strerror(e));
        return -1;
    }
    int rc = -1;
    if (st.st_uid != geteuid())
        set_err(err, "refusing %s: it belongs to uid %u, not to uid %u", path, (unsigned)st.st_uid,
                (unsigned)geteuid());
    else if (st.st_mode & 022)
        set_err(err, "refusing %s: other users may write to it (mode %04o)", path, (unsigned)(st.st_mode & 07777));
    else if ((st.st_mode & 07777) != 0700 && fchmod(fd, 0700) != 0)   /* an older matchlock-local made it 0755 */
        set_err(err, "chmod 0700 %s: %s", path, strerror(errno));
    else
        rc = 0;
    close(fd);
    return rc;
}

char *state_make(const char *kind, const char *name, char **err)
{
    char *root = state_root(err), *parent = root ? strdup(root) : NULL, *dir = NULL, *path = NULL;
    if (!parent) {
        if (root) set_err(err, "out of memory");
        free(root);
        return NULL;
    }
    *strrchr(parent, '/') = '\0';
    /* the parents (~/.local/state) are the user's: made 0700 when missing,
     * as the XDG base directory spec asks, and otherwise left alone */
    int ok = 1;
    if (*parent && mkdir_p(parent, 0700) != 0) {
        set_err(err, "create %s: %s", parent, strerror(errno));
        ok = 0;
    }
    ok = ok && private_dir(root, err) == 0;
    if (ok) {
        if (asprintf(&dir, "%s/%s", root, kind) < 0) dir = NULL;
        if (dir && name && asprintf(&path, "%s/%s", dir, name) < 0) path = NULL;
        if (!dir || (name && !path)) {
            set_err(err, "out of memory");
            ok = 0;
        }
    }
    ok = ok && private_dir(dir, err) == 0 && (!name || private_dir(path, err) == 0);
    if (ok && !name) { path = dir; dir = NULL; }
    free(root);
    free(parent);
    free(dir);
    if (!ok) { free(path); path = NULL; }
    return path;
}

int valid_name(const char *s)
{
    if (!s || !*s || s[0] == '.' || strlen(s) > 128) return 0;
    for (const char *c = s; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '_' || *c == '.' || *c == '-'))
            return 0;
    return 1;
}

int mkdir_p(const char *path, mode_t mode)
{
    char *p = strdup(path);
    if (!p) return -1;
    for (char *c = p + 1; ; c++) {
        if (*c == '/' || *c == '\0') {
            char save = *c;
            *c = '\0';
            if (mkdir(p, mode) != 0 && errno != EEXIST) { free(p); return -1; }
            *c = save;
            if (!save) break;
        }
    }
    free(p);
    return 0;
}

int rm_rf_at(int dfd, const char *name)
{
    if (unlinkat(dfd, name, 0) == 0 || errno == ENOENT) return 0;
    if (errno != EISDIR && errno != EPERM) return -1;
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return -1;
    DIR *d = fdopendir(fd);
    if (!d) { close(fd); return -1; }
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (rm_rf_at(dirfd(d), e->d_name) != 0) rc = -1;
    }
    closedir(d);
    if (unlinkat(dfd, name, AT_REMOVEDIR) != 0 && errno != ENOENT) rc = -1;
    return rc;
}

int rm_rf(const char *path)
{
    return rm_rf_at(AT_FDCWD, path);
}

int copy_tree(const char *src, const char *dst)
{
    struct stat st;
    if (lstat(src, &st) != 0) return -1;
    if (S_ISLNK(st.st_mode)) {
        char buf[4096];
        ssize_t n = readlink(src, buf, sizeof buf - 1);
        if (n < 0) return -1;
        buf[n] = '\0';
        if (symlink(buf, dst) != 0) return -1;
        if (geteuid() == 0 && lchown(dst, st.st_uid, st.st_gid) != 0) {}
        return 0;
    }
    if (S_ISDIR(st.st_mode)) {
        if (mkdir(dst, st.st_mode & 07777) != 0 && errno != EEXIST) return -1;
        DIR *d = opendir(src);
        if (!d) return -1;
        struct dirent *e;
        int rc = 0;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char *s2 = NULL, *d2 = NULL;
            if (asprintf(&s2, "%s/%s", src, e->d_name) < 0) s2 = NULL;
            if (asprintf(&d2, "%s/%s", dst, e->d_name) < 0) d2 = NULL;
            if (!s2 || !d2 || copy_tree(s2, d2) != 0) rc = -1;
            free(s2);
            free(d2);
        }
        closedir(d);
        if (geteuid() == 0 && lchown(dst, st.st_uid, st.st_gid) != 0) {}   /* owners kept, as cp -a */
        chmod(dst, st.st_mode & 07777);
        return rc;
    }
    if (!S_ISREG(st.st_mode)) return 0; /* devices, fifos, sockets: skipped */
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) return -1;
    int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, st.st_mode & 07777);
    if (out < 0) { close(in); return -1; }
    char buf[65536];
    ssize_t n;
    int rc = 0;
    while ((n = read(in, buf, sizeof buf)) > 0) {
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0) { if (errno == EINTR) continue; rc = -1; break; }
            off += w;
        }
        if (rc) break;
    }
    if (n < 0) rc = -1;
    if (geteuid() == 0 && fchown(out, st.st_uid, st.st_gid) == 0) fchmod(out, st.st_mode & 07777);
    close(in);
    close(out);
    return rc;
}

/* The start time of a process (field 22 of /proc/PID/stat), 0 when gone. */
static unsigned long long start_time(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');   /* the command name may hold spaces */
    unsigned long long t = 0;
    for (int field = 2; p && *p && field < 22; p++)
        if (*p == ' ') field++;
    if (p) sscanf(p, "%llu", &t);
    return t;
}

void vm_mark_running(const char *dir)
{
    char *path = NULL;
    if (asprintf(&path, "%s/pid", dir) < 0) return;
    FILE *f = fopen(path, "w");
    if (f) {
        fprintf(f, "%d %llu\n", (int)getpid(), start_time(getpid()));
        fclose(f);
    }
    free(path);
}

int vm_running(const char *dir)
{
    char *path = NULL;
    if (asprintf(&path, "%s/pid", dir) < 0) return 0;
    FILE *f = fopen(path, "r");
    free(path);
    int pid = 0;
    unsigned long long t = 0;
    int ok = f && fscanf(f, "%d %llu", &pid, &t) == 2;
    if (f) fclose(f);
    return ok && pid > 0 && t && start_time(pid) == t;
}
