// The package scenario (scripts/test-packages.sh) as an ES module: launch on
// matchlock-local ($MLK_BIN), exec, stream, files, with named imports.
import { Client, Sandbox, MatchlockError, version } from "matchlock-native";
import matchlock from "matchlock-native";
import assert from "node:assert/strict";

const c = new Client({ binaryPath: process.env.MLK_BIN });
await c.launch(new Sandbox("alpine:latest"));
const r = await c.exec("echo hi", { encoding: "utf8" });
assert.equal(r.stdout, "hi\n");
let out = "";
const s = await c.execStream("printf 'a\\nb\\n'", { stdout: (chunk) => (out += chunk), encoding: "utf8" });
assert.equal(s.exitCode, 0);
assert.equal(out, "a\nb\n");
await c.writeFile("/tmp/scenario.txt", "hello");
assert.equal((await c.readFile("/tmp/scenario.txt")).toString(), "hello");
assert.ok((await c.listFiles("/tmp")).some((f) => f.name === "scenario.txt"));
await c.close();
await c.remove();
assert.equal(typeof MatchlockError, "function");
assert.equal(matchlock.Client, Client);
console.log(`scenario (ESM, matchlock-native, libmatchlock ${version()}): ok`);
