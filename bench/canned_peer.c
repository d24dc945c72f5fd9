/* canned_peer.c - a stand-in for `matchlock rpc` that replays canned
 * protocol bytes as fast as it can, so benchmarks measure the client.
 *
 * Usage: canned_peer rpc      (the client starts it through
 * mlk_config_set_binary; argv[1] must be "rpc").
 *
 * It reads request lines on stdin and answers on stdout:
 *   create       -> {"id":"vm-bench0001"}
 *   exec         -> a buffered result (exit 0, stdout "ok\n")
 *   exec_stream  -> PEER_STREAM_BYTES decoded bytes of stdout as
 *                   notifications of PEER_CHUNK decoded bytes each, then
 *                   the result.  A command "stream BYTES [CHUNK]" overrides
 *                   both for that call.
 *   read_file    -> {"content":B64} of PEER_FILE_BYTES bytes, encoded once
 *                   at startup.
 *   close        -> {} and exit at stdin EOF.
 *   cancel       -> {} (nothing to cancel: everything is answered at once).
 *   anything else-> JSON-RPC error -32601.
 * Environment: PEER_STREAM_BYTES (default 64 MiB), PEER_CHUNK (default
 * 64 KiB), PEER_FILE_BYTES (default 1 MiB), PEER_PIPE_SZ (when set, the
 * stdout pipe is resized with F_SETPIPE_SZ; off by default so the pipe
 * is what a real server gets).
 *
 * Small answers are collected and written in one write() once no further
 * complete request line is waiting; streams and files go out in ~1 MiB
 * writes of pre-built lines.  The request parser is deliberately naive: it
 * relies on the line shape the library and the official SDKs write (it is
 * not a JSON parser). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static size_t b64_len(size_t n) { return (n + 2) / 3 * 4; }

static void b64_encode(const unsigned char *in, size_t n, char *out)
{
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *out++ = b64chars[v >> 18];
        *out++ = b64chars[(v >> 12) & 63];
        *out++ = b64chars[(v >> 6) & 63];
        *out++ = b64chars[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        *out++ = b64chars[v >> 18];
        *out++ = b64chars[(v >> 12) & 63];
        *out++ = '=';
        *out++ = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        *out++ = b64chars[v >> 18];
        *out++ = b64chars[(v >> 12) & 63];
        *out++ = b64chars[(v >> 6) & 63];
        *out++ = '=';
    }
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) { fprintf(stderr, "canned_peer: out of memory (%zu bytes)\n", n); exit(3); }
    return p;
}

/* deterministic filler bytes: byte i of any payload is (i * 131 + 7) & 255 */
static void fill(unsigned char *p, size_t n, size_t off)
{
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)((off + i) * 131 + 7);
}

static uint64_t env_u64(const char *name, uint64_t def)
{
    const char *s = getenv(name);
    if (!s || !*s) return def;
    char *e;
    unsigned long long v = strtoull(s, &e, 0);
    if (*e == 'k' || *e == 'K') v <<= 10;
    else if (*e == 'm' || *e == 'M') v <<= 20;
    else if (*e == 'g' || *e == 'G') v <<= 30;
    return v;
}

/* ---- output ---------------------------------------------------------- */

static char *ob;
static size_t ob_len, ob_cap;

static void write_all(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(1, p, n);
        if (k < 0) {
            if (errno == EINTR) continue;
            exit(0); /* the client went away */
        }
        p += k;
        n -= (size_t)k;
    }
}

static void ob_add(const char *p, size_t n)
{
    if (ob_len + n > ob_cap) {
        size_t cap = ob_cap ? ob_cap : 65536;
        while (cap < ob_len + n) cap *= 2;
        ob = realloc(ob, cap);
        if (!ob) exit(3);
        ob_cap = cap;
    }
    memcpy(ob + ob_len, p, n);
    ob_len += n;
}

static void ob_flush(void)
{
    if (ob_len) write_all(ob, ob_len);
    ob_len = 0;
}

/* ---- canned payloads --------------------------------------------------- */

static char *file_b64;           /* read_file content, encoded at startup */
static size_t file_b64_len;

