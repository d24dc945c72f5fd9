/* Regression tests for what the libFuzzer targets (tests/fuzz/) found.
 * Each input that crashed a target is also kept in
 * tests/fuzz/regressions/<target>/ and replayed by every fuzz run. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "matchlock.h"

static void hook_cb(void *ud, mlk_client *c, int kind, mlk_hook_call *call, const char *req, size_t len)
{
    (void)ud; (void)c; (void)kind; (void)call; (void)req; (void)len;
}

/* fuzz_options, msgpack-map32-huge-count: a few bytes declaring a map or
 * array of 2^32 - 1 elements made msgpack-c allocate the elements (tens of
 * GiB) before finding the bytes missing; AddressSanitizer aborted, a plain
 * build asked the kernel for the memory.  Now the declared counts are
 * checked against the bytes first (core/mpconv.c mp_shape_ok). */
Test(fuzz_regress, msgpack_counts_larger_than_the_input_are_refused)
{
    static const struct { const char *bytes; size_t len; } docs[] = {
        {"\xdf\xff\xff\xff\xff", 5},                         /* map32, 2^32-1 pairs */
        {"\xdd\xff\xff\xff\xff", 5},                         /* array32 */
        {"\x81\xa4rules\xdd\x7f\xff\xff\xff\x90", 12},      /* inside a valid map */
        {"\x81\xa3" "env\xde\xff\xff", 7},                    /* map16, truncated */
        {"\xdb\xff\xff\xff\xff" "abc", 8},                  /* str32 longer than the input */
        {"\x01\x02\x20\xf7\x5d\x20\xdf\xdf\xdf\x76\x31\x35", 12}, /* the fuzzer's input bytes */
        {"\xc1", 1},                                         /* never-used type byte */
        {"\x80\x80", 2},                                     /* two objects, not one */
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        const char *b = docs[i].bytes;
        size_t n = docs[i].len;
        mlk_sandbox *sb = mlk_sandbox_new("alpine:latest");
        cr_assert_neq(mlk_sandbox_set_env_map(sb, b, n), 0, "env map %zu", i);
        mlk_sandbox_free(sb);
        sb = mlk_sandbox_new("alpine:latest");
        cr_assert_neq(mlk_sandbox_set_image_config(sb, b, n), 0, "image config %zu", i);
        mlk_sandbox_free(sb);
        sb = mlk_sandbox_new("alpine:latest");
        cr_assert_neq(mlk_sandbox_set_network_interception(sb, b, n), 0, "interception %zu", i);
        mlk_sandbox_free(sb);
        sb = mlk_sandbox_new("alpine:latest");
        cr_assert_neq(mlk_sandbox_set_vfs_interception(sb, b, n), 0, "vfs %zu", i);
        mlk_sandbox_free(sb);
        sb = mlk_sandbox_new("alpine:latest");
        cr_assert_neq(mlk_sandbox_add_network_hook(sb, b, n, hook_cb, NULL), 0, "net hook %zu", i);
        cr_assert_neq(mlk_sandbox_add_vfs_hook(sb, MLK_HOOK_VFS_AFTER, b, n, hook_cb, NULL), 0, "vfs hook %zu", i);
        mlk_sandbox_free(sb);
    }
    /* well-formed documents of every type byte still pass */
    static const char ok[] = "\x8f" "\xa1" "a\xc0" "\xa1" "b\xc3" "\xa1" "c\xcc\xff" "\xa1" "d\xd3\x80\0\0\0\0\0\0\0"
                             "\xa1" "e\xcb\x3f\xf0\0\0\0\0\0\0" "\xa1" "f\xc4\x01x" "\xa1" "g\xd9\x01y"
                             "\xa1" "h\xdc\x00\x01\x01" "\xa1" "i\xde\x00\x00" "\xa1" "j\xd4\x01\x02"
                             "\xa1" "k\xc7\x01\x05z" "\xa1" "l\xd8\x01" "0123456789abcdef" "\xa1" "m\xe0"
                             "\xa1" "n\xca\0\0\0\0" "\xa1" "o\x91\x80";
    mlk_sandbox *sb = mlk_sandbox_new("alpine:latest");
    /* an image config with unknown keys of every type: the shape is fine,
     * whatever the setter thinks of the values */
    int rc = mlk_sandbox_set_image_config(sb, ok, sizeof ok - 1);
    cr_assert(rc == 0 || rc == MLK_EINVAL, "rc %d", rc);
    mlk_sandbox_free(sb);
    sb = mlk_sandbox_new("alpine:latest");
    static const char env[] = "\x82\xa1" "A\xa1" "1\xa1" "B\xd9\x02" "22";
    cr_assert_eq(mlk_sandbox_set_env_map(sb, env, sizeof env - 1), 0);
    char *json = NULL;
    cr_assert_eq(mlk_sandbox_params_json(sb, 0, &json, NULL, NULL), 0);
    cr_assert(strstr(json, "\"B\":\"22\""), "%s", json);
    mlk_free(json);
    mlk_sandbox_free(sb);
}
