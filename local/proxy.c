/* proxy.c - the network side of matchlock-local: an HTTP proxy on
 * 127.0.0.1:<ephemeral port>, one per VM, started when network
 * interception is active (forced interception, an allow-list, secrets or
 * rules).  Commands find it through http_proxy/HTTP_PROXY/https_proxy/
 * HTTPS_PROXY (no_proxy empty); a process that ignores those variables
 * bypasses it, so this is a policy aid, not a security boundary.
 *
 * Plain HTTP (absolute-form requests) gets the whole policy: allow-list
 * (upstream globs; an empty list allows every host), private-IP blocking
 * (every resolved address is checked and the connection goes to a checked
 * address), interception rules in order (phase before: block, header/query
 * mutations, rewrite_path, callbacks; phase after: block, response header
 * edits, body replacements, callbacks), then secret placeholder
 * replacement in headers and query for the secret's hosts (a placeholder
 * bound for any other host blocks the request, as upstream's leak check
 * does).  CONNECT is allowed or denied by host (allow-list and private IPs)
 * and then becomes a blind tunnel.  Each exchange produces one `event`
 * notification of type "network".
 *
 * Threads: one acceptor thread, and one thread per connection using
 * blocking-style I/O (poll with an idle timeout) so that the HTTP code reads
 * top to bottom.  The threads touch only this file's state: the proxy's
 * configuration (immutable after start), the allow-list and connection
 * list (under px->mu) and the event queue (under px->mu, bounded at
 * EVQ_MAX, drained on the libevent loop through an eventfd; full means
 * dropped).  Stopping shuts every connection's sockets down and waits a
 * bounded time for the threads; one still stuck (say, in getaddrinfo) keeps
 * the proxy alive and it is left to the process exit. */
#include "local.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define HEAD_MAX (64u << 10)       /* request/response head */
#define BODY_MAX (16u << 20)       /* buffered body for after-rules */
#define CB_REPLY_MAX (64u << 20)   /* one callback reply line */
#define CONN_MAX 128               /* concurrent proxied connections */
#define EVQ_MAX 100                /* queued network events */
#define IDLE_MS 300000             /* no progress on a socket for this long ends it */
#define CONNECT_MS 10000           /* upstream connect */
#define CB_DEFAULT_MS 5000         /* callback timeout when the rule has none */
#define STOP_WAIT_MS 2000          /* proxy_stop waits this long for threads */
#define SSE_LINE_MAX (1u << 20)

/* ===================================================================== */
/* small containers                                                       */

/* Secrets pass through these (a placeholder replaced by its value in a
 * header or the query, then the request head written out), so every buffer
 * and string below is wiped before it is freed (secret_wipe, core/util.c)
 * and a buffer grows by allocate-copy-wipe-free, never realloc, which could
 * leave the old bytes in a freed block. */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static int sb_reserve(sbuf *b, size_t extra)
{
    if (b->oom) return -1;
    if (b->len + extra + 1 <= b->cap) return 0;
    size_t nc = b->cap ? b->cap : 256;
    while (nc < b->len + extra + 1) nc *= 2;
    char *np = malloc(nc);
    if (!np) { b->oom = 1; return -1; }
    if (b->p) {
        memcpy(np, b->p, b->len);
        secret_wipe(b->p, b->cap);
        free(b->p);
    }
    b->p = np;
    b->cap = nc;
    return 0;
}

