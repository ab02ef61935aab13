// Sealed envelopes: the only thing that leaves a device. Encoding is documented in docs/protocol.md.
//
//   u8 version (2) | u8 kind | raw16 conversation | varint segment | raw32 author person key
//   | u8 signed-by (0 = the person key itself; 1 = one of the person's devices, then:
//     raw32 device key | raw64 device certificate = the person's signature over the device key)
//   | varint n | n x raw32 recipient person keys | varint created (ms, author's clock)
//   | varint lifetime (s) | raw8 key id | varint len + payload | raw64 signature
//
// The signature (by the person key, or by the device key the certificate vouches for) covers every
// byte before it, prefixed with a domain-separation tag. A person with one device pays nothing for
// devices: its device key is its person key. Statements (kind 4: a person's keyring, a school's
// directory entries) are always signed by the person or school key itself. The envelope id
// is sha256 of the whole encoding. The hop count is not part of the envelope: it changes in transit,
// so it travels beside it in the sync protocol.
import { concat, DecodeError, equalBytes, Reader, utf8, Writer } from "./bytes.js";
import {
  boxOpen,
  boxSeal,
  randomBytes,
  secretboxOpen,
  secretboxSeal,
  sha256,
  sign,
  verify,
  SIGNATURE_BYTES,
} from "./crypto.js";
import { validHome, validName, verifyDeviceCertificate, type Identity } from "./identity.js";

export const ENVELOPE_VERSION = 2;
export const MAX_ENVELOPE_BYTES = 256 * 1024;
export const MAX_RECIPIENTS = 64;
export const DEFAULT_LIFETIME_SECONDS = 14 * 24 * 3600;

export enum EnvelopeKind {
  /** An Automerge change, encrypted with the conversation key. */
  Change = 1,
  /** A conversation key, sealed to each member's X25519 key. */
  Key = 2,
  /** A delivery acknowledgement: cleartext envelope ids the author (a recipient of them) now holds. */
  Ack = 3,
  /**
   * A statement signed by a person key (its keyring: devices, revocations, sealing key) or a school key
   * (one directory entry). Recipients: none; whoever follows the author takes it (docs/identity.md).
   */
  Statement = 4,
  /**
   * Envelope version 3 (sealed.ts): the routing wrapper around a signed version-2 change or key
   * envelope, which carriers see instead of it. Never the kind of a version-2 envelope.
   */
  Sealed = 5,
  /** Envelope version 3: unsigned receipts whose ack keys open the locks of sealed envelopes (sealed.ts). */
  Receipt = 6,
  /** Envelope version 3: a sealed envelope behind the name of another village's relay point (between.ts). */
  Between = 7,
}

export const MAX_ACK_IDS = 1024;

/**
 * What carriers see of when an envelope was written: the author's clock rounded down to the hour
 * (the exact time travels sealed, inside the change). Lifetimes count from when a node received an
 * envelope, never from this.
 */
export const CREATED_GRAIN_MS = 3_600_000;

/**
 * Sealed changes are padded to these sizes, so a carrier learns a message's size class, not its
 * length: 512 bytes (any short message), then powers of two up to 16 KiB, then multiples of 16 KiB.
 */
export function paddedLength(n: number): number {
  if (n <= 512) return 512;
  if (n <= 16384) return 2 ** Math.ceil(Math.log2(n));
  return Math.ceil(n / 16384) * 16384;
}

function pad(change: Uint8Array): Uint8Array {
  const body = new Writer().bytes(change).finish();
  const out = new Uint8Array(paddedLength(body.length));
  out.set(body);
  return out;
}

/** The change inside a padded plaintext, or null if the framing or the zero padding is wrong. */
function unpad(plain: Uint8Array): Uint8Array | null {
  try {
    const r = new Reader(plain);
    const change = r.bytes(plain.length);
    for (const b of r.raw(r.remaining)) if (b !== 0) return null;
    return Uint8Array.from(change);
  } catch (e) {
    if (e instanceof DecodeError) return null;
    throw e;
  }
}

/** The name and home claim inside a key envelope's boxes, padded so the box size never tells their length. */
const CLAIM_BYTES = 2 * (1 + 64);

export interface EnvelopeHeader {
  version: number;
  kind: EnvelopeKind;
  conversation: Uint8Array; // 16 bytes
  segment: number;
  author: Uint8Array; // 32-byte Ed25519 public key of the author person (or school)
  /** Present when one of the author's devices signed: its key and the author's certificate for it. */
  device?: { key: Uint8Array; certificate: Uint8Array };
  recipients: Uint8Array[]; // 32-byte Ed25519 public keys, author excluded
  created: number; // ms since epoch as the author's clock claims it
  lifetime: number; // seconds
  keyId: Uint8Array; // 8 bytes: which conversation key encrypts a Change; the key itself for a Key
}

