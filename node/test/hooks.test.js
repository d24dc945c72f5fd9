"use strict";
// Hooks as JS functions (sync and async) against the real matchlock-local:
// network hooks through its HTTP proxy, VFS after/dangerous/action/mutate
// hooks, failing hooks, and the event subscription.
const test = require("node:test");
const assert = require("node:assert/strict");
const http = require("node:http");
const path = require("node:path");
const { spawnSync } = require("node:child_process");
const { m, bin, newClient } = require("./helpers");

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(cond, ms = 5000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await sleep(10);
  }
  return true;
}

// A sandbox with a memory workspace (file events need a mount).
function wsSandbox() {
  return new m.Sandbox("alpine:latest").withWorkspace("/workspace").mountMemory("/workspace");
}

async function createdWith(t, sb, config) {
  const c = newClient(config);
  await c.create(sb);
  t.after(() => c.close().then(() => c.remove()).catch(() => {}));
  return c;
}

// ---- the origin server for network hooks: in this process, on 127.0.0.1 ----

let origin;
let hits = [];

test.before(async () => {
  origin = http.createServer((req, res) => {
    hits.push(`${req.method} ${req.url} ${req.headers["x-from-hook"] ?? ""}`);
    res.setHeader("X-Origin", "yes");
    res.end("ORIGIN-BODY\n");
  });
  await new Promise((r) => origin.listen(0, "127.0.0.1", r));
});

test.after(() => origin.close());

const CURL = "curl -sS --max-time 20 -i -w '\\nCODE=%{http_code}\\n'";

function netSandbox(rules) {
  return new m.Sandbox("alpine:latest").allowPrivateIPs().withNetworkInterception({ rules });
}

// ---- network hooks ------------------------------------------------------------------

test("a network hook changes a real HTTP response seen inside the sandbox", async (t) => {
  const port = origin.address().port;
  const seen = [];
  const c = await createdWith(
    t,
    netSandbox([
      {
        name: "rewrite",
        phase: m.NETWORK_HOOK_PHASE_AFTER,
        hosts: ["127.0.0.1"],
        path: "/hooked*",
        hook: (req) => {
          seen.push(req);
          return { response: { headers: { ...req.responseHeaders, "X-Hooked": ["1"] }, setBody: "HOOKED BODY\n" } };
        },
      },
    ]),
  );
  hits = [];
  const out = (await c.exec(`${CURL} 'http://127.0.0.1:${port}/hooked?a=1' -H 'X-Mine: m'`, { encoding: "utf8" })).stdout;
  assert.match(out, /CODE=200/);
  assert.match(out, /\r\n\r\nHOOKED BODY\n/, out);
  assert.match(out, /X-Hooked: 1/, out);
  assert.equal(hits.length, 1, "the origin served the request");
  assert.equal(seen.length, 1);
  const r = seen[0];
  assert.equal(r.phase, "after");
  assert.equal(r.method, "GET");
  assert.equal(r.path, "/hooked");
  assert.deepEqual(r.query, { a: "1" });
  assert.deepEqual(r.requestHeaders["X-Mine"], ["m"]);
  assert.equal(r.statusCode, 200);
  assert.deepEqual(r.responseHeaders["X-Origin"], ["yes"]);
  assert.equal(r.isSSE, false);
  // a path the rule does not match never reaches the hook
  const plain = (await c.exec(`${CURL} http://127.0.0.1:${port}/other`, { encoding: "utf8" })).stdout;
  assert.match(plain, /ORIGIN-BODY/);
  assert.equal(seen.length, 1);
});

test("an async network hook mutates the request; a block answer stops one", async (t) => {
  const port = origin.address().port;
  const c = await createdWith(
    t,
    netSandbox([
      {
        name: "gate",
        phase: "before",
        path: "/blocked*",
        hook: async () => {
          await sleep(20);
          return { action: m.NETWORK_HOOK_ACTION_BLOCK };
        },
      },
      {
        name: "move",
        phase: "before",
        path: "/orig*",
        hook: async (req) => {
          await sleep(20);
          return { request: { headers: { ...req.requestHeaders, "X-From-Hook": ["h"] }, path: "/moved", query: { q: "z" } } };
        },
      },
    ]),
  );
  hits = [];
  let out = (await c.exec(`${CURL} http://127.0.0.1:${port}/blocked`, { encoding: "utf8" })).stdout;
  assert.match(out, /CODE=403/, out);
  assert.match(out, /blocked by network hook gate/, out);
  assert.equal(hits.length, 0, "a blocked request never reaches the origin");
  out = (await c.exec(`${CURL} 'http://127.0.0.1:${port}/orig?x=1'`, { encoding: "utf8" })).stdout;
  assert.match(out, /CODE=200/, out);
  assert.deepEqual(hits, ["GET /moved?q=z h"]);
});

