/* main.c - the matchlock-local command line: rpc, version, rm, volume. */
#include "local.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int rpc_main(void); /* rpc.c */

static int usage(void)
{
    fprintf(stderr,
            "usage: matchlock-local rpc\n"
            "       matchlock-local version\n"
            "       matchlock-local rm <vm-id>\n"
            "       matchlock-local volume create <name> [--size MB] [--json]\n"
            "       matchlock-local volume ls [--json]\n"
            "       matchlock-local volume rm <name>\n");
    return 2;
}

static int cmd_rm(int argc, char **argv)
{
    if (argc != 1) return usage();
    const char *id = argv[0];
    if (!valid_name(id)) {
        fprintf(stderr, "matchlock-local: invalid VM id %s\n", id);
        return 1;
    }
    char *dir = state_sub("vms", id);
    struct stat st;
    if (!dir || stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "matchlock-local: VM %s not found\n", id);
        free(dir);
        return 1;
    }
    /* Memory mounts live on /dev/shm under the VM id. */
    char shm[256];
    snprintf(shm, sizeof shm, "/dev/shm/matchlock-local-%s", id);
    rm_rf(shm);
    int rc = rm_rf(dir);
    free(dir);
    if (rc != 0) {
        fprintf(stderr, "matchlock-local: removing %s: %s\n", id, strerror(errno));
        return 1;
    }
    printf("%s\n", id);
    return 0;
}

/* Volumes: volumes/<name>/meta (the size) and volumes/<name>/data (the
 * directory handed out as "path"). */
static int volume_info(const char *name, long long *size, char **path)
{
    char *dir = state_sub("volumes", name);
    if (!dir) return -1;
    char *meta = NULL;
    if (asprintf(&meta, "%s/meta", dir) < 0) meta = NULL;
    FILE *f = meta ? fopen(meta, "r") : NULL;
    free(meta);
    if (!f) { free(dir); return -1; }
    if (fscanf(f, "%lld", size) != 1) *size = 0;
    fclose(f);
    if (asprintf(path, "%s/data", dir) < 0) *path = NULL;
    free(dir);
    return *path ? 0 : -1;
}

static void volume_json(jw *w, const char *name, long long size, const char *path)
{
    jw_obj(w);
    jw_key(w, "name"); jw_str(w, name);
    jw_key(w, "size"); jw_int(w, size);
    jw_key(w, "path"); jw_str(w, path);
    jw_obj_end(w);
}

static int volume_create(int argc, char **argv)
{
    const char *name = NULL;
    long long size = 1024;
    int json = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--size") && i + 1 < argc) {
            char *e;
            errno = 0;
            size = strtoll(argv[++i], &e, 10);
            if (*e || errno || size <= 0) {
                fprintf(stderr, "matchlock-local: invalid --size %s (MB, > 0)\n", argv[i]);
                return 1;
            }
        } else if (!strncmp(argv[i], "--size=", 7)) {
            char *e;
            size = strtoll(argv[i] + 7, &e, 10);
            if (*e || size <= 0) { fprintf(stderr, "matchlock-local: invalid --size\n"); return 1; }
        } else if (argv[i][0] == '-') return usage();
        else if (!name) name = argv[i];
        else return usage();
    }
    if (!name) return usage();
    if (!valid_name(name)) {
        fprintf(stderr, "matchlock-local: invalid volume name %s (use [A-Za-z0-9_.-])\n", name);
        return 1;
    }
    char *dir = state_sub("volumes", name);
    if (!dir) return 1;
    struct stat st;
    if (stat(dir, &st) == 0) {
        fprintf(stderr, "matchlock-local: volume %s already exists\n", name);
        free(dir);
        return 1;
    }
    char *data = NULL, *meta = NULL;
    if (asprintf(&data, "%s/data", dir) < 0) data = NULL;
    if (asprintf(&meta, "%s/meta", dir) < 0) meta = NULL;
    FILE *f = NULL;
    if (!data || !meta || mkdir_p(data, 0755) != 0 || !(f = fopen(meta, "w"))) {
        fprintf(stderr, "matchlock-local: creating volume %s: %s\n", name, strerror(errno));
        free(dir); free(data); free(meta);
        return 1;
    }
    fprintf(f, "%lld\n", size);
    fclose(f);
    if (json) {
        jw w;
        jw_init(&w);
        volume_json(&w, name, size, data);
        printf("%.*s\n", (int)w.len, w.buf);
        jw_free(&w);
    } else {
        printf("Created volume %s (%lld MB) at %s\n", name, size, data);
    }
    free(dir); free(data); free(meta);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int volume_ls(int argc, char **argv)
{
    int json = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json = 1;
        else return usage();
    }
    char *root = state_root(), *vdir = NULL;
    if (!root || asprintf(&vdir, "%s/volumes", root) < 0) return 1;
    free(root);
    char **names = NULL;
    size_t n = 0;
    DIR *d = opendir(vdir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            char **nn = realloc(names, (n + 1) * sizeof *nn);
            if (!nn) break;
            names = nn;
            names[n++] = strdup(e->d_name);
        }
        closedir(d);
    }
    free(vdir);
    if (n) qsort(names, n, sizeof *names, cmp_str);
    jw w;
    jw_init(&w);
    jw_arr(&w);
    if (!json) printf("%-24s %10s  %s\n", "NAME", "SIZE (MB)", "PATH");
    for (size_t i = 0; i < n; i++) {
        long long size;
        char *path = NULL;
        if (names[i] && volume_info(names[i], &size, &path) == 0) {
            if (json) volume_json(&w, names[i], size, path);
            else printf("%-24s %10lld  %s\n", names[i], size, path);
        }
        free(path);
        free(names[i]);
    }
    free(names);
    jw_arr_end(&w);
    if (json) printf("%.*s\n", (int)w.len, w.buf);
    jw_free(&w);
    return 0;
}

static int volume_rm(int argc, char **argv)
{
    if (argc != 1) return usage();
    if (!valid_name(argv[0])) {
        fprintf(stderr, "matchlock-local: invalid volume name %s\n", argv[0]);
        return 1;
    }
    char *dir = state_sub("volumes", argv[0]);
    struct stat st;
    if (!dir || stat(dir, &st) != 0) {
        fprintf(stderr, "matchlock-local: volume %s not found\n", argv[0]);
        free(dir);
        return 1;
    }
    int rc = rm_rf(dir);
    free(dir);
    if (rc != 0) {
        fprintf(stderr, "matchlock-local: removing volume %s: %s\n", argv[0], strerror(errno));
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) return usage();
    const char *cmd = argv[1];
    if (!strcmp(cmd, "rpc")) return rpc_main();
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("matchlock-local %s\n", LOCAL_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "rm")) return cmd_rm(argc - 2, argv + 2);
    if (!strcmp(cmd, "volume") && argc >= 3) {
        const char *sub = argv[2];
        if (!strcmp(sub, "create")) return volume_create(argc - 3, argv + 3);
        if (!strcmp(sub, "ls") || !strcmp(sub, "list")) return volume_ls(argc - 3, argv + 3);
        if (!strcmp(sub, "rm") || !strcmp(sub, "remove")) return volume_rm(argc - 3, argv + 3);
    }
    return usage();
}
