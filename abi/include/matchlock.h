/*
 * matchlock.h - the public C ABI of libmatchlock (SONAME libmatchlock.so.1).
 *
 * libmatchlock drives Matchlock sandboxes: it starts `matchlock rpc` as a
 * child process and speaks JSON-RPC 2.0 to it over pipes.  Every language
 * binding (Python, Lua, Node) wraps exactly this header.
 *
 * Conventions (read these once; every function below follows them)
 *
 *  - Status: functions returning `int` return 0 on success or a negative
 *    MLK_E* code.  mlk_strerror() names a code; the detailed message of a
 *    failed call is in its mlk_result (mlk_result_message()), never only in
 *    thread-local state.
 *  - Handles are opaque.  Whatever the library allocates, the library frees
 *    through the matching mlk_*_free function.
 *  - Bytes travel as pointer + length and may contain NUL.  Strings
 *    (`const char *`) are NUL-terminated UTF-8 and are copied by the
 *    library before the call returns.
 *  - Structured values (file listings, bindings, events, maps given to the
 *    builder) cross the ABI as msgpack documents.
 *  - Threads: one library-owned I/O thread serves every client.  It never
 *    runs user code.  User callbacks run either on the thread blocked in a
 *    blocking call (for that call's own stream callbacks) or on the thread
 *    that calls mlk_dispatch() (for async completions and events).  Each
 *    callback's doc says which.  Data handed to a callback is borrowed for
 *    the duration of the callback.
 *  - Blocking calls `mlk_X(..., mlk_result **out)` always set *out (when
 *    `out` is not NULL) to a result the caller frees with mlk_result_free(),
 *    also on failure, so the error message is available.
 *  - The library installs no signal handlers.  A request is written by the
 *    calling thread itself, with send(MSG_NOSIGNAL) on the child's stdin
 *    (a socket); what the socket does not take at once is written later by
 *    the I/O thread the same way.  A dead child therefore never raises
 *    SIGPIPE in any thread.  All descriptors are close-on-exec.
 *  - fork(): in the child, every call on a client inherited from the
 *    parent fails at once with MLK_ECLOSED (the message says "inherited
 *    across fork()"); nothing reaches the parent's server, and
 *    mlk_client_free() releases only the child's copies (descriptors and
 *    memory).  The child may create clients of its own.
 *  - A broken or hostile server never makes a call wait for its deadline:
 *    see "What a broken server gets" in docs/c-api.md.
 */
#ifndef MATCHLOCK_H
#define MATCHLOCK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(MLK_BUILDING) && defined(__GNUC__)
#define MLK_API __attribute__((visibility("default")))
#else
#define MLK_API
#endif

/* ------------------------------------------------------------------ */
/* Version                                                             */

#define MLK_VERSION_MAJOR 1
#define MLK_VERSION_MINOR 2
#define MLK_VERSION_PATCH 0
/** MAJOR*10000 + MINOR*100 + PATCH of the header compiled against. */
#define MLK_VERSION (MLK_VERSION_MAJOR * 10000 + MLK_VERSION_MINOR * 100 + MLK_VERSION_PATCH)

/** The runtime library's version as MAJOR*10000 + MINOR*100 + PATCH.  A
 *  binding built against header version H works with runtime R when
 *  R / 10000 == H / 10000 and R >= H. */
MLK_API int mlk_version(void);
/** The runtime version as "MAJOR.MINOR.PATCH" (static storage). */
MLK_API const char *mlk_version_str(void);

/* ------------------------------------------------------------------ */
/* Errors                                                              */

enum {
    MLK_OK = 0,
    MLK_EINVAL = -1,            /* an argument is invalid (NULL, out of range) */
    MLK_ENOMEM = -2,            /* out of memory */
    MLK_ECLOSED = -3,           /* the client is closed */
    MLK_ESPAWN = -4,            /* the matchlock child could not be started */
    MLK_EPROTO = -5,            /* the server sent something that is not the protocol */
    MLK_EDEAD = -6,             /* the server exited or closed its pipes */
    MLK_ERPC = -7,              /* the server answered with a JSON-RPC error (see rpc code) */
    MLK_ETIMEDOUT = -8,         /* the call's deadline passed (cancel was sent) */
    MLK_ECANCELED = -9,         /* the call was cancelled by the caller */
    MLK_EUSER = -10,            /* a user callback failed; bindings re-raise what they stored */
    MLK_EAGAIN = -11,           /* try again later (stdin buffer full) */
    MLK_ENOTCREATED = -12,      /* the call needs a created sandbox */
    MLK_ETOOBIG = -13,          /* a payload is over a limit */
    MLK_ECLI = -14,             /* a CLI side channel (rm, volume) failed */
    MLK_ESTATE = -15,           /* the call is not valid in this state (e.g. create twice) */
    MLK_EIMAGE_REQUIRED = -20,  /* upstream ErrImageRequired */
    MLK_EINVALID_CPU = -21,     /* upstream ErrInvalidCPUCount */
    MLK_EINVALID_MTU = -22,     /* upstream ErrInvalidNetworkMTU */
    MLK_ENO_NETWORK_CONFLICT = -23, /* upstream ErrNoNetworkConflict */
    MLK_EINVALID_ADD_HOST = -24,    /* upstream ErrInvalidAddHost */
    MLK_EPORT_FORWARD = -25,    /* upstream ErrParsePortForwards */
    MLK_EALLOW_LIST_HOSTS = -26,/* upstream ErrAllowListHosts */
    MLK_EINVALID_MOUNT = -27,   /* extra disks that cannot be attached as given */
    MLK_EINVALID_RULE = -28,    /* an interception rule has the wrong shape */
    MLK_EVFS_BLOCKED = -29,     /* a local VFS action hook blocked the call */
    MLK_ECLOSE_TIMEOUT = -30,   /* close timed out; the process was killed */
    MLK_EREMOVE = -31,          /* `matchlock rm` failed */
    MLK_EVOLUME_NAME = -32,     /* volume name is required */
    MLK_EVOLUME_SIZE = -33,     /* volume size must be > 0 */
    MLK_EINVALID_NET_HOOK = -34,/* a network hook (callback rule) is invalid */
    MLK_EINVALID_VFS_HOOK = -35,/* a VFS hook is invalid, or answered nonsense */
    MLK_EPARSE = -36,           /* a server result could not be parsed (message names it) */
    MLK_EINVALID_MOUNT_OWNER = -37, /* (1.1) a mount owner uid/gid is outside 0..4294967295 */
};

