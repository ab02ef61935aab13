// The mailbox: where this laptop's user's messages are written, sealed, opened and shown.
// Inbox, Outbox, Drafts and Waiting-to-be-sent are views derived from the documents; the sealed
// store is the source of truth from which documents are caught up after a crash.
import { EventEmitter } from "node:events";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import * as A from "@automerge/automerge";
import type { DocHandle } from "@automerge/automerge-repo";
import {
  admitEnvelope,
  appendMessage,
  conversationId,
  conversationKeyId,
  decodeEnvelope,
  DEFAULT_LIFETIME_SECONDS,
  emptySegment,
  EnvelopeError,
  EnvelopeKind,
  ackedIds,
  MAX_ACK_IDS,
  sealAck,
  equalBytes,
  formatAddress,
  formatHlc,
  hlcReceive,
  hlcTick,
  isAddressedTo,
  keyId,
  MAX_BODY_CHARS,
  newActorId,
  newConversationKey,
  newMessageId,
  openChange,
  parseAddress,
  parseHlc,
  receiptKey,
  sealChange,
  sealKey,
  SEGMENT_MESSAGE_LIMIT,
  segmentDocumentId,
  sha256,
  toHex,
  utf8,
  verifyEnvelope,
  type ContactCard,
  type ConversationDoc,
  type Envelope,
  type Identity,
} from "@pigeon/model";
import { DocumentStore } from "./document-store.js";
import { EnvelopeStore, openDatabase } from "./envelope-store.js";
import { LocalState, type Contact } from "./local-state.js";

export interface Log {
  info(msg: string): void;
  warn(msg: string): void;
}

export const silentLog: Log = { info() {}, warn() {} };

export class MailboxError extends Error {
  constructor(readonly code: "unknown-address" | "ambiguous-address" | "bad-input" | "not-found" | "storage", message: string) {
    super(message);
    this.name = "MailboxError";
  }
}

export type MessageState = "waiting" | "sent" | "delivered" | "read";

export interface MessageView {
  id: string;
  conversation: string;
  direction: "in" | "out";
  from: string;
  to: string[];
  body: string;
  hlc: string;
  /** The author's clock's claim, not a fact. */
  claimedSentAt: number;
  /** When, and as which number, it first reached (or was written on) this laptop: MAM order. */
  arrivedAt?: number;
  arrivalSeq?: number;
  /** Outgoing only. */
  state?: MessageState;
  handedAt?: number;
  /** Whether the first device that took it was the recipient's ("direct") or a carrier's. */
  sentVia?: "direct" | "carrier";
  /** Address of the first device that took it. */
  sentTo?: string;
  deliveredAt?: number;
  /** How the recipient's delivered receipt came back: straight from them, or through carriers. */
  deliveredVia?: "direct" | "carriers";
  readAt?: number;
}

export interface DraftView {
  id: string;
  to: string;
  body: string;
  updatedAt: number;
}

interface DraftsDoc {
  drafts: Record<string, { to: A.ImmutableString; body: A.ImmutableString; updatedAt: number }>;
}

/** An envelope as it came off a link. */
export interface Incoming {
  bytes: Uint8Array;
  /** Hops it has travelled, this one included. */
  hops: number;
  /** Who handed it over (for messages) and their key (for the per-source budget). */
  from?: string;
  source?: Uint8Array;
  /** Spray-and-wait tokens handed over with it. */
  copies?: number;
}

interface Admitted {
  env: Envelope;
  party: boolean;
  evicted: number;
  ackIds: Uint8Array[];
}

export interface ReceiveResult {
  stored: boolean;
  /** Set when the envelope was refused at the door (not stored). */
  refused?: string;
  /** The refusal was this laptop's problem (disk full): ask for it again later. */
  retry?: boolean;
}

function describeStorageError(e: unknown): string {
  const code = (e as { code?: string }).code;
  if (code === "SQLITE_FULL" || code === "ENOSPC") return "the disk is full";
  if (code === "EDQUOT") return "the disk quota is used up";
  return (e as Error).message ?? String(e);
}

export interface CarrierLimits {
  /** Storage for envelopes carried for others. Default 50 MB. */
  quotaBytes: number;
  /** Most that one handing laptop may have us carry. Default a tenth of the quota. */
  perSourceBytes: number;
  /** Most carried for one author identity. Default a tenth of the quota. */
  perAuthorBytes: number;
  /** Larger carried envelopes are refused. Default 64 KiB. */
  maxCarriedEnvelopeBytes: number;
}

export function carrierLimits(quotaBytes = 50 * 1024 * 1024, over: Partial<CarrierLimits> = {}): CarrierLimits {
  return {
    quotaBytes,
    perSourceBytes: Math.max(64 * 1024, Math.floor(quotaBytes / 10)),
    perAuthorBytes: Math.max(64 * 1024, Math.floor(quotaBytes / 10)),
    maxCarriedEnvelopeBytes: 64 * 1024,
    ...over,
  };
}

