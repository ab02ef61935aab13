// Opening envelopes addressed to this user: admission (model/admission.ts), then the change is applied
// to the participant's document and the clock observed (its acknowledgement was queued when it was
// stored; a first message's key, travelling with it, is taken first). Nothing an envelope contains
// may stop the node: content that Automerge or admission refuses is recorded as rejected with the
// reason, and only this laptop's own storage failures are retried later.
import * as A from "@automerge/automerge";
import type { DocHandle } from "@automerge/automerge-repo";
import { hasChanges, admitEnvelope, checkReceiptTargets, EnvelopeKind, equalBytes, hlcReceive, parseHlc, toHex, type Admission, type ConversationDoc, type Envelope } from "@pigeon/model";
import type { Buddies } from "./buddies.js";
import type { Channels } from "./channels.js";
import { channelBudgetRefusal, overBudgetWaiting } from "./channel-budget.js";
import type { Drafts } from "./drafts.js";
import type { Forgetting } from "./forgetting.js";
import { INTRODUCED, isStorageError, type MailboxCore } from "./core.js";
import type { Receipts } from "./receipts.js";
import type { HeldEnvelope } from "../envelope-store.js";
import { freshSince, indicesOf, type Fresh, type Views } from "./views.js";

/**
 * A received clock moves ours at most this far ahead of our own wall clock: a laptop a few days fast
 * still orders replies after its messages, but one set to the year 2099 cannot drag this laptop's
 * clock (and, through it, everyone's it meets) into the future.
 */
export const MAX_CLOCK_LEAD_MS = 7 * 24 * 3600 * 1000;

export class Opening {
  constructor(
    private readonly core: MailboxCore,
    private readonly views: Views,
    private readonly receipts: Receipts,
    private readonly buddies: Buddies,
    private readonly drafts: Drafts,
    private readonly channels: Channels,
    private readonly forgetting: Forgetting,
  ) {}

  /** Opens what waited in a conversation (a channel's membership or key arrived). */
  reopen(conv: Uint8Array): Promise<void> {
    return this.openWaiting(conv);
  }

  /**
   * Opens one envelope, and then whatever it unblocked. Content problems end as "rejected"; a storage
   * failure is thrown (the caller retries when the disk has room).
   */
  async open(env: Envelope): Promise<void> {
    // a segment forgotten here: acknowledged (written now, while its copy is still here), never opened
    if (env.kind === EnvelopeKind.Change && this.core.isForgotten(env.conversation, env.segment)) {
      if (!equalBytes(env.author, this.core.me)) this.receipts.flushAcks();
      this.forgetting.arrived(env);
      return;
    }
    const status = this.core.state.openedStatus(env.id);
    if (status === "applied" || status === "rejected") return; // already decided: never revisited
    if (this.core.isBlocked(env.author)) return this.refuseBlocked(env);
    try {
      await this.openOne(env);
    } catch (e) {
      if (isStorageError(e)) throw e;
      this.reject(env, `could not be applied: ${(e as Error).message ?? String(e)}`);
    }
  }

  /**
   * An envelope for the user from someone they blocked: never opened, not even after an unblock (a
   * block really blocks: what they wrote meanwhile is not shown later either).
   */
  refuseBlocked(env: Envelope): void {
    this.core.log.info(`not opening envelope ${toHex(env.id).slice(0, 12)}: its author ${this.core.addressOf(env.author)} is blocked`);
    this.core.state.markOpened(env.id, env.conversation, "rejected", this.core.now(), "its author is blocked");
  }

  private reject(env: Envelope, reason: string): void {
    this.core.log.warn(`rejected envelope ${toHex(env.id).slice(0, 12)} from ${this.core.addressOf(env.author)}: ${reason}`);
    this.core.state.markOpened(env.id, env.conversation, "rejected", this.core.now(), reason);
  }

  /** Opens envelopes of `conv` that were waiting (for a key, or for earlier changes), until none moves. */
  private async openWaiting(conv: Uint8Array): Promise<void> {
    for (let progress = true; progress; ) {
      progress = false;
      for (const id of this.core.state.pending(conv)) {
        if (this.core.state.openedStatus(id) !== "pending") continue; // opened meanwhile
        const p = this.core.envelopes.get(id);
        if (!p) continue;
        await this.open(p);
        if (this.core.state.openedStatus(id) !== "pending") progress = true;
      }
    }
  }

  private async openOne(env: HeldEnvelope): Promise<void> {
    const { core } = this;
    const conv = env.conversation;
    // a conversation's first message carries its key: the key first (a bad key refuses the message)
    if (env.key && !core.state.keyMap(conv).has(toHex(env.key.keyId))) {
      const k = this.admit(env.key);
      if (k.status !== "key") {
        this.reject(env, `the key it carries: ${k.status === "rejected" ? k.reason : "not for this person"}`);
        return;
      }
      this.keyOpened(env.key, k);
    }
    const admission = this.admit(env);
    switch (admission.status) {
      case "rejected":
        this.reject(env, admission.reason);
        return;
      case "pending":
        core.state.markOpened(env.id, conv, "pending", core.now(), admission.reason);
        return;
      case "key": {
        this.keyOpened(env, admission, true);
        await this.openWaiting(conv);
        return;
      }
      case "change":
        return this.applyChange(env, admission);
    }
  }

  private admit(env: Envelope) {
    const { core } = this;
    const conv = env.conversation;
    return admitEnvelope(env, {
      me: core.identity,
      members: core.state.members(conv),
      keys: core.state.keyMap(conv),
      alreadyOpened: (id) => {
        const s = core.state.openedStatus(id);
        return s === "applied" || s === "rejected";
      },
      changeKnown: (hash) => core.state.changeOpenedElsewhere(hash, env.id),
      revoked: (device) => core.state.revocation(device)?.reason,
      channel: this.channels.admissionContext(conv),
    });
  }

