/* test_vectors.c - run the shared vectors (tests/vectors) through the
 * public API: create.jsonl through the builder, port_forward.jsonl through
 * mlk_port_forward_parse, allow_list.jsonl through mlk_allow_list_normalize,
 * errors.jsonl through mlk_error_class/_category/_hint.
 *
 * Each file is one test that runs every case and names every failing case
 * in its message.  The vectors directory is $MLK_VECTORS_DIR or
 * MLK_SOURCE_DIR "/tests/vectors"; a missing file fails the test. */
#include <criterion/criterion.h>

#include "internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef MLK_SOURCE_DIR
#define MLK_SOURCE_DIR "."
#endif

/* ---- loading ----------------------------------------------------------- */

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n - 1 == 0) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) { free(buf); buf = NULL; break; }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf) buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

static char *vectors_path(const char *file)
{
    const char *dir = getenv("MLK_VECTORS_DIR");
    if (!dir || !*dir) dir = MLK_SOURCE_DIR "/tests/vectors";
    return xasprintf("%s/%s", dir, file);
}

/* Failures of one file, collected into one message. */
typedef struct {
    char *text;
    size_t len;
    int nfail, ncases;
} report;

static void report_add(report *r, const char *name, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void report_add(report *r, const char *name, const char *fmt, ...)
{
    char *why = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&why, fmt, ap) < 0) why = NULL;
    va_end(ap);
    char *line = xasprintf("\n  %s: %s", name, why ? why : "?");
    free(why);
    if (!line) return;
    size_t l = strlen(line);
    char *t = realloc(r->text, r->len + l + 1);
    if (t) {
        memcpy(t + r->len, line, l + 1);
        r->text = t;
        r->len += l;
    }
    free(line);
    r->nfail++;
}

typedef void (*case_fn)(const jdoc *d, const jnode *c, const char *name, report *r);

/* Run fn on every non-empty line of a .jsonl file. */
static void run_file(const char *file, case_fn fn, report *r)
{
    char *path = vectors_path(file);
    size_t len;
    char *text = slurp(path, &len);
    cr_assert_not_null(text, "cannot read the vectors file %s; set MLK_VECTORS_DIR to the shared/vectors "
                             "directory", path);
    int lineno = 0;
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        lineno++;
        size_t ll = strlen(line);
        if (ll > 0 && line[ll - 1] == '\r') line[--ll] = '\0';
        if (ll > 0) {
            jdoc d;
            jd_init(&d);
            char label[64];
            snprintf(label, sizeof label, "%s line %d", file, lineno);
            if (jd_parse(&d, line, ll) != 0 || jd_root(&d)->type != JN_OBJ) {
                report_add(r, label, "line is not a JSON object (%s)", d.err ? d.err : "not an object");
            } else {
                const char *name = jd_str(&d, jd_root(&d), "name", NULL);
                fn(&d, jd_root(&d), name ? name : label, r);
            }
            r->ncases++;
            jd_free(&d);
        }
        line = nl ? nl + 1 : NULL;
    }
    free(text);
    free(path);
    cr_assert_gt(r->ncases, 0, "%s holds no cases", file);
}

/* ---- semantic JSON comparison ------------------------------------------ */

static int is_empty_or_null(const jnode *n)
{
    return n->type == JN_NULL || (n->type == JN_ARR && n->count == 0);
}

