// The link handshake: mutual authentication and per-direction session keys for one connection.
// Pure computation: no I/O, no timers. The transport (packages/peers) moves the bytes.
//
// Wire format (all integers are single bytes, strings are varint length + UTF-8, at most 64 bytes):
//
//   Hello  = u8 version=2 | u8 type=1 | raw32 signPublicKey | raw32 sealPublicKey
//          | raw32 ephemeralPublic (X25519) | raw32 challenge (random) | string name | string home
//   Proof  = u8 version=2 | u8 type=2 | raw64 signature
//
// (type = HandshakeMessageType.Hello / .Proof.) Both sides send Hello as soon as the connection
// opens, then Proof once they have the other's Hello.
//
//   transcript = sha256("pigeon-handshake-v1" || dialerHello || listenerHello)
//   signature  = Ed25519(signing seed, "pigeon-proof-v1" || role || transcript)
//                role = 0x44 ('D') when the dialer signs, 0x4c ('L') when the listener signs
//
// The role byte means a proof can never be reflected back at the side that made it.
//
//   s          = X25519(peer ephemeralPublic, my ephemeralSecret), HSalsa20-hashed (nacl.box.before)
//   key d2l    = sha256("d2l" || s || transcript)      dialer -> listener
//   key l2d    = sha256("l2d" || s || transcript)      listener -> dialer
//
// After the handshake each frame is secretbox(key of its direction, nonce, plaintext) with
// nonce = 24-byte little-endian counter, starting at 0 in each direction and incremented per frame.
// Nothing else is on the wire: the nonce is implicit, so a frame that is tampered with, dropped,
// reordered or replayed fails to open, and the link must close.
import { DecodeError, Reader, Writer, equalBytes, utf8 } from "./bytes.js";
import {
  NONCE_BYTES,
  SEAL_KEY_BYTES,
  SECRETBOX_OVERHEAD,
  SIGN_PUBLIC_BYTES,
  SIGNATURE_BYTES,
  generateSealingKeyPair,
  randomBytes,
  secretboxOpenWithNonce,
  secretboxWithNonce,
  sha256,
  sharedKey,
  sign,
  verify,
} from "./crypto.js";
import { AddressError, parseAddress, type ContactCard, type Identity } from "./identity.js";

/**
 * Version 2: sketches are keyed by id bytes 4-15 and may name a slice of the id space (SLICE_SKETCH).
 * A version-1 node could not peel our sketches, so the handshake refuses it with "wrong version".
 */
export const HANDSHAKE_VERSION = 2;
/** The second byte of every handshake message. These byte values are the wire: never renumber them. */
export const HandshakeMessageType = {
  Hello: 1,
  Proof: 2,
} as const;
export type HandshakeMessageType = (typeof HandshakeMessageType)[keyof typeof HandshakeMessageType];
export const CHALLENGE_BYTES = 32;
/** Longest name or home accepted in a HELLO, in UTF-8 bytes. */
export const HELLO_STRING_MAX = 64;
/** A HELLO can never be longer than this (2 + 4*32 + 2*(1+64)). */
export const HELLO_MAX_BYTES = 2 + 4 * 32 + 2 * (1 + HELLO_STRING_MAX);
export const PROOF_BYTES = 2 + SIGNATURE_BYTES;
/** What Session.seal adds to each frame (the secretbox tag; the nonce is implicit, never sent). */
export const SESSION_FRAME_OVERHEAD = SECRETBOX_OVERHEAD;

const TRANSCRIPT_LABEL = utf8("pigeon-handshake-v1");
const PROOF_LABEL = utf8("pigeon-proof-v1");
const D2L_LABEL = utf8("d2l");
const L2D_LABEL = utf8("l2d");
const ROLE_DIALER = 0x44; // 'D'
const ROLE_LISTENER = 0x4c; // 'L'

export type HandshakeRole = "dialer" | "listener";

export class HandshakeError extends Error {
  constructor(readonly reason: string) {
    super(`handshake failed: ${reason}`);
    this.name = "HandshakeError";
  }
}

export interface Hello {
  signPublicKey: Uint8Array;
  sealPublicKey: Uint8Array;
  ephemeralPublic: Uint8Array;
  challenge: Uint8Array;
  name: string;
  home: string;
}

export function encodeHello(h: Hello): Uint8Array {
  return new Writer()
    .u8(HANDSHAKE_VERSION)
    .u8(HandshakeMessageType.Hello)
    .raw(fixed(h.signPublicKey, SIGN_PUBLIC_BYTES, "signPublicKey"))
    .raw(fixed(h.sealPublicKey, SEAL_KEY_BYTES, "sealPublicKey"))
    .raw(fixed(h.ephemeralPublic, SEAL_KEY_BYTES, "ephemeralPublic"))
    .raw(fixed(h.challenge, CHALLENGE_BYTES, "challenge"))
    .string(h.name)
    .string(h.home)
    .finish();
}

