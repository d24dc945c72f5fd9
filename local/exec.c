/* exec.c - commands as local processes: spawn (pipes or a pseudo-terminal),
 * non-blocking output relayed as base64 chunks, stdin queued per command,
 * process-group termination (SIGTERM, then SIGKILL after a grace period)
 * and reaping on SIGCHLD.
 *
 * A command is finished when its process has exited and its output pipes
 * reached EOF.  A background child that keeps a pipe open cannot hold the
 * request forever: OUTPUT_GRACE_MS after the exit, what is readable is
 * read and the pipes are closed. */
#include "local.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pty.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#define OUTPUT_GRACE_MS 300

static void proc_finish(proc *p);

static int64_t elapsed_ms(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)(t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

static void set_nonblock(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* ---- output ----------------------------------------------------------- */

static void deliver(proc *p, int err, const char *buf, size_t n)
{
    req *r = p->r;
    if (!r) return;
    switch (p->kind) {
    case P_EXEC:
        evbuffer_add(err ? p->acc_err : p->acc_out, buf, n);
        break;
    case P_STREAM:
        srv_notify_data(p->srv, err ? "exec_stream.stderr" : "exec_stream.stdout", r->id, buf, n);
        break;
    case P_PIPE:
        srv_notify_data(p->srv, err ? "exec_pipe.stderr" : "exec_pipe.stdout", r->id, buf, n);
        break;
    case P_TTY:
        srv_notify_data(p->srv, "exec_tty.stdout", r->id, buf, n);
        break;
    }
}

static void close_out(proc *p, int err)
{
    int *fd = err ? &p->err_fd : &p->out_fd;
    struct event **ev = err ? &p->ev_err : &p->ev_out;
    if (*ev) { event_free(*ev); *ev = NULL; }
    if (*fd >= 0) { close(*fd); *fd = -1; }
}

static int outputs_open(const proc *p) { return p->out_fd >= 0 || p->err_fd >= 0; }

/* Read what is available (at most `rounds` chunks); close on EOF/error. */
static void drain(proc *p, int err, int rounds)
{
    char buf[CHUNK_MAX];
    int fd = err ? p->err_fd : p->out_fd;
    while (fd >= 0 && rounds-- > 0) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n > 0) { deliver(p, err, buf, (size_t)n); continue; }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return;
        close_out(p, err);   /* EOF, or EIO once a pty has no slave left */
        return;
    }
}

static void on_out(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    proc *p = arg;
    drain(p, fd == p->err_fd, 4);
    if (p->exited && !outputs_open(p)) proc_finish(p);
}

static void on_grace(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    proc *p = arg;
    if (p->srv->out_stalled && outputs_open(p)) {
        /* the client is slow: keep the output, wait for it */
        struct timeval tv = {0, OUTPUT_GRACE_MS * 1000};
        evtimer_add(p->ev_grace, &tv);
        return;
    }
    drain(p, 0, 64);
    drain(p, 1, 64);
    close_out(p, 0);
    close_out(p, 1);
    proc_finish(p);
}

/* ---- stdin ------------------------------------------------------------- */

static void close_in(proc *p)
{
    srv_unthrottle(p->srv);
    if (p->ev_in) { event_free(p->ev_in); p->ev_in = NULL; }
    if (p->in_fd >= 0) { close(p->in_fd); p->in_fd = -1; }
    if (p->inbuf) evbuffer_drain(p->inbuf, evbuffer_get_length(p->inbuf));
}

static void on_in(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    proc *p = arg;
    while (evbuffer_get_length(p->inbuf) > 0) {
        int n = evbuffer_write(p->inbuf, fd);
        if (n > 0) continue;
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        close_in(p);     /* EPIPE: the command stopped reading */
        return;
    }
    srv_unthrottle(p->srv);
    event_del(p->ev_in);
    if (p->in_eof) {
        if (p->kind == P_TTY) {
            /* a terminal has no EOF of its own: send the EOF character */
            if (write(p->in_fd, "\x04", 1) < 0) {}
        } else {
            close_in(p);
        }
    }
}

void proc_stdin(proc *p, const void *data, size_t n)
{
    if (p->in_fd < 0 || p->in_eof) return;
    evbuffer_add(p->inbuf, data, n);
    on_in(p->in_fd, EV_WRITE, p);
    if (p->ev_in && evbuffer_get_length(p->inbuf) > 0) event_add(p->ev_in, NULL);
    if (p->inbuf && evbuffer_get_length(p->inbuf) > STDIN_QUEUE_MAX && !p->srv->throttled) {
        /* like upstream's bounded queue: stop reading requests until the
         * command drains its stdin */
        p->srv->throttled = 1;
        event_del(p->srv->ev_in);
    }
}

