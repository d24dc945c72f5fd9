#!/usr/bin/env bash
# The macOS build, checked from Linux (docs/testing.md, "The macOS build").
# For aarch64-macos and x86_64-macos, with Zig (scripts/zig.sh: PyPI's
# ziglang, which ships macOS's libc headers and libSystem's symbol list):
#   1. CMake configures the project for Darwin (its probes pick the platform
#      calls from macOS's headers) and builds libmatchlock.a and
#      libmatchlock.1.dylib, with implicit declarations as errors and any
#      warning failing the check; the dylib is linked for real (ld64 rules:
#      no undefined symbol) against libSystem and link stubs of libevent and
#      msgpack-c; it exports exactly the MLK_API functions of matchlock.h.
#      The Lua 5.4 module (lua/CMakeLists.txt) is built against that dylib,
#      leaving only the Lua API to the interpreter.
#   2. The Node addon's C++ (the SWIG wrapper and node/src/glue_*.cc) is compiled with
#      the Node-API headers from npm and linked into matchlock.node the way
#      node/scripts/build.js links it on a Mac (Node-API symbols looked up
#      at load time, nothing else).
# libevent and msgpack-c for macOS: their headers are Debian's (the same
# on both systems but for libevent's generated event-config.h, replaced by
# tests/macos/event-config.h, checked against each target's ABI); the link
# stubs (.tbd, as Apple's SDK ships its own libraries) list the symbols
# Debian's builds of the same libraries export.  Nothing here runs on macOS.
#   scripts/check-macos.sh [OUT_DIR]     (default build-macos)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out=${1:-build-macos}
case "$out" in /*) ;; *) out="$root/$out" ;; esac
zig=$(scripts/zig.sh)
nm=$(command -v llvm-nm || true)
[ -n "$nm" ] || { echo "check-macos.sh: llvm-nm is needed (Debian: llvm)" >&2; exit 1; }

# ---- libevent and msgpack-c as Homebrew installs them (a prefix of our own)
deps=$out/deps
rm -rf "$deps"
mkdir -p "$deps/include" "$deps/lib/pkgconfig"
evinc=$(pkg-config --variable=includedir libevent_core)
mpinc=$(pkg-config --variable=includedir msgpack)
cp -r "$evinc/event2" "$deps/include/"
cp tests/macos/event-config.h "$deps/include/event2/event-config.h"
cp -r "$mpinc/msgpack" "$mpinc/msgpack.h" "$deps/include/"

tbd() { # tbd <name> <Linux .so> <install name>: a stub listing the .so's exports
  local syms
  syms=$(nm -D --defined-only "$2" | awk '$2 ~ /^[TDBRVWi]$/ {print "_" $3}' | sort -u | paste -sd, - | sed 's/,/, /g')
  [ -n "$syms" ] || { echo "check-macos.sh: no exports in $2" >&2; exit 1; }
  printf '%s\n' '--- !tapi-tbd' 'tbd-version:     4' 'targets:         [ x86_64-macos, arm64-macos ]' \
    "install-name:    '$3'" 'exports:' '  - targets:         [ x86_64-macos, arm64-macos ]' \
    "    symbols:         [ $syms ]" '...' > "$deps/lib/lib$1.tbd"
}
pc() { # pc <name> <libs> [requires]
  printf '%s\n' "prefix=$deps" 'libdir=${prefix}/lib' 'includedir=${prefix}/include' "Name: $1" \
    "Description: link stub for the macOS check" 'Version: 0' "Requires: ${3:-}" \
    "Libs: -L\${libdir} $2" 'Cflags: -I${includedir}' > "$deps/lib/pkgconfig/$1.pc"
}
so() { cc -print-file-name="$1"; } # where the linker finds a library
tbd event_core "$(so libevent_core.so)" /opt/homebrew/opt/libevent/lib/libevent_core-2.1.7.dylib
tbd event_pthreads "$(so libevent_pthreads.so)" /opt/homebrew/opt/libevent/lib/libevent_pthreads-2.1.7.dylib
tbd msgpack-c "$(so libmsgpackc.so)" /opt/homebrew/opt/msgpack/lib/libmsgpack-c.2.dylib
pc libevent_core -levent_core
pc libevent_pthreads -levent_pthreads libevent_core
pc msgpack-c -lmsgpack-c # the name from msgpack-c 6.0 on, as Homebrew has it
# The Node addon's link line, from the recipe (core/build.json) as
# node/scripts/build.js reads it: each pkg_config entry's first name that
# pkg-config knows (here: the stubs above), then the recipe's libs.
read -r -a node_libs <<<"$(PKG_CONFIG_LIBDIR=$deps/lib/pkgconfig PKG_CONFIG_PATH='' python3 -c '
import json, subprocess
r = json.load(open("core/build.json"))
def known(p):
    for n in p["any_of"]:
        if subprocess.run(["pkg-config", "--exists", n]).returncode == 0:
            return n
    raise SystemExit("check-macos.sh: no pkg-config file for " + " or ".join(p["any_of"]))
libs = subprocess.run(["pkg-config", "--libs"] + [known(p) for p in r["pkg_config"]],
                      check=True, capture_output=True, text=True).stdout.split()
print(" ".join(libs + ["-l" + l for l in r["libs"]]))
')"
[ "${#node_libs[@]}" -gt 0 ] || { echo "check-macos.sh: no link line from core/build.json" >&2; exit 1; }
echo "the Node addon links with (core/build.json): ${node_libs[*]}"
# Lua 5.4's headers (the same on both systems; luaconf.h's platform switches
# concern building Lua itself); the module is not linked to liblua
luainc=$(pkg-config --variable=includedir lua5.4 2>/dev/null || true)
[ -f "$luainc/lua5.4/lua.h" ] || luainc=/usr/include
cp -r "$luainc/lua5.4" "$deps/include/"
# Debian's luaconf.h names its multiarch triplet for the default module
# paths only (strings a module never uses); upstream's, as Homebrew ships it, has none
printf '#define DEB_HOST_MULTIARCH "darwin"\n' > "$deps/include/lua5.4/lua5.4-deb-multiarch.h"
printf '%s\n' "prefix=$deps" 'includedir=${prefix}/include/lua5.4' 'Name: lua5.4' 'Description: headers only' \
  'Version: 5.4' 'Cflags: -I${includedir}' > "$deps/lib/pkgconfig/lua5.4.pc"

# ---- the Node addon's inputs: the SWIG wrapper, the Node-API headers -------
if [ ! -f node/node_modules/node-api-headers/include/node_api.h ] || [ ! -f node/node_modules/node-addon-api/napi.h ]; then
  (cd node && npm ci --no-audit --no-fund --ignore-scripts >/dev/null)
fi
mkdir -p "$out/node"
swig=$(node/scripts/swig.sh)
"$swig" -javascript -napi -c++ -Ibindings -Iabi/include -o "$out/node/matchlock_wrap.cxx" node/src/matchlock_node.i

# the MLK_API functions the header declares: what the dylib must export
want=$(sed -n 's/^MLK_API[^(]*[ *]\(mlk_[a-z0-9_]*\)(.*/_\1/p' abi/include/matchlock.h | sort -u)
[ -n "$want" ] || { echo "check-macos.sh: no MLK_API functions found in matchlock.h" >&2; exit 1; }

