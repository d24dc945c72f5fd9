/* libFuzzer target: option validation.  The input is decoded into a
 * sequence of builder calls (every mlk_sandbox_* setter, msgpack inputs
 * either raw bytes or generated from the input, hooks included), then the
 * create params are rendered; a success must be one valid JSON object.
 * The port-forward and allow-list validators run on input strings too. */
#include <msgpack.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "matchlock.h"

typedef struct src {
    const uint8_t *p;
    size_t n;
    char **owned;            /* strings handed out, freed at the end */
    size_t nowned, capowned;
} src;

static uint8_t u8(src *s)
{
    if (!s->n) return 0;
    s->n--;
    return *s->p++;
}

static uint64_t u64(src *s)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | u8(s);
    return v;
}

static void keep(src *s, char *p)
{
    if (s->nowned == s->capowned) {
        s->capowned = s->capowned ? s->capowned * 2 : 16;
        s->owned = realloc(s->owned, s->capowned * sizeof *s->owned);
        if (!s->owned) abort();
    }
    s->owned[s->nowned++] = p;
}

static const char *const dict[] = {
    "", "/", "/workspace", "/tmp/x", "/w/*", "*", "**", "a.example.com", "*.example.com", "10.0.0.1",
    "::1", "127.0.0.1", "0.0.0.0", "8080", "80:8080", " 3000 : 3001 ", "0", "65536", "-1", "a,b,,c",
    "before", "after", "allow", "block", "write", "read", "readdir", "open", "create", "mkdir",
    "rules", "emit_events", "name", "phase", "hosts", "methods", "path", "ops", "action", "timeout_ms",
    "user", "working_dir", "entrypoint", "cmd", "env", "callback_id", "body_replacements", "set_body_base64",
    "request", "response", "headers", "query", "GET", "POST", "root", "alpine:latest", "A=B", "PATH",
    "x\"y\\z\n", "\xff\xfe", "..", "/a/../b", "a b", "host:1:2",
};
#define NDICT (sizeof dict / sizeof dict[0])

/* A string: dictionary entry or bytes from the input (NUL ends it). */
static const char *str(src *s)
{
    uint8_t t = u8(s);
    if (t < 128) return dict[t % NDICT];
    size_t len = u8(s) % 80;
    if (len > s->n) len = s->n;
    char *out = malloc(len + 1);
    if (!out) abort();
    memcpy(out, s->p, len);
    out[len] = '\0';
    s->p += len;
    s->n -= len;
    keep(s, out);
    return out;
}

static size_t strs(src *s, const char **v, size_t max)
{
    size_t n = u8(s) % (max + 1);
    for (size_t i = 0; i < n; i++) v[i] = str(s);
    return n;
}

static void gen(src *s, msgpack_packer *pk, int depth)
{
    uint8_t t = u8(s) % 13;
    if (depth > 5 && (t == 9 || t == 10)) t = 0;
    switch (t) {
    case 0: msgpack_pack_nil(pk); break;
    case 1: msgpack_pack_true(pk); break;
    case 2: msgpack_pack_false(pk); break;
    case 3: msgpack_pack_uint64(pk, u8(s) & 1 ? u8(s) : u64(s)); break;
    case 4: msgpack_pack_int64(pk, -(int64_t)(u8(s) + 1)); break;
    case 5: { uint64_t b = u64(s); double d; memcpy(&d, &b, 8); msgpack_pack_double(pk, d); break; }
    case 6: case 7: { const char *x = str(s); msgpack_pack_str_with_body(pk, x, strlen(x)); break; }
    case 8: { const char *x = str(s); msgpack_pack_bin_with_body(pk, x, strlen(x)); break; }
    case 9: {
        uint32_t n = u8(s) % 5;
        msgpack_pack_array(pk, n);
        for (uint32_t i = 0; i < n; i++) gen(s, pk, depth + 1);
        break;
    }
    case 10: {
        uint32_t n = u8(s) % 6;
        msgpack_pack_map(pk, n);
        for (uint32_t i = 0; i < n; i++) {
            const char *k = str(s);
            if (u8(s) % 8 == 0) msgpack_pack_uint8(pk, 1); /* a non-string key */
            else msgpack_pack_str_with_body(pk, k, strlen(k));
            gen(s, pk, depth + 1);
        }
        break;
    }
    case 11: { const char *x = str(s); msgpack_pack_ext_with_body(pk, x, strlen(x), 1); break; }
    default: msgpack_pack_float(pk, (float)u8(s) / 3); break;
    }
}