/* Compare want and got; on mismatch write where into `where`. */
static int json_eq(const jdoc *dw, const jnode *w, const jdoc *dg, const jnode *g, const char *path, char *where,
                   size_t cap)
{
    if (strcmp(path, ".network.allowed_hosts") == 0 && is_empty_or_null(w) && is_empty_or_null(g)) return 1;
    if (w->type != g->type) {
        snprintf(where, cap, "%s: type differs", path[0] ? path : ".");
        return 0;
    }
    switch (w->type) {
    case JN_NULL: return 1;
    case JN_BOOL:
        if (w->bval == g->bval) return 1;
        snprintf(where, cap, "%s: %s vs %s", path, w->bval ? "true" : "false", g->bval ? "true" : "false");
        return 0;
    case JN_NUM: {
        double a, b;
        if (jn_double(w, &a) == 0 && jn_double(g, &b) == 0 && a == b) return 1;
        snprintf(where, cap, "%s: number %.*s vs %.*s", path, (int)w->len, w->s, (int)g->len, g->s);
        return 0;
    }
    case JN_STR:
        if (w->len == g->len && memcmp(w->s, g->s, w->len) == 0) return 1;
        snprintf(where, cap, "%s: \"%s\" vs \"%s\"", path, w->s, g->s);
        return 0;
    case JN_ARR: {
        if (w->count != g->count) {
            snprintf(where, cap, "%s: %zu items vs %zu", path, w->count, g->count);
            return 0;
        }
        const jnode *a = jd_first(dw, w), *b = jd_first(dg, g);
        for (int i = 0; a && b; a = jd_next(dw, a), b = jd_next(dg, b), i++) {
            char sub[256];
            snprintf(sub, sizeof sub, "%s[%d]", path, i);
            if (!json_eq(dw, a, dg, b, sub, where, cap)) return 0;
        }
        return 1;
    }
    case JN_OBJ: {
        for (const jnode *k = jd_first(dw, w); k; k = jd_next(dw, k)) {
            char sub[256];
            snprintf(sub, sizeof sub, "%s.%s", path, k->s);
            const jnode *v = jd_get(dg, g, k->s);
            if (!v) {
                snprintf(where, cap, "%s: missing", sub);
                return 0;
            }
            if (!json_eq(dw, jd_val(k), dg, v, sub, where, cap)) return 0;
        }
        for (const jnode *k = jd_first(dg, g); k; k = jd_next(dg, k))
            if (!jd_get(dw, w, k->s)) {
                snprintf(where, cap, "%s.%s: present but not expected", path, k->s);
                return 0;
            }
        return 1;
    }
    }
    return 0;
}

/* Compare an expected node with a JSON text. */
static void expect_json(const jdoc *dw, const jnode *want, const char *got, size_t len, const char *name,
                        report *r)
{
    char *copy = malloc(len + 1);
    memcpy(copy, got, len);
    copy[len] = '\0';
    jdoc dg;
    jd_init(&dg);
    char where[512] = "";
    if (jd_parse(&dg, copy, len) != 0)
        report_add(r, name, "output is not JSON (%s): %s", dg.err, got);
    else if (!json_eq(dw, want, &dg, jd_root(&dg), "", where, sizeof where))
        report_add(r, name, "%s\n    got %s", where, got);
    jd_free(&dg);
    free(copy);
}

static void expect_error(const char *want, int rc, const char *msg, const char *name, report *r)
{
    if (rc == 0) {
        report_add(r, name, "succeeded but %s was expected", want);
        return;
    }
    const char *up = mlk_err_upstream_name(rc);
    if (!up || strcmp(up, want) != 0)
        report_add(r, name, "failed with %s (%s) but %s was expected: %s", mlk_errname(rc) ? mlk_errname(rc) : "?",
                   up ? up : "no upstream name", want, msg ? msg : "");
    else if (msg && !*msg)
        report_add(r, name, "failed with %s but without a message", want);
}

/* Collect the string nodes of an array from its index `from` on. */
static const char **strings_from(const jdoc *d, const jnode *arr, int from, size_t *n)
{
    const char **v = calloc(arr->count + 1, sizeof *v);
    *n = 0;
    int i = 0;
    for (const jnode *c = jd_first(d, arr); c; c = jd_next(d, c), i++)
        if (i >= from) v[(*n)++] = c->type == JN_STR ? c->s : NULL;
    return v;
}

/* ---- create.jsonl ------------------------------------------------------ */

static const jnode *arg(const jdoc *d, const jnode *op, int i)
{
    const jnode *c = jd_first(d, op);
    while (c && i-- > 0) c = jd_next(d, c);
    return c;
}

static const char *sarg(const jdoc *d, const jnode *op, int i)
{
    const jnode *n = arg(d, op, i);
    return n && n->type == JN_STR ? n->s : NULL;
}

