#!/usr/bin/env bash
# The Lua release: a source tarball and the rockspec that installs it.
#   lua/dist.sh [OUT_DIR] [URL_BASE]     (make dist; default <repo>/dist)
# OUT_DIR/matchlock-lua-VERSION.tar.gz carries matchlock.lua, the
# SWIG-generated wrapper, the glue, the core's C sources and its recipe
# (core/build.json, and core/build.mk made from it for rock.mk), matchlock.h,
# rock.mk, LICENSE and the rockspec; OUT_DIR/matchlock-VERSION-1.rockspec has
# source.url = URL_BASE/matchlock-lua-VERSION.tar.gz (default: file:// of
# OUT_DIR, so `luarocks install` works from there; a release passes its
# download URL).  SWIG runs here, never at install.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
out=${1:-$repo/dist}
mkdir -p "$out" && out=$(cd "$out" && pwd)
h="$repo/abi/include/matchlock.h"
version=$(sed -n 's/^#define MLK_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\).*/\2/p' "$h" | paste -sd.)
base=${2:-file://$out}
name="matchlock-lua-$version"
stage=$(mktemp -d "${TMPDIR:-/tmp}/mlk-lua-dist.XXXXXX")
trap 'rm -rf "$stage"' EXIT
d="$stage/$name"
mkdir -p "$d/src" "$d/core" "$d/include"
swig -lua -nomoduleglobal -no-old-metatable-bindings -I"$repo/bindings" -I"$repo/abi/include" -I"$here/src" \
  -o "$d/matchlock_lua_wrap.c" "$here/matchlock_lua.i"
cp "$here/matchlock.lua" "$here/rock.mk" "$d/"
cp "$here"/src/*.c "$d/src/"
cp "$repo"/core/*.c "$repo"/core/*.h "$repo"/core/*.inc "$repo"/core/build.json "$d/core/"
# the core's recipe (core/build.json) as the make variables rock.mk includes
python3 - "$repo/core/build.json" > "$d/core/build.mk" <<'EOF_PY'
import json, sys
r = json.load(open(sys.argv[1]))
print("# core/build.json (the core's recipe) for rock.mk, written by lua/dist.sh")
print("CORE_SOURCES =", " ".join("core/" + s for s in r["sources"]))
print("CORE_CFLAGS =", " ".join([f"-std={r['c_std']}", *(f"-D{d}" for d in r["defines"]), *r["cflags"], *r["warnings"]]))
print("CORE_LIBS =", " ".join("-l" + lib for lib in r["libs"]))
EOF_PY
cp "$h" "$d/include/"
cp "$repo/LICENSE" "$d/"
rockspec="matchlock-$version-1.rockspec"
sed -e "s|@VERSION@|$version|g" -e "s|@URL@|$base/$name.tar.gz|" "$here/matchlock.rockspec.in" > "$d/$rockspec"
tar -C "$stage" --owner=0 --group=0 --sort=name -czf "$out/$name.tar.gz" "$name"
cp "$d/$rockspec" "$out/"
echo "$out/$name.tar.gz"
echo "$out/$rockspec"
