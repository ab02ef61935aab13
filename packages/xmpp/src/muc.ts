// Class channels as multi-user chat rooms (XEP-0045), with their archive (XEP-0313 on the room).
// The node's MUC service is `channels.<domain>`; each channel this laptop knows is a room there
// (its JID from the channel's name and id, its name the channel's name). Nothing is kept here: who is
// in a room is the channel's membership (Mailbox.channels()), what was said is the channel's
// messages, and a room is never made from XMPP (channels are started with `pigeon channel create`).
//  - joining: only members; the occupants are all the channel's members (nick = their name), owner
//    and admins as moderators; then the history (<history/> honoured) and the subject (the name);
//  - a groupchat message is Mailbox.sendToChannel (one sealed envelope per message), reflected to
//    the user's joined clients; messages from other laptops are pushed to them as they arrive;
//  - a kick or affiliation "none"/"outcast" by the owner or an admin is Mailbox.removeFromChannel;
//    "member" adds someone, "admin" names an admin; by anyone else `forbidden`;
//  - membership changes from anywhere (the pigeon command, another laptop) are shown as occupants
//    coming and going;
//  - every member is an occupant, near or not; how fresh their presence is shows as XEP-0045 shows:
//    none while their laptop is connected to this one, "away" if it was near in the last
//    AWAY_FOR_MS, "xa" (not nearby) otherwise, each with a status saying so.
import { MailboxError, type ChannelView, type MessageView } from "@pigeon/sync";
import type { Account } from "./account.js";
import { finElement, formElement, parseArchiveQuery } from "./archive.js";
import { IqRegistry, StanzaError } from "./iq.js";
import { bareJid, parseJid, type Jid } from "./jid.js";
import { MAX_MESSAGE_CHARS, MAX_PARTS, splitBody } from "./long-messages.js";
import { archiveResults } from "./mam.js";
import { conversationArchive } from "./messages.js";
import { NS, parseStamp, xmppStamp } from "./ns.js";
import type { Session } from "./session.js";
import { messageError } from "./stanzas.js";
import { child, childText, children, el, type XmlElement } from "./xml.js";

/** A member whose laptop was near less than this long ago is "away"; longer (or never), "xa". */
export const AWAY_FOR_MS = 24 * 3600_000;

/** Whether a member's laptop is connected now (presence.ts), and told when one comes or goes. */
export interface Nearness {
  isNearby(address: string): boolean;
  onNearby: (address: string) => void;
}

/** History sent on join when the client does not say (Prosody's default), and the most it may ask. */
export const DEFAULT_HISTORY = 20;
export const MAX_HISTORY = 100;

type Affiliation = "owner" | "admin" | "member";

interface Occupant {
  /** The member's Pigeon address (their real JID, shown: the room is not anonymous). */
  address: string;
  nick: string;
  affiliation: Affiliation;
}

interface Room {
  id: string;
  jid: string;
  view: ChannelView;
}

interface MucRequest {
  session: Session;
  to: Jid;
  room?: Room;
}

/** A room JID's local part: the channel's name made safe (a-z, 0-9, -) and the start of its id, stable as both are. */
export function roomLocal(view: Pick<ChannelView, "id" | "title">): string {
  const slug = view.title
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .slice(0, 32)
    .replace(/^-+|-+$/g, "");
  return slug ? `${slug}-${view.id.slice(0, 8)}` : `channel-${view.id.slice(0, 8)}`;
}

/** The channel's members as occupants; a name two members share is shown with its home. */
function occupantsOf(view: ChannelView): Occupant[] {
  const name = (address: string) => address.split("@")[0]!;
  const count = new Map<string, number>();
  for (const m of view.members) count.set(name(m.address), (count.get(name(m.address)) ?? 0) + 1);
  return view.members.map((m) => ({
    address: m.address.toLowerCase(),
    nick: count.get(name(m.address))! > 1 ? m.address : name(m.address),
    affiliation: m.owner ? "owner" : m.admin ? "admin" : "member",
  }));
}