static void sb_add(sbuf *b, const void *p, size_t n)
{
    if (sb_reserve(b, n) != 0) return;
    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) { sb_add(b, tmp, (size_t)n); return; }
    if (sb_reserve(b, (size_t)n) != 0) return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static void sb_free(sbuf *b)
{
    secret_wipe(b->p, b->cap);
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* An ordered list of name/value pairs (headers, query, maps). */
typedef struct kv {
    char *k, *v;
} kv;

typedef struct kvs {
    kv *v;
    size_t n;
} kvs;

static void kvs_add(kvs *l, const char *k, size_t kl, const char *v, size_t vl)
{
    kv *nv = realloc(l->v, (l->n + 1) * sizeof *nv);
    if (!nv) return;
    l->v = nv;
    nv[l->n].k = strndup(k, kl);
    nv[l->n].v = strndup(v, vl);
    if (!nv[l->n].k || !nv[l->n].v) { free(nv[l->n].k); secret_free(nv[l->n].v); return; }
    l->n++;
}

static void kvs_add0(kvs *l, const char *k, const char *v) { kvs_add(l, k, strlen(k), v, strlen(v)); }

static void kvs_clear(kvs *l)
{
    for (size_t i = 0; i < l->n; i++) { free(l->v[i].k); secret_free(l->v[i].v); }
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static const char *kvs_get(const kvs *l, const char *k)   /* case-insensitive */
{
    for (size_t i = 0; i < l->n; i++)
        if (!strcasecmp(l->v[i].k, k)) return l->v[i].v;
    return NULL;
}

static void kvs_del(kvs *l, const char *k, int nocase)
{
    size_t o = 0;
    for (size_t i = 0; i < l->n; i++) {
        if (nocase ? !strcasecmp(l->v[i].k, k) : !strcmp(l->v[i].k, k)) {
            free(l->v[i].k);
            secret_free(l->v[i].v);
            continue;
        }
        l->v[o++] = l->v[i];
    }
    l->n = o;
}

static void strv_lower(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        for (char *c = v[i]; *c; c++) *c = (char)tolower((unsigned char)*c);
}

/* ===================================================================== */
/* configuration                                                          */

enum { ACT_ALLOW, ACT_BLOCK, ACT_MUTATE };

typedef struct nrule {
    char *name, *callback_id, *path, *rewrite_path;
    int after, action;
    int64_t timeout_ms;
    char **hosts, **methods, **delete_headers, **delete_query, **delete_resp_headers;
    kvs set_headers, set_query, set_resp_headers, body_repl;   /* body_repl: find -> replace */
} nrule;

typedef struct psecret {
    char *name, *value, *placeholder;
    char **hosts;
} psecret;

typedef struct pconn pconn;

struct proxy {
    server *srv;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* under mu */
    char **allowed;
    pconn *conns;
    int nconns;
    char *evq[EVQ_MAX];
    size_t evq_len[EVQ_MAX];
    int nev;
    unsigned long dropped;
    /* immutable once started */
    int block_private;
    psecret *secrets;
    size_t nsecrets;
    nrule *rules;
    size_t nrules;
    char *callback_socket;
    kvs add_hosts;               /* host -> ip */
    int lfd, port;
    int stop_pipe[2];
    pthread_t acceptor;
    int acceptor_started;
    atomic_int stopping;
    int evfd;
    struct event *ev;
    int stopped, leaked;
};

static void rule_free(nrule *r)
{
    free(r->name); free(r->callback_id); free(r->path); free(r->rewrite_path);
    strv_free(r->hosts); strv_free(r->methods); strv_free(r->delete_headers);
    strv_free(r->delete_query); strv_free(r->delete_resp_headers);
    kvs_clear(&r->set_headers); kvs_clear(&r->set_query); kvs_clear(&r->set_resp_headers);
    kvs_clear(&r->body_repl);
}

static int cfail(char **msg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int cfail(char **msg, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(msg, fmt, ap) < 0) *msg = NULL;
    va_end(ap);
    return MLK_RPC_INVALID_PARAMS;
}

static int absent(const jnode *n) { return !n || n->type == JN_NULL; }

static int get_strs(const jdoc *d, const jnode *obj, const char *key, char ***out, const char *where, char **msg)
{
    const jnode *a = jd_get(d, obj, key);
    if (absent(a)) return 0;
    if (a->type != JN_ARR) return cfail(msg, "%s.%s: expected an array of strings", where, key);
    for (const jnode *x = jd_first(d, a); x; x = jd_next(d, x)) {
        if (x->type != JN_STR) return cfail(msg, "%s.%s: expected an array of strings", where, key);
        /* trimmed; empty entries dropped (as upstream normalises) */
        const char *s = x->s;
        size_t n = x->len;
        while (n && isspace((unsigned char)*s)) { s++; n--; }
        while (n && isspace((unsigned char)s[n - 1])) n--;
        if (!n) continue;
        char *t = strndup(s, n);
        if (!t) continue;
        *out = strv_push(*out, t);
        free(t);
    }
    return 0;
}

static int get_map(const jdoc *d, const jnode *obj, const char *key, kvs *out, const char *where, char **msg)
{
    const jnode *m = jd_get(d, obj, key);
    if (absent(m)) return 0;
    if (m->type != JN_OBJ) return cfail(msg, "%s.%s: expected an object of strings", where, key);
    for (const jnode *k = jd_first(d, m); k; k = jd_next(d, k)) {
        const jnode *v = jd_val(k);
        if (v->type != JN_STR) return cfail(msg, "%s.%s.%s: expected a string", where, key, k->s);
        if (k->len) kvs_add(out, k->s, k->len, v->s, v->len);
    }
    return 0;
}

static int get_str(const jdoc *d, const jnode *obj, const char *key, char **out, const char *where, char **msg)
{
    const jnode *s = jd_get(d, obj, key);
    if (absent(s)) return 0;
    if (s->type != JN_STR) return cfail(msg, "%s.%s: expected a string", where, key);
    free(*out);
    *out = strndup(s->s, s->len);
    return 0;
}

/* The keys of a rule and their types, as the contract's table says
 * (core/contract.c): the shape the client sends is the shape read here. */
int rule_shape_check(const rule_table *t, const jdoc *d, const jnode *r, const char *where, char **msg)
{
    for (const jnode *k = jd_first(d, r); k; k = jd_next(d, k)) {
        const rule_key *rk = contract_key(t, k->s, k->len);
        if (!rk || !(rk->where & RK_WIRE)) return cfail(msg, "%s: unknown key \"%.*s\"", where, (int)k->len, k->s);
        const jnode *v = jd_val(k);
        if (absent(v)) continue;
        int ok = 1;
        switch (rk->type) {
        case RT_STR: ok = v->type == JN_STR; break;
        case RT_INT: ok = v->type == JN_NUM; break;
        case RT_STRMAP:
            ok = v->type == JN_OBJ;
            for (const jnode *x = ok ? jd_first(d, v) : NULL; x; x = jd_next(d, x)) ok &= jd_val(x)->type == JN_STR;
            break;
        case RT_STRS: case RT_OPS:
            ok = v->type == JN_ARR;
            for (const jnode *x = ok ? jd_first(d, v) : NULL; x; x = jd_next(d, x)) ok &= x->type == JN_STR;
            break;
        case RT_BODY: ok = v->type == JN_ARR; break;   /* each entry: parse_rule */
        default: ok = 0;
        }
        if (!ok) return cfail(msg, "%s.%s: expected %s", where, rk->key, contract_type_text(rk->type));
    }
    return 0;
}

static int parse_rule(const jdoc *d, const jnode *r, nrule *out, int idx, char **msg)
{
    char where[64];
    snprintf(where, sizeof where, "network.interception.rules[%d]", idx);
    if (r->type != JN_OBJ) return cfail(msg, "%s: expected an object", where);
    char *phase = NULL, *action = NULL;
    int code = rule_shape_check(&contract_net_rule, d, r, where, msg);
    if (code) return code;
    if ((code = get_str(d, r, "name", &out->name, where, msg)) ||
        (code = get_str(d, r, "phase", &phase, where, msg)) ||
        (code = get_str(d, r, "action", &action, where, msg)) ||
        (code = get_str(d, r, "callback_id", &out->callback_id, where, msg)) ||
        (code = get_str(d, r, "path", &out->path, where, msg)) ||
        (code = get_str(d, r, "rewrite_path", &out->rewrite_path, where, msg)) ||
        (code = get_strs(d, r, "hosts", &out->hosts, where, msg)) ||
        (code = get_strs(d, r, "methods", &out->methods, where, msg)) ||
        (code = get_strs(d, r, "delete_headers", &out->delete_headers, where, msg)) ||
        (code = get_strs(d, r, "delete_query", &out->delete_query, where, msg)) ||
        (code = get_strs(d, r, "delete_response_headers", &out->delete_resp_headers, where, msg)) ||
        (code = get_map(d, r, "set_headers", &out->set_headers, where, msg)) ||
        (code = get_map(d, r, "set_query", &out->set_query, where, msg)) ||
        (code = get_map(d, r, "set_response_headers", &out->set_resp_headers, where, msg))) {
        free(phase); free(action);
        return code;
    }
    const jnode *t = jd_get(d, r, "timeout_ms");
    if (!absent(t) && (jn_int(t, &out->timeout_ms) != 0 || out->timeout_ms < 0)) {
        free(phase); free(action);
        return cfail(msg, "%s.timeout_ms: expected a non-negative integer", where);
    }
    const jnode *br = jd_get(d, r, "body_replacements");
    if (!absent(br)) {
        if (br->type != JN_ARR) { free(phase); free(action); return cfail(msg, "%s.body_replacements: expected an array", where); }
        int j = 0;
        for (const jnode *x = jd_first(d, br); x; x = jd_next(d, x), j++) {
            const jnode *f = x->type == JN_OBJ ? jd_get(d, x, "find") : NULL;
            const jnode *rp = x->type == JN_OBJ ? jd_get(d, x, "replace") : NULL;
            if (!f || f->type != JN_STR || (!absent(rp) && rp->type != JN_STR)) {
                free(phase); free(action);
                return cfail(msg, "%s.body_replacements[%d]: expected {find, replace} strings", where, j);
            }
            if (f->len) kvs_add(&out->body_repl, f->s, f->len, absent(rp) ? "" : rp->s, absent(rp) ? 0 : rp->len);
        }
    }
    for (char *c = phase; c && *c; c++) *c = (char)tolower((unsigned char)*c);
    for (char *c = action; c && *c; c++) *c = (char)tolower((unsigned char)*c);
    if (phase && *phase && strcmp(phase, "before") && strcmp(phase, "after")) {
        free(phase); free(action);
        return cfail(msg, "%s.phase: must be before or after", where);
    }
    if (action && *action && strcmp(action, "allow") && strcmp(action, "block") && strcmp(action, "mutate")) {
        free(phase); free(action);
        return cfail(msg, "%s.action: must be allow, block or mutate", where);
    }
    out->after = phase && !strcmp(phase, "after");
    out->action = !action || !*action || !strcmp(action, "allow") ? ACT_ALLOW
                : !strcmp(action, "block") ? ACT_BLOCK : ACT_MUTATE;
    free(phase);
    free(action);
    if (out->callback_id && !*out->callback_id) { free(out->callback_id); out->callback_id = NULL; }
    if (out->callback_id && out->action != ACT_ALLOW)
        return cfail(msg, "%s.action: a rule with callback_id must have an empty or allow action", where);
    if (out->path && !*out->path) { free(out->path); out->path = NULL; }
    if (out->rewrite_path && !*out->rewrite_path) { free(out->rewrite_path); out->rewrite_path = NULL; }
    strv_lower(out->hosts);
    for (size_t i = 0; out->methods && out->methods[i]; i++)
        for (char *c = out->methods[i]; *c; c++) *c = (char)toupper((unsigned char)*c);
    return 0;
}

static void random_hex(char *out, size_t nbytes)
{
    unsigned char b[64];
    if (nbytes > sizeof b) nbytes = sizeof b;
    if (getrandom(b, nbytes, 0) != (ssize_t)nbytes) {
        FILE *f = fopen("/dev/urandom", "r");
        if (!f || fread(b, 1, nbytes, f) != nbytes)
            for (size_t i = 0; i < nbytes; i++) b[i] = (unsigned char)(rand() ^ (int)i);
        if (f) fclose(f);
    }
    for (size_t i = 0; i < nbytes; i++) sprintf(out + 2 * i, "%02x", b[i]);
}

static proxy *proxy_new(void)
{
    proxy *px = calloc(1, sizeof *px);
    if (!px) return NULL;
    pthread_mutex_init(&px->mu, NULL);
    pthread_cond_init(&px->cv, NULL);
    px->lfd = px->evfd = -1;
    px->stop_pipe[0] = px->stop_pipe[1] = -1;
    px->block_private = 1;
    return px;
}

int proxy_configure(vm *v, const jdoc *d, const jnode *net, char **msg)
{
    if (!v->intercept || !net || net->type != JN_OBJ) return 0;
    proxy *px = proxy_new();
    if (!px) return cfail(msg, "out of memory");
    v->px = px;
    /* absent means blocked: the SDK always states it, and blocking is the
     * safe reading of a config that forgot it */
    const jnode *bp = jd_get(d, net, "block_private_ips");
    if (!absent(bp) && bp->type != JN_BOOL) return cfail(msg, "network.block_private_ips: expected a boolean");
    px->block_private = absent(bp) ? 1 : bp->bval;

    const jnode *secrets = jd_get(d, net, "secrets");
    for (const jnode *k = jd_first(d, absent(secrets) ? NULL : secrets); k; k = jd_next(d, k)) {
        const jnode *s = jd_val(k);
        char where[160];
        snprintf(where, sizeof where, "network.secrets.%.120s", k->s);
        if (!k->len || strchr(k->s, '=')) return cfail(msg, "%s: invalid variable name", where);
        if (s->type != JN_OBJ) return cfail(msg, "%s: expected an object {value, hosts, placeholder}", where);
        const jnode *val = jd_get(d, s, "value");
        if (!val || val->type != JN_STR) return cfail(msg, "%s.value: expected a string", where);
        psecret *ns = realloc(px->secrets, (px->nsecrets + 1) * sizeof *ns);
        if (!ns) return cfail(msg, "out of memory");
        px->secrets = ns;
        psecret *sec = &ns[px->nsecrets++];
        memset(sec, 0, sizeof *sec);
        sec->name = strdup(k->s);
        sec->value = strndup(val->s, val->len);
        int code;
        if ((code = get_strs(d, s, "hosts", &sec->hosts, where, msg)) ||
            (code = get_str(d, s, "placeholder", &sec->placeholder, where, msg)))
            return code;
        strv_lower(sec->hosts);
        if (!sec->placeholder || !*sec->placeholder) {
            char hex[33];
            random_hex(hex, 16);
            free(sec->placeholder);
            if (asprintf(&sec->placeholder, "SANDBOX_SECRET_%s", hex) < 0) sec->placeholder = NULL;
        }
        if (!sec->name || !sec->value || !sec->placeholder) return cfail(msg, "out of memory");
        vm_setenv(v, sec->name, sec->placeholder);
    }

    const jnode *icp = jd_get(d, net, "interception");
    if (!absent(icp) && icp->type == JN_OBJ) {
        int code;
        if ((code = get_str(d, icp, "callback_socket", &px->callback_socket, "network.interception", msg))) return code;
        const jnode *rules = jd_get(d, icp, "rules");
        int i = 0;
        for (const jnode *r = jd_first(d, absent(rules) ? NULL : rules); r; r = jd_next(d, r), i++) {
            nrule *nr = realloc(px->rules, (px->nrules + 1) * sizeof *nr);
            if (!nr) return cfail(msg, "out of memory");
            px->rules = nr;
            memset(&nr[px->nrules], 0, sizeof *nr);
            px->nrules++;
            if ((code = parse_rule(d, r, &nr[px->nrules - 1], i, msg))) return code;
        }
    }
    const jnode *ah = jd_get(d, net, "add_hosts");
    for (const jnode *h = jd_first(d, absent(ah) ? NULL : ah); h; h = jd_next(d, h)) {
        const char *host = jd_str(d, h, "host", NULL), *ip = jd_str(d, h, "ip", NULL);
        if (!host || !ip) continue;
        char *lh = strdup(host);
        if (!lh) continue;
        for (char *c = lh; *c; c++) *c = (char)tolower((unsigned char)*c);
        kvs_add0(&px->add_hosts, lh, ip);
        free(lh);
    }
    return 0;
}

/* ===================================================================== */
/* matching                                                               */

/* Host globs as upstream: "*" anything, "*.x.com" any name ending in
 * ".x.com", "x.*" any name starting with "x.", other "*" wildcards, else
 * exact.  Hosts and patterns are lower-cased. */
static int wildcard(const char *p, const char *s)
{
    const char *star = strchr(p, '*');
    size_t pre = (size_t)(star - p);
    if (strncmp(s, p, pre)) return 0;
    s += pre;
    const char *last = strrchr(p, '*') + 1;
    size_t sl = strlen(s), ll = strlen(last);
    if (ll > sl || strcmp(s + sl - ll, last)) return 0;
    size_t end = sl - ll;                     /* s[0..end) holds the middle */
    const char *m = star + 1;
    size_t pos = 0;
    while (m < last) {
        const char *e = strchr(m, '*');
        size_t ml = (size_t)(e - m);
        if (ml) {
            int found = 0;
            for (; pos + ml <= end; pos++)
                if (!strncmp(s + pos, m, ml)) { found = 1; pos += ml; break; }
            if (!found) return 0;
        }
        m = e + 1;
    }
    return 1;
}

static int glob_host(const char *pat, const char *host)
{
    if (!strcmp(pat, "*")) return 1;
    size_t pl = strlen(pat), hl = strlen(host);
    if (pat[0] == '*' && pat[1] == '.' && !strchr(pat + 2, '*'))
        return hl >= pl - 1 && !strcmp(host + hl - (pl - 1), pat + 1);
    if (pl >= 2 && !strcmp(pat + pl - 2, ".*") && !memchr(pat, '*', pl - 2))
        return hl > pl - 1 && !strncmp(host, pat, pl - 1);
    if (strchr(pat, '*')) return wildcard(pat, host);
    return !strcmp(pat, host);
}

static int any_glob(char **pats, const char *host)
{
    for (size_t i = 0; pats && pats[i]; i++)
        if (glob_host(pats[i], host)) return 1;
    return 0;
}

static int ip4_private(uint32_t a)
{
    return (a >> 24) == 10 || (a >> 20) == 0xAC1 || (a >> 16) == 0xC0A8 || (a >> 24) == 127 ||
           (a >> 16) == 0xA9FE || (a >> 24) == 0;
}

static int addr_private(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return ip4_private(ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr));
    if (sa->sa_family == AF_INET6) {
        const unsigned char *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        static const unsigned char zero[16];
        if (!memcmp(b, zero, 15) && (b[15] == 1 || b[15] == 0)) return 1;     /* ::1, :: */
        if ((b[0] & 0xfe) == 0xfc) return 1;                                  /* fc00::/7 */
        if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return 1;                  /* fe80::/10 */
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (!memcmp(b, mapped, 12))
            return ip4_private((uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 | b[15]);
        return 0;
    }
    return 1;
}

/* ===================================================================== */
/* connections and I/O                                                    */

enum { FD_CLIENT, FD_UP, FD_CB, NFDS };

struct pconn {
    proxy *px;
    pconn *next, *prev;
    int fd[NFDS];                /* under px->mu: stop shuts them down */
};

static int stopping(proxy *px) { return atomic_load(&px->stopping); }

static void conn_setfd(pconn *c, int slot, int fd)
{
    pthread_mutex_lock(&c->px->mu);
    c->fd[slot] = fd;
    pthread_mutex_unlock(&c->px->mu);
}

static void conn_closefd(pconn *c, int slot)
{
    pthread_mutex_lock(&c->px->mu);
    if (c->fd[slot] >= 0) close(c->fd[slot]);
    c->fd[slot] = -1;
    pthread_mutex_unlock(&c->px->mu);
}

/* Wait for `ev` on fd up to ms (-1: IDLE_MS).  1 ready, 0 timeout, -1 error/stop. */
static int wait_fd(proxy *px, int fd, short ev, int ms)
{
    for (;;) {
        if (stopping(px)) return -1;
        struct pollfd p = {.fd = fd, .events = ev};
        int k = poll(&p, 1, ms < 0 ? IDLE_MS : ms);
        if (k > 0) return 1;
        if (k == 0) return 0;
        if (errno != EINTR) return -1;
    }
}

/* Read some bytes: >0, 0 at EOF, -1 on error/timeout/stop. */
static ssize_t io_read(proxy *px, int fd, void *buf, size_t n, int ms)
{
    for (;;) {
        ssize_t r = recv(fd, buf, n, 0);
        if (r >= 0) return r;
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
        if (wait_fd(px, fd, POLLIN, ms) <= 0) return -1;
    }
}

static int io_write(proxy *px, int fd, const void *buf, size_t n, int ms)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w > 0) { p += w; n -= (size_t)w; continue; }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return -1;
        if (wait_fd(px, fd, POLLOUT, ms) <= 0) return -1;
    }
    return 0;
}

