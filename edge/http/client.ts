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

import { Buffer } from "node:buffer";

import { printable, ServerError } from "../../lib/errors.ts";

import { MAX_SHOWN_CHARS } from "../../lib/limits.ts";
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
  options: { ca: Uint8Array; deadline: number; limit: string },
): Promise<Exchange> {
  const where = url.host.includes(":") ? `[${url.host}]:${url.port}` : `${url.host}:${url.port}`;
  return new Promise((resolve, reject) => {
    const reader = new ResponseReader(requests);
    const socket = openTls(url, options.ca);
    let issuer = "";
    let settled = false;
    const finish = (error?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (error) reject(error);
      else resolve({ responses: reader.responses, issuer });
    };
    const timeout =
      `${where} did not answer within ${options.limit} (preflight_timeout); check that the server is up and reachable`;
    const timer = setTimeout(
      () => finish(new ServerError(timeout)),
      Math.max(0, options.deadline - Date.now()),
    );
    socket.once("secureConnect", () => {
      issuer = issuerName(socket);
      const refused = certificateProblem(socket, where);
      if (refused) return finish(refused);
      socket.write(requests.map((request, i) => requestText(url, request, i === requests.length - 1)).join(""));
    });
    socket.on("data", (chunk: Uint8Array) => {
      try {
        if (reader.push(chunk)) finish();
      } catch (error) {
        finish(error as Error);
      }
    });
    socket.on("end", () => finish());
    socket.on("close", () => finish());
    socket.on("error", (error: NodeJS.ErrnoException) => finish(networkError(error, where, url.host)));
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
  const isIp = /^[0-9.]+$/.test(url.host) || url.host.includes(":");
  return connect({
    host: url.host,
    port: url.port,
    ca: Buffer.from(ca),
    servername: isIp ? undefined : url.host,
    rejectUnauthorized: false,
    ALPNProtocols: ["http/1.1"],
  });
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
