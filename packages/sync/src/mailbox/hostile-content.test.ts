// What a stranger can put in envelopes must never lock a child out: every kind of hostile change,
// delivered through a real carrier, is refused with a reason, and the child's node still starts.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import * as A from "@automerge/automerge";
import {
  receiptKey, appendMessage, contactCard, conversationId, emptySegment, EnvelopeKind, formatHlc, generateIdentity, keyId, newActorId, newConversationKey,
  randomBytes, sealChange, sealKey, signEnvelope, type ConversationDoc, type Identity, sealEnvelope,
} from "@pigeon/model";
import { fileStorage, Mailbox, memoryLinkPair, PigeonNode, SyncEngine } from "../index.js";
import { sealedBytes } from "../sealed.test-helper.js";
import { until } from "../until.test-helper.js";

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

function laptop(name: string, identity: Identity = generateIdentity(name), dir = mkdtempSync(join(tmpdir(), `pigeon-${name}-`))) {
  const m = new Mailbox({ identity, storage: fileStorage(dir), carrier: { quotaBytes: 1e8, perSourceBytes: 1e8, perAuthorBytes: 1e8 } });
  const s = new SyncEngine(m);
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    s.close();
    await m.close();
  };
  cleanup.push(async () => {
    await close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { m, s, dir, identity, close };
}

function connect(a: ReturnType<typeof laptop>, b: ReturnType<typeof laptop>) {
  const [la, lb] = memoryLinkPair(contactCard(a.identity), contactCard(b.identity));
  a.s.attach(la);
  b.s.attach(lb);
  return () => la.close("walked away");
}

describe("hostile content through a carrier", () => {
  it("refuses every kind of hostile change with a reason, and the child's node still starts", async () => {
    const child = laptop("zawadi");
    const carrier = laptop("carrier");
    const stranger = generateIdentity("amara"); // calls itself a classmate's name
    const friend = laptop("baraka");
    const me = child.identity.signing.publicKey;
    const conv = conversationId([stranger.signing.publicKey, me]);
    const key = newConversationKey();
    const now = Date.now();
    const envelopes: Uint8Array[] = [];
    const seal = (change: Uint8Array, segment = 0) =>
      sealedBytes(stranger, sealChange(stranger, { conversation: conv, segment, recipients: [me], created: now }, key, change), child.identity);
    envelopes.push(sealedBytes(stranger, sealKey(stranger, { conversation: conv, recipients: [contactCard(child.identity)], created: now }, key), child.identity));
    // a first, honest-looking message, then two different changes with the same (actor, seq)
    const actor = newActorId(stranger.signing.publicKey);
    const base = A.clone(emptySegment(), { actor });
    const msg = (doc: A.Doc<ConversationDoc>, body: string, counter: number) =>
      appendMessage(doc, { id: randomId(), authorKeyId: keyId(stranger.signing.publicKey), hlc: formatHlc({ wall: now, counter }), sentAt: now, body });
    const first = msg(base, "hello, I am amara", 0);
    const twinA = msg(A.clone(first.doc, { actor }), "meet me after school", 1);
    const twinB = msg(A.clone(first.doc, { actor }), "don't tell anyone", 1);
    expect(A.decodeChange(twinA.change).seq).toBe(A.decodeChange(twinB.change).seq);
    envelopes.push(seal(first.change), seal(twinA.change), seal(twinB.change));
    // a "read receipt" set on a message itself, not in the message's receipts map
    const astray = A.change(A.clone(first.doc, { actor: newActorId(stranger.signing.publicKey) }), (d) => {
      (d.messages[0] as unknown as Record<string, number>)[`${keyId(stranger.signing.publicKey)}/read`] = now;
    });
    envelopes.push(seal(A.getLastLocalChange(astray)!));
    // a "receipt" in the segment's map for a message no one wrote (junk that could pile up without bound)
    const junk = A.change(A.clone(first.doc, { actor: newActorId(stranger.signing.publicKey) }), (d) => {
      d.receipts[receiptKey(randomId(), keyId(stranger.signing.publicKey), "read")] = now;
    });
    envelopes.push(seal(A.getLastLocalChange(junk)!));
    // garbage sealed properly; a change that depends on something that never existed
    envelopes.push(seal(randomBytes(300)));
    const orphan = A.change(A.clone(A.load<ConversationDoc>(A.save(twinA.doc)), { actor: "ab".repeat(16) }), () => {});
    envelopes.push(seal(A.getLastLocalChange(orphan) ?? randomBytes(10)));
    // ciphertext that does not open; a key envelope whose members do not match; an unknown conversation
    envelopes.push(sealedBytes(stranger, signEnvelope(stranger, { kind: EnvelopeKind.Change, conversation: conv, segment: 0, recipients: [me], created: now, lifetime: 86400, keyId: randomBytes(8) }, randomBytes(200)), child.identity));
    // (a key addressed to the child in a conversation she does not know may be a channel's whose
    // membership has not reached her yet: it waits, within the stranger's budget, and expires)
    const unknownKey = sealEnvelope(stranger.sealing, sealKey(stranger, { conversation: randomBytes(16), recipients: [contactCard(child.identity)], created: now }, key), [child.identity.sealing.publicKey]);
    envelopes.push(unknownKey.bytes);
    envelopes.push(sealedBytes(stranger, sealChange(stranger, { conversation: randomBytes(16), segment: 0, recipients: [me], created: now }, key, first.change), child.identity));

    // the carrier picks them up somewhere, then meets the child
    for (const e of envelopes) await carrier.m.receive(e, 1);
    connect(carrier, child);
    await until(() => child.m.state.rejections().length >= 5 && child.m.state.openedStatus(unknownKey.id) === "pending", "the hostile changes to be refused");
    const reasons = child.m.state.rejections().map((r) => r.reason);
    expect(reasons).toContain("a receipt is set outside a message's receipts");
    expect(reasons).toContain("a receipt names a message that is not in the document");
    expect(reasons.some((r) => /two different changes numbered/.test(r))).toBe(true);
    expect(reasons.some((r) => /not an Automerge change/.test(r))).toBe(true);
    expect(await child.m.inbox()).toEqual([]); // a stranger's messages are requests, never in the inbox
    const shown = (await child.m.requests()).flatMap((r) => r.messages.map((m) => m.body));
    expect(shown.filter((b) => b !== "hello, I am amara").length).toBe(1); // one twin only

    // the child's laptop restarts: it starts, and a friend's message still arrives
    await child.close();
    const again = await PigeonNode.open({ identity: child.identity, storage: fileStorage(child.dir) });
    cleanup.push(() => again.shutdown());
    const engine = again.sync;
    const [lf, lc] = memoryLinkPair(contactCard(friend.identity), contactCard(child.identity));
    friend.s.attach(lf);
    engine.attach(lc);
    await until(() => friend.m.contacts().length === 1 && again.mailbox.contacts().some((c) => c.name === "baraka"), "met");
    await again.mailbox.addBuddy("baraka"); // the child chooses her friend (the stranger stays a request)
    await friend.m.send("zawadi", "are you coming to football?");
    await until(async () => (await again.mailbox.inbox()).some((m) => m.body === "are you coming to football?"), "the friend's message");
  });

  it("a store from before the (actor, seq) check still refuses the second twin instead of failing to start", async () => {
    const child = laptop("zawadi");
    const stranger = generateIdentity("mallory");
    const me = child.identity.signing.publicKey;
    const conv = conversationId([stranger.signing.publicKey, me]);
    const key = newConversationKey();
    const now = Date.now();
    const actor = newActorId(stranger.signing.publicKey);
    const doc = A.clone(emptySegment(), { actor });
    const one = appendMessage(A.clone(doc, { actor }), { id: randomId(), authorKeyId: keyId(stranger.signing.publicKey), hlc: formatHlc({ wall: now, counter: 0 }), sentAt: now, body: "one" });
    const two = appendMessage(A.clone(doc, { actor }), { id: randomId(), authorKeyId: keyId(stranger.signing.publicKey), hlc: formatHlc({ wall: now, counter: 0 }), sentAt: now, body: "two" });
    await child.m.receive(sealedBytes(stranger, sealKey(stranger, { conversation: conv, recipients: [contactCard(child.identity)], created: now }, key), child.identity), 1);
    await child.m.receive(sealedBytes(stranger, sealChange(stranger, { conversation: conv, segment: 0, recipients: [me], created: now }, key, one.change), child.identity), 1);
    child.m.state.db.exec("DELETE FROM change_seqs"); // as an older version left it
    const r = await child.m.receive(sealedBytes(stranger, sealChange(stranger, { conversation: conv, segment: 0, recipients: [me], created: now }, key, two.change), child.identity), 1);
    expect(r.stored).toBe(true);
    await until(() => child.m.state.rejections().length === 1, "the twin refused");
    expect(child.m.state.rejections()[0]!.reason).toMatch(/could not be applied/);
    await child.close();
    const again = new Mailbox({ identity: child.identity, storage: fileStorage(child.dir) });
    await again.recover(); // does not throw
    expect((await again.requests()).flatMap((r) => r.messages.map((m) => m.body))).toEqual(["one"]);
    await again.close();
  });

  it("keeps at most a budget of envelopes per author that cannot be opened, and drops them when they expire", async () => {
    let now = Date.now();
    const dir = mkdtempSync(join(tmpdir(), "pigeon-budget-"));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const child = generateIdentity("zawadi");
    const m = new Mailbox({ identity: child, storage: fileStorage(dir), now: () => now, carrier: { unopenedPerAuthorBytes: 64 * 1024 } });
    cleanup.push(() => m.close());
    const stranger = generateIdentity("stranger");
    const me = child.signing.publicKey;
    const results = [];
    for (let i = 0; i < 40; i++) {
      // 8 KiB each, for a conversation whose key never comes
      const env = signEnvelope(stranger, { kind: EnvelopeKind.Change, conversation: randomBytes(16), segment: 0, recipients: [me], created: now, lifetime: 3600, keyId: randomBytes(8) }, randomBytes(8 * 1024));
      results.push(await m.receive(sealedBytes(stranger, env, child), 1));
    }
    const stored = results.filter((r) => r.stored).length;
    expect(stored).toBeGreaterThan(0);
    expect(stored).toBeLessThanOrEqual(8);
    expect(results.find((r) => !r.stored)!.refused).toMatch(/cannot be opened yet/);
    expect(m.status().bytes).toBeLessThan(80 * 1024);
    now += 3601 * 1000;
    expect(await m.dropExpired()).toBe(stored);
    expect(m.status().envelopes).toBe(0);
  });

  it("a clock far in the future moves the child's clock at most 7 days ahead, and no further along", async () => {
    const child = laptop("zawadi");
    const classmate = laptop("baraka");
    const sender = generateIdentity("amara");
    const me = child.identity.signing.publicKey;
    await child.m.addContact(contactCard(sender)); // a card: a buddy
    const conv = conversationId([sender.signing.publicKey, me]);
    const key = newConversationKey();
    const now = Date.now();
    const year2200 = Date.UTC(2200, 0, 1);
    const doc = A.clone(emptySegment(), { actor: newActorId(sender.signing.publicKey) });
    const late = appendMessage(doc, { id: randomId(), authorKeyId: keyId(sender.signing.publicKey), hlc: formatHlc({ wall: year2200, counter: 5 }), sentAt: year2200, body: "from the future" });
    await child.m.receive(sealedBytes(sender, sealKey(sender, { conversation: conv, recipients: [contactCard(child.identity)], created: now }, key), child.identity), 1);
    await child.m.receive(sealedBytes(sender, sealChange(sender, { conversation: conv, segment: 0, recipients: [me], created: now }, key, late.change), child.identity), 1);
    await until(async () => (await child.m.inbox()).length === 1, "the message");
    const week = 7 * 24 * 3600 * 1000;
    expect(child.m.state.hlc().wall).toBeLessThanOrEqual(Date.now() + week);
    expect(child.m.state.hlc().wall).toBeGreaterThan(now + week - 60_000); // it did move (causality within the bound)
    // the child writes to a classmate: the classmate's clock is not dragged past its own bound either
    connect(child, classmate);
    await until(() => child.m.contacts().length === 2 && classmate.m.contacts().length === 1, "met");
    await classmate.m.addBuddy("zawadi");
    const sent = await child.m.send("baraka", "hi");
    expect(Number.parseInt(sent.hlc.slice(0, 9), 36)).toBeLessThanOrEqual(Date.now() + week);
    await until(async () => (await classmate.m.inbox()).length === 1, "delivered");
    expect(classmate.m.state.hlc().wall).toBeLessThanOrEqual(Date.now() + week);
  });
});

function randomId(): string {
  return Buffer.from(randomBytes(12)).toString("hex");
}
