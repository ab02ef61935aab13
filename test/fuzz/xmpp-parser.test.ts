// The XMPP front door's XML stream parser (packages/xmpp/src/parser.ts) fed hostile streams: cut at
// any byte, nested deep, with huge attributes, entity and DTD tricks, and byte-level damage. It never
// throws, reports at most one StreamError with a documented condition and then stays silent, never
// hands over a stanza deeper or larger than its limits, and reads a stream the same however it is cut.
import { describe, expect, it } from "vitest";
import { StreamError, XmlStreamParser, type StreamErrorCondition } from "../../packages/xmpp/src/parser.js";
import { escapeAttr, escapeText, toXml, type XmlElement } from "../../packages/xmpp/src/xml.js";
import { attempt, check, fc, mutate, mutationsArb, note, TEST_TIMEOUT } from "./fuzz.js";

const CONDITIONS: StreamErrorCondition[] = ["not-well-formed", "restricted-xml", "policy-violation", "unsupported-version", "unsupported-encoding"];
const HEADER = `<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='local' version='1.0'>`;

type Event = { kind: "start"; attrs: Record<string, string> } | { kind: "stanza"; xml: string; element: XmlElement } | { kind: "end" } | { kind: "error"; error: unknown };

interface Limits {
  maxDepth: number;
  maxStanzaChars: number;
}

/** Feeds the chunks; write() must never throw. */
function parse(chunks: (Buffer | string)[], limits: Limits): Event[] {
  const events: Event[] = [];
  const p = new XmlStreamParser(
    {
      streamStart: (h) => events.push({ kind: "start", attrs: h.attrs }),
      stanza: (element) => events.push({ kind: "stanza", xml: toXml(element), element }),
      streamEnd: () => events.push({ kind: "end" }),
      error: (error) => events.push({ kind: "error", error }),
    },
    limits,
  );
  for (const c of chunks) {
    const out = attempt("XmlStreamParser.write", () => p.write(c));
    if (!out.ok) throw new Error(`write threw ${(out.error as Error)?.stack ?? String(out.error)}`);
  }
  return events;
}

/** Characters a stanza holds (names, attributes, text), in code points: never more than its source. */
function contentSize(e: XmlElement): number {
  let n = [...e.name].length;
  for (const [k, v] of Object.entries(e.attrs)) if (k !== "xmlns") n += [...k].length + [...v].length;
  for (const c of e.children) n += typeof c === "string" ? [...c].length : contentSize(c);
  return n;
}

function height(e: XmlElement): number {
  let h = 0;
  for (const c of e.children) if (typeof c !== "string") h = Math.max(h, height(c));
  return h + 1;
}

/** The documented contract, for any input and any cutting. */
function contract(events: Event[], limits: Limits): void {
  const what = JSON.stringify(meaning(events)).slice(0, 500);
  const errors = events.filter((e) => e.kind === "error");
  expect(errors.length, what).toBeLessThanOrEqual(1);
  const errorAt = events.findIndex((e) => e.kind === "error");
  if (errorAt >= 0) {
    const e = (events[errorAt] as { error: unknown }).error;
    expect(e).toBeInstanceOf(StreamError);
    expect(CONDITIONS).toContain((e as StreamError).condition);
    expect(errorAt, what).toBe(events.length - 1); // silent after the first failure
  }
  expect(events.filter((e) => e.kind === "start").length, what).toBeLessThanOrEqual(1);
  const endAt = events.findIndex((e) => e.kind === "end");
  if (endAt >= 0) expect(endAt, what).toBe(events.length - 1);
  for (const e of events) {
    if (e.kind !== "stanza") continue;
    // the stream header is depth 1, the stanza depth 2
    expect(height(e.element) + 1, e.xml.slice(0, 300)).toBeLessThanOrEqual(limits.maxDepth);
    expect(contentSize(e.element), e.xml.slice(0, 300)).toBeLessThanOrEqual(limits.maxStanzaChars);
  }
}

/** What a stream meant: comparable across cuttings. */
function meaning(events: Event[]): unknown[] {
  return events.map((e) => (e.kind === "stanza" ? e.xml : e.kind === "error" ? `error ${(e.error as StreamError).condition}` : e.kind === "start" ? e.attrs : "end"));
}

function stanzaOf(n: number): XmlElement {
  let e: XmlElement | string = "x";
  for (let i = 0; i < n; i++) e = { name: "a", attrs: { xmlns: "jabber:client" }, children: [e] };
  return { name: "message", attrs: { xmlns: "jabber:client" }, children: [e] };
}

