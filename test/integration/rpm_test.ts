// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * The RPMs (issue 9): `npm run rpm` builds both from this tree; their
 * contents and dependencies; rpmlint; the upgrade that swaps VDSM's Python
 * hook for ours in a throwaway rpm root; %check failing a stripped payload;
 * and the installed file run through VDSM's own runner as uid 36, x86_64
 * natively and aarch64 under qemu-user.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { readFixture, ROOT, tempDir } from "../support/mod.ts";
import { runnerMissing, vdsmRunner } from "../support/vdsm_runner.ts";

const HOOK = "/usr/libexec/vdsm/hooks/before_vm_start/50_httpsisoboot";
const VERSION = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version;
const RPMS = join(ROOT, "dist", "rpm");
const rpmFile = (arch: string) => join(RPMS, `vdsm-hook-httpsisoboot-${VERSION}-1.${arch}.rpm`);

function missing(): string | undefined {
  for (const tool of ["rpmbuild", "rpmlint", "qemu-aarch64"]) {
    if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) {
      return `${tool} is not installed; npm test installs it as root`;
    }
  }
  return undefined;
}

function sh(command: string, args: string[], options: { env?: Record<string, string>; cwd?: string } = {}) {
  const result = spawnSync(command, args, {
    encoding: "utf8",
    cwd: options.cwd ?? ROOT,
    env: { ...process.env, ...options.env },
  });
  return { status: result.status, stdout: result.stdout ?? "", stderr: result.stderr ?? "" };
}

let work = "";

