"use strict";
// The addon never keeps an idle process alive and leaks no handles.
const test = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");
const { spawnSync } = require("node:child_process");
const { m, bin } = require("./helpers");

const pkg = path.resolve(__dirname, "..");

function runNode(code, timeout = 30000) {
  const r = spawnSync(process.execPath, ["--expose-gc", "-e", code], {
    timeout,
    env: { ...process.env, MLK_PKG: pkg, MLK_BIN: bin },
    encoding: "utf8",
  });
  return r;
}

test("a process exits by itself once its calls are done (client left open)", () => {
  const r = runNode(`
    const m = require(process.env.MLK_PKG);
    const c = new m.Client({ binaryPath: process.env.MLK_BIN });
    c.create(new m.Sandbox("alpine:latest")).then(() => c.exec("echo hi")).then((r) => console.log(r.stdout.toString().trim()));
  `);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), "hi");
  assert.equal(r.signal, null, "the process had to be killed: something kept the loop alive");
});

test("a process with only a constructed client (never used) exits at once", () => {
  const r = runNode(`const m = require(process.env.MLK_PKG); new m.Client({ binaryPath: process.env.MLK_BIN }); new m.Sandbox("x");`, 10000);
  assert.equal(r.status, 0, r.stderr);
});

test("pending calls keep the process alive until they complete", () => {
  const r = runNode(`
    const m = require(process.env.MLK_PKG);
    const c = new m.Client({ binaryPath: process.env.MLK_BIN });
    c.create(new m.Sandbox("alpine:latest")).then(() => c.exec("sleep 0.5; echo late")).then((r) => console.log(r.stdout.toString().trim()));
  `);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), "late");
});

test("no handles or requests linger after calls complete; unused clients are collected", async () => {
  const before = m._native.stats();
  const r = runNode(`
    const m = require(process.env.MLK_PKG);
    (async () => {
      for (let i = 0; i < 5; i++) {
        const c = new m.Client({ binaryPath: process.env.MLK_BIN });
        await c.create(new m.Sandbox("alpine:latest"));
        await c.exec("true");
        await c.close();
      }
      const s1 = m._native.stats();
      global.gc(); await new Promise((r) => setTimeout(r, 100)); global.gc();
      await new Promise((r) => setTimeout(r, 300));
      const s2 = m._native.stats();
      console.log(JSON.stringify({ s1, s2, handles: process._getActiveHandles().length }));
    })();
  `);
  assert.equal(r.status, 0, r.stderr);
  const { s1, s2 } = JSON.parse(r.stdout);
  assert.equal(s1.pending, 0);
  assert.equal(s1.jobs, 0);
  // the last client may still sit in a register or stack slot; the rest must be gone
  assert.ok(s2.clients <= 1, `clients still alive after GC: ${r.stdout}`);
  assert.ok(s2.handles <= 3, `handles still alive after GC: ${r.stdout}`);
  assert.ok(before.pending === 0);
});

test("an unclosed client's matchlock process is stopped at exit", () => {
  const r = runNode(`
    const m = require(process.env.MLK_PKG);
    const c = new m.Client({ binaryPath: process.env.MLK_BIN });
    c.create(new m.Sandbox("alpine:latest")).then(() => {
      const kids = require("node:child_process").execFileSync("pgrep", ["-P", String(process.pid), "-f", "rpc"]).toString().trim();
      console.log(kids);
    });
  `);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout.trim(), /^\d+$/);
  const pid = Number(r.stdout.trim());
  let alive = false;
  try { process.kill(pid, 0); alive = true; } catch {}
  assert.equal(alive, false, `matchlock-local ${pid} outlived its Node process`);
});

