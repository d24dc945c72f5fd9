#!/usr/bin/env bash
# The C libraries a shipped binary links (libevent's core and pthreads parts,
# msgpack-c), built from Debian's source packages for one Zig target with a
# glibc floor, as static PIC archives, so the Python wheel and the Node
# prebuild carry them inside and need nothing but glibc >= the floor.
#   scripts/cross-deps.sh TARGET        e.g. x86_64-linux-gnu.2.28, aarch64-linux-gnu.2.28
# prints the prefix: PREFIX/bin/{cc,c++,ar,ranlib} (zig for TARGET),
# PREFIX/lib/*.a, PREFIX/lib/pkgconfig/*.pc, PREFIX/include.
# Release build time only (python/build-dist.sh, node/scripts/pack.js):
# the sources come from `apt-get source` (a deb-src entry for the archive the
# installed -dev packages come from is added when missing; that needs root),
# into the tool cache ($MLK_TOOLS, default .tools/, ignored by git); nothing
# is vendored and nothing is fetched at a user's install.  A target already
# built is reused (the cache key is the target and the source versions).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
target=${1:?usage: scripts/cross-deps.sh TARGET (e.g. x86_64-linux-gnu.2.28)}
tools=${MLK_TOOLS:-$repo/.tools}
mkdir -p "$tools"
tools=$(cd "$tools" && pwd)
src_root=$tools/deb-src
log() { echo "cross-deps: $*" >&2; }

