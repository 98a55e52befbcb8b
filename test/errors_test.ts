// SPDX-License-Identifier: GPL-2.0-or-later
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { DomainError, errorLine, HookError, LimitError, printable, UrlError, XmlSyntaxError } from "../lib/errors.ts";

describe("errors", () => {
  test("every refusal is a HookError, and its message is one printable line", () => {
    for (
      const error of [
        new UrlError("a\nb"),
        new DomainError("c\u001bd"),
        new LimitError("e"),
        new XmlSyntaxError("f", 2, 3),
      ]
    ) {
      assert.ok(error instanceof HookError);
      assert.ok(!error.message.includes("\n") && !error.message.includes("\u001b"), error.message);
    }
    assert.equal(new XmlSyntaxError("bad", 2, 3).message, "bad at line 2, column 3");
    assert.equal(new UrlError("x").name, "UrlError");
  });

  test("errorLine() tells a bug from a refusal", () => {
    assert.equal(errorLine(new DomainError("no root element")), "no root element");
    assert.match(
      errorLine(new TypeError("Cannot read properties of undefined")),
      /^internal error \(TypeError: Cannot read properties of undefined\); please report it/,
    );
    assert.match(errorLine("thrown text\nsecond line"), /^internal error \(thrown text second line\)/);
  });

  test("printable() removes terminal controls and bidi overrides, and cuts long text", () => {
    assert.equal(printable("a\u001b]0;title\u0007b\u202ec"), "a ]0;title b c");
    assert.equal(printable("x".repeat(300)).length, 200);
  });
});
