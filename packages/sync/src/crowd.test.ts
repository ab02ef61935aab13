// Forwarding that learns who meets whom (docs/routing.md, "Who gets copy tokens"): real Mailboxes and
// SyncEngines over memory links; what is checked is what crosses the link (ENVELOPE frames and the
// copy tokens in them) and what each laptop holds afterwards.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  contactCard, crowdHash, decodeFrame, encodeFrame, EnvelopeKind, generateIdentity, generateSealingKeyPair, MAX_CROWD, randomBytes, sealEnvelope, sha256, signEnvelope, toHex,
  type SyncFrame,
} from "@pigeon/model";
import { opaque } from "./envelope-store.js";
import { fileStorage, Mailbox, memoryLinkPair, SyncEngine } from "./index.js";

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

type Laptop = { m: Mailbox; s: SyncEngine };

/** `reconcile: "list"`: every id listed (tests about what a listing names and how it is answered). */
function laptop(name: string, reconcile?: "list"): Laptop {
  const dir = mkdtempSync(join(tmpdir(), `pigeon-crowd-${name}-`));
  const m = new Mailbox({ identity: generateIdentity(name), storage: fileStorage(dir), carrier: { quotaBytes: 1e9, perSourceBytes: 1e9, perAuthorBytes: 1e9 } });
  const s = new SyncEngine(m, { resyncMs: 0, reconcile });
  cleanup.push(async () => {
    s.close();
    await m.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { m, s };
}

const until = async (ok: () => boolean, what: string) => {
  const end = Date.now() + 5000;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

/**
 * A meeting of two laptops: the link stays up until nothing has crossed it for a moment. Returns the
 * copy tokens `a` handed `b` in each ENVELOPE frame, by envelope id.
 */
async function meet(a: Laptop, b: Laptop, stayUntil?: () => boolean): Promise<Map<string, number>> {
  const [la, lb] = memoryLinkPair(contactCard(a.m.identity), contactCard(b.m.identity));
  const handed = new Map<string, number>();
  let last = Date.now();
  la.onFrame(() => (last = Date.now()));
  lb.onFrame((f) => {
    last = Date.now();
    const fr = decodeFrame(f);
    if (fr.type === "envelope") handed.set(toHex(idOf(fr.envelope)), fr.copies);
  });
  a.s.attach(la);
  b.s.attach(lb);
  await until(() => Date.now() - last > 150 && (!stayUntil || stayUntil()), "the meeting to go quiet");
  la.close("walked away");
  return handed;
}

const idOf = (bytes: Uint8Array) => sha256(bytes);

/** A meeting until it goes quiet; `seen` gets every frame `a` sends `b`. */
async function meetSeeing(a: Laptop, b: Laptop, seen: (f: SyncFrame) => void): Promise<void> {
  const [la, lb] = memoryLinkPair(contactCard(a.m.identity), contactCard(b.m.identity));
  let last = Date.now();
  la.onFrame(() => (last = Date.now()));
  lb.onFrame((f) => {
    last = Date.now();
    seen(decodeFrame(f));
  });
  a.s.attach(la);
  b.s.attach(lb);
  await until(() => Date.now() - last > 150, "the meeting to go quiet");
  la.close("walked away");
}

/** `author` writes to `to`; returns the ids (hex) of what it sealed: the conversation key and the message. */
async function write(author: Laptop, to: Laptop, body: string): Promise<string[]> {
  await author.m.addContact(contactCard(to.m.identity));
  await to.m.addContact(contactCard(author.m.identity));
  const before = new Set(author.m.envelopes.idsAfter(new Uint8Array(0), 10_000).map(toHex));
  await author.m.send(to.m.address, body);
  return author.m.envelopes.idsAfter(new Uint8Array(0), 10_000).map(toHex).filter((h) => !before.has(h));
}

describe("copy tokens follow who meets whom", () => {
  it("a Crowd frame round-trips, and a longer or malformed one is refused", () => {
    const salt = randomBytes(8);
    const people = Array.from({ length: MAX_CROWD }, () => generateIdentity("p").person);
    const f = { type: "crowd" as const, salt, hashes: people.map((p) => crowdHash(salt, p)) };
    const back = decodeFrame(encodeFrame(f));
    expect(back.type === "crowd" && back.hashes.map(toHex)).toEqual(f.hashes.map(toHex));
    // the same person hashes differently under another salt: two links' frames do not match up
    expect(toHex(crowdHash(randomBytes(8), people[0]!))).not.toBe(toHex(f.hashes[0]!));
    expect(() => encodeFrame({ ...f, hashes: [...f.hashes, f.hashes[0]!] })).toThrow(RangeError);
    const tooMany = encodeFrame(f);
    tooMany[9] = MAX_CROWD + 1; // the count, after the type and the 8-byte salt
    expect(() => decodeFrame(tooMany)).toThrow(/limit/);
    expect(() => decodeFrame(encodeFrame(f).subarray(0, 20))).toThrow();
  });

  it("an author hands most of its tokens to a laptop that often meets the recipient, half to a passer-by", async () => {
    const ana = laptop("ana");
    const bea = laptop("bea"); // sits next to rosa every day
    const rosa = laptop("rosa");
    const carl = laptop("carl"); // meets neither
    const dan = laptop("dan");
    for (let i = 0; i < 3; i++) await meet(bea, rosa);
    const anaWrites = await write(ana, rosa, "see you at the library");
    const danWrites = await write(dan, rosa, "football after school?");
    expect(anaWrites).toHaveLength(1); // the message, its conversation key inside the same envelope

    const toBea = await meet(ana, bea);
    const toCarl = await meet(dan, carl);
    for (const id of anaWrites) expect(toBea.get(id)).toBe(48); // 64 tokens, a quarter kept
    for (const id of danWrites) expect(toCarl.get(id)).toBe(32); // binary spray
    // and bea never learned who rosa is from it: her laptop carries the copies sealed
    expect(bea.m.status().carrying.envelopes).toBe(1);
  });

  it("an author whose last token is gone still hands a copy (with none) to a laptop that meets the recipient; a passer-by gets nothing", async () => {
    const ana = laptop("ana");
    const bea = laptop("bea");
    const rosa = laptop("rosa");
    const carl = laptop("carl");
    for (let i = 0; i < 3; i++) await meet(bea, rosa);
    const ids = await write(ana, rosa, "homework is page 12");
    for (const id of ids) ana.m.envelopes.setCopies(Buffer.from(id, "hex"), 1); // sprayed already
    expect((await meet(ana, carl)).size).toBe(0);
    const toBea = await meet(ana, bea);
    for (const id of ids) expect(toBea.get(id)).toBe(0);
  });

  it("a classmate met again and again gets half the tokens, as a passer-by does (copies kept from one's own class arrived later: docs/benchmarks.md)", async () => {
    const ana = laptop("ana");
    const bea = laptop("bea");
    const rosa = laptop("rosa");
    const carl = laptop("carl");
    for (let i = 0; i < 3; i++) await meet(ana, bea);
    const ids = await write(ana, rosa, "lunch?");
    const toBea = await meet(ana, bea);
    for (const id of ids) expect(toBea.get(id)).toBe(32);
    const toCarl = await meet(ana, carl);
    for (const id of ids) expect(toCarl.get(id)).toBe(16);
    // carl, now a carrier, meets rosa's laptop: it cannot tell she is the one, but she takes her copy
    const seen: string[] = [];
    rosa.m.on("message", (v) => seen.push(v.body));
    await meet(carl, rosa, () => seen.length > 0);
    expect(seen).toEqual(["lunch?"]);
  });

  it("a carrier asks a laptop about an envelope once, not at every meeting", async () => {
    const carrier = laptop("carrier");
    const tom = laptop("tom");
    const author = generateIdentity("ana");
    const to = generateIdentity("rosa");
    const held = Array.from({ length: 5 }, () => {
      const inner = signEnvelope(author, {
        kind: EnvelopeKind.Change, conversation: randomBytes(16), segment: 0, recipients: [to.person], created: Date.now(), lifetime: 86400, keyId: randomBytes(8),
      }, randomBytes(200));
      return opaque({ ...sealEnvelope(author.sealing, inner, [to.sealing.publicKey]), kind: EnvelopeKind.Sealed });
    });
    carrier.m.envelopes.putMany(held, 0, Date.now(), true, 1); // one token each: probes, no spray
    const probed: number[] = [];
    for (let i = 0; i < 2; i++) {
      let n = 0;
      await meetSeeing(carrier, tom, (fr) => {
        if (fr.type === "probe") n += fr.entries.length;
      });
      probed.push(n);
    }
    expect(probed).toEqual([5, 0]);
    expect(tom.m.envelopes.stats().envelopes).toBe(0); // not tom's: nothing handed over
  });

  it("a carrier takes back the tokens it handed a recipient, once that recipient's receipt opens its lock", async () => {
    const carrier = laptop("carrier");
    const rosa = laptop("rosa");
    const other = generateIdentity("tom");
    const author = generateIdentity("ana");
    // one envelope for two people, as a class channel's message: rosa's receipt opens one lock of two
    const inner = signEnvelope(author, {
      kind: EnvelopeKind.Change, conversation: randomBytes(16), segment: 0, recipients: [rosa.m.identity.person, other.person],
      created: Date.now(), lifetime: 86400, keyId: randomBytes(8),
    }, randomBytes(200));
    const sealed = sealEnvelope(author.sealing, inner, [rosa.m.identity.sealing.publicKey, other.sealing.publicKey]);
    carrier.m.envelopes.putMany([opaque({ ...sealed, kind: EnvelopeKind.Sealed })], 0, Date.now(), true, 16);
    await rosa.m.addContact(contactCard(author)); // ana is rosa's buddy: her message is acknowledged at once
    // they stay together until rosa's receipt reached the carrier
    const handed = await meet(carrier, rosa, () => carrier.m.envelopes.opened(sealed.id) === 1);
    expect(handed.get(toHex(sealed.id))).toBe(8);
    expect(carrier.m.envelopes.has(sealed.id)).toBe(true); // tom's lock is still shut: the copy stays
    expect(carrier.m.envelopes.meta(sealed.id)?.copies).toBe(16); // back for tom's sake
  });
});

/** A sealed change from someone to `to`, as its author holds it (a carrier stores it opaque). */
const writer = generateIdentity("writer");
function sealedTo(to: ReturnType<typeof generateIdentity>) {
  const inner = signEnvelope(writer, {
    kind: EnvelopeKind.Change, conversation: randomBytes(16), segment: 0, recipients: [to.person], created: Date.now(), lifetime: 86400, keyId: randomBytes(8),
  }, randomBytes(200));
  return sealEnvelope(writer.sealing, inner, [to.sealing.publicKey]);
}

describe("what a listing names", () => {
  it("a carrier lists to a laptop only what could cross to it: a one-token copy once (with its Probe), not at every meeting", async () => {
    const make = (name: string) => laptop(name, "list"); // every id listed: what this test is about
    const carrier = make("carrier");
    const tom = make("tom");
    const to = generateIdentity("rosa");
    const sealedCopy = () => opaque({ ...sealedTo(to), kind: EnvelopeKind.Sealed });
    carrier.m.envelopes.putMany(Array.from({ length: 20 }, sealedCopy), 0, Date.now(), true, 1); // one token each: wait for rosa
    carrier.m.envelopes.putMany([sealedCopy()], 0, Date.now(), true, 64); // still spraying
    const listed: number[] = [];
    const probed: number[] = [];
    for (let i = 0; i < 2; i++) {
      let keys = 0;
      let probes = 0;
      await meetSeeing(carrier, tom, (fr) => {
        if (fr.type === "have8") keys += fr.keys.length;
        if (fr.type === "probe") probes += fr.entries.length;
      });
      listed.push(keys);
      probed.push(probes);
    }
    // first meeting: all 21 named, the 20 waiting ones asked about; tom takes the spraying one
    expect(probed).toEqual([20, 0]);
    expect(tom.m.envelopes.stats().envelopes).toBe(1);
    // second: the waiting ones cannot cross to tom (not his, asked already); the one he holds is named
    // again (it still could cross), and nothing else
    expect(listed).toEqual([21, 1]);
  });
});

/** A meeting of a carrier with `tom`: the Probe entries it sent him, and the NotMine16 entries he answered. */
async function probesAt(carrier: Laptop, tom: Laptop): Promise<{ probes: number; notMine: number }> {
  let probes = 0;
  let notMine = 0;
  const [lc, lt] = memoryLinkPair(contactCard(carrier.m.identity), contactCard(tom.m.identity));
  let last = Date.now();
  lt.onFrame((f) => {
    last = Date.now();
    const fr = decodeFrame(f);
    if (fr.type === "probe") probes += fr.entries.length;
  });
  lc.onFrame((f) => {
    last = Date.now();
    const fr = decodeFrame(f);
    if (fr.type === "not-mine8") notMine += fr.entries.length;
  });
  carrier.s.attach(lc);
  tom.s.attach(lt);
  await until(() => Date.now() - last > 150, "the meeting to go quiet");
  lc.close("walked away");
  return { probes, notMine };
}

describe("a laptop a Probe showed an envelope is not for", () => {
  it("tells the next carrier of it so (NotMine16) instead of being probed again; a made-up Probe cannot make it turn its own mail away", async () => {
    const make = (name: string) => laptop(name, "list"); // every id listed: what this test is about
    const tom = make("tom");
    const first = make("first");
    const second = make("second");
    const third = make("third");
    const forRosa = sealedTo(generateIdentity("rosa"));
    const forTom = sealedTo(tom.m.identity);
    for (const c of [first, second]) c.m.envelopes.putMany([opaque({ ...forRosa, kind: EnvelopeKind.Sealed })], 0, Date.now(), true, 1);
    third.m.envelopes.putMany([opaque({ ...forTom, kind: EnvelopeKind.Sealed })], 0, Date.now(), true, 1);
    const probesFrom = (carrier: Laptop) => probesAt(carrier, tom);
    expect(await probesFrom(first)).toEqual({ probes: 1, notMine: 0 }); // tom is asked, and it is not his
    expect(await probesFrom(second)).toEqual({ probes: 0, notMine: 1 }); // the second carrier is told, and does not ask

    // a stranger probes tom about the envelope that is his, with made-up tags: tom finds it is not his
    const stranger = generateIdentity("stranger");
    const [ls, lt] = memoryLinkPair(contactCard(stranger), contactCard(tom.m.identity));
    tom.s.attach(lt);
    ls.send(encodeFrame({ type: "probe", entries: [{ key: forTom.id.subarray(0, 16), ephemeral: randomBytes(32), tags: [randomBytes(16)] }] }));
    await new Promise((r) => setTimeout(r, 100));
    ls.close("gone");
    // the carrier of the real envelope is told "not mine" about an entry that was not its envelope's: it still asks, and tom gets his mail
    expect(await probesFrom(third)).toEqual({ probes: 1, notMine: 1 });
    expect(tom.m.envelopes.has(forTom.id)).toBe(true);
    expect(tom.m.envelopes.has(forRosa.id)).toBe(false);
  });

  it("forgets what it judged once a keyring brings its person a new sealing key: mail sealed to that key still reaches it", async () => {
    const tom = laptop("tom", "list");
    const first = laptop("first", "list");
    const second = laptop("second", "list");
    // tom's person rotated its sealing key on another device (a lost tablet revoked); tom does not know it yet
    const newKey = generateSealingKeyPair();
    const to = { ...tom.m.identity, sealing: newKey };
    const sealed = sealedTo(to);
    for (const c of [first, second]) c.m.envelopes.putMany([opaque({ ...sealed, kind: EnvelopeKind.Sealed })], 0, Date.now(), true, 1);
    expect(await probesAt(first, tom)).toEqual({ probes: 1, notMine: 0 }); // not his, with the keys he has
    // the keyring arrives: the new key, the old one kept (what devices.ts does)
    tom.m.identity.previousSealing = [tom.m.identity.sealing, ...(tom.m.identity.previousSealing ?? [])];
    tom.m.identity.sealing = newKey;
    expect(await probesAt(second, tom)).toEqual({ probes: 1, notMine: 0 });
    expect(tom.m.envelopes.has(sealed.id)).toBe(true);
  });
});

