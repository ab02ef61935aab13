// A school vouches for its people. The school server holds an Ed25519 key; the school's home (e.g.
// kisumu-primary) is the part after '@' in its people's addresses. It signs directory entries (enrol,
// revoke-person, revoke-device, policy) that laptops carry between each other as opaque blobs and check
// offline; every laptop that holds the same set of entries, received in any order, folds them into
// the same directory. Pure: no I/O, no timers; times are ms passed in.
//
// The rules only ever look at `serial` (the school server's counter), never at `at`: a school
// server's clock may be wrong, its counter only goes up.
import { DecodeError, Reader, Writer, concat, equalBytes, fromBase64, toBase64, toHex, utf8 } from "./bytes.js";
import {
  SIGN_PUBLIC_BYTES, SIGN_SEED_BYTES, SIGNATURE_BYTES, generateSigningKeyPair, hkdfExpand, hkdfExtract, randomBytes, secretboxOpen,
  secretboxSeal, sign, verify, type SigningKeyPair,
} from "./crypto.js";
import { validHome, validName } from "./identity.js";
import { parseGatewayRules } from "./gateway-rules.js";

/** Every problem with a directory entry or an enrolment token, with a reason a log can show. */
export class DirectoryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DirectoryError";
  }
}

// ---- The school's key ----

export const DIRECTORY_KEY_BYTES = 32;

/**
 * The school server's secret: its signing key, and the directory key (a secretbox key) that only
 * enrolled laptops get, so that a carrier from outside the school cannot read children's names.
 */
export interface SchoolKey {
  home: string;
  signing: SigningKeyPair;
  directoryKey: Uint8Array;
}

export function generateSchool(home: string): SchoolKey {
  if (!validHome(home)) throw new DirectoryError(`"${home}" is not a valid school home: use a name like kisumu-primary`);
  return { home, signing: generateSigningKeyPair(), directoryKey: randomBytes(DIRECTORY_KEY_BYTES) };
}

/** The school key file on the school server's disk (JSON is fine here: it never travels). */
export interface SchoolFile {
  version: 1;
  home: string;
  signingSeed: string; // base64
  directoryKey: string; // base64
}

export function serializeSchool(school: SchoolKey): SchoolFile {
  return { version: 1, home: school.home, signingSeed: toBase64(school.signing.seed), directoryKey: toBase64(school.directoryKey) };
}

export function parseSchoolFile(json: unknown): SchoolKey {
  const f = json as Partial<SchoolFile> | null;
  if (!f || typeof f !== "object" || f.version !== 1) throw new Error("school key file: unknown format or version");
  if (typeof f.home !== "string" || !validHome(f.home)) throw new Error("school key file: missing or invalid home");
  if (typeof f.signingSeed !== "string" || typeof f.directoryKey !== "string") throw new Error("school key file: missing keys");
  const seed = strictBase64(f.signingSeed);
  const directoryKey = strictBase64(f.directoryKey);
  if (seed?.length !== SIGN_SEED_BYTES || directoryKey?.length !== DIRECTORY_KEY_BYTES)
    throw new Error("school key file: keys are damaged or have the wrong length");
  return { home: f.home, signing: generateSigningKeyPair(seed), directoryKey };
}

/** Node's base64 decoder skips what it does not understand; a damaged key file must not load quietly. */
function strictBase64(s: string): Uint8Array | undefined {
  const b = fromBase64(s);
  return toBase64(b) === s ? b : undefined;
}

// ---- Directory entries ----

export type Role = "student" | "teacher";

interface EntryBase {
  home: string; // the school's home: signed in, so each entry says "this key is name@home" on its own
  serial: number; // positive; assigned by the school server, one counter for all its entries
  at: number; // ms, for display only
}

export interface EnrolEntry extends EntryBase {
  type: "enrol";
  personKey: Uint8Array; // the person's long-term Ed25519 key
  name: string;
  class: string;
  role: Role;
  /**
   * The person's sealing key (X25519) from the card the school enrolled, so that everyone of the
   * school can write to them, and seal class channel keys to them, without having met them. After a
   * revocation the person's keyring announces a newer one.
   */
  sealKey?: Uint8Array;
  /**
   * The enrolment ends after this (ms; e.g. the end of the school year): after it the school no longer
   * vouches for the key, though the name stays the person's (no one else takes it by enrolling).
   */
  until?: number;
}

/** A child who left, or a person key replaced (the school then enrols a new key under the same name). */
export interface RevokePersonEntry extends EntryBase {
  type: "revoke-person";
  personKey: Uint8Array;
  reason: string;
}

