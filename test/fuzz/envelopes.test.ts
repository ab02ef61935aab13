// Sealed envelopes (docs/protocol.md §3) from carriers nobody trusts: a changed envelope never passes
// as its author's, decoding fails only with EnvelopeError, and admission always answers with a
// status and a reason instead of throwing, even for envelopes whose signature is genuine but whose
// contents are made up by a member of the conversation.
import { describe, expect, it } from "vitest";
import {
  admitEnvelope, appendMessage, conversationId, conversationKeyId, decodeEnvelope, decodeInner, emptySegment, encodeInner, EnvelopeError, EnvelopeKind,
  formatHlc, generateIdentity, keyId, newActorId, newConversationKey, randomBytes, sealChange, sealKey, signEnvelope, toHex,
  verifyEnvelope, type Admission, type AdmissionContext, type Envelope, type Identity,
} from "../../packages/model/src/index.js";
import { openKeyEnvelope } from "../../packages/model/src/envelope.js";
import { secretboxSeal, sha256 } from "../../packages/model/src/crypto.js";
import { concat, Reader, Writer } from "../../packages/model/src/bytes.js";
import { attempt, check, expectOnly, fc, mutated, note, runs, sameBytes, TEST_TIMEOUT } from "./fuzz.js";

const amara = generateIdentity("amara");
const baraka = generateIdentity("baraka");
const members = [amara.signing.publicKey, baraka.signing.publicKey];
const conv = conversationId(members);
const key = newConversationKey();
const now = Date.UTC(2026, 10, 25);

function change(author: Identity, body: string): Uint8Array {
  return appendMessage(emptySegment(newActorId(author.signing.publicKey)), {
    id: toHex(randomBytes(12)), authorKeyId: keyId(author.signing.publicKey), hlc: formatHlc({ wall: now, counter: 0 }), sentAt: now, body,
  }).change;
}

const keyEnvelope = sealKey(amara, { conversation: conv, recipients: [{ signPublicKey: baraka.signing.publicKey, sealPublicKey: baraka.sealing.publicKey }], created: now }, key);
const realChange = change(amara, "see you at the well after school");
const valid: Envelope[] = [
  keyEnvelope,
  sealChange(amara, { conversation: conv, segment: 0, recipients: [baraka.signing.publicKey], created: now }, key, realChange),
  sealChange(amara, { conversation: conv, segment: 3, recipients: [baraka.signing.publicKey], created: now, lifetime: 60 }, key, change(amara, "")),
  // a signed acknowledgement of envelope version 2 (receipts replaced them): refused, never opened
  signEnvelope(baraka, { kind: EnvelopeKind.Ack, conversation: new Uint8Array(16), segment: 0, recipients: [amara.signing.publicKey], created: now, lifetime: 86400, keyId: new Uint8Array(8) }, randomBytes(65)),
];

/** Baraka's node: it knows the conversation, its key and its members, and has opened nothing yet. */
const context: AdmissionContext = {
  me: baraka,
  members,
  keys: new Map([[toHex(conversationKeyId(key)), key]]),
  alreadyOpened: () => false,
  changeKnown: () => false,
};

function boxesOf(payload: Uint8Array): Uint8Array[] {
  const r = new Reader(payload);
  r.raw(32);
  const n = r.varint();
  return Array.from({ length: n }, () => Uint8Array.from(r.bytes(1024)));
}

const STATUSES = ["change", "key", "pending", "rejected"];

/** Admission never throws, and always says what it did; a refusal or a wait comes with its reason. */
function admit(bytes: Uint8Array): Admission {
  const out = attempt("admitEnvelope", () => admitEnvelope(bytes, context));
  if (!out.ok) throw new Error(`admitEnvelope threw ${(out.error as Error)?.stack ?? String(out.error)}`);
  const a = out.value;
  expect(STATUSES).toContain(a.status);
  if (a.status === "rejected" || a.status === "pending") expect(a.reason.length).toBeGreaterThan(0);
  if (a.status !== "rejected") expect(verifyEnvelope(a.envelope)).toBe(true);
  return a;
}

