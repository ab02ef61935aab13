// Envelopes reach a recipient through carriers in any order, some twice. Whatever the order: every
// message shown exactly once, nothing recorded as rejected, and the sealed store alone rebuilds the
// same conversation when the documents are lost.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import * as A from "@automerge/automerge";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { contactCard, conversationId, generateIdentity, segmentDocumentId, SEGMENT_MESSAGE_LIMIT, toHex, type ConversationDoc, type Identity } from "@pigeon/model";
import { fileStorage, Mailbox } from "../index.js";
import { until } from "../until.test-helper.js";
import { DocumentStore } from "../document-store.js";
import { SEGMENTS_LOADED } from "./core.js";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(name: string): string {
  // in memory where the machine has it: this test opens dozens of stores and fsyncs cost nothing there
  const d = mkdtempSync(join(existsSync("/dev/shm") ? "/dev/shm" : tmpdir(), `pigeon-order-${name}-`));
  dirs.push(d);
  return d;
}

/** The sender's envelopes for `n` messages to the recipient, in the order they were written. */
const sender = generateIdentity("amara");

async function written(n: number, recipient: Identity): Promise<{ envelopes: Uint8Array[]; bodies: string[] }> {
  const m = new Mailbox({ identity: sender, storage: fileStorage(tempDir("sender")) });
  m.rememberContact(contactCard(recipient), "card");
  const envelopes: Uint8Array[] = [];
  // what travels to the recipient (not the sender's own buddy list, which stays with the sender's devices)
  m.on("envelope", ({ id }) => {
    if (m.envelopes.get(id)?.recipients.length) envelopes.push(m.envelopes.bytesOf(id)!);
  });
  const bodies = Array.from({ length: n }, (_, i) => `message ${i}`);
  for (const b of bodies) await m.send("zawadi", b);
  await m.close();
  return { envelopes, bodies };
}

function permutations<T>(xs: T[]): T[][] {
  if (xs.length <= 1) return [xs];
  return xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((p) => [x, ...p]));
}

