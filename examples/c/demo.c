/* demo.c - the main job: create a sandbox, run commands (buffered and
 * streamed), write, read and list files, then close and remove it.
 *
 *   MATCHLOCK_BIN=build/matchlock-local build/example_demo
 *
 * Every step evaluates its call first and then looks at the result: on a
 * failure the demo prints the server's message, frees what it holds and
 * exits with status 1.  Links libmatchlock and msgpack-c (for the listing).
 */
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <matchlock.h>

static mlk_client *client;

/* Close and remove the sandbox (if any), free the client, exit 1. */
static void leave(void)
{
    if (client) {
        if (mlk_client_vm_id(client)) {
            mlk_close(client, 5, NULL);
            mlk_remove(client, NULL);
        }
        mlk_client_free(client);
    }
    exit(1);
}

/* Report a failed step and leave: the result (if any) carries the message. */
static void fail(const char *what, int rc, mlk_result *r)
{
    const char *msg = r ? mlk_result_message(r) : NULL;
    fprintf(stderr, "%s failed: %s (%s)\n", what, msg && *msg ? msg : "no message", mlk_errname(rc));
    mlk_result_free(r);
    leave();
}

/* A command's own failure (non-zero exit) is a failed step too. */
static void exec_or_fail(const char *what, const char *cmd, const mlk_exec_opts *o, mlk_result **r)
{
    int rc = mlk_exec(client, cmd, o, r);
    if (rc != 0) fail(what, rc, *r);
    if (mlk_result_exit_code(*r) != 0) {
        size_t n;
        const char *err = mlk_result_stderr(*r, &n);
        fprintf(stderr, "%s failed: `%s` exited %d: %.*s\n", what, cmd, mlk_result_exit_code(*r), (int)n,
                err ? err : "");
        mlk_result_free(*r);
        leave();
    }
}

static void print_stream(void *ud, uint64_t op, int fd, const char *data, size_t len)
{
    (void)ud, (void)op;
    fprintf(fd == 1 ? stdout : stderr, "  [%s] %.*s", fd == 1 ? "out" : "err", (int)len, data);
    fflush(stdout);
}

/* mlk_result_msgpack() of list_files: an array of maps
 * {name, size, mode, mod_time, is_dir}; print one line per entry. */
static const msgpack_object *field(const msgpack_object *map, const char *key)
{
    size_t klen = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object_kv *kv = &map->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == klen &&
            memcmp(kv->key.via.str.ptr, key, klen) == 0)
            return &kv->val;
    }
    return NULL;
}

static void print_listing(const char *mp, size_t len)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, mp, len, NULL) != MSGPACK_UNPACK_SUCCESS || u.data.type != MSGPACK_OBJECT_ARRAY) {
        fprintf(stderr, "list_files: unexpected listing shape\n");
        msgpack_unpacked_destroy(&u);
        return;
    }
    printf("  %-6s %-5s %8s  %s\n", "type", "mode", "size", "name");
    for (uint32_t i = 0; i < u.data.via.array.size; i++) {
        const msgpack_object *e = &u.data.via.array.ptr[i];
        if (e->type != MSGPACK_OBJECT_MAP) continue;
        const msgpack_object *name = field(e, "name"), *size = field(e, "size");
        const msgpack_object *mode = field(e, "mode"), *dir = field(e, "is_dir");
        int is_dir = dir && dir->type == MSGPACK_OBJECT_BOOLEAN && dir->via.boolean;
        printf("  %-6s %04llo %8llu  %.*s\n", is_dir ? "dir" : "file",
               mode && mode->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? (unsigned long long)(mode->via.u64 & 07777) : 0ULL,
               size && size->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? (unsigned long long)size->via.u64 : 0ULL,
               name && name->type == MSGPACK_OBJECT_STR ? (int)name->via.str.size : 1,
               name && name->type == MSGPACK_OBJECT_STR ? name->via.str.ptr : "?");
    }
    msgpack_unpacked_destroy(&u);
}

int main(void)
{
    mlk_result *r = NULL;
    int rc = mlk_client_new(&client, NULL, &r);
    if (rc != 0) fail("start matchlock", rc, r);
    mlk_result_free(r);

    mlk_sandbox *sb = mlk_sandbox_new("alpine:latest");
    mlk_sandbox_set_cpus(sb, 1);
    mlk_sandbox_set_memory_mb(sb, 256);
    mlk_sandbox_set_env(sb, "GREETING", "hello from the sandbox");
    rc = mlk_create(client, sb, 60000, &r);
    mlk_sandbox_free(sb);
    if (rc != 0) fail("create", rc, r);
    printf("created %s\n", mlk_client_vm_id(client));
    mlk_result_free(r);

    exec_or_fail("exec", "echo \"$GREETING\"; uname -s", NULL, &r);
    size_t n;
    const char *out = mlk_result_stdout(r, &n);
    printf("exec (exit %d):\n%.*s", mlk_result_exit_code(r), (int)n, out);
    mlk_result_free(r);

    printf("streamed exec:\n");
    mlk_exec_opts *o = mlk_exec_opts_new();
    mlk_exec_opts_set_mode(o, MLK_EXEC_STREAM);
    mlk_exec_opts_set_callbacks(o, print_stream, NULL, NULL);
    rc = mlk_exec(client, "for i in 1 2 3; do echo tick $i; sleep 0.2; done; echo done >&2", o, &r);
    mlk_exec_opts_free(o);
    if (rc != 0) fail("exec_stream", rc, r);
    printf("  exit %d after %lld ms\n", mlk_result_exit_code(r), (long long)mlk_result_duration_ms(r));
    mlk_result_free(r);

    const char *text = "print('hi from a file')\n";
    rc = mlk_write_file(client, "/workspace/hello.py", text, strlen(text), 0644, 0, &r);
    if (rc != 0) fail("write_file", rc, r);
    mlk_result_free(r);

    rc = mlk_read_file(client, "/workspace/hello.py", 0, &r);
    if (rc != 0) fail("read_file", rc, r);
    const char *data = mlk_result_data(r, &n);
    printf("read back %zu bytes: %.*s", n, (int)n, data);
    mlk_result_free(r);

    rc = mlk_list_files(client, "/workspace", 0, &r);
    if (rc != 0) fail("list_files", rc, r);
    printf("listing of /workspace:\n");
    const char *mp = mlk_result_msgpack(r, &n);
    print_listing(mp, n);
    mlk_result_free(r);

    rc = mlk_close(client, 5, &r);
    if (rc != 0) fail("close", rc, r);
    mlk_result_free(r);
    rc = mlk_remove(client, &r);
    if (rc != 0) fail("remove", rc, r);
    mlk_result_free(r);
    printf("closed and removed\n");
    mlk_client_free(client);
    return 0;
}
