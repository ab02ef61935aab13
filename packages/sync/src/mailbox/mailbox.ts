// The mailbox: where this laptop's user's messages are written, sealed, opened and shown. It is the
// front of several parts, each one job (see the files beside it): People (contacts and names),
// Buddies (the buddy list the person's devices share), Sending, Receiving (admission at the door and
// the per-author budgets), Carrier (carrier limits and acknowledgements), Opening (admission and
// applying changes), Receipts, Views, Drafts.
// Inbox, Outbox, Drafts and Waiting-to-be-sent are views derived from the documents; the sealed
// store is the source of truth from which documents are caught up after a crash.
import { EventEmitter } from "node:events";
import {
  decodeEnvelope, DEFAULT_LIFETIME_SECONDS, EnvelopeKind, equalBytes, isAnnouncement, ROUTE_INFINITY, villagesAnnounced, type VillageWay, fingerprint, fromHex, recognises, SEGMENT_MESSAGE_LIMIT, toHex, validName, type ContactCard, type Identity,
  type LinkTrust, type SchoolKey,
} from "@pigeon/model";
import { DocumentStore } from "../document-store.js";
import { closeDatabase, EnvelopeStore, storeCheck } from "../envelope-store.js";
import { LocalState, type Contact } from "../local-state.js";
import { silentLog, type Log } from "../log.js";
import type { NodeStorage } from "../storage.js";
import { Buddies } from "./buddies.js";
import { Carrier } from "./carrier.js";
import { Channels, type ChannelView } from "./channels.js";
import { INTRODUCED, isStorageError, MailboxCore } from "./core.js";
import { Devices, type DeviceView } from "./devices.js";
import { Drafts } from "./drafts.js";
import { Forgetting } from "./forgetting.js";
import { Opening } from "./opening.js";
import { People } from "./people.js";
import { Receipts } from "./receipts.js";
import { Receiving } from "./receiving.js";
import { School, type VouchView } from "./school.js";
import { Sending } from "./sending.js";
import {
  carrierLimits, MailboxError, type BuddyView, type CarrierLimits, type DraftView, type Incoming, type MailboxEvents, type MessageQuery,
  type FolderPages, type MessageView, type NearbyView, type PersonView, type ReceiveResult, type RequestView,
} from "./types.js";
import { Views } from "./views.js";
import { WriteAgain } from "./write-again.js";

export interface MailboxOptions {
  identity: Identity;
  storage: NodeStorage;
  carrier?: Partial<CarrierLimits>;
  now?: () => number;
  log?: Log;
  lifetimeSeconds?: number;
  /** Messages per conversation segment document before the next one starts (default 1000). */
  segmentMessageLimit?: number;
  /** Laptops met nearby remembered, at most, per hour (default 60). */
  metPerHour?: number;
  /** On a school server: the school's key (it writes the directory). Enrolled laptops need nothing here. */
  school?: SchoolKey;
}

export class Mailbox extends EventEmitter<MailboxEvents> {
  readonly identity: Identity;
  readonly envelopes: EnvelopeStore;
  readonly state: LocalState;
  readonly documents: DocumentStore;
  readonly limits: CarrierLimits;
  private readonly core: MailboxCore;
  readonly forgetting: Forgetting;
  private readonly people: People;
  private readonly buddyList: Buddies;
  private readonly views: Views;
  private readonly receipts: Receipts;
  private readonly opening: Opening;
  private readonly carrier: Carrier;
  private readonly receiving: Receiving;
  private readonly sending: Sending;
  private readonly drafting: Drafts;
  /** Class channels: create, change who is in them, write to them (channels.ts). */
  private readonly channelSet: Channels;
  /** The person's devices: pairing, revoking, and the keyrings that arrive. */
  readonly devices: Devices;
  /** The school this laptop belongs to: its directory, what it says of people, enrolling; on a school server, writing entries. */
  readonly school: School;
  private closed = false;

