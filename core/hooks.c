/* hooks.c - network callback hooks and VFS hooks.
 *
 * Network hooks: the server connects to a Unix socket the client serves (in
 * a fresh 0700 directory), writes one JSON request and reads one JSON
 * response.  The I/O thread accepts, checks the peer's credentials, reads
 * the request and queues the host's hook with a reply token
 * (mlk_hook_call); the host answers through the token, now or later, from
 * any thread; past the rule's timeout the server gets an error reply and
 * a late answer is dropped.
 *
 * VFS hooks: after-hooks run on file `event` notifications; action and
 * mutate hooks run before the SDK's own write/read/list_files, as a chain
 * of token answers that ends by sending the call (or failing it). */
#include "client.h"
#include "platform.h"

#include <errno.h>
#include <ctype.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_NET_TIMEOUT_MS 5000 /* the server gives up on a callback after about this long */
#define ACCEPT_RETRY_MS 100         /* out of descriptors: accept again after this long */

/* ===================================================================== */
/* rules as the builder keeps them                                        */

static void hook_clear(hook *h)
{
    free(h->name);
    free(h->path);
    for (size_t i = 0; i < h->nops; i++) free(h->ops[i]);
    free(h->ops);
    free(h->net_fields);
    memset(h, 0, sizeof *h);
}

static const char *kind_label(int kind)
{
    switch (kind) {
    case MLK_HOOK_NETWORK: return "network hook";
    case MLK_HOOK_VFS_AFTER: return "VFS after-hook";
    case MLK_HOOK_VFS_DANGEROUS: return "VFS dangerous hook";
    case MLK_HOOK_VFS_ACTION: return "VFS action hook";
    case MLK_HOOK_VFS_MUTATE: return "VFS mutate hook";
    default: return "hook";
    }
}

/* A string field trimmed and in lower case (as upstream compares phases
 * and actions); NULL when absent. */
static char *norm_str(const msgpack_object *o)
{
    if (!o || o->type != MSGPACK_OBJECT_STR) return NULL;
    const char *p = o->via.str.ptr;
    size_t n = o->via.str.size;
    while (n && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) { p++; n--; }
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\n' || p[n - 1] == '\r')) n--;
    char *s = strndup(n ? p : "", n);
    for (char *c = s; c && *c; c++) *c = (char)tolower((unsigned char)*c);
    return s;
}

/* The key naming a callback of this kind ("hook", "action_hook", ...). */
static const rule_key *callback_key(const rule_table *t, int kind)
{
    for (const rule_key *k = t->keys; k->key; k++)
        if (k->type == RT_CALLBACK && k->kind == kind) return k;
    return NULL;
}

/* The callback, action and phase rules of a callback rule. */
static char *hook_check(int kind, const rule_table *t, const char *label, const char *nm, int cb, const char *action,
                        const char *phase, int from_config)
{
    const rule_key *ck = callback_key(t, kind);
    if (!cb)
        return kind == MLK_HOOK_VFS_MUTATE
                   ? xasprintf("%s \"%s\": mutate_write without a callback is invalid", label, nm)
                   : xasprintf("%s \"%s\": a callback is required", label, nm);
    if (action && *action && strcmp(action, "allow") != 0)
        return xasprintf("%s \"%s\": %s cannot set action=\"%s\"; a callback rule must have an empty or "
                         "\"allow\" action", label, nm, ck->key, action);
    if (!phase || !*phase) {   /* empty: the kind's phase, except that a config's after-hook says it */
        if (from_config && ck->phase && !strcmp(ck->phase, "after"))
            return xasprintf("%s \"%s\": %s must use phase=after; phase must be \"after\", not \"\"", label, nm,
                             ck->key);
        return NULL;
    }
    if (ck->phase && strcmp(phase, ck->phase) != 0)
        return xasprintf("%s \"%s\": %s must use phase=%s; phase must be \"%s\", not \"%s\"", label, nm, ck->key,
                         ck->phase, ck->phase, phase);
    for (const char *const *p = t->phases; *p; p++)
        if (!strcmp(phase, *p)) return NULL;
    return xasprintf("%s \"%s\": phase must be \"before\" or \"after\", not \"%s\"", label, nm, phase);
}

/* A network hook's rule fields as `"name":...,"phase":...` (no braces). */
static char *net_fields(const msgpack_object *r, const char *name, const char *phase)
{
    static const char *const skip[] = {"name", "phase", "action", "timeout_ms", NULL};
    jw w;
    jw_init(&w);
    jw_obj(&w);
    if (*name) { jw_key(&w, "name"); jw_str(&w, name); }
    jw_key(&w, "phase"); jw_str(&w, phase && *phase ? phase : "before");
    if (r) contract_write_rule(&contract_net_rule, RK_HOOK, r, skip, &w);
    jw_obj_end(&w);
    char *out = w.oom ? NULL : strndup(w.buf + 1, w.len - 2);
    jw_free(&w);
    return out;
}

static int hook_ops(hook *out, const msgpack_object *ops)
{
    for (uint32_t i = 0; ops && ops->type == MSGPACK_OBJECT_ARRAY && i < ops->via.array.size; i++) {
        const msgpack_object_str *s = &ops->via.array.ptr[i].via.str;
        char *op = strndup(s->size ? s->ptr : "", s->size);
        char **v = op ? realloc(out->ops, (out->nops + 1) * sizeof *v) : NULL;
        if (!v) { free(op); return MLK_ENOMEM; }
        out->ops = v;
        out->ops[out->nops++] = op;
    }
    return 0;
}