/**
 * The status codes of someone removed from the channel by a change made elsewhere (the pigeon command,
 * another laptop): 321, out because their affiliation is gone (XEP-0045 §9.5), and 307, kicked, which is
 * what it is to the child and the only one some clients show (profanity 0.13 says nothing for 321).
 */
const REMOVED = "307 321";

const roleOf = (a: Affiliation | "none") => (a === "none" ? "none" : a === "member" ? "participant" : "moderator");

export class Muc {
  readonly domain: string;
  /** The rooms each client joined, by channel id. */
  private readonly joined = new Map<Session, Set<string>>();
  /** The occupants each joined room was last shown with, by channel id (to show changes). */
  private readonly shown = new Map<string, Occupant[]>();
  /** Why someone is leaving a room (307 kicked, from this user's client), by channel id + address. */
  private readonly reasons = new Map<string, string>();
  /** Channel messages a client is sending now: reflected by the send, not by the Mailbox event. */
  private readonly sending = new Map<string, number>();
  private readonly iqs: IqRegistry<MucRequest>;
  private readonly onMessage = (v: MessageView) => this.pigeonMessage(v);
  private readonly onChanged = () => this.refreshAll();

  /** When each member's laptop was last near (address, lower case), from the Mailbox's people met. */
  private readonly met = new Map<string, number>();

  constructor(
    private readonly a: Account,
    private readonly near?: Nearness,
  ) {
    this.domain = `channels.${a.domain}`;
    if (near) near.onNearby = (address) => void this.nearnessChanged(address);
    this.iqs = new IqRegistry<MucRequest>({
      from: this.domain,
      onError: (e, iq) => a.log.warn(`xmpp: answering a room IQ ${iq.attrs.id ?? ""} failed: ${(e as Error).stack ?? e}`),
    });
    this.registerIqs();
  }

  start(): void {
    this.a.mailbox.on("message", this.onMessage);
    this.a.mailbox.on("changed", this.onChanged);
    void this.learnMet();
  }

  stop(): void {
    this.a.mailbox.off("message", this.onMessage);
    this.a.mailbox.off("changed", this.onChanged);
  }

  /** For the domain's disco#items: where the rooms are. */
  serviceItem(): XmlElement {
    return el("item", { jid: this.domain, name: "Class channels" });
  }

  /** Is `st` addressed to the MUC service or one of its rooms? */
  handles(st: XmlElement): boolean {
    const to = st.attrs.to ? parseJid(st.attrs.to) : undefined;
    return to?.domain === this.domain;
  }

  stanza(s: Session, st: XmlElement): void {
    const to = parseJid(st.attrs.to!)!;
    if (st.name === "iq") return this.iqs.handle(st, (reply) => s.sendStanza(reply), () => ({ session: s, to, room: to.local ? this.room(to.local) : undefined }));
    if (st.name === "presence") return this.presence(s, st, to);
    return this.message(s, st, to);
  }

  /** A client went away, or sent unavailable presence to everyone: it left its rooms. */
  ended(s: Session): void {
    this.joined.delete(s);
  }

  // ---- rooms ----

  private rooms(): Room[] {
    return this.a.mailbox.channels().map((view) => ({ id: view.id, jid: `${roomLocal(view)}@${this.domain}`, view }));
  }

  private room(local: string): Room | undefined {
    return this.rooms().find((r) => r.jid === `${local}@${this.domain}`);
  }

  private isMember(room: Room): boolean {
    return room.view.member && room.view.members.some((m) => m.address.toLowerCase() === this.a.bareJid);
  }

  private me(room: Room): Occupant | undefined {
    return occupantsOf(room.view).find((o) => o.address === this.a.bareJid);
  }

  private joinedSessions(roomId: string): Session[] {
    return [...this.joined].filter(([s, rooms]) => rooms.has(roomId) && !s.isEnded).map(([s]) => s);
  }

