// The roaming buddy list: one Automerge document per person, shared only by that person's own
// devices. Each device edits its copy offline; the copies converge when the devices meet.
//
// THE MERGE RULE (what a child sees after two devices that were apart meet again):
//  1. Removing never deletes. A buddy is on the list while the latest time they were added is later
//     than the latest time they were removed (`addedAt > removedAt`; on an exact tie the removal
//     wins). Both times merge by taking the largest. A device always writes a time past the one it
//     has seen, so an add or removal made after seeing the other one wins even if that laptop's clock
//     is behind; between an add and a removal made apart, the later clock wins: "the last thing you
//     did wins".
//  2. What you call them (petname), your groups and your block are kept apart from add/remove: they
//     survive a removal, so adding someone again brings back their petname and groups, and a rename
//     made on one device while another removed them is there if they come back.
//  3. Two different petnames (or two different cards) written apart: Automerge picks the same one on
//     every device, the edit with the larger Lamport counter and then the larger actor id. This is
//     rare and both names are the child's own; all that matters is that every device agrees.
//  4. Groups merge as sets, and joining wins: groups joined on different devices are all kept, and a
//     group joined on one device stays even if another device, apart, took them out of it.
//  5. Blocking wins: a block stands until a device that has seen it lifts it, so an unblock made
//     apart from a block does not undo that block. A block also stands after a removal and for people
//     who were never on the list (a request refused), because being blocked must never depend on
//     which device the child last used.
//
// Why one map per field (columns keyed by the buddy's signing key in hex) and not one map per buddy:
// two devices that add the same buddy while apart would each create a map for them, and Automerge
// would keep one of the two maps whole, silently dropping the other's petname and groups. Plain
// values in columns merge one by one. `lastSeen` and laptops seen nearby are not here: they change at
// every meeting, Automerge keeps every change forever, and each device keeps its own anyway.
import * as A from "@automerge/automerge";
import { equalBytes } from "./bytes.js";
import { conversationId } from "./conversation.js";
import { keyId, validHome, validName } from "./identity.js";

/** How I know a buddy's keys are theirs. */
export type HowKnown = "met" | "card" | "school" | "request";
const HOWS: readonly string[] = ["met", "card", "school", "request"] satisfies HowKnown[];
const isHow = (s: string): s is HowKnown => HOWS.includes(s);
export const MAX_GROUPS = 32;
export const MAX_GROUP_CHARS = 32;

export interface BuddyListDoc {
  name: Record<string, A.ImmutableString>; // what they call themselves
  home: Record<string, A.ImmutableString>;
  sealKey: Record<string, A.ImmutableString>; // hex, so my other devices can write to them
  how: Record<string, A.ImmutableString>; // a HowKnown
  petname: Record<string, A.ImmutableString>; // what I call them; "" = none
  groups: Record<string, true>; // `${key}/${group}`; present = member
  blocked: Record<string, number>; // present = blocked; the value is when
  addedAt: Record<string, number>; // ms; max-merged (rule 1)
  removedAt: Record<string, number>; // ms; max-merged (rule 1)
}
type Column = keyof BuddyListDoc;
const COLUMNS: readonly Column[] = ["name", "home", "sealKey", "how", "petname", "groups", "blocked", "addedAt", "removedAt"];

/** What the reading view shows of one buddy. Keys are hex. */
export interface Buddy {
  signKey: string;
  name: string;
  home: string;
  sealKey: string;
  how: HowKnown;
  petname: string;
  groups: string[];
  blocked: boolean;
  addedAt: number;
}

/** What adding a buddy needs: their card, as hex, and how we know it is theirs. */
export type BuddyCard = Pick<Buddy, "signKey" | "name" | "home" | "sealKey" | "how">;
export type BuddyEdit = { doc: A.Doc<BuddyListDoc>; change: Uint8Array };
export type BuddyListVerdict = { ok: true; change: A.DecodedChange } | { ok: false; reason: string };

// Its own genesis actor, so no change meant for a conversation names a buddy-list object.
const GENESIS_ACTOR = "0000000000000000000000000000b0dd";
let genesisCache: { change: Uint8Array; hash: string; columns: Map<string, Column> } | undefined;

/** The one change every buddy list starts with, and the object id of each column it creates. */
function genesis(): NonNullable<typeof genesisCache> {
  if (!genesisCache) {
    const doc = A.change(A.init<BuddyListDoc>({ actor: GENESIS_ACTOR }), { time: 0 }, (d) => {
      for (const c of COLUMNS) d[c] = {};
    });
    const change = A.getLastLocalChange(doc)!;
    const columns = new Map(COLUMNS.map((c) => [A.getObjectId(doc[c])!, c] as const));
    genesisCache = { change, hash: A.decodeChange(change).hash, columns };
  }
  return genesisCache;
}

