// A person's keyring: which devices are theirs, which are revoked, and the person's current sealing
// key, as one statement signed by the person key (only the first device holds it). Each new keyring
// has a higher serial; revocations are repeated in every later keyring and are permanent for anyone
// who saw them, so keyrings received in any order converge. The current sealing secret travels inside,
// boxed to each listed device's own sealing key, so a rotation (after a revocation) reaches the
// remaining devices through carriers without the revoked one learning it.
//
// Statement envelope (kind 4), docs/identity.md:
//   conversation = keyringTopic(person) | segment = serial | author = person | no recipients
//   payload = u8 type=1 | varint n | n x (raw32 device key | raw32 device sealing key)
//           | varint m | m x raw32 revoked device key | raw32 person sealing key
//           | raw32 box sender key (X25519, one-off) | n x (varint len + box of the sealing secret)
// Pairing (a new device joins): pairingRequest / pairingGrant, MACed with the short code both users see.
import { concat, DecodeError, equalBytes, Reader, toHex, utf8, Writer } from "./bytes.js";
import { boxOpen, boxSeal, generateSealingKeyPair, hkdfExpand, hkdfExtract, hmacSha256, randomBytes, sha256, type SealingKeyPair } from "./crypto.js";
import { EnvelopeError, EnvelopeKind, signEnvelope, verifyEnvelope, type Envelope } from "./envelope.js";
import { base32, deviceSealing, generateIdentity, holdsPersonKey, parseAddress, verifyDeviceCertificate, type Identity } from "./identity.js";

export const STATEMENT_KEYRING = 1;
export const MAX_DEVICES = 32;
/** Keyrings live long: a laptop that was away a whole term still learns of a revocation. */
export const KEYRING_LIFETIME_SECONDS = 365 * 24 * 3600;
const NO_KEY = new Uint8Array(8);

export class KeyringError extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = "KeyringError";
  }
}

export interface KeyringDevice {
  key: Uint8Array;
  sealKey: Uint8Array;
}

export interface Keyring {
  person: Uint8Array;
  serial: number;
  devices: KeyringDevice[];
  revoked: Uint8Array[];
  sealPublicKey: Uint8Array;
  /** The one-off X25519 key the boxes are sealed from. */
  boxSender: Uint8Array;
  /** The sealing secret, boxed to devices[i].sealKey. */
  boxes: Uint8Array[];
}

/** The 16-byte topic every keyring of `person` travels under. */
export function keyringTopic(person: Uint8Array): Uint8Array {
  return sha256(utf8("pigeon-keyring-v1"), person).subarray(0, 16);
}

/**
 * Signs a keyring (on the device holding the person key). `sealing` is the person's sealing key pair
 * to announce (a fresh one after a revocation); the revoked list must include every earlier revocation.
 */
export function makeKeyring(
  holder: Identity,
  k: { serial: number; devices: KeyringDevice[]; revoked: Uint8Array[]; sealing: SealingKeyPair; created: number },
): Envelope {
  if (!holdsPersonKey(holder)) throw new KeyringError("only the device holding the person key signs its keyring");
  if (k.devices.length === 0 || k.devices.length > MAX_DEVICES) throw new KeyringError(`a keyring lists 1 to ${MAX_DEVICES} devices`);
  if (k.devices.some((d) => k.revoked.some((r) => equalBytes(r, d.key)))) throw new KeyringError("a device cannot be both listed and revoked");
  const sender = generateSealingKeyPair();
  const w = new Writer().u8(STATEMENT_KEYRING).varint(k.devices.length);
  for (const d of k.devices) w.raw(d.key).raw(d.sealKey);
  w.varint(k.revoked.length);
  for (const r of k.revoked) w.raw(r);
  w.raw(k.sealing.publicKey).raw(sender.publicKey);
  for (const d of k.devices) w.bytes(boxSeal(k.sealing.secretKey, d.sealKey, sender.secretKey));
  return signEnvelope(
    holder,
    {
      kind: EnvelopeKind.Statement,
      conversation: keyringTopic(holder.person),
      segment: k.serial,
      recipients: [],
      created: k.created,
      lifetime: KEYRING_LIFETIME_SECONDS,
      keyId: NO_KEY,
    },
    w.finish(),
  );
}

/** True for a statement envelope that claims to be a keyring (cheap: no signature check). */
export function isKeyring(env: Envelope): boolean {
  return env.kind === EnvelopeKind.Statement && env.payload[0] === STATEMENT_KEYRING && equalBytes(env.conversation, keyringTopic(env.author));
}

