// The SQLite layout of the sealed store (and its conversions from older layouts), and opening a
// database file safely: WAL, synchronous=FULL, an integrity check, and a clear error for a damaged
// or foreign file. LocalState's tables live in the same database (local-state.ts).
import { existsSync, readFileSync, statSync, unlinkSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname } from "node:path";
import { Worker } from "node:worker_threads";
import Database from "better-sqlite3";
import { fsyncDir, writeFileAtomic } from "./atomic-file.js";

// What is carried for others, kept by triggers in the same transaction as the rows, so neither the
// carrier limits nor `pigeon status` scan a million envelopes, and the numbers cannot drift from the
// rows after a crash. An envelope's header and carried flag never change once stored (enforced).
// Parties are counted from envelope_parties, whose rows are written after their envelope's row and
// deleted before it (EnvelopeStore.put / removeRow), so the envelope is there to look at both times.
const CARRIED_TOTALS = `
CREATE TABLE IF NOT EXISTS carried_totals (
  what INTEGER NOT NULL,      -- 0: all carried envelopes, 1: by author, 2: by source, 3: carried acks,
                              -- 4: by recipient (count: carried envelopes other than acks naming them)
  key BLOB NOT NULL,          -- the author's, source's or recipient's key (empty for 0 and 3)
  bytes INTEGER NOT NULL,
  count INTEGER NOT NULL,
  PRIMARY KEY (what, key)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS carried_in AFTER INSERT ON envelopes WHEN new.carried = 1 BEGIN
  INSERT INTO carried_totals SELECT 0, x'', new.size, 1 UNION ALL SELECT 1, new.author, new.size, 1
    UNION ALL SELECT 2, new.source, new.size, 1 WHERE new.source IS NOT NULL
    UNION ALL SELECT 3, x'', new.size, 1 WHERE new.kind = 3
  ON CONFLICT DO UPDATE SET bytes = bytes + excluded.bytes, count = count + 1;
END;
CREATE TRIGGER IF NOT EXISTS carried_out AFTER DELETE ON envelopes WHEN old.carried = 1 BEGIN
  UPDATE carried_totals SET bytes = bytes - old.size, count = count - 1
  WHERE (what = 0 AND key = x'') OR (what = 1 AND key = old.author) OR (what = 2 AND key = old.source)
     OR (what = 3 AND key = x'' AND old.kind = 3);
END;
CREATE TRIGGER IF NOT EXISTS envelope_header_fixed BEFORE UPDATE OF carried, size, author, source, kind ON envelopes BEGIN
  SELECT RAISE(ABORT, 'an envelope''s header and carried flag never change once stored');
END;
CREATE TRIGGER IF NOT EXISTS carried_for_in AFTER INSERT ON envelope_parties BEGIN
  INSERT INTO carried_totals SELECT 4, new.party, 0, 1 FROM envelopes e
    WHERE e.id = new.envelope AND e.carried = 1 AND e.kind != 3 AND e.author != new.party
  ON CONFLICT DO UPDATE SET count = count + 1;
END;
CREATE TRIGGER IF NOT EXISTS carried_for_out AFTER DELETE ON envelope_parties
WHEN EXISTS (SELECT 1 FROM envelopes e WHERE e.id = old.envelope AND e.carried = 1 AND e.kind != 3 AND e.author != old.party) BEGIN
  UPDATE carried_totals SET count = count - 1 WHERE what = 4 AND key = old.party;
  DELETE FROM carried_totals WHERE what = 4 AND key = old.party AND count <= 0;
END;
`;

const ENVELOPES_TABLE = `
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
  carried INTEGER NOT NULL,   -- 1: held for others (neither author nor recipient is this user)
  source BLOB,                -- the peer that handed it to us (null: written here)
  copies INTEGER,             -- spray-and-wait copy tokens held here (null: our own, not handed out yet)
  bytes BLOB NOT NULL,        -- what travels: a sealed envelope (version 3), a receipt, or a statement (version 2)
  inner BLOB                  -- this user's own or addressed sealed envelope: the signed envelope inside it
);
-- (a rowid table since format 5: a WITHOUT ROWID row keeps at most ~1 KB in its page and puts the rest
-- of a 1.6 KB envelope on an overflow page of its own, ~5 KB of disk and of writes per envelope; here
-- two envelopes share a page, and the id index that listings and sketches read holds only ids)
`;

