// The sealed-envelope store: append-only, crash-safe, and blind. It holds envelopes for this laptop's
// user and envelopes it carries for others alike, as opaque bytes plus their cleartext routing header.
// It never loads Automerge.
//
// SQLite (better-sqlite3) in WAL mode with synchronous=FULL: each insert is one fsynced transaction, a
// crash leaves the last committed state, SQLITE_FULL surfaces as an error without damaging what is
// stored, and a relay point can keep a million envelopes without one file (inode) per envelope.
// Longer than the other files on purpose: it is one class over the envelope tables (envelopes,
// parties, acknowledgements, carrier totals, eviction), whose queries share one statement cache and
// the sketch index that every insert must update; the layout itself is in database.ts.
import type Database from "better-sqlite3";
import { SCHEMA } from "./database.js";
import { statementCache } from "./statements.js";
import {
  decodeBetweenVillages, decodeEnvelope, decodeInner, decodeSealed, encodeInner, equalBytes, EnvelopeKind, Iblt, IBLT_KEY_BYTES, rangeBounds, SHORT_KEY_BYTES, SKETCH_LEVELS, type Envelope, type IdRange,
} from "@pigeon/model";

/** The author column of an envelope whose author this node cannot know (a carried sealed envelope, a receipt). */
export const NOBODY = new Uint8Array(32);
const NO_CONVERSATION = new Uint8Array(16);

/**
 * A signed envelope as this node holds it: `bytes` the signed (version-2) envelope; `sealed` the
 * version-3 envelope it travels in, when it does (then `id` is the sealed envelope's id: what is
 * stored, reconciled and handed on).
 */
/**
 * A signed envelope as this user holds it: `sealed`, the sealed envelope it travels in; `key`, the
 * conversation key envelope sealed in the same one (a conversation's first message: model decodeInner).
 */
export type HeldEnvelope = Envelope & { sealed?: Uint8Array; key?: Envelope };

/**
 * What the store keeps of one envelope: what travels (`bytes`; `id` = its sha256) and the routing
 * facts this node knows of it. A carried sealed envelope or receipt knows none: author NOBODY, no
 * recipients, kind Sealed or Ack.
 */
export interface Storable {
  id: Uint8Array;
  bytes: Uint8Array;
  conversation: Uint8Array;
  segment: number;
  kind: number;
  author: Uint8Array;
  recipients: Uint8Array[];
  created: number;
  lifetime: number;
  /** The signed envelope inside a sealed one of this user's. */
  inner?: Uint8Array;
}

/** The store's row for a signed envelope (sealed: the sealed bytes travel, the signed ones are kept beside). */
export function storable(env: HeldEnvelope): Storable {
  return env.sealed ? { ...env, bytes: env.sealed, inner: encodeInner(env, env.key) } : env;
}

/** The row of an envelope this node only carries: what travels, and nothing known of who or what. */
export function opaque(o: { id: Uint8Array; bytes: Uint8Array; created: number; lifetime: number; kind: EnvelopeKind.Sealed | EnvelopeKind.Ack | EnvelopeKind.Between }): Storable {
  return { ...o, conversation: NO_CONVERSATION, segment: 0, author: NOBODY, recipients: [] };
}

export interface StoredEnvelope {
  id: Uint8Array;
  conversation: Uint8Array;
  segment: number;
  kind: number;
  author: Uint8Array;
  recipients: Uint8Array[];
  created: number;
  lifetime: number;
  receivedAt: number;
  hops: number;
  size: number;
  carried: boolean;
  source?: Uint8Array;
  /** Spray-and-wait copy tokens held here; undefined for our own envelopes not yet handed out. */
  copies?: number;
  /** A sealed envelope's locks (one per recipient): receipts open them. */
  locks?: Uint8Array[];
}
// For a carried sealed envelope (kind Sealed) `author` is NOBODY and `recipients` are its locks.

export interface StoreStats {
  envelopes: number;
  bytes: number;
}

export { closeDatabase, DamagedStoreError, openDatabase, SCHEMA_VERSION, storeCheck, type OpenOptions, type StoreCheck } from "./database.js";

type Row = {
  id: Buffer; conversation: Buffer; segment: number; kind: number; author: Buffer; created: number; lifetime: number;
  received_at: number; hops: number; size: number; carried: number; source: Buffer | null; copies: number | null; head: Buffer;
};

/**
 * The reconciliation sketches of this node's set (stored ∪ delivered ∪ forgotten ids), one IBLT per
 * level, kept up to date on every insert. Built once by streaming the ids (never the envelopes) from
 * SQLite, so a relay point with a million envelopes holds ~0.5 MB of tables, not its store, in memory.
 */
