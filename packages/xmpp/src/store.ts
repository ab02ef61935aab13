// The XMPP front door's own small database (xmpp.db in the data directory), beside Pigeon's store:
//  - ids:      Pigeon message id <-> the id/origin-id the XMPP client gave the stanza, and whether it
//              asked for a receipt or a marker (so the receipt that comes back names the client's id);
//  - pending:  what the user's clients have not yet taken: messages that arrived, and receipts/markers
//              that came back (offline delivery, XEP-0160; removed when a client acks it, XEP-0198);
//  - meta:     the highest Pigeon arrival number already queued, private XML storage, the vCard.
import Database from "better-sqlite3";
import { join } from "node:path";

export type PendingKind = "message" | "received" | "displayed";

export interface PendingItem {
  seq: number;
  kind: PendingKind;
  pigeonId: string;
  reader: string;
  at: number;
}

export interface ClientIds {
  pigeonId: string;
  clientId?: string;
  originId?: string;
  resource?: string;
}

export class XmppStore {
  readonly db: Database.Database;
  private stmts;

  constructor(dataDir: string) {
    this.db = new Database(join(dataDir, "xmpp.db"));
    this.db.pragma("journal_mode = WAL");
    // NORMAL, not FULL: after a power cut this file can only roll back as a whole (WAL order), and
    // the queue is rebuilt from Pigeon's own fsynced store (arrival watermark): at worst a client sees
    // a message twice (same stanza-id), never loses one. It keeps two fsyncs per message off the node.
    this.db.pragma("synchronous = NORMAL");
    this.db.pragma("busy_timeout = 5000");
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS ids (pigeon_id TEXT PRIMARY KEY, client_id TEXT, origin_id TEXT, resource TEXT);
      CREATE INDEX IF NOT EXISTS ids_client ON ids(client_id);
      CREATE TABLE IF NOT EXISTS pending (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, pigeon_id TEXT NOT NULL,
        reader TEXT NOT NULL DEFAULT '', at INTEGER NOT NULL, UNIQUE(kind, pigeon_id, reader));
      CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    `);
    this.stmts = {
      putIds: this.db.prepare(`INSERT OR REPLACE INTO ids (pigeon_id, client_id, origin_id, resource) VALUES (?, ?, ?, ?)`),
      getIds: this.db.prepare(`SELECT client_id, origin_id, resource FROM ids WHERE pigeon_id = ?`),
      byClientId: this.db.prepare(`SELECT pigeon_id FROM ids WHERE client_id = ? ORDER BY rowid DESC LIMIT 1`),
      addPending: this.db.prepare(`INSERT OR IGNORE INTO pending (kind, pigeon_id, reader, at) VALUES (?, ?, ?, ?)`),
      pending: this.db.prepare(`SELECT seq, kind, pigeon_id, reader, at FROM pending ORDER BY seq`),
      done: this.db.prepare(`DELETE FROM pending WHERE seq = ?`),
      getMeta: this.db.prepare(`SELECT value FROM meta WHERE key = ?`),
      setMeta: this.db.prepare(`INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)`),
    };
  }

  rememberIds(ids: ClientIds): void {
    this.stmts.putIds.run(ids.pigeonId, ids.clientId ?? null, ids.originId ?? null, ids.resource ?? null);
  }

  ids(pigeonId: string): ClientIds | undefined {
    const r = this.stmts.getIds.get(pigeonId) as { client_id: string | null; origin_id: string | null; resource: string | null } | undefined;
    return r ? { pigeonId, clientId: r.client_id ?? undefined, originId: r.origin_id ?? undefined, resource: r.resource ?? undefined } : undefined;
  }

  /** The Pigeon id of the user's message that a client sent with this `id` (the latest, should a client reuse ids). */
  pigeonIdOf(clientId: string): string | undefined {
    return (this.stmts.byClientId.pluck().get(clientId) as string | undefined) ?? undefined;
  }

  /** Queues something for the user's clients; returns its number, or undefined if it was already queued. */
  addPending(kind: PendingKind, pigeonId: string, reader: string, at: number): number | undefined {
    const r = this.stmts.addPending.run(kind, pigeonId, reader, at);
    return r.changes ? Number(r.lastInsertRowid) : undefined;
  }

  pending(): PendingItem[] {
    return (this.stmts.pending.all() as { seq: number; kind: PendingKind; pigeon_id: string; reader: string; at: number }[]).map((r) => ({
      seq: r.seq, kind: r.kind, pigeonId: r.pigeon_id, reader: r.reader, at: r.at,
    }));
  }

  donePending(seq: number): void {
    this.stmts.done.run(seq);
  }

  meta(key: string): string | undefined {
    return (this.stmts.getMeta.get(key) as { value: string } | undefined)?.value;
  }

  setMeta(key: string, value: string): void {
    this.stmts.setMeta.run(key, value);
  }

  close(): void {
    this.db.close();
  }
}
