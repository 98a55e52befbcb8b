// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * Fuzzing and bad input, deterministic: `npm test` runs every property with
 * the fixed seeds in FUZZ_SEEDS, and a failure prints the command that
 * replays it. `npm run fuzz` explores fresh seeds (scripts/fuzz.ts); each bug
 * it finds becomes a named regression case in the module's own tests.
 * - 10,000 generated URLs and 10,000 mutated domain XMLs through
 *   addHttpsCdrom(), the hook's whole transform, in process;
 * - a sample of them through the built binary, as VDSM runs it: exit 0 or 2
 *   only, one line and no stack trace, the file byte-identical on 2;
 * - 100 concurrent hook runs on separate files;
 * - outputs whose input libvirt's test driver accepts are accepted too.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import fc from "fast-check";
import { create } from "xmlbuilder2";
import { addHttpsCdrom } from "../../lib/domain/add_https_cdrom.ts";
import { parseIsoUrl } from "../../lib/url.ts";
import { DEFAULT_SETTINGS } from "../../lib/settings.ts";
import { parseXml } from "../../lib/xml/parse.ts";
import { child, children, descendants, getAttribute } from "../../lib/xml/tree.ts";
import { HookError } from "../../lib/errors.ts";
import { BINARY, fixtureCases, readFixture, run, settingsFiles, virshMissing, workDir } from "../support/mod.ts";

const RUNS = Number(process.env.FUZZ_RUNS ?? 10_000);
/** The seeds `npm test` runs; FUZZ_SEED (from a failure, or from `npm run fuzz`) runs one other. */
const FUZZ_SEEDS = [20261127, 4242, 1700000000];
const SEEDS = process.env.FUZZ_SEED === undefined ? FUZZ_SEEDS : [Number(process.env.FUZZ_SEED)];
const SEED = SEEDS[0];

/** fc.assert with each seed in turn; a failure names the command that replays it. */
function check<T>(property: fc.IProperty<T>, runs: number): void {
  for (const seed of SEEDS) {
    const details = fc.check(property, { numRuns: Math.ceil(runs / SEEDS.length), seed, path: process.env.FUZZ_PATH });
    if (!details.failed) continue;
    const replay =
      `FUZZ_SEED=${seed} FUZZ_PATH='${details.counterexamplePath}' node --import tsx --test test/integration/fuzz_test.ts`;
    throw new Error(`fuzz failure; replay with: ${replay}\n${fc.defaultReportMessage(details)}`);
  }
}
const work = workDir("fuzz");

const INPUTS = fixtureCases().map((name) => readFixture(`${name}.in.xml`));
/** Host settings for runs against made-up servers: defaults, but no preflight. */
const { noPreflight: NO_PREFLIGHT } = settingsFiles(work);
const SECRET = "S3CR3T";

/** Messages of errors the code throws on purpose; a bug shows as a runtime message instead. */
function assertDeliberate(error: unknown): asserts error is Error {
  assert.ok(error instanceof HookError, `a bug, not a refusal: ${(error as Error)?.stack ?? error}`);
  assert.ok(!error.message.includes("\n"), `one line: ${error.message}`);
  assert.ok(!error.message.includes(SECRET), `no secret: ${error.message}`);
}

/**
 * Whether xmlbuilder2 reads a document. It is stricter than XML in places:
 * it refuses `a= 'x'` and two spaces between attributes, which XML and
 * libxml2 allow, so outputs are held to it only when it read the input.
 */
function xmlbuilder2Reads(xml: string): boolean {
  try {
    create(xml);
    return true;
  } catch {
    return false;
  }
}

