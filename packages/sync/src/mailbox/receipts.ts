// Receipts and acknowledgements. An acknowledgement is an unsigned envelope (a version-3 receipt)
// holding the ack keys that open the sealed envelopes' locks, so carriers can drop their copies
// without learning who received what; its author, who alone can recompute each recipient's lock
// (sealed.ts, recipientLocks), reads it as the "delivered" receipt (one envelope back per batch of
// messages, not a signed change as well: issue 17, "receipts and acks ride together"). A "read"
// receipt is the reader's own signed change in the conversation and travels back like a message.
// A request (from someone not on the buddy list) is acknowledged only once the child accepts them:
// until then its author learns nothing of whether it arrived.
import * as A from "@automerge/automerge";
import type { DocHandle } from "@automerge/automerge-repo";
import {
  decodeSealed, envelopeForm, EnvelopeKind, equalBytes, lockOf, makeReceipt, MAX_ACK_IDS, putReceipt, receiptKey, receiptOf, sealChange, unseal, type Envelope, type ReceiptEntry,
} from "@pigeon/model";
import { changeMeta, changeThenStore } from "../document-store.js";
import { opaque } from "../envelope-store.js";
import type { MailboxCore } from "./core.js";
import type { Views } from "./views.js";

export class Receipts {
  private ackTimer: NodeJS.Timeout | undefined;

  constructor(private readonly core: MailboxCore, private readonly views: Views) {}

  /**
   * Signed receipts in the document for messages of someone else (`ids`, or all), once each: "read";
   * and "delivered" for someone of another village (betweenVillages), where acknowledgements do not
   * travel: relay points route sealed envelopes, and this one goes back like a message.
   */
  async ensure(conv: Uint8Array, segment: number, want: { state: "delivered" | "read"; ids?: Set<string> }): Promise<void> {
    const { core } = this;
    const members = core.state.members(conv);
    const channel = core.isChannel(conv);
    if (channel && !members?.some((m) => equalBytes(m, core.me))) return; // removed: no receipts
    // a channel's receipts are sealed with the key of its current member list, to all of them
    // (for the messages of an epoch, with that epoch's key, to its members: each epoch has its own documents)
    const sealing = channel ? core.channelSealing(conv, segment) : undefined;
    if (channel && !sealing) return;
    const sending = sealing?.key ?? core.state.sendingKey(conv);
    if (!members || !sending) return;
    // a request gets no receipt until it is accepted: a stranger does not learn the child got it
    // (a channel's members are the owner's choice, not requests)
    if (!channel && members.some((m) => !core.isBuddy(m))) return;
    const handle = await core.segmentHandle(conv, segment);
    const todo: { id: string; index: number; state: "delivered" | "read" }[] = [];
    const doc = handle.doc();
    for (let index = 0; index < doc.messages.length; index++) {
      const m = doc.messages[index]!;
      if (m.author.toString() === core.myKeyId) continue;
      const id = m.id.toString();
      if ((!want.ids || want.ids.has(id)) && receiptOf(doc, index, core.myKeyId, want.state) === undefined) todo.push({ id, index, state: want.state });
    }
    if (todo.length === 0) return;
    const at = core.now();
    // one change (so one envelope) for the whole batch, taken back if it cannot be stored
    let env!: Envelope;
    const made = changeThenStore(
      handle,
      (d) => A.change(d, { time: Math.floor(at / 1000) }, (x) => {
        for (const t of todo) putReceipt(x, t.index, core.myKeyId, t.state, at);
      }),
      (change) => {
        env = sealChange(
          core.identity,
          { conversation: conv, segment, recipients: sealing?.recipients ?? members.filter((m) => !equalBytes(m, core.me)), created: at, lifetime: core.lifetime },
          sending.key,
          change,
        );
        core.storeOwn(env);
      },
    );
    if (!made) return;
    const { change } = made;
    const decoded = changeMeta(change);
    core.state.batch(() => {
      core.state.recordChange(conv, segment, decoded);
      core.state.markOpened(env.id, conv, "applied", core.now(), undefined, decoded.hash);
    });
    await core.flushQuietly(handle as DocHandle<unknown>);
    this.views.noteArrivals(conv, members, segment, handle.doc(), 0, undefined, { messages: [], receipts: todo.map((t) => [receiptKey(t.id, core.myKeyId, t.state), at]) });
  }