typedef struct {
    size_t chunk;                /* decoded bytes per notification */
    char *batch;                 /* k copies of the notification line */
    size_t line_len, k;
    uint64_t id;
} stream_cache;

static stream_cache sc;

static int num_len(uint64_t v)
{
    char b[24];
    return snprintf(b, sizeof b, "%llu", (unsigned long long)v);
}

static size_t make_line(char *dst, uint64_t id, const char *b64, size_t b64n)
{
    int n = sprintf(dst, "{\"jsonrpc\":\"2.0\",\"method\":\"exec_stream.stdout\",\"params\":{\"id\":%llu,\"data\":\"",
                    (unsigned long long)id);
    memcpy(dst + n, b64, b64n);
    memcpy(dst + n + b64n, "\"}}\n", 4);
    return (size_t)n + b64n + 4;
}

static void build_batch(uint64_t id, size_t chunk)
{
    if (sc.batch && sc.chunk == chunk && sc.id == id) return;
    free(sc.batch);
    size_t bl = b64_len(chunk);
    unsigned char *raw = xmalloc(chunk);
    fill(raw, chunk, 0);
    char *b64 = xmalloc(bl);
    b64_encode(raw, chunk, b64);
    size_t line = 80 + (size_t)num_len(id) + bl;
    size_t k = (1u << 20) / line;
    if (k == 0) k = 1;
    sc.batch = xmalloc(k * line);
    size_t off = 0;
    for (size_t i = 0; i < k; i++) off += make_line(sc.batch + off, id, b64, bl);
    sc.line_len = off / k;
    sc.k = k;
    sc.chunk = chunk;
    sc.id = id;
    free(raw);
    free(b64);
}

static void do_stream(uint64_t id, uint64_t total, size_t chunk)
{
    ob_flush();
    if (chunk == 0) chunk = 65536;
    if (total > 0) {
        build_batch(id, chunk);
        uint64_t lines = total / chunk;
        while (lines >= sc.k) {
            write_all(sc.batch, sc.k * sc.line_len);
            lines -= sc.k;
        }
        if (lines) write_all(sc.batch, (size_t)lines * sc.line_len);
        size_t rest = (size_t)(total % chunk);
        if (rest) {
            unsigned char *raw = xmalloc(rest);
            fill(raw, rest, 0);
            char *b64 = xmalloc(b64_len(rest));
            b64_encode(raw, rest, b64);
            char *l = xmalloc(100 + b64_len(rest));
            write_all(l, make_line(l, id, b64, b64_len(rest)));
            free(l);
            free(b64);
            free(raw);
        }
    }
    char tail[128];
    int n = snprintf(tail, sizeof tail, "{\"jsonrpc\":\"2.0\",\"result\":{\"exit_code\":0,\"duration_ms\":1},\"id\":%llu}\n",
                     (unsigned long long)id);
    ob_add(tail, (size_t)n);
}

static void do_read_file(uint64_t id)
{
    static const char head[] = "{\"jsonrpc\":\"2.0\",\"result\":{\"content\":\"";
    char tail[64];
    int n = snprintf(tail, sizeof tail, "\"},\"id\":%llu}\n", (unsigned long long)id);
    ob_add(head, sizeof head - 1);
    ob_flush();
    write_all(file_b64, file_b64_len);
    ob_add(tail, (size_t)n);
}

/* ---- request lines ------------------------------------------------------ */

/* The top-level id: the library writes it before "params" (requests) or
 * as the last member (cancel).  0 when the line has none. */
static uint64_t line_id(const char *l, const char *end)
{
    const char *params = memmem(l, (size_t)(end - l), "\"params\":", 9);
    const char *p = memmem(l, (size_t)((params ? params : end) - l), "\"id\":", 5);
    if (!p && params) {
        /* last ,"id": in the line */
        for (const char *q = end - 5; q > params; q--)
            if (memcmp(q, ",\"id\":", 6) == 0) { p = q + 1; break; }
    }
    if (!p) return 0;
    return strtoull(p + 5, NULL, 10);
}

/* The string value of "key": (blanks after the colon allowed: Python's
 * json.dumps, which the official Python SDK uses, writes `"key": "v"`). */
