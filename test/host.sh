#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Prepares this host for the tests that need real libvirt, and undoes it.
#   test/host.sh start     as root: install the Debian packages that are missing,
#                          start virtlogd and libvirtd if they are not running
#   test/host.sh install   as root: install the missing ones of the packages
#                          listed in test/support/debian-packages.txt
#   test/host.sh stop      stop the daemons that `start` started (by the pid
#                          each wrote), nothing else
# Not root: says what is missing; those tests then skip and say why.
set -euo pipefail

mapfile -t PACKAGES < <(grep -v '^#' "$(dirname "$0")/support/debian-packages.txt")
STATE=/run/httpsisoboot-test
say() { echo "host.sh: $*" >&2; }

missing_packages() {
  local missing=()
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  echo "${missing[@]}"
}

install_packages() {
  if ! command -v dpkg-query >/dev/null; then
    say "not a Debian system: install the packages yourself (vagrant/provision.sh has the EL9 list)"
    return 0
  fi
  local missing
  missing=$(missing_packages "$@")
  [ -z "$missing" ] && return 0
  if [ "$(id -u)" != 0 ]; then
    say "missing Debian packages: $missing. Run the tests as root to install them, or: sudo apt-get install $missing"
    return 0
  fi
  say "installing $missing"
  apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

start_daemon() {
  local name=$1
  pgrep -x "$name" >/dev/null && return 0
  mkdir -p "$STATE"
  "$name" -d --pid-file "$STATE/$name.pid"
  echo "$name" >>"$STATE/started"
  say "started $name"
}

start() {
  install_packages "${PACKAGES[@]}"
  if [ "$(id -u)" != 0 ]; then
    virsh -c qemu:///system uri >/dev/null 2>&1 ||
      say "qemu:///system is not reachable; run the tests as root to start libvirtd. Tests that need it will be skipped."
    return 0
  fi
  # Debian's udev default; with a root-only /dev/kvm libvirtd re-probes QEMU on every call.
  if [ -e /dev/kvm ]; then chgrp kvm /dev/kvm 2>/dev/null && chmod 660 /dev/kvm; fi
  start_daemon virtlogd
  start_daemon libvirtd
  for _ in $(seq 1 120); do
    virsh -c qemu:///system uri >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  say "libvirtd did not answer on qemu:///system within 60 s"
  return 1
}

stop() {
  [ -f "$STATE/started" ] || return 0
  # Stop in reverse order: libvirtd before virtlogd; each by the pid it wrote.
  local name pid
  for name in $(tac "$STATE/started"); do
    pid=$(cat "$STATE/$name.pid" 2>/dev/null) || continue
    kill "$pid" 2>/dev/null && say "stopped $name"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
  rm -rf "$STATE"
}

case "${1:-}" in
  start) start ;;
  install) install_packages "${PACKAGES[@]}" ;;
  stop) stop ;;
  *) echo "usage: test/host.sh start | install | stop" >&2; exit 2 ;;
esac
