/* json.c - writer, base64 and in-place parser (see json.h). */
#include "json.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ===================================================================== */
/* writer                                                                 */

void jw_init(jw *w) { memset(w, 0, sizeof *w); }
void jw_free(jw *w)
{
    if (w->secret) secret_wipe(w->buf, w->cap);
    free(w->buf);
    memset(w, 0, sizeof *w);
}

void jw_reset(jw *w)
{
    if (w->secret) secret_wipe(w->buf, w->len);
    w->len = 0;
    w->depth = 0;
    w->oom = 0;
    w->need_comma[0] = 0;
}

char *jw_take(jw *w, size_t *len)
{
    if (jw_reserve(w, 1) != 0) return NULL;
    w->buf[w->len] = '\0';
    char *p = w->buf;
    if (len) *len = w->len;
    memset(w, 0, sizeof *w);
    return p;
}

int jw_reserve(jw *w, size_t extra)
{
    if (w->oom) return -1;
    if (w->len + extra + 1 <= w->cap) return 0;
    size_t cap = w->cap ? w->cap : 256;
    while (cap < w->len + extra + 1) {
        if (cap > SIZE_MAX / 2) { w->oom = 1; return -1; }
        cap *= 2;
    }
    char *p;
    if (w->secret) { /* realloc could leave the old bytes behind in a freed block */
        p = malloc(cap);
        if (!p) { w->oom = 1; return -1; }
        if (w->buf) {
            memcpy(p, w->buf, w->len);
            secret_wipe(w->buf, w->cap);
            free(w->buf);
        }
    } else {
        p = realloc(w->buf, cap);
        if (!p) { w->oom = 1; return -1; }
    }
    w->buf = p;
    w->cap = cap;
    return 0;
}

void jw_raw(jw *w, const char *s, size_t n)
{
    if (jw_reserve(w, n) != 0) return;
    memcpy(w->buf + w->len, s, n);
    w->len += n;
}

static inline void put(jw *w, char c)
{
    if (jw_reserve(w, 1) != 0) return;
    w->buf[w->len++] = c;
}

/* Before a value or key: a comma when this is not the first item. */
static void sep(jw *w)
{
    if (w->need_comma[w->depth] == 1) put(w, ',');
    w->need_comma[w->depth] = 1;
}

static void value_start(jw *w)
{
    if (w->need_comma[w->depth] == 2) { w->need_comma[w->depth] = 1; return; }
    sep(w);
}

static void open(jw *w, char c)
{
    value_start(w);
    put(w, c);
    if (w->depth < 63) w->depth++;
    w->need_comma[w->depth] = 0;
}

void jw_obj(jw *w) { open(w, '{'); }
void jw_arr(jw *w) { open(w, '['); }
void jw_obj_end(jw *w) { if (w->depth > 0) w->depth--; put(w, '}'); }
void jw_arr_end(jw *w) { if (w->depth > 0) w->depth--; put(w, ']'); }

void jw_key(jw *w, const char *key)
{
    sep(w);
    size_t n = strlen(key);
    if (jw_reserve(w, n + 3) != 0) return;
    w->buf[w->len++] = '"';
    memcpy(w->buf + w->len, key, n);
    w->len += n;
    w->buf[w->len++] = '"';
    w->buf[w->len++] = ':';
    w->need_comma[w->depth] = 2;
}

void jw_strn(jw *w, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    value_start(w);
    if (jw_reserve(w, n + 2) != 0) return;
    w->buf[w->len++] = '"';
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        jw_raw(w, s + start, i - start);
        start = i + 1;
        switch (c) {
        case '"': jw_raw(w, "\\\"", 2); break;
        case '\\': jw_raw(w, "\\\\", 2); break;
        case '\n': jw_raw(w, "\\n", 2); break;
        case '\r': jw_raw(w, "\\r", 2); break;
        case '\t': jw_raw(w, "\\t", 2); break;
        default: {
            char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            jw_raw(w, u, 6);
        }
        }
    }
    jw_raw(w, s + start, n - start);
    put(w, '"');
}

void jw_str(jw *w, const char *s)
{
    if (!s) { jw_null(w); return; }
    jw_strn(w, s, strlen(s));
}