static int64_t iarg(const jdoc *d, const jnode *op, int i)
{
    int64_t v = 0;
    jn_int(arg(d, op, i), &v);
    return v;
}

static double darg(const jdoc *d, const jnode *op, int i)
{
    const jnode *n = arg(d, op, i);
    double v = 0;
    if (n && n->type == JN_STR) {
        if (strcmp(n->s, "NaN") == 0) return NAN;
        if (strcmp(n->s, "Infinity") == 0) return INFINITY;
        if (strcmp(n->s, "-Infinity") == 0) return -INFINITY;
    }
    jn_double(n, &v);
    return v;
}

/* Apply a msgpack-taking setter to a JSON node converted with json_to_mp_buf. */
static int with_mp(const jdoc *d, const jnode *n, mlk_sandbox *sb, int (*set)(mlk_sandbox *, const char *, size_t))
{
    if (!n) return set(sb, NULL, 0);
    char *buf;
    size_t len;
    if (json_to_mp_buf(d, n, &buf, &len) != 0) return MLK_ENOMEM;
    int rc = set(sb, buf, len);
    free(buf);
    return rc;
}

/* Apply one op; returns the setter's status, or 1 for an unknown op. */
static int apply_op(const jdoc *d, const jnode *op, mlk_sandbox **sbp, int *launch)
{
    const char *name = sarg(d, op, 0);
    mlk_sandbox *sb = *sbp;
    size_t n;
    if (!name) return 1;
    if (strcmp(name, "new") == 0) {
        mlk_sandbox_free(sb);
        *sbp = mlk_sandbox_new(sarg(d, op, 1));
        return *sbp ? 0 : MLK_ENOMEM;
    }
    if (!sb) return 1;
    if (strcmp(name, "launch") == 0) { *launch = 1; return 0; }
    if (strcmp(name, "with_cpus") == 0) return mlk_sandbox_set_cpus(sb, darg(d, op, 1));
    if (strcmp(name, "with_memory") == 0) return mlk_sandbox_set_memory_mb(sb, iarg(d, op, 1));
    if (strcmp(name, "with_disk_size") == 0) return mlk_sandbox_set_disk_size_mb(sb, iarg(d, op, 1));
    if (strcmp(name, "with_timeout") == 0) return mlk_sandbox_set_timeout_s(sb, iarg(d, op, 1));
    if (strcmp(name, "with_privileged") == 0) return mlk_sandbox_set_privileged(sb, 1);
    if (strcmp(name, "allow_host") == 0) {
        const char **v = strings_from(d, op, 1, &n);
        int rc = 0;
        for (size_t i = 0; i < n && !rc; i++) rc = mlk_sandbox_allow_host(sb, v[i]);
        free(v);
        return rc;
    }
    if (strcmp(name, "add_host") == 0) return mlk_sandbox_add_host(sb, sarg(d, op, 1), sarg(d, op, 2));
    if (strcmp(name, "block_private_ips") == 0) return mlk_sandbox_set_block_private_ips(sb, 1);
    if (strcmp(name, "allow_private_ips") == 0) return mlk_sandbox_set_block_private_ips(sb, 0);
    if (strcmp(name, "unset_block_private_ips") == 0) return mlk_sandbox_unset_block_private_ips(sb);
    if (strcmp(name, "with_block_private_ips") == 0) {
        const jnode *b = arg(d, op, 1);
        return mlk_sandbox_set_block_private_ips(sb, b && b->type == JN_BOOL && b->bval);
    }
    if (strcmp(name, "add_secret") == 0 || strcmp(name, "add_secret_with_placeholder") == 0) {
        int ph = strcmp(name, "add_secret_with_placeholder") == 0;
        const char **v = strings_from(d, op, ph ? 4 : 3, &n);
        int rc = mlk_sandbox_add_secret(sb, sarg(d, op, 1), sarg(d, op, 2), ph ? sarg(d, op, 3) : NULL, v, n);
        free(v);
        return rc;
    }
    if (strcmp(name, "with_dns_servers") == 0) {
        const char **v = strings_from(d, op, 1, &n);
        int rc = mlk_sandbox_set_dns_servers(sb, v, n);
        free(v);
        return rc;
    }
    if (strcmp(name, "with_hostname") == 0) return mlk_sandbox_set_hostname(sb, sarg(d, op, 1));
    if (strcmp(name, "with_network_mtu") == 0) return mlk_sandbox_set_network_mtu(sb, iarg(d, op, 1));
    if (strcmp(name, "with_no_network") == 0) return mlk_sandbox_set_no_network(sb, 1);
    if (strcmp(name, "with_network_interception") == 0)
        return with_mp(d, arg(d, op, 1), sb, mlk_sandbox_set_network_interception);
    if (strcmp(name, "with_vfs_interception") == 0)
        return with_mp(d, arg(d, op, 1), sb, mlk_sandbox_set_vfs_interception);
    if (strcmp(name, "with_env_map") == 0) return with_mp(d, arg(d, op, 1), sb, mlk_sandbox_set_env_map);
    if (strcmp(name, "with_image_config") == 0) return with_mp(d, arg(d, op, 1), sb, mlk_sandbox_set_image_config);
    if (strcmp(name, "with_workspace") == 0) return mlk_sandbox_set_workspace(sb, sarg(d, op, 1));
    if (strcmp(name, "mount_host_dir") == 0 || strcmp(name, "mount_host_dir_readonly") == 0) {
        int rc = strcmp(name, "mount_host_dir") == 0
                     ? mlk_sandbox_mount_host_dir(sb, sarg(d, op, 1), sarg(d, op, 2))
                     : mlk_sandbox_mount_host_dir_readonly(sb, sarg(d, op, 1), sarg(d, op, 2));
        const jnode *owner = arg(d, op, 3);
        if (rc || !owner || owner->type != JN_OBJ) return rc;
        const jnode *u = jd_get(d, owner, "owner_uid"), *g = jd_get(d, owner, "owner_gid");
        int64_t uid = 0, gid = 0;
        if (u) jn_int(u, &uid);
        if (g) jn_int(g, &gid);
        return mlk_sandbox_set_mount_owner(sb, sarg(d, op, 1), (u ? MLK_MOUNT_OWNER_UID : 0) |
                                           (g ? MLK_MOUNT_OWNER_GID : 0), uid, gid);
    }
    if (strcmp(name, "mount_memory") == 0) return mlk_sandbox_mount_memory(sb, sarg(d, op, 1));
    if (strcmp(name, "mount_overlay") == 0) return mlk_sandbox_mount_overlay(sb, sarg(d, op, 1), sarg(d, op, 2));
    if (strcmp(name, "with_env") == 0) return mlk_sandbox_set_env(sb, sarg(d, op, 1), sarg(d, op, 2));
    if (strcmp(name, "with_user") == 0) return mlk_sandbox_set_user(sb, sarg(d, op, 1));
    if (strcmp(name, "with_entrypoint") == 0) {
        const char **v = strings_from(d, op, 1, &n);
        int rc = mlk_sandbox_set_entrypoint(sb, v, n);
        free(v);
        return rc;
    }
    if (strcmp(name, "with_kernel") == 0) return mlk_sandbox_set_kernel(sb, sarg(d, op, 1));
    if (strcmp(name, "add_extra_disk") == 0) {
        const jnode *ro = arg(d, op, 3);
        return mlk_sandbox_add_extra_disk(sb, sarg(d, op, 1), sarg(d, op, 2), ro && ro->type == JN_BOOL && ro->bval);
    }
    return 1;
}

