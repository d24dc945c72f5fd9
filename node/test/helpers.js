"use strict";
// Shared test setup: the server of the end-to-end tests, a private state
// dir, vectors, and the one table of what only one backend can show.
//
// The server is $MLK_E2E_SERVER (default $MATCHLOCK_LOCAL_BIN, else the built
// matchlock-local); scripts/test-all.sh runs the end-to-end files a second
// time against the conformance peer (upstream's own handler with a
// process-backed VM).  $MLK_E2E_BACKEND names the backend ("local" or
// "conformance"); without it the server's `version` decides.  A test that
// needs what only matchlock-local shows skips with skipUnless(t, CAP).
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");

const repo = path.resolve(__dirname, "..", "..");
const bin = process.env.MLK_E2E_SERVER || process.env.MATCHLOCK_LOCAL_BIN || path.join(repo, "build", "matchlock-local");
if (!fs.existsSync(bin)) {
  throw new Error(`server not found at ${bin}: build matchlock-local (make build) or set MLK_E2E_SERVER`);
}
if (!process.env.MLK_NODE_TEST_STATE) {
  process.env.MLK_NODE_TEST_STATE = fs.mkdtempSync(path.join(os.tmpdir(), "mlk-node-test-"));
  process.on("exit", () => fs.rmSync(process.env.MLK_NODE_TEST_STATE, { recursive: true, force: true }));
}
// matchlock-local keeps state under $XDG_STATE_HOME, upstream under
// $HOME/.matchlock, the conformance peer its VM roots in $CONFPEER_STATE
process.env.XDG_STATE_HOME = process.env.MLK_NODE_TEST_STATE;
process.env.HOME = process.env.MLK_NODE_TEST_STATE;
process.env.CONFPEER_STATE = path.join(process.env.MLK_NODE_TEST_STATE, "confpeer");

// What the conformance peer cannot show, and why (its README); matchlock-local
// shows all of it.  The same table is in tests/c/e2e_server.c.
const CONFORMANCE_LACKS = {
  cmd_file_events: "no FUSE layer: a command's own writes produce no VFS events (only the SDK's file calls on VFS mounts do)",
  net_traffic: "no network proxy runs: no network events, hooks or allow-list enforcement on traffic",
  isolation: "commands are plain processes (no namespaces, no resource limits)",
  close_stops_commands:
    "upstream's close waits for in-flight requests to end, so a close while a command runs ends at the SDK's close deadline (the server is killed)",
  local_behaviour: "this checks matchlock-local's own behaviour where upstream's differs (docs/testing.md lists each difference)",
};

let backendName = process.env.MLK_E2E_BACKEND;
function backend() {
  if (!backendName) {
    let out = "";
    try {
      out = require("node:child_process").execFileSync(bin, ["version"], { encoding: "utf8", timeout: 10000 });
    } catch {}
    // matchlock-local's version says so: "matchlock 0.1.0-local (commit: ...)"
    backendName = out.split("\n")[0].includes("-local") ? "local" : "conformance";
  }
  return backendName;
}

/** Why the server cannot show cap, or null when it can. */
function lacks(cap) {
  if (!(cap in CONFORMANCE_LACKS)) throw new Error(`unknown capability ${cap}`);
  return backend() === "local" ? null : CONFORMANCE_LACKS[cap];
}

/** Skip test context t (returns true) when the server cannot show cap. */
function skipUnless(t, cap) {
  const why = lacks(cap);
  if (why) t.skip(`${backend()} backend: ${why}`);
  return Boolean(why);
}

const vectorsDir = process.env.MLK_VECTORS_DIR || path.resolve(repo, "tests", "vectors");

const m = require("..");

function newClient(extra = {}) {
  return new m.Client({ binaryPath: bin, ...extra });
}

async function created(t, sandbox) {
  const c = newClient();
  await c.create(sandbox ?? new m.Sandbox("alpine:latest"));
  if (t) t.after(() => c.close().then(() => c.remove()).catch(() => {}));
  return c;
}

function readJsonl(name) {
  return fs
    .readFileSync(path.join(vectorsDir, name), "utf8")
    .split("\n")
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l));
}

module.exports = { m, bin, repo, vectorsDir, newClient, created, readJsonl, lacks, skipUnless, backend };
