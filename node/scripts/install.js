#!/usr/bin/env node
// The package's install script, as node-gyp-build does it: when the
// prebuilt binary for this machine (prebuilds/<platform>-<arch>/
// node.napi.<libc>.node) loads, use it; else say why not and build from
// source (scripts/build.js).  MLK_NODE_FROM_SOURCE=1 always builds.
"use strict";

const path = require("node:path");

if (!process.env.MLK_NODE_FROM_SOURCE) {
  try {
    process.env.MLK_NODE_PREBUILT_ONLY = "1";
    require(path.join(__dirname, "..", "lib", "native.js"));
    process.exit(0);
  } catch (e) {
    const why = e.code !== "MLK_NO_ADDON"
      ? `the prebuilt binary cannot be used here (${e.message})`
      : e.tried.length
      ? `the prebuilt binary does not load here (${e.tried.join("; ")})`
      : `this package has no prebuilt binary for ${process.platform}-${process.arch} ` +
        `(${path.relative(path.join(__dirname, ".."), e.prebuilt)} is missing)`;
    console.error(
      `matchlock-native: ${why}; building from source, which needs a C and C++ compiler, pkg-config, ` +
        "and libevent and msgpack-c with their headers (Debian/Ubuntu: libevent-dev libmsgpack-dev).",
    );
  } finally {
    delete process.env.MLK_NODE_PREBUILT_ONLY;
  }
}
require("./build.js");
