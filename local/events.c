/* events.c - VFS interception: `block` rules (phase before) enforced for
 * the RPC file calls, and `event` notifications for changes under the
 * mounts when emit_events is set.  Events come from inotify on the host
 * directories backing the mounts, so they are best effort: they see every
 * change (from commands and file calls alike) but report it after the
 * fact, coalesce rapid writes into one "write" at close, and miss
 * directories created faster than a watch can be added. */
#include "local.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

/* An op's bit: its index in the contract's list (core/contract.c). */
static int op_bit(const char *name)
{
    int i = contract_vfs_op(name, strlen(name));
    return i < 0 ? -1 : 1 << i;
}

int vfs_parse_rules(vm *v, const jdoc *d, const jnode *icp, char **msg)
{
    v->emit_events = jd_bool(d, icp, "emit_events", 0);
    const jnode *rules = jd_get(d, icp, "rules");
    if (!rules || rules->type == JN_NULL) return 0;
    if (rules->type != JN_ARR) {
        if (asprintf(msg, "vfs.interception.rules: expected an array") < 0) *msg = NULL;
        return MLK_RPC_INVALID_PARAMS;
    }
    int i = 0;
    for (const jnode *r = jd_first(d, rules); r; r = jd_next(d, r), i++) {
        if (r->type != JN_OBJ) {
            if (asprintf(msg, "vfs.interception.rules[%d]: expected an object", i) < 0) *msg = NULL;
            return MLK_RPC_INVALID_PARAMS;
        }
        char where[64];
        snprintf(where, sizeof where, "vfs.interception.rules[%d]", i);
        int code = rule_shape_check(&contract_vfs_rule, d, r, where, msg);
        if (code) return code;
        const char *phase = jd_str(d, r, "phase", "before"), *action = jd_str(d, r, "action", "allow");
        if (*phase && strcmp(phase, "before") && strcmp(phase, "after")) {
            if (asprintf(msg, "vfs.interception.rules[%d].phase: must be before or after", i) < 0) *msg = NULL;
            return MLK_RPC_INVALID_PARAMS;
        }
        if (*action && strcmp(action, "allow") && strcmp(action, "block")) {
            if (asprintf(msg, "vfs.interception.rules[%d].action: must be allow or block", i) < 0) *msg = NULL;
            return MLK_RPC_INVALID_PARAMS;
        }
        unsigned ops = 0;
        const jnode *on = jd_get(d, r, "ops");
        for (const jnode *o = jd_first(d, on); o; o = jd_next(d, o)) {
            int b = o->type == JN_STR ? op_bit(o->s) : -1;
            if (b < 0) {
                if (asprintf(msg, "vfs.interception.rules[%d].ops: unknown op", i) < 0) *msg = NULL;
                return MLK_RPC_INVALID_PARAMS;
            }
            ops |= (unsigned)b;
        }
        /* only block rules of phase before are enforced (as upstream) */
        if (strcmp(action, "block") || !strcmp(phase, "after")) continue;
        vfs_rule *nr = realloc(v->rules, (v->nrules + 1) * sizeof *nr);
        if (!nr) continue;
        v->rules = nr;
        nr[v->nrules].name = strdup(jd_str(d, r, "name", ""));
        nr[v->nrules].path = strdup(jd_str(d, r, "path", ""));
        nr[v->nrules].ops = ops;
        nr[v->nrules].block = 1;
        v->nrules++;
    }
    return 0;
}

/* op is the file call: "write" (write_file), "read" (read_file) or
 * "readdir" (list_files); each consults the VFS ops it implies. */
int vfs_check(vm *v, const char *op, const char *guest, char **msg)
{
    unsigned want = (unsigned)op_bit(op) | (unsigned)op_bit("open");
    if (!strcmp(op, "write")) want |= (unsigned)op_bit("create");
    if (!strcmp(op, "readdir")) want = (unsigned)op_bit("readdir");
    for (size_t i = 0; i < v->nrules; i++) {
        vfs_rule *r = &v->rules[i];
        if (r->ops && !(r->ops & want)) continue;
        if (*r->path && fnmatch(r->path, guest, FNM_PATHNAME) != 0) continue;
        if (asprintf(msg, "blocked by VFS rule%s%s", *r->name ? " " : "", r->name) < 0) *msg = NULL;
        return -1;
    }
    return 0;
}

/* ---- inotify ------------------------------------------------------------ */

static void add_watch(vm *v, const char *host, const char *guest, int depth)
{
    int wd = inotify_add_watch(v->inotify_fd, host,
                               IN_CREATE | IN_CLOSE_WRITE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO |
                               IN_ATTRIB | IN_ONLYDIR | IN_DONT_FOLLOW);
    if (wd < 0) return;
    if (wd >= v->nwatch) {
        char **nw = realloc(v->watch_paths, (size_t)(wd + 1) * sizeof *nw);
        if (!nw) return;
        for (int i = v->nwatch; i <= wd; i++) nw[i] = NULL;
        v->watch_paths = nw;
        v->nwatch = wd + 1;
    }
    free(v->watch_paths[wd]);
    v->watch_paths[wd] = strdup(guest);
    if (depth > 32) return;
    DIR *d = opendir(host);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_type != DT_DIR || !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char *h = NULL, *g = NULL;
        if (asprintf(&h, "%s/%s", host, e->d_name) >= 0 && asprintf(&g, "%s/%s", guest, e->d_name) >= 0)
            add_watch(v, h, g, depth + 1);
        free(h);
        free(g);
    }
    if (d) closedir(d);
}