/* JSON-RPC error codes the server uses (mlk_result_rpc_code()). */
enum {
    MLK_RPC_PARSE_ERROR = -32700,
    MLK_RPC_INVALID_REQUEST = -32600,
    MLK_RPC_METHOD_NOT_FOUND = -32601,
    MLK_RPC_INVALID_PARAMS = -32602,
    MLK_RPC_INTERNAL = -32603,
    MLK_RPC_VM_FAILED = -32000,
    MLK_RPC_EXEC_FAILED = -32001,
    MLK_RPC_FILE_FAILED = -32002,
    MLK_RPC_CANCELLED = -32003,
};

/** A short static description of an MLK_E* code ("client closed", ...). */
MLK_API const char *mlk_strerror(int code);
/** The code's symbolic name ("MLK_ECLOSED"), or NULL for an unknown code. */
MLK_API const char *mlk_errname(int code);
/** The upstream SDK's error variable for a validation code
 *  ("ErrImageRequired"), or NULL when upstream has none. */
MLK_API const char *mlk_err_upstream_name(int code);
/** (1.2) The class of an error code, a stable name the bindings raise:
 *  the code's own class ("ServerDiedError" for MLK_EDEAD, "RPCError" for
 *  a JSON-RPC code -32768..-32000), "MatchlockError" for another negative
 *  code, NULL for 0 and positive codes.  Static storage; any thread. */
MLK_API const char *mlk_error_class(int code);
/** (1.2) The broader class the code belongs to ("ClosedError" for both
 *  MLK_ECLOSED and MLK_EDEAD, "ValidationError", "ProcessError",
 *  "TimeoutError", "MatchlockError" for none in particular); same rules
 *  as mlk_error_class. */
MLK_API const char *mlk_error_category(int code);
/** (1.2) What to do about an error of this code, one sentence in the same
 *  words for every language ("this client is closed; create a new
 *  Client"), or NULL when the call's message itself names the cause and
 *  the remedy.  Static storage; any thread. */
MLK_API const char *mlk_error_hint(int code);

/** Free memory the library returned with "free with mlk_free". */
MLK_API void mlk_free(void *p);

/* ------------------------------------------------------------------ */
/* Results                                                             */

/** The outcome of one call: status, error detail, and its values. */
typedef struct mlk_result mlk_result;

/** 0 or the MLK_E* code of the call. */
MLK_API int mlk_result_status(const mlk_result *r);
/** Detailed message ("" on success).  Remote errors keep the server's
 *  message; spawn and death errors carry the tail of the child's stderr. */
MLK_API const char *mlk_result_message(const mlk_result *r);
/** The server's JSON-RPC error code for MLK_ERPC/MLK_ECANCELED, else 0. */
MLK_API int mlk_result_rpc_code(const mlk_result *r);
/** Exit code of an exec (any mode); -1 when not an exec result. */
MLK_API int mlk_result_exit_code(const mlk_result *r);
/** duration_ms reported by the server for an exec; 0 otherwise. */
MLK_API int64_t mlk_result_duration_ms(const mlk_result *r);
/** Buffered exec output (empty for streamed modes).  Borrowed from r. */
MLK_API const char *mlk_result_stdout(const mlk_result *r, size_t *len);
MLK_API const char *mlk_result_stderr(const mlk_result *r, size_t *len);
/** Byte payload: read_file content, log content, the VM id of create,
 *  CLI stdout of remove/volume calls.  Borrowed from r. */
MLK_API const char *mlk_result_data(const mlk_result *r, size_t *len);
/** Structured payload as a msgpack document, or NULL with *len 0:
 *  list_files: array of {name,size,mode,mod_time,is_dir};
 *  port_forward: array of {address,local_port,remote_port};
 *  allow_list_add/delete: map {added|removed, allowed_hosts};
 *  volume_create: map {name,size,path}; volume_list: array of those.
 *  Borrowed from r. */
MLK_API const char *mlk_result_msgpack(const mlk_result *r, size_t *len);
/** Predicates on a result's server error: VM (-32000), exec (-32001),
 *  file (-32002), cancelled (-32003 or a local cancel).  0 or 1. */
MLK_API int mlk_result_is_vm_error(const mlk_result *r);
MLK_API int mlk_result_is_exec_error(const mlk_result *r);
MLK_API int mlk_result_is_file_error(const mlk_result *r);
MLK_API int mlk_result_is_cancelled(const mlk_result *r);
/** Free a result returned through an out-parameter.  NULL is a no-op.
 *  Never free a result handed to a callback (it is borrowed). */
MLK_API void mlk_result_free(mlk_result *r);

/* ------------------------------------------------------------------ */
/* Client configuration                                                */

typedef struct mlk_config mlk_config;

/** New configuration with defaults: binary "matchlock" (or $MATCHLOCK_BIN
 *  when set at mlk_client_new time and no binary was set), no sudo, no
 *  launcher.  NULL when out of memory.  Free with mlk_config_free(). */
MLK_API mlk_config *mlk_config_new(void);
MLK_API void mlk_config_free(mlk_config *cfg);
/** Path or name of the matchlock binary (searched in PATH). */
MLK_API int mlk_config_set_binary(mlk_config *cfg, const char *path);
/** Non-zero: run the child as `sudo <binary> rpc`. */
MLK_API int mlk_config_set_sudo(mlk_config *cfg, int use_sudo);
/** A launcher prefix put in front of the command, e.g. {"ssh","host"} or
 *  {"kubectl","exec","-i","pod","--"}.  n == 0 clears it.  The `rm` and
 *  `volume` commands go through it too.  What the launcher prints on
 *  stderr lands in the stderr tail (mlk_client_stderr_tail), and when it
 *  dies every pending call fails with MLK_EDEAD and that tail.  With a
 *  launcher set, network hook callbacks fail create with
 *  MLK_EINVALID_NET_HOOK before anything is sent: the server connects to
 *  the hook socket on its own machine (docs/remote.md). */
