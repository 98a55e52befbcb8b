// SPDX-License-Identifier: GPL-2.0-or-later
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  BINARY_PATH,
  HOST_FILES,
  installPlan,
  MAN_PAGE,
  RELAY_UNIT,
  SELINUX_MODULE,
  SETTINGS_EXAMPLE,
  TMPFILES,
} from "../lib/host_files.ts";
import { HOOK_POINTS } from "../lib/hook_point.ts";
import { RELAY_DIRS } from "../lib/paths.ts";
import { DEFAULT_SETTINGS, parseSettings } from "../lib/settings.ts";
import { SELINUX_MODULE_PATH } from "../lib/selinux.ts";

describe("installPlan()", () => {
  test("installPlan() puts the binary first, a relative link at every hook point, then every host file, under the root", () => {
    const plan = installPlan("/stage");
    assert.deepEqual(plan[0], { kind: "binary", path: `/stage${BINARY_PATH}` });
    const links = plan.filter((step) => step.kind === "link");
    assert.deepEqual(
      links.map((step) => step.kind === "link" && step.path),
      HOOK_POINTS.map((point) => `/stage/usr/libexec/vdsm/hooks/${point}/50_httpsisoboot`),
    );
    assert.ok(links.every((step) => step.kind === "link" && step.target === "../../httpsisoboot"));
    const files = plan.flatMap((step) => step.kind === "file" ? [step.file.path] : []);
    assert.deepEqual(files, HOST_FILES.map((file) => `/stage${file.path}`));
  });
  test("installPlan() of the host itself names the real paths", () => {
    assert.deepEqual(installPlan("")[0], { kind: "binary", path: BINARY_PATH });
  });
});

describe("the host files", () => {
  test("the settings file is the admin's (kept and never removed), and only it", () => {
    assert.deepEqual(HOST_FILES.filter((file) => file.config), [SETTINGS_EXAMPLE]);
  });
  test("the settings file as installed parses to the defaults, and warns that allow is unset", () => {
    assert.deepEqual(parseSettings(SETTINGS_EXAMPLE.text, SETTINGS_EXAMPLE.path), DEFAULT_SETTINGS);
    assert.match(SETTINGS_EXAMPLE.text, /SET THIS\. .*\n(#.*\n)*# .*While it is unset ANY server is allowed/);
    for (const key of Object.keys(DEFAULT_SETTINGS)) {
      const name = key.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`);
      assert.match(SETTINGS_EXAMPLE.text, new RegExp(`^#${name} = `, "m"), `${name} is shown, commented`);
    }
  });
  test("the unit runs the installed binary, and tmpfiles.d makes the directories the relays use", () => {
    assert.match(RELAY_UNIT.text, new RegExp(`^ExecStart=${BINARY_PATH} --relay %i$`, "m"));
    assert.match(TMPFILES.text, new RegExp(`^d ${RELAY_DIRS.run} 0750 vdsm qemu -$`, "m"));
    assert.match(TMPFILES.text, new RegExp(`^D ${RELAY_DIRS.cache} 0700 vdsm qemu -$`, "m"));
  });
  test("the SELinux module labels the run directory, at the path semodule is told", () => {
    assert.equal(SELINUX_MODULE.path, SELINUX_MODULE_PATH);
    assert.match(
      SELINUX_MODULE.text,
      /^\(filecon "\/run\/httpsisoboot\(\/\.\*\)\?" any \(system_u object_r svirt_image_t/m,
    );
  });
  test("the man page has the sections an admin looks for", () => {
    for (
      const section of [
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "HOOK POINTS",
        "OPTIONS",
        "SETTINGS",
        "ENGINE SETUP",
        "TROUBLESHOOTING",
        "FILES",
        "EXIT STATUS",
        "EXAMPLES",
        "SEE ALSO",
      ]
    ) {
      assert.match(MAN_PAGE.text, new RegExp(`^\\.SH ${section}$`, "m"), section);
    }
    assert.match(MAN_PAGE.text, /engine\\-config \\-m UserDefinedVMProperties/);
  });
});