/** A small deterministic generator, so a failing order can be replayed from its seed. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

async function deliver(recipient: Identity, order: Uint8Array[]) {
  const dir = tempDir("recipient");
  const m = new Mailbox({ identity: recipient, storage: fileStorage(dir) });
  await m.addContact(contactCard(sender)); // a card makes a buddy: their messages go to the inbox
  for (const e of order) await m.receive(e, 2);
  const shown = (await m.inbox()).map((v) => v.body);
  const rejected = m.state.rejections().map((r) => r.reason);
  await m.close();
  // the documents are lost (a damaged disk): the sealed store alone must show the same (the buddy
  // list, which says the sender is a buddy, is rebuilt from it too)
  rmSync(join(dir, "documents"), { recursive: true, force: true });
  const again = new Mailbox({ identity: recipient, storage: fileStorage(dir) });
  await again.recover();
  const rebuilt = (await again.inbox()).map((v) => v.body);
  await again.close();
  return { shown, rejected, rebuilt };
}

describe("delivery in any order", () => {
  it("every order of four messages, the first carrying the conversation key", async () => {
    const zawadi = generateIdentity("zawadi");
    const { envelopes, bodies } = await written(4, zawadi);
    expect(envelopes.length).toBe(4); // the key travels inside the first message's envelope
    for (const order of permutations(envelopes)) {
      const r = await deliver(zawadi, order);
      expect(r.rejected).toEqual([]);
      expect(r.shown).toEqual(bodies);
      expect(r.rebuilt).toEqual(bodies);
    }
  }, 120_000);

  it("random orders with duplicates of six messages, the first carrying the key", async () => {
    const zawadi = generateIdentity("zawadi");
    const { envelopes, bodies } = await written(6, zawadi);
    const seed = Number(process.env.PIGEON_ORDER_SEED ?? Date.now() % 1_000_000);
    const next = rng(seed);
    for (let round = 0; round < 15; round++) {
      const order = [...envelopes, ...envelopes.filter(() => next() < 0.3)];
      for (let i = order.length - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1));
        [order[i], order[j]] = [order[j]!, order[i]!];
      }
      const r = await deliver(zawadi, order);
      expect(r.rejected, `seed ${seed}, round ${round}`).toEqual([]);
      expect(r.shown, `seed ${seed}, round ${round}`).toEqual(bodies);
      expect(r.rebuilt, `seed ${seed}, round ${round}`).toEqual(bodies);
    }
  }, 120_000);
});

describe("a conversation longer than one segment", () => {
  it("is rebuilt from the sealed store segment by segment when the documents are lost, each from its own envelopes", async () => {
    const zawadi = generateIdentity("zawadi");
    const dir = tempDir("long");
    const m = new Mailbox({ identity: sender, storage: fileStorage(dir) });
    m.rememberContact(contactCard(zawadi), "card");
    const n = SEGMENT_MESSAGE_LIMIT + 3;
    for (let i = 0; i < n; i += 100) await Promise.all(Array.from({ length: Math.min(100, n - i) }, (_, k) => m.send("zawadi", `message ${i + k}`)));
    const before = (await m.outbox()).map((v) => v.body).sort();
    expect(before).toHaveLength(n);
    await m.close();
    rmSync(join(dir, "documents"), { recursive: true, force: true });
    const again = new Mailbox({ identity: sender, storage: fileStorage(dir) });
    await again.recover();
    // the newest page loads only the second segment; it holds the three messages past the first
    const newest = await again.messages({ last: true, limit: 3 });
    expect(newest.map((v) => v.body).sort()).toEqual(before.filter((b) => Number(b.split(" ")[1]) >= SEGMENT_MESSAGE_LIMIT));
    expect((await again.outbox()).map((v) => v.body).sort()).toEqual(before);
    await again.close();
  }, 120_000);
});

describe("segments unloaded after use", () => {
  it(`keeps at most ${SEGMENTS_LOADED} loaded, and an unloaded one is still whole on disk and comes back`, async () => {
    const dir = tempDir("many");
    const people = Array.from({ length: SEGMENTS_LOADED + 6 }, (_, i) => generateIdentity(`pupil${i}`));
    let m = new Mailbox({ identity: sender, storage: fileStorage(dir) });
    for (const p of people) m.rememberContact(contactCard(p), "card");
    for (const p of people) for (let i = 0; i < 3; i++) await m.send(p.name, `${p.name} ${i}`);
    const sent = (await m.outbox()).map((v) => v.body).sort();
    expect(sent).toHaveLength(people.length * 3);
    await m.close();
    // a new start: each conversation's newest page, one after another (a child scrolling the chats)
    m = new Mailbox({ identity: sender, storage: fileStorage(dir) });
    for (const p of people) {
      const conversation = toHex(conversationId([sender.person, p.person]));
      expect((await m.messages({ conversation, last: true, limit: 2 })).map((v) => v.body)).toEqual([`${p.name} 1`, `${p.name} 2`]);
    }
    await until(() => m.documents.loadedEvictable <= SEGMENTS_LOADED, "segments to be unloaded", 5000);
    // the first ones were unloaded: opened again, from disk, they hold what they held
    const first = toHex(conversationId([sender.person, people[0]!.person]));
    expect((await m.messages({ conversation: first, last: true, limit: 5 })).map((v) => v.body)).toEqual([0, 1, 2].map((i) => `${people[0]!.name} ${i}`));
    await m.close();
    // nothing was written over: each segment's chunks on disk alone hold its three messages (a start
    // would otherwise rebuild a lost one from the sealed store, and hide the loss)
    for (const p of people) {
      const id = DocumentStore.documentId(segmentDocumentId(conversationId([sender.person, p.person]), 0));
      const chunks = ["snapshot", "incremental"].flatMap((kind) => {
        const d = join(dir, "documents", id, kind);
        return existsSync(d) ? readdirSync(d).map((f) => readFileSync(join(d, f))) : [];
      });
      const doc = A.loadIncremental(A.init<ConversationDoc>(), Buffer.concat(chunks));
      expect(doc.messages?.map((x) => x.body.toString()), p.name).toEqual([0, 1, 2].map((i) => `${p.name} ${i}`));
    }
    m = new Mailbox({ identity: sender, storage: fileStorage(dir) });
    expect((await m.outbox()).map((v) => v.body).sort()).toEqual(sent);
    await m.close();
  }, 60_000);
});
