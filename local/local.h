/* local.h - matchlock-local: a local backend that speaks the Matchlock
 * JSON-RPC protocol (see docs/local-backend.md) and runs each sandbox's
 * commands as local processes, under bubblewrap when it is available.
 *
 * It is not a VM and not a security boundary.  One process serves one
 * client and holds at most one VM.  Everything runs on one libevent loop
 * and nothing here is thread-safe, except the network proxy (proxy.c):
 * its connection threads share only the proxy's own state, under its lock,
 * and hand events to the loop through an eventfd.
 *
 * Files:  main.c CLI · state.c state dirs · rpc.c transport and dispatch ·
 *         exec.c processes · files.c file calls and path resolution ·
 *         sandbox.c create validation, VM dir, bwrap argv ·
 *         portfwd.c port forwards · events.c VFS rules and file events ·
 *         image.c imported images · init/sandbox-init.c the static helper
 *         that starts commands inside the sandbox (sessions, user switch) ·
 *         proxy.c the loopback HTTP proxy behind network interception (the
 *         one place with threads: see the comment at its top). */
#ifndef MLK_LOCAL_H
#define MLK_LOCAL_H

#include "contract.h"
#include "json.h"
#include "matchlock.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define LOCAL_VERSION "0.1.0"
#ifndef LOCAL_COMMIT
#define LOCAL_COMMIT "unknown"   /* both set by CMake */
#endif
#ifndef LOCAL_BUILT
#define LOCAL_BUILT "unknown"
#endif
#define MAX_LINE (10u * 1024 * 1024)  /* request line cap, as upstream */
#define CHUNK_MAX (64u * 1024)        /* output bytes per notification */
#define STDIN_QUEUE_MAX (8u << 20)    /* queued stdin per command before reading pauses */
#define RPC_OUT_HIGH (32u << 20)        /* unsent output that pauses command output */
#define RPC_OUT_LOW (8u << 20)          /* ... and resumes it */

/* JSON-RPC error codes: MLK_RPC_* from matchlock.h */

typedef struct server server;
typedef struct vm vm;
typedef struct req req;
typedef struct proc proc;
typedef struct portfwd portfwd;
typedef struct proxy proxy;

/* ---- state directories (state.c) ------------------------------------- */
/* $XDG_STATE_HOME/matchlock-local, else ~/.local/state/matchlock-local ($HOME,
 * else the password database's home); malloc'd, or NULL with *err (err
 * may be NULL) when there is no home: never a shared /tmp path. */
char *state_root(char **err);
char *state_sub(const char *kind, const char *name);   /* root/kind/name, made or not */
/* Make path (its parent exists) a private directory: created 0700, or an
 * existing directory that is not a symlink, is ours and is not writable by
 * others (its mode then becomes 0700).  0, or -1 with *err (malloc'd). */
int private_dir(const char *path, char **err);
/* root/kind/name (name NULL: root/kind), made with every private directory
 * on the way (private_dir); malloc'd path, or NULL with *err. */
char *state_make(const char *kind, const char *name, char **err);
int mkdir_p(const char *path, mode_t mode);
int rm_rf(const char *path);
int rm_rf_at(int dirfd, const char *name);
/* Copy a tree (files, dirs, symlinks; modes kept).  0 or -1 with errno. */
int copy_tree(const char *src, const char *dst);
/* The VM dir belongs to this process (a pid file), and whether the process
 * that wrote it is still alive (rm refuses running VMs). */
void vm_mark_running(const char *dir);
int vm_running(const char *dir);
/* A valid volume or VM name: [A-Za-z0-9_.-], not starting with '.'. */
int valid_name(const char *s);

/* ---- requests and the server (rpc.c) --------------------------------- */
enum method {
    M_CREATE, M_EXEC, M_EXEC_STREAM, M_EXEC_PIPE, M_EXEC_TTY, M_WRITE_FILE,
    M_READ_FILE, M_LIST_FILES, M_LOG, M_LOG_STREAM, M_ALLOW_ADD, M_ALLOW_DEL,
    M_PORT_FORWARD, M_CANCEL, M_CLOSE, M_UNKNOWN
};

struct req {
    server *srv;
    req *next, *prev;
    uint64_t id;
    int method;
    proc *proc;                 /* exec family: the running command */
    /* log_stream */
    struct event *timer;
    int log_fd;
};

