import { describe, expect, it } from "vitest";
import { Reader, Writer } from "./bytes.js";
import * as A from "@automerge/automerge";
import { genesisChange, hasChanges } from "./conversation.js";
import { compareHlc } from "./hlc.js";
import {
  AddressError, decodeFrame, emptySegment, encodeFrame, probeCheck, fingerprint, formatHlc, generateIdentity,
  hlcReceive, hlcTick, parseAddress, parseHlc, parseIdentityFile, randomBytes,
  serializeIdentity, DecodeError,
} from "./index.js";

describe("varints", () => {
  it("round-trip values past 2^32", () => {
    const values = [0, 1, 127, 128, 300, 2 ** 32 + 5, Date.UTC(2026, 0, 1), Number.MAX_SAFE_INTEGER];
    const w = new Writer();
    for (const v of values) w.varint(v);
    const r = new Reader(w.finish());
    expect(values.map(() => r.varint())).toEqual(values);
    r.end();
  });
  it("reject truncation", () => {
    expect(() => new Reader(Uint8Array.from([0x80])).varint()).toThrow(DecodeError);
  });
  it("a canonical reader refuses a longer form than the value needs; a lenient one (envelopes, cards) takes it", () => {
    for (const bytes of [[0x80, 0x00], [0xe6, 0x00], [0xff, 0x80, 0x00]]) {
      expect(() => new Reader(Uint8Array.from(bytes), true).varint()).toThrow(/shortest form/);
      expect(() => new Reader(Uint8Array.from(bytes)).varint()).not.toThrow();
    }
    expect(new Reader(Uint8Array.from([0x00]), true).varint()).toBe(0);
    expect(new Reader(Uint8Array.from([0x80, 0x01]), true).varint()).toBe(128);
  });
});

describe("addresses and identities", () => {
  it("parses name@home and defaults home to local", () => {
    expect(parseAddress("Amara@Kisumu-Primary")).toEqual({ name: "amara", home: "kisumu-primary" });
    expect(parseAddress("amara")).toEqual({ name: "amara", home: "local" });
    expect(() => parseAddress("a b@x")).toThrow(AddressError);
    expect(() => parseAddress("amara@")).toThrow(AddressError);
  });
  it("serializes identities and gives readable fingerprints", () => {
    const id = generateIdentity("amara");
    const back = parseIdentityFile(JSON.parse(JSON.stringify(serializeIdentity(id))));
    expect(back.signing.publicKey).toEqual(id.signing.publicKey);
    expect(back.sealing.publicKey).toEqual(id.sealing.publicKey);
    expect(fingerprint(id.signing.publicKey)).toMatch(/^[a-z2-7]{4}(-[a-z2-7]{4}){3}$/);
    expect(() => parseIdentityFile({ version: 3 })).toThrow(/version/);
  });
});

describe("hybrid logical clock", () => {
  it("orders a reply after the message it answers even when the replier's clock is behind", () => {
    const sent = hlcTick({ wall: 0, counter: 0 }, 5_000_000); // sender's clock is ahead
    const replier = hlcReceive({ wall: 1000, counter: 0 }, sent, 1000);
    const reply = hlcTick(replier, 1001);
    expect(compareHlc(reply, sent)).toBeGreaterThan(0);
    expect(formatHlc(reply) > formatHlc(sent)).toBe(true);
    expect(parseHlc(formatHlc(reply))).toEqual(reply);
  });
});

describe("segments", () => {
  it("start from one deterministic genesis so independent creators agree", () => {
    expect(genesisChange()).toEqual(genesisChange());
    expect(emptySegment().messages).toEqual([]);
  });
});