MLK_API int mlk_config_set_launcher(mlk_config *cfg, const char *const *argv, size_t n);
/** (Since 1.2, symbol version MLK_1.2.)  Non-zero: the launcher runs the
 *  words after it through a shell, as ssh does (it joins its arguments with
 *  spaces and hands the line to the remote user's shell).  Every word after
 *  the launcher (sudo, the binary, the command's arguments and operands) is
 *  then put in POSIX single quotes ('it'\''s'), so each arrives as the one
 *  word it was.  Leave it off (the default) for launchers that pass their
 *  arguments on as they are (kubectl exec, env, nice): the quotes would
 *  reach the program.  No effect without a launcher.  Volume names and VM
 *  ids are checked against [A-Za-z0-9][A-Za-z0-9._-]* (at most 128
 *  characters) either way, and follow `--`.  docs/remote.md. */
MLK_API int mlk_config_set_launcher_shell(mlk_config *cfg, int through_shell);
/** Add NAME=VALUE to the child's environment (on top of the inherited one). */
MLK_API int mlk_config_set_env(mlk_config *cfg, const char *name, const char *value);
/** Deadline of the CLI side channels (remove, volumes) in milliseconds;
 *  a command still running then is killed and the call fails with
 *  MLK_ETIMEDOUT.  0 (the default) waits as long as it takes. */
MLK_API int mlk_config_set_cli_timeout_ms(mlk_config *cfg, int64_t ms);
/** The largest file a read_file answer carries under the default line
 *  limit: 256 MiB.  Reading a bigger file needs a larger limit
 *  (mlk_config_set_max_line), or a streamed exec of `cat`. */
#define MLK_LARGEST_READ (256ull << 20)
/** The default line limit: the line of a read_file answer for a file of
 *  MLK_LARGEST_READ bytes (its base64, 4 bytes per 3) plus 64 KiB for the
 *  envelope: 341.4 MiB.  Every legitimate answer but a bigger read fits. */
#define MLK_DEFAULT_MAX_LINE ((MLK_LARGEST_READ + 2) / 3 * 4 + (64ull << 10))
/** Largest line accepted from the server (default MLK_DEFAULT_MAX_LINE).
 *  A longer line is discarded as it arrives (it is never held whole) and
 *  is a protocol error (MLK_EPROTO, "... longer than the line limit ...")
 *  for the one call it answers or streams to, found by the id in its first
 *  or last 256 bytes; other calls and the session go on.  A longer line
 *  that names no pending call fails the session with MLK_EPROTO. */
MLK_API int mlk_config_set_max_line(mlk_config *cfg, uint64_t bytes);

/* ------------------------------------------------------------------ */
/* Sandbox builder                                                     */

/** Everything `create` sends.  Setters copy their arguments.  Validation
 *  happens in mlk_sandbox_params_json() and mlk_create(), before anything
 *  is sent; each failure has its own MLK_E* code and a message that begins
 *  with the upstream SDK's error text ("image is required (e.g.,
 *  alpine:latest)", "network mtu must be > 0", ...).  What is checked is
 *  the upstream SDK's list (image, CPUs, MTU, no-network conflicts,
 *  add-hosts, hook rules, port-forward specs) plus mount owner ranges;
 *  workspace and mount paths, interception without mounts, static rule
 *  phases and actions and negative sizes are sent as given and judged by
 *  the server, as upstream.  A failed setter's message is reported again,
 *  verbatim, by validation. */
typedef struct mlk_sandbox mlk_sandbox;

/** A new builder for `image` (copied; may be "" to be caught by validation).
 *  NULL when out of memory.  Free with mlk_sandbox_free(); a client does
 *  not keep the builder after create returns. */
MLK_API mlk_sandbox *mlk_sandbox_new(const char *image);
MLK_API void mlk_sandbox_free(mlk_sandbox *sb);
/** CPUs (fractional); 0 means the default 1.  Create checks that
 *  ceil(cpus) is at most the host's CPU count: this machine's, or
 *  $MATCHLOCK_HOST_CPUS when set (for a sandbox on another machine through
 *  a launcher, and for tests of the shared vectors on small machines). */
MLK_API int mlk_sandbox_set_cpus(mlk_sandbox *sb, double cpus);
/** Memory in MiB; 0 means the default 512. */
MLK_API int mlk_sandbox_set_memory_mb(mlk_sandbox *sb, int64_t mb);
/** Disk in MiB; 0 means the default 5120. */
MLK_API int mlk_sandbox_set_disk_size_mb(mlk_sandbox *sb, int64_t mb);
/** Timeout in seconds; 0 means the default 300. */
MLK_API int mlk_sandbox_set_timeout_s(mlk_sandbox *sb, int64_t seconds);
/** Run the sandbox privileged (sent only when set). */
MLK_API int mlk_sandbox_set_privileged(mlk_sandbox *sb, int on);
/** Guest workspace path (the server requires an absolute path of
 *  [A-Za-z0-9/_.-] containing the mounts). */
MLK_API int mlk_sandbox_set_workspace(mlk_sandbox *sb, const char *guest_path);
/** Mounts under the workspace: a host directory (read-write or read-only),
 *  a memory filesystem, or an overlay (copy-on-write over a host dir). */
MLK_API int mlk_sandbox_mount_host_dir(mlk_sandbox *sb, const char *guest_path, const char *host_path);
MLK_API int mlk_sandbox_mount_host_dir_readonly(mlk_sandbox *sb, const char *guest_path, const char *host_path);
MLK_API int mlk_sandbox_mount_memory(mlk_sandbox *sb, const char *guest_path);
MLK_API int mlk_sandbox_mount_overlay(mlk_sandbox *sb, const char *guest_path, const char *host_path);

/** Bits of mlk_sandbox_set_mount_owner()'s `which`. */
enum {
    MLK_MOUNT_OWNER_UID = 1,
    MLK_MOUNT_OWNER_GID = 2,
};
/** (Since 1.1, symbol version MLK_1.1.)  Owner overrides of the mount at
 *  guest_path, which must have been added before (any mount type; the
 *  server applies them to host_fs mounts and judges the rest): every file of
 *  the mount is reported as owned by `uid` / `gid`.  `which` says which of
 *  the two are set (MLK_MOUNT_OWNER_UID, MLK_MOUNT_OWNER_GID, both, or 0 to
 *  clear); each is sent as "owner_uid" / "owner_gid" only when set.  A set
 *  value outside 0..4294967295 fails with MLK_EINVALID_MOUNT_OWNER and the
 *  official Python SDK's message ("owner_uid must be in [0, 4294967295],
 *  got -1"); like every setter failure it is reported again at create, so
 *  nothing is sent.  Adding a mount again at the same guest path clears its
 *  owner overrides.  No mount at guest_path is MLK_EINVAL. */
