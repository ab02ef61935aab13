// WebSocket transport: accepts and dials connections, runs the handshake from @pigeon/model on each,
// and hands authenticated, encrypted PeerLinks to whoever listens for 'link'. Like automerge-repo's
// NetworkAdapter, it knows nothing about what the frames mean.
import { EventEmitter } from "node:events";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import {
  HANDSHAKE_MESSAGE_MAX_BYTES,
  HandshakeError,
  OPEN_TRUST,
  SESSION_FRAME_OVERHEAD,
  compareBytes,
  toHex,
  type HandshakeRole,
  type Identity,
  type LinkTrust,
  type PeerLink,
} from "@pigeon/model";
import { WebSocket, WebSocketServer } from "ws";
import { formatHostPort, normalizeAddress } from "./address.js";
import { Connection, LinkImpl } from "./connection.js";
import { HandshakeSlots, type Slot } from "./slots.js";

export const DEFAULT_PORT = 7480;
export const DEFAULT_MAX_FRAME_BYTES = 1024 * 1024;
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;
export const DEFAULT_PING_INTERVAL_MS = 20_000;
/** Inbound connections from one address (an IPv6 /64) still in the handshake, at most. */
export const DEFAULT_MAX_HANDSHAKES_PER_SOURCE = 8;
/** Inbound connections still in the handshake, at most, in all. */
export const DEFAULT_MAX_HANDSHAKES = 64;
/** The HTTP upgrade request of a peer is ~200 bytes; more header than this closes the connection. */
export const MAX_UPGRADE_HEADER_BYTES = 4096;

/** Where WsNetwork writes what it refuses (the node's `Log` from @pigeon/sync fits). */
export interface PeersLog {
  info(msg: string): void;
  warn(msg: string): void;
}

export interface WsNetworkOptions {
  identity: Identity;
  /**
   * Whom this laptop shows who it is to in handshakes (link secrets, strangers or not). Default: no
   * secrets, shown to anyone. A node sets its mailbox's (useTrust).
   */
  trust?: LinkTrust;
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
  /**
   * Inbound connections from one address (an IPv6 /64 counts as one) that are not authenticated yet,
   * at most (default 8); more from that address are closed at once.
   */
  maxHandshakesPerSource?: number;
  /**
   * Inbound connections not authenticated yet, at most, in all (default 64); past that the oldest one
   * of the address holding the most is closed to make room.
   */
  maxHandshakes?: number;
  /**
   * Where refused connections and handshakes are written: each refused handshake as one line, the
   * connections closed by the limits above counted and summed up once a minute. Without it nothing is
   * logged ('rejected' events still fire) and a server error is a process warning.
   */
  log?: PeersLog;
  /** How often connections closed by those limits are summed up in the log while they go on. Default 60 s. */
  summaryIntervalMs?: number;
}

/** Counts since the network started (for `pigeon status` and tests). */
export interface WsNetworkStats {
  /** Inbound connections not authenticated yet, now. */
  handshaking: number;
  /** Closed at once: their address already had `maxHandshakesPerSource` in the handshake. */
  refusedPerSource: number;
  /** Closed to make room for a newer connection when `maxHandshakes` were in the handshake. */
  closedForRoom: number;
  /** Closed because they did not even finish the WebSocket upgrade within `handshakeTimeoutMs`. */
  upgradeTimeouts: number;
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

interface Pending {
  slot: Slot | undefined;
  conn: Connection | undefined;
}

export class WsNetwork extends EventEmitter<WsNetworkEvents> {
  readonly identity: Identity;
  /** Whom handshakes show this laptop to (asked afresh at each handshake). */
  trust: LinkTrust;
  readonly maxFrameBytes: number;
  readonly handshakeTimeoutMs: number;
  readonly pingIntervalMs: number;
  private readonly options: WsNetworkOptions;
  private readonly slots: HandshakeSlots;
  /** Inbound sockets whose peer is not proven yet. */
  private readonly pending = new Map<Socket, Pending>();
  private readonly counts = { refusedPerSource: 0, closedForRoom: 0, upgradeTimeouts: 0 };
  /** The counts when the log last summed them up. */
  private summarised = { ...this.counts };
  private summaryTimer: NodeJS.Timeout | undefined;
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
    this.trust = options.trust ?? OPEN_TRUST;
    this.maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.handshakeTimeoutMs = options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
    this.pingIntervalMs = options.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS;
    if (!Number.isSafeInteger(this.maxFrameBytes) || this.maxFrameBytes < 1)
      throw new RangeError(`maxFrameBytes must be a positive integer, got ${options.maxFrameBytes}`);
    this.slots = new HandshakeSlots(
      options.maxHandshakesPerSource ?? DEFAULT_MAX_HANDSHAKES_PER_SOURCE,
      options.maxHandshakes ?? DEFAULT_MAX_HANDSHAKES,
    );
  }

