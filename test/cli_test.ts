// SPDX-License-Identifier: GPL-2.0-or-later
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { parseCommand } from "../lib/cli.ts";
import { UsageError } from "../lib/errors.ts";

describe("parseCommand()", () => {
  const CASES: Array<[string[], unknown]> = [
    [[], { mode: "hook" }],
    [["--debug"], { mode: "hook" }],
    [["--help"], { mode: "help" }],
    [["-V"], { mode: "version" }],
    [["--install"], { mode: "install", root: "" }],
    [["--status"], { mode: "status" }],
    [["--uninstall", "--dry-run"], { mode: "uninstall", root: "", dryRun: true }],
    [["--uninstall", "--root", "/stage/"], { mode: "uninstall", root: "/stage" }],
    [["--check", "https://a.example/x.iso"], { mode: "check", url: "https://a.example/x.iso" }],
    [["--dry-run"], { mode: "dry-run", url: undefined, file: undefined, diff: false }],
    [["--dry-run", "--diff", "--url", "https://a.example/x.iso", "-"], {
      mode: "dry-run",
      url: "https://a.example/x.iso",
      file: "-",
      diff: true,
    }],
  ];
  for (const [args, expected] of CASES) {
    test(`parseCommand() reads ${JSON.stringify(args)}`, () => {
      assert.deepEqual(parseCommand(args), expected);
    });
  }

  const BAD: Array<[string[], RegExp]> = [
    [["--frobnicate"], /^unknown option '--frobnicate'; see --help$/],
    [["--status", "--url", "https://a.example/x.iso"], /^--status takes nothing else; see --help$/],
    [["--status", "x"], /^--status takes nothing else; see --help$/],
    [["--check", "--url"], /see --help/],
    [["--check"], /^option '--check' needs a value; see --help$/],
    [["--check", "https://a.example/x.iso", "file.xml"], /--check takes only a URL/],
    [["--dry-run", "a.xml", "b.xml"], /--dry-run takes one FILE, not 2/],
    [["--url", "https://a.example/x.iso"], /'--url' only works with --dry-run/],
    [["domain.xml"], /'domain.xml' only works with --dry-run/],
    [["--install", "--dry-run"], /^--install takes only --root DIR/],
    [
      ["--install", "--root", "stage"],
      /^--root takes an absolute path, not 'stage': give the staging root from \/, such as "\$PWD\/stage"$/,
    ],
    [
      ["--uninstall", "--root", "/"],
      /^--root takes a staging root, not '\/': leave --root out to install on this host$/,
    ],
  ];
  for (const [args, words] of BAD) {
    test(`parseCommand() refuses ${JSON.stringify(args)} with a UsageError`, () => {
      assert.throws(
        () => parseCommand(args),
        (error: Error) => error instanceof UsageError && words.test(error.message),
      );
    });
  }
});
