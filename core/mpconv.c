/* mpconv.c - msgpack <-> JSON conversions (see internal.h).
 *
 * Structured values cross the ABI as msgpack; the wire is JSON.  These
 * helpers convert between the two generically so no caller has to walk
 * both formats by hand. */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Write a map key that may need escaping (jw_key takes only plain keys). */
static void write_key(jw *w, const char *s, size_t n)
{
    jw_strn(w, s, n);
    jw_raw(w, ":", 1);
    w->need_comma[w->depth] = 2;
}

/* A non-string map key becomes the text of its JSON rendering ("5",
 * "true", "[1,2]"), so the result is still a valid JSON object. */
static int write_nonstring_key(const msgpack_object *k, jw *w)
{
    jw tmp;
    jw_init(&tmp);
    int rc = mp_to_json(k, &tmp);
    if (tmp.oom) { jw_free(&tmp); w->oom = 1; return -1; }
    size_t n = tmp.len;
    char *text = jw_take(&tmp, &n);
    if (!text) { w->oom = 1; return -1; }
    write_key(w, text, n);
    free(text);
    return rc;
}

int mp_to_json(const msgpack_object *o, jw *w)
{
    int rc = 0;
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        jw_null(w);
        break;
    case MSGPACK_OBJECT_BOOLEAN:
        jw_bool(w, o->via.boolean);
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        jw_uint(w, o->via.u64);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        jw_int(w, o->via.i64);
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        if (!isfinite(o->via.f64)) rc = -1; /* jw_double writes null */
        jw_double(w, o->via.f64);
        break;
    case MSGPACK_OBJECT_STR:
        jw_strn(w, o->via.str.size ? o->via.str.ptr : "", o->via.str.size);
        break;
    case MSGPACK_OBJECT_BIN:
        jw_b64(w, o->via.bin.size ? o->via.bin.ptr : "", o->via.bin.size);
        break;
    case MSGPACK_OBJECT_ARRAY:
        jw_arr(w);
        for (uint32_t i = 0; i < o->via.array.size; i++)
            if (mp_to_json(&o->via.array.ptr[i], w) != 0) rc = -1;
        jw_arr_end(w);
        break;
    case MSGPACK_OBJECT_MAP:
        jw_obj(w);
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            if (kv->key.type == MSGPACK_OBJECT_STR)
                write_key(w, kv->key.via.str.size ? kv->key.via.str.ptr : "", kv->key.via.str.size);
            else if (write_nonstring_key(&kv->key, w) != 0)
                rc = -1;
            if (mp_to_json(&kv->val, w) != 0) rc = -1;
        }
        jw_obj_end(w);
        break;
    default: /* ext and anything newer: JSON cannot carry it */
        jw_null(w);
        rc = -1;
        break;
    }
    return w->oom ? -1 : rc;
}

/* A JSON number is packed as an integer when its text is integral (no
 * '.', 'e' or 'E') and fits in 64 bits; otherwise as a double. */
static int pack_number(const jnode *n, msgpack_packer *pk)
{
    char b[400];
    if (n->len == 0 || n->len >= sizeof b) return -1;
    memcpy(b, n->s, n->len);
    b[n->len] = '\0';
    if (!strpbrk(b, ".eE")) {
        char *e;
        errno = 0;
        if (b[0] == '-') {
            long long v = strtoll(b, &e, 10);
            if (*e == '\0' && errno == 0) return msgpack_pack_int64(pk, v);
        } else {
            unsigned long long v = strtoull(b, &e, 10);
            if (*e == '\0' && errno == 0) return msgpack_pack_uint64(pk, v);
        }
    }
    char *e;
    double d = strtod(b, &e); /* out of range gives +-HUGE_VAL or 0, still a number */
    if (*e != '\0') return -1;
    return msgpack_pack_double(pk, d);
}

