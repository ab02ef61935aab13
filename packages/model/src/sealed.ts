// Envelope version 3: the routing wrapper that carriers see (docs/protocol.md section 3, "Sealed
// routing"). Around a signed version-2 envelope (unchanged inside), so that a carrier learns no
// person key, no conversation, no kind: only a size, an hour, a lifetime, how many slots and locks
// it has, and which locks were opened.
//
//   Sealed  = u8 3 | u8 5 | varint created (ms, on the hour) | varint lifetime (s) | raw32 E
//           | varint n | n x (raw16 tag | raw48 wrapped key)   (sorted by tag; n = recipients + 1)
//           | varint m | m x raw32 lock                        (sorted; one per recipient)
//           | bytes (raw24 nonce | secretbox(K, raw32 sha256(header) | inner version-2 envelope))
//   (header = every byte before that `bytes`: a carrier that changes any of it, a slot, a lock, the
//   hour, makes an envelope that no longer opens, so a sealed envelope has one form only)
//   Receipt = u8 3 | u8 6 | varint created | varint lifetime | varint m | m x (raw32 id | raw32 ack key)
//
// For each slot i with recipient person sealing key S_i: s_i = X25519(e, S_i), tag_i =
// HMAC(s_i, "pigeon-tag-v3" | E)[0..16], wrapped_i = secretbox(HKDF(salt E, s_i, "pigeon-wrap-v3"),
// nonce 0, K), ackKey_i = HMAC(s_i, "pigeon-ack-v3" | E), lock_i = sha256(ackKey_i). Besides the
// author, only the holder of S_i's secret (the recipient person's devices) computes s_i = X25519(E, secret).
// e, K and the nonce are derived from the author's person sealing secret and the inner envelope,
// so the author (any of its devices) gets the same bytes again from the same inner envelope.
import { compareBytes, concat, DecodeError, equalBytes, Reader, utf8, Writer } from "./bytes.js";
import {
  hkdfExpand,
  hkdfExtract,
  hmacSha256,
  secretboxOpen,
  secretboxOpenWithNonce,
  secretboxSeal,
  secretboxWithNonce,
  sha256,
  x25519Fast,
  x25519PublicKey,
  type SealingKeyPair,
} from "./crypto.js";
import { CREATED_GRAIN_MS, DEFAULT_LIFETIME_SECONDS, EnvelopeError, EnvelopeKind, MAX_ACK_IDS, MAX_ENVELOPE_BYTES, MAX_RECIPIENTS } from "./envelope.js";

export const SEALED_VERSION = 3;
export const TAG_BYTES = 16;
const WRAPPED_BYTES = 48;
const ZERO_NONCE = new Uint8Array(24);
const TAG_INFO = utf8("pigeon-tag-v3");
const WRAP_INFO = utf8("pigeon-wrap-v3");
const ACK_INFO = utf8("pigeon-ack-v3");
const EPHEMERAL_INFO = utf8("pigeon-ephemeral-v3");
const CONTENT_INFO = utf8("pigeon-content-v3");

/** At most this many slots: every recipient and the author's own person. */
export const MAX_SLOTS = MAX_RECIPIENTS + 1;

export interface SealedSlot {
  tag: Uint8Array;
  wrapped: Uint8Array;
}

export interface SealedEnvelope {
  version: 3;
  kind: EnvelopeKind.Sealed;
  created: number;
  lifetime: number;
  /** The one-off X25519 public key. */
  ephemeral: Uint8Array;
  slots: SealedSlot[];
  locks: Uint8Array[];
  /** raw24 nonce | secretbox ciphertext of sha256(header) and the inner envelope. */
  box: Uint8Array;
  /** Bytes before the box's length: what sha256(header) covers. */
  headerLength: number;
  id: Uint8Array;
  bytes: Uint8Array;
}

export interface ReceiptEntry {
  /** The sealed envelope's id (sha256 of its bytes). */
  id: Uint8Array;
  /** Its lock's preimage: sha256(ackKey) is one of the envelope's locks. */
  ackKey: Uint8Array;
}

export interface Receipt {
  version: 3;
  kind: EnvelopeKind.Receipt;
  created: number;
  lifetime: number;
  entries: ReceiptEntry[];
  id: Uint8Array;
  bytes: Uint8Array;
}