int hook_parse_obj(int kind, const msgpack_object *r, mlk_hook_cb cb, void *ud, int from_config, hook *out,
                   char **msg)
{
    memset(out, 0, sizeof *out);
    *msg = NULL;
    if (kind < MLK_HOOK_NETWORK || kind > MLK_HOOK_VFS_MUTATE) {
        *msg = xasprintf("hook kind %d is not one of MLK_HOOK_*", kind);
        return MLK_EINVAL;
    }
    const rule_table *t = kind == MLK_HOOK_NETWORK ? &contract_net_rule : &contract_vfs_rule;
    const char *label = kind_label(kind);
    char *name = NULL, *phase = NULL, *action = NULL, *what = NULL;
    int rc = 0;
    if (r) {
        const msgpack_object *n = mp_get(r, "name");
        name = n && n->type == MSGPACK_OBJECT_STR ? strndup(n->via.str.size ? n->via.str.ptr : "", n->via.str.size)
                                                   : NULL;
        what = xasprintf("%s \"%s\"", label, name ? name : "");
        if (contract_check_rule(t, from_config ? RK_HOOK | RK_CALLBACK : RK_HOOK, r, what, msg)) rc = t->bad_hook;
    }
    if (rc == 0) {
        phase = norm_str(mp_get(r, "phase"));
        action = norm_str(mp_get(r, "action"));
        *msg = hook_check(kind, t, label, name ? name : "", cb != NULL, action, phase, from_config);
        if (*msg) rc = t->bad_hook;
    }
    if (rc == 0) {
        const msgpack_object *tm = mp_get(r, "timeout_ms"), *path = mp_get(r, "path");
        out->kind = kind;
        out->cb = cb;
        out->ud = ud;
        out->name = name ? name : strdup("");
        name = NULL;
        out->path = path && path->type == MSGPACK_OBJECT_STR && path->via.str.size
                        ? strndup(path->via.str.ptr, path->via.str.size) : NULL;
        out->timeout_ms = tm && tm->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? (int64_t)tm->via.u64 : 0;
        if (!out->name || (path && path->type == MSGPACK_OBJECT_STR && path->via.str.size && !out->path))
            rc = MLK_ENOMEM;
        else if (kind == MLK_HOOK_NETWORK)
            rc = (out->net_fields = net_fields(r, out->name, phase)) ? 0 : MLK_ENOMEM;
        else
            rc = hook_ops(out, mp_get(r, "ops"));
    }
    if (rc != 0) hook_clear(out);
    if (rc == t->bad_hook && *msg) {   /* lead with the seed's error text */
        char *m = xasprintf("%s: %s", t->seed_text, *msg);
        if (m) { free(*msg); *msg = m; }
    }
    free(name);
    free(phase);
    free(action);
    free(what);
    return rc;
}

int hook_parse(int kind, const char *rule, size_t len, mlk_hook_cb cb, void *ud, hook *out, char **msg)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    if (rule && len && (mp_parse(rule, len, &u) != 0 || u.data.type != MSGPACK_OBJECT_MAP)) {
        msgpack_unpacked_destroy(&u);
        memset(out, 0, sizeof *out);
        *msg = kind == MLK_HOOK_NETWORK
                   ? xasprintf("%s: %s: the rule must be a msgpack map", contract_net_rule.seed_text, kind_label(kind))
               : kind > MLK_HOOK_NETWORK && kind <= MLK_HOOK_VFS_MUTATE
                   ? xasprintf("%s: %s: the rule must be a msgpack map", contract_vfs_rule.seed_text, kind_label(kind))
                   : xasprintf("hook kind %d is not one of MLK_HOOK_*", kind);
        return kind == MLK_HOOK_NETWORK ? MLK_EINVALID_NET_HOOK
               : kind > MLK_HOOK_NETWORK && kind <= MLK_HOOK_VFS_MUTATE ? MLK_EINVALID_VFS_HOOK : MLK_EINVAL;
    }
    int rc = hook_parse_obj(kind, rule && len ? &u.data : NULL, cb, ud, 0, out, msg);
    msgpack_unpacked_destroy(&u);
    return rc;
}

int hookset_add(hookset *s, hook *h)
{
    hook *v = realloc(s->v, (s->n + 1) * sizeof *v);
    if (!v) { hook_clear(h); return MLK_ENOMEM; }
    s->v = v;
    s->v[s->n++] = *h;
    memset(h, 0, sizeof *h);
    return 0;
}

void hookset_clear(hookset *s)
{
    for (size_t i = 0; i < s->n; i++) hook_clear(&s->v[i]);
    free(s->v);
    s->v = NULL;
    s->n = 0;
}

int hookset_copy(hookset *dst, const hookset *src)
{
    memset(dst, 0, sizeof *dst);
    if (!src->n) return 0;
    dst->v = calloc(src->n, sizeof *dst->v);
    if (!dst->v) return MLK_ENOMEM;
    for (size_t i = 0; i < src->n; i++) {
        const hook *a = &src->v[i];
        hook *b = &dst->v[i];
        dst->n = i + 1;
        *b = *a;
        b->name = xstrdup(a->name);
        b->path = xstrdup(a->path);
        b->net_fields = xstrdup(a->net_fields);
        b->ops = a->nops ? calloc(a->nops, sizeof *b->ops) : NULL;
        b->nops = 0;
        if ((a->name && !b->name) || (a->path && !b->path) || (a->net_fields && !b->net_fields) ||
            (a->nops && !b->ops)) {
            hookset_clear(dst);
            return MLK_ENOMEM;
        }
        for (size_t k = 0; k < a->nops; k++) {
            if (!(b->ops[k] = strdup(a->ops[k]))) { hookset_clear(dst); return MLK_ENOMEM; }
            b->nops = k + 1;
        }
    }
    return 0;
}

void hookset_remove_kind(hookset *s, int kind)
{
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (kind == 0 || s->v[i].kind == kind) hook_clear(&s->v[i]);
        else s->v[k++] = s->v[i];
    }
    s->n = k;
}

