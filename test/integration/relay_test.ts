// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * The relay, for real: the hook binary at each of its hook points, nbdkit,
 * the front, nginx with a run-made CA, and a fault-injecting proxy on
 * loopback. QEMU's own NBD client (`qemu-img convert`) reads the ISO through
 * the relay as a guest would, and its bytes are hashed.
 *
 * The hook runs as root in a private mount namespace that trusts the test
 * CA (trustingPrefix), so the relay it starts, which inherits the
 * namespace, trusts it too; the hook points that VDSM runs as vdsm run
 * through VDSM's hooks.py as uid 36 (vdsm_runner.ts). Every relay a test
 * starts is stopped by the test, and after() kills anything left.
 */
import { after, afterEach, before, beforeEach, describe, test } from "node:test";

import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";

import { createHash, randomBytes, randomUUID } from "node:crypto";

import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statfsSync,
  statSync,
  symlinkSync,
  truncateSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { createServer as createTlsServer, type Server as TlsServer } from "node:tls";

import { join } from "node:path";

import process from "node:process";
import { HOOK_POINTS } from "../../lib/hook_point.ts";
import { RELAY_FAIL_MARGIN_S } from "../../lib/limits.ts";
import { IDLE_MS } from "../../edge/relay/upstream.ts";
import { performance } from "node:perf_hooks";

import { BINARY, readFixture, ROOT, tempDir } from "../support/mod.ts";

import { buildDataIso } from "../support/iso.ts";

import { makeAuthority, makeServerCert, type ServerCert, trustingPrefix } from "../support/tls.ts";

import { freePort, type Nginx, startNginx, waitListening } from "../support/nginx.ts";

import { killNaming, openFileBytes, peakRssMiB, processesNaming, runAsync } from "../support/processes.ts";

import { type Fault, type FaultProxy, spawnFaultProxy } from "../support/fault_proxy.ts";

import { runnerMissing, vdsmRunner } from "../support/vdsm_runner.ts";

import { answerHostile, eachRequest, HOSTILE_MODES, type HostileMode } from "../support/endless.ts";

const SECRET = "sig=TOPSECRET-3f9a";

/** QEMU's own group on Debian (qemu on EL): the relay's socket is for it alone. */
const QEMU_GID = Number(spawnSync("getent", ["group", "libvirt-qemu"], { encoding: "utf8" }).stdout.split(":")[2]);
/** QEMU's own user on Debian. */
const QEMU_UID = Number(spawnSync("id", ["-u", "libvirt-qemu"], { encoding: "utf8" }).stdout.trim());

function whyNot(): string | undefined {
  if (process.getuid?.() !== 0) return "needs root: a private mount namespace that trusts the test CA, and uid 36";
  if (!existsSync(BINARY)) return `${BINARY} is not built; run \`npm run binary\``;
  if (!(QEMU_GID > 0 && QEMU_UID > 0)) return "no libvirt-qemu user and group: install libvirt-daemon-system";
  for (const tool of ["nbdkit", "nginx", "qemu-img", "xorriso", "openssl", "unshare", "setpriv"]) {
    if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) {
      return `${tool} is not installed; npm test installs it`;
    }
  }
  return undefined;
}

interface Outcome {
  status: number | null;
  stderr: string;
  ms: number;
}

let work = "";
let hooks = "";
let prefix: string[] = [];
let nginx: Nginx | undefined;
let proxy: FaultProxy | undefined;
let cert: ServerCert;
let isoHash = "";
let isoPath = "";
let nginxPort = 0;
const started = new Set<string>();

/** The run's dirs, as the RPM's tmpfiles.d would make them, owned by the user the hook runs as. */
const dirs = () => ({ run: join(work, "run"), cache: join(work, "cache") });

/** The URL of the ISO through the fault proxy, with a signed URL's query. */
const proxied = () => `https://localhost:${proxy!.port}/data.iso?${SECRET}`;

function settings(name: string, text: string): string {
  const path = join(work, `${name}.conf`);
  writeFileSync(path, text, { mode: 0o644 });
  return path;
}

/** A VDSM domain of a VM of its own, in a file of its own. */
function domainFile(uuid = randomUUID()): { path: string; uuid: string } {
  const dir = join(work, `vm-${uuid}`);
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o755);
  const path = join(dir, "domxml");
  writeFileSync(path, readFixture("q35-vdsm.in.xml").replace(/<uuid>[^<]*<\/uuid>/, `<uuid>${uuid}</uuid>`));
  return { path, uuid };
}

/**
 * Runs the binary at a hook point, as root, trusting the test CA, inside
 * `outer` (a namespace) and under `inner` (setpriv, a seccomp jail); never
 * spawnSync, the proxy must go on.
 */
function hookAt(
  point: string,
  env: Record<string, string>,
  wrap: { limitMs?: number; outer?: string[]; inner?: string[] } = {},
): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const begin = Date.now();
    const [command, ...args] = [
      ...(wrap.outer ?? []),
      ...prefix,
      ...(wrap.inner ?? []),
      join(hooks, point, "50_httpsisoboot"),
    ];
    const child = spawn(command, args, {
      env: {
        PATH: process.env.PATH,
        HTTPSISOBOOT_RUN_DIR: dirs().run,
        HTTPSISOBOOT_CACHE_DIR: dirs().cache,
        ...env,
      },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr!.on("data", (chunk) => (stderr += chunk));
    const timer = setTimeout(() => child.kill("SIGKILL"), wrap.limitMs ?? 60_000);
    child.on("error", reject);
    child.on("close", (status) => {
      clearTimeout(timer);
      resolve({ status, stderr, ms: Date.now() - begin });
    });
  });
}

/** Starts a VM's relay as before_vm_start does; asserts it did. */
async function startVm(options: { url?: string; conf?: string } = {}): Promise<{ path: string; uuid: string }> {
  const vm = domainFile();
  const outcome = await hookAt("before_vm_start", {
    _hook_domxml: vm.path,
    httpsisoboot: options.url ?? proxied(),
    HTTPSISOBOOT_CONFIG: options.conf ?? settings("defaults", ""),
  });
  started.add(vm.uuid);
  assert.equal(outcome.status, 0, outcome.stderr);
  return vm;
}

async function destroyVm(vm: { path: string; uuid: string }): Promise<Outcome> {
  const outcome = await hookAt("after_vm_destroy", { _hook_domxml: vm.path });
  started.delete(vm.uuid);
  return outcome;
}

