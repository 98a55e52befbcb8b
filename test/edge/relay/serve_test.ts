// SPDX-License-Identifier: GPL-2.0-or-later
/** The relay process, `httpsisoboot --relay UUID`, refusing what it must not serve; its serving is in integration/relay_test.ts. */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import process from "node:process";
import { join } from "node:path";
import { BINARY, run, workDir } from "../../support/mod.ts";

const UUID = "7a3c1f52-4d1e-4b7a-9c2e-5f0e8a6b1d21";
const noBinary = existsSync(BINARY) ? undefined : `${BINARY} is not built; run \`npm run binary\``;

describe("httpsisoboot --relay", { skip: noBinary }, () => {
  const work = workDir("serve");
  const dirs = { run: join(work, "run"), cache: join(work, "cache") };
  mkdirSync(dirs.run);
  mkdirSync(dirs.cache);
  // A relay never runs as root: as root, the test runs it as vdsm (uid 36), whose directories these are.
  const asRelayUser = process.getuid?.() === 0 ? ["setpriv", "--reuid=36", "--regid=36", "--clear-groups", "--"] : [];
  const give = (path: string) => process.getuid?.() === 0 && chownSync(path, 36, 36);
  give(dirs.run);
  give(dirs.cache);
  const relayAs = (env: Record<string, string>) => {
    const [command, ...args] = [...asRelayUser, BINARY, "--relay", UUID];
    return run(command, args, { env: { PATH: "/usr/bin:/bin", ...env } });
  };
  const relay = () => relayAs({ HTTPSISOBOOT_RUN_DIR: dirs.run, HTTPSISOBOOT_CACHE_DIR: dirs.cache });
  const config = join(dirs.run, `${UUID}.relay`);
  const good = JSON.stringify({
    url: "https://127.0.0.1:1/a.iso?sig=TOPSECRET",
    timeout: 1,
    allow: [],
    settingsFile: "f",
    cacheSize: 1 << 24,
    cacheTotal: { percent: 50 },
    readaheadBlocks: 8,
  });

  test("the relay refuses a config another user can read: it holds the URL's query", () => {
    writeFileSync(config, good);
    chmodSync(config, 0o644);
    give(config);
    const outcome = relay();
    assert.equal(outcome.status, 2);
    assert.equal(
      outcome.stderr,
      `httpsisoboot-relay ${UUID}: the relay's config ${config} is not a file of this user's with mode 0600; refused\n`,
    );
    assert.deepEqual(readdirSync(dirs.run), [`${UUID}.relay`], "no socket, no pid file, no private dir");
  });

  test("the relay refuses a config the hook would not have written", () => {
    writeFileSync(config, good.replace("https://", "http://"), { mode: 0o600 });
    chmodSync(config, 0o600);
    give(config);
    const outcome = relay();
    assert.equal(outcome.status, 2);
    assert.match(outcome.stderr, /has a URL the hook would refuse; start the VM again, which writes it anew\n$/);
    assert.ok(!outcome.stderr.includes("TOPSECRET"));
  });

  test("the relay without a config says so", () => {
    const outcome = relayAs({ HTTPSISOBOOT_RUN_DIR: join(work, "empty"), HTTPSISOBOOT_CACHE_DIR: dirs.cache });
    assert.equal(outcome.status, 2);
    assert.match(
      outcome.stderr,
      /cannot read the relay's config .*empty\/7a3c1f52-4d1e-4b7a-9c2e-5f0e8a6b1d21\.relay \(ENOENT\)/,
    );
  });

  test("--relay takes a UUID in lower case only: it names files", () => {
    for (const bad of ["../../etc/x", UUID.toUpperCase(), `${UUID}/..`]) {
      const outcome = run(BINARY, ["--relay", bad], { env: { PATH: "/usr/bin:/bin" } });
      assert.equal(outcome.status, 2, bad);
      assert.match(outcome.stderr, /--relay takes a VM's UUID in lower case with dashes/);
    }
  });
});
