import * as A from "@automerge/automerge";
import { describe, expect, it } from "vitest";
import {
  addBuddy, addToGroup, blockBuddy, blockedKeys, buddies, buddy, checkBuddyListChange, emptyBuddyList, generateIdentity,
  keyId, newActorId, removeBuddy, removeFromGroup, renameBuddy, toHex, unblockBuddy,
  type BuddyCard, type BuddyEdit, type BuddyListDoc, type HowKnown, type Identity,
} from "./index.js";

const T0 = Date.UTC(2026, 2, 2, 8, 0); // a school morning
const MIN = 60_000;

const amara = generateIdentity("amara", "kisumu-primary");
const baraka = generateIdentity("baraka", "kisumu-primary");
const chiku = generateIdentity("chiku", "mombasa-girls");
const keyOf = (id: Identity) => toHex(id.signing.publicKey);

function cardOf(id: Identity, how: HowKnown = "met"): BuddyCard {
  return { signKey: keyOf(id), name: id.name, home: id.home, sealKey: toHex(id.sealing.publicKey), how };
}

/** One of the child's devices: its own signing key, an actor bound to it, and the changes it sent. */
class Device {
  readonly key = generateIdentity("me").signing.publicKey;
  readonly actor = newActorId(this.key);
  readonly sent: Uint8Array[] = [];
  doc: A.Doc<BuddyListDoc>;

  constructor(from: A.Doc<BuddyListDoc>) {
    // Load from saved bytes, as a device does after a restart, with its own actor.
    this.doc = A.load<BuddyListDoc>(A.save(from), { actor: this.actor });
  }

  do(edit: (doc: A.Doc<BuddyListDoc>) => BuddyEdit | null): void {
    const e = edit(this.doc);
    if (!e) throw new Error("expected the edit to change something");
    this.doc = e.doc;
    this.sent.push(e.change);
  }

  /** Takes another device's changes the way sync would: each passes the admission check first. */
  receive(from: Device): void {
    for (const c of from.sent) expect(checkBuddyListChange(c, keyId(from.key))).toMatchObject({ ok: true });
    [this.doc] = A.applyChanges(this.doc, from.sent);
  }
}

function withAmara(): A.Doc<BuddyListDoc> {
  return addBuddy(emptyBuddyList(), cardOf(amara), T0)!.doc;
}

function permutations<T>(xs: T[]): T[][] {
  return xs.length <= 1 ? [xs] : xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((p) => [x, ...p]));
}

/** Every device, after hearing from all the others in every order, shows the same list; returns it. */
function converged(base: A.Doc<BuddyListDoc>, devices: Device[]) {
  const results = permutations(devices).map((order) => {
    let doc = A.load<BuddyListDoc>(A.save(base), { actor: newActorId(generateIdentity("fresh").signing.publicKey) });
    for (const d of order) [doc] = A.applyChanges(doc, d.sent);
    return doc;
  });
  for (const d of devices) for (const other of devices) if (other !== d) d.receive(other);
  const lists = [...results, ...devices.map((d) => d.doc)].map(buddies);
  for (const l of lists) expect(l).toEqual(lists[0]);
  const blocked = [...results, ...devices.map((d) => d.doc)].map(blockedKeys);
  for (const b of blocked) expect(b).toEqual(blocked[0]);
  return { list: lists[0]!, doc: devices[0]!.doc };
}

