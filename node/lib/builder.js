"use strict";
// The fluent Sandbox builder.  It is a thin face over the C builder
// (mlk_sandbox_*): every method calls the C setter at once, validation and
// rendering happen in C (mlk_sandbox_params_json / create), so every
// language builds byte-identical `create` params.

const native = require("./native");
const msgpack = require("./msgpack");
const { makeError, ValidationError } = require("./errors");
const { KIND, makeTrampoline } = require("./hooks");

const kHandle = Symbol("matchlock.sandbox.handle");

function snake(k) {
  return k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

// Top-level keys of a rule or config to wire (snake_case) names; nested
// maps (headers, queries) are data and keep their keys.
function wireKeys(obj, what) {
  const out = {};
  for (const [k, v] of Object.entries(obj ?? {})) {
    if (v === undefined) continue;
    if (typeof v === "function") {
      throw new ValidationError(`${what}: '${k}' is not a hook key of this rule (network rules take 'hook'; VFS rules take ` +
        "'hook', 'dangerousHook', 'actionHook' or 'mutateHook')", { status: native.MLK_EINVALID_RULE });
    }
    out[snake(k)] = v;
  }
  return out;
}

// The keys a callback rule may have besides its function (the core's hook
// rule shape); anything else would be silently dropped, so it is an error.
const NET_HOOK_KEYS = new Set(["name", "phase", "hosts", "methods", "path", "action", "timeoutMs", "hook"]);
const VFS_HOOK_KEYS = new Set(["name", "phase", "ops", "path", "action", "timeoutMs"]);
const VFS_CALLBACKS = { hook: KIND.AFTER, dangerousHook: KIND.DANGEROUS, actionHook: KIND.ACTION, mutateHook: KIND.MUTATE };

function hookRule(rule, keys, label, status) {
  for (const [k, v] of Object.entries(rule)) {
    if (v === undefined || keys.has(k) || k in VFS_CALLBACKS) continue;
    if (Array.isArray(v) && v.length === 0) continue;
    throw new ValidationError(
      `${label} ${JSON.stringify(rule.name ?? "")}: '${k}' cannot be combined with a hook function ` +
        "(return the change from the hook, or put it in a separate static rule)",
      { status },
    );
  }
  return {
    name: rule.name,
    phase: rule.phase || undefined,
    hosts: rule.hosts?.length ? rule.hosts : undefined,
    methods: rule.methods?.length ? rule.methods : undefined,
    ops: rule.ops?.length ? rule.ops : undefined,
    path: rule.path || undefined,
    action: rule.action || undefined,
    timeout_ms: rule.timeoutMs || undefined,
  };
}

// Split a NetworkInterceptionConfig into the static wire config and the
// callback rules [{kind, rule, fn, name}].
function networkSplit(config) {
  const c = wireKeys({ ...config, rules: undefined }, "network interception");
  const rules = [];
  const hooks = [];
  for (const r of config.rules ?? []) {
    if (r && r.hook != null) {
      if (typeof r.hook !== "function") {
        throw new ValidationError(`network hook ${JSON.stringify(r.name ?? "")}: 'hook' must be a function`, { status: native.MLK_EINVALID_NET_HOOK });
      }
      const rule = hookRule(r, NET_HOOK_KEYS, "network hook", native.MLK_EINVALID_NET_HOOK);
      delete rule.ops;
      hooks.push({ kind: KIND.NETWORK, rule, fn: r.hook, name: r.name });
    } else {
      rules.push(wireKeys(r, "network interception rule"));
    }
  }
  if (rules.length) c.rules = rules;
  return { wire: c, hooks };
}

// Split a VFSInterceptionConfig likewise; a rule has at most one callback.
function vfsSplit(config) {
  const c = wireKeys({ ...config, rules: undefined }, "VFS interception");
  const rules = [];
  const hooks = [];
  for (const r of config.rules ?? []) {
    const cbs = Object.keys(VFS_CALLBACKS).filter((k) => r?.[k] != null);
    if (cbs.length > 1) {
      throw new ValidationError(`invalid vfs hook ${JSON.stringify(r.name ?? "")}: cannot set more than one callback hook (${cbs.join(", ")})`, {
        status: native.MLK_EINVALID_VFS_HOOK,
      });
    }
    if (cbs.length === 1) {
      const fn = r[cbs[0]];
      if (typeof fn !== "function") {
        throw new ValidationError(`vfs hook ${JSON.stringify(r.name ?? "")}: '${cbs[0]}' must be a function`, { status: native.MLK_EINVALID_VFS_HOOK });
      }
      const rule = hookRule(r, VFS_HOOK_KEYS, "vfs hook", native.MLK_EINVALID_VFS_HOOK);
      delete rule.hosts;
      delete rule.methods;
      hooks.push({ kind: VFS_CALLBACKS[cbs[0]], rule, fn, name: r.name });
    } else {
      rules.push(wireKeys(r, "VFS interception rule"));
    }
  }
  if (rules.length) c.rules = rules;
  return { wire: c, hooks };
}

// A setter failed: the core's message for it (it is remembered on the
// builder and reported again by params_json), which begins with the
// seed's error text where the seed has one.
function check(rc, what, h) {
  if (rc === 0) return;
  const [prc, , msg] = h ? native.mlk_sandbox_params_json(h, 0) : [rc, null, null];
  throw makeError(rc, prc === rc && msg ? msg : `${what}: ${native.mlk_strerror(rc)}`, 0);
}

function str(v, what) {
  if (typeof v !== "string") throw new ValidationError(`${what} must be a string, got ${typeof v}`, { status: -1 });
  return v;
}

function num(v, what) {
  if (typeof v !== "number") throw new ValidationError(`${what} must be a number, got ${typeof v}`, { status: -1 });
  return v;
}

const MOUNT_KEYS = new Set(["type", "hostPath", "readonly", "ownerUid", "ownerGid"]);
const OWNER_KEYS = new Set(["ownerUid", "ownerGid"]);

// Unknown option names are an error (a typo would otherwise be ignored).
function onlyKeys(obj, known, what) {
  if (obj == null) return;
  if (typeof obj !== "object") throw new TypeError(`${what} must be an object, got ${typeof obj}`);
  for (const k of Object.keys(obj)) {
    if (!known.has(k)) throw new TypeError(`${what}: unknown option '${k}' (known: ${[...known].join(", ")})`);
  }
}

// An owner id for the core (which checks the range): a safe integer.
function ownerId(v, what) {
  if (v == null) return 0;
  if (!Number.isSafeInteger(v)) throw new TypeError(`${what} must be an integer, got ${v}`);
  return v;
}

class Sandbox {
  constructor(image) {
    this[kHandle] = native.mlk_sandbox_new(image == null ? "" : str(image, "image"));
    this._dns = [];
    this._pfAddrs = [];
  }

  /** Build a Sandbox from the official SDK's CreateOptions object. */
  static fromOptions(o = {}) {
    const s = new Sandbox(o.image ?? "");
    if (o.kernelRef) s.withKernel(o.kernelRef);
    if (o.privileged) s.withPrivileged();
    if (o.cpus) s.withCPUs(o.cpus);
    if (o.memoryMb) s.withMemory(o.memoryMb);
    if (o.diskSizeMb) s.withDiskSize(o.diskSizeMb);
    if (o.timeoutSeconds) s.withTimeout(o.timeoutSeconds);
    if (o.allowedHosts?.length) s.allowHost(...o.allowedHosts);
    for (const h of o.addHosts ?? []) s.addHost(h.host, h.ip);
    if (o.blockPrivateIPsSet) s.withBlockPrivateIPs(!!o.blockPrivateIPs);
    else if (o.blockPrivateIPs) s.blockPrivateIPs();
    if (o.noNetwork) s.withNoNetwork();
    if (o.networkInterception) s.withNetworkInterception(o.networkInterception);
    else if (o.forceInterception) s.withNetworkInterception();
    if (o.workspace) s.withWorkspace(o.workspace);
    for (const [guest, m] of Object.entries(o.mounts ?? {})) s.mount(guest, m);
    if (o.env) s.withEnvMap(o.env);
    for (const sec of o.secrets ?? []) {
      if (sec.placeholder) s.addSecretWithPlaceholder(sec.name, sec.value, sec.placeholder, ...(sec.hosts ?? []));
      else s.addSecret(sec.name, sec.value, ...(sec.hosts ?? []));
    }
    if (o.vfsInterception) s.withVFSInterception(o.vfsInterception);
    if (o.dnsServers?.length) s.withDNSServers(...o.dnsServers);
    if (o.hostname) s.withHostname(o.hostname);
    if (o.networkMtu) s.withNetworkMTU(o.networkMtu);
    for (const pf of o.portForwards ?? []) s.withPortForward(pf.localPort, pf.remotePort);
    if (o.portForwardAddresses?.length) s.withPortForwardAddresses(...o.portForwardAddresses);
    if (o.imageConfig) s.withImageConfig(o.imageConfig);
    return s;
  }

  // The C builder.  create() copies everything it needs before it returns
  // (mlk_create_async renders the params and copies the hooks), so a builder
  // may be changed or reused while a create from it is still running.
  _h() {
    return this[kHandle];
  }

  _addHooks(hooks) {
    const h = this._h();
    for (const x of hooks) {
      check(native.sandboxAddHook(h, x.kind, msgpack.encode(x.rule), makeTrampoline(x.kind, x.fn, x.name)), "hook", h);
    }
  }

  withPrivileged() { check(native.mlk_sandbox_set_privileged(this._h(), 1), "withPrivileged", this[kHandle]); return this; }
  withCPUs(cpus) { check(native.mlk_sandbox_set_cpus(this._h(), num(cpus, "cpus")), "withCPUs", this[kHandle]); return this; }
  withMemory(mb) { check(native.mlk_sandbox_set_memory_mb(this._h(), num(mb, "memory")), "withMemory", this[kHandle]); return this; }
  withDiskSize(mb) { check(native.mlk_sandbox_set_disk_size_mb(this._h(), num(mb, "disk size")), "withDiskSize", this[kHandle]); return this; }
  withTimeout(seconds) { check(native.mlk_sandbox_set_timeout_s(this._h(), num(seconds, "timeout")), "withTimeout", this[kHandle]); return this; }
  withWorkspace(path) { check(native.mlk_sandbox_set_workspace(this._h(), str(path, "workspace")), "withWorkspace", this[kHandle]); return this; }

  /** VFS interception: static rules replace earlier ones; rules with a
   *  `hook`, `dangerousHook`, `actionHook` or `mutateHook` function are added. */
  withVFSInterception(config) {
    if (!config) {
      check(native.mlk_sandbox_set_vfs_interception(this._h(), null), "withVFSInterception", this[kHandle]);
      return this;
    }
    const { wire, hooks } = vfsSplit(config); // validate everything before changing the builder
    if (wire.rules || wire.emit_events !== undefined || !hooks.length) {
      check(native.mlk_sandbox_set_vfs_interception(this._h(), msgpack.encode(wire)), "withVFSInterception", this[kHandle]);
    }
    this._addHooks(hooks);
    return this;
  }

  /** Force network interception; `config` ({rules: [...]}) sets static rules
   *  (replacing earlier ones) and adds rules with a `hook` function. */
  withNetworkInterception(config) {
    if (!config) {
      check(native.mlk_sandbox_set_network_interception(this._h(), null), "withNetworkInterception", this[kHandle]);
      return this;
    }
    const { wire, hooks } = networkSplit(config);
    const buf = wire.rules || Object.keys(wire).length ? msgpack.encode(wire) : null;
    check(native.mlk_sandbox_set_network_interception(this._h(), buf), "withNetworkInterception", this[kHandle]);
    this._addHooks(hooks);
    return this;
  }

  withEnv(name, value) { check(native.mlk_sandbox_set_env(this._h(), str(name, "env name"), str(value, "env value")), "withEnv", this[kHandle]); return this; }
  withEnvMap(env) {
    check(native.mlk_sandbox_set_env_map(this._h(), msgpack.encode(env ?? {})), "withEnvMap", this[kHandle]);
    return this;
  }

  allowHost(...hosts) {
    const h = this._h();
    for (const host of hosts) check(native.mlk_sandbox_allow_host(h, str(host, "host")), "allowHost", this[kHandle]);
    return this;
  }
  addHost(host, ip) { check(native.mlk_sandbox_add_host(this._h(), str(host, "host"), str(ip, "ip")), "addHost", this[kHandle]); return this; }
  blockPrivateIPs() { return this.withBlockPrivateIPs(true); }
  allowPrivateIPs() { return this.withBlockPrivateIPs(false); }
  withBlockPrivateIPs(enabled) {
    check(native.mlk_sandbox_set_block_private_ips(this._h(), enabled ? 1 : 0), "withBlockPrivateIPs", this[kHandle]);
    return this;
  }
  unsetBlockPrivateIPs() { check(native.mlk_sandbox_unset_block_private_ips(this._h()), "unsetBlockPrivateIPs", this[kHandle]); return this; }

  addSecret(name, value, ...hosts) {
    check(native.mlk_sandbox_add_secret(this._h(), str(name, "secret name"), str(value, "secret value"), null, hosts), "addSecret", this[kHandle]);
    return this;
  }
  addSecretWithPlaceholder(name, value, placeholder, ...hosts) {
    check(
      native.mlk_sandbox_add_secret(this._h(), str(name, "secret name"), str(value, "secret value"),
        str(placeholder, "placeholder"), hosts),
      "addSecretWithPlaceholder", this[kHandle],
    );
    return this;
  }

  /** Append DNS servers (the builder sends all of them). */
  withDNSServers(...servers) {
    const h = this._h();
    const next = [...this._dns, ...servers.map((s) => str(s, "DNS server"))];
    check(native.mlk_sandbox_set_dns_servers(h, next), "withDNSServers", this[kHandle]);
    this._dns = next;
    return this;
  }
  withHostname(hostname) { check(native.mlk_sandbox_set_hostname(this._h(), str(hostname, "hostname")), "withHostname", this[kHandle]); return this; }
  withNetworkMTU(mtu) { check(native.mlk_sandbox_set_network_mtu(this._h(), num(mtu, "mtu")), "withNetworkMTU", this[kHandle]); return this; }
  withNoNetwork() { check(native.mlk_sandbox_set_no_network(this._h(), 1), "withNoNetwork", this[kHandle]); return this; }

  /** Forward localPort on the host to remotePort in the sandbox, right after create. */
  withPortForward(localPort, remotePort) {
    return this.withPortForwardSpec(`${num(localPort, "local port")}:${num(remotePort, "remote port")}`);
  }
  /** A `[LOCAL:]REMOTE` port-forward spec applied right after create. */
  withPortForwardSpec(spec) {
    check(native.mlk_sandbox_add_port_forward(this._h(), str(spec, "port-forward spec")), "withPortForward", this[kHandle]);
    return this;
  }
  withPortForwardAddresses(...addresses) {
    const h = this._h();
    const next = [...this._pfAddrs, ...addresses.map((a) => str(a, "address"))];
    check(native.mlk_sandbox_set_port_forward_addresses(h, next), "withPortForwardAddresses", this[kHandle]);
    this._pfAddrs = next;
    return this;
  }

  /** Mount `config` ({type, hostPath, readonly, ownerUid, ownerGid}) at
   *  guestPath; a later mount at the same path replaces it. */
  mount(guestPath, config = {}) {
    onlyKeys(config, MOUNT_KEYS, "mount config");
    const type = config.type ?? "memory";
    const g = str(guestPath, "guest path");
    let rc;
    if (type === "host_fs") {
      const fn = config.readonly ? native.mlk_sandbox_mount_host_dir_readonly : native.mlk_sandbox_mount_host_dir;
      rc = fn(this._h(), g, str(config.hostPath ?? "", "host path"));
    } else if (type === "memory") {
      rc = native.mlk_sandbox_mount_memory(this._h(), g);
    } else if (type === "overlay") {
      rc = native.mlk_sandbox_mount_overlay(this._h(), g, str(config.hostPath ?? "", "host path"));
    } else {
      throw new ValidationError(`mount ${guestPath}: unknown mount type '${type}' (use host_fs, memory or overlay)`, {
        status: native.MLK_EINVALID_MOUNT,
      });
    }
    check(rc, "mount", this[kHandle]);
    const { ownerUid, ownerGid } = config;
    if (ownerUid != null || ownerGid != null) {
      const which = (ownerUid != null ? native.MLK_MOUNT_OWNER_UID : 0) | (ownerGid != null ? native.MLK_MOUNT_OWNER_GID : 0);
      check(native.mlk_sandbox_set_mount_owner(this._h(), g, which, ownerId(ownerUid, "ownerUid"), ownerId(ownerGid, "ownerGid")),
        "mount", this[kHandle]);
    }
    return this;
  }
  /** Mount a host directory read-write; `owner` ({ownerUid, ownerGid},
   *  each 0..4294967295) makes every file of it appear owned by them. */
  mountHostDir(guestPath, hostPath, owner = {}) {
    onlyKeys(owner, OWNER_KEYS, "mountHostDir owner");
    return this.mount(guestPath, { type: "host_fs", hostPath: str(hostPath, "host path"), ...owner });
  }
  /** Mount a host directory read-only; `owner` as for mountHostDir. */
  mountHostDirReadonly(guestPath, hostPath, owner = {}) {
    onlyKeys(owner, OWNER_KEYS, "mountHostDirReadonly owner");
    return this.mount(guestPath, { type: "host_fs", hostPath: str(hostPath, "host path"), readonly: true, ...owner });
  }
  mountMemory(guestPath) { check(native.mlk_sandbox_mount_memory(this._h(), str(guestPath, "guest path")), "mountMemory", this[kHandle]); return this; }
  mountOverlay(guestPath, hostPath) {
    check(native.mlk_sandbox_mount_overlay(this._h(), str(guestPath, "guest path"), str(hostPath, "host path")), "mountOverlay", this[kHandle]);
    return this;
  }

  withUser(user) { check(native.mlk_sandbox_set_user(this._h(), str(user, "user")), "withUser", this[kHandle]); return this; }
  withEntrypoint(...argv) { check(native.mlk_sandbox_set_entrypoint(this._h(), argv), "withEntrypoint", this[kHandle]); return this; }
  /** Merge an image config: non-empty fields replace, empty ones keep what is set. */
  withImageConfig(config) {
    if (!config) return this;
    const wire = {
      user: config.user,
      working_dir: config.workingDir ?? config.working_dir,
      entrypoint: config.entrypoint,
      cmd: config.cmd,
      env: config.env,
    };
    check(native.mlk_sandbox_set_image_config(this._h(), msgpack.encode(wire)), "withImageConfig", this[kHandle]);
    return this;
  }
  withKernel(ref) { check(native.mlk_sandbox_set_kernel(this._h(), str(ref, "kernel ref")), "withKernel", this[kHandle]); return this; }
  /** Attach an ext4 image (e.g. a volume's path) at guestMount. */
  addExtraDisk(hostPath, guestMount, readonly = false) {
    check(native.mlk_sandbox_add_extra_disk(this._h(), str(hostPath, "host path"), str(guestMount, "guest mount"), readonly ? 1 : 0), "addExtraDisk", this[kHandle]);
    return this;
  }

  /** Validate and render the `create` params exactly as they will be sent. */
  paramsJSON(launch = false) {
    const [rc, json, msg] = native.mlk_sandbox_params_json(this[kHandle], launch ? 1 : 0);
    if (rc !== 0) throw makeError(rc, msg || native.mlk_strerror(rc), 0);
    return json;
  }
  /** paramsJSON, parsed. */
  params(launch = false) {
    return JSON.parse(this.paramsJSON(launch));
  }
}

function createSandbox(image) {
  return new Sandbox(image);
}

module.exports = { Sandbox, createSandbox, kHandle };
