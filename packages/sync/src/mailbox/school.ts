// The school, as this laptop knows it. A laptop enrolled with a token (decodeEnrolment) knows its
// school's key and directory key, keeps every directory entry the school signed (statement envelopes
// under the directory's topic, taken from whoever carries them), folds them into the directory, and
// applies them: revoked devices and people are refused, the school's policy is kept, and every person
// shown is shown with what the school says of them (vouched, not vouched, an impostor, revoked).
// A school server (a node given the school key) also writes entries: enrol, revoke, policy.
//
// Durable in the mailbox's database: the enrolment (school key, directory key, this laptop's token),
// each entry's sealed bytes (refolded when the mailbox opens), and the count of messages the policy
// dropped. The rules of the directory itself are model/school.ts.
import {
  DirectoryError, DirectoryState, checkSchoolWord, decodeEnrolment, directoryStatement, directoryTopic, encodeEnrolment, encodeRelayGrant,
  equalBytes, fingerprint, formatAddress, issueRelayCertificate, openSignedEntry, signFederation, type FederationEntry,
  isDirectoryStatement, openEntry, readDirectoryStatement, schoolLinkSecret, toHex, validClass, validName, vouch, EnvelopeKind,
  type Address, type ContactCard, type DirectoryEntry, type EnrolEntry, type Envelope, type PolicyEntry, type RevokeDeviceEntry, type RevokePersonEntry,
  type Role, type SchoolKey, parseGatewayRules, type GatewayRules, type MailRulesEntry,
} from "@pigeon/model";
import { prepared } from "../statements.js";
import type { MailboxCore } from "./core.js";
import { MailboxError } from "./types.js";

const SCHEMA = `
-- the school this laptop belongs to (one at most): its keys, and this laptop's enrolment token
-- (NULL on the school server, which holds the school key itself)
CREATE TABLE IF NOT EXISTS school (
  one INTEGER PRIMARY KEY CHECK (one = 1),
  home TEXT NOT NULL,
  school_key BLOB NOT NULL,
  directory_key BLOB NOT NULL,
  token TEXT,
  at INTEGER NOT NULL
);
-- every directory entry taken, sealed as it travelled (opened and folded again when the mailbox opens)
CREATE TABLE IF NOT EXISTS school_entries (
  envelope BLOB PRIMARY KEY,
  serial INTEGER NOT NULL,
  sealed BLOB NOT NULL,
  at INTEGER NOT NULL
) WITHOUT ROWID;
-- the school's word on the cards of other villages' people (model/school.ts checkSchoolWord), as the
-- card carried it; checked again against the federation in force each time it is shown
CREATE TABLE IF NOT EXISTS village_words (
  person_key BLOB PRIMARY KEY,
  word BLOB NOT NULL,
  at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS school_counts (
  what TEXT PRIMARY KEY,
  n INTEGER NOT NULL
) WITHOUT ROWID;
`;

/** What the school says of a person, as every view shows it. */
export type VouchView =
  | { status: "vouched"; school: string; name: string; class: string; role: Role }
  | {
      status: "not-vouched" | "impostor" | "revoked";
      school: string;
      reason: string;
      /** How this laptop knows them otherwise: met (nearby), card, accepted (a request), introduced (their own claim). */
      known?: string;
    };

export interface SchoolMember {
  address: string;
  name: string;
  class: string;
  role: Role;
  fingerprint: string;
  personKey: string;
  serial: number;
}

export interface SchoolView {
  home: string;
  /** The school's public key (hex) and its fingerprint. */
  schoolKey: string;
  fingerprint: string;
  /** This node holds the school key (it writes the directory). */
  server: boolean;
  /** What the directory says of this laptop's own person (enrolled laptops). */
  me?: VouchView;
  /** Directory entries held here, and the highest serial among them. */
  entries: number;
  maxSerial: number;
  members: number;
  onlyDirectory: boolean;
  /** Messages dropped because of the "only the directory" policy. */
  dropped: number;
}

interface Joined {
  home: string;
  schoolKey: Uint8Array;
  directoryKey: Uint8Array;
  /** This laptop's own enrolment (from its token); undefined on the school server. */
  own?: EnrolEntry;
}

export class School {
  /**
   * Called when the school revokes another device of this laptop's own person (the mailbox then has
   * the person's first device revoke it in the keyring too, so it loses the person's sealing key).
   */
  onOwnDeviceRevoked: ((deviceKey: Uint8Array) => void) | undefined;
  private joined: Joined | undefined;
  private dir: DirectoryState | undefined;

