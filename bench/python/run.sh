#!/usr/bin/env bash
# Side-by-side benchmark against one canned peer: the C floor (a minimal
# blocking libmatchlock client), matchlock_native, and the official
# `matchlock` package from PyPI.  Not a test; prints numbers.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=$(mktemp -d "${TMPDIR:-/tmp}/mlk-bench.XXXXXX")
trap 'rm -rf "$out"' EXIT
cc -O2 -o "$out/peer" "$here/peer.c"
cc -O2 -DMLK_BUILDING -D_GNU_SOURCE -I"$repo/abi/include" -I"$repo/core" -o "$out/c_client" \
  "$here/c_client.c" "$repo"/core/*.c $(pkg-config --libs libevent_core libevent_pthreads msgpack) -lpthread -lm
python3 -m venv "$out/venv"
"$out/venv/bin/pip" install -q "$repo/python"
"$out/venv/bin/pip" install -q matchlock || echo "(could not install the official matchlock package)"
export MATCHLOCK_BIN="$out/peer"
echo "== C floor"
"$out/c_client" "${N_C:-20000}"
echo "== Python"
"$out/venv/bin/python" "$here/bench.py" "${N_PY:-5000}"
