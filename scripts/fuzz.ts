// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * `npm run fuzz [-- --seconds N]`: the fuzz properties of test/integration/fuzz_test.ts
 * with fresh random seeds, until N seconds (default 60) have passed. Not part
 * of `npm test` or CI, which run fixed seeds only. A failure prints the
 * command that replays it; make each one a named regression test.
 */
import { spawnSync } from "node:child_process";
import { randomInt } from "node:crypto";
import process from "node:process";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: { seconds: { type: "string", default: "60" }, runs: { type: "string", default: "5000" } },
});
const seconds = Number(values.seconds);
if (!(seconds > 0)) throw new Error("--seconds takes a positive number");
const until = Date.now() + seconds * 1000;
let rounds = 0;
let failures = 0;
while (Date.now() < until) {
  const seed = randomInt(2 ** 31 - 1);
  const result = spawnSync(
    process.execPath,
    [
      "--import",
      "tsx",
      "--test",
      "--test-name-pattern",
      "generated URLs|mutated domain",
      "test/integration/fuzz_test.ts",
    ],
    { env: { ...process.env, FUZZ_SEED: String(seed), FUZZ_RUNS: values.runs }, encoding: "utf8" },
  );
  rounds++;
  if (!/# pass [1-9]/.test(result.stdout)) {
    // Not a fuzz failure: the properties did not run at all (a moved file, a syntax error).
    console.log(`fuzz: the properties did not run:\n${result.stdout}${result.stderr}`);
    process.exit(2);
  }
  if (result.status !== 0) {
    failures++;
    const replay = /replay with: (.*)/.exec(result.stdout + result.stderr)?.[1] ??
      `FUZZ_SEED=${seed} node --import tsx --test test/integration/fuzz_test.ts`;
    console.log(`seed ${seed}: FAILED; replay with: ${replay}`);
  } else {
    console.log(`seed ${seed}: ${values.runs} URLs and ${values.runs} domains passed`);
  }
}
console.log(`fuzz: ${rounds} seeds in ${seconds} s, ${failures} failed`);
process.exitCode = failures === 0 ? 0 : 1;
