import { describe, expect, it } from "vitest";
import { admitEnvelope, type AdmissionContext } from "./admission.js";
import { appendMessage, conversationId, emptySegment } from "./conversation.js";
import { decodeEnvelope, EnvelopeError, openKeyEnvelope, sealChange, sealKey, newConversationKey, verifyEnvelope } from "./envelope.js";
import { certifyDevice, contactCard, deviceSealing, generateIdentity, keyId, newActorId, parseIdentityFile, serializeIdentity, type Identity } from "./identity.js";
import { generateSealingKeyPair } from "./crypto.js";
import {
  checkPairingRequest, decodePairingGrant, encodePairingGrant, identityFromGrant, KeyringError, makeKeyring, newDeviceIdentity,
  newPairingCode, pairingRequest, PairingError, readKeyring, sealingFromKeyring,
} from "./keyring.js";

/** Pairs a new device with `first` the way the pairing protocol does, without the network. */
function pair(first: Identity): Identity {
  const fresh = newDeviceIdentity();
  const code = newPairingCode();
  expect(checkPairingRequest(pairingRequest(code, fresh.signing.publicKey, first.signing.publicKey), code, fresh.signing.publicKey, first.signing.publicKey)).toBe(true);
  const grant = encodePairingGrant(
    code,
    { name: first.name, home: first.home, person: first.person, certificate: certifyDevice(first, fresh.signing.publicKey), sealing: first.sealing, previousSealing: [], card: "pigeon1:x" },
    fresh.signing.publicKey,
  );
  return identityFromGrant(fresh, decodePairingGrant(grant, code, fresh.signing.publicKey));
}

function ctxFor(me: Identity, members: Uint8Array[], key: Uint8Array, revoked: Uint8Array[] = []): AdmissionContext {
  return {
    me, members, keys: new Map([[Buffer.from(conversationKeyIdOf(key)).toString("hex"), key]]),
    alreadyOpened: () => false, changeKnown: () => false,
    revoked: (d) => (revoked.some((r) => Buffer.compare(Buffer.from(r), Buffer.from(d)) === 0) ? "revoked by its person" : undefined),
  };
}
import { conversationKeyId as conversationKeyIdOf } from "./envelope.js";

