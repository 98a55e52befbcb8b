// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * The README is an admin's page: short enough to read in ten minutes, no
 * release notes, and every command in it either run by a test (named here,
 * and checked to hold the command) or named as not runnable on this machine.
 * The docs/ pages carry no release notes either.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { ROOT } from "./support/mod.ts";

const README = readFileSync(join(ROOT, "README.md"), "utf8");

/**
 * 150 lines: at about 12 words a line and 200 words a minute, about nine
 * minutes, the ten the admin was promised with one left to type.
 */
const MAX_README_LINES = 150;

/** Words that date a text as a release's notes rather than describe the software as it is. */
const RELEASE_NOTES =
  /\b(this release|the release before|until this release|before this release|no longer|used to|as of version|the last release|since version|newly|changelog)\b/i;

/** Every command the README shows, and what proves it: a test file that runs it, or why it cannot run here. */
const COMMANDS: Array<[RegExp, { runBy: string; holding: string } | { notHere: string }]> = [
  [/^npm ci && npm start$/, { runBy: "test/readme_test.ts", holding: `"npm", ["run", "--silent", "start"]` }],
  [/^npm test$/, { runBy: ".ci/run", holding: "npm test" }],
  [/^engine-config /, { notHere: "there is no oVirt engine on this machine" }],
  [/^systemctl restart ovirt-engine$/, { notHere: "there is no oVirt engine on this machine" }],
  [/^\.\/httpsisoboot --install$/, { runBy: "e2e/systemd.ts", holding: `[BOUND_BINARY, "--install"]` }],
  [
    /^\/usr\/libexec\/vdsm\/httpsisoboot --check '/,
    { runBy: "e2e/systemd.ts", holding: `["/usr/libexec/vdsm/httpsisoboot", "--check", url]` },
  ],
  [/^allow = /, { runBy: "test/settings_test.ts", holding: "allow = " }],
];

/** The lines of the README's fenced code blocks marked sh or ini, comments cut. */
function commands(): string[] {
  return [...README.matchAll(/```(?:sh|ini)\n([\s\S]*?)```/g)]
    .flatMap((match) => match[1].split("\n"))
    .map((line) => line.replace(/\s+#.*$/, "").trim())
    .filter(Boolean);
}

describe("README.md", () => {
  test(`README.md is at most ${MAX_README_LINES} lines`, () => {
    assert.ok(README.split("\n").length <= MAX_README_LINES, `${README.split("\n").length} lines`);
  });

  test("README.md and docs/ have no release notes", () => {
    const pages = [
      ["README.md", README],
      ...readdirSync(join(ROOT, "docs")).map((
        name,
      ) => [`docs/${name}`, readFileSync(join(ROOT, "docs", name), "utf8")]),
    ];
    const found = pages.flatMap(([name, text]) =>
      text.split("\n").flatMap((line, index) => RELEASE_NOTES.test(line) ? [`${name}:${index + 1}: ${line}`] : [])
    );
    assert.deepEqual(found, []);
  });

  test("README.md shows its two set-up commands, the sample and the tests", () => {
    assert.match(README, /^npm ci && npm start {3}# /m);
    assert.match(README, /^npm test {14}# /m);
  });

  test("every command in README.md is run by a test, or named as not runnable here", () => {
    const shown = commands();
    assert.ok(shown.length >= 6, shown.join("\n"));
    for (const command of shown) {
      const entry = COMMANDS.find(([pattern]) => pattern.test(command));
      assert.ok(entry, `no test runs, and nothing says why not: ${command}`);
      const proof = entry[1];
      if ("runBy" in proof) {
        assert.ok(
          readFileSync(join(ROOT, proof.runBy), "utf8").includes(proof.holding),
          `${proof.runBy} runs ${command}`,
        );
      }
    }
  });

  test("every page README.md links to is there", () => {
    for (const [, target] of README.matchAll(/\]\(([^)#]+)\)/g)) {
      assert.doesNotThrow(() => readFileSync(join(ROOT, target)), target);
    }
  });

  test("`npm start`, the README's first command, prints the diff the hook would make to the sample", {
    skip: process.env.HTTPSISOBOOT_SKIP_NPM_START ? "HTTPSISOBOOT_SKIP_NPM_START is set" : undefined,
  }, () => {
    const started = spawnSync("npm", ["run", "--silent", "start"], {
      cwd: ROOT,
      encoding: "utf8",
      env: { ...process.env, PATH: `${join(ROOT, "node_modules", ".bin")}:${process.env.PATH}` },
    });
    assert.equal(started.status, 0, started.stderr);
    assert.match(started.stdout, /^\+\s*<disk type="network" device="cdrom">/m);
    assert.match(
      started.stderr,
      /^httpsisoboot: added CD-ROM \S+ \(sata\) from https:\/\/isos\.example\.org:443\/el9\/boot\.iso\?sig=\*\*\*/m,
    );
  });
});
