/* main.c - the matchlock-local command line: rpc, version, rm, volume. */
#include "local.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
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
            "       matchlock-local rm [--] <vm-id> | --stopped\n"
            "       matchlock-local volume create [--size MB] [--json] [--] <name>\n"
            "       matchlock-local volume ls [--json]\n"
            "       matchlock-local volume rm [--] <name>\n"
            "       matchlock-local volume cp [--] <src> <dest>\n"
            "       matchlock-local image import <tag> < docker-save.tar\n"
            "       matchlock-local image ls\n"
            "       matchlock-local image rm <tag>\n");
    return 2;
}

/* Errors read as upstream's CLI prints them: the message alone, exit 1. */
static int die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

static int remove_vm(const char *id)
{
    char *dir = valid_name(id) ? state_sub("vms", id) : NULL;
    struct stat st;
    if (!dir || stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        free(dir);
        return die("VM %s not found", id);
    }
    if (vm_running(dir)) { free(dir); return die("VM is running %s", id); }
    /* Memory mounts live on /dev/shm under the VM id (removed only when the
     * directory there is ours: /dev/shm is shared) */
    char shm[256];
    snprintf(shm, sizeof shm, "/dev/shm/matchlock-local-%s", id);
    if (lstat(shm, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == geteuid()) rm_rf(shm);
    int rc = rm_rf(dir);
    free(dir);
    if (rc != 0) return die("remove %s: %s", id, strerror(errno));
    return 0;
}

static char **list_dir(const char *kind, size_t *n);

static int cmd_rm(int argc, char **argv)
{
    int stopped = 0;
    const char *id = NULL;
    int operands = 0; /* after `--` every word is an operand, as cobra reads it */
    for (int i = 0; i < argc; i++) {
        if (!operands && !strcmp(argv[i], "--")) operands = 1;
        else if (!operands && !strcmp(argv[i], "--stopped")) stopped = 1;
        else if (!operands && argv[i][0] == '-') return die("unknown flag: %s", argv[i]);
        else if (!id) id = argv[i];
    }
    if (stopped) {
        size_t n;
        char **ids = list_dir("vms", &n);
        for (size_t i = 0; i < n; i++) {
            char *dir = state_sub("vms", ids[i]);
            if (dir && !vm_running(dir)) {
                if (remove_vm(ids[i]) == 0) printf("Removed %s\n", ids[i]);
                else fprintf(stderr, "Failed to remove %s\n", ids[i]);
            }
            free(dir);
            free(ids[i]);
        }
        free(ids);
        return 0;
    }
    if (!id) return die("VM ID required (or use --stopped)");
    if (remove_vm(id) != 0) return 1;
    printf("Removed %s\n", id);
    return 0;
}

/* Volumes: volumes/<name>/meta (the size in MB) and volumes/<name>/data
 * (the directory handed out as "path"). */
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

/* upstream's size text: MB with one decimal */
static void size_text(char *buf, size_t cap, long long mb)
{
    snprintf(buf, cap, "%lld.0 MB", mb);
}

static void volume_json(jw *w, const char *name, long long size, const char *path)
{
    char st[48];
    size_text(st, sizeof st, size);
    jw_obj(w);
    jw_key(w, "name"); jw_str(w, name);
    jw_key(w, "size"); jw_str(w, st);
    jw_key(w, "path"); jw_str(w, path);
    jw_obj_end(w);
}

static int check_volume_name(const char *name)
{
    if (valid_name(name) && ((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z') ||
                             (name[0] >= '0' && name[0] <= '9')))
        return 0;
    return die("invalid volume name: \"%s\" (allowed: alphanumeric, '_', '.', '-', must start with alphanumeric)", name);
}

/* A new volume dir for name: 0, or 1 after printing why not. */
static int volume_new(const char *name, long long size, char **data_out)
{
    if (check_volume_name(name)) return 1;
    char *dir = state_sub("volumes", name);
    if (!dir) return 1;
    struct stat st;
    if (lstat(dir, &st) == 0) { free(dir); return die("named volume already exists: %s", name); }
    char *why = NULL, *made = state_make("volumes", name, &why);   /* private: 0700 */
    if (!made) {
        int rc = die("create named volume: %s", why ? why : "out of memory");
        free(why);
        free(dir);
        return rc;
    }
    free(made);
    char *data = NULL, *meta = NULL;
    if (asprintf(&data, "%s/data", dir) < 0) data = NULL;
    if (asprintf(&meta, "%s/meta", dir) < 0) meta = NULL;
    FILE *f = NULL;
    int rc = 0;
    if (!data || !meta || mkdir(data, 0755) != 0 || !(f = fopen(meta, "w"))) {
        rc = die("create named volume: %s", strerror(errno));
        rm_rf(dir);
    } else {
        fprintf(f, "%lld\n", size);
        fclose(f);
    }
    free(dir); free(meta);
    if (rc) free(data);
    else *data_out = data;
    return rc;
}

static int volume_create(int argc, char **argv)
{
    const char *name = NULL, *sz = NULL;
    long long size = 10240;        /* upstream's default */
    int json = 0, nargs = 0, operands = 0;
    for (int i = 0; i < argc; i++) {
        if (operands) { if (!name) name = argv[i]; nargs++; }
        else if (!strcmp(argv[i], "--")) operands = 1;
        else if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--size")) {
            if (i + 1 >= argc) return die("flag needs an argument: --size");
            sz = argv[++i];
        } else if (!strncmp(argv[i], "--size=", 7)) sz = argv[i] + 7;
        else if (argv[i][0] == '-' && argv[i][1]) return die("unknown flag: %s", argv[i]);
        else { if (!name) name = argv[i]; nargs++; }
    }
    if (nargs != 1) return die("accepts 1 arg(s), received %d", nargs);
    if (sz) {
        char *e;
        errno = 0;
        size = strtoll(sz, &e, 10);
        if (!*sz || *e || errno) return die("invalid argument \"%s\" for \"--size\" flag", sz);
    }
    if (size <= 0) return die("create named volume: size must be > 0 MB");
    char *data = NULL;
    if (volume_new(name, size, &data)) return 1;
    if (json) {
        jw w;
        jw_init(&w);
        volume_json(&w, name, size, data);
        printf("%.*s\n", (int)w.len, w.buf);
        jw_free(&w);
    } else {
        printf("Created volume %s (%lld MB)\n", name, size);
    }
    free(data);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names under the state root's kind/ (malloc'd). */
static char **list_dir(const char *kind, size_t *count)
{
    char *root = state_root(NULL), *dir = NULL;
    char **names = NULL;
    size_t n = 0;
    if (root && asprintf(&dir, "%s/%s", root, kind) < 0) dir = NULL;
    free(root);
    DIR *d = dir ? opendir(dir) : NULL;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char **nn = realloc(names, (n + 1) * sizeof *nn);
        if (!nn) break;
        names = nn;
        names[n++] = strdup(e->d_name);
    }
    if (d) closedir(d);
    free(dir);
    if (n) qsort(names, n, sizeof *names, cmp_str);
    *count = n;
    return names;
}

