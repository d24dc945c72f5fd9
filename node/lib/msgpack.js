"use strict";
// msgpack for the structured values that cross the C ABI (builder maps,
// file listings, bindings, hook requests and answers, events): msgpackr,
// bundled in the package (bundleDependencies).  It replaced a hand-written
// codec that it beats on these documents (docs/benchmarks.md, "msgpack").
// Plain JS values map as: null/undefined -> nil, boolean, number (integers
// as the smallest int format, others float64), string (UTF-8 str),
// Buffer/Uint8Array -> bin, Array -> array, plain object -> map (keys whose
// value is undefined are skipped).  Decoding gives the same shapes back; bin
// becomes a Buffer, 64-bit integers beyond 2^53 a BigInt.
const { Packr } = require("msgpackr");

const packr = new Packr({
  useRecords: false,        // plain msgpack maps, no msgpackr record extension
  mapsAsObjects: true,
  moreTypes: false,
  int64AsType: "auto",      // Number when safe, else BigInt
  skipValues: [undefined],
});

function encode(value) {
  if (value instanceof ArrayBuffer) value = Buffer.from(value);
  return packr.pack(value);
}

function decode(buf) {
  return packr.unpack(buf);
}

module.exports = { encode, decode };
