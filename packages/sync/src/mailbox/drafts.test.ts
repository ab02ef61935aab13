// Drafts as a child with two devices lives them: a draft written on the laptop is there on the tablet
// once they meet, edits made apart meet by the model's rule (model/drafts.ts), a classmate handed every
// envelope opens none of them, sending a draft on one device removes it on the other, the drafts are
// rebuilt from the sealed store alone, and an older store's private drafts are carried over once.
import * as A from "@automerge/automerge";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { buddyListConversation, contactCard, DRAFTS_SEGMENT, EnvelopeKind, generateIdentity, sha256, utf8, type Identity } from "@pigeon/model";
import {
  fileStorage, Mailbox, type DraftView, type NodeStorage,
} from "../index.js";
import { until as waitUntil } from "../until.test-helper.js";
import { boot as bootLaptop, meet, pair as pairWith, type Laptop } from "../devices.test-helper.js";

const until = <T>(fn: () => Promise<T | undefined> | T | undefined, what: string, ms = 10_000) => waitUntil(fn, what, ms);

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

const boot = (id: Identity, storage?: NodeStorage) => bootLaptop(id, cleanup, storage);
const pair = (first: Laptop) => pairWith(first, cleanup);

const shown = (list: DraftView[]) => list.map((d) => `${d.id} ${d.to}: ${d.body}`);

async function sameEverywhere(devices: Laptop[], what: string): Promise<string[]> {
  return until(async () => {
    const lists = await Promise.all(devices.map(async (d) => shown(await d.m.drafts()).join("; ")));
    return lists.every((l) => l === lists[0]) ? lists[0]!.split("; ").filter(Boolean) : undefined;
  }, what);
}

/** Two devices of amara's, paired, and baraka's laptop that both know. */
async function family(): Promise<{ amara: Identity; laptop: Laptop; tablet: Laptop; baraka: Laptop }> {
  const amara = generateIdentity("amara");
  const laptop = await boot(amara);
  const tablet = await pair(laptop);
  const baraka = await boot(generateIdentity("baraka"));
  for (const d of [laptop, tablet]) {
    d.m.rememberContact(contactCard(baraka.id), "met");
    await d.m.addBuddy("baraka");
  }
  baraka.m.rememberContact(contactCard(amara), "met");
  await baraka.m.addBuddy("amara");
  return { amara, laptop, tablet, baraka };
}

