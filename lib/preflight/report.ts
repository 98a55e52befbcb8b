// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * What preflight (edge/preflight.ts) is asked and what it reports, as
 * types: the plans in lib/ (run.ts's --check report) read them.
 *
 * This module is pure: types only.
 *
 * @module
 */
import type { Validator } from "../relay/http.ts";
import type { AllowRule } from "../settings.ts";
import type { NoProxyRule, Proxy } from "../proxy.ts";

/** What preflight found. */
export interface ServerReport {
  /** The URL after redirects, query values hidden. */
  finalUrl: string;
  /** The URL after redirects as the relay's blocks name it (shared.ts's blockSource): its server and path. */
  at: string;
  /** Redirects followed. */
  redirects: number;
  /** The ISO's size in bytes, from Content-Length. */
  size: number;
  /** The common name of the certificate's issuer. */
  issuer: string;
  /** "ISO 9660" or "UDF". */
  format: string;
  /** The ISO 9660 volume label, printable, when there is one. */
  label: string;
  /** What names this version of the file (a strong ETag, or Last-Modified), when the server sends one. */
  validator?: Validator;
  /** The status HEAD got from a server that serves ranged GETs but refuses HEAD (S3 to a URL signed for GET). */
  headRefused?: number;
}

export interface PreflightOptions {
  /** The whole check's time limit, in milliseconds. */
  timeoutMs: number;
  /** The host's `allow` setting, applied to every redirect target too. */
  allow: AllowRule[];
  /** The settings file, named in messages. */
  settingsFile: string;
  /** The trust bundle; the system's when absent. */
  caFile?: string;
  /**
   * Whether the server must name the file's version (relay mode): the relay
   * checks it on every answer, so a server without one is refused here.
   */
  requireValidator?: boolean;
  /** Whether QEMU's curl driver reads the ISO (relay = off): it asks HEAD, so a server that refuses HEAD is refused. */
  needsHead?: boolean;
  /** The HTTP proxy the server is reached through, but for the hosts `noProxy` names (proxy.ts). */
  proxy?: Proxy;
  noProxy?: NoProxyRule[];
}
