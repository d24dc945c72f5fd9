/* portfwd.c - port_forward: TCP listeners on the host that relay each
 * connection to 127.0.0.1:remote_port.  The sandbox shares the host's
 * network namespace in this backend, so "inside the sandbox" is loopback.
 * Each call replaces the previous set of listeners. */
#include "local.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define RELAY_HIGH (1u << 20)

typedef struct listener {
    struct evconnlistener *l;
    char addr[64];
    int local_port, remote_port;
} listener;

struct portfwd {
    server *srv;
    listener *ls;
    size_t n;
};

typedef struct relay {
    struct bufferevent *a, *b;
    int a_eof, b_eof;
} relay;

static void relay_free(relay *r)
{
    if (r->a) bufferevent_free(r->a);
    if (r->b) bufferevent_free(r->b);
    free(r);
}

static void relay_read(struct bufferevent *from, void *arg)
{
    relay *r = arg;
    struct bufferevent *to = from == r->a ? r->b : r->a;
    evbuffer_add_buffer(bufferevent_get_output(to), bufferevent_get_input(from));
    if (evbuffer_get_length(bufferevent_get_output(to)) >= RELAY_HIGH) {
        bufferevent_disable(from, EV_READ);          /* wait for `to` to drain */
        bufferevent_setwatermark(to, EV_WRITE, RELAY_HIGH / 2, 0);
    }
}

static void relay_write(struct bufferevent *to, void *arg)
{
    relay *r = arg;
    struct bufferevent *from = to == r->a ? r->b : r->a;
    int from_eof = from == r->a ? r->a_eof : r->b_eof;
    if (!from_eof) {
        bufferevent_enable(from, EV_READ);
        bufferevent_setwatermark(to, EV_WRITE, 0, 0);
        return;
    }
    /* the other side finished and everything is delivered: half-close */
    if (evbuffer_get_length(bufferevent_get_output(to)) == 0) {
        shutdown(bufferevent_getfd(to), SHUT_WR);
        if (r->a_eof && r->b_eof) relay_free(r);
    }
}

static void relay_event(struct bufferevent *bev, short what, void *arg)
{
    relay *r = arg;
    if (what & BEV_EVENT_CONNECTED) {
        bufferevent_enable(r->a, EV_READ | EV_WRITE);
        return;
    }
    if (what & BEV_EVENT_ERROR) { relay_free(r); return; }
    if (what & BEV_EVENT_EOF) {
        struct bufferevent *to = bev == r->a ? r->b : r->a;
        relay_read(bev, r);
        if (bev == r->a) r->a_eof = 1; else r->b_eof = 1;
        if (evbuffer_get_length(bufferevent_get_output(to)) == 0) shutdown(bufferevent_getfd(to), SHUT_WR);
        if (r->a_eof && r->b_eof) relay_free(r);
    }
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg)
{
    (void)l; (void)sa; (void)len;
    listener *ls = arg;
    struct event_base *base = evconnlistener_get_base(l);
    relay *r = calloc(1, sizeof *r);
    if (!r) { evutil_closesocket(fd); return; }
    r->a = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    r->b = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(r->a, relay_read, relay_write, relay_event, r);
    bufferevent_setcb(r->b, relay_read, relay_write, relay_event, r);
    bufferevent_enable(r->b, EV_READ | EV_WRITE);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)ls->remote_port)};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bufferevent_socket_connect(r->b, (struct sockaddr *)&to, sizeof to) != 0) relay_free(r);
}

void portfwd_stop(vm *v)
{
    portfwd *pf = v->pf;
    if (!pf) return;
    for (size_t i = 0; i < pf->n; i++) evconnlistener_free(pf->ls[i].l);
    free(pf->ls);
    free(pf);
    v->pf = NULL;
}