export function emptyBuddyList(actor?: string): A.Doc<BuddyListDoc> {
  const [doc] = A.applyChanges(A.init<BuddyListDoc>(actor ? { actor } : undefined), [genesis().change]);
  return doc;
}

// ---- Values, as the reader and the admission check both judge them ----

const KEY_RE = /^[0-9a-f]{64}$/;
const validKey = (s: string) => KEY_RE.test(s);
const validPetname = (s: string) => s === "" || validName(s);
const validGroup = (g: string) => g.length > 0 && [...g].length <= MAX_GROUP_CHARS && !/[\p{Cc}\p{Cf}]/u.test(g);
const validTime = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
const groupKey = (key: string, group: string) => `${key}/${group}`;

/** A column as plain data, whatever a careless writer put there. */
function column(doc: A.Doc<BuddyListDoc>, c: Column): Readonly<Record<string, unknown>> {
  const v: unknown = doc[c];
  return typeof v === "object" && v !== null ? (v as Record<string, unknown>) : {};
}

function text(doc: A.Doc<BuddyListDoc>, c: Column, key: string): string | undefined {
  const v = column(doc, c)[key];
  return v instanceof A.ImmutableString ? v.val : undefined;
}

/** The largest of the times written concurrently under `key` (rule 1), 0 if none. */
function latest(doc: A.Doc<BuddyListDoc>, c: "addedAt" | "removedAt", key: string): number {
  const col = column(doc, c);
  if (!(key in col)) return 0;
  let max = 0;
  // getConflicts answers only when there are two or more values.
  for (const v of Object.values(A.getConflicts(col, key) ?? { only: col[key] })) if (validTime(v) && v > max) max = v;
  return max;
}

const isPresent = (doc: A.Doc<BuddyListDoc>, key: string) => latest(doc, "addedAt", key) > latest(doc, "removedAt", key);

/** Every buddy's groups, sorted; past MAX_GROUPS the rest are ignored. */
function groupIndex(doc: A.Doc<BuddyListDoc>): Map<string, string[]> {
  const index = new Map<string, string[]>();
  for (const [k, v] of Object.entries(column(doc, "groups"))) {
    const key = k.slice(0, 64);
    const group = k.slice(65);
    if (v !== true || !validKey(key) || k[64] !== "/" || !validGroup(group)) continue;
    index.set(key, [...(index.get(key) ?? []), group]);
  }
  for (const [key, groups] of index) index.set(key, groups.sort().slice(0, MAX_GROUPS));
  return index;
}

// ---- The reading view: never throws, skips entries a writer got wrong ----

function read(doc: A.Doc<BuddyListDoc>, key: string, groups: Map<string, string[]>): Buddy | undefined {
  if (!validKey(key) || !isPresent(doc, key)) return undefined;
  const name = text(doc, "name", key);
  const home = text(doc, "home", key);
  const sealKey = text(doc, "sealKey", key);
  const how = text(doc, "how", key);
  if (!name || !validName(name) || !home || !validHome(home) || !sealKey || !validKey(sealKey) || !how || !isHow(how))
    return undefined;
  const petname = text(doc, "petname", key) ?? "";
  return {
    signKey: key, name, home, sealKey, how,
    petname: validPetname(petname) ? petname : "",
    groups: groups.get(key) ?? [],
    blocked: key in column(doc, "blocked"),
    addedAt: latest(doc, "addedAt", key),
  };
}

export function buddy(doc: A.Doc<BuddyListDoc>, keyHex: string): Buddy | undefined {
  return read(doc, keyHex, groupIndex(doc));
}

/** The buddies on the list, by the name the child sees (petname, else their own name). */
export function buddies(doc: A.Doc<BuddyListDoc>): Buddy[] {
  const groups = groupIndex(doc);
  const list = Object.keys(column(doc, "addedAt")).flatMap((k) => read(doc, k, groups) ?? []);
  const shown = (b: Buddy) => b.petname || b.name;
  return list.sort((a, b) => shown(a).localeCompare(shown(b)) || (a.signKey < b.signKey ? -1 : 1));
}

/** Everyone blocked, on the list or not (rule 5). */
export function blockedKeys(doc: A.Doc<BuddyListDoc>): string[] {
  return Object.keys(column(doc, "blocked")).filter(validKey).sort();
}

