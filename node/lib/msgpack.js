"use strict";
// A small msgpack codec for the structured values that cross the C ABI
// (builder maps, file listings, bindings, allow-list and volume results).
// Plain JS values map as: null/undefined -> nil, boolean, number (integers
// as the smallest int format, others float64), string (UTF-8 str),
// Buffer/Uint8Array/ArrayBuffer -> bin, Array -> array, plain object -> map
// (keys whose value is undefined are skipped).  Decoding gives the same
// shapes back; bin becomes a Buffer, 64-bit integers beyond 2^53 a BigInt.

class Writer {
  constructor() {
    this.buf = Buffer.allocUnsafe(256);
    this.len = 0;
  }
  ensure(n) {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const b = Buffer.allocUnsafe(size);
    this.buf.copy(b, 0, 0, this.len);
    this.buf = b;
  }
  u8(v) {
    this.ensure(1);
    this.buf[this.len++] = v;
  }
  bytes(b) {
    this.ensure(b.length);
    b.copy ? b.copy(this.buf, this.len) : this.buf.set(b, this.len);
    this.len += b.length;
  }
  head(small, max, fixMask, c8, c16, c32, n) {
    if (small && n <= max) this.u8(fixMask | n);
    else if (c8 !== 0 && n < 0x100) { this.u8(c8); this.u8(n); }
    else if (n < 0x10000) { this.ensure(3); this.buf[this.len++] = c16; this.buf.writeUInt16BE(n, this.len); this.len += 2; }
    else { this.ensure(5); this.buf[this.len++] = c32; this.buf.writeUInt32BE(n, this.len); this.len += 4; }
  }
}

function encodeInto(w, v, depth) {
  if (depth > 512) throw new TypeError("msgpack: value nested too deeply (or cyclic)");
  if (v === null || v === undefined) return w.u8(0xc0);
  switch (typeof v) {
    case "boolean":
      return w.u8(v ? 0xc3 : 0xc2);
    case "number":
      if (Number.isInteger(v) && Math.abs(v) <= Number.MAX_SAFE_INTEGER) {
        if (v >= 0) {
          if (v < 0x80) return w.u8(v);
          if (v < 0x100) { w.u8(0xcc); return w.u8(v); }
          if (v < 0x10000) { w.ensure(3); w.buf[w.len++] = 0xcd; w.buf.writeUInt16BE(v, w.len); w.len += 2; return; }
          if (v < 0x100000000) { w.ensure(5); w.buf[w.len++] = 0xce; w.buf.writeUInt32BE(v, w.len); w.len += 4; return; }
          w.ensure(9); w.buf[w.len++] = 0xcf; w.buf.writeBigUInt64BE(BigInt(v), w.len); w.len += 8; return;
        }
        if (v >= -32) return w.u8(v & 0xff);
        if (v >= -128) { w.ensure(2); w.buf[w.len++] = 0xd0; w.buf.writeInt8(v, w.len); w.len += 1; return; }
        if (v >= -32768) { w.ensure(3); w.buf[w.len++] = 0xd1; w.buf.writeInt16BE(v, w.len); w.len += 2; return; }
        if (v >= -2147483648) { w.ensure(5); w.buf[w.len++] = 0xd2; w.buf.writeInt32BE(v, w.len); w.len += 4; return; }
        w.ensure(9); w.buf[w.len++] = 0xd3; w.buf.writeBigInt64BE(BigInt(v), w.len); w.len += 8; return;
      }
      w.ensure(9); w.buf[w.len++] = 0xcb; w.buf.writeDoubleBE(v, w.len); w.len += 8; return;
    case "bigint":
      w.ensure(9);
      if (v >= 0n) { w.buf[w.len++] = 0xcf; w.buf.writeBigUInt64BE(v, w.len); }
      else { w.buf[w.len++] = 0xd3; w.buf.writeBigInt64BE(v, w.len); }
      w.len += 8;
      return;
    case "string": {
      const b = Buffer.from(v, "utf8");
      w.head(true, 31, 0xa0, 0xd9, 0xda, 0xdb, b.length);
      return w.bytes(b);
    }
    case "object":
      break;
    default:
      throw new TypeError(`msgpack: cannot encode a ${typeof v}`);
  }
  if (v instanceof ArrayBuffer) v = Buffer.from(v);
  if (ArrayBuffer.isView(v)) {
    const b = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
    w.head(false, 0, 0, 0xc4, 0xc5, 0xc6, b.length);
    return w.bytes(b);
  }
  if (Array.isArray(v)) {
    w.head(true, 15, 0x90, 0, 0xdc, 0xdd, v.length);
    for (const e of v) encodeInto(w, e, depth + 1);
    return;
  }
  if (v instanceof Map) v = Object.fromEntries(v);
  const keys = Object.keys(v).filter((k) => v[k] !== undefined);
  w.head(true, 15, 0x80, 0, 0xde, 0xdf, keys.length);
  for (const k of keys) {
    encodeInto(w, k, depth + 1);
    encodeInto(w, v[k], depth + 1);
  }
}