static int listen_on(server *s, listener *ls, const char *addr, int lport, char **err)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    const char *a = strcmp(addr, "localhost") ? addr : "127.0.0.1";
    if (inet_pton(AF_INET, a, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)lport);
        sl = sizeof *in4;
    } else if (inet_pton(AF_INET6, a, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)lport);
        sl = sizeof *in6;
    } else {
        if (asprintf(err, "invalid address %s", addr) < 0) *err = NULL;
        return -1;
    }
    ls->l = evconnlistener_new_bind(s->base, on_accept, ls,
                                    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 128,
                                    (struct sockaddr *)&ss, (int)sl);
    if (!ls->l) {
        if (asprintf(err, "listen on %s:%d: %s", addr, lport, strerror(errno)) < 0) *err = NULL;
        return -1;
    }
    struct sockaddr_storage got;
    socklen_t gl = sizeof got;
    getsockname(evconnlistener_get_fd(ls->l), (struct sockaddr *)&got, &gl);
    ls->local_port = ntohs(got.ss_family == AF_INET ? ((struct sockaddr_in *)&got)->sin_port
                                                    : ((struct sockaddr_in6 *)&got)->sin6_port);
    snprintf(ls->addr, sizeof ls->addr, "%s", addr);
    return 0;
}

void rpc_port_forward(server *s, req *r, const jdoc *d, const jnode *params)
{
    const jnode *fw = jd_get(d, params, "forwards"), *addrs = jd_get(d, params, "addresses");
    if (!fw || fw->type != JN_ARR) {
        srv_error(s, &r->id, MLK_RPC_INVALID_PARAMS, "forwards: expected an array of {local_port, remote_port}");
        return;
    }
    if (addrs && addrs->type != JN_NULL && addrs->type != JN_ARR) {
        srv_error(s, &r->id, MLK_RPC_INVALID_PARAMS, "addresses: expected an array of strings");
        return;
    }
    int i = 0;
    for (const jnode *f = jd_first(d, fw); f; f = jd_next(d, f), i++) {
        int64_t lp = jd_int(d, f, "local_port", -1), rp = jd_int(d, f, "remote_port", -1);
        if (f->type != JN_OBJ || lp < 0 || lp > 65535 || rp < 1 || rp > 65535) {
            srv_error(s, &r->id, MLK_RPC_INVALID_PARAMS, "forwards[%d]: ports must be 1..65535", i);
            return;
        }
    }
    for (const jnode *a = jd_first(d, addrs); a; a = jd_next(d, a))
        if (a->type != JN_STR || !a->len) {
            srv_error(s, &r->id, MLK_RPC_INVALID_PARAMS, "addresses: expected an array of strings");
            return;
        }
    portfwd_stop(s->vm);
    portfwd *pf = calloc(1, sizeof *pf);
    size_t na = addrs && addrs->type == JN_ARR && addrs->count ? addrs->count : 1;
    pf->srv = s;
    pf->ls = calloc(fw->count * na + 1, sizeof *pf->ls);
    for (const jnode *f = jd_first(d, fw); f; f = jd_next(d, f)) {
        const jnode *a = addrs && addrs->type == JN_ARR ? jd_first(d, addrs) : NULL;
        for (size_t k = 0; k < na; k++, a = jd_next(d, a)) {
            const char *addr = a ? a->s : "127.0.0.1";
            listener *ls = &pf->ls[pf->n];
            ls->remote_port = (int)jd_int(d, f, "remote_port", 0);
            char *err = NULL;
            if (listen_on(s, ls, addr, (int)jd_int(d, f, "local_port", 0), &err) != 0) {
                srv_error(s, &r->id, MLK_RPC_VM_FAILED, "port_forward: %s", err ? err : "listen failed");
                free(err);
                s->vm->pf = pf;
                portfwd_stop(s->vm);
                return;
            }
            pf->n++;
        }
    }
    s->vm->pf = pf;
    jw w;
    jw_init(&w);
    srv_result_start(&w, r->id);
    jw_obj(&w);
    jw_key(&w, "bindings");
    jw_arr(&w);
    for (size_t k = 0; k < pf->n; k++) {
        jw_obj(&w);
        jw_key(&w, "address"); jw_str(&w, pf->ls[k].addr);
        jw_key(&w, "local_port"); jw_int(&w, pf->ls[k].local_port);
        jw_key(&w, "remote_port"); jw_int(&w, pf->ls[k].remote_port);
        jw_obj_end(&w);
        vm_log(s->vm, "port forward %s:%d -> 127.0.0.1:%d", pf->ls[k].addr, pf->ls[k].local_port,
               pf->ls[k].remote_port);
    }
    jw_arr_end(&w);
    jw_obj_end(&w);
    srv_result_end(s, &w);
    jw_free(&w);
}
