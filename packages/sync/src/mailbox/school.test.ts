// The school on its laptops: a school server enrols people and writes the directory; enrolled laptops
// take its entries from whoever carries them (a carrier outside the school reads no name), show who
// the school vouches for, refuse what it revoked, keep its policy, and refuse bad entries with a
// reason while nothing else is disturbed.
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  certifyDevice, contactCard, directoryStatement, directoryTopic, EnvelopeKind, fingerprint, generateIdentity, generateSchool, sealEntry,
  signEnvelope, toHex, type Identity, type SchoolKey,
} from "@pigeon/model";
import { fileStorage, Mailbox, MailboxError, memoryLinkPair, SyncEngine, type Log } from "../index.js";
import { until } from "../until.test-helper.js";

const HOME = "kisumu-primary";
const concat = (parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts));
const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

interface Laptop {
  m: Mailbox;
  dir: string;
  log: string[];
}

function quietLog(lines: string[]): Log {
  return { debug: () => {}, info: (s) => lines.push(s), warn: (s) => lines.push(s), error: (s) => lines.push(s) };
}

function laptop(identity: Identity, school?: SchoolKey, dir?: string): Laptop {
  dir ??= mkdtempSync(join(existsSync("/dev/shm") ? "/dev/shm" : tmpdir(), "pigeon-school-"));
  const log: string[] = [];
  const m = new Mailbox({ identity, storage: fileStorage(dir), log: quietLog(log), ...(school ? { school } : {}) });
  const d = dir;
  cleanup.push(async () => {
    await m.close();
    rmSync(d, { recursive: true, force: true });
  });
  return { m, dir, log };
}

/** Two laptops in reach of each other until the returned function is called (real sync engines). */
function meet(a: Mailbox, b: Mailbox): () => void {
  const sa = new SyncEngine(a);
  const sb = new SyncEngine(b);
  const [la, lb] = memoryLinkPair(contactCard(a.identity), contactCard(b.identity));
  sa.attach(la);
  sb.attach(lb);
  return () => {
    la.close("walked away");
    sa.close();
    sb.close();
  };
}

/** Hands every envelope `from` holds to `to`, as a link would. */
async function carry(from: Mailbox, to: Mailbox): Promise<void> {
  for (const { id } of from.envelopes.ids()) await to.receive(from.envelopes.bytesOf(id)!, 1);
}

async function failure(p: Promise<unknown>): Promise<MailboxError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof MailboxError) return e;
    throw e;
  }
  throw new Error("expected a MailboxError");
}

/** A school server and laptops enrolled with the tokens it printed. */
async function school() {
  const key = generateSchool(HOME);
  const server = laptop(generateIdentity("school", HOME), key);
  const enrolled = async (name: string, cls = "5B", role: "student" | "teacher" = "student") => {
    const l = laptop(generateIdentity(name));
    const { token } = await server.m.school.enrolPerson(contactCard(l.m.identity), { class: cls, role });
    await l.m.school.enrol(token);
    return l;
  };
  return { key, server, enrolled };
}