  constructor(opts: MailboxOptions) {
    super();
    this.identity = opts.identity;
    const log = opts.log ?? silentLog;
    this.envelopes = new EnvelopeStore(opts.storage.database);
    this.state = new LocalState(opts.storage.database);
    this.documents = new DocumentStore(opts.storage.documents, log);
    this.limits = carrierLimits(opts.carrier?.quotaBytes, opts.carrier);
    this.core = new MailboxCore({
      identity: opts.identity, envelopes: this.envelopes, state: this.state, documents: this.documents, events: this,
      now: opts.now ?? Date.now, log, lifetime: opts.lifetimeSeconds ?? DEFAULT_LIFETIME_SECONDS,
      segmentLimit: opts.segmentMessageLimit ?? SEGMENT_MESSAGE_LIMIT, limits: this.limits, metPerHour: opts.metPerHour ?? 60,
    });
    this.people = new People(this.core);
    this.on("envelope", ({ id }) => this.heardVillages(id));
    this.views = new Views(this.core);
    this.receipts = new Receipts(this.core, this.views);
    this.buddyList = new Buddies(this.core, this.receipts);
    this.people.onCardChanged = (card) =>
      void this.core.serial(() => this.buddyList.refresh(card)).catch((e: unknown) => log.warn(`could not refresh a buddy's card: ${(e as Error).message}`));
    this.drafting = new Drafts(this.core);
    this.channelSet = new Channels(this.core);
    /** Forgetting conversation segments on this node alone (the e-mail gateway): forgetting.ts. */
    this.forgetting = new Forgetting(this.core, this.views);
    this.opening = new Opening(this.core, this.views, this.receipts, this.buddyList, this.drafting, this.channelSet, this.forgetting);
    this.channelSet.reopen = (conv) => this.opening.reopen(conv);
    this.core.isChannel = (conv) => this.channelSet.isChannel(conv);
    this.core.channelSealing = (conv) => this.channelSet.sealing(conv);
    this.core.channelTitle = (conv) => (this.channelSet.isChannel(conv) ? this.channelSet.state(conv)?.title : undefined);
    this.core.channelIds = () => this.channelSet.ids();
    this.carrier = new Carrier(this.core);
    this.devices = new Devices(this.core, () => this.school.enrolmentToken());
    this.school = new School(this.core, opts.school);
    this.core.schoolVouch = (key) => this.school.vouchFor(key);
    this.core.directorySealKey = (key) => this.school.directorySealKey(key);
    this.core.directoryCard = (address) => this.school.directoryCard(address);
    // the school revoked another device of this person (a stolen tablet): the first device revokes it
    // in the keyring too, so the device also loses the person's sealing key (queued after the entry)
    this.school.onOwnDeviceRevoked = (deviceKey) => {
      this.devices.revokedBySchool(deviceKey).then(
        (d) => d && log.info(`the school revoked this person's device ${d.id}: taken out of the keyring too (a new sealing key it does not get)`),
        (e: unknown) => log.warn(`the school revoked one of this person's devices, but the keyring could not follow: ${(e as Error).message}`),
      );
    };
    // the school's "no student groups" rule: a student's channel counts for nothing on its laptops
    this.channelSet.mayOwn = (owner) => {
      const dir = this.school.directory();
      if (!dir?.noStudentGroups) return true;
      const found = dir.lookup(owner);
      return found.status === "vouched" && found.entry.role === "teacher";
    };
    this.receiving = new Receiving(this.core, this.carrier, this.opening, this.receipts, this.devices, this.school, this.channelSet);
    this.sending = new Sending(this.core, this.people, this.views, this.buddyList);
    // what the school's e-mail gateway could not read (it had forgotten that part) is written again: write-again.ts
    const writeAgain = new WriteAgain(this.core, (id) => this.message(id), (id, body) => this.reply(id, body));
    this.on("message", (m) => void writeAgain.arrived(m).catch((e: unknown) => log.warn(`could not write a message again: ${(e as Error).message}`)));
  }

  get me(): Uint8Array {
    return this.core.me;
  }

  /** This device's key (the person key itself on the person's first device). */
  get myDevice(): Uint8Array {
    return this.core.identity.signing.publicKey;
  }

  get address(): string {
    return this.core.address;
  }

  /** Set while the disk refuses writes; cleared when a write succeeds again. */
  get storageTrouble(): { since: number; reason: string } | undefined {
    return this.core.storageTrouble;
  }