export interface MailboxOptions {
  carrier?: Partial<CarrierLimits>;
  identity: Identity;
  dataDir: string;
  now?: () => number;
  log?: Log;
  lifetimeSeconds?: number;
  /** Messages per conversation segment document before the next one starts (default 1000). */
  segmentMessageLimit?: number;
}

type Events = {
  /** A new envelope entered the sealed store (ours or carried): tell the peers. */
  envelope: [Envelope];
  /** Something a user would see changed (new message, new state). */
  changed: [];
  /** A message appeared for the first time (received, or written here). */
  message: [MessageView];
  /** A receipt appeared for the first time. */
  receipt: [ReceiptEvent];
  /** Someone was met for the first time (added for the XMPP roster pushes). */
  contact: [Contact];
};

export interface ReceiptEvent {
  conversation: string;
  messageId: string;
  reader: string;
  state: "delivered" | "read";
  at: number;
}

export class Mailbox extends EventEmitter<Events> {
  readonly identity: Identity;
  readonly envelopes: EnvelopeStore;
  readonly state: LocalState;
  readonly documents: DocumentStore;
  private readonly now: () => number;
  private readonly log: Log;
  private readonly lifetime: number;
  private readonly segmentLimit: number;
  private readonly actor: string;
  private readonly myKeyId: string;
  private queue: Promise<unknown> = Promise.resolve();
  /** Set while the disk refuses writes; cleared when a write succeeds again. */
  storageTrouble: { since: number; reason: string } | undefined;
  private needsRecovery = false;
  private readonly refusals = new Map<string, number>();
  private ackTimer: NodeJS.Timeout | undefined;
  readonly limits: CarrierLimits;
  private caughtUp = new Set<string>();
  private closed = false;

  constructor(opts: MailboxOptions) {
    super();
    this.identity = opts.identity;
    this.now = opts.now ?? Date.now;
    this.log = opts.log ?? silentLog;
    this.lifetime = opts.lifetimeSeconds ?? DEFAULT_LIFETIME_SECONDS;
    this.segmentLimit = opts.segmentMessageLimit ?? SEGMENT_MESSAGE_LIMIT;
    this.limits = carrierLimits(opts.carrier?.quotaBytes, opts.carrier);
    mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
    const db = openDatabase(join(opts.dataDir, "pigeon.db"));
    this.envelopes = new EnvelopeStore(db);
    this.state = new LocalState(db);
    this.documents = new DocumentStore(join(opts.dataDir, "documents"), this.log);
    this.actor = newActorId(this.identity.signing.publicKey);
    this.myKeyId = keyId(this.identity.signing.publicKey);
  }

  get me(): Uint8Array {
    return this.identity.signing.publicKey;
  }

  get address(): string {
    return formatAddress(this.identity);
  }

  /** Runs mutations one at a time: documents and stores are never half-updated by interleaving. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => {});
    return run;
  }

  /** After a start or a crash: open what arrived but was never opened, and retry what was waiting. */
  recover(): Promise<void> {
    return this.serial(async () => {
      const unopened = this.state.unopened(this.me);
      for (const id of [...unopened, ...this.state.pending()]) {
        const env = this.envelopes.get(id);
        if (!env) continue;
        // its acknowledgement may have been lost with the crash too
        if (unopened.includes(id) && !equalBytes(env.author, this.me)) this.queueAck(env);
        await this.openEnvelope(env);
      }
      for (const conv of this.state.conversations()) {
        for (const seg of this.state.segments(conv)) await this.ensureReceipts(conv, seg);
      }
      this.flushAcks(); // acknowledgements a crash kept from being written
    });
  }

  // ---- contacts ----

  rememberContact(card: ContactCard, how: string): void {
    if (equalBytes(card.signPublicKey, this.me)) return;
    const isNew = this.state.contact(card.signPublicKey) === undefined;
    this.state.rememberContact(card, how, this.now());
    if (isNew) this.emit("contact", this.state.contact(card.signPublicKey)!);
  }

  contacts(): Contact[] {
    return this.state.contacts();
  }

  resolve(address: string): Contact {
    let wanted;
    try {
      wanted = parseAddress(address);
    } catch (e) {
      throw new MailboxError("bad-input", (e as Error).message);
    }
    const matches = this.contacts().filter((c) => c.name === wanted.name && c.home === wanted.home);
    if (matches.length === 0) {
      const known = this.contacts().map((c) => formatAddress(c));
      throw new MailboxError(
        "unknown-address",
        `unknown address ${formatAddress(wanted)}: this laptop has never met them` +
          (known.length ? ` (known: ${known.join(", ")})` : " (no contacts yet: laptops are met on the local network)"),
      );
    }
    if (matches.length > 1)
      throw new MailboxError("ambiguous-address", `${formatAddress(wanted)} is more than one person here; this needs the school server's trusted identities`);
    return matches[0]!;
  }

  private addressOf(signKey: Uint8Array): string {
    if (equalBytes(signKey, this.me)) return this.address;
    const c = this.state.contact(signKey);
    return c ? formatAddress(c) : `unknown#${keyId(signKey)}`;
  }