static void create_case(const jdoc *d, const jnode *c, const char *name, report *r)
{
    const jnode *ops = jd_get(d, c, "ops");
    const jnode *want = jd_get(d, c, "create_params");
    const char *want_err = jd_str(d, c, "error", NULL);
    if (!ops || ops->type != JN_ARR || (!want && !want_err)) {
        report_add(r, name, "malformed case (needs ops and create_params or error)");
        return;
    }
    mlk_sandbox *sb = NULL;
    int launch = 0, rc = 0;
    for (const jnode *op = jd_first(d, ops); op && rc == 0; op = jd_next(d, op)) {
        rc = op->type == JN_ARR ? apply_op(d, op, &sb, &launch) : 1;
        if (rc == 1) {
            const char *opname = op->type == JN_ARR ? sarg(d, op, 0) : NULL;
            report_add(r, name, "unknown op \"%s\" (or an op before \"new\")", opname ? opname : "?");
            mlk_sandbox_free(sb);
            return;
        }
    }
    char *json = NULL, *msg = NULL;
    size_t len = 0;
    if (rc == 0) rc = mlk_sandbox_params_json(sb, launch, &json, &len, &msg);
    if (want_err) {
        expect_error(want_err, rc, msg, name, r);
    } else if (rc != 0) {
        report_add(r, name, "failed with %s: %s", mlk_errname(rc), msg ? msg : "");
    } else if (strlen(json) != len) {
        report_add(r, name, "reported length %zu but the text is %zu bytes", len, strlen(json));
    } else {
        expect_json(d, want, json, len, name, r);
    }
    mlk_free(json);
    mlk_free(msg);
    mlk_sandbox_free(sb);
}

