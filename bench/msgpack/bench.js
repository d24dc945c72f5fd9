// msgpack codecs on the documents that cross the ABI (messages.json): the
// former hand-written node/lib/msgpack.js (give its path) against msgpackr
// and @msgpack/msgpack (resolved from node/node_modules).  ns per call.
//   git show 4b77200:node/lib/msgpack.js > /tmp/ours.js
//   node bench/msgpack/bench.js /tmp/ours.js
"use strict";
const path = require("node:path");
const req = (m) => require(require.resolve(m, { paths: [path.join(__dirname, "..", "..", "node")] }));
const msgs = require("./messages.json");
msgs.file_listing = Array(25).fill(msgs.file_listing).flat();
const { Packr } = req("msgpackr");
const packr = new Packr({ useRecords: false, mapsAsObjects: true });
const libs = [["msgpackr", (o) => packr.pack(o), (b) => packr.unpack(b)]];
try {
  const mm = req("@msgpack/msgpack");   // optional: npm install --no-save @msgpack/msgpack in node/
  libs.push(["@msgpack/msgpack", (o) => mm.encode(o), (b) => mm.decode(b)]);
} catch {}
if (process.argv[2]) {
  const ours = require(path.resolve(process.argv[2]));
  libs.unshift(["hand-written", ours.encode, ours.decode]);
}
function perCall(fn, arg, budgetMs = 300) {
  let n = 0;
  const t0 = process.hrtime.bigint();
  for (;;) {
    for (let i = 0; i < 500; i++) fn(arg);
    n += 500;
    const dt = Number(process.hrtime.bigint() - t0) / 1e6;
    if (dt > budgetMs) return (dt * 1e6) / n;
  }
}
console.log(["message".padEnd(22), "bytes".padStart(6), ...libs.flatMap(([n]) => [`${n} enc`.padStart(22), `${n} dec`.padStart(22)])].join(" "));
for (const [name, m] of Object.entries(msgs)) {
  const enc = Buffer.from(libs[libs.length - 1][1](m));
  const cells = libs.flatMap(([, e, d]) => [perCall(e, m), perCall(d, enc)]);
  console.log([name.padEnd(22), String(enc.length).padStart(6), ...cells.map((c) => `${c.toFixed(0)}ns`.padStart(22))].join(" "));
}
