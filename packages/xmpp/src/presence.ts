// Presence (RFC 6121 §4). The user's resources see each other's presence. A buddy is available
// while their laptop is connected to this node, and otherwise away ("xa", not nearby): messages to
// them wait and travel when the laptops meet. Subscriptions are pre-approved both ways (roster.ts).
// Someone blocked (XEP-0191) gets no presence and is shown none.
// Who is connected comes from the sync engine's peer-up / peer-down events, pushed to the clients
// as each one happens.
import { createHash } from "node:crypto";
import { formatAddress, type Address } from "@pigeon/model";
import { NS } from "./ns.js";
import type { Account } from "./account.js";
import { contactCaps } from "./disco.js";
import { bareJid, contactJid, parseJid } from "./jid.js";
import { isContact, rosterOf } from "./roster.js";
import type { Session } from "./session.js";
import { childText, el, isElement, type XmlElement } from "./xml.js";

export const NOT_NEARBY = "not nearby: messages wait and travel when your laptops meet";


export type PeerEvent = "peer-up" | "peer-down";

/**
 * The laptops connected to this node, as far as presence needs them. Pigeon's SyncEngine is one:
 * it emits "peer-up" and "peer-down" with the link (whose `peer` is the other laptop's card), and
 * `peers()` already includes, or no longer includes, that link when the event fires.
 */
export interface PeerEvents {
  on(event: PeerEvent, listener: (link: { peer: Address }) => void): unknown;
  off(event: PeerEvent, listener: (link: { peer: Address }) => void): unknown;
  peers(): { address: string }[];
}

export class Presence {
  /** Addresses (lower case) of the laptops connected now. */
  private readonly nearby = new Set<string>();
  /** XEP-0153: the SHA-1 (hex) of each buddy's picture, once looked up ("" = they shared none). */
  private readonly photos = new Map<string, string>();
  private readonly onPicture = ({ from }: { from: string }) => void this.refreshPhoto(from.toLowerCase());
  private readonly onUp = (link: { peer: Address }) => this.setNearby(formatAddress(link.peer).toLowerCase(), true);
  private readonly onDown = (link: { peer: Address }) => {
    const address = formatAddress(link.peer).toLowerCase();
    // still nearby if another link with this address is up: two laptops can share a name@home
    this.setNearby(address, this.connected().has(address));
  };

  /**
   * Without `peers` every contact is shown as not nearby. `becameAvailable` is called when a client
   * sends its initial presence (for offline delivery).
   */
  constructor(
    private readonly a: Account,
    private readonly peers: PeerEvents | undefined,
    private readonly becameAvailable: (s: Session) => void,
  ) {}

  start(): void {
    this.a.mailbox.on("picture", this.onPicture);
    for (const item of rosterOf(this.a)) if (!item.blocked) void this.refreshPhoto(item.jid);
    if (!this.peers) return;
    this.peers.on("peer-up", this.onUp);
    this.peers.on("peer-down", this.onDown);
    for (const address of this.connected()) this.nearby.add(address);
  }

  stop(): void {
    this.a.mailbox.off("picture", this.onPicture);
    this.peers?.off("peer-up", this.onUp);
    this.peers?.off("peer-down", this.onDown);
  }

  private connected(): Set<string> {
    return new Set((this.peers?.peers() ?? []).map((p) => p.address.toLowerCase()));
  }

  /** Told of every laptop that comes near or goes (the class channels' rooms show it on their occupants). */
  onNearby: (address: string) => void = () => {};

  /** Is this laptop (address, any case) connected to this node now? */
  isNearby(address: string): boolean {
    return this.nearby.has(address.toLowerCase());
  }

  /** Records whether `address`'s laptop is connected; a contact's change goes to every available client. */
  private setNearby(address: string, near: boolean): void {
    if (near === this.nearby.has(address)) return;
    if (near) this.nearby.add(address);
    else this.nearby.delete(address);
    this.onNearby(address);
    if (!isContact(this.a, address)) return;
    for (const s of this.a.resources.available()) s.sendStanza(this.contactPresence(address, s.jid));
  }

  /**
   * Looks up a buddy's picture; when its hash changes, every available client gets their presence
   * again with the new hash, so it asks for the vCard (XEP-0153).
   */
  private async refreshPhoto(jid: string): Promise<void> {
    let hash = "";
    try {
      const p = await this.a.mailbox.pictureOf(jid);
      if (p) hash = createHash("sha1").update(p.bytes).digest("hex");
    } catch {
      return; // not someone this laptop can name: nothing to show
    }
    if (this.a.isClosed() || this.photos.get(jid) === hash) return;
    const known = this.photos.has(jid);
    this.photos.set(jid, hash);
    if (!known && hash === "") return;
    if (!isContact(this.a, jid)) return;
    for (const s of this.a.resources.available()) s.sendStanza(this.contactPresence(jid, s.jid));
  }

  /** A contact's presence as `to` should see it. */
  contactPresence(jid: string, to: string): XmlElement {
    const from = contactJid(jid);
    const hash = this.photos.get(jid);
    // XEP-0153: the picture's hash (an empty <photo/>: none), once known
    const photo = hash === undefined ? undefined : el("x", { xmlns: NS.vcardUpdate }, el("photo", {}, ...(hash ? [hash] : [])));
    if (this.nearby.has(jid)) return el("presence", { from, to }, contactCaps(), photo);
    return el("presence", { from, to }, el("show", {}, "xa"), el("status", {}, NOT_NEARBY), contactCaps(), photo);
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
    for (const item of rosterOf(this.a)) if (!item.blocked) s.sendStanza(this.contactPresence(item.jid, s.jid));
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