/** What the first two bytes of an envelope say it is. */
export function envelopeForm(bytes: Uint8Array): "signed" | "sealed" | "receipt" | "between" | "unknown" {
  if (bytes.length < 2) return "unknown";
  if (bytes[0] === 2) return "signed";
  if (bytes[0] === SEALED_VERSION && bytes[1] === EnvelopeKind.Sealed) return "sealed";
  if (bytes[0] === SEALED_VERSION && bytes[1] === EnvelopeKind.Receipt) return "receipt";
  if (bytes[0] === SEALED_VERSION && bytes[1] === EnvelopeKind.Between) return "between";
  return "unknown";
}

interface Shared {
  tag: Uint8Array;
  wrapKey: Uint8Array;
  ackKey: Uint8Array;
}

function derive(s: Uint8Array, E: Uint8Array): Shared {
  return {
    tag: hmacSha256(s, TAG_INFO, E).subarray(0, TAG_BYTES),
    wrapKey: hkdfExpand(hkdfExtract(E, s), WRAP_INFO, 32),
    ackKey: hmacSha256(s, ACK_INFO, E),
  };
}

export function lockOf(ackKey: Uint8Array): Uint8Array {
  return sha256(ackKey);
}

function sortedUnique(list: Uint8Array[]): boolean {
  for (let i = 1; i < list.length; i++) if (compareBytes(list[i - 1]!, list[i]!) >= 0) return false;
  return true;
}

function roundCreated(created: number): number {
  return Math.floor(created / CREATED_GRAIN_MS) * CREATED_GRAIN_MS;
}

/**
 * Wraps a signed inner envelope for its recipients' person sealing keys (`recipients`, one per real
 * recipient, each getting a lock) and the author's own person (`author.publicKey`: its other devices,
 * no lock). Deterministic in (author secret, inner, recipients).
 */
export function sealEnvelope(
  author: SealingKeyPair,
  inner: { bytes: Uint8Array; created: number; lifetime: number },
  recipients: Uint8Array[],
): SealedEnvelope {
  if (recipients.length > MAX_RECIPIENTS) throw new RangeError("too many recipients");
  const digest = sha256(inner.bytes);
  const e = sha256(EPHEMERAL_INFO, author.secretKey, digest);
  const E = x25519PublicKey(e);
  const content = hmacSha256(e, CONTENT_INFO, digest);
  const K = content.subarray(0, 32);
  const nonce = sha256(content, digest).subarray(0, 24);
  const slots: SealedSlot[] = [];
  const locks: Uint8Array[] = [];
  const targets = [...recipients.map((r) => ({ key: r, lock: true })), { key: author.publicKey, lock: false }];
  for (const t of targets) {
    const s = x25519Fast(t.key, e);
    if (!s) throw new EnvelopeError("a recipient's sealing key is not a valid X25519 key");
    const d = derive(s, E);
    slots.push({ tag: Uint8Array.from(d.tag), wrapped: secretboxWithNonce(d.wrapKey, ZERO_NONCE, K) });
    if (t.lock) locks.push(lockOf(d.ackKey));
  }
  slots.sort((a, b) => compareBytes(a.tag, b.tag));
  locks.sort(compareBytes);
  // two recipients with the same sealing key would share a tag: one slot is enough for both
  const uniqueSlots = slots.filter((s, i) => i === 0 || !equalBytes(s.tag, slots[i - 1]!.tag));
  const uniqueLocks = locks.filter((l, i) => i === 0 || !equalBytes(l, locks[i - 1]!));
  const created = roundCreated(inner.created);
  const w = new Writer().u8(SEALED_VERSION).u8(EnvelopeKind.Sealed).varint(created).varint(inner.lifetime).raw(E).varint(uniqueSlots.length);
  for (const s of uniqueSlots) w.raw(s.tag).raw(s.wrapped);
  w.varint(uniqueLocks.length);
  for (const l of uniqueLocks) w.raw(l);
  const header = w.finish();
  const box = secretboxSeal(K, concat([sha256(header), inner.bytes]), nonce);
  const bytes = new Writer().raw(header).bytes(box).finish();
  if (bytes.length > MAX_ENVELOPE_BYTES) throw new EnvelopeError(`envelope of ${bytes.length} bytes is over the ${MAX_ENVELOPE_BYTES}-byte limit`);
  return {
    version: 3, kind: EnvelopeKind.Sealed, created, lifetime: inner.lifetime, ephemeral: E, slots: uniqueSlots, locks: uniqueLocks, box,
    headerLength: header.length, id: sha256(bytes), bytes,
  };
}

