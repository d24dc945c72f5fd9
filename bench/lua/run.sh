#!/usr/bin/env bash
# Lua binding benchmark against the shared canned peer, side by side in one
# run: the floor (bench/floor_client.c), the C core (bench_core) and the Lua
# module under Lua 5.4 and LuaJIT.  Not a test; prints numbers.
#
#   bench/lua/run.sh               (or: make bench-bindings)
# Environment: BENCH_REPS (5), BENCH_N (round trips per rep, 20000),
# BENCH_STREAM_BYTES (per rep, 256 MiB), BENCH_BUILD (build-bench).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../common.sh"
# the Lua modules come from the same CMake tree (lua/CMakeLists.txt)
bench_build -DMLK_BUILD_LUA=ON -- matchlock_lua_5.4 matchlock_lua_jit

interps=()
for flavour in 5.4 jit; do
  case $flavour in 5.4) lua=lua5.4 pc=lua5.4 ;; jit) lua=luajit pc=luajit ;; esac
  so=$BENCH_BUILD/lua/$flavour/matchlock/core.so
  if [ ! -e "$so" ] || ! command -v "$lua" >/dev/null; then
    echo "(no $lua or no $so: skipped; apt packages in lua/apt-packages.txt)"
    continue
  fi
  # a monotonic clock for the timings: neither interpreter has one
  mkdir -p "$BENCH_BUILD/lua/bench-$flavour"
  clk=$BENCH_BUILD/lua/bench-$flavour/benchclock.so
  if [ ! -e "$clk" ] || [ "$here/clock.c" -nt "$clk" ]; then
    cc -O2 -shared -fPIC $(pkg-config --cflags "$pc") -o "$clk" "$here/clock.c"
  fi
  interps+=("$lua=$BENCH_BUILD/lua/$flavour/?.so;$BENCH_BUILD/lua/bench-$flavour/?.so")
done
[ ${#interps[@]} -gt 0 ] || { echo "bench/lua: no Lua interpreter with a built module" >&2; exit 1; }
command -v lua5.4 >/dev/null || { echo "bench/lua: the orchestrator needs lua5.4" >&2; exit 1; }

if [ -n "${BENCH_CHILDREN:-}" ]; then
  for spec in "${interps[@]}"; do
    bench_child "${spec%%=*}" "Lua binding, ${spec%%=*}" env "LUA_PATH=$repo/lua/?.lua;;" "LUA_CPATH=${spec#*=}" "${spec%%=*}" "$here/bench.lua" \
      --child "$PEER" '{N}' '{S}'
  done
  exit 0
fi
bench_header "Lua ($(lua5.4 -v 2>&1 | head -1); $(luajit -v 2>&1 | head -1))"
LUA_PATH="$repo/lua/?.lua;;" lua5.4 "$here/bench.lua" "$PEER" "$FLOOR" "$CORE" "$BENCH_REPS" "${BENCH_N:-20000}" \
  "$BENCH_STREAM_BYTES" "${interps[@]}"
