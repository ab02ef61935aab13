// The roster (RFC 6121 §2) is the buddy list Pigeon fills by itself: everyone this laptop has met.
// Items are pre-approved both ways (subscription="both"), like a shared class roster, so no child sees a
// subscription prompt; the roster cannot be edited from a client (the laptop meets people, the
// client does not invent them). Versioning (§2.6): the version is a hash of the item list, so equal
// rosters have equal versions across restarts; a client holding the current version gets an empty
// result, any other version gets the full roster.
import { createHash } from "node:crypto";
import { formatAddress } from "@pigeon/model";
import type { Contact } from "@pigeon/sync";
import { forAccount, type Account, type Iqs } from "./account.js";
import { StanzaError } from "./iq.js";
import { NS } from "./ns.js";
import { el, type XmlElement } from "./xml.js";

export interface RosterItem {
  jid: string;
  name: string;
}

export function rosterItems(contacts: Contact[], own: string): RosterItem[] {
  const byJid = new Map<string, RosterItem>();
  for (const c of contacts) {
    const jid = formatAddress(c).toLowerCase();
    if (jid === own || byJid.has(jid)) continue;
    byJid.set(jid, { jid, name: c.name });
  }
  return [...byJid.values()].sort((a, b) => (a.jid < b.jid ? -1 : 1));
}

export function rosterVersion(items: RosterItem[]): string {
  const h = createHash("sha256");
  for (const i of items) h.update(`${i.jid}\u0000${i.name}\u0001`);
  return h.digest("hex").slice(0, 16);
}

export function itemElement(i: RosterItem): XmlElement {
  return el("item", { jid: i.jid, name: i.name, subscription: "both" }, el("group", {}, "Pigeon"));
}

export function rosterQuery(items: RosterItem[], ver: string): XmlElement {
  return el("query", { xmlns: NS.roster, ver }, items.map(itemElement));
}

export function rosterPush(to: string, item: RosterItem, ver: string, id: string): XmlElement {
  return el("iq", { type: "set", id, to }, el("query", { xmlns: NS.roster, ver }, itemElement(item)));
}

/**
 * The user's roster now: their buddies. Someone known only from their own claim in a message (a
 * request, `how` "introduced") is not on it until the child accepts them.
 */
export function rosterOf(a: Account): RosterItem[] {
  return rosterItems(a.mailbox.contacts().filter((c) => c.how !== "introduced"), a.bareJid);
}

export function isContact(a: Account, jid: string): boolean {
  return rosterOf(a).some((i) => i.jid === jid);
}

export function registerRoster(iq: Iqs, a: Account): void {
  iq.get(NS.roster, "query", forAccount((q, { session }) => {
    session.rosterRequested = true;
    const items = rosterOf(a);
    const ver = rosterVersion(items);
    if (q.attrs.ver !== undefined && q.attrs.ver === ver) return undefined;
    return rosterQuery(items, ver);
  }));
  iq.set(NS.roster, "query", forAccount(() => {
    // items come from the laptops met; renaming or removing them is not possible from a client
    throw new StanzaError("not-allowed", "Pigeon's buddy list fills itself with the people this laptop has met");
  }));
}

/**
 * A contact was met for the first time (the Mailbox `contact` event): a roster push to every client
 * that asked for the roster (RFC 6121 §2.1.6), and the contact's presence to those available.
 */
export function pushContact(a: Account, c: Contact, presenceOf: (jid: string, to: string) => XmlElement): void {
  const items = rosterOf(a);
  const item = items.find((i) => i.jid === formatAddress(c).toLowerCase());
  if (!item) return;
  const ver = rosterVersion(items);
  for (const s of a.resources.all()) {
    if (!s.rosterRequested) continue;
    s.sendStanza(rosterPush(s.jid, item, ver, a.nextId("push")));
    if (s.available) s.sendStanza(presenceOf(item.jid, s.jid));
  }
}
