// A school vouches for its people. The school server holds an Ed25519 key; the school's home (e.g.
// kisumu-primary) is the part after '@' in its people's addresses. It signs directory entries (enrol,
// revoke-person, revoke-device) that laptops carry between each other as opaque blobs and check
// offline; every laptop that holds the same set of entries, received in any order, folds them into
// the same directory. Pure: no I/O, no timers; times are ms passed in.
//
// The rules only ever look at `serial` (the school server's counter), never at `at`: a school
// server's clock may be wrong, its counter only goes up.
import { DecodeError, Reader, Writer, concat, equalBytes, fromBase64, toBase64, utf8 } from "./bytes.js";
import {
  SIGN_PUBLIC_BYTES, SIGN_SEED_BYTES, SIGNATURE_BYTES, generateSigningKeyPair, randomBytes, secretboxOpen, secretboxSeal, sign,
  verify, type SigningKeyPair,
} from "./crypto.js";
import { validHome, validName } from "./identity.js";

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

export type DirectoryEntry = EnrolEntry | RevokePersonEntry | RevokeDeviceEntry;

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
    default:
      return `unknown entry type ${JSON.stringify((e as { type: unknown }).type)}`;
  }
}

// Signed entry (v1), the cleartext form:
//   u8 version=1 | u8 type | string home | varint serial | varint at | bytes details | raw64 signature
//   details: enrol         1: raw32 person key | string name | string class | u8 role (1 student, 2 teacher)
//            revoke-person 2: raw32 person key | string reason
//            revoke-device 3: raw32 device key | raw32 person key
// The signature is by the school key over "pigeon-directory-v1" ‖ every byte before it. The details
// are length-prefixed so that a laptop can check the signature of a type it does not know yet, and
// then say so ("unknown entry type 4") instead of "damaged".
const ENTRY_VERSION = 1;
const ENTRY_TAG = utf8("pigeon-directory-v1");
const TYPE_CODES = { enrol: 1, "revoke-person": 2, "revoke-device": 3 } as const;
const ROLE_CODES = { student: 1, teacher: 2 } as const;
const MAX_STRING_BYTES = 64; // home, name
const MAX_DETAILS_BYTES = 1024;

/** The bytes the school signs; also an entry's identity (two entries are the same iff these are). */
function entryBody(e: DirectoryEntry): Uint8Array {
  const problem = entryProblem(e);
  if (problem) throw new DirectoryError(`invalid entry: ${problem}`);
  const d = new Writer();
  if (e.type === "enrol") d.raw(e.personKey).string(e.name).string(e.class).u8(ROLE_CODES[e.role]);
  else if (e.type === "revoke-person") d.raw(e.personKey).string(e.reason);
  else d.raw(e.deviceKey).raw(e.personKey);
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
    const header = { type: r.u8(), home: r.string(MAX_STRING_BYTES), serial: r.varint(), at: r.varint(), details: r.bytes(MAX_DETAILS_BYTES) };
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
    } else if (type === TYPE_CODES["revoke-person"]) {
      e = { type: "revoke-person", home, serial, at, personKey: key(), reason: r.string(MAX_REASON_CHARS * 4) };
    } else if (type === TYPE_CODES["revoke-device"]) {
      e = { type: "revoke-device", home, serial, at, deviceKey: key(), personKey: key() };
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
  const { school, sealed } = damaged(() => {
    const r = new Reader(bytes);
    const version = r.u8();
    if (version !== SEALED_VERSION) throw new DirectoryError(`unknown sealed entry version ${version}`);
    return { school: r.raw(SIGN_PUBLIC_BYTES), sealed: r.raw(r.remaining) };
  });
  if (!equalBytes(school, schoolPublicKey)) throw new DirectoryError("entry for another school");
  const signed = secretboxOpen(directoryKey, sealed);
  if (!signed) throw new DirectoryError("damaged (it does not open with the school's directory key)");
  return decodeEntry(signed, schoolPublicKey);
}
