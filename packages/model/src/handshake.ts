// The link handshake: mutual authentication and per-direction session keys for one connection, in
// the spirit of Noise XX / SIGMA-I: fresh ephemeral X25519 keys first, in clear; then each side's
// identity (signing key, sealing key, name, home) and its proof (an Ed25519 signature over the
// transcript) only inside encryption keyed from the ephemeral Diffie-Hellman. The dialer reveals who
// it is only after it has checked the listener's proof. Someone who only listens on the network
// learns no name, no home and no long-term key; what each party learns is in docs/protocol.md.
// Pure computation: no I/O, no timers. The transport (packages/peers) moves the bytes.
//
// Wire format (version 6, the same bytes as version 5 but the first; every message has a fixed length):
//
//   Hello   = u8 version=6 | u8 type=1 | raw32 dialer ephemeral (X25519)
//           | 2 x raw16 proof (HMAC(link secret, "pigeon-hello-v5" || ephemeral)[0..16], or random)  66 bytes
//   Reply   = u8 version=6 | u8 type=2 | raw32 listener ephemeral (X25519)
//           | secretbox(kL, nonce 0, identity block of the listener | raw64 sigL)      404 bytes
//           (or 370 random bytes: the listener does not show itself to this dialer)
//   Confirm = u8 version=6 | u8 type=3
//           | secretbox(kD, nonce 0, identity block of the dialer | raw64 sigD)        372 bytes
//
// Who learns whose identity: a link secret is one both laptops hold without having met (the school's
// link secret, from its directory key; a pairing code's). The listener shows itself only to a dialer
// whose Hello proves a secret it holds, unless it shows itself to strangers too (a laptop in no school).
// The dialer shows itself only once the listener's identity opened; and, unless it too shows itself to
// strangers, only if it opened under a secret the dialer proved (so the listener proved it holds it).
//
//   identity block = raw32 person key | raw32 sealPublicKey | string name | string home
//                    | raw32 device key | raw64 device certificate
//                    | zero bytes up to 290 bytes (so the length never tells the name's length)
//   (on a person's first device the device key is the person key and the certificate is 64 zero
//   bytes; on another device the certificate is the person's signature over the device key. The
//   proofs below are signed by the device key, so a link is always with one device.)
//
// (type = HandshakeMessageType.Hello / .Reply / .Confirm.) The dialer sends Hello as soon as the
// connection opens; the listener says nothing until it has a Hello.
//
// Keys and transcript (HMAC and HKDF are RFC 2104 / RFC 5869 over sha256, crypto.ts):
//
//   dh   = X25519(peer ephemeral, my ephemeral secret)       (nacl.scalarMult; all zeros is refused)
//   h0   = sha256("pigeon-handshake-v5" || Hello || first 34 bytes of Reply)
//   psk  = the link secret the listener found proven in the Hello, or 32 zero bytes
//   prk  = HKDF-Extract(salt = h0, ikm = dh || psk)
//   kL   = HKDF-Expand(prk, "pigeon-v5 listener identity", 32)
//   kD   = HKDF-Expand(prk, "pigeon-v5 dialer identity", 32)
//   tL   = sha256("pigeon-handshake-v5" || h0 || listener identity block)
//   sigL = Ed25519(listener, "pigeon-proof-v5" || 0x4c 'L' || tL)
//   tD   = sha256("pigeon-handshake-v5" || tL || sigL || dialer identity block)
//   sigD = Ed25519(dialer, "pigeon-proof-v5" || 0x44 'D' || tD)
//   transcript = sha256("pigeon-handshake-v5" || tD || sigD)
//   d2l  = HKDF-Expand(prk, "pigeon-v5 d2l" || transcript, 32)     frames dialer -> listener
//   l2d  = HKDF-Expand(prk, "pigeon-v5 l2d" || transcript, 32)     frames listener -> dialer
//
// kL and kD each seal exactly one message, so their nonce can be 0. Each proof covers both ephemeral
// keys (so it cannot be replayed on another connection) and, for the dialer, the listener's identity
// and proof (so both sides agree on who talked to whom); the role byte means a proof can never be
// reflected back at the side that made it.
//
// After the handshake each frame is secretbox(key of its direction, nonce, plaintext) with
// nonce = 24-byte little-endian counter, starting at 0 in each direction and incremented per frame.
// Nothing else is on the wire: the nonce is implicit, so a frame that is tampered with, dropped,
// reordered or replayed fails to open, and the link must close.
import { DecodeError, Reader, Writer, concat, equalBytes, utf8 } from "./bytes.js";
import {
  NONCE_BYTES,
  SEAL_KEY_BYTES,
  SECRETBOX_OVERHEAD,
  SIGN_PUBLIC_BYTES,
  SIGNATURE_BYTES,
  generateSealingKeyPair,
  hkdfExpand,
  hmacSha256,
  randomBytes,
  hkdfExtract,
  secretboxOpenWithNonce,
  secretboxWithNonce,
  sha256,
  sign,
  verify,
  x25519,
} from "./crypto.js";
import { AddressError, parseAddress, verifyDeviceCertificate, type ContactCard, type Identity } from "./identity.js";