describe("RPMs", { skip: missing() }, () => {
  before(() => {
    work = tempDir("rpm");
    rmSync(RPMS, { recursive: true, force: true });
    const built = sh("bash", ["scripts/rpm/build.sh"]);
    assert.equal(built.status, 0, built.stderr);
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  for (const arch of ["x86_64", "aarch64"]) {
    test(`the ${arch} RPM holds the hook, the settings as %config(noreplace), the man page and the license`, () => {
      const files =
        sh("rpm", ["-qp", "--qf", "[%{FILEMODES:perms} %{FILEFLAGS:fflags} %{FILENAMES}\\n]", rpmFile(arch)]).stdout;
      assert.match(files, new RegExp(`^-rwxr-xr-x\\s+${HOOK}$`, "m"));
      assert.match(files, /^-rw-r--r-- cn \/etc\/vdsm\/httpsisoboot\.conf$/m);
      assert.match(files, /^-rw-r--r-- d \/usr\/share\/man\/man8\/httpsisoboot\.8\.gz$/m);
      assert.match(files, /^-rw-r--r-- l \/usr\/share\/licenses\/vdsm-hook-httpsisoboot-[^/]+\/LICENSE$/m);
    });

    test(`the ${arch} RPM has Epoch 1, and requires QEMU's curl driver and vdsm`, () => {
      const info =
        sh("rpm", ["-qp", "--qf", "%{NAME} %{EPOCH}:%{VERSION}-%{RELEASE} %{ARCH} %{LICENSE}\\n", rpmFile(arch)])
          .stdout;
      assert.equal(info, `vdsm-hook-httpsisoboot 1:${VERSION}-1 ${arch} GPL-2.0-or-later\n`);
      const requires = sh("rpm", ["-qp", "--requires", rpmFile(arch)]).stdout.split("\n");
      assert.ok(requires.includes("qemu-kvm-block-curl") && requires.includes("vdsm"), requires.join(", "));
    });
  }

  test("rpmlint is clean, but for the findings scripts/rpm/rpmlint.toml filters and the spec explains", () => {
    const lint = sh("rpmlint", ["-c", "scripts/rpm/rpmlint.toml", rpmFile("x86_64"), rpmFile("aarch64")]);
    assert.match(lint.stdout, /2 packages and 0 specfiles checked; 0 errors, 0 warnings/, lint.stdout);
  });

  test("the man page is the --help text", () => {
    const page = sh("sh", [
      "-c",
      `rpm2cpio '${rpmFile("x86_64")}' | cpio -i --quiet --to-stdout ./usr/share/man/man8/httpsisoboot.8.gz | gunzip`,
    ]);
    assert.match(page.stdout, /^\.TH HTTPSISOBOOT 8 /);
    assert.match(page.stdout, /httpsisoboot --dry-run \[--url URL\] \[--diff\] \[FILE\|-\]/);
  });

  test("rpm -U replaces VDSM's Python hook (4.50.7, noarch) in a throwaway root, and rpm -V is clean", () => {
    const root = installOverStandIn("x86_64");
    const rpm = (...args: string[]) => sh("rpm", ["--root", root, "--dbpath", "/var/lib/rpm", ...args]);
    assert.equal(rpm("-qa").stdout.trim(), `vdsm-hook-httpsisoboot-${VERSION}-1.x86_64`, "only ours is left");
    assert.equal(rpm("-qf", HOOK, "--qf", "%{EPOCH}:%{VERSION} %{ARCH}\n").stdout, `1:${VERSION} x86_64\n`);
    // Files only: a throwaway root has none of the dependencies (glibc, vdsm, the curl driver).
    const verified = rpm("-V", "--nodeps", "vdsm-hook-httpsisoboot");
    assert.equal(verified.status, 0, verified.stdout + verified.stderr);
    assert.equal(verified.stdout, "");
    assert.equal(sh(join(root, HOOK), ["--version"]).stdout, `httpsisoboot ${VERSION}\n`);
  });

  test("%check fails the build when the payload is stripped (a stripped Bun binary prints Bun's help and exits 0)", () => {
    // The spec as it is, given a stripped copy of the binary it packages.
    const top = mkdtempSync(join(work, "stripped-"));
    const sources = join(top, "SOURCES");
    mkdirSync(sources, { recursive: true });
    const extracted = sh("sh", ["-c", `cd '${sources}' && rpm2cpio '${rpmFile("x86_64")}' | cpio -idm --quiet`]);
    assert.equal(extracted.status, 0, extracted.stderr);
    const binary = join(sources, "httpsisoboot-x86_64");
    sh("cp", [join(sources, HOOK), binary]);
    sh("strip", [binary]);
    const bunHelp = sh(binary, ["--version"]);
    assert.equal(bunHelp.status, 0, "a stripped Bun binary exits 0");
    assert.doesNotMatch(bunHelp.stdout, /httpsisoboot/, "and is no longer the hook");
    for (const file of ["LICENSE", "README.md", "scripts/rpm/httpsisoboot.conf"]) sh("cp", [join(ROOT, file), sources]);
    writeFileSync(join(sources, "httpsisoboot.8"), ".TH HTTPSISOBOOT 8\n");
    const spec = join(ROOT, "scripts", "rpm", "vdsm-hook-httpsisoboot.spec");
    const defines = ["--define", `_topdir ${top}`, "--define", `hook_version ${VERSION}`];
    const built = sh("rpmbuild", ["-bb", "--target", "x86_64", ...defines, spec]);
    assert.notEqual(built.status, 0, "rpmbuild must fail");
    assert.match(built.stderr, /Bad exit status from .*\(%check\)/);
  });

  for (const arch of ["x86_64", "aarch64"]) {
    test(
      `VDSM's runner runs the installed ${arch} hook as uid 36: the https CD-ROM boots first, and a refusal is a HookError`,
      {
        skip: runnerMissing(),
      },
      () => {
        const root = installOverStandIn(arch);
        const hooks = join(work, `hooks-${arch}`);
        mkdirSync(join(hooks, "before_vm_start"), { recursive: true, mode: 0o755 });
        const installed = join(root, HOOK);
        const hook = join(hooks, "before_vm_start", "50_httpsisoboot");
        // No binfmt_misc here: another architecture's binary runs through qemu-user.
        writeFileSync(
          hook,
          arch === "x86_64"
            ? `#!/bin/sh\nexec '${installed}' "$@"\n`
            : `#!/bin/sh\nexec qemu-aarch64 -L /usr/aarch64-linux-gnu '${installed}' "$@"\n`,
          { mode: 0o755 },
        );
        const settings = join(work, `no-preflight-${arch}.conf`);
        writeFileSync(settings, "preflight = no\n", { mode: 0o644 });
        const runner = vdsmRunner(work, hooks);
        const domain = readFixture("q35-vdsm.in.xml");
        const added = runner.beforeVmStart(domain, { httpsisoboot: "https://isos.example.org/el9/boot.iso?sig=1" }, {
          HTTPSISOBOOT_CONFIG: settings,
        });
        assert.equal(added.error, undefined);
        assert.match(added.xml!, /<source protocol="https" name="\/el9\/boot.iso" query="sig=1">/);
        assert.equal(added.xml!.match(/<boot order="1" \/>/g)?.length, 1);
        const refused = runner.beforeVmStart(domain, { httpsisoboot: "http://isos.example.org/boot.iso" }, {
          HTTPSISOBOOT_CONFIG: settings,
        });
        assert.match(refused.error ?? "", /^httpsisoboot: the URL scheme is 'http', but only https is supported/);
        const unreadable = runner.beforeVmStart(domain, { httpsisoboot: "https://isos.example.org/boot.iso" }, {
          HTTPSISOBOOT_CONFIG: privateSettings(),
        });
        assert.match(
          unreadable.error ?? "",
          /EACCES \(the hook runs as \S+, uid 36, and needs to read it; it is mode 0600, owner root:0\)/,
        );
      },
    );
  }
});

/** A throwaway rpm root holding a stand-in of VDSM's Python hook, then ours upgraded over it. */
function installOverStandIn(arch: string): string {
  const root = mkdtempSync(join(work, `root-${arch}-`));
  chmodSync(root, 0o755);
  const rpm = (...args: string[]) => sh("rpm", ["--root", root, "--dbpath", "/var/lib/rpm", ...args]);
  const installed = rpm("-i", "--nodeps", standIn());
  assert.equal(installed.status, 0, installed.stderr);
  assert.equal(rpm("-q", "vdsm-hook-httpsisoboot").stdout, "vdsm-hook-httpsisoboot-4.50.7-1.noarch\n");
  const foreign = arch === process.arch.replace("x64", "x86_64") ? [] : ["--ignorearch"];
  const upgraded = rpm("-U", "--nodeps", ...foreign, rpmFile(arch));
  assert.equal(upgraded.status, 0, upgraded.stderr);
  return root;
}

let standInRpm = "";

/** The Python hook's package as VDSM ships it: same name, 4.50.7, noarch, owning the same path. */
function standIn(): string {
  if (standInRpm) return standInRpm;
  const top = mkdtempSync(join(work, "stand-in-"));
  writeFileSync(
    join(top, "stand-in.spec"),
    `Name: vdsm-hook-httpsisoboot
Version: 4.50.7
Release: 1
Summary: Allow directly booting from an https available ISO
License: GPL-2.0-or-later
BuildArch: noarch
%description
A stand-in of the Python hook that vdsm 4.50.7 ships.
%install
mkdir -p %{buildroot}/usr/libexec/vdsm/hooks/before_vm_start
printf '#!/usr/bin/python3\\nprint("the Python hook")\\n' > %{buildroot}${HOOK}
chmod 0755 %{buildroot}${HOOK}
%files
${HOOK}
`,
  );
  const built = sh("rpmbuild", ["-bb", "--quiet", "--define", `_topdir ${top}`, join(top, "stand-in.spec")]);
  assert.equal(built.status, 0, built.stderr);
  standInRpm = join(top, "RPMS", "noarch", readdirSync(join(top, "RPMS", "noarch"))[0]);
  return standInRpm;
}

/** A settings file only root may read, as an admin might leave it. */
function privateSettings(): string {
  const path = join(work, "root-only.conf");
  if (!existsSync(path)) writeFileSync(path, "preflight = no\n", { mode: 0o600 });
  return path;
}
