// A swarm of throwaway identities against a carrier: each one meets the carrier and hands over junk
// well within its own budgets, together far more than the carrier's quota. A classmate's message the
// carrier holds for someone else must still be carried and delivered.
import { afterEach, describe, expect, it } from "vitest";
import { contactCard, encodeFrame, EnvelopeKind, generateIdentity, randomBytes, sealEnvelope, signEnvelope, toHex, type Identity } from "@pigeon/model";
import { Mailbox, memoryLinkPair, memoryStorage, SyncEngine } from "../index.js";
import { until as waitUntil } from "../until.test-helper.js";

const until = <T>(fn: () => Promise<T | undefined> | T | undefined, what: string, ms = 20_000) => waitUntil(fn, what, ms);

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

function laptop(name: string, quotaBytes?: number) {
  const identity = generateIdentity(name);
  const m = new Mailbox({ identity, storage: memoryStorage(), carrier: quotaBytes ? { quotaBytes } : undefined });
  const s = new SyncEngine(m);
  cleanup.push(async () => {
    s.close();
    await m.close();
  });
  return { m, s, identity };
}

function connect(a: ReturnType<typeof laptop>, b: ReturnType<typeof laptop>) {
  const [la, lb] = memoryLinkPair(contactCard(a.identity), contactCard(b.identity));
  a.s.attach(la);
  b.s.attach(lb);
  return () => la.close("walked away");
}

describe("a Sybil swarm against a carrier", () => {
  it("300 throwaway identities fill the carrier's quota; a classmate's carried message is kept and delivered", async () => {
    const quota = 1024 * 1024;
    const amara = laptop("amara");
    const chiku = laptop("chiku");
    const baraka = laptop("baraka", quota); // the carrier: 1 MiB for others, 100 KiB per author and per laptop
    const cut = connect(amara, chiku); // amara and chiku met yesterday, and chiku made amara a buddy
    await until(() => amara.m.contacts().length === 1 && chiku.m.contacts().length === 1, "amara and chiku to know each other");
    await chiku.m.addBuddy("amara");
    cut();
    await amara.m.send("chiku", "meet me at the well after school");
    const ab = connect(amara, baraka);
    await until(() => baraka.m.status().carrying.envelopes === 1, "baraka to carry amara's message (its key inside)");
    ab();
    const amaras = baraka.m.envelopes.ids().map((e) => e.id);
    expect(amaras).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 5)); // the swarm is met after amara, if only just

    // the swarm: each identity meets baraka and hands over 2 × 8 KiB (a sixth of its own budgets)
    const junk: Uint8Array[] = [];
    const sybils: Identity[] = Array.from({ length: 300 }, (_, i) => generateIdentity(`kid${i}`));
    const madeUp = Array.from({ length: 8 }, (_, i) => generateIdentity(`nobody${i}`).sealing.publicKey);
    for (let batch = 0; batch < sybils.length; batch += 30) {
      const links = sybils.slice(batch, batch + 30).map((sybil) => {
        const [atSybil, atBaraka] = memoryLinkPair(contactCard(sybil), contactCard(baraka.identity));
        baraka.s.attach(atBaraka);
        for (let k = 0; k < 2; k++) {
          const env = sealEnvelope(sybil.sealing, signEnvelope(sybil, {
            kind: EnvelopeKind.Change, conversation: randomBytes(16), segment: 0, recipients: [randomBytes(32)],
            created: Date.now(), lifetime: 14 * 86_400, keyId: randomBytes(8),
          }, randomBytes(8 * 1024)), [madeUp[k + (batch % 4)]!]);
          junk.push(env.id);
          atSybil.send(encodeFrame({ type: "envelope", hops: 0, copies: 1, envelope: env.bytes }));
        }
        return atSybil;
      });
      await until(() => junk.every((id) => baraka.m.envelopes.knowsId(id)), "baraka to take or refuse the swarm's envelopes");
      for (const l of links) l.close("gone");
    }
    const carrying = baraka.m.status().carrying;
    expect(carrying.bytes).toBeLessThanOrEqual(quota);
    expect(carrying.people).toBe(0); // sealed: baraka cannot tell whom it carries for
    const evicted = junk.filter((id) => !baraka.m.envelopes.has(id)).length;
    expect(evicted).toBeGreaterThan(400); // 600 × 8 KiB into 1 MiB: most of the swarm made room for itself
    // amara's key and message are still there
    for (const id of amaras) expect(baraka.m.envelopes.has(id), toHex(id)).toBe(true);
    expect(baraka.m.contacts().length).toBe(60); // the swarm was met, like any laptop, but at most 60 new laptops an hour become contacts

    // baraka passes chiku: the message is delivered
    connect(baraka, chiku);
    const inbox = await until(async () => {
      const i = await chiku.m.inbox();
      return i.length ? i : undefined;
    }, "chiku's inbox");
    expect(inbox.map((m) => [m.from, m.body])).toEqual([["amara@local", "meet me at the well after school"]]);
  });
});
