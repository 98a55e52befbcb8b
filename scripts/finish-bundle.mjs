// Makes the bundle an executable a host can run directly: a node shebang
// (deno runs it too: `deno run -A dist/httpsisoboot.mjs`) and mode 0755.
import { chmodSync, readFileSync, writeFileSync } from "node:fs";

const path = process.argv[2];
const code = readFileSync(path, "utf8").replace(/^#!.*\n/, "");
writeFileSync(path, `#!/usr/bin/env node\n${code}`);
chmodSync(path, 0o755);
