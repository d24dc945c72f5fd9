/* What a client leaves behind: nothing.  After close and free there is no
 * extra fd, no extra thread, no child (running or zombie), and a child
 * that died under a pending write never turns into SIGPIPE for the host.
 * These run against the real server of the end-to-end tests (e2e_server.h)
 * and against a shell peer that closes its stdin. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "e2e_server.h"
#include "matchlock.h"

static int count_dir(const char *path)
{
    DIR *d = opendir(path);
    cr_assert_not_null(d, "%s: %s", path, strerror(errno));
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - (strcmp(path, "/proc/self/fd") == 0); /* the DIR's own fd */
}

/* Children of this process (ppid == us): how many, how many zombies, and
 * the pid of the last one seen. */
static int children(int *zombies, pid_t *last)
{
    DIR *d = opendir("/proc");
    cr_assert_not_null(d);
    int n = 0;
    if (zombies) *zombies = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        size_t k = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[k] = '\0';
        char *p = strrchr(buf, ')'); /* the command name may hold spaces */
        char state;
        int ppid;
        if (!p || sscanf(p + 1, " %c %d", &state, &ppid) != 2 || ppid != getpid()) continue;
        n++;
        if (state == 'Z' && zombies) (*zombies)++;
        if (last) *last = (pid_t)atoi(e->d_name);
    }
    closedir(d);
    return n;
}

static mlk_client *local_client(void) { return e2e_client_from(e2e_config()); }

static void create(mlk_client *c) { e2e_create(c, 30000, "create"); }

static void on_done(void *ud, uint64_t op, const mlk_result *res) { (void)ud; (void)op; (void)res; }

/* One client's life; `how` varies the path to the end. */
static void cycle(int how)
{
    mlk_client *c = local_client();
    mlk_result *r = NULL;
    switch (how % 4) {
    case 0: /* create, exec, close, remove, free */
        create(c);
        cr_assert_eq(mlk_exec(c, "echo hi", NULL, &r), 0, "%s", mlk_result_message(r));
        mlk_result_free(r);
        cr_assert_eq(mlk_close(c, 5, NULL), 0);
        mlk_remove(c, NULL);
        break;
    case 1: /* never created: close right away */
        cr_assert_eq(mlk_close(c, 0, NULL), 0);
        break;
    case 2: /* free without close, an async call still running */
        create(c);
        cr_assert_eq(mlk_exec_async(c, "sleep 30", NULL, on_done, NULL, NULL), 0);
        usleep(20 * 1000);
        mlk_remove(c, NULL);
        break;
    case 3: /* free with nothing done at all */
        break;
    }
    mlk_client_free(c);
}

Test(resources, no_fd_thread_or_child_left_after_free, .timeout = 180)
{
    int fds0 = count_dir("/proc/self/fd"), threads0 = count_dir("/proc/self/task");
    int z;
    cr_assert_eq(children(&z, NULL), 0, "the test starts with children");
    for (int i = 0; i < 20; i++) {
        cycle(i);
        int fds = count_dir("/proc/self/fd"), threads = count_dir("/proc/self/task");
        /* pthread_join returns when the kernel clears the thread's tid,
         * which is before its /proc/self/task entry goes: give a joined
         * I/O thread up to a second to be reaped (a thread that is really
         * left behind stays and fails below) */
        for (int w = 0; w < 100 && threads != threads0; w++) {
            usleep(10 * 1000);
            threads = count_dir("/proc/self/task");
        }
        int kids = children(&z, NULL);
        cr_assert_eq(fds, fds0, "cycle %d: %d fds open, %d before", i, fds, fds0);
        cr_assert_eq(threads, threads0, "cycle %d: %d threads, %d before", i, threads, threads0);
        cr_assert_eq(z, 0, "cycle %d: %d zombie children", i, z);
        cr_assert_eq(kids, 0, "cycle %d: %d children still there", i, kids);
    }
}

/* The signal must not reach us, nor stay pending for the process. */
static void assert_no_sigpipe_pending(void)
{
    sigset_t s;
    sigpending(&s);
    cr_assert_eq(sigismember(&s, SIGPIPE), 0, "SIGPIPE is pending for the host");
}

