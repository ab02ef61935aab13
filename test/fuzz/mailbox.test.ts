// The mailbox's door (Mailbox.receive / receiveMany, packages/sync/src/mailbox/receiving.ts): whatever
// a link hands over, with any hop count and copy tokens, it answers without throwing; nothing is
// opened as this user's unless its author signed it and sealed it to them; and what is carried for
// others is only ever an opaque sealed envelope or receipt (a carrier cannot check those, and keeps
// them within its limits), never a signed envelope in clear.
import { afterAll, describe, expect, it } from "vitest";
import {
  appendMessage, contactCard, conversationId, emptySegment, envelopeForm, formatHlc, generateIdentity, keyId, makeReceipt, newActorId, newConversationKey,
  randomBytes, sealChange, sealEnvelope, sealKey, sha256, toHex, verifyEnvelope, type Envelope, type Identity,
} from "../../packages/model/src/index.js";
import { Mailbox, memoryStorage, type ReceiveResult } from "@pigeon/sync";
import { checkAsync, fc, mutated, note, sameBytes, TEST_TIMEOUT } from "./fuzz.js";

const baraka = generateIdentity("baraka"); // this laptop
const amara = generateIdentity("amara"); // writes to baraka
const chidi = generateIdentity("chidi"); // writes to dembe: baraka only carries it
const dembe = generateIdentity("dembe");
const now = Date.now();

function conversation(from: Identity, to: Identity, bodies: string[]): Uint8Array[] {
  const conv = conversationId([from.signing.publicKey, to.signing.publicKey]);
  const key = newConversationKey();
  const sealed = (env: Envelope) => sealEnvelope(from.sealing, env, [to.sealing.publicKey]).bytes;
  const out = [sealed(sealKey(from, { conversation: conv, recipients: [contactCard(to)], created: now }, key))];
  let doc = emptySegment(newActorId(from.signing.publicKey));
  bodies.forEach((body, counter) => {
    const m = appendMessage(doc, { id: toHex(randomBytes(12)), authorKeyId: keyId(from.signing.publicKey), hlc: formatHlc({ wall: now, counter }), sentAt: now, body });
    doc = m.doc;
    out.push(sealed(sealChange(from, { conversation: conv, segment: 0, recipients: [to.signing.publicKey], created: now }, key, m.change)));
  });
  return out;
}

const valid = [
  ...conversation(amara, baraka, ["hello baraka", "are you coming to football?"]),
  ...conversation(chidi, dembe, ["hello dembe"]),
  makeReceipt({ created: now }, [{ id: randomBytes(32), ackKey: randomBytes(32) }]).bytes,
];
const isValid = (bytes: Uint8Array) => valid.some((v) => sameBytes(v, bytes));

const mailbox = new Mailbox({ identity: baraka, storage: memoryStorage(), carrier: { quotaBytes: 1e7, perSourceBytes: 1e7, perAuthorBytes: 1e7 } });
afterAll(() => mailbox.close());

const incoming = fc.record({
  sent: fc.oneof({ arbitrary: mutated(fc.constantFrom(...valid)), weight: 6 }, { arbitrary: fc.constantFrom(...valid).map((b) => ({ original: b, bytes: b })), weight: 1 }),
  hops: fc.oneof(fc.integer({ min: 1, max: 20 }), fc.constant(2 ** 53), fc.maxSafeNat()),
  copies: fc.option(fc.oneof(fc.nat(300), fc.maxSafeNat()), { nil: undefined }),
  source: fc.option(fc.oneof(fc.constant(amara.signing.publicKey), fc.uint8Array({ minLength: 32, maxLength: 32 })), { nil: undefined }),
});

/**
 * Everything in the sealed store is stored under the hash of what travels; what baraka opened as its
 * own is exactly an envelope its author signed and sealed (one that was sent, or baraka's own); what
 * it only carries is a sealed envelope or a receipt, never a signed envelope in clear.
 */
function storeIsClean(): void {
  for (const { id } of mailbox.envelopes.ids()) {
    const travels = mailbox.envelopes.bytesOf(id)!;
    expect(sameBytes(sha256(travels), id)).toBe(true);
    const env = mailbox.envelopes.get(id);
    if (!env) {
      expect(["sealed", "receipt"]).toContain(envelopeForm(travels));
      continue;
    }
    expect(verifyEnvelope(env), toHex(id)).toBe(true);
    const own = sameBytes(env.author, baraka.signing.publicKey);
    expect(own || isValid(travels), `an envelope opened as baraka's that nobody sent: ${toHex(id)}`).toBe(true);
  }
}

/** An answer, not a crash: an exception inside the door would surface as a (retried) storage failure. */
function answered(r: ReceiveResult, bytes: Uint8Array): void {
  expect(typeof r.stored).toBe("boolean");
  expect(r.retry, r.refused).toBeFalsy();
  expect(mailbox.storageTrouble, mailbox.storageTrouble?.reason).toBeUndefined();
  if (r.stored) {
    expect(["sealed", "receipt"]).toContain(envelopeForm(bytes));
    // a damaged envelope is at most carried as an opaque blob, never opened
    if (!isValid(bytes)) expect(mailbox.envelopes.get(sha256(bytes))).toBeUndefined();
  }
}

describe("fuzz: the mailbox door", () => {
  it("mutated envelopes, any hops and copies: receive answers (no throw, no false storage failure), stores no wrong signature", async () => {
    await checkAsync(
      fc.asyncProperty(incoming, async ({ sent, hops, copies, source }) => {
        note(sent.bytes);
        const r = await mailbox.receive(sent.bytes, hops, "someone@local", source, copies);
        answered(r, sent.bytes);
        storeIsClean();
      }),
      1 / 2,
    );
  }, TEST_TIMEOUT);

  it("a batch mixing good and damaged envelopes: one answer each, the store stays clean", async () => {
    await checkAsync(
      fc.asyncProperty(fc.array(incoming, { minLength: 1, maxLength: 8 }), async (items) => {
        const rs = await mailbox.receiveMany(items.map((i) => ({ bytes: i.sent.bytes, hops: i.hops, copies: i.copies, source: i.source, from: "someone@local" })));
        expect(rs).toHaveLength(items.length);
        rs.forEach((r, i) => answered(r, items[i]!.sent.bytes));
        storeIsClean();
      }),
      1 / 6,
    );
  }, TEST_TIMEOUT);

  it("afterwards the mailbox still works: it recovers, and the genuine envelopes are all in and open", async () => {
    await mailbox.recover();
    for (const bytes of valid) {
      const r = await mailbox.receive(bytes, 1, "amara@local");
      expect(r.refused ?? "", toHex(sha256(bytes))).toBe("");
    }
    storeIsClean();
    for (const bytes of valid) expect(mailbox.envelopes.has(sha256(bytes))).toBe(true);
    const shown = (await mailbox.requests()).flatMap((q) => q.messages.map((m) => m.body)).sort();
    expect(shown).toEqual(["are you coming to football?", "hello baraka"]);
  });
});