size_t hookset_count(const hookset *s, int kind)
{
    size_t n = 0;
    for (size_t i = 0; s && i < s->n; i++) n += s->v[i].kind == kind;
    return n;
}

void hookset_write_net_rules(const hookset *s, jw *w, size_t first_index)
{
    size_t k = 0;
    for (size_t i = 0; s && i < s->n; i++) {
        const hook *h = &s->v[i];
        if (h->kind != MLK_HOOK_NETWORK) continue;
        jw_obj(w);
        jw_raw(w, h->net_fields, strlen(h->net_fields));
        w->need_comma[w->depth] = 1;
        char id[48];
        snprintf(id, sizeof id, "network_hook_%zu", first_index + ++k);
        jw_key(w, "callback_id"); jw_str(w, id);
        if (h->timeout_ms) { jw_key(w, "timeout_ms"); jw_int(w, h->timeout_ms); }
        jw_obj_end(w);
    }
}

int hook_glob_match(const char *pattern, const char *path)
{
    if (!pattern || !*pattern) return 1;
    return fnmatch(pattern, path, FNM_PATHNAME) == 0;
}

static int hook_matches(const hook *h, const char *op, const char *path)
{
    if (h->nops) {
        int ok = 0;
        for (size_t i = 0; i < h->nops && !ok; i++) ok = strcmp(h->ops[i], op) == 0;
        if (!ok) return 0;
    }
    return hook_glob_match(h->path, path);
}

/* ===================================================================== */
/* runtime state                                                          */

typedef struct hconn {
    struct hconn *next;
    struct hookrt *rt;
    int fd;
    struct event *ev, *timer;    /* timer: idle (no request yet), the hook's deadline, or the reply's */
    char *buf;
    size_t len;
    mlk_hook_call *token;        /* the call answering this connection */
    int replying;                /* the reply is being written */
    char *out;                   /* what the socket did not take at once */
    size_t out_len, out_off;
} hconn;

struct hookrt {
    mlk_client *c;
    hookset set;
    size_t first_index;          /* callback ids start after the static rules */
    char *dir, *sock_path;
    int listen_fd;
    struct event *ev_listen;     /* I/O */
    struct event *ev_retry;      /* I/O: accept again after descriptor exhaustion */
    int accepting;               /* I/O: ev_listen is added */
    int nconns;                  /* I/O: length of conns */
    int64_t idle_ms;             /* a connection must send its request within this (the longest rule timeout) */
    hconn *conns;                /* I/O */
    struct chain *chains;        /* file calls waiting for action/mutate answers (under c->mu) */
    _Atomic int plain_inflight;  /* plain after-hooks queued or running */
};

typedef struct chain chain;

struct mlk_hook_call {
    int kind;
    mlk_client *c;
    size_t hook_index;
    hconn *conn;                 /* network; I/O-owned, NULL once the connection is gone */
    int64_t timeout_ms;
    chain *ch;                   /* VFS action/mutate */
};

typedef struct hook_item {
    qitem base;
    mlk_client *c;
    mlk_hook_cb cb;
    void *ud;
    int kind;
    mlk_hook_call *call;
    int plain;                   /* counts in plain_inflight */
    size_t len;
    char data[];
} hook_item;

static void token_done(mlk_client *c);

static void hook_item_run(qitem *it)
{
    hook_item *h = (hook_item *)it;
    if (!h->call) atomic_fetch_sub(&h->c->queued_after, 1);
    h->cb(h->ud, h->c, h->kind, h->call, h->data, h->len);
    if (h->plain && h->c->hooks) h->c->hooks->plain_inflight--;
    free(h);
}

static void call_abandon(mlk_hook_call *call, const char *why);

static void hook_item_drop(qitem *it)
{
    hook_item *h = (hook_item *)it;
    if (h->call) call_abandon(h->call, "the client was freed before the hook ran");
    else atomic_fetch_sub(&h->c->queued_after, 1);
    free(h);
}

static int post_hook(mlk_queue *q, mlk_client *c, const hook *hk, mlk_hook_call *call, int plain,
                     const char *mp, size_t len)
{
    hook_item *h = malloc(sizeof *h + len);
    if (!h) return MLK_ENOMEM;
    h->base.run = hook_item_run;
    h->base.drop = hook_item_drop;
    h->c = c;
    h->cb = hk->cb;
    h->ud = hk->ud;
    h->kind = hk->kind;
    h->call = call;
    h->plain = plain;
    h->len = len;
    memcpy(h->data, mp, len);
    if (!call) atomic_fetch_add(&c->queued_after, 1);
    queue_push(q, &h->base);
    return 0;
}

/* ===================================================================== */
/* network hooks: I/O thread                                              */

static void listen_resume(struct hookrt *rt)
{
    if (rt->ev_listen && !rt->accepting && rt->nconns < MAX_HOOK_CONNS) {
        event_add(rt->ev_listen, NULL);
        rt->accepting = 1;
    }
}

static void listen_retry(evutil_socket_t fd, short what, void *arg) { listen_resume(arg); }

/* Stop accepting: at the cap until a connection ends, or for retry_ms
 * after the process ran out of descriptors (a level-triggered listener
 * would otherwise spin on EMFILE). */
static void listen_pause(struct hookrt *rt, int retry_ms)
{
    if (rt->ev_listen && rt->accepting) {
        event_del(rt->ev_listen);
        rt->accepting = 0;
    }
    if (retry_ms <= 0) return;
    if (!rt->ev_retry) rt->ev_retry = evtimer_new(ioloop_base(), listen_retry, rt);
    struct timeval tv = {0, retry_ms * 1000};
    if (rt->ev_retry) evtimer_add(rt->ev_retry, &tv);
}

