#!/usr/bin/env node
// prepack / postpack: what `npm pack` puts into the tarball besides lib/.
//   node scripts/pack.js prepare   (prepack) builds the addon, then copies
//     vendor/      the core's C sources, matchlock.h, the SWIG-generated
//                  wrapper and the Node-API headers (node-api-headers,
//                  node-addon-api), so the package builds from source
//                  anywhere without SWIG, the repository or a download;
//     prebuilds/linux-x64/node.napi.glibc.node  the addon built here, with
//                  the libevent and msgpack-c it links beside it (its rpath
//                  is $ORIGIN, as auditwheel does for wheels), so the
//                  install needs no compiler on linux-x64 glibc;
//     LICENSE      the repository's.
//   node scripts/pack.js clean     (postpack) removes them again.
"use strict";

const { execFileSync } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");

const pkgDir = path.resolve(__dirname, "..");
const repo = path.resolve(pkgDir, "..");
const made = ["vendor", "prebuilds", "LICENSE"].map((f) => path.join(pkgDir, f));

function copy(from, to) {
  fs.mkdirSync(path.dirname(to), { recursive: true });
  fs.copyFileSync(from, to);
}

function copyMatching(fromDir, toDir, re) {
  for (const f of fs.readdirSync(fromDir).filter((n) => re.test(n))) copy(path.join(fromDir, f), path.join(toDir, f));
}

function moduleDir(name) {
  return path.dirname(require.resolve(`${name}/package.json`, { paths: [pkgDir] }));
}

function prepare() {
  clean();
  execFileSync(process.execPath, [path.join(__dirname, "build.js")], { stdio: "inherit" });
  const vendor = path.join(pkgDir, "vendor");
  copyMatching(path.join(repo, "core"), path.join(vendor, "core"), /\.(c|h|inc)$/);
  copy(path.join(repo, "abi", "include", "matchlock.h"), path.join(vendor, "include", "matchlock.h"));
  copy(path.join(pkgDir, "build", "matchlock_wrap.cxx"), path.join(vendor, "matchlock_wrap.cxx"));
  const headers = moduleDir("node-api-headers");
  copyMatching(path.join(headers, "include"), path.join(vendor, "node-api-headers", "include"), /\.h$/);
  copy(path.join(headers, "LICENSE"), path.join(vendor, "node-api-headers", "LICENSE"));
  const addonApi = moduleDir("node-addon-api");
  copyMatching(addonApi, path.join(vendor, "node-addon-api"), /^(napi.*\.h|LICENSE\.md)$/);
  copy(path.join(repo, "LICENSE"), path.join(pkgDir, "LICENSE"));

  if (process.platform === "linux" && process.arch === "x64" && process.report.getReport().header.glibcVersionRuntime) {
    const dir = path.join(pkgDir, "prebuilds", "linux-x64");
    const addon = path.join(pkgDir, "build", "Release", "matchlock.node");
    copy(addon, path.join(dir, "node.napi.glibc.node"));
    // The libraries that are not part of every glibc system go beside it.
    const ldd = execFileSync("ldd", [addon]).toString();
    for (const m of ldd.matchAll(/^\s*(lib(?:event|msgpack)[^\s]*) => (\S+)/gm)) copy(m[2], path.join(dir, m[1]));
  }
}

function clean() {
  for (const f of made) fs.rmSync(f, { recursive: true, force: true });
}

const what = process.argv[2];
if (what === "prepare") prepare();
else if (what === "clean") clean();
else {
  console.error("usage: node scripts/pack.js prepare|clean");
  process.exit(2);
}
