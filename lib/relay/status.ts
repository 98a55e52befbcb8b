// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * What `httpsisoboot --status` shows of the host's relays: each relay writes
 * its status file (serve.ts) every second, and --status reads them back and
 * prints one row per relay. A status file is the relay's word, so it is
 * checked as any input: a field that is not what a relay writes makes the
 * row say so, never print it.
 *
 * This module is pure: it formats and parses text.
 *
 * @module
 */

/** One relay's status, as it writes it. */
export interface RelayStatus {
  pid: number;
  /** The ISO's URL with every query value hidden (IsoUrl.redacted). */
  server: string;
  /** When the relay started (ISO 8601). */
  started: string;
  /** Bytes sent to nbdkit, and so to the guest. */
  served: number;
  /** Body bytes of the answers read whole from the ISO server (a cut answer is not counted). */
  fetched: number;
  /** Ranged GETs sent to the server. */
  gets: number;
  /** Blocks read from the disk (the shared cache, or read ahead) rather than the server. */
  hits: number;
  /** nbdkit's requests the front failed, which nbdkit asked again. */
  retries: number;
  /** Whether the relay shares blocks with the host's other relays, and why not. */
  sharing: string;
  /** The last thing that went wrong. */
  lastError?: string;
  /** The VM's name, when its domain had a plain one. */
  name?: string;
}

/** The most a status file may hold: 4 KiB. */
export const MAX_STATUS_BYTES = 4096;

/**
 * The status file's text.
 *
 * @example
 * ```ts
 * import { parseRelayStatus, relayStatusText } from "./status.ts";
 * import { assertEquals } from "../_assert.ts";
 * const status = { pid: 7, server: "https://i.example:443/a.iso?s=***", started: "2026-12-02T17:00:00.000Z", served: 10, fetched: 12, gets: 1, hits: 0, retries: 0, sharing: "shared" };
 * assertEquals(parseRelayStatus(relayStatusText(status)), status);
 * ```
 */
export function relayStatusText(status: RelayStatus): string {
  return `${JSON.stringify(status)}\n`;
}

/** A status file's text read back; undefined when it is not one a relay writes. */
export function parseRelayStatus(text: string): RelayStatus | undefined {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof raw !== "object" || raw === null) return undefined;
  const counts = ["pid", "served", "fetched", "gets", "hits", "retries"] as const;
  if (!counts.every((name) => Number.isSafeInteger(raw[name]) && (raw[name] as number) >= 0)) return undefined;
  const texts = ["server", "started", "sharing"] as const;
  if (!texts.every((name) => typeof raw[name] === "string" && printableLine(raw[name] as string))) return undefined;
  for (const optional of ["lastError", "name"] as const) {
    const value = raw[optional];
    if (value !== undefined && !(typeof value === "string" && printableLine(value))) return undefined;
  }
  const status: RelayStatus = {
    pid: raw.pid as number,
    server: raw.server as string,
    started: raw.started as string,
    served: raw.served as number,
    fetched: raw.fetched as number,
    gets: raw.gets as number,
    hits: raw.hits as number,
    retries: raw.retries as number,
    sharing: raw.sharing as string,
  };
  return {
    ...status,
    ...(raw.lastError !== undefined && { lastError: raw.lastError as string }),
    ...(raw.name !== undefined && { name: raw.name as string }),
  };
}

/** One row of `--status`: a VM (its UUID) and what its relay said, or why it said nothing. */
export type StatusRow =
  | { vm: string; status: RelayStatus }
  /** A relay that runs, but whose status cannot be shown; `left` when none runs and its files are left. */
  | { vm: string; problem: string; left?: boolean };

/**
 * The table `--status` prints: a heading that counts the relays that run
 * and the stopped ones whose files are left, then a block of lines each.
 *
 * @example
 * ```ts
 * import { statusTable } from "./status.ts";
 * import { assertEquals } from "../_assert.ts";
 * const status = { pid: 7, server: "https://i.example:443/a.iso?s=***", started: "2026-12-02T17:00:00.000Z", served: 3 * 2 ** 20, fetched: 2 ** 20, gets: 1, hits: 2, retries: 1, sharing: "shared", lastError: "i.example:443 sent nothing for 30 s (timeout)" };
 * const text = statusTable([{ vm: "vm-a", status }, { vm: "vm-b", problem: "no status yet" }]);
 * assertEquals(text.split("\n")[0], "2 relays run on this host");
 * assertEquals(text.includes("served 3.0 MiB, fetched 1.0 MiB in 1 GET, 2 blocks from disk, 1 retry"), true);
 * assertEquals(text.includes("vm-b: no status yet"), true);
 * assertEquals(statusTable([{ vm: "vm-c", problem: "no relay runs", left: true }]).split("\n")[0], "no relay runs on this host; the files of 1 stopped relay are left");
 * ```
 */
export function statusTable(rows: StatusRow[]): string {
  const left = rows.filter((row) => "left" in row && row.left).length;
  const running = rows.length - left;
  const heading = running === 0
    ? "no relay runs on this host"
    : `${running} relay${running === 1 ? " runs" : "s run"} on this host`;
  const lines = [left === 0 ? heading : `${heading}; the files of ${plural(left, "stopped relay")} are left`];
  for (const row of rows) {
    if ("problem" in row) {
      lines.push(`${row.vm}: ${row.problem}`);
      continue;
    }
    const s = row.status;
    lines.push(
      `${s.name === undefined ? "" : `${s.name} `}${row.vm} (relay pid ${s.pid}, since ${s.started})`,
      `  server     ${s.server}`,
      `  bytes      served ${mib(s.served)}, fetched ${mib(s.fetched)} in ${plural(s.gets, "GET")}, ${
        plural(s.hits, "block")
      } from disk, ${plural(s.retries, "retry", "retries")}`,
      `  sharing    ${s.sharing}`,
      `  last error ${s.lastError ?? "none"}`,
    );
  }
  return `${lines.join("\n")}\n`;
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

function plural(count: number, one: string, many = `${one}s`): string {
  return `${count} ${count === 1 ? one : many}`;
}

function printableLine(text: string): boolean {
  return text.length <= 512 && /^[\x20-\x7e]*$/.test(text);
}