static void conn_close(hconn *k)
{
    struct hookrt *rt = k->rt;
    for (hconn **p = &rt->conns; *p; p = &(*p)->next)
        if (*p == k) { *p = k->next; rt->nconns--; break; }
    if (k->token) k->token->conn = NULL;
    if (k->ev) event_free(k->ev);
    if (k->timer) event_free(k->timer);
    close(k->fd);
    free(k->buf);
    free(k->out);
    free(k);
    listen_resume(rt);
}

static void conn_timeout(evutil_socket_t fd, short what, void *arg);
static void conn_writable(evutil_socket_t fd, short what, void *arg);

static void conn_arm(hconn *k, int64_t ms)
{
    if (!k->timer) k->timer = evtimer_new(ioloop_base(), conn_timeout, k);
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    if (k->timer) evtimer_add(k->timer, &tv);
}

/* Write what is left of the reply; a peer that does not read it gets the
 * idle timeout, never the I/O thread (which serves every client). */
static void conn_flush(hconn *k)
{
    while (k->out_off < k->out_len) {
        ssize_t w = send(k->fd, k->out + k->out_off, k->out_len - k->out_off, MSG_NOSIGNAL);
        if (w > 0) { k->out_off += (size_t)w; continue; }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!k->ev) k->ev = event_new(ioloop_base(), k->fd, EV_WRITE | EV_PERSIST, conn_writable, k);
            if (k->ev) event_add(k->ev, NULL);
            if (k->ev) return;
        }
        break;
    }
    conn_close(k);
}

static void conn_writable(evutil_socket_t fd, short what, void *arg) { conn_flush(arg); }

static void conn_reply(hconn *k, const char *json, size_t n)
{
    if (k->token) { k->token->conn = NULL; k->token = NULL; }
    if (k->ev) { event_free(k->ev); k->ev = NULL; }
    k->replying = 1;
    size_t off = 0;
    while (off < n) {
        ssize_t w = send(k->fd, json + off, n - off, MSG_NOSIGNAL);
        if (w > 0) { off += (size_t)w; continue; }
        if (w < 0 && errno == EINTR) continue;
        break;
    }
    if (off == n || !(errno == EAGAIN || errno == EWOULDBLOCK) || !(k->out = malloc(n - off))) {
        conn_close(k);
        return;
    }
    memcpy(k->out, json + off, n - off);
    k->out_len = n - off;
    conn_arm(k, k->rt->idle_ms);
    conn_flush(k);
}

static void conn_error(hconn *k, const char *msg)
{
    jw w;
    jw_init(&w);
    jw_obj(&w);
    jw_key(&w, "error"); jw_str(&w, msg);
    jw_obj_end(&w);
    jw_nl(&w);
    if (!w.oom) conn_reply(k, w.buf, w.len);
    else conn_close(k);
    jw_free(&w);
}

static void conn_timeout(evutil_socket_t fd, short what, void *arg)
{
    hconn *k = arg;
    if (k->replying || !k->token) { conn_close(k); return; } /* reply not read, or no request in time */
    char msg[96];
    snprintf(msg, sizeof msg, "hook did not answer within %lld ms",
             (long long)(k->token ? k->token->timeout_ms : 0));
    conn_error(k, msg);
}

static void conn_request(hconn *k)
{
    struct hookrt *rt = k->rt;
    mlk_client *c = rt->c;
    jdoc d;
    jd_init(&d);
    if (jd_parse(&d, k->buf, k->len) != 0 || !jd_root(&d) || jd_root(&d)->type != JN_OBJ) {
        jd_free(&d);
        conn_error(k, "malformed hook request");
        return;
    }
    const char *id = jd_str(&d, jd_root(&d), "callback_id", "");
    size_t want = 0, k_idx = 0;
    const hook *hk = NULL;
    size_t hi = 0;
    if (strncmp(id, "network_hook_", 13) == 0) { /* digits only, no wrap: "-18446744073709551615" is not 1 */
        const char *dig = id + 13;
        size_t nd = strspn(dig, "0123456789");
        if (nd > 0 && nd < 10 && !dig[nd]) want = (size_t)strtoull(dig, NULL, 10);
    }
    for (size_t i = 0; i < rt->set.n && !hk; i++) {
        if (rt->set.v[i].kind != MLK_HOOK_NETWORK) continue;
        if (rt->first_index + ++k_idx == want) { hk = &rt->set.v[i]; hi = i; }
    }
    if (!hk) {
        jd_free(&d);
        conn_error(k, "unknown callback_id");
        return;
    }
    char *mp;
    size_t n;
    if (json_to_mp_buf(&d, jd_root(&d), &mp, &n) != 0) {
        jd_free(&d);
        conn_error(k, "out of memory");
        return;
    }
    jd_free(&d);
    mlk_hook_call *call = calloc(1, sizeof *call);
    if (!call) { free(mp); conn_error(k, "out of memory"); return; }
    call->kind = MLK_HOOK_NETWORK;
    call->c = c;
    call->hook_index = hi;
    call->conn = k;
    call->timeout_ms = hk->timeout_ms > 0 ? hk->timeout_ms : DEFAULT_NET_TIMEOUT_MS;
    k->token = call;
    client_ref(c);
    if (post_hook(&c->mainq, c, hk, call, 0, mp, n) != 0) {
        free(mp);
        k->token = NULL;
        free(call);
        c->tokens_out--; /* never published */
        conn_error(k, "out of memory");
        return;
    }
    free(mp);
    if (k->ev) { event_free(k->ev); k->ev = NULL; }
    conn_arm(k, call->timeout_ms);
}