  /**
   * For simulators that run in virtual time and must know when the mailbox is quiet: the last piece
   * of queued work (a new promise whenever more is queued) and whether an acknowledgement batch waits.
   */
  /**
   * Whom this laptop shows who it is to in a handshake: laptops proving its school's secret or an
   * open pairing window's; strangers too when `meetStrangers` says so, or by default when it belongs
   * to no school (meeting whoever is nearby is then how it finds friends).
   */
  linkTrust(meetStrangers?: boolean): LinkTrust {
    this.meetStrangers = meetStrangers;
    return {
      secrets: () => [...this.school.linkSecrets(), ...this.devices.linkSecrets()],
      showToStrangers: () => this.showsToStrangers(),
    };
  }

  private meetStrangers: boolean | undefined;

  /** Whether handshakes show who this laptop is to laptops that share no secret with it. */
  showsToStrangers(): boolean {
    return this.meetStrangers ?? this.school.linkSecrets().length === 0;
  }

  pendingWork(): { queue: Promise<unknown>; acks: boolean } {
    return { queue: this.core.tail, acks: this.receipts.ackPending };
  }

  /**
   * After a start or a crash: open what arrived but was never opened, retry what was waiting, write
   * missing receipts and acknowledgements. Never fails because of what an envelope contains (that is
   * recorded as rejected); a storage failure is remembered and retried (retryAfterStorageTrouble).
   */
  async recover(): Promise<void> {
    const { core } = this;
    await core.serial(async () => {
      try {
        // a store from before the buddy list: the contacts the child had become buddies, once
        await this.buddyList.migrate();
        // and its drafts, kept in a private document, go into the drafts the person's devices share
        await this.drafting.migrate();
        const unopened = core.state.unopened(core.me);
        for (const id of [...unopened, ...core.state.pending()]) {
          const env = core.envelopes.get(id);
          if (!env) continue;
          // its acknowledgement may have been lost with the crash too (none for someone blocked)
          if (unopened.some((u) => equalBytes(u, id)) && !equalBytes(env.author, core.me) && !core.isBlocked(env.author)) this.receipts.queueAck(env);
          await this.opening.open(env);
        }
        // which homes are other villages was heard from announcements kept here: hear them again, so a
        // laptop started anew wraps mail (and receipts) for another village before its relay point next announces
        for (const id of core.envelopes.statementIds()) this.heardVillages(id);
        this.receipts.flushAcks(); // acknowledgements a crash kept from being written
      } catch (e) {
        if (!isStorageError(e) && !(e instanceof MailboxError && e.code === "storage")) throw e;
        core.log.warn(`recovery could not finish (${core.storageFailed(e)}); it is tried again when the disk has room`);
      }
    });
    // its own pieces of work: a long history is indexed a few segments at a time
    try {
      await this.views.rebuildIndex();
    } catch (e) {
      if (!isStorageError(e) && !(e instanceof MailboxError && e.code === "storage")) throw e;
      core.log.warn(`indexing the messages could not finish (${core.storageFailed(e)}); it is tried again at the next start`);
    }
  }

  /** Called periodically: once the disk has room again, open what had to wait. */
  async retryAfterStorageTrouble(): Promise<void> {
    if (!this.core.needsRecovery) return;
    this.core.needsRecovery = false;
    await this.recover();
    if (!this.core.needsRecovery) this.core.storageWorks();
  }

  /** Drops carried envelopes past their lifetime, and envelopes for us that never could be opened. */
  dropExpired(): Promise<number> {
    const { core } = this;
    return core.serial(async () => {
      const now = core.now();
      const carried = core.envelopes.dropExpired(now);
      const unopened = core.envelopes.dropExpiredUnopened(now);
      if (carried) core.log.info(`dropped ${carried} carried envelope(s) past their lifetime`);
      if (unopened) core.log.info(`dropped ${unopened} envelope(s) for you that could not be opened before they expired`);
      if (carried + unopened) this.emit("changed");
      return carried + unopened;
    });
  }

  // ---- people ----
  /** A laptop met over an authenticated link, or a card: remembered on this laptop (not made a buddy). */
  rememberContact(card: ContactCard, how: string): void {
    this.people.remember(card, how);
  }