MLK_API int mlk_sandbox_set_mount_owner(mlk_sandbox *sb, const char *guest_path, int which, int64_t uid,
                                        int64_t gid);
/** Set one environment variable (a later call for the same name wins). */
MLK_API int mlk_sandbox_set_env(mlk_sandbox *sb, const char *name, const char *value);
/** Merge a msgpack map of string to string into the environment. */
MLK_API int mlk_sandbox_set_env_map(mlk_sandbox *sb, const char *msgpack, size_t len);
/** Add one host (glob) to the network allow-list. */
MLK_API int mlk_sandbox_allow_host(mlk_sandbox *sb, const char *host);
/** Add a static /etc/hosts entry. */
MLK_API int mlk_sandbox_add_host(mlk_sandbox *sb, const char *host, const char *ip);
/** A secret NAME whose placeholder the host replaces by VALUE in requests
 *  to the given hosts.  placeholder NULL lets the server choose. */
MLK_API int mlk_sandbox_add_secret(mlk_sandbox *sb, const char *name, const char *value,
                                   const char *placeholder, const char *const *hosts, size_t nhosts);
/** on != 0: block private IPs (the default); 0: allow them. */
MLK_API int mlk_sandbox_set_block_private_ips(mlk_sandbox *sb, int on);
/** Forget an explicit private-IP choice (back to the default). */
MLK_API int mlk_sandbox_unset_block_private_ips(mlk_sandbox *sb);
/** Replace the DNS servers. */
MLK_API int mlk_sandbox_set_dns_servers(mlk_sandbox *sb, const char *const *servers, size_t n);
/** Hostname (server default: the VM id), MTU (server default 1500; a
 *  negative value is MLK_EINVALID_MTU at create), and no network at all
 *  (which excludes allowed hosts, secrets and interception). */
MLK_API int mlk_sandbox_set_hostname(mlk_sandbox *sb, const char *hostname);
MLK_API int mlk_sandbox_set_network_mtu(mlk_sandbox *sb, int64_t mtu);
MLK_API int mlk_sandbox_set_no_network(mlk_sandbox *sb, int on);
/** Force network interception; `msgpack` (may be NULL) is a map
 *  {"rules":[RULE...]} in the wire shape of PROTOCOL section 5. */
MLK_API int mlk_sandbox_set_network_interception(mlk_sandbox *sb, const char *msgpack, size_t len);
/** VFS interception: a msgpack map {"emit_events":B,"rules":[...]}. */
MLK_API int mlk_sandbox_set_vfs_interception(mlk_sandbox *sb, const char *msgpack, size_t len);
/** A port forward `[LOCAL:]REMOTE` applied right after create. */
MLK_API int mlk_sandbox_add_port_forward(mlk_sandbox *sb, const char *spec);
/** Bind addresses for the builder's port forwards (default 127.0.0.1). */
MLK_API int mlk_sandbox_set_port_forward_addresses(mlk_sandbox *sb, const char *const *addrs, size_t n);
/** image_config.user */
MLK_API int mlk_sandbox_set_user(mlk_sandbox *sb, const char *user);
/** image_config.entrypoint */
MLK_API int mlk_sandbox_set_entrypoint(mlk_sandbox *sb, const char *const *argv, size_t n);
/** Merge an image config msgpack map {user,working_dir,entrypoint,cmd,env}:
 *  non-empty fields replace, empty ones keep what is set. */
MLK_API int mlk_sandbox_set_image_config(mlk_sandbox *sb, const char *msgpack, size_t len);
/** Guest kernel reference: empty, file:///absolute/path or an OCI ref;
 *  sent, when set, as "kernel": {"ref": REF} (as the official Python SDK
 *  0.2.17 sends it). */
MLK_API int mlk_sandbox_set_kernel(mlk_sandbox *sb, const char *ref);
/** Attach an ext4 image (for example a volume's path) at guest_mount. */
MLK_API int mlk_sandbox_add_extra_disk(mlk_sandbox *sb, const char *host_path, const char *guest_mount, int readonly);
/** Validate and render the `create` params as JSON (launch != 0 adds
 *  launch_entrypoint).  *json is NUL-terminated; free with mlk_free().  It
 *  holds the secrets' values: wipe it before freeing it.  Since 1.2 `json`
 *  may be NULL: validate only (the rendering is wiped inside the core, so
 *  checking a builder copies no secret out).  Returns the validation error
 *  code on failure; when `msg` is not NULL it receives a message to free
 *  with mlk_free() (a message never contains a secret's value). */
MLK_API int mlk_sandbox_params_json(const mlk_sandbox *sb, int launch, char **json, size_t *len, char **msg);
/** The builder's first failed setter (1.2): its MLK_E* code, 0 when every
 *  setter so far succeeded.  When `msg` is not NULL it receives that
 *  setter's message (NULL when the code is 0), borrowed from the builder:
 *  valid until the builder is freed (the first failure is kept, later
 *  setters do not change it).  Renders nothing, so the create params (and
 *  their secret values) are never copied to read why a setter failed; a
 *  message never contains a secret's value.  Same threading as the setters
 *  (not concurrently with a setter on the same builder). */
MLK_API int mlk_sandbox_error(const mlk_sandbox *sb, const char **msg);
/** Whether len bytes at s can be passed as a `const char *` argument (1.2):
 *  0 when they hold no NUL byte; else MLK_EINVAL and, when `msg` is not
 *  NULL, a message to free with mlk_free() that names `what` (the
 *  argument, e.g. "secret value"; may be NULL), the NUL's offset and the
 *  length, and never the bytes themselves (they may be a secret).  For
 *  bindings whose strings may hold NUL: a C string would be cut short at
 *  it.  s may be NULL when len is 0.  Any thread. */
MLK_API int mlk_check_cstring(const char *what, const char *s, size_t len, char **msg);

/* ------------------------------------------------------------------ */
/* Client                                                              */

typedef struct mlk_client mlk_client;

/* ------------------------------------------------------------------ */
/* Hooks                                                               */

/** Hook kinds. */
enum {
    MLK_HOOK_NETWORK = 1,        /* network callback rule: answer with a network reply */
    MLK_HOOK_VFS_AFTER = 2,      /* after-hook on file events; no answer; recursion-suppressed */
    MLK_HOOK_VFS_DANGEROUS = 3,  /* after-hook without suppression (may call the client) */
    MLK_HOOK_VFS_ACTION = 4,     /* before write/read/list_files: answer allow or block */
    MLK_HOOK_VFS_MUTATE = 5,     /* before write_file: answer the new bytes */
};