/* A msgpack document: raw input bytes (often invalid) or a generated one
 * that starts as a map (what the setters want). */
static const char *mp(src *s, size_t *len)
{
    uint8_t mode = u8(s) % 4;
    if (mode == 0) {
        size_t n = u8(s);
        if (n > s->n) n = s->n;
        char *out = malloc(n ? n : 1);
        if (!out) abort();
        memcpy(out, s->p, n);
        s->p += n;
        s->n -= n;
        keep(s, out);
        *len = n;
        return out;
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (mode == 1) gen(s, &pk, 0);
    else {
        uint32_t n = u8(s) % 6;
        msgpack_pack_map(&pk, n);
        for (uint32_t i = 0; i < n; i++) {
            const char *k = str(s);
            msgpack_pack_str_with_body(&pk, k, strlen(k));
            gen(s, &pk, 1);
        }
    }
    *len = sb.size;
    char *out = sb.data ? sb.data : malloc(1);
    if (!out) abort();
    keep(s, out);
    return out;
}

static void hook_cb(void *ud, mlk_client *c, int kind, mlk_hook_call *call, const char *req, size_t len)
{
    (void)ud; (void)c; (void)kind; (void)call; (void)req; (void)len;
}

static double cpus(src *s)
{
    uint8_t t = u8(s);
    if (t & 1) { uint64_t b = u64(s); double d; memcpy(&d, &b, 8); return d; }
    return (double)(t >> 1) / 4 - 4;
}

static int64_t num(src *s)
{
    uint8_t t = u8(s);
    if (t & 1) return (int64_t)u64(s);
    return (int64_t)(t >> 1) * 37 - 100;
}

/* A rendered value must be exactly one JSON value of the given type. */
static void check_json(char *json, size_t len, int type)
{
    jdoc d;
    jd_init(&d);
    char *copy = malloc(len + 1);
    if (!copy) abort();
    memcpy(copy, json, len);
    if (jd_parse(&d, json, len) != 0 || !jd_root(&d) || jd_root(&d)->type != type) {
        fprintf(stderr, "not one JSON value of the expected type (%s): %.*s\n", d.err ? d.err : "", (int)len, copy);
        abort();
    }
    free(copy);
    jd_free(&d);
}

static int print; /* MLK_FUZZ_PRINT=1: show each rendering (checking seeds) */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    print = getenv("MLK_FUZZ_PRINT") != NULL;
    setenv("MATCHLOCK_HOST_CPUS", "4", 1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    src s = {data, size, NULL, 0, 0};
    const char *v[8], *w[8];
    size_t n, len;
    mlk_sandbox *sb = mlk_sandbox_new(u8(&s) % 16 == 0 ? NULL : str(&s));
    int launch = u8(&s) & 1;
    for (int steps = 0; s.n > 0 && steps < 64; steps++) {
        if (!sb) break;
        switch (u8(&s) % 36) {
        case 0: mlk_sandbox_set_cpus(sb, cpus(&s)); break;
        case 1: mlk_sandbox_set_memory_mb(sb, num(&s)); break;
        case 2: mlk_sandbox_set_disk_size_mb(sb, num(&s)); break;
        case 3: mlk_sandbox_set_timeout_s(sb, num(&s)); break;
        case 4: mlk_sandbox_set_privileged(sb, u8(&s) & 1); break;
        case 5: mlk_sandbox_set_workspace(sb, str(&s)); break;
        case 6: { const char *g = str(&s); mlk_sandbox_mount_host_dir(sb, g, str(&s)); break; }
        case 7: { const char *g = str(&s); mlk_sandbox_mount_host_dir_readonly(sb, g, str(&s)); break; }
        case 8: mlk_sandbox_mount_memory(sb, str(&s)); break;
        case 9: { const char *g = str(&s); mlk_sandbox_mount_overlay(sb, g, str(&s)); break; }
        case 10: { const char *k = str(&s); mlk_sandbox_set_env(sb, k, str(&s)); break; }
        case 11: { const char *m = mp(&s, &len); mlk_sandbox_set_env_map(sb, m, len); break; }
        case 12: mlk_sandbox_allow_host(sb, str(&s)); break;
        case 13: { const char *h = str(&s); mlk_sandbox_add_host(sb, h, str(&s)); break; }
        case 14: {
            const char *name = str(&s), *val = str(&s);
            const char *ph = u8(&s) & 1 ? str(&s) : NULL;
            n = strs(&s, v, 8);
            mlk_sandbox_add_secret(sb, name, val, ph, v, n);
            break;
        }
        case 15: mlk_sandbox_set_block_private_ips(sb, u8(&s) & 1); break;
        case 16: mlk_sandbox_unset_block_private_ips(sb); break;
        case 17: n = strs(&s, v, 8); mlk_sandbox_set_dns_servers(sb, v, n); break;
        case 18: mlk_sandbox_set_hostname(sb, str(&s)); break;
        case 19: mlk_sandbox_set_network_mtu(sb, num(&s)); break;
        case 20: mlk_sandbox_set_no_network(sb, u8(&s) & 1); break;
        case 21:
            if (u8(&s) & 1) mlk_sandbox_set_network_interception(sb, NULL, 0);
            else { const char *m = mp(&s, &len); mlk_sandbox_set_network_interception(sb, m, len); }
            break;
        case 22: { const char *m = mp(&s, &len); mlk_sandbox_set_vfs_interception(sb, m, len); break; }
        case 23: mlk_sandbox_add_port_forward(sb, str(&s)); break;
        case 24: n = strs(&s, v, 8); mlk_sandbox_set_port_forward_addresses(sb, v, n); break;
        case 25: mlk_sandbox_set_user(sb, str(&s)); break;
        case 26: n = strs(&s, v, 8); mlk_sandbox_set_entrypoint(sb, v, n); break;
        case 27: { const char *m = mp(&s, &len); mlk_sandbox_set_image_config(sb, m, len); break; }
        case 28: mlk_sandbox_set_kernel(sb, str(&s)); break;
        case 29: { const char *h = str(&s), *g = str(&s); mlk_sandbox_add_extra_disk(sb, h, g, u8(&s) & 1); break; }
        case 30: { const char *m = mp(&s, &len); mlk_sandbox_add_network_hook(sb, m, len, hook_cb, NULL); break; }
        case 31: {
            int kind = u8(&s) % 7;
            const char *m = mp(&s, &len);
            mlk_sandbox_add_vfs_hook(sb, kind, m, len, hook_cb, NULL);
            break;
        }
        case 32: case 33: {
            n = strs(&s, w, 8);
            jw out;
            jw_init(&out);
            char *msg = NULL;
            int rc = (u8(&s) & 1 ? port_forward_render : allow_list_render)(w, n, &out, &msg);
            if (rc == 0 && !out.oom) {
                jw_nl(&out); /* buf[len] must be writable for the parser */
                check_json(out.buf, out.len - 1, JN_ARR);
            }
            free(msg);
            jw_free(&out);
            break;
        }
        default: {
            /* a fresh builder sometimes: exercises free with state */
            mlk_sandbox_free(sb);
            sb = mlk_sandbox_new(str(&s));
            break;
        }
        }
    }
    if (sb) {
        char *json = NULL, *msg = NULL;
        int rc = mlk_sandbox_params_json(sb, launch, &json, &len, &msg);
        if (print) fprintf(stderr, "rc=%d %s\n", rc, rc == 0 ? json : msg ? msg : "");
        if (rc == 0) {
            if (!json || strlen(json) != len) abort();
            check_json(json, len, JN_OBJ);
        } else if (json) abort();
        mlk_free(json);
        mlk_free(msg);
        /* with a callback socket, as create sends it when hooks exist */
        jw out;
        jw_init(&out);
        msg = NULL;
        rc = sandbox_render(sb, launch, "/tmp/mlk-hooks-x/callback.sock", &out, &msg);
        if (rc == 0 && !out.oom) {
            jw_nl(&out);
            check_json(out.buf, out.len - 1, JN_OBJ);
        }
        free(msg);
        jw_free(&out);
        mlk_sandbox_free(sb);
    }
    for (size_t i = 0; i < s.nowned; i++) free(s.owned[i]);
    free(s.owned);
    return 0;
}
