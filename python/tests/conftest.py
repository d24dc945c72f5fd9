"""Shared fixtures: the server of the end-to-end tests, a per-session state
dir, vectors, and the one table of what only one backend can show.

The end-to-end tests run against $MLK_E2E_SERVER (default: the built
matchlock-local; $MATCHLOCK_LOCAL_BIN is still honoured).  scripts/test-all.sh
runs them a second time against the conformance peer (upstream's own
handler with a process-backed VM).  $MLK_E2E_BACKEND names the backend
("local" or "conformance"); without it the server's `version` decides.
A test that needs what only matchlock-local shows is marked
``@pytest.mark.needs("CAP")`` with a CAP of CONFORMANCE_LACKS below."""

from __future__ import annotations

import functools
import os
import pathlib
import shutil
import subprocess
import tempfile
from typing import Any, Iterator

import pytest

import matchlock_native as ml

REPO = pathlib.Path(__file__).resolve().parents[2]


def local_bin() -> str:
    return (os.environ.get("MLK_E2E_SERVER") or os.environ.get("MATCHLOCK_LOCAL_BIN")
            or str(REPO / "build" / "matchlock-local"))


# What the conformance peer cannot show, and why (its README); matchlock-local
# shows all of it.  The same table is in tests/c/e2e_server.c.
CONFORMANCE_LACKS = {
    "cmd_file_events": "no FUSE layer: a command's own writes produce no VFS events "
                       "(only the SDK's file calls on VFS mounts do)",
    "net_traffic": "no network proxy runs: no network events, hooks or allow-list enforcement on traffic",
    "isolation": "commands are plain processes (no namespaces, no resource limits)",
    "close_stops_commands": "upstream's close waits for in-flight requests to end, so a close while a "
                            "command runs ends at the SDK's close deadline (the server is killed)",
    "local_behaviour": "this checks matchlock-local's own behaviour where upstream's differs "
                       "(docs/testing.md lists each difference)",
}


@functools.lru_cache(maxsize=None)
def backend() -> str:
    b = os.environ.get("MLK_E2E_BACKEND")
    if b:
        return b
    try:
        out = subprocess.run([local_bin(), "version"], capture_output=True, text=True, timeout=10).stdout
    except OSError:
        out = ""
    # matchlock-local's version says so: "matchlock 0.1.0-local (commit: ...)"
    return "local" if "-local" in out.split("\n")[0] else "conformance"


def lacks(cap: str) -> str | None:
    """Why the server cannot show cap, or None when it can."""
    reason = CONFORMANCE_LACKS[cap]
    return None if backend() == "local" else reason


@pytest.fixture(name="lacks")
def lacks_fixture() -> Any:
    return lacks


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs(cap): the test needs a capability of CONFORMANCE_LACKS")


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    if not any(i.get_closest_marker("needs") for i in items):
        return
    b = backend()
    if b == "local":
        return
    for item in items:
        for m in item.iter_markers("needs"):
            cap = m.args[0]
            if cap not in CONFORMANCE_LACKS:
                raise pytest.UsageError(f"{item.nodeid}: unknown capability {cap!r}")
            item.add_marker(pytest.mark.skip(reason=f"{b} backend: {CONFORMANCE_LACKS[cap]}"))


def vectors_dir() -> pathlib.Path:
    env = os.environ.get("MLK_VECTORS_DIR")
    if env:
        return pathlib.Path(env)
    return REPO / "tests" / "vectors"


@pytest.fixture(scope="session", autouse=True)
def _state_home() -> Iterator[str]:
    # matchlock-local keeps state under $XDG_STATE_HOME, upstream under
    # $HOME/.matchlock, the conformance peer its VM roots in $CONFPEER_STATE
    d = tempfile.mkdtemp(prefix="mlk-py-state-")
    env = {"XDG_STATE_HOME": d, "HOME": d, "CONFPEER_STATE": os.path.join(d, "confpeer")}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield d
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def local_binary() -> str:
    p = local_bin()
    if not os.access(p, os.X_OK):
        pytest.fail(f"server not found at {p}: build matchlock-local (cmake --build build --target matchlock-local) "
                    "or set MLK_E2E_SERVER", pytrace=False)
    return p


@pytest.fixture
def config(local_binary: str) -> ml.Config:
    return ml.Config(binary_path=local_binary)


@pytest.fixture
def client(config: ml.Config) -> Iterator[ml.Client]:
    """A started client with a created sandbox."""
    c = ml.Client(config)
    c.start()
    c.create(ml.Sandbox("alpine:latest"), timeout=30)
    yield c
    c.close(timeout=10)  # teardown, not a close test: room for a loaded machine


@pytest.fixture
def fresh_client(config: ml.Config) -> Iterator[ml.Client]:
    """A started client without a sandbox."""
    c = ml.Client(config)
    c.start()
    yield c
    c.close(timeout=10)  # teardown, not a close test: room for a loaded machine