/** A pending hook invocation that must be answered exactly once. */
typedef struct mlk_hook_call mlk_hook_call;

/** A hook.  `request` is a msgpack map:
 *   network: the server's callback request {callback_id, phase, host,
 *            method, path, query, request_headers, status_code?,
 *            response_headers?, is_sse?};
 *   VFS after/dangerous: the event's `file` map {op, path, size, mode?, uid?, gid?};
 *   VFS action: {op, path, size, mode, uid, gid};
 *   VFS mutate: {op:"write", path, size, mode, uid, gid, data: bin}.
 * `call` is NULL for after-hooks; otherwise answer it with mlk_hook_reply()
 * or mlk_hook_fail(), now or later, from any thread.  `c` is the client;
 * every hook may call it (a blocking call made here still completes).
 * Thread: the thread calling mlk_dispatch(); action and mutate hooks of a
 * blocking file call run on the thread blocked in that call. */
typedef void (*mlk_hook_cb)(void *ud, mlk_client *c, int kind, mlk_hook_call *call,
                            const char *request, size_t len);

/** Add a network callback rule.  `rule` is a msgpack map in the wire shape
 *  of an interception rule (name, phase, hosts, methods, path, timeout_ms,
 *  and optionally the static mutations set_headers ... body_replacements;
 *  action empty or "allow").  The core serves the callback socket, checks
 *  the peer's credentials and enforces timeout_ms (default 5 s, as the server's own). */
MLK_API int mlk_sandbox_add_network_hook(mlk_sandbox *sb, const char *rule, size_t len,
                                         mlk_hook_cb cb, void *ud);
/** Add a VFS hook of kind MLK_HOOK_VFS_*.  `rule` is a msgpack map
 *  {name, phase, ops:[...], path: glob}; after-hooks need phase "after",
 *  action and mutate hooks phase "before" (or empty). */
MLK_API int mlk_sandbox_add_vfs_hook(mlk_sandbox *sb, int kind, const char *rule, size_t len,
                                     mlk_hook_cb cb, void *ud);
/** Remove the builder's hooks of one kind (MLK_HOOK_*), or all with 0
 *  (for bindings whose "set interception config" replaces earlier hooks). */
MLK_API int mlk_sandbox_clear_hooks(mlk_sandbox *sb, int kind);

/** What mlk_sandbox_set_interception and mlk_rule_key are about (1.2). */
enum {
    MLK_INTERCEPT_NETWORK = 1,   /* network interception rules */
    MLK_INTERCEPT_VFS = 2,       /* VFS interception rules */
};

/** Where a rule key may appear (mlk_rule_key's flags, 1.2). */
enum {
    MLK_RULE_KEY_WIRE = 1,       /* in a static rule, sent as it is */
    MLK_RULE_KEY_HOOK = 2,       /* in a callback rule (mlk_sandbox_add_*_hook) */
    MLK_RULE_KEY_CALLBACK = 4,   /* names the callback of a callback rule (never sent) */
    MLK_RULE_KEY_LIST = 8,       /* its value is an array (an empty one is still an array) */
};

/** The other maps the builder takes, whose keys mlk_rule_key and
 *  mlk_rule_key_info also list (`which`, 1.2): a whole interception config
 *  of mlk_sandbox_set_interception (network {rules}; VFS {emit_events,
 *  rules}) and mlk_sandbox_set_image_config's map. */
enum {
    MLK_KEYS_NETWORK_CONFIG = 3,
    MLK_KEYS_VFS_CONFIG = 4,
    MLK_KEYS_IMAGE_CONFIG = 5,
};

/** Set a whole interception config, static rules and callback rules
 *  together, as the official SDKs take it (since 1.2).  `which` is
 *  MLK_INTERCEPT_NETWORK (`msgpack` a map {"rules":[RULE...]}) or
 *  MLK_INTERCEPT_VFS ({"emit_events":B,"rules":[RULE...]}).  A rule that
 *  holds a callback key (network: "hook"; VFS: "hook", "dangerous_hook",
 *  "action_hook", "mutate_hook"; see mlk_rule_key) set to true is a
 *  callback rule: the n-th callback rule (in rule order) gets uds[n], and
 *  the core registers cb with that ud as mlk_sandbox_add_network_hook /
 *  mlk_sandbox_add_vfs_hook would, of the kind the key names (false or nil:
 *  no callback; any other value is an error).  Every other rule is static and sent as it is.
 *  The core checks everything first (the rule shapes, one callback per
 *  rule, a callback rule's action and phase, mutate_write only with a
 *  mutate_hook) and changes nothing on failure: MLK_EINVAL for a shape,
 *  MLK_EINVALID_NET_HOOK / MLK_EINVALID_VFS_HOOK for a hook rule, with the
 *  message kept for mlk_sandbox_error.  On success the config replaces the
 *  earlier static rules and hooks of its kind (network: MLK_HOOK_NETWORK;
 *  VFS: the four MLK_HOOK_VFS_* kinds); uds beyond the callback rules are
 *  not kept.  NULL or len 0: as mlk_sandbox_set_network_interception(sb, NULL,
 *  0) (force interception) or mlk_sandbox_set_vfs_interception(sb, NULL, 0)
 *  (clear the static config); hooks stay.  Ownership: the core keeps each
 *  named ud until the hook is cleared or the builder and the clients made
 *  from it are freed, as for the add functions.  Thread: the builder's. */
MLK_API int mlk_sandbox_set_interception(mlk_sandbox *sb, int which, const char *msgpack, size_t len,
                                         mlk_hook_cb cb, void *const *uds, size_t nuds);
/** The i-th VFS op name ("stat", "readdir", ... 16 in all), NULL past the
 *  end (since 1.2).  A static string; any thread. */
MLK_API const char *mlk_vfs_op_name(size_t i);
/** The i-th key of an interception rule (`which`: MLK_INTERCEPT_NETWORK or
 *  _VFS) or of another map the builder takes (MLK_KEYS_*), in wire order,
 *  NULL past the end (and for an unknown `which`); *flags (may be NULL)
 *  gets its MLK_RULE_KEY_* bits (since 1.2).  A static string; any thread. */
