"use strict";
// Drop-in compatibility with the official TypeScript SDK (issues 12 and 19):
// the builder's options(), create(CreateOptions), text exec results,
// validation at create, unknown option names, calls that settle when their
// result arrives, log() as text, listFiles entries, the dead-server message.
const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { PassThrough } = require("node:stream");
const { m, bin, repo, newClient } = require("./helpers");

// ---- the builder ----------------------------------------------------------------

test("Sandbox.options() returns the official CreateOptions shape", () => {
  assert.deepEqual(new m.Sandbox("alpine:latest").options(), { image: "alpine:latest" });
  const res = new m.Sandbox("img").withCPUs(4).withMemory(1024).withDiskSize(2048).withTimeout(300).options();
  assert.deepEqual(res, { image: "img", cpus: 4, memoryMb: 1024, diskSizeMb: 2048, timeoutSeconds: 300 });
  assert.equal(new m.Sandbox("img").withKernel("file:///tmp/vmlinux").options().kernelRef, "file:///tmp/vmlinux");
  const net = new m.Sandbox("img")
    .allowHost("api.openai.com", "pypi.org")
    .addHost("api.internal", "10.0.0.10")
    .addSecret("API_KEY", "secret", "api.openai.com")
    .addSecretWithPlaceholder("GH_TOKEN", "gho_real_token", "gho_sandbox_placeholder", "github.com")
    .withDNSServers("1.1.1.1", "8.8.8.8")
    .withHostname("sandbox-host")
    .withNetworkMTU(1200)
    .blockPrivateIPs()
    .options();
  assert.deepEqual(net.allowedHosts, ["api.openai.com", "pypi.org"]);
  assert.deepEqual(net.addHosts, [{ host: "api.internal", ip: "10.0.0.10" }]);
  assert.deepEqual(net.secrets, [
    { name: "API_KEY", value: "secret", hosts: ["api.openai.com"] },
    { name: "GH_TOKEN", value: "gho_real_token", placeholder: "gho_sandbox_placeholder", hosts: ["github.com"] },
  ]);
  assert.deepEqual(net.dnsServers, ["1.1.1.1", "8.8.8.8"]);
  assert.equal(net.hostname, "sandbox-host");
  assert.equal(net.networkMtu, 1200);
  assert.equal(net.blockPrivateIPs, true);
  assert.equal(net.blockPrivateIPsSet, true);
  const allow = new m.Sandbox("img").allowPrivateIPs().options();
  assert.deepEqual([allow.blockPrivateIPs, allow.blockPrivateIPsSet], [false, true]);
  const unset = new m.Sandbox("img").blockPrivateIPs().unsetBlockPrivateIPs().options();
  assert.deepEqual([unset.blockPrivateIPs, unset.blockPrivateIPsSet], [false, false]);
  assert.equal(new m.Sandbox("img").withNoNetwork().options().noNetwork, true);
  const rule = { phase: m.NETWORK_HOOK_PHASE_AFTER, hosts: ["api.example.com"], action: m.NETWORK_HOOK_ACTION_MUTATE,
    bodyReplacements: [{ find: "foo", replace: "bar" }] };
  const ni = new m.Sandbox("img").withNetworkInterception({ rules: [rule] }).options();
  assert.equal(ni.forceInterception, true);
  assert.deepEqual(ni.networkInterception.rules[0], rule);
  assert.deepEqual(new m.Sandbox("img").withEnv("FOO", "bar").withEnvMap({ BAZ: "qux" }).options().env, { FOO: "bar", BAZ: "qux" });
  assert.deepEqual(new m.Sandbox("img").withUser("nobody").withEntrypoint("python", "main.py")
    .withImageConfig({ workingDir: "/workspace" }).options().imageConfig,
  { user: "nobody", entrypoint: ["python", "main.py"], workingDir: "/workspace" });
  const pf = new m.Sandbox("img").withPortForward(18080, 8080).withPortForward(18443, 8443)
    .withPortForwardAddresses("127.0.0.1", "0.0.0.0").options();
  assert.deepEqual(pf.portForwards, [{ localPort: 18080, remotePort: 8080 }, { localPort: 18443, remotePort: 8443 }]);
  assert.deepEqual(pf.portForwardAddresses, ["127.0.0.1", "0.0.0.0"]);
  const mounts = new m.Sandbox("img").mountHostDir("/data", "/host/data", { ownerUid: 1000, ownerGid: 2000 })
    .mountMemory("/tmp").options().mounts;
  assert.deepEqual(mounts, { "/data": { type: "host_fs", hostPath: "/host/data", ownerUid: 1000, ownerGid: 2000 },
    "/tmp": { type: "memory" } });
  // a copy: changing it changes nothing in the builder
  const sb = new m.Sandbox("img").allowHost("a.com");
  sb.options().allowedHosts.push("b.com");
  assert.deepEqual(sb.options().allowedHosts, ["a.com"]);
});

