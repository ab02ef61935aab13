// One client stream (RFC 6120 over TCP, RFC 7395 over WebSocket): stream headers and features,
// STARTTLS, SASL, resource binding, the legacy session IQ, stream management (XEP-0198), stream errors.
// What the stanzas mean is the Host's business (server.ts).
// Longer than the package's other files on purpose: these steps are one state machine over one
// transport, parser and set of counters (a resumption moves them between two sessions), and split
// across files that state would have to be shared.
import { randomBytes } from "node:crypto";
import { AUTHENTICATED_MAX_STANZA, StreamError, XmlStreamParser, type StreamErrorCondition, type StreamHeader } from "./parser.js";
import { iqError } from "./iq.js";
import { sourceKey, type LoginLimiter } from "./login-limiter.js";
import { NS } from "./ns.js";
import { SaslFailure, SCRAM_MECHANISMS, ScramServer, type CredentialLookup } from "./scram.js";
import { child, el, escapeAttr, text, toXml, type XmlElement } from "./xml.js";

export interface Transport {
  readonly kind: "tcp" | "ws";
  readonly remote: string;
  /** The other end's address, without the port (what guess limiting counts by). */
  readonly remoteAddress: string | undefined;
  readonly loopback: boolean;
  readonly secure: boolean;
  readonly canStartTls: boolean;
  /** The session this transport feeds (changes when another connection resumes a session). */
  owner: Session | undefined;
  write(data: string): void;
  /** TCP only: upgrade the socket to TLS, then call back when the handshake is done. */
  startTls(onSecure: () => void): void;
  close(): void;
}

export interface Host {
  readonly domain: string;
  readonly user: string;
  readonly lookup: CredentialLookup;
  /** Guess limiting, shared by every connection (login-limiter.ts). */
  readonly logins: Pick<LoginLimiter, "admit" | "failed" | "succeeded">;
  readonly tlsAvailable: boolean;
  readonly smMaxSeconds: number;
  readonly log: { info(m: string): void; warn(m: string): void };
  sessionAuthenticated(s: Session): void;
  bind(s: Session, wanted: string): string;
  /** Called with every stanza of a bound session. */
  stanza(s: Session, st: XmlElement): void;
  ended(s: Session): void;
  /** Finds a detached or live session with stream management id `id` to resume. */
  resumable(id: string): Session | undefined;
  acked(pendingSeq: number): void;
}

interface Unacked {
  xml: string;
  pendingSeq?: number;
}

const STANZAS = new Set(["message", "presence", "iq"]);
/** A held failure is answered this much after the wait it started, so the client's next try is in time. */
const HOLD_SLACK_MS = 20;
const CLOSE_WS = `<close xmlns="${NS.framing}" />`;

export class Session {
  /** Stream id; also the stream management id. */
  id = randomBytes(12).toString("hex");
  authenticated = false;
  resource: string | undefined;
  /** Sent initial presence (RFC 6121 §4.2) and takes messages. */
  available = false;
  priority = 0;
  lastPresence: XmlElement | undefined;
  rosterRequested = false;
  /** Asked for the block list (XEP-0191): gets its pushes. */
  blocklistRequested = false;
  carbons = false;
  /** Pending items sent but not yet acked by this session (stream management). */
  inFlight = new Set<number>();
  private transport: Transport | undefined;
  private parser: XmlStreamParser | undefined;
  private headerSent = false;
  private sasl: ScramServer | undefined;
  private saslFailures = 0;
  /** The answer to a failed login, held for the wait it started (login-limiter.ts). */
  private saslHeld: NodeJS.Timeout | undefined;
  /** Where the connection comes from, as guess limiting counts it. */
  private readonly source: string;
  private closed = false;
  private sm: { inH: number; outAcked: number; queue: Unacked[]; resume: boolean; requested: boolean } | undefined;
  private loginTimer: NodeJS.Timeout | undefined;
  private resumeTimer: NodeJS.Timeout | undefined;
  private ackTimer: NodeJS.Timeout | undefined;
  private ended = false;