describe("one child's drafts on two devices", () => {
  it("a draft written on the laptop is on the tablet after they meet; edits made apart converge, the later one shown", async () => {
    const { laptop, tablet } = await family();
    const d = await laptop.m.saveDraft("baraka", "see you at football");
    const home = meet(laptop, tablet);
    expect(await sameEverywhere([laptop, tablet], "the draft on the tablet")).toEqual([`${d.id} baraka@local: see you at football`]);
    home();
    // apart: the tablet edits first, the laptop a little later; both show the laptop's once they meet
    await tablet.m.saveDraft("baraka", "see you at football, bring the ball", d.id);
    await new Promise((r) => setTimeout(r, 5));
    await laptop.m.saveDraft("baraka", "see you at football at four", d.id);
    const again = meet(laptop, tablet);
    expect(await sameEverywhere([laptop, tablet], "edits made apart")).toEqual([`${d.id} baraka@local: see you at football at four`]);
    again();
    // apart: deleted on the laptop, edited on the tablet: the edit stays (nothing typed is lost)
    await laptop.m.deleteDraft(d.id);
    await tablet.m.saveDraft("baraka", "see you at football at five", d.id);
    meet(laptop, tablet);
    expect(await sameEverywhere([laptop, tablet], "a delete against an edit")).toEqual([`${d.id} baraka@local: see you at football at five`]);
    // they share one key for the buddy list and drafts: the person's own conversation
    expect(laptop.m.state.keys(buddyListConversation(laptop.id.person)).length).toBeGreaterThanOrEqual(1);
  });

  it("a draft never opens for a classmate, even handed every envelope, and is sent only when the child sends it", async () => {
    const { laptop, baraka } = await family();
    await laptop.m.saveDraft("baraka", "my secret plan for the party");
    const all = laptop.m.envelopes.idsAfter(new Uint8Array(0), 10_000).map((i) => laptop.m.envelopes.get(i)!);
    const personal = all.filter((e) => Buffer.from(e.conversation).equals(Buffer.from(buddyListConversation(laptop.id.person))));
    expect(personal.some((e) => e.kind === EnvelopeKind.Change && e.segment === DRAFTS_SEGMENT)).toBe(true);
    for (const e of personal) expect(e.recipients).toEqual([]); // sealed for the person alone
    const results = await baraka.m.receiveMany(all.map((e) => ({ bytes: e.sealed ?? e.bytes, hops: 1 })));
    // sealed for the person alone (no lock any receipt could open): not even carried
    for (const [i, e] of all.entries()) if (personal.includes(e)) expect(results[i]!.refused).toMatch(/for its author's own devices only/);
    expect(await baraka.m.drafts()).toEqual([]);
    expect(await baraka.m.inbox()).toEqual([]);
    expect(await baraka.m.requests()).toEqual([]);
    for (const e of personal) expect(baraka.m.state.openedStatus(e.id)).not.toBe("applied");
    // they meet: still nothing, until the child sends it
    meet(laptop, baraka);
    await new Promise((r) => setTimeout(r, 300));
    expect(baraka.m.status().carrying.envelopes).toBe(0);
    expect(await baraka.m.inbox()).toEqual([]);
  });

  it("sending a draft on the tablet removes it on the laptop; the classmate gets the message", async () => {
    const { laptop, tablet, baraka } = await family();
    const d = await laptop.m.saveDraft("baraka", "happy birthday!");
    meet(laptop, tablet);
    await sameEverywhere([laptop, tablet], "the draft on both");
    expect((await tablet.m.drafts()).map((x) => x.id)).toEqual([d.id]);
    await tablet.m.sendDraft(d.id);
    expect(await sameEverywhere([laptop, tablet], "sent: gone on both")).toEqual([]);
    meet(tablet, baraka);
    await until(async () => (await baraka.m.inbox()).some((m) => m.body === "happy birthday!") || undefined, "the message");
    expect((await laptop.m.outbox()).map((m) => m.body)).toContain("happy birthday!");
  });
});

describe("drafts on one laptop", () => {
  function dir(): string {
    const d = mkdtempSync(join(existsSync("/dev/shm") ? "/dev/shm" : tmpdir(), "pigeon-drafts-"));
    cleanup.push(() => rmSync(d, { recursive: true, force: true }));
    return d;
  }

  it("say when they change, as every edit the user sees does (an open web app shows it at once)", async () => {
    const d = dir();
    const m = new Mailbox({ identity: generateIdentity("amara"), storage: fileStorage(d) });
    let changes = 0;
    m.on("changed", () => changes++);
    const one = await m.saveDraft("baraka", "first");
    expect(changes).toBe(1);
    await m.saveDraft("baraka", "first, edited", one.id);
    expect(changes).toBe(2);
    await m.deleteDraft(one.id);
    expect(changes).toBe(3);
    await m.close();
  });

  it("are rebuilt from the sealed store alone when the documents are lost", async () => {
    const d = dir();
    const amara = generateIdentity("amara");
    let m = new Mailbox({ identity: amara, storage: fileStorage(d) });
    const one = await m.saveDraft("baraka", "first");
    await m.saveDraft("chiku", "second");
    await m.saveDraft("baraka", "first, edited", one.id);
    const gone = await m.saveDraft("dede", "thrown away");
    await m.deleteDraft(gone.id);
    const before = shown(await m.drafts());
    await m.close();
    rmSync(join(d, "documents"), { recursive: true, force: true });
    m = new Mailbox({ identity: amara, storage: fileStorage(d) });
    await m.recover();
    expect(shown(await m.drafts())).toEqual(before);
    expect(before.map((s) => s.split(" ").slice(1).join(" "))).toEqual(["chiku@local: second", "baraka@local: first, edited"]);
    await m.close();
  });

  it("an older store's private drafts are carried over once, with their ids and times", async () => {
    const d = dir();
    const amara = generateIdentity("amara");
    let m = new Mailbox({ identity: amara, storage: fileStorage(d) });
    // as a store from before shared drafts holds them: a private document, never sealed
    const oldId = sha256(utf8("pigeon-drafts-v1"), amara.person).subarray(0, 16);
    const { handle } = await m.documents.open<{ drafts: Record<string, unknown> }>(
      oldId, () => A.change(A.init({ actor: "00".repeat(16) }), { time: 0 }, (x: { drafts: Record<string, unknown> }) => { x.drafts = {}; }), "ab".repeat(16),
    );
    handle.update((doc) => A.change(doc, (x) => {
      x.drafts["0a1b2c3d"] = { to: new A.ImmutableString("baraka@local"), body: new A.ImmutableString("from before"), updatedAt: 1_700_000_000_000 };
      x.drafts["4e5f6a7b"] = { to: new A.ImmutableString("chiku@local"), body: new A.ImmutableString("also"), updatedAt: 1_700_000_001_000 };
    }));
    await m.documents.flush(handle as never);
    await m.close();
    m = new Mailbox({ identity: amara, storage: fileStorage(d) });
    await m.recover();
    expect(await m.drafts()).toEqual([
      { id: "0a1b2c3d", to: "baraka@local", body: "from before", updatedAt: 1_700_000_000_000 },
      { id: "4e5f6a7b", to: "chiku@local", body: "also", updatedAt: 1_700_000_001_000 },
    ]);
    // once: a draft deleted afterwards stays deleted when the store is opened again
    await m.deleteDraft("0a1b2c3d");
    await m.close();
    m = new Mailbox({ identity: amara, storage: fileStorage(d) });
    await m.recover();
    expect((await m.drafts()).map((x) => x.id)).toEqual(["4e5f6a7b"]);
    expect(m.state.setting("drafts-migrated")).toBeDefined();
    await m.close();
  });
});
