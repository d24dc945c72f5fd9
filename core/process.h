/* process.h - configuration, starting processes, CLI side channels. */
#ifndef MLK_PROCESS_H
#define MLK_PROCESS_H

#include "internal.h"

#include <sys/types.h>

struct mlk_config {
    char *binary;            /* NULL: $MATCHLOCK_BIN or "matchlock" */
    int sudo;
    char **launcher;
    size_t nlauncher;
    int launcher_shell;      /* the launcher runs its words through a shell: quote them */
    char **env;              /* "NAME=VALUE" */
    size_t nenv;
    uint64_t max_line;
    int64_t cli_timeout_ms;  /* deadline of CLI side channels; 0 = none */
};

mlk_config *config_copy(const mlk_config *src);   /* src may be NULL */
const char *config_binary(const mlk_config *c);

/* Start `launcher... [sudo] binary args...` with pipes (the words after
 * the launcher shell-quoted when launcher_shell is set).  want_stdin 0
 * gives the child /dev/null.  Returns 0 or MLK_ESPAWN/MLK_ENOMEM with *msg
 * (malloc'd) saying why. */
int spawn_child(const mlk_config *c, const char *const *args, size_t nargs, int want_stdin,
                pid_t *pid, int *in_fd, int *out_fd, int *err_fd, char **msg);
/* Wait for pid up to timeout_ms (-1: forever), then SIGKILL and reap.
 * Returns 0 when it exited by itself, 1 when killed, -1 when its status
 * cannot be known (someone else reaped it, or SIGCHLD is ignored). */
int wait_child(pid_t pid, int timeout_ms, int *status);
/* Run a CLI command to completion: stdout into r's data, stderr into r's
 * stderr; a non-zero exit, or one that cannot be known, is fail_code with
 * stderr (or the reason) in the message. */
int run_cli(const mlk_config *c, const char *const *args, size_t nargs, int fail_code, mlk_result *r);

#endif