export interface Envelope extends EnvelopeHeader {
  payload: Uint8Array;
  signature: Uint8Array;
  /** sha256 of `bytes`. */
  id: Uint8Array;
  /** The exact encoding (what is stored and sent). */
  bytes: Uint8Array;
  /** Offset of the signature in `bytes` (everything before it is signed). */
  signedLength: number;
}

const SIGN_TAG = utf8("pigeon-envelope-v2");

/** The key whose signature an envelope carries: the device's, or the author's own. */
export function signerOf(env: Pick<EnvelopeHeader, "author" | "device">): Uint8Array {
  return env.device?.key ?? env.author;
}

export class EnvelopeError extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = "EnvelopeError";
  }
}

function encodeHeader(h: EnvelopeHeader, payload: Uint8Array): Uint8Array {
  if (h.conversation.length !== 16) throw new RangeError("conversation id must be 16 bytes");
  if (h.keyId.length !== 8) throw new RangeError("key id must be 8 bytes");
  if (h.recipients.length > MAX_RECIPIENTS) throw new RangeError("too many recipients");
  const w = new Writer()
    .u8(h.version)
    .u8(h.kind)
    .raw(h.conversation)
    .varint(h.segment)
    .raw(h.author);
  if (h.device) {
    if (h.device.key.length !== 32 || h.device.certificate.length !== 64) throw new RangeError("device key and certificate must be 32 and 64 bytes");
    w.u8(1).raw(h.device.key).raw(h.device.certificate);
  } else w.u8(0);
  w.varint(h.recipients.length);
  for (const r of h.recipients) w.raw(r);
  return w.varint(h.created).varint(h.lifetime).raw(h.keyId).bytes(payload).finish();
}

export function envelopeId(bytes: Uint8Array): Uint8Array {
  return sha256(bytes);
}

/**
 * Builds and signs an envelope around an already-encrypted payload: as the person, with this device's
 * key and certificate when the device is not the person key's holder.
 */
export function signEnvelope(author: Identity, header: Omit<EnvelopeHeader, "author" | "version" | "device">, payload: Uint8Array): Envelope {
  const full: EnvelopeHeader = {
    ...header, created: Math.floor(header.created / CREATED_GRAIN_MS) * CREATED_GRAIN_MS, version: ENVELOPE_VERSION, author: author.person,
  };
  if (!equalBytes(author.signing.publicKey, author.person)) {
    if (!author.certificate) throw new EnvelopeError("this device has no certificate from its person yet");
    if (header.kind === EnvelopeKind.Statement) throw new EnvelopeError("statements are signed by the person key itself");
    full.device = { key: author.signing.publicKey, certificate: author.certificate };
  }
  const signed = encodeHeader(full, payload);
  const signature = sign(author.signing.seed, concat([SIGN_TAG, signed]));
  const bytes = concat([signed, signature]);
  if (bytes.length > MAX_ENVELOPE_BYTES) throw new EnvelopeError(`envelope of ${bytes.length} bytes is over the ${MAX_ENVELOPE_BYTES}-byte limit`);
  return { ...full, payload, signature, id: envelopeId(bytes), bytes, signedLength: signed.length };
}

/** Parses the cleartext parts. Does not check the signature (see verifyEnvelope). */
export function decodeEnvelope(bytes: Uint8Array): Envelope {
  if (bytes.length > MAX_ENVELOPE_BYTES) throw new EnvelopeError(`envelope of ${bytes.length} bytes is over the ${MAX_ENVELOPE_BYTES}-byte limit`);
  try {
    const r = new Reader(bytes);
    const version = r.u8();
    if (version !== ENVELOPE_VERSION) throw new EnvelopeError(`unsupported envelope version ${version}`);
    const kind = r.u8();
    if (kind !== EnvelopeKind.Change && kind !== EnvelopeKind.Key && kind !== EnvelopeKind.Ack && kind !== EnvelopeKind.Statement)
      throw new EnvelopeError(`unknown envelope kind ${kind}`);
    const conversation = r.raw(16);
    const segment = r.varint();
    const author = r.raw(32);
    const signedBy = r.u8();
    let device: { key: Uint8Array; certificate: Uint8Array } | undefined;
    if (signedBy === 1) {
      device = { key: r.raw(32), certificate: r.raw(SIGNATURE_BYTES) };
      if (equalBytes(device.key, author)) throw new EnvelopeError("a device signature by the person key itself");
      if (kind === EnvelopeKind.Statement) throw new EnvelopeError("a statement signed by a device (statements are signed by the person key)");
    } else if (signedBy !== 0) throw new EnvelopeError(`unknown signer form ${signedBy}`);
    const n = r.varint();
    if (n > MAX_RECIPIENTS) throw new EnvelopeError(`too many recipients (${n})`);
    const recipients: Uint8Array[] = [];
    for (let i = 0; i < n; i++) recipients.push(r.raw(32));
    const created = r.varint();
    const lifetime = r.varint();
    const keyId = r.raw(8);
    const payload = r.bytes(MAX_ENVELOPE_BYTES);
    const signedLength = r.pos;
    const signature = r.raw(SIGNATURE_BYTES);
    r.end();
    const copy = Uint8Array.from(bytes);
    return {
      version, kind, conversation, segment, author, ...(device ? { device } : {}), recipients, created, lifetime, keyId, payload, signature,
      id: envelopeId(copy), bytes: copy, signedLength,
    };
  } catch (e) {
    if (e instanceof EnvelopeError) throw e;
    if (e instanceof DecodeError) throw new EnvelopeError(`malformed envelope: ${e.message}`);
    throw e;
  }
}