Test(vectors, create)
{
    report r = {0};
    /* Some success cases (cpus 2.5) assume a host with more CPUs than a
     * 2-core CI machine has; the real sysconf check is tested in
     * test_json.c (builder suite).  Criterion runs each test in its own
     * process, so this does not leak into other tests. */
    long host = sysconf(_SC_NPROCESSORS_ONLN);
    if (host < 64) {
        cr_log_info("host has %ld CPUs; validating create.jsonl as if it had 64", host);
        setenv("MATCHLOCK_HOST_CPUS", "64", 1);
    }
    run_file("create.jsonl", create_case, &r);
    cr_log_info("create.jsonl: %d cases, %d failed", r.ncases, r.nfail);
    cr_assert_eq(r.nfail, 0, "create.jsonl: %d of %d cases failed:%s", r.nfail, r.ncases, r.text ? r.text : "");
    free(r.text);
}

/* ---- port_forward.jsonl ------------------------------------------------ */

static char *case_label(const jdoc *d, const jnode *c, const char *key)
{
    jw w;
    jw_init(&w);
    jd_write(d, jd_get(d, c, key), &w);
    return jw_take(&w, NULL);
}

static void port_forward_case(const jdoc *d, const jnode *c, const char *label, report *r)
{
    const jnode *specs = jd_get(d, c, "specs");
    const jnode *want = jd_get(d, c, "forwards");
    const char *want_err = jd_str(d, c, "error", NULL);
    char *name = specs ? case_label(d, c, "specs") : NULL;
    if (!specs || specs->type != JN_ARR || (!want && !want_err)) {
        report_add(r, label, "malformed case (needs specs and forwards or error)");
        free(name);
        return;
    }
    size_t n;
    const char **v = strings_from(d, specs, 0, &n);
    char *json = NULL;
    size_t len = 0;
    int rc = mlk_port_forward_parse(v, n, &json, &len);
    if (want_err) expect_error(want_err, rc, NULL, name, r);
    else if (rc != 0) report_add(r, name, "failed with %s", mlk_errname(rc));
    else expect_json(d, want, json, len, name, r);
    /* the internal renderer must say what is wrong */
    if (want_err) {
        jw w;
        char *msg = NULL;
        jw_init(&w);
        if (port_forward_render(v, n, &w, &msg) != 0 && (!msg || !*msg))
            report_add(r, name, "port_forward_render gave no message");
        free(msg);
        jw_free(&w);
    }
    mlk_free(json);
    free(v);
    free(name);
}

Test(vectors, port_forward)
{
    report r = {0};
    run_file("port_forward.jsonl", port_forward_case, &r);
    cr_log_info("port_forward.jsonl: %d cases, %d failed", r.ncases, r.nfail);
    cr_assert_eq(r.nfail, 0, "port_forward.jsonl: %d of %d cases failed:%s", r.nfail, r.ncases,
                 r.text ? r.text : "");
    free(r.text);
}

/* ---- allow_list.jsonl -------------------------------------------------- */

