"use strict";
// Loads the Node-API addon and checks that the C library inside it is
// compatible with the header it was built from.  Looked up the way
// node-gyp-build does: a local build (build/Release/matchlock.node, made by
// the install script or `npm run build`) first, then the package's prebuilt
// binary for this platform, prebuilds/<platform>-<arch>/node.napi.<libc>.node
// on Linux (glibc or musl), prebuilds/darwin-<arm64|x64>/node.napi.node on macOS.
const fs = require("node:fs");
const path = require("node:path");

const pkgDir = path.join(__dirname, "..");

function libc() {
  if (process.platform !== "linux") return "";
  const report = process.report?.getReport?.();
  return report?.header?.glibcVersionRuntime ? "glibc" : "musl";
}

// The prebuilt binary's place for this machine (none may be there).
function prebuiltPath() {
  const tag = libc();
  return path.join(pkgDir, "prebuilds", `${process.platform}-${process.arch}`, `node.napi${tag ? `.${tag}` : ""}.node`);
}

function candidates() {
  const prebuilt = prebuiltPath();
  if (process.env.MLK_NODE_PREBUILT_ONLY) return [prebuilt];   // scripts/install.js
  return [path.join(pkgDir, "build", "Release", "matchlock.node"), prebuilt];
}

function load() {
  const tried = [];
  for (const file of candidates()) {
    if (!fs.existsSync(file)) continue;
    try {
      return require(file);
    } catch (e) {
      tried.push(`${file}: ${e.message}`);
    }
  }
  const err = Object.assign(new Error(
    `matchlock-native: no loadable native addon (${tried.length ? tried.join("; ") : `none of ${candidates().join(", ")} exists`}). ` +
      `Build it with "npm run build" in ${pkgDir} (needs a C/C++ compiler, pkg-config, libevent-dev and libmsgpack-dev; macOS: brew install pkg-config libevent msgpack).`,
  ), { code: "MLK_NO_ADDON", prebuilt: prebuiltPath(), tried });
  throw err;
}

// A module built against header `built` runs on core `runtime` when the
// majors match and the core is at least as new.  Run on the real values at
// load; the tests call it with others.
function checkVersion(runtime, built, runtimeStr) {
  if (Math.floor(runtime / 10000) !== Math.floor(built / 10000) || runtime < built) {
    throw new Error(
      `matchlock-native: libmatchlock ${runtimeStr} is not compatible with the header ` +
        `version ${built} the addon was built against; rebuild the addon ("npm run build").`,
    );
  }
}

const addon = load();
checkVersion(addon.mlk_version(), addon.MLK_VERSION, addon.mlk_version_str());
addon._checkVersion = checkVersion;
module.exports = addon;
