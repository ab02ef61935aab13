import { describe, expect, it } from "vitest";
import { toHex, Writer } from "./bytes.js";
import { generateSealingKeyPair, randomBytes, x25519, x25519Fast, X25519OneOff, x25519PublicKey } from "./crypto.js";
import { conversationId } from "./conversation.js";
import { decodeEnvelope, decodeInner, encodeInner, EnvelopeError, newConversationKey, openChange, openKey, sealChange, sealKey, verifyEnvelope } from "./envelope.js";
import { generateIdentity } from "./identity.js";
import { decodeReceipt, decodeSealed, envelopeForm, lockOf, makeReceipt, recognises, sealEnvelope, unseal } from "./sealed.js";
import { decodeFrame, encodeFrame } from "./wire.js";

const amara = generateIdentity("amara");
const baraka = generateIdentity("baraka");
const carol = generateIdentity("carol");
const now = Date.UTC(2026, 10, 27, 9, 41);
const conv = conversationId([amara.person, baraka.person]);
const key = newConversationKey();
const inner = sealChange(amara, { conversation: conv, segment: 0, recipients: [baraka.person], created: now }, key, randomBytes(40));
const sealed = sealEnvelope(amara.sealing, inner, [baraka.sealing.publicKey]);

describe("sealed envelopes (version 3)", () => {
  it("node:crypto X25519 agrees with tweetnacl", () => {
    for (let i = 0; i < 100; i++) {
      const a = generateSealingKeyPair();
      const b = generateSealingKeyPair();
      expect(toHex(x25519Fast(b.publicKey, a.secretKey)!)).toBe(toHex(x25519(b.publicKey, a.secretKey)!));
      expect(toHex(x25519PublicKey(a.secretKey))).toBe(toHex(a.publicKey));
      // a one-off secret made into a key object once (sealing), its peers' keys cached: same results
      const once = new X25519OneOff(a.secretKey);
      expect(toHex(once.publicKey)).toBe(toHex(a.publicKey));
      expect(toHex(once.agree(b.publicKey)!)).toBe(toHex(x25519(b.publicKey, a.secretKey)!));
      expect(toHex(once.agree(b.publicKey)!)).toBe(toHex(x25519(b.publicKey, a.secretKey)!));
    }
    expect(x25519Fast(new Uint8Array(32), amara.sealing.secretKey)).toBeNull(); // low-order point
    expect(new X25519OneOff(amara.sealing.secretKey).agree(new Uint8Array(32))).toBeNull();
  });

  it("shows carriers no person key, conversation or inner bytes; only the hour, lifetime, slots and locks", () => {
    expect(envelopeForm(sealed.bytes)).toBe("sealed");
    const hex = toHex(sealed.bytes);
    for (const secret of [amara.person, baraka.person, amara.sealing.publicKey, baraka.sealing.publicKey, conv, inner.signature, inner.id])
      expect(hex).not.toContain(toHex(secret));
    const d = decodeSealed(sealed.bytes);
    expect(d.created).toBe(Date.UTC(2026, 10, 27, 9));
    expect(d.slots).toHaveLength(2); // baraka, and amara's own other devices
    expect(d.locks).toHaveLength(1);
    expect(toHex(d.id)).toBe(toHex(sealed.id));
  });

  it("opens for the recipient and the author's devices, with the recipient alone holding a lock's key", () => {
    const forBaraka = unseal(sealed, [baraka.sealing])!;
    expect(toHex(decodeEnvelope(forBaraka.inner).id)).toBe(toHex(inner.id));
    expect(forBaraka.lock).toBe(true);
    expect(toHex(lockOf(forBaraka.ackKey))).toBe(toHex(sealed.locks[0]!));
    const forAmara = unseal(sealed, [amara.sealing])!;
    expect(toHex(forAmara.inner)).toBe(toHex(inner.bytes));
    expect(forAmara.lock).toBe(false);
    expect(unseal(sealed, [carol.sealing])).toBeNull();
    // after a rotation, the previous sealing key still opens what was sealed to it
    expect(unseal(sealed, [generateSealingKeyPair(), baraka.sealing])).not.toBeNull();
  });

  it("changes its tags with every envelope, and gives the author the same bytes again", () => {
    const other = sealEnvelope(amara.sealing, sealChange(amara, { conversation: conv, segment: 0, recipients: [baraka.person], created: now }, key, randomBytes(40)), [baraka.sealing.publicKey]);
    const tagsA = sealed.slots.map((s) => toHex(s.tag));
    for (const s of other.slots) expect(tagsA).not.toContain(toHex(s.tag));
    expect(toHex(sealEnvelope(amara.sealing, inner, [baraka.sealing.publicKey]).bytes)).toBe(toHex(sealed.bytes));
    expect(recognises(sealed.ephemeral, sealed.slots.map((s) => s.tag), [baraka.sealing])).toBe(true);
    expect(recognises(sealed.ephemeral, sealed.slots.map((s) => s.tag), [carol.sealing])).toBe(false);
  });

  it("seals a key envelope to a group, one slot and one lock per recipient", () => {
    const k = sealKey(amara, {
      conversation: conversationId([amara.person, baraka.person, carol.person]),
      recipients: [baraka, carol].map((p) => ({ signPublicKey: p.person, sealPublicKey: p.sealing.publicKey })), created: now,
    }, key);
    const s = sealEnvelope(amara.sealing, k, [baraka.sealing.publicKey, carol.sealing.publicKey]);
    expect(s.slots).toHaveLength(3);
    expect(s.locks).toHaveLength(2);
    for (const who of [baraka, carol]) expect(unseal(s, [who.sealing])!.lock).toBe(true);
  });

  it("refuses malformed sealed envelopes with EnvelopeError", () => {
    const bad = Uint8Array.from(sealed.bytes);
    bad[2] ^= 1; // created off the hour (or a non-canonical varint)
    expect(() => decodeSealed(bad)).toThrow(EnvelopeError);
    expect(() => decodeSealed(sealed.bytes.subarray(0, 60))).toThrow(EnvelopeError);
    expect(() => decodeSealed(Uint8Array.of(3, 5))).toThrow(EnvelopeError);
    const tampered = Uint8Array.from(sealed.bytes);
    tampered[tampered.length - 1] ^= 1;
    expect(unseal(decodeSealed(tampered), [baraka.sealing])).toBeNull();
  });

  it("receipts carry ack keys that open locks, and decode strictly", () => {
    const opened = unseal(sealed, [baraka.sealing])!;
    const r = makeReceipt({ created: now }, [{ id: sealed.id, ackKey: opened.ackKey }]);
    expect(envelopeForm(r.bytes)).toBe("receipt");
    const d = decodeReceipt(r.bytes);
    expect(toHex(lockOf(d.entries[0]!.ackKey))).toBe(toHex(sealed.locks[0]!));
    expect(toHex(r.bytes)).not.toContain(toHex(baraka.person));
    expect(() => decodeReceipt(r.bytes.subarray(0, r.bytes.length - 1))).toThrow(EnvelopeError);
    expect(() => makeReceipt({ created: now }, [])).toThrow(RangeError);
  });

  it("a Probe frame round-trips and bounds what it takes", () => {
    const f = { type: "probe" as const, entries: [{ key: sealed.id.subarray(0, 16), ephemeral: sealed.ephemeral, tags: sealed.slots.map((s) => s.tag) }] };
    const back = decodeFrame(encodeFrame(f));
    expect(back.type).toBe("probe");
    if (back.type === "probe") expect(toHex(back.entries[0]!.tags[1]!)).toBe(toHex(sealed.slots[1]!.tag));
    expect(() => decodeFrame(Uint8Array.of(11, 0x80, 0x02))).toThrow(); // 256+ entries claimed, none there
  });

  it("a conversation's first message carries its key in the same sealed envelope; a key that does not match it is refused", () => {
    const first = sealChange(amara, { conversation: conv, segment: 0, recipients: [baraka.person], created: now, lifetime: 3600 }, key, randomBytes(40));
    const card = { signPublicKey: baraka.person, sealPublicKey: baraka.sealing.publicKey };
    const keyEnv = sealKey(amara, { conversation: conv, recipients: [card], created: now, lifetime: 3600 }, key);
    const both = sealEnvelope(amara.sealing, { bytes: encodeInner(first, keyEnv), created: first.created, lifetime: first.lifetime }, [baraka.sealing.publicKey]);
    // to a carrier it is one sealed envelope like any other
    expect(decodeSealed(both.bytes).locks.length).toBe(1);
    const opened = decodeInner(unseal(decodeSealed(both.bytes), [baraka.sealing])!.inner);
    expect(toHex(opened.envelope.id)).toBe(toHex(first.id));
    expect(verifyEnvelope(opened.envelope) && verifyEnvelope(opened.key!)).toBe(true);
    expect(toHex(openChange(opened.envelope, openKey(opened.key!, baraka)!)!)).toBe(toHex(openChange(first, key)!));
    // one envelope alone decodes as before
    expect(decodeInner(first.bytes).key).toBeUndefined();
    // a key for another conversation, other recipients, another hour or another author does not travel with it
    const otherConv = conversationId([amara.person, carol.person]);
    const carolCard = { signPublicKey: carol.person, sealPublicKey: carol.sealing.publicKey };
    const wrong = [
      sealKey(amara, { conversation: otherConv, recipients: [card], created: now, lifetime: 3600 }, key),
      sealKey(amara, { conversation: conv, recipients: [carolCard], created: now, lifetime: 3600 }, key),
      sealKey(amara, { conversation: conv, recipients: [card], created: now + 3_600_000, lifetime: 3600 }, key),
      sealKey(carol, { conversation: conv, recipients: [card], created: now, lifetime: 3600 }, key),
      sealKey(amara, { conversation: conv, recipients: [card], created: now, lifetime: 3600 }, newConversationKey()),
    ];
    for (const w of wrong) {
      expect(() => encodeInner(first, w)).toThrow(EnvelopeError);
      const forged = new Writer().u8(0).bytes(w.bytes).raw(first.bytes).finish();
      expect(() => decodeInner(forged)).toThrow(EnvelopeError);
    }
    expect(() => decodeInner(new Uint8Array([0, 5, 1, 2]))).toThrow(EnvelopeError);
  });
});

