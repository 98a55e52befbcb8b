// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * Preflight against a real nginx on loopback with a CA made for the run:
 * every way a server can fail QEMU gets its own line, before any VM starts.
 * Runs where nginx and openssl are installed (npm test installs them as root).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { createServer as createHttpsServer, type Server as HttpsServer } from "node:https";
import { join } from "node:path";
import process from "node:process";
import { preflight } from "../../edge/preflight.ts";
import { systemTrustBundle } from "../../edge/http/trust.ts";
import { parseIsoUrl } from "../../lib/url.ts";
import { buildBiosIso } from "../support/iso.ts";
import { freePort, type Nginx, startNginx } from "../support/nginx.ts";
import { makeAuthority, makeServerCert } from "../support/tls.ts";
import { BINARY, readFixture, settingsFiles, tempDir } from "../support/mod.ts";

function missing(): string | undefined {
  for (const tool of ["nginx", "openssl", "xorriso"]) {
    if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) {
      return `${tool} is not installed; npm test installs it as root`;
    }
  }
  if (!existsSync("/usr/lib/ISOLINUX/isolinux.bin") && !existsSync("/usr/share/syslinux/isolinux.bin")) {
    return "isolinux is not installed";
  }
  return undefined;
}

let work = "";
/** An empty settings file: every default, preflight on. */
let DEFAULTS = "";
let nginx: Nginx | undefined;
let ca = "";
let stall: Server | undefined;
let sizeless: HttpsServer | undefined;
let compressing: HttpsServer | undefined;
let unversioned: HttpsServer | undefined;
const port = {
  good: 0,
  noRanges: 0,
  untrusted: 0,
  closed: 0,
  stall: 0,
  sizeless: 0,
  noKeepalive: 0,
  noEtag: 0,
  unversioned: 0,
  compressing: 0,
};
const url = (p: number, path: string) => `https://localhost:${p}${path}`;

