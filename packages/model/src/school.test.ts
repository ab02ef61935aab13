// The school's key, directory entries (signed and sealed), the folded directory's rules, vouching,
// and enrolment tokens. Bad inputs are built byte by byte where the encoder would refuse to make them.
import { describe, expect, it } from "vitest";
import { Writer, concat, toHex, utf8 } from "./bytes.js";
import { generateSigningKeyPair, randomBytes, secretboxSeal, sign } from "./crypto.js";
import {
  DirectoryError, decodeEntry, encodeEntry, generateSchool, openEntry, parseSchoolFile, sealEntry, serializeSchool, validClass,
  type DirectoryEntry, type EnrolEntry, type Role, type SchoolKey,
} from "./index.js";

const HOME = "kisumu-primary";
const AT = Date.UTC(2026, 0, 12);
const school = generateSchool(HOME);
const pub = school.signing.publicKey;
const key = () => randomBytes(32);

const enrol = (serial: number, personKey: Uint8Array, name: string, cls = "4A", role: Role = "student"): EnrolEntry => ({
  type: "enrol", home: HOME, serial, at: AT + serial, personKey, name, class: cls, role,
});
const revokePerson = (serial: number, personKey: Uint8Array, reason = "left the school"): DirectoryEntry => ({
  type: "revoke-person", home: HOME, serial, at: AT + serial, personKey, reason,
});
const revokeDevice = (serial: number, deviceKey: Uint8Array, personKey: Uint8Array): DirectoryEntry => ({
  type: "revoke-device", home: HOME, serial, at: AT + serial, deviceKey, personKey,
});

/** A signed entry made byte by byte, for inputs encodeEntry refuses to produce. */
function signedByHand(by: SchoolKey, build: (w: Writer) => Writer): Uint8Array {
  const body = build(new Writer()).finish();
  return concat([body, sign(by.signing.seed, concat([utf8("pigeon-directory-v1"), body]))]);
}
const enrolDetails = (name: string, cls: string, role = 1) => new Writer().raw(key()).string(name).string(cls).u8(role).finish();
const header = (w: Writer, version = 1, type = 1) => w.u8(version).u8(type).string(HOME).varint(7).varint(AT);

describe("the school key", () => {
  it("refuses a home that is not a valid home", () => {
    expect(() => generateSchool("Kisumu Primary")).toThrow(DirectoryError);
  });

  it("round-trips through the key file, and signs as the same school", () => {
    const back = parseSchoolFile(JSON.parse(JSON.stringify(serializeSchool(school))));
    expect(back.home).toBe(HOME);
    expect(back.signing.publicKey).toEqual(pub);
    expect(back.directoryKey).toEqual(school.directoryKey);
    const e = enrol(1, key(), "amara");
    expect(openEntry(sealEntry(back, e), pub, school.directoryKey)).toEqual(e);
  });

  it("refuses a damaged or foreign key file with a clear error", () => {
    const good = serializeSchool(school);
    expect(() => parseSchoolFile(null)).toThrow(/unknown format or version/);
    expect(() => parseSchoolFile({ ...good, version: 2 })).toThrow(/unknown format or version/);
    expect(() => parseSchoolFile({ ...good, home: "Not A Home" })).toThrow(/invalid home/);
    expect(() => parseSchoolFile({ ...good, directoryKey: undefined })).toThrow(/missing keys/);
    expect(() => parseSchoolFile({ ...good, signingSeed: good.signingSeed.slice(4) })).toThrow(/wrong length/);
    expect(() => parseSchoolFile({ ...good, directoryKey: "!" + good.directoryKey.slice(1) })).toThrow(/damaged/);
  });
});

