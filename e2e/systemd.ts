// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * The relay's production path, on a real systemd host (systemd_host.ts):
 * the bare binary installs itself with --install; a vdsmd.service stand-in
 * runs VDSM's hooks.py as vdsm, whose hook starts the VM's relay unit
 * through polkit, which refuses vdsm every other unit and verb; QEMU's own
 * user reads every byte right through the socket; `systemctl restart
 * vdsmd`, a real cgroup kill, leaves the relay serving; systemd restarts a
 * relay that dies; the unit's sandbox (MemoryDenyWriteExecute,
 * ProtectSystem=strict) lets it work; after_vm_destroy leaves no unit,
 * process, socket or cache. All traffic stays on loopback.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { chownSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BINARY, readFixture, tempDir } from "../test/support/mod.ts";
import { buildDataIso } from "../test/support/iso.ts";
import { makeAuthority, makeServerCert } from "../test/support/tls.ts";
import { freePort, type Nginx, startNginx } from "../test/support/nginx.ts";
import { runnerMissing, runnerPackage } from "../test/support/vdsm_runner.ts";
import { sleepMs } from "../edge/io/processes.ts";
import { relayUnit } from "../lib/paths.ts";
import { log, step } from "./steps.ts";
import { cachedRoot, SystemdHost, systemdHostMissing } from "./systemd_host.ts";

/** Where the binary is bound into the container, and what `--install` copies from. */
const BOUND_BINARY = "/opt/httpsisoboot/httpsisoboot";

/** How long the stand-in may take to answer one request: a hook's own limits are well within it. */
const ANSWER_MS = 60_000;

/** Why the suite cannot run here, or undefined. */
export function systemdSuiteMissing(): string | undefined {
  return systemdHostMissing() ?? runnerMissing() ??
    (existsSync(BINARY) ? undefined : `${BINARY} is not built; run \`npm run binary\``);
}