describe("buddy list on one device", () => {
  it("starts from a genesis every device builds the same way, so their edits apply to each other", () => {
    const laptop = emptyBuddyList(newActorId(generateIdentity("me").signing.publicKey));
    const tablet = emptyBuddyList(newActorId(generateIdentity("me").signing.publicKey));
    expect(A.getHeads(laptop)).toEqual(A.getHeads(tablet));
    const { change } = addBuddy(laptop, cardOf(amara, "card"), T0)!;
    const [after] = A.applyChanges(tablet, [change]);
    expect(buddies(after)).toEqual([
      { ...cardOf(amara, "card"), petname: "", groups: [], blocked: false, addedAt: T0 },
    ]);
  });

  it("adds, renames, groups, removes; adding again brings back the petname and groups; no-ops are null", () => {
    let doc = withAmara();
    const k = keyOf(amara);
    expect(addBuddy(doc, cardOf(amara), T0 + MIN)).toBeNull();
    expect(addBuddy(doc, cardOf(amara, "request"), T0 + MIN)).toBeNull(); // how we first knew them stays
    doc = renameBuddy(doc, k, "ama", T0 + 1 * MIN)!.doc;
    expect(renameBuddy(doc, k, "ama", T0 + 2 * MIN)).toBeNull();
    doc = addToGroup(doc, k, "my class", T0 + 2 * MIN)!.doc;
    doc = addToGroup(doc, k, "football", T0 + 3 * MIN)!.doc;
    expect(addToGroup(doc, k, "football", T0 + 3 * MIN)).toBeNull();
    doc = removeFromGroup(doc, k, "football", T0 + 4 * MIN)!.doc;
    expect(buddy(doc, k)).toMatchObject({ petname: "ama", groups: ["my class"], addedAt: T0 });
    doc = removeBuddy(doc, k, T0 + 5 * MIN)!.doc;
    expect(removeBuddy(doc, k, T0 + 6 * MIN)).toBeNull();
    expect(buddies(doc)).toEqual([]);
    expect(buddy(doc, k)).toBeUndefined();
    doc = addBuddy(doc, cardOf(amara, "card"), T0 + 7 * MIN)!.doc;
    expect(buddy(doc, k)).toMatchObject({ petname: "ama", groups: ["my class"], how: "card", addedAt: T0 + 7 * MIN });
  });

  it("a card that changed is refreshed; the list is sorted by the name the child sees", () => {
    let doc = addBuddy(withAmara(), cardOf(baraka), T0)!.doc;
    doc = renameBuddy(doc, keyOf(baraka), "aaron", T0)!.doc;
    const moved = { ...cardOf(amara), home: "nairobi-central" };
    doc = addBuddy(doc, moved, T0 + MIN)!.doc;
    expect(buddies(doc).map((b) => [b.petname || b.name, b.home])).toEqual([["aaron", "kisumu-primary"], ["amara", "nairobi-central"]]);
  });

  it("refuses bad input instead of writing it", () => {
    const doc = withAmara();
    const k = keyOf(amara);
    expect(() => addBuddy(doc, { ...cardOf(baraka), signKey: "abc" }, T0)).toThrow(/signing key/);
    expect(() => addBuddy(doc, { ...cardOf(baraka), name: "Baraka!" }, T0)).toThrow(/not a valid card/);
    expect(() => renameBuddy(doc, k, "a".repeat(33), T0)).toThrow(/petname/);
    expect(() => renameBuddy(doc, keyOf(baraka), "bob", T0)).toThrow(/not on the list/);
    expect(() => addToGroup(doc, k, "x".repeat(33), T0)).toThrow(/cannot be a group/);
    expect(() => removeBuddy(doc, k, -1)).toThrow(/not a time/);
    let full = doc;
    for (let i = 0; i < 32; i++) full = addToGroup(full, k, `group ${i}`, T0)!.doc;
    expect(() => addToGroup(full, k, "one too many", T0)).toThrow(/at most 32/);
  });

  it("a blocked person stays blocked when removed, and someone never on the list can be blocked", () => {
    let doc = blockBuddy(withAmara(), keyOf(amara), T0)!.doc;
    expect(blockBuddy(doc, keyOf(amara), T0)).toBeNull();
    expect(buddy(doc, keyOf(amara))?.blocked).toBe(true);
    doc = removeBuddy(doc, keyOf(amara), T0 + MIN)!.doc;
    doc = blockBuddy(doc, keyOf(chiku), T0 + MIN)!.doc; // a request refused
    expect(buddies(doc)).toEqual([]);
    expect(blockedKeys(doc)).toEqual([keyOf(amara), keyOf(chiku)].sort());
    doc = unblockBuddy(doc, keyOf(chiku), T0 + 2 * MIN)!.doc;
    expect(unblockBuddy(doc, keyOf(chiku), T0 + 2 * MIN)).toBeNull();
    expect(blockedKeys(doc)).toEqual([keyOf(amara)]);
  });
});