  /** Everyone this laptop knows: met nearby, by card, from their own claim in a message, buddies from the other devices. */
  contacts(): Contact[] {
    return this.people.list();
  }

  /** Exactly one person for an address, petname or fingerprint; MailboxError otherwise (with candidates when ambiguous). */
  resolve(address: string): Contact {
    return this.people.resolve(address);
  }

  /** What this laptop's school says of a person (undefined when it belongs to no school). */
  vouchFor(personKey: Uint8Array): VouchView | undefined {
    return this.school.vouchFor(personKey);
  }

  /** A route announcement by this village's relay point names the villages mail can go to (kind 7). */
  private heardVillages(id: Uint8Array): void {
    const meta = this.envelopes.meta(id);
    if (!meta || meta.kind !== EnvelopeKind.Statement) return;
    const held = this.envelopes.get(id);
    if (!held || held.bytes[0] !== 2) return;
    let env;
    try {
      env = decodeEnvelope(held.bytes);
    } catch {
      return;
    }
    if (!isAnnouncement(env)) return;
    const ways = villagesAnnounced(env, this.identity.home, this.school.schoolKey());
    for (const w of ways ?? []) {
      if (!this.core.otherVillages.has(w.dest)) {
        this.core.otherVillages.add(w.dest);
        this.core.wrapWrittenFor(w.dest);
      }
      const known = this.villageWays.get(w.dest);
      if (!known || known.sent <= w.sent) this.villageWays.set(w.dest, w);
    }
  }

  /** What this laptop's relay point last announced of each other village: the way and the expected delay. */
  private readonly villageWays = new Map<string, VillageWay>();

  /** Marks outgoing messages to another village with where they go and when they are expected there. */
  private withVillages(list: MessageView[]): MessageView[] {
    if (this.villageWays.size === 0 && !this.core.otherVillages.size) return list;
    for (const m of list) {
      if (m.channel !== undefined || m.to.length !== 1) continue;
      const at = m.to[0]!.lastIndexOf("@");
      const dest = at < 0 ? "" : m.to[0]!.slice(at + 1);
      if (!this.core.otherVillages.has(dest)) continue;
      const way = this.villageWays.get(dest);
      m.village = { dest };
      if (way && way.cost < ROUTE_INFINITY) {
        m.village.via = way.via || dest;
        if (way.carrier) m.village.carrier = way.carrier;
        m.village.expectedAt = Math.max(way.sent, m.handedAt ?? this.core.now()) + way.cost * 1000;
      }
    }
    return list;
  }

  /** Whether every one of these people lives in another village (their mail travels as kind 7). */
  elsewhere(recipients: Uint8Array[]): boolean {
    const home = this.core.identity.home;
    return recipients.length > 0 && recipients.every((r) => {
      const h = this.state.contact(r)?.home;
      return h !== undefined && h !== home && this.core.otherVillages.has(h);
    });
  }

  /** Makes this node its village's relay point for mail between villages (receiving.ts takes its mail out of kind 7). */
  setVillage(home: string, federation: Iterable<string>): void {
    this.core.village = { home, federation: new Set(federation) };
    for (const h of this.core.village.federation) if (h !== home) this.core.otherVillages.add(h);
  }

  /** A contact card the user was given: remembered, and a buddy (the child chose them). */
  async addContact(card: ContactCard): Promise<Contact> {
    if (equalBytes(card.signPublicKey, this.me)) throw new MailboxError("bad-input", "that is your own card");
    return this.core.serial(async () => {
      this.school.checkCard(card);
      this.people.remember(card, "card");
      this.school.keepWord(card);
      const c = this.state.contact(card.signPublicKey)!;
      if (this.core.isBlocked(c.signPublicKey)) throw new MailboxError("blocked", `you blocked ${this.core.addressOf(c.signPublicKey)}: unblock them first`);
      await this.buddyList.add(c, "card");
      return this.people.list().find((x) => equalBytes(x.signPublicKey, c.signPublicKey))!;
    });
  }

  // ---- buddies: the list the child chose, the same on every device of theirs ----