  private addressOfKeyId(id: string, members: Uint8Array[]): string {
    const m = members.find((k) => keyId(k) === id);
    return m ? this.addressOf(m) : `unknown#${id}`;
  }

  // ---- sending ----

  async send(address: string, body: string): Promise<MessageView> {
    if (typeof body !== "string" || body.trim() === "") throw new MailboxError("bad-input", "the message is empty");
    if (body.length > MAX_BODY_CHARS)
      throw new MailboxError("bad-input", `the message is ${body.length} characters; the limit is ${MAX_BODY_CHARS}`);
    const to = this.resolve(address);
    if (equalBytes(to.signPublicKey, this.me)) throw new MailboxError("bad-input", "that is your own address");
    return this.serial(() => this.sendTo(to, body));
  }

  private async sendTo(to: Contact, body: string): Promise<MessageView> {
    const members = [this.me, to.signPublicKey];
    const conv = conversationId(members);
    this.state.rememberConversation(conv, members);
    let keys = this.state.keys(conv);
    if (keys.length === 0) {
      const key = newConversationKey();
      const env = sealKey(this.identity, { conversation: conv, recipients: [to], created: this.now(), lifetime: this.lifetime }, key);
      this.storeOwn(env);
      this.state.addKey(conv, { keyId: conversationKeyId(key), key, envelope: env.id });
      this.state.markOpened(env.id, conv, "applied", this.now());
      keys = this.state.keys(conv);
    }
    const segments = this.state.segments(conv);
    let segment = segments.length ? segments[segments.length - 1]! : 0;
    let handle = await this.segmentHandle(conv, segment);
    if (handle.doc().messages.length >= this.segmentLimit) handle = await this.segmentHandle(conv, ++segment);
    const hlc = hlcTick(this.state.hlc(), this.now());
    const id = newMessageId();
    const sentAt = this.now();
    // The change is made on a copy and only applied once its envelope is safely stored: a message
    // that could not be stored (disk full) must not linger in the document unsealed.
    const { change } = appendMessage(A.clone(handle.doc(), { actor: this.actor }), {
      id, authorKeyId: this.myKeyId, hlc: formatHlc(hlc), sentAt, body,
    });
    const env = sealChange(
      this.identity,
      { conversation: conv, segment, recipients: [to.signPublicKey], created: sentAt, lifetime: this.lifetime },
      keys[0]!.key,
      change,
    );
    this.storeOwn(env); // fsynced before we answer: the message is not lost from here on
    handle.update((d) => A.applyChanges(d, [change])[0]);
    this.state.batch(() => {
      this.state.setHlc(hlc);
      this.state.recordSent(id, env.id);
      this.state.markOpened(env.id, conv, "applied", this.now(), undefined, A.decodeChange(change).hash);
    });
    await this.documents.flush(handle as DocHandle<unknown>);
    this.noteArrivals(conv, members, handle.doc());
    this.emit("changed");
    const doc = handle.doc();
    return this.viewOf(conv, members, doc, doc.messages.findIndex((m) => m.id.toString() === id));
  }

  private storeOwn(env: Envelope): void {
    try {
      this.envelopes.put(env, 0, this.now());
    } catch (e) {
      throw new MailboxError("storage", `could not store the message: ${this.storageFailed(e)}; nothing was sent, try again when there is room`);
    }
    this.storageWorks();
    this.emit("envelope", env);
  }

  private storageFailed(e: unknown): string {
    const reason = describeStorageError(e);
    if (!this.storageTrouble) this.storageTrouble = { since: this.now(), reason };
    this.needsRecovery = true;
    return reason;
  }

  private storageWorks(): void {
    if (this.storageTrouble) {
      this.log.info(`storage works again (it failed at ${new Date(this.storageTrouble.since).toISOString()}: ${this.storageTrouble.reason})`);
      this.storageTrouble = undefined;
    }
  }

  /** Drops carried envelopes past their lifetime (counted from when this laptop received them). */
  dropExpired(): Promise<number> {
    return this.serial(async () => {
      const n = this.envelopes.dropExpired(this.now());
      if (n) {
        this.log.info(`dropped ${n} carried envelope(s) past their lifetime`);
        this.emit("changed");
      }
      return n;
    });
  }

  /** Called periodically: once the disk has room again, open what had to wait. */
  async retryAfterStorageTrouble(): Promise<void> {
    if (!this.needsRecovery) return;
    try {
      await this.recover();
      this.needsRecovery = false;
      this.storageWorks();
    } catch (e) {
      this.storageFailed(e);
    }
  }

  private async segmentHandle(conv: Uint8Array, segment: number): Promise<DocHandle<ConversationDoc>> {
    this.state.addSegment(conv, segment);
    const { handle } = await this.documents.open<ConversationDoc>(segmentDocumentId(conv, segment), () => emptySegment(), this.actor);
    const key = `${toHex(conv)}/${segment}`;
    if (!this.caughtUp.has(key)) {
      this.caughtUp.add(key);
      await this.catchUp(conv, segment, handle);
    }
    return handle;
  }

