/* Secrets: never in a message, never left behind in freed memory.
 *
 * The heap tests link with -Wl,--wrap=free,--wrap=realloc (CMakeLists.txt,
 * where the linker has --wrap; MLK_TEST_WRAP_FREE says so): while a test
 * has armed the scan, every block the core frees (and every block a realloc
 * would leave behind) is searched for the secret's bytes before it goes
 * back to the allocator.  The client is driven through create against a
 * scripted peer and everything is freed; a single copy found is a failure. */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "e2e_server.h"
#include "matchlock.h"

#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#endif
#endif
#ifndef VALGRIND_MAKE_MEM_DEFINED
#define VALGRIND_MAKE_MEM_DEFINED(p, n) ((void)(p), (void)(n))
#endif

/* A recognisable secret: every copy of it, or of any 63 bytes of a long
 * one made of repeats, holds MARK. */
#define MARK "sk-live-7Qz9XwVb3MarkOfTheSecret"

/* ---- messages ------------------------------------------------------------ */

static void assert_no_mark(const char *what, const char *msg)
{
    cr_assert_not_null(msg, "%s: no message", what);
    cr_assert_null(strstr(msg, "sk-live"), "%s shows the secret: %s", what, msg);
}

Test(secrets, nul_message_names_offset_and_length_not_the_value)
{
    static const char v[] = MARK "\0tail";
    char *msg = NULL;
    cr_assert_eq(mlk_check_cstring("secret value", v, sizeof v - 1, &msg), MLK_EINVAL);
    assert_no_mark("mlk_check_cstring", msg);
    cr_assert(strstr(msg, "secret value"), "%s", msg);
    char where[64];
    snprintf(where, sizeof where, "byte %zu of %zu", strlen(MARK), sizeof v - 1);
    cr_assert(strstr(msg, where), "%s", msg);
    mlk_free(msg);
    cr_assert_eq(mlk_check_cstring("secret value", MARK, strlen(MARK), &msg), 0);
    cr_assert_null(msg);
}

Test(secrets, setter_error_is_read_without_rendering)
{
    mlk_sandbox *sb = mlk_sandbox_new("alpine:latest");
    const char *msg = "x";
    cr_assert_eq(mlk_sandbox_error(sb, &msg), 0);
    cr_assert_null(msg);
    const char *hosts[] = {"api.example.com"};
    cr_assert_eq(mlk_sandbox_add_secret(sb, "API_KEY", MARK, NULL, hosts, 1), 0);
    cr_assert_eq(mlk_sandbox_add_secret(sb, "OTHER", MARK "2", NULL, NULL, 2), MLK_EINVAL);
    cr_assert_eq(mlk_sandbox_error(sb, &msg), MLK_EINVAL);
    assert_no_mark("mlk_sandbox_error", msg);
    cr_assert(strstr(msg, "OTHER"), "%s", msg);
    /* the first failure sticks; create reports the same words */
    cr_assert_eq(mlk_sandbox_set_env(sb, "", "v"), MLK_EINVAL);
    const char *again = NULL;
    cr_assert_eq(mlk_sandbox_error(sb, &again), MLK_EINVAL);
    cr_assert_eq(again, msg);
    char *json = NULL, *pmsg = NULL;
    cr_assert_eq(mlk_sandbox_params_json(sb, 0, &json, NULL, &pmsg), MLK_EINVAL);
    cr_assert_null(json);
    cr_assert_str_eq(pmsg, msg);
    mlk_free(pmsg);
    mlk_sandbox_free(sb);
}

Test(secrets, validation_errors_never_show_the_value)
{
    const char *hosts[] = {"api.example.com"};
    /* no network with secrets; a value with every kind of byte */
    mlk_sandbox *sb = mlk_sandbox_new("alpine:latest");
    mlk_sandbox_add_secret(sb, "API_KEY", MARK "\"\\\n\x01", "PH", hosts, 1);
    mlk_sandbox_set_no_network(sb, 1);
    char *json = NULL, *msg = NULL;
    cr_assert_eq(mlk_sandbox_params_json(sb, 0, &json, NULL, &msg), MLK_ENO_NETWORK_CONFLICT);
    assert_no_mark("no-network conflict", msg);
    mlk_free(msg);
    /* validate only (json NULL): the same verdict, nothing copied out */
    cr_assert_eq(mlk_sandbox_params_json(sb, 0, NULL, NULL, &msg), MLK_ENO_NETWORK_CONFLICT);
    assert_no_mark("no-network conflict (validate only)", msg);
    mlk_free(msg);
    mlk_sandbox_free(sb);
    /* a failure after the secret, in every other check */
    sb = mlk_sandbox_new("alpine:latest");
    mlk_sandbox_add_secret(sb, "API_KEY", MARK, NULL, hosts, 1);
    mlk_sandbox_add_host(sb, "db", "not-an-ip");
    cr_assert_eq(mlk_sandbox_params_json(sb, 0, &json, NULL, &msg), MLK_EINVALID_ADD_HOST);
    assert_no_mark("add-host", msg);
    mlk_free(msg);
    mlk_sandbox_free(sb);
}

