/* e2e_server.h - which server the end-to-end tests talk to, and what it can
 * show.
 *
 * The end-to-end tests run against the server named by $MLK_E2E_SERVER
 * (default: the matchlock-local this tree built); `make test-e2e
 * MATCHLOCK_BIN=...` (scripts/test-e2e.sh) names one.  $MLK_E2E_BACKEND says
 * which kind of server it is ("local" or "matchlock"); without it the
 * server's `version` output decides.
 *
 * Tests are backend-neutral where they can be.  What a server may not show
 * is listed once for the four languages, with the reason, in
 * tests/e2e/capabilities.tsv; a test that needs such a capability starts
 * with E2E_NEEDS("name"). */
#ifndef MLK_TEST_E2E_SERVER_H
#define MLK_TEST_E2E_SERVER_H

#include "matchlock.h"

/* The server binary ($MLK_E2E_SERVER, else the built matchlock-local). */
const char *e2e_server(void);
/* "local" or "matchlock". */
const char *e2e_backend(void);
int e2e_is_local(void);
/* Why the server cannot show capability cap (a name of
 * tests/e2e/capabilities.tsv), NULL when it can; an unknown name fails the
 * test. */
const char *e2e_lacks(const char *cap);
/* A state directory for this test process ($MLK_E2E_STATE_DIR, else a
 * private one removed at exit); the server's HOME and XDG_STATE_HOME point
 * at it. */
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
