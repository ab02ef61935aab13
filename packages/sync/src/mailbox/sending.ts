// Writing a message: resolve the person, make sure the conversation has a key (sealed to every
// member), append the message to the current segment, seal the change and store it (fsynced)
// before answering. Once the envelope is stored the message is sent, whatever fails after it.
import type { DocHandle } from "@automerge/automerge-repo";
import {
  appendMessages, channelSegmentBase, conversationId, SEGMENTS_PER_EPOCH, conversationKeyId, equalBytes, formatHlc, fromHex, hlcTick, MAX_BODY_CHARS, MAX_FILE_BYTES,
  MAX_PICTURE_BYTES, newConversationKey, newMessageId, sealChange, sealKey, SEGMENT_BASE, segmentKind, sha256, toHex, type Envelope, type NewMessage, type SegmentKind,
} from "@pigeon/model";
import { changeMeta, changeThenStore } from "../document-store.js";
import type { Contact } from "../local-state.js";
import type { Buddies } from "./buddies.js";
import type { MailboxCore } from "./core.js";
import type { People } from "./people.js";
import { MailboxError, type MessageView } from "./types.js";
import { indicesOf, type Views } from "./views.js";

/**
 * Sends to one address queued while earlier work ran go out together: one change, one sealed envelope,
 * one store (issue 20: a client replaying its queue, a burst through the control API). At most this
 * many messages, and this many characters, in one envelope.
 */
const BATCH_MESSAGES = 64;
const BATCH_CHARS = 16_384;

interface QueuedSend {
  body: string;
  resolve: (v: MessageView) => void;
  reject: (e: unknown) => void;
}

export class Sending {
  /** Sends waiting to be written, by the address typed: joined by sends to it until their batch starts. */
  private readonly queued = new Map<string, { sends: QueuedSend[]; chars: number }>();

  constructor(
    private readonly core: MailboxCore,
    private readonly people: People,
    private readonly views: Views,
    private readonly buddies: Buddies,
  ) {}

  /** Writes to someone by what the user typed; writing to someone makes them a buddy (the child chose them). */
  async send(address: string, body: string): Promise<MessageView> {
    checkBody(body);
    return new Promise<MessageView>((resolve, reject) => {
      const waiting = this.queued.get(address);
      if (waiting && waiting.sends.length < BATCH_MESSAGES && waiting.chars + body.length <= BATCH_CHARS) {
        waiting.sends.push({ body, resolve, reject });
        waiting.chars += body.length;
        return;
      }
      const batch = { sends: [{ body, resolve, reject }], chars: body.length };
      this.queued.set(address, batch);
      // each caller is answered once the commit holding its message is done (core.serial), as alone
      this.core
        .serial(async () => {
          if (this.queued.get(address) === batch) this.queued.delete(address); // later sends start a new batch
          return this.sendTo(await this.writingTo(address), batch.sends.map((q) => q.body));
        })
        .then(
          (views) => batch.sends.forEach((q, i) => q.resolve(views[i]!)),
          (e: unknown) => batch.sends.forEach((q) => q.reject(e)),
        );
    });
  }

