// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * The relay's bench, part of `npm run bench` as root, on the e2e suite's
 * world (libvirtd, nginx with a run-made CA, the fault proxy, VDSM's runner):
 *
 * - boot to the guest's hash of its 16 MiB file, relay vs direct (QEMU's
 *   curl), with no added latency and with 20 ms added to every request's
 *   round trip: seconds, ranged GETs and MiB from the server, medians and ranges of 5, relay and direct in turn;
 * - each relay's peak RSS (the front and nbdkit) and its cache's size on
 *   disk, once the guest has read the payload;
 * - twenty relays started at once: how long until all answer, and the memory
 *   they take together (PSS, so the shared binary is counted once);
 * - the same reads without a guest, so that TCG's noise is out of the figure:
 *   qemu-img bench through a fresh relay and through QEMU's curl, in a boot
 *   loader's 2 KiB reads and in a kernel's 128 KiB ones;
 * - the host's shared block cache: a 256 MiB ISO read whole by a first VM,
 *   a second and twenty at once through the 100 ms link: bytes from the
 *   server and MB/s each, against the local file;
 * - a 512 MiB ISO read in order (qemu-img bench, 1 MiB reads) through a
 *   link of 400 Mbit/s with 0, 20 and 100 ms of round trip: the relay with
 *   its read-ahead and QEMU's curl (medians of 3, in turn), the relay
 *   without it (relay_readahead = 0, the relay of before; once), and the
 *   link itself, the ceiling of every ratio;
 * - one relay under each hostile server of endless.ts (junk with no request
 *   in flight, a 206 that never ends, endless headers, a trickle): the
 *   front's and nbdkit's peak RSS and CPU seconds while a guest's 4 MiB read
 *   fails against it;
 * - the cache's size on disk against relay_cache_size (16 MiB) for 64 KiB,
 *   1 MiB and 4 MiB reads spread over a sparse 4 GiB ISO;
 * - what NBD itself costs the same boot, with no network and no libvirt:
 *   QEMU reading the ISO file, and reading it through nbdkit's file plugin,
 *   bare and with the relay's filters.
 *
 * A benchmark, not a test: it asserts nothing.
 */
import { spawn, spawnSync } from "node:child_process";
import process from "node:process";

import { chownSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, truncateSync } from "node:fs";
import { connect as connectTls, createServer as createTlsServer, type TLSSocket } from "node:tls";
import { Buffer } from "node:buffer";

import { answerHostile, eachRequest, HOSTILE_MODES } from "../test/support/endless.ts";

import { openFileBytes, peakRssMiB, runAsync } from "../test/support/processes.ts";

import { join } from "node:path";

import { randomUUID } from "node:crypto";

import { World } from "../e2e/world.ts";
import { freePort, waitListening } from "../test/support/nginx.ts";

import { bootThroughFault, type FaultBoot } from "../e2e/faults.ts";

import type { DomainSpec } from "../e2e/domain.ts";

import type { Fault } from "../test/support/fault_proxy.ts";

import { DEFAULT_SETTINGS } from "../lib/settings.ts";

import { RELAY_CACHE_BLOCK_BYTES } from "../lib/limits.ts";

import { RELAY_FILTERS } from "../lib/relay/plan.ts";
import { RELAY_PARALLEL_GETS } from "../lib/relay/readahead.ts";
import { parseResponseHead } from "../lib/http/response.ts";

/** Boots of each kind: TCG boot times here vary by a second or two from run to run. */
const REPEATS = 5;

export async function relayBench(): Promise<void> {
  const world = new World();
  try {
    await world.setUp();
    console.log(
      `\nthe relay (${REPEATS} boots each, relay and direct in turn; i440fx + SeaBIOS under TCG; a 16 MiB payload hashed by the guest):\n`,
    );
    const parts: Array<[string, () => unknown]> = [
      ["boots", () => boots(world)],
      ["reads", () => reads(world)],
      ["sequential", () => sequential(world)],
      ["sources", () => sources(world)],
      ["shared", () => sharedCache(world)],
      ["twenty", () => twenty(world)],
      ["hostile", () => hostile(world)],
      ["cache", () => cacheBound(world)],
      ["floor", () => nbdFloor(world)],
    ];
    // BENCH_RELAY=sequential,twenty runs only those parts (while tuning one); all of them unless set.
    const only = process.env.BENCH_RELAY?.split(",");
    for (const [name, run] of parts) if (!only || only.includes(name)) await run();
  } finally {
    world.tearDown();
  }
}