  /** Re-applies opened changes that a crash kept out of the stored document. */
  private async catchUp(conv: Uint8Array, segment: number, handle: DocHandle<ConversationDoc>): Promise<void> {
    const keys = this.state.keyMap(conv);
    const missing: Uint8Array[] = [];
    for (const id of this.envelopes.conversationEnvelopes(conv)) {
      if (this.state.openedStatus(id) !== "applied") continue;
      const env = this.envelopes.get(id);
      if (!env || env.kind !== EnvelopeKind.Change || env.segment !== segment) continue;
      const key = keys.get(toHex(env.keyId));
      const change = key && openChange(env, key);
      if (!change) continue;
      if (!A.hasHeads(handle.doc(), [A.decodeChange(change).hash])) missing.push(change);
    }
    if (missing.length) {
      this.log.warn(`catching up ${missing.length} change(s) the document had lost (after a crash?)`);
      handle.update((d) => A.applyChanges(d, missing)[0]);
      await this.documents.flush(handle as DocHandle<unknown>);
    }
  }

  // ---- receiving ----

  /** Says why an envelope was refused, without letting a flood of junk flood the log too. */
  private refused(from: string | undefined, env: Envelope | undefined, reason: string): ReceiveResult {
    const key = `${from ?? "?"}|${reason}`;
    const n = (this.refusals.get(key) ?? 0) + 1;
    this.refusals.set(key, n);
    if (n <= 3 || Number.isInteger(Math.log10(n)))
      this.log.warn(
        `refused ${env ? `envelope ${toHex(env.id).slice(0, 12)}` : "an envelope"}${from ? ` from ${from}` : ""}: ${reason}` +
          (n > 3 ? ` (${n} such refusals so far)` : ""),
      );
    return { stored: false, refused: reason };
  }

  /**
   * Takes an envelope from a peer. Everything is checked before it is stored: envelopes for this user
   * are opened at once; others are carried within the carrier limits; acknowledgements drop the copies
   * they confirm.
   */
  receive(bytes: Uint8Array, hops: number, from?: string, source?: Uint8Array, copies = 1): Promise<ReceiveResult> {
    return this.receiveMany([{ bytes, hops, from, source, copies }]).then((r) => r[0]!);
  }

  /**
   * Takes a batch of envelopes (a burst from one link) with one store transaction, so a contact that
   * moves thousands of envelopes pays one fsync per batch, not per envelope. Nothing is announced,
   * acknowledged or opened before the batch is committed; if the batch cannot be written (disk full),
   * each envelope is tried on its own, so one that fits still gets in.
   */
  receiveMany(items: Incoming[]): Promise<ReceiveResult[]> {
    return this.serial(async () => {
      // what admit() stored counts only once its transaction committed (a full disk fails the commit)
      const stored: Admitted[] = [];
      const attempt = (batch: Incoming[]): ReceiveResult[] => {
        const admitted: Admitted[] = [];
        const results = this.envelopes.batch(() => batch.map((it) => this.admit(it, admitted)));
        stored.push(...admitted);
        return results;
      };
      let results: ReceiveResult[];
      try {
        results = attempt(items);
      } catch (e) {
        results =
          items.length === 1
            ? [this.storeFailed(items[0]!, e)]
            : items.map((it) => {
                try {
                  return attempt([it])[0]!;
                } catch (e2) {
                  return this.storeFailed(it, e2);
                }
              });
      }
      if (stored.length) this.storageWorks();
      for (const a of stored) await this.afterStore(a);
      // batches queue up behind each other: let pings and other links in between
      if (items.length > 16) await new Promise<void>((r) => setImmediate(r));
      return results;
    });
  }

  private storeFailed(it: Incoming, e: unknown): ReceiveResult {
    const reason = this.storageFailed(e);
    let id = "an envelope";
    try {
      id = `envelope ${toHex(decodeEnvelope(it.bytes).id).slice(0, 12)}`;
    } catch {
      // it was refused before it could fail to store
    }
    this.log.warn(`could not store ${id}${it.from ? ` from ${it.from}` : ""}: ${reason}; it will be fetched again`);
    return { stored: false, refused: reason, retry: true };
  }

