// SPDX-License-Identifier: GPL-2.0-or-later
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { describeExpiry, signedUrlExpiry } from "../lib/expiry.ts";

describe("signedUrlExpiry()", () => {
  /** [query, expected expiry (ISO) or undefined, scheme] */
  const CASES: Array<[string | undefined, string | undefined, string?]> = [
    [
      "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=20261127T120000Z&X-Amz-Expires=604800&X-Amz-Signature=ab",
      "2026-12-04T12:00:00.000Z",
      "S3",
    ],
    ["x-amz-date=20261127T120000Z&x-amz-expires=60", "2026-11-27T12:01:00.000Z", "S3"],
    ["X-Goog-Date=20261127T235959Z&X-Goog-Expires=1&X-Goog-Signature=cd", "2026-11-28T00:00:00.000Z", "GCS"],
    ["sv=2022-11-02&se=2026-11-27T12%3A30%3A00Z&sig=ef", "2026-11-27T12:30:00.000Z", "Azure"],
    ["sv=2022-11-02&se=2026-11-27&sig=ef", "2026-11-27T00:00:00.000Z", "Azure"],
    ["X-Amz-Date=20261127T120000Z", undefined],
    ["X-Amz-Date=2026-11-27&X-Amz-Expires=60", undefined],
    ["X-Amz-Date=20261127T120000Z&X-Amz-Expires=-5", undefined],
    ["se=tomorrow", undefined],
    ["se=%ZZ", undefined],
    ["sig=abc&expires=1700000000", undefined],
    [undefined, undefined],
  ];
  for (const [query, expected, scheme] of CASES) {
    test(`signedUrlExpiry() reads ${JSON.stringify(query)} as ${expected ?? "no expiry"}`, () => {
      const expiry = signedUrlExpiry(query);
      assert.equal(expiry?.expires.toISOString(), expected);
      if (scheme) assert.ok(expiry!.scheme.startsWith(scheme), expiry!.scheme);
    });
  }
});

describe("describeExpiry()", () => {
  test("describeExpiry() says how long is left, or that it is over", () => {
    const expiry = signedUrlExpiry("X-Amz-Date=20261127T120000Z&X-Amz-Expires=3600")!;
    assert.equal(
      describeExpiry(expiry, new Date("2026-11-27T12:15:00Z")),
      "expires 2026-11-27T13:00:00Z (S3: x-amz-date + x-amz-expires), in 45 min",
    );
    assert.equal(
      describeExpiry(expiry, new Date("2026-11-27T15:00:00Z")),
      "EXPIRED at 2026-11-27T13:00:00Z (S3: x-amz-date + x-amz-expires), 2 h ago",
    );
    assert.equal(
      describeExpiry(expiry, new Date("2026-11-20T13:00:00Z")),
      "expires 2026-11-27T13:00:00Z (S3: x-amz-date + x-amz-expires), in 7 d",
    );
  });
});
