"use strict";
// The fluent Sandbox builder.  It is a thin face over the C builder
// (mlk_sandbox_*): every method calls the C setter at once, validation and
// rendering happen in C (mlk_sandbox_params_json / create), so every
// language builds byte-identical `create` params.

const util = require("node:util");
const native = require("./native");
const msgpack = require("./msgpack");
const { makeError, fromNative, MatchlockError, ValidationError } = require("./errors");
const { makeRuleTrampoline } = require("./hooks");

const kHandle = Symbol("matchlock.sandbox.handle");

function snake(k) {
  return k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

// Top-level keys of a config and of its rules to wire (snake_case) names
// (nested maps, such as headers, are data and keep their keys); a function
// becomes `true` and the trampoline of the n-th callback rule.  The core
// splits the static rules from the callback rules and checks both
// (mlk_sandbox_set_interception).
function interceptionConfig(config) {
  const fns = [];
  const keys = (obj) => {
    const out = {};
    for (const [k, v] of Object.entries(obj)) {
      if (v === undefined) continue;
      if (typeof v === "function") {
        out[snake(k)] = true;
        fns.push(makeRuleTrampoline(v, obj.name));
      } else {
        out[snake(k)] = v;
      }
    }
    return out;
  };
  const wire = keys({ ...config, rules: undefined });
  if (config.rules !== undefined) {
    wire.rules = Array.isArray(config.rules)
      ? config.rules.map((r) => (r && typeof r === "object" && !Array.isArray(r) ? keys(r) : r))
      : config.rules;
  }
  return { buf: msgpack.encode(wire), fns };
}

// A setter failed: the core's message for it (the builder keeps its
// first failure, read with mlk_sandbox_error without rendering the create
// params and their secrets), which begins with the seed's error text where
// the seed has one.
function check(rc, what, h) {
  if (rc === 0) return;
  const [erc, msg] = h ? native.mlk_sandbox_error(h) : [rc, null];
  throw makeError(rc, erc === rc && msg ? msg : `${what}: ${native.mlk_strerror(rc)}`, 0);
}

// A string argument; one holding a NUL gets the core's message, which
// names the argument and the NUL's offset, never the value.
function str(v, what) {
  if (typeof v !== "string") throw new ValidationError(`${what} must be a string, got ${typeof v}`, { status: native.MLK_EINVAL });
  if (v.includes("\0")) {
    const [rc, msg] = native.mlk_check_cstring(what, v);
    throw makeError(rc, msg, 0);
  }
  return v;
}

// A secret as options() returns it: its value stays readable, but
// util.inspect / console.log show its length only.
function secretRecord(sec) {
  const out = { ...sec };
  if (Array.isArray(sec.hosts)) out.hosts = [...sec.hosts];
  Object.defineProperty(out, util.inspect.custom, {
    enumerable: false,
    value(depth, opts, inspect = util.inspect) {
      const v = this.value;
      const shown = typeof v === "string" ? `<redacted, ${v.length} characters>` : "<redacted>";
      const rest = { ...this, value: shown };
      return `Secret ${inspect(rest, opts)}`;
    },
  });
  return out;
}

function num(v, what) {
  if (typeof v !== "number") throw new ValidationError(`${what} must be a number, got ${typeof v}`, { status: native.MLK_EINVAL });
  return v;
}

const MOUNT_KEYS = new Set(["type", "hostPath", "readonly", "ownerUid", "ownerGid"]);
const OWNER_KEYS = new Set(["ownerUid", "ownerGid"]);
// The official CreateOptions, plus extraDisks (beyond upstream).
const CREATE_KEYS = new Set([
  "image", "kernelRef", "privileged", "cpus", "memoryMb", "diskSizeMb", "timeoutSeconds", "allowedHosts", "addHosts",
  "blockPrivateIPs", "blockPrivateIPsSet", "noNetwork", "forceInterception", "networkInterception", "mounts", "env",
  "secrets", "workspace", "vfsInterception", "dnsServers", "hostname", "networkMtu", "portForwards",
  "portForwardAddresses", "imageConfig", "launchEntrypoint", "extraDisks",
]);

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

// A copy of CreateOptions: containers are copied, hook functions shared;
// secrets redact themselves in util.inspect.
function cloneOptions(o) {
  const copy = (v) => {
    if (Array.isArray(v)) return v.map(copy);
    if (v && typeof v === "object" && !Buffer.isBuffer(v)) {
      const out = {};
      for (const [k, x] of Object.entries(v)) out[k] = copy(x);
      return out;
    }
    return v;
  };
  const out = copy(o);
  if (Array.isArray(out.secrets)) out.secrets = out.secrets.map(secretRecord);
  return out;
}

const PF_SPEC = /^\s*(?:(\d+)\s*:\s*)?(\d+)\s*$/;

class Sandbox {
  constructor(image) {
    this[kHandle] = native.mlk_sandbox_new(typeof image === "string" ? image : "");
    // The options as given, secrets' values included: not enumerable, so
    // console.log / util.inspect / Object.keys / JSON.stringify of the
    // builder never show them (the custom inspector below shows the image).
    Object.defineProperty(this, "_opts", { value: { image }, writable: true, enumerable: false, configurable: false });
    if (image != null && typeof image !== "string") this._defer(new ValidationError(`image must be a string, got ${typeof image}`, { status: native.MLK_EINVAL }));
  }

  /** Build a Sandbox from the official SDK's CreateOptions object (unknown
   *  option names are a TypeError). */
  static fromOptions(o = {}) {
    onlyKeys(o, CREATE_KEYS, "CreateOptions");
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
    for (const d of o.extraDisks ?? []) s.addExtraDisk(d.hostPath, d.guestMount, d.readonly);
    if (o.launchEntrypoint) s._opts.launchEntrypoint = true;
    return s;
  }

  /** The options recorded so far, in the official SDK's CreateOptions
   *  shape (a copy; hook functions are shared). */
  options() {
    return cloneOptions(this._opts);
  }

  // The C builder.  create() copies everything it needs before it returns
  // (mlk_create_async renders the params and copies the hooks), so a builder
  // may be changed or reused while a create from it is still running.
  _h() {
    return this[kHandle];
  }

  // Like the official SDK's builder, the methods never throw a validation
  // error: the first one is kept and create() (or paramsJSON()) rejects
  // with it.  The core keeps its own setters' failures the same way.
  _defer(e) {
    if (!this._deferred) this._deferred = e;
  }

  _set(rc, what) {
    check(rc, what, this[kHandle]);
    return this;
  }

  withPrivileged() {
    this._opts.privileged = true;
    return this._set(native.mlk_sandbox_set_privileged(this._h(), 1), "withPrivileged");
  }
  withCPUs(cpus) {
    this._opts.cpus = cpus;
    return this._set(native.mlk_sandbox_set_cpus(this._h(), num(cpus, "cpus")), "withCPUs");
  }
  withMemory(mb) {
    this._opts.memoryMb = mb;
    return this._set(native.mlk_sandbox_set_memory_mb(this._h(), num(mb, "memory")), "withMemory");
  }
  withDiskSize(mb) {
    this._opts.diskSizeMb = mb;
    return this._set(native.mlk_sandbox_set_disk_size_mb(this._h(), num(mb, "disk size")), "withDiskSize");
  }
  withTimeout(seconds) {
    this._opts.timeoutSeconds = seconds;
    return this._set(native.mlk_sandbox_set_timeout_s(this._h(), num(seconds, "timeout")), "withTimeout");
  }
  withWorkspace(path) {
    this._opts.workspace = path;
    return this._set(native.mlk_sandbox_set_workspace(this._h(), str(path, "workspace")), "withWorkspace");
  }

  /** VFS interception: the config replaces the earlier static rules and
   *  VFS hooks; rules with a `hook`, `dangerousHook`, `actionHook` or
   *  `mutateHook` function are hooks. */
  withVFSInterception(config) {
    this._opts.vfsInterception = config;
    if (!config) return this._set(native.mlk_sandbox_set_vfs_interception(this._h(), null), "withVFSInterception");
    const { buf, fns } = interceptionConfig(config);
    const rc = native.sandboxSetInterception(this._h(), native.MLK_INTERCEPT_VFS, buf, fns);
    return this._set(rc, "withVFSInterception");
  }

  /** Force network interception; `config` ({rules: [...]}) replaces the
   *  earlier static rules and network hooks; rules with a `hook` function
   *  are hooks. */
  withNetworkInterception(config) {
    this._opts.forceInterception = true;
    if (config) this._opts.networkInterception = config;
    if (!config) return this._set(native.mlk_sandbox_set_network_interception(this._h(), null), "withNetworkInterception");
    const { buf, fns } = interceptionConfig(config);
    const rc = native.sandboxSetInterception(this._h(), native.MLK_INTERCEPT_NETWORK, buf, fns);
    return this._set(rc, "withNetworkInterception");
  }

  withEnv(name, value) {
    (this._opts.env ??= {})[name] = value;
    return this._set(native.mlk_sandbox_set_env(this._h(), str(name, "env name"), str(value, "env value")), "withEnv");
  }
  withEnvMap(env) {
    Object.assign((this._opts.env ??= {}), env);
    return this._set(native.mlk_sandbox_set_env_map(this._h(), msgpack.encode(env ?? {})), "withEnvMap");
  }

  allowHost(...hosts) {
    (this._opts.allowedHosts ??= []).push(...hosts);
    for (const host of hosts) this._set(native.mlk_sandbox_allow_host(this._h(), str(host, "host")), "allowHost");
    return this;
  }
  addHost(host, ip) {
    (this._opts.addHosts ??= []).push({ host, ip });
    return this._set(native.mlk_sandbox_add_host(this._h(), str(host, "host"), str(ip, "ip")), "addHost");
  }
  blockPrivateIPs() { return this.withBlockPrivateIPs(true); }
  allowPrivateIPs() { return this.withBlockPrivateIPs(false); }
  withBlockPrivateIPs(enabled) {
    this._opts.blockPrivateIPs = !!enabled;
    this._opts.blockPrivateIPsSet = true;
    return this._set(native.mlk_sandbox_set_block_private_ips(this._h(), enabled ? 1 : 0), "withBlockPrivateIPs");
  }
  unsetBlockPrivateIPs() {
    this._opts.blockPrivateIPs = false;
    this._opts.blockPrivateIPsSet = false;
    return this._set(native.mlk_sandbox_unset_block_private_ips(this._h()), "unsetBlockPrivateIPs");
  }

  addSecret(name, value, ...hosts) {
    (this._opts.secrets ??= []).push({ name, value, hosts });
    return this._set(native.mlk_sandbox_add_secret(this._h(), str(name, "secret name"), str(value, "secret value"), null, hosts),
      "addSecret");
  }
  addSecretWithPlaceholder(name, value, placeholder, ...hosts) {
    (this._opts.secrets ??= []).push({ name, value, placeholder, hosts });
    return this._set(native.mlk_sandbox_add_secret(this._h(), str(name, "secret name"), str(value, "secret value"),
      str(placeholder, "placeholder"), hosts), "addSecretWithPlaceholder");
  }

  /** Append DNS servers (the builder sends all of them). */
  withDNSServers(...servers) {
    const next = [...(this._opts.dnsServers ?? []), ...servers];
    this._opts.dnsServers = next;
    return this._set(native.mlk_sandbox_set_dns_servers(this._h(), next.map((x) => str(x, "DNS server"))), "withDNSServers");
  }
  withHostname(hostname) {
    this._opts.hostname = hostname;
    return this._set(native.mlk_sandbox_set_hostname(this._h(), str(hostname, "hostname")), "withHostname");
  }
  withNetworkMTU(mtu) {
    this._opts.networkMtu = mtu;
    return this._set(native.mlk_sandbox_set_network_mtu(this._h(), num(mtu, "mtu")), "withNetworkMTU");
  }
  withNoNetwork() {
    this._opts.noNetwork = true;
    return this._set(native.mlk_sandbox_set_no_network(this._h(), 1), "withNoNetwork");
  }

  /** Forward localPort on the host to remotePort in the sandbox, right after create. */
  withPortForward(localPort, remotePort) {
    (this._opts.portForwards ??= []).push({ localPort, remotePort });
    return this._set(native.mlk_sandbox_add_port_forward(this._h(),
      `${num(localPort, "local port")}:${num(remotePort, "remote port")}`), "withPortForward");
  }
  /** A `[LOCAL:]REMOTE` port-forward spec applied right after create. */
  withPortForwardSpec(spec) {
    const m = typeof spec === "string" ? PF_SPEC.exec(spec) : null;
    if (m) (this._opts.portForwards ??= []).push({ localPort: Number(m[1] ?? m[2]), remotePort: Number(m[2]) });
    return this._set(native.mlk_sandbox_add_port_forward(this._h(), str(spec, "port-forward spec")), "withPortForward");
  }
  withPortForwardAddresses(...addresses) {
    const next = [...(this._opts.portForwardAddresses ?? []), ...addresses];
    this._opts.portForwardAddresses = next;
    return this._set(native.mlk_sandbox_set_port_forward_addresses(this._h(), next.map((a) => str(a, "address"))),
      "withPortForwardAddresses");
  }

  /** Mount `config` ({type, hostPath, readonly, ownerUid, ownerGid}) at
   *  guestPath; a later mount at the same path replaces it. */
  mount(guestPath, config = {}) {
    onlyKeys(config, MOUNT_KEYS, "mount config");
    (this._opts.mounts ??= {})[guestPath] = { ...config };
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
    this._set(rc, "mount");
    const { ownerUid, ownerGid } = config;
    if (ownerUid != null || ownerGid != null) {
      const which = (ownerUid != null ? native.MLK_MOUNT_OWNER_UID : 0) | (ownerGid != null ? native.MLK_MOUNT_OWNER_GID : 0);
      this._set(native.mlk_sandbox_set_mount_owner(this._h(), g, which, ownerId(ownerUid, "ownerUid"),
        ownerId(ownerGid, "ownerGid")), "mount");
    }
    return this;
  }
  /** Mount a host directory read-write; `owner` ({ownerUid, ownerGid},
   *  each 0..4294967295) makes every file of it appear owned by them. */
  mountHostDir(guestPath, hostPath, owner = {}) {
    onlyKeys(owner, OWNER_KEYS, "mountHostDir owner");
    return this.mount(guestPath, { type: "host_fs", hostPath, ...owner });
  }
  /** Mount a host directory read-only; `owner` as for mountHostDir. */
  mountHostDirReadonly(guestPath, hostPath, owner = {}) {
    onlyKeys(owner, OWNER_KEYS, "mountHostDirReadonly owner");
    return this.mount(guestPath, { type: "host_fs", hostPath, readonly: true, ...owner });
  }
  mountMemory(guestPath) { return this.mount(guestPath, { type: "memory" }); }
  mountOverlay(guestPath, hostPath) { return this.mount(guestPath, { type: "overlay", hostPath }); }

  withUser(user) {
    (this._opts.imageConfig ??= {}).user = user;
    return this._set(native.mlk_sandbox_set_user(this._h(), str(user, "user")), "withUser");
  }
  withEntrypoint(...argv) {
    (this._opts.imageConfig ??= {}).entrypoint = [...argv];
    return this._set(native.mlk_sandbox_set_entrypoint(this._h(), argv), "withEntrypoint");
  }
  /** Merge an image config: non-empty fields replace, empty ones keep what is set. */
  withImageConfig(config) {
    if (!config) return this;
    const ic = (this._opts.imageConfig ??= {});
    if (config.user) ic.user = config.user;
    if (config.workingDir) ic.workingDir = config.workingDir;
    if (config.entrypoint?.length) ic.entrypoint = [...config.entrypoint];
    if (config.cmd?.length) ic.cmd = [...config.cmd];
    if (config.env && Object.keys(config.env).length) ic.env = { ...config.env };
    const wire = {
      user: config.user,
      working_dir: config.workingDir ?? config.working_dir,
      entrypoint: config.entrypoint,
      cmd: config.cmd,
      env: config.env,
    };
    return this._set(native.mlk_sandbox_set_image_config(this._h(), msgpack.encode(wire)), "withImageConfig");
  }
  /** Guest kernel: "", "file:///absolute/path" or an OCI ref (sent as {ref}). */
  withKernel(ref) {
    this._opts.kernelRef = ref;
    return this._set(native.mlk_sandbox_set_kernel(this._h(), str(ref, "kernel ref")), "withKernel");
  }
  /** Attach an ext4 image (e.g. a volume's path) at guestMount (beyond upstream). */
  addExtraDisk(hostPath, guestMount, readonly = false) {
    (this._opts.extraDisks ??= []).push({ hostPath, guestMount, readonly: !!readonly });
    return this._set(native.mlk_sandbox_add_extra_disk(this._h(), str(hostPath, "host path"), str(guestMount, "guest mount"),
      readonly ? 1 : 0), "addExtraDisk");
  }

  /** What console.log / util.inspect show: the image, never the options
   *  (they may hold secrets). */
  [util.inspect.custom](depth, opts, inspect = util.inspect) {
    return `Sandbox ${inspect({ image: this._opts.image }, opts)}`;
  }

  /** Validate without rendering the params into a string (create calls
   *  this before spawning, so no secret is copied into JS). */
  _validate(launch = false) {
    if (this._deferred) throw this._deferred;
    const [rc, msg] = native.sandbox_validate(this[kHandle], launch ? 1 : 0);
    if (rc !== 0) throw makeError(rc, msg || native.mlk_strerror(rc), 0);
  }

  /** Validate and render the `create` params exactly as they will be sent;
   *  throws the first error of the builder's calls or of validation. */
  paramsJSON(launch = false) {
    if (this._deferred) throw this._deferred;
    const [rc, json, msg] = native.mlk_sandbox_params_json(this[kHandle], launch ? 1 : 0);
    if (rc !== 0) throw makeError(rc, msg || native.mlk_strerror(rc), 0);
    return json;
  }
  /** paramsJSON, parsed. */
  params(launch = false) {
    return JSON.parse(this.paramsJSON(launch));
  }
}

// Every builder method records a validation error instead of throwing it
// (see _defer); a TypeError (an unknown option name) still throws.
for (const name of Object.getOwnPropertyNames(Sandbox.prototype)) {
  const fn = Sandbox.prototype[name];
  if (name === "constructor" || name.startsWith("_") || typeof fn !== "function" ||
      ["options", "paramsJSON", "params"].includes(name)) continue;
  Sandbox.prototype[name] = {
    [name](...args) {
      try {
        return fn.apply(this, args);
      } catch (thrown) {
        const e = fromNative(thrown);
        if (!(e instanceof MatchlockError)) throw e;
        this._defer(e);
        return this;
      }
    },
  }[name];
}

function createSandbox(image) {
  return new Sandbox(image);
}

module.exports = { Sandbox, createSandbox, kHandle, onlyKeys };