errors=(-Werror=implicit-function-declaration -Werror=implicit-int)
# the oldest macOS on Apple Silicon: a call newer than that is a warning (= failure)
macos_min=11.0 # Darwin 20 (CMAKE_SYSTEM_VERSION below)
for arch in aarch64 x86_64; do
  echo "--- $arch-macos"
  b=$out/$arch
  mkdir -p "$b/bin"
  for tool in cc c++ ar ranlib; do
    case $tool in
      cc | c++) printf '#!/bin/sh\nexec "%s" %s -target %s-macos.%s "$@"\n' "$zig" "$tool" "$arch" "$macos_min" > "$b/bin/$tool" ;;
      *) printf '#!/bin/sh\nexec "%s" %s "$@"\n' "$zig" "$tool" > "$b/bin/$tool" ;;
    esac
    chmod +x "$b/bin/$tool"
  done
  # the hand-written event-config.h against this target's ABI and headers
  "$b/bin/cc" -I"$deps/include" -Wall -Werror -c tests/macos/event-config-check.c -o "$b/event-config-check.o"

  # 1. the core and the C ABI library, through the project's CMake build
  rm -rf "$b/cmake"
  # tests/macos/darwin-host.cmake: what CMake learns from sw_vers on a Mac
  PKG_CONFIG_LIBDIR=$deps/lib/pkgconfig PKG_CONFIG_PATH='' cmake -S . -B "$b/cmake" \
    -DCMAKE_SYSTEM_NAME=Darwin -DCMAKE_SYSTEM_VERSION=20.0 -DCMAKE_SYSTEM_PROCESSOR="${arch/aarch64/arm64}" \
    -DCMAKE_C_COMPILER="$b/bin/cc" -DCMAKE_AR="$b/bin/ar" -DCMAKE_RANLIB="$b/bin/ranlib" \
    -DCMAKE_PROJECT_INCLUDE="$root/tests/macos/darwin-host.cmake" -DCMAKE_C_FLAGS="${errors[*]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo > "$b/configure.log"
  grep -q '^MLK_BUILD_LOCAL:BOOL=OFF' "$b/cmake/CMakeCache.txt" ||
    { echo "check-macos.sh: matchlock-local (Linux only) would be built for macOS" >&2; exit 1; }
  # the probes found macOS's calls, and none of Linux's
  for have in GETPEEREID; do
    grep -q "^MLK_HAVE_$have:INTERNAL=1" "$b/cmake/CMakeCache.txt" ||
      { echo "check-macos.sh: the probe did not find $have in macOS's headers" >&2; exit 1; }
  done
  for linux in ACCEPT4 SOCK_CLOEXEC PIPE2 EVENTFD PIDFD_OPEN SO_PEERCRED EXPLICIT_BZERO; do
    if grep -q "^MLK_HAVE_$linux:INTERNAL=1" "$b/cmake/CMakeCache.txt"; then
      echo "check-macos.sh: the probe found $linux for macOS (it has none)" >&2; exit 1
    fi
  done
  cmake --build "$b/cmake" -j2 --target matchlock matchlock_installed_static matchlock_lua_5.4 > "$b/build.log" 2>&1 ||
    { cat "$b/build.log" >&2; exit 1; }
  if grep -q 'warning:' "$b/build.log"; then grep -B2 -A4 'warning:' "$b/build.log" >&2; exit 1; fi
  dylib=$b/cmake/libmatchlock.1.dylib
  file_type=$(llvm-objdump --macho --private-header "$dylib" | awk '/MH_MAGIC_64/ {print $2; exit}')
  exports=$("$nm" -gU "$dylib" | awk '{print $3}' | grep -v '^__mh_dylib_header$\|^___dso_handle$' | sort -u)
  if [ "$exports" != "$want" ]; then
    echo "check-macos.sh: libmatchlock.1.dylib ($arch) does not export exactly the MLK_API functions:" >&2
    diff <(echo "$want") <(echo "$exports") >&2 || true
    exit 1
  fi
  install_name=$(llvm-objdump --macho --dylib-id "$dylib" | tail -1)
  [ "$install_name" = "@rpath/libmatchlock.1.dylib" ] ||
    { echo "check-macos.sh: the dylib's install name is '$install_name'" >&2; exit 1; }
  echo "libmatchlock.1.dylib ($file_type): links, $(echo "$exports" | wc -l) exports = the MLK_API functions, install name $install_name"

  # the installed static archive: one object whose only globals are the MLK_API functions
  statics=$("$nm" -g --defined-only "$b/cmake/libmatchlock.a" | awk 'NF == 3 {print $3}' | sort -u)
  if [ "$statics" != "$want" ]; then
    echo "check-macos.sh: libmatchlock.a ($arch) defines globals other than the MLK_API functions:" >&2
    diff <(echo "$want") <(echo "$statics") >&2 || true
    exit 1
  fi
  echo "libmatchlock.a: $(echo "$statics" | wc -l) globals = the MLK_API functions"

  # the Lua module (lua/CMakeLists.txt): only the Lua API is left to the interpreter
  lua_mod=$b/cmake/lua/5.4/matchlock/core.so
  lua_left=$("$nm" -m -u "$lua_mod" | grep -v '(from ' | awk '{print $NF}')
  [ -n "$lua_left" ] && [ -z "$(echo "$lua_left" | grep -v '^_lua')" ] ||
    { echo "check-macos.sh: the Lua module ($arch) leaves these to the loader:" >&2; echo "$lua_left" >&2; exit 1; }
  echo "lua/5.4/matchlock/core.so: compiles and links to the dylib; the $(echo "$lua_left" | wc -l) symbols left to the loader are Lua's"

  # 2. the Node addon's C++ and its link
  napi=node/node_modules/node-api-headers/include
  addon=node/node_modules/node-addon-api
  # the wrapper and the hand-written units (node/src/glue_*.cc), as build.js compiles them
  node_objs=()
  for src in "$out/node/matchlock_wrap.cxx" node/src/glue_*.cc; do
    obj=$b/$(basename "${src%.*}").o
    "$b/bin/c++" -std=c++17 -fexceptions -DNAPI_VERSION=8 -fPIC -fvisibility=hidden -O2 "${errors[@]}" -Werror \
      -Wno-unused-parameter -Wno-deprecated-declarations -Iabi/include -Icore -I"$deps/include" -I"$napi" -I"$addon" \
      -Inode/src -c "$src" -o "$obj"
    node_objs+=("$obj")
  done
  # what node/scripts/build.js does on darwin: the core inside, Node-API from node at load time
  "$b/bin/c++" -shared -Wl,-undefined,dynamic_lookup -Wl,-rpath,@loader_path -o "$b/matchlock.node" \
    "${node_objs[@]}" "$b/cmake/libmatchlock.a" "${node_libs[@]}"
  # every symbol left to the loader must be Node's (napi_*, node_api_*, uv_*)
  # (llvm-nm -m names the library of every other undefined symbol: "(from libSystem)")
  loader=$("$nm" -m -u "$b/matchlock.node" | grep -v '(from ' | awk '{print $NF}')
  [ -n "$loader" ] || { echo "check-macos.sh: matchlock.node ($arch) leaves nothing to node? (llvm-nm output changed)" >&2; exit 1; }
  stray=$(echo "$loader" | grep -v '^_\(napi_\|node_api_\|uv_\)' || true)
  [ -z "$stray" ] || { echo "check-macos.sh: matchlock.node ($arch) leaves non-Node symbols to the loader:" >&2; echo "$stray" >&2; exit 1; }
  echo "matchlock.node: compiles and links; the $(echo "$loader" | wc -l) symbols left to the loader are Node-API's"
done
echo "macOS check: aarch64 and x86_64 compile and link (nothing ran)"