test("options() round-trips through create(options) to the same params", () => {
  const hook = () => undefined;
  const sb = new m.Sandbox("alpine:latest").withCPUs(1).withWorkspace("/w").mountHostDirReadonly("/w/ro", "/srv", { ownerGid: 7 })
    .withNetworkInterception({ rules: [{ name: "h", hook }] }).withKernel("file:///k").addExtraDisk("/d.ext4", "/mnt/d", true);
  const o = sb.options();
  assert.equal(o.networkInterception.rules[0].hook, hook, "hook functions are shared, not copied");
  assert.deepEqual(m.Sandbox.fromOptions(o).params(), sb.params());
  assert.deepEqual(m.Sandbox.fromOptions({ ...o, launchEntrypoint: true }).options().launchEntrypoint, true);
});

test("create(CreateOptions) with launchEntrypoint launches; create rejects what the builder refused", async (t) => {
  const seen = [];
  const orig = m._native.create;
  m._native.create = (...args) => {
    seen.push(args[2]);
    return orig(...args);
  };
  t.after(() => { m._native.create = orig; });
  const c = newClient();
  t.after(() => c.close().then(() => c.remove()));
  assert.match(await c.create({ ...new m.Sandbox("alpine:latest").withEntrypoint("sleep", "30").options(), launchEntrypoint: true }), /^vm-/);
  assert.deepEqual(seen.map(Boolean), [true]);

  // a bad callback rule: the builder records it, create rejects with it (as the official SDK)
  const bad = new m.Sandbox("alpine:latest").withNetworkInterception({ rules: [{ name: "n", action: "block", hook() {} }] });
  assert.ok(bad instanceof m.Sandbox, "the builder did not throw");
  const fresh = newClient();
  t.after(() => fresh.close());
  await assert.rejects(fresh.create(bad), (e) => e.upstreamName === "ErrInvalidNetworkHook" &&
    e.message.startsWith("invalid network hook"));
  await assert.rejects(fresh.create(new m.Sandbox("alpine:latest").withCPUs(-1)),
    (e) => e.upstreamName === "ErrInvalidCPUCount" && e.message.startsWith("invalid cpu count"));
  await assert.rejects(fresh.create({}), (e) => e.message.startsWith("image is required (e.g., alpine:latest)"));
  await assert.rejects(fresh.create({ image: "alpine:latest", noNetwork: true, allowedHosts: ["a.com"] }),
    (e) => e.message.startsWith("no network cannot be combined with allowed hosts, secrets, forced interception, or network interception rules"));
  await assert.rejects(fresh.create({ image: "alpine:latest", addHosts: [{ host: "bad host", ip: "10.0.0.10" }] }),
    (e) => e.message.startsWith("invalid add-host mapping"));
  await assert.rejects(fresh.create({ image: "alpine:latest", mounts: { "/d": { type: "host_fs", hostPath: "/h", ownerUid: -1 } } }),
    (e) => e.upstreamName === "InvalidMountOwner" && e.message === "owner_uid must be in [0, 4294967295], got -1");
});

