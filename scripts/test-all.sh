#!/usr/bin/env bash
# Run every test suite; exit non-zero when any fails.
set -uo pipefail
build=${1:-build}
cd "$(dirname "$0")/.."
failed=0
passed=0

run() {
  local name=$1; shift
  echo "=== $name"
  if "$@"; then passed=$((passed + 1)); else echo "=== $name FAILED"; failed=$((failed + 1)); fi
}

run "C core (Criterion)" "$build/mlk_tests" -j2 --timeout 120
run "ABI check" ./scripts/abi-check.sh "$build"
run "install check" ./scripts/install-check.sh "$build"
run "Python (pytest)" env MATCHLOCK_LOCAL_BIN="$(cd "$build" && pwd)/matchlock-local" ./python/run-tests.sh
run "Node (node --test)" ./node/run-tests.sh "$build"
run "Lua (5.4 and LuaJIT)" ./lua/run-tests.sh "$build"

echo "suites: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