async function boots(world: World): Promise<void> {
  console.log(
    "| added round trip | route | boot to hash, median (range) | ranged GETs | MiB from the server | outcome |",
  );
  console.log("|---:|---|---:|---:|---:|---|");
  let footprint = "";
  const routes = [["relay (nbdkit)", world.defaults], ["direct (QEMU's curl)", world.direct]] as const;
  for (const ms of [0, 20]) {
    const runs = new Map<string, FaultBoot[]>(routes.map(([route]) => [route, []]));
    // Relay and direct in turn, so that the machine's drift falls on both.
    for (let i = 0; i < REPEATS; i++) {
      for (const [route, settings] of routes) {
        const fault = ms ? { mode: "latency" as const, ms } : { mode: "none" as const };
        const measure = route.startsWith("relay") && ms === 0 && i === 0
          ? (domain: DomainSpec) => (footprint = relayFootprint(world, domain))
          : undefined;
        runs.get(route)!.push(
          await bootThroughFault(world, `bench-${ms}-${route.split(" ")[0]}-${i}`, "pc", settings, fault, 180_000, {
            whileRunning: measure,
          }),
        );
      }
    }
    for (const [route, boots] of runs) {
      const seconds = boots.map((boot) => boot.seconds);
      const outcomes = [...new Set(boots.map((boot) => boot.outcome))].join(", ");
      console.log(
        `| ${ms} ms | ${route} | ${median(seconds).toFixed(1)} s (${Math.min(...seconds).toFixed(1)}–${
          Math.max(...seconds).toFixed(1)
        }) | ${median(boots.map((boot) => boot.gets))} | ${
          (median(boots.map((boot) => boot.bytes)) / 1048576).toFixed(1)
        } | ${outcomes} |`,
      );
    }
  }
  console.log(`\none relay, once the guest has read the ISO: ${footprint}`);
}

/** The relay's processes' peak RSS and its cache's size on disk. */
function relayFootprint(world: World, domain: DomainSpec): string {
  const pids = world.relayLeft(domain).processes;
  const rss = pids.map((pid) => {
    const name = readFileSync(`/proc/${pid}/cmdline`, "latin1").includes("--relay") ? "front" : "nbdkit";
    return `${name} ${peakRssMiB(pid).toFixed(1)} MiB`;
  });
  const cache = cacheOnDisk(world, domain);
  return `peak RSS ${rss.join(", ")}; cache ${(cache / 1048576).toFixed(1)} MiB on disk (relay_cache_size 1 GiB)`;
}

/** Twenty relays at once: until all answer, and what they take together. */
async function twenty(world: World): Promise<void> {
  const { command, env } = world.hookCommand("before_vm_start");
  const settings = world.settings("bench-twenty", "preflight = no\n");
  const vms = Array.from({ length: 20 }, () => world.spec(`bench-twenty-${randomUUID().slice(0, 8)}`, "pc", "bios"));
  const began = Date.now();
  const finished = await Promise.all(vms.map((vm) =>
    new Promise<number>((resolve) => {
      const child = spawn(command[0], command.slice(1), {
        env: {
          ...env,
          HTTPSISOBOOT_CONFIG: settings,
          _hook_domxml: world.domainFile(vm),
          httpsisoboot: `https://localhost:${world.ports.trusted}/payload.iso`,
        },
        stdio: "ignore",
      });
      child.on("close", (status) => resolve(status === 0 ? Date.now() - began : -1));
    })
  ));
  const ok = finished.filter((ms) => ms >= 0);
  const pss = vms.flatMap((vm) => world.relayLeft(vm).processes).reduce((total, pid) => {
    const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
    return total + Number(/^Pss:\s+(\d+)/m.exec(rollup)?.[1] ?? 0);
  }, 0);
  console.log(
    `twenty relays started at once: ${ok.length} of 20 ready, the last after ${
      (Math.max(...ok) / 1000).toFixed(1)
    } s ` +
      `(median ${(median(ok) / 1000).toFixed(1)} s); together ${(pss / 1024).toFixed(0)} MiB PSS, ` +
      `${(pss / 1024 / ok.length).toFixed(1)} MiB a relay`,
  );
  for (const vm of vms) world.runPoint("after_vm_destroy", join(world.work, `vm-${vm.name}`, "domxml"));
}

/** A relay under each hostile server: peak RSS and CPU seconds of the front and nbdkit. */
async function hostile(world: World): Promise<void> {
  console.log("\none relay under a hostile server, while a guest's 4 MiB read fails against it (timeout = 2):\n");
  console.log("| the server | front peak RSS | front CPU | nbdkit peak RSS | nbdkit CPU | the read |");
  console.log("|---|---:|---:|---:|---:|---|");
  for (const mode of HOSTILE_MODES) {
    const sockets = new Set<TLSSocket>();
    const server = createTlsServer(
      { cert: readFileSync(world.trusted!.cert), key: readFileSync(world.trusted!.key) },
      (socket) => {
        sockets.add(socket);
        eachRequest(socket, answerHostile(mode));
      },
    );
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const vm = world.spec(`bench-hostile-${mode}`, "pc", "bios");
    const path = world.domainFile(vm);
    try {
      const { command, env } = world.hookCommand("before_vm_start");
      // Not spawnSync: the hostile server is in this process, and must answer meanwhile.
      const started = await runAsync(command[0], command.slice(1), {
        env: {
          ...env,
          HTTPSISOBOOT_CONFIG: world.settings("bench-hostile", "preflight = no\ntimeout = 2\n"),
          _hook_domxml: path,
          httpsisoboot: `https://localhost:${(server.address() as { port: number }).port}/h.iso`,
        },
        timeoutMs: 60_000,
      });
      if (started.status !== 0) {
        console.log(`| ${mode} | the relay did not start: ${started.stderr.trim()} |`);
        continue;
      }
      const socket = join(world.relayDirs.run, `${uuidOf(path)}.sock`);
      const began = Date.now();
      const read = await runAsync("qemu-io", ["-r", "-f", "raw", `nbd+unix:///?socket=${socket}`, "-c", "read 0 4M"], {
        timeoutMs: 60_000,
      });
      const outcome = read.status === 0 ? "read" : `refused in ${((Date.now() - began) / 1000).toFixed(1)} s`;
      const usage = world.relayLeft(vm).processes.map((pid) => processUsage(pid));
      const front = usage.find((one) => one.front) ?? { rss: 0, cpu: 0 };
      const nbdkit = usage.find((one) => !one.front) ?? { rss: 0, cpu: 0 };
      console.log(
        `| ${mode} | ${front.rss.toFixed(1)} MiB | ${front.cpu.toFixed(2)} s | ${nbdkit.rss.toFixed(1)} MiB | ${
          nbdkit.cpu.toFixed(2)
        } s | ${outcome} |`,
      );
    } finally {
      world.runPoint("after_vm_destroy", path);
      for (const socket of sockets) socket.destroy();
      server.close();
    }
  }
}