describe("the merge rule, with devices that were apart", () => {
  it("add on device 1, rename on device 2, remove on device 3: every order gives the rule's list", () => {
    const base = withAmara();
    const [one, two, three] = [new Device(base), new Device(base), new Device(base)] as const;
    one.do((d) => addBuddy(d, cardOf(baraka), T0 + 10 * MIN));
    two.do((d) => renameBuddy(d, keyOf(amara), "ama", T0 + 20 * MIN));
    three.do((d) => removeBuddy(d, keyOf(amara), T0 + 5 * MIN));
    const { list, doc } = converged(base, [one, two, three]);
    // Rule 1: Amara's removal stands (a rename is not an add); rule 2: her petname survives it.
    expect(list.map((b) => b.name)).toEqual(["baraka"]);
    expect(buddy(addBuddy(doc, cardOf(amara), T0 + 30 * MIN)!.doc, keyOf(amara))?.petname).toBe("ama");
  });

  it("an add and a removal of the same buddy made apart: the later clock wins", () => {
    for (const [readdAt, removeAt, present] of [[T0 + 3 * MIN, T0 + 2 * MIN, true], [T0 + 3 * MIN, T0 + 4 * MIN, false]] as const) {
      const base = withAmara();
      const [one, two] = [new Device(base), new Device(base)] as const;
      one.do((d) => removeBuddy(d, keyOf(amara), T0 + MIN)); // changed their mind...
      one.do((d) => addBuddy(d, cardOf(amara), readdAt)); // ...and added her back
      two.do((d) => removeBuddy(d, keyOf(amara), removeAt));
      expect(converged(base, [one, two]).list.length).toBe(present ? 1 : 0);
    }
  });

  it("an edit made after seeing another wins even when that laptop's clock is behind", () => {
    const base = withAmara();
    const [fast, slow] = [new Device(base), new Device(base)] as const;
    fast.do((d) => removeBuddy(d, keyOf(amara), T0 + 60 * MIN)); // clock an hour ahead
    slow.receive(fast);
    slow.do((d) => addBuddy(d, cardOf(amara), T0 + MIN)); // the child adds her back, later in truth
    expect(converged(base, [fast, slow]).list.map((b) => [b.name, b.addedAt])).toEqual([["amara", T0 + 60 * MIN + 1]]);
  });

  it("concurrent renames: one winner on every device, from the larger actor id (rule 3)", () => {
    const base = withAmara();
    const [one, two] = [new Device(base), new Device(base)] as const;
    one.do((d) => renameBuddy(d, keyOf(amara), "ama", T0 + MIN));
    two.do((d) => renameBuddy(d, keyOf(amara), "mara", T0 + 2 * MIN));
    const winner = one.actor > two.actor ? "ama" : "mara";
    expect(converged(base, [one, two]).list.map((b) => b.petname)).toEqual([winner]);
  });

  it("groups joined on different devices are all kept, and joining wins over leaving (rule 4)", () => {
    const base = withAmara();
    const [one, two, three] = [new Device(base), new Device(base), new Device(base)] as const;
    one.do((d) => addToGroup(d, keyOf(amara), "my class", T0 + MIN));
    one.do((d) => addToGroup(d, keyOf(amara), "football", T0 + MIN));
    two.do((d) => addToGroup(d, keyOf(amara), "football", T0 + MIN));
    three.receive(two);
    three.do((d) => removeFromGroup(d, keyOf(amara), "football", T0 + 2 * MIN)); // later, but has not seen device 1's
    expect(converged(base, [one, two, three]).list.map((b) => b.groups)).toEqual([["football", "my class"]]);
  });

  it("two devices adding the same buddy apart keep both devices' petname and groups", () => {
    const base = emptyBuddyList();
    const [one, two] = [new Device(base), new Device(base)] as const;
    one.do((d) => addBuddy(d, cardOf(amara, "met"), T0));
    one.do((d) => renameBuddy(d, keyOf(amara), "ama", T0));
    two.do((d) => addBuddy(d, cardOf(amara, "card"), T0 + MIN));
    two.do((d) => addToGroup(d, keyOf(amara), "my class", T0 + MIN));
    const [b] = converged(base, [one, two]).list;
    expect(b).toMatchObject({ petname: "ama", groups: ["my class"], addedAt: T0 + MIN });
  });

  it("block on one device and rename on another: blocked and renamed", () => {
    const base = withAmara();
    const [one, two] = [new Device(base), new Device(base)] as const;
    one.do((d) => blockBuddy(d, keyOf(amara), T0 + MIN));
    two.do((d) => renameBuddy(d, keyOf(amara), "ama", T0 + MIN));
    expect(converged(base, [one, two]).list).toMatchObject([{ petname: "ama", blocked: true }]);
  });

  it("an unblock made apart from a block does not undo it; one that has seen every block does (rule 5)", () => {
    const base = withAmara();
    const [one, two, three] = [new Device(base), new Device(base), new Device(base)] as const;
    one.do((d) => blockBuddy(d, keyOf(amara), T0 + MIN));
    two.receive(one);
    two.do((d) => unblockBuddy(d, keyOf(amara), T0 + 3 * MIN)); // later, but has not seen device 3's block
    three.do((d) => blockBuddy(d, keyOf(amara), T0 + 2 * MIN));
    const { doc } = converged(base, [one, two, three]);
    expect(blockedKeys(doc)).toEqual([keyOf(amara)]);
    expect(buddy(unblockBuddy(doc, keyOf(amara), T0 + 4 * MIN)!.doc, keyOf(amara))?.blocked).toBe(false);
  });
});