test("unknown option names are an error, not ignored", async (t) => {
  assert.throws(() => new m.Client({ binaryPath: bin, binray: "x" }), (e) => e instanceof TypeError && /binray/.test(e.message));
  assert.throws(() => m.Sandbox.fromOptions({ image: "a", imagee: "b" }), /imagee/);
  assert.throws(() => new m.Sandbox("a").mount("/x", { type: "memory", hostpath: "/h" }), /hostpath/);
  assert.throws(() => new m.Sandbox("a").mountHostDir("/x", "/h", { ownerUID: 1 }), /ownerUID/);
  const c = newClient();
  t.after(() => c.close().then(() => c.remove()));
  await assert.rejects(c.create({ image: "alpine:latest", cpu: 2 }), /unknown option 'cpu'/);
  await c.create(new m.Sandbox("alpine:latest"));
  await assert.rejects(c.exec("true", { workDir: "/" }), (e) => e instanceof TypeError && /workDir/.test(e.message));
  await assert.rejects(c.execPipe("true", { stdn: "x" }), /stdn/);
  await assert.rejects(c.readFile("/etc/hostname", { timeout: 5 }), /timeout/);
  await assert.rejects(c.allowListAdd("a.com", { timeOutMs: 1 }), /timeOutMs/);
  await assert.rejects(c.log({ encodng: "utf8" }), /encodng/);
});

test("the exported types: NetworkHookAction, NetworkHookPhase, VFSHookPhase, CreateOptions.launchEntrypoint", () => {
  const dts = fs.readFileSync(path.join(repo, "node", "index.d.ts"), "utf8");
  for (const t of ["NetworkHookAction", "NetworkHookPhase", "VFSHookPhase"]) {
    assert.match(dts, new RegExp(`export type ${t} = `), t);
  }
  assert.match(dts, /launchEntrypoint\?: boolean/);
  assert.match(dts, /options\(\): CreateOptions/);
});

// ---- the client -----------------------------------------------------------------

test("exec results carry strings (bytes with {encoding: 'buffer'}); log() is a string", async (t) => {
  const c = newClient();
  t.after(() => c.close().then(() => c.remove()));
  await c.create(new m.Sandbox("alpine:latest"));
  const r = await c.exec("echo out; echo err >&2; exit 3", { workingDir: "/tmp" });
  assert.deepEqual({ ...r, durationMs: 0 }, { exitCode: 3, stdout: "out\n", stderr: "err\n", durationMs: 0 });
  const b = await c.exec("printf 'a\\0b'", { encoding: "buffer" });
  assert.ok(Buffer.isBuffer(b.stdout));
  assert.deepEqual(b.stdout, Buffer.from("a\0b"));
  assert.equal(typeof (await c.execWithDir("pwd", "/")).stdout, "string");
  assert.equal(typeof (await c.log()), "string");
  assert.ok(Buffer.isBuffer(await c.log({ encoding: "buffer" })));
});

test("create succeeded but its port forward failed: vmId stays, close() and remove() clean up", async (t) => {
  const c = newClient();
  const sb = new m.Sandbox("alpine:latest").withPortForward(18082, 80).withPortForwardAddresses("203.0.113.7");
  await assert.rejects(c.create(sb), (e) => e instanceof m.RPCError);
  assert.match(c.vmId, /^vm-/);
  await c.close();
  await c.remove();
  await assert.rejects(c.remove(), m.CLIError, "it was really removed");
});

test("a second create is refused, saying what to do", async (t) => {
  const c = newClient();
  t.after(() => c.close().then(() => c.remove()));
  await c.create(new m.Sandbox("alpine:latest"));
  await assert.rejects(c.create(new m.Sandbox("alpine:latest")), (e) => e instanceof m.StateError && /use a new client/.test(e.message));
});

// Issue 24: the official SDK's words are in our messages, after the seed's.
test("messages carry the official SDK's words too", async (t) => {
  const c = newClient();
  t.after(() => c.close().then(() => c.remove()));
  await c.create(new m.Sandbox("alpine:latest"));
  await assert.rejects(c.portForward("1:2:3"), /^.*invalid port-forward spec/);
  await assert.rejects(c.volumeCreate("cache", 0), /volume size must be > 0/);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mlk-fake-cli-"));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const fake = (name, out) => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, `#!/bin/sh\nprintf '%s\\n' '${out}'\n`, { mode: 0o755 });
    return new m.Client({ binaryPath: file });
  };
  await assert.rejects(fake("create", '{"name":"cache","size":"16.0 MB","path":""}').volumeCreate("cache", 16),
    /failed to parse volume create output/);
  await assert.rejects(fake("list", '[{"name":"cache","size":"16.0 MB"}]').volumeList(), /failed to parse volume list output line/);
});