  /**
   * Ids asked to be marked read while earlier work runs, joined by later asks until their piece of
   * work starts: one receipt change (one envelope, one document change on every member's laptop) for
   * all of them. A page marking what it shows one message at a time (the web app, an XMPP client's
   * "displayed" markers) made one each, and in a class channel each one reached 40 laptops.
   */
  private queuedRead: { ids: Set<string>; callers: { ids: string[]; resolve: (n: number) => void; reject: (e: unknown) => void }[] } | undefined;

  /** Marks incoming messages read (all, or the given ids); the signed read receipt travels back. Says how many of them it marked. */
  markRead(ids?: string[]): Promise<number> {
    if (!ids) return this.core.serial(async () => (await this.markNow(undefined)).size);
    return new Promise<number>((resolve, reject) => {
      const caller = { ids, resolve, reject };
      if (this.queuedRead) {
        for (const id of ids) this.queuedRead.ids.add(id);
        this.queuedRead.callers.push(caller);
        return;
      }
      const batch = { ids: new Set(ids), callers: [caller] };
      this.queuedRead = batch;
      this.core
        .serial(async () => {
          if (this.queuedRead === batch) this.queuedRead = undefined; // later asks start a new batch
          return this.markNow([...batch.ids]);
        })
        .then(
          (marked) => batch.callers.forEach((c) => c.resolve([...new Set(c.ids)].filter((id) => marked.has(id)).length)),
          (e: unknown) => batch.callers.forEach((c) => c.reject(e)),
        );
    });
  }

  /** Marks read now (inside a piece of work); returns the ids marked. */
  private async markNow(ids: string[] | undefined): Promise<Set<string>> {
    const { core } = this;
    const marked = new Set<string>();
    const wanted = ids && new Set(ids);
    // where each asked-for message is, looked up once (not once per conversation)
    const found = ids && [...new Set(ids)].flatMap((id) => {
      const m = core.state.indexedMessage(id);
      return m ? [m] : [];
    });
    for (const conv of core.state.conversations()) {
      // requests are not marked: their sender gets no receipt until the child accepts them
      if (!core.isChannel(conv) && core.state.members(conv)!.some((m) => !core.isBuddy(m))) continue;
      const segments = found
        ? [...new Set(found.filter((m) => equalBytes(m.conversation, conv)).map((m) => m.segment))]
        : core.state.unreadSegments(conv); // the index knows which segments hold unread messages
      for (const seg of segments) {
        const doc = (await core.segmentHandle(conv, seg)).doc();
        const want = new Set(
          doc.messages
            .filter((m, i) => m.author.toString() !== core.myKeyId && (!wanted || wanted.has(m.id.toString())) && receiptOf(doc, i, core.myKeyId, "read") === undefined)
            .map((m) => m.id.toString()),
        );
        if (want.size === 0) continue;
        for (const id of want) marked.add(id);
        await this.ensure(conv, seg, { ids: want, state: "read" });
      }
    }
    if (marked.size) core.events.emit("changed");
    return marked;
  }


  /**
   * A conversation of two with someone of another home (another village): "delivered" goes back
   * signed, as a message does. Whether this laptop has heard of that village's relay point yet does
   * not matter: the receipt waits, and is wrapped for it once it is heard of (core.wrapWrittenFor).
   */
  betweenVillages(conv: Uint8Array): boolean {
    const { core } = this;
    if (core.isChannel(conv)) return false;
    return (core.state.members(conv) ?? []).some((m) => {
      const home = core.state.contact(m)?.home;
      return !equalBytes(m, core.me) && home !== undefined && home !== core.identity.home;
    });
  }

