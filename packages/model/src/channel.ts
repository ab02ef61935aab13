// Class channels: a conversation with many members, owned by one person (a teacher, or a student
// when the school allows student groups). Who is in it is decided by membership operations, each a
// statement signed by the owner or an admin, which laptops carry like any envelope and fold into one
// answer whatever order they arrive in (docs/channels.md has the rules in words).
//
// Statement envelope (kind 4), author = the person who made the change, signed by their person key:
//   conversation = the channel id | segment = the op's depth (1 + the deepest parent; 0 for create)
//   | no recipients | key id zero
//   payload = u8 type=3 | raw32 box sender (X25519, one-off) | varint n | n x bytes box
//           | raw24 nonce | secretbox(channel secret, op)
//   box i = nacl.box(channel secret, new member i's sealing key): only an add (and the create, for the
//           owner's own devices) carries boxes; everyone already in the channel has the secret.
//   op = u8 version=1 | raw16 channel | raw32 author | varint at (ms, the author's claim)
//      | varint p | p x raw32 parent op id | u8 action | details
//     create 1: raw32 owner | raw16 seed | string title
//     add    2: varint n | n x (raw32 person key | raw32 sealing key | string name | string home)
//     remove 3: varint n | n x raw32 person key
//     admin  4: raw32 person key | u8 (1 = admin, 0 = no longer admin)
//     close  5: (nothing)
//   op id = sha256("pigeon-channel-op-v1" ‖ op)
// The channel id is sha256("pigeon-channel-v1" ‖ owner ‖ seed)[0..16], so the create op proves who
// owns the channel. The channel secret only hides names and the title from carriers; it is not what
// keeps messages from a removed member: messages are sealed with epoch keys (conversation keys sealed
// to exactly one member list, `chooseChannelKey`), and a removed member is never sealed a new one.
import { DecodeError, equalBytes, Reader, toHex, utf8, Writer } from "./bytes.js";
import { CHANNEL_SEGMENTS } from "./conversation.js";
import { boxOpen, boxSeal, generateSealingKeyPair, randomBytes, secretboxOpen, secretboxSeal, sha256 } from "./crypto.js";
import { EnvelopeKind, signEnvelope, verifyEnvelope, type Envelope } from "./envelope.js";
import { holdsPersonKey, validHome, validName, type Identity } from "./identity.js";

export const STATEMENT_CHANNEL = 3;
/** Everyone in a channel, the owner included: every other member is a recipient of each envelope (at most 64). */
export const MAX_CHANNEL_MEMBERS = 64;
export const MAX_TITLE_CHARS = 64;
/** Operations one channel may hold; a laptop refuses more (a hostile admin cannot grow it without end). */
export const MAX_CHANNEL_OPS = 2000;
export const MAX_PARENTS = 16;
export const CHANNEL_LIFETIME_SECONDS = 365 * 24 * 3600;
const OP_VERSION = 1;
const OP_TAG = utf8("pigeon-channel-op-v1");
const NO_KEY = new Uint8Array(8);

export class ChannelError extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = "ChannelError";
  }
}

export interface ChannelMemberCard {
  key: Uint8Array;
  sealKey: Uint8Array;
  name: string;
  home: string;
}

export type ChannelAction =
  | { type: "create"; owner: Uint8Array; seed: Uint8Array; title: string }
  | { type: "add"; members: ChannelMemberCard[] }
  | { type: "remove"; members: Uint8Array[] }
  | { type: "admin"; member: Uint8Array; admin: boolean }
  | { type: "close" };

export interface ChannelOp {
  channel: Uint8Array;
  author: Uint8Array;
  at: number;
  parents: Uint8Array[];
  action: ChannelAction;
}

export interface HeldOp extends ChannelOp {
  /** sha256 of the op's bytes, as hex. */
  id: string;
  /** 0 for the create op, else 1 + the deepest parent. */
  depth: number;
}

const ACTION_CODES = { create: 1, add: 2, remove: 3, admin: 4, close: 5 } as const;

export function channelIdOf(owner: Uint8Array, seed: Uint8Array): Uint8Array {
  return sha256(utf8("pigeon-channel-v1"), owner, seed).subarray(0, 16);
}

function printableTitle(t: string): boolean {
  // eslint-disable-next-line no-control-regex
  return t.length > 0 && t.length <= MAX_TITLE_CHARS && !/[\u0000-\u001f\u007f]/.test(t) && t.trim() === t;
}