  /** The buddy list (with groups, blocks and how each is known), by the name the child sees. */
  buddies(): Promise<BuddyView[]> {
    return this.core.serial(async () => this.buddyList.views());
  }

  /** Everyone blocked, on the list or not. */
  blocked(): Promise<PersonView[]> {
    return this.core.serial(async () => this.buddyList.blocked());
  }

  /** Laptops met nearby, the most recent first (not those blocked): the child chooses whom to add. */
  nearby(): Promise<NearbyView[]> {
    return this.core.serial(async () =>
      this.people
        .list()
        .filter((c) => c.lastMet !== undefined && !this.core.isBlocked(c.signPublicKey))
        .sort((a, b) => b.lastMet! - a.lastMet!)
        .map((c) => ({ ...this.buddyList.person(c.signPublicKey), lastMet: c.lastMet!, buddy: this.core.isBuddy(c.signPublicKey) })),
    );
  }

  /** Makes someone this laptop knows (met nearby, a card, a message) a buddy; by address, petname or fingerprint. */
  addBuddy(who: string): Promise<BuddyView> {
    return this.editBuddy(who, false, async (c) => {
      if (this.core.isBlocked(c.signPublicKey)) throw new MailboxError("blocked", `you blocked ${this.core.addressOf(c.signPublicKey)}: unblock them first`);
      if (c.how === INTRODUCED) this.state.acceptContact(c.signPublicKey);
      await this.buddyList.add(c);
    });
  }

  /** What the child calls a buddy ("" clears it); `pigeon send NAME` then reaches them. */
  renameBuddy(who: string, petname: string): Promise<BuddyView> {
    return this.editBuddy(who, true, async (c) => {
      const name = petname.trim().toLowerCase();
      if (name && !validName(name))
        throw new MailboxError("bad-input", `"${petname}" cannot be a name: use 1-32 of a-z, 0-9, '.', '_' or '-', starting with a letter or digit`);
      if (name && this.people.list().some((x) => x.petname === name && !equalBytes(x.signPublicKey, c.signPublicKey)))
        throw new MailboxError("bad-input", `you already call someone else "${name}"`);
      await this.buddyList.rename(c.signPublicKey, name);
    });
  }

  addToGroup(who: string, group: string): Promise<BuddyView> {
    return this.editBuddy(who, true, (c) => this.buddyList.group(c.signPublicKey, group.trim(), true));
  }

  removeFromGroup(who: string, group: string): Promise<BuddyView> {
    return this.editBuddy(who, true, (c) => this.buddyList.group(c.signPublicKey, group.trim(), false));
  }

  /** Takes someone off the buddy list (their petname and groups are kept if they are added again); messages stay. */
  removeBuddy(who: string): Promise<PersonView> {
    return this.core.serial(async () => {
      const c = this.people.resolve(who);
      if (!(await this.buddyList.remove(c.signPublicKey))) throw this.notABuddy(c);
      return this.buddyList.person(c.signPublicKey);
    });
  }

  /**
   * Blocks someone, on the list or not: nothing from them is shown (not in the inbox, not under
   * requests), they get no receipt, and what they send is only carried like anyone's.
   */
  blockBuddy(who: string): Promise<PersonView> {
    return this.core.serial(async () => {
      const c = this.people.resolve(who);
      await this.buddyList.block(c.signPublicKey, true);
      return this.buddyList.person(c.signPublicKey);
    });
  }

  /** Lifts a block (also of someone blocked on another device whom this laptop never saw: by fingerprint). */
  unblockBuddy(who: string): Promise<PersonView> {
    return this.core.serial(async () => {
      const key = this.blockedByFingerprint(who) ?? this.people.resolve(who).signPublicKey;
      if (!(await this.buddyList.block(key, false))) throw new MailboxError("not-found", `${this.core.addressOf(key)} is not blocked`);
      return this.buddyList.person(key);
    });
  }

  private blockedByFingerprint(typed: string): Uint8Array | undefined {
    const fp = typed.trim().replace(/-/g, "").toLowerCase();
    if (!/^[a-z2-7]{16}$/.test(fp)) return undefined;
    const k = [...this.core.buddyIndex.blocked].find((x) => fingerprint(fromHex(x)).replace(/-/g, "") === fp);
    return k ? fromHex(k) : undefined;
  }