/* A value of `reps` MARKs (a long one does not fit the pipe at once). */
static char *secret_value(size_t reps)
{
    size_t n = reps * (sizeof MARK - 1);
    char *v = malloc(n + 1);
    cr_assert_not_null(v);
    for (size_t i = 0; i < reps; i++) memcpy(v + i * (sizeof MARK - 1), MARK, sizeof MARK - 1);
    v[n] = '\0';
    return v;
}

/* Called when the scan is off: the test's own copy is not the core's. */
static void forget(char *v)
{
    memset(v, 0, strlen(v));
    free(v);
}

static void arm(void);
static int disarm(void);

/* Create on c (which is freed) from a builder holding a `reps`-MARK
 * secret (and `workspace` when not NULL), free everything, and return the
 * number of freed blocks that still held the secret.  want_ok: whether the create must succeed (else
 * it must fail); either way no message or stderr tail shows the secret. */
static int create_with_secret(mlk_client *c, const char *workspace, size_t reps, int want_ok)
{
    char *value = secret_value(reps);
    const char *hosts[] = {"api.example.com"};
    arm();
    mlk_sandbox *sb = mlk_sandbox_new("alpine:latest");
    if (workspace) mlk_sandbox_set_workspace(sb, workspace);
    mlk_sandbox_allow_host(sb, "api.example.com");
    cr_assert_eq(mlk_sandbox_add_secret(sb, "API_KEY", value, NULL, hosts, 1), 0);
    mlk_sandbox_set_env(sb, "HOME", "/root"); /* rendered after the secret: the line grows with it inside */
    mlk_result *r = NULL;
    int rc = mlk_create(c, sb, 120000, &r);
    if (want_ok) cr_assert_eq(rc, 0, "create: %s", mlk_result_message(r));
    else cr_assert_neq(rc, 0, "the server took the create");
    assert_no_mark("the create's result", mlk_result_message(r));
    mlk_result_free(r);
    char *tail = mlk_client_stderr_tail(c);
    if (tail) assert_no_mark("the stderr tail", tail);
    mlk_free(tail);
    mlk_sandbox_free(sb);
    r = NULL;
    mlk_close(c, 5000, &r);
    mlk_result_free(r);
    mlk_client_free(c);
    int n = disarm();
    forget(value);
    return n;
}

#ifdef MLK_TEST_WRAP_FREE
#include <malloc.h> /* malloc_usable_size: GNU ld's --wrap means glibc here */

/* ---- the heap scan ------------------------------------------------------- */

void __real_free(void *p);
void *__real_realloc(void *p, size_t n);

static atomic_int armed, hits;
static atomic_size_t scanned;

static void scan(void *p)
{
    size_t n = malloc_usable_size(p);
    VALGRIND_MAKE_MEM_DEFINED(p, n); /* the slack past the requested size */
    atomic_fetch_add(&scanned, 1);
    if (memmem(p, n, MARK, sizeof MARK - 1)) atomic_fetch_add(&hits, 1);
}

void __wrap_free(void *p)
{
    if (p && atomic_load(&armed)) scan(p);
    __real_free(p);
}

/* Armed, a realloc always moves, so the block it leaves is scanned too
 * (a real realloc may leave it behind in the heap, unwiped). */
void *__wrap_realloc(void *p, size_t n)
{
    if (!p || !atomic_load(&armed)) return __real_realloc(p, n);
    if (n == 0) { __wrap_free(p); return NULL; }
    void *q = malloc(n);
    if (!q) return NULL;
    size_t old = malloc_usable_size(p);
    VALGRIND_MAKE_MEM_DEFINED(p, old);
    memcpy(q, p, old < n ? old : n);
    __wrap_free(p);
    return q;
}

static void arm(void)
{
    atomic_store(&hits, 0);
    atomic_store(&scanned, 0);
    atomic_store(&armed, 1);
}

