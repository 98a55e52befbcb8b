// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * The host's allowlist of ISO servers. The engine's custom-property regex
 * usually lets any https URL through, so the host decides which servers its
 * VMs may boot from.
 *
 * This module is pure: it does no I/O.
 *
 * @module
 */
import { PolicyError } from "./errors.ts";
import type { AllowRule } from "./settings.ts";
import type { IsoUrl } from "./url.ts";

/**
 * Refuses a URL whose server the allowlist does not name. An empty list allows any.
 *
 * @param url The parsed URL.
 * @param allow The `allow` setting.
 * @param file The settings file, named in the message.
 * @param redirectedBy For a redirect target: who redirected there. The
 * message then names no server, since the target came from the server.
 * @throws {PolicyError} If the server is not allowed.
 * @example
 * ```ts
 * import { checkAllowed } from "./policy.ts";
 * import { parseIsoUrl } from "./url.ts";
 * import { PolicyError } from "./errors.ts";
 * import { assertThrows } from "./_assert.ts";
 * const allow = [{ host: ".example.net" }];
 * checkAllowed(parseIsoUrl("https://a.lab.example.net/x.iso"), allow, "/etc/vdsm/httpsisoboot.conf");
 * assertThrows(() => checkAllowed(parseIsoUrl("https://evil.example/x.iso"), allow, "/etc/vdsm/httpsisoboot.conf"), PolicyError);
 * ```
 */
export function checkAllowed(url: IsoUrl, allow: AllowRule[], file: string, redirectedBy?: string): void {
  if (allow.length === 0 || allow.some((rule) => matches(rule, url))) return;
  if (redirectedBy !== undefined) {
    throw new PolicyError(
      `${redirectedBy} that the 'allow' setting of ${file} does not name; give the VM a URL on an allowed server, ` +
        `or add the server it redirects to to 'allow'`,
    );
  }
  const server = url.host.includes(":") ? `[${url.host}]:${url.port}` : `${url.host}:${url.port}`;
  throw new PolicyError(
    `the ISO server ${server} is not in the 'allow' setting of ${file}; add it there, or use an allowed server`,
  );
}

function matches(rule: AllowRule, url: IsoUrl): boolean {
  if (rule.port !== undefined && rule.port !== url.port) return false;
  const host = url.host.replace(/\.$/, "");
  if (rule.host.startsWith(".")) return host.endsWith(rule.host) || host === rule.host.slice(1);
  return host === rule.host.replace(/\.$/, "");
}

/**
 * The warning `--check` and `--install` give while `allow` is unset; undefined once it is set.
 *
 * @example
 * ```ts
 * import { allowWarning } from "./policy.ts";
 * import { assertEquals } from "./_assert.ts";
 * assertEquals(allowWarning([], "/etc/vdsm/httpsisoboot.conf")?.startsWith("allow is not set in /etc/vdsm/httpsisoboot.conf"), true);
 * assertEquals(allowWarning([{ host: "isos.example.org" }], "/etc/vdsm/httpsisoboot.conf"), undefined);
 * ```
 */
export function allowWarning(allow: AllowRule[], file: string): string | undefined {
  if (allow.length > 0) return undefined;
  return `allow is not set in ${file}, so any server is allowed: any user who may start a VM can make this host ` +
    `connect to any host and port; set allow to your ISO servers`;
}