/** A relay process's peak RSS (MiB) and CPU seconds so far. */
function processUsage(pid: number): { front: boolean; rss: number; cpu: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return {
    front: readFileSync(`/proc/${pid}/cmdline`, "latin1").includes("--relay"),
    rss: peakRssMiB(pid),
    cpu: (Number(fields[11]) + Number(fields[12])) / 100, // utime + stime, in USER_HZ (100 on Linux)
  };
}

/** The VM UUID in a domain file. */
function uuidOf(path: string): string {
  return /<uuid>([^<]+)<\/uuid>/.exec(readFileSync(path, "utf8"))![1].trim();
}

/** The cache's size on disk against relay_cache_size, for reads of three sizes spread over a sparse 4 GiB ISO. */
function cacheBound(world: World): void {
  const sparse = join(world.work, "www", "sparse.iso");
  copyFileSync(join(world.work, "www", "payload.iso"), sparse);
  truncateSync(sparse, 4 * 1024 ** 3);
  console.log(
    "\nthe cache on disk against relay_cache_size = 16M, 256 MiB read in reads spread over a sparse 4 GiB ISO:\n",
  );
  console.log("| read size | reads | cache on disk | relay_cache_size |\n|---:|---:|---:|---:|");
  try {
    for (const kib of [64, 1024, 4096]) {
      const vm = world.spec(`bench-cache-${kib}`, "pc", "bios");
      const path = world.domainFile(vm);
      const { command, env } = world.hookCommand("before_vm_start");
      const started = spawnSync(command[0], command.slice(1), {
        env: {
          ...env,
          HTTPSISOBOOT_CONFIG: world.settings("bench-cache", "relay_cache_size = 16M\n"),
          _hook_domxml: path,
          httpsisoboot: `https://localhost:${world.ports.trusted}/sparse.iso`,
        },
        encoding: "utf8",
        timeout: 60_000,
      });
      if (started.status !== 0) {
        console.log(`| ${kib} KiB | the relay did not start: ${started.stderr.trim()} |`);
        continue;
      }
      const count = (256 * 1024) / kib;
      const stride = Math.floor((4 * 1024 * 1024) / count); // KiB between reads: the whole file
      const reads = Array.from({ length: count }, (_, i) => ["-c", `read -q ${i * stride}k ${kib}k`]).flat();
      const socket = join(world.relayDirs.run, `${uuidOf(path)}.sock`);
      spawnSync("qemu-io", ["-r", "-f", "raw", `nbd+unix:///?socket=${socket}`, ...reads], { timeout: 600_000 });
      const cache = cacheOnDisk(world, vm);
      console.log(`| ${kib} KiB | ${count} | ${(cache / 1048576).toFixed(1)} MiB | 16 MiB |`);
      world.runPoint("after_vm_destroy", path);
    }
  } finally {
    rmSync(sparse, { force: true });
  }
}

/** The largest cache file a relay's processes hold open, on disk. */
function cacheOnDisk(world: World, domain: DomainSpec): number {
  return openFileBytes(world.relayLeft(domain).processes, world.relayDirs.cache);
}

/** The bytes qemu-img bench reads: the payload's size, from the ISO's start. */
const READ_BYTES = 16 * 1024 * 1024;

/**
 * The boot's reads without the guest: `qemu-img bench` reads the ISO's first
 * 16 MiB in order, one read at a time, through a relay the hook has just
 * started (its cache cold) and through QEMU's curl with the hook's direct-mode
 * readahead and timeout. 2 KiB is what GRUB and SeaBIOS ask for; 128 KiB is
 * a Linux installer's readahead.
 */
