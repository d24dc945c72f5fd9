"use strict";
// Every Client method against the real matchlock-local.
const test = require("node:test");
const assert = require("node:assert/strict");
const { Readable, Writable, PassThrough } = require("node:stream");
const net = require("node:net");
const { m, created, newClient } = require("./helpers");

test("create, vmId, exec buffered (Buffers with encoding 'buffer', exit code, stderr, durationMs)", async (t) => {
  const c = newClient();
  t.after(() => c.close().then(() => c.remove()));
  assert.equal(c.vmId, "");
  const id = await c.create(new m.Sandbox("alpine:latest"));
  assert.match(id, /^vm-/);
  assert.equal(c.vmId, id);
  const r = await c.exec("printf 'a\\0b'; echo oops >&2; exit 7", { encoding: "buffer" });
  assert.equal(r.exitCode, 7);
  assert.ok(Buffer.isBuffer(r.stdout));
  assert.deepEqual(r.stdout, Buffer.from("a\0b"));
  assert.equal(r.stderr.toString(), "oops\n");
  assert.equal(typeof r.durationMs, "number");
  const s = await c.exec("pwd", { workingDir: "/tmp", encoding: "utf8" });
  assert.equal(s.stdout, "/tmp\n");
  const w = await c.execWithDir("pwd", "/", { encoding: "utf8" });
  assert.equal(w.stdout, "/\n");
});

test("create from CreateOptions, launch", async (t) => {
  const c = newClient();
  t.after(() => c.close().then(() => c.remove()));
  const id = await c.create({ image: "alpine:latest", env: { GREETING: "hej" } });
  assert.match(id, /^vm-/);
  assert.equal((await c.exec("echo $GREETING", { encoding: "utf8" })).stdout, "hej\n");

  const l = newClient();
  t.after(() => l.close().then(() => l.remove()));
  const lid = await l.launch(new m.Sandbox("alpine:latest").withEntrypoint("sleep", "30"));
  assert.match(lid, /^vm-/);
});

test("execStream: callbacks, Writables, text decoding across chunk splits", async (t) => {
  const c = await created(t);
  const out = [];
  const err = [];
  const r = await c.execStream("for i in 1 2 3; do echo $i; echo e$i >&2; done; exit 2", {
    onStdout: (b) => out.push(b),
    onStderr: (b) => err.push(b),
  });
  assert.equal(r.exitCode, 2);
  assert.equal(Buffer.concat(out).toString(), "1\n2\n3\n");
  assert.equal(Buffer.concat(err).toString(), "e1\ne2\ne3\n");
  assert.ok(Buffer.isBuffer(out[0]));

  // a Writable
  const chunks = [];
  const sink = new Writable({ write(ch, _e, cb) { chunks.push(ch); cb(); } });
  await c.execStream("echo to-writable", { stdout: sink });
  assert.equal(Buffer.concat(chunks).toString(), "to-writable\n");

  // multi-byte characters split across writes arrive whole as text
  const text = [];
  await c.execStream("printf '\\303'; sleep 0.1; printf '\\251\\342\\202'; sleep 0.1; printf '\\254\\n'", {
    stdout: (s) => text.push(s),
    encoding: "utf8",
  });
  assert.ok(text.every((s) => !s.includes("\ufffd")), JSON.stringify(text));
  assert.equal(text.join(""), "é€\n");
});

test("execStream of a large output stays intact", async (t) => {
  const c = await created(t);
  let total = 0;
  const r = await c.execStream("head -c 20000000 /dev/zero", { stdout: (b) => (total += b.length) });
  assert.equal(r.exitCode, 0);
  assert.equal(total, 20000000);
});