const MAX_ID = new Uint8Array(32).fill(0xff);

/**
 * The ids that start with `key`, as SQLite bounds: an id prefix from a peer (8 bytes in listings and
 * their answers, 16 in sketches and Probes). Anything shorter names too many envelopes to mean one.
 */
function prefixBounds(key: Uint8Array): { lo: Buffer; hi: Buffer } | undefined {
  if (key.length < SHORT_KEY_BYTES || key.length > 32) return undefined;
  return { lo: Buffer.concat([key, Buffer.alloc(32 - key.length, 0)]), hi: Buffer.concat([key, Buffer.alloc(32 - key.length, 0xff)]) };
}

export class SketchIndex {
  readonly levels: Iblt[] = SKETCH_LEVELS.map((cells) => new Iblt(cells));
  size = 0;

  add(id: Uint8Array): void {
    for (const t of this.levels) t.update(id, 1);
    this.size++;
  }
}

export class EnvelopeStore {
  private readonly stmt: ReturnType<typeof statementCache>;

  private sketchIndex: SketchIndex | undefined;
  private readonly insertEnv;
  private readonly insertParty;
  private readonly hasStmt;
  private readonly getStmt;
  private readonly metaStmt;
  private readonly partiesStmt;
  private readonly idsStmt;
  private readonly byConversation;
  private readonly bySegment;
  private readonly handStmt;
  private readonly handedStmt;
  private readonly statsStmt;