/** A lost or stolen laptop. */
export interface RevokeDeviceEntry extends EntryBase {
  type: "revoke-device";
  deviceKey: Uint8Array;
  personKey: Uint8Array; // whose laptop it was
}

/**
 * The school's rules for its laptops. The newest policy (highest serial) is in force; an older one
 * arriving later changes nothing, so policies converge like every other entry.
 */
export interface PolicyEntry extends EntryBase {
  type: "policy";
  /** "Only the directory": laptops drop messages from anyone the directory does not vouch for (not even requests). */
  onlyDirectory: boolean;
  /** "No student groups": students may not start channels of their own (teachers still may). */
  noStudentGroups?: boolean;
}

/**
 * The school's rules for its e-mail gateway (gateway-rules.ts), as the school wrote them (JSON text):
 * they travel to every laptop so that a laptop can tell a child, before anything leaves, that an address
 * is not allowed, and a gateway takes new rules without a restart. The newest (highest serial) is in
 * force, as for policies; the rules' own serial must go up too (a gateway never goes back).
 */
export interface MailRulesEntry extends EntryBase {
  type: "mail-rules";
  text: string;
}

/**
 * The villages this school exchanges mail with (its relay point's federation, docs/routing.md), each
 * with the key of its school: a laptop checks another village's person's card against that school's
 * word with it (checkSchoolWord), so a stranger cannot pose as a child of another village. The newest
 * (highest serial) is in force.
 */
export interface FederationEntry extends EntryBase {
  type: "federation";
  /** home -> that village's school key; never this school's own home. */
  villages: ReadonlyMap<string, Uint8Array>;
}

export type DirectoryEntry = EnrolEntry | RevokePersonEntry | RevokeDeviceEntry | PolicyEntry | MailRulesEntry | FederationEntry;

export const MAX_CLASS_CHARS = 32;
export const MAX_REASON_CHARS = 200;

// Control, format (e.g. right-to-left overrides), unassigned, private-use and line/paragraph
// separators would let an entry look like something else on screen or in a log.
const UNPRINTABLE = /[\p{C}\p{Zl}\p{Zp}]/u;

const printable = (s: string, min: number, max: number) => {
  const n = [...s].length;
  return n >= min && n <= max && !UNPRINTABLE.test(s);
};

/** A class name: 1-32 printable characters, no spaces at either end (so "4A" and "4A " are one class). */
export function validClass(c: string): boolean {
  return printable(c, 1, MAX_CLASS_CHARS) && c.trim() === c;
}

const isKey = (k: unknown) => k instanceof Uint8Array && k.length === SIGN_PUBLIC_BYTES;

/** Why an entry is not one the school could sign, or undefined. The same check on encode and decode. */
function entryProblem(e: DirectoryEntry): string | undefined {
  if (!validHome(e.home)) return `home ${JSON.stringify(e.home)} is not valid`;
  if (!Number.isSafeInteger(e.serial) || e.serial < 1) return `serial ${e.serial} is not a positive integer`;
  if (!Number.isSafeInteger(e.at) || e.at < 0) return `time ${e.at} is not a time in ms`;
  switch (e.type) {
    case "enrol":
      if (!isKey(e.personKey)) return "person key is not 32 bytes";
      if (e.sealKey !== undefined && !isKey(e.sealKey)) return "sealing key is not 32 bytes";
      if (e.until !== undefined && (!Number.isSafeInteger(e.until) || e.until < 0)) return "the enrolment's end is not a time";
      if (!validName(e.name)) return `name ${JSON.stringify(e.name)} is not a valid name`;
      if (!validClass(e.class)) return `class ${JSON.stringify(e.class)} is not 1-32 printable characters`;
      if (e.role !== "student" && e.role !== "teacher") return `role ${JSON.stringify(e.role)} is neither student nor teacher`;
      return undefined;
    case "revoke-person":
      if (!isKey(e.personKey)) return "person key is not 32 bytes";
      if (typeof e.reason !== "string" || !printable(e.reason, 0, MAX_REASON_CHARS))
        return `reason is not at most ${MAX_REASON_CHARS} printable characters`;
      return undefined;
    case "revoke-device":
      if (!isKey(e.deviceKey) || !isKey(e.personKey)) return "device or person key is not 32 bytes";
      return undefined;
    case "policy":
      if (typeof e.onlyDirectory !== "boolean") return "policy rule only-directory is not true or false";
      if (e.noStudentGroups !== undefined && typeof e.noStudentGroups !== "boolean") return "policy rule no-student-groups is not true or false";
      return undefined;
    case "mail-rules": {
      if (typeof e.text !== "string" || utf8(e.text).length > MAX_MAIL_RULES_BYTES) return `e-mail rules are not text of at most ${MAX_MAIL_RULES_BYTES} bytes`;
      try {
        const rules = parseGatewayRules(JSON.parse(e.text));
        if (rules.school !== e.home) return `e-mail rules for another school (${rules.school})`;
      } catch (err) {
        return (err as Error).message;
      }
      return undefined;
    }
    case "federation": {
      if (!(e.villages instanceof Map)) return "the federation is not a list of villages";
      if (e.villages.size > MAX_FEDERATION_VILLAGES) return `a federation of ${e.villages.size} villages is over the limit of ${MAX_FEDERATION_VILLAGES}`;
      for (const [home, key] of e.villages) {
        if (!validHome(home)) return `village ${JSON.stringify(home)} is not a valid home`;
        if (home === e.home) return "the federation lists the school's own village";
        if (!isKey(key)) return `the school key of ${home} is not 32 bytes`;
      }
      return undefined;
    }
    default:
      return `unknown entry type ${JSON.stringify((e as { type: unknown }).type)}`;
  }
}

