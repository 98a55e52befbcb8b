// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * httpsisoboot(8), in roff: what the RPM ships and `--install` installs,
 * so the bare binary carries it. Loaded only by the install path.
 *
 * This module is pure: one constant.
 *
 * @module
 */
import { VERSION } from "./version.ts";

/** The man page's text. */
export const MANUAL = `.TH HTTPSISOBOOT 8 "" "httpsisoboot ${VERSION}" "System Administration"
.SH NAME
httpsisoboot \\- VDSM hook: boot an oVirt VM from an ISO image served over https
.SH SYNOPSIS
.B /usr/libexec/vdsm/hooks/before_vm_start/50_httpsisoboot
.br
.B httpsisoboot \\-\\-check
.I URL
.br
.B httpsisoboot \\-\\-dry\\-run
.RB [ \\-\\-url
.IR URL ]
.RB [ \\-\\-diff ]
.RI [ FILE | \\- ]
.br
.B httpsisoboot \\-\\-status
.br
.B httpsisoboot \\-\\-install
.RB [ \\-\\-root
.IR DIR ]
.br
.B httpsisoboot \\-\\-uninstall
.RB [ \\-\\-dry\\-run ]
.RB [ \\-\\-root
.IR DIR ]
.br
.B httpsisoboot \\-\\-relay
.I UUID
.SH DESCRIPTION
When a VM has the custom property
.BR httpsisoboot =\\fIURL\\fR,
the hook adds a read\\-only CD\\-ROM that reads the ISO at that https URL and
boots first (\\fI<boot order='1'/>\\fR); every other boot device moves down one.
Nothing is imported into a storage domain.
.PP
By default the CD\\-ROM reads the ISO through a relay of the VM's own: nbdkit
with a cache and retries on \\fI/run/httpsisoboot/UUID.sock\\fR, behind a front
that alone holds the URL and checks every answer from the server. A reset, a
503 or a stall is retried; a file changed on the server (its size, its
validator, or its first 34,816 bytes, which every new connection proves) is
refused from then on. With \\fBrelay = off\\fR QEMU's curl driver reads the URL itself.
.PP
Before the VM starts the hook asks the server what QEMU will ask (TLS trusted
by the host, the size, byte ranges, an ISO 9660 or UDF image). On any failure
it prints one line, \\fBhttpsisoboot: \\fR\\fIwhat is wrong and what to do\\fR,
exits 2, and leaves the domain XML byte\\-identical; VDSM then does not start the
VM and the engine shows that line.
.SH HOOK POINTS
VDSM runs the hook as user vdsm (uid 36). One binary,
\\fI/usr/libexec/vdsm/httpsisoboot\\fR, is linked as \\fB50_httpsisoboot\\fR into
each point's directory under \\fI/usr/libexec/vdsm/hooks/\\fR and reads the point
from it:
.TP
.B before_vm_start
checks the URL and the server, starts the VM's relay, adds the CD\\-ROM.
.TP
.BR before_vm_migrate_destination ", " before_vm_dehibernate
start the relay again on the host the VM lands on.
.TP
.BR after_vm_destroy ", " after_vm_migrate_source ", " after_vm_hibernate
stop the relay.
.SH OPTIONS
.TP
.BI \\-\\-check " URL"
Ask the server what QEMU will ask, and report whether relays can run here:
nbdkit, the relays' directories, how relays start, SELinux, and whether
\\fBallow\\fR is set. Exit 2 when a VM would not start.
.TP
.B \\-\\-dry\\-run
Print the domain XML the hook would write (query values as ***), or with
\\fB\\-\\-diff\\fR a unified diff. Takes the URL from \\fB\\-\\-url\\fR or
\\fB$httpsisoboot\\fR, the domain from \\fIFILE\\fR, \\fB\\-\\fR (stdin) or
\\fB$_hook_domxml\\fR. Never writes, starts nothing, asks no server.
.TP
.B \\-\\-status
The relays on this host: the VM, the server (query values as ***), bytes
served and fetched, blocks from disk, retries, the last error.
.TP
.B \\-\\-install
As root: copy this binary into place, link it at every hook point, and write
the relay's unit, the polkit rule, tmpfiles.d, the SELinux module (loaded
where SELinux is enabled), this page, and the settings file (kept if present).
Refuses a host without nbdkit, the vdsm user or the qemu group.
\\fB\\-\\-root\\fR \\fIDIR\\fR stages the files under DIR instead.
.TP
.B \\-\\-uninstall
Remove all of that but the settings, the relays' directories and the SELinux
module with it. Refused while relays run. With \\fB\\-\\-dry\\-run\\fR it only
says whether it would be refused (the RPM's erase asks it).
.TP
.BI \\-\\-relay " UUID"
A VM's relay; the hook or systemd starts it.
.TP
.B \\-\\-debug
Add a stack trace to a failure.
.SH SETTINGS
\\fI/etc/vdsm/httpsisoboot.conf\\fR holds \\fIkey = value\\fR lines; every key is
explained, commented out, in the file the package installs. An unknown key or
a bad value stops the VM with a line naming the file, the line and the key.
.TP
.B allow
The only ISO servers VMs may use: host names, \\fI.domain\\fR suffixes and IP
addresses, each with an optional :port. \\fBUnset, any server is allowed\\fR:
any user who may start a VM can make this host connect to any host and port.
\\fB\\-\\-check\\fR and \\fB\\-\\-install\\fR warn while it is unset. Set it.
.TP
.BR proxy ", " no_proxy
The HTTP proxy ISO servers are reached through (\\fIhttp://user:password@host:port\\fR),
and the hosts reached directly. Preflight and the relays tunnel with CONNECT,
TLS end to end to the ISO server. The credentials stay in the settings file.
.TP
.B relay
\\fBnbdkit\\fR (default) or \\fBoff\\fR (which cannot use a proxy).
.TP
.BR relay_cache_size ", " relay_cache_total ", " relay_shared_cache
Disk for each relay's cache (1G), for all of them (50% of free space), and for
the blocks VMs on the same ISO share (4G).
.TP
.BR relay_readahead ", " relay_host_connections
Read\\-ahead for guests that read in order (32M); connections all relays open
at once (64).
.TP
.BR timeout ", " readahead ", " preflight ", " preflight_timeout
Seconds a server may stay silent (30); QEMU's readahead with relay = off;
whether and how long to check the server before the VM starts (yes, 5).
.SH ENGINE SETUP
Allow the custom property on the engine for every cluster level your VMs use.
Use \\fB\\-m\\fR, which merges; \\fB\\-s\\fR replaces every other custom property:
.PP
.nf
engine\\-config \\-g UserDefinedVMProperties
engine\\-config \\-m UserDefinedVMProperties='httpsisoboot=^https://.*$' \\-\\-cver=4.7
systemctl restart ovirt\\-engine
.fi
.PP
Then start the VM with \\fBRun Once\\fR, Custom Properties, \\fBhttpsisoboot\\fR =
the ISO's URL.
.SH TROUBLESHOOTING
.TP
The VM does not start, with "Hook Error: httpsisoboot: ..."
The line says what is wrong and what to do. Run
\\fBhttpsisoboot \\-\\-check\\fR \\fIURL\\fR on the host for the whole report.
.TP
The VM starts but the CD\\-ROM reads fail
\\fBhttpsisoboot \\-\\-status\\fR shows the relay's last error and retries;
\\fBjournalctl \\-u httpsisoboot\\-relay@\\fR\\fIUUID\\fR shows its log.
.TP
SELinux denials (EL, enforcing)
\\fB\\-\\-check\\fR says whether the module is loaded and how
\\fI/run/httpsisoboot\\fR is labelled; load it with
\\fBsemodule \\-i /usr/share/selinux/packages/httpsisoboot.cil\\fR and run
\\fBrestorecon \\-R /run/httpsisoboot\\fR.
.TP
"relay directory ... is missing"
\\fBsystemd\\-tmpfiles \\-\\-create /usr/lib/tmpfiles.d/httpsisoboot.conf\\fR.
.SH FILES
.TP
.I /usr/libexec/vdsm/httpsisoboot
the binary; each hook point's \\fB50_httpsisoboot\\fR links to it
.TP
.I /etc/vdsm/httpsisoboot.conf
settings
.TP
.I /run/httpsisoboot/
relays' sockets, pid, config and status files (vdsm:qemu 0750)
.TP
.I /var/cache/httpsisoboot/
relays' caches and the shared block cache (vdsm:qemu 0700); emptied at boot
.TP
.I /usr/lib/systemd/system/httpsisoboot\\-relay@.service
a VM's relay
.TP
.I /usr/share/polkit\\-1/rules.d/50\\-httpsisoboot.rules
lets vdsm start and stop relay units, nothing more
.TP
.I /usr/share/selinux/packages/httpsisoboot.cil
the SELinux module
.TP
.I /usr/share/doc/vdsm\\-hook\\-httpsisoboot/
README.md and docs/: design, security, performance, operations
.SH EXIT STATUS
.TP
.B 0
done, or nothing to do (the property unset or empty, the CD\\-ROM already there)
.TP
.B 2
failed: one line on stderr; the domain XML is unchanged and the VM does not start
.SH EXAMPLES
.nf
httpsisoboot \\-\\-check 'https://isos.example.org/el9/boot.iso'
virsh \\-r dumpxml myvm > saved.xml
httpsisoboot \\-\\-dry\\-run \\-\\-diff \\-\\-url 'https://isos.example.org/el9/boot.iso' saved.xml
.fi
.SH SEE ALSO
.BR vdsm (8),
.BR nbdkit (1),
.BR nbdkit\\-curl\\-plugin (1),
.BR semodule (8),
.I /usr/share/doc/vdsm\\-hook\\-httpsisoboot/README.md
`;
