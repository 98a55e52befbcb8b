// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * A host that reaches ISO servers only through an HTTP proxy: a real
 * tinyproxy (Debian's), which logs every tunnel and asks for credentials,
 * in a mount namespace of its own whose /etc/hosts alone names the ISO
 * server. This process cannot resolve that name, so whatever reaches the
 * server went through the proxy. Preflight and the relay's front tunnel
 * with CONNECT, TLS end to end; every refusal is one line that names the
 * proxy and never its credentials. The same tinyproxy behind socat's TLS
 * listener is a proxy reached over https://, verified against the host's
 * trust store as the ISO server is.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { preflight } from "../../edge/preflight.ts";
import { type Front, startFront } from "../../edge/relay/front.ts";
import { ServerError } from "../../lib/errors.ts";
import { parseProxy } from "../../lib/proxy.ts";
import { RELAY_BLOCK_BYTES } from "../../lib/limits.ts";
import { parseIsoUrl } from "../../lib/url.ts";
import { ask, bodies, wholeFile } from "../support/front_peer.ts";
import { buildDataIso } from "../support/iso.ts";
import { freePort, type Nginx, startNginx, waitListening } from "../support/nginx.ts";
import { makeAuthority, makeServerCert } from "../support/tls.ts";
import { tempDir } from "../support/mod.ts";

const NAME = "isos.behind-proxy.test";
const SECRET = "s3cret-pass";

function missing(): string | undefined {
  if (process.getuid?.() !== 0) return "needs root: tinyproxy runs in a mount namespace of its own";
  for (const tool of ["tinyproxy", "socat", "nginx", "openssl", "unshare", "xorriso"]) {
    if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) {
      return `${tool} is not installed; npm test installs it`;
    }
  }
  return undefined;
}

