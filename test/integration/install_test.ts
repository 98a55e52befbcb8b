// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * `httpsisoboot --install` and `--uninstall`, run as the built binary: into
 * a staging root (what the RPM build would do), and the refusals on this
 * host, which stop before anything is written. Installing onto a live host
 * with systemd as PID 1 is proven in the e2e's systemd host.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { HOOK_POINTS } from "../../lib/hook_point.ts";
import { BINARY_PATH, HOOK_NAME, HOOKS_DIR, HOST_FILES, SETTINGS_EXAMPLE } from "../../lib/host_files.ts";
import { BINARY, ROOT, run, workDir } from "../support/mod.ts";

const noBinary = existsSync(BINARY) ? undefined : `${BINARY} is not built; run \`npm run binary\``;

describe("httpsisoboot --install", { skip: noBinary }, () => {
  // Each staging root holds a copy of the binary (110 MB): all of them go with the suite.
  const work = workDir("install");
  let roots = 0;
  const stagingRoot = () => {
    const root = join(work, `root-${++roots}`);
    mkdirSync(root);
    return root;
  };
  test("--install --root puts the binary, a link at every hook point and the host files in place; a second run changes nothing", () => {
    const root = stagingRoot();
    const first = run(BINARY, ["--install", "--root", root]);
    assert.equal(first.status, 0, first.stderr);
    assert.match(first.stderr, /^httpsisoboot: installed 13 files under \/\S+ \(the binary, 6 hook points, /);
    assert.match(
      first.stderr,
      /\nhttpsisoboot: warning: allow is not set in \S+\/etc\/vdsm\/httpsisoboot\.conf, so any server is allowed: /,
      "the settings as installed allow any server, and --install says so",
    );
    assert.equal(first.stderr.split("\n").length, 3, "two lines");
    assert.deepEqual(readFileSync(join(root, BINARY_PATH)), readFileSync(BINARY));
    assert.equal(statSync(join(root, BINARY_PATH)).mode & 0o777, 0o755);
    for (const point of HOOK_POINTS) {
      const link = join(root, HOOKS_DIR, point, HOOK_NAME);
      assert.ok(lstatSync(link).isSymbolicLink(), point);
      assert.equal(readlinkSync(link), "../../httpsisoboot", "relative, as the RPM makes it");
      assert.equal(realpathSync(link), realpathSync(join(root, BINARY_PATH)));
    }
    for (const file of HOST_FILES) {
      assert.equal(readFileSync(join(root, file.path), "utf8"), file.text, file.path);
      assert.equal(statSync(join(root, file.path)).mode & 0o777, file.mode, file.path);
    }
    const linked = run(join(root, HOOKS_DIR, "after_vm_destroy", HOOK_NAME), ["--version"]);
    assert.match(linked.stdout, /^httpsisoboot \d+\.\d+\.\d+\n$/, "the staged hook runs");
    writeFileSync(join(root, SETTINGS_EXAMPLE.path), "timeout = 60\nallow = isos.example.org\n");
    const again = run(BINARY, ["--install", "--root", root]);
    assert.equal(again.status, 0, again.stderr);
    assert.match(
      again.stderr,
      /; kept the settings in .*\/etc\/vdsm\/httpsisoboot\.conf\n$/,
      "no warning with allow set",
    );
    assert.equal(
      readFileSync(join(root, SETTINGS_EXAMPLE.path), "utf8"),
      "timeout = 60\nallow = isos.example.org\n",
      "the admin's settings stay",
    );
    writeFileSync(join(root, SETTINGS_EXAMPLE.path), "alow = isos.example.org\n");
    const typo = run(BINARY, ["--install", "--root", root]);
    assert.match(typo.stderr, /\nhttpsisoboot: warning: \S+ line 1: unknown setting 'alow' \(did you mean 'allow'\?\)/);
  });

  test("--uninstall --root takes away all it installed but the settings, which are the admin's", () => {
    const root = stagingRoot();
    assert.equal(run(BINARY, ["--install", "--root", root]).status, 0);
    const removed = run(BINARY, ["--uninstall", "--root", root]);
    assert.equal(removed.status, 0, removed.stderr);
    assert.match(removed.stderr, /^httpsisoboot: removed 12 files under /);
    assert.equal(existsSync(join(root, BINARY_PATH)), false);
    for (const point of HOOK_POINTS) assert.equal(existsSync(join(root, HOOKS_DIR, point, HOOK_NAME)), false);
    for (const file of HOST_FILES) assert.equal(existsSync(join(root, file.path)), Boolean(file.config), file.path);
  });

  test("--install on this host refuses, before writing anything, without root, or without the vdsm user", {
    skip: process.getuid?.() === 0 ? undefined : "needs root, to try it as root and as another user",
  }, () => {
    const unprivileged = spawnSync("setpriv", ["--reuid=1000", "--regid=1000", "--clear-groups", BINARY, "--install"], {
      encoding: "utf8",
    });
    assert.equal(unprivileged.status, 2);
    assert.match(
      unprivileged.stderr,
      /^httpsisoboot: --install writes \/usr\/libexec\/vdsm\/httpsisoboot .*run it as root, or give --root DIR\n$/,
    );
    const hasVdsm = readFileSync("/etc/passwd", "utf8").split("\n").some((line) => line.startsWith("vdsm:"));
    if (!hasVdsm) {
      const refused = run(BINARY, ["--install"]);
      assert.equal(refused.status, 2);
      assert.match(
        refused.stderr,
        /^httpsisoboot: cannot install: there is no user vdsm, which runs the hook and the relays; install vdsm\n$/,
      );
    }
    assert.equal(existsSync(BINARY_PATH), false, "nothing was written");
  });

  test("--install refuses to run from a script: only the single binary can be a hook", () => {
    const script = run(process.execPath, [
      "--import",
      "tsx",
      join(ROOT, "hook.ts"),
      "--install",
      "--root",
      stagingRoot(),
    ]);
    assert.equal(script.status, 2);
    assert.match(script.stderr, /--install copies the single binary into place; run it from the binary/);
  });

  test("--install takes only --root, an absolute staging root", () => {
    for (
      const [args, words] of [
        [["--install", "--uninstall"], /--install takes only --root DIR/],
        [["--install", "--root", "relative"], /--root takes an absolute path, not 'relative'/],
        [["--install", "--root", "/"], /not '\/'/],
        [["--root", "/x"], /--root goes with --install or --uninstall/],
      ] as const
    ) {
      const outcome = run(BINARY, [...args]);
      assert.equal(outcome.status, 2, args.join(" "));
      assert.match(outcome.stderr, words);
    }
  });
});
