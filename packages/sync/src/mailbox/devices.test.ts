// A person's devices in the mailbox: pairing over a link, the same mailbox on both devices, and a
// revocation that really shuts the revoked device out: it cannot open what is written afterwards
// even when handed the envelopes, and what it signs is refused by a contact who learnt of it.
import { afterEach, describe, expect, it } from "vitest";
import { contactCard, decodeEnvelope, EnvelopeKind, generateIdentity, generateSchool, newDeviceIdentity, readKeyring, type Identity, type LinkPeer } from "@pigeon/model";
import { Mailbox, memoryLinkPair, memoryStorage, pairDevice, SyncEngine } from "../index.js";
import { EventEmitter } from "node:events";
import type { PeerLink } from "@pigeon/model";
import { until } from "../until.test-helper.js";

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

const peerOf = (id: Identity): LinkPeer => ({ ...contactCard(id), device: id.signing.publicKey });

function mailbox(identity: Identity): Mailbox {
  const m = new Mailbox({ identity, storage: memoryStorage() });
  cleanup.push(() => m.close());
  return m;
}

function engine(m: Mailbox): SyncEngine {
  const e = new SyncEngine(m, { pairing: { answer: (peer, req) => m.devices.answerPairing(peer, req) } });
  cleanup.push(() => e.close());
  return e;
}

function meet(a: Mailbox, ea: SyncEngine, b: Mailbox, eb: SyncEngine): () => void {
  const [la, lb] = memoryLinkPair(peerOf(a.identity), peerOf(b.identity));
  ea.attach(la);
  eb.attach(lb);
  return () => la.close("walked away");
}

/** A LinkSource holding one link: what pairDevice needs. */
class OneLink extends EventEmitter {
  constructor(private readonly link: PeerLink) {
    super();
  }
  links(): PeerLink[] {
    return [this.link];
  }
  async close(): Promise<void> {}
}

async function pair(holder: Mailbox, eh: SyncEngine, code: string, timeoutMs?: number): Promise<Identity> {
  const fresh = newDeviceIdentity();
  const [toNew, toHolder] = memoryLinkPair(peerOf(holder.identity), peerOf(fresh));
  eh.attach(toNew);
  return (await pairDevice({ device: fresh, code, network: new OneLink(toHolder), ...(timeoutMs ? { timeoutMs } : {}) })).identity;
}

