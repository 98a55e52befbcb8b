// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * Just enough of the NBD protocol's fixed newstyle handshake to ask a relay
 * the size of its export: NBD_OPT_INFO, then NBD_OPT_ABORT. For nbdkit that
 * opens the curl plugin, which asks the front, which asks the ISO server:
 * an answer proves the whole relay works before QEMU connects. libvirt does
 * the same with libnbd before it starts QEMU on its own nbdkit.
 *
 * The protocol: https://github.com/NetworkBlockDevice/nbd/blob/master/doc/proto.md
 *
 * This module is pure: it turns bytes into bytes and does no I/O.
 *
 * @module
 */
import { RelayError } from "../errors.ts";

const NBDMAGIC = 0x4e42444d41474943n;
const IHAVEOPT = 0x49484156454f5054n;
const REPLY_MAGIC = 0x3e889045565a9n;
const FLAG_FIXED_NEWSTYLE = 1;
const FLAG_NO_ZEROES = 2;
const OPT_ABORT = 2;
const OPT_INFO = 6;
const REP_ACK = 1;
const REP_INFO = 3;
const REP_FLAG_ERROR = 0x80000000;
const INFO_EXPORT = 0;
/** The most option reply data read: an error message, or an info block. */
const MAX_REPLY_DATA = 4096;

/** What {@link NbdInfo.push} says: bytes to send, the export's size once known, or neither yet. */
export interface NbdStep {
  send?: Uint8Array;
  size?: number;
}

/**
 * The client side of one handshake, fed the server's bytes as they come.
 *
 * @example
 * ```ts
 * import { NbdInfo } from "./nbd.ts";
 * import { assertEquals } from "../_assert.ts";
 * const client = new NbdInfo();
 * const greeting = new Uint8Array(18);
 * const view = new DataView(greeting.buffer);
 * view.setBigUint64(0, 0x4e42444d41474943n);
 * view.setBigUint64(8, 0x49484156454f5054n);
 * view.setUint16(16, 3);
 * assertEquals(client.push(greeting).send?.length, 4 + 16 + 6);
 * ```
 */
export class NbdInfo {
  private buffer: Uint8Array = new Uint8Array();
  private state: "greeting" | "replies" | "done" = "greeting";
  private size?: number;

  /**
   * Takes the server's next bytes.
   *
   * @throws {RelayError} If the server is not an NBD server, or refuses the export.
   */
  push(bytes: Uint8Array): NbdStep {
    const joined = new Uint8Array(this.buffer.length + bytes.length);
    joined.set(this.buffer);
    joined.set(bytes, this.buffer.length);
    this.buffer = joined;
    if (this.state === "greeting") return this.greeting();
    if (this.state === "replies") return this.replies();
    return {};
  }

  private greeting(): NbdStep {
    if (this.buffer.length < 18) return {};
    const view = viewOf(this.buffer);
    if (view.getBigUint64(0) !== NBDMAGIC || view.getBigUint64(8) !== IHAVEOPT) {
      throw new RelayError("the relay's socket does not speak NBD's newstyle handshake");
    }
    const flags = view.getUint16(16);
    if (!(flags & FLAG_FIXED_NEWSTYLE)) throw new RelayError("the relay's NBD server is not fixed newstyle");
    this.buffer = this.buffer.slice(18);
    this.state = "replies";
    const clientFlags = FLAG_FIXED_NEWSTYLE | (flags & FLAG_NO_ZEROES);
    const send = new Uint8Array(4 + 16 + 6);
    const out = viewOf(send);
    out.setUint32(0, clientFlags);
    out.setBigUint64(4, IHAVEOPT);
    out.setUint32(12, OPT_INFO);
    out.setUint32(16, 6); // an empty export name (u32 length 0) and no info requests (u16 0)
    return { send, ...this.replies() };
  }

  private replies(): NbdStep {
    for (;;) {
      if (this.buffer.length < 20) return {};
      const view = viewOf(this.buffer);
      if (view.getBigUint64(0) !== REPLY_MAGIC) throw new RelayError("the relay's NBD server sent a malformed reply");
      const type = view.getUint32(12);
      const length = view.getUint32(16);
      if (length > MAX_REPLY_DATA) throw new RelayError("the relay's NBD server sent an oversized reply");
      if (this.buffer.length < 20 + length) return {};
      const data = this.buffer.slice(20, 20 + length);
      this.buffer = this.buffer.slice(20 + length);
      if (type & REP_FLAG_ERROR) {
        throw new RelayError(`its NBD server refused the export, error ${type & 0x7fffffff}`);
      }
      if (type === REP_INFO && length >= 12 && viewOf(data).getUint16(0) === INFO_EXPORT) {
        this.size = Number(viewOf(data).getBigUint64(2));
      }
      if (type === REP_ACK) return this.finish();
    }
  }

  private finish(): NbdStep {
    this.state = "done";
    if (this.size === undefined) throw new RelayError("its NBD server gave no export size");
    const send = new Uint8Array(16);
    const out = viewOf(send);
    out.setBigUint64(0, IHAVEOPT);
    out.setUint32(8, OPT_ABORT);
    return { send, size: this.size };
  }
}

function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
