// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * The e2e suite's world: everything one run starts and makes (a work dir,
 * ISOs, a CA, nginx, the fault proxy, a libvirt host, the installed hook), as
 * one typed object that the suites share, with the one way to run the hook
 * and the one way to boot a domain.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes, randomUUID } from "node:crypto";
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import process from "node:process";
import { buildBiosIso, buildGrubIso } from "../test/support/iso.ts";
import { type Authority, makeAuthority, makeServerCert, type ServerCert } from "../test/support/tls.ts";
import { freePort, type Nginx, startNginx } from "../test/support/nginx.ts";
import { killNaming, processesNaming } from "../test/support/processes.ts";
import { type Host, startHost } from "./host.ts";
import {
  create,
  type DomainSpec,
  domainXml,
  liveDevices,
  PREFIX,
  removeTestDomains,
  serialText,
  virsh,
  waitForMarker,
} from "./domain.ts";
import { log, seconds, step } from "./steps.ts";
import { clearLeftovers, forgetWorkDir, rememberWorkDir } from "./leftovers.ts";
import { runnerMissing, type RunnerPoint, type VdsmRunner, vdsmRunner } from "../test/support/vdsm_runner.ts";
import { type FaultProxy, spawnFaultProxy } from "../test/support/fault_proxy.ts";
import { HOOK_POINTS } from "../lib/hook_point.ts";

const ROOT = join(import.meta.dirname ?? new URL(".", import.meta.url).pathname, "..");
/** The artifact a host would get: HTTPSISOBOOT_ARTIFACT, else the binary, else the bundle. */
export const ARTIFACT = process.env.HTTPSISOBOOT_ARTIFACT ??
  (existsSync(join(ROOT, "dist", "httpsisoboot"))
    ? join(ROOT, "dist", "httpsisoboot")
    : join(ROOT, "dist", "httpsisoboot.mjs"));
const BOOT_TIMEOUT_MS = 60_000;
const RUN = Date.now().toString(36);

/** What each guest prints on its serial console, so the run knows which ISO booted. */
export const MARK = {
  httpsBios: `HTTPS-BIOS-${RUN}`,
  httpsUefi: `HTTPS-UEFI-${RUN}`,
  localBios: `LOCAL-BIOS-${RUN}`,
  localUefi: `LOCAL-UEFI-${RUN}`,
  payload: `HASHED-${RUN}`,
  paused: `PAUSED-${RUN}`,
};

/** The payload's size: at least 12 MB, so that faults at 4 and 12 MB fall inside it (issue 13). */
export const PAYLOAD_BYTES = 16 << 20;

/** Why the suite cannot run here, or undefined. */
export function whyNot(): string | undefined {
  if (process.getuid?.() !== 0) return "the e2e needs root: it starts libvirtd and nginx (run `npm run e2e` as root)";
  for (const tool of ["virsh", "libvirtd", "nginx", "xorriso", "grub-mkrescue|grub2-mkrescue", "openssl", "unshare"]) {
    const found = tool.split("|").some((name) => spawnSync("sh", ["-c", `command -v ${name}`]).status === 0);
    if (!found) return `${tool} is missing; \`npm run e2e\` as root installs it on Debian`;
  }
  if (!existsSync(ARTIFACT)) return `${ARTIFACT} is not built; run \`npm run bundle\``;
  return undefined;
}

/** What a boot showed: the marker the guest printed, the boot orders libvirt runs, or libvirt's refusal. */
export interface BootResult {
  marker?: string;
  orders: Record<string, number>;
  httpsTarget?: string;
  error?: string;
}

interface Certificates {
  ca: Authority;
  trusted: ServerCert;
  untrusted: ServerCert;
}

