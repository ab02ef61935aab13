// Names a child can rely on: two people with one name never block that name, anyone can be
// addressed by fingerprint, contacts get the user's own names and can be removed, and replying
// to a message works without knowing the sender's name.
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { contactCard, fingerprint, generateIdentity, type Identity } from "@pigeon/model";
import { fileStorage, Mailbox, MailboxError, memoryLinkPair, SyncEngine } from "../index.js";
import { until } from "../until.test-helper.js";

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

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

function mailbox(identity: Identity): Mailbox {
  const dir = mkdtempSync(join(existsSync("/dev/shm") ? "/dev/shm" : tmpdir(), "pigeon-people-"));
  const m = new Mailbox({ identity, storage: fileStorage(dir) });
  cleanup.push(async () => {
    await m.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return m;
}

async function failure(p: Promise<unknown> | (() => unknown)): Promise<MailboxError> {
  try {
    await (typeof p === "function" ? p() : p);
  } catch (e) {
    if (e instanceof MailboxError) return e;
    throw e;
  }
  throw new Error("expected a MailboxError");
}

describe("people and names", () => {
  it("lists both people called amara with fingerprints, and sends to the one chosen", async () => {
    const me = mailbox(generateIdentity("zawadi"));
    const amara1 = generateIdentity("amara");
    const amara2 = generateIdentity("amara");
    me.rememberContact(contactCard(amara1), "met");
    me.rememberContact(contactCard(amara2), "card");
    const e = await failure(me.send("amara@local", "hi"));
    expect(e.code).toBe("ambiguous-address");
    expect(e.message).toContain(fingerprint(amara1.signing.publicKey));
    expect(e.message).toContain(fingerprint(amara2.signing.publicKey));
    expect(e.candidates?.map((c) => c.fingerprint).sort()).toEqual([fingerprint(amara1.signing.publicKey), fingerprint(amara2.signing.publicKey)].sort());
    // by fingerprint, or by the address narrowed with the start of one
    const fp2 = fingerprint(amara2.signing.publicKey);
    const sent = await me.send(fp2, "hello second amara");
    expect(sent.conversation).not.toBe("");
    const narrowed = me.resolve(`amara@local#${fingerprint(amara1.signing.publicKey).slice(0, 4)}`);
    if (fp2.slice(0, 4) !== fingerprint(amara1.signing.publicKey).slice(0, 4))
      expect(fingerprint(narrowed.signPublicKey)).toBe(fingerprint(amara1.signing.publicKey));
    // a petname makes the choice stick; removing the other one makes the name plain again
    await me.renameContact(fp2, "amara-b"); // writing to her made her a buddy; the petname is on the buddy list
    expect(fingerprint(me.resolve("amara-b").signPublicKey)).toBe(fp2);
    await me.removeContact(fingerprint(amara1.signing.publicKey));
    expect(fingerprint(me.resolve("amara@local").signPublicKey)).toBe(fp2);
    expect(me.contacts().map((c) => c.petname)).toEqual(["amara-b"]);
  });

  it("says what is true when sending to yourself or to someone unknown", async () => {
    const me = mailbox(generateIdentity("zawadi"));
    expect((await failure(me.send("zawadi@local", "hi"))).message).toMatch(/your own address/);
    expect((await failure(me.send(fingerprint(me.me), "hi"))).message).toMatch(/your own address/);
    expect((await failure(me.send("nobody@local", "hi"))).message).toMatch(/not among the people this laptop knows/);
    expect((await failure(me.send("amara@local#0000", "hi"))).code).toBe("bad-input"); // 0 is not base32
    expect((await failure(() => me.renameContact("nobody@local", "x"))).code).toBe("unknown-address");
  });

  it("a message relayed from someone never met shows their claimed name, marked, and can be answered", async () => {
    const zawadi = mailbox(generateIdentity("zawadi"));
    const amara = mailbox(generateIdentity("amara")); // the real classmate, met
    const stranger = mailbox(generateIdentity("amara")); // someone else calling themselves amara
    const carrier = mailbox(generateIdentity("bus"));
    let apart = meet(zawadi, amara);
    await until(() => zawadi.contacts().length === 1, "met amara");
    apart();
    stranger.rememberContact(contactCard(zawadi.identity), "card"); // from a card, never met
    await stranger.send("zawadi", "hello from far away");
    apart = meet(stranger, carrier);
    await until(() => carrier.status().carrying.envelopes >= 1, "the bus carries it");
    apart();
    apart = meet(carrier, zawadi);
    const [request] = await until(async () => {
      const r = await zawadi.requests();
      return r.length ? r : undefined;
    }, "the relayed message, as a request");
    const got = request!.messages[0];
    const fp = fingerprint(stranger.me);
    expect(request!.fingerprint).toBe(fp);
    expect(got!.from).toBe(`amara@local#${fp.slice(0, 4)}`); // never shown as the amara zawadi knows
    expect(got!.request).toBe(true);
    expect(await zawadi.inbox()).toEqual([]); // never in the inbox as if from a friend
    // the web app's first screen, counted from the index: the same as the folders asked one by one
    expect(await zawadi.folders()).toEqual({
      inbox: { newest: [], total: 0, unread: 0 }, outbox: { newest: await zawadi.outbox(), total: 0 }, waiting: { newest: [], total: 0 }, requests: await zawadi.requests(),
    });
    expect((await zawadi.folders()).requests.map((r) => r.fingerprint)).toEqual([fp]);
    // a plain "amara" is now two people: the choice is listed, the real one is never taken silently
    expect((await failure(zawadi.send("amara@local", "hi"))).code).toBe("ambiguous-address");
    // answering a request ("who are you?") does not make its sender a buddy
    await zawadi.reply(got!.id, "who are you?");
    apart();
    apart = meet(carrier, stranger);
    await until(async () => (await stranger.inbox()).length === 1, "the answer reaches the stranger");
    // no delivered receipt went back while it was a request: the stranger did not learn it arrived
    expect((await stranger.outbox())[0]!.state).not.toBe("delivered");
    apart();
    expect((await failure(zawadi.reply("no-such-id", "x"))).code).toBe("not-found");
    expect(await zawadi.markRead()).toBe(0); // a request is not marked read (no receipt goes back)
    expect(await zawadi.buddies()).toEqual([]);
    // accepting makes them a buddy: the message moves to the inbox and its receipt is written
    await zawadi.acceptRequest(got!.from);
    expect(await zawadi.requests()).toEqual([]);
    expect((await zawadi.inbox()).map((m) => m.body)).toEqual(["hello from far away"]);
    expect((await zawadi.inbox())[0]!.from).toBe("amara@local#" + fp.slice(0, 4));
    expect((await zawadi.buddies()).map((b) => [b.address, b.how])).toEqual([[`amara@local#${fp.slice(0, 4)}`, "request"]]);
    // and can be written to by the address shown; the bus, near both, carries the answer and the receipt
    await zawadi.send(got!.from, "and again");
    apart = meet(carrier, zawadi);
    const apart2 = meet(carrier, stranger);
    await until(async () => (await stranger.inbox()).length === 2, "the second answer reaches the stranger");
    await until(async () => (await stranger.outbox())[0]!.state === "delivered", "the receipt, now that they are a buddy");
    apart();
    apart2();
  });

  it("writing to someone makes them a buddy; a request's sender stays one until accepted", async () => {
    const zawadi = mailbox(generateIdentity("zawadi"));
    const amara = generateIdentity("amara");
    zawadi.rememberContact(contactCard(amara), "met");
    expect((await zawadi.nearby()).map((n) => [n.address, n.buddy])).toEqual([["amara@local", false]]);
    await zawadi.send("amara", "hello");
    expect((await zawadi.buddies()).map((b) => [b.address, b.how])).toEqual([["amara@local", "met"]]);
    expect((await zawadi.nearby()).map((n) => [n.address, n.buddy])).toEqual([["amara@local", true]]);
  });

  it("requests can be ignored or reported, and a reported one is kept for the school", async () => {
    const zawadi = mailbox(generateIdentity("zawadi"));
    const carrier = mailbox(generateIdentity("bus"));
    const strangers = [mailbox(generateIdentity("x1")), mailbox(generateIdentity("x2"))];
    for (const s of strangers) {
      s.rememberContact(contactCard(zawadi.identity), "card");
      await s.send("zawadi", `meet me after school, don't tell anyone (${s.identity.name})`);
      const apart = meet(s, carrier);
      await until(async () => (await s.outbox())[0]?.state === "sent", "handed to the bus");
      apart();
    }
    const apart = meet(carrier, zawadi);
    await until(async () => (await zawadi.requests()).length === 2, "two requests");
    apart();
    const [r1, r2] = await zawadi.requests();
    await zawadi.decideRequest(r1!.from, "ignored");
    await zawadi.decideRequest(r2!.from, "reported", "asked me to keep a secret");
    expect(await zawadi.requests()).toEqual([]);
    expect(await zawadi.inbox()).toEqual([]);
    expect(zawadi.reports()).toEqual([{ from: r2!.from, fingerprint: r2!.fingerprint, at: expect.any(Number), note: "asked me to keep a secret" }]);
  });

  it("laptops met nearby are remembered at most 60 an hour, none made a buddy, and every contact can be removed", async () => {
    const me = mailbox(generateIdentity("zawadi"));
    const swarm = Array.from({ length: 300 }, (_, i) => generateIdentity(`throwaway${i}`));
    const pushed: string[] = [];
    me.on("contact", (c) => pushed.push(c.name));
    for (const id of swarm) me.rememberContact(contactCard(id), "met");
    expect(me.contacts().length).toBe(60);
    expect(pushed.length).toBe(60);
    expect((await me.nearby()).length).toBe(60); // offered as nearby; the child chooses buddies
    expect(await me.buddies()).toEqual([]);
    // a card the child chose is not limited, and makes a buddy
    const friend = generateIdentity("amara");
    await me.addContact(contactCard(friend));
    expect(me.resolve("amara").name).toBe("amara");
    expect((await me.buddies()).map((b) => b.address)).toEqual(["amara@local"]);
    for (const c of me.contacts()) await me.removeContact(fingerprint(c.signPublicKey));
    expect(me.contacts()).toEqual([]);
    expect(await me.buddies()).toEqual([]);
  });
});
