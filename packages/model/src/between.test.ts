// An envelope sealed for another village: the destination relay point in cleartext, nothing else
// a carrier did not already see, and the sealed envelope inside unchanged for its recipient.
import { describe, expect, it } from "vitest";
import { toHex } from "./bytes.js";
import { randomBytes } from "./crypto.js";
import { conversationId } from "./conversation.js";
import { sealChange, newConversationKey } from "./envelope.js";
import { generateIdentity } from "./identity.js";
import { decodeBetweenVillages, forVillage, isBetweenVillages } from "./between.js";
import { envelopeForm, sealEnvelope, unseal } from "./sealed.js";

const amara = generateIdentity("amara", "kisumu-primary");
const otieno = generateIdentity("otieno", "siaya-primary");
const now = Date.UTC(2026, 10, 27, 9, 41);
const conv = conversationId([amara.person, otieno.person]);
const inner = sealChange(amara, { conversation: conv, segment: 0, recipients: [otieno.person], created: now }, newConversationKey(), randomBytes(40));

const sealed = sealEnvelope(amara.sealing, inner, [otieno.sealing.publicKey]);

describe("envelopes for another village (version 3, kind 7)", () => {
  it("name the destination relay point and nothing more; the recipient opens what is inside", () => {
    const b = forVillage("siaya-primary", sealed);
    expect(isBetweenVillages(b.bytes)).toBe(true);
    expect(envelopeForm(b.bytes)).toBe("between"); // never mistaken for a sealed envelope of this village
    const d = decodeBetweenVillages(b.bytes);
    expect(d.dest).toBe("siaya-primary");
    expect(toHex(d.sealed.id)).toBe(toHex(sealed.id)); // receipts name the same id
    expect(toHex(d.id)).toBe(toHex(b.id));
    const hex = toHex(b.bytes);
    for (const secret of [amara.person, otieno.person, amara.sealing.publicKey, otieno.sealing.publicKey, conv]) expect(hex).not.toContain(toHex(secret));
    expect(Buffer.from(b.bytes).includes(Buffer.from("kisumu-primary"))).toBe(false); // not where it comes from
    expect(Buffer.from(b.bytes).includes(Buffer.from("otieno"))).toBe(false);
    expect(unseal(d.sealed, [otieno.sealing])?.inner).toBeDefined();
  });

  it("refuse a bad relay point name, a damaged sealed envelope inside, and a bad name given to the sender", () => {
    const b = forVillage("siaya-primary", sealed);
    const upper = Uint8Array.from(b.bytes);
    upper[3] = 0x53; // 'S': not a home
    expect(() => decodeBetweenVillages(upper)).toThrow("names no relay point");
    expect(() => decodeBetweenVillages(b.bytes.subarray(0, b.bytes.length - 3))).toThrow();
    expect(() => decodeBetweenVillages(Uint8Array.of(3, 7, 200))).toThrow("malformed");
    expect(() => forVillage("Not A Home", sealed)).toThrow("not a relay point's name");
  });
});
