"""End-to-end tests of Client against the real matchlock-local."""

from __future__ import annotations

import io
import os
import signal
import socket
import stat
import sys
import tempfile
import threading
import time
from typing import Any, Callable

import pytest

import matchlock_native as ml

# --------------------------------------------------------------------------
# lifecycle


def test_with_client_create_exec_close(config: ml.Config) -> None:
    with ml.Client(config) as c:
        vm = c.launch(ml.Sandbox("alpine:latest"))
        assert vm.startswith("vm-")
        assert c.vm_id == vm
        r = c.exec("echo hello")
        assert r.exit_code == 0 and r.stdout == "hello\n" and r.stderr == ""
        assert r.duration_ms >= 0
    assert c.vm_id == vm  # kept after close, for remove()
    c.remove()


def test_create_from_create_options(config: ml.Config) -> None:
    with ml.Client(config) as c:
        vm = c.create(ml.CreateOptions(image="alpine:latest", env={"GREETING": "hi"}))
        assert vm.startswith("vm-")
        assert c.exec("echo $GREETING").stdout == "hi\n"


def test_builder_options_reach_the_sandbox(config: ml.Config, tmp_path: Any) -> None:
    (tmp_path / "in.txt").write_text("from host")
    sb = (ml.Sandbox("alpine:latest")
          .with_env("A", "1")
          .with_env_map({"B": "2"})
          .with_workspace("/workspace")
          .mount_host_dir_readonly("/workspace/ro", str(tmp_path))
          .mount_memory("/workspace/mem")
          .with_hostname("box"))
    with ml.Client(config) as c:
        c.launch(sb)
        assert c.exec("echo $A$B").stdout == "12\n"
        assert c.read_file("/workspace/ro/in.txt") == b"from host"
        c.write_file("/workspace/mem/x", b"m")
        assert c.read_file("/workspace/mem/x") == b"m"


def test_auto_start_and_close_idempotent(config: ml.Config) -> None:
    c = ml.Client(config)
    c.create(ml.Sandbox("alpine:latest"))  # starts the process on first use
    assert c.exec("true").exit_code == 0
    c.close()
    c.close()  # idempotent
    with pytest.raises(ml.ClosedError):
        c.exec("true")
    c.remove()


def test_close_with_timeout_then_remove(config: ml.Config) -> None:
    c = ml.Client(config)
    c.start()
    c.create(ml.Sandbox("alpine:latest"))
    c.close(timeout=5)
    c.remove()
    with pytest.raises(ml.CLIError):
        c.remove()  # already gone


def test_remove_without_create_is_a_no_op(config: ml.Config) -> None:
    c = ml.Client(config)
    c.start()
    c.close()
    c.remove()


def test_create_twice_is_a_state_error(client: ml.Client) -> None:
    with pytest.raises(ml.StateError) as ei:
        client.create(ml.Sandbox("alpine:latest"))
    assert "new client" in str(ei.value)


def test_exec_before_create(fresh_client: ml.Client) -> None:
    with pytest.raises(ml.RPCError) as ei:
        fresh_client.exec("true")
    assert ei.value.is_vm_error()


def test_stderr_tail_is_a_string(client: ml.Client) -> None:
    assert isinstance(client.stderr_tail(), str)


# --------------------------------------------------------------------------
# exec


@pytest.mark.needs("image_contents")
def test_commands_see_the_image(client: ml.Client) -> None:
    r = client.exec("cat /etc/alpine-release")
    assert r.exit_code == 0 and r.stdout[:1].isdigit(), r


def test_exec_exit_code_and_stderr(client: ml.Client) -> None:
    r = client.exec("echo out; echo err >&2; exit 7")
    assert (r.exit_code, r.stdout, r.stderr) == (7, "out\n", "err\n")


def test_exec_working_dir_and_user(client: ml.Client) -> None:
    assert client.exec("pwd", working_dir="/tmp").stdout == "/tmp\n"
    r = client.exec("id -un", user="root")
    assert r.exit_code == 0


def test_exec_binary_output(client: ml.Client) -> None:
    r = client.exec("printf 'a\\000b\\377'")
    assert r.stdout_bytes == b"a\x00b\xff"
    assert r.stdout == "a\x00b\ufffd"


