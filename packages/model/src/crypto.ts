// Cryptographic primitives. Ed25519 goes through node:crypto (measured ~90x faster to verify than
// tweetnacl, and byte-compatible with it); X25519 box and secretbox come from tweetnacl.
// Pure computation: no I/O, no timers.
import { createHash, createHmac, createPrivateKey, createPublicKey, diffieHellman, sign as edSign, verify as edVerify } from "node:crypto";
import nacl from "tweetnacl";
import { concat } from "./bytes.js";

export const SIGN_PUBLIC_BYTES = 32;
export const SIGN_SEED_BYTES = 32;
export const SIGNATURE_BYTES = 64;
export const SEAL_KEY_BYTES = 32;
export const NONCE_BYTES = 24;
export const SECRETBOX_OVERHEAD = 16;

const PKCS8_PREFIX = Uint8Array.from([
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
]);

export function sha256(...parts: Uint8Array[]): Uint8Array {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

export function randomBytes(n: number): Uint8Array {
  return nacl.randomBytes(n);
}

export interface SigningKeyPair {
  publicKey: Uint8Array; // 32 bytes
  seed: Uint8Array; // 32 bytes; the Ed25519 private key
}

export function generateSigningKeyPair(seed: Uint8Array = randomBytes(SIGN_SEED_BYTES)): SigningKeyPair {
  const kp = nacl.sign.keyPair.fromSeed(seed);
  return { publicKey: kp.publicKey, seed: Uint8Array.from(seed) };
}

const privateKeyCache = new WeakMap<Uint8Array, ReturnType<typeof createPrivateKey>>();
const publicKeyCache = new Map<string, ReturnType<typeof createPublicKey>>();

function privateKeyObject(seed: Uint8Array) {
  let k = privateKeyCache.get(seed);
  if (!k) {
    k = createPrivateKey({ key: Buffer.from(concat([PKCS8_PREFIX, seed])), format: "der", type: "pkcs8" });
    privateKeyCache.set(seed, k);
  }
  return k;
}

// Keys of the OKP kind (X25519, Ed25519) are imported as JWK: node:crypto takes a JWK's bytes as they are
// (raw), about 8x quicker than decoding the same key from DER through OpenSSL 3's decoders (an X25519
// secret: 41 against 372 µs; a public key: 9-12 against 91 µs, measured on Node 20), and sealing
// makes one per envelope. A private JWK must name x, which is not used: the public key is derived
// from d (sealed.test.ts checks the results against tweetnacl). Ed25519 secrets, made into key objects
// once per identity, keep the DER import.
const UNUSED_X = Buffer.alloc(32).toString("base64url");

function okpPublicKey(crv: "X25519" | "Ed25519", publicKey: Uint8Array) {
  return createPublicKey({ key: { kty: "OKP", crv, x: Buffer.from(publicKey).toString("base64url") }, format: "jwk" });
}

function x25519SecretKey(secret: Uint8Array) {
  return createPrivateKey({ key: { kty: "OKP", crv: "X25519", d: Buffer.from(secret).toString("base64url"), x: UNUSED_X }, format: "jwk" });
}

function publicKeyObject(publicKey: Uint8Array) {
  const id = Buffer.from(publicKey).toString("base64");
  let k = publicKeyCache.get(id);
  if (!k) {
    k = okpPublicKey("Ed25519", publicKey);
    if (publicKeyCache.size > 10_000) publicKeyCache.clear();
    publicKeyCache.set(id, k);
  }
  return k;
}

export function sign(seed: Uint8Array, message: Uint8Array): Uint8Array {
  return new Uint8Array(edSign(null, message, privateKeyObject(seed)));
}

export function verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.length !== SIGN_PUBLIC_BYTES || signature.length !== SIGNATURE_BYTES) return false;
  try {
    return edVerify(null, message, publicKeyObject(publicKey), signature);
  } catch {
    return false; // a malformed point is a failed verification, not a crash
  }
}

export interface SealingKeyPair {
  publicKey: Uint8Array; // X25519
  secretKey: Uint8Array;
}

