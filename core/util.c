/* util.c - small helpers: allocation, the operand rule, escaping text for messages. */
#include "internal.h"
#include "platform.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *xstrdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *p = NULL;
    va_start(ap, fmt);
    if (vasprintf(&p, fmt, ap) < 0) p = NULL;
    va_end(ap);
    return p;
}

/* Wipe n bytes at p in a way the compiler may not drop as a dead store
 * (the bytes are about to be freed): explicit_bzero where the C library
 * has it (HAVE_EXPLICIT_BZERO, platform.h), else memset through a volatile
 * function pointer, which the compiler cannot prove is memset (the
 * portable build, `make test`, runs this path). */
#ifndef HAVE_EXPLICIT_BZERO
static void *(*const volatile wipe_memset)(void *, int, size_t) = memset;
#endif

void secret_wipe(void *p, size_t n)
{
    if (!p || n == 0) return;
#ifdef HAVE_EXPLICIT_BZERO
    explicit_bzero(p, n);
#else
    wipe_memset(p, 0, n);
#endif
}

void secret_free(char *s)
{
    if (!s) return;
    secret_wipe(s, strlen(s));
    free(s);
}

int name_valid(const char *s)
{
    if (!s) return 0;
    size_t n = 0;
    for (; s[n]; n++) {
        unsigned char ch = (unsigned char)s[n];
        int alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        if (!alnum && (n == 0 || (ch != '.' && ch != '_' && ch != '-'))) return 0;
        if (n >= NAME_MAX_LEN) return 0;
    }
    return n > 0;
}

/* Length of the UTF-8 sequence at s (at most n bytes) when it is valid and
 * safe to show, else 0 (the byte is escaped).  Unsafe though valid: C1
 * controls (U+0080..U+009F; 0x9B is CSI on some terminals) and the
 * bidirectional overrides and isolates (U+202A..U+202E, U+2066..U+2069),
 * which reorder what a terminal shows. */
static size_t utf8_safe_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t k;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) { k = 2; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { k = 3; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { k = 4; cp = c & 0x07; }
    else return 0;
    if (n < k) return 0;
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if ((k == 3 && cp < 0x800) || (k == 4 && (cp < 0x10000 || cp > 0x10FFFF))) return 0; /* overlong, too big */
    if (cp >= 0xD800 && cp <= 0xDFFF) return 0;                                       /* surrogates */
    if (cp <= 0x9F || (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069)) return 0;
    return k;
}

char *text_escape(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    char *out = malloc(n * 4 + 1), *o = out;
    if (!out) return NULL;
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        size_t k = c >= 0x80 ? utf8_safe_len(p + i, n - i) : (c >= 0x20 && c != 0x7F) || c == '\n' || c == '\t';
        if (k) {
            memcpy(o, p + i, k);
            o += k;
            i += k;
        } else {
            o += sprintf(o, "\\x%02x", c);
            i++;
        }
    }
    *o = '\0';
    return out;
}