def test_exec_large_output(client: ml.Client) -> None:
    r = client.exec("head -c 3000000 /dev/zero | tr '\\0' x")
    assert len(r.stdout_bytes) == 3_000_000


def test_exec_timeout_cancels(client: ml.Client) -> None:
    t = time.monotonic()
    with pytest.raises(ml.MatchlockTimeoutError) as ei:
        client.exec("sleep 5", timeout=0.3)
    assert time.monotonic() - t < 2
    assert isinstance(ei.value, TimeoutError)  # as upstream raises TimeoutError
    assert "deadline" in str(ei.value)
    assert client.exec("echo still fine").stdout == "still fine\n"


def test_bad_timeouts_are_rejected(client: ml.Client) -> None:
    with pytest.raises(ml.ValidationError):
        client.exec("true", timeout=0)
    with pytest.raises(ml.ValidationError):
        client.exec("true", timeout=-1)
    with pytest.raises(TypeError):
        client.exec("true", timeout="1")  # type: ignore[arg-type]


def test_exec_stream_writers(client: ml.Client) -> None:
    out = io.BytesIO()
    err = io.StringIO()
    r = client.exec_stream("printf 'h\\303\\251llo'; printf 'warn' >&2; exit 2", stdout=out, stderr=err)
    assert r.exit_code == 2
    assert out.getvalue() == "héllo".encode()
    assert err.getvalue() == "warn"


def test_exec_stream_callable_and_none(client: ml.Client) -> None:
    chunks: list[bytes] = []
    client.exec_stream("echo a; echo b", stdout=chunks.append)
    assert b"".join(chunks) == b"a\nb\n"
    assert client.exec_stream("echo ignored").exit_code == 0


def test_exec_stream_text_writer_keeps_split_utf8(client: ml.Client) -> None:
    """'€' (e2 82 ac) arrives in two chunks; the text writer still gets it whole."""
    seen: list[str] = []

    class W(io.StringIO):
        def write(self, s: str) -> int:
            seen.append(s)
            return super().write(s)

    w = W()
    client.exec_stream("printf '\\342'; sleep 0.2; printf '\\202\\254!'", stdout=w)
    assert w.getvalue() == "€!"
    assert "\ufffd" not in "".join(seen)


def test_exec_stream_to_sys_stdout(client: ml.Client, capfd: Any) -> None:
    client.exec_stream("echo to-stdout", stdout=sys.stdout)
    client.exec_stream("echo to-buffer", stdout=sys.stdout.buffer)
    out = capfd.readouterr().out
    assert "to-stdout" in out and "to-buffer" in out


def test_exec_stream_timeout(client: ml.Client) -> None:
    got = io.BytesIO()
    with pytest.raises(ml.MatchlockTimeoutError):
        client.exec_stream("echo first; sleep 5", stdout=got, timeout=0.5)
    assert got.getvalue() == b"first\n"


def test_callback_exception_is_reraised_and_cancels(client: ml.Client) -> None:
    def boom(b: bytes) -> None:
        raise ValueError("callback failed")

    t = time.monotonic()
    with pytest.raises(ValueError, match="callback failed"):
        client.exec_stream("echo x; sleep 5", stdout=boom)
    assert time.monotonic() - t < 3  # the call was cancelled, not waited out
    assert client.exec("echo ok").stdout == "ok\n"


def test_writer_without_write_or_call_is_rejected(client: ml.Client) -> None:
    with pytest.raises(TypeError):
        client.exec_stream("true", stdout=42)  # type: ignore[arg-type]


def test_callback_may_call_the_client(client: ml.Client) -> None:
    """A callback runs on the dispatcher thread; a blocking call made there completes."""
    inner: list[str] = []

    def on_out(b: bytes) -> None:
        inner.append(client.exec("echo inner").stdout)

    client.exec_stream("echo outer", stdout=on_out)
    assert inner == ["inner\n"]


# -- pipe and tty --------------------------------------------------------