  constructor(readonly db: Database.Database) {
    this.stmt = statementCache(db);
    db.exec(SCHEMA);
    this.insertEnv = db.prepare(
      `INSERT OR IGNORE INTO envelopes (id, conversation, segment, kind, author, created, lifetime, received_at, hops, size, carried, source, copies, bytes, inner)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.insertParty = db.prepare(`INSERT OR IGNORE INTO envelope_parties (envelope, party) VALUES (?, ?)`);
    this.hasStmt = db.prepare(`SELECT 1 FROM envelopes WHERE id = ?`).pluck();
    this.getStmt = db.prepare(`SELECT bytes, inner FROM envelopes WHERE id = ?`);
    this.metaStmt = db.prepare(
      `SELECT id, conversation, segment, kind, author, created, lifetime, received_at, hops, size, carried, source, copies, substr(bytes, 1, 2) AS head
       FROM envelopes WHERE id = ?`,
    );
    this.partiesStmt = db.prepare(`SELECT party FROM envelope_parties WHERE envelope = ?`).pluck();
    this.idsStmt = db.prepare(`SELECT id, hops, received_at, lifetime FROM envelopes`);
    this.byConversation = db.prepare(`SELECT id FROM envelopes WHERE conversation = ? ORDER BY received_at`).pluck();
    // one segment's (catching a document up reads only its own envelopes, not a 10,000-message conversation's)
    this.bySegment = db.prepare(`SELECT id FROM envelopes WHERE conversation = ? AND segment = ? ORDER BY received_at`).pluck();
    this.handStmt = db.prepare(`INSERT OR IGNORE INTO handed (envelope, peer, at) VALUES (?, ?, ?)`);
    this.handedStmt = db.prepare(`SELECT peer, at FROM handed WHERE envelope = ? ORDER BY at LIMIT 1`);
    this.statsStmt = db.prepare(`SELECT count(*) AS envelopes, coalesce(sum(size), 0) AS bytes FROM envelopes`);
  }

  /**
   * Stores an envelope (already decoded and signature-checked). Returns false if it was already here.
   * `carried`: held for others; `source`: the peer it came from.
   */
  put(env: Storable, hops: number, receivedAt: number, carried = false, source?: Uint8Array, evict: Uint8Array[] = [], copies?: number): boolean {
    const tx = this.db.transaction(() => {
      if (!this.insertRow(env, hops, receivedAt, carried, source ?? null, copies ?? null)) return false;
      for (const id of evict) this.forgetRow(id, "evicted");
      return true;
    });
    const added = tx();
    if (added && !this.inSet(env.id, 1)) this.addToSketch(env.id);
    return added;
  }

  /**
   * Runs several store updates as one transaction (one fsync instead of one per update). If it rolls
   * back, what this object keeps in memory about the rows (sketches, cached metadata)
   * may describe writes that never happened, so it is dropped and rebuilt from the database.
   */
  batch<T>(fn: () => T): T {
    const before = this.memoryWrites;
    try {
      return this.db.transaction(fn)();
    } catch (e) {
      this.metaCache.clear();
      if (this.memoryWrites !== before) this.sketchIndex = undefined;
      throw e;
    }
  }

  /** A transaction opened elsewhere (group commit) rolled back: what memory keeps is rebuilt from the rows. */
  rolledBack(): void {
    this.metaCache.clear();
    this.sketchIndex = undefined;
  }

  /** Changes made to the in-memory sketches (see batch). */
  private memoryWrites = 0;

  private addToSketch(id: Uint8Array): void {
    if (!this.sketchIndex) return;
    this.memoryWrites++;
    this.sketchIndex.add(id);
  }

  private insertRow(env: Storable, hops: number, receivedAt: number, carried: boolean, source: Uint8Array | null, copies: number | null): boolean {
    const r = this.insertEnv.run(
      env.id, env.conversation, env.segment, env.kind, env.author, env.created, env.lifetime, receivedAt, hops, env.bytes.length,
      carried ? 1 : 0, source, copies, env.bytes, env.inner ?? null,
    );
    if (r.changes === 0) return false;
    // an envelope whose parties this node cannot know has none
    if (!equalBytes(env.author, NOBODY)) {
      this.insertParty.run(env.id, env.author);
      for (const p of env.recipients) this.insertParty.run(env.id, p);
    }
    return true;
  }

  /** Bulk load in one transaction (benchmarks, imports): carried envelopes with no source. */
  putMany(envs: Storable[], hops: number, receivedAt: number, carried = true, copies?: number): number {
    let added = 0;
    const tx = this.db.transaction(() => {
      for (const env of envs) if (this.insertRow(env, hops, receivedAt, carried, null, copies ?? null)) added++;
    });
    tx();
    this.sketchIndex = undefined; // rebuilt on next use
    return added;
  }

  /** True if `id` is in the reconciliation set more than `extra` times (i.e. was already counted). */
  private inSet(id: Uint8Array, extra: number): boolean {
    const n =
      (this.stmt(`SELECT count(*) FROM delivered WHERE id = ?`).pluck().get(id) as number) +
      (this.stmt(`SELECT count(*) FROM forgotten WHERE id = ?`).pluck().get(id) as number) +
      (this.stmt(`SELECT count(*) FROM envelopes WHERE id = ?`).pluck().get(id) as number);
    return n > extra;
  }

  /** The node's sketches, built on first use by streaming ids from the database. */
  sketches(): SketchIndex {
    if (!this.sketchIndex) {
      const idx = new SketchIndex();
      const rows = this.db
        .prepare(`SELECT id FROM envelopes UNION SELECT id FROM delivered UNION SELECT id FROM forgotten`)
        .pluck()
        .iterate() as IterableIterator<Buffer>;
      for (const id of rows) idx.add(id);
      this.sketchIndex = idx;
    }
    return this.sketchIndex;
  }

  /**
   * Sketches of one slice of the set at the given levels, from one indexed range scan (the set is
   * what `sketches()` covers: stored, delivered and let-go ids). Used when a difference is too large
   * for one sketch; the slice is read from disk, never the whole set.
   */
  sliceSketch(range: IdRange, levels: readonly number[]): { size: number; tables: Map<number, Iblt> } {
    const { lo, hi } = rangeBounds(range);
    const tables = new Map(levels.map((l) => [l, new Iblt(SKETCH_LEVELS[l]!)] as const));
    const rows = this.stmt(
      `SELECT id FROM envelopes WHERE id BETWEEN @lo AND @hi UNION SELECT id FROM delivered WHERE id BETWEEN @lo AND @hi
       UNION SELECT id FROM forgotten WHERE id BETWEEN @lo AND @hi`,
    )
      .pluck()
      .iterate({ lo, hi }) as IterableIterator<Buffer>;
    let size = 0;
    for (const id of rows) {
      size++;
      for (const t of tables.values()) t.update(id, 1);
    }
    return { size, tables };
  }

  /** The stored envelope whose id starts with this key (an 8- or 16-byte prefix), if any. */
  byKey(key: Uint8Array): Uint8Array | undefined {
    const bounds = prefixBounds(key);
    if (!bounds) return undefined;
    const { lo, hi } = bounds;
    const id = this.stmt(`SELECT id FROM envelopes WHERE id >= ? AND id <= ? LIMIT 1`).pluck().get(lo, hi) as Buffer | undefined;
    return id ? new Uint8Array(id) : undefined;
  }

  /** Whether this node has, or had and let go of, exactly this envelope (one indexed lookup). */
  knowsId(id: Uint8Array): boolean {
    return (
      this.stmt(
        `SELECT 1 FROM envelopes WHERE id = ? UNION ALL SELECT 1 FROM delivered WHERE id = ?
         UNION ALL SELECT 1 FROM forgotten WHERE id = ? LIMIT 1`,
      ).get(id, id, id) !== undefined
    );
  }

  /** This user's own sealed messages and keys for `party`, with what travels of them (mail for another village, wrapped once its village is known). */
  ownSealedFor(me: Uint8Array, party: Uint8Array): { id: Uint8Array; bytes: Uint8Array }[] {
    return (
      this.stmt(
        `SELECT e.id, e.bytes FROM envelopes e JOIN envelope_parties p ON p.envelope = e.id
         WHERE e.carried = 0 AND e.author = ? AND p.party = ? AND e.kind IN (1, 2)`,
      ).all(me, party) as { id: Buffer; bytes: Buffer }[]
    ).map((r) => ({ id: new Uint8Array(r.id), bytes: new Uint8Array(r.bytes) }));
  }

  /** The statements held here (keyrings, directory entries, route announcements), by id. */
  statementIds(): Uint8Array[] {
    return (this.stmt(`SELECT id FROM envelopes WHERE kind = 4`).all() as { id: Buffer }[]).map((r) => new Uint8Array(r.id));
  }

  /** Whether we hold this envelope and wrote it ourselves (cheaper than meta() for big listings). */
  isOwn(id: Uint8Array, me: Uint8Array): boolean {
    return this.stmt(`SELECT 1 FROM envelopes WHERE id = ? AND author = ?`).get(id, me) !== undefined;
  }

  /** Whether this node has (or had, and let go of) the envelope with this key (an 8- or 16-byte prefix). */
  knowsKey(key: Uint8Array): boolean {
    const bounds = prefixBounds(key);
    if (!bounds) return false;
    const { lo, hi } = bounds;
    // one statement (a listing of a million prefixes asks this a million times)
    return (
      this.stmt(
        `SELECT 1 FROM envelopes WHERE id BETWEEN @lo AND @hi UNION ALL SELECT 1 FROM delivered WHERE id BETWEEN @lo AND @hi
         UNION ALL SELECT 1 FROM forgotten WHERE id BETWEEN @lo AND @hi LIMIT 1`,
      ).get({ lo, hi }) !== undefined
    );
  }

  /** Remembers an envelope refused or let go of, so reconciliation does not fetch it again. */
  forget(id: Uint8Array, why: string, at = Date.now()): void {
    const known = this.inSet(id, 0);
    this.stmt(`INSERT OR IGNORE INTO forgotten (id, at, why) VALUES (?, ?, ?)`).run(id, at, why);
    if (!known) this.addToSketch(id);
  }

  private forgetRow(id: Uint8Array, why: string): void {
    this.removeRow(id);
    this.stmt(`INSERT OR IGNORE INTO forgotten (id, at, why) VALUES (?, ?, ?)`).run(id, Date.now(), why);
  }

  /** Removes an envelope refused after it was stored (over a channel's budget), remembering its id so it is not fetched again. */
  dropRefused(id: Uint8Array, why: string): void {
    this.db.transaction(() => this.forgetRow(id, why))();
  }

  has(id: Uint8Array): boolean {
    return this.hasStmt.get(id) !== undefined;
  }

  /**
   * The signed envelope stored under `id`: a statement, or the one inside a sealed envelope of this
   * user's (then with the sealed envelope's id and bytes as `id` and `sealed`). Undefined for what
   * this node only carries (sealed envelopes for others, receipts): see bytesOf.
   */
  get(id: Uint8Array): HeldEnvelope | undefined {
    const r = this.getStmt.get(id) as { bytes: Buffer; inner: Buffer | null } | undefined;
    if (!r) return undefined;
    if (r.inner) {
      const { envelope, key } = decodeInner(new Uint8Array(r.inner));
      return { ...envelope, ...(key ? { key } : {}), id: Uint8Array.from(id), sealed: new Uint8Array(r.bytes) };
    }
    return r.bytes[0] === 2 ? decodeEnvelope(new Uint8Array(r.bytes)) : undefined;
  }

  /** What travels under `id` (what is handed to peers). */
  bytesOf(id: Uint8Array): Uint8Array | undefined {
    const r = this.getStmt.get(id) as { bytes: Buffer } | undefined;
    return r ? new Uint8Array(r.bytes) : undefined;
  }

  /** Envelope rows never change, so their metadata is cached (bounded); removal invalidates. */
  private readonly metaCache = new Map<string, StoredEnvelope>();

  meta(id: Uint8Array): StoredEnvelope | undefined {
    const k = Buffer.from(id).toString("hex");
    const hit = this.metaCache.get(k);
    if (hit) return hit;
    const m = this.loadMeta(id);
    if (m) {
      if (this.metaCache.size >= 20_000) this.metaCache.clear();
      this.metaCache.set(k, m);
    }
    return m;
  }

  private loadMeta(id: Uint8Array): StoredEnvelope | undefined {
    const r = this.metaStmt.get(id) as Row | undefined;
    if (!r) return undefined;
    const author = new Uint8Array(r.author);
    const locks =
      r.head[0] === 3 && r.head[1] === EnvelopeKind.Sealed ? decodeSealed(this.bytesOf(id)!).locks
      : r.head[0] === 3 && r.head[1] === EnvelopeKind.Between ? decodeBetweenVillages(this.bytesOf(id)!).sealed.locks
      : undefined;
    // a carried sealed envelope names nobody: its locks stand for its recipients (receipts open them)
    const parties = (r.kind === EnvelopeKind.Sealed || r.kind === EnvelopeKind.Between) && equalBytes(author, NOBODY)
      ? locks!
      : (this.partiesStmt.all(id) as Buffer[]).map((p) => new Uint8Array(p));
    return {
      id: new Uint8Array(r.id), conversation: new Uint8Array(r.conversation), segment: r.segment, kind: r.kind, author,
      recipients: parties.filter((p) => !equalBytes(p, author)), created: r.created, lifetime: r.lifetime,
      receivedAt: r.received_at, hops: r.hops, size: r.size, carried: r.carried === 1,
      source: r.source ? new Uint8Array(r.source) : undefined, copies: r.copies ?? undefined, ...(locks ? { locks } : {}),
    };
  }

  /** A page of stored ids in id order, after `after` (keyset pagination: no full scan held in memory). */
  idsAfter(after: Uint8Array, limit: number, upTo: Uint8Array = MAX_ID): Uint8Array[] {
    return (this.stmt(`SELECT id FROM envelopes WHERE id > ? AND id <= ? ORDER BY id LIMIT ?`).pluck().all(after, upTo, limit) as Buffer[]).map(
      (b) => new Uint8Array(b),
    );
  }

  /** Every stored id with what the forwarding policy needs. */
  ids(): { id: Uint8Array; hops: number; receivedAt: number; lifetime: number }[] {
    return (this.idsStmt.all() as { id: Buffer; hops: number; received_at: number; lifetime: number }[]).map((r) => ({
      id: new Uint8Array(r.id), hops: r.hops, receivedAt: r.received_at, lifetime: r.lifetime,
    }));
  }

  isParty(id: Uint8Array, party: Uint8Array): boolean {
    const m = this.meta(id);
    return !!m && (equalBytes(m.author, party) || m.recipients.some((r) => equalBytes(r, party)));
  }

  conversationEnvelopes(conversation: Uint8Array, segment?: number): Uint8Array[] {
    const rows = segment === undefined ? this.byConversation.all(conversation) : this.bySegment.all(conversation, segment);
    return (rows as Buffer[]).map((b) => new Uint8Array(b));
  }

  authoredBy(id: Uint8Array, author: Uint8Array): boolean {
    const m = this.meta(id);
    return !!m && equalBytes(m.author, author);
  }

  markHanded(id: Uint8Array, peer: Uint8Array, at: number): void {
    this.handStmt.run(id, peer, at);
  }

  handed(id: Uint8Array): { peer: Uint8Array; at: number } | undefined {
    const r = this.handedStmt.get(id) as { peer: Buffer; at: number } | undefined;
    return r ? { peer: new Uint8Array(r.peer), at: r.at } : undefined;
  }

  stats(): StoreStats {
    return this.statsStmt.get() as StoreStats;
  }

  private removeRow(id: Uint8Array, keepRoutes = false): void {
    this.metaCache.delete(Buffer.from(id).toString("hex"));
    // parties first: the carried-for counts look at the envelope's row (CARRIED_TOTALS)
    this.stmt(`DELETE FROM envelope_parties WHERE envelope = ?`).run(id);
    this.stmt(`DELETE FROM envelopes WHERE id = ?`).run(id);
    // after a confirmed delivery, who we handed it to is still needed: their acks follow that way
    if (!keepRoutes) this.stmt(`DELETE FROM handed WHERE envelope = ?`).run(id);
  }

  /**
   * Keeps a carried envelope as this user's own from now on (it turned out to concern them: their
   * school's directory, carried before the laptop was enrolled). It stays in the set (same id), so the
   * sketches do not change; it leaves the carrier totals and is no longer evicted or expired as carried.
   */
  adopt(id: Uint8Array): boolean {
    const meta = this.meta(id);
    const env = meta?.carried ? this.get(id) : undefined;
    if (!meta || !env) return false;
    this.db.transaction(() => {
      this.removeRow(id, true);
      this.insertRow(storable(env), meta.hops, meta.receivedAt, false, meta.source ?? null, null);
    })();
    return true;
  }

  /**
   * The opposite of adopt: an envelope this node kept as its own becomes one it only carries (within
   * the carrier budget, evicted like any carried one): a laptop that left its school carries that
   * school's statements no longer as its own.
   */
  disown(id: Uint8Array): boolean {
    const meta = this.meta(id);
    const env = meta && !meta.carried ? this.get(id) : undefined;
    if (!meta || !env) return false;
    this.db.transaction(() => {
      this.removeRow(id, true);
      this.insertRow(storable(env), meta.hops, meta.receivedAt, true, meta.source ?? null, null);
    })();
    return true;
  }

  /** Copy tokens left here after handing some on. */
  setCopies(id: Uint8Array, copies: number): void {
    this.metaCache.delete(Buffer.from(id).toString("hex"));
    this.stmt(`UPDATE envelopes SET copies = ? WHERE id = ?`).run(copies, id);
  }

  /** Remembers which envelopes an acknowledgement names. */
  recordAckNames(ack: Uint8Array, ids: Uint8Array[]): void {
    const st = this.stmt(`INSERT OR IGNORE INTO ack_names (ack, envelope) VALUES (?, ?)`);
    this.db.transaction(() => {
      for (const id of ids) st.run(ack, id);
    })();
  }

  /**
   * Whether an acknowledgement concerns `peer`: it names an envelope we handed to the peer, or one
   * the peer handed to us, or one of ours that the peer wrote (its author, met directly: a channel
   * member who got the teacher's message through a classmate tells the teacher when they meet).
   * Acknowledgements travel along the copies, not everywhere.
   */
  ackConcerns(ack: Uint8Array, peer: Uint8Array): boolean {
    return (
      this.stmt(
        `SELECT 1 FROM ack_names a WHERE a.ack = ? AND (
           EXISTS (SELECT 1 FROM handed h WHERE h.envelope = a.envelope AND h.peer = ?
                     -- handed to one of its own parties (a channel's member): not a carrier, no use for others' acks
                     AND NOT EXISTS (SELECT 1 FROM envelope_parties p WHERE p.envelope = a.envelope AND p.party = h.peer))
           OR EXISTS (SELECT 1 FROM envelopes e WHERE e.id = a.envelope AND e.source = ?)
           OR EXISTS (SELECT 1 FROM delivered d WHERE d.id = a.envelope AND d.source = ?)
           OR EXISTS (SELECT 1 FROM envelopes e WHERE e.id = a.envelope AND e.inner IS NOT NULL AND e.author = ?))
         LIMIT 1`,
      ).get(ack, peer, peer, peer, peer) !== undefined
    );
  }

  /**
   * This user's own receipts naming envelopes in one slice of the id space, and the envelope each
   * names (for handing them to carriers that hold those): an indexed range scan, not every receipt.
   */
  ownReceiptNames(range: IdRange): { receipt: Uint8Array; envelope: Uint8Array }[] {
    const { lo, hi } = rangeBounds(range);
    // the whole id space (every meeting asks): from our own receipts, not from every receipt carried
    // here (an author holds every receipt for its messages, which are not its own); a slice: from the
    // names in it
    const sql =
      range.depth === 0
        ? `SELECT a.ack, a.envelope FROM envelopes r INDEXED BY envelopes_own_acks CROSS JOIN ack_names a ON a.ack = r.id
           WHERE r.carried = 0 AND r.kind = 3`
        : `SELECT a.ack, a.envelope FROM ack_names a JOIN envelopes r ON r.id = a.ack
           WHERE a.envelope BETWEEN ? AND ? AND r.carried = 0 AND r.kind = 3`;
    const rows = (range.depth === 0 ? this.stmt(sql).all() : this.stmt(sql).all(lo, hi)) as { ack: Buffer; envelope: Buffer }[];
    return rows.map((r) => ({ receipt: new Uint8Array(r.ack), envelope: new Uint8Array(r.envelope) }));
  }

  /** Our own receipts naming an envelope, by its 8- or 16-byte id prefix (a peer says it holds that envelope). */
  ownReceiptsNaming(key: Uint8Array): Uint8Array[] {
    const bounds = prefixBounds(key);
    if (!bounds) return [];
    const { lo, hi } = bounds;
    return (
      this.stmt(
        `SELECT a.ack FROM ack_names a JOIN envelopes r ON r.id = a.ack
         WHERE a.envelope BETWEEN ? AND ? AND r.carried = 0 AND r.kind = 3`,
      )
        .pluck()
        .all(lo, hi) as Buffer[]
    ).map((b) => new Uint8Array(b));
  }

  // ---- acknowledgements and confirmed delivery ----

  /** Records that `acker` holds `ids` (from a signature-checked ack). */
  recordAcks(acker: Uint8Array, ids: Uint8Array[]): void {
    const stmt = this.stmt(`INSERT OR IGNORE INTO acks (envelope, acker) VALUES (?, ?)`);
    this.db.transaction(() => {
      for (const id of ids) stmt.run(id, acker);
    })();
  }

  /** Who acknowledged holding an envelope (signed acknowledgements this laptop has seen). */
  ackers(id: Uint8Array): Uint8Array[] {
    return (this.stmt(`SELECT acker FROM acks WHERE envelope = ?`).pluck().all(id) as Buffer[]).map((b) => new Uint8Array(b));
  }

  /** True when every recipient of the envelope (per its signed header) has acknowledged it. */
  /** How many of an envelope's locks we saw opened (acks recorded for it). */
  opened(id: Uint8Array): number {
    return this.stmt(`SELECT count(*) FROM acks WHERE envelope = ?`).pluck().get(id) as number;
  }

  ackedByAllRecipients(id: Uint8Array, recipients: Uint8Array[]): boolean {
    if (recipients.length === 0) return false;
    const ackers = (this.stmt(`SELECT acker FROM acks WHERE envelope = ?`).pluck().all(id) as Buffer[]).map((b) => new Uint8Array(b));
    return recipients.every((r) => ackers.some((a) => equalBytes(a, r)));
  }

  /** Drops a carried copy whose delivery is confirmed and remembers never to take it again. */
  dropDelivered(id: Uint8Array, at: number): void {
    const source = this.meta(id)?.source ?? null;
    this.db.transaction(() => {
      this.removeRow(id, true);
      this.stmt(`INSERT OR IGNORE INTO delivered (id, at, source) VALUES (?, ?, ?)`).run(id, at, source);
    })();
  }

  /** Carried envelopes (not acks) that name `party` as a recipient. */
  carriedFor(party: Uint8Array): Uint8Array[] {
    // CROSS JOIN keeps SQLite from scanning every carried envelope: start from this party's rows
    return (
      this.stmt(
        `SELECT e.id FROM envelope_parties p CROSS JOIN envelopes e ON e.id = p.envelope
         WHERE p.party = ? AND e.carried = 1 AND e.kind != 3 AND e.author != ?`,
      )
        .pluck()
        .all(party, party) as Buffer[]
    ).map((b) => new Uint8Array(b));
  }

  wasDelivered(id: Uint8Array): boolean {
    return this.stmt(`SELECT 1 FROM delivered WHERE id = ?`).get(id) !== undefined;
  }

  isCarried(id: Uint8Array): boolean {
    return this.meta(id)?.carried ?? false;
  }

  // ---- carrying for others: quota and fairness ----

  /** What this node carries for others, for `pigeon status` (from the totals: no scan). */
  carried(): { envelopes: number; bytes: number; people: number; acks: number } {
    const row = (what: 0 | 3) =>
      (this.stmt(`SELECT bytes, count FROM carried_totals WHERE what = ? AND key = x''`).get(what) as { bytes: number; count: number } | undefined) ?? {
        bytes: 0, count: 0,
      };
    const all = row(0);
    const acks = row(3);
    const people = this.stmt(`SELECT count(*) FROM carried_totals WHERE what = 4 AND count > 0`).pluck().get() as number;
    return { envelopes: all.count - acks.count, bytes: all.bytes - acks.bytes, people, acks: acks.count };
  }

  /** Carried bytes in all, or by one author or source (kept by triggers: one indexed read). */
  private carriedTotal(what: 0 | 1 | 2, key: Uint8Array): number {
    return (this.stmt(`SELECT bytes FROM carried_totals WHERE what = ? AND key = ?`).pluck().get(what, key) as number | undefined) ?? 0;
  }

  carriedBytes(): number {
    return this.carriedTotal(0, new Uint8Array(0));
  }

  carriedBytesFromSource(source: Uint8Array): number {
    return this.carriedTotal(2, source);
  }

  carriedBytesByAuthor(author: Uint8Array): number {
    return this.carriedTotal(1, author);
  }

  /**
   * Since when this laptop has known someone who vouches for a carried envelope: its author or the
   * laptop that handed it over, whichever has been a contact longer (met, or added by card; not
   * merely introduced by an envelope). Undefined if neither is. Reads LocalState's `contacts` table,
   * which lives in the same database (a store without it knows nobody).
   */
  knownSince(author: Uint8Array, source: Uint8Array | undefined): number | undefined {
    if (!this.hasContacts()) return undefined;
    const v = this.stmt(`SELECT min(first_seen) FROM contacts WHERE sign_key IN (?, ?) AND how IN ('met', 'card')`)
      .pluck()
      .get(author, source ?? author) as number | null;
    return v ?? undefined;
  }

  private contactsTable = false;
  private hasContacts(): boolean {
    this.contactsTable ||= this.stmt(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'contacts'`).get() !== undefined;
    return this.contactsTable;
  }

  /**
   * Carried envelopes to evict to free `bytes` for an envelope vouched for since `since` (see
   * knownSince; undefined: by nobody known). Expired ones first; then those nobody known vouches for;
   * then by how recently whoever vouches for them became known, newest first; only then the most
   * widely handed on, and the oldest. An envelope vouched for since before `since` is never evicted
   * for it. So a swarm of throwaway identities, however many and each within its own budget, only
   * ever evicts its own envelopes and strangers', never those of anyone known before it; returns []
   * if that does not free enough. Never the user's own (those are not carried).
   */
  evictionCandidates(bytes: number, now: number, since?: number): Uint8Array[] {
    const knownSince = this.hasContacts()
      ? `(SELECT min(c.first_seen) FROM contacts c WHERE c.sign_key IN (e.author, e.source) AND c.how IN ('met', 'card'))`
      : `NULL`;
    const rows = this.db
      .prepare(
        `SELECT id, size FROM (
           SELECT e.id, e.size, e.received_at, (e.received_at + e.lifetime * 1000 < @now) AS expired, ${knownSince} AS known_since,
                  (SELECT count(*) FROM handed h WHERE h.envelope = e.id) AS copies
           FROM envelopes e WHERE e.carried = 1)
         WHERE expired OR known_since IS NULL OR (@since IS NOT NULL AND known_since >= @since)
         ORDER BY expired DESC, known_since IS NOT NULL, known_since DESC, copies DESC, received_at ASC`,
      )
      .iterate({ now, since: since ?? null }) as IterableIterator<{ id: Buffer; size: number }>;
    const out: Uint8Array[] = [];
    let freed = 0;
    for (const r of rows) {
      if (freed >= bytes) break;
      out.push(new Uint8Array(r.id));
      freed += r.size;
    }
    return freed >= bytes ? out : [];
  }

  /**
   * Bytes of envelopes from `author` addressed to this user that are not opened yet (waiting for a
   * key or for earlier changes, or not tried yet). Reads LocalState's `opened` table, which lives in
   * the same database.
   */
  unopenedBytesByAuthor(author: Uint8Array): number {
    return this.stmt(
      `SELECT coalesce(sum(e.size), 0) FROM envelopes e LEFT JOIN opened o ON o.envelope = e.id
       WHERE e.carried = 0 AND e.author = ? AND e.kind != 3 AND (o.envelope IS NULL OR o.status = 'pending')`,
    ).pluck().get(author) as number;
  }

  /** Drops envelopes for this user that could not be opened within their lifetime. Returns how many. */
  dropExpiredUnopened(now: number): number {
    const ids = this.stmt(
      `SELECT e.id FROM envelopes e JOIN opened o ON o.envelope = e.id
       WHERE e.carried = 0 AND o.status = 'pending' AND e.received_at + e.lifetime * 1000 < ?`,
    ).pluck().all(now) as Buffer[];
    this.db.transaction(() => {
      for (const id of ids) {
        this.forgetRow(new Uint8Array(id), "expired unopened");
        this.stmt(`DELETE FROM opened WHERE envelope = ?`).run(id);
      }
    })();
    return ids.length;
  }

  /** Drops carried envelopes past their lifetime. Returns how many. */
  dropExpired(now: number): number {
    const ids = this.db
      .prepare(`SELECT id FROM envelopes INDEXED BY envelopes_expiry WHERE carried = 1 AND received_at + lifetime * 1000 < ?`)
      .pluck()
      .all(now) as Buffer[];
    this.db.transaction(() => {
      for (const id of ids) this.forgetRow(new Uint8Array(id), "expired");
    })();
    return ids.length;
  }

  handedCount(id: Uint8Array): number {
    return this.stmt(`SELECT count(*) FROM handed WHERE envelope = ?`).pluck().get(id) as number;
  }
}
