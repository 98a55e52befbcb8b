// SPDX-License-Identifier: GPL-2.0-or-later
/** The preflight suite: the hook refuses a bad server before any VM starts, exit 2, the domain file unchanged. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { log, step } from "./steps.ts";
import { isoUrl, type World } from "./world.ts";

export function preflightSuite(world: World): void {
  /** [what, URL, the hook's words] */
  const REFUSED: Array<[string, () => string, RegExp]> = [
    [
      "an untrusted certificate",
      () => isoUrl(world.ports.untrusted, world.isos.httpsBios),
      /is not trusted by this host .*issuer CN=untrusted e2e CA/,
    ],
    [
      "no byte ranges",
      () => isoUrl(world.ports.noRanges, world.isos.httpsBios),
      /cannot serve byte ranges: it answers a ranged GET with the whole file/,
    ],
    [
      "not an ISO image",
      () => `https://localhost:${world.ports.trusted}/not-an-iso.iso`,
      /does not serve an ISO image/,
    ],
    ["a 404", () => `https://localhost:${world.ports.trusted}/missing.iso`, /answered HTTP 404/],
    ["a server that is down", () => `https://localhost:${world.ports.down}/boot.iso`, /refused the connection/],
  ];
  for (const [what, target, words] of REFUSED) {
    test(`preflight refuses ${what} before any VM starts: exit 2, the domain file unchanged`, async () => {
      const path = world.domainFile(world.spec(`refused-${what.replace(/\W+/g, "-")}`, "pc", "bios"));
      const xml = readFileSync(path, "utf8");
      const result = await step(`preflight: ${what}`, () => world.runHook(path, target(), world.defaults));
      log(`preflight, ${what}: ${result.stderr.trim()}`);
      assert.equal(result.status, 2);
      assert.match(result.stderr, words);
      assert.equal(readFileSync(path, "utf8"), xml);
      world.timings.push([`preflight: ${what}`, `refused by the hook`]);
    });
  }

  test("relay mode without preflight, a server the host does not trust: the relay cannot read it, the hook exits 2, no relay is left", () => {
    const settings = world.settings("relay-no-preflight", "preflight = no\n");
    const domain = world.spec("relay-untrusted", "pc", "bios");
    const path = world.domainFile(domain);
    const xml = readFileSync(path, "utf8");
    const result = world.runHook(path, isoUrl(world.ports.untrusted, world.isos.httpsBios), settings);
    log(`relay, untrusted server: ${result.stderr.trim()}`);
    assert.equal(result.status, 2);
    assert.match(
      result.stderr,
      /the relay of VM \S+ could not read the ISO .*is not trusted by this host \(issuer CN=untrusted e2e CA\)/,
    );
    assert.equal(readFileSync(path, "utf8"), xml);
    assert.deepEqual(world.relayLeft(domain), { processes: [], files: [] });
  });
}
