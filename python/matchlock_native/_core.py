"""Plumbing between Python and the libmatchlock C ABI.

* the import-time ABI check,
* results (`_Outcome`, copied out of the borrowed `mlk_result`),
* per-call state (`_Op`) with its cffi handle and the `extern "Python"`
  trampolines that the core calls from mlk_dispatch(),
* output sinks (bytes writers, text writers, callables),
* small conversion helpers.
"""

from __future__ import annotations

import codecs
import io
import math
import sys
import threading
from typing import Any, Callable, Iterable, Union

from ._msgpack import unpackb
from ._native import ffi, lib
from .errors import CallbackError, MatchlockError, ValidationError, error_from_status
from .types import Config

# --------------------------------------------------------------------------
# ABI check


def _check_abi() -> tuple[int, int]:
    built = lib.mlk_py_header_version()
    runtime = lib.mlk_version()
    if runtime // 10000 != built // 10000 or runtime < built:
        def fmt(v: int) -> str:
            return f"{v // 10000}.{v // 100 % 100}.{v % 100}"

        raise ImportError(
            f"matchlock_native: the loaded libmatchlock core is version {fmt(runtime)} but this "
            f"extension was built against header {fmt(built)}; a compatible core has the same major "
            f"version and is at least as new. Rebuild the package (pip install --force-reinstall "
            f"--no-cache-dir ./python) so the extension and the core match."
        )
    return built, runtime


HEADER_VERSION, CORE_VERSION = _check_abi()
CORE_VERSION_STR: str = ffi.string(lib.mlk_version_str()).decode()

# --------------------------------------------------------------------------
# results


class _Outcome:
    """Everything a finished call reported, copied out of its mlk_result."""

    __slots__ = ("status", "message", "rpc_code", "exit_code", "duration_ms", "stdout", "stderr", "data", "mp")

    def __init__(self, res: Any) -> None:
        if res == ffi.NULL:
            self.status = lib.MLK_ENOMEM
            self.message = "out of memory (no result)"
            self.rpc_code = 0
            self.exit_code = -1
            self.duration_ms = 0
            self.stdout = self.stderr = self.data = b""
            self.mp = None
            return
        f = ffi.new("mlk_py_fields *")
        lib.mlk_py_result_fields(res, f)  # one crossing for every field
        self._fill(f)

    @classmethod
    def of_fields(cls, f: Any) -> "_Outcome":
        """From the fields the extension's done trampoline passes (NULL: no result)."""
        if f == ffi.NULL:
            return cls(ffi.NULL)
        o = cls.__new__(cls)
        o._fill(f)
        return o

    def _fill(self, f: Any) -> None:
        self.status = f.status
        n = f.message_len
        self.message = ffi.unpack(f.message, n).decode("utf-8", "replace") if n else ""
        self.rpc_code = f.rpc_code
        self.exit_code = f.exit_code
        self.duration_ms = f.duration_ms
        n = f.out_len
        self.stdout = ffi.unpack(f.out, n) if n else b""
        n = f.err_len
        self.stderr = ffi.unpack(f.err, n) if n else b""
        n = f.data_len
        self.data = ffi.unpack(f.data, n) if n else b""
        n = f.mp_len
        self.mp = ffi.unpack(f.mp, n) if n else None

    @classmethod
    def failed(cls, status: int, message: str = "") -> "_Outcome":
        o = cls(ffi.NULL)
        o.status = status
        o.message = message
        return o

    def error(self) -> MatchlockError:
        return error_from_status(self.status, self.message, self.rpc_code)

    def check(self) -> "_Outcome":
        if self.status != 0:
            raise self.error()
        return self

    def value(self) -> Any:
        return unpackb(self.mp) if self.mp else None


def take_result(pres: Any) -> _Outcome:
    """Copy and free a result returned through an out-parameter."""
    r = pres[0]
    try:
        return _Outcome(r)
    finally:
        lib.mlk_result_free(r)


