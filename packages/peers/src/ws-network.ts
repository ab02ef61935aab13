// WebSocket transport: accepts and dials connections, runs the handshake from @pigeon/model on each,
// and hands authenticated, encrypted PeerLinks to whoever listens for 'link'. Like automerge-repo's
// NetworkAdapter, it knows nothing about what the frames mean.
import { EventEmitter } from "node:events";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import {
  HELLO_MAX_BYTES,
  HandshakeError,
  SECRETBOX_OVERHEAD,
  compareBytes,
  startHandshake,
  toHex,
  type ContactCard,
  type Handshake,
  type HandshakeRole,
  type Identity,
  type PeerLink,
  type Session,
} from "@pigeon/model";
import { WebSocket, WebSocketServer, type RawData } from "ws";
import { formatHostPort, normalizeAddress } from "./address.js";

export const DEFAULT_PORT = 7480;
export const DEFAULT_MAX_FRAME_BYTES = 1024 * 1024;
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;
export const DEFAULT_PING_INTERVAL_MS = 20_000;
/** How long a closing socket may take to finish the WebSocket close handshake before it is destroyed. */
const CLOSE_GRACE_MS = 2_000;

export interface WsNetworkOptions {
  identity: Identity;
  /** Address to listen on. Default "0.0.0.0". */
  host?: string;
  /** Port to listen on. Default 7480; 0 picks a free one. */
  port?: number;
  /** If the port is taken (EADDRINUSE), listen on a free port instead of failing. */
  fallbackToEphemeral?: boolean;
  /** Largest frame (plaintext) a link carries, in bytes. Default 1 MiB. */
  maxFrameBytes?: number;
  /** Time from connecting to an authenticated link. Default 10 s. */
  handshakeTimeoutMs?: number;
  /** Ping interval on live links; a link that misses a whole interval closes. Default 20 s; 0 disables. */
  pingIntervalMs?: number;
}

export interface Rejection {
  /** "host:port" of the other end. */
  remote: string;
  reason: string;
}

export interface WsNetworkEvents {
  /** An authenticated link, inbound or outbound. At most one live link per peer is ever emitted. */
  link: [link: WsLink];
  /** A connection whose handshake failed. Informational: the network keeps serving. */
  rejected: [rejection: Rejection];
}

export interface ListenAddress {
  host: string;
  port: number;
}

/** A PeerLink carried over one WebSocket. */
export interface WsLink extends PeerLink {
  /** Which side opened the connection. */
  readonly role: HandshakeRole;
  /** Hex of the handshake transcript: the same string on both ends of one connection. */
  readonly connectionId: string;
  /** "host:port" of the other end. */
  readonly remote: string;
  /** Why it closed, once closed. */
  readonly closeReason: string | undefined;
}

export class WsNetwork extends EventEmitter<WsNetworkEvents> {
  readonly identity: Identity;
  readonly maxFrameBytes: number;
  readonly handshakeTimeoutMs: number;
  readonly pingIntervalMs: number;
  private readonly options: WsNetworkOptions;
  private server: Server | undefined;
  private wss: WebSocketServer | undefined;
  private readonly conns = new Set<Connection>();
  /** The kept link per peer (hex signPublicKey). */
  private readonly live = new Map<string, LinkImpl>();
  private closing: Promise<void> | undefined;
  private listenStarted = false;

  constructor(options: WsNetworkOptions) {
    super();
    this.options = options;
    this.identity = options.identity;
    this.maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.handshakeTimeoutMs = options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
    this.pingIntervalMs = options.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS;
    if (!Number.isSafeInteger(this.maxFrameBytes) || this.maxFrameBytes < 1)
      throw new RangeError(`maxFrameBytes must be a positive integer, got ${options.maxFrameBytes}`);
  }