def test_exec_pipe_bytes_stdin(client: ml.Client) -> None:
    out = io.BytesIO()
    err = io.BytesIO()
    r = client.exec_pipe("cat; echo e >&2", stdin=b"piped\n", stdout=out, stderr=err)
    assert r.exit_code == 0 and out.getvalue() == b"piped\n" and err.getvalue() == b"e\n"


def test_exec_pipe_str_and_no_stdin(client: ml.Client) -> None:
    out = io.StringIO()
    client.exec_pipe("cat", stdin="text", stdout=out)
    assert out.getvalue() == "text"
    out2 = io.StringIO()
    assert client.exec_pipe("cat; echo done", stdout=out2).exit_code == 0
    assert out2.getvalue() == "done\n"


def test_exec_pipe_stream_stdin(client: ml.Client) -> None:
    out = io.BytesIO()
    client.exec_pipe("wc -c", stdin=io.BytesIO(b"x" * 100_000), stdout=out)
    assert out.getvalue().strip() == b"100000"


def test_exec_pipe_iterable_stdin(client: ml.Client) -> None:
    out = io.BytesIO()
    client.exec_pipe("cat", stdin=iter([b"a", b"b", "c"]), stdout=out)
    assert out.getvalue() == b"abc"


def test_exec_pipe_big_stdin(client: ml.Client) -> None:
    data = os.urandom(3 * 1024 * 1024)
    out = io.BytesIO()
    client.exec_pipe("sha256sum | cut -d' ' -f1", stdin=data, stdout=out)
    import hashlib

    assert out.getvalue().strip().decode() == hashlib.sha256(data).hexdigest()


def test_exec_pipe_stdin_error_is_reraised(client: ml.Client) -> None:
    class Bad:
        def read(self, n: int) -> bytes:
            raise OSError("stdin broke")

    with pytest.raises(OSError, match="stdin broke"):
        client.exec_pipe("cat", stdin=Bad(), timeout=10)  # type: ignore[arg-type]


def test_exec_interactive_tty(client: ml.Client) -> None:
    out = io.BytesIO()
    r = client.exec_interactive("test -t 0 && echo tty; stty size", stdout=out, rows=33, cols=101)
    assert r.exit_code == 0
    text = out.getvalue().decode()
    assert "tty" in text and "33 101" in text


def test_exec_interactive_stdin_and_resize(client: ml.Client) -> None:
    def slow_stdin() -> Any:
        time.sleep(0.5)  # stdin EOF after the resize (the core drops a resize sent after EOF)
        yield b"hello\n"

    out = io.BytesIO()
    r = client.exec_interactive("sleep 0.3; stty size; read line; echo got:$line", stdin=slow_stdin(),
                                stdout=out, resize=[(40, 120)])
    assert r.exit_code == 0
    text = out.getvalue().decode()
    assert "got:hello" in text
    assert "40 120" in text


def test_exec_interactive_bad_size(client: ml.Client) -> None:
    with pytest.raises(ml.ValidationError):
        client.exec_interactive("true", rows=70000)


# --------------------------------------------------------------------------
# files


def test_files_roundtrip_and_list(client: ml.Client) -> None:
    client.exec("mkdir -p /tmp/d")
    client.write_file("/tmp/d/a.txt", "hello")
    client.write_file("/tmp/d/s.sh", b"#!/bin/sh\necho hi\n", mode=0o755)
    assert client.read_file("/tmp/d/a.txt") == b"hello"
    files = {f.name: f for f in client.list_files("/tmp/d")}
    assert set(files) == {"a.txt", "s.sh"}
    assert files["a.txt"].size == 5 and not files["a.txt"].is_dir
    assert stat.S_IMODE(files["s.sh"].mode) == 0o755
    assert client.exec("/tmp/d/s.sh").stdout == "hi\n"
    client.exec("mkdir /tmp/d/sub")
    assert {f.name: f.is_dir for f in client.list_files("/tmp/d")}["sub"] is True


def test_binary_and_large_files(client: ml.Client) -> None:
    blob = bytes(range(256)) * 10
    client.write_file("/tmp/bin", blob)
    assert client.read_file("/tmp/bin") == blob
    big = os.urandom(9 * 1024 * 1024)  # over the server's request line limit: streamed through exec_pipe
    client.write_file("/tmp/big", big, timeout=60)
    assert client.read_file("/tmp/big", timeout=60) == big


