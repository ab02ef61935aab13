// What a laptop learns from its own relay point's announcements (which villages its mail can go to,
// and the way): only from the relay point its school certified, never from a classmate posing as one.
import { describe, expect, it } from "vitest";
import { announcementStatement, decodeEnvelope, generateIdentity, generateSchool, issueRelayCertificate, villagesAnnounced } from "./index.js";
import { generateSigningKeyPair } from "./crypto.js";

const T0 = 1_800_000_000_000;

describe("villages a laptop learns from its relay point", () => {
  const school = generateSchool("kisumu-primary");
  const key = generateSigningKeyPair();
  const cert = issueRelayCertificate(school, key.publicKey);
  const entries = [
    { dest: "siaya-primary", seq: 3, cost: 7200, hops: 0, via: "siaya-primary" },
    { dest: "bondo-primary", seq: 9, cost: 30_000, hops: 1, via: "siaya-primary" },
  ];

  it("reads the ways its own relay point announces, checked with its school's key", () => {
    const env = announcementStatement(key, cert, 5, T0, 3600, entries);
    expect(villagesAnnounced(env, "kisumu-primary", school.signing.publicKey)).toEqual([
      { dest: "siaya-primary", via: "siaya-primary", cost: 7200, sent: T0 },
      { dest: "bondo-primary", via: "siaya-primary", cost: 30_000, sent: T0 },
    ]);
    // another village's relay point says nothing about where this laptop's mail goes
    expect(villagesAnnounced(env, "siaya-primary", school.signing.publicKey)).toBeUndefined();
  });

  it("ignores a laptop posing as the relay point: its own key, or a school of its own with the same home", () => {
    const laptop = generateIdentity("mallory", "kisumu-primary");
    const stolen = announcementStatement(laptop.signing, { ...cert, relayKey: laptop.signing.publicKey }, 6, T0, 3600, entries);
    expect(villagesAnnounced(stolen, "kisumu-primary", school.signing.publicKey)).toBeUndefined();
    const selfMade = generateSchool("kisumu-primary");
    const fake = announcementStatement(laptop.signing, issueRelayCertificate(selfMade, laptop.signing.publicKey), 6, T0, 3600, entries);
    expect(villagesAnnounced(fake, "kisumu-primary", school.signing.publicKey)).toBeUndefined();
    // a changed announcement no longer verifies
    const real = announcementStatement(key, cert, 7, T0, 3600, entries);
    const bytes = Uint8Array.from(real.bytes);
    const at = Buffer.from(real.bytes).indexOf(Buffer.from(real.payload)) + real.payload.length - 5; // in the last route
    bytes[at] ^= 1;
    expect(villagesAnnounced(decodeEnvelope(bytes), "kisumu-primary", school.signing.publicKey)).toBeUndefined();
  });
});
