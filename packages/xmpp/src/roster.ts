// The roster (RFC 6121 §2) is the user's buddy list: the Automerge document the person's devices
// share (Mailbox.buddies()), not the laptops met nearby. Items are pre-approved both ways
// (subscription="both"), like a shared class roster, so no child sees a subscription prompt. A
// client edits it like any roster (§2.3, §2.5): a roster set adds someone this laptop knows (met
// nearby, a card, a message) or changes their name (the petname) and groups; subscription="remove"
// takes them off. Every change, from a client, the `pigeon` command or another device of the person,
// is pushed to every client that asked for the roster (§2.1.6), one push per changed item with the
// version after it. Versioning (§2.6): the version is a hash of the items, so equal rosters have equal
// versions across restarts and devices; a client holding the current version gets an empty result.
import { createHash } from "node:crypto";
import { fingerprint, formatAddress, fromHex, MAX_GROUP_CHARS, MAX_GROUPS, validName } from "@pigeon/model";
import { MailboxError, type BuddiesChange, type BuddyView, type PersonView } from "@pigeon/sync";
import { forAccount, type Account, type Iqs } from "./account.js";
import { StanzaError } from "./iq.js";
import { bareJid, contactJid, parseJid } from "./jid.js";
import { NS } from "./ns.js";
import { children, el, text, type XmlElement } from "./xml.js";

export interface RosterItem {
  jid: string;
  /** The user's name for them (the petname), else their own. */
  name: string;
  groups: string[];
  /** Hex person key (which buddy a roster set or remove means). */
  key: string;
  /** On the list but blocked (XEP-0191): no presence, no messages. */
  blocked: boolean;
}

const jidOf = (p: { name: string; home: string }) => formatAddress(p).toLowerCase();

export function rosterItems(list: BuddyView[], own: string): RosterItem[] {
  const byJid = new Map<string, RosterItem>();
  for (const b of list) {
    const jid = jidOf(b);
    // two buddies with one name@home share a JID: XMPP shows the first (Pigeon tells them apart by fingerprint)
    if (jid === own || byJid.has(jid)) continue;
    byJid.set(jid, { jid, name: b.petname ?? b.name, groups: b.groups, key: b.signPublicKey, blocked: b.blocked });
  }
  return [...byJid.values()].sort((a, b) => (a.jid < b.jid ? -1 : 1));
}

export function rosterVersion(items: RosterItem[]): string {
  const h = createHash("sha256");
  for (const i of items) h.update(`${i.jid}\u0000${i.name}\u0000${i.groups.join("\u0000")}\u0001`);
  return h.digest("hex").slice(0, 16);
}

export function itemElement(i: RosterItem): XmlElement {
  return el("item", { jid: i.jid, name: i.name, subscription: "both" }, i.groups.map((g) => el("group", {}, g)));
}

export function rosterQuery(items: RosterItem[], ver: string): XmlElement {
  return el("query", { xmlns: NS.roster, ver }, items.map(itemElement));
}

function push(to: string, id: string, ver: string, item: XmlElement): XmlElement {
  return el("iq", { type: "set", id, to }, el("query", { xmlns: NS.roster, ver }, item));
}

/** What changed between two rosters and block lists, for the pushes. */
interface Diff {
  /** One step per changed item, with the version after it. */
  steps: { item: XmlElement; ver: string }[];
  /** JIDs that came onto the roster unblocked, or whose block was lifted: their presence is shown. */
  shown: string[];
  /** JIDs that left the roster or were blocked: shown unavailable. */
  hidden: string[];
  blocked: string[];
  unblocked: string[];
}

/**
 * The roster and block list as the clients were last told them. Mailbox 'buddies' events update it;
 * while a client's roster set or block is being applied (several Mailbox edits) the pushes wait, so
 * the client gets one push per item it changed.
 */
export class Roster {
  private items: RosterItem[] = [];
  private blockedJids: string[] = [];
  private holds = 0;
  private waiting: BuddiesChange | undefined;

  constructor(private readonly a: Pick<Account, "bareJid" | "resources" | "nextId">, private readonly presence: (jid: string, to: string) => XmlElement) {}

  /** The roster now (blocked buddies included: they stay on the list). */
  list(): RosterItem[] {
    return this.items;
  }

  version(): string {
    return rosterVersion(this.items);
  }

  /** On the roster and not blocked: presence and messages flow. */
  isContact(jid: string): boolean {
    return this.items.some((i) => i.jid === jid && !i.blocked);
  }

  blocked(): string[] {
    return this.blockedJids;
  }