describe("a person's devices", () => {
  const amara = generateIdentity("amara", "kisumu-primary");
  const baraka = generateIdentity("baraka", "kisumu-primary");

  it("a second device signs as the person, and its change is admitted as the person's", () => {
    const tablet = pair(amara);
    expect(tablet.person).toEqual(amara.person);
    expect(tablet.signing.publicKey).not.toEqual(amara.signing.publicKey);
    const members = [amara.person, baraka.person];
    const conv = conversationId(members);
    const key = newConversationKey();
    const { change } = appendMessage(emptySegment(newActorId(tablet.signing.publicKey)), { id: "a".repeat(24), authorKeyId: keyId(amara.person), hlc: "x", sentAt: 1, body: "hi" });
    const env = sealChange(tablet, { conversation: conv, segment: 0, recipients: [baraka.person], created: 1 }, key, change);
    expect(env.author).toEqual(amara.person);
    expect(env.device?.key).toEqual(tablet.signing.publicKey);
    const back = decodeEnvelope(env.bytes);
    expect(verifyEnvelope(back)).toBe(true);
    expect(admitEnvelope(back, ctxFor(baraka, members, key)).status).toBe("change");
    // the same change from a revoked device is refused with the reason
    const refused = admitEnvelope(back, ctxFor(baraka, members, key, [tablet.signing.publicKey]));
    expect(refused).toMatchObject({ status: "rejected", reason: "signed by a revoked device (revoked by its person)" });
    // a message claiming the device as its author (not the person) is refused
    const { change: wrong } = appendMessage(emptySegment(newActorId(tablet.signing.publicKey)), { id: "b".repeat(24), authorKeyId: keyId(tablet.signing.publicKey), hlc: "x", sentAt: 1, body: "hi" });
    const env2 = sealChange(tablet, { conversation: conv, segment: 0, recipients: [baraka.person], created: 1 }, key, wrong);
    expect(admitEnvelope(env2.bytes, ctxFor(baraka, members, key))).toMatchObject({ status: "rejected", reason: "message claims another author" });
  });

  it("refuses a device certificate signed by the wrong person, and a forged one", () => {
    const mallory = generateIdentity("mallory");
    const stolen = newDeviceIdentity();
    // Mallory certifies her device as amara's: the certificate is hers, not amara's
    const fake: Identity = { ...stolen, name: "amara", home: "kisumu-primary", person: amara.person, certificate: certifyDevice(mallory, stolen.signing.publicKey) };
    const key = newConversationKey();
    const members = [amara.person, baraka.person];
    const { change } = appendMessage(emptySegment(newActorId(stolen.signing.publicKey)), { id: "c".repeat(24), authorKeyId: keyId(amara.person), hlc: "x", sentAt: 1, body: "hi" });
    const env = sealChange(fake, { conversation: conversationId(members), segment: 0, recipients: [baraka.person], created: 1 }, key, change);
    expect(verifyEnvelope(env)).toBe(false);
    expect(admitEnvelope(env.bytes, ctxFor(baraka, members, key))).toMatchObject({ status: "rejected", reason: "forged signature or device certificate" });
    // and a second device's identity file with a certificate that is not the person's is refused on load
    const file = serializeIdentity(fake);
    expect(() => parseIdentityFile(file)).toThrow(/not the person's signature/);
    // a device that was never paired cannot sign as someone else at all
    expect(() => sealChange({ ...stolen, person: amara.person }, { conversation: conversationId(members), segment: 0, recipients: [baraka.person], created: 1 }, key, change)).toThrow(EnvelopeError);
  });

  it("the identity file of a second device round-trips", () => {
    const tablet = pair(amara);
    const back = parseIdentityFile(JSON.parse(JSON.stringify(serializeIdentity(tablet))));
    expect(back.person).toEqual(amara.person);
    expect(back.certificate).toEqual(tablet.certificate);
    expect(back.signing.publicKey).toEqual(tablet.signing.publicKey);
    expect(contactCard(back).signPublicKey).toEqual(amara.person);
  });

  it("every device opens key envelopes sealed to the person, and keeps opening old ones after a rotation", () => {
    const tablet = pair(amara);
    const key = newConversationKey();
    const members = [amara.person, baraka.person];
    const env = sealKey(baraka, { conversation: conversationId(members), recipients: [contactCard(amara)], created: 1 }, key);
    expect(openKeyEnvelope(env, tablet)?.key).toEqual(key);
    expect(openKeyEnvelope(env, amara)?.key).toEqual(key);
    const rotated: Identity = { ...tablet, sealing: generateSealingKeyPair(), previousSealing: [tablet.sealing] };
    expect(openKeyEnvelope(env, rotated)?.key).toEqual(key);
  });
});

describe("the keyring", () => {
  const amara = generateIdentity("amara", "kisumu-primary");
  const dev = (id: Identity) => ({ key: id.signing.publicKey, sealKey: deviceSealing(id).publicKey });

  it("lists devices, revokes, and hands the rotated sealing key only to the devices still listed", () => {
    const tablet = pair(amara);
    const lost = pair(amara);
    const fresh = generateSealingKeyPair();
    const env = makeKeyring(amara, { serial: 2, devices: [dev(amara), dev(tablet)], revoked: [lost.signing.publicKey], sealing: fresh, created: 5 });
    const k = readKeyring(decodeEnvelope(env.bytes));
    expect(k.serial).toBe(2);
    expect(k.devices).toHaveLength(2);
    expect(k.revoked).toEqual([lost.signing.publicKey]);
    expect(sealingFromKeyring(k, tablet)?.secretKey).toEqual(fresh.secretKey);
    expect(sealingFromKeyring(k, amara)?.secretKey).toEqual(fresh.secretKey);
    expect(sealingFromKeyring(k, lost)).toBeNull();
  });

  it("refuses keyrings not signed by the person key, tampered, or listing a revoked device", () => {
    const tablet = pair(amara);
    expect(() => makeKeyring(tablet, { serial: 1, devices: [dev(amara)], revoked: [], sealing: amara.sealing, created: 1 })).toThrow(KeyringError);
    expect(() => makeKeyring(amara, { serial: 1, devices: [dev(amara), dev(tablet)], revoked: [tablet.signing.publicKey], sealing: amara.sealing, created: 1 })).toThrow(/both listed and revoked/);
    const env = makeKeyring(amara, { serial: 1, devices: [dev(amara)], revoked: [], sealing: amara.sealing, created: 1 });
    const bytes = Uint8Array.from(env.bytes);
    bytes[bytes.length - 80] ^= 1;
    expect(() => readKeyring(decodeEnvelope(bytes))).toThrow(/not signed by the person key/);
    // a keyring that leaves out the person's own first device
    const other = generateIdentity("x");
    expect(() => readKeyring(makeKeyring(other, { serial: 1, devices: [dev(tablet)], revoked: [], sealing: amara.sealing, created: 1 }))).toThrow(/first device/);
  });
});

describe("pairing", () => {
  const amara = generateIdentity("amara");
  it("a wrong code is refused both ways, with a reason", () => {
    const fresh = newDeviceIdentity();
    const code = newPairingCode();
    const other = newPairingCode();
    expect(checkPairingRequest(pairingRequest(other, fresh.signing.publicKey, amara.signing.publicKey), code, fresh.signing.publicKey, amara.signing.publicKey)).toBe(false);
    // a request made for another holder does not count here
    expect(checkPairingRequest(pairingRequest(code, fresh.signing.publicKey, generateIdentity("z").signing.publicKey), code, fresh.signing.publicKey, amara.signing.publicKey)).toBe(false);
    const grant = encodePairingGrant(code, { name: "amara", home: "local", person: amara.person, certificate: certifyDevice(amara, fresh.signing.publicKey), sealing: amara.sealing, previousSealing: [], card: "c" }, fresh.signing.publicKey);
    expect(() => decodePairingGrant(grant, other, fresh.signing.publicKey)).toThrow(PairingError);
    expect(() => decodePairingGrant(grant, code, newDeviceIdentity().signing.publicKey)).toThrow(/does not match the code/);
    expect(() => pairingRequest("12", fresh.signing.publicKey, amara.signing.publicKey)).toThrow(/12 letters/);
    // a grant may carry the person's school enrolment token; without one it reads as before
    const withToken = encodePairingGrant(code, { name: "amara", home: "local", person: amara.person, certificate: certifyDevice(amara, fresh.signing.publicKey), sealing: amara.sealing, previousSealing: [], card: "c", enrolment: "pigeon-school1:abc" }, fresh.signing.publicKey);
    expect(decodePairingGrant(withToken, code, fresh.signing.publicKey).enrolment).toBe("pigeon-school1:abc");
    expect(decodePairingGrant(grant, code, fresh.signing.publicKey).enrolment).toBeUndefined();
  });
});