describe("sync frames", () => {
  it("round-trip and reject garbage", () => {
    const ids = [randomBytes(32), randomBytes(32)];
    expect(decodeFrame(encodeFrame({ type: "have", last: true, ids }))).toEqual({ type: "have", last: true, ids });
    expect(decodeFrame(encodeFrame({ type: "envelope", hops: 2, copies: 8, envelope: Uint8Array.from([1, 2]) }))).toEqual({ type: "envelope", hops: 2, copies: 8, envelope: Uint8Array.from([1, 2]) });
    expect(() => decodeFrame(Uint8Array.from([9]))).toThrow(DecodeError);
    expect(() => decodeFrame(Uint8Array.from([1, 1, 5]))).toThrow(DecodeError);
  });
  // Found by test/fuzz/frames.test.ts: a frame must encode back to exactly its bytes (one frame, one encoding).
  it("refuse a varint in a longer form than needed (fuzz seed 1983666626: a sketch cell count e6 00 for 66)", () => {
    expect(decodeFrame(Uint8Array.from([5, 1]))).toEqual({ type: "done", range: expect.anything(), level: 1 });
    expect(() => decodeFrame(Uint8Array.from([5, 0x81, 0x00]))).toThrow(/shortest form/);
    expect(() => decodeFrame(Uint8Array.from([0x82, 0x00, 0]))).toThrow(/shortest form/);
  });
  it("Have16 names envelopes by their 16-byte id prefix, with Have's last-of-listing flag", () => {
    const keys = [randomBytes(16), randomBytes(16)];
    const bytes = encodeFrame({ type: "have16", last: true, keys });
    expect(bytes.length).toBe(3 + 2 * 16);
    expect(decodeFrame(bytes)).toEqual({ type: "have16", last: true, keys });
    expect(decodeFrame(Uint8Array.from([14, 0, 0]))).toEqual({ type: "have16", last: false, keys: [] });
    expect(() => decodeFrame(Uint8Array.from([14, 2, 0]))).toThrow(/unknown flags/);
    expect(() => decodeFrame(Uint8Array.from([14, 0, 1, ...randomBytes(15)]))).toThrow(DecodeError);
    expect(() => encodeFrame({ type: "have16", last: false, keys: [randomBytes(32)] })).toThrow(/16 bytes/);
  });
  it("Have8, Want8 and NotMine8 name envelopes by their 8-byte id prefix, and refuse any other length", () => {
    const keys = [randomBytes(8), randomBytes(8)];
    const have = encodeFrame({ type: "have8", last: true, keys });
    expect([...have.subarray(0, 3)]).toEqual([19, 1, 2]);
    expect(have.length).toBe(3 + 2 * 8);
    expect(decodeFrame(have)).toEqual({ type: "have8", last: true, keys });
    expect(() => decodeFrame(Uint8Array.from([19, 2, 0]))).toThrow(/unknown flags 2 in a Have8/);
    const want = encodeFrame({ type: "want8", keys });
    expect(want.length).toBe(2 + 2 * 8);
    expect(decodeFrame(want)).toEqual({ type: "want8", keys });
    expect(() => decodeFrame(Uint8Array.from([20, 1, ...randomBytes(7)]))).toThrow(DecodeError);
    expect(() => encodeFrame({ type: "want8", keys: [randomBytes(16)] })).toThrow(/8 bytes/);
    const entries = [{ key: randomBytes(8), check: probeCheck(randomBytes(32), [randomBytes(16)]) }];
    const notMine = encodeFrame({ type: "not-mine8", entries });
    expect(notMine.length).toBe(2 + 16);
    expect(decodeFrame(notMine)).toEqual({ type: "not-mine8", entries });
    expect(() => encodeFrame({ type: "not-mine8", entries: [{ key: randomBytes(16), check: entries[0]!.check }] })).toThrow(RangeError);
  });
  it("Since carries two 8-byte epochs; Mark an arrival number and its echo bit", () => {
    const since = { type: "since" as const, epoch: randomBytes(8), yours: new Uint8Array(8) };
    expect(encodeFrame(since).length).toBe(1 + 16);
    expect(decodeFrame(encodeFrame(since))).toEqual(since);
    expect(() => decodeFrame(Uint8Array.from([15, ...randomBytes(15)]))).toThrow(DecodeError);
    expect(() => encodeFrame({ ...since, yours: randomBytes(4) })).toThrow(RangeError);
    expect(decodeFrame(Uint8Array.from([16, 1, 0x81, 0x01]))).toEqual({ type: "mark", echo: true, n: 129 });
    expect(() => decodeFrame(Uint8Array.from([16, 2, 0]))).toThrow(/unknown flags/);
    expect(() => encodeFrame({ type: "mark", echo: false, n: -1 })).toThrow(RangeError);
    const entries = [{ key: randomBytes(16), check: probeCheck(randomBytes(32), [randomBytes(16)]) }];
    const notMine = encodeFrame({ type: "not-mine16", entries });
    expect(notMine.length).toBe(2 + 24);
    expect(decodeFrame(notMine)).toEqual({ type: "not-mine16", entries });
    expect(() => encodeFrame({ type: "not-mine16", entries: [{ key: randomBytes(16), check: randomBytes(4) }] })).toThrow(RangeError);
  });
  it("CrowdChange names who left and who joined, 4 bytes each, at most a crowd's worth of each", () => {
    const change = { type: "crowd-change" as const, gone: [randomBytes(4)], added: [randomBytes(4), randomBytes(4)] };
    const bytes = encodeFrame(change);
    expect(bytes.length).toBe(1 + 1 + 4 + 1 + 8);
    expect(decodeFrame(bytes)).toEqual(change);
    expect(decodeFrame(Uint8Array.from([18, 0, 0]))).toEqual({ type: "crowd-change", gone: [], added: [] });
    expect(() => decodeFrame(Uint8Array.from([18, 33, ...randomBytes(132), 0]))).toThrow(/limit 32/);
    expect(() => decodeFrame(Uint8Array.from([18, 0, 1, 1, 2, 3]))).toThrow(DecodeError);
    expect(() => encodeFrame({ ...change, added: [randomBytes(8)] })).toThrow(RangeError);
    expect(() => encodeFrame({ ...change, gone: Array.from({ length: 33 }, () => randomBytes(4)) })).toThrow(RangeError);
  });
  it("refuse unknown flag bits in a Have frame", () => {
    expect(decodeFrame(Uint8Array.from([1, 1, 0]))).toEqual({ type: "have", last: true, ids: [] });
    expect(() => decodeFrame(Uint8Array.from([1, 2, 0]))).toThrow(/unknown flags/);
    expect(() => decodeFrame(Uint8Array.from([1, 0x81, 0]))).toThrow(/unknown flags/);
  });
});

