"use strict";
// Shared test setup: the server of the end-to-end tests, a private state
// dir, vectors, and what the server may not show.
//
// The server is $MLK_E2E_SERVER (default $MATCHLOCK_LOCAL_BIN, else the built
// matchlock-local); `make test-e2e MATCHLOCK_BIN=...` names one.
// $MLK_E2E_BACKEND names the backend ("local" or "matchlock"); without it
// the server's `version` decides.  A test that needs what a server may lack
// skips with skipUnless(t, CAP), CAP from tests/e2e/capabilities.tsv, the
// table the four languages share.
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
// $HOME/.matchlock
process.env.XDG_STATE_HOME = process.env.MLK_NODE_TEST_STATE;
process.env.HOME = process.env.MLK_NODE_TEST_STATE;

// tests/e2e/capabilities.tsv: capability -> { lackedBy, why }
const capabilities = new Map();
for (const line of fs.readFileSync(path.join(repo, "tests", "e2e", "capabilities.tsv"), "utf8").split("\n")) {
  const f = line.split("\t");
  if (line.startsWith("#") || f.length !== 3) continue;
  capabilities.set(f[0], { lackedBy: f[1].split(","), why: f[2] });
}

let backendName = process.env.MLK_E2E_BACKEND;
function backend() {
  if (backendName && !["local", "matchlock"].includes(backendName)) {
    throw new Error(`MLK_E2E_BACKEND=${backendName}: the backends are "local" and "matchlock"`);
  }
  if (!backendName) {
    let out = "";
    try {
      out = require("node:child_process").execFileSync(bin, ["version"], { encoding: "utf8", timeout: 10000 });
    } catch {}
    // matchlock-local's version says so: "matchlock 0.1.0-local (commit: ...)";
    // the binary's name never counts
    backendName = out.split("\n")[0].includes("-local") ? "local" : "matchlock";
  }
  return backendName;
}

/** Why the server cannot show cap, or null when it can. */
function lacks(cap) {
  const c = capabilities.get(cap);
  if (!c) throw new Error(`unknown capability ${cap} (not in tests/e2e/capabilities.tsv)`);
  const declared = (process.env.MLK_E2E_LACKS || "").split(",").includes(cap);
  return c.lackedBy.includes(backend()) || declared ? c.why : null;
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
