// Writing a message: resolve the person, make sure the conversation has a key (sealed to every
// member), append the message to the current segment, seal the change and store it (fsynced)
// before answering. Once the envelope is stored the message is sent, whatever fails after it.
import * as A from "@automerge/automerge";
import type { DocHandle } from "@automerge/automerge-repo";
import {
  appendMessage, channelSegmentBase, conversationId, SEGMENTS_PER_EPOCH, conversationKeyId, equalBytes, formatHlc, fromHex, hlcTick, MAX_BODY_CHARS, newConversationKey,
  newMessageId, sealChange, sealKey,
} from "@pigeon/model";
import type { Contact } from "../local-state.js";
import type { Buddies } from "./buddies.js";
import type { MailboxCore } from "./core.js";
import type { People } from "./people.js";
import { MailboxError, type MessageView } from "./types.js";
import type { Views } from "./views.js";

export class Sending {
  constructor(
    private readonly core: MailboxCore,
    private readonly people: People,
    private readonly views: Views,
    private readonly buddies: Buddies,
  ) {}

  /** Writes to someone by what the user typed; writing to someone makes them a buddy (the child chose them). */
  async send(address: string, body: string): Promise<MessageView> {
    checkBody(body);
    return this.core.serial(async () => {
      const to = this.people.resolve(address);
      if (equalBytes(to.signPublicKey, this.core.me)) throw new MailboxError("bad-input", "that is your own address");
      if (this.core.isBlocked(to.signPublicKey))
        throw new MailboxError("blocked", `you blocked ${this.core.addressOf(to.signPublicKey)}: unblock them first to write to them`);
      if (!this.core.isBuddy(to.signPublicKey)) await this.buddies.add(to);
      return this.sendTo(to, body);
    });
  }

  /**
   * Answers a received message in its own conversation: always possible, whatever the sender is called
   * (or whether they are a contact at all), since the conversation already has its members and key.
   * Answering a request ("who are you?") does not make its sender a buddy; accepting it does.
   */
  async reply(messageId: string, body: string): Promise<MessageView> {
    checkBody(body);
    return this.core.serial(async () => {
      const original = await this.views.message(messageId);
      if (!original) throw new MailboxError("not-found", `no message ${messageId}`);
      const members = this.core.state.members(fromHex(original.conversation)) ?? [];
      const others = members.filter((k) => !equalBytes(k, this.core.me));
      if (others.length !== 1) throw new MailboxError("bad-input", "that conversation has no one else to answer");
      if (this.core.isBlocked(others[0]!))
        throw new MailboxError("blocked", `you blocked ${this.core.addressOf(others[0]!)}: unblock them first to write to them`);
      return this.sendTo({ signPublicKey: others[0]! }, body);
    });
  }

  private async sendTo(to: Pick<Contact, "signPublicKey"> & Partial<Pick<Contact, "sealPublicKey">>, body: string): Promise<MessageView> {
    const core = this.core;
    const members = [core.me, to.signPublicKey];
    const conv = conversationId(members);
    core.state.rememberConversation(conv, members);
    let sending = core.state.sendingKey(conv);
    // a first message, or the first after a member's device was revoked: a new key, sealed to every
    // member's current sealing key (a revoked device has neither it nor the person's new sealing key)
    if (!sending || core.state.needsRekey(conv)) {
      const sealPublicKey = core.state.contact(to.signPublicKey)?.sealPublicKey ?? to.sealPublicKey;
      if (!sealPublicKey) throw new MailboxError("unknown-address", "this laptop does not have their keys yet");
      const key = newConversationKey();
      const recipient = { signPublicKey: to.signPublicKey, sealPublicKey };
      const env = sealKey(core.identity, { conversation: conv, recipients: [recipient], created: core.now(), lifetime: core.lifetime }, key);
      core.storeOwn(env);
      core.state.batch(() => {
        core.state.addKey(conv, { keyId: conversationKeyId(key), key, envelope: env.id });
        core.state.setSendingKey(conv, conversationKeyId(key));
        core.state.markOpened(env.id, conv, "applied", core.now());
      });
      sending = core.state.sendingKey(conv)!;
    }
    return this.append(conv, members, [to.signPublicKey], sending.key, body);
  }

  /** Writes to a channel: one envelope, sealed once with the key of its current member list. */
  async sendToChannel(conv: Uint8Array, body: string): Promise<MessageView> {
    checkBody(body);
    return this.core.serial(async () => {
      const { key, recipients } = this.core.channelSealing(conv)!;
      return this.append(conv, [this.core.me, ...recipients], recipients, key.key, body, channelSegmentBase(key.keyId));
    });
  }

  private async append(conv: Uint8Array, members: Uint8Array[], recipients: Uint8Array[], key: Uint8Array, body: string, base = 0): Promise<MessageView> {
    const core = this.core;
    // a channel's epoch writes its own documents, from `base` (model/channel.ts, SEGMENTS_PER_EPOCH)
    const segments = core.state.segments(conv).filter((s) => s >= base && s < base + (base ? SEGMENTS_PER_EPOCH : Number.MAX_SAFE_INTEGER));
    let segment = segments.length ? segments[segments.length - 1]! : base;
    let handle = await core.segmentHandle(conv, segment);
    if (handle.doc().messages.length >= core.segmentLimit) handle = await core.segmentHandle(conv, ++segment);
    const hlc = hlcTick(core.state.hlc(), core.now());
    const id = newMessageId();
    const sentAt = core.now();
    // The change is made on a copy and only applied once its envelope is safely stored: a message
    // that could not be stored (disk full) must not linger in the document unsealed.
    const { change } = appendMessage(A.clone(handle.doc(), { actor: core.actor }), {
      id, authorKeyId: core.myKeyId, hlc: formatHlc(hlc), sentAt, body,
    });
    const env = sealChange(
      core.identity,
      { conversation: conv, segment, recipients, created: sentAt, lifetime: core.lifetime },
      key,
      change,
    );
    core.storeOwn(env); // fsynced before we answer: the message is not lost from here on
    // From here the message is sent: nothing below may turn into "not sent" for the user, who would
    // then send it twice. What fails is redone from the sealed store (recover / catch-up).
    handle.update((d) => A.applyChanges(d, [change])[0]);
    const decoded = A.decodeChange(change);
    try {
      core.state.batch(() => {
        core.state.setHlc(hlc);
        core.state.recordSent(id, env.id);
        core.state.recordChange(conv, segment, decoded);
        core.state.markOpened(env.id, conv, "applied", core.now(), undefined, decoded.hash);
      });
    } catch (e) {
      core.log.warn(`message ${id} is stored but its bookkeeping could not be written (${core.storageFailed(e)}); it is redone on recovery`);
    }
    await core.flushQuietly(handle as DocHandle<unknown>);
    try {
      this.views.noteArrivals(conv, members, segment, handle.doc());
    } catch (e) {
      core.storageFailed(e);
    }
    core.events.emit("changed");
    const doc = handle.doc();
    return this.views.viewOf(conv, members, doc, doc.messages.findIndex((m) => m.id.toString() === id));
  }
}

function checkBody(body: string): void {
  if (typeof body !== "string" || body.trim() === "") throw new MailboxError("bad-input", "the message is empty");
  if (body.length > MAX_BODY_CHARS) throw new MailboxError("bad-input", `the message is ${body.length} characters; the limit is ${MAX_BODY_CHARS}`);
}
