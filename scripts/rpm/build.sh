#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# `npm run rpm`: builds dist/rpm/vdsm-hook-httpsisoboot-*.{x86_64,aarch64}.rpm
# from Bun's baseline x86-64 runtime (no AVX2 needed) and its arm64 runtime,
# which `bun build` fetches from the npm registry (not offline: it needs the
# registry, or Bun's cache of both runtimes), packaged by rpmbuild. The aarch64 build's %check runs under qemu-user.
# RPM_ARCHES picks the architectures.
set -euo pipefail
cd "$(dirname "$0")/../.." || exit 1
export PATH="$PWD/node_modules/.bin:$PATH"

version=$(node -p 'require("./package.json").version')
top=$(mktemp -d)
trap 'rm -rf "$top"' EXIT
mkdir -p "$top/SOURCES" dist/rpm
cp LICENSE README.md "$top/SOURCES/"
tar -cf "$top/SOURCES/docs.tar" docs
# The unit, the polkit rule, tmpfiles.d, the SELinux module, the man page and
# the settings: one source with --install's (lib/host_files.ts).
node --import tsx scripts/host_files.ts "$top/SOURCES"

declare -A BUN_TARGET=([x86_64]=bun-linux-x64-baseline [aarch64]=bun-linux-arm64)
for arch in ${RPM_ARCHES:-x86_64 aarch64}; do
  bash scripts/binary.sh "${BUN_TARGET[$arch]}" "$top/SOURCES/httpsisoboot-$arch" >/dev/null
  rpmbuild -bb --quiet --target "$arch" \
    --define "_topdir $top" --define "hook_version $version" \
    scripts/rpm/vdsm-hook-httpsisoboot.spec
  cp "$top/RPMS/$arch/"*.rpm dist/rpm/
done
ls -1 dist/rpm/*.rpm