/** Reads the whole export through QEMU's NBD client; the sha256 of what it read, or its error. */
function readThrough(socket: string, nsPid?: number): Promise<{ hash?: string; error?: string }> {
  const out = join(work, `read-${randomUUID()}.raw`);
  const enter = nsPid ? ["nsenter", "--target", String(nsPid), "--mount", "--"] : [];
  const [command, ...args] = [
    ...enter,
    "qemu-img",
    "convert",
    "-f",
    "raw",
    "-O",
    "raw",
    `nbd+unix:///?socket=${socket}`,
    out,
  ];
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr!.on("data", (chunk) => (stderr += chunk));
    child.on("close", (status) => {
      if (status !== 0) return resolve({ error: stderr.trim() || `exit ${status}` });
      const hash = createHash("sha256").update(readFileSync(out)).digest("hex");
      rmSync(out, { force: true });
      resolve({ hash });
    });
  });
}

/**
 * Rebuilds the test ISO in place: the same size, other bytes in its volume descriptor and beyond, the mtime put
 * back (cp -p, rsync -a), so nginx's ETag stays the same; renamed in, as a build would. `restore` puts it back.
 */
function rebuildInPlace(): { rebuilt: Buffer; restore(): void } {
  const original = readFileSync(isoPath);
  const { mtime } = statSync(isoPath);
  const put = (bytes: Buffer) => {
    writeFileSync(`${isoPath}.new`, bytes);
    utimesSync(`${isoPath}.new`, mtime, mtime);
    renameSync(`${isoPath}.new`, isoPath);
  };
  const rebuilt = Buffer.from(original);
  rebuilt.write("REBUILT", 32768 + 813, "latin1");
  for (let at = 1 << 20; at < rebuilt.length; at += 1 << 20) rebuilt[at] ^= 0xff;
  put(rebuilt);
  return { rebuilt, restore: () => put(original) };
}

const socketOf = (uuid: string) => join(dirs().run, `${uuid}.sock`);
/** The relay's pid, from its pid file ("PID START"). */
const pidOf = (uuid: string) => Number(readFileSync(join(dirs().run, `${uuid}.pid`), "utf8").split(" ")[0]);
const logOf = (uuid: string) => readFileSync(join(dirs().run, `${uuid}.log`), "utf8");

/** Files of this VM's relay in the run and cache dirs. */
function filesOf(uuid: string): string[] {
  return [dirs().run, dirs().cache].flatMap((dir) => readdirSync(dir).filter((name) => name.includes(uuid)));
}

