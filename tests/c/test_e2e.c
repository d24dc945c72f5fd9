/* End-to-end tests of the public C API against a real server process over
 * real pipes: matchlock-local, or the server named by $MLK_E2E_SERVER (e2e_server.h). */
#include <criterion/criterion.h>
#include <msgpack.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "e2e_server.h"
#include "matchlock.h"


static mlk_client *sandbox(void)
{
    mlk_config *cfg = e2e_config();
    mlk_client *c = NULL;
    mlk_result *r = NULL;
    cr_assert_eq(mlk_client_new(&c, cfg, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    mlk_config_free(cfg);
    mlk_sandbox *sb = mlk_sandbox_new("alpine:latest");
    cr_assert_eq(mlk_create(c, sb, 30000, &r), 0, "create: %s", mlk_result_message(r));
    size_t n;
    const char *id = mlk_result_data(r, &n);
    cr_assert(n > 3 && strncmp(id, "vm-", 3) == 0, "vm id %s", id);
    cr_assert_str_eq(mlk_client_vm_id(c), id);
    mlk_result_free(r);
    mlk_sandbox_free(sb);
    return c;
}

static void finish(mlk_client *c)
{
    mlk_result *r = NULL;
    cr_assert_eq(mlk_close(c, 5, &r), 0, "close: %s", mlk_result_message(r));
    mlk_result_free(r);
    mlk_remove(c, NULL);
    mlk_client_free(c);
}

Test(e2e, exec_buffered, .timeout = 30)
{
    mlk_client *c = sandbox();
    mlk_result *r = NULL;
    cr_assert_eq(mlk_exec(c, "echo hello; echo oops >&2; exit 3", NULL, &r), 0, "%s", mlk_result_message(r));
    size_t n;
    const char *out = mlk_result_stdout(r, &n);
    cr_assert_eq(n, 6);
    cr_assert(memcmp(out, "hello\n", 6) == 0);
    out = mlk_result_stderr(r, &n);
    cr_assert(n == 5 && memcmp(out, "oops\n", 5) == 0);
    cr_assert_eq(mlk_result_exit_code(r), 3);
    mlk_result_free(r);

    mlk_exec_opts *o = mlk_exec_opts_new();
    mlk_exec_opts_set_working_dir(o, "/tmp");
    cr_assert_eq(mlk_exec(c, "pwd", o, &r), 0);
    out = mlk_result_stdout(r, &n);
    cr_assert(n == 5 && memcmp(out, "/tmp\n", 5) == 0, "%.*s", (int)n, out);
    mlk_result_free(r);
    mlk_exec_opts_free(o);
    finish(c);
}

/* The sandbox runs on the image: alpine's own release file is there. */
Test(e2e, commands_see_the_image, .timeout = 120)
{
    E2E_NEEDS("image_contents");
    mlk_client *c = sandbox();
    mlk_result *r = NULL;
    cr_assert_eq(mlk_exec(c, "cat /etc/alpine-release", NULL, &r), 0, "%s", mlk_result_message(r));
    size_t n;
    const char *out = mlk_result_stdout(r, &n);
    cr_assert_eq(mlk_result_exit_code(r), 0, "%.*s", (int)n, out);
    cr_assert(n > 2 && out[0] >= '3' && out[0] <= '9', "an alpine version: %.*s", (int)n, out);
    mlk_result_free(r);
    finish(c);
}

struct collect {
    char *out, *err;
    size_t on, en;
    int ready;
};

static void collect_output(void *ud, uint64_t op, int fd, const char *data, size_t len)
{
    struct collect *s = ud;
    char **b = fd == 1 ? &s->out : &s->err;
    size_t *n = fd == 1 ? &s->on : &s->en;
    *b = realloc(*b, *n + len + 1);
    memcpy(*b + *n, data, len);
    *n += len;
    (*b)[*n] = '\0';
}

static void collect_ready(void *ud, uint64_t op) { ((struct collect *)ud)->ready++; }

Test(e2e, exec_stream, .timeout = 30)
{
    mlk_client *c = sandbox();
    struct collect s = {0};
    mlk_exec_opts *o = mlk_exec_opts_new();
    mlk_exec_opts_set_mode(o, MLK_EXEC_STREAM);
    mlk_exec_opts_set_callbacks(o, collect_output, NULL, &s);
    mlk_result *r = NULL;
    cr_assert_eq(mlk_exec(c, "for i in 1 2 3; do echo $i; sleep 0.05; done; echo bad >&2; exit 4", o, &r), 0,
                 "%s", mlk_result_message(r));
    cr_assert_eq(mlk_result_exit_code(r), 4);
    cr_assert_str_eq(s.out, "1\n2\n3\n");
    cr_assert_str_eq(s.err, "bad\n");
    mlk_result_free(r);
    mlk_exec_opts_free(o);
    free(s.out);
    free(s.err);
    finish(c);
}

Test(e2e, exec_pipe_with_stdin, .timeout = 30)
{
    mlk_client *c = sandbox();
    struct collect s = {0};
    mlk_exec_opts *o = mlk_exec_opts_new();
    mlk_exec_opts_set_mode(o, MLK_EXEC_PIPE);
    mlk_exec_opts_set_stdin(o, "abc\0def", 7);
    mlk_exec_opts_set_callbacks(o, collect_output, collect_ready, &s);
    mlk_result *r = NULL;
    cr_assert_eq(mlk_exec(c, "cat; echo done >&2", o, &r), 0, "%s", mlk_result_message(r));
    cr_assert_eq(mlk_result_exit_code(r), 0);
    cr_assert_eq(s.ready, 1);
    cr_assert_eq(s.on, 7);
    cr_assert(memcmp(s.out, "abc\0def", 7) == 0);
    cr_assert_str_eq(s.err, "done\n");
    mlk_result_free(r);
    /* no stdin: EOF follows ready, so cat ends */
    mlk_exec_opts_free(o);
    o = mlk_exec_opts_new();
    mlk_exec_opts_set_mode(o, MLK_EXEC_PIPE);
    cr_assert_eq(mlk_exec(c, "cat", o, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    mlk_exec_opts_free(o);
    free(s.out);
    free(s.err);
    finish(c);
}

struct interactive {
    mlk_client *c;
    struct collect s;
    int status, done;
};

static void interactive_ready(void *ud, uint64_t op)
{
    struct interactive *it = ud;
    mlk_stdin_write(it->c, op, "line one\n", 9);
    mlk_stdin_write(it->c, op, "line two\n", 9);
    mlk_stdin_close(it->c, op);
}

static void interactive_output(void *ud, uint64_t op, int fd, const char *d, size_t n)
{
    collect_output(&((struct interactive *)ud)->s, op, fd, d, n);
}

static void interactive_done(void *ud, uint64_t op, const mlk_result *r)
{
    struct interactive *it = ud;
    it->status = mlk_result_status(r);
    it->done = 1;
}

Test(e2e, exec_pipe_interactive_async, .timeout = 30)
{
    mlk_client *c = sandbox();
    struct interactive it = {.c = c};
    mlk_exec_opts *o = mlk_exec_opts_new();
    mlk_exec_opts_set_mode(o, MLK_EXEC_PIPE);
    mlk_exec_opts_set_interactive_stdin(o, 1);
    mlk_exec_opts_set_callbacks(o, interactive_output, interactive_ready, &it);
    uint64_t op;
    cr_assert_eq(mlk_exec_async(c, "tr a-z A-Z", o, interactive_done, &it, &op), 0);
    mlk_exec_opts_free(o);
    while (!it.done) {
        mlk_dispatch(c, 0);
        usleep(2000);
    }
    cr_assert_eq(it.status, 0);
    cr_assert_str_eq(it.s.out, "LINE ONE\nLINE TWO\n");
    free(it.s.out);
    finish(c);
}

Test(e2e, exec_tty_size_and_output, .timeout = 30)
{
    mlk_client *c = sandbox();
    struct collect s = {0};
    mlk_exec_opts *o = mlk_exec_opts_new();
    mlk_exec_opts_set_mode(o, MLK_EXEC_TTY);
    mlk_exec_opts_set_tty_size(o, 33, 101);
    mlk_exec_opts_set_callbacks(o, collect_output, NULL, &s);
    mlk_result *r = NULL;
    cr_assert_eq(mlk_exec(c, "stty size; test -t 0 && echo is-a-tty", o, &r), 0, "%s", mlk_result_message(r));
    cr_assert_eq(mlk_result_exit_code(r), 0);
    cr_assert(s.out && strstr(s.out, "33 101"), "%s", s.out ? s.out : "(none)");
    cr_assert(strstr(s.out, "is-a-tty"), "%s", s.out);
    mlk_result_free(r);
    mlk_exec_opts_free(o);
    free(s.out);
    finish(c);
}

Test(e2e, files_write_read_list, .timeout = 30)
{
    mlk_client *c = sandbox();
    mlk_result *r = NULL;
    const char data[] = "bin\0ary\n";
    cr_assert_eq(mlk_write_file(c, "/tmp/t/x.bin", data, sizeof data - 1, 0600, 0, &r), 0, "%s",
                 mlk_result_message(r));
    mlk_result_free(r);
    cr_assert_eq(mlk_read_file(c, "/tmp/t/x.bin", 0, &r), 0, "%s", mlk_result_message(r));
    size_t n;
    const char *got = mlk_result_data(r, &n);
    cr_assert_eq(n, sizeof data - 1);
    cr_assert(memcmp(got, data, n) == 0);
    mlk_result_free(r);

    cr_assert_eq(mlk_exec(c, "stat -c %a /tmp/t/x.bin", NULL, &r), 0);
    got = mlk_result_stdout(r, &n);
    cr_assert(n >= 3 && memcmp(got, "600", 3) == 0, "%.*s", (int)n, got);
    mlk_result_free(r);

    cr_assert_eq(mlk_list_files(c, "/tmp/t", 0, &r), 0, "%s", mlk_result_message(r));
    const char *mp = mlk_result_msgpack(r, &n);
    cr_assert_not_null(mp);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    cr_assert_eq(msgpack_unpack_next(&u, mp, n, NULL), MSGPACK_UNPACK_SUCCESS);
    cr_assert_eq(u.data.type, MSGPACK_OBJECT_ARRAY);
    cr_assert_eq(u.data.via.array.size, 1);
    msgpack_object_map *m = &u.data.via.array.ptr[0].via.map;
    int saw_name = 0, saw_size = 0;
    for (uint32_t i = 0; i < m->size; i++) {
        msgpack_object *k = &m->ptr[i].key, *v = &m->ptr[i].val;
        if (k->via.str.size == 4 && !memcmp(k->via.str.ptr, "name", 4))
            saw_name = v->via.str.size == 5 && !memcmp(v->via.str.ptr, "x.bin", 5);
        if (k->via.str.size == 4 && !memcmp(k->via.str.ptr, "size", 4))
            saw_size = v->via.u64 == sizeof data - 1;
    }
    cr_assert(saw_name && saw_size);
    msgpack_unpacked_destroy(&u);
    mlk_result_free(r);

    cr_assert_eq(mlk_read_file(c, "/tmp/t/missing", 0, &r), MLK_ERPC);
    cr_assert_eq(mlk_result_rpc_code(r), -32002);
    mlk_result_free(r);
    finish(c);
}

Test(e2e, large_file_round_trip, .timeout = 60)
{
    mlk_client *c = sandbox();
    size_t n = 9 * 1024 * 1024 + 123; /* past the server's 10 MiB line once encoded */
    char *data = malloc(n);
    for (size_t i = 0; i < n; i++) data[i] = (char)(i * 131 + (i >> 9));
    mlk_result *r = NULL;
    cr_assert_eq(mlk_write_file(c, "/tmp/big.bin", data, n, 0, 0, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    cr_assert_eq(mlk_read_file(c, "/tmp/big.bin", 0, &r), 0, "%s", mlk_result_message(r));
    size_t got_n;
    const char *got = mlk_result_data(r, &got_n);
    cr_assert_eq(got_n, n);
    cr_assert(memcmp(got, data, n) == 0);
    mlk_result_free(r);
    /* the session survived */
    cr_assert_eq(mlk_exec(c, "true", NULL, &r), 0);
    mlk_result_free(r);
    free(data);
    finish(c);
}

/* A relative, oddly spelled path with shell syntax in it, too large for one
 * request line (so it goes through exec_pipe into `cat`): it lands at its
 * canonical path under the workspace, and the shell syntax stays a name. */
Test(e2e, large_write_to_a_hostile_relative_path, .timeout = 60)
{
    mlk_client *c = sandbox(); /* no workspace given: /workspace */
    mlk_result *r = NULL;
    cr_assert_eq(mlk_exec(c, "mkdir -p '/workspace/sub dir'", NULL, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    size_t n = 8 * 1024 * 1024 + 5;
    char *data = malloc(n);
    for (size_t i = 0; i < n; i++) data[i] = (char)(i * 7 + (i >> 11));
    const char *spelled = "./sub dir//it's $(touch pwned) `touch pwned`.bin";
    cr_assert_eq(mlk_write_file(c, spelled, data, n, 0, 0, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    cr_assert_eq(mlk_read_file(c, "/workspace/sub dir/it's $(touch pwned) `touch pwned`.bin", 0, &r), 0, "%s",
                 mlk_result_message(r));
    size_t got_n;
    const char *got = mlk_result_data(r, &got_n);
    cr_assert(got_n == n && memcmp(got, data, n) == 0, "the bytes landed at the canonical path");
    mlk_result_free(r);
    free(data);
    cr_assert_eq(mlk_exec(c, "test ! -e /pwned && test ! -e /workspace/pwned && test ! -e '/workspace/sub dir/pwned'",
                          NULL, &r), 0);
    cr_assert_eq(mlk_result_exit_code(r), 0, "the shell syntax in the name never ran");
    mlk_result_free(r);
    finish(c);
}

Test(e2e, timeout_and_cancel, .timeout = 30)
{
    mlk_client *c = sandbox();
    mlk_exec_opts *o = mlk_exec_opts_new();
    mlk_exec_opts_set_timeout_ms(o, 300);
    mlk_result *r = NULL;
    time_t t0 = time(NULL);
    cr_assert_eq(mlk_exec(c, "sleep 30", o, &r), MLK_ETIMEDOUT, "%s", mlk_result_message(r));
    mlk_result_free(r);
    mlk_exec_opts_free(o);

    struct interactive it = {.c = c};
    uint64_t op;
    cr_assert_eq(mlk_exec_async(c, "sleep 30", NULL, interactive_done, &it, &op), 0);
    usleep(100 * 1000);
    cr_assert_eq(mlk_cancel(c, op), 0);
    while (!it.done) {
        mlk_dispatch(c, 0);
        usleep(2000);
    }
    cr_assert_eq(it.status, MLK_ECANCELED);
    cr_assert(time(NULL) - t0 < 10);
    /* the session still works */
    cr_assert_eq(mlk_exec(c, "echo ok", NULL, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    finish(c);
}

struct thread_arg {
    mlk_client *c;
    int index, failures;
};

static void *exec_many(void *p)
{
    struct thread_arg *a = p;
    for (int i = 0; i < 15; i++) {
        char cmd[64], want[32];
        snprintf(cmd, sizeof cmd, "echo t%d-%d", a->index, i);
        snprintf(want, sizeof want, "t%d-%d\n", a->index, i);
        mlk_result *r = NULL;
        size_t n;
        if (mlk_exec(a->c, cmd, NULL, &r) != 0) a->failures++;
        else {
            const char *out = mlk_result_stdout(r, &n);
            if (n != strlen(want) || memcmp(out, want, n) != 0) a->failures++;
        }
        mlk_result_free(r);
    }
    return NULL;
}

Test(e2e, threads_share_one_client, .timeout = 60)
{
    mlk_client *c = sandbox();
    pthread_t th[4];
    struct thread_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (struct thread_arg){c, i, 0};
        pthread_create(&th[i], NULL, exec_many, &args[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(args[i].failures, 0, "thread %d had failures", i);
    }
    finish(c);
}

Test(e2e, close_remove_and_closed_errors, .timeout = 30)
{
    mlk_client *c = sandbox();
    char dir[512];
    e2e_vm_dir(dir, sizeof dir, NULL, mlk_client_vm_id(c));
    struct stat st;
    cr_assert_eq(stat(dir, &st), 0, "state dir %s", dir);
    mlk_result *r = NULL;
    cr_assert_eq(mlk_close(c, 0, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    cr_assert_eq(stat(dir, &st), 0, "close keeps the state dir");
    cr_assert_eq(mlk_exec(c, "true", NULL, &r), MLK_ECLOSED);
    cr_assert(strstr(mlk_result_message(r), "client closed"));
    mlk_result_free(r);
    cr_assert_eq(mlk_remove(c, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    cr_assert_neq(stat(dir, &st), 0, "rm deletes the state dir");
    mlk_client_free(c);
}

Test(e2e, remove_vm_after_the_client_is_freed, .timeout = 30)
{
    mlk_client *c = sandbox();
    char id[128], dir[512];
    snprintf(id, sizeof id, "%s", mlk_client_vm_id(c));
    e2e_vm_dir(dir, sizeof dir, NULL, id);
    mlk_result *r = NULL;
    cr_assert_eq(mlk_close(c, 0, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    mlk_client_free(c);
    struct stat st;
    cr_assert_eq(stat(dir, &st), 0, "close and free keep the state dir %s", dir);
    mlk_config *cfg = e2e_config();
    cr_assert_eq(mlk_remove_vm(cfg, id, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    cr_assert_neq(stat(dir, &st), 0, "rm deletes the state dir");
    /* the same failure mlk_remove reports: MLK_EREMOVE with the CLI's words */
    cr_assert_eq(mlk_remove_vm(cfg, id, &r), MLK_EREMOVE);
    cr_assert_eq(mlk_result_status(r), MLK_EREMOVE);
    cr_assert(mlk_result_message(r)[0] != 0);
    mlk_result_free(r);
    cr_assert_eq(mlk_remove_vm(cfg, "", &r), MLK_EINVAL);
    cr_assert(strstr(mlk_result_message(r), "vm_id is required"), "%s", mlk_result_message(r));
    mlk_result_free(r);
    cr_assert_eq(mlk_remove_vm(cfg, NULL, NULL), MLK_EINVAL);
    mlk_config_free(cfg);
}

Test(e2e, validation_fails_before_sending, .timeout = 30)
{
    mlk_config *cfg = e2e_config();
    mlk_client *c = NULL;
    cr_assert_eq(mlk_client_new(&c, cfg, NULL), 0);
    mlk_config_free(cfg);
    mlk_sandbox *sb = mlk_sandbox_new("");
    mlk_result *r = NULL;
    cr_assert_eq(mlk_create(c, sb, 0, &r), MLK_EIMAGE_REQUIRED);
    mlk_result_free(r);
    mlk_sandbox_free(sb);
    sb = mlk_sandbox_new("alpine:latest");
    cr_assert_eq(mlk_create(c, sb, 0, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    cr_assert_eq(mlk_create(c, sb, 0, &r), MLK_ESTATE);
    mlk_result_free(r);
    mlk_sandbox_free(sb);
    finish(c);
}

Test(e2e, volumes, .timeout = 30)
{
    mlk_config *cfg = e2e_config();
    mlk_result *r = NULL;
    cr_assert_eq(mlk_volume_create(cfg, "data1", 64, &r), 0, "%s", mlk_result_message(r));
    size_t n;
    cr_assert_not_null(mlk_result_msgpack(r, &n));
    mlk_result_free(r);
    cr_assert_eq(mlk_volume_list(cfg, &r), 0, "%s", mlk_result_message(r));
    const char *mp = mlk_result_msgpack(r, &n);
    cr_assert(mp && memmem(mp, n, "data1", 5), "volume listed");
    mlk_result_free(r);
    cr_assert_eq(mlk_volume_remove(cfg, "data1", &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    cr_assert_eq(mlk_volume_remove(cfg, "data1", &r), MLK_ECLI);
    mlk_result_free(r);
    mlk_config_free(cfg);
}

/* ---- hooks end to end (file events and the SDK's own file calls) ------- */

struct seen_files {
    char paths[16][128];
    int n;
};

static void record_after(void *ud, mlk_client *c, int kind, mlk_hook_call *call, const char *req, size_t len)
{
    struct seen_files *s = ud;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, req, len, NULL) == MSGPACK_UNPACK_SUCCESS && u.data.type == MSGPACK_OBJECT_MAP) {
        for (uint32_t i = 0; i < u.data.via.map.size; i++) {
            msgpack_object *k = &u.data.via.map.ptr[i].key, *v = &u.data.via.map.ptr[i].val;
            if (k->via.str.size == 4 && !memcmp(k->via.str.ptr, "path", 4) && s->n < 16)
                snprintf(s->paths[s->n++], 128, "%.*s", (int)v->via.str.size, v->via.str.ptr);
        }
    }
    msgpack_unpacked_destroy(&u);
}

static void answer_str(mlk_hook_call *call, const char *s)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_str_with_body(&pk, s, strlen(s));
    mlk_hook_reply(call, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

static void deny_env(void *ud, mlk_client *c, int kind, mlk_hook_call *call, const char *req, size_t len)
{
    answer_str(call, memmem(req, len, ".env", 4) ? "block" : "allow");
}

static void stamp(void *ud, mlk_client *c, int kind, mlk_hook_call *call, const char *req, size_t len)
{
    answer_str(call, "stamped by the host\n");
}

static char *one_rule(size_t *len, const char *key, const char *val)
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

Test(e2e, vfs_hooks_against_local_backend, .timeout = 60)
{
    E2E_NEEDS("cmd_file_events");
    mlk_config *cfg = e2e_config();
    mlk_client *c = NULL;
    cr_assert_eq(mlk_client_new(&c, cfg, NULL), 0);
    mlk_config_free(cfg);
    mlk_sandbox *sb = mlk_sandbox_new("alpine:latest");
    mlk_sandbox_set_workspace(sb, "/workspace");
    mlk_sandbox_mount_memory(sb, "/workspace");
    struct seen_files seen = {0};
    size_t n;
    char *rule = one_rule(&n, "path", "/workspace/*.txt");
    cr_assert_eq(mlk_sandbox_add_vfs_hook(sb, MLK_HOOK_VFS_DANGEROUS, rule, n, record_after, &seen), 0);
    free(rule);
    cr_assert_eq(mlk_sandbox_add_vfs_hook(sb, MLK_HOOK_VFS_ACTION, NULL, 0, deny_env, NULL), 0);
    rule = one_rule(&n, "path", "/workspace/stamp/*");
    cr_assert_eq(mlk_sandbox_add_vfs_hook(sb, MLK_HOOK_VFS_MUTATE, rule, n, stamp, NULL), 0);
    free(rule);
    mlk_result *r = NULL;
    cr_assert_eq(mlk_create(c, sb, 30000, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    mlk_sandbox_free(sb);

    /* an after-hook sees a file written by a command */
    cr_assert_eq(mlk_exec(c, "echo data > /workspace/from-cmd.txt", NULL, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    int found = 0;
    for (int i = 0; i < 300 && !found; i++) {
        mlk_dispatch(c, 0);
        for (int k = 0; k < seen.n; k++) found |= strcmp(seen.paths[k], "/workspace/from-cmd.txt") == 0;
        usleep(10000);
    }
    cr_assert(found, "after-hook saw %d events", seen.n);

    /* an action hook blocks write_file before anything is sent */
    cr_assert_eq(mlk_write_file(c, "/workspace/.env", "K=V", 3, 0, 0, &r), MLK_EVFS_BLOCKED);
    mlk_result_free(r);
    cr_assert_eq(mlk_exec(c, "test -e /workspace/.env", NULL, &r), 0);
    cr_assert_eq(mlk_result_exit_code(r), 1, "the blocked file does not exist");
    mlk_result_free(r);

    /* a mutate hook changes what lands in the file */
    cr_assert_eq(mlk_exec(c, "mkdir -p /workspace/stamp", NULL, &r), 0);
    mlk_result_free(r);
    cr_assert_eq(mlk_write_file(c, "/workspace/stamp/a", "original", 8, 0, 0, &r), 0, "%s", mlk_result_message(r));
    mlk_result_free(r);
    cr_assert_eq(mlk_exec(c, "cat /workspace/stamp/a", NULL, &r), 0);
    const char *out = mlk_result_stdout(r, &n);
    cr_assert(n == 20 && memcmp(out, "stamped by the host\n", 20) == 0, "%.*s", (int)n, out);
    mlk_result_free(r);
    finish(c);
}

/* ---- every operation has an async form ----------------------------------- */

struct async_seen {
    int status, done;
    char data[256];
    char msg[256];
};

static void async_record(void *ud, uint64_t op, const mlk_result *r)
{
    struct async_seen *s = ud;
    size_t n;
    const char *d = mlk_result_data(r, &n);
    s->status = mlk_result_status(r);
    snprintf(s->data, sizeof s->data, "%.*s", (int)n, d);
    snprintf(s->msg, sizeof s->msg, "%s", mlk_result_message(r));
    s->done = 1;
}

static void await(mlk_client *c, struct async_seen *s)
{
    for (int i = 0; i < 3000 && !s->done; i++) {
        mlk_dispatch(c, 0);
        usleep(2000);
    }
    cr_assert(s->done, "the async call completed");
}

Test(e2e, async_forms, .timeout = 60)
{
    mlk_config *cfg = e2e_config();
    mlk_client *c = NULL;
    cr_assert_eq(mlk_client_new(&c, cfg, NULL), 0);
    mlk_config_free(cfg);
    mlk_sandbox *sb = mlk_sandbox_new("alpine:latest");
    mlk_sandbox_add_port_forward(sb, "18931:18932");
    struct async_seen s = {0};
    uint64_t op;
    cr_assert_eq(mlk_create_async(c, sb, 30000, async_record, &s, &op), 0);
    mlk_sandbox_free(sb); /* the call copied what it needs */
    await(c, &s);
    cr_assert_eq(s.status, 0, "%s", s.msg);
    cr_assert(strncmp(s.data, "vm-", 3) == 0, "%s", s.data);

    memset(&s, 0, sizeof s);
    cr_assert_eq(mlk_log_async(c, 5000, async_record, &s, &op), 0);
    await(c, &s);
    cr_assert_eq(s.status, 0, "%s", s.msg);

    /* a normalisation failure arrives through done, with its message */
    memset(&s, 0, sizeof s);
    const char *none[] = {" , "};
    cr_assert_eq(mlk_allow_list_add_async(c, none, 1, 0, async_record, &s, &op), 0);
    await(c, &s);
    cr_assert_eq(s.status, MLK_EALLOW_LIST_HOSTS);
    cr_assert(s.msg[0]);

    memset(&s, 0, sizeof s);
    const char *bad[] = {"80abc"};
    cr_assert_eq(mlk_port_forward_async(c, bad, 1, NULL, 0, 0, async_record, &s, &op), 0);
    await(c, &s);
    cr_assert_eq(s.status, MLK_EPORT_FORWARD);

    memset(&s, 0, sizeof s);
    cr_assert_eq(mlk_volume_create_async(c, "async-vol", 8, async_record, &s, &op), 0);
    await(c, &s);
    cr_assert_eq(s.status, 0, "%s", s.msg);
    memset(&s, 0, sizeof s);
    cr_assert_eq(mlk_volume_remove_async(c, "async-vol", async_record, &s, &op), 0);
    await(c, &s);
    cr_assert_eq(s.status, 0, "%s", s.msg);

    memset(&s, 0, sizeof s);
    cr_assert_eq(mlk_close_async(c, 5, async_record, &s, &op), 0);
    await(c, &s);
    cr_assert_eq(s.status, 0, "%s", s.msg);
    uint64_t op2;
    cr_assert_eq(mlk_exec_async(c, "true", NULL, NULL, NULL, &op2), MLK_ECLOSED);

    memset(&s, 0, sizeof s);
    cr_assert_eq(mlk_remove_async(c, async_record, &s, &op), 0);
    await(c, &s);
    cr_assert_eq(s.status, 0, "%s", s.msg);
    mlk_client_free(c);
}
