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
run "build recipe (core/build.json) followed by CMake, Python, Node and the Lua rock" ./scripts/check-build-recipe.py "$build"
run "ABI check" ./scripts/abi-check.sh "$build"
run "ABI check self-test (changed, removed, added)" ./scripts/abi-check-selftest.sh
run "install check" ./scripts/install-check.sh "$build"
work=$(mktemp -d "${TMPDIR:-/tmp}/mlk-test-all.XXXXXX")
trap 'rm -rf "$work"' EXIT
run "Python (pytest)" env MATCHLOCK_LOCAL_BIN="$(cd "$build" && pwd)/matchlock-local" MLK_PY_VENV="$work/venv" \
  ./python/run-tests.sh
run "Node (node --test)" ./node/run-tests.sh "$build"
run "Lua (5.4 and LuaJIT)" ./lua/run-tests.sh "$build"
run "packages installed from their artifacts" ./scripts/test-packages.sh "$build"

# The end-to-end suites once more, the way a user runs them against their
# own server (make test-e2e, docs/testing.md): against a copy of
# matchlock-local under another name, so that nothing keys on the name.
# Python reuses the venv of the first run.
other="$work/other-server"
mkdir -p "$other"
cp "$build/matchlock-local" "$other/mlk-e2e-server" && cp "$build/matchlock-local-init" "$other/"
run "end-to-end suites against a renamed matchlock-local (make test-e2e)" \
  env MLK_PY_VENV="$work/venv" make -s test-e2e BUILD="$build" MATCHLOCK_BIN="$other/mlk-e2e-server"

# The C suite again under AddressSanitizer + UBSan, and the libFuzzer targets
# for a bounded time (docs/testing.md); each has a build tree of its own.
asan_build() {
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DMLK_SANITIZE=address,undefined >/dev/null &&
    cmake --build build-asan -j2 --target mlk_tests matchlock-local >/dev/null
}
run "C core under ASan+UBSan" bash -c "$(declare -f asan_build); asan_build && ./scripts/test-asan.sh build-asan"
run "libFuzzer targets (25 s each)" ./scripts/fuzz.sh "${MLK_FUZZ_SECONDS:-25}"

# The macOS paths of core/platform.c on Linux: a build with every POSIX
# fallback forced (MLK_FORCE_PORTABLE), and the C suite with its hostile-peer
# tests on it; then the macOS build itself, cross-compiled and linked for
# aarch64 and x86_64 with Zig (docs/testing.md says what that proves).
portable_build() {
  cmake -S . -B build-portable -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMLK_FORCE_PORTABLE=ON -DMLK_BUILD_LUA=OFF >/dev/null &&
    cmake --build build-portable -j2 --target mlk_tests matchlock-local mlk_hostile_peer >/dev/null
}
run "C core with the portable fallbacks (MLK_FORCE_PORTABLE)" \
  bash -c "$(declare -f portable_build); portable_build && build-portable/mlk_tests -j2 --timeout 120"
run "macOS cross-compile and link (aarch64, x86_64)" ./scripts/check-macos.sh build-macos

echo "suites: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
