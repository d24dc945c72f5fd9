/* test_local_private.c - matchlock-local keeps what the SDK writes into a
 * sandbox away from other local users: every directory of its state is
 * 0700 and ours, a planted one (a symlink, someone else's, one others may
 * write to) is refused, and without HOME the state never lands in /tmp.
 * The parts that need another uid run only as root (they switch uid in a
 * forked child) and are skipped otherwise. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <criterion/criterion.h>

#include "matchlock.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef MLK_LOCAL_BIN
#define MLK_LOCAL_BIN "matchlock-local"
#endif

#define OTHER_UID 65534     /* nobody */
#define NO_PASSWD_UID 54321 /* a uid without a password-database entry */

/* A state directory (XDG_STATE_HOME) that other users may enter, as a home
 * directory usually is: only matchlock-local's own modes can keep them out. */
static void make_state(char *buf, size_t n)
{
    snprintf(buf, n, "/tmp/mlk-private-XXXXXX");
    cr_assert_not_null(mkdtemp(buf));
    cr_assert_eq(chmod(buf, 0755), 0);
}

static void remove_tree(const char *path)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0) {}
}

static mlk_client *local_client(const char *state)
{
    mlk_config *cfg = mlk_config_new();
    mlk_config_set_binary(cfg, MLK_LOCAL_BIN);
    mlk_config_set_env(cfg, "XDG_STATE_HOME", state);
    mlk_config_set_env(cfg, "HOME", state);
    mlk_client *c = NULL;
    mlk_result *r = NULL;
    cr_assert_eq(mlk_client_new(&c, cfg, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    mlk_config_free(cfg);
    return c;
}

/* Create a sandbox with its workspace and a memory mount under it: 0, or
 * the status with the message in msg. */
static int create(mlk_client *c, char *msg, size_t n)
{
    mlk_sandbox *sb = mlk_sandbox_new("alpine:latest");
    mlk_sandbox_set_workspace(sb, "/workspace");
    mlk_sandbox_mount_memory(sb, "/workspace/mem");
    mlk_result *r = NULL;
    int rc = mlk_create(c, sb, 30000, &r);
    snprintf(msg, n, "%s", mlk_result_message(r));
    mlk_result_free(r);
    mlk_sandbox_free(sb);
    return rc;
}

static void finish(mlk_client *c)
{
    mlk_close(c, 5, NULL);
    mlk_remove(c, NULL);
    mlk_client_free(c);
}

static void assert_private(const char *dir)
{
    struct stat st;
    cr_assert_eq(lstat(dir, &st), 0, "%s: %s", dir, strerror(errno));
    cr_assert(S_ISDIR(st.st_mode), "%s is a directory", dir);
    cr_assert_eq(st.st_uid, geteuid(), "%s is ours", dir);
    cr_assert_eq(st.st_mode & 07777, 0700, "%s has mode %04o, not 0700", dir, (unsigned)(st.st_mode & 07777));
}

/* Drop to uid (and the same gid) for good in a forked child (root only:
 * setgid and setuid then set the real, effective and saved ids): 0 or -1. */
static int become(uid_t uid)
{
    return setgroups(0, NULL) == 0 && setgid((gid_t)uid) == 0 && setuid(uid) == 0 && setuid(0) != 0 ? 0 : -1;
}

/* As uid, try to read each path (a file or a directory): the child exits
 * with the number of paths it could read, or 100 when it could not switch. */
static int readable_as(uid_t uid, const char *const *paths, int n)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        if (become(uid) != 0) _exit(100);
        int got = 0;
        for (int i = 0; i < n; i++) {
            int fd = open(paths[i], O_RDONLY | O_CLOEXEC);
            if (fd >= 0) { got++; close(fd); }
        }
        _exit(got);
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status));
    cr_assert_neq(WEXITSTATUS(status), 100, "the child could not switch to uid %u", (unsigned)uid);
    return WEXITSTATUS(status);
}

/* Run matchlock-local with exactly the environment env (NULL-terminated
 * NAME=VALUE list), as uid (or as we are: (uid_t)-1); its stdout and
 * stderr into out.  Returns its exit status. */
static int run_local(uid_t uid, char *const env[], const char *a1, const char *a2, const char *a3, char *out,
                     size_t cap)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(p[1], 1);
        dup2(p[1], 2);
        close(p[0]);
        if (uid != (uid_t)-1 && become(uid) != 0) _exit(100);
        char *argv[] = {(char *)MLK_LOCAL_BIN, (char *)a1, (char *)a2, (char *)a3, NULL};
        execve(MLK_LOCAL_BIN, argv, env);
        _exit(127);
    }
    close(p[1]);
    size_t len = 0;
    ssize_t k;
    while (len + 1 < cap && (k = read(p[0], out + len, cap - 1 - len)) > 0) len += (size_t)k;
    out[len] = '\0';
    close(p[0]);
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status));
    cr_assert_neq(WEXITSTATUS(status), 100, "the child could not switch to uid %u", (unsigned)uid);
    return WEXITSTATUS(status);
}