static int str_field(const char *l, const char *end, const char *key, char *out, size_t cap)
{
    char pat[64];
    int n = snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = memmem(l, (size_t)(end - l), pat, (size_t)n);
    if (!p) return -1;
    p += n;
    while (p < end && (*p == ' ' || *p == '\t')) p++;
    if (p >= end || *p != '"') return -1;
    p++;
    size_t i = 0;
    while (p < end && *p != '"' && i + 1 < cap) out[i++] = *p++;
    out[i] = '\0';
    return 0;
}

static void answer(const char *l, const char *end, uint64_t def_stream, size_t def_chunk)
{
    char method[64], cmd[256];
    if (str_field(l, end, "method", method, sizeof method) != 0) return;
    uint64_t id = line_id(l, end);
    if (id == 0) return; /* a notification (stdin, resize): nothing to say */
    char buf[256];
    int n;
    if (strcmp(method, "exec") == 0) {
        n = snprintf(buf, sizeof buf,
                     "{\"jsonrpc\":\"2.0\",\"result\":{\"exit_code\":0,\"stdout\":\"b2sK\",\"stderr\":\"\",\"duration_ms\":0},\"id\":%llu}\n",
                     (unsigned long long)id);
    } else if (strcmp(method, "exec_stream") == 0) {
        uint64_t total = def_stream;
        size_t chunk = def_chunk;
        if (str_field(l, end, "command", cmd, sizeof cmd) == 0 && strncmp(cmd, "stream ", 7) == 0) {
            char *e;
            total = strtoull(cmd + 7, &e, 10);
            unsigned long long ch = strtoull(e, NULL, 10);
            if (ch) chunk = (size_t)ch;
        }
        do_stream(id, total, chunk);
        return;
    } else if (strcmp(method, "read_file") == 0) {
        do_read_file(id);
        return;
    } else if (strcmp(method, "create") == 0) {
        n = snprintf(buf, sizeof buf, "{\"jsonrpc\":\"2.0\",\"result\":{\"id\":\"vm-bench0001\"},\"id\":%llu}\n",
                     (unsigned long long)id);
    } else if (strcmp(method, "close") == 0 || strcmp(method, "cancel") == 0) {
        n = snprintf(buf, sizeof buf, "{\"jsonrpc\":\"2.0\",\"result\":{},\"id\":%llu}\n", (unsigned long long)id);
    } else {
        n = snprintf(buf, sizeof buf,
                     "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32601,\"message\":\"method not found\"},\"id\":%llu}\n",
                     (unsigned long long)id);
    }
    ob_add(buf, (size_t)n);
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "rpc") != 0) {
        fprintf(stderr, "usage: %s rpc\n", argv[0]);
        return 2;
    }
    uint64_t stream_bytes = env_u64("PEER_STREAM_BYTES", 64u << 20);
    size_t chunk = (size_t)env_u64("PEER_CHUNK", 64u << 10);
    uint64_t file_bytes = env_u64("PEER_FILE_BYTES", 1u << 20);
    uint64_t pipe_sz = env_u64("PEER_PIPE_SZ", 0);
#ifdef F_SETPIPE_SZ
    if (pipe_sz) fcntl(1, F_SETPIPE_SZ, (int)pipe_sz);
#endif
    {
        unsigned char *raw = xmalloc(file_bytes);
        fill(raw, file_bytes, 0);
        file_b64_len = b64_len(file_bytes);
        file_b64 = xmalloc(file_b64_len);
        b64_encode(raw, file_bytes, file_b64);
        free(raw);
    }

    size_t cap = 1 << 20, len = 0;
    char *in = xmalloc(cap);
    for (;;) {
        if (len == cap) { cap *= 2; in = realloc(in, cap); if (!in) return 3; }
        ssize_t k = read(0, in + len, cap - len);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        len += (size_t)k;
        size_t start = 0;
        for (;;) {
            char *nl = memchr(in + start, '\n', len - start);
            if (!nl) break;
            answer(in + start, nl, stream_bytes, chunk);
            start = (size_t)(nl - in) + 1;
        }
        memmove(in, in + start, len - start);
        len -= start;
        ob_flush(); /* everything that arrived so far is answered: one write */
    }
    ob_flush();
    return 0;
}
