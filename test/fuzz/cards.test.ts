// Contact cards (docs/protocol.md, "Contact cards"): text a child pastes from anywhere. decodeCard
// returns the card its owner signed, or throws AddressError ("damaged contact card ..."), nothing else.
import { describe, expect, it } from "vitest";
import {
  AddressError, DirectoryError, checkSchoolWord, decodeCard, encodeCard, encodeEntry, generateIdentity, generateSchool, type ContactCard,
} from "../../packages/model/src/index.js";
import { concat, Writer } from "../../packages/model/src/bytes.js";
import { sign } from "../../packages/model/src/crypto.js";
import { attempt, check, expectOnly, fc, mutate, mutationsArb, note, sameBytes, TEST_TIMEOUT } from "./fuzz.js";

const owners = [generateIdentity("zawadi", "kisumu-primary"), generateIdentity("a", "b"), generateIdentity("x".repeat(32), "h".repeat(63))];
const cards = owners.map((o) => encodeCard(o));
const PREFIX = "pigeon1:";

function decode(text: string): ContactCard | undefined {
  note(text);
  const out = attempt("decodeCard", () => decodeCard(text));
  if (out.ok) return out.value;
  expectOnly(out.error, AddressError);
  return undefined;
}

function sameCard(a: ContactCard, b: ContactCard): boolean {
  return a.name === b.name && a.home === b.home && sameBytes(a.signPublicKey, b.signPublicKey) && sameBytes(a.sealPublicKey, b.sealPublicKey);
}

/** Character-level damage a card suffers on its way: a typo, a lost or doubled character, case, spaces, a line break. */
const textMutation = fc.oneof(
  fc.record({ kind: fc.constant("replace" as const), at: fc.nat(), ch: fc.oneof(fc.string({ minLength: 1, maxLength: 1 }), fc.constantFrom("-", "_", "+", "/", "=", "A", "a", "\u0000", "é")) }),
  fc.record({ kind: fc.constant("delete" as const), at: fc.nat() }),
  fc.record({ kind: fc.constant("insert" as const), at: fc.nat(), s: fc.oneof(fc.string({ maxLength: 4 }), fc.constantFrom(" ", "\n", "\t", "=", "==", "AAAA")) }),
  fc.record({ kind: fc.constant("case" as const), at: fc.nat() }),
  fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
);
type TextMutation = typeof textMutation extends fc.Arbitrary<infer T> ? T : never;

function damage(s: string, m: TextMutation): string {
  const i = s.length === 0 ? 0 : m.at % (s.length + (m.kind === "insert" ? 1 : 0));
  switch (m.kind) {
    case "replace":
      return s.slice(0, i) + m.ch + s.slice(i + 1);
    case "delete":
      return s.slice(0, i) + s.slice(i + 1);
    case "insert":
      return s.slice(0, i) + m.s + s.slice(i);
    case "case": {
      const c = s.charAt(i);
      return s.slice(0, i) + (c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase()) + s.slice(i + 1);
    }
    case "truncate":
      return s.slice(0, i);
  }
}

describe("fuzz: contact cards", () => {
  it("any text is a card or an AddressError", () => {
    const b64 = fc.uint8Array({ maxLength: 200 }).map((b) => PREFIX + Buffer.from(b).toString("base64url"));
    check(fc.property(fc.oneof(fc.string({ maxLength: 300 }), fc.string({ unit: "binary", maxLength: 100 }), b64), (text) => void decode(text)));
  }, TEST_TIMEOUT);

  it("a damaged card is refused, or still reads as exactly the card its owner signed", () => {
    check(
      fc.property(fc.nat(cards.length - 1), fc.array(textMutation, { minLength: 1, maxLength: 3 }), (which, ms) => {
        const text = ms.reduce(damage, cards[which]!);
        const card = decode(text);
        if (card) expect(sameCard(card, decodeCard(cards[which]!))).toBe(true);
      }),
    );
  }, TEST_TIMEOUT);

  it("changed card bytes are refused, or are the owner's card (base64 slack), never another one", () => {
    check(
      fc.property(fc.nat(cards.length - 1), mutationsArb, (which, ms) => {
        const bytes = new Uint8Array(Buffer.from(cards[which]!.slice(PREFIX.length), "base64url"));
        const card = decode(PREFIX + Buffer.from(mutate(bytes, ms)).toString("base64url"));
        if (card) expect(sameCard(card, decodeCard(cards[which]!))).toBe(true);
      }),
    );
  }, TEST_TIMEOUT);

  it("a self-signed card with any name and home is taken only with a valid, canonical address", () => {
    const owner = owners[0]!;
    check(
      fc.property(fc.string({ maxLength: 70 }), fc.string({ maxLength: 70 }), (name, home) => {
        const body = new Writer().u8(1).string(name).string(home).raw(owner.signing.publicKey).raw(owner.sealing.publicKey).finish();
        const sig = sign(owner.signing.seed, concat([new TextEncoder().encode("pigeon-card-v1"), body]));
        const card = decode(PREFIX + Buffer.from(concat([body, sig])).toString("base64url"));
        if (!card) return;
        expect(card.name).toBe(name);
        expect(card.home).toBe(home);
        expect(name).toMatch(/^[a-z0-9][a-z0-9._-]{0,31}$/);
        expect(home).toMatch(/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/);
      }),
      1 / 2,
    );
  }, TEST_TIMEOUT);

  it("a school's word that was damaged or made up is refused with a DirectoryError, never taken for the school's", () => {
    const school = generateSchool("siaya-primary");
    const ben = generateIdentity("ben", "siaya-primary");
    const person = { name: "ben", home: "siaya-primary", signPublicKey: ben.signing.publicKey };
    const entry = { type: "enrol" as const, home: "siaya-primary", serial: 4, at: 1, personKey: ben.signing.publicKey, name: "ben", class: "6A", role: "student" as const };
    const word = encodeEntry(school, entry);
    const checked = (bytes: Uint8Array) => {
      note(Buffer.from(bytes).toString("hex"));
      const out = attempt("checkSchoolWord", () => checkSchoolWord(bytes, person, school.signing.publicKey, 2));
      if (out.ok) return out.value;
      expectOnly(out.error, DirectoryError);
      return undefined;
    };
    check(fc.property(fc.uint8Array({ maxLength: 1300 }), (bytes) => {
      expect(checked(bytes)).toBeUndefined();
    }));
    check(
      fc.property(mutationsArb, (ms) => {
        const got = checked(mutate(word, ms));
        if (got) expect(got).toEqual(entry); // only the school's own bytes hold
      }),
    );
    // the word travels after the card's dot: any word text still gives the card, or a damaged-card error
    check(fc.property(fc.string({ maxLength: 80 }), (text) => void decode(`${cards[0]!}.${text}`)));
  }, TEST_TIMEOUT);
});
