// The roster (RFC 6121 §2) is the buddy list Pigeon fills by itself: everyone this laptop has met.
// Items are pre-approved both ways (subscription="both"), like a shared class roster, so no child sees a
// subscription prompt; the roster cannot be edited from a client (the laptop meets people, the
// client does not invent them). Versioning (§2.6): the version is a hash of the item list, so equal
// rosters have equal versions across restarts; a client holding the current version gets an empty
// result, any other version gets the full roster.
import { createHash } from "node:crypto";
import { formatAddress } from "@pigeon/model";
import type { Contact } from "@pigeon/sync";
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