def test_file_errors_are_rpc_errors(client: ml.Client) -> None:
    with pytest.raises(ml.RPCError) as ei:
        client.read_file("/definitely/not/here")
    e = ei.value
    assert e.code == ml.RPCError.FILE_FAILED and e.is_file_error()
    assert str(e).startswith("[-32002]") and "not/here" in e.message
    with pytest.raises(ml.RPCError):
        client.list_files("/definitely/not/here")
    with pytest.raises(ml.ValidationError):
        client.write_file("", b"x")
    with pytest.raises(ml.ValidationError):
        client.write_file("/tmp/x", b"x", mode=0o17777)


# --------------------------------------------------------------------------
# logs, network, volumes


def test_log_and_log_stream(client: ml.Client) -> None:
    log = client.log()
    assert client.vm_id and client.vm_id in log
    out = io.StringIO()
    with pytest.raises(ml.MatchlockTimeoutError):
        client.log_stream(out, timeout=0.5)
    assert client.vm_id in out.getvalue()


def test_port_forward(client: ml.Client) -> None:
    b = client.port_forward("18081:80")
    assert b == [ml.PortForwardBinding(address="127.0.0.1", local_port=18081, remote_port=80)]
    b = client.port_forward_with_addresses(["127.0.0.1"], "18082")
    assert [(x.local_port, x.remote_port) for x in b] == [(18082, 18082)]


def test_port_forward_from_builder(config: ml.Config) -> None:
    with ml.Client(config) as c:
        c.launch(ml.Sandbox("alpine:latest").with_port_forward(18083, 8080)
                 .with_port_forward_addresses("127.0.0.1"))
        with socket.create_connection(("127.0.0.1", 18083), timeout=5):
            pass  # the forward listens where the builder asked


def test_allow_list(config: ml.Config) -> None:
    with ml.Client(config) as c:
        c.launch(ml.Sandbox("alpine:latest").allow_host("a.example.com").with_network_interception())
        u = c.allow_list_add("b.example.com, c.example.com", "b.example.com")
        assert u.added == ["b.example.com", "c.example.com"]
        assert set(u.allowed_hosts) >= {"a.example.com", "b.example.com", "c.example.com"}
        u = c.allow_list_delete("a.example.com")
        assert u.removed == ["a.example.com"] and "a.example.com" not in u.allowed_hosts


def test_volumes(client: ml.Client) -> None:
    v = client.volume_create("pyvol", 16)
    assert v.name == "pyvol" and v.path
    assert "pyvol" in [x.name for x in client.volume_list()]
    client.volume_remove("pyvol")
    assert "pyvol" not in [x.name for x in client.volume_list()]
    # an empty name (after strip, as the official SDK) is the core's to refuse, in its words
    with pytest.raises(ml.VolumeNameError, match="volume name is required"):
        client.volume_create("  ", 16)
    with pytest.raises(ml.VolumeNameError, match="volume name is required"):
        client.volume_remove("")
    # the official package's words (volume size must be > 0)
    with pytest.raises(ml.VolumeSizeError, match="volume size must be > 0"):
        client.volume_create("x", 0)
    with pytest.raises(TypeError):
        client.volume_create("x", "16")  # type: ignore[arg-type]
    with pytest.raises(ml.CLIError):
        client.volume_remove("no-such-volume")


def test_volumes_before_start_and_after_close(config: ml.Config) -> None:
    # an open client uses the core's async forms; before start and after
    # close the blocking forms run with the client's configuration
    c = ml.Client(config)
    v = c.volume_create("pyvol-nostart", 16)
    assert v.name == "pyvol-nostart"
    assert c.vm_id is None
    c.start()
    assert "pyvol-nostart" in [x.name for x in c.volume_list()]
    c.close()
    c.volume_remove("pyvol-nostart")
    assert "pyvol-nostart" not in [x.name for x in c.volume_list()]