export function encodeOp(op: ChannelOp): Uint8Array {
  if (op.channel.length !== 16 || op.author.length !== 32) throw new ChannelError("channel id or author of the wrong length");
  if (op.parents.length > MAX_PARENTS) throw new ChannelError("too many parents");
  const w = new Writer().u8(OP_VERSION).raw(op.channel).raw(op.author).varint(op.at).varint(op.parents.length);
  for (const p of op.parents) w.raw(p);
  const a = op.action;
  w.u8(ACTION_CODES[a.type]);
  if (a.type === "create") {
    if (!printableTitle(a.title)) throw new ChannelError(`a channel's name is 1 to ${MAX_TITLE_CHARS} characters`);
    w.raw(a.owner).raw(a.seed).string(a.title);
  } else if (a.type === "add") {
    if (a.members.length === 0 || a.members.length > MAX_CHANNEL_MEMBERS) throw new ChannelError("an add names 1 to 64 people");
    w.varint(a.members.length);
    for (const m of a.members) w.raw(m.key).raw(m.sealKey).string(m.name).string(m.home);
  } else if (a.type === "remove") {
    if (a.members.length === 0 || a.members.length > MAX_CHANNEL_MEMBERS) throw new ChannelError("a removal names 1 to 64 people");
    w.varint(a.members.length);
    for (const m of a.members) w.raw(m);
  } else if (a.type === "admin") w.raw(a.member).u8(a.admin ? 1 : 0);
  return w.finish();
}

export function decodeOp(bytes: Uint8Array): ChannelOp {
  try {
    const r = new Reader(bytes);
    if (r.u8() !== OP_VERSION) throw new ChannelError("unknown channel op version");
    const channel = r.raw(16).slice();
    const author = r.raw(32).slice();
    const at = r.varint();
    const np = r.varint();
    if (np > MAX_PARENTS) throw new ChannelError("too many parents");
    const parents: Uint8Array[] = [];
    for (let i = 0; i < np; i++) parents.push(r.raw(32).slice());
    const code = r.u8();
    let action: ChannelAction;
    if (code === ACTION_CODES.create) {
      const owner = r.raw(32).slice();
      const seed = r.raw(16).slice();
      const title = r.string(MAX_TITLE_CHARS * 4);
      if (!printableTitle(title)) throw new ChannelError("channel name is not printable or too long");
      action = { type: "create", owner, seed, title };
    } else if (code === ACTION_CODES.add || code === ACTION_CODES.remove) {
      const n = r.varint();
      if (n === 0 || n > MAX_CHANNEL_MEMBERS) throw new ChannelError(`op names ${n} people`);
      if (code === ACTION_CODES.add) {
        const members: ChannelMemberCard[] = [];
        for (let i = 0; i < n; i++) {
          const key = r.raw(32).slice();
          const sealKey = r.raw(32).slice();
          const name = r.string(64);
          const home = r.string(64);
          if (!validName(name) || !validHome(home)) throw new ChannelError("added member has an invalid address");
          members.push({ key, sealKey, name, home });
        }
        action = { type: "add", members };
      } else {
        const members: Uint8Array[] = [];
        for (let i = 0; i < n; i++) members.push(r.raw(32).slice());
        action = { type: "remove", members };
      }
    } else if (code === ACTION_CODES.admin) {
      const member = r.raw(32).slice();
      const flag = r.u8();
      if (flag > 1) throw new ChannelError("admin flag is not 0 or 1");
      action = { type: "admin", member, admin: flag === 1 };
    } else if (code === ACTION_CODES.close) action = { type: "close" };
    else throw new ChannelError(`unknown channel action ${code}`);
    r.end();
    return { channel, author, at, parents, action };
  } catch (e) {
    if (e instanceof DecodeError) throw new ChannelError(`damaged channel op (${e.message})`);
    throw e;
  }
}

export function opId(opBytes: Uint8Array): Uint8Array {
  return sha256(OP_TAG, opBytes);
}

/**
 * Signs one membership op as a statement envelope. `secret` is the channel secret; `newcomers` get
 * it boxed to their sealing keys (the create boxes it to the owner's own sealing key, for the owner's
 * other devices). `depth` is the op's depth (segment), which carriers may use to order statements.
 */