void jw_int(jw *w, int64_t v)
{
    char b[32];
    value_start(w);
    int n = snprintf(b, sizeof b, "%lld", (long long)v);
    jw_raw(w, b, (size_t)n);
}

void jw_uint(jw *w, uint64_t v)
{
    char b[32];
    value_start(w);
    int n = snprintf(b, sizeof b, "%llu", (unsigned long long)v);
    jw_raw(w, b, (size_t)n);
}

void jw_double(jw *w, double v)
{
    char b[40];
    value_start(w);
    if (!isfinite(v)) { jw_raw(w, "null", 4); return; }
    if (fabs(v) < 1e15 && v == (double)(int64_t)v) { /* range first: the cast of a huge value is undefined */
        int n = snprintf(b, sizeof b, "%lld", (long long)v);
        jw_raw(w, b, (size_t)n);
        return;
    }
    int n = snprintf(b, sizeof b, "%.17g", v);
    /* shortest form that round-trips */
    for (int p = 1; p < 17; p++) {
        char t[40];
        int m = snprintf(t, sizeof t, "%.*g", p, v);
        if (strtod(t, NULL) == v) { memcpy(b, t, (size_t)m + 1); n = m; break; }
    }
    jw_raw(w, b, (size_t)n);
}

void jw_bool(jw *w, int v)
{
    value_start(w);
    if (v) jw_raw(w, "true", 4); else jw_raw(w, "false", 5);
}

void jw_null(jw *w)
{
    value_start(w);
    jw_raw(w, "null", 4);
}

void jw_value(jw *w, const char *json, size_t n)
{
    value_start(w);
    jw_raw(w, json, n);
}

void jw_nl(jw *w) { put(w, '\n'); }

/* ===================================================================== */
/* base64                                                                 */

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t b64_encoded_len(size_t n) { return (n + 2) / 3 * 4; }

void b64_encode(const unsigned char *in, size_t n, char *out)
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

static signed char b64rev[256];
/* The decoder's tables: b64d[k][c] is the 6-bit value of c as the k-th
 * character of a group, placed where it lands in the group's three output
 * bytes (output byte j in bits 8j..8j+7), so OR-ing the four lookups gives
 * the three bytes at once.  Invalid characters set bit 24 (B64_BAD). */
#define B64_BAD 0x01000000u
static uint32_t b64d[4][256];
static void b64_fill(void)
{
    memset(b64rev, -1, sizeof b64rev);
    for (int i = 0; i < 64; i++) b64rev[(unsigned char)b64chars[i]] = (signed char)i;
    for (int c = 0; c < 256; c++) {
        for (int k = 0; k < 4; k++) {
            if (b64rev[c] < 0) { b64d[k][c] = B64_BAD; continue; }
            uint32_t v = (uint32_t)b64rev[c] << (18 - 6 * k);  /* the group as a 24-bit number */
            b64d[k][c] = (v >> 16 & 0xff) | (v & 0xff00) | (v & 0xff) << 16;
        }
    }
}

static pthread_once_t b64_once = PTHREAD_ONCE_INIT;
static void b64_init(void) { pthread_once(&b64_once, b64_fill); }

void jw_b64(jw *w, const void *data, size_t n)
{
    value_start(w);
    size_t m = b64_encoded_len(n);
    if (jw_reserve(w, m + 2) != 0) return;
    w->buf[w->len++] = '"';
    b64_encode(data, n, w->buf + w->len);
    w->len += m;
    w->buf[w->len++] = '"';
}

/* The portable decoder, from character i (a multiple of 4) on, with o
 * bytes already written: the SIMD decoders finish with it. */