/* A buffered reader over one socket. */
typedef struct rd {
    proxy *px;
    int fd;
    char *buf;
    size_t off, len, cap;
} rd;

static void rd_init(rd *r, proxy *px, int fd) { memset(r, 0, sizeof *r); r->px = px; r->fd = fd; }
static void rd_free(rd *r) { free(r->buf); r->buf = NULL; }
static size_t rd_avail(const rd *r) { return r->len - r->off; }

/* Read more: >0 bytes added, 0 EOF, -1 error (or the buffer is at `limit`). */
static ssize_t rd_fill(rd *r, size_t limit)
{
    if (r->off && r->off == r->len) r->off = r->len = 0;
    if (r->off > 0 && r->len == r->cap) {
        memmove(r->buf, r->buf + r->off, r->len - r->off);
        r->len -= r->off;
        r->off = 0;
    }
    if (r->len == r->cap) {
        if (r->cap >= limit) return -1;
        size_t nc = r->cap ? r->cap * 2 : 16384;
        if (nc > limit) nc = limit;
        char *nb = realloc(r->buf, nc + 1);
        if (!nb) return -1;
        r->buf = nb;
        r->cap = nc;
    }
    ssize_t n = io_read(r->px, r->fd, r->buf + r->len, r->cap - r->len, -1);
    if (n > 0) r->len += (size_t)n;
    return n;
}

/* Read a head (up to and including the blank line).  Returns a malloc'd
 * NUL-terminated copy, NULL on EOF before any byte (*eof_clean = 1), error
 * or oversize (*too_big = 1). */
static char *rd_head(rd *r, int *eof_clean, int *too_big)
{
    *eof_clean = *too_big = 0;
    size_t scanned = 0;
    for (;;) {
        char *base = r->buf + r->off;
        size_t n = rd_avail(r);
        for (size_t i = scanned; i < n; i++) {
            if (base[i] != '\n') continue;
            size_t end = 0;
            if (i >= 1 && base[i - 1] == '\n') end = i + 1;
            else if (i >= 2 && base[i - 1] == '\r' && base[i - 2] == '\n') end = i + 1;
            if (!end) continue;
            char *h = strndup(base, end);
            r->off += end;
            return h;
        }
        scanned = n > 2 ? n - 2 : 0;
        if (n >= HEAD_MAX) { *too_big = 1; return NULL; }
        ssize_t k = rd_fill(r, HEAD_MAX + 4);
        if (k == 0 && rd_avail(r) == 0) { *eof_clean = 1; return NULL; }
        if (k <= 0) return NULL;
    }
}

/* One line (for chunk sizes and trailers) into out, without CRLF. */
static int rd_line(rd *r, char *out, size_t cap)
{
    for (;;) {
        char *base = r->buf + r->off;
        char *nl = memchr(base, '\n', rd_avail(r));
        if (nl) {
            size_t n = (size_t)(nl - base);
            size_t m = n && base[n - 1] == '\r' ? n - 1 : n;
            if (m >= cap) return -1;
            memcpy(out, base, m);
            out[m] = '\0';
            r->off += n + 1;
            return 0;
        }
        if (rd_avail(r) >= cap + 2) return -1;
        if (rd_fill(r, 1u << 20) <= 0) return -1;
    }
}

/* ---- message bodies ------------------------------------------------------ */

enum { BODY_NONE, BODY_LEN, BODY_CHUNKED, BODY_CLOSE };

typedef struct body {
    int kind;
    uint64_t left;               /* LEN: bytes left; CHUNKED: left in this chunk */
    int in_chunk, done;
} body;

/* Next piece of the decoded body: 1 with *p and *n (valid until the next
 * call), 0 at its end, -1 error.  Chunked state: 0 size line next, 1 in
 * data, 2 the CRLF after the data next. */
static int body_next(rd *r, body *b, const char **p, size_t *n)
{
    if (b->done || b->kind == BODY_NONE) return 0;
    if (b->kind == BODY_LEN && b->left == 0) { b->done = 1; return 0; }
    char line[1024];
    if (b->kind == BODY_CHUNKED && b->in_chunk == 2) {
        if (rd_line(r, line, sizeof line) != 0 || line[0]) return -1;
        b->in_chunk = 0;
    }
    if (b->kind == BODY_CHUNKED && b->in_chunk == 0) {
        if (rd_line(r, line, sizeof line) != 0) return -1;
        char *e;
        errno = 0;
        unsigned long long sz = strtoull(line, &e, 16);
        if (e == line || errno || (*e && *e != ';' && *e != ' ' && *e != '\t') || sz > (1ull << 40)) return -1;
        if (sz == 0) {
            /* trailers, up to the blank line */
            for (int i = 0; i < 64; i++) {
                if (rd_line(r, line, sizeof line) != 0) return -1;
                if (!line[0]) { b->done = 1; return 0; }
            }
            return -1;
        }
        b->left = sz;
        b->in_chunk = 1;
    }
    if (rd_avail(r) == 0) {
        ssize_t k = rd_fill(r, 1u << 20);
        if (k == 0) {
            if (b->kind == BODY_CLOSE) { b->done = 1; return 0; }
            return -1;
        }
        if (k < 0) return -1;
    }
    size_t take = rd_avail(r);
    if (b->kind != BODY_CLOSE && take > b->left) take = (size_t)b->left;
    *p = r->buf + r->off;
    *n = take;
    r->off += take;
    if (b->kind != BODY_CLOSE) b->left -= take;
    if (b->kind == BODY_CHUNKED && b->left == 0) b->in_chunk = 2;
    return 1;
}

/* ===================================================================== */
/* HTTP heads                                                             */

typedef struct head {
    char *line0[3];              /* method target version / version status reason */
    kvs h;
} head;

static void head_free(head *h)
{
    for (int i = 0; i < 3; i++) free(h->line0[i]);
    kvs_clear(&h->h);
    memset(h, 0, sizeof *h);
}

static int token_ok(const char *s, size_t n)
{
    if (!n) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 32 || c >= 127 || strchr("()<>@,;:\\\"/[]?={}", c)) return 0;
    }
    return 1;
}

/* Parse a head made by rd_head.  0 or -1. */
static int head_parse(char *text, head *h, int response)
{
    memset(h, 0, sizeof *h);
    char *save = NULL;
    char *line = strtok_r(text, "\n", &save);
    if (!line) return -1;
    size_t l = strlen(line);
    if (l && line[l - 1] == '\r') line[--l] = '\0';
    char *sp1 = strchr(line, ' ');
    if (!sp1) return -1;
    char *sp2 = strchr(sp1 + 1, ' ');
    if (!response && !sp2) return -1;
    h->line0[0] = strndup(line, (size_t)(sp1 - line));
    h->line0[1] = sp2 ? strndup(sp1 + 1, (size_t)(sp2 - sp1 - 1)) : strdup(sp1 + 1);
    h->line0[2] = strdup(sp2 ? sp2 + 1 : "");
    if (!h->line0[0] || !h->line0[1] || !h->line0[2]) return -1;
    for (char *ln = strtok_r(NULL, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save)) {
        l = strlen(ln);
        if (l && ln[l - 1] == '\r') ln[--l] = '\0';
        if (!l) break;
        if (ln[0] == ' ' || ln[0] == '\t') {
            /* obsolete line folding: continue the previous value */
            if (!h->h.n) return -1;
            kv *last = &h->h.v[h->h.n - 1];
            char *nv = NULL;
            while (*ln == ' ' || *ln == '\t') ln++;
            if (asprintf(&nv, "%s %s", last->v, ln) < 0) return -1;
            free(last->v);
            last->v = nv;
            continue;
        }
        char *colon = strchr(ln, ':');
        if (!colon || !token_ok(ln, (size_t)(colon - ln))) return -1;
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t') v++;
        size_t vl = strlen(v);
        while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t')) vl--;
        kvs_add(&h->h, ln, (size_t)(colon - ln), v, vl);
    }
    return 0;
}

static int has_token(const char *list, const char *tok)
{
    if (!list) return 0;
    size_t tl = strlen(tok);
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',') p++;
        const char *e = p;
        while (*e && *e != ',') e++;
        const char *t = e;
        while (t > p && (t[-1] == ' ' || t[-1] == '\t')) t--;
        if ((size_t)(t - p) == tl && !strncasecmp(p, tok, tl)) return 1;
        p = e;
    }
    return 0;
}

/* Framing from the headers.  -1 when it is contradictory. */
static int framing(const kvs *h, body *b, char **orig_len)
{
    memset(b, 0, sizeof *b);
    const char *te = kvs_get(h, "Transfer-Encoding");
    if (te && *te) {
        if (!has_token(te, "chunked")) { b->kind = BODY_CLOSE; return 0; }
        b->kind = BODY_CHUNKED;
        return 0;
    }
    const char *cl = NULL;
    for (size_t i = 0; i < h->n; i++) {
        if (strcasecmp(h->v[i].k, "Content-Length")) continue;
        if (cl && strcmp(cl, h->v[i].v)) return -1;
        cl = h->v[i].v;
    }
    if (!cl) { b->kind = BODY_NONE; return 1; }     /* 1: no framing header at all */
    char *e;
    errno = 0;
    unsigned long long n = strtoull(cl, &e, 10);
    if (!*cl || *e || errno || cl[0] == '-' || cl[0] == '+') return -1;
    b->kind = BODY_LEN;
    b->left = n;
    if (orig_len) *orig_len = strdup(cl);
    return 0;
}

/* Remove framing and hop-by-hop headers (and those Connection names). */
static void strip_hop(kvs *h)
{
    const char *conn = kvs_get(h, "Connection");
    char *names = conn ? strdup(conn) : NULL;
    for (char *save = NULL, *t = names ? strtok_r(names, ",", &save) : NULL; t; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ' || *t == '\t') t++;
        size_t n = strlen(t);
        while (n && (t[n - 1] == ' ' || t[n - 1] == '\t')) t[--n] = '\0';
        if (*t) kvs_del(h, t, 1);
    }
    free(names);
    static const char *hop[] = {"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authorization",
                                "Proxy-Authenticate", "TE", "Trailer", "Transfer-Encoding", "Upgrade",
                                "Content-Length", NULL};
    for (int i = 0; hop[i]; i++) kvs_del(h, hop[i], 1);
}

/* Go's CanonicalHeaderKey: "x-foo-bar" -> "X-Foo-Bar" (unchanged when the
 * name has characters outside a token). */
static char *canon(const char *k)
{
    char *o = strdup(k);
    if (!o || !token_ok(k, strlen(k))) return o;
    int up = 1;
    for (char *c = o; *c; c++) {
        *c = (char)(up ? toupper((unsigned char)*c) : tolower((unsigned char)*c));
        up = *c == '-';
    }
    return o;
}

static void hdr_set(kvs *h, const char *k, const char *v)
{
    kvs_del(h, k, 1);
    char *ck = canon(k);
    if (ck) kvs_add0(h, ck, v);
    free(ck);
}

/* Headers we own (framing, hop-by-hop, Host): never taken from mutations. */
static int reserved_header(const char *k)
{
    static const char *r[] = {"Host", "Connection", "Proxy-Connection", "Keep-Alive", "Transfer-Encoding",
                              "Content-Length", "TE", "Trailer", "Upgrade", NULL};
    for (int i = 0; r[i]; i++)
        if (!strcasecmp(k, r[i])) return 1;
    return 0;
}

/* ===================================================================== */
/* URLs and queries                                                       */

static int hexv(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static char *pct_decode(const char *s, size_t n, int plus)
{
    char *o = malloc(n + 1), *q = o;
    if (!o) return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && hexv(s[i + 1]) >= 0 && hexv(s[i + 2]) >= 0) {
            *q++ = (char)(hexv(s[i + 1]) * 16 + hexv(s[i + 2]));
            i += 2;
        } else if (plus && s[i] == '+') {
            *q++ = ' ';
        } else {
            *q++ = s[i];
        }
    }
    *q = '\0';
    return o;
}

