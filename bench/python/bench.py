#!/usr/bin/env python3
"""Exec round trip and streamed-stdout throughput of matchlock_native and
(when installed) the official `matchlock` package against the canned peer
($MATCHLOCK_BIN).  Prints `name exec_us stream_gbps` lines."""

from __future__ import annotations

import os
import sys
import time
from typing import Any


def measure(mod: Any, name: str, n: int) -> None:
    c = mod.Client(mod.Config(binary_path=os.environ["MATCHLOCK_BIN"]))
    c.start()
    c.create(mod.CreateOptions(image="bench"))
    for _ in range(500):
        c.exec("true")
    t = time.perf_counter()
    for _ in range(n):
        c.exec("true")
    exec_us = (time.perf_counter() - t) / n * 1e6
    got = [0]

    if name == "matchlock_native":
        def sink(b: bytes) -> None:
            got[0] += len(b)
    else:  # the official package writes decoded text to a writer
        class Sink:
            def write(self, s: str) -> None:
                got[0] += len(s)

            def flush(self) -> None:
                pass
        sink = Sink()  # type: ignore[assignment]
    t = time.perf_counter()
    c.exec_stream("stream", stdout=sink)
    gbps = got[0] / (time.perf_counter() - t) / 1e9
    c.close()
    print(f"{name:18} exec_us {exec_us:8.2f}  stream_gbps {gbps:6.3f}  (streamed {got[0] >> 20} MiB)")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    import matchlock_native

    measure(matchlock_native, "matchlock_native", n)
    try:
        import matchlock  # the official SDK from PyPI
    except ImportError:
        print("official matchlock package not installed; skipped")
        return
    measure(matchlock, "matchlock (PyPI)", n)


if __name__ == "__main__":
    main()
