"""Client (threads) and AsyncClient (asyncio) over one libmatchlock client.

Every method is written once, as a *plan*: a generator that starts C calls
and yields what it waits for (an `_Op` to complete, or a `_Blocking` C call
that has no async variant).  `Client` drives plans on the calling thread,
which waits in C (mlk_dispatch_wait, GIL released) and runs the client's
completions and callbacks itself (_dispatch.py: one thread dispatches a
client at a time; one shared thread for events and hooks when no call waits); `AsyncClient` drives the same plans as coroutines,
with mlk_dispatch() run by `loop.add_reader(mlk_client_fd(...))`.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import threading
import time
import warnings
import weakref
from typing import IO, Any, AsyncIterable, Callable, Generator, Iterable, Union

from . import _dispatch, _hooks
from ._core import (
    CStrArray,
    Writer,
    _Op,
    _Outcome,
    _Sink,
    as_bytes,
    call_blocking,
    cbytes,
    cstr,
    make_config,
    take_result,
    to_ms,
)
from ._native import ffi, lib
from .builder import Sandbox
from .errors import (
    ClosedError,
    MatchlockError,
    MatchlockTimeoutError,
    ValidationError,
    error_from_status,
)
from .types import (
    AllowListUpdate,
    Config,
    CreateOptions,
    ExecInteractiveResult,
    ExecPipeResult,
    ExecResult,
    ExecStreamResult,
    FileInfo,
    PortForwardBinding,
    VolumeInfo,
)

__all__ = ["Client", "AsyncClient"]

StdinSource = Union[bytes, bytearray, memoryview, str, IO[bytes], IO[str], Iterable[bytes], None]
AsyncStdinSource = Union[StdinSource, AsyncIterable[bytes], Any]
EventCallback = Callable[[dict[str, Any]], Any]

_STDIN_CHUNK = 64 * 1024



# This process's id, kept current across fork() (every call checks it, and
# os.getpid() is a system call).  The handler runs after os.fork() and after
# any C-level fork that lets the child run Python (PyOS_AfterFork_Child).
_pid = [os.getpid()]
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _pid.__setitem__(0, os.getpid()))

class _Blocking:
    """A plan step: run a blocking C call (no async variant in the ABI)."""

    __slots__ = ("fn", "args")

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self.fn = fn
        self.args = args


Plan = Generator[Any, Any, Any]


# ==========================================================================
# the C client and its dispatcher


class _Core:
    """Owns one mlk_client: start, cancel, dispatch, close, free."""

    def __init__(self) -> None:
        self.ptr: Any = ffi.NULL
        self._live: set[_Op] = set()
        self._ended: list[_Op] = []  # calls free() ended before the C client went (_end_pending)
        self._event_cb: EventCallback | None = None
        self.event_errors: list[BaseException] = []
        self._handle = ffi.new_handle(self)
        # the dispatch token (_dispatch.py): who may run mlk_dispatch now
        self.token = threading.Lock()
        self.token_owner: int | None = None
        self.waiting: list[_Op] = []  # calls whose threads sleep until the token is free
        self.watched = False  # dispatched by the shared thread when no call waits
        self.parked = False
        self.fd = -1
        self.closed = False
        self.freed = False
        # hooks: entries kept alive for the core's `ud`, unanswered reply
        # tokens, tasks of async hooks, and what hooks raised
        self.hook_entries: list[_hooks._HookEntry] = []
        self.pending_calls: set[_hooks._Reply] = set()
        self.hook_tasks: set[Any] = set()
        self.hook_errors: list[BaseException] = []
        self.addr = 0
        self.pid = 0  # the process that started the C client

    def inherited(self) -> bool:
        """True in a fork() child: the C client belongs to the parent."""
        return self.pid != 0 and self.pid != _pid[0]

    def start(self, cfg: Any) -> None:
        pc = ffi.new("mlk_client **")
        pres = ffi.new("mlk_result **")
        rc = lib.mlk_client_new(pc, cfg, pres)
        out = take_result(pres)
        if rc != 0:
            raise error_from_status(rc, out.message)
        self.ptr = pc[0]
        self.pid = _pid[0]
        lib.mlk_client_set_event_cb(self.ptr, lib._mlk_py_event, self._handle)

    # the dispatch token ---------------------------------------------------
    def take(self) -> bool:
        """Take the token without blocking; True when this thread now holds it."""
        if self.token.acquire(False):
            self.token_owner = threading.get_ident()
            return True
        return False

    def give(self) -> None:
        """Give the token back and wake whoever waits for it (freeing the C
        client first when free() left that to the token's holder)."""
        if self.freed and self.ptr != ffi.NULL and self.token_owner == threading.get_ident():
            self._free_c()
        self.token_owner = None
        self.token.release()
        # wake the first waiter whose call is not done: one whose call was
        # just completed is leaving, and waking it alone would leave the
        # others asleep for a whole wait step (a close behind 16 calls took
        # 250-500 ms)
        for op in list(self.waiting):
            if not op.done:
                _dispatch.wake(op)
                break
        if self.parked:
            self.parked = False
            _dispatch.unpark(self)

    def dispatch_now(self) -> None:
        """Run what is queued, on this thread, if no other thread dispatches."""
        if self.ptr == ffi.NULL or self.freed:
            return
        if self.token_owner == threading.get_ident():
            lib.mlk_dispatch(self.ptr, 0)
        elif self.take():
            try:
                lib.mlk_dispatch(self.ptr, 0)
            finally:
                self.give()

    # ----------------------------------------------------------------------------
    def _cancel_op(self, op_id: int) -> None:
        if op_id and self.ptr != ffi.NULL and not self.freed:
            lib.mlk_cancel(self.ptr, op_id)

    def _event_error(self, e: BaseException) -> None:
        self.event_errors.append(e)
        warnings.warn(f"matchlock_native: the event callback raised {type(e).__name__}: {e}", RuntimeWarning,
                      stacklevel=1)

    def free(self) -> None:
        if self.freed:
            return
        self.freed = True
        _dispatch.unwatch(self)
        if self.addr:
            _hooks.unregister(self.addr)
            self.addr = 0
        if self.ptr != ffi.NULL:
            if self.token_owner == threading.get_ident():
                self._free_c()  # inside a callback: the core defers the free
            elif self.take():  # nobody dispatches: free it now
                try:
                    self._free_c()
                finally:
                    self.give()
            else:
                # Another thread dispatches for a call in flight (a daemon
                # thread's exec at interpreter exit, a call racing a close):
                # nothing waits for it.  Every pending call ends now with a
                # closed error, and the thread that holds the token frees
                # the C client when it gives the token back (give()); at
                # interpreter exit it never does, and the process's exit
                # releases what the client held.
                self._end_pending()
        # hooks still running (async) answer into the void; answer for them
        _hooks.fail_pending(self.pending_calls, "the client was closed before the hook answered")

    def _free_c(self) -> None:
        ptr, self.ptr = self.ptr, ffi.NULL
        lib.mlk_client_free(ptr)
        self._ended.clear()  # no callback of theirs can run any more

    def _end_pending(self) -> None:
        """Complete every pending call with a closed error now; their handles
        stay alive (in _ended) while the C client may still call back."""
        ops = list(self._live)
        self._ended.extend(ops)
        for op in ops:
            out = _Outcome.failed(lib.MLK_ECLOSED, "client closed: the client was freed while this call was in "
                                  "flight")
            if op.afut is None:
                op.complete(out)
                continue
            lp = op.afut.get_loop()  # an AsyncClient's call completes on its loop
            if not lp.is_closed():
                try:
                    lp.call_soon_threadsafe(op.complete, out)
                except RuntimeError:  # the loop closed meanwhile
                    pass


def _start_failed(rc: int, what: str) -> MatchlockError:
    msg = ffi.string(lib.mlk_strerror(rc)).decode()
    if rc == lib.MLK_ECLOSED:
        msg = f"{what}: client closed: this call needs an open client (create a new one)"
    else:
        msg = f"{what}: {msg}"
    return error_from_status(rc, msg)


def _check_exec_mode_args(rows: int, cols: int) -> None:
    for v, n in ((rows, "rows"), (cols, "cols")):
        if not isinstance(v, int) or isinstance(v, bool) or v < 0 or v > 65535:
            raise ValidationError(f"{n} must be an integer in 0..65535, got {v!r}")


# ==========================================================================
# shared method bodies


class _ClientBase:
    """What Client and AsyncClient share: configuration and the plans."""

    _core: _Core
    _config: Config

    def __init__(self, config: Config | None = None) -> None:
        if config is None:
            config = Config(binary_path=os.environ.get("MATCHLOCK_BIN", "matchlock"))
        self._config = config
        self._core = _Core()
        self._vm_id: str | None = None
        self._tail = ""  # stderr_tail() once the C client is freed
        self._state = "new"
        self._state_lock = threading.Lock()
        self._finalizer = weakref.finalize(self, _Core.free, self._core)

    # ---------------------------------------------------------------- info
    @property
    def vm_id(self) -> str | None:
        """The created VM's id (kept after close, for remove())."""
        return self._vm_id

    @property
    def config(self) -> Config:
        """The Config this client was made with."""
        return self._config

    def stderr_tail(self) -> str:
        """The last few KiB the matchlock process wrote to stderr (beyond upstream)."""
        if self._core.ptr == ffi.NULL or self._core.freed:
            return self._tail
        p = lib.mlk_client_stderr_tail(self._core.ptr)
        if p == ffi.NULL:
            return ""
        try:
            tail: str = ffi.string(p).decode("utf-8", "replace")
            return tail
        finally:
            lib.mlk_free(p)

    @property
    def hook_errors(self) -> list[BaseException]:
        """Exceptions raised by this client's SDK-local hooks, oldest first
        (beyond upstream; each is also logged on "matchlock_native.hooks")."""
        return self._core.hook_errors

    def _hook_loop(self) -> asyncio.AbstractEventLoop | None:
        """Where async hook functions run."""
        raise NotImplementedError

    def _background(self) -> None:
        """Events or hooks may arrive while no call waits (see Client)."""

    def on_event(self, callback: EventCallback | None) -> None:
        """Receive every server `event` notification as a dict (lossy; beyond
        upstream).  Runs on a thread waiting in a call on this client, or the shared
        "matchlock-dispatch" thread when none waits (Client), or the loop (AsyncClient)."""
        self._core._event_cb = callback
        if callback is not None:
            self._background()

    # ---------------------------------------------------------------- plumbing
    def _new_op(self, sinks: tuple[_Sink | None, _Sink | None] | None = None,
                on_ready: Callable[[], Any] | None = None) -> _Op:
        raise NotImplementedError

    def _ptr(self) -> Any:
        if self._state == "closed":
            raise ClosedError("client closed: this call needs an open client (create a new one)")
        if self._state == "new":
            raise ClosedError("client not started: use `with Client() as c:` or call start() first")
        return self._core.ptr

    def _call_plan(self, name: str, what: str, *args: Any) -> Plan:
        """Run `mlk_<name>` through its *_async form when the core has one
        (interruptible, no thread), else the blocking form; returns the _Outcome."""
        afn = getattr(lib, f"mlk_{name}_async", None)
        if afn is None:
            out: _Outcome = yield _Blocking(call_blocking, getattr(lib, f"mlk_{name}"), *args)
            return out
        op = self._new_op()
        pop = ffi.new("uint64_t *")
        rc = afn(*args, lib.mlk_py_done, op.handle, pop)
        if rc != 0:
            self._core._live.discard(op)
            raise _start_failed(rc, what)
        op.op_id = pop[0]
        yield op
        if op.exc is not None:
            op.result()
        assert op.outcome is not None
        return op.outcome

    # ---------------------------------------------------------------- lifecycle plans
    def _create_plan(self, target: CreateOptions | Sandbox | None, launch: bool | None,
                     timeout: float | None) -> Plan:
        if target is None:
            target = CreateOptions()
        if isinstance(target, CreateOptions):
            sb = Sandbox.from_options(target)
            launch_ep = target.launch_entrypoint if launch is None else launch
        elif isinstance(target, Sandbox):
            sb = target
            launch_ep = bool(launch)
        else:
            raise TypeError(f"create() takes CreateOptions or a Sandbox, not {type(target).__name__}")
        ms = to_ms(timeout)
        ptr = yield from self._ensure_started_plan()
        # the core keeps the hooks' handles as `ud`: keep their objects alive
        self._core.hook_entries.extend(e for e in sb._hook_entries if e not in self._core.hook_entries)
        if self._core.hook_entries:
            self._background()
        out: _Outcome = yield from self._call_plan("launch" if launch_ep else "create", "create", ptr, sb._sb, ms)
        # The VM may exist although the call failed (the builder's port
        # forwards failed after create): keep its id so close()/remove() clean up.
        core_id = lib.mlk_client_vm_id(ptr)
        if core_id != ffi.NULL:
            self._vm_id = ffi.string(core_id).decode("utf-8", "replace")
        out.check()
        vm_id: str = out.data.decode("utf-8", "replace")
        self._vm_id = vm_id
        return vm_id

    def _refuse_if_inherited(self) -> None:
        # A fork() child shares nothing with the parent's session: the core
        # refuses every call with MLK_ECLOSED; say why before taking locks a
        # thread of the parent may have held at fork time.
        if self._core.inherited():
            raise ClosedError("client closed: this client was inherited across fork() and belongs to the "
                              "parent process (create a new one in this process)")

    def _ensure_started_plan(self) -> Plan:
        self._refuse_if_inherited()
        if self._state == "new":
            yield _Blocking(self._start_sync)
        return self._ptr()

    def _start_sync(self) -> None:
        with self._state_lock:
            if self._state != "new":
                return
            cfg = make_config(self._config)
            self._core.start(cfg)
            self._core.addr = _hooks.register(self._core.ptr, self)
            self._attach()
            self._state = "open"

    def _attach(self) -> None:
        raise NotImplementedError

    def _detach(self) -> None:
        raise NotImplementedError

    def _close_plan(self, timeout: float) -> Plan:
        """Close through mlk_close_async (interruptible; the loop keeps running)."""
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout < 0:
            raise ValidationError(f"close timeout must be a number of seconds >= 0, got {timeout!r}")
        self._refuse_if_inherited()
        with self._state_lock:
            if self._state != "open":
                self._state = "closed"
                return None
            self._state = "closing"
        try:
            if hasattr(lib, "mlk_close_async"):
                out: _Outcome = yield from self._call_plan("close", "close", self._core.ptr, float(timeout))
            else:
                out = yield _Blocking(call_blocking, lib.mlk_close, self._core.ptr, float(timeout))
        finally:
            self._state = "closed"
            self._detach()
            self._release_when_done()
        out.check()
        return None

    def _release_when_done(self) -> None:
        """Once closed, free the C client at once (its notification fd goes
        now, not at garbage collection; the core released the process's
        pipes when the close ended).  remove() then runs `matchlock rm` with
        the Config and the kept vm id (mlk_remove_vm); stderr_tail() keeps
        the last words."""
        if self._state == "closed":
            self._tail = self.stderr_tail()
            self._free_core()

    def _free_core(self) -> None:
        self._core.free()

    def _remove_plan(self) -> Plan:
        if self._vm_id is None:
            return None
        if self._state == "closed":  # the C client is (being) freed: by config and id
            out: _Outcome = yield _Blocking(call_blocking, lib.mlk_remove_vm, make_config(self._config),
                                            cstr(self._vm_id, "vm_id"))
        else:
            out = yield from self._call_plan("remove", "remove", self._core.ptr)
        out.check()
        return None

    # ---------------------------------------------------------------- exec plans
    def _exec_opts(self, mode: int, working_dir: str, user: str, timeout: float | None) -> Any:
        if mode == lib.MLK_EXEC_BUFFERED and not working_dir and not user and timeout is None:
            return ffi.NULL  # the core's defaults: no options object per call
        o = lib.mlk_exec_opts_new()
        if o == ffi.NULL:
            raise MemoryError("mlk_exec_opts_new failed")
        o = ffi.gc(o, lib.mlk_exec_opts_free)
        lib.mlk_exec_opts_set_mode(o, mode)
        if working_dir:
            lib.mlk_exec_opts_set_working_dir(o, cstr(working_dir, "working_dir"))
        if user:
            lib.mlk_exec_opts_set_user(o, cstr(user, "user"))
        ms = to_ms(timeout)
        if ms:
            lib.mlk_exec_opts_set_timeout_ms(o, ms)
        return o

    def _start_exec(self, ptr: Any, command: str, opts: Any, op: _Op, what: str) -> None:
        pop = ffi.new("uint64_t *")
        rc = lib.mlk_exec_async(ptr, cbytes(command, "command"), opts, lib.mlk_py_done, op.handle, pop)
        if rc != 0:
            self._core._live.discard(op)
            raise _start_failed(rc, what)
        op.op_id = pop[0]

    def _exec_plan(self, command: str, working_dir: str, timeout: float | None, user: str) -> Plan:
        ptr = yield from self._ensure_started_plan()
        opts = self._exec_opts(lib.MLK_EXEC_BUFFERED, working_dir, user, timeout)
        op = self._new_op()
        self._start_exec(ptr, command, opts, op, "exec")
        yield op
        out = op.result()
        return ExecResult(
            exit_code=out.exit_code,
            stdout=out.stdout.decode("utf-8", "replace"),
            stderr=out.stderr.decode("utf-8", "replace"),
            duration_ms=out.duration_ms,
            stdout_bytes=out.stdout,
            stderr_bytes=out.stderr,
        )

    def _stream_plan(self, command: str, stdout: Writer, stderr: Writer, working_dir: str,
                     timeout: float | None, user: str) -> Plan:
        ptr = yield from self._ensure_started_plan()
        opts = self._exec_opts(lib.MLK_EXEC_STREAM, working_dir, user, timeout)
        sinks = (_Sink(stdout) if stdout is not None else None, _Sink(stderr) if stderr is not None else None)
        op = self._new_op(sinks)
        if sinks[0] or sinks[1]:
            lib.mlk_exec_opts_set_callbacks(opts, lib._mlk_py_output, ffi.NULL, op.handle)
        self._start_exec(ptr, command, opts, op, "exec_stream")
        yield op
        out = op.result()
        return ExecStreamResult(exit_code=out.exit_code, duration_ms=out.duration_ms)

    def _pipe_plan(self, mode: int, command: str, stdin: Any, stdout: Writer, stderr: Writer,
                   working_dir: str, timeout: float | None, user: str, rows: int, cols: int,
                   resize: Iterable[tuple[int, int]] | None) -> Plan:
        what = "exec_pipe" if mode == lib.MLK_EXEC_PIPE else "exec_interactive"
        ptr = yield from self._ensure_started_plan()
        opts = self._exec_opts(mode, working_dir, user, timeout)
        if mode == lib.MLK_EXEC_TTY:
            _check_exec_mode_args(rows, cols)
            lib.mlk_exec_opts_set_tty_size(opts, rows, cols)
        sinks = (_Sink(stdout) if stdout is not None else None, _Sink(stderr) if stderr is not None else None)
        op = self._new_op(sinks)
        lib.mlk_exec_opts_set_callbacks(opts, lib._mlk_py_output, ffi.NULL, op.handle)
        pump = None
        if isinstance(stdin, (bytes, bytearray, memoryview, str)):
            data = as_bytes(stdin, "stdin")
            lib.mlk_exec_opts_set_stdin(opts, ffi.from_buffer(data), len(data))
        elif stdin is not None:
            lib.mlk_exec_opts_set_interactive_stdin(opts, 1)
            pump = stdin
        self._start_exec(ptr, command, opts, op, what)
        if pump is not None:
            self._start_stdin_pump(op, pump)
        if resize is not None:
            self._start_resize_pump(op, resize)
        yield op
        out = op.result()
        cls = ExecPipeResult if mode == lib.MLK_EXEC_PIPE else ExecInteractiveResult
        return cls(exit_code=out.exit_code, duration_ms=out.duration_ms)

    def _start_stdin_pump(self, op: _Op, source: Any) -> None:
        raise NotImplementedError

    def _start_resize_pump(self, op: _Op, sizes: Iterable[tuple[int, int]]) -> None:
        raise NotImplementedError

    # ---------------------------------------------------------------- file plans
    def _write_plan(self, path: str, content: bytes | str, mode: int, timeout: float | None) -> Plan:
        ptr = yield from self._ensure_started_plan()
        data = as_bytes(content, "content")
        if not isinstance(mode, int) or mode < 0 or mode > 0o7777:
            raise ValidationError(f"mode must be a permission number such as 0o644, got {mode!r}")
        op = self._new_op()
        pop = ffi.new("uint64_t *")
        rc = lib.mlk_write_file_async(ptr, cstr(path, "path"), ffi.from_buffer(data), len(data), mode,
                                      to_ms(timeout), lib.mlk_py_done, op.handle, pop)
        if rc != 0:
            self._core._live.discard(op)
            raise _start_failed(rc, f"write_file {path!r}")
        op.op_id = pop[0]
        yield op
        op.result()
        return None

    def _read_plan(self, path: str, timeout: float | None) -> Plan:
        ptr = yield from self._ensure_started_plan()
        op = self._new_op()
        pop = ffi.new("uint64_t *")
        rc = lib.mlk_read_file_async(ptr, cstr(path, "path"), to_ms(timeout), lib.mlk_py_done, op.handle, pop)
        if rc != 0:
            self._core._live.discard(op)
            raise _start_failed(rc, f"read_file {path!r}")
        op.op_id = pop[0]
        yield op
        return op.result().data

    def _list_plan(self, path: str, timeout: float | None) -> Plan:
        ptr = yield from self._ensure_started_plan()
        op = self._new_op()
        pop = ffi.new("uint64_t *")
        rc = lib.mlk_list_files_async(ptr, cstr(path, "path"), to_ms(timeout), lib.mlk_py_done, op.handle, pop)
        if rc != 0:
            self._core._live.discard(op)
            raise _start_failed(rc, f"list_files {path!r}")
        op.op_id = pop[0]
        yield op
        entries = op.result().value() or []
        return [
            FileInfo(
                name=str(e.get("name", "")),
                size=int(e.get("size") or 0),
                mode=int(e.get("mode") or 0),
                is_dir=bool(e.get("is_dir")),
                mod_time=str(e.get("mod_time") or ""),
            )
            for e in entries
        ]

    # ---------------------------------------------------------------- logs
    def _log_plan(self, timeout: float | None) -> Plan:
        ptr = yield from self._ensure_started_plan()
        out: _Outcome = yield from self._call_plan("log", "log", ptr, to_ms(timeout))
        return out.check().data.decode("utf-8", "replace")

    def _log_stream_plan(self, stdout: Writer, timeout: float | None) -> Plan:
        ptr = yield from self._ensure_started_plan()
        ms = to_ms(timeout)
        op = self._new_op((_Sink(stdout) if stdout is not None else None, None))
        pop = ffi.new("uint64_t *")
        rc = lib.mlk_log_follow_async(ptr, lib._mlk_py_output, lib.mlk_py_done, op.handle, pop)
        if rc != 0:
            self._core._live.discard(op)
            raise _start_failed(rc, "log_stream")
        op.op_id = pop[0]
        if ms:
            op.deadline = time.monotonic() + ms / 1000.0
        yield op
        if op.timed_out and op.outcome is not None and op.outcome.status == lib.MLK_ECANCELED:
            if op.exc is not None:
                op.result()  # a stored callback error comes first
            raise MatchlockTimeoutError(f"log_stream: deadline of {ms} ms exceeded (the stream was cancelled)")
        op.result()
        return None

    # ---------------------------------------------------------------- network
    def _port_forward_plan(self, addresses: list[str] | None, specs: tuple[str, ...],
                           timeout: float | None) -> Plan:
        ptr = yield from self._ensure_started_plan()
        sarr = CStrArray(specs, "port-forward spec")
        aarr = CStrArray(addresses or [], "bind address")
        out: _Outcome = yield from self._call_plan("port_forward", "port_forward", ptr, sarr.ptr, sarr.n, aarr.ptr,
                                                   aarr.n, to_ms(timeout))
        out.check()
        return [
            PortForwardBinding(address=str(b.get("address", "")), local_port=int(b.get("local_port") or 0),
                               remote_port=int(b.get("remote_port") or 0))
            for b in (out.value() or [])
        ]

    def _allow_plan(self, add: bool, hosts: tuple[str, ...], timeout: float | None) -> Plan:
        ptr = yield from self._ensure_started_plan()
        arr = CStrArray(hosts, "host")
        name = "allow_list_add" if add else "allow_list_delete"
        out: _Outcome = yield from self._call_plan(name, name, ptr, arr.ptr, arr.n, to_ms(timeout))
        v = out.check().value() or {}
        return AllowListUpdate(
            added=list(v.get("added") or []),
            removed=list(v.get("removed") or []),
            allowed_hosts=list(v.get("allowed_hosts") or []),
        )

    # ---------------------------------------------------------------- volumes
    def _cli_plan(self, name: str, blocking_args: tuple[Any, ...], async_args: tuple[Any, ...]) -> Plan:
        """A CLI side-channel call: the core's *_async form on an open client
        (interruptible; completion through the dispatcher), else the blocking
        form with this client's configuration."""
        if self._state == "open" and hasattr(lib, f"mlk_{name}_async"):
            out: _Outcome = yield from self._call_plan(name, name, self._core.ptr, *async_args)
        else:
            out = yield _Blocking(call_blocking, getattr(lib, f"mlk_{name}"), make_config(self._config),
                                  *blocking_args)
        return out

    def _volume_create_plan(self, name: str, size_mb: int) -> Plan:
        name = (name or "").strip()  # as the official SDK; an empty name is the core's to refuse
        if isinstance(size_mb, bool) or not isinstance(size_mb, int):
            raise TypeError(f"volume size: expected an int (MiB), got {type(size_mb).__name__}")
        # a size <= 0 is the core's to refuse, with the seed's and the official words
        c_name = cstr(name, "volume name")
        out: _Outcome = yield from self._cli_plan("volume_create", (c_name, size_mb), (c_name, size_mb))
        v = out.check().value() or {}
        return _volume(v, name)

    def _volume_list_plan(self) -> Plan:
        out: _Outcome = yield from self._cli_plan("volume_list", (), ())
        v = out.check().value() or []
        if not isinstance(v, list):
            raise MatchlockError("volume ls printed something that is not a JSON array")
        return [_volume(e, "") for e in v]

    def _volume_remove_plan(self, name: str) -> Plan:
        name = (name or "").strip()  # as the official SDK; an empty name is the core's to refuse
        c_name = cstr(name, "volume name")
        out: _Outcome = yield from self._cli_plan("volume_remove", (c_name,), (c_name,))
        out.check()
        return None


def _volume(v: Any, default_name: str) -> VolumeInfo:
    if not isinstance(v, dict):
        raise MatchlockError(f"unexpected volume entry from the matchlock CLI: {v!r}")
    size = v.get("size", "")
    return VolumeInfo(name=str(v.get("name") or default_name), size=str(size), path=str(v.get("path") or ""))


# ==========================================================================
# Client: blocking methods, safe from many threads


class Client(_ClientBase):
    """Client for Matchlock sandboxes (same surface as the official package).

    All public methods are thread-safe; blocking calls release the GIL and
    can be interrupted with Ctrl-C (the call is then cancelled).
    """

    def __enter__(self) -> "Client":
        self.start()
        return self

    def __exit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        self.close()

    def start(self) -> None:
        """Start the matchlock RPC process (idempotent)."""
        if self._state == "new":
            self._start_sync()

    def _attach(self) -> None:
        # no thread of its own: waiting calls dispatch (_dispatch.py)
        if self._core._event_cb is not None:
            self._background()

    def _detach(self) -> None:
        _dispatch.unwatch(self._core)
        self._core.dispatch_now()  # completions queued while closing

    def _background(self) -> None:
        # events or hooks can arrive while no call waits: the shared thread
        # dispatches this client then
        if self._core.ptr != ffi.NULL and self._state != "closed":
            _dispatch.watch(self._core)

    def _new_op(self, sinks: tuple[_Sink | None, _Sink | None] | None = None,
                on_ready: Callable[[], Any] | None = None) -> _Op:
        return _Op(self._core, sinks, on_ready)

    def _hook_loop(self) -> asyncio.AbstractEventLoop | None:
        return _dispatch.loop()

    # the driver ---------------------------------------------------------------
    def _run(self, plan: Plan) -> Any:
        send: Any = None
        while True:
            try:
                step = plan.send(send)
            except StopIteration as e:
                return e.value
            if isinstance(step, _Blocking):
                send = step.fn(*step.args)
            else:
                self._wait(step)
                send = step

    def _wait(self, op: _Op) -> None:
        """Wait for op on this thread: dispatch the client here (in C, GIL
        released) while holding its token, else sleep until the holder
        completes op or gives the token back."""
        core = self._core
        if core.token_owner == threading.get_ident():
            # a callback running on this thread made a blocking call
            self._dispatch_until(op)
            return
        queued = False
        try:
            while not op.done:
                if core.take():
                    try:
                        self._dispatch_until(op)
                    finally:
                        core.give()
                elif not queued:
                    op.arm()
                    core.waiting.append(op)
                    queued = True  # then look again: the holder may have just left
                else:
                    op.sleep(self._step(op))
                    self._deadline_check(op)
        except BaseException:
            if not op.done:
                core._cancel_op(op.op_id)
            raise
        finally:
            if queued:
                core.waiting.remove(op)

    def _dispatch_until(self, op: _Op) -> None:
        core = self._core
        wait = lib.mlk_dispatch_wait
        while not op.done:
            if core.ptr == ffi.NULL:
                op.complete(_Outcome.failed(lib.MLK_ECLOSED, "client closed: this call needs an open client "
                                            "(create a new one)"))
                return
            wait(core.ptr, 250 if op.deadline is None else int(self._step(op) * 1000) + 1)
            self._deadline_check(op)

    @staticmethod
    def _step(op: _Op) -> float:
        return 0.25 if op.deadline is None else max(0.0, min(0.25, op.deadline - time.monotonic()))

    def _deadline_check(self, op: _Op) -> None:
        if op.deadline is not None and not op.timed_out and time.monotonic() >= op.deadline:
            op.timed_out = True
            self._core._cancel_op(op.op_id)

    def _start_stdin_pump(self, op: _Op, source: Any) -> None:
        t = threading.Thread(target=_pump_stdin_thread, args=(self._core, op, source),
                             name="matchlock-stdin", daemon=True)
        t.start()

    def _start_resize_pump(self, op: _Op, sizes: Iterable[tuple[int, int]]) -> None:
        t = threading.Thread(target=_pump_resize_thread, args=(self._core, op, sizes),
                             name="matchlock-resize", daemon=True)
        t.start()

    # lifecycle ---------------------------------------------------------------------
    def create(self, opts: CreateOptions | Sandbox | None = None, timeout: float | None = None) -> str:
        """Create the sandbox from CreateOptions (or a Sandbox); returns the VM id."""
        return self._run(self._create_plan(opts, None, timeout))  # type: ignore[no-any-return]

    def launch(self, sandbox: Sandbox, timeout: float | None = None) -> str:
        """Create the sandbox and start its image's entrypoint; returns the VM id."""
        return self._run(self._create_plan(sandbox, True, timeout))  # type: ignore[no-any-return]

    def close(self, timeout: float = 0) -> None:
        """Close the sandbox: `close` RPC, then wait for the process (killed
        when `timeout` seconds pass; 0 means a short grace period).  Idempotent;
        interruptible (Ctrl-C leaves the process to be reaped when the client is freed)."""
        self._run(self._close_plan(timeout))

    def remove(self) -> None:
        """Remove the stopped VM's state (`matchlock rm <id>`); call after close()."""
        self._run(self._remove_plan())

    # exec ------------------------------------------------------------------------
    def exec(self, command: str, working_dir: str = "", timeout: float | None = None,
             user: str = "") -> ExecResult:
        """Run a shell command line and wait; output is buffered."""
        return self._run(self._exec_plan(command, working_dir, timeout, user))  # type: ignore[no-any-return]

    def exec_stream(self, command: str, stdout: Writer = None, stderr: Writer = None, working_dir: str = "",
                    timeout: float | None = None, *, user: str = "") -> ExecStreamResult:
        """Run a command, delivering stdout/stderr to writers or callables as they arrive."""
        return self._run(  # type: ignore[no-any-return]
            self._stream_plan(command, stdout, stderr, working_dir, timeout, user))

    def exec_pipe(self, command: str, stdin: StdinSource = None, stdout: Writer = None, stderr: Writer = None,
                  working_dir: str = "", timeout: float | None = None, user: str = "") -> ExecPipeResult:
        """Run a command with stdin (bytes/str given up front, or a readable
        stream / iterable of bytes forwarded until EOF) and streamed output."""
        return self._run(self._pipe_plan(lib.MLK_EXEC_PIPE, command, stdin, stdout, stderr,  # type: ignore
                                         working_dir, timeout, user, 0, 0, None))

    def exec_interactive(self, command: str, stdin: StdinSource = None, stdout: Writer = None,
                         working_dir: str = "", rows: int = 24, cols: int = 80,
                         resize: Iterable[tuple[int, int]] | None = None, timeout: float | None = None,
                         user: str = "") -> ExecInteractiveResult:
        """Run a command on a TTY (stderr is merged into stdout)."""
        return self._run(self._pipe_plan(lib.MLK_EXEC_TTY, command, stdin, stdout, None,  # type: ignore
                                         working_dir, timeout, user, rows, cols, resize))

    # files -------------------------------------------------------------------------
    def write_file(self, path: str, content: bytes | str, mode: int = 0o644, timeout: float | None = None) -> None:
        """Write `content` (bytes, or str as UTF-8) to `path` in the sandbox with `mode`."""
        self._run(self._write_plan(path, content, mode, timeout))

    def read_file(self, path: str, timeout: float | None = None) -> bytes:
        """Read the file at `path` in the sandbox; returns its bytes."""
        return self._run(self._read_plan(path, timeout))  # type: ignore[no-any-return]

    def list_files(self, path: str, timeout: float | None = None) -> list[FileInfo]:
        """List the directory `path` in the sandbox (FileInfo: name, size, mode, is_dir)."""
        return self._run(self._list_plan(path, timeout))  # type: ignore[no-any-return]

    # logs ------------------------------------------------------------------------------
    def log(self, timeout: float | None = None) -> str:
        """The VM log so far."""
        return self._run(self._log_plan(timeout))  # type: ignore[no-any-return]

    def log_stream(self, stdout: Writer = None, timeout: float | None = None) -> None:
        """Follow the VM log into `stdout` until the VM ends (or `timeout` passes:
        then MatchlockTimeoutError, a TimeoutError)."""
        self._run(self._log_stream_plan(stdout, timeout))

    # network ------------------------------------------------------------------------------
    def port_forward(self, *specs: str, timeout: float | None = None) -> list[PortForwardBinding]:
        """Forward `[LOCAL_PORT:]REMOTE_PORT` specs on 127.0.0.1 (replaces earlier forwards)."""
        return self._run(self._port_forward_plan(None, specs, timeout))  # type: ignore[no-any-return]

    def port_forward_with_addresses(self, addresses: list[str] | None, *specs: str,
                                    timeout: float | None = None) -> list[PortForwardBinding]:
        """As port_forward(), binding on the given host addresses (default 127.0.0.1)."""
        return self._run(self._port_forward_plan(addresses, specs, timeout))  # type: ignore[no-any-return]

    def allow_list_add(self, *hosts: str, timeout: float | None = None) -> AllowListUpdate:
        """Add hosts to the running sandbox's allow-list (needs network interception)."""
        return self._run(self._allow_plan(True, hosts, timeout))  # type: ignore[no-any-return]

    def allow_list_delete(self, *hosts: str, timeout: float | None = None) -> AllowListUpdate:
        """Remove hosts from the network allow-list (items are split on commas and trimmed)."""
        return self._run(self._allow_plan(False, hosts, timeout))  # type: ignore[no-any-return]

    # volumes --------------------------------------------------------------------------------
    def volume_create(self, name: str, size_mb: int = 10240) -> VolumeInfo:
        """Create a named raw ext4 volume of size_mb MiB (`matchlock volume create`)."""
        return self._run(self._volume_create_plan(name, size_mb))  # type: ignore[no-any-return]

    def volume_list(self) -> list[VolumeInfo]:
        """List the named volumes (`matchlock volume ls`)."""
        return self._run(self._volume_list_plan())  # type: ignore[no-any-return]

    def volume_remove(self, name: str) -> None:
        """Delete a named volume (`matchlock volume rm`)."""
        self._run(self._volume_remove_plan(name))


def _stdin_chunks(source: Any) -> Iterable[bytes]:
    read = getattr(source, "read", None)
    if callable(read):
        while True:
            chunk = read(_STDIN_CHUNK)
            if chunk is None:
                time.sleep(0.01)
                continue
            if not chunk:
                return
            yield as_bytes(chunk, "stdin chunk")
    else:
        for chunk in source:
            yield as_bytes(chunk, "stdin chunk")


def _stdin_write(core: _Core, op: _Op, b: bytes) -> bool:
    """Queue b for op's stdin; False when the call is over."""
    buf = ffi.from_buffer(b)
    while not op.done:
        rc = lib.mlk_stdin_write(core.ptr, op.op_id, buf, len(b))
        if rc == 0:
            return True
        if rc != lib.MLK_EAGAIN:
            return False
        time.sleep(0.005)
    return False


def _pump_stdin_thread(core: _Core, op: _Op, source: Any) -> None:
    try:
        for chunk in _stdin_chunks(source):
            if op.done or not _stdin_write(core, op, chunk):
                return
    except BaseException as e:  # noqa: BLE001 - stored, re-raised by the caller
        op.fail_user(e)
        return
    if not op.done:
        lib.mlk_stdin_close(core.ptr, op.op_id)


def _pump_resize_thread(core: _Core, op: _Op, sizes: Iterable[tuple[int, int]]) -> None:
    try:
        for size in sizes:
            if op.done:
                return
            rows, cols = int(size[0]), int(size[1])
            lib.mlk_tty_resize(core.ptr, op.op_id, rows, cols)
    except BaseException as e:  # noqa: BLE001
        op.fail_user(e)


# ==========================================================================
# AsyncClient: the same methods as coroutines on the running loop


class AsyncClient(_ClientBase):
    """asyncio client: callbacks are dispatched by the running loop through
    `loop.add_reader(mlk_client_fd(...))`; no thread per call (start runs
    in the loop's default executor, as do the volume calls before start or
    after close, and calls whose *_async form an older core lacks).  Async
    hook functions run as tasks on this loop."""

    _loop: asyncio.AbstractEventLoop | None = None

    async def __aenter__(self) -> "AsyncClient":
        await self.start()
        return self

    async def __aexit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        await self.close()

    async def start(self) -> None:
        """Start the matchlock process now (calls do it on first use anyway)."""
        if self._state == "new":
            self._loop = asyncio.get_running_loop()
            await self._loop.run_in_executor(None, self._start_sync)

    def _attach(self) -> None:
        assert self._loop is not None
        fd = lib.mlk_client_fd(self._core.ptr)
        ptr = self._core.ptr
        self._loop.call_soon_threadsafe(self._loop.add_reader, fd, lib.mlk_dispatch, ptr, 0)

    def _free_core(self) -> None:
        # after _detach's finish(), which may be queued on the loop
        loop = self._loop
        if loop is None or loop.is_closed() or (_in_loop() and asyncio.get_running_loop() is loop):
            self._core.free()
        else:
            loop.call_soon_threadsafe(self._core.free)

    def _detach(self) -> None:
        loop = self._loop
        if loop is None or self._core.ptr == ffi.NULL:
            return
        fd = lib.mlk_client_fd(self._core.ptr)
        ptr = self._core.ptr

        def finish() -> None:
            loop.remove_reader(fd)
            lib.mlk_dispatch(ptr, 0)

        try:
            if loop.is_closed():
                return
            running = asyncio.get_running_loop() if _in_loop() else None
            if running is loop:
                finish()
            else:
                loop.call_soon_threadsafe(finish)
        except RuntimeError:
            pass

    def _new_op(self, sinks: tuple[_Sink | None, _Sink | None] | None = None,
                on_ready: Callable[[], Any] | None = None) -> _Op:
        loop = self._loop or asyncio.get_running_loop()
        return _Op(self._core, sinks, on_ready, afut=loop.create_future())

    def _hook_loop(self) -> asyncio.AbstractEventLoop | None:
        return self._loop

    async def _run(self, plan: Plan) -> Any:
        send: Any = None
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise MatchlockError("this AsyncClient belongs to another event loop; use one client per loop")
        while True:
            try:
                step = plan.send(send)
            except StopIteration as e:
                return e.value
            if isinstance(step, _Blocking):
                send = await loop.run_in_executor(None, step.fn, *step.args)
            else:
                await self._wait(step)
                send = step

    async def _wait(self, op: _Op) -> None:
        fut = op.afut
        try:
            if op.deadline is None:
                await asyncio.shield(fut)
            else:
                remaining = op.deadline - time.monotonic()
                try:
                    await asyncio.wait_for(asyncio.shield(fut), max(0.0, remaining))
                except asyncio.TimeoutError:
                    op.timed_out = True
                    self._core._cancel_op(op.op_id)
                    await asyncio.shield(fut)
        except BaseException:
            if not op.done:
                self._core._cancel_op(op.op_id)
            raise

    def _start_stdin_pump(self, op: _Op, source: Any) -> None:
        assert self._loop is not None
        self._loop.create_task(_pump_stdin_async(self._core, op, source))

    def _start_resize_pump(self, op: _Op, sizes: Iterable[tuple[int, int]]) -> None:
        try:
            for size in sizes:
                lib.mlk_tty_resize(self._core.ptr, op.op_id, int(size[0]), int(size[1]))
        except BaseException as e:  # noqa: BLE001
            op.fail_user(e)

    # lifecycle -------------------------------------------------------------------------
    async def create(self, opts: CreateOptions | Sandbox | None = None, timeout: float | None = None) -> str:
        """Create the sandbox from CreateOptions or a Sandbox builder; returns the VM id.

        Validation errors are raised before anything is sent.  When create
        succeeds but the builder's port forwards fail, the VM id is kept so
        close() and remove() clean up.  A second create on one client is
        refused (StateError): use a new Client for another sandbox."""
        await self.start()
        return await self._run(self._create_plan(opts, None, timeout))  # type: ignore[no-any-return]

    async def launch(self, sandbox: Sandbox, timeout: float | None = None) -> str:
        """As create(), and start the image's entrypoint detached (launch_entrypoint)."""
        await self.start()
        return await self._run(self._create_plan(sandbox, True, timeout))  # type: ignore[no-any-return]

    async def close(self, timeout: float = 0) -> None:
        """Close the sandbox and the matchlock process (idempotent); `timeout` seconds
        bound the shutdown (0: the server's default), after which the process is killed."""
        await self._run(self._close_plan(timeout))
        await asyncio.sleep(0)

    async def remove(self) -> None:
        """Delete the VM's state (`matchlock rm <id>`); call after close()."""
        await self._run(self._remove_plan())

    # exec -----------------------------------------------------------------------------------
    async def exec(self, command: str, working_dir: str = "", timeout: float | None = None,
                   user: str = "") -> ExecResult:
        """Run a command and collect its output (ExecResult: exit_code, stdout, stderr as text)."""
        await self.start()
        return await self._run(self._exec_plan(command, working_dir, timeout, user))  # type: ignore

    async def exec_stream(self, command: str, stdout: Writer = None, stderr: Writer = None,
                          working_dir: str = "", timeout: float | None = None,
                          user: str = "") -> ExecStreamResult:
        """Run a command streaming stdout/stderr to the given writers; returns the exit code and duration."""
        await self.start()
        return await self._run(self._stream_plan(command, stdout, stderr, working_dir, timeout, user))  # type: ignore

    async def exec_pipe(self, command: str, stdin: AsyncStdinSource = None, stdout: Writer = None,
                        stderr: Writer = None, working_dir: str = "", timeout: float | None = None,
                        user: str = "") -> ExecPipeResult:
        """Run a command with stdin (bytes/str given up front, or a readable
        stream / iterable of bytes forwarded until EOF) and streamed output."""
        await self.start()
        return await self._run(self._pipe_plan(lib.MLK_EXEC_PIPE, command, stdin, stdout, stderr,  # type: ignore
                                               working_dir, timeout, user, 0, 0, None))

    async def exec_interactive(self, command: str, stdin: AsyncStdinSource = None, stdout: Writer = None,
                               working_dir: str = "", rows: int = 24, cols: int = 80,
                               resize: Iterable[tuple[int, int]] | None = None, timeout: float | None = None,
                               user: str = "") -> ExecInteractiveResult:
        """Run a command on a TTY of rows x cols (stderr is merged into stdout);
        `resize` yields (rows, cols) pairs applied while it runs."""
        await self.start()
        return await self._run(self._pipe_plan(lib.MLK_EXEC_TTY, command, stdin, stdout, None,  # type: ignore
                                               working_dir, timeout, user, rows, cols, resize))

    # files ----------------------------------------------------------------------------------------
    async def write_file(self, path: str, content: bytes | str, mode: int = 0o644,
                         timeout: float | None = None) -> None:
        """Write `content` (bytes, or str as UTF-8) to `path` in the sandbox with `mode`."""
        await self.start()
        await self._run(self._write_plan(path, content, mode, timeout))

    async def read_file(self, path: str, timeout: float | None = None) -> bytes:
        """Read the file at `path` in the sandbox; returns its bytes."""
        await self.start()
        return await self._run(self._read_plan(path, timeout))  # type: ignore[no-any-return]

    async def list_files(self, path: str, timeout: float | None = None) -> list[FileInfo]:
        """List the directory `path` in the sandbox (FileInfo: name, size, mode, is_dir)."""
        await self.start()
        return await self._run(self._list_plan(path, timeout))  # type: ignore[no-any-return]

    # logs ------------------------------------------------------------------------------------------
    async def log(self, timeout: float | None = None) -> str:
        """The sandbox's console log so far, as text."""
        await self.start()
        return await self._run(self._log_plan(timeout))  # type: ignore[no-any-return]

    async def log_stream(self, stdout: Writer = None, timeout: float | None = None) -> None:
        """Stream the console log to `stdout` until the call ends (timeout or cancel)."""
        await self.start()
        await self._run(self._log_stream_plan(stdout, timeout))

    # network ----------------------------------------------------------------------------------------
    async def port_forward(self, *specs: str, timeout: float | None = None) -> list[PortForwardBinding]:
        """Forward host ports to the sandbox: specs are "[LOCAL:]REMOTE"; replaces earlier forwards."""
        await self.start()
        return await self._run(self._port_forward_plan(None, specs, timeout))  # type: ignore[no-any-return]

    async def port_forward_with_addresses(self, addresses: list[str] | None, *specs: str,
                                          timeout: float | None = None) -> list[PortForwardBinding]:
        """As port_forward(), binding on the given host addresses (default 127.0.0.1)."""
        await self.start()
        return await self._run(self._port_forward_plan(addresses, specs, timeout))  # type: ignore

    async def allow_list_add(self, *hosts: str, timeout: float | None = None) -> AllowListUpdate:
        """Add hosts to the network allow-list (items are split on commas and trimmed)."""
        await self.start()
        return await self._run(self._allow_plan(True, hosts, timeout))  # type: ignore[no-any-return]

    async def allow_list_delete(self, *hosts: str, timeout: float | None = None) -> AllowListUpdate:
        """Remove hosts from the network allow-list (items are split on commas and trimmed)."""
        await self.start()
        return await self._run(self._allow_plan(False, hosts, timeout))  # type: ignore[no-any-return]

    # volumes ------------------------------------------------------------------------------------------
    async def volume_create(self, name: str, size_mb: int = 10240) -> VolumeInfo:
        """Create a named raw ext4 volume of size_mb MiB (`matchlock volume create`)."""
        return await self._run(self._volume_create_plan(name, size_mb))  # type: ignore[no-any-return]

    async def volume_list(self) -> list[VolumeInfo]:
        """List the named volumes (`matchlock volume ls`)."""
        return await self._run(self._volume_list_plan())  # type: ignore[no-any-return]

    async def volume_remove(self, name: str) -> None:
        """Delete a named volume (`matchlock volume rm`)."""
        await self._run(self._volume_remove_plan(name))


def _in_loop() -> bool:
    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        return False


async def _pump_stdin_async(core: _Core, op: _Op, source: Any) -> None:
    async def write(b: bytes) -> bool:
        buf = ffi.from_buffer(b)
        while not op.done:
            rc = lib.mlk_stdin_write(core.ptr, op.op_id, buf, len(b))
            if rc == 0:
                return True
            if rc != lib.MLK_EAGAIN:
                return False
            await asyncio.sleep(0.005)
        return False

    try:
        read = getattr(source, "read", None)
        if hasattr(source, "__aiter__"):
            async for chunk in source:
                if not await write(as_bytes(chunk, "stdin chunk")):
                    return
        elif callable(read) and inspect.iscoroutinefunction(read):
            while True:
                chunk = await read(_STDIN_CHUNK)
                if not chunk:
                    break
                if not await write(as_bytes(chunk, "stdin chunk")):
                    return
        elif callable(read):
            loop = asyncio.get_running_loop()
            while True:
                chunk = await loop.run_in_executor(None, read, _STDIN_CHUNK)
                if not chunk:
                    break
                if not await write(as_bytes(chunk, "stdin chunk")):
                    return
        else:
            for chunk in source:
                if not await write(as_bytes(chunk, "stdin chunk")):
                    return
    except BaseException as e:  # noqa: BLE001
        op.fail_user(e)
        return
    if not op.done:
        lib.mlk_stdin_close(core.ptr, op.op_id)
