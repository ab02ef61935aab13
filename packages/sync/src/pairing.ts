// The new device's side of pairing: link to the laptops nearby (or the one named), ask each for the
// person with the code the user typed, and take the first grant that matches it. Nothing else travels
// on these links; the device becomes the person's only when the grant's certificate and MAC check
// (keyring.ts). The holder's side is Devices.answerPairing, reached through the sync engine.
import {
  decodeFrame, encodeFrame, equalBytes, formatAddress, identityFromGrant, decodePairingGrant, normalPairingCode, pairingRequest, PairingError,
  type Identity, type PeerLink,
} from "@pigeon/model";
import { PAIRING_REFUSED_WRONG_CODE } from "./mailbox/devices.js";
import { silentLog, type Log } from "./log.js";
import type { LinkSource, PeerFinder } from "./node.js";

export interface PairOptions {
  /** The device waiting to pair (newDeviceIdentity()): its keys become the new device key. */
  device: Identity;
  /** The code shown on the device that holds the person key. */
  code: string;
  network: LinkSource;
  finders?: PeerFinder[];
  /** Give up after this long (default 2 minutes). */
  timeoutMs?: number;
  log?: Log;
}

/** What pairing gives the new device: its identity, and the person's school enrolment token if any. */
export interface Paired {
  identity: Identity;
  enrolment?: string;
}

/**
 * Resolves with the identity the device takes on (save it as identity.json) and the person's school
 * enrolment token, or rejects with a PairingError that says why (no laptop answered, wrong code).
 */
export function pairDevice(o: PairOptions): Promise<Paired> {
  const code = normalPairingCode(o.code);
  const log = o.log ?? silentLog;
  const finders = o.finders ?? [];
  return new Promise<Paired>((resolve, reject) => {
    let done = false;
    let asked = 0;
    const dialled = new Set<string>();
    const finish = (err: Error | undefined, paired?: Paired) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      o.network.off("link", onLink);
      for (const f of finders) void Promise.resolve(f.stop()).catch(() => {});
      if (err) reject(err);
      else resolve(paired!);
    };
    const onLink = (link: PeerLink) => {
      if (done) return;
      asked++;
      link.onFrame((bytes) => {
        let f;
        try {
          f = decodeFrame(bytes);
        } catch {
          return;
        }
        if (f.type !== "pair-grant") return; // the holder's node also starts syncing: not for us yet
        if (f.grant.length === 1) {
          // a refusal: "no window open here" from any laptop (keep looking), or "wrong code" from the holder
          if (f.grant[0] === PAIRING_REFUSED_WRONG_CODE)
            finish(new PairingError(`${formatAddress(link.peer)} is waiting for another code: check the code it shows (it works for 10 minutes)`));
          link.close("not pairing");
          return;
        }
        // only the device that holds the person key grants (its device key is the person key)
        if (!equalBytes(link.peer.device, link.peer.signPublicKey)) return;
        try {
          const grant = decodePairingGrant(f.grant, code, o.device.signing.publicKey);
          if (!equalBytes(grant.person, link.peer.signPublicKey)) throw new PairingError("the grant names another person than the laptop that sent it");
          log.info(`paired with ${grant.name}@${grant.home}`);
          finish(undefined, { identity: identityFromGrant(o.device, grant), ...(grant.enrolment ? { enrolment: grant.enrolment } : {}) });
        } catch (e) {
          log.warn(`a pairing answer from ${link.description} was refused: ${(e as Error).message}`);
        }
        link.close(done ? "paired" : "pairing refused");
      });
      link.send(encodeFrame({ type: "pair-request", request: pairingRequest(code, o.device.signing.publicKey, link.peer.device) }));
    };
    o.network.on("link", onLink);
    for (const l of o.network.links()) if (!l.closed) onLink(l);
    for (const f of finders) {
      // a pairing device dials every laptop it finds (once): it does not know which one is the person's
      f.on?.("peer", (p) => {
        const address = `${p.host}:${p.port}`;
        if (done || dialled.has(address) || !o.network.dial) return;
        dialled.add(address);
        o.network.dial(p.host, p.port).catch((e: Error) => log.info(`could not reach ${address}: ${e.message}`));
      });
      f.start();
    }
    const timer = setTimeout(
      () =>
        finish(
          new PairingError(
            asked === 0
              ? "no laptop answered: is the other device on the same network, with its pairing code shown?"
              : `${asked} laptop(s) answered, none with this code: check the code shown on the other device (it works for 10 minutes)`,
          ),
        ),
      o.timeoutMs ?? 120_000,
    );
    timer.unref?.();
  });
}
