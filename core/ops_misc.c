/* ops_misc.c - the network calls (allow list, port forwards) and the CLI
 * side channels (remove, volumes). */
#include "client.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

/* ===================================================================== */
/* public: network                                                          */

static int do_allow_list(mlk_client *c, const char *method, const char *const *hosts, size_t n, int64_t timeout_ms,
                         int blocking, mlk_done_cb done, void *ud, uint64_t *op, mlk_result **out)
{
    route rt;
    START(c, &rt, blocking, done, ud, out);
    req *r = req_new(c, K_ALLOW, timeout_ms);
    if (!r) return route_fail(c, &rt, 0, MLK_ENOMEM, NULL, out);
    if (op) *op = r->id;
    jw arr;
    jw_init(&arr);
    char *msg = NULL;
    int rc = allow_list_render(hosts, n, &arr, &msg);
    if (rc != 0) {
        jw_free(&arr);
        return route_fail_unsent(c, &rt, r, rc, msg, out);
    }
    jw w;
    begin_line(&w, method, r->id);
    jw_obj(&w);
    jw_key(&w, "hosts"); jw_value(&w, arr.buf, arr.len);
    jw_obj_end(&w);
    end_line(&w);
    jw_free(&arr);
    return route_call(c, &rt, r, &w, out);
}

MLK_API int mlk_allow_list_add(mlk_client *c, const char *const *hosts, size_t n, int64_t timeout_ms, mlk_result **out)
{
    return do_allow_list(c, "allow_list_add", hosts, n, timeout_ms, 1, NULL, NULL, NULL, out);
}

MLK_API int mlk_allow_list_delete(mlk_client *c, const char *const *hosts, size_t n, int64_t timeout_ms, mlk_result **out)
{
    return do_allow_list(c, "allow_list_delete", hosts, n, timeout_ms, 1, NULL, NULL, NULL, out);
}

MLK_API int mlk_allow_list_add_async(mlk_client *c, const char *const *hosts, size_t n, int64_t timeout_ms,
                                     mlk_done_cb done, void *ud, uint64_t *op)
{
    return do_allow_list(c, "allow_list_add", hosts, n, timeout_ms, 0, done, ud, op, NULL);
}

MLK_API int mlk_allow_list_delete_async(mlk_client *c, const char *const *hosts, size_t n, int64_t timeout_ms,
                                        mlk_done_cb done, void *ud, uint64_t *op)
{
    return do_allow_list(c, "allow_list_delete", hosts, n, timeout_ms, 0, done, ud, op, NULL);
}

static int do_port_forward(mlk_client *c, const char *const *specs, size_t n, const char *const *addrs, size_t naddrs,
                           int64_t timeout_ms, int blocking, mlk_done_cb done, void *ud, uint64_t *op, mlk_result **out)
{
    route rt;
    START(c, &rt, blocking, done, ud, out);
    req *r = req_new(c, K_PORTFWD, timeout_ms);
    if (!r) return route_fail(c, &rt, 0, MLK_ENOMEM, NULL, out);
    if (op) *op = r->id;
    jw w;
    begin_line(&w, "port_forward", r->id);
    char *msg = NULL;
    int rc = render_port_forward(specs, n, addrs, naddrs, &w, &msg);
    if (rc != 0) {
        jw_free(&w);
        return route_fail_unsent(c, &rt, r, rc, msg, out);
    }
    end_line(&w);
    return route_call(c, &rt, r, &w, out);
}

MLK_API int mlk_port_forward(mlk_client *c, const char *const *specs, size_t n, const char *const *addrs,
                             size_t naddrs, int64_t timeout_ms, mlk_result **out)
{
    return do_port_forward(c, specs, n, addrs, naddrs, timeout_ms, 1, NULL, NULL, NULL, out);
}

MLK_API int mlk_port_forward_async(mlk_client *c, const char *const *specs, size_t n, const char *const *addrs,
                                   size_t naddrs, int64_t timeout_ms, mlk_done_cb done, void *ud, uint64_t *op)
{
    return do_port_forward(c, specs, n, addrs, naddrs, timeout_ms, 0, done, ud, op, NULL);
}

/* ===================================================================== */
/* public: CLI side channels                                                */

/* What a volume command's JSON output is parsed as. */
enum { VOL_NONE, VOL_CREATE, VOL_LIST };

/* A string member, trimmed; numbers keep their text (the CLI's `size` is a
 * display string such as "16.0 MB", but take a bare number as it is). */
