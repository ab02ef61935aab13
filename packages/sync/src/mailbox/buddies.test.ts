// The buddy list as a child with several devices lives it: devices paired in-process the way
// `Devices.openPairing` and `pairDevice` pair them, edits made on each while apart, and the same list
// on every device once they meet; a classmate who is blocked is shown nowhere and gets no receipt; the
// list is rebuilt from the sealed store alone; an older store's contacts become buddies once.
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { buddyListConversation, contactCard, generateIdentity, type Identity } from "@pigeon/model";
import {
  fileStorage, Mailbox, memoryStorage, type BuddyView, type NodeStorage,
} from "../index.js";
import { until as waitUntil } from "../until.test-helper.js";
import { boot as bootLaptop, meet, pair as pairWith, type Laptop } from "../devices.test-helper.js";

const until = <T>(fn: () => Promise<T | undefined> | T | undefined, what: string, ms = 10_000) => waitUntil(fn, what, ms);

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

const laptop = (id: Identity, storage?: NodeStorage) => bootLaptop(id, cleanup, storage);
const pair = (first: Laptop) => pairWith(first, cleanup);

const shown = (list: BuddyView[]) => list.map((b) => `${b.address}${b.petname ? ` "${b.petname}"` : ""}${b.groups.length ? ` [${b.groups.join(",")}]` : ""}${b.blocked ? " blocked" : ""}`);

async function sameEverywhere(devices: Laptop[], what: string): Promise<string[]> {
  return until(async () => {
    const lists = await Promise.all(devices.map(async (d) => shown(await d.m.buddies()).join("; ")));
    return lists.every((l) => l === lists[0]) ? lists[0]!.split("; ").filter(Boolean) : undefined;
  }, what);
}