function encode(value) {
  const w = new Writer();
  encodeInto(w, value, 0);
  return w.buf.subarray(0, w.len);
}

function decode(buf) {
  if (!buf || buf.length === 0) return null;
  if (!Buffer.isBuffer(buf)) buf = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  let pos = 0;
  const need = (n) => {
    if (pos + n > buf.length) throw new RangeError("msgpack: truncated document");
  };
  const str = (n) => {
    need(n);
    const s = buf.toString("utf8", pos, pos + n);
    pos += n;
    return s;
  };
  const bin = (n) => {
    need(n);
    const b = Buffer.from(buf.subarray(pos, pos + n));
    pos += n;
    return b;
  };
  const big = (b) => (b <= BigInt(Number.MAX_SAFE_INTEGER) && b >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(b) : b);
  const arr = (n) => {
    const a = new Array(n);
    for (let i = 0; i < n; i++) a[i] = one();
    return a;
  };
  const map = (n) => {
    const o = {};
    for (let i = 0; i < n; i++) {
      const k = one();
      o[String(k)] = one();
    }
    return o;
  };
  function one() {
    need(1);
    const t = buf[pos++];
    if (t < 0x80) return t;
    if (t >= 0xe0) return t - 0x100;
    if ((t & 0xf0) === 0x80) return map(t & 0x0f);
    if ((t & 0xf0) === 0x90) return arr(t & 0x0f);
    if ((t & 0xe0) === 0xa0) return str(t & 0x1f);
    let v;
    switch (t) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: need(1); return bin(buf[pos++]);
      case 0xc5: need(2); v = buf.readUInt16BE(pos); pos += 2; return bin(v);
      case 0xc6: need(4); v = buf.readUInt32BE(pos); pos += 4; return bin(v);
      case 0xca: need(4); v = buf.readFloatBE(pos); pos += 4; return v;
      case 0xcb: need(8); v = buf.readDoubleBE(pos); pos += 8; return v;
      case 0xcc: need(1); return buf[pos++];
      case 0xcd: need(2); v = buf.readUInt16BE(pos); pos += 2; return v;
      case 0xce: need(4); v = buf.readUInt32BE(pos); pos += 4; return v;
      case 0xcf: need(8); v = buf.readBigUInt64BE(pos); pos += 8; return big(v);
      case 0xd0: need(1); v = buf.readInt8(pos); pos += 1; return v;
      case 0xd1: need(2); v = buf.readInt16BE(pos); pos += 2; return v;
      case 0xd2: need(4); v = buf.readInt32BE(pos); pos += 4; return v;
      case 0xd3: need(8); v = buf.readBigInt64BE(pos); pos += 8; return big(v);
      case 0xd9: need(1); return str(buf[pos++]);
      case 0xda: need(2); v = buf.readUInt16BE(pos); pos += 2; return str(v);
      case 0xdb: need(4); v = buf.readUInt32BE(pos); pos += 4; return str(v);
      case 0xdc: need(2); v = buf.readUInt16BE(pos); pos += 2; return arr(v);
      case 0xdd: need(4); v = buf.readUInt32BE(pos); pos += 4; return arr(v);
      case 0xde: need(2); v = buf.readUInt16BE(pos); pos += 2; return map(v);
      case 0xdf: need(4); v = buf.readUInt32BE(pos); pos += 4; return map(v);
      // ext types carry nothing the ABI uses: skip them, yield null
      case 0xd4: need(2); pos += 2; return null;
      case 0xd5: need(3); pos += 3; return null;
      case 0xd6: need(5); pos += 5; return null;
      case 0xd7: need(9); pos += 9; return null;
      case 0xd8: need(17); pos += 17; return null;
      case 0xc7: need(2); v = buf[pos]; pos += 2 + v; return null;
      case 0xc8: need(3); v = buf.readUInt16BE(pos); pos += 3 + v; return null;
      case 0xc9: need(5); v = buf.readUInt32BE(pos); pos += 5 + v; return null;
      default:
        throw new RangeError(`msgpack: unknown type byte 0x${t.toString(16)}`);
    }
  }
  return one();
}

module.exports = { encode, decode };