export function channelStatement(
  author: Identity,
  op: ChannelOp,
  secret: Uint8Array,
  depth: number,
  newcomers: Uint8Array[],
  created: number,
): Envelope {
  if (!holdsPersonKey(author)) throw new ChannelError("membership changes are signed on the device holding the person key");
  if (!equalBytes(op.author, author.person)) throw new ChannelError("op author is not the signer");
  const plain = encodeOp(op);
  const sender = generateSealingKeyPair();
  const w = new Writer().u8(STATEMENT_CHANNEL).raw(sender.publicKey).varint(newcomers.length);
  for (const k of newcomers) w.bytes(boxSeal(secret, k, sender.secretKey));
  w.raw(secretboxSeal(secret, plain));
  return signEnvelope(
    author,
    { kind: EnvelopeKind.Statement, conversation: op.channel, segment: depth, recipients: [], created, lifetime: CHANNEL_LIFETIME_SECONDS, keyId: NO_KEY },
    w.finish(),
  );
}

export function isChannelStatement(env: Envelope): boolean {
  return env.kind === EnvelopeKind.Statement && env.payload[0] === STATEMENT_CHANNEL;
}

interface StatementParts {
  sender: Uint8Array;
  boxes: Uint8Array[];
  sealed: Uint8Array;
}

function statementParts(env: Envelope): StatementParts {
  if (env.kind !== EnvelopeKind.Statement) throw new ChannelError("not a statement");
  if (env.device) throw new ChannelError("membership change not signed by the person key");
  if (env.recipients.length !== 0) throw new ChannelError("a membership change names no recipients");
  try {
    const r = new Reader(env.payload);
    if (r.u8() !== STATEMENT_CHANNEL) throw new ChannelError("not a channel statement");
    const sender = r.raw(32).slice();
    const n = r.varint();
    if (n > MAX_CHANNEL_MEMBERS) throw new ChannelError(`${n} boxes`);
    const boxes: Uint8Array[] = [];
    for (let i = 0; i < n; i++) boxes.push(r.bytes(128).slice());
    const sealed = r.raw(r.remaining).slice();
    return { sender, boxes, sealed };
  } catch (e) {
    if (e instanceof DecodeError) throw new ChannelError(`damaged channel statement (${e.message})`);
    throw e;
  }
}

/** The channel secret from a statement's boxes, if one is sealed to one of `sealingSecrets`. */
export function channelSecretFrom(env: Envelope, sealingSecrets: Uint8Array[]): Uint8Array | null {
  const { sender, boxes } = statementParts(env);
  for (const b of boxes)
    for (const s of sealingSecrets) {
      const k = boxOpen(b, sender, s);
      if (k && k.length === 32) return k;
    }
  return null;
}

/**
 * Checks and opens a membership statement with the channel secret. Throws ChannelError with a reason
 * for anything forged, damaged, or not matching its envelope.
 */
export function readChannelStatement(env: Envelope, secret: Uint8Array): HeldOp & { bytes: Uint8Array } {
  if (!verifyEnvelope(env)) throw new ChannelError("forged signature on a membership change");
  const { sealed } = statementParts(env);
  const plain = secretboxOpen(secret, sealed);
  if (!plain) throw new ChannelError("membership change does not open with the channel secret");
  const op = decodeOp(plain);
  if (!equalBytes(op.channel, env.conversation)) throw new ChannelError("membership change for another channel");
  if (!equalBytes(op.author, env.author)) throw new ChannelError("membership change claims another author");
  if (op.action.type === "create") {
    if (!equalBytes(op.action.owner, op.author)) throw new ChannelError("a channel is created by its owner");
    if (!equalBytes(channelIdOf(op.action.owner, op.action.seed), op.channel)) throw new ChannelError("channel id does not match its owner");
    if (op.parents.length !== 0) throw new ChannelError("create has parents");
  } else if (op.parents.length === 0) throw new ChannelError("membership change without parents");
  return { ...op, id: toHex(opId(plain)), depth: env.segment, bytes: plain };
}

export interface ChannelMember extends ChannelMemberCard {
  admin: boolean;
  owner: boolean;
}

export interface RefusedOp {
  id: string;
  reason: string;
}