  constructor(private readonly core: MailboxCore, private readonly server?: SchoolKey) {
    core.state.db.exec(SCHEMA);
    const row = this.row();
    if (server) {
      if (row && !equalBytes(new Uint8Array(row.school_key), server.signing.publicKey))
        throw new MailboxError("bad-input", `this data directory belongs to the school ${row.home} (another school key); a school server keeps its own`);
      if (!row)
        core.state.db
          .prepare(`INSERT INTO school (one, home, school_key, directory_key, token, at) VALUES (1, ?, ?, ?, NULL, ?)`)
          .run(server.home, server.signing.publicKey, server.directoryKey, core.now());
    }
    this.load();
  }

  private row(): { home: string; school_key: Buffer; directory_key: Buffer; token: string | null } | undefined {
    return this.core.state.db.prepare(`SELECT home, school_key, directory_key, token FROM school WHERE one = 1`).get() as
      | { home: string; school_key: Buffer; directory_key: Buffer; token: string | null }
      | undefined;
  }

  /** Refolds the directory from the entries kept, then takes school statements stored but never applied (a crash). */
  private load(): void {
    const { core } = this;
    const row = this.row();
    if (!row) return;
    const joined: Joined = { home: row.home, schoolKey: new Uint8Array(row.school_key), directoryKey: new Uint8Array(row.directory_key) };
    const dir = new DirectoryState(row.home);
    if (row.token) {
      try {
        const e = decodeEnrolment(row.token);
        joined.own = e.entry;
        dir.add(e.entry);
      } catch (e) {
        core.log.warn(`this laptop's enrolment token no longer reads (${(e as Error).message}); enrol again with a new token`);
      }
    }
    const rows = core.state.db.prepare(`SELECT sealed FROM school_entries ORDER BY serial`).pluck().all() as Buffer[];
    for (const sealed of rows) {
      try {
        dir.add(openEntry(new Uint8Array(sealed), joined.schoolKey, joined.directoryKey));
      } catch (e) {
        core.log.warn(`a stored directory entry no longer opens (${(e as Error).message}); skipped`);
      }
    }
    this.joined = joined;
    this.dir = dir;
    this.catchUp();
  }

  /** Applies the school's statements that are in the store but not among the entries (a crash, or carried before enrolment). */
  private catchUp(): void {
    const { core } = this;
    if (!this.joined) return;
    for (const id of core.envelopes.conversationEnvelopes(directoryTopic(this.joined.schoolKey))) {
      if (this.hasEntry(id) || core.state.openedStatus(id) === "rejected") continue;
      const env = core.envelopes.get(id);
      if (!env || !isDirectoryStatement(env, this.joined.schoolKey)) continue;
      // carried before this laptop was enrolled: kept as its own from now on (not evicted, passed on)
      if (core.envelopes.isCarried(id)) core.envelopes.adopt(id);
      this.apply(env);
    }
  }

  private hasEntry(envelope: Uint8Array): boolean {
    return prepared(this.core.state.db, `SELECT 1 FROM school_entries WHERE envelope = ?`).get(envelope) !== undefined;
  }

  // ---- what receiving asks ----

  /** A statement this laptop keeps and applies (its school's directory), not only carries. */
  /** The key of the school this laptop joined (it certifies its village's relay point). */
  schoolKey(): Uint8Array | undefined {
    return this.joined?.schoolKey;
  }

  follows(env: Envelope): boolean {
    return !!this.joined && env.kind === EnvelopeKind.Statement && equalBytes(env.author, this.joined.schoolKey);
  }

  /**
   * Why the school's laptops refuse an envelope at the door, if they do: its author was revoked by the
   * school, or (on an enrolled laptop of a school with the "only the directory" policy) it is a
   * message for this user from someone the directory does not vouch for. `drop` marks the latter,
   * which `pigeon status` counts.
   */
  refusal(env: Envelope, forMe: boolean): { reason: string; drop?: true } | undefined {
    const dir = this.dir;
    if (!dir || equalBytes(env.author, this.core.me)) return undefined;
    if (dir.isPersonRevoked(env.author)) {
      const found = dir.lookup(env.author);
      return { reason: `its author's person was ${found.status === "not-vouched" ? found.reason : "revoked by the school"}` };
    }
    if (forMe && this.joined?.own && dir.onlyDirectory && (env.kind === EnvelopeKind.Change || env.kind === EnvelopeKind.Key)) {
      if (dir.lookup(env.author, this.core.now()).status !== "vouched")
        return { reason: `${dir.home}'s policy takes messages only from people its directory vouches for`, drop: true };
    }
    return undefined;
  }

