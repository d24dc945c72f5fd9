#!/usr/bin/env node
// bench/node/bench.js - the Node binding benchmark (bench/node/run.sh builds
// everything and runs it).  Not a test: it prints numbers.
//
//   node bench.js --peer P --floor F --core C --addon DIR [--official DIR]
//                 [--reps 5] [-n 20000] [--stream-bytes 268435456]
//   node bench.js --child native|official --peer P --addon DIR|--official DIR -n N --stream-bytes B
//                 (one measurement for bench/all.py: rt= cpu= gbps=)
//
// Each repetition runs, in an order that rotates every repetition:
//   floor     bench/floor_client.c: exec round trip over plain write/read and
//             the raw stream rate of the pipe (no parsing);
//   core      bench_core --only as: blocking mlk_exec and a stream to a C
//             callback (the C core's own figures);
//   native    matchlock-native (DIR = node/): n sequential `await c.exec("true")`
//             and one execStream with a Buffer callback (stdout: (buf) => ...);
//   official  the official TypeScript SDK, when --official names an
//             installed package directory: the same calls.
// Then medians, differences to the floor (median of the per-rep differences)
// and to the core, ratios, and CPU time per round trip of this process.
"use strict";

const { execFileSync } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");

function parseArgs(argv) {
  const a = { reps: 5, n: 20000, streamBytes: 256 * 1048576, official: null };
  for (let i = 2; i < argv.length; i++) {
    const k = argv[i];
    const v = argv[++i];
    if (k === "--peer") a.peer = v;
    else if (k === "--floor") a.floor = v;
    else if (k === "--core") a.core = v;
    else if (k === "--addon") a.addon = v;
    else if (k === "--official") a.official = v || null;
    else if (k === "--reps") a.reps = Number(v);
    else if (k === "-n") a.n = Number(v);
    else if (k === "--stream-bytes") a.streamBytes = Number(v);
    else if (k === "--child") a.child = v;
    else throw new Error(`bench.js: unknown argument ${k}`);
  }
  const need = a.child ? ["peer", a.child === "official" ? "official" : "addon"] : ["peer", "floor", "core", "addon"];
  for (const k of need) if (!a[k]) throw new Error(`bench.js: --${k} is required`);
  return a;
}

const loadavg = () => os.loadavg().map((x) => x.toFixed(2)).join(" ");
const now = () => Number(process.hrtime.bigint()) / 1e9;
const cpuS = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
const median = (v) => {
  const s = [...v].sort((x, y) => x - y);
  const h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
};

function grab(re, text, what) {
  const m = re.exec(text);
  if (!m) throw new Error(`bench.js: could not find ${what} in:\n${text}`);
  return Number(m[1]);
}

function runFloor(a) {
  const out = execFileSync(a.floor, [a.peer, String(a.n), "1", String(a.streamBytes)], { encoding: "utf8" });
  return {
    rt: grab(/floor median: ([\d.]+) us/, out, "the floor's round trip"),
    gbps: grab(/floor stream median: ([\d.]+) GB\/s/, out, "the floor's stream rate"),
  };
}

function runCore(a) {
  const out = execFileSync(a.core, ["--peer", a.peer, "--only", "as", "--reps", "1", "--stream-bytes", String(a.streamBytes)],
    { encoding: "utf8" });
  return {
    rt: grab(/median: floor [\d.]+ us, mlk_exec ([\d.]+) us/, out, "mlk_exec's round trip"),
    cpu: grab(/CPU of this process.*mlk_exec ([\d.]+) us/, out, "mlk_exec's CPU"),
    gbps: grab(/stream median: ([\d.]+) GB\/s/, out, "the core's stream rate"),
  };
}

class Bench {
  constructor(name, mod, a) {
    this.name = name;
    this.mod = mod;
    this.a = a;
  }

  async open() {
    const { Client, Sandbox } = this.mod;
    this.c = new Client({ binaryPath: this.a.peer });
    await this.c.create(new Sandbox("alpine:latest"));
    const r = await this.c.exec("true");
    if (r.exitCode !== 0 || String(r.stdout) !== "ok\n") throw new Error(`bench.js: ${this.name}: unexpected exec result`);
    await this.roundtrips(Math.max(500, Math.floor(this.a.n / 5))); // warm up (JIT, buffers)
    await this.stream(64 * 1048576);
  }

  async roundtrips(n) {
    const c = this.c;
    const c0 = cpuS();
    const t0 = now();
    for (let i = 0; i < n; i++) await c.exec("true");
    const t = now() - t0;
    return { rt: (t * 1e6) / n, cpu: ((cpuS() - c0) * 1e6) / n };
  }

  async stream(bytes) {
    let got = 0;
    const t0 = now();
    await this.c.execStream(`stream ${bytes} 65536`, { stdout: (buf) => { got += buf.length; } });
    const t = now() - t0;
    if (this.name === "native" && got !== bytes) throw new Error(`bench.js: stream delivered ${got} bytes, expected ${bytes}`);
    if (got === 0) throw new Error(`bench.js: ${this.name}: the stream delivered nothing`);
    return bytes / t / 1e9;
  }

