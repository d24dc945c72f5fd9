"use strict";
// Error paths: bad options, a missing or dead server, timeouts, AbortSignal
// cancellation, callbacks that throw, error mapping through the C codes.
const test = require("node:test");
const assert = require("node:assert/strict");
const { m, created, newClient, bin } = require("./helpers");

const n = m._native;

test("builder validation errors name the upstream error and say what to do", async () => {
  // as the official SDK: the builder records, paramsJSON()/create() report the first failure
  const later = (sb, check) => assert.throws(() => sb.paramsJSON(), check);
  later(new m.Sandbox(""), (e) => e instanceof m.ValidationError && e.upstreamName === "ErrImageRequired");
  later(new m.Sandbox("a").withCPUs("two"), (e) => e instanceof m.ValidationError && /cpus must be a number/.test(e.message));
  later(new m.Sandbox("a").mount("/w", { type: "nfs" }), (e) => e instanceof m.ValidationError && /host_fs, memory or overlay/.test(e.message));
  // static mutations ride along with a callback rule, as upstream allows (Node used to refuse them)
  assert.doesNotThrow(() => new m.Sandbox("a").withNetworkInterception({ rules: [{ hook: () => {}, setHeaders: { A: "1" } }] }).paramsJSON());
  later(new m.Sandbox("a").withNetworkInterception({ rules: [{ action: "block", hook: () => {} }] }),
    (e) => e instanceof m.ValidationError && e.errname === "MLK_EINVALID_NET_HOOK" && /empty or "allow" action/.test(e.message));
  later(new m.Sandbox("a").withVFSInterception({ rules: [{ hook: () => {}, actionHook: () => "allow" }] }),
    (e) => e instanceof m.ValidationError && /more than one callback/.test(e.message));
  later(new m.Sandbox("a").withVFSInterception({ rules: [{ phase: "before", hook: () => {} }] }),
    (e) => e instanceof m.ValidationError && e.errname === "MLK_EINVALID_VFS_HOOK" && /phase=after; phase must be "after"/.test(e.message));
  // the first failure wins
  later(new m.Sandbox("a").withCPUs("two").withNetworkMTU("x"), /cpus/);
  const c = newClient();
  await assert.rejects(c.create(new m.Sandbox("alpine:latest").withNetworkMTU(-1)), (e) => {
    assert.ok(e instanceof m.ValidationError);
    assert.equal(e.upstreamName, "ErrInvalidNetworkMTU");
    assert.equal(e.upstreamName, n.mlk_err_upstream_name(e.status));
    assert.equal(e.errname, "MLK_EINVALID_MTU");
    return true;
  });
  await c.close();
});

test("error classes map every C code; RPCError keeps the server's code", () => {
  for (let code = -1; code >= -40; code--) {
    if (!n.mlk_errname(code)) continue;
    const e = m.makeError(code, "x", 0);
    assert.ok(e instanceof m.MatchlockError);
    assert.equal(e.errname, n.mlk_errname(code));
  }
  const e = require("../lib/errors").makeError(n.MLK_ERPC, "boom", -32001);
  assert.ok(e instanceof m.RPCError);
  assert.equal(e.code, -32001);
  assert.equal(e.rpcCode, -32001);
  assert.equal(e.status, n.MLK_ERPC);
  assert.ok(e.isExecError());
  assert.equal(m.RPCError.FILE_FAILED, -32002);
  const t = require("../lib/errors").makeError(n.MLK_ETIMEDOUT, "", 0);
  assert.ok(t instanceof m.TimeoutError);
  assert.equal(t.errname, "MLK_ETIMEDOUT");
});

test("a binary that does not exist fails with a ProcessError naming the fix", async () => {
  const c = new m.Client({ binaryPath: "/nonexistent/matchlock" });
  // the core's message names the cause and the fix (the hint follows the cause, not the call)
  await assert.rejects(c.exec("true"), (e) => e instanceof m.ProcessError && e.status === n.MLK_ESPAWN &&
    /nonexistent\/matchlock/.test(e.message) && /MATCHLOCK_BIN or the configured binary/.test(e.message));
});

test("a spawn that ran out of descriptors is not told to check the binary", () => {
  const e = require("../lib/errors").makeError(n.MLK_ESPAWN,
    "cannot create the child's pipes: Too many open files (the process is out of file descriptors)", 0);
  assert.ok(e instanceof m.ProcessError);
  assert.doesNotMatch(e.message, /binary/);
});

test("calls before create fail with the server's error", async () => {
  const c = newClient();
  await assert.rejects(c.exec("true"), (e) => e instanceof m.RPCError && e.isVMError());
  await c.remove(); // nothing created: no-op, as upstream
  await c.close();
});

test("a dead server fails pending and later calls (and the message carries its stderr)", async (t) => {
  const c = await created(t);
  const pending = c.exec("sleep 30");
  // kill the matchlock-local process behind this client (our only rpc child now)
  const { execFileSync } = require("node:child_process");
  const kids = execFileSync("pgrep", ["-P", String(process.pid), "-f", "rpc"]).toString().trim().split("\n").map(Number);
  assert.equal(kids.length, 1);
  process.kill(kids[0], "SIGKILL");
  await assert.rejects(pending, (e) => e instanceof m.ClosedError && e.errname === "MLK_EDEAD" && /create a new Client/.test(e.message));
  await assert.rejects(c.exec("true"), (e) => e instanceof m.ClosedError);
});