  /** Starts the WebSocket server. Resolves with the address actually bound. */
  async listen(): Promise<ListenAddress> {
    if (this.closing) throw new Error("network is closed");
    if (this.server || this.listenStarted) throw new Error("already listening");
    this.listenStarted = true;
    const host = this.options.host ?? "0.0.0.0";
    const port = this.options.port ?? DEFAULT_PORT;
    let server: Server;
    try {
      server = await this.listenOn(host, port);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "EADDRINUSE" && this.options.fallbackToEphemeral && port !== 0) {
        server = await this.listenOn(host, 0);
      } else {
        this.listenStarted = false;
        const why = code === "EADDRINUSE" ? "the port is already in use (is another Pigeon running?)" : (e as Error).message;
        throw Object.assign(new Error(`cannot listen on ${formatHostPort(host, port)}: ${why}`), { code });
      }
    }
    if (this.closing) {
      server.close();
      throw new Error("network is closed");
    }
    this.server = server;
    this.wss = new WebSocketServer({ noServer: true, maxPayload: this.maxWirePayload(), perMessageDeflate: false });
    this.wss.on("error", () => {}); // noServer: never emitted, but never let it crash us
    server.on("error", (e) => process.emitWarning(`pigeon ws server error: ${e.message}`));
    server.on("upgrade", (req: IncomingMessage, socket: Socket, head: Buffer) => {
      socket.on("error", () => {}); // ECONNRESET before the upgrade finishes
      if (this.closing || !this.wss) {
        socket.destroy();
        return;
      }
      // Peers are Pigeon nodes, never web pages: a browser always sends Origin with a WebSocket
      // handshake, our dialer never does. (No Host check: this port is reached by LAN addresses.)
      const origin = req.headers.origin ?? req.headers["sec-websocket-origin"];
      if (origin !== undefined) {
        const remote = formatHostPort(req.socket.remoteAddress ?? "?", req.socket.remotePort ?? 0);
        this.emit("rejected", { remote, reason: `a web page (Origin ${String(origin).slice(0, 100)}) may not connect as a peer` });
        socket.end("HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nThis is a Pigeon peer port; web pages may not connect.\n");
        setTimeout(() => socket.destroy(), 1000).unref();
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, req));
    });
    const addr = server.address() as AddressInfo;
    return { host: addr.address, port: addr.port };
  }

  /** The address we listen on, if listening. */
  address(): ListenAddress | undefined {
    const addr = this.server?.address();
    return addr && typeof addr === "object" ? { host: addr.address, port: addr.port } : undefined;
  }

  /**
   * Connects, authenticates and resolves with the live link to whoever answered. If we already had a
   * link to that peer and it wins the duplicate rule, that existing link is returned instead.
   */
  dial(host: string, port: number): Promise<WsLink> {
    if (this.closing) return Promise.reject(new Error("network is closed"));
    if (!Number.isInteger(port) || port < 1 || port > 65535)
      return Promise.reject(new RangeError(`bad port ${port} for ${host}`));
    const remote = formatHostPort(host, port);
    let ws: WebSocket;
    try {
      ws = new WebSocket(`ws://${remote}/`, {
        maxPayload: this.maxWirePayload(),
        perMessageDeflate: false,
        handshakeTimeout: this.handshakeTimeoutMs,
        followRedirects: false,
      });
    } catch (e) {
      return Promise.reject(new Error(`cannot dial ${remote}: ${(e as Error).message}`));
    }
    return new Promise<WsLink>((resolve, reject) => {
      this.track(new Connection(this, ws, "dialer", remote, `ws ${remote} (dialled)`, { resolve, reject }));
    });
  }

  /** Live, authenticated links (one per peer). */
  links(): WsLink[] {
    return [...this.live.values()].filter((l) => !l.closed);
  }

  /** Live link to a peer, if any. */
  linkTo(signPublicKey: Uint8Array): WsLink | undefined {
    const l = this.live.get(toHex(signPublicKey));
    return l && !l.closed ? l : undefined;
  }

  /** Closes the server and every connection; resolves once all sockets are closed. */
  close(): Promise<void> {
    if (!this.closing) this.closing = this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    const server = this.server;
    const closedServer = server
      ? new Promise<void>((resolve) => server.close(() => resolve()))
      : Promise.resolve();
    const sockets = [...this.conns].map((c) => {
      c.close("network closed", 1001, false);
      return c.socketClosed;
    });
    await Promise.all(sockets);
    server?.closeAllConnections();
    this.wss?.close();
    await closedServer;
  }

  private listenOn(host: string, port: number): Promise<Server> {
    return new Promise<Server>((resolve, reject) => {
      const server = createServer((_req, res) => {
        res.writeHead(426, { "content-type": "text/plain", connection: "close" });
        res.end("This is a Pigeon peer: it speaks WebSocket only.\n");
      });
      const onError = (e: Error) => {
        server.removeListener("listening", onListening);
        reject(e);
      };
      const onListening = () => {
        server.removeListener("error", onError);
        resolve(server);
      };
      server.once("error", onError);
      server.once("listening", onListening);
      server.listen({ host, port });
    });
  }

  // ---- internals used by Connection ----

  /** @internal */
  maxWirePayload(): number {
    return Math.max(this.maxFrameBytes + SECRETBOX_OVERHEAD, HELLO_MAX_BYTES);
  }

  /** @internal */
  get isClosing(): boolean {
    return this.closing !== undefined;
  }

  private accept(ws: WebSocket, req: IncomingMessage): void {
    const remote = formatHostPort(normalizeAddress(req.socket.remoteAddress), req.socket.remotePort ?? 0);
    this.track(new Connection(this, ws, "listener", remote, `ws ${remote} (accepted)`));
  }

  private track(c: Connection): void {
    this.conns.add(c);
    void c.socketClosed.then(() => this.conns.delete(c));
  }

  /** @internal Called when a connection finished its handshake. Returns the link the caller should use. */
  adopt(link: LinkImpl): LinkImpl {
    const key = toHex(link.peer.signPublicKey);
    const existing = this.live.get(key);
    if (existing && !existing.closed) {
      if (!this.prefer(link, existing)) {
        link.close("duplicate");
        return existing;
      }
      this.live.set(key, link);
      existing.close("duplicate");
    } else {
      this.live.set(key, link);
    }
    if (!link.closed) this.emit("link", link);
    return link;
  }

  /** @internal */
  forget(link: LinkImpl): void {
    const key = toHex(link.peer.signPublicKey);
    if (this.live.get(key) === link) this.live.delete(key);
  }

  /** @internal */
  reject(remote: string, reason: string): void {
    this.emit("rejected", { remote, reason });
  }

  /**
   * Duplicate rule, the same on both ends: keep the link whose dialer has the smaller signPublicKey.
   * Two links from the same dialer (a re-dial while an old link is still around): keep the newer one.
   */
  private prefer(candidate: LinkImpl, existing: LinkImpl): boolean {
    const cmp = compareBytes(this.dialerKey(candidate), this.dialerKey(existing));
    return cmp === 0 ? true : cmp < 0;
  }

  private dialerKey(link: LinkImpl): Uint8Array {
    return link.role === "dialer" ? this.identity.signing.publicKey : link.peer.signPublicKey;
  }
}