// Signed entry (v1), the cleartext form:
//   u8 version=1 | u8 type | string home | varint serial | varint at | bytes details | raw64 signature
//   details: enrol         1: raw32 person key | string name | string class | u8 role (1 student, 2 teacher)
//                             [| u8 flags (bit 0: sealing key follows, bit 1: end follows; others 0)
//                                [| raw32 sealing key] [| varint until (ms)]]
//            revoke-person 2: raw32 person key | string reason
//            revoke-device 3: raw32 device key | raw32 person key
//            policy        4: varint rules (bit 0: only the directory; bit 1: no student groups; other bits are refused as unknown
//                             rules, so a laptop never half-applies a policy it does not understand)
//            mail-rules    5: string the e-mail gateway's rules, JSON (gateway-rules.ts; at most 32 KiB)
//            federation    6: varint n (at most 256) | n × (string home | raw32 school key), homes in sorted order
// The signature is by the school key over "pigeon-directory-v1" ‖ every byte before it. The details
// are length-prefixed so that a laptop can check the signature of a type it does not know yet, and
// then say so ("unknown entry type 4") instead of "damaged".
const ENTRY_VERSION = 1;
const ENTRY_TAG = utf8("pigeon-directory-v1");
const TYPE_CODES = { enrol: 1, "revoke-person": 2, "revoke-device": 3, policy: 4, "mail-rules": 5, federation: 6 } as const;
export const MAX_MAIL_RULES_BYTES = 32 * 1024;
export const MAX_FEDERATION_VILLAGES = 256;
const POLICY_ONLY_DIRECTORY = 1;
const POLICY_NO_STUDENT_GROUPS = 2;
const ROLE_CODES = { student: 1, teacher: 2 } as const;
const MAX_STRING_BYTES = 64; // home, name
const MAX_DETAILS_BYTES = 1024;
const MAX_FEDERATION_BYTES = 4 + MAX_FEDERATION_VILLAGES * (1 + MAX_STRING_BYTES + SIGN_PUBLIC_BYTES);

/** The bytes the school signs; also an entry's identity (two entries are the same iff these are). */
function entryBody(e: DirectoryEntry): Uint8Array {
  const problem = entryProblem(e);
  if (problem) throw new DirectoryError(`invalid entry: ${problem}`);
  const d = new Writer();
  if (e.type === "enrol") {
    d.raw(e.personKey).string(e.name).string(e.class).u8(ROLE_CODES[e.role]);
    const flags = (e.sealKey ? 1 : 0) | (e.until !== undefined ? 2 : 0);
    if (flags) d.u8(flags);
    if (e.sealKey) d.raw(e.sealKey);
    if (e.until !== undefined) d.varint(e.until);
  }
  else if (e.type === "revoke-person") d.raw(e.personKey).string(e.reason);
  else if (e.type === "revoke-device") d.raw(e.deviceKey).raw(e.personKey);
  else if (e.type === "mail-rules") d.string(e.text);
  else if (e.type === "federation") {
    d.varint(e.villages.size);
    for (const [home, key] of [...e.villages].sort(([a], [b]) => (a < b ? -1 : 1))) d.string(home).raw(key);
  }
  else d.varint((e.onlyDirectory ? POLICY_ONLY_DIRECTORY : 0) | (e.noStudentGroups ? POLICY_NO_STUDENT_GROUPS : 0));
  return new Writer().u8(ENTRY_VERSION).u8(TYPE_CODES[e.type]).string(e.home).varint(e.serial).varint(e.at).bytes(d.finish()).finish();
}

