/* errors.c - names and descriptions of the MLK_E* codes. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

struct errinfo {
    int code;
    const char *name, *text, *upstream;
};

static const struct errinfo errors[] = {
    {MLK_OK, "MLK_OK", "success", NULL},
    {MLK_EINVAL, "MLK_EINVAL", "invalid argument", NULL},
    {MLK_ENOMEM, "MLK_ENOMEM", "out of memory", NULL},
    {MLK_ECLOSED, "MLK_ECLOSED", "client closed", "ErrClientClosed"},
    {MLK_ESPAWN, "MLK_ESPAWN", "could not start the matchlock process", "ErrStartProc"},
    {MLK_EPROTO, "MLK_EPROTO", "protocol error from the matchlock process", NULL},
    {MLK_EDEAD, "MLK_EDEAD", "connection closed", "ErrConnectionClose"},
    {MLK_ERPC, "MLK_ERPC", "the server returned an error", NULL},
    {MLK_ETIMEDOUT, "MLK_ETIMEDOUT", "deadline exceeded", NULL},
    {MLK_ECANCELED, "MLK_ECANCELED", "cancelled", NULL},
    {MLK_EUSER, "MLK_EUSER", "a user callback failed", NULL},
    {MLK_EAGAIN, "MLK_EAGAIN", "too much data buffered, try again", NULL},
    {MLK_ENOTCREATED, "MLK_ENOTCREATED", "sandbox not created", NULL},
    {MLK_ETOOBIG, "MLK_ETOOBIG", "payload too large", NULL},
    {MLK_ECLI, "MLK_ECLI", "matchlock volume command failed", "ErrVolumeCommand"},
    {MLK_ESTATE, "MLK_ESTATE", "call not valid in this state", NULL},
    {MLK_EIMAGE_REQUIRED, "MLK_EIMAGE_REQUIRED", "image is required", "ErrImageRequired"},
    {MLK_EINVALID_CPU, "MLK_EINVALID_CPU", "invalid CPU count", "ErrInvalidCPUCount"},
    {MLK_EINVALID_MTU, "MLK_EINVALID_MTU", "invalid network MTU", "ErrInvalidNetworkMTU"},
    {MLK_ENO_NETWORK_CONFLICT, "MLK_ENO_NETWORK_CONFLICT",
     "no_network cannot be combined with allowed hosts, secrets or interception", "ErrNoNetworkConflict"},
    {MLK_EINVALID_ADD_HOST, "MLK_EINVALID_ADD_HOST", "invalid add-host entry", "ErrInvalidAddHost"},
    {MLK_EPORT_FORWARD, "MLK_EPORT_FORWARD", "invalid port forward spec", "ErrParsePortForwards"},
    {MLK_EALLOW_LIST_HOSTS, "MLK_EALLOW_LIST_HOSTS", "allow-list needs at least one host", "ErrAllowListHosts"},
    {MLK_EINVALID_MOUNT, "MLK_EINVALID_MOUNT", "invalid workspace or mount", NULL},
    {MLK_EINVALID_RULE, "MLK_EINVALID_RULE", "invalid interception rule", NULL},
    {MLK_EVFS_BLOCKED, "MLK_EVFS_BLOCKED", "VFS hook blocked", "ErrVFSHookBlocked"},
    {MLK_ECLOSE_TIMEOUT, "MLK_ECLOSE_TIMEOUT", "close timed out, process killed", "ErrCloseTimeout"},
    {MLK_EREMOVE, "MLK_EREMOVE", "matchlock rm failed", "ErrRemoveVM"},
    {MLK_EVOLUME_NAME, "MLK_EVOLUME_NAME", "volume name is required", "ErrVolumeNameRequired"},
    {MLK_EVOLUME_SIZE, "MLK_EVOLUME_SIZE", "volume size must be > 0", "ErrInvalidVolumeSize"},
    {MLK_EINVALID_NET_HOOK, "MLK_EINVALID_NET_HOOK", "invalid network hook", "ErrInvalidNetworkHook"},
    {MLK_EINVALID_VFS_HOOK, "MLK_EINVALID_VFS_HOOK", "invalid VFS hook", "ErrInvalidVFSHook"},
    {MLK_EPARSE, "MLK_EPARSE", "could not parse the server's result", NULL},
    {MLK_EINVALID_MOUNT_OWNER, "MLK_EINVALID_MOUNT_OWNER", "mount owner out of range", "InvalidMountOwner"},
};

static const struct errinfo *find(int code)
{
    for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++)
        if (errors[i].code == code) return &errors[i];
    return NULL;
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