  // ---- presence: joining and leaving ----

  private presence(s: Session, p: XmlElement, to: Jid): void {
    const type = p.attrs.type;
    if (type === "error" || type === "probe" || !to.local) return;
    const room = this.room(to.local);
    if (type === "unavailable") {
      if (!room || !this.joined.get(s)?.has(room.id)) return;
      this.joined.get(s)!.delete(room.id);
      const me = this.me(room);
      s.sendStanza(this.occupantPresence(room, me ?? { address: this.a.bareJid, nick: to.resource, affiliation: "member" }, s, "unavailable", ["110"]));
      return;
    }
    if (type !== undefined) return;
    const fail = (condition: string, errorType: string, text: string) =>
      s.sendStanza(el("presence", { type: "error", from: p.attrs.to, to: s.jid, id: p.attrs.id },
        el("x", { xmlns: NS.muc }),
        el("error", { type: errorType }, el(condition, { xmlns: NS.stanzas }), el("text", { xmlns: NS.stanzas, "xml:lang": "en" }, text))));
    if (!room) return fail("not-allowed", "cancel", "rooms here are class channels: a channel is started with pigeon channel create");
    if (!to.resource) return fail("jid-malformed", "modify", "say your nickname");
    const me = this.me(room);
    if (!me || !this.isMember(room)) return fail("registration-required", "auth", `only the members of "${room.view.title}" may join`);
    const already = this.joined.get(s)?.has(room.id) ?? false;
    if (!this.joined.has(s)) this.joined.set(s, new Set());
    this.joined.get(s)!.add(room.id);
    // the nick is the person's name, whatever the client asked (status 210 tells it so)
    const renamed = to.resource !== me.nick ? ["210"] : [];
    if (already) return s.sendStanza(this.occupantPresence(room, me, s, undefined, ["110", ...renamed]));
    const occupants = occupantsOf(room.view);
    this.shown.set(room.id, occupants);
    for (const o of occupants) if (o.address !== this.a.bareJid) s.sendStanza(this.occupantPresence(room, o, s));
    s.sendStanza(this.occupantPresence(room, me, s, undefined, ["100", "110", ...renamed]));
    void this.history(s, room, child(child(p, "x", NS.muc) ?? el("x"), "history"))
      .catch((e: unknown) => this.a.log.warn(`xmpp: history of ${room.jid} for ${s.jid} failed: ${(e as Error).message}`))
      .finally(() => {
        // the subject comes last: clients take it as "joined, history done" (XEP-0045 §7.2.15)
        if (this.joined.get(s)?.has(room.id)) s.sendStanza(el("message", { type: "groupchat", from: room.jid, to: s.jid, id: this.a.nextId("subject") }, el("subject", {}, room.view.title)));
      });
  }

  private occupantPresence(room: Room, o: Occupant, s: Session, type?: "unavailable", codes: string[] = []): XmlElement {
    const affiliation = type === "unavailable" && codes.some((c) => c === "307" || c === "321") ? "none" : o.affiliation;
    return el(
      "presence",
      { from: `${room.jid}/${o.nick}`, to: s.jid, type },
      type === "unavailable" ? [] : this.freshness(o.address),
      el("x", { xmlns: NS.mucUser }, el("item", { affiliation, role: type === "unavailable" ? "none" : roleOf(affiliation), jid: o.address }), codes.map((code) => el("status", { code }))),
    );
  }