/* Go's QueryEscape: unreserved bytes kept, space as '+', the rest %XX. */
static void query_escape(sbuf *b, const char *s)
{
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (isalnum(*c) || *c == '-' || *c == '_' || *c == '.' || *c == '~') sb_add(b, c, 1);
        else if (*c == ' ') sb_add(b, "+", 1);
        else sb_printf(b, "%%%02X", *c);
    }
}

/* Decoded query pairs from a raw query string. */
static void query_parse(const char *raw, kvs *out)
{
    if (!raw) return;
    for (const char *p = raw; *p;) {
        const char *e = strchr(p, '&');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n) {
            const char *eq = memchr(p, '=', n);
            size_t kl = eq ? (size_t)(eq - p) : n;
            char *k = pct_decode(p, kl, 1);
            char *v = eq ? pct_decode(eq + 1, n - kl - 1, 1) : strdup("");
            if (k && v) kvs_add0(out, k, v);
            free(k);
            free(v);
        }
        p += n;
        if (*p) p++;
    }
}

static int cmp_key(const void *a, const void *b)
{
    return strcmp(((const kv *)a)->k, ((const kv *)b)->k);
}

/* Encode as Go's url.Values.Encode does: sorted by key. */
static char *query_encode(kvs *q)
{
    /* stable sort: insertion order of equal keys is kept by sorting indices */
    kv *tmp = malloc((q->n ? q->n : 1) * sizeof *tmp);
    if (!tmp) return strdup("");
    memcpy(tmp, q->v, q->n * sizeof *tmp);
    for (size_t i = 1; i < q->n; i++) {           /* insertion sort: stable, small */
        kv x = tmp[i];
        size_t j = i;
        while (j > 0 && cmp_key(&tmp[j - 1], &x) > 0) { tmp[j] = tmp[j - 1]; j--; }
        tmp[j] = x;
    }
    sbuf b = {0};
    for (size_t i = 0; i < q->n; i++) {
        if (i) sb_add(&b, "&", 1);
        query_escape(&b, tmp[i].k);
        sb_add(&b, "=", 1);
        query_escape(&b, tmp[i].v);
    }
    free(tmp);
    if (!b.p) return strdup("");
    return b.p;
}

typedef struct url {
    char *host;                  /* lower-case, no brackets */
    int port;
    char *path;                  /* raw, starts with '/' */
    char *query;                 /* raw, NULL when none */
    int has_port;
} url;

static void url_free(url *u) { free(u->host); free(u->path); secret_free(u->query); memset(u, 0, sizeof *u); }

/* "host[:port]" (CONNECT target or URL authority) -> host, port. */
static int parse_authority(const char *a, size_t n, int defport, url *u)
{
    const char *at = memchr(a, '@', n);
    while (at) {                 /* userinfo: drop up to the last '@' */
        n -= (size_t)(at + 1 - a);
        a = at + 1;
        at = memchr(a, '@', n);
    }
    const char *hs = a, *he, *ps = NULL;
    if (n && a[0] == '[') {
        const char *rb = memchr(a, ']', n);
        if (!rb) return -1;
        hs = a + 1;
        he = rb;
        if ((size_t)(rb + 1 - a) < n) {
            if (rb[1] != ':') return -1;
            ps = rb + 2;
        }
    } else {
        const char *colon = NULL;
        for (const char *c = a; c < a + n; c++) if (*c == ':') colon = c;
        he = colon ? colon : a + n;
        if (colon) ps = colon + 1;
    }
    if (he <= hs) return -1;
    for (const char *c = hs; c < he; c++)
        if ((unsigned char)*c <= 32 || *c == '/' || *c == '\\' || *c == '%' || (unsigned char)*c >= 127) return -1;
    u->port = defport;
    if (ps) {
        size_t pl = (size_t)(a + n - ps);
        if (!pl) return -1;
        int port = 0;
        for (size_t i = 0; i < pl; i++) {
            if (!isdigit((unsigned char)ps[i]) || port > 65535) return -1;
            port = port * 10 + (ps[i] - '0');
        }
        if (port < 1 || port > 65535) return -1;
        u->port = port;
        u->has_port = 1;
    }
    u->host = strndup(hs, (size_t)(he - hs));
    if (!u->host) return -1;
    for (char *c = u->host; *c; c++) *c = (char)tolower((unsigned char)*c);
    return 0;
}

static int parse_url(const char *t, url *u)
{
    memset(u, 0, sizeof *u);
    if (strncasecmp(t, "http://", 7)) return -1;
    t += 7;
    size_t al = strcspn(t, "/?#");
    if (parse_authority(t, al, 80, u) != 0) return -1;
    t += al;
    size_t pl = strcspn(t, "?#");
    if (pl) u->path = strndup(t, pl);
    else u->path = strdup("/");
    t += pl;
    if (*t == '?') {
        t++;
        u->query = strndup(t, strcspn(t, "#"));
    }
    if (!u->path) return -1;
    for (const char *c = u->path; *c; c++)
        if ((unsigned char)*c <= 32 || (unsigned char)*c == 127) return -1;
    for (const char *c = u->query; c && *c; c++)
        if ((unsigned char)*c <= 32 || (unsigned char)*c == 127) return -1;
    return 0;
}

/* ===================================================================== */
/* events                                                                 */

static void on_events(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    proxy *px = arg;
    uint64_t cnt;
    if (read(fd, &cnt, sizeof cnt) < 0) {}
    char *lines[EVQ_MAX];
    size_t lens[EVQ_MAX];
    int n;
    pthread_mutex_lock(&px->mu);
    n = px->nev;
    memcpy(lines, px->evq, (size_t)n * sizeof *lines);
    memcpy(lens, px->evq_len, (size_t)n * sizeof *lens);
    px->nev = 0;
    pthread_mutex_unlock(&px->mu);
    server *s = px->srv;
    for (int i = 0; i < n; i++) {
        if (!s->out_stalled && !s->exiting) {   /* a client that is not reading loses events */
            jw w;
            jw_init(&w);
            jw_raw(&w, lines[i], lens[i]);
            srv_send(s, &w);
            jw_free(&w);
        }
        free(lines[i]);
    }
}

typedef struct xinfo {
    const char *method;
    char *url, *host;
    int status;
    uint64_t req_bytes, resp_bytes;
    struct timespec t0;
    int blocked;
    char *reason;
} xinfo;

static void emit_event(proxy *px, xinfo *x)
{
    struct timespec now, wall;
    clock_gettime(CLOCK_MONOTONIC, &now);
    clock_gettime(CLOCK_REALTIME, &wall);
    int64_t ms = (int64_t)(now.tv_sec - x->t0.tv_sec) * 1000 + (now.tv_nsec - x->t0.tv_nsec) / 1000000;
    jw w;
    jw_init(&w);
    jw_obj(&w);
    jw_key(&w, "jsonrpc"); jw_str(&w, "2.0");
    jw_key(&w, "method"); jw_str(&w, "event");
    jw_key(&w, "params");
    jw_obj(&w);
    jw_key(&w, "type"); jw_str(&w, "network");
    jw_key(&w, "timestamp"); jw_int(&w, (int64_t)wall.tv_sec);
    jw_key(&w, "network");
    jw_obj(&w);
    jw_key(&w, "method"); jw_str(&w, x->method ? x->method : "");
    jw_key(&w, "url"); jw_str(&w, x->url ? x->url : "");
    jw_key(&w, "host"); jw_str(&w, x->host ? x->host : "");
    jw_key(&w, "status_code"); jw_int(&w, x->status);
    jw_key(&w, "request_bytes"); jw_uint(&w, x->req_bytes);
    jw_key(&w, "response_bytes"); jw_uint(&w, x->resp_bytes);
    jw_key(&w, "duration_ms"); jw_int(&w, ms);
    jw_key(&w, "blocked"); jw_bool(&w, x->blocked);
    if (x->blocked && x->reason) { jw_key(&w, "block_reason"); jw_str(&w, x->reason); }
    jw_obj_end(&w);
    jw_obj_end(&w);
    jw_obj_end(&w);
    if (w.oom) { jw_free(&w); return; }
    size_t len = 0;
    char *line = jw_take(&w, &len);
    int queued = 0;
    pthread_mutex_lock(&px->mu);
    if (!stopping(px) && px->nev < EVQ_MAX && line) {
        px->evq[px->nev] = line;
        px->evq_len[px->nev] = len;
        px->nev++;
        queued = 1;
    } else {
        px->dropped++;
    }
    pthread_mutex_unlock(&px->mu);
    if (queued) {
        uint64_t one = 1;
        if (write(px->evfd, &one, sizeof one) < 0) {}
    } else {
        free(line);
    }
}

/* ===================================================================== */
/* policy                                                                 */

/* Allow-list only (runtime updates included). */
static int host_allowed(proxy *px, const char *host)
{
    pthread_mutex_lock(&px->mu);
    int ok = !px->allowed || !px->allowed[0] || any_glob(px->allowed, host);
    pthread_mutex_unlock(&px->mu);
    return ok;
}

/* Resolve host:port (add_hosts first).  With private blocking, every
 * address must be public.  0 ok (*out set), -1 private (*why), -2 DNS. */
static int resolve(proxy *px, const char *host, int port, struct addrinfo **out, char **why)
{
    const char *name = host;
    for (size_t i = 0; i < px->add_hosts.n; i++)
        if (!strcmp(px->add_hosts.v[i].k, host)) { name = px->add_hosts.v[i].v; break; }
    char ps[8];
    snprintf(ps, sizeof ps, "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int rc = getaddrinfo(name, ps, &hints, out);
    if (rc != 0) {
        if (asprintf(why, "cannot resolve %s: %s", host, gai_strerror(rc)) < 0) *why = NULL;
        *out = NULL;
        return -2;
    }
    if (px->block_private) {
        for (struct addrinfo *a = *out; a; a = a->ai_next) {
            if (!addr_private(a->ai_addr)) continue;
            char ip[INET6_ADDRSTRLEN] = "?";
            if (a->ai_family == AF_INET) inet_ntop(AF_INET, &((struct sockaddr_in *)a->ai_addr)->sin_addr, ip, sizeof ip);
            else if (a->ai_family == AF_INET6) inet_ntop(AF_INET6, &((struct sockaddr_in6 *)a->ai_addr)->sin6_addr, ip, sizeof ip);
            if (asprintf(why, "private IP %s blocked for host %s", ip, host) < 0) *why = NULL;
            freeaddrinfo(*out);
            *out = NULL;
            return -1;
        }
    }
    return 0;
}

/* Connect to one of the addresses; the fd is registered in slot FD_UP. */
static int connect_any(pconn *c, struct addrinfo *ai)
{
    proxy *px = c->px;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        if (a->ai_family == AF_INET) {
            struct sockaddr_in *sin = (struct sockaddr_in *)a->ai_addr;
            if (sin->sin_addr.s_addr == htonl(INADDR_LOOPBACK) && ntohs(sin->sin_port) == px->port) continue;
        }
        int fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) continue;
        conn_setfd(c, FD_UP, fd);
        int rc = connect(fd, a->ai_addr, a->ai_addrlen);
        if (rc != 0 && errno == EINPROGRESS) {
            if (wait_fd(px, fd, POLLOUT, CONNECT_MS) == 1) {
                int err = 0;
                socklen_t el = sizeof err;
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
                rc = err ? -1 : 0;
            }
        }
        if (rc == 0) return fd;
        conn_closefd(c, FD_UP);
    }
    return -1;
}

/* ===================================================================== */
/* responses of our own                                                   */

static void send_simple(pconn *c, int code, const char *reason, const char *text)
{
    sbuf b = {0};
    sb_printf(&b, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %zu\r\n"
              "Connection: close\r\n\r\n%s", code, reason, strlen(text), text);
    if (!b.oom && b.p) io_write(c->px, c->fd[FD_CLIENT], b.p, b.len, -1);
    sb_free(&b);
}

static void block_reply(pconn *c, xinfo *x, const char *reason)
{
    char text[600];
    snprintf(text, sizeof text, "Blocked by matchlock-local: %.500s\n", reason);
    send_simple(c, 403, "Forbidden", text);
    x->status = 403;
    x->blocked = 1;
    free(x->reason);
    x->reason = strdup(reason);
}

