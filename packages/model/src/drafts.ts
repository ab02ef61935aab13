// Drafts: one Automerge document per person, shared only by that person's own devices, like the
// buddy list (buddy-list.ts). It is the second document of the person's own conversation
// (conversationId([person]), segment DRAFTS_SEGMENT; the buddy list is segment 0), so it is sealed
// only for the person (a key envelope with no recipients) and no one else's device can open it. A
// draft is a message only when the child sends it; sending deletes it on every device.
//
// THE MERGE RULE (what a child sees after two devices that were apart meet again):
//  1. A draft is one value: every save writes the whole draft (to, body, updatedAt) as a new map
//     under its id, never field by field, so a draft never mixes one device's recipient with
//     another's words.
//  2. The same draft saved on two devices apart: the version with the latest updatedAt is shown;
//     on an exact tie, Automerge's own order (the larger Lamport counter, then the larger actor id).
//     Every device shows the same one. A device always writes an updatedAt past every version it has
//     seen, so a save made after seeing another one wins even if that laptop's clock is behind. The
//     other version is only in the history.
//  3. Deleting is allowed (it is the person's own document). A delete removes only the versions it
//     has seen: a draft deleted (or sent) on one device while another device, apart, saved it again
//     comes back with that later save. Nothing a child typed is lost by what another device did, and
//     it is sent only if the child sends it.
import * as A from "@automerge/automerge";
import { equalBytes } from "./bytes.js";
import { MAX_BODY_CHARS } from "./conversation.js";
import { AddressError, formatAddress, keyId, parseAddress } from "./identity.js";

/** Where drafts travel: this segment of the person's own conversation (the buddy list is segment 0). */
export const DRAFTS_SEGMENT = 1;

export interface DraftRecord {
  to: A.ImmutableString;
  body: A.ImmutableString;
  updatedAt: number;
}

export interface DraftsDoc {
  drafts: Record<string, DraftRecord>;
}

/** A draft as the reading view shows it. */
export interface Draft {
  id: string;
  to: string;
  body: string;
  updatedAt: number;
}

export type DraftEdit = { doc: A.Doc<DraftsDoc>; change: Uint8Array };
export type DraftsVerdict = { ok: true; change: A.DecodedChange } | { ok: false; reason: string };

// Its own genesis actor, so no change meant for a conversation or the buddy list names a draft object.
const GENESIS_ACTOR = "0000000000000000000000000000d4af";
let genesisCache: { change: Uint8Array; hash: string; drafts: string } | undefined;

function genesis(): NonNullable<typeof genesisCache> {
  if (!genesisCache) {
    const doc = A.change(A.init<DraftsDoc>({ actor: GENESIS_ACTOR }), { time: 0 }, (d) => {
      d.drafts = {};
    });
    const change = A.getLastLocalChange(doc)!;
    genesisCache = { change, hash: A.decodeChange(change).hash, drafts: A.getObjectId(doc.drafts)! };
  }
  return genesisCache;
}

export function emptyDrafts(actor?: string): A.Doc<DraftsDoc> {
  const [doc] = A.applyChanges(A.init<DraftsDoc>(actor ? { actor } : undefined), [genesis().change]);
  return doc;
}

// ---- Values, as the reader and the admission check both judge them ----

const ID_RE = /^[0-9a-f]{8,24}$/;
export const validDraftId = (s: string): boolean => ID_RE.test(s);
const validTime = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;

function validTo(s: string): boolean {
  try {
    return formatAddress(parseAddress(s)) === s;
  } catch (e) {
    if (e instanceof AddressError) return false;
    throw e;
  }
}

const validBody = (s: string) => s.length <= MAX_BODY_CHARS;

function column(doc: A.Doc<DraftsDoc>): Readonly<Record<string, unknown>> {
  const v: unknown = doc.drafts;
  return typeof v === "object" && v !== null ? (v as Record<string, unknown>) : {};
}

/** A stored version as a Draft, or undefined when a writer got it wrong. */
function asDraft(id: string, v: unknown): Draft | undefined {
  if (typeof v !== "object" || v === null) return undefined;
  const r = v as Partial<Record<keyof DraftRecord, unknown>>;
  // (getConflicts gives the competing versions with their strings as plain strings)
  const str = (x: unknown) => (x instanceof A.ImmutableString ? x.val : typeof x === "string" ? x : undefined);
  const to = str(r.to);
  const body = str(r.body);
  if (to === undefined || body === undefined || !validTime(r.updatedAt)) return undefined;
  return validTo(to) && validBody(body) ? { id, to, body, updatedAt: r.updatedAt } : undefined;
}

/** Automerge's order of two op ids ("counter@actor"): the larger counter, then the larger actor. */
function opOrder(a: string, b: string): number {
  const [ca, aa] = [Number.parseInt(a, 10), a.slice(a.indexOf("@") + 1)];
  const [cb, ab] = [Number.parseInt(b, 10), b.slice(b.indexOf("@") + 1)];
  return ca !== cb ? ca - cb : aa < ab ? -1 : aa > ab ? 1 : 0;
}

/** Every version of one draft written concurrently (one when there is no conflict). */
function versions(doc: A.Doc<DraftsDoc>, id: string): Draft[] {
  const col = column(doc);
  if (!(id in col)) return [];
  const all = A.getConflicts(col, id) ?? { only: col[id] };
  return Object.entries(all)
    .sort(([a], [b]) => opOrder(a, b))
    .flatMap(([, v]) => asDraft(id, v) ?? []);
}

// ---- The reading view: never throws, skips entries a writer got wrong ----

