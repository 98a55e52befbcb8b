#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# `deno task compile [OUT]`: dist/httpsisoboot (or OUT) with `deno compile`. Deno builds the
# executable on its runtime, denort, which it downloads from dl.deno.land
# unless DENORT_BIN names a local copy. Where neither works, this says so.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
out=${1:-dist/httpsisoboot}
mkdir -p "$(dirname "$out")"
version=$(deno --version | head -1 | cut -d' ' -f2)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if NO_COLOR=1 deno compile -A --quiet --no-check --output "$out" hook.ts 2>"$log"; then
  echo "$out: built with deno compile (Deno $version)"
  exit 0
fi
if [ -n "${DENORT_BIN:-}" ]; then
  where="the runtime in DENORT_BIN=$DENORT_BIN did not work"
else
  where="Deno could not download its runtime (denort) and DENORT_BIN is not set"
fi
echo "deno task compile: $where. Set DENORT_BIN to denort from denort-x86_64-unknown-linux-gnu.zip of Deno $version, or build offline with Bun: npm run binary. deno said: $(sed -n '/^Caused by:/,/^Stack backtrace:/p' "$log" | grep -E '^ *[0-9]+:' | tail -1 | sed 's/^ *[0-9]*: //')" >&2
exit 1
