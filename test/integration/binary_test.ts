// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * The CLI end to end, through each built artifact as a host would run it:
 * the bundle under node, and the single binary. Hook mode the way VDSM runs
 * it (a temp file named by _hook_domxml, the URL in httpsisoboot), --dry-run,
 * --diff, and bad input. HTTPSISOBOOT_BIN adds another artifact to test.
 */
import { before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import process from "node:process";
import { BINARY, BUNDLE, FIXTURES, readFixture, ROOT, type Run, run, settingsFiles, workDir } from "../support/mod.ts";
import { VERSION } from "../../lib/version.ts";

const work = workDir("cli");

const URL = "https://isos.example.org/el9/boot.iso?sig=TOPSECRET&exp=1";
const SAMPLE = readFixture("q35-vdsm.in.xml");

/** [name, command line, why it cannot run here] */
const ARTIFACTS: Array<[string, string[], string | undefined]> = [
  [
    "the bundle under node",
    [process.execPath, BUNDLE],
    existsSync(BUNDLE) ? undefined : `${BUNDLE} is not built; run \`npm run bundle\``,
  ],
  ["the single binary", [BINARY], existsSync(BINARY) ? undefined : `${BINARY} is not built; run \`npm run binary\``],
];
const ARM64 = join(ROOT, "dist", "httpsisoboot-aarch64");
ARTIFACTS.push([
  "the arm64 binary under qemu-aarch64",
  ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu", ARM64],
  !existsSync(ARM64)
    ? `${ARM64} is not built; run \`npm run binary:arm64\``
    : spawnSync("sh", ["-c", "command -v qemu-aarch64"]).status !== 0
    ? "qemu-aarch64 is not installed (Debian: qemu-user, libc6-arm64-cross)"
    : undefined,
]);
if (process.env.HTTPSISOBOOT_BIN) {
  ARTIFACTS.push([process.env.HTTPSISOBOOT_BIN, process.env.HTTPSISOBOOT_BIN.split(" "), undefined]);
}

let command = "";
let prefix: string[] = [];

/** Host settings for runs against made-up servers: no preflight (test/preflight_test.ts covers it). */
const { noPreflight: NO_PREFLIGHT, direct: DIRECT, defaults: DEFAULTS } = settingsFiles(work);

function hook(args: string[], env: Record<string, string | undefined>, input?: string): Run {
  return run(command, [...prefix, ...args], {
    env: { PATH: process.env.PATH, HTTPSISOBOOT_CONFIG: NO_PREFLIGHT, ...env },
    input,
  });
}

function domainFile(text = SAMPLE): string {
  const dir = mkdtempSync(join(work, "vm-"));
  const path = join(dir, "domxml");
  writeFileSync(path, text);
  return path;
}

function assertOneLineFailure(result: Run, words: RegExp): void {
  assert.equal(result.status, 2, result.stderr);
  assert.match(result.stderr, /^httpsisoboot: [^\n]+\n$/);
  assert.match(result.stderr, words);
  assert.doesNotMatch(result.stderr, /\bat .*:\d+:\d+/, "no stack trace without --debug");
}

for (const [name, commandLine, missing] of ARTIFACTS) {
  describe(`the CLI, through ${name}`, { skip: missing }, () => {
    before(() => {
      [command, ...prefix] = commandLine;
    });

    test("hook mode rewrites _hook_domxml in place and logs the target and host, not the query", () => {
      const path = domainFile();
      const result = hook([], { _hook_domxml: path, httpsisoboot: URL });
      assert.equal(result.status, 0, result.stderr);
      assert.equal(
        readFileSync(path, "utf8"),
        readFixture("q35-vdsm.out.xml").replace(
          /name="\/el9\/boot disk.iso" query="[^"]*"/,
          'name="/el9/boot.iso" query="sig=TOPSECRET&amp;exp=1"',
        ),
      );
      assert.equal(
        result.stderr,
        "httpsisoboot: added CD-ROM sdb (sata) from https://isos.example.org:443/el9/boot.iso?sig=***&exp=*** as boot device 1\n",
      );
      assert.equal(result.stdout, "");
    });

    test("hook mode leaves no temporary file behind and keeps the file's mode", () => {
      const path = domainFile();
      chmodSync(path, 0o640);
      assert.equal(hook([], { _hook_domxml: path, httpsisoboot: URL }).status, 0);
      assert.deepEqual(readdirSync(join(path, "..")), ["domxml"]);
      assert.equal(statSync(path).mode & 0o777, 0o640);
    });

    test("hook mode a second time changes nothing and says so", () => {
      const path = domainFile();
      hook([], { _hook_domxml: path, httpsisoboot: URL });
      const once = readFileSync(path);
      const again = hook([], { _hook_domxml: path, httpsisoboot: URL });
      assert.equal(again.status, 0);
      assert.deepEqual(readFileSync(path), once);
      assert.match(again.stderr, /already has CD-ROM sdb/);
    });

    for (const value of [undefined, ""]) {
      test(`hook mode with httpsisoboot ${value === undefined ? "unset" : "empty"} exits 0 and leaves the file alone`, () => {
        const path = domainFile();
        const before = statSync(path).mtimeMs;
        const result = hook([], { _hook_domxml: path, httpsisoboot: value });
        assert.equal(result.status, 0);
        assert.equal(result.stderr, "");
        assert.equal(readFileSync(path, "utf8"), SAMPLE);
        assert.equal(statSync(path).mtimeMs, before);
      });
    }

    /** [what, URL, domain XML, words in the one-line message] */
    const BAD: Array<[string, string, string, RegExp]> = [
      ["an http URL", "http://isos.example.org/boot.iso", SAMPLE, /only https is supported/],
      ["credentials in the URL", "https://admin:hunter2@isos.example.org/boot.iso", SAMPLE, /credentials/],
      ["a space in the URL", "https://isos.example.org/boot disk.iso", SAMPLE, /a space/],
      ["malformed XML", URL, SAMPLE.replace("</devices>", ""), /line \d+, column \d+/],
      ["a root that is not <domain>", URL, "<network><name>x</name></network>", /not <domain>/],
      [
        "both kinds of boot order",
        URL,
        readFixture("os-boot-dev.in.xml").replace("<readonly/>", "<readonly/><boot order='1'/>"),
        /both <os><boot dev>/,
      ],
      [
        "no free target",
        URL,
        readFixture("ide-full.in.xml").replace(/machine='[^']*'/, "machine='pc'").replace(
          "<devices>",
          "<devices>" +
            Array.from(
              { length: 702 },
              (_, i) =>
                `<disk device='disk'><target dev='sd${
                  i < 26
                    ? String.fromCharCode(97 + i)
                    : String.fromCharCode(96 + Math.floor(i / 26)) + String.fromCharCode(97 + (i % 26))
                }' bus='sata'/></disk>`,
            ).join(""),
        ),
        /no free/,
      ],
    ];
    for (const [what, url, xml, words] of BAD) {
      test(`hook mode refuses ${what} with one line, exit 2, and the file byte-identical`, () => {
        const path = domainFile(xml);
        const before = readFileSync(path);
        const result = hook([], { _hook_domxml: path, httpsisoboot: url });
        assertOneLineFailure(result, words);
        assert.deepEqual(readFileSync(path), before);
        assert.doesNotMatch(result.stderr, /hunter2/);
        assert.deepEqual(readdirSync(join(path, "..")), ["domxml"]);
      });
    }

    test("hook mode writes the host's timeout and readahead from HTTPSISOBOOT_CONFIG", () => {
      const path = domainFile();
      const config = join(work, "timeout.conf");
      writeFileSync(config, "timeout = 45\nreadahead = 2097152\npreflight = no\nrelay = off\n");
      const result = hook([], { _hook_domxml: path, httpsisoboot: URL, HTTPSISOBOOT_CONFIG: config });
      assert.equal(result.status, 0, result.stderr);
      assert.match(readFileSync(path, "utf8"), /<readahead size="2097152" \/>\n\s+<timeout seconds="45" \/>/);
    });

    /** [what, the settings file's text, the words (the file's path stands for FILE)] */
    const SETTINGS_REFUSALS: Array<[string, string, string]> = [
      [
        "a server outside the allowlist, naming the setting",
        "allow = .trusted.example.net\n",
        "isos.example.org:443 is not in the 'allow' setting of FILE",
      ],
      [
        "a bad settings file, naming the file and the key",
        "# host settings\nreadahead = 1000\n",
        "FILE line 2: 'readahead' must be a multiple of 512",
      ],
    ];
    for (const [what, text, words] of SETTINGS_REFUSALS) {
      test(`hook mode refuses ${what}, and leaves the file alone`, () => {
        const path = domainFile();
        const config = join(work, "settings-refused.conf");
        writeFileSync(config, text);
        assertOneLineFailure(
          hook([], { _hook_domxml: path, httpsisoboot: URL, HTTPSISOBOOT_CONFIG: config }),
          new RegExp(words.replace("FILE", config)),
        );
        assert.equal(readFileSync(path, "utf8"), SAMPLE);
      });
    }

    test("hook mode without _hook_domxml explains how to try it by hand", () => {
      assertOneLineFailure(hook([], { httpsisoboot: URL }), /_hook_domxml is not set.*--dry-run/);
    });

    test("hook mode names a missing domain file, in words", () => {
      assertOneLineFailure(
        hook([], { _hook_domxml: join(work, "nope"), httpsisoboot: URL }),
        /cannot read the domain XML '[^']*\/nope': there is no such file; check the path \(ENOENT\)\n$/,
      );
    });

    test("a domain file that is not XML is named, in hook mode and in --dry-run", () => {
      const path = domainFile("hello, not XML\n");
      const words = `the domain XML '${path}' is not well-formed XML (text outside the root element at line 1, ` +
        "column 1); give a libvirt domain XML, as virsh dumpxml writes it";
      const hooked = hook([], { _hook_domxml: path, httpsisoboot: URL });
      assertOneLineFailure(hooked, new RegExp(`^httpsisoboot: ${words.replace(/[().\/]/g, "\\$&")}\n$`));
      assertOneLineFailure(hook(["--dry-run", "--url", URL, path], {}), /is not well-formed XML/);
      assert.equal(readFileSync(path, "utf8"), "hello, not XML\n");
    });

    test("--debug adds the stack trace", () => {
      const result = hook(["--debug"], { _hook_domxml: domainFile("<domain><devices></domain>"), httpsisoboot: URL });
      assert.equal(result.status, 2);
      assert.match(
        result.stderr,
        /^httpsisoboot: the domain XML '[^']+' is not well-formed XML \(<\/domain> does not close <devices>[^\n]*\n[\s\S]*\bat /,
      );
    });

    test("--dry-run prints the XML the hook would write, and writes nothing", () => {
      const path = domainFile();
      const result = hook(["--dry-run", "--url", URL, path], {});
      assert.equal(result.status, 0, result.stderr);
      assert.match(result.stdout, /<source protocol="https" name="\/el9\/boot.iso"/);
      assert.equal(readFileSync(path, "utf8"), SAMPLE);
    });

    test("--dry-run in relay mode, the default, shows the relay's disk and what it would start, query hidden, starting nothing", () => {
      const path = domainFile();
      const result = hook(["--dry-run", "--url", URL, path], {
        HTTPSISOBOOT_CONFIG: DEFAULTS,
        HTTPSISOBOOT_RUN_DIR: join(work, "no-such-run-dir"),
      });
      assert.equal(result.status, 0, result.stderr);
      const uuid = "7a3c1f52-4d1e-4b7a-9c2e-5f0e8a6b1d21";
      const socket = join(work, "no-such-run-dir", `${uuid}.sock`);
      assert.match(
        result.stdout,
        new RegExp(`<source protocol="nbd">\\s*<host transport="unix" socket="${socket}" />`),
      );
      assert.match(
        result.stdout,
        /<httpsisoboot:relay [^>]*url="https:\/\/isos\.example\.org:443\/el9\/boot\.iso\?sig=\*\*\*&amp;exp=\*\*\*" \/>/,
      );
      const lines = result.stderr.split("\n");
      assert.match(
        lines[0],
        new RegExp(
          `^httpsisoboot: added CD-ROM sdb \\(sata\\) from .* through its relay on ${socket} as boot device 1$`,
        ),
      );
      assert.match(lines[1], new RegExp(`^httpsisoboot: the hook would start the relay: .* --relay ${uuid}$`));
      assert.match(
        lines[2],
        /^httpsisoboot: the relay would run: \/usr\/s?bin\/nbdkit --foreground --readonly .* curl url=http:\/\/httpsisoboot-relay\/iso /,
      );
      assert.ok(!result.stdout.includes("TOPSECRET") && !result.stderr.includes("TOPSECRET"));
      assert.equal(readFileSync(path, "utf8"), SAMPLE);
      assert.ok(!existsSync(join(work, "no-such-run-dir")), "nothing was started or made");
    });

    test("--dry-run shows query values as *** and never contacts the server, even with preflight on", () => {
      const path = domainFile();
      const result = hook(["--dry-run", "--diff", "--url", URL, path], {
        HTTPSISOBOOT_CONFIG: DIRECT,
      });
      assert.equal(result.status, 0, result.stderr);
      assert.match(result.stdout, /query="sig=\*\*\*&amp;exp=\*\*\*"/);
      assert.ok(!result.stdout.includes("TOPSECRET") && !result.stderr.includes("TOPSECRET"));
    });

    test("--dry-run hides the query of a CD-ROM the domain already has (regression, issue 8)", () => {
      const path = domainFile();
      assert.equal(hook([], { _hook_domxml: path, httpsisoboot: URL }).status, 0);
      const result = hook(["--dry-run", "--url", URL, path], {});
      assert.equal(result.status, 0, result.stderr);
      assert.match(result.stderr, /already has/);
      assert.match(result.stdout, /query="sig=\*\*\*&amp;exp=\*\*\*"/);
      assert.ok(!result.stdout.includes("TOPSECRET"));
    });

    test("--dry-run takes FILE and URL from the hook's environment", () => {
      const path = domainFile();
      const viaEnv = hook(["--dry-run"], { _hook_domxml: path, httpsisoboot: URL });
      const viaArgs = hook(["--dry-run", "--url", URL, path], {});
      assert.equal(viaEnv.status, 0, viaEnv.stderr);
      assert.equal(viaEnv.stdout, viaArgs.stdout);
      assert.equal(readFileSync(path, "utf8"), SAMPLE);
    });

    test("--dry-run reads stdin for -", () => {
      const result = hook(["--dry-run", "--url", URL, "-"], {}, SAMPLE);
      assert.equal(result.status, 0, result.stderr);
      assert.equal(result.stdout, hook(["--dry-run", "--url", URL, join(FIXTURES, "q35-vdsm.in.xml")], {}).stdout);
    });

    test("--dry-run --diff prints a unified diff of just the change", () => {
      const path = domainFile();
      const result = hook(["--dry-run", "--diff", "--url", URL, path], {});
      assert.equal(result.status, 0, result.stderr);
      assert.match(result.stdout, new RegExp(`^--- ${path}\\n\\+\\+\\+ ${path} \\(with httpsisoboot\\)\\n@@ `));
      assert.match(result.stdout, /^-\s+<boot order="1" \/>$/m);
      assert.match(result.stdout, /^\+\s+<boot order="2" \/>$/m);
      assert.match(result.stdout, /^\+\s+<target dev="sdb" bus="sata" tray="closed" \/>$/m);
      const changed = result.stdout.split("\n").filter((line) => /^[-+](?![-+])/.test(line));
      // Two boot orders move (a - and a + line each) and the new disk adds 11
      // lines, readahead and timeout among them.
      assert.equal(changed.length, 15);
      assert.equal(readFileSync(path, "utf8"), SAMPLE);
    });

    test("--dry-run refuses bad input with one line and exit 2", () => {
      assertOneLineFailure(hook(["--dry-run", "--url", "https://isos.example.org/", domainFile()], {}), /no path/);
      assertOneLineFailure(hook(["--dry-run", domainFile()], {}), /no URL/);
      assertOneLineFailure(hook(["--dry-run", "--url", URL], {}), /no domain XML/);
    });

    test("unknown options and misplaced arguments exit 2 with a pointer to --help", () => {
      assertOneLineFailure(hook(["--frobnicate"], {}), /--frobnicate.*see --help/);
      assertOneLineFailure(hook(["--url", URL], {}), /only works with --dry-run/);
      assertOneLineFailure(hook(["--dry-run", "a", "b"], {}), /one FILE/);
    });

    test("--help documents the modes and exit codes", () => {
      const result = hook(["--help"], {});
      assert.equal(result.status, 0);
      for (const words of ["--dry-run", "--diff", "_hook_domxml", "httpsisoboot", "Exit codes", "50_httpsisoboot"]) {
        assert.ok(result.stdout.includes(words), words);
      }
    });

    test("--version prints the release from package.json", () => {
      const result = hook(["--version"], {});
      assert.equal(result.stdout, `httpsisoboot ${VERSION}\n`);
      const pkg = JSON.parse(readFileSync(join(FIXTURES, "..", "..", "package.json"), "utf8"));
      assert.equal(VERSION, pkg.version);
    });
  });
}

