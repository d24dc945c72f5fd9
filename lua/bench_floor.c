/* bench_floor.c - the floor for lua/bench.lua: the same calls from a
 * minimal blocking C client (exec round trip; streamed stdout counted in a
 * C callback).  cc -O2 -I abi/include lua/bench_floor.c -L build -lmatchlock
 *   MATCHLOCK_BIN=build/matchlock-local ./a.out [N] [MiB] */
#include "matchlock.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
static size_t got;
static void on_out(void *ud, uint64_t op, int fd, const char *d, size_t n) { got += n; }

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 2000, mib = argc > 2 ? atoi(argv[2]) : 512;
    mlk_client *c; mlk_result *r = NULL;
    if (mlk_client_new(&c, NULL, &r) != 0) { fprintf(stderr, "%s\n", mlk_result_message(r)); return 1; }
    mlk_result_free(r);
    mlk_sandbox *sb = mlk_sandbox_new("alpine:latest");
    if (mlk_create(c, sb, 0, &r) != 0) { fprintf(stderr, "%s\n", mlk_result_message(r)); return 1; }
    mlk_result_free(r);
    for (int i = 0; i < 50; i++) { mlk_exec(c, "true", NULL, &r); mlk_result_free(r); }
    double t0 = now();
    for (int i = 0; i < n; i++) { mlk_exec(c, "true", NULL, &r); mlk_result_free(r); }
    printf("C exec round trip: %.1f us (%d calls)\n", (now() - t0) / n * 1e6, n);
    mlk_exec_opts *o = mlk_exec_opts_new();
    mlk_exec_opts_set_mode(o, MLK_EXEC_STREAM);
    mlk_exec_opts_set_callbacks(o, on_out, NULL, NULL);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "head -c %d /dev/zero", mib * 1048576);
    t0 = now();
    mlk_exec(c, cmd, o, &r);
    double dt = now() - t0;
    mlk_result_free(r);
    printf("C streamed stdout to a C callback: %.2f GB/s (%zu MiB)\n", got / dt / 1e9, got >> 20);
    mlk_close(c, 0, NULL);
    mlk_remove(c, NULL);
    mlk_client_free(c);
    mlk_sandbox_free(sb);
    mlk_exec_opts_free(o);
    return 0;
}