/**
 * The signature is the signer's, and a device signer is certified by the author person. (Whether the
 * device was revoked since is for the caller, who knows the revocations: admission.ts.)
 */
export function verifyEnvelope(env: Envelope): boolean {
  if (env.device && !verifyDeviceCertificate(env.author, env.device.key, env.device.certificate)) return false;
  return verify(signerOf(env), concat([SIGN_TAG, env.bytes.subarray(0, env.signedLength)]), env.signature);
}

export function isAddressedTo(env: EnvelopeHeader, signPublicKey: Uint8Array): boolean {
  return equalBytes(env.author, signPublicKey) || env.recipients.some((r) => equalBytes(r, signPublicKey));
}

// ---- Change envelopes ----

export function sealChange(
  author: Identity,
  h: { conversation: Uint8Array; segment: number; recipients: Uint8Array[]; created: number; lifetime?: number },
  conversationKey: Uint8Array,
  change: Uint8Array,
): Envelope {
  return signEnvelope(
    author,
    {
      kind: EnvelopeKind.Change,
      conversation: h.conversation,
      segment: h.segment,
      recipients: h.recipients,
      created: h.created,
      lifetime: h.lifetime ?? DEFAULT_LIFETIME_SECONDS,
      keyId: conversationKeyId(conversationKey),
    },
    secretboxSeal(conversationKey, pad(change)),
  );
}

/** Returns the Automerge change bytes, or null when the ciphertext does not open under the key. */
export function openChange(env: Envelope, conversationKey: Uint8Array): Uint8Array | null {
  if (env.kind !== EnvelopeKind.Change) return null;
  const plain = secretboxOpen(conversationKey, env.payload);
  return plain && unpad(plain);
}

// ---- Key envelopes ----

export function conversationKeyId(key: Uint8Array): Uint8Array {
  return sha256(utf8("pigeon-conversation-key"), key).subarray(0, 8);
}

export function newConversationKey(): Uint8Array {
  return randomBytes(32);
}

/**
 * Seals a conversation key to every member: payload = author's X25519 public key, then one box per
 * recipient (in header order), then one for the author's own other devices.
 */
export function sealKey(
  author: Identity,
  h: { conversation: Uint8Array; recipients: { signPublicKey: Uint8Array; sealPublicKey: Uint8Array }[]; created: number; lifetime?: number },
  conversationKey: Uint8Array,
): Envelope {
  // the author's name and home travel inside each box, so every recipient can show who wrote and
  // answer, without having met them; carriers, who open no box, do not learn them
  const claim = new Uint8Array(CLAIM_BYTES);
  claim.set(new Writer().bytes(utf8(author.name)).bytes(utf8(author.home)).finish());
  const plain = concat([conversationKey, claim]);
  const boxes = [...h.recipients.map((r) => r.sealPublicKey), author.sealing.publicKey].map((pk) =>
    boxSeal(plain, pk, author.sealing.secretKey),
  );
  const w = new Writer().raw(author.sealing.publicKey).varint(boxes.length);
  for (const b of boxes) w.bytes(b);
  return signEnvelope(
    author,
    {
      kind: EnvelopeKind.Key,
      conversation: h.conversation,
      segment: 0,
      recipients: h.recipients.map((r) => r.signPublicKey),
      created: h.created,
      lifetime: h.lifetime ?? DEFAULT_LIFETIME_SECONDS,
      keyId: conversationKeyId(conversationKey),
    },
    w.finish(),
  );
}

/** What a key envelope tells its recipient: the key, and who the author says they are. */
export interface OpenedKey {
  key: Uint8Array;
  authorSealPublicKey: Uint8Array;
  /** The author's own claim (name, home), absent in key envelopes from before it travelled; not verified. */
  authorClaims?: { name: string; home: string };
}

