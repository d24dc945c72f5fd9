"""Exceptions: one class per libmatchlock MLK_E* code, under MatchlockError.

`MatchlockError` and `RPCError` have the names and behaviour of the official
`matchlock` package (RPCError keeps the server's JSON-RPC `code` and
`message`, with `is_vm_error()` and friends).  Every exception also carries
`status` (the MLK_E* code), `errname` ("MLK_EDEAD") and, for validation
errors, `upstream_name` (the Go SDK's error variable, "ErrImageRequired").
Timeouts are also `TimeoutError`s and validation errors also `ValueError`s,
so code written for the official package keeps catching them.
"""

from __future__ import annotations

from typing import ClassVar

from ._native import ffi, lib

__all__ = [
    "MatchlockError",
    "RPCError",
    "ValidationError",
    "ImageRequiredError",
    "InvalidCPUCountError",
    "InvalidNetworkMTUError",
    "NoNetworkConflictError",
    "InvalidAddHostError",
    "PortForwardParseError",
    "AllowListHostsError",
    "InvalidMountError",
    "InvalidMountOwnerError",
    "InvalidRuleError",
    "OutOfMemoryError",
    "ClosedError",
    "SpawnError",
    "ProtocolError",
    "ServerDiedError",
    "MatchlockTimeoutError",
    "OperationCancelledError",
    "CallbackError",
    "WouldBlockError",
    "NotCreatedError",
    "PayloadTooBigError",
    "CLIError",
    "StateError",
    "VolumeNameError",
    "VolumeSizeError",
    "InvalidNetworkHookError",
    "InvalidVFSHookError",
    "CloseTimeoutError",
    "ResultParseError",
    "RemoveError",
    "VFSBlockedError",
    "error_from_status",
]


def _cstr(p: object) -> str | None:
    if p == ffi.NULL:
        return None
    out: str = ffi.string(p).decode("utf-8", "replace")
    return out


class MatchlockError(Exception):
    """Base exception for Matchlock errors."""

    #: The MLK_E* code this class stands for (0 for the generic base).
    STATUS: ClassVar[int] = 0

    message: str
    status: int
    rpc_code: int

    def __init__(self, message: str = "", *, status: int | None = None, rpc_code: int = 0) -> None:
        self.message = message
        self.status = self.STATUS if status is None else status
        self.rpc_code = rpc_code
        super().__init__(message)

    @property
    def errname(self) -> str | None:
        """The symbolic name of `status` ("MLK_EDEAD"), or None."""
        return _cstr(lib.mlk_errname(self.status)) if self.status else None

    @property
    def upstream_name(self) -> str | None:
        """The upstream SDK's error variable ("ErrImageRequired"), or None."""
        return _cstr(lib.mlk_err_upstream_name(self.status)) if self.status else None


class RPCError(MatchlockError):
    """The server answered with a JSON-RPC error; `code` and `message` are its own."""

    STATUS = lib.MLK_ERPC
    PARSE_ERROR = -32700
    INVALID_REQUEST = -32600
    METHOD_NOT_FOUND = -32601
    INVALID_PARAMS = -32602
    INTERNAL_ERROR = -32603
    VM_FAILED = -32000
    EXEC_FAILED = -32001
    FILE_FAILED = -32002
    CANCELLED = -32003

    code: int

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message, rpc_code=code)
        self.code = code
        self.args = (f"[{code}] {message}",)

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"

    def is_vm_error(self) -> bool:
        """The server's VM failure code (-32000)."""
        return self.code == self.VM_FAILED

    def is_exec_error(self) -> bool:
        """The server's exec failure code (-32001)."""
        return self.code == self.EXEC_FAILED

    def is_file_error(self) -> bool:
        """The server's file operation failure code (-32002)."""
        return self.code == self.FILE_FAILED


class ValidationError(MatchlockError, ValueError):
    """An argument or option is invalid; nothing was sent."""

    STATUS = lib.MLK_EINVAL


class ImageRequiredError(ValidationError):
    """No image given (the seed's ErrImageRequired)."""

    STATUS = lib.MLK_EIMAGE_REQUIRED


class InvalidCPUCountError(ValidationError):
    """The CPU count is not finite, not > 0, or more than the host has (ErrInvalidCPUCount)."""

    STATUS = lib.MLK_EINVALID_CPU


class InvalidNetworkMTUError(ValidationError):
    """The network MTU is negative (ErrInvalidNetworkMTU)."""

    STATUS = lib.MLK_EINVALID_MTU


class NoNetworkConflictError(ValidationError):
    """no_network combined with allowed hosts, secrets or interception (ErrNoNetworkConflict)."""

    STATUS = lib.MLK_ENO_NETWORK_CONFLICT


class InvalidAddHostError(ValidationError):
    """An add-host entry is invalid (ErrInvalidAddHost)."""

    STATUS = lib.MLK_EINVALID_ADD_HOST


class PortForwardParseError(ValidationError):
    """A port-forward spec is not [LOCAL:]REMOTE with ports 1..65535 (ErrParsePortForwards)."""

    STATUS = lib.MLK_EPORT_FORWARD


class AllowListHostsError(ValidationError):
    """An allow-list call was given no hosts (ErrAllowListHosts)."""

    STATUS = lib.MLK_EALLOW_LIST_HOSTS


class InvalidMountError(ValidationError):
    """Extra disks that cannot be attached as given (two at one guest mount)."""

    STATUS = lib.MLK_EINVALID_MOUNT


