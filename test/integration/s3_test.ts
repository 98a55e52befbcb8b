// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * An S3 presigned URL, signed for GET: s3rver (from npm, in a Node process of
 * its own: test/support/s3rver.mjs) over TLS checks
 * the method of SigV2 presigned URLs as S3 does, so HEAD is refused with
 * 403 while a ranged GET is answered. Preflight learns the size from the
 * ranged GET, and the relay's front never asks HEAD; with relay = off,
 * whose QEMU curl asks HEAD, preflight says so in one line.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdirSync, readFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { join } from "node:path";
import { preflight } from "../../edge/preflight.ts";
import { type Front, startFront } from "../../edge/relay/front.ts";
import { ServerError } from "../../lib/errors.ts";
import { RELAY_BLOCK_BYTES } from "../../lib/limits.ts";
import { parseIsoUrl } from "../../lib/url.ts";
import { ask, bodies, wholeFile } from "../support/front_peer.ts";
import { buildDataIso } from "../support/iso.ts";
import { freePort } from "../support/nginx.ts";
import { makeAuthority, makeServerCert } from "../support/tls.ts";
import { ROOT, workDir } from "../support/mod.ts";

const missing = ["openssl", "xorriso"].find((tool) => spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0);

/** s3rver's own account: its default access key and secret. */
const ACCESS_KEY = "S3RVER";

describe(
  "an S3 presigned URL, signed for GET (s3rver, SigV2)",
  { skip: missing && `${missing} is not installed` },
  () => {
    const work = workDir("s3");
    let s3: ChildProcess | undefined;
    let port = 0;
    let caFile = "";
    let iso: Buffer;
    const fronts: Front[] = [];

    before(async () => {
      const authority = makeAuthority(work, "s3 test CA");
      caFile = authority.cert;
      const cert = makeServerCert(work, "s3", authority);
      const www = join(work, "www");
      mkdirSync(www, { recursive: true });
      iso = readFileSync(buildDataIso(www, "data", Buffer.alloc(2 * RELAY_BLOCK_BYTES + 12345, 3)));
      port = await freePort();
      s3 = spawn(
        "node",
        [join(ROOT, "test", "support", "s3rver.mjs"), String(port), join(work, "buckets"), cert.cert, cert.key, "isos"],
        { stdio: ["ignore", "pipe", "inherit"] },
      );
      await new Promise<void>((resolve, reject) => {
        s3!.stdout!.once("data", () => resolve());
        s3!.once("exit", (code) => reject(new Error(`s3rver exited ${code}`)));
      });
      // An anonymous PUT: s3rver's buckets take one, which S3's would not.
      await new Promise<void>((resolve, reject) => {
        const put = httpsRequest({
          host: "127.0.0.1",
          port,
          method: "PUT",
          path: "/isos/el9/boot.iso",
          ca: readFileSync(caFile),
          headers: { "Content-Length": iso.length, "Content-Type": "application/octet-stream" },
        }, (response) => {
          response.resume();
          response.statusCode === 200 ? resolve() : reject(new Error(`PUT: ${response.statusCode}`));
        });
        put.on("error", reject);
        put.end(iso);
      });
    });
    after(async () => {
      for (const front of fronts) await front.close();
      s3?.kill("SIGTERM");
    });

    /** A SigV2 presigned URL for GET, as S3 makes them: the method is part of what is signed. */
    function presigned(path: string, lifeSeconds = 3600): string {
      const expires = Math.floor(Date.now() / 1000) + lifeSeconds;
      const signature = createHmac("sha1", ACCESS_KEY).update(`GET\n\n\n${expires}\n${path}`).digest("base64");
      return `https://localhost:${port}${path}?AWSAccessKeyId=${ACCESS_KEY}&Expires=${expires}&Signature=${
        encodeURIComponent(signature)
      }`;
    }

    const check = (url: string, options: { needsHead?: boolean } = {}) =>
      preflight(parseIsoUrl(url), {
        timeoutMs: 10_000,
        caFile,
        allow: [],
        settingsFile: "test.conf",
        requireValidator: !options.needsHead,
        ...options,
      });

    test("preflight takes a URL whose HEAD S3 refuses (403) but whose ranged GET it answers, and learns the size from Content-Range", async () => {
      const report = await check(presigned("/isos/el9/boot.iso"));
      assert.equal(report.headRefused, 403, "s3rver refuses HEAD to a URL signed for GET");
      assert.equal(report.size, iso.length);
      assert.equal(report.format, "ISO 9660");
      assert.equal(report.validator?.header, "etag");
    });

    test("with relay = off, whose QEMU curl asks HEAD, preflight refuses it in one line that says why", async () => {
      await assert.rejects(check(presigned("/isos/el9/boot.iso"), { needsHead: true }), (error: Error) => {
        assert.ok(error instanceof ServerError);
        assert.match(
          error.message,
          /answers HEAD with HTTP 403 but serves a ranged GET, as a URL signed for GET only does \(S3's presigned URLs\): QEMU's curl driver asks HEAD, so set relay = nbdkit/,
        );
        assert.match(error.message, /Signature=\*\*\*/, "the signature is shown as ***");
        return true;
      });
    });

    test("a URL whose signature is wrong is refused with the signature named, not the method", async () => {
      const forged = presigned("/isos/el9/boot.iso").replace(/Signature=[^&]*/, "Signature=forged");
      await assert.rejects(
        check(forged),
        /answered HTTP 403 to HEAD: the server refuses access; check the URL's signature/,
      );
    });

    test("the relay's front reads the whole ISO through the presigned URL without a HEAD, and nbdkit's size question is answered", async () => {
      const path = join(work, "front.sock");
      const log: string[] = [];
      fronts.push(
        await startFront(path, {
          url: parseIsoUrl(presigned("/isos/el9/boot.iso")),
          allow: [],
          settingsFile: "test.conf",
          timeoutMs: 10_000,
          ca: readFileSync(caFile),
          log: (line) => log.push(line),
        }),
      );
      const size = await ask(path, ["HEAD /iso HTTP/1.1"]);
      assert.match(size.raw.toString("latin1"), new RegExp(`^HTTP/1\\.1 200 OK\r\nContent-Length: ${iso.length}\r\n`));
      const read = await ask(path, wholeFile(iso.length), 30_000);
      assert.equal(read.cut, false, log.join("\n"));
      assert.ok(bodies(read.raw).equals(iso));
      assert.deepEqual(log, [], "nothing refused, nothing retried");
    });
  },
);