static void conn_readable(evutil_socket_t fd, short what, void *arg)
{
    hconn *k = arg;
    char tmp[16384];
    ssize_t n = recv(fd, tmp, sizeof tmp, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n > 0) {
        if (k->len + (size_t)n > MAX_HOOK_REQUEST) { conn_error(k, "hook request too large"); return; }
        char *b = realloc(k->buf, k->len + (size_t)n + 1);
        if (!b) { conn_error(k, "out of memory"); return; }
        k->buf = b;
        memcpy(k->buf + k->len, tmp, (size_t)n);
        k->len += (size_t)n;
        char *nl = memchr(k->buf, '\n', k->len);
        if (!nl) return;
        k->len = (size_t)(nl - k->buf);
    } else if (k->len == 0) {
        conn_close(k); /* closed without a request */
        return;
    }
    conn_request(k);
}

int hook_peer_uid_allowed(uid_t peer, uid_t host, int sudo)
{
    /* the host's own uid; root only when the server runs as root: the
     * host is root, or the client starts it through sudo */
    return peer == host || (peer == 0 && (host == 0 || sudo));
}

static int peer_allowed(const struct hookrt *rt, int fd)
{
    uid_t uid;
    if (plat_peer_uid(fd, &uid) != 0) return 0;
    return hook_peer_uid_allowed(uid, geteuid(), rt->c->cfg && rt->c->cfg->sudo);
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
    struct hookrt *rt = arg;
    for (;;) {
        if (rt->nconns >= MAX_HOOK_CONNS) { listen_pause(rt, 0); return; } /* a closing connection resumes */
        int fd = plat_accept_nb(lfd);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) listen_pause(rt, ACCEPT_RETRY_MS);
            return;
        }
        if (!peer_allowed(rt, fd)) { close(fd); continue; }
        hconn *k = calloc(1, sizeof *k);
        if (!k) { close(fd); continue; }
        k->rt = rt;
        k->fd = fd;
        k->ev = event_new(ioloop_base(), fd, EV_READ | EV_PERSIST, conn_readable, k);
        if (!k->ev) { close(fd); free(k); continue; }
        k->next = rt->conns;
        rt->conns = k;
        rt->nconns++;
        event_add(k->ev, NULL);
        conn_arm(k, rt->idle_ms); /* the request must come within the longest rule timeout */
    }
}

static void t_listen(void *p)
{
    struct hookrt *rt = p;
    rt->ev_listen = event_new(ioloop_base(), rt->listen_fd, EV_READ | EV_PERSIST, on_accept, rt);
    listen_resume(rt);
}

static void t_unlisten(void *p)
{
    struct hookrt *rt = p;
    if (rt->ev_listen) { event_free(rt->ev_listen); rt->ev_listen = NULL; }
    if (rt->ev_retry) { event_free(rt->ev_retry); rt->ev_retry = NULL; }
    rt->accepting = 0;
    while (rt->conns) conn_close(rt->conns);
}

typedef struct reply_task {
    mlk_hook_call *call;
    size_t len;
    char json[];
} reply_task;

static void t_reply(void *p)
{
    reply_task *t = p;
    if (t->call->conn) {
        t->call->conn->token = NULL;
        conn_reply(t->call->conn, t->json, t->len);
    }
    free(t->call);
    free(t);
}

/* Hand a network call's JSON reply (w, newline included) to the I/O
 * thread, which writes it if the connection is still there and frees the
 * call.  Returns 0, or MLK_ENOMEM with the call freed. */
static int post_net_reply(mlk_hook_call *call, jw *w)
{
    reply_task *t = w->oom ? NULL : malloc(sizeof *t + w->len);
    if (t) {
        t->call = call;
        t->len = w->len;
        memcpy(t->json, w->buf, w->len);
        if (ioloop_post(t_reply, t) != 0) { free(t); t = NULL; }
    }
    jw_free(w);
    if (t) return 0;
    free(call);
    return MLK_ENOMEM;
}

/* An error reply {"error": msg} for a network call. */
static int post_net_error(mlk_hook_call *call, const char *msg)
{
    jw w;
    jw_init(&w);
    jw_obj(&w);
    jw_key(&w, "error"); jw_str(&w, msg);
    jw_obj_end(&w);
    jw_nl(&w);
    return post_net_reply(call, &w);
}

/* ===================================================================== */
/* attach / detach                                                         */

int hooks_attach(mlk_client *c, const hookset *hs, size_t first_index, const char **socket_path, char **msg)
{
    *socket_path = NULL;
    if (!hs || !hs->n) return 0;
    struct hookrt *rt = calloc(1, sizeof *rt);
    if (!rt) return MLK_ENOMEM;
    rt->c = c;
    rt->listen_fd = -1;
    rt->first_index = first_index;
    if (hookset_copy(&rt->set, hs) != 0) { free(rt); return MLK_ENOMEM; }
    for (size_t i = 0; i < rt->set.n; i++) {
        const hook *h = &rt->set.v[i];
        int64_t ms = h->timeout_ms > 0 ? h->timeout_ms : DEFAULT_NET_TIMEOUT_MS;
        if (h->kind == MLK_HOOK_NETWORK && ms > rt->idle_ms) rt->idle_ms = ms;
    }
    if (hookset_count(hs, MLK_HOOK_NETWORK) && c->cfg && c->cfg->nlauncher) {
        /* the server would connect to a socket path on its own machine */
        *msg = xstrdup("network hooks need the matchlock server on this machine: through a launcher it runs "
                       "elsewhere and cannot reach the SDK's callback socket (static interception rules, "
                       "allow-lists and secrets work through a launcher)");
        hookset_clear(&rt->set);
        free(rt);
        return MLK_EINVALID_NET_HOOK;
    }
    if (hookset_count(hs, MLK_HOOK_NETWORK)) {
        const char *tmp = getenv("TMPDIR");
        if (!tmp || !*tmp || strlen(tmp) > 60) tmp = "/tmp";
        rt->dir = xasprintf("%s/mlk-hooks-XXXXXX", tmp);
        if (!rt->dir || !mkdtemp(rt->dir)) {
            *msg = xasprintf("network hooks: cannot create a private directory in %s: %s", tmp, strerror(errno));
            free(rt->dir);
            rt->dir = NULL;
            hookset_clear(&rt->set);
            free(rt);
            return MLK_EINVALID_NET_HOOK;
        }
        chmod(rt->dir, 0700);
        rt->sock_path = xasprintf("%s/callback.sock", rt->dir);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int fd = plat_socket_nb(AF_UNIX, SOCK_STREAM);
        int ok = fd >= 0 && rt->sock_path && strlen(rt->sock_path) < sizeof sa.sun_path;
        if (ok) {
            strcpy(sa.sun_path, rt->sock_path);
            /* no umask() (process-wide, racing other threads): the directory
             * is 0700, so nobody else reaches the socket before the chmod */
            ok = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
        }
        ok = ok && chmod(rt->sock_path, 0600) == 0 && listen(fd, 64) == 0;
        if (!ok) {
            *msg = xasprintf("network hooks: cannot serve the callback socket %s: %s",
                             rt->sock_path ? rt->sock_path : "", strerror(errno));
            if (fd >= 0) close(fd);
            c->hooks = rt;
            hooks_detach(c);
            hooks_free(c);
            return MLK_EINVALID_NET_HOOK;
        }
        rt->listen_fd = fd;
        *socket_path = rt->sock_path;
    }
    c->hooks = rt;
    if (rt->listen_fd >= 0) ioloop_run_sync(t_listen, rt);
    return 0;
}

