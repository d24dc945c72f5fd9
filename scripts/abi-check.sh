#!/usr/bin/env bash
# The ABI promise, checked: only mlk_* symbols are exported, all in a
# MLK_ version node, the SONAME is libmatchlock.so.1, and nothing in the
# committed baseline (abi/libmatchlock.abi) was removed or changed.
# Additions are fine (scripts/abi-check-selftest.sh proves both verdicts).  Regenerate the baseline only when adding:
#   ./scripts/abi-check.sh build --update
set -euo pipefail
build=${1:-build}
cd "$(dirname "$0")/.."
lib="$build/libmatchlock.so.1"
[ -e "$lib" ] || { echo "abi-check: $lib not built"; exit 1; }

soname=$(readelf -d "$lib" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
[ "$soname" = "libmatchlock.so.1" ] || { echo "abi-check: SONAME is '$soname'"; exit 1; }

bad=$(readelf --dyn-syms -W "$lib" | awk '$5=="GLOBAL" && $7!="UND" && $7!="ABS" {print $8}' | grep -v '^mlk_.*@@\?MLK_[0-9.]*$' || true)
if [ -n "$bad" ]; then echo "abi-check: exported symbols outside mlk_*@MLK_*:"; echo "$bad"; exit 1; fi

if [ "${2:-}" = "--update" ]; then
  # No paths of the building machine in the baseline: no source locations,
  # no compilation directory, translation units named relative to the tree.
  # (--short-locs would do too, but abidiff then files a narrowed parameter
  # type under "filtered out" and exits 0; scripts/abi-check-selftest.sh.)
  abidw --no-corpus-path --no-comp-dir-path --no-show-locs --headers-dir abi/include "$lib" |
    sed "s|path='$(pwd)/|path='|" > abi/libmatchlock.abi
  echo "abi-check: baseline updated"
  exit 0
fi
# Any change to what the baseline holds fails: a removed or changed function
# or variable, a changed type reachable from one.  Added symbols (new
# functions in a new version node) are left out of the report with
# --no-added-syms, so that what remains -- and abidiff's status -- is about
# the baseline alone.  Status bits: 1 error, 2 usage, 4 ABI change,
# 8 incompatible change; every one of them fails the check.
set +e
abidiff --no-added-syms --headers-dir2 abi/include abi/libmatchlock.abi "$lib" > "$build/abidiff.txt" 2>&1
rc=$?
set -e
if [ "$rc" -ne 0 ]; then
  cat "$build/abidiff.txt"
  echo "abi-check: the library changes the ABI of abi/libmatchlock.abi (abidiff status $rc); within libmatchlock.so.1 only add"
  exit 1
fi
echo "abi-check: ok ($(readelf --dyn-syms -W "$lib" | grep -c '@@MLK_') symbols)"