/**
 * Version 6: the handshake of version 5; what changed is inside the sealed envelopes (a message carries
 * its own receipts map, docs/protocol.md "Documents"), which a version-5 node would refuse message by
 * message, for good: the two refuse each other here instead, and mail waits for both to run one
 * version. Version 5: a laptop shows who it is only to a laptop that proves a secret both hold (its
 * school's, a pairing code's), unless it shows itself to strangers. Version 4 brought one key per
 * device; identities travel only encrypted since version 3. A node of another version is refused with
 * "wrong version".
 */
export const HANDSHAKE_VERSION = 6;
/**
 * The second byte of every handshake message. These byte values are the wire of this version: never
 * renumber them (version 2 used 1 = its clear Hello and 2 = its Proof).
 */
export const HandshakeMessageType = {
  Hello: 1,
  Reply: 2,
  Confirm: 3,
} as const;
export type HandshakeMessageType = (typeof HandshakeMessageType)[keyof typeof HandshakeMessageType];
/** Longest name or home accepted in an identity block, in UTF-8 bytes. */
export const IDENTITY_STRING_MAX = 64;
/** An identity block is always this long: two keys, two strings of at most 64 bytes, a device key and certificate, zero padding. */
export const IDENTITY_BLOCK_BYTES = 2 * 32 + 2 * (1 + IDENTITY_STRING_MAX) + 32 + SIGNATURE_BYTES;
/** The secretbox of an identity block and its signature. */
export const SEALED_IDENTITY_BYTES = IDENTITY_BLOCK_BYTES + SIGNATURE_BYTES + SECRETBOX_OVERHEAD;
const HEADER_BYTES = 2;
/** Bytes of one proof of a link secret in a Hello. */
export const HELLO_PROOF_BYTES = 16;
/** A Hello carries this many proofs (unused ones are random, so a Hello never tells how many are real). */
export const HELLO_PROOFS = 2;
export const HELLO_BYTES = HEADER_BYTES + SEAL_KEY_BYTES + HELLO_PROOFS * HELLO_PROOF_BYTES;
export const REPLY_BYTES = HEADER_BYTES + SEAL_KEY_BYTES + SEALED_IDENTITY_BYTES;
export const CONFIRM_BYTES = HEADER_BYTES + SEALED_IDENTITY_BYTES;
/** No handshake message is longer than this (the Reply). */
export const HANDSHAKE_MESSAGE_MAX_BYTES = Math.max(HELLO_BYTES, REPLY_BYTES, CONFIRM_BYTES);
/** What Session.seal adds to each frame (the secretbox tag; the nonce is implicit, never sent). */
export const SESSION_FRAME_OVERHEAD = SECRETBOX_OVERHEAD;

const LABEL = utf8("pigeon-handshake-v5");
const PROOF_LABEL = utf8("pigeon-proof-v5");
const LISTENER_KEY_INFO = utf8("pigeon-v5 listener identity");
const DIALER_KEY_INFO = utf8("pigeon-v5 dialer identity");
const D2L_INFO = utf8("pigeon-v5 d2l");
const L2D_INFO = utf8("pigeon-v5 l2d");
const HELLO_PROOF_LABEL = utf8("pigeon-hello-v5");
const NO_SECRET = new Uint8Array(32);
const ROLE_DIALER = 0x44; // 'D'
const ROLE_LISTENER = 0x4c; // 'L'
const KEY_BYTES = 32;
/** kL and kD each seal one message only. */
const ZERO_NONCE = new Uint8Array(NONCE_BYTES);

