"use strict";
// Many calls in flight at once, several clients, worker threads.
const test = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");
const { Worker } = require("node:worker_threads");
const { m, created, newClient, bin } = require("./helpers");

test("1000 concurrent file calls and 100 concurrent execs on one client", async (t) => {
  const c = await created(t);
  await c.writeFile("/tmp/n", "payload");
  const reads = Array.from({ length: 1000 }, () => c.readFile("/tmp/n"));
  const execs = Array.from({ length: 100 }, (_, i) => c.exec(`echo ${i}`, { encoding: "utf8" }));
  const [r, e] = await Promise.all([Promise.all(reads), Promise.all(execs)]);
  assert.ok(r.every((b) => b.toString() === "payload"));
  e.forEach((x, i) => assert.equal(x.stdout, `${i}\n`));
  assert.equal(m._native.stats().pending, 0);
});

test("several clients at once, each with its own sandbox", async (t) => {
  const clients = await Promise.all(Array.from({ length: 6 }, () => created(t)));
  const ids = new Set(clients.map((c) => c.vmId));
  assert.equal(ids.size, 6);
  const outs = await Promise.all(clients.map((c, i) => c.execStream(`echo client${i}`, { stdout: () => {} }).then(() => c.exec(`echo ${i}`, { encoding: "utf8" }))));
  outs.forEach((o, i) => assert.equal(o.stdout, `${i}\n`));
});

test("the addon works in worker threads (state per environment) alongside the main thread", async (t) => {
  const main = await created(t);
  const code = `
    const { parentPort, workerData } = require("node:worker_threads");
    process.env.XDG_STATE_HOME = workerData.state;
    const m = require(workerData.pkg);
    (async () => {
      const c = new m.Client({ binaryPath: workerData.bin });
      await c.create(new m.Sandbox("alpine:latest"));
      const outs = await Promise.all([1, 2, 3].map((i) => c.exec("echo w" + i, { encoding: "utf8" })));
      const sb = new m.Sandbox("alpine:latest").withCPUs(1);
      await c.close();
      await c.remove();
      parentPort.postMessage({ outs: outs.map((o) => o.stdout), params: sb.params() });
    })().catch((e) => parentPort.postMessage({ error: String(e.stack || e) }));
  `;
  const runWorker = () =>
    new Promise((resolve, reject) => {
      const w = new Worker(code, { eval: true, workerData: { pkg: path.resolve(__dirname, ".."), bin, state: process.env.XDG_STATE_HOME } });
      w.once("message", resolve);
      w.once("error", reject);
    });
  const [a, b, mine] = await Promise.all([runWorker(), runWorker(), main.exec("echo main", { encoding: "utf8" })]);
  for (const r of [a, b]) {
    assert.equal(r.error, undefined, r.error);
    assert.deepEqual(r.outs, ["w1\n", "w2\n", "w3\n"]);
    assert.equal(r.params.resources.cpus, 1);
  }
  assert.equal(mine.stdout, "main\n");
  // a worker terminated while a call is in flight tears down cleanly
  const w = new Worker(
    `const m = require(${JSON.stringify(path.resolve(__dirname, ".."))});
     const c = new m.Client({ binaryPath: ${JSON.stringify(bin)} });
     c.create(new m.Sandbox("alpine:latest")).then(() => { require("node:worker_threads").parentPort.postMessage("up"); return c.exec("sleep 30"); });`,
    { eval: true, env: { ...process.env } },
  );
  await new Promise((r) => w.once("message", r));
  await w.terminate();
  assert.equal((await main.exec("echo after", { encoding: "utf8" })).stdout, "after\n");
});