export const SCHEMA = `${ENVELOPES_TABLE}
CREATE INDEX IF NOT EXISTS envelopes_by_conversation ON envelopes(conversation);
CREATE INDEX IF NOT EXISTS envelopes_carried ON envelopes(carried, received_at);
CREATE INDEX IF NOT EXISTS envelopes_by_source ON envelopes(source) WHERE carried = 1;
CREATE INDEX IF NOT EXISTS envelopes_by_author ON envelopes(author) WHERE carried = 1;
CREATE INDEX IF NOT EXISTS envelopes_own_by_author ON envelopes(author) WHERE carried = 0;
-- who acknowledged holding which envelope (from signed acks; the envelope may not be here)
CREATE TABLE IF NOT EXISTS acks (
  envelope BLOB NOT NULL,
  acker BLOB NOT NULL,
  PRIMARY KEY (envelope, acker)
) WITHOUT ROWID;
-- carried envelopes whose delivery was confirmed and whose copy was dropped: never taken again
CREATE TABLE IF NOT EXISTS delivered (
  id BLOB PRIMARY KEY,
  at INTEGER NOT NULL,
  source BLOB                 -- who had handed it to us: acknowledgements travel back that way
) WITHOUT ROWID;
-- which envelopes each acknowledgement (an envelope of kind 3) names: acks follow the copies
CREATE TABLE IF NOT EXISTS ack_names (
  ack BLOB NOT NULL,
  envelope BLOB NOT NULL,
  PRIMARY KEY (ack, envelope)
) WITHOUT ROWID;
-- envelopes seen but not kept (evicted, expired, refused by the carrier limits): still counted as
-- "had" when reconciling, so a contact does not fetch them again and again
CREATE TABLE IF NOT EXISTS forgotten (
  id BLOB PRIMARY KEY,
  at INTEGER NOT NULL,
  why TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS envelope_parties (
  envelope BLOB NOT NULL,
  party BLOB NOT NULL,
  PRIMARY KEY (party, envelope)
) WITHOUT ROWID;
-- receipts naming the envelopes of one reconciled slice (a recipient hands its receipts to carriers)
CREATE INDEX IF NOT EXISTS ack_names_by_envelope ON ack_names(envelope);
-- this user's own acknowledgements (few beside the carried ones): what a meeting hands on first
CREATE INDEX IF NOT EXISTS envelopes_own_acks ON envelopes(kind) WHERE carried = 0 AND kind = 3;
CREATE INDEX IF NOT EXISTS envelope_parties_by_envelope ON envelope_parties(envelope);
-- the statements held (read at every start) and the carried envelopes past their lifetime (looked for
-- every minute): without these, each is a pass over every envelope's row, ~1 s at a million
CREATE INDEX IF NOT EXISTS envelopes_statements ON envelopes(kind) WHERE kind = 4;
CREATE INDEX IF NOT EXISTS envelopes_expiry ON envelopes(received_at + lifetime * 1000) WHERE carried = 1;
CREATE TABLE IF NOT EXISTS handed (
  envelope BLOB NOT NULL,
  peer BLOB NOT NULL,
  at INTEGER NOT NULL,
  PRIMARY KEY (envelope, peer)
) WITHOUT ROWID;
${CARRIED_TOTALS}`;

/** Version of the SQLite layout (PRAGMA user_version); bump it with a conversion when tables change. */
export const SCHEMA_VERSION = 5;