export type HandshakeRole = "dialer" | "listener";

export class HandshakeError extends Error {
  constructor(readonly reason: string) {
    super(`handshake failed: ${reason}`);
    this.name = "HandshakeError";
  }
}

// ---- messages ----

/** HMAC(link secret, "pigeon-hello-v5" || ephemeral)[0..16]: the Hello's proof that the dialer holds a secret. */
export function helloProof(secret: Uint8Array, ephemeralPublic: Uint8Array): Uint8Array {
  return hmacSha256(fixed(secret, 32, "link secret"), HELLO_PROOF_LABEL, ephemeralPublic).slice(0, HELLO_PROOF_BYTES);
}

/**
 * A Hello proving up to two link secrets; the other proof slots hold `filler` (bytes no one can tell
 * from a proof: the state machine derives them from the ephemeral secret), random if not given.
 */
export function encodeHello(ephemeralPublic: Uint8Array, secrets: readonly Uint8Array[] = [], filler?: Uint8Array): Uint8Array {
  const w = header(HandshakeMessageType.Hello).raw(fixed(ephemeralPublic, SEAL_KEY_BYTES, "ephemeralPublic"));
  const fill = filler ?? randomBytes(HELLO_PROOFS * HELLO_PROOF_BYTES);
  for (let i = 0; i < HELLO_PROOFS; i++)
    w.raw(i < secrets.length ? helloProof(secrets[i]!, ephemeralPublic) : fill.subarray(i * HELLO_PROOF_BYTES, (i + 1) * HELLO_PROOF_BYTES));
  return w.finish();
}

/** Parses a Hello: the dialer's ephemeral key and its proofs. Throws HandshakeError (and nothing else). */
export function decodeHello(bytes: Uint8Array): { ephemeralPublic: Uint8Array; proofs: Uint8Array[] } {
  return decoding(() => {
    const r = new Reader(bytes);
    expectHeader(r, HandshakeMessageType.Hello, "Hello");
    const ephemeralPublic = r.raw(SEAL_KEY_BYTES).slice();
    const proofs: Uint8Array[] = [];
    for (let i = 0; i < HELLO_PROOFS; i++) proofs.push(r.raw(HELLO_PROOF_BYTES).slice());
    r.end();
    return { ephemeralPublic, proofs };
  });
}

/** The first of `secrets` that one of the Hello's proofs proves (compared in constant time), if any. */
export function provenSecret(hello: { ephemeralPublic: Uint8Array; proofs: Uint8Array[] }, secrets: readonly Uint8Array[]): Uint8Array | undefined {
  for (const secret of secrets) {
    const want = helloProof(secret, hello.ephemeralPublic);
    if (hello.proofs.some((p) => constantTimeEqual(p, want))) return secret;
  }
  return undefined;
}

function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}

export function encodeReply(ephemeralPublic: Uint8Array, sealedIdentity: Uint8Array): Uint8Array {
  return header(HandshakeMessageType.Reply)
    .raw(fixed(ephemeralPublic, SEAL_KEY_BYTES, "ephemeralPublic"))
    .raw(fixed(sealedIdentity, SEALED_IDENTITY_BYTES, "sealedIdentity"))
    .finish();
}

/** Parses a Reply. Throws HandshakeError (and nothing else) on any problem. */
export function decodeReply(bytes: Uint8Array): { ephemeralPublic: Uint8Array; sealedIdentity: Uint8Array } {
  return decoding(() => {
    const r = new Reader(bytes);
    expectHeader(r, HandshakeMessageType.Reply, "Reply");
    const ephemeralPublic = r.raw(SEAL_KEY_BYTES).slice();
    const sealedIdentity = r.raw(SEALED_IDENTITY_BYTES).slice();
    r.end();
    return { ephemeralPublic, sealedIdentity };
  });
}

export function encodeConfirm(sealedIdentity: Uint8Array): Uint8Array {
  return header(HandshakeMessageType.Confirm).raw(fixed(sealedIdentity, SEALED_IDENTITY_BYTES, "sealedIdentity")).finish();
}