static int disarm(void)
{
    atomic_store(&armed, 0);
    cr_assert_gt(atomic_load(&scanned), 0, "the scan saw no free at all");
    return atomic_load(&hits);
}


/* A peer that answers every request with a VM id, and a client on it. */
static mlk_client *peer_client(void)
{
    static const char script[] =
        "while IFS= read -r line; do "
        "id=$(printf '%s' \"$line\" | sed -n 's/.*\"method\":\"[a-z_]*\",\"id\":\\([0-9]*\\).*/\\1/p'); "
        "[ -n \"$id\" ] || continue; "
        "printf '{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"id\":\"vm-secret-test\"}}\\n' \"$id\"; done";
    mlk_config *cfg = mlk_config_new();
    const char *launcher[] = {"sh", "-c", script, "peer"};
    cr_assert_eq(mlk_config_set_launcher(cfg, launcher, 4), 0);
    mlk_client *c = NULL;
    mlk_result *r = NULL;
    int rc = mlk_client_new(&c, cfg, &r);
    mlk_config_free(cfg);
    cr_assert_eq(rc, 0, "client_new: %s", r ? mlk_result_message(r) : "");
    mlk_result_free(r);
    return c;
}

static void create_and_free(size_t reps)
{
    int n = create_with_secret(peer_client(), NULL, reps, 1);
    cr_assert_eq(n, 0, "%d freed block(s) still held the secret", n);
}

Test(secrets, create_then_free_leaves_no_copy, .timeout = 60)
{
    create_and_free(1);
}

/* 320 KiB: the line grows the writer many times and is sent in pieces */
Test(secrets, long_secret_line_leaves_no_copy, .timeout = 120)
{
    create_and_free(10000);
}

Test(secrets, params_json_growth_leaves_no_copy)
{
    char *value = secret_value(200);
    const char *hosts[] = {"api.example.com"};
    arm();
    mlk_sandbox *sb = mlk_sandbox_new("alpine:latest");
    mlk_sandbox_add_secret(sb, "API_KEY", value, NULL, hosts, 1);
    char *json = NULL;
    size_t len = 0;
    cr_assert_eq(mlk_sandbox_params_json(sb, 0, NULL, NULL, NULL), 0); /* validate only */
    cr_assert_eq(mlk_sandbox_params_json(sb, 0, &json, &len, NULL), 0);
    cr_assert(strstr(json, MARK));
    memset(json, 0, len); /* the caller's copy is the caller's to wipe */
    mlk_free(json);
    mlk_sandbox_free(sb);
    int n = disarm();
    forget(value);
    cr_assert_eq(n, 0, "%d freed block(s) still held the secret", n);
}

Test(secrets, replaced_secret_is_wiped)
{
    char *value = secret_value(1);
    const char *hosts[] = {"api.example.com"};
    arm();
    mlk_sandbox *sb = mlk_sandbox_new("alpine:latest");
    mlk_sandbox_add_secret(sb, "API_KEY", value, NULL, hosts, 1);
    mlk_sandbox_add_secret(sb, "API_KEY", "another", NULL, hosts, 1);
    mlk_sandbox_free(sb);
    int n = disarm();
    forget(value);
    cr_assert_eq(n, 0, "%d freed block(s) still held the secret", n);
}

/* The scan itself works: a block freed with the secret in it is found. */
Test(secrets, the_scan_finds_an_unwiped_block)
{
    arm();
    char *volatile p = strdup("prefix " MARK " suffix");
    free(p);
    cr_assert_eq(disarm(), 1);
}

#else
static void arm(void) {}
static int disarm(void) { return 0; }
#endif /* MLK_TEST_WRAP_FREE */

/* The server refuses the create: neither its answer, nor the stderr tail,
 * nor any freed block shows the secret.  Too long a line (11 MiB: more
 * than matchlock-local's 10 MiB cap, which ends the session with part of
 * the line unsent), and a workspace the server refuses. */
static void refused(const char *workspace, size_t reps)
{
    int n = create_with_secret(e2e_client_from(e2e_config()), workspace, reps, 0);
    cr_assert_eq(n, 0, "%d freed block(s) still held the secret", n);
}

Test(secrets, too_long_for_the_server_never_echoed, .timeout = 120)
{
    refused(NULL, (11u << 20) / (sizeof MARK - 1));
}

Test(secrets, refused_create_never_echoed, .timeout = 120)
{
    refused("relative/workspace", 1); /* the server's to judge: it refuses */
}