/** Opens a key envelope addressed to `me`. Returns null if it is not for us or does not open. */
export function openKey(env: Envelope, me: Identity): Uint8Array | null {
  return openKeyEnvelope(env, me)?.key ?? null;
}

export function openKeyEnvelope(env: Envelope, me: Identity): OpenedKey | null {
  if (env.kind !== EnvelopeKind.Key) return null;
  let index = env.recipients.findIndex((r) => equalBytes(r, me.person));
  try {
    const r = new Reader(env.payload);
    const authorSeal = r.raw(32);
    const n = r.varint();
    if (n !== env.recipients.length + 1) return null;
    const boxes: Uint8Array[] = [];
    for (let i = 0; i < n; i++) boxes.push(r.bytes(1024));
    r.end();
    if (index < 0 && equalBytes(env.author, me.person)) index = n - 1;
    if (index < 0) return null;
    // the person's current sealing key, then the ones before a rotation (sealed before the sender knew)
    let plain: Uint8Array | null = null;
    for (const k of [me.sealing, ...(me.previousSealing ?? [])]) {
      plain = boxOpen(boxes[index]!, authorSeal, k.secretKey);
      if (plain) break;
    }
    if (!plain || plain.length < 32) return null;
    const key = plain.subarray(0, 32);
    if (!equalBytes(conversationKeyId(key), env.keyId)) return null;
    const opened: OpenedKey = { key: Uint8Array.from(key), authorSealPublicKey: Uint8Array.from(authorSeal) };
    if (plain.length > 32) {
      try {
        const c = new Reader(plain.subarray(32));
        const name = new TextDecoder("utf-8", { fatal: true }).decode(c.bytes(64));
        const home = new TextDecoder("utf-8", { fatal: true }).decode(c.bytes(64));
        for (const b of c.raw(c.remaining)) if (b !== 0) throw new Error("padding is not zero");
        // a claim that is not a valid address is ignored, never shown
        if (validName(name) && validHome(home)) opened.authorClaims = { name, home };
      } catch {
        /* an unreadable claim: the key still opens */
      }
    }
    return opened;
  } catch (e) {
    if (e instanceof DecodeError) return null;
    throw e;
  }
}

// ---- What a sealed envelope holds ----

/**
 * The signed envelope(s) inside a sealed one (sealed.ts): one version-2 envelope (its first byte is
 * its version, 2), or a conversation's first message together with its key (issue 17: a message does
 * not depend on a separate key envelope reaching the same laptop):
 *
 *   u8 0 | varint len + key envelope (kind 2) | the change envelope (kind 1), to the end
 *
 * Both signed by the same signer, for the same conversation, key, recipients, hour and lifetime.
 */
export function encodeInner(env: Envelope, key?: Envelope): Uint8Array {
  if (!key) return env.bytes;
  checkPair(key, env);
  return concat([new Writer().u8(0).bytes(key.bytes).finish(), env.bytes]);
}

/** Parses what a sealed envelope holds (signatures not checked: verifyEnvelope each). Throws EnvelopeError. */
export function decodeInner(bytes: Uint8Array): { envelope: Envelope; key?: Envelope } {
  if (bytes.length === 0 || bytes[0] !== 0) return { envelope: decodeEnvelope(bytes) };
  let keyBytes: Uint8Array;
  let rest: Uint8Array;
  try {
    const r = new Reader(bytes, true);
    r.u8();
    keyBytes = r.bytes(MAX_ENVELOPE_BYTES);
    rest = r.raw(r.remaining);
  } catch (e) {
    if (e instanceof DecodeError) throw new EnvelopeError(`malformed message with its key: ${e.message}`);
    throw e;
  }
  const key = decodeEnvelope(keyBytes);
  const envelope = decodeEnvelope(rest);
  checkPair(key, envelope);
  return { envelope, key };
}

function checkPair(key: Envelope, change: Envelope): void {
  if (key.kind !== EnvelopeKind.Key || change.kind !== EnvelopeKind.Change) throw new EnvelopeError("a message travels only with its conversation key");
  const same =
    equalBytes(key.author, change.author) &&
    equalBytes(signerOf(key), signerOf(change)) &&
    equalBytes(key.conversation, change.conversation) &&
    equalBytes(key.keyId, change.keyId) &&
    key.recipients.length === change.recipients.length &&
    key.recipients.every((r, i) => equalBytes(r, change.recipients[i]!)) &&
    key.created === change.created &&
    key.lifetime === change.lifetime;
  if (!same) throw new EnvelopeError("a message and the key it travels with differ in author, conversation, key, recipients or time");
}

// ---- Acknowledgements ----

const NO_CONVERSATION = new Uint8Array(16);
const NO_KEY = new Uint8Array(8);

