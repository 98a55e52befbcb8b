// SPDX-License-Identifier: GPL-2.0-or-later
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { parseRelayStatus, type RelayStatus, relayStatusText, statusTable } from "../../lib/relay/status.ts";

const STATUS: RelayStatus = {
  pid: 4121,
  server: "https://isos.example.org:443/el9/boot.iso?sig=***",
  started: "2026-12-02T17:40:11.203Z",
  served: 10 * 2 ** 20,
  fetched: 2 ** 20,
  gets: 2,
  hits: 9,
  retries: 0,
  sharing: "shared",
};

describe("the relays' status", () => {
  test("parseRelayStatus() reads back what relayStatusText() wrote, and the last error", () => {
    assert.deepEqual(parseRelayStatus(relayStatusText(STATUS)), STATUS);
    const failed = { ...STATUS, lastError: "isos.example.org:443 sent nothing for 30 s (timeout)", name: "web01" };
    assert.deepEqual(parseRelayStatus(relayStatusText(failed)), failed);
  });

  for (
    const [what, text] of [
      ["not JSON", "{"],
      ["a negative count", JSON.stringify({ ...STATUS, served: -1 })],
      ["a count in text", JSON.stringify({ ...STATUS, hits: "9" })],
      ["a server with a terminal escape", JSON.stringify({ ...STATUS, server: "https://x/\u001b[2Ja.iso" })],
      ["a last error with a line break", JSON.stringify({ ...STATUS, lastError: "a\nb" })],
      ["a name with a terminal escape", JSON.stringify({ ...STATUS, name: "web\u001b]0;x\u0007" })],
      ["a server of 600 characters", JSON.stringify({ ...STATUS, server: `https://x/${"a".repeat(600)}` })],
    ]
  ) {
    test(`parseRelayStatus() refuses ${what}`, () => assert.equal(parseRelayStatus(text), undefined));
  }

  test("statusTable() counts a stopped relay's files apart from the relays that run", () => {
    assert.equal(statusTable([]), "no relay runs on this host\n");
    const left = { vm: "0f5b1c2d-0000-4000-8000-000000000000", problem: "its relay stopped", left: true };
    assert.equal(
      statusTable([left]),
      "no relay runs on this host; the files of 1 stopped relay are left\n" +
        "0f5b1c2d-0000-4000-8000-000000000000: its relay stopped\n",
    );
    const one = { vm: "7a3c1f52-4d1e-4b7a-9c2e-5f0e8a6b1d21", status: STATUS };
    assert.match(statusTable([one, left]), /^1 relay runs on this host; the files of 1 stopped relay are left\n/);
  });

  test("statusTable() prints a block per relay, and a relay with no status says why", () => {
    const text = statusTable([
      { vm: "7a3c1f52-4d1e-4b7a-9c2e-5f0e8a6b1d21", status: { ...STATUS, name: "web01" } },
      { vm: "0f5b1c2d-0000-4000-8000-000000000000", problem: "no relay runs" },
    ]);
    assert.equal(
      text,
      "2 relays run on this host\n" +
        "web01 7a3c1f52-4d1e-4b7a-9c2e-5f0e8a6b1d21 (relay pid 4121, since 2026-12-02T17:40:11.203Z)\n" +
        "  server     https://isos.example.org:443/el9/boot.iso?sig=***\n" +
        "  bytes      served 10.0 MiB, fetched 1.0 MiB in 2 GETs, 9 blocks from disk, 0 retries\n" +
        "  sharing    shared\n" +
        "  last error none\n" +
        "0f5b1c2d-0000-4000-8000-000000000000: no relay runs\n",
    );
  });
});