  /** XEP-0045 §7.2.14: the last messages, as many as <history/> allows (maxstanzas, seconds, since; maxchars="0" for none). */
  private async history(s: Session, room: Room, h: XmlElement | undefined): Promise<void> {
    let max = DEFAULT_HISTORY;
    if (h?.attrs.maxstanzas !== undefined) max = Math.min(MAX_HISTORY, Math.max(0, Number(h.attrs.maxstanzas) || 0));
    if (h?.attrs.maxchars === "0") max = 0;
    let since = parseStamp(h?.attrs.since);
    if (h?.attrs.seconds !== undefined && Number.isFinite(Number(h.attrs.seconds)))
      since = Math.max(since ?? 0, this.a.now() - Number(h.attrs.seconds) * 1000);
    if (max === 0) return;
    const page = await this.a.mailbox.messages({ conversation: room.id, last: true, limit: max });
    for (const v of page) {
      if (since !== undefined && (v.arrivedAt ?? v.claimedSentAt) < since) continue;
      if (s.isEnded || !this.joined.get(s)?.has(room.id)) return;
      const m = this.groupchat(room, v, s.jid);
      m.children.push(el("delay", { xmlns: NS.delay, from: room.jid, stamp: xmppStamp(v.claimedSentAt) }));
      s.sendStanza(m);
    }
  }

  /** A channel message as a room message: from the author's nick, the Pigeon id as the room's stanza-id. */
  private groupchat(room: Room, v: MessageView, to: string, clientId?: string): XmlElement {
    const ids = v.direction === "out" ? this.a.store.ids(v.id) : undefined;
    const author = occupantsOf(room.view).find((o) => o.address === v.from.toLowerCase());
    const nick = author?.nick ?? v.from.split("@")[0]!;
    const originId = ids?.originId ?? (v.direction === "in" ? v.id : undefined);
    return el(
      "message",
      { type: "groupchat", from: `${room.jid}/${nick}`, to, id: clientId ?? ids?.clientId ?? v.id },
      el("body", {}, v.body),
      el("stanza-id", { xmlns: NS.sid, id: v.id, by: room.jid }),
      originId ? el("origin-id", { xmlns: NS.sid, id: originId }) : undefined,
    );
  }

  // ---- messages ----

  private message(s: Session, m: XmlElement, to: Jid): void {
    const type = m.attrs.type ?? "normal";
    if (type === "error") return;
    const room = to.local ? this.room(to.local) : undefined;
    if (!room) return messageError(s, m, "item-not-found", "cancel", "no such class channel");
    if (to.resource || type !== "groupchat")
      return messageError(s, m, "not-acceptable", "cancel", "a channel has no private messages: write to the person directly (name@home)");
    if (!this.joined.get(s)?.has(room.id)) return messageError(s, m, "not-acceptable", "cancel", "join the room first");
    if (child(m, "subject")) return messageError(s, m, "forbidden", "auth", "the subject is the channel's name, which does not change");
    const body = childText(m, "body");
    if (body === undefined || body.trim() === "") return; // chat states and markers: not carried in channels
    const parts = splitBody(body);
    if (!parts)
      return messageError(s, m, "not-acceptable", "modify",
        `the message is ${body.length} characters; the longest message is ${MAX_MESSAGE_CHARS} characters (sent as up to ${MAX_PARTS} parts)`);
    const clientId = m.attrs.id;
    const originId = child(m, "origin-id", NS.sid)?.attrs.id;
    for (const p of parts) this.sending.set(`${room.id} ${p}`, (this.sending.get(`${room.id} ${p}`) ?? 0) + 1);
    Promise.all(parts.map((p) => this.a.mailbox.sendToChannel(room.id, p)))
      .then((views) => {
        views.forEach((v, i) => {
          if (i === 0) this.a.store.rememberIds({ pigeonId: v.id, clientId, originId, resource: s.resource });
          // XEP-0045 §7.4: the room reflects the message to its sender, which is how clients know it went
          for (const o of this.joinedSessions(room.id)) o.sendStanza(this.groupchat(room, v, o.jid, i === 0 ? clientId : undefined));
        });
      })
      .catch((e: unknown) => {
        if (e instanceof MailboxError) return messageError(s, m, "not-acceptable", "cancel", e.message);
        this.a.log.warn(`xmpp: could not write to ${room.jid} from ${s.jid}: ${(e as Error).message}`);
        messageError(s, m, "internal-server-error", "wait");
      })
      .finally(() => {
        for (const p of parts) {
          const k = `${room.id} ${p}`;
          const n = (this.sending.get(k) ?? 1) - 1;
          if (n > 0) this.sending.set(k, n);
          else this.sending.delete(k);
        }
      });
  }