  /** Checks one envelope and stores it (inside the caller's transaction); side effects come in afterStore. */
  private admit(it: Incoming, stored: Admitted[]): ReceiveResult {
    const { from, source } = it;
    let env: Envelope;
    try {
      env = decodeEnvelope(it.bytes);
    } catch (e) {
      return this.refused(from, undefined, e instanceof EnvelopeError ? e.reason : String(e));
    }
    if (this.envelopes.has(env.id)) return { stored: false };
    if (this.envelopes.wasDelivered(env.id)) return this.refused(from, env, "replayed: already delivered, its copy was dropped");
    const party = isAddressedTo(env, this.me);
    if (!party && env.bytes.length > this.limits.maxCarriedEnvelopeBytes)
      return this.refused(from, env, `oversize: ${env.bytes.length} bytes, carriers take at most ${this.limits.maxCarriedEnvelopeBytes}`);
    if (!verifyEnvelope(env)) return this.refused(from, env, "forged signature");
    const now = this.now();
    let ackIds: Uint8Array[] = [];
    if (env.kind === EnvelopeKind.Ack) {
      try {
        ackIds = ackedIds(env);
      } catch (e) {
        return this.refused(from, env, (e as EnvelopeError).reason);
      }
    }
    let evict: Uint8Array[] = [];
    if (!party) {
      if (this.envelopes.ackedByAllRecipients(env.id, env.recipients)) {
        this.envelopes.dropDelivered(env.id, now);
        return { stored: false, refused: "already delivered" };
      }
      const room = this.makeRoom(env, source, from);
      if (typeof room === "string") {
        this.envelopes.forget(env.id, "refused", now); // do not fetch it again at every contact
        return this.refused(from, env, room);
      }
      evict = room;
    }
    if (!this.envelopes.put(env, it.hops, now, !party, source, evict, party ? undefined : Math.max(1, it.copies ?? 1))) return { stored: false };
    // the ack's names are known before it is announced: routing needs them
    if (ackIds.length) this.envelopes.recordAckNames(env.id, ackIds);
    stored.push({ env, party, evicted: evict.length, ackIds });
    return { stored: true };
  }

  private async afterStore({ env, party, evicted, ackIds }: Admitted): Promise<void> {
    if (evicted) this.log.info(`carrier quota: evicted ${evicted} carried envelope(s) to make room`);
    this.emit("envelope", env);
    if (ackIds.length) this.applyAck(env, ackIds);
    if (party && env.kind !== EnvelopeKind.Ack) {
      if (!equalBytes(env.author, this.me)) this.queueAck(env);
      try {
        await this.openEnvelope(env);
      } catch (e) {
        const reason = this.storageFailed(e);
        this.log.warn(`stored envelope ${toHex(env.id).slice(0, 12)} but could not open it: ${reason}; it will be opened when the disk has room`);
      }
    }
  }

  /**
   * Carrier limits, checked before a carried envelope is stored: a per-source and a per-author budget
   * (so one laptop or identity flooding junk cannot crowd out others), then the total quota, freed by
   * evicting expired, then most widely handed-on, then oldest carried envelopes.
   * Returns the envelopes to evict, or the reason to refuse.
   */
  private makeRoom(env: Envelope, source: Uint8Array | undefined, from: string | undefined): Uint8Array[] | string {
    const size = env.bytes.length;
    const l = this.limits;
    if (source && this.envelopes.carriedBytesFromSource(source) + size > l.perSourceBytes)
      return `${from ?? "that laptop"} is over its carrying budget (${Math.round(l.perSourceBytes / 1024)} KiB of envelopes carried for it)`;
    if (this.envelopes.carriedBytesByAuthor(env.author) + size > l.perAuthorBytes)
      return `its author is over their carrying budget (${Math.round(l.perAuthorBytes / 1024)} KiB)`;
    const over = this.envelopes.carriedBytes() + size - l.quotaBytes;
    if (over <= 0) return [];
    const evict = this.envelopes.evictionCandidates(over, this.now());
    return evict.length ? evict : `carrier storage is full (${Math.round(l.quotaBytes / 1048576)} MB)`;
  }

  /** A valid ack drops every carried copy it confirms (all recipients acknowledged). Forged acks change nothing. */
  private applyAck(ack: Envelope, ids: Uint8Array[]): void {
    this.envelopes.recordAcks(ack.author, ids);
    let dropped = 0;
    let forged = 0;
    for (const id of ids) {
      const meta = this.envelopes.meta(id);
      if (!meta || !this.envelopes.isCarried(id)) continue;
      // only a recipient of the envelope (per its own signed header) can confirm it
      if (!meta.recipients.some((r) => equalBytes(r, ack.author))) {
        forged++;
        continue;
      }
      if (this.envelopes.ackedByAllRecipients(id, meta.recipients)) {
        this.envelopes.dropDelivered(id, this.now());
        dropped++;
      }
    }
    if (forged)
      this.log.warn(`ignored an acknowledgement from ${this.addressOf(ack.author)} for ${forged} envelope(s) it is not a recipient of (forged acknowledgement)`);
    if (dropped) {
      this.log.info(`delivery confirmed by ${this.addressOf(ack.author)}: dropped ${dropped} carried envelope(s)`);
      this.emit("changed");
    }
  }

  /**
   * Records that `recipient` holds these carried envelopes (learned over an authenticated link) and
   * drops every copy whose recipients all hold it. Returns how many were dropped.
   */
  confirmDelivered(recipient: Uint8Array, ids: Uint8Array[]): number {
    this.envelopes.recordAcks(recipient, ids);
    let dropped = 0;
    for (const id of ids) {
      const meta = this.envelopes.meta(id);
      if (!meta || !this.envelopes.isCarried(id)) continue;
      if (!meta.recipients.some((r) => equalBytes(r, recipient))) continue;
      if (this.envelopes.ackedByAllRecipients(id, meta.recipients)) {
        this.envelopes.dropDelivered(id, this.now());
        dropped++;
      }
    }
    if (dropped) this.emit("changed");
    return dropped;
  }

