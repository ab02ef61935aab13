import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { contactCard, EnvelopeKind, generateIdentity, randomBytes, signEnvelope, type Envelope, type Identity } from "@pigeon/model";
import { SCHEMA_VERSION } from "./envelope-store.js";
import { EnvelopeStore, openDatabase } from "./index.js";
import { LocalState } from "./local-state.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function file(): string {
  const d = mkdtempSync(join(tmpdir(), "pigeon-store-"));
  dirs.push(d);
  return join(d, "envelopes.sqlite");
}

const authors = [generateIdentity("ada"), generateIdentity("bo")];
function envelope(author: Identity, size: number): Envelope {
  return signEnvelope(author, {
    kind: EnvelopeKind.Change, conversation: randomBytes(16), segment: 0, recipients: [randomBytes(32)],
    created: Date.now(), lifetime: 86400, keyId: randomBytes(8),
  }, randomBytes(size));
}

/** What `pigeon status` must say: counted from the rows themselves (the scan it used to run). */
function scanned(store: EnvelopeStore) {
  const r = store.db.prepare(`SELECT count(*) AS envelopes, coalesce(sum(size), 0) AS bytes FROM envelopes WHERE carried = 1 AND kind != 3`).get() as {
    envelopes: number; bytes: number;
  };
  const people = store.db.prepare(
    `SELECT count(DISTINCT p.party) FROM envelopes e JOIN envelope_parties p ON p.envelope = e.id WHERE e.carried = 1 AND e.kind != 3 AND p.party != e.author`,
  ).pluck().get() as number;
  const acks = store.db.prepare(`SELECT count(*) FROM envelopes WHERE carried = 1 AND kind = 3`).pluck().get() as number;
  return { ...r, people, acks };
}

/** What the totals must be: summed from the rows themselves. */
function summed(store: EnvelopeStore, where: string, ...args: unknown[]): number {
  return store.db.prepare(`SELECT coalesce(sum(size), 0) FROM envelopes WHERE carried = 1 ${where}`).pluck().get(...args) as number;
}