interface DialCallbacks {
  resolve(link: WsLink): void;
  reject(error: Error): void;
}

/** One WebSocket from open to close: handshake first, then encrypted frames. */
class Connection {
  readonly socketClosed: Promise<void>;
  private state: "handshake" | "open" | "closed" = "handshake";
  private readonly handshake: Handshake;
  private gotHello = false;
  private opened: boolean;
  private session: Session | undefined;
  private link: LinkImpl | undefined;
  private handshakeTimer: NodeJS.Timeout | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private killTimer: NodeJS.Timeout | undefined;
  /** Heard anything from the peer (a frame or a pong) since the last ping. */
  private heard = true;
  /** Not reading (flow control): the peer cannot be heard, so it is not judged meanwhile. */
  private paused = false;
  private lastError: string | undefined;

  constructor(
    private readonly net: WsNetwork,
    private readonly ws: WebSocket,
    readonly role: HandshakeRole,
    readonly remote: string,
    readonly description: string,
    private dial?: DialCallbacks,
  ) {
    this.handshake = startHandshake(net.identity, role);
    this.opened = ws.readyState === WebSocket.OPEN;
    let markClosed!: () => void;
    this.socketClosed = new Promise<void>((resolve) => (markClosed = resolve));
    ws.binaryType = "nodebuffer";
    ws.on("error", (err) => this.onError(err));
    ws.on("close", (code, reason) => {
      clearTimeout(this.killTimer);
      this.onSocketClose(code, reason.toString("utf8"));
      markClosed();
    });
    ws.on("message", (data, isBinary) => this.onMessage(data, isBinary));
    ws.on("pong", () => (this.heard = true));
    this.handshakeTimer = setTimeout(
      () => this.fail(`handshake timed out after ${net.handshakeTimeoutMs} ms`),
      net.handshakeTimeoutMs,
    );
    this.handshakeTimer.unref();
    if (this.opened) this.sendRaw(this.handshake.hello);
    else
      ws.on("open", () => {
        this.opened = true;
        if (this.state === "handshake") this.sendRaw(this.handshake.hello);
      });
  }

  /** Bytes handed to the socket and not yet written to the network. */
  get bufferedBytes(): number {
    return this.ws.bufferedAmount;
  }

  pause(): void {
    this.paused = true;
    this.ws.pause();
  }

  resume(): void {
    this.paused = false;
    this.ws.resume();
  }

  /** Encrypt and send one frame on the open link. */
  sendFrame(frame: Uint8Array): void {
    if (this.state !== "open" || !this.session) return;
    if (frame.length > this.net.maxFrameBytes) {
      this.close(`outgoing frame of ${frame.length} bytes exceeds maxFrameBytes (${this.net.maxFrameBytes})`, 1009);
      return;
    }
    this.sendRaw(this.session.seal(frame));
  }