export class World {
  work = "";
  ports = { trusted: 0, untrusted: 0, noRanges: 0, down: 0 };
  /** The certificate nginx serves on `ports.trusted`, from the run's CA, which QEMU and the relays trust. */
  trusted?: ServerCert;
  /** The run's CA certificate: what a client of nginx or the fault proxy trusts. */
  caCert = "";
  isos = { httpsBios: "", httpsUefi: "", localBios: "", localUefi: "" };
  payloadHash = "";
  /**
   * Settings files the hook is given: the defaults (relay mode, preflight
   * on); `direct`, QEMU's curl reading the URL (relay = off); and
   * `noPreflight`, direct with no preflight, for QEMU's own refusals.
   */
  defaults = "";
  direct = "";
  noPreflight = "";
  /** The relays' directories, as the RPM's tmpfiles.d makes them: vdsm in QEMU's group (qemu on EL), 0750. */
  relayDirs = { run: "", cache: "" };
  /** Lines the fault scenarios print at the end, for the README. */
  readonly faultReport: string[] = [];
  readonly timings: Array<[string, string]> = [];
  #host?: Host;
  #nginx?: Nginx;
  #proxy?: FaultProxy;
  #runner?: VdsmRunner;
  #sslBefore = "";
  #cleaned = false;

  get nginx(): Nginx {
    return this.#nginx!;
  }

  get proxy(): FaultProxy {
    return this.#proxy!;
  }

