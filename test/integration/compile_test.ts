// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * `deno task compile`, the route the design names for the single binary.
 * deno compile needs Deno's runtime (denort), which it downloads, or takes
 * from DENORT_BIN. This project's machines cannot download it, so building is
 * tested only where DENORT_BIN names a runtime; the refusal is tested always.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import process from "node:process";
import { ROOT, workDir } from "../support/mod.ts";
import { VERSION } from "../../lib/version.ts";

const work = workDir("compile");

function compile(out: string, denortBin: string | undefined) {
  const env: Record<string, string | undefined> = { ...process.env, NO_COLOR: "1" };
  if (denortBin === undefined) delete env.DENORT_BIN;
  else env.DENORT_BIN = denortBin;
  return spawnSync("bash", [join(ROOT, "scripts", "deno-compile.sh"), out], { encoding: "utf8", env, cwd: ROOT });
}

const denoMissing = spawnSync("deno", ["--version"]).status === 0
  ? undefined
  : "deno is not on PATH (npm ci installs it)";

describe("deno task compile", { skip: denoMissing }, () => {
  test("deno task compile says what to set when it cannot get Deno's runtime", () => {
    const out = join(work, "refused");
    const result = compile(out, join(work, "no-such-denort"));
    assert.equal(result.status, 1);
    assert.match(
      result.stderr,
      /^deno task compile: the runtime in DENORT_BIN=\S+ did not work\. Set DENORT_BIN to denort .* or build offline with Bun: npm run binary\. deno said: No such file/,
    );
    assert.equal(result.stderr.trim().split("\n").length, 1);
    assert.equal(existsSync(out), false);
  });

  const denort = process.env.DENORT_BIN;
  test("deno task compile builds a binary that runs with env -i", {
    skip: denort && existsSync(denort)
      ? undefined
      : "deno compile needs Deno's runtime (denort), which cannot be downloaded here; set DENORT_BIN to a local denort to run this test",
  }, () => {
    const out = join(work, "httpsisoboot");
    const result = compile(out, denort);
    assert.equal(result.status, 0, result.stderr);
    const version = spawnSync("env", ["-i", out, "--version"], { encoding: "utf8" });
    assert.equal(version.stdout, `httpsisoboot ${VERSION}\n`);
  });
});
