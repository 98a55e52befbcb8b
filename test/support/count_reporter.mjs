// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * A node:test reporter that writes one JSON line of counts, {"passed","failed","skipped"},
 * for test/run.sh to add up: tests only, not the suites that hold them.
 * Usage: node --test --test-reporter=./test/support/count_reporter.mjs --test-reporter-destination=FILE
 */
export default async function* countReporter(source) {
  const counts = { passed: 0, failed: 0, skipped: 0 };
  for await (const event of source) {
    if (event.type !== "test:pass" && event.type !== "test:fail") continue;
    if (event.data.details?.type === "suite") continue;
    if (event.type === "test:fail") counts.failed++;
    else if (event.data.skip !== undefined || event.data.todo !== undefined) counts.skipped++;
    else counts.passed++;
  }
  yield `${JSON.stringify(counts)}\n`;
}
