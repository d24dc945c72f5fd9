"use strict";
// The shared vectors (tests/vectors): every create case through the
// JS builder, compared with what the C core renders; port-forward specs and
// allow-list input through the core's parsers.  Errors by upstream name.
const test = require("node:test");
// The vectors assume a host with enough CPUs for 2.5; the core checks
// against $MATCHLOCK_HOST_CPUS when set (see mlk_sandbox_set_cpus).
process.env.MATCHLOCK_HOST_CPUS = "64";
const assert = require("node:assert/strict");
const { m, readJsonl } = require("./helpers");

const n = m._native;

function num(v) {
  return v === "NaN" ? NaN : v === "Infinity" ? Infinity : v;
}

// {owner_uid, owner_gid} -> the builder's {ownerUid, ownerGid}
function owner(o) {
  const out = {};
  if (o?.owner_uid !== undefined) out.ownerUid = o.owner_uid;
  if (o?.owner_gid !== undefined) out.ownerGid = o.owner_gid;
  return out;
}

function build(ops) {
  let sb = null;
  let launch = false;
  for (const [op, ...a] of ops) {
    switch (op) {
      case "new": sb = new m.Sandbox(a[0]); break;
      case "with_cpus": sb.withCPUs(num(a[0])); break;
      case "with_memory": sb.withMemory(a[0]); break;
      case "with_disk_size": sb.withDiskSize(a[0]); break;
      case "with_timeout": sb.withTimeout(a[0]); break;
      case "with_privileged": sb.withPrivileged(); break;
      case "allow_host": sb.allowHost(...a); break;
      case "add_host": sb.addHost(a[0], a[1]); break;
      case "block_private_ips": sb.blockPrivateIPs(); break;
      case "allow_private_ips": sb.allowPrivateIPs(); break;
      case "unset_block_private_ips": sb.unsetBlockPrivateIPs(); break;
      case "with_block_private_ips": sb.withBlockPrivateIPs(a[0]); break;
      case "add_secret": sb.addSecret(a[0], a[1], ...a.slice(2)); break;
      case "add_secret_with_placeholder": sb.addSecretWithPlaceholder(a[0], a[1], a[2], ...a.slice(3)); break;
      case "with_dns_servers": sb.withDNSServers(...a); break;
      case "with_hostname": sb.withHostname(a[0]); break;
      case "with_network_mtu": sb.withNetworkMTU(a[0]); break;
      case "with_no_network": sb.withNoNetwork(); break;
      case "with_network_interception": sb.withNetworkInterception(a[0]); break;
      case "with_workspace": sb.withWorkspace(a[0]); break;
      case "mount_host_dir": sb.mountHostDir(a[0], a[1], owner(a[2])); break;
      case "mount_host_dir_readonly": sb.mountHostDirReadonly(a[0], a[1], owner(a[2])); break;
      case "mount_memory": sb.mountMemory(a[0]); break;
      case "mount_overlay": sb.mountOverlay(a[0], a[1]); break;
      case "with_env": sb.withEnv(a[0], a[1]); break;
      case "with_env_map": sb.withEnvMap(a[0]); break;
      case "with_user": sb.withUser(a[0]); break;
      case "with_entrypoint": sb.withEntrypoint(...a); break;
      case "with_image_config": sb.withImageConfig(a[0]); break;
      case "with_vfs_interception": sb.withVFSInterception(a[0]); break;
      case "with_kernel": sb.withKernel(a[0]); break;
      case "add_extra_disk": sb.addExtraDisk(a[0], a[1], a[2]); break;
      case "launch": launch = true; break;
      default: throw new Error(`unknown vector op ${op}`);
    }
  }
  return { sb, launch };
}

// allowed_hosts may be null or [] when empty (vectors README)
function normalize(p) {
  if (p && p.network && (p.network.allowed_hosts === null || p.network.allowed_hosts?.length === 0)) {
    p.network.allowed_hosts = [];
  }
  return p;
}