// Issue 19: the call settles when its result arrives, whatever its sources do.
async function settlesWithOpenSources(binaryPath, t) {
  const c = new m.Client({ binaryPath });
  t.after(() => c.close().then(() => c.remove()).catch(() => {}));
  await c.create(new m.Sandbox("alpine:latest"));
  const within = (p, ms) => Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error(`still pending after ${ms} ms`)), ms))]);

  const stdin = new PassThrough(); // never ended
  stdin.write("hello\n");
  const t0 = Date.now();
  const r = await within(c.execPipe("head -c 6", { stdin }), 5000);
  assert.equal(r.exitCode, 0);
  assert.ok(Date.now() - t0 < 5000);
  assert.equal(stdin.listenerCount("data"), 0, "the source is released");
  assert.equal(stdin.destroyed, false, "and left to its owner");

  let returned = false;
  async function* forever() {
    try {
      yield "x";
      await new Promise(() => {}); // never yields again
    } finally {
      returned = true;
    }
  }
  const r2 = await within(c.execPipe("true", { stdin: forever() }), 5000);
  assert.equal(r2.exitCode, 0);

  const resize = new PassThrough({ objectMode: true }); // a resize source that never ends
  resize.write([30, 100]);
  const r3 = await within(c.execInteractive("true", { stdin: new PassThrough(), resize }), 5000);
  assert.equal(r3.exitCode, 0);
  assert.equal(resize.listenerCount("data"), 0);
  return returned;
}

test("execPipe / execInteractive settle when the result arrives", async (t) => {
  await settlesWithOpenSources(bin, t);
});

// A scripted server for what matchlock-local always sends.
function scriptedServer(t, body) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mlk-scripted-"));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, "server.js");
  fs.writeFileSync(file, `#!${process.execPath}
const rl = require("node:readline").createInterface({ input: process.stdin });
const send = (o) => process.stdout.write(JSON.stringify({ jsonrpc: "2.0", ...o }) + "\\n");
rl.on("line", (line) => {
  const req = JSON.parse(line);
  if (req.id === undefined) return;
${body}
});
`);
  fs.chmodSync(file, 0o755);
  return file;
}

test("listFiles entries carry modTime only when the server sends one", async (t) => {
  const server = scriptedServer(t, `
  if (req.method === "create") send({ id: req.id, result: { id: "vm-scripted" } });
  else if (req.method === "list_files") send({ id: req.id, result: { files: [
    { name: "hello.txt", size: 5, mode: 0o644, is_dir: false },
    { name: "dated", size: 0, mode: 0o755, is_dir: true, mod_time: "2026-01-02T03:04:05Z" } ] } });
  else if (req.method === "close") { send({ id: req.id, result: {} }); process.exit(0); }
  else send({ id: req.id, error: { code: -32601, message: "Method not found" } });`);
  const c = new m.Client({ binaryPath: server });
  t.after(() => c.close());
  await c.create(new m.Sandbox("alpine:latest"));
  assert.deepEqual(await c.listFiles("/workspace"), [
    { name: "hello.txt", size: 5, mode: 0o644, isDir: false },
    { name: "dated", size: 0, mode: 0o755, isDir: true, modTime: "2026-01-02T03:04:05Z" },
  ]);
  // matchlock-local sends one
  const l = newClient();
  t.after(() => l.close().then(() => l.remove()));
  await l.create(new m.Sandbox("alpine:latest"));
  const files = await l.listFiles("/etc");
  assert.ok(files.length > 0 && files.every((f) => typeof f.modTime === "string" && f.modTime.length > 0));
});

test("a dead server's error leads with the official wording, then our detail", async (t) => {
  const server = scriptedServer(t, `
  if (req.method === "create") { send({ id: req.id, result: { id: "vm-dies" } }); process.stderr.write("boom: out of disk\\n"); process.exit(3); }`);
  const c = new m.Client({ binaryPath: server });
  t.after(() => c.close().catch(() => {}));
  await c.create(new m.Sandbox("alpine:latest"));
  await new Promise((r) => setTimeout(r, 300)); // the process is gone
  await assert.rejects(c.exec("true"), (e) =>
    e.message.startsWith("Matchlock process not running") && /exited/.test(e.message) && /out of disk/.test(e.message));
});
