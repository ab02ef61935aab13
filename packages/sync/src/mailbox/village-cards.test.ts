// A pen pal in another village (issue 18): a child adds the card of someone of another village, and
// their laptop believes the address only if that village's school vouches for the card's key, checked
// with the school key the child's own school lists for that village (a federation entry). A stranger's
// card naming a child of another village is refused with the reason; nothing else changes.
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { contactCard, decodeCard, encodeCard, generateIdentity, generateSchool, type Identity, type SchoolKey } from "@pigeon/model";
import { fileStorage, Mailbox, MailboxError, type Log } from "../index.js";

const KISUMU = "kisumu-primary";
const SIAYA = "siaya-primary";
const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

function open(identity: Identity, school?: SchoolKey, now?: () => number): Mailbox {
  const dir = mkdtempSync(join(existsSync("/dev/shm") ? "/dev/shm" : tmpdir(), "pigeon-village-cards-"));
  const quiet: Log = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };
  const m = new Mailbox({ identity, storage: fileStorage(dir), log: quiet, ...(school ? { school } : {}), ...(now ? { now } : {}) });
  cleanup.push(async () => {
    await m.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return m;
}

/** Hands every envelope `from` holds to `to`, as a link would. */
async function carry(from: Mailbox, to: Mailbox): Promise<void> {
  for (const { id } of from.envelopes.ids()) await to.receive(from.envelopes.bytesOf(id)!, 1);
}

async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof MailboxError) return e.message;
    throw e;
  }
  throw new Error("expected the card to be refused");
}

/** A village: its school server and laptops enrolled with the tokens it printed. */
function village(home: string) {
  const key = generateSchool(home);
  const server = open(generateIdentity("school", home), key);
  const enrolled = async (name: string, cls: string) => {
    const m = open(generateIdentity(name));
    await m.school.enrol((await server.school.enrolPerson(contactCard(m.identity), { class: cls, role: "student" })).token);
    return m;
  };
  return { key, server, enrolled };
}

/** The card `pigeon card` shows on this laptop (with its school's word once enrolled). */
const cardOf = (m: Mailbox) => encodeCard(m.identity, m.school.ownWord());