/**
 * The lock of each recipient (in the order given) of the envelope that sealEnvelope makes from the
 * same author secret and inner envelope: what lets the author tell, from the locks receipts opened,
 * which recipients have it (a channel's "delivered to n of m"). Only the author can compute this:
 * it needs the one-off secret, which comes from the author's sealing secret. Null for a key that is
 * not a valid X25519 key (that recipient could never have been sealed to).
 */
export function recipientLocks(author: SealingKeyPair, innerBytes: Uint8Array, recipients: Uint8Array[]): (Uint8Array | null)[] {
  const e = sha256(EPHEMERAL_INFO, author.secretKey, sha256(innerBytes));
  const E = x25519PublicKey(e);
  return recipients.map((r) => {
    const s = x25519Fast(r, e);
    return s ? lockOf(derive(s, E).ackKey) : null;
  });
}

function fail(e: unknown, what: string): never {
  if (e instanceof EnvelopeError) throw e;
  if (e instanceof DecodeError) throw new EnvelopeError(`malformed ${what}: ${e.message}`);
  throw e;
}

/** Parses a sealed envelope (what a carrier can check of it). Throws EnvelopeError. */
export function decodeSealed(bytes: Uint8Array): SealedEnvelope {
  if (bytes.length > MAX_ENVELOPE_BYTES) throw new EnvelopeError(`envelope of ${bytes.length} bytes is over the ${MAX_ENVELOPE_BYTES}-byte limit`);
  try {
    const r = new Reader(bytes, true);
    if (r.u8() !== SEALED_VERSION || r.u8() !== EnvelopeKind.Sealed) throw new EnvelopeError("not a sealed envelope");
    const created = r.varint();
    if (created % CREATED_GRAIN_MS !== 0) throw new EnvelopeError("created is not on the hour");
    const lifetime = r.varint();
    const ephemeral = Uint8Array.from(r.raw(32));
    const n = r.varint();
    if (n < 1 || n > MAX_SLOTS) throw new EnvelopeError(`a sealed envelope has 1 to ${MAX_SLOTS} slots, not ${n}`);
    const slots: SealedSlot[] = [];
    for (let i = 0; i < n; i++) slots.push({ tag: Uint8Array.from(r.raw(TAG_BYTES)), wrapped: Uint8Array.from(r.raw(WRAPPED_BYTES)) });
    if (!sortedUnique(slots.map((s) => s.tag))) throw new EnvelopeError("slots are not sorted by tag");
    const m = r.varint();
    if (m >= n) throw new EnvelopeError(`a sealed envelope has fewer locks than slots (${m} locks, ${n} slots)`);
    const locks: Uint8Array[] = [];
    for (let i = 0; i < m; i++) locks.push(Uint8Array.from(r.raw(32)));
    if (!sortedUnique(locks)) throw new EnvelopeError("locks are not sorted");
    const headerLength = r.pos;
    const box = Uint8Array.from(r.bytes(MAX_ENVELOPE_BYTES));
    if (box.length < 24 + 16) throw new EnvelopeError("sealed box too short");
    r.end();
    const copy = Uint8Array.from(bytes);
    return { version: 3, kind: EnvelopeKind.Sealed, created, lifetime, ephemeral, slots, locks, box, headerLength, id: sha256(copy), bytes: copy };
  } catch (e) {
    fail(e, "sealed envelope");
  }
}

/** The tag `secret` would find in an envelope with one-off key E (null: E is a low-order point). */
export function tagFor(ephemeral: Uint8Array, secret: Uint8Array): { tag: Uint8Array; shared: Shared } | null {
  const s = x25519Fast(ephemeral, secret);
  if (!s) return null;
  const shared = derive(s, ephemeral);
  return { tag: shared.tag, shared };
}

/** Whether any of these sealing secrets recognises one of the tags (a Probe entry). */
export function recognises(ephemeral: Uint8Array, tags: Uint8Array[], secrets: SealingKeyPair[]): boolean {
  for (const k of secrets) {
    const t = tagFor(ephemeral, k.secretKey);
    if (t && tags.some((x) => equalBytes(x, t.tag))) return true;
  }
  return false;
}

export interface Unsealed {
  /** The inner version-2 envelope's bytes (not yet decoded or verified). */
  inner: Uint8Array;
  /** This slot's ack key; `lock` tells whether it opens one of the envelope's locks (a recipient's slot). */
  ackKey: Uint8Array;
  lock: boolean;
}