  constructor(private readonly host: Host, transport: Transport, loginTimeoutMs: number) {
    this.transport = transport;
    transport.owner = this;
    this.source = sourceKey(transport.remoteAddress);
    this.newParser();
    this.loginTimer = setTimeout(() => {
      if (!this.authenticated || !this.resource) this.streamError("connection-timeout", "log in took too long");
    }, loginTimeoutMs);
    this.loginTimer.unref();
  }

  get jid(): string {
    return `${this.host.user}@${this.host.domain}${this.resource ? `/${this.resource}` : ""}`;
  }

  get bare(): string {
    return `${this.host.user}@${this.host.domain}`;
  }

  get attached(): boolean {
    return this.transport !== undefined;
  }

  get isEnded(): boolean {
    return this.ended;
  }

  get remote(): string {
    return this.transport?.remote ?? "detached";
  }

  private newParser(): void {
    const max = this.authenticated ? AUTHENTICATED_MAX_STANZA : undefined;
    const ws = this.transport?.kind === "ws";
    this.parser = new XmlStreamParser(
      {
        streamStart: (h) => this.streamStart(h),
        stanza: (e) => this.element(e),
        streamEnd: () => this.clientClosed(),
        error: (e) => this.streamError(e.condition, e.message),
      },
      { maxStanzaChars: max },
    );
    // RFC 7395: every WebSocket message is a document of its own; a synthetic root gives them the
    // stream's default namespace, and each must hold exactly one element
    if (ws) this.writeSyntheticRoot();
  }

  // ---- input ----

  data(chunk: Buffer): void {
    if (!this.closed) this.parser?.write(chunk);
  }

  wsMessage(message: string): void {
    if (this.closed || !this.parser) return;
    const limit = this.parser.maxStanzaChars;
    if (message.length > limit) return this.streamError("policy-violation", `message larger than ${limit} characters`);
    // each message is its own document: it may start with an XML declaration, never with a DTD
    if (/<!(DOCTYPE|ENTITY|ELEMENT|ATTLIST)/i.test(message)) return this.streamError("restricted-xml", "DOCTYPE is not allowed in XMPP");
    // the message's element is acted on only once it is known to be exactly one complete element
    this.wsElements = [];
    this.parser.write(message.replace(/^\s*<\?xml\s[^>]*\?>/, ""));
    const got = this.wsElements;
    this.wsElements = undefined;
    if (this.closed) return;
    const n = this.parser.takeCompleted();
    if (!this.parser.atTopLevel || n !== 1 || got.length !== 1)
      return this.streamError("not-well-formed", "each WebSocket message must hold exactly one complete element");
    this.element(got[0]!);
  }

  /** The socket went away without a clean close. */
  transportClosed(): void {
    this.transport = undefined;
    if (this.ended) return;
    clearTimeout(this.ackTimer);
    if (!this.closed && this.sm?.resume && this.resource) {
      this.host.log.info(`xmpp: ${this.jid} lost its connection; it may resume for ${this.host.smMaxSeconds} s`);
      this.resumeTimer = setTimeout(() => this.end(), this.host.smMaxSeconds * 1000);
      this.resumeTimer.unref();
      return;
    }
    this.closed = true;
    this.end();
  }

  private syntheticRoot = false;

  private writeSyntheticRoot(): void {
    this.syntheticRoot = true;
    this.parser!.write(`<stream:stream xmlns="${NS.client}" xmlns:stream="${NS.stream}">`);
    this.syntheticRoot = false;
  }

  private streamStart(h: StreamHeader): void {
    if (this.syntheticRoot) return;
    if (h.name !== "stream" || h.xmlns !== NS.stream) return this.streamError("invalid-namespace", "expected <stream:stream>");
    if (h.contentNamespace !== NS.client) return this.streamError("invalid-namespace", "expected the jabber:client namespace");
    this.openStream(h.attrs);
  }

  private openStream(attrs: Record<string, string>): void {
    if (attrs.to !== undefined && attrs.to.toLowerCase() !== this.host.domain)
      return this.streamError("host-unknown", `this node serves ${this.host.domain}, not ${attrs.to}`);
    if (!attrs.version || !/^1\.\d+$/.test(attrs.version)) return this.streamError("unsupported-version", "XMPP 1.0 streams only");
    this.id = this.authenticated ? this.id : randomBytes(12).toString("hex");
    this.sendHeader();
    this.raw(toXml(this.features()));
  }

