"""Option and result types, named as in the official `matchlock` package."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal, TypeAlias

__all__ = [
    "MatchlockError",
    "RPCError",
    "Config",
    "MountConfig",
    "Secret",
    "ImageConfig",
    "HostIPMapping",
    "PortForward",
    "PortForwardBinding",
    "ExtraDisk",
    "CreateOptions",
    "ExecResult",
    "ExecStreamResult",
    "ExecPipeResult",
    "ExecInteractiveResult",
    "FileInfo",
    "VolumeInfo",
    "AllowListUpdate",
    "NetworkBodyTransform",
    "NetworkHookRule",
    "NetworkInterceptionConfig",
    "VFSHookRule",
    "VFSInterceptionConfig",
    "NetworkHookPhase",
    "NetworkHookAction",
    "VFSHookPhase",
    "VFSHookAction",
    "VFSHookOp",
    "NETWORK_HOOK_PHASE_BEFORE",
    "NETWORK_HOOK_PHASE_AFTER",
    "NETWORK_HOOK_ACTION_ALLOW",
    "NETWORK_HOOK_ACTION_BLOCK",
    "NETWORK_HOOK_ACTION_MUTATE",
    "VFS_HOOK_PHASE_BEFORE",
    "VFS_HOOK_PHASE_AFTER",
    "VFS_HOOK_ACTION_ALLOW",
    "VFS_HOOK_ACTION_BLOCK",
    "VFS_HOOK_OP_STAT",
    "VFS_HOOK_OP_READDIR",
    "VFS_HOOK_OP_OPEN",
    "VFS_HOOK_OP_CREATE",
    "VFS_HOOK_OP_MKDIR",
    "VFS_HOOK_OP_CHMOD",
    "VFS_HOOK_OP_REMOVE",
    "VFS_HOOK_OP_REMOVE_ALL",
    "VFS_HOOK_OP_RENAME",
    "VFS_HOOK_OP_SYMLINK",
    "VFS_HOOK_OP_READLINK",
    "VFS_HOOK_OP_READ",
    "VFS_HOOK_OP_WRITE",
    "VFS_HOOK_OP_CLOSE",
    "VFS_HOOK_OP_SYNC",
    "VFS_HOOK_OP_TRUNCATE",
    "NetworkHookRequest",
    "NetworkHookRequestMutation",
    "NetworkHookResponseMutation",
    "NetworkHookResult",
    "VFSHookEvent",
    "VFSActionRequest",
    "VFSMutateRequest",
]

NETWORK_HOOK_PHASE_BEFORE = "before"
NETWORK_HOOK_PHASE_AFTER = "after"
NETWORK_HOOK_ACTION_ALLOW = "allow"
NETWORK_HOOK_ACTION_BLOCK = "block"
NETWORK_HOOK_ACTION_MUTATE = "mutate"
VFS_HOOK_PHASE_BEFORE = "before"
VFS_HOOK_PHASE_AFTER = "after"
VFS_HOOK_ACTION_ALLOW = "allow"
VFS_HOOK_ACTION_BLOCK = "block"

def _core_vfs_ops() -> list[str]:
    """The VFS op names, from the core (mlk_vfs_op_name), in its order."""
    from ._native import ffi, lib

    ops: list[str] = []
    while (p := lib.mlk_vfs_op_name(len(ops))) != ffi.NULL:
        ops.append(ffi.string(p).decode())
    return ops


# The official names, filled from the core's list (in its order; a test
# checks each name against its value and VFSHookOp against the list).
(VFS_HOOK_OP_STAT, VFS_HOOK_OP_READDIR, VFS_HOOK_OP_OPEN, VFS_HOOK_OP_CREATE, VFS_HOOK_OP_MKDIR,
 VFS_HOOK_OP_CHMOD, VFS_HOOK_OP_REMOVE, VFS_HOOK_OP_REMOVE_ALL, VFS_HOOK_OP_RENAME, VFS_HOOK_OP_SYMLINK,
 VFS_HOOK_OP_READLINK, VFS_HOOK_OP_READ, VFS_HOOK_OP_WRITE, VFS_HOOK_OP_CLOSE, VFS_HOOK_OP_SYNC,
 VFS_HOOK_OP_TRUNCATE) = _core_vfs_ops()

NetworkHookPhase: TypeAlias = Literal["", "before", "after"]
NetworkHookAction: TypeAlias = Literal["allow", "block", "mutate"]
VFSHookPhase: TypeAlias = Literal["", "before", "after"]
VFSHookAction: TypeAlias = Literal["allow", "block"]
VFSHookOp: TypeAlias = Literal[
    "stat", "readdir", "open", "create", "mkdir", "chmod", "remove", "remove_all", "rename",
    "symlink", "readlink", "read", "write", "close", "sync", "truncate",
]


@dataclass
class Config:
    """Client configuration."""

    binary_path: str = "matchlock"
    """Path or name of the matchlock binary (searched in PATH)."""

    use_sudo: bool = False
    """Run `sudo <binary> rpc` (required for TAP devices on Linux)."""

    launcher: list[str] = field(default_factory=list)
    """A command put in front of the binary, e.g. ["ssh", "host"] (beyond upstream)."""

    launcher_shell: bool = False
    """The launcher hands its words to a shell, as ssh does: every word after it
    (the binary, the command's arguments) is shell-quoted.  Set it with ssh; leave
    it off for launchers that pass their arguments on as they are (kubectl exec).
    See docs/remote.md (beyond upstream)."""

    env: dict[str, str] = field(default_factory=dict)
    """Extra environment for the matchlock process (beyond upstream)."""

    max_line: int = 0
    """Largest response line accepted from the server in bytes; 0 keeps the default (MLK_DEFAULT_MAX_LINE: 341.4 MiB, a read_file of 256 MiB)."""


@dataclass
class MountConfig:
    """VFS mount configuration."""

    type: str = "memory"
    """Mount type: memory, host_fs, or overlay."""

    host_path: str = ""
    """Host path for host_fs and overlay mounts."""

    readonly: bool = False
    """Whether the mount is read-only (host_fs)."""

    owner_uid: int | None = None
    """UID reported for every file of this mount (overrides the host's
    ownership); 0 to 4294967295, sent only when set.  For host_fs mounts."""

    owner_gid: int | None = None
    """GID reported for every file of this mount (overrides the host's
    ownership); 0 to 4294967295, sent only when set.  For host_fs mounts."""

    def __post_init__(self) -> None:
        """Check the owner overrides (the core's range check and message)."""
        from .builder import mount_owner_error

        err = mount_owner_error(self.owner_uid, self.owner_gid)
        if err is not None:
            raise err

    def to_dict(self) -> dict[str, Any]:
        """The mount as sent on the wire."""
        d: dict[str, Any] = {"type": self.type}
        if self.host_path:
            d["host_path"] = self.host_path
        if self.readonly:
            d["readonly"] = True
        if self.owner_uid is not None:
            d["owner_uid"] = self.owner_uid
        if self.owner_gid is not None:
            d["owner_gid"] = self.owner_gid
        return d


@dataclass(repr=False)
class Secret:
    """A secret: inside the sandbox NAME holds a placeholder which the host
    replaces by the real value in HTTP(S) requests to the given hosts.

    Its repr (and so the repr of the CreateOptions holding it) shows the
    value's length, never the value."""

    name: str
    value: str
    hosts: list[str] = field(default_factory=list)
    placeholder: str = field(default="", kw_only=True)

    def __repr__(self) -> str:
        v = self.value
        shown = f"<redacted, {len(v)} characters>" if isinstance(v, str) else f"<redacted {type(v).__name__}>"
        return (f"Secret(name={self.name!r}, value={shown}, hosts={self.hosts!r}, "
                f"placeholder={self.placeholder!r})")


@dataclass
class ImageConfig:
    """OCI image metadata for user/entrypoint/cmd/workdir/env."""

    user: str = ""
    working_dir: str = ""
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The image config as sent on the wire (empty fields left out)."""
        d: dict[str, Any] = {}
        if self.user:
            d["user"] = self.user
        if self.working_dir:
            d["working_dir"] = self.working_dir
        if self.entrypoint:
            d["entrypoint"] = list(self.entrypoint)
        if self.cmd:
            d["cmd"] = list(self.cmd)
        if self.env:
            d["env"] = dict(self.env)
        return d


@dataclass
class HostIPMapping:
    """Static host-to-IP mapping injected into the guest's /etc/hosts."""

    host: str
    ip: str


@dataclass
class PortForward:
    """Port mapping from host to guest."""

    local_port: int
    remote_port: int


@dataclass
class PortForwardBinding:
    """A realised local listener."""

    address: str
    local_port: int
    remote_port: int


@dataclass
class ExtraDisk:
    """An ext4 image (e.g. a volume's path) attached at guest_mount (beyond upstream)."""

    host_path: str
    guest_mount: str
    readonly: bool = False


@dataclass
class NetworkBodyTransform:
    """Literal replacement applied to response bodies."""

    find: str
    replace: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The replacement as sent on the wire."""
        d: dict[str, Any] = {"find": self.find}
        if self.replace:
            d["replace"] = self.replace
        return d


@dataclass
class NetworkHookRequest:
    """What an SDK-local network hook receives (one intercepted HTTP exchange)."""

    phase: NetworkHookPhase = ""
    host: str = ""
    method: str = ""
    path: str = ""
    query: dict[str, str] | None = None
    request_headers: dict[str, list[str]] | None = None
    status_code: int = 0
    """After-phase: the upstream response's status."""
    response_headers: dict[str, list[str]] | None = None
    """After-phase: the upstream response's headers."""
    is_sse: bool = False


@dataclass
class NetworkHookRequestMutation:
    """Request changes a network hook returns (before phase).  `headers` and
    `query` replace the whole map; `path` rewrites the path when non-empty."""

    headers: dict[str, list[str]] | None = None
    query: dict[str, str] | None = None
    path: str = ""


@dataclass
class NetworkHookResponseMutation:
    """Response changes a network hook returns (after phase).  `headers`
    replaces the whole map; `set_body` replaces the body."""

    headers: dict[str, list[str]] | None = None
    body_replacements: list[NetworkBodyTransform] = field(default_factory=list)
    set_body: bytes | str | None = None


@dataclass
class NetworkHookResult:
    """What a network hook returns (None means: allow unchanged)."""

    action: NetworkHookAction = "allow"
    request: NetworkHookRequestMutation | None = None
    response: NetworkHookResponseMutation | None = None


NetworkHook: TypeAlias = Callable[[NetworkHookRequest], Any]
"""hook(request) -> NetworkHookResult | dict | None, or an `async def` returning one."""


@dataclass
class NetworkHookRule:
    """One network interception rule.  With `hook` set it is a callback rule:
    the callable runs for each matching exchange (its action must stay
    "allow"; the callable decides; static mutations may ride along)."""

    name: str = ""
    phase: NetworkHookPhase = ""
    hosts: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    path: str = ""
    action: NetworkHookAction = "allow"
    set_headers: dict[str, str] = field(default_factory=dict)
    delete_headers: list[str] = field(default_factory=list)
    set_query: dict[str, str] = field(default_factory=dict)
    delete_query: list[str] = field(default_factory=list)
    rewrite_path: str = ""
    set_response_headers: dict[str, str] = field(default_factory=dict)
    delete_response_headers: list[str] = field(default_factory=list)
    body_replacements: list[NetworkBodyTransform] = field(default_factory=list)
    timeout_ms: int = 0
    """Callback rules: how long the hook may take (default 5 s); past it the exchange proceeds."""
    hook: NetworkHook | None = None
    """SDK-local callback hook(NetworkHookRequest) -> NetworkHookResult | dict | None
    (sync or `async def`)."""

    def to_dict(self) -> dict[str, Any]:
        """The rule as sent on the wire (without its callback)."""
        d: dict[str, Any] = {"action": self.action or "allow"}
        if self.name:
            d["name"] = self.name
        if self.phase:
            d["phase"] = self.phase
        if self.hosts:
            d["hosts"] = list(self.hosts)
        if self.methods:
            d["methods"] = list(self.methods)
        if self.path:
            d["path"] = self.path
        if self.set_headers:
            d["set_headers"] = dict(self.set_headers)
        if self.delete_headers:
            d["delete_headers"] = list(self.delete_headers)
        if self.set_query:
            d["set_query"] = dict(self.set_query)
        if self.delete_query:
            d["delete_query"] = list(self.delete_query)
        if self.rewrite_path:
            d["rewrite_path"] = self.rewrite_path
        if self.set_response_headers:
            d["set_response_headers"] = dict(self.set_response_headers)
        if self.delete_response_headers:
            d["delete_response_headers"] = list(self.delete_response_headers)
        if self.body_replacements:
            d["body_replacements"] = [
                b.to_dict() if isinstance(b, NetworkBodyTransform) else dict(b) for b in self.body_replacements
            ]
        if self.timeout_ms > 0:
            d["timeout_ms"] = self.timeout_ms
        return d


@dataclass
class NetworkInterceptionConfig:
    """Host-side network interception configuration."""

    rules: list[NetworkHookRule] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The interception config as sent on the wire."""
        d: dict[str, Any] = {}
        if self.rules:
            d["rules"] = [r.to_dict() if isinstance(r, NetworkHookRule) else dict(r) for r in self.rules]
        return d


@dataclass
class VFSHookEvent:
    """What an SDK-local after-hook (hook, dangerous_hook) receives."""

    op: str
    path: str
    size: int
    mode: int
    uid: int
    gid: int


@dataclass
class VFSActionRequest:
    """What an SDK-local action hook receives (before write_file, read_file, list_files)."""

    op: str
    path: str
    size: int
    mode: int
    uid: int
    gid: int


@dataclass
class VFSMutateRequest:
    """What an SDK-local mutate hook receives (before write_file)."""

    path: str
    size: int
    mode: int
    uid: int
    gid: int
    data: bytes = b""
    """The bytes about to be written (beyond upstream, which passes no content)."""


@dataclass
class VFSHookRule:
    """One VFS interception rule: a static wire rule, or one SDK-local
    callback (hook / dangerous_hook: phase "after"; action_hook /
    mutate_hook: phase "before" or empty)."""

    name: str = ""
    phase: VFSHookPhase = ""
    ops: list[VFSHookOp] = field(default_factory=list)
    path: str = ""
    action: VFSHookAction = "allow"
    timeout_ms: int = 0
    hook: Callable[[VFSHookEvent], Any] | None = None
    """After-hook hook(event); not re-triggered by the files it writes itself."""
    dangerous_hook: Callable[[Any, VFSHookEvent], Any] | None = None
    """After-hook dangerous_hook(client, event); may call the client, no recursion guard."""
    mutate_hook: Callable[[VFSMutateRequest], Any] | None = None
    """mutate_hook(request) -> bytes | str | None (None keeps the content)."""
    action_hook: Callable[[VFSActionRequest], Any] | None = None
    """action_hook(request) -> "allow" | "block"."""

    def to_dict(self) -> dict[str, Any]:
        """The rule as sent on the wire (without its callbacks)."""
        d: dict[str, Any] = {"action": self.action}
        if self.name:
            d["name"] = self.name
        if self.phase:
            d["phase"] = self.phase
        if self.ops:
            d["ops"] = list(self.ops)
        if self.path:
            d["path"] = self.path
        if self.timeout_ms > 0:
            d["timeout_ms"] = self.timeout_ms
        return d

    def has_callback(self) -> bool:
        """Whether the rule carries an SDK-local callback (hook, dangerous_hook, action_hook, mutate_hook)."""
        return any(x is not None for x in (self.hook, self.dangerous_hook, self.mutate_hook, self.action_hook))


@dataclass
class VFSInterceptionConfig:
    """Host-side VFS interception configuration."""

    emit_events: bool = False
    rules: list[VFSHookRule] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The interception config as sent on the wire."""
        d: dict[str, Any] = {}
        if self.emit_events:
            d["emit_events"] = True
        if self.rules:
            d["rules"] = [r.to_dict() if isinstance(r, VFSHookRule) else dict(r) for r in self.rules]
        return d


@dataclass
class CreateOptions:
    """Options for creating a sandbox (what the Sandbox builder records)."""

    image: str = ""
    kernel_ref: str = ""
    privileged: bool = False
    cpus: float = 0
    memory_mb: int = 0
    disk_size_mb: int = 0
    timeout_seconds: int = 0
    allowed_hosts: list[str] = field(default_factory=list)
    add_hosts: list[HostIPMapping] = field(default_factory=list)
    block_private_ips: bool = False
    block_private_ips_set: bool = False
    no_network: bool = False
    force_interception: bool = False
    network_interception: NetworkInterceptionConfig | dict[str, Any] | None = None
    mounts: dict[str, MountConfig] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    vfs_interception: VFSInterceptionConfig | dict[str, Any] | None = None
    secrets: list[Secret] = field(default_factory=list)
    workspace: str = ""
    dns_servers: list[str] = field(default_factory=list)
    hostname: str = ""
    network_mtu: int = 0
    port_forwards: list[PortForward] = field(default_factory=list)
    port_forward_addresses: list[str] = field(default_factory=list)
    image_config: ImageConfig | None = None
    launch_entrypoint: bool = False
    extra_disks: list[ExtraDisk] = field(default_factory=list)


@dataclass
class ExecResult:
    """Result of a buffered exec (output decoded as UTF-8 with replacement;
    the raw bytes are in stdout_bytes/stderr_bytes)."""

    exit_code: int
    stdout: str
    stderr: str
    duration_ms: int
    stdout_bytes: bytes = b""
    stderr_bytes: bytes = b""


@dataclass
class ExecStreamResult:
    """Result of a streamed exec (output went to the writers)."""

    exit_code: int
    duration_ms: int


@dataclass
class ExecPipeResult:
    """Result of a pipe-mode exec."""

    exit_code: int
    duration_ms: int


@dataclass
class ExecInteractiveResult:
    """Result of an interactive TTY exec."""

    exit_code: int
    duration_ms: int


@dataclass
class FileInfo:
    """File metadata."""

    name: str
    size: int
    mode: int
    is_dir: bool
    mod_time: str = ""


@dataclass
class VolumeInfo:
    """Named volume metadata."""

    name: str
    size: str
    path: str


@dataclass
class AllowListUpdate:
    """What an allow-list change did (as the Go SDK's AllowListUpdate)."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    allowed_hosts: list[str] = field(default_factory=list)


# The official package defines its exceptions in `matchlock.types`; code that
# imports them from there keeps working.
from .errors import MatchlockError, RPCError  # noqa: E402
