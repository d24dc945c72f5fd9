/* errors.c - names and descriptions of the MLK_E* codes. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* One row per MLK_E* code: the contract of an error, as data.  `cls` is
 * the error's own class name and `cat` the broader class it belongs to;
 * the bindings raise their language's classes of those names (Python one
 * class per code, Node one per category, Lua names both on its error
 * object).  `hint` says what to do about it, in the same words in every
 * language; NULL where the message itself names the cause and the remedy
 * (a spawn failure says whether the binary or the descriptors are
 * missing). */
struct errinfo {
    int code;
    const char *name, *text, *upstream, *cls, *cat, *hint;
};

#define VALID "ValidationError"
static const char H_CLOSED[] = "this client is closed; create a new Client";
static const char H_DEAD[] = "the matchlock process exited; see its stderr in the message, and create a new Client";
static const char H_PROTO[] = "the server sent something that is not the protocol; check that the binary is matchlock";
static const char H_TIMEOUT[] = "raise the call's timeout, or check what the sandbox is doing";
static const char H_CLI[] = "the matchlock command line tool failed; its stderr is in the message";

static const struct errinfo errors[] = {
    {MLK_OK, "MLK_OK", "success", NULL, NULL, NULL, NULL},
    {MLK_EINVAL, "MLK_EINVAL", "invalid argument", NULL, VALID, VALID, NULL},
    {MLK_ENOMEM, "MLK_ENOMEM", "out of memory", NULL, "OutOfMemoryError", "MatchlockError", NULL},
    {MLK_ECLOSED, "MLK_ECLOSED", "client closed", "ErrClientClosed", "ClosedError", "ClosedError", H_CLOSED},
    {MLK_ESPAWN, "MLK_ESPAWN", "could not start the matchlock process", "ErrStartProc", "SpawnError",
     "ProcessError", NULL},
    {MLK_EPROTO, "MLK_EPROTO", "protocol error from the matchlock process", NULL, "ProtocolError", "ProcessError",
     H_PROTO},
    {MLK_EDEAD, "MLK_EDEAD", "connection closed", "ErrConnectionClose", "ServerDiedError", "ClosedError", H_DEAD},
    {MLK_ERPC, "MLK_ERPC", "the server returned an error", NULL, "RPCError", "RPCError", NULL},
    {MLK_ETIMEDOUT, "MLK_ETIMEDOUT", "deadline exceeded", NULL, "MatchlockTimeoutError", "TimeoutError", H_TIMEOUT},
    {MLK_ECANCELED, "MLK_ECANCELED", "cancelled", NULL, "OperationCancelledError", "CancelledError", NULL},
    {MLK_EUSER, "MLK_EUSER", "a user callback failed", NULL, "CallbackError", "CallbackError", NULL},
    {MLK_EAGAIN, "MLK_EAGAIN", "too much data buffered, try again", NULL, "WouldBlockError", "MatchlockError", NULL},
    {MLK_ENOTCREATED, "MLK_ENOTCREATED", "sandbox not created", NULL, "NotCreatedError", "StateError",
     "call create() or launch() first"},
    {MLK_ETOOBIG, "MLK_ETOOBIG", "payload too large", NULL, "PayloadTooBigError", VALID, NULL},
    {MLK_ECLI, "MLK_ECLI", "matchlock volume command failed", "ErrVolumeCommand", "CLIError", "CLIError", H_CLI},
    {MLK_ESTATE, "MLK_ESTATE", "call not valid in this state", NULL, "StateError", "StateError", NULL},
    {MLK_EIMAGE_REQUIRED, "MLK_EIMAGE_REQUIRED", "image is required", "ErrImageRequired", "ImageRequiredError",
     VALID, NULL},
    {MLK_EINVALID_CPU, "MLK_EINVALID_CPU", "invalid CPU count", "ErrInvalidCPUCount", "InvalidCPUCountError",
     VALID, NULL},
    {MLK_EINVALID_MTU, "MLK_EINVALID_MTU", "invalid network MTU", "ErrInvalidNetworkMTU", "InvalidNetworkMTUError",
     VALID, NULL},
    {MLK_ENO_NETWORK_CONFLICT, "MLK_ENO_NETWORK_CONFLICT",
     "no_network cannot be combined with allowed hosts, secrets or interception", "ErrNoNetworkConflict",
     "NoNetworkConflictError", VALID, NULL},
    {MLK_EINVALID_ADD_HOST, "MLK_EINVALID_ADD_HOST", "invalid add-host entry", "ErrInvalidAddHost",
     "InvalidAddHostError", VALID, NULL},
    {MLK_EPORT_FORWARD, "MLK_EPORT_FORWARD", "invalid port forward spec", "ErrParsePortForwards",
     "PortForwardParseError", VALID, NULL},
    {MLK_EALLOW_LIST_HOSTS, "MLK_EALLOW_LIST_HOSTS", "allow-list needs at least one host", "ErrAllowListHosts",
     "AllowListHostsError", VALID, NULL},
    {MLK_EINVALID_MOUNT, "MLK_EINVALID_MOUNT", "invalid workspace or mount", NULL, "InvalidMountError", VALID, NULL},
    {MLK_EINVALID_RULE, "MLK_EINVALID_RULE", "invalid interception rule", NULL, "InvalidRuleError", VALID, NULL},
    /* a plain MatchlockError in the official SDKs */
    {MLK_EVFS_BLOCKED, "MLK_EVFS_BLOCKED", "VFS hook blocked", "ErrVFSHookBlocked", "VFSBlockedError",
     "MatchlockError", NULL},
    {MLK_ECLOSE_TIMEOUT, "MLK_ECLOSE_TIMEOUT", "close timed out, process killed", "ErrCloseTimeout",
     "CloseTimeoutError", "TimeoutError", NULL},
    {MLK_EREMOVE, "MLK_EREMOVE", "matchlock rm failed", "ErrRemoveVM", "RemoveError", "CLIError", H_CLI},
    {MLK_EVOLUME_NAME, "MLK_EVOLUME_NAME", "volume name is required", "ErrVolumeNameRequired", "VolumeNameError",
     VALID, NULL},
    {MLK_EVOLUME_SIZE, "MLK_EVOLUME_SIZE", "volume size must be > 0", "ErrInvalidVolumeSize", "VolumeSizeError",
     VALID, NULL},
    {MLK_EINVALID_NET_HOOK, "MLK_EINVALID_NET_HOOK", "invalid network hook", "ErrInvalidNetworkHook",
     "InvalidNetworkHookError", VALID, NULL},
    {MLK_EINVALID_VFS_HOOK, "MLK_EINVALID_VFS_HOOK", "invalid VFS hook", "ErrInvalidVFSHook", "InvalidVFSHookError",
     VALID, NULL},
    {MLK_EPARSE, "MLK_EPARSE", "could not parse the server's result", NULL, "ResultParseError", "ProcessError", NULL},
    {MLK_EINVALID_MOUNT_OWNER, "MLK_EINVALID_MOUNT_OWNER", "mount owner out of range", "InvalidMountOwner",
     "InvalidMountOwnerError", VALID, NULL},
};

