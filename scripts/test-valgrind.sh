#!/usr/bin/env bash
# Run the Criterion suite once under valgrind memcheck (make test-valgrind).
#
# Criterion 2.4 runs each test in a worker it re-executes from
# /proc/self/exe, so --trace-children=yes puts every worker (and
# matchlock-local, which the e2e tests start) under memcheck; shells, bwrap
# and system tools are skipped.  Each process logs to its own file, and the
# run fails when any log has errors: Criterion ignores a worker's exit
# status once its test has reported, so --error-exitcode alone would let
# a leak at a worker's exit pass (and in a child a test forks, a changed
# exit status would break the test itself), hence no --error-exitcode here.
set -uo pipefail
build=${1:-build-valgrind}
shift || true
cd "$(dirname "$0")/.."
root=$(pwd)
command -v valgrind >/dev/null || { echo "valgrind is not installed"; exit 1; }
logdir=$(mktemp -d /tmp/mlk-valgrind.XXXXXX)
# One test cannot pass under valgrind: glibc's posix_spawn reports a failed
# exec through memory shared with the parent (CLONE_VM|CLONE_VFORK), which
# valgrind runs as a plain fork, so "no such binary" looks like a started
# child that exits.  It is skipped unless a filter is given.
[ $# -eq 0 ] && set -- --filter '!(peer/spawn_failure_names_the_binary)'

valgrind --tool=memcheck --trace-children=yes \
    --trace-children-skip='*/sh,*/bash,*/dash,*/bwrap,/usr/bin/*,/bin/*,/nonexistent/*' \
    --leak-check=full --show-leak-kinds=definite,possible --errors-for-leak-kinds=definite,possible \
    --suppressions="$root/tests/sanitizer/valgrind.supp" \
    --log-file="$logdir/vg.%p" \
    "$build/mlk_tests" -j1 --timeout 600 "$@"
rc=$?

# a log without a summary is a process that was killed (close timeout) or
# exec'd a skipped program: nothing to judge; every summary must be clean
bad=$(grep -l "ERROR SUMMARY: [1-9]" "$logdir"/vg.* 2>/dev/null)
if [ -n "$bad" ]; then
    for f in $bad; do echo "--- valgrind report $f"; cat "$f"; done
    echo "valgrind found errors in $(echo "$bad" | wc -l) of $(ls "$logdir" | wc -l) processes"
    rc=1
else
    echo "valgrind: $(ls "$logdir" | wc -l) processes, no errors"
fi
[ "$rc" -eq 0 ] && rm -rf "$logdir"
exit "$rc"