for (const v of readJsonl("create.jsonl")) {
  test(`create vector: ${v.name}`, () => {
    let sb, launch;
    try {
      ({ sb, launch } = build(v.ops));
    } catch (e) {
      // a setter may refuse an argument already
      assert.ok(v.error, `unexpected builder error: ${e.message}`);
      assert.equal(e.upstreamName, v.error);
      return;
    }
    if (v.error) {
      assert.throws(() => sb.paramsJSON(launch), (e) => {
        assert.ok(e instanceof m.ValidationError, `${e.name}: ${e.message}`);
        assert.equal(e.upstreamName, v.error);
        assert.equal(n.mlk_err_upstream_name(e.status), v.error);
        return true;
      });
      return;
    }
    const mine = sb.params(launch);
    // the C core's own rendering of the same builder (mlk_sandbox_params_json)
    const [rc, json] = n.mlk_sandbox_params_json(sb[Object.getOwnPropertySymbols(sb)[0]], launch ? 1 : 0);
    assert.equal(rc, 0);
    assert.deepEqual(mine, JSON.parse(json));
    assert.deepEqual(normalize(mine), normalize(structuredClone(v.create_params)));
  });
}

for (const v of readJsonl("port_forward.jsonl")) {
  test(`port_forward vector: ${JSON.stringify(v.specs)}`, () => {
    const [rc, json] = n.mlk_port_forward_parse(v.specs);
    if (v.error) {
      assert.notEqual(rc, 0);
      assert.equal(n.mlk_err_upstream_name(rc), v.error);
    } else {
      assert.equal(rc, 0);
      assert.deepEqual(JSON.parse(json), v.forwards);
    }
  });
}

for (const v of readJsonl("allow_list.jsonl")) {
  test(`allow_list vector: ${JSON.stringify(v.hosts)}`, () => {
    const [rc, mp] = n.mlk_allow_list_normalize(v.hosts);
    if (v.error) {
      assert.notEqual(rc, 0);
      assert.equal(n.mlk_err_upstream_name(rc), v.error);
    } else {
      assert.equal(rc, 0);
      assert.deepEqual(m._msgpack.decode(mp), v.wire);
    }
  });
}

test("CreateOptions objects build the same params as the fluent builder", () => {
  const a = m.Sandbox.fromOptions({
    image: "alpine:latest", cpus: 2, memoryMb: 1024, allowedHosts: ["a.com"], env: { A: "1" },
    workspace: "/ws", mounts: { "/ws/m": { type: "memory" } }, dnsServers: ["1.1.1.1"],
    secrets: [{ name: "K", value: "v", hosts: ["a.com"] }], imageConfig: { workingDir: "/srv" },
  });
  const b = new m.Sandbox("alpine:latest").withCPUs(2).withMemory(1024).allowHost("a.com").withEnv("A", "1")
    .withWorkspace("/ws").mountMemory("/ws/m").withDNSServers("1.1.1.1").addSecret("K", "v", "a.com")
    .withImageConfig({ workingDir: "/srv" });
  assert.deepEqual(a.params(), b.params());
});

test("msgpack codec round-trips the shapes the ABI uses", () => {
  const v = { s: "é", i: -5, big: 2 ** 40, f: 1.5, b: true, n: null, a: [1, "x"], bin: Buffer.from([0, 1, 2]), o: { k: "v" } };
  assert.deepEqual(m._msgpack.decode(m._msgpack.encode(v)), v);
});

// The hook-answer contract (hook_answers.jsonl): the answer encoded by this
// binding's msgpack, checked by the core: the same code and message as in C,
// Python and Lua.  Network answers also go through the hook module's
// conversion, which must raise the core's message.
{
  const msgpack = require("../lib/msgpack");
  const hooks = require("../lib/hooks");
  const KINDS = { network: n.MLK_HOOK_NETWORK, action: n.MLK_HOOK_VFS_ACTION, mutate: n.MLK_HOOK_VFS_MUTATE };
  for (const v of readJsonl("hook_answers.jsonl")) {
    test(`hook answer: ${v.name}`, () => {
      const [rc, msg] = n.mlk_hook_answer_check(KINDS[v.kind], msgpack.encode(v.answer));
      if (v.error) {
        assert.equal(n.mlk_errname(rc), v.error);
        assert.equal(msg, v.message);
        if (v.kind === "network" && v.answer && typeof v.answer === "object") {
          const trampoline = hooks.makeTrampoline(hooks.KIND.NETWORK, () => v.answer, "t");
          assert.throws(() => trampoline(msgpack.encode({})), (e) => e.message === v.message);
        }
      } else {
        assert.deepEqual([rc, msg], [0, null]);
      }
    });
  }
}

