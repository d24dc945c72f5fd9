"""Issue 11 from Python: a hostile or broken peer ends calls at once, the
deadline of a file call covers its VFS hooks, and a fork() child (a
multiprocessing pool with the fork start method) never touches the
parent's session.  The hostile server is tests/peer/hostile_peer.c
(built by CMake as build/mlk_hostile_peer, or $MLK_HOSTILE_PEER)."""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import time
from typing import Any, Iterator

import pytest

import matchlock_native as ml
from conftest import REPO


def hostile_bin() -> str:
    return os.environ.get("MLK_HOSTILE_PEER") or str(REPO / "build" / "mlk_hostile_peer")


@pytest.fixture
def hostile(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """hostile(mode, after=0) -> a started Client of the hostile peer."""
    if not os.access(hostile_bin(), os.X_OK):
        pytest.fail(f"the hostile peer is not built at {hostile_bin()} (cmake --build build "
                    "--target mlk_hostile_peer) or set MLK_HOSTILE_PEER", pytrace=False)
    made: list[ml.Client] = []

    def make(mode: str, after: int = 0) -> ml.Client:
        monkeypatch.setenv("MLK_HOSTILE_MODE", mode)
        monkeypatch.setenv("MLK_HOSTILE_AFTER", str(after))
        c = ml.Client(ml.Config(binary_path=hostile_bin()))
        c.start()
        made.append(c)
        return c

    yield make
    for c in made:
        try:
            c.close()
        except ml.MatchlockError:
            pass


def ws_sandbox() -> ml.Sandbox:
    return ml.Sandbox("alpine:latest").with_workspace("/workspace").mount_memory("/workspace")


# --------------------------------------------------------------------------
# hostile servers end calls at once (items 1-4)


@pytest.mark.parametrize("mode,after,fragment", [
    ("unknown-ids", 0, "not waiting for"),
    ("garbage", 1, "not a JSON-RPC message"),
    ("grandchild", 0, "connection closed"),
    ("dies-mid-call", 1, "died mid-call"),
    ("closes-stdout", 1, "connection closed"),
])
def test_a_broken_server_fails_the_call_at_once(hostile: Any, mode: str, after: int, fragment: str) -> None:
    c = hostile(mode, after)
    for _ in range(after):
        assert c.exec("true").exit_code == 0
    t0 = time.monotonic()
    with pytest.raises(ml.MatchlockError, match=fragment):
        c.exec("true", timeout=10)
    assert time.monotonic() - t0 < 2.0, "waited for the deadline"


def test_invalid_base64_output_is_an_error_not_lost_data(hostile: Any) -> None:
    c = hostile("bad-base64")
    chunks: list[bytes] = []
    with pytest.raises(ml.MatchlockError, match="exec_stream.stdout"):
        c.exec_stream("echo hi", stdout=chunks.append, timeout=10)


# --------------------------------------------------------------------------
# item 6: the deadline covers VFS action and mutate hooks


def test_deadline_covers_an_async_action_hook_that_never_answers(config: ml.Config) -> None:
    async def forever(req: ml.VFSActionRequest) -> str:
        await asyncio.sleep(3600)
        return "allow"

    sb = ws_sandbox().with_vfs_interception(ml.VFSInterceptionConfig(rules=[
        ml.VFSHookRule(name="stuck", path="/workspace/stuck*", action_hook=forever)]))
    with ml.Client(config) as c:
        c.create(sb, timeout=30)
        t0 = time.monotonic()
        with pytest.raises(ml.MatchlockTimeoutError, match="500 ms"):
            c.write_file("/workspace/stuck.txt", "x", timeout=0.5)
        el = time.monotonic() - t0
        assert 0.4 < el < 2.0, f"took {el:.2f}s for a 0.5 s deadline"
        c.write_file("/workspace/free.txt", "y")  # the client goes on
        assert c.read_file("/workspace/free.txt") == b"y"
        names = [f.name for f in c.list_files("/workspace")]
        assert "stuck.txt" not in names


def test_deadline_covers_a_slow_mutate_hook(config: ml.Config) -> None:
    def slow(req: ml.VFSMutateRequest) -> bytes:
        time.sleep(1.5)  # runs on the dispatcher thread: the timeout is delivered when it returns
        return b"mutated"

    sb = ws_sandbox().with_vfs_interception(ml.VFSInterceptionConfig(rules=[
        ml.VFSHookRule(name="slow", path="/workspace/slow*", mutate_hook=slow)]))
    with ml.Client(config) as c:
        c.create(sb, timeout=30)
        with pytest.raises(ml.MatchlockTimeoutError):
            c.write_file("/workspace/slow.txt", "x", timeout=0.3)
        names = [f.name for f in c.list_files("/workspace")]
        assert "slow.txt" not in names, "a call that timed out is never sent"


# --------------------------------------------------------------------------
# item 9: fork()

_inherited: ml.Client | None = None


def _child_uses_the_inherited_client(i: int) -> tuple[str, float]:
    global _inherited
    c = _inherited
    assert c is not None, "each task runs in a fresh fork of the parent"
    t0 = time.monotonic()
    try:
        c.exec(f"echo from-child-{i}")
        outcome = "no error"
    except ml.ClosedError as e:
        outcome = str(e)
    except BaseException as e:  # noqa: BLE001 - reported to the parent
        outcome = f"{type(e).__name__}: {e}"
    try:
        c.close()
    except ml.ClosedError:
        pass
    # dropping the last reference runs the finalizer: mlk_client_free in the child
    _inherited = None
    del c
    gc.collect()
    return outcome, time.monotonic() - t0


def test_fork_children_never_touch_the_parents_session(client: ml.Client) -> None:
    global _inherited
    _inherited = client
    ctx = multiprocessing.get_context("fork")
    try:
        with ctx.Pool(2, maxtasksperchild=1) as pool:  # a fresh fork per task, mid-use
            pending = pool.map_async(_child_uses_the_inherited_client, range(6))
            n = 0
            while not pending.ready():  # the parent keeps using its client meanwhile
                assert client.exec("echo parent").stdout == "parent\n"
                n += 1
            results = pending.get(timeout=60)
    finally:
        _inherited = None
    assert n > 0
    for outcome, took in results:
        assert "fork" in outcome, outcome
        assert took < 5.0, f"a child took {took:.1f}s"
    # the parent's sandbox is alive and its session intact
    assert client.exec("echo still-here").stdout == "still-here\n"
    client.write_file("/tmp/after-fork", "ok")
    assert client.read_file("/tmp/after-fork") == b"ok"