static long long b64_tail(const unsigned char *p, size_t n, size_t i, size_t o, unsigned char *out)
{
    /* Every group but the last stores 4 bytes (the 4th is overwritten by
     * the next group), which stays inside out's decoded length and, when
     * decoding in place, behind the input still to be read. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    for (; i + 8 <= n; i += 4) {
        uint32_t x = b64d[0][p[i]] | b64d[1][p[i + 1]] | b64d[2][p[i + 2]] | b64d[3][p[i + 3]];
        if (x & B64_BAD) return -1;
        memcpy(out + o, &x, 4);
        o += 3;
    }
#endif
    for (; i + 4 <= n; i += 4) {
        uint32_t x = b64d[0][p[i]] | b64d[1][p[i + 1]] | b64d[2][p[i + 2]] | b64d[3][p[i + 3]];
        if (x & B64_BAD) return -1;
        out[o++] = (unsigned char)x;
        out[o++] = (unsigned char)(x >> 8);
        out[o++] = (unsigned char)(x >> 16);
    }
    size_t rest = n - i;
    if (rest >= 2) {
        int a = b64rev[p[i]], b = b64rev[p[i + 1]];
        int c = rest == 3 ? b64rev[p[i + 2]] : 0;
        if ((a | b | c) < 0) return -1;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6;
        out[o++] = (unsigned char)(v >> 16);
        if (rest == 3) out[o++] = (unsigned char)(v >> 8);
    }
    return (long long)o;
}

/* Trailing '=' go; a length of 4k+1 cannot be base64.  0 or -1. */
static int b64_trim(const char *in, size_t *n)
{
    while (*n > 0 && in[*n - 1] == '=') (*n)--;
    return *n % 4 == 1 ? -1 : 0;
}

long long b64_decode_portable(const char *in, size_t n, unsigned char *out)
{
    b64_init();
    if (b64_trim(in, &n) != 0) return -1;
    return b64_tail((const unsigned char *)in, n, 0, 0, out);
}

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <cpuid.h>
#include <immintrin.h>
#define B64_X86 1

/* 16 characters to their 6-bit values, by their nibbles (the technique of
 * W. Mula and D. Lemire, "Faster Base64 Encoding and Decoding Using AVX2
 * Instructions", 2018).  A character is invalid when the class bits of its
 * low nibble (lo) and of its high nibble (hi) meet: high nibble 2 allows only
 * '+' and '/', 3 only '0'..'9', 4 and 6 all but 0x40 and 0x60, 5 and 7 only
 * up to 'Z' / 'z'; every other high nibble (0, 1, 8..15) nothing.  The value
 * is the character plus an offset picked by the high nibble ('/' apart). */
#define B64_LUT_LO 0x15, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x13, 0x1a, 0x1b, 0x1b, 0x1b, 0x1a
#define B64_LUT_HI 0x10, 0x10, 0x01, 0x02, 0x04, 0x08, 0x04, 0x08, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10
#define B64_LUT_ROLL 0, 16, 19, 4, -65, -65, -71, -71, 0, 0, 0, 0, 0, 0, 0, 0
/* Per 4-byte lane, after packing: output bytes 2, 1, 0 (the 24-bit group
 * a<<18 | b<<12 | c<<6 | d, big-endian). */
#define B64_PACK_SHUF 2, 1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1

__attribute__((target("ssse3")))
static long long b64_decode_ssse3_(const char *in, size_t n, unsigned char *out)
{
    const unsigned char *p = (const unsigned char *)in;
    const __m128i lut_lo = _mm_setr_epi8(B64_LUT_LO), lut_hi = _mm_setr_epi8(B64_LUT_HI);
    const __m128i lut_roll = _mm_setr_epi8(B64_LUT_ROLL), shuf = _mm_setr_epi8(B64_PACK_SHUF);
    const __m128i nib = _mm_set1_epi8(0x0f), slash = _mm_set1_epi8('/'), zero = _mm_setzero_si128();
    size_t i = 0, o = 0;
    /* 16 characters -> 12 bytes, stored as 16: the 4 extra bytes are written
     * again by what follows (at least 16 more characters remain), and when
     * decoding in place they land on input already read (o <= i). */
    for (; n - i >= 32; i += 16, o += 12) {
        __m128i s = _mm_loadu_si128((const __m128i *)(p + i));
        __m128i hi_n = _mm_and_si128(_mm_srli_epi32(s, 4), nib);
        __m128i lo = _mm_shuffle_epi8(lut_lo, _mm_and_si128(s, nib));
        __m128i hi = _mm_shuffle_epi8(lut_hi, hi_n);
        if (_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_and_si128(lo, hi), zero)) != 0xffff) return -1;
        __m128i roll = _mm_shuffle_epi8(lut_roll, _mm_add_epi8(_mm_cmpeq_epi8(s, slash), hi_n));
        __m128i v = _mm_add_epi8(s, roll);
        v = _mm_maddubs_epi16(v, _mm_set1_epi32(0x01400140));  /* a<<6|b, c<<6|d */
        v = _mm_madd_epi16(v, _mm_set1_epi32(0x00011000));     /* a<<18|b<<12|c<<6|d */
        _mm_storeu_si128((__m128i *)(out + o), _mm_shuffle_epi8(v, shuf));
    }
    return b64_tail(p, n, i, o, out);
}