/** What must hold of any domain the hook wrote, read the way libvirt reads it. */
function assertGoodOutput(xml: string, strict: boolean): void {
  const { root } = parseXml(xml);
  assert.equal(root.name, "domain");
  // libvirt reads every <devices> element, so the checks do too.
  const devicesList = children(root, "devices");
  const disks = devicesList.flatMap((devices) => children(devices, "disk"));
  const cdroms = disks.filter((disk) =>
    getAttribute(disk, "device") === "cdrom" && getAttribute(child(disk, "source") ?? disk, "protocol") === "https"
  );
  assert.equal(cdroms.length, 1, "exactly one https CD-ROM");
  assert.equal(getAttribute(child(cdroms[0], "boot")!, "order"), "1");
  const firsts = devicesList.flatMap((devices) => descendants(devices, "boot")).filter((boot) =>
    getAttribute(boot, "order") === "1"
  );
  assert.equal(firsts.length, 1, "nothing else boots first");
  const names = disks.map((disk) => getAttribute(child(disk, "target"), "dev")).filter((dev) => dev !== undefined);
  const added = getAttribute(child(cdroms[0], "target"), "dev");
  assert.equal(names.filter((dev) => dev === added).length, 1, "the new target name is not used twice");
  const os = child(root, "os");
  assert.equal(os ? children(os, "boot").length : 0, 0, "no <os><boot dev> left");
  if (strict) create(xml); // xmlbuilder2 reads it too
}

// ---- URLs -------------------------------------------------------------------

const PIECES = {
  scheme: fc.constantFrom("https", "HTTPS", "http", "ftp", "", "https:", "file"),
  userinfo: fc.constantFrom("", "", "", `user:${SECRET}@`, `${SECRET}@`, `:${SECRET}@`),
  host: fc.oneof(
    fc.constantFrom(
      "isos.example.org",
      "localhost",
      "127.0.0.1",
      "[::1]",
      "[2001:db8::1]",
      "bücher.example",
      "xn--bcher-kva.example",
      "256.1.1.1",
      "1.2.3",
      "-x.example",
      "a..b",
      "[fe80::1%25eth0]",
      "under_score.org",
      "",
      "[",
      "a:b:c",
    ),
    fc.domain(),
    fc.ipV4(),
    fc.ipV6().map((ip) => `[${ip}]`),
  ),
  port: fc.oneof(
    fc.constant(""),
    fc.integer({ min: -5, max: 70000 }).map((n) => `:${n}`),
    fc.constantFrom(":", ":0443", ":abc", ":443:"),
  ),
  path: fc.oneof(
    fc.constantFrom(
      "/",
      "",
      "/boot.iso",
      "/a b.iso",
      "/%2F.iso",
      "/a/../b.iso",
      "/caf%C3%A9.iso",
      "/100%.iso",
      "/%FF.iso",
      "/a:b.iso",
      "/a%3Ab.iso",
    ),
    fc.array(
      fc.oneof(
        fc.string({
          unit: fc.constantFrom(..."abcXYZ09-._~!$&'()*+,;=:@%/?#[]{}|\\^`\"<> \t\n\u0000é€😀"),
          maxLength: 12,
        }),
        fc.webSegment(),
      ),
      { maxLength: 5 },
    ).map((segments) => "/" + segments.join("/")),
  ),
  query: fc.oneof(
    fc.constant(""),
    fc.webQueryParameters().map((q) => `?${q}&token=${SECRET}`),
    fc.string({ maxLength: 10 }).map((q) => `?${q}`),
  ),
  fragment: fc.oneof(fc.constant(""), fc.webFragments().map((f) => `#${f}`)),
};

const urls = fc.oneof(
  fc.record(PIECES).map((p) => `${p.scheme}://${p.userinfo}${p.host}${p.port}${p.path}${p.query}${p.fragment}`),
  fc.webUrl({ validSchemes: ["https"], withQueryParameters: true, withFragments: true }),
  fc.string({ maxLength: 60 }),
);

const BASE_DOMAIN = readFixture("q35-uefi.in.xml");

