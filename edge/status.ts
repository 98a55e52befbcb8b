// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * `httpsisoboot --status`: the relays on this host, what each serves (the
 * server, query values hidden), what it has served and fetched, its cache
 * hits and retries and its last error, from the status file each relay
 * writes every second (serve.ts). A relay counts only if its pid file names
 * a process that is it (control.ts's relayState); a config left without one
 * is shown as such.
 *
 * @module
 */
import { readdirSync } from "node:fs";
import { type RelayDirs, relayPaths } from "../lib/paths.ts";
import { MAX_STATUS_BYTES, parseRelayStatus, type StatusRow, statusTable } from "../lib/relay/status.ts";
import { relayState } from "./relay/control.ts";
import { errorCode, readRegularFile } from "./io/files.ts";
import { RelayError } from "../lib/errors.ts";

/** The table of the host's relays. */
export function relayStatus(dirs: RelayDirs): string {
  let names: string[];
  try {
    names = readdirSync(dirs.run);
  } catch (error) {
    if (errorCode(error) === "ENOENT") {
      return `no relay runs on this host: there is no ${dirs.run}, which httpsisoboot's tmpfiles.d makes at ` +
        `install and at boot; is httpsisoboot installed here (rpm -q vdsm-hook-httpsisoboot)?\n`;
    }
    throw new RelayError(`cannot list ${dirs.run} (${errorCode(error)}); run --status as root or as vdsm`);
  }
  const uuids = new Set(names.map((name) => /^([0-9a-f-]{36})\.(?:pid|relay)$/.exec(name)?.[1]).filter(Boolean));
  return statusTable([...uuids].sort().map((uuid) => row(dirs, uuid!)));
}

function row(dirs: RelayDirs, vm: string): StatusRow {
  const paths = relayPaths(dirs, vm);
  const state = relayState(paths, vm);
  if (state.pid === undefined) {
    return {
      vm,
      left: true,
      problem: "its relay stopped, but left its files (the VM's start failed, or the relay was killed); " +
        "the VM's after_vm_destroy removes them",
    };
  }
  let text: string;
  try {
    const { bytes } = readRegularFile(paths.status, {
      maxBytes: MAX_STATUS_BYTES,
      followSymlinks: false,
      what: "status",
    });
    text = new TextDecoder().decode(bytes);
  } catch (error) {
    return { vm, problem: `relay pid ${state.pid.pid} runs, but its status cannot be read (${errorCode(error)})` };
  }
  const status = parseRelayStatus(text);
  if (!status) return { vm, problem: `relay pid ${state.pid.pid} runs, but its status file is not one a relay writes` };
  return { vm, status };
}