def test_volume_attached_as_extra_disk(config: ml.Config) -> None:
    with ml.Client(config) as c:
        v = c.volume_create("pydisk", 16)
        try:
            params = ml.Sandbox("alpine:latest").add_extra_disk(v.path, "/mnt/data").params()
            assert params["extra_disks"] == [{"host_path": v.path, "guest_mount": "/mnt/data"}]
        finally:
            c.volume_remove("pydisk")


# --------------------------------------------------------------------------
# error paths


def test_bad_options_fail_before_sending(fresh_client: ml.Client) -> None:
    with pytest.raises(ml.ImageRequiredError) as ei:
        fresh_client.create(ml.Sandbox(""))
    assert ei.value.upstream_name == "ErrImageRequired"
    assert isinstance(ei.value, ValueError)
    with pytest.raises(ml.InvalidCPUCountError):
        fresh_client.create(ml.CreateOptions(image="alpine:latest", cpus=-1))
    with pytest.raises(ml.NoNetworkConflictError):
        fresh_client.create(ml.Sandbox("alpine:latest").with_no_network().allow_host("a.com"))
    # the client is still usable after validation failures
    fresh_client.create(ml.Sandbox("alpine:latest"))


def test_validation_messages_begin_with_the_seed_texts() -> None:
    cases = [
        (ml.Sandbox(""), "image is required (e.g., alpine:latest)"),
        (ml.Sandbox("a").with_cpus(-1), "invalid cpu count"),
        (ml.Sandbox("a").with_network_mtu(-1), "network mtu must be > 0"),
        (ml.Sandbox("a").with_no_network().allow_host("x.com"),
         "no network cannot be combined with allowed hosts, secrets, forced interception, or network "
         "interception rules"),
        (ml.Sandbox("a").add_host("bad host", "10.0.0.1"), "invalid add-host mapping"),
        (ml.Sandbox("a").add_port_forward("0"), "parse port-forward spec"),
    ]
    for sb, prefix in cases:
        with pytest.raises(ml.ValidationError) as ei:
            sb.params()
        assert str(ei.value).startswith(prefix), (prefix, str(ei.value))


def test_messages_carry_the_official_packages_words_too(fresh_client: ml.Client) -> None:
    """The official package's texts, which code may match on, are in our
    messages after the seed's."""
    with pytest.raises(ml.ValidationError, match="invalid port-forward spec"):
        ml.Sandbox("a").add_port_forward("1:2:3").params()
    fresh_client.create(ml.Sandbox("alpine:latest"), timeout=30)
    with pytest.raises(ml.MatchlockError, match="invalid port-forward spec"):
        fresh_client.port_forward("1:2:3")
    with pytest.raises(ml.MatchlockError, match="volume size must be > 0"):
        fresh_client.volume_create("cache", 0)


def test_server_judges_what_upstream_sends(fresh_client: ml.Client) -> None:
    """Mounts outside the workspace, interception without mounts and unknown
    rule actions are sent; the server's answer is the error."""
    sb = ml.Sandbox("alpine:latest").with_workspace("/w").mount_memory("/elsewhere")
    assert sb.params()["vfs"]["mounts"] == {"/elsewhere": {"type": "memory"}}
    with pytest.raises(ml.RPCError, match="guest path must be within workspace"):
        fresh_client.create(sb)
    p = ml.Sandbox("a").with_vfs_interception(ml.VFSInterceptionConfig(emit_events=True)).params()
    assert p["vfs"] == {"interception": {"emit_events": True}}
    p = ml.Sandbox("a").with_network_interception(ml.NetworkInterceptionConfig(rules=[
        ml.NetworkHookRule(name="x", phase="after", action="exec_after")])).params()  # type: ignore[arg-type]
    assert p["network"]["interception"]["rules"] == [{"name": "x", "phase": "after", "action": "exec_after"}]


