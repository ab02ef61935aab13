// Class channels with sealed envelopes (version 3): a channel message is one sealed envelope with a
// slot and a lock per member; the teacher's "delivered to n of m" comes from the locks that members'
// receipts opened; what carriers hold of a channel names no member.
import { afterEach, describe, expect, it } from "vitest";
import { decodeSealed, EnvelopeKind, envelopeForm, fromHex, toHex } from "@pigeon/model";
import { introduce, laptops as bootLaptops, meet, type Laptop } from "../devices.test-helper.js";
import { until } from "../until.test-helper.js";

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

const laptops = (...names: string[]): Promise<Laptop[]> => bootLaptops(cleanup, ...names);

/** Whether `hay` holds `needle` anywhere, raw or as hex. */
function holds(hay: Uint8Array, needle: Uint8Array): boolean {
  return Buffer.from(hay).indexOf(Buffer.from(needle)) >= 0 || Buffer.from(hay).toString("latin1").includes(toHex(needle));
}

describe("class channels, sealed", () => {
  it("one sealed envelope per message with a lock per member; delivered to 1, then 2, then 3 of 3 as members' receipts open their locks", async () => {
    const [teacher, amara, baraka, esi] = await laptops("mwalimu", "amara", "baraka", "esi");
    await introduce(teacher!, [amara!, baraka!, esi!]);
    await teacher!.m.createChannel("5B science");
    await teacher!.m.addToChannel("5B science", { addresses: ["amara", "baraka", "esi"] });
    const sent = await teacher!.m.sendToChannel("5B science", "Bring a leaf tomorrow");
    expect(sent.counts).toEqual({ members: 3, delivered: 0, read: 0 });

    // what travels: one sealed envelope, a slot for each member and the teacher's own devices, a lock per member
    const envId = teacher!.m.state.sentEnvelope(sent.id)!;
    const bytes = teacher!.m.envelopes.bytesOf(envId)!;
    expect(envelopeForm(bytes)).toBe("sealed");
    const sealed = decodeSealed(bytes);
    expect(sealed.slots.length).toBe(4);
    expect(sealed.locks.length).toBe(3);
    const people = [teacher!, amara!, baraka!, esi!];
    for (const p of people) {
      expect(holds(bytes, p.id.signing.publicKey)).toBe(false);
      expect(holds(bytes, p.id.sealing.publicKey)).toBe(false);
    }
    // the membership changes travel sealed too: of what the teacher's laptop hands on, nothing is in
    // clear, and no byte names the channel, its title, its owner or any member
    const channelId = fromHex(teacher!.m.channels()[0]!.id);
    const rows = teacher!.m.envelopes.conversationEnvelopes(channelId).map((id) => teacher!.m.envelopes.get(id)!).filter((e) => e.kind === EnvelopeKind.Statement);
    // the create, the teacher's own add, the children's add, and the first two sealed once more for the children
    expect(rows.length).toBe(5);
    for (const r of rows) {
      const travels = teacher!.m.envelopes.bytesOf(r.id)!;
      expect(envelopeForm(travels)).toBe("sealed");
      expect(holds(travels, channelId)).toBe(false);
      expect(Buffer.from(travels).toString("latin1").includes("5B science")).toBe(false);
      for (const p of people) {
        expect(holds(travels, p.id.signing.publicKey)).toBe(false);
        expect(holds(travels, p.id.sealing.publicKey)).toBe(false);
        expect(Buffer.from(travels).toString("latin1").includes(p.id.name)).toBe(false);
      }
    }
    // the teacher's own ops are sealed to the teacher's devices only (no lock); the children's add and the
    // ops before it that they need to fold the channel, to the three children (a lock each) and the teacher
    expect(rows.map((r) => decodeSealed(r.sealed!).locks.length).sort()).toEqual([0, 0, 3, 3, 3]);

    const delivered = async () => (await teacher!.m.message(sent.id))?.counts?.delivered;
    let apart = meet(teacher!, amara!);
    await until(async () => (await delivered()) === 1, "delivered to 1 of 3");
    apart();
    expect((await teacher!.m.message(sent.id))!.state).not.toBe("delivered");
    apart = meet(teacher!, baraka!);
    await until(async () => (await delivered()) === 2, "delivered to 2 of 3");
    apart();
    // esi gets it through baraka (a member passes the channel's envelopes on to other members); her
    // receipt reaches the teacher when they meet, though the teacher never handed her the envelope
    const via = meet(baraka!, esi!);
    await until(async () => (await esi!.m.messages({})).some((m) => m.body === "Bring a leaf tomorrow"), "esi has the message");
    via();
    apart = meet(teacher!, baraka!);
    const back = meet(teacher!, esi!);
    await until(async () => (await delivered()) === 3, "delivered to 3 of 3");
    expect((await teacher!.m.message(sent.id))!.state).toBe("delivered");
    apart();
    back();
  });

  it("a classmate outside the channel carries its message as an opaque copy, and drops it once every member's lock is open", async () => {
    const [teacher, amara, juma] = await laptops("mwalimu", "amara", "juma");
    await introduce(teacher!, [amara!, juma!]);
    await teacher!.m.createChannel("5B science");
    await teacher!.m.addToChannel("5B science", { addresses: ["amara"] });
    const sent = await teacher!.m.sendToChannel("5B science", "Bring a leaf tomorrow");
    const envId = teacher!.m.state.sentEnvelope(sent.id)!;
    // juma is not in the channel: the teacher's laptop hands him the envelope to carry, sealed
    let apart = meet(teacher!, juma!);
    await until(() => juma!.m.envelopes.has(envId), "juma carries the message");
    apart();
    expect(juma!.m.envelopes.get(envId)).toBeUndefined(); // an opaque copy: he cannot open it
    // the channel's membership changes he got along with it are opaque too: he learns no owner, no channel
    await until(() => juma!.m.envelopes.ids().length >= 2, "juma carries the membership change too");
    const channelId = fromHex(teacher!.m.channels()[0]!.id);
    for (const { id } of juma!.m.envelopes.ids()) {
      const bytes = juma!.m.envelopes.bytesOf(id)!;
      expect(juma!.m.envelopes.get(id)).toBeUndefined();
      expect(envelopeForm(bytes)).toBe("sealed");
      expect(holds(bytes, channelId)).toBe(false);
      expect(holds(bytes, teacher!.id.signing.publicKey)).toBe(false);
    }
    expect(juma!.m.channels()).toEqual([]);
    expect(await juma!.m.messages({})).toEqual([]);
    apart = meet(juma!, amara!);
    await until(async () => (await amara!.m.messages({})).some((m) => m.body === "Bring a leaf tomorrow"), "amara has it from juma");
    await until(() => !juma!.m.envelopes.has(envId), "juma drops his copy once amara's receipt opens the lock");
    apart();
    apart = meet(juma!, teacher!);
    await until(async () => (await teacher!.m.message(sent.id))?.counts?.delivered === 1, "delivered to 1 of 1, told by the carrier");
    apart();
  });
});
