// The package scenario (scripts/test-packages.sh) from CommonJS.
const { Client, Sandbox, MatchlockError } = require("matchlock-native");
const assert = require("node:assert/strict");

(async () => {
  const c = new Client({ binaryPath: process.env.MLK_BIN });
  await c.launch(new Sandbox("alpine:latest"));
  assert.equal((await c.exec("echo hi", { encoding: "utf8" })).stdout, "hi\n");
  let out = "";
  await c.execStream("printf 'a\\nb\\n'", { stdout: (chunk) => (out += chunk), encoding: "utf8" });
  assert.equal(out, "a\nb\n");
  await c.writeFile("/tmp/scenario.txt", "hello");
  assert.equal((await c.readFile("/tmp/scenario.txt")).toString(), "hello");
  await c.close();
  await c.remove();
  assert.equal(typeof MatchlockError, "function");
  console.log("scenario (CommonJS, matchlock-native): ok");
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
