// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * The e2e suite's world: everything one run starts and makes (a work dir,
 * ISOs, a CA, nginx, the fault proxy, a libvirt host, the installed hook), as
 * one typed object that the suites share, with the one way to run the hook
 * and the one way to boot a domain.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import {
  chmodSync,
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
import { runnerMissing, type VdsmRunner, vdsmRunner } from "../test/support/vdsm_runner.ts";
import { type FaultProxy, spawnFaultProxy } from "./fault_proxy.ts";

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
};

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
  isos = { httpsBios: "", httpsUefi: "", localBios: "", localUefi: "" };
  payloadHash = "";
  /** Settings files the hook is given: the defaults (preflight on), and preflight off. */
  defaults = "";
  noPreflight = "";
  /** Lines the fault scenarios print at the end, for the README. */
  readonly faultReport: string[] = [];
  readonly timings: Array<[string, string]> = [];
  #host?: Host;
  #nginx?: Nginx;
  #proxy?: FaultProxy;
  #hookPath = "";
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
    this.defaults = this.settings("defaults", "# the defaults: preflight on\n");
    this.noPreflight = this.settings("no-preflight", "preflight = no\n");
    const www = join(this.work, "www");
    mkdirSync(www, { mode: 0o755 });
    await step("built a BIOS and a UEFI ISO for https, and a local one of each", () => this.#buildIsos(www));
    const tls = await step(
      "made a test CA, an untrusted CA and their server certificates",
      () => this.#makeCertificates(),
    );
    await this.#startNginx(www, tls);
    this.#proxy = await spawnFaultProxy(this.ports.trusted);
    log(`fault proxy on 127.0.0.1:${this.#proxy.port} -> nginx :${this.ports.trusted}`);
    this.#host = await step("libvirt host ready", () => startHost(this.work, tls.ca.cert));
    log(`trust: ${this.#host.trust}`);
    removeTestDomains();
    this.#installHook();
    const why = runnerMissing();
    if (why) log(`hooks run directly as root: ${why}`);
    else this.#runner = vdsmRunner(this.work, join(this.work, "hooks"), { command: this.#host.withQemuTrust([]) });
  }

  /** Stops and removes everything the run started or made; safe to call twice. */
  tearDown(): void {
    if (this.#cleaned) return;
    this.#cleaned = true;
    this.#proxy?.close();
    attempt("remove the test domains", removeTestDomains);
    attempt("stop nginx", () => this.#nginx?.stop());
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
   * with the HookError's text, the file untouched.
   */
  runHook(domainPath: string, url: string, settings: string): { status: number; stderr: string } {
    if (!this.#runner) return this.#runDirectly(domainPath, url, settings);
    const result = this.#runner.beforeVmStart(readFileSync(domainPath, "utf8"), { httpsisoboot: url }, {
      HTTPSISOBOOT_CONFIG: settings,
    });
    if (result.error !== undefined) return { status: 2, stderr: result.error };
    writeFileSync(domainPath, result.xml!);
    return { status: 0, stderr: "ran through VDSM's hooks.py as uid 36" };
  }

  /** Without ../shared's hooks.py: the hook alone, as root, as before. */
  #runDirectly(domainPath: string, url: string, settings: string): { status: number; stderr: string } {
    const [program, ...args] = this.#host!.withQemuTrust([this.#hookPath]);
    const result = spawnSync(program, args, {
      encoding: "utf8",
      env: { PATH: process.env.PATH, _hook_domxml: domainPath, httpsisoboot: url, HTTPSISOBOOT_CONFIG: settings },
    });
    return { status: result.status ?? 1, stderr: result.stderr };
  }

  /** A domain spec with this run's local ISO and serial log. */
  spec(name: string, machine: DomainSpec["machine"], firmware: DomainSpec["firmware"]): DomainSpec {
    const localIso = firmware === "efi" ? this.isos.localUefi : this.isos.localBios;
    return { name, machine, firmware, localIso, serialLog: join(this.work, `${name}.serial.log`) };
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
      return { error, orders: {} };
    }
    const { orders, httpsTarget } = liveDevices(domain.name);
    const marker = await step(
      `${domain.name}: waiting for the guest's serial output`,
      () => waitForMarker(domain.serialLog, markers, BOOT_TIMEOUT_MS),
    );
    this.timings.push([domain.name, `${marker ?? "no marker"} after ${seconds(Date.now() - started)}`]);
    virsh("destroy", `${PREFIX}${domain.name}`);
    return { marker, orders, httpsTarget };
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
    const payload = randomBytes(8 << 20);
    this.payloadHash = createHash("sha256").update(payload).digest("hex");
    buildGrubIso(www, "payload", MARK.payload, payload);
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
          { port: trusted, ...tls.trusted },
          { port: untrusted, ...tls.untrusted },
          { port: noRanges, ...tls.trusted, extra: "max_ranges 0;" },
        ]),
    );
  }

  /** Installed the way an admin installs it: the artifact under the hook's name. */
  #installHook(): void {
    const hooks = join(this.work, "hooks", "before_vm_start");
    mkdirSync(hooks, { recursive: true });
    this.#hookPath = join(hooks, "50_httpsisoboot");
    if (ARTIFACT.endsWith(".mjs")) symlinkSync(ARTIFACT, this.#hookPath);
    else copyFileSync(ARTIFACT, this.#hookPath);
    chmodSync(this.#hookPath, 0o755);
    log(`hook: ${this.#hookPath} -> ${ARTIFACT}`);
  }
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
