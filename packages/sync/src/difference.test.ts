// Estimating how far apart two stores are before choosing a sketch (issue 17: bytes on links close
// to what must move), with real sketches of random ids and real engines over memory links.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { contactCard, EnvelopeKind, generateIdentity, Iblt, IBLT_KEY_BYTES, randomBytes, sealEnvelope, signEnvelope, SKETCH_LEVELS } from "@pigeon/model";
import { estimateDifference, nextStep } from "./difference.js";
import { opaque } from "./envelope-store.js";
import { fileStorage, Mailbox, memoryLinkPair, SyncEngine } from "./index.js";

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

function delta(cells: number, onlyOurs: number, onlyTheirs: number): Iblt {
  const a = new Iblt(cells);
  const b = new Iblt(cells);
  for (let i = 0; i < 500; i++) {
    const k = randomBytes(IBLT_KEY_BYTES); // shared: cancels out
    a.update(k, 1);
    b.update(k, 1);
  }
  for (let i = 0; i < onlyOurs; i++) a.update(randomBytes(IBLT_KEY_BYTES), 1);
  for (let i = 0; i < onlyTheirs; i++) b.update(randomBytes(IBLT_KEY_BYTES), 1);
  return a.subtract(b);
}

describe("how different two stores are", () => {
  it("estimates the difference from a sketch that did not peel, within a third", () => {
    // up to about the table's size (a larger difference leaves no cell empty: see below)
    for (const [level, d] of [[1, 20], [1, 80], [1, 200], [2, 500], [2, 1500]] as const) {
      const e = estimateDifference(delta(SKETCH_LEVELS[level], Math.ceil(d / 2), Math.floor(d / 2)));
      expect(e, `difference ${d}`).toBeGreaterThan(d * 0.67);
      expect(e, `difference ${d}`).toBeLessThan(d * 1.33);
    }
    expect(estimateDifference(delta(SKETCH_LEVELS[1], 0, 0))).toBe(0);
    // a full first sketch only says "at least about its size"
    expect(estimateDifference(delta(SKETCH_LEVELS[0], 300, 0))).toBe(SKETCH_LEVELS[0]);
  });

  it("asks for the sketch that holds the difference, or lists ids when that costs less", () => {
    expect(nextStep(0, 100, 20_000)).toEqual({ level: 1 });
    expect(nextStep(1, 600, 20_000)).toEqual({ level: 2 });
    expect(nextStep(1, 2000, 200_000)).toEqual({ level: 3 }); // skips level 2: one round trip fewer
    expect(nextStep(1, 600, 300)).toBe("list"); // 300 ids (4.8 kB of Have16) against a 44 kB sketch
    expect(nextStep(2, 50_000, 1_000_000)).toBe("climb"); // nothing holds it: the ladder goes on to slices
  });

  it("a laptop with 300 carried envelopes meeting a new one lists them rather than send a 44 kB sketch", async () => {
    const author = generateIdentity("ana");
    const to = generateIdentity("tom");
    const laptops = ["a", "b"].map((name) => {
      const dir = mkdtempSync(join(tmpdir(), `pigeon-diff-${name}-`));
      const m = new Mailbox({ identity: generateIdentity(name), storage: fileStorage(dir), carrier: { quotaBytes: 1e9, perSourceBytes: 1e9, perAuthorBytes: 1e9 } });
      const s = new SyncEngine(m, { resyncMs: 0 });
      cleanup.push(async () => {
        s.close();
        await m.close();
        rmSync(dir, { recursive: true, force: true });
      });
      return { m, s };
    });
    const [a, b] = laptops as [(typeof laptops)[0], (typeof laptops)[0]];
    const held = Array.from({ length: 300 }, () => {
      const inner = signEnvelope(author, {
        kind: EnvelopeKind.Change, conversation: randomBytes(16), segment: 0, recipients: [to.person], created: Date.now(), lifetime: 86400, keyId: randomBytes(8),
      }, randomBytes(200));
      return opaque({ ...sealEnvelope(author.sealing, inner, [to.sealing.publicKey]), kind: EnvelopeKind.Sealed });
    });
    a.m.envelopes.putMany(held, 0, Date.now(), true, 64);
    const [la, lb] = memoryLinkPair(contactCard(a.m.identity), contactCard(b.m.identity));
    a.s.attach(la);
    b.s.attach(lb);
    const end = Date.now() + 20_000;
    while (b.m.envelopes.stats().envelopes < 300 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    expect(b.m.envelopes.stats().envelopes).toBe(300);
    const moved = held.reduce((n, e) => n + e.bytes.length, 0);
    // the ids both ways (~19 kB) and two small sketches; before, a 44 kB sketch came on top
    expect(la.bytesSent + lb.bytesSent).toBeLessThan(moved + 30_000);
    expect(a.s.peers()[0]!.reconcile.fallback || b.s.peers()[0]!.reconcile.fallback).toBe(true);
  });
});