/** Conversions from older layouts, each to the next version, run in one transaction when a store is opened. */
const CONVERSIONS: Record<number, (db: Database.Database) => void> = {
  // 2 -> 3: carried totals kept by triggers (were rebuilt in memory by a full scan on first use)
  2: (db) => {
    db.exec(CARRIED_TOTALS);
    db.exec(`
      INSERT INTO carried_totals SELECT 0, x'', sum(size), count(*) FROM envelopes WHERE carried = 1 HAVING count(*) > 0;
      INSERT INTO carried_totals SELECT 1, author, sum(size), count(*) FROM envelopes WHERE carried = 1 GROUP BY author;
      INSERT INTO carried_totals SELECT 2, source, sum(size), count(*) FROM envelopes WHERE carried = 1 AND source IS NOT NULL GROUP BY source;
      INSERT INTO carried_totals SELECT 3, x'', sum(size), count(*) FROM envelopes WHERE carried = 1 AND kind = 3 HAVING count(*) > 0;
      INSERT INTO carried_totals SELECT 4, p.party, 0, count(*) FROM envelopes e JOIN envelope_parties p ON p.envelope = e.id
        WHERE e.carried = 1 AND e.kind != 3 AND p.party != e.author GROUP BY p.party;`);
  },
  // 3 -> 4: sealed envelopes (version 3) keep the signed envelope they wrap beside them. (Carried
  // version-2 envelopes stay until they expire; peers of this version no longer take them.)
  3: (db) => {
    const columns = db.prepare(`PRAGMA table_info(envelopes)`).all() as { name: string }[];
    if (!columns.some((c) => c.name === "inner")) db.exec(`ALTER TABLE envelopes ADD COLUMN inner BLOB`);
  },
  // 4 -> 5: envelopes in a rowid table (see SCHEMA). The rows are copied with the triggers off, so the
  // carried totals (unchanged) are not counted twice; SCHEMA then makes the indexes and triggers again.
  // The file needs room for both copies while it converts.
  4: (db) => {
    db.exec(`
      DROP TRIGGER IF EXISTS carried_in; DROP TRIGGER IF EXISTS carried_out; DROP TRIGGER IF EXISTS envelope_header_fixed;
      DROP TRIGGER IF EXISTS carried_for_in; DROP TRIGGER IF EXISTS carried_for_out;
      ALTER TABLE envelopes RENAME TO envelopes_v4;`);
    for (const index of db.prepare(`SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'envelopes_v4' AND sql IS NOT NULL`).pluck().all() as string[])
      db.exec(`DROP INDEX "${index}"`);
    const columns = `id, conversation, segment, kind, author, created, lifetime, received_at, hops, size, carried, source, copies, bytes, inner`;
    db.exec(ENVELOPES_TABLE);
    db.exec(`INSERT INTO envelopes (${columns}) SELECT ${columns} FROM envelopes_v4 ORDER BY id; DROP TABLE envelopes_v4;`);
    db.exec(SCHEMA);
  },
};

export class DamagedStoreError extends Error {
  constructor(readonly path: string, detail: string) {
    super(
      `${path} is damaged (${detail}). The node will not run on a damaged store, so nothing more is lost; ` +
        `the file was left as it is. The conversations themselves are also kept in the documents/ folder beside it.`,
    );
    this.name = "DamagedStoreError";
  }
}

/**
 * How a store file was checked. A full check (SQLite's quick_check) reads every page: ~0.1 ms per
 * envelope, so ~100 s for a million (issue 20). It runs when the store is opened unless the store was
 * closed cleanly, is byte for byte the file it closed (size, change time, inode) and had a full check
 * less than a week ago; then it runs in a worker thread a little after the start, and damage it finds
 * is reported (onDamaged) and leaves no clean mark, so the next start checks in full and refuses.
 */
export interface StoreCheck {
  /** What ran when the store was opened: "full", "skipped" (clean close), "none" (in memory). */
  atOpen: "full" | "skipped" | "none";
  /** When a full check last found the file whole (ms since 1970), if ever. */
  checkedAt?: number;
  /** After a skipped start: the full check run in the background, "ok", what SQLite found, "could not run: ..." or "not run" (closed first). */
  later?: Promise<string>;
}

export interface OpenOptions {
  /** Told when the check run after a start that skipped it finds damage (the node should stop). */
  onDamaged?: (e: DamagedStoreError) => void;
  /** How long after opening the background check starts (default 30 s: not while the node starts up). */
  checkLaterMs?: number;
  /** Told before a store of an older format is converted (once; a large store takes a while: say so). */
  onConverting?: (from: number, to: number, envelopes: number) => void;
}

