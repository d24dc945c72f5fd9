#!/usr/bin/env bash
# Build the Node addon and run its node:test suites against matchlock-local.
#   node/run-tests.sh [BUILD_DIR]     (default <repo>/build, as `make build` makes it)
# Needs: node >= 20 and npm, a C/C++ compiler, libevent-dev and libmsgpack-dev
# (scripts/deps.sh installs node/apt-packages.txt); the Node-API headers come
# from the devDependencies (npm ci) and SWIG >= 4.2 from node/scripts/swig.sh.
# Exit status is non-zero when the build or any test fails.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
build=${1:-$repo/build}
case "$build" in /*) ;; *) build="$repo/$build" ;; esac

export MATCHLOCK_LOCAL_BIN=${MATCHLOCK_LOCAL_BIN:-$build/matchlock-local}
if [ ! -x "$MATCHLOCK_LOCAL_BIN" ]; then
  echo "run-tests.sh: $MATCHLOCK_LOCAL_BIN is missing; run 'make build' (or pass the build dir) first" >&2
  exit 1
fi
export MLK_VECTORS_DIR=${MLK_VECTORS_DIR:-$repo/tests/vectors}
# the hostile peer of test/hostile.test.js (tests/peer/hostile_peer.c; the file skips without it)
export MLK_HOSTILE_PEER=${MLK_HOSTILE_PEER:-$build/mlk_hostile_peer}
# a state directory of its own ($MLK_E2E_STATE_DIR from make test-e2e is kept)
if [ -n "${MLK_E2E_STATE_DIR:-}" ]; then
  state=$MLK_E2E_STATE_DIR
else
  state=$(mktemp -d "${TMPDIR:-/tmp}/mlk-node-state.XXXXXX")
  trap 'rm -rf "$state"' EXIT
fi
export XDG_STATE_HOME="$state" MLK_NODE_TEST_STATE="$state"

# npm ci when a dependency is missing or the lock file is newer than what
# node_modules was installed from
if [ ! -f "$here/node_modules/node-addon-api/napi.h" ] || [ ! -d "$here/node_modules/node-api-headers" ] ||
   [ ! -f "$here/node_modules/msgpackr/package.json" ] ||
   [ "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ]; then
  echo "=== npm ci (msgpackr, and the Node-API headers: devDependencies)"
  (cd "$here" && npm ci --no-audit --no-fund --ignore-scripts)
fi
echo "=== building the Node addon"
node "$here/scripts/build.js"
# MLK_E2E_ONLY=1: only the end-to-end files, against $MLK_E2E_SERVER (make
# test-e2e; the hooks file stays with matchlock-local)
tests=(test/)
[ "${MLK_E2E_ONLY:-0}" = 1 ] && tests=(test/client.test.js test/compat.test.js test/concurrency.test.js test/errors.test.js test/lifecycle.test.js)
echo "=== node --test (${MLK_E2E_SERVER:-$MATCHLOCK_LOCAL_BIN})"
cd "$here"
node --test --test-concurrency=2 "${tests[@]}"
