#!/usr/bin/env bash
# Each language's package, installed from its own artifact into a scratch
# directory outside the tree, runs the scenario there (launch on
# matchlock-local, exec, stream, files: tests/packages/).
#   scripts/test-packages.sh [BUILD_DIR] [node] [python] [lua] [docs]   (default: all;
#   docs runs the blocks of README.md and docs/ against the installed packages)
# The tree must be as clean after as before (no stray files).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}; shift || true
case "$build" in /*) ;; *) build="$repo/$build" ;; esac
langs=("$@"); [ ${#langs[@]} -gt 0 ] || langs=(node python lua docs)
export MLK_BIN="$build/matchlock-local"
[ -x "$MLK_BIN" ] || { echo "test-packages.sh: $MLK_BIN is missing (make build)" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/mlk-packages.XXXXXX")
trap 'rm -rf "$work"' EXIT
export XDG_STATE_HOME="$work/state"
scen="$repo/tests/packages"
status_before=$(git -C "$repo" status --porcelain --ignored=no 2>/dev/null || true)
passed=0; failed=0

node_package() {
  (cd "$repo/node" && { [ -f node_modules/node-addon-api/napi.h ] || npm ci --no-audit --no-fund --ignore-scripts >/dev/null; } &&
    npm pack --pack-destination "$work" >/dev/null 2>"$work/npm-pack.log") || { cat "$work/npm-pack.log" >&2; return 1; }
  local proj="$work/node-project"
  mkdir -p "$proj" && cd "$proj"
  echo '{"name":"scenario","version":"1.0.0","private":true}' > package.json
  npm install --offline --no-audit --no-fund "$work"/matchlock-native-*.tgz >/dev/null
  cp "$scen/scenario.mjs" "$scen/scenario.cjs" .
  node scenario.mjs && node scenario.cjs
}

python_package() {
  "$repo/python/build-dist.sh" "$work/py-dist" >/dev/null
  local whl; whl=$(ls "$work"/py-dist/*-cp310-abi3-manylinux*.whl)
  python3 -m venv "$work/py-venv"
  "$work/py-venv/bin/pip" install -q --disable-pip-version-check "$whl"
  cd "$work"
  # libevent and msgpack-c are the wheel's own copies, not the system's
  local ext; ext=$("$work/py-venv/bin/python" -c 'import matchlock_native._native as m; print(m.__file__)')
  ! ldd "$ext" | grep -E 'libevent|msgpack' | grep -v matchlock_native.libs
  MATCHLOCK_BIN="$MLK_BIN" "$work/py-venv/bin/python" "$scen/scenario.py"
  # the sdist names the system package that is missing
  mkdir -p "$work/sdist" && tar xzf "$work"/py-dist/*.tar.gz -C "$work/sdist"
  local msg; msg=$(cd "$work"/sdist/*/ && PKG_CONFIG_LIBDIR="$work/none" PKG_CONFIG_PATH= \
    "$work/py-venv/bin/python" build_ffi.py 2>&1 || true)
  echo "$msg" | grep -q "install libevent-dev" || { echo "sdist without libevent said: $msg"; return 1; }
}

lua_package() {
  local files; files=$("$repo/lua/dist.sh" "$work/lua-dist")
  local tarball rockspec; tarball=$(echo "$files" | sed -n 1p); rockspec=$(echo "$files" | sed -n 2p)
  # luarocks install: fetches source.url (the tarball), builds, installs
  luarocks --lua-version 5.4 --tree "$work/rocks" install "$rockspec" >"$work/luarocks.log" 2>&1 ||
    { tail -20 "$work/luarocks.log"; return 1; }
  cd "$work"
  eval "$(luarocks --lua-version 5.4 --tree "$work/rocks" path)"
  lua5.4 "$scen/scenario.lua"
  # luarocks make inside the unpacked tarball (LuaJIT's tree): the sources stay as they were
  mkdir -p "$work/lua-src" && tar xzf "$tarball" -C "$work/lua-src"
  local src; src=$(echo "$work"/lua-src/*/)
  local before; before=$(cd "$src" && find . | sort)
  (cd "$src" && luarocks --lua-version 5.1 --tree "$work/rocks-jit" make LUA_INCDIR="$(pkg-config --variable=includedir luajit)" >"$work/luarocks-make.log" 2>&1) ||
    { tail -20 "$work/luarocks-make.log"; return 1; }
  [ "$before" = "$(cd "$src" && find . | sort)" ] || { echo "luarocks make left files in the sources"; return 1; }
  eval "$(luarocks --lua-version 5.1 --tree "$work/rocks-jit" path)"
  luajit "$scen/scenario.lua"
}

# Every runnable block of README.md and docs/, as written, against the
# packages installed above (tests/docs/run_blocks.py).
docs_package() {
  [ -x "$work/py-venv/bin/python" ] && [ -d "$work/node-project/node_modules/matchlock-native" ] && [ -d "$work/rocks" ] ||
    { echo "docs: needs the node, python and lua packages installed first"; return 1; }
  luarocks --lua-version 5.4 --tree "$work/rocks" path --no-bin > "$work/lua-env.sh"
  python3 "$repo/tests/docs/run_blocks.py" --repo "$repo" --build "$build" --python "$work/py-venv/bin/python" \
    --node-project "$work/node-project" --lua-env "$work/lua-env.sh"
}

for lang in "${langs[@]}"; do
  echo "--- $lang: install from the artifact, run the scenario"
  if ( "${lang}_package" ); then passed=$((passed + 1)); else echo "--- $lang FAILED"; failed=$((failed + 1)); fi
done

status_after=$(git -C "$repo" status --porcelain --ignored=no 2>/dev/null || true)
if [ "$status_before" != "$status_after" ]; then
  echo "--- the tree changed (stray files):"; diff <(echo "$status_before") <(echo "$status_after") || true
  failed=$((failed + 1))
fi
echo "packages: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
