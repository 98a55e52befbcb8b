// SPDX-License-Identifier: GPL-2.0-or-later
/** The `--help` text; loaded only when asked for, to keep hook start-up lean. */
export const HELP = `httpsisoboot: boot a VM from an ISO image served over https

VDSM hook, installed as /usr/libexec/vdsm/httpsisoboot and linked as
50_httpsisoboot into /usr/libexec/vdsm/hooks/ before_vm_start,
before_vm_migrate_destination, before_vm_dehibernate, after_vm_destroy,
after_vm_migrate_source and after_vm_hibernate; it reads the hook point
from the directory it was run from (before_vm_start anywhere else).

Usage:
  httpsisoboot                      hook mode, as VDSM runs it
  httpsisoboot --dry-run [--url URL] [--diff] [FILE|-]
  httpsisoboot --check URL
  httpsisoboot --relay UUID         a VM's relay (the hook, or systemd, starts it)
  httpsisoboot --status             the relays on this host: VM, server, bytes
                                    served and fetched, cache hits, retries,
                                    last error
  httpsisoboot --install [--root DIR]
                                    as root, put this binary at every hook point,
                                    with the relay's unit, polkit rule, tmpfiles.d,
                                    SELinux module (loaded where SELinux is on),
                                    man page and settings (what the RPM installs)
  httpsisoboot --uninstall [--dry-run] [--root DIR]
                                    take all of that away, but the settings;
                                    refused while relays run (--dry-run: only
                                    say whether it would be)
  httpsisoboot --help | --version

Hook mode reads two environment variables:
  _hook_domxml   path of the domain XML file, rewritten in place
  httpsisoboot   the VM custom property: https://server[:port]/path/disk.iso[?query]
With httpsisoboot unset or empty it does nothing.

Host settings: /etc/vdsm/httpsisoboot.conf (or $HTTPSISOBOOT_CONFIG), key = value:
  relay                     nbdkit (default): the VM reads the ISO through a
                            relay of its own, with a cache and retries;
                            off: QEMU's curl driver reads the URL itself
  relay_cache_size          the most disk a relay's cache takes (1G)
  relay_cache_total         the most all relays' caches take together:
                            bytes, or a share of the free space (50%)
  relay_readahead           bytes a relay reads ahead of a guest that
                            reads in order, whole MiB, 0 for none (32M)
  relay_shared_cache        the most disk the host's shared block cache
                            takes (4G; at most what relay_cache_total
                            leaves beside the relays' own caches): VMs
                            on the same ISO (same server, path, strong ETag
                            and size) download it once; 0 for no sharing
  relay_host_connections    the most connections all relays open to ISO
                            servers together (64)
  timeout                   seconds the server may stay silent on a request
  readahead                 relay = off: QEMU's readahead, in bytes
  preflight, preflight_timeout
                            in hook mode, check the server before the VM
                            starts (yes, 5 s); --check does it by hand
  allow                     the only ISO servers VMs may use

before_vm_start starts the VM's relay (nbdkit on /run/httpsisoboot/UUID.sock,
behind a front that alone holds the URL), waits until it answers, and adds a
read-only CD-ROM on it with <boot order='1'/>, the URL kept in the domain's
<metadata>; with relay = off, a network CD-ROM for the URL itself. It moves
every other boot device down one, and converts <os><boot dev> to per-device
orders. A second run with the same URL changes nothing. A migration's
destination and a resume start the relay again from the metadata; the VM's
destruction, migration away and hibernation stop it.

Options:
  --dry-run     print the resulting domain XML on stdout, query values shown
                as ***, and what the relay would run; never writes, starts
                nothing, and does not contact the server
  --url URL     the ISO URL for --dry-run (default: $httpsisoboot)
  --diff        with --dry-run, print a unified diff instead of the XML
  FILE|-        the domain XML for --dry-run (default: $_hook_domxml; - is stdin)
  --check URL   ask the ISO server what QEMU will ask (TLS trusted by this
                host, size, byte ranges, an ISO image), say whether the relay
                can run here, and print what it found
  --debug       print a stack trace on failure
  -h, --help    show this help
  -V, --version print the version

Exit codes:
  0  done, or nothing to do
  2  failed: one line "httpsisoboot: <what is wrong>" on stderr; the domain
     XML file is left byte-identical and VDSM does not start the VM
`;
