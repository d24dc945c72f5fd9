#!/usr/bin/env node
// Build the Node-API addon without node-gyp and without downloading anything:
//   1. swig -javascript -napi -c++ over src/matchlock_node.i (in the
//      repository only: a packed tarball carries the generated wrapper)
//   2. compile the wrapper and the hand-written src/glue_*.cc (C++17,
//      node-addon-api) and the core's C sources
//   3. link build/Release/matchlock.node: the core is inside; libevent and
//      msgpack-c are what pkg-config finds: the system's shared libraries,
//      or, for the prebuilds, the static ones scripts/pack.js points it at.
// Sources: the repository (../core, ../abi) when this runs inside it, else
// the copies under vendor/ that scripts/pack.js put into the tarball.
// Headers: node-api-headers and node-addon-api (npm devDependencies in the
// repository, vendored into the tarball); SWIG >= 4.2 from node/scripts/swig.sh.
// Incremental: a step is skipped when its outputs are newer than its inputs.
// MLK_NODE_DEBUG=1 for -O0 -g, MLK_NODE_VERBOSE=1 to print the commands.
// CC, CXX, CFLAGS, CXXFLAGS, LDFLAGS and PKG_CONFIG_LIBDIR are honoured, and
// MLK_NODE_OUT (default build/) is where objects and Release/matchlock.node
// go: scripts/pack.js cross-compiles the prebuilds with Zig that way.
// The core's sources, C standard, defines, flags and pkg-config packages are
// its recipe, core/build.json (vendor/core/build.json in the tarball), which
// CMake and the other package builds read too.  `node scripts/build.js
// --print-core` prints the core's compile commands as JSON and builds
// nothing (scripts/check-build-recipe.py compares them with the recipe).
"use strict";

const { execFileSync } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");

const pkgDir = path.resolve(__dirname, "..");
const outDir = path.join(pkgDir, "build");
const binDir = process.env.MLK_NODE_OUT ? path.resolve(process.env.MLK_NODE_OUT) : outDir;
const objDir = path.join(binDir, "obj");
const target = path.join(binDir, "Release", "matchlock.node");
const envFlags = (name) => (process.env[name] || "").split(/\s+/).filter(Boolean);
const cc = process.env.CC || "cc";
const cxx = process.env.CXX || "c++";
const verbose = !!process.env.MLK_NODE_VERBOSE;
const debug = !!process.env.MLK_NODE_DEBUG;

function fail(msg) {
  console.error(`matchlock-native build: ${msg}`);
  process.exit(1);
}

function run(cmd, args, what) {
  if (verbose) console.log([cmd, ...args].join(" "));
  try {
    return execFileSync(cmd, args, { stdio: ["ignore", "pipe", "inherit"] }).toString();
  } catch (e) {
    if (e.code === "ENOENT") fail(`'${cmd}' is not installed${what ? ` (${what})` : ""}`);
    fail(`${cmd} failed (exit ${e.status}); run with MLK_NODE_VERBOSE=1 to see the command`);
  }
}

function mtime(p) {
  try {
    return fs.statSync(p).mtimeMs;
  } catch {
    return 0;
  }
}

function stale(out, inputs) {
  const t = mtime(out);
  return t === 0 || inputs.some((i) => mtime(i) > t);
}

function pkgconfig(args) {
  try {
    return execFileSync("pkg-config", args, { stdio: ["ignore", "pipe", "ignore"] })
      .toString().trim().split(/\s+/).filter(Boolean);
  } catch (e) {
    if (e.code === "ENOENT") fail("'pkg-config' is not installed (Debian: apt-get install pkg-config)");
    return null;
  }
}

// The recipe's system libraries, each the first of its pkg-config names that
// pkg-config knows (msgpack: msgpack-c, then msgpack), with the Debian
// package that has them (macOS: brew install pkg-config libevent msgpack).
function depFlags(recipe) {
  const chosen = recipe.pkg_config.map((p) => [p.any_of.find((n) => pkgconfig(["--exists", n]) !== null), p]);
  const missing = chosen.filter(([pc]) => pc === undefined).map(([, p]) => p);
  if (missing.length) {
    const pkgs = [...new Set(missing.map((p) => p.debian))];
    fail(`missing system libraries ${missing.map((p) => p.any_of.join(" or ")).join(", ")}: install ${pkgs.join(" and ")} ` +
      `(Debian/Ubuntu package names), or use a package with a prebuilt binary`);
  }
  const names = chosen.map(([pc]) => pc);
  return { cflags: pkgconfig(["--cflags", ...names]), libs: pkgconfig(["--libs", ...names]) };
}

function moduleDir(name, vendored) {
  if (fs.existsSync(vendored)) return vendored;
  try {
    return path.dirname(require.resolve(`${name}/package.json`, { paths: [pkgDir] }));
  } catch {
    fail(`the npm package ${name} is missing: run 'npm install' in ${pkgDir} (a devDependency)`);
  }
}

