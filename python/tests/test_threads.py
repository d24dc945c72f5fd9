"""Threads of the blocking Client: none of its own per client (issue 15).

A waiting call dispatches its client on its own thread; hooks and events of
every client share at most one dispatcher thread.  Counted two ways: the
Python threads (threading) and the OS threads of the process
(/proc/self/task, which also sees the core's I/O thread)."""

from __future__ import annotations

import gc
import os
import threading
import time
from typing import Any

import pytest

import matchlock_native as ml


def os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def settle(limit: int, seconds: float = 3.0) -> int:
    """Threads that have just exited may still be listed for a moment."""
    end = time.monotonic() + seconds
    n = os_threads()
    while n > limit and time.monotonic() < end:
        time.sleep(0.02)
        n = os_threads()
    return n


def not_ours() -> list[str]:
    """Threads that are neither this one nor the binding's (a test before
    may have left some)."""
    return [t.name for t in threading.enumerate()
            if t is not threading.current_thread() and t.name != "matchlock-dispatch"]


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs /proc/self/task")
def test_100_open_clients_use_at_most_3_threads(config: ml.Config) -> None:
    gc.collect()  # clients of earlier tests: freed, so the core's I/O thread is theirs no more
    base_py = threading.active_count()
    clients = [ml.Client(config) for _ in range(100)]
    try:
        for c in clients:
            c.start()
        # a round trip on every client (no sandbox: the server answers with an error)
        for c in clients:
            with pytest.raises(ml.RPCError, match="not created"):
                c.exec("true")
        # the calls completed on this thread: no Python thread was started
        assert threading.active_count() == base_py, [t.name for t in threading.enumerate()]
        got: list[dict] = []
        for c in clients[::10]:
            c.on_event(got.append)  # these need dispatching while no call waits
        for c in clients:
            with pytest.raises(ml.RPCError):
                c.list_files("/")
        names = [t.name for t in threading.enumerate()]
        assert names.count("matchlock-dispatch") == 1, names
        assert threading.active_count() <= base_py + 1, names
        # OS threads: this one, the core's I/O thread, the shared dispatcher
        n = settle(3 + len(not_ours()))
        assert n <= 3 + len(not_ours()), f"{n} OS threads for 100 open clients; Python threads: {names}"
        # and a sandbox on a few of them still works as usual
        for i, c in enumerate(clients[:3]):
            c.create(ml.Sandbox("alpine:latest"), timeout=30)
            assert c.exec(f"echo {i}").stdout == f"{i}\n"
        assert settle(3 + len(not_ours())) <= 3 + len(not_ours())
    finally:
        for c in clients:
            c.close()


def test_many_threads_wait_on_one_client(client: ml.Client) -> None:
    """The token passes between waiting threads: every call completes, each
    on its own thread, and the slow one does not hold up the others."""
    out: dict[int, str] = {}
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            for j in range(20):
                out[i * 100 + j] = client.exec(f"echo {i}-{j}").stdout
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    slow_done = threading.Event()

    def slow() -> None:
        client.exec("sleep 1")
        slow_done.set()

    ts = [threading.Thread(target=slow)] + [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts[1:]:
        t.join(30)
    fast = time.monotonic() - t0
    ts[0].join(30)
    assert not errors, errors
    assert out == {i * 100 + j: f"{i}-{j}\n" for i in range(6) for j in range(20)}
    assert slow_done.is_set()
    assert fast < 10


def test_events_arrive_while_no_call_waits(config: ml.Config) -> None:
    """With no call in flight, the shared thread dispatches the client."""
    sb = ml.Sandbox("alpine:latest").with_workspace("/workspace").mount_memory("/workspace").with_vfs_interception(
        ml.VFSInterceptionConfig(emit_events=True))
    with ml.Client(config) as c:
        seen: list[tuple[str, str]] = []
        c.on_event(lambda ev: seen.append((threading.current_thread().name,
                                           str((ev.get("file") or {}).get("path")))))
        c.create(sb, timeout=30)
        # matchlock-local reports a write_file's events when it sees them
        # (inotify), often after its answer: then no call waits and only the
        # shared thread can deliver them
        for i in range(20):
            c.write_file(f"/workspace/w{i}.txt", "x")
            end = time.monotonic() + 0.5
            while not any(t == "matchlock-dispatch" for t, _ in seen) and time.monotonic() < end:
                time.sleep(0.01)
            if any(t == "matchlock-dispatch" for t, _ in seen):
                break
        assert any(t == "matchlock-dispatch" for t, _ in seen), seen
        # the client keeps working with the shared thread watching it
        for i in range(20):
            assert c.exec(f"echo {i}").stdout == f"{i}\n"


EXIT_SCRIPT = r"""
import threading, time, sys
import matchlock_native as ml
c = ml.Client(ml.Config(binary_path=sys.argv[1]))
c.start()
c.create(ml.Sandbox("alpine:latest"), timeout=30)
started = threading.Event()
def work():
    started.set()
    try:
        c.exec("sleep 60")
    except ml.ClosedError:
        pass
threading.Thread(target=work, daemon=True).start()
started.wait()
time.sleep(0.5)  # the call is in flight; its thread holds the dispatch token
print("exiting", flush=True)
"""


def test_a_program_with_a_call_in_flight_on_a_daemon_thread_exits(local_binary: str, tmp_path: Any) -> None:
    """Issue 25 item 1: the client is dropped without close() while a daemon
    thread waits in exec("sleep 60"); at exit the client's finalizer must not
    wait for that call (it waited on the dispatch token the daemon thread
    holds, until the command ended)."""
    import subprocess
    import sys

    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-c", EXIT_SCRIPT, local_binary], capture_output=True, text=True, cwd=tmp_path,
                       timeout=40)
    spent = time.monotonic() - t0
    assert p.returncode == 0, p.stderr
    assert "exiting" in p.stdout
    # start, create and the close of the finalizer's free take a few seconds at most; the command 60
    assert spent < 15, f"the interpreter took {spent:.1f} s to exit"


def test_close_wakes_sixteen_waiting_calls_at_once(config: ml.Config) -> None:
    """Issue 25 item 5: close() while 16 threads wait on one client returns
    without a wait step (the token went to a waiter that was leaving, and
    the close slept 250 ms)."""
    worst = 0.0
    for _ in range(4):
        c = ml.Client(config)
        c.start()
        c.create(ml.Sandbox("alpine:latest"), timeout=30)
        ended: list[str] = []

        def run() -> None:
            try:
                c.exec("sleep 30")
                ended.append("ok")
            except ml.ClosedError:
                ended.append("closed")

        ts = [threading.Thread(target=run) for _ in range(16)]
        for t in ts:
            t.start()
        time.sleep(0.5)
        t0 = time.monotonic()
        c.close(timeout=5)
        worst = max(worst, time.monotonic() - t0)
        for t in ts:
            t.join(10)
        assert len(ended) == 16
    assert worst < 0.2, f"close took {worst * 1000:.0f} ms with 16 calls waiting"
