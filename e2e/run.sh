#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# `npm run e2e`: as root, installs the Debian packages the suite needs, builds
# the artifact, and boots real VMs. The suite starts and stops its own
# libvirtd and nginx; see e2e/e2e_test.ts.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH" NO_COLOR=1

bash test/host.sh install
[ -e dist/httpsisoboot.mjs ] || deno task --quiet bundle
[ -e dist/httpsisoboot ] || npm run --silent binary >/dev/null
# In this process, not a --test child, so that Ctrl-C reaches the suite's cleanup.
node --import tsx e2e/e2e_test.ts
