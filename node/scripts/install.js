#!/usr/bin/env node
// The package's install script, as node-gyp-build does it: when the
// prebuilt binary for this platform loads, use it; else build from source
// (scripts/build.js).  MLK_NODE_FROM_SOURCE=1 always builds.
"use strict";

const path = require("node:path");

if (!process.env.MLK_NODE_FROM_SOURCE) {
  try {
    process.env.MLK_NODE_PREBUILT_ONLY = "1";
    require(path.join(__dirname, "..", "lib", "native.js"));
    process.exit(0);
  } catch {
    // no prebuilt for this machine, or it does not load here: build
  } finally {
    delete process.env.MLK_NODE_PREBUILT_ONLY;
  }
}
require("./build.js");