describe("the relay", { skip: whyNot() }, () => {
  before(async () => {
    work = tempDir("relay");
    // As the RPM's tmpfiles.d makes them: vdsm's, in QEMU's own group (libvirt-qemu here, qemu on EL).
    for (const dir of [dirs().run, dirs().cache]) {
      mkdirSync(dir, { mode: 0o750 });
      chownSync(dir, 36, QEMU_GID);
    }
    hooks = join(work, "hooks");
    for (const point of HOOK_POINTS) {
      mkdirSync(join(hooks, point), { recursive: true });
      symlinkSync(BINARY, join(hooks, point, "50_httpsisoboot"));
    }
    const www = join(work, "www");
    mkdirSync(www, { mode: 0o755 });
    const payload = randomBytes(16 << 20);
    isoPath = buildDataIso(www, "data", payload);
    isoHash = createHash("sha256").update(readFileSync(isoPath)).digest("hex");
    const ca = makeAuthority(work, "relay test CA");
    cert = makeServerCert(work, "nginx", ca);
    nginxPort = await freePort();
    nginx = startNginx(work, www, [{ port: nginxPort, ...cert }]);
    proxy = await spawnFaultProxy({ cert: cert.cert, key: cert.key, targetPort: nginxPort, targetCa: ca.cert });
    prefix = trustingPrefix(work, ca.cert);
  });

  // Each test's first VM reads from the server, faults and all, as the first VM on a host does.
  beforeEach(() => rmSync(join(dirs().cache, "shared"), { recursive: true, force: true }));

  afterEach(async () => {
    await proxy?.set({ mode: "none" });
    for (const uuid of [...started]) await destroyVm({ path: join(work, `vm-${uuid}`, "domxml"), uuid });
  });

  after(async () => {
    nginx?.stop();
    killNaming(work); // relays a failed case left
    await proxy?.close();
    rmSync(work, { recursive: true, force: true });
  });

  test("before_vm_start starts the relay; QEMU's NBD client reads every byte right; the domain reads through it", async () => {
    const vm = await startVm();
    await proxy!.set({ mode: "none" }); // counts from here: preflight's and the handshake's requests are not the guest's
    const domain = readFileSync(vm.path, "utf8");
    assert.match(domain, new RegExp(`<host transport="unix" socket="${socketOf(vm.uuid)}" />`));
    assert.match(
      domain,
      new RegExp(`<httpsisoboot:relay [^>]*url="https://localhost:${proxy!.port}/data.iso\\?sig=\\*\\*\\*"`),
    );
    assert.ok(!domain.includes("TOPSECRET"), "the domain, which any local user may read, holds no query value");
    assert.equal((await readThrough(socketOf(vm.uuid))).hash, isoHash);
    const { requests, connections } = await proxy!.stats();
    const gets = requests["GET range"] ?? 0;
    const blocks = Math.ceil(readFileSync(isoPath).length / (1 << 20));
    // The relay's probe came with nbdkit's size question, at the handshake; each connection opened since first
    // proves the probe's bytes (34,816) before its first block.
    assert.equal(
      gets,
      blocks + connections,
      `one ranged GET per 1 MiB block, and one per new connection: ${gets} for ${blocks} blocks, ${connections} connections`,
    );
  });

  test("a second VM on the same ISO reads it from the host's shared cache: only its revalidation goes to the server; --status shows both", async () => {
    const first = await startVm();
    assert.equal((await readThrough(socketOf(first.uuid))).hash, isoHash);
    await proxy!.set({ mode: "none" }); // counts from here: the second VM's start and read
    const second = await startVm();
    assert.equal((await readThrough(socketOf(second.uuid))).hash, isoHash);
    const stats = await proxy!.stats();
    // Preflight's HEAD and ranged GET; then the relay's probe, the same ranged GET, which answers nbdkit's size
    // question (no HEAD) and proves the cached copy's first bytes: nothing more for the whole ISO.
    assert.deepEqual(stats.requests, { HEAD: 1, "GET range": 2 }, "only the second VM's own checks");
    assert.equal(stats.bodyBytes, 2 * 34816, "the ISO's first bytes, to its first volume descriptor, twice");

    // The shared cache is the relays' user's alone: QEMU's user cannot read a block of it.
    const shared = join(dirs().cache, "shared");
    assert.deepEqual([statSync(shared).uid, statSync(shared).mode & 0o777], [36, 0o700]);
    const [entry] = readdirSync(shared);
    const block = join(shared, entry, "0");
    assert.deepEqual([statSync(block).uid, statSync(block).mode & 0o777], [36, 0o600]);
    const asQemu = spawnSync("setpriv", [`--reuid=${QEMU_UID}`, `--regid=${QEMU_GID}`, "--clear-groups", "cat", block]);
    assert.notEqual(asQemu.status, 0, "QEMU's user cannot read the shared cache");

    // The relays rewrite their status every second: asked until the second VM's shows its whole read, 10 s at most.
    const size = (readFileSync(isoPath).length / 2 ** 20).toFixed(1);
    let status = spawnSync("true", { encoding: "utf8" });
    for (let waited = 0; waited < 10_000; waited += 250) {
      status = spawnSync(BINARY, ["--status"], {
        encoding: "utf8",
        env: { HTTPSISOBOOT_RUN_DIR: dirs().run, HTTPSISOBOOT_CACHE_DIR: dirs().cache },
      });
      if (status.stdout.includes(`served ${size} MiB, fetched 0.0 MiB in 1 GET`)) break;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    assert.equal(status.status, 0, status.stderr);
    assert.ok(status.stdout.startsWith("2 relays run on this host\n"), status.stdout);
    assert.ok(!status.stdout.includes("TOPSECRET"), "no query value");
    const blocks = Math.ceil(readFileSync(isoPath).length / (1 << 20));
    for (const vm of [first, second]) {
      assert.match(status.stdout, new RegExp(`^web01 ${vm.uuid} \\(relay pid \\d+, since `, "m"));
    }
    assert.match(status.stdout, new RegExp(`server     https://localhost:${proxy!.port}/data.iso\\?sig=\\*\\*\\*`));
    assert.match(
      status.stdout,
      new RegExp(`served ${size} MiB, fetched 0.0 MiB in 1 GET, ${blocks} blocks from disk, 0 retries`),
    );
    assert.match(status.stdout, / {2}sharing {4}shared\n/);
  });

  test("after_vm_destroy leaves no process, socket or cache file of the relay, within 2 s", async () => {
    const vm = await startVm();
    assert.equal((await readThrough(socketOf(vm.uuid))).hash, isoHash);
    assert.equal(processesNaming(vm.uuid).length, 2, "the front and nbdkit run");
    const began = Date.now();
    const outcome = await destroyVm(vm);
    assert.equal(outcome.status, 0, outcome.stderr);
    assert.equal(outcome.stderr, `httpsisoboot: stopped the relay of VM ${vm.uuid} (after_vm_destroy)\n`);
    assert.deepEqual(processesNaming(vm.uuid), []);
    assert.deepEqual(filesOf(vm.uuid), []);
    assert.ok(Date.now() - began < 2000, `gone in ${Date.now() - began} ms`);
  });

  /** [the fault, what it is] */
  const FAULTS: Array<[Fault, string]> = [
    [{ mode: "reset", afterBytes: 4 << 20 }, "one reset at 4 MB"],
    [{ mode: "reset", afterBytes: 12 << 20 }, "one reset at 12 MB"],
    [{ mode: "reset", afterBytes: 3 << 20, every: 3 << 20 }, "a reset every 3 MB"],
    [{ mode: "status", afterBytes: 4 << 20, code: 503 }, "one 503"],
    [{ mode: "stall", afterBytes: 4 << 20, seconds: 10 }, "a 10 s stall"],
    [{ mode: "ignore-range", afterBytes: 4 << 20 }, "a 200 with the whole file for a ranged GET"],
  ];
  for (const [fault, what] of FAULTS) {
    test(`through ${what}, QEMU's NBD client reads every byte right, and the relay says what it retried`, async () => {
      const vm = await startVm();
      await proxy!.set(fault);
      const read = await readThrough(socketOf(vm.uuid));
      const stats = await proxy!.stats();
      assert.ok(stats.fired > 0, "the fault happened");
      assert.equal(read.hash, isoHash, read.error);
      // A fault hits a block asked for (nbdkit retries it) or a block fetched ahead (fetched again when asked).
      if (fault.mode !== "stall") {
        assert.match(
          logOf(vm.uuid),
          /; nbdkit will retry|; it was fetched ahead, and will be fetched again when asked/,
        );
      }
      assert.ok(!logOf(vm.uuid).includes("TOPSECRET"), "the log hides the query");
    });
  }

  /** The disk the VM's relay's cache file takes. */
  const cacheBytes = (uuid: string) => openFileBytes(processesNaming(uuid), join(dirs().cache, uuid));

  for (const readMiB of [1, 4]) {
    test(`relay_cache_size holds for ${readMiB} MiB reads across a sparse 4 GiB ISO`, async () => {
      const sparse = join(work, "www", "sparse.iso");
      copyFileSync(isoPath, sparse);
      truncateSync(sparse, 4 * 1024 ** 3);
      const vm = await startVm({
        url: `https://localhost:${nginxPort}/sparse.iso?${SECRET}`,
        conf: settings("small-cache", "relay_cache_size = 16M\n"),
      });
      // 256 MiB read in all, spread over the file: every read a miss.
      const reads = Array.from({ length: 256 / readMiB }, (_, i) => ["-c", `read -q ${i * 16}M ${readMiB}M`]).flat();
      const read = spawnSync("qemu-io", ["-r", "-f", "raw", `nbd+unix:///?socket=${socketOf(vm.uuid)}`, ...reads], {
        encoding: "utf8",
        timeout: 120_000,
      });
      assert.equal(read.status, 0, read.stderr);
      const used = cacheBytes(vm.uuid);
      assert.ok(used <= 16 * 1024 * 1024, `the cache takes ${(used / 1048576).toFixed(1)} MiB of disk for 16 MiB`);
      await destroyVm(vm);
      rmSync(sparse);
    });
  }

  test("a relay reading 256 MiB in order at full speed, its read-ahead busy, stays under 100 MiB peak RSS", async () => {
    const long = join(work, "www", "long.iso");
    copyFileSync(isoPath, long);
    truncateSync(long, 256 << 20);
    try {
      const vm = await startVm({
        url: `https://localhost:${nginxPort}/long.iso?${SECRET}`,
      });
      const read = await runAsync(
        "qemu-img",
        ["bench", "-f", "raw", "-c", "256", "-s", "1M", "-d", "1", `nbd+unix:///?socket=${socketOf(vm.uuid)}`],
        { timeoutMs: 120_000 },
      );
      assert.equal(read.status, 0, read.stderr);
      const peak = peakRssMiB(pidOf(vm.uuid));
      assert.ok(peak > 0 && peak < 100, `the front's peak RSS: ${peak.toFixed(1)} MiB`);
      await destroyVm(vm);
    } finally {
      rmSync(long, { force: true });
    }
  });

  test("relay_cache_total: a relay that would take the host's caches past it is refused with one line, before the VM starts", async () => {
    // Each relay reserves its 16 MiB cache and 18 MiB for its front's blocks (4 served, 14 in flight; no read-ahead).
    const conf = settings(
      "budget",
      "relay_cache_size = 16M\nrelay_cache_total = 80M\nrelay_readahead = 0\nrelay_shared_cache = 0\n",
    );
    const first = await startVm({ conf });
    const second = await startVm({ conf });
    const vm = domainFile();
    const before = readFileSync(vm.path);
    const third = await hookAt("before_vm_start", {
      _hook_domxml: vm.path,
      httpsisoboot: proxied(),
      HTTPSISOBOOT_CONFIG: conf,
    });
    assert.equal(third.status, 2);
    assert.equal(
      third.stderr,
      `httpsisoboot: the relay of VM ${vm.uuid} would take the relays' caches on this host to 102 MiB, beyond ` +
        `relay_cache_total (in ${conf}), 80 MiB; 2 running relays hold 68 MiB. Lower relay_cache_size, raise ` +
        `relay_cache_total, or free disk\n`,
    );
    assert.deepEqual(readFileSync(vm.path), before, "the domain is byte-identical");
    assert.deepEqual(filesOf(vm.uuid), [], "no relay, config or socket of the refused VM");
    await destroyVm(first);
    assert.equal((await startVm({ conf })).uuid.length, 36, "a destroyed VM's share is free again");
    await destroyVm(second);
  });

  test("relay_cache_total's default share: a cache larger than that share of the free space is refused", async () => {
    const free = statfsSync(dirs().cache);
    const share = Math.ceil((free.bavail * free.bsize) / 100 / 2 ** 20) + 16;
    const conf = settings("share", `relay_cache_size = ${share}M\nrelay_cache_total = 1%\n`);
    const vm = domainFile();
    const refused = await hookAt("before_vm_start", {
      _hook_domxml: vm.path,
      httpsisoboot: proxied(),
      HTTPSISOBOOT_CONFIG: conf,
    });
    assert.equal(refused.status, 2);
    assert.match(refused.stderr, new RegExp(`beyond relay_cache_total \\(1% of what ${dirs().cache} has free, in `));
  });

  for (const mode of HOSTILE_MODES) {
    const owed = mode === "junk-after-head" || mode === "overlong-206";
    test(
      `a hostile server (${mode}) never takes the relay's front past 100 MiB, and the guest gets ${
        owed ? "only the bytes each answer owed" : "an error, not a byte"
      }`,
      async () => {
        const hostile = await hostileServer(mode);
        try {
          const vm = await startVm({
            url: `https://localhost:${(hostile.address() as { port: number }).port}/h.iso?${SECRET}`,
            conf: settings("hostile", "preflight = no\ntimeout = 2\n"),
          });
          const front = pidOf(vm.uuid);
          // Not spawnSync: the hostile server is in this process, and must go on misbehaving meanwhile.
          // Its 206 bodies are all 'B' (0x42): what each answer owed; anything after it is the junk.
          const began = performance.now();
          const read = await runAsync(
            "qemu-io",
            ["-r", "-f", "raw", `nbd+unix:///?socket=${socketOf(vm.uuid)}`, "-c", "read -P 0x42 0 4M"],
            { timeoutMs: 40_000 },
          );
          const took = (performance.now() - began) / 1000;
          if (owed) assert.equal(read.status, 0, `${read.stdout}${read.stderr}`);
          else {
            assert.notEqual(read.status, 0, "the read fails");
            // timeout = 2: failed within it and the stated margin, however slow the server.
            assert.ok(took < 2 + RELAY_FAIL_MARGIN_S, `the failing read took ${took.toFixed(1)} s`);
          }
          const peak = peakRssMiB(front);
          assert.ok(peak > 0 && peak < 100, `the front's peak RSS: ${peak.toFixed(1)} MiB`);
          await destroyVm(vm);
        } finally {
          hostile.close();
        }
      },
    );
  }

  test("an ISO replaced on the server while the relay serves it is never mixed: the read fails", async () => {
    const vm = await startVm({ conf: settings("changed", "timeout = 2\n") });
    const copy = `${isoPath}.copy`;
    writeFileSync(copy, readFileSync(isoPath));
    try {
      // Same size, other bytes, another ETag: what a rebuilt ISO at the same URL looks like.
      writeFileSync(`${isoPath}.new`, randomBytes(readFileSync(isoPath).length));
      renameSync(`${isoPath}.new`, isoPath);
      const read = await readThrough(socketOf(vm.uuid));
      assert.equal(read.hash, undefined, "no bytes of two files pass as one");
      assert.match(logOf(vm.uuid), /the ISO changed on the server since the relay started/);
    } finally {
      renameSync(copy, isoPath);
    }
  });

  test("an ISO rebuilt in place with the same size and mtime (nginx's ETag unchanged) between two VMs: the second reads the new bytes, not the host's cached copy", async () => {
    const first = await startVm();
    assert.equal((await readThrough(socketOf(first.uuid))).hash, isoHash);
    await destroyVm(first);
    const iso = rebuildInPlace();
    try {
      const second = await startVm();
      const read = await readThrough(socketOf(second.uuid));
      assert.equal(read.hash, createHash("sha256").update(iso.rebuilt).digest("hex"), "the new file, every byte");
      assert.match(logOf(second.uuid), /held other bytes of this file under the same size and validator/);
      await destroyVm(second);
    } finally {
      iso.restore();
    }
  });

  test("an ISO rebuilt in place with the same size and mtime while a relay serves it: the blocks after it come on new connections, which prove the file's first bytes, and the read fails rather than mix two files", async () => {
    const vm = await startVm({ conf: settings("rebuilt-while-read", "timeout = 2\n") });
    // The guest's first read: 64 KiB, which the relay reads no block ahead of.
    const part = spawnSync("qemu-io", [
      "-r",
      "-f",
      "raw",
      "-c",
      "read 0 64k",
      `nbd+unix:///?socket=${socketOf(vm.uuid)}`,
    ], {
      encoding: "utf8",
    });
    assert.equal(part.status, 0, part.stderr);
    const iso = rebuildInPlace();
    try {
      // The relay's kept connections close once idle: the next blocks come on new ones.
      await new Promise((resolve) => setTimeout(resolve, IDLE_MS + 1000));
      const read = await readThrough(socketOf(vm.uuid));
      assert.equal(read.hash, undefined, "no bytes of two files pass as one");
      assert.match(logOf(vm.uuid), /now serves other bytes \(bytes 0-34815\) than when the relay started/);
    } finally {
      iso.restore();
    }
  });

  test("--check says the relay can run here, and how; and why not, with exit 2, when its directory is missing", () => {
    const check = (env: Record<string, string>) =>
      spawnSync(prefix[0], [...prefix.slice(1), BINARY, "--check", proxied()], {
        encoding: "utf8",
        env: { PATH: process.env.PATH, HTTPSISOBOOT_CONFIG: settings("defaults", ""), ...env },
      });
    const ready = check({ HTTPSISOBOOT_RUN_DIR: dirs().run, HTTPSISOBOOT_CACHE_DIR: dirs().cache });
    assert.equal(ready.status, 0, ready.stderr);
    const version = spawnSync("nbdkit", ["--version"], { encoding: "utf8" }).stdout.split("\n")[0];
    assert.match(
      ready.stdout,
      new RegExp(
        `\nrelay: ${version}, /usr/s?bin/nbdkit, with the curl plugin and the blocksize, cache and retry-request filters\n`,
      ),
    );
    assert.match(
      ready.stdout,
      new RegExp(
        `\nrelay: directories: ${dirs().run} \\(${owner(dirs().run)}\\) and ${dirs().cache} \\(${
          owner(dirs().cache)
        }\\); relays run as ${owner(dirs().run).split(":")[0]}\n`,
      ),
    );
    assert.match(
      ready.stdout,
      /\nrelay: started detached by the hook \(systemd is not PID 1 here, or the unit is not installed\)\n/,
    );
    const libvirt = spawnSync("libvirtd", ["--version"], { encoding: "utf8" }).stdout.trim().split(" ").at(-1);
    assert.match(ready.stdout, new RegExp(`\nrelay: reconnect: libvirt ${libvirt?.replaceAll(".", "\\.")} `));
    const missing = check({ HTTPSISOBOOT_RUN_DIR: join(work, "nowhere"), HTTPSISOBOOT_CACHE_DIR: dirs().cache });
    assert.equal(missing.status, 2);
    assert.match(
      missing.stdout,
      /^url: https:\/\/localhost:\d+\/data\.iso\?sig=\*\*\*\n/,
      "the server's report is still there",
    );
    assert.match(missing.stdout, /\nrelay: cannot run here: the relay directory .*\/nowhere is missing/);
  });

  test(
    "W^X: the relay, its front and nbdkit, serves under a filter that refuses writable and executable memory (MemoryDenyWriteExecute)",
    {
      skip: spawnSync("/usr/bin/python3", ["-c", "import seccomp"]).status === 0
        ? undefined
        : "python3-seccomp is not installed; npm test installs it",
    },
    async () => {
      const vm = domainFile();
      const jail = ["/usr/bin/python3", join(ROOT, "test", "support", "wx_jail.py")];
      const hooked = await hookAt("before_vm_start", {
        HTTPSISOBOOT_CONFIG: settings("defaults", ""),
        _hook_domxml: vm.path,
        httpsisoboot: proxied(),
      }, { inner: jail });
      started.add(vm.uuid);
      assert.equal(hooked.status, 0, hooked.stderr);
      const front = pidOf(vm.uuid);
      assert.match(readFileSync(`/proc/${front}/status`, "utf8"), /^Seccomp:\s+2$/m, "the relay runs under the filter");
      assert.equal((await readThrough(socketOf(vm.uuid))).hash, isoHash);
    },
  );

  test("only QEMU's own user reads a VM's socket: a user in group kvm cannot, and the relay runs as the directory's owner, never root", async () => {
    const vm = await startVm();
    const front = pidOf(vm.uuid);
    assert.match(readFileSync(`/proc/${front}/status`, "utf8"), /^Uid:\s+36\s+36\s+36\s+36$/m, "the hook ran as root");
    const socket = statSync(socketOf(vm.uuid));
    assert.equal([socket.mode & 0o777, socket.gid].join(" "), `${0o660} ${QEMU_GID}`);
    const kvm = spawnSync("getent", ["group", "kvm"], { encoding: "utf8" }).stdout.split(":")[2];
    const read = (user: string[]) =>
      spawnSync("setpriv", [
        ...user,
        "qemu-io",
        "-r",
        "-f",
        "raw",
        `nbd+unix:///?socket=${socketOf(vm.uuid)}`,
        "-c",
        "read -q 0 2048",
      ], {
        encoding: "utf8",
      });
    const stranger = read(["--reuid=1000", `--regid=${kvm}`, "--clear-groups", "--"]);
    assert.notEqual(stranger.status, 0, "a user in group kvm is refused");
    assert.match(stranger.stderr, /Permission denied/);
    const qemu = read([`--reuid=${QEMU_UID}`, `--regid=${QEMU_GID}`, "--clear-groups", "--"]);
    assert.equal(qemu.status, 0, qemu.stderr);
  });

  test("the relay refuses to run as root, and so does the hook where the relay directory is root's or group kvm", async () => {
    const refused = spawnSync(BINARY, ["--relay", randomUUID()], {
      encoding: "utf8",
      env: { HTTPSISOBOOT_RUN_DIR: dirs().run, HTTPSISOBOOT_CACHE_DIR: dirs().cache },
    });
    assert.equal(refused.status, 2);
    assert.match(refused.stderr, /refused: a relay never runs as root/);
    for (
      const [owner, words] of [[[0, QEMU_GID], /is owned by root, and a relay never runs as root/], [
        [36, Number(spawnSync("getent", ["group", "kvm"], { encoding: "utf8" }).stdout.split(":")[2])],
        /is group kvm, so any user in kvm could read every VM's ISO from its socket/,
      ]] as const
    ) {
      chownSync(dirs().run, owner[0], owner[1]);
      try {
        const vm = domainFile();
        const outcome = await hookAt("before_vm_start", {
          _hook_domxml: vm.path,
          httpsisoboot: proxied(),
          HTTPSISOBOOT_CONFIG: settings("defaults", ""),
        });
        assert.equal(outcome.status, 2, outcome.stderr);
        assert.match(outcome.stderr, words);
        assert.deepEqual(processesNaming(vm.uuid), []);
      } finally {
        chownSync(dirs().run, 36, QEMU_GID);
      }
    }
  });

  test(
    "through an HTTP proxy (tinyproxy): the relay reads the proxy, credentials and all, from the settings file itself, tunnels every GET, and shows the credentials nowhere",
    {
      skip: spawnSync("sh", ["-c", "command -v tinyproxy"]).status === 0
        ? undefined
        : "tinyproxy is not installed; npm test installs it",
    },
    async () => {
      const port = await freePort();
      const log = join(work, "tinyproxy.log");
      const conf = join(work, "tinyproxy.conf");
      writeFileSync(
        conf,
        [
          `Port ${port}`,
          "Listen 127.0.0.1",
          `LogFile "${log}"`,
          "LogLevel Connect",
          `ConnectPort ${proxy!.port}`,
          "BasicAuth hv pr0xy-pass",
          "",
        ]
          .join("\n"),
      );
      const tinyproxy = spawn("tinyproxy", ["-d", "-c", conf], { stdio: "ignore" });
      try {
        assert.ok(await waitListening(port), "tinyproxy listens");
        const vm = await startVm({ conf: settings("proxied", `proxy = http://hv:pr0xy-pass@127.0.0.1:${port}\n`) });
        await proxy!.set({ mode: "none" }); // counts from here
        assert.equal((await readThrough(socketOf(vm.uuid))).hash, isoHash);
        const tunnels = readFileSync(log, "utf8").split("\n").filter((line) =>
          line.includes(`CONNECT localhost:${proxy!.port}`)
        );
        assert.ok(tunnels.length >= 2, `preflight's and the relay's tunnels: ${tunnels.length}`);
        assert.ok(
          ((await proxy!.stats()).requests["GET range"] ?? 0) > 0,
          "the guest's blocks came through the tunnels",
        );
        const config = readFileSync(join(dirs().run, `${vm.uuid}.relay`), "utf8");
        assert.ok(!config.includes("pr0xy-pass"), "not in the relay's config");
        assert.ok(!logOf(vm.uuid).includes("pr0xy-pass"), "not in its log");
        const ps = spawnSync("ps", ["-eo", "args"], { encoding: "utf8" }).stdout;
        assert.ok(!ps.includes("pr0xy-pass"), "not on a command line");
        await destroyVm(vm);
      } finally {
        tinyproxy.kill("SIGTERM");
      }
    },
  );

  test("the query is nowhere another user can read it: ps, the relay's files, nbdkit's command line", async () => {
    const vm = await startVm();
    const ps = spawnSync("setpriv", ["--reuid=1000", "--regid=1000", "--clear-groups", "ps", "-eo", "args"], {
      encoding: "utf8",
    });
    assert.equal(ps.status, 0, ps.stderr);
    assert.ok(ps.stdout.includes(`--relay ${vm.uuid}`), "ps does show the relay");
    assert.ok(!ps.stdout.includes("TOPSECRET"), "and not the query");
    const nbdkit = ps.stdout.split("\n").find((line) => line.includes("nbdkit") && line.includes(vm.uuid)) ?? "";
    assert.match(nbdkit, /url=http:\/\/httpsisoboot-relay\/iso/, "nbdkit asks the front, not the server");
    assert.ok(!nbdkit.includes("localhost"), "nbdkit's command line names no server");
    for (const name of filesOf(vm.uuid)) {
      const path = join(dirs().run, name);
      if (!existsSync(path) || name.endsWith(".d") || name.endsWith(".sock")) continue;
      const read = spawnSync("setpriv", ["--reuid=1000", "--regid=1000", "--clear-groups", "cat", path], {
        encoding: "utf8",
      });
      assert.ok(!read.stdout.includes("TOPSECRET"), `${name} is not readable by another user`);
    }
    assert.equal(readFileSync(join(dirs().run, `${vm.uuid}.relay`)).length > 0, true);
  });

  test("the relay outlives the killing of the hook's whole process tree right after it exits (a vdsmd restart)", async () => {
    const vm = domainFile();
    // The hook in a session of its own, as vdsmd's children are; then everything in that session is killed.
    const conf = settings("defaults", "");
    const script = `"$@"; echo $? > ${join(work, "tree-status")}; pkill -KILL -s 0; sleep 30`;
    const tree = spawnSync("setsid", [
      "--wait",
      "sh",
      "-c",
      script,
      "sh",
      ...prefix,
      join(hooks, "before_vm_start", "50_httpsisoboot"),
    ], {
      env: {
        PATH: process.env.PATH,
        HTTPSISOBOOT_RUN_DIR: dirs().run,
        HTTPSISOBOOT_CACHE_DIR: dirs().cache,
        HTTPSISOBOOT_CONFIG: conf,
        _hook_domxml: vm.path,
        httpsisoboot: proxied(),
      },
      encoding: "utf8",
      timeout: 60_000,
    });
    started.add(vm.uuid);
    assert.equal(readFileSync(join(work, "tree-status"), "utf8").trim(), "0", tree.stderr);
    assert.notEqual(tree.status, 0, "the tree was killed before its end");
    assert.equal(processesNaming(vm.uuid).length, 2, "the relay runs on");
    assert.equal((await readThrough(socketOf(vm.uuid))).hash, isoHash);
  });

  test("after_vm_destroy never waits for, or signals, another user's process that a pid file names, and leaves no lock", async () => {
    const vm = domainFile();
    // Another user's process whose command line says `--relay UUID`, named in the VM's pid file.
    const impostor = spawn("setpriv", [
      "--reuid=1000",
      "--regid=1000",
      "--clear-groups",
      "/usr/bin/python3",
      "-c",
      "import time; time.sleep(60)",
      "--relay",
      vm.uuid,
    ], { stdio: "ignore" });
    try {
      // Waited for, not slept for: on busy cores python3 takes its time to start.
      let pid: number | undefined;
      for (let waited = 0; pid === undefined && waited < 10_000; waited += 20) {
        pid = processesNaming(vm.uuid).find((found) =>
          readFileSync(`/proc/${found}/comm`, "utf8").trim().startsWith("python3")
        );
        if (pid === undefined) await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.ok(pid, "the impostor runs");
      writeFileSync(join(dirs().run, `${vm.uuid}.pid`), `${pid}\n`);
      const outcome = await hookAt("after_vm_destroy", { _hook_domxml: vm.path }, { limitMs: 10_000 });
      assert.equal(outcome.status, 0, outcome.stderr);
      assert.ok(outcome.ms < 3000, `done in ${outcome.ms} ms`);
      assert.ok(processesNaming(vm.uuid).includes(pid), "the other user's process was not signalled");
      assert.deepEqual(filesOf(vm.uuid), [], "its pid file and lock are gone");
    } finally {
      impostor.kill("SIGKILL");
    }
  });

  test("a relay whose nbdkit dies ends at once, takes its socket along, and keeps its config for systemd's restart", async () => {
    const vm = await startVm();
    const front = pidOf(vm.uuid);
    const nbdkit = processesNaming(vm.uuid).find((pid) => pid !== front)!;
    process.kill(nbdkit, "SIGKILL");
    for (let i = 0; i < 200 && processesNaming(vm.uuid).length > 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.deepEqual(processesNaming(vm.uuid), []);
    assert.match(
      logOf(vm.uuid),
      /nbdkit ended \(SIGKILL\); the VM's CD-ROM cannot be read until the relay starts again/,
    );
    assert.ok(!existsSync(socketOf(vm.uuid)), "no socket QEMU could hang on");
    assert.ok(existsSync(join(dirs().run, `${vm.uuid}.relay`)), "the config stays for a restart");
    assert.equal((await destroyVm(vm)).status, 0);
    assert.deepEqual(filesOf(vm.uuid), [], "after_vm_destroy removes what was left");
  });

  test("running before_vm_start twice reuses the running relay and writes nothing the second time", async () => {
    const vm = await startVm();
    const pid = readFileSync(join(dirs().run, `${vm.uuid}.pid`), "utf8");
    const written = readFileSync(vm.path, "utf8");
    const again = await hookAt("before_vm_start", {
      _hook_domxml: vm.path,
      httpsisoboot: proxied(),
      HTTPSISOBOOT_CONFIG: settings("defaults", ""),
    });
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stderr, /already has CD-ROM/);
    assert.equal(readFileSync(vm.path, "utf8"), written);
    assert.equal(readFileSync(join(dirs().run, `${vm.uuid}.pid`), "utf8"), pid, "the same relay");
  });

  test("two VMs on the same URL get a relay each; stopping one leaves the other serving", async () => {
    const [a, b] = [await startVm(), await startVm()];
    await destroyVm(a);
    assert.deepEqual(processesNaming(a.uuid), []);
    assert.equal((await readThrough(socketOf(b.uuid))).hash, isoHash);
  });

  test("20 VMs starting at once: each gets its relay, or is refused with one line and its domain untouched", async () => {
    const conf = settings("twenty", "preflight = no\n");
    const vms = Array.from({ length: 20 }, () => domainFile());
    const before = vms.map((vm) => readFileSync(vm.path, "utf8"));
    const began = Date.now();
    const outcomes = await Promise.all(
      vms.map((vm) =>
        hookAt("before_vm_start", { _hook_domxml: vm.path, httpsisoboot: proxied(), HTTPSISOBOOT_CONFIG: conf })
      ),
    );
    const took = Date.now() - began;
    vms.forEach((vm) => started.add(vm.uuid));
    for (const [i, outcome] of outcomes.entries()) {
      if (outcome.status === 0) {
        assert.equal(processesNaming(vms[i].uuid).length, 2);
      } else {
        assert.equal(outcome.status, 2);
        assert.match(outcome.stderr, /^httpsisoboot: [^\n]+\n$/);
        assert.equal(readFileSync(vms[i].path, "utf8"), before[i]);
        assert.deepEqual(processesNaming(vms[i].uuid), []);
      }
    }
    const served = outcomes.filter((outcome) => outcome.status === 0).length;
    assert.equal(served, 20, `all 20 started here, in ${took} ms: ${outcomes.map((o) => o.stderr).join("")}`);
    const reads = await Promise.all(vms.slice(0, 4).map((vm) => readThrough(socketOf(vm.uuid))));
    for (const read of reads) assert.equal(read.hash, isoHash, read.error);
  });

  describe("refusals: exit 2, one line, the domain byte-identical, no relay left", () => {
    /**
     * Runs before_vm_start with `env`, inside `outer` (a namespace that
     * hides part of nbdkit) and as `user` (setpriv), and checks all of that.
     */
    async function refused(
      words: RegExp,
      env: Record<string, string>,
      wrap: { outer?: string[]; user?: string[] } = {},
    ) {
      const vm = domainFile();
      const before = readFileSync(vm.path, "utf8");
      const outcome = await hookAt("before_vm_start", {
        HTTPSISOBOOT_CONFIG: settings("defaults", ""),
        _hook_domxml: vm.path,
        httpsisoboot: proxied(),
        ...env,
      }, { outer: wrap.outer, inner: wrap.user });
      assert.equal(outcome.status, 2, outcome.stderr);
      assert.match(outcome.stderr, /^httpsisoboot: [^\n]+\n$/);
      assert.match(outcome.stderr, words);
      assert.ok(!outcome.stderr.includes("TOPSECRET"));
      assert.equal(readFileSync(vm.path, "utf8"), before);
      assert.deepEqual(processesNaming(vm.uuid), []);
      assert.deepEqual(filesOf(vm.uuid), []);
      return outcome;
    }

    /** Runs the hook in a mount namespace where `mounts` hide parts of nbdkit. */
    const hiding = (
      script: string,
    ) => ["unshare", "--mount", "--propagation", "private", "sh", "-c", `${script} && exec "$@"`, "sh"];

    test("nbdkit is not installed: the line names the packages, and relay = off", async () => {
      const nbdkit = spawnSync("sh", ["-c", "command -v nbdkit"], { encoding: "utf8" }).stdout.trim();
      const empty = join(work, "not-nbdkit");
      writeFileSync(empty, "", { mode: 0o644 });
      await refused(
        /nbdkit, which relays the ISO to the VM, is not installed; install nbdkit-server, nbdkit-curl-plugin and nbdkit-basic-filters \(EL\) or nbdkit \(Debian\), or set relay = off in /,
        {},
        { outer: hiding(`mount --bind ${empty} ${nbdkit}`) },
      );
    });

    test("nbdkit without its curl plugin: the line names nbdkit-curl-plugin", async () => {
      const config = spawnSync("nbdkit", ["--dump-config"], { encoding: "utf8" }).stdout;
      const plugins = /^plugindir=(.*)$/m.exec(config)![1];
      await refused(
        /nbdkit lacks nbdkit-curl-plugin\.so in .*; install nbdkit-curl-plugin, or set relay = off/,
        {},
        { outer: hiding(`mount -t tmpfs none ${plugins}`) },
      );
    });

    test("a relay directory the hook cannot write, or that is missing", async () => {
      await refused(/the relay directory .*\/missing is missing; the RPM's tmpfiles\.d makes it at boot/, {
        HTTPSISOBOOT_RUN_DIR: join(work, "missing"),
      });
      const locked = join(work, "locked");
      mkdirSync(locked, { mode: 0o755 });
      await refused(/cannot use the relay directory .*\/locked: EACCES \(the hook runs as/, {
        HTTPSISOBOOT_RUN_DIR: locked,
      }, { user: ["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups", "--"] });
    });

    test("a server that answers preflight but not the relay: the relay is not ready, and is stopped", async () => {
      const silent = await silentServer();
      try {
        const outcome = await refused(
          /the relay of VM \S+ could not read the ISO \(its NBD server refused the export, error \d+\): localhost:\d+ sent nothing for 1 s \(timeout\); nbdkit will retry$/m,
          {
            HTTPSISOBOOT_CONFIG: settings("silent", "preflight = no\ntimeout = 1\n"),
            httpsisoboot: `https://localhost:${(silent.address() as { port: number }).port}/data.iso?${SECRET}`,
          },
        );
        assert.ok(outcome.ms < 40_000, `bounded: ${outcome.ms} ms`);
      } finally {
        silent.close();
      }
    });
  });

  describe("the VM's life through VDSM's hooks.py as uid 36", { skip: runnerMissing() }, () => {
    const kvm = Number(spawnSync("getent", ["group", "kvm"], { encoding: "utf8" }).stdout.split(":")[2] ?? "36");

    test("migration to another host (a mount namespace of its own) and back from the source, and hibernation", async () => {
      const runner = vdsmRunner(work, hooks, { command: prefix, gid: kvm, groups: [kvm, QEMU_GID] });
      const env = {
        HTTPSISOBOOT_RUN_DIR: dirs().run,
        HTTPSISOBOOT_CACHE_DIR: dirs().cache,
        HTTPSISOBOOT_CONFIG: settings("defaults", ""),
      };
      const vm = domainFile();
      const startedXml = runner.run("before_vm_start", readFileSync(vm.path, "utf8"), {
        custom: { httpsisoboot: proxied() },
        env,
      });
      assert.ok(startedXml.xml, startedXml.error);
      started.add(vm.uuid);
      const source = pidOf(vm.uuid);
      assert.equal(
        readFileSync(`/proc/${source}/status`, "utf8").match(/^Uid:\s+(\d+)/m)?.[1],
        "36",
        "the relay runs as vdsm",
      );

      // The destination host: its own /run/httpsisoboot and cache, empty, in a mount namespace that stays as long as its relay.
      const destination = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        `for d in "$1" "$2"; do mount -t tmpfs -o mode=0750,uid=36,gid=${QEMU_GID} tmpfs "$d"; done; shift 2; exec "$@"`,
        "sh",
        dirs().run,
        dirs().cache,
        ...prefix,
      ];
      const custom = { httpsisoboot: proxied() };
      const arrived = runner.run("before_vm_migrate_destination", startedXml.xml!, {
        env,
        prefix: destination,
        custom,
      });
      assert.equal(arrived.xml, startedXml.xml, `${arrived.error ?? ""}: the destination does not change the domain`);
      const there = processesNaming(vm.uuid).find((pid) =>
        pid !== source && readFileSync(`/proc/${pid}/cmdline`, "latin1").includes("--relay")
      );
      assert.ok(there, "a relay runs on the destination");
      assert.equal((await readThrough(socketOf(vm.uuid), there)).hash, isoHash, "and serves the ISO there");

      runner.run("after_vm_migrate_source", startedXml.xml!, { env });
      assert.ok(!processesNaming(vm.uuid).includes(source), "the source's relay stopped");
      assert.ok(processesNaming(vm.uuid).includes(there!), "the destination's runs on");
      assert.ok(!existsSync(socketOf(vm.uuid)), "the source's socket is gone");

      runner.run("after_vm_destroy", startedXml.xml!, {
        env,
        prefix: ["nsenter", "--target", String(there), "--mount", "--"],
      });
      assert.deepEqual(processesNaming(vm.uuid), [], "and the destination's stops when the VM is destroyed there");

      // A destination that is not given the property, or given another ISO's, starts no relay and says why.
      for (
        const [given, words] of [[{}, /VDSM passed no httpsisoboot property, which holds its query/], [
          { httpsisoboot: `https://localhost:${proxy!.port}/other.iso?${SECRET}` },
          /a running VM's CD-ROM cannot change its ISO/,
        ]] as const
      ) {
        const refused = runner.run("before_vm_migrate_destination", startedXml.xml!, { env, custom: given });
        assert.match(refused.error ?? "", words);
        assert.ok(!(refused.error ?? "").includes("TOPSECRET"));
      }

      // Hibernation on this host: the relay stops with the VM, and starts again for the resume.
      const resumed = runner.run("before_vm_dehibernate", startedXml.xml!, { env, custom });
      assert.equal(resumed.xml, startedXml.xml, resumed.error);
      assert.equal((await readThrough(socketOf(vm.uuid))).hash, isoHash);
      runner.run("after_vm_hibernate", startedXml.xml!, { env });
      assert.deepEqual(processesNaming(vm.uuid), []);
      assert.deepEqual(filesOf(vm.uuid), []);
      started.delete(vm.uuid);
    });
  });
});

/** A hostile ISO server on loopback (endless.ts's answerHostile), whose connections end with it. */
function hostileServer(mode: HostileMode): Promise<TlsServer> {
  const sockets = new Set<import("node:tls").TLSSocket>();
  const server = createTlsServer({ cert: readFileSync(cert.cert), key: readFileSync(cert.key) }, (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    eachRequest(socket, answerHostile(mode));
  });
  const close = server.close.bind(server);
  server.close = (callback?: (error?: Error) => void) => {
    for (const socket of sockets) socket.destroy();
    return close(callback);
  };
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

/** A TLS server that takes connections and never answers: what a hung ISO server looks like. */
function silentServer(): Promise<TlsServer> {
  const server = createTlsServer({ cert: readFileSync(cert.cert), key: readFileSync(cert.key) }, () => {});
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

/** A directory's owner, group and mode as `id` and `getent` name them: what --check prints of it. */
function owner(path: string): string {
  const stats = statSync(path);
  const user = spawnSync("id", ["-nu", String(stats.uid)], { encoding: "utf8" }).stdout.trim() || String(stats.uid);
  const group = spawnSync("getent", ["group", String(stats.gid)], { encoding: "utf8" }).stdout.split(":")[0];
  return `${user}:${group || stats.gid} ${(stats.mode & 0o7777).toString(8).padStart(4, "0")}`;
}