test("timeoutMs: exec times out with a TimeoutError, the client stays usable", async (t) => {
  const c = await created(t);
  const t0 = Date.now();
  await assert.rejects(c.exec("sleep 10", { timeoutMs: 200 }), (e) => e instanceof m.TimeoutError && e.errname === "MLK_ETIMEDOUT");
  assert.ok(Date.now() - t0 < 5000);
  assert.equal((await c.exec("echo ok", { encoding: "utf8" })).stdout, "ok\n");
});

test("AbortSignal cancels in-flight calls; an aborted signal never starts one", async (t) => {
  const c = await created(t);
  const ac = new AbortController();
  const p = c.exec("sleep 10", { signal: ac.signal });
  setTimeout(() => ac.abort(), 100);
  const t0 = Date.now();
  await assert.rejects(p, (e) => e instanceof m.CancelledError && e.cause !== undefined);
  assert.ok(Date.now() - t0 < 3000);
  await assert.rejects(c.execStream("sleep 10", { signal: AbortSignal.abort("nope") }), (e) => e instanceof m.CancelledError && /nope/.test(e.message));
  await assert.rejects(c.execStream("sleep 10", { signal: AbortSignal.timeout(150) }), m.CancelledError);
  assert.equal((await c.exec("echo alive", { encoding: "utf8" })).stdout, "alive\n");
});

test("a throwing callback rejects its call with a CallbackError and never crashes", async (t) => {
  const c = await created(t);
  const boom = new Error("boom from callback");
  await assert.rejects(
    c.execStream("while true; do echo tick; sleep 0.05; done", { stdout: () => { throw boom; } }),
    (e) => e instanceof m.CallbackError && e.cause === boom && /boom from callback/.test(e.message),
  );
  // an async callback that rejects is reported the same way
  await assert.rejects(
    c.execStream("while true; do echo tick; sleep 0.05; done", { stdout: async () => { throw boom; } }),
    (e) => e instanceof m.CallbackError && e.cause === boom,
  );
  // a stdin source that throws
  async function* bad() { yield "x"; throw new Error("stdin broke"); }
  await assert.rejects(c.execPipe("cat; sleep 5", { stdin: bad() }), (e) => e instanceof m.CallbackError && /stdin broke/.test(e.message));
  assert.equal((await c.exec("echo still-fine", { encoding: "utf8" })).stdout, "still-fine\n");
});

test("bad arguments throw TypeErrors from the addon, not crashes", () => {
  assert.throws(() => n.exec({}, "x"), TypeError);
  assert.throws(() => n.mlk_sandbox_set_cpus({}, 1), /mlk_sandbox handle/);
  assert.throws(() => n.mlk_sandbox_set_dns_servers(n.mlk_sandbox_new("a"), [1, 2]), /array of strings/);
  assert.throws(() => n.clientNew(n.mlk_sandbox_new("a")), /config handle/);
});

test("create twice is a StateError; the builder is free again as soon as create() returns", async (t) => {
  const c = newClient();
  t.after(() => c.close().then(() => c.remove()));
  const sb = new m.Sandbox("alpine:latest").withEnv("WHICH", "first");
  const p = c.create(sb);
  sb.withEnv("WHICH", "second"); // the core copied the params already
  await p;
  assert.equal((await c.exec("echo $WHICH", { encoding: "utf8" })).stdout, "first\n");
  sb.withCPUs(1);
  await assert.rejects(c.create(sb), (e) => e instanceof m.StateError && e.errname === "MLK_ESTATE");
});

test("AbortSignal cancels the core's async create/log/allow-list calls (mlk_cancel), not just the promise", async (t) => {
  const c = newClient();
  t.after(() => c.close());
  const ac = new AbortController();
  const p = c.create(new m.Sandbox("alpine:latest"), { signal: ac.signal });
  ac.abort(new Error("changed my mind"));
  await assert.rejects(p, (e) => e instanceof m.CancelledError && /create was aborted .*changed my mind/.test(e.message));
  const c2 = await created(t);
  await assert.rejects(c2.log({ signal: AbortSignal.abort() }), m.CancelledError);
  const ac2 = new AbortController();
  const q = c2.portForward("18977:18978", { signal: ac2.signal });
  ac2.abort();
  await assert.rejects(q, m.CancelledError);
  assert.equal((await c2.exec("echo ok", { encoding: "utf8" })).stdout, "ok\n", "the client is still usable");
  assert.equal(n.stats().jobs, 0, "no threadpool job was used");
});

test("a core the addon was not built for is refused at load, with what to do", () => {
  const n = require("../lib/native");
  const h = n.MLK_VERSION;
  n._checkVersion(h, h, "same");
  n._checkVersion(h + 1, h, "newer");
  assert.throws(() => n._checkVersion(h + 10000, h, "2.0.0"), /libmatchlock 2\.0\.0 is not compatible.*rebuild the addon/);
  assert.throws(() => n._checkVersion(h - 1, h, "older"), /libmatchlock older is not compatible/);
});
