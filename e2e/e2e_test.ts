/**
 * End to end: real libvirt, QEMU (TCG), firmware, nginx and TLS. The hook
 * artifact a host would get is installed as 50_httpsisoboot and run the way
 * VDSM runs it; the guest's own serial output proves what it booted.
 *
 * HTTPSISOBOOT_ARTIFACT picks the artifact (default: dist/httpsisoboot when
 * it exists, else dist/httpsisoboot.mjs).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import process from "node:process";
import { buildBiosIso, buildGrubIso } from "../test/support/iso.ts";
import { makeAuthority, makeServerCert } from "../test/support/tls.ts";
import { freePort, type Nginx, startNginx } from "../test/support/nginx.ts";
import { type Host, startHost } from "./host.ts";
import { create, domainXml, type DomainSpec, liveDevices, PREFIX, removeTestDomains, serialText, virsh, waitForMarker } from "./domain.ts";
import { log, seconds, step } from "./steps.ts";
import { clearLeftovers, forgetWorkDir, rememberWorkDir } from "./leftovers.ts";
import { type FaultProxy, spawnFaultProxy } from "./fault_proxy.ts";
import { createHash as hashOf, randomBytes } from "node:crypto";

const ROOT = join(import.meta.dirname ?? new URL(".", import.meta.url).pathname, "..");
const ARTIFACT = process.env.HTTPSISOBOOT_ARTIFACT ??
  (existsSync(join(ROOT, "dist", "httpsisoboot")) ? join(ROOT, "dist", "httpsisoboot") : join(ROOT, "dist", "httpsisoboot.mjs"));
const BOOT_TIMEOUT_MS = 60_000;
const RUN = Date.now().toString(36);
const MARK = {
  httpsBios: `HTTPS-BIOS-${RUN}`,
  httpsUefi: `HTTPS-UEFI-${RUN}`,
  localBios: `LOCAL-BIOS-${RUN}`,
  localUefi: `LOCAL-UEFI-${RUN}`,
};

function whyNot(): string | undefined {
  if (process.getuid?.() !== 0) return "the e2e needs root: it starts libvirtd and nginx (run `npm run e2e` as root)";
  for (const tool of ["virsh", "libvirtd", "nginx", "xorriso", "grub-mkrescue|grub2-mkrescue", "openssl", "unshare"]) {
    const found = tool.split("|").some((name) => spawnSync("sh", ["-c", `command -v ${name}`]).status === 0);
    if (!found) return `${tool} is missing; \`npm run e2e\` as root installs it on Debian`;
  }
  if (!existsSync(ARTIFACT)) return `${ARTIFACT} is not built; run \`npm run bundle\``;
  return undefined;
}

let work = "";
let host: Host | undefined;
let nginx: Nginx | undefined;
let hookPath = "";
let sslBefore = "";
const ports = { trusted: 0, untrusted: 0, noRanges: 0, down: 0 };
const isos = { httpsBios: "", httpsUefi: "", localBios: "", localUefi: "" };
const MARK_PAYLOAD = `HASHED-${RUN}`;
let payloadHash = "";
let proxy: FaultProxy | undefined;
/** Measurements the fault scenarios print at the end, for the README. */
const faultReport: string[] = [];
const timings: Array<[string, string]> = [];

/** A digest of every file under /etc/ssl: the run must leave it exactly as it was. */
function digestEtcSsl(): string {
  const hash = createHash("sha256");
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      const info = statSync(path, { throwIfNoEntry: false });
      hash.update(`${path} ${info?.mode} ${info?.size} ${info?.mtimeMs}\n`);
      if (info?.isDirectory()) walk(path);
      else if (info?.isFile()) hash.update(readFileSync(path));
    }
  };
  walk("/etc/ssl");
  return hash.digest("hex");
}

let cleaningUp = false;

