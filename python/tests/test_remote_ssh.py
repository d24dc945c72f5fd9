"""A sandbox on "another machine": Config.launcher over a real OpenSSH
connection (the same setup as tests/c/test_remote_ssh.c).  A module-wide
sshd (Debian's openssh-server) listens on a loopback port with keys made
for it; matchlock-local runs on the remote side, where sshd's SetEnv gives
it a state directory of the test's.  Where sshd cannot start, the module is
skipped with the reason.  docs/remote.md says what works remotely."""

from __future__ import annotations

import os
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from typing import Iterator

import pytest

import matchlock_native as ml

SSHD = "/usr/sbin/sshd"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sshd:
    def __init__(self) -> None:
        if not os.access(SSHD, os.X_OK):
            pytest.skip(f"sshd cannot start: {SSHD} is missing (openssh-server)")
        if os.geteuid() != 0:
            pytest.skip("sshd cannot start: the test runs sshd as root for a root login")
        try:
            os.makedirs("/run/sshd", exist_ok=True)
        except OSError as e:
            pytest.skip(f"sshd cannot start: no privilege separation directory /run/sshd ({e})")
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="mlk-py-ssh-"))
        self.state = self.dir / "state"
        self.state.mkdir()
        for name in ("host_key", "user_key", "other_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.dir / name)], check=True)
        shutil.copy(self.dir / "user_key.pub", self.dir / "authorized_keys")
        (self.dir / "banner").write_text("a banner from the remote side\n")
        self.port = _free_port()
        (self.dir / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {self.dir}/host_key\n"
            f"AuthorizedKeysFile {self.dir}/authorized_keys\nPidFile none\nStrictModes no\nUsePAM no\n"
            "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            f"Banner {self.dir}/banner\nSetEnv XDG_STATE_HOME={self.state}\nLogLevel ERROR\n")
        log = self.dir / "sshd.log"
        self.proc = subprocess.Popen([SSHD, "-D", "-f", str(self.dir / "sshd_config"), "-E", str(log)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.01)
        why = log.read_text().strip() if log.exists() else ""
        self.stop()
        pytest.skip(f"sshd cannot start: {why or 'it did not listen within 5 s'}")

    def launcher(self, key: str = "user_key") -> list[str]:
        return ["ssh", "-p", str(self.port), "-i", str(self.dir / key), "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "127.0.0.1", "--"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def sshd() -> Iterator[Sshd]:
    s = Sshd()
    yield s
    s.stop()


@pytest.fixture
def remote(sshd: Sshd, local_binary: str) -> ml.Config:
    # the path on the remote side too (same machine here); the remote shell
    # starts in the home directory, so it must be absolute
    # and ssh hands its words to the remote shell: launcher_shell quotes them
    return ml.Config(binary_path=os.path.abspath(local_binary), launcher=sshd.launcher(), launcher_shell=True)


def test_sandbox_over_ssh(remote: ml.Config, sshd: Sshd) -> None:
    c = ml.Client(remote)
    c.start()
    vm = c.create(ml.Sandbox("alpine:latest"), timeout=60)
    vmdir = sshd.state / "matchlock-local" / "vms" / vm
    assert vmdir.is_dir(), "the VM lives on the remote side"
    tail = c.stderr_tail()
    assert "Permanently added" in tail and "a banner from the remote side" in tail, tail

    r = c.exec("echo out; echo err >&2; exit 3")
    assert (r.exit_code, r.stdout, r.stderr) == (3, "out\n", "err\n")
    chunks: list[bytes] = []
    r = c.exec_stream("for i in 1 2 3; do echo $i; sleep 0.05; done", stdout=chunks.append)
    assert r.exit_code == 0 and b"".join(chunks) == b"1\n2\n3\n"

    big = os.urandom(11 * 1024 * 1024 + 5)  # past the server's 10 MiB line limit
    c.write_file("/tmp/over-ssh.bin", big)
    assert c.read_file("/tmp/over-ssh.bin") == big
    assert "over-ssh.bin" in [f.name for f in c.list_files("/tmp")]

    v = c.volume_create("py-ssh-vol", 16)
    assert v.name == "py-ssh-vol"
    assert (sshd.state / "matchlock-local" / "volumes" / "py-ssh-vol").exists(), "the volume is remote"
    assert "py-ssh-vol" in [x.name for x in c.volume_list()]
    c.volume_remove("py-ssh-vol")

    c.close(5)
    assert vmdir.is_dir(), "close keeps the state"
    c.remove()
    assert not vmdir.exists(), "rm went through the launcher"


def test_network_hook_is_refused_early(remote: ml.Config) -> None:
    sb = ml.Sandbox("alpine:latest").with_network_interception(
        ml.NetworkInterceptionConfig(rules=[ml.NetworkHookRule(name="audit", hook=lambda req: None)]))
    with ml.Client(remote) as c:
        t = time.monotonic()
        with pytest.raises(ml.InvalidNetworkHookError, match="launcher"):
            c.create(sb, timeout=60)
        assert time.monotonic() - t < 1, "refused before anything is sent"
        c.create(ml.Sandbox("alpine:latest"), timeout=60)  # the session is fine without the hook
        assert c.exec("echo ok").stdout == "ok\n"


def test_refused_login_fails_every_pending_call(sshd: Sshd, local_binary: str) -> None:
    cfg = ml.Config(binary_path=os.path.abspath(local_binary), launcher=sshd.launcher("other_key"),
                    launcher_shell=True)
    c = ml.Client(cfg)
    c.start()
    errors: list[BaseException] = []

    def call(f: object) -> None:
        try:
            f()  # type: ignore[operator]
        except ml.MatchlockError as e:
            errors.append(e)

    threads = [threading.Thread(target=call, args=(lambda: c.create(ml.Sandbox("alpine:latest"), timeout=60),)),
               threading.Thread(target=call, args=(lambda: c.log(),))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(errors) == 2, errors
    for e in errors:
        assert "Permission denied" in str(e), e
    with pytest.raises(ml.MatchlockError, match="Permission denied"):
        c.exec("true")
    c.close()


def _ssh_child(port: int) -> int:
    me = os.getpid()
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            cmd = pathlib.Path(f"/proc/{d}/cmdline").read_bytes().split(b"\0")
            ppid = int(pathlib.Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == me and cmd[:3] == [b"ssh", b"-p", str(port).encode()]:
            return int(d)
    raise AssertionError("no ssh child found")


def _remote_procs(marker: str) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if pathlib.Path(f"/proc/{d}/cmdline").read_bytes() == f"sleep\0{marker}\0".encode():
                    out.append(int(d))
            except OSError:
                pass
    return out


def test_killed_ssh_fails_pending_calls_and_nothing_lingers(remote: ml.Config, sshd: Sshd) -> None:
    c = ml.Client(remote)
    c.start()
    c.create(ml.Sandbox("alpine:latest"), timeout=60)
    failed: dict[int, tuple[float, BaseException]] = {}

    def run(i: int) -> None:
        try:
            c.exec("sleep 63.5")
        except ml.MatchlockError as e:
            failed[i] = (time.monotonic(), e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while len(_remote_procs("63.5")) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(_remote_procs("63.5")) == 3, "the remote commands run"
    ssh = _ssh_child(sshd.port)
    t0 = time.monotonic()
    os.kill(ssh, signal.SIGKILL)
    for t in threads:
        t.join(5)
    assert sorted(failed) == [0, 1, 2]
    assert all(isinstance(e, ml.MatchlockError) for _, e in failed.values())
    assert max(at for at, _ in failed.values()) - t0 < 0.1, "every pending call failed within 100 ms"
    # the remote server sees EOF on stdin when sshd ends the session, and exits
    deadline = time.monotonic() + 10
    while _remote_procs("63.5") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _remote_procs("63.5") == [], "the remote commands linger"
    c.close()


def test_stderr_of_the_launcher_never_reaches_the_protocol(remote: ml.Config) -> None:
    # ssh prints its warning and the banner before the server says anything;
    # the session works and they are in the stderr tail
    with ml.Client(remote) as c:
        c.create(ml.Sandbox("alpine:latest"), timeout=60)
        assert c.exec("echo ok").stdout == "ok\n"
        assert "a banner from the remote side" in c.stderr_tail()