async function reads(world: World): Promise<void> {
  console.log(
    `\nthe same reads without a guest: qemu-img bench, ${READ_BYTES >> 20} MiB in order at queue depth 1 ` +
      `(medians of ${REPEATS}, a fresh relay each time):\n`,
  );
  console.log(
    "| added round trip | read size | relay | direct (QEMU's curl) | relay ÷ direct |\n|---:|---:|---:|---:|---:|",
  );
  const url = `https://localhost:${world.proxy.port}/payload.iso`;
  const direct = curlImage(url);
  for (const ms of [0, 20]) {
    const fault: Fault = ms ? { mode: "latency", ms } : { mode: "none" };
    for (const size of [2048, 128 * 1024]) {
      const times = { relay: [] as number[], direct: [] as number[] };
      for (let i = 0; i < REPEATS; i++) {
        const vm = world.spec(`bench-reads-${ms}-${size}-${i}`, "pc", "bios");
        const path = world.domainFile(vm);
        world.forgetSharedBlocks();
        const hooked = world.runHook(path, url, world.defaults);
        if (hooked.status !== 0) throw new Error(hooked.stderr);
        const socket = join(world.relayDirs.run, `${vm.uuid}.sock`);
        await world.proxy.set(fault);
        times.relay.push(qemuImgBench(world, size, `driver=nbd,server.type=unix,server.path=${socket}`));
        times.direct.push(qemuImgBench(world, size, direct));
        await world.proxy.set({ mode: "none" });
        world.runPoint("after_vm_destroy", path);
      }
      const [relay, curl] = [median(times.relay), median(times.direct)];
      console.log(
        `| ${ms} ms | ${size >> 10} KiB | ${relay.toFixed(2)} s | ${curl.toFixed(2)} s | ${
          (relay / curl).toFixed(2)
        }× |`,
      );
    }
  }
}

/** The link of the sequential bench: 400 Mbit/s, shared by every connection. */
const LINK_BYTES_PER_SECOND = 50_000_000;
const SEQUENTIAL_MIB = 512;
/** Runs of the relay and of QEMU's curl at each round trip, medians printed: one run of either has varied by 10 % here. */
const SEQUENTIAL_RUNS = 3;

/**
 * A 512 MiB ISO read in order, 1 MiB at a time at queue depth 1, through a
 * 400 Mbit/s link with a round trip of 0, 20 and 100 ms: what an
 * installer reading a remote ISO sees.
 */
async function sequential(world: World): Promise<void> {
  const iso = join(world.work, "www", "sequential.iso");
  copyFileSync(join(world.work, "www", "payload.iso"), iso);
  truncateSync(iso, SEQUENTIAL_MIB << 20);
  console.log(
    `\na ${SEQUENTIAL_MIB} MiB ISO read in order (qemu-img bench, 1 MiB reads, queue depth 1) through a link of ` +
      `${(LINK_BYTES_PER_SECOND * 8) / 1e6} Mbit/s:\n`,
  );
  console.log(
    "| round trip | route | MB/s, median (range) | share of the link | ÷ QEMU's curl | the front's CPU, median |\n" +
      "|---:|---|---:|---:|---:|---:|",
  );
  const url = `https://localhost:${world.proxy.port}/sequential.iso`;
  // [route, settings (undefined: QEMU's curl), runs]: the relay without read-ahead, slow at 100 ms, runs once.
  const routes: Array<[string, string | undefined, number]> = [
    [`relay, read-ahead ${DEFAULT_SETTINGS.relayReadahead >> 20} MiB`, world.defaults, SEQUENTIAL_RUNS],
    ["relay, relay_readahead = 0", world.settings("bench-no-readahead", "relay_readahead = 0\n"), 1],
    ["QEMU's curl (readahead 1 MiB)", undefined, SEQUENTIAL_RUNS],
  ];
  const plain = `${RELAY_PARALLEL_GETS} plain GETs of 1 MiB at once, no relay`;
  try {
    // BENCH_ROUND_TRIPS=100 measures only that round trip (while tuning); 0, 20 and 100 ms unless set.
    for (const ms of (process.env.BENCH_ROUND_TRIPS ?? "0,20,100").split(",").map(Number)) {
      const rates: number[][] = routes.map(() => []);
      const cpu: number[][] = routes.map(() => []);
      // Each route in turn, run after run, so that the machine's drift falls on all.
      for (let run = 0; run < SEQUENTIAL_RUNS; run++) {
        for (const [i, [, settings, runs]] of routes.entries()) {
          if (run >= runs) continue;
          await world.proxy.set({ mode: "link", ms, bytesPerSecond: LINK_BYTES_PER_SECOND });
          const read = settings === undefined
            ? { seconds: qemuImgBench(world, 1 << 20, curlImage(url), SEQUENTIAL_MIB << 20) }
            : throughRelay(world, `bench-seq-${ms}-${i}-${run}`, url, settings);
          rates[i].push((SEQUENTIAL_MIB * 1048576) / read.seconds / 1e6);
          if ("cpu" in read) cpu[i].push(read.cpu);
        }
      }
      const curl = median(rates[2]);
      routes.forEach(([route], i) => {
        const rate = median(rates[i]);
        const range = rates[i].length > 1
          ? ` (${Math.min(...rates[i]).toFixed(1)}–${Math.max(...rates[i]).toFixed(1)})`
          : "";
        const front = cpu[i].length > 0 ? `${median(cpu[i]).toFixed(1)} s` : "";
        console.log(
          `| ${ms} ms | ${route} | ${rate.toFixed(1)}${range} | ${
            ((rate * 1e6 * 100) / LINK_BYTES_PER_SECOND).toFixed(0)
          }% | ${(rate / curl).toFixed(2)}× | ${front} |`,
        );
      });
      // What the relay's way of asking can get through this link at best: its GETs with nothing behind them.
      await world.proxy.set({ mode: "link", ms, bytesPerSecond: LINK_BYTES_PER_SECOND });
      const best = (SEQUENTIAL_MIB * 1048576) / (await parallelGets(world, "/sequential.iso", SEQUENTIAL_MIB)) / 1e6;
      console.log(
        `| ${ms} ms | ${plain} | ${best.toFixed(1)} | ${((best * 1e6 * 100) / LINK_BYTES_PER_SECOND).toFixed(0)}% | ${
          (best / curl).toFixed(2)
        }× | |`,
      );
      // The most any route can read: the link, whose bytes are the file's. What that is against QEMU's curl bounds every ratio.
      const link = LINK_BYTES_PER_SECOND / 1e6;
      console.log(
        `| ${ms} ms | the link itself (the ceiling) | ${link.toFixed(1)} | 100% | ${(link / curl).toFixed(2)}× | |`,
      );
    }
  } finally {
    await world.proxy.set({ mode: "none" });
    rmSync(iso, { force: true });
  }
}