export function systemdSuite(): void {
  describe("e2e: the relay on a real systemd host (systemd-nspawn, systemd as PID 1)", {
    skip: systemdSuiteMissing(),
  }, () => {
    let work = "";
    let host: SystemdHost | undefined;
    let nginx: Nginx | undefined;
    let url = "";
    let isoHash = "";
    let requests = "";
    const uuid = randomUUID();
    let domainXml = "";

    before(async () => {
      work = tempDir("systemd-host");
      const root = await step("the systemd host's root (cached)", () => cachedRoot(log));
      const www = join(work, "www");
      mkdirSync(www, { mode: 0o755 });
      const iso = buildDataIso(www, "data", randomBytes(8 << 20));
      isoHash = createHash("sha256").update(readFileSync(iso)).digest("hex");
      const ca = makeAuthority(work, "systemd host test CA");
      const port = await freePort();
      nginx = startNginx(work, www, [{ port, ...makeServerCert(work, "nginx", ca) }]);
      url = `https://localhost:${port}/data.iso?sig=TOPSECRET-nspawn`;
      const runner = runnerPackage(work, "/usr/libexec/vdsm/hooks");
      requests = join(work, "requests");
      mkdirSync(requests, { mode: 0o700 });
      chownSync(requests, 36, 0);
      writeFileSync(join(work, "standin.py"), STANDIN, { mode: 0o644 });
      host = await step("booted the systemd host", () =>
        SystemdHost.boot(root, {
          binds: [work],
          readOnly: [[BINARY, BOUND_BINARY]],
          console: join(work, "console.log"),
        }));
      // The test CA in the container's own trust store, which its relays read.
      must(host.run(["cp", ca.cert, "/usr/local/share/ca-certificates/httpsisoboot-test.crt"]));
      must(host.run(["update-ca-certificates"]));
      must(host.run(["sh", "-c", `cat > /etc/systemd/system/vdsmd.service`], { input: vdsmdUnit(runner, requests) }));
      must(host.run(["systemctl", "daemon-reload"]));
      domainXml = readFixture("q35-vdsm.in.xml").replace(/<uuid>[^<]*<\/uuid>/, `<uuid>${uuid}</uuid>`);
    });

    after(() => {
      host?.stop();
      nginx?.stop();
      if (work) rmSync(work, { recursive: true, force: true });
    });

    /** Asks the vdsmd stand-in to run a hook point, as vdsmd would for a VM: the XML it hands libvirt, or VDSM's HookError. */
    function vdsmd(
      point: string,
      xml: string,
      custom: Record<string, string> = {},
      vmId = uuid,
    ): { xml?: string; error?: string } {
      const name = randomUUID();
      // Written aside and renamed: the stand-in takes only whole requests.
      writeFileSync(join(requests, `${name}.tmp`), JSON.stringify({ point, xml, custom, vmId }));
      renameSync(join(requests, `${name}.tmp`), join(requests, `${name}.json`));
      const answer = join(requests, `${name}.out`);
      for (let waited = 0; waited < ANSWER_MS; waited += 50) {
        try {
          return JSON.parse(readFileSync(answer, "utf8"));
        } catch { /* not yet */ }
        sleepMs(50);
      }
      throw new Error(`vdsmd did not answer ${point} in ${ANSWER_MS / 1000} s`);
    }

    /** The sha256 of the whole export, as QEMU's own user reads it through the VM's socket. */
    function readAsQemu(): string {
      const out = `/tmp/read-${randomUUID()}.raw`;
      const read = host!.run(
        ["qemu-img", "convert", "-f", "raw", "-O", "raw", `nbd+unix:///?socket=/run/httpsisoboot/${uuid}.sock`, out],
        { user: "qemu", timeoutMs: 120_000 },
      );
      assert.equal(read.status, 0, read.stderr);
      const hash = must(host!.run(["sha256sum", out])).stdout.split(" ")[0];
      host!.run(["rm", "-f", out]);
      return hash;
    }

    const unitState = () =>
      host!.run(["systemctl", "show", relayUnit(uuid), "-p", "ActiveState", "-p", "MainPID"]).stdout;
    const mainPid = () => Number(/^MainPID=(\d+)$/m.exec(unitState())?.[1]);

    test("--install puts the bare binary on the host: links at every point, the unit, polkit rule and tmpfiles.d, the directories vdsm:qemu", () => {
      const installed = host!.run([BOUND_BINARY, "--install"]);
      assert.equal(installed.status, 0, installed.stderr);
      assert.match(installed.stderr, /^httpsisoboot: installed 13 files under \/ /);
      assert.match(installed.stderr, /\nhttpsisoboot: warning: allow is not set in \/etc\/vdsm\/httpsisoboot\.conf/);
      const dirs =
        must(host!.run(["stat", "-c", "%n %U:%G %a", "/run/httpsisoboot", "/var/cache/httpsisoboot"])).stdout;
      assert.equal(dirs, "/run/httpsisoboot vdsm:qemu 750\n/var/cache/httpsisoboot vdsm:qemu 700\n");
      assert.match(must(host!.run(["systemctl", "cat", "httpsisoboot-relay@.service"])).stdout, /^User=vdsm$/m);
      const check = host!.run(["/usr/libexec/vdsm/httpsisoboot", "--check", url], { user: "vdsm" });
      assert.equal(check.status, 0, check.stderr);
      assert.match(check.stdout, /\nrelay: started by systemd, as httpsisoboot-relay@<uuid>\.service\n/);
      assert.match(check.stdout, /\nselinux: disabled \(nothing to load\)\n/, "this Debian root has no SELinux");
      assert.match(check.stdout, /\nwarning: allow is not set in \/etc\/vdsm\/httpsisoboot\.conf/);
    });

    test("on a host whose SELinux is enforcing and whose semodule fails, --install and --check say so, and exit 2", () => {
      // Stand-ins where EL has the tools: SELinux enforcing, no module loaded, and loading one fails.
      const standIns: Array<[string, string]> = [
        ["selinuxenabled", "exit 0"],
        ["getenforce", "echo Enforcing"],
        [
          "semodule",
          'case "$1" in -l) echo virt;; -i) echo "libsemanage.semanage_commit: out of disk space" >&2; exit 1;; esac',
        ],
        ["restorecon", "exit 0"],
      ];
      for (const [name, body] of standIns) {
        must(host!.run(["sh", "-c", `cat > /usr/sbin/${name} && chmod 755 /usr/sbin/${name}`], {
          input: `#!/bin/sh\n${body}\n`,
        }));
      }
      try {
        const installed = host!.run([BOUND_BINARY, "--install"]);
        assert.equal(installed.status, 2, installed.stderr);
        assert.match(
          installed.stderr,
          /^httpsisoboot: installed 12 files under \/ .*; kept the settings in \/etc\/vdsm\/httpsisoboot\.conf; but semodule -i \/usr\/share\/selinux\/packages\/httpsisoboot\.cil failed \(libsemanage\.semanage_commit: out of disk space\) while SELinux is enforcing: VMs with the httpsisoboot property will not start until it loads/,
        );
        assert.equal(installed.stderr.split("\n").length, 2, "one line");
        const check = host!.run(["/usr/libexec/vdsm/httpsisoboot", "--check", url], { user: "vdsm" });
        assert.equal(check.status, 2, check.stdout + check.stderr);
        assert.match(
          check.stdout,
          /\nselinux: enforcing: the httpsisoboot module is not loaded: semodule -i \/usr\/share\/selinux\/packages\/httpsisoboot\.cil; .*until then QEMU cannot reach its relay's socket/,
        );
      } finally {
        must(host!.run(["rm", "-f", ...standIns.map(([name]) => `/usr/sbin/${name}`)]));
      }
      const again = host!.run(["/usr/libexec/vdsm/httpsisoboot", "--check", url], { user: "vdsm" });
      assert.equal(again.status, 0, again.stdout + again.stderr);
    });

    test("polkit lets vdsm start and stop relay units, and refuses it every other unit and verb", () => {
      const other = randomUUID();
      const asVdsm = (...args: string[]) => host!.run(["systemctl", "--no-ask-password", ...args], { user: "vdsm" });
      assert.equal(asVdsm("start", relayUnit(other)).status, 0, "start: the rule's YES");
      assert.equal(asVdsm("stop", relayUnit(other)).status, 0, "stop: the rule's YES");
      for (
        const args of [
          ["restart", relayUnit(other)],
          ["start", "httpsisoboot-relay@not-a-uuid.service"],
          ["restart", "dbus.service"],
          ["stop", "systemd-journald.service"],
        ]
      ) {
        const refused = asVdsm(...args);
        assert.notEqual(refused.status, 0, args.join(" "));
        assert.match(refused.stderr, /Access denied|Interactive authentication required/, args.join(" "));
      }
      const qemu = host!.run(["systemctl", "--no-ask-password", "start", relayUnit(other)], { user: "qemu" });
      assert.notEqual(qemu.status, 0, "no other user may start relays");
    });

    test("the hook, run by vdsmd through hooks.py as vdsm, starts the VM's relay unit through polkit; QEMU's user reads every byte right", () => {
      must(host!.run(["systemctl", "start", "vdsmd.service"]));
      const started = vdsmd("before_vm_start", domainXml, { httpsisoboot: url });
      assert.ok(started.xml, started.error);
      domainXml = started.xml!;
      assert.match(domainXml, new RegExp(`<host transport="unix" socket="/run/httpsisoboot/${uuid}.sock" />`));
      assert.ok(!domainXml.includes("TOPSECRET"), "no query value in the domain");
      assert.match(unitState(), /^ActiveState=active$/m);
      const relay = must(host!.run(["ps", "-o", "user=,group=,args=", "-p", String(mainPid())])).stdout;
      assert.match(relay, /^vdsm +qemu +\/usr\/libexec\/vdsm\/httpsisoboot --relay /, "the relay runs as vdsm:qemu");
      const sandbox =
        must(host!.run(["systemctl", "show", relayUnit(uuid), "-p", "MemoryDenyWriteExecute", "-p", "ProtectSystem"]))
          .stdout;
      assert.match(sandbox, /^ProtectSystem=strict$/m, "and serves under the unit's sandbox");
      assert.match(sandbox, /^MemoryDenyWriteExecute=yes$/m);
      const socket = must(host!.run(["stat", "-c", "%U:%G %a", `/run/httpsisoboot/${uuid}.sock`])).stdout;
      assert.equal(socket, "vdsm:qemu 660\n");
      assert.equal(readAsQemu(), isoHash);
    });

    test("while the relay runs, --uninstall --dry-run (what the RPM's erase asks first) and --uninstall are refused", () => {
      for (const args of [["--uninstall", "--dry-run"], ["--uninstall"]]) {
        const refused = host!.run([BOUND_BINARY, ...args]);
        assert.equal(refused.status, 2, args.join(" "));
        assert.equal(
          refused.stderr,
          `httpsisoboot: 1 relay runs here (VM ${uuid}); their VMs read their CD-ROMs through them: stop or migrate ` +
            "those VMs first\n",
        );
      }
      assert.match(unitState(), /^ActiveState=active$/m, "and the relay still serves");
    });

    test("systemctl restart vdsmd, a real cgroup kill, leaves the relay serving", () => {
      const before = mainPid();
      const standin = Number(must(host!.run(["systemctl", "show", "vdsmd", "-p", "MainPID", "--value"])).stdout);
      must(host!.run(["systemctl", "restart", "vdsmd.service"]));
      const after = Number(must(host!.run(["systemctl", "show", "vdsmd", "-p", "MainPID", "--value"])).stdout);
      assert.notEqual(after, standin, "vdsmd was restarted");
      assert.equal(mainPid(), before, "the relay is the same process");
      assert.equal(readAsQemu(), isoHash);
    });

    test("the control: without the unit, the hook's detached relay lives in vdsmd's cgroup, and the restart kills it", () => {
      const unit = "/usr/lib/systemd/system/httpsisoboot-relay@.service";
      must(host!.run(["mv", unit, `${unit}.hidden`]));
      const other = randomUUID();
      try {
        const xml = readFixture("q35-vdsm.in.xml").replace(/<uuid>[^<]*<\/uuid>/, `<uuid>${other}</uuid>`);
        const started = vdsmd("before_vm_start", xml, { httpsisoboot: url }, other);
        assert.ok(started.xml, started.error);
        const cgroup =
          must(host!.run(["sh", "-c", `cat /proc/$(pgrep -f -- "--relay ${other}" | head -1)/cgroup`])).stdout;
        assert.match(cgroup, /vdsmd\.service/, "the detached relay is in vdsmd's cgroup");
        must(host!.run(["systemctl", "restart", "vdsmd.service"]));
        assert.equal(host!.run(["pgrep", "-f", `--relay ${other}`]).stdout, "", "and died with it");
      } finally {
        must(host!.run(["mv", `${unit}.hidden`, unit]));
        vdsmd("after_vm_destroy", "<domain/>", {}, other);
      }
    });

    test("a relay that dies is started again by systemd (Restart=on-failure), and serves again", () => {
      const before = mainPid();
      assert.ok(before > 1, `the relay runs (MainPID ${before})`); // kill 0 would signal the test's own process group
      must(host!.run(["kill", "-KILL", String(before)]));
      // Ready when QEMU's NBD client gets the export: the killed relay's socket may still be there, refusing.
      let now = 0;
      for (let waited = 0; waited < 15_000; waited += 100) {
        now = mainPid();
        const info = host!.run(["qemu-img", "info", `nbd+unix:///?socket=/run/httpsisoboot/${uuid}.sock`], {
          user: "qemu",
        });
        if (now && now !== before && info.status === 0) break;
        sleepMs(100);
      }
      assert.ok(now && now !== before, `a new relay (${now}) for the killed one (${before})`);
      assert.equal(readAsQemu(), isoHash);
    });

    test("after_vm_destroy, through vdsmd, leaves no unit, process, socket or cache", () => {
      const destroyed = vdsmd("after_vm_destroy", domainXml);
      assert.ok(destroyed.xml !== undefined, destroyed.error);
      assert.match(unitState(), /^ActiveState=(inactive|failed)$/m);
      assert.equal(host!.run(["pgrep", "-f", uuid]).stdout, "", "no process");
      const left = host!.run([
        "sh",
        "-c",
        `ls -d /run/httpsisoboot/${uuid}* /var/cache/httpsisoboot/${uuid}* 2>/dev/null`,
      ]);
      assert.equal(left.stdout, "", "no socket, config, pid file or cache");
    });

    test("--uninstall, with no relay left, takes the hook and the relays' directories away, the ISO's shared blocks with them, and keeps the settings", () => {
      const shared = must(host!.run(["find", "/var/cache/httpsisoboot/shared", "-type", "f"])).stdout;
      assert.ok(shared.split("\n").length > 1, `the VM's blocks are in the shared cache: ${shared}`);
      const removed = host!.run([BOUND_BINARY, "--uninstall"]);
      assert.equal(removed.status, 0, removed.stderr);
      assert.match(
        removed.stderr,
        /^httpsisoboot: removed 12 files under \/ and the relays' \/run\/httpsisoboot and \/var\/cache\/httpsisoboot; kept the settings in \/etc\/vdsm\/httpsisoboot\.conf\n$/,
      );
      const left = host!.run([
        "sh",
        "-c",
        "ls -d /usr/libexec/vdsm/httpsisoboot /run/httpsisoboot /var/cache/httpsisoboot /etc/vdsm/httpsisoboot.conf",
      ]);
      assert.equal(left.stdout, "/etc/vdsm/httpsisoboot.conf\n", left.stderr);
    });
  });
}

