// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * Preflight: asks the ISO server, before the VM starts, the questions QEMU's
 * curl driver will ask, so that a bad server stops the VM with a clear line
 * instead of a libvirt error or a guest that sees I/O errors.
 *
 * - TLS is verified against the host's system trust store (trust.ts), host
 *   name included, before a byte of the request is sent: a signed URL's query
 *   is a credential.
 * - HEAD, as QEMU does: it refuses a server without `Accept-Ranges: bytes`
 *   or without a `Content-Length`.
 * - A ranged GET of the 2,048 bytes at 32,768: an ISO 9660 or UDF volume
 *   descriptor (iso9660.ts). Both requests go over one connection
 *   (pipelined); a server that closes after the HEAD gets the GET on a second.
 * - Redirects are followed to https only, MAX_REDIRECTS at most, and each
 *   target must pass the same URL rules and the host's `allow` setting.
 * - One time limit for everything; and only the HTTP status and the
 *   certificate issuer's name, from all the server sends, reach a message.
 *
 * This module does network I/O; `hook.ts` loads it only when it runs.
 *
 * @module
 */
import { proxyFor } from "../lib/proxy.ts";
import { blockSource } from "../lib/relay/shared.ts";
import { readFileSync } from "node:fs";

import { printable, ServerError } from "../lib/errors.ts";

import { DESCRIPTOR_BYTES, DESCRIPTOR_OFFSET, MAX_REDIRECTS } from "../lib/limits.ts";

import { type IsoUrl } from "../lib/url.ts";

import { exchange } from "./http/client.ts";

import { type Request, type Response } from "../lib/http/response.ts";

import { readVolumeDescriptor } from "../lib/preflight/iso9660.ts";

import { systemTrustBundle } from "./http/trust.ts";

import { type Validator, validatorOf } from "../lib/relay/http.ts";

import { redirectTarget } from "../lib/redirect.ts";

import type { PreflightOptions, ServerReport } from "../lib/preflight/report.ts";

export type { PreflightOptions, ServerReport };

/**
 * The first bytes of the file up to the end of the first volume descriptor:
 * the same request the relay makes first (upstream.ts's PROBE), so the relay
 * asks the server only in shapes preflight has seen answered.
 */
const PROBE_BYTES = DESCRIPTOR_OFFSET + DESCRIPTOR_BYTES;

const HEAD: Request = { method: "HEAD" };

const GET_PROBE: Request = { method: "GET", range: `bytes=0-${PROBE_BYTES - 1}`, bodyBytes: PROBE_BYTES };

/** HEAD's answers from a server that serves GET but refuses HEAD: S3 to a URL signed for GET, or HEAD not allowed. */
const HEAD_REFUSED = new Set([403, 405, 501]);

/**
 * Checks that `url` serves an ISO image the way QEMU needs it.
 *
 * @param url The URL, already checked by parseIsoUrl and the allowlist.
 * @param options The time limit, the allowlist and, for tests, the trust bundle.
 * @returns What the server told.
 * @throws {ServerError} With one line that says what is wrong and what to do.
 * @throws {PolicyError} If a redirect leads to a server `allow` does not name.
 */
export async function preflight(url: IsoUrl, options: PreflightOptions): Promise<ServerReport> {
  const ca = readFileSync(options.caFile ?? systemTrustBundle());
  const deadline = Date.now() + options.timeoutMs;
  const limit = `${Math.round(options.timeoutMs / 100) / 10} s`;
  let current = url;
  for (let redirects = 0;; redirects++) {
    const route = {
      ca,
      deadline,
      limit,
      proxy: proxyFor(current, options.proxy, options.noProxy ?? []),
      settingsFile: options.settingsFile,
    };
    const { responses: [head, pipelined], issuer } = await exchange(current, [HEAD, GET_PROBE], route);
    if (!head) {
      throw new ServerError(`${url.redacted}: the server closed the connection without answering; check its error log`);
    }
    const where = redirects === 0 ? url.redacted : `${url.redacted} (after ${redirects} redirects)`;
    if (head.status >= 300 && head.status < 400 && head.headers.has("location")) {
      if (redirects === MAX_REDIRECTS) {
        throw new ServerError(`${url.redacted} redirects more than ${MAX_REDIRECTS} times; give the VM the final URL`);
      }
      current = redirectTarget(head.headers.get("location")!, current, {
        ...options,
        where,
        status: head.status,
      });
      continue;
    }
    const ranged = pipelined ?? (await exchange(current, [GET_PROBE], route)).responses[0];
    const getOnly = HEAD_REFUSED.has(head.status) && ranged?.status === 206;
    if (getOnly && options.needsHead) {
      throw new ServerError(
        `${where} answers HEAD with HTTP ${head.status} but serves a ranged GET, as a URL signed for GET only does ` +
          `(S3's presigned URLs): QEMU's curl driver asks HEAD, so set relay = nbdkit, whose relay does not`,
      );
    }
    const answer = getOnly ? ranged! : head;
    const size = getOnly ? sizeOfPart(ranged!, where) : checkHead(head, ranged, where);
    const validator = checkValidator(answer, where, options.requireValidator ?? false);
    const volume = checkDescriptor(ranged, size, where);
    if (options.requireValidator && validator && ranged!.headers.get(validator.header) !== validator.value) {
      throw new ServerError(
        `${where} changed the ISO during preflight (the ${validator.header === "etag" ? "ETag" : "Last-Modified"} ` +
          `of its byte range is not the HEAD's); start the VM again once the file on the server is final`,
      );
    }
    return {
      finalUrl: current.redacted,
      at: blockSource(current),
      redirects,
      size,
      issuer,
      ...volume,
      validator,
      ...(getOnly && { headRefused: head.status }),
    };
  }
}

