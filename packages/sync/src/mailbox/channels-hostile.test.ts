// Hostile members of a class channel, each played by a real laptop whose own node is bent to attack
// (it writes what the app would never let it write) and whose envelopes travel over sync links as any
// laptop's do: a flood far beyond a sane rate, a forged membership change, a removed member replaying
// the old epoch's key and writing with it, a member rewriting someone else's message. Each is refused
// with a reason where it arrives, and nothing is lost for the others.
import { afterEach, describe, expect, it } from "vitest";
import * as A from "@automerge/automerge";
import {
  channelSegmentBase, channelStatement, conversationKeyId, EnvelopeKind, fromHex, generateIdentity, inEpochSegments, newConversationKey, sealChange, sealEnvelope, sealKey, toHex,
  type ConversationDoc,
} from "@pigeon/model";
import { introduce, meet, MemoryNetwork, type Laptop } from "../devices.test-helper.js";
import { memoryStorage, PigeonNode, storable, type NodeLimits } from "../index.js";
import type { MailboxCore } from "./core.js";
import { until } from "../until.test-helper.js";

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

type Logged = Laptop & { warnings: string[] };

async function laptop(name: string, limits?: NodeLimits): Promise<Logged> {
  const id = generateIdentity(name);
  const net = new MemoryNetwork();
  const warnings: string[] = [];
  const log = { debug() {}, info() {}, warn: (m: string) => void warnings.push(m), error: (m: string) => void warnings.push(m) };
  const node = await PigeonNode.open({ identity: id, storage: memoryStorage(), network: net, log, limits });
  cleanup.push(() => node.shutdown().catch(() => {}));
  return { id, net, node, m: node.mailbox, warnings };
}

/** The laptop's own mailbox internals: what a bent node uses to write what the app refuses. */
const coreOf = (l: Laptop) => (l.m as unknown as { core: MailboxCore }).core;
const bodies = async (l: Laptop, from?: string) =>
  (await l.m.messages({})).filter((m) => m.channel === "5B science" && (!from || m.from === from)).map((m) => m.body).sort();

/** A teacher's channel with the children in it; everyone has heard of it (then they walk apart). */
async function classOf(teacher: Laptop, kids: Laptop[]): Promise<Uint8Array> {
  await introduce(teacher, kids);
  const ch = await teacher.m.createChannel("5B science");
  await teacher.m.addToChannel("5B science", { addresses: kids.map((k) => k.id.name) });
  for (const k of kids) {
    const apart = meet(teacher, k);
    await until(() => k.m.channels().length === 1 && k.m.channel("5B science").members.length === kids.length + 1, `${k.id.name} to know the channel`);
    apart();
  }
  return fromHex(ch.id);
}

