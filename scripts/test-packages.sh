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

# The glibc floor of the shipped binaries (docs/packaging.md): no symbol
# version above it in `objdump -T` of any ELF file under the given paths
# (musl builds that msgpackr bundles have none).
glibc_floor=2.28
check_glibc_floor() {
  local f n=0 g=0 top
  while IFS= read -r f; do
    head -c4 "$f" | grep -q $'^\x7fELF' || continue
    n=$((n + 1))
    local syms; syms=$(objdump -T "$f") || { echo "glibc floor: objdump -T $f failed"; return 1; }
    top=$(echo "$syms" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)
    echo "  ${f#"$1"/}: $(readelf -h "$f" | sed -n 's/^ *Machine: *//p'), ${top:+GLIBC_$top at most}$([ -n "$top" ] || echo "no glibc symbol versions")"
    [ -n "$top" ] || continue
    g=$((g + 1))
    [ "$(printf '%s\n%s\n' "$top" "$glibc_floor" | sort -V | tail -1)" = "$glibc_floor" ] ||
      { echo "glibc floor: $f needs GLIBC_$top, above $glibc_floor"; return 1; }
  done < <(find "$@" -type f)
  [ "$g" -gt 0 ] || { echo "glibc floor: no ELF file with glibc symbol versions under $* ($n ELF files)"; return 1; }
}

node_package() {
  (cd "$repo/node" && { [ -f node_modules/node-addon-api/napi.h ] || npm ci --no-audit --no-fund --ignore-scripts >/dev/null; } &&
    npm pack --pack-destination "$work" >/dev/null 2>"$work/npm-pack.log") || { cat "$work/npm-pack.log" >&2; return 1; }
  local proj="$work/node-project"
  mkdir -p "$proj" && cd "$proj"
  echo '{"name":"scenario","version":"1.0.0","private":true}' > package.json
  npm install --offline --no-audit --no-fund "$work"/matchlock-native-*.tgz >/dev/null
  cp "$scen/scenario.mjs" "$scen/scenario.cjs" .
  node scenario.mjs && node scenario.cjs
  local pkg=$proj/node_modules/matchlock-native
  # a prebuild for each architecture, none above the glibc floor, and the
  # install used this machine's (it built nothing)
  [ -f "$pkg/prebuilds/linux-x64/node.napi.glibc.node" ] && [ -f "$pkg/prebuilds/linux-arm64/node.napi.glibc.node" ] ||
    { echo "the tarball lacks a linux-x64 or linux-arm64 prebuild"; ls -R "$pkg/prebuilds"; return 1; }
  check_glibc_floor "$pkg"
  # the arm64 prebuild runs the scenario under qemu-user (Debian's arm64 Node)
  local sysroot; sysroot=$("$repo/scripts/arm64-sysroot.sh")
  echo "  arm64 prebuild, under qemu-aarch64-static:"
  qemu-aarch64-static -L "$sysroot" "$sysroot/usr/bin/node" scenario.mjs &&
    qemu-aarch64-static -L "$sysroot" "$sysroot/usr/bin/node" scenario.cjs
  [ ! -e "$pkg/build" ] || { echo "the install built the addon from source instead of using the prebuild"; return 1; }
  # where no prebuild fits, the install says so and builds from source
  # (CC=false: the build's first compile fails at once, which is enough here)
  cp -r "$pkg" "$work/node-noprebuild" && rm -rf "$work/node-noprebuild/prebuilds/linux-x64"
  local msg; msg=$(cd "$work/node-noprebuild" && CC=false CXX=false node scripts/install.js 2>&1) &&
    { echo "install.js without a prebuild succeeded with CC=false: $msg"; return 1; }
  echo "$msg" | grep -q "no prebuilt binary for linux-x64.*building from source" &&
    echo "$msg" | grep -q "false failed" ||
    { echo "install.js without a prebuild said: $msg"; return 1; }
}

python_package() {
  "$repo/python/build-dist.sh" "$work/py-dist" >/dev/null
  # one wheel per architecture; auditwheel gives each manylinux_2_28 or older,
  # and no binary inside needs a glibc above the floor
  local arch w tag
  for arch in x86_64 aarch64; do
    w=$(ls "$work"/py-dist/*-cp310-abi3-manylinux*_"$arch".whl) || { echo "no $arch wheel"; return 1; }
    tag=$("${MLK_TOOLS_DIR:-$repo/build-tools}/python-dist/bin/auditwheel" show "$w" | tr -d '\n' | grep -o 'constrains the platform tag to "manylinux_[0-9]*_[0-9]*_[a-z0-9_]*' | grep -o 'manylinux.*')
    echo "  $(basename "$w"): auditwheel show: $tag"
    [ -n "$tag" ] && [ "$(echo "$tag" | cut -d_ -f3)" -le "${glibc_floor#2.}" ] ||
      { echo "auditwheel show $w: not manylinux_2_${glibc_floor#2.} or older"; "${MLK_TOOLS_DIR:-$repo/build-tools}/python-dist/bin/auditwheel" show "$w"; return 1; }
    mkdir -p "$work/whl-$arch" && (cd "$work/whl-$arch" && python3 -m zipfile -e "$w" .)
    check_glibc_floor "$work/whl-$arch"
  done
  # the aarch64 wheel, installed by pip for an arm64 CPython 3.11 (with the
  # aarch64 wheels of cffi and msgpack), runs the scenario under qemu-user
  local sysroot; sysroot=$("$repo/scripts/arm64-sysroot.sh")
  python3 -m pip install -q --disable-pip-version-check --target "$work/py-aarch64" --only-binary=:all: \
    --implementation cp --python-version 3.11 --abi cp311 --abi abi3 --abi none \
    --platform manylinux_2_28_aarch64 --platform manylinux_2_26_aarch64 --platform manylinux2014_aarch64 \
    "$(ls "$work"/py-dist/*-cp310-abi3-manylinux*_aarch64.whl)" 2>&1 | grep -v "^WARNING: Running pip as" || true
  [ -d "$work/py-aarch64/matchlock_native" ] || { echo "pip install of the aarch64 wheel failed"; return 1; }
  echo "  aarch64 wheel, under qemu-aarch64-static:"
  (cd "$work" && MATCHLOCK_BIN="$MLK_BIN" PYTHONPATH="$work/py-aarch64" PYTHONNOUSERSITE=1 \
    qemu-aarch64-static -L "$sysroot" "$sysroot/usr/bin/python3.11" "$scen/scenario.py")
  local whl; whl=$(ls "$work"/py-dist/*-cp310-abi3-manylinux*_x86_64.whl)
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