describe("a person's devices", () => {
  it("pairs over a link, shares the mailbox, and a revoked device is shut out", async () => {
    const amara = generateIdentity("amara");
    const baraka = generateIdentity("baraka");
    const laptop = mailbox(amara);
    const b = mailbox(baraka);
    const el = engine(laptop);
    const eb = engine(b);
    meet(laptop, el, b, eb);
    await until(() => laptop.contacts().length === 1 && b.contacts().length === 1, "the two to meet");
    await laptop.send("baraka@local", "hello");
    await b.send("amara@local", "hi amara");
    await until(async () => (await laptop.inbox()).length === 1);

    // a wrong code is refused at once; the right one pairs
    const { code } = laptop.devices.openPairing();
    await expect(pair(laptop, el, "aaaa-bbbb-cccc")).rejects.toThrow(/waiting for another code/);
    const tabletId = await pair(laptop, el, code);
    expect(tabletId.person).toEqual(amara.person);
    expect(laptop.devices.list().map((d) => d.thisDevice)).toEqual([true, false]);
    // the window is used up: a second device needs a new code
    await expect(pair(laptop, el, code, 500)).rejects.toThrow(/none with this code/);

    const tablet = mailbox(tabletId);
    const et = engine(tablet);
    meet(laptop, el, tablet, et);
    meet(tablet, et, b, eb);
    await until(async () => (await tablet.outbox()).some((m) => m.body === "hello") && (await tablet.inbox()).some((m) => m.body === "hi amara"));
    const hi = (await tablet.inbox()).find((m) => m.body === "hi amara")!;
    await tablet.reply(hi.id, "from the tablet");
    await until(async () => (await b.inbox()).some((m) => m.body === "from the tablet" && m.from === "amara@local"));
    await until(async () => (await laptop.outbox()).some((m) => m.body === "from the tablet"));
    // baraka's acknowledgement of it is its delivered receipt, on the device that did not write it too
    await until(async () => (await laptop.outbox()).find((m) => m.body === "from the tablet")?.state === "delivered", "delivered, on the laptop");

    // revoked on the laptop: the keyring reaches baraka, who rekeys and refuses the tablet
    const id = laptop.devices.list().find((d) => !d.thisDevice)!.id;
    await laptop.devices.revoke(id, "lost");
    const oldSeal = tabletId.sealing.publicKey;
    expect(laptop.identity.sealing.publicKey).not.toEqual(oldSeal);
    await until(() => b.devices.revoked(tabletId.signing.publicKey) !== undefined);
    await until(() => !Buffer.from(b.contacts().find((c) => c.name === "amara")!.sealPublicKey).equals(Buffer.from(oldSeal)));
    const after = await b.send("amara@local", "see you tomorrow");
    await until(async () => (await laptop.inbox()).some((m) => m.id === after.id));
    // handed every envelope baraka holds, the tablet still cannot read the new message
    const all = b.envelopes.idsAfter(new Uint8Array(0), 10_000).map((i) => b.envelopes.bytesOf(i)!);
    await tablet.receiveMany(all.map((bytes) => ({ bytes, hops: 1 })));
    expect((await tablet.inbox()).some((m) => m.id === after.id)).toBe(false);
    // and what the tablet writes now is refused by baraka, with the reason
    const lost = await tablet.reply(hi.id, "from the lost tablet");
    const mine = tablet.envelopes.idsAfter(new Uint8Array(0), 10_000).map((i) => tablet.envelopes.get(i)).filter((e) => e?.kind === EnvelopeKind.Change && e.device).map((e) => e!);
    const results = await b.receiveMany(mine.map((e) => ({ bytes: e.sealed ?? e.bytes, hops: 1 })));
    expect(results.some((r) => r.refused?.startsWith("signed by a revoked device"))).toBe(true);
    expect((await b.inbox()).some((m) => m.id === lost.id)).toBe(false);
    expect(decodeEnvelope(mine[0]!.bytes).device).toBeDefined();
  }, 30_000);

  it("when the school revokes a child's tablet, the child's laptop takes it out of the keyring too: it loses the sealing key", async () => {
    const HOME = "kisumu-primary";
    const server = new Mailbox({ identity: generateIdentity("school", HOME), storage: memoryStorage(), school: generateSchool(HOME) });
    cleanup.push(() => server.close());
    const laptop = mailbox(generateIdentity("amara"));
    const { token } = await server.school.enrolPerson(contactCard(laptop.identity), { class: "5B", role: "student" });
    await laptop.school.enrol(token);
    const el = engine(laptop);
    const { code } = laptop.devices.openPairing();
    const tabletId = await pair(laptop, el, code);
    const before = laptop.identity.sealing.publicKey;
    expect(laptop.devices.list().filter((d) => !d.revoked)).toHaveLength(2);

    // reported stolen at the school: the revocation reaches the laptop (by whoever carries it)
    await server.school.revokeDevice(tabletId.signing.publicKey, "amara");
    for (const { id } of server.envelopes.ids()) await laptop.receive(server.envelopes.get(id)!.bytes, 1);
    await until(() => !Buffer.from(laptop.identity.sealing.publicKey).equals(Buffer.from(before)), "a new person sealing key");
    const tablet = laptop.devices.list().find((d) => d.key === Buffer.from(tabletId.signing.publicKey).toString("hex"))!;
    expect(tablet.revoked?.reason).toBe("revoked by the school");
    // the keyring the laptop publishes no longer lists the tablet, and boxes the new key to no one else
    const rings = laptop.envelopes.ids().map(({ id }) => laptop.envelopes.get(id)!)
      .filter((e) => e.kind === EnvelopeKind.Statement && Buffer.from(e.author).equals(Buffer.from(laptop.identity.person)))
      .map((e) => readKeyring(decodeEnvelope(e.bytes))).sort((a, b) => b.serial - a.serial);
    const tabletKey = Buffer.from(tabletId.signing.publicKey);
    expect(rings[0]!.devices.some((d) => tabletKey.equals(Buffer.from(d.key)))).toBe(false);
    expect(rings[0]!.revoked.some((k) => tabletKey.equals(Buffer.from(k)))).toBe(true);
    expect(Buffer.from(rings[0]!.sealPublicKey).equals(Buffer.from(laptop.identity.sealing.publicKey))).toBe(true);
    expect(rings[1]!.devices.some((d) => tabletKey.equals(Buffer.from(d.key)))).toBe(true); // the one before listed it
  }, 30_000);
});