describe("contact cards", () => {
  it("round-trip and catch damage", async () => {
    const { encodeCard, decodeCard } = await import("./index.js");
    const id = generateIdentity("chiku", "kisumu-primary");
    const card = encodeCard(id);
    expect(decodeCard(card)).toMatchObject({ name: "chiku", home: "kisumu-primary", signPublicKey: id.signing.publicKey });
    const broken = card.slice(0, 20) + (card[20] === "A" ? "B" : "A") + card.slice(21);
    expect(() => decodeCard(broken)).toThrow(/damaged contact card/);
    expect(() => decodeCard("hello")).toThrow(/not a Pigeon contact card/);
  });

  it("carry their school's word after a dot, as its bytes; a damaged word or a third part is refused", async () => {
    const { encodeCard, decodeCard } = await import("./index.js");
    const id = generateIdentity("chiku", "kisumu-primary");
    const word = Uint8Array.from({ length: 180 }, (_, i) => i);
    const card = encodeCard(id, word);
    expect(card.startsWith(encodeCard(id) + ".")).toBe(true);
    expect(decodeCard(card).schoolWord).toEqual(word);
    expect(decodeCard(encodeCard(id)).schoolWord).toBeUndefined();
    // a later device shows the card its first device gave it, with its own word
    expect(decodeCard(encodeCard({ ...id, signing: generateIdentity("x").signing, card }, Uint8Array.of(7))).schoolWord).toEqual(Uint8Array.of(7));
    expect(() => decodeCard(card + ".AAAA")).toThrow(/damaged contact card/);
    expect(() => decodeCard(card.replace(".", ".!"))).toThrow(/damaged contact card/);
    expect(() => decodeCard(encodeCard(id) + "." + "A".repeat(2049))).toThrow(/damaged contact card/);
  });
});

describe("hybrid logical clock bounds", () => {
  it("never writes a counter past its four digits: the wall moves on instead", async () => {
    const { HLC_MAX_COUNTER, hlcTick, hlcReceive, formatHlc, parseHlc } = await import("./hlc.js");
    const full = { wall: 1000, counter: HLC_MAX_COUNTER };
    expect(hlcTick(full, 500)).toEqual({ wall: 1001, counter: 0 });
    expect(hlcReceive(full, full, 500)).toEqual({ wall: 1001, counter: 0 });
    for (const h of [hlcTick(full, 500), hlcReceive(full, full, 500)]) expect(parseHlc(formatHlc(h))).toEqual(h);
  });
});

