/* hooks.c - VFS hooks from C: watch files a command writes, block and
 * rewrite the SDK's own file writes, and print every sandbox event.
 *
 *   MATCHLOCK_BIN=build/matchlock-local build/example_hooks
 */
#define _GNU_SOURCE /* memmem */
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <matchlock.h>

/* msgpack helpers: a one-key map, and a string answer. */
static char *rule(size_t *len, const char *key, const char *val)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, key, strlen(key));
    msgpack_pack_str_with_body(&pk, val, strlen(val));
    *len = sb.size;
    return sb.data;
}

static void answer(mlk_hook_call *call, const char *s)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_str_with_body(&pk, s, strlen(s));
    mlk_hook_reply(call, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

static void print_msgpack(const char *label, const char *mp, size_t len)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, mp, len, NULL) == MSGPACK_UNPACK_SUCCESS) {
        printf("%s ", label);
        msgpack_object_print(stdout, u.data);
        printf("\n");
    }
    msgpack_unpacked_destroy(&u);
}

/* After-hook: runs on the thread calling mlk_dispatch(); no answer. */
static void on_file(void *ud, mlk_client *c, int kind, mlk_hook_call *call, const char *req, size_t len)
{
    print_msgpack("after-hook:", req, len);
}

/* Action hook: answer "allow" or "block" (here: synchronously). */
static void guard(void *ud, mlk_client *c, int kind, mlk_hook_call *call, const char *req, size_t len)
{
    int secret = memmem(req, len, ".secret", 7) != NULL;
    printf("action hook: %s\n", secret ? "block" : "allow");
    answer(call, secret ? "block" : "allow");
}

/* Mutate hook: answer the bytes that should land in the file. */
static void add_header(void *ud, mlk_client *c, int kind, mlk_hook_call *call, const char *req, size_t len)
{
    answer(call, "# written through libmatchlock\nprint('hello')\n");
}

static void on_event(void *ud, const char *mp, size_t len) { print_msgpack("event:", mp, len); }

int main(void)
{
    mlk_client *c = NULL;
    mlk_result *r = NULL;
    if (mlk_client_new(&c, NULL, &r) != 0) {
        fprintf(stderr, "start: %s\n", mlk_result_message(r));
        return 1;
    }
    mlk_result_free(r);
    mlk_client_set_event_cb(c, on_event, NULL);

    mlk_sandbox *sb = mlk_sandbox_new("alpine:latest");
    mlk_sandbox_set_workspace(sb, "/workspace");
    mlk_sandbox_mount_memory(sb, "/workspace");
    size_t n;
    char *mp = rule(&n, "path", "/workspace/*");
    mlk_sandbox_add_vfs_hook(sb, MLK_HOOK_VFS_AFTER, mp, n, on_file, NULL);
    mlk_sandbox_add_vfs_hook(sb, MLK_HOOK_VFS_ACTION, mp, n, guard, NULL);
    free(mp);
    mp = rule(&n, "path", "/workspace/*.py");
    mlk_sandbox_add_vfs_hook(sb, MLK_HOOK_VFS_MUTATE, mp, n, add_header, NULL);
    free(mp);
    if (mlk_create(c, sb, 60000, &r) != 0) {
        fprintf(stderr, "create: %s\n", mlk_result_message(r));
        return 1;
    }
    mlk_result_free(r);
    mlk_sandbox_free(sb);

    mlk_exec(c, "echo from-a-command > /workspace/notes.txt", NULL, &r);
    mlk_result_free(r);
    if (mlk_write_file(c, "/workspace/key.secret", "x", 1, 0, 0, &r) != 0)
        printf("write_file refused: %s\n", mlk_result_message(r));
    mlk_result_free(r);
    mlk_write_file(c, "/workspace/app.py", "original", 8, 0, 0, NULL);
    mlk_exec(c, "cat /workspace/app.py", NULL, &r);
    const char *out = mlk_result_stdout(r, &n);
    printf("app.py now holds:\n%.*s", (int)n, out);
    mlk_result_free(r);

    for (int i = 0; i < 50; i++) { /* let the file events arrive */
        mlk_dispatch(c, 0);
        usleep(10000);
    }
    mlk_close(c, 5, NULL);
    mlk_remove(c, NULL);
    mlk_client_free(c);
    return 0;
}