test("a throwing or rejecting network hook gives an error reply: traffic proceeds, the process lives", async (t) => {
  const port = origin.address().port;
  let calls = 0;
  const c = await createdWith(
    t,
    netSandbox([
      { name: "sync-throw", phase: "after", path: "/t1", hook: () => { calls++; throw new Error("boom in a sync hook"); } },
      { name: "async-reject", phase: "after", path: "/t2", hook: async () => { calls++; throw new Error("boom in an async hook"); } },
      { name: "bad-answer", phase: "after", path: "/t3", hook: () => { calls++; return 42; } },
    ]),
  );
  for (const p of ["/t1", "/t2", "/t3"]) {
    const out = (await c.exec(`${CURL} http://127.0.0.1:${port}${p}`, { encoding: "utf8" })).stdout;
    assert.match(out, /CODE=200/, out);
    assert.match(out, /ORIGIN-BODY/, out);
  }
  assert.equal(calls, 3);
  assert.equal(m._native.stats().hookCalls, 0, "no hook token is left waiting");
});

test("network events reach client.on('event')", async (t) => {
  const port = origin.address().port;
  const events = [];
  const c = await createdWith(t, new m.Sandbox("alpine:latest").allowPrivateIPs().allowHost("127.0.0.1"), {
    onEvent: (e) => events.push(e),
  });
  await c.exec(`${CURL} http://127.0.0.1:${port}/ev`);
  assert.ok(await until(() => events.some((e) => e.type === "network")), JSON.stringify(events));
  const e = events.find((x) => x.type === "network");
  assert.equal(e.network.method, "GET");
  assert.equal(e.network.status_code, 200);
  assert.equal(e.network.blocked, false);
});

// ---- VFS hooks ----------------------------------------------------------------------

test("an after-hook sees a file written by a command; events arrive too", async (t) => {
  const seen = [];
  const events = [];
  const sb = wsSandbox().withVFSInterception({
    rules: [{ name: "watch", phase: m.VFS_HOOK_PHASE_AFTER, ops: ["create", "write"], path: "/workspace/*.txt", hook: (ev) => { seen.push(ev); } }],
  });
  const c = await createdWith(t, sb);
  c.on("event", (e) => events.push(e));
  await sleep(10); // the listener installs the core's callback on the next tick
  await c.exec("echo data > /workspace/from-cmd.txt; echo x > /workspace/other.log");
  assert.ok(await until(() => seen.some((e) => e.path === "/workspace/from-cmd.txt")), JSON.stringify(seen));
  const ev = seen.find((e) => e.path === "/workspace/from-cmd.txt");
  assert.ok(["create", "write"].includes(ev.op));
  assert.equal(typeof ev.size, "number");
  assert.ok(!seen.some((e) => e.path.endsWith(".log")), "the glob filters");
  assert.ok(await until(() => events.some((e) => e.type === "file" && e.file?.path === "/workspace/other.log")), JSON.stringify(events));
});

test("a dangerous hook gets the client and runs exec on it", async (t) => {
  const results = [];
  const sb = wsSandbox().withVFSInterception({
    rules: [
      {
        name: "follow-up",
        phase: "after",
        ops: ["create"],
        path: "/workspace/in/*",
        dangerousHook: async (client, ev) => {
          const r = await client.exec(`wc -c < ${ev.path}; echo done > /workspace/out.txt`, { encoding: "utf8" });
          results.push({ client, path: ev.path, out: r.stdout.trim() });
        },
      },
    ],
  });
  const c = await createdWith(t, sb);
  await c.exec("mkdir -p /workspace/in && printf 12345 > /workspace/in/a");
  assert.ok(await until(() => results.length > 0), "the dangerous hook ran");
  assert.equal(results[0].client, c, "the hook got the same Client");
  assert.equal(results[0].path, "/workspace/in/a");
  assert.equal((await c.readFile("/workspace/out.txt")).toString(), "done\n");
});