describe("preflight()", { skip: missing() }, () => {
  before(async () => {
    work = tempDir("preflight");
    DEFAULTS = settingsFiles(work).direct;
    const www = join(work, "www");
    mkdirSync(www, { mode: 0o755 });
    buildBiosIso(www, "boot", "PREFLIGHT");
    writeFileSync(join(www, "small.iso"), "not an iso\n");
    writeFileSync(join(www, "big.iso"), new Uint8Array(100_000).fill(0x41));
    const authority = makeAuthority(work, "preflight test CA");
    const rogue = makeAuthority(work, "untrusted test CA");
    ca = authority.cert;
    for (const key of Object.keys(port) as Array<keyof typeof port>) {
      port[key] = await freePort();
    }
    const routes = `
    location = /moved.iso { return 302 /boot.iso; }
    location = /to-http.iso { return 302 http://localhost:${port.good}/boot.iso; }
    location = /loop.iso { return 302 /loop.iso; }
    location = /secret.iso { return 403; }
    location = /broken.iso { return 500; }`;
    nginx = startNginx(work, www, [
      { port: port.good, ...makeServerCert(work, "good", authority), extra: routes },
      { port: port.noRanges, ...makeServerCert(work, "noranges", authority), extra: "max_ranges 0;" },
      { port: port.untrusted, ...makeServerCert(work, "untrusted", rogue) },
      { port: port.noKeepalive, ...makeServerCert(work, "nokeepalive", authority), extra: "keepalive_timeout 0;" },
      { port: port.noEtag, ...makeServerCert(work, "noetag", authority), extra: "etag off;" },
    ]);
    // A server that serves the ISO's ranges well but names no version of it: no ETag, no Last-Modified.
    const iso = readFileSync(join(www, "boot.iso"));
    const unversionedCert = makeServerCert(work, "unversioned", authority);
    unversioned = createHttpsServer(
      { key: readFileSync(unversionedCert.key), cert: readFileSync(unversionedCert.cert) },
      (request, response) => {
        const range = /^bytes=(\d+)-(\d+)$/.exec(request.headers.range ?? "");
        if (!range) {
          response.writeHead(200, { "Accept-Ranges": "bytes", "Content-Length": iso.length });
          return void response.end();
        }
        const [start, end] = [Number(range[1]), Math.min(Number(range[2]), iso.length - 1)];
        response.writeHead(206, {
          "Content-Range": `bytes ${start}-${end}/${iso.length}`,
          "Content-Length": end - start + 1,
        });
        response.end(iso.subarray(start, end + 1));
      },
    ).listen(port.unversioned, "127.0.0.1");
    // A server that accepts connections and never answers.
    stall = createServer(() => {}).listen(port.stall, "127.0.0.1");
    // A server that offers ranges but reports no size, which nginx never does.
    const sizelessCert = makeServerCert(work, "sizeless", authority);
    sizeless = createHttpsServer(
      { key: readFileSync(sizelessCert.key), cert: readFileSync(sizelessCert.cert) },
      (_, response) => {
        response.writeHead(200, { "Accept-Ranges": "bytes", "Transfer-Encoding": "chunked" });
        response.end();
      },
    ).listen(port.sizeless, "127.0.0.1");
    // A server that compresses whatever it sends, as Apache's force-gzip does: no Content-Length, no ranges of the ISO.
    const compressingCert = makeServerCert(work, "compressing", authority);
    compressing = createHttpsServer(
      { key: readFileSync(compressingCert.key), cert: readFileSync(compressingCert.cert) },
      (_, response) => {
        response.writeHead(200, {
          "Content-Encoding": "gzip",
          "Transfer-Encoding": "chunked",
          Vary: "Accept-Encoding",
        });
        response.end();
      },
    ).listen(port.compressing, "127.0.0.1");
  });

  after(() => {
    nginx?.stop();
    stall?.close();
    sizeless?.close();
    compressing?.close();
    unversioned?.close();
    rmSync(work, { recursive: true, force: true });
  });

  const check = (target: string, timeoutMs = 5000, requireValidator = false) =>
    preflight(parseIsoUrl(target), { timeoutMs, caFile: ca, allow: [], settingsFile: "test.conf", requireValidator });

  test("preflight() reports size, issuer, format, label and the file's strong ETag of a good ISO", async () => {
    const { validator, ...report } = await check(url(port.good, "/boot.iso"));
    assert.equal(validator?.header, "etag");
    assert.match(validator!.value, /^"[0-9a-f]+-[0-9a-f]+"$/, "nginx's ETag: mtime and size in hex");
    assert.deepEqual(report, {
      finalUrl: `https://localhost:${port.good}/boot.iso`,
      at: `localhost:${port.good}\n/boot.iso`,
      redirects: 0,
      size: readFileSync(join(work, "www", "boot.iso")).length,
      issuer: "preflight test CA",
      format: "ISO 9660",
      label: "boot",
    });
  });

  /**
   * This run's HEAD and GET lines in the access log: the newest HEAD, and the
   * GET on that connection or a later one. nginx logs a request when it is
   * done with it, which can be after preflight has hung up, and out of order.
   */
  const headAndGet = async (forPort: number) => {
    for (let waited = 0;; waited += 50) {
      const fields = readFileSync(nginx!.accessLog, "utf8").trim().split("\n")
        .filter((line) => line.startsWith(`${forPort} `)).map((line) => line.split(" "));
      const head = fields.findLast((field) => field[2] === "HEAD");
      const get = head && fields.findLast((field) => field[2] === "GET" && Number(field.at(-1)) >= Number(head.at(-1)));
      if (head && get) return { head, get };
      if (waited > 5000) throw new Error(`no HEAD and GET in the access log for port ${forPort}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };

  test("preflight() takes Last-Modified as the version of a file served without an ETag", async () => {
    const { validator } = await check(url(port.noEtag, "/boot.iso"), 5000, true);
    assert.equal(validator?.header, "last-modified");
    assert.ok(!Number.isNaN(Date.parse(validator!.value)));
  });

  test("preflight() in relay mode refuses, with one line, a server that names no version of the file", async () => {
    await assert.rejects(check(url(port.unversioned, "/boot.iso"), 5000, true), (error: Error) => {
      assert.match(error.message, /sends no strong ETag or Last-Modified, so the relay cannot prove/);
      assert.ok(!error.message.includes("\n"));
      return true;
    });
    const direct = await check(url(port.unversioned, "/boot.iso"), 5000, false);
    assert.equal(direct.validator, undefined, "QEMU's curl (relay = off) never checks it, so preflight does not ask");
  });

  test("preflight() asks HEAD and the ranged GET over one TLS connection", async () => {
    await check(url(port.good, "/boot.iso"));
    const { head, get } = await headAndGet(port.good);
    assert.deepEqual([head[1], head[2], get[1], get[2], get[4]], ["200", "HEAD", "206", "GET", '"bytes=0-34815"']);
    assert.equal(head.at(-1), get.at(-1), "the same nginx connection number");
  });

  test("preflight() asks again on a second connection when the server closes after the HEAD", async () => {
    const report = await check(url(port.noKeepalive, "/boot.iso"));
    assert.equal(report.format, "ISO 9660");
    const { head, get } = await headAndGet(port.noKeepalive);
    assert.deepEqual([head[2], get[1]], ["HEAD", "206"]);
    assert.notEqual(head.at(-1), get.at(-1));
  });

  test("preflight() follows a redirect and reports the final URL without query values", async () => {
    const report = await check(url(port.good, "/moved.iso?sig=TOPSECRET"));
    assert.equal(report.redirects, 1);
    assert.equal(report.finalUrl, `https://localhost:${port.good}/boot.iso`);
  });

  /** [what, URL path and port, words] */
  const REFUSALS: Array<[string, () => string, RegExp]> = [
    ["a 404", () => url(port.good, "/missing.iso"), /answered HTTP 404 to HEAD: the ISO is not at that path/],
    ["a 403", () => url(port.good, "/secret.iso"), /answered HTTP 403 to HEAD: the server refuses access/],
    ["a 500", () => url(port.good, "/broken.iso"), /answered HTTP 500 to HEAD: the server failed/],
    [
      "a file that is not an ISO",
      () => url(port.good, "/big.iso"),
      /does not serve an ISO image: no ISO 9660 or UDF volume descriptor/,
    ],
    [
      "a file too small to be an ISO",
      () => url(port.good, "/small.iso"),
      /does not serve an ISO image: the file \(11 bytes\) ends before/,
    ],
    [
      "a server without byte ranges",
      () => url(port.noRanges, "/boot.iso"),
      /cannot serve byte ranges: it answers a ranged GET with the whole file \(as Python's http\.server does/,
    ],
    [
      "a server that reports no size",
      () => url(port.sizeless, "/boot.iso"),
      /reports no file size \(Content-Length\); QEMU refuses such a server/,
    ],
    [
      "a server that compresses the ISO (Apache's force-gzip)",
      () => url(port.compressing, "/boot.iso"),
      /compresses what it sends \(Content-Encoding: gzip\), so it gives no file size and no byte ranges of the ISO itself; turn compression off for \.iso files/,
    ],
    [
      "an untrusted certificate, naming its issuer",
      () => url(port.untrusted, "/boot.iso"),
      /is not trusted by this host \(.*issuer CN=untrusted test CA\); add the issuing CA to the system trust store/,
    ],
    [
      "a server that is down",
      () => url(port.closed, "/boot.iso"),
      /refused the connection; check that the ISO server is running/,
    ],
    [
      "an unknown host",
      () => "https://no-such-host.invalid/boot.iso",
      /host no-such-host.invalid is not found \(DNS\)/,
    ],
    [
      "a redirect to http",
      () => url(port.good, "/to-http.iso"),
      /redirects \(HTTP 302\) to an http:\/\/ URL, and the ISO is read over https only: make the server redirect to https/,
    ],
    ["a redirect loop", () => url(port.good, "/loop.iso"), /redirects more than 5 times/],
  ];
  for (const [what, target, words] of REFUSALS) {
    test(`preflight() refuses ${what} with one line`, async () => {
      await assert.rejects(check(target()), (error: Error) => {
        assert.match(error.message, words);
        assert.ok(!error.message.includes("\n"));
        return true;
      });
    });
  }

  test("preflight() gives up at its time limit on a server that never answers", async () => {
    const started = Date.now();
    await assert.rejects(check(url(port.stall, "/boot.iso"), 1000), /did not answer within 1 s \(preflight_timeout\)/);
    assert.ok(Date.now() - started < 3000);
  });

  test("preflight() verifies against the system trust store, which does not hold the test CA", async () => {
    const options = { timeoutMs: 5000, allow: [], settingsFile: "test.conf" };
    await assert.rejects(preflight(parseIsoUrl(url(port.good, "/boot.iso")), options), /is not trusted by this host/);
    assert.ok(existsSync(systemTrustBundle()));
  });

  test("the hook reports a malformed domain as such, even when the server is down", {
    skip: existsSync(BINARY) ? undefined : `${BINARY} is not built`,
  }, () => {
    const path = join(work, "broken.xml");
    writeFileSync(path, "<domain><devices></domain>");
    const result = spawnSync(BINARY, [], {
      encoding: "utf8",
      env: {
        _hook_domxml: path,
        httpsisoboot: url(port.closed, "/boot.iso"),
        HTTPSISOBOOT_CONFIG: DEFAULTS,
      },
    });
    assert.equal(result.status, 2);
    assert.match(result.stderr, /does not close <devices>/);
  });

  test("the hook refuses an untrusted server before the VM starts: exit 2, the file byte-identical", {
    skip: existsSync(BINARY) ? undefined : `${BINARY} is not built`,
  }, () => {
    const path = join(work, "domxml");
    const xml = readFixture("q35-vdsm.in.xml");
    writeFileSync(path, xml);
    const result = spawnSync(BINARY, [], {
      encoding: "utf8",
      env: {
        _hook_domxml: path,
        httpsisoboot: url(port.untrusted, "/boot.iso?token=TOPSECRET"),
        HTTPSISOBOOT_CONFIG: DEFAULTS,
      },
    });
    assert.equal(result.status, 2);
    assert.match(result.stderr, /^httpsisoboot: the certificate of localhost:\d+ is not trusted by this host[^\n]*\n$/);
    assert.ok(!result.stderr.includes("TOPSECRET"));
    assert.equal(readFileSync(path, "utf8"), xml);
  });

  test("--check and the hook, with the test CA trusted in a private mount namespace", {
    skip: !existsSync(BINARY)
      ? `${BINARY} is not built`
      : process.getuid?.() !== 0
      ? "needs root to bind-mount a trust bundle in a private mount namespace"
      : undefined,
  }, () => {
    const bundle = join(work, "bundle.crt");
    writeFileSync(bundle, readFileSync(systemTrustBundle(), "utf8") + "\n" + readFileSync(ca, "utf8"));
    const trusted = (...command: string[]) =>
      spawnSync("unshare", [
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        `mount --bind '${bundle}' '${systemTrustBundle()}' && exec "$@"`,
        "sh",
        ...command,
      ], {
        encoding: "utf8",
        env: {
          HTTPSISOBOOT_CONFIG: DEFAULTS,
          _hook_domxml: join(work, "ok.xml"),
          httpsisoboot: url(port.good, "/moved.iso"),
        },
      });
    const checked = trusted(BINARY, "--check", url(port.good, "/moved.iso?sig=TOPSECRET"));
    assert.equal(checked.status, 0, checked.stderr);
    assert.equal(
      checked.stdout,
      [
        `url: https://localhost:${port.good}/boot.iso (after 1 redirect)`,
        "tls: trusted by this host, issuer CN=preflight test CA",
        `size: ${readFileSync(join(work, "www", "boot.iso")).length} bytes`,
        "byte ranges: yes",
        "image: ISO 9660, volume label 'boot'",
        "relay: off: QEMU's curl driver reads the ISO, without retries",
        "qemu curl driver: /usr/lib/x86_64-linux-gnu/qemu/block-curl.so",
        `warning: allow is not set in ${DEFAULTS}, so any server is allowed: any user who may start a VM can make ` +
        "this host connect to any host and port; set allow to your ISO servers",
        "",
      ].join("\n"),
    );
    // A signed URL's expiry, read from its query: S3's date and lifetime.
    const signedAt = new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
    const signed = trusted(
      BINARY,
      "--check",
      url(port.good, `/boot.iso?X-Amz-Date=${signedAt}&X-Amz-Expires=7200&X-Amz-Signature=x`),
    );
    assert.equal(signed.status, 0, signed.stderr);
    assert.match(
      signed.stdout,
      /\nsigned URL: expires \S+Z \(S3: x-amz-date \+ x-amz-expires\), in (1 h 59 min|2 h); migration and resume/,
    );
    writeFileSync(join(work, "ok.xml"), readFixture("q35-vdsm.in.xml"));
    const hooked = trusted(BINARY);
    assert.equal(hooked.status, 0, hooked.stderr);
    assert.match(readFileSync(join(work, "ok.xml"), "utf8"), /<source protocol="https" name="\/moved.iso">/);
  });
});
