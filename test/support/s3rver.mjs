// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * s3rver (from npm), an S3 server, over TLS on 127.0.0.1, in a Node process
 * of its own whatever runtime runs the tests (Deno's Node layer does not
 * keep its connections alive as Node does). Prints "ready" once it listens;
 * stops on SIGTERM.
 *   node test/support/s3rver.mjs PORT DIR CERT KEY BUCKET
 */
import { readFileSync } from "node:fs";
import process from "node:process";
import S3rver from "s3rver";

const [port, directory, cert, key, bucket] = process.argv.slice(2);
const server = new S3rver({
  address: "127.0.0.1",
  port: Number(port),
  silent: true,
  directory,
  cert: readFileSync(cert),
  key: readFileSync(key),
  configureBuckets: [{ name: bucket }],
});
await server.run();
process.stdout.write("ready\n");
process.on("SIGTERM", () => server.close().then(() => process.exit(0)));
