// The XMPP front door of one Pigeon node: a small XMPP server for the node's own user, whose
// messages go through Pigeon's conversation documents. See README.md for the mapping.
// This file listens (TCP, WebSocket upgrades), keeps the sessions, and wires the features together:
// each feature is a file of its own, and every IQ goes through one IqRegistry.
import { createServer, type AddressInfo, type Server as NetServer, type Socket } from "node:net";
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { randomBytes } from "node:crypto";
import { WebSocketServer } from "ws";
import { ChatStates, type LiveLinks } from "./chat-states.js";
import { Files, FILES_PATH, UPLOAD_PATH } from "./files.js";
import type { IncomingMessage as HttpRequest, ServerResponse } from "node:http";
import { silentLog, type BuddiesChange, type Log, type Mailbox, type MessageView, type ReceiptEvent } from "@pigeon/sync";
import type { Account, Addressee, IqRequest, Iqs } from "./account.js";
import { registerBlocking } from "./blocking.js";
import { registerCarbons } from "./carbons.js";
import { clientMessage } from "./chat.js";
import { readCredentials } from "./credentials.js";
import { catchUp, flushPending, pigeonMessage } from "./delivery.js";
import { registerDisco } from "./disco.js";
import { IqRegistry, StanzaError } from "./iq.js";
import { LoginLimiter, type LoginLimits } from "./login-limiter.js";
import { bareJid, parseJid } from "./jid.js";
import { registerMam } from "./mam.js";
import { Muc } from "./muc.js";
import { registerPing } from "./ping.js";
import { Presence, type PeerEvents } from "./presence.js";
import { registerPrivateStorage } from "./private.js";
import { pigeonReceipt } from "./receipts.js";
import { Resources } from "./resources.js";
import { registerRoster, Roster } from "./roster.js";
import type { ScramCredential, ScramHash } from "./scram.js";
import { Session, type Host } from "./session.js";
import { XmppStore } from "./store.js";
import { ensureCertificate } from "./tls.js";
import { TcpTransport, WsTransport } from "./transport.js";
import { registerVcard } from "./vcard.js";
import { registerVersion } from "./version.js";
import { toXml, type XmlElement } from "./xml.js";

export const DEFAULT_XMPP_PORT = 5222;
export const WEBSOCKET_PATH = "/xmpp-websocket";
/**
 * Connections logging in at once, at most. A class logging in together (200 clients opening their
 * sockets in the same second) must all get in: with 100, 121-154 of 200 did (issue 21). 500 leaves
 * room for that twice over and stays well under a laptop's 1,024 open files; each waiting connection
 * costs a socket and a parser holding at most 10,000 characters, and the login timeout (30 s) ends it.
 */
export const MAX_LOGGING_IN = 500;

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
  /**
   * Connections still logging in, at most (default MAX_LOGGING_IN, 500). A new one past that closes the
   * oldest still logging in (<policy-violation/>), so idle sockets can never lock the user's own client out.
   */
  maxUnauthenticated?: number;
  /** Guess limiting (login-limiter.ts; default DEFAULT_LOGIN_LIMITS: 5 free failures, then 1 s doubling to 30 s). */
  loginLimits?: Partial<LoginLimits>;
  /**
   * The laptops connected to this node (the SyncEngine): their contacts are shown as available,
   * others as away. Without it every contact is shown as not nearby.
   */
  peers?: PeerEvents;
  /** The live links (the SyncEngine) that carry chat states to buddies connected now (chat-states.ts). */
  live?: LiveLinks;
  /**
   * The loopback HTTP server's origin (http://127.0.0.1:PORT) where `handleHttp` is mounted: HTTP upload
   * and files/drawings as URLs (files.ts). Without it neither is offered.
   */
  httpBase?: string;
  now?: () => number;
}

export class XmppServer implements Host {
  readonly domain: string;
  readonly user: string;
  readonly tlsAvailable: boolean;
  readonly smMaxSeconds: number;
  readonly log: Log;
  readonly store: XmppStore;
  readonly logins: LoginLimiter;
  private readonly mailbox: Mailbox;
  private readonly opts: XmppServerOptions;
  private readonly tlsContext;
  /** Every connection, logging in or bound. */
  private readonly sessions = new Set<Session>();
  private readonly resources: Resources;
  private readonly transports = new Set<TcpTransport | WsTransport>();
  private tcp: NetServer | undefined;
  private readonly wss: WebSocketServer;
  private readonly account: Account;
  private readonly iqs: Iqs;
  private readonly presence: Presence;
  private readonly chatStates: ChatStates;
  private readonly files: Files;
  private readonly roster: Roster;
  private readonly muc: Muc;
  private readonly unsubscribe: (() => void)[] = [];
  private closed = false;
  private idCounter = 0;