/** What a set of membership ops says, as every laptop holding the same set computes it. */
export interface ChannelState {
  channel: Uint8Array;
  owner: Uint8Array;
  title: string;
  closed: boolean;
  /** Sorted by key: owner, admins and members alike. */
  members: ChannelMember[];
  /** Number of removals that took effect: each starts a new key epoch. */
  epoch: number;
  /** Op ids no other held op names as a parent: the parents of the next op. */
  heads: string[];
  /** Ops held but not in force (an admin's change made concurrently with losing the right, ...), with why. */
  refused: RefusedOp[];
  /** Ops whose parents are not all held yet (they count once the parents arrive). */
  waiting: string[];
}

export interface FoldOptions {
  /** May this person own a channel (the school's "no student groups" policy)? Default: anyone. */
  mayOwn?: (owner: Uint8Array) => boolean;
}

const hex = toHex;

/**
 * The channel from a set of membership ops (any order, duplicates ignored). Rules, each a function of
 * the set only:
 * - exactly the create op whose id is smallest starts it (two creates of one channel can only be the
 *   owner's own doing); every other op must reach it through its parents;
 * - the owner may do anything; an admin (named by the owner) may add and remove people who are not
 *   admins; an op counts if its author had that right in the op's own past (its ancestors), and an
 *   admin's op made concurrently with the owner taking the right away (demoting or removing them,
 *   not having seen the op) does not count;
 * - a person is in if some add of them is not followed (causally) by a removal; a removal and an add
 *   made concurrently: the removal wins (the safe side); the owner is always in;
 * - admin status goes the same way, concurrent promote and demote: demote wins;
 * - closing is final;
 * - past 64 members, the latest added (by depth, then op id) are left out.
 */