test("an action hook blocks writeFile before anything is sent; the error names the rule", async (t) => {
  const asked = [];
  const sb = wsSandbox().withVFSInterception({
    rules: [
      {
        name: "no-secrets",
        phase: "before",
        path: "/workspace/*",
        actionHook: (req) => {
          asked.push(req);
          return req.path.includes("secret") ? m.VFS_HOOK_ACTION_BLOCK : undefined; // undefined = allow
        },
      },
    ],
  });
  const c = await createdWith(t, sb);
  await assert.rejects(c.writeFile("/workspace/secret.txt", "x"), (e) => {
    assert.ok(e instanceof m.MatchlockError);
    assert.equal(e.errname, "MLK_EVFS_BLOCKED");
    assert.match(e.message, /no-secrets/);
    assert.match(e.message, /op=write path=\/workspace\/secret.txt/);
    return true;
  });
  assert.equal((await c.exec("test -e /workspace/secret.txt")).exitCode, 1, "nothing was written");
  assert.deepEqual({ op: asked[0].op, path: asked[0].path, size: asked[0].size }, { op: "write", path: "/workspace/secret.txt", size: 1 });
  await c.writeFile("/workspace/ok.txt", "fine");
  assert.equal((await c.readFile("/workspace/ok.txt")).toString(), "fine");
  assert.equal(asked.at(-1).op, "read");
  await assert.rejects(c.listFiles("/workspace/secret"), /no-secrets/);
  assert.equal(asked.at(-1).op, "readdir");
});

test("mutate hooks (sync and async) change the file's contents, chained in rule order", async (t) => {
  const sb = wsSandbox().withVFSInterception({
    rules: [
      { name: "upper", phase: "before", path: "/workspace/m/*", mutateHook: (req) => req.data.toString().toUpperCase() },
      { name: "stamp", phase: "before", path: "/workspace/m/*", mutateHook: async (req) => { await sleep(10); return Buffer.concat([req.data, Buffer.from("!")]); } },
      { name: "keep", phase: "before", path: "/workspace/m/*", mutateHook: () => undefined },
    ],
  });
  const c = await createdWith(t, sb);
  await c.exec("mkdir -p /workspace/m");
  await c.writeFile("/workspace/m/a", "hello");
  assert.equal((await c.exec("cat /workspace/m/a", { encoding: "utf8" })).stdout, "HELLO!");
  await c.writeFile("/workspace/other", "as is");
  assert.equal((await c.readFile("/workspace/other")).toString(), "as is");
});

test("async action hooks answer later; throwing ones fail the call, the process and client live on", async (t) => {
  const sb = wsSandbox().withVFSInterception({
    rules: [
      { name: "slow", phase: "before", path: "/workspace/slow/*", actionHook: async () => { await sleep(50); return "allow"; } },
      { name: "thrower", phase: "before", path: "/workspace/throw/*", actionHook: () => { throw new Error("KeyError: no policy"); } },
      { name: "rejecter", phase: "before", path: "/workspace/reject/*", actionHook: async () => { await sleep(5); throw new Error("async policy failure"); } },
      { name: "nonsense", phase: "before", path: "/workspace/bad/*", actionHook: () => "maybe" },
    ],
  });
  const c = await createdWith(t, sb);
  await c.exec("mkdir -p /workspace/slow /workspace/throw /workspace/reject /workspace/bad");
  const t0 = Date.now();
  await c.writeFile("/workspace/slow/a", "ok");
  assert.ok(Date.now() - t0 >= 45, "the call waited for the hook's promise");
  await assert.rejects(c.writeFile("/workspace/throw/a", "x"), (e) => e instanceof m.CallbackError && /thrower/.test(e.message) && /KeyError: no policy/.test(e.message));
  await assert.rejects(c.readFile("/workspace/reject/a"), (e) => e instanceof m.CallbackError && /async policy failure/.test(e.message));
  await assert.rejects(c.writeFile("/workspace/bad/a", "x"), (e) => e instanceof m.ValidationError && e.status === -35 && /an action hook answers "allow" or "block"/.test(e.message));
  assert.equal((await c.exec("echo alive", { encoding: "utf8" })).stdout, "alive\n");
  assert.equal(m._native.stats().hookCalls, 0);
});

test("a failing after-hook is reported on 'hookError', never thrown", async (t) => {
  const errors = [];
  const sb = wsSandbox().withVFSInterception({
    rules: [
      { name: "sync-bad", phase: "after", ops: ["create"], path: "/workspace/e1", hook: () => { throw new Error("after boom"); } },
      { name: "async-bad", phase: "after", ops: ["create"], path: "/workspace/e2", dangerousHook: async () => { throw new Error("dangerous boom"); } },
    ],
  });
  const c = newClient();
  c.on("hookError", (err, info) => errors.push([err.message, info.kind, info.name]));
  await c.create(sb);
  t.after(() => c.close().then(() => c.remove()));
  await c.exec("touch /workspace/e1 /workspace/e2");
  assert.ok(await until(() => errors.length >= 2), JSON.stringify(errors));
  assert.deepEqual(errors.sort(), [["after boom", "VFS after", "sync-bad"], ["dangerous boom", "VFS dangerous", "async-bad"]].sort());
});

