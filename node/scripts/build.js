#!/usr/bin/env node
// Build the addon without node-gyp and without downloading anything:
//   1. swig -javascript -node -c++ over src/matchlock_node.i
//   2. compile the wrapper (C++17) and the core's C sources
//   3. link build/Release/matchlock.node (self-contained: the core is inside;
//      libevent and msgpack-c come from the system).
// Runs from `npm install` (the package's install script) and from
// run-tests.sh.  Node headers come from the machine (/usr/include/node, or
// $MLK_NODE_INCLUDE); incremental: a step is skipped when its outputs are
// newer than its inputs.  Set MLK_NODE_DEBUG=1 for -O0 -g.
"use strict";

const { execFileSync } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");

const pkgDir = path.resolve(__dirname, "..");
const repo = path.resolve(pkgDir, "..");
const outDir = path.join(pkgDir, "build");
const objDir = path.join(outDir, "obj");
const target = path.join(outDir, "Release", "matchlock.node");
const verbose = !!process.env.MLK_NODE_VERBOSE;
const debug = !!process.env.MLK_NODE_DEBUG;

function fail(msg) {
  console.error(`matchlock-native build: ${msg}`);
  process.exit(1);
}

function run(cmd, args) {
  if (verbose) console.log([cmd, ...args].join(" "));
  try {
    return execFileSync(cmd, args, { stdio: ["ignore", "pipe", "inherit"] }).toString();
  } catch (e) {
    if (e.code === "ENOENT") fail(`'${cmd}' is not installed (see node/apt-packages.txt; run scripts/deps.sh)`);
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
  return run("pkg-config", args).trim().split(/\s+/).filter(Boolean);
}

function nodeInclude() {
  const candidates = [
    process.env.MLK_NODE_INCLUDE,
    path.join(path.dirname(path.dirname(process.execPath)), "include", "node"),
    "/usr/include/node",
    "/usr/local/include/node",
  ].filter(Boolean);
  for (const dir of candidates) {
    if (fs.existsSync(path.join(dir, "node.h"))) return dir;
  }
  fail(`node.h not found (looked in ${candidates.join(", ")}); install the Node headers or set MLK_NODE_INCLUDE`);
}

const coreDir = path.join(repo, "core");
const abiInclude = path.join(repo, "abi", "include");
const header = path.join(abiInclude, "matchlock.h");
if (!fs.existsSync(header)) fail(`the C ABI header is missing: ${header} (the package builds inside the libmatchlock tree)`);

const nodeInc = nodeInclude();
const deps = ["libevent_core", "libevent_pthreads", "msgpack"];
const depCflags = pkgconfig(["--cflags", ...deps]);
const depLibs = pkgconfig(["--libs", ...deps]);
const opt = debug ? ["-O0", "-g"] : ["-O2", "-g"];

fs.mkdirSync(objDir, { recursive: true });
fs.mkdirSync(path.dirname(target), { recursive: true });

// 1. SWIG
const iface = path.join(pkgDir, "src", "matchlock_node.i");
const shared = path.join(repo, "bindings", "matchlock.i");
const glue = path.join(pkgDir, "src", "glue.hxx");
const wrap = path.join(outDir, "matchlock_wrap.cxx");
if (stale(wrap, [iface, shared, header])) {
  run("swig", ["-javascript", "-node", "-c++", `-I${path.join(repo, "bindings")}`, `-I${abiInclude}`, "-o", wrap, iface]);
}

// 2. compile
const objects = [];
const cflags = ["-fPIC", "-fvisibility=hidden", ...opt, `-I${abiInclude}`, `-I${coreDir}`, ...depCflags];
const coreSources = fs.readdirSync(coreDir).filter((f) => f.endsWith(".c")).sort();
const coreHeaders = fs.readdirSync(coreDir).filter((f) => f.endsWith(".h")).map((f) => path.join(coreDir, f));
for (const f of coreSources) {
  const src = path.join(coreDir, f);
  const obj = path.join(objDir, f.replace(/\.c$/, ".o"));
  if (stale(obj, [src, header, ...coreHeaders])) {
    run("cc", ["-std=gnu11", "-DMLK_BUILDING", "-D_GNU_SOURCE", ...cflags, "-c", src, "-o", obj]);
  }
  objects.push(obj);
}
const wrapObj = path.join(objDir, "matchlock_wrap.o");
if (stale(wrapObj, [wrap, glue, header])) {
  run("c++", [
    "-std=c++17", "-DBUILDING_NODE_EXTENSION", "-D_FILE_OFFSET_BITS=64", "-DNODE_GYP_MODULE_NAME=matchlock",
    "-Wno-unused-parameter", "-Wno-deprecated-declarations",
    ...cflags, `-I${nodeInc}`, `-I${path.join(pkgDir, "src")}`, "-c", wrap, "-o", wrapObj,
  ]);
}
objects.push(wrapObj);

// 3. link (never --no-undefined: node and libuv symbols come from the executable)
if (stale(target, objects)) {
  run("c++", ["-shared", "-Wl,-z,now", "-o", target, ...objects, ...depLibs, "-lpthread", "-lm"]);
}
if (verbose) console.log(`built ${target}`);
