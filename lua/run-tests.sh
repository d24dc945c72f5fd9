#!/usr/bin/env bash
# Build the Lua module and run the Lua tests under Lua 5.4 and LuaJIT against
# the real matchlock-local.
#
#   lua/run-tests.sh [BUILD_DIR]     (default <repo>/build; needs libmatchlock
#                                     and matchlock-local built there)
#   MLK_TEST_FILTER=substring        run only matching tests
#   MLK_TEST_VERBOSE=1               print every test
# Exits non-zero when anything fails under either interpreter.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
build=$(cd "${1:-$repo/build}" && pwd) || { echo "run-tests.sh: no build directory ${1:-$repo/build}" >&2; exit 1; }

"$here/build.sh" "$build" || exit 1

export MATCHLOCK_LOCAL_BIN=${MATCHLOCK_LOCAL_BIN:-$build/matchlock-local}
[ -x "$MATCHLOCK_LOCAL_BIN" ] || { echo "run-tests.sh: $MATCHLOCK_LOCAL_BIN is missing; build matchlock-local first (make build)" >&2; exit 1; }
export MLK_VECTORS_DIR=${MLK_VECTORS_DIR:-$repo/tests/vectors}
export MLK_REPO=$repo
# The vectors assume a host with more CPUs than CI machines have.
export MATCHLOCK_HOST_CPUS=${MATCHLOCK_HOST_CPUS:-64}
# a state directory of its own ($MLK_E2E_STATE_DIR from make test-e2e is kept)
if [ -n "${MLK_E2E_STATE_DIR:-}" ]; then
  state=$MLK_E2E_STATE_DIR
else
  state=$(mktemp -d)
  trap 'rm -rf "$state"' EXIT
fi
export XDG_STATE_HOME=$state

# the embedding host (examples/lua/host.c), once per interpreter
host_cflags=(-O2 -g -Wall -I"$repo/abi/include")
cc "${host_cflags[@]}" $(pkg-config --cflags lua5.4) -o "$build/lua/host-5.4" "$repo/examples/lua/host.c" \
  $(pkg-config --libs lua5.4) -Wl,-E || exit 1
cc "${host_cflags[@]}" $(pkg-config --cflags luajit) -o "$build/lua/host-jit" "$repo/examples/lua/host.c" \
  $(pkg-config --libs luajit) -Wl,-E || exit 1

# MLK_E2E_ONLY=1: only the end-to-end files, against $MLK_E2E_SERVER (make
# test-e2e; the hooks file stays with matchlock-local)
files=()
[ "${MLK_E2E_ONLY:-0}" = 1 ] && files=("$here"/tests/test_{client,async,errors,host}.lua)
rc=0
for flavour in 5.4 jit; do
  case $flavour in 5.4) lua=lua5.4 ;; jit) lua=luajit ;; esac
  echo "== $lua"
  LUA_PATH="$here/?.lua;$here/tests/?.lua;;" \
  LUA_CPATH="$build/lua/$flavour/?.so;;" \
  MLK_LUA_HOST="$build/lua/host-$flavour" \
    "$lua" "$here/tests/runner.lua" "${files[@]}" || rc=1
done
exit $rc