int json_to_mp(const jdoc *d, const jnode *n, msgpack_packer *pk)
{
    int rc = 0;
    switch (n->type) {
    case JN_NULL:
        return msgpack_pack_nil(pk);
    case JN_BOOL:
        return n->bval ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
    case JN_NUM:
        return pack_number(n, pk);
    case JN_STR:
        if (msgpack_pack_str(pk, n->len) != 0) return -1;
        return msgpack_pack_str_body(pk, n->s, n->len);
    case JN_ARR:
        if (msgpack_pack_array(pk, n->count) != 0) return -1;
        for (const jnode *c = jd_first(d, n); c; c = jd_next(d, c))
            if (json_to_mp(d, c, pk) != 0) rc = -1;
        return rc;
    case JN_OBJ:
        if (msgpack_pack_map(pk, n->count) != 0) return -1;
        for (const jnode *k = jd_first(d, n); k; k = jd_next(d, k)) {
            if (msgpack_pack_str(pk, k->len) != 0 || msgpack_pack_str_body(pk, k->s, k->len) != 0)
                rc = -1;
            if (json_to_mp(d, jd_val(k), pk) != 0) rc = -1;
        }
        return rc;
    }
    return -1;
}

int json_to_mp_buf(const jdoc *d, const jnode *n, char **buf, size_t *len)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    *buf = NULL;
    if (len) *len = 0;
    if (!n) return -1;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (json_to_mp(d, n, &pk) != 0) {
        msgpack_sbuffer_destroy(&sb);
        return -1;
    }
    if (!sb.data) { /* nothing written cannot happen for a value, but be safe */
        sb.data = malloc(1);
        if (!sb.data) return -1;
    }
    *buf = sb.data;
    if (len) *len = sb.size;
    return 0;
}

/* Check that buf[0..len) is exactly one well-formed msgpack object whose
 * array and map counts fit the bytes there are.  msgpack-c allocates a
 * container's elements from its declared count before reading them, so
 * five bytes claiming 2^32 elements would ask for tens of GiB (found by
 * tests/fuzz/fuzz_options.c).  Every pending element needs one byte at
 * least, so bounding the pending count by the bytes left bounds the
 * unpacker's memory by a small multiple of len. */
static int mp_shape_ok(const unsigned char *p, size_t len)
{
    size_t pos = 0;
    uint64_t pending = 1;
    while (pending > 0) {
        if (pos >= len || pending > len - pos) return 0;
        unsigned b = p[pos++];
        uint64_t skip = 0, kids = 0;
        size_t nlen = 0;          /* bytes of a big-endian length that follows */
        int ext = 0;
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {}
        else if (b <= 0x8f) kids = 2 * (uint64_t)(b & 0x0f);
        else if (b <= 0x9f) kids = b & 0x0f;
        else if (b <= 0xbf) skip = b & 0x1f;
        else switch (b) {
        case 0xc4: case 0xd9: nlen = 1; break;
        case 0xc5: case 0xda: nlen = 2; break;
        case 0xc6: case 0xdb: nlen = 4; break;
        case 0xc7: nlen = 1; ext = 1; break;
        case 0xc8: nlen = 2; ext = 1; break;
        case 0xc9: nlen = 4; ext = 1; break;
        case 0xca: case 0xce: case 0xd2: skip = 4; break;
        case 0xcb: case 0xcf: case 0xd3: skip = 8; break;
        case 0xcc: case 0xd0: skip = 1; break;
        case 0xcd: case 0xd1: skip = 2; break;
        case 0xd4: skip = 2; break;
        case 0xd5: skip = 3; break;
        case 0xd6: skip = 5; break;
        case 0xd7: skip = 9; break;
        case 0xd8: skip = 17; break;
        case 0xdc: case 0xdd: case 0xde: case 0xdf: {
            size_t k = b == 0xdc || b == 0xde ? 2 : 4;
            if (len - pos < k) return 0;
            uint64_t n = 0;
            for (size_t i = 0; i < k; i++) n = n << 8 | p[pos++];
            kids = b >= 0xde ? 2 * n : n;
            break;
        }
        default: return 0;        /* 0xc1: never used */
        }
        if (nlen) {
            if (len - pos < nlen) return 0;
            for (size_t i = 0; i < nlen; i++) skip = skip << 8 | p[pos++];
            skip += (uint64_t)ext;
        }
        if (skip > len - pos) return 0;
        pos += (size_t)skip;
        pending = pending - 1 + kids;
    }
    return pos == len;
}

int mp_parse(const char *buf, size_t len, msgpack_unpacked *out)
{
    size_t off = 0;
    msgpack_unpacked_init(out);
    if (!buf || len == 0) return -1;
    if (!mp_shape_ok((const unsigned char *)buf, len)) return -1;
    msgpack_unpack_return r = msgpack_unpack_next(out, buf, len, &off);
    if (r != MSGPACK_UNPACK_SUCCESS || off != len) return -1;
    return 0;
}