// ---- Edits: each returns the new document and its change, or null when nothing changes ----

function edit(doc: A.Doc<BuddyListDoc>, at: number, fn: (d: BuddyListDoc) => void): BuddyEdit {
  if (!validTime(at)) throw new RangeError(`buddy list: ${at} is not a time in ms`);
  const next = A.change(doc, { time: Math.floor(at / 1000) }, fn);
  return { doc: next, change: A.getLastLocalChange(next)! };
}

function mustBeKey(key: string): void {
  if (!validKey(key)) throw new RangeError(`buddy list: "${key}" is not a signing key in hex`);
}

function mustBePresent(doc: A.Doc<BuddyListDoc>, key: string): void {
  mustBeKey(key);
  if (!isPresent(doc, key)) throw new RangeError(`buddy list: ${key.slice(0, 16)}… is not on the list`);
}

/**
 * Puts someone on the list, or refreshes the card of someone already on it (keeping how we knew
 * them: a request arriving later must not downgrade a buddy met in person).
 */
export function addBuddy(doc: A.Doc<BuddyListDoc>, card: BuddyCard, at: number): BuddyEdit | null {
  mustBeKey(card.signKey);
  if (!validName(card.name) || !validHome(card.home) || !validKey(card.sealKey) || !isHow(card.how))
    throw new RangeError(`buddy list: not a valid card for ${card.name}@${card.home}`);
  const key = card.signKey;
  const present = isPresent(doc, key);
  const fields = (["name", "home", "sealKey", "how"] as const).filter(
    (f) => text(doc, f, key) !== card[f] && !(present && f === "how"),
  );
  if (present && fields.length === 0) return null;
  return edit(doc, at, (d) => {
    for (const f of fields) d[f][key] = new A.ImmutableString(card[f]);
    if (!present) d.addedAt[key] = Math.max(at, latest(doc, "removedAt", key) + 1);
  });
}

export function removeBuddy(doc: A.Doc<BuddyListDoc>, key: string, at: number): BuddyEdit | null {
  mustBeKey(key);
  if (!isPresent(doc, key)) return null;
  return edit(doc, at, (d) => {
    d.removedAt[key] = Math.max(at, latest(doc, "addedAt", key) + 1);
  });
}

/** Sets what I call them; "" clears it. Petnames follow the address rules, as people.ts resolves them. */
export function renameBuddy(doc: A.Doc<BuddyListDoc>, key: string, petname: string, at: number): BuddyEdit | null {
  mustBePresent(doc, key);
  if (!validPetname(petname)) throw new RangeError(`buddy list: "${petname}" cannot be a petname`);
  if ((text(doc, "petname", key) ?? "") === petname) return null;
  return edit(doc, at, (d) => {
    d.petname[key] = new A.ImmutableString(petname);
  });
}

export function addToGroup(doc: A.Doc<BuddyListDoc>, key: string, group: string, at: number): BuddyEdit | null {
  mustBePresent(doc, key);
  if (!validGroup(group)) throw new RangeError(`buddy list: "${group}" cannot be a group (1-${MAX_GROUP_CHARS} characters)`);
  const groups = groupIndex(doc).get(key) ?? [];
  if (groups.includes(group)) return null;
  if (groups.length >= MAX_GROUPS) throw new RangeError(`buddy list: at most ${MAX_GROUPS} groups per buddy`);
  return edit(doc, at, (d) => {
    d.groups[groupKey(key, group)] = true;
  });
}

export function removeFromGroup(doc: A.Doc<BuddyListDoc>, key: string, group: string, at: number): BuddyEdit | null {
  mustBeKey(key);
  if (!(groupKey(key, group) in column(doc, "groups"))) return null;
  return edit(doc, at, (d) => {
    delete d.groups[groupKey(key, group)];
  });
}

/** Blocks anyone, on the list or not (rule 5). */
export function blockBuddy(doc: A.Doc<BuddyListDoc>, key: string, at: number): BuddyEdit | null {
  mustBeKey(key);
  if (key in column(doc, "blocked")) return null;
  return edit(doc, at, (d) => {
    d.blocked[key] = at;
  });
}

/** Lifts the blocks this device has seen (rule 5: not ones made elsewhere that it has not). */
export function unblockBuddy(doc: A.Doc<BuddyListDoc>, key: string, at: number): BuddyEdit | null {
  mustBeKey(key);
  if (!(key in column(doc, "blocked"))) return null;
  return edit(doc, at, (d) => {
    delete d.blocked[key];
  });
}