test("close() releases every descriptor of the client at once, without GC (200 clients)", () => {
  // The handles stay referenced, so only close() itself can free their fds.
  // The public Client once (every fd goes at close), then 200 raw clients: each starts its matchlock process, so each held 3 fds.
  const r = runNode(`
    const fs = require("node:fs");
    const m = require(process.env.MLK_PKG);
    const n = m._native;
    const fds = () => fs.readdirSync("/proc/self/fd").length;
    (async () => {
      // an open client keeps the core's shared I/O thread (its epoll and
      // eventfds) up through both counts
      const anchor = new m.Client({ binaryPath: process.env.MLK_BIN });
      await anchor.start();
      const warm = new m.Client({ binaryPath: process.env.MLK_BIN });
      await warm.create(new m.Sandbox("alpine:latest"));
      const open = fds();
      await warm.close();
      await warm.remove();
      const before = fds();
      const keep = [warm, anchor];
      for (let i = 0; i < 200; i++) {
        const cfg = n.mlk_config_new();
        n.mlk_config_set_binary(cfg, process.env.MLK_BIN);
        const h = n.clientNew(cfg);
        await n.close(h, 2);
        keep.push(h);
      }
      const after = fds();
      const err = await n.exec(keep[2], "true", 0).then(() => "resolved", (e) => e.message);
      await anchor.close();
      console.log(JSON.stringify({ open, before, after, n: keep.length - 1, err }));
    })();
  `, 120000);
  assert.equal(r.status, 0, r.stderr);
  const { open, before, after, n, err } = JSON.parse(r.stdout);
  assert.equal(n, 201);
  assert.ok(open > before, `closing the public Client released no fd (${open} -> ${before})`);
  assert.ok(after - before <= 3, `descriptors grew from ${before} to ${after} over 200 closed clients`);
  assert.match(err, /closed/, "a closed client refuses calls");
});

test("close() releases every descriptor of a client that created a sandbox, without GC; remove() works after", () => {
  // remove() after close runs `matchlock rm` with the config and the kept vm
  // id on the threadpool (removeVm), so nothing keeps the C client: 20
  // referenced public Clients with sandboxes hold no fd once closed.
  const r = runNode(`
    const fs = require("node:fs");
    const m = require(process.env.MLK_PKG);
    const fds = () => fs.readdirSync("/proc/self/fd").length;
    const tick = () => new Promise((res) => setImmediate(res));
    (async () => {
      // an open client keeps the core's shared I/O thread up through the counts
      const anchor = new m.Client({ binaryPath: process.env.MLK_BIN });
      await anchor.start();
      const warm = new m.Client({ binaryPath: process.env.MLK_BIN });
      await warm.create(new m.Sandbox("alpine:latest"));
      await warm.close();
      await warm.remove();
      await tick();
      const before = fds();
      const keep = [];
      for (let i = 0; i < 20; i++) {
        const c = new m.Client({ binaryPath: process.env.MLK_BIN });
        await c.create(new m.Sandbox("alpine:latest"));
        await c.close();
        keep.push(c);
      }
      await tick();
      const after = fds();
      const err = await keep[0].exec("true").then(() => "resolved", (e) => e.constructor.name + ": " + e.message);
      const ids = keep.map((c) => c.vmId);
      const removed = [], again = [];
      for (const c of keep) {
        removed.push(await c.remove().then(() => "ok", (e) => e.message));
        again.push(await c.remove().then(() => "ok", (e) => e.constructor.name));
      }
      await tick();
      const end = fds();
      await anchor.close();
      console.log(JSON.stringify({ before, after, end, err, ids, removed, again }));
    })();
  `, 120000);
  assert.equal(r.status, 0, r.stderr);
  const { before, after, end, err, ids, removed, again } = JSON.parse(r.stdout);
  assert.ok(after - before <= 3, `descriptors grew from ${before} to ${after} over 20 closed clients with sandboxes`);
  assert.ok(end - before <= 3, `descriptors grew from ${before} to ${end} after remove()`);
  assert.match(err, /^ClosedError: .*new Client/, "a closed client refuses calls as before");
  assert.ok(ids.every((id) => /^vm-/.test(id)), ids.join(","));
  assert.deepEqual(removed, Array(20).fill("ok"));
  assert.deepEqual(again, Array(20).fill("CLIError"), "a second remove fails: the first really removed the VM");
});
