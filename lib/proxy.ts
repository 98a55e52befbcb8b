// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * The HTTP proxy a host reaches ISO servers through: the `proxy` and
 * `no_proxy` settings, the CONNECT request that opens a tunnel, and what a
 * proxy's refusal means. Preflight and the relay tunnel TLS end to end to
 * the ISO server, so every check of the certificate and every answer holds
 * through the proxy. The proxy's credentials live in the settings file
 * alone: they are sent to the proxy, and shown nowhere.
 *
 * This module is pure: it does no I/O.
 *
 * @module
 */
import { SettingsError } from "./errors.ts";
import type { IsoUrl } from "./url.ts";

/** A proxy, as the `proxy` setting names it. */
export interface Proxy {
  /** How the relay reaches the proxy: plain TCP, or TLS verified against the host's trust store. */
  scheme: "http" | "https";
  host: string;
  port: number;
  /** `Basic …` for the Proxy-Authorization header, when the setting has credentials. */
  authorization?: string;
  /** The proxy as messages show it: scheme, host and port, never the credentials. */
  shown: string;
}

/** One `no_proxy` entry: a host name or IP address, or a `.domain` suffix. */
export interface NoProxyRule {
  host: string;
}

/**
 * Reads the `proxy` setting: `http://host:port` or `https://host:port`,
 * with optional `user:password@`, percent-encoded as in a URL.
 *
 * @throws {SettingsError} For anything else; the message never shows the credentials.
 * @example
 * ```ts
 * import { parseProxy } from "./proxy.ts";
 * import { assertEquals } from "./_assert.ts";
 * const proxy = parseProxy("http://hv:s%40cret@proxy.example.net:3128", "/etc/vdsm/httpsisoboot.conf line 3");
 * assertEquals([proxy.host, proxy.port, proxy.shown], ["proxy.example.net", 3128, "http://proxy.example.net:3128"]);
 * assertEquals(proxy.authorization, `Basic ${btoa("hv:s@cret")}`);
 * ```
 */
export function parseProxy(value: string, where: string): Proxy {
  const match = /^(https?):\/\/(?:([^@/\s]*)@)?(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::([0-9]{1,5}))?\/?$/.exec(value);
  const port = match && (match[4] === undefined ? (match[1] === "https" ? 443 : 80) : Number(match[4]));
  if (!match || !port || port > 65535) {
    throw new SettingsError(
      `${where}: 'proxy' must be http://host:port or https://host:port, with user:password@ if the proxy asks for ` +
        `them (the value is not shown: it may hold credentials)`,
    );
  }
  const [, scheme, credentials, rawHost] = match;
  const host = rawHost.replace(/^\[|\]$/g, "").toLowerCase();
  const shownHost = host.includes(":") ? `[${host}]` : host;
  return {
    scheme: scheme as Proxy["scheme"],
    host,
    port,
    ...(credentials !== undefined && credentials !== "" && { authorization: basic(credentials, where) }),
    shown: `${scheme}://${shownHost}:${port}`,
  };
}

function basic(credentials: string, where: string): string {
  const [user, password = ""] = credentials.split(":", 2).map((part) => {
    try {
      return decodeURIComponent(part);
    } catch {
      throw new SettingsError(`${where}: 'proxy' has credentials that are not percent-encoded right`);
    }
  });
  const text = `${user}:${password}`;
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x1f\x7f]/.test(text)) {
    throw new SettingsError(`${where}: 'proxy' has control characters in its credentials`);
  }
  return `Basic ${btoa(String.fromCharCode(...new TextEncoder().encode(text)))}`;
}

/**
 * Reads `no_proxy`: comma-separated host names, IP addresses and `.domain`
 * suffixes reached directly, not through the proxy.
 *
 * @example
 * ```ts
 * import { parseNoProxy } from "./proxy.ts";
 * import { assertEquals } from "./_assert.ts";
 * assertEquals(parseNoProxy(".lab.example.net, isos.example.org", "f line 1"), [{ host: ".lab.example.net" }, { host: "isos.example.org" }]);
 * ```
 */
