"""SDK-local hooks: Python callables behind the core's hook ABI.

Every hook rule registered on a `Sandbox` becomes one `_HookEntry` whose
cffi handle is the `ud` of `mlk_sandbox_add_network_hook` /
`mlk_sandbox_add_vfs_hook`; the core calls the single `extern "Python"`
trampoline `_mlk_py_hook` from mlk_dispatch() (for the Client: the thread
waiting in a call, or the shared "matchlock-dispatch" thread when none
waits -- see _dispatch.py; for the AsyncClient: its event loop).

The trampoline decodes the request, calls the user's function and answers
the reply token (`mlk_hook_call`) exactly once:

* a plain return value is encoded and answered at once;
* an awaitable (an `async def` hook) runs as a task on the AsyncClient's
  loop, or on the shared dispatcher loop for the blocking Client, and answers
  when it finishes (the token is kept in a `_Reply` until then);
* an exception answers with `mlk_hook_fail` (network: an error reply, the
  traffic proceeds; action/mutate: the file call fails) and is reported:
  logged on the "matchlock_native.hooks" logger and stored in the client's
  `hook_errors`.  It never escapes into C.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
import threading
import weakref
from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from typing import Any, Callable

from . import _dispatch
from ._msgpack import packb, unpackb
from ._native import ffi, lib
from .types import (
    NetworkHookRequest,
    NetworkHookResult,
    VFSActionRequest,
    VFSHookEvent,
    VFSMutateRequest,
)

logger = logging.getLogger("matchlock_native.hooks")

KIND_NETWORK: int = lib.MLK_HOOK_NETWORK
KIND_AFTER: int = lib.MLK_HOOK_VFS_AFTER
KIND_DANGEROUS: int = lib.MLK_HOOK_VFS_DANGEROUS
KIND_ACTION: int = lib.MLK_HOOK_VFS_ACTION
KIND_MUTATE: int = lib.MLK_HOOK_VFS_MUTATE

KIND_LABEL = {
    KIND_NETWORK: "network hook",
    KIND_AFTER: "VFS hook",
    KIND_DANGEROUS: "VFS dangerous_hook",
    KIND_ACTION: "VFS action_hook",
    KIND_MUTATE: "VFS mutate_hook",
}


class _HookEntry:
    """One registered hook: the user's callable and what the trampoline
    needs to call it.  Kept alive by the Sandbox and by every client created
    from it (the core holds its handle as `ud`)."""

    __slots__ = ("kind", "name", "fn", "phase", "handle", "__weakref__")

    def __init__(self, kind: int, name: str, fn: Callable[..., Any], phase: str = "") -> None:
        self.kind = kind
        self.name = name
        self.fn = fn
        self.phase = phase
        self.handle = ffi.new_handle(self)

    def label(self) -> str:
        return f"{KIND_LABEL.get(self.kind, 'hook')} {self.name!r}"


# --------------------------------------------------------------------------
# mlk_client* -> Python client

_clients: dict[int, "weakref.ref[Any]"] = {}
_clients_lock = threading.Lock()


def addr(ptr: Any) -> int:
    return int(ffi.cast("uintptr_t", ptr))


def register(ptr: Any, client: Any) -> int:
    a = addr(ptr)
    with _clients_lock:
        _clients[a] = weakref.ref(client)
    return a


def unregister(a: int) -> None:
    with _clients_lock:
        _clients.pop(a, None)


def _lookup(ptr: Any) -> Any:
    with _clients_lock:
        ref = _clients.get(addr(ptr))
    return ref() if ref is not None else None


# --------------------------------------------------------------------------
# reply tokens

_orphans: set["_Reply"] = set()  # tokens of hooks whose client is unknown


class _Reply:
    """An mlk_hook_call answered exactly once, from any thread."""

    __slots__ = ("call", "lock", "owner", "__weakref__")

    def __init__(self, call: Any, owner: set["_Reply"]) -> None:
        self.call = call
        self.lock = threading.Lock()
        self.owner = owner
        owner.add(self)

    def _take(self) -> Any:
        with self.lock:
            call, self.call = self.call, None
        self.owner.discard(self)
        return call

    @property
    def answered(self) -> bool:
        return self.call is None

    def reply(self, mp: bytes) -> bool:
        call = self._take()
        if call is None:
            return False
        lib.mlk_hook_reply(call, mp, len(mp))
        return True

    def fail(self, message: str) -> bool:
        call = self._take()
        if call is None:
            return False
        lib.mlk_hook_fail(call, message.encode("utf-8", "replace").replace(b"\0", b" "))
        return True


def fail_pending(pending: set[_Reply], message: str) -> None:
    """Answer every still-pending token (the client is going away)."""
    for r in list(pending):
        r.fail(message)


# --------------------------------------------------------------------------
# reporting


def _describe(e: BaseException) -> str:
    text = str(e)
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def report(client: Any, entry: _HookEntry, e: BaseException) -> None:
    """Log a hook's exception and keep it in the client's hook_errors."""
    core = getattr(client, "_core", None)
    if core is not None:
        core.hook_errors.append(e)
    logger.error("%s raised %s", entry.label(), _describe(e), exc_info=(type(e), e, e.__traceback__))


# --------------------------------------------------------------------------
# requests (msgpack from the core) -> the official types


def _str_map(v: Any) -> dict[str, str] | None:
    if not isinstance(v, Mapping):
        return None
    return {str(k): str(x) for k, x in v.items()}


def _slice_map(v: Any) -> dict[str, list[str]] | None:
    if not isinstance(v, Mapping):
        return None
    return {str(k): [str(y) for y in x] if isinstance(x, (list, tuple)) else [str(x)] for k, x in v.items()}


def _text(v: Any) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return "" if v is None else str(v)


def _int(v: Any) -> int:
    try:
        return int(v or 0)
    except (TypeError, ValueError):
        return 0


def network_request(d: Mapping[str, Any]) -> NetworkHookRequest:
    phase = _text(d.get("phase")).strip().lower()
    return NetworkHookRequest(
        phase=phase if phase in ("before", "after") else "",  # type: ignore[arg-type]
        host=_text(d.get("host")),
        method=_text(d.get("method")),
        path=_text(d.get("path")),
        query=_str_map(d.get("query")),
        request_headers=_slice_map(d.get("request_headers")),
        status_code=_int(d.get("status_code")),
        response_headers=_slice_map(d.get("response_headers")),
        is_sse=bool(d.get("is_sse")),
    )


def vfs_event(d: Mapping[str, Any]) -> VFSHookEvent:
    return VFSHookEvent(op=_text(d.get("op")).lower(), path=_text(d.get("path")), size=_int(d.get("size")),
                        mode=_int(d.get("mode")), uid=_int(d.get("uid")), gid=_int(d.get("gid")))


def vfs_action_request(d: Mapping[str, Any]) -> VFSActionRequest:
    return VFSActionRequest(op=_text(d.get("op")), path=_text(d.get("path")), size=_int(d.get("size")),
                            mode=_int(d.get("mode")), uid=_int(d.get("uid")), gid=_int(d.get("gid")))


def vfs_mutate_request(d: Mapping[str, Any]) -> VFSMutateRequest:
    data = d.get("data")
    if isinstance(data, str):
        data = data.encode("utf-8")
    return VFSMutateRequest(path=_text(d.get("path")), size=_int(d.get("size")), mode=_int(d.get("mode")),
                            uid=_int(d.get("uid")), gid=_int(d.get("gid")), data=bytes(data or b""))


# --------------------------------------------------------------------------
# answers -> msgpack for mlk_hook_reply


def _plain(v: Any) -> Any:
    """A hook's return value as plain msgpack-able data: dataclasses become
    dicts of their fields that are not None.  What the answer may hold is the
    core's rule (mlk_hook_answer_check), not this function's."""
    if v is None or isinstance(v, (str, bytes, bool, int, float)):
        return v
    if isinstance(v, (bytearray, memoryview)):
        return bytes(v)
    if is_dataclass(v) and not isinstance(v, type):
        return {f.name: _plain(x) for f in fields(v) if (x := getattr(v, f.name)) is not None}
    if isinstance(v, Mapping):
        return {k if isinstance(k, str) else str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    raise TypeError(f"a hook answer cannot hold a {type(v).__name__}")


def check_answer(kind: int, mp: bytes) -> None:
    """Raise ValueError with the core's message when the answer breaks the
    hook-answer contract."""
    pm = ffi.new("char **")
    if lib.mlk_hook_answer_check(kind, mp, len(mp), pm) != 0:
        try:
            raise ValueError(ffi.string(pm[0]).decode("utf-8", "replace") if pm[0] else "invalid hook answer")
        finally:
            lib.mlk_free(pm[0])


def network_reply(result: Any) -> bytes:
    """NetworkHookResult | dict | None -> msgpack for mlk_hook_reply (checked
    by the core first, so a bad answer is reported here)."""
    if not (result is None or isinstance(result, (NetworkHookResult, Mapping))):
        # the official SDK's words; a dict is accepted too
        raise TypeError(f"invalid network hook result: expected NetworkHookResult or None (or a dict), "
                        f"got {type(result).__name__}")
    mp = packb(_plain(result))
    check_answer(KIND_NETWORK, mp)
    return mp


def vfs_reply(result: Any) -> bytes:
    """An action hook's decision or a mutate hook's bytes, as msgpack; the
    core checks it in mlk_hook_reply and fails the file call when it breaks
    the contract."""
    return packb(_plain(result))


# --------------------------------------------------------------------------
# the trampoline


def _onerror(exc_type: Any, exc_value: Any, tb: Any) -> None:
    sys.stderr.write(f"matchlock_native: internal error in a hook trampoline: {exc_type.__name__}: {exc_value}\n")


@ffi.def_extern(onerror=_onerror)
def _mlk_py_hook(ud: Any, c: Any, kind: int, call: Any, req: Any, n: int) -> None:
    entry: _HookEntry = ffi.from_handle(ud)
    client = _lookup(c)
    core = getattr(client, "_core", None)
    reply = _Reply(call, core.pending_calls if core is not None else _orphans) if call != ffi.NULL else None
    data = ffi.buffer(req, n)[:] if n else b""
    try:
        entry.kind = kind   # a VFS entry learns its kind from the core
        _run(entry, client, kind, reply, data)
    except BaseException as e:  # noqa: BLE001 - reported, never raised into C
        report(client, entry, e)
        if reply is not None:
            reply.fail(_describe(e))


def _run(entry: _HookEntry, client: Any, kind: int, reply: _Reply | None, data: bytes) -> None:
    d = unpackb(data) if data else {}
    if not isinstance(d, Mapping):
        d = {}
    convert: Callable[[Any], bytes] | None
    if kind == KIND_NETWORK:
        request = network_request(d)
        if entry.phase and request.phase and entry.phase != request.phase:
            if reply is not None:
                reply.fail("network hook phase mismatch")
            return
        args: tuple[Any, ...] = (request,)
        convert = network_reply
    elif kind == KIND_AFTER:
        args, convert = (vfs_event(d),), None
    elif kind == KIND_DANGEROUS:
        args, convert = (client, vfs_event(d)), None
    elif kind == KIND_ACTION:
        args, convert = (vfs_action_request(d),), vfs_reply
    elif kind == KIND_MUTATE:
        args, convert = (vfs_mutate_request(d),), vfs_reply
    else:
        raise ValueError(f"unknown hook kind {kind}")
    result = entry.fn(*args)
    if inspect.isawaitable(result):
        _schedule(entry, client, result, reply, convert)
        return
    _answer(entry, client, reply, convert, result)


def _answer(entry: _HookEntry, client: Any, reply: _Reply | None, convert: Callable[[Any], bytes] | None,
            result: Any) -> None:
    if reply is None or convert is None:
        if reply is not None:
            reply.reply(packb(None))
        return
    try:
        mp = convert(result)
    except BaseException as e:  # noqa: BLE001
        report(client, entry, e)
        reply.fail(_describe(e))
        return
    reply.reply(mp)


def _schedule(entry: _HookEntry, client: Any, awaitable: Any, reply: _Reply | None,
              convert: Callable[[Any], bytes] | None) -> None:
    """Run an async hook to completion on the client's loop and answer then."""
    loop: asyncio.AbstractEventLoop | None = None
    if client is not None:
        loop = client._hook_loop()
    if loop is None or loop.is_closed():
        loop = _dispatch.loop()
    tasks: set[Any] = client._core.hook_tasks if client is not None else set()

    async def runner() -> None:
        try:
            result = await awaitable
        except BaseException as e:  # noqa: BLE001 - includes cancellation at shutdown
            report(client, entry, e)
            if reply is not None:
                reply.fail(_describe(e))
            if not isinstance(e, Exception):
                raise
            return
        _answer(entry, client, reply, convert, result)

    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        task: Any = loop.create_task(runner())
    else:
        task = asyncio.run_coroutine_threadsafe(runner(), loop)
    tasks.add(task)
    task.add_done_callback(tasks.discard)