def call_blocking(fn: Callable[..., int], *args: Any) -> _Outcome:
    """Run a blocking C call whose last argument is `mlk_result **out`."""
    pres = ffi.new("mlk_result **")
    rc = fn(*args, pres)
    out = take_result(pres)
    if rc != 0 and out.status == 0:
        out.status = rc
    return out


# --------------------------------------------------------------------------
# output sinks

Writer = Union[Any, Callable[[bytes], Any], None]
"""A stream target: a bytes writer (sys.stdout.buffer, io.BytesIO), a text
writer (sys.stdout, io.StringIO) or a callable taking bytes."""


class _Sink:
    """Adapts a stream target; text targets get an incremental UTF-8 decoder
    so a multi-byte character split across chunks arrives whole."""

    __slots__ = ("target", "kind", "decoder", "flush")

    def __init__(self, target: Any) -> None:
        self.target = target
        self.decoder: Any = None
        self.flush: Any = None
        if hasattr(target, "write"):
            if isinstance(target, io.TextIOBase) or (
                not isinstance(target, (io.RawIOBase, io.BufferedIOBase)) and hasattr(target, "encoding")
            ):
                self._text()
            elif isinstance(target, (io.RawIOBase, io.BufferedIOBase)):
                self.kind = "bytes"
            else:
                self.kind = "probe"
            self.flush = getattr(target, "flush", None)
        elif callable(target):
            self.kind = "call"
        else:
            raise TypeError(
                f"a stream target must be a writer with write() or a callable taking bytes, "
                f"not {type(target).__name__}"
            )

    def _text(self) -> None:
        self.kind = "text"
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def write(self, b: bytes) -> None:
        k = self.kind
        if k == "call":
            self.target(b)
            return
        if k == "bytes":
            self.target.write(b)
        elif k == "text":
            s = self.decoder.decode(b)
            if s:
                self.target.write(s)
        else:  # unknown writer: try bytes once, fall back to text
            try:
                self.target.write(b)
                self.kind = "bytes"
            except TypeError:
                self._text()
                self.write(b)
                return
        if self.flush is not None:
            self.flush()

    def close(self) -> None:
        if self.kind == "text" and self.decoder is not None:
            s = self.decoder.decode(b"", final=True)
            if s:
                self.target.write(s)
                if self.flush is not None:
                    self.flush()


# --------------------------------------------------------------------------
# per-call state and the trampolines