static void vol_field(const jdoc *d, const jnode *obj, const char *key, const char **p, size_t *n)
{
    const jnode *v = jd_get(d, obj, key);
    *p = "";
    *n = 0;
    if (!v || (v->type != JN_STR && v->type != JN_NUM)) return;
    const char *s = v->s;
    size_t l = v->len;
    while (l && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')) { s++; l--; }
    while (l && (s[l - 1] == ' ' || s[l - 1] == '\t' || s[l - 1] == '\n' || s[l - 1] == '\r')) l--;
    *p = s;
    *n = l;
}

static void pack_str(msgpack_packer *pk, const char *s, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

/* One {name, size, path} entry, as the official SDKs read it: a non-empty
 * path is required (and, in a listing, a name); a created volume without a
 * name or size takes the ones asked for.  Returns 0 or -1 (not a volume). */
static int pack_volume(msgpack_packer *pk, const jdoc *d, const jnode *v, const char *want_name,
                       int64_t want_mb)
{
    if (v->type != JN_OBJ) return -1;
    const char *name, *size, *path;
    size_t nl, sl, pl;
    vol_field(d, v, "name", &name, &nl);
    vol_field(d, v, "size", &size, &sl);
    vol_field(d, v, "path", &path, &pl);
    if (pl == 0 || (!want_name && nl == 0)) return -1;
    char dflt[48];
    if (nl == 0) { name = want_name; nl = strlen(want_name); }
    if (sl == 0 && want_name) {
        snprintf(dflt, sizeof dflt, "%.1f MB", (double)want_mb);
        size = dflt;
        sl = strlen(dflt);
    }
    msgpack_pack_map(pk, 3);
    pack_str(pk, "name", 4); pack_str(pk, name, nl);
    pack_str(pk, "size", 4); pack_str(pk, size, sl);
    pack_str(pk, "path", 4); pack_str(pk, path, pl);
    return 0;
}

/* What a volume command's unparsable output is called: the seed's words,
 * then the official SDKs' (Python 0.2.17, TypeScript), so code matching
 * either keeps working. */
static const char vol_create_bad[] = "parse volume create result: failed to parse volume create output";
static const char vol_list_bad[] = "parse volume list result: failed to parse volume list output";
static const char vol_line_bad[] = "parse volume list result: failed to parse volume list output line";

/* Parse a volume command's JSON stdout into the result's msgpack field:
 * VOL_CREATE a map {name, size, path}, VOL_LIST an array of them.  Output
 * that is not that (not JSON, no non-empty path, a list row without name or
 * path) is MLK_EPARSE naming what was printed. */
static void cli_volume_to_mp(mlk_result *r, int kind, const char *want_name, int64_t want_mb)
{
    if (r->status != 0 || kind == VOL_NONE) return;
    const char *what = kind == VOL_CREATE ? vol_create_bad : vol_list_bad;
    size_t n = r->data_len;
    char *copy = malloc(n + 1);
    if (!copy) { result_fail(r, MLK_ENOMEM, "out of memory"); return; }
    memcpy(copy, r->data, n);
    jdoc d;
    jd_init(&d);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    const char *why = NULL;
    if (jd_parse(&d, copy, n) != 0) {
        why = "the matchlock command printed something that is not JSON";
    } else if (kind == VOL_CREATE) {
        if (pack_volume(&pk, &d, jd_root(&d), want_name, want_mb) != 0) why = "missing path";
    } else if (jd_root(&d)->type != JN_ARR) {
        why = "expected an array";
    } else {
        msgpack_pack_array(&pk, jd_root(&d)->count);
        for (const jnode *v = jd_first(&d, jd_root(&d)); v && !why; v = jd_next(&d, v))
            if (pack_volume(&pk, &d, v, NULL, 0) != 0) {
                what = vol_line_bad;
                why = "an entry without a name or path";
            }
    }
    if (why) {
        result_fail(r, MLK_EPARSE, "%s: %s: %.200s", what, why, r->data);
        msgpack_sbuffer_destroy(&sb);
    } else {
        r->mp_own = sb.data;
        r->mp = sb.data;
        r->mp_len = sb.size;
    }
    jd_free(&d);
    free(copy);
}

/* A volume name or VM id about to become an operand of a command line:
 * it must follow NAME_RULE (matchlock-local's rule, and upstream's for
 * volume names), so that it can be neither a flag nor shell syntax.
 * Operands also follow `--`.  0, or MLK_EINVAL with *msg (malloc'd). */
static int check_operand(const char *what, const char *s, char **msg)
{
    if (name_valid(s)) return 0;
    *msg = xasprintf("invalid %s \"%.80s%s\": it must match %s (refused before any command runs)", what, s,
                     strlen(s) > 80 ? "..." : "", NAME_RULE);
    return MLK_EINVAL;
}

/* For the blocking calls: 0, or the status of a refused operand with its
 * message in *out. */
static int operand_refused(const char *what, const char *s, mlk_result **out)
{
    char *msg = NULL;
    int bad = check_operand(what, s, &msg);
    if (bad) bad = fail_now(bad, out, msg ? msg : mlk_strerror(bad));
    free(msg);
    return bad;
}

/* A CLI command run for an async call: on a short-lived thread of its own
 * (the command is a whole process; the thread ends with it).  The job holds
 * a reference on the client so freeing it waits for the job. */
typedef struct cli_job {
    mlk_client *c;
    route rt;
    uint64_t op;
    char *args[8];
    size_t nargs;
    int fail_code, vol;          /* vol: VOL_* */
    int64_t vol_mb;              /* VOL_CREATE: the size asked for */
} cli_job;

static void cli_run(cli_job *j)
{
    mlk_result *r = result_new();
    if (r) {
        run_cli(j->c->cfg, (const char *const *)j->args, j->nargs, j->fail_code, r);
        /* the operand (the volume's name) is the last word */
        cli_volume_to_mp(r, j->vol, j->vol == VOL_CREATE ? j->args[j->nargs - 1] : NULL, j->vol_mb);
    }
    route_deliver(j->c, &j->rt, j->op, r);
}

static void *cli_thread(void *p)
{
    cli_job *j = p;
    cli_run(j);
    mlk_client *c = j->c;
    for (size_t i = 0; i < j->nargs; i++) free(j->args[i]);
    free(j);
    client_unref(c);
    return NULL;
}

/* bad: the operand check's code (0 when it passed) and its message
 * (taken): the call then completes at once with them, as any other. */
static int cli_start(mlk_client *c, mlk_done_cb done, void *ud, uint64_t *op, int fail_code, int vol,
                     int64_t vol_mb, const char *const *args, size_t nargs, int bad, char *bad_msg)
{
    if (!c) { free(bad_msg); return MLK_EINVAL; }
    if (client_inherited(c)) { free(bad_msg); return MLK_ECLOSED; }
    if (bad) {
        route rt;
        if (route_init(&rt, 0, done, ud) != 0) { free(bad_msg); return MLK_ENOMEM; }
        uint64_t id = c->next_id++;
        if (op) *op = id;
        int rc = route_fail(c, &rt, id, bad, bad_msg, NULL);
        free(bad_msg);
        return rc;
    }
    cli_job *j = calloc(1, sizeof *j);
    if (!j || route_init(&j->rt, 0, done, ud) != 0) {
        free(j);
        return MLK_ENOMEM;
    }
    j->c = c;
    j->op = c->next_id++;
    if (op) *op = j->op;
    j->fail_code = fail_code;
    j->vol = vol;
    j->vol_mb = vol_mb;
    for (size_t i = 0; i < nargs && i < 8; i++) j->args[j->nargs++] = xstrdup(args[i]);
    client_ref(c);
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pthread_t th;
    int rc = pthread_create(&th, &at, cli_thread, j);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&at);
    if (rc != 0) {
        client_unref(c);
        for (size_t i = 0; i < j->nargs; i++) free(j->args[i]);
        free(j);
        return MLK_ENOMEM;
    }
    return 0;
}

/* `<binary> rm -- VM_ID` with a configuration: mlk_remove runs it with its
 * client's, so the command needs no client and works after one is freed. */
MLK_API int mlk_remove_vm(const mlk_config *cfg, const char *vm_id, mlk_result **out)
{
    if (!vm_id || !*vm_id) return fail_now(MLK_EINVAL, out, "remove: vm_id is required: pass the id of the VM to remove");
    int bad = operand_refused("VM id", vm_id, out);
    if (bad) return bad;
    mlk_result *r = result_new();
    if (!r) return MLK_ENOMEM;
    const char *args[] = {"rm", "--", vm_id};
    run_cli(cfg, args, 3, MLK_EREMOVE, r);
    return result_give(r, out);
}

MLK_API int mlk_remove(mlk_client *c, mlk_result **out)
{
    if (!c) return fail_now(MLK_EINVAL, out, "remove: client is NULL");
    if (client_inherited(c)) return closed_result(c, out);
    const char *id = mlk_client_vm_id(c);
    if (!id) return fail_now(MLK_ENOTCREATED, out, "remove: no sandbox was created by this client");
    return mlk_remove_vm(c->cfg, id, out);
}

MLK_API int mlk_remove_async(mlk_client *c, mlk_done_cb done, void *ud, uint64_t *op)
{
    if (!c) return MLK_EINVAL;
    const char *id = mlk_client_vm_id(c);
    if (!id) return MLK_ENOTCREATED;
    char *msg = NULL;
    int bad = check_operand("VM id", id, &msg);
    const char *args[] = {"rm", "--", id};
    return cli_start(c, done, ud, op, MLK_EREMOVE, VOL_NONE, 0, args, 3, bad, msg);
}

/* The words of `volume create --size MB --json -- NAME` (size: a buffer of 32). */
static void volume_create_args(const char *args[7], char *size, const char *name, int64_t size_mb)
{
    snprintf(size, 32, "%lld", (long long)size_mb);
    const char *v[] = {"volume", "create", "--size", size, "--json", "--", name};
    memcpy(args, v, sizeof v);
}

MLK_API int mlk_volume_create(const mlk_config *cfg, const char *name, int64_t size_mb, mlk_result **out)
{
    if (!name || !*name) return fail_now(MLK_EVOLUME_NAME, out, "volume name is required: pass the name of the volume to create");
    if (size_mb <= 0) return fail_now(MLK_EVOLUME_SIZE, out, "volume size must be > 0: pass the size in MiB");
    int bad = operand_refused("volume name", name, out);
    if (bad) return bad;
    mlk_result *r = result_new();
    if (!r) return MLK_ENOMEM;
    char size[32];
    const char *args[7];
    volume_create_args(args, size, name, size_mb);
    run_cli(cfg, args, 7, MLK_ECLI, r);
    cli_volume_to_mp(r, VOL_CREATE, name, size_mb);
    return result_give(r, out);
}

MLK_API int mlk_volume_list(const mlk_config *cfg, mlk_result **out)
{
    mlk_result *r = result_new();
    if (!r) return MLK_ENOMEM;
    const char *args[] = {"volume", "ls", "--json"};
    run_cli(cfg, args, 3, MLK_ECLI, r);
    cli_volume_to_mp(r, VOL_LIST, NULL, 0);
    return result_give(r, out);
}

MLK_API int mlk_volume_remove(const mlk_config *cfg, const char *name, mlk_result **out)
{
    if (!name || !*name) return fail_now(MLK_EVOLUME_NAME, out, "volume name is required: pass the name of the volume to remove");
    int bad = operand_refused("volume name", name, out);
    if (bad) return bad;
    mlk_result *r = result_new();
    if (!r) return MLK_ENOMEM;
    const char *args[] = {"volume", "rm", "--", name};
    run_cli(cfg, args, 4, MLK_ECLI, r);
    return result_give(r, out);
}

MLK_API int mlk_volume_create_async(mlk_client *c, const char *name, int64_t size_mb, mlk_done_cb done, void *ud,
                                    uint64_t *op)
{
    if (!name || !*name) return MLK_EVOLUME_NAME;
    if (size_mb <= 0) return MLK_EVOLUME_SIZE;
    char *msg = NULL;
    int bad = check_operand("volume name", name, &msg);
    char size[32];
    const char *args[7];
    volume_create_args(args, size, name, size_mb);
    return cli_start(c, done, ud, op, MLK_ECLI, VOL_CREATE, size_mb, args, 7, bad, msg);
}

MLK_API int mlk_volume_list_async(mlk_client *c, mlk_done_cb done, void *ud, uint64_t *op)
{
    const char *args[] = {"volume", "ls", "--json"};
    return cli_start(c, done, ud, op, MLK_ECLI, VOL_LIST, 0, args, 3, 0, NULL);
}

MLK_API int mlk_volume_remove_async(mlk_client *c, const char *name, mlk_done_cb done, void *ud, uint64_t *op)
{
    if (!name || !*name) return MLK_EVOLUME_NAME;
    char *msg = NULL;
    int bad = check_operand("volume name", name, &msg);
    const char *args[] = {"volume", "rm", "--", name};
    return cli_start(c, done, ud, op, MLK_ECLI, VOL_NONE, 0, args, 4, bad, msg);
}
