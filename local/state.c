/* state.c - where matchlock-local keeps VMs and volumes, and small
 * filesystem helpers (mkdir -p, rm -rf, copy a tree). */
#include "local.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *state_root(void)
{
    const char *x = getenv("XDG_STATE_HOME");
    char *p = NULL;
    if (x && x[0] == '/') {
        if (asprintf(&p, "%s/matchlock-local", x) < 0) p = NULL;
    } else {
        const char *home = getenv("HOME");
        if (!home || !*home) home = "/tmp";
        if (asprintf(&p, "%s/.local/state/matchlock-local", home) < 0) p = NULL;
    }
    return p;
}

char *state_sub(const char *kind, const char *name)
{
    char *root = state_root(), *p = NULL;
    if (!root) return NULL;
    if (asprintf(&p, "%s/%s/%s", root, kind, name) < 0) p = NULL;
    free(root);
    return p;
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