/** The signed cleartext entry (what an enrolment token carries, and what sealEntry seals). */
export function encodeEntry(school: SchoolKey, entry: DirectoryEntry): Uint8Array {
  if (entry.home !== school.home) throw new DirectoryError(`entry for another school (${entry.home}, not ${school.home})`);
  const body = entryBody(entry);
  return concat([body, sign(school.signing.seed, concat([ENTRY_TAG, body]))]);
}

/** Turns the byte reader's errors into "damaged (...)". */
function damaged<T>(read: () => T): T {
  try {
    return read();
  } catch (e) {
    if (e instanceof DecodeError) throw new DirectoryError(`damaged (${e.message})`);
    throw e;
  }
}

/** Decodes a signed entry and checks it is signed by `schoolPublicKey`. Throws DirectoryError. */
export function decodeEntry(bytes: Uint8Array, schoolPublicKey: Uint8Array): DirectoryEntry {
  const { type, home, serial, at, details, signed, signature } = damaged(() => {
    const r = new Reader(bytes, true);
    const version = r.u8();
    if (version !== ENTRY_VERSION) throw new DirectoryError(`unknown entry version ${version}`);
    const type = r.u8();
    const header = { type, home: r.string(MAX_STRING_BYTES), serial: r.varint(), at: r.varint(), details: r.bytes(type === TYPE_CODES["mail-rules"] ? MAX_MAIL_RULES_BYTES + 8 : type === TYPE_CODES.federation ? MAX_FEDERATION_BYTES : MAX_DETAILS_BYTES) };
    const signed = bytes.subarray(0, r.pos);
    const signature = r.raw(SIGNATURE_BYTES);
    r.end();
    return { ...header, signed, signature };
  });
  if (!verify(schoolPublicKey, concat([ENTRY_TAG, signed]), signature)) throw new DirectoryError("not signed by the school");
  const entry = damaged((): DirectoryEntry => {
    const r = new Reader(details, true);
    const key = () => Uint8Array.from(r.raw(SIGN_PUBLIC_BYTES)); // a copy: never keep a view into the caller's buffer
    let e: DirectoryEntry;
    if (type === TYPE_CODES.enrol) {
      const personKey = key();
      const name = r.string(MAX_STRING_BYTES);
      const cls = r.string(MAX_CLASS_CHARS * 4);
      const roleCode = r.u8();
      const role = roleCode === ROLE_CODES.student ? "student" : roleCode === ROLE_CODES.teacher ? "teacher" : undefined;
      if (!role) throw new DirectoryError(`invalid entry: unknown role ${roleCode}`);
      e = { type: "enrol", home, serial, at, personKey, name, class: cls, role };
      if (r.remaining > 0) {
        const flags = r.u8();
        if (flags & ~3) throw new DirectoryError(`invalid entry: unknown enrolment flags 0x${flags.toString(16)}`);
        if (flags & 1) e.sealKey = key();
        if (flags & 2) e.until = r.varint();
      }
    } else if (type === TYPE_CODES["revoke-person"]) {
      e = { type: "revoke-person", home, serial, at, personKey: key(), reason: r.string(MAX_REASON_CHARS * 4) };
    } else if (type === TYPE_CODES["revoke-device"]) {
      e = { type: "revoke-device", home, serial, at, deviceKey: key(), personKey: key() };
    } else if (type === TYPE_CODES.policy) {
      const rules = r.varint();
      if (rules & ~(POLICY_ONLY_DIRECTORY | POLICY_NO_STUDENT_GROUPS)) throw new DirectoryError(`invalid entry: unknown policy rules 0x${rules.toString(16)}`);
      e = { type: "policy", home, serial, at, onlyDirectory: (rules & POLICY_ONLY_DIRECTORY) !== 0 };
      if (rules & POLICY_NO_STUDENT_GROUPS) e.noStudentGroups = true;
    } else if (type === TYPE_CODES["mail-rules"]) {
      e = { type: "mail-rules", home, serial, at, text: r.string(MAX_MAIL_RULES_BYTES) };
    } else if (type === TYPE_CODES.federation) {
      const n = r.varint();
      if (n > MAX_FEDERATION_VILLAGES) throw new DirectoryError(`invalid entry: a federation of ${n} villages is over the limit of ${MAX_FEDERATION_VILLAGES}`);
      const villages = new Map<string, Uint8Array>();
      let last = "";
      for (let i = 0; i < n; i++) {
        const village = r.string(MAX_STRING_BYTES);
        // sorted and unique: one byte form per federation, so a repeated village cannot hide behind another key
        if (i > 0 && village <= last) throw new DirectoryError("invalid entry: the federation's villages are repeated or out of order");
        last = village;
        villages.set(village, key());
      }
      e = { type: "federation", home, serial, at, villages };
    } else {
      throw new DirectoryError(`unknown entry type ${type}`);
    }
    r.end();
    return e;
  });
  const problem = entryProblem(entry);
  if (problem) throw new DirectoryError(`invalid entry: ${problem}`);
  return entry;
}