/** Parses a Confirm and returns its sealed identity. Throws HandshakeError (and nothing else). */
export function decodeConfirm(bytes: Uint8Array): Uint8Array {
  return decoding(() => {
    const r = new Reader(bytes);
    expectHeader(r, HandshakeMessageType.Confirm, "Confirm");
    const sealed = r.raw(SEALED_IDENTITY_BYTES).slice();
    r.end();
    return sealed;
  });
}

/** Who is at the other end of a link: the person (a contact card) and the device that proved itself. */
export interface LinkPeer extends ContactCard {
  /** The device key that signed the handshake (the person key itself on a person's first device). */
  device: Uint8Array;
}

const NO_CERTIFICATE = new Uint8Array(SIGNATURE_BYTES);

/** raw32 person | raw32 seal key | string name | string home | raw32 device | raw64 cert | zeros. */
export function encodeIdentityBlock(card: ContactCard, device: Uint8Array = card.signPublicKey, certificate: Uint8Array = NO_CERTIFICATE): Uint8Array {
  const body = new Writer()
    .raw(fixed(card.signPublicKey, SIGN_PUBLIC_BYTES, "signPublicKey"))
    .raw(fixed(card.sealPublicKey, SEAL_KEY_BYTES, "sealPublicKey"))
    .string(card.name)
    .string(card.home)
    .raw(fixed(device, SIGN_PUBLIC_BYTES, "device"))
    .raw(fixed(certificate, SIGNATURE_BYTES, "certificate"))
    .finish();
  if (body.length > IDENTITY_BLOCK_BYTES) throw new RangeError(`identity block of ${body.length} bytes is too long`);
  const block = new Uint8Array(IDENTITY_BLOCK_BYTES);
  block.set(body);
  return block;
}

/**
 * Parses and validates an identity block, including the device certificate. Throws HandshakeError
 * (and nothing else) on any problem.
 */
export function decodeIdentityBlock(block: Uint8Array): LinkPeer {
  return decoding(() => {
    if (block.length !== IDENTITY_BLOCK_BYTES)
      throw new HandshakeError(`malformed: identity block of ${block.length} bytes (expected ${IDENTITY_BLOCK_BYTES})`);
    const r = new Reader(block);
    const signPublicKey = r.raw(SIGN_PUBLIC_BYTES).slice();
    const sealPublicKey = r.raw(SEAL_KEY_BYTES).slice();
    const name = r.string(IDENTITY_STRING_MAX);
    const home = r.string(IDENTITY_STRING_MAX);
    const device = r.raw(SIGN_PUBLIC_BYTES).slice();
    const certificate = r.raw(SIGNATURE_BYTES).slice();
    if (equalBytes(device, signPublicKey)) {
      if (!equalBytes(certificate, NO_CERTIFICATE)) throw new HandshakeError("malformed: a first device with a certificate");
    } else if (!verifyDeviceCertificate(signPublicKey, device, certificate)) {
      throw new HandshakeError("the device's certificate is not its person's signature");
    }
    for (const b of r.raw(r.remaining)) if (b !== 0) throw new HandshakeError("malformed: identity padding is not zero");
    let parsed;
    try {
      parsed = parseAddress(`${name}@${home}`);
    } catch (e) {
      if (e instanceof AddressError) throw new HandshakeError(`bad address in identity: ${e.message}`);
      throw e;
    }
    if (parsed.name !== name || parsed.home !== home)
      throw new HandshakeError(`bad address in identity: "${name}@${home}" is not in canonical form`);
    return { name, home, signPublicKey, sealPublicKey, device };
  });
}

// ---- the key schedule (exported for tests that play a misbehaving peer) ----

export interface HandshakeKeys {
  /** sha256("pigeon-handshake-v5" || Hello || Reply's first 34 bytes): both ephemeral keys as sent. */
  h0: Uint8Array;
  /** HKDF-Extract(h0, dh || psk): the root of every key of this connection. */
  prk: Uint8Array;
  /** Seals the listener's identity block and proof. */
  listenerKey: Uint8Array;
  /** Seals the dialer's identity block and proof. */
  dialerKey: Uint8Array;
}