// Interception configs through the Node builder (functions for the
// callbacks): the same wire, or code and message, as in C, Python and Lua
// (interception.jsonl).
for (const v of readJsonl("interception.jsonl")) {
  test(`interception: ${v.name}`, () => {
    const camel = (k) => k.replace(/_([a-z])/g, (_, c) => c.toUpperCase());
    const rule = (r) => (r && typeof r === "object" && !Array.isArray(r)
      ? Object.fromEntries(Object.entries(r).map(([k, x]) => [camel(k), x === true && k.endsWith("hook") ? () => {} : x]))
      : r);
    const config = { ...v.config, ...(v.config.rules ? { rules: v.config.rules.map(rule) } : {}) };
    if ("emit_events" in config) { config.emitEvents = config.emit_events; delete config.emit_events; }
    const sb = new m.Sandbox("alpine:latest");
    if (v.which === "network") sb.withNetworkInterception(config);
    else sb.withVFSInterception(config);
    if (v.error) {
      assert.throws(() => sb.paramsJSON(), (e) => {
        assert.equal(e.errname, v.error);
        assert.equal(e.message, v.message);
        return true;
      });
    } else {
      const got = (sb.params()[v.which] ?? {}).interception;
      assert.deepEqual(got, v.wire === null ? undefined : v.wire);
    }
  });
}

test("VFS op constants are the core's list", () => {
  const core = [];
  for (let i = 0; n.mlk_vfs_op_name(i) != null; i++) core.push(n.mlk_vfs_op_name(i));
  assert.equal(core.length, 16);
  const ops = Object.entries(m).filter(([k]) => k.startsWith("VFS_HOOK_OP_"));
  assert.deepEqual(Object.fromEntries(ops), Object.fromEntries(core.map((o) => [`VFS_HOOK_OP_${o.toUpperCase()}`, o])));
  // the TypeScript declarations keep literal types, as documentation: the same list
  const dts = require("node:fs").readFileSync(require("node:path").join(__dirname, "..", "index.d.ts"), "utf8");
  const declared = [...dts.matchAll(/VFS_HOOK_OP_([A-Z_]+) = "([a-z_]+)"/g)].map((x) => x[2]);
  assert.deepEqual(declared, core);
  const union = dts.match(/export type VFSHookOp =([^;]+);/)[1].match(/"([a-z_]+)"/g).map((x) => x.slice(1, -1));
  assert.deepEqual(union, core);
});

// errors.jsonl: the class and hint the core gives a code are the error
// Node raises for it (the same file runs in C, Python and Lua).
const { makeError } = require("../lib/errors");
for (const c of readJsonl("errors.jsonl")) {
  test(`errors ${c.errname ?? `rpc ${c.rpc_code}`}`, () => {
    const code = c.errname ? n[c.errname] : c.rpc_code;
    if (c.errname) assert.equal(code, c.code);
    assert.equal(n.mlk_error_class(code), c.class);
    assert.equal(n.mlk_error_category(code), c.category);
    assert.equal(n.mlk_error_hint(code), c.hint);
    const e = c.errname ? makeError(code, "boom", code === n.MLK_ERPC ? -32000 : 0) : makeError(n.MLK_ERPC, "boom", code);
    assert.equal(e.name, c.category);
    assert.ok(e instanceof m[c.category] || c.category === "MatchlockError", `${e.name} is not a ${c.category}`);
    if (c.hint) assert.ok(e.message.endsWith(`(${c.hint})`), e.message);
    else assert.ok(e.message.endsWith("boom"), e.message);
  });
}