describe("the school server and its directory", () => {
  it("enrols people with increasing serials; a laptop takes its token and the enrolled name, keeping its keys", async () => {
    const { server } = await school();
    const amara = laptop(generateIdentity("amara")); // started as amara@local
    const card = contactCard(amara.m.identity);
    const first = await server.m.school.enrolPerson(card, { class: "5B", role: "student" });
    expect(first.entry).toMatchObject({ type: "enrol", name: "amara", home: HOME, class: "5B", role: "student", serial: 1 });
    expect(first.token).toMatch(/^pigeon-school1:/);
    // the same again only prints the token again; a class change is a new entry
    expect((await server.m.school.enrolPerson(card, { class: "5B", role: "student" })).again).toBe(true);
    expect((await server.m.school.enrolPerson(card, { class: "6B", role: "student" })).entry.serial).toBe(2);
    const person = amara.m.me;
    const r = await amara.m.school.enrol((await server.m.school.enrolPerson(card, { class: "6B", role: "student" })).token);
    expect(r).toMatchObject({ was: "amara@local", address: `amara@${HOME}`, vouch: { status: "vouched", class: "6B" } });
    expect(amara.m.address).toBe(`amara@${HOME}`);
    expect(amara.m.me).toEqual(person);
    expect(amara.m.school.view()).toMatchObject({ home: HOME, server: false, me: { status: "vouched", name: "amara" } });
    // someone else's token is refused
    const other = laptop(generateIdentity("baraka"));
    const e = await failure(other.m.school.enrol(first.token));
    expect(e.message).toMatch(/this token enrols someone else/);
    expect(other.m.school.view()).toBeUndefined();
  });

  it("keeps names unique: another key under a taken name is refused, unless --replace revokes the old key", async () => {
    const { server, enrolled } = await school();
    const amara = await enrolled("amara");
    const newLaptop = generateIdentity("amara");
    const e = await failure(server.m.school.enrolPerson(contactCard(newLaptop), { class: "5B", role: "student" }));
    expect(e.message).toMatch(/already enrolled with another key .*--replace/);
    const r = await server.m.school.enrolPerson(contactCard(newLaptop), { class: "5B", role: "student", replace: true });
    expect(r.replaced).toBe(fingerprint(amara.m.me));
    const dir = server.m.school.directory()!;
    expect(dir.byName("amara")?.personKey).toEqual(newLaptop.person);
    expect(dir.isPersonRevoked(amara.m.me)).toBe(true);
    // a revoked key cannot be enrolled again
    expect((await failure(server.m.school.enrolPerson(contactCard(amara.m.identity), { class: "5B", role: "student" }))).message).toMatch(
      /was revoked by the school/,
    );
    // and laptops refuse to write entries
    expect((await failure(amara.m.school.setPolicy(true))).message).toMatch(/only the school server/);
  });

  it("the directory travels through a carrier outside the school, which reads no name, to laptops provisioned later too", async () => {
    const { server, enrolled } = await school();
    const amara = await enrolled("amara");
    const baraka = await enrolled("baraka", "4A", "teacher");
    const carrier = laptop(generateIdentity("juma"));
    // the school server meets only the carrier; the carrier keeps what it cannot read
    const apart = meet(server.m, carrier.m);
    await until(() => carrier.m.status().carrying.envelopes >= 2, "the carrier to take the directory");
    apart();
    expect(carrier.m.school.view()).toBeUndefined();
    for (const { id } of carrier.m.envelopes.ids()) {
      const env = carrier.m.envelopes.get(id)!;
      expect(Buffer.from(env.bytes).includes(Buffer.from("baraka"))).toBe(false);
    }
    // amara never met the school server: the carrier brings baraka's entry
    expect(amara.m.vouchFor(baraka.m.me)).toMatchObject({ status: "not-vouched" });
    const apart2 = meet(carrier.m, amara.m);
    await until(() => amara.m.vouchFor(baraka.m.me)?.status === "vouched", "baraka's entry to reach amara");
    apart2();
    expect(amara.m.vouchFor(baraka.m.me)).toEqual({ status: "vouched", school: HOME, name: "baraka", class: "4A", role: "teacher" });
    expect(amara.m.school.directory()!.teachers().map((t) => t.name)).toEqual(["baraka"]);
    // a laptop provisioned later (offline, from its token) gets every entry from amara
    const chiku = await enrolled("chiku");
    expect(chiku.m.vouchFor(amara.m.me)?.status).toBe("not-vouched");
    const apart3 = meet(amara.m, chiku.m);
    await until(() => chiku.m.school.members().length === 3, "the directory to reach chiku");
    apart3();
    expect(chiku.m.school.members().map((x) => x.name)).toEqual(["amara", "baraka", "chiku"]);
    expect(chiku.m.vouchFor(chiku.m.me)?.status).toBe("vouched");
  });

  it("a laptop that carried the directory before it was enrolled adopts those entries when it enrols", async () => {
    const { server } = await school();
    const baraka = laptop(generateIdentity("baraka"));
    await server.m.school.enrolPerson(contactCard(generateIdentity("amara", HOME)), { class: "5B", role: "student" });
    await carry(server.m, baraka.m);
    expect(baraka.m.status().carrying.envelopes).toBe(1);
    const { token } = await server.m.school.enrolPerson(contactCard(baraka.m.identity), { class: "5B", role: "student" });
    await baraka.m.school.enrol(token);
    expect(baraka.m.school.members().map((x) => x.name)).toEqual(["amara", "baraka"]);
    // kept as its own now: not counted as carried for others, and still offered on
    expect(baraka.m.status().carrying.envelopes).toBe(0);
    expect(baraka.m.envelopes.ids().length).toBe(1);
    const other = laptop(generateIdentity("chiku"));
    await carry(baraka.m, other.m);
    expect(other.m.status().carrying.envelopes).toBe(1);
  });

  it("survives a restart: the directory is folded again from the database, and the server's serials keep increasing", async () => {
    const key = generateSchool(HOME);
    const id = generateIdentity("school", HOME);
    const server = laptop(id, key);
    const lap = laptop(generateIdentity("amara"));
    const { token } = await server.m.school.enrolPerson(contactCard(lap.m.identity), { class: "5B", role: "student" });
    await lap.m.school.enrol(token);
    await server.m.school.setPolicy(true);
    await carry(server.m, lap.m);
    const before = lap.m.school.view();
    await lap.m.close();
    await server.m.close();
    const lap2 = new Mailbox({ identity: lap.m.identity, storage: fileStorage(lap.dir) });
    const server2 = new Mailbox({ identity: id, storage: fileStorage(server.dir), school: key });
    cleanup.push(() => lap2.close(), () => server2.close());
    expect(lap2.school.view()).toEqual(before);
    expect(lap2.school.view()).toMatchObject({ onlyDirectory: true, maxSerial: 2, members: 1 });
    expect((await server2.school.setPolicy(false)).serial).toBe(3);
    // another school's key on this data directory is refused
    expect(() => new Mailbox({ identity: id, storage: fileStorage(server.dir), school: generateSchool(HOME) })).toThrow(/belongs to the school/);
  });
});