class InvalidMountOwnerError(ValidationError):
    """A mount's owner_uid/owner_gid is outside 0..4294967295."""

    STATUS = getattr(lib, "MLK_EINVALID_MOUNT_OWNER", -37)


class InvalidRuleError(ValidationError):
    """An interception rule has the wrong shape (not a map, wrong field types)."""

    STATUS = lib.MLK_EINVALID_RULE


class PayloadTooBigError(ValidationError):
    """A payload is over a limit of the protocol."""

    STATUS = lib.MLK_ETOOBIG


class VolumeNameError(ValidationError):
    """A volume call was given no name (ErrVolumeNameRequired)."""

    STATUS = getattr(lib, "MLK_EVOLUME_NAME", -32)


class VolumeSizeError(ValidationError):
    """A volume size is not > 0 (ErrInvalidVolumeSize)."""

    STATUS = getattr(lib, "MLK_EVOLUME_SIZE", -33)


class InvalidNetworkHookError(ValidationError):
    """A network hook (callback rule) is invalid (ErrInvalidNetworkHook)."""

    STATUS = getattr(lib, "MLK_EINVALID_NET_HOOK", -34)


class InvalidVFSHookError(ValidationError):
    """A VFS hook is invalid, or answered nonsense (ErrInvalidVFSHook)."""

    STATUS = getattr(lib, "MLK_EINVALID_VFS_HOOK", -35)


class OutOfMemoryError(MatchlockError, MemoryError):
    """The library ran out of memory."""

    STATUS = lib.MLK_ENOMEM


class ClosedError(MatchlockError):
    """The client is closed; create a new Client."""

    STATUS = lib.MLK_ECLOSED


class SpawnError(MatchlockError):
    """The matchlock process could not be started."""

    STATUS = lib.MLK_ESPAWN


class ProtocolError(MatchlockError):
    """The server sent something that is not the protocol."""

    STATUS = lib.MLK_EPROTO


class ServerDiedError(MatchlockError):
    """The matchlock process exited or closed its pipes."""

    STATUS = lib.MLK_EDEAD


class MatchlockTimeoutError(MatchlockError, TimeoutError):
    """The call's deadline passed; the call was cancelled on the server."""

    STATUS = lib.MLK_ETIMEDOUT


class CloseTimeoutError(MatchlockTimeoutError):
    """close() timed out; the matchlock process was killed."""

    STATUS = getattr(lib, "MLK_ECLOSE_TIMEOUT", -30)


class ResultParseError(ProtocolError):
    """A server result could not be parsed (the message names it)."""

    STATUS = getattr(lib, "MLK_EPARSE", -36)


class OperationCancelledError(MatchlockError):
    """The call was cancelled (by the caller, or the server answered -32003)."""

    STATUS = lib.MLK_ECANCELED


class CallbackError(MatchlockError):
    """A user callback failed (the original exception is the __cause__)."""

    STATUS = lib.MLK_EUSER


class WouldBlockError(MatchlockError, BlockingIOError):
    """Too much stdin is buffered; wait and retry."""

    STATUS = lib.MLK_EAGAIN


class NotCreatedError(MatchlockError):
    """The call needs a created sandbox: call create() or launch() first."""

    STATUS = lib.MLK_ENOTCREATED


class CLIError(MatchlockError):
    """A CLI side channel (`matchlock rm`, `matchlock volume ...`) failed."""

    STATUS = lib.MLK_ECLI


class RemoveError(CLIError):
    """`matchlock rm` failed."""

    STATUS = getattr(lib, "MLK_EREMOVE", -31)


class StateError(MatchlockError):
    """The call is not valid in this state (e.g. a second create)."""

    STATUS = lib.MLK_ESTATE


class VFSBlockedError(MatchlockError):
    """A local VFS action hook blocked the call."""

    STATUS = lib.MLK_EVFS_BLOCKED


_BY_STATUS: dict[int, type[MatchlockError]] = {
    cls.STATUS: cls
    for cls in (
        ValidationError, ImageRequiredError, InvalidCPUCountError, InvalidNetworkMTUError,
        NoNetworkConflictError, InvalidAddHostError, PortForwardParseError, AllowListHostsError,
        InvalidMountError, InvalidMountOwnerError, InvalidRuleError, PayloadTooBigError, OutOfMemoryError, ClosedError,
        SpawnError, ProtocolError, ServerDiedError, MatchlockTimeoutError, OperationCancelledError,
        CallbackError, WouldBlockError, NotCreatedError, CLIError, StateError, VFSBlockedError,
        VolumeNameError, VolumeSizeError, InvalidNetworkHookError, InvalidVFSHookError, CloseTimeoutError,
        ResultParseError, RemoveError,
    )
}

_HINTS: dict[int, str] = {
    lib.MLK_ESPAWN: "check Config.binary_path (or $MATCHLOCK_BIN) names an executable matchlock binary",
    lib.MLK_EDEAD: "this client cannot be used any more; create a new Client",
}


def error_from_status(status: int, message: str = "", rpc_code: int = 0) -> MatchlockError:
    """The exception for an MLK_E* status and the call's message."""
    if not message:
        message = _cstr(lib.mlk_strerror(status)) or f"error {status}"
    hint = _HINTS.get(status)
    if hint and hint not in message:
        message = f"{message} ({hint})"
    if status == lib.MLK_ERPC:
        suffix = f" (code {rpc_code})"
        if message.endswith(suffix):
            message = message[: -len(suffix)]
        return RPCError(rpc_code, message)
    cls = _BY_STATUS.get(status, MatchlockError)
    return cls(message, status=status, rpc_code=rpc_code)
