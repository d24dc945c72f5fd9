#!/usr/bin/env bash
# The ABI gate, tested: build the library in a scratch copy of the tree three
# times -- with one parameter of a public function narrowed (int64_t ->
# int32_t), with one public function removed, with one function added in a
# new version node -- and check that scripts/abi-check.sh fails, fails and
# passes against the committed baseline.  Run by make test.
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
scratch=$(mktemp -d "${TMPDIR:-/tmp}/mlk-abi-selftest.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
src="$scratch/src"
mkdir -p "$src"
# the working tree's tracked and new files (not build trees or ignored files)
git ls-files -z --cached --others --exclude-standard | tar -C "$repo" --null -T - -cf - | tar -C "$src" -xf -

fn=mlk_exec_opts_set_timeout_ms
hdr=abi/include/matchlock.h
def=$(cd "$src" && grep -l "^MLK_API int $fn(" core/*.c)
[ -n "$def" ] || { echo "abi-selftest: definition of $fn not found in core/"; exit 1; }
cp "$src/$hdr" "$scratch/h.orig"; cp "$src/$def" "$scratch/c.orig"; cp "$src/abi/matchlock.map" "$scratch/map.orig"

restore() { cp "$scratch/h.orig" "$src/$hdr"; cp "$scratch/c.orig" "$src/$def"; cp "$scratch/map.orig" "$src/abi/matchlock.map"; }
build() {
  cmake -S "$src" -B "$scratch/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMLK_BUILD_TESTS=OFF -DMLK_BUILD_LOCAL=OFF >/dev/null &&
    cmake --build "$scratch/build" -j"${JOBS:-2}" --target matchlock >/dev/null
}
failed=0
verdict() { # NAME EXPECTED(pass|fail)
  local got out
  if ! build; then echo "abi-selftest: $1: scratch build failed"; failed=1; return; fi
  out=$(cd "$src" && ./scripts/abi-check.sh "$scratch/build" 2>&1) && got=pass || got=fail
  if [ "$got" = "$2" ]; then echo "abi-selftest: $1: $got (expected)"
  else echo "abi-selftest: $1: $got, expected $2"; echo "$out" | tail -20 | sed 's/^/    /'; failed=1; fi
}

# 1. a changed signature
sed -i "s/^\(MLK_API int $fn(mlk_exec_opts \*o, \)int64_t/\1int32_t/" "$src/$hdr" "$src/$def"
grep -q "$fn(mlk_exec_opts \*o, int32_t" "$src/$hdr" || { echo "abi-selftest: could not edit $fn"; exit 1; }
verdict "changed parameter type" fail
restore

# 2. a removed function (its declaration and its definition)
sed -i "/^MLK_API int $fn(/d" "$src/$hdr"
sed -i "/^MLK_API int $fn(/,/^}/d" "$src/$def"
verdict "removed function" fail
restore

# 3. an added function in a new version node chained to the newest one
last=$(sed -n 's/^\(MLK_[0-9.]*\) {.*/\1/p' "$src/abi/matchlock.map" | tail -1)
printf '\nMLK_99.0 {\n  global:\n    mlk_selftest_added;\n} %s;\n' "$last" >> "$src/abi/matchlock.map"
printf '\n/** Self-test only. */\nMLK_API int mlk_selftest_added(int x);\n' >> "$src/$hdr"
printf '\nMLK_API int mlk_selftest_added(int x) { return x + 1; }\n' >> "$src/$def"
verdict "added function" pass
restore

[ "$failed" -eq 0 ] && echo "abi-selftest: ok" 
exit "$failed"