describe("what a carrier sees of an envelope", () => {
  it("a message's size class, not its length; the hour it was written, not the millisecond; no name length", async () => {
    const { appendMessage, conversationId, contactCard, keyId, newActorId, newConversationKey, openChange, sealChange, sealKey, paddedLength, CREATED_GRAIN_MS } = await import("./index.js");
    const { openKeyEnvelope } = await import("./envelope.js");
    const amara = generateIdentity("amara");
    const b = generateIdentity("b");
    const long = generateIdentity("a".repeat(32), "h".repeat(60));
    const key = newConversationKey();
    const conv = conversationId([amara.person, b.person]);
    const at = Date.UTC(2026, 10, 27, 10, 41, 17, 345);
    const seal = (body: string) => {
      const { change } = appendMessage(emptySegment(newActorId(amara.signing.publicKey)), { id: "a".repeat(24), authorKeyId: keyId(amara.person), hlc: "x", sentAt: at, body });
      return { change, env: sealChange(amara, { conversation: conv, segment: 0, recipients: [b.person], created: at }, key, change) };
    };
    const short = seal("hi");
    const longer = seal("hello there, are you coming to the well after school today?");
    expect(short.env.bytes.length).toBe(longer.env.bytes.length);
    expect(openChange(short.env, key)).toEqual(short.change);
    expect(openChange(longer.env, key)).toEqual(longer.change);
    expect(short.env.created).toBe(Date.UTC(2026, 10, 27, 10));
    expect(short.env.created % CREATED_GRAIN_MS).toBe(0);
    expect([1, 256, 257, 5000, 16384, 16385].map(paddedLength)).toEqual([512, 512, 512, 8192, 16384, 32768]);
    // the name inside a key envelope's boxes is padded too
    const k1 = sealKey(amara, { conversation: conv, recipients: [contactCard(b)], created: at }, key);
    const k2 = sealKey(long, { conversation: conversationId([long.person, b.person]), recipients: [contactCard(b)], created: at }, key);
    expect(k1.bytes.length).toBe(k2.bytes.length);
    expect(openKeyEnvelope(k2, b)?.authorClaims).toEqual({ name: "a".repeat(32), home: "h".repeat(60) });
  });
});

describe("hasChanges", () => {
  it("says whether a document holds every named change, as hasHeads does, whatever it holds back", () => {
    let d = A.from<{ n: number[] }>({ n: [] }, { actor: "aa".repeat(16) });
    const hashes: string[] = [];
    for (let i = 0; i < 5; i++) {
      d = A.change(d, (x) => void x.n.push(i));
      hashes.push(A.getHeads(d)[0]!);
    }
    const stranger = A.getHeads(A.change(A.from({ x: 1 }), (x) => void (x.x = 2)))[0]!;
    expect(hasChanges(d, [])).toBe(true);
    expect(hasChanges(d, hashes)).toBe(true);
    expect(hasChanges(d, [hashes[2]!])).toBe(true);
    expect(hasChanges(d, [hashes[0]!, stranger])).toBe(false);
    for (const hs of [hashes, [stranger], [hashes[1]!, stranger]]) expect(hasChanges(d, hs)).toBe(A.hasHeads(d, hs));
    // a change held back for a missing dependency: its dependency is missing, the others are still there
    let later = A.clone(d, { actor: "bb".repeat(16) });
    later = A.change(later, (x) => void x.n.push(5));
    const c1 = A.getLastLocalChange(later)!;
    later = A.change(later, (x) => void x.n.push(6));
    const c2 = A.getLastLocalChange(later)!;
    const [held] = A.applyChanges(d, [c2]);
    expect(A.getMissingDeps(held, [])).toEqual([A.decodeChange(c1).hash]);
    expect(hasChanges(held, hashes)).toBe(true);
    expect(hasChanges(held, [A.decodeChange(c1).hash])).toBe(false);
  });
});
