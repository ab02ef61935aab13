// What the user sees: each message as a view (who, what, and for outgoing ones how far it got),
// the arrival numbering that XMPP archives page through, and paged per-conversation queries that
// load only the segments they show.
import * as A from "@automerge/automerge";
import { conversationId, encodeInner, equalBytes, fromHex, keyId, receiptKey, recipientLocks, segmentKind, toHex, type ConversationDoc } from "@pigeon/model";
import type { MailboxCore } from "./core.js";
import type { MessageQuery, MessageView } from "./types.js";

export class Views {
  /** Each member's lock of a channel message this user sent (by envelope id, then member key, hex). */
  private readonly locks = new Map<string, Map<string, string>>();

  constructor(private readonly core: MailboxCore) {}

  /**
   * The members of `others` whose lock of our sealed envelope `env` a receipt opened: they have it.
   * The author recomputes each member's lock from its own sealing secret and the signed envelope
   * inside (sealed.ts, recipientLocks); carriers cannot, so a receipt tells them nothing of who.
   */
  private openedBy(env: Uint8Array, others: Uint8Array[]): Uint8Array[] {
    const { core } = this;
    const opened = new Set(core.envelopes.ackers(env).map(toHex));
    if (opened.size === 0) return [];
    const id = toHex(env);
    let locks = this.locks.get(id);
    if (!locks || others.some((k) => !locks!.has(toHex(k)))) {
      const inner = core.envelopes.get(env);
      if (!inner?.sealed) return [];
      const keys = others.map((k) => core.state.contact(k)?.sealPublicKey ?? core.directorySealKey(k));
      const known = others.filter((_, i) => keys[i]);
      const computed = recipientLocks(core.identity.sealing, encodeInner(inner, inner.key), keys.filter((k): k is Uint8Array => k !== undefined));
      locks = new Map(known.map((k, i) => [toHex(k), computed[i] ? toHex(computed[i]!) : ""]));
      if (this.locks.size > 4096) this.locks.clear(); // a cache, not a record: it is computed again
      this.locks.set(id, locks);
    }
    return others.filter((k) => opened.has(locks!.get(toHex(k)) ?? "-"));
  }

  /**
   * A receipt opened a lock of our sealed envelope `env`: the one-to-one messages of ours in it (one,
   * or a batch sent together) are delivered; recorded (when, and the receipt's hops) and announced the
   * first time. Whether any was.
   */
  noteDelivered(env: Uint8Array, hops: number): boolean {
    const { core } = this;
    const at = core.now();
    let any = false;
    for (const messageId of core.state.sentMessages(env)) {
      const indexed = core.state.indexedMessage(messageId);
      if (!indexed || core.isChannel(indexed.conversation)) continue;
      const members = core.state.members(indexed.conversation) ?? [];
      const other = members.find((k) => !equalBytes(k, core.me));
      if (!other || core.state.recordArrival(`d:${messageId}`, at, hops) === undefined) continue;
      core.events.emit("receipt", { conversation: toHex(indexed.conversation), messageId, reader: core.addressOf(other), state: "delivered", at });
      any = true;
    }
    return any;
  }

  /**
   * Emits 'message' and 'receipt' for what this laptop sees for the first time, numbers and indexes it.
   * `own`: the sealed envelope just opened, when it is this person's (from another of their devices):
   * its messages are then known as sent in it, so its acknowledgement shows them delivered here too.
   */
  noteArrivals(conv: Uint8Array, members: Uint8Array[], segment: number, doc: ConversationDoc, hops = 0, own?: Uint8Array, fresh?: Fresh): void {
    const { core } = this;
    const at = core.now();
    // a profile segment holds the author's picture, not messages to show (pictureOf reads it)
    const profile = segmentKind(segment) === "profile";
    if (profile) {
      const author = doc.messages.at(-1)?.author.toString();
      if (author && author !== core.myKeyId) core.events.emit("picture", { from: core.addressOfKeyId(author, members) });
    }
    // what the change brought, or (without `fresh`) every message and receipt of the segment
    const indices = profile ? [] : fresh ? indicesOf(doc, fresh.messages) : doc.messages.map((_, i) => i);
    for (const i of indices) {
      const m = doc.messages[i]!;
      // with the hops of the copy that brought it: how far away its writer was ("2 laptops away")
      const seq = core.state.recordArrival(`m:${m.id.toString()}`, at, hops);
      if (seq === undefined) continue;
      const outgoing = m.author.toString() === core.myKeyId;
      core.state.indexMessage({ id: m.id.toString(), conversation: conv, segment, outgoing, seq });
      if (own && outgoing) core.state.recordSent(m.id.toString(), own);
      core.events.emit("message", this.viewOf(conv, members, doc, i));
    }
    const receipts = fresh ? fresh.receipts.flatMap((k) => (doc.receipts[k] === undefined ? [] : [[k, doc.receipts[k]!] as const])) : Object.entries(doc.receipts);
    for (const [key, when] of receipts) {
      if (core.state.recordArrival(`r:${key}`, at, hops) === undefined) continue;
      const [messageId, reader, state] = key.split("/") as [string, string, "delivered" | "read"];
      core.events.emit("receipt", { conversation: toHex(conv), messageId, reader: core.addressOfKeyId(reader, members), state, at: when });
    }
  }

