// Class channels between in-process laptops on memory links: a teacher's channel, written to while
// the class is scattered; a member added while away; a removal that crosses messages in transit.
import { afterEach, describe, expect, it } from "vitest";
import { channelStatement, contactCard, EnvelopeKind, generateIdentity, generateSchool, sealEnvelope } from "@pigeon/model";
import { boot, introduce, laptops as bootLaptops, meet, MemoryNetwork, type Laptop } from "../devices.test-helper.js";
import { memoryStorage, PigeonNode } from "../index.js";
import { until } from "../until.test-helper.js";

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

const laptops = (...names: string[]): Promise<Laptop[]> => bootLaptops(cleanup, ...names);

const bodies = async (l: Laptop, channel: string) => (await l.m.messages({})).filter((m) => m.channel === channel).map((m) => m.body).sort();

describe("class channels", () => {
  it("a teacher's channel: one envelope per message for everyone, read counts, a student answers", async () => {
    const [teacher, amara, baraka] = await laptops("mwalimu", "amara", "baraka");
    await introduce(teacher, [amara!, baraka!]);
    const ch = await teacher!.m.createChannel("5B science");
    expect(ch.members.map((m) => m.address)).toEqual(["mwalimu@local"]);
    await teacher!.m.addToChannel("5B science", { addresses: ["amara", "baraka"] });
    const count = () => teacher!.m.envelopes.conversationEnvelopes(Buffer.from(ch.id, "hex")).length;
    const before = count();
    const sent = await teacher!.m.sendToChannel("5B science", "Bring a leaf tomorrow");
    expect(sent.counts).toEqual({ members: 2, delivered: 0, read: 0 });
    // sealed once: the message is one change envelope (plus the first key envelope of this member list)
    expect(count() - before).toBe(2);
    meet(teacher!, amara!);
    meet(teacher!, baraka!);
    for (const kid of [amara!, baraka!]) {
      await until(async () => (await bodies(kid, "5B science")).length === 1, `${kid.id.name} has the message`);
      expect(kid.m.channels().map((c) => [c.title, c.owner, c.member])).toEqual([["5B science", "mwalimu@local", true]]);
      const [m] = (await kid.m.messages({})).filter((x) => x.channel);
      expect(m!.request).toBeUndefined(); // a channel's messages are not requests
    }
    await until(async () => (await teacher!.m.message(sent.id))?.counts?.delivered === 2, "delivered to 2 of 2");
    await amara!.m.markRead();
    await until(async () => (await teacher!.m.message(sent.id))?.counts?.read === 1, "read by 1 of 2");
    expect((await teacher!.m.message(sent.id))!.state).toBe("delivered");
    await amara!.m.sendToChannel("5B science", "I found an oak leaf");
    await until(async () => (await bodies(baraka!, "5B science")).length === 2, "baraka has amara's answer");
    expect(await bodies(baraka!, "5B science")).toEqual(["Bring a leaf tomorrow", "I found an oak leaf"]);
  });

  it("when the owner removes the last other member, the owner still sees what was written in it", async () => {
    const [teacher, amara] = await laptops("mwalimu", "amara");
    await introduce(teacher, [amara!]);
    await teacher!.m.createChannel("reading club");
    await teacher!.m.addToChannel("reading club", { addresses: ["amara"] });
    await teacher!.m.sendToChannel("reading club", "Which book next?");
    meet(teacher!, amara!);
    await until(async () => (await bodies(amara!, "reading club")).length === 1, "amara has the question");
    await amara!.m.sendToChannel("reading club", "The one with the lion");
    await until(async () => (await bodies(teacher!, "reading club")).length === 2, "the teacher has amara's answer");
    await teacher!.m.removeFromChannel("reading club", ["amara"]);
    expect(teacher!.m.channels().find((c) => c.title === "reading club")!.members.map((m) => m.address)).toEqual(["mwalimu@local"]);
    expect(await bodies(teacher!, "reading club")).toEqual(["The one with the lion", "Which book next?"]);
    expect((await teacher!.m.inbox()).map((m) => [m.from, m.body])).toEqual([["amara@local", "The one with the lion"]]);
  });

  it("a member added while away receives later through a classmate; a removed member gets nothing written after", async () => {
    const [teacher, amara, baraka, esi] = await laptops("mwalimu", "amara", "baraka", "esi");
    await introduce(teacher!, [amara!, baraka!, esi!]);
    await teacher!.m.createChannel("5B science");
    await teacher!.m.addToChannel("5B science", { addresses: ["amara", "baraka"] });
    await teacher!.m.sendToChannel("5B science", "before");
    const t1 = meet(teacher!, amara!);
    const t2 = meet(teacher!, baraka!);
    await until(async () => (await bodies(baraka!, "5B science")).length === 1 && (await bodies(amara!, "5B science")).length === 1, "both have it");
    t1();
    t2();
    // apart: baraka writes; the teacher, not having seen it, removes him (a new key epoch) and adds esi
    await baraka!.m.sendToChannel("5B science", "written before the removal");
    await teacher!.m.removeFromChannel("5B science", ["baraka"]);
    await teacher!.m.addToChannel("5B science", { addresses: ["esi"] });
    await teacher!.m.sendToChannel("5B science", "after the removal");
    expect(teacher!.m.channel("5B science").epoch).toBe(1);
    // baraka meets amara (who has not heard of the removal): his message reaches her
    const ba = meet(baraka!, amara!);
    await until(async () => (await bodies(amara!, "5B science")).includes("written before the removal"), "amara has baraka's message");
    ba();
    // the teacher meets amara: she learns of the removal and of esi, and gets the new message
    const ta = meet(teacher!, amara!);
    await until(async () => (await bodies(amara!, "5B science")).includes("after the removal"), "amara has the new message");
    await until(async () => (await bodies(teacher!, "5B science")).includes("written before the removal"), "the teacher has baraka's crossing message");
    ta();
    // esi was never near the teacher since she was added: amara carries it all to her
    const ae = meet(amara!, esi!);
    await until(async () => (await bodies(esi!, "5B science")).includes("after the removal"), "esi has what was written since she was added");
    expect(esi!.m.channels()[0]!.members.map((m) => m.address).sort()).toEqual(["amara@local", "esi@local", "mwalimu@local"]);
    // esi answers: sealed with the key of the current member list, so baraka could never open it
    await esi!.m.sendToChannel("5B science", "hello from esi");
    await until(async () => (await bodies(amara!, "5B science")).includes("hello from esi"), "amara has esi's message");
    ae();
    // baraka meets everyone again: he learns he was removed and opens nothing new
    meet(baraka!, amara!);
    meet(baraka!, teacher!);
    await until(() => baraka!.m.channels()[0]?.member === false, "baraka sees he was removed");
    await new Promise((r) => setTimeout(r, 500));
    expect(await bodies(baraka!, "5B science")).toEqual(["before", "written before the removal"]);
    await expect(baraka!.m.sendToChannel("5B science", "let me back")).rejects.toThrow(/no longer in/);
    // nothing sealed to him since: of every key the channel had, only the first was sealed to him
    const conv = Buffer.from(teacher!.m.channel("5B science").id, "hex");
    const keys = [teacher!, amara!, esi!].flatMap((l) => l.m.envelopes.conversationEnvelopes(conv).map((id) => l.m.envelopes.get(id)!))
      .filter((e) => e.kind === EnvelopeKind.Key);
    const distinct = new Map(keys.map((k) => [Buffer.from(k.id).toString("hex"), k]));
    expect(distinct.size).toBe(2); // the first member list, and the one after the removal (with esi): esi wrote with it too
    expect([...distinct.values()].filter((k) => k.recipients.some((r) => Buffer.from(r).equals(Buffer.from(baraka!.id.person)))).length).toBe(1);
  });

  it("only the owner and admins change who is in it; a student cannot", async () => {
    const [teacher, amara, baraka] = await laptops("mwalimu", "amara", "baraka");
    await introduce(teacher!, [amara!, baraka!]);
    await teacher!.m.createChannel("club");
    await teacher!.m.addToChannel("club", { addresses: ["amara", "baraka"] });
    meet(teacher!, amara!);
    meet(teacher!, baraka!);
    await until(() => amara!.m.channels().length === 1, "amara knows the club");
    await expect(amara!.m.removeFromChannel("club", ["baraka"])).rejects.toThrow(/only the owner and admins/);
    await teacher!.m.setChannelAdmin("club", "amara", true);
    await until(() => amara!.m.channel("club").admin, "amara is an admin");
    await expect(amara!.m.closeChannel("club")).rejects.toThrow(/only the owner/);
    const v = await amara!.m.removeFromChannel("club", ["baraka"]);
    expect(v.members.map((m) => m.address).sort()).toEqual(["amara@local", "mwalimu@local"]);
    await until(() => teacher!.m.channel("club").members.length === 2, "the teacher sees the removal");
    // baraka (no admin, but holding the channel secret) forges a removal of amara and hands it over
    // as any laptop would: it is kept, refused with the reason, and changes nothing
    const bdb = baraka!.m.state.db;
    await until(() => bdb.prepare("SELECT count(*) FROM channel_ops").pluck().get() as number >= 3, "baraka to hold the club's ops");
    const secret = new Uint8Array(bdb.prepare("SELECT secret FROM channels").pluck().get() as Buffer);
    const parents = (bdb.prepare("SELECT op FROM channel_ops").pluck().all() as Buffer[]).map((b) => new Uint8Array(b));
    const clubId = Buffer.from(teacher!.m.channel("club").id, "hex");
    const forged = channelStatement(baraka!.id, { channel: clubId, author: baraka!.id.person, at: Date.now(), parents, action: { type: "remove", members: [amara!.id.person] } }, secret, 9, [], Date.now());
    // in clear, as membership changes once travelled, it is refused at the door: it would show carriers who runs the channel
    expect((await teacher!.m.receive(forged.bytes, 1)).refused).toBe("a membership change travels sealed (envelope version 3)");
    await teacher!.m.receive(sealEnvelope(baraka!.id.sealing, forged, [teacher!.id.sealing.publicKey]).bytes, 1);
    await until(() => teacher!.m.channel("club").refused.length === 1, "the forged removal to be refused");
    expect(teacher!.m.channel("club").refused).toEqual([{ by: "baraka@local", reason: "not an admin of the channel when it was made" }]);
    expect(teacher!.m.channel("club").members.map((m) => m.address).sort()).toEqual(["amara@local", "mwalimu@local"]);
    await teacher!.m.closeChannel("club");
    await expect(teacher!.m.sendToChannel("club", "x")).rejects.toThrow(/closed/);
  });

  it("a teacher adds a whole class from the school's directory; with no-student-groups, a student cannot start one", async () => {
    const HOME = "kisumu-primary";
    // the school server: a node with the school's key (it writes the directory)
    const id = generateIdentity("school", HOME);
    const net = new MemoryNetwork();
    const node = await PigeonNode.open({ identity: id, storage: memoryStorage(), network: net, school: generateSchool(HOME) });
    cleanup.push(() => node.shutdown().catch(() => {}));
    const school: Laptop = { id, net, node, m: node.mailbox };
    const people: Record<string, Laptop> = {};
    for (const [name, cls, role] of [["mwalimu", "staff", "teacher"], ["amara", "5B", "student"], ["baraka", "5B", "student"], ["esi", "6A", "student"]] as const) {
      const l = await boot(generateIdentity(name), cleanup);
      const { token } = await school.m.school.enrolPerson(contactCard(l.m.identity), { class: cls, role });
      await l.m.school.enrol(token);
      people[name] = l;
    }
    await school.m.school.setPolicy(undefined, true);
    for (const l of Object.values(people)) meet(school, l);
    await until(() => Object.values(people).every((l) => l.m.school.directory()?.noStudentGroups && l.m.school.directory()!.members().length === 4), "the directory on every laptop");
    const { mwalimu, amara, baraka, esi } = people as Record<string, Laptop>;
    await mwalimu!.m.createChannel("5B science");
    const v = await mwalimu!.m.addToChannel("5B science", { class: "5B" });
    expect(v.members.map((m) => m.address).sort()).toEqual(["amara@kisumu-primary", "baraka@kisumu-primary", "mwalimu@kisumu-primary"]);
    await mwalimu!.m.sendToChannel("5B science", "Welcome to 5B science");
    // none of them ever met the teacher: the school server carries it all
    for (const kid of [amara!, baraka!]) await until(async () => (await bodies(kid, "5B science")).length === 1, `${kid.id.name} has it`);
    expect(await bodies(esi!, "5B science")).toEqual([]);
    // students may not start groups here
    await expect(amara!.m.createChannel("football")).rejects.toThrow(/does not allow students/);
  });
});