  /** A channel message was written or arrived: to the clients in its room. */
  private pigeonMessage(v: MessageView): void {
    if (v.channel === undefined || this.a.isClosed() || v.request) return;
    // one a client of ours is sending is reflected by that send (with the client's id)
    if (v.direction === "out" && this.sending.has(`${v.conversation} ${v.body}`)) return;
    const sessions = this.joinedSessions(v.conversation);
    if (sessions.length === 0) return;
    const room = this.rooms().find((r) => r.id === v.conversation);
    if (!room) return;
    for (const s of sessions) s.sendStanza(this.groupchat(room, v, s.jid));
  }

  // ---- how fresh each occupant's presence is ----

  /** <show/> and <status/> for a member: nothing while near (or the user), else away or xa. */
  private freshness(address: string): XmlElement[] {
    if (!this.near || address === this.a.bareJid || this.near.isNearby(address)) return [];
    const last = this.met.get(address);
    const ago = last === undefined ? Infinity : this.a.now() - last;
    if (ago < AWAY_FOR_MS) return [el("show", {}, "away"), el("status", {}, `near ${agoText(ago)} ago: messages wait and travel when your laptops meet`)];
    return [el("show", {}, "xa"), el("status", {}, "not nearby: messages wait and travel when your laptops meet")];
  }

  /** Learns when members' laptops were last near (the Mailbox's people met). */
  private async learnMet(): Promise<void> {
    try {
      for (const p of await this.a.mailbox.nearby()) this.met.set(p.address.toLowerCase(), p.lastMet);
    } catch (e) {
      this.a.log.warn(`xmpp: could not learn when members were near: ${(e as Error).message}`);
    }
  }

  /** A laptop came near or went: its occupant presence again, in every joined room it is in. */
  private async nearnessChanged(address: string): Promise<void> {
    await this.learnMet();
    if (this.a.isClosed()) return;
    for (const [s, rooms] of this.joined) {
      if (s.isEnded) continue;
      for (const id of rooms) {
        const o = this.shown.get(id)?.find((x) => x.address === address);
        const room = o && this.rooms().find((r) => r.id === id);
        if (o && room) s.sendStanza(this.occupantPresence(room, o, s, undefined, address === this.a.bareJid ? ["110"] : []));
      }
    }
  }

  // ---- who is in the room ----

  /** Shows each joined room's membership changes (from the pigeon command, another laptop, or a kick here). */
  private refreshAll(): void {
    if (this.a.isClosed() || this.joined.size === 0) return;
    const ids = new Set<string>();
    for (const rooms of this.joined.values()) for (const id of rooms) ids.add(id);
    for (const room of this.rooms()) if (ids.has(room.id)) this.refresh(room);
  }

  private refresh(room: Room): void {
    const before = this.shown.get(room.id) ?? [];
    const now = this.isMember(room) ? occupantsOf(room.view) : [];
    this.shown.set(room.id, now);
    const sessions = this.joinedSessions(room.id);
    if (now.length === 0) {
      // the user was removed from the channel: their clients are out of the room (XEP-0045 §9.5, 321)
      const me = before.find((o) => o.address === this.a.bareJid);
      const why = this.reasons.get(`${room.id} ${this.a.bareJid}`) ?? REMOVED;
      for (const s of sessions) {
        if (me) s.sendStanza(this.occupantPresence(room, me, s, "unavailable", ["110", ...why.split(" ")]));
        this.joined.get(s)?.delete(room.id);
      }
      return;
    }
    for (const o of before) {
      if (now.some((x) => x.address === o.address)) continue;
      const why = (this.reasons.get(`${room.id} ${o.address}`) ?? REMOVED).split(" ");
      this.reasons.delete(`${room.id} ${o.address}`);
      for (const s of sessions) s.sendStanza(this.occupantPresence(room, o, s, "unavailable", why));
    }
    for (const o of now) {
      const was = before.find((x) => x.address === o.address);
      if (was && was.affiliation === o.affiliation && was.nick === o.nick) continue;
      if (was && was.nick !== o.nick) for (const s of sessions) s.sendStanza(this.occupantPresence(room, was, s, "unavailable"));
      const self = o.address === this.a.bareJid;
      for (const s of sessions) s.sendStanza(this.occupantPresence(room, o, s, undefined, self ? ["110"] : []));
    }
  }

