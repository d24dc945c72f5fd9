#!/usr/bin/env bash
# Node binding benchmark against the shared canned peer, side by side in one
# run: the floor (bench/floor_client.c), the C core (bench_core), the addon
# (node/, built by node/scripts/build.js) and the official TypeScript SDK
# from npm when it can be installed.  Not a test; prints numbers.
#
#   bench/node/run.sh              (or: make bench-bindings)
# Environment: BENCH_REPS (5), BENCH_N (round trips per rep, 20000),
# BENCH_STREAM_BYTES (per rep, 256 MiB), BENCH_BUILD (build-bench),
# BENCH_OFFICIAL_NPM (the official SDK's npm name; default matchlock-sdk, the
# name its README gives: `npm install matchlock-sdk`).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../common.sh"
bench_build

echo "== the addon: node node/scripts/build.js"
node "$repo/node/scripts/build.js"

# The official SDK goes into a scratch directory under the build tree, never
# into node/.
pkg=${BENCH_OFFICIAL_NPM:-matchlock-sdk}
sdk=$BENCH_BUILD/node-sdk
official=()
mkdir -p "$sdk"
[ -e "$sdk/package.json" ] || echo '{"name":"mlk-bench-official-sdk","private":true}' >"$sdk/package.json"
echo "== npm install $pkg (official TypeScript SDK) into $sdk"
if out=$(cd "$sdk" && npm install --no-audit --no-fund --no-save "$pkg" 2>&1); then
  official=(--official "$sdk/node_modules/$pkg")
else
  echo "(the official TypeScript SDK could not be installed: \`npm install $pkg\` failed:"
  echo "$out" | grep -E "npm (error|ERR!)" | grep -v "A complete log" | head -4 | sed 's/^/   /'
  echo " measured without it)"
fi

if [ -n "${BENCH_CHILDREN:-}" ]; then
  bench_child node "Node, matchlock-native" node "$here/bench.js" --child native --addon "$repo/node" --peer "$PEER" \
    -n '{N}' --stream-bytes '{S}'
  if [ ${#official[@]} -gt 0 ]; then bench_child official-node "official TypeScript SDK (npm)" node "$here/bench.js" \
    --child official "${official[@]}" --peer "$PEER" -n '{N}' --stream-bytes '{S}'; fi
  exit 0
fi
bench_header "Node $(node --version)"
node "$here/bench.js" --peer "$PEER" --floor "$FLOOR" --core "$CORE" --addon "$repo/node" --reps "$BENCH_REPS" \
  -n "${BENCH_N:-20000}" --stream-bytes "$BENCH_STREAM_BYTES" "${official[@]}"
