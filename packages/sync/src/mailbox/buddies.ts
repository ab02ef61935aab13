// The buddy list: the person's own Automerge document (model/buddy-list.ts has its merge rule),
// shared only by the person's devices. It travels like everything else, as sealed envelopes in the
// conversation whose only member is the person (conversationId([me])): one key envelope with no
// recipients (only the author's own box, which every device of the person opens), then one change
// envelope per edit. Carriers can neither read nor forge it; admission judges its changes by the
// buddy-list rule (model/admission.ts). After a crash it is caught up from the sealed store like a
// conversation. Laptops met nearby stay in LocalState's contacts (keys, last seen, the rate limit);
// this list is who the child chose.
import * as A from "@automerge/automerge";
import type { DocHandle } from "@automerge/automerge-repo";
import {
  hasChanges,
  addBuddy, addToGroup, blockBuddy, blockedKeys, buddies, buddyListConversation, conversationKeyId, emptyBuddyList, equalBytes, fingerprint,
  fromHex, newConversationKey, removeBuddy, removeFromGroup, renameBuddy, sealChange, sealKey, sha256, toHex, unblockBuddy,
  utf8, type Buddy, type BuddyEdit, type BuddyListDoc, type ContactCard, type Envelope, type HowKnown,
} from "@pigeon/model";
import type { DecodedChange } from "@automerge/automerge";
import { INTRODUCED, type BuddyIndex, type MailboxCore } from "./core.js";
import type { Receipts } from "./receipts.js";
import { MailboxError, type BuddiesChange, type BuddyView, type PersonView } from "./types.js";

/** Set in the settings table once the contacts of an older store were put on the buddy list. */
const MIGRATED = "buddy-list-migrated";

/** How a contact known on this laptop is known, in the buddy list's words. */
export function howKnown(how: string): HowKnown {
  if (how === "met" || how === "card" || how === "school") return how;
  if (how === "accepted" || how === "request" || how === INTRODUCED) return "request";
  return "card";
}

/** The contacts table's word for how a buddy from the list is known. */
function contactHow(how: HowKnown): string {
  return how === "request" ? "accepted" : how;
}

function indexOf(doc: A.Doc<BuddyListDoc>): BuddyIndex {
  return { byKey: new Map(buddies(doc).map((b) => [b.signKey, b])), blocked: new Set(blockedKeys(doc)) };
}

export class Buddies {
  /** The person's own conversation, where the list travels. */
  readonly conversation: Uint8Array;
  private handle: DocHandle<BuddyListDoc> | undefined;

  constructor(private readonly core: MailboxCore, private readonly receipts: Receipts) {
    this.conversation = buddyListConversation(core.me);
    core.setLoader(() => this.load());
    // a failed group commit took the list back: the index everyone reads follows it
    core.onRollback(() => {
      if (this.handle) core.buddyIndex = indexOf(this.handle.doc());
    });
  }

  isHere(conv: Uint8Array): boolean {
    return equalBytes(conv, this.conversation);
  }

  /** Loads the document (caught up from the sealed store); runs before the mailbox's first piece of work. */
  private async load(): Promise<void> {
    const { core } = this;
    const id = sha256(utf8("pigeon-buddy-list-v1"), this.conversation).subarray(0, 16);
    const { handle } = await core.documents.open<BuddyListDoc>(id, () => emptyBuddyList(), core.actor);
    this.handle = handle;
    await core.catchUp(this.conversation, 0, handle);
    core.buddyIndex = indexOf(handle.doc());
    this.knowContacts();
  }

  private get doc(): A.Doc<BuddyListDoc> {
    if (!this.handle) throw new Error("the buddy list is not loaded (use it inside core.serial)");
    return this.handle.doc();
  }

  // ---- reading ----

  views(): BuddyView[] {
    return [...this.core.buddyIndex.byKey.values()].map((b) => this.view(b));
  }

  view(b: Buddy): BuddyView {
    const key = fromHex(b.signKey);
    return {
      address: this.core.addressOf(key), fingerprint: fingerprint(key), signPublicKey: b.signKey, name: b.name, home: b.home,
      ...(b.petname ? { petname: b.petname } : {}), groups: b.groups, blocked: b.blocked, how: b.how, addedAt: b.addedAt,
    };
  }