  private queueAck(env: Envelope): void {
    this.state.oweAck(env.id, env.author); // durable, so a crash before the ack is written loses nothing
    this.ackTimer ??= setTimeout(() => {
      this.ackTimer = undefined;
      void this.serial(async () => this.flushAcks()).catch((e: unknown) => this.log.warn(`could not write an acknowledgement: ${(e as Error).message}`));
    }, 20);
  }

  /** Acknowledges what this user received, one ack per batch of authors (at most 64 recipients, 1024 ids). */
  private flushAcks(): void {
    const owed = this.state.owedAcks();
    if (owed.length === 0) return;
    const byAuthor = new Map<string, { author: Uint8Array; ids: Uint8Array[] }>();
    for (const p of owed) {
      const k = toHex(p.author);
      if (!byAuthor.has(k)) byAuthor.set(k, { author: p.author, ids: [] });
      byAuthor.get(k)!.ids.push(p.id);
    }
    const groups = [...byAuthor.values()];
    for (let g = 0; g < groups.length; g += 64) {
      const batch = groups.slice(g, g + 64);
      const ids = batch.flatMap((b) => b.ids);
      for (let i = 0; i < ids.length; i += MAX_ACK_IDS) {
        const named = ids.slice(i, i + MAX_ACK_IDS);
        const ack = sealAck(this.identity, { recipients: batch.map((b) => b.author), created: this.now(), lifetime: this.lifetime }, named);
        this.envelopes.recordAckNames(ack.id, named); // before it is announced: routing needs it
        this.storeOwn(ack);
        this.state.paidAcks(named);
      }
    }
  }

  private async openEnvelope(env: Envelope): Promise<void> {
    const conv = env.conversation;
    const members = this.state.members(conv);
    let handle: DocHandle<ConversationDoc> | undefined;
    const admission = admitEnvelope(env, {
      me: this.identity,
      members,
      keys: this.state.keyMap(conv),
      alreadyOpened: (id) => this.state.openedStatus(id) === "applied" || this.state.openedStatus(id) === "rejected",
      changeKnown: (hash) => this.state.changeOpenedElsewhere(hash, env.id),
    });
    const short = toHex(env.id).slice(0, 12);
    switch (admission.status) {
      case "rejected":
        this.log.warn(`rejected envelope ${short} from ${this.addressOf(env.author)}: ${admission.reason}`);
        this.state.markOpened(env.id, conv, "rejected", this.now(), admission.reason);
        return;
      case "pending":
        this.state.markOpened(env.id, conv, "pending", this.now(), admission.reason);
        return;
      case "key": {
        this.state.rememberConversation(conv, admission.members);
        this.state.addKey(conv, { keyId: env.keyId, key: admission.key, envelope: env.id });
        this.state.markOpened(env.id, conv, "applied", this.now());
        for (const id of this.state.pending(conv)) {
          const p = this.envelopes.get(id);
          if (p) await this.openEnvelope(p);
        }
        return;
      }
      case "change": {
        handle = await this.segmentHandle(conv, env.segment);
        const { decoded } = admission;
        if (!A.hasHeads(handle.doc(), decoded.deps)) {
          this.state.markOpened(env.id, conv, "pending", this.now(), "waiting for earlier changes");
          return;
        }
        if (!A.hasHeads(handle.doc(), [decoded.hash])) handle.update((d) => A.applyChanges(d, [admission.change])[0]);
        await this.documents.flush(handle as DocHandle<unknown>);
        this.state.markOpened(env.id, conv, "applied", this.now(), undefined, decoded.hash);
        this.observeClock(handle.doc());
        this.noteArrivals(conv, this.state.members(conv)!, handle.doc(), this.envelopes.meta(env.id)?.hops ?? 0);
        await this.ensureReceipts(conv, env.segment);
        this.emit("changed");
        // a change may unblock others that were waiting for it
        for (const id of this.state.pending(conv)) {
          const p = this.envelopes.get(id);
          if (p && !equalBytes(p.id, env.id)) await this.openEnvelope(p);
        }
        return;
      }
    }
  }

  /** Emits 'message' and 'receipt' for what this laptop sees for the first time, and numbers it. */
  private noteArrivals(conv: Uint8Array, members: Uint8Array[], doc: ConversationDoc, hops = 0): void {
    const at = this.now();
    for (let i = 0; i < doc.messages.length; i++) {
      if (this.state.recordArrival(`m:${doc.messages[i]!.id.toString()}`, at) !== undefined)
        this.emit("message", this.viewOf(conv, members, doc, i));
    }
    for (const [key, when] of Object.entries(doc.receipts)) {
      if (this.state.recordArrival(`r:${key}`, at, hops) === undefined) continue;
      const [messageId, reader, state] = key.split("/") as [string, string, "delivered" | "read"];
      this.emit("receipt", { conversation: toHex(conv), messageId, reader: this.addressOfKeyId(reader, members), state, at: when });
    }
  }