  /** Whom the user writes to by what they typed: not themselves, not someone blocked; from here a buddy. */
  private async writingTo(address: string): Promise<Contact> {
    const to = this.people.resolve(address);
    if (equalBytes(to.signPublicKey, this.core.me)) throw new MailboxError("bad-input", "that is your own address");
    if (this.core.isBlocked(to.signPublicKey))
      throw new MailboxError("blocked", `you blocked ${this.core.addressOf(to.signPublicKey)}: unblock them first to write to them`);
    if (!this.core.isBuddy(to.signPublicKey)) await this.buddies.add(to);
    return to;
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
      return (await this.sendTo({ signPublicKey: others[0]! }, [body]))[0]!;
    });
  }

  /**
   * Corrects one of the user's own messages (XEP-0308): a new message naming it (`replaces`), written
   * to the conversation's corrections segment; readers show the new text in the old one's place.
   */
  async correct(messageId: string, body: string): Promise<MessageView> {
    checkBody(body);
    return this.core.serial(async () => {
      const original = await this.views.message(messageId);
      if (!original) throw new MailboxError("not-found", `no message ${messageId}`);
      if (original.direction !== "out") throw new MailboxError("bad-input", "only your own messages can be corrected");
      // a correction of a correction corrects the message it corrected
      const target = original.replaces ?? original.id;
      const members = this.core.state.members(fromHex(original.conversation)) ?? [];
      const others = members.filter((k) => !equalBytes(k, this.core.me));
      if (others.length !== 1) throw new MailboxError("bad-input", "that conversation has no one else to write to");
      if (this.core.isBlocked(others[0]!))
        throw new MailboxError("blocked", `you blocked ${this.core.addressOf(others[0]!)}: unblock them first to write to them`);
      return (await this.sendTo({ signPublicKey: others[0]! }, [body], "corrections", { replaces: target }))[0]!;
    });
  }

  /**
   * Sends a file (a picture from an XMPP client's upload) to someone: a message whose text is the
   * file's name, with the file inside, in the conversation's attachments segment.
   */
  async sendFile(address: string, name: string, fileType: string, file: Uint8Array): Promise<MessageView> {
    if (file.length > MAX_FILE_BYTES) throw new MailboxError("bad-input", `the file is ${file.length} bytes; the largest file is ${MAX_FILE_BYTES} bytes`);
    const body = name.replace(/[\u0000-\u001f]/g, "").slice(0, 200) || "file";
    return this.core.serial(async () => (await this.sendTo(await this.writingTo(address), [body], "attachments", { file, fileType }))[0]!);
  }

  /**
   * The user's picture (their avatar), or none: kept here, and written to the profile segment of the
   * conversation with every buddy this laptop has written to (and, later, with each one at the next
   * message), so their clients show it.
   */
  async setPicture(fileType: string, file: Uint8Array): Promise<number> {
    if (file.length > MAX_PICTURE_BYTES) throw new MailboxError("bad-input", `the picture is ${file.length} bytes; the largest is ${MAX_PICTURE_BYTES} bytes`);
    return this.core.serial(async () => {
      this.core.state.setSetting("picture", JSON.stringify({ fileType, file: toHex(file) }));
      let n = 0;
      for (const conv of this.core.state.conversations()) {
        const others = (this.core.state.members(conv) ?? []).filter((k) => !equalBytes(k, this.core.me));
        if (others.length !== 1 || !this.core.isBuddy(others[0]!) || !this.core.state.sendingKey(conv)) continue;
        if (await this.sharePicture(conv, others[0]!)) n++;
      }
      return n;
    });
  }

  /** Writes the user's current picture to this conversation's profile segment, unless it is there already. */
  private async sharePicture(conv: Uint8Array, to: Uint8Array): Promise<boolean> {
    const stored = this.core.state.setting("picture");
    if (!stored) return false;
    const { fileType, file } = JSON.parse(stored) as { fileType: string; file: string };
    const hash = toHex(sha256(fromHex(file)));
    const key = `picture-shared:${toHex(conv)}`;
    if (this.core.state.setting(key) === hash) return false;
    await this.sendTo({ signPublicKey: to }, ["picture"], "profile", { file: fromHex(file), fileType }, false);
    this.core.state.setSetting(key, hash);
    return true;
  }

  /** Writes `bodies` (one, or a batch of sends queued together) to someone, in one change and one envelope. */
  private async sendTo(
    to: Pick<Contact, "signPublicKey"> & Partial<Pick<Contact, "sealPublicKey">>,
    bodies: string[],
    kind: SegmentKind = "messages",
    extra: Pick<NewMessage, "replaces" | "file" | "fileType"> = {},
    picture = true,
  ): Promise<MessageView[]> {
    const core = this.core;
    const members = [core.me, to.signPublicKey];
    const conv = conversationId(members);
    core.state.rememberConversation(conv, members);
    const sending = core.state.sendingKey(conv);
    const sealPublicKey = core.state.contact(to.signPublicKey)?.sealPublicKey ?? to.sealPublicKey;
    // a first message, or the first after a member's device was revoked: a new key, sealed to every
    // member's current sealing key (a revoked device has neither it nor the person's new sealing key),
    // travelling inside the message's own sealed envelope
    let fresh: FreshKey | undefined;
    if (!sending || core.state.needsRekey(conv)) {
      if (!sealPublicKey) throw new MailboxError("unknown-address", "this laptop does not have their keys yet");
      fresh = { key: newConversationKey(), recipients: [{ signPublicKey: to.signPublicKey, sealPublicKey }] };
    }
    const key = fresh?.key ?? sending!.key;
    const views = await this.append(conv, members, [to.signPublicKey], key, bodies, kind, extra, sealPublicKey ? [sealPublicKey] : undefined, undefined, fresh);
    // a buddy written to for the first time since the user set a picture gets it now
    if (picture && core.isBuddy(to.signPublicKey)) {
      try {
        await this.sharePicture(conv, to.signPublicKey);
      } catch (e) {
        core.log.warn(`could not share the picture with ${core.addressOf(to.signPublicKey)}: ${(e as Error).message}`);
      }
    }
    return views;
  }

  /** Writes to a channel: one envelope, sealed once with the key of its current member list. */
  async sendToChannel(conv: Uint8Array, body: string): Promise<MessageView> {
    checkBody(body);
    return this.core.serial(async () => {
      const { key, recipients } = this.core.channelSealing(conv)!;
      return (await this.append(conv, [this.core.me, ...recipients], recipients, key.key, [body], "messages", {}, undefined, channelSegmentBase(key.keyId)))[0]!;
    });
  }

  private async append(
    conv: Uint8Array,
    members: Uint8Array[],
    recipients: Uint8Array[],
    key: Uint8Array,
    bodies: string[],
    kind: SegmentKind,
    extra: Pick<NewMessage, "replaces" | "file" | "fileType">,
    sealKeys: Uint8Array[] | undefined,
    channelBase?: number,
    fresh?: FreshKey,
  ): Promise<MessageView[]> {
    const core = this.core;
    // a channel's epoch writes its own documents, from its base (model/channel.ts, SEGMENTS_PER_EPOCH);
    // a conversation of two has one run of documents per kind (messages, corrections, files, picture)
    const segments = core.state
      .segments(conv)
      .filter((s) => (channelBase !== undefined ? s >= channelBase && s < channelBase + SEGMENTS_PER_EPOCH : segmentKind(s) === kind));
    let segment = segments.length ? segments[segments.length - 1]! : channelBase ?? SEGMENT_BASE[kind];
    // a segment forgotten on this node is never written again: new messages start the next one
    const forgotten = channelBase === undefined ? core.forgottenSegments(conv).filter((s) => segmentKind(s) === kind) : [];
    if (forgotten.length && forgotten[forgotten.length - 1]! >= segment) segment = forgotten[forgotten.length - 1]! + 1;
    let handle = await core.segmentHandle(conv, segment);
    if (handle.doc().messages.length >= core.segmentLimit) handle = await core.segmentHandle(conv, ++segment);
    const sentAt = core.now();
    // each message its own clock reading, in the order they were sent
    let hlc = core.state.hlc();
    const messages: NewMessage[] = bodies.map((body) => {
      hlc = hlcTick(hlc, sentAt);
      return { id: newMessageId(), authorKeyId: core.myKeyId, hlc: formatHlc(hlc), sentAt, body, ...extra };
    });
    const ids = messages.map((m) => m.id);
    // The change is taken back if its envelope cannot be stored: a message that could not be stored
    // (disk full) must not linger in the document unsealed.
    let env!: Envelope;
    const { change } = changeThenStore(
      handle,
      (d) => appendMessages(d, messages).doc,
      (change) => {
        env = sealChange(core.identity, { conversation: conv, segment, recipients, created: sentAt, lifetime: core.lifetime }, key, change);
        // a new key is sealed for the same hour as the message, and travels in its envelope
        const keyEnv = fresh && sealKey(core.identity, { conversation: conv, recipients: fresh.recipients, created: sentAt, lifetime: core.lifetime }, fresh.key);
        core.storeOwn(env, sealKeys, keyEnv); // fsynced before we answer: the message is not lost from here on
      },
    )!;
    // From here the message is sent: nothing below may turn into "not sent" for the user, who would
    // then send it twice. What fails is redone from the sealed store (recover / catch-up).
    const decoded = changeMeta(change);
    try {
      core.state.batch(() => {
        // the key is ours to write with only once the message carrying it is stored
        if (fresh) {
          core.state.addKey(conv, { keyId: conversationKeyId(fresh.key), key: fresh.key, envelope: env.id });
          core.state.setSendingKey(conv, conversationKeyId(fresh.key));
        }
        core.state.setHlc(hlc);
        for (const id of ids) core.state.recordSent(id, env.id);
        core.state.recordChange(conv, segment, decoded);
        core.state.markOpened(env.id, conv, "applied", core.now(), undefined, decoded.hash);
      });
    } catch (e) {
      core.log.warn(`message ${ids.join(", ")} is stored but its bookkeeping could not be written (${core.storageFailed(e)}); it is redone on recovery`);
    }
    await core.flushQuietly(handle as DocHandle<unknown>);
    let told = new Map<string, MessageView>();
    try {
      told = this.views.noteArrivals(conv, members, segment, handle.doc(), 0, undefined, { messages: ids, receipts: [] });
    } catch (e) {
      core.storageFailed(e);
    }
    core.events.emit("changed");
    const doc = handle.doc();
    // as told to listeners a moment ago; found from the end (they were just appended), not by reading
    // every message of the segment, for one not told
    return indicesOf(doc, ids).map((i) => told.get(doc.messages[i]!.id.toString()) ?? this.views.viewOf(conv, members, doc, i));
  }
}

/** A conversation key made for this message, sealed to `recipients`, travelling in its envelope. */
interface FreshKey {
  key: Uint8Array;
  recipients: { signPublicKey: Uint8Array; sealPublicKey: Uint8Array }[];
}

function checkBody(body: string): void {
  if (typeof body !== "string" || body.trim() === "") throw new MailboxError("bad-input", "the message is empty");
  if (body.length > MAX_BODY_CHARS) throw new MailboxError("bad-input", `the message is ${body.length} characters; the limit is ${MAX_BODY_CHARS}`);
}