  /** Counts a message dropped by the policy (inside the caller's transaction). */
  countDropped(): void {
    this.core.state.db.prepare(`INSERT INTO school_counts (what, n) VALUES ('dropped', 1) ON CONFLICT(what) DO UPDATE SET n = n + 1`).run();
  }

  /**
   * Applies a statement of this laptop's school: opened, checked, added to the directory and kept; its
   * revocations take effect. A bad one is refused with the reason (logged, recorded as rejected) and
   * changes nothing else. Returns whether it was taken.
   */
  apply(env: Envelope): boolean {
    const { core } = this;
    const joined = this.joined;
    const dir = this.dir;
    if (!joined || !dir) return false;
    if (this.hasEntry(env.id)) return true;
    let entry: DirectoryEntry;
    let added: boolean;
    try {
      entry = readDirectoryStatement(env, joined.schoolKey, joined.directoryKey);
      added = dir.add(entry);
    } catch (e) {
      const reason = e instanceof DirectoryError ? e.message : String((e as Error).message ?? e);
      core.log.warn(`refused a directory entry ${toHex(env.id).slice(0, 12)} of ${joined.home}: ${reason}`);
      core.state.markOpened(env.id, env.conversation, "rejected", core.now(), `directory entry: ${reason}`);
      return false;
    }
    core.state.db
      .prepare(`INSERT OR IGNORE INTO school_entries (envelope, serial, sealed, at) VALUES (?, ?, ?, ?)`)
      .run(env.id, entry.serial, env.payload.subarray(1), core.now());
    if (added) this.takeEffect(entry);
    core.events.emit("changed");
    return true;
  }

  private takeEffect(entry: DirectoryEntry): void {
    const { core } = this;
    if (entry.type === "revoke-device") {
      if (core.state.revokeDevice(entry.deviceKey, entry.personKey, "revoked by the school", core.now())) {
        const mine = equalBytes(entry.deviceKey, core.identity.signing.publicKey);
        if (mine) core.log.warn("the school revoked this laptop: what it signs is refused by the school's laptops");
        else core.log.info(`the school revoked a laptop of ${core.addressOf(entry.personKey)}: what it signs is refused from now on`);
        if (!mine && equalBytes(entry.personKey, core.me)) this.onOwnDeviceRevoked?.(entry.deviceKey);
      }
    } else if (entry.type === "revoke-person") {
      core.log.info(`the school revoked ${core.addressOf(entry.personKey)}: what they send is refused from now on`);
    } else if (entry.type === "mail-rules") {
      core.log.info(`${entry.home}'s e-mail rules: new rules (directory entry ${entry.serial})`);
    } else if (entry.type === "federation") {
      core.log.info(`${entry.home} exchanges mail with ${[...entry.villages.keys()].join(", ") || "no other village"} (directory entry ${entry.serial})`);
    } else if (entry.type === "policy") {
      core.log.info(`${entry.home}'s policy: ${entry.onlyDirectory ? "messages only from people the directory vouches for" : "messages from anyone (strangers' go to requests)"}`);
    }
  }

  // ---- what views ask ----

  /**
   * The school's link secret, when this laptop belongs to a school (or is its server): schoolmates
   * prove it to each other in the handshake, and show who they are to no one else by default.
   */
  linkSecrets(): Uint8Array[] {
    const key = this.joined?.directoryKey;
    if (!key) return [];
    if (!this.linkSecret || this.linkSecret.of !== key) this.linkSecret = { of: key, secret: schoolLinkSecret(key) };
    return [this.linkSecret.secret];
  }

  private linkSecret: { of: Uint8Array; secret: Uint8Array } | undefined;

  /** The directory (read it, do not add to it), when this laptop belongs to a school. */
  directory(): DirectoryState | undefined {
    return this.dir;
  }