  useTrust(trust: LinkTrust): void {
    this.trust = trust;
  }

  /** The limits on connections in the handshake, and what they refused so far. */
  stats(): WsNetworkStats {
    return { handshaking: this.slots.size, ...this.counts };
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
    // Until the peer is proven, a WebSocket message may be no larger than a handshake message: a connection that
    // announces a bigger one is closed before anything of it is buffered. Connection raises the limit
    // to a whole frame once the handshake is done.
    this.wss = new WebSocketServer({ noServer: true, maxPayload: HANDSHAKE_MESSAGE_MAX_BYTES, perMessageDeflate: false });
    this.wss.on("error", () => {}); // noServer: never emitted, but never let it crash us
    server.on("error", (e) => this.warn(`sync server error: ${e.message}`));
    server.on("connection", (socket: Socket) => this.admit(socket));
    server.on("upgrade", (req: IncomingMessage, socket: Socket, head: Buffer) => {
      socket.on("error", () => {}); // ECONNRESET before the upgrade finishes
      if (this.closing || !this.wss || socket.destroyed) {
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
        maxPayload: HANDSHAKE_MESSAGE_MAX_BYTES, // raised to a whole frame once the peer is proven
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

  /** Live, authenticated links (one per peer device). */
  links(): WsLink[] {
    return [...this.live.values()].filter((l) => !l.closed);
  }

  /** Live link to a peer device (its device key: the person key on a person's first device), if any. */
  linkTo(deviceKey: Uint8Array): WsLink | undefined {
    const l = this.live.get(toHex(deviceKey));
    return l && !l.closed ? l : undefined;
  }

  /** Closes the server and every connection; resolves once all sockets are closed. */
  close(): Promise<void> {
    if (!this.closing) this.closing = this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    clearTimeout(this.summaryTimer);
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
      const server = createServer({ maxHeaderSize: MAX_UPGRADE_HEADER_BYTES }, (_req, res) => {
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
    return Math.max(this.maxFrameBytes + SESSION_FRAME_OVERHEAD, HANDSHAKE_MESSAGE_MAX_BYTES);
  }

  /** @internal */
  get isClosing(): boolean {
    return this.closing !== undefined;
  }

  /**
   * Every inbound TCP connection holds a handshake slot until its peer is proven; over the limits it
   * is closed at once, and one that has not even upgraded to a WebSocket when the handshake time is
   * up is closed then (Connection keeps its own timer from the upgrade on).
   */
  private admit(socket: Socket): void {
    socket.on("error", () => {}); // ECONNRESET and friends: the close event follows
    if (this.closing) return void socket.destroy();
    const address = normalizeAddress(socket.remoteAddress);
    const pending: Pending = { conn: undefined, slot: undefined };
    const taken = this.slots.take(socket, address, () => {
      this.counts.closedForRoom++;
      this.overLimit(`closed the oldest connection from ${address} to make room: ${this.slots.total} connections were in the handshake (the limit)`);
      if (pending.conn) pending.conn.abort("too many connections in the handshake");
      else socket.destroy();
    });
    if (taken === "source") {
      socket.destroy();
      this.counts.refusedPerSource++;
      this.overLimit(`refused a connection from ${address}: ${this.slots.perSource} connections from that address were already in the handshake (the limit)`);
      return;
    }
    const slot = taken.slot;
    pending.slot = slot;
    this.pending.set(socket, pending);
    const timer = setTimeout(() => {
      if (pending.conn || socket.destroyed) return;
      this.counts.upgradeTimeouts++;
      this.overLimit(`closed a connection from ${address} that sent no WebSocket upgrade within ${this.handshakeTimeoutMs} ms`);
      socket.destroy();
    }, this.handshakeTimeoutMs);
    timer.unref();
    socket.once("close", () => {
      clearTimeout(timer);
      this.slots.release(slot);
      this.pending.delete(socket);
    });
  }

  private accept(ws: WebSocket, req: IncomingMessage): void {
    const remote = formatHostPort(normalizeAddress(req.socket.remoteAddress), req.socket.remotePort ?? 0);
    const conn = new Connection(this, ws, "listener", remote, `ws ${remote} (accepted)`);
    const pending = this.pending.get(req.socket);
    if (pending) {
      pending.conn = conn;
      const slot = pending.slot;
      conn.onAuthenticated = () => {
        if (slot) this.slots.release(slot);
        this.pending.delete(req.socket);
      };
    }
    this.track(conn);
  }

  /**
   * A connection closed by the limits: the first one since the last summary is written at once, the
   * rest are counted and summed up in one line a minute while they go on.
   */
  private overLimit(first: string): void {
    const log = this.options.log;
    if (this.summaryTimer || !log) return;
    const every = this.options.summaryIntervalMs ?? 60_000;
    const period = every === 60_000 ? "minute" : `${every / 1000} s`;
    log.warn(`${first} (more are counted and summed up every ${period})`);
    this.summarised = { ...this.counts };
    const tick = () => {
      const c = this.counts;
      const s = this.summarised;
      const parts: string[] = [];
      if (c.refusedPerSource > s.refusedPerSource)
        parts.push(`${c.refusedPerSource - s.refusedPerSource} over the limit of ${this.slots.perSource} per address`);
      if (c.closedForRoom > s.closedForRoom)
        parts.push(`${c.closedForRoom - s.closedForRoom} to make room under the limit of ${this.slots.total} in all`);
      if (c.upgradeTimeouts > s.upgradeTimeouts) parts.push(`${c.upgradeTimeouts - s.upgradeTimeouts} that never upgraded to a WebSocket`);
      this.summarised = { ...c };
      if (!parts.length || this.closing) {
        this.summaryTimer = undefined;
        return;
      }
      log.warn(`in the last ${period}, closed connections still in the handshake: ${parts.join(", ")}`);
      this.summaryTimer = setTimeout(tick, every);
      this.summaryTimer.unref();
    };
    this.summaryTimer = setTimeout(tick, every);
    this.summaryTimer.unref();
  }

  /** @internal */
  warn(msg: string): void {
    if (this.options.log) this.options.log.warn(msg);
    else process.emitWarning(`pigeon: ${msg}`);
  }

  private track(c: Connection): void {
    this.conns.add(c);
    void c.socketClosed.then(() => this.conns.delete(c));
  }

  /** @internal Called when a connection finished its handshake. Returns the link the caller should use. */
  adopt(link: LinkImpl): LinkImpl {
    const key = toHex(link.peer.device);
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
    const key = toHex(link.peer.device);
    if (this.live.get(key) === link) this.live.delete(key);
  }

  /** @internal */
  reject(remote: string, reason: string): void {
    this.options.log?.warn(`refused a connection from ${remote}: ${reason}`);
    this.emit("rejected", { remote, reason });
  }

  /**
   * Duplicate rule, the same on both ends: keep the link whose dialer has the smaller device key (a
   * person's two devices are two peers, each with its own link).
   * Two links from the same dialer (a re-dial while an old link is still around): keep the newer one.
   */
  private prefer(candidate: LinkImpl, existing: LinkImpl): boolean {
    const cmp = compareBytes(this.dialerKey(candidate), this.dialerKey(existing));
    return cmp === 0 ? true : cmp < 0;
  }

  private dialerKey(link: LinkImpl): Uint8Array {
    return link.role === "dialer" ? this.identity.signing.publicKey : link.peer.device;
  }
}