__attribute__((target("avx2")))
static long long b64_decode_avx2_(const char *in, size_t n, unsigned char *out)
{
    const unsigned char *p = (const unsigned char *)in;
    const __m256i lut_lo = _mm256_setr_epi8(B64_LUT_LO, B64_LUT_LO), lut_hi = _mm256_setr_epi8(B64_LUT_HI, B64_LUT_HI);
    const __m256i lut_roll = _mm256_setr_epi8(B64_LUT_ROLL, B64_LUT_ROLL);
    const __m256i shuf = _mm256_setr_epi8(B64_PACK_SHUF, B64_PACK_SHUF);
    const __m256i compact = _mm256_setr_epi32(0, 1, 2, 4, 5, 6, 3, 7);  /* the 12 + 12 bytes together */
    const __m256i nib = _mm256_set1_epi8(0x0f), slash = _mm256_set1_epi8('/');
    size_t i = 0, o = 0;
    /* 32 characters -> 24 bytes, stored as 32 (see the SSSE3 loop; here at
     * least 32 more characters remain, which write 24 bytes). */
    for (; n - i >= 64; i += 32, o += 24) {
        __m256i s = _mm256_loadu_si256((const __m256i *)(p + i));
        __m256i hi_n = _mm256_and_si256(_mm256_srli_epi32(s, 4), nib);
        __m256i lo = _mm256_shuffle_epi8(lut_lo, _mm256_and_si256(s, nib));
        __m256i hi = _mm256_shuffle_epi8(lut_hi, hi_n);
        if (!_mm256_testz_si256(lo, hi)) return -1;
        __m256i roll = _mm256_shuffle_epi8(lut_roll, _mm256_add_epi8(_mm256_cmpeq_epi8(s, slash), hi_n));
        __m256i v = _mm256_add_epi8(s, roll);
        v = _mm256_maddubs_epi16(v, _mm256_set1_epi32(0x01400140));
        v = _mm256_madd_epi16(v, _mm256_set1_epi32(0x00011000));
        v = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(v, shuf), compact);
        _mm256_storeu_si256((__m256i *)(out + o), v);
    }
    return b64_tail(p, n, i, o, out);
}
#endif

typedef long long (*b64_fn)(const char *in, size_t n, unsigned char *out);

/* The SIMD variants share the portable one's contract; NULL when this CPU
 * (or this build) has no such instructions. */
#ifdef B64_X86
static long long b64_simd(b64_fn f, const char *in, size_t n, unsigned char *out)
{
    b64_init();
    if (b64_trim(in, &n) != 0) return -1;
    return f(in, n, out);
}

static long long b64_ssse3_entry(const char *in, size_t n, unsigned char *out)
{
    return b64_simd(b64_decode_ssse3_, in, n, out);
}
static long long b64_avx2_entry(const char *in, size_t n, unsigned char *out)
{
    return b64_simd(b64_decode_avx2_, in, n, out);
}
#endif

#ifdef B64_X86
/* What the CPU (and, for AVX2, the OS: it must save the ymm registers)
 * supports, from CPUID itself.  __builtin_cpu_supports() would need
 * libgcc's __cpu_model, which Zig's compiler-rt (the release builds,
 * docs/packaging.md, and the macOS check) does not have. */
static int b64_cpu_ssse3(void)
{
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_SSSE3);
}

static int b64_cpu_avx2(void)
{
    unsigned a, b, c, d, lo, hi;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE) || !(c & bit_AVX)) return 0;
    __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 6) != 6) return 0; /* XMM and YMM state enabled by the OS */
    return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & bit_AVX2);
}
#endif

b64_decoder b64_decoder_get(const char *name)
{
    if (!strcmp(name, "portable")) return b64_decode_portable;
#ifdef B64_X86
    if (!strcmp(name, "ssse3") && b64_cpu_ssse3()) return b64_ssse3_entry;
    if (!strcmp(name, "avx2") && b64_cpu_avx2()) return b64_avx2_entry;
#endif
    return NULL;
}