MLK_API const char *mlk_rule_key(int which, size_t i, unsigned *flags);
/** As mlk_rule_key, and *hook_kind (may be NULL) gets the MLK_HOOK_* kind
 *  a MLK_RULE_KEY_CALLBACK key names (VFS "hook": MLK_HOOK_VFS_AFTER,
 *  "dangerous_hook": _DANGEROUS, ...), 0 for any other key (since 1.2).
 *  For bindings that take a rule's callback under its key, and that must
 *  tell an empty list from an empty map (MLK_RULE_KEY_LIST).  Any thread. */
MLK_API const char *mlk_rule_key_info(int which, size_t i, unsigned *flags, int *hook_kind);
/** Answer a hook call with a msgpack value, then the call is freed:
 *   network: {action?, request?:{headers?,query?,path?}, response?:{headers?,
 *            body_replacements?, set_body_base64?}} (set_body_base64 given as
 *            bin is encoded by the core; as str it is sent as is);
 *   VFS action: "allow" | "block" (or {action: ...});
 *   VFS mutate: the new bytes as bin or str (or {data: ...}); nil keeps
 *            the bytes as they are.
 *  The answer is checked first, as by mlk_hook_answer_check() (since 1.2):
 *  an invalid one fails the call and its MLK_EINVALID_*_HOOK code is
 *  returned.  Answering after the hook's deadline is safe (the answer is
 *  dropped). */
MLK_API int mlk_hook_reply(mlk_hook_call *call, const char *reply, size_t len);
/** Answer that the hook failed (e.g. the host function raised): network
 *  hooks send an error reply (traffic proceeds); action and mutate hooks
 *  fail their file call with MLK_EUSER and this message.  Frees the call. */
MLK_API int mlk_hook_fail(mlk_hook_call *call, const char *message);
/** Check a hook's answer against the contract without answering (since
 *  1.2): the same check mlk_hook_reply() makes, for bindings that report a
 *  bad answer in their own language.  `kind` is the hook's MLK_HOOK_*.  A
 *  network answer is nil or a map of: action ("allow", "block" or
 *  "mutate"; case and blanks ignored), request {headers, query, path},
 *  response {headers, body_replacements [{find, replace?}], set_body (bytes,
 *  encoded by the core) or set_body_base64 (a base64 string)}; headers map a
 *  name to a string or a list of strings, query a name to a string; nil
 *  means "no change", as does an empty string.  Any other key is an error.
 *  An action answer is nil, "allow" or "block" (or {action: ...}); a mutate
 *  answer is nil or bytes (or {data: ...}).  Returns 0, or
 *  MLK_EINVALID_NET_HOOK / MLK_EINVALID_VFS_HOOK with the message (which
 *  names the key and what it expected) in *msg when `msg` is not NULL
 *  (free with mlk_free; NULL when the answer is valid).  Any thread.
 *
 *  mlk_hook_reply() makes this check too: an invalid answer fails the call
 *  as mlk_hook_fail() would (network: an error reply, the traffic
 *  proceeds; action and mutate: the file call fails with this code and
 *  message) and mlk_hook_reply() returns the code. */
MLK_API int mlk_hook_answer_check(int kind, const char *msgpack, size_t len, char **msg);

/** Start `<launcher...> [sudo] <binary> rpc` and return a client.  cfg may
 *  be NULL (defaults) and is copied.  On failure *out is NULL and, when
 *  `res` is not NULL, *res holds the message (with the child's stderr). */
MLK_API int mlk_client_new(mlk_client **out, const mlk_config *cfg, mlk_result **res);
/** Close (with a zero timeout) if still open, then free.  Called from one
 *  of the client's own callbacks, the free happens when it returns. */
MLK_API void mlk_client_free(mlk_client *c);
/** The created VM's id, or NULL before create.  Valid until free. */
MLK_API const char *mlk_client_vm_id(const mlk_client *c);
/** The last few KiB of the child's stderr (free with mlk_free). */
MLK_API char *mlk_client_stderr_tail(const mlk_client *c);

/** A pollable descriptor that becomes readable when callbacks are waiting
 *  for mlk_dispatch().  Non-blocking; never read it yourself. */
MLK_API int mlk_client_fd(const mlk_client *c);
/** Run up to `max` waiting callbacks (0: all queued when the call starts;
 *  what arrives meanwhile waits for the next call) on the calling thread.
 *  Returns how many ran, or a negative code. */
MLK_API int mlk_dispatch(mlk_client *c, int max);
/** Wait for callbacks and run them (since 1.1): waits until callbacks are
 *  waiting for mlk_dispatch() or `timeout_ms` passes (-1: no limit; 0:
 *  only the spin, never sleep), spinning up to 50 us before it sleeps (an answer usually
 *  comes that fast), then runs what is queued, as mlk_dispatch(c, 0), on
 *  the calling thread.  A signal delivered to the thread ends the wait
 *  early.  Returns how many callbacks ran (0 on timeout), or a negative
 *  code.  This lets the thread that waits for a call run its completion
 *  itself, with no other thread involved; as with mlk_dispatch(), only one
 *  thread at a time may dispatch a client. */
MLK_API int mlk_dispatch_wait(mlk_client *c, int timeout_ms);

/** Called with each `event` notification (msgpack map of the event's
 *  params), on the thread calling mlk_dispatch().  NULL removes it.
 *  Events are lossy (the server drops them when busy).  At most 4096
 *  events and 1024 VFS after-hook calls wait for mlk_dispatch(); what
 *  comes beyond is dropped and counted in one event of the client's own,
 *  {"type":"dropped","events":N,"after_hooks":M,"message":S}, delivered
 *  here in the place of the dropped ones (docs/c-api.md, "Bounds"). */
typedef void (*mlk_event_cb)(void *ud, const char *msgpack, size_t len);
MLK_API int mlk_client_set_event_cb(mlk_client *c, mlk_event_cb cb, void *ud);

/** Completion of an async call, on the thread calling mlk_dispatch().
 *  `res` is borrowed; it runs exactly once per successful *_async call. */
typedef void (*mlk_done_cb)(void *ud, uint64_t op, const mlk_result *res);
/** Output of a streamed exec or followed log. fd is 1 (stdout) or 2. */
typedef void (*mlk_output_cb)(void *ud, uint64_t op, int fd, const char *data, size_t len);
/** A pipe or TTY exec is ready for stdin. */
typedef void (*mlk_ready_cb)(void *ud, uint64_t op);