export function generateSealingKeyPair(secretKey?: Uint8Array): SealingKeyPair {
  const kp = secretKey ? nacl.box.keyPair.fromSecretKey(secretKey) : nacl.box.keyPair();
  return { publicKey: kp.publicKey, secretKey: kp.secretKey };
}

export function secretboxSeal(key: Uint8Array, plaintext: Uint8Array, nonce = randomBytes(NONCE_BYTES)): Uint8Array {
  return concat([nonce, nacl.secretbox(plaintext, nonce, key)]);
}

/** Returns null when the ciphertext was tampered with or the key is wrong. */
export function secretboxOpen(key: Uint8Array, sealed: Uint8Array): Uint8Array | null {
  if (sealed.length < NONCE_BYTES + SECRETBOX_OVERHEAD) return null;
  return nacl.secretbox.open(sealed.subarray(NONCE_BYTES), sealed.subarray(0, NONCE_BYTES), key);
}

export function boxSeal(
  plaintext: Uint8Array,
  theirPublic: Uint8Array,
  mySecret: Uint8Array,
  nonce = randomBytes(NONCE_BYTES),
): Uint8Array {
  return concat([nonce, nacl.box(plaintext, nonce, theirPublic, mySecret)]);
}

export function boxOpen(sealed: Uint8Array, theirPublic: Uint8Array, mySecret: Uint8Array): Uint8Array | null {
  if (sealed.length < NONCE_BYTES + SECRETBOX_OVERHEAD) return null;
  return nacl.box.open(sealed.subarray(NONCE_BYTES), sealed.subarray(0, NONCE_BYTES), theirPublic, mySecret);
}

/** X25519 shared secret (HSalsa20-hashed, as nacl.box.before). */
export function sharedKey(theirPublic: Uint8Array, mySecret: Uint8Array): Uint8Array {
  return nacl.box.before(theirPublic, mySecret);
}

export function secretboxWithNonce(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array): Uint8Array {
  return nacl.secretbox(plaintext, nonce, key);
}

export function secretboxOpenWithNonce(key: Uint8Array, nonce: Uint8Array, box: Uint8Array): Uint8Array | null {
  return nacl.secretbox.open(box, nonce, key);
}

// ---- Key derivation ----
// HMAC-SHA256 as RFC 2104 defines it, and HKDF-SHA256 as RFC 5869 defines it on top of that. Checked
// against the RFCs' test vectors in crypto.test.ts.

const SHA256_BYTES = 32;

/**
 * HMAC-SHA256(key, message) = sha256((K ^ opad) || sha256((K ^ ipad) || message)), K = key padded to
 * 64 bytes (node:crypto's, which is that; crypto.test.ts checks it against RFC 4231's vectors).
 */
export function hmacSha256(key: Uint8Array, ...message: Uint8Array[]): Uint8Array {
  const h = createHmac("sha256", key);
  for (const m of message) h.update(m);
  return new Uint8Array(h.digest());
}

/** HKDF-Extract(salt, ikm) = HMAC-SHA256(salt, ikm) (RFC 5869 section 2.2). */
export function hkdfExtract(salt: Uint8Array, ikm: Uint8Array): Uint8Array {
  return hmacSha256(salt, ikm);
}

/**
 * HKDF-Expand(prk, info, length) (RFC 5869 section 2.3): T(i) = HMAC(prk, T(i-1) || info || i),
 * output = T(1) || T(2) || ... cut to `length` (at most 255 * 32 bytes).
 */
export function hkdfExpand(prk: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  if (!Number.isInteger(length) || length < 0 || length > 255 * SHA256_BYTES)
    throw new RangeError(`HKDF-Expand: bad length ${length}`);
  const out = new Uint8Array(length);
  let previous: Uint8Array = new Uint8Array(0);
  for (let i = 1, filled = 0; filled < length; i++) {
    previous = hmacSha256(prk, previous, info, Uint8Array.of(i));
    out.set(previous.subarray(0, Math.min(SHA256_BYTES, length - filled)), filled);
    filled += SHA256_BYTES;
  }
  return out;
}

