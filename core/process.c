/* process.c - the client configuration, starting the matchlock child, and
 * the CLI side channels (rm, volume ...). */
#include "process.h"
#include "platform.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* ===================================================================== */
/* configuration                                                          */

MLK_API mlk_config *mlk_config_new(void)
{
    mlk_config *c = calloc(1, sizeof *c);
    if (c) c->max_line = MLK_DEFAULT_MAX_LINE;
    return c;
}

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

MLK_API void mlk_config_free(mlk_config *c)
{
    if (!c) return;
    free(c->binary);
    strv_free(c->launcher, c->nlauncher);
    strv_free(c->env, c->nenv);
    free(c);
}

MLK_API int mlk_config_set_binary(mlk_config *c, const char *path)
{
    if (!c || !path || !*path) return MLK_EINVAL;
    char *p = strdup(path);
    if (!p) return MLK_ENOMEM;
    free(c->binary);
    c->binary = p;
    return 0;
}

MLK_API int mlk_config_set_sudo(mlk_config *c, int use_sudo)
{
    if (!c) return MLK_EINVAL;
    c->sudo = use_sudo != 0;
    return 0;
}

static int strv_copy(char ***dst, size_t *ndst, const char *const *src, size_t n)
{
    char **v = NULL;
    if (n) {
        v = calloc(n, sizeof *v);
        if (!v) return MLK_ENOMEM;
        for (size_t i = 0; i < n; i++) {
            if (!src[i] || !(v[i] = strdup(src[i]))) {
                strv_free(v, n);
                return src[i] ? MLK_ENOMEM : MLK_EINVAL;
            }
        }
    }
    strv_free(*dst, *ndst);
    *dst = v;
    *ndst = n;
    return 0;
}

MLK_API int mlk_config_set_launcher(mlk_config *c, const char *const *argv, size_t n)
{
    if (!c || (n && !argv)) return MLK_EINVAL;
    return strv_copy(&c->launcher, &c->nlauncher, argv, n);
}

MLK_API int mlk_config_set_launcher_shell(mlk_config *c, int through_shell)
{
    if (!c) return MLK_EINVAL;
    c->launcher_shell = through_shell != 0;
    return 0;
}

MLK_API int mlk_config_set_env(mlk_config *c, const char *name, const char *value)
{
    if (!c || !name || !*name || strchr(name, '=') || !value) return MLK_EINVAL;
    char *kv = xasprintf("%s=%s", name, value);
    if (!kv) return MLK_ENOMEM;
    char **v = realloc(c->env, (c->nenv + 1) * sizeof *v);
    if (!v) { free(kv); return MLK_ENOMEM; }
    c->env = v;
    c->env[c->nenv++] = kv;
    return 0;
}

MLK_API int mlk_config_set_cli_timeout_ms(mlk_config *c, int64_t ms)
{
    if (!c || ms < 0) return MLK_EINVAL;
    c->cli_timeout_ms = ms;
    return 0;
}

MLK_API int mlk_config_set_max_line(mlk_config *c, uint64_t bytes)
{
    if (!c || bytes < 1024) return MLK_EINVAL;
    c->max_line = bytes;
    return 0;
}

mlk_config *config_copy(const mlk_config *src)
{
    mlk_config *c = mlk_config_new();
    if (!c) return NULL;
    if (!src) return c;
    c->sudo = src->sudo;
    c->launcher_shell = src->launcher_shell;
    c->max_line = src->max_line;
    c->cli_timeout_ms = src->cli_timeout_ms;
    if ((src->binary && !(c->binary = strdup(src->binary))) ||
        strv_copy(&c->launcher, &c->nlauncher, (const char *const *)src->launcher, src->nlauncher) ||
        strv_copy(&c->env, &c->nenv, (const char *const *)src->env, src->nenv)) {
        mlk_config_free(c);
        return NULL;
    }
    return c;
}

const char *config_binary(const mlk_config *c)
{
    if (c && c->binary) return c->binary;
    const char *e = getenv("MATCHLOCK_BIN");
    return e && *e ? e : "matchlock";
}

/* ===================================================================== */
/* spawning                                                               */

/* One word in POSIX shell single quotes: 'it'\''s' for it's. */
static size_t shell_quoted_len(const char *s)
{
    size_t n = 3; /* two quotes and the NUL */
    for (; *s; s++) n += *s == '\'' ? 4 : 1;
    return n;
}

static char *shell_quote_into(char *d, const char *s)
{
    *d++ = '\'';
    for (; *s; s++) {
        if (*s == '\'') { memcpy(d, "'\\''", 4); d += 4; }
        else *d++ = *s;
    }
    *d++ = '\'';
    *d++ = '\0';
    return d;
}

/* argv = launcher... [sudo] binary args...; free with free().  The strings
 * are borrowed, except under launcher_shell (with a launcher): the words
 * after the launcher are then quoted into the same allocation, so that a
 * remote shell (ssh joins its arguments and hands them to one) gets each
 * one back as the single word it was. */
