// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * The host's system trust bundle: the one QEMU's GnuTLS reads, never the
 * runtime's own roots.
 *
 * @module
 */
import { existsSync } from "node:fs";
import { ServerError } from "../../lib/errors.ts";

/** System trust bundles: EL's, then Debian's. */
const TRUST_BUNDLES = ["/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/certs/ca-certificates.crt"];

/**
 * The first system trust bundle that exists.
 *
 * @throws {ServerError} If there is none.
 */
export function systemTrustBundle(): string {
  const found = TRUST_BUNDLES.find((path) => existsSync(path));
  if (!found) throw new ServerError(`no system trust bundle at ${TRUST_BUNDLES.join(" or ")}; install ca-certificates`);
  return found;
}