  /** What `contacts rename` did before the buddy list: the petname is the buddy list's now. */
  renameContact(who: string, petname: string): Promise<Contact> {
    return this.renameBuddy(who, petname).then((b) => this.people.list().find((c) => toHex(c.signPublicKey) === b.signPublicKey)!);
  }

  /** Takes someone off the buddy list (if they are on it) and forgets them on this laptop; messages stay. */
  removeContact(who: string): Promise<Contact> {
    return this.core.serial(async () => {
      const c = this.people.resolve(who);
      await this.buddyList.remove(c.signPublicKey);
      this.people.forget(c.signPublicKey);
      this.emit("changed");
      return c;
    });
  }

  private editBuddy(who: string, onList: boolean, fn: (c: Contact) => Promise<unknown>): Promise<BuddyView> {
    return this.core.serial(async () => {
      const c = this.people.resolve(who);
      if (onList && !this.buddyList.onList(c.signPublicKey)) throw this.notABuddy(c);
      await fn(c);
      const b = this.buddyList.onList(c.signPublicKey);
      if (!b) throw this.notABuddy(c);
      return this.buddyList.view(b);
    });
  }

  private notABuddy(c: Contact): MailboxError {
    return new MailboxError("not-found", `${this.core.addressOf(c.signPublicKey)} is not one of your buddies (add them with pigeon buddies add)`);
  }

  // ---- sending and receiving ----
  send(address: string, body: string): Promise<MessageView> {
    return this.sending.send(address, body);
  }

  // ---- channels ----

  /** Starts a channel this person owns. */
  createChannel(title: string): Promise<ChannelView> {
    return this.channelSet.create(title);
  }

  /** The channels this laptop knows (those its person is or was in), beside the people in the inbox. */
  channels(): ChannelView[] {
    return this.channelSet.list();
  }

  channel(ref: string): ChannelView {
    return this.channelSet.view(this.channelSet.find(ref));
  }

  /** Adds people (by address, as `send` takes them; or everyone of a class of the school's directory). */
  addToChannel(ref: string, who: { addresses?: string[]; class?: string }): Promise<ChannelView> {
    const cards = (who.addresses ?? []).map((a) => {
      const c = this.people.resolve(a);
      return this.channelSet.card(c);
    });
    if (who.class !== undefined) {
      const dir = this.school.directory();
      if (!dir) throw new MailboxError("bad-input", "this laptop belongs to no school: add people by name");
      const members = dir.members(who.class).filter((e) => e.sealKey && !equalBytes(e.personKey, this.me));
      if (members.length === 0) throw new MailboxError("not-found", `no one of class ${who.class} in the school's directory`);
      for (const e of members) cards.push({ key: e.personKey, sealKey: e.sealKey!, name: e.name, home: dir.home });
    }
    if (cards.length === 0) throw new MailboxError("bad-input", "say who to add");
    return this.channelSet.change(ref, { type: "add", members: cards });
  }

  removeFromChannel(ref: string, addresses: string[]): Promise<ChannelView> {
    if (addresses.length === 0) throw new MailboxError("bad-input", "say who to remove");
    return this.channelSet.change(ref, { type: "remove", members: addresses.map((a) => this.people.resolve(a).signPublicKey) });
  }

  setChannelAdmin(ref: string, address: string, admin: boolean): Promise<ChannelView> {
    return this.channelSet.change(ref, { type: "admin", member: this.people.resolve(address).signPublicKey, admin });
  }

  closeChannel(ref: string): Promise<ChannelView> {
    return this.channelSet.change(ref, { type: "close" });
  }

  /** Writes to a channel: sealed once for all its members. */
  sendToChannel(ref: string, body: string): Promise<MessageView> {
    const id = this.channelSet.find(ref);
    const st = this.channelSet.state(id);
    if (st?.closed) return Promise.reject(new MailboxError("bad-input", `"${st.title}" is closed`));
    return this.sending.sendToChannel(id, body);
  }