/** A command that must succeed; its outcome. */
function must(ran: { status: number | null; stdout: string; stderr: string }) {
  assert.equal(ran.status, 0, ran.stderr);
  return ran;
}

/**
 * The vdsmd stand-in: a service as vdsm (groups kvm and qemu), whose
 * children run hooks.py, so that `systemctl restart vdsmd` kills them with
 * its cgroup, as it kills vdsmd's.
 */
function vdsmdUnit(runner: string, requests: string): string {
  return `[Unit]
Description=vdsmd stand-in: runs VDSM's hooks.py for the tests' requests

[Service]
User=vdsm
Group=kvm
SupplementaryGroups=qemu
Environment=PYTHONPATH=${runner}
ExecStart=/usr/bin/python3 ${join(requests, "..", "standin.py")} ${requests} ${join(runner, "driver.py")}
`;
}

/** Runs each request file through VDSM's runner, as vdsmd runs hooks, and writes its answer beside it. */
const STANDIN = `import os, subprocess, sys, time
requests, driver = sys.argv[1], sys.argv[2]
while True:
    for name in sorted(os.listdir(requests)):
        if not name.endswith(".json"):
            continue
        path = os.path.join(requests, name)
        with open(path) as f:
            request = f.read()
        os.unlink(path)
        done = subprocess.run([sys.executable, driver], input=request, capture_output=True, text=True)
        answer = done.stdout if done.returncode == 0 else '{"error": %r}' % done.stderr[-500:]
        with open(path[:-5] + ".tmp", "w") as f:
            f.write(answer)
        os.rename(path[:-5] + ".tmp", path[:-5] + ".out")
    time.sleep(0.05)
`;
