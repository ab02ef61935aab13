// What this laptop knows for its own user, beside the sealed store in the same SQLite file:
// contacts met, conversation members and keys, which envelopes were opened (and why some were
// rejected), which segment documents exist, and the hybrid logical clock.
import type Database from "better-sqlite3";
import { SCHEMA as ENVELOPE_SCHEMA } from "./database.js";
import { statementCache } from "./statements.js";
import { equalBytes, HLC_ZERO, toHex, type ContactCard, type Hlc } from "@pigeon/model";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS contacts (
  sign_key BLOB PRIMARY KEY,
  name TEXT NOT NULL,
  home TEXT NOT NULL,
  seal_key BLOB NOT NULL,
  first_seen INTEGER NOT NULL,
  last_seen INTEGER NOT NULL,
  how TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS conversations (
  id BLOB PRIMARY KEY,
  members BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS conversation_keys (
  conversation BLOB NOT NULL,
  key_id BLOB NOT NULL,
  key BLOB NOT NULL,
  envelope BLOB NOT NULL,
  PRIMARY KEY (conversation, key_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS opened (
  envelope BLOB PRIMARY KEY,
  conversation BLOB NOT NULL,
  status TEXT NOT NULL,
  reason TEXT,
  change_hash TEXT,
  at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS opened_by_hash ON opened(change_hash);
CREATE TABLE IF NOT EXISTS segments (
  conversation BLOB NOT NULL,
  segment INTEGER NOT NULL,
  PRIMARY KEY (conversation, segment)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sent_messages (
  message_id TEXT PRIMARY KEY,
  envelope BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS arrivals (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  key TEXT UNIQUE NOT NULL,
  at INTEGER NOT NULL,
  hops INTEGER
);
-- envelopes received for this user and not yet acknowledged (durable: a crash must not lose an ack)
CREATE TABLE IF NOT EXISTS to_ack (
  envelope BLOB PRIMARY KEY,
  author BLOB NOT NULL
) WITHOUT ROWID;
-- every message shown here, by arrival number: paged, per-conversation queries without loading every document
CREATE TABLE IF NOT EXISTS message_index (
  id TEXT PRIMARY KEY,
  conversation BLOB NOT NULL,
  segment INTEGER NOT NULL,
  outgoing INTEGER NOT NULL,
  seq INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS message_index_by_seq ON message_index(conversation, seq);
CREATE INDEX IF NOT EXISTS message_index_all ON message_index(seq);
-- (document, Automerge actor, seq) of every change applied: a second, different change for the same
-- (actor, seq) is an author contradicting themselves and is refused before Automerge sees it
CREATE TABLE IF NOT EXISTS change_seqs (
  document TEXT NOT NULL,     -- conversation id (hex) / segment
  actor TEXT NOT NULL,
  seq INTEGER NOT NULL,
  hash TEXT NOT NULL,
  PRIMARY KEY (document, actor, seq)
) WITHOUT ROWID;
-- what the user decided about a request (a message from someone who is not a buddy): ignored or reported
CREATE TABLE IF NOT EXISTS request_decisions (
  sign_key BLOB PRIMARY KEY,
  decision TEXT NOT NULL,
  at INTEGER NOT NULL,
  note TEXT
) WITHOUT ROWID;
-- devices that may no longer sign (their person's keyring, or the school, revoked them): permanent
CREATE TABLE IF NOT EXISTS revoked_devices (
  device BLOB PRIMARY KEY,
  person BLOB NOT NULL,
  reason TEXT NOT NULL,
  at INTEGER NOT NULL
) WITHOUT ROWID;
-- the newest keyring applied per person (a lower serial arriving later changes nothing)
CREATE TABLE IF NOT EXISTS keyrings (
  person BLOB PRIMARY KEY,
  serial INTEGER NOT NULL,
  envelope BLOB NOT NULL
) WITHOUT ROWID;
-- the key new messages of a conversation are sealed with, once it differs from the first one (after a
-- revocation the key is replaced, so a revoked device cannot read what is written afterwards)
CREATE TABLE IF NOT EXISTS sending_keys (
  conversation BLOB PRIMARY KEY,
  key_id BLOB NOT NULL
) WITHOUT ROWID;
-- conversations whose key must be replaced before the next message (a member's device was revoked)
CREATE TABLE IF NOT EXISTS rekey (
  conversation BLOB PRIMARY KEY
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS settings (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;
-- requests (envelopes from someone not on the buddy list): their acknowledgement, the only sign to
-- their author that the child got them, waits here until the child accepts the person
CREATE TABLE IF NOT EXISTS held_acks (
  envelope BLOB PRIMARY KEY,
  author BLOB NOT NULL,
  conversation BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS held_acks_by_author ON held_acks (author);
CREATE INDEX IF NOT EXISTS held_acks_by_conversation ON held_acks (conversation);
-- the message an acknowledgement of our own envelope says was delivered
CREATE INDEX IF NOT EXISTS sent_by_envelope ON sent_messages (envelope);
`;

export interface Contact extends ContactCard {
  /** The user's own name for this person, if they gave one (kept in the buddy list). */
  petname?: string;
  firstSeen: number;
  lastSeen: number;
  /** The last time their laptop was met nearby, if it ever was. */
  lastMet?: number;
  how: string;
}

export interface ConversationKey {
  keyId: Uint8Array;
  key: Uint8Array;
  envelope: Uint8Array;
}

type ContactRow = {
  sign_key: Buffer; name: string; home: string; seal_key: Buffer; first_seen: number; last_seen: number; how: string; petname: string | null;
  last_met: number | null;
};

function contactOf(r: ContactRow): Contact {
  const c: Contact = {
    name: r.name, home: r.home, signPublicKey: new Uint8Array(r.sign_key), sealPublicKey: new Uint8Array(r.seal_key),
    firstSeen: r.first_seen, lastSeen: r.last_seen, how: r.how,
  };
  if (r.petname) c.petname = r.petname;
  // contacts met before last_met was kept: their last sighting is when they were met
  const met = r.last_met ?? (r.how === "met" ? r.last_seen : null);
  if (met !== null) c.lastMet = met;
  return c;
}

export interface IndexedMessage {
  id: string;
  conversation: Uint8Array;
  segment: number;
  outgoing: boolean;
  seq: number;
  /** The message this one corrects (its author's, in the same conversation), as the document says. */
  replaces?: string;
  /** An incoming message this person read (their read receipt is in the document). */
  read?: boolean;
}

/** One conversation's messages in one direction, as the folders count them. */
export interface FolderCount {
  conversation: Uint8Array;
  outgoing: boolean;
  /** Messages, corrections included. */
  messages: number;
  /** Corrections of a message of the same author in the same conversation (listed as that message). */
  corrections: number;
  /** Incoming messages not read, corrections not counted. */
  unread: number;
}

/**
 * Whether an outgoing message still waits (SQL, for the message named by these expressions): not
 * handed to anyone in its envelope, not acknowledged, and in a conversation of two no receipt. Kept in
 * message_index.waiting, so "Waiting to be sent" is counted without loading anything (a teacher's
 * 10,000 messages written offline); a message's view still decides (views.ts, waitingPage).
 */
function stillWaiting(id: string, conversation: string, outgoing: string, replaces: string): string {
  return `${outgoing} = 1 AND ${replaces} IS NULL
    AND NOT EXISTS (SELECT 1 FROM sent_messages s JOIN handed h ON h.envelope = s.envelope WHERE s.message_id = ${id})
    AND NOT EXISTS (SELECT 1 FROM arrivals a WHERE a.key = 'd:' || ${id})
    AND NOT (coalesce((SELECT length(c.members) FROM conversations c WHERE c.id = ${conversation}), 0) = 64
      AND EXISTS (SELECT 1 FROM arrivals a WHERE a.key >= 'r:' || ${id} || '/' AND a.key < 'r:' || ${id} || '0'))`;
}

/** Whether a message corrects one listed (the author's, in the same conversation): listed as that message, not apart. */
function correctsListed(replaces: string, conversation: string, outgoing: string): string {
  return `${replaces} IS NOT NULL AND EXISTS (SELECT 1 FROM message_index t WHERE t.id = ${replaces} AND t.conversation = ${conversation} AND t.outgoing = ${outgoing})`;
}

/**
 * Each conversation's messages in each direction, counted as they are indexed, read, corrected or
 * forgotten: the folders' totals without a pass over a million rows (2.8 s) at each first screen.
 */
const FOLDER_COUNTS = `
CREATE TABLE IF NOT EXISTS folder_counts (
  conversation BLOB NOT NULL,
  outgoing INTEGER NOT NULL,
  messages INTEGER NOT NULL,
  corrections INTEGER NOT NULL,
  unread INTEGER NOT NULL,
  PRIMARY KEY (conversation, outgoing)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS folder_count_in AFTER INSERT ON message_index BEGIN
  INSERT INTO folder_counts VALUES (NEW.conversation, NEW.outgoing, 1, NEW.correction, NEW.outgoing = 0 AND NEW.read = 0 AND NEW.correction = 0)
    ON CONFLICT (conversation, outgoing) DO UPDATE SET messages = messages + 1, corrections = corrections + NEW.correction,
      unread = unread + (NEW.outgoing = 0 AND NEW.read = 0 AND NEW.correction = 0);
  -- corrections that came before the message they correct are corrections from now on
  UPDATE message_index SET correction = 1 WHERE replaces = NEW.id AND +correction = 0 AND +conversation = NEW.conversation AND +outgoing = NEW.outgoing;
END;
CREATE TRIGGER IF NOT EXISTS folder_count_changed AFTER UPDATE OF read, correction ON message_index BEGIN
  UPDATE folder_counts SET corrections = corrections + NEW.correction - OLD.correction,
    unread = unread + (NEW.outgoing = 0 AND NEW.read = 0 AND NEW.correction = 0) - (OLD.outgoing = 0 AND OLD.read = 0 AND OLD.correction = 0)
    WHERE conversation = NEW.conversation AND outgoing = NEW.outgoing;
END;
CREATE TRIGGER IF NOT EXISTS folder_count_out AFTER DELETE ON message_index BEGIN
  UPDATE folder_counts SET messages = messages - 1, corrections = corrections - OLD.correction,
    unread = unread - (OLD.outgoing = 0 AND OLD.read = 0 AND OLD.correction = 0)
    WHERE conversation = OLD.conversation AND outgoing = OLD.outgoing;
END;`;

/**
 * What ends a message's waiting, as it happens: handed on, acknowledged, a receipt (in a conversation
 * of two). (A "+" keeps SQLite from walking an index of every waiting message, or of a whole
 * conversation, where the row is found by its id: these run at every message.)
 */
const WAITING_TRIGGERS = `
CREATE TRIGGER IF NOT EXISTS not_waiting_handed AFTER INSERT ON handed BEGIN
  UPDATE message_index SET waiting = 0 WHERE +waiting = 1 AND id IN (SELECT message_id FROM sent_messages WHERE envelope = NEW.envelope);
END;
CREATE TRIGGER IF NOT EXISTS not_waiting_sent_handed AFTER INSERT ON sent_messages WHEN EXISTS (SELECT 1 FROM handed WHERE envelope = NEW.envelope) BEGIN
  UPDATE message_index SET waiting = 0 WHERE id = NEW.message_id;
END;
CREATE TRIGGER IF NOT EXISTS not_waiting_acknowledged AFTER INSERT ON arrivals WHEN NEW.key LIKE 'd:%' BEGIN
  UPDATE message_index SET waiting = 0 WHERE id = substr(NEW.key, 3) AND +waiting = 1;
END;
CREATE TRIGGER IF NOT EXISTS not_waiting_receipt AFTER INSERT ON arrivals WHEN NEW.key LIKE 'r:%/%' BEGIN
  UPDATE message_index SET waiting = 0 WHERE +waiting = 1 AND id = substr(NEW.key, 3, instr(substr(NEW.key, 3), '/') - 1)
    AND (SELECT length(c.members) FROM conversations c WHERE c.id = message_index.conversation) = 64;
END;`;

/** One message into the index, with whether it still waits and whether it is a correction of one listed. */
const INDEX_MESSAGE = `INSERT OR IGNORE INTO message_index (id, conversation, segment, outgoing, seq, replaces, read, waiting, correction)
  SELECT :id, :conversation, :segment, :outgoing, :seq, :replaces, :read, (${stillWaiting(":id", ":conversation", ":outgoing", ":replaces")}),
    (${correctsListed(":replaces", ":conversation", ":outgoing")})`;

type IndexRow = { id: string; conversation: Buffer; segment: number; outgoing: number; seq: number; replaces: string | null; read: number; waiting: number; correction: number };
const indexed = (r: IndexRow): IndexedMessage => ({
  id: r.id, conversation: new Uint8Array(r.conversation), segment: r.segment, outgoing: r.outgoing === 1, seq: r.seq,
  ...(r.replaces !== null ? { replaces: r.replaces } : {}), read: r.read === 1,
});
/** A row that corrects a message listed (same conversation, same direction): shown as that message, not apart. */
const CORRECTION = `(m.correction = 1)`;

export type OpenedStatus = "applied" | "rejected" | "pending";

export class LocalState {
  private readonly stmt: ReturnType<typeof statementCache>;

  constructor(readonly db: Database.Database) {
    this.stmt = statementCache(db);
    db.exec(SCHEMA);
    // columns added after the first stores were written
    const cols = (db.prepare(`PRAGMA table_info(contacts)`).all() as { name: string }[]).map((c) => c.name);
    if (!cols.includes("petname")) db.exec(`ALTER TABLE contacts ADD COLUMN petname TEXT`);
    if (!cols.includes("last_met")) db.exec(`ALTER TABLE contacts ADD COLUMN last_met INTEGER`);
    // which message a correction replaces, and whether an incoming one was read here: folders are
    // counted and paged from the index (a child's 100 conversations of 10,000 messages, issue 20). A
    // store indexed before these columns is indexed again from its documents, once (Views.rebuildIndex).
    // all of it or none: a crash half-way (a column added, the index not emptied) must not leave an
    // index that looks whole with every message unread
    db.transaction(() => {
      const indexCols = (db.prepare(`PRAGMA table_info(message_index)`).all() as { name: string }[]).map((c) => c.name);
      if (!indexCols.includes("replaces")) {
        db.exec(`ALTER TABLE message_index ADD COLUMN replaces TEXT; ALTER TABLE message_index ADD COLUMN read INTEGER NOT NULL DEFAULT 0; DELETE FROM message_index;`);
      }
      if (!indexCols.includes("waiting")) {
        db.exec(`ALTER TABLE message_index ADD COLUMN waiting INTEGER NOT NULL DEFAULT 0;
          UPDATE message_index SET waiting = (${stillWaiting("message_index.id", "message_index.conversation", "message_index.outgoing", "message_index.replaces")});`);
      }
      if (!indexCols.includes("correction")) {
        db.exec(`ALTER TABLE message_index ADD COLUMN correction INTEGER NOT NULL DEFAULT 0;
          UPDATE message_index SET correction = (${correctsListed("message_index.replaces", "message_index.conversation", "message_index.outgoing")});`);
      }
      // the tables the triggers below watch, if the envelope store has not made them yet
      db.exec(ENVELOPE_SCHEMA);
      db.exec(`CREATE INDEX IF NOT EXISTS message_index_replaces ON message_index(replaces) WHERE replaces IS NOT NULL;
        CREATE INDEX IF NOT EXISTS message_index_unread ON message_index(conversation, segment) WHERE outgoing = 0 AND read = 0;
        CREATE INDEX IF NOT EXISTS message_index_waiting ON message_index(seq) WHERE waiting = 1;
        -- a folder's newest in one conversation: without the direction, finding an incoming page in a
        -- conversation of 10,000 outgoing messages walked all of them (33 ms, x100 conversations)
        CREATE INDEX IF NOT EXISTS message_index_folder ON message_index(conversation, outgoing, seq);
        ${WAITING_TRIGGERS}`);
      const counted = db.prepare(`SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'folder_counts'`).pluck().get() === 1;
      db.exec(FOLDER_COUNTS);
      // counted once from the index (a million messages: seconds), then kept by the triggers
      if (!counted)
        db.exec(`INSERT INTO folder_counts SELECT conversation, outgoing, count(*), sum(correction), sum(outgoing = 0 AND read = 0 AND correction = 0)
          FROM message_index GROUP BY conversation, outgoing`);
    })();
  }

  // ---- contacts ----
  /** Remembers (or refreshes) a contact; `how` "met" also records that their laptop was met nearby now. */
  rememberContact(c: ContactCard, how: string, at: number): void {
    this.db
      .prepare(
        `INSERT INTO contacts (sign_key, name, home, seal_key, first_seen, last_seen, how, last_met) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(sign_key) DO UPDATE SET name = excluded.name, home = excluded.home, seal_key = excluded.seal_key,
           last_seen = max(last_seen, excluded.last_seen),
           how = CASE WHEN contacts.how = 'introduced' THEN excluded.how ELSE contacts.how END,
           last_met = CASE WHEN excluded.last_met IS NULL THEN contacts.last_met ELSE max(coalesce(contacts.last_met, 0), excluded.last_met) END`,
      )
      .run(c.signPublicKey, c.name, c.home, c.sealPublicKey, at, at, how, how === "met" ? at : null);
  }

  /** A buddy known from the buddy list (added on another device of the person): added without touching what this laptop saw of them. */
  addContactIfMissing(c: ContactCard, how: string, at: number): boolean {
    return this.stmt(
      `INSERT OR IGNORE INTO contacts (sign_key, name, home, seal_key, first_seen, last_seen, how) VALUES (?, ?, ?, ?, ?, ?, ?)`,
    ).run(c.signPublicKey, c.name, c.home, c.sealPublicKey, at, at, how).changes > 0;
  }

  contacts(): Contact[] {
    return (this.stmt(`SELECT * FROM contacts ORDER BY name, home`).all() as ContactRow[]).map(contactOf);
  }

  contact(signKey: Uint8Array): Contact | undefined {
    const r = this.stmt(`SELECT * FROM contacts WHERE sign_key = ?`).get(signKey) as ContactRow | undefined;
    return r && contactOf(r);
  }

  /** Contacts first met nearby since `since` (the rate limit on buddies added by meeting). */
  metSince(since: number): number {
    return this.stmt(`SELECT count(*) FROM contacts WHERE how = 'met' AND first_seen > ?`).pluck().get(since) as number;
  }

  sameNameCount(name: string, home: string): number {
    return this.stmt(`SELECT count(*) FROM contacts WHERE name = ? AND home = ?`).pluck().get(name, home) as number;
  }

  /** Sets (or with undefined clears) the user's own name for a contact. */
  setPetname(signKey: Uint8Array, petname: string | undefined): boolean {
    return this.stmt(`UPDATE contacts SET petname = ? WHERE sign_key = ?`).run(petname ?? null, signKey).changes > 0;
  }

  /** Makes a contact a buddy the user chose (accepting a request). */
  acceptContact(signKey: Uint8Array): boolean {
    return this.stmt(`UPDATE contacts SET how = 'accepted' WHERE sign_key = ?`).run(signKey).changes > 0;
  }

  decideRequest(signKey: Uint8Array, decision: "ignored" | "reported", at: number, note?: string): void {
    this.stmt(
      `INSERT INTO request_decisions (sign_key, decision, at, note) VALUES (?, ?, ?, ?)
       ON CONFLICT(sign_key) DO UPDATE SET decision = excluded.decision, at = excluded.at, note = excluded.note`,
    ).run(signKey, decision, at, note ?? null);
  }

  requestDecision(signKey: Uint8Array): { decision: "ignored" | "reported"; at: number; note: string | null } | undefined {
    return this.stmt(`SELECT decision, at, note FROM request_decisions WHERE sign_key = ?`).get(signKey) as
      | { decision: "ignored" | "reported"; at: number; note: string | null }
      | undefined;
  }

  reports(): { signKey: Uint8Array; at: number; note: string | null }[] {
    type R = { sign_key: Buffer; at: number; note: string | null };
    return (this.stmt(`SELECT sign_key, at, note FROM request_decisions WHERE decision = 'reported' ORDER BY at`).all() as R[]).map((r) => ({
      signKey: new Uint8Array(r.sign_key), at: r.at, note: r.note,
    }));
  }

  removeContact(signKey: Uint8Array): boolean {
    return this.stmt(`DELETE FROM contacts WHERE sign_key = ?`).run(signKey).changes > 0;
  }

  // ---- conversations and keys ----
  rememberConversation(id: Uint8Array, members: Uint8Array[]): void {
    this.stmt(`INSERT OR IGNORE INTO conversations (id, members) VALUES (?, ?)`).run(id, Buffer.concat(members));
  }

  /** A channel's members change with its membership ops (a two-person conversation's never do). */
  setMembers(id: Uint8Array, members: Uint8Array[]): void {
    this.stmt(`INSERT INTO conversations (id, members) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET members = excluded.members`).run(id, Buffer.concat(members));
  }

  members(id: Uint8Array): Uint8Array[] | undefined {
    const b = this.stmt(`SELECT members FROM conversations WHERE id = ?`).pluck().get(id) as Buffer | undefined;
    if (!b) return undefined;
    const out: Uint8Array[] = [];
    for (let i = 0; i < b.length; i += 32) out.push(new Uint8Array(b.subarray(i, i + 32)));
    return out;
  }

  /**
   * Conversations with someone else. The person's own conversation (one member: the buddy list its
   * devices share) is not one: it holds no messages and gets no receipts.
   */
  conversations(): Uint8Array[] {
    return (this.stmt(`SELECT id FROM conversations WHERE length(members) > 32`).pluck().all() as Buffer[]).map((b) => new Uint8Array(b));
  }

  addKey(conversation: Uint8Array, k: ConversationKey): void {
    this.db
      .prepare(`INSERT OR IGNORE INTO conversation_keys (conversation, key_id, key, envelope) VALUES (?, ?, ?, ?)`)
      .run(conversation, k.keyId, k.key, k.envelope);
  }

  /** Keys by hex key id; the first is the one to encrypt with (lowest key-envelope id, so all members converge). */
  keys(conversation: Uint8Array): ConversationKey[] {
    type R = { key_id: Buffer; key: Buffer; envelope: Buffer };
    return (this.stmt(`SELECT key_id, key, envelope FROM conversation_keys WHERE conversation = ? ORDER BY envelope`).all(conversation) as R[]).map(
      (r) => ({ keyId: new Uint8Array(r.key_id), key: new Uint8Array(r.key), envelope: new Uint8Array(r.envelope) }),
    );
  }

  /** The key new messages are sealed with: the replacement after a revocation, else the first one. */
  sendingKey(conversation: Uint8Array): ConversationKey | undefined {
    const keys = this.keys(conversation);
    const chosen = this.stmt(`SELECT key_id FROM sending_keys WHERE conversation = ?`).pluck().get(conversation) as Buffer | undefined;
    return (chosen && keys.find((k) => equalBytes(k.keyId, chosen))) || keys[0];
  }

  setSendingKey(conversation: Uint8Array, keyId: Uint8Array): void {
    this.stmt(`INSERT INTO sending_keys (conversation, key_id) VALUES (?, ?) ON CONFLICT(conversation) DO UPDATE SET key_id = excluded.key_id`).run(conversation, keyId);
    this.stmt(`DELETE FROM rekey WHERE conversation = ?`).run(conversation);
  }

  needsRekey(conversation: Uint8Array): boolean {
    return this.stmt(`SELECT 1 FROM rekey WHERE conversation = ?`).get(conversation) !== undefined;
  }

  /** Every conversation with `person` as a member gets a new key before its next message. */
  rekeyWith(person: Uint8Array): number {
    let n = 0;
    for (const conv of this.conversations()) {
      if (this.members(conv)?.some((m) => equalBytes(m, person))) {
        this.stmt(`INSERT OR IGNORE INTO rekey (conversation) VALUES (?)`).run(conv);
        n++;
      }
    }
    return n;
  }

  /** Every conversation gets a new key before its next message (this person's sealing key changed). */
  rekeyAll(): void {
    this.stmt(`INSERT OR IGNORE INTO rekey (conversation) SELECT id FROM conversations`).run();
  }

  // ---- devices and keyrings ----
  revokeDevice(device: Uint8Array, person: Uint8Array, reason: string, at: number): boolean {
    return this.stmt(`INSERT OR IGNORE INTO revoked_devices (device, person, reason, at) VALUES (?, ?, ?, ?)`).run(device, person, reason, at).changes > 0;
  }

  revocation(device: Uint8Array): { person: Uint8Array; reason: string; at: number } | undefined {
    const r = this.stmt(`SELECT person, reason, at FROM revoked_devices WHERE device = ?`).get(device) as { person: Buffer; reason: string; at: number } | undefined;
    return r && { person: new Uint8Array(r.person), reason: r.reason, at: r.at };
  }

  revokedDevices(person: Uint8Array): Uint8Array[] {
    return (this.stmt(`SELECT device FROM revoked_devices WHERE person = ?`).pluck().all(person) as Buffer[]).map((b) => new Uint8Array(b));
  }

  keyring(person: Uint8Array): { serial: number; envelope: Uint8Array } | undefined {
    const r = this.stmt(`SELECT serial, envelope FROM keyrings WHERE person = ?`).get(person) as { serial: number; envelope: Buffer } | undefined;
    return r && { serial: r.serial, envelope: new Uint8Array(r.envelope) };
  }

  setKeyring(person: Uint8Array, serial: number, envelope: Uint8Array): void {
    this.stmt(`INSERT INTO keyrings (person, serial, envelope) VALUES (?, ?, ?) ON CONFLICT(person) DO UPDATE SET serial = excluded.serial, envelope = excluded.envelope`).run(person, serial, envelope);
  }

  /** A contact's person announced a new sealing key (after revoking a device): seal to it from now on. */
  updateSealKey(person: Uint8Array, sealKey: Uint8Array): boolean {
    return this.stmt(`UPDATE contacts SET seal_key = ? WHERE sign_key = ?`).run(sealKey, person).changes > 0;
  }

  keyMap(conversation: Uint8Array): Map<string, Uint8Array> {
    return new Map(this.keys(conversation).map((k) => [toHex(k.keyId), k.key]));
  }

  // ---- opened envelopes ----
  markOpened(envelope: Uint8Array, conversation: Uint8Array, status: OpenedStatus, at: number, reason?: string, changeHash?: string): void {
    this.stmt(
      `INSERT INTO opened (envelope, conversation, status, reason, change_hash, at) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT(envelope) DO UPDATE SET status = excluded.status, reason = excluded.reason, change_hash = excluded.change_hash, at = excluded.at`,
    ).run(envelope, conversation, status, reason ?? null, changeHash ?? null, at);
  }

  /**
   * The envelopes of one segment opened and applied here, in arrival order, each with the hash of its
   * change where it was recorded (null for what was applied before hashes were kept, or is not a change).
   */
  appliedIn(conversation: Uint8Array, segment: number): { envelope: Uint8Array; hash: string | null }[] {
    return (
      this.stmt(
        `SELECT o.envelope, o.change_hash AS hash FROM envelopes e JOIN opened o ON o.envelope = e.id
         WHERE e.conversation = ? AND e.segment = ? AND o.status = 'applied' ORDER BY e.received_at`,
      ).all(conversation, segment) as { envelope: Buffer; hash: string | null }[]
    ).map((r) => ({ envelope: new Uint8Array(r.envelope), hash: r.hash }));
  }

  openedStatus(envelope: Uint8Array): OpenedStatus | undefined {
    return this.stmt(`SELECT status FROM opened WHERE envelope = ?`).pluck().get(envelope) as OpenedStatus | undefined;
  }

  changeOpenedElsewhere(hash: string, envelope: Uint8Array): boolean {
    return this.stmt(`SELECT 1 FROM opened WHERE change_hash = ? AND envelope != ? AND status = 'applied'`).get(hash, envelope) !== undefined;
  }

  pending(conversation?: Uint8Array): Uint8Array[] {
    const rows = conversation
      ? this.stmt(`SELECT envelope FROM opened WHERE status = 'pending' AND conversation = ?`).pluck().all(conversation)
      : this.stmt(`SELECT envelope FROM opened WHERE status = 'pending'`).pluck().all();
    return (rows as Buffer[]).map((b) => new Uint8Array(b));
  }

  /** Envelopes addressed to `me` in the sealed store that were never opened (e.g. a crash in between). */
  unopened(me: Uint8Array): Uint8Array[] {
    return (
      this.db
        .prepare(
          `SELECT p.envelope FROM envelope_parties p JOIN envelopes e ON e.id = p.envelope
           LEFT JOIN opened o ON o.envelope = p.envelope
           WHERE p.party = ? AND o.envelope IS NULL AND e.kind != 3`,
        )
        .pluck()
        .all(me) as Buffer[]
    ).map((b) => new Uint8Array(b));
  }

  rejections(): { envelope: Uint8Array; reason: string; at: number }[] {
    type R = { envelope: Buffer; reason: string; at: number };
    return (this.stmt(`SELECT envelope, reason, at FROM opened WHERE status = 'rejected' ORDER BY at`).all() as R[]).map((r) => ({
      envelope: new Uint8Array(r.envelope), reason: r.reason, at: r.at,
    }));
  }

  // ---- segments ----
  addSegment(conversation: Uint8Array, segment: number): void {
    this.stmt(`INSERT OR IGNORE INTO segments (conversation, segment) VALUES (?, ?)`).run(conversation, segment);
  }

  segments(conversation: Uint8Array): number[] {
    return this.stmt(`SELECT segment FROM segments WHERE conversation = ? ORDER BY segment`).pluck().all(conversation) as number[];
  }

  // ---- sent messages ----
  recordSent(messageId: string, envelope: Uint8Array): void {
    this.stmt(`INSERT OR IGNORE INTO sent_messages (message_id, envelope) VALUES (?, ?)`).run(messageId, envelope);
  }

  /** The messages of ours that went in this sealed envelope (one, or a batch sent together). */
  sentMessages(envelope: Uint8Array): string[] {
    return this.stmt(`SELECT message_id FROM sent_messages WHERE envelope = ?`).pluck().all(envelope) as string[];
  }

  sentEnvelope(messageId: string): Uint8Array | undefined {
    const b = this.stmt(`SELECT envelope FROM sent_messages WHERE message_id = ?`).pluck().get(messageId) as Buffer | undefined;
    return b ? new Uint8Array(b) : undefined;
  }

  // ---- arrival order (what the user has been shown, in the order it reached this laptop) ----
  /** Records the first arrival of `key`; returns its sequence number, or undefined if it was seen before. */
  private readonly arrived = new Set<string>();

  /** A transaction opened elsewhere (group commit) rolled back: arrivals it recorded were not kept. */
  rolledBack(): void {
    this.arrived.clear();
  }

  recordArrival(key: string, at: number, hops?: number): number | undefined {
    // views rescan whole segments after each change: remember what is known instead of writing again
    if (this.arrived.has(key)) return undefined;
    this.arrived.add(key);
    if (this.arrived.size > 200_000) this.arrived.clear();
    const r = this.stmt(`INSERT OR IGNORE INTO arrivals (key, at, hops) VALUES (?, ?, ?)`).run(key, at, hops ?? null);
    return r.changes ? Number(r.lastInsertRowid) : undefined;
  }

  /** A statement prepared once for this database (for the mailbox's parts that keep their own tables). */
  statement(sql: string): ReturnType<ReturnType<typeof statementCache>> {
    return this.stmt(sql);
  }

  /** Runs several writes as one transaction (one fsync instead of several). */
  batch<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  arrival(key: string): { seq: number; at: number; hops: number | null } | undefined {
    return this.stmt(`SELECT seq, at, hops FROM arrivals WHERE key = ?`).get(key) as { seq: number; at: number; hops: number | null } | undefined;
  }

  // ---- message index ----
  indexMessage(m: IndexedMessage): void {
    this.stmt(INDEX_MESSAGE).run({ id: m.id, conversation: m.conversation, segment: m.segment, outgoing: m.outgoing ? 1 : 0, seq: m.seq, replaces: m.replaces ?? null, read: m.read ? 1 : 0 });
  }

  /** This person's read receipt for an incoming message is in its document. */
  markIndexedRead(id: string): void {
    this.stmt(`UPDATE message_index SET read = 1 WHERE id = ? AND outgoing = 0`).run(id);
  }

  /** Whether messages arrived before the index existed (a store from an older version). */
  messageIndexIncomplete(): boolean {
    const arrived = this.stmt(`SELECT count(*) FROM arrivals WHERE key LIKE 'm:%'`).pluck().get() as number;
    const indexed = this.stmt(`SELECT count(*) FROM message_index`).pluck().get() as number;
    return indexed < arrived;
  }

  indexedMessage(id: string): IndexedMessage | undefined {
    const r = this.stmt(`SELECT * FROM message_index WHERE id = ?`).get(id) as IndexRow | undefined;
    return r && indexed(r);
  }

  queryMessages(q: { conversation?: Uint8Array; outgoing?: boolean; afterSeq?: number; beforeSeq?: number; limit: number; newest: boolean }): IndexedMessage[] {
    const where: string[] = [];
    const args: (Uint8Array | number)[] = [];
    if (q.conversation) (where.push("conversation = ?"), args.push(q.conversation));
    if (q.outgoing !== undefined) (where.push("outgoing = ?"), args.push(q.outgoing ? 1 : 0));
    if (q.afterSeq !== undefined) (where.push("seq > ?"), args.push(q.afterSeq));
    if (q.beforeSeq !== undefined) (where.push("seq < ?"), args.push(q.beforeSeq));
    const sql = `SELECT * FROM message_index ${where.length ? "WHERE " + where.join(" AND ") : ""} ORDER BY seq ${q.newest ? "DESC" : "ASC"} LIMIT ?`;
    const rows = (this.stmt(sql).all(...args, q.limit) as IndexRow[]).map(indexed);
    return q.newest ? rows.reverse() : rows;
  }

  /** How many messages each conversation has in each direction (kept by triggers: no pass over the index). */
  folderCounts(): FolderCount[] {
    type R = { conversation: Buffer; outgoing: number; messages: number; corrections: number; unread: number };
    const rows = this.stmt(`SELECT * FROM folder_counts WHERE messages > 0`).all() as R[];
    return rows.map((r) => ({ conversation: new Uint8Array(r.conversation), outgoing: r.outgoing === 1, messages: r.messages, corrections: r.corrections, unread: r.unread }));
  }

  /**
   * One conversation's messages in one direction, newest first: at most `limit`, arrived before
   * `beforeSeq`; without the corrections (`corrections` false), only unread ones (`unread`).
   */
  folderMessages(q: { conversation: Uint8Array; outgoing: boolean; limit?: number; beforeSeq?: number; corrections: boolean; unread?: boolean }): IndexedMessage[] {
    const where = [`m.conversation = ?`, `m.outgoing = ?`, `m.seq < ?`];
    if (!q.corrections) where.push(`NOT ${CORRECTION}`);
    if (q.unread) where.push(`m.read = 0`);
    const sql = `SELECT m.* FROM message_index m WHERE ${where.join(" AND ")} ORDER BY m.seq DESC LIMIT ?`;
    return (this.stmt(sql).all(q.conversation, q.outgoing ? 1 : 0, q.beforeSeq ?? Number.MAX_SAFE_INTEGER, q.limit ?? -1) as IndexRow[]).map(indexed);
  }

  /** The corrections of a message (same conversation, same direction). */
  correctionsOf(m: IndexedMessage): IndexedMessage[] {
    // by the corrections' own index ("+": not by the conversation's, which walks all its messages)
    return (this.stmt(`SELECT * FROM message_index WHERE replaces = ? AND +conversation = ? AND +outgoing = ?`).all(m.id, m.conversation, m.outgoing ? 1 : 0) as IndexRow[]).map(indexed);
  }

  /** How many outgoing messages still wait (see stillWaiting). */
  waitingCount(): number {
    return this.stmt(`SELECT count(*) FROM message_index WHERE waiting = 1`).pluck().get() as number;
  }

  /** Outgoing messages that still wait, newest first: `limit` of them (all: -1) after the first `offset`. */
  waitingMessages(limit = -1, offset = 0): IndexedMessage[] {
    return (this.stmt(`SELECT * FROM message_index WHERE waiting = 1 ORDER BY seq DESC LIMIT ? OFFSET ?`).all(limit, offset) as IndexRow[]).map(indexed);
  }

  /** Messages whose id starts with `prefix` (lower-case hex), at most `limit`. */
  messagesStartingWith(prefix: string, limit: number): IndexedMessage[] {
    return (this.stmt(`SELECT * FROM message_index WHERE id >= ? AND id < ? ORDER BY id LIMIT ?`).all(prefix, prefix + "\uffff", limit) as IndexRow[]).map(indexed);
  }

  /** The segments of a conversation holding incoming messages not read yet. */
  unreadSegments(conversation: Uint8Array): number[] {
    return this.stmt(`SELECT DISTINCT segment FROM message_index WHERE conversation = ? AND outgoing = 0 AND read = 0`).pluck().all(conversation) as number[];
  }

  // ---- changes applied, by (actor, seq) ----
  /** The hash of the change applied to a segment document for (actor, seq), if any. */
  changeAt(conversation: Uint8Array, segment: number, actor: string, seq: number): string | undefined {
    return this.stmt(`SELECT hash FROM change_seqs WHERE document = ? AND actor = ? AND seq = ?`).pluck().get(`${toHex(conversation)}/${segment}`, actor, seq) as
      | string
      | undefined;
  }

  recordChange(conversation: Uint8Array, segment: number, change: { actor: string; seq: number; hash: string }): void {
    this.stmt(`INSERT OR IGNORE INTO change_seqs (document, actor, seq, hash) VALUES (?, ?, ?, ?)`).run(
      `${toHex(conversation)}/${segment}`, change.actor, change.seq, change.hash,
    );
  }

  // ---- acknowledgements owed ----
  oweAck(envelope: Uint8Array, author: Uint8Array): void {
    this.stmt(`INSERT OR IGNORE INTO to_ack (envelope, author) VALUES (?, ?)`).run(envelope, author);
  }

  owedAcks(): { id: Uint8Array; author: Uint8Array }[] {
    return (this.stmt(`SELECT envelope, author FROM to_ack`).all() as { envelope: Buffer; author: Buffer }[]).map((r) => ({
      id: new Uint8Array(r.envelope), author: new Uint8Array(r.author),
    }));
  }

  /** A request's acknowledgement, kept back until its author is accepted (durable, as owed ones are). */
  holdAck(envelope: Uint8Array, author: Uint8Array, conversation: Uint8Array): void {
    this.stmt(`INSERT OR IGNORE INTO held_acks (envelope, author, conversation) VALUES (?, ?, ?)`).run(envelope, author, conversation);
  }

  /**
   * What was held for this author (accepted as a buddy), or in this conversation (a channel that
   * became known after its first envelopes came), is owed now. Returns how many.
   */
  releaseHeldAcks(by: { author: Uint8Array } | { conversation: Uint8Array }): number {
    const column = "author" in by ? "author" : "conversation";
    const value = "author" in by ? by.author : by.conversation;
    return this.db.transaction(() => {
      this.stmt(`INSERT OR IGNORE INTO to_ack (envelope, author) SELECT envelope, author FROM held_acks WHERE ${column} = ?`).run(value);
      return this.stmt(`DELETE FROM held_acks WHERE ${column} = ?`).run(value).changes;
    })();
  }

  paidAcks(ids: Uint8Array[]): void {
    const st = this.stmt(`DELETE FROM to_ack WHERE envelope = ?`);
    this.db.transaction(() => {
      for (const id of ids) st.run(id);
    })();
  }

  // ---- settings ----
  setting(key: string): string | undefined {
    return this.stmt(`SELECT value FROM settings WHERE key = ?`).pluck().get(key) as string | undefined;
  }

  setSetting(key: string, value: string): void {
    this.stmt(`INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`).run(key, value);
  }

  // ---- clock ----
  hlc(): Hlc {
    const v = this.stmt(`SELECT value FROM settings WHERE key = 'hlc'`).pluck().get() as string | undefined;
    return v ? (JSON.parse(v) as Hlc) : HLC_ZERO;
  }

  setHlc(h: Hlc): void {
    this.stmt(`INSERT INTO settings (key, value) VALUES ('hlc', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`).run(JSON.stringify(h));
  }
}