export function foldChannel(opsIn: Iterable<HeldOp>, opts: FoldOptions = {}): ChannelState | null {
  const byId = new Map<string, HeldOp>();
  for (const o of opsIn) if (!byId.has(o.id)) byId.set(o.id, o);
  const creates = [...byId.values()].filter((o) => o.action.type === "create").sort((a, b) => (a.id < b.id ? -1 : 1));
  const create = creates[0];
  if (!create || create.action.type !== "create") return null;
  const owner = create.author;
  const ownerHex = hex(owner);
  const refused: RefusedOp[] = creates.slice(1).map((c) => ({ id: c.id, reason: "a second create of the channel" }));
  if (opts.mayOwn && !opts.mayOwn(owner)) {
    return {
      channel: create.channel, owner, title: create.action.title, closed: true, members: [], epoch: 0, heads: [],
      refused: [{ id: create.id, reason: "the school does not allow this person to start groups" }], waiting: [],
    };
  }

  // Which ops are complete (every ancestor held, reaching the create), and their ancestor sets.
  const anc = new Map<string, Set<string>>();
  const waiting: string[] = [];
  const visiting = new Set<string>();
  const ancestors = (o: HeldOp): Set<string> | null => {
    const have = anc.get(o.id);
    if (have) return have;
    if (visiting.has(o.id)) return null; // a cycle cannot be made with hashes; refuse it all the same
    visiting.add(o.id);
    const out = new Set<string>();
    let ok = true;
    if (o !== create) {
      if (o.action.type === "create" || !equalBytes(o.channel, create.channel)) ok = false;
      for (const p of o.parents) {
        const ph = hex(p);
        const po = byId.get(ph);
        if (!po || (po.action.type === "create" && po !== create)) { ok = false; break; }
        const pa = ancestors(po);
        if (!pa) { ok = false; break; }
        out.add(ph);
        for (const x of pa) out.add(x);
      }
      if (ok && !out.has(create.id)) ok = false;
    }
    visiting.delete(o.id);
    if (!ok) return null;
    anc.set(o.id, out);
    return out;
  };
  const complete: HeldOp[] = [];
  for (const o of byId.values()) {
    if (o.action.type === "create" && o !== create) continue;
    if (ancestors(o)) complete.push(o);
    else waiting.push(o.id);
  }
  // Topological order: by number of ancestors (a parent always has fewer), then id.
  complete.sort((a, b) => anc.get(a.id)!.size - anc.get(b.id)!.size || (a.id < b.id ? -1 : 1));

  // The owner's withdrawals of admin rights (demote or remove): owner ops always count.
  const withdrawals: { target: string; op: HeldOp }[] = [];
  for (const o of complete) {
    if (hex(o.author) !== ownerHex) continue;
    if (o.action.type === "admin" && !o.action.admin) withdrawals.push({ target: hex(o.action.member), op: o });
    if (o.action.type === "remove") for (const m of o.action.members) withdrawals.push({ target: hex(m), op: o });
  }

  const valid = new Set<string>();
  const validOps: HeldOp[] = [];
  for (const o of complete) {
    const reason = o === create ? undefined : whyNot(o);
    if (reason) refused.push({ id: o.id, reason });
    else {
      valid.add(o.id);
      validOps.push(o);
    }
  }

  function whyNot(o: HeldOp): string | undefined {
    const a = o.action;
    if (hex(o.author) === ownerHex) {
      if (a.type === "remove" && a.members.some((m) => hex(m) === ownerHex)) return "the owner cannot be removed";
      if (a.type === "admin" && hex(a.member) === ownerHex) return "the owner is always an admin";
      return undefined;
    }
    if (a.type === "close") return "only the owner closes a channel";
    if (a.type === "admin") return "only the owner names admins";
    const past = stateOf([...anc.get(o.id)!].filter((id) => valid.has(id)).map((id) => byId.get(id)!));
    const me = past.members.get(hex(o.author));
    if (!me?.admin) return "not an admin of the channel when it was made";
    if (past.closed) return "the channel was closed";
    const oAnc = anc.get(o.id)!;
    for (const w of withdrawals)
      if (w.target === hex(o.author) && !anc.get(w.op.id)!.has(o.id) && !oAnc.has(w.op.id))
        return "made while the owner was taking away the author's admin rights";
    if (a.type === "remove")
      for (const m of a.members) {
        const t = past.members.get(hex(m));
        if (hex(m) === ownerHex || t?.admin) return "an admin cannot remove the owner or another admin";
      }
    return undefined;
  }

  // The state of a set of valid ops (which is closed under ancestors).
  function stateOf(ops: HeldOp[]) {
    const opAnc = (o: HeldOp) => anc.get(o.id)!;
    const frontier = <T extends { op: HeldOp }>(xs: T[]): T[] => xs.filter((x) => !xs.some((y) => y !== x && opAnc(y.op).has(x.op.id)));
    const inOut = new Map<string, { op: HeldOp; add?: ChannelMemberCard }[]>();
    const adminOps = new Map<string, { op: HeldOp; admin: boolean }[]>();
    let closed = false;
    let removals = 0;
    for (const o of ops) {
      const a = o.action;
      if (a.type === "add") for (const m of a.members) push(inOut, hex(m.key), { op: o, add: m });
      else if (a.type === "remove") {
        removals++;
        for (const m of a.members) push(inOut, hex(m), { op: o });
      } else if (a.type === "admin") push(adminOps, hex(a.member), { op: o, admin: a.admin });
      else if (a.type === "close") closed = true;
    }
    const members = new Map<string, ChannelMember & { since: HeldOp }>();
    for (const [k, xs] of inOut) {
      if (k === ownerHex) continue;
      const f = frontier(xs);
      if (f.length === 0 || f.some((x) => !x.add)) continue;
      const latest = f.reduce((b, x) => (x.op.depth > b.op.depth || (x.op.depth === b.op.depth && x.op.id > b.op.id) ? x : b));
      const card = f.reduce((b, x) => (x.op.id < b.op.id ? x : b)).add!;
      const adm = frontier(adminOps.get(k) ?? []);
      members.set(k, { ...card, admin: adm.length > 0 && adm.every((x) => x.admin), owner: false, since: latest.op });
    }
    return { members, closed, removals };
  }

  const final = stateOf(validOps);
  let list = [...final.members.values()].sort((a, b) => a.since.depth - b.since.depth || (a.since.id < b.since.id ? -1 : 1) || (hex(a.key) < hex(b.key) ? -1 : 1));
  list = list.slice(0, MAX_CHANNEL_MEMBERS - 1);
  const ownerCard = ownerCardFrom(validOps, owner);
  const members: ChannelMember[] = [{ ...ownerCard, admin: true, owner: true }, ...list.map(({ since: _since, ...m }) => m)];
  members.sort((a, b) => (hex(a.key) < hex(b.key) ? -1 : 1));
  const named = new Set<string>();
  for (const o of complete) for (const p of o.parents) named.add(hex(p));
  const heads = complete.filter((o) => !named.has(o.id)).map((o) => o.id).sort();
  return {
    channel: create.channel, owner, title: create.action.title, closed: final.closed, members, epoch: final.removals, heads, refused, waiting: waiting.sort(),
  };
}

