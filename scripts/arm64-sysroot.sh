#!/usr/bin/env bash
# An arm64 Debian userland to run the aarch64 wheel and Node prebuild under
# qemu-user (scripts/test-packages.sh): Python 3.11 and Node, from the
# archive the host's apt uses, unpacked with
# dpkg-deb into .tools/apt-arm64/sysroot (ignored by git).  apt runs with a
# state of its own (lists, cache, an empty dpkg status, APT::Architecture
# arm64), so the host's dpkg architectures and package lists are untouched.
# Prints the sysroot; run a program as
#   qemu-aarch64-static -L SYSROOT SYSROOT/usr/bin/python3.11 ...
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
d=${MLK_TOOLS:-$repo/.tools}/apt-arm64
sysroot=$d/sysroot
packages=(python3.11 nodejs)
if [ ! -f "$sysroot/.done" ]; then
  command -v qemu-aarch64-static >/dev/null || { echo "arm64-sysroot.sh: qemu-aarch64-static is missing (apt-get install qemu-user-static)" >&2; exit 1; }
  rm -rf "$sysroot"
  mkdir -p "$d/lists/partial" "$d/cache/archives/partial" "$sysroot"
  : > "$d/status"
  apt=(apt-get -o Dir::State::Lists="$d/lists" -o Dir::State::status="$d/status" -o Dir::Cache="$d/cache"
    -o APT::Architecture=arm64 -o APT::Architectures=arm64 -o Debug::NoLocking=1
    -o Acquire::IndexTargets::deb-src::Sources::DefaultEnabled=false)
  "${apt[@]}" update -qq >"$d/apt.log" 2>&1 || { cat "$d/apt.log" >&2; exit 1; }
  "${apt[@]}" install -d -y -qq --no-install-recommends "${packages[@]}" >>"$d/apt.log" 2>&1 || { cat "$d/apt.log" >&2; exit 1; }
  for f in "$d"/cache/archives/*.deb; do dpkg-deb -x "$f" "$sysroot"; done
  qemu-aarch64-static -L "$sysroot" "$sysroot/usr/bin/python3.11" -c "import ctypes" ||
    { echo "arm64-sysroot.sh: python3.11 does not run under qemu-aarch64-static" >&2; exit 1; }
  touch "$sysroot/.done"
fi
echo "$sysroot"
