// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * The files a host needs beside the binary, as text: the relay's systemd
 * unit, the polkit rule that lets vdsm start and stop only those units, the
 * tmpfiles.d entry that makes the relays' directories, and the settings
 * file with every default commented. One source for both ways onto a host:
 * the RPM (scripts/rpm/build.sh writes them as its sources) and
 * `httpsisoboot --install`, which plans with installPlan() here.
 *
 * This module is pure: constants and plans, no I/O.
 *
 * @module
 */
import { HOOK_POINTS } from "./hook_point.ts";
import { MANUAL } from "./manual.ts";
import { SELINUX_MODULE_PATH } from "./selinux.ts";

/** Where the binary lives on a host: VDSM's libexec directory, beside its hooks. */
export const BINARY_PATH = "/usr/libexec/vdsm/httpsisoboot";

/** Where VDSM looks for hooks, one directory per point. */
export const HOOKS_DIR = "/usr/libexec/vdsm/hooks";

/** The hook's name in each point's directory: 50, after VDSM's own hooks that change disks. */
export const HOOK_NAME = "50_httpsisoboot";

/** One file a host needs: where it goes, its mode, and its text. */
export interface HostFile {
  path: string;
  mode: number;
  text: string;
  /** The admin's to change: installed only where there is none, and never removed. */
  config?: boolean;
}

/** The relay of one VM, as a systemd template unit (see its comments). */
export const RELAY_UNIT: HostFile = {
  path: "/usr/lib/systemd/system/httpsisoboot-relay@.service",
  mode: 0o644,
  text: `# SPDX-License-Identifier: GPL-2.0-or-later
# The relay of one VM's https CD-ROM: httpsisoboot's front, which alone holds
# the ISO's URL, and nbdkit, which serves it to QEMU on
# /run/httpsisoboot/%i.sock with a cache and retries. See httpsisoboot(8).
#
# The hook starts and stops it (the polkit rule lets vdsm do so for these
# units only). It lives in its own cgroup, so a restart of vdsmd, which
# kills vdsmd's whole cgroup, leaves it, and the VM's CD-ROM, running.
[Unit]
Description=httpsisoboot relay of VM %i
Documentation=man:httpsisoboot(8)
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
ExecStart=/usr/libexec/vdsm/httpsisoboot --relay %i
Restart=on-failure
RestartSec=1s
# As vdsm, which wrote its config, in group qemu: only QEMU's own group
# connects to its socket (vdsm:qemu 0660), not every user in kvm.
User=vdsm
Group=qemu
UMask=0007
# What it needs: its two directories, the network, and the host's trust store.
ReadWritePaths=/run/httpsisoboot /var/cache/httpsisoboot
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
# What vdsm has that the relay must not: its keys, its state, and libvirt's sockets.
InaccessiblePaths=-/etc/pki/vdsm -/var/lib/vdsm -/run/vdsm -/run/libvirt -/rhev
NoNewPrivileges=yes
CapabilityBoundingSet=
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
# The Bun binary and nbdkit run without writable and executable memory (tested).
MemoryDenyWriteExecute=yes
ProtectClock=yes
ProtectHostname=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM
# Its cache is on disk (relay_cache_size); in memory it needs about 60 MiB.
MemoryMax=512M
TasksMax=64
`,
};

/** The polkit rule: vdsm may start and stop relay units, and nothing more. */
export const POLKIT_RULE: HostFile = {
  path: "/usr/share/polkit-1/rules.d/50-httpsisoboot.rules",
  mode: 0o644,
  text: `// SPDX-License-Identifier: GPL-2.0-or-later
// httpsisoboot (httpsisoboot(8)): vdsm, which runs the hook, may start and stop
// the relay units of VMs, httpsisoboot-relay@<uuid>.service, and nothing more.
// Every other unit, verb and user is left to the rules that follow.
polkit.addRule(function (action, subject) {
  if (action.id !== "org.freedesktop.systemd1.manage-units" || subject.user !== "vdsm") return polkit.Result.NOT_HANDLED;
  var unit = action.lookup("unit");
  var verb = action.lookup("verb");
  var relay = /^httpsisoboot-relay@[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\\.service$/;
  if (relay.test(unit) && (verb === "start" || verb === "stop")) return polkit.Result.YES;
  return polkit.Result.NOT_HANDLED;
});
`,
};

