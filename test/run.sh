#!/usr/bin/env bash
# `npm test`: prepares the host (as root: Debian packages and libvirtd),
# builds the bundle and the binary the CLI tests run, then runs every test under Node and
# under Deno, and ends with one line: "N passed, N failed, N skipped".
# Stops any daemon it started.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH" NO_COLOR=1

bash test/host.sh start || exit 1
logs=$(mktemp -d)
trap 'bash test/host.sh stop; rm -rf "$logs"' EXIT

deno task --quiet bundle || exit 1
npm run --silent binary >/dev/null || exit 1
deno check --quiet hook.ts lib/ test/ e2e/ bench/ || exit 1

echo "== node --test"
node --import tsx --test test/*_test.ts test/*/*_test.ts | tee "$logs/node"
node_status=${PIPESTATUS[0]}
echo "== deno test"
deno test -A --reporter=dot test/ 2>&1 | tee "$logs/deno"
deno_status=${PIPESTATUS[0]}

count() { grep -oE "$1" "$2" | grep -oE '[0-9]+' | tail -1; }
node_passed=$(count '^# pass [0-9]+' "$logs/node")
node_failed=$(count '^# fail [0-9]+' "$logs/node")
node_skipped=$(count '^# skipped [0-9]+' "$logs/node")
deno_passed=$(count 'passed \([0-9]+ steps\)' "$logs/deno")
deno_failed=$(grep -oE '[0-9]+ failed( \([0-9]+ steps\))?' "$logs/deno" | tail -1 | grep -oE '[0-9]+' | tail -1)
deno_skipped=$(count '[0-9]+ ignored' "$logs/deno")
passed=$(( ${node_passed:-0} + ${deno_passed:-0} ))
failed=$(( ${node_failed:-0} + ${deno_failed:-0} ))
skipped=$(( ${node_skipped:-0} + ${deno_skipped:-0} ))
if [ "$node_status" != 0 ] || [ "$deno_status" != 0 ]; then
  [ "$failed" = 0 ] && failed=1
fi
echo "node: ${node_passed:-0} passed; deno: ${deno_passed:-0} passed"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
