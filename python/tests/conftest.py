"""Shared fixtures: the matchlock-local peer, a per-session state dir, vectors."""

from __future__ import annotations

import os
import pathlib
import shutil
import tempfile
from typing import Iterator

import pytest

import matchlock_native as ml

REPO = pathlib.Path(__file__).resolve().parents[2]


def local_bin() -> str:
    p = os.environ.get("MATCHLOCK_LOCAL_BIN") or str(REPO / "build" / "matchlock-local")
    return p


def vectors_dir() -> pathlib.Path:
    env = os.environ.get("MLK_VECTORS_DIR")
    if env:
        return pathlib.Path(env)
    return REPO / "tests" / "vectors"


@pytest.fixture(scope="session", autouse=True)
def _state_home() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="mlk-py-state-")
    old = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = d
    yield d
    if old is None:
        os.environ.pop("XDG_STATE_HOME", None)
    else:
        os.environ["XDG_STATE_HOME"] = old
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def local_binary() -> str:
    p = local_bin()
    if not os.access(p, os.X_OK):
        pytest.fail(f"matchlock-local not found at {p}: build it (cmake --build build --target matchlock-local) "
                    "or set MATCHLOCK_LOCAL_BIN", pytrace=False)
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
    c.close()


@pytest.fixture
def fresh_client(config: ml.Config) -> Iterator[ml.Client]:
    """A started client without a sandbox."""
    c = ml.Client(config)
    c.start()
    yield c
    c.close()
