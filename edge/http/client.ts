// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * A small, bounded HTTP/1.1 client over TLS for preflight. It sends its
 * requests pipelined on one connection that is verified before anything is
 * sent, and reads each answer's status line and headers up to
 * MAX_HEADER_BYTES and no more body than the caller asks for: a server that
 * streams an endless body costs nothing. It stops at the first answer that
 * decides the question (anything but 200 to HEAD, anything but 206 to a
 * ranged GET).
 *
 * This module does network I/O.
 *
 * @module
 */
import { connect, type TLSSocket } from "node:tls";
import { connect as connectTcp, type Socket } from "node:net";

import { Buffer } from "node:buffer";

import { printable, ServerError } from "../../lib/errors.ts";

import { MAX_HEADER_BYTES, MAX_SHOWN_CHARS } from "../../lib/limits.ts";
import { concat, indexOfBlankLine } from "../../lib/bytes.ts";
import { connectRefusal, connectRequest, type Proxy } from "../../lib/proxy.ts";
import type { IsoUrl } from "../../lib/url.ts";

import { type Request, requestHead, type Response, ResponseReader } from "../../lib/http/response.ts";

/** What one connection brought back; a response the server never sent is missing. */
export interface Exchange {
  responses: Response[];
  /** The common name of the certificate's issuer, cut to a sane length. */
  issuer: string;
}

/**
 * Sends `requests` to the URL's server and reads the answers.
 *
 * @param url The parsed URL; its requestTarget is sent as is, as QEMU does.
 * @param requests What to ask, in order; the last one closes the connection.
 * @param options The trust bundle, the absolute deadline (Date.now() ms), and
 * the time limit as the admin set it, for the message.
 * @returns The answers that came back before the server closed.
 * @throws {ServerError} If the connection fails, TLS is not trusted, the deadline passes, an answer is
 * not HTTP/1.x, or its headers are larger than MAX_HEADER_BYTES.
 */
export function exchange(
  url: IsoUrl,
  requests: Request[],
  options: { ca: Uint8Array; deadline: number; limit: string; proxy?: Proxy; settingsFile?: string },
): Promise<Exchange> {
  const where = url.host.includes(":") ? `[${url.host}]:${url.port}` : `${url.host}:${url.port}`;
  return new Promise((resolve, reject) => {
    const reader = new ResponseReader(requests);
    let socket: TLSSocket | undefined;
    let issuer = "";
    let settled = false;
    const finish = (error?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket?.destroy();
      tunnel?.cancel();
      if (error) reject(error);
      else resolve({ responses: reader.responses, issuer });
    };
    const talk = (tls: TLSSocket) => {
      socket = tls;
      tls.once("secureConnect", () => {
        issuer = issuerName(tls);
        const refused = certificateProblem(tls, where);
        if (refused) return finish(refused);
        tls.write(requests.map((request, i) => requestText(url, request, i === requests.length - 1)).join(""));
      });
      tls.on("data", (chunk: Uint8Array) => {
        try {
          if (reader.push(chunk)) finish();
        } catch (error) {
          finish(error as Error);
        }
      });
      tls.on("end", () => finish());
      tls.on("close", () => finish());
      tls.on("error", (error: NodeJS.ErrnoException) => finish(networkError(error, where, url.host)));
    };
    const timeout =
      `${where} did not answer within ${options.limit} (preflight_timeout); check that the server is up and reachable`;
    const timer = setTimeout(
      () => finish(new ServerError(timeout)),
      Math.max(0, options.deadline - Date.now()),
    );
    const tunnel = options.proxy ? openTunnel(url, options.ca, options.proxy, options.settingsFile ?? "") : undefined;
    if (tunnel) tunnel.socket.then((tls) => settled ? tls.destroy() : talk(tls), finish);
    else talk(openTls(url, options.ca));
  });
}

/**
 * Why a connection's certificate is refused, as one line with its fix; or
 * undefined when this host trusts it.
 *
 * @param socket A connection from openTls(), once it is secure.
 * @param where The server, as `host:port`, for the message.
 */
export function certificateProblem(socket: TLSSocket, where: string): ServerError | undefined {
  if (socket.authorized) return undefined;
  return tlsError(String(socket.authorizationError ?? ""), where, certificateFacts(socket, issuerName(socket)));
}