  private sendHeader(): void {
    this.headerSent = true;
    const common = `from="${escapeAttr(this.host.domain)}" id="${this.id}" version="1.0" xml:lang="en"`;
    if (this.transport?.kind === "ws") this.raw(`<open xmlns="${NS.framing}" ${common}/>`);
    else this.raw(`<?xml version='1.0'?><stream:stream xmlns="${NS.client}" xmlns:stream="${NS.stream}" ${common}>`);
  }

  private mustStartTls(): boolean {
    const t = this.transport;
    return !!t && !t.secure && !t.loopback && t.canStartTls && this.host.tlsAvailable;
  }

  private features(): XmlElement {
    const t = this.transport!;
    // the prefix is declared on the element itself: over WebSocket every message stands alone
    const f = el("stream:features", { "xmlns:stream": NS.stream });
    if (!this.authenticated) {
      if (t.canStartTls && !t.secure && this.host.tlsAvailable)
        f.children.push(el("starttls", { xmlns: NS.tls }, this.mustStartTls() ? el("required") : undefined));
      if (!this.mustStartTls()) {
        const mechs = Object.keys(SCRAM_MECHANISMS);
        f.children.push(el("mechanisms", { xmlns: NS.sasl }, mechs.map((m) => el("mechanism", {}, m))));
      }
    } else {
      f.children.push(
        el("bind", { xmlns: NS.bind }),
        el("session", { xmlns: NS.session }, el("optional")),
        el("sm", { xmlns: NS.sm }),
        el("ver", { xmlns: NS.rosterver }),
      );
    }
    return f;
  }

  private wsElements: XmlElement[] | undefined;

  private element(e: XmlElement): void {
    if (this.closed) return;
    if (this.wsElements) {
      this.wsElements.push(e);
      return;
    }
    const ns = e.attrs.xmlns;
    if (ns === NS.framing) {
      if (this.transport?.kind !== "ws") return this.streamError("invalid-namespace", "framing elements are for WebSocket streams");
      if (e.name === "open") return this.openStream(e.attrs);
      if (e.name === "close") return this.clientClosed();
      return this.streamError("unsupported-stanza-type", `unknown framing element <${e.name}>`);
    }
    if (!this.headerSent) return this.streamError("bad-format", "the stream has not been opened");
    if (!this.authenticated) {
      if (ns === NS.tls && e.name === "starttls") return this.startTls();
      if (ns === NS.sasl) return this.saslElement(e);
      return this.streamError("not-authorized", "log in first");
    }
    if (ns === NS.sm) return this.smElement(e);
    if (ns === NS.csi) return; // client state indication: accepted, nothing to do
    if (!STANZAS.has(e.name) || ns !== NS.client) return this.streamError("unsupported-stanza-type", `<${e.name}> in ${ns}`);
    if (this.sm) this.sm.inH = (this.sm.inH + 1) >>> 0;
    if (!this.resource) {
      if (e.name === "iq" && e.attrs.type === "set" && child(e, "bind", NS.bind)) return this.bind(e);
      if (e.name === "iq") return this.sendStanza(iqError(e, this.host.domain, "not-authorized", "auth"));
      return this.streamError("not-authorized", "bind a resource first");
    }
    if (e.name === "iq" && child(e, "bind", NS.bind)) return this.sendStanza(iqError(e, this.host.domain, "not-allowed", "cancel"));
    if (e.name === "iq" && e.attrs.type === "set" && child(e, "session", NS.session))
      return this.sendStanza(el("iq", { type: "result", id: e.attrs.id, from: this.host.domain, to: this.jid }));
    try {
      this.host.stanza(this, e);
    } catch (err) {
      this.host.log.warn(`xmpp: error handling <${e.name}> from ${this.jid}: ${(err as Error).stack ?? err}`);
      if (e.name === "iq" && (e.attrs.type === "get" || e.attrs.type === "set"))
        this.sendStanza(iqError(e, this.host.domain, "internal-server-error", "wait"));
    }
  }

  // ---- STARTTLS (RFC 6120 §5) ----

