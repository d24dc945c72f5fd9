/* c_client.c - the floor: a minimal blocking C client on libmatchlock
 * against the canned peer.  Prints "exec_us <µs per round trip>" and
 * "stream_gbps <GB/s>". */
#include "matchlock.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void count(void *ud, uint64_t op, int fd, const char *data, size_t len) { *(size_t *)ud += len; }

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 20000;
    mlk_client *c;
    mlk_result *r = NULL;
    if (mlk_client_new(&c, NULL, &r) != 0) { fprintf(stderr, "client: %s\n", mlk_result_message(r)); return 1; }
    mlk_result_free(r);
    mlk_sandbox *sb = mlk_sandbox_new("bench");
    if (mlk_create(c, sb, 0, &r) != 0) { fprintf(stderr, "create: %s\n", mlk_result_message(r)); return 1; }
    mlk_result_free(r);
    for (int i = 0; i < 1000; i++) { mlk_exec(c, "true", NULL, &r); mlk_result_free(r); }
    double t = now();
    for (int i = 0; i < n; i++) { mlk_exec(c, "true", NULL, &r); mlk_result_free(r); }
    printf("exec_us %.2f\n", (now() - t) / n * 1e6);
    size_t got = 0;
    mlk_exec_opts *o = mlk_exec_opts_new();
    mlk_exec_opts_set_mode(o, MLK_EXEC_STREAM);
    mlk_exec_opts_set_callbacks(o, count, NULL, &got);
    t = now();
    mlk_exec(c, "stream", o, &r);
    double dt = now() - t;
    mlk_result_free(r);
    printf("stream_gbps %.3f\n", got / dt / 1e9);
    mlk_exec_opts_free(o);
    mlk_close(c, 0, NULL);
    mlk_client_free(c);
    mlk_sandbox_free(sb);
    return 0;
}