/** Parses and validates a HELLO. Throws HandshakeError (and nothing else) on any problem. */
export function decodeHello(bytes: Uint8Array): Hello {
  return decoding(() => {
    const r = new Reader(bytes);
    expectHeader(r, HandshakeMessageType.Hello, "HELLO");
    const signPublicKey = r.raw(SIGN_PUBLIC_BYTES).slice();
    const sealPublicKey = r.raw(SEAL_KEY_BYTES).slice();
    const ephemeralPublic = r.raw(SEAL_KEY_BYTES).slice();
    const challenge = r.raw(CHALLENGE_BYTES).slice();
    const name = r.string(HELLO_STRING_MAX);
    const home = r.string(HELLO_STRING_MAX);
    r.end();
    let parsed;
    try {
      parsed = parseAddress(`${name}@${home}`);
    } catch (e) {
      if (e instanceof AddressError) throw new HandshakeError(`bad address in HELLO: ${e.message}`);
      throw e;
    }
    if (parsed.name !== name || parsed.home !== home)
      throw new HandshakeError(`bad address in HELLO: "${name}@${home}" is not in canonical form`);
    return { signPublicKey, sealPublicKey, ephemeralPublic, challenge, name, home };
  });
}

export function encodeProof(signature: Uint8Array): Uint8Array {
  return new Writer()
    .u8(HANDSHAKE_VERSION)
    .u8(HandshakeMessageType.Proof)
    .raw(fixed(signature, SIGNATURE_BYTES, "signature"))
    .finish();
}

/** Parses a PROOF and returns its signature. Throws HandshakeError (and nothing else) on any problem. */
export function decodeProof(bytes: Uint8Array): Uint8Array {
  return decoding(() => {
    const r = new Reader(bytes);
    expectHeader(r, HandshakeMessageType.Proof, "PROOF");
    const signature = r.raw(SIGNATURE_BYTES).slice();
    r.end();
    return signature;
  });
}

/** sha256("pigeon-handshake-v1" || dialerHello || listenerHello) */
export function handshakeTranscript(dialerHello: Uint8Array, listenerHello: Uint8Array): Uint8Array {
  return sha256(TRANSCRIPT_LABEL, dialerHello, listenerHello);
}

/** The bytes a side signs: "pigeon-proof-v1" || role byte || transcript. */
export function proofMessage(signer: HandshakeRole, transcript: Uint8Array): Uint8Array {
  const out = new Uint8Array(PROOF_LABEL.length + 1 + transcript.length);
  out.set(PROOF_LABEL, 0);
  out[PROOF_LABEL.length] = signer === "dialer" ? ROLE_DIALER : ROLE_LISTENER;
  out.set(transcript, PROOF_LABEL.length + 1);
  return out;
}

/** The nonce of frame number `counter` in one direction: 24-byte little-endian. */
export function frameNonce(counter: number): Uint8Array {
  if (!Number.isSafeInteger(counter) || counter < 0) throw new RangeError(`bad frame counter ${counter}`);
  const nonce = new Uint8Array(NONCE_BYTES);
  let v = counter;
  for (let i = 0; v > 0 && i < 8; i++) {
    nonce[i] = v % 256;
    v = Math.floor(v / 256);
  }
  return nonce;
}

/** Fixed randomness, for test vectors only. Omitted fields are random. */
export interface HandshakeRandomness {
  /** X25519 secret key of the ephemeral pair (32 bytes). */
  ephemeralSecretKey?: Uint8Array;
  /** The 32-byte challenge in our HELLO. */
  challenge?: Uint8Array;
}

export interface Handshake {
  readonly role: HandshakeRole;
  /** Our HELLO: send it as soon as the connection opens. */
  readonly hello: Uint8Array;
  /** Feed the peer's HELLO; send the returned PROOF. The peer is not authenticated yet. */
  receiveHello(bytes: Uint8Array): { proof: Uint8Array; claimed: ContactCard };
  /** Feed the peer's PROOF; on success the peer is authenticated and the session is ready. */
  receiveProof(bytes: Uint8Array): Session;
}

export interface Session {
  /** The other side, proven by its signature over the transcript. */
  readonly peer: ContactCard;
  readonly role: HandshakeRole;
  /** sha256 transcript of both HELLOs; identical on both sides. */
  readonly transcript: Uint8Array;
  /** Encrypts the next outgoing frame. */
  seal(plaintext: Uint8Array): Uint8Array;
  /**
   * Decrypts the next incoming frame. Throws HandshakeError if it does not open (tampered, dropped,
   * reordered or replayed); after that the session is dead and every later call throws too.
   */
  open(frame: Uint8Array): Uint8Array;
}