  private startTls(): void {
    const t = this.transport!;
    if (!t.canStartTls || t.secure || !this.host.tlsAvailable) {
      this.raw(`<failure xmlns="${NS.tls}"/>`);
      return this.terminateStream();
    }
    this.raw(`<proceed xmlns="${NS.tls}"/>`);
    // bytes after <proceed/> are dropped: a fresh parser starts once TLS is up
    this.parser = undefined;
    this.headerSent = false;
    t.startTls(() => this.newParser());
  }

  // ---- SASL (RFC 6120 §6) ----
  // SCRAM only (see README.md for why not PLAIN). Every password check goes through the guess
  // limiter: refused unchecked while this source or the account must wait, and a wrong one counted,
  // its answer held for the wait it starts.

  private saslFail(condition: string, message?: string): void {
    this.sasl = undefined;
    this.raw(toXml(el("failure", { xmlns: NS.sasl }, el(condition), message ? el("text", { "xml:lang": "en" }, message) : undefined)));
    // counted by the guess limiter and logged there: no line per stream
    if ((condition === "not-authorized" || condition === "temporary-auth-failure") && ++this.saslFailures >= 3)
      this.streamError("policy-violation", "too many failed logins", false);
  }

  private saslElement(e: XmlElement): void {
    // RFC 6120 §6.4: one exchange at a time; a client that does not wait for its answer is done
    if (this.saslHeld) return this.streamError("policy-violation", "wait for the answer to your last login attempt", false);
    const payload = () => {
      const t = text(e).trim();
      return t === "=" ? Buffer.alloc(0) : Buffer.from(t, "base64");
    };
    try {
      if (e.name === "auth") {
        const mech = e.attrs.mechanism ?? "";
        if (this.mustStartTls()) return this.saslFail("encryption-required");
        const hash = SCRAM_MECHANISMS[mech];
        if (!hash) return this.saslFail("invalid-mechanism");
        if (this.mustWait()) return;
        this.sasl = new ScramServer(hash, this.host.lookup);
        const first = payload().toString("utf8");
        if (!first) return this.raw(`<challenge xmlns="${NS.sasl}">=</challenge>`); // ask for the initial response
        return this.raw(`<challenge xmlns="${NS.sasl}">${Buffer.from(this.sasl.start(first)).toString("base64")}</challenge>`);
      }
      if (e.name === "response") {
        const s = this.sasl;
        if (!s) return this.saslFail("malformed-request");
        const data = payload().toString("utf8");
        if (!s.username) {
          return this.raw(`<challenge xmlns="${NS.sasl}">${Buffer.from(s.start(data)).toString("base64")}</challenge>`);
        }
        // again here: guesses started in parallel before the wait began must not be checked
        if (this.mustWait()) return;
        let final: string;
        try {
          final = s.finish(data);
        } catch (err) {
          if (err instanceof SaslFailure && err.condition === "not-authorized") return this.wrongPassword();
          throw err;
        }
        if (s.username.toLowerCase() !== this.host.user) return this.wrongPassword();
        this.checkAuthzid(s.authzid);
        return this.saslSuccess(final);
      }
      if (e.name === "abort") return this.saslFail("aborted");
      return this.streamError("unsupported-stanza-type", `unknown SASL element <${e.name}>`);
    } catch (err) {
      if (err instanceof SaslFailure) return this.saslFail(err.condition, err.condition === "not-authorized" ? undefined : err.message);
      throw err;
    }
  }

  /** True (and the attempt refused unchecked) while logins from here or to the account must wait. */
  private mustWait(): boolean {
    const ms = this.host.logins.admit(this.source);
    if (ms <= 0) return false;
    this.saslFail("temporary-auth-failure", `too many failed logins; try again in ${Math.ceil(ms / 1000)} s`);
    return true;
  }

  /** A wrong password (or user): counted, and answered only when the wait it starts is over. */
  private wrongPassword(): void {
    this.sasl = undefined;
    const hold = this.host.logins.failed(this.source);
    if (hold <= 0) return this.saslFail("not-authorized");
    this.saslHeld = setTimeout(() => {
      this.saslHeld = undefined;
      if (!this.closed) this.saslFail("not-authorized");
    }, hold + HOLD_SLACK_MS);
  }