class _Op:
    """One asynchronous C call: its handle (the `ud` pointer), its sinks,
    a stored user exception, and how its completion is delivered."""

    __slots__ = ("handle", "owner", "sinks", "on_ready", "exc", "outcome", "op_id", "_lock", "afut", "on_done",
                 "deadline", "timed_out", "in_cb", "deferred", "__weakref__")

    def __init__(self, owner: Any, sinks: tuple[_Sink | None, _Sink | None] | None = None,
                 on_ready: Callable[[], Any] | None = None, afut: Any = None) -> None:
        self.owner = owner  # the client core (for cancel and the live set)
        self.sinks = sinks
        self.on_ready = on_ready
        self.exc: BaseException | None = None
        self.outcome: _Outcome | None = None
        self.op_id = 0
        self.afut = afut  # asyncio future, or None for a thread waiter
        self.on_done: Callable[[_Outcome], Any] | None = None
        self.deadline: float | None = None  # a Python-side deadline (time.monotonic)
        self.timed_out = False
        self.in_cb = 0  # callbacks of this call running now (a nested dispatch may complete it)
        self.deferred: _Outcome | None = None
        self._lock: threading.Lock | None = None  # a sleeping waiter's wake lock (arm())
        self.handle = ffi.new_handle(self)
        owner._live.add(self)

    # delivery -----------------------------------------------------------
    def complete(self, outcome: _Outcome) -> None:
        if self.outcome is not None or self.deferred is not None:
            return
        if self.in_cb:
            # A callback of this call made a blocking call whose dispatching
            # reached our completion: report it when the callback returns.
            self.deferred = outcome
            return
        self.outcome = outcome
        self.owner._live.discard(self)
        if self.sinks:
            for s in self.sinks:
                if s is not None:
                    try:
                        s.close()
                    except BaseException as e:  # noqa: BLE001 - stored, re-raised by the caller
                        if self.exc is None:
                            self.exc = e
        if self.on_done is not None:
            try:
                self.on_done(outcome)
            except BaseException as e:  # noqa: BLE001
                if self.exc is None:
                    self.exc = e
        if self.afut is not None:
            if not self.afut.done():
                self.afut.set_result(outcome)
        elif self._lock is not None:
            try:
                self._lock.release()
            except RuntimeError:  # already released by a token hand-over
                pass

    def leave_cb(self) -> None:
        self.in_cb -= 1
        if self.in_cb == 0 and self.deferred is not None:
            d, self.deferred = self.deferred, None
            self.complete(d)

    def arm(self) -> None:
        """Make a wake lock for a thread about to sleep on this call (the
        thread that completes it, or gives the client's token back, releases it)."""
        if self._lock is None:
            lk = threading.Lock()
            lk.acquire()
            self._lock = lk

    def sleep(self, timeout: float) -> None:
        """Sleep until woken or `timeout` seconds pass (interruptible); the
        lock stays taken for the next sleep."""
        assert self._lock is not None
        self._lock.acquire(timeout=timeout)

    @property
    def done(self) -> bool:
        return self.outcome is not None or self.deferred is not None

    def fail_user(self, e: BaseException) -> None:
        """A user callback raised: keep the first exception and cancel the call."""
        if self.exc is None:
            self.exc = e
        if self.op_id and self.outcome is None:
            self.owner._cancel_op(self.op_id)

    def result(self) -> _Outcome:
        """The outcome, re-raising a stored user exception first."""
        assert self.outcome is not None
        if self.exc is not None:
            e = self.exc
            self.exc = None
            if isinstance(e, Exception):
                raise e
            raise CallbackError(f"a callback raised {type(e).__name__}: {e}") from e
        return self.outcome.check()


def _onerror(exc_type: Any, exc_value: Any, tb: Any) -> None:
    # Only reached when the trampoline itself fails (it catches user errors).
    sys.stderr.write(f"matchlock_native: internal error in a callback: {exc_type.__name__}: {exc_value}\n")


@ffi.def_extern(onerror=_onerror)
def _mlk_py_done_fields(ud: Any, op: int, f: Any) -> None:
    o: _Op = ffi.from_handle(ud)
    o.complete(_Outcome.of_fields(f))


@ffi.def_extern(onerror=_onerror)
def _mlk_py_output(ud: Any, op: int, fd: int, data: Any, n: int) -> None:
    o: _Op = ffi.from_handle(ud)
    if not o.op_id:
        o.op_id = op
    if o.exc is not None or not o.sinks:
        return
    s = o.sinks[0] if fd == 1 else o.sinks[1]
    if s is None:
        return
    o.in_cb += 1
    try:
        s.write(ffi.buffer(data, n)[:])
    except BaseException as e:  # noqa: BLE001 - stored and re-raised after the call
        o.fail_user(e)
    finally:
        o.leave_cb()


@ffi.def_extern(onerror=_onerror)
def _mlk_py_ready(ud: Any, op: int) -> None:
    o: _Op = ffi.from_handle(ud)
    if not o.op_id:
        o.op_id = op
    if o.on_ready is None or o.exc is not None:
        return
    o.in_cb += 1
    try:
        o.on_ready()
    except BaseException as e:  # noqa: BLE001
        o.fail_user(e)
    finally:
        o.leave_cb()


@ffi.def_extern(onerror=_onerror)
def _mlk_py_event(ud: Any, data: Any, n: int) -> None:
    owner = ffi.from_handle(ud)
    cb = owner._event_cb
    if cb is None:
        return
    try:
        cb(unpackb(ffi.buffer(data, n)[:]))
    except BaseException as e:  # noqa: BLE001
        owner._event_error(e)


# --------------------------------------------------------------------------
# helpers