/**
 * Keys from the two ephemeral keys as sent, the X25519 result between them and the link secret the
 * listener found proven (32 zero bytes for none).
 */
export function handshakeKeys(hello: Uint8Array, replyHead: Uint8Array, dh: Uint8Array, psk: Uint8Array = NO_SECRET): HandshakeKeys {
  const h0 = sha256(LABEL, hello, replyHead);
  const prk = hkdfExtract(h0, concat([dh, fixed(psk, 32, "psk")]));
  return {
    h0,
    prk,
    listenerKey: hkdfExpand(prk, LISTENER_KEY_INFO, KEY_BYTES),
    dialerKey: hkdfExpand(prk, DIALER_KEY_INFO, KEY_BYTES),
  };
}

/** tL = sha256("pigeon-handshake-v5" || h0 || listener identity block): what the listener signs. */
export function listenerTranscript(h0: Uint8Array, listenerBlock: Uint8Array): Uint8Array {
  return sha256(LABEL, h0, listenerBlock);
}

/** tD = sha256("pigeon-handshake-v5" || tL || sigL || dialer identity block): what the dialer signs. */
export function dialerTranscript(tL: Uint8Array, listenerSignature: Uint8Array, dialerBlock: Uint8Array): Uint8Array {
  return sha256(LABEL, tL, listenerSignature, dialerBlock);
}

/** The Session's transcript: sha256("pigeon-handshake-v5" || tD || sigD). */
export function finalTranscript(tD: Uint8Array, dialerSignature: Uint8Array): Uint8Array {
  return sha256(LABEL, tD, dialerSignature);
}

/** The bytes a side signs: "pigeon-proof-v5" || role byte || its transcript hash. */
export function proofMessage(signer: HandshakeRole, transcript: Uint8Array): Uint8Array {
  const out = new Uint8Array(PROOF_LABEL.length + 1 + transcript.length);
  out.set(PROOF_LABEL, 0);
  out[PROOF_LABEL.length] = signer === "dialer" ? ROLE_DIALER : ROLE_LISTENER;
  out.set(transcript, PROOF_LABEL.length + 1);
  return out;
}