/**
 * A TLS connection to the URL's server, verified against `ca` with the host
 * name checked; the caller asks certificateProblem() before sending anything.
 */
export function openTls(url: IsoUrl, ca: Uint8Array): TLSSocket {
  return connect({
    host: url.host,
    port: url.port,
    ca: Buffer.from(ca),
    servername: serverName(url.host),
    rejectUnauthorized: false,
    ALPNProtocols: ["http/1.1"],
  });
}

/**
 * A TLS connection to the URL's server through the proxy's CONNECT tunnel:
 * TLS end to end, verified against `ca` with the server's name as openTls()
 * does, so the proxy sees only the host and port. `socket` settles once
 * the proxy has answered CONNECT and the TLS handshake has started;
 * `cancel` drops the attempt. Refusals are one line naming the proxy
 * (never its credentials) and what to do.
 */
export function openTunnel(
  url: IsoUrl,
  ca: Uint8Array,
  proxy: Proxy,
  settingsFile: string,
): { socket: Promise<TLSSocket>; cancel: () => void } {
  const server = url.host.includes(":") ? `[${url.host}]:${url.port}` : `${url.host}:${url.port}`;
  const raw: Socket = proxy.scheme === "https"
    ? connect({
      host: proxy.host,
      port: proxy.port,
      ca: Buffer.from(ca),
      servername: serverName(proxy.host),
      rejectUnauthorized: false,
    })
    : connectTcp({ host: proxy.host, port: proxy.port });
  raw.setNoDelay(true);
  const socket = new Promise<TLSSocket>((resolve, reject) => {
    let head: Uint8Array = new Uint8Array();
    const fail = (message: string) => {
      raw.destroy();
      reject(new ServerError(message));
    };
    raw.once(proxy.scheme === "https" ? "secureConnect" : "connect", () => {
      const tls = raw as TLSSocket;
      if (proxy.scheme === "https" && !tls.authorized) {
        return fail(
          `the proxy ${proxy.shown} has a certificate this host does not trust (${
            printable(String(tls.authorizationError ?? ""), 60)
          }); check proxy in ${settingsFile}`,
        );
      }
      raw.write(connectRequest(url, proxy));
    });
    raw.on("data", (chunk: Uint8Array) => {
      head = concat([head, chunk]);
      const end = indexOfBlankLine(head);
      if (end < 0) {
        if (head.length > MAX_HEADER_BYTES) {
          fail(`the proxy ${proxy.shown} sent more than ${MAX_HEADER_BYTES} bytes answering CONNECT`);
        }
        return;
      }
      raw.removeAllListeners("data");
      raw.removeAllListeners("close");
      raw.removeAllListeners("error");
      const status = /^HTTP\/1\.[01] ([0-9]{3})/.exec(new TextDecoder("latin1").decode(head.subarray(0, end)))?.[1];
      if (status === undefined) {
        return fail(`the proxy ${proxy.shown} did not answer CONNECT with HTTP; check proxy in ${settingsFile}`);
      }
      const refused = connectRefusal(Number(status), proxy.shown, server, settingsFile);
      if (refused) return fail(refused);
      if (end + 4 < head.length) {
        return fail(`the proxy ${proxy.shown} sent bytes of its own into the tunnel to ${server}`);
      }
      resolve(connect({
        socket: raw,
        ca: Buffer.from(ca),
        servername: serverName(url.host),
        rejectUnauthorized: false,
        ALPNProtocols: ["http/1.1"],
      }));
    });
    raw.on("close", () => fail(`the proxy ${proxy.shown} closed the connection before answering CONNECT to ${server}`));
    raw.on(
      "error",
      (error: NodeJS.ErrnoException) =>
        fail(
          `the proxy ${proxy.shown} cannot be reached (${
            printable(String(error.code ?? error.message), 40)
          }); check proxy in ${settingsFile}, and that this host can reach it`,
        ),
    );
  });
  return { socket, cancel: () => raw.destroy() };
}

/** The TLS server name for a host: none for an IP address, which SNI does not carry. */
function serverName(host: string): string | undefined {
  return /^[0-9.]+$/.test(host) || host.includes(":") ? undefined : host;
}

function requestText(url: IsoUrl, request: Request, last: boolean): string {
  return requestHead(url, request, { agent: "httpsisoboot-preflight", keepAlive: !last });
}

