"""matchlock_native: Matchlock sandboxes from Python on the libmatchlock C core.

Same surface as the official `matchlock` package, so code ports by changing
one import:

    from matchlock_native import Client, Sandbox

    with Client() as client:
        client.launch(Sandbox("alpine:latest"))
        print(client.exec("echo hello").stdout)
"""

from ._core import CORE_VERSION, CORE_VERSION_STR, HEADER_VERSION, Writer
from .builder import Sandbox
from .client import AsyncClient, Client
from .errors import (
    AllowListHostsError,
    CallbackError,
    CloseTimeoutError,
    InvalidNetworkHookError,
    InvalidVFSHookError,
    RemoveError,
    ResultParseError,
    VolumeNameError,
    VolumeSizeError,
    ClosedError,
    CLIError,
    ImageRequiredError,
    InvalidAddHostError,
    InvalidCPUCountError,
    InvalidMountError,
    InvalidNetworkMTUError,
    InvalidRuleError,
    MatchlockError,
    MatchlockTimeoutError,
    NoNetworkConflictError,
    NotCreatedError,
    OperationCancelledError,
    OutOfMemoryError,
    PayloadTooBigError,
    PortForwardParseError,
    ProtocolError,
    RPCError,
    ServerDiedError,
    SpawnError,
    StateError,
    ValidationError,
    VFSBlockedError,
    WouldBlockError,
)
from .types import (
    NETWORK_HOOK_ACTION_ALLOW,
    NETWORK_HOOK_ACTION_BLOCK,
    NETWORK_HOOK_ACTION_MUTATE,
    NETWORK_HOOK_PHASE_AFTER,
    NETWORK_HOOK_PHASE_BEFORE,
    VFS_HOOK_ACTION_ALLOW,
    VFS_HOOK_ACTION_BLOCK,
    VFS_HOOK_PHASE_AFTER,
    VFS_HOOK_PHASE_BEFORE,
    AllowListUpdate,
    Config,
    CreateOptions,
    ExecInteractiveResult,
    ExecPipeResult,
    ExecResult,
    ExecStreamResult,
    ExtraDisk,
    FileInfo,
    HostIPMapping,
    ImageConfig,
    MountConfig,
    NetworkBodyTransform,
    NetworkHookAction,
    NetworkHookPhase,
    NetworkHookRule,
    NetworkInterceptionConfig,
    PortForward,
    PortForwardBinding,
    Secret,
    VFSHookAction,
    VFSHookOp,
    VFSHookPhase,
    VFSHookRule,
    VFSInterceptionConfig,
    VolumeInfo,
)

__version__: str = "1.0.0"

__all__ = [
    "AllowListHostsError", "AllowListUpdate", "AsyncClient", "CallbackError", "CLIError", "Client",
    "ClosedError", "Config", "CORE_VERSION", "CORE_VERSION_STR", "CreateOptions", "ExecInteractiveResult",
    "ExecPipeResult", "ExecResult", "ExecStreamResult", "ExtraDisk", "FileInfo", "HEADER_VERSION",
    "HostIPMapping", "ImageConfig", "ImageRequiredError", "InvalidAddHostError", "InvalidCPUCountError",
    "InvalidMountError", "InvalidNetworkMTUError", "InvalidRuleError", "MatchlockError",
    "MatchlockTimeoutError", "MountConfig", "NETWORK_HOOK_ACTION_ALLOW", "NETWORK_HOOK_ACTION_BLOCK",
    "NETWORK_HOOK_ACTION_MUTATE", "NETWORK_HOOK_PHASE_AFTER", "NETWORK_HOOK_PHASE_BEFORE",
    "NetworkBodyTransform", "NetworkHookAction", "NetworkHookPhase", "NetworkHookRule",
    "NetworkInterceptionConfig", "NoNetworkConflictError", "NotCreatedError", "OperationCancelledError",
    "OutOfMemoryError", "PayloadTooBigError", "PortForward", "PortForwardBinding", "PortForwardParseError",
    "ProtocolError", "RPCError", "Sandbox", "Secret", "ServerDiedError", "SpawnError", "StateError",
    "VFS_HOOK_ACTION_ALLOW", "VFS_HOOK_ACTION_BLOCK", "VFS_HOOK_PHASE_AFTER", "VFS_HOOK_PHASE_BEFORE",
    "ValidationError", "VFSBlockedError", "VFSHookAction", "VFSHookOp", "VFSHookPhase", "VFSHookRule",
    "VFSInterceptionConfig", "VolumeInfo", "WouldBlockError", "Writer", "CloseTimeoutError",
    "InvalidNetworkHookError", "InvalidVFSHookError", "RemoveError", "ResultParseError", "VolumeNameError",
    "VolumeSizeError",
]