  /** Reads the list at start, before any client can ask. */
  load(change: Pick<BuddiesChange, "buddies" | "blocked">): void {
    this.items = rosterItems(change.buddies, this.a.bareJid);
    this.blockedJids = blockedJids(change.blocked, this.a.bareJid);
  }

  /** The buddy list changed (the Mailbox 'buddies' event): push what changed to the clients. */
  changed(change: BuddiesChange): void {
    if (this.holds > 0) {
      this.waiting = change;
      return;
    }
    const diff = this.diff(rosterItems(change.buddies, this.a.bareJid), blockedJids(change.blocked, this.a.bareJid));
    for (const s of this.a.resources.all()) {
      if (s.rosterRequested) for (const st of diff.steps) s.sendStanza(push(s.jid, this.a.nextId("push"), st.ver, structuredClone(st.item)));
      if (s.blocklistRequested) {
        if (diff.blocked.length) s.sendStanza(blockPush(s.jid, this.a.nextId("push"), "block", diff.blocked));
        if (diff.unblocked.length) s.sendStanza(blockPush(s.jid, this.a.nextId("push"), "unblock", diff.unblocked));
      }
      if (!s.available) continue;
      for (const jid of diff.hidden) s.sendStanza(el("presence", { from: contactJid(jid), to: s.jid, type: "unavailable" }));
      for (const jid of diff.shown) s.sendStanza(this.presence(jid, s.jid));
    }
  }

  /** Runs a client's edit with the pushes held until it is done (one push per changed item). */
  async holding<T>(fn: () => Promise<T>): Promise<T> {
    this.holds++;
    try {
      return await fn();
    } finally {
      if (--this.holds === 0 && this.waiting) {
        const w = this.waiting;
        this.waiting = undefined;
        this.changed(w);
      }
    }
  }

  private diff(next: RosterItem[], nextBlocked: string[]): Diff {
    const before = new Map(this.items.map((i) => [i.jid, i]));
    const after = new Map(next.map((i) => [i.jid, i]));
    const d: Diff = { steps: [], shown: [], hidden: [], blocked: [], unblocked: [] };
    // each change applied in turn, so every push carries the version the roster had after it (§2.6.3)
    const current = new Map(before);
    const step = (item: XmlElement) => d.steps.push({ item, ver: rosterVersion([...current.values()].sort((x, y) => (x.jid < y.jid ? -1 : 1))) });
    for (const [jid, old] of before) {
      if (after.has(jid)) continue;
      current.delete(jid);
      step(el("item", { jid, subscription: "remove" }));
      if (!old.blocked) d.hidden.push(jid);
    }
    for (const [jid, item] of after) {
      const old = before.get(jid);
      if (!old || old.name !== item.name || old.groups.join("\u0000") !== item.groups.join("\u0000")) {
        current.set(jid, item);
        step(itemElement(item));
      }
      const wasShown = !!old && !old.blocked;
      if (!item.blocked && !wasShown) d.shown.push(jid);
      if (item.blocked && wasShown) d.hidden.push(jid);
    }
    this.items = next;
    const was = new Set(this.blockedJids);
    const now = new Set(nextBlocked);
    d.blocked = nextBlocked.filter((j) => !was.has(j));
    d.unblocked = this.blockedJids.filter((j) => !now.has(j));
    this.blockedJids = nextBlocked;
    return d;
  }
}

function blockedJids(list: PersonView[], own: string): string[] {
  // someone blocked who was never seen on this laptop has no address to show
  const jids = list.flatMap((p) => (p.name && p.home ? [jidOf({ name: p.name, home: p.home })] : []));
  return [...new Set(jids)].filter((j) => j !== own).sort();
}

export function blockPush(to: string, id: string, what: "block" | "unblock", jids: string[]): XmlElement {
  return el("iq", { type: "set", id, to }, el(what, { xmlns: NS.blocking }, jids.map((jid) => el("item", { jid }))));
}

/** The user's roster now. */
export function rosterOf(a: Account): RosterItem[] {
  return a.roster.list();
}

/** A buddy presence and messages flow with (on the roster, not blocked). */
export function isContact(a: Account, jid: string): boolean {
  return a.roster.isContact(jid);
}

/** A Mailbox refusal as the stanza error RFC 6121 and XEP-0191 clients understand. */
export function stanzaErrorOf(e: unknown): StanzaError {
  if (!(e instanceof MailboxError)) throw e;
  switch (e.code) {
    case "unknown-address":
    case "not-found":
      return new StanzaError("item-not-found", e.message);
    case "storage":
      return new StanzaError("resource-constraint", e.message, "wait");
    case "blocked":
      return new StanzaError("not-allowed", e.message);
    default:
      return new StanzaError("not-acceptable", e.message);
  }
}