/** The issuer's common name only: all a stranger's certificate gets to print. */
function issuerName(socket: TLSSocket): string {
  const cn = socket.getPeerCertificate()?.issuer?.CN;
  return [cn].flat().filter((part): part is string => typeof part === "string").join(", ");
}

/**
 * The reason the dates give, checked here: runtimes do not agree on the code
 * (Deno reports an expired certificate as UNABLE_TO_VERIFY_LEAF_SIGNATURE).
 */
function datesReason(facts: CertificateFacts, now = Date.now()): string | undefined {
  const from = Date.parse(facts.validFrom);
  const to = Date.parse(facts.validTo);
  if (to < now) return "CERT_HAS_EXPIRED";
  if (from > now) return "CERT_NOT_YET_VALID";
  return undefined;
}

/** What a refused certificate says about itself, made printable: the names and dates it holds. */
interface CertificateFacts {
  issuer: string;
  names: string;
  validFrom: string;
  validTo: string;
}

function certificateFacts(socket: TLSSocket, issuer: string): CertificateFacts {
  const certificate = socket.getPeerCertificate();
  const names = String(certificate?.subjectaltname ?? "").replace(/\b(DNS|IP Address):/g, "");
  return {
    issuer,
    names: printable(names, MAX_SHOWN_CHARS) || printable(String(certificate?.subject?.CN ?? ""), 64),
    validFrom: printable(String(certificate?.valid_from ?? "?"), 40),
    validTo: printable(String(certificate?.valid_to ?? "?"), 40),
  };
}

/**
 * The refusal for a certificate the host does not accept, by its reason,
 * each with its own fix: a name the certificate does not hold, dates it is
 * not valid on, a self-signed certificate, or an issuer the host does not trust.
 */
function tlsError(reason: string, where: string, facts: CertificateFacts): ServerError {
  const from = facts.issuer ? ` (issuer CN=${facts.issuer})` : "";
  const refuse = (text: string) => new ServerError(`the certificate of ${where} ${text}`);
  switch (datesReason(facts) ?? reason) {
    case "ERR_TLS_CERT_ALTNAME_INVALID":
      return refuse(
        `is not for that host name: it holds ${
          facts.names || "no names"
        }; use one of those names in the URL, or get a certificate for this one`,
      );
    case "CERT_HAS_EXPIRED":
      return refuse(`expired on ${facts.validTo}${from}; renew it on the server, and check this host's clock`);
    case "CERT_NOT_YET_VALID":
      return refuse(`is not valid until ${facts.validFrom}${from}; check this host's clock (and the server's)`);
    case "DEPTH_ZERO_SELF_SIGNED_CERT":
    case "SELF_SIGNED_CERT_IN_CHAIN":
      return refuse(
        `is self-signed${from}; give the server a certificate from a CA this host trusts, or add that certificate to the system trust store (update-ca-trust or update-ca-certificates), which QEMU uses`,
      );
  }
  return refuse(
    `is not trusted by this host${from}; add the issuing CA to the system trust store (update-ca-trust or update-ca-certificates), which QEMU uses`,
  );
}

function networkError(error: NodeJS.ErrnoException, where: string, host: string): ServerError {
  switch (error.code) {
    case "ENOTFOUND":
    case "EAI_AGAIN":
    case "EAI_NONAME":
      return new ServerError(`the ISO server's host ${host} is not found (DNS); check the URL's host name`);
    case "ECONNREFUSED":
      return new ServerError(
        `${where} refused the connection; check that the ISO server is running and listens there`,
      );
    case "ECONNRESET":
    case "EPIPE":
      return new ServerError(
        `${where} closed the connection during TLS; check the server's TLS setup and error log`,
      );
    case "ETIMEDOUT":
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return new ServerError(
        `${where} cannot be reached (${error.code}); check the network between this host and the ISO server`,
      );
  }
  if (/SSL|TLS/i.test(String(error.code ?? "")) || /SSL|TLS|handshake/i.test(String(error.message))) {
    return new ServerError(
      `${where} did not answer with TLS; check that the URL names the server's https port`,
    );
  }
  const code = /^[A-Z0-9_]{1,40}$/.test(String(error.code)) ? ` (${error.code})` : "";
  return new ServerError(`the connection to ${where} failed${code}; check the server and the network`);
}