  close(reason: string, code = 1000, report = true): void {
    if (this.state === "closed") return;
    if (this.state === "handshake") {
      this.fail(reason, code, report);
      return;
    }
    this.shutdown(reason, code);
  }

  private sendRaw(bytes: Uint8Array): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    this.ws.send(bytes, { binary: true }, (err) => {
      if (err) this.close(`send failed: ${err.message}`);
    });
  }

  private onMessage(data: RawData, isBinary: boolean): void {
    if (this.state === "closed") return;
    this.heard = true;
    if (!isBinary) {
      this.close("text frame received (only binary frames are allowed)", 1003);
      return;
    }
    const bytes = toBytes(data);
    if (this.state === "handshake") {
      if (bytes.length > HELLO_MAX_BYTES) {
        this.fail(`handshake message of ${bytes.length} bytes is too large`);
        return;
      }
      try {
        if (!this.gotHello) {
          const { proof } = this.handshake.receiveHello(bytes);
          this.gotHello = true;
          this.sendRaw(proof);
        } else {
          this.session = this.handshake.receiveProof(bytes);
          this.authenticated(this.session);
        }
      } catch (e) {
        this.fail(e instanceof HandshakeError ? e.reason : `handshake error: ${(e as Error).message}`);
      }
      return;
    }
    let plain: Uint8Array;
    try {
      plain = this.session!.open(bytes);
    } catch (e) {
      this.close(e instanceof HandshakeError ? e.reason : `bad frame: ${(e as Error).message}`, 1008);
      return;
    }
    this.link!.deliver(plain);
  }

  private authenticated(session: Session): void {
    clearTimeout(this.handshakeTimer);
    this.state = "open";
    const link = new LinkImpl(this, session.peer, this.description, this.role, toHex(session.transcript), this.remote);
    this.link = link;
    if (this.net.isClosing) {
      this.shutdown("network closed", 1001);
    }
    if (this.net.pingIntervalMs > 0) {
      // A peer is alive while anything arrives from it: during a large transfer its pong can sit
      // behind megabytes of envelopes in the socket, and a busy receiver reads at its storing pace.
      this.pingTimer = setInterval(() => {
        if (!this.heard && !this.paused) {
          this.close(`peer stopped answering pings (${this.net.pingIntervalMs} ms)`, 1001);
          return;
        }
        this.heard = false;
        try {
          this.ws.ping();
        } catch {
          // socket already closing; the close event will follow
        }
      }, this.net.pingIntervalMs);
      this.pingTimer.unref();
    }
    const kept = link.closed ? link : this.net.adopt(link);
    const dial = this.dial;
    this.dial = undefined;
    if (dial) {
      if (kept.closed) dial.reject(new Error(`${this.remote}: ${kept.closeReason ?? "link closed"}`));
      else dial.resolve(kept);
    }
  }

  /** Handshake failure: report, reject the dial, close the socket. */
  private fail(reason: string, code = 1008, report = true): void {
    if (this.state !== "handshake") return;
    if (this.opened && report) this.net.reject(this.remote, reason);
    const dial = this.dial;
    this.dial = undefined;
    if (dial) {
      const message = this.opened
        ? `${this.remote}: ${reason}`
        : reason.startsWith("could not connect")
          ? reason
          : `could not connect to ${this.remote}: ${reason}`;
      dial.reject(new Error(message));
    }
    this.shutdown(reason, code);
  }

  private shutdown(reason: string, code: number): void {
    if (this.state === "closed") return;
    this.state = "closed";
    clearTimeout(this.handshakeTimer);
    clearInterval(this.pingTimer);
    const ws = this.ws;
    if (ws.readyState === WebSocket.OPEN) {
      try {
        ws.close(code, clip(reason));
      } catch {
        ws.terminate();
      }
    } else if (ws.readyState === WebSocket.CONNECTING) {
      ws.terminate();
    }
    if (ws.readyState !== WebSocket.CLOSED) {
      this.killTimer = setTimeout(() => ws.terminate(), CLOSE_GRACE_MS);
      this.killTimer.unref();
    }
    const link = this.link;
    if (link) {
      this.net.forget(link);
      link.closedWith(reason);
    }
  }

  private onError(err: Error): void {
    const code = (err as NodeJS.ErrnoException).code;
    let reason = code && !err.message.includes(code) ? `${err.message} (${code})` : err.message;
    if (code === "WS_ERR_UNSUPPORTED_MESSAGE_LENGTH" || /max payload size exceeded/i.test(err.message))
      reason = `incoming frame exceeds maxFrameBytes (${this.net.maxFrameBytes})`;
    this.lastError = reason;
    if (this.state === "handshake" && !this.opened) this.fail(`could not connect to ${this.remote}: ${reason}`);
    else this.close(reason, 1002);
  }

  private onSocketClose(code: number, reason: string): void {
    if (this.state === "closed") return;
    let why: string;
    if (reason) why = `closed by peer: ${reason}`;
    else if (this.lastError) why = this.lastError;
    else if (code === 1009) why = "closed by peer: frame too large";
    else if (code === 1006 || code === 1005) why = "connection lost";
    else why = `closed by peer (code ${code})`;
    if (this.state === "handshake") {
      this.fail(this.opened ? `${why} during handshake` : `could not connect to ${this.remote}: ${why}`);
    } else {
      this.shutdown(why, code);
    }
  }
}

