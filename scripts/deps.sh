#!/usr/bin/env bash
# Install the system packages libmatchlock needs (Debian/Ubuntu).  Skips
# the package manager entirely when everything is already there.
set -euo pipefail

packages=(
  build-essential cmake pkg-config        # toolchain
  libevent-dev libmsgpack-dev             # the core
  libcriterion-dev abigail-tools          # C tests and the ABI check
  bubblewrap                              # matchlock-local isolation
)
# each binding lists what it needs in <dir>/apt-packages.txt (one per line, # comments)
here=$(cd "$(dirname "$0")/.." && pwd)
for f in "$here"/*/apt-packages.txt; do
  [ -f "$f" ] && packages+=($(sed 's/#.*//' "$f"))
done
packages+=("$@")                          # extra packages asked for by callers

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