static int volume_ls(int argc, char **argv)
{
    int json = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json = 1;
        else return die("unknown flag: %s", argv[i]);
    }
    size_t n;
    char **names = list_dir("volumes", &n);
    long long *sizes = calloc(n + 1, sizeof *sizes);
    char **paths = calloc(n + 1, sizeof *paths);
    int width = 4;                 /* "NAME": columns as Go's tabwriter, two spaces apart */
    for (size_t i = 0; i < n; i++) {
        if (volume_info(names[i], &sizes[i], &paths[i]) != 0) { free(names[i]); names[i] = NULL; continue; }
        if ((int)strlen(names[i]) > width) width = (int)strlen(names[i]);
    }
    jw w;
    jw_init(&w);
    jw_arr(&w);
    if (!json) printf("%-*s  SIZE\n", width, "NAME");
    for (size_t i = 0; i < n; i++) {
        if (!names[i]) continue;
        char st[48];
        size_text(st, sizeof st, sizes[i]);
        if (json) volume_json(&w, names[i], sizes[i], paths[i]);
        else printf("%-*s  %s\n", width, names[i], st);
        free(paths[i]);
        free(names[i]);
    }
    jw_arr_end(&w);
    if (json) printf("%.*s\n", (int)w.len, w.buf);
    jw_free(&w);
    free(names); free(sizes); free(paths);
    return 0;
}

