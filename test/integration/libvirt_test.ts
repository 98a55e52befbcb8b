// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * Real libvirt accepts what the hook writes: every golden output is defined in
 * libvirt's test driver, every x86 output in this host's qemu:///system (which,
 * unlike the test driver, knows that q35 has no IDE), and the URL QEMU would
 * fetch is read from `virsh domxml-to-native`.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { addHttpsCdrom } from "../../lib/domain/add_https_cdrom.ts";
import { parseIsoUrl } from "../../lib/url.ts";
import { nbdReconnectDelay, parseLibvirtVersion } from "../../lib/libvirt_version.ts";
import {
  defineOnSystem,
  fixtureCases,
  FIXTURES,
  localizeForThisHost,
  readFixture,
  relayCases,
  run,
  systemLibvirtMissing,
  virshMissing,
  workDir,
} from "../support/mod.ts";

const work = workDir("libvirt");

const X86 = (xml: string) => /<type[^>]*arch=['"](x86_64|i686)['"]/.test(xml);

/** Every golden output: direct mode's, and relay mode's. */
const OUTPUTS = [
  ...fixtureCases().map((name) => `${name}.out.xml`),
  ...relayCases().map((name) => `${name}.relay.out.xml`),
];

describe("libvirt test driver", { skip: virshMissing() }, () => {
  for (const output of OUTPUTS) {
    test(`virsh -c test:///default defines ${output}`, () => {
      const defined = run("virsh", ["-c", "test:///default", "define", join(FIXTURES, output)]);
      assert.equal(defined.status, 0, defined.stderr);
    });
  }
});

describe("qemu:///system", { skip: systemLibvirtMissing() }, () => {
  for (const output of OUTPUTS.filter((output) => X86(readFixture(output)))) {
    test(`qemu:///system defines ${output} on this host's machine types`, () => {
      const domain = `httpsisoboot-test-${output.replace(/\.xml$/, "").replaceAll(".", "-")}`;
      const path = join(work, output);
      writeFileSync(path, localizeForThisHost(readFixture(output), domain));
      assert.equal(defineOnSystem(path, domain), undefined);
    });
  }

  test("in relay mode QEMU reads the CD-ROM from the relay's socket, read-only, and libvirt keeps the URL in the metadata", () => {
    const uuid = "7a3c1f52-4d1e-4b7a-9c2e-5f0e8a6b1d21";
    const domain =
      `<domain type='qemu'><name>httpsisoboot-native</name><uuid>${uuid}</uuid><memory unit='MiB'>64</memory>` +
      "<os><type arch='x86_64' machine='q35'>hvm</type></os><devices/></domain>";
    const path = join(work, "native-relay.xml");
    writeFileSync(
      path,
      addHttpsCdrom(domain, "https://isos.example.org/a.iso?sig=s", { relayDir: "/run/httpsisoboot" }).xml,
    );
    const native = run("virsh", ["-c", "qemu:///system", "domxml-to-native", "qemu-argv", path]);
    assert.equal(native.status, 0, native.stderr);
    const blockdevs = native.stdout.split(/\s-blockdev\s/).slice(1).map((arg) =>
      JSON.parse(arg.trim().replace(/^'|'$/g, "").replaceAll(`'\\''`, "'").split(/'?\s+-/)[0])
    );
    const storage = blockdevs.filter((json) => json.driver === "nbd");
    assert.deepEqual(storage.map((json) => json.server), [{ type: "unix", path: `/run/httpsisoboot/${uuid}.sock` }]);
    const format = blockdevs.find((json) => json.file === storage[0]["node-name"]);
    assert.equal(format?.["read-only"], true, "read-only");
    assert.ok(!native.stdout.includes("sig=s"), "QEMU's command line holds no URL");
    const name = "httpsisoboot-test-relay-metadata";
    writeFileSync(path, localizeForThisHost(readFileSync(path, "utf8"), name));
    const defined = run("virsh", ["-c", "qemu:///system", "define", path]);
    assert.equal(defined.status, 0, defined.stderr);
    try {
      const kept = run("virsh", ["-c", "qemu:///system", "metadata", name, "http://ovirt.org/vm/httpsisoboot/1.0"]);
      assert.match(kept.stdout, /<relay url="https:\/\/isos\.example\.org:443\/a\.iso\?sig=\*\*\*"\/>/);
      assert.ok(!kept.stdout.includes("sig=s"), "no query value in what `virsh -r dumpxml` shows");
    } finally {
      run("virsh", ["-c", "qemu:///system", "undefine", name]);
    }
  });

  test("on libvirt 9.2 and later, QEMU's NBD client gets the relay's reconnect-delay", {
    skip: nbdReconnectDelay(parseLibvirtVersion(run("libvirtd", ["--version"]).stdout)) === undefined
      ? `libvirt ${run("libvirtd", ["--version"]).stdout.trim().split(" ").at(-1)} here has no NBD <reconnect delay> ` +
        "(9.2 and later), so the hook does not write it here"
      : undefined,
  }, () => {
    const domain = "<domain type='qemu'><name>httpsisoboot-reconnect</name><uuid>7a3c1f52-4d1e-4b7a-9c2e-5f0e8a6b1d21" +
      "</uuid><memory unit='MiB'>64</memory><os><type arch='x86_64' machine='q35'>hvm</type></os><devices/></domain>";
    const path = join(work, "reconnect.xml");
    writeFileSync(
      path,
      addHttpsCdrom(domain, "https://isos.example.org/a.iso", { relayDir: "/run/httpsisoboot", reconnectDelay: 10 })
        .xml,
    );
    const native = run("virsh", ["-c", "qemu:///system", "domxml-to-native", "qemu-argv", path]);
    assert.equal(native.status, 0, native.stderr);
    assert.match(native.stdout, /"reconnect-delay":10/);
  });

  test("qemu:///system refuses an IDE CD-ROM on q35, so the defines above can fail", () => {
    const domain = "httpsisoboot-test-ide-on-q35";
    const xml = readFixture("q35-uefi.out.xml").replace(/<target dev='sda' bus='sata'/, "<target dev='hda' bus='ide'");
    const path = join(work, "ide-on-q35.xml");
    writeFileSync(path, localizeForThisHost(xml, domain));
    assert.match(defineOnSystem(path, domain) ?? "", /IDE controllers are unsupported/);
  });

  const URLS = [
    "https://isos.example.org:443/el9/boot%20disk.iso",
    "https://isos.example.org:8443/a%3Ab%25c%3Fd%23e%5B%5D.iso?sig=a%2Fb%3D&x=1&empty=",
    "https://[2001:db8::10]:443/boot.iso",
    "https://127.0.0.1:4443/caf%C3%A9/boot.iso?X-Amz-Signature=abc%20def&X-Amz-Date=20261125T000000Z",
    "https://isos.example.org:443/a;b@c&d=e+f$g,h!i~j*k'l(m)n.iso?q=1",
    "https://xn--bcher-kva.example:443/boot.iso?a/b?c:d@e",
    "https://isos.example.org:443/a'b(c)*!d.iso?x='y'&z=(1)*!&w=%27",
  ];
  for (const url of URLS) {
    test(`QEMU fetches exactly ${url}, and preflight asks for the same`, () => {
      const fetched = fetchedUrl(url);
      assert.equal(fetched, url);
      const iso = parseIsoUrl(url);
      assert.equal(iso.href, fetched);
      assert.equal(
        fetched.slice(fetched.indexOf("/", "https://".length)),
        iso.requestTarget,
        "preflight's request target",
      );
    });
  }

  const NORMALIZED: Array<[string, string]> = [
    ["https://ISOS.example.org/café.iso#part", "https://isos.example.org:443/caf%C3%A9.iso"],
    ["https://bücher.example/%41.iso", "https://xn--bcher-kva.example:443/A.iso"],
    ["https://[2001:DB8::A]:8443/x.iso?", "https://[2001:db8::a]:8443/x.iso"],
  ];
  for (const [url, expected] of NORMALIZED) {
    test(`QEMU fetches ${expected} for ${url}, as parseIsoUrl() predicts`, () => {
      assert.equal(fetchedUrl(url), expected);
      assert.equal(parseIsoUrl(url).href, expected);
    });
  }
});

/** The url QEMU's https block driver is given, from `virsh domxml-to-native`. */
function fetchedUrl(url: string): string {
  const domain = "<domain type='qemu'><name>httpsisoboot-native</name><memory unit='MiB'>64</memory>" +
    "<os><type arch='x86_64' machine='q35'>hvm</type></os><devices/></domain>";
  const path = join(work, "native.xml");
  writeFileSync(path, addHttpsCdrom(domain, url).xml);
  const native = run("virsh", ["-c", "qemu:///system", "domxml-to-native", "qemu-argv", path]);
  assert.equal(native.status, 0, native.stderr);
  const blockdev = native.stdout.split(/\s-blockdev\s/).find((arg) => arg.includes('"driver":"https"'));
  assert.ok(blockdev, `no https blockdev in: ${native.stdout}`);
  // virsh quotes the JSON for a shell: '...'\''...'
  const json = blockdev!.trim().replace(/^'|'$/g, "").replaceAll(`'\\''`, "'").split(/'?\s+-/)[0];
  return JSON.parse(json).url;
}
