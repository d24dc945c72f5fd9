#!/usr/bin/env bash
# Python binding benchmark against the shared canned peer, side by side in
# one run with the floor (bench/floor_client.c), the C core (bench_core) and
# the official `matchlock` package from PyPI.  Not a test; prints numbers.
#
#   bench/python/run.sh            (or: make bench-bindings)
# Environment: BENCH_REPS (5), BENCH_N (round trips per rep, 10000),
# BENCH_STREAM_BYTES (per rep, 256 MiB), BENCH_BUILD (build-bench),
# PYTHON (python3), BENCH_REUSE_VENV=1 keeps an existing venv (./python is
# reinstalled into it all the same).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../common.sh"
bench_build

py=${PYTHON:-python3}
venv=$BENCH_BUILD/py-venv
if [ "${BENCH_REUSE_VENV:-0}" != 1 ] || [ ! -x "$venv/bin/python" ]; then
  echo "== fresh venv $venv ($("$py" --version 2>&1))"
  rm -rf "$venv"
  "$py" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
fi
echo "== pip install ./python (matchlock-native) and matchlock (official, PyPI)"
"$venv/bin/python" -m pip install -q --force-reinstall --no-deps "$repo/python"
"$venv/bin/python" -m pip install -q cffi msgpack   # the package's dependencies (python/pyproject.toml)
official=()
if ! "$venv/bin/python" -m pip install -q matchlock; then
  echo "(the official matchlock package could not be installed from PyPI: measured without it)"
  official=(--no-official)
fi

if [ -n "${BENCH_CHILDREN:-}" ]; then
  bench_child python "Python, matchlock_native" "$venv/bin/python" "$here/bench.py" --child native --peer "$PEER" \
    -n '{N}' --stream-bytes '{S}'
  if [ ${#official[@]} -eq 0 ]; then bench_child official-python "official Python SDK $("$venv/bin/python" -c \
    'from importlib.metadata import version; print(version("matchlock"))') (PyPI)" "$venv/bin/python" \
    "$here/bench.py" --child official --peer "$PEER" -n '{N}' --stream-bytes '{S}'; fi
  exit 0
fi
bench_header "Python"
cd "$BENCH_BUILD"   # not the repository: import the installed package, not python/
"$venv/bin/python" "$here/bench.py" --peer "$PEER" --floor "$FLOOR" --core "$CORE" --reps "$BENCH_REPS" \
  -n "${BENCH_N:-10000}" --stream-bytes "$BENCH_STREAM_BYTES" "${official[@]}"