/* The server's JSON-RPC codes (MLK_RPC_*, and any other in the range
 * JSON-RPC reserves) are all the one class the official SDKs raise. */
static const struct errinfo rpc_error = {0, NULL, NULL, NULL, "RPCError", "RPCError", NULL};

static const struct errinfo *find(int code)
{
    for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++)
        if (errors[i].code == code) return &errors[i];
    return NULL;
}

MLK_API const char *mlk_error_class(int code)
{
    const struct errinfo *e = code <= -32000 && code >= -32768 ? &rpc_error : find(code);
    return e ? e->cls : code < 0 ? "MatchlockError" : NULL;
}

MLK_API const char *mlk_error_category(int code)
{
    const struct errinfo *e = code <= -32000 && code >= -32768 ? &rpc_error : find(code);
    return e ? e->cat : code < 0 ? "MatchlockError" : NULL;
}

MLK_API const char *mlk_error_hint(int code)
{
    const struct errinfo *e = find(code);
    return e ? e->hint : NULL;
}

MLK_API const char *mlk_strerror(int code)
{
    const struct errinfo *e = find(code);
    return e ? e->text : "unknown error";
}

MLK_API const char *mlk_errname(int code)
{
    const struct errinfo *e = find(code);
    return e ? e->name : NULL;
}

MLK_API const char *mlk_err_upstream_name(int code)
{
    const struct errinfo *e = find(code);
    return e ? e->upstream : NULL;
}

MLK_API int mlk_version(void) { return MLK_VERSION; }
#define MLK_STR_(x) #x
#define MLK_STR(x) MLK_STR_(x)
MLK_API const char *mlk_version_str(void)
{
    return MLK_STR(MLK_VERSION_MAJOR) "." MLK_STR(MLK_VERSION_MINOR) "." MLK_STR(MLK_VERSION_PATCH);
}
MLK_API void mlk_free(void *p) { free(p); }

MLK_API int mlk_check_cstring(const char *what, const char *s, size_t len, char **msg)
{
    if (msg) *msg = NULL;
    const char *nul = s && len ? memchr(s, '\0', len) : NULL;
    if (!s && len) {
        if (msg) *msg = xasprintf("%s: NULL given with a length of %zu", what && *what ? what : "string", len);
        return MLK_EINVAL;
    }
    if (!nul) return 0;
    /* never the bytes: they may be a secret */
    if (msg)
        *msg = xasprintf("%s contains a NUL character at byte %zu of %zu; a C string ends at the first NUL, so the "
                         "rest would be lost: pass text without NUL characters (the value is not shown)",
                         what && *what ? what : "a string argument", (size_t)(nul - s), len);
    return MLK_EINVAL;
}
