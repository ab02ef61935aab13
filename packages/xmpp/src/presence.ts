// Presence (RFC 6121 §4). The user's resources see each other's presence. A contact is available
// while their laptop is connected to this node, and otherwise away ("xa", not nearby): messages to
// them wait and travel when the laptops meet. Subscriptions are pre-approved both ways (roster.ts).
import type { Account } from "./account.js";
import { bareJid, parseJid } from "./jid.js";
import { isContact, rosterOf } from "./roster.js";
import type { Session } from "./session.js";
import { childText, el, isElement, type XmlElement } from "./xml.js";

export const NOT_NEARBY = "not nearby: messages wait and travel when your laptops meet";

export class Presence {
  private nearby = new Set<string>();
  private timer: NodeJS.Timeout | undefined;

  /** `becameAvailable` is called when a client sends its initial presence (for offline delivery). */
  constructor(
    private readonly a: Account,
    private readonly isNearby: ((address: string) => boolean) | undefined,
    private readonly becameAvailable: (s: Session) => void,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.refreshNearby(), 5000);
    this.timer.unref();
    this.refreshNearby();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** A contact's presence as `to` should see it. */
  contactPresence(jid: string, to: string): XmlElement {
    if (this.nearby.has(jid)) return el("presence", { from: jid, to });
    return el("presence", { from: jid, to }, el("show", {}, "xa"), el("status", {}, NOT_NEARBY));
  }

  private refreshNearby(): void {
    const f = this.isNearby;
    if (!f) return;
    const next = new Set(rosterOf(this.a).map((i) => i.jid).filter((j) => f(j)));
    const changed = [...next].filter((j) => !this.nearby.has(j)).concat([...this.nearby].filter((j) => !next.has(j)));
    this.nearby = next;
    if (changed.length === 0) return;
    for (const s of this.a.resources.available()) for (const j of changed) s.sendStanza(this.contactPresence(j, s.jid));
  }

  /** A presence stanza from one of the user's clients. */
  stanza(s: Session, p: XmlElement): void {
    const type = p.attrs.type;
    if (p.attrs.to) {
      const to = parseJid(p.attrs.to);
      if (!to) return;
      const bare = bareJid(to);
      if (bare === this.a.bareJid) {
        this.a.resources.own(to)?.sendStanza(structuredClone(p));
        return;
      }
      if (!isContact(this.a, bare)) return;
      // the buddy list is pre-approved both ways: answer for the contact
      if (type === "subscribe") s.sendStanza(el("presence", { from: bare, to: s.bare, type: "subscribed" }));
      if (type === "probe" || type === "subscribe") s.sendStanza(this.contactPresence(bare, s.jid));
      return;
    }
    if (type === "unavailable") {
      if (!s.available) return;
      this.unavailable(s);
      s.sendStanza(el("presence", { from: s.jid, to: s.jid, type: "unavailable" }));
      return;
    }
    if (type !== undefined) return; // subscription management of oneself: nothing to do
    const first = !s.available;
    s.available = true;
    s.priority = Number(childText(p, "priority") ?? 0) || 0;
    s.lastPresence = p;
    const kids = p.children.filter(isElement);
    for (const o of this.a.resources.available()) o.sendStanza(el("presence", { from: s.jid, to: o.jid }, structuredClone(kids)));
    if (!first) return;
    for (const o of this.a.resources.available()) {
      if (o !== s && o.lastPresence) s.sendStanza(el("presence", { from: o.jid, to: s.jid }, structuredClone(o.lastPresence.children.filter(isElement))));
    }
    for (const item of rosterOf(this.a)) s.sendStanza(this.contactPresence(item.jid, s.jid));
    this.becameAvailable(s);
  }

  /** A bound client went away. */
  ended(s: Session): void {
    if (s.available) this.unavailable(s);
  }

  /** `s` is no longer available: its other resources are told. */
  private unavailable(s: Session): void {
    s.available = false;
    for (const o of this.a.resources.available()) o.sendStanza(el("presence", { from: s.jid, to: o.jid, type: "unavailable" }));
  }
}