  /** What the school says of a person, by the name they call themselves here; undefined without a school. */
  vouchFor(personKey: Uint8Array): VouchView | undefined {
    const dir = this.dir;
    if (!dir) return undefined;
    const { core } = this;
    const mine = equalBytes(personKey, core.me);
    const c = mine ? undefined : core.state.contact(personKey);
    if (c && c.home !== dir.home) return this.otherVillage(dir, personKey, c);
    const said = mine
      ? vouch(dir, personKey, core.identity.name, core.identity.home, core.now())
      : c
        ? vouch(dir, personKey, c.name, c.home, core.now())
        : dir.lookup(personKey, core.now());
    if (said.status === "vouched") return { status: "vouched", school: dir.home, name: said.entry.name, class: said.entry.class, role: said.entry.role };
    const status = dir.isPersonRevoked(personKey) ? "revoked" : said.status;
    return { status, school: dir.home, reason: said.reason, ...(c ? { known: c.how } : {}) };
  }

  /** What otherVillage said of each person, until the federation, their name or the enrolment's end changes it. */
  private readonly words = new Map<string, { federation: number; name: string; until?: number; view: VouchView }>();

  /**
   * What another village's school says of a contact who calls themselves `c.name@c.home`: checked
   * against the word of that school their card carried, with the key this laptop's school lists for
   * that village. A village of the federation whose school gave no word (or a word that does not hold)
   * is shown as not vouched and the address always carries the fingerprint (status "impostor").
   */
  private otherVillage(dir: DirectoryState, personKey: Uint8Array, c: { name: string; home: string; how: string }): VouchView {
    const fed = dir.federation();
    const schoolKey = fed?.villages.get(c.home);
    if (!fed || !schoolKey)
      return { status: "not-vouched", school: c.home, reason: `${c.home} is not a village ${dir.home} exchanges mail with, so no school's word about them is known`, known: c.how };
    const hex = toHex(personKey);
    const cached = this.words.get(hex);
    if (cached && cached.federation === fed.serial && cached.name === c.name && !(cached.until !== undefined && this.core.now() > cached.until)) return cached.view;
    const word = this.core.state.db.prepare(`SELECT word FROM village_words WHERE person_key = ?`).pluck().get(personKey) as Buffer | undefined;
    let view: VouchView;
    let until: number | undefined;
    if (!word) view = { status: "impostor", school: c.home, reason: `their card carried no word of ${c.home}'s school`, known: c.how };
    else {
      try {
        const e = checkSchoolWord(new Uint8Array(word), { name: c.name, home: c.home, signPublicKey: personKey }, schoolKey, this.core.now());
        view = { status: "vouched", school: c.home, name: e.name, class: e.class, role: e.role };
        until = e.until;
      } catch (err) {
        view = { status: "impostor", school: c.home, reason: (err as Error).message, known: c.how };
      }
    }
    this.words.set(hex, { federation: fed.serial, name: c.name, ...(until !== undefined ? { until } : {}), view });
    return view;
  }

  /**
   * Checks a card the user was given before it is believed: a card of a village this laptop's school
   * exchanges mail with must carry that village's school's word for exactly this key and name, or it is
   * refused (a stranger posing as a child of another village). Throws MailboxError("bad-input").
   */
  checkCard(card: ContactCard): void {
    const dir = this.dir;
    if (!dir || card.home === dir.home) return;
    const schoolKey = dir.federation()?.villages.get(card.home);
    if (!schoolKey) return; // a village the school does not know: the card is the child's own trust, shown as not vouched
    const who = formatAddress(card);
    if (!card.schoolWord)
      throw new MailboxError("bad-input", `this card says ${who}, but it carries no word of ${card.home}'s school, so it may be anyone's: ask for the card their laptop shows now (pigeon card) after their school enrolled them`);
    try {
      checkSchoolWord(card.schoolWord, card, schoolKey, this.core.now());
    } catch (e) {
      throw new MailboxError("bad-input", `this card says ${who}, but ${card.home}'s school does not vouch for it: ${(e as Error).message}`);
    }
  }

  /** Keeps the school's word a card carried (after checkCard), for showing the person as their school vouches. */
  keepWord(card: ContactCard): void {
    if (!card.schoolWord || !this.dir || card.home === this.dir.home) return;
    this.core.state.db
      .prepare(`INSERT INTO village_words (person_key, word, at) VALUES (?, ?, ?) ON CONFLICT(person_key) DO UPDATE SET word = excluded.word, at = excluded.at`)
      .run(card.signPublicKey, card.schoolWord, this.core.now());
    this.words.delete(toHex(card.signPublicKey));
  }

