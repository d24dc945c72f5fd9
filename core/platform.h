/* platform.h - the calls that differ between Linux and macOS, in one place.
 *
 * The rest of the core calls these helpers and never tests the OS itself.
 * Each helper has a fast path, used where the system has the call, and a
 * POSIX path (fcntl after the call, a pipe, getpeereid, a poll) otherwise.
 *
 * Which path: the CMake build probes the system (check_symbol_exists in
 * CMakeLists.txt) and defines MLK_PLATFORM_PROBED with a HAVE_* macro for
 * each call found; -DMLK_FORCE_PORTABLE=ON defines none, so every POSIX
 * path runs on Linux too (`make test` runs the C suite on that build).
 * Builds without CMake (the Python extension, the Node addon, the Lua rock)
 * take the defaults below, by OS: this is the only file where the OS is
 * named. */
#ifndef MLK_PLATFORM_H
#define MLK_PLATFORM_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifndef MLK_PLATFORM_PROBED
#if defined(__linux__)
#define HAVE_ACCEPT4 1
#define HAVE_SOCK_CLOEXEC 1
#define HAVE_PIPE2 1
#define HAVE_EVENTFD 1
#define HAVE_SO_PEERCRED 1
#define HAVE_PIDFD_OPEN 1 /* the syscall number; the kernel may still say ENOSYS */
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 25))
#define HAVE_EXPLICIT_BZERO 1
#endif
#elif defined(__APPLE__) || defined(__FreeBSD__) || defined(__OpenBSD__) || defined(__NetBSD__)
#define HAVE_GETPEEREID 1
#endif
#endif

/* A send() that never raises SIGPIPE: MSG_NOSIGNAL (Linux, macOS 10.x SDKs
 * on), else the socket carries SO_NOSIGPIPE (plat_nosigpipe). */
#ifndef MSG_NOSIGNAL
#ifdef SO_NOSIGPIPE
#define MSG_NOSIGNAL 0
#else
#error "no MSG_NOSIGNAL and no SO_NOSIGPIPE: a write to a closed socket would raise SIGPIPE"
#endif
#endif

/* A pipe, both ends close-on-exec (blocking).  0, or -1 with errno. */
int plat_pipe_cloexec(int p[2]);

/* A pair of connected AF_UNIX stream sockets, both close-on-exec. */
int plat_socketpair_cloexec(int sv[2]);

/* A socket, close-on-exec and non-blocking; the fd or -1 with errno. */
int plat_socket_nb(int domain, int type);

/* accept(): the new connection close-on-exec, non-blocking and (where the
 * system has it) SO_NOSIGPIPE.  The fd or -1 with errno. */
int plat_accept_nb(int lfd);

/* Writes to fd never raise SIGPIPE (SO_NOSIGPIPE where it exists; on other
 * systems send() passes MSG_NOSIGNAL).  For a socket this process writes. */
void plat_nosigpipe(int fd);

/* A wake-up channel: an eventfd (*rfd == *wfd, 8-byte counter) or a pipe;
 * both non-blocking and close-on-exec.  0, or -1 with errno. */
int plat_wake_fds(int *rfd, int *wfd);

/* The uid of the process at the other end of an AF_UNIX socket.  0, or -1
 * when the system cannot tell (the caller then refuses the peer). */
int plat_peer_uid(int fd, uid_t *uid);

/* An fd that becomes readable when child `pid` exits (a pidfd),
 * close-on-exec; -1 where there is none: poll plat_child_gone instead. */
int plat_child_watch_fd(pid_t pid);

/* Has child `pid` exited (or been killed)?  Does not reap it.  1 with
 * *signaled (killed by a signal) and *code (the exit status or the signal
 * number), 0 while it runs or is only stopped. */
int plat_child_gone(pid_t pid, int *signaled, int *code);

#endif
