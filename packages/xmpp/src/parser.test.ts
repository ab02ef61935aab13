import { describe, expect, it } from "vitest";
import { XmlStreamParser, type StreamError } from "./parser.js";
import { text, toXml, type XmlElement } from "./xml.js";

const HEADER = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='local' version='1.0'>`;

function run(chunks: (string | Buffer)[], limits = {}) {
  const stanzas: XmlElement[] = [];
  const errors: StreamError[] = [];
  let header: Record<string, string> | undefined;
  let ended = false;
  const p = new XmlStreamParser(
    { streamStart: (h) => (header = h.attrs), stanza: (s) => stanzas.push(s), streamEnd: () => (ended = true), error: (e) => errors.push(e) },
    limits,
  );
  for (const c of chunks) p.write(typeof c === "string" ? Buffer.from(c) : c);
  return { stanzas, errors, header, ended };
}

describe("XmlStreamParser", () => {
  it("parses a stream header, stanzas with resolved namespaces, and the close", () => {
    const r = run([HEADER, "<message to='a@local' type='chat'><body>h&amp;llo &#233;</body><x:y xmlns:x='urn:x'/></message> ", "</stream:stream>"]);
    expect(r.errors).toEqual([]);
    expect(r.header).toMatchObject({ to: "local", version: "1.0", xmlns: "http://etherx.jabber.org/streams" });
    expect(r.stanzas).toHaveLength(1);
    const m = r.stanzas[0]!;
    expect(m.attrs).toMatchObject({ to: "a@local", xmlns: "jabber:client" });
    expect(text(m)).toBe("h&llo é");
    expect((m.children[1] as XmlElement).attrs.xmlns).toBe("urn:x");
    expect(toXml(m)).toContain("<body xmlns=\"jabber:client\">h&amp;llo é</body>");
    expect(r.ended).toBe(true);
  });

  it("decodes a UTF-8 character split across two reads", () => {
    const bytes = Buffer.from(`${HEADER}<message><body>é😀</body></message>`);
    const cut = bytes.indexOf(Buffer.from("😀")) + 2;
    const r = run([bytes.subarray(0, cut), bytes.subarray(cut)]);
    expect(r.errors).toEqual([]);
    expect(text(r.stanzas[0]!)).toBe("é😀");
    // and one byte at a time
    const slow = run([...bytes].map((b) => Buffer.from([b])));
    expect(text(slow.stanzas[0]!)).toBe("é😀");
  });

  const bad: [string, string, string][] = [
    ["DOCTYPE", `<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a "b">]><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`, "restricted-xml"],
    [
      "billion laughs",
      `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><lolz>&lol3;</lolz>`,
      "restricted-xml",
    ],
    ["undefined entity", `${HEADER}<message><body>&nbsp;</body></message>`, "restricted-xml"],
    ["comment", `${HEADER}<!-- hi --><message/>`, "restricted-xml"],
    ["processing instruction", `${HEADER}<?foo bar?><message/>`, "restricted-xml"],
    ["mismatched tags", `${HEADER}<message><body></message>`, "not-well-formed"],
    ["text between stanzas", `${HEADER}hello<message/>`, "not-well-formed"],
    ["unbound prefix", `${HEADER}<x:message/>`, "not-well-formed"],
    ["other encoding", `<?xml version='1.0' encoding='ISO-8859-1'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`, "unsupported-encoding"],
  ];
  for (const [name, input, condition] of bad) {
    it(`rejects ${name} with <${condition}/>`, () => {
      const r = run([input]);
      expect(r.errors.map((e) => e.condition)).toEqual([condition]);
      expect(r.stanzas).toEqual([]);
    });
  }

  it("stops a 10,000-deep nesting at the depth limit, fast", () => {
    const t = Date.now();
    const r = run([HEADER + "<a>".repeat(10_000)]);
    expect(r.errors.map((e) => e.condition)).toEqual(["policy-violation"]);
    expect(Date.now() - t).toBeLessThan(500);
  });

  it("cuts off an oversized stanza while it arrives, and keeps the limit per stanza", () => {
    const big = run([HEADER, "<message><body>", "x".repeat(20_000)], { maxStanzaChars: 10_000 });
    expect(big.errors.map((e) => e.condition)).toEqual(["policy-violation"]);
    // many small stanzas in one chunk are fine
    const many = run([HEADER + "<message><body>hi</body></message>".repeat(2000)], { maxStanzaChars: 1000 });
    expect(many.errors).toEqual([]);
    expect(many.stanzas).toHaveLength(2000);
  });

  it("ignores input after the first error", () => {
    const r = run([`${HEADER}<!-- x -->`, "<message/>", "<!-- again -->"]);
    expect(r.errors).toHaveLength(1);
    expect(r.stanzas).toEqual([]);
  });
});

// Found by the fuzz properties in test/fuzz/xmpp-parser.test.ts.
describe("XmlStreamParser, cases the fuzzer found", () => {
  it("measures a stanza that arrives whole in one chunk (seed -1894298265: <message id='iii…'/> passed a limit of 20)", () => {
    const r = run([HEADER + `<message><body>${"x".repeat(20_000)}</body></message>`]);
    expect(r.errors.map((e) => e.condition)).toEqual(["policy-violation"]);
    expect(r.stanzas).toEqual([]);
    const attr = run([HEADER + `<message id='${"i".repeat(109)}'/>`], { maxStanzaChars: 20 });
    expect(attr.errors.map((e) => e.condition)).toEqual(["policy-violation"]);
    expect(attr.stanzas).toEqual([]);
  });

  it("measures a run of whitespace and the header when they arrive whole", () => {
    const ws = run([HEADER + " ".repeat(20_000) + "<message/>"]);
    expect(ws.errors.map((e) => e.condition)).toEqual(["policy-violation"]);
    const header = run([HEADER], { maxStanzaChars: 20 });
    expect(header.errors.map((e) => e.condition)).toEqual(["policy-violation"]);
  });

  it("reads nothing after the end of the stream, even in the same chunk (seed 1450388674: <message/><message/>)", () => {
    for (const input of [
      "<message/><message/>",
      "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'/><message/>",
      `${HEADER}</stream:stream></stream:stream>`,
      `${HEADER}</stream:stream>\u0000`,
    ]) {
      const whole = run([input]);
      expect(whole.ended, input).toBe(true);
      expect(whole.errors, input).toEqual([]);
      expect(whole.stanzas, input).toEqual([]);
      const bytes = Buffer.from(input);
      const cut = bytes.indexOf(Buffer.from("/>")) + 2;
      expect(run([bytes.subarray(0, cut), bytes.subarray(cut)]).errors, input).toEqual([]);
    }
  });
});
