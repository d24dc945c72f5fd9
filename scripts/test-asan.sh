#!/usr/bin/env bash
# Run the Criterion suite built with -DMLK_SANITIZE=address,undefined
# (make test-asan).  Every process of the run (the Criterion runner, its
# test workers, matchlock-local and anything they start) writes sanitizer
# reports to its own file under $logdir; the run fails when any report
# exists, because Criterion 2.4 ignores a worker's exit status once the
# test has reported (a leak found at a worker's exit would pass unseen)
# and matchlock-local's stderr goes to the client, not to the terminal.
set -uo pipefail
build=${1:-build-asan}
shift || true
cd "$(dirname "$0")/.."
root=$(pwd)
logdir=$(mktemp -d /tmp/mlk-asan.XXXXXX)

export ASAN_OPTIONS="halt_on_error=1:abort_on_error=0:detect_leaks=1:detect_stack_use_after_return=1:check_initialization_order=1:log_path=$logdir/asan"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$logdir/ubsan"
export LSAN_OPTIONS="suppressions=$root/tests/sanitizer/lsan.supp:print_suppressions=0"

"$build/mlk_tests" -j2 --timeout 300 "$@"
rc=$?

reports=$(find "$logdir" -type f -size +0c | sort)
if [ -n "$reports" ]; then
    for f in $reports; do echo "--- sanitizer report $f"; cat "$f"; done
    echo "sanitizer reports found ($(echo "$reports" | wc -l) processes)"
    rc=1
fi
[ "$rc" -eq 0 ] && rm -rf "$logdir"
exit "$rc"