/** secretbox(key, nonce 0, identity block || signature). */
export function sealIdentity(key: Uint8Array, block: Uint8Array, signature: Uint8Array): Uint8Array {
  return secretboxWithNonce(key, ZERO_NONCE, concat([fixed(block, IDENTITY_BLOCK_BYTES, "block"), fixed(signature, SIGNATURE_BYTES, "signature")]));
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

// ---- the state machine ----

/** Fixed randomness, for test vectors only. Omitted fields are random. */
export interface HandshakeRandomness {
  /** X25519 secret key of the ephemeral pair (32 bytes). */
  ephemeralSecretKey?: Uint8Array;
}

/**
 * Whom a laptop shows who it is (docs/protocol.md, "Link handshake"). Asked afresh at every
 * handshake: a laptop joins a school, a pairing window opens and closes.
 */
export interface LinkTrust {
  /**
   * Secrets (32 bytes each) this laptop shares with laptops it may never have met: its school's link
   * secret, an open pairing window's. As the dialer it proves the first two.
   */
  secrets(): readonly Uint8Array[];
  /** Whether it shows itself to a laptop that proves none of them (true for a laptop in no school). */
  showToStrangers(): boolean;
}

/** The trust of a laptop that shares no secret and shows itself to anyone nearby. */
export const OPEN_TRUST: LinkTrust = { secrets: () => [], showToStrangers: () => true };

export interface HandshakeOptions extends HandshakeRandomness {
  trust?: LinkTrust;
}

/** What to do after feeding a message: send `reply` (if any); the link is ready once `session` is set. */
export interface HandshakeStep {
  reply?: Uint8Array;
  session?: Session;
}

export interface Handshake {
  readonly role: HandshakeRole;
  /**
   * The dialer's Hello: send it as soon as the connection opens. Undefined for the listener, which
   * says nothing until it has the dialer's Hello.
   */
  readonly opening: Uint8Array | undefined;
  /**
   * Feeds the peer's next handshake message. The listener answers a Hello with a Reply, and has the
   * session after the Confirm; the dialer answers the Reply with a Confirm and has the session at
   * once (it checked the listener's proof before revealing itself). Throws HandshakeError (and
   * nothing else) on any problem, after which the handshake is dead.
   */
  receive(bytes: Uint8Array): HandshakeStep;
}

export interface Session {
  /** The other side: its device proven by its signature over the transcript, its person by the certificate. */
  readonly peer: LinkPeer;
  /** Whether the link was made under a secret both hold (the school's, a pairing code's), not as strangers. */
  readonly shared: boolean;
  readonly role: HandshakeRole;
  /** sha256 transcript of the whole handshake; identical on both sides. */
  readonly transcript: Uint8Array;
  /** Encrypts the next outgoing frame. */
  seal(plaintext: Uint8Array): Uint8Array;
  /**
   * Decrypts the next incoming frame. Throws HandshakeError if it does not open (tampered, dropped,
   * reordered or replayed); after that the session is dead and every later call throws too.
   */
  open(frame: Uint8Array): Uint8Array;
}

export function startHandshake(identity: Identity, role: HandshakeRole, options: HandshakeOptions = {}): Handshake {
  const trust = options.trust ?? OPEN_TRUST;
  const ephemeral = generateSealingKeyPair(options.ephemeralSecretKey);
  const myBlock = encodeIdentityBlock(
    { name: identity.name, home: identity.home, signPublicKey: identity.person, sealPublicKey: identity.sealing.publicKey },
    identity.signing.publicKey,
    identity.certificate ?? NO_CERTIFICATE,
  );
  // the dialer proves the secrets it holds now (at most two); the listener checks against its own
  const proved = role === "dialer" ? trust.secrets().slice(0, HELLO_PROOFS) : [];
  const filler = hmacSha256(ephemeral.secretKey, utf8("pigeon-hello-filler-v5"));
  const hello = role === "dialer" ? encodeHello(ephemeral.publicKey, proved, filler) : undefined;
  let state: "awaiting-hello" | "awaiting-reply" | "awaiting-confirm" | "hidden" | "done" | "failed" =
    role === "dialer" ? "awaiting-reply" : "awaiting-hello";
  // the listener's memory between its Reply and the dialer's Confirm
  let pending: { keys: HandshakeKeys; tL: Uint8Array; sigL: Uint8Array; shared: boolean } | undefined;

  const fail = (reason: string): never => {
    state = "failed";
    throw new HandshakeError(reason);
  };
  const guarded = <T>(f: () => T): T => {
    try {
      return f();
    } catch (e) {
      state = "failed";
      if (e instanceof HandshakeError) throw e;
      throw new HandshakeError(`malformed: ${e instanceof Error ? e.message : String(e)}`);
    }
  };
  const dhWith = (peerEphemeral: Uint8Array): Uint8Array =>
    x25519(peerEphemeral, ephemeral.secretKey) ?? fail("bad ephemeral key (a low-order point)");
  /** Opens a sealed identity, checks who it is and its proof; returns the card and the signature. */
  const openIdentity = (key: Uint8Array, sealed: Uint8Array, who: HandshakeRole, transcriptOf: (block: Uint8Array) => Uint8Array) =>
    checkIdentity(secretboxOpenWithNonce(key, ZERO_NONCE, sealed) ?? fail(`the ${who}'s identity did not open (not sealed for this connection)`), who, transcriptOf);
  const checkIdentity = (plain: Uint8Array, who: HandshakeRole, transcriptOf: (block: Uint8Array) => Uint8Array) => {
    const block = plain.subarray(0, IDENTITY_BLOCK_BYTES);
    const signature = plain.slice(IDENTITY_BLOCK_BYTES);
    const card = decodeIdentityBlock(block);
    if (equalBytes(card.device, identity.signing.publicKey)) fail("talking to ourselves");
    const t = transcriptOf(block);
    if (!verify(card.device, proofMessage(who, t), signature)) fail("bad signature");
    return { card, signature, t };
  };

  const onHello = (bytes: Uint8Array): HandshakeStep => {
    const parsed = decodeHello(bytes);
    const dh = dhWith(parsed.ephemeralPublic);
    const replyHead = header(HandshakeMessageType.Reply).raw(ephemeral.publicKey).finish();
    const psk = provenSecret(parsed, trust.secrets());
    if (!psk && !trust.showToStrangers()) {
      // a Reply of the same length that opens under no key: the dialer learns nothing, not even that
      // this laptop is hiding rather than broken, and an observer sees an ordinary handshake
      state = "hidden";
      return { reply: concat([replyHead, randomBytes(SEALED_IDENTITY_BYTES)]) };
    }
    const keys = handshakeKeys(bytes, replyHead, dh, psk);
    const tL = listenerTranscript(keys.h0, myBlock);
    const sigL = sign(identity.signing.seed, proofMessage("listener", tL));
    pending = { keys, tL, sigL, shared: psk !== undefined };
    state = "awaiting-confirm";
    return { reply: encodeReply(ephemeral.publicKey, sealIdentity(keys.listenerKey, myBlock, sigL)) };
  };

  const onReply = (bytes: Uint8Array): HandshakeStep => {
    const { ephemeralPublic, sealedIdentity } = decodeReply(bytes);
    const dh = dhWith(ephemeralPublic);
    const head = bytes.subarray(0, HEADER_BYTES + SEAL_KEY_BYTES);
    // the listener sealed its identity under the secret it found proven, or none: try each we proved
    let opened: { keys: HandshakeKeys; plain: Uint8Array; shared: boolean } | undefined;
    for (const psk of [...proved, NO_SECRET]) {
      const keys = handshakeKeys(hello!, head, dh, psk);
      const plain = secretboxOpenWithNonce(keys.listenerKey, ZERO_NONCE, sealedIdentity);
      if (plain) {
        opened = { keys, plain, shared: psk !== NO_SECRET };
        break;
      }
    }
    if (!opened) fail("the listener did not show who it is (it shows itself only to laptops that share its school or a pairing code)");
    const { keys, plain, shared } = opened!;
    const listener = checkIdentity(plain, "listener", (block) => listenerTranscript(keys.h0, block));
    if (!shared && !trust.showToStrangers()) fail(`${listener.card.name}@${listener.card.home} shares no school or pairing code with us: we do not show who we are`);
    // the listener is proven: only now does the dialer say who it is
    const tD = dialerTranscript(listener.t, listener.signature, myBlock);
    const sigD = sign(identity.signing.seed, proofMessage("dialer", tD));
    const confirm = encodeConfirm(sealIdentity(keys.dialerKey, myBlock, sigD));
    state = "done";
    return { reply: confirm, session: makeSession(listener.card, "dialer", keys.prk, finalTranscript(tD, sigD), shared) };
  };

  const onConfirm = (bytes: Uint8Array): HandshakeStep => {
    const sealed = decodeConfirm(bytes);
    const { keys, tL, sigL, shared } = pending!;
    const dialer = openIdentity(keys.dialerKey, sealed, "dialer", (block) => dialerTranscript(tL, sigL, block));
    pending = undefined;
    state = "done";
    return { session: makeSession(dialer.card, "listener", keys.prk, finalTranscript(dialer.t, dialer.signature), shared) };
  };

  return {
    role,
    opening: hello,
    receive(bytes) {
      switch (state) {
        case "awaiting-hello":
          return guarded(() => onHello(bytes));
        case "awaiting-reply":
          return guarded(() => onReply(bytes));
        case "awaiting-confirm":
          return guarded(() => onConfirm(bytes));
        case "hidden":
          return fail("the dialer proved no school or pairing code we share: it was not shown who we are");
        case "done":
          return fail("handshake message after the handshake finished");
        case "failed":
          return fail("handshake already failed");
      }
    },
  };
}

function makeSession(peer: LinkPeer, role: HandshakeRole, prk: Uint8Array, transcript: Uint8Array, shared: boolean): Session {
  const d2l = hkdfExpand(prk, concat([D2L_INFO, transcript]), KEY_BYTES);
  const l2d = hkdfExpand(prk, concat([L2D_INFO, transcript]), KEY_BYTES);
  const sendKey = role === "dialer" ? d2l : l2d;
  const receiveKey = role === "dialer" ? l2d : d2l;
  let sent = 0;
  let received = 0;
  let dead = false;
  return {
    peer,
    shared,
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

function header(type: HandshakeMessageType): Writer {
  return new Writer().u8(HANDSHAKE_VERSION).u8(type);
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
