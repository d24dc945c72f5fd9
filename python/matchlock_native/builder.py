"""The fluent Sandbox builder, a thin wrapper over the C builder (mlk_sandbox_*).

Every option goes straight into the core's builder, which validates and
renders the `create` request; Python keeps only a CreateOptions record of
what was set so `options()` works as in the official package.

    sandbox = (Sandbox("python:3.12-alpine")
               .allow_host("api.openai.com")
               .add_secret("API_KEY", os.environ["API_KEY"], "api.openai.com"))
    vm_id = client.launch(sandbox)
"""

from __future__ import annotations

import copy
import json
import math
from typing import Any, Mapping

from . import _hooks
from ._core import CStrArray, cstr
from ._msgpack import packb
from ._native import ffi, lib
from .errors import MatchlockError, ValidationError, error_from_status
from .types import (
    CreateOptions,
    ExtraDisk,
    HostIPMapping,
    ImageConfig,
    MountConfig,
    NetworkHookRule,
    NetworkInterceptionConfig,
    PortForward,
    Secret,
    VFSHookRule,
    VFSInterceptionConfig,
)

__all__ = ["Sandbox"]


class Sandbox:
    """Fluent builder for sandbox configuration (every option of the core)."""

    def __init__(self, image: str) -> None:
        p = lib.mlk_sandbox_new(cstr(image or "", "image"))
        if p == ffi.NULL:
            raise MemoryError("mlk_sandbox_new failed")
        self._sb = ffi.gc(p, lib.mlk_sandbox_free)
        self._opts = CreateOptions(image=image)
        self._hook_entries: list[_hooks._HookEntry] = []

    # -- plumbing ---------------------------------------------------------
    def _chk(self, rc: int) -> "Sandbox":
        if rc != 0:
            raise self._error(rc)
        return self

    def _error(self, rc: int) -> MatchlockError:
        """The builder's first failed setter, read without rendering the
        create params (which hold the secrets)."""
        pm = ffi.new("const char **")
        code = lib.mlk_sandbox_error(self._sb, pm)
        msg = ffi.string(pm[0]).decode("utf-8", "replace") if pm[0] != ffi.NULL else ""
        if code == 0 or not msg:
            msg = ffi.string(lib.mlk_strerror(rc)).decode()
            code = rc
        return error_from_status(code, msg)

    def _render(self, launch: int) -> tuple[int, str | None, str]:
        pj = ffi.new("char **")
        pl = ffi.new("size_t *")
        pm = ffi.new("char **")
        rc = lib.mlk_sandbox_params_json(self._sb, launch, pj, pl, pm)
        text = None
        msg = ""
        if pj[0] != ffi.NULL:
            text = ffi.string(pj[0], pl[0]).decode("utf-8")
            lib.mlk_free(pj[0])
        if pm[0] != ffi.NULL:
            msg = ffi.string(pm[0]).decode("utf-8", "replace")
            lib.mlk_free(pm[0])
        return rc, text, msg

    def _mp(self, fn: Any, value: Any) -> "Sandbox":
        b = packb(value)
        return self._chk(fn(self._sb, b, len(b)))

    # -- what the core renders (beyond upstream) ---------------------------
    def params_json(self, launch: bool = False) -> str:
        """Validate and return the `create` params exactly as they will be sent."""
        rc, text, msg = self._render(1 if launch else 0)
        if rc != 0:
            raise error_from_status(rc, msg)
        assert text is not None
        return text

    def params(self, launch: bool = False) -> dict[str, Any]:
        """params_json() parsed."""
        out: dict[str, Any] = json.loads(self.params_json(launch))
        return out

    def options(self) -> CreateOptions:
        """A copy of the options recorded so far (as the official package's);
        hook callables are shared, not copied."""
        memo: dict[int, Any] = {id(e.fn): e.fn for e in self._hook_entries}
        return copy.deepcopy(self._opts, memo)

    # -- resources -----------------------------------------------------------
    def with_privileged(self) -> "Sandbox":
        """Run the sandbox privileged."""
        self._opts.privileged = True
        return self._chk(lib.mlk_sandbox_set_privileged(self._sb, 1))

    def with_kernel(self, ref: str) -> "Sandbox":
        """Guest kernel: empty, "file:///absolute/path" or an OCI ref; sent as {"ref": REF}."""
        self._opts.kernel_ref = ref
        return self._chk(lib.mlk_sandbox_set_kernel(self._sb, cstr(ref, "kernel ref")))

    def with_cpus(self, cpus: float) -> "Sandbox":
        """CPUs (fractional); 0 means the default, 1.  Checked at create: finite, > 0, at most the host's CPUs."""
        self._opts.cpus = cpus
        return self._chk(lib.mlk_sandbox_set_cpus(self._sb, float(cpus)))

    def with_memory(self, mb: int) -> "Sandbox":
        """Memory in MiB; 0 means the default, 512."""
        self._opts.memory_mb = mb
        return self._chk(lib.mlk_sandbox_set_memory_mb(self._sb, _int(mb, "memory")))

    def with_disk_size(self, mb: int) -> "Sandbox":
        """Disk size in MiB; 0 means the default, 5120."""
        self._opts.disk_size_mb = mb
        return self._chk(lib.mlk_sandbox_set_disk_size_mb(self._sb, _int(mb, "disk size")))

    def with_timeout(self, seconds: int) -> "Sandbox":
        """Timeout in seconds; 0 means the default, 300."""
        self._opts.timeout_seconds = seconds
        return self._chk(lib.mlk_sandbox_set_timeout_s(self._sb, _int(seconds, "timeout")))

    # -- filesystem ----------------------------------------------------------
    def with_workspace(self, path: str) -> "Sandbox":
        """The guest workspace directory (the server checks it and the mounts under it)."""
        self._opts.workspace = path
        return self._chk(lib.mlk_sandbox_set_workspace(self._sb, cstr(path, "workspace")))

    def mount(self, guest_path: str, config: MountConfig) -> "Sandbox":
        """Mount `config` (memory, host_fs or overlay) at guest_path; a later
        mount at the same path replaces it."""
        g = cstr(guest_path, "guest path")
        t = config.type
        if t == "memory":
            rc = lib.mlk_sandbox_mount_memory(self._sb, g)
        elif t == "host_fs":
            fn = lib.mlk_sandbox_mount_host_dir_readonly if config.readonly else lib.mlk_sandbox_mount_host_dir
            rc = fn(self._sb, g, cstr(config.host_path, "host path"))
        elif t == "overlay":
            rc = lib.mlk_sandbox_mount_overlay(self._sb, g, cstr(config.host_path, "host path"))
        else:
            raise ValidationError(f"mount {guest_path!r}: unknown mount type {t!r}; "
                                  "use 'memory', 'host_fs' or 'overlay'")
        self._chk(rc)
        which, uid, gid = _owner_args(config.owner_uid, config.owner_gid)
        if which:
            self._chk(lib.mlk_sandbox_set_mount_owner(self._sb, g, which, uid, gid))
        self._opts.mounts[guest_path] = copy.copy(config)
        return self

    def mount_host_dir(self, guest_path: str, host_path: str, *, owner_uid: int | None = None,
                       owner_gid: int | None = None) -> "Sandbox":
        """Mount a host directory read-write; owner_uid/owner_gid (0 to
        4294967295) make every file of it appear owned by them."""
        return self.mount(guest_path, MountConfig(type="host_fs", host_path=host_path, owner_uid=owner_uid,
                                                  owner_gid=owner_gid))

    def mount_host_dir_readonly(self, guest_path: str, host_path: str, *, owner_uid: int | None = None,
                                owner_gid: int | None = None) -> "Sandbox":
        """Mount a host directory read-only; owner overrides as mount_host_dir()."""
        return self.mount(guest_path, MountConfig(type="host_fs", host_path=host_path, readonly=True,
                                                  owner_uid=owner_uid, owner_gid=owner_gid))

    def mount_memory(self, guest_path: str) -> "Sandbox":
        """Mount a memory filesystem at guest_path."""
        return self.mount(guest_path, MountConfig(type="memory"))

    def mount_overlay(self, guest_path: str, host_path: str) -> "Sandbox":
        """Mount a copy-on-write overlay of host_path at guest_path."""
        return self.mount(guest_path, MountConfig(type="overlay", host_path=host_path))

    def with_vfs_interception(self, config: VFSInterceptionConfig | Mapping[str, Any]) -> "Sandbox":
        """VFS interception: static wire rules, and SDK-local hooks for rules
        with `hook`, `dangerous_hook`, `action_hook` or `mutate_hook`."""
        wire = config.to_dict() if isinstance(config, VFSInterceptionConfig) else dict(config)
        if isinstance(config, VFSInterceptionConfig):
            wire["rules"] = list(config.rules)
        self._set_interception(lib.MLK_INTERCEPT_VFS, wire)
        self._opts.vfs_interception = config if isinstance(config, VFSInterceptionConfig) else copy.deepcopy(wire)
        return self

    def _set_interception(self, which: int, wire: dict[str, Any]) -> None:
        """Hand a whole interception config to the core, which splits the
        static rules from the callback rules and checks both
        (mlk_sandbox_set_interception); a callback becomes `true` and an
        entry the core calls back through."""
        entries: list[_hooks._HookEntry] = []
        rules = []
        for r in wire.get("rules") or []:
            d = r.to_dict() if isinstance(r, (NetworkHookRule, VFSHookRule)) else r
            if isinstance(d, Mapping):
                d = dict(d)
                if not isinstance(r, Mapping):   # a rule object: its callback fields
                    d.update({k: getattr(r, k) for k in _callback_keys(which) if getattr(r, k, None) is not None})
                for key, fn in list(d.items()):
                    if not callable(fn):
                        continue
                    d[key] = True   # the core names the next callback's ud, in rule order
                    phase = str(d.get("phase") or "").strip().lower()
                    entries.append(_hooks._HookEntry(_hooks.KIND_NETWORK if which == lib.MLK_INTERCEPT_NETWORK
                                                     else 0, str(d.get("name") or ""), fn, phase))
            rules.append(d)
        if "rules" in wire:
            wire = {**wire, "rules": rules}
        b = packb(wire)
        uds = ffi.new("void *[]", [e.handle for e in entries] or [ffi.NULL])
        self._chk(lib.mlk_sandbox_set_interception(self._sb, which, b, len(b), lib._mlk_py_hook, uds, len(entries)))
        net = which == lib.MLK_INTERCEPT_NETWORK   # the config replaced the hooks of its kind
        self._hook_entries = [e for e in self._hook_entries if (e.kind == _hooks.KIND_NETWORK) != net] + entries

    def add_extra_disk(self, host_path: str, guest_mount: str, readonly: bool = False) -> "Sandbox":
        """Attach an ext4 image (e.g. a volume's path) at guest_mount (beyond upstream)."""
        self._chk(lib.mlk_sandbox_add_extra_disk(self._sb, cstr(host_path, "host path"),
                                                 cstr(guest_mount, "guest mount"), 1 if readonly else 0))
        self._opts.extra_disks.append(ExtraDisk(host_path, guest_mount, bool(readonly)))
        return self

    # -- environment and image config -------------------------------------------
    def with_env(self, name: str, value: str) -> "Sandbox":
        """Set one environment variable (a later call for the same name wins)."""
        self._chk(lib.mlk_sandbox_set_env(self._sb, cstr(name, "env name"), cstr(value, "env value")))
        self._opts.env[name] = value
        return self

    def with_env_map(self, env: Mapping[str, str]) -> "Sandbox":
        """Merge a mapping of environment variables."""
        self._mp(lib.mlk_sandbox_set_env_map, dict(env))
        self._opts.env.update(env)
        return self

    def with_user(self, user: str) -> "Sandbox":
        """The user the image runs as (image_config.user)."""
        self._chk(lib.mlk_sandbox_set_user(self._sb, cstr(user, "user")))
        if self._opts.image_config is None:
            self._opts.image_config = ImageConfig()
        self._opts.image_config.user = user
        return self

    def with_entrypoint(self, *entrypoint: str) -> "Sandbox":
        """The image entrypoint to run (image_config.entrypoint)."""
        arr = CStrArray(entrypoint, "entrypoint")
        self._chk(lib.mlk_sandbox_set_entrypoint(self._sb, arr.ptr, arr.n))
        if self._opts.image_config is None:
            self._opts.image_config = ImageConfig()
        self._opts.image_config.entrypoint = list(entrypoint)
        return self

    def with_image_config(self, config: ImageConfig | Mapping[str, Any]) -> "Sandbox":
        """Merge: non-empty fields replace, empty ones keep what is set."""
        d = config.to_dict() if isinstance(config, ImageConfig) else dict(config)
        self._mp(lib.mlk_sandbox_set_image_config, d)
        ic = self._opts.image_config or ImageConfig()
        for k in _IMAGE_CONFIG_KEYS:
            v = d.get(k)
            if v:
                setattr(ic, k, copy.copy(v))
        self._opts.image_config = ic
        return self

    # -- network -------------------------------------------------------------------
    def allow_host(self, *hosts: str) -> "Sandbox":
        """Add hosts (globs such as "*.example.com") to the network allow-list."""
        for h in hosts:
            self._chk(lib.mlk_sandbox_allow_host(self._sb, cstr(h, "host")))
            self._opts.allowed_hosts.append(h)
        return self

    def add_host(self, host: str, ip: str) -> "Sandbox":
        """Add a static /etc/hosts entry in the guest."""
        self._chk(lib.mlk_sandbox_add_host(self._sb, cstr(host, "host"), cstr(ip, "ip")))
        self._opts.add_hosts.append(HostIPMapping(host=host, ip=ip))
        return self

    def block_private_ips(self) -> "Sandbox":
        """Block connections to private IP ranges (the default, stated explicitly)."""
        return self.with_block_private_ips(True)

    def allow_private_ips(self) -> "Sandbox":
        """Allow connections to private IP ranges (blocked by default)."""
        return self.with_block_private_ips(False)

    def with_block_private_ips(self, enabled: bool) -> "Sandbox":
        """Block (True) or allow (False) private IP ranges."""
        self._chk(lib.mlk_sandbox_set_block_private_ips(self._sb, 1 if enabled else 0))
        self._opts.block_private_ips = bool(enabled)
        self._opts.block_private_ips_set = True
        return self

    def unset_block_private_ips(self) -> "Sandbox":
        """Forget an explicit private-IP choice (back to the default)."""
        self._chk(lib.mlk_sandbox_unset_block_private_ips(self._sb))
        self._opts.block_private_ips = False
        self._opts.block_private_ips_set = False
        return self

    def add_secret(self, name: str, value: str, *hosts: str) -> "Sandbox":
        """A secret NAME whose placeholder the host replaces by VALUE in requests to the given hosts."""
        return self._secret(name, value, None, hosts)

    def add_secret_with_placeholder(self, name: str, value: str, placeholder: str, *hosts: str) -> "Sandbox":
        """As add_secret(), with the placeholder the sandbox sees chosen by the caller."""
        return self._secret(name, value, placeholder, hosts)

    def _secret(self, name: str, value: str, placeholder: str | None, hosts: tuple[str, ...]) -> "Sandbox":
        arr = CStrArray(hosts, "secret host")
        ph = cstr(placeholder, "placeholder") if placeholder else ffi.NULL
        self._chk(lib.mlk_sandbox_add_secret(self._sb, cstr(name, "secret name"), cstr(value, "secret value"),
                                             ph, arr.ptr, arr.n))
        self._opts.secrets = [s for s in self._opts.secrets if s.name != name]
        self._opts.secrets.append(Secret(name=name, value=value, hosts=list(hosts), placeholder=placeholder or ""))
        return self

    def with_dns_servers(self, *servers: str) -> "Sandbox":
        """Append DNS servers (the sandbox uses all of them)."""
        all_servers = self._opts.dns_servers + list(servers)
        arr = CStrArray(all_servers, "dns server")
        self._chk(lib.mlk_sandbox_set_dns_servers(self._sb, arr.ptr, arr.n))
        self._opts.dns_servers = all_servers
        return self

    def with_hostname(self, hostname: str) -> "Sandbox":
        """The sandbox's hostname (server default: the VM id)."""
        self._chk(lib.mlk_sandbox_set_hostname(self._sb, cstr(hostname, "hostname")))
        self._opts.hostname = hostname
        return self

    def with_network_mtu(self, mtu: int) -> "Sandbox":
        """Network MTU; 0 keeps the server's default (1500); negative fails at create."""
        self._chk(lib.mlk_sandbox_set_network_mtu(self._sb, _int(mtu, "mtu")))
        self._opts.network_mtu = mtu
        return self

    def with_no_network(self) -> "Sandbox":
        """No network at all (excludes allowed hosts, secrets and interception)."""
        self._chk(lib.mlk_sandbox_set_no_network(self._sb, 1))
        self._opts.no_network = True
        return self

    def with_network_interception(
        self, config: NetworkInterceptionConfig | Mapping[str, Any] | None = None
    ) -> "Sandbox":
        """Force network interception, optionally with rules: static ones, and
        SDK-local callback rules (`NetworkHookRule(hook=...)`)."""
        if config is None:
            self._chk(lib.mlk_sandbox_set_network_interception(self._sb, ffi.NULL, 0))
        elif isinstance(config, NetworkInterceptionConfig):
            self._set_interception(lib.MLK_INTERCEPT_NETWORK, {"rules": list(config.rules)})
        else:
            self._set_interception(lib.MLK_INTERCEPT_NETWORK, dict(config))
        self._opts.force_interception = True
        if config is not None:
            self._opts.network_interception = (
                config if isinstance(config, NetworkInterceptionConfig) else copy.deepcopy(dict(config)))
        return self

    def with_port_forward(self, local_port: int, remote_port: int) -> "Sandbox":
        """Forward local_port on the host to remote_port in the guest after create."""
        return self.add_port_forward(f"{_int(local_port, 'local port')}:{_int(remote_port, 'remote port')}")

    def add_port_forward(self, spec: str) -> "Sandbox":
        """A `[LOCAL:]REMOTE` port forward applied right after create (beyond upstream)."""
        self._chk(lib.mlk_sandbox_add_port_forward(self._sb, cstr(spec, "port-forward spec")))
        parts = [p.strip() for p in str(spec).split(":")]
        if len(parts) in (1, 2) and all(p.isdigit() for p in parts):
            self._opts.port_forwards.append(PortForward(int(parts[0]), int(parts[-1])))
        return self

    def with_port_forward_addresses(self, *addresses: str) -> "Sandbox":
        """Host addresses the builder's port forwards bind (default 127.0.0.1)."""
        all_addrs = self._opts.port_forward_addresses + list(addresses)
        arr = CStrArray(all_addrs, "bind address")
        self._chk(lib.mlk_sandbox_set_port_forward_addresses(self._sb, arr.ptr, arr.n))
        self._opts.port_forward_addresses = all_addrs
        return self

    # -- from CreateOptions ------------------------------------------------------------
    @classmethod
    def from_options(cls, opts: CreateOptions) -> "Sandbox":
        """A builder holding everything a CreateOptions says."""
        sb = cls(opts.image)
        if opts.kernel_ref:
            sb.with_kernel(opts.kernel_ref)
        if opts.privileged:
            sb.with_privileged()
        if opts.cpus:
            sb.with_cpus(opts.cpus)
        if opts.memory_mb:
            sb.with_memory(opts.memory_mb)
        if opts.disk_size_mb:
            sb.with_disk_size(opts.disk_size_mb)
        if opts.timeout_seconds:
            sb.with_timeout(opts.timeout_seconds)
        if opts.allowed_hosts:
            sb.allow_host(*opts.allowed_hosts)
        for h in opts.add_hosts:
            sb.add_host(h.host, h.ip)
        if opts.block_private_ips_set:
            sb.with_block_private_ips(opts.block_private_ips)
        elif opts.block_private_ips:
            sb.with_block_private_ips(True)
        if opts.no_network:
            sb.with_no_network()
        if opts.network_interception is not None:
            sb.with_network_interception(opts.network_interception)
        elif opts.force_interception:
            sb.with_network_interception()
        if opts.workspace:
            sb.with_workspace(opts.workspace)
        for guest, m in opts.mounts.items():
            sb.mount(guest, m)
        if opts.vfs_interception is not None:
            sb.with_vfs_interception(opts.vfs_interception)
        if opts.env:
            sb.with_env_map(opts.env)
        for s in opts.secrets:
            if s.placeholder:
                sb.add_secret_with_placeholder(s.name, s.value, s.placeholder, *s.hosts)
            else:
                sb.add_secret(s.name, s.value, *s.hosts)
        if opts.dns_servers:
            sb.with_dns_servers(*opts.dns_servers)
        if opts.hostname:
            sb.with_hostname(opts.hostname)
        if opts.network_mtu:
            sb.with_network_mtu(opts.network_mtu)
        for pf in opts.port_forwards:
            sb.with_port_forward(pf.local_port, pf.remote_port)
        if opts.port_forward_addresses:
            sb.with_port_forward_addresses(*opts.port_forward_addresses)
        if opts.image_config is not None:
            sb.with_image_config(opts.image_config)
        for d in opts.extra_disks:
            sb.add_extra_disk(d.host_path, d.guest_mount, d.readonly)
        sb._opts.launch_entrypoint = opts.launch_entrypoint
        return sb

    def __repr__(self) -> str:
        return f"Sandbox({self._opts.image!r})"