  async close() {
    await this.c.close();
  }
}

// One measurement of one client for bench/all.py: rt= cpu= gbps= on one line.
async function child(a) {
  const b = new Bench(a.child, require(a.child === "official" ? a.official : a.addon), a);
  await b.open();
  const v = await b.roundtrips(a.n);
  const g = await b.stream(a.streamBytes);
  await b.close();
  console.log(`rt=${v.rt.toFixed(3)} cpu=${v.cpu.toFixed(3)} gbps=${g.toFixed(4)}`);
}

async function main() {
  const a = parseArgs(process.argv);
  if (a.child) return child(a);
  const native = require(a.addon);
  console.log(`node ${process.version}; matchlock-native (core ${typeof native.version === "function" ? native.version() : "?"}); ${os.cpus().length} CPUs; load average ${loadavg()}`);
  const benches = { native: new Bench("native", native, a) };
  if (a.official) {
    const pkg = JSON.parse(fs.readFileSync(`${a.official}/package.json`, "utf8"));
    console.log(`official SDK ${pkg.name} ${pkg.version} (npm)`);
    benches.official = new Bench("official", require(a.official), a);
  } else {
    console.log("official TypeScript SDK not installed: skipped (see run.sh's message above)");
  }
  for (const b of Object.values(benches)) await b.open();
  console.log(`${a.reps} reps of ${a.n} exec round trips and one ${a.streamBytes / 1048576} MiB stream (64 KiB chunks) each; ` +
    "the order rotates every rep\n");

  const names = ["floor", "core", ...Object.keys(benches)];
  const rt = {}, cpu = {}, gb = {};
  for (const k of names) { rt[k] = []; cpu[k] = []; gb[k] = []; }
  for (let i = 0; i < a.reps; i++) {
    for (let j = 0; j < names.length; j++) {
      const k = names[(i + j) % names.length];
      if (k === "floor" || k === "core") {
        const v = k === "floor" ? runFloor(a) : runCore(a);
        rt[k].push(v.rt);
        gb[k].push(v.gbps);
        if (v.cpu !== undefined) cpu[k].push(v.cpu);
      } else {
        const v = await benches[k].roundtrips(a.n);
        rt[k].push(v.rt);
        cpu[k].push(v.cpu);
        gb[k].push(await benches[k].stream(a.streamBytes));
      }
    }
    console.log(`rep ${i + 1} (load ${loadavg()}): ` + names.map((k) => `${k} ${rt[k][i].toFixed(2)} us ${gb[k][i].toFixed(2)} GB/s`).join("  "));
  }
  for (const b of Object.values(benches)) await b.close();

  const label = { floor: "floor (floor_client)", core: "C core (mlk_exec)", native: "matchlock-native", official: "official TS SDK" };
  const diff = (x, y) => median(x.map((v, i) => v - y[i]));
  const fl = median(rt.floor), fg = median(gb.floor);
  const pad = (s, n) => String(s).padStart(n);
  console.log(`\nmedians of ${a.reps} reps, load average ${loadavg()} at the end`);
  console.log(`${"".padEnd(24)} ${pad("round trip", 11)} ${pad("- floor", 9)} ${pad("/ floor", 8)} ${pad("- core", 8)} ${pad("CPU/rt", 8)} ${pad("stream", 10)} ${pad("/ floor", 8)}`);
  for (const k of names) {
    const sgn = (v) => (v >= 0 ? "+" : "") + v.toFixed(2);
    console.log(`${label[k].padEnd(24)} ${pad(median(rt[k]).toFixed(2), 8)} us ${pad(sgn(diff(rt[k], rt.floor)), 7)} ` +
      `${pad((median(rt[k]) / fl).toFixed(2), 7)}x ${pad(sgn(diff(rt[k], rt.core)), 8)} ` +
      `${pad(cpu[k].length ? median(cpu[k]).toFixed(2) : "-", 8)} ${pad(median(gb[k]).toFixed(2), 5)} GB/s ${pad((median(gb[k]) / fg).toFixed(2), 7)}x`);
  }
  const d = diff(rt.native, rt.floor), g = median(gb.native);
  console.log(`\ntargets (issue 7): exec round trip <= 15 us over the floor: ${d >= 0 ? "+" : ""}${d.toFixed(2)} us -> ${d <= 15 ? "met" : "MISSED"}; ` +
    `streamed stdout to a Buffer callback >= 0.6 GB/s: ${g.toFixed(2)} GB/s -> ${g >= 0.6 ? "met" : "MISSED"}`);
  console.log("(round trip: us per call; '- floor' and '- core': median of the per-rep differences; CPU/rt: CPU us of the " +
    "measuring process per round trip, all threads, peer excluded; stream: decoded GB/s, the floor's is the raw pipe without parsing)");
}

main().catch((e) => {
  console.error(e?.stack ?? e);
  process.exit(1);
});