static char **build_argv(const mlk_config *c, const char *const *args, size_t nargs)
{
    size_t nl = c ? c->nlauncher : 0;
    const char *words[2];
    size_t nw = 0;
    if (c && c->sudo) words[nw++] = "sudo";
    words[nw++] = config_binary(c);
    int quote = nl && c->launcher_shell;
    size_t slots = nl + nw + nargs + 1, text = 0;
    for (size_t i = 0; quote && i < nw + nargs; i++)
        text += shell_quoted_len(i < nw ? words[i] : args[i - nw]);
    char **argv = malloc(slots * sizeof *argv + text);
    if (!argv) return NULL;
    char *t = (char *)(argv + slots);
    size_t k = 0;
    for (size_t i = 0; i < nl; i++) argv[k++] = c->launcher[i];
    for (size_t i = 0; i < nw + nargs; i++) {
        const char *w = i < nw ? words[i] : args[i - nw];
        if (quote) {
            argv[k++] = t;
            t = shell_quote_into(t, w);
        } else {
            argv[k++] = (char *)w;
        }
    }
    argv[k] = NULL;
    return argv;
}

/* environ + config env (later entries win for getenv in most programs;
 * we replace same-name entries to be sure).  Free the array only. */
static char **build_envp(const mlk_config *c)
{
    size_t n = 0;
    while (environ[n]) n++;
    size_t ne = c ? c->nenv : 0;
    char **envp = calloc(n + ne + 1, sizeof *envp);
    if (!envp) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int overridden = 0;
        for (size_t j = 0; j < ne && !overridden; j++) {
            size_t kl = (size_t)(strchr(c->env[j], '=') - c->env[j]);
            overridden = strncmp(environ[i], c->env[j], kl + 1) == 0;
        }
        if (!overridden) envp[k++] = environ[i];
    }
    for (size_t j = 0; j < ne; j++) envp[k++] = c->env[j];
    envp[k] = NULL;
    return envp;
}

int spawn_child(const mlk_config *c, const char *const *args, size_t nargs, int want_stdin,
                pid_t *pid, int *in_fd, int *out_fd, int *err_fd, char **msg)
{
    int pin[2] = {-1, -1}, pout[2] = {-1, -1}, perr[2] = {-1, -1};
    char **argv = build_argv(c, args, nargs);
    char **envp = build_envp(c);
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    int rc = MLK_ENOMEM;
    *msg = NULL;
    if (!argv || !envp) goto out;
    /* the child's stdin is a socket: the client sends with MSG_NOSIGNAL, so
     * a dead child can never raise SIGPIPE in whichever thread writes */
    if ((want_stdin && plat_socketpair_cloexec(pin) != 0) || plat_pipe_cloexec(pout) != 0 ||
        plat_pipe_cloexec(perr) != 0) {
        int e = errno;
        *msg = xasprintf("cannot create the child's pipes: %s%s", strerror(e),
                         e == EMFILE || e == ENFILE ? " (the process is out of file descriptors)" : "");
        rc = MLK_ESPAWN;
        goto out;
    }
    posix_spawn_file_actions_init(&fa);
    if (want_stdin) posix_spawn_file_actions_adddup2(&fa, pin[0], 0);
    else posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pout[1], 1);
    posix_spawn_file_actions_adddup2(&fa, perr[1], 2);
    posix_spawnattr_init(&at);
    sigset_t none, def;
    sigemptyset(&none);
    sigemptyset(&def);
    sigaddset(&def, SIGPIPE);
    sigaddset(&def, SIGINT);
    sigaddset(&def, SIGTERM);
    sigaddset(&def, SIGCHLD);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &def);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    int err = posix_spawnp(pid, argv[0], &fa, &at, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (err != 0) {
        *msg = xasprintf("could not start '%s': %s (set MATCHLOCK_BIN or the configured binary to the matchlock executable)",
                         argv[0], strerror(err));
        rc = MLK_ESPAWN;
        goto out;
    }
    if (want_stdin) { close(pin[0]); pin[0] = -1; plat_nosigpipe(pin[1]); *in_fd = pin[1]; pin[1] = -1; }
    close(pout[1]); pout[1] = -1; *out_fd = pout[0]; pout[0] = -1;
    close(perr[1]); perr[1] = -1; *err_fd = perr[0]; perr[0] = -1;
    rc = 0;
out:
    for (int i = 0; i < 2; i++) {
        if (pin[i] >= 0) close(pin[i]);
        if (pout[i] >= 0) close(pout[i]);
        if (perr[i] >= 0) close(perr[i]);
    }
    free(argv);
    free(envp);
    return rc;
}

int wait_child(pid_t pid, int timeout_ms, int *status)
{
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid) return 0;
        if (r < 0 && errno != EINTR) return -1; /* already reaped elsewhere */
        clock_gettime(CLOCK_MONOTONIC, &now);
        long el = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (timeout_ms >= 0 && el >= timeout_ms) break;
        struct timespec d = {0, el < 50 ? 1000000 : 10000000};
        nanosleep(&d, NULL);
    }
    kill(pid, SIGKILL);
    while (waitpid(pid, status, 0) < 0 && errno == EINTR) {}
    return 1;
}

