// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * vagrant/Vagrantfile is checked with `vagrant validate` (Debian's vagrant and
 * vagrant-libvirt). Booting it needs a box download, which this project's
 * machines cannot do; see the README.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import process from "node:process";
import { ROOT, workDir } from "../support/mod.ts";

const VAGRANT_DIR = join(ROOT, "vagrant");
const work = workDir("vagrant");

function vagrantMissing(): string | undefined {
  const found = spawnSync("vagrant", ["--version"], { encoding: "utf8" });
  return found.status === 0
    ? undefined
    : "vagrant is not installed (apt-get install vagrant vagrant-libvirt; npm test does as root)";
}

function validate(dir: string) {
  return spawnSync("vagrant", ["validate"], {
    encoding: "utf8",
    env: { ...process.env, VAGRANT_CWD: dir, VAGRANT_DOTFILE_PATH: join(work, ".vagrant") },
  });
}

describe("vagrant/", { skip: vagrantMissing() }, () => {
  test("vagrant validate accepts vagrant/Vagrantfile", () => {
    const result = validate(VAGRANT_DIR);
    assert.equal(result.status, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /validated successfully/);
  });

  test("vagrant validate refuses a Vagrantfile with a misspelt setting, so the check above can fail", () => {
    const broken = join(work, "broken");
    spawnSync("mkdir", ["-p", broken]);
    writeFileSync(
      join(broken, "Vagrantfile"),
      readFileSync(join(VAGRANT_DIR, "Vagrantfile"), "utf8").replace("config.vm.hostname =", "config.vm.hostnam ="),
    );
    copyFileSync(join(VAGRANT_DIR, "provision.sh"), join(broken, "provision.sh"));
    const result = validate(broken);
    assert.notEqual(result.status, 0);
    assert.match(result.stdout + result.stderr, /hostnam/);
  });
});
