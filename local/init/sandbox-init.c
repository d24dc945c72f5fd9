/* sandbox-init.c - matchlock-local-init, the first program of a command
 * inside a sandbox.  matchlock-local runs it (under bubblewrap it is bound
 * at /dev/.matchlock-local-init) when a command needs what only a process
 * inside the sandbox can do:
 *
 *   -t            make stdin the controlling terminal of a new session (a
 *                 TTY command in a PID namespace: job-control shells need it)
 *   -u UID -g GID [-G GID,GID...]
 *                 drop to that user for real: supplementary groups, then
 *                 real/effective/saved gid and uid.  Afterwards it checks
 *                 that root cannot be regained, and refuses to run the
 *                 command otherwise.
 *   -p            probe: exit 0 at once (matchlock-local checks that
 *                 bubblewrap works with it)
 *   -- ARGV...    the command (PATH lookup as execvp)
 *
 * Statically linked, so it runs in any root filesystem (an imported image
 * has none of the host's libraries).  Exit codes: 126 setup failed, 127
 * exec failed, as a shell does. */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <unistd.h>

static int fail(const char *what)
{
    fprintf(stderr, "matchlock-local-init: %s: %s\n", what, strerror(errno));
    return 126;
}

static int parse_id(const char *s, unsigned *out)
{
    char *e;
    errno = 0;
    unsigned long v = strtoul(s, &e, 10);
    if (!*s || *e || errno || v > 0xfffffffeUL) return -1;
    *out = (unsigned)v;
    return 0;
}

int main(int argc, char **argv)
{
    int tty = 0, have_uid = 0, have_gid = 0;
    unsigned uid = 0, gid = 0;
    gid_t groups[64];
    size_t ngroups = 0;
    int i = 1;
    for (; i < argc && strcmp(argv[i], "--"); i++) {
        if (!strcmp(argv[i], "-p")) return 0;
        if (!strcmp(argv[i], "-t")) tty = 1;
        else if (!strcmp(argv[i], "-u") && i + 1 < argc && parse_id(argv[i + 1], &uid) == 0) { have_uid = 1; i++; }
        else if (!strcmp(argv[i], "-g") && i + 1 < argc && parse_id(argv[i + 1], &gid) == 0) { have_gid = 1; i++; }
        else if (!strcmp(argv[i], "-G") && i + 1 < argc) {
            char *list = argv[++i], *save = NULL;
            for (char *g = strtok_r(list, ",", &save); g; g = strtok_r(NULL, ",", &save)) {
                unsigned v;
                if (parse_id(g, &v) != 0 || ngroups == sizeof groups / sizeof *groups) goto usage;
                groups[ngroups++] = (gid_t)v;
            }
        } else goto usage;
    }
    if (i + 1 >= argc || have_uid != have_gid) goto usage;
    char **cmd = argv + i + 1;

    if (tty) {
        if (setsid() < 0 && errno != EPERM) return fail("setsid");
        if (ioctl(0, TIOCSCTTY, 0) != 0) return fail("take the terminal");
    }
    if (have_uid) {
        if (ngroups == 0) groups[ngroups++] = (gid_t)gid;
        if (setgroups(ngroups, groups) != 0) return fail("setgroups");
        if (setresgid(gid, gid, gid) != 0) return fail("setresgid");
        if (setresuid(uid, uid, uid) != 0) return fail("setresuid");
        uid_t r, e, s;
        gid_t rg, eg, sg;
        if (getresuid(&r, &e, &s) != 0 || r != uid || e != uid || s != uid ||
            getresgid(&rg, &eg, &sg) != 0 || rg != gid || eg != gid || sg != gid) {
            errno = EPERM;
            return fail("the user switch did not take");
        }
        if (uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
            errno = EPERM;
            return fail("root could be regained after the switch");
        }
    }
    execvp(cmd[0], cmd);
    fprintf(stderr, "matchlock-local-init: exec %s: %s\n", cmd[0], strerror(errno));
    return 127;
usage:
    fprintf(stderr, "usage: matchlock-local-init [-t] [-u UID -g GID [-G GID,...]] -- COMMAND...\n");
    return 126;
}
