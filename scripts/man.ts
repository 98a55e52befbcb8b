// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * Writes httpsisoboot(8) to stdout: the text of `--help`, as a man page.
 * Used by `npm run rpm`.
 */
import process from "node:process";
import { HELP } from "../lib/help.ts";
import { VERSION } from "../lib/version.ts";

/** Escapes text for roff: backslashes, and a leading dot or quote. */
function roff(line: string): string {
  return line.replace(/\\/g, "\\e").replace(/^([.'])/, "\\&$1");
}

const [summary, ...body] = HELP.trimEnd().split("\n");
process.stdout.write([
  `.TH HTTPSISOBOOT 8 "" "httpsisoboot ${VERSION}" "System Administration"`,
  ".SH NAME",
  `httpsisoboot \\- ${roff(summary.replace(/^httpsisoboot: /, ""))}`,
  ".SH DESCRIPTION",
  ".nf",
  ...body.map(roff),
  ".fi",
  ".SH SEE ALSO",
  "/usr/share/doc/vdsm-hook-httpsisoboot/README.md",
  "",
].join("\n"));