/**
 * Raw X25519 (nacl.scalarMult): the 32-byte shared point, for use as HKDF input key material.
 * Returns null when it is all zeros, i.e. the other side sent a low-order point that would fix the
 * result whatever our secret is.
 */
export function x25519(theirPublic: Uint8Array, mySecret: Uint8Array): Uint8Array | null {
  if (theirPublic.length !== SEAL_KEY_BYTES || mySecret.length !== SEAL_KEY_BYTES) return null;
  const shared = nacl.scalarMult(mySecret, theirPublic);
  let acc = 0;
  for (const b of shared) acc |= b;
  return acc === 0 ? null : shared;
}

// X25519 through node:crypto (~117 µs, against ~1.9 ms for nacl.scalarMult): sealed envelopes try
// every incoming envelope with each of the person's sealing secrets. Byte-compatible with nacl.
const x25519Private = new Map<string, ReturnType<typeof createPrivateKey>>();

function x25519PrivateKey(secret: Uint8Array) {
  const id = Buffer.from(secret).toString("base64");
  let k = x25519Private.get(id);
  if (!k) {
    k = x25519SecretKey(secret);
    if (x25519Private.size > 64) x25519Private.clear(); // a person's few sealing secrets; one-off keys pass through
    x25519Private.set(id, k);
  }
  return k;
}

/** The X25519 public key of a 32-byte secret (clamped as X25519 does). */
export function x25519PublicKey(secret: Uint8Array): Uint8Array {
  const der = createPublicKey(x25519PrivateKey(secret)).export({ format: "der", type: "spki" });
  return new Uint8Array(der.subarray(der.length - 32));
}

/** Recipients' sealing keys as key objects: a few people written to again and again. */
const x25519Public = new Map<string, ReturnType<typeof createPublicKey>>();

function allZero(b: Uint8Array): boolean {
  let acc = 0;
  for (const x of b) acc |= x;
  return acc === 0;
}

/**
 * A one-off X25519 secret (an envelope's ephemeral key) made into a key object once for all its
 * recipients, and kept out of the cache of the person's own secrets (which one-off keys used to
 * empty every 64 envelopes). Its peers' public keys are cached: they are the person's contacts.
 */
export class X25519OneOff {
  readonly publicKey: Uint8Array;
  private readonly key: ReturnType<typeof createPrivateKey>;
  constructor(secret: Uint8Array) {
    if (secret.length !== SEAL_KEY_BYTES) throw new RangeError("an X25519 secret is 32 bytes");
    this.key = x25519SecretKey(secret);
    const der = createPublicKey(this.key).export({ format: "der", type: "spki" });
    this.publicKey = new Uint8Array(der.subarray(der.length - 32));
  }

  /** As x25519Fast: null for a malformed or low-order point. */
  agree(theirPublic: Uint8Array): Uint8Array | null {
    if (theirPublic.length !== SEAL_KEY_BYTES) return null;
    try {
      const id = Buffer.from(theirPublic).toString("base64");
      let pub = x25519Public.get(id);
      if (!pub) {
        pub = okpPublicKey("X25519", theirPublic);
        if (x25519Public.size > 4096) x25519Public.clear();
        x25519Public.set(id, pub);
      }
      const shared = new Uint8Array(diffieHellman({ privateKey: this.key, publicKey: pub }));
      return allZero(shared) ? null : shared;
    } catch {
      return null; // OpenSSL refuses an all-zero result itself
    }
  }
}

/** As x25519 above, through node:crypto: null for a malformed or low-order point (all-zero result). */
export function x25519Fast(theirPublic: Uint8Array, mySecret: Uint8Array): Uint8Array | null {
  if (theirPublic.length !== SEAL_KEY_BYTES || mySecret.length !== SEAL_KEY_BYTES) return null;
  try {
    const pub = okpPublicKey("X25519", theirPublic);
    const shared = new Uint8Array(diffieHellman({ privateKey: x25519PrivateKey(mySecret), publicKey: pub }));
    let acc = 0;
    for (const b of shared) acc |= b;
    return acc === 0 ? null : shared;
  } catch {
    return null; // OpenSSL refuses an all-zero result itself
  }
}
