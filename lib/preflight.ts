/**
 * Preflight: asks the ISO server, before the VM starts, the questions QEMU's
 * curl driver will ask, so that a bad server stops the VM with a clear line
 * instead of a libvirt error or a guest that sees I/O errors.
 *
 * - TLS is verified against the host's system trust store, which is what
 *   QEMU's GnuTLS uses, never the runtime's bundled roots. Verification,
 *   host name included, happens before a byte of the request is sent: a
 *   signed URL's query is a credential.
 * - HEAD, as QEMU does: it refuses a server without `Accept-Ranges: bytes`
 *   or without a `Content-Length`.
 * - A ranged GET of bytes 32768-34815, the volume descriptors: `CD001`
 *   (ISO 9660) or `BEA01` (UDF) at offset 1, or it is not an ISO image.
 *   Both requests go over one TLS connection (pipelined); a server that
 *   closes after the HEAD gets the GET on a second one.
 * - Redirects are followed as QEMU follows them, to https only, five at most.
 * - One time limit for everything.
 *
 * This module does network I/O; `hook.ts` loads it only when it runs.
 *
 * @module
 */
import { connect, type TLSSocket } from "node:tls";
import { existsSync, readFileSync } from "node:fs";
import { Buffer } from "node:buffer";
import { parseIsoUrl } from "./url.ts";

/** System trust bundles: EL's, then Debian's. */
export const TRUST_BUNDLES = ["/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/certs/ca-certificates.crt"];
const DESCRIPTOR_RANGE = "bytes=32768-34815";
const MAX_REDIRECTS = 5;

/** What preflight found. */
export interface ServerReport {
  /** The URL after redirects, query values hidden. */
  finalUrl: string;
  /** Redirects followed. */
  redirects: number;
  /** The ISO's size in bytes, from Content-Length. */
  size: number;
  /** Who issued the server's certificate. */
  issuer: string;
  /** "ISO 9660" or "UDF". */
  format: string;
  /** The ISO 9660 volume label, when there is one. */
  label: string;
}

export interface PreflightOptions {
  /** The whole check's time limit, in milliseconds. */
  timeoutMs: number;
  /** The trust bundle; the system's when absent. */
  caFile?: string;
}

interface Response {
  status: number;
  headers: Map<string, string>;
  body: Uint8Array;
  issuer: string;
}

/**
 * Checks that `url` serves an ISO image the way QEMU needs it.
 *
 * @param url The https URL (already checked by parseIsoUrl).
 * @param options The time limit and, for tests, the trust bundle.
 * @returns What the server told.
 * @throws {Error} With one line that says what is wrong and what to do.
 */
export async function preflight(url: string, options: PreflightOptions): Promise<ServerReport> {
  const ca = readFileSync(options.caFile ?? systemTrustBundle());
  const deadline = Date.now() + options.timeoutMs;
  const seconds = `${Math.round(options.timeoutMs / 100) / 10} s`;
  let current = parseIsoUrl(url);
  let redirects = 0;

  for (;;) {
    const responses = await exchange(current.href, [{ method: "HEAD" }, { method: "GET", range: DESCRIPTOR_RANGE }], ca, deadline, seconds);
    const head = responses[0]!; // parseResponses() throws when even the first is missing
    const pipelined = responses[1];
    const location = head.headers.get("location");
    if (head.status >= 300 && head.status < 400 && location) {
      if (++redirects > MAX_REDIRECTS) throw new Error(`${current.redacted} redirects more than ${MAX_REDIRECTS} times`);
      const next = new URL(location, current.href).href;
      if (!next.startsWith("https:")) {
        throw new Error(`${current.redacted} redirects to a URL that is not https; QEMU would refuse it`);
      }
      current = parseIsoUrl(next);
      continue;
    }
    if (head.status !== 200) {
      throw new Error(`${current.redacted} answered HTTP ${head.status} to HEAD${statusHint(head.status)}`);
    }
    const size = Number(head.headers.get("content-length"));
    if (!head.headers.has("content-length") || !Number.isSafeInteger(size) || size <= 0) {
      throw new Error(`${current.redacted} reports no file size (Content-Length); QEMU refuses such a server`);
    }
    if (!/\bbytes\b/.test(head.headers.get("accept-ranges") ?? "")) {
      throw new Error(`${current.redacted} does not offer byte ranges (Accept-Ranges: bytes); QEMU needs them, so enable range requests on the server`);
    }

    const ranged = pipelined ??
      (await exchange(current.href, [{ method: "GET", range: DESCRIPTOR_RANGE }], ca, deadline, seconds))[0]!;
    if (ranged.status === 416) {
      throw new Error(`${current.redacted} does not serve an ISO image: the file (${size} bytes) ends before the volume descriptors at byte 32768`);
    }
    if (ranged.status === 200) {
      throw new Error(`${current.redacted} ignored a byte-range request (answered 200, not 206); enable range requests on the server`);
    }
    if (ranged.status !== 206) {
      throw new Error(`${current.redacted} answered HTTP ${ranged.status} to a byte-range request${statusHint(ranged.status)}`);
    }
    const volume = readVolumeDescriptor(ranged.body);
    if (!volume) {
      throw new Error(`${current.redacted} does not serve an ISO image: no ISO 9660 or UDF volume descriptor at byte 32768`);
    }
    return { finalUrl: current.redacted, redirects, size, issuer: head.issuer, ...volume };
  }
}

