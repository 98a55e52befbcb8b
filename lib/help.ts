// SPDX-License-Identifier: GPL-2.0-or-later
/** The `--help` text; loaded only when asked for, to keep hook start-up lean. */
export const HELP = `httpsisoboot: boot a VM from an ISO image served over https

VDSM hook (before_vm_start), installed as
  /usr/libexec/vdsm/hooks/before_vm_start/50_httpsisoboot

Usage:
  httpsisoboot                      hook mode, as VDSM runs it
  httpsisoboot --dry-run [--url URL] [--diff] [FILE|-]
  httpsisoboot --check URL
  httpsisoboot --help | --version

Hook mode reads two environment variables:
  _hook_domxml   path of the domain XML file, rewritten in place
  httpsisoboot   the VM custom property: https://server[:port]/path/disk.iso[?query]
With httpsisoboot unset or empty it does nothing.

Host settings: /etc/vdsm/httpsisoboot.conf (or $HTTPSISOBOOT_CONFIG), key = value:
  timeout, readahead        written into the disk's <source> for QEMU
  preflight, preflight_timeout
                            in hook mode, check the server before the VM
                            starts (yes, 5 s); --check does it by hand
  allow                     the only ISO servers VMs may use

It adds a read-only network CD-ROM for the URL with <boot order='1'/>, moves
every other boot device down one, and converts <os><boot dev> to per-device
orders. A second run with the same URL changes nothing.

Options:
  --dry-run     print the resulting domain XML on stdout, query values shown
                as ***; never writes, and does not contact the server
  --url URL     the ISO URL for --dry-run (default: $httpsisoboot)
  --diff        with --dry-run, print a unified diff instead of the XML
  FILE|-        the domain XML for --dry-run (default: $_hook_domxml; - is stdin)
  --check URL   ask the ISO server what QEMU will ask (TLS trusted by this
                host, size, byte ranges, an ISO image) and print what it found
  --debug       print a stack trace on failure
  -h, --help    show this help
  -V, --version print the version

Exit codes:
  0  done, or nothing to do
  2  failed: one line "httpsisoboot: <what is wrong>" on stderr; the domain
     XML file is left byte-identical and VDSM does not start the VM
`;