def test_image_config_merge_reads_the_core_keys() -> None:
    """The fields with_image_config keeps are the core's image-config keys
    (mlk_rule_key_info, MLK_KEYS_IMAGE_CONFIG), which are ImageConfig's."""
    import dataclasses
    from matchlock_native import builder
    assert builder._IMAGE_CONFIG_KEYS == tuple(f.name for f in dataclasses.fields(ml.ImageConfig))
    sb = ml.Sandbox("a").with_image_config({"user": "u", "cmd": ["c"]}).with_image_config(
        {"entrypoint": ["e"], "env": {"A": "1"}, "cmd": []})
    ic = sb._opts.image_config
    assert (ic.user, ic.working_dir, ic.entrypoint, ic.cmd, ic.env) == ("u", "", ["e"], ["c"], {"A": "1"})


def test_builder_setter_errors_say_what_to_do() -> None:
    with pytest.raises(ml.ValidationError) as ei:
        ml.Sandbox("alpine:latest").with_env("", "x")
    assert "name" in str(ei.value)
    # DNS servers are the server's to judge, as upstream: sent as given
    assert ml.Sandbox("alpine:latest").with_dns_servers("not-an-ip").params()["network"]["dns_servers"] == ["not-an-ip"]
    with pytest.raises(ml.ValidationError):
        ml.Sandbox("alpine:latest").with_image_config({"nope": 1})
    with pytest.raises(ml.ValidationError):
        ml.Sandbox("alpine:latest").mount("/w/x", ml.MountConfig(type="nfs"))
    with pytest.raises(ml.InvalidNetworkHookError):
        ml.Sandbox("alpine:latest").with_network_interception(
            ml.NetworkInterceptionConfig(rules=[ml.NetworkHookRule(action="block", hook=lambda r: None)]))
    with pytest.raises(TypeError):
        ml.Sandbox("alpine:latest").with_memory("lots")  # type: ignore[arg-type]


def test_missing_binary_is_a_spawn_error() -> None:
    c = ml.Client(ml.Config(binary_path="/nonexistent/matchlock-binary"))
    with pytest.raises(ml.MatchlockError) as ei:
        c.start()
        c.create(ml.Sandbox("alpine:latest"))
    assert isinstance(ei.value, (ml.SpawnError, ml.ServerDiedError))
    assert "matchlock-binary" in str(ei.value) or "binary" in str(ei.value)
    c.close()


def _script(tmp_path: Any, body: str) -> str:
    p = tmp_path / "fake-matchlock"
    p.write_text("#!/bin/sh\n" + body)
    p.chmod(0o755)
    return str(p)


def test_server_that_exits_is_a_dead_server(tmp_path: Any) -> None:
    script = _script(tmp_path, "echo 'fake server: out of luck' >&2\nexit 3\n")
    c = ml.Client(ml.Config(binary_path=script))
    c.start()
    with pytest.raises(ml.ServerDiedError) as ei:
        c.create(ml.Sandbox("alpine:latest"), timeout=10)
    assert "out of luck" in str(ei.value)  # the child's stderr is in the message
    assert "new Client" in str(ei.value)
    c.close()


def test_launcher_that_exits(local_binary: str, tmp_path: Any) -> None:
    launcher = _script(tmp_path, "echo 'launcher refused' >&2\nexit 1\n")
    c = ml.Client(ml.Config(binary_path=local_binary, launcher=[launcher]))
    c.start()
    with pytest.raises(ml.ServerDiedError, match="launcher refused"):
        c.create(ml.Sandbox("alpine:latest"), timeout=10)
    c.close()


def test_launcher_and_env_work(local_binary: str, tmp_path: Any) -> None:
    c = ml.Client(ml.Config(binary_path=local_binary, launcher=["env", "MLK_PY_MARK=1"], env={"X_Y": "z"}))
    with c:
        c.create(ml.Sandbox("alpine:latest"))
        assert c.exec("true").exit_code == 0


def test_server_dies_during_a_call(local_binary: str, tmp_path: Any) -> None:
    pidfile = tmp_path / "pid"
    launcher = _script(tmp_path, f'echo $$ > {pidfile}\nexec "$@"\n')
    c = ml.Client(ml.Config(binary_path=local_binary, launcher=[launcher]))
    c.start()
    c.create(ml.Sandbox("alpine:latest"))
    pid = int(pidfile.read_text())
    threading.Timer(0.3, os.kill, (pid, signal.SIGKILL)).start()
    t = time.monotonic()
    with pytest.raises(ml.ServerDiedError):
        c.exec("sleep 10")
    assert time.monotonic() - t < 5
    with pytest.raises(ml.ServerDiedError):
        c.exec("true")
    c.close()


