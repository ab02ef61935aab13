// Who someone is: an address `name@home`, a person key (Ed25519) that is who they are to everyone,
// a sealing key (X25519) their devices share, and a short fingerprint people can read aloud. Each of
// a person's devices signs with its own device key, certified by the person key (devices.ts); on the
// person's first device the device key is the person key itself. docs/identity.md has the whole model.
import { concat as cardConcat, equalBytes, fromBase64, Reader as CardReader, toBase64, toHex, utf8 as cardUtf8, Writer as CardWriter } from "./bytes.js";
import {
  generateSealingKeyPair,
  generateSigningKeyPair,
  randomBytes,
  sha256,
  sign as cardSign,
  verify as cardVerify,
  type SealingKeyPair,
  type SigningKeyPair,
} from "./crypto.js";

export const DEFAULT_HOME = "local";
const NAME_RE = /^[a-z0-9][a-z0-9._-]{0,31}$/;
const HOME_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

export class AddressError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AddressError";
  }
}

export interface Address {
  name: string;
  home: string;
}

export function parseAddress(text: string): Address {
  const trimmed = text.trim().toLowerCase();
  const at = trimmed.lastIndexOf("@");
  const name = at < 0 ? trimmed : trimmed.slice(0, at);
  const home = at < 0 ? DEFAULT_HOME : trimmed.slice(at + 1);
  if (!NAME_RE.test(name))
    throw new AddressError(
      `"${text}" is not a valid address: the name must be 1-32 of a-z, 0-9, '.', '_' or '-', starting with a letter or digit`,
    );
  if (!HOME_RE.test(home))
    throw new AddressError(`"${text}" is not a valid address: the home after '@' must be a name like kisumu-primary`);
  return { name, home };
}

export function formatAddress(a: Address): string {
  return `${a.name}@${a.home}`;
}

export function validName(name: string): boolean {
  return NAME_RE.test(name);
}

export function validHome(home: string): boolean {
  return HOME_RE.test(home);
}

export interface Identity extends Address {
  /** The person's long-term public signing key: who this is to everyone (fingerprint, envelopes' author). */
  person: Uint8Array;
  /** This device's signing key pair. On the person's first device it is the person key itself. */
  signing: SigningKeyPair;
  /** The person's current sealing key pair, shared by the person's devices. */
  sealing: SealingKeyPair;
  /** The person's signature over this device's key (devices.ts); absent on the first device. */
  certificate?: Uint8Array;
  /** Sealing keys the person used before a rotation: still open what was sealed to them. */
  previousSealing?: SealingKeyPair[];
  /** The serial of the person's keyring this device last applied (0: none yet). */
  keyringSerial?: number;
  /** On a second device: the person's own contact card, as the first device signed it at pairing. */
  card?: string;
}

/** True on the device that holds the person key (it certifies and revokes the person's other devices). */
export function holdsPersonKey(id: Identity): boolean {
  return equalBytes(id.signing.publicKey, id.person);
}

/**
 * This device's own sealing key pair, derived from its signing seed (so it is never stored twice): the
 * person's keyring seals a rotated person sealing key to each device with it.
 */
export function deviceSealing(id: Pick<Identity, "signing">): SealingKeyPair {
  return generateSealingKeyPair(sha256(cardUtf8("pigeon-device-seal-v1"), id.signing.seed));
}

/** The public half of an identity, as other laptops learn it. */
export interface ContactCard extends Address {
  signPublicKey: Uint8Array;
  sealPublicKey: Uint8Array;
  /**
   * The person's school's word, when the card carries one: their enrol entry as their school signed it
   * (school.ts, checkSchoolWord). Another village's laptop checks it before believing the address.
   */
  schoolWord?: Uint8Array;
}

export function generateIdentity(name: string, home = DEFAULT_HOME): Identity {
  const { name: n, home: h } = parseAddress(`${name}@${home}`);
  const signing = generateSigningKeyPair();
  return { name: n, home: h, person: signing.publicKey, signing, sealing: generateSealingKeyPair() };
}

export function contactCard(id: Identity): ContactCard {
  return { name: id.name, home: id.home, signPublicKey: id.person, sealPublicKey: id.sealing.publicKey };
}

const BASE32 = "abcdefghijklmnopqrstuvwxyz234567";