export function parseNoProxy(value: string, where: string): NoProxyRule[] {
  return value.split(",").map((entry) => entry.trim().toLowerCase()).map((host) => {
    if (!/^\.?[a-z0-9.:-]+$/.test(host.replace(/^\[|\]$/g, ""))) {
      throw new SettingsError(`${where}: 'no_proxy' has '${host}'; write host names, .domain suffixes or IP addresses`);
    }
    return { host: host.replace(/^\[|\]$/g, "") };
  });
}

/**
 * The proxy to reach `url` through: undefined without one, or when `no_proxy` names its host.
 *
 * @example
 * ```ts
 * import { proxyFor } from "./proxy.ts";
 * import { parseIsoUrl } from "./url.ts";
 * import { assertEquals } from "./_assert.ts";
 * const proxy = { scheme: "http" as const, host: "proxy", port: 3128, shown: "http://proxy:3128" };
 * assertEquals(proxyFor(parseIsoUrl("https://isos.example.org/a.iso"), proxy, [{ host: ".lab.example.net" }]), proxy);
 * assertEquals(proxyFor(parseIsoUrl("https://a.lab.example.net/a.iso"), proxy, [{ host: ".lab.example.net" }]), undefined);
 * ```
 */
export function proxyFor(url: IsoUrl, proxy: Proxy | undefined, noProxy: NoProxyRule[]): Proxy | undefined {
  if (proxy === undefined) return undefined;
  const host = url.host.replace(/\.$/, "").toLowerCase();
  const direct = noProxy.some((rule) =>
    rule.host.startsWith(".") ? host.endsWith(rule.host) || host === rule.host.slice(1) : host === rule.host
  );
  return direct ? undefined : proxy;
}

/**
 * The CONNECT request that opens a tunnel to the URL's server.
 *
 * @example
 * ```ts
 * import { connectRequest } from "./proxy.ts";
 * import { parseIsoUrl } from "./url.ts";
 * import { assertEquals } from "./_assert.ts";
 * const proxy = { scheme: "http" as const, host: "proxy", port: 3128, shown: "http://proxy:3128" };
 * assertEquals(connectRequest(parseIsoUrl("https://isos.example.org/a.iso"), proxy), "CONNECT isos.example.org:443 HTTP/1.1\r\nHost: isos.example.org:443\r\n\r\n");
 * ```
 */
export function connectRequest(url: IsoUrl, proxy: Proxy): string {
  const authority = `${url.host.includes(":") ? `[${url.host}]` : url.host}:${url.port}`;
  const credentials = proxy.authorization ? `Proxy-Authorization: ${proxy.authorization}\r\n` : "";
  return `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n${credentials}\r\n`;
}

/**
 * Why a proxy's answer to CONNECT opens no tunnel, as one line with what to
 * do; undefined for a 2xx, the tunnel open.
 *
 * @example
 * ```ts
 * import { connectRefusal } from "./proxy.ts";
 * import { assertEquals } from "./_assert.ts";
 * assertEquals(connectRefusal(200, "http://proxy:3128", "isos.example.org:443", "f"), undefined);
 * assertEquals(connectRefusal(407, "http://proxy:3128", "isos.example.org:443", "f")?.includes("credentials"), true);
 * ```
 */
export function connectRefusal(status: number, proxy: string, server: string, file: string): string | undefined {
  if (status >= 200 && status < 300) return undefined;
  if (status === 407 || status === 401) {
    // 407 is the standard; some proxies (tinyproxy) answer wrong credentials with 401.
    return `the proxy ${proxy} asks for credentials to reach ${server} (${status}): give them as ` +
      `proxy = http://user:password@host:port in ${file}, or check the ones there`;
  }
  if (status === 403) {
    return `the proxy ${proxy} refuses tunnels to ${server} (403): its policy must allow CONNECT to that host ` +
      `and port, or name the host in no_proxy in ${file} if this host reaches it directly`;
  }
  return `the proxy ${proxy} opened no tunnel to ${server} (HTTP ${status}); check the proxy's log`;
}