// ---- hostile streams ----

const nameArb = fc.constantFrom("message", "iq", "presence", "body", "query", "x", "a", "stream:features", "x:y", "db:result", "ns1:item");
const textArb = fc.oneof(
  fc.string({ maxLength: 40 }).map(escapeText),
  fc.string({ unit: "binary", maxLength: 20 }).map(escapeText),
  fc.constantFrom(
    "&amp;", "&lt;&gt;&quot;&apos;", "&#233;", "&#x1F600;", "&#0;", "&#xD800;", "&#x110000;", "&#65;&#x41;", "&nbsp;", "&lol;", "&", "&amp",
    "]]>", "<![CDATA[ <not/> a tag ]]>", "\r\n", "\r", " \t\n", "\u0000", "\uFFFE", "\uD800", "😀", "\uFEFF",
  ),
);
const attrArb = fc.tuple(
  fc.oneof(fc.constantFrom("to", "from", "id", "type", "xml:lang", "xmlns", "xmlns:x", "x:attr", "a", "version"), fc.string({ minLength: 1, maxLength: 8 })),
  fc.oneof(fc.string({ maxLength: 30 }).map(escapeAttr), fc.constantFrom("urn:x", "jabber:client", "&lt;", "&#x41;", "&undefined;", "a\"b", "x".repeat(3000))),
);
const elementArb: fc.Arbitrary<string> = fc.letrec<{ el: string }>((tie) => ({
  el: fc
    .tuple(nameArb, fc.array(attrArb, { maxLength: 4 }), fc.array(fc.oneof({ arbitrary: textArb, weight: 2 }, { arbitrary: tie("el"), weight: 1 }), { maxLength: 4, depthIdentifier: "el" }))
    .map(([name, attrs, kids]) => {
      const a = attrs.map(([k, v]) => ` ${k}="${v}"`).join("");
      return kids.length === 0 ? `<${name}${a}/>` : `<${name}${a}>${kids.join("")}</${name}>`;
    }),
})).el;
const trickArb = fc.oneof(
  fc.integer({ min: 1, max: 3000 }).map((n) => "<a>".repeat(n)),
  fc.integer({ min: 1, max: 40 }).map((n) => "<a>".repeat(n) + "</a>".repeat(n)),
  fc.integer({ min: 1, max: 8 }).map((n) => "<message>" + "<a>".repeat(n) + "x" + "</a>".repeat(n) + "</message>"),
  fc.integer({ min: 100, max: 40_000 }).map((n) => `<message id='${"i".repeat(n)}'/>`),
  fc.integer({ min: 100, max: 40_000 }).map((n) => `<message><body>${"b".repeat(n)}</body></message>`),
  fc.integer({ min: 100, max: 20_000 }).map((n) => " ".repeat(n)),
  fc.constantFrom(
    `<!DOCTYPE x [<!ENTITY a "b">]>`,
    `<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><m>&lol2;</m>`,
    `<!ENTITY x SYSTEM "file:///etc/passwd">`,
    "<!-- a comment -->",
    "<?pi data?>",
    "<?xml version='1.1'?>",
    "</stream:stream>",
    "</message>",
    "<message><body></message>",
    "<x:message/>",
    "<message a='1' a='2'/>",
    "hello",
    "<",
    "<message",
    "<![CDATA[x]]>",
  ),
);
const streamArb = fc
  .tuple(
    fc.constantFrom("", "<?xml version='1.0'?>", "<?xml version='1.0' encoding='UTF-8'?>", "<?xml version='2.0'?>", "<?xml version='1.0' encoding='latin1'?>", "\uFEFF"),
    fc.oneof({ arbitrary: fc.constant(HEADER), weight: 5 }, { arbitrary: fc.constant("<stream:stream xmlns:stream='http://etherx.jabber.org/streams'/>"), weight: 1 }, { arbitrary: elementArb, weight: 1 }),
    fc.array(fc.oneof({ arbitrary: elementArb, weight: 4 }, { arbitrary: fc.constantFrom(" ", "\n", "\r\n\t"), weight: 2 }, { arbitrary: trickArb, weight: 1 }), { maxLength: 6 }),
    fc.boolean(),
  )
  .map(([decl, header, body, close]) => decl + header + body.join("") + (close ? "</stream:stream>" : ""));