type Loose = Record<string, unknown>;
/** A change made straight on the document, as a buggy or hostile writer could, bypassing the API. */
function raw(doc: A.Doc<BuddyListDoc>, fn: (d: Record<string, Loose>) => void): { doc: A.Doc<BuddyListDoc>; change: Uint8Array } {
  const next = A.change(A.clone(doc) as unknown as A.Doc<Record<string, Loose>>, fn) as unknown as A.Doc<BuddyListDoc>;
  return { doc: next, change: A.getLastLocalChange(next)! };
}

describe("admission check", () => {
  const k = keyOf(amara);
  const s = (v: string) => new A.ImmutableString(v);

  it("accepts the genesis and every change the API makes, and pins the signer", () => {
    const dev = new Device(emptyBuddyList());
    dev.do((d) => addBuddy(d, cardOf(amara), T0));
    dev.do((d) => renameBuddy(d, k, "ama", T0));
    dev.do((d) => addToGroup(d, k, "my class", T0));
    dev.do((d) => removeFromGroup(d, k, "my class", T0));
    dev.do((d) => blockBuddy(d, k, T0));
    dev.do((d) => unblockBuddy(d, k, T0));
    dev.do((d) => removeBuddy(d, k, T0));
    for (const c of [...A.getAllChanges(emptyBuddyList()), ...dev.sent]) expect(checkBuddyListChange(c).ok).toBe(true);
    for (const c of dev.sent) expect(checkBuddyListChange(c, keyId(dev.key)).ok).toBe(true);
    expect(checkBuddyListChange(dev.sent[0]!, keyId(amara.signing.publicKey))).toMatchObject({ ok: false, reason: /not the signer's/ });
  });

  it("refuses anything that is not a well-formed buddy-list edit, saying why", () => {
    const doc = A.load<BuddyListDoc>(A.save(withAmara()), { actor: newActorId(generateIdentity("me").signing.publicKey) });
    const cases: [string, (d: Record<string, Loose>) => void, RegExp][] = [
      ["deleting an entry", (d) => delete d.addedAt![k], /deletes addedAt of a buddy; the list never deletes/],
      ["a key that is not a signing key", (d) => (d.petname!["bob"] = s("bob")), /petname key "bob" is not a signing key/],
      ["a name that is not a valid name", (d) => (d.name![k] = s("Amara W!")), /name "Amara W!" is not valid/],
      ["a petname too long", (d) => (d.petname![k] = s("a".repeat(33))), /petname "a{33}" is not valid/],
      ["a group name too long", (d) => (d.groups![`${k}/${"g".repeat(33)}`] = true), /group "g{33}" is not 1-32 printable/],
      ["33 groups at once", (d) => { for (let i = 0; i < 33; i++) d.groups![`${k}/g${i}`] = true; }, /more than 32 groups/],
      ["a time that is a string", (d) => (d.removedAt![k] = s("tomorrow")), /removedAt must be a whole number of ms/],
      ["a time that is a counter", (d) => (d.addedAt![k] = new A.Counter(5)), /addedAt must be a whole number of ms/],
      ["a negative time", (d) => (d.removedAt![k] = -5), /removedAt must not be negative/],
      ["a block that is a boolean", (d) => (d.blocked![k] = true), /blocked must be a whole number/],
      ["a name that is a number", (d) => (d.home![k] = 7), /home must be a string/],
      ["a seal key that is not 32 bytes of hex", (d) => (d.sealKey![k] = s("abcd")), /sealKey "abcd" is not valid/],
      ["an unknown way of knowing", (d) => (d.how![k] = s("rumour")), /how "rumour" is not valid/],
      ["a collaborative text", (d) => (d.petname![k] = "ama"), /puts an object \(makeText\) in petname/],
      ["a map for one buddy", (d) => (d.name![k] = { first: "amara" }), /puts an object \(makeMap\) in name/],
      ["a new top-level field", (d) => (d.lastSeen = {}), /touches the document root/],
    ];
    for (const [what, fn, reason] of cases) {
      const verdict = checkBuddyListChange(raw(doc, fn).change);
      expect(verdict, what).toMatchObject({ ok: false, reason });
    }
    expect(checkBuddyListChange(Uint8Array.from([1, 2, 3]))).toMatchObject({ ok: false, reason: /not an Automerge change/ });
  });

  it("the reading view skips malformed entries and never throws", () => {
    let doc = addBuddy(addBuddy(withAmara(), cardOf(baraka), T0)!.doc, cardOf(chiku), T0)!.doc;
    doc = raw(doc, (d) => {
      d.name![keyOf(baraka)] = s("Not A Name"); // Baraka's card is broken: not shown
      d.petname![keyOf(amara)] = "ama"; // a text, not a string: ignored
      d.groups![`${keyOf(amara)}/ok`] = true;
      d.groups![`${keyOf(amara)}/bad`] = 5;
      d.groups!["nonsense"] = true;
      d.addedAt!["zz"] = 5;
      d.addedAt![keyOf(chiku)] = s("yesterday"); // Chiku's add time is unreadable: not on the list
      d.blocked!["not a key"] = 1;
    }).doc;
    expect(buddies(doc).map((b) => [b.name, b.petname, b.groups])).toEqual([["amara", "", ["ok"]]]);
    expect(buddy(doc, keyOf(baraka))).toBeUndefined();
    expect(buddy(doc, "zz")).toBeUndefined();
    expect(blockedKeys(doc)).toEqual([]);
    const broken = raw(doc, (d) => {
      d.groups = "gone" as unknown as Loose;
      d.blocked = { [k]: { nested: true } };
    }).doc;
    expect(() => buddies(broken)).not.toThrow();
    expect(buddies(broken).map((b) => b.groups)).toEqual([[]]);
  });
});
