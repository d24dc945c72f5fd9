/* peer.c - a canned `matchlock rpc` peer for benchmarks.
 *
 * Answers create, exec, exec_stream and close from canned data, as fast as
 * it can read requests: the cost measured is the client's.  exec_stream
 * sends $BENCH_STREAM_BYTES (default 64 MiB) of stdout in chunks of
 * $BENCH_CHUNK bytes (default 256 KiB) before its result. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *b64_encode(const unsigned char *in, size_t n, size_t *outlen)
{
    char *o = malloc((n + 2) / 3 * 4 + 1), *p = o;
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        unsigned v = in[i] << 16 | in[i + 1] << 8 | in[i + 2];
        *p++ = b64[v >> 18]; *p++ = b64[v >> 12 & 63]; *p++ = b64[v >> 6 & 63]; *p++ = b64[v & 63];
    }
    if (i < n) {
        unsigned v = in[i] << 16 | (i + 1 < n ? in[i + 1] << 8 : 0);
        *p++ = b64[v >> 18]; *p++ = b64[v >> 12 & 63];
        *p++ = i + 1 < n ? b64[v >> 6 & 63] : '=';
        *p++ = '=';
    }
    *outlen = (size_t)(p - o);
    return o;
}

/* The value after the last `"key"` followed by ':' (JSON with or without spaces). */
static const char *after_key(const char *line, const char *key)
{
    const char *found = NULL;
    size_t kl = strlen(key);
    for (const char *p = line; (p = strstr(p, key)); p += kl) {
        const char *v = p + kl;
        while (*v == ' ') v++;
        if (*v != ':') continue;
        v++;
        while (*v == ' ') v++;
        found = v;
    }
    return found;
}

static unsigned long long get_id(const char *line)
{
    /* the request id is the last "id" key (params may hold another) */
    const char *v = after_key(line, "\"id\"");
    return v ? strtoull(v, NULL, 10) : 0;
}

static int is_method(const char *line, const char *m)
{
    const char *v = after_key(line, "\"method\"");
    size_t n = strlen(m);
    return v && v[0] == '"' && strncmp(v + 1, m, n) == 0 && v[1 + n] == '"';
}

int main(void)
{
    size_t total = getenv("BENCH_STREAM_BYTES") ? strtoull(getenv("BENCH_STREAM_BYTES"), 0, 10) : 64u << 20;
    size_t chunk = getenv("BENCH_CHUNK") ? strtoull(getenv("BENCH_CHUNK"), 0, 10) : 256u << 10;
    unsigned char *raw = malloc(chunk);
    for (size_t i = 0; i < chunk; i++) raw[i] = (unsigned char)('a' + i % 26);
    size_t enc_len;
    char *enc = b64_encode(raw, chunk, &enc_len);
    setvbuf(stdout, NULL, _IOFBF, 1 << 20);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, stdin)) > 0) {
        unsigned long long id = get_id(line);
        if (is_method(line, "create")) {
            printf("{\"jsonrpc\":\"2.0\",\"result\":{\"id\":\"vm-bench\"},\"id\":%llu}\n", id);
        } else if (is_method(line, "exec_stream")) {
            for (size_t sent = 0; sent < total; sent += chunk)
                printf("{\"jsonrpc\":\"2.0\",\"method\":\"exec_stream.stdout\",\"params\":{\"id\":%llu,\"data\":\"%s\"}}\n",
                       id, enc);
            printf("{\"jsonrpc\":\"2.0\",\"result\":{\"exit_code\":0,\"duration_ms\":0},\"id\":%llu}\n", id);
        } else if (is_method(line, "exec")) {
            printf("{\"jsonrpc\":\"2.0\",\"result\":{\"exit_code\":0,\"stdout\":\"b2sK\",\"stderr\":\"\",\"duration_ms\":0},\"id\":%llu}\n", id);
        } else if (is_method(line, "close")) {
            printf("{\"jsonrpc\":\"2.0\",\"result\":{},\"id\":%llu}\n", id);
            fflush(stdout);
            return 0;
        } else if (is_method(line, "cancel")) {
            printf("{\"jsonrpc\":\"2.0\",\"result\":{\"cancelled\":false},\"id\":%llu}\n", id);
        } else if (id) {
            printf("{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32601,\"message\":\"not in the canned peer\"},\"id\":%llu}\n", id);
        }
        fflush(stdout);
    }
    return 0;
}
