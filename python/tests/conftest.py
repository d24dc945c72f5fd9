"""Shared fixtures: the server of the end-to-end tests, a per-session state
dir, vectors, and what the server may not show.

The end-to-end tests run against $MLK_E2E_SERVER (default: the built
matchlock-local; $MATCHLOCK_LOCAL_BIN is still honoured); `make test-e2e
MATCHLOCK_BIN=...` names one.  $MLK_E2E_BACKEND names the backend ("local"
or "matchlock"); without it the server's `version` decides.  A test that
needs what a server may lack is marked ``@pytest.mark.needs("CAP")`` with a
CAP of tests/e2e/capabilities.tsv, the table the four languages share."""

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


@functools.lru_cache(maxsize=None)
def capabilities() -> dict[str, tuple[set[str], str]]:
    """tests/e2e/capabilities.tsv: capability -> (backends lacking it, why)."""
    table = {}
    for line in (REPO / "tests" / "e2e" / "capabilities.tsv").read_text().splitlines():
        fields = line.split("\t")
        if line.startswith("#") or len(fields) != 3:
            continue
        table[fields[0]] = (set(fields[1].split(",")), fields[2])
    return table


@functools.lru_cache(maxsize=None)
def backend() -> str:
    b = os.environ.get("MLK_E2E_BACKEND")
    if b:
        if b not in ("local", "matchlock"):
            raise pytest.UsageError(f"MLK_E2E_BACKEND={b}: the backends are 'local' and 'matchlock'")
        return b
    try:
        out = subprocess.run([local_bin(), "version"], capture_output=True, text=True, timeout=10).stdout
    except OSError:
        out = ""
    # matchlock-local's version says so: "matchlock 0.1.0-local (commit: ...)";
    # the binary's name never counts
    return "local" if "-local" in out.split("\n")[0] else "matchlock"


def lacks(cap: str) -> str | None:
    """Why the server cannot show cap, or None when it can."""
    if cap not in capabilities():
        raise pytest.UsageError(f"unknown capability {cap!r} (not in tests/e2e/capabilities.tsv)")
    lacked_by, why = capabilities()[cap]
    declared = cap in os.environ.get("MLK_E2E_LACKS", "").split(",")
    return why if backend() in lacked_by or declared else None


@pytest.fixture(name="lacks")
def lacks_fixture() -> Any:
    return lacks


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs(cap): the test needs a capability of tests/e2e/capabilities.tsv")


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    for item in items:
        for m in item.iter_markers("needs"):
            why = lacks(m.args[0])
            if why:
                item.add_marker(pytest.mark.skip(reason=f"{backend()} backend: {why}"))


def vectors_dir() -> pathlib.Path:
    env = os.environ.get("MLK_VECTORS_DIR")
    if env:
        return pathlib.Path(env)
    return REPO / "tests" / "vectors"


@pytest.fixture(scope="session", autouse=True)
def _state_home() -> Iterator[str]:
    # matchlock-local keeps state under $XDG_STATE_HOME, upstream under
    # $HOME/.matchlock; $MLK_E2E_STATE_DIR (make test-e2e) is kept
    shared = os.environ.get("MLK_E2E_STATE_DIR")
    d = shared or tempfile.mkdtemp(prefix="mlk-py-state-")
    env = {"XDG_STATE_HOME": d, "HOME": d}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield d
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    if not shared:
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
