// SPDX-License-Identifier: GPL-2.0-or-later
/** nginx on 127.0.0.1 with its own config, pid and logs under a temp dir. */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import { connect, createServer } from "node:net";
import { stopProcess } from "./processes.ts";

export interface Site {
  port: number;
  cert: string;
  key: string;
  /** Extra directives inside the server block, such as `max_ranges 0;`. */
  extra?: string;
  /** This site's own root, instead of the one every site shares. */
  root?: string;
}

export interface Nginx {
  accessLog: string;
  errorLog: string;
  stop(): void;
}

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Waits until something takes TCP connections on 127.0.0.1:`port`, `timeoutMs` at most; whether it did. */
export async function waitListening(port: number, timeoutMs = 10_000): Promise<boolean> {
  const listening = () =>
    new Promise<boolean>((resolve) => {
      const socket = connect({ host: "127.0.0.1", port });
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
  for (let waited = 0; waited < timeoutMs; waited += 50) {
    if (await listening()) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return false;
}

/** Starts nginx serving `root` on each site's port, with `http` in its http block; `stop()` ends it. */
export function startNginx(dir: string, root: string, sites: Site[], http = ""): Nginx {
  const prefix = join(dir, "nginx");
  mkdirSync(join(prefix, "tmp"), { recursive: true });
  const accessLog = join(prefix, "access.log");
  const errorLog = join(prefix, "error.log");
  const pid = join(prefix, "nginx.pid");
  const servers = sites.map((site) => `
  server {
    listen 127.0.0.1:${site.port} ssl;
    ssl_certificate ${site.cert};
    ssl_certificate_key ${site.key};
    root ${site.root ?? root};
    ${site.extra ?? ""}
  }`).join("");
  const config = join(prefix, "nginx.conf");
  writeFileSync(
    config,
    `# One process: a worker's command line names nothing of the run, so a
# cleanup that SIGKILLs what names the run's dir orphaned it for good.
master_process off;
pid ${pid};
error_log ${errorLog} info;
events { worker_connections 64; }
http {
  log_format ranges '$server_port $status $request_method $uri "$http_range" $body_bytes_sent $connection';
  access_log ${accessLog} ranges;
  client_body_temp_path ${prefix}/tmp;
  proxy_temp_path ${prefix}/tmp;
  fastcgi_temp_path ${prefix}/tmp;
  uwsgi_temp_path ${prefix}/tmp;
  scgi_temp_path ${prefix}/tmp;
  default_type application/octet-stream;
  ${http}${servers}
}
`,
  );
  execFileSync("nginx", ["-c", config, "-p", prefix, "-e", errorLog], { stdio: ["ignore", "ignore", "pipe"] });
  return {
    accessLog,
    errorLog,
    stop() {
      // Gone before stop() returns, so the caller may delete its dir: 5 s to
      // finish its answers, then killed.
      if (existsSync(pid)) stopProcess(Number(readFileSync(pid, "utf8").trim()), "SIGQUIT", 5_000);
    },
  };
}