  /** Makes and starts everything, in order. */
  async setUp(): Promise<void> {
    this.#sslBefore = digestEtcSsl();
    clearLeftovers();
    this.work = mkdtempSync("/tmp/httpsisoboot-e2e-");
    rememberWorkDir(this.work);
    chmodSync(this.work, 0o755);
    this.defaults = this.settings("defaults", "# the defaults: relay mode, preflight on\n");
    this.direct = this.settings("direct", "relay = off\n");
    this.noPreflight = this.settings("no-preflight", "preflight = no\nrelay = off\n");
    this.#makeRelayDirs();
    const www = join(this.work, "www");
    mkdirSync(www, { mode: 0o755 });
    await step("built a BIOS and a UEFI ISO for https, and a local one of each", () => this.#buildIsos(www));
    const tls = await step(
      "made a test CA, an untrusted CA and their server certificates",
      () => this.#makeCertificates(),
    );
    this.trusted = tls.trusted;
    this.caCert = tls.ca.cert;
    await this.#startNginx(www, tls);
    this.#proxy = await spawnFaultProxy({
      cert: tls.trusted.cert,
      key: tls.trusted.key,
      targetPort: this.ports.trusted,
      targetCa: tls.ca.cert,
    });
    log(`fault proxy (https) on 127.0.0.1:${this.#proxy.port} -> nginx :${this.ports.trusted}`);
    this.#host = await step("libvirt host ready", () => startHost(this.work, tls.ca.cert));
    log(`trust: ${this.#host.trust}`);
    removeTestDomains();
    this.#installHook();
    const why = runnerMissing();
    if (why) log(`hooks run directly as root: ${why}`);
    else {
      this.#runner = vdsmRunner(this.work, join(this.work, "hooks"), {
        command: this.#host.withQemuTrust([]),
        gid: kvmGid(),
        groups: [kvmGid(), qemuGid()],
      });
    }
  }

  /** Stops and removes everything the run started or made; safe to call twice. */
  tearDown(): void {
    if (this.#cleaned) return;
    this.#cleaned = true;
    this.#proxy?.close();
    attempt("remove the test domains", removeTestDomains);
    attempt("stop nginx", () => this.#nginx?.stop());
    attempt("stop the relays", () => killNaming(this.work));
    attempt("stop the libvirt host", () => this.#host?.stop());
    attempt("delete the work dir", () => this.work && rmSync(this.work, { recursive: true, force: true }));
    forgetWorkDir();
    log("cleaned up");
  }

  /** After the run: the report, and /etc/ssl exactly as it was. */
  report(): void {
    if (this.faultReport.length) log(`faults:\n${this.faultReport.map((line) => `  ${line}`).join("\n")}`);
    log(`scenario timings:\n${this.timings.map(([name, what]) => `  ${name.padEnd(22)} ${what}`).join("\n")}`);
    assert.equal(digestEtcSsl(), this.#sslBefore, "/etc/ssl is exactly as it was before the run");
    log("/etc/ssl is exactly as before the run");
  }

  /** Writes a host settings file for the hook and returns its path. */
  settings(name: string, text: string): string {
    const path = join(this.work, `${name}.conf`);
    writeFileSync(path, text);
    return path;
  }

  /**
   * Runs the installed hook as VDSM does, through VDSM's own hooks.py as
   * vdsm:kvm (uid 36), with the host's trust store as QEMU sees it. The
   * domain file gets the XML VDSM would hand libvirt; a refusal is exit 2
   * with the HookError's text, the file untouched. `killSession` kills the
   * runner's whole session right after the hook exits, as a vdsmd restart
   * would.
   */
  runHook(
    domainPath: string,
    url: string,
    settings: string,
    options: { killSession?: boolean } = {},
  ): { status: number; stderr: string } {
    if (!this.#runner) return this.#runDirectly("before_vm_start", domainPath, url, settings);
    const result = this.#runner.run("before_vm_start", readFileSync(domainPath, "utf8"), {
      custom: { httpsisoboot: url },
      env: { HTTPSISOBOOT_CONFIG: settings, ...this.#relayEnv() },
      killSession: options.killSession,
    });
    if (result.error !== undefined) return { status: 2, stderr: result.error };
    writeFileSync(domainPath, result.xml!);
    return { status: 0, stderr: "ran through VDSM's hooks.py as uid 36" };
  }

  /** Runs the hook at another point of the VM's life, as VDSM does, on the domain as libvirt has it now. */
  runPoint(point: RunnerPoint, domainPath: string): { status: number; stderr: string } {
    if (!this.#runner) return this.#runDirectly(point, domainPath, "", this.defaults);
    const result = this.#runner.run(point, readFileSync(domainPath, "utf8"), {
      env: { HTTPSISOBOOT_CONFIG: this.defaults, ...this.#relayEnv() },
    });
    return result.error !== undefined ? { status: 2, stderr: result.error } : { status: 0, stderr: "" };
  }

  #relayEnv(): Record<string, string> {
    return { HTTPSISOBOOT_RUN_DIR: this.relayDirs.run, HTTPSISOBOOT_CACHE_DIR: this.relayDirs.cache };
  }

  /**
   * The installed hook at `point`, run directly as root with QEMU's trust,
   * and its environment: for the bench, which starts many at once.
   */
  hookCommand(point: string): { command: string[]; env: Record<string, string> } {
    return {
      command: this.#host!.withQemuTrust([join(this.work, "hooks", point, "50_httpsisoboot")]),
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...this.#relayEnv() },
    };
  }

  /** `command`, run where the host's trust store is the one QEMU sees (the test CA trusted). */
  withQemuTrust(command: string[]): string[] {
    return this.#host!.withQemuTrust(command);
  }

  /** Without ../shared's hooks.py: the hook alone, as root, as before. */
  #runDirectly(point: string, domainPath: string, url: string, settings: string): { status: number; stderr: string } {
    const [program, ...args] = this.#host!.withQemuTrust([join(this.work, "hooks", point, "50_httpsisoboot")]);
    const result = spawnSync(program, args, {
      encoding: "utf8",
      env: {
        PATH: process.env.PATH,
        _hook_domxml: domainPath,
        httpsisoboot: url,
        HTTPSISOBOOT_CONFIG: settings,
        ...this.#relayEnv(),
      },
    });
    return { status: result.status ?? 1, stderr: result.stderr };
  }

  /** A domain spec with this run's local ISO and serial log. */
  spec(name: string, machine: DomainSpec["machine"], firmware: DomainSpec["firmware"]): DomainSpec {
    const localIso = firmware === "efi" ? this.isos.localUefi : this.isos.localBios;
    return { name, uuid: randomUUID(), machine, firmware, localIso, serialLog: join(this.work, `${name}.serial.log`) };
  }

  /**
   * Empties the host's shared block cache: each boot reads the ISO from the
   * server, as the first VM on a host does, so that the faults on its way
   * are met (a boot after another would read the payload from the cache).
   */
  forgetSharedBlocks(): void {
    rmSync(join(this.relayDirs.cache, "shared"), { recursive: true, force: true });
  }

  /** The processes and files of a VM's relay that are left. */
  relayLeft(domain: DomainSpec): { processes: number[]; files: string[] } {
    const files = [this.relayDirs.run, this.relayDirs.cache].flatMap((dir) =>
      readdirSync(dir).filter((name) => name.includes(domain.uuid))
    );
    return { processes: processesNaming(domain.uuid), files };
  }

  /** Writes a domain's XML to its own file, as VDSM hands it to the hook. */
  domainFile(domain: DomainSpec): string {
    mkdirSync(join(this.work, `vm-${domain.name}`), { recursive: true });
    const path = join(this.work, `vm-${domain.name}`, "domxml");
    writeFileSync(path, domainXml(domain));
    return path;
  }

  /** Boots a domain, through the hook when `url` is given, and says which marker the guest printed. */
  async boot(
    domain: DomainSpec,
    url: string | undefined,
    markers: string[],
    settings = this.defaults,
  ): Promise<BootResult> {
    const started = Date.now();
    const path = this.domainFile(domain);
    if (url) {
      this.forgetSharedBlocks();
      const said = await step(
        `${domain.name}: ran 50_httpsisoboot as VDSM does`,
        () => this.#hookOk(path, url, settings),
      );
      log(`${domain.name}: ${said}`);
    }
    if (domain.firmware === "efi") {
      rmSync(`/var/lib/libvirt/qemu/nvram/${PREFIX}${domain.name}_VARS.fd`, { force: true });
    }
    const error = await step(`${domain.name}: virsh create`, () => create(path));
    if (error) {
      this.timings.push([domain.name, `refused in ${seconds(Date.now() - started)}`]);
      this.runPoint("after_vm_destroy", path);
      return { error, orders: {} };
    }
    const { orders, httpsTarget } = liveDevices(domain.name);
    const marker = await step(
      `${domain.name}: waiting for the guest's serial output`,
      () => waitForMarker(domain.serialLog, markers, BOOT_TIMEOUT_MS),
    );
    this.timings.push([domain.name, `${marker ?? "no marker"} after ${seconds(Date.now() - started)}`]);
    this.destroy(domain, path);
    return { marker, orders, httpsTarget };
  }

  /**
   * Destroys the VM, and runs after_vm_destroy as VDSM does, which stops its
   * relay; returns how long after_vm_destroy took, VDSM's runner included.
   */
  destroy(domain: DomainSpec, path: string): number {
    virsh("destroy", `${PREFIX}${domain.name}`);
    const began = Date.now();
    const stopped = this.runPoint("after_vm_destroy", path);
    if (stopped.status !== 0) log(`${domain.name}: after_vm_destroy said ${stopped.stderr}`);
    return Date.now() - began;
  }

  /** Prints what a person needs to see why a scenario failed. */
  explain(domain: DomainSpec, libvirtError?: string): void {
    log(`--- serial log of ${domain.name}:\n${serialText(domain.serialLog) || "(empty)"}`);
    if (libvirtError) log(`--- libvirt said: ${libvirtError}`);
    const errors = this.#nginx && existsSync(this.#nginx.errorLog)
      ? readFileSync(this.#nginx.errorLog, "utf8").slice(-4000)
      : "(none)";
    log(`--- nginx error log:\n${errors}`);
  }

  #hookOk(path: string, url: string, settings: string): string {
    const result = this.runHook(path, url, settings);
    assert.equal(result.status, 0, `hook exited ${result.status}: ${result.stderr}`);
    return result.stderr.trim();
  }

  #buildIsos(www: string): void {
    writeFileSync(join(www, "not-an-iso.iso"), new Uint8Array(1 << 20).fill(0x5a));
    this.isos.httpsBios = buildBiosIso(www, "https-bios", MARK.httpsBios);
    this.isos.httpsUefi = buildGrubIso(www, "https-uefi", MARK.httpsUefi);
    this.isos.localBios = buildBiosIso(this.work, "local-bios", MARK.localBios);
    this.isos.localUefi = buildGrubIso(this.work, "local-uefi", MARK.localUefi);
    const payload = randomBytes(PAYLOAD_BYTES);
    this.payloadHash = createHash("sha256").update(payload).digest("hex");
    buildGrubIso(www, "payload", MARK.payload, payload);
    // The same payload, read only after a pause that leaves time to hibernate the VM.
    buildGrubIso(www, "payload-paused", MARK.payload, payload, { pause: 8, paused: MARK.paused });
  }

  /** The relays' directories in the work dir, vdsm in QEMU's own group, 0750, as tmpfiles.d makes them on a host. */
  #makeRelayDirs(): void {
    this.relayDirs = { run: join(this.work, "relay-run"), cache: join(this.work, "relay-cache") };
    for (const dir of [this.relayDirs.run, this.relayDirs.cache]) {
      mkdirSync(dir, { mode: 0o750 });
      chownSync(dir, 36, qemuGid());
    }
  }

  #makeCertificates(): Certificates {
    const ca = makeAuthority(this.work, "httpsisoboot e2e CA");
    const rogue = makeAuthority(this.work, "untrusted e2e CA");
    return {
      ca,
      trusted: makeServerCert(this.work, "trusted", ca),
      untrusted: makeServerCert(this.work, "untrusted", rogue),
    };
  }

  async #startNginx(www: string, tls: Certificates): Promise<void> {
    for (const key of ["trusted", "untrusted", "noRanges", "down"] as const) this.ports[key] = await freePort();
    const { trusted, untrusted, noRanges } = this.ports;
    this.#nginx = await step(
      `started nginx on 127.0.0.1:${trusted} (trusted), :${untrusted} (untrusted CA), :${noRanges} (max_ranges 0)`,
      () =>
        startNginx(this.work, www, [
          // /manager/X: a mirror manager, a 302 to X for every request (bench/relay.ts's sources), relative, so
          // that through the fault proxy it leads back through the proxy.
          {
            port: trusted,
            ...tls.trusted,
            extra: "absolute_redirect off; location ~ ^/manager/(.*)$ { return 302 /$1$is_args$args; }",
          },
          { port: untrusted, ...tls.untrusted },
          { port: noRanges, ...tls.trusted, extra: "max_ranges 0;" },
        ]),
    );
  }

  /**
   * Installed the way the RPM installs it: the artifact once, and a link to
   * it as 50_httpsisoboot at each of the hook's points.
   */
  #installHook(): void {
    const hooks = join(this.work, "hooks");
    const installed = join(hooks, "httpsisoboot");
    mkdirSync(hooks, { recursive: true });
    if (ARTIFACT.endsWith(".mjs")) symlinkSync(ARTIFACT, installed);
    else copyFileSync(ARTIFACT, installed);
    chmodSync(installed, 0o755);
    for (const point of HOOK_POINTS) {
      mkdirSync(join(hooks, point));
      symlinkSync("../httpsisoboot", join(hooks, point, "50_httpsisoboot"));
    }
    log(`hook: ${installed} -> ${ARTIFACT}, linked at ${HOOK_POINTS.join(", ")}`);
  }
}

/** The group QEMU's user is in, and vdsm's group on an oVirt host: kvm. */
/** QEMU's own group: libvirt-qemu on Debian, as qemu on EL; the relays' sockets are its alone. */
function qemuGid(): number {
  const entry = spawnSync("getent", ["group", "libvirt-qemu"], { encoding: "utf8" }).stdout;
  return Number(entry.split(":")[2] || 107);
}

function kvmGid(): number {
  const entry = spawnSync("getent", ["group", "kvm"], { encoding: "utf8" }).stdout;
  return Number(entry.split(":")[2] || 36);
}

/** The https URL of a file nginx serves on `port`. */
export function isoUrl(port: number, iso: string): string {
  return `https://localhost:${port}/${iso.split("/").pop()}`;
}

/** The part of libvirt's error that QEMU's curl driver wrote. */
export function qemuReason(error: string | undefined): string | undefined {
  if (!error) return undefined;
  return /CURL: .*/.exec(error)?.[0] ?? error.replace(/\s+/g, " ");
}

function attempt(what: string, action: () => void): void {
  try {
    action();
  } catch (error) {
    log(`cleanup: could not ${what}: ${(error as Error).message}`);
  }
}

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