void hooks_detach(mlk_client *c)
{
    struct hookrt *rt = c->hooks;
    if (!rt) return;
    if (rt->listen_fd >= 0) {
        ioloop_run_sync(t_unlisten, rt);
        close(rt->listen_fd);
        rt->listen_fd = -1;
    }
    if (rt->sock_path) unlink(rt->sock_path);
    if (rt->dir) rmdir(rt->dir);
    free(rt->sock_path);
    free(rt->dir);
    rt->sock_path = rt->dir = NULL;
}

void hooks_free(mlk_client *c)
{
    struct hookrt *rt = c->hooks;
    if (!rt) return;
    hooks_detach(c);
    hookset_clear(&rt->set);
    free(rt);
    c->hooks = NULL;
}

void hooks_forget(mlk_client *c)
{
    struct hookrt *rt = c->hooks;
    if (!rt) return;
    if (rt->listen_fd >= 0) close(rt->listen_fd);
    for (hconn *k = rt->conns; k; k = k->next) close(k->fd); /* the connections themselves stay */
    hookset_clear(&rt->set);
    free(rt->sock_path);
    free(rt->dir);
    free(rt);
    c->hooks = NULL;
}

/* ===================================================================== */
/* VFS after-hooks: I/O thread                                            */

void hooks_on_file_event(mlk_client *c, const jdoc *d, const jnode *file)
{
    struct hookrt *rt = c->hooks;
    if (!rt || !file || file->type != JN_OBJ) return;
    const char *op = jd_str(d, file, "op", "");
    const char *path = jd_str(d, file, "path", "");
    /* plain hooks are suppressed while one is queued or running */
    int plain_ok = rt->plain_inflight == 0;
    char *mp = NULL;
    size_t n = 0;
    for (size_t i = 0; i < rt->set.n; i++) {
        const hook *h = &rt->set.v[i];
        if (h->kind != MLK_HOOK_VFS_DANGEROUS && !(h->kind == MLK_HOOK_VFS_AFTER && plain_ok)) continue;
        if (!hook_matches(h, op, path)) continue;
        if (atomic_load(&c->queued_after) >= AFTER_QUEUE_MAX) { note_dropped(c, &c->dropped_after); continue; }
        if (!mp && json_to_mp_buf(d, file, &mp, &n) != 0) return;
        int plain = h->kind == MLK_HOOK_VFS_AFTER;
        if (plain) rt->plain_inflight++;
        if (post_hook(&c->mainq, c, h, NULL, plain, mp, n) != 0 && plain) rt->plain_inflight--;
    }
    free(mp);
}

/* ===================================================================== */
/* VFS action and mutate hooks: chains run on host threads                */

struct chain {
    mlk_client *c;
    req *r;                      /* the call, routed to its caller */
    const char *op;              /* "write", "read", "readdir" */
    char *path;
    char *data;
    size_t len;
    uint32_t mode;
    size_t next;                 /* next hook index to consider */
    void (*finish)(mlk_client *, req *, const char *, const char *, size_t, uint32_t);
    chain *link;                 /* in hookrt.chains, under c->mu */
    int running;                 /* an answer is being processed (under c->mu) */
    int cancelled;               /* mlk_cancel or the deadline completed the call already (under c->mu) */
    int freed;                   /* chain_free started (under c->mu): the timer does nothing */
    int64_t timeout_ms;          /* the call's deadline covers its hooks too; 0 = none */
    struct timespec deadline;
    struct event *timer;         /* I/O: fires at the deadline */
};

static long chain_ms_left(const chain *ch)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (ch->deadline.tv_sec - now.tv_sec) * 1000 + (ch->deadline.tv_nsec - now.tv_nsec) / 1000000;
}

static void chain_deadline_msg(const chain *ch, char *msg, size_t n)
{
    snprintf(msg, n, "%s_file: deadline of %lld ms exceeded while a VFS hook was deciding (the call was cancelled)",
             strcmp(ch->op, "readdir") == 0 ? "list" : ch->op, (long long)ch->timeout_ms);
}