type FrameHandler = (frame: Uint8Array) => void;
type CloseHandler = (reason: string) => void;

class LinkImpl implements WsLink {
  private frameHandlers: FrameHandler[] = [];
  private closeHandlers: CloseHandler[] = [];
  /**
   * Frames read from the socket but not handed to a handler yet: they arrived before anyone called
   * onFrame, or while the link is paused (ws emits every message of one socket read, even after
   * pause() is called inside a handler), or behind such frames.
   */
  private pending: Uint8Array[] = [];
  private paused = false;
  private reason: string | undefined;

  constructor(
    private readonly conn: Connection,
    readonly peer: ContactCard,
    readonly description: string,
    readonly role: HandshakeRole,
    readonly connectionId: string,
    readonly remote: string,
  ) {}

  get closed(): boolean {
    return this.reason !== undefined;
  }

  get closeReason(): string | undefined {
    return this.reason;
  }

  send(frame: Uint8Array): void {
    if (this.closed) return;
    this.conn.sendFrame(frame);
  }

  bufferedBytes(): number {
    return this.conn.bufferedBytes;
  }

  pause(): void {
    if (this.closed) return;
    this.paused = true;
    this.conn.pause();
  }

  resume(): void {
    if (this.closed || !this.paused) return;
    this.paused = false;
    this.flush();
    // a handler may have paused again while the held frames were delivered
    if (!this.paused && !this.closed) this.conn.resume();
  }

  onFrame(handler: FrameHandler): void {
    this.frameHandlers.push(handler);
    if (this.frameHandlers.length === 1) this.flush();
  }

  onClose(handler: CloseHandler): void {
    if (this.reason !== undefined) {
      const reason = this.reason;
      queueMicrotask(() => handler(reason));
    } else {
      this.closeHandlers.push(handler);
    }
  }

  close(reason = "closed"): void {
    this.conn.close(reason, reason === "duplicate" ? 4000 : 1000);
  }

  toString(): string {
    return `${this.peer.name}@${this.peer.home} via ${this.description}`;
  }

  /** @internal */
  deliver(frame: Uint8Array): void {
    if (this.closed) return;
    if (this.paused || this.frameHandlers.length === 0 || this.pending.length > 0) this.pending.push(frame);
    else this.dispatch(frame);
  }

  /** @internal */
  closedWith(reason: string): void {
    if (this.reason !== undefined) return;
    this.reason = reason;
    this.pending = [];
    const handlers = this.closeHandlers;
    this.closeHandlers = [];
    this.frameHandlers = [];
    for (const h of handlers) {
      try {
        h(reason);
      } catch (e) {
        process.emitWarning(`pigeon link close handler threw: ${(e as Error).message}`);
      }
    }
  }

  /** Hands held frames to the handlers, in order, until none is left or the link pauses or closes. */
  private flush(): void {
    while (!this.closed && !this.paused && this.frameHandlers.length > 0 && this.pending.length > 0)
      this.dispatch(this.pending.shift()!);
  }

  private dispatch(frame: Uint8Array): void {
    for (const h of this.frameHandlers) {
      if (this.closed) return;
      try {
        h(frame);
      } catch (e) {
        this.close(`frame handler failed: ${(e as Error).message}`);
        return;
      }
    }
  }
}

function toBytes(data: RawData): Uint8Array {
  if (Buffer.isBuffer(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (Array.isArray(data)) return new Uint8Array(Buffer.concat(data));
  return new Uint8Array(data);
}

/** WebSocket close reasons are limited to 123 bytes of UTF-8. */
function clip(reason: string): string {
  let s = reason;
  while (Buffer.byteLength(s, "utf8") > 123) s = s.slice(0, -1);
  return s;
}
