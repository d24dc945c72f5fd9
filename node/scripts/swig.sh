#!/usr/bin/env bash
# Print the path of a SWIG >= 4.2 (the Node-API backend, -javascript -napi),
# installing it first when needed: $SWIG or the system's swig when recent
# enough (Debian 12 has 4.1, without -napi), else PyPI's `swig` package in a
# venv of the project's own ($MLK_TOOLS_DIR, default <repo>/build-tools).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
tools=${MLK_TOOLS_DIR:-$repo/build-tools}

recent() {  # recent <swig>: true when it is >= 4.2
  local v
  v=$("$1" -version 2>/dev/null | sed -n 's/^SWIG Version \([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
  [ -n "$v" ] && set -- $v && { [ "$1" -gt 4 ] || { [ "$1" -eq 4 ] && [ "$2" -ge 2 ]; }; }
}

for s in "${SWIG:-}" "$tools/swig/bin/swig" "$(command -v swig || true)"; do
  if [ -n "$s" ] && [ -x "$s" ] && recent "$s"; then echo "$s"; exit 0; fi
done

python=$(command -v python3 || true)
[ -n "$python" ] || { echo "swig.sh: python3 is needed to install SWIG >= 4.2 from PyPI" >&2; exit 1; }
echo "swig.sh: installing SWIG >= 4.2 from PyPI into $tools/swig" >&2
"$python" -m venv "$tools/swig" >&2
"$tools/swig/bin/pip" install -q --disable-pip-version-check 'swig>=4.2,<5' >&2
recent "$tools/swig/bin/swig" || { echo "swig.sh: the installed SWIG is not >= 4.2" >&2; exit 1; }
echo "$tools/swig/bin/swig"