/* Skip a leading `--` (the operands follow it; these commands take no flags). */
static void skip_dashdash(int *argc, char ***argv)
{
    if (*argc > 0 && !strcmp((*argv)[0], "--")) { (*argc)--; (*argv)++; }
}

static int volume_rm(int argc, char **argv)
{
    skip_dashdash(&argc, &argv);
    if (argc != 1) return die("accepts 1 arg(s), received %d", argc);
    const char *name = argv[0];
    if (check_volume_name(name)) return 1;
    char *dir = state_sub("volumes", name);
    struct stat st;
    if (!dir || stat(dir, &st) != 0) { free(dir); return die("named volume not found: %s", name); }
    int rc = rm_rf(dir);
    free(dir);
    if (rc != 0) return die("remove named volume %s: %s", name, strerror(errno));
    printf("Removed volume %s\n", name);
    return 0;
}

static int volume_cp(int argc, char **argv)
{
    skip_dashdash(&argc, &argv);
    if (argc != 2) return die("accepts 2 arg(s), received %d", argc);
    long long size;
    char *src = NULL, *data = NULL;
    if (check_volume_name(argv[0]) || check_volume_name(argv[1])) return 1;
    if (volume_info(argv[0], &size, &src) != 0) { free(src); return die("named volume not found: %s", argv[0]); }
    int rc = volume_new(argv[1], size, &data);
    if (!rc) {
        rm_rf(data);
        if (copy_tree(src, data) != 0) {
            rc = die("copy named volume %s: %s", argv[0], strerror(errno));
            char *dir = state_sub("volumes", argv[1]);
            if (dir) rm_rf(dir);
            free(dir);
        } else {
            printf("Copied volume %s to %s\n", argv[0], argv[1]);
        }
    }
    free(src);
    free(data);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) return usage();
    const char *cmd = argv[1];
    if (!strcmp(cmd, "rpc")) return rpc_main();
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        /* upstream's layout; the version says which backend this is */
        printf("matchlock %s-local (commit: %s, built: %s)\n", LOCAL_VERSION, LOCAL_COMMIT, LOCAL_BUILT);
        return 0;
    }
    if (!strcmp(cmd, "image") || !strcmp(cmd, "rm") || !strcmp(cmd, "remove") || !strcmp(cmd, "volume")) {
        char *why = NULL, *root = state_root(&why);
        if (!root) {
            int rc = die("%s", why ? why : "out of memory");
            free(why);
            return rc;
        }
        free(root);
    }
    if (!strcmp(cmd, "image")) return image_main(argc - 2, argv + 2);
    if (!strcmp(cmd, "rm") || !strcmp(cmd, "remove")) return cmd_rm(argc - 2, argv + 2);
    if (!strcmp(cmd, "volume") && argc >= 3) {
        const char *sub = argv[2];
        if (!strcmp(sub, "create")) return volume_create(argc - 3, argv + 3);
        if (!strcmp(sub, "ls") || !strcmp(sub, "list")) return volume_ls(argc - 3, argv + 3);
        if (!strcmp(sub, "rm") || !strcmp(sub, "remove")) return volume_rm(argc - 3, argv + 3);
        if (!strcmp(sub, "cp") || !strcmp(sub, "copy")) return volume_cp(argc - 3, argv + 3);
    }
    return usage();
}