  /**
   * This laptop's person's current enrolment as the school signed it, for its card (the school's word
   * that other villages' laptops check); undefined unless the school vouches for them now.
   */
  ownWord(): Uint8Array | undefined {
    const { joined, dir, core } = this;
    if (!joined || !dir) return undefined;
    const said = dir.lookup(core.me, core.now());
    if (said.status !== "vouched") return undefined;
    const token = this.row()?.token;
    if (token) {
      try {
        const e = decodeEnrolment(token);
        if (e.entry.serial === said.entry.serial) return e.signedEntry;
      } catch {
        // read again below from the entries
      }
    }
    for (const sealed of core.state.db.prepare(`SELECT sealed FROM school_entries WHERE serial = ?`).pluck().all(said.entry.serial) as Buffer[]) {
      try {
        const { entry, signed } = openSignedEntry(new Uint8Array(sealed), joined.schoolKey, joined.directoryKey);
        if (entry.type === "enrol" && equalBytes(entry.personKey, core.me)) return signed;
      } catch {
        // refused when it came in; not the word
      }
    }
    return undefined;
  }

  /** This laptop's enrolment token (a paired device of the person gets it in the pairing grant). */
  enrolmentToken(): string | undefined {
    return this.row()?.token ?? undefined;
  }

  /**
   * The card of the person the school enrolled as `name@home`, when this laptop's school is that home
   * and the entry carries a sealing key: everyone of the school can write to them without having met.
   */
  directoryCard(address: Address): ContactCard | undefined {
    const dir = this.dir;
    if (!dir || address.home !== dir.home) return undefined;
    const e = dir.byName(address.name);
    if (!e?.sealKey || equalBytes(e.personKey, this.core.me)) return undefined;
    return { name: e.name, home: e.home, signPublicKey: e.personKey, sealPublicKey: e.sealKey };
  }

  /** The sealing key of a person the directory vouches for now, by their person key. */
  directorySealKey(personKey: Uint8Array): Uint8Array | undefined {
    const said = this.dir?.lookup(personKey, this.core.now());
    return said?.status === "vouched" ? said.entry.sealKey : undefined;
  }

  /** Everyone the directory vouches for (of one class if given), sorted by name. */
  members(className?: string): SchoolMember[] {
    const dir = this.dir;
    if (!dir) throw this.noSchool();
    return dir.members(className).map((e) => ({
      address: `${e.name}@${e.home}`, name: e.name, class: e.class, role: e.role, fingerprint: fingerprint(e.personKey),
      personKey: toHex(e.personKey), serial: e.serial,
    }));
  }

  /** The e-mail gateway's rules in force (signed by the school, from the directory), if any were published. */
  mailRules(): GatewayRules | undefined {
    const e = this.dir?.mailRules();
    return e ? parseGatewayRules(JSON.parse(e.text)) : undefined; // checked when the entry came in
  }

  view(): SchoolView | undefined {
    const { joined, dir } = this;
    if (!joined || !dir) return undefined;
    const db = this.core.state.db;
    return {
      home: joined.home,
      schoolKey: toHex(joined.schoolKey),
      fingerprint: fingerprint(joined.schoolKey),
      server: !!this.server,
      ...(joined.own ? { me: this.vouchFor(this.core.me)! } : {}),
      // this laptop's own entry came in its token, and usually again as a statement
      entries:
        (db.prepare(`SELECT count(*) FROM school_entries`).pluck().get() as number) +
        (joined.own && db.prepare(`SELECT 1 FROM school_entries WHERE serial = ?`).get(joined.own.serial) === undefined ? 1 : 0),
      maxSerial: dir.maxSerial,
      members: dir.members().length,
      onlyDirectory: dir.onlyDirectory,
      dropped: (db.prepare(`SELECT n FROM school_counts WHERE what = 'dropped'`).pluck().get() as number | undefined) ?? 0,
    };
  }

  private noSchool(): MailboxError {
    return new MailboxError("not-found", "this laptop belongs to no school yet (a teacher enrols it at the school server: pigeon enrol TOKEN)");
  }

  // ---- enrolling this laptop ----

