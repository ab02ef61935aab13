// Meeting again (docs/protocol.md, "Meeting again: Since and Mark"): two laptops that finished a
// meeting before, neither restarted since, list only what entered their stores since, instead of
// reconciling every carried copy they hold. Real Mailboxes and SyncEngines over memory links; what is
// checked is what crosses the link and what each child sees afterwards.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  contactCard, decodeFrame, encodeFrame, envelopeForm, EnvelopeKind, generateIdentity, randomBytes, sealEnvelope, signEnvelope, SKETCH_LEVELS, Iblt, WHOLE_RANGE,
  type Identity, type PeerLink, type SyncFrame,
} from "@pigeon/model";
import { opaque } from "./envelope-store.js";
import { fileStorage, Mailbox, memoryLinkPair, SyncEngine } from "./index.js";

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

type Laptop = { m: Mailbox; s: SyncEngine; restart(): void };

function laptop(name: string): Laptop {
  const dir = mkdtempSync(join(tmpdir(), `pigeon-since-${name}-`));
  const m = new Mailbox({ identity: generateIdentity(name), storage: fileStorage(dir), carrier: { quotaBytes: 1e9, perSourceBytes: 1e9, perAuthorBytes: 1e9 } });
  const l: Laptop = {
    m,
    s: new SyncEngine(m, { resyncMs: 0 }),
    // the sync engine starts again on the same store (what a reboot does to it)
    restart() {
      l.s.close();
      l.s = new SyncEngine(m, { resyncMs: 0 });
    },
  };
  cleanup.push(async () => {
    l.s.close();
    await m.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return l;
}

const until = async (ok: () => boolean | Promise<boolean>, what: string) => {
  const end = Date.now() + 10_000;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

type Seen = { frames: SyncFrame[]; bytes: number };

/**
 * A meeting until nothing has crossed for a moment; returns what each side sent. `drop` can keep
 * frames from arriving (a link that breaks just then).
 */
async function meet(a: Laptop, b: Laptop, drop: (f: SyncFrame, from: "a" | "b") => boolean = () => false): Promise<{ a: Seen; b: Seen }> {
  const [la, lb] = memoryLinkPair(contactCard(a.m.identity), contactCard(b.m.identity));
  const seen = { a: { frames: [], bytes: 0 } as Seen, b: { frames: [], bytes: 0 } as Seen };
  let last = Date.now();
  const watch = (link: PeerLink, from: "a" | "b"): PeerLink => ({
    get peer() { return link.peer; },
    get description() { return link.description; },
    get closed() { return link.closed; },
    send(frame) {
      const f = decodeFrame(frame);
      seen[from].frames.push(f);
      seen[from].bytes += frame.length;
      last = Date.now();
      if (!drop(f, from)) link.send(frame);
    },
    onFrame: (h) => link.onFrame(h),
    onClose: (h) => link.onClose(h),
    close: (r) => link.close(r),
  });
  a.s.attach(watch(la, "a"));
  b.s.attach(watch(lb, "b"));
  await until(() => Date.now() - last > 200, "the meeting to go quiet");
  la.close("walked away");
  return seen;
}

/** A sealed change between two people neither laptop is, as a carrier holds it (`copies` tokens). */
function carriedCopy(to: Identity, from: Identity) {
  const inner = signEnvelope(from, {
    kind: EnvelopeKind.Change, conversation: randomBytes(16), segment: 0, recipients: [to.person], created: Date.now(), lifetime: 86400, keyId: randomBytes(8),
  }, randomBytes(300));
  return opaque({ ...sealEnvelope(from.sealing, inner, [to.sealing.publicKey]), kind: EnvelopeKind.Sealed });
}

const kinds = (s: Seen) => new Set(s.frames.map((f) => f.type));
const listed = (s: Seen) => s.frames.reduce((n, f) => n + (f.type === "have8" ? f.keys.length : 0), 0);

describe("meeting again: only what arrived since", () => {
  it("a second meeting lists only the new mail, which still arrives, and costs a few hundred bytes instead of sketches", async () => {
    const carrier = laptop("carrier");
    const tom = laptop("tom");
    const ana = laptop("ana");
    const people = [generateIdentity("p"), generateIdentity("q")];
    // each carries 300 copies for people the other is not (one token left: waiting for their recipients)
    carrier.m.envelopes.putMany(Array.from({ length: 300 }, () => carriedCopy(people[0]!, people[1]!)), 0, Date.now(), true, 1);
    tom.m.envelopes.putMany(Array.from({ length: 300 }, () => carriedCopy(people[1]!, people[0]!)), 0, Date.now(), true, 1);

    const first = await meet(carrier, tom);
    expect([...kinds(first.a), ...kinds(first.b)]).toContain("sketch"); // never met: a full round

    // ana writes to tom; her laptop meets the carrier (who cannot read it), then the carrier meets tom again
    await ana.m.addContact(contactCard(tom.m.identity));
    await tom.m.addContact(contactCard(ana.m.identity));
    await ana.m.send(tom.m.address, "the bus leaves at eight");
    await meet(ana, carrier);
    expect(carrier.m.status().carrying.envelopes).toBe(301); // her message (its conversation key inside)

    const again = await meet(carrier, tom);
    expect(kinds(again.a).has("sketch") || kinds(again.b).has("sketch")).toBe(false);
    expect(listed(again.a)).toBe(1); // the new envelope, not the 300 copies met before
    await until(async () => (await tom.m.inbox()).some((m) => m.body === "the bus leaves at eight"), "tom's inbox");
    // all frames both ways, the envelopes aside: what the first meeting spent on sketches and probes is gone
    const envelopeBytes = (s: Seen) => s.frames.reduce((n, f) => n + (f.type === "envelope" ? f.envelope.length + 8 : 0), 0);
    const overhead = again.a.bytes + again.b.bytes - envelopeBytes(again.a) - envelopeBytes(again.b);
    expect(overhead).toBeLessThan(600);
    expect(first.a.bytes + first.b.bytes).toBeGreaterThan(10 * overhead);
    // and tom's receipt went back over the same meeting: the carrier dropped its copy of the message
    await until(() => carrier.m.status().carrying.envelopes <= 301, "the carrier to drop the delivered copy");
  });

  it("a meeting whose end was never confirmed (the Mark's echo lost), and a restarted laptop, reconcile in full", async () => {
    const a = laptop("a");
    const b = laptop("b");
    const people = [generateIdentity("p"), generateIdentity("q")];
    a.m.envelopes.putMany(Array.from({ length: 50 }, () => carriedCopy(people[0]!, people[1]!)), 0, Date.now(), true, 1);
    const sketched = (m: { a: Seen; b: Seen }) => kinds(m.a).has("sketch") || kinds(m.b).has("sketch");

    // the link breaks before either echo arrives: neither side may assume the other holds anything
    const broken = await meet(a, b, (f) => f.type === "mark" && f.echo);
    expect(broken.a.frames.some((f) => f.type === "mark" && f.echo) || broken.b.frames.some((f) => f.type === "mark" && f.echo)).toBe(true);
    expect(sketched(await meet(a, b))).toBe(true);
    // that meeting finished (echoes came): the next one lists only what is new
    const quiet = await meet(a, b);
    expect(sketched(quiet)).toBe(false);
    expect(listed(quiet.a) + listed(quiet.b)).toBe(0);
    // a laptop that restarted remembers no meeting, and the other's record of it no longer holds
    b.restart();
    expect(sketched(await meet(a, b))).toBe(true);
    a.restart();
    expect(sketched(await meet(a, b))).toBe(true);
  });

  it("a peer met before that does not ask for an envelope our new receipt names holds it: the receipt goes to it", async () => {
    // the carrier is driven by hand: it already held tom's message when they last met (it reached tom
    // another way), and tom's receipt is new since; only tom's silence can tell it the copy is delivered
    const tom = laptop("tom");
    const ana = laptop("ana");
    const carrier = generateIdentity("carrier");
    const epoch = randomBytes(8);
    let tomEpoch = new Uint8Array(8);
    const visit = async (answer: (f: SyncFrame, send: (f: SyncFrame) => void) => void): Promise<SyncFrame[]> => {
      const [lt, lc] = memoryLinkPair(contactCard(tom.m.identity), contactCard(carrier));
      const got: SyncFrame[] = [];
      let last = Date.now();
      const send = (f: SyncFrame) => lc.send(encodeFrame(f));
      lc.onFrame((bytes) => {
        last = Date.now();
        const f = decodeFrame(bytes);
        got.push(f);
        if (f.type === "since") tomEpoch = f.epoch;
        if (f.type === "mark" && !f.echo) send({ type: "mark", echo: true, n: f.n }); // all it came after is stored
        if (f.type === "sketch") send({ type: "done", range: f.range, level: SKETCH_LEVELS.length - 1 }); // an empty store
        answer(f, send);
      });
      tom.s.attach(lt);
      await until(() => Date.now() - last > 200, "the visit to go quiet");
      lt.close("walked away");
      return got;
    };
    await visit((f, send) => {
      if (f.type !== "since") return;
      send({ type: "since", epoch, yours: new Uint8Array(8) }); // first meeting: a full round, of an empty store
      send({ type: "sketch", range: WHOLE_RANGE, level: 0, size: 0, table: new Iblt(SKETCH_LEVELS[0]) });
    });
    await ana.m.addContact(contactCard(tom.m.identity));
    await tom.m.addContact(contactCard(ana.m.identity));
    await ana.m.send(tom.m.address, "see you at the river");
    await meet(ana, tom);
    await until(async () => (await tom.m.inbox()).length === 1, "tom's inbox");

    const again = await visit((f, send) => {
      if (f.type !== "since") return;
      send({ type: "since", epoch, yours: tomEpoch }); // we met, and the carrier remembers it
      send({ type: "have16", last: true, keys: [] }); // nothing new on its side; and it asks for nothing
    });
    const listedKeys = again.filter((f) => f.type === "have8").flatMap((f) => (f.type === "have8" ? f.keys : []));
    expect(listedKeys.length).toBeGreaterThan(0);
    const receipts = again.filter((f) => f.type === "envelope" && envelopeForm(f.envelope) === "receipt");
    expect(receipts).toHaveLength(1);
    expect(again.some((f) => f.type === "sketch")).toBe(false);
  });

  it("a laptop met again sends its Crowd only when it changed, and the author still hands its copies to the one who meets the recipient", async () => {
    const ana = laptop("ana");
    const bea = laptop("bea"); // sits next to rosa every day
    const rosa = laptop("rosa");
    for (let i = 0; i < 3; i++) await meet(bea, rosa);
    const crowds = (m: { a: Seen; b: Seen }) => m.b.frames.filter((f) => f.type === "crowd").length;
    expect(crowds(await meet(ana, bea))).toBe(1); // first meeting: bea says whom she meets often
    expect(crowds(await meet(ana, bea))).toBe(0); // again, unchanged: not said again
    await ana.m.addContact(contactCard(rosa.m.identity));
    await rosa.m.addContact(contactCard(ana.m.identity));
    await ana.m.send(rosa.m.address, "see you at the library");
    const third = await meet(ana, bea);
    expect(crowds(third)).toBe(0);
    const tokens = third.a.frames.flatMap((f) => (f.type === "envelope" ? [f.copies] : []));
    expect(tokens).toEqual([48]); // the message with its key: 64 tokens, a quarter kept
    // bea's crowd changes (she now meets carl often too): the next meeting says only the change, one
    // person joined, under the salt ana keeps (7 bytes, not a fresh Crowd)
    const carl = laptop("carl");
    for (let i = 0; i < 3; i++) await meet(bea, carl);
    const changed = await meet(ana, bea);
    expect(crowds(changed)).toBe(0);
    const changes = changed.b.frames.filter((f) => f.type === "crowd-change");
    expect(changes.map((f) => f.type === "crowd-change" && [f.gone.length, f.added.length])).toEqual([[0, 1]]);
    expect(encodeFrame(changes[0]!).length).toBe(7);
    // and ana, applying it, knows bea now meets carl: her message to carl goes to bea focused
    await ana.m.addContact(contactCard(carl.m.identity));
    await carl.m.addContact(contactCard(ana.m.identity));
    await ana.m.send(carl.m.address, "chess club?");
    const focused = await meet(ana, bea);
    expect(focused.a.frames.flatMap((f) => (f.type === "envelope" ? [f.copies] : []))).toEqual([48]);
    // and when only its order changes (carl now met more often than rosa), it is not said again
    for (let i = 0; i < 2; i++) await meet(bea, carl);
    const reordered = await meet(ana, bea);
    expect(crowds(reordered) + reordered.b.frames.filter((f) => f.type === "crowd-change").length).toBe(0);
  });
});