/** A full check at least this often, even if every close was clean. */
export const FULL_CHECK_EVERY_MS = 7 * 24 * 3600_000;
const CLEAN_MARK = "pigeon clean close 1";

interface Opened {
  path: string;
  check: StoreCheck;
  damaged: boolean;
  timer?: NodeJS.Timeout;
  worker?: Worker;
  settle?: (result: string) => void;
}
const opened = new WeakMap<Database.Database, Opened>();

/** How the store was checked when opened (and the background check, if one runs). */
export function storeCheck(db: Database.Database): StoreCheck {
  return opened.get(db)?.check ?? { atOpen: "none" };
}

/** What identifies the file's bytes without reading them: a write changes the size or the change time. */
function fileFingerprint(path: string): string | undefined {
  try {
    const st = statSync(path, { bigint: true });
    return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
  } catch {
    return undefined;
  }
}

/**
 * Reads and removes the clean-close mark (durably: a crash after this start must check in full). A
 * mark that cannot be read or removed counts as none: the start checks in full rather than refuse.
 */
function takeCleanMark(path: string): { fingerprint: string; checkedAt: number } | undefined {
  const mark = `${path}-clean`;
  if (!existsSync(mark)) return undefined;
  let text = "";
  try {
    text = readFileSync(mark, "utf8");
    unlinkSync(mark);
    fsyncDir(dirname(mark));
  } catch {
    return undefined;
  }
  const [head, fingerprint, at] = text.split("\n");
  const checkedAt = Number(at);
  return head === CLEAN_MARK && fingerprint && Number.isSafeInteger(checkedAt) ? { fingerprint, checkedAt } : undefined;
}

function quickCheck(db: Database.Database, path: string): void {
  const check = db.pragma("quick_check", { simple: true });
  if (check !== "ok") throw new DamagedStoreError(path, `sqlite quick_check: ${String(check)}`);
}