_INT64 = (-(2**63), 2**63 - 1)


def _rule_keys(which: int) -> list[tuple[str, int]]:
    """The core's rule keys (mlk_rule_key) with their MLK_RULE_KEY_* bits."""
    out = []
    flags = ffi.new("unsigned *")
    while True:
        k = lib.mlk_rule_key(which, len(out), flags)
        if k == ffi.NULL:
            return out
        out.append((ffi.string(k).decode(), flags[0]))


_CALLBACK_KEYS = {w: tuple(k for k, f in _rule_keys(w) if f & lib.MLK_RULE_KEY_CALLBACK)
                  for w in (lib.MLK_INTERCEPT_NETWORK, lib.MLK_INTERCEPT_VFS)}


# The keys of an image config (mlk_sandbox_set_image_config's map), as the
# core lists them; the same names as ImageConfig's fields.
_IMAGE_CONFIG_KEYS = tuple(k for k, _ in _rule_keys(lib.MLK_KEYS_IMAGE_CONFIG))


def _callback_keys(which: int) -> tuple[str, ...]:
    return _CALLBACK_KEYS[which]


def _owner_args(uid: int | None, gid: int | None) -> tuple[int, int, int]:
    """(which, uid, gid) for mlk_sandbox_set_mount_owner; values beyond
    int64 are clamped (still out of range for the core)."""
    which = 0
    args = []
    for bit, v, name in ((lib.MLK_MOUNT_OWNER_UID, uid, "owner_uid"), (lib.MLK_MOUNT_OWNER_GID, gid, "owner_gid")):
        if v is None:
            args.append(0)
            continue
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{name} must be an integer or None, not {type(v).__name__}")
        which |= bit
        args.append(min(max(v, _INT64[0]), _INT64[1]))
    return which, args[0], args[1]


def mount_owner_error(uid: int | None, gid: int | None) -> MatchlockError | None:
    """The core's verdict on mount owner overrides: None when valid, else
    the error (an InvalidMountOwnerError, a ValueError) to raise."""
    which, cu, cg = _owner_args(uid, gid)
    if not which:
        return None
    probe = Sandbox("-")
    lib.mlk_sandbox_mount_memory(probe._sb, b"/")
    rc = lib.mlk_sandbox_set_mount_owner(probe._sb, b"/", which, cu, cg)
    if rc == 0:
        return None
    err = probe._error(rc)
    for clamped, given in ((cu, uid), (cg, gid)):
        if given is not None and clamped != given:   # say the number the caller gave
            err = type(err)(str(err).replace(f"got {clamped}", f"got {given}"), status=err.status)
    return err


def _int(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"{what} must be an integer, not {type(v).__name__}")
    if isinstance(v, float):
        if not math.isfinite(v) or v != int(v):
            raise ValidationError(f"{what} must be a whole number, got {v!r}")
        v = int(v)
    return int(v)