static void allow_list_case(const jdoc *d, const jnode *c, const char *label, report *r)
{
    const jnode *hosts = jd_get(d, c, "hosts");
    const jnode *want = jd_get(d, c, "wire");
    const char *want_err = jd_str(d, c, "error", NULL);
    char *name = hosts ? case_label(d, c, "hosts") : NULL;
    if (!hosts || hosts->type != JN_ARR || (!want && !want_err)) {
        report_add(r, label, "malformed case (needs hosts and wire or error)");
        free(name);
        return;
    }
    size_t n;
    const char **v = strings_from(d, hosts, 0, &n);
    char *mp = NULL;
    size_t len = 0;
    int rc = mlk_allow_list_normalize(v, n, &mp, &len);
    if (want_err) {
        expect_error(want_err, rc, NULL, name, r);
    } else if (rc != 0) {
        report_add(r, name, "failed with %s", mlk_errname(rc));
    } else {
        msgpack_unpacked u;
        jw w;
        jw_init(&w);
        if (mp_parse(mp, len, &u) != 0 || mp_to_json(&u.data, &w) != 0) {
            report_add(r, name, "mlk_allow_list_normalize returned invalid msgpack");
        } else {
            expect_json(d, want, w.buf, w.len, name, r);
        }
        msgpack_unpacked_destroy(&u);
        jw_free(&w);
    }
    /* the JSON renderer used by the client must agree */
    jw w;
    char *msg = NULL;
    jw_init(&w);
    int rc2 = allow_list_render(v, n, &w, &msg);
    if (rc2 != rc) report_add(r, name, "allow_list_render returned %d but the normaliser %d", rc2, rc);
    else if (rc2 == 0) expect_json(d, want, w.buf, w.len, name, r);
    else if (!msg || !*msg) report_add(r, name, "allow_list_render gave no message");
    free(msg);
    jw_free(&w);
    mlk_free(mp);
    free(v);
    free(name);
}

Test(vectors, allow_list)
{
    report r = {0};
    run_file("allow_list.jsonl", allow_list_case, &r);
    cr_log_info("allow_list.jsonl: %d cases, %d failed", r.ncases, r.nfail);
    cr_assert_eq(r.nfail, 0, "allow_list.jsonl: %d of %d cases failed:%s", r.nfail, r.ncases, r.text ? r.text : "");
    free(r.text);
}

/* ---- hook_answers.jsonl: the hook-answer contract ------------------------
 * Each case answers a hook of one kind with a JSON value (as msgpack) and
 * expects the wire reply (network), success, or the error code and the
 * exact message, from mlk_hook_answer_check() and from the renderer that
 * mlk_hook_reply() uses.  The Python, Node and Lua suites run the same
 * file through their own msgpack encoders. */

static int hook_kind(const char *k)
{
    if (!k) return 0;
    if (strcmp(k, "network") == 0) return MLK_HOOK_NETWORK;
    if (strcmp(k, "action") == 0) return MLK_HOOK_VFS_ACTION;
    if (strcmp(k, "mutate") == 0) return MLK_HOOK_VFS_MUTATE;
    return 0;
}

static void hook_answer_case(const jdoc *d, const jnode *c, const char *name, report *r)
{
    int kind = hook_kind(jd_str(d, c, "kind", NULL));
    const jnode *answer = jd_get(d, c, "answer");
    const jnode *want = jd_get(d, c, "wire");
    const char *want_err = jd_str(d, c, "error", NULL), *want_msg = jd_str(d, c, "message", NULL);
    if (!kind || !answer || (want_err && !want_msg)) {
        report_add(r, name, "malformed case (needs kind, answer, and message with error)");
        return;
    }
    char *mp = NULL;
    size_t len = 0;
    if (json_to_mp_buf(d, answer, &mp, &len) != 0) {
        report_add(r, name, "cannot encode the answer");
        return;
    }
    char *msg = NULL;
    int rc = mlk_hook_answer_check(kind, mp, len, &msg);
    if (want_err) {
        if (rc == 0 || !mlk_errname(rc) || strcmp(mlk_errname(rc), want_err) != 0)
            report_add(r, name, "returned %s but %s was expected", rc ? mlk_errname(rc) : "0", want_err);
        else if (!msg || strcmp(msg, want_msg) != 0)
            report_add(r, name, "message\n    got  %s\n    want %s", msg ? msg : "(none)", want_msg);
    } else if (rc != 0) {
        report_add(r, name, "failed with %s: %s", mlk_errname(rc), msg ? msg : "");
    } else if (msg) {
        report_add(r, name, "succeeded but left a message");
    }
    if (kind == MLK_HOOK_NETWORK) { /* what mlk_hook_reply sends */
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        jw w;
        jw_init(&w);
        char *why = NULL;
        int rc2 = mp_parse(mp, len, &u) == 0 ? hook_answer_network(&u.data, &w, &why) : MLK_EPARSE;
        if (rc2 != rc) report_add(r, name, "the renderer returned %d but the check %d", rc2, rc);
        else if (rc2 == 0 && want) expect_json(d, want, w.buf, w.len, name, r);
        free(why);
        jw_free(&w);
        msgpack_unpacked_destroy(&u);
    }
    mlk_free(msg);
    free(mp);
}