  /** Everyone blocked, on the list or not. */
  blocked(): PersonView[] {
    return [...this.core.buddyIndex.blocked].map((k) => this.person(fromHex(k)));
  }

  person(key: Uint8Array): PersonView {
    const c = this.core.state.contact(key) ?? this.onList(key);
    return { address: this.core.addressOf(key), fingerprint: fingerprint(key), signPublicKey: toHex(key), ...(c ? { name: c.name, home: c.home } : {}) };
  }

  onList(key: Uint8Array): Buddy | undefined {
    return this.core.buddyIndex.byKey.get(toHex(key));
  }

  // ---- edits (inside core.serial) ----

  /** Puts a known person on the list (or refreshes their card); `how` defaults to how this laptop knows them. */
  add(c: ContactCard & { how?: string }, how: HowKnown = howKnown(c.how ?? "card")): Promise<boolean> {
    const card = { signKey: toHex(c.signPublicKey), name: c.name, home: c.home, sealKey: toHex(c.sealPublicKey), how };
    return this.edit((d, at) => addBuddy(d, card, at));
  }

  remove(key: Uint8Array): Promise<boolean> {
    return this.edit((d, at) => removeBuddy(d, toHex(key), at));
  }

  rename(key: Uint8Array, petname: string): Promise<boolean> {
    return this.edit((d, at) => renameBuddy(d, toHex(key), petname, at));
  }

  group(key: Uint8Array, group: string, join: boolean): Promise<boolean> {
    return this.edit((d, at) => (join ? addToGroup(d, toHex(key), group, at) : removeFromGroup(d, toHex(key), group, at)));
  }

  block(key: Uint8Array, blocked: boolean): Promise<boolean> {
    return this.edit((d, at) => (blocked ? blockBuddy(d, toHex(key), at) : unblockBuddy(d, toHex(key), at)));
  }

  /**
   * Makes one edit: on a copy, sealed and stored (fsynced) before the document takes it, as a message
   * is. Returns false when it changes nothing.
   */
  private async edit(make: (doc: A.Doc<BuddyListDoc>, at: number) => BuddyEdit | null): Promise<boolean> {
    const { core } = this;
    const handle = this.handle!;
    const at = core.now();
    let e: BuddyEdit | null;
    const copy = A.clone(handle.doc(), { actor: core.actor });
    try {
      e = make(copy, at);
    } catch (err) {
      A.free(copy);
      if (err instanceof RangeError) throw new MailboxError("bad-input", err.message.replace(/^buddy list: /, ""));
      throw err;
    }
    // the copy was only for making the change: its memory (Automerge's, outside the JS heap) goes now
    A.free(e?.doc ?? copy);
    if (!e) return false;
    const key = personalKey(core, at);
    const env = sealChange(core.identity, { conversation: this.conversation, segment: 0, recipients: [], created: at, lifetime: core.lifetime }, key, e.change);
    core.storeOwn(env); // from here the edit is made: what fails below is redone from the sealed store
    const before = core.buddyIndex;
    handle.update((d) => A.applyChanges(d, [e.change])[0]);
    const decoded = A.decodeChange(e.change);
    try {
      core.state.batch(() => {
        core.state.recordChange(this.conversation, 0, decoded);
        core.state.markOpened(env.id, this.conversation, "applied", core.now(), undefined, decoded.hash);
      });
    } catch (err) {
      core.log.warn(`a buddy-list change is stored but its bookkeeping could not be written (${core.storageFailed(err)}); it is redone on recovery`);
    }
    await core.flushQuietly(handle as DocHandle<unknown>);
    await this.changed(before, "here");
    return true;
  }

  /**
   * A change another device of the person made, admitted by the buddy-list rule: applied, unless it
   * waits for earlier changes (false).
   */
  async receive(env: Envelope, change: Uint8Array, decoded: DecodedChange): Promise<boolean> {
    const { core } = this;
    const handle = this.handle!;
    if (!hasChanges(handle.doc(), decoded.deps)) return false;
    const before = core.buddyIndex;
    if (!hasChanges(handle.doc(), [decoded.hash])) handle.update((d) => A.applyChanges(d, [change])[0]);
    core.state.batch(() => {
      core.state.recordChange(this.conversation, 0, decoded);
      core.state.markOpened(env.id, this.conversation, "applied", core.now(), undefined, decoded.hash);
    });
    await core.flushQuietly(handle as DocHandle<unknown>);
    await this.changed(before, "device");
    return true;
  }

