#!/usr/bin/env bash
# Every client against the one canned peer in one run (issue 15): the floor,
# the C core, Python (matchlock_native and the official SDK from PyPI), Lua
# 5.4 and LuaJIT, Node (and the official TypeScript SDK when npm has it).
# Each language's run.sh builds what it needs and lists its clients
# (BENCH_CHILDREN); bench/all.py then runs every client once per
# repetition, rotating the order, and prints medians and ratios to the floor.
# Not a test; prints numbers.
#
#   bench/all.sh [--no-keep-awake]  (or: make bench-bindings; see bench/all.py)
# Environment: BENCH_REPS (5), BENCH_N (round trips per rep, 10000),
# BENCH_STREAM_BYTES (per rep, 256 MiB), BENCH_BUILD (build-bench),
# BENCH_ONLY (space-separated languages: python lua node; default all),
# BENCH_REUSE_VENV=1 (see bench/python/run.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
BENCH_CHILDREN=$(mktemp "${TMPDIR:-/tmp}/mlk-bench-children.XXXXXX")
trap 'rm -f "$BENCH_CHILDREN"' EXIT
export BENCH_CHILDREN BENCH_BUILD
for lang in ${BENCH_ONLY:-python lua node}; do
  "$here/$lang/run.sh" || echo "(bench/$lang/run.sh failed: its clients are left out)"
done
bench_build -- bench_codec >/dev/null
bench_header "All clients"
python3 "$here/all.py" --peer "$PEER" --floor "$FLOOR" --core "$CORE" --reps "$BENCH_REPS" -n "${BENCH_N:-10000}" \
  --stream-bytes "$BENCH_STREAM_BYTES" --children "$BENCH_CHILDREN" "$@"