describe("cards of another village's people", () => {
  it("a pen pal's card is believed as their school vouches for it; strangers posing as them are refused", async () => {
    const kisumu = village(KISUMU);
    const siaya = village(SIAYA);
    const amara = await kisumu.enrolled("amara", "5B");
    const ben = await siaya.enrolled("ben", "6A");
    // kisumu-primary's relay point exchanges mail with siaya-primary: its laptops learn siaya's school key
    const fed = await kisumu.server.school.publishFederation(new Map([[SIAYA, siaya.key.signing.publicKey]]));
    expect(fed?.type).toBe("federation");
    expect(await kisumu.server.school.publishFederation(new Map([[SIAYA, siaya.key.signing.publicKey]]))).toBeUndefined(); // unchanged
    await carry(kisumu.server, amara);
    expect(amara.school.directory()?.federation()?.villages.has(SIAYA)).toBe(true);

    // a stranger calls themselves ben@siaya-primary: no word of siaya's school on the card
    const stranger = open(generateIdentity("ben", SIAYA));
    expect(await refusal(amara.addContact(decodeCard(cardOf(stranger))))).toMatch(/says ben@siaya-primary, but it carries no word of siaya-primary's school/);
    // ... with the real ben's word copied onto their own card
    const copied = decodeCard(encodeCard(stranger.identity, ben.school.ownWord()));
    expect(await refusal(amara.addContact(copied))).toMatch(/siaya-primary's school does not vouch for it: siaya-primary's school enrolled another key/);
    // ... with a "siaya-primary" school of their own making
    const fake = village(SIAYA);
    const enrolledByFake = await fake.enrolled("ben", "6A");
    expect(await refusal(amara.addContact(decodeCard(cardOf(enrolledByFake))))).toMatch(/does not vouch for it: the school's word on the card does not hold \(not signed by the school\)/);
    // ... with the word of another of siaya's children under ben's name
    const cleo = await siaya.enrolled("cleo", "6A");
    const renamed = decodeCard(encodeCard({ ...cleo.identity, name: "ben" }, cleo.school.ownWord()));
    expect(renamed.name).toBe("ben");
    expect(await refusal(amara.addContact(renamed))).toMatch(/enrolled this key as cleo, not ben/);
    expect(amara.contacts().map((c) => c.name)).toEqual([]); // nothing of them was kept

    // the real ben's card: believed, and shown as his school says
    await amara.addContact(decodeCard(cardOf(ben)));
    expect(amara.vouchFor(ben.me)).toEqual({ status: "vouched", school: SIAYA, name: "ben", class: "6A", role: "student" });
    expect((await amara.buddies()).map((b) => b.address)).toEqual(["ben@siaya-primary"]);
  });

  it("a class change at the pen pal's school gives their card the newer word; a word kept before the federation is checked once it is known", async () => {
    const kisumu = village(KISUMU);
    const siaya = village(SIAYA);
    const amara = await kisumu.enrolled("amara", "5B");
    const ben = await siaya.enrolled("ben", "6A");
    const dan = open(generateIdentity("dan", SIAYA)); // never enrolled at siaya
    // siaya moves ben to 7A: the entry reaches his laptop as a statement, and his card says so
    await siaya.server.school.enrolPerson(contactCard(ben.identity), { class: "7A", role: "student" });
    await carry(siaya.server, ben);
    // added before amara's laptop knows siaya-primary: taken as the child's own trust, the word kept
    await amara.addContact(decodeCard(cardOf(ben)));
    await amara.addContact(decodeCard(cardOf(dan)));
    expect(amara.vouchFor(ben.me)).toMatchObject({ status: "not-vouched", school: SIAYA, reason: expect.stringMatching(/not a village kisumu-primary exchanges mail with/) });
    await kisumu.server.school.publishFederation(new Map([[SIAYA, siaya.key.signing.publicKey]]));
    await carry(kisumu.server, amara);
    expect(amara.vouchFor(ben.me)).toEqual({ status: "vouched", school: SIAYA, name: "ben", class: "7A", role: "student" });
    // dan's card had no word: now that siaya is known, he is not vouched and always shown with his fingerprint
    expect(amara.vouchFor(dan.me)).toMatchObject({ status: "impostor", reason: "their card carried no word of siaya-primary's school" });
    const shown = (await amara.buddies()).map((b) => b.address).sort();
    expect(shown[0]).toBe("ben@siaya-primary");
    expect(shown[1]).toMatch(/^dan@siaya-primary#[a-z2-7]{4}$/);
  });

  it("a child who moves villages keeps their keys: the new school enrols the same person, the old school's directory goes", async () => {
    const kisumu = village(KISUMU);
    const siaya = village(SIAYA);
    const ben = await siaya.enrolled("ben", "6A");
    const person = ben.me;
    await carry(siaya.server, ben);
    const { token } = await kisumu.server.school.enrolPerson(contactCard(ben.identity), { class: "6C", role: "student" });
    expect(await refusal(ben.school.enrol(token))).toMatch(/already belongs to siaya-primary .* is refused; a child who moved to kisumu-primary keeps their keys with: pigeon enrol --move TOKEN/);
    expect(ben.address).toBe(`ben@${SIAYA}`);
    const moved = await ben.school.enrol(token, { move: true });
    expect(moved).toMatchObject({ was: `ben@${SIAYA}`, address: `ben@${KISUMU}`, moved: SIAYA, vouch: { status: "vouched", school: KISUMU, class: "6C" } });
    expect(ben.me).toEqual(person);
    expect(ben.school.view()).toMatchObject({ home: KISUMU, entries: 1, me: { status: "vouched", school: KISUMU } });
    // siaya's statements are only carried now (evicted like anyone's), no longer kept as ben's own
    const held = siaya.server.envelopes.ids().map(({ id }) => id).filter((id) => ben.envelopes.has(id));
    expect(held.length).toBeGreaterThan(0);
    expect(held.filter((id) => !ben.envelopes.isCarried(id))).toEqual([]);
    // his card now carries kisumu's word, and a kisumu laptop's pen-pal entry for him follows the new card
    expect(decodeCard(cardOf(ben)).schoolWord).toBeDefined();
    const amara = await kisumu.enrolled("amara", "5B");
    await carry(kisumu.server, amara);
    await amara.addContact(decodeCard(cardOf(ben)));
    expect(amara.vouchFor(person)).toEqual({ status: "vouched", school: KISUMU, name: "ben", class: "6C", role: "student" });
  });

  it("a pen pal whose enrolment ended is no longer shown as vouched, though the word was believed before", async () => {
    let clock = Date.UTC(2027, 6, 30);
    const kisumu = village(KISUMU);
    const siaya = village(SIAYA);
    const amaraLaptop = open(generateIdentity("amara"), undefined, () => clock);
    await amaraLaptop.school.enrol((await kisumu.server.school.enrolPerson(contactCard(amaraLaptop.identity), { class: "5B", role: "student" })).token);
    const ben = open(generateIdentity("ben"));
    const until = Date.UTC(2027, 6, 31, 23, 59, 59, 999);
    await ben.school.enrol((await siaya.server.school.enrolPerson(contactCard(ben.identity), { class: "6A", role: "student", until })).token);
    await kisumu.server.school.publishFederation(new Map([[SIAYA, siaya.key.signing.publicKey]]));
    await carry(kisumu.server, amaraLaptop);
    await amaraLaptop.addContact(decodeCard(cardOf(ben)));
    expect(amaraLaptop.vouchFor(ben.me)).toMatchObject({ status: "vouched", school: SIAYA });
    clock = until + 1;
    expect(amaraLaptop.vouchFor(ben.me)).toMatchObject({ status: "impostor", reason: "the enrolment at siaya-primary ended on 2027-07-31" });
  });
});
