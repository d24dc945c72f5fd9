/* e2e_server.c - the server the end-to-end tests run against, and the one
 * table of what it may not show (tests/e2e/capabilities.tsv, e2e_server.h). */
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

#ifndef MLK_SOURCE_DIR
#define MLK_SOURCE_DIR "."
#endif

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
        cr_assert(!strcmp(b, "local") || !strcmp(b, "matchlock"),
                  "MLK_E2E_BACKEND=%s: the backends are \"local\" and \"matchlock\"", b);
        snprintf(name, sizeof name, "%s", b);
        return name;
    }
    /* matchlock-local's `version` says it is the local backend
     * ("matchlock 0.1.0-local (commit: ...)"); the binary's name never counts */
    char cmd[1200], line[128] = "";
    snprintf(cmd, sizeof cmd, "'%s' version 2>/dev/null", e2e_server());
    FILE *p = popen(cmd, "r");
    if (p) {
        if (!fgets(line, sizeof line, p)) line[0] = '\0';
        pclose(p);
    }
    snprintf(name, sizeof name, "%s", strstr(line, "-local") ? "local" : "matchlock");
    return name;
}

int e2e_is_local(void) { return strcmp(e2e_backend(), "local") == 0; }

/* Whether word is one of the comma-separated items of list. */
static int listed(const char *list, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = list; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && !strncmp(p, word, n)) return 1;
        p = end ? end + 1 : NULL;
    }
    return 0;
}

const char *e2e_lacks(const char *cap)
{
    /* tests/e2e/capabilities.tsv: capability, backends lacking it, why */
    static char why[512];
    const char *path = MLK_SOURCE_DIR "/tests/e2e/capabilities.tsv";
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "cannot read the capability table %s", path);
    char line[1024];
    int found = 0, lacking = 0;
    while (!found && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        char *t1 = strchr(line, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
        if (line[0] == '#' || !t2) continue;
        *t1 = *t2 = '\0';
        if (strcmp(line, cap) != 0) continue;
        found = 1;
        lacking = listed(t1 + 1, e2e_backend()) || listed(getenv("MLK_E2E_LACKS"), cap);
        snprintf(why, sizeof why, "%s", t2 + 1);
    }
    fclose(f);
    cr_assert(found, "unknown capability %s (not in %s)", cap, path);
    return lacking ? why : NULL;
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
    const char *shared = getenv("MLK_E2E_STATE_DIR");
    if (shared && *shared) return shared;
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

/* matchlock-local keeps its state under $XDG_STATE_HOME, upstream under
 * $HOME/.matchlock */
void e2e_setenv(const char *state)
{
    setenv("XDG_STATE_HOME", state, 1);
    setenv("HOME", state, 1);
}

mlk_config *e2e_config(void)
{
    mlk_config *cfg = mlk_config_new();
    mlk_config_set_binary(cfg, e2e_server());
    mlk_config_set_env(cfg, "XDG_STATE_HOME", e2e_state_dir());
    mlk_config_set_env(cfg, "HOME", e2e_state_dir());
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
