// The gateway's own records (gateway.db beside the node's data): mail going out and its state, mail
// held for a teacher, the Message-IDs that thread mail to Pigeon messages, daily counters and the log
// of every decision. Plain text is kept only while needed: erased once a mail left, was refused or
// bounced (after the rules' keepHours), and for held mail once a teacher decided.
import Database from "better-sqlite3";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS outgoing (
  n INTEGER PRIMARY KEY AUTOINCREMENT,
  pigeon_id TEXT NOT NULL UNIQUE,      -- the laptop's message that asked for it
  sender TEXT NOT NULL,                -- name@home of the Pigeon person
  sender_name TEXT NOT NULL,
  to_addr TEXT NOT NULL,
  subject TEXT,
  body TEXT,                           -- erased once no longer needed
  in_reply_to TEXT,                    -- Message-ID it answers
  refs TEXT,
  state TEXT NOT NULL,                 -- queued | held | sent | refused | bounced
  note TEXT NOT NULL DEFAULT '',
  message_id TEXT NOT NULL UNIQUE,     -- <...@domain> it leaves with
  bounce_token TEXT NOT NULL UNIQUE,   -- in the envelope sender bounce+TOKEN@domain
  created INTEGER NOT NULL,
  decided INTEGER,
  tries INTEGER NOT NULL DEFAULT 0,
  next_try INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS incoming (
  n INTEGER PRIMARY KEY AUTOINCREMENT,
  to_person TEXT NOT NULL,             -- name@home
  from_addr TEXT NOT NULL,
  from_display TEXT NOT NULL,
  subject TEXT NOT NULL,
  body TEXT,                           -- held mail only, until a teacher decides
  message_id TEXT,
  refs TEXT,
  state TEXT NOT NULL,                 -- delivered | held | released | discarded
  pigeon_id TEXT,                      -- the Pigeon message it was delivered as
  re_pigeon TEXT,                      -- the Pigeon message (a sent mail) it answers
  note TEXT NOT NULL DEFAULT '',
  created INTEGER NOT NULL
);
-- the pictures of a held mail, kept only until a teacher decides (they travel as Pigeon files)
CREATE TABLE IF NOT EXISTS incoming_pictures (
  n INTEGER NOT NULL,                  -- the held mail
  k INTEGER NOT NULL,
  name TEXT NOT NULL,
  type TEXT NOT NULL,
  bytes BLOB NOT NULL,
  PRIMARY KEY (n, k)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS incoming_pigeon ON incoming (pigeon_id);
CREATE INDEX IF NOT EXISTS incoming_mid ON incoming (message_id);
CREATE TABLE IF NOT EXISTS seen (pigeon_id TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counts (day TEXT NOT NULL, what TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (day, what)) WITHOUT ROWID;
-- decisions written on the school server (pigeon gateway approve ...) for the running gateway to apply
CREATE TABLE IF NOT EXISTS decisions (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  verb TEXT NOT NULL CHECK (verb IN ('approve', 'refuse', 'release', 'discard')),
  n INTEGER NOT NULL,
  why TEXT NOT NULL DEFAULT '',
  at INTEGER NOT NULL,
  done INTEGER NOT NULL DEFAULT 0,
  answer TEXT
);
CREATE TABLE IF NOT EXISTS log (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  at INTEGER NOT NULL,
  decision TEXT NOT NULL,
  who TEXT NOT NULL,
  detail TEXT NOT NULL
);
`;

export type OutState = "queued" | "held" | "sent" | "refused" | "bounced";
export type InState = "delivered" | "held" | "released" | "discarded";

export interface OutgoingRow {
  n: number;
  pigeon_id: string;
  sender: string;
  sender_name: string;
  to_addr: string;
  subject: string | null;
  body: string | null;
  in_reply_to: string | null;
  refs: string | null;
  state: OutState;
  note: string;
  message_id: string;
  bounce_token: string;
  created: number;
  decided: number | null;
  tries: number;
  next_try: number;
}

/** A picture from an incoming mail that travels into Pigeon as a file. */
export interface Picture {
  name: string;
  type: string;
  bytes: Uint8Array;
}

export interface IncomingRow {
  n: number;
  to_person: string;
  from_addr: string;
  from_display: string;
  subject: string;
  body: string | null;
  message_id: string | null;
  refs: string | null;
  state: InState;
  pigeon_id: string | null;
  re_pigeon: string | null;
  note: string;
  created: number;
}

export interface LogRow {
  seq: number;
  at: number;
  decision: string;
  who: string;
  detail: string;
}

export class GatewayStore {
  readonly db: Database.Database;

  constructor(file: string) {
    this.db = new Database(file);
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("busy_timeout = 5000");
    // erased text is overwritten, not left in free pages of the file
    this.db.pragma("secure_delete = ON");
    this.db.exec(SCHEMA);
  }

  close(): void {
    this.db.close();
  }

  log(at: number, decision: string, who: string, detail: string): void {
    this.db.prepare(`INSERT INTO log (at, decision, who, detail) VALUES (?, ?, ?, ?)`).run(at, decision, who, detail.slice(0, 500));
  }

  logSince(seq = 0, limit = 1000): LogRow[] {
    return this.db.prepare(`SELECT * FROM log WHERE seq > ? ORDER BY seq LIMIT ?`).all(seq, limit) as LogRow[];
  }

  /** Adds one to a daily counter and answers the new count. */
  bump(day: string, what: string): number {
    return (this.db
      .prepare(`INSERT INTO counts (day, what, n) VALUES (?, ?, 1) ON CONFLICT (day, what) DO UPDATE SET n = n + 1 RETURNING n`)
      .pluck()
      .get(day, what) as number);
  }

  count(day: string, what: string): number {
    return (this.db.prepare(`SELECT n FROM counts WHERE day = ? AND what = ?`).pluck().get(day, what) as number | undefined) ?? 0;
  }

  /** Marks a Pigeon message as handled; false when it already was (a restart scans the inbox again). */
  firstSight(pigeonId: string): boolean {
    return this.db.prepare(`INSERT OR IGNORE INTO seen (pigeon_id) VALUES (?)`).run(pigeonId).changes === 1;
  }

  addOutgoing(r: Omit<OutgoingRow, "n" | "decided" | "tries" | "next_try">): OutgoingRow {
    const n = this.db
      .prepare(
        `INSERT INTO outgoing (pigeon_id, sender, sender_name, to_addr, subject, body, in_reply_to, refs, state, note, message_id, bounce_token, created)
         VALUES (@pigeon_id, @sender, @sender_name, @to_addr, @subject, @body, @in_reply_to, @refs, @state, @note, @message_id, @bounce_token, @created)`,
      )
      .run(r).lastInsertRowid as number;
    return this.outgoing(n)!;
  }

  outgoing(n: number): OutgoingRow | undefined {
    return this.db.prepare(`SELECT * FROM outgoing WHERE n = ?`).get(n) as OutgoingRow | undefined;
  }

  outgoingByToken(token: string): OutgoingRow | undefined {
    return this.db.prepare(`SELECT * FROM outgoing WHERE bounce_token = ?`).get(token) as OutgoingRow | undefined;
  }

  outgoingByMessageId(mid: string): OutgoingRow | undefined {
    return this.db.prepare(`SELECT * FROM outgoing WHERE message_id = ?`).get(mid) as OutgoingRow | undefined;
  }

  outgoingIn(state: OutState): OutgoingRow[] {
    return this.db.prepare(`SELECT * FROM outgoing WHERE state = ? ORDER BY n`).all(state) as OutgoingRow[];
  }

  due(now: number): OutgoingRow[] {
    return this.db.prepare(`SELECT * FROM outgoing WHERE state = 'queued' AND next_try <= ? ORDER BY n LIMIT 50`).all(now) as OutgoingRow[];
  }

  setOutgoing(n: number, state: OutState, note: string, at: number): void {
    this.db.prepare(`UPDATE outgoing SET state = ?, note = ?, decided = ? WHERE n = ?`).run(state, note, at, n);
  }

  retryLater(n: number, note: string, at: number): void {
    this.db.prepare(`UPDATE outgoing SET tries = tries + 1, note = ?, next_try = ? WHERE n = ?`).run(note, at, n);
  }

  addIncoming(r: Omit<IncomingRow, "n">): IncomingRow {
    const n = this.db
      .prepare(
        `INSERT INTO incoming (to_person, from_addr, from_display, subject, body, message_id, refs, state, pigeon_id, re_pigeon, note, created)
         VALUES (@to_person, @from_addr, @from_display, @subject, @body, @message_id, @refs, @state, @pigeon_id, @re_pigeon, @note, @created)`,
      )
      .run(r).lastInsertRowid as number;
    return this.incoming(n)!;
  }

  incoming(n: number): IncomingRow | undefined {
    return this.db.prepare(`SELECT * FROM incoming WHERE n = ?`).get(n) as IncomingRow | undefined;
  }

  incomingIn(state: InState): IncomingRow[] {
    return this.db.prepare(`SELECT * FROM incoming WHERE state = ? ORDER BY n`).all(state) as IncomingRow[];
  }

  incomingByPigeonId(id: string): IncomingRow | undefined {
    return this.db.prepare(`SELECT * FROM incoming WHERE pigeon_id = ?`).get(id) as IncomingRow | undefined;
  }

  setIncoming(n: number, state: InState, pigeonId: string | null, note: string): void {
    // a decided mail's text and pictures are no longer kept here once they travelled (or were discarded)
    this.db.transaction(() => {
      this.db.prepare(`UPDATE incoming SET state = ?, pigeon_id = COALESCE(?, pigeon_id), note = ?, body = NULL WHERE n = ?`).run(state, pigeonId, note, n);
      this.db.prepare(`DELETE FROM incoming_pictures WHERE n = ?`).run(n);
    })();
    this.db.pragma("wal_checkpoint(TRUNCATE)");
  }

  /** Keeps a held mail's pictures until a teacher decides. */
  keepPictures(n: number, pictures: readonly Picture[]): void {
    const put = this.db.prepare(`INSERT INTO incoming_pictures (n, k, name, type, bytes) VALUES (?, ?, ?, ?, ?)`);
    this.db.transaction(() => pictures.forEach((p, k) => put.run(n, k, p.name, p.type, p.bytes)))();
  }

  pictures(n: number): Picture[] {
    return (this.db.prepare(`SELECT name, type, bytes FROM incoming_pictures WHERE n = ? ORDER BY k`).all(n) as { name: string; type: string; bytes: Buffer }[])
      .map((r) => ({ name: r.name, type: r.type, bytes: new Uint8Array(r.bytes) }));
  }

  /** A decision from the school server's command line, applied by the running gateway at its next tick. */
  requestDecision(verb: "approve" | "refuse" | "release" | "discard", n: number, why: string, at: number): number {
    return this.db.prepare(`INSERT INTO decisions (verb, n, why, at) VALUES (?, ?, ?, ?)`).run(verb, n, why, at).lastInsertRowid as number;
  }

  decisionAnswer(seq: number): string | undefined {
    return (this.db.prepare(`SELECT answer FROM decisions WHERE seq = ? AND done = 1`).pluck().get(seq) as string | null | undefined) ?? undefined;
  }

  /** Erases the text of mail that is done (left, refused, bounced) since before `before`. */
  forget(before: number): number {
    const n = this.db
      .prepare(`UPDATE outgoing SET body = NULL, subject = NULL WHERE body IS NOT NULL AND state IN ('sent', 'refused', 'bounced') AND decided < ?`)
      .run(before).changes;
    // the write-ahead log still holds the pages as they were: written back and emptied
    if (n) this.db.pragma("wal_checkpoint(TRUNCATE)");
    return n;
  }
}
