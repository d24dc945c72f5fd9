/* internal.h - declarations shared by the core's files.  Never installed. */
#ifndef MLK_INTERNAL_H
#define MLK_INTERNAL_H

#include "matchlock.h"
#include "json.h"

#include <msgpack.h>
#include <stdint.h>

/* ---- bounds on what a server can make the host hold -------------------
 * Every buffer and queue the server (or the hook socket's peer, or the
 * CLI) can fill has its bound here, and docs/security.md ("A server cannot
 * exhaust the host") lists each with its test.  The parser's node budget
 * is JD_* in json.h; the default line limit is MLK_DEFAULT_MAX_LINE in
 * matchlock.h (a read_file of MLK_LARGEST_READ bytes). */
#define STDERR_TAIL 4096               /* the child's stderr: its last bytes only */
#define BANNER_MAX 4096                /* non-protocol stdout kept before the first message */
#define WRITE_ERR_MAX 4096             /* a big write_file's `cat` stderr kept for its message */
#define OUT_HIGH (16 * 1024 * 1024)    /* stream output queued for the host: stop reading above */
#define OUT_LOW (4 * 1024 * 1024)      /* ... and read again below */
#define LINE_BUF_KEEP (1024 * 1024)    /* the line buffer, once empty, is freed when bigger */
#define LINE_KEEP 256                  /* an oversized line: bytes of its head and tail kept to find its id */
#define EVENT_QUEUE_MAX 4096           /* `event` notifications waiting for mlk_dispatch; more are dropped */
#define AFTER_QUEUE_MAX 1024           /* VFS after-hook calls waiting for mlk_dispatch; more are dropped */
#define MAX_HOOK_REQUEST (8 * 1024 * 1024) /* one hook-socket request line */
#define MAX_HOOK_CONNS 64              /* hook-socket connections served at once; more wait in the backlog */
#define CLI_OUTPUT_MAX (16 * 1024 * 1024) /* stdout of a CLI side channel (volume ls ...): more kills it */
#define CLI_STDERR_MAX 65536           /* stderr of a CLI side channel kept for its message */

/* ---- results (result.c) ---------------------------------------------- */
struct mlk_result {
    int status;
    int rpc_code;
    int exit_code;
    int64_t duration_ms;
    char *message;               /* owned, never NULL after result_new */
    char *owned;                 /* a buffer the byte fields may point into */
    const char *out, *err, *data, *mp;
    size_t out_len, err_len, data_len, mp_len;
    char *out_own, *err_own, *data_own, *mp_own;  /* separately owned copies */
};

