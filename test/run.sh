#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# `npm test`: prepares the host (as root: Debian packages and libvirtd),
# runs the static checks, builds the bundle and the binary the integration
# tests run, then runs every test under Node and under Deno, and the JSDoc
# examples as doc tests. Counts come from node:test's count reporter and
# Deno's JUnit files, and end in one line: "N passed, N failed, N skipped".
# Stops any daemon it started.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
export PATH="$PWD/node_modules/.bin:$PATH" NO_COLOR=1

bash test/host.sh start || exit 1
logs=$(mktemp -d)
trap 'bash test/host.sh stop; rm -rf "$logs"' EXIT

echo "== checks: deno fmt, deno lint, deno check, shellcheck"
deno fmt --check --quiet || exit 1
deno lint --quiet || exit 1
deno check --quiet hook.ts lib/ edge/ test/ e2e/ bench/ scripts/ || exit 1
shellcheck test/*.sh e2e/*.sh scripts/*.sh vagrant/*.sh .ci/run || exit 1

deno task --quiet bundle || exit 1
npm run --silent binary >/dev/null || exit 1
npm run --silent binary:arm64 >/dev/null || exit 1

echo "== node --test"
node --import tsx --test --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=./test/support/count_reporter.mjs --test-reporter-destination="$logs/node.json" \
  test/*_test.ts test/*/*_test.ts test/*/*/*_test.ts
node_status=$?
echo "== deno test"
deno test -A --reporter=dot --junit-path="$logs/deno.xml" test/
deno_status=$?
echo "== deno test --doc"
deno test --doc --reporter=dot --junit-path="$logs/doc.xml" lib/
doc_status=$?

node test/support/sum_counts.mjs node="$logs/node.json:$node_status" deno="$logs/deno.xml:$deno_status" doc="$logs/doc.xml:$doc_status"