  /**
   * After a change: the index everyone reads, contacts for buddies this laptop never saw (added on
   * another device), acknowledgements held for people who just became buddies, and the events.
   */
  private async changed(before: BuddyIndex, from: BuddiesChange["from"]): Promise<void> {
    const { core } = this;
    core.buddyIndex = indexOf(this.doc);
    this.knowContacts();
    const now = [...core.buddyIndex.byKey.keys()].filter((k) => core.isBuddy(fromHex(k)));
    const fresh = new Set(now.filter((k) => !before.byKey.has(k) || before.blocked.has(k)));
    // their requests' acknowledgements, held until now, go out: they learn the child has them (from
    // another village, by a signed receipt: acknowledgements do not travel between villages)
    for (const k of fresh) this.receipts.release({ author: fromHex(k) });
    if (fresh.size) {
      for (const conv of core.state.conversations()) {
        if (!core.state.members(conv)!.some((m) => fresh.has(toHex(m))) || !this.receipts.betweenVillages(conv)) continue;
        for (const seg of core.state.segments(conv)) await this.receipts.ensure(conv, seg, { state: "delivered" });
      }
    }
    core.events.emit("buddies", { buddies: this.views(), blocked: this.blocked(), from });
    core.events.emit("changed");
  }

  /**
   * Every buddy on the list is a contact this laptop can write to (a buddy added on another device
   * brings their card); one known only from their own claim becomes one the child chose.
   */
  private knowContacts(): void {
    const { core } = this;
    for (const b of core.buddyIndex.byKey.values()) {
      const key = fromHex(b.signKey);
      const known = core.state.contact(key);
      if (known && known.how !== INTRODUCED) continue;
      const card = { name: b.name, home: b.home, signPublicKey: key, sealPublicKey: fromHex(b.sealKey) };
      if (known) core.state.rememberContact(card, contactHow(b.how), known.lastSeen);
      else core.state.addContactIfMissing(card, contactHow(b.how), b.addedAt);
    }
  }

  /**
   * A store from before the buddy list: the contacts the child had as buddies (met nearby, a card, an
   * accepted request; not those known only from their own claim) and their petnames go on the list,
   * once, so nothing a child had disappears.
   */
  async migrate(): Promise<void> {
    const { core } = this;
    if (core.state.setting(MIGRATED)) return;
    let n = 0;
    for (const c of core.state.contacts()) {
      if (c.how !== "met" && c.how !== "card" && c.how !== "accepted") continue;
      if (await this.add(c)) n++;
      if (c.petname) {
        try {
          await this.rename(c.signPublicKey, c.petname);
        } catch (e) {
          if (!(e instanceof MailboxError)) throw e; // a petname the list cannot hold stays behind
        }
      }
    }
    core.state.setSetting(MIGRATED, String(core.now()));
    if (n) core.log.info(`put ${n} contact(s) of this laptop on the buddy list your devices share`);
  }

  /** A buddy's laptop was met with a card that changed (a new name, a new sealing key): the list follows. */
  async refresh(card: ContactCard): Promise<void> {
    const b = this.onList(card.signPublicKey);
    if (!b || (b.name === card.name && b.home === card.home && b.sealKey === toHex(card.sealPublicKey))) return;
    await this.add(card, b.how);
  }
}

/**
 * The key of the person's own conversation, where the buddy list and drafts travel: made (with its
 * key envelope, sealed to the person alone) the first time, and again after a revocation.
 */
export function personalKey(core: MailboxCore, at: number): Uint8Array {
  const conv = buddyListConversation(core.me);
  const current = core.state.sendingKey(conv);
  if (current && !core.state.needsRekey(conv)) return current.key;
  const key = newConversationKey();
  const env = sealKey(core.identity, { conversation: conv, recipients: [], created: at, lifetime: core.lifetime }, key);
  core.storeOwn(env);
  core.state.batch(() => {
    core.state.rememberConversation(conv, [core.me]);
    core.state.addKey(conv, { keyId: conversationKeyId(key), key, envelope: env.id });
    core.state.setSendingKey(conv, conversationKeyId(key));
    core.state.markOpened(env.id, conv, "applied", core.now());
  });
  return key;
}
