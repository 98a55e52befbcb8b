// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * Every limit the hook puts on what it reads, with the reason for its value.
 * Input beyond a limit is refused with one line naming the limit; nothing is
 * ever truncated or repaired.
 *
 * This module is pure: constants only.
 *
 * @module
 */

/**
 * The largest domain XML read: 4 MiB. VDSM hands the domain to libvirtd over
 * its RPC protocol, whose strings are at most REMOTE_STRING_MAX (4,194,304
 * bytes), so a larger domain could never start anyway. Real VDSM domains are
 * 5 to 60 KB.
 */
export const MAX_DOMAIN_BYTES = 4 * 1024 * 1024;

/**
 * The deepest element nesting: 256, libxml2's limit without XML_PARSE_HUGE,
 * which libvirt does not set ("Excessive depth in document: 256").
 */
export const MAX_DEPTH = 256;

/**
 * The most elements in a domain: 100,000. A domain at {@link MAX_DOMAIN_BYTES}
 * with libvirt's average of 40 bytes an element has about this many; the
 * 2,000-device domain of `npm run bench` (430 KB) has 10,000. It bounds memory for the
 * densest input, 4 MiB of `<a/>`.
 */
export const MAX_ELEMENTS = 100_000;

/** The most attributes in a domain, all elements together: 200,000, for the same reason. */
export const MAX_ATTRIBUTES = 200_000;

/**
 * The largest settings file: 64 KiB. It holds five keys; anything larger is
 * not a settings file.
 */
export const MAX_SETTINGS_BYTES = 64 * 1024;

/**
 * The most bytes of HTTP status line and headers preflight reads for one
 * response: 16 KiB, nginx's and Apache's default limit for request headers,
 * applied to the answer.
 */
export const MAX_HEADER_BYTES = 16 * 1024;

/** The volume descriptor preflight reads: one 2,048-byte sector at byte 32,768. */
export const DESCRIPTOR_OFFSET = 32_768;
export const DESCRIPTOR_BYTES = 2_048;

/** Redirects preflight follows, as QEMU's curl does at most (libcurl's default is 30; 5 is plenty). */
export const MAX_REDIRECTS = 5;

/**
 * How long the hook may run beyond `preflight_timeout`: reading, parsing and
 * writing a domain at the size limit takes well under a second; the rest is
 * margin for a slow host.
 */
export const HOOK_GRACE_MS = 3_000;

/** The longest text printed that came from elsewhere (a server, a file): 200 characters. */
export const MAX_SHOWN_CHARS = 200;

/**
 * How long a hook waits for another httpsisoboot's lock on the same domain
 * file: 10 s. A holder keeps it only to read, write, fsync and rename one
 * domain (about 3 ms for VDSM's; 130 ms at MAX_DOMAIN_BYTES), so ten hooks
 * started at once on one file all get their turn well within it.
 */
export const LOCK_WAIT_MS = 10_000;

/** How often a waiting hook tries the lock again. */
export const LOCK_POLL_MS = 5;

/**
 * How long the hook waits for a VM's relay to answer an NBD handshake with
 * the ISO's size (which takes it a HEAD through to the server): 30 s. One
 * relay is ready in about 0.1 s; twenty started at once on two busy cores
 * need a few seconds (npm run bench prints it). Past it the relay is
 * stopped, and the VM does not start.
 */
export const RELAY_READY_MS = 30_000;

/**
 * How long a relay gets to stop after SIGTERM before it is killed: 1.5 s,
 * so that nothing of a destroyed VM's relay is left 2 s after
 * after_vm_destroy starts.
 */
export const RELAY_STOP_MS = 1_500;

/** The largest relay configuration file read: it holds a URL and five settings. */
export const MAX_RELAY_CONFIG_BYTES = 64 * 1024;

/**
 * The relay reads the ISO from the server in blocks of 1 MiB, one ranged GET
 * each: 22 GETs for the e2e boot where QEMU's curl made 42, and 15 for a
 * 14 MB file where nbdkit's curl alone made 4,405 (issue 13). A fault costs
 * one block's retry.
 */
export const RELAY_BLOCK_BYTES = 1024 * 1024;

/**
 * The blocks of nbdkit's cache: 64 KiB, its default. A cache hit copies a
 * whole block out of the cache file: with 1 MiB blocks, 4,096 reads of 4 KiB
 * took 1.28 s (0.31 ms each) against 0.51 s with 64 KiB, and the guest's
 * reads are that small (GRUB reads 2 KiB sectors).
 */
export const RELAY_CACHE_BLOCK_BYTES = 64 * 1024;

/**
 * The blocks the relay's front holds in memory: 4 (4 MiB), so that the
 * sixteen 64 KiB reads of nbdkit's cache that a block serves make one GET,
 * even when the guest reads two or three places in turn.
 */
export const RELAY_FRONT_BLOCKS = 4;

/**
 * How often nbdkit's retry-request filter tries a failed read again, and how
 * many seconds it waits before each try: 5 and 2. A reset, a 503 or a short
 * body costs the guest 2 s; a reset every 3 MB costs one retry in three
 * blocks; a server gone for good fails the guest's read after 5 tries, not
 * never (the fault matrix in the README).
 */
export const RELAY_RETRIES = 5;
export const RELAY_RETRY_DELAY_S = 2;

/**
 * How long past `timeout` a guest's read of a block may take to fail,
 * whatever the server does: its retries' delays, RELAY_RETRIES ×
 * RELAY_RETRY_DELAY_S = 10 s, and 2 s for what the retries themselves take.
 * The front fails a retry of a block whose GET timed out at once, without
 * asking the server again, until a timeout has passed (front.ts): a server
 * that is merely slow costs the guest one timeout, not one per retry.
 */
export const RELAY_FAIL_MARGIN_S = RELAY_RETRIES * RELAY_RETRY_DELAY_S + 2;

/**
 * How many bytes the relay fetches over kept connections before it proves
 * the file's bytes again: 64 MiB. Every new connection to the ISO server is
 * proven before its first request, and a kept one once this many bytes
 * have come since the last proof: 34,816 bytes and one round trip each
 * (0.05 % of what they vouch for). A file replaced in place under the same
 * size and validator is found within this many bytes, and from then on the
 * relay serves none of it (route.ts, docs/design.md).
 */
export const RELAY_PROOF_EVERY_BYTES = 64 * 1024 * 1024;

/**
 * The most bytes the front holds unread from one connection to the ISO
 * server: 256 KiB. Past it the socket is paused until the front has taken
 * them, so a server that sends faster than the guest reads waits, and the
 * front's memory stays bounded however much it sends.
 */
export const RELAY_UPSTREAM_HELD_BYTES = 256 * 1024;