Test(local_private, every_directory_on_the_way_to_a_workspace_file_is_0700_and_ours, .timeout = 60)
{
    char state[64], msg[512];
    make_state(state, sizeof state);
    mlk_client *c = local_client(state);
    cr_assert_eq(create(c, msg, sizeof msg), 0, "%s", msg);
    mlk_result *r = NULL;
    cr_assert_eq(mlk_write_file(c, "/workspace/plain.txt", "secret-1", 8, 0644, 0, &r), 0, "%s",
                 mlk_result_message(r));
    mlk_result_free(r);
    cr_assert_eq(mlk_write_file(c, "/workspace/mem/shm.txt", "secret-2", 8, 0644, 0, &r), 0, "%s",
                 mlk_result_message(r));
    mlk_result_free(r);
    const char *id = mlk_client_vm_id(c);
    cr_assert_not_null(id);

    char root[128], vms[160], vm[200], shm[128], plain[300], onshm[300];
    snprintf(root, sizeof root, "%s/matchlock-local", state);
    snprintf(vms, sizeof vms, "%s/vms", root);
    snprintf(vm, sizeof vm, "%s/%s", vms, id);
    snprintf(shm, sizeof shm, "/dev/shm/matchlock-local-%s", id);
    snprintf(plain, sizeof plain, "%s/root/workspace/plain.txt", vm);
    snprintf(onshm, sizeof onshm, "%s/mem0/shm.txt", shm);
    const char *dirs[] = {root, vms, vm, shm};
    for (int i = 0; i < 4; i++) assert_private(dirs[i]);
    /* the files are where the directories above guard them */
    cr_assert_eq(access(plain, R_OK), 0, "%s", plain);
    cr_assert_eq(access(onshm, R_OK), 0, "%s", onshm);

    if (geteuid() == 0) {
        /* another uid reads neither file nor lists any of the directories */
        const char *paths[] = {plain, onshm, root, vms, vm, shm};
        cr_assert_eq(readable_as(OTHER_UID, paths, 6), 0, "uid %d read some of them", OTHER_UID);
        /* (and can, once the modes are opened: the check above can fail) */
        for (int i = 0; i < 4; i++) chmod(dirs[i], 0755);
        const char *files[] = {plain, onshm};
        cr_assert_eq(readable_as(OTHER_UID, files, 2), 2);
        for (int i = 0; i < 4; i++) chmod(dirs[i], 0700);
    }
    finish(c);
    remove_tree(state);
}

/* What matchlock-local says when the state root is a planted directory:
 * both the rpc create and the CLI refuse it. */
static void assert_refused(const char *state, const char *why)
{
    char msg[512], out[2048];
    mlk_client *c = local_client(state);
    cr_assert_neq(create(c, msg, sizeof msg), 0, "create went ahead in a planted state directory");
    cr_assert(strstr(msg, why), "%s", msg);
    mlk_client_free(c);
    char xdg[300], home[300];
    snprintf(xdg, sizeof xdg, "XDG_STATE_HOME=%s", state);
    snprintf(home, sizeof home, "HOME=%s", state);
    char *env[] = {xdg, home, "PATH=/usr/bin:/bin", NULL};
    cr_assert_eq(run_local((uid_t)-1, env, "volume", "create", "vol", out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, why), "%s", out);
}