void proc_stdin_eof(proc *p)
{
    if (p->in_fd < 0 || p->in_eof) return;
    p->in_eof = 1;
    on_in(p->in_fd, EV_WRITE, p);
}

void proc_resize(proc *p, int rows, int cols)
{
    if (p->kind != P_TTY || p->out_fd < 0) return;
    struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
    ioctl(p->out_fd, TIOCSWINSZ, &ws);   /* the kernel sends SIGWINCH */
}

/* ---- termination ------------------------------------------------------- */

/* Signal the process group.  Right after fork the child has not called
 * setsid yet and its group does not exist (ESRCH): then the child itself,
 * whose signals are blocked until then, gets it pending. */
static void signal_proc(proc *p, int sig)
{
    if (kill(-p->pid, sig) != 0 && errno == ESRCH) kill(p->pid, sig);
}

#define TERM_REPEAT_MS 100

/* During the grace, SIGTERM again every TERM_REPEAT_MS (a process that was
 * still being set up, bubblewrap's included, may have missed the first);
 * SIGKILL when the grace is over. */
static void on_kill(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    proc *p = arg;
    if (p->exited) return;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long left = (p->kill_at.tv_sec - now.tv_sec) * 1000 + (p->kill_at.tv_nsec - now.tv_nsec) / 1000000;
    if (left <= 0) { signal_proc(p, SIGKILL); return; }
    signal_proc(p, SIGTERM);
    long ms = left < TERM_REPEAT_MS ? left : TERM_REPEAT_MS;
    struct timeval tv = {0, ms * 1000};
    evtimer_add(p->ev_kill, &tv);
}

void proc_kill(proc *p, double grace)
{
    if (p->exited) return;
    p->killed = 1;
    if (grace <= 0) { signal_proc(p, SIGKILL); return; }
    signal_proc(p, SIGTERM);
    signal_proc(p, SIGCONT);
    if (!p->ev_kill) p->ev_kill = evtimer_new(p->srv->base, on_kill, p);
    long gms = (long)(grace * 1000);
    clock_gettime(CLOCK_MONOTONIC, &p->kill_at);
    p->kill_at.tv_sec += gms / 1000;
    p->kill_at.tv_nsec += (gms % 1000) * 1000000;
    if (p->kill_at.tv_nsec >= 1000000000) { p->kill_at.tv_sec++; p->kill_at.tv_nsec -= 1000000000; }
    long ms = gms < TERM_REPEAT_MS ? gms : TERM_REPEAT_MS;
    struct timeval tv = {0, ms * 1000};
    evtimer_add(p->ev_kill, &tv);
}

void proc_detach(proc *p)
{
    if (p->r) { p->r->proc = NULL; p->r = NULL; }
}

void procs_output_pause(server *s, int pause)
{
    for (proc *p = s->procs; p; p = p->next) {
        if (p->ev_out) { if (pause) event_del(p->ev_out); else event_add(p->ev_out, NULL); }
        if (p->ev_err) { if (pause) event_del(p->ev_err); else event_add(p->ev_err, NULL); }
    }
}

void procs_kill_all(server *s, double grace)
{
    for (proc *p = s->procs; p; p = p->next) proc_kill(p, grace);
}

static void proc_free(proc *p)
{
    server *s = p->srv;
    if (p->prev) p->prev->next = p->next; else s->procs = p->next;
    if (p->next) p->next->prev = p->prev;
    close_out(p, 0);
    close_out(p, 1);
    close_in(p);
    if (p->ev_kill) event_free(p->ev_kill);
    if (p->ev_grace) event_free(p->ev_grace);
    if (p->inbuf) evbuffer_free(p->inbuf);
    if (p->acc_out) evbuffer_free(p->acc_out);
    if (p->acc_err) evbuffer_free(p->acc_err);
    free(p);
}