/* ===================================================================== */
/* callbacks                                                              */

/* The exchange's request, as the rules and callbacks see it. */
typedef struct xreq {
    char *method;
    url u;
    kvs h;                       /* without framing, hop-by-hop and Host */
    char *host_hdr;
} xreq;

typedef struct xresp {
    int status;
    char *reason;
    kvs h;                       /* without framing and hop-by-hop */
    body b;
    char *orig_len;              /* Content-Length of a bodiless response */
} xresp;

static char *decoded_path(const xreq *q)
{
    return pct_decode(q->u.path, strlen(q->u.path), 0);
}

/* An object key that may need escaping. */
static void key_esc(jw *w, const char *k)
{
    if (w->oom) return;
    jw_key(w, "");
    if (w->oom) return;
    w->len -= 3;                 /* drop the `"":` again, keep the separator */
    jw_str(w, k);
    jw_raw(w, ":", 1);
    w->need_comma[w->depth] = 2;
}

static void write_headers_json(jw *w, const kvs *h)
{
    /* {Canonical: [values...]} grouped in first-seen order */
    jw_obj(w);
    int *done = calloc(h->n ? h->n : 1, sizeof *done);
    for (size_t i = 0; i < h->n; i++) {
        if (done && done[i]) continue;
        char *ck = canon(h->v[i].k);
        if (!ck) continue;
        key_esc(w, ck);
        jw_arr(w);
        for (size_t j = i; j < h->n; j++) {
            if (strcasecmp(h->v[j].k, h->v[i].k)) continue;
            jw_str(w, h->v[j].v);
            if (done) done[j] = 1;
        }
        jw_arr_end(w);
        free(ck);
    }
    free(done);
    jw_obj_end(w);
}

/* One callback exchange: write the request line, read the reply line.
 * Returns the parsed reply (caller frees d and buf) or -1 (skip). */
static int callback_call(pconn *c, const nrule *r, const char *json, size_t n, jdoc *d, char **buf)
{
    proxy *px = c->px;
    int ms = r->timeout_ms > 0 ? (int)(r->timeout_ms > 600000 ? 600000 : r->timeout_ms) : CB_DEFAULT_MS;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (!px->callback_socket || strlen(px->callback_socket) >= sizeof(((struct sockaddr_un *)0)->sun_path))
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    conn_setfd(c, FD_CB, fd);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", px->callback_socket);
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    if (rc != 0 && (errno == EINPROGRESS || errno == EAGAIN)) {
        if (wait_fd(px, fd, POLLOUT, ms) == 1) {
            int err = 0;
            socklen_t el = sizeof err;
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
            rc = err ? -1 : 0;
        }
    }
    sbuf in = {0};
    int result = -1;
    if (rc != 0) goto out;
    /* write, then read one line, all within the rule's timeout */
    const char *p = json;
    size_t left = n;
    for (;;) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        int used = (int)((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000);
        int rem = ms - used;
        if (rem <= 0) goto out;
        if (left) {
            ssize_t w = send(fd, p, left, MSG_NOSIGNAL);
            if (w > 0) { p += w; left -= (size_t)w; continue; }
            if (w < 0 && errno == EINTR) continue;
            if (w < 0 && errno != EAGAIN) goto out;
            if (wait_fd(px, fd, POLLOUT, rem) != 1) goto out;
            continue;
        }
        if (sb_reserve(&in, 65536) != 0) goto out;
        ssize_t k = recv(fd, in.p + in.len, in.cap - in.len - 1, 0);
        if (k > 0) {
            in.len += (size_t)k;
            in.p[in.len] = '\0';
            char *nl = memchr(in.p, '\n', in.len);
            if (nl) { in.len = (size_t)(nl - in.p); in.p[in.len] = '\0'; break; }
            if (in.len > CB_REPLY_MAX) goto out;
            continue;
        }
        if (k == 0) break;         /* EOF: a reply without newline still counts */
        if (errno == EINTR) continue;
        if (errno != EAGAIN) goto out;
        if (wait_fd(px, fd, POLLIN, rem) != 1) goto out;
    }
    if (!in.len) goto out;
    jd_init(d);
    if (jd_parse(d, in.p, in.len) != 0 || !jd_root(d) || jd_root(d)->type != JN_OBJ) {
        jd_free(d);
        goto out;
    }
    const char *err = jd_str(d, jd_root(d), "error", NULL);
    if (err && *err) { jd_free(d); goto out; }
    *buf = in.p;
    in.p = NULL;
    result = 0;
out:
    conn_closefd(c, FD_CB);
    sb_free(&in);
    return result;
}

static int reply_action(const jdoc *d)
{
    const char *a = jd_str(d, jd_root(d), "action", "");
    if (!strcasecmp(a, "block")) return ACT_BLOCK;
    if (!strcasecmp(a, "mutate")) return ACT_MUTATE;
    return ACT_ALLOW;
}

/* Replace a header list with a {name: [values]} (or {name: value}) object. */
static void headers_from_json(const jdoc *d, const jnode *obj, kvs *h)
{
    kvs_clear(h);
    for (const jnode *k = jd_first(d, obj); k; k = jd_next(d, k)) {
        const jnode *v = jd_val(k);
        char *key = k->s;
        while (*key == ' ' || *key == '\t') key++;
        if (!*key || reserved_header(key) || !token_ok(key, strlen(key))) continue;
        char *ck = canon(key);
        if (!ck) continue;
        if (v->type == JN_ARR) {
            for (const jnode *x = jd_first(d, v); x; x = jd_next(d, x))
                if (x->type == JN_STR && !memchr(x->s, '\n', x->len) && !memchr(x->s, '\r', x->len))
                    kvs_add(h, ck, strlen(ck), x->s, x->len);
        } else if (v->type == JN_STR && !memchr(v->s, '\n', v->len) && !memchr(v->s, '\r', v->len)) {
            kvs_add(h, ck, strlen(ck), v->s, v->len);
        }
        free(ck);
    }
}

static int valid_header_value(const char *v)
{
    return !strchr(v, '\r') && !strchr(v, '\n');
}

static void set_path(xreq *q, const char *np)
{
    sbuf b = {0};
    if (np[0] != '/') sb_add(&b, "/", 1);
    for (const unsigned char *c = (const unsigned char *)np; *c; c++) {
        if (*c <= 32 || *c >= 127 || *c == '?' || *c == '#') sb_printf(&b, "%%%02X", *c);
        else sb_add(&b, c, 1);
    }
    if (!b.p) return;
    free(q->u.path);
    q->u.path = b.p;
}

/* The callback JSON shared by both phases. */
static void cb_common(jw *w, const nrule *r, const char *phase, const xreq *q)
{
    jw_obj(w);
    jw_key(w, "callback_id"); jw_str(w, r->callback_id);
    jw_key(w, "phase"); jw_str(w, phase);
    jw_key(w, "host"); jw_str(w, q->u.host);
    jw_key(w, "method"); jw_str(w, q->method);
    char *path = decoded_path(q);
    jw_key(w, "path"); jw_str(w, path ? path : q->u.path);
    free(path);
    kvs qs = {0};
    query_parse(q->u.query, &qs);
    jw_key(w, "query");
    jw_obj(w);
    for (size_t i = 0; i < qs.n; i++) {
        size_t j;
        for (j = 0; j < i; j++) if (!strcmp(qs.v[j].k, qs.v[i].k)) break;
        if (j < i) continue;        /* first value per key, as upstream */
        key_esc(w, qs.v[i].k);
        jw_str(w, qs.v[i].v);
    }
    jw_obj_end(w);
    kvs_clear(&qs);
    jw_key(w, "request_headers");
    write_headers_json(w, &q->h);
}

/* ===================================================================== */
/* rules                                                                  */

static int rule_matches(const nrule *r, const xreq *q)
{
    if (r->hosts && r->hosts[0] && !any_glob(r->hosts, q->u.host)) return 0;
    if (r->methods && r->methods[0]) {
        int ok = 0;
        for (size_t i = 0; r->methods[i]; i++) if (!strcasecmp(r->methods[i], q->method)) ok = 1;
        if (!ok) return 0;
    }
    if (r->path) {
        char *p = decoded_path(q);
        int ok = p && fnmatch(r->path, p, FNM_PATHNAME) == 0;
        free(p);
        if (!ok) return 0;
    }
    return 1;
}

/* Phase before.  0 go on, 1 blocked (*why set). */
static int rules_before(pconn *c, xreq *q, char **why)
{
    proxy *px = c->px;
    for (size_t i = 0; i < px->nrules; i++) {
        const nrule *r = &px->rules[i];
        if (r->after || !rule_matches(r, q)) continue;
        if (r->action == ACT_BLOCK) {
            if (asprintf(why, "blocked by rule%s%s", r->name && *r->name ? " " : "", r->name ? r->name : "") < 0) *why = NULL;
            return 1;
        }
        for (size_t k = 0; k < r->set_headers.n; k++)
            if (!reserved_header(r->set_headers.v[k].k) && valid_header_value(r->set_headers.v[k].v))
                hdr_set(&q->h, r->set_headers.v[k].k, r->set_headers.v[k].v);
        for (size_t k = 0; r->delete_headers && r->delete_headers[k]; k++) kvs_del(&q->h, r->delete_headers[k], 1);
        if (r->set_query.n || (r->delete_query && r->delete_query[0])) {
            kvs qs = {0};
            query_parse(q->u.query, &qs);
            for (size_t k = 0; k < r->set_query.n; k++) {
                kvs_del(&qs, r->set_query.v[k].k, 0);
                kvs_add0(&qs, r->set_query.v[k].k, r->set_query.v[k].v);
            }
            for (size_t k = 0; r->delete_query && r->delete_query[k]; k++) kvs_del(&qs, r->delete_query[k], 0);
            free(q->u.query);
            q->u.query = qs.n ? query_encode(&qs) : NULL;
            kvs_clear(&qs);
        }
        if (r->rewrite_path) set_path(q, r->rewrite_path);
        if (!r->callback_id) continue;

        jw w;
        jw_init(&w);
        cb_common(&w, r, "before", q);
        jw_obj_end(&w);
        jw_nl(&w);
        jdoc d;
        char *buf = NULL;
        if (w.oom || callback_call(c, r, w.buf, w.len, &d, &buf) != 0) { jw_free(&w); continue; }
        jw_free(&w);
        const jnode *root = jd_root(&d);
        if (reply_action(&d) == ACT_BLOCK) {
            if (asprintf(why, "blocked by network hook%s%s", r->name && *r->name ? " " : "", r->name ? r->name : "") < 0) *why = NULL;
            jd_free(&d);
            free(buf);
            return 1;
        }
        const jnode *rq = jd_get(&d, root, "request");
        if (rq && rq->type == JN_OBJ) {
            const jnode *hh = jd_get(&d, rq, "headers"), *qq = jd_get(&d, rq, "query");
            const char *np = jd_str(&d, rq, "path", NULL);
            if (hh && hh->type == JN_OBJ) headers_from_json(&d, hh, &q->h);
            if (qq && qq->type == JN_OBJ) {
                kvs qs = {0};
                for (const jnode *k = jd_first(&d, qq); k; k = jd_next(&d, k)) {
                    const jnode *v = jd_val(k);
                    char *key = k->s;
                    while (*key == ' ') key++;
                    if (*key && v->type == JN_STR) { kvs_del(&qs, key, 0); kvs_add0(&qs, key, v->s); }
                }
                free(q->u.query);
                q->u.query = qs.n ? query_encode(&qs) : NULL;
                kvs_clear(&qs);
            }
            if (np) {
                while (*np == ' ') np++;
                if (*np) set_path(q, np);
            }
        }
        jd_free(&d);
        free(buf);
    }
    return 0;
}

typedef struct after_out {
    kvs repl;                    /* accumulated body replacements */
    unsigned char *set_body;
    size_t set_len;
    int has_set_body;
} after_out;

static int is_sse(const kvs *h)
{
    const char *ct = kvs_get(h, "Content-Type");
    if (!ct) return 0;
    while (*ct == ' ') ct++;
    return !strncasecmp(ct, "text/event-stream", 17);
}