# --- sources: Debian's source packages, once per version --------------------
deb_src_entry() {
  apt-get source --print-uris -qq libevent >/dev/null 2>&1 && return 0
  # The archives (URIs) the binary packages come from; their entries are
  # copied as deb-src, with the same suites, components and keys.
  local uris
  uris=$(apt-cache policy libevent-dev libmsgpack-dev |
    awk '$2 ~ /^https?:\/\// && $NF == "Packages" { u = $2; sub(/\/$/, "", u); print u }' | sort -u | tr '\n' ' ')
  [ -n "$uris" ] || { log "apt-cache policy names no archive for libevent-dev/libmsgpack-dev"; exit 1; }
  local d=/etc/apt/sources.list.d name=matchlock-deb-src sources list
  # deb822 stanzas (*.sources) and one-line entries (sources.list, *.list)
  sources=$(for f in "$d"/*.sources; do [ ! -f "$f" ] || [ "$f" = "$d/$name.sources" ] || { cat "$f"; echo; }; done |
    awk -v uris=" $uris " 'function flush() { if (keep) { print st; print "" } st = ""; keep = 0; deb = 0 }
      /^[ \t]*$/ { flush(); next } /^#/ { next }
      /^Types:/ { if ($0 ~ /[ \t]deb([ \t]|$)/) deb = 1; st = st "Types: deb-src\n"; next }
      /^URIs:/ { for (i = 2; i <= NF; i++) { u = $i; sub(/\/$/, "", u); if (index(uris, " " u " ")) keep = deb } }
      { st = st $0 "\n" } END { flush() }' | sed '/^$/N;/^\n$/D')
  list=$(for f in /etc/apt/sources.list "$d"/*.list; do [ ! -f "$f" ] || cat "$f"; done |
    awk -v uris=" $uris " '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { u = $i; sub(/\/$/, "", u);
      if (index(uris, " " u " ")) { $1 = "deb-src"; print } break } }')
  [ -n "$sources$list" ] || { log "no apt entry names $uris"; exit 1; }
  if [ "$(id -u)" != 0 ]; then
    log "apt-get source needs deb-src entries for $uris; as root, add these and run apt-get update:"
    printf '%s\n%s\n' "$sources" "$list" >&2
    exit 1
  fi
  local head="# Added by libmatchlock's scripts/cross-deps.sh: the sources of libevent and msgpack-c"
  if [ -n "$sources" ]; then printf '%s\n%s\n' "$head" "$sources" > "$d/$name.sources"; log "added $d/$name.sources"; fi
  if [ -n "$list" ]; then printf '%s\n%s\n' "$head" "$list" > "$d/$name.list"; log "added $d/$name.list"; fi
  apt-get update -qq >&2 || { rm -f "$d/$name.sources" "$d/$name.list"; log "apt-get update failed; the deb-src entries are removed again"; exit 1; }
}

fetch() {  # fetch SOURCE_PACKAGE -> prints the unpacked directory
  local pkg=$1 ver dir
  ver=$(apt-cache showsrc "$pkg" 2>/dev/null | awk '/^Version:/ { print $2 }' | sort -V | tail -1)
  [ -n "$ver" ] || { log "apt-cache showsrc $pkg: no version"; exit 1; }
  dir=$src_root/$pkg-$ver
  if [ ! -f "$dir/.unpacked" ]; then
    rm -rf "$dir" && mkdir -p "$dir"
    (cd "$dir" && apt-get source -qq "$pkg=$ver" >"$dir/apt-source.log" 2>&1) ||
      { cat "$dir/apt-source.log" >&2; exit 1; }
    touch "$dir/.unpacked"
  fi
  local d; d=$(find "$dir" -mindepth 1 -maxdepth 1 -type d | head -1)
  [ -n "$d" ] || { log "apt-get source $pkg left no directory in $dir"; exit 1; }
  echo "$d"
}

deb_src_entry
libevent_src=$(fetch libevent)
msgpack_src=$(fetch msgpack-c)

# --- the build, once per target and source versions -------------------------
key="$target-$(basename "$(dirname "$libevent_src")")-$(basename "$(dirname "$msgpack_src")")"
prefix=$tools/cross/$key
if [ -f "$prefix/.done" ]; then echo "$prefix"; exit 0; fi
zig=$("$repo/scripts/zig.sh")
rm -rf "$prefix" && mkdir -p "$prefix/bin"
# Compiler wrappers: one path each, as CMake, setuptools and build.js want.
# Zig's cache goes into the tool folder too.
for t in cc c++ ar ranlib; do
  case $t in cc|c++) args="$t -target $target" ;; *) args=$t ;; esac
  printf '#!/bin/sh\nZIG_GLOBAL_CACHE_DIR=${ZIG_GLOBAL_CACHE_DIR:-%s} exec %s %s "$@"\n' \
    "$tools/zig-cache" "$zig" "$args" > "$prefix/bin/$t"
  chmod +x "$prefix/bin/$t"
done
case $target in
  x86_64-*) proc=x86_64 ;;
  aarch64-*) proc=aarch64 ;;
  *) log "unknown architecture in $target"; exit 1 ;;
esac
cmake_cross=(-G "Unix Makefiles" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$prefix"
  -DCMAKE_INSTALL_LIBDIR=lib -DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=$proc
  -DCMAKE_C_COMPILER="$prefix/bin/cc" -DCMAKE_AR="$prefix/bin/ar" -DCMAKE_RANLIB="$prefix/bin/ranlib"
  -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DCMAKE_C_FLAGS="-fvisibility=hidden")
build() {  # build NAME SRC CMAKE_ARGS...
  local name=$1 src=$2; shift 2
  local b=$prefix/build/$name
  log "building $name for $target"
  { cmake -S "$src" -B "$b" "${cmake_cross[@]}" "$@" && cmake --build "$b" -j"${JOBS:-2}" &&
    cmake --install "$b"; } >"$prefix/$name.log" 2>&1 || { tail -40 "$prefix/$name.log" >&2; exit 1; }
}
build libevent "$libevent_src" -DEVENT__LIBRARY_TYPE=STATIC -DEVENT__DISABLE_OPENSSL=ON \
  -DEVENT__DISABLE_MBEDTLS=ON -DEVENT__DISABLE_TESTS=ON -DEVENT__DISABLE_REGRESS=ON \
  -DEVENT__DISABLE_SAMPLES=ON -DEVENT__DISABLE_BENCHMARK=ON -DEVENT__DISABLE_DEBUG_MODE=ON
build msgpack-c "$msgpack_src" -DMSGPACK_ENABLE_SHARED=OFF -DMSGPACK_ENABLE_STATIC=ON \
  -DMSGPACK_BUILD_TESTS=OFF -DMSGPACK_BUILD_EXAMPLES=OFF
rm -rf "$prefix/build"
touch "$prefix/.done"
echo "$prefix"