static void proc_finish(proc *p)
{
    server *s = p->srv;
    int code = WIFEXITED(p->status) ? WEXITSTATUS(p->status)
             : WIFSIGNALED(p->status) ? 128 + WTERMSIG(p->status) : -1;
    int64_t ms = elapsed_ms(&p->t0);
    if (p->killed) kill(-p->pid, SIGKILL);   /* stragglers of a stopped group */
    if (p->kind == P_ENTRY && s->vm) {
        vm_log(s->vm, "entrypoint exited with code %d", code);
        if (s->vm->entry == p) s->vm->entry = NULL;
    }
    req *r = p->r;
    if (r) {
        jw w;
        jw_init(&w);
        srv_result_start(&w, r->id);
        jw_obj(&w);
        jw_key(&w, "exit_code"); jw_int(&w, code);
        if (p->kind == P_EXEC) {
            jw_key(&w, "stdout");
            jw_b64(&w, evbuffer_pullup(p->acc_out, -1), evbuffer_get_length(p->acc_out));
            jw_key(&w, "stderr");
            jw_b64(&w, evbuffer_pullup(p->acc_err, -1), evbuffer_get_length(p->acc_err));
        }
        jw_key(&w, "duration_ms"); jw_int(&w, ms);
        jw_obj_end(&w);
        srv_result_end(s, &w);
        jw_free(&w);
        proc_detach(p);
    }
    proc_free(p);
    if (r) req_done(r);
    else srv_progress(s);
}

void procs_reap(server *s)
{
    int st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        proc *p;
        for (p = s->procs; p && p->pid != pid; p = p->next) {}
        if (!p) continue;
        p->exited = 1;
        p->status = st;
        if (p->ev_kill) evtimer_del(p->ev_kill);
        drain(p, 0, 16);
        drain(p, 1, 16);
        if (!outputs_open(p)) { proc_finish(p); continue; }
        p->ev_grace = evtimer_new(s->base, on_grace, p);
        struct timeval tv = {0, OUTPUT_GRACE_MS * 1000};
        evtimer_add(p->ev_grace, &tv);
    }
}

/* ---- spawning ------------------------------------------------------------ */

/* One field-separated line of the sandbox's /etc/passwd or /etc/group
 * whose first (name) or third (id) field matches; fields split in place. */