  constructor(opts: XmppServerOptions) {
    this.opts = opts;
    this.mailbox = opts.mailbox;
    this.log = opts.log ?? silentLog;
    const me = parseJid(opts.mailbox.address)!;
    this.domain = me.domain;
    this.user = me.local;
    this.smMaxSeconds = opts.smMaxSeconds ?? 300;
    this.store = new XmppStore(opts.dataDir);
    this.logins = new LoginLimiter({ limits: opts.loginLimits, log: this.log });
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
    this.resources = new Resources(this.bareJid);
    const nextId = (prefix: string) => `${prefix}-${(++this.idCounter).toString(36)}-${randomBytes(3).toString("hex")}`;
    this.roster = new Roster({ bareJid: this.bareJid, resources: this.resources, nextId }, (jid, to) => this.presence.contactPresence(jid, to));
    let states: ChatStates | undefined;
    let files: Files | undefined;
    this.account = {
      files: {
        urlOf: (v) => files?.urlOf(v),
        uploaded: (body) => files?.uploaded(body),
        sent: (token, id) => files?.sent(token, id),
        get available() {
          return files?.available ?? false;
        },
      },
      chatStates: { fromClient: (to, state) => states?.fromClient(to, state) },
      domain: this.domain,
      user: this.user,
      bareJid: this.bareJid,
      mailbox: this.mailbox,
      store: this.store,
      log: this.log,
      resources: this.resources,
      roster: this.roster,
      clientSends: new Set(),
      isClosed: () => this.closed,
      now: opts.now ?? Date.now,
      nextId,
    };
    this.chatStates = states = new ChatStates(this.account, opts.live);
    this.files = files = new Files(this.account, () => this.opts.httpBase);
    this.presence = new Presence(this.account, opts.peers, (s) => this.deliverPending(s, "offline delivery"));
    this.iqs = new IqRegistry<IqRequest>({
      from: this.bareJid,
      onError: (e, iq) => this.log.warn(`xmpp: answering ${toXml(iq).slice(0, 200)} failed: ${(e as Error).stack ?? e}`),
    });
    registerPing(this.iqs);
    registerVersion(this.iqs);
    this.muc = new Muc(this.account, this.presence);
    registerDisco(this.iqs, this.account, () => [this.muc.serviceItem()]);
    registerVcard(this.iqs, this.account);
    registerRoster(this.iqs, this.account);
    registerCarbons(this.iqs);
    registerMam(this.iqs, this.account);
    registerPrivateStorage(this.iqs, this.account);
    registerBlocking(this.iqs, this.account);
    this.files.register(this.iqs);
    this.listenToMailbox();
  }

  /**
   * HTTP upload and files (files.ts), for the HTTP server at `httpBase`, which must check Host and
   * Origin first (packages/app/src/http-guard.ts). False: not a path of ours.
   */
  handleHttp(req: HttpRequest, res: ServerResponse): Promise<boolean> {
    const path = (req.url ?? "/").split("?")[0]!;
    if (!path.startsWith(UPLOAD_PATH) && !path.startsWith(FILES_PATH)) return Promise.resolve(false);
    return this.files.handle(req, res, path);
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
    // the roster is the buddy list: read before any client can ask for it
    this.roster.load({ buddies: await this.mailbox.buddies(), blocked: await this.mailbox.blocked() });
    this.presence.start();
    this.chatStates.start();
    this.muc.start();
    await catchUp(this.account);
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
    let oldest: Session | undefined;
    for (const x of this.sessions) {
      if (x.authenticated) continue;
      unauthenticated++;
      oldest ??= x;
    }
    // make room by closing the oldest (sessions keep the order they came in): a client that logs in
    // takes milliseconds, so to keep it out, sockets would have to be opened faster than that
    if (unauthenticated > (this.opts.maxUnauthenticated ?? MAX_LOGGING_IN) && oldest && oldest !== s)
      oldest.streamError("policy-violation", "too many connections are logging in: the oldest is closed to make room");
  }

