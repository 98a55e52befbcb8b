// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * The host's bound on connections to ISO servers (`relay_host_connections`):
 * every relay's front holds one slot for each connection it has open, so
 * that twenty VMs reading ahead at once never open more than the bound
 * between them, however many each may have alone.
 *
 * A slot is a file `<run>/connections/<n>`, n below the bound, made with
 * O_EXCL and holding its relay's pid and start time: taking one is one
 * open(2), giving it back one unlink(2). A slot whose relay is gone (a
 * SIGKILL leaves it) is taken back by the next relay that finds none free.
 *
 * @module
 */
import { closeSync, constants, mkdirSync, openSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { HookError } from "../../lib/errors.ts";
import { writeAll } from "../io/files.ts";
import { isProcess, pause, processStart, readHolder } from "../io/processes.ts";

/** How often a relay that waits for a slot looks again: 20 ms. */
const WAIT_STEP_MS = 20;

/** How often, at most, a relay that finds no slot free looks for slots of relays that are gone: 1 s. */
const SWEEP_EVERY_MS = 1_000;

/** The host's connection slots. */
export class Slots {
  private readonly holder: string;
  private sweptAt = 0;

  /**
   * @param dir `<run>/connections`, made 0700 if missing.
   * @param bound relay_host_connections.
   */
  constructor(readonly dir: string, readonly bound: number) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const start = processStart(process.pid);
    this.holder = start === undefined ? `${process.pid}\n` : `${process.pid} ${start}\n`;
  }

  /** A slot, and the function that gives it back (once); undefined when all are taken. */
  tryTake(): (() => void) | undefined {
    const taken = this.firstFree();
    if (taken !== undefined || Date.now() - this.sweptAt < SWEEP_EVERY_MS) return taken;
    this.sweptAt = Date.now();
    this.sweep();
    return this.firstFree();
  }

  /** A slot, waited for up to `ms`; throws when none came free, naming the setting. */
  async take(ms: number): Promise<() => void> {
    const until = Date.now() + ms;
    for (;;) {
      const release = this.tryTake();
      if (release) return release;
      if (Date.now() >= until) {
        throw new HookError(
          `all ${this.bound} of the host's connections to ISO servers (relay_host_connections) stayed taken for ${
            ms / 1000
          } s`,
        );
      }
      await pause(WAIT_STEP_MS);
    }
  }

  /** How many slots are taken now. */
  taken(): number {
    try {
      return readdirSync(this.dir).filter((name) => /^\d+$/.test(name) && Number(name) < this.bound).length;
    } catch {
      return 0;
    }
  }

  private firstFree(): (() => void) | undefined {
    for (let n = 0; n < this.bound; n++) {
      const path = join(this.dir, String(n));
      let fd: number;
      try {
        fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
      } catch {
        continue;
      }
      try {
        writeAll(fd, new TextEncoder().encode(this.holder));
      } finally {
        closeSync(fd);
      }
      let held = true;
      return () => {
        if (held) rmSync(path, { force: true });
        held = false;
      };
    }
    return undefined;
  }

  /** Removes the slots of relays that are gone. */
  private sweep(): void {
    for (let n = 0; n < this.bound; n++) {
      const path = join(this.dir, String(n));
      const holder = readHolder(path);
      if (holder === undefined) continue;
      if (holder.pid !== process.pid && !isProcess(holder)) rmSync(path, { force: true });
    }
  }
}