static int etc_lookup(vm *v, const char *file, const char *name, long id, char *line, size_t cap,
                      char *fields[5])
{
    char *path = NULL;
    if (asprintf(&path, "%s/%s", v->etc_dir, file) < 0) return -1;
    FILE *f = fopen(path, "r");
    free(path);
    if (!f) return -1;
    int found = -1;
    while (found && fgets(line, (int)cap, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *c = line;
        for (int i = 0; i < 5; i++) {     /* the last one holds the rest */
            fields[i] = c;
            c = c && i < 4 ? strchr(c, ':') : NULL;
            if (c) *c++ = '\0';
        }
        if (!fields[2]) continue;
        char *e;
        long fid = strtol(fields[2], &e, 10);
        if (name ? !strcmp(fields[0], name) : (*fields[2] && !*e && fid == id)) found = 0;
    }
    fclose(f);
    return found;
}

static int parse_num(const char *s, long *out)
{
    char *e;
    long n = strtol(s, &e, 10);
    if (!*s || *e || n < 0) return -1;
    *out = n;
    return 0;
}

/* user: "name", "uid", "uid:gid" or "name:group", resolved in the
 * sandbox's own /etc/passwd and /etc/group (as the guest agent does).
 * groups: the primary gid plus every group listing the user, as "a,b". */
static int resolve_user(vm *v, const char *user, uid_t *uid, gid_t *gid, char groups[256], char **err)
{
    char *u = strdup(user), *g = strchr(u, ':'), line[1024], *f[5];
    if (g) *g++ = '\0';
    long n;
    const char *uname = NULL;
    char namebuf[256] = "";
    if (parse_num(u, &n) == 0) {
        *uid = (uid_t)n;
        *gid = (gid_t)n;
        if (etc_lookup(v, "passwd", NULL, n, line, sizeof line, f) == 0 && f[3] && parse_num(f[3], &n) == 0) {
            *gid = (gid_t)n;
            snprintf(namebuf, sizeof namebuf, "%s", f[0]);
            uname = namebuf;
        }
    } else {
        if (etc_lookup(v, "passwd", u, 0, line, sizeof line, f) != 0 || !f[3] || parse_num(f[2], &n) != 0) {
            if (asprintf(err, "unable to find user %s", u) < 0) *err = NULL;
            free(u);
            return -1;
        }
        *uid = (uid_t)n;
        *gid = parse_num(f[3], &n) == 0 ? (gid_t)n : 0;
        uname = u;
    }
    if (g && *g) {
        if (parse_num(g, &n) == 0) {
            *gid = (gid_t)n;
        } else if (etc_lookup(v, "group", g, 0, line, sizeof line, f) == 0 && f[2] && parse_num(f[2], &n) == 0) {
            *gid = (gid_t)n;
        } else {
            if (asprintf(err, "unable to find group %s", g) < 0) *err = NULL;
            free(u);
            return -1;
        }
    }
    snprintf(groups, 256, "%u", (unsigned)*gid);
    char *path = NULL;
    FILE *gf = uname && asprintf(&path, "%s/group", v->etc_dir) >= 0 ? fopen(path, "r") : NULL;
    free(path);
    while (gf && fgets(line, sizeof line, gf)) {
        line[strcspn(line, "\n")] = '\0';
        char *c = line, *fld[4] = {0};
        for (int i = 0; i < 4 && c; i++) { fld[i] = c; c = strchr(c, ':'); if (c) *c++ = '\0'; }
        if (!fld[3] || !fld[2] || parse_num(fld[2], &n) != 0 || (gid_t)n == *gid) continue;
        char *save = NULL;
        for (char *m = strtok_r(fld[3], ",", &save); m; m = strtok_r(NULL, ",", &save))
            if (!strcmp(m, uname) && strlen(groups) + 12 < 256) {
                snprintf(groups + strlen(groups), 256 - strlen(groups), ",%ld", n);
                break;
            }
    }
    if (gf) fclose(gf);
    free(u);
    return 0;
}

static char *host_cwd(vm *v, const char *guest)
{
    /* without bwrap the guest tree is not the process's root: run in the
     * host directory that backs the guest working directory */
    char *norm = NULL;
    if (guest_normalize(v, guest, &norm) != 0) return strdup(v->root);
    int fd = vm_open(v, norm, O_PATH | O_DIRECTORY, 0);
    free(norm);
    if (fd < 0) return strdup(v->root);
    char link[64], buf[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return strdup(v->root);
    buf[n] = '\0';
    return strdup(buf);
}

proc *proc_start(server *s, vm *v, req *r, int kind, const exec_params *ep,
                 char **argv_override, char **err)
{
    const char *cwd = ep && ep->working_dir && *ep->working_dir ? ep->working_dir
                    : v->img_workdir && *v->img_workdir ? v->img_workdir
                    : v->workspace_set ? v->workspace : "/";   /* upstream's order */
    const char *user = ep && ep->user && *ep->user ? ep->user : v->img_user;
    sandbox_user su = {0};
    if (user && *user) {
        uid_t uid;
        gid_t gid;
        if (resolve_user(v, user, &uid, &gid, su.groups, err) != 0) return NULL;
        if (uid == geteuid() && gid == getegid()) {
            /* already that user */
        } else if (geteuid() != 0 && uid == 0) {
            /* root was asked for and matchlock-local is not root: the
             * command runs with less privilege than asked, never more */
            vm_log(v, "user %s: matchlock-local is not running as root; the command runs as uid %u",
                   user, (unsigned)geteuid());
        } else if (geteuid() != 0) {
            if (asprintf(err, "cannot run as user %s: matchlock-local is not running as root, so it cannot "
                         "switch users", user) < 0) *err = NULL;
            return NULL;
        } else {
            su.uid = uid;
            su.gid = gid;
            su.active = 1;
        }
    }

    char *shcmd[] = {"/bin/sh", "-c", (char *)(ep && ep->command ? ep->command : ""), NULL};
    char **cmd = argv_override ? argv_override : shcmd;
    int inner_tty = 0;
    char **argv = vm_command_argv(v, cmd, cwd, &su, kind == P_TTY, &inner_tty, err);
    if (!argv) return NULL;
    char *plain_cwd = v->use_bwrap ? NULL : host_cwd(v, cwd);
    char **env = NULL;
    for (char **e = v->env; e && *e; e++) env = strv_push(env, *e);
    if (kind == P_TTY) {
        int has_term = 0;
        for (char **e = env; e && *e; e++) if (!strncmp(*e, "TERM=", 5)) has_term = 1;
        if (!has_term) env = strv_push(env, "TERM=xterm");
    }

    int out[2] = {-1, -1}, errp[2] = {-1, -1}, in[2] = {-1, -1}, master = -1, slave = -1;
    int ok = 1;
    if (kind == P_TTY) {
        struct winsize ws = {.ws_row = (unsigned short)ep->rows, .ws_col = (unsigned short)ep->cols};
        ok = openpty(&master, &slave, NULL, NULL, &ws) == 0;
        if (ok) { fcntl(master, F_SETFD, FD_CLOEXEC); fcntl(slave, F_SETFD, FD_CLOEXEC); }
    } else if (kind != P_ENTRY) {
        ok = pipe2(out, O_CLOEXEC) == 0 && pipe2(errp, O_CLOEXEC) == 0 &&
             (kind != P_PIPE || pipe2(in, O_CLOEXEC) == 0);
    }
    if (!ok || !argv || !env) {
        if (asprintf(err, "cannot start the command: %s", strerror(errno)) < 0) *err = NULL;
        goto fail;
    }

    /* Block signals across fork so that the child cannot run the
     * server's handlers before it resets them. */
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, &old);
    pid_t pid = fork();
    if (pid != 0) sigprocmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        if (asprintf(err, "fork: %s", strerror(errno)) < 0) *err = NULL;
        goto fail;
    }
    if (pid == 0) {
        for (int sig = 1; sig < NSIG; sig++) signal(sig, SIG_DFL);
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        setsid();
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int devnull = open("/dev/null", O_RDWR | O_CLOEXEC); /* dup2 clears CLOEXEC on the copies */
        if (kind == P_TTY) {
            if (!inner_tty) ioctl(slave, TIOCSCTTY, 0);  /* else the init inside takes it */
            dup2(slave, 0); dup2(slave, 1); dup2(slave, 2);
        } else if (kind == P_ENTRY) {
            dup2(devnull, 0); dup2(v->log_fd, 1); dup2(v->log_fd, 2);
        } else {
            dup2(kind == P_PIPE ? in[0] : devnull, 0);
            dup2(out[1], 1);
            dup2(errp[1], 2);
        }
        if (plain_cwd && chdir(plain_cwd) != 0) {}
        extern char **environ;
        environ = env;
        execvp(argv[0], argv);
        dprintf(2, "matchlock-local: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }

    proc *p = calloc(1, sizeof *p);
    p->srv = s;
    p->r = r;
    p->kind = kind;
    p->pid = pid;
    p->out_fd = p->err_fd = p->in_fd = -1;
    p->log_fd = -1;
    clock_gettime(CLOCK_MONOTONIC, &p->t0);
    if (kind == P_TTY) {
        close(slave);
        p->out_fd = master;
        p->in_fd = dup(master);
        fcntl(p->in_fd, F_SETFD, FD_CLOEXEC);
    } else if (kind != P_ENTRY) {
        close(out[1]);
        close(errp[1]);
        p->out_fd = out[0];
        p->err_fd = errp[0];
        if (kind == P_PIPE) { close(in[0]); p->in_fd = in[1]; }
    }
    if (p->out_fd >= 0) {
        set_nonblock(p->out_fd);
        p->ev_out = event_new(s->base, p->out_fd, EV_READ | EV_PERSIST, on_out, p);
        if (!s->out_stalled) event_add(p->ev_out, NULL);
    }
    if (p->err_fd >= 0) {
        set_nonblock(p->err_fd);
        p->ev_err = event_new(s->base, p->err_fd, EV_READ | EV_PERSIST, on_out, p);
        if (!s->out_stalled) event_add(p->ev_err, NULL);
    }
    if (p->in_fd >= 0) {
        set_nonblock(p->in_fd);
        p->inbuf = evbuffer_new();
        p->ev_in = event_new(s->base, p->in_fd, EV_WRITE | EV_PERSIST, on_in, p);
    }
    if (kind == P_EXEC) {
        p->acc_out = evbuffer_new();
        p->acc_err = evbuffer_new();
    }
    p->next = s->procs;
    if (s->procs) s->procs->prev = p;
    s->procs = p;
    if (r) r->proc = p;
    strv_free(argv);
    strv_free(env);
    free(plain_cwd);
    return p;

fail:
    for (int i = 0; i < 2; i++) {
        if (out[i] >= 0) close(out[i]);
        if (errp[i] >= 0) close(errp[i]);
        if (in[i] >= 0) close(in[i]);
    }
    if (master >= 0) close(master);
    if (slave >= 0) close(slave);
    strv_free(argv);
    strv_free(env);
    free(plain_cwd);
    return NULL;
}
