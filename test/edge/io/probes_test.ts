// SPDX-License-Identifier: GPL-2.0-or-later
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { LIBVIRT_DAEMONS, LIBVIRT_MEMO, libvirtVersion } from "../../../edge/io/probes.ts";
import { parseLibvirtVersion } from "../../../lib/libvirt_version.ts";
import { workDir } from "../../support/mod.ts";

const daemon = LIBVIRT_DAEMONS.find(existsSync);

describe("libvirtVersion()", { skip: daemon ? undefined : "no virtqemud or libvirtd here" }, () => {
  const work = workDir("probes");

  test("libvirtVersion() asks the daemon once, remembers it under the daemon's identity, and asks again once that changes", () => {
    const real = parseLibvirtVersion(spawnSync(daemon!, ["--version"], { encoding: "utf8" }).stdout);
    assert.deepEqual(libvirtVersion(work), real);
    const memo = join(work, LIBVIRT_MEMO);
    const [id] = readFileSync(memo, "utf8").split(" ");
    assert.ok(id.startsWith(`${daemon}:`), id);
    // The memo is what is read now: a version it holds under this identity is the answer, with no daemon asked.
    writeFileSync(memo, `${id} 99.1.0\n`);
    assert.deepEqual(libvirtVersion(work), [99, 1, 0]);
    // Another identity (libvirt upgraded): asked again, and remembered anew.
    writeFileSync(memo, `${id}0 99.1.0\n`);
    assert.deepEqual(libvirtVersion(work), real);
    assert.equal(readFileSync(memo, "utf8"), `${id} ${real!.join(".")}\n`);
  });

  test("libvirtVersion() without a memo directory asks every time", () => {
    assert.ok(libvirtVersion()![0] >= 1);
  });
});