/**
 * Reads the volume descriptor that starts 32768 bytes into an ISO image.
 *
 * @param sector At least the first 6 bytes of that sector; 72 for the label.
 * @returns The format and ISO 9660 volume label, or undefined when the bytes are no volume descriptor.
 * @example
 * ```ts
 * import { readVolumeDescriptor } from "./preflight.ts";
 * const sector = new Uint8Array(2048);
 * sector.set([1, ...new TextEncoder().encode("CD001")]);
 * readVolumeDescriptor(sector); // { format: "ISO 9660", label: "" }
 * ```
 */
export function readVolumeDescriptor(sector: Uint8Array): { format: string; label: string } | undefined {
  const magic = new TextDecoder("latin1").decode(sector.subarray(1, 6));
  if (magic === "BEA01") return { format: "UDF", label: "" };
  if (magic !== "CD001") return undefined;
  const label = sector.length >= 72 ? new TextDecoder("latin1").decode(sector.subarray(40, 72)).trim() : "";
  return { format: "ISO 9660", label };
}

/** The host's system trust bundle, the one QEMU's GnuTLS reads. */
export function systemTrustBundle(): string {
  const found = TRUST_BUNDLES.find((path) => existsSync(path));
  if (!found) throw new Error(`no system trust bundle at ${TRUST_BUNDLES.join(" or ")}; install ca-certificates`);
  return found;
}

function statusHint(status: number): string {
  if (status === 404) return ": the ISO is not at that path; check the URL";
  if (status === 401 || status === 403) return ": the server refuses access; check the URL's signature or the server's permissions";
  if (status >= 500) return ": the server failed; check its error log";
  return "";
}

interface Request {
  method: "HEAD" | "GET";
  range?: string;
}

/**
 * HTTP/1.1 requests, pipelined over one TLS connection that is verified
 * before anything is sent. Returns the responses that came back, in order;
 * the last request closes the connection.
 */
