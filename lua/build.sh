#!/usr/bin/env bash
# Build the Lua C module `matchlock.core` for Lua 5.4 and LuaJIT 2.1 from one
# SWIG wrapper, without linking liblua into it.
#
#   lua/build.sh [BUILD_DIR]      (default <repo>/build)
#
# Needs BUILD_DIR/libmatchlock.so (the lead's `make build`).  Produces
#   BUILD_DIR/lua/matchlock_lua_wrap.c
#   BUILD_DIR/lua/5.4/matchlock/core.so
#   BUILD_DIR/lua/jit/matchlock/core.so
# Use with LUA_CPATH="BUILD_DIR/lua/5.4/?.so;;" (or jit) and
# LUA_PATH="<repo>/lua/?.lua;;".  The CMake build (lua/CMakeLists.txt) does
# the same; this script is for building without reconfiguring CMake.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
build=$(cd "${1:-$repo/build}" && pwd)
out="$build/lua"
mkdir -p "$out/5.4/matchlock" "$out/jit/matchlock"

[ -e "$build/libmatchlock.so" ] || { echo "build.sh: $build/libmatchlock.so is missing; run 'make build' (or cmake --build $build --target matchlock) first" >&2; exit 1; }

wrap="$out/matchlock_lua_wrap.c"
if [ ! -e "$wrap" ] || [ -n "$(find "$here/matchlock_lua.i" "$here/src" "$repo/bindings" "$repo/abi/include" -newer "$wrap" -print -quit)" ]; then
  swig -lua -nomoduleglobal -no-old-metatable-bindings \
    -I"$repo/bindings" -I"$repo/abi/include" -I"$here/src" \
    -o "$wrap" "$here/matchlock_lua.i"
fi

CC=${CC:-cc}
CFLAGS=${CFLAGS:--O2 -g -Wall -Wno-unused-function -Wno-unused-parameter}
common=(-shared -fPIC -std=gnu11 -I"$repo/abi/include" -I"$here/src" $(pkg-config --cflags msgpack))
libs=(-L"$build" -lmatchlock -Wl,-rpath,"$build" $(pkg-config --libs msgpack))

build_one() { # flavour pkgconfig-name
  local so="$out/$1/matchlock/core.so"
  if [ ! -e "$so" ] || [ "$wrap" -nt "$so" ] || [ "$build/libmatchlock.so" -nt "$so" ]; then
    $CC $CFLAGS "${common[@]}" $(pkg-config --cflags "$2") -o "$so" "$wrap" "${libs[@]}"
  fi
}
build_one 5.4 lua5.4
build_one jit luajit
echo "built $out/5.4/matchlock/core.so and $out/jit/matchlock/core.so"
