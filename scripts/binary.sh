#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Builds the single binary, the one place its flags are written:
#   scripts/binary.sh TARGET OUTFILE [ENTRY]
# TARGET is Bun's (bun-linux-x64-baseline, bun-linux-arm64); ENTRY is
# hook.ts unless given (the bench builds its empty program with the same
# flags). `npm run binary`, `npm run binary:arm64` and the RPM build use it.
set -euo pipefail
cd "$(dirname "$0")/.." || exit 1
export PATH="$PWD/node_modules/.bin:$PATH"
target=$1 outfile=$2 entry=${3:-hook.ts}

flags=(
  --compile --bytecode --minify
  # A Bun executable loads bunfig.toml (whose preload runs code) and .env from
  # the directory it runs in: the hook, the relay and an admin's --status
  # take neither code nor settings from whoever can write there.
  --no-compile-autoload-dotenv --no-compile-autoload-bunfig
  # JavaScriptCore's JIT tier-up thresholds times 10: a hook runs for
  # milliseconds, and compiling its code cost more than it saved (measured by
  # hand with perf stat: 1,672 page faults, 1,383 with this; 3 ms of a VM
  # start here). The relay, which runs for hours, sets the normal policy back
  # as it starts (edge/relay/serve.ts).
  --compile-jit-policy=10
)
exec bun build "${flags[@]}" --target="$target" "$entry" --outfile "$outfile"
