// SPDX-License-Identifier: GPL-2.0-or-later
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  connectionProofDue,
  type Failure,
  preflightApplies,
  proofNeeded,
  resolveAgain,
} from "../../lib/relay/route.ts";

describe("resolveAgain()", () => {
  const CASES: Array<[Failure, boolean, string]> = [
    [{ kind: "status", status: 403 }, true, "an expired signature"],
    [{ kind: "status", status: 401 }, true, "a signature refused"],
    [{ kind: "status", status: 404 }, true, "a mirror that lost the file"],
    [{ kind: "status", status: 410 }, true, "a mirror that dropped the file"],
    [{ kind: "status", status: 500 }, true, "a mirror in trouble"],
    [{ kind: "status", status: 503 }, true, "a mirror overloaded"],
    [{ kind: "connection" }, true, "a mirror gone, or its TLS refused"],
    [{ kind: "status", status: 416 }, false, "a range refused: another mirror would refuse it too"],
    [{ kind: "status", status: 400 }, false, "a request refused"],
    [{ kind: "timeout" }, false, "a slow server: retrying costs the guest more timeouts"],
    [{ kind: "judged" }, false, "an answer refused for what it said of the file"],
  ];
  for (const [failure, again, what] of CASES) {
    test(`resolveAgain() is ${again} for ${what}`, () => assert.equal(resolveAgain(failure), again));
  }
});

describe("proofNeeded()", () => {
  const etag = (value: string) => ({ header: "etag" as const, value });
  const reference = { start: 0, end: 1048575, sha256: "c0ffee" };
  test("proofNeeded() asks the reference range's bytes of every new target, whatever its validator", () => {
    // A file rebuilt in place with its size and mtime kept keeps nginx's ETag: the validator proves nothing then.
    assert.deepEqual(proofNeeded(etag('"a"'), etag('"a"'), reference), { kind: "bytes", reference });
    assert.deepEqual(proofNeeded(etag('"a"'), etag('"b"'), reference), { kind: "bytes", reference });
    const modified = { header: "last-modified" as const, value: "Tue, 01 Dec 2026 10:00:00 GMT" };
    assert.deepEqual(proofNeeded(etag('"a"'), modified, reference), { kind: "bytes", reference });
  });
  test("proofNeeded() asks nothing more, before any bytes are read, of a target with the validator known", () => {
    assert.deepEqual(proofNeeded(etag('"a"'), etag('"a"'), undefined), { kind: "none" });
    assert.deepEqual(proofNeeded(undefined, etag('"a"'), undefined), { kind: "none" });
  });
  test("proofNeeded() refuses a target that names the file otherwise when nothing has been read to compare", () => {
    assert.equal(proofNeeded(etag('"a"'), etag('"b"'), undefined).kind, "refused");
  });
});

describe("connectionProofDue()", () => {
  const every = 64 << 20;
  const due = (state: Partial<Parameters<typeof connectionProofDue>[0]>) =>
    connectionProofDue({ referenced: true, keepsAlive: true, fresh: false, since: 0, every, ...state });
  test("connectionProofDue() proves every new connection, and a kept one once `every` bytes have come", () => {
    assert.equal(due({ fresh: true }), true);
    assert.equal(due({ fresh: false, since: every - 1 }), false);
    assert.equal(due({ fresh: false, since: every }), true);
  });
  test("connectionProofDue() proves nothing before there is a reference, nor where connections end with each answer", () => {
    assert.equal(due({ fresh: true, referenced: false }), false);
    assert.equal(due({ fresh: true, keepsAlive: false }), false);
  });
});

describe("preflightApplies()", () => {
  test("preflightApplies() holds preflight's validator to the URL preflight reached, and to no other", () => {
    assert.equal(preflightApplies("a.example:443/x.iso", "a.example:443/x.iso"), true);
    assert.equal(preflightApplies("a.example:443/x.iso", "b.example:443/x.iso"), false);
    assert.equal(preflightApplies(undefined, "b.example:443/x.iso"), true);
  });
});
