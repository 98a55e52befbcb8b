// SPDX-License-Identifier: GPL-2.0-or-later
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { curlDriverProblem, type ModuleDir } from "../lib/curl_driver.ts";

const dir = (name: string, exists: boolean, hasCurl: boolean): ModuleDir => ({ dir: name, exists, hasCurl });

describe("curlDriverProblem()", () => {
  /** [what, the directories, refused] */
  const CASES: Array<[string, ModuleDir[], boolean]> = [
    ["EL with qemu-kvm-block-curl", [dir("/usr/lib64/qemu-kvm", true, true)], false],
    ["EL without it", [dir("/usr/lib64/qemu-kvm", true, false)], true],
    ["Debian with qemu-block-extra", [
      dir("/usr/lib64/qemu-kvm", false, false),
      dir("/usr/lib/x86_64-linux-gnu/qemu", true, true),
    ], false],
    ["a QEMU with curl built in: no module directory at all", [
      dir("/usr/lib64/qemu-kvm", false, false),
      dir("/usr/lib/x86_64-linux-gnu/qemu", false, false),
    ], false],
    ["two module directories, curl in one", [dir("/a", true, false), dir("/b", true, true)], false],
    ["two module directories, curl in neither", [dir("/a", true, false), dir("/b", true, false)], true],
  ];
  for (const [what, dirs, refused] of CASES) {
    test(`curlDriverProblem() ${refused ? "refuses" : "accepts"} ${what}`, () => {
      const problem = curlDriverProblem(dirs);
      assert.equal(problem !== undefined, refused, problem);
      if (problem) assert.match(problem, /install qemu-kvm-block-curl \(EL\) or qemu-block-extra \(Debian\)$/);
    });
  }
});