describe("one child's buddy list on several devices", () => {
  it("edits made apart on three devices (add, rename, remove) meet as the model's rule says, the same on every device", async () => {
    const amara = generateIdentity("amara");
    const phone = await laptop(amara); // holds the person key
    const tablet = await pair(phone);
    const laptop3 = await pair(phone);
    const baraka = await laptop(generateIdentity("baraka"));
    const chiku = await laptop(generateIdentity("chiku"));
    expect(tablet.m.me).toEqual(phone.m.me); // one person, three devices
    expect(phone.m.devices.list().filter((d) => !d.revoked)).toHaveLength(3);

    // in class: the phone meets baraka, and the child makes him a buddy (meeting alone does not)
    const away = meet(phone, baraka);
    await until(() => phone.m.contacts().length === 1, "the phone to meet baraka");
    expect(await phone.m.buddies()).toEqual([]);
    await phone.m.addBuddy("baraka");
    away();
    // at home the devices meet: every one has baraka
    const apart = [meet(phone, tablet), meet(tablet, laptop3)];
    expect(await sameEverywhere([phone, tablet, laptop3], "baraka on every device")).toEqual(["baraka@local"]);
    for (const a of apart) a();

    // apart: the phone adds chiku, the tablet renames baraka, the laptop removes him
    const atChiku = meet(phone, chiku);
    await until(() => phone.m.contacts().some((c) => c.name === "chiku"), "the phone to meet chiku");
    await phone.m.addBuddy("chiku");
    atChiku();
    await tablet.m.renameBuddy("baraka", "bara");
    await tablet.m.addToGroup("bara", "football");
    await laptop3.m.removeBuddy("baraka");
    expect(shown(await phone.m.buddies())).toEqual(["baraka@local", "chiku@local"]);
    expect(shown(await tablet.m.buddies())).toEqual(['baraka@local "bara" [football]']);
    expect(shown(await laptop3.m.buddies())).toEqual([]);

    // they meet again: the removal stands (a rename is not an add), chiku is added, on every device
    const together = [meet(phone, tablet), meet(tablet, laptop3)];
    expect(await sameEverywhere([phone, tablet, laptop3], "the three edits merged")).toEqual(["chiku@local"]);
    // the petname and group survived the removal: adding baraka back (on the laptop) brings them back everywhere
    await laptop3.m.addBuddy("baraka");
    expect(await sameEverywhere([phone, tablet, laptop3], "baraka back")).toEqual(['baraka@local "bara" [football]', "chiku@local"]);
    expect(tablet.m.resolve("bara").name).toBe("baraka");
    for (const t of together) t();
    // one key envelope: the devices that did not create the list used the one that arrived
    expect(phone.m.state.keys(buddyListConversation(amara.person))).toHaveLength(1);
  });

  it("two devices that each started the buddy list while apart converge (two keys, both kept)", async () => {
    const amara = generateIdentity("amara");
    const phone = await laptop(amara);
    const tablet = await pair(phone);
    const baraka = generateIdentity("baraka");
    const chiku = generateIdentity("chiku");
    phone.m.rememberContact(contactCard(baraka), "met");
    tablet.m.rememberContact(contactCard(chiku), "met");
    await phone.m.addBuddy("baraka");
    await tablet.m.addBuddy("chiku");
    await tablet.m.renameBuddy("chiku", "chi");
    const conv = buddyListConversation(amara.person);
    expect(phone.m.state.keys(conv)).toHaveLength(1);
    const link = meet(phone, tablet);
    expect(await sameEverywhere([phone, tablet], "both lists merged")).toEqual(["baraka@local", 'chiku@local "chi"']);
    expect(phone.m.state.keys(conv)).toHaveLength(2);
    expect(tablet.m.state.keys(conv)).toHaveLength(2);
    // each keeps writing with its own key; the other opens it
    await phone.m.addToGroup("chi", "my class");
    expect(await sameEverywhere([phone, tablet], "an edit after meeting")).toEqual(["baraka@local", 'chiku@local "chi" [my class]']);
    // the phone knows chiku's keys from the list alone (only the tablet met her): it can write to her
    expect(phone.m.contacts().map((c) => c.name).sort()).toEqual(["baraka", "chiku"]);
    expect((await phone.m.send("chi", "hello")).to).toEqual(["chiku@local"]);
    link();
  });

  it("a block made on one device holds on the other: nothing shown, no receipt, carried only like anyone's", async () => {
    const amara = generateIdentity("amara");
    const phone = await laptop(amara);
    const tablet = await pair(phone);
    const chiku = await laptop(generateIdentity("chiku"));
    const toChiku = meet(phone, chiku);
    await until(() => chiku.m.contacts().length === 1 && phone.m.contacts().length === 1, "met");
    await phone.m.addBuddy("chiku");
    await chiku.m.send("amara", "hi amara");
    await until(async () => (await phone.m.inbox()).length === 1, "a buddy's message in the inbox");
    await until(async () => (await chiku.m.outbox())[0]?.state === "delivered", "delivered receipt to a buddy");
    toChiku();
    // the tablet blocks her; the phone learns it when the devices meet
    const home = meet(phone, tablet);
    await until(async () => (await tablet.m.buddies()).length === 1, "the list on the tablet");
    await tablet.m.blockBuddy("chiku");
    await until(async () => (await phone.m.blocked()).length === 1, "the block on the phone");
    home();
    expect(await phone.m.inbox()).toEqual([]); // what she wrote before is hidden too
    expect(await phone.m.requests()).toEqual([]);
    expect((await phone.m.buddies()).map((b) => [b.address, b.blocked])).toEqual([["chiku@local", true]]);
    await expect(phone.m.send("chiku", "hi")).rejects.toMatchObject({ code: "blocked" });
    // she writes again: the phone takes it only as a carrier (never opened, no receipt, no acknowledgement)
    const sent = await chiku.m.send("amara", "why did you block me?");
    const again = meet(phone, chiku);
    await until(() => phone.m.status().carrying.envelopes >= 1, "carried like anyone's");
    await new Promise((r) => setTimeout(r, 300));
    expect(await phone.m.inbox()).toEqual([]);
    expect(await phone.m.requests()).toEqual([]);
    expect((await chiku.m.message(sent.id))?.state).toBe("sent");
    // unblocked: her earlier message is back; what came while she was blocked stays unopened
    await phone.m.unblockBuddy("chiku");
    expect((await phone.m.inbox()).map((m) => m.body)).toEqual(["hi amara"]);
    again();
    // a block also covers someone never on the list: a stranger's request disappears
    const stranger = await laptop(generateIdentity("stranger"));
    stranger.m.rememberContact(contactCard(amara), "card");
    await stranger.m.send("amara", "let's be friends");
    const s = meet(stranger, phone);
    await until(async () => (await phone.m.requests()).length === 1, "the request");
    await phone.m.blockBuddy((await phone.m.requests())[0]!.from);
    expect(await phone.m.requests()).toEqual([]);
    expect((await phone.m.blocked()).map((b) => b.address)).toEqual([expect.stringMatching(/^stranger@local/)]);
    s();
  });
});