/** decodeEnvelope throws EnvelopeError only (DecodeError is wrapped), and a result is the exact input. */
function decode(bytes: Uint8Array): Envelope | undefined {
  note(bytes);
  const out = attempt("decodeEnvelope", () => decodeEnvelope(bytes));
  if (!out.ok) {
    expectOnly(out.error, EnvelopeError);
    return undefined;
  }
  const env = out.value;
  expect(sameBytes(env.bytes, bytes)).toBe(true);
  expect(sameBytes(env.id, sha256(bytes))).toBe(true);
  expect(env.signedLength + 64).toBe(bytes.length);
  return env;
}

const validBytes = fc.constantFrom(...valid.map((e) => e.bytes));

describe("fuzz: sealed envelopes", () => {
  it("the valid envelopes admit as they should (the properties below start from them)", () => {
    expect(valid.map((e) => admit(e.bytes).status)).toEqual(["key", "change", "change", "rejected"]);
  });

  it("a mutated envelope never verifies and is always refused with a reason", () => {
    check(
      fc.property(mutated(validBytes), ({ original, bytes }) => {
        const env = decode(bytes);
        const unchanged = sameBytes(bytes, original);
        if (env) expect(verifyEnvelope(env)).toBe(unchanged);
        if (unchanged) return;
        const a = admit(bytes);
        expect(a.status).toBe("rejected");
      }),
      1 / 3,
    );
  }, TEST_TIMEOUT);

  it("a first message with its key, mutated or made up, decodes with EnvelopeError only and never verifies", () => {
    const pair = encodeInner(valid[1]!, keyEnvelope);
    const madeUp = fc.uint8Array({ maxLength: 600 }).map((b) => Uint8Array.from([0, ...b]));
    check(
      fc.property(fc.oneof(mutated(fc.constant(pair)), madeUp.map((bytes) => ({ original: pair, bytes }))), ({ original, bytes }) => {
        note(bytes);
        const out = attempt("decodeInner", () => decodeInner(bytes));
        if (!out.ok) return expectOnly(out.error, EnvelopeError);
        const { envelope, key: k } = out.value;
        expect(verifyEnvelope(envelope) && (!k || verifyEnvelope(k))).toBe(sameBytes(bytes, original));
      }),
      1 / 3,
    );
  }, TEST_TIMEOUT);

  it("arbitrary bytes are refused with EnvelopeError, and admission says why", () => {
    const plausible = fc
      .tuple(fc.constantFrom(0, 1, 2), fc.constantFrom(1, 2, 3, 4), fc.uint8Array({ maxLength: 400 }))
      .map(([v, k, rest]) => Uint8Array.from([v, k, ...rest]));
    check(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 400 }), plausible), (bytes) => {
        const env = decode(bytes);
        if (env) expect(verifyEnvelope(env)).toBe(false);
        expect(admit(bytes).status).toBe("rejected");
      }),
    );
  }, TEST_TIMEOUT);

  it("a member's genuinely signed envelope with made-up contents is answered, never thrown on", () => {
    // Amara is a member and holds the key: she can sign anything. What she signs must not crash Baraka.
    const recipientsArb = fc.oneof(
      fc.constant(null).map(() => [baraka.signing.publicKey]),
      fc.array(fc.oneof(fc.constant(baraka.signing.publicKey), fc.uint8Array({ minLength: 32, maxLength: 32 })), { maxLength: 4 }),
    );
    const common = {
      segment: fc.oneof(fc.nat(5), fc.maxSafeNat()),
      created: fc.maxSafeNat(),
      lifetime: fc.maxSafeNat(),
      keyId: fc.oneof(fc.constant(conversationKeyId(key)), fc.uint8Array({ minLength: 8, maxLength: 8 })),
    };
    const anyConversation = fc.oneof(fc.constant(conv), fc.uint8Array({ minLength: 16, maxLength: 16 }));
    // change: junk, or a real Automerge change (mutated or not) sealed under the real key, so Automerge reads it
    const plaintext = fc.oneof(fc.uint8Array({ maxLength: 300 }), mutated(fc.constant(realChange)).map((m) => m.bytes), fc.constant(realChange));
    const changeCase = fc.record({
      ...common,
      kind: fc.constant(EnvelopeKind.Change),
      conversation: anyConversation,
      recipients: recipientsArb,
      payload: fc.oneof(plaintext.map((p) => secretboxSeal(key, p)), fc.uint8Array({ maxLength: 300 })),
    });
    // key: the conversation id of its claimed members (so admission opens it), the author's X25519 key,
    // a count (mostly one box per member), boxes of any size: empty, short, junk, real ones
    const box = fc.oneof(fc.uint8Array({ maxLength: 60 }), fc.constantFrom(...boxesOf(keyEnvelope.payload)));
    const keyCase = recipientsArb.chain((recipients) =>
      fc.record({
        ...common,
        kind: fc.constant(EnvelopeKind.Key),
        recipients: fc.constant(recipients),
        conversation: fc.oneof(fc.constant(conversationId([amara.signing.publicKey, ...recipients])), anyConversation),
        payload: fc.oneof(
          fc
            .tuple(
              fc.oneof(fc.constant(amara.sealing.publicKey), fc.uint8Array({ minLength: 32, maxLength: 32 })),
              fc.oneof({ arbitrary: fc.constant(-1), weight: 3 }, fc.nat(4), fc.maxSafeNat()),
              fc.array(box, { minLength: recipients.length + 1, maxLength: recipients.length + 1 }),
              fc.nat(2),
            )
            .map(([seal, n, boxes, drop]) => {
              const kept = boxes.slice(0, boxes.length - (drop === 2 ? 1 : 0));
              const w = new Writer().raw(seal).varint(n < 0 ? kept.length : n);
              for (const b of kept) w.bytes(b);
              return w.finish();
            }),
          mutated(fc.constant(keyEnvelope.payload)).map((m) => m.bytes),
          fc.uint8Array({ maxLength: 100 }),
        ),
      }),
    );
    // ack: a count and ids, the count true or not
    const ackCase = fc.record({
      ...common,
      kind: fc.constant(EnvelopeKind.Ack),
      conversation: anyConversation,
      recipients: recipientsArb,
      payload: fc.oneof(
        fc
          .tuple(fc.oneof(fc.nat(3), fc.constantFrom(0, 1024, 1025, 2 ** 53 - 1)), fc.array(fc.uint8Array({ minLength: 32, maxLength: 32 }), { maxLength: 3 }), fc.uint8Array({ maxLength: 3 }))
          .map(([n, ids, tail]) => concat([new Writer().varint(n).finish(), ...ids, tail])),
        mutated(fc.constant(valid[3]!.payload)).map((m) => m.bytes),
      ),
    });
    const reasons = new Set<string>();
    check(
      fc.property(fc.oneof(changeCase, keyCase, ackCase), ({ payload, ...h }) => {
        const env = signEnvelope(amara, h, payload);
        note(env.bytes);
        const a = admit(env.bytes);
        reasons.add(a.status === "rejected" || a.status === "pending" ? a.reason.replace(/ \(.*$/s, "") : a.status);
        if (a.status === "change" || a.status === "key") expect(sameBytes(a.envelope.author, amara.signing.publicKey)).toBe(true);
        const opened = attempt("openKeyEnvelope", () => openKeyEnvelope(env, baraka));
        if (!opened.ok) throw opened.error;
      }),
      1 / 3,
    );
    // the made-up envelopes reach past the signature check, deep into admission
    if (runs(1 / 3) >= 100) expect(reasons.size, [...reasons].join("; ")).toBeGreaterThanOrEqual(5);
  }, TEST_TIMEOUT);
});