test("execPipe: stdin as string, Buffer, iterable, async iterable and Readable", async (t) => {
  const c = await created(t);
  const run = async (stdin) => {
    const out = [];
    const r = await c.execPipe("cat; echo :done", { stdin, stdout: (b) => out.push(b) });
    assert.equal(r.exitCode, 0);
    return Buffer.concat(out).toString();
  };
  assert.equal(await run("str\n"), "str\n:done\n");
  assert.equal(await run(Buffer.from("buf\n")), "buf\n:done\n");
  assert.equal(await run(["a", Buffer.from("b"), new Uint8Array([99])]), "abc:done\n");
  assert.equal(await run((async function* () { yield "x"; await new Promise((r) => setTimeout(r, 20)); yield "y\n"; })()), "xy\n:done\n");
  assert.equal(await run(Readable.from(["r1", "r2\n"])), "r1r2\n:done\n");
  assert.equal(await run(undefined), ":done\n");
  // stderr
  const err = [];
  await c.execPipe("cat >&2", { stdin: "to-stderr", stderr: (b) => err.push(b) });
  assert.equal(Buffer.concat(err).toString(), "to-stderr");
});

test("execPipe: a large stdin stream with backpressure round-trips", async (t) => {
  const c = await created(t);
  const size = 24 * 1024 * 1024;
  const chunk = Buffer.alloc(256 * 1024, 0x61);
  async function* src() { for (let n = 0; n < size; n += chunk.length) yield chunk; }
  const out = [];
  const r = await c.execPipe("wc -c", { stdin: src(), stdout: (b) => out.push(b) });
  assert.equal(r.exitCode, 0);
  assert.equal(Number(Buffer.concat(out).toString().trim()), size);
});

test("execInteractive: a TTY, its size and resize", async (t) => {
  const c = await created(t);
  const out = [];
  const r = await c.execInteractive("test -t 0 && echo is-tty; stty size", { rows: 33, cols: 101, stdout: (b) => out.push(b) });
  assert.equal(r.exitCode, 0);
  const text = Buffer.concat(out).toString();
  assert.match(text, /is-tty/);
  assert.match(text, /33 101/);

  // resize while running, with stdin kept open by a stream
  const input = new PassThrough();
  const sizes = (async function* () { await new Promise((r) => setTimeout(r, 100)); yield [40, 120]; })();
  const out2 = [];
  const p = c.execInteractive("read line; stty size; echo got:$line", { stdin: input, resize: sizes, stdout: (b) => out2.push(b) });
  setTimeout(() => { input.write("hello\n"); input.end(); }, 300);
  const r2 = await p;
  assert.equal(r2.exitCode, 0);
  const t2 = Buffer.concat(out2).toString();
  assert.match(t2, /40 120/);
  assert.match(t2, /got:hello/);
});

test("files: writeFile, writeFileMode, readFile, listFiles (binary safe, large)", async (t) => {
  const c = await created(t);
  await c.writeFile("/tmp/a.txt", "hello");
  assert.equal((await c.readFile("/tmp/a.txt")).toString(), "hello");
  const bin = Buffer.from([0, 255, 1, 254, 0]);
  await c.writeFileMode("/tmp/run.sh", bin, 0o755);
  assert.deepEqual(await c.readFile("/tmp/run.sh"), bin);
  const files = await c.listFiles("/tmp");
  const f = files.find((x) => x.name === "run.sh");
  assert.ok(f, JSON.stringify(files));
  assert.equal(f.size, 5);
  assert.equal(f.mode & 0o777, 0o755);
  assert.equal(f.isDir, false);
  // bigger than one request line: the core streams it through cat
  const big = Buffer.alloc(9 * 1024 * 1024, 7);
  await c.writeFile("/tmp/big", big);
  const back = await c.readFile("/tmp/big");
  assert.equal(back.length, big.length);
  assert.ok(back.equals(big));
  await assert.rejects(c.readFile("/nope/nothing"), (e) => e instanceof m.RPCError && e.isFileError());
});

test("log and logStream (follow until aborted)", async (t) => {
  const c = await created(t);
  const log = await c.log();
  assert.equal(typeof log, "string");
  assert.match(log, /vm-/);
  const ac = new AbortController();
  const got = [];
  const p = c.logStream({ stdout: (b) => { got.push(b); if (got.length === 1) setTimeout(() => ac.abort(), 50); }, signal: ac.signal });
  await p; // resolves once aborted
  assert.ok(Buffer.concat(got).length > 0);
});

