/* test_platform.c - core/platform.c: each call gives what platform.h
 * promises, on whichever path this build took.  The suite runs twice in
 * `make test`: on the normal build (Linux's fast paths) and on the
 * MLK_FORCE_PORTABLE build (the POSIX fallbacks macOS uses), which defines
 * MLK_TEST_PORTABLE for this file so each run checks it took its own path. */
#include <criterion/criterion.h>

#include "platform.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int cloexec(int fd) { return (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0; }
static int nonblocking(int fd) { return (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0; }
static int is_fifo(int fd)
{
    struct stat st;
    cr_assert_eq(fstat(fd, &st), 0);
    return S_ISFIFO(st.st_mode);
}

Test(platform, wake_channel_is_the_builds_own_and_non_blocking)
{
    int r = -1, w = -1;
    cr_assert_eq(plat_wake_fds(&r, &w), 0, "%s", strerror(errno));
#ifdef MLK_TEST_PORTABLE
    cr_assert_neq(r, w, "the portable build wakes through a pipe");
    cr_assert(is_fifo(r) && is_fifo(w));
#else
    cr_assert_eq(r, w, "Linux wakes through one eventfd");
    cr_assert(!is_fifo(r));
#endif
    cr_assert(cloexec(r) && cloexec(w) && nonblocking(r) && nonblocking(w));
    /* written once, readable once, then empty (EAGAIN, never blocking) */
    if (r == w) {
        uint64_t one = 1;
        cr_assert_eq(write(w, &one, sizeof one), (ssize_t)sizeof one);
    } else {
        cr_assert_eq(write(w, "x", 1), 1);
    }
    char buf[8];
    cr_assert_gt(read(r, buf, sizeof buf), 0);
    cr_assert_eq(read(r, buf, sizeof buf), -1);
    cr_assert_eq(errno, EAGAIN);
    close(r);
    if (w != r) close(w);
}

Test(platform, pipes_and_socketpairs_are_close_on_exec_and_blocking)
{
    int p[2], s[2];
    cr_assert_eq(plat_pipe_cloexec(p), 0);
    cr_assert(cloexec(p[0]) && cloexec(p[1]));
    cr_assert(!nonblocking(p[0]) && !nonblocking(p[1]), "the child's stdout and stderr stay blocking");
    cr_assert_eq(plat_socketpair_cloexec(s), 0);
    cr_assert(cloexec(s[0]) && cloexec(s[1]));
    plat_nosigpipe(s[1]);
    close(s[0]);
    /* the peer is gone: EPIPE, and no SIGPIPE (the default action would kill the test) */
    cr_assert_eq(send(s[1], "x", 1, MSG_NOSIGNAL), -1);
    cr_assert_eq(errno, EPIPE);
    close(s[1]);
    close(p[0]);
    close(p[1]);
}

Test(platform, listener_and_accepted_socket_are_non_blocking_and_know_the_peer)
{
    char dir[] = "/tmp/mlk-plat-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s/s", dir);
    int l = plat_socket_nb(AF_UNIX, SOCK_STREAM);
    cr_assert_geq(l, 0);
    cr_assert(cloexec(l) && nonblocking(l));
    cr_assert_eq(bind(l, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(listen(l, 4), 0);
    cr_assert_eq(plat_accept_nb(l), -1, "nobody is connecting: no wait");
    cr_assert(errno == EAGAIN || errno == EWOULDBLOCK);
    int c = socket(AF_UNIX, SOCK_STREAM, 0);
    cr_assert_eq(connect(c, (struct sockaddr *)&sa, sizeof sa), 0);
    int a = plat_accept_nb(l);
    cr_assert_geq(a, 0, "%s", strerror(errno));
    cr_assert(cloexec(a) && nonblocking(a));
    uid_t uid = (uid_t)-1;
    cr_assert_eq(plat_peer_uid(a, &uid), 0);
    cr_assert_eq(uid, geteuid());
    close(c);
    close(a);
    close(l);
    unlink(sa.sun_path);
    rmdir(dir);
}

Test(platform, peer_uid_of_a_non_socket_is_refused)
{
    int p[2];
    cr_assert_eq(plat_pipe_cloexec(p), 0);
    uid_t uid;
    cr_assert_eq(plat_peer_uid(p[0], &uid), -1);
    close(p[0]);
    close(p[1]);
}

static void nap(int ms)
{
    struct timespec d = {0, ms * 1000000L};
    nanosleep(&d, NULL);
}

/* wait (without reaping) until plat_child_gone says yes, up to 5 s */
static int gone_within(pid_t pid, int *sig, int *code)
{
    for (int i = 0; i < 500; i++) {
        if (plat_child_gone(pid, sig, code)) return 1;
        nap(10);
    }
    return 0;
}

Test(platform, child_gone_counts_an_exit_not_a_stop_and_does_not_reap)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        raise(SIGSTOP);
        _exit(3);
    }
    int sig = -1, code = -1, st;
    /* stopped: still there */
    for (int i = 0; i < 500; i++) {
        if (waitpid(pid, &st, WUNTRACED | WNOHANG) == pid && WIFSTOPPED(st)) break;
        nap(10);
    }
    cr_assert_eq(plat_child_gone(pid, &sig, &code), 0, "a stopped child has not exited");
    kill(pid, SIGCONT);
    cr_assert(gone_within(pid, &sig, &code));
    cr_assert_eq(sig, 0);
    cr_assert_eq(code, 3);
    cr_assert_eq(plat_child_gone(pid, &sig, &code), 1, "not reaped: asking again still says so");
    cr_assert_eq(waitpid(pid, &st, 0), pid, "the caller reaps it");
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 3);
}

Test(platform, child_gone_reports_the_signal_that_killed_it)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        for (;;) pause();
    }
    int sig = -1, code = -1, st;
    cr_assert_eq(plat_child_gone(pid, &sig, &code), 0, "running");
    kill(pid, SIGKILL);
    cr_assert(gone_within(pid, &sig, &code));
    cr_assert_eq(sig, 1);
    cr_assert_eq(code, SIGKILL);
    cr_assert_eq(waitpid(pid, &st, 0), pid);
}

Test(platform, child_watch_fd_is_a_pidfd_on_linux_and_none_on_the_portable_build)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        nap(100);
        _exit(0);
    }
    int fd = plat_child_watch_fd(pid);
#ifdef MLK_TEST_PORTABLE
    cr_assert_eq(fd, -1, "the portable build polls plat_child_gone");
#else
    if (fd < 0) cr_skip_test("pidfd_open: %s (kernel older than 5.3)", strerror(errno));
    cr_assert(cloexec(fd));
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    cr_assert_eq(poll(&pf, 1, 5000), 1, "readable once the child exits");
#endif
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    if (fd >= 0) close(fd);
}
