// Sealed envelopes and receipts (envelope version 3, docs/protocol.md §3) from carriers nobody
// trusts: decoding answers with a value or EnvelopeError, a value re-encodes to exactly its bytes
// (one encoding), and a sealed envelope opens only exactly as its author sealed it: change any byte
// (a slot, a lock, the hour) and it opens for no one.
import { describe, expect, it } from "vitest";
import {
  conversationId, decodeReceipt, decodeSealed, EnvelopeError, generateIdentity, makeReceipt, newConversationKey, randomBytes, sealChange,
  sealEnvelope, sealKey, unseal, type Identity,
} from "../../packages/model/src/index.js";
import { attempt, check, expectOnly, fc, mutated, note, sameBytes, TEST_TIMEOUT } from "./fuzz.js";

const amara = generateIdentity("amara");
const baraka = generateIdentity("baraka");
const chiku = generateIdentity("chiku");
const now = Date.UTC(2026, 10, 27, 10, 5);
const conv = conversationId([amara.person, baraka.person]);
const key = newConversationKey();
const card = (p: Identity) => ({ signPublicKey: p.person, sealPublicKey: p.sealing.publicKey });

const inners = [
  sealKey(amara, { conversation: conv, recipients: [card(baraka)], created: now }, key),
  sealChange(amara, { conversation: conv, segment: 0, recipients: [baraka.person], created: now }, key, randomBytes(60)),
  sealChange(amara, { conversation: randomBytes(16), segment: 1, recipients: [], created: now }, key, randomBytes(10)),
];
const sealed = [
  sealEnvelope(amara.sealing, inners[0]!, [baraka.sealing.publicKey]),
  sealEnvelope(amara.sealing, inners[1]!, [baraka.sealing.publicKey, chiku.sealing.publicKey]),
  sealEnvelope(amara.sealing, inners[2]!, []),
];
const receipts = [
  makeReceipt({ created: now }, [{ id: sealed[0]!.id, ackKey: unseal(sealed[0]!, [baraka.sealing])!.ackKey }]),
  makeReceipt({ created: now }, Array.from({ length: 5 }, () => ({ id: randomBytes(32), ackKey: randomBytes(32) }))),
];
const innerOf = new Map(sealed.map((s, i) => [Buffer.from(s.bytes).toString("hex"), inners[i]!.bytes]));

function decodeOrNull<T>(what: string, f: () => T): T | undefined {
  const r = attempt(what, f);
  if (r.ok) return r.value;
  expectOnly(r.error, EnvelopeError);
  return undefined;
}

describe("fuzz: sealed envelopes and receipts", () => {
  it("arbitrary and mutated bytes: a value that is exactly its bytes, or EnvelopeError; nothing else ever opens", () => {
    const plausible = fc
      .tuple(fc.constantFrom(5, 6), fc.uint8Array({ maxLength: 500 }))
      .map(([k, rest]) => Uint8Array.from([3, k, ...rest]));
    const input = fc.oneof(
      mutated(fc.constantFrom(...sealed.map((s) => s.bytes), ...receipts.map((r) => r.bytes))).map((m) => m.bytes),
      plausible,
      fc.uint8Array({ maxLength: 300 }),
    );
    check(
      fc.property(input, (bytes) => {
        note(bytes);
        const s = decodeOrNull("decodeSealed", () => decodeSealed(bytes));
        if (s) {
          expect(sameBytes(s.bytes, bytes)).toBe(true);
          // whoever opens it gets what the author sealed, or nothing
          for (const who of [baraka, chiku, amara]) {
            const o = attempt("unseal", () => unseal(s, [who.sealing]));
            expect(o.ok).toBe(true);
            const opened = o.ok ? o.value : null;
            // one form only: what opens is an envelope exactly as its author sealed it
            if (opened) expect(sameBytes(opened.inner, innerOf.get(Buffer.from(bytes).toString("hex")) ?? new Uint8Array(0)), "a changed envelope opened").toBe(true);
          }
        }
        const r = decodeOrNull("decodeReceipt", () => decodeReceipt(bytes));
        if (r) expect(sameBytes(makeReceipt({ created: r.created, lifetime: r.lifetime }, r.entries).bytes, bytes)).toBe(true);
      }),
    );
  }, TEST_TIMEOUT);
});
