#!/usr/bin/env python3
"""Python side of the binding benchmark (bench/python/run.sh builds and runs it).

Against the shared canned peer (bench/canned_peer.c), in one run, several
repetitions, rotating which goes first in each repetition:

  floor     bench/floor_client.c (a minimal blocking C client, no library):
            exec round trip, and the raw stream rate of the pipe (no parsing);
  core      bench_core --only as: blocking mlk_exec and a streamed exec to a C
            callback (the C core's own figures, for "where the time goes");
  native    matchlock_native (this repository, cffi): Client.exec("true") and
            Client.exec_stream(..., stdout=<bytes callback>);
  official  the official `matchlock` package from PyPI (when installed):
            Client.exec("true") and Client.exec_stream(..., stdout=<text writer>;
            it only writes decoded text);
  cffi-blocking, cffi-async   where the time goes: the same extension module
            as matchlock_native (so the same core build), called directly
            without the Client layer: blocking mlk_exec with the GIL released,
            and mlk_exec_async with poll + mlk_dispatch on the calling thread
            (no dispatcher thread).  Round trips only.

Prints every repetition, then medians, each binding's difference to the floor
(median of the per-repetition differences) and ratios, plus CPU time per
round trip of this process (all its threads; the peer not counted).  A
benchmark, not a test: nothing here fails on a missed target.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from typing import Any, Callable


def loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def grab(pattern: str, text: str, what: str) -> float:
    m = re.search(pattern, text)
    if not m:
        sys.exit(f"bench.py: could not find {what} in:\n{text}")
    return float(m.group(1))


# ---------------------------------------------------------------- C programs

def run_floor(a: argparse.Namespace) -> dict[str, float]:
    out = subprocess.run([a.floor, a.peer, str(a.n), "1", str(a.stream_bytes)], check=True,
                         capture_output=True, text=True).stdout
    return {"rt": grab(r"floor median: ([\d.]+) us", out, "the floor's round trip"),
            "gbps": grab(r"floor stream median: ([\d.]+) GB/s", out, "the floor's stream rate")}


def run_core(a: argparse.Namespace) -> dict[str, float]:
    out = subprocess.run([a.core, "--peer", a.peer, "--only", "as", "--reps", "1",
                          "--stream-bytes", str(a.stream_bytes)], check=True, capture_output=True, text=True).stdout
    return {"rt": grab(r"median: floor [\d.]+ us, mlk_exec ([\d.]+) us", out, "mlk_exec's round trip"),
            "cpu": grab(r"CPU of this process.*mlk_exec ([\d.]+) us", out, "mlk_exec's CPU"),
            "gbps": grab(r"stream median: ([\d.]+) GB/s", out, "the core's stream rate")}


# ---------------------------------------------------------------- Python clients

class Counter:
    """A text writer for the official package (it writes decoded str)."""

    def __init__(self) -> None:
        self.n = 0

    def write(self, s: str) -> int:
        self.n += len(s)
        return len(s)

    def flush(self) -> None:
        pass


class Bench:
    def __init__(self, name: str, mod: Any, a: argparse.Namespace) -> None:
        self.name = name
        self.mod = mod
        self.a = a
        self.c = mod.Client(mod.Config(binary_path=a.peer))
        self.c.start()
        self.c.create(mod.CreateOptions(image="alpine:latest"))
        r = self.c.exec("true")
        if r.exit_code != 0 or r.stdout != "ok\n":
            sys.exit(f"bench.py: {name}: unexpected exec result {r!r}")
        self.roundtrips(max(500, a.n // 5))  # warm up
        self.stream(64 << 20)

    def roundtrips(self, n: int) -> tuple[float, float]:
        ex = self.c.exec
        c0 = cpu_s()
        t0 = time.perf_counter()
        for _ in range(n):
            ex("true")
        t = time.perf_counter() - t0
        return t * 1e6 / n, (cpu_s() - c0) * 1e6 / n

    def stream(self, nbytes: int) -> float:
        cmd = f"stream {nbytes} 65536"
        if self.name == "native":
            got = [0]

            def on_bytes(b: bytes) -> None:
                got[0] += len(b)

            t0 = time.perf_counter()
            self.c.exec_stream(cmd, stdout=on_bytes)
            t = time.perf_counter() - t0
            if got[0] != nbytes:
                sys.exit(f"bench.py: native stream delivered {got[0]} bytes, expected {nbytes}")
        else:
            w = Counter()
            t0 = time.perf_counter()
            self.c.exec_stream(cmd, stdout=w)
            t = time.perf_counter() - t0
            if w.n == 0:
                sys.exit("bench.py: the official package's stream delivered nothing")
        return nbytes / t / 1e9  # decoded bytes sent by the peer per second

    def close(self) -> None:
        self.c.close()


class RawBench:
    """The extension's C functions without the Client layer (round trips only)."""

    def __init__(self, name: str, a: argparse.Namespace) -> None:
        import select

        import matchlock_native
        from matchlock_native._native import ffi, lib

        self.name = name
        self.c = matchlock_native.Client(matchlock_native.Config(binary_path=a.peer))
        self.c.start()
        self.c.create(matchlock_native.CreateOptions(image="alpine:latest"))
        ptr = self.c._core.ptr
        if name == "cffi-blocking":
            pres = ffi.new("mlk_result **")
            exec_, free = lib.mlk_exec, lib.mlk_result_free

            def one() -> None:
                exec_(ptr, b"true", ffi.NULL, pres)
                free(pres[0])
        else:
            done = [0]

            @ffi.callback("void(void *, uint64_t, const mlk_result *)")
            def on_done(ud: Any, op: Any, res: Any) -> None:
                done[0] += 1

            self._keep = on_done
            pop = ffi.new("uint64_t *")
            po = select.poll()
            po.register(lib.mlk_client_fd(ptr), select.POLLIN)
            exec_async, dispatch = lib.mlk_exec_async, lib.mlk_dispatch

            def one() -> None:
                d = done[0]
                if exec_async(ptr, b"true", ffi.NULL, on_done, ffi.NULL, pop) != 0:
                    sys.exit("bench.py: mlk_exec_async failed")
                while done[0] == d:
                    po.poll()
                    dispatch(ptr, 0)
        self.one = one
        self.roundtrips(max(500, a.n // 5))

    def roundtrips(self, n: int) -> tuple[float, float]:
        one = self.one
        c0 = cpu_s()
        t0 = time.perf_counter()
        for _ in range(n):
            one()
        t = time.perf_counter() - t0
        return t * 1e6 / n, (cpu_s() - c0) * 1e6 / n

    def stream(self, nbytes: int) -> None:
        return None

    def close(self) -> None:
        self.c.close()


def child(a: argparse.Namespace) -> None:
    """One measurement of one client for bench/all.py: rt= cpu= gbps= on one line."""
    if a.child == "native":
        import matchlock_native as mod
    else:
        import matchlock as mod  # type: ignore[no-redef]
    b = Bench(a.child, mod, a)
    us, c = b.roundtrips(a.n)
    g = b.stream(a.stream_bytes)
    b.close()
    print(f"rt={us:.3f} cpu={c:.3f} gbps={g:.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peer", required=True)
    ap.add_argument("--child", choices=("native", "official"),
                    help="measure one client once and print rt= cpu= gbps= (for bench/all.py)")
    ap.add_argument("--floor")
    ap.add_argument("--core", help="bench_core")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("-n", type=int, default=10000, help="round trips per repetition")
    ap.add_argument("--stream-bytes", type=int, default=256 << 20)
    ap.add_argument("--no-official", action="store_true")
    ap.add_argument("--no-raw", action="store_true", help="leave out the cffi-blocking / cffi-async rows")
    a = ap.parse_args()
    if a.child:
        child(a)
        return
    if not a.floor or not a.core:
        ap.error("--floor and --core are required (unless --child)")

    import matchlock_native

    print(f"python {sys.version.split()[0]}; matchlock_native {getattr(matchlock_native, '__version__', '?')} "
          f"(core {matchlock_native._core.CORE_VERSION_STR}); {os.cpu_count()} CPUs; load average {loadavg()}")
    benches: dict[str, Any] = {"native": Bench("native", matchlock_native, a)}
    if not a.no_official:
        try:
            import matchlock
            from importlib.metadata import version
            print(f"official matchlock {version('matchlock')} (PyPI)")
            benches["official"] = Bench("official", matchlock, a)
        except ImportError:
            print("official matchlock package not installed: skipped")
    if not a.no_raw:
        for k in ("cffi-blocking", "cffi-async"):
            benches[k] = RawBench(k, a)
    print(f"{a.reps} reps of {a.n} exec round trips and one {a.stream_bytes >> 20} MiB stream (64 KiB chunks) each; "
          "the order rotates every rep\n")

    names = ["floor", "core", *benches]
    rt: dict[str, list[float]] = {k: [] for k in names}
    cpu: dict[str, list[float]] = {k: [] for k in names}
    gb: dict[str, list[float]] = {k: [] for k in names}
    for i in range(a.reps):
        order = names[i % len(names):] + names[:i % len(names)]
        for k in order:
            if k == "floor":
                f = run_floor(a)
                rt[k].append(f["rt"])
                gb[k].append(f["gbps"])
            elif k == "core":
                f = run_core(a)
                rt[k].append(f["rt"])
                cpu[k].append(f["cpu"])
                gb[k].append(f["gbps"])
            else:
                us, c = benches[k].roundtrips(a.n)
                rt[k].append(us)
                cpu[k].append(c)
                g = benches[k].stream(a.stream_bytes)
                if g is not None:
                    gb[k].append(g)
        print(f"rep {i + 1} (load {loadavg()}): " + "  ".join(
            f"{k} {rt[k][-1]:.2f} us" + (f" {gb[k][-1]:.2f} GB/s" if gb[k] else "") for k in names))
    for b in benches.values():
        b.close()

    med = statistics.median
    fl = med(rt["floor"])
    label = {"floor": "floor (floor_client)", "core": "C core (mlk_exec)", "native": "matchlock_native",
             "official": "matchlock (PyPI)", "cffi-blocking": "cffi mlk_exec", "cffi-async": "cffi async+own dispatch"}
    print(f"\nmedians of {a.reps} reps, load average {loadavg()} at the end")
    print(f"{'':24} {'round trip':>11} {'- floor':>9} {'/ floor':>8} {'- core':>8} {'CPU/rt':>8} "
          f"{'stream':>10} {'/ floor':>8}")
    for k in names:
        diff = med([x - y for x, y in zip(rt[k], rt["floor"])])
        dcore = med([x - y for x, y in zip(rt[k], rt["core"])])
        c = f"{med(cpu[k]):.2f}" if cpu[k] else "-"
        st = f"{med(gb[k]):5.2f} GB/s {med(gb[k]) / med(gb['floor']):7.2f}x" if gb[k] else f"{'-':>10} {'-':>8}"
        print(f"{label[k]:24} {med(rt[k]):8.2f} us {diff:+7.2f} {med(rt[k]) / fl:7.2f}x {dcore:+8.2f} {c:>8} {st}")
    nat = med([x - y for x, y in zip(rt["native"], rt["floor"])])
    sg = med(gb["native"])
    print(f"\ntargets (issue 5): exec round trip <= 15 us over the floor: {nat:+.2f} us -> "
          f"{'met' if nat <= 15 else 'MISSED'}; streamed stdout to a bytes callback >= 0.6 GB/s: {sg:.2f} GB/s -> "
          f"{'met' if sg >= 0.6 else 'MISSED'}")
    print("(round trip: us per call; '- floor' and '- core': median of the per-rep differences; CPU/rt: CPU us of "
          "the measuring process per round trip, all threads, peer excluded; stream: decoded GB/s, the floor's "
          "is the raw pipe without parsing)")


if __name__ == "__main__":
    main()