/** A member list as one string (sorted hex keys), to compare lists whatever their order. */
export function memberListKey(people: Uint8Array[]): string {
  return people.map((p) => hex(p)).sort().join(",");
}

/**
 * Every member list the channel had as some laptop could have seen it: the fold of each set of its
 * ops that is closed under parents (what a laptop holding some of the ops folds), as memberListKey
 * strings. A channel key is sealed to the member list its maker folded, so an honest key's list is one
 * of these; a key a removed member makes for themselves and people added after their removal is not.
 * Ops written one after the other (the usual case: one teacher's laptop) are walked once
 * (chainMemberLists). Otherwise each set is folded on its own, so the work grows with the number of
 * such sets times the square of their ops: past `maxWork` (admins writing apart a lot) this gives up
 * and says undefined: then no list is refused (docs/channels.md).
 */
export function channelMemberLists(opsIn: Iterable<HeldOp>, opts: FoldOptions & { folded?: ChannelState | null } = {}, maxWork = 1_000_000): Set<string> | undefined {
  const all = [...opsIn];
  // the fold of all of them, if the caller has it already (it is the costly part for a long chain)
  const whole = opts.folded !== undefined ? opts.folded : foldChannel(all, opts);
  if (!whole) return new Set();
  const left = new Set([...whole.waiting, ...whole.refused.filter((r) => r.reason === "a second create of the channel").map((r) => r.id)]);
  const byId = new Map<string, HeldOp>();
  for (const o of all) if (!left.has(o.id) && !byId.has(o.id)) byId.set(o.id, o);
  // parents before children (every parent of a complete op is held and complete)
  const order: HeldOp[] = [];
  const placed = new Set<string>();
  const place = (o: HeldOp): void => {
    if (placed.has(o.id)) return;
    placed.add(o.id);
    for (const p of o.parents) {
      const po = byId.get(hex(p));
      if (po) place(po);
    }
    order.push(o);
  };
  for (const o of byId.values()) place(o);
  if (opts.mayOwn && !opts.mayOwn(whole.owner)) return new Set();
  // one op after the other (one device writes them, as a teacher does): each list is a prefix's
  if (order.every((o, i) => (i === 0 ? o.parents.length === 0 : o.parents.length === 1 && hex(o.parents[0]!) === order[i - 1]!.id)))
    return chainMemberLists(order);
  const lists = new Set<string>();
  const chosen: HeldOp[] = [];
  const inSet = new Set<string>();
  let work = 0;
  const walk = (i: number): boolean => {
    if (i === order.length) {
      work += (chosen.length + 1) ** 2;
      if (work > maxWork) return false;
      const st = chosen.length ? foldChannel(chosen, opts) : null;
      if (st && st.members.length) lists.add(memberListKey(st.members.map((m) => m.key)));
      return true;
    }
    const o = order[i]!;
    if (o.parents.every((p) => inSet.has(hex(p)))) {
      chosen.push(o);
      inSet.add(o.id);
      const ok = walk(i + 1);
      chosen.pop();
      inSet.delete(o.id);
      if (!ok) return false;
    }
    return walk(i + 1);
  };
  return walk(0) ? lists : undefined;
}

/**
 * channelMemberLists for ops that form one chain (the create first, each op's one parent the op
 * before): the sets closed under parents are the prefixes, and the fold of a prefix is the fold's
 * rules applied one op after the other (every op is in the past of the next: nothing is concurrent).
 * The same lists as folding each prefix (a property test says so), in time linear in the ops.
 */
function chainMemberLists(order: HeldOp[]): Set<string> | undefined {
  const create = order[0]!;
  const ownerHex = hex(create.author);
  const inNow = new Set<string>();
  const admin = new Map<string, boolean>();
  let closed = false;
  const lists = new Set<string>();
  // past 64 the fold leaves the latest added out, in an order this walk does not repeat: then no
  // list is refused (undefined), as when the work is too much
  const listNow = () => [ownerHex, ...inNow.keys()].sort().join(",");
  const full = () => inNow.size > MAX_CHANNEL_MEMBERS - 1;
  lists.add(listNow());
  for (const o of order.slice(1)) {
    const a = o.action;
    const author = hex(o.author);
    // whyNot, with "the past" = every op before this one
    let valid: boolean;
    if (author === ownerHex) valid = !(a.type === "remove" && a.members.some((m) => hex(m) === ownerHex)) && !(a.type === "admin" && hex(a.member) === ownerHex);
    else if (a.type === "close" || a.type === "admin" || a.type === "create" || closed || !inNow.has(author) || !admin.get(author)) valid = false;
    else valid = !(a.type === "remove" && a.members.some((m) => hex(m) === ownerHex || (inNow.has(hex(m)) && admin.get(hex(m)))));
    if (!valid) {
      lists.add(listNow());
      continue;
    }
    if (a.type === "add") for (const m of a.members) {
      const k = hex(m.key);
      if (k === ownerHex) continue;
      inNow.add(k);
    }
    else if (a.type === "remove") for (const m of a.members) {
      inNow.delete(hex(m));
    }
    else if (a.type === "admin") admin.set(hex(a.member), a.admin);
    else if (a.type === "close") closed = true;
    if (full()) return undefined;
    lists.add(listNow());
  }
  return lists;
}