/** Checks and reads a keyring statement. Throws KeyringError with a reason a log can show. */
export function readKeyring(env: Envelope): Keyring {
  if (env.kind !== EnvelopeKind.Statement) throw new KeyringError("not a statement");
  if (!verifyEnvelope(env) || env.device) throw new KeyringError("keyring not signed by the person key");
  if (!equalBytes(env.conversation, keyringTopic(env.author))) throw new KeyringError("keyring under another person's topic");
  if (env.recipients.length !== 0) throw new KeyringError("a keyring names no recipients");
  try {
    const r = new Reader(env.payload);
    if (r.u8() !== STATEMENT_KEYRING) throw new KeyringError("not a keyring statement");
    const n = r.varint();
    if (n === 0 || n > MAX_DEVICES) throw new KeyringError(`keyring lists ${n} devices`);
    const devices: KeyringDevice[] = [];
    for (let i = 0; i < n; i++) devices.push({ key: r.raw(32).slice(), sealKey: r.raw(32).slice() });
    const m = r.varint();
    if (m > 1024) throw new KeyringError(`keyring revokes ${m} devices`);
    const revoked: Uint8Array[] = [];
    for (let i = 0; i < m; i++) revoked.push(r.raw(32).slice());
    const sealPublicKey = r.raw(32).slice();
    const boxSender = r.raw(32).slice();
    const boxes: Uint8Array[] = [];
    for (let i = 0; i < n; i++) boxes.push(r.bytes(128).slice());
    r.end();
    if (!devices.some((d) => equalBytes(d.key, env.author))) throw new KeyringError("keyring does not list the person's first device");
    if (devices.some((d) => revoked.some((x) => equalBytes(x, d.key)))) throw new KeyringError("keyring lists a revoked device");
    return { person: env.author, serial: env.segment, devices, revoked, sealPublicKey, boxSender, boxes };
  } catch (e) {
    if (e instanceof DecodeError) throw new KeyringError(`damaged keyring: ${e.message}`);
    if (e instanceof EnvelopeError) throw new KeyringError(e.reason);
    throw e;
  }
}

/** This device's copy of the person's sealing key from a keyring, or null if it is not listed there. */
export function sealingFromKeyring(k: Keyring, me: Identity): SealingKeyPair | null {
  const i = k.devices.findIndex((d) => equalBytes(d.key, me.signing.publicKey));
  if (i < 0 || !equalBytes(k.person, me.person)) return null;
  const secret = boxOpen(k.boxes[i]!, k.boxSender, deviceSealing(me).secretKey);
  if (!secret || secret.length !== 32) return null;
  const pair = generateSealingKeyPair(secret);
  return equalBytes(pair.publicKey, k.sealPublicKey) ? pair : null;
}

// ---- pairing: a new device joins a person, both on the same network ----
//
// The holder of the person key opens a pairing window and shows a short code (60 random bits, base32,
// "abcd-efgh-ijkl"); the user types it on the new device. Over an authenticated link between the two
// devices (each proved its device key in the handshake), the new device sends
//   request = u8 version=1 | raw32 HMAC(code, "pigeon-pair-request-v1" ‖ new device key ‖ holder device key)
// and the holder answers
//   grant = u8 version=1 | string name | string home | raw32 person | raw64 certificate
//         | raw32 sealing secret | varint k | k x raw32 earlier sealing secrets | string card
//         [| string school enrolment token]
//         | raw32 HMAC(code, "pigeon-pair-grant-v1" ‖ everything before it ‖ new device key)
// Both MACs bind the code to the two device keys the handshake proved, so a laptop that does not know
// the code learns nothing and can neither pair itself nor hand a device a false person.

export const PAIRING_CODE_CHARS = 12;

export class PairingError extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = "PairingError";
  }
}

export function newPairingCode(): string {
  const s = base32(randomBytes(8)).slice(0, PAIRING_CODE_CHARS);
  return `${s.slice(0, 4)}-${s.slice(4, 8)}-${s.slice(8, 12)}`;
}

/**
 * A pairing code's link secret: the two devices prove it to each other in the handshake, so that a
 * device that shows itself only to its schoolmates still shows itself to the new device being paired.
 */
export function pairingLinkSecret(code: string): Uint8Array {
  return hkdfExpand(hkdfExtract(utf8("pigeon-pairing-link-v5"), utf8(normalPairingCode(code))), utf8("link"), 32);
}

