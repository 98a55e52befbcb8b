// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * Where a redirect leads, held to the hook's rules: an https URL that
 * parseIsoUrl accepts (QEMU fetches it as written), on a server the host's
 * `allow` setting names. Preflight and the relay's front both follow
 * redirects, with this one check.
 *
 * This module is pure: it does no I/O.
 *
 * @module
 */
import { HookError, ServerError } from "./errors.ts";
import { checkAllowed } from "./policy.ts";
import type { AllowRule } from "./settings.ts";
import { type IsoUrl, parseIsoUrl } from "./url.ts";

/**
 * The URL a redirect leads to, held to the same rules as the first. What
 * the Location header says never reaches a message.
 *
 * @param location The Location header.
 * @param current The URL that answered with it.
 * @param rules `allow` and the settings file; `where` and `status`, what redirected and how, for the message.
 * @throws {ServerError} If the target is not a URL the hook accepts.
 * @throws {PolicyError} If `allow` does not name its server.
 * @example
 * ```ts
 * import { redirectTarget } from "./redirect.ts";
 * import { parseIsoUrl } from "./url.ts";
 * import { assertEquals } from "./_assert.ts";
 * const current = parseIsoUrl("https://a.example/x.iso?sig=1");
 * const rules = { allow: [{ host: ".example" }], settingsFile: "f", where: "https://a.example:443/x.iso", status: 302 };
 * assertEquals(redirectTarget("https://b.example/y.iso", current, rules).host, "b.example");
 * let refused = "";
 * try { redirectTarget("http://b.example/y.iso", current, rules); } catch (error) { refused = (error as Error).message; }
 * assertEquals(refused.includes("to an http:// URL, and the ISO is read over https only"), true);
 * ```
 */
export function redirectTarget(
  location: string,
  current: IsoUrl,
  rules: { allow: AllowRule[]; settingsFile: string; where: string; status: number },
): IsoUrl {
  const redirects = `${rules.where} redirects (HTTP ${rules.status}) to`;
  let next: IsoUrl;
  try {
    next = parseIsoUrl(resolveLocation(location, current));
  } catch (error) {
    if (!(error instanceof HookError)) throw error;
    if (/^http:/i.test(location.trim())) {
      throw new ServerError(
        `${redirects} an http:// URL, and the ISO is read over https only: make the server redirect to https, ` +
          `or give the VM an https URL that does not lead to http`,
      );
    }
    throw new ServerError(
      `${redirects} a URL the hook refuses (not https, or not a URL QEMU would fetch as written); ` +
        `make the server redirect to a plain https URL, or give the VM another server's URL`,
    );
  }
  checkAllowed(next, rules.allow, rules.settingsFile, `${redirects} a server`);
  return next;
}

/**
 * Resolves a Location header against the current URL without a URL parser
 * that would rewrite the host (`0x7f000001` to `127.0.0.1`) or the path: an
 * absolute URL is taken as written, `//host/…` gets `https:`, and a path is
 * joined to the current server.
 */
export function resolveLocation(location: string, current: IsoUrl): string {
  if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(location)) return location;
  if (location.startsWith("//")) return `https:${location}`;
  const origin = current.href.slice(0, current.href.length - current.requestTarget.length);
  if (location.startsWith("/")) return origin + location;
  const directory = current.requestTarget.split("?")[0].replace(/[^/]*$/, "");
  return origin + directory + location;
}