Test(local_private, a_planted_state_directory_is_refused, .timeout = 60)
{
    char state[64], elsewhere[64], root[128], probe[300];
    make_state(state, sizeof state);
    make_state(elsewhere, sizeof elsewhere);
    snprintf(root, sizeof root, "%s/matchlock-local", state);

    /* a symlink to a directory someone else controls */
    cr_assert_eq(symlink(elsewhere, root), 0);
    assert_refused(state, "symbolic link");
    snprintf(probe, sizeof probe, "%s/vms", elsewhere);
    cr_assert_neq(access(probe, F_OK), 0, "nothing was made through the symlink");
    snprintf(probe, sizeof probe, "%s/volumes", elsewhere);
    cr_assert_neq(access(probe, F_OK), 0, "nothing was made through the symlink");
    cr_assert_eq(unlink(root), 0);

    /* a directory other users may write to */
    cr_assert_eq(mkdir(root, 0700), 0);
    cr_assert_eq(chmod(root, 0777), 0);
    assert_refused(state, "other users may write to it");

    /* a file where the directory should be */
    cr_assert_eq(rmdir(root), 0);
    int fd = open(root, O_WRONLY | O_CREAT | O_EXCL, 0600);
    cr_assert_geq(fd, 0);
    close(fd);
    assert_refused(state, "not a directory");
    cr_assert_eq(unlink(root), 0);

    if (geteuid() == 0) {
        /* someone else's directory, however private */
        cr_assert_eq(mkdir(root, 0700), 0);
        cr_assert_eq(chown(root, OTHER_UID, OTHER_UID), 0);
        assert_refused(state, "belongs to uid 65534");
        cr_assert_eq(rmdir(root), 0);
    }

    /* an older matchlock-local's 0755 directory of ours is taken and closed */
    cr_assert_eq(mkdir(root, 0755), 0);
    cr_assert_eq(chmod(root, 0755), 0);
    char msg[512];
    mlk_client *c = local_client(state);
    cr_assert_eq(create(c, msg, sizeof msg), 0, "%s", msg);
    struct stat st;
    cr_assert_eq(lstat(root, &st), 0);
    cr_assert_eq(st.st_mode & 07777, 0700, "mode %04o", (unsigned)(st.st_mode & 07777));
    finish(c);
    remove_tree(state);
    remove_tree(elsewhere);
}

Test(local_private, without_home_the_state_never_goes_to_tmp, .timeout = 30)
{
    if (geteuid() != 0)
        cr_skip_test("needs root: the state would otherwise go to this user's real home directory");
    char vol[64], out[2048], tmp_state[200];
    snprintf(vol, sizeof vol, "v-private-%d", (int)getpid());
    snprintf(tmp_state, sizeof tmp_state, "/tmp/.local/state/matchlock-local/volumes/%s", vol);
    char *env[] = {"PATH=/usr/bin:/bin", NULL}; /* no HOME, no XDG_STATE_HOME */

    /* a uid without a home directory: a clear error, nothing in /tmp */
    cr_assert(getpwuid(NO_PASSWD_UID) == NULL, "uid %d has a password entry here", NO_PASSWD_UID);
    int rc = run_local(NO_PASSWD_UID, env, "volume", "create", vol, out, sizeof out);
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, "no state directory") && strstr(out, "set XDG_STATE_HOME or HOME"), "%s", out);
    cr_assert_neq(access(tmp_state, F_OK), 0, "the volume went to %s", tmp_state);

    /* a uid whose home is in the password database: the state goes there
     * (nobody's, usually /nonexistent, cannot be made: an error naming it) */
    struct passwd *pw = getpwuid(OTHER_UID);
    if (pw && pw->pw_dir && pw->pw_dir[0] == '/' && strncmp(pw->pw_dir, "/tmp", 4) != 0) {
        char home[256];
        snprintf(home, sizeof home, "%s", pw->pw_dir);
        rc = run_local(OTHER_UID, env, "volume", "create", vol, out, sizeof out);
        if (rc == 0) {
            char made[400];
            snprintf(made, sizeof made, "%s/.local/state/matchlock-local/volumes/%s", home, vol);
            cr_assert_eq(access(made, F_OK), 0, "%s", out);
            remove_tree(made);
        } else {
            cr_assert(strstr(out, home), "the error names %s: %s", home, out);
        }
        cr_assert_neq(access(tmp_state, F_OK), 0, "the volume went to %s", tmp_state);
    }
    remove_tree(tmp_state);
}

/* ---- secrets never at rest ------------------------------------------------ */

#define LOCAL_MARK "sk-live-9Rk2LocalMarkAtRest"

/* How many regular files under dir hold mark; each one's path into hit. */
static int files_holding(const char *dir, const char *mark, char *hit, size_t n)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "grep -rlF -- '%s' '%s' 2>/dev/null", mark, dir);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    int found = 0;
    char line[600];
    hit[0] = '\0';
    while (fgets(line, sizeof line, p)) {
        found++;
        if (strlen(hit) + strlen(line) + 1 < n) strcat(hit, line);
    }
    pclose(p);
    return found;
}