  private observeClock(doc: ConversationDoc): void {
    let h = this.state.hlc();
    let changed = false;
    for (const m of doc.messages) {
      const remote = parseHlc(m.hlc.toString());
      if (remote && (remote.wall > h.wall || (remote.wall === h.wall && remote.counter > h.counter))) {
        h = hlcReceive(h, remote, this.now());
        changed = true;
      }
    }
    if (changed) this.state.setHlc(h);
  }

  /** Every message from someone else gets our signed "delivered" receipt, exactly once. */
  private async ensureReceipts(conv: Uint8Array, segment: number, also?: { ids: Set<string>; state: "read" }): Promise<void> {
    const members = this.state.members(conv);
    const keys = this.state.keys(conv);
    if (!members || keys.length === 0) return;
    const handle = await this.segmentHandle(conv, segment);
    const todo: { id: string; state: "delivered" | "read" }[] = [];
    for (const m of handle.doc().messages) {
      if (m.author.toString() === this.myKeyId) continue;
      const id = m.id.toString();
      if (handle.doc().receipts[receiptKey(id, this.myKeyId, "delivered")] === undefined) todo.push({ id, state: "delivered" });
      if (also?.ids.has(id) && handle.doc().receipts[receiptKey(id, this.myKeyId, "read")] === undefined) todo.push({ id, state: "read" });
    }
    if (todo.length === 0) return;
    const at = this.now();
    // one change (so one envelope) for the whole batch, made on a copy until it is stored
    const next = A.change(A.clone(handle.doc(), { actor: this.actor }), { time: Math.floor(at / 1000) }, (x) => {
      for (const t of todo) x.receipts[receiptKey(t.id, this.myKeyId, t.state)] = at;
    });
    const change = A.getLastLocalChange(next);
    if (!change) return;
    const env = sealChange(
      this.identity,
      { conversation: conv, segment, recipients: members.filter((m) => !equalBytes(m, this.me)), created: at, lifetime: this.lifetime },
      keys[0]!.key,
      change,
    );
    this.storeOwn(env);
    handle.update((d) => A.applyChanges(d, [change])[0]);
    this.state.markOpened(env.id, conv, "applied", this.now(), undefined, A.decodeChange(change).hash);
    await this.documents.flush(handle as DocHandle<unknown>);
    this.noteArrivals(conv, members, handle.doc());
  }

  // ---- views ----

  private viewOf(conv: Uint8Array, members: Uint8Array[], doc: ConversationDoc, index: number): MessageView {
    const m = doc.messages[index]!;
    const id = m.id.toString();
    const author = m.author.toString();
    const mine = author === this.myKeyId;
    const others = members.filter((k) => !equalBytes(k, this.me));
    const view: MessageView = {
      id,
      conversation: toHex(conv),
      direction: mine ? "out" : "in",
      from: this.addressOfKeyId(author, members),
      to: mine ? others.map((k) => this.addressOf(k)) : [this.address],
      body: m.body.toString(),
      hlc: m.hlc.toString(),
      claimedSentAt: m.sentAt,
    };
    const arrival = this.state.arrival(`m:${id}`);
    if (arrival) {
      view.arrivedAt = arrival.at;
      view.arrivalSeq = arrival.seq;
    }
    if (mine) {
      const stamps = (state: "delivered" | "read") =>
        others.map((k) => doc.receipts[receiptKey(id, keyId(k), state)]).filter((t): t is number => t !== undefined);
      const delivered = stamps("delivered");
      const read = stamps("read");
      const env = this.state.sentEnvelope(id);
      const handed = env && this.envelopes.handed(env);
      if (handed) {
        view.handedAt = handed.at;
        view.sentVia = others.some((k) => equalBytes(k, handed.peer)) ? "direct" : "carrier";
        view.sentTo = this.addressOf(handed.peer);
      }
      if (delivered.length === others.length) {
        view.deliveredAt = Math.max(...delivered);
        const hops = others.map((k) => this.state.arrival(`r:${receiptKey(id, keyId(k), "delivered")}`)?.hops ?? 1);
        view.deliveredVia = hops.every((h) => h <= 1) ? "direct" : "carriers";
      }
      if (read.length === others.length) view.readAt = Math.max(...read);
      view.state = view.readAt !== undefined ? "read" : view.deliveredAt !== undefined ? "delivered" : handed ? "sent" : "waiting";
    }
    return view;
  }

  private async allMessages(): Promise<MessageView[]> {
    return this.serial(async () => {
      const out: MessageView[] = [];
      for (const conv of this.state.conversations()) {
        const members = this.state.members(conv)!;
        for (const seg of this.state.segments(conv)) {
          const doc = (await this.segmentHandle(conv, seg)).doc();
          for (let i = 0; i < doc.messages.length; i++) out.push(this.viewOf(conv, members, doc, i));
        }
      }
      return out.sort((a, b) => (a.hlc < b.hlc ? -1 : a.hlc > b.hlc ? 1 : a.from < b.from ? -1 : 1));
    });
  }