def test_ctrl_c_interrupts_a_blocking_call(client: ml.Client) -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("needs the main thread")
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # a shell's background job starts with SIGINT ignored: no
        # KeyboardInterrupt can happen here
        pytest.skip("SIGINT is ignored in this process (started as a background job)")
    main = threading.get_ident()
    timer = threading.Timer(0.3, signal.pthread_kill, (main, signal.SIGINT))
    t = time.monotonic()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        client.exec("sleep 20")
    assert time.monotonic() - t < 2
    assert client.exec("echo after").stdout == "after\n"


# --------------------------------------------------------------------------
# threads


def test_threads_share_one_client(client: ml.Client) -> None:
    errors: list[BaseException] = []
    results: dict[int, list[str]] = {}

    def worker(i: int) -> None:
        try:
            got = []
            for j in range(5):
                got.append(client.exec(f"echo {i}-{j}").stdout.strip())
                client.write_file(f"/tmp/t{i}", f"{i}".encode())
                assert client.read_file(f"/tmp/t{i}") == f"{i}".encode()
            results[i] = got
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors
    assert results == {i: [f"{i}-{j}" for j in range(5)] for i in range(8)}


def test_close_from_another_thread_fails_pending_calls(config: ml.Config, lacks: Any) -> None:
    c = ml.Client(config)
    c.start()
    c.create(ml.Sandbox("alpine:latest"))
    close_errors: list[BaseException] = []

    def closer() -> None:
        try:
            c.close()
        except ml.MatchlockError as e:
            close_errors.append(e)

    timer = threading.Timer(0.3, closer)
    timer.start()
    t = time.monotonic()
    try:
        r = c.exec("sleep 10")
        assert r.exit_code != 0  # the server stopped the command while closing
    except ml.MatchlockError:
        pass
    assert time.monotonic() - t < 6
    timer.join()
    if lacks("close_stops_commands"):
        # the server waits for the command; the close deadline kills it
        assert [type(e) for e in close_errors] == [ml.CloseTimeoutError], close_errors
    else:
        assert close_errors == []
    with pytest.raises(ml.ClosedError):
        c.exec("true")


def test_events_callback_receives_dicts(client: ml.Client) -> None:
    got: list[dict[str, Any]] = []
    client.on_event(got.append)
    client.exec("true")
    client.on_event(None)
    assert all(isinstance(e, dict) for e in got)


def test_create_keeps_the_vm_id_when_port_forwards_fail(config: ml.Config) -> None:
    """create succeeded, the builder's port forward did not: the VM id stays
    on the client so close() and remove() clean the VM up."""
    c = ml.Client(config)
    sb = ml.Sandbox("alpine:latest").add_port_forward("18081:80").with_port_forward_addresses("203.0.113.7")
    with pytest.raises(ml.RPCError, match="port_forward"):
        c.create(sb)
    assert c.vm_id is not None and c.vm_id.startswith("vm-")
    c.close()
    c.remove()
    with pytest.raises(ml.CLIError):
        c.remove()  # really removed the first time


def test_second_create_is_refused_with_what_to_do(config: ml.Config) -> None:
    """A deliberate difference: upstream's server replaces its VM without
    closing the first one; we refuse and say what to do."""
    with ml.Client(config) as c:
        vm = c.create(ml.Sandbox("alpine:latest"))
        with pytest.raises(ml.StateError, match="use a new client"):
            c.create(ml.Sandbox("alpine:latest"))
        assert c.vm_id == vm


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _fds_over_closed_clients(config: ml.Config, n: int, use: Callable[[ml.Client], Any]
                             ) -> tuple[int, int, list[ml.Client], ml.Client]:
    """Descriptors before and after n clients, each used (`use`), closed and
    kept referenced (no gc).  An open anchor client, returned for the caller
    to close, keeps the core's shared I/O thread up through both counts."""
    anchor = ml.Client(config)
    anchor.start()
    warm = ml.Client(config)
    warm.launch(ml.Sandbox("alpine:latest"))
    warm.close()
    warm.remove()
    before = _fds()
    keep = []
    for _ in range(n):
        c = ml.Client(config)
        use(c)
        c.close()
        keep.append(c)
    return before, _fds(), keep, anchor


