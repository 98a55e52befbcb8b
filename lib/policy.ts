/**
 * The host's allowlist of ISO servers. The engine's custom-property regex
 * usually lets any https URL through, so the host decides which servers its
 * VMs may boot from.
 *
 * This module is pure: it does no I/O.
 *
 * @module
 */
import type { AllowRule } from "./settings.ts";
import type { IsoUrl } from "./url.ts";

/**
 * Refuses a URL whose server the allowlist does not name. An empty list allows any.
 *
 * @param url The parsed URL.
 * @param allow The `allow` setting.
 * @param file The settings file, named in the message.
 * @throws {RangeError} If the server is not allowed.
 * @example
 * ```ts
 * import { checkAllowed } from "./policy.ts";
 * import { parseIsoUrl } from "./url.ts";
 * checkAllowed(parseIsoUrl("https://a.lab.example.net/x.iso"), [{ host: ".example.net" }], "/etc/httpsisoboot.conf"); // allowed
 * ```
 */
export function checkAllowed(url: IsoUrl, allow: AllowRule[], file: string): void {
  if (allow.length === 0 || allow.some((rule) => matches(rule, url))) return;
  const server = url.host.includes(":") ? `[${url.host}]:${url.port}` : `${url.host}:${url.port}`;
  throw new RangeError(
    `the ISO server ${server} is not in the 'allow' setting of ${file}; add it there, or use an allowed server`,
  );
}

function matches(rule: AllowRule, url: IsoUrl): boolean {
  if (rule.port !== undefined && rule.port !== url.port) return false;
  const host = url.host.replace(/\.$/, "");
  if (rule.host.startsWith(".")) return host.endsWith(rule.host) || host === rule.host.slice(1);
  return host === rule.host.replace(/\.$/, "");
}