Test(resources, killed_child_gives_edead_not_sigpipe, .timeout = 60)
{
    signal(SIGPIPE, SIG_DFL);
    mlk_client *c = local_client();
    create(c);
    pid_t pid = 0;
    cr_assert_eq(children(NULL, &pid), 1);
    cr_assert_eq(kill(pid, SIGKILL), 0);
    /* wait until it is dead (a zombie until the library reaps it) */
    for (int i = 0; i < 200; i++) {
        int z;
        if (children(&z, NULL) == 0 || z == 1) break;
        usleep(10 * 1000);
    }
    mlk_result *r = NULL;
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(mlk_exec(c, "echo hi", NULL, &r), MLK_EDEAD, "%s", mlk_result_message(r));
        mlk_result_free(r);
        r = NULL;
    }
    /* stdin for a call the dead client no longer has: refused or dropped */
    (void)mlk_stdin_write(c, 12345, "x", 1);
    assert_no_sigpipe_pending();
    cr_assert_eq(mlk_close(c, 1, NULL), 0);
    mlk_client_free(c);
    int z;
    cr_assert_eq(children(&z, NULL), 0, "the killed child was not reaped");
    assert_no_sigpipe_pending();
}

/* A peer that closes its stdin but keeps running (its stdout stays open,
 * so the client learns of it only by writing): the write gets EPIPE. */
Test(resources, write_to_closed_stdin_is_edead_not_sigpipe, .timeout = 30)
{
    signal(SIGPIPE, SIG_DFL);
    mlk_config *cfg = mlk_config_new();
    const char *launcher[] = {"sh", "-c", "exec 0<&-; sleep 5", "peer"};
    cr_assert_eq(mlk_config_set_launcher(cfg, launcher, 4), 0);
    mlk_client *c = NULL;
    cr_assert_eq(mlk_client_new(&c, cfg, NULL), 0);
    mlk_config_free(cfg);
    usleep(200 * 1000); /* let the shell close its stdin */
    mlk_result *r = NULL;
    int rc = mlk_exec(c, "true", NULL, &r);
    cr_assert_eq(rc, MLK_EDEAD, "rc=%d %s", rc, mlk_result_message(r));
    mlk_result_free(r);
    assert_no_sigpipe_pending();
    /* close must not hang on the live child: it is killed after the wait */
    mlk_close(c, 0, NULL);
    mlk_client_free(c);
    int z;
    cr_assert_eq(children(&z, NULL), 0);
    assert_no_sigpipe_pending();
}

/* The library never writes to the host's stderr, not even libevent under
 * descriptor exhaustion ("[warn] evutil_make_internal_pipe_: pipe: Too many
 * open files"): a client made with 0..24 descriptors left, fd 2 captured
 * into a file that must stay empty, and every failure says it ran out of
 * descriptors. */
Test(resources, descriptor_exhaustion_prints_nothing, .timeout = 60)
{
    char path[] = "/tmp/mlk-stderr-XXXXXX";
    int cap = mkstemp(path);
    cr_assert_geq(cap, 0);
    unlink(path);
    fflush(stderr);
    int saved = dup(2);
    cr_assert_geq(saved, 0);
    dup2(cap, 2);
    const char *launcher[] = {"sh", "-c", "exec cat >/dev/null", "peer"};
    struct rlimit old, low;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = old;
    low.rlim_cur = (rlim_t)count_dir("/proc/self/fd") + 256; /* so that taking them all is quick */
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    int failures = 0, made = 0;
    for (int left = 0; left <= 24; left++) {
        mlk_config *cfg = mlk_config_new();
        cr_assert_eq(mlk_config_set_launcher(cfg, launcher, 4), 0);
        int held[4096], n = 0; /* take every descriptor, then give `left` back */
        while (n < 4096 && (held[n] = dup(0)) >= 0) n++;
        for (int i = 0; i < left && n > 0; i++) close(held[--n]);
        mlk_client *c = NULL;
        mlk_result *r = NULL;
        int rc = mlk_client_new(&c, cfg, &r);
        while (n > 0) close(held[--n]);
        mlk_config_free(cfg);
        if (rc == 0) {
            made++;
            mlk_close(c, 0, NULL);
            mlk_client_free(c);
        } else {
            failures++;
            cr_assert(strstr(mlk_result_message(r), "file descriptors") || strstr(mlk_result_message(r), "open files"),
                      "left=%d: %s", left, mlk_result_message(r));
        }
        mlk_result_free(r);
    }
    setrlimit(RLIMIT_NOFILE, &old);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char buf[512] = "";
    ssize_t k = pread(cap, buf, sizeof buf - 1, 0);
    close(cap);
    cr_assert_gt(failures, 0, "descriptors never ran out");
    cr_assert_gt(made, 0, "no client could be made even with 24 descriptors left");
    cr_assert_eq(k, 0, "the library wrote to stderr: %s", k > 0 ? buf : "");
}