describe("through an HTTP proxy (tinyproxy), the only way to the ISO server", { skip: missing() }, () => {
  // Removed in after(), once nginx has stopped: workDir()'s own after() would run first, and nginx could not be
  // found by its pid file to be stopped.
  const work = tempDir("tunnel");
  let nginx: Nginx | undefined;
  let proxy: ChildProcess | undefined;
  let proxyPort = 0;
  /** socat's TLS listeners in front of tinyproxy: one with a certificate of the host's CA, one of another CA. */
  const tlsProxies: ChildProcess[] = [];
  let httpsPort = 0;
  let untrustedPort = 0;
  let isoPort = 0;
  let ca: Uint8Array;
  let caFile = "";
  let iso: Buffer;
  const fronts: Front[] = [];
  const proxyLog = join(work, "tinyproxy.log");
  const url = () => parseIsoUrl(`https://${NAME}:${isoPort}/data.iso?sig=TOPSECRET`);
  const setting = (credentials = `hv:${SECRET}@`, scheme = "http", port = () => proxyPort) =>
    parseProxy(`${scheme}://${credentials}127.0.0.1:${port()}`, "test.conf line 1");
  const httpsSetting = (port = () => httpsPort) => setting(`hv:${SECRET}@`, "https", port);

  before(async () => {
    const authority = makeAuthority(work, "tunnel test CA");
    caFile = authority.cert;
    ca = readFileSync(caFile);
    const cert = makeServerCert(work, "iso", authority, { names: [`DNS:${NAME}`] });
    const www = join(work, "www");
    mkdirSync(www, { recursive: true });
    iso = readFileSync(buildDataIso(www, "data", Buffer.alloc(3 * RELAY_BLOCK_BYTES, 7)));
    isoPort = await freePort();
    nginx = startNginx(work, www, [{ port: isoPort, ...cert }]);
    proxyPort = await freePort();
    writeFileSync(join(work, "hosts"), `127.0.0.1 localhost\n127.0.0.1 ${NAME}\n`);
    writeFileSync(
      join(work, "tinyproxy.conf"),
      [
        `Port ${proxyPort}`,
        "Listen 127.0.0.1",
        "Timeout 30",
        `LogFile "${proxyLog}"`,
        "LogLevel Connect",
        "MaxClients 64",
        `ConnectPort ${isoPort}`,
        `BasicAuth hv ${SECRET}`,
        "",
      ].join("\n"),
    );
    proxy = spawn("unshare", [
      "-m",
      "sh",
      "-c",
      `mount --bind '${join(work, "hosts")}' /etc/hosts && exec tinyproxy -d -c '${join(work, "tinyproxy.conf")}'`,
    ], { stdio: "ignore" });
    assert.ok(await waitListening(proxyPort), "tinyproxy listens");
    const proxyCert = makeServerCert(work, "proxy", authority, { names: ["IP:127.0.0.1"] });
    const stranger = makeServerCert(work, "stranger", makeAuthority(work, "another CA"), { names: ["IP:127.0.0.1"] });
    [httpsPort, untrustedPort] = [await freePort(), await freePort()];
    for (const [port, cert] of [[httpsPort, proxyCert], [untrustedPort, stranger]] as const) {
      tlsProxies.push(
        spawn("socat", [
          `OPENSSL-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork,verify=0,cert=${cert.cert},key=${cert.key}`,
          `TCP:127.0.0.1:${proxyPort}`,
        ], { stdio: "ignore", detached: true }),
      );
      assert.ok(await waitListening(port), "socat listens");
    }
  });
  after(async () => {
    for (const front of fronts) await front.close();
    proxy?.kill("SIGTERM");
    // socat forks a child per connection: the whole group goes.
    for (const child of tlsProxies) if (child.pid) process.kill(-child.pid, "SIGTERM");
    nginx?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  const check = (proxySetting = setting()) =>
    preflight(url(), {
      timeoutMs: 10_000,
      caFile,
      allow: [],
      settingsFile: "test.conf",
      requireValidator: true,
      proxy: proxySetting,
    });
  /** Reads the whole ISO through a relay's front that reaches the server through `proxy`; the front's log. */
  async function readThroughFront(name: string, proxy: ReturnType<typeof setting>): Promise<string[]> {
    const path = join(work, `${name}.sock`);
    const log: string[] = [];
    fronts.push(
      await startFront(path, {
        url: url(),
        allow: [],
        settingsFile: "test.conf",
        timeoutMs: 10_000,
        ca,
        log: (line) => log.push(line),
        proxy,
      }),
    );
    const read = await ask(path, wholeFile(iso.length), 30_000);
    assert.equal(read.cut, false, log.join("\n"));
    assert.ok(bodies(read.raw).equals(iso));
    return log;
  }
  const tunnels = () =>
    readFileSync(proxyLog, "utf8").split("\n").filter((line) => line.includes(`CONNECT ${NAME}:${isoPort}`));

  test("without the proxy, this host cannot reach the ISO server at all", async () => {
    await assert.rejects(
      preflight(url(), { timeoutMs: 5_000, caFile, allow: [], settingsFile: "test.conf" }),
      (error: Error) => error instanceof ServerError && /is not found \(DNS\)/.test(error.message),
    );
  });

  test("preflight reaches the server through the proxy's tunnel, TLS verified end to end, the credentials sent to the proxy only", async () => {
    const before = tunnels().length;
    const report = await check();
    assert.equal(report.size, iso.length);
    assert.equal(report.format, "ISO 9660");
    assert.equal(report.issuer, "tunnel test CA");
    assert.ok(tunnels().length > before, "tinyproxy logged the tunnel");
    const served = readFileSync(nginx!.accessLog, "utf8");
    assert.match(served, /HEAD \/data\.iso/);
  });

  test("the relay's front reads the whole ISO through the proxy, and says nothing of its credentials", async () => {
    const before = tunnels().length;
    const log = await readThroughFront("front", setting());
    assert.ok(tunnels().length > before, "every connection is a tunnel");
    assert.ok(!log.join("\n").includes(SECRET));
  });

  test("a proxy that asks for credentials (407), refuses the port (403), or is not there: one line each, naming the proxy and never the password", async () => {
    const refusals: Array<[() => Promise<unknown>, RegExp]> = [
      [
        () => check(setting("")),
        /^the proxy http:\/\/127\.0\.0\.1:\d+ asks for credentials to reach isos\.behind-proxy\.test:\d+ \(407\)/,
      ],
      [() => check(setting("hv:wrong@")), /asks for credentials .*check the ones there/],
      [
        () =>
          preflight(parseIsoUrl(`https://${NAME}:22/data.iso`), {
            timeoutMs: 5_000,
            caFile,
            allow: [],
            settingsFile: "test.conf",
            proxy: setting(),
          }),
        /^the proxy http:\/\/127\.0\.0\.1:\d+ refuses tunnels to isos\.behind-proxy\.test:22 \(403\): its policy/,
      ],
      [
        () => check(parseProxy(`http://hv:${SECRET}@127.0.0.1:1`, "test.conf line 1")),
        /^the proxy http:\/\/127\.0\.0\.1:1 cannot be reached \(ECONNREFUSED\); check proxy in test\.conf/,
      ],
    ];
    for (const [attempt, words] of refusals) {
      await assert.rejects(attempt(), (error: Error) => {
        assert.ok(error instanceof ServerError, String(error));
        assert.match(error.message, words);
        assert.ok(!error.message.includes(SECRET) && !error.message.includes("wrong"), error.message);
        return true;
      });
    }
  });

  test("a proxy reached over https://: preflight and the front go through it, its certificate verified too", async () => {
    const before = tunnels().length;
    const report = await check(httpsSetting());
    assert.equal(report.size, iso.length);
    assert.equal(report.issuer, "tunnel test CA", "the ISO server's certificate, checked inside the tunnel");
    await readThroughFront("front-https", httpsSetting());
    assert.ok(tunnels().length > before + 1, "tinyproxy, behind the TLS listener, logged the tunnels");
  });

  test("a proxy reached over https:// whose certificate the host does not trust: one line, and no CONNECT is sent", async () => {
    const before = tunnels().length;
    await assert.rejects(check(httpsSetting(() => untrustedPort)), (error: Error) => {
      assert.ok(error instanceof ServerError, String(error));
      assert.match(error.message, /^the proxy https:\/\/127\.0\.0\.1:\d+ has a certificate this host does not trust/);
      assert.ok(!error.message.includes(SECRET), error.message);
      return true;
    });
    assert.equal(tunnels().length, before, "the credentials and the CONNECT never left this host");
  });
});
