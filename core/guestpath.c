/* guestpath.c - the one canonical spelling of a guest path.
 *
 * VFS hooks judge a file call's path and the server then acts on it.  Both
 * must see the same path, or a hook whose glob covers /workspace/secret is
 * sidestepped by spelling the path /workspace//secret/x,
 * /workspace/./secret/x or secret/x.  So the core rewrites every path a file call carries, once,
 * before any hook sees it, and sends the server that very string:
 *
 *   - a relative path is taken against the sandbox's workspace
 *     (vfs.workspace; "/workspace" when none is configured, as upstream);
 *   - empty components ("//") and "." are dropped;
 *   - ".." removes the component before it, lexically, and never climbs
 *     above "/" ("/.." is "/"), as Go's filepath.Clean does on the
 *     server, so the result is what the server would compute itself;
 *   - a trailing "/" goes; the root is "/".
 *
 * The result is always absolute, so it can never be read as a flag. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#define DEFAULT_WORKSPACE "/workspace"

/* Append the components of p to out (which holds a canonical absolute path
 * of length *n, "" standing for "/"), resolving "." and "..". */
static void walk(char *out, size_t *n, const char *p)
{
    while (*p) {
        while (*p == '/') p++;
        if (!*p) break;
        size_t l = strcspn(p, "/");
        if (l == 1 && p[0] == '.') {
            /* nothing */
        } else if (l == 2 && p[0] == '.' && p[1] == '.') {
            while (*n > 0 && out[*n - 1] != '/') (*n)--;
            if (*n > 0) (*n)--;   /* the '/' before the dropped component */
        } else {
            out[(*n)++] = '/';
            memcpy(out + *n, p, l);
            *n += l;
        }
        p += l;
    }
    out[*n] = '\0';
}

int guest_path_canon(const char *workspace, const char *path, char **out)
{
    *out = NULL;
    if (!path || !*path) return MLK_EINVAL;
    if (!workspace || !*workspace) workspace = DEFAULT_WORKSPACE;
    /* the result is never longer than the workspace, a '/' and the path, plus "/" */
    size_t cap = strlen(workspace) + strlen(path) + 3;
    char *buf = malloc(cap);
    if (!buf) return MLK_ENOMEM;
    size_t n = 0;
    buf[0] = '\0';
    if (path[0] != '/') walk(buf, &n, workspace); /* a relative workspace is taken from "/" */
    walk(buf, &n, path);
    if (n == 0) { buf[0] = '/'; buf[1] = '\0'; }
    *out = buf;
    return 0;
}