static void chain_free(chain *ch)
{
    mlk_client *c = ch->c;
    pthread_mutex_lock(&c->mu);
    for (chain **p = c->hooks ? &c->hooks->chains : NULL; p && *p; p = &(*p)->link)
        if (*p == ch) { *p = ch->link; break; }
    ch->freed = 1;
    pthread_mutex_unlock(&c->mu);
    if (ch->timer) event_free(ch->timer); /* waits for a running chain_timeout (it takes c->mu) */
    free(ch->path);
    free(ch->data);
    free(ch);
}

static void chain_fail(chain *ch, int status, const char *msg)
{
    post_fail(ch->r, status, msg);
    req_free(ch->r);
    chain_free(ch);
}

static void chain_next(chain *ch)
{
    struct hookrt *rt = ch->c->hooks;
    long left = ch->timeout_ms > 0 ? chain_ms_left(ch) : 1;
    if (left <= 0) {
        char msg[160];
        chain_deadline_msg(ch, msg, sizeof msg);
        chain_fail(ch, MLK_ETIMEDOUT, msg);
        return;
    }
    for (; rt && ch->next < rt->set.n; ch->next++) {
        const hook *h = &rt->set.v[ch->next];
        int applies = (h->kind == MLK_HOOK_VFS_ACTION && hook_matches(h, ch->op, ch->path)) ||
                      (h->kind == MLK_HOOK_VFS_MUTATE && strcmp(ch->op, "write") == 0 &&
                       hook_matches(h, "write", ch->path));
        if (!applies) continue;
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        int mutate = h->kind == MLK_HOOK_VFS_MUTATE;
        msgpack_pack_map(&pk, mutate ? 7 : 6);
#define KEY(s) (msgpack_pack_str(&pk, strlen(s)), msgpack_pack_str_body(&pk, s, strlen(s)))
        KEY("op"); KEY(ch->op);
        KEY("path"); KEY(ch->path);
        KEY("size"); msgpack_pack_uint64(&pk, ch->len);
        KEY("mode"); msgpack_pack_uint32(&pk, ch->mode);
        KEY("uid"); msgpack_pack_int64(&pk, (int64_t)geteuid());
        KEY("gid"); msgpack_pack_int64(&pk, (int64_t)getegid());
        if (mutate) { KEY("data"); msgpack_pack_bin(&pk, ch->len); msgpack_pack_bin_body(&pk, ch->data, ch->len); }
#undef KEY
        mlk_hook_call *call = calloc(1, sizeof *call);
        if (!call) { msgpack_sbuffer_destroy(&sb); chain_fail(ch, MLK_ENOMEM, "out of memory"); return; }
        call->kind = h->kind;
        call->c = ch->c;
        call->hook_index = ch->next;
        call->ch = ch;
        pthread_mutex_lock(&ch->c->mu);
        ch->running = 0;
        pthread_mutex_unlock(&ch->c->mu);
        client_ref(ch->c);
        int rc = post_hook(ch->r->q, ch->c, h, call, 0, sb.data, sb.size);
        msgpack_sbuffer_destroy(&sb);
        if (rc != 0) {
            free(call);
            ch->c->tokens_out--; /* never published */
            chain_fail(ch, rc, "out of memory");
        }
        return; /* the answer continues the chain */
    }
    if (ch->timeout_ms > 0) ch->r->timeout_ms = left; /* the request gets what the hooks left */
    ch->finish(ch->c, ch->r, ch->path, ch->data, ch->len, ch->mode);
    chain_free(ch);
}

/* I/O thread: the call's deadline passed while a hook was deciding.  The
 * caller gets MLK_ETIMEDOUT now; the hook's late answer is dropped (and
 * frees the chain).  A chain busy with an answer meets its deadline in
 * chain_next instead. */
static void chain_timeout(evutil_socket_t fd, short what, void *arg)
{
    chain *ch = arg;
    char msg[160];
    chain_deadline_msg(ch, msg, sizeof msg);
    pthread_mutex_lock(&ch->c->mu);
    if (!ch->freed && !ch->running && !ch->cancelled) {
        ch->cancelled = 1;
        post_fail(ch->r, MLK_ETIMEDOUT, msg); /* under mu: chain_answered frees r only after */
    }
    pthread_mutex_unlock(&ch->c->mu);
}

int hooks_match_before(mlk_client *c, const char *op, const char *path)
{
    struct hookrt *rt = c->hooks;
    for (size_t i = 0; rt && i < rt->set.n; i++) {
        const hook *h = &rt->set.v[i];
        if (h->kind == MLK_HOOK_VFS_ACTION && hook_matches(h, op, path)) return 1;
        if (h->kind == MLK_HOOK_VFS_MUTATE && strcmp(op, "write") == 0 && hook_matches(h, op, path)) return 1;
    }
    return 0;
}

int hooks_file_call(mlk_client *c, req *r, const char *op, const char *path, const char *data, size_t len,
                    uint32_t mode, void (*finish)(mlk_client *, req *, const char *, const char *, size_t, uint32_t))
{
    chain *ch = calloc(1, sizeof *ch);
    if (!ch) return MLK_ENOMEM;
    ch->c = c;
    ch->r = r;
    ch->op = op;
    ch->mode = mode;
    ch->finish = finish;
    ch->path = strdup(path);
    ch->data = malloc(len ? len : 1);
    if (!ch->path || !ch->data) { chain_free(ch); return MLK_ENOMEM; }
    if (len) memcpy(ch->data, data, len);
    ch->len = len;
    ch->running = 1;
    ch->timeout_ms = r->timeout_ms;
    if (ch->timeout_ms > 0) {
        clock_gettime(CLOCK_MONOTONIC, &ch->deadline);
        ch->deadline.tv_sec += ch->timeout_ms / 1000;
        ch->deadline.tv_nsec += (long)(ch->timeout_ms % 1000) * 1000000;
        if (ch->deadline.tv_nsec >= 1000000000) { ch->deadline.tv_sec++; ch->deadline.tv_nsec -= 1000000000; }
        ch->timer = evtimer_new(ioloop_base(), chain_timeout, ch);
        if (!ch->timer) { chain_free(ch); return MLK_ENOMEM; }
        struct timeval tv = {(time_t)(ch->timeout_ms / 1000), (suseconds_t)(ch->timeout_ms % 1000) * 1000};
        evtimer_add(ch->timer, &tv);
    }
    pthread_mutex_lock(&c->mu);
    ch->link = c->hooks->chains;
    c->hooks->chains = ch;
    pthread_mutex_unlock(&c->mu);
    chain_next(ch);
    return 0;
}