/* Lifecycle ---------------------------------------------------------- */

/** Validate the builder and create the sandbox (then apply its port
 *  forwards).  The VM id is in mlk_result_data() and mlk_client_vm_id(). */
MLK_API int mlk_create(mlk_client *c, const mlk_sandbox *sb, int64_t timeout_ms, mlk_result **out);
/** As mlk_create, and start the image's entrypoint (launch_entrypoint). */
MLK_API int mlk_launch(mlk_client *c, const mlk_sandbox *sb, int64_t timeout_ms, mlk_result **out);
/** Async create/launch: `done` gets the result from mlk_dispatch().
 *  Validation failures also arrive through `done`, with their message. */
MLK_API int mlk_create_async(mlk_client *c, const mlk_sandbox *sb, int64_t timeout_ms,
                             mlk_done_cb done, void *ud, uint64_t *op);
MLK_API int mlk_launch_async(mlk_client *c, const mlk_sandbox *sb, int64_t timeout_ms,
                             mlk_done_cb done, void *ud, uint64_t *op);
/** Close as upstream does: `close` RPC with the timeout, close the child's
 *  stdin, wait for it, kill it when the timeout passes (MLK_ECLOSE_TIMEOUT).
 *  timeout_s 0 means the official SDKs' grace period: 2 s are sent and
 *  the whole close gets timeout_s + 1 s.  Idempotent; later calls
 *  return 0.  The hook socket is removed. */
MLK_API int mlk_close(mlk_client *c, double timeout_s, mlk_result **out);
/** Async close; the child is awaited on the I/O thread, never blocking it. */
MLK_API int mlk_close_async(mlk_client *c, double timeout_s, mlk_done_cb done, void *ud, uint64_t *op);
/** Run `<binary> rm -- <vm-id>` (after close).  MLK_EREMOVE when it fails. */
MLK_API int mlk_remove(mlk_client *c, mlk_result **out);
/** Async remove: the command runs on a short-lived thread of its own. */
MLK_API int mlk_remove_async(mlk_client *c, mlk_done_cb done, void *ud, uint64_t *op);
/** Run `<binary> rm -- <vm_id>` with a configuration, no client needed (since
 *  1.1): through `cfg`'s binary, sudo and launcher (NULL: the defaults), as
 *  mlk_volume_remove.  For removing a VM after its client was freed: keep
 *  mlk_client_vm_id() (copied) and the config, free the client once closed
 *  (every descriptor goes), remove later.  Blocks the calling thread for the
 *  command (bounded by mlk_config_set_cli_timeout_ms); any thread.
 *  MLK_EREMOVE when the command fails (its stderr in the message);
 *  MLK_EINVAL when vm_id is NULL, empty or outside the operand rule
 *  ([A-Za-z0-9][A-Za-z0-9._-]*, at most 128 characters), before anything
 *  runs.  A command whose exit status cannot be known (SIGCHLD ignored by
 *  the process, or reaped by someone else) is MLK_EREMOVE saying so, never
 *  a success; the same holds for every CLI call.  `cfg` and `vm_id` are only read
 *  during the call; *out (may be NULL) is the caller's to mlk_result_free. */
MLK_API int mlk_remove_vm(const mlk_config *cfg, const char *vm_id, mlk_result **out);

/* Exec ----------------------------------------------------------------- */

enum { MLK_EXEC_BUFFERED = 0, MLK_EXEC_STREAM = 1, MLK_EXEC_PIPE = 2, MLK_EXEC_TTY = 3 };

/** Options of one exec.  Setters copy. */
typedef struct mlk_exec_opts mlk_exec_opts;
/** New exec options (buffered, no deadline, 24x80); NULL when out of
 *  memory.  The options are copied by each call that takes them. */
MLK_API mlk_exec_opts *mlk_exec_opts_new(void);
MLK_API void mlk_exec_opts_free(mlk_exec_opts *o);
/** MLK_EXEC_* (default buffered). */
MLK_API int mlk_exec_opts_set_mode(mlk_exec_opts *o, int mode);
/** Working directory and user (name, uid or uid:gid) in the sandbox. */
MLK_API int mlk_exec_opts_set_working_dir(mlk_exec_opts *o, const char *dir);
MLK_API int mlk_exec_opts_set_user(mlk_exec_opts *o, const char *user);
/** Deadline in milliseconds from the call; 0: none. */
MLK_API int mlk_exec_opts_set_timeout_ms(mlk_exec_opts *o, int64_t ms);
/** TTY size (default 24x80). */
MLK_API int mlk_exec_opts_set_tty_size(mlk_exec_opts *o, uint16_t rows, uint16_t cols);
/** Pipe/TTY: bytes written to stdin after ready, followed by EOF.  Without
 *  it (and without close_stdin=0) EOF follows ready at once. */
MLK_API int mlk_exec_opts_set_stdin(mlk_exec_opts *o, const char *data, size_t len);
/** Pipe/TTY: keep stdin open after ready; the caller writes with
 *  mlk_stdin_write() and ends with mlk_stdin_close(). */
MLK_API int mlk_exec_opts_set_interactive_stdin(mlk_exec_opts *o, int on);
/** Stream/pipe/TTY output and the ready signal.  For a blocking mlk_exec
 *  these run on the calling thread while it waits; for mlk_exec_async on
 *  the thread calling mlk_dispatch(). */
MLK_API int mlk_exec_opts_set_callbacks(mlk_exec_opts *o, mlk_output_cb on_output,
                                        mlk_ready_cb on_ready, void *ud);

/** Run a shell command line in the sandbox and wait.  opts may be NULL. */
MLK_API int mlk_exec(mlk_client *c, const char *command, const mlk_exec_opts *opts, mlk_result **out);
/** Start an exec; `done` runs once from mlk_dispatch().  *op receives the
 *  call's id for mlk_cancel, mlk_stdin_write, ... */
MLK_API int mlk_exec_async(mlk_client *c, const char *command, const mlk_exec_opts *opts,
                           mlk_done_cb done, void *ud, uint64_t *op);

/** Queue stdin bytes for a pipe/TTY exec (held until ready, in order).
 *  MLK_EAGAIN when too much stdin is already buffered: dispatch and retry. */