/** Lower-case RFC 4648 base32 without padding (fingerprints; the packet-capture test searches for keys in it). */
export function base32(bytes: Uint8Array): string {
  let bits = 0;
  let value = 0;
  let out = "";
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

/** 80-bit fingerprint in four groups, e.g. "k3q9-ab2x-...": short enough to compare by reading aloud. */
export function fingerprint(signPublicKey: Uint8Array): string {
  const s = base32(sha256(signPublicKey).subarray(0, 10));
  return `${s.slice(0, 4)}-${s.slice(4, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}`;
}

/** 16-hex-char key id used inside documents (receipt keys, actor prefixes). */
export function keyId(signPublicKey: Uint8Array): string {
  return toHex(sha256(signPublicKey).subarray(0, 8));
}

/**
 * An Automerge actor id bound to a signing key: the key id followed by random bytes. A fresh suffix per
 * process start means a crash can never make us reuse an (actor, seq) pair we already sent.
 */
export function newActorId(signPublicKey: Uint8Array): string {
  return keyId(signPublicKey) + toHex(randomBytes(8));
}

export function actorBelongsTo(actor: string, signPublicKey: Uint8Array): boolean {
  return actor.length === 32 && actor.startsWith(keyId(signPublicKey));
}

/**
 * The identity file (identity.json). Version 1 (a single device: the device key is the person key) is
 * still read; version 2 adds what a second device holds: the person's public key and its certificate.
 */
export interface IdentityFile {
  version: 1 | 2;
  name: string;
  home: string;
  /** Version 2: the person's public key (base64); equal to the device's on the first device. */
  person?: string;
  /** This device's signing seed. */
  signingSeed: string;
  /** The person's current sealing secret. */
  sealingSecret: string;
  /** Version 2: base64 of the person's signature over this device key (second devices only). */
  certificate?: string;
  previousSealingSecrets?: string[];
  keyringSerial?: number;
  card?: string;
}

export function serializeIdentity(id: Identity): IdentityFile {
  return {
    version: 2,
    name: id.name,
    home: id.home,
    person: toBase64(id.person),
    signingSeed: toBase64(id.signing.seed),
    sealingSecret: toBase64(id.sealing.secretKey),
    ...(id.certificate ? { certificate: toBase64(id.certificate) } : {}),
    ...(id.previousSealing?.length ? { previousSealingSecrets: id.previousSealing.map((k) => toBase64(k.secretKey)) } : {}),
    ...(id.keyringSerial ? { keyringSerial: id.keyringSerial } : {}),
    ...(id.card ? { card: id.card } : {}),
  };
}

export function parseIdentityFile(json: unknown): Identity {
  const f = json as Partial<IdentityFile> | null;
  if (!f || typeof f !== "object" || (f.version !== 1 && f.version !== 2)) throw new Error("identity file: unknown format or version");
  if (typeof f.name !== "string" || typeof f.home !== "string") throw new Error("identity file: missing name or home");
  const { name, home } = parseAddress(`${f.name}@${f.home}`);
  if (typeof f.signingSeed !== "string" || typeof f.sealingSecret !== "string")
    throw new Error("identity file: missing keys");
  const seed = fromBase64(f.signingSeed);
  const sealSecret = fromBase64(f.sealingSecret);
  if (seed.length !== 32 || sealSecret.length !== 32) throw new Error("identity file: keys have the wrong length");
  const signing = generateSigningKeyPair(seed);
  const person = f.version === 2 && typeof f.person === "string" ? fromBase64(f.person) : signing.publicKey;
  if (person.length !== 32) throw new Error("identity file: the person key has the wrong length");
  const id: Identity = { name, home, person, signing, sealing: generateSealingKeyPair(sealSecret) };
  if (!equalBytes(person, signing.publicKey)) {
    if (typeof f.certificate !== "string") throw new Error("identity file: a second device's file lacks its certificate");
    const certificate = fromBase64(f.certificate);
    if (certificate.length !== 64) throw new Error("identity file: the certificate has the wrong length");
    if (!cardVerify(person, deviceCertificateMessage(person, signing.publicKey), certificate))
      throw new Error("identity file: the device certificate is not the person's signature over this device");
    id.certificate = certificate;
  }
  if (Array.isArray(f.previousSealingSecrets)) {
    id.previousSealing = f.previousSealingSecrets.map((t) => {
      const k = fromBase64(String(t));
      if (k.length !== 32) throw new Error("identity file: a previous sealing key has the wrong length");
      return generateSealingKeyPair(k);
    });
  }
  if (typeof f.card === "string") id.card = f.card;
  if (typeof f.keyringSerial === "number" && Number.isSafeInteger(f.keyringSerial) && f.keyringSerial > 0) id.keyringSerial = f.keyringSerial;
  return id;
}

const DEVICE_TAG = cardUtf8("pigeon-device-v1");

/** What a person signs to certify a device: "pigeon-device-v1" ‖ person key ‖ device key. */
export function deviceCertificateMessage(person: Uint8Array, device: Uint8Array): Uint8Array {
  return cardConcat([DEVICE_TAG, person, device]);
}

/** The person's signature making `device` one of its devices (only the person key's holder can). */
export function certifyDevice(personHolder: Identity, device: Uint8Array): Uint8Array {
  if (!holdsPersonKey(personHolder)) throw new Error("only the device that holds the person key certifies devices");
  return cardSign(personHolder.signing.seed, deviceCertificateMessage(personHolder.person, device));
}

export function verifyDeviceCertificate(person: Uint8Array, device: Uint8Array, certificate: Uint8Array): boolean {
  return certificate.length === 64 && cardVerify(person, deviceCertificateMessage(person, device), certificate);
}

// ---- Contact cards: how two children who have never met can still write to each other ----
// A card is the public half of an identity, self-signed, as text to copy, print or scan:
//   "pigeon1:" + base64url(u8 version=1 | string name | string home | raw32 sign key | raw32 seal key | raw64 signature)
// The signature (by the card's own signing key over "pigeon-card-v1" ‖ everything before it) catches
// typos and tampering; it does not say the school vouches for the person (that is provisioning's job).
// A card of an enrolled person may be followed by "." + base64url(their school's word: the signed
// enrol entry, school.ts), which the school's signature, not the card's, holds together; a laptop of
// another village checks it against the school key its own school lists for that village.

const CARD_PREFIX = "pigeon1:";
const CARD_TAG = cardUtf8("pigeon-card-v1");

export function encodeCard(id: Identity, schoolWord?: Uint8Array): string {
  const word = schoolWord ? "." + Buffer.from(schoolWord).toString("base64url") : "";
  // signed by the person key: only the first device makes cards; the others show the one it gave them
  if (!holdsPersonKey(id)) {
    if (!id.card) throw new Error("this device has no contact card of its person yet (it gets one when paired)");
    return id.card.split(".")[0] + word;
  }
  const body = new CardWriter().u8(1).string(id.name).string(id.home).raw(id.person).raw(id.sealing.publicKey).finish();
  const sig = cardSign(id.signing.seed, cardConcat([CARD_TAG, body]));
  return CARD_PREFIX + Buffer.from(cardConcat([body, sig])).toString("base64url") + word;
}

/** At most this many characters of school's word after a card (an enrol entry is ~200 bytes). */
const MAX_WORD_CHARS = 2048;
const BASE64URL = /^[A-Za-z0-9_-]+$/;

export function decodeCard(text: string): ContactCard {
  const t = text.trim();
  if (!t.startsWith(CARD_PREFIX)) throw new AddressError("not a Pigeon contact card (it should start with pigeon1:)");
  const [cardText = "", wordText, ...more] = t.slice(CARD_PREFIX.length).split(".");
  // Node's decoder skips characters it does not know: a damaged card must not read as another one
  if (!BASE64URL.test(cardText) || more.length > 0 || (wordText !== undefined && (!BASE64URL.test(wordText) || wordText.length > MAX_WORD_CHARS)))
    throw new AddressError("damaged contact card (it has characters or parts a card does not have); copy it again");
  const bytes = new Uint8Array(Buffer.from(cardText, "base64url"));
  try {
    const r = new CardReader(bytes);
    if (r.u8() !== 1) throw new Error("unknown card version");
    const name = r.string(64);
    const home = r.string(64);
    const signPublicKey = Uint8Array.from(r.raw(32));
    const sealPublicKey = Uint8Array.from(r.raw(32));
    const signedLength = r.pos;
    const sig = r.raw(64);
    r.end();
    const addr = parseAddress(`${name}@${home}`);
    if (addr.name !== name || addr.home !== home) throw new Error("bad address");
    if (!cardVerify(signPublicKey, cardConcat([CARD_TAG, bytes.subarray(0, signedLength)]), sig)) throw new Error("signature does not match");
    return { name, home, signPublicKey, sealPublicKey, ...(wordText ? { schoolWord: new Uint8Array(Buffer.from(wordText, "base64url")) } : {}) };
  } catch (e) {
    throw new AddressError(`damaged contact card (${(e as Error).message}); copy it again`);
  }
}