  /**
   * Enrols this laptop with the token the school server printed: checks it names this person, keeps
   * the school's keys and this laptop's entry, adopts the school's statements already here, and takes
   * the enrolled name@home (the keys stay). Returns the entry and the address before and after.
   */
  enrol(token: string, opts: { move?: boolean } = {}): Promise<{ entry: EnrolEntry; was: string; address: string; vouch: VouchView; moved?: string }> {
    const { core } = this;
    return core.serial(async () => {
      let e;
      try {
        e = decodeEnrolment(String(token ?? ""));
      } catch (err) {
        throw new MailboxError("bad-input", (err as Error).message);
      }
      if (!equalBytes(e.entry.personKey, core.identity.person))
        throw new MailboxError(
          "bad-input",
          `this token enrols someone else (fingerprint ${fingerprint(e.entry.personKey)}), not ${core.address} (fingerprint ${fingerprint(core.me)}); ` +
            `the school server makes a token from this laptop's own card (pigeon card)`,
        );
      const joined = this.joined;
      const moving = !!joined && !equalBytes(joined.schoolKey, e.schoolPublicKey);
      if (moving && (!opts.move || this.server))
        throw new MailboxError(
          "bad-input",
          `this laptop already belongs to ${joined.home} (school fingerprint ${fingerprint(joined.schoolKey)}); ` +
            `a token of another school key (fingerprint ${fingerprint(e.schoolPublicKey)}) is refused` +
            (this.server ? " (this is a school server)" : `; a child who moved to ${e.home} keeps their keys with: pigeon enrol --move TOKEN`),
        );
      if (moving) this.leave(joined);
      else if (joined?.own && joined.own.serial > e.entry.serial)
        throw new MailboxError("bad-input", `this laptop already has a newer enrolment (entry ${joined.own.serial}; this token is entry ${e.entry.serial})`);
      core.state.db
        .prepare(
          `INSERT INTO school (one, home, school_key, directory_key, token, at) VALUES (1, ?, ?, ?, ?, ?)
           ON CONFLICT(one) DO UPDATE SET home = excluded.home, school_key = excluded.school_key,
             directory_key = excluded.directory_key, token = excluded.token, at = excluded.at`,
        )
        .run(e.home, e.schoolPublicKey, e.directoryKey, String(token).trim(), core.now());
      this.load();
      const was = core.address;
      if (core.identity.name !== e.entry.name || core.identity.home !== e.entry.home) {
        core.identity.name = e.entry.name;
        core.identity.home = e.entry.home;
        core.events.emit("identity", core.identity);
      }
      core.log.info(`enrolled at ${e.home} as ${core.address} (${e.entry.class}, ${e.entry.role})${moving ? `, moved from ${joined.home}` : ""}`);
      core.events.emit("changed");
      return { entry: e.entry, was, address: core.address, vouch: this.vouchFor(core.me)!, ...(moving ? { moved: joined.home } : {}) };
    });
  }

  /**
   * A child who moved villages: the old school's directory goes (its entries, and its statements are
   * only carried from now on, no longer kept as this laptop's own); the person's keys, contacts,
   * buddies and conversations stay, so everyone who knew them still reaches them. The caller writes
   * the new school's row in the same turn.
   */
  private leave(old: Joined): void {
    const { core } = this;
    for (const id of core.envelopes.conversationEnvelopes(directoryTopic(old.schoolKey))) core.envelopes.disown(id);
    core.state.db.prepare(`DELETE FROM school_entries`).run();
    this.words.clear();
    core.log.info(`left ${old.home} (school fingerprint ${fingerprint(old.schoolKey)}): its directory is no longer this laptop's`);
  }

  // ---- the school server ----

  private serverOnly(): { server: SchoolKey; dir: DirectoryState } {
    if (!this.server || !this.dir) throw new MailboxError("bad-input", "only the school server writes the directory (start it with pigeon start --school HOME)");
    return { server: this.server, dir: this.dir };
  }

