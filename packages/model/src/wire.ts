// Sync protocol frames (inside an authenticated, encrypted link). Documented in docs/protocol.md,
// which calls each frame by its FrameType name:
//   Have        = varint 1, u8 flags (bit 0: last of the listing), varint n, n x raw32 envelope ids
//   Want        = varint 2, varint n, n x raw32 envelope ids
//   Envelope    = varint 3, varint hops, varint copies, varint len + envelope bytes
//   Sketch      = varint 4, varint level, varint set size, IBLT (see iblt.ts)
//   Done        = varint 5, varint level   (the difference was decoded; this reconciliation is over)
//   Want16      = varint 6, varint n, n x raw16 envelope id prefixes
//   SliceSketch = varint 7, range, varint level, varint slice size, IBLT
//   SliceDone   = varint 8, range, varint level
//   Probe       = varint 11, varint n, n x (raw16 id prefix, raw32 E, varint k, k x raw16 tag)
//   ChatState   = varint 12, u8 state (0 active, 1 composing, 2 paused, 3 inactive, 4 gone)
//   Crowd       = varint 13, raw8 salt, varint n, n x raw4 sha256("pigeon crowd" || salt || person key)[0..4]
//   Have16      = varint 14, u8 flags (bit 0: last of the listing), varint n, n x raw16 envelope id prefixes
//   Since       = varint 15, raw8 sender's epoch, raw8 the receiver's epoch the sender remembers (or zeros)
//   Mark        = varint 16, u8 flags (bit 0: echo), varint n (an arrival number of the Mark's first sender)
//   NotMine16   = varint 17, varint n, n x (raw16 envelope id prefix, raw8 probeCheck of the Probe entry answered)
//   CrowdChange = varint 18, varint n, n x raw4 (gone), varint m, m x raw4 (added), under the last Crowd's salt
//   Have8       = varint 19, u8 flags (bit 0: last of the listing), varint n, n x raw8 envelope id prefixes
//   Want8       = varint 20, varint n, n x raw8 envelope id prefixes
//   NotMine8    = varint 21, varint n, n x (raw8 envelope id prefix, raw8 probeCheck of the Probe entry answered)
// Varints are read in their shortest form only, so a frame has exactly one encoding.
import { DecodeError, Reader, Writer } from "./bytes.js";
import { sha256 } from "./crypto.js";
import { MAX_ENVELOPE_BYTES } from "./envelope.js";
import { MAX_SLOTS, TAG_BYTES } from "./sealed.js";
import { Iblt, IBLT_KEY_BYTES, SKETCH_LEVELS } from "./iblt.js";
import { readRange, WHOLE_RANGE, writeRange, type IdRange } from "./id-range.js";

/** Slice frames name a slice; the whole set has its own (shorter) frame types. */
function nonEmpty(r: IdRange): IdRange {
  if (r.depth === 0) throw new DecodeError("slice frame for the whole set");
  return r;
}