  viewOf(conv: Uint8Array, members: Uint8Array[], doc: ConversationDoc, index: number): MessageView {
    const { core } = this;
    const m = doc.messages[index]!;
    const id = m.id.toString();
    const author = m.author.toString();
    const mine = author === core.myKeyId;
    const others = members.filter((k) => !equalBytes(k, core.me));
    const title = core.channelTitle(conv);
    const view: MessageView = {
      id,
      conversation: toHex(conv),
      direction: mine ? "out" : "in",
      from: core.addressOfKeyId(author, members),
      to: mine ? others.map((k) => core.addressOf(k)) : [core.address],
      body: m.body.toString(),
      hlc: m.hlc.toString(),
      claimedSentAt: m.sentAt,
    };
    if (title !== undefined) view.channel = title;
    if (m.file) view.file = { type: m.fileType?.toString() ?? "application/octet-stream", size: m.file.length };
    const replaces = m.replaces?.toString();
    if (replaces !== undefined) {
      // only the author may correct their message: in a conversation of two, the same direction is
      // the same author; a correction naming someone else's (or an unknown) message stays a plain one
      const target = core.state.indexedMessage(replaces);
      if (target && equalBytes(target.conversation, conv) && target.outgoing === mine && members.length === 2) view.replaces = replaces;
    }
    const arrival = core.state.arrival(`m:${id}`);
    if (arrival) {
      view.arrivedAt = arrival.at;
      view.arrivalSeq = arrival.seq;
      if (!mine && arrival.hops) view.hops = arrival.hops;
    }
    if (!mine) {
      const readAt = doc.receipts[receiptKey(id, core.myKeyId, "read")];
      if (readAt !== undefined) view.readAt = readAt;
      const authorKey = members.find((k) => keyId(k) === author);
      // in a channel the owner chose who writes: a classmate's message there is no request
      if (title === undefined && (!authorKey || !core.isBuddy(authorKey))) view.request = true;
      if (authorKey && core.isBlocked(authorKey)) view.blocked = true;
      const school = authorKey && core.schoolVouch(authorKey);
      if (school) view.fromVouch = school;
      return view;
    }
    const schools = others.map((k) => core.schoolVouch(k));
    if (schools.every((v) => v !== undefined) && schools.length) view.toVouch = schools as NonNullable<(typeof schools)[number]>[];
    const stamps = (state: "delivered" | "read") =>
      others.map((k) => doc.receipts[receiptKey(id, keyId(k), state)]).filter((t): t is number => t !== undefined);
    const delivered = stamps("delivered");
    const read = stamps("read");
    const env = core.state.sentEnvelope(id);
    if (title !== undefined) {
      // a channel: delivered to a member = a receipt opened their lock of the message's one sealed
      // envelope (or their read receipt in the document: reading implies having it)
      const acked = env ? this.openedBy(env, others) : [];
      const has = others.filter((k) => acked.some((a) => equalBytes(a, k)) || doc.receipts[receiptKey(id, keyId(k), "read")] !== undefined);
      view.counts = { members: others.length, delivered: has.length, read: read.length };
      // the teacher asks who read an announcement: the names, from the same signed read receipts
      view.readBy = others.filter((k) => doc.receipts[receiptKey(id, keyId(k), "read")] !== undefined).map((k) => core.addressOf(k));
    }
    const handed = env && core.envelopes.handed(env);
    if (handed) {
      view.handedAt = handed.at;
      view.sentVia = others.some((k) => equalBytes(k, handed.peer)) ? "direct" : "carrier";
      view.sentTo = core.addressOf(handed.peer);
    }
    if (view.counts && view.counts.delivered === others.length && others.length > 0) {
      view.deliveredAt = Math.max(0, ...delivered, ...read); // when is not known from acknowledgements
    } else if (title === undefined && core.state.arrival(`d:${id}`)) {
      // the recipient's acknowledgement came back: when this laptop learnt it, and by which way
      const acked = core.state.arrival(`d:${id}`)!;
      view.deliveredAt = acked.at;
      view.deliveredVia = (acked.hops ?? 1) <= 1 ? "direct" : "carriers";
    } else if (delivered.length === others.length) {
      // a signed "delivered" receipt in the document (written by versions before acknowledgements were the receipt)
      view.deliveredAt = Math.max(...delivered);
      const hops = others.map((k) => core.state.arrival(`r:${receiptKey(id, keyId(k), "delivered")}`)?.hops ?? 1);
      view.deliveredVia = hops.every((h) => h <= 1) ? "direct" : "carriers";
    }
    if (read.length === others.length) view.readAt = Math.max(...read);
    view.state = view.readAt !== undefined ? "read" : view.deliveredAt !== undefined ? "delivered" : handed ? "sent" : "waiting";
    return view;
  }

