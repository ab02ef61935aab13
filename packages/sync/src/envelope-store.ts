// The sealed-envelope store: append-only, crash-safe, and blind. It holds envelopes for this laptop's
// user and envelopes it carries for others alike, as opaque bytes plus their cleartext routing header.
// It never loads Automerge.
//
// SQLite (better-sqlite3) in WAL mode with synchronous=FULL: each insert is one fsynced transaction, a
// crash leaves the last committed state, SQLITE_FULL surfaces as an error without damaging what is
// stored, and a relay point can keep a million envelopes without one file (inode) per envelope.
import Database from "better-sqlite3";
import { decodeEnvelope, equalBytes, type Envelope } from "@pigeon/model";

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
}

export interface StoreStats {
  envelopes: number;
  bytes: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS envelopes (
  id BLOB PRIMARY KEY,
  conversation BLOB NOT NULL,
  segment INTEGER NOT NULL,
  kind INTEGER NOT NULL,
  author BLOB NOT NULL,
  created INTEGER NOT NULL,
  lifetime INTEGER NOT NULL,
  received_at INTEGER NOT NULL,
  hops INTEGER NOT NULL,
  size INTEGER NOT NULL,
  bytes BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS envelopes_by_conversation ON envelopes(conversation);
CREATE TABLE IF NOT EXISTS envelope_parties (
  envelope BLOB NOT NULL,
  party BLOB NOT NULL,
  PRIMARY KEY (party, envelope)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS handed (
  envelope BLOB NOT NULL,
  peer BLOB NOT NULL,
  at INTEGER NOT NULL,
  PRIMARY KEY (envelope, peer)
) WITHOUT ROWID;
`;

export class DamagedStoreError extends Error {
  constructor(readonly path: string, detail: string) {
    super(
      `${path} is damaged (${detail}). The node will not run on a damaged store, so nothing more is lost; ` +
        `the file was left as it is. The conversations themselves are also kept in the documents/ folder beside it.`,
    );
    this.name = "DamagedStoreError";
  }
}

export function openDatabase(path: string): Database.Database {
  let db: Database.Database | undefined;
  try {
    db = new Database(path);
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = FULL");
    db.pragma("busy_timeout = 5000");
    const check = db.pragma("quick_check", { simple: true });
    if (check !== "ok") throw new DamagedStoreError(path, `sqlite quick_check: ${String(check)}`);
    return db;
  } catch (e) {
    db?.close();
    if (e instanceof DamagedStoreError) throw e;
    const code = (e as { code?: string }).code;
    if (code === "SQLITE_NOTADB" || code === "SQLITE_CORRUPT") throw new DamagedStoreError(path, (e as Error).message);
    throw e;
  }
}

type Row = {
  id: Buffer; conversation: Buffer; segment: number; kind: number; author: Buffer; created: number; lifetime: number;
  received_at: number; hops: number; size: number;
};

export class EnvelopeStore {
  private readonly insertEnv;
  private readonly insertParty;
  private readonly hasStmt;
  private readonly getStmt;
  private readonly metaStmt;
  private readonly partiesStmt;
  private readonly idsStmt;
  private readonly byConversation;
  private readonly handStmt;
  private readonly handedStmt;
  private readonly statsStmt;

  constructor(readonly db: Database.Database) {
    db.exec(SCHEMA);
    this.insertEnv = db.prepare(
      `INSERT OR IGNORE INTO envelopes (id, conversation, segment, kind, author, created, lifetime, received_at, hops, size, bytes)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.insertParty = db.prepare(`INSERT OR IGNORE INTO envelope_parties (envelope, party) VALUES (?, ?)`);
    this.hasStmt = db.prepare(`SELECT 1 FROM envelopes WHERE id = ?`).pluck();
    this.getStmt = db.prepare(`SELECT bytes FROM envelopes WHERE id = ?`).pluck();
    this.metaStmt = db.prepare(`SELECT id, conversation, segment, kind, author, created, lifetime, received_at, hops, size FROM envelopes WHERE id = ?`);
    this.partiesStmt = db.prepare(`SELECT party FROM envelope_parties WHERE envelope = ?`).pluck();
    this.idsStmt = db.prepare(`SELECT id, hops, received_at, lifetime FROM envelopes`);
    this.byConversation = db.prepare(`SELECT id FROM envelopes WHERE conversation = ? ORDER BY received_at`).pluck();
    this.handStmt = db.prepare(`INSERT OR IGNORE INTO handed (envelope, peer, at) VALUES (?, ?, ?)`);
    this.handedStmt = db.prepare(`SELECT peer, at FROM handed WHERE envelope = ? ORDER BY at LIMIT 1`);
    this.statsStmt = db.prepare(`SELECT count(*) AS envelopes, coalesce(sum(size), 0) AS bytes FROM envelopes`);
  }

  /** Stores an envelope (already decoded and signature-checked). Returns false if it was already here. */
  put(env: Envelope, hops: number, receivedAt: number): boolean {
    const tx = this.db.transaction(() => {
      const r = this.insertEnv.run(
        env.id, env.conversation, env.segment, env.kind, env.author, env.created, env.lifetime, receivedAt, hops, env.bytes.length, env.bytes,
      );
      if (r.changes === 0) return false;
      this.insertParty.run(env.id, env.author);
      for (const p of env.recipients) this.insertParty.run(env.id, p);
      return true;
    });
    return tx();
  }

  has(id: Uint8Array): boolean {
    return this.hasStmt.get(id) !== undefined;
  }

  get(id: Uint8Array): Envelope | undefined {
    const b = this.getStmt.get(id) as Buffer | undefined;
    return b ? decodeEnvelope(new Uint8Array(b)) : undefined;
  }

  meta(id: Uint8Array): StoredEnvelope | undefined {
    const r = this.metaStmt.get(id) as Row | undefined;
    if (!r) return undefined;
    const parties = (this.partiesStmt.all(id) as Buffer[]).map((p) => new Uint8Array(p));
    const author = new Uint8Array(r.author);
    return {
      id: new Uint8Array(r.id), conversation: new Uint8Array(r.conversation), segment: r.segment, kind: r.kind, author,
      recipients: parties.filter((p) => !equalBytes(p, author)), created: r.created, lifetime: r.lifetime,
      receivedAt: r.received_at, hops: r.hops, size: r.size,
    };
  }

  /** Every stored id with what the forwarding policy needs. */
  ids(): { id: Uint8Array; hops: number; receivedAt: number; lifetime: number }[] {
    return (this.idsStmt.all() as { id: Buffer; hops: number; received_at: number; lifetime: number }[]).map((r) => ({
      id: new Uint8Array(r.id), hops: r.hops, receivedAt: r.received_at, lifetime: r.lifetime,
    }));
  }

  isParty(id: Uint8Array, party: Uint8Array): boolean {
    return (this.partiesStmt.all(id) as Buffer[]).some((p) => equalBytes(new Uint8Array(p), party));
  }

  conversationEnvelopes(conversation: Uint8Array): Uint8Array[] {
    return (this.byConversation.all(conversation) as Buffer[]).map((b) => new Uint8Array(b));
  }

  authoredBy(id: Uint8Array, author: Uint8Array): boolean {
    const a = this.db.prepare(`SELECT author FROM envelopes WHERE id = ?`).pluck().get(id) as Buffer | undefined;
    return a !== undefined && equalBytes(new Uint8Array(a), author);
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
}