/* The best decoder this CPU runs, chosen once.  MLK_B64=portable|ssse3|avx2
 * forces one (for comparisons); an unknown or unsupported name is ignored. */
static b64_fn b64_best;
static pthread_once_t b64_best_once = PTHREAD_ONCE_INIT;
static void b64_choose(void)
{
    const char *want = getenv("MLK_B64");
    b64_fn f = want ? b64_decoder_get(want) : NULL;
    if (!f) f = b64_decoder_get("avx2");
    if (!f) f = b64_decoder_get("ssse3");
    b64_best = f ? f : b64_decode_portable;
}

const char *b64_decode_name(void)
{
    pthread_once(&b64_best_once, b64_choose);
    if (b64_best == b64_decode_portable) return "portable";
    return b64_best == b64_decoder_get("avx2") ? "avx2" : "ssse3";
}

long long b64_decode(const char *in, size_t n, unsigned char *out)
{
    pthread_once(&b64_best_once, b64_choose);
    return b64_best(in, n, out);
}

/* ===================================================================== */
/* parser                                                                 */

void jd_init(jdoc *d) { memset(d, 0, sizeof *d); }
void jd_free(jdoc *d) { free(d->nodes); memset(d, 0, sizeof *d); }

typedef struct {
    jdoc *d;
    char *p, *end;
    int depth;
    size_t budget;    /* nodes this line may have */
} pstate;

const char jd_err_budget[] = "too many values for the line's size (node budget exceeded)";

size_t jd_budget(size_t len)
{
    size_t b = len / JD_BYTES_PER_NODE + JD_NODES_MIN;
    return b < JD_NODES_MAX ? b : JD_NODES_MAX;
}

static long newnode(pstate *ps, int type)
{
    jdoc *d = ps->d;
    if (d->n >= ps->budget) { d->err = jd_err_budget; return -1; }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 64;
        if (cap > ps->budget) cap = ps->budget; /* never more than the budget: n < budget here */
        jnode *nn = realloc(d->nodes, cap * sizeof *nn);
        if (!nn) { d->err = "out of memory"; return -1; }
        d->nodes = nn;
        d->cap = cap;
    }
    jnode *n = &d->nodes[d->n];
    memset(n, 0, sizeof *n);
    n->type = (unsigned char)type;
    return (long)d->n++;
}

static void ws(pstate *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int hex4(const char *p, const char *end, unsigned *out)
{
    if (end - p < 4) return -1;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p[i]);
        if (h < 0) return -1;
        v = v << 4 | (unsigned)h;
    }
    *out = v;
    return 0;
}

static char *put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) *o++ = (char)cp;
    else if (cp < 0x800) { *o++ = (char)(0xC0 | cp >> 6); *o++ = (char)(0x80 | (cp & 63)); }
    else if (cp < 0x10000) {
        *o++ = (char)(0xE0 | cp >> 12);
        *o++ = (char)(0x80 | ((cp >> 6) & 63));
        *o++ = (char)(0x80 | (cp & 63));
    } else {
        *o++ = (char)(0xF0 | cp >> 18);
        *o++ = (char)(0x80 | ((cp >> 12) & 63));
        *o++ = (char)(0x80 | ((cp >> 6) & 63));
        *o++ = (char)(0x80 | (cp & 63));
    }
    return o;
}

/* Whether any of the n bytes at p is below 0x20, eight at a time: a byte
 * b < 0x20 is one where b - 0x20 borrows into its top bit while b's top
 * bit is clear (exact for the whole word's "any" answer). */
/* Whether p[0..n) holds a backslash or a control character: a string
 * without either needs no unescaping and is valid as it is. */