describe("directory entries", () => {
  const person = key();
  const entries: DirectoryEntry[] = [
    enrol(1, person, "amara", "Class 4 Blue", "teacher"),
    revokePerson(2, person, "laptop lost; new key enrolled"),
    revokeDevice(3, key(), person),
  ];

  it("round-trip signed and sealed, for every type", () => {
    for (const e of entries) {
      expect(decodeEntry(encodeEntry(school, e), pub)).toEqual(e);
      const a = sealEntry(school, e);
      const b = sealEntry(school, e);
      expect(toHex(a)).not.toBe(toHex(b)); // a fresh nonce each time
      expect(openEntry(a, pub, school.directoryKey)).toEqual(e);
      expect(openEntry(b, pub, school.directoryKey)).toEqual(e);
    }
  });

  it("have the documented byte layout", () => {
    const p = new Uint8Array(32).fill(0xab);
    const signed = encodeEntry(school, { ...enrol(300, p, "amara", "4A"), at: 5 });
    const hex = (s: string) => toHex(utf8(s));
    expect(toHex(signed.subarray(0, signed.length - 64))).toBe(
      "01" + "01" + "0e" + hex(HOME) + "ac02" + "05" + "2a" + "ab".repeat(32) + "05" + hex("amara") + "02" + hex("4A") + "01",
    );
  });

  it("refuse an entry signed by another key, even one sealed by an enrolled laptop that knows the directory key", () => {
    const forger: SchoolKey = { ...school, signing: generateSigningKeyPair() };
    const forged = encodeEntry(forger, enrol(99, key(), "amara"));
    expect(() => decodeEntry(forged, pub)).toThrow("not signed by the school");
    const sealed = new Writer().u8(1).raw(pub).raw(secretboxSeal(school.directoryKey, forged)).finish();
    expect(() => openEntry(sealed, pub, school.directoryKey)).toThrow("not signed by the school");
  });

  it("refuse an entry sealed for another school, even one with the same home", () => {
    const other = generateSchool(HOME);
    expect(() => openEntry(sealEntry(other, entries[0]!), pub, school.directoryKey)).toThrow("entry for another school");
    expect(() => encodeEntry(generateSchool("nyeri-secondary"), entries[0]!)).toThrow(/entry for another school/);
  });

  it("refuse tampered ciphertext and the wrong directory key as damaged", () => {
    const sealed = sealEntry(school, entries[0]!);
    for (const i of [33, 40, 60, sealed.length - 1]) {
      const bad = Uint8Array.from(sealed);
      bad[i]! ^= 0x01;
      expect(() => openEntry(bad, pub, school.directoryKey)).toThrow(/^damaged/);
    }
    expect(() => openEntry(sealed, pub, randomBytes(32))).toThrow(/^damaged/);
  });

  it("refuse every truncation, sealed or signed, and trailing bytes", () => {
    const sealed = sealEntry(school, entries[0]!);
    for (let n = 0; n < sealed.length; n++)
      expect(() => openEntry(sealed.subarray(0, n), pub, school.directoryKey), `cut at ${n}`).toThrow(DirectoryError);
    const signed = encodeEntry(school, entries[0]!);
    for (let n = 0; n < signed.length; n++) expect(() => decodeEntry(signed.subarray(0, n), pub), `cut at ${n}`).toThrow(/^damaged/);
    expect(() => decodeEntry(concat([signed, Uint8Array.of(0)]), pub)).toThrow(/^damaged \(1 unexpected trailing bytes\)/);
  });

  it("refuse unknown versions and, once the school's signature checks, name an unknown type", () => {
    const sealed = sealEntry(school, entries[0]!);
    sealed[0] = 2;
    expect(() => openEntry(sealed, pub, school.directoryKey)).toThrow("unknown sealed entry version 2");
    expect(() => decodeEntry(signedByHand(school, (w) => header(w, 2).bytes(enrolDetails("amara", "4A"))), pub)).toThrow(
      "unknown entry version 2",
    );
    expect(() => decodeEntry(signedByHand(school, (w) => header(w, 1, 9).bytes(new Uint8Array(5))), pub)).toThrow("unknown entry type 9");
    const forger: SchoolKey = { ...school, signing: generateSigningKeyPair() };
    expect(() => decodeEntry(signedByHand(forger, (w) => header(w, 1, 9).bytes(new Uint8Array(5))), pub)).toThrow("not signed by the school");
  });

  it("refuse bad names, classes with control characters, bad roles, long reasons and bad serials", () => {
    const p = key();
    const bad: [DirectoryEntry, RegExp][] = [
      [enrol(1, p, "Amara!"), /name "Amara!" is not a valid name/],
      [enrol(1, p, "amara", "4A\n"), /class "4A\\n"/],
      [enrol(1, p, "amara", "4\u202eA"), /class/], // a right-to-left override
      [enrol(1, p, "amara", ""), /class/],
      [enrol(1, p, "amara", "x".repeat(33)), /class/],
      [enrol(1, p, "amara", "4A", "head" as Role), /role "head"/],
      [enrol(0, p, "amara"), /serial 0/],
      [enrol(1.5, p, "amara"), /serial 1.5/],
      [enrol(1, p.subarray(0, 31), "amara"), /person key/],
      [revokePerson(1, p, "x".repeat(201)), /reason/],
      [revokePerson(1, p, "bell\u0007"), /reason/],
    ];
    for (const [e, reason] of bad) expect(() => encodeEntry(school, e), JSON.stringify(e.serial)).toThrow(reason);
    // And the same checks on decode, should a school server ever sign such a thing.
    const decode = (name: string, cls: string, role = 1) => () =>
      decodeEntry(signedByHand(school, (w) => header(w).bytes(enrolDetails(name, cls, role))), pub);
    expect(decode("Amara!", "4A")).toThrow(/invalid entry: name "Amara!"/);
    expect(decode("amara", "4\tA")).toThrow(/invalid entry: class "4\\tA"/);
    expect(decode("amara", "4A", 3)).toThrow(/invalid entry: unknown role 3/);
    expect(decode("amara", "4A")).not.toThrow();
  });

  it("validClass takes printable class names, including non-Latin ones", () => {
    expect(["4A", "Class 4 Blue", "Darasa la Nne", "x".repeat(32), "四年级"].every(validClass)).toBe(true);
    expect(["", " 4A", "4A ", "4\u0000A", "4\u200bA", "4\u2028A", "x".repeat(33)].some(validClass)).toBe(false);
  });
});
