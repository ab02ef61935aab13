// Class channels on a laptop: the membership ops it holds (statements, kept and applied like the
// school's directory), the channel's state folded from them, and the epoch keys. A channel is a
// conversation whose id is the channel id; its member list (LocalState.conversations) follows the
// fold, and each message is sealed once, with the key of the current member list (model/channel.ts).
import type Database from "better-sqlite3";
import {
  ChannelError, MAX_CHANNEL_MEMBERS, channelMemberLists, decodeOp, memberListKey, inEpochSegments, channelSecretFrom, channelStatement, chooseChannelKey, conversationKeyId, equalBytes, foldChannel,
  fromHex, isChannelStatement, newChannelOps, newConversationKey, opId, encodeOp, readChannelStatement, sealEnvelope, sealKey, sha256, toHex,
  type ChannelAction, type ChannelMemberCard, type ChannelOp, type ChannelState, type Envelope, type HeldOp,
} from "@pigeon/model";
import type { MailboxCore } from "./core.js";
import { statementCache } from "../statements.js";
import type { ConversationKey } from "../local-state.js";
import { MailboxError } from "./types.js";
import { storable, type HeldEnvelope } from "../envelope-store.js";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS channels (
  id BLOB PRIMARY KEY,
  secret BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS channel_ops (
  channel BLOB NOT NULL,
  op BLOB NOT NULL,
  envelope BLOB NOT NULL,
  bytes BLOB NOT NULL,
  depth INTEGER NOT NULL,
  PRIMARY KEY (channel, op)
) WITHOUT ROWID;
`;

export interface ChannelMemberView {
  address: string;
  admin: boolean;
  owner: boolean;
}

export interface ChannelView {
  /** Hex channel id (= its conversation id). */
  id: string;
  title: string;
  owner: string;
  closed: boolean;
  epoch: number;
  members: ChannelMemberView[];
  /** Am I in it (a removed member still sees the channel, and what was written while they were in). */
  member: boolean;
  admin: boolean;
  /** Membership changes held but not in force, each with why (a student's forged removal, ...). */
  refused: { by: string; reason: string }[];
}

export class Channels {
  private readonly db: Database.Database;
  /** Prepared once: preparing `secret`'s query per call was 2 % of a node's time in bench:node. */
  private readonly stmt: ReturnType<typeof statementCache>;
  private readonly folded = new Map<string, ChannelState | null>();
  private readonly lists = new Map<string, Set<string> | undefined>();
  /** Opens whatever waited for a channel's membership or keys (set by the mailbox: Opening). */
  reopen: (conv: Uint8Array) => Promise<void> = async () => {};
  /** May this person own a channel? (the school's "no student groups" rule; set by the mailbox) */
  mayOwn: (owner: Uint8Array) => boolean = () => true;

  constructor(private readonly core: MailboxCore) {
    this.db = core.state.db;
    this.db.exec(SCHEMA);
    this.stmt = statementCache(this.db);
    core.onRollback(() => {
      // folded from ops a failed group commit did not keep
      this.folded.clear();
      this.lists.clear();
    });
  }

  private secret(id: Uint8Array): Uint8Array | undefined {
    const b = this.stmt(`SELECT secret FROM channels WHERE id = ?`).pluck().get(id) as Buffer | undefined;
    return b && new Uint8Array(b);
  }

  isChannel(conv: Uint8Array): boolean {
    return this.secret(conv) !== undefined;
  }

  ids(): Uint8Array[] {
    return (this.stmt(`SELECT id FROM channels`).pluck().all() as Buffer[]).map((b) => new Uint8Array(b));
  }

  private ops(id: Uint8Array): HeldOp[] {
    // the ops' own bytes are kept here, so the channel outlives its statements' lifetime in the store
    type R = { bytes: Buffer; depth: number };
    const rows = this.stmt(`SELECT bytes, depth FROM channel_ops WHERE channel = ?`).all(id) as R[];
    return rows.map((r) => ({ ...decodeOp(new Uint8Array(r.bytes)), id: toHex(opId(new Uint8Array(r.bytes))), depth: r.depth }));
  }

  /** The channel as folded from every op held (cached until an op arrives). */
  state(id: Uint8Array): ChannelState | null {
    const k = toHex(id);
    if (!this.folded.has(k)) this.folded.set(k, this.secret(id) ? foldChannel(this.ops(id), { mayOwn: this.mayOwn }) : null);
    return this.folded.get(k)!;
  }

  // ---- what receiving and opening ask ----

  /** A membership statement this laptop keeps: of a channel it is in, or an add that seals the secret to it. */
  follows(env: Envelope): boolean {
    if (!isChannelStatement(env)) return false;
    if (this.secret(env.conversation)) return true;
    try {
      return channelSecretFrom(env, this.sealingSecrets()) !== null;
    } catch {
      return false;
    }
  }

  private sealingSecrets(): Uint8Array[] {
    const id = this.core.identity;
    return [id.sealing.secretKey, ...(id.previousSealing ?? []).map((k) => k.secretKey)];
  }

  /** The admission context for a channel's envelopes (undefined for other conversations). */
  admissionContext(conv: Uint8Array) {
    if (!this.secret(conv)) return undefined;
    const st = this.state(conv);
    const ever = new Set<string>();
    for (const o of st ? this.ops(conv) : []) {
      if (o.action.type === "add") for (const m of o.action.members) ever.add(toHex(m.key));
      ever.add(toHex(o.author));
    }
    return {
      known: st !== null && st.members.length > 0,
      everMember: (p: Uint8Array) => ever.has(toHex(p)),
      wasMemberList: (people: Uint8Array[]) => {
        const lists = this.memberLists(conv);
        return !lists || lists.has(memberListKey(people));
      },
      keyMembers: (keyIdHex: string) => this.keyMembers(conv, keyIdHex),
    };
  }

  /** Every member list the channel had (channelMemberLists), cached with the fold until an op arrives. */
  private memberLists(conv: Uint8Array): Set<string> | undefined {
    const k = toHex(conv);
    if (!this.lists.has(k)) {
      const lists = channelMemberLists(this.ops(conv), { mayOwn: this.mayOwn, folded: this.state(conv) });
      if (!lists) this.core.log.warn(`channel ${k.slice(0, 12)}: too many ways its ops could have been seen apart to check its keys' member lists; keys are taken as before`);
      this.lists.set(k, lists);
    }
    return this.lists.get(k);
  }

  /** The people a key was sealed to (author and recipients of its key envelope). */
  private keyMembers(conv: Uint8Array, keyIdHex: string): Uint8Array[] | undefined {
    const k = this.core.state.keys(conv).find((x) => toHex(x.keyId) === keyIdHex);
    const env = k && this.core.envelopes.get(k.envelope);
    return env ? [env.author, ...env.recipients] : undefined;
  }

  /** Takes one membership statement (stored already); returns whether it was taken. */
  async apply(env: Envelope): Promise<boolean> {
    const { core } = this;
    const conv = env.conversation;
    let secret = this.secret(conv);
    try {
      if (!secret) {
        const s = channelSecretFrom(env, this.sealingSecrets());
        if (!s) return false;
        secret = s;
        this.stmt(`INSERT OR IGNORE INTO channels (id, secret) VALUES (?, ?)`).run(conv, s);
      }
      const op = readChannelStatement(env, secret);
      this.db
        .prepare(`INSERT OR IGNORE INTO channel_ops (channel, op, envelope, bytes, depth) VALUES (?, ?, ?, ?, ?)`)
        .run(conv, fromHex(op.id), env.id, op.bytes, op.depth);
    } catch (e) {
      if (!(e instanceof ChannelError)) throw e;
      core.log.warn(`refused a channel membership change ${toHex(env.id).slice(0, 12)} from ${core.addressOf(env.author)}: ${e.reason}`);
      core.state.markOpened(env.id, conv, "rejected", core.now(), `membership change: ${e.reason}`);
      return false;
    }
    core.state.markOpened(env.id, conv, "applied", core.now());
    // what this laptop carried of the channel before it could read it is now its own
    for (const id of core.envelopes.conversationEnvelopes(conv)) {
      if (core.envelopes.isCarried(id)) core.envelopes.adopt(id);
      if (equalBytes(id, env.id) || core.state.openedStatus(id) !== undefined) continue;
      const other = core.envelopes.get(id);
      if (other && isChannelStatement(other)) await this.apply(other);
    }
    this.changed(conv);
    await this.reopen(conv);
    return true;
  }

  /** After an op: the member list conversations use, names for members never met, views refreshed. */
  private changed(conv: Uint8Array): void {
    const { core } = this;
    this.folded.delete(toHex(conv));
    this.lists.delete(toHex(conv));
    const st = this.state(conv);
    if (!st) return;
    const keys = st.members.map((m) => m.key);
    // a member removed keeps the channel in their list (what they read stays), with themselves only
    core.state.setMembers(conv, keys.length && keys.some((k) => equalBytes(k, core.me)) ? keys : [core.me, ...keys.filter((k) => !equalBytes(k, core.me))]);
    for (const m of st.members) {
      if (equalBytes(m.key, core.me) || core.state.contact(m.key) || !m.name) continue;
      core.state.rememberContact({ name: m.name, home: m.home, signPublicKey: m.key, sealPublicKey: m.sealKey }, "channel", core.now());
    }
    core.events.emit("changed");
  }

  // ---- what the user does ----

  private writeOps(ops: ChannelOp[], secret: Uint8Array, newcomers: (o: ChannelOp) => Uint8Array[]): void {
    const { core } = this;
    const st = ops[0]!.action.type === "create" ? null : this.state(ops[0]!.channel);
    let depth = st ? 1 + Math.max(0, ...st.heads.map((h) => this.depthOf(ops[0]!.channel, h))) : 0;
    for (const op of ops) {
      const env = channelStatement(core.identity, op, secret, depth++, newcomers(op), core.now());
      // sealed (envelope version 3) to everyone in the channel before or after the change (a removed
      // child learns of it too): carriers see no author, no channel, only a size, an hour and locks
      const readers = new Map<string, Uint8Array>();
      for (const m of st?.members ?? []) readers.set(toHex(m.key), core.state.contact(m.key)?.sealPublicKey ?? m.sealKey);
      if (op.action.type === "add") for (const m of op.action.members) readers.set(toHex(m.key), m.sealKey);
      readers.delete(toHex(core.me));
      const held = this.sealStatement(env, [...readers.values()]);
      this.stmt(`INSERT OR IGNORE INTO channels (id, secret) VALUES (?, ?)`).run(op.channel, secret);
      this.db
        .prepare(`INSERT OR IGNORE INTO channel_ops (channel, op, envelope, bytes, depth) VALUES (?, ?, ?, ?, ?)`)
        .run(op.channel, opId(encodeOp(op)), held.id, encodeOp(op), depth - 1);
      core.state.markOpened(held.id, op.channel, "applied", core.now());
    }
    this.changed(ops[0]!.channel);
  }

  /** Wraps a signed membership statement (ours or another admin's) in a sealed envelope to `sealKeys` and stores it. */
  private sealStatement(env: Envelope, sealKeys: Uint8Array[]): HeldEnvelope {
    const sealed = sealEnvelope(this.core.identity.sealing, env, sealKeys);
    const held: HeldEnvelope = { ...env, id: sealed.id, sealed: sealed.bytes };
    this.core.storeRow(storable(held));
    return held;
  }

  /**
   * Newcomers cannot open the statements sealed before they were added, yet they need every op to
   * fold the channel: the admin who adds them seals each op they hold once more, to the newcomers.
   */
  private handOver(channel: Uint8Array, sealKeys: Uint8Array[], except: Uint8Array): void {
    if (sealKeys.length === 0) return;
    const { core } = this;
    const rows = this.db.prepare(`SELECT envelope FROM channel_ops WHERE channel = ? ORDER BY depth`).pluck().all(channel) as Buffer[];
    const done = new Set<string>();
    for (const id of rows) {
      const env = core.envelopes.get(new Uint8Array(id));
      if (!env || equalBytes(env.id, except)) continue;
      // the signed statement inside is what counts: one wrap of each for the newcomers
      const inner = toHex(sha256(env.bytes));
      if (done.has(inner)) continue;
      done.add(inner);
      const { sealed: _outer, ...plain } = env;
      const wrapped = this.sealStatement(plain, sealKeys);
      core.state.markOpened(wrapped.id, channel, "applied", core.now());
    }
  }

  private depthOf(channel: Uint8Array, opHex: string): number {
    return (this.stmt(`SELECT depth FROM channel_ops WHERE channel = ? AND op = ?`).pluck().get(channel, fromHex(opHex)) as number | undefined) ?? 0;
  }

  create(title: string): Promise<ChannelView> {
    const { core } = this;
    return core.serial(async () => {
      if (!this.mayOwn(core.me)) throw new MailboxError("bad-input", "your school does not allow students to start groups");
      let made: { secret: Uint8Array; ops: ChannelOp[] };
      try {
        made = newChannelOps(core.identity, title, core.now());
      } catch (e) {
        if (e instanceof ChannelError) throw new MailboxError("bad-input", e.reason);
        throw e;
      }
      if (this.byTitle(title)) throw new MailboxError("bad-input", `you already have a channel called "${title}"`);
      this.writeOps(made.ops, made.secret, () => [core.identity.sealing.publicKey]);
      return this.view(made.ops[0]!.channel);
    });
  }

  /** A channel by its name (or its hex id or the start of it: the web app sends the whole id), among those this laptop knows. */
  find(ref: string): Uint8Array {
    const byTitle = this.byTitle(ref);
    if (byTitle) return byTitle;
    const matches = /^[0-9a-f]{6,64}$/.test(ref) ? this.ids().filter((id) => toHex(id).startsWith(ref)) : [];
    if (matches.length === 1) return matches[0]!;
    throw new MailboxError("not-found", `no channel called "${ref}"`);
  }

  private byTitle(title: string): Uint8Array | undefined {
    const found = this.ids().filter((id) => this.state(id)?.title === title);
    // two channels of one name (from two teachers): the one this person owns, else the first
    return found.find((id) => equalBytes(this.state(id)!.owner, this.core.me)) ?? found[0];
  }

  /** Adds, removes, names admins, closes: one signed op on top of everything this laptop holds. */
  change(ref: string, action: ChannelAction): Promise<ChannelView> {
    const { core } = this;
    return core.serial(async () => {
      const id = this.find(ref);
      const st = this.state(id)!;
      const me = st.members.find((m) => equalBytes(m.key, core.me));
      if (!me?.admin) throw new MailboxError("bad-input", `only the owner and admins of "${st.title}" change who is in it`);
      if (st.closed) throw new MailboxError("bad-input", `"${st.title}" is closed`);
      if (!me.owner && (action.type === "admin" || action.type === "close"))
        throw new MailboxError("bad-input", `only the owner of "${st.title}" ${action.type === "close" ? "closes it" : "names admins"}`);
      if (action.type === "add") {
        action = { type: "add", members: action.members.filter((m) => !st.members.some((x) => equalBytes(x.key, m.key))) };
        if (action.members.length === 0) return this.view(id);
        if (st.members.length + action.members.length > MAX_CHANNEL_MEMBERS)
          throw new MailboxError("bad-input", `a channel has at most ${MAX_CHANNEL_MEMBERS} members`);
      }
      if (action.type === "remove") {
        action = { type: "remove", members: action.members.filter((k) => st.members.some((x) => equalBytes(x.key, k))) };
        if (action.members.length === 0) return this.view(id);
        if (action.members.some((k) => equalBytes(k, st.owner))) throw new MailboxError("bad-input", "the owner cannot be removed");
        if (!me.owner && action.members.some((k) => st.members.some((x) => x.admin && equalBytes(x.key, k))))
          throw new MailboxError("bad-input", "only the owner removes an admin");
      }
      const op: ChannelOp = { channel: id, author: core.me, at: core.now(), parents: st.heads.map(fromHex), action };
      const add = action.type === "add" ? action.members : [];
      this.writeOps([op], this.secret(id)!, () => add.map((m) => m.sealKey));
      const mine = this.db.prepare(`SELECT envelope FROM channel_ops WHERE channel = ? AND op = ?`).pluck().get(id, opId(encodeOp(op))) as Buffer;
      this.handOver(id, add.map((m) => m.sealKey), new Uint8Array(mine));
      return this.view(id);
    });
  }

  /** A member's card for an add: from the people this laptop knows, or the school's directory. */
  card(person: { signPublicKey: Uint8Array; sealPublicKey: Uint8Array; name: string; home: string }): ChannelMemberCard {
    return { key: person.signPublicKey, sealKey: person.sealPublicKey, name: person.name, home: person.home };
  }

  // ---- sealing ----

  /**
   * The key the next change of this channel is sealed with, and to whom: the key of the current
   * member list, made now (a key envelope to every other member) if no one made one yet. Called
   * inside serial().
   */
  sealing(conv: Uint8Array, segment?: number): { key: ConversationKey; recipients: Uint8Array[] } | undefined {
    const { core } = this;
    if (segment !== undefined) {
      // receipts in an epoch's document: with that epoch's key, to the people it was sealed to
      const k = core.state.keys(conv).find((x) => inEpochSegments(segment, x.keyId));
      const members = k && this.keyMembers(conv, toHex(k.keyId));
      if (!k || !members) return undefined;
      return { key: k, recipients: members.filter((m) => !equalBytes(m, core.me)) };
    }
    const st = this.state(conv);
    if (!st || st.members.length === 0) throw new MailboxError("not-found", "this laptop does not know the channel's members yet");
    if (!st.members.some((m) => equalBytes(m.key, core.me))) throw new MailboxError("bad-input", `you are no longer in "${st.title}"`);
    const keys = core.state.keys(conv);
    const epochKeys = keys.flatMap((k) => {
      const members = this.keyMembers(conv, toHex(k.keyId));
      return members ? [{ keyId: k.keyId, members }] : [];
    });
    const chosen = chooseChannelKey(st, epochKeys);
    const recipients = st.members.map((m) => m.key).filter((k) => !equalBytes(k, core.me));
    if (chosen) return { key: keys.find((k) => equalBytes(k.keyId, chosen.keyId))!, recipients };
    const key = newConversationKey();
    const cards = st.members.filter((m) => !equalBytes(m.key, core.me)).map((m) => ({
      signPublicKey: m.key, sealPublicKey: core.state.contact(m.key)?.sealPublicKey ?? m.sealKey,
    }));
    const env = sealKey(core.identity, { conversation: conv, recipients: cards, created: core.now(), lifetime: core.lifetime }, key);
    // sealed (envelope version 3) to the same keys the conversation key is boxed to
    core.storeOwn(env, cards.map((c) => c.sealPublicKey));
    const k = { keyId: conversationKeyId(key), key, envelope: env.id };
    core.state.batch(() => {
      core.state.addKey(conv, k);
      core.state.markOpened(env.id, conv, "applied", core.now());
    });
    return { key: k, recipients };
  }

  // ---- views ----

  view(id: Uint8Array): ChannelView {
    const { core } = this;
    const st = this.state(id);
    if (!st) throw new MailboxError("not-found", "unknown channel");
    const me = st.members.find((m) => equalBytes(m.key, core.me));
    return {
      id: toHex(id), title: st.title, owner: core.addressOf(st.owner), closed: st.closed, epoch: st.epoch,
      members: st.members.map((m) => ({ address: core.addressOf(m.key), admin: m.admin, owner: m.owner })),
      member: me !== undefined, admin: me?.admin ?? false,
      refused: st.refused.map((r) => {
        const op = this.ops(id).find((o) => o.id === r.id);
        return { by: op ? core.addressOf(op.author) : "unknown", reason: r.reason };
      }),
    };
  }

  list(): ChannelView[] {
    return this.ids().filter((id) => this.state(id)).map((id) => this.view(id)).sort((a, b) => (a.title < b.title ? -1 : 1));
  }
}