int hooks_cancel(mlk_client *c, uint64_t op)
{
    chain *found = NULL;
    pthread_mutex_lock(&c->mu);
    for (chain *ch = c->hooks ? c->hooks->chains : NULL; ch; ch = ch->link)
        if (ch->r->id == op && !ch->running && !ch->cancelled) { ch->cancelled = 1; found = ch; break; }
    pthread_mutex_unlock(&c->mu);
    if (!found) return 0;
    char msg[96];
    snprintf(msg, sizeof msg, "%s_file: cancelled by the caller while a VFS hook was deciding", found->op);
    post_fail(found->r, MLK_ECANCELED, msg); /* the call ends now; the pending answer is dropped */
    return 1;
}

/* An answer arrived for ch: 1 when the call was cancelled meanwhile (ch and
 * its request are then freed), else 0 with ch marked running. */
static int chain_answered(chain *ch)
{
    pthread_mutex_lock(&ch->c->mu);
    int cancelled = ch->cancelled;
    if (!cancelled) ch->running = 1;
    pthread_mutex_unlock(&ch->c->mu);
    if (cancelled) {
        req_free(ch->r);
        chain_free(ch);
    }
    return cancelled;
}

/* ===================================================================== */
/* answers                                                                 */

static void token_done(mlk_client *c) { client_unref(c); }

static void call_abandon(mlk_hook_call *call, const char *why)
{
    mlk_client *c = call->c;
    if (call->kind == MLK_HOOK_NETWORK) {
        post_net_error(call, why);
    } else {
        if (!chain_answered(call->ch)) chain_fail(call->ch, MLK_EUSER, why);
        free(call);
    }
    token_done(c);
}

MLK_API int mlk_hook_reply(mlk_hook_call *call, const char *reply, size_t len)
{
    if (!call) return MLK_EINVAL;
    if (client_inherited(call->c)) return MLK_ECLOSED; /* the parent's call */
    mlk_client *c = call->c;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    const msgpack_object *o = NULL;
    if (reply && len) {
        if (mp_parse(reply, len, &u) != 0) {
            msgpack_unpacked_destroy(&u);
            return mlk_hook_fail(call, "the hook's answer is not a msgpack value");
        }
        o = &u.data;
    }
    int rc = 0;
    char *why = NULL;
    if (call->kind == MLK_HOOK_NETWORK) {
        jw w;
        jw_init(&w);
        rc = hook_answer_network(o, &w, &why);
        if (rc) {
            /* the traffic proceeds, as after a failed hook; the caller gets the code */
            jw_free(&w);
            post_net_error(call, why ? why : "invalid network hook");
        } else {
            jw_nl(&w);
            rc = post_net_reply(call, &w);
        }
    } else if (chain_answered(call->ch)) {
        free(call);
    } else {
        chain *ch = call->ch;
        const hook *h = &c->hooks->set.v[call->hook_index];
        int block = 0;
        const char *p = NULL;
        size_t n = 0;
        rc = call->kind == MLK_HOOK_VFS_ACTION ? hook_answer_action(o, &block, &why) : hook_answer_mutate(o, &p, &n, &why);
        if (rc) {
            char *m = xasprintf("%s (%s \"%s\")", why ? why : "invalid vfs hook", kind_label(call->kind), h->name);
            chain_fail(ch, rc, m ? m : "invalid vfs hook");
            free(m);
        } else if (block) {
            char *m = xasprintf("vfs hook blocked operation: op=%s path=%s hook=\"%s\"", ch->op, ch->path, h->name);
            chain_fail(ch, MLK_EVFS_BLOCKED, m ? m : "vfs hook blocked operation");
            free(m);
        } else if (p) { /* a mutate hook's new bytes */
            char *nd = malloc(n ? n : 1);
            if (!nd) chain_fail(ch, MLK_ENOMEM, "out of memory");
            else {
                if (n) memcpy(nd, p, n);
                free(ch->data);
                ch->data = nd;
                ch->len = n;
                ch->next = call->hook_index + 1;
                chain_next(ch);
            }
        } else { /* allowed, or the bytes stay as they are */
            ch->next = call->hook_index + 1;
            chain_next(ch);
        }
        free(call);
    }
    free(why);
    msgpack_unpacked_destroy(&u);
    token_done(c);
    return rc;
}

MLK_API int mlk_hook_fail(mlk_hook_call *call, const char *message)
{
    if (!call) return MLK_EINVAL;
    if (client_inherited(call->c)) return MLK_ECLOSED; /* the parent's call */
    mlk_client *c = call->c;
    const char *m = message && *message ? message : "hook failed";
    if (call->kind == MLK_HOOK_NETWORK) {
        post_net_error(call, m);
    } else if (chain_answered(call->ch)) {
        free(call);
    } else {
        const hook *h = &c->hooks->set.v[call->hook_index];
        char *msg = xasprintf("%s \"%s\" failed: %s", kind_label(call->kind), h->name, m);
        chain_fail(call->ch, MLK_EUSER, msg ? msg : m);
        free(msg);
        free(call);
    }
    token_done(c);
    return 0;
}