/** Normalises what a user typed ("ABCD EFGH-ijkl" → "abcdefghijkl"); throws PairingError if it cannot be a code. */
export function normalPairingCode(typed: string): string {
  const s = typed.toLowerCase().replace(/[\s-]/g, "");
  if (!/^[a-z2-7]{12}$/.test(s)) throw new PairingError("a pairing code is 12 letters and digits, like abcd-efgh-ijkl");
  return s;
}

export function pairingRequest(code: string, newDevice: Uint8Array, holderDevice: Uint8Array): Uint8Array {
  const mac = hmacSha256(utf8(normalPairingCode(code)), utf8("pigeon-pair-request-v1"), newDevice, holderDevice);
  return concat([Uint8Array.of(1), mac]);
}

export function checkPairingRequest(request: Uint8Array, code: string, newDevice: Uint8Array, holderDevice: Uint8Array): boolean {
  return request.length === 33 && equalBytes(request, pairingRequest(code, newDevice, holderDevice));
}

export interface PairingGrant {
  name: string;
  home: string;
  person: Uint8Array;
  certificate: Uint8Array;
  sealing: SealingKeyPair;
  previousSealing: SealingKeyPair[];
  card: string;
  /** The person's school enrolment token, when enrolled: the new device belongs to the school too. */
  enrolment?: string;
}

export function encodePairingGrant(code: string, g: PairingGrant, newDevice: Uint8Array): Uint8Array {
  const w = new Writer().u8(1).string(g.name).string(g.home).raw(g.person).raw(g.certificate).raw(g.sealing.secretKey);
  w.varint(g.previousSealing.length);
  for (const k of g.previousSealing) w.raw(k.secretKey);
  w.string(g.card);
  if (g.enrolment) w.string(g.enrolment);
  const body = w.finish();
  return concat([body, hmacSha256(utf8(normalPairingCode(code)), utf8("pigeon-pair-grant-v1"), body, newDevice)]);
}

/** Reads a grant for this new device; throws PairingError unless it is intact, for us, and MACed with the code. */
export function decodePairingGrant(bytes: Uint8Array, code: string, newDevice: Uint8Array): PairingGrant {
  if (bytes.length < 33) throw new PairingError("damaged pairing grant");
  const body = bytes.subarray(0, bytes.length - 32);
  const mac = hmacSha256(utf8(normalPairingCode(code)), utf8("pigeon-pair-grant-v1"), body, newDevice);
  if (!equalBytes(mac, bytes.subarray(bytes.length - 32))) throw new PairingError("the pairing grant does not match the code (another laptop, or a typo)");
  try {
    const r = new Reader(body);
    if (r.u8() !== 1) throw new PairingError("unknown pairing grant version");
    const name = r.string(64);
    const home = r.string(64);
    parseAddress(`${name}@${home}`);
    const person = r.raw(32).slice();
    const certificate = r.raw(64).slice();
    const sealing = generateSealingKeyPair(r.raw(32).slice());
    const k = r.varint();
    if (k > 64) throw new PairingError("too many earlier sealing keys");
    const previousSealing: SealingKeyPair[] = [];
    for (let i = 0; i < k; i++) previousSealing.push(generateSealingKeyPair(r.raw(32).slice()));
    const card = r.string(1024);
    const enrolment = r.remaining > 0 ? r.string(4096) : undefined;
    r.end();
    if (!verifyDeviceCertificate(person, newDevice, certificate)) throw new PairingError("the certificate in the grant is not for this device");
    return { name, home, person, certificate, sealing, previousSealing, card, ...(enrolment ? { enrolment } : {}) };
  } catch (e) {
    if (e instanceof PairingError) throw e;
    throw new PairingError(`damaged pairing grant (${(e as Error).message})`);
  }
}

/** The identity a new device takes on from a grant: the person's, signing with its own device key. */
export function identityFromGrant(newDevice: Identity, g: PairingGrant): Identity {
  return {
    name: g.name,
    home: g.home,
    person: g.person,
    signing: newDevice.signing,
    sealing: g.sealing,
    certificate: g.certificate,
    ...(g.previousSealing.length ? { previousSealing: g.previousSealing } : {}),
    card: g.card,
  };
}

/**
 * A device waiting to be paired: its own keys, no person yet (shown as "new-device@local" on links).
 * Its handshake's sealing key is its device sealing key, which the keyring then lists.
 */
export function newDeviceIdentity(): Identity {
  const id = generateIdentity("new-device");
  return { ...id, sealing: deviceSealing(id) };
}

/** Hex of a device key, for logs and lists. */
export function deviceId(key: Uint8Array): string {
  return toHex(sha256(key).subarray(0, 4));
}