describe("hostile members of a class channel", () => {
  it("a member who floods the channel is held by a per-member budget on every laptop that takes it; the others' messages all arrive", async () => {
    const BUDGET = 20;
    const limits = { carrier: { channelMemberPerEpoch: BUDGET } };
    const [teacher, amara, baraka, esi] = await Promise.all(["mwalimu", "amara", "baraka", "esi"].map((n) => laptop(n, limits)));
    const conv = await classOf(teacher!, [amara!, baraka!, esi!]);
    await teacher!.m.sendToChannel("5B science", "Bring a leaf tomorrow");
    // baraka, alone at home, posts 80 messages (four times his budget here) (his laptop does not stop him: as a bent node would)
    for (let i = 0; i < 80; i++) await baraka!.m.sendToChannel("5B science", `spam ${i}`);
    // he meets amara: she takes his first ones up to the budget and refuses the rest, with the reason
    let apart = meet(baraka!, amara!);
    await until(() => amara!.warnings.some((w) => w.includes("over the channel budget: baraka@local already has 20 changes in channel 5B science")), "amara to refuse the flood").catch(async (e) => {
      console.log(amara!.warnings, (await bodies(amara!, "baraka@local")).length, coreOf(amara!).state.rejections().slice(0, 3));
      throw e;
    });
    await until(async () => (await bodies(amara!, "baraka@local")).length > 0, "amara to show some of baraka's");
    apart();
    await amara!.m.sendToChannel("5B science", "I found an oak leaf");
    // amara carries the channel to the teacher, the teacher to esi; baraka later meets esi himself too
    apart = meet(amara!, teacher!);
    await until(async () => (await bodies(teacher!)).includes("I found an oak leaf") && (await bodies(amara!)).includes("Bring a leaf tomorrow"), "teacher and amara to have each other's");
    apart();
    apart = meet(teacher!, esi!);
    await until(async () => (await bodies(esi!)).includes("I found an oak leaf") && (await bodies(esi!)).includes("Bring a leaf tomorrow"), "esi to have the others' messages");
    apart();
    apart = meet(baraka!, esi!);
    await until(() => esi!.warnings.some((w) => w.includes("over the channel budget: baraka@local")), "esi to refuse the flood");
    await esi!.m.sendToChannel("5B science", "Me too");
    apart();
    apart = meet(esi!, amara!);
    const apart2 = meet(esi!, teacher!);
    for (const l of [teacher!, amara!]) await until(async () => (await bodies(l)).includes("Me too"), `${l.id.name} to have esi's answer`);
    apart();
    apart2();
    for (const l of [teacher!, amara!, esi!]) {
      // bounded storage: no more of baraka's envelopes in the channel than the budget, on every laptop
      const held = coreOf(l).envelopes.conversationEnvelopes(conv).map((id) => coreOf(l).envelopes.meta(id)!).filter((e) => !e.carried && toHex(e.author) === toHex(baraka!.id.person) && e.kind === EnvelopeKind.Change);
      expect(held.length).toBeLessThanOrEqual(BUDGET);
      // the same first ones everywhere (taken in his own order), so what the others wrote on top opens
      expect(await bodies(l, "baraka@local")).toEqual(Array.from({ length: BUDGET }, (_, i) => `spam ${i}`).sort());
      // nothing lost for the others
      expect(await bodies(l, "mwalimu@local")).toEqual(["Bring a leaf tomorrow"]);
      expect(await bodies(l, "amara@local")).toEqual(["I found an oak leaf"]);
      expect(await bodies(l, "esi@local")).toEqual(["Me too"]);
    }
  }, 150_000);

  it("a student's forged membership change travels from his laptop and is refused with the reason everywhere; no one is removed", async () => {
    const [teacher, amara, baraka] = await Promise.all(["mwalimu", "amara", "baraka"].map((n) => laptop(n)));
    const conv = await classOf(teacher!, [amara!, baraka!]);
    // baraka's laptop writes a removal of amara as if he were an admin (the app refuses him), signed
    // with his own key over the ops he holds, and keeps it as its own: it travels as any statement
    await expect(baraka!.m.removeFromChannel("5B science", ["amara"])).rejects.toThrow(/only the owner and admins/);
    const db = baraka!.m.state.db;
    const secret = new Uint8Array(db.prepare("SELECT secret FROM channels").pluck().get() as Buffer);
    const parents = (db.prepare("SELECT op FROM channel_ops").pluck().all() as Buffer[]).map((b) => new Uint8Array(b));
    const forged = channelStatement(baraka!.id, { channel: conv, author: baraka!.id.person, at: Date.now(), parents, action: { type: "remove", members: [amara!.id.person] } }, secret, 5, [], Date.now());
    const wrapped = sealEnvelope(baraka!.id.sealing, forged, [teacher!.id.sealing.publicKey, amara!.id.sealing.publicKey]);
    coreOf(baraka!).storeRow(storable({ ...forged, id: wrapped.id, sealed: wrapped.bytes }));
    // he meets amara only; amara meets the teacher
    let apart = meet(baraka!, amara!);
    await until(() => amara!.m.channel("5B science").refused.length === 1, "amara to hold the forged removal, refused");
    apart();
    apart = meet(amara!, teacher!);
    await until(() => teacher!.m.channel("5B science").refused.length === 1, "the teacher to hold it, refused");
    apart();
    for (const l of [teacher!, amara!]) {
      expect(l.m.channel("5B science").refused).toEqual([{ by: "baraka@local", reason: "not an admin of the channel when it was made" }]);
      expect(l.m.channel("5B science").members.map((m) => m.address).sort()).toEqual(["amara@local", "baraka@local", "mwalimu@local"]);
    }
    // amara is still in: the teacher's next message reaches her
    await teacher!.m.sendToChannel("5B science", "Amara stays");
    apart = meet(teacher!, amara!);
    await until(async () => (await bodies(amara!)).includes("Amara stays"), "amara to get the teacher's message");
    apart();
  });

  it("a removed member replays the old epoch's key and writes with it: the new member never reads it, and writers never go back to the old key", async () => {
    const [teacher, amara, baraka, esi] = await Promise.all(["mwalimu", "amara", "baraka", "esi"].map((n) => laptop(n)));
    await introduce(teacher!, [esi!]);
    const conv = await classOf(teacher!, [amara!, baraka!]);
    await teacher!.m.sendToChannel("5B science", "before");
    for (const k of [amara!, baraka!]) {
      const apart = meet(teacher!, k);
      await until(async () => (await bodies(k)).includes("before"), `${k.id.name} to get it`);
      apart();
    }
    const oldKey = coreOf(baraka!).state.keys(conv)[0]!;
    await teacher!.m.removeFromChannel("5B science", ["baraka"]);
    await teacher!.m.addToChannel("5B science", { addresses: ["esi"] });
    await teacher!.m.sendToChannel("5B science", "after the removal");
    for (const k of [amara!, baraka!, esi!]) {
      const apart = meet(teacher!, k);
      await until(() => k.m.channels()[0]?.member === (k !== baraka) && k.m.channel("5B science").epoch === 1, `${k.id.name} to learn of the removal`);
      if (k !== baraka) await until(async () => (await bodies(k)).includes("after the removal"), `${k.id.name} to get it`);
      apart();
    }
    await expect(baraka!.m.sendToChannel("5B science", "let me back")).rejects.toThrow(/no longer in/);
    // his bent laptop writes anyway with the old epoch's key, to the old epoch's members and to esi
    const core = coreOf(baraka!);
    const segment = core.state.segments(conv).find((s) => inEpochSegments(s, oldKey.keyId))!;
    const handle = await core.segmentHandle(conv, segment);
    const doc = A.change(A.clone(handle.doc(), { actor: core.actor }), (d: ConversationDoc) => {
      d.messages.push({ id: "replayed-old-key", authorKeyId: core.myKeyId, hlc: "", sentAt: Date.now(), body: "written with the old key" } as never);
    });
    const change = A.getLastLocalChange(doc)!;
    const toEsi = sealChange(baraka!.id, { conversation: conv, segment, recipients: [teacher!.id.person, amara!.id.person, esi!.id.person], created: Date.now() }, oldKey.key, change);
    core.storeOwn(toEsi, [teacher!.id.sealing.publicKey, amara!.id.sealing.publicKey, esi!.id.sealing.publicKey]);
    // and the old key envelope is handed to esi again by a laptop that holds it (a replay)
    const oldKeyEnvelope = core.envelopes.bytesOf(oldKey.envelope)!;
    await esi!.m.receive(oldKeyEnvelope, 1);
    let apart = meet(baraka!, esi!);
    const apart2 = meet(baraka!, amara!);
    await until(() => coreOf(esi!).envelopes.has(toEsi.id) && coreOf(amara!).envelopes.has(toEsi.id), "his envelope to reach esi and amara");
    await until(() => coreOf(amara!).state.openedStatus(toEsi.id) === "rejected", "amara to refuse it");

    apart();
    apart2();
    // amara holds the old key: sealed with it to people who were not its members, refused with the reason;
    // esi never had that key: it waits unopened (within baraka's budget for what cannot be opened) and expires
    expect(coreOf(amara!).state.rejections().map((r) => r.reason)).toContain("recipients do not match the conversation's members");
    expect(coreOf(esi!).state.openedStatus(toEsi.id)).toBe("pending");
    expect(await bodies(esi!)).toEqual(["after the removal"]);
    expect((await bodies(amara!)).includes("written with the old key")).toBe(false);
    // the replayed old key is not esi's (she was not in that epoch) and no one writes with it again
    expect(coreOf(esi!).state.keys(conv).some((k) => toHex(k.keyId) === toHex(oldKey.keyId))).toBe(false);
    await amara!.m.sendToChannel("5B science", "after the replay");
    apart = meet(amara!, baraka!);
    const apart3 = meet(amara!, esi!);
    await until(async () => (await bodies(esi!)).includes("after the replay"), "esi to get amara's message");
    apart();
    apart3();
    expect(await bodies(baraka!)).toEqual(["before"]);
  });

  it("a removed member makes a key of his own for himself and the class as it is now: no one takes it, nothing he writes with it is read", async () => {
    const [teacher, amara, baraka, esi] = await Promise.all(["mwalimu", "amara", "baraka", "esi"].map((n) => laptop(n)));
    await introduce(teacher!, [esi!]);
    const conv = await classOf(teacher!, [amara!, baraka!]);
    await teacher!.m.removeFromChannel("5B science", ["baraka"]);
    await teacher!.m.addToChannel("5B science", { addresses: ["esi"] });
    await teacher!.m.sendToChannel("5B science", "after the removal");
    for (const k of [amara!, baraka!, esi!]) {
      const apart = meet(teacher!, k);
      // (baraka is told of his removal, not of the add after it: he knows esi from school all the same)
      await until(() => {
        const ch = k.m.channels().find((c) => c.title === "5B science");
        return ch?.epoch === 1 && (k === baraka || ch.members.length === 3);
      }, `${k.id.name} to learn of the removal`);
      if (k !== baraka) await until(async () => (await bodies(k)).includes("after the removal"), `${k.id.name} to get it`);
      apart();
    }
    // his bent laptop makes a key for the class as it is now plus himself (everyone named was in the
    // channel at some time, but never all together), and writes with it
    const core = coreOf(baraka!);
    const others = [teacher!, amara!, esi!];
    const key = newConversationKey();
    const keyEnv = sealKey(baraka!.id, { conversation: conv, recipients: others.map((o) => ({ signPublicKey: o.id.person, sealPublicKey: o.id.sealing.publicKey })), created: Date.now() }, key);
    core.storeOwn(keyEnv, others.map((o) => o.id.sealing.publicKey));
    const doc = A.change(A.init<ConversationDoc>({ actor: core.actor }), (d) => {
      d.messages = [{ id: "own-key", authorKeyId: core.myKeyId, hlc: "", sentAt: Date.now(), body: "written with a key of my own" }] as never;
    });
    const msg = sealChange(baraka!.id, { conversation: conv, segment: channelSegmentBase(conversationKeyId(key)), recipients: others.map((o) => o.id.person), created: Date.now() }, key, A.getLastLocalChange(doc)!);
    core.storeOwn(msg, others.map((o) => o.id.sealing.publicKey));
    const aparts = [meet(baraka!, esi!), meet(baraka!, amara!)];
    for (const k of [amara!, esi!])
      await until(() => coreOf(k).state.openedStatus(keyEnv.id) !== undefined && coreOf(k).state.openedStatus(msg.id) !== undefined, `${k.id.name} to take both in`);
    for (const a of aparts) a();
    for (const k of [amara!, esi!]) {
      // the key waits, with the reason, and never becomes theirs; the message waits for a key it will never get
      expect(coreOf(k).state.openedStatus(keyEnv.id)).toBe("pending");
      expect(coreOf(k).state.db.prepare("SELECT reason FROM opened WHERE envelope = ?").pluck().get(keyEnv.id)).toMatch(/never the channel's members together/);
      expect(coreOf(k).state.keys(conv).some((x) => toHex(x.keyId) === toHex(conversationKeyId(key)))).toBe(false);
      expect(coreOf(k).state.openedStatus(msg.id)).toBe("pending");
      expect(await bodies(k)).toEqual(["after the removal"]);
    }
    // and the class goes on: amara writes, esi reads
    await amara!.m.sendToChannel("5B science", "still here");
    const apart = meet(amara!, esi!);
    await until(async () => (await bodies(esi!)).includes("still here"), "esi to get amara's message");
    apart();
  });

  it("a member who rewrites the teacher's message: the change is refused with the reason, the message stays as written", async () => {
    const [teacher, amara, baraka] = await Promise.all(["mwalimu", "amara", "baraka"].map((n) => laptop(n)));
    const conv = await classOf(teacher!, [amara!, baraka!]);
    await teacher!.m.sendToChannel("5B science", "The test is on Friday");
    let apart = meet(teacher!, amara!);
    await until(async () => (await bodies(amara!)).length === 1, "amara to get it");
    apart();
    // amara's bent laptop edits the teacher's message in its own copy of the channel's document,
    // seals the change with the channel's key to the other members, and keeps it as its own
    const core = coreOf(amara!);
    const key = core.state.keys(conv)[0]!;
    const segment = core.state.segments(conv).find((s) => inEpochSegments(s, key.keyId))!;
    const handle = await core.segmentHandle(conv, segment);
    const doc = A.change(A.clone(handle.doc(), { actor: core.actor }), (d: ConversationDoc) => {
      d.messages[0]!.body = "There is no test";
    });
    const change = A.getLastLocalChange(doc)!;
    const env = sealChange(amara!.id, { conversation: conv, segment, recipients: [teacher!.id.person, baraka!.id.person], created: Date.now() }, key.key, change);
    core.storeOwn(env, [teacher!.id.sealing.publicKey, baraka!.id.sealing.publicKey]);
    apart = meet(amara!, baraka!);
    const apart2 = meet(amara!, teacher!);
    await amara!.m.sendToChannel("5B science", "ok");
    for (const l of [teacher!, baraka!]) {
      await until(() => coreOf(l).state.openedStatus(env.id) === "rejected", `${l.id.name} to refuse the rewrite`);
      await until(async () => (await bodies(l)).includes("ok"), `${l.id.name} to get amara's honest message`);
      expect(coreOf(l).state.rejections().map((r) => r.reason)).toContain("change overwrites another member's data");
      expect(await bodies(l)).toEqual(["The test is on Friday", "ok"]);
    }
    apart();
    apart2();
  });
});