  /** Answers a received message in its conversation (works for senders never met). */
  reply(messageId: string, body: string): Promise<MessageView> {
    return this.sending.reply(messageId, body);
  }

  /** Corrects one of the user's own messages: readers show the new text in its place (XEP-0308). */
  correct(messageId: string, body: string): Promise<MessageView> {
    return this.sending.correct(messageId, body);
  }

  /** Sends a file (at most MAX_FILE_BYTES) as a message whose text is its name. */
  sendFile(address: string, name: string, type: string, bytes: Uint8Array): Promise<MessageView> {
    return this.sending.sendFile(address, name, type, bytes);
  }

  /** The file inside a message, if it has one. */
  file(messageId: string): Promise<{ name: string; type: string; bytes: Uint8Array } | undefined> {
    return this.core.serial(() => this.views.file(messageId));
  }

  /** Sets the user's picture (at most MAX_PICTURE_BYTES): their buddies' clients show it. Returns the conversations it was written to. */
  setPicture(type: string, bytes: Uint8Array): Promise<number> {
    return this.sending.setPicture(type, bytes);
  }

  /** The picture someone shared with the user (a buddy's avatar), if any. */
  pictureOf(address: string): Promise<{ type: string; bytes: Uint8Array } | undefined> {
    return this.core.serial(async () => {
      const c = this.people.resolve(address);
      return this.views.pictureOf(c.signPublicKey);
    });
  }

  receive(bytes: Uint8Array, hops: number, from?: string, source?: Uint8Array, copies = 1): Promise<ReceiveResult> {
    return this.receiving.receiveMany([{ bytes, hops, from, source, copies }]).then((r) => r[0]!);
  }

  receiveMany(items: Incoming[]): Promise<ReceiveResult[]> {
    return this.receiving.receiveMany(items);
  }

  /** Whether one of the person's sealing keys recognises one of these tags (a carrier's Probe). */
  recognises(ephemeral: Uint8Array, tags: Uint8Array[]): boolean {
    return recognises(ephemeral, tags, this.core.sealingKeys());
  }

  /** How many sealing keys the person has (a new one comes with a keyring that rotates it; none goes). */
  sealingKeyCount(): number {
    return this.core.sealingKeys().length;
  }

  // ---- views ----
  /**
   * Messages from buddies and channels, oldest first (requests from anyone else are under requests()):
   * all, or the newest `last` to arrive; only those not read yet with `unread`.
   */
  async inbox(opts: { unread?: boolean; last?: number } = {}): Promise<MessageView[]> {
    return this.views.folder("inbox", opts);
  }

  /**
   * Messages from people who are not buddies (not on the buddy list), by sender, except from those the
   * user ignored, reported or blocked: each one's newest `shown`. The child decides: accept, ignore or report.
   */
  async requests(shown = 100): Promise<RequestView[]> {
    return this.views.requests(shown);
  }

  /**
   * Each folder's newest `shown` messages and how many it holds: the web app's first screen. Counted
   * from the message index: only the segments of the messages shown are loaded.
   */
  async folders(shown = 50): Promise<FolderPages> {
    const f = await this.views.folders(Math.max(1, Math.min(Math.floor(shown) || 1, 100_000)));
    this.withVillages(f.outbox.newest);
    this.withVillages(f.waiting.newest);
    return f;
  }

  /** Messages in the inbox or the outbox whose id starts with `prefix` (lower-case hex), at most `limit`. */
  messagesStartingWith(prefix: string, limit = 10): Promise<MessageView[]> {
    return this.views.startingWith(prefix, limit);
  }

  /** Makes the sender of a request a buddy: their messages move to the inbox and get receipts. */
  async acceptRequest(who: string): Promise<Contact> {
    return this.core.serial(async () => {
      const c = this.people.resolve(who);
      this.state.acceptContact(c.signPublicKey);
      // becoming a buddy writes the receipts their messages were owed (Buddies.changed)
      await this.buddyList.add(c, "request");
      return this.people.list().find((x) => equalBytes(x.signPublicKey, c.signPublicKey))!;
    });
  }