/* Phase after.  0 go on, 1 blocked. */
static int rules_after(pconn *c, xreq *q, xresp *rs, after_out *ao, char **why)
{
    proxy *px = c->px;
    for (size_t i = 0; i < px->nrules; i++) {
        const nrule *r = &px->rules[i];
        if (!r->after || !rule_matches(r, q)) continue;
        if (r->action == ACT_BLOCK) {
            if (asprintf(why, "blocked by rule%s%s", r->name && *r->name ? " " : "", r->name ? r->name : "") < 0) *why = NULL;
            return 1;
        }
        for (size_t k = 0; k < r->set_resp_headers.n; k++)
            if (!reserved_header(r->set_resp_headers.v[k].k) && valid_header_value(r->set_resp_headers.v[k].v))
                hdr_set(&rs->h, r->set_resp_headers.v[k].k, r->set_resp_headers.v[k].v);
        for (size_t k = 0; r->delete_resp_headers && r->delete_resp_headers[k]; k++)
            kvs_del(&rs->h, r->delete_resp_headers[k], 1);
        for (size_t k = 0; k < r->body_repl.n; k++) kvs_add0(&ao->repl, r->body_repl.v[k].k, r->body_repl.v[k].v);
        if (!r->callback_id) continue;

        jw w;
        jw_init(&w);
        cb_common(&w, r, "after", q);
        jw_key(&w, "status_code"); jw_int(&w, rs->status);
        jw_key(&w, "response_headers"); write_headers_json(&w, &rs->h);
        jw_key(&w, "is_sse"); jw_bool(&w, is_sse(&rs->h));
        jw_obj_end(&w);
        jw_nl(&w);
        jdoc d;
        char *buf = NULL;
        if (w.oom || callback_call(c, r, w.buf, w.len, &d, &buf) != 0) { jw_free(&w); continue; }
        jw_free(&w);
        const jnode *root = jd_root(&d);
        if (reply_action(&d) == ACT_BLOCK) {
            if (asprintf(why, "blocked by network hook%s%s", r->name && *r->name ? " " : "", r->name ? r->name : "") < 0) *why = NULL;
            jd_free(&d);
            free(buf);
            return 1;
        }
        const jnode *rp = jd_get(&d, root, "response");
        if (rp && rp->type == JN_OBJ) {
            const jnode *hh = jd_get(&d, rp, "headers"), *br = jd_get(&d, rp, "body_replacements");
            const jnode *sb = jd_get(&d, rp, "set_body_base64");
            if (hh && hh->type == JN_OBJ) headers_from_json(&d, hh, &rs->h);
            for (const jnode *x = jd_first(&d, br && br->type == JN_ARR ? br : NULL); x; x = jd_next(&d, x)) {
                const char *f = jd_str(&d, x, "find", ""), *t = jd_str(&d, x, "replace", "");
                if (*f) kvs_add0(&ao->repl, f, t);
            }
            if (sb && sb->type == JN_STR) {
                /* trimmed; invalid base64 is ignored, as upstream */
                char *s = sb->s;
                size_t n = sb->len;
                while (n && isspace((unsigned char)*s)) { s++; n--; }
                while (n && isspace((unsigned char)s[n - 1])) n--;
                unsigned char *dec = n ? malloc(n) : NULL;
                long long dl = dec ? b64_decode(s, n, dec) : -1;
                if (dl >= 0) {
                    free(ao->set_body);
                    ao->set_body = dec;
                    ao->set_len = (size_t)dl;
                    ao->has_set_body = 1;
                } else {
                    free(dec);
                }
            }
        }
        jd_free(&d);
        free(buf);
    }
    return 0;
}

static void apply_repl(sbuf *b, const kvs *repl)
{
    for (size_t i = 0; i < repl->n; i++) {
        const char *f = repl->v[i].k, *t = repl->v[i].v;
        size_t fl = strlen(f), tl = strlen(t);
        if (!fl || b->len < fl) continue;
        sbuf o = {0};
        size_t pos = 0;
        int any = 0;
        for (;;) {
            char *hit = memmem(b->p + pos, b->len - pos, f, fl);
            if (!hit) break;
            any = 1;
            sb_add(&o, b->p + pos, (size_t)(hit - (b->p + pos)));
            sb_add(&o, t, tl);
            pos = (size_t)(hit - b->p) + fl;
        }
        if (!any) continue;
        sb_add(&o, b->p + pos, b->len - pos);
        if (o.oom) { sb_free(&o); continue; }
        if (!o.p) { o.p = calloc(1, 1); }
        sb_free(b);
        *b = o;
    }
}

/* ===================================================================== */
/* secrets                                                                */

static void replace_in(char **s, const char *ph, const char *val)
{
    if (!*s || !strstr(*s, ph)) return;
    sbuf b = {0};
    sb_str(&b, *s);
    kvs one = {0};
    kvs_add0(&one, ph, val);
    apply_repl(&b, &one);
    kvs_clear(&one);
    if (b.oom || !b.p) { sb_free(&b); return; }
    secret_free(*s);
    *s = b.p;
}

/* 0, or 1 when a placeholder is bound for a host it does not belong to. */
static int apply_secrets(proxy *px, xreq *q, char **why)
{
    for (size_t i = 0; i < px->nsecrets; i++) {
        const psecret *s = &px->secrets[i];
        int ok = !s->hosts || !s->hosts[0] || any_glob(s->hosts, q->u.host);
        if (!ok) {
            int leak = strstr(q->u.path, s->placeholder) || (q->u.query && strstr(q->u.query, s->placeholder)) ||
                       (q->host_hdr && strstr(q->host_hdr, s->placeholder));
            for (size_t k = 0; k < q->h.n && !leak; k++) leak = strstr(q->h.v[k].v, s->placeholder) != NULL;
            if (leak) {
                if (asprintf(why, "secret %s may not be sent to host %s", s->name, q->u.host) < 0) *why = NULL;
                return 1;
            }
            continue;
        }
        /* a value that cannot stand in a header line is not put there; in
         * the query, bytes that would break the request line are escaped */
        if (valid_header_value(s->value))
            for (size_t k = 0; k < q->h.n; k++) replace_in(&q->h.v[k].v, s->placeholder, s->value);
        if (q->u.query && strstr(q->u.query, s->placeholder)) {
            sbuf ev = {0};
            for (const unsigned char *c = (const unsigned char *)s->value; *c; c++) {
                if (*c <= 32 || *c >= 127 || *c == '#') sb_printf(&ev, "%%%02X", *c);
                else sb_add(&ev, c, 1);
            }
            if (!ev.oom) replace_in(&q->u.query, s->placeholder, ev.p ? ev.p : "");
            sb_free(&ev);
        }
    }
    return 0;
}

/* ===================================================================== */
/* the exchange                                                           */

static void url_string(sbuf *b, const url *u, int with_scheme)
{
    if (with_scheme) sb_str(b, "http://");
    int v6 = strchr(u->host, ':') != NULL;
    sb_printf(b, v6 ? "[%s]" : "%s", u->host);
    if (u->has_port || u->port != 80) sb_printf(b, ":%d", u->port);
    if (with_scheme) {
        sb_str(b, u->path);
        if (u->query) { sb_add(b, "?", 1); sb_str(b, u->query); }
    }
}

/* Relay a decoded body from `from` to fd, re-chunking when asked.
 * 0 done, -1 writing failed, -2 reading failed. */
static int relay_body(pconn *c, rd *from, body *b, int to, int chunked, uint64_t *count)
{
    const char *p;
    size_t n;
    int k;
    while ((k = body_next(from, b, &p, &n)) == 1) {
        if (!n) continue;
        if (chunked) {
            char hdr[32];
            int hl = snprintf(hdr, sizeof hdr, "%zx\r\n", n);
            if (io_write(c->px, to, hdr, (size_t)hl, -1) != 0) return -1;
        }
        if (io_write(c->px, to, p, n, -1) != 0) return -1;
        if (chunked && io_write(c->px, to, "\r\n", 2, -1) != 0) return -1;
        *count += n;
    }
    if (k < 0) return -2;
    if (chunked && io_write(c->px, to, "0\r\n\r\n", 5, -1) != 0) return -1;
    return 0;
}

static void write_resp_head(sbuf *b, const xresp *rs, const char *framing)
{
    sb_printf(b, "HTTP/1.1 %d %s\r\n", rs->status, rs->reason && *rs->reason ? rs->reason : "Status");
    for (size_t i = 0; i < rs->h.n; i++) sb_printf(b, "%s: %s\r\n", rs->h.v[i].k, rs->h.v[i].v);
    if (framing) sb_str(b, framing);
    sb_str(b, "Connection: close\r\n\r\n");
}

/* ---- plain http: the request, the policy, upstream, the response ---------- */

/* The request line and head into q (the end-to-end headers) and rb (the
 * body's framing); 0, or -1 when the client got an error answer. */
static int http_request(pconn *c, head *hd, xinfo *x, xreq *q, body *rb, int *expect100)
{
    q->method = hd->line0[0];
    x->method = q->method;
    if (parse_url(hd->line0[1], &q->u) != 0) {
        if (!strncasecmp(hd->line0[1], "https://", 8))
            send_simple(c, 400, "Bad Request", "matchlock-local proxy: use CONNECT for https URLs\n");
        else
            send_simple(c, 400, "Bad Request", "matchlock-local proxy: expected an absolute http:// URL\n");
        x->status = 400;
        sbuf u = {0};
        sb_str(&u, hd->line0[1]);
        x->url = u.p;
        return -1;
    }
    {
        sbuf u = {0};
        url_string(&u, &q->u, 1);
        x->url = u.p;
        x->host = strdup(q->u.host);
    }
    if (framing(&hd->h, rb, NULL) < 0) {
        send_simple(c, 400, "Bad Request", "matchlock-local proxy: invalid Content-Length\n");
        x->status = 400;
        return -1;
    }
    if (rb->kind == BODY_CLOSE) {            /* a request cannot be close-delimited */
        send_simple(c, 501, "Not Implemented", "matchlock-local proxy: unsupported Transfer-Encoding\n");
        x->status = 501;
        return -1;
    }
    *expect100 = has_token(kvs_get(&hd->h, "Expect"), "100-continue");
    const char *hh = kvs_get(&hd->h, "Host");
    q->host_hdr = hh ? strdup(hh) : NULL;
    /* q->h: the end-to-end headers */
    for (size_t i = 0; i < hd->h.n; i++) kvs_add0(&q->h, hd->h.v[i].k, hd->h.v[i].v);
    strip_hop(&q->h);
    kvs_del(&q->h, "Host", 1);
    kvs_del(&q->h, "Expect", 1);
    return 0;
}

/* The policy before anything goes upstream: the allow-list, the resolved
 * address (*ai), the before-rules, the secrets; 0, or -1 when the client
 * got an answer (blocked, or the host does not resolve). */
static int http_admit(pconn *c, xinfo *x, xreq *q, struct addrinfo **ai)
{
    proxy *px = c->px;
    char *why = NULL;
    int ret = -1;
    if (!host_allowed(px, q->u.host)) {
        if (asprintf(&why, "host %s is not in the allow-list", q->u.host) < 0) why = NULL;
        block_reply(c, x, why ? why : "host not allowed");
        goto out;
    }
    int rc = resolve(px, q->u.host, q->u.port, ai, &why);
    if (rc == -1) { block_reply(c, x, why ? why : "private IP blocked"); goto out; }
    if (rc == -2) {
        char t[600];
        snprintf(t, sizeof t, "matchlock-local proxy: %.500s\n", why ? why : "cannot resolve host");
        send_simple(c, 502, "Bad Gateway", t);
        x->status = 502;
        goto out;
    }
    free(why);
    why = NULL;
    if (rules_before(c, q, &why)) { block_reply(c, x, why ? why : "blocked by rule"); goto out; }
    free(why);
    why = NULL;
    if (apply_secrets(px, q, &why)) { block_reply(c, x, why ? why : "secret leak"); goto out; }
    ret = 0;
out:
    free(why);
    return ret;
}

/* The request head and body to the upstream on ufd (with 100 Continue to
 * the client when it asked); 0, or -1 when the client got an error answer. */