#if defined(__SSE2__)
#include <emmintrin.h>
static int has_special(const char *p, size_t n)
{
    const __m128i bs = _mm_set1_epi8('\\'), c1f = _mm_set1_epi8(0x1f);
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        __m128i a = _mm_loadu_si128((const __m128i *)(p + i)), b = _mm_loadu_si128((const __m128i *)(p + i + 16));
        __m128i c = _mm_loadu_si128((const __m128i *)(p + i + 32)), d = _mm_loadu_si128((const __m128i *)(p + i + 48));
        /* x <= 0x1f (unsigned) exactly when min(x, 0x1f) == x */
        __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(a, c1f), a), _mm_cmpeq_epi8(a, bs)),
                                 _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(b, c1f), b), _mm_cmpeq_epi8(b, bs)));
        m = _mm_or_si128(m, _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(c, c1f), c), _mm_cmpeq_epi8(c, bs)));
        m = _mm_or_si128(m, _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(d, c1f), d), _mm_cmpeq_epi8(d, bs)));
        if (_mm_movemask_epi8(m)) return 1;
    }
    for (; i + 16 <= n; i += 16) {
        __m128i a = _mm_loadu_si128((const __m128i *)(p + i));
        if (_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(a, c1f), a), _mm_cmpeq_epi8(a, bs)))) return 1;
    }
    for (; i < n; i++)
        if ((unsigned char)p[i] < 0x20 || p[i] == '\\') return 1;
    return 0;
}
#else
static int has_special(const char *p, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w, b;
        memcpy(&w, p + i, 8);
        b = w ^ 0x5c5c5c5c5c5c5c5cull; /* a zero byte where w has a backslash */
        if (((w - 0x2020202020202020ull) & ~w & 0x8080808080808080ull) ||
            ((b - 0x0101010101010101ull) & ~b & 0x8080808080808080ull))
            return 1;
    }
    for (; i < n; i++)
        if ((unsigned char)p[i] < 0x20 || p[i] == '\\') return 1;
    return 0;
}
#endif

/* p points after the opening quote.  Unescape in place. */
static int parse_string(pstate *ps, char **s, size_t *len)
{
    char *start = ps->p, *o;
    char *q = memchr(ps->p, '"', (size_t)(ps->end - ps->p));
    if (!q) { ps->d->err = "unterminated string"; return -1; }
    if (!has_special(start, (size_t)(q - start))) { /* fast path: nothing to unescape or refuse */
        *s = start;
        *len = (size_t)(q - start);
        *q = '\0';
        ps->p = q + 1;
        return 0;
    }
    o = start;
    char *p = start;
    for (;;) {
        if (p >= ps->end) { ps->d->err = "unterminated string"; return -1; }
        char c = *p;
        if (c == '"') break;
        if ((unsigned char)c < 0x20) { ps->d->err = "control character in string"; return -1; }
        if (c != '\\') { *o++ = *p++; continue; }
        p++;
        if (p >= ps->end) { ps->d->err = "bad escape"; return -1; }
        switch (*p) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '/': *o++ = '/'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            unsigned cp;
            if (hex4(p + 1, ps->end, &cp) != 0) { ps->d->err = "bad \\u escape"; return -1; }
            p += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF && ps->end - p >= 7 && p[1] == '\\' && p[2] == 'u') {
                unsigned lo;
                if (hex4(p + 3, ps->end, &lo) == 0 && lo >= 0xDC00 && lo <= 0xDFFF) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    p += 6;
                }
            }
            if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;
            o = put_utf8(o, cp); /* never longer than the escape it replaces */
            break;
        }
        default: ps->d->err = "bad escape"; return -1;
        }
        p++;
    }
    *s = start;
    *len = (size_t)(o - start);
    *o = '\0';
    ps->p = p + 1;
    return 0;
}

static long parse_value(pstate *ps);