/** The version shown (rule 2): the latest updatedAt, then Automerge's order. */
export function draft(doc: A.Doc<DraftsDoc>, id: string): Draft | undefined {
  if (!validDraftId(id)) return undefined;
  let best: Draft | undefined;
  for (const v of versions(doc, id)) if (!best || v.updatedAt >= best.updatedAt) best = v; // later in Automerge's order wins a tie
  return best;
}

/** Every draft, oldest first. */
export function drafts(doc: A.Doc<DraftsDoc>): Draft[] {
  return Object.keys(column(doc))
    .flatMap((id) => draft(doc, id) ?? [])
    .sort((a, b) => a.updatedAt - b.updatedAt || (a.id < b.id ? -1 : 1));
}

// ---- Edits ----

/**
 * Writes a whole draft (rule 1), with an updatedAt past every version of it this device has seen
 * (rule 2). Throws a RangeError for a draft that admission would refuse.
 */
export function saveDraft(doc: A.Doc<DraftsDoc>, d: Omit<Draft, "updatedAt">, at: number): DraftEdit & { draft: Draft } {
  if (!validDraftId(d.id)) throw new RangeError(`drafts: "${d.id}" is not a draft id`);
  if (!validTo(d.to)) throw new RangeError(`drafts: "${d.to}" is not an address`);
  if (!validBody(d.body)) throw new RangeError(`drafts: the draft is over ${MAX_BODY_CHARS} characters`);
  if (!validTime(at)) throw new RangeError(`drafts: ${at} is not a time in ms`);
  const updatedAt = Math.max(at, ...versions(doc, d.id).map((v) => v.updatedAt + 1));
  const next = A.change(doc, { time: Math.floor(at / 1000) }, (x) => {
    x.drafts[d.id] = { to: new A.ImmutableString(d.to), body: new A.ImmutableString(d.body), updatedAt };
  });
  return { doc: next, change: A.getLastLocalChange(next)!, draft: { ...d, updatedAt } };
}

/** Deletes a draft (every version this device has seen: rule 3); null if there is none. */
export function deleteDraft(doc: A.Doc<DraftsDoc>, id: string, at: number): DraftEdit | null {
  if (!(id in column(doc))) return null;
  const next = A.change(doc, { time: Math.floor(Math.max(0, at) / 1000) }, (x) => {
    delete x.drafts[id];
  });
  return { doc: next, change: A.getLastLocalChange(next)! };
}

// ---- Admission: what one of my devices may send the others ----

const quote = (s: string) => JSON.stringify(s.length > 40 ? `${s.slice(0, 40)}…` : s);
const FIELDS = ["to", "body", "updatedAt"] as const;

/**
 * Decodes a change and accepts it only if it is a well-formed drafts edit: whole drafts (a new map
 * under a draft id holding exactly a valid address, a body of at most MAX_BODY_CHARS and a time) and
 * deletes of drafts; nothing else anywhere. `signerActorPrefix` pins whose change it is.
 */
export function checkDraftsChange(changeBytes: Uint8Array, signerActorPrefix?: string): DraftsVerdict {
  let change: A.DecodedChange;
  try {
    change = A.decodeChange(changeBytes);
  } catch (e) {
    return { ok: false, reason: `not an Automerge change (${(e as Error).message})` };
  }
  const g = genesis();
  if (change.hash === g.hash) return { ok: true, change };
  if (signerActorPrefix !== undefined && !(change.actor.length === 32 && change.actor.startsWith(signerActorPrefix)))
    return { ok: false, reason: `change actor ${change.actor} is not the signer's` };
  const made = new Map<string, Set<string>>(); // drafts this change writes, by object id: the fields set
  for (const [i, op] of change.ops.entries()) {
    if (op.obj === g.drafts) {
      if (!validDraftId(op.key)) return { ok: false, reason: `draft id ${quote(op.key)} is not 8-24 hex digits` };
      if (op.action === "del") continue;
      if (op.action !== "makeMap") return { ok: false, reason: `change puts a ${op.action} under draft ${op.key}; a draft is a whole map` };
      made.set(`${change.startOp + i}@${change.actor}`, new Set());
      continue;
    }
    const fields = made.get(op.obj);
    if (!fields) return { ok: false, reason: `change touches ${op.obj === "_root" ? "the document root" : `object ${op.obj}`}, not a draft it writes` };
    const f = op.key as (typeof FIELDS)[number];
    if (op.action !== "set" || !FIELDS.includes(f) || fields.has(f))
      return { ok: false, reason: `a draft holds to, body and updatedAt once each, not ${op.action} ${quote(op.key)}` };
    fields.add(f);
    const v = op.value;
    if (f === "updatedAt") {
      if (!(op.datatype === "int" || op.datatype === "uint") || !validTime(v)) return { ok: false, reason: "updatedAt must be a whole number of ms" };
    } else if (typeof v !== "string" || op.datatype !== undefined) {
      return { ok: false, reason: `${f} must be a string` };
    } else if (f === "to" && !validTo(v)) {
      return { ok: false, reason: `to ${quote(v)} is not an address` };
    } else if (f === "body" && !validBody(v)) {
      return { ok: false, reason: `the body is over ${MAX_BODY_CHARS} characters` };
    }
  }
  for (const fields of made.values()) if (fields.size !== FIELDS.length) return { ok: false, reason: "change writes an incomplete draft" };
  return { ok: true, change };
}

/**
 * Admission for a change to the person's drafts: its author must be the person (one of its devices
 * signed it; the caller has checked the certificate and revocations), and it must be a well-formed
 * drafts edit by that device.
 */
export function checkPersonalDraftsChange(changeBytes: Uint8Array, person: Uint8Array, author: Uint8Array, signer: Uint8Array): DraftsVerdict {
  if (!equalBytes(author, person)) return { ok: false, reason: "only the person's own devices write in their drafts" };
  return checkDraftsChange(changeBytes, keyId(signer));
}