  /**
   * Enrols the person of a contact card under a name (unique in the directory), a class and a role,
   * and returns the token for that person's laptop. A name held by another key is refused unless
   * `replace` (a lost first laptop): the old key is revoked and the new one enrolled. Enrolling the
   * same key again with the same name, class and role only prints its token again.
   */
  enrolPerson(card: ContactCard, o: { name?: string; class: string; role: Role; replace?: boolean; until?: number }): Promise<{ entry: EnrolEntry; token: string; replaced?: string; again: boolean }> {
    const { core } = this;
    return core.serial(async () => {
      const { server, dir } = this.serverOnly();
      const name = (o.name ?? card.name).trim().toLowerCase();
      if (!validName(name)) throw new MailboxError("bad-input", `"${name}" cannot be a name: use 1-32 of a-z, 0-9, '.', '_' or '-', starting with a letter or digit`);
      if (!validClass(o.class)) throw new MailboxError("bad-input", `class "${o.class}" is not 1-32 printable characters`);
      if (o.role !== "student" && o.role !== "teacher") throw new MailboxError("bad-input", `role "${String(o.role)}" is neither student nor teacher`);
      const key = card.signPublicKey;
      if (dir.isPersonRevoked(key))
        throw new MailboxError("bad-input", `that person key (fingerprint ${fingerprint(key)}) was revoked by the school; its laptop needs a new identity`);
      const current = dir.lookup(key);
      if (o.until !== undefined && o.until <= core.now()) throw new MailboxError("bad-input", "the enrolment's end is already past");
      if (current.status === "vouched" && current.entry.name === name && current.entry.class === o.class && current.entry.role === o.role && current.entry.until === o.until)
        return { entry: current.entry, token: encodeEnrolment(server, current.entry), again: true };
      const holder = dir.byName(name);
      let replaced: string | undefined;
      if (holder && !equalBytes(holder.personKey, key)) {
        if (!o.replace)
          throw new MailboxError(
            "bad-input",
            `${name}@${dir.home} is already enrolled with another key (fingerprint ${fingerprint(holder.personKey)}); ` +
              `if ${name} lost that laptop, enrol the new one with --replace (the old key is then revoked)`,
          );
        this.publish({ type: "revoke-person", personKey: holder.personKey, reason: `replaced by a new key enrolled as ${name}` });
        replaced = fingerprint(holder.personKey);
      }
      const entry = this.publish({
        type: "enrol", personKey: key, name, class: o.class, role: o.role, sealKey: card.sealPublicKey, ...(o.until !== undefined ? { until: o.until } : {}),
      }) as EnrolEntry;
      return { entry, token: encodeEnrolment(server, entry), again: false, ...(replaced ? { replaced } : {}) };
    });
  }

  /** Revokes a lost or stolen laptop by its device key; `name` says whose it is unless it is a person's first laptop. */
  revokeDevice(deviceKey: Uint8Array, name?: string): Promise<RevokeDeviceEntry> {
    const { core } = this;
    return core.serial(async () => {
      const { dir } = this.serverOnly();
      if (deviceKey.length !== 32) throw new MailboxError("bad-input", "a device key is 64 hexadecimal characters (pigeon whoami --json on that laptop: signPublicKey)");
      if (dir.isDeviceRevoked(deviceKey)) throw new MailboxError("bad-input", "that device is already revoked");
      let personKey: Uint8Array;
      if (name !== undefined) {
        const e = dir.byName(name.trim().toLowerCase());
        if (!e) throw new MailboxError("not-found", `nobody is enrolled as ${name}@${dir.home}`);
        personKey = e.personKey;
      } else if (dir.lookup(deviceKey).status === "vouched" || dir.isPersonRevoked(deviceKey)) {
        personKey = deviceKey; // a person's first laptop signs with the person key itself
      } else {
        throw new MailboxError("bad-input", "that key is not an enrolled person's first laptop; say whose laptop it is with --name NAME");
      }
      return this.publish({ type: "revoke-device", deviceKey, personKey }) as RevokeDeviceEntry;
    });
  }

  /** Revokes a person (a child who left): their laptops' messages are refused by the school's laptops. */
  revokePerson(name: string, reason: string): Promise<RevokePersonEntry> {
    const { core } = this;
    return core.serial(async () => {
      const { dir } = this.serverOnly();
      const e = dir.byName(name.trim().toLowerCase());
      if (!e) throw new MailboxError("not-found", `nobody is enrolled as ${name}@${dir.home}`);
      return this.publish({ type: "revoke-person", personKey: e.personKey, reason: reason.trim() }) as RevokePersonEntry;
    });
  }

  /**
   * Sets the school's policy: only the directory (true), or strangers' messages to requests (false);
   * and whether students may start groups (channels) of their own. A rule not given keeps its value.
   */
  setPolicy(onlyDirectory?: boolean, noStudentGroups?: boolean): Promise<PolicyEntry> {
    const { core } = this;
    return core.serial(async () => {
      const { dir } = this.serverOnly();
      const only = onlyDirectory ?? dir.onlyDirectory;
      const noGroups = noStudentGroups ?? dir.noStudentGroups;
      return this.publish({ type: "policy", onlyDirectory: only, ...(noGroups ? { noStudentGroups: true } : {}) }) as PolicyEntry;
    });
  }

