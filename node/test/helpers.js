"use strict";
// Shared test setup: the matchlock-local peer, a private state dir, vectors.
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");

const repo = path.resolve(__dirname, "..", "..");
const bin = process.env.MATCHLOCK_LOCAL_BIN || path.join(repo, "build", "matchlock-local");
if (!fs.existsSync(bin)) {
  throw new Error(`matchlock-local not found at ${bin}: build it (make build) or set MATCHLOCK_LOCAL_BIN`);
}
if (!process.env.MLK_NODE_TEST_STATE) {
  process.env.MLK_NODE_TEST_STATE = fs.mkdtempSync(path.join(os.tmpdir(), "mlk-node-test-"));
  process.on("exit", () => fs.rmSync(process.env.MLK_NODE_TEST_STATE, { recursive: true, force: true }));
}
process.env.XDG_STATE_HOME = process.env.MLK_NODE_TEST_STATE;

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

module.exports = { m, bin, repo, vectorsDir, newClient, created, readJsonl };