test("hooks from CreateOptions (the official SDK's object) work too", async (t) => {
  const seen = [];
  const c = newClient();
  t.after(() => c.close().then(() => c.remove()));
  await c.create({
    image: "alpine:latest",
    workspace: "/workspace",
    mounts: { "/workspace": { type: "memory" } },
    vfsInterception: { rules: [{ phase: "before", ops: ["write"], actionHook: (r) => { seen.push(r.path); return "allow"; } }] },
  });
  await c.writeFile("/workspace/x", "1");
  assert.deepEqual(seen, ["/workspace/x"]);
});

// ---- lifecycle ----------------------------------------------------------------------

function runNode(code) {
  const pkg = path.resolve(__dirname, "..");
  return spawnSync(process.execPath, ["-e", code], {
    timeout: 30000,
    env: { ...process.env, MLK_PKG: pkg, MLK_BIN: bin },
    encoding: "utf8",
  });
}

test("an idle client with hooks and an event listener lets the process exit once closed", () => {
  const r = runNode(`
    const m = require(process.env.MLK_PKG);
    const c = new m.Client({ binaryPath: process.env.MLK_BIN, onEvent: () => {} });
    const sb = new m.Sandbox("alpine:latest").withWorkspace("/w").mountMemory("/w").allowPrivateIPs()
      .withNetworkInterception({ rules: [{ hook: () => ({}) }] })
      .withVFSInterception({ rules: [
        { phase: "after", hook: () => {} },
        { phase: "before", ops: ["write"], actionHook: async () => "allow" },
      ] });
    c.create(sb)
      .then(() => c.writeFile("/w/f", "x"))
      .then(() => c.close())
      .then(() => console.log("closed", JSON.stringify(m._native.stats())));
  `);
  assert.equal(r.signal, null, `the process had to be killed: something kept the loop alive\n${r.stderr}`);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /closed .*"pending":0.*"hookCalls":0/);
});

test("an outstanding hook token keeps the loop alive until its promise answers", () => {
  // Nothing but the token is left once the hook runs: the hook clears the
  // only timer and answers from an unref'd one.
  const r = runNode(`
    const m = require(process.env.MLK_PKG);
    const c = new m.Client({ binaryPath: process.env.MLK_BIN });
    const keep = setTimeout(() => { console.log("the hook never ran"); process.exit(3); }, 20000);
    // the entrypoint (launch) makes the request on its own, after launch resolved
    const sb = new m.Sandbox("alpine:latest").allowPrivateIPs()
      .withEntrypoint("sh", "-c", "sleep 0.3; curl -s --max-time 5 http://127.0.0.1:1/")
      .withNetworkInterception({ rules: [{
      hook: () => {
        clearTimeout(keep);
        console.log("hook called");
        return new Promise((res) => setTimeout(() => { console.log("answered"); res({}); }, 300).unref());
      },
    }] });
    c.launch(sb).then(() => console.log("launched"));
  `);
  assert.equal(r.signal, null, r.stderr);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, "launched\nhook called\nanswered\n", r.stderr);
});

// Issue 11 item 6: the call's deadline covers its action and mutate hooks.
test("the deadline of writeFile covers an action hook that never answers", async (t) => {
  let release;
  const sb = wsSandbox().withVFSInterception({
    rules: [
      {
        name: "stuck",
        path: "/workspace/stuck*",
        actionHook: () => new Promise((resolve) => { release = resolve; }), // answers only when released
      },
    ],
  });
  const c = await createdWith(t, sb);
  const t0 = Date.now();
  await assert.rejects(c.writeFile("/workspace/stuck.txt", "x", { timeoutMs: 500 }), (e) => {
    assert.equal(e.errname, "MLK_ETIMEDOUT");
    assert.match(e.message, /500 ms/);
    return true;
  });
  const el = Date.now() - t0;
  assert.ok(el >= 400 && el < 2000, `took ${el} ms for a 500 ms deadline`);
  assert.ok(release, "the hook was asked");
  release("allow"); // a late answer is dropped safely
  await sleep(50);
  assert.equal((await c.exec("test -e /workspace/stuck.txt")).exitCode, 1, "a timed-out write is never sent");
  await c.writeFile("/workspace/free.txt", "y");
  assert.equal((await c.readFile("/workspace/free.txt")).toString(), "y");
});
