// The XMPP front door of one Pigeon node: a small XMPP server for the node's own user, whose
// messages go through Pigeon's conversation documents. See README.md for the mapping.
import { createServer, type AddressInfo, type Server as NetServer, type Socket } from "node:net";
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { randomBytes } from "node:crypto";
import { WebSocketServer } from "ws";
import { MailboxError, silentLog, type Log, type Mailbox, type MessageView, type ReceiptEvent, type Contact } from "@pigeon/sync";
import { ArchiveError, finElement, formElement, parseArchiveQuery } from "./archive.js";
import { readCredentials } from "./credentials.js";
import { accountInfo, contactInfo, emptyItems, serverInfo } from "./disco.js";
import { bareJid, parseJid, type Jid } from "./jid.js";
import { archivePage, findReceived, receivedAfter, receivedByIds, receivedUpTo } from "./messages.js";
import { NS, xmppStamp } from "./ns.js";
import { rosterItems, rosterPush, rosterQuery, rosterVersion, type RosterItem } from "./roster.js";
import type { ScramCredential, ScramHash } from "./scram.js";
import { iqError } from "./iq.js";
import { Session, type Host } from "./session.js";
import { XmppStore, type PendingItem } from "./store.js";
import { ensureCertificate } from "./tls.js";
import { TcpTransport, WsTransport } from "./transport.js";
import { child, childText, el, type XmlElement } from "./xml.js";

export const DEFAULT_XMPP_PORT = 5222;
export const WEBSOCKET_PATH = "/xmpp-websocket";

export interface XmppServerOptions {
  mailbox: Mailbox;
  dataDir: string;
  log?: Log;
  /** TCP listener (default 127.0.0.1:5222). */
  host?: string;
  port?: number;
  /** Take a free port when `port` is taken. */
  fallbackToEphemeral?: boolean;
  /** Offer STARTTLS with the node's self-signed certificate (default true). */
  tls?: boolean;
  /** A connection must log in and bind within this time (default 30 s, or $PIGEON_XMPP_LOGIN_TIMEOUT_MS). */
  loginTimeoutMs?: number;
  /** How long a cut stream-management session waits to be resumed (default 300 s). */
  smMaxSeconds?: number;
  /** Connections still logging in, at most (default 100); more are refused with <policy-violation/>. */
  maxUnauthenticated?: number;
  /** Whether a contact's laptop is connected right now (shown as available rather than away). */
  nearby?: (address: string) => boolean;
  now?: () => number;
}

export class XmppServer implements Host {
  readonly domain: string;
  readonly user: string;
  readonly tlsAvailable: boolean;
  readonly smMaxSeconds: number;
  readonly log: Log;
  readonly store: XmppStore;
  private readonly mailbox: Mailbox;
  private readonly opts: XmppServerOptions;
  private readonly tlsContext;
  private readonly sessions = new Set<Session>();
  private readonly bound = new Map<string, Session>();
  private readonly transports = new Set<TcpTransport | WsTransport>();
  private tcp: NetServer | undefined;
  private readonly wss: WebSocketServer;
  private readonly now: () => number;
  private nearbySet = new Set<string>();
  private presenceTimer: NodeJS.Timeout | undefined;
  private readonly unsubscribe: (() => void)[] = [];
  private closed = false;
  private idCounter = 0;

