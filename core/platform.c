/* platform.c - the fast and the POSIX path of each call in platform.h. */
#include "platform.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef HAVE_EVENTFD
#include <sys/eventfd.h>
#endif
#ifdef HAVE_PIDFD_OPEN
#include <sys/syscall.h>
#endif

#if !defined(HAVE_SO_PEERCRED) && !defined(HAVE_GETPEEREID)
#error "no SO_PEERCRED and no getpeereid: the hook socket could not check who connects"
#endif

/* close-on-exec, and non-blocking when nb; 0 or -1 with errno (fd closed) */
static int set_flags(int fd, int nb)
{
    int fl;
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) != 0 || (nb && ((fl = fcntl(fd, F_GETFL)) < 0 ||
                                                        fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0))) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return 0;
}

/* both ends; on failure both are closed and set to -1 (the caller's
 * cleanup must not close their numbers again) */
static int set_pair(int p[2], int nb)
{
    int bad = set_flags(p[0], nb) != 0 ? 0 : set_flags(p[1], nb) != 0 ? 1 : -1;
    if (bad < 0) return 0;
    int e = errno;
    close(p[1 - bad]); /* set_flags closed p[bad] */
    p[0] = p[1] = -1;
    errno = e;
    return -1;
}

int plat_pipe_cloexec(int p[2])
{
#ifdef HAVE_PIPE2
    return pipe2(p, O_CLOEXEC);
#else
    if (pipe(p) != 0) return -1;
    return set_pair(p, 0);
#endif
}

int plat_socketpair_cloexec(int sv[2])
{
#ifdef HAVE_SOCK_CLOEXEC
    return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
#else
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return -1;
    return set_pair(sv, 0);
#endif
}

int plat_socket_nb(int domain, int type)
{
#ifdef HAVE_SOCK_CLOEXEC
    return socket(domain, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
#else
    int fd = socket(domain, type, 0);
    if (fd < 0 || set_flags(fd, 1) != 0) return -1;
    return fd;
#endif
}

void plat_nosigpipe(int fd)
{
#ifdef SO_NOSIGPIPE
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#else
    (void)fd; /* send() passes MSG_NOSIGNAL */
#endif
}

int plat_accept_nb(int lfd)
{
#ifdef HAVE_ACCEPT4
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
#else
    int fd = accept(lfd, NULL, NULL);
    if (fd >= 0 && set_flags(fd, 1) != 0) return -1;
#endif
    if (fd >= 0) plat_nosigpipe(fd);
    return fd;
}

int plat_wake_fds(int *rfd, int *wfd)
{
#ifdef HAVE_EVENTFD
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd >= 0) {
        *rfd = *wfd = fd;
        return 0;
    }
#endif
    int p[2];
    if (pipe(p) != 0 || set_pair(p, 1) != 0) return -1;
    *rfd = p[0];
    *wfd = p[1];
    return 0;
}

int plat_peer_uid(int fd, uid_t *uid)
{
#ifdef HAVE_SO_PEERCRED
    struct ucred cr;
    socklen_t l = sizeof cr;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &l) != 0 || l != sizeof cr) return -1;
    *uid = cr.uid;
#else
    gid_t gid;
    if (getpeereid(fd, uid, &gid) != 0) return -1;
#endif
    return 0;
}

int plat_child_watch_fd(pid_t pid)
{
#if defined(HAVE_PIDFD_OPEN) && defined(SYS_pidfd_open)
    int fd = (int)syscall(SYS_pidfd_open, pid, 0); /* always close-on-exec */
    return fd >= 0 ? fd : -1;
#else
    (void)pid;
    return -1;
#endif
}

int plat_child_gone(pid_t pid, int *signaled, int *code)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    /* WNOWAIT: close reaps it.  Only an exit counts: some systems (macOS)
     * also report a stopped child here despite WEXITED. */
    if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0 || si.si_pid != pid) return 0;
    if (si.si_code != CLD_EXITED && si.si_code != CLD_KILLED && si.si_code != CLD_DUMPED) return 0;
    *signaled = si.si_code != CLD_EXITED;
    *code = si.si_status;
    return 1;
}