static long parse_container(pstate *ps, int is_obj)
{
    long idx = newnode(ps, is_obj ? JN_OBJ : JN_ARR);
    if (idx < 0) return -1;
    if (++ps->depth > 512) { ps->d->err = "nesting too deep"; return -1; }
    ps->p++;
    ws(ps);
    char close = is_obj ? '}' : ']';
    long prev = -1;
    size_t count = 0;
    if (ps->p < ps->end && *ps->p == close) { ps->p++; ps->depth--; return idx; }
    for (;;) {
        long item;
        ws(ps);
        if (is_obj) {
            if (ps->p >= ps->end || *ps->p != '"') { ps->d->err = "expected key"; return -1; }
            item = newnode(ps, JN_STR);
            if (item < 0) return -1;
            ps->p++;
            char *s; size_t l;
            if (parse_string(ps, &s, &l) != 0) return -1;
            ps->d->nodes[item].s = s;
            ps->d->nodes[item].len = l;
            ws(ps);
            if (ps->p >= ps->end || *ps->p != ':') { ps->d->err = "expected ':'"; return -1; }
            ps->p++;
            ws(ps);
            if (parse_value(ps) < 0) return -1;
        } else {
            item = parse_value(ps);
            if (item < 0) return -1;
        }
        if (prev >= 0) ps->d->nodes[prev].next = (uint32_t)item;
        prev = item;
        count++;
        ws(ps);
        if (ps->p >= ps->end) { ps->d->err = "unexpected end"; return -1; }
        if (*ps->p == ',') { ps->p++; continue; }
        if (*ps->p == close) { ps->p++; break; }
        ps->d->err = is_obj ? "expected ',' or '}'" : "expected ',' or ']'";
        return -1;
    }
    ps->d->nodes[idx].count = count;
    ps->depth--;
    return idx;
}

static int lit(pstate *ps, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, w, n) != 0) { ps->d->err = "bad literal"; return -1; }
    ps->p += n;
    return 0;
}

static int digits(pstate *ps)
{
    char *st = ps->p;
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ps->p++;
    return ps->p > st ? 0 : -1;
}

/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int scan_number(pstate *ps)
{
    if (ps->p < ps->end && *ps->p == '-') ps->p++;
    if (ps->p < ps->end && *ps->p == '0') ps->p++;
    else if (digits(ps) != 0) return -1;
    if (ps->p < ps->end && *ps->p == '.') {
        ps->p++;
        if (digits(ps) != 0) return -1;
    }
    if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
        ps->p++;
        if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-')) ps->p++;
        if (digits(ps) != 0) return -1;
    }
    return 0;
}

static long parse_value(pstate *ps)
{
    ws(ps);
    if (ps->p >= ps->end) { ps->d->err = "unexpected end"; return -1; }
    char c = *ps->p;
    long idx;
    switch (c) {
    case '{': return parse_container(ps, 1);
    case '[': return parse_container(ps, 0);
    case '"': {
        idx = newnode(ps, JN_STR);
        if (idx < 0) return -1;
        ps->p++;
        char *s; size_t l;
        if (parse_string(ps, &s, &l) != 0) return -1;
        ps->d->nodes[idx].s = s;
        ps->d->nodes[idx].len = l;
        return idx;
    }
    case 't': case 'f':
        idx = newnode(ps, JN_BOOL);
        if (idx < 0 || lit(ps, c == 't' ? "true" : "false") != 0) return -1;
        ps->d->nodes[idx].bval = c == 't';
        return idx;
    case 'n':
        idx = newnode(ps, JN_NULL);
        if (idx < 0 || lit(ps, "null") != 0) return -1;
        return idx;
    default: {
        if (c != '-' && (c < '0' || c > '9')) { ps->d->err = "unexpected character"; return -1; }
        idx = newnode(ps, JN_NUM);
        if (idx < 0) return -1;
        char *st = ps->p;
        if (scan_number(ps) != 0) { ps->d->err = "malformed number"; return -1; }
        ps->d->nodes[idx].s = st;
        ps->d->nodes[idx].len = (size_t)(ps->p - st);
        return idx;
    }
    }
}

int jd_parse(jdoc *d, char *buf, size_t len)
{
    pstate ps = {d, buf, buf + len, 0, d->max_nodes ? d->max_nodes : jd_budget(len)};
    if (ps.budget > JD_NODES_MAX) ps.budget = JD_NODES_MAX; /* indexes are uint32_t */
    if (d->cap > ps.budget) { /* a big line's nodes are not kept for the small ones after it */
        free(d->nodes);
        d->nodes = NULL;
        d->cap = 0;
    }
    d->n = 0;
    d->err = NULL;
    if (parse_value(&ps) < 0) {
        d->n = 0;
        if (d->cap > JD_NODES_MIN) { free(d->nodes); d->nodes = NULL; d->cap = 0; } /* not kept for a refused line */
        return -1;
    }
    ws(&ps);
    if (ps.p != ps.end) { d->err = "trailing characters"; d->n = 0; return -1; }
    /* Numbers are not NUL-terminated in place; that is fine because the
     * readers below copy them out with their length. */
    buf[len] = '\0';
    return 0;
}

