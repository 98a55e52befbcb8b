// SPDX-License-Identifier: GPL-2.0-or-later
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  describeReconnect,
  NBD_RECONNECT_DELAY_S,
  nbdReconnectDelay,
  parseLibvirtVersion,
} from "../lib/libvirt_version.ts";

describe("libvirt's version", () => {
  test("parseLibvirtVersion() reads what virtqemud and libvirtd print, and nothing else", () => {
    assert.deepEqual(parseLibvirtVersion("virtqemud (libvirt) 10.0.0\n"), [10, 0, 0]);
    assert.deepEqual(parseLibvirtVersion("libvirtd (libvirt) 9.2.1"), [9, 2, 1]);
    for (const text of ["", "libvirtd 9.0.0", "(libvirt) 9.0", "(libvirt) x.y.z"]) {
      assert.equal(parseLibvirtVersion(text), undefined, text);
    }
  });

  test("nbdReconnectDelay() is written from libvirt 9.2 on (EL 9.4's 10.0), never before or when unknown", () => {
    for (const version of [[9, 2, 0], [9, 10, 0], [10, 0, 0], [11, 0, 0]] as const) {
      assert.equal(nbdReconnectDelay([...version]), NBD_RECONNECT_DELAY_S, version.join("."));
    }
    for (const version of [[9, 1, 9], [9, 0, 0], [8, 10, 0]] as const) {
      assert.equal(nbdReconnectDelay([...version]), undefined, version.join("."));
    }
    assert.equal(nbdReconnectDelay(undefined), undefined);
  });

  test("describeReconnect() tells the admin what a relay that dies costs on this host", () => {
    assert.match(describeReconnect([9, 0, 0]), /^libvirt 9\.0\.0 has no NBD <reconnect> \(9\.2 and later, EL 9\.4\)/);
    assert.match(describeReconnect([10, 0, 0]), /pausing reads up to 10 s/);
    assert.match(describeReconnect(undefined), /version is unknown here/);
  });
});