  private checkAuthzid(authzid: string): void {
    if (authzid && authzid.toLowerCase() !== this.bare) throw new SaslFailure("invalid-authzid", "you may only act as yourself");
  }

  private saslSuccess(final: string | undefined): void {
    this.sasl = undefined;
    this.authenticated = true;
    this.host.logins.succeeded(this.source);
    this.raw(`<success xmlns="${NS.sasl}">${final ? Buffer.from(final).toString("base64") : ""}</success>`);
    this.host.sessionAuthenticated(this);
    // the client restarts the stream: a new parser (TCP) with the larger stanza limit
    this.headerSent = false;
    if (this.transport?.kind === "tcp") this.newParser();
    else if (this.parser) this.parser.maxStanzaChars = AUTHENTICATED_MAX_STANZA;
  }

  // ---- resource binding (RFC 6120 §7) ----

  private bind(e: XmlElement): void {
    const wanted = text(child(child(e, "bind", NS.bind)!, "resource")).trim();
    if (wanted.length > 1023 || /[\u0000-\u001f\u007f]/.test(wanted)) return this.sendStanza(iqError(e, this.host.domain, "bad-request", "modify"));
    this.resource = this.host.bind(this, wanted);
    clearTimeout(this.loginTimer);
    this.sendStanza(el("iq", { type: "result", id: e.attrs.id, to: this.jid }, el("bind", { xmlns: NS.bind }, el("jid", {}, this.jid))));
  }

  // ---- stream management (XEP-0198) ----

  private smElement(e: XmlElement): void {
    switch (e.name) {
      case "enable": {
        if (!this.resource || this.sm) return this.raw(`<failed xmlns="${NS.sm}"><unexpected-request xmlns="${NS.stanzas}"/></failed>`);
        const resume = e.attrs.resume === "true" || e.attrs.resume === "1";
        this.sm = { inH: 0, outAcked: 0, queue: [], resume, requested: false };
        this.raw(`<enabled xmlns="${NS.sm}" id="${this.id}"${resume ? ` resume="true" max="${this.host.smMaxSeconds}"` : ""}/>`);
        return;
      }
      case "r":
        if (this.sm) this.raw(`<a xmlns="${NS.sm}" h="${this.sm.inH}"/>`);
        return;
      case "a": {
        if (!this.sm) return;
        const h = Number(e.attrs.h);
        if (!Number.isInteger(h) || h < 0 || h > 0xffffffff) return this.streamError("undefined-condition", "bad ack");
        this.ack(h);
        return;
      }
      case "resume": {
        const old = this.host.resumable(e.attrs.previd ?? "");
        const h = Number(e.attrs.h);
        if (this.resource || !old || old === this || !Number.isInteger(h) || !old.sm) {
          return this.raw(`<failed xmlns="${NS.sm}"><item-not-found xmlns="${NS.stanzas}"/></failed>`);
        }
        old.takeOver(this, h);
        return;
      }
      default:
        return;
    }
  }

  private ack(h: number): void {
    const sm = this.sm!;
    const n = (h - sm.outAcked) >>> 0;
    if (n > sm.queue.length) {
      this.host.log.warn(`xmpp: ${this.jid} acked ${n} stanzas but only ${sm.queue.length} were sent`);
      return this.streamError("undefined-condition", "acknowledged more stanzas than were sent");
    }
    for (const u of sm.queue.splice(0, n)) {
      if (u.pendingSeq !== undefined) {
        this.inFlight.delete(u.pendingSeq);
        this.host.acked(u.pendingSeq);
      }
    }
    sm.outAcked = h;
    sm.requested = false;
  }

  /** A new connection (`fresh`) resumes this session: it takes over the new transport. */
  private takeOver(fresh: Session, h: number): void {
    clearTimeout(this.resumeTimer);
    const oldTransport = this.transport;
    if (oldTransport) {
      oldTransport.owner = undefined; // its close must not detach us again
      oldTransport.close();
    }
    this.transport = fresh.transport;
    this.headerSent = true;
    fresh.transport = undefined;
    fresh.detachQuietly();
    // the fresh session's parser now feeds this one
    this.rebindParser();
    this.ack(h);
    this.raw(`<resumed xmlns="${NS.sm}" previd="${this.id}" h="${this.sm!.inH}"/>`);
    for (const u of this.sm!.queue) this.transport?.write(u.xml);
    this.host.log.info(`xmpp: ${this.jid} resumed its session`);
    this.requestAck();
    this.onResumed?.();
  }

