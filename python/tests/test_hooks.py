"""SDK-local hooks against the real matchlock-local: VFS hooks (after,
dangerous, action, mutate), network hooks through its HTTP proxy (a tiny
HTTP server on 127.0.0.1 is the upstream; `curl` inside the sandbox goes
through the proxy env vars), async hooks, failing hooks, and events."""

from __future__ import annotations

import asyncio
import http.server
import json
import logging
import os
import subprocess
import sys
import threading
import time
import urllib.parse
from typing import Any, Callable, Iterator

import pytest

import matchlock_native as ml

# real traffic and a command's own file events: matchlock-local only (conftest.py)
pytestmark = [pytest.mark.needs("net_traffic"), pytest.mark.needs("cmd_file_events")]
from conftest import REPO
from matchlock_native import _hooks
from matchlock_native._msgpack import unpackb

# --------------------------------------------------------------------------
# fixtures


class _Echo(http.server.BaseHTTPRequestHandler):
    """GET -> JSON {path, query, headers}, with an X-Upstream header."""

    def do_GET(self) -> None:  # noqa: N802
        u = urllib.parse.urlsplit(self.path)
        body = json.dumps({"path": u.path, "query": dict(urllib.parse.parse_qsl(u.query)),
                           "headers": {k: v for k, v in self.headers.items()}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Upstream", "yes")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def ws_sandbox() -> ml.Sandbox:
    return ml.Sandbox("alpine:latest").with_workspace("/workspace").mount_memory("/workspace")


def net_sandbox(*rules: ml.NetworkHookRule) -> ml.Sandbox:
    # the upstream is on loopback: let private IPs through the proxy
    return ml.Sandbox("alpine:latest").allow_private_ips().with_network_interception(
        ml.NetworkInterceptionConfig(rules=list(rules)))


def curl(c: ml.Client, url: str) -> tuple[str, dict[str, str], str]:
    """(status line, headers, body) of a GET made inside the sandbox."""
    r = c.exec(f"curl -s -i --max-time 20 '{url}'")
    assert r.exit_code == 0, r
    return _split_http(r.stdout)


def _split_http(raw: str) -> tuple[str, dict[str, str], str]:
    head, _, body = raw.partition("\r\n\r\n")
    lines = head.split("\r\n")
    headers = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        headers[k.strip().lower()] = v.strip()
    return lines[0], headers, body


def wait_for(pred: Callable[[], bool], timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


# --------------------------------------------------------------------------
# VFS hooks


def test_after_hook_sees_a_file_written_by_a_command(config: ml.Config) -> None:
    seen: list[ml.VFSHookEvent] = []
    sb = ws_sandbox().with_vfs_interception(ml.VFSInterceptionConfig(rules=[
        ml.VFSHookRule(name="txt", phase=ml.VFS_HOOK_PHASE_AFTER, path="/workspace/*.txt", hook=seen.append)]))
    with ml.Client(config) as c:
        c.create(sb, timeout=30)
        assert c.exec("echo data > /workspace/from-cmd.txt; echo x > /workspace/other.log").exit_code == 0
        assert wait_for(lambda: any(e.path == "/workspace/from-cmd.txt" for e in seen)), seen
        assert all(e.path.endswith(".txt") for e in seen)
        ev = next(e for e in seen if e.path == "/workspace/from-cmd.txt")
        assert isinstance(ev, ml.VFSHookEvent) and ev.op in ("create", "write")
        assert c.hook_errors == []


def test_dangerous_hook_runs_exec_on_the_same_client(config: ml.Config) -> None:
    got: list[str] = []

    def copy_out(client: ml.Client, ev: ml.VFSHookEvent) -> None:
        # on the thread waiting in a call (here the test's), or on the shared
        # dispatcher thread when no call waits
        assert threading.current_thread().name in ("MainThread", "matchlock-dispatch")
        # a blocking call from inside the hook completes (no deadlock)
        r = client.exec(f"cat {ev.path}; cp {ev.path} /workspace/copied")
        got.append(r.stdout.strip())

    # (no fresh subdirectories: matchlock-local may miss events in a directory
    # created just before)
    sb = ws_sandbox().with_vfs_interception(ml.VFSInterceptionConfig(rules=[
        ml.VFSHookRule(name="in", phase="after", ops=["write"], path="/workspace/in-*", dangerous_hook=copy_out)]))
    with ml.Client(config) as c:
        c.create(sb, timeout=30)
        c.exec("echo payload > /workspace/in-a")
        assert wait_for(lambda: got == ["payload"]), got
        assert wait_for(lambda: c.exec("cat /workspace/copied").stdout == "payload\n")
        assert c.hook_errors == []


def test_action_hook_blocks_write_file_and_names_the_rule(config: ml.Config) -> None:
    asked: list[ml.VFSActionRequest] = []

    def no_env(req: ml.VFSActionRequest) -> str:
        asked.append(req)
        return ml.VFS_HOOK_ACTION_BLOCK if req.path.endswith(".env") else ml.VFS_HOOK_ACTION_ALLOW

    sb = ws_sandbox().with_vfs_interception(ml.VFSInterceptionConfig(rules=[
        ml.VFSHookRule(name="no-dotenv", path="/workspace/*", action_hook=no_env)]))
    with ml.Client(config) as c:
        c.create(sb, timeout=30)
        with pytest.raises(ml.VFSBlockedError) as ei:
            c.write_file("/workspace/.env", "K=V")
        assert "no-dotenv" in str(ei.value) and ei.value.errname == "MLK_EVFS_BLOCKED"
        assert asked[-1].op == "write" and asked[-1].path == "/workspace/.env" and asked[-1].size == 3
        assert c.exec("test -e /workspace/.env").exit_code == 1, "a blocked write is never sent"
        c.write_file("/workspace/ok.txt", "fine")
        assert c.read_file("/workspace/ok.txt") == b"fine"
        assert asked[-1].op == "read"
        assert [f.name for f in c.list_files("/workspace")] == ["ok.txt"]  # "/workspace" itself: no match


def test_mutate_hooks_change_what_lands_in_the_file(config: ml.Config) -> None:
    def upper(req: ml.VFSMutateRequest) -> bytes:
        return req.data.upper()

    def keep(req: ml.VFSMutateRequest) -> None:
        return None  # None keeps the content

    def stamp(req: ml.VFSMutateRequest) -> str:
        return req.data.decode() + " (stamped)"

    sb = ws_sandbox().with_vfs_interception(ml.VFSInterceptionConfig(rules=[
        ml.VFSHookRule(name="up", path="/workspace/m/*", mutate_hook=upper),
        ml.VFSHookRule(name="keep", ops=[ml.VFS_HOOK_OP_WRITE], mutate_hook=keep),
        ml.VFSHookRule(name="stamp", phase="before", path="/workspace/m/*", mutate_hook=stamp)]))
    with ml.Client(config) as c:
        c.create(sb, timeout=30)
        c.exec("mkdir -p /workspace/m")
        c.write_file("/workspace/m/a", "hello")
        assert c.exec("cat /workspace/m/a").stdout == "HELLO (stamped)"
        c.write_file("/workspace/plain", b"as is")
        assert c.read_file("/workspace/plain") == b"as is"


def test_async_hooks_on_the_blocking_client(config: ml.Config) -> None:
    threads: list[str] = []

    async def slow_block(req: ml.VFSActionRequest) -> str:
        await asyncio.sleep(0.05)
        threads.append(threading.current_thread().name)
        return "block" if "secret" in req.path else "allow"

    async def slow_mutate(req: ml.VFSMutateRequest) -> bytes:
        await asyncio.sleep(0.01)
        return b"async:" + req.data

    sb = ws_sandbox().with_vfs_interception(ml.VFSInterceptionConfig(rules=[
        ml.VFSHookRule(name="guard", action_hook=slow_block),
        ml.VFSHookRule(name="mut", mutate_hook=slow_mutate)]))
    with ml.Client(config) as c:
        c.create(sb, timeout=30)
        with pytest.raises(ml.VFSBlockedError, match="guard"):
            c.write_file("/workspace/secret", "x")
        c.write_file("/workspace/public", "x")
        assert c.read_file("/workspace/public") == b"async:x"
        assert threads and set(threads) == {"matchlock-dispatch"}


def test_async_client_hooks_run_on_its_loop(config: ml.Config) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        copied: list[str] = []
        loops: list[Any] = []

        async def guard(req: ml.VFSActionRequest) -> str:
            loops.append(asyncio.get_running_loop())
            return "block" if req.path.endswith(".key") else "allow"

        def sync_mutate(req: ml.VFSMutateRequest) -> bytes:
            return req.data[::-1]

        async def dangerous(client: ml.AsyncClient, ev: ml.VFSHookEvent) -> None:
            r = await client.exec(f"cat {ev.path}")
            copied.append(r.stdout)

        sb = ws_sandbox().with_vfs_interception(ml.VFSInterceptionConfig(rules=[
            ml.VFSHookRule(name="keys", action_hook=guard),
            ml.VFSHookRule(name="rev", path="/workspace/r/*", mutate_hook=sync_mutate),
            ml.VFSHookRule(name="d", phase="after", ops=["write"], path="/workspace/in-*", dangerous_hook=dangerous)]))
        async with ml.AsyncClient(config) as c:
            await c.create(sb, timeout=30)
            with pytest.raises(ml.VFSBlockedError, match="keys"):
                await c.write_file("/workspace/id.key", "k")
            await c.exec("mkdir -p /workspace/r")
            await c.write_file("/workspace/r/x", "abc")
            assert await c.read_file("/workspace/r/x") == b"cba"
            await c.exec("echo hi > /workspace/in-f")
            for _ in range(300):
                if copied:
                    break
                await asyncio.sleep(0.02)
            assert copied == ["hi\n"]
            assert loops and all(lp is loop for lp in loops)
            assert c.hook_errors == []

    asyncio.run(main())


def test_a_hook_that_raises_fails_the_call_not_the_process(config: ml.Config,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    def broken(req: ml.VFSActionRequest) -> str:
        raise KeyError("no such policy")

    async def broken_async(req: ml.VFSMutateRequest) -> bytes:
        raise RuntimeError("async boom")

    def broken_after(ev: ml.VFSHookEvent) -> None:
        raise ValueError("after boom")

    sb = ws_sandbox().with_vfs_interception(ml.VFSInterceptionConfig(rules=[
        ml.VFSHookRule(name="pol", path="/workspace/p/*", action_hook=broken),
        ml.VFSHookRule(name="amut", path="/workspace/q/*", mutate_hook=broken_async),
        ml.VFSHookRule(name="aft", phase="after", path="/workspace/*.log", hook=broken_after)]))
    with caplog.at_level(logging.ERROR, logger="matchlock_native.hooks"), ml.Client(config) as c:
        c.create(sb, timeout=30)
        with pytest.raises(ml.CallbackError) as ei:
            c.write_file("/workspace/p/a", "x")
        assert "pol" in str(ei.value) and "KeyError" in str(ei.value) and "no such policy" in str(ei.value)
        with pytest.raises(ml.CallbackError, match="async boom"):
            c.write_file("/workspace/q/a", "x")
        c.exec("echo x > /workspace/a.log")
        assert wait_for(lambda: any(isinstance(e, ValueError) for e in c.hook_errors))
        kinds = [type(e) for e in c.hook_errors]
        assert KeyError in kinds and RuntimeError in kinds
        # the client (and the process) carry on
        assert c.exec("echo alive").stdout == "alive\n"
        c.write_file("/workspace/fine", "ok")
    assert "no such policy" in caplog.text and "'pol'" in caplog.text


def test_invalid_hook_answers_are_refused(config: ml.Config) -> None:
    sb = ws_sandbox().with_vfs_interception(ml.VFSInterceptionConfig(rules=[
        ml.VFSHookRule(name="maybe", path="/workspace/a/*", action_hook=lambda r: "maybe"),
        ml.VFSHookRule(name="num", path="/workspace/b/*", mutate_hook=lambda r: 123)]))
    with ml.Client(config) as c:
        c.create(sb, timeout=30)
        with pytest.raises(ml.InvalidVFSHookError, match="maybe"):
            c.write_file("/workspace/a/x", "x")
        with pytest.raises(ml.InvalidVFSHookError, match="num"):
            c.write_file("/workspace/b/x", "x")


def test_hook_rule_validation_errors() -> None:
    def vfs(rule: ml.VFSHookRule) -> ml.Sandbox:
        return ws_sandbox().with_vfs_interception(ml.VFSInterceptionConfig(rules=[rule]))

    with pytest.raises(ml.InvalidVFSHookError, match="phase=after"):
        vfs(ml.VFSHookRule(name="a", hook=print))
    with pytest.raises(ml.InvalidVFSHookError, match="phase=after"):
        vfs(ml.VFSHookRule(name="a", phase="before", dangerous_hook=print))
    with pytest.raises(ml.InvalidVFSHookError, match="phase=before"):
        vfs(ml.VFSHookRule(name="a", phase="after", action_hook=print))
    with pytest.raises(ml.InvalidVFSHookError, match="more than one"):
        vfs(ml.VFSHookRule(name="a", phase="after", hook=print, dangerous_hook=print))
    with pytest.raises(ml.InvalidVFSHookError, match="action"):
        vfs(ml.VFSHookRule(name="a", phase="after", action="block", hook=print))
    with pytest.raises(ml.InvalidVFSHookError, match="mutate_write"):
        vfs(ml.VFSHookRule(name="a", action="mutate_write"))  # type: ignore[arg-type]
    with pytest.raises(ml.InvalidVFSHookError, match="unknown op"):
        vfs(ml.VFSHookRule(name="a", ops=["explode"], action_hook=print))  # type: ignore[list-item]
    with pytest.raises(ml.InvalidNetworkHookError, match="action"):
        net_sandbox(ml.NetworkHookRule(name="n", action="block", hook=print))
    # static mutations ride along with a callback rule, as upstream allows
    p = net_sandbox(ml.NetworkHookRule(name="n", set_headers={"X-A": "b"}, hook=print)).params()
    rule = p["network"]["interception"]["rules"][0]
    assert rule["set_headers"] == {"X-A": "b"} and rule["callback_id"].startswith("network_hook_")
    # a second interception config replaces the hooks of the first
    sb = net_sandbox(ml.NetworkHookRule(name="one", hook=print))
    sb.with_network_interception(ml.NetworkInterceptionConfig(rules=[ml.NetworkHookRule(name="two", hook=print)]))
    assert [r["name"] for r in sb.params()["network"]["interception"]["rules"]] == ["two"]
    assert [e.name for e in sb._hook_entries] == ["two"]
    # after-hooks switch file events on; without a mount too (the server judges, as upstream)
    p = ml.Sandbox("alpine:latest").with_vfs_interception(ml.VFSInterceptionConfig(rules=[
        ml.VFSHookRule(phase="after", hook=print)])).params()
    assert p["vfs"] == {"interception": {"emit_events": True}}
    p = ws_sandbox().with_vfs_interception(ml.VFSInterceptionConfig(rules=[
        ml.VFSHookRule(phase="after", hook=print)])).params()
    assert p["vfs"]["interception"] == {"emit_events": True}
    # callbacks are shared by options(), not deep-copied
    lock = threading.Lock()

    class Holder:
        def __init__(self) -> None:
            self.lock = lock

        def hook(self, ev: ml.VFSHookEvent) -> None:
            pass

    h = Holder()
    sb = ws_sandbox().with_vfs_interception(ml.VFSInterceptionConfig(rules=[
        ml.VFSHookRule(phase="after", hook=h.hook)]))
    opts = sb.options()
    assert isinstance(opts.vfs_interception, ml.VFSInterceptionConfig)
    assert opts.vfs_interception.rules[0].hook == h.hook


# --------------------------------------------------------------------------
# network hooks (through matchlock-local's HTTP proxy)


def test_network_hook_changes_a_real_http_response(config: ml.Config, upstream: str) -> None:
    seen: list[ml.NetworkHookRequest] = []

    def rewrite(req: ml.NetworkHookRequest) -> ml.NetworkHookResult:
        seen.append(req)
        return ml.NetworkHookResult(
            action=ml.NETWORK_HOOK_ACTION_MUTATE,
            response=ml.NetworkHookResponseMutation(headers={"X-Hooked": ["1"], "Content-Type": ["text/plain"]},
                                                    set_body=b"body from the hook"))

    sb = net_sandbox(ml.NetworkHookRule(name="rw", phase=ml.NETWORK_HOOK_PHASE_AFTER, path="/rw*", hook=rewrite))
    with ml.Client(config) as c:
        c.create(sb, timeout=30)
        status, headers, body = curl(c, f"{upstream}/rw?a=1")
        assert status.endswith("200 OK") and body == "body from the hook"
        assert headers.get("x-hooked") == "1" and "x-upstream" not in headers
        req = seen[0]
        assert req.phase == "after" and req.method == "GET" and req.host == "127.0.0.1"
        assert req.path == "/rw" and req.query == {"a": "1"} and req.status_code == 200
        assert req.response_headers is not None and req.response_headers.get("X-Upstream") == ["yes"]
        # not matching the rule's path: untouched
        status, headers, body = curl(c, f"{upstream}/other")
        assert json.loads(body)["path"] == "/other" and headers.get("x-upstream") == "yes"
        assert len(seen) == 1


def test_network_hook_mutates_the_request_and_body_replacements(config: ml.Config, upstream: str) -> None:
    def before(req: ml.NetworkHookRequest) -> dict[str, Any]:
        headers = dict(req.request_headers or {})
        headers["X-Injected"] = ["by-hook"]
        return {"action": "mutate", "request": {"headers": headers, "query": {"q": "new"}, "path": "/rewritten"}}

    def after(req: ml.NetworkHookRequest) -> ml.NetworkHookResult:
        return ml.NetworkHookResult(response=ml.NetworkHookResponseMutation(
            body_replacements=[ml.NetworkBodyTransform(find="rewritten", replace="REWRITTEN")]))

    sb = net_sandbox(ml.NetworkHookRule(name="b", phase="before", hook=before),
                     ml.NetworkHookRule(name="a", phase="after", hook=after))
    with ml.Client(config) as c:
        c.create(sb, timeout=30)
        _, _, body = curl(c, f"{upstream}/orig?q=old")
        echoed = json.loads(body)
        assert echoed["path"] == "/REWRITTEN"  # rewritten before, then replaced in the body after
        assert echoed["query"] == {"q": "new"}
        assert echoed["headers"].get("X-Injected") == "by-hook"


def test_network_block_answer_stops_the_request(config: ml.Config, upstream: str) -> None:
    hits: list[str] = []

    async def deny(req: ml.NetworkHookRequest) -> ml.NetworkHookResult:
        await asyncio.sleep(0.01)  # an async hook answers later through the reply token
        hits.append(req.path)
        return ml.NetworkHookResult(action=ml.NETWORK_HOOK_ACTION_BLOCK)

    sb = net_sandbox(ml.NetworkHookRule(name="deny-admin", hosts=["127.0.0.1"], path="/admin*", hook=deny))
    with ml.Client(config) as c:
        c.create(sb, timeout=30)
        status, _, body = curl(c, f"{upstream}/admin")
        assert " 403 " in status and "deny-admin" in body and hits == ["/admin"]
        status, _, body = curl(c, f"{upstream}/public")
        assert status.endswith("200 OK") and json.loads(body)["path"] == "/public"


def test_network_hook_that_raises_gets_an_error_reply(config: ml.Config, upstream: str,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    def broken(req: ml.NetworkHookRequest) -> None:
        raise RuntimeError("network hook exploded")

    def wrong(req: ml.NetworkHookRequest) -> int:
        return 42

    sb = net_sandbox(ml.NetworkHookRule(name="broken", path="/b", hook=broken),
                     ml.NetworkHookRule(name="wrong", path="/w", hook=wrong))
    with caplog.at_level(logging.ERROR, logger="matchlock_native.hooks"), ml.Client(config) as c:
        c.create(sb, timeout=30)
        for path in ("/b", "/w"):
            status, _, body = curl(c, f"{upstream}{path}")
            # an error reply: the exchange proceeds unchanged
            assert status.endswith("200 OK") and json.loads(body)["path"] == path
        msgs = [str(e) for e in c.hook_errors]
        assert any("exploded" in m for m in msgs) and any("NetworkHookResult" in m for m in msgs)
        assert c.exec("echo alive").stdout == "alive\n"
    assert "network hook 'broken' raised RuntimeError" in caplog.text


def test_network_hook_timeout_drops_the_late_answer(config: ml.Config, upstream: str) -> None:
    done: list[bool] = []

    async def slow(req: ml.NetworkHookRequest) -> ml.NetworkHookResult:
        await asyncio.sleep(1.0)
        done.append(True)
        return ml.NetworkHookResult(action="block")

    sb = net_sandbox(ml.NetworkHookRule(name="slow", timeout_ms=200, hook=slow))
    with ml.Client(config) as c:
        c.create(sb, timeout=30)
        t0 = time.monotonic()
        status, _, body = curl(c, f"{upstream}/late")
        assert status.endswith("200 OK"), "past timeout_ms the server proceeds"
        assert time.monotonic() - t0 < 5
        assert wait_for(lambda: bool(done))  # the late answer is dropped safely
        assert c.exec("echo alive").stdout == "alive\n"


def test_async_client_network_hook(config: ml.Config, upstream: str) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        on_loop: list[bool] = []

        async def hook(req: ml.NetworkHookRequest) -> ml.NetworkHookResult:
            on_loop.append(asyncio.get_running_loop() is loop)
            await asyncio.sleep(0.01)
            return ml.NetworkHookResult(response=ml.NetworkHookResponseMutation(set_body="from asyncio"))

        sb = net_sandbox(ml.NetworkHookRule(phase="after", hook=hook))
        async with ml.AsyncClient(config) as c:
            await c.create(sb, timeout=30)
            r = await c.exec(f"curl -s --max-time 20 {upstream}/x")
            assert r.stdout == "from asyncio"
            assert on_loop == [True]

    asyncio.run(main())


# --------------------------------------------------------------------------
# events


def test_events_carry_network_and_file_activity(config: ml.Config, upstream: str) -> None:
    events: list[dict[str, Any]] = []
    sb = (ws_sandbox().allow_private_ips().with_network_interception()
          .with_vfs_interception(ml.VFSInterceptionConfig(emit_events=True)))
    with ml.Client(config) as c:
        c.on_event(events.append)
        c.create(sb, timeout=30)
        c.exec(f"curl -s --max-time 20 {upstream}/ev > /dev/null; echo x > /workspace/ev.txt")
        assert wait_for(lambda: {"network", "file"} <= {e.get("type") for e in events}), events
        net = next(e for e in events if e.get("type") == "network")
        assert "network" in net
        f = next(e for e in events if e.get("type") == "file")
        assert f["file"]["path"] == "/workspace/ev.txt"


def test_hooks_example_runs(local_binary: str) -> None:
    example = REPO / "examples" / "python" / "hooks.py"
    if not example.is_file():
        pytest.skip("examples/python/hooks.py is not in this tree")
    r = subprocess.run([sys.executable, str(example)], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "MATCHLOCK_BIN": local_binary})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "blocked: vfs hook blocked operation" in r.stdout
    assert "# written through matchlock" in r.stdout
    assert "body replaced by a Python hook" in r.stdout
    assert "blocked by network hook deny-admin" in r.stdout


# --------------------------------------------------------------------------
# encoding units (no server)


def test_network_reply_encoding() -> None:
    assert unpackb(_hooks.network_reply(None)) is None
    r = unpackb(_hooks.network_reply(ml.NetworkHookResult(
        action="mutate",
        request=ml.NetworkHookRequestMutation(headers={"A": ["1", "2"]}, query={"k": "v"}, path="/p"),
        response=ml.NetworkHookResponseMutation(headers={"B": ["3"]},
                                                body_replacements=[ml.NetworkBodyTransform("x", "y")],
                                                set_body="héllo"))))
    assert r == {"action": "mutate",
                 "request": {"headers": {"A": ["1", "2"]}, "query": {"k": "v"}, "path": "/p"},
                 "response": {"headers": {"B": ["3"]}, "body_replacements": [{"find": "x", "replace": "y"}],
                              "set_body": "héllo"}}
    d = unpackb(_hooks.network_reply({"response": {"set_body": b"\x00\xff", "headers": {"C": "one"}}}))
    assert d == {"response": {"set_body": b"\x00\xff", "headers": {"C": "one"}}}  # the core shapes it on the wire
    with pytest.raises(TypeError, match="expected NetworkHookResult or None"):
        _hooks.network_reply(42)
    with pytest.raises(TypeError, match="cannot hold a object"):
        _hooks.network_reply({"response": {"set_body": object()}})
    with pytest.raises(ValueError, match='unknown key "actoin"'):
        _hooks.network_reply({"actoin": "block"})
    with pytest.raises(ValueError, match="action"):
        _hooks.network_reply({"action": "explode"})
    assert unpackb(_hooks.vfs_reply(None)) is None
    assert unpackb(_hooks.vfs_reply(" Block ")) == " Block "  # the core reads it as block


def test_requests_decode_into_the_official_types() -> None:
    req = _hooks.network_request({"callback_id": "network_hook_1", "phase": "before", "host": "h", "method": "GET",
                                  "path": "/", "query": {"a": "b"}, "request_headers": {"X": ["1"]}})
    assert req == ml.NetworkHookRequest(phase="before", host="h", method="GET", path="/", query={"a": "b"},
                                        request_headers={"X": ["1"]})
    ev = _hooks.vfs_event({"op": "write", "path": "/w/a", "size": 3})
    assert ev == ml.VFSHookEvent(op="write", path="/w/a", size=3, mode=0, uid=0, gid=0)
    m = _hooks.vfs_mutate_request({"op": "write", "path": "/w/a", "size": 2, "mode": 420, "uid": 1, "gid": 2,
                                   "data": b"hi"})
    assert m == ml.VFSMutateRequest(path="/w/a", size=2, mode=420, uid=1, gid=2, data=b"hi")