/** The item's JID, checked: a bare JID of someone else. */
export function itemJid(item: XmlElement, own: string): string {
  const jid = item.attrs.jid === undefined ? undefined : parseJid(item.attrs.jid);
  if (!jid) throw new StanzaError(item.attrs.jid === undefined ? "bad-request" : "jid-malformed", "an item needs the JID of someone");
  const bare = bareJid(jid);
  if (jid.resource || !jid.local) throw new StanzaError("bad-request", "a roster item is a bare JID, name@home");
  if (bare === own) throw new StanzaError("not-allowed", "you are not on your own buddy list");
  return bare;
}

/**
 * Whom a JID a client gave means: the buddy with that address, else the one person this laptop knows
 * by it (met nearby, a card, a message); by fingerprint, so two people with one name are never mixed.
 */
export function whoIs(a: Account, jid: string): string {
  const onList = a.roster.list().find((i) => i.jid === jid);
  if (onList) return fingerprint(fromHex(onList.key));
  try {
    return fingerprint(a.mailbox.resolve(jid).signPublicKey);
  } catch (e) {
    if (e instanceof MailboxError && e.code === "ambiguous-address")
      throw new StanzaError("not-acceptable", `${e.message}\n(add the one you mean with: pigeon buddies add ${jid}#FPRT)`);
    if (e instanceof MailboxError && e.code === "unknown-address")
      throw new StanzaError("item-not-found", `Pigeon knows nobody called ${jid} on this laptop: meet their laptop nearby, or add their contact card`);
    throw stanzaErrorOf(e);
  }
}

/** A roster set's item (§2.3): its name and groups, checked against §2.3.3 before anything changes. */
function wanted(item: XmlElement): { name: string | undefined; groups: string[] } {
  const groups = children(item, "group").map((g) => text(g));
  if (new Set(groups).size !== groups.length) throw new StanzaError("bad-request", "the same group twice");
  for (const g of groups) {
    if (g.trim() === "") throw new StanzaError("not-acceptable", "an empty group");
    if ([...g].length > MAX_GROUP_CHARS || /[\p{Cc}\p{Cf}]/u.test(g)) throw new StanzaError("not-acceptable", `a group name is at most ${MAX_GROUP_CHARS} printable characters`);
  }
  if (groups.length > MAX_GROUPS) throw new StanzaError("not-acceptable", `at most ${MAX_GROUPS} groups per buddy`);
  const raw = item.attrs.name?.trim();
  const name = raw === undefined || raw === "" ? undefined : raw.toLowerCase();
  if (name !== undefined && !validName(name))
    throw new StanzaError("not-acceptable", `"${raw}" cannot be a name here: 1-32 of a-z, 0-9, '.', '_' or '-', starting with a letter or digit`);
  return { name, groups };
}

export function registerRoster(iq: Iqs, a: Account): void {
  iq.get(NS.roster, "query", forAccount((q, { session }) => {
    session.rosterRequested = true;
    const ver = a.roster.version();
    if (q.attrs.ver !== undefined && q.attrs.ver === ver) return undefined;
    return rosterQuery(a.roster.list(), ver);
  }));
  iq.set(NS.roster, "query", forAccount(async (q) => {
    const items = children(q, "item");
    if (items.length !== 1) throw new StanzaError("bad-request", "a roster set holds exactly one item");
    const item = items[0]!;
    const jid = itemJid(item, a.bareJid);
    if (item.attrs.subscription === "remove") {
      const on = a.roster.list().find((i) => i.jid === jid);
      if (!on) throw new StanzaError("item-not-found", `${jid} is not on your buddy list`);
      await a.roster.holding(() => a.mailbox.removeBuddy(fingerprint(fromHex(on.key))).catch((e: unknown) => Promise.reject(stanzaErrorOf(e))));
      return undefined;
    }
    // any other subscription value is ignored in a roster set (§2.1.2.5); ask is the server's own
    const want = wanted(item);
    const who = whoIs(a, jid);
    await a.roster.holding(async () => {
      try {
        const b = await a.mailbox.addBuddy(who);
        // the name shown when there is no petname is their own: sending it back sets no petname
        const petname = want.name === undefined || (!b.petname && want.name === b.name) ? "" : want.name;
        if ((b.petname ?? "") !== petname) await a.mailbox.renameBuddy(who, petname);
        for (const g of want.groups) if (!b.groups.includes(g)) await a.mailbox.addToGroup(who, g);
        for (const g of b.groups) if (!want.groups.includes(g)) await a.mailbox.removeFromGroup(who, g);
      } catch (e) {
        throw e instanceof StanzaError ? e : stanzaErrorOf(e);
      }
    });
    return undefined;
  }));
}