const jnode *jd_root(const jdoc *d) { return d->n ? &d->nodes[0] : NULL; }

const jnode *jd_first(const jdoc *d, const jnode *n)
{
    if (!n || (n->type != JN_ARR && n->type != JN_OBJ) || n->count == 0) return NULL;
    (void)d;
    return n + 1;
}

const jnode *jd_next(const jdoc *d, const jnode *n)
{
    return n && n->next ? &d->nodes[n->next] : NULL;
}

const jnode *jd_get(const jdoc *d, const jnode *obj, const char *key)
{
    if (!obj || obj->type != JN_OBJ) return NULL;
    size_t kl = strlen(key);
    for (const jnode *k = jd_first(d, obj); k; k = jd_next(d, k))
        if (k->len == kl && memcmp(k->s, key, kl) == 0) return k + 1;
    return NULL;
}

/* A number node's text as a C string in b (numbers are not NUL-terminated
 * in place).  0, or -1 when n is not a number we read. */
static int num_text(const jnode *n, char b[64])
{
    if (!n || n->type != JN_NUM || n->len == 0 || n->len > 63) return -1;
    memcpy(b, n->s, n->len);
    b[n->len] = '\0';
    return 0;
}

int jn_double(const jnode *n, double *out)
{
    char b[64];
    if (num_text(n, b) != 0) return -1;
    char *e;
    errno = 0;
    double v = strtod(b, &e);
    if (*e || errno == ERANGE) return -1;
    *out = v;
    return 0;
}

int jn_int(const jnode *n, int64_t *out)
{
    char b[64];
    if (num_text(n, b) != 0) return -1;
    char *e;
    errno = 0;
    long long v = strtoll(b, &e, 10);
    if (*e == '\0' && errno == 0) { *out = v; return 0; }
    double dv;
    /* 1e3 or 2.0: integral values written as doubles, within int64's range */
    if (jn_double(n, &dv) == 0 && dv >= -9223372036854775808.0 && dv < 9223372036854775808.0 &&
        dv == (double)(int64_t)dv) {
        *out = (int64_t)dv;
        return 0;
    }
    return -1;
}

int jn_uint(const jnode *n, uint64_t *out)
{
    char b[64];
    if (num_text(n, b) != 0 || b[0] == '-') return -1;
    char *e;
    errno = 0;
    unsigned long long v = strtoull(b, &e, 10);
    if (*e || errno) return -1;
    *out = v;
    return 0;
}

const char *jd_str(const jdoc *d, const jnode *obj, const char *key, const char *def)
{
    const jnode *n = jd_get(d, obj, key);
    return n && n->type == JN_STR ? n->s : def;
}

int64_t jd_int(const jdoc *d, const jnode *obj, const char *key, int64_t def)
{
    int64_t v;
    return jn_int(jd_get(d, obj, key), &v) == 0 ? v : def;
}

double jd_num(const jdoc *d, const jnode *obj, const char *key, double def)
{
    double v;
    return jn_double(jd_get(d, obj, key), &v) == 0 ? v : def;
}

int jd_bool(const jdoc *d, const jnode *obj, const char *key, int def)
{
    const jnode *n = jd_get(d, obj, key);
    return n && n->type == JN_BOOL ? n->bval : def;
}

void jd_write(const jdoc *d, const jnode *n, jw *w)
{
    switch (n->type) {
    case JN_NULL: jw_null(w); break;
    case JN_BOOL: jw_bool(w, n->bval); break;
    case JN_NUM: jw_value(w, n->s, n->len); break;
    case JN_STR: jw_strn(w, n->s, n->len); break;
    case JN_ARR:
        jw_arr(w);
        for (const jnode *c = jd_first(d, n); c; c = jd_next(d, c)) jd_write(d, c, w);
        jw_arr_end(w);
        break;
    case JN_OBJ:
        jw_obj(w);
        for (const jnode *k = jd_first(d, n); k; k = jd_next(d, k)) {
            jw_strn(w, k->s, k->len);
            jw_raw(w, ":", 1);
            w->need_comma[w->depth] = 2;
            jd_write(d, k + 1, w);
        }
        jw_obj_end(w);
        break;
    }
}