Test(local_private, no_file_of_the_state_holds_a_secret_value, .timeout = 60)
{
    char state[64];
    make_state(state, sizeof state);
    mlk_client *c = local_client(state);
    mlk_sandbox *sb = mlk_sandbox_new("alpine:latest");
    const char *hosts[] = {"api.example.com"};
    cr_assert_eq(mlk_sandbox_add_secret(sb, "API_KEY", LOCAL_MARK, NULL, hosts, 1), 0);
    mlk_result *r = NULL;
    cr_assert_eq(mlk_create(c, sb, 30000, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    mlk_sandbox_free(sb);
    /* the scan can find it: the config is written (and names the secret) */
    char hit[2000];
    cr_assert_eq(files_holding(state, "API_KEY", hit, sizeof hit), 1, "config.json names the secret: %s", hit);
    cr_assert(strstr(hit, "config.json"), "%s", hit);
    cr_assert_eq(files_holding(state, LOCAL_MARK, hit, sizeof hit), 0, "the secret's value is on disk in:\n%s", hit);
    mlk_close(c, 5, NULL);
    cr_assert_eq(files_holding(state, LOCAL_MARK, hit, sizeof hit), 0, "after close, the value is on disk in:\n%s", hit);
    mlk_remove(c, NULL);
    mlk_client_free(c);
    remove_tree(state);
}

/* ---- secrets do not linger in matchlock-local's memory ------------------- */

/* The pid of our matchlock-local child (the core spawns it directly). */
static pid_t local_child(void)
{
    DIR *d = opendir("/proc");
    cr_assert_not_null(d);
    struct dirent *e;
    pid_t found = 0;
    while (!found && (e = readdir(d))) {
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        char *close_paren = strrchr(buf, ')');
        int ppid = 0;
        char state;
        if (close_paren && sscanf(close_paren + 1, " %c %d", &state, &ppid) == 2 && ppid == getpid() &&
            strstr(buf, "(matchlock-local)"))
            found = (pid_t)atoi(buf);
    }
    closedir(d);
    return found;
}

/* How many times mark is in the writable memory of pid (heap, anonymous
 * mappings, stacks: where freed blocks are), or -1 when it cannot be read. */
static int copies_in_memory(pid_t pid, const char *mark)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
    FILE *maps = fopen(path, "r");
    snprintf(path, sizeof path, "/proc/%d/mem", (int)pid);
    int mem = open(path, O_RDONLY | O_CLOEXEC);
    if (!maps || mem < 0) {
        if (maps) fclose(maps);
        if (mem >= 0) close(mem);
        return -1;
    }
    int count = 0;
    size_t ml = strlen(mark);
    char line[512];
    while (fgets(line, sizeof line, maps)) {
        unsigned long lo, hi;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3 || perms[0] != 'r' || perms[1] != 'w') continue;
        if (strstr(line, "[vvar]") || strstr(line, "[vsyscall]")) continue;
        if (hi - lo > ((unsigned long)1 << 32)) continue; /* a reservation (no heap is that big) */
        /* in windows of 1 MiB that overlap by the mark's length less one */
        enum { WIN = 1 << 20 };
        char *buf = malloc(WIN);
        cr_assert_not_null(buf);
        for (unsigned long at = lo; at < hi;) {
            size_t want = hi - at < WIN ? hi - at : WIN;
            ssize_t got = pread(mem, buf, want, (off_t)at);
            if (got <= 0) break;
            for (ssize_t i = 0; i + (ssize_t)ml <= got; i++)
                if (buf[i] == mark[0] && !memcmp(buf + i, mark, ml)) count++;
            if ((size_t)got < ml || at + (unsigned long)got >= hi) break;
            at += (unsigned long)got - (ml - 1);
        }
        free(buf);
    }
    fclose(maps);
    close(mem);
    return count;
}

Test(secrets, matchlock_local_keeps_one_copy_of_a_secret, .timeout = 60)
{
#if defined(__SANITIZE_ADDRESS__)
    /* matchlock-local is an ASan build too: its memory is shadow and quarantine */
    cr_skip_test("not under AddressSanitizer: matchlock-local's memory holds ASan's shadow and quarantine");
#endif
    char state[64];
    make_state(state, sizeof state);
    mlk_client *c = local_client(state);
    pid_t pid = local_child();
    cr_assert_gt(pid, 0, "matchlock-local is our child");
    mlk_sandbox *sb = mlk_sandbox_new("alpine:latest");
    const char *hosts[] = {"api.example.com"};
    cr_assert_eq(mlk_sandbox_add_secret(sb, "API_KEY", LOCAL_MARK, NULL, hosts, 1), 0);
    mlk_result *r = NULL;
    cr_assert_eq(mlk_create(c, sb, 30000, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    mlk_sandbox_free(sb);
    /* one more round trip: the create line's handling has ended */
    cr_assert_eq(mlk_exec(c, "true", NULL, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    int n = copies_in_memory(pid, LOCAL_MARK);
    if (n < 0) cr_skip_test("cannot read matchlock-local's memory here (ptrace restrictions)");
    /* the proxy's own copy, which it needs to substitute the placeholder;
     * the create line, its copies and libevent's input chains are wiped */
    cr_assert_eq(n, 1, "%d copies of the secret in matchlock-local's memory (one is the proxy's)", n);
    finish(c);
    remove_tree(state);
}
