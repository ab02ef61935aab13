// Forgetting a conversation segment on this node alone (the school's e-mail gateway, which must not
// keep the text of mail longer than needed). The Automerge document, its index rows and this node's
// sealed copies of its changes are dropped; a small tombstone (conversation, segment, until when)
// stays, so that copies offered again by carriers or the other members' laptops are acknowledged
// (carriers drop them) but never opened or rebuilt into a document. The other members keep the
// whole conversation: nothing travels, nothing on the wire changes. New messages of the
// conversation written here start a fresh segment (sending.ts asks `nextSegment`).
import * as A from "@automerge/automerge";
import type { DocHandle } from "@automerge/automerge-repo";
import {
  EnvelopeKind, equalBytes, fromHex, openChange, recipientLocks, SEGMENT_BASE, sealChange, segmentDocumentId, segmentKind, toHex, type Envelope, type SegmentKind,
} from "@pigeon/model";
import type { MailboxCore } from "./core.js";
import { MailboxError, type MessageView } from "./types.js";
import type { Views } from "./views.js";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS forgotten_segments (
  conversation BLOB NOT NULL,
  segment INTEGER NOT NULL,
  at INTEGER NOT NULL,
  until INTEGER NOT NULL,   -- after this no copy of its envelopes can still travel (their lifetime is over)
  PRIMARY KEY (conversation, segment)
) WITHOUT ROWID;
`;

export interface ForgottenArrival {
  /** Hex conversation id. */
  conversation: string;
  segment: number;
  /** Address of whoever wrote it (the envelope's signed author). */
  from: string;
  /** Hex id of the envelope. */
  envelope: string;
}

export class Forgetting {
  constructor(private readonly core: MailboxCore, private readonly views: Views) {
    core.state.db.exec(SCHEMA);
    core.isForgotten = (conv, segment) => this.isForgotten(conv, segment);
    core.forgottenSegments = (conv) => this.segments(conv);
  }

  isForgotten(conv: Uint8Array, segment: number): boolean {
    return this.core.state.statement(`SELECT 1 FROM forgotten_segments WHERE conversation = ? AND segment = ?`).get(conv, segment) !== undefined;
  }

  segments(conv: Uint8Array): number[] {
    return this.core.state.statement(`SELECT segment FROM forgotten_segments WHERE conversation = ? ORDER BY segment`).pluck().all(conv) as number[];
  }

  /** The conversation and segment a message is in (while it is still known here). */
  whereIs(messageId: string): { conversation: string; segment: number } | undefined {
    const m = this.core.state.indexedMessage(messageId);
    return m && { conversation: toHex(m.conversation), segment: m.segment };
  }

  /** The segments of a conversation still known here (not forgotten), lowest first. */
  known(conversation: string): number[] {
    return this.core.state.segments(fromHex(conversation));
  }

  /** The messages of one segment as this node shows them (the other member's state, receipts). */
  async messagesIn(conversation: string, segment: number): Promise<MessageView[]> {
    const { core } = this;
    const conv = fromHex(conversation);
    const members = core.state.members(conv);
    if (!members || this.isForgotten(conv, segment)) return [];
    const doc = (await core.segmentHandle(conv, segment)).doc();
    return doc.messages.map((_, i) => this.views.viewOf(conv, members, doc, i));
  }

  /**
   * Starts the next segment of a kind in a conversation with a change that holds nothing (no message,
   * no receipt: every laptop takes it, old ones too, and shows nothing): a member who applies it
   * writes there from then on (sending.ts writes to the highest segment it knows), so the segments
   * before can be forgotten here without its next message landing in one. Returns the new segment.
   */
  moveOn(conversation: string, kind: SegmentKind = "messages"): Promise<number> {
    const { core } = this;
    const conv = fromHex(conversation);
    return core.serial(async () => {
      const members = core.state.members(conv);
      const sending = core.state.sendingKey(conv);
      if (!members || !sending || core.isChannel(conv)) throw new MailboxError("bad-input", "only a conversation of two with a key moves on");
      const taken = [...core.state.segments(conv), ...this.segments(conv)].filter((s) => segmentKind(s) === kind);
      const segment = taken.length ? Math.max(...taken) + 1 : SEGMENT_BASE[kind];
      const handle = await core.segmentHandle(conv, segment);
      const at = core.now();
      const next = A.emptyChange(A.clone(handle.doc(), { actor: core.actor }), { time: Math.floor(at / 1000) });
      const change = A.getLastLocalChange(next)!;
      const env = sealChange(
        core.identity,
        { conversation: conv, segment, recipients: members.filter((m) => !equalBytes(m, core.me)), created: at, lifetime: core.lifetime },
        sending.key,
        change,
      );
      core.storeOwn(env);
      handle.update((d) => A.applyChanges(d, [change])[0]);
      const decoded = A.decodeChange(change);
      core.state.batch(() => {
        core.state.recordChange(conv, segment, decoded);
        core.state.markOpened(env.id, conv, "applied", core.now(), undefined, decoded.hash);
      });
      await core.flushQuietly(handle as DocHandle<unknown>);
      return segment;
    });
  }

  /**
   * Whether every other member has shown it knows a segment of the same kind after `segment`: it
   * acknowledged one of this node's envelopes there, or wrote there itself. Its next message then
   * cannot land in `segment` (short of a copy written earlier and carried late).
   */
  knownPast(conversation: string, segment: number): boolean {
    const { core } = this;
    const conv = fromHex(conversation);
    const others = (core.state.members(conv) ?? []).filter((m) => !equalBytes(m, core.me));
    if (others.length === 0) return false;
    const kind = segmentKind(segment);
    const shown = new Set<string>();
    for (const id of core.envelopes.conversationEnvelopes(conv)) {
      const meta = core.envelopes.meta(id);
      if (!meta || meta.carried || meta.kind !== EnvelopeKind.Change || meta.segment <= segment || segmentKind(meta.segment) !== kind) continue;
      if (!equalBytes(meta.author, core.me)) {
        shown.add(toHex(meta.author));
        continue;
      }
      const acked = new Set(core.envelopes.ackers(id).map(toHex));
      if (acked.size === 0) continue;
      const inner = core.envelopes.get(id);
      if (!inner) continue;
      const keys = others.map((k) => core.state.contact(k)?.sealPublicKey ?? core.directorySealKey(k));
      if (keys.some((k) => !k)) continue;
      const locks = recipientLocks(core.identity.sealing, inner.bytes, keys as Uint8Array[]);
      others.forEach((k, i) => locks[i] && acked.has(toHex(locks[i]!)) && shown.add(toHex(k)));
    }
    return others.every((k) => shown.has(toHex(k)));
  }

  /**
   * Forgets one segment here: its document (every stored chunk), its rows in the message index, the
   * change numbers and arrival marks of its messages, and this node's sealed copies of its changes
   * (kept until now only for acknowledgements and the other members' devices: the members' own
   * laptops hold every envelope of their conversation). Returns how many envelopes were let go.
   */
  forget(conversation: Uint8Array | string, segment: number): Promise<number> {
    const { core } = this;
    const conv = typeof conversation === "string" ? fromHex(conversation) : conversation;
    return core.serial(async () => {
      if (this.isForgotten(conv, segment)) return 0;
      const docId = segmentDocumentId(conv, segment);
      const ids = core.state.db
        .prepare(`SELECT id FROM message_index WHERE conversation = ? AND segment = ?`)
        .pluck()
        .all(conv, segment) as string[];
      // the envelopes of this segment held here as a party (carried ones are someone else's, and sealed)
      const own = core.envelopes
        .conversationEnvelopes(conv)
        .map((id) => core.envelopes.meta(id))
        .filter((m) => m && !m.carried && m.kind === EnvelopeKind.Change && m.segment === segment);
      const now = core.now();
      const until = Math.max(now + core.lifetime, ...own.map((m) => m!.created + m!.lifetime));
      const db = core.state.db;
      // the tombstone first: from here nothing of this segment is opened or rebuilt, even if the rest fails
      db.prepare(`INSERT OR IGNORE INTO forgotten_segments (conversation, segment, at, until) VALUES (?, ?, ?, ?)`).run(conv, segment, now, until);
      core.forgetCaughtUp(conv, segment);
      await core.documents.remove(docId);
      core.state.batch(() => {
        db.prepare(`DELETE FROM message_index WHERE conversation = ? AND segment = ?`).run(conv, segment);
        db.prepare(`DELETE FROM segments WHERE conversation = ? AND segment = ?`).run(conv, segment);
        db.prepare(`DELETE FROM change_seqs WHERE document = ?`).run(`${toHex(conv)}/${segment}`);
        for (const id of ids) {
          db.prepare(`DELETE FROM arrivals WHERE key = ?`).run(`m:${id}`);
          db.prepare(`DELETE FROM sent_messages WHERE message_id = ?`).run(id);
        }
        // receipts' arrival marks name message ids too: `r:<message>/<reader>/<state>`
        for (const id of ids) db.prepare(`DELETE FROM arrivals WHERE key LIKE ?`).run(`r:${id}/%`);
      });
      // dropped as delivered: a copy offered again is refused at the door ("already delivered"), and
      // where it came from is kept, so the acknowledgements written for it still find their way
      core.envelopes.batch(() => {
        for (const m of own) core.envelopes.dropDelivered(m!.id, now);
      });
      // the old pages of what was deleted are overwritten and the write-ahead log emptied, once the
      // group holding this deletion is committed (inside its transaction the checkpoint fails,
      // "database table is locked")
      core.group.afterCommit(() => {
        try {
          core.state.db.pragma("wal_checkpoint(TRUNCATE)");
        } catch (e) {
          core.log.warn(`could not empty the write-ahead log after forgetting: ${(e as Error).message}`);
        }
      });
      this.purge();
      core.log.info(`forgot conversation ${toHex(conv).slice(0, 12)} segment ${segment}: ${ids.length} message(s), ${own.length} envelope(s)`);
      core.events.emit("changed");
      return own.length;
    });
  }

  /**
   * A change of a forgotten segment reached this node again (a carrier's copy, the author's laptop
   * offering it again) or for the first time (written before its author learnt of the fresh
   * segment). It is acknowledged like any envelope for us (the caller queued that), never opened,
   * and not kept (dropped as delivered). One never opened here is announced: its author should be told to write it again.
   */
  arrived(env: Envelope): void {
    const { core } = this;
    const seen = core.state.openedStatus(env.id) !== undefined;
    core.envelopes.dropDelivered(env.id, core.now());
    if (seen) return;
    core.state.markOpened(env.id, env.conversation, "rejected", core.now(), "its conversation segment was forgotten here before it arrived");
    // only a change that adds a message is worth writing again: a receipt ("read", days later) of a
    // message in that segment is not (its reader is not asked for anything); when unsure, it is announced
    if (!this.mayHoldMessage(env)) {
      core.log.info(`not opening envelope ${toHex(env.id).slice(0, 12)} from ${core.addressOf(env.author)} (receipts only): its conversation segment was forgotten here`);
      return;
    }
    core.log.info(`not opening envelope ${toHex(env.id).slice(0, 12)} from ${core.addressOf(env.author)}: its conversation segment was forgotten here`);
    core.events.emit("forgotten-arrival", {
      conversation: toHex(env.conversation), segment: env.segment, from: core.addressOf(env.author), envelope: toHex(env.id),
    });
  }

  /** Whether a change adds a message (a map appended to the message list), looked at without any document. */
  private mayHoldMessage(env: Envelope): boolean {
    const key = this.core.state.keyMap(env.conversation).get(toHex(env.keyId));
    const change = key && openChange(env, key);
    if (!change) return true;
    try {
      return A.decodeChange(change).ops.some((op) => op.action === "makeMap" && (op as { insert?: boolean }).insert === true);
    } catch {
      return true;
    }
  }

  /**
   * Tombstones whose envelopes can no longer travel (their lifetime is over: nothing of them can come
   * back), except each conversation's highest, which keeps new messages from reusing its number.
   */
  purge(): number {
    return this.core.state.db
      .prepare(
        `DELETE FROM forgotten_segments AS f WHERE until < ?
         AND segment < (SELECT max(segment) FROM forgotten_segments g WHERE g.conversation = f.conversation)`,
      )
      .run(this.core.now()).changes;
  }
}
