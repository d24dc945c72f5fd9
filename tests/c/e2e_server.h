/* e2e_server.h - which server the end-to-end tests talk to, and what it can
 * show.
 *
 * The end-to-end tests run against the server named by $MLK_E2E_SERVER
 * (default: the matchlock-local this tree built).  scripts/test-all.sh runs
 * them twice: against matchlock-local, and against the conformance peer
 * (upstream's own `matchlock` CLI and JSON-RPC handler with a process-backed
 * VM) when it is available.  $MLK_E2E_BACKEND says which kind of server it
 * is ("local" or "upstream"); without it the server's `version` output
 * decides.
 *
 * Tests are backend-neutral where they can be.  What only one backend can
 * show is listed once, in the capability table in e2e_server.c, with the
 * reason; a test that needs such a behaviour starts with E2E_NEEDS(cap). */
#ifndef MLK_TEST_E2E_SERVER_H
#define MLK_TEST_E2E_SERVER_H

#include "matchlock.h"

typedef enum e2e_cap {
    E2E_CMD_FILE_EVENTS, /* VFS events and hooks for a command's own writes */
    E2E_NET_TRAFFIC,     /* network hooks and allow-lists on real traffic */
    E2E_ISOLATION,       /* bubblewrap isolation of commands */
    E2E_CLOSE_STOPS_COMMANDS, /* close stops commands still running */
    E2E_LOCAL_BEHAVIOUR, /* where matchlock-local deliberately or not yet behaves like upstream */
    E2E_CAP_COUNT
} e2e_cap;

/* The server binary ($MLK_E2E_SERVER, else the built matchlock-local). */
const char *e2e_server(void);
/* "local" or "upstream". */
const char *e2e_backend(void);
int e2e_is_local(void);
/* Whether the server shows cap; why not (NULL when it does). */
const char *e2e_lacks(e2e_cap cap);
/* A state directory private to this test process; the server's HOME and
 * XDG_STATE_HOME point at it. */
const char *e2e_state_dir(void);
/* The directory that holds one VM's state on this backend, under the state
 * directory `state` (NULL: e2e_state_dir()). */
void e2e_vm_dir(char *buf, size_t size, const char *state, const char *vm_id);
/* Point the environment of this (child) process at the state directory
 * `state`, as e2e_config() does for a client's server. */
void e2e_setenv(const char *state);
/* A config for the server: binary, HOME and XDG_STATE_HOME. */
mlk_config *e2e_config(void);
/* A client started from `cfg` (which is freed); the test fails, with the
 * core's message, when it cannot start. */
mlk_client *e2e_client_from(mlk_config *cfg);
/* Create an alpine:latest sandbox on c within timeout_ms, or fail the test
 * saying `what` and the core's message. */
void e2e_create(mlk_client *c, int64_t timeout_ms, const char *what);

/* Skip the calling test, with the table's reason, when the server cannot
 * show cap. */
#define E2E_NEEDS(cap)                                                                              \
    do {                                                                                            \
        const char *why_ = e2e_lacks(cap);                                                          \
        if (why_) cr_skip_test("%s backend: %s", e2e_backend(), why_);                             \
    } while (0)

#endif
