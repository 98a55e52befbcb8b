// SPDX-License-Identifier: GPL-2.0-or-later
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { domainUuid, RELAY_NAMESPACE, relayMetadataEdit, relayUrlOf } from "../../lib/domain/relay_metadata.ts";
import { parseXml } from "../../lib/xml/parse.ts";
import { applyEdits } from "../../lib/xml/edit.ts";
import { DomainError } from "../../lib/errors.ts";
import { readFixture } from "../support/mod.ts";

const UUID = "7a3c1f52-4d1e-4b7a-9c2e-5f0e8a6b1d21";
const URL = "https://isos.example.org:443/a.iso?sig=x&y='1'";

describe("domainUuid()", () => {
  /** [what, the <uuid> text, the UUID or undefined for a refusal] */
  const CASES: Array<[string, string | undefined, string | undefined]> = [
    ["VDSM's", UUID, UUID],
    ["upper case", UUID.toUpperCase(), UUID],
    ["without dashes, as libvirt also takes", UUID.replaceAll("-", ""), UUID],
    ["white space around it", `\n  ${UUID}\n`, UUID],
    ["none", undefined, undefined],
    ["a name", "web01", undefined],
    ["a path", "../../etc/passwd-4d1e-4b7a-9c2e-5f0e8a6b1d21", undefined],
    ["a UUID with a comment in it", `${UUID}<!-- x -->`, undefined],
  ];
  for (const [what, text, uuid] of CASES) {
    test(`domainUuid() ${uuid ? "reads" : "refuses"} ${what}`, () => {
      const document = parseXml(`<domain>${text === undefined ? "" : `<uuid>${text}</uuid>`}</domain>`);
      if (uuid) assert.equal(domainUuid(document), uuid);
      else assert.throws(() => domainUuid(document), DomainError);
    });
  }
});

describe("relayMetadataEdit() and relayUrlOf()", () => {
  test("relayMetadataEdit() adds the record to VDSM's <metadata>, beside oVirt's, in its own namespace", () => {
    const document = parseXml(readFixture("q35-vdsm.in.xml"));
    const written = applyEdits(document.text, [relayMetadataEdit(document, URL)]);
    const reparsed = parseXml(written);
    assert.equal(relayUrlOf(reparsed), URL);
    const record = reparsed.root.children.find((element) => element.name === "metadata")!.children.at(-1)!;
    assert.equal(record.namespace, RELAY_NAMESPACE);
    assert.match(
      written,
      /\n {8}<httpsisoboot:relay xmlns:httpsisoboot="[^"]+" url="https:\/\/isos\.example\.org:443\/a\.iso\?sig=x&amp;y=&apos;1&apos;" \/>\n {4}<\/metadata>/,
    );
  });

  test("relayMetadataEdit() makes <metadata> after <uuid> when the domain has none", () => {
    const document = parseXml(`<domain type='kvm'>\n  <name>a</name>\n  <uuid>${UUID}</uuid>\n  <devices/>\n</domain>`);
    const written = applyEdits(document.text, [relayMetadataEdit(document, URL)]);
    assert.match(
      written,
      new RegExp(
        `<uuid>${UUID}</uuid>\\n  <metadata>\\n    <httpsisoboot:relay [^>]+/>\\n  </metadata>\\n  <devices/>`,
      ),
    );
    assert.equal(relayUrlOf(parseXml(written)), URL);
  });

  test("relayMetadataEdit() replaces an earlier record, whatever prefix it had, and keeps the rest", () => {
    const earlier = `<domain><uuid>${UUID}</uuid><metadata><o:vm xmlns:o="http://ovirt.org/vm/1.0"/>` +
      `<h:relay xmlns:h="${RELAY_NAMESPACE}" url="https://old.example:443/old.iso"/></metadata></domain>`;
    const document = parseXml(earlier);
    const written = applyEdits(earlier, [relayMetadataEdit(document, URL)]);
    assert.equal(relayUrlOf(parseXml(written)), URL);
    assert.equal(written.match(/:relay /g)!.length, 1);
    assert.ok(written.includes(`<o:vm xmlns:o="http://ovirt.org/vm/1.0"/>`));
  });

  test("relayUrlOf() reads only the hook's namespace: an element named relay in another is not ours", () => {
    const other = parseXml(
      `<domain><metadata><x:relay xmlns:x="http://example.org/x" url="https://evil.example/x.iso"/></metadata></domain>`,
    );
    assert.equal(relayUrlOf(other), undefined);
    assert.equal(relayUrlOf(parseXml("<domain/>")), undefined);
  });
});