/** The relays' directories, made at boot by systemd-tmpfiles. */
export const TMPFILES: HostFile = {
  path: "/usr/lib/tmpfiles.d/httpsisoboot.conf",
  mode: 0o644,
  text: `# SPDX-License-Identifier: GPL-2.0-or-later
# The relays' directories (httpsisoboot(8)): sockets and state, made anew at
# boot; and caches, emptied at boot. Only vdsm makes files in them, so no one
# can plant a socket or a link where a VM's relay will be. QEMU, in group
# qemu (its own, which vdsm is in), enters the first to reach its socket,
# vdsm:qemu 0660: not kvm, which other users may be in. The caches are the
# relays' alone.
d /run/httpsisoboot 0750 vdsm qemu -
D /var/cache/httpsisoboot 0700 vdsm qemu -
`,
};

/**
 * The SELinux module, for hosts with SELinux enforcing: QEMU (svirt_t, with
 * the VM's categories) may enter the relays' directory and write a relay's
 * socket file. docs/security.md says what EL9's policy shows of it.
 */
export const SELINUX_MODULE: HostFile = {
  path: SELINUX_MODULE_PATH,
  mode: 0o644,
  text: `; SPDX-License-Identifier: GPL-2.0-or-later
; httpsisoboot (httpsisoboot(8)), for hosts with SELinux enforcing.
;
; QEMU runs confined (svirt_t, with the VM's MCS categories) and must connect
; to its relay's socket in /run/httpsisoboot:
; - nbdkit labels its listening socket svirt_socket_t (--selinux-label, as
;   libvirt's own nbdkit support does), which svirt_t may connect to;
; - the socket file takes its directory's type; this file context makes that
;   svirt_image_t at s0, which svirt_t may write (s0 is dominated by every
;   VM's categories).
; The relay itself is a systemd service run from a bin_t file, so it runs
; as unconfined_service_t, which may reach the network and its directories.
; Loaded with semodule -i by the RPM and by httpsisoboot --install where
; SELinux is enabled; httpsisoboot --check says whether it is.
(filecon "/run/httpsisoboot(/.*)?" any (system_u object_r svirt_image_t ((s0) (s0))))
`,
};

/** httpsisoboot(8), which the bare binary installs as the RPM does (uncompressed: man reads both). */
export const MAN_PAGE: HostFile = { path: "/usr/share/man/man8/httpsisoboot.8", mode: 0o644, text: MANUAL };