  /** Every message of every conversation, oldest first by the conversations' clocks (for whole-folder listings). */
  async all(): Promise<MessageView[]> {
    const { core } = this;
    const out: MessageView[] = [];
    for (const conv of core.messageConversations()) {
      const members = core.state.members(conv)!;
      for (const seg of core.state.segments(conv)) {
        if (segmentKind(seg) === "profile") continue; // the author's picture, not messages
        const doc = (await core.segmentHandle(conv, seg)).doc();
        for (let i = 0; i < doc.messages.length; i++) out.push(this.viewOf(conv, members, doc, i));
      }
    }
    return applyCorrections(out.sort((a, b) => (a.hlc < b.hlc ? -1 : a.hlc > b.hlc ? 1 : a.from < b.from ? -1 : 1)));
  }

  /** The file in a message (its name is the message's text), loading only its segment. */
  async file(id: string): Promise<{ name: string; type: string; bytes: Uint8Array } | undefined> {
    const at = this.core.state.indexedMessage(id);
    if (!at) return undefined;
    const doc = (await this.core.segmentHandle(at.conversation, at.segment)).doc();
    const i = positions(doc).get(id);
    const m = i === undefined ? undefined : doc.messages[i];
    if (!m?.file) return undefined;
    return { name: m.body.toString(), type: m.fileType?.toString() ?? "application/octet-stream", bytes: new Uint8Array(m.file) };
  }

  /** The latest picture a person put in their conversation with the user (by their clock), if any. */
  async pictureOf(person: Uint8Array): Promise<{ type: string; bytes: Uint8Array } | undefined> {
    const { core } = this;
    const conv = conversationId([core.me, person]);
    const author = keyId(person);
    let best: { hlc: string; type: string; bytes: Uint8Array } | undefined;
    for (const seg of core.state.segments(conv)) {
      if (segmentKind(seg) !== "profile") continue;
      for (const m of (await core.segmentHandle(conv, seg)).doc().messages) {
        if (m.author.toString() !== author || !m.file) continue;
        const hlc = m.hlc.toString();
        if (!best || hlc > best.hlc) best = { hlc, type: m.fileType?.toString() ?? "application/octet-stream", bytes: new Uint8Array(m.file) };
      }
    }
    return best && { type: best.type, bytes: best.bytes };
  }

  /** One message by id, loading only its segment. */
  async message(id: string): Promise<MessageView | undefined> {
    const at = this.core.state.indexedMessage(id);
    if (!at) return undefined;
    return (await this.load([at]))[0];
  }

  /** A page of messages in arrival order (see MessageQuery). */
  async query(q: MessageQuery): Promise<MessageView[]> {
    const limit = Math.max(1, Math.min(q.limit ?? 100, 10_000));
    let conversation: Uint8Array | undefined;
    if (q.conversation !== undefined) {
      try {
        conversation = fromHex(q.conversation);
      } catch {
        return [];
      }
    }
    const newest = q.last === true || (q.beforeSeq !== undefined && q.afterSeq === undefined);
    const base = { conversation, outgoing: q.direction === undefined ? undefined : q.direction === "out", afterSeq: q.afterSeq, beforeSeq: q.beforeSeq };
    if (!q.unread) return this.load(this.core.state.queryMessages({ ...base, limit, newest }));
    // unread is a property of the document, not of the index: page until enough are found
    const out: MessageView[] = [];
    let cursor = { ...base };
    for (;;) {
      const page = this.core.state.queryMessages({ ...cursor, limit: 500, newest: false });
      if (page.length === 0) return out;
      for (const v of await this.load(page)) {
        if (v.direction === "in" && v.readAt === undefined) out.push(v);
        if (out.length >= limit) return out;
      }
      cursor = { ...cursor, afterSeq: page[page.length - 1]!.seq };
    }
  }