  // ---- IQs to the service, a room or an occupant ----

  private registerIqs(): void {
    const iq = this.iqs;
    const memberRoom = (r: MucRequest): Room => {
      if (r.to.local && !r.room) throw new StanzaError("item-not-found", "no such class channel");
      if (!r.room || r.to.resource) throw new StanzaError("service-unavailable");
      if (!this.isMember(r.room)) throw new StanzaError("forbidden", `only the members of "${r.room.view.title}" may`);
      return r.room;
    };
    iq.get(NS.discoInfo, "query", (q, r) => {
      if (!r.to.local)
        return el("query", { xmlns: NS.discoInfo, node: q.attrs.node },
          el("identity", { category: "conference", type: "text", name: "Class channels" }),
          [NS.discoInfo, NS.discoItems, NS.muc].map((v) => el("feature", { var: v })));
      const room = memberRoom(r);
      return el("query", { xmlns: NS.discoInfo, node: q.attrs.node },
        el("identity", { category: "conference", type: "text", name: room.view.title }),
        [NS.discoInfo, NS.discoItems, NS.muc, "muc_membersonly", "muc_nonanonymous", "muc_persistent", "muc_unsecured", "muc_hidden", NS.mam, NS.sid].map((v) => el("feature", { var: v })),
        el("x", { xmlns: NS.data, type: "result" },
          el("field", { var: "FORM_TYPE", type: "hidden" }, el("value", {}, "http://jabber.org/protocol/muc#roominfo")),
          el("field", { var: "muc#roominfo_subject", label: "Subject" }, el("value", {}, room.view.title)),
          el("field", { var: "muc#roominfo_occupants", label: "Number of occupants" }, el("value", {}, String(room.view.members.length)))));
    });
    iq.get(NS.discoItems, "query", (q, r) => {
      if (!r.to.local)
        return el("query", { xmlns: NS.discoItems, node: q.attrs.node },
          this.rooms().filter((x) => this.isMember(x)).map((x) => el("item", { jid: x.jid, name: x.view.title })));
      memberRoom(r);
      return el("query", { xmlns: NS.discoItems, node: q.attrs.node });
    });
    // XEP-0410: a client checks it is still in the room by pinging its own occupant JID
    iq.get(NS.ping, "ping", (_q, r) => {
      if (!r.to.local) return undefined;
      if (!r.room) throw new StanzaError("item-not-found");
      if (!r.to.resource) return undefined;
      if (!this.joined.get(r.session)?.has(r.room.id)) throw new StanzaError("not-acceptable", "not in the room");
      return undefined;
    });
    iq.get(NS.mam, "query", (_q, r) => (memberRoom(r), formElement()));
    iq.set(NS.mam, "query", (q, r) => {
      const room = memberRoom(r);
      const query = { ...parseArchiveQuery(q), with: undefined };
      return (async () => {
        const page = await conversationArchive(this.a.mailbox, query, room.jid, room.id, (v) => v.request === true);
        archiveResults(this.a, r.session, room.jid, query.queryid, page.items, (v) => this.groupchat(room, v, r.session.jid));
        return finElement(page, query.queryid);
      })();
    });
    iq.get(NS.mucAdmin, "query", (q, r) => {
      const room = memberRoom(r);
      const wanted = children(q, "item").map((i) => i.attrs.affiliation ?? i.attrs.role);
      const occupants = occupantsOf(room.view).filter((o) =>
        wanted.some((w) => w === o.affiliation || w === roleOf(o.affiliation)));
      // no role in the items, as in XEP-0045 §9.5 and Prosody: Converse 14 reads an item's role as its nick
      return el("query", { xmlns: NS.mucAdmin }, occupants.map((o) => el("item", { affiliation: o.affiliation, jid: o.address, nick: o.nick })));
    });
    iq.set(NS.mucAdmin, "query", (q, r) => this.admin(memberRoom(r), q));
    iq.get(NS.mucOwner, "query", () => {
      throw new StanzaError("feature-not-implemented", "a channel is set up with the pigeon command (pigeon channel)");
    });
    iq.set(NS.mucOwner, "query", () => {
      throw new StanzaError("feature-not-implemented", "a channel is set up with the pigeon command (pigeon channel); it is closed with pigeon channel close");
    });
  }

