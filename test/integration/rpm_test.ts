// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * The RPMs (issue 9): `npm run rpm` builds both from this tree; their
 * contents and dependencies; rpmlint; the upgrade that swaps VDSM's Python
 * hook for ours in a throwaway rpm root; %check failing a stripped payload;
 * and the installed file run through VDSM's own runner as uid 36, x86_64
 * natively and aarch64 under qemu-user.
 */
import { writeSources } from "../../scripts/host_files.ts";
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
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { readFixture, ROOT, tempDir } from "../support/mod.ts";
import { HOOK_POINTS } from "../../lib/hook_point.ts";
import { runnerMissing, vdsmRunner } from "../support/vdsm_runner.ts";

const HOOK = "/usr/libexec/vdsm/hooks/before_vm_start/50_httpsisoboot";
const BINARY_PATH = "/usr/libexec/vdsm/httpsisoboot";
const UNIT = "/usr/lib/systemd/system/httpsisoboot-relay@.service";
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
    test(`the ${arch} RPM holds the binary, a link to it at each hook point, the relay's unit, tmpfiles.d, polkit and SELinux files, the settings as %config(noreplace), the man page and the license`, () => {
      const files = sh("rpm", [
        "-qp",
        "--qf",
        "[%{FILEMODES:perms} %{FILEFLAGS:fflags} %{FILENAMES} %{FILELINKTOS}\\n]",
        rpmFile(arch),
      ])
        .stdout;
      assert.match(files, new RegExp(`^-rwxr-xr-x\\s+${BINARY_PATH} $`, "m"));
      for (const point of HOOK_POINTS) {
        assert.match(
          files,
          new RegExp(
            `^lrwxrwxrwx\\s+/usr/libexec/vdsm/hooks/${point}/50_httpsisoboot \\.\\./\\.\\./httpsisoboot$`,
            "m",
          ),
        );
      }
      assert.equal(files.match(/^-rwxr-xr-x/gm)?.length, 1, "one binary, not one a hook point");
      for (
        const path of [
          UNIT,
          "/usr/lib/tmpfiles.d/httpsisoboot.conf",
          "/usr/share/polkit-1/rules.d/50-httpsisoboot.rules",
          "/usr/share/selinux/packages/httpsisoboot.cil",
        ]
      ) {
        assert.match(files, new RegExp(`^-rw-r--r--\\s+${path.replaceAll(".", "\\.")} $`, "m"));
      }
      assert.match(files, /^-rw-r--r-- cn \/etc\/vdsm\/httpsisoboot\.conf $/m);
      assert.match(files, /^-rw-r--r-- d \/usr\/share\/man\/man8\/httpsisoboot\.8\.gz $/m);
      assert.match(files, /^-rw-r--r-- l \/usr\/share\/licenses\/vdsm-hook-httpsisoboot-[^/]+\/LICENSE $/m);
    });

    test(`the ${arch} RPM has Epoch 1, requires vdsm and nbdkit with its curl plugin and basic filters, and recommends QEMU's curl driver`, () => {
      const info =
        sh("rpm", ["-qp", "--qf", "%{NAME} %{EPOCH}:%{VERSION}-%{RELEASE} %{ARCH} %{LICENSE}\\n", rpmFile(arch)])
          .stdout;
      assert.equal(info, `vdsm-hook-httpsisoboot 1:${VERSION}-1 ${arch} GPL-2.0-or-later\n`);
      const requires = sh("rpm", ["-qp", "--requires", rpmFile(arch)]).stdout.split("\n");
      for (const name of ["vdsm", "nbdkit-server", "nbdkit-curl-plugin", "nbdkit-basic-filters"]) {
        assert.ok(requires.includes(name), `${name} in ${requires.join(", ")}`);
      }
      assert.ok(!requires.includes("qemu-kvm-block-curl"), "only relay = off needs it");
      assert.equal(sh("rpm", ["-qp", "--recommends", rpmFile(arch)]).stdout, "qemu-kvm-block-curl\n");
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
    assert.equal(readlinkSync(join(root, HOOK)), "../../httpsisoboot", "the Python hook's file became our link");
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
    sh("cp", [join(sources, BINARY_PATH), binary]);
    sh("strip", [binary]);
    const bunHelp = sh(binary, ["--version"]);
    assert.equal(bunHelp.status, 0, "a stripped Bun binary exits 0");
    assert.doesNotMatch(bunHelp.stdout, /httpsisoboot/, "and is no longer the hook");
    for (const file of ["LICENSE", "README.md", "scripts/rpm/httpsisoboot.cil"]) {
      sh("cp", [join(ROOT, file), sources]);
    }
    writeSources(sources);
    writeFileSync(join(sources, "httpsisoboot.8"), ".TH HTTPSISOBOOT 8\n");
    const spec = join(ROOT, "scripts", "rpm", "vdsm-hook-httpsisoboot.spec");
    const defines = ["--define", `_topdir ${top}`, "--define", `hook_version ${VERSION}`];
    const built = sh("rpmbuild", ["-bb", "--target", "x86_64", ...defines, spec]);
    assert.notEqual(built.status, 0, "rpmbuild must fail");
    assert.match(built.stderr, /Bad exit status from .*\(%check\)/);
  });

  test("the relay's unit passes systemd-analyze verify, in a root with the RPM's files", {
    skip: spawnSync("sh", ["-c", "command -v systemd-analyze"]).status === 0 ? undefined : "systemd is not installed",
  }, () => {
    const root = installOverStandIn("x86_64");
    // verify resolves what the unit needs (targets, the binary) in the root, as on a host.
    sh("cp", ["-a", "--no-clobber", "/usr/lib/systemd/system/.", join(root, "usr/lib/systemd/system/")]);
    const unit = "httpsisoboot-relay@7a3c1f52-4d1e-4b7a-9c2e-5f0e8a6b1d21.service";
    const verified = sh("systemd-analyze", ["verify", "--man=no", `--root=${root}`, unit]);
    assert.equal(verified.status, 0, verified.stderr);
    assert.equal(verified.stdout + verified.stderr, "", "no warning either");
    const text = readFileSync(join(root, UNIT), "utf8");
    assert.match(text, /^ExecStart=\/usr\/libexec\/vdsm\/httpsisoboot --relay %i$/m);
    assert.match(text, /^Restart=on-failure$/m);
    assert.match(text, /^User=vdsm$/m);
    assert.match(text, /^MemoryDenyWriteExecute=yes$/m);
  });

  test("tmpfiles.d makes the relays' directories vdsm:qemu, 0750 and 0700, in a root whose vdsm is uid 36", {
    skip: spawnSync("sh", ["-c", "command -v systemd-tmpfiles"]).status === 0 ? undefined : "systemd is not installed",
  }, () => {
    const root = installOverStandIn("x86_64");
    mkdirSync(join(root, "etc"), { recursive: true });
    writeFileSync(join(root, "etc/passwd"), "root:x:0:0::/root:/bin/sh\nvdsm:x:36:36::/var/lib/vdsm:/sbin/nologin\n");
    writeFileSync(join(root, "etc/group"), "root:x:0:\nkvm:x:36:qemu,vdsm\nqemu:x:107:vdsm\n");
    const made = sh("systemd-tmpfiles", ["--create", `--root=${root}`, "httpsisoboot.conf"]);
    assert.equal(made.status, 0, made.stderr);
    for (const [dir, mode] of [["run/httpsisoboot", 0o750], ["var/cache/httpsisoboot", 0o700]] as const) {
      const stat = statSync(join(root, dir));
      assert.deepEqual([stat.isDirectory(), stat.mode & 0o7777, stat.uid, stat.gid], [true, mode, 36, 107], dir);
    }
  });

  test("the polkit rule lets vdsm start and stop relay units, and nothing else", () => {
    const root = installOverStandIn("x86_64");
    const rule = readFileSync(join(root, "usr/share/polkit-1/rules.d/50-httpsisoboot.rules"), "utf8");
    const decide = (user: string, id: string, unit: string, verb: string): string => {
      const rules: Array<(action: unknown, subject: unknown) => string> = [];
      const polkit = {
        Result: { YES: "yes", NO: "no", NOT_HANDLED: "not handled" },
        addRule: (f: typeof rules[0]) => rules.push(f),
      };
      new Function("polkit", rule)(polkit);
      const action = { id, lookup: (key: string) => ({ unit, verb } as Record<string, string>)[key] };
      return rules[0](action, { user });
    };
    const relay = "httpsisoboot-relay@7a3c1f52-4d1e-4b7a-9c2e-5f0e8a6b1d21.service";
    const manage = "org.freedesktop.systemd1.manage-units";
    assert.equal(decide("vdsm", manage, relay, "start"), "yes");
    assert.equal(decide("vdsm", manage, relay, "stop"), "yes");
    for (
      const [user, id, unit, verb] of [
        ["vdsm", manage, relay, "restart"],
        ["vdsm", manage, relay, "reload"],
        ["vdsm", manage, "sshd.service", "stop"],
        ["vdsm", manage, "httpsisoboot-relay@../../sshd.service", "start"],
        ["vdsm", manage, `${relay}.d`, "start"],
        ["vdsm", "org.freedesktop.systemd1.manage-unit-files", relay, "start"],
        ["qemu", manage, relay, "start"],
      ]
    ) {
      assert.equal(decide(user, id, unit, verb), "not handled", `${user} ${id} ${unit} ${verb}`);
    }
  });

  test("the SELinux module compiles with secilc, against a stand-in base that declares the types it names", {
    skip: spawnSync("sh", ["-c", "command -v secilc"]).status === 0
      ? undefined
      : "secilc is not installed; npm test installs it",
  }, () => {
    // Only its syntax and names are proven here: this machine has no SELinux, and no svirt policy to load it into.
    const base = join(work, "base.cil");
    writeFileSync(
      base,
      `(handleunknown allow) (mls true)
(sid kernel) (sidorder (kernel)) (sidcontext kernel (system_u object_r svirt_image_t ((s0) (s0))))
(sensitivity s0) (sensitivityorder (s0)) (category c0) (categoryorder (c0)) (sensitivitycategory s0 (c0))
(user system_u) (role object_r) (userrole system_u object_r) (userlevel system_u (s0)) (userrange system_u ((s0) (s0)))
(type svirt_image_t) (roletype object_r svirt_image_t)
(class file (read)) (classorder (file)) (allow svirt_image_t self (file (read)))
`,
    );
    const contexts = join(work, "file_contexts");
    const compiled = sh("secilc", [
      "-o",
      join(work, "policy.bin"),
      "-f",
      contexts,
      base,
      join(ROOT, "scripts/rpm/httpsisoboot.cil"),
    ]);
    assert.equal(compiled.status, 0, compiled.stderr);
    assert.equal(readFileSync(contexts, "utf8"), "/run/httpsisoboot(/.*)?\tsystem_u:object_r:svirt_image_t:s0\n");
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
        writeFileSync(settings, "preflight = no\nrelay = off\n", { mode: 0o644 });
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
  if (!existsSync(path)) writeFileSync(path, "preflight = no\nrelay = off\n", { mode: 0o600 });
  return path;
}