  /**
   * Envelopes of ours a receipt just opened a lock of: each one-to-one message among them is delivered
   * (its one lock is its recipient's), shown and announced once, with when this laptop learnt it and
   * how the receipt came (`hops`). A channel's are counted per member from the locks (Views.openedBy).
   */
  acknowledged(ids: Uint8Array[], hops: number): void {
    let any = false;
    for (const id of ids) if (this.views.noteDelivered(id, hops)) any = true;
    if (any) this.core.events.emit("changed");
  }

  /** Whether an acknowledgement batch waits to be written (it is written 20 ms after the first owed). */
  get ackPending(): boolean {
    return this.ackTimer !== undefined;
  }

  /**
   * Remembers (durably) that `env` is owed an acknowledgement, and writes one shortly; a request's
   * (a conversation of two with someone not on the buddy list) is held until they are accepted.
   */
  queueAck(env: Envelope): void {
    const { core } = this;
    const held = (env.kind === EnvelopeKind.Change || env.kind === EnvelopeKind.Key) && !core.isChannel(env.conversation) && !core.isBuddy(env.author);
    if (held) {
      core.state.holdAck(env.id, env.author, env.conversation);
      return;
    }
    core.state.oweAck(env.id, env.author); // durable, so a crash before the ack is written loses nothing
    this.flushSoon();
  }

  /** The person was accepted, or a channel became known: what was held for them, or in it, is acknowledged. */
  release(by: { author: Uint8Array } | { conversation: Uint8Array }): void {
    if (this.core.state.releaseHeldAcks(by) > 0) this.flushSoon();
  }

  private flushSoon(): void {
    const { core } = this;
    this.ackTimer ??= setTimeout(() => {
      this.ackTimer = undefined;
      void core.serial(async () => this.flushAcks()).catch((e: unknown) => core.log.warn(`could not write an acknowledgement: ${(e as Error).message}`));
    }, 20);
  }

  /**
   * Acknowledges what this user received with receipts (envelope version 3, at most 1024 entries
   * each): for each sealed envelope, its id and this person's ack key, which opens its lock at every
   * carrier holding a copy. Unsigned: a receipt names no one, and carriers cannot tell whose it is.
   */
  flushAcks(): void {
    const { core } = this;
    const owed = core.state.owedAcks();
    if (owed.length === 0) return;
    const entries: ReceiptEntry[] = [];
    for (const p of owed) {
      const bytes = core.envelopes.bytesOf(p.id);
      if (!bytes || envelopeForm(bytes) !== "sealed") continue;
      const opened = unseal(decodeSealed(bytes), core.sealingKeys());
      if (opened?.lock) entries.push({ id: p.id, ackKey: opened.ackKey });
    }
    for (let i = 0; i < entries.length; i += MAX_ACK_IDS) {
      const named = entries.slice(i, i + MAX_ACK_IDS);
      const receipt = makeReceipt({ created: core.now(), lifetime: core.lifetime }, named);
      core.envelopes.recordAckNames(receipt.id, named.map((e) => e.id)); // before it is announced: routing needs it
      core.storeRow(opaque({ ...receipt, kind: EnvelopeKind.Ack }));
    }
    // our own locks are open here too: what only we were waiting for is no longer sprayed to carriers
    core.envelopes.batch(() => {
      for (const e of entries) core.envelopes.recordAcks(lockOf(e.ackKey), [e.id]);
    });
    core.state.paidAcks(owed.map((p) => p.id));
  }

  /** Writes owed acknowledgements now (on close). */
  async close(): Promise<void> {
    if (!this.ackTimer) return;
    clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
    await this.core.serial(async () => this.flushAcks()).catch(() => {});
  }
}