export function startHandshake(identity: Identity, role: HandshakeRole, randomness: HandshakeRandomness = {}): Handshake {
  const ephemeral = generateSealingKeyPair(randomness.ephemeralSecretKey);
  const challenge = randomness.challenge ?? randomBytes(CHALLENGE_BYTES);
  const hello = encodeHello({
    signPublicKey: identity.signing.publicKey,
    sealPublicKey: identity.sealing.publicKey,
    ephemeralPublic: ephemeral.publicKey,
    challenge,
    name: identity.name,
    home: identity.home,
  });
  const peerRole: HandshakeRole = role === "dialer" ? "listener" : "dialer";
  let state: "awaiting-hello" | "awaiting-proof" | "done" | "failed" = "awaiting-hello";
  let peerHello: Hello | undefined;
  let transcript: Uint8Array | undefined;

  const fail = (reason: string): never => {
    state = "failed";
    throw new HandshakeError(reason);
  };

  return {
    role,
    hello,
    receiveHello(bytes) {
      if (state !== "awaiting-hello") fail(state === "failed" ? "handshake already failed" : "unexpected second HELLO");
      let h: Hello;
      try {
        h = decodeHello(bytes);
      } catch (e) {
        state = "failed";
        throw e;
      }
      if (equalBytes(h.signPublicKey, identity.signing.publicKey)) fail("talking to ourselves");
      peerHello = h;
      transcript = role === "dialer" ? handshakeTranscript(hello, bytes) : handshakeTranscript(bytes, hello);
      state = "awaiting-proof";
      return {
        proof: encodeProof(sign(identity.signing.seed, proofMessage(role, transcript))),
        claimed: cardOf(h),
      };
    },
    receiveProof(bytes) {
      if (state !== "awaiting-proof" || !peerHello || !transcript)
        fail(state === "awaiting-hello" ? "PROOF before HELLO" : state === "failed" ? "handshake already failed" : "unexpected second PROOF");
      const h = peerHello!;
      const t = transcript!;
      let signature: Uint8Array;
      try {
        signature = decodeProof(bytes);
      } catch (e) {
        state = "failed";
        throw e;
      }
      if (!verify(h.signPublicKey, proofMessage(peerRole, t), signature)) fail("bad signature");
      const s = sharedKey(h.ephemeralPublic, ephemeral.secretKey);
      const d2l = sha256(D2L_LABEL, s, t);
      const l2d = sha256(L2D_LABEL, s, t);
      state = "done";
      return role === "dialer" ? makeSession(cardOf(h), role, t, d2l, l2d) : makeSession(cardOf(h), role, t, l2d, d2l);
    },
  };
}

function makeSession(
  peer: ContactCard,
  role: HandshakeRole,
  transcript: Uint8Array,
  sendKey: Uint8Array,
  receiveKey: Uint8Array,
): Session {
  let sent = 0;
  let received = 0;
  let dead = false;
  return {
    peer,
    role,
    transcript,
    seal(plaintext) {
      return secretboxWithNonce(sendKey, frameNonce(sent++), plaintext);
    },
    open(frame) {
      if (dead) throw new HandshakeError("session closed after a bad frame");
      const plain = secretboxOpenWithNonce(receiveKey, frameNonce(received), frame);
      if (!plain) {
        dead = true;
        throw new HandshakeError(`frame ${received} did not open (tampered, reordered or replayed)`);
      }
      received++;
      return plain;
    },
  };
}

function cardOf(h: Hello): ContactCard {
  return { name: h.name, home: h.home, signPublicKey: h.signPublicKey, sealPublicKey: h.sealPublicKey };
}

function fixed(b: Uint8Array, n: number, what: string): Uint8Array {
  if (b.length !== n) throw new RangeError(`${what} must be ${n} bytes, got ${b.length}`);
  return b;
}

function expectHeader(r: Reader, type: HandshakeMessageType, what: string): void {
  const version = r.u8();
  if (version !== HANDSHAKE_VERSION) throw new HandshakeError(`wrong version ${version} (expected ${HANDSHAKE_VERSION})`);
  const t = r.u8();
  if (t !== type) throw new HandshakeError(`wrong message type ${t} (expected ${what}=${type})`);
}

function decoding<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof HandshakeError) throw e;
    if (e instanceof DecodeError) {
      throw new HandshakeError(e.message.startsWith("truncated") ? e.message : `malformed: ${e.message}`);
    }
    throw new HandshakeError(`malformed: ${e instanceof Error ? e.message : String(e)}`);
  }
}
