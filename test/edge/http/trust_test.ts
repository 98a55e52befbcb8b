// SPDX-License-Identifier: GPL-2.0-or-later
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import process from "node:process";
import { systemTrustBundle } from "../../../edge/http/trust.ts";
import { ROOT } from "../../support/mod.ts";

describe("systemTrustBundle()", () => {
  test("systemTrustBundle() names the system's PEM bundle, EL's or Debian's, never the runtime's roots", () => {
    const bundle = systemTrustBundle();
    assert.ok(["/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/certs/ca-certificates.crt"].includes(bundle), bundle);
    assert.match(readFileSync(bundle, "utf8"), /-----BEGIN CERTIFICATE-----/);
  });

  test("systemTrustBundle() refuses a host with no bundle, naming both places and the package", {
    skip: process.getuid?.() === 0 ? undefined : "needs root: it hides the bundles in a private mount namespace",
  }, () => {
    // Both bundles hidden under empty tmpfs mounts, in a namespace of this child's own.
    const script = `for dir in /etc/pki/tls/certs /etc/ssl/certs; do [ -d "$dir" ] && mount -t tmpfs none "$dir"; done
      exec node --import tsx -e 'import("./edge/http/trust.ts").then((m) => m.systemTrustBundle()).catch((e) => { console.log(e.name + ": " + e.message); })'`;
    const run = spawnSync("unshare", ["--mount", "--propagation", "private", "sh", "-c", script], {
      cwd: ROOT,
      encoding: "utf8",
    });
    assert.equal(run.status, 0, run.stderr);
    assert.equal(
      run.stdout.trim(),
      "ServerError: no system trust bundle at /etc/pki/tls/certs/ca-bundle.crt or /etc/ssl/certs/ca-certificates.crt; install ca-certificates",
    );
  });
});
