/* bench_codec.c - the core's wire codec alone, on one thread: parsing a
 * stream notification line (jd_parse) and decoding its base64 field
 * (b64_decode), the work the I/O thread does per chunk of streamed output.
 * Not a test; uses the core's private codec (core/json.h).
 *
 *   bench_codec [REPS]
 *
 * The line is {"jsonrpc":"2.0","method":"exec_stream.stdout",
 * "params":{"id":7,"data":"<base64>"}} for 64 KiB and 1 MiB payloads.
 * Figures are line bytes per second (GB = 1e9) so they compare with the
 * parser figures in ARCHITECTURE.md "Wire codec". */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Build the line for `raw` payload bytes; *len is its length. */
static char *make_line(size_t raw, size_t *len)
{
    unsigned char *p = malloc(raw);
    for (size_t i = 0; i < raw; i++) p[i] = (unsigned char)(i * 131 + 7);
    size_t bl = b64_encoded_len(raw);
    static const char head[] = "{\"jsonrpc\":\"2.0\",\"method\":\"exec_stream.stdout\",\"params\":{\"id\":7,\"data\":\"";
    static const char tail[] = "\"}}";
    char *l = malloc(sizeof head + bl + sizeof tail + 1);
    memcpy(l, head, sizeof head - 1);
    b64_encode(p, raw, l + sizeof head - 1);
    memcpy(l + sizeof head - 1 + bl, tail, sizeof tail);
    *len = sizeof head - 1 + bl + sizeof tail - 1;
    free(p);
    return l;
}

static double rates[3][2][100];

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 7;
    if (reps < 1 || reps > 99) reps = 7;
    static const size_t sizes[] = {64 * 1024, 1024 * 1024};
    printf("%-10s %18s %18s %18s\n", "payload", "parse (jd_parse)", "decode (b64)", "parse+decode");
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t len;
        char *line = make_line(sizes[k], &len);
        char *work = malloc(len + 1);
        jdoc d;
        jd_init(&d);
        /* iterations so that each rep handles about 256 MB of line */
        long it = (long)(256e6 / (double)len) + 1;
        double gp[100], gd[100], gb[100];
        for (int r = 0; r < reps; r++) {
            double tp = 0, td = 0;
            for (long i = 0; i < it; i++) {
                memcpy(work, line, len); /* parsing is in place */
                double t0 = now_s();
                if (jd_parse(&d, work, len) != 0) { fprintf(stderr, "parse failed: %s\n", d.err); return 1; }
                const jnode *data = jd_get(&d, jd_get(&d, jd_root(&d), "params"), "data");
                double t1 = now_s();
                long long n = b64_decode(data->s, data->len, (unsigned char *)data->s);
                double t2 = now_s();
                if (n != (long long)sizes[k]) { fprintf(stderr, "decode failed\n"); return 1; }
                tp += t1 - t0;
                td += t2 - t1;
            }
            gp[r] = (double)len * (double)it / tp / 1e9;
            gd[r] = (double)len * (double)it / td / 1e9;
            gb[r] = (double)len * (double)it / (tp + td) / 1e9;
        }
        qsort(gp, (size_t)reps, sizeof *gp, cmp_d);
        qsort(gd, (size_t)reps, sizeof *gd, cmp_d);
        qsort(gb, (size_t)reps, sizeof *gb, cmp_d);
        printf("%7zu KiB %13.2f GB/s %13.2f GB/s %13.2f GB/s\n", sizes[k] >> 10, gp[reps / 2], gd[reps / 2],
               gb[reps / 2]);
        jd_free(&d);
        free(work);
        free(line);
    }
    printf("(medians of %d reps; line bytes per second; one thread; b64_decode is the %s decoder)\n", reps,
           b64_decode_name());

    /* each decoder b64_decode can choose, in base64 bytes per second, the
     * order rotating every rep */
    static const char *names[] = {"portable", "ssse3", "avx2"};
    enum { ND = sizeof names / sizeof names[0] };
    printf("\n%-10s", "decoder");
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) printf(" %11zu KiB", sizes[k] >> 10);
    printf("   (base64 bytes per second, in place)\n");
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t raw = sizes[k], bl = b64_encoded_len(raw);
        unsigned char *p = malloc(raw);
        for (size_t i = 0; i < raw; i++) p[i] = (unsigned char)(i * 131 + 7);
        char *enc = malloc(bl), *work = malloc(bl);
        b64_encode(p, raw, enc);
        long it = (long)(256e6 / (double)bl) + 1;
        for (int r = 0; r < reps; r++) {
            for (int j = 0; j < ND; j++) {
                int d = (j + r) % ND;
                b64_decoder dec = b64_decoder_get(names[d]);
                if (!dec) continue;
                double t = 0;
                for (long i = 0; i < it; i++) {
                    memcpy(work, enc, bl);
                    double t0 = now_s();
                    if (dec(work, bl, (unsigned char *)work) != (long long)raw) { fprintf(stderr, "decode failed\n"); return 1; }
                    t += now_s() - t0;
                }
                rates[d][k][r] = (double)bl * (double)it / t / 1e9;
            }
        }
        free(p);
        free(enc);
        free(work);
    }
    for (int d = 0; d < ND; d++) {
        printf("%-10s", names[d]);
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            if (!b64_decoder_get(names[d])) { printf(" %15s", "(not on this CPU)"); continue; }
            qsort(rates[d][k], (size_t)reps, sizeof(double), cmp_d);
            printf(" %10.2f GB/s", rates[d][k][reps / 2]);
        }
        printf("\n");
    }
    return 0;
}
