/* json.h - the wire codec: a JSON writer into a growable buffer and an
 * in-place JSON parser (strings are unescaped inside the input buffer, so
 * a large base64 field is never copied).  Private to the core and to
 * matchlock-local; nothing here is exported. */
#ifndef MLK_JSON_H
#define MLK_JSON_H

#include <stddef.h>
#include <stdint.h>

/* ---- wiping secrets (core/util.c) ------------------------------------ */

/* Zero n bytes at p so that the store is not optimised away (explicit_bzero
 * where the C library has it, a volatile fallback elsewhere). */
void secret_wipe(void *p, size_t n);
/* secret_wipe(s, strlen(s)), then free(s); NULL is a no-op. */
void secret_free(char *s);

/* ---- growable byte buffer and writer -------------------------------- */

typedef struct jw {
    char *buf;
    size_t len, cap;
    int oom;                  /* set once an allocation failed */
    int secret;               /* holds a secret: grown by allocate-copy-wipe-free
                               * (never realloc) and wiped by jw_free/jw_reset */
    int depth;
    unsigned char need_comma[64];
} jw;

void jw_init(jw *w);
void jw_free(jw *w);
/* Set w->secret = 1 before the first byte of a secret is written; whoever
 * jw_take()s such a buffer frees it with secret_wipe() + free(). */
/* Hand the buffer to the caller (NUL-terminated); the writer is reset. */
char *jw_take(jw *w, size_t *len);
void jw_reset(jw *w);
int jw_reserve(jw *w, size_t extra);
void jw_raw(jw *w, const char *s, size_t n);      /* bytes as they are */
void jw_obj(jw *w);
void jw_obj_end(jw *w);
void jw_arr(jw *w);
void jw_arr_end(jw *w);
void jw_key(jw *w, const char *key);               /* key must need no escaping */
void jw_str(jw *w, const char *s);                 /* escaped; NULL writes null */
void jw_strn(jw *w, const char *s, size_t n);
void jw_int(jw *w, int64_t v);
void jw_uint(jw *w, uint64_t v);
void jw_double(jw *w, double v);
void jw_bool(jw *w, int v);
void jw_null(jw *w);
void jw_b64(jw *w, const void *data, size_t n);    /* "base64" */
void jw_value(jw *w, const char *json, size_t n);  /* a pre-rendered JSON value */
void jw_nl(jw *w);                                 /* end of a wire line */

/* ---- base64 ---------------------------------------------------------- */

size_t b64_encoded_len(size_t n);
void b64_encode(const unsigned char *in, size_t n, char *out);
/* Decode n chars; out may equal in (decoding in place is safe).  Returns
 * the decoded length or -1 on invalid input. */
long long b64_decode(const char *in, size_t n, unsigned char *out);
/* The decoders behind b64_decode, by name ("portable", "ssse3", "avx2"),
 * for the equivalence test and bench_codec; NULL when this CPU or build
 * lacks it.  All give the same result for every input (b64_decode picks
 * the fastest once; the environment variable MLK_B64 can force one). */
typedef long long (*b64_decoder)(const char *in, size_t n, unsigned char *out);
b64_decoder b64_decoder_get(const char *name);
long long b64_decode_portable(const char *in, size_t n, unsigned char *out);
const char *b64_decode_name(void);  /* the one b64_decode uses */

/* ---- in-place parser -------------------------------------------------- */

enum { JN_NULL, JN_BOOL, JN_NUM, JN_STR, JN_ARR, JN_OBJ };

/* 24 bytes: a container's count and a scalar's length share a field. */
typedef struct jnode {
    unsigned char type;
    unsigned char bval;
    uint32_t next;    /* index of the next sibling, 0 = none */
    char *s;          /* strings: unescaped text (NUL-terminated); numbers: text */
    union {
        size_t len;   /* strings and numbers */
        size_t count; /* children (arrays), key+value pairs (objects) */
    };
} jnode;

/* The parser's node budget (a line from a server is untrusted): a line of
 * len bytes may hold at most len / JD_BYTES_PER_NODE + JD_NODES_MIN values,
 * and never more than JD_NODES_MAX.  Real messages are far below it (a
 * list_files entry, the densest, spends about 7 bytes per value); a line
 * of `[0,0,...]` (2 bytes per value) stops at the budget, so its nodes
 * cost at most 24 / JD_BYTES_PER_NODE = 4 times the line (plus
 * JD_NODES_MIN * 24 bytes).  Every size is size_t. */
#define JD_BYTES_PER_NODE 6
#define JD_NODES_MIN 4096
#define JD_NODES_MAX ((size_t)1 << 22)  /* 4.2 M values (96 MiB of nodes): a list_files of 380,000 entries */

typedef struct jdoc {
    jnode *nodes;
    size_t n, cap;
    size_t max_nodes; /* 0: the budget above; else this many at most (tests, fuzzing) */
    const char *err;  /* static reason when parsing failed */
} jdoc;

/* The node budget for a line of len bytes (the rule above). */
size_t jd_budget(size_t len);
/* jdoc.err when a line exceeded its budget (compare the pointer). */
extern const char jd_err_budget[];

void jd_init(jdoc *d);
void jd_free(jdoc *d);
/* Parse buf[0..len) in place (the buffer is modified; buf[len] must be
 * writable, it receives a NUL).  Returns 0 or -1 (d->err says why). */
int jd_parse(jdoc *d, char *buf, size_t len);
/* Root node (index 0), or NULL when nothing was parsed. */
const jnode *jd_root(const jdoc *d);
/* Object member by key, or NULL. */
const jnode *jd_get(const jdoc *d, const jnode *obj, const char *key);
/* First child of an array (value) or object (key; its value is key+1). */
const jnode *jd_first(const jdoc *d, const jnode *n);
const jnode *jd_next(const jdoc *d, const jnode *n);
/* Value of an object key node. */
static inline const jnode *jd_val(const jnode *key) { return key + 1; }
/* Convenience readers: fall back to `def` when absent or of another type. */
const char *jd_str(const jdoc *d, const jnode *obj, const char *key, const char *def);
int64_t jd_int(const jdoc *d, const jnode *obj, const char *key, int64_t def);
double jd_num(const jdoc *d, const jnode *obj, const char *key, double def);
int jd_bool(const jdoc *d, const jnode *obj, const char *key, int def);
int jn_int(const jnode *n, int64_t *out);
int jn_uint(const jnode *n, uint64_t *out);
int jn_double(const jnode *n, double *out);
/* Re-render a parsed node as compact JSON into w. */
void jd_write(const jdoc *d, const jnode *n, jw *w);

#endif