/* ===================================================================== */
/* CLI side channels                                                      */

static void buf_add(char **b, size_t *n, size_t *cap, const char *p, size_t k)
{
    if (*n + k + 1 > *cap) {
        size_t nc = *cap ? *cap * 2 : 1024;
        while (nc < *n + k + 1) nc *= 2;
        char *q = realloc(*b, nc);
        if (!q) return;
        *b = q;
        *cap = nc;
    }
    memcpy(*b + *n, p, k);
    *n += k;
    (*b)[*n] = '\0';
}

int run_cli(const mlk_config *c, const char *const *args, size_t nargs, int fail_code, mlk_result *r)
{
    pid_t pid;
    int in_fd = -1, out_fd = -1, err_fd = -1;
    char *msg = NULL;
    int rc = spawn_child(c, args, nargs, 0, &pid, &in_fd, &out_fd, &err_fd, &msg);
    if (rc != 0) {
        result_fail(r, rc, "%s", msg ? msg : mlk_strerror(rc));
        free(msg);
        return rc;
    }
    char *ob = NULL, *eb = NULL;
    size_t on = 0, oc = 0, en = 0, ec = 0;
    struct pollfd p[2] = {{.fd = out_fd, .events = POLLIN}, {.fd = err_fd, .events = POLLIN}};
    int open_fds = 2, timed_out = 0, too_much = 0;
    int64_t limit = c ? c->cli_timeout_ms : 0;
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char tmp[8192];
    while (open_fds > 0 && !too_much) {
        int wait = -1;
        if (limit > 0) {
            clock_gettime(CLOCK_MONOTONIC, &now);
            int64_t left = limit - ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000);
            if (left <= 0) { timed_out = 1; break; }
            wait = (int)left;
        }
        if (poll(p, 2, wait) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        for (int i = 0; i < 2; i++) {
            if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            ssize_t k = read(p[i].fd, tmp, sizeof tmp);
            if (k > 0) {
                if (i == 0 && on + (size_t)k > CLI_OUTPUT_MAX) too_much = 1;
                else if (i == 0) buf_add(&ob, &on, &oc, tmp, (size_t)k);
                else if (en < CLI_STDERR_MAX) buf_add(&eb, &en, &ec, tmp, (size_t)k);
            } else if (k == 0 || errno != EINTR) {
                close(p[i].fd);
                p[i].fd = -1;
                open_fds--;
            }
        }
    }
    for (int i = 0; i < 2; i++)
        if (p[i].fd >= 0) close(p[i].fd);
    int status = 0;
    int waited = wait_child(pid, timed_out || too_much ? 0 : -1, &status); /* a late or flooding command is killed */
    if (too_much) {
        free(ob);
        free(eb);
        return result_fail(r, MLK_EPROTO, "'%s %s' printed more than %d bytes on stdout and was killed",
                           config_binary(c), nargs ? args[0] : "", CLI_OUTPUT_MAX);
    }
    if (timed_out) {
        free(ob);
        free(eb);
        return result_fail(r, MLK_ETIMEDOUT, "'%s %s' did not finish within %lld ms and was killed",
                           config_binary(c), nargs ? args[0] : "", (long long)limit);
    }
    result_set_copy(r, 'd', ob ? ob : "", on);
    result_set_copy(r, 'e', eb ? eb : "", en);
    if (waited < 0) { /* success cannot be told from failure: never take it for success */
        struct sigaction sa;
        int ignored = sigaction(SIGCHLD, NULL, &sa) == 0 &&
                      ((!(sa.sa_flags & SA_SIGINFO) && sa.sa_handler == SIG_IGN) || (sa.sa_flags & SA_NOCLDWAIT));
        result_fail(r, fail_code, "'%s %s' ran, but its exit status cannot be known: %s", config_binary(c),
                    nargs ? args[0] : "",
                    ignored ? "SIGCHLD is ignored in this process (SIG_IGN or SA_NOCLDWAIT), so the system "
                              "discards every child's exit status; set SIGCHLD back to SIG_DFL (or to a handler "
                              "that does not reap) around calls that run the matchlock command"
                            : "something else in this process reaped the command (a SIGCHLD handler or a "
                              "waitpid(-1) loop) before the library could read its exit status");
        free(ob);
        free(eb);
        return r->status;
    }
    r->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (r->exit_code != 0) {
        while (en > 0 && (eb[en - 1] == '\n' || eb[en - 1] == '\r')) eb[--en] = '\0';
        result_fail(r, fail_code, "'%s %s' failed with exit code %d: %s", config_binary(c),
                    nargs ? args[0] : "", r->exit_code, en ? eb : "(no output)");
    }
    free(ob);
    free(eb);
    return r->status;
}