Test(vectors, hook_answers)
{
    report r = {0};
    run_file("hook_answers.jsonl", hook_answer_case, &r);
    cr_log_info("hook_answers.jsonl: %d cases, %d failed", r.ncases, r.nfail);
    cr_assert_eq(r.nfail, 0, "hook_answers.jsonl: %d of %d cases failed:%s", r.nfail, r.ncases, r.text ? r.text : "");
    free(r.text);
}

/* ---- interception.jsonl: interception configs ---------------------------
 * Each case gives a whole network or VFS interception config, callback
 * rules marked by their callback key set to true, to
 * mlk_sandbox_set_interception, and expects either the `interception`
 * object of the create params (`wire`; null: none is sent) or the error
 * code and the exact message.  Python, Node and Lua run the same file
 * through their builders, with functions for the callbacks. */

static void noop_hook(void *ud, mlk_client *c, int kind, mlk_hook_call *call, const char *req, size_t len)
{
    (void)ud; (void)c; (void)kind; (void)call; (void)req; (void)len;
}

static void interception_case(const jdoc *d, const jnode *c, const char *name, report *r)
{
    const char *which = jd_str(d, c, "which", "");
    const jnode *config = jd_get(d, c, "config"), *want = jd_get(d, c, "wire");
    const char *want_err = jd_str(d, c, "error", NULL), *want_msg = jd_str(d, c, "message", NULL);
    int w = !strcmp(which, "network") ? MLK_INTERCEPT_NETWORK : !strcmp(which, "vfs") ? MLK_INTERCEPT_VFS : 0;
    if (!w || !config || (want_err && !want_msg) || (!want_err && !want)) {
        report_add(r, name, "malformed case (needs which, config, and wire or error and message)");
        return;
    }
    char *mp = NULL;
    size_t len = 0;
    if (json_to_mp_buf(d, config, &mp, &len) != 0) {
        report_add(r, name, "cannot encode the config");
        return;
    }
    static int tags[8];
    void *uds[8];
    for (int i = 0; i < 8; i++) uds[i] = &tags[i];
    mlk_sandbox *sb = mlk_sandbox_new("alpine:latest");
    int rc = mlk_sandbox_set_interception(sb, w, mp, len, noop_hook, uds, 8);
    const char *msg = NULL;
    int erc = mlk_sandbox_error(sb, &msg);
    if (want_err) {
        if (rc == 0 || !mlk_errname(rc) || strcmp(mlk_errname(rc), want_err) != 0)
            report_add(r, name, "returned %s but %s was expected", rc ? mlk_errname(rc) : "0", want_err);
        else if (erc != rc || !msg || strcmp(msg, want_msg) != 0)
            report_add(r, name, "message\n    got  %s\n    want %s", msg ? msg : "(none)", want_msg);
    } else if (rc != 0) {
        report_add(r, name, "failed with %s: %s", mlk_errname(rc), msg ? msg : "");
    } else {
        char *json = NULL, *m = NULL;
        size_t jl = 0;
        if (mlk_sandbox_params_json(sb, 0, &json, &jl, &m) != 0) {
            report_add(r, name, "params_json failed: %s", m ? m : "");
        } else {
            jdoc g;
            jd_init(&g);
            const jnode *got = NULL;
            if (jd_parse(&g, json, jl) == 0) {
                const jnode *sec = jd_get(&g, jd_root(&g), w == MLK_INTERCEPT_NETWORK ? "network" : "vfs");
                got = sec ? jd_get(&g, sec, "interception") : NULL;
            }
            if (want->type == JN_NULL) {
                if (got) report_add(r, name, "an interception object was sent: %s", json);
            } else if (!got) {
                report_add(r, name, "no interception object in %s", json);
            } else {
                /* the node as JSON text: through msgpack */
                jw out;
                jw_init(&out);
                char *gb = NULL;
                size_t gl = 0;
                msgpack_unpacked u;
                msgpack_unpacked_init(&u);
                if (json_to_mp_buf(&g, got, &gb, &gl) == 0 && mp_parse(gb, gl, &u) == 0) mp_to_json(&u.data, &out);
                expect_json(d, want, out.buf, out.len, name, r);
                msgpack_unpacked_destroy(&u);
                free(gb);
                jw_free(&out);
            }
            jd_free(&g);
        }
        mlk_free(json);
        mlk_free(m);
    }
    mlk_sandbox_free(sb);
    free(mp);
}

