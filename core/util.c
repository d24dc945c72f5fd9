/* util.c - small allocation helpers. */
#include "internal.h"

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
 * has it (glibc >= 2.25, the BSDs), else memset through a volatile function
 * pointer, which the compiler cannot prove is memset. */
#if (defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 25))) || \
    defined(__OpenBSD__) || defined(__FreeBSD__) || defined(__NetBSD__)
#define MLK_HAVE_EXPLICIT_BZERO 1
#endif

#ifndef MLK_HAVE_EXPLICIT_BZERO
static void *(*const volatile wipe_memset)(void *, int, size_t) = memset;
#endif

void secret_wipe(void *p, size_t n)
{
    if (!p || n == 0) return;
#ifdef MLK_HAVE_EXPLICIT_BZERO
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
