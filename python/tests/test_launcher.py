"""Config.launcher_shell: a launcher that hands its words to a shell, as ssh
does (issue 23, item 1; docs/remote.md, docs/security.md).  The ssh stand-in
joins the words after it with spaces and runs them with `sh -c`, as ssh
does on the remote side; the binary is matchlock-local at a path that only
survives that as one quoted word."""

from __future__ import annotations

import os
import pathlib

import pytest

import matchlock_native as ml

FAKE_SSH = ["sh", "-c", 'exec sh -c "$*"', "fake-ssh"]


@pytest.fixture
def odd_binary(tmp_path: pathlib.Path, local_binary: str) -> pathlib.Path:
    d = tmp_path / "it's a dir;$(touch injected)"
    d.mkdir()
    b = d / "match lock"
    b.symlink_to(os.path.abspath(local_binary))
    return b


def test_launcher_shell_quotes_every_word(odd_binary: pathlib.Path, tmp_path: pathlib.Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # where an injected `touch injected` would land
    cfg = ml.Config(binary_path=str(odd_binary), launcher=FAKE_SSH, launcher_shell=True)
    c = ml.Client(cfg)
    v = c.volume_create("py-quoted", 16)
    assert v.name == "py-quoted"
    c.volume_remove("py-quoted")
    with c:
        c.launch(ml.Sandbox("alpine:latest"))
        assert c.exec("echo hi").stdout == "hi\n"
    assert not (tmp_path / "injected").exists()
    # the same launcher unquoted splits the path: the setting is what works
    with pytest.raises(ml.MatchlockError):
        ml.Client(ml.Config(binary_path=str(odd_binary), launcher=FAKE_SSH)).volume_create("py-quoted", 16)


def test_names_that_are_flags_or_shell_are_refused(tmp_path: pathlib.Path) -> None:
    ran = tmp_path / "ran"
    binary = tmp_path / "matchlock"
    binary.write_text(f"#!/bin/sh\ntouch '{ran}'\n")
    binary.chmod(0o755)
    c = ml.Client(ml.Config(binary_path=str(binary), launcher=FAKE_SSH, launcher_shell=True))
    for name in ("vol; id > /tmp/x; echo", "--help", "--stopped", "a b"):
        with pytest.raises(ml.ValidationError, match=r"\[A-Za-z0-9\]\[A-Za-z0-9\._-\]\*"):
            c.volume_create(name, 16)
        with pytest.raises(ml.ValidationError, match="invalid volume name"):
            c.volume_remove(name)
    assert not ran.exists(), "the matchlock command ran"