// Where the sources are: the repository, or the tarball's vendor/ copy.
const vendor = path.join(pkgDir, "vendor");
const inTree = fs.existsSync(path.join(pkgDir, "..", "core", "client.c")) && !fs.existsSync(path.join(vendor, "core"));
const repo = path.resolve(pkgDir, "..");
const coreDir = inTree ? path.join(repo, "core") : path.join(vendor, "core");
const abiInclude = inTree ? path.join(repo, "abi", "include") : path.join(vendor, "include");
const header = path.join(abiInclude, "matchlock.h");
if (!fs.existsSync(header)) fail(`the C ABI header is missing: ${header}`);
const recipeFile = path.join(coreDir, "build.json");
const recipe = JSON.parse(fs.readFileSync(recipeFile, "utf8"));

const deps = depFlags(recipe);
const opt = debug ? ["-O0", "-g"] : ["-O2", "-g"];

// The core's compile commands, from the recipe.
const coreFlags = [
  `-std=${recipe.c_std}`, ...recipe.defines.map((d) => `-D${d}`), ...recipe.cflags, ...recipe.warnings,
  ...opt, `-I${abiInclude}`, `-I${coreDir}`, ...deps.cflags,
];
const coreCompiles = recipe.sources.map((f) => {
  const src = path.join(coreDir, f);
  const obj = path.join(objDir, f.replace(/\.c$/, ".o"));
  return { src, obj, args: [...coreFlags, ...envFlags("CFLAGS"), "-c", src, "-o", obj] };
});
if (process.argv[2] === "--print-core") {
  console.log(JSON.stringify({ cc, compiles: coreCompiles.map(({ src, args }) => ({ src, args })) }, null, 1));
  process.exit(0);
}

const napiInclude = path.join(moduleDir("node-api-headers", path.join(vendor, "node-api-headers")), "include");
const addonApi = moduleDir("node-addon-api", path.join(vendor, "node-addon-api"));

fs.mkdirSync(objDir, { recursive: true });
fs.mkdirSync(path.dirname(target), { recursive: true });

// 1. SWIG (repository only)
const srcDir = path.join(pkgDir, "src");
const glueHeaders = [path.join(srcDir, "glue.h"), path.join(srcDir, "uv_min.h")];
// the hand-written units (src/glue_*.cc), compiled like the wrapper
const glueSources = fs.readdirSync(srcDir).filter((f) => /^glue_.*\.cc$/.test(f)).sort();
let wrap = path.join(vendor, "matchlock_wrap.cxx");
if (inTree) {
  const iface = path.join(pkgDir, "src", "matchlock_node.i");
  const shared = path.join(repo, "bindings", "matchlock.i");
  wrap = path.join(outDir, "matchlock_wrap.cxx");
  if (stale(wrap, [iface, shared, header])) {
    const swig = run(path.join(__dirname, "swig.sh"), [], "node/scripts/swig.sh installs SWIG from PyPI").trim();
    run(swig, ["-javascript", "-napi", "-c++", `-I${path.join(repo, "bindings")}`, `-I${abiInclude}`, "-o", wrap, iface]);
  }
} else if (!fs.existsSync(wrap)) {
  fail(`the generated wrapper ${wrap} is missing from the package`);
}

// 2. compile
const objects = [];
// the wrapper (C++): the same visibility as the core
const cflags = ["-fPIC", "-fvisibility=hidden", ...opt, `-I${abiInclude}`, `-I${coreDir}`, ...deps.cflags];
const link = [...envFlags("LDFLAGS"), ...deps.libs, ...recipe.libs.map((l) => `-l${l}`)];
const coreHeaders = fs.readdirSync(coreDir).filter((f) => /\.(h|inc)$/.test(f)).map((f) => path.join(coreDir, f));
for (const { src, obj, args } of coreCompiles) {
  if (stale(obj, [src, header, recipeFile, ...coreHeaders])) run(cc, args, "a C compiler");
  objects.push(obj);
}
const cxxSources = [[wrap, "matchlock_wrap.o"], ...glueSources.map((f) => [path.join(srcDir, f), f.replace(/\.cc$/, ".o")])];
for (const [src, o] of cxxSources) {
  const obj = path.join(objDir, o);
  if (stale(obj, [src, ...glueHeaders, header])) {
    run(cxx, [
      "-std=c++17", "-fexceptions", "-DNAPI_VERSION=8",
      "-Wno-unused-parameter", "-Wno-deprecated-declarations", ...cflags, ...envFlags("CXXFLAGS"),
      `-I${napiInclude}`, `-I${addonApi}`, `-I${srcDir}`, "-c", src, "-o", obj,
    ], "a C++ compiler");
  }
  objects.push(obj);
}

// 3. link (never --no-undefined: the Node-API and libuv symbols come from
// node; on macOS they are looked up when node loads the addon, as node-gyp
// links addons there; scripts/check-macos.sh links it so for aarch64/x86_64)
const linkFlags = process.platform === "darwin"
  ? ["-shared", "-Wl,-undefined,dynamic_lookup", "-Wl,-rpath,@loader_path"]
  : ["-shared", "-Wl,-z,now", "-Wl,-rpath,$ORIGIN"];
if (stale(target, objects)) {
  run(cxx, [...linkFlags, "-o", target, ...objects, ...link]);
}
if (verbose) console.log(`built ${target}`);