describe("the single binary", {
  skip: existsSync(BINARY) ? undefined : `${BINARY} is not built; run \`npm run binary\``,
}, () => {
  test("runs with no Deno, Node or Bun: env -i, hook mode and --version", () => {
    const path = domainFile();
    const result = spawnSync("env", [
      "-i",
      `_hook_domxml=${path}`,
      `httpsisoboot=${URL}`,
      `HTTPSISOBOOT_CONFIG=${NO_PREFLIGHT}`,
      BINARY,
    ], { encoding: "utf8" });
    assert.equal(result.status, 0, result.stderr);
    assert.match(readFileSync(path, "utf8"), /<source protocol="https" name="\/el9\/boot.iso"/);
    const version = spawnSync("env", ["-i", BINARY, "--version"], { encoding: "utf8" });
    assert.equal(version.stdout, `httpsisoboot ${VERSION}\n`);
  });

  test("takes no code and no settings from the directory it runs in: a bunfig.toml's preload and a .env are ignored", () => {
    // Bun's executables load both from the working directory unless built not to: code run as root by whoever can write there.
    const dir = mkdtempSync(join(work, "cwd-"));
    const marker = join(dir, "planted-ran");
    writeFileSync(join(dir, "bunfig.toml"), 'preload = ["./planted.js"]\n');
    writeFileSync(join(dir, "planted.js"), `require("node:fs").writeFileSync(${JSON.stringify(marker)}, "ran");\n`);
    writeFileSync(join(dir, ".env"), "HTTPSISOBOOT_CONFIG=/nonexistent/planted.conf\n");
    const result = spawnSync(BINARY, ["--dry-run", "--url", URL, join(FIXTURES, "q35-vdsm.in.xml")], {
      cwd: dir,
      env: { PATH: process.env.PATH },
      encoding: "utf8",
    });
    assert.equal(existsSync(marker), false, "the planted preload never ran");
    assert.equal(result.status, 0, `the planted .env named no settings file: ${result.stderr}`);
  });
});

describe("the bundle under Deno", {
  skip: (existsSync(BUNDLE) ? undefined : `${BUNDLE} is not built`) ?? denoMissing(),
}, () => {
  test("deno run -A dist/httpsisoboot.mjs gives the same result as node", () => {
    const path = domainFile();
    const args = ["--dry-run", "--url", URL, path];
    const env = { PATH: process.env.PATH, HTTPSISOBOOT_CONFIG: NO_PREFLIGHT };
    const underDeno = run("deno", ["run", "-A", BUNDLE, ...args], { env });
    const underNode = run(process.execPath, [BUNDLE, ...args], { env });
    assert.equal(underDeno.status, 0, underDeno.stderr);
    assert.equal(underDeno.stdout, underNode.stdout);
    assert.equal(underDeno.stderr, underNode.stderr);
  });
});

function denoMissing(): string | undefined {
  try {
    return run("deno", ["--version"]).status === 0 ? undefined : "deno does not run";
  } catch {
    return "deno is not on PATH (npm ci installs it into node_modules/.bin; npm test puts that on PATH)";
  }
}