mlk_result *result_new(void);
/* Set status and a printf-style message (returns status). */
int result_fail(mlk_result *r, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Copy bytes into a field: which = 'o','e','d','m'. */
int result_set_copy(mlk_result *r, int which, const char *p, size_t n);
/* Store r in *out (or free it) and return its status. */
int result_give(mlk_result *r, mlk_result **out);

/* ---- msgpack <-> JSON (mpconv.c) --------------------------------------- */
/* Render a msgpack object as JSON.  Returns 0, or -1 when it holds
 * something JSON cannot carry (ext types, non-string keys are
 * rendered as strings). */
int mp_to_json(const msgpack_object *o, jw *w);
/* Pack a parsed JSON node as msgpack. */
int json_to_mp(const jdoc *d, const jnode *n, msgpack_packer *pk);
/* Convenience: JSON node -> malloc'd msgpack buffer. */
int json_to_mp_buf(const jdoc *d, const jnode *n, char **buf, size_t *len);
/* Unpack a msgpack document the caller passed in (a single object). */
int mp_parse(const char *buf, size_t len, msgpack_unpacked *out);

/* ---- msgpack objects and the rule contract (contract.c) --------------- */
#include "contract.h"
const char *mp_kind_text(const msgpack_object *o);      /* "a string", "an array", ... */
int mp_key_is(const msgpack_object *k, const char *name);
const msgpack_object *mp_get(const msgpack_object *map, const char *name);  /* NULL: absent */
int mp_is_str_array(const msgpack_object *o);
int mp_is_str_map(const msgpack_object *o);
/* Check a rule against table t, allowing the keys whose `where` has a bit
 * of mode (RK_*); with RK_HOOK also the values only callback rules need
 * (known op names, timeouts >= 0).  0, or -1 with *msg (malloc'd) starting
 * with `what`. */
int contract_check_rule(const rule_table *t, unsigned mode, const msgpack_object *r, const char *what, char **msg);
/* Write the non-empty fields of a checked rule allowed by mode (in the
 * table's order, callback keys never, nor the keys in skip, NULL-ended)
 * into an open JSON object. */
void contract_write_rule(const rule_table *t, unsigned mode, const msgpack_object *r, const char *const *skip,
                         jw *w);

/* ---- hooks as the builder keeps them (hooks.c) ----------------------- */
typedef struct hook {
    int kind;                 /* MLK_HOOK_* */
    char *name;               /* "" when unnamed */
    char *path;               /* glob; NULL matches every path */
    char **ops;               /* VFS ops; NULL matches every op */
    size_t nops;
    char *net_fields;         /* network: rule fields rendered as `"k":v,...` */
    int64_t timeout_ms;       /* network: 0 = default */
    mlk_hook_cb cb;
    void *ud;
} hook;

typedef struct hookset {
    hook *v;
    size_t n;
} hookset;

/* Parse and validate one hook rule (msgpack map).  0, or an
 * MLK_EINVALID_*_HOOK code with *msg (malloc'd). */
int hook_parse(int kind, const char *rule, size_t len, mlk_hook_cb cb, void *ud, hook *out, char **msg);
/* The same on a parsed rule (NULL: empty); from_config: the rule comes from
 * a whole interception config (mlk_sandbox_set_interception): it may hold
 * its callback key, and an after-hook's phase must be said. */
int hook_parse_obj(int kind, const msgpack_object *r, mlk_hook_cb cb, void *ud, int from_config, hook *out,
                   char **msg);
int hookset_add(hookset *s, hook *h);       /* takes h's contents */
int hookset_copy(hookset *dst, const hookset *src);
void hookset_clear(hookset *s);
void hookset_remove_kind(hookset *s, int kind);  /* kind 0: every hook */
size_t hookset_count(const hookset *s, int kind);
/* Write the network hooks as rule objects into an open JSON array; the
 * k-th gets callback_id network_hook_<first_index + k + 1>. */
void hookset_write_net_rules(const hookset *s, jw *w, size_t first_index);
/* A hook's answer checked against the contract (hook_answer.c): 0, or an
 * MLK_EINVALID_NET_HOOK or _VFS_HOOK code with *msg (malloc'd).  Network: rendered as the
 * wire reply into w (may be NULL); action: *block; mutate: the new bytes in
 * p and n (NULL: keep them), pointing into o. */
int hook_answer_network(const msgpack_object *o, jw *w, char **msg);
int hook_answer_action(const msgpack_object *o, int *block, char **msg);
int hook_answer_mutate(const msgpack_object *o, const char **p, size_t *n, char **msg);
/* Path glob match with `*` not crossing '/' (filepath.Match). */
int hook_glob_match(const char *pattern, const char *path);

/* ---- the builder (sandbox.c) ---------------------------------------- */
const hookset *sandbox_hooks(const mlk_sandbox *sb);
/* The workspace given to the builder (vfs.workspace), or NULL. */
const char *sandbox_workspace(const mlk_sandbox *sb);
/* How many static network interception rules the builder has. */
size_t sandbox_net_rule_count(const mlk_sandbox *sb);
/* Validate and write the create params object into w (no newline);
 * callback_socket (may be NULL) is sent when network hooks exist.
 * Returns 0 or an MLK_E* code with *msg (malloc'd) saying why. */
int sandbox_render(const mlk_sandbox *sb, int launch, const char *callback_socket, jw *w, char **msg);
/* Port-forward specs and bind addresses given to the builder. */
size_t sandbox_port_forwards(const mlk_sandbox *sb, const char *const **specs,
                             const char *const **addrs, size_t *naddrs);

/* ---- guest paths (guestpath.c) ---------------------------------------- */
/* The canonical guest path for a file call's path (malloc'd into *out): a
 * relative path is taken against workspace (NULL or "": "/workspace"),
 * "//" and "." are dropped and ".." is resolved lexically, never above "/".
 * Always absolute.  0, MLK_EINVAL (empty path) or MLK_ENOMEM. */
int guest_path_canon(const char *workspace, const char *path, char **out);

/* ---- shared helpers (util.c) ---------------------------------------- */
char *xstrdup(const char *s);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Names and ids that become operands of a command line (volume names, VM
 * ids, the server's included): matchlock-local's rule, so that none can be
 * a flag or shell syntax.  1 when s follows it. */
#define NAME_MAX_LEN 128
#define NAME_RULE "[A-Za-z0-9][A-Za-z0-9._-]*, at most 128 characters"
int name_valid(const char *s);
/* Text from a server or guest made safe for a message read in terminals
 * and logs: control characters other than newline and tab (C0, DEL, C1),
 * the bidirectional overrides and every byte that is not valid UTF-8 become
 * \xNN; the rest is copied.  Every result message passes through it
 * (result_fail).  malloc'd, NUL-terminated; NULL when out of memory. */
char *text_escape(const char *s, size_t n);
/* Parse `[LOCAL:]REMOTE` specs into the wire forwards array (into w). */
int port_forward_render(const char *const *specs, size_t n, jw *w, char **msg);
/* Normalise allow-list hosts into a JSON array (into w). */
int allow_list_render(const char *const *hosts, size_t n, jw *w, char **msg);

#endif