/**
 * The ISO URLs admins paste, side by side at 100 ms and 400 Mbit/s: straight
 * to the mirror, through a mirror manager (a 302 for every request, nginx's
 * /manager/ on the same link), and through an HTTP proxy on loopback, the
 * tunnel crossing the same link: tinyproxy (from the tests' packages), and
 * squid, the usual corporate proxy, where it is installed (`apt-get install
 * squid`; not one of the tests' packages, since Debian starts its service).
 * The same 512 MiB read in order, each route in turn, medians of
 * SEQUENTIAL_RUNS.
 */
async function sources(world: World): Promise<void> {
  const ms = Number(process.env.BENCH_ROUND_TRIPS?.split(",").at(-1) ?? 100);
  const iso = join(world.work, "www", "sequential.iso");
  copyFileSync(join(world.work, "www", "payload.iso"), iso);
  truncateSync(iso, SEQUENTIAL_MIB << 20);
  const tinyproxy = spawnSync("sh", ["-c", "command -v tinyproxy"]).status === 0;
  const proxy = tinyproxy ? await startTinyproxy(world) : undefined;
  const squid = existsSync("/usr/sbin/squid") ? await startSquid(world) : undefined;
  console.log(
    `
ISO URLs as admins paste them: ${SEQUENTIAL_MIB} MiB read in order through ${
      (LINK_BYTES_PER_SECOND * 8) / 1e6
    } Mbit/s at ${ms} ms round trip${tinyproxy ? "" : " (no tinyproxy here: its row is left out)"}${
      squid ? "" : " (no squid here: its row is left out)"
    }:
`,
  );
  console.log("| route | MB/s, median (range) | share of the link | ÷ straight to the mirror | GETs of the manager |");
  console.log("|---|---:|---:|---:|---:|");
  const url = `https://localhost:${world.proxy.port}/sequential.iso`;
  const routes: Array<[string, string, string]> = [
    ["straight to the mirror", url, world.defaults],
    [
      "through a mirror manager (a 302 for every request)",
      url.replace("/sequential.iso", "/manager/sequential.iso"),
      world.defaults,
    ],
  ];
  // BENCH_NO_PROXY=1 leaves the proxy's row out: for a binary older than the proxy setting, as a baseline.
  if (proxy && !process.env.BENCH_NO_PROXY) {
    routes.push([
      "through an HTTP proxy (tinyproxy, CONNECT)",
      url,
      world.settings("bench-proxy", `proxy = http://127.0.0.1:${proxy.port}\n`),
    ]);
  }
  if (squid && !process.env.BENCH_NO_PROXY) {
    routes.push([
      "through an HTTP proxy (squid, CONNECT)",
      url,
      world.settings("bench-squid-proxy", `proxy = http://127.0.0.1:${squid.port}\n`),
    ]);
  }
  try {
    const rates: number[][] = routes.map(() => []);
    const redirects: number[][] = routes.map(() => []);
    for (let run = 0; run < SEQUENTIAL_RUNS; run++) {
      for (const [i, [, routeUrl, settings]] of routes.entries()) {
        await world.proxy.set({ mode: "link", ms, bytesPerSecond: LINK_BYTES_PER_SECOND });
        const before = managerGets(world);
        const read = throughRelay(world, `bench-src-${i}-${run}`, routeUrl, settings);
        redirects[i].push(managerGets(world) - before);
        rates[i].push((SEQUENTIAL_MIB * 1048576) / read.seconds / 1e6);
      }
    }
    const straight = median(rates[0]);
    routes.forEach(([route], i) => {
      const rate = median(rates[i]);
      console.log(
        `| ${route} | ${rate.toFixed(1)} (${Math.min(...rates[i]).toFixed(1)}–${Math.max(...rates[i]).toFixed(1)}) | ${
          ((rate * 1e6 * 100) / LINK_BYTES_PER_SECOND).toFixed(0)
        }% | ${(rate / straight).toFixed(2)}× | ${median(redirects[i])} |`,
      );
    });
  } finally {
    await world.proxy.set({ mode: "none" });
    proxy?.stop();
    squid?.stop();
    rmSync(iso, { force: true });
  }
}