// ---- Admission: what one of my devices may send the others ----

const quote = (s: string) => JSON.stringify(s.length > 40 ? `${s.slice(0, 40)}…` : s);

/** Why a plain value may not go in `c` under `key`, or undefined if it may. */
function badValue(c: Column, op: A.DecodedChange["ops"][number]): string | undefined {
  const v = op.value;
  switch (c) {
    case "name":
    case "home":
    case "sealKey":
    case "how":
    case "petname": {
      if (typeof v !== "string" || op.datatype !== undefined) return `${c} must be a string`;
      const ok = { name: validName, home: validHome, sealKey: validKey, how: isHow, petname: validPetname }[c];
      return ok(v) ? undefined : `${c} ${quote(v)} is not valid`;
    }
    case "groups":
      return v === true ? undefined : "a group membership must be true";
    case "blocked":
    case "addedAt":
    case "removedAt":
      return op.datatype === "int" || op.datatype === "uint" ? (validTime(v) ? undefined : `${c} must not be negative`)
        : `${c} must be a whole number of ms`;
  }
}

/**
 * Decodes a change and accepts it only if it is a well-formed buddy-list edit: plain values of the
 * right kind in the columns, keyed by signing keys, and deletes only where rules 4 and 5 use them.
 * `signerActorPrefix` (the key id of the device that signed it) pins whose change it is.
 */
export function checkBuddyListChange(changeBytes: Uint8Array, signerActorPrefix?: string): BuddyListVerdict {
  let change: A.DecodedChange;
  try {
    change = A.decodeChange(changeBytes);
  } catch (e) {
    return { ok: false, reason: `not an Automerge change (${(e as Error).message})` };
  }
  const { hash, columns } = genesis();
  if (change.hash === hash) return { ok: true, change };
  if (signerActorPrefix !== undefined && !(change.actor.length === 32 && change.actor.startsWith(signerActorPrefix)))
    return { ok: false, reason: `change actor ${change.actor} is not the signer's` };
  const groupsAdded = new Map<string, number>();
  for (const op of change.ops) {
    const c = columns.get(op.obj);
    if (!c) return { ok: false, reason: `change touches ${op.obj === "_root" ? "the document root" : `object ${op.obj}`}, not a buddy-list column` };
    const key = c === "groups" ? op.key.slice(0, 64) : op.key;
    if (!validKey(key)) return { ok: false, reason: `${c} key ${quote(op.key)} is not a signing key (64 hex digits)` };
    if (c === "groups" && (op.key[64] !== "/" || !validGroup(op.key.slice(65))))
      return { ok: false, reason: `group ${quote(op.key.slice(65))} is not 1-${MAX_GROUP_CHARS} printable characters` };
    if (op.action === "del") {
      if (c === "groups" || c === "blocked") continue;
      return { ok: false, reason: `change deletes ${c} of a buddy; the list never deletes (removal is removedAt)` };
    }
    if (op.action !== "set") return { ok: false, reason: `change puts an object (${op.action}) in ${c}; only plain values belong there` };
    const bad = badValue(c, op);
    if (bad) return { ok: false, reason: bad };
    if (c !== "groups") continue;
    const n = (groupsAdded.get(key) ?? 0) + 1;
    groupsAdded.set(key, n);
    if (n > MAX_GROUPS) return { ok: false, reason: `change puts a buddy in more than ${MAX_GROUPS} groups` };
  }
  return { ok: true, change };
}

// ---- Where it lives: the person's own conversation ----

/**
 * The buddy list travels in the conversation whose only member is the person: its key envelope has
 * no recipients (only the author's own box, which every device of the person opens), and only the
 * person can write in it (a key envelope's members must hash to its conversation id).
 */
export function buddyListConversation(person: Uint8Array): Uint8Array {
  return conversationId([person]);
}

/**
 * Admission for a change in the buddy-list conversation: its author must be the person itself (one
 * of its devices signed it; the caller has checked the device's certificate and revocations), and
 * the change must be a well-formed buddy-list edit by that device (checkBuddyListChange).
 */
export function checkPersonalChange(changeBytes: Uint8Array, person: Uint8Array, author: Uint8Array, signer: Uint8Array): BuddyListVerdict {
  if (!equalBytes(author, person)) return { ok: false, reason: "only the person's own devices write in their buddy list" };
  return checkBuddyListChange(changeBytes, keyId(signer));
}