  private async load(rows: { id: string; conversation: Uint8Array; segment: number }[]): Promise<MessageView[]> {
    const { core } = this;
    const out: MessageView[] = [];
    for (const r of rows) {
      const members = core.state.members(r.conversation);
      if (!members) continue;
      const doc = (await core.segmentHandle(r.conversation, r.segment)).doc();
      const i = positions(doc).get(r.id);
      if (i !== undefined) out.push(this.viewOf(r.conversation, members, doc, i));
    }
    return out;
  }

  /** A store from before the index existed: index every message once, keeping its arrival number. */
  async rebuildIndex(): Promise<void> {
    const { core } = this;
    if (!core.state.messageIndexIncomplete()) return;
    for (const conv of core.messageConversations()) {
      const members = core.state.members(conv)!;
      for (const seg of core.state.segments(conv)) {
        if (segmentKind(seg) === "profile") continue; // the author's picture, not messages
        const doc = (await core.segmentHandle(conv, seg)).doc();
        for (const m of doc.messages) {
          const arrival = core.state.arrival(`m:${m.id.toString()}`);
          if (arrival) core.state.indexMessage({ id: m.id.toString(), conversation: conv, segment: seg, outgoing: m.author.toString() === core.myKeyId, seq: arrival.seq });
        }
        this.noteArrivals(conv, members, seg, doc);
      }
    }
  }
}

/** What changes brought to a segment: the ids of the messages they added and the receipt keys they set. */
export interface Fresh {
  messages: string[];
  receipts: string[];
}

/**
 * What the changes applied since `before` brought to a segment, from Automerge's patches: O(the
 * changes), where walking the segment for what is new cost O(its messages) at every arrival (a
 * 1,000-message segment read through Automerge's proxies for each message that came).
 */
export function freshSince(doc: ConversationDoc, before: A.Heads): Fresh {
  const fresh: Fresh = { messages: [], receipts: [] };
  for (const p of A.diff(doc as A.Doc<ConversationDoc>, before, A.getHeads(doc as A.Doc<ConversationDoc>))) {
    if (p.action !== "put") continue;
    if (p.path.length === 3 && p.path[0] === "messages" && p.path[2] === "id") fresh.messages.push(String(p.value));
    else if (p.path.length === 2 && p.path[0] === "receipts" && typeof p.path[1] === "string") fresh.receipts.push(p.path[1]);
  }
  return fresh;
}

/** Where these messages are, in order: looked for from the end (what is new was appended), else through the whole segment. */
export function indicesOf(doc: ConversationDoc, ids: string[]): number[] {
  const want = new Set(ids);
  const found: number[] = [];
  const messages = doc.messages;
  for (let i = messages.length - 1; i >= 0 && i >= messages.length - 64 && found.length < want.size; i--)
    if (want.has(messages[i]!.id.toString())) found.push(i);
  if (found.length < want.size) {
    const at = positions(doc);
    return [...want].flatMap((id) => (at.has(id) ? [at.get(id)!] : [])).sort((x, y) => x - y);
  }
  return found.reverse();
}

/**
 * Where each message is in a segment document, by id. Reading a message id through Automerge's proxy
 * costs microseconds; finding each of a page's messages by a scan cost a page of 50 over 2,000
 * messages a third of a second (issue 21), a map made once per document version costs one scan.
 * A document never changes (a change makes a new one), so the map is kept while the document lives.
 */
const positionsByDoc = new WeakMap<object, Map<string, number>>();

function positions(doc: ConversationDoc): Map<string, number> {
  let map = positionsByDoc.get(doc);
  if (!map) {
    map = new Map();
    const messages = doc.messages;
    for (let i = 0; i < messages.length; i++) map.set(messages[i]!.id.toString(), i);
    positionsByDoc.set(doc, map);
  }
  return map;
}

/**
 * A listing as the user sees it: each corrected message with its latest correction's text (by the
 * author's clock), and the corrections themselves not listed apart. `list` is in clock order.
 */
export function applyCorrections(list: MessageView[]): MessageView[] {
  const byId = new Map(list.map((v) => [v.id, v]));
  const out: MessageView[] = [];
  for (const v of list) {
    const target = v.replaces !== undefined ? byId.get(v.replaces) : undefined;
    if (!target) {
      out.push(v);
      continue;
    }
    target.body = v.body;
    target.correctedAt = v.claimedSentAt;
  }
  return out;
}