/**
 * Opens a sealed envelope with the first of these sealing secrets whose tag is in it: what it holds,
 * or "not-ours" (no tag matches: a carrier keeps it as an opaque blob), or "broken" (a tag matches
 * but the slot or the box does not open: changed in transit, or made up).
 */
export function openSealed(env: SealedEnvelope, secrets: SealingKeyPair[]): Unsealed | "not-ours" | "broken" {
  let matched = false;
  for (const k of secrets) {
    const t = tagFor(env.ephemeral, k.secretKey);
    if (!t) return "broken"; // a low-order one-off key: no one's tag
    const slot = env.slots.find((s) => equalBytes(s.tag, t.tag));
    if (!slot) continue;
    matched = true;
    const K = secretboxOpenWithNonce(t.shared.wrapKey, ZERO_NONCE, slot.wrapped);
    if (!K || K.length !== 32) continue;
    const plain = secretboxOpen(K, env.box);
    // the header it was sealed with, byte for byte: a changed slot, lock or hour does not open
    if (!plain || plain.length < 32 || !equalBytes(plain.subarray(0, 32), sha256(env.bytes.subarray(0, env.headerLength)))) continue;
    const inner = plain.subarray(32);
    const lock = lockOf(t.shared.ackKey);
    return { inner, ackKey: t.shared.ackKey, lock: env.locks.some((l) => equalBytes(l, lock)) };
  }
  return matched ? "broken" : "not-ours";
}

/** As openSealed, null unless it opens. */
export function unseal(env: SealedEnvelope, secrets: SealingKeyPair[]): Unsealed | null {
  const o = openSealed(env, secrets);
  return typeof o === "string" ? null : o;
}

// ---- Receipts ----

/** Builds a receipt (unsigned: the ack keys are the proof). Entries are sorted (id, then ack key). */
export function makeReceipt(h: { created: number; lifetime?: number }, entries: ReceiptEntry[]): Receipt {
  if (entries.length === 0 || entries.length > MAX_ACK_IDS) throw new RangeError(`a receipt names 1 to ${MAX_ACK_IDS} envelopes`);
  const key = (e: ReceiptEntry) => concat([e.id, e.ackKey]);
  const sorted = [...entries].sort((a, b) => compareBytes(key(a), key(b))).filter((e, i, all) => i === 0 || !equalBytes(key(e), key(all[i - 1]!)));
  const created = roundCreated(h.created);
  const lifetime = h.lifetime ?? DEFAULT_LIFETIME_SECONDS;
  const w = new Writer().u8(SEALED_VERSION).u8(EnvelopeKind.Receipt).varint(created).varint(lifetime).varint(sorted.length);
  for (const e of sorted) {
    if (e.id.length !== 32 || e.ackKey.length !== 32) throw new RangeError("receipt entries are two 32-byte values");
    w.raw(e.id).raw(e.ackKey);
  }
  const bytes = w.finish();
  return { version: 3, kind: EnvelopeKind.Receipt, created, lifetime, entries: sorted, id: sha256(bytes), bytes };
}

export function decodeReceipt(bytes: Uint8Array): Receipt {
  if (bytes.length > MAX_ENVELOPE_BYTES) throw new EnvelopeError(`envelope of ${bytes.length} bytes is over the ${MAX_ENVELOPE_BYTES}-byte limit`);
  try {
    const r = new Reader(bytes, true);
    if (r.u8() !== SEALED_VERSION || r.u8() !== EnvelopeKind.Receipt) throw new EnvelopeError("not a receipt");
    const created = r.varint();
    if (created % CREATED_GRAIN_MS !== 0) throw new EnvelopeError("created is not on the hour");
    const lifetime = r.varint();
    const m = r.varint();
    if (m < 1 || m > MAX_ACK_IDS) throw new EnvelopeError(`a receipt names 1 to ${MAX_ACK_IDS} envelopes, not ${m}`);
    const entries: ReceiptEntry[] = [];
    for (let i = 0; i < m; i++) {
      const e = { id: Uint8Array.from(r.raw(32)), ackKey: Uint8Array.from(r.raw(32)) };
      const prev = entries[i - 1];
      if (prev && compareBytes(concat([prev.id, prev.ackKey]), concat([e.id, e.ackKey])) >= 0) throw new EnvelopeError("receipt entries are not sorted");
      entries.push(e);
    }
    r.end();
    const copy = Uint8Array.from(bytes);
    return { version: 3, kind: EnvelopeKind.Receipt, created, lifetime, entries, id: sha256(copy), bytes: copy };
  } catch (e) {
    fail(e, "receipt");
  }
}
