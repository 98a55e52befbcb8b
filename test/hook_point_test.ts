// SPDX-License-Identifier: GPL-2.0-or-later
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { HOOK_POINTS, hookPointOf } from "../lib/hook_point.ts";

describe("hookPointOf()", () => {
  for (const point of HOOK_POINTS) {
    test(`hookPointOf() reads ${point} from the directory VDSM ran the link in`, () => {
      assert.equal(hookPointOf(`/usr/libexec/vdsm/hooks/${point}/50_httpsisoboot`), point);
    });
  }

  /** [what, the path] */
  const ELSEWHERE: Array<[string, string]> = [
    ["the binary run by hand", "/usr/libexec/vdsm/httpsisoboot"],
    ["a hook point the hook does not serve", "/usr/libexec/vdsm/hooks/before_vm_pause/50_httpsisoboot"],
    ["a build in dist/", "/work/dist/httpsisoboot"],
    ["a bare name", "httpsisoboot"],
  ];
  for (const [what, path] of ELSEWHERE) {
    test(`hookPointOf() takes ${what} for before_vm_start, as the hook always ran`, () => {
      assert.equal(hookPointOf(path), "before_vm_start");
    });
  }
});