describe("fuzzing", () => {
  test(`parseIsoUrl() and addHttpsCdrom() on ${RUNS} generated URLs: a URL, or one deliberate line that leaks no secret`, () => {
    let accepted = 0;
    check(
      fc.property(urls, (url) => {
        let parsed;
        try {
          parsed = parseIsoUrl(url);
        } catch (error) {
          assertDeliberate(error);
          return;
        }
        accepted++;
        const href = new globalThis.URL(parsed.href);
        assert.equal(href.protocol, "https:");
        assert.ok(parsed.port >= 1 && parsed.port <= 65535);
        assert.ok(!parsed.redacted.includes(SECRET));
        assert.ok(
          parsed.query === undefined || !parsed.redacted.split("?")[1].includes("=") ||
            parsed.redacted.split("?")[1].split("&").every((pair) => pair === "***" || pair.endsWith("=***")),
        );
        const result = addHttpsCdrom(BASE_DOMAIN, parsed);
        assertGoodOutput(result.xml, false);
        assert.equal(addHttpsCdrom(result.xml, parsed).changed, false);
      }),
      RUNS,
    );
    assert.ok(accepted > RUNS / 20, `some generated URLs are good ones (${accepted})`);
  });

  test(`addHttpsCdrom() on ${RUNS} mutated domain XMLs: a good domain, or one deliberate line`, () => {
    let accepted = 0;
    const sampleForLibvirt: Array<[string, string]> = [];
    check(
      fc.property(mutatedDomains, (input) => {
        let result;
        try {
          result = addHttpsCdrom(input, "https://isos.example.org/boot.iso?token=" + SECRET);
        } catch (error) {
          assertDeliberate(error);
          return;
        }
        accepted++;
        assertGoodOutput(result.xml, accepted % 20 === 0 && xmlbuilder2Reads(input));
        const again = addHttpsCdrom(result.xml, result.url);
        assert.equal(again.changed, false);
        if (sampleForLibvirt.length < 40 && accepted % 7 === 0) sampleForLibvirt.push([input, result.xml]);
      }),
      RUNS,
    );
    assert.ok(accepted > RUNS / 10, `some mutated domains are still good ones (${accepted})`);
    checkWithLibvirt(sampleForLibvirt);
  });

  test("hook runs of the built binary: exit 0 or 2, one line, no stack trace, the file byte-identical on 2", {
    skip: existsSync(BINARY) ? undefined : `${BINARY} is not built; run \`npm run binary\``,
  }, async () => {
    // An environment variable cannot hold NUL, for VDSM or anyone.
    const cases = fc.sample(fc.tuple(mutatedDomains, urls.filter((url) => !url.includes("\0"))), {
      numRuns: 300,
      seed: SEED,
    });
    const results = await inParallel(cases, 4, async ([xml, url], index) => {
      const path = join(work, `hook-${index}.xml`);
      writeFileSync(path, xml);
      const outcome = await runHook(path, url);
      return { xml, url, path, ...outcome };
    });
    const codes = new Set<number | null>();
    for (const { xml, url, path, status, stderr } of results) {
      codes.add(status);
      assert.ok(status === 0 || status === 2, `exit ${status} for ${JSON.stringify(url)}: ${stderr}`);
      assert.doesNotMatch(stderr, /\n\s+at |Error:|panic|Segmentation/, "no stack trace or crash");
      assert.ok(!stderr.includes(SECRET), "no secret in the hook's output");
      if (status === 2) {
        assert.match(stderr, /^httpsisoboot: [^\n]+\n$/);
        assert.equal(readFileSync(path, "utf8"), xml, "byte-identical after a refusal");
      } else if (stderr !== "") {
        assertGoodOutput(readFileSync(path, "utf8"), false);
      }
    }
    assert.ok(codes.has(0) && codes.has(2), `both outcomes happened: ${[...codes]}`);
  });

  test("100 concurrent hook runs on separate files all write what addHttpsCdrom() computes", {
    skip: existsSync(BINARY) ? undefined : `${BINARY} is not built; run \`npm run binary\``,
  }, async () => {
    const jobs = Array.from({ length: 100 }, (_, i) => ({
      input: INPUTS[i % INPUTS.length],
      url: `https://isos${i}.example.org:${8000 + i}/vm${i}/boot.iso?token=${SECRET}${i}`,
      path: join(work, `concurrent-${i}.xml`),
    }));
    for (const job of jobs) writeFileSync(job.path, job.input);
    const outcomes = await Promise.all(jobs.map((job) => runHook(job.path, job.url)));
    outcomes.forEach((outcome, i) => {
      assert.equal(outcome.status, 0, outcome.stderr);
      assert.ok(!outcome.stderr.includes(SECRET));
      const options = { timeout: DEFAULT_SETTINGS.timeout, readahead: DEFAULT_SETTINGS.readahead };
      assert.equal(readFileSync(jobs[i].path, "utf8"), addHttpsCdrom(jobs[i].input, jobs[i].url, options).xml);
    });
  });
});

// ---- mutated domains ---------------------------------------------------------