  /** Set by the server: called after a resume, to send what arrived meanwhile. */
  onResumed: (() => void) | undefined;

  private rebindParser(): void {
    if (this.transport) this.transport.owner = this;
    this.parser = new XmlStreamParser(
      {
        streamStart: (h) => this.streamStart(h),
        stanza: (e) => this.element(e),
        streamEnd: () => this.clientClosed(),
        error: (e) => this.streamError(e.condition, e.message),
      },
      { maxStanzaChars: AUTHENTICATED_MAX_STANZA },
    );
    // the old parser is mid-stream (after <resume/>); a synthetic root puts the new one at depth 1
    this.writeSyntheticRoot();
  }

  private detachQuietly(): void {
    this.closed = true;
    this.end();
  }

  private requestAck(): void {
    const sm = this.sm;
    if (!sm || sm.requested || !this.transport || sm.queue.length === 0) return;
    if (this.ackTimer) return;
    this.ackTimer = setTimeout(() => {
      this.ackTimer = undefined;
      if (!this.sm || !this.transport || this.sm.queue.length === 0 || this.sm.requested) return;
      this.sm.requested = true;
      this.raw(`<r xmlns="${NS.sm}"/>`);
    }, 200);
    this.ackTimer.unref();
  }

  // ---- output ----

  raw(data: string): void {
    this.transport?.write(data);
  }

  /** Sends a stanza. `pendingSeq` marks something from the offline queue: done once acked (or written, without SM). */
  sendStanza(st: XmlElement, pendingSeq?: number): void {
    if (this.ended) return;
    if (STANZAS.has(st.name)) st.attrs.xmlns = NS.client;
    const xml = toXml(st);
    if (this.sm) {
      this.sm.queue.push({ xml, pendingSeq });
      if (pendingSeq !== undefined) this.inFlight.add(pendingSeq);
      this.transport?.write(xml);
      if (this.sm.queue.length > 1000) return this.streamError("resource-constraint", "too many unacknowledged stanzas");
      this.requestAck();
      return;
    }
    if (!this.transport) return;
    this.transport.write(xml);
    if (pendingSeq !== undefined) this.host.acked(pendingSeq);
  }

  // ---- closing ----

  private clientClosed(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.transport?.kind === "ws") this.raw(CLOSE_WS);
    else this.raw("</stream:stream>");
    this.transport?.close();
    this.transport = undefined;
    this.end();
  }

  private terminateStream(): void {
    this.closed = true;
    if (this.transport?.kind === "ws") this.raw(CLOSE_WS);
    else this.raw("</stream:stream>");
    this.transport?.close();
    this.transport = undefined;
    this.end();
  }

  streamError(condition: StreamErrorCondition, message: string, log = true): void {
    if (this.closed) return;
    if (!this.headerSent) this.sendHeader();
    if (log) this.host.log.info(`xmpp: closing the stream of ${this.authenticated ? this.jid : this.remote}: ${condition} (${message})`);
    this.raw(
      `<stream:error xmlns:stream="${NS.stream}"><${condition} xmlns="${NS.streams}"/>` +
        `<text xmlns="${NS.streams}" xml:lang="en">${toXml(message)}</text></stream:error>`,
    );
    this.terminateStream();
  }

  /** The server ends the session (another login took the resource, or shutdown). */
  kick(condition: StreamErrorCondition, message: string): void {
    if (this.closed) {
      this.end();
      return;
    }
    this.streamError(condition, message);
  }

  private end(): void {
    if (this.ended) return;
    this.ended = true;
    this.closed = true;
    clearTimeout(this.loginTimer);
    clearTimeout(this.resumeTimer);
    clearTimeout(this.ackTimer);
    clearTimeout(this.saslHeld);
    this.host.ended(this);
  }
}

export { StreamError };