function exchange(
  href: string,
  requests: Request[],
  ca: Buffer,
  deadline: number,
  seconds: string,
): Promise<Array<Response | undefined>> {
  const url = new URL(href);
  const host = url.hostname.replace(/^\[|\]$/g, "");
  const where = `${url.hostname}:${url.port || 443}`;
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (error: Error | undefined, responses?: Array<Response | undefined>) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (error) reject(error);
      else resolve(responses!);
    };
    const timer = setTimeout(
      () => finish(new Error(`${where} did not answer within ${seconds} (preflight_timeout); check that the server is up and reachable`)),
      Math.max(0, deadline - Date.now()),
    );
    const isIp = /^[0-9.]+$/.test(host) || host.includes(":");
    // finish() and the timer only run once the socket exists: they are called back, never here.
    const socket: TLSSocket = connect({
      host,
      port: Number(url.port || 443),
      ca,
      servername: isIp ? undefined : host,
      rejectUnauthorized: false,
      ALPNProtocols: ["http/1.1"],
    });
    const chunks: Uint8Array[] = [];
    let issuer = "";
    socket.once("secureConnect", () => {
      const certificate = socket.getPeerCertificate();
      issuer = describeIssuer(certificate?.issuer);
      if (!socket.authorized) {
        finish(new Error(
          `the certificate of ${where} is not trusted by this host (${socket.authorizationError}, issuer ${issuer || "unknown"}); ` +
            `add the issuing CA to the system trust store (update-ca-trust or update-ca-certificates), which QEMU uses`,
        ));
        return;
      }
      socket.write(requests.map(({ method, range }, i) =>
        `${method} ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nUser-Agent: httpsisoboot-preflight\r\n` +
        `${range ? `Range: ${range}\r\n` : ""}Accept: */*\r\nConnection: ${i === requests.length - 1 ? "close" : "keep-alive"}\r\n\r\n`
      ).join(""));
    });
    socket.on("data", (chunk: Uint8Array) => chunks.push(chunk));
    const complete = () => {
      try {
        finish(undefined, parseResponses(Buffer.concat(chunks), requests, issuer));
      } catch (error) {
        finish(error as Error);
      }
    };
    socket.on("end", complete);
    socket.on("close", complete);
    socket.on("error", (error: NodeJS.ErrnoException) => finish(new Error(networkMessage(error, where, host))));
  });
}

function networkMessage(error: NodeJS.ErrnoException, where: string, host: string): string {
  switch (error.code) {
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return `the ISO server's host ${host} is not found (DNS); check the URL's host name`;
    case "ECONNREFUSED":
      return `${where} refused the connection; check that the ISO server is running and listens there`;
    case "ECONNRESET":
      return `${where} reset the connection; check the server's TLS setup and error log`;
    case "ETIMEDOUT":
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return `${where} cannot be reached (${error.code}); check the network between this host and the ISO server`;
  }
  return `${where}: ${String(error.message).split("\n")[0]}`;
}

function describeIssuer(issuer: Record<string, string | string[] | undefined> | undefined): string {
  if (!issuer) return "";
  const name = (key: string) => [issuer[key]].flat().filter(Boolean).join(", ");
  return [name("CN") && `CN=${name("CN")}`, name("O") && `O=${name("O")}`].filter(Boolean).join(", ");
}

/**
 * Splits what came back into one response per request. A HEAD response has
 * no body; the last response's body runs to the end of the stream. A
 * response the server never sent (it closed early) is undefined.
 */
function parseResponses(data: Uint8Array, requests: Request[], issuer: string): Array<Response | undefined> {
  const text = new TextDecoder("latin1").decode(data);
  const responses: Array<Response | undefined> = [];
  let at = 0;
  for (const [i, { method }] of requests.entries()) {
    const end = text.indexOf("\r\n\r\n", at);
    if (end < 0) {
      if (i === 0) throw new Error("the server closed the connection without a complete HTTP response");
      responses.push(undefined);
      continue;
    }
    const [statusLine, ...lines] = text.slice(at, end).split("\r\n");
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1]);
    if (!status) throw new Error(`the server did not answer with HTTP/1.1 ('${statusLine.slice(0, 40)}')`);
    const headers = new Map<string, string>();
    for (const line of lines) {
      const colon = line.indexOf(":");
      if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
    const last = i === requests.length - 1;
    const length = Number(headers.get("content-length") ?? "0");
    let body = method === "HEAD" ? new Uint8Array() : data.subarray(end + 4, last ? undefined : end + 4 + length);
    if (/chunked/i.test(headers.get("transfer-encoding") ?? "")) body = dechunk(body);
    responses.push({ status, headers, body, issuer });
    at = method === "HEAD" ? end + 4 : end + 4 + body.length;
  }
  return responses;
}

function dechunk(data: Uint8Array): Uint8Array {
  const parts: Uint8Array[] = [];
  let at = 0;
  const text = new TextDecoder("latin1").decode(data);
  while (at < data.length) {
    const lineEnd = text.indexOf("\r\n", at);
    const size = parseInt(text.slice(at, lineEnd), 16);
    if (!(size > 0)) break;
    parts.push(data.subarray(lineEnd + 2, lineEnd + 2 + size));
    at = lineEnd + 2 + size + 2;
  }
  return Buffer.concat(parts);
}