Test(vectors, interception)
{
    report r = {0};
    run_file("interception.jsonl", interception_case, &r);
    cr_log_info("interception.jsonl: %d cases, %d failed", r.ncases, r.nfail);
    cr_assert_eq(r.nfail, 0, "interception.jsonl: %d of %d cases failed:%s", r.nfail, r.ncases, r.text ? r.text : "");
    free(r.text);
}

/* ---- errors.jsonl ------------------------------------------------------ */
/* The error contract: each code's class, category and hint, which every
 * binding raises as its own error type (the same file is read by the
 * Python, Node and Lua suites). */

static int same(const char *a, const char *b) { return (!a && !b) || (a && b && strcmp(a, b) == 0); }

static void errors_case(const jdoc *d, const jnode *c, const char *label, report *r)
{
    const char *errname = jd_str(d, c, "errname", NULL);
    const char *code_key = errname ? "code" : "rpc_code";
    const jnode *code_n = jd_get(d, c, code_key);
    const char *cls = jd_str(d, c, "class", NULL), *cat = jd_str(d, c, "category", NULL);
    const char *hint = jd_str(d, c, "hint", NULL);
    if (!code_n || code_n->type != JN_NUM || !cls || !cat) {
        report_add(r, label, "malformed case (needs errname and code, or rpc_code; class, category)");
        return;
    }
    int code = (int)jd_int(d, c, code_key, 0);
    if (errname && !same(mlk_errname(code), errname))
        report_add(r, label, "code %d is %s, not %s", code, mlk_errname(code), errname);
    if (!same(mlk_error_class(code), cls)) report_add(r, label, "class %s, want %s", mlk_error_class(code), cls);
    if (!same(mlk_error_category(code), cat))
        report_add(r, label, "category %s, want %s", mlk_error_category(code), cat);
    if (!same(mlk_error_hint(code), hint))
        report_add(r, label, "hint \"%s\", want \"%s\"", mlk_error_hint(code) ? mlk_error_hint(code) : "(null)",
                   hint ? hint : "(null)");
}

Test(vectors, errors)
{
    report r = {0};
    run_file("errors.jsonl", errors_case, &r);
    cr_assert_eq(r.nfail, 0, "errors.jsonl: %d of %d cases failed:%s", r.nfail, r.ncases, r.text ? r.text : "");
    cr_assert_geq(r.ncases, 36);
    free(r.text);
    /* every code the header names is in the table, and only those */
    cr_assert_str_eq(mlk_error_class(-999), "MatchlockError");
    cr_assert_null(mlk_error_class(0));
    cr_assert_null(mlk_error_hint(-999));
    cr_assert_str_eq(mlk_error_category(MLK_RPC_CANCELLED), "RPCError");
}
