import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import * as A from "@automerge/automerge";
import {
  sealEnvelope, contactCard, conversationId, emptySegment, encodeFrame, formatHlc, generateIdentity, keyId, appendMessage, sealChange, type Identity,
} from "@pigeon/model";
import { fileStorage, Mailbox, MailboxError, memoryLinkPair, SyncEngine } from "./index.js";
import { until as waitUntil } from "./until.test-helper.js";

const until = <T>(fn: () => Promise<T | undefined> | T | undefined, what: string, ms = 5000) => waitUntil(fn, what, ms);

const dirs: string[] = [];
const open: { m: Mailbox; s: SyncEngine }[] = [];

function node(
  name: string,
  dir = mkdtempSync(join(tmpdir(), `pigeon-${name}-`)),
  identity: Identity = generateIdentity(name),
  opts: Partial<ConstructorParameters<typeof Mailbox>[0]> = {},
) {
  dirs.push(dir);
  const m = new Mailbox({ identity, storage: fileStorage(dir), ...opts });
  const s = new SyncEngine(m, { now: opts.now });
  open.push({ m, s });
  return { m, s, dir, identity };
}

function connect(a: { m: Mailbox; s: SyncEngine }, b: { m: Mailbox; s: SyncEngine }) {
  const [la, lb] = memoryLinkPair(contactCard(a.m.identity), contactCard(b.m.identity));
  a.s.attach(la);
  b.s.attach(lb);
  return () => la.close("walked away");
}

