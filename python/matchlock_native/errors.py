"""Exceptions: one class per libmatchlock MLK_E* code, under MatchlockError.

Which class a code gets, and the hint its message ends with, are the core's
(mlk_error_class, mlk_error_hint; the table is core/errors.c): this module
declares the classes and their Python bases, nothing else.

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


class ImageRequiredError(ValidationError):
    """No image given (the seed's ErrImageRequired)."""


class InvalidCPUCountError(ValidationError):
    """The CPU count is not finite, not > 0, or more than the host has (ErrInvalidCPUCount)."""


class InvalidNetworkMTUError(ValidationError):
    """The network MTU is negative (ErrInvalidNetworkMTU)."""


class NoNetworkConflictError(ValidationError):
    """no_network combined with allowed hosts, secrets or interception (ErrNoNetworkConflict)."""


class InvalidAddHostError(ValidationError):
    """An add-host entry is invalid (ErrInvalidAddHost)."""


class PortForwardParseError(ValidationError):
    """A port-forward spec is not [LOCAL:]REMOTE with ports 1..65535 (ErrParsePortForwards)."""


class AllowListHostsError(ValidationError):
    """An allow-list call was given no hosts (ErrAllowListHosts)."""


class InvalidMountError(ValidationError):
    """Extra disks that cannot be attached as given (two at one guest mount)."""


class InvalidMountOwnerError(ValidationError):
    """A mount's owner_uid/owner_gid is outside 0..4294967295."""


class InvalidRuleError(ValidationError):
    """An interception rule has the wrong shape (not a map, wrong field types)."""


class PayloadTooBigError(ValidationError):
    """A payload is over a limit of the protocol."""


class VolumeNameError(ValidationError):
    """A volume call was given no name (ErrVolumeNameRequired)."""


class VolumeSizeError(ValidationError):
    """A volume size is not > 0 (ErrInvalidVolumeSize)."""


class InvalidNetworkHookError(ValidationError):
    """A network hook (callback rule) is invalid (ErrInvalidNetworkHook)."""


class InvalidVFSHookError(ValidationError):
    """A VFS hook is invalid, or answered nonsense (ErrInvalidVFSHook)."""


class OutOfMemoryError(MatchlockError, MemoryError):
    """The library ran out of memory."""


class ClosedError(MatchlockError):
    """The client is closed; create a new Client."""


class SpawnError(MatchlockError):
    """The matchlock process could not be started."""


class ProtocolError(MatchlockError):
    """The server sent something that is not the protocol."""


class ServerDiedError(MatchlockError):
    """The matchlock process exited or closed its pipes."""


class MatchlockTimeoutError(MatchlockError, TimeoutError):
    """The call's deadline passed; the call was cancelled on the server."""


class CloseTimeoutError(MatchlockTimeoutError):
    """close() timed out; the matchlock process was killed."""


class ResultParseError(ProtocolError):
    """A server result could not be parsed (the message names it)."""


class OperationCancelledError(MatchlockError):
    """The call was cancelled (by the caller, or the server answered -32003)."""


class CallbackError(MatchlockError):
    """A user callback failed (the original exception is the __cause__)."""


class WouldBlockError(MatchlockError, BlockingIOError):
    """Too much stdin is buffered; wait and retry."""


class NotCreatedError(MatchlockError):
    """The call needs a created sandbox: call create() or launch() first."""


class CLIError(MatchlockError):
    """A CLI side channel (`matchlock rm`, `matchlock volume ...`) failed."""


class RemoveError(CLIError):
    """`matchlock rm` failed."""


class StateError(MatchlockError):
    """The call is not valid in this state (e.g. a second create)."""


class VFSBlockedError(MatchlockError):
    """A local VFS action hook blocked the call."""


def _class_named(name: str | None) -> type[MatchlockError]:
    cls = globals().get(name or "")
    return cls if isinstance(cls, type) and issubclass(cls, MatchlockError) else MatchlockError


def _class_of(status: int) -> type[MatchlockError]:
    """The class the core names for a status (mlk_error_class)."""
    return _class_named(_cstr(lib.mlk_error_class(status)))


# Each class's STATUS is the code the core gives it: the table is the core's.
for _name in dir(lib):
    if _name.startswith("MLK_E"):
        _code = getattr(lib, _name)
        _cls = _class_of(_code)
        if _cls is not MatchlockError:
            _cls.STATUS = _code


def error_from_status(status: int, message: str = "", rpc_code: int = 0) -> MatchlockError:
    """The exception for an MLK_E* status and the call's message, of the
    class and with the hint the core gives the status (mlk_error_class,
    mlk_error_hint)."""
    if not message:
        message = _cstr(lib.mlk_strerror(status)) or f"error {status}"
    hint = _cstr(lib.mlk_error_hint(status))
    if hint and hint not in message:
        message = f"{message} ({hint})"
    cls = _class_of(status)
    if cls is RPCError:
        suffix = f" (code {rpc_code})"
        if message.endswith(suffix):
            message = message[: -len(suffix)]
        return RPCError(rpc_code, message)
    return cls(message, status=status, rpc_code=rpc_code)
