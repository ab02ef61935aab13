// The mailbox's door (Mailbox.receive / receiveMany, packages/sync/src/mailbox/receiving.ts): whatever
// a link hands over, with any hop count and copy tokens, it answers without throwing, and nothing whose
// signature is not its author's ever gets into the sealed store.
import { afterAll, describe, expect, it } from "vitest";
import {
  appendMessage, contactCard, conversationId, decodeEnvelope, emptySegment, formatHlc, generateIdentity, keyId, newActorId, newConversationKey,
  randomBytes, sealAck, sealChange, sealKey, sha256, toHex, verifyEnvelope, type Identity,
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
  const out = [sealKey(from, { conversation: conv, recipients: [contactCard(to)], created: now }, key).bytes];
  let doc = emptySegment(newActorId(from.signing.publicKey));
  bodies.forEach((body, counter) => {
    const m = appendMessage(doc, { id: toHex(randomBytes(12)), authorKeyId: keyId(from.signing.publicKey), hlc: formatHlc({ wall: now, counter }), sentAt: now, body });
    doc = m.doc;
    out.push(sealChange(from, { conversation: conv, segment: 0, recipients: [to.signing.publicKey], created: now }, key, m.change).bytes);
  });
  return out;
}

const valid = [
  ...conversation(amara, baraka, ["hello baraka", "are you coming to football?"]),
  ...conversation(chidi, dembe, ["hello dembe"]),
  sealAck(dembe, { recipients: [chidi.signing.publicKey], created: now }, [randomBytes(32)]).bytes,
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

/** Everything in the sealed store is exactly an envelope its author signed: one that was sent, or baraka's own (acks, receipts). */
function storeIsClean(): void {
  for (const { id } of mailbox.envelopes.ids()) {
    const env = mailbox.envelopes.get(id)!;
    expect(verifyEnvelope(env), toHex(id)).toBe(true);
    expect(sameBytes(sha256(env.bytes), id)).toBe(true);
    const own = sameBytes(env.author, baraka.signing.publicKey);
    expect(own || isValid(env.bytes), `a stored envelope that nobody sent: ${toHex(id)}`).toBe(true);
  }
}

/** An answer, not a crash: an exception inside the door would surface as a (retried) storage failure. */
function answered(r: ReceiveResult, bytes: Uint8Array): void {
  expect(typeof r.stored).toBe("boolean");
  expect(r.retry, r.refused).toBeFalsy();
  expect(mailbox.storageTrouble, mailbox.storageTrouble?.reason).toBeUndefined();
  if (r.stored) {
    expect(isValid(bytes)).toBe(true);
    expect(verifyEnvelope(decodeEnvelope(bytes))).toBe(true);
  }
}

describe("fuzz: the mailbox door", () => {
  it("mutated envelopes, any hops and copies: receive answers (no throw, no false storage failure), stores no wrong signature", async () => {
    await checkAsync(
      fc.asyncProperty(incoming, async ({ sent, hops, copies, source }) => {
        note(sent.bytes);
        const r = await mailbox.receive(sent.bytes, hops, "someone@local", source, copies);
        answered(r, sent.bytes);
        if (!sameBytes(sent.bytes, sent.original)) expect(r.stored).toBe(false);
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
