#!/usr/bin/env bash
# The end-to-end suites of C, Python, Node and Lua against one server:
#
#   make test-e2e MATCHLOCK_BIN=/usr/local/bin/matchlock
#   scripts/test-e2e.sh [BUILD_DIR]       (MATCHLOCK_BIN in the environment)
#
# MATCHLOCK_BIN: the server (a path, or a name on PATH; default the
# matchlock-local of BUILD_DIR).  MLK_E2E_BACKEND=matchlock|local says what
# kind of server it is; without it the server's `version` decides.
# MLK_E2E_LACKS=cap,cap adds capabilities the server is known to lack.
# MLK_E2E_STATE=DIR keeps the state directories (one per suite) in DIR
# instead of a temporary directory removed at the end.  MLK_PY_VENV=DIR
# reuses (or makes and keeps) the Python venv.  MLK_E2E_SUITES picks suites
# (default "c python node lua").
#
# What the server cannot show comes from tests/e2e/capabilities.tsv, the
# table the four suites read; those tests skip with the reason, and the
# reasons are printed again at the end.  Exit status: non-zero when a suite
# fails.  docs/testing.md says what a green run proves.
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
build=$(cd "${1:-build}" && pwd) || { echo "test-e2e: no build directory ${1:-build} (make build)" >&2; exit 2; }

server=${MATCHLOCK_BIN:-$build/matchlock-local}
case "$server" in
  */*) ;;
  *) server=$(command -v "$server") || { echo "test-e2e: $MATCHLOCK_BIN is not on PATH" >&2; exit 2; } ;;
esac
server=$(cd "$(dirname "$server")" && pwd)/$(basename "$server")
[ -x "$server" ] || { echo "test-e2e: $server is not an executable" >&2; exit 2; }

# the kind of server: declared, else from its `version` (never its name)
version=$("$server" version 2>/dev/null | head -n1)
backend=${MLK_E2E_BACKEND:-}
if [ -z "$backend" ]; then
  case "$version" in *-local*) backend=local ;; *) backend=matchlock ;; esac
  how="from its version: ${version:-no output}"
else
  how="declared by MLK_E2E_BACKEND"
fi
case "$backend" in local|matchlock) ;; *)
  echo "test-e2e: MLK_E2E_BACKEND=$backend: the backends are local and matchlock" >&2; exit 2 ;;
esac

echo "=== server: $server"
echo "=== backend: $backend ($how)"
echo "=== what it cannot show (tests/e2e/capabilities.tsv; these tests skip):"
awk -F'\t' -v b="$backend" -v extra=",${MLK_E2E_LACKS:-}," '
  /^#/ || NF != 3 { next }
  { n = split($2, by, ","); lacks = index(extra, "," $1 ",") > 0
    for (i = 1; i <= n; i++) if (by[i] == b) lacks = 1
    if (lacks) { printf "    %-22s %s\n", $1, $3; any = 1 } }
  END { if (!any) print "    (nothing)" }' tests/e2e/capabilities.tsv

if [ -n "${MLK_E2E_STATE:-}" ]; then
  state=$MLK_E2E_STATE
  mkdir -p "$state"
  cleanup() { :; }
else
  state=$(mktemp -d "${TMPDIR:-/tmp}/mlk-e2e.XXXXXX")
  cleanup() { rm -rf "$state"; }
fi
out=$(mktemp "${TMPDIR:-/tmp}/mlk-e2e-out.XXXXXX")
trap 'cleanup; rm -f "$out"' EXIT

export MLK_E2E_SERVER="$server" MLK_E2E_BACKEND="$backend" MLK_E2E_ONLY=1 MATCHLOCK_BIN="$server"
failed=()
suite() {
  local name=$1; shift
  mkdir -p "$state/$name"
  echo "=== $name end-to-end suite (state: $state/$name)"
  local t0=$SECONDS
  MLK_E2E_STATE_DIR="$state/$name" "$@" 2>&1 | tee -a "$out"
  local rc=${PIPESTATUS[0]}
  echo "=== $name: $([ "$rc" -eq 0 ] && echo passed || echo FAILED) in $((SECONDS - t0)) s"
  [ "$rc" -eq 0 ] || failed+=("$name")
}

# Criterion lists skipped tests with their reason only with --verbose, which
# also lists every test the filter leaves out ("Test is disabled")
c_suite() {
  "$build/mlk_tests" -j2 --timeout 120 --verbose \
    --filter '@(e2e|resources|local_protocol|local_cli|local_compat|local_images)/*' 2>&1 |
    grep -v -e ': Test is disabled$' -e '^\[RUN \]' -e '^\[PASS\]'
  return "${PIPESTATUS[0]}"
}
for s in ${MLK_E2E_SUITES:-c python node lua}; do
  case $s in
    c) suite c c_suite ;;
    python) suite python ./python/run-tests.sh -rs ;;
    node) suite node ./node/run-tests.sh "$build" ;;
    lua) suite lua ./lua/run-tests.sh "$build" ;;
    *) echo "test-e2e: MLK_E2E_SUITES: no suite $s (c, python, node, lua)" >&2; failed+=("$s") ;;
  esac
done

echo "=== tests the server could not show, and why"
grep -E '^\[SKIP\]|^SKIPPED|^skip |# SKIP|^[[:space:]]*﹣' "$out" | sort -u | sed 's/^/    /'
if [ ${#failed[@]} -gt 0 ]; then
  echo "=== end-to-end suites against $server: FAILED: ${failed[*]}"
  exit 1
fi
echo "=== end-to-end suites against $server: all passed"
