"""Who runs mlk_dispatch() for the blocking `Client`.

A blocking call waits *in C* (`mlk_dispatch_wait`, GIL released) on its own
thread and runs the client's completions and callbacks there: no hop
through another thread.  One thread at a time dispatches a client; the
right to do so is the client's *token* (`_Core.take`/`_Core.give`).  A
thread that wants to wait while another holds the token sleeps on its call's
wake lock; the holder wakes one such thread when it gives the token back
(or completes the call for it).

Nothing else needs a thread per client.  What can arrive while no call
waits -- server events for an `on_event` callback, and hooks of a sandbox
whose workload runs on its own -- is dispatched by one process-wide thread,
"matchlock-dispatch": an asyncio loop with one reader per such client, which
also runs the async hook functions of blocking clients.  It is started on
first use.  When its reader finds the token taken (a call is waiting and
dispatching anyway) it parks the client (removes the reader) until the
token is given back, so it never spins.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from ._native import ffi, lib

THREAD_NAME = "matchlock-dispatch"

_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def loop() -> asyncio.AbstractEventLoop:
    """The shared dispatcher loop (a daemon thread), started on first use."""
    global _loop
    with _loop_lock:
        if _loop is None or _loop.is_closed():
            lp = asyncio.new_event_loop()
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(lp)
                lp.call_soon(ready.set)
                lp.run_forever()

            threading.Thread(target=run, name=THREAD_NAME, daemon=True).start()
            ready.wait()
            _loop = lp
        return _loop


def wake(op: Any) -> None:
    """Release a sleeping waiter's wake lock (harmless when already released)."""
    lk = op._lock
    if lk is not None:
        try:
            lk.release()
        except RuntimeError:
            pass


# --------------------------------------------------------------------------
# the shared reader


def _readable(core: Any) -> None:
    if core.freed or core.ptr == ffi.NULL or not core.watched:
        return
    if not core.take():
        # A waiting call holds the token and dispatches; stop watching until
        # it gives the token back (give() re-arms), then try once more in
        # case it gave it back before `parked` was set.
        _loop_remove(core)
        core.parked = True
        if not core.take():
            return
        core.parked = False
        _loop_add(core)
    try:
        if not core.freed and core.ptr != ffi.NULL:
            lib.mlk_dispatch(core.ptr, 0)
    finally:
        core.give()


def _loop_add(core: Any) -> None:
    if core.watched and not core.freed and core.ptr != ffi.NULL:
        assert _loop is not None
        _loop.add_reader(core.fd, _readable, core)


def _loop_remove(core: Any) -> None:
    assert _loop is not None
    _loop.remove_reader(core.fd)


def watch(core: Any) -> None:
    """Dispatch `core` on the shared thread whenever no call waits on it."""
    if core.watched or core.freed or core.ptr == ffi.NULL:
        return
    core.watched = True
    core.fd = lib.mlk_client_fd(core.ptr)
    loop().call_soon_threadsafe(_loop_add, core)


def unwatch(core: Any) -> None:
    """Stop dispatching `core` on the shared thread (before it is freed)."""
    if not core.watched:
        return
    core.watched = False
    core.parked = False
    lp = _loop
    if lp is None or lp.is_closed():
        return
    fd = core.fd
    try:
        lp.call_soon_threadsafe(lp.remove_reader, fd)  # FIFO: before any later add of a reused fd
    except RuntimeError:
        pass


def unpark(core: Any) -> None:
    """The token was given back while the shared reader was parked."""
    lp = _loop
    if lp is not None and not lp.is_closed():
        try:
            lp.call_soon_threadsafe(_loop_add, core)
        except RuntimeError:
            pass
