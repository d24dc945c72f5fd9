#!/usr/bin/env bash
# Test the Python package the way a user gets it: a fresh virtual
# environment, `pip install ./python` (which compiles the C core into the
# cffi extension) plus pytest from PyPI, then pytest against the real
# matchlock-local.  Exit code = pytest's.
#
#   python/run-tests.sh [pytest args...]
#
# Environment: PYTHON (default python3), MLK_E2E_SERVER (the server of the
# end-to-end tests; default $MATCHLOCK_LOCAL_BIN, else
# <repo>/build/matchlock-local, built with CMake when missing), MLK_E2E_ONLY=1
# (only the end-to-end tests),
# MLK_VECTORS_DIR (default <repo>/tests/vectors), KEEP_VENV=1 keeps
# the venv and prints its path, MLK_PY_VENV=DIR makes (or reuses) and keeps
# the venv in DIR.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
py=${PYTHON:-python3}

if [ -z "${MATCHLOCK_LOCAL_BIN:-}" ]; then
  export MATCHLOCK_LOCAL_BIN="$repo/build/matchlock-local"
  if [ ! -x "$MATCHLOCK_LOCAL_BIN" ]; then
    echo "== building matchlock-local (cmake, $repo/build)"
    cmake -S "$repo" -B "$repo/build" >/dev/null
    cmake --build "$repo/build" -j"${JOBS:-2}" --target matchlock-local
  fi
fi

# MLK_PY_VENV=DIR: make the venv there and keep it; a later run with the
# same DIR tests what is installed there (make test's second run does).
if [ -n "${MLK_PY_VENV:-}" ]; then
  venv=$MLK_PY_VENV
  cleanup() { :; }
else
  venv=$(mktemp -d "${TMPDIR:-/tmp}/mlk-py-venv.XXXXXX")
  cleanup() { [ "${KEEP_VENV:-0}" = 1 ] && echo "venv kept: $venv" || rm -rf "$venv"; }
fi
trap cleanup EXIT

if [ -x "$venv/bin/pytest" ]; then
  echo "== the venv of an earlier run: $venv"
else
  echo "== fresh venv: $venv ($("$py" --version 2>&1))"
  if ! "$py" -m venv "$venv"; then
    echo "error: '$py -m venv' failed; install python3-venv (listed in python/apt-packages.txt, installed by scripts/deps.sh)" >&2
    exit 2
  fi
  "$venv/bin/python" -m pip install -q --upgrade pip
  echo "== pip install ./python pytest"
  "$venv/bin/python" -m pip install -q "$here" pytest
fi

state=$(mktemp -d "${TMPDIR:-/tmp}/mlk-py-state.XXXXXX")
trap 'rm -rf "$state"; cleanup' EXIT
export XDG_STATE_HOME="$state"

echo "== pytest"
cd "$here"   # the venv's pytest (not `python -m`) so the installed package is tested
set +e
# MLK_E2E_ONLY=1: only the end-to-end files (make test-e2e, against
# $MLK_E2E_SERVER; the hooks suite stays with matchlock-local)
tests=(tests)
[ "${MLK_E2E_ONLY:-0}" = 1 ] && tests=(tests/test_client.py tests/test_async.py)
"$venv/bin/pytest" -p no:cacheprovider "${tests[@]}" "$@"
rc=$?
exit $rc
