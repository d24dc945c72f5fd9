#!/usr/bin/env bash
# The ABI promise, checked: only mlk_* symbols are exported, all in a
# MLK_ version node, the SONAME is libmatchlock.so.1, and nothing in the
# committed baseline (abi/libmatchlock.abi) was removed or changed.
# Additions are fine.  Regenerate the baseline only when adding:
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
  abidw --no-corpus-path --headers-dir abi/include "$lib" > abi/libmatchlock.abi
  echo "abi-check: baseline updated"
  exit 0
fi
set +e
abidiff --headers-dir2 abi/include abi/libmatchlock.abi "$lib" > "$build/abidiff.txt" 2>&1
rc=$?
set -e
# abidiff exit bits: 1 error, 2 usage, 4 ABI change, 8 incompatible change.
if [ $((rc & 11)) -ne 0 ]; then
  cat "$build/abidiff.txt"
  echo "abi-check: incompatible ABI change against abi/libmatchlock.abi"
  exit 1
fi
echo "abi-check: ok ($(readelf --dyn-syms -W "$lib" | grep -c '@@MLK_') symbols)"