describe("what the school says of people", () => {
  it("vouched people are not requests, even never met; an impostor's message is a request with the warning, and the plain name reaches the school's person", async () => {
    const { server, enrolled } = await school();
    const amara = await enrolled("amara");
    const baraka = await enrolled("baraka");
    await carry(server.m, baraka.m);
    // amara (never met baraka) has baraka's card and writes through a carrier
    amara.m.rememberContact(contactCard(baraka.m.identity), "card");
    await amara.m.send(`baraka@${HOME}`, "see you in class");
    const juma = laptop(generateIdentity("juma"));
    await carry(amara.m, juma.m);
    await carry(juma.m, baraka.m);
    const inbox = await baraka.m.inbox();
    expect(inbox.map((m) => [m.from, m.body, m.fromVouch])).toEqual([
      [`amara@${HOME}`, "see you in class", { status: "vouched", school: HOME, name: "amara", class: "5B", role: "student" }],
    ]);
    expect(await baraka.m.requests()).toEqual([]);

    // a stranger calling itself amara@kisumu-primary, met nearby
    const impostor = generateIdentity("amara", HOME);
    const fake = laptop(impostor);
    const apart = meet(fake.m, baraka.m);
    await until(() => fake.m.contacts().length > 0, "the impostor to meet baraka");
    await fake.m.send(`baraka@${HOME}`, "it's me amara, send me your password");
    const [req] = await until(async () => {
      const r = await baraka.m.requests();
      return r.length ? r : undefined;
    }, "the impostor's request");
    apart();
    expect(req!.from).toBe(`amara@${HOME}#${fingerprint(impostor.person).slice(0, 4)}`);
    expect(req!.vouch).toEqual({ status: "impostor", school: HOME, reason: `the school's amara@${HOME} has another key`, known: "met" });
    expect((await baraka.m.inbox()).map((m) => m.body)).toEqual(["see you in class"]);
    // the plain address is the school's amara; the impostor alone is refused by the plain name
    expect(baraka.m.resolve(`amara@${HOME}`).signPublicKey).toEqual(amara.m.me);
    await baraka.m.removeContact(fingerprint(amara.m.me));
    expect(() => baraka.m.resolve(`amara@${HOME}`)).toThrow(/is not the school's amara@kisumu-primary/);
    // a laptop of no school is told nothing: no vouching fields at all
    expect(fake.m.vouchFor(baraka.m.me)).toBeUndefined();
  });

  it("a revoked laptop's and a revoked person's envelopes are refused; the person shows as revoked", async () => {
    const { server, enrolled } = await school();
    const amara = await enrolled("amara");
    const baraka = await enrolled("baraka");
    const chiku = await enrolled("chiku");
    amara.m.rememberContact(contactCard(baraka.m.identity), "card");
    chiku.m.rememberContact(contactCard(baraka.m.identity), "card");
    await carry(server.m, baraka.m);
    await amara.m.send(`baraka@${HOME}`, "before");
    await carry(amara.m, baraka.m);
    expect((await baraka.m.inbox()).map((m) => m.body)).toEqual(["before"]);
    // amara's laptop is stolen: the school revokes it (her first laptop: its key is her person key)
    await server.m.school.revokeDevice(amara.m.me);
    await server.m.school.revokePerson("chiku", "left the school");
    await carry(server.m, baraka.m);
    await amara.m.send(`baraka@${HOME}`, "from the thief");
    await chiku.m.send(`baraka@${HOME}`, "I left but still write");
    const results = [];
    for (const l of [amara, chiku]) for (const { id } of l.m.envelopes.ids()) results.push(await baraka.m.receive(l.m.envelopes.bytesOf(id)!, 1));
    expect(results.some((r) => r.refused?.includes("signed by a revoked device (revoked by the school)"))).toBe(true);
    expect(results.some((r) => r.refused?.includes("revoked by the school: left the school"))).toBe(true);
    expect((await baraka.m.inbox()).map((m) => m.body)).toEqual(["before"]);
    expect(baraka.m.vouchFor(chiku.m.me)).toMatchObject({ status: "revoked", reason: "revoked by the school: left the school" });
    expect(baraka.log.some((l) => /the school revoked a laptop of amara@kisumu-primary/.test(l))).toBe(true);
  });

  it("a second laptop of a person (signing with its certificate) is refused once the school revokes it; the person's first laptop is not", async () => {
    const { server, enrolled } = await school();
    const amara = await enrolled("amara");
    const baraka = await enrolled("baraka");
    await carry(server.m, baraka.m);
    // amara's tablet: its own device key, certified by her person key
    const tabletKey = generateIdentity("tablet").signing;
    const tablet = laptop({ ...amara.m.identity, signing: tabletKey, certificate: certifyDevice(amara.m.identity, tabletKey.publicKey) });
    tablet.m.rememberContact(contactCard(baraka.m.identity), "card");
    await tablet.m.send(`baraka@${HOME}`, "from the tablet");
    await carry(tablet.m, baraka.m);
    expect((await baraka.m.inbox()).map((m) => m.body)).toEqual(["from the tablet"]);
    // the tablet is lost: the school revokes it, saying whose it is
    expect((await failure(server.m.school.revokeDevice(tabletKey.publicKey))).message).toMatch(/say whose laptop it is with --name/);
    await server.m.school.revokeDevice(tabletKey.publicKey, "amara");
    await carry(server.m, baraka.m);
    await tablet.m.send(`baraka@${HOME}`, "again from the tablet");
    const refused = [];
    for (const { id } of tablet.m.envelopes.ids()) refused.push((await baraka.m.receive(tablet.m.envelopes.bytesOf(id)!, 1)).refused);
    expect(refused).toContain("signed by a revoked device (revoked by the school)");
    // her first laptop still writes
    amara.m.rememberContact(contactCard(baraka.m.identity), "card");
    await amara.m.send(`baraka@${HOME}`, "from my laptop");
    await carry(amara.m, baraka.m);
    expect((await baraka.m.inbox()).map((m) => m.body).sort()).toEqual(["from my laptop", "from the tablet"]);
    expect(baraka.m.vouchFor(amara.m.me)?.status).toBe("vouched");
  });

  it("'only the directory': messages from anyone the directory does not vouch for are dropped and counted, not even requests", async () => {
    const { server, enrolled } = await school();
    const amara = await enrolled("amara");
    const baraka = await enrolled("baraka");
    await server.m.school.setPolicy(true);
    await carry(server.m, baraka.m);
    expect(baraka.m.school.view()).toMatchObject({ onlyDirectory: true, dropped: 0 });
    const stranger = laptop(generateIdentity("stranger"));
    const met = laptop(generateIdentity("juma")); // even a laptop met nearby, outside the directory
    baraka.m.rememberContact(contactCard(met.m.identity), "met");
    for (const s of [stranger, met, amara]) {
      s.m.rememberContact(contactCard(baraka.m.identity), "card");
      await s.m.send(`baraka@${HOME}`, `hello from ${s.m.identity.name}`);
      await carry(s.m, baraka.m);
    }
    expect((await baraka.m.inbox()).map((m) => m.body)).toEqual(["hello from amara"]);
    expect(await baraka.m.requests()).toEqual([]);
    expect(baraka.m.school.view()?.dropped).toBe(2); // a message (its key inside) from each
    expect(baraka.m.status().school).toMatchObject({ onlyDirectory: true, dropped: 2 });
    // the school lifts the policy: strangers' messages go to requests again
    await server.m.school.setPolicy(false);
    await carry(server.m, baraka.m);
    await stranger.m.send(`baraka@${HOME}`, "again");
    const fresh = laptop(generateIdentity("kito"));
    fresh.m.rememberContact(contactCard(baraka.m.identity), "card");
    await fresh.m.send(`baraka@${HOME}`, "hi");
    await carry(fresh.m, baraka.m);
    expect((await baraka.m.requests()).map((r) => r.messages[0]!.body)).toEqual(["hi"]);
  });
});

describe("bad directory input", () => {
  it("a forged entry, another school's, and one not signed by the school are refused with a reason; nothing else is disturbed", async () => {
    const { key, server, enrolled } = await school();
    const baraka = await enrolled("baraka");
    const amara = await enrolled("amara");
    await carry(server.m, baraka.m);
    const before = baraka.m.school.view();

    // a forged signature: refused at the door, not stored
    const real = directoryStatement(key, { type: "policy", home: HOME, serial: 40, at: 1, onlyDirectory: true }, Date.now());
    const forged = Uint8Array.from(real.bytes);
    forged[forged.length - 80]! ^= 1;
    expect((await baraka.m.receive(forged, 1)).refused).toBe("forged signature");

    // another school with the same home enrols an impostor as amara: carried as an opaque blob, never applied
    const other = generateSchool(HOME);
    const impostor = generateIdentity("amara", HOME);
    const theirs = directoryStatement(other, { type: "enrol", home: HOME, serial: 1, at: 1, personKey: impostor.person, name: "amara", class: "5B", role: "student" }, Date.now());
    expect((await baraka.m.receive(theirs.bytes, 1)).stored).toBe(true);
    expect(baraka.m.envelopes.isCarried(theirs.id)).toBe(true);

    // a statement under the school's topic by someone else: not the school's, only carried
    const signer = { ...impostor };
    const notSchool = signEnvelope(
      signer,
      { kind: EnvelopeKind.Statement, conversation: directoryTopic(key.signing.publicKey), segment: 41, recipients: [], created: Date.now(), lifetime: 3600, keyId: new Uint8Array(8) },
      concat([Uint8Array.of(2), sealEntry(key, { type: "policy", home: HOME, serial: 41, at: 1, onlyDirectory: true })]),
    );
    await baraka.m.receive(notSchool.bytes, 1);
    expect(baraka.m.envelopes.isCarried(notSchool.id)).toBe(true);

    // signed by the school key but holding another school's entry, or a damaged one: refused with the reason
    const schoolSigner = { name: "school", home: HOME, person: key.signing.publicKey, signing: key.signing, sealing: impostor.sealing };
    const wrapped = (segment: number, payload: Uint8Array) =>
      signEnvelope(
        schoolSigner,
        { kind: EnvelopeKind.Statement, conversation: directoryTopic(key.signing.publicKey), segment, recipients: [], created: Date.now(), lifetime: 3600, keyId: new Uint8Array(8) },
        payload,
      );
    const rejectedBefore = baraka.m.status().rejected;
    await baraka.m.receive(wrapped(42, concat([Uint8Array.of(2), sealEntry(other, { type: "policy", home: HOME, serial: 42, at: 1, onlyDirectory: true })])).bytes, 1);
    await baraka.m.receive(wrapped(43, concat([Uint8Array.of(2, 1), key.signing.publicKey, new Uint8Array(60)])).bytes, 1);
    expect(baraka.m.status().rejected).toBe(rejectedBefore + 2);
    expect(baraka.log.filter((l) => l.startsWith("refused a directory entry")).join("\n")).toMatch(/entry for another school[\s\S]*damaged/);

    // nothing changed: same directory, no policy, amara still the school's amara, the impostor not
    expect(baraka.m.school.view()).toEqual(before);
    baraka.m.rememberContact(contactCard(impostor), "met");
    expect(baraka.m.vouchFor(impostor.person)?.status).toBe("impostor");
    expect(baraka.m.vouchFor(amara.m.me)?.status).toBe("vouched");
    // and the next good entry is still taken
    await server.m.school.setPolicy(true);
    await carry(server.m, baraka.m);
    expect(baraka.m.school.view()?.onlyDirectory).toBe(true);
    expect(baraka.m.school.view()!.schoolKey).toBe(toHex(key.signing.publicKey));
  });
});

describe("writing to a schoolmate never met", () => {
  it("the directory gives each enrolled person's sealing key: a message reaches them through a carrier, in their inbox", async () => {
    const { server, enrolled } = await school();
    const esi = await enrolled("esi", "5Y");
    const amara = await enrolled("amara", "5X");
    // both get the whole directory from the server (as a carrier would bring it), and never meet
    await carry(server.m, esi.m);
    await carry(server.m, amara.m);
    // unknown names are still refused, with the school's members as the place to look
    await expect(failure(esi.m.send(`nobody@${HOME}`, "hi"))).resolves.toMatchObject({ code: "unknown-address" });
    const sent = await esi.m.send(`amara@${HOME}`, "the goats are back");
    expect(sent.to).toEqual([`amara@${HOME}`]);
    expect(esi.m.resolve(`amara@${HOME}`).how).toBe("school");
    // a carrier (not of the school) takes it from esi and hands it to amara
    const kito = laptop(generateIdentity("kito"));
    await carry(esi.m, kito.m);
    await carry(kito.m, amara.m);
    await until(async () => (await amara.m.inbox()).some((m) => m.body === "the goats are back"), "esi's message in amara's inbox");
    const got = (await amara.m.inbox()).find((m) => m.body === "the goats are back")!;
    expect(got).toMatchObject({ from: `esi@${HOME}`, fromVouch: { status: "vouched", class: "5Y" } });
    expect(got.request).toBeUndefined();
    // the carrier read nothing
    expect(await kito.m.inbox()).toEqual([]);

    // amara reads it and answers; esi reads the answer: every receipt and reply is sealed to the
    // directory's key of someone this laptop never met
    await amara.m.markRead([got.id]);
    await amara.m.reply(got.id, "and the chickens?");
    await carry(amara.m, kito.m);
    await carry(kito.m, esi.m);
    await until(async () => (await esi.m.inbox()).some((m) => m.body === "and the chickens?"), "amara's answer in esi's inbox");
    await until(async () => (await esi.m.outbox()).find((m) => m.body === "the goats are back")?.state === "read", "esi sees her message read");
    const answer = (await esi.m.inbox()).find((m) => m.body === "and the chickens?")!;
    await esi.m.markRead([answer.id]);
    await carry(esi.m, kito.m);
    await carry(kito.m, amara.m);
    await until(async () => (await amara.m.outbox()).find((m) => m.body === "and the chickens?")?.state === "read", "amara sees her answer read");
  });
});

describe("an enrolment that ends", () => {
  it("is vouched for until its end, then shown as ended; an end already past is refused", async () => {
    const { server, enrolled } = await school();
    const esi = await enrolled("esi", "5Y");
    const amara = laptop(generateIdentity("amara"));
    await expect(failure(server.m.school.enrolPerson(contactCard(amara.m.identity), { class: "5X", role: "student", until: Date.now() - 1 }))).resolves.toMatchObject({
      message: "the enrolment's end is already past",
    });
    const { token } = await server.m.school.enrolPerson(contactCard(amara.m.identity), { class: "5X", role: "student", until: Date.now() + 1500 });
    await amara.m.school.enrol(token);
    await carry(server.m, esi.m);
    expect(esi.m.vouchFor(amara.m.me)).toMatchObject({ status: "vouched", name: "amara" });
    await new Promise((r) => setTimeout(r, 1600));
    expect(esi.m.vouchFor(amara.m.me)).toMatchObject({ status: "not-vouched", reason: expect.stringMatching(/^enrolment ended on \d{4}-\d{2}-\d{2}$/) });
  });
});