static int http_forward(pconn *c, rd *cr, xinfo *x, const xreq *q, body *rb, int expect100, int ufd)
{
    proxy *px = c->px;
    sbuf out = {0};
    /* the request head */
    sb_printf(&out, "%s %s", q->method, q->u.path);
    if (q->u.query) sb_printf(&out, "?%s", q->u.query);
    sb_str(&out, " HTTP/1.1\r\nHost: ");
    if (q->host_hdr && valid_header_value(q->host_hdr)) sb_str(&out, q->host_hdr);
    else url_string(&out, &q->u, 0);
    sb_str(&out, "\r\n");
    for (size_t i = 0; i < q->h.n; i++) sb_printf(&out, "%s: %s\r\n", q->h.v[i].k, q->h.v[i].v);
    if (rb->kind == BODY_LEN) sb_printf(&out, "Content-Length: %llu\r\n", (unsigned long long)rb->left);
    if (rb->kind == BODY_CHUNKED) sb_str(&out, "Transfer-Encoding: chunked\r\n");
    sb_str(&out, "Connection: close\r\n\r\n");
    if (out.oom || io_write(px, ufd, out.p, out.len, -1) != 0) {
        send_simple(c, 502, "Bad Gateway", "matchlock-local proxy: upstream write failed\n");
        x->status = 502;
        sb_free(&out);
        return -1;
    }
    sb_free(&out);
    if (expect100 && rb->kind != BODY_NONE)
        io_write(px, c->fd[FD_CLIENT], "HTTP/1.1 100 Continue\r\n\r\n", 25, -1);
    /* the request body; an upstream that stops reading it may still have
     * answered (say, 413 before the body), so go on to its response */
    int relay = relay_body(c, cr, rb, ufd, rb->kind == BODY_CHUNKED, &x->req_bytes);
    if (relay == -2) {
        send_simple(c, 400, "Bad Request", "matchlock-local proxy: malformed or truncated request body\n");
        x->status = 400;
        return -1;
    }
    return 0;
}

/* The upstream's response head into rs (1xx interim responses skipped),
 * the body's framing decided; 0, or -1 when the client got an error answer. */
static int http_response_head(pconn *c, rd *ur, xinfo *x, const xreq *q, xresp *rs)
{
    char *hhead = NULL;
    head rh = {0};
    for (int tries = 0;; tries++) {
        int eof, big;
        free(hhead);
        hhead = rd_head(ur, &eof, &big);
        head_free(&rh);
        if (!hhead || head_parse(hhead, &rh, 1) != 0 || strncmp(rh.line0[0], "HTTP/", 5)) {
            send_simple(c, 502, "Bad Gateway", "matchlock-local proxy: invalid or missing upstream response\n");
            x->status = 502;
            goto bad;
        }
        rs->status = atoi(rh.line0[1]);
        if (rs->status < 100 || rs->status > 999) {
            send_simple(c, 502, "Bad Gateway", "matchlock-local proxy: invalid upstream status\n");
            x->status = 502;
            goto bad;
        }
        if (rs->status >= 200 || rs->status == 101 || tries > 8) break;
    }
    rs->reason = strdup(rh.line0[2]);
    for (size_t i = 0; i < rh.h.n; i++) kvs_add0(&rs->h, rh.h.v[i].k, rh.h.v[i].v);
    int fr = framing(&rh.h, &rs->b, &rs->orig_len);
    head_free(&rh);
    free(hhead);
    if (fr < 0) {
        send_simple(c, 502, "Bad Gateway", "matchlock-local proxy: invalid upstream framing\n");
        x->status = 502;
        return -1;
    }
    if (fr == 1) rs->b.kind = BODY_CLOSE;     /* no framing header: until close */
    if (!strcasecmp(q->method, "HEAD") || rs->status < 200 || rs->status == 204 || rs->status == 304)
        rs->b.kind = BODY_NONE;
    else { free(rs->orig_len); rs->orig_len = NULL; }
    strip_hop(&rs->h);
    x->status = rs->status;
    return 0;
bad:
    head_free(&rh);
    free(hhead);
    return -1;
}

/* Write the response head to the client; 0, or -1 when that failed. */
static int send_resp_head(pconn *c, const xresp *rs, const char *framing_hdr)
{
    sbuf out = {0};
    write_resp_head(&out, rs, framing_hdr);
    int rc = out.oom || io_write(c->px, c->fd[FD_CLIENT], out.p, out.len, -1) != 0 ? -1 : 0;
    sb_free(&out);
    return rc;
}

/* An after-rule's body: the replacements applied, with its own Content-Length. */
static void send_set_body(pconn *c, xinfo *x, const xresp *rs, const after_out *ao)
{
    sbuf nb = {0};
    sb_add(&nb, ao->set_body, ao->set_len);
    if (!nb.p) nb.p = calloc(1, 1);
    apply_repl(&nb, &ao->repl);
    char fl[64];
    snprintf(fl, sizeof fl, "Content-Length: %zu\r\n", nb.len);
    if (send_resp_head(c, rs, fl) == 0 && nb.len)
        io_write(c->px, c->fd[FD_CLIENT], nb.p, nb.len, -1);
    x->resp_bytes = nb.len;
    sb_free(&nb);
}

/* Server-sent events: streamed, the replacements applied line by line. */
static void send_sse(pconn *c, rd *ur, xinfo *x, xresp *rs, const after_out *ao)
{
    proxy *px = c->px;
    int cfd = c->fd[FD_CLIENT];
    if (send_resp_head(c, rs, NULL) != 0) return;
    sbuf line = {0};
    const char *p;
    size_t n;
    int k;
    while ((k = body_next(ur, &rs->b, &p, &n)) == 1) {
        while (n) {
            const char *nl = memchr(p, '\n', n);
            size_t take = nl ? (size_t)(nl - p) + 1 : n;
            sb_add(&line, p, take);
            p += take;
            n -= take;
            if (nl || line.len >= SSE_LINE_MAX) {
                apply_repl(&line, &ao->repl);
                if (line.oom || io_write(px, cfd, line.p, line.len, -1) != 0) { sb_free(&line); return; }
                x->resp_bytes += line.len;
                line.len = 0;
            }
        }
    }
    if (line.len) {
        apply_repl(&line, &ao->repl);
        if (!line.oom && io_write(px, cfd, line.p, line.len, -1) == 0) x->resp_bytes += line.len;
    }
    sb_free(&line);
}

/* Buffered (up to BODY_MAX), the replacements applied, then sent; a body
 * too big to buffer streams on unchanged, close-delimited. */
static void send_replaced(pconn *c, rd *ur, xinfo *x, xresp *rs, const after_out *ao)
{
    proxy *px = c->px;
    int cfd = c->fd[FD_CLIENT];
    sbuf bodyb = {0};
    const char *p;
    size_t n;
    int k, over = 0;
    while ((k = body_next(ur, &rs->b, &p, &n)) == 1) {
        sb_add(&bodyb, p, n);
        if (bodyb.oom) { k = -1; break; }
        if (bodyb.len > BODY_MAX) { over = 1; break; }
    }
    if (k < 0 && !over) {
        sb_free(&bodyb);
        send_simple(c, 502, "Bad Gateway", "matchlock-local proxy: upstream body failed\n");
        x->status = 502;
        return;
    }
    if (!over) {
        if (!bodyb.p) bodyb.p = calloc(1, 1);
        apply_repl(&bodyb, &ao->repl);
        char fl[64];
        snprintf(fl, sizeof fl, "Content-Length: %zu\r\n", bodyb.len);
        if (send_resp_head(c, rs, fl) == 0 && bodyb.len &&
            io_write(px, cfd, bodyb.p, bodyb.len, -1) == 0)
            x->resp_bytes = bodyb.len;
        sb_free(&bodyb);
        return;
    }
    /* too big to buffer: the rest streams unchanged, close-delimited */
    if (send_resp_head(c, rs, NULL) != 0 || io_write(px, cfd, bodyb.p, bodyb.len, -1) != 0) { sb_free(&bodyb); return; }
    x->resp_bytes = bodyb.len;
    sb_free(&bodyb);
    relay_body(c, ur, &rs->b, cfd, 0, &x->resp_bytes);
}

/* The body unchanged, in its original framing (chunked is re-chunked). */
static void send_unchanged(pconn *c, rd *ur, xinfo *x, xresp *rs)
{
    char fl[64] = "";
    const char *framing_hdr = NULL;
    if (rs->b.kind == BODY_LEN) { snprintf(fl, sizeof fl, "Content-Length: %llu\r\n", (unsigned long long)rs->b.left); framing_hdr = fl; }
    else if (rs->b.kind == BODY_CHUNKED) framing_hdr = "Transfer-Encoding: chunked\r\n";
    else if (rs->b.kind == BODY_NONE && rs->orig_len) { snprintf(fl, sizeof fl, "Content-Length: %s\r\n", rs->orig_len); framing_hdr = fl; }
    if (send_resp_head(c, rs, framing_hdr) != 0) return;
    relay_body(c, ur, &rs->b, c->fd[FD_CLIENT], rs->b.kind == BODY_CHUNKED, &x->resp_bytes);
}

/* A plain http request through the proxy: parsed, admitted by the policy,
 * forwarded, and the response (after the after-rules) sent back. */
static void do_http(pconn *c, rd *cr, head *hd, xinfo *x)
{
    xreq q = {0};
    xresp rs = {0};
    after_out ao = {0};
    rd ur;
    rd_init(&ur, c->px, -1);
    struct addrinfo *ai = NULL;
    char *why = NULL;
    body rb;
    int expect100 = 0;

    if (http_request(c, hd, x, &q, &rb, &expect100) != 0 || http_admit(c, x, &q, &ai) != 0) goto done;
    int ufd = connect_any(c, ai);
    if (ufd < 0) {
        send_simple(c, 502, "Bad Gateway", "matchlock-local proxy: cannot connect to the upstream host\n");
        x->status = 502;
        goto done;
    }
    ur.fd = ufd;
    if (http_forward(c, cr, x, &q, &rb, expect100, ufd) != 0 || http_response_head(c, &ur, x, &q, &rs) != 0) goto done;
    if (rules_after(c, &q, &rs, &ao, &why)) { block_reply(c, x, why ? why : "blocked by rule"); goto done; }
    if (ao.has_set_body) send_set_body(c, x, &rs, &ao);
    else if (ao.repl.n && rs.b.kind != BODY_NONE && is_sse(&rs.h)) send_sse(c, &ur, x, &rs, &ao);
    else if (ao.repl.n && rs.b.kind != BODY_NONE) send_replaced(c, &ur, x, &rs, &ao);
    else send_unchanged(c, &ur, x, &rs);
done:
    if (ai) freeaddrinfo(ai);
    free(why);
    rd_free(&ur);
    url_free(&q.u);
    kvs_clear(&q.h);
    free(q.host_hdr);
    free(rs.reason);
    free(rs.orig_len);
    kvs_clear(&rs.h);
    kvs_clear(&ao.repl);
    free(ao.set_body);
    conn_closefd(c, FD_UP);
}

