// SPDX-License-Identifier: GPL-2.0-or-later
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { frontSocket, nbdkitArgs, type NbdkitFound, nbdkitProblem, RELAY_URL } from "../../lib/relay/plan.ts";
import { relayPaths } from "../../lib/paths.ts";

const UUID = "7a3c1f52-4d1e-4b7a-9c2e-5f0e8a6b1d21";
const PATHS = relayPaths({ run: "/run/httpsisoboot", cache: "/var/cache/httpsisoboot" }, UUID);
const CONFIG = {
  url: "https://isos.example.org:8443/secret-path/boot.iso?X-Amz-Signature=TOPSECRET",
  timeout: 30,
  allow: [],
  settingsFile: "/etc/vdsm/httpsisoboot.conf",
  cacheSize: 1024 ** 3,
  cacheTotal: { percent: 50 },
  readaheadBlocks: 8,
  sharedCache: 4 * 2 ** 30,
  hostConnections: 64,
};

describe("nbdkitArgs()", () => {
  const args = nbdkitArgs(PATHS, CONFIG, { selinux: false });

  test("nbdkitArgs() names nothing of the URL: no server, no path, no query", () => {
    for (const part of ["isos.example.org", "8443", "secret-path", "TOPSECRET", "Signature"]) {
      assert.ok(!args.join(" ").includes(part), part);
    }
    assert.ok(args.includes(`url=${RELAY_URL}`));
    assert.ok(args.includes(`unix-socket-path=${frontSocket(PATHS)}`));
    assert.equal(frontSocket(PATHS), `/run/httpsisoboot/${UUID}.d/front.sock`);
  });

  test("nbdkitArgs() stacks the cache, then blocks of 1 MiB, then retries, over curl, read-only, on the VM's socket", () => {
    const filters = args.filter((arg) => arg.startsWith("--filter="));
    assert.deepEqual(filters, ["--filter=blocksize", "--filter=cache", "--filter=retry-request"]);
    assert.ok(args.indexOf("curl") > args.indexOf("--filter=retry-request"), "filters come before the plugin");
    for (const arg of ["--readonly", "--foreground", "--exit-with-parent", "cache-on-read=true", "maxdata=65536"]) {
      assert.ok(args.includes(arg), arg);
    }
    assert.deepEqual(args.slice(args.indexOf("--unix"), args.indexOf("--unix") + 2), ["--unix", PATHS.socket]);
    assert.ok(args.includes("cache-min-block-size=65536") && args.includes("cache-max-size=1073741824"));
    assert.ok(args.includes("retry-request-retries=5") && args.includes("retry-request-delay=2"));
    assert.ok(args.includes("protocols=http") && args.includes("followlocation=false"), "curl may only ask the front");
    assert.ok(args.includes("timeout=65"), "curl's whole-request limit leaves room for the front's silent-server one");
  });

  test("nbdkitArgs() labels the socket for sVirt only where SELinux is on (nbdkit refuses the option elsewhere)", () => {
    assert.ok(!args.some((arg) => arg.startsWith("--selinux-label")));
    assert.ok(
      nbdkitArgs(PATHS, CONFIG, { selinux: true }).includes("--selinux-label=system_u:object_r:svirt_socket_t:s0"),
    );
  });
});

describe("nbdkitProblem()", () => {
  /** [what, what is there, the words of the problem or undefined] */
  const CASES: Array<[string, NbdkitFound, RegExp | undefined]> = [
    ["everything", { binary: "/usr/sbin/nbdkit", moduleDir: "/usr/lib64/nbdkit", missing: [] }, undefined],
    [
      "no nbdkit",
      { missing: [] },
      /is not installed; install nbdkit-server, nbdkit-curl-plugin and nbdkit-basic-filters \(EL\) or nbdkit \(Debian\), or set relay = off in f\.conf/,
    ],
    ["nbdkit without modules", { binary: "/usr/sbin/nbdkit", missing: [] }, /is not installed/],
    [
      "no curl plugin",
      { binary: "/usr/sbin/nbdkit", moduleDir: "/usr/lib64/nbdkit", missing: ["plugins/nbdkit-curl-plugin.so"] },
      /^nbdkit lacks nbdkit-curl-plugin\.so in \/usr\/lib64\/nbdkit; install nbdkit-curl-plugin, or set relay = off/,
    ],
    [
      "no basic filters",
      {
        binary: "/usr/sbin/nbdkit",
        moduleDir: "/usr/lib64/nbdkit",
        missing: ["filters/nbdkit-cache-filter.so", "filters/nbdkit-retry-request-filter.so"],
      },
      /lacks nbdkit-cache-filter\.so, nbdkit-retry-request-filter\.so in \/usr\/lib64\/nbdkit; install nbdkit-basic-filters,/,
    ],
  ];
  for (const [what, found, words] of CASES) {
    test(`nbdkitProblem() with ${what}`, () => {
      const problem = nbdkitProblem(found, "f.conf");
      if (words === undefined) assert.equal(problem, undefined);
      else assert.match(problem ?? "", words);
    });
  }
});