  /** XEP-0045 §8-10: kick, and affiliation changes, as channel membership changes. */
  private async admin(room: Room, q: XmlElement): Promise<undefined> {
    const me = this.me(room)!;
    if (me.affiliation === "member") throw new StanzaError("forbidden", `only the owner and admins of "${room.view.title}" change who is in it`);
    const items = children(q, "item");
    // a channel holds at most 64 people: more items than that is no real request
    if (items.length === 0 || items.length > 64) throw new StanzaError("bad-request");
    const occupants = occupantsOf(room.view);
    for (const item of items) {
      const byNick = item.attrs.nick !== undefined ? occupants.find((o) => o.nick === item.attrs.nick) : undefined;
      const jid = item.attrs.jid ? parseJid(item.attrs.jid) : undefined;
      const address = byNick?.address ?? (jid ? bareJid(jid) : undefined);
      if (!address) throw new StanzaError(item.attrs.nick !== undefined ? "item-not-found" : "bad-request", "say whom (nick or jid)");
      const target = occupants.find((o) => o.address === address);
      const what = item.attrs.role === "none" ? "kick" : item.attrs.affiliation;
      try {
        if (what === "kick" || what === "none" || what === "outcast") {
          if (!target) throw new StanzaError("item-not-found", `${address} is not in "${room.view.title}"`);
          if (target.affiliation === "owner") throw new StanzaError("not-allowed", "the owner cannot be removed");
          if (target.affiliation === "admin" && me.affiliation !== "owner") throw new StanzaError("not-allowed", "only the owner removes an admin");
          this.reasons.set(`${room.id} ${address}`, what === "kick" ? "307" : REMOVED);
          await this.a.mailbox.removeFromChannel(room.id, [address]);
        } else if (what === "member") {
          if (!target) await this.a.mailbox.addToChannel(room.id, { addresses: [address] });
          else if (target.affiliation === "admin") await this.a.mailbox.setChannelAdmin(room.id, address, false);
        } else if (what === "admin") {
          if (target?.affiliation !== "admin") await this.a.mailbox.setChannelAdmin(room.id, address, true);
        } else {
          throw new StanzaError("not-allowed", "in a class channel, roles follow who is owner, admin or member");
        }
      } catch (e) {
        this.reasons.delete(`${room.id} ${address}`);
        if (e instanceof MailboxError) throw new StanzaError(e.code === "unknown-address" || e.code === "not-found" ? "item-not-found" : "not-allowed", e.message);
        throw e;
      }
    }
    const now = this.rooms().find((x) => x.id === room.id);
    if (now) this.refresh(now);
    return undefined;
  }
}


/** "5 minutes", "3 hours": how long ago, for a status line. */
function agoText(ms: number): string {
  const min = Math.max(1, Math.round(ms / 60_000));
  if (min < 60) return `${min} minute${min === 1 ? "" : "s"}`;
  const h = Math.round(min / 60);
  return `${h} hour${h === 1 ? "" : "s"}`;
}
