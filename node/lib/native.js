"use strict";
// Loads the compiled addon (build/Release/matchlock.node) and checks that
// the C library inside it is compatible with the header it was built from.
const path = require("node:path");

const file = path.join(__dirname, "..", "build", "Release", "matchlock.node");
let addon;
try {
  addon = require(file);
} catch (e) {
  const err = new Error(
    `matchlock-native: cannot load the native addon ${file}: ${e.message}. ` +
      `Build it with "npm run build" in ${path.dirname(__dirname)} ` +
      `(needs swig, a C/C++ compiler, libevent-dev and libmsgpack-dev; see node/apt-packages.txt).`,
  );
  err.cause = e;
  throw err;
}

const runtime = addon.mlk_version();
const built = addon.MLK_VERSION;
if (Math.floor(runtime / 10000) !== Math.floor(built / 10000) || runtime < built) {
  throw new Error(
    `matchlock-native: libmatchlock ${addon.mlk_version_str()} is not compatible with the header ` +
      `version ${built} the addon was built against; rebuild the addon ("npm run build").`,
  );
}

module.exports = addon;