// the worker opens its own read-only connection (WAL lets it read while the node writes)
const CHECK_WORKER = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.module);
let result;
try {
  const db = new Database(workerData.path, { readonly: true, fileMustExist: true });
  try { result = String(db.pragma("quick_check", { simple: true })); } finally { db.close(); }
} catch (e) {
  // a file that is not a database, or is damaged where opening reads, is damage; anything else (no file
  // descriptors left, say) only means the check did not run
  const code = e && e.code;
  result = (code === "SQLITE_CORRUPT" || code === "SQLITE_NOTADB" ? "" : "could not run: ") + String(e && e.message || e);
}
parentPort.postMessage(result);`;

function checkLater(db: Database.Database, o: Opened, opts: OpenOptions): void {
  o.check.later = new Promise<string>((resolve) => (o.settle = resolve));
  o.timer = setTimeout(() => {
    o.timer = undefined;
    const worker = new Worker(CHECK_WORKER, { eval: true, workerData: { module: createRequire(import.meta.url).resolve("better-sqlite3"), path: o.path } });
    o.worker = worker;
    worker.unref(); // a process that is done does not wait for it: the next start checks again
    const done = (result: string) => {
      if (o.worker !== worker) return;
      o.worker = undefined;
      void worker.terminate();
      if (result === "ok") o.check.checkedAt = Date.now();
      else if (!result.startsWith("could not run")) {
        o.damaged = true;
        opts.onDamaged?.(new DamagedStoreError(o.path, `sqlite quick_check after a start that skipped it: ${result}`));
      }
      o.settle?.(result);
    };
    worker.once("message", (m) => done(String(m)));
    worker.once("error", (e) => done(`could not run: ${e.message}`));
  }, opts.checkLaterMs ?? 30_000);
  o.timer.unref();
}

export function openDatabase(path: string, opts: OpenOptions = {}): Database.Database {
  let db: Database.Database | undefined;
  const file = path !== ":memory:" && path !== "";
  try {
    const mark = file ? takeCleanMark(path) : undefined;
    const wal = `${path}-wal`;
    const clean = mark !== undefined && mark.fingerprint === fileFingerprint(path) && !(existsSync(wal) && statSync(wal).size > 0) && Date.now() - mark.checkedAt < FULL_CHECK_EVERY_MS;
    db = new Database(path);
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = FULL");
    db.pragma("busy_timeout = 5000");
    if (!clean) quickCheck(db, path);
    const version = db.pragma("user_version", { simple: true }) as number;
    const empty = db.prepare(`SELECT count(*) FROM sqlite_master WHERE type = 'table'`).pluck().get() === 0;
    if (empty) db.pragma(`user_version = ${SCHEMA_VERSION}`);
    else if (version !== SCHEMA_VERSION) {
      if (version > SCHEMA_VERSION || !CONVERSIONS[version])
        throw new Error(
          `${path} was written by ${version < SCHEMA_VERSION ? "an older" : "a newer"} version of Pigeon (store format ${version}, ` +
            `this one reads format ${SCHEMA_VERSION}) and there is no conversion for it; the file was left as it is`,
        );
      // all steps or none: a crash mid-way leaves the old format, converted again at the next start
      const hasEnvelopes = db.prepare(`SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'envelopes'`).pluck().get() === 1;
      opts.onConverting?.(version, SCHEMA_VERSION, hasEnvelopes ? (db.prepare(`SELECT count(*) FROM envelopes`).pluck().get() as number) : 0);
      db.transaction(() => {
        for (let v = version; v < SCHEMA_VERSION; v++) CONVERSIONS[v]!(db!);
        db!.pragma(`user_version = ${SCHEMA_VERSION}`);
      })();
      // a conversion that rewrote tables (4 -> 5: every envelope) leaves the old pages free in the file:
      // on a laptop's small flash, give them back now, once, rather than keep a file twice its size
      // (it needs room for a copy of the store: on a full disk it fails, and the converted store is used
      // as it is, larger, rather than refusing to start)
      if (file && (db.pragma("freelist_count", { simple: true }) as number) > 0) {
        try {
          db.exec("VACUUM");
          db.pragma("wal_checkpoint(TRUNCATE)"); // in WAL mode the file shrinks only when the log is written back
        } catch {
          // nothing lost: the conversion is committed; the free pages are used again as the store fills
        }
      }
    }
    if (file) {
      const o: Opened = { path, damaged: false, check: clean ? { atOpen: "skipped", checkedAt: mark!.checkedAt } : { atOpen: "full", checkedAt: Date.now() } };
      opened.set(db, o);
      if (clean) checkLater(db, o, opts);
    }
    return db;
  } catch (e) {
    db?.close();
    if (e instanceof DamagedStoreError) throw e;
    const code = (e as { code?: string }).code;
    if (code === "SQLITE_NOTADB" || code === "SQLITE_CORRUPT") throw new DamagedStoreError(path, (e as Error).message);
    throw e;
  }
}

/**
 * Closes a store opened by openDatabase. After a clean close of a whole store, marks it clean (the
 * file's fingerprint and when it was last checked in full) so the next start need not read it all.
 */
export function closeDatabase(db: Database.Database): void {
  const o = opened.get(db);
  if (o?.timer) clearTimeout(o.timer);
  if (o?.worker) {
    const worker = o.worker;
    o.worker = undefined;
    void worker.terminate();
  }
  o?.settle?.("not run");
  if (!db.open) return;
  db.close();
  if (!o || o.damaged || o.check.checkedAt === undefined) return;
  // SQLite empties the write-ahead log into the file when the last connection closes; if it could
  // not (another connection), the file alone is not the store: no mark
  const wal = `${o.path}-wal`;
  if (existsSync(wal) && statSync(wal).size > 0) return;
  const fingerprint = fileFingerprint(o.path);
  try {
    if (fingerprint) writeFileAtomic(`${o.path}-clean`, `${CLEAN_MARK}\n${fingerprint}\n${o.check.checkedAt}\n`);
  } catch {
    // a full disk, say: without the mark the next start checks in full, which is only slower
    try {
      unlinkSync(`${o.path}-clean.tmp${process.pid}`);
    } catch {
      /* not made */
    }
  }
}