describe("carried totals", () => {
  it("follow every insert, drop and eviction, per author and per source", () => {
    const store = new EnvelopeStore(openDatabase(file()));
    const sources = [randomBytes(32), randomBytes(32)];
    const envs: Envelope[] = [];
    for (let i = 0; i < 40; i++) {
      const e = envelope(authors[i % 2]!, 100 + i * 7);
      envs.push(e);
      store.put(e, 1, Date.now(), i % 5 !== 0, sources[i % 3 === 0 ? 0 : 1]); // every fifth is our own (not carried)
    }
    store.put(envelope(authors[0]!, 300), 1, Date.now(), true); // carried, no source (bulk import)
    store.dropDelivered(envs[1]!.id, Date.now());
    store.put(envelope(authors[1]!, 250), 1, Date.now(), true, sources[0], [envs[2]!.id, envs[3]!.id]); // evicts two
    // a carried acknowledgement, and an envelope to a recipient already counted
    const ack = signEnvelope(authors[1]!, { kind: EnvelopeKind.Ack, conversation: new Uint8Array(16), segment: 0, recipients: [authors[0]!.signing.publicKey], created: Date.now(), lifetime: 86400, keyId: new Uint8Array(8) }, randomBytes(40));
    store.put(ack, 1, Date.now(), true, sources[1]);
    const again = envelope(authors[0]!, 77);
    store.put({ ...again, recipients: envs[5]!.recipients }, 1, Date.now(), true, sources[1]);
    const check = () => {
      expect(store.carried()).toEqual(scanned(store));
      expect(store.carriedBytes()).toBe(summed(store, ""));
      for (const a of authors) expect(store.carriedBytesByAuthor(a.signing.publicKey)).toBe(summed(store, "AND author = ?", a.signing.publicKey));
      for (const s of sources) expect(store.carriedBytesFromSource(s)).toBe(summed(store, "AND source = ?", s));
    };
    check();
    expect(store.carriedBytes()).toBeGreaterThan(0);
    expect(store.carriedBytesFromSource(randomBytes(32))).toBe(0);
    // a batch that rolls back leaves them as they were
    const before = store.carriedBytes();
    expect(() => store.batch(() => {
      store.put(envelope(authors[0]!, 500), 1, Date.now(), true, sources[1]);
      throw new Error("disk full");
    })).toThrow("disk full");
    expect(store.carriedBytes()).toBe(before);
    check();
    // and every removal path: expiry, delivery, eviction
    store.dropDelivered(ack.id, Date.now());
    for (const e of envs.slice(4, 12)) store.dropDelivered(e.id, Date.now());
    check();
    expect(store.carried().acks).toBe(0);
    expect(() => store.db.prepare(`UPDATE envelopes SET carried = 0`).run()).toThrow(/never change/);
    store.db.close();
  });

  it("a store of format 2 is converted when opened, totals counted once from its rows", () => {
    const path = file();
    const store = new EnvelopeStore(openDatabase(path));
    const source = randomBytes(32);
    for (let i = 0; i < 30; i++) store.put(envelope(authors[i % 2]!, 120 + i), 1, Date.now(), i % 4 !== 0, source);
    const expected = summed(store, "");
    // make it what the previous release wrote: no totals table, no triggers, format 2
    store.db.exec(`DROP TRIGGER carried_in; DROP TRIGGER carried_out; DROP TRIGGER envelope_header_fixed; DROP TRIGGER carried_for_in;
      DROP TRIGGER carried_for_out; DROP TABLE carried_totals; PRAGMA user_version = 2;`);
    store.db.close();
    const db = openDatabase(path);
    expect(db.pragma("user_version", { simple: true })).toBe(SCHEMA_VERSION);
    const again = new EnvelopeStore(db);
    expect(again.carriedBytes()).toBe(expected);
    expect(again.carried()).toEqual(scanned(again));
    expect(again.carriedBytesFromSource(source)).toBe(expected);
    expect(again.carriedBytesByAuthor(authors[0]!.signing.publicKey) + again.carriedBytesByAuthor(authors[1]!.signing.publicKey)).toBe(expected);
    const later = envelope(authors[0]!, 99);
    again.put(later, 1, Date.now(), true, source); // and the triggers run from now on
    expect(again.carriedBytes()).toBe(expected + later.bytes.length);
    expect(again.carriedBytesFromSource(source)).toBe(expected + later.bytes.length);
    db.close();
  });

  it("a store of format 4 (envelopes WITHOUT ROWID) is converted when opened: every row, the same totals, indexes and triggers", () => {
    const path = file();
    const store = new EnvelopeStore(openDatabase(path));
    const source = randomBytes(32);
    const envs = Array.from({ length: 40 }, (_, i) => envelope(authors[i % 2]!, 1500 + i));
    envs.forEach((e, i) => store.put(e, 1 + (i % 3), Date.now() - i, i % 4 !== 0, source, [], 2));
    const rows = () => store.db.prepare(`SELECT * FROM envelopes ORDER BY id`).all();
    const before = rows();
    const totals = scanned(store);
    const schemaOf = (db: typeof store.db) =>
      db.prepare(`SELECT type, name FROM sqlite_master WHERE tbl_name IN ('envelopes', 'envelope_parties') AND type != 'table' ORDER BY name`).all();
    const objects = schemaOf(store.db);
    // make it what the previous release wrote: the same columns in a WITHOUT ROWID table, format 4
    store.db.exec(`
      DROP TRIGGER carried_in; DROP TRIGGER carried_out; DROP TRIGGER envelope_header_fixed; DROP TRIGGER carried_for_in; DROP TRIGGER carried_for_out;
      ALTER TABLE envelopes RENAME TO e5;
      CREATE TABLE envelopes (id BLOB PRIMARY KEY, conversation BLOB NOT NULL, segment INTEGER NOT NULL, kind INTEGER NOT NULL,
        author BLOB NOT NULL, created INTEGER NOT NULL, lifetime INTEGER NOT NULL, received_at INTEGER NOT NULL, hops INTEGER NOT NULL,
        size INTEGER NOT NULL, carried INTEGER NOT NULL, source BLOB, copies INTEGER, bytes BLOB NOT NULL, inner BLOB) WITHOUT ROWID;
      INSERT INTO envelopes SELECT * FROM e5; DROP TABLE e5;`);
    new EnvelopeStore(store.db); // its indexes and triggers, on the old table
    store.db.pragma("user_version = 4");
    expect(store.db.prepare(`SELECT sql FROM sqlite_master WHERE name = 'envelopes'`).pluck().get()).toMatch(/WITHOUT ROWID/);
    store.db.close();

    const told: number[][] = [];
    const sizeBefore = statSync(path).size;
    const db = openDatabase(path, { onConverting: (from, to, n) => told.push([from, to, n]) });
    expect(told).toEqual([[4, SCHEMA_VERSION, 40]]);
    // the old table's pages are given back: no free pages, and a smaller file than format 4's
    expect(db.pragma("freelist_count", { simple: true })).toBe(0);
    expect(statSync(path).size).toBeLessThan(sizeBefore);
    expect(db.pragma("user_version", { simple: true })).toBe(SCHEMA_VERSION);
    expect(db.prepare(`SELECT sql FROM sqlite_master WHERE name = 'envelopes'`).pluck().get()).not.toMatch(/WITHOUT ROWID/);
    const again = new EnvelopeStore(db);
    expect(db.prepare(`SELECT * FROM envelopes ORDER BY id`).all()).toEqual(before);
    expect(scanned(again)).toEqual(totals);
    expect(again.carried()).toEqual(totals);
    expect(schemaOf(db)).toEqual(objects);
    expect(db.prepare(`SELECT count(*) FROM sqlite_master WHERE name = 'e5' OR name = 'envelopes_v4'`).pluck().get()).toBe(0);
    // the triggers run from now on: one more carried, one dropped, and the header still fixed
    const later = envelope(authors[0]!, 1600);
    again.put(later, 1, Date.now(), true, source);
    again.dropDelivered(envs[1]!.id, Date.now());
    expect(again.carried()).toEqual(scanned(again));
    expect(again.carried().envelopes).toBe(totals.envelopes);
    expect(() => db.prepare(`UPDATE envelopes SET carried = 0`).run()).toThrow(/never change/);
    expect(db.pragma("quick_check", { simple: true })).toBe("ok");
    db.close();
  });

  it("a store from a newer release is refused, and left as it was", () => {
    const path = file();
    const db = openDatabase(path);
    new EnvelopeStore(db);
    db.pragma("user_version = 99");
    db.close();
    expect(() => openDatabase(path)).toThrow(new RegExp(`newer version of Pigeon \\(store format 99, this one reads format ${SCHEMA_VERSION}\\)`));
  });
});

