# bench/common.sh - sourced by bench/python/run.sh, bench/lua/run.sh and
# bench/node/run.sh: the Release build of `make bench` (build-bench/) for the
# shared canned peer, the floor client and bench_core, plus small helpers.
# Not a test.
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_BUILD=${BENCH_BUILD:-$repo/build-bench}
case "$BENCH_BUILD" in /*) ;; *) BENCH_BUILD="$repo/$BENCH_BUILD" ;; esac
JOBS=${JOBS:-2}
BENCH_REPS=${BENCH_REPS:-5}
BENCH_STREAM_BYTES=${BENCH_STREAM_BYTES:-268435456}

# bench_build [EXTRA_CMAKE_ARGS...] -- [EXTRA_TARGETS...]
bench_build() {
  local args=() targets=(canned_peer floor_client bench_core)
  while [ $# -gt 0 ] && [ "$1" != -- ]; do args+=("$1"); shift; done
  [ "${1:-}" = -- ] && shift
  targets+=("$@")
  echo "== cmake Release build in $BENCH_BUILD (${targets[*]})"
  cmake -S "$repo" -B "$BENCH_BUILD" -DCMAKE_BUILD_TYPE=Release -DMLK_BUILD_TESTS=OFF -DMLK_BUILD_LOCAL=OFF \
    "${args[@]}" >/dev/null
  cmake --build "$BENCH_BUILD" -j"$JOBS" --target "${targets[@]}" | grep -v '^\[' || true
  PEER=$BENCH_BUILD/bench/canned_peer
  FLOOR=$BENCH_BUILD/bench/floor_client
  CORE=$BENCH_BUILD/bench/bench_core
  for f in "$PEER" "$FLOOR" "$CORE"; do
    [ -x "$f" ] || { echo "bench: $f was not built" >&2; exit 1; }
  done
}

bench_header() {
  echo "== $1 against $PEER; $(nproc) CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%H:%M) UTC"
  echo "   reps $BENCH_REPS, stream $BENCH_STREAM_BYTES bytes per rep (BENCH_REPS, BENCH_STREAM_BYTES, BENCH_N)"
}

# bench_child NAME LABEL ARGV... : with BENCH_CHILDREN set (bench/all.sh), a
# run.sh only builds and then lists its clients there, one per line:
# NAME<TAB>LABEL<TAB>ARGV (tab-separated; {N} and {S} stand for the round
# trips and stream bytes per repetition), for bench/all.py to run.
bench_child() {
  local IFS=$'\t'
  printf '%s\n' "$*" >>"$BENCH_CHILDREN"
}