MLK_API int mlk_stdin_write(mlk_client *c, uint64_t op, const char *data, size_t len);
/** Send stdin EOF for a pipe/TTY exec. */
MLK_API int mlk_stdin_close(mlk_client *c, uint64_t op);
/** Resize a TTY exec. */
MLK_API int mlk_tty_resize(mlk_client *c, uint64_t op, uint16_t rows, uint16_t cols);
/** Cancel an in-flight call: sends `cancel` and completes the call at once
 *  with MLK_ECANCELED.  Cancelling a finished call is a no-op (returns 0). */
MLK_API int mlk_cancel(mlk_client *c, uint64_t op);

/* Files and logs ------------------------------------------------------- */
/* Every file call's path is made canonical before anything else (VFS hooks
 * judge it, the server receives it): a relative path is taken against the
 * sandbox's workspace ("/workspace" when none was set), "//" and "." are
 * dropped, ".." is resolved lexically and never above "/"
 * (docs/hooks.md). */

/** Write a file (mode 0 means 0644).  Payloads too big for one request
 *  line are streamed through an exec pipe into `cat`. */
MLK_API int mlk_write_file(mlk_client *c, const char *path, const char *data, size_t len,
                           uint32_t mode, int64_t timeout_ms, mlk_result **out);
/** Async form: data is copied before the call returns; `done` gets the
 *  result from mlk_dispatch().  The same holds for every *_async below. */
MLK_API int mlk_write_file_async(mlk_client *c, const char *path, const char *data, size_t len,
                                 uint32_t mode, int64_t timeout_ms, mlk_done_cb done, void *ud, uint64_t *op);
/** Read a file; bytes in mlk_result_data(). */
MLK_API int mlk_read_file(mlk_client *c, const char *path, int64_t timeout_ms, mlk_result **out);
MLK_API int mlk_read_file_async(mlk_client *c, const char *path, int64_t timeout_ms,
                                mlk_done_cb done, void *ud, uint64_t *op);
/** List a directory; entries in mlk_result_msgpack(). */
MLK_API int mlk_list_files(mlk_client *c, const char *path, int64_t timeout_ms, mlk_result **out);
MLK_API int mlk_list_files_async(mlk_client *c, const char *path, int64_t timeout_ms,
                                 mlk_done_cb done, void *ud, uint64_t *op);
/** The VM log so far, in mlk_result_data(). */
MLK_API int mlk_log(mlk_client *c, int64_t timeout_ms, mlk_result **out);
/** Async form of mlk_log. */
MLK_API int mlk_log_async(mlk_client *c, int64_t timeout_ms, mlk_done_cb done, void *ud, uint64_t *op);
/** Follow the log: on_output(fd 1) with the existing log, then appended
 *  data, until mlk_cancel(op) (done gets MLK_ECANCELED) or the VM ends. */
MLK_API int mlk_log_follow_async(mlk_client *c, mlk_output_cb on_output, mlk_done_cb done,
                                 void *ud, uint64_t *op);

/* Network ------------------------------------------------------------- */

/** Add hosts to the allow-list at run time.  Items are split on commas,
 *  trimmed and de-duplicated; nothing left is MLK_EALLOW_LIST_HOSTS. */
MLK_API int mlk_allow_list_add(mlk_client *c, const char *const *hosts, size_t n,
                               int64_t timeout_ms, mlk_result **out);
MLK_API int mlk_allow_list_delete(mlk_client *c, const char *const *hosts, size_t n,
                                  int64_t timeout_ms, mlk_result **out);
/** Async allow-list updates; normalisation failures arrive through `done`. */
MLK_API int mlk_allow_list_add_async(mlk_client *c, const char *const *hosts, size_t n, int64_t timeout_ms,
                                     mlk_done_cb done, void *ud, uint64_t *op);
MLK_API int mlk_allow_list_delete_async(mlk_client *c, const char *const *hosts, size_t n, int64_t timeout_ms,
                                        mlk_done_cb done, void *ud, uint64_t *op);
/** Normalise allow-list input as above into a msgpack array of strings
 *  (free with mlk_free); used by the calls above, exported for tests. */
MLK_API int mlk_allow_list_normalize(const char *const *hosts, size_t n, char **msgpack, size_t *len);
/** Forward `[LOCAL:]REMOTE` specs on the given bind addresses (NULL/0:
 *  127.0.0.1).  Replaces earlier forwards. */
MLK_API int mlk_port_forward(mlk_client *c, const char *const *specs, size_t n,
                             const char *const *addrs, size_t naddrs, int64_t timeout_ms, mlk_result **out);
/** Async port forward; spec errors arrive through `done`. */
MLK_API int mlk_port_forward_async(mlk_client *c, const char *const *specs, size_t n,
                                   const char *const *addrs, size_t naddrs, int64_t timeout_ms,
                                   mlk_done_cb done, void *ud, uint64_t *op);
/** Parse port-forward specs into the wire `forwards` array as JSON (free
 *  with mlk_free); used by the call above, exported for tests. */
MLK_API int mlk_port_forward_parse(const char *const *specs, size_t n, char **json, size_t *len);

/* Volumes (CLI side channel; no client needed) ------------------------- */

/* A volume name must match [A-Za-z0-9][A-Za-z0-9._-]*, at most 128
 * characters (upstream's rule, bounded): anything else is MLK_EINVAL with a
 * message naming the rule, before anything runs (an empty name stays
 * MLK_EVOLUME_NAME).  The async forms deliver that failure through `done`. */

/** `<binary> volume create --size MB --json -- NAME`; msgpack map result. */
MLK_API int mlk_volume_create(const mlk_config *cfg, const char *name, int64_t size_mb, mlk_result **out);
/** `<binary> volume ls --json`; msgpack array result. */
MLK_API int mlk_volume_list(const mlk_config *cfg, mlk_result **out);
/** `<binary> volume rm -- NAME`. */
MLK_API int mlk_volume_remove(const mlk_config *cfg, const char *name, mlk_result **out);
/** Async volume commands, run with the client's configuration on a
 *  short-lived thread; `done` runs from mlk_dispatch() on that client. */
MLK_API int mlk_volume_create_async(mlk_client *c, const char *name, int64_t size_mb,
                                    mlk_done_cb done, void *ud, uint64_t *op);
MLK_API int mlk_volume_list_async(mlk_client *c, mlk_done_cb done, void *ud, uint64_t *op);
MLK_API int mlk_volume_remove_async(mlk_client *c, const char *name, mlk_done_cb done, void *ud, uint64_t *op);

#ifdef __cplusplus
}
#endif
#endif /* MATCHLOCK_H */
