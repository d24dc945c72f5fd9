"use strict";
// The package's entry points: ESM names every CommonJS export, the types
// declare every export, and the exports map points at files that exist.
const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");

const pkgDir = path.resolve(__dirname, "..");
const pkg = JSON.parse(fs.readFileSync(path.join(pkgDir, "package.json"), "utf8"));
const cjs = require("..");

test("ESM: a named import of every CommonJS export, and the default export", async () => {
  const esm = await import(path.join(pkgDir, "index.mjs"));
  const named = Object.keys(esm).filter((k) => k !== "default").sort();
  assert.deepEqual(named, Object.keys(cjs).sort());
  for (const k of named) assert.equal(esm[k], cjs[k], k);
  assert.equal(esm.default, cjs);
});

test("types: index.d.ts declares every runtime export; index.d.mts re-exports it with a default", () => {
  const dts = fs.readFileSync(path.join(pkgDir, "index.d.ts"), "utf8");
  const missing = Object.keys(cjs).filter((k) => !new RegExp(`export declare (class|function|const) ${k}\\b`).test(dts));
  assert.deepEqual(missing, []);
  const dmts = fs.readFileSync(path.join(pkgDir, "index.d.mts"), "utf8");
  assert.match(dmts, /export \* from "\.\/index\.js"/);
  assert.match(dmts, /export default/);
});

test("the exports map and files list name files that exist", () => {
  const targets = [];
  const walk = (v) => (typeof v === "string" ? targets.push(v) : Object.values(v).forEach(walk));
  walk(pkg.exports);
  for (const t of targets) assert.ok(fs.existsSync(path.join(pkgDir, t)), t);
  for (const f of ["index.js", "index.mjs", "index.d.ts", "index.d.mts", "lib/", "src/", "scripts/build.js", "scripts/install.js"])
    assert.ok(pkg.files.includes(f), f);
  assert.equal(pkg.license, "MIT");
});