afterEach(async () => {
  for (const { m, s } of open.splice(0)) {
    s.close();
    await m.close();
  }
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("mailbox over a link", () => {
  it("delivers to a neighbour and shows the sender 'delivered', then 'read'", async () => {
    const a = node("amara");
    const b = node("baraka");
    connect(a, b);
    await until(() => a.m.contacts().length === 1 && b.m.contacts().length === 1, "contacts");
    // meeting makes no buddy: baraka chooses amara (amara chooses baraka by writing to him)
    await b.m.addBuddy("amara@local");
    const arrived: string[] = [];
    const receipts: string[] = [];
    b.m.on("message", (m) => arrived.push(`${m.direction} ${m.from} ${m.body} #${m.arrivalSeq}`));
    a.m.on("receipt", (r) => receipts.push(`${r.reader} ${r.state}`));
    const sent = await a.m.send("baraka@local", "hello baraka");
    expect(sent.direction).toBe("out");
    const inbox = await until(async () => { const i = await b.m.inbox(); return i.length ? i : undefined; }, "inbox");
    expect(inbox.map((m) => [m.from, m.body])).toEqual([["amara@local", "hello baraka"]]);
    const out = await until(async () => { const o = await a.m.outbox(); return o[0]?.state === "delivered" ? o : undefined; }, "delivered");
    expect(out[0]!.deliveredAt).toBeGreaterThan(0);
    expect(out[0]!.deliveredVia).toBe("direct");
    // counted from the index: handed on and acknowledged, it no longer waits
    expect((await a.m.folders()).waiting).toEqual({ newest: [], total: 0 });
    expect((await a.m.folders()).outbox).toMatchObject({ newest: [{ body: "hello baraka", state: "delivered" }], total: 1 });
    // "delivered" is baraka's acknowledgement (which carriers need anyway): nothing signed went back
    expect(b.m.envelopes.ownSealedFor(b.m.identity.person, a.m.identity.person)).toEqual([]);
    expect(await b.m.markRead()).toBe(1);
    await until(async () => (await a.m.outbox())[0]?.state === "read", "read");
    expect(arrived).toEqual(["in amara@local hello baraka #1"]);
    expect(receipts).toEqual(["baraka@local delivered", "baraka@local read"]);
    // "read" is signed: the one envelope of baraka's to amara
    expect(b.m.envelopes.ownSealedFor(b.m.identity.person, a.m.identity.person).length).toBe(1);
  });

  it("messages marked read one by one while earlier work runs go back in one signed receipt, each caller told about its own", async () => {
    const a = node("amara");
    const b = node("baraka");
    connect(a, b);
    await until(() => a.m.contacts().length === 1 && b.m.contacts().length === 1, "contacts");
    await b.m.addBuddy("amara@local");
    for (let i = 1; i <= 6; i++) await a.m.send("baraka@local", `riddle ${i}`);
    const inbox = await until(async () => { const i = await b.m.inbox(); return i.length === 6 ? i : undefined; }, "six in baraka's inbox");
    // a page showing them marks each as it is shown, all at once (the web app, an XMPP client's markers)
    const told = await Promise.all([...inbox.map((m) => b.m.markRead([m.id])), b.m.markRead([inbox[0]!.id])]);
    expect(told.slice(0, 6).every((n) => n === 1 || n === 0)).toBe(true);
    expect(told.slice(0, 6).reduce((x, y) => x + y, 0)).toBe(6); // each marked once, each caller told of its own
    await until(async () => (await a.m.outbox()).every((m) => m.state === "read"), "all six read on amara's side");
    // the first ask ran at once, the five behind it joined one batch: two signed receipts, not six
    expect(b.m.envelopes.ownSealedFor(b.m.identity.person, a.m.identity.person).length).toBeLessThanOrEqual(2);
    expect(await b.m.markRead([inbox[2]!.id])).toBe(0); // already read
  });

  it("holds a message while the recipient is away, across restarts, and delivers it once when they meet", async () => {
    const a = node("amara");
    const b = node("baraka");
    const cut = connect(a, b);
    await until(() => a.m.contacts().length === 1 && b.m.contacts().length === 1, "contacts");
    await b.m.addBuddy("amara"); // baraka chose amara: her message is no request, and gets its receipt
    cut();
    await a.m.send("baraka", "see you tomorrow");
    expect((await a.m.outbox())[0]!.state).toBe("waiting");
    // A restarts
    const aDir = a.dir;
    a.s.close();
    await a.m.close();
    open.splice(open.findIndex((x) => x.m === a.m), 1);
    const a2 = node("amara", aDir, a.identity);
    await a2.m.recover();
    expect((await a2.m.outbox()).map((m) => [m.body, m.state])).toEqual([["see you tomorrow", "waiting"]]);
    connect(a2, b);
    connect(a2, b); // a second path: the message must still appear once
    await until(async () => (await a2.m.outbox())[0]?.state === "delivered", "delivered");
    expect((await b.m.inbox()).map((m) => m.body)).toEqual(["see you tomorrow"]);
  });

  it("carries through a laptop that cannot read it (A - B - C) and drops the copies once delivery is confirmed", async () => {
    const a = node("amara");
    const b = node("baraka");
    const c = node("chiku");
    // A learns of C (e.g. met yesterday), then only ever meets B
    const meet = connect(a, c);
    await until(() => a.m.contacts().length === 1 && c.m.contacts().length === 1, "contacts");
    await c.m.addBuddy("amara"); // chiku chose amara when they met
    meet();
    await a.m.send("chiku", "via baraka");
    const ab = connect(a, b);
    await until(() => b.m.status().carrying.envelopes === 1, "B carries the message (its key inside the same envelope)");
    ab();
    expect(await b.m.inbox()).toEqual([]);
    // sealed: B cannot tell whom it carries for
    expect(b.m.status().carrying.people).toBe(0);
    // what B holds names neither child: no person key, no sealing key, no conversation id, in any of its bytes
    const held = Buffer.concat(b.m.envelopes.ids().map(({ id }) => b.m.envelopes.bytesOf(id)!));
    const conv = conversationId([a.identity.person, c.identity.person]);
    for (const secret of [a.identity.person, c.identity.person, a.identity.sealing.publicKey, c.identity.sealing.publicKey, conv])
      expect(held.includes(Buffer.from(secret))).toBe(false);
    const bc = connect(b, c);
    await until(async () => (await c.m.inbox()).length === 1, "chiku's inbox");
    // C's acknowledgement reaches B: B drops A's envelopes and carries only the acknowledgement, which
    // is also C's delivered receipt for A (no second envelope travels back)
    await until(() => b.m.status().carrying.envelopes === 0 && b.m.status().carrying.acks >= 1, "B to drop delivered copies");
    expect(b.m.status().carrying.bytes).toBe(0);
    bc();
    connect(a, b);
    await until(async () => (await a.m.outbox())[0]?.state === "delivered", "delivered via carrier");
    const out = (await a.m.outbox())[0]!;
    expect(out.sentVia).toBe("carrier");
    expect(out.sentTo).toBe("baraka@local");
    expect(out.deliveredVia).toBe("carriers");
  });

  it("once the recipient's receipt opened its lock, the sender hands its message to no new carrier", async () => {
    const a = node("amara");
    const c = node("chiku");
    const d = node("dembe");
    const ac = connect(a, c);
    await until(() => a.m.contacts().length === 1 && c.m.contacts().length === 1, "contacts");
    await c.m.addBuddy("amara");
    const sent = await a.m.send("chiku", "straight to you");
    await until(async () => (await a.m.outbox()).find((m) => m.id === sent.id)?.state === "delivered", "delivered");
    const id = a.m.state.sentEnvelope(sent.id)!;
    await until(() => a.m.envelopes.ackedByAllRecipients(id, a.m.envelopes.meta(id)!.locks!) || undefined, "chiku's receipt to open the lock at amara");
    ac();
    connect(a, d); // a carrier: it would be sprayed a copy of anything not yet delivered
    await until(() => d.s.peers()[0]?.reconcile.done || undefined, "amara and dembe to reconcile");
    await new Promise((r) => setTimeout(r, 200));
    expect(d.m.envelopes.has(id)).toBe(false);
    expect(d.m.status().carrying.envelopes).toBe(0);
  });

  it("refuses unknown addresses and empty messages clearly", async () => {
    const a = node("amara");
    await expect(a.m.send("nobody@local", "hi")).rejects.toThrow(MailboxError);
    await expect(a.m.send("nobody@local", "hi")).rejects.toThrow(/not among the people this laptop knows/);
    await expect(a.m.send("bad address!", "hi")).rejects.toThrow(/not a valid address/);
  });

  it("keeps drafts across restarts and never sends them by accident", async () => {
    const a = node("amara");
    const b = node("baraka");
    connect(a, b);
    await until(() => a.m.contacts().length === 1 && b.m.contacts().length === 1, "contacts");
    await b.m.addBuddy("amara");
    const d = await a.m.saveDraft("baraka", "not yet");
    expect((await a.m.drafts()).map((x) => x.body)).toEqual(["not yet"]);
    await new Promise((r) => setTimeout(r, 50));
    expect(await b.m.inbox()).toEqual([]);
    await a.m.sendDraft(d.id);
    expect(await a.m.drafts()).toEqual([]);
    await until(async () => (await b.m.inbox()).length === 1, "draft delivered");
  });

  it("rolls a long conversation over into new segment documents, shown as one conversation", async () => {
    const a = node("amara", undefined, undefined, { segmentMessageLimit: 3 });
    const b = node("baraka", undefined, undefined, { segmentMessageLimit: 3 });
    connect(a, b);
    await until(() => a.m.contacts().length === 1 && b.m.contacts().length === 1, "contacts");
    await b.m.addBuddy("amara");
    for (let i = 0; i < 8; i++) await a.m.send("baraka", `message ${i}`);
    await until(async () => (await b.m.inbox()).length === 8, "all 8 delivered");
    expect((await b.m.inbox()).map((m) => m.body)).toEqual(Array.from({ length: 8 }, (_, i) => `message ${i}`));
    const conv = conversationId([a.identity.signing.publicKey, b.identity.signing.publicKey]);
    expect(a.m.state.segments(conv)).toEqual([0, 1, 2]);
    await until(async () => (await a.m.outbox()).every((m) => m.state === "delivered"), "delivered");
  });

  it("a laptop whose clock is days off can neither reorder the conversation nor expire it", async () => {
    const day = 86_400_000;
    const a = node("amara", undefined, undefined, { now: () => Date.now() + 3 * day }); // 3 days fast
    const b = node("baraka");
    const c = node("chiku", undefined, undefined, { now: () => Date.now() - 30 * day }); // a month slow
    connect(a, b);
    await until(() => a.m.contacts().length === 1 && b.m.contacts().length === 1, "contacts");
    await b.m.addBuddy("amara");
    await a.m.send("baraka", "question from the future");
    await until(async () => (await b.m.inbox()).length === 1, "question");
    await b.m.send("amara", "answer");
    await until(async () => (await a.m.inbox()).length === 1, "answer");
    const thread = [...(await b.m.inbox()), ...(await b.m.outbox())].sort((x, y) => (x.hlc < y.hlc ? -1 : 1));
    expect(thread.map((m) => m.body)).toEqual(["question from the future", "answer"]);
    expect((await b.m.inbox())[0]!.claimedSentAt).toBeGreaterThan(Date.now() + 2 * day); // shown as their claim
    // C's clock is a month slow; an envelope from it with a 14-day lifetime is still carried and delivered
    connect(c, b);
    await until(() => c.m.contacts().length === 1 && b.m.contacts().length === 2, "contacts");
    await b.m.addBuddy("chiku");
    await c.m.send("baraka", "from the past");
    await until(async () => (await b.m.inbox()).some((m) => m.body === "from the past"), "delivered despite the old clock");
  });

  it("a forged change under someone else's actor is rejected and does not block their real change", async () => {
    const a = node("amara");
    const b = node("baraka");
    const mallory = node("mallory");
    connect(a, b);
    await until(() => a.m.contacts().length === 1 && b.m.contacts().length === 1, "contacts");
    await b.m.addBuddy("amara");
    await a.m.send("baraka", "first");
    await until(async () => (await b.m.inbox()).length === 1, "first");
    // Mallory (who is not a member) and B (who is) both try to write amara's next change
    const conv = conversationId([a.identity.signing.publicKey, b.identity.signing.publicKey]);
    const key = b.m.state.keys(conv)[0]!.key;
    const handle = (await a.m.documents.open(
      (await import("@pigeon/model")).segmentDocumentId(conv, 0), () => emptySegment(), "00".repeat(16),
    )).handle;
    const amaraActor = A.getActorId(handle.doc() as A.Doc<unknown>);
    const poisoned = appendMessage(A.clone(handle.doc() as never, { actor: amaraActor }), {
      id: "f".repeat(24), authorKeyId: keyId(a.identity.signing.publicKey), hlc: formatHlc({ wall: Date.now(), counter: 9 }), sentAt: Date.now(), body: "forged",
    });
    const [lm, lb] = (await import("./memory-link.js")).memoryLinkPair(contactCard(mallory.identity), contactCard(b.identity));
    b.s.attach(lb);
    lm.onFrame(() => {});
    // signed by B, who is a member but not amara: the actor check must catch it
    const forged = sealChange(b.identity, { conversation: conv, segment: 0, recipients: [a.identity.signing.publicKey], created: Date.now() }, key, poisoned.change);
    lm.send(encodeFrame({ type: "envelope", hops: 0, copies: 0, envelope: sealEnvelope(b.identity.sealing, forged, [a.identity.sealing.publicKey]).bytes }));
    await until(() => b.m.state.rejections().length === 1, "the forged change to be rejected");
    expect(b.m.state.rejections()[0]!.reason).toMatch(/does not belong to the signer/);
    await a.m.send("baraka", "second");
    await until(async () => (await b.m.inbox()).length === 2, "amara's real next change to apply");
    expect((await b.m.inbox()).map((m) => m.body)).toEqual(["first", "second"]);
  });

  it("drops carried envelopes past their lifetime, by the carrier's own clock", async () => {
    let now = Date.now();
    const a = node("amara", undefined, undefined, { lifetimeSeconds: 3600 });
    const b = node("baraka", undefined, undefined, { now: () => now });
    const c = node("chiku");
    const meet = connect(a, c);
    await until(() => a.m.contacts().length === 1, "contacts");
    meet();
    await a.m.send("chiku", "short-lived");
    connect(a, b);
    await until(() => b.m.status().carrying.envelopes === 1, "B carries");
    expect(await b.m.dropExpired()).toBe(0);
    now += 3601 * 1000; // an hour later on B's clock
    expect(await b.m.dropExpired()).toBe(1);
    expect(b.m.status().carrying.envelopes).toBe(0);
  });
});