  /**
   * A conversation key admitted: kept, with what its author says of themselves; `opened`: the key
   * envelope travelled alone, and is now opened (one that travels with a message is opened with it).
   */
  private keyOpened(env: Envelope, admission: Extract<Admission, { status: "key" }>, opened = false): void {
    const { core } = this;
    const conv = env.conversation;
    core.state.batch(() => {
      if (!this.channels.isChannel(conv)) core.state.rememberConversation(conv, admission.members);
      core.state.addKey(conv, { keyId: env.keyId, key: admission.key, envelope: env.id });
      if (opened) core.state.markOpened(env.id, conv, "applied", core.now());
    });
    // someone never met: keep what they say about themselves, shown as their claim, so the
    // message has a name and can be answered (a known contact's name is never overwritten)
    const claims = admission.authorClaims;
    if (claims && !equalBytes(env.author, core.me) && !core.state.contact(env.author)) {
      // not announced as a new buddy (no roster push): what they write waits under requests
      core.state.rememberContact({ ...claims, signPublicKey: env.author, sealPublicKey: admission.authorSealPublicKey }, INTRODUCED, core.now());
    }
  }

  private async applyChange(env: Envelope, admission: Extract<Admission, { status: "change" }>): Promise<void> {
    const { core } = this;
    const conv = env.conversation;
    const { decoded } = admission;
    // an author who signs two different changes with the same number contradicts themselves:
    // Automerge cannot hold both, so the second is refused here (and kept as evidence)
    const earlier = core.state.changeAt(conv, env.segment, decoded.actor, decoded.seq);
    if (earlier !== undefined && earlier !== decoded.hash) {
      this.reject(env, `the author signed two different changes numbered ${decoded.seq} (kept as evidence against them)`);
      return;
    }
    // the person's own documents, edited on another device of theirs: drafts (admitted by the
    // drafts rule) and the buddy list (by the buddy-list rule)
    const personal = this.drafts.isHere(conv, env.segment) ? this.drafts : this.buddies.isHere(conv) ? this.buddies : undefined;
    if (personal) {
      if (!(await personal.receive(env, admission.change, decoded)))
        core.state.markOpened(env.id, conv, "pending", core.now(), "waiting for earlier changes");
      else await this.openWaiting(conv);
      return;
    }
    const handle = await core.segmentHandle(conv, env.segment);
    if (!hasChanges(handle.doc(), decoded.deps)) {
      core.state.markOpened(env.id, conv, "pending", core.now(), "waiting for earlier changes");
      return;
    }
    // its receipts go into messages' own receipts maps, or the segment's for messages without one,
    // and nowhere else (the change's past is here now)
    const misplaced = checkReceiptTargets(handle.doc(), admission.receiptTargets, admission.flatReceipts);
    if (misplaced) {
      this.reject(env, misplaced);
      return;
    }
    const flood = channelBudgetRefusal(core, this.channels, env);
    if (flood) {
      // kept neither here nor passed on; nor what of theirs waits here for this epoch
      for (const id of [env.id, ...overBudgetWaiting(core, env)]) {
        core.state.markOpened(id, conv, "rejected", core.now(), flood);
        core.envelopes.dropRefused(id, "over the channel budget");
      }
      core.log.warn(`refused a change ${toHex(env.id).slice(0, 12)} in ${toHex(conv).slice(0, 12)}: ${flood}`);
      return;
    }
    // what this change brings (when it was already there, caught up from the store, everything is looked at)
    let fresh: Fresh | undefined;
    if (!hasChanges(handle.doc(), [decoded.hash])) {
      const before = A.getHeads(handle.doc());
      handle.update((d) => A.applyChanges(d, [admission.change])[0]);
      fresh = freshSince(handle.doc(), before);
    }
    core.state.batch(() => {
      core.state.recordChange(conv, env.segment, decoded);
      core.state.markOpened(env.id, conv, "applied", core.now(), undefined, decoded.hash);
    });
    await core.flushQuietly(handle as DocHandle<unknown>);
    this.observeClock(handle.doc(), fresh);
    const own = equalBytes(env.author, core.me) ? env.id : undefined;
    this.views.noteArrivals(conv, core.state.members(conv)!, env.segment, handle.doc(), core.envelopes.meta(env.id)?.hops ?? 0, own, fresh);
    if (!own && this.receipts.betweenVillages(conv)) await this.receipts.ensure(conv, env.segment, { state: "delivered" });
    core.events.emit("changed");
    await this.openWaiting(conv); // a change may unblock others that were waiting for it
  }

  /** Moves our clock past what received messages claim, but never more than MAX_CLOCK_LEAD_MS ahead of our wall clock. */
  private observeClock(doc: ConversationDoc, fresh?: Fresh): void {
    const { core } = this;
    const now = core.now();
    let h = core.state.hlc();
    let changed = false;
    for (const m of fresh ? indicesOf(doc, fresh.messages).map((i) => doc.messages[i]!) : doc.messages) {
      const parsed = parseHlc(m.hlc.toString());
      if (!parsed) continue;
      const remote = parsed.wall > now + MAX_CLOCK_LEAD_MS ? { wall: now + MAX_CLOCK_LEAD_MS, counter: 0 } : parsed;
      if (remote.wall > h.wall || (remote.wall === h.wall && remote.counter > h.counter)) {
        h = hlcReceive(h, remote, now);
        changed = true;
      }
    }
    if (changed) core.state.setHlc(h);
  }
}