test("port forwards from the builder and at run time", async (t) => {
  const port = await new Promise((res) => { const s = net.createServer(); s.listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => res(p)); }); });
  const c = await created(t, new m.Sandbox("alpine:latest").withPortForward(port, 8080));
  const b = await c.portForward(`${port}:9090`);
  assert.deepEqual(b, [{ address: "127.0.0.1", localPort: port, remotePort: 9090 }]);
  const b2 = await c.portForwardWithAddresses(["127.0.0.1"], `${port}:9091`, { timeoutMs: 5000 });
  assert.equal(b2[0].remotePort, 9091);
  await assert.rejects(c.portForward("nope"), (e) => e instanceof m.ValidationError && e.upstreamName === "ErrParsePortForwards");
});

test("allow-list add and delete at run time", async (t) => {
  const c = await created(t, new m.Sandbox("alpine:latest").allowHost("a.example.com"));
  const a = await c.allowListAdd("b.example.com, c.example.com", "b.example.com");
  assert.deepEqual(a.added, ["b.example.com", "c.example.com"]);
  assert.ok(a.allowedHosts.includes("a.example.com"));
  const d = await c.allowListDelete("a.example.com", { timeoutMs: 5000 });
  assert.deepEqual(d.removed, ["a.example.com"]);
  assert.ok(!d.allowedHosts.includes("a.example.com"));
  await assert.rejects(c.allowListAdd(" , "), (e) => e.upstreamName === "ErrAllowListHosts");
});

test("volumes: create, list, remove", async () => {
  const c = newClient();
  const name = `vol${process.pid}`;
  const v = await c.volumeCreate(name, 16);
  assert.equal(v.name, name);
  assert.ok(v.path);
  const list = await c.volumeList();
  assert.ok(list.some((x) => x.name === name), JSON.stringify(list));
  await c.volumeRemove(name);
  assert.ok(!(await c.volumeList()).some((x) => x.name === name));
  await assert.rejects(c.volumeCreate("", 16), (e) => e instanceof m.MatchlockError);
  await c.close();
});

test("close is idempotent; remove deletes the VM state; calls after close fail clearly", async () => {
  const c = newClient();
  await c.create(new m.Sandbox("alpine:latest"));
  const id = c.vmId;
  await c.close();
  await c.close();
  assert.equal(c.vmId, id);
  await c.remove();
  await assert.rejects(c.exec("true"), (e) => e instanceof m.ClosedError && /new Client/.test(e.message));
});

// launcherShell: a launcher that hands its words to a shell, as ssh does
// (issue 23, item 1).  The stand-in joins the words after it and runs them
// with `sh -c`; the binary sits at a path only a quoted word survives.
test("launcherShell quotes every word after the launcher; names are checked first", async () => {
  const fs = require("node:fs");
  const os = require("node:os");
  const path = require("node:path");
  const { bin } = require("./helpers");
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "mlk-node-launcher-"));
  const dir = path.join(tmp, "it's a dir;$(touch injected)");
  fs.mkdirSync(dir);
  const odd = path.join(dir, "match lock");
  fs.symlinkSync(path.resolve(bin), odd);
  const fakeSsh = ["sh", "-c", 'exec sh -c "$*"', "fake-ssh"];
  const cwd = process.cwd();
  process.chdir(tmp); // where an injected `touch injected` would land
  try {
    const c = new m.Client({ binaryPath: odd, launcher: fakeSsh, launcherShell: true });
    const v = await c.volumeCreate("node-quoted", 16);
    assert.equal(v.name, "node-quoted");
    await c.volumeRemove("node-quoted");
    await c.launch(new m.Sandbox("alpine:latest"));
    assert.equal((await c.exec("echo hi")).stdout, "hi\n");
    await c.close();
    for (const name of ["vol; id > /tmp/x; echo", "--help", "--stopped"]) {
      await assert.rejects(c.volumeCreate(name, 16), (e) => e instanceof m.ValidationError && e.message.includes("[A-Za-z0-9][A-Za-z0-9._-]*"));
    }
    // unquoted, the shell splits the path: the setting is what works
    const plain = new m.Client({ binaryPath: odd, launcher: fakeSsh });
    await assert.rejects(plain.volumeCreate("node-quoted", 16), (e) => e instanceof m.MatchlockError);
    assert.ok(!fs.existsSync(path.join(tmp, "injected")), "the shell ran the path");
  } finally {
    process.chdir(cwd);
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