/** Stops and removes everything the run started or made; safe to call twice. */
function cleanup(): void {
  if (cleaningUp) return;
  cleaningUp = true;
  proxy?.close();
  const attempt = (what: string, action: () => void) => {
    try {
      action();
    } catch (error) {
      log(`cleanup: could not ${what}: ${(error as Error).message}`);
    }
  };
  attempt("remove the test domains", removeTestDomains);
  attempt("stop nginx", () => nginx?.stop());
  nginx = undefined;
  attempt("stop the libvirt host", () => host?.stop());
  host = undefined;
  attempt("delete the work dir", () => work && rmSync(work, { recursive: true, force: true }));
  forgetWorkDir();
  log("cleaned up");
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    log(`${signal}: cleaning up`);
    cleanup();
    process.exit(130);
  });
}

/** Host settings files for the hook: the defaults (preflight on), and preflight off. */
const settingsFile = (name: "defaults" | "no-preflight") => join(work, `${name}.conf`);

/**
 * Runs the installed hook exactly as VDSM does: a temp file named by
 * _hook_domxml, the URL in httpsisoboot, the host's trust store as QEMU sees it.
 */
function runHookRaw(domainPath: string, url: string, settings: "defaults" | "no-preflight") {
  const [program, ...args] = host!.withQemuTrust([hookPath]);
  return spawnSync(program, args, {
    encoding: "utf8",
    env: { PATH: process.env.PATH, _hook_domxml: domainPath, httpsisoboot: url, HTTPSISOBOOT_CONFIG: settingsFile(settings) },
  });
}

function runHook(domainPath: string, url: string, settings: "defaults" | "no-preflight"): string {
  const result = runHookRaw(domainPath, url, settings);
  assert.equal(result.status, 0, `hook exited ${result.status}: ${result.stderr}`);
  return result.stderr.trim();
}

/** The part of libvirt's error that QEMU's curl driver wrote. */
function qemuReason(error: string | undefined): string | undefined {
  if (!error) return undefined;
  return /CURL: .*/.exec(error)?.[0] ?? error.replace(/\s+/g, " ");
}

/** Prints what a person needs to see why a scenario failed. */
function explain(spec: DomainSpec, libvirtError?: string): void {
  log(`--- serial log of ${spec.name}:\n${serialText(spec.serialLog) || "(empty)"}`);
  if (libvirtError) log(`--- libvirt said: ${libvirtError}`);
  if (nginx) log(`--- nginx error log:\n${existsSync(nginx.errorLog) ? readFileSync(nginx.errorLog, "utf8").slice(-4000) : "(none)"}`);
}

function spec(name: string, machine: DomainSpec["machine"], firmware: DomainSpec["firmware"]): DomainSpec {
  return {
    name,
    machine,
    firmware,
    localIso: firmware === "efi" ? isos.localUefi : isos.localBios,
    serialLog: join(work, `${name}.serial.log`),
  };
}

/** Boots a domain, with or without the hook, and returns the marker the guest printed. */
async function boot(
  domain: DomainSpec,
  url: string | undefined,
  markers: string[],
  settings: "defaults" | "no-preflight" = "defaults",
): Promise<{ marker?: string; orders: Record<string, number>; httpsTarget?: string; error?: string }> {
  const started = Date.now();
  const path = join(work, `vm-${domain.name}`, "domxml");
  mkdirSync(join(work, `vm-${domain.name}`), { recursive: true });
  writeFileSync(path, domainXml(domain));
  if (url) {
    const said = await step(`${domain.name}: ran 50_httpsisoboot as VDSM does (${settings})`, () => runHook(path, url, settings));
    log(`${domain.name}: ${said}`);
  }
  if (domain.firmware === "efi") rmSync(`/var/lib/libvirt/qemu/nvram/${PREFIX}${domain.name}_VARS.fd`, { force: true });
  const error = await step(`${domain.name}: virsh create`, () => create(path));
  if (error) {
    timings.push([domain.name, `refused in ${seconds(Date.now() - started)}`]);
    return { error, orders: {} };
  }
  const { orders, httpsTarget } = liveDevices(domain.name);
  const marker = await step(`${domain.name}: waiting for the guest's serial output`, () =>
    waitForMarker(domain.serialLog, markers, BOOT_TIMEOUT_MS));
  timings.push([domain.name, `${marker ?? "no marker"} after ${seconds(Date.now() - started)}`]);
  virsh("destroy", `${PREFIX}${domain.name}`);
  return { marker, orders, httpsTarget };
}