void emit_file_event(server *s, const char *op, const char *guest, int64_t size, uint32_t mode)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    jw w;
    jw_init(&w);
    jw_obj(&w);
    jw_key(&w, "jsonrpc"); jw_str(&w, "2.0");
    jw_key(&w, "method"); jw_str(&w, "event");
    jw_key(&w, "params");
    jw_obj(&w);
    jw_key(&w, "type"); jw_str(&w, "file");
    jw_key(&w, "timestamp"); jw_int(&w, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    jw_key(&w, "file");
    jw_obj(&w);
    jw_key(&w, "op"); jw_str(&w, op);
    jw_key(&w, "path"); jw_str(&w, guest);
    jw_key(&w, "size"); jw_int(&w, size);
    if (mode) { jw_key(&w, "mode"); jw_uint(&w, mode); }
    jw_obj_end(&w);
    jw_obj_end(&w);
    jw_obj_end(&w);
    srv_send(s, &w);
    jw_free(&w);
}

static void on_inotify(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    server *s = arg;
    vm *v = s->vm;
    char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t n;
    while (v && (n = read(fd, buf, sizeof buf)) > 0) {
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *e = (struct inotify_event *)p;
            p += sizeof *e + e->len;
            if (e->wd < 0 || e->wd >= v->nwatch || !v->watch_paths[e->wd] || !e->len) continue;
            char *guest = NULL;
            if (asprintf(&guest, "%s/%s", v->watch_paths[e->wd], e->name) < 0) continue;
            const char *op = (e->mask & IN_CREATE) ? ((e->mask & IN_ISDIR) ? "mkdir" : "create")
                           : (e->mask & IN_CLOSE_WRITE) ? "write"
                           : (e->mask & IN_DELETE) ? "remove"
                           : (e->mask & (IN_MOVED_FROM | IN_MOVED_TO)) ? "rename"
                           : (e->mask & IN_ATTRIB) ? "chmod" : NULL;
            /* size and mode from the host file backing the guest path */
            int64_t size = 0;
            uint32_t mode = 0;
            int hfd = (e->mask & (IN_DELETE | IN_MOVED_FROM)) ? -1 : vm_open(v, guest, O_PATH, 0);
            struct stat st;
            if (hfd >= 0 && fstat(hfd, &st) == 0) { size = st.st_size; mode = st.st_mode; }
            if (hfd >= 0) close(hfd);
            if (op) emit_file_event(s, op, guest, size, mode);
            if ((e->mask & IN_CREATE) && (e->mask & IN_ISDIR)) {
                /* watch the new directory too (best effort) */
                for (size_t i = 0; i < v->nmounts; i++) {
                    size_t l = strlen(v->mounts[i].guest);
                    if (strncmp(guest, v->mounts[i].guest, l) || guest[l] != '/') continue;
                    char *h = NULL;
                    if (asprintf(&h, "%s%s", v->mounts[i].host, guest + l) >= 0) {
                        add_watch(v, h, guest, 0);
                        /* entries made before the watch existed */
                        DIR *dd = opendir(h);
                        struct dirent *de;
                        while (dd && (de = readdir(dd))) {
                            if (de->d_name[0] == '.' && (!de->d_name[1] || (de->d_name[1] == '.' && !de->d_name[2]))) continue;
                            char *gg = NULL;
                            if (asprintf(&gg, "%s/%s", guest, de->d_name) < 0) continue;
                            emit_file_event(s, de->d_type == DT_DIR ? "mkdir" : "create", gg, 0, 0);
                            free(gg);
                        }
                        if (dd) closedir(dd);
                    }
                    free(h);
                    break;
                }
            }
            free(guest);
        }
    }
}

void events_start(server *s, vm *v)
{
    if (!v->emit_events || !v->nmounts) return;
    v->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (v->inotify_fd < 0) {
        vm_log(v, "file events unavailable: inotify: %s", strerror(errno));
        return;
    }
    for (size_t i = 0; i < v->nmounts; i++)
        if (v->mounts[i].type != MT_SYSTEM) add_watch(v, v->mounts[i].host, v->mounts[i].guest, 0);
    v->ev_inotify = event_new(s->base, v->inotify_fd, EV_READ | EV_PERSIST, on_inotify, s);
    event_add(v->ev_inotify, NULL);
    vm_log(v, "file events enabled (inotify, best effort)");
}

void events_stop(vm *v)
{
    if (v->ev_inotify) { event_free(v->ev_inotify); v->ev_inotify = NULL; }
    if (v->inotify_fd >= 0) { close(v->inotify_fd); v->inotify_fd = -1; }
}
