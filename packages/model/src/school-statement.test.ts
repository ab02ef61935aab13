// The directory's travel form: each entry a statement envelope signed by the school key, which a
// laptop of the school opens with the directory key, and which every bad input fails with a reason.
import { describe, expect, it } from "vitest";
import { concat } from "./bytes.js";
import {
  DIRECTORY_LIFETIME_SECONDS, DirectoryError, EnvelopeKind, decodeEnvelope, directoryStatement, directoryTopic, generateIdentity,
  generateSchool, isDirectoryStatement, makeKeyring, readDirectoryStatement, sealEntry, signEnvelope, deviceSealing,
  type DirectoryEntry, type Envelope,
} from "./index.js";

const HOME = "kisumu-primary";
const school = generateSchool(HOME);
const pub = school.signing.publicKey;
const entry: DirectoryEntry = {
  type: "enrol", home: HOME, serial: 3, at: 1_700_000_000_000, personKey: generateIdentity("amara").person, name: "amara", class: "5B kingfishers", role: "student",
};
const read = (env: Envelope) => readDirectoryStatement(decodeEnvelope(env.bytes), pub, school.directoryKey);

describe("directory statements", () => {
  it("carry one sealed entry under the school's topic, with its serial, for a year", () => {
    const env = directoryStatement(school, entry, 1000);
    expect(env.kind).toBe(EnvelopeKind.Statement);
    expect(env.author).toEqual(pub);
    expect(env.device).toBeUndefined();
    expect(env.conversation).toEqual(directoryTopic(pub));
    expect(env.segment).toBe(3);
    expect(env.recipients).toEqual([]);
    expect(env.lifetime).toBe(DIRECTORY_LIFETIME_SECONDS);
    expect(isDirectoryStatement(env, pub)).toBe(true);
    expect(read(env)).toEqual(entry);
    // a carrier sees no name: the payload is sealed
    expect(Buffer.from(env.bytes).includes(Buffer.from("amara"))).toBe(false);
    expect(Buffer.from(env.bytes).includes(Buffer.from("kingfishers"))).toBe(false);
    expect(Buffer.from(env.bytes).includes(Buffer.from("student"))).toBe(false);
  });

  it("refuse another school's statement, one from another author, a forged signature, and a mismatched serial", () => {
    const other = generateSchool(HOME); // same home, another key
    const theirs = directoryStatement(other, entry, 1000);
    expect(isDirectoryStatement(theirs, pub)).toBe(false);
    expect(() => read(theirs)).toThrow("not signed by the school (another author)");

    const forged = Uint8Array.from(directoryStatement(school, entry, 1000).bytes);
    forged[forged.length - 70]! ^= 1; // inside the payload: the signature no longer matches
    expect(() => readDirectoryStatement(decodeEnvelope(forged), pub, school.directoryKey)).toThrow("forged signature");

    // the school's key signs an envelope whose serial is not its entry's
    const moved = signedBySchool(3, concat([Uint8Array.of(2), sealEntry(school, { ...entry, serial: 4 })]));
    expect(() => read(moved)).toThrow("entry 4 travels as entry 3");
    // an entry of another school wrapped by this school's key
    expect(() => read(signedBySchool(3, concat([Uint8Array.of(2), sealEntry(other, entry)])))).toThrow("entry for another school");
    expect(() => read(signedBySchool(3, Uint8Array.of(7, 1, 2)))).toThrow("not a directory entry (statement type 7)");
    expect(() => read(signedBySchool(3, concat([Uint8Array.of(2), new Uint8Array(20)])))).toThrow(DirectoryError);
  });

  it("are not keyrings, and keyrings are not directory entries", () => {
    const person = generateIdentity("amara");
    const ring = makeKeyring(person, {
      serial: 1, devices: [{ key: person.person, sealKey: deviceSealing(person).publicKey }], revoked: [], sealing: person.sealing, created: 1,
    });
    expect(isDirectoryStatement(ring, person.person)).toBe(false);
    expect(() => readDirectoryStatement(ring, person.person, school.directoryKey)).toThrow("another topic");
  });
});

function signedBySchool(segment: number, payload: Uint8Array): Envelope {
  const signer = { name: "school", home: HOME, person: pub, signing: school.signing, sealing: generateIdentity("x").sealing };
  return signEnvelope(
    signer,
    { kind: EnvelopeKind.Statement, conversation: directoryTopic(pub), segment, recipients: [], created: 1, lifetime: 60, keyId: new Uint8Array(8) },
    payload,
  );
}
