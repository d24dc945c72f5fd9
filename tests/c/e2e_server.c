/* e2e_server.c - the server the end-to-end tests run against, and the one
 * table of what each backend can show (e2e_server.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "e2e_server.h"

#include <criterion/criterion.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef MLK_LOCAL_BIN
#define MLK_LOCAL_BIN "matchlock-local"
#endif

/* What a backend cannot show, and why.  The conformance peer is upstream's
 * own handler with a process-backed VM (its README); matchlock-local shows
 * everything in this list. */
static const char *const conformance_lacks[E2E_CAP_COUNT] = {
    [E2E_CMD_FILE_EVENTS] = "no FUSE layer: a command's own writes produce no VFS events "
                            "(only the SDK's file calls on VFS mounts do)",
    [E2E_NET_TRAFFIC] = "no network proxy runs: no network events, hooks or allow-list enforcement on traffic",
    [E2E_ISOLATION] = "commands are plain processes (no namespaces, no resource limits)",
    [E2E_CLOSE_STOPS_COMMANDS] = "upstream's close waits for in-flight requests to end, so a close while a "
                                 "command runs ends at the SDK's close deadline (the server is killed)",
    [E2E_LOCAL_BEHAVIOUR] = "this checks matchlock-local's own behaviour where upstream's differs "
                            "(docs/testing.md, \"matchlock-local and upstream\", lists each difference)",
};

const char *e2e_server(void)
{
    const char *s = getenv("MLK_E2E_SERVER");
    return s && *s ? s : MLK_LOCAL_BIN;
}

const char *e2e_backend(void)
{
    static char name[32];
    if (name[0]) return name;
    const char *b = getenv("MLK_E2E_BACKEND");
    if (b && *b) {
        snprintf(name, sizeof name, "%s", b);
        return name;
    }
    /* matchlock-local's `version` says it is the local backend
     * ("matchlock 0.1.0-local (commit: ...)") */
    char cmd[1200], line[128] = "";
    snprintf(cmd, sizeof cmd, "'%s' version 2>/dev/null", e2e_server());
    FILE *p = popen(cmd, "r");
    if (p) {
        if (!fgets(line, sizeof line, p)) line[0] = '\0';
        pclose(p);
    }
    snprintf(name, sizeof name, "%s", strstr(line, "-local") ? "local" : "conformance");
    return name;
}

int e2e_is_local(void) { return strcmp(e2e_backend(), "local") == 0; }

const char *e2e_lacks(e2e_cap cap)
{
    if (e2e_is_local() || cap < 0 || cap >= E2E_CAP_COUNT) return NULL;
    return conformance_lacks[cap];
}

static char state_dir[256];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

static void remove_state(void)
{
    if (state_dir[0]) nftw(state_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *e2e_state_dir(void)
{
    if (!state_dir[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(state_dir, sizeof state_dir, "%s/mlk-e2e-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(state_dir)) {
            perror("mkdtemp");
            abort();
        }
        atexit(remove_state);
    }
    return state_dir;
}

void e2e_vm_dir(char *buf, size_t size, const char *state, const char *vm_id)
{
    if (!state) state = e2e_state_dir();
    if (e2e_is_local()) snprintf(buf, size, "%s/matchlock-local/vms/%s", state, vm_id);
    else snprintf(buf, size, "%s/.matchlock/vms/%s", state, vm_id);
}

void e2e_setenv(const char *state)
{
    char peer[300];
    snprintf(peer, sizeof peer, "%s/confpeer", state);
    setenv("XDG_STATE_HOME", state, 1);
    setenv("HOME", state, 1);
    setenv("CONFPEER_STATE", peer, 1);
}

mlk_config *e2e_config(void)
{
    mlk_config *cfg = mlk_config_new();
    char peer[300];
    snprintf(peer, sizeof peer, "%s/confpeer", e2e_state_dir());
    mlk_config_set_binary(cfg, e2e_server());
    mlk_config_set_env(cfg, "XDG_STATE_HOME", e2e_state_dir());
    mlk_config_set_env(cfg, "HOME", e2e_state_dir());
    mlk_config_set_env(cfg, "CONFPEER_STATE", peer); /* the conformance peer's VM roots */
    return cfg;
}

mlk_client *e2e_client_from(mlk_config *cfg)
{
    mlk_client *c = NULL;
    mlk_result *r = NULL;
    cr_assert_eq(mlk_client_new(&c, cfg, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    mlk_config_free(cfg);
    return c;
}

void e2e_create(mlk_client *c, int64_t timeout_ms, const char *what)
{
    mlk_sandbox *sb = mlk_sandbox_new("alpine:latest");
    mlk_result *r = NULL;
    cr_assert_eq(mlk_create(c, sb, timeout_ms, &r), 0, "%s: %s", what, mlk_result_message(r));
    mlk_result_free(r);
    mlk_sandbox_free(sb);
}