// Sealed entry (v1), the form that travels between laptops:
//   u8 version=1 | raw32 school public key | secretbox(directory key, signed entry)
// where secretbox is raw24 nonce ‖ XSalsa20-Poly1305 box. The school key in clear lets a laptop drop
// another school's entries without trying to open them; the names inside are for enrolled laptops only.
const SEALED_VERSION = 1;

export function sealEntry(school: SchoolKey, entry: DirectoryEntry): Uint8Array {
  const sealed = secretboxSeal(school.directoryKey, encodeEntry(school, entry));
  return new Writer().u8(SEALED_VERSION).raw(school.signing.publicKey).raw(sealed).finish();
}

/** Opens and verifies a sealed entry. Throws DirectoryError with the reason. */
export function openEntry(bytes: Uint8Array, schoolPublicKey: Uint8Array, directoryKey: Uint8Array): DirectoryEntry {
  return openSignedEntry(bytes, schoolPublicKey, directoryKey).entry;
}

/** openEntry, also giving the signed cleartext entry (what a card carries as its school's word). */
export function openSignedEntry(bytes: Uint8Array, schoolPublicKey: Uint8Array, directoryKey: Uint8Array): { entry: DirectoryEntry; signed: Uint8Array } {
  const { school, sealed } = damaged(() => {
    const r = new Reader(bytes);
    const version = r.u8();
    if (version !== SEALED_VERSION) throw new DirectoryError(`unknown sealed entry version ${version}`);
    return { school: r.raw(SIGN_PUBLIC_BYTES), sealed: r.raw(r.remaining) };
  });
  if (!equalBytes(school, schoolPublicKey)) throw new DirectoryError("entry for another school");
  const signed = secretboxOpen(directoryKey, sealed);
  if (!signed) throw new DirectoryError("damaged (it does not open with the school's directory key)");
  return { entry: decodeEntry(signed, schoolPublicKey), signed };
}

// ---- A school's word on a card: vouching across villages ----
//
// Another village's directory is sealed for its own laptops, so a laptop cannot look a pen pal up in
// it. Instead the pen pal's card carries their school's word: their current enrol entry, signed by
// their school (the cleartext signed entry, as an enrolment token holds it). The reader checks it with
// the key its own school lists for that village (a federation entry); so a stranger's card naming
// ben@siaya-primary is refused unless siaya-primary's school enrolled that very key under that name.
// What it cannot see across villages: a later revocation, or a newer enrolment of the name.

/** At most this many bytes of school's word on a card (an enrol entry is ~200). */
export const MAX_SCHOOL_WORD_BYTES = MAX_DETAILS_BYTES + 2 * MAX_STRING_BYTES + 32;

/**
 * Checks that `word` is `schoolKey`'s enrolment of exactly this person (key, name, home) and not past
 * its end at `now`. Returns the entry; throws DirectoryError saying why not.
 */
export function checkSchoolWord(word: Uint8Array, person: { name: string; home: string; signPublicKey: Uint8Array }, schoolKey: Uint8Array, now: number): EnrolEntry {
  if (word.length > MAX_SCHOOL_WORD_BYTES) throw new DirectoryError("the school's word on the card is too long");
  let entry: DirectoryEntry;
  try {
    entry = decodeEntry(word, schoolKey);
  } catch (e) {
    throw new DirectoryError(`the school's word on the card does not hold (${(e as Error).message})`);
  }
  if (entry.type !== "enrol") throw new DirectoryError("the school's word on the card is not an enrolment");
  if (entry.home !== person.home) throw new DirectoryError(`the school's word is about someone of ${entry.home}, not ${person.home}`);
  if (!equalBytes(entry.personKey, person.signPublicKey)) throw new DirectoryError(`${person.home}'s school enrolled another key under that word, not this card's`);
  if (entry.name !== person.name) throw new DirectoryError(`${person.home}'s school enrolled this key as ${entry.name}, not ${person.name}`);
  if (entry.until !== undefined && now > entry.until)
    throw new DirectoryError(`the enrolment at ${person.home} ended on ${new Date(entry.until).toISOString().slice(0, 10)}`);
  return entry;
}

