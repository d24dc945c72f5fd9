#!/usr/bin/env node
// prepack / postpack: what `npm pack` puts into the tarball besides lib/.
//   node scripts/pack.js prepare   (prepack) builds the addon, then copies
//     vendor/      the core's C sources and its recipe (build.json),
//                  matchlock.h, the SWIG-generated wrapper and the
//                  Node-API headers (node-api-headers, node-addon-api), so
//                  the package builds from source anywhere without SWIG,
//                  the repository or a download;
//     prebuilds/linux-x64/node.napi.glibc.node, prebuilds/linux-arm64/...
//                  the addon cross-compiled by Zig for glibc >= 2.28 with
//                  libevent and msgpack-c inside (prebuild() below), so the
//                  install needs no compiler on Linux x64 and arm64 glibc;
//     LICENSE      the repository's.
//   node scripts/pack.js clean     (postpack) removes them again.
"use strict";

const { execFileSync } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");

const pkgDir = path.resolve(__dirname, "..");
const repo = path.resolve(pkgDir, "..");
const made = ["vendor", "prebuilds", "LICENSE"].map((f) => path.join(pkgDir, f));
// The prebuilds for Linux: Node's arch name and Zig's, and the glibc floor.
const linuxArchs = [["x64", "x86_64"], ["arm64", "aarch64"]];
const glibcFloor = "2.28";

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
  copyMatching(path.join(repo, "core"), path.join(vendor, "core"), /\.(c|h|inc)$|^build\.json$/); // build.json: the recipe
  copy(path.join(repo, "abi", "include", "matchlock.h"), path.join(vendor, "include", "matchlock.h"));
  copy(path.join(pkgDir, "build", "matchlock_wrap.cxx"), path.join(vendor, "matchlock_wrap.cxx"));
  const headers = moduleDir("node-api-headers");
  copyMatching(path.join(headers, "include"), path.join(vendor, "node-api-headers", "include"), /\.h$/);
  copy(path.join(headers, "LICENSE"), path.join(vendor, "node-api-headers", "LICENSE"));
  const addonApi = moduleDir("node-addon-api");
  copyMatching(addonApi, path.join(vendor, "node-addon-api"), /^(napi.*\.h|LICENSE\.md)$/);
  copy(path.join(repo, "LICENSE"), path.join(pkgDir, "LICENSE"));

  if (process.platform === "linux") for (const [arch, zigArch] of linuxArchs) prebuild(arch, zigArch);
}

// One prebuild: the addon for linux-ARCH glibc, compiled by Zig against
// glibc 2.28's symbol versions, with libevent and msgpack-c built for the
// same target (scripts/cross-deps.sh) linked in statically, so it needs no
// library beside it.  Its objects go to build/linux-ARCH/.
function prebuild(arch, zigArch) {
  const prefix = execFileSync(path.join(repo, "scripts", "cross-deps.sh"), [`${zigArch}-linux-gnu.${glibcFloor}`],
    { stdio: ["ignore", "pipe", "inherit"] }).toString().trim();
  const out = path.join(pkgDir, "build", `linux-${arch}`);
  const env = {
    ...process.env,
    CC: path.join(prefix, "bin", "cc"),
    CXX: path.join(prefix, "bin", "c++"),
    CFLAGS: "", CXXFLAGS: "",
    PKG_CONFIG_LIBDIR: path.join(prefix, "lib", "pkgconfig"),
    PKG_CONFIG_PATH: "",
    MLK_NODE_OUT: out,
  };
  execFileSync(process.execPath, [path.join(__dirname, "build.js")], { stdio: "inherit", env });
  copy(path.join(out, "Release", "matchlock.node"), path.join(pkgDir, "prebuilds", `linux-${arch}`, "node.napi.glibc.node"));
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