  /**
   * Publishes the e-mail gateway's rules (their JSON text) to every laptop of the school and to the
   * gateway, which takes them without a restart. Their own serial must be newer than the ones in force.
   */
  publishMailRules(text: string): Promise<MailRulesEntry> {
    const { core } = this;
    return core.serial(async () => {
      const { dir } = this.serverOnly();
      let rules: GatewayRules;
      try {
        rules = parseGatewayRules(JSON.parse(text));
      } catch (e) {
        throw new MailboxError("bad-input", (e as Error).message);
      }
      const now = dir.mailRules();
      if (now && parseGatewayRules(JSON.parse(now.text)).serial >= rules.serial)
        throw new MailboxError("bad-input", `e-mail rules ${rules.serial} are not newer than the ones in force (${parseGatewayRules(JSON.parse(now.text)).serial}): raise "serial"`);
      return this.publish({ type: "mail-rules", text }) as MailRulesEntry;
    });
  }

  /**
   * On a school server that is its village's relay point: tells the school's laptops which villages it
   * exchanges mail with, and their schools' keys (a federation entry), when that changed. Returns the
   * entry published, or undefined when the one in force already says so.
   */
  publishFederation(villages: ReadonlyMap<string, Uint8Array>): Promise<FederationEntry | undefined> {
    const { core } = this;
    return core.serial(async () => {
      const { server, dir } = this.serverOnly();
      const want = new Map([...villages].filter(([h]) => h !== server.home));
      const now = dir.federation()?.villages;
      if (now && now.size === want.size && [...want].every(([h, k]) => { const o = now.get(h); return !!o && equalBytes(o, k); })) return undefined;
      return this.publish({ type: "federation", villages: want }) as FederationEntry;
    });
  }

  /**
   * For a relay point on a box of its own: certifies its relay key as the relay point of this school's
   * home and hands it the federation (the villages in force, with `add` added), which the school's
   * laptops are told too. Returns the grant the box starts with (`--relay-grant`), and the villages.
   */
  grantRelayPoint(relayKey: Uint8Array, add: ReadonlyMap<string, Uint8Array>): Promise<{ grant: string; villages: string[] }> {
    const { core } = this;
    return core.serial(async () => {
      const { server, dir } = this.serverOnly();
      if (relayKey.length !== 32) throw new MailboxError("bad-input", "a relay point's key is 32 bytes (the key the relay point printed)");
      if (add.has(server.home)) throw new MailboxError("bad-input", `${server.home} is this school's own village`);
      const villages = new Map(dir.federation()?.villages ?? []);
      for (const [h, k] of add) villages.set(h, k);
      const now = dir.federation()?.villages;
      if (!now || now.size !== villages.size || [...villages].some(([h, k]) => !equalBytes(now.get(h) ?? new Uint8Array(), k)))
        this.publish({ type: "federation", villages });
      const grant = encodeRelayGrant(issueRelayCertificate(server, relayKey), signFederation(server, villages));
      core.log.info(`certified a relay point of ${server.home} (relay key ${toHex(relayKey).slice(0, 12)}), exchanging mail with ${[...villages.keys()].join(", ") || "no other village yet"}`);
      return { grant, villages: [...villages.keys()].sort() };
    });
  }

  /**
   * Signs an entry with the next serial, stores its statement (fsynced) and applies it here; the sync
   * engine offers it to every peer. Throws MailboxError("bad-input") for an entry the model refuses.
   */
  private publish(partial: DistributiveOmit<DirectoryEntry, "home" | "serial" | "at">): DirectoryEntry {
    const { core } = this;
    const { server, dir } = this.serverOnly();
    const now = core.now();
    const entry = { ...partial, home: server.home, serial: dir.maxSerial + 1, at: now } as DirectoryEntry;
    let env: Envelope;
    try {
      env = directoryStatement(server, entry, now);
    } catch (e) {
      throw new MailboxError("bad-input", (e as Error).message);
    }
    core.storeOwn(env);
    this.apply(env);
    core.log.info(`directory entry ${entry.serial} (${entry.type}${entry.type === "enrol" ? ` ${formatAddress(entry)}` : ""}) published`);
    return entry;
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
