// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * Adds up test counts from node:test's count reporter (JSON, count_reporter.mjs)
 * and from Deno's JUnit files, and prints one line per runner and the closing
 * line "N passed, N failed, N skipped". A runner that exited non-zero with no
 * failed test counted (a module that failed to load, say) counts as one
 * failure. Exits 1 when anything failed or a runner left no counts.
 * Usage: node test/support/sum_counts.mjs NAME=FILE:STATUS...
 */
import { existsSync, readFileSync } from "node:fs";
import process from "node:process";

/** Leaf test cases of a Deno JUnit file: Deno lists suites as cases too, named as prefixes of their tests. */
function junitCounts(xml) {
  const cases = [...xml.matchAll(/<testcase name="([^"]*)"[^>]*>([\s\S]*?)<\/testcase>/g)].map(([, name, body]) => ({
    name,
    body,
  }));
  const names = cases.map(({ name }) => name);
  const leaves = cases.filter(({ name }) => !names.some((other) => other.startsWith(`${name} &gt; `)));
  const failed = leaves.filter(({ body }) => /<failure|<error/.test(body)).length;
  const skipped = leaves.filter(({ body }) => /<skipped/.test(body)).length;
  return { passed: leaves.length - failed - skipped, failed, skipped };
}

const total = { passed: 0, failed: 0, skipped: 0 };
let missing = false;
for (const argument of process.argv.slice(2)) {
  const [name, rest] = argument.split("=");
  const [file, status = "0"] = rest.split(":");
  if (!existsSync(file)) {
    console.log(`${name}: no counts (${file} is missing)`);
    missing = true;
    continue;
  }
  const text = readFileSync(file, "utf8");
  const counts = file.endsWith(".xml") ? junitCounts(text) : JSON.parse(text.trim().split("\n").at(-1));
  if (status !== "0" && counts.failed === 0) {
    console.log(`${name}: the runner exited ${status} with no failed test counted; see its output above`);
    counts.failed = 1;
  }
  console.log(`${name}: ${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped`);
  for (const key of Object.keys(total)) total[key] += counts[key];
}
console.log(`${total.passed} passed, ${total.failed} failed, ${total.skipped} skipped`);
process.exitCode = total.failed > 0 || missing ? 1 : 0;
