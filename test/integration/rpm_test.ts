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
import { MAN_PAGE, SELINUX_MODULE } from "../../lib/host_files.ts";
import { moduleLoadFailed } from "../../lib/selinux.ts";
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

/** EL9's targeted policy as CIL, in the steering repo's shared/ beside this checkout (its README says how to use it). */
const POLICY_TAR = join(ROOT, "..", "shared", "reference", "selinux", "c9s-targeted-cil.tar.xz");
const IMAGE = "system_u:object_r:svirt_image_t:s0";

let work = "";
let buildLog = "";

describe("RPMs", { skip: missing() }, () => {
  before(() => {
    work = tempDir("rpm");
    rmSync(RPMS, { recursive: true, force: true });
    const built = sh("bash", ["scripts/rpm/build.sh"]);
    assert.equal(built.status, 0, built.stderr);
    buildLog = built.stdout + built.stderr;
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
      assert.match(files, /^-rw-r--r-- l \/usr\/share\/licenses\/vdsm-hook-httpsisoboot\/LICENSE $/m);
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

  test("the man page is httpsisoboot(8), with the engine steps, and its docs are where it says", () => {
    const page = sh("sh", [
      "-c",
      `rpm2cpio '${rpmFile("x86_64")}' | cpio -i --quiet --to-stdout ./usr/share/man/man8/httpsisoboot.8.gz | gunzip`,
    ]);
    assert.equal(page.stdout, MAN_PAGE.text);
    assert.match(page.stdout, /^\.SH ENGINE SETUP$/m);
    const files = sh("rpm", ["-qlp", rpmFile("x86_64")]).stdout.split("\n");
    for (const doc of /\/usr\/share\/doc\/vdsm\\-hook\\-httpsisoboot\/(\S+)/.exec(page.stdout)![1].split(" and ")) {
      assert.ok(files.includes(`/usr/share/doc/vdsm-hook-httpsisoboot/${doc}`), `${doc} in ${files.join(" ")}`);
    }
    for (const topic of ["design", "security", "performance", "operations", "building"]) {
      assert.ok(files.includes(`/usr/share/doc/vdsm-hook-httpsisoboot/docs/${topic}.md`), topic);
    }
  });

  test("the package owns the relays' directories, vdsm:qemu 0750 and 0700", () => {
    const files = sh("rpm", [
      "-qp",
      "--qf",
      "[%{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILENAMES}\\n]",
      rpmFile("x86_64"),
    ]).stdout;
    assert.match(files, /^drwxr-x--- vdsm:qemu \/run\/httpsisoboot$/m);
    assert.match(files, /^drwx------ vdsm:qemu \/var\/cache\/httpsisoboot$/m);
  });

  test("the build log is clean: no warning, no error, no failing brp script", () => {
    assert.doesNotMatch(buildLog, /warning|error|Illegal option|does not exist/i, buildLog);
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
    for (const file of ["LICENSE", "README.md"]) sh("cp", [join(ROOT, file), sources]);
    sh("tar", ["-cf", join(sources, "docs.tar"), "docs"]);
    writeSources(sources);
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

  test(
    "the SELinux module, compiled with EL9's whole targeted policy, lets QEMU (svirt_t, any categories) reach a relay's socket and the relay's unit make it",
    {
      skip: policyMissing(),
    },
    () => {
      const policy = compiledPolicy(true);
      assert.equal(label(policy, "/run/httpsisoboot/7a3c1f52-4d1e-4b7a-9c2e-5f0e8a6b1d21.sock"), IMAGE);
      const qemu = "system_u:system_r:svirt_t:s0:c12,c34";
      const relay = "system_u:system_r:unconfined_service_t:s0";
      const socket = "system_u:system_r:svirt_socket_t:s0";
      const decisions = decide(policy, [
        [qemu, IMAGE, "dir", "search"],
        [qemu, IMAGE, "sock_file", "write"],
        [qemu, socket, "unix_stream_socket", "connectto"],
        [relay, relay, "process", "setsockcreate"],
        [relay, socket, "unix_stream_socket", "create bind listen accept"],
        [relay, IMAGE, "dir", "search write add_name remove_name"],
        [relay, IMAGE, "sock_file", "create unlink"],
        // What MCS keeps apart, and what it does not (docs/security.md).
        [qemu, "system_u:object_r:svirt_image_t:s0:c56,c78", "sock_file", "write"],
        [qemu, relay, "unix_stream_socket", "connectto"],
      ]);
      assert.deepEqual(decisions, [
        "ALLOW",
        "ALLOW",
        "ALLOW",
        "ALLOW",
        "ALLOW",
        "ALLOW",
        "ALLOW",
        "CONSTRAINT",
        "TERULE",
      ]);
    },
  );

  test("without the module, EL9's policy labels the relays' directory var_run_t, where QEMU may not write a socket", {
    skip: policyMissing(),
  }, () => {
    const policy = compiledPolicy(false);
    const found = label(policy, "/run/httpsisoboot/x.sock");
    assert.equal(found, "system_u:object_r:var_run_t:s0");
    assert.deepEqual(decide(policy, [["system_u:system_r:svirt_t:s0:c12,c34", found, "sock_file", "write"]]), [
      "TERULE",
    ]);
  });

  test("in a root where the scriptlets run: %post says in one line that semodule failed on an enforcing host; the erase removes the module, the relays' leftovers and the shared cache", () => {
    const root = scriptletRoot();
    const rpm = (...args: string[]) => {
      // In a mount namespace of its own, with /proc in the root: the Bun binary %preun runs reads /proc/self/exe.
      const ran = sh("unshare", [
        "-m",
        "sh",
        "-c",
        `mount -t proc proc "$0/proc" && exec rpm --root "$0" --dbpath /var/lib/rpm "$@"`,
        root,
        ...args,
      ]);
      // Debian's rpm warns that it is not dpkg on every run: not the package's words.
      return { ...ran, stderr: ran.stderr.replace(/^rpm: .*\n/gm, "") };
    };
    const installed = rpm("-i", "--nodeps", rpmFile("x86_64"));
    assert.equal(installed.status, 0, installed.stderr);
    const module = "/usr/share/selinux/packages/httpsisoboot.cil";
    assert.equal(
      installed.stderr,
      `httpsisoboot: ${moduleLoadFailed("enforcing", "libsemanage.semanage_commit_sandbox: out of disk space")}\n`,
      "the same words as --install's",
    );
    assert.equal(readFileSync(join(root, "var/log/semodule"), "utf8"), `-i ${module}\n`);
    // A host that ran VMs: a dead relay's files, and the shared cache's blocks; the module is loaded.
    mkdirSync(join(root, "run/httpsisoboot"), { recursive: true }); // %ghost: tmpfiles.d makes it, at boot
    writeFileSync(join(root, "run/httpsisoboot/7a3c1f52-4d1e-4b7a-9c2e-5f0e8a6b1d21.relay"), "{}");
    mkdirSync(join(root, "var/cache/httpsisoboot/shared/ab"), { recursive: true });
    writeFileSync(join(root, "var/cache/httpsisoboot/shared/ab/0"), "block");
    writeFileSync(join(root, "var/log/modules"), "virt\nhttpsisoboot\n");
    const erased = rpm("-e", "--nodeps", "vdsm-hook-httpsisoboot");
    assert.equal(erased.status, 0, erased.stderr);
    assert.equal(erased.stderr, "", "a quiet erase");
    for (
      const path of ["run/httpsisoboot", "var/cache/httpsisoboot", "usr/libexec/vdsm/httpsisoboot", module.slice(1)]
    ) {
      assert.equal(existsSync(join(root, path)), false, `${path} is gone`);
    }
    assert.match(readFileSync(join(root, "var/log/semodule"), "utf8"), /\n-l\n-r httpsisoboot\n$/);
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
  hostUsers(root);
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

function policyMissing(): string | undefined {
  if (!existsSync(POLICY_TAR)) return `EL9's policy is not at ${POLICY_TAR} (shared/ beside the checkout)`;
  for (const tool of ["secilc", "selabel_lookup"]) {
    if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) {
      return `${tool} is not installed; npm test installs it`;
    }
  }
  if (spawnSync("/usr/bin/python3", ["-c", "import selinux.audit2why"]).status !== 0) {
    return "python3-selinux is not installed; npm test installs it";
  }
  return undefined;
}

const policies = new Map<boolean, string>();

/** EL9's whole policy compiled with secilc, with or without our module, as semodule would link it. */
function compiledPolicy(withModule: boolean): string {
  const known = policies.get(withModule);
  if (known) return known;
  const dir = mkdtempSync(join(work, "policy-"));
  const untar = sh("tar", ["-xJf", POLICY_TAR, "-C", dir]);
  assert.equal(untar.status, 0, untar.stderr);
  const modules = readdirSync(join(dir, "cil")).filter((name) => name !== "base.cil").map((name) =>
    join(dir, "cil", name)
  );
  const ours = join(dir, "httpsisoboot.cil");
  writeFileSync(ours, SELINUX_MODULE.text);
  const compiled = sh("secilc", [
    ..."-M true -c 33 -U allow -N".split(" "),
    "-o",
    join(dir, "policy.33"),
    "-f",
    join(dir, "file_contexts"),
    join(dir, "cil", "base.cil"),
    ...modules,
    ...(withModule ? [ours] : []),
  ]);
  assert.equal(compiled.status, 0, compiled.stderr);
  policies.set(withModule, dir);
  return dir;
}

/** The label a path gets from the compiled policy's file contexts. */
function label(policy: string, path: string): string {
  const found = sh("selabel_lookup", ["-b", "file", "-k", path, "-f", join(policy, "file_contexts")]);
  assert.equal(found.status, 0, found.stderr);
  return found.stdout.replace(/^Default context: /, "").trim();
}

/** libsepol's access decisions, MCS constraints included, through python3-selinux's audit2why. */
function decide(policy: string, questions: Array<[string, string, string, string]>): string[] {
  const script = `
import json, sys
import selinux.audit2why as a
a.init(sys.argv[1])
names = {getattr(a, n): n for n in ("ALLOW", "TERULE", "CONSTRAINT", "BOOLEAN", "DONTAUDIT", "RBAC", "BOUNDS") if hasattr(a, n)}
print(json.dumps([names.get(a.analyze(s, t, c, p.split())[0], "?") for s, t, c, p in json.loads(sys.argv[2])]))
`;
  const ran = sh("/usr/bin/python3", ["-c", script, join(policy, "policy.33"), JSON.stringify(questions)]);
  assert.equal(ran.status, 0, ran.stderr);
  return JSON.parse(ran.stdout);
}

/** The users and groups of an oVirt host, in a throwaway root: the relays' directories are vdsm:qemu. */
function hostUsers(root: string): void {
  mkdirSync(join(root, "etc"), { recursive: true });
  writeFileSync(join(root, "etc/passwd"), "root:x:0:0::/root:/bin/sh\nvdsm:x:36:36::/var/lib/vdsm:/sbin/nologin\n");
  writeFileSync(join(root, "etc/group"), "root:x:0:\nkvm:x:36:qemu,vdsm\nqemu:x:107:vdsm\n");
}

/**
 * A throwaway root in which the RPM's scriptlets really run: dash as /bin/sh,
 * the few tools they call and the binary's libraries, and stand-ins for the
 * SELinux tools of an enforcing host whose semodule -i fails.
 */
function scriptletRoot(): string {
  const root = mkdtempSync(join(work, "scriptlets-"));
  chmodSync(root, 0o755);
  hostUsers(root);
  const tools = ["/bin/dash", "/usr/bin/head", "/usr/bin/tr", "/usr/bin/rm", "/usr/bin/grep", "/usr/bin/cat"];
  for (const tool of [...tools, join(ROOT, "dist", "httpsisoboot")]) {
    for (const lib of sh("ldd", [tool]).stdout.matchAll(/(\/\S+\.so[.\d]*)/g)) copyInto(root, lib[1]);
    if (!tool.startsWith(ROOT)) copyInto(root, tool);
  }
  for (const dir of ["bin", "usr/sbin", "var/log", "proc", "dev"]) mkdirSync(join(root, dir), { recursive: true });
  sh("mknod", ["-m", "666", join(root, "dev/null"), "c", "1", "3"]);
  sh("ln", ["-sf", "/bin/dash", join(root, "bin/sh")]);
  for (const name of ["head", "tr", "rm", "grep", "cat"]) {
    sh("ln", ["-sf", `/usr/bin/${name}`, join(root, "bin", name)]);
  }
  const standIns: Record<string, string> = {
    selinuxenabled: "exit 0",
    getenforce: "echo Enforcing",
    restorecon: "exit 0",
    semodule: `echo "$@" >> /var/log/semodule
case "$1" in
  -i) echo "libsemanage.semanage_commit_sandbox: out of disk space" >&2; exit 1;;
  -l) cat /var/log/modules 2>/dev/null;;
esac`,
  };
  for (const [name, body] of Object.entries(standIns)) {
    writeFileSync(join(root, "usr/sbin", name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  }
  return root;
}

function copyInto(root: string, path: string): void {
  mkdirSync(join(root, path, ".."), { recursive: true });
  sh("cp", ["-L", path, join(root, path)]);
}