/** The size, from a HEAD answer QEMU would accept; `ranged` tells why a server offers no ranges. */
function checkHead(head: Response, ranged: Response | undefined, where: string): number {
  if (head.status !== 200) {
    throw new ServerError(`${where} answered HTTP ${head.status} to HEAD${statusHint(head.status)}`);
  }
  const length = head.headers.get("content-length") ?? "";
  const size = Number(length);
  const encoding = head.headers.get("content-encoding");
  if (length === "" && encoding !== undefined && !/^identity$/i.test(encoding)) {
    throw new ServerError(
      `${where} compresses what it sends (Content-Encoding: ${
        printable(encoding, 20)
      }), so it gives no file size and ` +
        `no byte ranges of the ISO itself; turn compression off for .iso files (Apache: no force-gzip, or ` +
        `SetEnvIfNoCase Request_URI \\.iso$ no-gzip)`,
    );
  }
  if (!/^[0-9]{1,16}$/.test(length) || !Number.isSafeInteger(size) || size <= 0) {
    throw new ServerError(`${where} reports no file size (Content-Length); QEMU refuses such a server`);
  }
  if (ranged?.status === 200) {
    throw new ServerError(
      `${where} cannot serve byte ranges: it answers a ranged GET with the whole file (as Python's http.server ` +
        `does, or a server with range requests turned off); serve the ISO with nginx, Apache, lighttpd or caddy, ` +
        `range requests on`,
    );
  }
  if (!/\bbytes\b/.test(head.headers.get("accept-ranges") ?? "")) {
    throw new ServerError(
      `${where} does not offer byte ranges (Accept-Ranges: bytes); QEMU needs them, so enable range requests on the server`,
    );
  }
  return size;
}

/** The size a 206 names in its Content-Range (`bytes 0-34815/SIZE`), for a server that refuses HEAD. */
function sizeOfPart(ranged: Response, where: string): number {
  const total = /^bytes [0-9]+-[0-9]+\/([0-9]{1,16})$/.exec(ranged.headers.get("content-range") ?? "")?.[1];
  const size = Number(total);
  if (total === undefined || !Number.isSafeInteger(size) || size <= 0) {
    throw new ServerError(`${where} refuses HEAD and names no file size in its Content-Range; QEMU cannot read it`);
  }
  return size;
}

/**
 * The file's validator. The relay refuses every answer that does not carry
 * it, so a server that sends none is refused now, before the VM starts.
 */
function checkValidator(head: Response, where: string, required: boolean): Validator | undefined {
  const validator = validatorOf(head.headers);
  if (!validator && required) {
    throw new ServerError(
      `${where} sends no strong ETag or Last-Modified, so the relay cannot prove that every part it reads is of ` +
        `the same file; serve the ISO as a static file (nginx and Apache send both), or set relay = off`,
    );
  }
  return validator;
}

function checkDescriptor(ranged: Response | undefined, size: number, where: string): { format: string; label: string } {
  if (!ranged) {
    throw new ServerError(`${where}: the server closed the connection before answering a byte-range request`);
  }
  if (ranged.status === 416 || (ranged.status === 206 && size < PROBE_BYTES)) {
    throw new ServerError(
      `${where} does not serve an ISO image: the file (${size} bytes) ends before the volume descriptors at byte 32768`,
    );
  }
  if (ranged.status === 200) {
    throw new ServerError(
      `${where} ignored a byte-range request (answered 200, not 206); enable range requests on the server`,
    );
  }
  if (ranged.status !== 206) {
    throw new ServerError(
      `${where} answered HTTP ${ranged.status} to a byte-range request${statusHint(ranged.status)}`,
    );
  }
  const volume = readVolumeDescriptor(ranged.body.subarray(DESCRIPTOR_OFFSET));
  if (!volume) {
    throw new ServerError(`${where} does not serve an ISO image: no ISO 9660 or UDF volume descriptor at byte 32768`);
  }
  return volume;
}

function statusHint(status: number): string {
  if (status === 404) return ": the ISO is not at that path; check the URL";
  if (status === 401 || status === 403) {
    return ": the server refuses access; check the URL's signature or the server's permissions";
  }
  if (status >= 500) return ": the server failed; check its error log";
  return "";
}
