// SPDX-License-Identifier: GPL-2.0-or-later
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { cdromElement, isCdromFor, isRelayCdrom } from "../../lib/domain/cdrom.ts";
import { parseIsoUrl } from "../../lib/url.ts";
import { parseXml } from "../../lib/xml/parse.ts";
import { renderElement } from "../../lib/xml/edit.ts";

const URL = parseIsoUrl("https://isos.example.org:8443/el9/boot%20disk.iso?sig=s");
const TARGET = { dev: "sdb", bus: "sata" as const };
const STYLE = parseXml("<a b='c'/>");
const render = (element: ReturnType<typeof cdromElement>) => renderElement(STYLE, element, "", "");

describe("cdromElement()", () => {
  test("cdromElement() reads https with QEMU's curl, tuned, read-only and booted first", () => {
    assert.equal(
      render(cdromElement({ url: URL, target: TARGET, timeout: 30, readahead: 1048576 })),
      "<disk type='network' device='cdrom'><driver name='qemu' type='raw'/>" +
        "<source protocol='https' name='/el9/boot disk.iso' query='sig=s'><host name='isos.example.org' port='8443'/>" +
        "<readahead size='1048576'/><timeout seconds='30'/></source>" +
        "<target dev='sdb' bus='sata' tray='closed'/><readonly/><boot order='1'/></disk>",
    );
  });

  test("cdromElement() with a relay reads its NBD socket, and holds no URL", () => {
    const socket = "/run/httpsisoboot/7a3c1f52-4d1e-4b7a-9c2e-5f0e8a6b1d21.sock";
    const written = render(cdromElement({ url: URL, target: TARGET, timeout: 30, relay: { socket } }));
    assert.equal(
      written,
      "<disk type='network' device='cdrom'><driver name='qemu' type='raw'/>" +
        `<source protocol='nbd'><host transport='unix' socket='${socket}'/></source>` +
        "<target dev='sdb' bus='sata' tray='closed'/><readonly/><boot order='1'/></disk>",
    );
  });
});

describe("isCdromFor() and isRelayCdrom()", () => {
  const https = parseXml(render(cdromElement({ url: URL, target: TARGET }))).root;
  const relay = parseXml(render(cdromElement({ url: URL, target: TARGET, relay: { socket: "/run/h/a.sock" } }))).root;

  test("isCdromFor() knows the https CD-ROM of the same URL only, the host in any case and port 443 implied", () => {
    assert.equal(isCdromFor(https, URL), true);
    assert.equal(isCdromFor(https, parseIsoUrl("https://isos.example.org:8443/el9/boot%20disk.iso?sig=t")), false);
    assert.equal(isCdromFor(relay, URL), false);
    const implied = parseXml(
      "<disk type='network' device='cdrom'><source protocol='https' name='/a.iso'><host name='A.example'/></source></disk>",
    );
    assert.equal(isCdromFor(implied.root, parseIsoUrl("https://a.example/a.iso")), true);
  });

  test("isRelayCdrom() knows the relay CD-ROM on the same socket only", () => {
    assert.equal(isRelayCdrom(relay, "/run/h/a.sock"), true);
    assert.equal(isRelayCdrom(relay, "/run/h/b.sock"), false);
    assert.equal(isRelayCdrom(https, "/run/h/a.sock"), false);
    const disk = parseXml(
      "<disk type='network' device='disk'><source protocol='nbd'><host transport='unix' socket='/run/h/a.sock'/></source></disk>",
    );
    assert.equal(isRelayCdrom(disk.root, "/run/h/a.sock"), false, "a disk, not a CD-ROM");
  });
});
