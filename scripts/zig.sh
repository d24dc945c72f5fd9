#!/usr/bin/env bash
# Print the path of a Zig compiler (`zig cc` cross-compiles C for other
# glibc versions, aarch64 and macOS), installing it first when missing.
# Zig comes from PyPI's `ziglang` wheel, pinned, into the project's tool
# folder (.tools/, ignored by git); nothing is fetched from anywhere else
# and nothing at a user's install.  Usage: zig=$(scripts/zig.sh)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
version=${MLK_ZIG_VERSION:-0.17.0}
dir=${MLK_TOOLS:-$here/.tools}/ziglang-$version
zig=$dir/ziglang/zig
if [ ! -x "$zig" ]; then
  mkdir -p "$dir"
  PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check --no-deps \
    --target "$dir" "ziglang==$version" >&2
fi
[ -x "$zig" ] || { echo "scripts/zig.sh: no zig binary at $zig after installing ziglang==$version" >&2; exit 1; }
echo "$zig"