/* CONNECT host:port: allowed by host, then a blind tunnel. */
static void do_connect(pconn *c, rd *cr, head *hd, xinfo *x)
{
    proxy *px = c->px;
    url u = {0};
    struct addrinfo *ai = NULL;
    char *why = NULL;
    x->method = "CONNECT";
    x->url = strdup(hd->line0[1]);
    if (parse_authority(hd->line0[1], strlen(hd->line0[1]), 443, &u) != 0 || !u.has_port) {
        send_simple(c, 400, "Bad Request", "matchlock-local proxy: CONNECT needs host:port\n");
        x->status = 400;
        goto done;
    }
    x->host = strdup(u.host);
    if (!host_allowed(px, u.host)) {
        if (asprintf(&why, "host %s is not in the allow-list", u.host) < 0) why = NULL;
        block_reply(c, x, why ? why : "host not allowed");
        goto done;
    }
    int rc = resolve(px, u.host, u.port, &ai, &why);
    if (rc == -1) { block_reply(c, x, why ? why : "private IP blocked"); goto done; }
    int ufd = rc == 0 ? connect_any(c, ai) : -1;
    if (ufd < 0) {
        send_simple(c, 502, "Bad Gateway", "matchlock-local proxy: cannot connect to the upstream host\n");
        x->status = 502;
        goto done;
    }
    int cfd = c->fd[FD_CLIENT];
    static const char ok[] = "HTTP/1.1 200 Connection Established\r\n\r\n";
    if (io_write(px, cfd, ok, sizeof ok - 1, -1) != 0) goto done;
    x->status = 200;
    if (rd_avail(cr)) {                   /* bytes the client sent early */
        if (io_write(px, ufd, cr->buf + cr->off, rd_avail(cr), -1) != 0) goto done;
        x->req_bytes += rd_avail(cr);
        cr->off = cr->len;
    }
    /* the tunnel: both directions at once (non-blocking, one buffer per
     * direction, a side is read only when its buffer is empty), until both
     * ends have finished sending and everything is delivered */
    int fds[2] = {cfd, ufd};          /* direction d reads fds[d], writes fds[1 - d] */
    char *buf = malloc(2 * 65536);
    size_t len[2] = {0, 0}, off[2] = {0, 0};
    int open[2] = {1, 1}, fail = !buf;
    while (!fail && !stopping(px)) {
        short ev[2] = {0, 0};
        for (int d = 0; d < 2; d++) {
            if (open[d] && !len[d]) ev[d] |= POLLIN;
            if (len[d]) ev[1 - d] |= POLLOUT;
        }
        if (!ev[0] && !ev[1]) break;
        struct pollfd p[2] = {{.fd = ev[0] ? fds[0] : -1, .events = ev[0]}, {.fd = ev[1] ? fds[1] : -1, .events = ev[1]}};
        int k = poll(p, 2, IDLE_MS);
        if (k == 0) break;
        if (k < 0) { if (errno == EINTR) continue; break; }
        for (int d = 0; d < 2 && !fail; d++) {
            char *b = buf + d * 65536;
            if (!len[d] && open[d] && (p[d].revents & (POLLIN | POLLHUP | POLLERR))) {
                ssize_t n = recv(fds[d], b, 65536, 0);
                if (n > 0) {
                    len[d] = (size_t)n;
                    off[d] = 0;
                    if (d) x->resp_bytes += (uint64_t)n; else x->req_bytes += (uint64_t)n;
                } else if (n == 0) {
                    open[d] = 0;
                    shutdown(fds[1 - d], SHUT_WR);
                } else if (errno != EAGAIN && errno != EINTR) {
                    fail = 1;
                }
            }
            if (len[d] && !fail) {
                ssize_t w = send(fds[1 - d], b + off[d], len[d] - off[d], MSG_NOSIGNAL | MSG_DONTWAIT);
                if (w > 0) {
                    off[d] += (size_t)w;
                    if (off[d] == len[d]) {
                        len[d] = off[d] = 0;
                        if (!open[d]) shutdown(fds[1 - d], SHUT_WR);
                    }
                } else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                    fail = 1;
                }
            }
        }
    }
    free(buf);
done:
    if (ai) freeaddrinfo(ai);
    free(why);
    url_free(&u);
    conn_closefd(c, FD_UP);
}

static void *conn_main(void *arg)
{
    pconn *c = arg;
    proxy *px = c->px;
    rd cr;
    rd_init(&cr, px, c->fd[FD_CLIENT]);
    xinfo x = {0};
    clock_gettime(CLOCK_MONOTONIC, &x.t0);
    int eof, big;
    char *text = rd_head(&cr, &eof, &big);
    head hd = {0};
    if (!text) {
        if (big) send_simple(c, 431, "Request Header Fields Too Large", "matchlock-local proxy: request head too large\n");
        goto out;
    }
    if (head_parse(text, &hd, 0) != 0 || strncmp(hd.line0[2], "HTTP/1.", 7) || !token_ok(hd.line0[0], strlen(hd.line0[0]))) {
        send_simple(c, 400, "Bad Request", "matchlock-local proxy: malformed request\n");
        goto out;
    }
    if (!strcmp(hd.line0[0], "CONNECT")) do_connect(c, &cr, &hd, &x);
    else do_http(c, &cr, &hd, &x);
    if (x.method) emit_event(px, &x);
out:
    if (c->fd[FD_CLIENT] >= 0 && !stopping(px)) {
        /* lingering close: let the client read our answer before the
         * kernel resets a connection that still has unread input */
        shutdown(c->fd[FD_CLIENT], SHUT_WR);
        char junk[16384];
        size_t total = 0;
        ssize_t k;
        while (total < (4u << 20) && wait_fd(px, c->fd[FD_CLIENT], POLLIN, 500) == 1 &&
               (k = recv(c->fd[FD_CLIENT], junk, sizeof junk, 0)) > 0)
            total += (size_t)k;
    }
    free(text);
    head_free(&hd);
    rd_free(&cr);
    free(x.url);
    free(x.host);
    free(x.reason);
    pthread_mutex_lock(&px->mu);
    for (int i = 0; i < NFDS; i++) if (c->fd[i] >= 0) { close(c->fd[i]); c->fd[i] = -1; }
    if (c->prev) c->prev->next = c->next; else px->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    px->nconns--;
    pthread_cond_broadcast(&px->cv);
    pthread_mutex_unlock(&px->mu);
    free(c);
    return NULL;
}

static void *acceptor_main(void *arg)
{
    proxy *px = arg;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 512 * 1024);
    while (!stopping(px)) {
        struct pollfd p[2] = {{.fd = px->lfd, .events = POLLIN}, {.fd = px->stop_pipe[0], .events = POLLIN}};
        int k = poll(p, 2, -1);
        if (k < 0) { if (errno == EINTR) continue; break; }
        if (p[1].revents) break;
        if (!(p[0].revents & POLLIN)) continue;
        int fd = accept4(px->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) poll(NULL, 0, 100);
            continue;
        }
        pconn *c = calloc(1, sizeof *c);
        pthread_mutex_lock(&px->mu);
        if (!c || stopping(px) || px->nconns >= CONN_MAX) {
            pthread_mutex_unlock(&px->mu);
            free(c);
            close(fd);
            continue;
        }
        c->px = px;
        c->fd[FD_CLIENT] = fd;
        c->fd[FD_UP] = c->fd[FD_CB] = -1;
        c->next = px->conns;
        if (px->conns) px->conns->prev = c;
        px->conns = c;
        px->nconns++;
        pthread_mutex_unlock(&px->mu);
        pthread_t t;
        if (pthread_create(&t, &attr, conn_main, c) != 0) {
            pthread_mutex_lock(&px->mu);
            if (c->prev) c->prev->next = c->next; else px->conns = c->next;
            if (c->next) c->next->prev = c->prev;
            px->nconns--;
            pthread_mutex_unlock(&px->mu);
            close(fd);
            free(c);
        }
    }
    pthread_attr_destroy(&attr);
    return NULL;
}

/* ===================================================================== */
/* lifecycle                                                              */

void proxy_set_allowed(vm *v)
{
    proxy *px = v->px;
    if (!px) return;
    char **copy = NULL;
    for (size_t i = 0; i < v->nallowed; i++) {
        /* trimmed, as upstream */
        const char *s = v->allowed[i];
        size_t n = strlen(s);
        while (n && isspace((unsigned char)*s)) { s++; n--; }
        while (n && isspace((unsigned char)s[n - 1])) n--;
        if (!n) continue;
        char *t = strndup(s, n);
        if (t) { copy = strv_push(copy, t); free(t); }
    }
    strv_lower(copy);
    pthread_mutex_lock(&px->mu);
    char **old = px->allowed;
    px->allowed = copy;
    pthread_mutex_unlock(&px->mu);
    strv_free(old);
}

int proxy_start(server *s, vm *v, char **msg)
{
    proxy *px = v->px;
    if (!px) return 0;
    px->srv = s;
    proxy_set_allowed(v);
    { unsigned char tmp[4]; b64_decode("AAAA", 4, tmp); }   /* init the decoder table on this thread */
    px->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    if (px->lfd < 0 || bind(px->lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(px->lfd, 128) != 0 ||
        getsockname(px->lfd, (struct sockaddr *)&sa, &sl) != 0) {
        if (asprintf(msg, "network proxy: listen on 127.0.0.1: %s", strerror(errno)) < 0) *msg = NULL;
        return MLK_RPC_VM_FAILED;
    }
    px->port = ntohs(sa.sin_port);
    px->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (px->evfd < 0 || pipe2(px->stop_pipe, O_CLOEXEC) != 0) {
        if (asprintf(msg, "network proxy: %s", strerror(errno)) < 0) *msg = NULL;
        return MLK_RPC_VM_FAILED;
    }
    px->ev = event_new(s->base, px->evfd, EV_READ | EV_PERSIST, on_events, px);
    if (!px->ev || event_add(px->ev, NULL) != 0) {
        if (asprintf(msg, "network proxy: cannot watch its event queue") < 0) *msg = NULL;
        return MLK_RPC_VM_FAILED;
    }
    /* the threads must not take the server's signals */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&px->acceptor, NULL, acceptor_main, px);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        if (asprintf(msg, "network proxy: cannot start its thread: %s", strerror(rc)) < 0) *msg = NULL;
        return MLK_RPC_VM_FAILED;
    }
    px->acceptor_started = 1;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", px->port);
    static const char *vars[] = {"http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", NULL};
    for (int i = 0; vars[i]; i++) vm_setenv(v, vars[i], url);
    vm_setenv(v, "no_proxy", "");
    vm_setenv(v, "NO_PROXY", "");
    vm_log(v, "network interception: HTTP proxy on %s (%zu allowed host pattern(s), %s private IPs, "
           "%zu rule(s), %zu secret(s)); processes that ignore the proxy variables bypass it",
           url, v->nallowed, px->block_private ? "blocking" : "allowing", px->nrules, px->nsecrets);
    return 0;
}

void proxy_stop(vm *v)
{
    proxy *px = v->px;
    if (!px || px->stopped) return;
    px->stopped = 1;
    atomic_store(&px->stopping, 1);
    if (px->stop_pipe[1] >= 0 && write(px->stop_pipe[1], "x", 1) < 0) {}
    if (px->acceptor_started) pthread_join(px->acceptor, NULL);
    px->acceptor_started = 0;
    if (px->lfd >= 0) { close(px->lfd); px->lfd = -1; }
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += STOP_WAIT_MS / 1000;
    deadline.tv_nsec += (STOP_WAIT_MS % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) { deadline.tv_sec++; deadline.tv_nsec -= 1000000000L; }
    pthread_mutex_lock(&px->mu);
    for (pconn *c = px->conns; c; c = c->next)
        for (int i = 0; i < NFDS; i++) if (c->fd[i] >= 0) shutdown(c->fd[i], SHUT_RDWR);
    while (px->nconns > 0)
        if (pthread_cond_timedwait(&px->cv, &px->mu, &deadline) == ETIMEDOUT) break;
    px->leaked = px->nconns > 0;
    for (int i = 0; i < px->nev; i++) free(px->evq[i]);
    px->nev = 0;
    pthread_mutex_unlock(&px->mu);
    if (px->ev) { event_free(px->ev); px->ev = NULL; }
    if (px->leaked) vm_log(v, "network proxy: %d connection(s) did not end in time", px->nconns);
    else vm_log(v, "network proxy stopped");
}

void proxy_free(vm *v)
{
    proxy *px = v->px;
    if (!px) return;
    proxy_stop(v);
    v->px = NULL;
    if (px->leaked) return;      /* threads still hold it; the process is ending */
    if (px->evfd >= 0) close(px->evfd);
    for (int i = 0; i < 2; i++) if (px->stop_pipe[i] >= 0) close(px->stop_pipe[i]);
    strv_free(px->allowed);
    for (size_t i = 0; i < px->nsecrets; i++) {
        free(px->secrets[i].name); secret_free(px->secrets[i].value); free(px->secrets[i].placeholder);
        strv_free(px->secrets[i].hosts);
    }
    free(px->secrets);
    for (size_t i = 0; i < px->nrules; i++) rule_free(&px->rules[i]);
    free(px->rules);
    free(px->callback_socket);
    kvs_clear(&px->add_hosts);
    pthread_mutex_destroy(&px->mu);
    pthread_cond_destroy(&px->cv);
    free(px);
}
