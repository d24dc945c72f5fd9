/* demo.c - the main job: create a sandbox, run commands (buffered and
 * streamed), write, read and list files, then close and remove it.
 *
 *   MATCHLOCK_BIN=build/matchlock-local build/example_demo
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <matchlock.h>

static int check(int rc, mlk_result *r, const char *what)
{
    if (rc != 0) {
        fprintf(stderr, "%s failed: %s (%s)\n", what, mlk_result_message(r), mlk_errname(rc));
        mlk_result_free(r);
        exit(1);
    }
    return rc;
}

static void print_stream(void *ud, uint64_t op, int fd, const char *data, size_t len)
{
    fprintf(fd == 1 ? stdout : stderr, "  [%s] %.*s", fd == 1 ? "out" : "err", (int)len, data);
    fflush(stdout);
}

int main(void)
{
    mlk_client *c = NULL;
    mlk_result *r = NULL;
    check(mlk_client_new(&c, NULL, &r), r, "start matchlock");
    mlk_result_free(r);

    mlk_sandbox *sb = mlk_sandbox_new("alpine:latest");
    mlk_sandbox_set_cpus(sb, 1);
    mlk_sandbox_set_memory_mb(sb, 256);
    mlk_sandbox_set_env(sb, "GREETING", "hello from the sandbox");
    check(mlk_create(c, sb, 60000, &r), r, "create");
    printf("created %s\n", mlk_client_vm_id(c));
    mlk_result_free(r);
    mlk_sandbox_free(sb);

    check(mlk_exec(c, "echo \"$GREETING\"; uname -s", NULL, &r), r, "exec");
    size_t n;
    const char *out = mlk_result_stdout(r, &n);
    printf("exec (exit %d):\n%.*s", mlk_result_exit_code(r), (int)n, out);
    mlk_result_free(r);

    printf("streamed exec:\n");
    mlk_exec_opts *o = mlk_exec_opts_new();
    mlk_exec_opts_set_mode(o, MLK_EXEC_STREAM);
    mlk_exec_opts_set_callbacks(o, print_stream, NULL, NULL);
    check(mlk_exec(c, "for i in 1 2 3; do echo tick $i; sleep 0.2; done; echo done >&2", o, &r), r, "exec_stream");
    printf("  exit %d after %lld ms\n", mlk_result_exit_code(r), (long long)mlk_result_duration_ms(r));
    mlk_result_free(r);
    mlk_exec_opts_free(o);

    const char *text = "print('hi from a file')\n";
    check(mlk_write_file(c, "/workspace/hello.py", text, strlen(text), 0644, 0, &r), r, "write_file");
    mlk_result_free(r);
    check(mlk_read_file(c, "/workspace/hello.py", 0, &r), r, "read_file");
    const char *data = mlk_result_data(r, &n);
    printf("read back %zu bytes: %.*s", n, (int)n, data);
    mlk_result_free(r);
    check(mlk_list_files(c, "/workspace", 0, &r), r, "list_files");
    mlk_result_msgpack(r, &n);
    printf("listed /workspace (%zu bytes of msgpack)\n", n);
    mlk_result_free(r);
    check(mlk_exec(c, "ls -l /workspace", NULL, &r), r, "exec");
    out = mlk_result_stdout(r, &n);
    printf("%.*s", (int)n, out);
    mlk_result_free(r);

    check(mlk_close(c, 5, &r), r, "close");
    mlk_result_free(r);
    check(mlk_remove(c, &r), r, "remove");
    mlk_result_free(r);
    printf("closed and removed\n");
    mlk_client_free(c);
    return 0;
}