def test_close_releases_every_descriptor_at_once(config: ml.Config) -> None:
    """close() frees the C client (process pipes, notification fd) at once,
    not at garbage collection: the clients stay referenced here."""
    before, after, keep, anchor = _fds_over_closed_clients(config, 200, lambda c: c.start())
    anchor.close()
    assert after - before <= 3, f"descriptors grew from {before} to {after} over 200 closed clients"
    with pytest.raises(ml.MatchlockError, match="closed"):
        keep[1].exec("true")


def test_close_releases_every_descriptor_of_a_client_with_a_sandbox(config: ml.Config) -> None:
    """A client that created a sandbox frees its C client at close too (no
    descriptor waits for garbage collection: the clients stay referenced and
    gc is not run); remove() afterwards runs `matchlock rm` through the
    Config and the kept vm id (mlk_remove_vm)."""
    before, after, keep, anchor = _fds_over_closed_clients(config, 20, lambda c: c.create(ml.Sandbox("alpine:latest")))
    assert after - before <= 3, f"descriptors grew from {before} to {after} over 20 closed clients with sandboxes"
    with pytest.raises(ml.ClosedError, match="client closed"):
        keep[0].exec("true")
    for c in keep:
        assert c.vm_id
        c.remove()
        with pytest.raises(ml.CLIError):
            c.remove()  # really removed: the same error as through the C client
    assert _fds() - before <= 3
    anchor.close()


def test_async_close_releases_every_descriptor_of_a_client_with_a_sandbox(config: ml.Config) -> None:
    import asyncio

    async def main() -> tuple[int, int]:
        anchor = ml.AsyncClient(config)  # open: keeps the core's shared I/O thread up through the counts
        await anchor.start()
        warm = ml.AsyncClient(config)
        await warm.create(ml.Sandbox("alpine:latest"))
        await warm.close()
        await warm.remove()
        await asyncio.sleep(0)  # the loop frees the C client after close's callback
        before = _fds()
        keep = []
        for _ in range(20):
            c = ml.AsyncClient(config)
            await c.create(ml.Sandbox("alpine:latest"))
            await c.close()
            keep.append(c)
        await asyncio.sleep(0)
        after = _fds()
        for c in keep:
            await c.remove()
        with pytest.raises(ml.CLIError):
            await keep[0].remove()
        await anchor.close()
        return before, after

    before, after = asyncio.run(main())
    assert after - before <= 3, f"descriptors grew from {before} to {after} over 20 closed async clients with sandboxes"


def test_async_close_releases_every_descriptor_at_once(config: ml.Config) -> None:
    import asyncio

    async def main() -> tuple[int, int]:
        keep = []
        before = _fds()
        for _ in range(50):
            c = ml.AsyncClient(config)
            await c.start()
            await c.close()
            keep.append(c)
        return before, _fds()

    before, after = asyncio.run(main())
    assert after - before <= 3, f"descriptors grew from {before} to {after} over 50 closed async clients"


def test_unparsable_volume_output_says_so_in_the_official_words(tmp_path: Any) -> None:
    """A `matchlock volume` that prints what the official package cannot
    parse fails with its words ("failed to parse volume ... output")."""
    def cli(out: str) -> ml.Config:
        p = tmp_path / f"fake-{abs(hash(out))}"
        p.write_text(f"#!/bin/sh\nprintf '%s\\n' '{out}'\n")
        p.chmod(0o755)
        return ml.Config(binary_path=str(p))

    c = ml.Client(cli('{"name":"cache","size":"16.0 MB","path":""}'))
    with pytest.raises(ml.MatchlockError, match="failed to parse volume create output"):
        c.volume_create("cache", 16)
    c = ml.Client(cli('[{"name":"cache","size":"16.0 MB"}]'))
    with pytest.raises(ml.MatchlockError, match="failed to parse volume list output line"):
        c.volume_list()