describe("the buddy list on one laptop", () => {
  function dir(): string {
    const d = mkdtempSync(join(existsSync("/dev/shm") ? "/dev/shm" : tmpdir(), "pigeon-buddies-"));
    cleanup.push(() => rmSync(d, { recursive: true, force: true }));
    return d;
  }

  it("is rebuilt from the sealed store alone when the documents are lost", async () => {
    const d = dir();
    const amara = generateIdentity("amara");
    let m = new Mailbox({ identity: amara, storage: fileStorage(d) });
    for (const name of ["baraka", "chiku"]) m.rememberContact(contactCard(generateIdentity(name)), "met");
    await m.addBuddy("baraka");
    await m.addBuddy("chiku");
    await m.renameBuddy("chiku", "chi");
    await m.blockBuddy("baraka");
    const before = shown(await m.buddies());
    await m.close();
    rmSync(join(d, "documents"), { recursive: true, force: true });
    m = new Mailbox({ identity: amara, storage: fileStorage(d) });
    await m.recover();
    expect(shown(await m.buddies())).toEqual(before);
    expect(before).toEqual(["baraka@local blocked", 'chiku@local "chi"']);
    await m.close();
  });

  it("an older store's contacts (met, card, accepted) and petnames become buddies once; those known only by their claim do not", async () => {
    const d = dir();
    const amara = generateIdentity("amara");
    let m = new Mailbox({ identity: amara, storage: fileStorage(d) });
    // as a store from before the buddy list holds them
    const people = ["baraka", "chiku", "dede", "eshe"].map((n) => generateIdentity(n));
    const hows = ["met", "card", "accepted", "introduced"];
    people.forEach((p, i) => m.state.rememberContact(contactCard(p), hows[i]!, Date.now()));
    m.state.setPetname(people[0]!.person, "bara");
    await m.recover();
    expect(shown(await m.buddies())).toEqual(['baraka@local "bara"', "chiku@local", "dede@local"]);
    expect((await m.buddies()).map((b) => b.how)).toEqual(["met", "card", "request"]);
    // once: a buddy removed afterwards stays removed when the store is opened again
    await m.removeBuddy("chiku");
    await m.close();
    m = new Mailbox({ identity: amara, storage: fileStorage(d) });
    await m.recover();
    expect(shown(await m.buddies())).toEqual(['baraka@local "bara"', "dede@local"]);
    await m.close();
  });

  it("says what is wrong: not a buddy, not blocked, a bad petname or group, yourself", async () => {
    const m = new Mailbox({ identity: generateIdentity("amara"), storage: memoryStorage() });
    cleanup.push(() => m.close());
    m.rememberContact(contactCard(generateIdentity("baraka")), "met");
    await expect(m.renameBuddy("baraka", "bara")).rejects.toMatchObject({ code: "not-found", message: expect.stringMatching(/not one of your buddies/) });
    await expect(m.removeBuddy("baraka")).rejects.toMatchObject({ code: "not-found" });
    await expect(m.unblockBuddy("baraka")).rejects.toMatchObject({ code: "not-found", message: expect.stringMatching(/not blocked/) });
    await m.addBuddy("baraka");
    await expect(m.renameBuddy("baraka", "Bara Ka")).rejects.toMatchObject({ code: "bad-input" });
    await expect(m.addToGroup("baraka", "x".repeat(40))).rejects.toMatchObject({ code: "bad-input" });
    await expect(m.addBuddy("amara@local")).rejects.toMatchObject({ code: "bad-input", message: expect.stringMatching(/your own address/) });
    await expect(m.addBuddy("nobody@local")).rejects.toMatchObject({ code: "unknown-address" });
    // adding twice changes nothing and says who it is
    expect((await m.addBuddy("baraka")).address).toBe("baraka@local");
    expect(m.envelopes.stats().envelopes).toBe(2); // the list's key and one edit
  });
});
