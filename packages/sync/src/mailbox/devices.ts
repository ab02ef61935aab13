// A person's devices, as this laptop keeps them: pairing a new device (on the device that holds the
// person key), revoking a lost one (a new keyring: the device is listed as revoked and the person's
// sealing key is replaced), and applying the keyrings that arrive, the person's own and its contacts'.
// Revocations are permanent; the newest keyring (highest serial) decides the device list.
import {
  certifyDevice, checkPairingRequest, deviceId, deviceSealing, encodeCard, encodePairingGrant, equalBytes, fingerprint,
  generateSealingKeyPair, holdsPersonKey, KeyringError, makeKeyring, newPairingCode, pairingLinkSecret, readKeyring, sealingFromKeyring, toHex,
  type Envelope, type Keyring, type KeyringDevice, type LinkPeer,
} from "@pigeon/model";
import type { MailboxCore } from "./core.js";
import { MailboxError } from "./types.js";

/** How long a pairing code works, and how many wrong tries close it. */
export const PAIRING_WINDOW_MS = 10 * 60_000;
export const PAIRING_MAX_FAILURES = 5;
/**
 * A one-byte answer instead of a grant (a grant is always longer): no pairing window is open here
 * (any laptop nearby says so), or one is open and the code was wrong (the new device can stop looking).
 */
export const PAIRING_REFUSED_NO_WINDOW = 1;
export const PAIRING_REFUSED_WRONG_CODE = 2;

export interface DeviceView {
  /** Short id to name it by ("pigeon devices revoke 1a2b3c4d"). */
  id: string;
  key: string;
  thisDevice: boolean;
  /** The device that holds the person key (it pairs and revokes the others). */
  holdsPersonKey: boolean;
  revoked?: { reason: string; at: number };
}

export class Devices {
  private window: { code: string; expiresAt: number; failures: number } | undefined;

  /** `enrolment` gives the person's school enrolment token, passed on to a new device in its grant. */
  constructor(private readonly core: MailboxCore, private readonly enrolment: () => string | undefined = () => undefined) {}

  /** The person's devices as the newest keyring lists them (just this one before any pairing), and the revoked ones. */
  list(): DeviceView[] {
    const { core } = this;
    const ring = this.ownKeyring();
    const keys = ring ? ring.devices.map((d) => d.key) : [core.identity.person];
    if (!keys.some((k) => equalBytes(k, core.identity.signing.publicKey))) keys.push(core.identity.signing.publicKey);
    const view = (key: Uint8Array): DeviceView => {
      const r = core.state.revocation(key);
      return {
        id: deviceId(key), key: toHex(key), thisDevice: equalBytes(key, core.identity.signing.publicKey),
        holdsPersonKey: equalBytes(key, core.identity.person), ...(r ? { revoked: { reason: r.reason, at: r.at } } : {}),
      };
    };
    return [...keys.map(view), ...core.state.revokedDevices(core.identity.person).filter((k) => !keys.some((x) => equalBytes(x, k))).map(view)];
  }

  /** Opens a pairing window on the device that holds the person key; the code is shown to the user. */
  openPairing(): { code: string; expiresAt: number } {
    const { core } = this;
    if (!holdsPersonKey(core.identity))
      throw new MailboxError("bad-input", "only the device that holds the person key (the first one) can pair new devices");
    this.window = { code: newPairingCode(), expiresAt: core.now() + PAIRING_WINDOW_MS, failures: 0 };
    core.log.info(`pairing window open until ${new Date(this.window.expiresAt).toISOString()}`);
    return { code: this.window.code, expiresAt: this.window.expiresAt };
  }

  /** The open pairing window's link secret: the new device proves it, so this one shows itself to it. */
  linkSecrets(): Uint8Array[] {
    return this.window && this.pairingOpen() ? [pairingLinkSecret(this.window.code)] : [];
  }

  pairingOpen(): boolean {
    return !!this.window && this.window.expiresAt > this.core.now();
  }