const limitsArb = fc.record({ maxDepth: fc.oneof(fc.integer({ min: 2, max: 8 }), fc.integer({ min: 2, max: 40 })), maxStanzaChars: fc.oneof(fc.integer({ min: 20, max: 500 }), fc.integer({ min: 500, max: 300_000 })) });
const BIG: Limits = { maxDepth: 10_000, maxStanzaChars: 10_000_000 };

/** Cuts bytes at the given points (a UTF-8 character may be cut in two). */
function cut(bytes: Buffer, points: number[]): Buffer[] {
  const at = [...new Set(points.map((p) => p % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of [...at, bytes.length]) {
    out.push(bytes.subarray(prev, p));
    prev = p;
  }
  return out;
}
const cutsArb = fc.array(fc.nat(), { maxLength: 12 });

describe("fuzz: the XMPP stream parser", () => {
  it("hostile streams, cut anywhere, under any limits: never a throw, one documented error, limits kept", () => {
    check(
      fc.property(streamArb, cutsArb, limitsArb, (text, cuts, limits) => {
        const bytes = Buffer.from(note(text));
        contract(parse(cut(bytes, cuts), limits), limits);
      }),
      1 / 2,
    );
  }, TEST_TIMEOUT);

  it("damaged bytes (flips, truncations, insertions, arbitrary bytes) keep the same contract", () => {
    const damaged = fc.tuple(streamArb, mutationsArb).map(([t, ms]) => Buffer.from(mutate(Buffer.from(t), ms)));
    const junk = fc.uint8Array({ maxLength: 400 }).map((b) => Buffer.concat([Buffer.from(HEADER), b]));
    check(
      fc.property(fc.oneof(damaged, junk), cutsArb, limitsArb, (bytes, cuts, limits) => {
        note(bytes);
        contract(parse(cut(bytes, cuts), limits), limits);
      }),
      1 / 2,
    );
  }, TEST_TIMEOUT);

  it("a stream means the same however it is cut (bytes or WebSocket text)", () => {
    check(
      fc.property(streamArb, cutsArb, (text, cuts) => {
        const bytes = Buffer.from(note(text));
        const whole = meaning(parse([bytes], BIG));
        expect(meaning(parse(cut(bytes, cuts), BIG))).toEqual(whole);
        // a WebSocket text message: ws hands over well-formed UTF-16 (a lone surrogate cannot arrive)
        expect(meaning(parse([bytes.toString("utf8")], BIG))).toEqual(whole);
      }),
      1 / 2,
    );
  }, TEST_TIMEOUT);

  it("the depth limit is exact: a stanza nested up to maxDepth is handed over, one level more is refused", () => {
    check(
      fc.property(fc.integer({ min: 2, max: 12 }), fc.integer({ min: 0, max: 12 }), cutsArb, (maxDepth, n, cuts) => {
        const text = HEADER + "<message>" + "<a>".repeat(n) + "x" + "</a>".repeat(n) + "</message>";
        const events = parse(cut(Buffer.from(note(text)), cuts), { maxDepth, maxStanzaChars: 10_000 });
        const fits = n + 2 <= maxDepth; // header depth 1, message depth 2
        expect(meaning(events).slice(1)).toEqual(fits ? [toXml(stanzaOf(n))] : ["error policy-violation"]);
      }),
    );
  }, TEST_TIMEOUT);

  it("under limits, the stanzas handed over are the same however it is cut, up to a size refusal", () => {
    // An oversized stanza is refused while it arrives, so where the cut falls decides whether its
    // refusal or a later syntax error comes first, or whether an unfinished one is refused at all.
    check(
      fc.property(streamArb, cutsArb, limitsArb, (text, cuts, limits) => {
        const bytes = Buffer.from(note(text));
        const whole = meaning(parse([bytes], limits));
        const pieces = meaning(parse(cut(bytes, cuts), limits));
        const refused = (m: unknown[]) => m[m.length - 1] === "error policy-violation";
        if (!refused(whole) && !refused(pieces)) return void expect(pieces).toEqual(whole);
        const delivered = (m: unknown[]) => m.filter((e) => typeof e !== "string" || !e.startsWith("error"));
        const [short, long] = [whole, pieces].sort((x, y) => delivered(x).length - delivered(y).length) as [unknown[], unknown[]];
        expect(delivered(long).slice(0, delivered(short).length)).toEqual(delivered(short));
        if (delivered(short).length < delivered(long).length) expect(refused(short)).toBe(true);
      }),
      1 / 2,
    );
  }, TEST_TIMEOUT);
});