struct server {
    struct event_base *base;
    struct event *ev_in, *ev_out, *ev_sigchld, *ev_sigterm, *ev_sigint;
    struct evbuffer *inbuf, *outbuf;
    int in_eof;
    int paused;                 /* a sync request waits for in-flight work */
    int throttled;              /* a command's stdin queue is full */
    int out_stalled;            /* the client is not reading: output paused */
    int closing;                /* close received: read nothing more */
    int exiting;
    int exit_code;
    req *reqs;                  /* in-flight requests */
    int inflight;
    char *sync_line;            /* create/close waiting for in-flight work */
    size_t sync_len;
    req *close_req;             /* close being carried out */
    double close_grace;
    vm *vm;
    proc *procs;                /* every live child we started */
};

/* Write one complete line (a jw holding a message without the newline). */
void srv_send(server *s, jw *w);
void srv_result_start(jw *w, uint64_t id);        /* {"jsonrpc","id","result": */
void srv_result_end(server *s, jw *w);            /* closes and sends */
void srv_error(server *s, const uint64_t *id, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void srv_empty_result(server *s, uint64_t id);
/* Send a request-scoped notification {"id":N,"data":B64}. */
void srv_notify_data(server *s, const char *method, uint64_t id, const void *p, size_t n);
void srv_notify_id(server *s, const char *method, uint64_t id);
/* The request is finished (its response was sent): unlink and free. */
void req_done(req *r);
/* Something finished: see whether a waiting create/close can run, or the
 * process can exit. */
void srv_progress(server *s);
/* A full stdin queue drained: read requests again. */
void srv_unthrottle(server *s);

/* ---- processes (exec.c) ----------------------------------------------- */
enum pkind { P_EXEC, P_STREAM, P_PIPE, P_TTY, P_ENTRY };

struct proc {
    server *srv;
    proc *next, *prev;
    req *r;                      /* NULL once detached (cancelled, entrypoint) */
    int kind;
    pid_t pid;                   /* also the process group id */
    int out_fd, err_fd, in_fd;   /* -1 when closed */
    struct event *ev_out, *ev_err, *ev_in, *ev_kill, *ev_grace;
    struct evbuffer *inbuf, *acc_out, *acc_err;
    int in_eof;                  /* close stdin once inbuf drains */
    int exited, status, killed;
    int log_fd;                  /* P_ENTRY: output goes to the VM log */
    struct timespec t0;
    struct timespec kill_at;     /* proc_kill: SIGKILL from then on */
};

typedef struct exec_params {
    const char *command, *working_dir, *user;
    int rows, cols;
} exec_params;

/* Start a command for request r (kind from r->method) or detached (r NULL,
 * P_ENTRY).  Returns the proc or NULL with an error message in *err. */
proc *proc_start(server *s, vm *v, req *r, int kind, const exec_params *ep,
                 char **argv_override, char **err);
void proc_stdin(proc *p, const void *data, size_t n);
void proc_stdin_eof(proc *p);
void proc_resize(proc *p, int rows, int cols);
/* SIGTERM the group, SIGKILL after grace seconds. */
void proc_kill(proc *p, double grace);
void proc_detach(proc *p);       /* the request no longer wants results */
void procs_reap(server *s);      /* SIGCHLD */
void procs_kill_all(server *s, double grace);
void procs_output_pause(server *s, int pause);

/* ---- the VM (sandbox.c) ------------------------------------------------ */
enum mtype { MT_HOST, MT_MEMORY, MT_OVERLAY, MT_DISK, MT_SYSTEM /* the host's /usr etc., read-only */ };

typedef struct mount {
    char *guest;                 /* normalised absolute guest path */
    char *host;                  /* the host dir backing it */
    int type, ro;
} mount;

typedef struct vfs_rule {
    char *name, *path;
    unsigned ops;                /* bit per op (events.c), 0 = all */
    int block;
} vfs_rule;

struct vm {
    char id[16];
    char *dir, *root, *log_path, *etc_dir, *shm_dir;
    int log_fd;
    char *workspace;             /* relative file-call paths start here */
    int workspace_set;           /* vfs.workspace was given: commands start there */
    mount *mounts;
    size_t nmounts;
    char **env;                  /* NULL-terminated "K=V" list */
    char *img_user, *img_workdir;
    char **entry_argv;           /* entrypoint + cmd, NULL when none */
    char *hostname;
    int no_network, use_bwrap, intercept;
    int from_image;              /* root/ is a copy of an imported image */
    char **allowed;              /* allow-list */
    size_t nallowed;
    vfs_rule *rules;
    size_t nrules;
    int emit_events;
    int inotify_fd;
    struct event *ev_inotify;
    char **watch_paths;          /* by watch descriptor */
    int nwatch;
    proc *entry;
    portfwd *pf;
    proxy *px;                   /* network interception proxy, NULL when off */
};

/* Validate create params; on success build the VM (dirs, config).
 * Returns 0, or an error code with *msg (malloc'd). */
int vm_create(server *s, const jdoc *d, const jnode *params, vm **out, char **msg);
void vm_log(vm *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void vm_free(vm *v);
/* Who a command runs as: active when it must switch to uid/gid (with the
 * supplementary groups "a,b,..."), which only matchlock-local-init does. */
typedef struct sandbox_user {
    int active;
    uid_t uid;
    gid_t gid;
    char groups[256];
} sandbox_user;
/* argv (NULL-terminated, malloc'd strings) to run cmd inside the sandbox,
 * in cwd, as su (NULL: unchanged).  With tty, *inner_tty is set when the
 * init inside the sandbox takes the terminal (the parent must not).
 * NULL with *err when the user switch cannot be done. */
char **vm_command_argv(vm *v, char **cmd, const char *cwd, const sandbox_user *su, int tty,
                       int *inner_tty, char **err);
void strv_free(char **v);
/* Set NAME=VALUE in the VM's environment (replacing an earlier NAME). */
void vm_setenv(vm *v, const char *name, const char *value);
char **strv_push(char **v, const char *s);
size_t strv_len(char **v);

/* ---- file calls (files.c) ---------------------------------------------- */
/* Resolve and open a guest path.  flags as open(2); with O_CREAT, missing
 * parent directories are created.  Returns an fd or -errno.  *host_path
 * (optional) receives a host path for messages. */
int vm_open(vm *v, const char *guest, int flags, mode_t mode);
/* Open rel inside the directory rootfd (openat2 RESOLVE_IN_ROOT: ".." and
 * symlinks cannot leave it).  An fd or -errno. */
int open_beneath(int rootfd, const char *rel, int flags, mode_t mode);
/* The canonical form of guest path in (the core's guest_path_canon: a
 * relative path taken against base), malloc'd; NULL when in is empty or
 * holds a ".." component (matchlock-local refuses those) or out of memory. */
char *guest_clean(const char *base, const char *in);
/* guest_clean against the VM's workspace, into out: 0, or -1. */
int guest_normalize(vm *v, const char *in, char **out);
void rpc_write_file(server *s, req *r, const jdoc *d, const jnode *params);
void rpc_read_file(server *s, req *r, const jdoc *d, const jnode *params);
void rpc_list_files(server *s, req *r, const jdoc *d, const jnode *params);

/* ---- imported images (image.c) ---------------------------------------- */
typedef struct image_info {
    const char *tag;             /* normalised ("name:latest") */
    int64_t created, size;       /* Unix seconds, bytes */
    const jnode *config;         /* image_config object, in doc */
    char *rootfs;                /* the image's root filesystem */
    jdoc doc;
    char *text;
} image_info;
/* "name" -> "name:latest"; malloc'd. */
char *image_normalize(const char *tag);
/* 0 with info filled when tag was imported; free with image_info_free. */
int image_find(const char *tag, image_info *info);
int image_read(const char *dir, image_info *info);
void image_info_free(image_info *info);
/* `matchlock-local image ...` (argv after "image") */
int image_main(int argc, char **argv);

/* ---- VFS rules and events (events.c) ----------------------------------- */
int vfs_parse_rules(vm *v, const jdoc *d, const jnode *interception, char **msg);
/* 0 when allowed, -1 when a block rule matches (msg says which). */
int vfs_check(vm *v, const char *op, const char *guest, char **msg);
void events_start(server *s, vm *v);
void events_stop(vm *v);
void emit_file_event(server *s, const char *op, const char *guest, int64_t size, uint32_t mode);

/* ---- port forwards (portfwd.c) ----------------------------------------- */
void rpc_port_forward(server *s, req *r, const jdoc *d, const jnode *params);
void portfwd_stop(vm *v);

/* ---- network interception proxy (proxy.c) ------------------------------ */
/* Parse the network config (secrets, rules, callback socket, private-IP
 * blocking, add_hosts) when interception is active; secrets' placeholders
 * go into the VM env.  Returns 0 or an error code with *msg. */
int proxy_configure(vm *v, const jdoc *d, const jnode *net, char **msg);
/* Listen on 127.0.0.1:0, start serving, point the env's proxy variables
 * at it.  Returns 0 or an error code with *msg. */
int proxy_start(server *s, vm *v, char **msg);
/* The VM's allow-list changed (allow_list_add/delete): apply it now. */
void proxy_set_allowed(vm *v);
/* Stop listening and end every connection (bounded wait); idempotent. */
void proxy_stop(vm *v);
/* Free what proxy_stop left (vm_free). */
void proxy_free(vm *v);

/* Check a rule's keys and their types against the contract's table
 * (proxy.c); 0, or MLK_RPC_INVALID_PARAMS with *msg. */
int rule_shape_check(const rule_table *t, const jdoc *d, const jnode *r, const char *where, char **msg);

#endif
