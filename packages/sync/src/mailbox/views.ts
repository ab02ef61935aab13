// What the user sees: each message as a view (who, what, and for outgoing ones how far it got),
// the arrival numbering that XMPP archives page through, and paged per-conversation queries that
// load only the segments they show.
import * as A from "@automerge/automerge";
import { allReceipts, conversationId, encodeInner, equalBytes, fingerprint, fromHex, keyId, receiptKey, receiptOf, recipientLocks, segmentKind, toHex, type ConversationDoc } from "@pigeon/model";
import type { FolderCount, IndexedMessage } from "../local-state.js";
import type { MailboxCore } from "./core.js";
import type { FolderPage, FolderPages, MessageQuery, MessageView, RequestView } from "./types.js";

type Folder = "inbox" | "outbox" | "requests";

/** Segments a listing reads per piece of work (see Views.viewsOf): fewer than SEGMENTS_LOADED. */
export const SEGMENTS_PER_STEP = 8;

/** Oldest first by the conversations' clocks (and by writer for equal readings). */
const byClock = (a: MessageView, b: MessageView) => (a.hlc < b.hlc ? -1 : a.hlc > b.hlc ? 1 : a.from < b.from ? -1 : a.from > b.from ? 1 : 0);
/** Newest arrival first. */
const byArrival = (a: MessageView, b: MessageView) => (b.arrivalSeq ?? 0) - (a.arrivalSeq ?? 0);

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
  noteArrivals(conv: Uint8Array, members: Uint8Array[], segment: number, doc: ConversationDoc, hops = 0, own?: Uint8Array, fresh?: Fresh): Map<string, MessageView> {
    const { core } = this;
    /** The views told to listeners, by message id: a sender answers with them (not made twice). */
    const told = new Map<string, MessageView>();
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
      core.state.indexMessage(this.indexEntry(doc, i, conv, segment, seq));
      if (own && outgoing) core.state.recordSent(m.id.toString(), own);
      const view = this.viewOf(conv, members, doc, i);
      told.set(view.id, view);
      core.events.emit("message", view);
    }
    const receipts = fresh ? fresh.receipts : allReceipts(doc);
    for (const [key, when] of receipts) {
      const [messageId, reader, state] = key.split("/") as [string, string, "delivered" | "read"];
      // read here or on another of this person's devices: the inbox's unread count is kept in the index
      if (reader === core.myKeyId && state === "read") core.state.markIndexedRead(messageId);
      if (core.state.recordArrival(`r:${key}`, at, hops) === undefined) continue;
      core.events.emit("receipt", { conversation: toHex(conv), messageId, reader: core.addressOfKeyId(reader, members), state, at: when });
    }
    return told;
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
      const readAt = receiptOf(doc, index, core.myKeyId, "read");
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
      others.map((k) => receiptOf(doc, index, keyId(k), state)).filter((t): t is number => t !== undefined);
    const delivered = stamps("delivered");
    const read = stamps("read");
    const env = core.state.sentEnvelope(id);
    if (title !== undefined) {
      // a channel: delivered to a member = a receipt opened their lock of the message's one sealed
      // envelope (or their read receipt in the document: reading implies having it)
      const acked = env ? this.openedBy(env, others) : [];
      const readers = new Set(others.filter((k) => receiptOf(doc, index, keyId(k), "read") !== undefined));
      const has = others.filter((k) => acked.some((a) => equalBytes(a, k)) || readers.has(k));
      view.counts = { members: others.length, delivered: has.length, read: read.length };
      // the teacher asks who read an announcement: the names, from the same signed read receipts
      view.readBy = others.filter((k) => readers.has(k)).map((k) => core.addressOf(k));
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

  /** What the message index keeps of message `i` of a segment (arrived as number `seq`). */
  private indexEntry(doc: ConversationDoc, i: number, conv: Uint8Array, segment: number, seq: number): IndexedMessage {
    const { core } = this;
    const m = doc.messages[i]!;
    const id = m.id.toString();
    const outgoing = m.author.toString() === core.myKeyId;
    const replaces = m.replaces?.toString();
    const read = !outgoing && receiptOf(doc, i, core.myKeyId, "read") !== undefined;
    return { id, conversation: conv, segment, outgoing, seq, ...(replaces !== undefined ? { replaces } : {}), read };
  }

  /**
   * Where a conversation's incoming messages are filed (as viewOf marks them): the inbox (a buddy's,
   * or a channel), requests (someone not a buddy), or nowhere (blocked, or a request ignored or reported).
   */
  filing(conv: Uint8Array): "inbox" | "request" | "hidden" {
    const { core } = this;
    if (core.channelTitle(conv) !== undefined) return "inbox";
    const other = (core.state.members(conv) ?? []).find((k) => !equalBytes(k, core.me));
    if (!other || core.isBuddy(other)) return "inbox";
    if (core.isBlocked(other) || core.state.requestDecision(other)) return "hidden";
    return "request";
  }

  /** Whether corrections apply in a conversation (a conversation of two, as viewOf says). */
  private correctable(conv: Uint8Array): boolean {
    return (this.core.state.members(conv)?.length ?? 0) === 2;
  }

  /** The conversations of a folder ("outbox": every one). */
  private folderConversations(folder: Folder): Uint8Array[] {
    const filed = folder === "outbox" ? undefined : folder === "inbox" ? "inbox" : "request";
    return this.core.messageConversations().filter((c) => filed === undefined || this.filing(c) === filed);
  }

  // Listings below are called from outside the mailbox's queue of work: each reads the index in one
  // piece of work and the documents a few segments per piece of work, so segments read are unloaded
  // between them (a piece of work is a group commit, which keeps what it opened) and other work (a
  // message arriving, a send) is not held up behind a walk over a long history.

  /**
   * Every message of a folder (only the unread ones: `unread`; only the newest `last` to arrive),
   * oldest first by the conversations' clocks, corrections shown as the message they correct.
   */
  async folder(folder: Folder, opts: { unread?: boolean; last?: number } = {}): Promise<MessageView[]> {
    const rows = await this.core.serial(async () => {
      const all = this.folderConversations(folder).flatMap((conv) =>
        this.core.state.folderMessages({ conversation: conv, outgoing: folder === "outbox", corrections: !this.correctable(conv), unread: opts.unread, limit: opts.last }),
      );
      // the newest `last` to arrive, from each conversation's newest
      return opts.last === undefined ? all : all.sort((a, b) => b.seq - a.seq).slice(0, opts.last);
    });
    return (await this.viewsOf(rows)).sort(byClock);
  }

  /**
   * The newest `shown` messages of each folder (newest first) and how many there are: what the web
   * app's first screen shows. Counted from the index; only the segments of the messages shown load.
   */
  async folders(shown: number): Promise<FolderPages> {
    const { core } = this;
    const { inbox, outbox } = await core.serial(async () => {
      const counts = new Map<string, { in?: FolderCount; out?: FolderCount }>();
      for (const c of core.state.folderCounts()) {
        const k = toHex(c.conversation);
        counts.set(k, { ...counts.get(k), [c.outgoing ? "out" : "in"]: c });
      }
      const convs = core.messageConversations();
      const inboxConvs = convs.filter((c) => this.filing(c) === "inbox");
      const listed = (c?: FolderCount) => (!c ? 0 : this.correctable(c.conversation) ? c.messages - c.corrections : c.messages);
      const newest = (list: Uint8Array[], outgoing: boolean) =>
        list
          .filter((conv) => counts.get(toHex(conv))?.[outgoing ? "out" : "in"]?.messages)
          .flatMap((conv) => core.state.folderMessages({ conversation: conv, outgoing, limit: shown, corrections: !this.correctable(conv) }))
          .sort((a, b) => b.seq - a.seq)
          .slice(0, shown);
      return {
        inbox: {
          rows: newest(inboxConvs, false),
          total: inboxConvs.reduce((n, c) => n + listed(counts.get(toHex(c))?.in), 0),
          unread: inboxConvs.reduce((n, c) => n + (counts.get(toHex(c))?.in?.unread ?? 0), 0),
        },
        outbox: { rows: newest(convs, true), total: convs.reduce((n, c) => n + listed(counts.get(toHex(c))?.out), 0) },
      };
    });
    return {
      inbox: { newest: (await this.viewsOf(inbox.rows)).sort(byArrival), total: inbox.total, unread: inbox.unread },
      outbox: { newest: (await this.viewsOf(outbox.rows)).sort(byArrival), total: outbox.total },
      waiting: await this.waitingPage(shown),
      requests: await this.requests(shown),
    };
  }

  /**
   * Outgoing messages no laptop has taken yet, oldest first by clock (as the outbox). The index finds
   * those never handed on and never acknowledged (usually few); their views say which still wait.
   */
  async waiting(last?: number): Promise<MessageView[]> {
    if (last !== undefined) return (await this.waitingPage(last)).newest.sort(byClock);
    const rows = await this.core.serial(async () => this.core.state.waitingMessages());
    return (await this.viewsOf(rows)).filter((v) => v.state === "waiting").sort(byClock);
  }

  /**
   * The newest `shown` of them and how many there are: counted in the index, loaded a page at a time
   * until `shown` are found (a teacher's 10,000 messages written offline are counted, not loaded).
   */
  private async waitingPage(shown: number): Promise<FolderPage> {
    let total = await this.core.serial(async () => this.core.state.waitingCount());
    const newest: MessageView[] = [];
    for (let offset = 0; newest.length < shown; offset += shown) {
      const rows = await this.core.serial(async () => this.core.state.waitingMessages(shown, offset));
      if (rows.length === 0) break;
      const waiting = (await this.viewsOf(rows)).filter((v) => v.state === "waiting");
      total -= rows.length - waiting.length; // the index said waiting, the view says otherwise
      newest.push(...waiting);
    }
    return { newest: newest.sort(byArrival).slice(0, shown), total };
  }

  /**
   * Messages from people who are not buddies, by sender, except from those the user ignored, reported
   * or blocked: each sender's newest `shown` (oldest first) and how many they sent.
   */
  async requests(shown: number): Promise<RequestView[]> {
    const { core } = this;
    const senders = await core.serial(async () =>
      this.folderConversations("requests").flatMap((conv) => {
        const rows = core.state.folderMessages({ conversation: conv, outgoing: false, corrections: !this.correctable(conv) });
        const key = (core.state.members(conv) ?? []).find((k) => !equalBytes(k, core.me));
        return rows.length && key ? [{ key, rows: rows.slice(0, shown), total: rows.length }] : [];
      }),
    );
    const views = await this.viewsOf(senders.flatMap((s) => s.rows));
    const byConversation = new Map<string, MessageView[]>();
    for (const v of views) byConversation.set(v.conversation, [...(byConversation.get(v.conversation) ?? []), v]);
    const out = senders.flatMap(({ key, rows, total }): RequestView[] => {
      const messages = (byConversation.get(toHex(rows[0]!.conversation)) ?? []).sort(byClock);
      const vouch = core.schoolVouch(key);
      return messages.length ? [{ from: core.addressOf(key), fingerprint: fingerprint(key), ...(vouch ? { vouch } : {}), messages, total }] : [];
    });
    // the sender who wrote first, first
    return out.sort((a, b) => byClock(a.messages[0]!, b.messages[0]!));
  }

  /** Messages whose id starts with `prefix` (lower-case hex), as listed in the folders: no corrections, no requests. */
  async startingWith(prefix: string, limit: number): Promise<MessageView[]> {
    const rows = await this.core.serial(async () => {
      const inbox = new Set(this.core.messageConversations().filter((c) => this.filing(c) === "inbox").map(toHex));
      return this.core.state.messagesStartingWith(prefix, limit).filter((r) => r.outgoing || inbox.has(toHex(r.conversation)));
    });
    return (await this.viewsOf(rows)).filter((v) => v.replaces === undefined);
  }

  /**
   * Views of indexed messages (in the order of `rows`), corrections applied, SEGMENTS_PER_STEP
   * segments per piece of work: the segments read are unloaded between them (SEGMENTS_LOADED).
   */
  private async viewsOf(rows: IndexedMessage[]): Promise<MessageView[]> {
    const { core } = this;
    const bySegment = new Map<string, { conv: Uint8Array; segment: number; at: number[] }>();
    rows.forEach((r, i) => {
      const k = `${toHex(r.conversation)}/${r.segment}`;
      const g = bySegment.get(k) ?? bySegment.set(k, { conv: r.conversation, segment: r.segment, at: [] }).get(k)!;
      g.at.push(i);
    });
    const groups = [...bySegment.values()];
    const out: (MessageView | undefined)[] = new Array(rows.length);
    for (let step = 0; step < groups.length; step += SEGMENTS_PER_STEP) {
      await core.serial(async () => {
        for (const g of groups.slice(step, step + SEGMENTS_PER_STEP)) {
          const members = core.state.members(g.conv);
          if (!members || core.isForgotten(g.conv, g.segment)) continue;
          const doc = (await core.segmentHandle(g.conv, g.segment)).doc();
          const at = positions(doc);
          const shown: MessageView[] = [];
          for (const i of g.at) {
            const p = at.get(rows[i]!.id);
            if (p !== undefined) shown.push((out[i] = this.viewOf(g.conv, members, doc, p)));
          }
          await this.withCorrections(shown);
        }
      });
    }
    return out.filter((v): v is MessageView => v !== undefined);
  }

  /** Each corrected message with its latest correction's text (by the author's clock); in a piece of work. */
  private async withCorrections(views: MessageView[]): Promise<void> {
    const { core } = this;
    for (const v of views) {
      const at = core.state.indexedMessage(v.id);
      const corrections = at && this.correctable(at.conversation) ? core.state.correctionsOf(at) : [];
      let latest: MessageView | undefined;
      for (const c of corrections) {
        if (core.isForgotten(c.conversation, c.segment)) continue;
        const doc = (await core.segmentHandle(c.conversation, c.segment)).doc();
        const p = positions(doc).get(c.id);
        const view = p === undefined ? undefined : this.viewOf(c.conversation, core.state.members(c.conversation)!, doc, p);
        if (view?.replaces === v.id && (!latest || byClock(latest, view) < 0)) latest = view;
      }
      if (!latest) continue;
      v.body = latest.body;
      v.correctedAt = latest.claimedSentAt;
    }
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

  /**
   * A store from before the index (or before it kept corrections and reading): index every message
   * once, keeping its arrival number; a few segments per piece of work, unloaded between them.
   */
  async rebuildIndex(): Promise<void> {
    const { core } = this;
    const todo = await core.serial(async () =>
      !core.state.messageIndexIncomplete()
        ? []
        : core.messageConversations().flatMap((conv) =>
            core.state.segments(conv).flatMap((segment) => (segmentKind(segment) === "profile" ? [] : [{ conv, segment }])), // a picture, not messages
          ),
    );
    if (todo.length === 0) return;
    // once, after an upgrade: a long history takes a while (100,000 messages: ~20 s), so say so
    core.log.info(`indexing the messages of ${todo.length} conversation segment(s) again, once (the folders are counted from this index)`);
    const started = Date.now();
    let told = started;
    for (let step = 0; step < todo.length; step += SEGMENTS_PER_STEP) {
      if (Date.now() - told > 10_000) {
        told = Date.now();
        core.log.info(`indexing the messages: ${step} of ${todo.length} segments done`);
      }
      await core.serial(async () => {
        for (const { conv, segment } of todo.slice(step, step + SEGMENTS_PER_STEP)) {
          const members = core.state.members(conv);
          if (!members || core.isForgotten(conv, segment)) continue;
          const doc = (await core.segmentHandle(conv, segment)).doc();
          for (let i = 0; i < doc.messages.length; i++) {
            const arrival = core.state.arrival(`m:${doc.messages[i]!.id.toString()}`);
            if (arrival) core.state.indexMessage(this.indexEntry(doc, i, conv, segment, arrival.seq));
          }
          this.noteArrivals(conv, members, segment, doc);
        }
      });
    }
    core.log.info(`indexed the messages of ${todo.length} conversation segment(s) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }
}

/** What changes brought to a segment: the ids of the messages they added and the receipts they set (keyed as `receiptKey` names them). */
export interface Fresh {
  messages: string[];
  receipts: [key: string, at: number][];
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
    else if (p.path.length === 4 && p.path[0] === "messages" && typeof p.path[1] === "number" && p.path[2] === "receipts" && typeof p.value === "number")
      fresh.receipts.push([`${doc.messages[p.path[1]]!.id.toString()}/${String(p.path[3])}`, p.value]);
    else if (p.path.length === 2 && p.path[0] === "receipts" && typeof p.path[1] === "string" && typeof p.value === "number") fresh.receipts.push([p.path[1], p.value]);
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