  // ---- Host: session life ----

  sessionAuthenticated(s: Session): void {
    this.log.info(`xmpp: ${this.bareJid} logged in from ${s.remote}`);
  }

  bind(s: Session, wanted: string): string {
    const resource = this.resources.bind(s, wanted);
    s.onResumed = () => this.deliverPending(s, "delivery after resumption");
    return resource;
  }

  ended(s: Session): void {
    this.sessions.delete(s);
    this.muc.ended(s);
    if (this.resources.unbind(s)) this.presence.ended(s);
  }

  resumable(id: string): Session | undefined {
    return this.resources.resumable(id);
  }

  acked(seq: number): void {
    this.store.donePending(seq);
  }

  private deliverPending(s: Session, what: string): void {
    flushPending(this.account, s).catch((e: unknown) => this.log.warn(`xmpp: ${what} to ${s.jid} failed: ${(e as Error).message}`));
  }

  // ---- stanzas ----

  stanza(s: Session, st: XmlElement): void {
    // the server stamps the sender: a client cannot speak for another resource or user
    st.attrs.from = s.jid;
    // to the class channels' rooms (muc.ts)
    if (this.muc.handles(st)) return this.muc.stanza(s, st);
    // unavailable to everyone: out of every room too (XEP-0045 §7.14)
    if (st.name === "presence" && !st.attrs.to && st.attrs.type === "unavailable") this.muc.ended(s);
    if (st.name === "iq") return this.iq(s, st);
    if (st.name === "presence") return this.presence.stanza(s, st);
    return clientMessage(this.account, s, st);
  }

  private iq(s: Session, iq: XmlElement): void {
    // to another of the user's own clients: theirs to answer, and their answers go back the same way
    const target = this.resources.own(iq.attrs.to ? parseJid(iq.attrs.to) : undefined);
    if (target && target !== s) return target.sendStanza(structuredClone(iq));
    this.iqs.handle(iq, (reply) => s.sendStanza(reply), () => ({ session: s, to: this.addressee(iq.attrs.to) }));
  }

  private addressee(to: string | undefined): Addressee {
    if (to === undefined) return { kind: "account" };
    const jid = parseJid(to);
    if (!jid) throw new StanzaError("jid-malformed");
    if (bareJid(jid) === this.bareJid) {
      // a resource of the user's that is not connected, or the asking client itself
      if (jid.resource) throw new StanzaError("service-unavailable");
      return { kind: "account" };
    }
    if (!jid.local && jid.domain === this.domain) return { kind: "domain" };
    return { kind: "other", jid };
  }

  // ---- from Pigeon to the clients ----

  private listenToMailbox(): void {
    const onMessage = (v: MessageView) => pigeonMessage(this.account, v);
    const onReceipt = (r: ReceiptEvent) => pigeonReceipt(this.account, r);
    // the buddy list changed (a client, the pigeon command, or another device of the person): push it
    const onBuddies = (c: BuddiesChange) => {
      if (!this.closed) this.roster.changed(c);
    };
    this.mailbox.on("message", onMessage);
    this.mailbox.on("receipt", onReceipt);
    this.mailbox.on("buddies", onBuddies);
    this.unsubscribe.push(
      () => this.mailbox.off("message", onMessage),
      () => this.mailbox.off("receipt", onReceipt),
      () => this.mailbox.off("buddies", onBuddies),
    );
  }

  // ---- shutdown ----

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.presence.stop();
    this.chatStates.stop();
    this.muc.stop();
    for (const u of this.unsubscribe) u();
    for (const s of [...this.sessions]) s.kick("system-shutdown", "the node is stopping");
    for (const s of this.resources.all()) s.kick("system-shutdown", "the node is stopping");
    for (const t of this.transports) t.destroy();
    await new Promise<void>((r) => (this.tcp ? this.tcp.close(() => r()) : r()));
    this.wss.close();
    this.logins.close();
    this.store.close();
  }

  /** For tests and `pigeon status`: who is connected. */
  clients(): { jid: string; remote: string; available: boolean }[] {
    return this.resources.all().map((s) => ({ jid: s.jid, remote: s.remote, available: s.available }));
  }
}
