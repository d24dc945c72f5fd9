"use strict";
// Issue 11 from Node: the project's hostile peer (tests/peer/hostile_peer.c,
// $MLK_HOSTILE_PEER, default <repo>/build/mlk_hostile_peer) in each mode, with
// what a Node user sees: the error class, the code and a message naming the
// cause, calls ended at once instead of at their deadline, the event loop
// free while a write is stuck, and a process that exits by itself after each.
// The same cases as tests/c/test_hostile.c (C), test_reliability.py, test_errors.lua.
const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { execFile } = require("node:child_process");

const repo = path.resolve(__dirname, "..", "..");
const peer = process.env.MLK_HOSTILE_PEER || path.join(repo, "build", "mlk_hostile_peer");

if (!fs.existsSync(peer)) {
  test(`hostile peer: not built at ${peer} (make build, or set MLK_HOSTILE_PEER)`, { skip: true }, () => {});
} else {
  hostileTests();
}

function hostileTests() {
  const m = require("..");
  // Calls get a long deadline; a broken peer must end them well before it.
  const DEADLINE_MS = 20000;
  const PROMPT_MS = 3000;

  /** A client of the hostile peer in `mode`, well-behaved for the first
   *  `after` requests; closed after the test.  c.logFile receives every request.
   *  `extra`: more client options; its env is added to the peer's. */
  function hostile(t, mode, after = 0, extra = {}) {
    const logFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "mlk-node-hostile-")), "log");
    fs.writeFileSync(logFile, "");
    const c = new m.Client({ ...extra, binaryPath: peer,
      env: { ...extra.env, MLK_HOSTILE_MODE: mode, MLK_HOSTILE_AFTER: String(after), LOG: logFile } });
    c.logFile = logFile;
    t.after(async () => {
      await c.close().catch((e) => { if (!/close timed out/.test(e.message)) throw e; }); // only a peer that stops reading fails its close
      fs.rmSync(path.dirname(logFile), { recursive: true, force: true });
    });
    return c;
  }

  /** A client whose server is `sh -c script`. */
  function shellPeer(t, script) {
    const c = new m.Client({ launcher: ["sh", "-c", script, "peer"] });
    t.after(() => c.close().catch(() => {}));
    return c;
  }

  /** Await `promise`, which must reject with an instance of `Class` with
   *  errname `errname`, every fragment in its message, within `withinMs`. */
  async function failsWithin(promise, Class, errname, fragments, withinMs = PROMPT_MS) {
    const t0 = performance.now();
    let err = null;
    try {
      await promise;
    } catch (e) {
      err = e;
    }
    const ms = performance.now() - t0;
    assert.ok(err, "the call succeeded");
    assert.ok(err instanceof Class, `a ${Class.name}, got ${err?.constructor?.name}: ${err?.message}`);
    assert.equal(err.errname, errname, err.message);
    for (const f of fragments) assert.ok(err.message.includes(f), `wants "${f}": ${err.message}`);
    assert.ok(ms < withinMs, `took ${ms.toFixed(0)} ms: waited for the deadline (${err.message})`);
    return err;
  }

  // ---- answers among events, blank lines and split lines ------------------
  // (in C and Python a waiting call reads them itself; here the I/O thread
  // does: either way each call gets its own answer and no event is lost)
  test("chatty: answers among events and split lines all arrive", async (t) => {
    const c = hostile(t, "chatty");
    let events = 0;
    c.on("event", (e) => { if (e.type === "chatty") events++; });
    for (let round = 0; round < 5; round++) {
      const rs = await Promise.all(Array.from({ length: 100 }, () => c.exec("true")));
      for (const r of rs) assert.equal(r.stdout, "hostile\n");
    }
    const t0 = performance.now();
    while (events < 500 && performance.now() - t0 < 10000) await new Promise((r) => setTimeout(r, 10));
    assert.equal(events, 500);
  });

  // ---- 1. output whose base64 is invalid is never dropped silently --------

  test("bad-base64: streamed output that is not base64 fails the call with a ProcessError naming the notification; the session goes on", async (t) => {
    const c = hostile(t, "bad-base64");
    const calls = {
      exec_stream: (o) => c.execStream("echo hi", o),
      exec_pipe: (o) => c.execPipe("echo hi", { ...o, stdin: "in" }),
      exec_tty: (o) => c.execInteractive("echo hi", o),
    };
    for (const [method, call] of Object.entries(calls)) {
      for (const withSink of [false, true]) {
        const opts = { timeoutMs: DEADLINE_MS };
        if (withSink) opts.stdout = () => {};
        await failsWithin(call(opts), m.ProcessError, "MLK_EPROTO", [`${method}.stdout`, "base64"]);
      }
    }
    const r = await c.exec("true");
    assert.equal(r.exitCode, 0);
    assert.equal(r.stdout, "hostile\n");
  });

  // ---- 2. responses for ids never issued ----------------------------------

  // ---- a server cannot exhaust the host (issue 23 item 5; docs/security.md) --
  test("huge-answer: an answer longer than the line limit fails only its call; the next call works", async (t) => {
    // a read_file answer of 4 MiB (its id last, as upstream writes it) against a limit of 1 MiB
    const c = hostile(t, "huge-answer", 0, { maxLineBytes: 1 << 20, env: { MLK_HOSTILE_BYTES: "4194304" } });
    await failsWithin(c.readFile("/big", { timeoutMs: DEADLINE_MS }), m.ProcessError, "MLK_EPROTO",
      ["read_file", "longer than the line limit of 1048576 bytes"], DEADLINE_MS / 2);
    const small = await c.readFile("/small", { timeoutMs: DEADLINE_MS });
    assert.equal(Buffer.from(small).toString(), "hostile");
  });

  test("event-flood: events nobody dispatches are bounded; the drops reach the listener as one dropped event", async (t) => {
    // 100,000 events while the JS thread is busy (the first event's listener
    // blocks it for 2 s): the core keeps at most 4096 for it and counts the
    // rest in a "dropped" event, which the listener gets like any other
    const FLOOD = 100000;
    const c = hostile(t, "event-flood", 0, { env: { MLK_HOSTILE_COUNT: String(FLOOD) } });
    const seen = [];
    c.on("event", (e) => {
      if (seen.length === 0) {
        const until = Date.now() + 2000;
        while (Date.now() < until) { /* the host is busy: nothing is dispatched */ }
      }
      seen.push(e);
    });
    await c.exec("true", { timeoutMs: DEADLINE_MS });
    const notices = () => seen.filter((e) => e.type === "dropped");
    const counted = () => seen.length - notices().length + notices().reduce((k, e) => k + Number(e.events), 0);
    const deadline = Date.now() + DEADLINE_MS;
    while ((notices().length === 0 || counted() < FLOOD) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.ok(notices().length > 0, `no dropped event among ${seen.length} events`);
    assert.match(String(notices()[0].message), /dropped/);
    assert.equal(counted(), FLOOD, "every event is delivered or counted");
    assert.ok(seen.length - notices().length <= 4096 + 2, `${seen.length} events were held for the host`);
  });

  test("unknown-ids: an answer for an id never sent fails the session at once, quoting the line", async (t) => {
    const c = hostile(t, "unknown-ids");
    const e = await failsWithin(c.exec("true", { timeoutMs: DEADLINE_MS }), m.ProcessError, "MLK_EPROTO", ["not waiting for"]);
    assert.ok(e.message.includes('{"jsonrpc":"2.0","id":1001,'), e.message);
    // later calls: the same reason
    await failsWithin(c.exec("true", { timeoutMs: DEADLINE_MS }), m.ProcessError, "MLK_EPROTO", ["not waiting for"]);
  });

  test("silent: the answers to the core's own cancels are expected, not unknown ids", async (t) => {
    const c = hostile(t, "silent"); // answers cancels and close, nothing else
    for (let i = 0; i < 3; i++) {
      await failsWithin(c.exec("sleep 9", { timeoutMs: 200 }), m.TimeoutError, "MLK_ETIMEDOUT", ["deadline of 200 ms"]);
      await new Promise((r) => setTimeout(r, 100)); // the cancel's answer arrives meanwhile
    }
    await c.close(2);
  });

  // Upstream answers {"cancelled":false} to a cancel that overtook the call,
  // and its close then waits for that call for ever: the core cancels again
  // and holds the close back until a cancel has landed.
  test("late-cancel: a timed-out call is cancelled again until it lands, then close resolves", async (t) => {
    const c = hostile(t, "late-cancel");
    await failsWithin(c.exec("cat", { timeoutMs: 100 }), m.TimeoutError, "MLK_ETIMEDOUT", ["deadline of 100 ms"]);
    const t0 = performance.now();
    await c.close(2); // rejects with a close timeout when the close overtakes the second cancel
    const ms = performance.now() - t0;
    assert.ok(ms < 2000, `close took ${ms.toFixed(0)} ms`);
    const lines = fs.readFileSync(c.logFile, "utf8").split("\n");
    const close = lines.findIndex((l) => l.includes('"close"'));
    assert.ok(close >= 0, "the close was sent");
    const cancels = lines.slice(0, close).filter((l) => l.includes('"cancel"')).length;
    assert.equal(cancels, 2, `cancels before the close:\n${lines.join("\n")}`);
  });

  // ---- 3. garbage lines and banners ----------------------------------------

  test("garbage: a line that is not JSON-RPC after the first message fails the session, quoting it", async (t) => {
    const c = hostile(t, "garbage", 1);
    assert.equal((await c.exec("true")).exitCode, 0);
    await failsWithin(c.exec("true", { timeoutMs: DEADLINE_MS }), m.ProcessError, "MLK_EPROTO",
      ["not a JSON-RPC message", "panic: runtime error: this line is not JSON-RPC"]);
  });

  test("banner: a banner before the first message is ignored", async (t) => {
    const c = hostile(t, "banner");
    const r = await c.exec("true", { timeoutMs: DEADLINE_MS });
    assert.equal(r.exitCode, 0);
    assert.equal(r.stdout, "hostile\n");
    await c.close(2);
  });

  test("banner: a server that prints a banner and exits gets a ClosedError quoting the banner", async (t) => {
    const c = shellPeer(t, "echo 'usage: matchlock [--flags] COMMAND'; exit 2");
    await failsWithin(c.exec("true", { timeoutMs: DEADLINE_MS }), m.ClosedError, "MLK_EDEAD",
      ["usage: matchlock [--flags] COMMAND"]);
  });

  test("banner: endless output before the first message fails at once", async (t) => {
    const c = shellPeer(t, "yes 'not json' | head -c 20000; exec sleep 10");
    await failsWithin(c.exec("true", { timeoutMs: DEADLINE_MS }), m.ProcessError, "MLK_EPROTO",
      ["before its first JSON-RPC message"]);
  });

  // ---- 4. deaths: every pending call rejects at once, with the stderr tail ----

  /** Three calls at once, each with a 20 s deadline. */
  const pending = (c) => [
    c.exec("true", { timeoutMs: DEADLINE_MS }),
    c.readFile("/etc/hostname", { timeoutMs: DEADLINE_MS }),
    c.execStream("true", { timeoutMs: DEADLINE_MS, stdout: () => {} }),
  ];

  test("grandchild: a server that dies while its child holds the pipes fails every pending call at once", async (t) => {
    const c = hostile(t, "grandchild");
    const want = ["connection closed", "status 3", "grandchild"]; // "grandchild": the stderr tail
    await Promise.all(pending(c).map((p) => failsWithin(p, m.ClosedError, "MLK_EDEAD", want)));
    const grandchild = /grandchild (\d+) keeps the pipes/.exec(c.stderrTail())?.[1];
    assert.ok(grandchild, c.stderrTail());
    await c.close();
    // close lets go of the pipes, so the grandchild (which lingers while someone reads them) ends
    const running = () => {
      try {
        return fs.readFileSync(`/proc/${grandchild}/stat`, "utf8").split(") ")[1][0] !== "Z";
      } catch {
        return false; // gone
      }
    };
    for (let i = 0; i < 100 && running(); i++) await new Promise((r) => setTimeout(r, 30));
    assert.ok(!running(), `the grandchild ${grandchild} still runs after close`);
  });

  for (const [mode, tail] of [["dies-mid-call", "died mid-call"], ["closes-stdout", null]]) {
    test(`${mode}: every pending call rejects at once with a ClosedError${tail ? " carrying the stderr" : ""}, later calls too`, async (t) => {
      const c = hostile(t, mode, 1);
      assert.equal((await c.exec("true")).exitCode, 0);
      const want = tail ? ["connection closed", tail] : ["connection closed"];
      await Promise.all(pending(c).map((p) => failsWithin(p, m.ClosedError, "MLK_EDEAD", want)));
      // a call made after the death leads with the official SDKs' wording, then the detail
      const e = await failsWithin(c.exec("true"), m.ClosedError, "MLK_EDEAD", want);
      assert.ok(e.message.startsWith("Matchlock process not running (connection closed"), e.message);
      await c.close();
    });
  }

  // ---- 5. a server that stops reading ---------------------------------------

  /** Run `call` while a 10 ms interval measures the event loop; returns the
   *  call's error and the longest gap between ticks. */
  async function whileTicking(call) {
    let last = performance.now();
    let maxGap = 0;
    const iv = setInterval(() => {
      const now = performance.now();
      maxGap = Math.max(maxGap, now - last);
      last = now;
    }, 10);
    try {
      await call();
      return { err: null, maxGap };
    } catch (err) {
      return { err, maxGap: Math.max(maxGap, performance.now() - last) };
    } finally {
      clearInterval(iv);
    }
  }

  const BIG = 16 << 20; // far beyond the pipe's buffer: the write cannot complete

  test("stops-reading: a large write does not block the event loop and ends at its deadline; close keeps one budget", async (t) => {
    const c = hostile(t, "stops-reading", 1);
    assert.equal((await c.exec("true")).exitCode, 0);
    for (const [what, call] of [
      ["writeFile", () => c.writeFile("/big", Buffer.alloc(BIG, 0x61), { timeoutMs: 1500 })],
      ["execPipe", () => c.execPipe("cat", { stdin: Buffer.alloc(BIG, 0x62), timeoutMs: 1500 })],
      ["exec", () => c.exec(`echo ${"x".repeat(4 << 20)}`, { timeoutMs: 1500 })],
    ]) {
      const t0 = performance.now();
      const { err, maxGap } = await whileTicking(call);
      const ms = performance.now() - t0;
      assert.ok(err instanceof m.TimeoutError && err.errname === "MLK_ETIMEDOUT", `${what}: ${err?.constructor?.name} ${err?.message}`);
      assert.ok(ms < 1500 + PROMPT_MS, `${what}: took ${ms.toFixed(0)} ms for a 1500 ms deadline`);
      assert.ok(maxGap < 1000, `${what}: the event loop stood still for ${maxGap.toFixed(0)} ms`);
    }
    // close(1): budget 1 s + 1 s, one deadline for the whole close (it took twice that once)
    const t0 = performance.now();
    const e = await failsWithin(c.close(1), m.TimeoutError, "MLK_ECLOSE_TIMEOUT", ["close timed out after"], 3500);
    const ms = performance.now() - t0;
    const said = Number(/after (\d+) ms/.exec(e.message)?.[1]);
    assert.ok(said >= 1900 && said <= ms + 50, `said ${said} ms, took ${ms.toFixed(0)} ms`);
  });

  test("stops-reading: close ends a write that is stuck, well before the write's deadline", async (t) => {
    const c = hostile(t, "stops-reading", 1);
    assert.equal((await c.exec("true")).exitCode, 0);
    const write = c.writeFile("/big", Buffer.alloc(BIG, 0x61), { timeoutMs: DEADLINE_MS });
    const settled = write.then(() => null, (e) => e);
    await new Promise((r) => setTimeout(r, 100));
    const { err, maxGap } = await whileTicking(() => c.close(1));
    assert.ok(err instanceof m.TimeoutError && err.errname === "MLK_ECLOSE_TIMEOUT", `close: ${err?.message}`);
    assert.ok(maxGap < 1000, `the event loop stood still for ${maxGap.toFixed(0)} ms`);
    await failsWithin(settled.then((e) => { if (e) throw e; }), m.ClosedError, "MLK_ECLOSED", [], 1000);
  });

  // ---- and after each mode the process has nothing left to wait for ------

  // Each mode in a Node process of its own that does the failing call,
  // closes and then does nothing: no child process is left, and it exits
  // by itself (an open handle would keep it, and node --test, waiting).
  const SCENARIOS = {
    "bad-base64": "await c.execStream('echo', { timeoutMs: 20000 }).catch(() => {});",
    "unknown-ids": "await c.exec('true', { timeoutMs: 20000 }).catch(() => {});",
    silent: "await c.exec('true', { timeoutMs: 200 }).catch(() => {});",
    "late-cancel": "await c.exec('cat', { timeoutMs: 100 }).catch(() => {});",
    garbage: "await c.exec('true'); await c.exec('true', { timeoutMs: 20000 }).catch(() => {});",
    banner: "await c.exec('true');",
    grandchild: "await c.exec('true', { timeoutMs: 20000 }).catch(() => {});",
    "dies-mid-call": "await c.exec('true'); await c.exec('true', { timeoutMs: 20000 }).catch(() => {});",
    "closes-stdout": "await c.exec('true'); await c.exec('true', { timeoutMs: 20000 }).catch(() => {});",
    "stops-reading": "await c.exec('true'); await c.writeFile('/big', Buffer.alloc(16 << 20), { timeoutMs: 300 }).catch(() => {});",
  };

  test("after each mode a Node process that closed its client has no child left and exits by itself", async () => {
    for (const [mode, body] of Object.entries(SCENARIOS)) {
      const after = /^await c\.exec\('true'\);/.test(body) ? 1 : 0;
      const script = `(async () => {
        const m = require(${JSON.stringify(path.resolve(__dirname, ".."))});
        const c = new m.Client({ binaryPath: process.env.PEER, env: { MLK_HOSTILE_MODE: ${JSON.stringify(mode)}, MLK_HOSTILE_AFTER: "${after}" } });
        ${body}
        await c.close(0.5).catch(() => {});
        // no child left, running or zombie
        const fs = require("node:fs");
        const kids = () => fs.readdirSync("/proc/self/task").flatMap((t) =>
          fs.readFileSync("/proc/self/task/" + t + "/children", "utf8").split(" ").filter((k) => k.trim()));
        for (let i = 0; i < 50 && kids().length; i++) await new Promise((r) => setTimeout(r, 20));
        console.log(kids().length ? "children left: " + kids().join(" ") : "closed");
      })().catch((e) => { console.error(e); process.exitCode = 1; });`;
      const t0 = performance.now();
      const r = await new Promise((resolve) =>
        execFile(process.execPath, ["-e", script], { env: { ...process.env, PEER: peer }, timeout: 20000, killSignal: "SIGKILL" },
          (error, stdout, stderr) => resolve({ error, stdout, stderr })),
      );
      const ms = performance.now() - t0;
      assert.equal(r.error, null, `${mode}: the process did not exit by itself (${ms.toFixed(0)} ms): ${r.error?.message} ${r.stderr}`);
      assert.equal(r.stdout.trim(), "closed", `${mode}: ${r.stderr}`);
    }
  });
}