/** The mirror manager's answers so far: the 302s in nginx's access log. */
function managerGets(world: World): number {
  return readFileSync(world.nginx.accessLog, "utf8").split("\n").filter((line) => / 302 GET \/manager\//.test(line))
    .length;
}

/** tinyproxy on 127.0.0.1, tunnelling only to the fault proxy's port. */
async function startTinyproxy(world: World): Promise<{ port: number; stop(): void }> {
  const port = await freePort();
  const conf = world.settings(
    "bench-tinyproxy",
    [`Port ${port}`, "Listen 127.0.0.1", "Timeout 600", "MaxClients 100", `ConnectPort ${world.proxy.port}`, ""].join(
      "\n",
    ),
  );
  const child = spawn("tinyproxy", ["-d", "-c", conf], { stdio: "ignore" });
  if (!(await waitListening(port))) throw new Error(`tinyproxy did not listen on 127.0.0.1:${port} within 10 s`);
  return { port, stop: () => child.kill("SIGTERM") };
}

/**
 * squid on 127.0.0.1, in the foreground, tunnelling only to the fault
 * proxy's port, caching and logging nothing. As root it runs as the user
 * proxy, which must own the directory of its pid file and log.
 */
async function startSquid(world: World): Promise<{ port: number; stop(): void }> {
  const port = await freePort();
  const dir = join(world.work, "bench-squid");
  mkdirSync(dir, { recursive: true });
  const proxyUser = spawnSync("id", ["-u", "proxy"], { encoding: "utf8" }).stdout.trim();
  if (proxyUser) chownSync(dir, Number(proxyUser), 0);
  const conf = world.settings(
    "bench-squid",
    [
      `http_port 127.0.0.1:${port}`,
      `acl link port ${world.proxy.port}`,
      "http_access allow CONNECT link",
      "http_access deny all",
      "cache deny all",
      "access_log none",
      `cache_log ${dir}/cache.log`,
      `pid_filename ${dir}/squid.pid`,
      `coredump_dir ${dir}`,
      "pinger_enable off",
      "shutdown_lifetime 0 seconds",
      "",
    ].join("\n"),
  );
  const child = spawn("/usr/sbin/squid", ["-N", "-f", conf], { stdio: "ignore" });
  if (!(await waitListening(port))) throw new Error(`squid did not listen on 127.0.0.1:${port} within 10 s`);
  return { port, stop: () => child.kill("SIGTERM") };
}

/** The read's seconds, and the CPU seconds the relay's front spent from its start to the read's end. */
function throughRelay(world: World, name: string, url: string, settings: string): { seconds: number; cpu: number } {
  const vm = world.spec(name, "pc", "bios");
  const path = world.domainFile(vm);
  world.forgetSharedBlocks();
  const hooked = world.runHook(path, url, settings);
  if (hooked.status !== 0) throw new Error(hooked.stderr);
  try {
    const socket = join(world.relayDirs.run, `${vm.uuid}.sock`);
    const seconds = qemuImgBench(
      world,
      1 << 20,
      `driver=nbd,server.type=unix,server.path=${socket}`,
      SEQUENTIAL_MIB << 20,
    );
    const front = world.relayLeft(vm).processes.map(processUsage).find((usage) => usage.front);
    return { seconds, cpu: front?.cpu ?? NaN };
  } finally {
    world.runPoint("after_vm_destroy", path);
  }
}

/**
 * Seconds RELAY_PARALLEL_GETS kept TLS connections to the fault proxy take
 * to read `mib` MiB of `path`, each asking for the next 1 MiB block as its
 * last one has come whole: the relay's way of asking, with no relay, nbdkit
 * or guest behind it, so the best that way can do through the link. Equal
 * GETs that start together share the link and end together, then all wait a
 * round trip: at 100 ms that costs them a part of the link.
 */
async function parallelGets(world: World, path: string, mib: number): Promise<number> {
  const ca = readFileSync(world.caCert);
  let next = 0;
  const began = performance.now();
  const reader = () =>
    new Promise<void>((resolve, reject) => {
      const socket = connectTls({ host: "127.0.0.1", port: world.proxy.port, servername: "localhost", ca });
      // Only a head is held; a body's bytes are counted and let go, so that the client costs the link nothing.
      let head = Buffer.alloc(0);
      let body = 0;
      const ask = () => {
        if (next >= mib) return void socket.end(resolve);
        const block = next++;
        socket.write(
          `GET ${path} HTTP/1.1\r\nHost: localhost\r\nRange: bytes=${block << 20}-${((block + 1) << 20) - 1}\r\n\r\n`,
        );
      };
      socket.on("data", (chunk: Buffer) => {
        while (chunk.length > 0) {
          if (body > 0) {
            const taken = Math.min(body, chunk.length);
            body -= taken;
            chunk = chunk.subarray(taken);
            if (body === 0) ask();
            continue;
          }
          head = Buffer.concat([head, chunk]);
          const end = head.indexOf("\r\n\r\n");
          if (end < 0) return;
          body = Number(parseResponseHead(head.subarray(0, end).toString("latin1")).headers.get("content-length"));
          chunk = head.subarray(end + 4);
          head = Buffer.alloc(0);
        }
      });
      socket.on("error", reject);
      socket.once("secureConnect", ask);
    });
  await Promise.all(Array.from({ length: RELAY_PARALLEL_GETS }, reader));
  return (performance.now() - began) / 1000;
}

/** The ISO of the shared cache's bench: 256 MiB, read whole by each VM. */
const SHARED_MIB = 256;

/**
 * The host's shared block cache through the 400 Mbit/s link at 100 ms: the
 * first VM on an ISO (the cache cold), a second one, then twenty at once,
 * each reading the whole ISO in order through its own relay; what each takes
 * from the ISO server (the proxy's body bytes and GETs), and its read speed
 * against reading the ISO's file from the local disk.
 */
async function sharedCache(world: World): Promise<void> {
  const iso = join(world.work, "www", "shared.iso");
  copyFileSync(join(world.work, "www", "payload.iso"), iso);
  truncateSync(iso, SHARED_MIB << 20);
  const url = `https://localhost:${world.proxy.port}/shared.iso`;
  const bytes = SHARED_MIB << 20;
  const read = (socket: string) =>
    qemuImgArgs(world, 1 << 20, `driver=nbd,server.type=unix,server.path=${socket}`, bytes);
  console.log(
    `\nthe host's shared block cache: a ${SHARED_MIB} MiB ISO read whole (qemu-img bench, 1 MiB reads) by each VM, ` +
      `through a link of ${(LINK_BYTES_PER_SECOND * 8) / 1e6} Mbit/s at 100 ms:\n`,
  );
  console.log("| VM | from the ISO server, its start included | GETs | MB/s each |\n|---|---:|---:|---:|");
  const local = qemuImgBench(world, 1 << 20, `driver=file,filename=${iso}`, bytes);
  world.forgetSharedBlocks();
  try {
    for (const which of ["the first (cold cache)", "a second"]) {
      // Counted from before the VM's start: preflight's requests and the relay's probe are the VM's own cost.
      await world.proxy.set({ mode: "link", ms: 100, bytesPerSecond: LINK_BYTES_PER_SECOND });
      const [vm] = startRelays(world, url, 1);
      const seconds = await timedRead(read(vm.socket));
      const stats = await world.proxy.stats();
      console.log(
        `| ${which} | ${mb(stats.bodyBytes)} | ${stats.requests["GET range"] ?? 0} | ${
          (bytes / seconds / 1e6).toFixed(1)
        } |`,
      );
      world.runPoint("after_vm_destroy", vm.path);
    }
    await world.proxy.set({ mode: "link", ms: 100, bytesPerSecond: LINK_BYTES_PER_SECOND });
    const vms = startRelays(world, url, 20);
    const times = await Promise.all(vms.map((vm) => timedRead(read(vm.socket))));
    const stats = await world.proxy.stats();
    console.log(
      `| twenty at once (per VM) | ${mb(stats.bodyBytes / 20)} | ${
        ((stats.requests["GET range"] ?? 0) / 20).toFixed(1)
      } | ${(bytes / median(times) / 1e6).toFixed(1)} (median) |`,
    );
    for (const vm of vms) world.runPoint("after_vm_destroy", vm.path);
    console.log(`| the ISO's file on local disk (no relay) | | | ${(bytes / local / 1e6).toFixed(1)} |`);
  } finally {
    await world.proxy.set({ mode: "none" });
    world.forgetSharedBlocks();
    rmSync(iso, { force: true });
  }

  function mb(value: number): string {
    return value < 1e6 ? `${Math.round(value)} bytes` : `${(value / 1e6).toFixed(1)} MB`;
  }
}

/** `count` relays on `url`, started by the hook as VDSM would (preflight on). */
function startRelays(world: World, url: string, count: number): Array<{ path: string; socket: string }> {
  return Array.from({ length: count }, (_, i) => {
    const vm = world.spec(`bench-shared-${i}-${randomUUID().slice(0, 8)}`, "pc", "bios");
    const path = world.domainFile(vm);
    const hooked = world.runHook(path, url, world.defaults);
    if (hooked.status !== 0) throw new Error(hooked.stderr);
    return { path, socket: join(world.relayDirs.run, `${vm.uuid}.sock`) };
  });
}

/** Seconds a qemu-img bench took, run without blocking the event loop (twenty run at once). */
async function timedRead(command: string[]): Promise<number> {
  const [program, ...args] = command;
  const result = await runAsync(program, args, { timeoutMs: 600_000 });
  const seconds = /Run completed in ([\d.]+) seconds/.exec(result.stdout)?.[1];
  if (seconds === undefined) throw new Error(`qemu-img bench: ${result.stderr.trim()}`);
  return Number(seconds);
}

/** QEMU's curl driver on `url`, with the hook's direct-mode readahead and timeout. */
function curlImage(url: string): string {
  return `driver=https,url=${url},readahead=${DEFAULT_SETTINGS.readahead},timeout=${DEFAULT_SETTINGS.timeout}`;
}

/** Seconds qemu-img bench takes to read READ_BYTES of `image` in order, `size` bytes a read, with QEMU's trust. */
function qemuImgBench(world: World, size: number, image: string, bytes = READ_BYTES): number {
  const [program, ...args] = qemuImgArgs(world, size, image, bytes);
  const result = spawnSync(program, args, { encoding: "utf8" });
  const seconds = /Run completed in ([\d.]+) seconds/.exec(result.stdout)?.[1];
  if (seconds === undefined) throw new Error(`qemu-img bench ${image}: ${result.stderr.trim()}`);
  return Number(seconds);
}

/** The qemu-img bench command that reads `bytes` of `image` in order, `size` bytes a read, at queue depth 1. */
function qemuImgArgs(world: World, size: number, image: string, bytes: number): string[] {
  const count = String(bytes / size);
  return world.withQemuTrust(
    ["qemu-img", "bench", "--image-opts", "-c", count, "-s", String(size), "-S", String(size), "-d", "1", image],
  );
}

/**
 * The same boot with no network: QEMU (TCG, no libvirt) reads the payload ISO
 * from its file, then over NBD from nbdkit's file plugin, bare and with the
 * relay's filters. What NBD's round trip per guest read costs GRUB's 2 KiB
 * reads shows apart from the relay.
 */
async function nbdFloor(world: World): Promise<void> {
  const iso = join(world.work, "www", "payload.iso");
  const drive = (file: string) => ["-drive", `if=ide,index=2,media=cdrom,readonly=on,format=raw,${file}`];
  const nbd = (socket: string) => drive(`file.driver=nbd,file.server.type=unix,file.server.path=${socket}`);
  const rows: Array<[string, string[], string[] | undefined]> = [
    ["QEMU reads the ISO file", drive(`file=${iso}`), undefined],
    ["nbdkit's file plugin, over NBD", nbd(join(world.work, "floor-bare.sock")), ["file", iso]],
    [
      "nbdkit's file plugin with the relay's filters",
      nbd(join(world.work, "floor-filters.sock")),
      [
        ...RELAY_FILTERS.map((name) => `--filter=${name}`),
        "file",
        iso,
        "cache-on-read=true",
        `cache-min-block-size=${RELAY_CACHE_BLOCK_BYTES}`,
        `maxdata=${RELAY_CACHE_BLOCK_BYTES}`,
      ],
    ],
  ];
  console.log(`\nwhat NBD costs the same boot, without network or libvirt (QEMU under TCG, medians of ${REPEATS}):\n`);
  console.log("| the ISO, read by | boot to hash | × QEMU reading the file |\n|---|---:|---:|");
  let file = 0;
  for (const [name, args, server] of rows) {
    const socket = args.at(-1)!.split("file.server.path=")[1];
    const nbdkit = server &&
      spawn("nbdkit", ["--foreground", "--readonly", "--unix", socket, ...server], { stdio: "ignore" });
    // Its socket, 10 s at most: a fixed pause would time a boot against a server not yet there.
    for (let waited = 0; nbdkit && !existsSync(socket) && waited < 10_000; waited += 20) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const times = [];
    for (let i = 0; i < REPEATS; i++) times.push(await bootQemu(world, args));
    nbdkit?.kill();
    file ||= median(times);
    console.log(`| ${name} | ${(median(times) / 1000).toFixed(1)} s | ${(median(times) / file).toFixed(2)}× |`);
  }
  console.log(
    "\n(Every NBD route, the relay's included, pays the second row's cost over the first: the guard of the boots above " +
      "compares the relay with QEMU's curl, which reads from its own buffer with no such hop.)",
  );
}

/** Boots QEMU on the drive until the guest prints the payload's hash; milliseconds. */
function bootQemu(world: World, drive: string[]): Promise<number> {
  const serial = join(world.work, `floor-${randomUUID()}.log`);
  const began = Date.now();
  const qemu = spawn("qemu-system-x86_64", [
    "-machine",
    "pc",
    "-accel",
    "tcg",
    "-m",
    "128",
    "-display",
    "none",
    "-monitor",
    "none",
    "-nodefaults",
    "-serial",
    `file:${serial}`,
    "-boot",
    "d",
    ...drive,
  ], { stdio: "ignore" });
  return new Promise((resolve) => {
    const poll = setInterval(() => {
      let text = "";
      try {
        text = readFileSync(serial, "latin1");
      } catch { /* not yet */ }
      if (/[0-9a-f]{64}\s+\/payload\.bin/.test(text) || Date.now() - began > 120_000) {
        clearInterval(poll);
        qemu.kill();
        resolve(Date.now() - began);
      }
    }, 50);
  });
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}