// ---- The directory: a grow-only set of entries, folded ----
//
// Rules (all functions of the set of entries, so any order of arrival gives the same answers):
// - A person key's current enrolment is its enrol entry with the highest serial (a class change is a
//   new enrol of the same key).
// - Name uniqueness: a name belongs to the newest current enrolment that claims it (highest serial);
//   every other key claiming it is not vouched, "replaced by a newer enrolment". That covers the
//   school replacing a lost laptop's person key and a school mistake alike. A revoked key still counts
//   when choosing: if the newest claimant is revoked, nobody holds the name until the school enrols
//   someone under it again, so a revocation never brings an older, replaced key back.
// - Revocations are permanent: a revoked person key or device key stays revoked whatever comes
//   later, even an enrol of the same person key with a higher serial (the school enrols a new key).
// - The policy in force is the policy entry with the highest serial; so are the e-mail rules.
// - Ties (equal serials, which a correct school server never issues) go to the entry whose signed
//   bytes sort last, so that even a school's mistake converges.

interface Held<E extends DirectoryEntry> {
  entry: E;
  id: string; // hex of the entry's signed bytes
}

/** Whether a ranks above b: higher serial, then the signed bytes as tie-break. */
const newer = (a: Held<DirectoryEntry>, b: Held<DirectoryEntry>) => (a.entry.serial !== b.entry.serial ? a.entry.serial > b.entry.serial : a.id > b.id);

export type Lookup = { status: "vouched"; entry: EnrolEntry } | { status: "not-vouched"; reason: string };
export type Vouch = Lookup | { status: "impostor"; reason: string };

export class DirectoryState {
  private readonly seen = new Set<string>();
  private readonly enrolments = new Map<string, Held<EnrolEntry>>(); // person key hex → current enrolment
  private readonly claims = new Map<string, Map<string, Held<EnrolEntry>>>(); // name → person key hex → current enrolment
  private readonly revokedPeople = new Map<string, Held<RevokePersonEntry>>(); // person key hex → earliest revocation
  private readonly revokedDevices = new Map<string, Held<RevokeDeviceEntry>>(); // device key hex → earliest revocation
  private currentPolicy: Held<PolicyEntry> | undefined;
  private currentMailRules: Held<MailRulesEntry> | undefined;
  private currentFederation: Held<FederationEntry> | undefined;
  private highest = 0;

  /** A directory of one school (entries must have been opened with that school's key). */
  constructor(readonly home: string) {}

  /** The highest serial seen: how up to date this copy is. 0 when empty. */
  get maxSerial(): number {
    return this.highest;
  }

  /**
   * Adds one entry (opened with this school's key); true if it was new to the set (store and pass it
   * on), false for a duplicate. Throws DirectoryError for an entry the school could not have signed.
   */
  add(entry: DirectoryEntry): boolean {
    if (entry.home !== this.home) throw new DirectoryError(`entry for another school (${entry.home}, not ${this.home})`);
    const held = { entry, id: toHex(entryBody(entry)) };
    if (this.seen.has(held.id)) return false;
    this.seen.add(held.id);
    this.highest = Math.max(this.highest, entry.serial);
    if (entry.type === "enrol") {
      const key = toHex(entry.personKey);
      const current = this.enrolments.get(key);
      if (current && !newer(held, current)) return true;
      if (current) this.claims.get(current.entry.name)?.delete(key);
      this.enrolments.set(key, held as Held<EnrolEntry>);
      let claimants = this.claims.get(entry.name);
      if (!claimants) this.claims.set(entry.name, (claimants = new Map()));
      claimants.set(key, held as Held<EnrolEntry>);
    } else if (entry.type === "revoke-person") {
      keepEarliest(this.revokedPeople, toHex(entry.personKey), held as Held<RevokePersonEntry>);
    } else if (entry.type === "revoke-device") {
      keepEarliest(this.revokedDevices, toHex(entry.deviceKey), held as Held<RevokeDeviceEntry>);
    } else if (entry.type === "mail-rules") {
      if (!this.currentMailRules || newer(held, this.currentMailRules)) this.currentMailRules = held as Held<MailRulesEntry>;
    } else if (entry.type === "federation") {
      if (!this.currentFederation || newer(held, this.currentFederation)) this.currentFederation = held as Held<FederationEntry>;
    } else if (!this.currentPolicy || newer(held, this.currentPolicy)) {
      this.currentPolicy = held as Held<PolicyEntry>;
    }
    return true;
  }