describe("e2e: VMs boot the https ISO first", { skip: whyNot() }, () => {
  before(async () => {
    sslBefore = digestEtcSsl();
    clearLeftovers();
    work = mkdtempSync("/tmp/httpsisoboot-e2e-");
    rememberWorkDir(work);
    chmodSync(work, 0o755);
    const www = join(work, "www");
    mkdirSync(www, { mode: 0o755 });
    writeFileSync(settingsFile("defaults"), "# the defaults: preflight on\n");
    writeFileSync(settingsFile("no-preflight"), "preflight = no\n");
    writeFileSync(join(www, "not-an-iso.iso"), new Uint8Array(1 << 20).fill(0x5a));

    await step("built a BIOS and a UEFI ISO for https, and a local one of each", () => {
      isos.httpsBios = buildBiosIso(www, "https-bios", MARK.httpsBios);
      isos.httpsUefi = buildGrubIso(www, "https-uefi", MARK.httpsUefi);
      isos.localBios = buildBiosIso(work, "local-bios", MARK.localBios);
      isos.localUefi = buildGrubIso(work, "local-uefi", MARK.localUefi);
      const payload = randomBytes(8 << 20);
      payloadHash = hashOf("sha256").update(payload).digest("hex");
      buildGrubIso(www, "payload", MARK_PAYLOAD, payload);
    });

    const tls = await step("made a test CA, an untrusted CA and their server certificates", () => {
      const ca = makeAuthority(work, "httpsisoboot e2e CA");
      const rogue = makeAuthority(work, "untrusted e2e CA");
      return { ca, trusted: makeServerCert(work, "trusted", ca), untrusted: makeServerCert(work, "untrusted", rogue) };
    });

    ports.trusted = await freePort();
    ports.untrusted = await freePort();
    ports.noRanges = await freePort();
    ports.down = await freePort();
    nginx = await step(`started nginx on 127.0.0.1:${ports.trusted} (trusted), :${ports.untrusted} (untrusted CA), :${ports.noRanges} (max_ranges 0)`, () =>
      startNginx(work, www, [
        { port: ports.trusted, ...tls.trusted },
        { port: ports.untrusted, ...tls.untrusted },
        { port: ports.noRanges, ...tls.trusted, extra: "max_ranges 0;" },
      ]));

    proxy = await spawnFaultProxy(ports.trusted);
    log(`fault proxy on 127.0.0.1:${proxy.port} -> nginx :${ports.trusted}`);
    host = await step("libvirt host ready", () => startHost(work, tls.ca.cert));
    log(`trust: ${host.trust}`);
    removeTestDomains();

    // Installed the way an admin installs it: the artifact under the hook's name.
    const hooks = join(work, "hooks", "before_vm_start");
    mkdirSync(hooks, { recursive: true });
    hookPath = join(hooks, "50_httpsisoboot");
    if (ARTIFACT.endsWith(".mjs")) symlinkSync(ARTIFACT, hookPath);
    else copyFileSync(ARTIFACT, hookPath);
    chmodSync(hookPath, 0o755);
    log(`hook: ${hookPath} -> ${ARTIFACT}`);
  });

  after(() => {
    cleanup();
    if (faultReport.length) {
      log("faults:");
      for (const line of faultReport) log(`  ${line}`);
    }
    log("scenario timings:");
    for (const [name, what] of timings) log(`  ${name.padEnd(22)} ${what}`);
    assert.equal(digestEtcSsl(), sslBefore, "/etc/ssl is exactly as it was before the run");
    log("/etc/ssl is exactly as before the run");
  });

  const url = (port: number, iso: string) => `https://localhost:${port}/${iso.split("/").pop()}`;

  const SCENARIOS: Array<[string, DomainSpec["machine"], DomainSpec["firmware"], string, keyof typeof isos]> = [
    ["i440fx-seabios", "pc", "bios", "hda (ide)", "httpsBios"],
    ["q35-seabios", "q35", "bios", "sda (sata)", "httpsBios"],
    ["q35-uefi", "q35", "efi", "sda (sata)", "httpsUefi"],
  ];
  for (const [name, machine, firmware, target, iso] of SCENARIOS) {
    test(`${name}: the guest boots the https ISO first, and boot orders are shifted`, async () => {
      const domain = spec(name, machine, firmware);
      const expected = firmware === "efi" ? MARK.httpsUefi : MARK.httpsBios;
      const local = firmware === "efi" ? MARK.localUefi : MARK.localBios;
      const result = await boot(domain, url(ports.trusted, isos[iso]), [expected, local]);
      try {
        assert.equal(result.error, undefined);
        assert.equal(result.marker, expected, "the guest printed the https ISO's marker");
        assert.deepEqual(result.orders, { "https-cdrom": 1, "local-cdrom": 2, nic: 3 });
        assert.equal(result.httpsTarget, target, "libvirt runs the CD-ROM on the bus the hook chose");
      } catch (error) {
        explain(domain, result.error);
        throw error;
      }
    });
  }

  test("negative control: the same domain without the hook boots its local CD-ROM", async () => {
    const domain = spec("control-no-hook", "pc", "bios");
    const result = await boot(domain, undefined, [MARK.httpsBios, MARK.localBios]);
    try {
      assert.equal(result.marker, MARK.localBios);
      assert.deepEqual(result.orders, { "local-cdrom": 1, nic: 2 });
    } catch (error) {
      explain(domain, result.error);
      throw error;
    }
  });

  test("nginx answered QEMU's ranged GETs for the ISOs with 206", () => {
    const lines = readFileSync(nginx!.accessLog, "utf8").split("\n");
    const ranged = lines.filter((line) => line.startsWith(`${ports.trusted} 206 GET /https-`) && /"bytes=\d+-\d+"/.test(line));
    log(`nginx: ${ranged.length} ranged GETs answered 206 on the trusted port`);
    assert.ok(ranged.length >= 2, `ranged GETs: ${ranged.join("\n")}`);
    assert.ok(lines.some((line) => line.startsWith(`${ports.trusted} 200 HEAD /https-`)), "QEMU asks HEAD first");
  });

  test("without preflight, a server whose certificate the host does not trust: QEMU refuses and the VM does not start", async () => {
    const domain = spec("untrusted-cert", "pc", "bios");
    const result = await boot(domain, url(ports.untrusted, isos.httpsBios), [MARK.httpsBios, MARK.localBios], "no-preflight");
    log(`untrusted certificate: ${qemuReason(result.error) ?? `guest printed ${result.marker}`}`);
    assert.match(result.error ?? "", /certificate verification failed/);
  });

  test("without preflight, a server that refuses byte ranges (max_ranges 0): QEMU refuses and the VM does not start", async () => {
    const domain = spec("no-ranges", "pc", "bios");
    const result = await boot(domain, url(ports.noRanges, isos.httpsBios), [MARK.httpsBios, MARK.localBios], "no-preflight");
    log(`no byte ranges: ${qemuReason(result.error) ?? `guest printed ${result.marker}`}`);
    assert.match(result.error ?? "", /does not support 'range'/);
  });

  /** [what, URL, the hook's words] */
  const REFUSED: Array<[string, () => string, RegExp]> = [
    ["an untrusted certificate", () => url(ports.untrusted, isos.httpsBios), /is not trusted by this host .*issuer CN=untrusted e2e CA/],
    ["no byte ranges", () => url(ports.noRanges, isos.httpsBios), /does not offer byte ranges/],
    ["not an ISO image", () => `https://localhost:${ports.trusted}/not-an-iso.iso`, /does not serve an ISO image/],
    ["a 404", () => `https://localhost:${ports.trusted}/missing.iso`, /answered HTTP 404/],
    ["a server that is down", () => `https://localhost:${ports.down}/boot.iso`, /refused the connection/],
  ];
  for (const [what, target, words] of REFUSED) {
    test(`preflight refuses ${what} before any VM starts: exit 2, the domain file unchanged`, async () => {
      const path = join(work, `refused-${what.replace(/\W+/g, "-")}.xml`);
      const xml = domainXml(spec(`refused-${what.replace(/\W+/g, "-")}`, "pc", "bios"));
      writeFileSync(path, xml);
      const result = await step(`preflight: ${what}`, () => runHookRaw(path, target(), "defaults"));
      log(`preflight, ${what}: ${result.stderr.trim()}`);
      assert.equal(result.status, 2);
      assert.match(result.stderr, words);
      assert.equal(readFileSync(path, "utf8"), xml);
      timings.push([`preflight: ${what}`, `refused by the hook`]);
    });
  }

  /** Boots the payload ISO through the proxy with `fault`, the hook using `settings`; says what the guest printed. */
  async function bootThroughFaults(name: string, settings: string, fault: Parameters<FaultProxy["set"]>[0], waitMs = 120_000) {
    const domain = spec(name, "pc", "bios");
    const config = join(work, `${name}.conf`);
    writeFileSync(config, settings);
    const path = join(work, `vm-${name}.xml`);
    writeFileSync(path, domainXml(domain));
    const [program, ...args] = host!.withQemuTrust([hookPath]);
    const hooked = spawnSync(program, args, {
      encoding: "utf8",
      env: { PATH: process.env.PATH, _hook_domxml: path, httpsisoboot: `https://localhost:${proxy!.port}/payload.iso`, HTTPSISOBOOT_CONFIG: config },
    });
    assert.equal(hooked.status, 0, hooked.stderr);
    const logStart = readFileSync(nginx!.accessLog, "utf8").length;
    await proxy!.set(fault);
    const started = Date.now();
    const error = create(path);
    assert.equal(error, undefined, error);
    await waitForMarker(domain.serialLog, [MARK_PAYLOAD, "error:"], waitMs);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const seconds = (Date.now() - started) / 1000;
    virsh("destroy", `${PREFIX}${name}`);
    const serial = serialText(domain.serialLog);
    const printed = /([0-9a-f]{64})\s+\/payload\.bin/.exec(serial)?.[1];
    const errors = serial.match(/error:[^\r\n]*/g) ?? [];
    const gets = readFileSync(nginx!.accessLog, "utf8").slice(logStart).split("\n")
      .filter((line) => /^\d+ 206 GET \/payload\.iso/.test(line)).length;
    const outcome = printed === payloadHash ? "right hash" : printed ? "WRONG hash, no error" : errors.length ? `no hash: ${errors.join("; ")}` : "no hash, no marker";
    const stats = await proxy!.stats();
    const qemuLog = `/var/log/libvirt/qemu/${PREFIX}${name}.log`;
    const curl = existsSync(qemuLog) ? readFileSync(qemuLog, "utf8").match(/curl: [^\n]*/g)?.at(-1) : undefined;
    const lastLine = serial.trim().split(/\r?\n/).at(-1)?.trim() ?? "";
    await proxy!.set({ mode: "none" });
    timings.push([name, `${outcome}, marker ${serial.includes(MARK_PAYLOAD) ? "printed" : "missing"}, ${seconds.toFixed(1)} s`]);
    return { outcome, printed, seconds, gets, stats, marker: serial.includes(MARK_PAYLOAD), serial, curl, lastLine };
  }

  const QEMU_DEFAULTS = "timeout = 5\nreadahead = 262144\n";
  // GRUB reads its own modules first, then the 8 MiB payload: 4 MiB into the
  // stream is inside the payload whatever the readahead.
  const STALL_AFTER = 4 << 20;

  test("faults: with no fault, the guest hashes the 8 MB payload right (baseline)", async () => {
    const result = await bootThroughFaults("fault-baseline", "", { mode: "none" });
    faultReport.push(`baseline, our defaults: ${result.outcome} in ${result.seconds.toFixed(1)} s, ${result.gets} ranged GETs, ${(result.stats.serverBytes / 1048576).toFixed(1)} MiB through the proxy`);
    assert.equal(result.outcome, "right hash", result.serial);
  });

  test("faults: a 10 s stall mid-boot (2x QEMU's 5 s timeout) breaks the guest with QEMU's defaults", async () => {
    const afterBytes = STALL_AFTER;
    // Working, this boot prints its marker in about 14 s; 45 s is plenty.
    const result = await bootThroughFaults("fault-stall-qemu", QEMU_DEFAULTS, { mode: "stall", afterBytes, seconds: 10 }, 45_000);
    faultReport.push(`10 s stall after ${(afterBytes / 1048576).toFixed(1)} MiB, QEMU defaults (timeout 5 s, readahead 256 KiB): ${result.outcome}, ` +
      `marker ${result.marker ? "printed" : `missing after ${result.seconds.toFixed(0)} s`}; QEMU logged "${result.curl ?? "nothing"}"; the guest's last line: "${result.lastLine.slice(-80)}"`);
    assert.ok(result.stats.fired, "the stall happened");
    assert.notEqual(result.outcome, "right hash", "with a 5 s timeout a 10 s stall cannot pass unnoticed");
  });

  test("faults: the same stall with our defaults: the boot completes and the hash is right", async () => {
    const afterBytes = STALL_AFTER;
    const result = await bootThroughFaults("fault-stall-ours", "", { mode: "stall", afterBytes, seconds: 10 });
    faultReport.push(`10 s stall after ${(afterBytes / 1048576).toFixed(1)} MiB, our defaults (timeout 30 s, readahead 1 MiB): ${result.outcome}, ${result.seconds.toFixed(1)} s`);
    assert.ok(result.stats.fired, "the stall happened");
    assert.equal(result.outcome, "right hash", result.serial);
    assert.ok(result.marker);
  });

  const READAHEADS = [["256k", "QEMU's default 256 KiB readahead", 262144], ["1m", "our default 1 MiB readahead", 1048576], ["4m", "4 MiB readahead", 4194304]] as const;
  for (const [id, label, bytes] of READAHEADS) {
    test(`faults: 20 ms per request, ${label}: the hash is right; time and ranged GETs printed`, async () => {
      const result = await bootThroughFaults(`fault-latency-${id}`, `readahead = ${bytes}\n`, { mode: "latency", ms: 20 });
      faultReport.push(`20 ms per request, ${label}: ${result.outcome}, marker after ${result.seconds.toFixed(1)} s, ${result.gets} ranged GETs, ${(result.stats.serverBytes / 1048576).toFixed(1)} MiB`);
      assert.equal(result.outcome, "right hash", result.serial);
    });
  }

  test("faults: a connection reset during preflight is its own refusal, before any VM starts", async () => {
    const path = join(work, "reset.xml");
    const xml = domainXml(spec("fault-reset", "pc", "bios"));
    writeFileSync(path, xml);
    await proxy!.set({ mode: "reset", afterBytes: 100 });
    const result = runHookRaw(path, `https://localhost:${proxy!.port}/payload.iso`, "defaults");
    const stats = await proxy!.stats();
    await proxy!.set({ mode: "none" });
    faultReport.push(`reset after 100 bytes, preflight: ${result.stderr.trim()}`);
    assert.ok(stats.fired);
    assert.equal(result.status, 2);
    assert.match(result.stderr, /reset the connection|closed the connection/);
    assert.equal(readFileSync(path, "utf8"), xml);
  });

  test("faults: a server trickling 2 KB/s runs preflight out of time, before any VM starts", async () => {
    const path = join(work, "trickle.xml");
    const xml = domainXml(spec("fault-trickle", "pc", "bios"));
    writeFileSync(path, xml);
    const config = join(work, "quick-preflight.conf");
    writeFileSync(config, "preflight_timeout = 1\n");
    await proxy!.set({ mode: "trickle", bytesPerSecond: 2000 });
    const [program, ...args] = host!.withQemuTrust([hookPath]);
    const result = spawnSync(program, args, {
      encoding: "utf8",
      env: { PATH: process.env.PATH, _hook_domxml: path, httpsisoboot: `https://localhost:${proxy!.port}/payload.iso`, HTTPSISOBOOT_CONFIG: config },
    });
    await proxy!.set({ mode: "none" });
    faultReport.push(`trickle at 2 KB/s, preflight_timeout 1 s: ${result.stderr.trim()}`);
    assert.equal(result.status, 2);
    assert.match(result.stderr, /did not answer within 1 s \(preflight_timeout\)/);
    assert.equal(readFileSync(path, "utf8"), xml);
  });
});
