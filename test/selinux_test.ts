// SPDX-License-Identifier: GPL-2.0-or-later
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { describeSelinux, moduleLoadFailed, SELINUX_MODULE_PATH, type SelinuxState } from "../lib/selinux.ts";

const RUN = "/run/httpsisoboot";
const GOOD = "system_u:object_r:svirt_image_t:s0";

describe("describeSelinux()", () => {
  const CASES: Array<[string, SelinuxState, string, boolean]> = [
    ["SELinux off", { mode: "disabled" }, "disabled (nothing to load)", true],
    [
      "enforcing, the module loaded, the directory labelled",
      { mode: "enforcing", modules: ["virt", "httpsisoboot"], runLabel: GOOD },
      `enforcing, module httpsisoboot loaded, ${RUN} is ${GOOD}`,
      true,
    ],
    [
      "enforcing without the module",
      { mode: "enforcing", modules: ["virt"], runLabel: GOOD },
      `enforcing: the httpsisoboot module is not loaded: semodule -i ${SELINUX_MODULE_PATH}; until then QEMU cannot reach its relay's socket and VMs with the property will not start`,
      false,
    ],
    [
      "enforcing, the directory labelled before the module came",
      { mode: "enforcing", modules: ["httpsisoboot"], runLabel: "system_u:object_r:var_run_t:s0" },
      `enforcing: ${RUN} is labelled system_u:object_r:var_run_t:s0, not svirt_image_t: restorecon -R ${RUN}; until then`,
      false,
    ],
    [
      "permissive without the module",
      { mode: "permissive", modules: [], runLabel: GOOD },
      "permissive: the httpsisoboot module is not loaded",
      true,
    ],
    [
      "enforcing, semodule failing",
      { mode: "enforcing", modules: { error: "semodule is not installed" }, runLabel: GOOD },
      "enforcing: cannot list the loaded modules (semodule is not installed)",
      false,
    ],
  ];
  for (const [what, state, words, ok] of CASES) {
    test(`describeSelinux() says where it stands: ${what}`, () => {
      const said = describeSelinux(state, RUN);
      assert.ok(said.line.startsWith(words), said.line);
      assert.equal(said.ok, ok);
    });
  }
});

describe("moduleLoadFailed()", () => {
  test("moduleLoadFailed() names the command, the cause and what an enforcing host loses", () => {
    assert.equal(
      moduleLoadFailed("enforcing", "out of disk space"),
      `semodule -i ${SELINUX_MODULE_PATH} failed (out of disk space) while SELinux is enforcing: VMs with the ` +
        "httpsisoboot property will not start until it loads; run that command as root and read its error",
    );
    assert.match(moduleLoadFailed("permissive", "x"), /while SELinux is permissive: enforcing would stop VMs/);
  });
});