/** The first varint of every sync frame. These byte values are the wire: never renumber them. */
export const FrameType = {
  Have: 1,
  Want: 2,
  Envelope: 3,
  /** A sketch of the whole set. */
  Sketch: 4,
  /** The whole set settled (or, at the last level, "list it instead"). */
  Done: 5,
  Want16: 6,
  /** A sketch of one slice of the id space. */
  SliceSketch: 7,
  /** One slice settled. */
  SliceDone: 8,
  /** A new device asks to join the person at the other end (keyring.ts: the code's MAC). */
  PairRequest: 9,
  /** The person's answer: who it is, the device's certificate, the sealing keys (MACed with the code). */
  PairGrant: 10,
  /**
   * A carrier that may not hand a sealed envelope on (one copy token left) asks whether the peer is
   * one of its recipients: the peer answers Want16 for the entries whose tags its sealing keys match.
   */
  Probe: 11,
  /**
   * Live, never stored or carried: the link's person tells the person at the other end whether they
   * are typing to them now (XEP-0085 chat states). Only between buddies' laptops that are connected.
   */
  ChatState: 12,
  /**
   * Whom the sender meets often lately (its crowd), as salted 4-byte hashes of person keys, fresh salt
   * per link: an author hands its own message's copies to a peer whose crowd holds the recipient.
   */
  Crowd: 13,
  /**
   * Have with 16-byte id prefixes (what sketches and Want16 already name envelopes by): listings and
   * live announcements at half the bytes of Have; the answer is Want16.
   */
  Have16: 14,
  /**
   * Sent once on every link, first of the reconciliation: the sender's epoch (drawn when its sync engine
   * starts) and the epoch of the receiver's it remembers a finished meeting with. When both sides
   * remember the other's current epoch, each lists only what arrived since; otherwise a full round.
   */
  Since: 15,
  /**
   * "Everything I meant to offer you from my arrivals up to n went out before this frame"; the
   * receiver echoes it (bit 0) once all of that is stored. The echo is what lets the next meeting
   * start from n.
   */
  Mark: 16,
  /**
   * An answer to a listing, like Want16, for envelopes the sender lacks and already knows are not for
   * it (an earlier Probe about them matched none of its keys): send them only as a carrier's copy,
   * and do not Probe about them. Each key comes with the check of the Probe entry it was judged on, so
   * a carrier trusts it only if that entry was its envelope's own (a stranger's made-up Probe cannot
   * make a child turn its own mail away).
   */
  NotMine16: 17,
  /**
   * To a laptop met again that keeps the sender's last Crowd: who left it and who joined, hashed
   * under that Crowd's salt (a few bytes where a fresh Crowd is ~100). The receiver applies it to the
   * crowd it keeps for the sender; it has no use without one.
   */
  CrowdChange: 18,
  /**
   * Have16, Want16 and NotMine16 with 8-byte id prefixes: what listings, announcements and their answers
   * send (half the bytes again). Sketches and Probes keep 16 bytes (an IBLT cell needs them).
   */
  Have8: 19,
  Want8: 20,
  NotMine8: 21,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

export const MAX_IDS_PER_FRAME = 4096;
/**
 * Bytes of the id prefix in Have8, Want8 and NotMine8. Shadowing someone else's envelope (so that a peer
 * that holds ours never asks for theirs) takes a 2^64 second preimage of SHA-256.
 */
export const SHORT_KEY_BYTES = 8;
/** Entries in one Probe frame (each costs the receiver one X25519 per sealing key it holds). */
export const MAX_PROBES_PER_FRAME = 256;
/** Tags in one Probe entry: a sealed envelope's slots. */
export const MAX_PROBE_TAGS = MAX_SLOTS;

/** People in one Crowd frame: a laptop tells at most this many of whom it meets often. */
export const MAX_CROWD = 32;
export const CROWD_SALT_BYTES = 8;
/** A sync engine's epoch (Since): random, drawn at each start; all zeros means "none". */
export const EPOCH_BYTES = 8;
export const CROWD_HASH_BYTES = 4;

const CROWD_CONTEXT = new TextEncoder().encode("pigeon crowd");

/** One person's entry in a Crowd frame: salted, so two links' frames cannot be matched up by their entries. */
export function crowdHash(salt: Uint8Array, person: Uint8Array): Uint8Array {
  return sha256(CROWD_CONTEXT, salt, person).subarray(0, CROWD_HASH_BYTES);
}

/** Bytes of a Probe entry's check in NotMine16. */
export const PROBE_CHECK_BYTES = 8;
const PROBE_CHECK_CONTEXT = new TextEncoder().encode("pigeon probe check");

/** A Probe entry's one-off key and tags, hashed: what NotMine16 names the entry it was judged on by. */
export function probeCheck(ephemeral: Uint8Array, tags: Uint8Array[]): Uint8Array {
  return sha256(PROBE_CHECK_CONTEXT, ephemeral, ...tags).subarray(0, PROBE_CHECK_BYTES);
}

export interface NotMineEntry {
  key: Uint8Array;
  check: Uint8Array;
}

export interface ProbeEntry {
  /** The first 16 bytes of the sealed envelope's id. */
  key: Uint8Array;
  /** Its one-off X25519 key. */
  ephemeral: Uint8Array;
  tags: Uint8Array[];
}

/** XEP-0085's five states; the index is the wire byte. */
export const CHAT_STATES = ["active", "composing", "paused", "inactive", "gone"] as const;
export type ChatState = (typeof CHAT_STATES)[number];

export type SyncFrame =
  | { type: "have"; last: boolean; ids: Uint8Array[] }
  | { type: "want"; ids: Uint8Array[] }
  | { type: "envelope"; hops: number; copies: number; envelope: Uint8Array }
  /** A sketch of the set, or of one slice of it (`range.depth` 0 = the whole set: FrameType.Sketch, else SliceSketch). */
  | { type: "sketch"; range: IdRange; level: number; size: number; table: Iblt }
  /** `level` = SKETCH_LEVELS.length: "too different: list the ids of this range instead". */
  | { type: "done"; range: IdRange; level: number }
  | { type: "want16"; keys: Uint8Array[] }
  | { type: "have16"; last: boolean; keys: Uint8Array[] }
  | { type: "probe"; entries: ProbeEntry[] }
  | { type: "pair-request"; request: Uint8Array }
  | { type: "pair-grant"; grant: Uint8Array }
  | { type: "chat-state"; state: ChatState }
  | { type: "crowd"; salt: Uint8Array; hashes: Uint8Array[] }
  | { type: "since"; epoch: Uint8Array; yours: Uint8Array }
  | { type: "mark"; echo: boolean; n: number }
  | { type: "not-mine16"; entries: NotMineEntry[] }
  | { type: "crowd-change"; gone: Uint8Array[]; added: Uint8Array[] }
  | { type: "want8"; keys: Uint8Array[] }
  | { type: "have8"; last: boolean; keys: Uint8Array[] }
  | { type: "not-mine8"; entries: NotMineEntry[] };

function writeIds(w: Writer, ids: Uint8Array[]): void {
  if (ids.length > MAX_IDS_PER_FRAME) throw new RangeError("too many ids in one frame");
  w.varint(ids.length);
  for (const id of ids) w.raw(id);
}

function readIds(r: Reader): Uint8Array[] {
  const n = r.varint();
  if (n > MAX_IDS_PER_FRAME) throw new DecodeError(`frame lists ${n} ids, limit ${MAX_IDS_PER_FRAME}`);
  const ids: Uint8Array[] = [];
  for (let i = 0; i < n; i++) ids.push(Uint8Array.from(r.raw(32)));
  return ids;
}

/** Envelope id prefixes of `size` bytes (16: Want16, Have16; 8: Want8, Have8). */
function writeKeys(w: Writer, keys: Uint8Array[], size: number): void {
  if (keys.length > MAX_IDS_PER_FRAME) throw new RangeError("too many keys in one frame");
  w.varint(keys.length);
  for (const k of keys) {
    if (k.length !== size) throw new RangeError(`an id prefix here is ${size} bytes`);
    w.raw(k);
  }
}

function readKeys(r: Reader, size: number): Uint8Array[] {
  const n = r.varint();
  if (n > MAX_IDS_PER_FRAME) throw new DecodeError(`frame lists ${n} keys, limit ${MAX_IDS_PER_FRAME}`);
  const keys: Uint8Array[] = [];
  for (let i = 0; i < n; i++) keys.push(Uint8Array.from(r.raw(size)));
  return keys;
}

function writeNotMine(w: Writer, type: number, entries: NotMineEntry[], size: number): void {
  if (entries.length > MAX_IDS_PER_FRAME) throw new RangeError("too many entries in one frame");
  w.varint(type).varint(entries.length);
  for (const e of entries) {
    if (e.key.length !== size || e.check.length !== PROBE_CHECK_BYTES) throw new RangeError("malformed not-mine entry");
    w.raw(e.key).raw(e.check);
  }
}

function readNotMine(r: Reader, size: number): NotMineEntry[] {
  const n = r.varint();
  if (n > MAX_IDS_PER_FRAME) throw new DecodeError(`frame lists ${n} keys, limit ${MAX_IDS_PER_FRAME}`);
  const entries: NotMineEntry[] = [];
  for (let i = 0; i < n; i++) entries.push({ key: Uint8Array.from(r.raw(size)), check: Uint8Array.from(r.raw(PROBE_CHECK_BYTES)) });
  return entries;
}

export function encodeFrame(f: SyncFrame): Uint8Array {
  const w = new Writer();
  switch (f.type) {
    case "have":
      w.varint(FrameType.Have).u8(f.last ? 1 : 0);
      writeIds(w, f.ids);
      break;
    case "want":
      w.varint(FrameType.Want);
      writeIds(w, f.ids);
      break;
    case "envelope":
      w.varint(FrameType.Envelope).varint(f.hops).varint(f.copies).bytes(f.envelope);
      break;
    case "sketch":
      if (f.range.depth === 0) w.varint(FrameType.Sketch);
      else writeRange(w.varint(FrameType.SliceSketch), f.range);
      w.varint(f.level).varint(f.size);
      f.table.encode(w);
      break;
    case "done":
      if (f.range.depth === 0) w.varint(FrameType.Done);
      else writeRange(w.varint(FrameType.SliceDone), f.range);
      w.varint(f.level);
      break;
    case "want16":
      writeKeys(w.varint(FrameType.Want16), f.keys, IBLT_KEY_BYTES);
      break;
    case "have16":
      writeKeys(w.varint(FrameType.Have16).u8(f.last ? 1 : 0), f.keys, IBLT_KEY_BYTES);
      break;
    case "probe":
      if (f.entries.length > MAX_PROBES_PER_FRAME) throw new RangeError("too many probes in one frame");
      w.varint(FrameType.Probe).varint(f.entries.length);
      for (const e of f.entries) {
        if (e.key.length !== IBLT_KEY_BYTES || e.ephemeral.length !== 32 || e.tags.length > MAX_PROBE_TAGS) throw new RangeError("malformed probe entry");
        w.raw(e.key).raw(e.ephemeral).varint(e.tags.length);
        for (const t of e.tags) {
          if (t.length !== TAG_BYTES) throw new RangeError("malformed probe tag");
          w.raw(t);
        }
      }
      break;
    case "pair-request":
      w.varint(FrameType.PairRequest).bytes(f.request);
      break;
    case "pair-grant":
      w.varint(FrameType.PairGrant).bytes(f.grant);
      break;
    case "chat-state":
      w.varint(FrameType.ChatState).u8(CHAT_STATES.indexOf(f.state));
      break;
    case "crowd":
      if (f.salt.length !== CROWD_SALT_BYTES || f.hashes.length > MAX_CROWD || f.hashes.some((h) => h.length !== CROWD_HASH_BYTES)) throw new RangeError("malformed crowd frame");
      w.varint(FrameType.Crowd).raw(f.salt).varint(f.hashes.length);
      for (const h of f.hashes) w.raw(h);
      break;
    case "since":
      if (f.epoch.length !== EPOCH_BYTES || f.yours.length !== EPOCH_BYTES) throw new RangeError("malformed since frame");
      w.varint(FrameType.Since).raw(f.epoch).raw(f.yours);
      break;
    case "crowd-change":
      for (const list of [f.gone, f.added]) {
        if (list.length > MAX_CROWD || list.some((h) => h.length !== CROWD_HASH_BYTES)) throw new RangeError("malformed crowd-change frame");
      }
      w.varint(FrameType.CrowdChange).varint(f.gone.length);
      for (const h of f.gone) w.raw(h);
      w.varint(f.added.length);
      for (const h of f.added) w.raw(h);
      break;
    case "not-mine16":
      writeNotMine(w, FrameType.NotMine16, f.entries, IBLT_KEY_BYTES);
      break;
    case "want8":
      writeKeys(w.varint(FrameType.Want8), f.keys, SHORT_KEY_BYTES);
      break;
    case "have8":
      writeKeys(w.varint(FrameType.Have8).u8(f.last ? 1 : 0), f.keys, SHORT_KEY_BYTES);
      break;
    case "not-mine8":
      writeNotMine(w, FrameType.NotMine8, f.entries, SHORT_KEY_BYTES);
      break;
    case "mark":
      if (!Number.isSafeInteger(f.n) || f.n < 0) throw new RangeError("malformed mark frame");
      w.varint(FrameType.Mark).u8(f.echo ? 1 : 0).varint(f.n);
      break;
  }
  return w.finish();
}

/** Throws DecodeError on anything malformed. */
export function decodeFrame(bytes: Uint8Array): SyncFrame {
  const r = new Reader(bytes, true);
  const type = r.varint();
  let f: SyncFrame;
  switch (type) {
    case FrameType.Have: {
      const flags = r.u8();
      if (flags > 1) throw new DecodeError(`unknown flags ${flags} in a Have frame`);
      f = { type: "have", last: flags === 1, ids: readIds(r) };
      break;
    }
    case FrameType.Want:
      f = { type: "want", ids: readIds(r) };
      break;
    case FrameType.Envelope: {
      const hops = r.varint();
      const copies = r.varint();
      f = { type: "envelope", hops, copies, envelope: Uint8Array.from(r.bytes(MAX_ENVELOPE_BYTES)) };
      break;
    }
    case FrameType.Sketch:
    case FrameType.SliceSketch: {
      const range = type === FrameType.Sketch ? WHOLE_RANGE : nonEmpty(readRange(r));
      const level = r.varint();
      if (level >= SKETCH_LEVELS.length) throw new DecodeError(`unknown sketch level ${level}`);
      const size = r.varint();
      f = { type: "sketch", range, level, size, table: Iblt.decodeFrom(r, SKETCH_LEVELS[level]!) };
      break;
    }
    case FrameType.Done:
    case FrameType.SliceDone: {
      const range = type === FrameType.Done ? WHOLE_RANGE : nonEmpty(readRange(r));
      const level = r.varint();
      if (level > SKETCH_LEVELS.length) throw new DecodeError(`unknown sketch level ${level}`);
      f = { type: "done", range, level };
      break;
    }
    case FrameType.Want16:
      f = { type: "want16", keys: readKeys(r, IBLT_KEY_BYTES) };
      break;
    case FrameType.Want8:
      f = { type: "want8", keys: readKeys(r, SHORT_KEY_BYTES) };
      break;
    case FrameType.Have16:
    case FrameType.Have8: {
      const flags = r.u8();
      if (flags > 1) throw new DecodeError(`unknown flags ${flags} in a Have${type === FrameType.Have8 ? 8 : 16} frame`);
      f =
        type === FrameType.Have8
          ? { type: "have8", last: flags === 1, keys: readKeys(r, SHORT_KEY_BYTES) }
          : { type: "have16", last: flags === 1, keys: readKeys(r, IBLT_KEY_BYTES) };
      break;
    }
    case FrameType.Probe: {
      const n = r.varint();
      if (n > MAX_PROBES_PER_FRAME) throw new DecodeError(`frame has ${n} probes, limit ${MAX_PROBES_PER_FRAME}`);
      const entries: ProbeEntry[] = [];
      for (let i = 0; i < n; i++) {
        const key = Uint8Array.from(r.raw(IBLT_KEY_BYTES));
        const ephemeral = Uint8Array.from(r.raw(32));
        const k = r.varint();
        if (k > MAX_PROBE_TAGS) throw new DecodeError(`probe has ${k} tags, limit ${MAX_PROBE_TAGS}`);
        const tags: Uint8Array[] = [];
        for (let j = 0; j < k; j++) tags.push(Uint8Array.from(r.raw(TAG_BYTES)));
        entries.push({ key, ephemeral, tags });
      }
      f = { type: "probe", entries };
      break;
    }
    case FrameType.PairRequest:
      f = { type: "pair-request", request: Uint8Array.from(r.bytes(64)) };
      break;
    case FrameType.PairGrant:
      f = { type: "pair-grant", grant: Uint8Array.from(r.bytes(4096)) };
      break;
    case FrameType.ChatState: {
      const state = CHAT_STATES[r.u8()];
      if (!state) throw new DecodeError("unknown chat state");
      f = { type: "chat-state", state };
      break;
    }
    case FrameType.Crowd: {
      const salt = Uint8Array.from(r.raw(CROWD_SALT_BYTES));
      const n = r.varint();
      if (n > MAX_CROWD) throw new DecodeError(`crowd frame lists ${n} people, limit ${MAX_CROWD}`);
      const hashes: Uint8Array[] = [];
      for (let i = 0; i < n; i++) hashes.push(Uint8Array.from(r.raw(CROWD_HASH_BYTES)));
      f = { type: "crowd", salt, hashes };
      break;
    }
    case FrameType.Since:
      f = { type: "since", epoch: Uint8Array.from(r.raw(EPOCH_BYTES)), yours: Uint8Array.from(r.raw(EPOCH_BYTES)) };
      break;
    case FrameType.CrowdChange: {
      const lists: Uint8Array[][] = [];
      for (const what of ["gone", "added"]) {
        const n = r.varint();
        if (n > MAX_CROWD) throw new DecodeError(`crowd-change frame lists ${n} people ${what}, limit ${MAX_CROWD}`);
        const hashes: Uint8Array[] = [];
        for (let i = 0; i < n; i++) hashes.push(Uint8Array.from(r.raw(CROWD_HASH_BYTES)));
        lists.push(hashes);
      }
      f = { type: "crowd-change", gone: lists[0]!, added: lists[1]! };
      break;
    }
    case FrameType.NotMine16:
      f = { type: "not-mine16", entries: readNotMine(r, IBLT_KEY_BYTES) };
      break;
    case FrameType.NotMine8:
      f = { type: "not-mine8", entries: readNotMine(r, SHORT_KEY_BYTES) };
      break;
    case FrameType.Mark: {
      const flags = r.u8();
      if (flags > 1) throw new DecodeError(`unknown flags ${flags} in a Mark frame`);
      f = { type: "mark", echo: flags === 1, n: r.varint() };
      break;
    }
    default:
      throw new DecodeError(`unknown frame type ${type}`);
  }
  r.end();
  return f;
}