  /**
   * A device asked to join over an authenticated link: if it knows the code, certify it, list it in a
   * new keyring and answer with the grant; otherwise nothing (and a few wrong tries close the window).
   */
  answerPairing(peer: LinkPeer, request: Uint8Array): Promise<Uint8Array> {
    const { core } = this;
    return core.serial(async () => {
      const w = this.window;
      if (!w || w.expiresAt <= core.now() || core.state.revocation(peer.device)) return Uint8Array.of(PAIRING_REFUSED_NO_WINDOW);
      if (!checkPairingRequest(request, w.code, peer.device, core.identity.signing.publicKey)) {
        if (++w.failures >= PAIRING_MAX_FAILURES) {
          this.window = undefined;
          core.log.warn(`pairing window closed after ${PAIRING_MAX_FAILURES} wrong codes`);
        } else core.log.warn(`a device nearby tried to pair with a wrong code`);
        return Uint8Array.of(PAIRING_REFUSED_WRONG_CODE);
      }
      this.window = undefined;
      const certificate = certifyDevice(core.identity, peer.device);
      const ring = this.ownKeyring();
      const devices = ring ? [...ring.devices] : [{ key: core.identity.person, sealKey: deviceSealing(core.identity).publicKey }];
      // a device waiting to pair says its own device sealing key in the handshake (keyring.ts, newDeviceIdentity)
      if (!devices.some((d) => equalBytes(d.key, peer.device))) devices.push({ key: peer.device, sealKey: peer.sealPublicKey });
      this.publish(devices, core.state.revokedDevices(core.identity.person), false);
      // the device was met under its temporary pairing identity: that is nobody to keep
      core.state.removeContact(peer.signPublicKey);
      core.log.info(`paired a new device ${deviceId(peer.device)} with ${core.address}`);
      core.events.emit("changed");
      return encodePairingGrant(
        w.code,
        {
          name: core.identity.name, home: core.identity.home, person: core.identity.person, certificate,
          sealing: core.identity.sealing, previousSealing: core.identity.previousSealing ?? [], card: encodeCard(core.identity),
          ...(this.enrolment() ? { enrolment: this.enrolment()! } : {}),
        },
        peer.device,
      );
    });
  }

  /**
   * Revokes one of the person's devices (a lost or stolen laptop): a new keyring lists it as revoked
   * and carries a new person sealing key to the remaining devices only; every conversation gets a new
   * key before its next message. Contacts that receive the keyring refuse what the device signs.
   */
  revoke(which: string, reason = "lost"): Promise<DeviceView> {
    const { core } = this;
    return core.serial(async () => {
      if (!holdsPersonKey(core.identity)) throw new MailboxError("bad-input", "only the device that holds the person key (the first one) can revoke devices");
      const all = this.list().filter((d) => !d.revoked);
      const typed = which.trim().toLowerCase();
      const matches = all.filter((d) => d.id.startsWith(typed) || d.key.startsWith(typed));
      if (!typed || matches.length === 0) throw new MailboxError("not-found", `no device ${which} (devices: ${all.map((d) => d.id).join(", ")})`);
      if (matches.length > 1) throw new MailboxError("bad-input", `${which} names ${matches.length} devices; type more of its id`);
      const target = matches[0]!;
      if (target.holdsPersonKey) throw new MailboxError("bad-input", "this device holds the person key and cannot revoke itself");
      return this.dropFromKeyring(target, `revoked by its person (${reason.slice(0, 80)})`);
    });
  }

  /**
   * The school revoked one of this person's devices: on the device that holds the person key, take it
   * out of the keyring too (a new person sealing key that it does not get), if it is still listed.
   */
  revokedBySchool(deviceKey: Uint8Array): Promise<DeviceView | undefined> {
    const { core } = this;
    return core.serial(async () => {
      if (!holdsPersonKey(core.identity) || equalBytes(deviceKey, core.identity.person)) return undefined;
      if (!this.ownKeyring()?.devices.some((d) => equalBytes(d.key, deviceKey))) return undefined;
      return this.dropFromKeyring(this.list().find((d) => d.key === toHex(deviceKey))!, "revoked by the school");
    });
  }

  /** Lists the keyring without the device, with a new person sealing key it does not get (in the caller's turn). */
  private dropFromKeyring(target: DeviceView, why: string): DeviceView {
    const { core } = this;
    const ring = this.ownKeyring();
    const devices = (ring?.devices ?? []).filter((d) => toHex(d.key) !== target.key);
    if (!devices.some((d) => equalBytes(d.key, core.identity.person)))
      devices.unshift({ key: core.identity.person, sealKey: deviceSealing(core.identity).publicKey });
    const key = Uint8Array.from(Buffer.from(target.key, "hex"));
    core.state.revokeDevice(key, core.identity.person, why, core.now());
    core.events.emit("device-revoked", key);
    this.publish(devices, core.state.revokedDevices(core.identity.person), true);
    core.log.info(`revoked device ${target.id} of ${core.address}: it gets no new key and what it signs is refused`);
    core.events.emit("changed");
    return this.list().find((d) => d.key === target.key)!;
  }

