#!/usr/bin/env python3
"""The Python layer alone: Client.exec("true") with its two C calls stubbed,
against a hand-written minimum of the same work (docs/benchmarks.md).

    layer.py PEER [N]

PEER is bench/canned_peer (one real exec gives the result the stub hands
back).  The stub replaces mlk_exec_async and mlk_dispatch_wait in
matchlock_native.client with Python that completes the call at once
through the extension's own completion callback, so what is timed is the
interpreter's work per call: the plan, the token, the call's _Op, the
result's fields, ExecResult and its two decodes.  Three rounds, the two
alternating.  A benchmark, not a test.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import matchlock_native
import matchlock_native._core as core
import matchlock_native.client as client_mod
from matchlock_native._native import ffi, lib
from matchlock_native.types import ExecResult


def main() -> None:
    peer = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
    c = matchlock_native.Client(matchlock_native.Config(binary_path=peer))
    c.start()
    c.create(matchlock_native.CreateOptions(image="alpine:latest"))
    pres = ffi.new("mlk_result **")
    if lib.mlk_exec(c._core.ptr, b"true", ffi.NULL, pres) != 0:
        sys.exit("layer.py: the real exec failed")
    fields = ffi.new("mlk_py_fields *")
    lib.mlk_py_result_fields(pres[0], fields)
    pending: list[Any] = []

    class Stub:
        """lib, with the two calls of a round trip done in Python."""

        def __getattr__(self, name: str) -> Any:
            return getattr(lib, name)

        def mlk_exec_async(self, ptr: Any, cmd: Any, opts: Any, cb: Any, ud: Any, pop: Any) -> int:
            pop[0] = 7
            pending.append(ud)
            return 0

        def mlk_dispatch_wait(self, ptr: Any, ms: int) -> int:
            while pending:
                core._mlk_py_done_fields(pending.pop(), 7, fields)
            return 1

    stub = Stub()
    client_mod.lib = stub

    def minimal(command: str) -> ExecResult:
        k = c._core
        if not k.take():
            raise RuntimeError("the client's token is taken")
        try:
            op = core._Op(k)
            pop = ffi.new("uint64_t *")
            stub.mlk_exec_async(k.ptr, command.encode(), ffi.NULL, lib.mlk_py_done, op.handle, pop)
            while not op.done:
                stub.mlk_dispatch_wait(k.ptr, 250)
        finally:
            k.give()
        out = op.result()
        return ExecResult(exit_code=out.exit_code, stdout=out.stdout.decode("utf-8", "replace"),
                          stderr=out.stderr.decode("utf-8", "replace"), duration_ms=out.duration_ms,
                          stdout_bytes=out.stdout, stderr_bytes=out.stderr)

    for _ in range(3):
        t0 = time.perf_counter_ns()
        for _ in range(n):
            c.exec("true")
        t1 = time.perf_counter_ns()
        for _ in range(n):
            minimal("true")
        t2 = time.perf_counter_ns()
        print(f"Client.exec {(t1 - t0) / n / 1000:.2f} us per call, minimal {(t2 - t1) / n / 1000:.2f} us")
    client_mod.lib = lib
    lib.mlk_result_free(pres[0])
    c.close()


if __name__ == "__main__":
    main()