  /** The policy in force (the newest policy entry), if the school ever set one. */
  policy(): PolicyEntry | undefined {
    return this.currentPolicy?.entry;
  }

  /** The e-mail gateway's rules in force (the newest mail-rules entry), if the school published any. */
  mailRules(): MailRulesEntry | undefined {
    return this.currentMailRules?.entry;
  }

  /** The villages the school exchanges mail with, and their schools' keys (the newest federation entry). */
  federation(): FederationEntry | undefined {
    return this.currentFederation?.entry;
  }

  /** Whether the school allows messages only from people its directory vouches for. */
  get onlyDirectory(): boolean {
    return this.currentPolicy?.entry.onlyDirectory ?? false;
  }

  /** Whether the school forbids students to start channels (groups) of their own. */
  get noStudentGroups(): boolean {
    return this.currentPolicy?.entry.noStudentGroups ?? false;
  }

  /** The newest current enrolment claiming `name`, revoked or not. */
  private holder(name: string): Held<EnrolEntry> | undefined {
    let best: Held<EnrolEntry> | undefined;
    for (const h of this.claims.get(name)?.values() ?? []) if (!best || newer(h, best)) best = h;
    return best;
  }

  /** What the school says of a key; with `now`, an enrolment past its end is no longer vouched for. */
  lookup(personKey: Uint8Array, now?: number): Lookup {
    const key = toHex(personKey);
    const revoked = this.revokedPeople.get(key)?.entry;
    if (revoked) return { status: "not-vouched", reason: revoked.reason ? `revoked by the school: ${revoked.reason}` : "revoked by the school" };
    const mine = this.enrolments.get(key);
    if (!mine) return { status: "not-vouched", reason: `never enrolled at ${this.home}` };
    if (this.holder(mine.entry.name) !== mine)
      return { status: "not-vouched", reason: `replaced by a newer enrolment of ${mine.entry.name}@${this.home}` };
    if (now !== undefined && mine.entry.until !== undefined && now > mine.entry.until)
      return { status: "not-vouched", reason: `enrolment ended on ${new Date(mine.entry.until).toISOString().slice(0, 10)}` };
    return { status: "vouched", entry: mine.entry };
  }

  /** The one person currently enrolled under `name`, if any. */
  byName(name: string): EnrolEntry | undefined {
    const h = this.holder(name);
    return h && !this.revokedPeople.has(toHex(h.entry.personKey)) ? h.entry : undefined;
  }

  isPersonRevoked(personKey: Uint8Array): boolean {
    return this.revokedPeople.has(toHex(personKey));
  }

  isDeviceRevoked(deviceKey: Uint8Array): boolean {
    return this.revokedDevices.has(toHex(deviceKey));
  }