const NASTY = [
  "<",
  ">",
  "&",
  "'",
  '"',
  "/",
  "</disk>",
  "<disk>",
  "<boot order='1'/>",
  "<boot dev='hd'/>",
  "&amp;",
  "&bogus;",
  "<!--",
  "-->",
  "<![CDATA[",
  "]]>",
  "\u0000",
  "\u00e9",
  "<target dev='sda' bus='sata'/>",
  "<address type='drive' controller='0' bus='0' target='0' unit='0'/>",
  "xmlns:x='urn:x'",
  "<x:y/>",
  "<?pi?>",
  " order='0'",
  "<os/>",
  "<devices/>",
  "</devices><devices>",
  "<acpi></acpi>",
  "<!---->",
  "\u0007",
  "\ufeff",
  "\u00a0",
  "<disk device='cdrom'><target dev='sda'/></disk>",
];

const mutation = fc.oneof(
  fc.record({ kind: fc.constant("delete" as const), at: fc.nat(), length: fc.integer({ min: 1, max: 40 }) }),
  fc.record({
    kind: fc.constant("insert" as const),
    at: fc.nat(),
    text: fc.oneof(fc.constantFrom(...NASTY), fc.string({ maxLength: 6 })),
  }),
  fc.record({ kind: fc.constant("line" as const), at: fc.nat(), to: fc.nat() }),
  fc.record({
    kind: fc.constant("boot" as const),
    at: fc.nat(),
    value: fc.oneof(fc.integer({ min: -2, max: 20 }).map(String), fc.constantFrom("", "x", "1.5", "99999999999")),
  }),
  fc.record({
    kind: fc.constant("machine" as const),
    value: fc.constantFrom("pc", "q35", "pc-i440fx-rhel7.6.0", "pseries", "virt", "", "microvm"),
  }),
);

type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never;

function mutate(xml: string, change: Mutation): string {
  switch (change.kind) {
    case "delete": {
      const at = change.at % (xml.length || 1);
      return xml.slice(0, at) + xml.slice(at + change.length);
    }
    case "insert": {
      const at = change.at % (xml.length + 1);
      return xml.slice(0, at) + change.text + xml.slice(at);
    }
    case "line": {
      const lines = xml.split("\n");
      const [from, to] = [change.at % lines.length, change.to % lines.length];
      const [moved] = lines.splice(from, 1);
      lines.splice(to, 0, moved);
      return lines.join("\n");
    }
    case "boot": {
      let count = 0;
      return xml.replace(
        /<boot order=(['"])\d+\1/g,
        (whole, quote) => count++ === change.at % 4 ? `<boot order=${quote}${change.value}${quote}` : whole,
      );
    }
    case "machine":
      return xml.replace(/machine=(['"])[^'"]*\1/, `machine='${change.value}'`);
  }
}

const mutatedDomains = fc.tuple(fc.constantFrom(...INPUTS), fc.array(mutation, { minLength: 0, maxLength: 3 }))
  .map(([xml, changes]) => changes.reduce(mutate, xml));

// ---- helpers -------------------------------------------------------------------

function checkWithLibvirt(pairs: Array<[string, string]>): void {
  if (virshMissing()) return;
  let checked = 0;
  pairs.forEach(([input, output], i) => {
    const inPath = join(work, `libvirt-in-${i}.xml`);
    const outPath = join(work, `libvirt-out-${i}.xml`);
    writeFileSync(inPath, input);
    writeFileSync(outPath, output);
    if (run("virsh", ["-c", "test:///default", "define", inPath]).status !== 0) return;
    const defined = run("virsh", ["-c", "test:///default", "define", outPath]);
    assert.equal(defined.status, 0, `libvirt accepts the input but not the output:\n${defined.stderr}\n${output}`);
    checked++;
  });
  assert.ok(checked > 0, "at least one sampled output was checked by libvirt");
}

function runHook(path: string, url: string): Promise<{ status: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const env = { _hook_domxml: path, httpsisoboot: url, HTTPSISOBOOT_CONFIG: NO_PREFLIGHT };
    const child = spawn(BINARY, [], { env, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk) => (stderr += chunk));
    child.on("error", reject);
    child.on("close", (status) => resolve({ status, stderr }));
  });
}

async function inParallel<T, R>(items: T[], width: number, work: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index], index);
    }
  }));
  return results;
}