function push<T>(m: Map<string, T[]>, k: string, v: T): void {
  const xs = m.get(k);
  if (xs) xs.push(v);
  else m.set(k, [v]);
}

/** The owner's card: the owner adds themselves in the first op after create (name, home, sealing key). */
function ownerCardFrom(ops: HeldOp[], owner: Uint8Array): ChannelMemberCard {
  for (const o of ops)
    if (o.action.type === "add") for (const m of o.action.members) if (equalBytes(m.key, owner)) return m;
  return { key: owner, sealKey: new Uint8Array(32), name: "", home: "" };
}

export function isMember(state: ChannelState, person: Uint8Array): boolean {
  return state.members.some((m) => equalBytes(m.key, person));
}

export function isAdmin(state: ChannelState, person: Uint8Array): boolean {
  return state.members.some((m) => m.admin && equalBytes(m.key, person));
}

/** A key the writer may seal with: its members (author and recipients of its key envelope). */
export interface EpochKey {
  keyId: Uint8Array;
  members: Uint8Array[];
}

/** Same people, whatever the order. */
export function sameMembers(a: Uint8Array[], b: Uint8Array[]): boolean {
  if (a.length !== b.length) return false;
  const s = new Set(a.map(hex));
  return s.size === b.length && b.every((k) => s.has(hex(k)));
}

/**
 * The key a member seals the next message with: one sealed to exactly the channel's members now
 * (no one removed can open it, every member can), the smallest key id when several were made apart.
 * null: none yet, the writer makes one (a key envelope to every other member).
 */
export function chooseChannelKey(state: ChannelState, keys: EpochKey[]): EpochKey | null {
  const now = state.members.map((m) => m.key);
  const fit = keys.filter((k) => sameMembers(k.members, now));
  fit.sort((a, b) => (hex(a.keyId) < hex(b.keyId) ? -1 : 1));
  return fit[0] ?? null;
}

/**
 * Segments per epoch key. Each key writes its own segment documents, numbered from
 * `channelSegmentBase(keyId)`: a member added later (who has only the new key) applies every change
 * of its documents without needing the changes of an epoch it cannot read, and a change sealed with
 * one key can only go to that key's documents.
 */
export const SEGMENTS_PER_EPOCH = 1024;

export function channelSegmentBase(keyId: Uint8Array): number {
  return CHANNEL_SEGMENTS + (((keyId[0]! << 24) >>> 0) + (keyId[1]! << 16) + (keyId[2]! << 8) + keyId[3]!) * SEGMENTS_PER_EPOCH;
}

export function inEpochSegments(segment: number, keyId: Uint8Array): boolean {
  const base = channelSegmentBase(keyId);
  return segment >= base && segment < base + SEGMENTS_PER_EPOCH;
}

/** A fresh channel: its create op (owner = the author) and the owner's own add (so others can seal to them). */
export function newChannelOps(owner: Identity, title: string, at: number): { secret: Uint8Array; ops: ChannelOp[] } {
  const seed = randomBytes(16);
  const channel = channelIdOf(owner.person, seed);
  const create: ChannelOp = { channel, author: owner.person, at, parents: [], action: { type: "create", owner: owner.person, seed, title } };
  const self: ChannelOp = {
    channel, author: owner.person, at, parents: [opId(encodeOp(create))],
    action: { type: "add", members: [{ key: owner.person, sealKey: owner.sealing.publicKey, name: owner.name, home: owner.home }] },
  };
  return { secret: randomBytes(32), ops: [create, self] };
}
