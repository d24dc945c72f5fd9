"""msgpack codecs on the documents that cross the ABI (bench/msgpack/messages.json):
the project's former hand-written codec against the `msgpack` package.
Prints ns per encode and decode.
   git show 4b77200:python/matchlock_native/_msgpack.py > /tmp/ours.py
   python bench/msgpack/bench.py /tmp/ours.py     (in a venv with msgpack)"""
import importlib.util, json, os, sys, time

import msgpack

here = os.path.dirname(os.path.abspath(__file__))
msgs = json.load(open(os.path.join(here, "messages.json")))
msgs["file_listing"] = msgs["file_listing"] * 25   # a 50-entry directory
ours = None
if len(sys.argv) > 1:
    spec = importlib.util.spec_from_file_location("ours", sys.argv[1])
    ours = importlib.util.module_from_spec(spec); spec.loader.exec_module(ours)

def per_call(fn, arg, budget=0.3):
    n, t0 = 0, time.perf_counter()
    while True:
        for _ in range(200):
            fn(arg)
        n += 200
        dt = time.perf_counter() - t0
        if dt > budget:
            return dt / n * 1e9

libs = [("msgpack", lambda o: msgpack.packb(o, use_bin_type=True), lambda b: msgpack.unpackb(b, raw=False, strict_map_key=False))]
if ours:
    libs.insert(0, ("hand-written", ours.packb, ours.unpackb))
print(f"{'message':24} {'bytes':>6} " + " ".join(f"{n + ' enc':>18} {n + ' dec':>18}" for n, _, _ in libs))
for name, m in msgs.items():
    enc = libs[-1][1](m)
    row = [per_call(e, m) for _, e, _ in libs], [per_call(d, enc) for _, _, d in libs]
    print(f"{name:24} {len(enc):6d} " + " ".join(f"{e:16.0f}ns {d:16.0f}ns" for e, d in zip(*row)))
