#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Installs on an EL9 host what the e2e suite installs from Debian's packages
# elsewhere: libvirt and QEMU (with curl for https), nbdkit with its curl
# plugin and basic filters for the relay, nginx, the tools that build the
# test ISOs, UEFI firmware, and Node 20.
set -euo pipefail

dnf install -y -q epel-release
dnf module enable -y -q nodejs:20
dnf install -y -q \
  libvirt-daemon-kvm libvirt-client qemu-kvm qemu-kvm-block-curl qemu-img \
  nbdkit-server nbdkit-curl-plugin nbdkit-basic-filters \
  edk2-ovmf nginx openssl ca-certificates util-linux \
  xorriso syslinux grub2-tools-extra grub2-pc-modules grub2-efi-x64-modules mtools \
  nodejs npm

# The suite starts its own libvirtd in a private mount namespace, so keep the
# packaged daemons and their sockets from starting one first.
systemctl disable --now libvirtd.service libvirtd.socket virtqemud.service virtqemud.socket 2>/dev/null || true