  /** Hides a request (its messages stay stored, unshown); `report` also keeps it for the school with a note. */
  decideRequest(who: string, decision: "ignored" | "reported", note?: string): Promise<Contact> {
    return this.core.serial(async () => {
      const c = this.people.resolve(who);
      if (this.core.isBuddy(c.signPublicKey)) throw new MailboxError("bad-input", `${this.core.addressOf(c.signPublicKey)} is a buddy, not a request`);
      this.state.decideRequest(c.signPublicKey, decision, this.core.now(), note);
      this.emit("changed");
      return c;
    });
  }

  /** Requests the user reported, for the school. */
  reports(): { from: string; fingerprint: string; at: number; note: string | null }[] {
    return this.state.reports().map((r) => ({ from: this.core.addressOf(r.signKey), fingerprint: fingerprint(r.signKey), at: r.at, note: r.note }));
  }

  /** Messages sent, oldest first: all, or the newest `last`. */
  async outbox(opts: { last?: number } = {}): Promise<MessageView[]> {
    return this.withVillages(await this.views.folder("outbox", opts));
  }

  /** Outgoing messages no other laptop has taken yet: all, or the newest `last`. */
  async waiting(opts: { last?: number } = {}): Promise<MessageView[]> {
    return this.withVillages(await this.views.waiting(opts.last));
  }

  /** One message by id (undefined when there is none). */
  message(id: string): Promise<MessageView | undefined> {
    return this.core.serial(() => this.views.message(id));
  }

  /** A page of messages in arrival order, loading only the segments shown. */
  messages(query: MessageQuery = {}): Promise<MessageView[]> {
    return this.core.serial(() => this.views.query(query));
  }

  /** Marks incoming messages read (all, or the given ids); the signed read receipt travels back. */
  markRead(ids?: string[]): Promise<number> {
    return this.receipts.markRead(ids);
  }

  // ---- drafts ----
  saveDraft(to: string, body: string, id?: string, create = false): Promise<DraftView> {
    return this.drafting.save(to, body, id, create);
  }

  drafts(): Promise<DraftView[]> {
    return this.drafting.list();
  }

  deleteDraft(id: string): Promise<void> {
    return this.drafting.delete(id);
  }

  /** Sends a draft; it leaves Drafts only once the message is safely stored. */
  async sendDraft(id: string): Promise<MessageView> {
    const draft = (await this.drafts()).find((d) => d.id === id);
    if (!draft) throw new MailboxError("not-found", `no draft ${id}`);
    const sent = await this.send(draft.to, draft.body);
    await this.deleteDraft(id);
    return sent;
  }

  /** Tells listeners that something a user would see changed (the sync engine hands envelopes on). */
  changed(): void {
    this.emit("changed");
  }

  // ---- status ----
  status() {
    const stats = this.envelopes.stats();
    const trouble = this.core.storageTrouble;
    const school = this.school.view();
    return {
      address: this.address,
      envelopes: stats.envelopes,
      bytes: stats.bytes,
      carrying: { ...this.envelopes.carried(), quotaBytes: this.limits.quotaBytes },
      /** Group commit (issue 20): transactions committed since start, and the pieces of work they answered. */
      commits: { transactions: this.core.group.commits, work: this.core.group.answered },
      rejected: this.state.rejections().length,
      storageProblem: trouble ? `${trouble.reason} (since ${new Date(trouble.since).toISOString()})` : null,
      /** How the sealed store was checked at start ("skipped" after a clean close: a full check runs in the background) and when it was last found whole. */
      storeCheck: ((c) => ({ atStart: c.atOpen, lastFullCheck: c.checkedAt === undefined ? null : new Date(c.checkedAt).toISOString() }))(storeCheck(this.envelopes.db)),
      /** Who learns who this laptop is when it meets them: "anyone" nearby, or its "schoolmates" only. */
      shownTo: this.showsToStrangers() ? ("anyone" as const) : ("schoolmates" as const),
      ...(school ? { school: { home: school.home, onlyDirectory: school.onlyDirectory, dropped: school.dropped, entries: school.entries } } : {}),
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.receipts.close();
    await this.core.idle();
    try {
      await this.documents.close();
    } finally {
      closeDatabase(this.envelopes.db);
    }
  }
}