def to_ms(timeout: float | None, what: str = "timeout") -> int:
    """Seconds (None: no deadline) to the core's milliseconds (0: none)."""
    if timeout is None:
        return 0
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"{what} must be a number of seconds or None, not {type(timeout).__name__}")
    if not math.isfinite(timeout) or timeout <= 0:
        raise ValidationError(f"{what} must be a positive number of seconds (or None for no deadline), "
                              f"got {timeout!r}")
    return max(1, math.ceil(timeout * 1000))


def nul_error(b: bytes, what: str) -> ValidationError:
    """The core's error for bytes that hold a NUL: it names the argument, the
    NUL's offset and the length, never the value (it may be a secret)."""
    pm = ffi.new("char **")
    rc = lib.mlk_check_cstring(what.encode("utf-8", "replace"), b, len(b), pm)
    msg = ffi.string(pm[0]).decode("utf-8", "replace") if pm[0] != ffi.NULL else ""
    lib.mlk_free(pm[0])
    return ValidationError(msg, status=rc or lib.MLK_EINVAL)


def cbytes(s: str | bytes, what: str = "argument") -> bytes:
    """s as NUL-free UTF-8 bytes: a `const char *` argument for the duration
    of one call (cffi passes the bytes' own buffer; no copy)."""
    b = s.encode("utf-8") if isinstance(s, str) else s
    if not isinstance(b, bytes):
        raise TypeError(f"{what} must be a str, not {type(s).__name__}")
    if b"\0" in b:
        raise nul_error(b, what)
    return b


def cstr(s: str | bytes, what: str = "argument") -> Any:
    if isinstance(s, str):
        b = s.encode("utf-8")
    elif isinstance(s, bytes):
        b = s
    else:
        raise TypeError(f"{what} must be a str, not {type(s).__name__}")
    if b"\0" in b:
        raise nul_error(b, what)
    return ffi.new("char[]", b)


class CStrArray:
    """A `const char *const *` with its strings kept alive.  An element that
    holds a NUL is refused with the core's message, which names the element
    (`what[i]`) and the NUL's offset, never the value."""

    __slots__ = ("keep", "ptr", "n")

    def __init__(self, items: Iterable[str], what: str = "argument") -> None:
        if isinstance(items, (str, bytes)):
            items = [items]
        self.keep = [cstr(s, f"{what}[{i}]") for i, s in enumerate(items)]
        self.n = len(self.keep)
        self.ptr = ffi.new("const char *[]", self.keep) if self.keep else ffi.NULL


def as_bytes(data: bytes | bytearray | memoryview | str, what: str = "data") -> bytes:
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"{what} must be bytes or str, not {type(data).__name__}")


def make_config(cfg: Config | None) -> Any:
    """A new mlk_config for cfg (freed by the GC)."""
    c = lib.mlk_config_new()
    if c == ffi.NULL:
        raise MemoryError("mlk_config_new failed")
    c = ffi.gc(c, lib.mlk_config_free)
    if cfg is None:
        return c
    def chk(rc: int, what: str) -> None:
        if rc != 0:
            raise error_from_status(rc, f"Config.{what} is invalid")
    if cfg.binary_path:
        chk(lib.mlk_config_set_binary(c, cstr(cfg.binary_path, "Config.binary_path")), "binary_path")
    chk(lib.mlk_config_set_sudo(c, 1 if cfg.use_sudo else 0), "use_sudo")
    if cfg.launcher:
        arr = CStrArray(cfg.launcher, "Config.launcher")
        chk(lib.mlk_config_set_launcher(c, arr.ptr, arr.n), "launcher")
    chk(lib.mlk_config_set_launcher_shell(c, 1 if cfg.launcher_shell else 0), "launcher_shell")
    for k, v in (cfg.env or {}).items():
        chk(lib.mlk_config_set_env(c, cstr(k, "Config.env name"), cstr(v, "Config.env value")), "env")
    if cfg.max_line:
        chk(lib.mlk_config_set_max_line(c, int(cfg.max_line)), "max_line")
    return c
