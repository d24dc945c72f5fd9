"""AsyncClient: the same methods as coroutines on the running loop."""

from __future__ import annotations

import asyncio
import io
import time
from typing import Any, AsyncIterator

import pytest

import matchlock_native as ml


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_async_lifecycle_exec_files(config: ml.Config) -> None:
    async def main() -> None:
        async with ml.AsyncClient(config) as c:
            vm = await c.launch(ml.Sandbox("alpine:latest"))
            assert c.vm_id == vm
            r = await c.exec("echo hi; exit 4")
            assert (r.exit_code, r.stdout) == (4, "hi\n")
            await c.write_file("/tmp/a", b"data", mode=0o600)
            assert await c.read_file("/tmp/a") == b"data"
            names = [f.name for f in await c.list_files("/tmp")]
            assert "a" in names
            assert vm in await c.log()
            b = await c.port_forward("18090:80")
            assert b[0].local_port == 18090
            with pytest.raises(ml.RPCError):
                await c.read_file("/nope/nope")
        await c.remove()

    run(main())


def test_async_streams(config: ml.Config) -> None:
    async def main() -> None:
        async with ml.AsyncClient(config) as c:
            await c.create(ml.Sandbox("alpine:latest"))
            out, err = io.BytesIO(), io.StringIO()
            r = await c.exec_stream("printf o; printf e >&2", stdout=out, stderr=err)
            assert r.exit_code == 0 and out.getvalue() == b"o" and err.getvalue() == "e"

            async def gen() -> AsyncIterator[bytes]:
                for part in (b"a", b"b", b"c"):
                    await asyncio.sleep(0.01)
                    yield part

            out = io.BytesIO()
            await c.exec_pipe("cat", stdin=gen(), stdout=out)
            assert out.getvalue() == b"abc"
            out = io.BytesIO()
            await c.exec_pipe("cat", stdin=b"up front", stdout=out)
            assert out.getvalue() == b"up front"
            out = io.BytesIO()
            await c.exec_pipe("cat", stdin=io.BytesIO(b"file-like"), stdout=out)
            assert out.getvalue() == b"file-like"
            out = io.BytesIO()
            r2 = await c.exec_interactive("stty size", stdout=out, rows=20, cols=70)
            assert r2.exit_code == 0 and b"20 70" in out.getvalue()
            with pytest.raises(ml.MatchlockTimeoutError):
                await c.log_stream(io.StringIO(), timeout=0.3)

    run(main())


def test_async_concurrency(config: ml.Config) -> None:
    async def main() -> None:
        async with ml.AsyncClient(config) as c:
            await c.create(ml.Sandbox("alpine:latest"))
            rs = await asyncio.gather(*(c.exec(f"echo {i}") for i in range(30)))
            assert [r.stdout for r in rs] == [f"{i}\n" for i in range(30)]
            await asyncio.gather(*(c.write_file(f"/tmp/f{i}", str(i)) for i in range(20)))
            got = await asyncio.gather(*(c.read_file(f"/tmp/f{i}") for i in range(20)))
            assert got == [str(i).encode() for i in range(20)]

    run(main())


def test_async_timeout_and_task_cancel(config: ml.Config) -> None:
    async def main() -> None:
        async with ml.AsyncClient(config) as c:
            await c.create(ml.Sandbox("alpine:latest"))
            t = time.monotonic()
            with pytest.raises(ml.MatchlockTimeoutError):
                await c.exec("sleep 5", timeout=0.3)
            assert time.monotonic() - t < 2
            task = asyncio.ensure_future(c.exec("sleep 10"))
            await asyncio.sleep(0.3)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(c.exec("sleep 10"), 0.3)
            assert (await c.exec("echo alive")).stdout == "alive\n"

    run(main())


def test_async_callback_error_and_bad_options(config: ml.Config) -> None:
    async def main() -> None:
        async with ml.AsyncClient(config) as c:
            with pytest.raises(ml.ImageRequiredError):
                await c.create(ml.Sandbox(""))
            await c.create(ml.Sandbox("alpine:latest").with_network_interception())

            def boom(b: bytes) -> None:
                raise RuntimeError("async callback failed")

            with pytest.raises(RuntimeError, match="async callback failed"):
                await c.exec_stream("echo x; sleep 5", stdout=boom)
            assert (await c.exec("echo ok")).stdout == "ok\n"
            v = await c.volume_create("apyvol", 16)
            assert v.name in [x.name for x in await c.volume_list()]
            await c.volume_remove("apyvol")
            u = await c.allow_list_add("x.example.com")
            assert "x.example.com" in u.allowed_hosts
            u = await c.allow_list_delete("x.example.com")
            assert u.removed == ["x.example.com"]
        with pytest.raises(ml.ClosedError):
            await c.exec("true")

    run(main())


def test_async_dead_server(tmp_path: Any) -> None:
    p = tmp_path / "fake"
    p.write_text("#!/bin/sh\necho 'no server here' >&2\nexit 2\n")
    p.chmod(0o755)

    async def main() -> None:
        c = ml.AsyncClient(ml.Config(binary_path=str(p)))
        await c.start()
        with pytest.raises(ml.ServerDiedError, match="no server here"):
            await c.create(ml.Sandbox("alpine:latest"), timeout=5)
        await c.close()

    run(main())