  constructor(opts: XmppServerOptions) {
    this.opts = opts;
    this.mailbox = opts.mailbox;
    this.log = opts.log ?? silentLog;
    this.now = opts.now ?? Date.now;
    const me = parseJid(opts.mailbox.address)!;
    this.domain = me.domain;
    this.user = me.local;
    this.smMaxSeconds = opts.smMaxSeconds ?? 300;
    this.store = new XmppStore(opts.dataDir);
    let ctx;
    if (opts.tls !== false) {
      try {
        ctx = ensureCertificate(opts.dataDir, this.domain).context;
      } catch (e) {
        this.log.warn(`xmpp: no STARTTLS (could not make a certificate with openssl: ${(e as Error).message.split("\n")[0]})`);
      }
    }
    this.tlsContext = ctx;
    this.tlsAvailable = ctx !== undefined;
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: 512 * 1024,
      handleProtocols: (protocols) => (protocols.has("xmpp") ? "xmpp" : false),
    });
    this.listenToMailbox();
  }

  get bareJid(): string {
    return `${this.user}@${this.domain}`;
  }

  readonly lookup = (username: string, hash: ScramHash): ScramCredential | undefined => {
    if (username.toLowerCase() !== this.user) return undefined;
    try {
      return readCredentials(this.opts.dataDir)?.scram[hash];
    } catch (e) {
      this.log.warn(`xmpp: ${(e as Error).message}`);
      return undefined;
    }
  };

  // ---- listening ----

  async listen(): Promise<{ host: string; port: number }> {
    const host = this.opts.host ?? "127.0.0.1";
    const server = createServer((socket) => this.tcpConnection(socket));
    this.tcp = server;
    const port = await new Promise<number>((resolve, reject) => {
      const tryPort = (p: number, fallback: boolean) => {
        server.once("error", (e: NodeJS.ErrnoException) => {
          if (e.code === "EADDRINUSE" && fallback) tryPort(0, false);
          else reject(new Error(`cannot listen for XMPP clients on ${host}:${p}: ${e.message}`));
        });
        server.listen(p, host, () => resolve((server.address() as AddressInfo).port));
      };
      tryPort(this.opts.port ?? DEFAULT_XMPP_PORT, this.opts.fallbackToEphemeral ?? this.opts.port === undefined);
    });
    this.presenceTimer = setInterval(() => this.refreshNearby(), 5000);
    this.presenceTimer.unref();
    this.refreshNearby();
    await this.catchUp();
    return { host, port };
  }

  private tcpConnection(socket: Socket): void {
    if (this.closed) return void socket.destroy();
    const t = new TcpTransport(socket, this.tlsContext, (e) => this.log.info(`xmpp: TLS failed with ${t.remote}: ${e.message}`));
    this.transports.add(t);
    socket.once("close", () => this.transports.delete(t));
    this.newSession(t);
  }

  /** For the node's HTTP server: takes WebSocket upgrades on /xmpp-websocket; false for other paths. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    if ((req.url ?? "").split("?")[0] !== WEBSOCKET_PATH) return false;
    if (this.closed) {
      socket.destroy();
      return true;
    }
    const protocols = String(req.headers["sec-websocket-protocol"] ?? "").split(",").map((p) => p.trim());
    if (!protocols.includes("xmpp")) {
      socket.end("HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nRFC 7395: the WebSocket subprotocol must be \"xmpp\"\n");
      return true;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      const t = new WsTransport(ws, req.socket.remoteAddress, req.socket.remotePort);
      this.transports.add(t);
      ws.once("close", () => this.transports.delete(t));
      this.newSession(t);
    });
    return true;
  }

  private newSession(t: TcpTransport | WsTransport): void {
    const s = new Session(this, t, this.opts.loginTimeoutMs ?? (Number(process.env.PIGEON_XMPP_LOGIN_TIMEOUT_MS) || 30_000));
    this.sessions.add(s);
    let unauthenticated = 0;
    for (const x of this.sessions) if (!x.authenticated) unauthenticated++;
    if (unauthenticated > (this.opts.maxUnauthenticated ?? 100)) s.streamError("policy-violation", "too many connections are logging in; try again later");
  }

  // ---- Host: session life ----

  sessionAuthenticated(s: Session): void {
    this.log.info(`xmpp: ${this.bareJid} logged in from ${s.remote}`);
  }

  bind(s: Session, wanted: string): string {
    let resource = wanted || `pigeon-${randomBytes(4).toString("hex")}`;
    const old = this.bound.get(resource);
    if (old && old !== s) {
      // RFC 6120 §7.7.2.2: the new session wins; the old one is told why
      this.bound.delete(resource);
      old.kick("conflict", "the same resource logged in again");
    }
    if (this.bound.has(resource)) resource = `${resource}-${randomBytes(3).toString("hex")}`;
    this.bound.set(resource, s);
    s.onResumed = () => void this.flushPending(s).catch((e: unknown) => this.log.warn(`xmpp: ${(e as Error).message}`));
    return resource;
  }

  ended(s: Session): void {
    this.sessions.delete(s);
    if (s.resource && this.bound.get(s.resource) === s) {
      this.bound.delete(s.resource);
      if (s.available) {
        s.available = false;
        for (const o of this.available()) o.sendStanza(el("presence", { from: s.jid, to: o.jid, type: "unavailable" }));
      }
    }
  }

  resumable(id: string): Session | undefined {
    for (const s of this.bound.values()) if (s.id === id && !s.isEnded) return s;
    return undefined;
  }

  acked(seq: number): void {
    this.store.donePending(seq);
  }

  private available(): Session[] {
    return [...this.bound.values()].filter((s) => s.available && !s.isEnded);
  }

  private nextId(prefix: string): string {
    return `${prefix}-${(++this.idCounter).toString(36)}-${randomBytes(3).toString("hex")}`;
  }

  // ---- stanzas ----

  stanza(s: Session, st: XmlElement): void {
    // the server stamps the sender: a client cannot speak for another resource or user
    st.attrs.from = s.jid;
    if (st.name === "iq") return this.iq(s, st);
    if (st.name === "presence") return this.presence(s, st);
    return this.message(s, st);
  }

  private ownResource(to: Jid | undefined): Session | undefined {
    if (!to || !to.resource || bareJid(to) !== this.bareJid) return undefined;
    return this.bound.get(to.resource);
  }

  // ---- IQ (RFC 6120 §8.2.3: every get/set gets exactly one answer, and replies carry `from`) ----

  private iq(s: Session, iq: XmlElement): void {
    const type = iq.attrs.type;
    const to = iq.attrs.to ? parseJid(iq.attrs.to) : undefined;
    if (iq.attrs.to && !to) return s.sendStanza(iqError(iq, this.domain, "jid-malformed", "modify"));
    const target = this.ownResource(to);
    if (to?.resource && bareJid(to) === this.bareJid) {
      if (target && target !== s) return target.sendStanza(structuredClone(iq));
      if (type === "get" || type === "set") return s.sendStanza(iqError(iq, this.domain, "service-unavailable", "cancel"));
      return;
    }
    if (type !== "get" && type !== "set") return; // results and errors for the server: nothing waits for them
    const payload = iq.children.find((c): c is XmlElement => typeof c === "object");
    if (!payload || iq.children.filter((c) => typeof c === "object").length !== 1 || !iq.attrs.id)
      return s.sendStanza(iqError(iq, this.domain, "bad-request", "modify"));
    const ns = payload.attrs.xmlns;
    const result = (...kids: XmlElement[]) =>
      s.sendStanza(el("iq", { type: "result", id: iq.attrs.id, from: iq.attrs.to ?? this.bareJid, to: s.jid }, ...kids));
    const fail = (condition: string, kind: "cancel" | "modify" | "auth" | "wait" = "cancel", message?: string) =>
      s.sendStanza(iqError({ ...iq, attrs: { ...iq.attrs, from: s.jid, to: iq.attrs.to ?? this.bareJid } }, this.bareJid, condition, kind, message));
    const toDomain = to !== undefined && !to.local && to.domain === this.domain;
    const toAccount = to === undefined || bareJid(to) === this.bareJid;

    if (ns === NS.ping) return toDomain || toAccount ? result() : fail("service-unavailable");
    if (ns === NS.discoInfo && type === "get") {
      if (toDomain) return result(serverInfo(payload.attrs.node));
      if (toAccount) return result(accountInfo(payload.attrs.node));
      if (to && this.isContact(bareJid(to))) return result(contactInfo(payload.attrs.node));
      return fail("service-unavailable");
    }
    if (ns === NS.discoItems && type === "get") return toDomain || toAccount ? result(emptyItems(payload.attrs.node)) : fail("service-unavailable");
    if (ns === NS.version && type === "get" && toDomain)
      return result(el("query", { xmlns: NS.version }, el("name", {}, "Pigeon"), el("version", {}, "0.1.0")));
    if (ns === NS.vcard) return this.vcard(s, iq, payload, to, result, fail);
    if (!toAccount) return fail("service-unavailable");

    switch (ns) {
      case NS.roster:
        return this.rosterIq(s, iq, payload, result, fail);
      case NS.carbons:
        if (type !== "set" || (payload.name !== "enable" && payload.name !== "disable")) return fail("bad-request", "modify");
        s.carbons = payload.name === "enable";
        return result();
      case NS.mam:
        return this.mamIq(s, iq, payload, result, fail);
      case NS.private: {
        const inner = payload.children.find((c): c is XmlElement => typeof c === "object");
        if (!inner) return fail("bad-request", "modify");
        const key = `private:${inner.name}:${inner.attrs.xmlns}`;
        if (type === "set") {
          const xml = JSON.stringify(inner);
          if (xml.length > 64 * 1024) return fail("not-acceptable", "modify");
          this.store.setMeta(key, xml);
          return result();
        }
        const stored = this.store.meta(key);
        return result(el("query", { xmlns: NS.private }, stored ? (JSON.parse(stored) as XmlElement) : el(inner.name, { xmlns: inner.attrs.xmlns })));
      }
      case NS.blocking:
        if (type === "get" && payload.name === "blocklist") return result(el("blocklist", { xmlns: NS.blocking }));
        return fail("not-allowed", "cancel", "blocking is not available yet");
      default:
        return fail("service-unavailable");
    }
  }

  private vcard(
    s: Session, iq: XmlElement, payload: XmlElement, to: Jid | undefined,
    result: (...k: XmlElement[]) => void, fail: (c: string, k?: "cancel" | "modify") => void,
  ): void {
    const own = to === undefined || bareJid(to) === this.bareJid;
    if (iq.attrs.type === "set") {
      if (!own) return fail("forbidden", "cancel");
      const xml = JSON.stringify(payload);
      if (xml.length > 200 * 1024) return fail("not-acceptable", "modify");
      this.store.setMeta("vcard", xml);
      return result();
    }
    if (own) {
      const stored = this.store.meta("vcard");
      return result(stored ? (JSON.parse(stored) as XmlElement) : el("vCard", { xmlns: NS.vcard }, el("FN", {}, this.user), el("NICKNAME", {}, this.user)));
    }
    const contact = to && this.isContact(bareJid(to)) ? to.local : undefined;
    if (!contact) return fail("service-unavailable");
    void s;
    return result(el("vCard", { xmlns: NS.vcard }, el("FN", {}, contact), el("NICKNAME", {}, contact)));
  }

  // ---- roster ----

  private roster(): RosterItem[] {
    return rosterItems(this.mailbox.contacts(), this.bareJid);
  }

  private isContact(jid: string): boolean {
    return this.roster().some((i) => i.jid === jid);
  }

  private rosterIq(s: Session, iq: XmlElement, q: XmlElement, result: (...k: XmlElement[]) => void, fail: (c: string, k?: "cancel" | "modify", m?: string) => void): void {
    if (iq.attrs.type === "set") {
      // items come from the laptops met; renaming or removing them is not possible from a client
      return fail("not-allowed", "cancel", "Pigeon's buddy list fills itself with the people this laptop has met");
    }
    s.rosterRequested = true;
    const items = this.roster();
    const ver = rosterVersion(items);
    if (q.attrs.ver !== undefined && q.attrs.ver === ver) return result();
    return result(rosterQuery(items, ver));
  }

  private contactAppeared(c: Contact): void {
    const items = this.roster();
    const item = items.find((i) => i.jid === `${c.name}@${c.home}`.toLowerCase());
    if (!item) return;
    const ver = rosterVersion(items);
    for (const s of this.bound.values()) {
      if (!s.rosterRequested) continue;
      s.sendStanza(rosterPush(s.jid, item, ver, this.nextId("push")));
      if (s.available) s.sendStanza(this.contactPresence(item.jid, s.jid));
    }
  }

  // ---- presence (RFC 6121 §4) ----

  private contactPresence(jid: string, to: string): XmlElement {
    if (this.nearbySet.has(jid)) return el("presence", { from: jid, to });
    return el("presence", { from: jid, to }, el("show", {}, "xa"), el("status", {}, "not nearby: messages wait and travel when your laptops meet"));
  }

  private refreshNearby(): void {
    const f = this.opts.nearby;
    if (!f) return;
    const next = new Set(this.roster().map((i) => i.jid).filter((j) => f(j)));
    const changed = [...next].filter((j) => !this.nearbySet.has(j)).concat([...this.nearbySet].filter((j) => !next.has(j)));
    this.nearbySet = next;
    if (changed.length === 0) return;
    for (const s of this.available()) for (const j of changed) s.sendStanza(this.contactPresence(j, s.jid));
  }

  private presence(s: Session, p: XmlElement): void {
    const type = p.attrs.type;
    if (p.attrs.to) {
      const to = parseJid(p.attrs.to);
      if (!to) return;
      const bare = bareJid(to);
      if (bare === this.bareJid) {
        const target = this.ownResource(to);
        if (target) target.sendStanza(structuredClone(p));
        return;
      }
      if (!this.isContact(bare)) return;
      // the buddy list is pre-approved both ways: answer for the contact
      if (type === "subscribe") s.sendStanza(el("presence", { from: bare, to: s.bare, type: "subscribed" }));
      if (type === "probe" || type === "subscribe") s.sendStanza(this.contactPresence(bare, s.jid));
      return;
    }
    if (type === "unavailable") {
      if (!s.available) return;
      s.available = false;
      for (const o of this.available()) o.sendStanza(el("presence", { from: s.jid, to: o.jid, type: "unavailable" }));
      s.sendStanza(el("presence", { from: s.jid, to: s.jid, type: "unavailable" }));
      return;
    }
    if (type !== undefined) return; // subscription management of oneself: nothing to do
    const first = !s.available;
    s.available = true;
    s.priority = Number(childText(p, "priority") ?? 0) || 0;
    s.lastPresence = p;
    const kids = p.children.filter((c): c is XmlElement => typeof c === "object");
    for (const o of this.available()) o.sendStanza(el("presence", { from: s.jid, to: o.jid }, structuredClone(kids)));
    if (!first) return;
    for (const o of this.available()) if (o !== s && o.lastPresence) {
      const ok = o.lastPresence.children.filter((c): c is XmlElement => typeof c === "object");
      s.sendStanza(el("presence", { from: o.jid, to: s.jid }, structuredClone(ok)));
    }
    for (const item of this.roster()) s.sendStanza(this.contactPresence(item.jid, s.jid));
    void this.flushPending(s).catch((e: unknown) => this.log.warn(`xmpp: offline delivery to ${s.jid} failed: ${(e as Error).message}`));
  }

  // ---- messages ----

  private message(s: Session, m: XmlElement): void {
    const type = m.attrs.type ?? "normal";
    if (type === "error") return;
    const to = m.attrs.to ? parseJid(m.attrs.to) : undefined;
    if (!to) return; // a message to one's own account with no recipient: nothing to deliver
    const bare = bareJid(to);
    if (bare === this.bareJid) {
      // between the user's own clients: routed directly, never through Pigeon
      const targets = to.resource ? [this.ownResource(to)].filter((x): x is Session => !!x) : this.available().filter((o) => o !== s);
      if (targets.length === 0 && to.resource) return this.messageError(s, m, "service-unavailable", "cancel");
      for (const t of targets) t.sendStanza(structuredClone(m));
      return;
    }
    if (type === "groupchat") return this.messageError(s, m, "service-unavailable", "cancel", "group chat is not available yet");
    const displayed = child(m, "displayed", NS.markers);
    if (displayed?.attrs.id) void this.displayed(bare, displayed.attrs.id);
    const body = childText(m, "body");
    if (body === undefined || body.trim() === "") {
      // receipts (Pigeon's node writes its own signed one), other markers and chat states stay here
      return;
    }
    const originId = child(m, "origin-id", NS.sid)?.attrs.id;
    const clientId = m.attrs.id;
    const isPrivate = !!child(m, "private", NS.carbons);
    this.mailbox
      .send(bare, body)
      .then((view) => {
        this.store.rememberIds({ pigeonId: view.id, clientId, originId, resource: s.resource });
        if (isPrivate) return;
        for (const o of this.available()) {
          if (o === s || !o.carbons) continue;
          o.sendStanza(this.carbon("sent", o, this.outgoingStanza(view, s.jid, clientId, originId)));
        }
      })
      .catch((e: unknown) => {
        if (e instanceof MailboxError) {
          const condition = e.code === "unknown-address" ? "item-not-found" : e.code === "storage" ? "resource-constraint" : "not-acceptable";
          return this.messageError(s, m, condition, e.code === "storage" ? "wait" : "cancel", e.message);
        }
        this.log.warn(`xmpp: could not send a message from ${s.jid}: ${(e as Error).message}`);
        this.messageError(s, m, "internal-server-error", "wait");
      });
  }

  private messageError(s: Session, m: XmlElement, condition: string, type: string, text?: string): void {
    s.sendStanza(
      el(
        "message",
        { type: "error", id: m.attrs.id, from: m.attrs.to, to: s.jid },
        el("error", { type }, el(condition, { xmlns: NS.stanzas }), text ? el("text", { xmlns: NS.stanzas, "xml:lang": "en" }, text) : undefined),
      ),
    );
  }

  /** XEP-0333: "displayed up to here" becomes Pigeon's signed read receipt for those messages. */
  private async displayed(from: string, id: string): Promise<void> {
    try {
      const upto = await findReceived(this.mailbox, id, from);
      if (!upto) return;
      await this.mailbox.markRead(await receivedUpTo(this.mailbox, upto));
    } catch (e) {
      this.log.warn(`xmpp: could not mark ${id} read: ${(e as Error).message}`);
    }
  }

  private carbon(kind: "sent" | "received", to: Session, inner: XmlElement): XmlElement {
    inner.attrs.xmlns = NS.client;
    return el(
      "message",
      { from: this.bareJid, to: to.jid, type: inner.attrs.type ?? "chat", id: this.nextId("carbon") },
      el(kind, { xmlns: NS.carbons }, el("forwarded", { xmlns: NS.forward }, inner)),
    );
  }

  /** A message the user wrote, as XMPP shows it (carbons, MAM). */
  private outgoingStanza(v: MessageView, from: string, clientId?: string, originId?: string): XmlElement {
    return el(
      "message",
      { from, to: v.to[0], type: "chat", id: clientId ?? v.id },
      el("body", {}, v.body),
      el("stanza-id", { xmlns: NS.sid, id: v.id, by: this.bareJid }),
      originId ? el("origin-id", { xmlns: NS.sid, id: originId }) : undefined,
    );
  }

  /** A message someone wrote to the user. */
  private incomingStanza(v: MessageView, to: string, delay: boolean): XmlElement {
    return el(
      "message",
      { from: v.from, to, type: "chat", id: v.id },
      el("body", {}, v.body),
      el("markable", { xmlns: NS.markers }),
      el("stanza-id", { xmlns: NS.sid, id: v.id, by: this.bareJid }),
      el("origin-id", { xmlns: NS.sid, id: v.id }),
      delay ? el("delay", { xmlns: NS.delay, from: this.domain, stamp: xmppStamp(v.claimedSentAt) }, "Offline Storage") : undefined,
    );
  }

  private receiptStanza(item: PendingItem, to: string): XmlElement {
    const id = this.store.ids(item.pigeonId)?.clientId ?? item.pigeonId;
    return el(
      "message",
      { from: item.reader, to, type: "chat", id: this.nextId(item.kind) },
      item.kind === "received" ? el("received", { xmlns: NS.receipts, id }) : el("displayed", { xmlns: NS.markers, id }),
      el("store", { xmlns: NS.hints }),
    );
  }

  // ---- from Pigeon to the clients ----

  private listenToMailbox(): void {
    const onMessage = (v: MessageView) => this.pigeonMessage(v);
    const onReceipt = (r: ReceiptEvent) => this.pigeonReceipt(r);
    const onContact = (c: Contact) => this.contactAppeared(c);
    this.mailbox.on("message", onMessage);
    this.mailbox.on("receipt", onReceipt);
    this.mailbox.on("contact", onContact);
    this.unsubscribe.push(
      () => this.mailbox.off("message", onMessage),
      () => this.mailbox.off("receipt", onReceipt),
      () => this.mailbox.off("contact", onContact),
    );
  }

  /** Messages that arrived while the XMPP server was not running are queued for the clients at start. */
  private async catchUp(): Promise<void> {
    const mark = Number(this.store.meta("arrival-watermark") ?? 0);
    const { messages, highest: max } = await receivedAfter(this.mailbox, mark);
    for (const v of messages) this.store.addPending("message", v.id, "", v.arrivedAt ?? this.now());
    if (max > mark) this.store.setMeta("arrival-watermark", String(max));
  }

  private pigeonMessage(v: MessageView): void {
    if (this.closed) return;
    if (v.direction === "out") {
      // written by `pigeon send` (not by a client of ours)? show it to the clients as a sent carbon
      setImmediate(() => {
        if (this.closed || this.store.ids(v.id)) return;
        for (const o of this.available()) if (o.carbons) o.sendStanza(this.carbon("sent", o, this.outgoingStanza(v, this.bareJid)));
      });
      return;
    }
    const seq = this.store.db.transaction(() => {
      const added = this.store.addPending("message", v.id, "", v.arrivedAt ?? this.now());
      if (v.arrivalSeq !== undefined && v.arrivalSeq > Number(this.store.meta("arrival-watermark") ?? 0))
        this.store.setMeta("arrival-watermark", String(v.arrivalSeq));
      return added;
    })();
    if (seq === undefined) return;
    // late messages (written long before they reached this laptop) carry their original time
    const late = v.arrivedAt !== undefined && v.arrivedAt - v.claimedSentAt > 60_000;
    for (const s of this.available()) s.sendStanza(this.incomingStanza(v, s.jid, late), seq);
  }

  private pigeonReceipt(r: ReceiptEvent): void {
    if (this.closed || r.reader.toLowerCase() === this.bareJid) return;
    const kind = r.state === "delivered" ? "received" : "displayed";
    const seq = this.store.addPending(kind, r.messageId, r.reader.toLowerCase(), r.at);
    if (seq === undefined) return;
    const item: PendingItem = { seq, kind, pigeonId: r.messageId, reader: r.reader.toLowerCase(), at: r.at };
    for (const s of this.available()) s.sendStanza(this.receiptStanza(item, s.jid), seq);
  }

  /** Offline delivery (XEP-0160): everything the clients have not taken yet, with delay stamps (XEP-0203). */
  private async flushPending(s: Session): Promise<void> {
    const items = this.store.pending().filter((p) => !s.inFlight.has(p.seq));
    if (items.length === 0) return;
    const views = await receivedByIds(this.mailbox, items.filter((p) => p.kind === "message").map((p) => p.pigeonId));
    for (const p of items) {
      if (s.isEnded || !s.available) return;
      if (p.kind === "message") {
        const v = views.get(p.pigeonId);
        if (!v) {
          this.store.donePending(p.seq);
          continue;
        }
        s.sendStanza(this.incomingStanza(v, s.jid, true), p.seq);
      } else {
        s.sendStanza(this.receiptStanza(p, s.jid), p.seq);
      }
    }
  }

  // ---- MAM ----

  private mamIq(s: Session, iq: XmlElement, q: XmlElement, result: (...k: XmlElement[]) => void, fail: (c: string, k?: "cancel" | "modify", m?: string) => void): void {
    if (iq.attrs.type === "get") {
      if (q.name === "prefs") return result(el("prefs", { xmlns: NS.mam, default: "always" }, el("always"), el("never")));
      return result(formElement());
    }
    if (q.name === "prefs") return result(el("prefs", { xmlns: NS.mam, default: "always" }, el("always"), el("never")));
    if (q.name !== "query") return fail("bad-request", "modify");
    let query;
    try {
      query = parseArchiveQuery(q);
    } catch (e) {
      if (e instanceof ArchiveError) return fail(e.condition, e.condition === "bad-request" ? "modify" : "cancel", e.message);
      throw e;
    }
    void (async () => {
      let page;
      try {
        page = await archivePage(this.mailbox, query, this.bareJid);
      } catch (e) {
        if (e instanceof ArchiveError) return fail(e.condition, "cancel", e.message);
        throw e;
      }
      for (const v of page.items) {
        const ids = v.direction === "out" ? this.store.ids(v.id) : undefined;
        const inner =
          v.direction === "out"
            ? this.outgoingStanza(v, this.bareJid, ids?.clientId, ids?.originId)
            : this.incomingStanza(v, this.bareJid, false);
        inner.attrs.xmlns = NS.client;
        s.sendStanza(
          el(
            "message",
            { from: this.bareJid, to: s.jid, id: this.nextId("mam") },
            el(
              "result",
              { xmlns: NS.mam, queryid: query.queryid, id: v.id },
              el("forwarded", { xmlns: NS.forward }, el("delay", { xmlns: NS.delay, stamp: xmppStamp(v.claimedSentAt) }), inner),
            ),
          ),
        );
      }
      result(finElement(page, query.queryid));
    })().catch((e: unknown) => {
      this.log.warn(`xmpp: archive query failed: ${(e as Error).message}`);
      fail("internal-server-error", "cancel");
    });
  }

  // ---- shutdown ----

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.presenceTimer);
    for (const u of this.unsubscribe) u();
    for (const s of [...this.sessions]) s.kick("system-shutdown", "the node is stopping");
    for (const s of [...this.bound.values()]) s.kick("system-shutdown", "the node is stopping");
    for (const t of this.transports) t.destroy();
    await new Promise<void>((r) => (this.tcp ? this.tcp.close(() => r()) : r()));
    this.wss.close();
    this.store.close();
  }

  /** For tests and `pigeon status`: who is connected. */
  clients(): { jid: string; remote: string; available: boolean }[] {
    return [...this.bound.values()].map((s) => ({ jid: s.jid, remote: s.remote, available: s.available }));
  }
}