  async inbox(): Promise<MessageView[]> {
    return (await this.allMessages()).filter((m) => m.direction === "in");
  }

  async outbox(): Promise<MessageView[]> {
    return (await this.allMessages()).filter((m) => m.direction === "out");
  }

  /** Outgoing messages no other device has taken yet. */
  async waiting(): Promise<MessageView[]> {
    return (await this.outbox()).filter((m) => m.state === "waiting");
  }

  /** Marks incoming messages read (all, or the given ids); the signed read receipt travels back. */
  markRead(ids?: string[]): Promise<number> {
    return this.serial(async () => {
      let count = 0;
      for (const conv of this.state.conversations()) {
        for (const seg of this.state.segments(conv)) {
          const doc = (await this.segmentHandle(conv, seg)).doc();
          const want = new Set(
            doc.messages
              .filter((m) => m.author.toString() !== this.myKeyId && (!ids || ids.includes(m.id.toString())))
              .filter((m) => doc.receipts[receiptKey(m.id.toString(), this.myKeyId, "read")] === undefined)
              .map((m) => m.id.toString()),
          );
          if (want.size === 0) continue;
          count += want.size;
          await this.ensureReceipts(conv, seg, { ids: want, state: "read" });
        }
      }
      if (count) this.emit("changed");
      return count;
    });
  }

  // ---- drafts (a private document: never sealed, never sent by accident) ----

  private async draftsHandle(): Promise<DocHandle<DraftsDoc>> {
    const id = sha256(utf8("pigeon-drafts-v1"), this.me).subarray(0, 16);
    const { handle } = await this.documents.open<DraftsDoc>(
      id,
      () => A.change(A.init<DraftsDoc>({ actor: "00".repeat(16) }), { time: 0 }, (d) => { d.drafts = {}; }),
      this.actor,
    );
    return handle;
  }

  async saveDraft(to: string, body: string, id?: string): Promise<DraftView> {
    let addr: string;
    try {
      addr = formatAddress(parseAddress(to));
    } catch (e) {
      throw new MailboxError("bad-input", (e as Error).message);
    }
    if (body.length > MAX_BODY_CHARS) throw new MailboxError("bad-input", `the draft is over ${MAX_BODY_CHARS} characters`);
    return this.serial(async () => {
      const h = await this.draftsHandle();
      const draftId = id ?? newMessageId().slice(0, 8);
      if (id && !h.doc().drafts[id]) throw new MailboxError("not-found", `no draft ${id}`);
      const updatedAt = this.now();
      h.update((d) => A.change(d, (x) => {
        x.drafts[draftId] = { to: new A.ImmutableString(addr), body: new A.ImmutableString(body), updatedAt };
      }));
      await this.documents.flush(h as DocHandle<unknown>);
      return { id: draftId, to: addr, body, updatedAt };
    });
  }

  async drafts(): Promise<DraftView[]> {
    return this.serial(async () => {
      const h = await this.draftsHandle();
      return Object.entries(h.doc().drafts)
        .map(([id, d]) => ({ id, to: d.to.toString(), body: d.body.toString(), updatedAt: d.updatedAt }))
        .sort((a, b) => a.updatedAt - b.updatedAt);
    });
  }

  deleteDraft(id: string): Promise<void> {
    return this.serial(async () => {
      const h = await this.draftsHandle();
      if (!h.doc().drafts[id]) throw new MailboxError("not-found", `no draft ${id}`);
      h.update((d) => A.change(d, (x) => { delete x.drafts[id]; }));
      await this.documents.flush(h as DocHandle<unknown>);
    });
  }

  /** Sends a draft; it leaves Drafts only once the message is safely stored. */
  async sendDraft(id: string): Promise<MessageView> {
    const draft = (await this.drafts()).find((d) => d.id === id);
    if (!draft) throw new MailboxError("not-found", `no draft ${id}`);
    const sent = await this.send(draft.to, draft.body);
    await this.deleteDraft(id);
    return sent;
  }

  // ---- status ----

  status() {
    const stats = this.envelopes.stats();
    return {
      address: this.address,
      envelopes: stats.envelopes,
      bytes: stats.bytes,
      carrying: { ...this.envelopes.carried(), quotaBytes: this.limits.quotaBytes },
      rejected: this.state.rejections().length,
      storageProblem: this.storageTrouble ? `${this.storageTrouble.reason} (since ${new Date(this.storageTrouble.since).toISOString()})` : null,
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.ackTimer) {
      clearTimeout(this.ackTimer);
      this.ackTimer = undefined;
      await this.serial(async () => this.flushAcks()).catch(() => {});
    }
    await this.queue.catch(() => {});
    await this.documents.close();
    this.envelopes.db.close();
  }
}