  /** Why a device may not sign, if it was revoked. */
  revoked(device: Uint8Array): string | undefined {
    return this.core.state.revocation(device)?.reason;
  }

  /**
   * Applies a keyring that arrived (or was stored here). Keyrings of people other than this user and
   * its contacts are only carried. Returns false if it was refused (with the reason logged).
   */
  apply(env: Envelope): boolean {
    const { core } = this;
    let ring: Keyring;
    try {
      ring = readKeyring(env);
    } catch (e) {
      core.log.warn(`refused a keyring from ${fingerprint(env.author)}: ${e instanceof KeyringError ? e.reason : (e as Error).message}`);
      return false;
    }
    const mine = equalBytes(ring.person, core.identity.person);
    const known = core.state.keyring(ring.person);
    let newlyRevoked = 0;
    // revocations count whatever the serial: they are permanent
    for (const d of ring.revoked) {
      if (core.state.revokeDevice(d, ring.person, "revoked by its person", core.now())) {
        newlyRevoked++;
        core.events.emit("device-revoked", d);
      }
    }
    if (known && known.serial >= ring.serial) return true;
    core.state.setKeyring(ring.person, ring.serial, env.id);
    if (!mine) {
      if (core.state.updateSealKey(ring.person, ring.sealPublicKey) || newlyRevoked) {
        // what we write to them from now on is sealed so that the revoked device cannot read it
        if (newlyRevoked) core.state.rekeyWith(ring.person);
      }
      if (newlyRevoked) core.log.info(`${core.addressOf(ring.person)} revoked ${newlyRevoked} device(s); their signatures are refused from now on`);
      return true;
    }
    // our own person's keyring
    if (core.state.revocation(core.identity.signing.publicKey)) {
      core.log.warn("this device was revoked by its person: it receives no new keys and what it signs is refused");
      core.events.emit("changed");
      return true;
    }
    if (!holdsPersonKey(core.identity) && ring.serial > (core.identity.keyringSerial ?? 0)) {
      const sealing = sealingFromKeyring(ring, core.identity);
      if (sealing && !equalBytes(sealing.publicKey, core.identity.sealing.publicKey)) {
        core.identity.previousSealing = [core.identity.sealing, ...(core.identity.previousSealing ?? [])];
        core.identity.sealing = sealing;
        core.state.rekeyAll();
        core.log.info(`this person's sealing key was replaced (keyring ${ring.serial}); new keys are sealed to it`);
      }
      core.identity.keyringSerial = ring.serial;
      core.events.emit("identity", core.identity);
    }
    if (newlyRevoked) core.events.emit("changed");
    return true;
  }

  /** The newest keyring of this user's own person, if any was made or received. */
  private ownKeyring(): Keyring | undefined {
    const k = this.core.state.keyring(this.core.identity.person);
    const env = k && this.core.envelopes.get(k.envelope);
    if (!env) return undefined;
    try {
      return readKeyring(env);
    } catch {
      return undefined;
    }
  }

  /** Signs, stores and applies a new keyring (serial + 1); `rotate` replaces the person's sealing key. */
  private publish(devices: KeyringDevice[], revoked: Uint8Array[], rotate: boolean): void {
    const { core } = this;
    const serial = (core.state.keyring(core.identity.person)?.serial ?? 0) + 1;
    const sealing = rotate ? generateSealingKeyPair() : core.identity.sealing;
    const env = makeKeyring(core.identity, { serial, devices, revoked, sealing, created: core.now() });
    core.storeOwn(env);
    core.state.setKeyring(core.identity.person, serial, env.id);
    if (rotate) {
      core.identity.previousSealing = [core.identity.sealing, ...(core.identity.previousSealing ?? [])];
      core.identity.sealing = sealing;
      core.state.rekeyAll();
    }
    core.identity.keyringSerial = serial;
    core.events.emit("identity", core.identity);
  }
}
