// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * lib/ is pure as a folder: no module in it imports anything that does I/O
 * (only lib/'s own modules, and node:buffer and node:util, which compute),
 * nor reaches the process, the runtime or the network by a global. I/O
 * lives in edge/, the one room of adapters.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { ROOT } from "./support/mod.ts";

const LIB = join(ROOT, "lib");
/** Builtins that compute and do no I/O. */
const PURE_BUILTINS = new Set(["node:buffer", "node:util"]);
/** Globals that reach outside the program. */
const IMPURE_GLOBALS = /\b(process\.|Deno\.|Bun\.|fetch\(|setTimeout\(|setInterval\(|XMLHttpRequest|WebSocket\()/;

function modules(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? modules(path) : name.endsWith(".ts") ? [path] : [];
  });
}

/** The code of a module without its comments and strings, where JSDoc examples and messages may name anything. */
function code(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "").replace(/(["'`])(?:\\.|(?!\1)[^\\])*\1/g, '""');
}

describe("lib/ is pure", () => {
  const files = modules(LIB);

  test("lib/ holds modules to check", () => {
    assert.ok(files.length > 30, `${files.length} modules`);
  });

  test("every module in lib/ imports only lib/ and builtins that do no I/O", () => {
    const offences: string[] = [];
    for (const file of files) {
      const text = readFileSync(file, "utf8");
      const specs = [
        ...text.matchAll(/^\s*(?:import|export)\b[^"']*?from\s+["']([^"']+)["']/gm),
        ...code(text.replace(/\bimport\(\s*"([^"]+)"\s*\)/g, "import(IMPORT:$1)")).matchAll(
          /import\(IMPORT:([^)]+)\)/g,
        ),
      ].map((match) => match[1]);
      for (const spec of specs) {
        const inside = spec.startsWith(".") && !relative(LIB, resolve(join(file, ".."), spec)).startsWith("..");
        if (!inside && !PURE_BUILTINS.has(spec)) offences.push(`${relative(ROOT, file)} imports ${spec}`);
      }
    }
    assert.deepEqual(offences, []);
  });

  test("no module in lib/ reaches the process, the runtime, timers or the network by a global", () => {
    const offences = files.filter((file) => IMPURE_GLOBALS.test(code(readFileSync(file, "utf8"))))
      .map((file) => `${relative(ROOT, file)}: ${IMPURE_GLOBALS.exec(code(readFileSync(file, "utf8")))![0]}`);
    assert.deepEqual(offences, []);
  });
});

describe("every module's dynamic imports", () => {
  test('every import("…") in hook.ts, lib/ and edge/ names a module that is there (type checks do not follow them)', () => {
    const files = [join(ROOT, "hook.ts"), ...modules(LIB), ...modules(join(ROOT, "edge"))];
    const missing: string[] = [];
    for (const file of files) {
      for (const [, spec] of readFileSync(file, "utf8").matchAll(/\bimport\(\s*"(\.[^"]+)"\s*\)/g)) {
        try {
          statSync(resolve(join(file, ".."), spec));
        } catch {
          missing.push(`${relative(ROOT, file)}: ${spec}`);
        }
      }
    }
    assert.deepEqual(missing, []);
  });
});
