// SPDX-License-Identifier: GPL-2.0-or-later
/** A throw-away certificate authority and server certificates, made with openssl for each run. */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { systemTrustBundle } from "../../edge/http/trust.ts";
import { join } from "node:path";
import { execFileSync } from "node:child_process";

export interface Authority {
  cert: string;
  key: string;
}

export interface ServerCert {
  cert: string;
  key: string;
}

function openssl(args: string[]): void {
  execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });
}

/** Makes a CA called `name` in `dir`. */
export function makeAuthority(dir: string, name: string): Authority {
  const base = join(dir, name.replace(/\W+/g, "-"));
  openssl([
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    "1",
    "-subj",
    `/CN=${name}`,
    "-keyout",
    `${base}.key`,
    "-out",
    `${base}.crt`,
  ]);
  return { cert: `${base}.crt`, key: `${base}.key` };
}

/**
 * Makes a server certificate signed by `authority`: for localhost and
 * 127.0.0.1 unless `names` says otherwise, valid for a day unless `days`
 * does (0 makes one that has expired a second later), or from `notBefore`
 * (YYYYMMDDHHMMSSZ) for a year, through `openssl ca`, which can set a start.
 */
export function makeServerCert(
  dir: string,
  name: string,
  authority: Authority,
  options: { names?: string[]; days?: number; notBefore?: string } = {},
): ServerCert {
  const base = join(dir, name);
  const extensions = `${base}.ext`;
  const names = (options.names ?? ["DNS:localhost", "IP:127.0.0.1"]).join(",");
  writeFileSync(extensions, `subjectAltName=${names}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`);
  openssl([
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-subj",
    "/CN=localhost",
    "-keyout",
    `${base}.key`,
    "-out",
    `${base}.csr`,
  ]);
  if (options.notBefore) signFrom(base, authority, options.notBefore, extensions);
  else {
    openssl([
      "x509",
      "-req",
      "-in",
      `${base}.csr`,
      "-CA",
      authority.cert,
      "-CAkey",
      authority.key,
      "-CAcreateserial",
      "-days",
      String(options.days ?? 1),
      "-extfile",
      extensions,
      "-out",
      `${base}.crt`,
    ]);
  }
  return { cert: `${base}.crt`, key: `${base}.key` };
}

/** Signs `base`.csr with validity starting at `notBefore`, for a year, as a minimal `openssl ca`. */
function signFrom(base: string, authority: Authority, notBefore: string, extensions: string): void {
  const ca = `${base}-ca`;
  mkdirSync(ca, { recursive: true });
  writeFileSync(join(ca, "index.txt"), "");
  writeFileSync(join(ca, "serial"), "1000\n");
  writeFileSync(
    join(ca, "ca.cnf"),
    `[ca]\ndefault_ca = test\n[test]\ndatabase = ${ca}/index.txt\nnew_certs_dir = ${ca}\n` +
      `serial = ${ca}/serial\ndefault_md = sha256\npolicy = any\n[any]\ncommonName = supplied\n`,
  );
  const notAfter = `${Number(notBefore.slice(0, 4)) + 1}${notBefore.slice(4)}`;
  openssl([
    "ca",
    "-batch",
    "-config",
    join(ca, "ca.cnf"),
    "-cert",
    authority.cert,
    "-keyfile",
    authority.key,
    "-in",
    `${base}.csr`,
    "-out",
    `${base}.crt`,
    "-startdate",
    notBefore,
    "-enddate",
    notAfter,
    "-extfile",
    extensions,
    "-notext",
  ]);
}

/**
 * A command prefix that runs a program trusting `caCert` on top of the
 * system's roots, in a private mount namespace only: the host's trust store
 * is untouched. Needs root. Writes the combined bundle into `dir`.
 */
export function trustingPrefix(dir: string, caCert: string): string[] {
  const system = systemTrustBundle();
  const bundle = join(dir, "trusting-bundle.crt");
  writeFileSync(bundle, readFileSync(system, "utf8") + "\n" + readFileSync(caCert, "utf8"));
  const script = `mount --bind "$1" "$2" && shift 2 && exec "$@"`;
  return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", bundle, system];
}