/** The settings file, every default commented out. */
export const SETTINGS_EXAMPLE: HostFile = {
  path: "/etc/vdsm/httpsisoboot.conf",
  mode: 0o644,
  text: `# SPDX-License-Identifier: GPL-2.0-or-later
# /etc/vdsm/httpsisoboot.conf: host settings of the httpsisoboot VDSM hook.
# One "key = value" a line; '#' starts a comment. A key left out takes the
# default shown. A typo or an unknown key stops every VM that has the
# httpsisoboot property with a line naming this file, the line and the key.
# See httpsisoboot(8).

# How the VM reads the ISO. nbdkit: through a relay of its own (nbdkit with a
# cache and retries, behind a front that checks every answer), started by the
# hook and stopped when the VM is gone, so that a reset, a 503 or a stall
# during an install is retried instead of hanging the VM or feeding it wrong
# bytes. off: QEMU's curl driver reads the URL itself, with no retries (the
# Python hook's way; needs qemu-kvm-block-curl).
#relay = nbdkit

# The most disk each VM's relay may use for its cache, in bytes (K, M and G
# are 1024-based), from 16M. It lives in /var/cache/httpsisoboot while the
# VM runs.
#relay_cache_size = 1G

# The most disk all relays' caches on this host take together: bytes, or a
# share of what /var/cache/httpsisoboot's file system has free when a relay
# starts. A relay that would pass it is refused before its VM starts.
#relay_cache_total = 50%

# Bytes a relay reads ahead of a guest that reads the ISO in order (an
# installer), in whole MiB, over up to 14 GETs at once, so that a remote
# server's round trip is paid once per 16 MiB rather than once per MiB. The
# blocks wait on disk, not in memory. A read out of order stops it. 0 turns
# it off.
#relay_readahead = 32M

# The most disk the host's shared block cache takes, in
# /var/cache/httpsisoboot/shared: at most what relay_cache_total leaves
# beside the relays' own caches, so it never refuses a VM. VMs on the
# same ISO (same server, path, strong ETag and size) download it once, and
# a VM that reboots reads it again from here; each VM's relay first asks the
# server itself, with its own URL, and shares nothing unless the server
# answers it with that ETag and size. 0 turns sharing off.
#relay_shared_cache = 4G

# The most connections all relays of this host open to ISO servers at once.
#relay_host_connections = 64

# Seconds the ISO server may stay silent on one request before it is given
# up on (and, in relay mode, retried). With relay = off it is written as
# <timeout seconds> in the CD-ROM's <source>, where QEMU's own default is 5.
#timeout = 30

# Bytes QEMU reads beyond each request, a multiple of 512, written as
# <readahead size> (relay = off only). QEMU's own default is 262144.
#readahead = 1048576

# Ask the ISO server QEMU's questions (TLS, size, byte ranges, an ISO image)
# before the VM starts, so that a bad server stops the VM with one clear line.
#preflight = yes

# The whole preflight's time limit, in seconds (1 to 120).
#preflight_timeout = 5

# The HTTP proxy this host reaches ISO servers through, if it has one:
# http://host:port, or https://host:port for TLS to the proxy itself, with
# user:password@ when it asks for credentials (percent-encode @ : and #).
# Preflight and the relays open a CONNECT tunnel and speak TLS to the ISO
# server through it, so every check of the server holds. The credentials
# stay in this file, which the relays read: if it holds some, let only root
# and vdsm read it. relay = off cannot use a proxy (QEMU's curl has none).
#proxy = http://proxy.example.net:3128

# Hosts reached directly, not through the proxy: host names, .domain
# suffixes and IP addresses, comma-separated.
#no_proxy = .lab.example.net, 192.0.2.10

# SET THIS. The only ISO servers VMs may boot from: host names, .domain
# suffixes (a name and everything under it) and IP addresses, each with an
# optional :port, comma-separated. While it is unset ANY server is allowed:
# any VM user who may set the custom property can make this host connect to
# any host and port inside your network. httpsisoboot --check warns until it
# is set.
#allow = isos.example.org, .lab.example.net:8443, 192.0.2.10
`,
  config: true,
};

/** Every file beside the binary, in the order they are installed. */
export const HOST_FILES: readonly HostFile[] = [
  RELAY_UNIT,
  POLKIT_RULE,
  TMPFILES,
  SELINUX_MODULE,
  MAN_PAGE,
  SETTINGS_EXAMPLE,
];

/** One step of an install. */
export type InstallStep =
  | { kind: "binary"; path: string }
  | { kind: "link"; path: string; target: string }
  | { kind: "file"; file: HostFile };

/**
 * What `--install` puts on a host, under `root` ("" for the host itself):
 * the binary, a link to it at every hook point, and the host files.
 *
 * @example
 * ```ts
 * import { installPlan } from "./host_files.ts";
 * import { assertEquals } from "./_assert.ts";
 * const plan = installPlan("/stage");
 * assertEquals(plan[0], { kind: "binary", path: "/stage/usr/libexec/vdsm/httpsisoboot" });
 * assertEquals(plan[1], { kind: "link", path: "/stage/usr/libexec/vdsm/hooks/before_vm_start/50_httpsisoboot", target: "../../httpsisoboot" });
 * assertEquals(plan.length, 1 + 6 + 6);
 * ```
 */
export function installPlan(root: string): InstallStep[] {
  return [
    { kind: "binary", path: `${root}${BINARY_PATH}` },
    ...HOOK_POINTS.map((point): InstallStep => ({
      kind: "link",
      path: `${root}${HOOKS_DIR}/${point}/${HOOK_NAME}`,
      // Relative, as the RPM makes them: the same under a staging root and on the host.
      target: "../../httpsisoboot",
    })),
    ...HOST_FILES.map((file): InstallStep => ({ kind: "file", file: { ...file, path: `${root}${file.path}` } })),
  ];
}