  /** Everyone vouched for (of one class if given), sorted by name. */
  members(className?: string): EnrolEntry[] {
    const out: EnrolEntry[] = [];
    for (const name of this.claims.keys()) {
      const e = this.byName(name);
      if (e && (className === undefined || e.class === className)) out.push(e);
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  teachers(): EnrolEntry[] {
    return this.members().filter((e) => e.role === "teacher");
  }
}

function keepEarliest<E extends DirectoryEntry>(map: Map<string, Held<E>>, key: string, held: Held<E>): void {
  const current = map.get(key);
  if (!current || newer(current, held)) map.set(key, held);
}

/** The directory from a set of entries (any order; duplicates ignored). Same as adding them one by one. */
export function foldDirectory(home: string, entries: Iterable<DirectoryEntry>): DirectoryState {
  const state = new DirectoryState(home);
  for (const e of entries) state.add(e);
  return state;
}

/**
 * What the app shows about someone who calls themselves `claimedName@claimedHome` with `personKey`:
 * vouched by the school; not vouched (with why); or an impostor, when the school has someone of that
 * name with another key.
 */
export function vouch(state: DirectoryState, personKey: Uint8Array, claimedName: string, claimedHome: string, now?: number): Vouch {
  if (claimedHome !== state.home) return { status: "not-vouched", reason: `${state.home} does not vouch for people of ${claimedHome}` };
  const found = state.lookup(personKey, now);
  if (found.status === "vouched" && found.entry.name === claimedName) return found;
  const holder = state.byName(claimedName);
  if (holder && equalBytes(holder.personKey, personKey)) return found; // their own enrolment, ended
  if (holder) return { status: "impostor", reason: `the school's ${claimedName}@${state.home} has another key` };
  if (found.status === "vouched")
    return { status: "not-vouched", reason: `the school enrolled this key as ${found.entry.name}@${state.home}, not ${claimedName}` };
  return found;
}

// ---- Enrolment token: what provisioning hands one laptop ----
//   "pigeon-school1:" + base64url(u8 version=1 | string home | raw32 school public key | raw32 directory key
//                                 | bytes signed enrol entry | raw64 signature)
// The signature, by the school key over "pigeon-enrolment-v1" ‖ every byte before it, covers the
// directory key too, so a mistyped or damaged token is refused rather than yielding a wrong key.
// The token introduces the school: the laptop trusts the school key inside because a teacher
// provisions it at the school server. It holds the directory key, so it is handed only to the
// laptop it enrols, never posted or shared.

const ENROLMENT_PREFIX = "pigeon-school1:";
const ENROLMENT_VERSION = 1;
const ENROLMENT_TAG = utf8("pigeon-enrolment-v1");

export interface Enrolment {
  home: string;
  schoolPublicKey: Uint8Array;
  directoryKey: Uint8Array;
  entry: EnrolEntry;
  /** The entry as the school signed it (a card carries it as the school's word). */
  signedEntry: Uint8Array;
}

export function encodeEnrolment(school: SchoolKey, entry: EnrolEntry): string {
  if (entry.type !== "enrol") throw new DirectoryError("an enrolment token holds an enrol entry");
  const body = new Writer()
    .u8(ENROLMENT_VERSION)
    .string(school.home)
    .raw(school.signing.publicKey)
    .raw(school.directoryKey)
    .bytes(encodeEntry(school, entry))
    .finish();
  const signature = sign(school.signing.seed, concat([ENROLMENT_TAG, body]));
  return ENROLMENT_PREFIX + Buffer.from(concat([body, signature])).toString("base64url");
}

export function decodeEnrolment(text: string): Enrolment {
  const t = text.trim();
  if (!t.startsWith(ENROLMENT_PREFIX)) throw new DirectoryError(`not a Pigeon enrolment token (it should start with ${ENROLMENT_PREFIX})`);
  const bytes = new Uint8Array(Buffer.from(t.slice(ENROLMENT_PREFIX.length), "base64url"));
  try {
    const r = new Reader(bytes, true);
    const version = r.u8();
    if (version !== ENROLMENT_VERSION) throw new Error(`unknown token version ${version}`);
    const home = r.string(MAX_STRING_BYTES);
    const schoolPublicKey = Uint8Array.from(r.raw(SIGN_PUBLIC_BYTES));
    const directoryKey = Uint8Array.from(r.raw(DIRECTORY_KEY_BYTES));
    const signedEntry = r.bytes(MAX_DETAILS_BYTES * 2);
    const signed = bytes.subarray(0, r.pos);
    const signature = r.raw(SIGNATURE_BYTES);
    r.end();
    if (!verify(schoolPublicKey, concat([ENROLMENT_TAG, signed]), signature)) throw new Error("signature does not match");
    const entry = decodeEntry(signedEntry, schoolPublicKey);
    if (entry.type !== "enrol") throw new Error("it holds no enrolment");
    if (entry.home !== home) throw new Error("its home does not match its entry");
    return { home, schoolPublicKey, directoryKey, entry, signedEntry: Uint8Array.from(signedEntry) };
  } catch (e) {
    throw new DirectoryError(`damaged enrolment token (${(e as Error).message}); copy it again`);
  }
}

/**
 * The school's link secret: what its laptops prove to each other in a handshake's Hello, so that a
 * laptop of the school shows who it is to its schoolmates only (docs/protocol.md). Derived from the
 * directory key, which only the school and its enrolled laptops hold.
 */
export function schoolLinkSecret(directoryKey: Uint8Array): Uint8Array {
  return hkdfExpand(hkdfExtract(utf8("pigeon-school-link-v5"), directoryKey), utf8("link"), 32);
}