describe("eviction order", () => {
  it("expired first, then strangers, then whoever became known most recently; never anyone known longer than the newcomer", () => {
    const db = openDatabase(":memory:");
    const store = new EnvelopeStore(db);
    const state = new LocalState(db); // the contacts table, in the same database
    const [old, card, fresh, introduced, stranger, relay] = ["old", "card", "fresh", "introduced", "stranger", "relay"].map((n) => generateIdentity(n));
    const t = 1_700_000_000_000;
    state.rememberContact(contactCard(old!), "met", t - 86_400_000); // met yesterday
    state.rememberContact(contactCard(card!), "card", t - 3_600_000); // added by card an hour ago
    state.rememberContact(contactCard(fresh!), "met", t - 1000); // met a second ago
    state.rememberContact(contactCard(introduced!), "introduced", t - 2 * 86_400_000); // only an envelope said who it is
    state.rememberContact(contactCard(relay!), "met", t - 2 * 86_400_000); // a laptop met two days ago
    const names = new Map<string, string>();
    const put = (name: string, who: Identity, source: Identity, at: number, lifetime = 86_400) => {
      const e = signEnvelope(who, {
        kind: EnvelopeKind.Change, conversation: randomBytes(16), segment: 0, recipients: [randomBytes(32)], created: at, lifetime, keyId: randomBytes(8),
      }, randomBytes(1000));
      store.put(e, 1, at, true, source.signing.publicKey);
      names.set(Buffer.from(e.id).toString("hex"), name);
      return e.bytes.length;
    };
    // stored oldest first: by age alone the classmates' would go first
    const size = put("old", old!, old!, t - 5000);
    put("card", card!, fresh!, t - 4000); // vouched for by its author (an hour), not only by the newer source
    put("fresh", fresh!, fresh!, t - 3000);
    put("introduced", introduced!, introduced!, t - 2000);
    put("stranger", stranger!, stranger!, t - 1000);
    put("via relay", stranger!, relay!, t); // a stranger's envelope handed over by a laptop known for two days
    /** What may be evicted for a newcomer known since `since`, in order. */
    const evictable = (since: number | undefined, now = t) => {
      for (let k = names.size; k > 0; k--) {
        const ids = store.evictionCandidates(k * size, now, since);
        if (ids.length) return ids.map((id) => names.get(Buffer.from(id).toString("hex")));
      }
      return [];
    };
    expect(store.knownSince(old!.signing.publicKey, fresh!.signing.publicKey)).toBe(t - 86_400_000);
    expect(store.knownSince(stranger!.signing.publicKey, relay!.signing.publicKey)).toBe(t - 2 * 86_400_000);
    expect(store.knownSince(introduced!.signing.publicKey, undefined)).toBeUndefined();
    // whoever is known longest may make room from everyone known less long
    expect(evictable(t - 10 * 86_400_000)).toEqual(["introduced", "stranger", "fresh", "card", "old", "via relay"]);
    // someone met a second ago: strangers' and its own kind only
    expect(evictable(t - 1000)).toEqual(["introduced", "stranger", "fresh"]);
    // a stranger (nobody known vouches for it): strangers' only
    expect(evictable(undefined)).toEqual(["introduced", "stranger"]);
    expect(store.evictionCandidates(3 * size, t, undefined)).toEqual([]); // not enough may go: refuse instead
    // an expired envelope goes first, whoever it is from
    put("old, expired", old!, old!, t - 10_000, 1);
    expect(evictable(undefined)).toEqual(["old, expired", "introduced", "stranger"]);
    db.close();
  });
});
