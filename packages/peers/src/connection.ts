// One WebSocket connection from open to close (Connection: the handshake, then encrypted frames,
// pings, flow control) and the PeerLink it becomes once the peer is proven (LinkImpl). WsNetwork
// (ws-network.ts) accepts and dials them and keeps one link per peer.
import {
  HANDSHAKE_MESSAGE_MAX_BYTES,
  HandshakeError,
  compareBytes,
  startHandshake,
  toHex,
  type LinkPeer,
  type Handshake,
  type HandshakeRole,
  type Session,
} from "@pigeon/model";
import { WebSocket, type RawData } from "ws";
import type { WsLink, WsNetwork } from "./ws-network.js";

/** A closing socket gets this long to say goodbye before it is cut. */
const CLOSE_GRACE_MS = 2_000;

export interface DialCallbacks {
  resolve(link: WsLink): void;
  reject(error: Error): void;
}

/** One WebSocket from open to close: handshake first, then encrypted frames. */
export class Connection {
  readonly socketClosed: Promise<void>;
  /** Called once when the peer is proven (WsNetwork frees the connection's handshake slot). */
  onAuthenticated: (() => void) | undefined;
  private state: "handshake" | "open" | "closed" = "handshake";
  private readonly handshake: Handshake;
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
    this.handshake = startHandshake(net.identity, role, { trust: net.trust });
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
    // only the dialer speaks first (its Hello); the listener answers
    const opening = this.handshake.opening;
    if (this.opened) {
      if (opening) this.sendRaw(opening);
    } else
      ws.on("open", () => {
        this.opened = true;
        if (this.state === "handshake" && opening) this.sendRaw(opening);
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

  /** Closes at once, without the WebSocket close handshake or a 'rejected' report (making room). */
  abort(reason: string): void {
    this.close(reason, 1013, false);
    this.ws.terminate();
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
      if (bytes.length > HANDSHAKE_MESSAGE_MAX_BYTES) {
        this.fail(`handshake message of ${bytes.length} bytes is too large`);
        return;
      }
      try {
        const step = this.handshake.receive(bytes);
        if (step.reply) this.sendRaw(step.reply);
        if (step.session) {
          this.session = step.session;
          this.authenticated(step.session);
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
    // Until now a message could be no larger than a handshake message (the WebSocket's maxPayload); ws emits each
    // message before it reads the next one's header, so the peer's first frame already gets this limit.
    if (!raiseMaxPayload(this.ws, this.net.maxWirePayload())) {
      this.fail("cannot raise the WebSocket message limit after the handshake (ws internals changed?)", 1011);
      return;
    }
    clearTimeout(this.handshakeTimer);
    this.state = "open";
    this.onAuthenticated?.();
    const link = new LinkImpl(this, this.net, session.peer, this.description, this.role, toHex(session.transcript), this.remote);
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
    const tooLarge = code === "WS_ERR_UNSUPPORTED_MESSAGE_LENGTH" || /max payload size exceeded/i.test(err.message);
    if (tooLarge && this.state === "handshake" && this.opened) {
      // An unproven peer announcing a large message: ws has sent "message too big" (1009) and would
      // now read and drop the rest of it; cut the connection instead, so nothing more is read.
      this.fail(`handshake message too large (a handshake message is at most ${HANDSHAKE_MESSAGE_MAX_BYTES} bytes)`, 1009);
      this.ws.terminate();
      return;
    }
    if (tooLarge) reason = `incoming frame exceeds maxFrameBytes (${this.net.maxFrameBytes})`;
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

export class LinkImpl implements WsLink {
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
    private readonly net: WsNetwork,
    readonly peer: LinkPeer,
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
        this.net.warn(`a link close handler threw: ${(e as Error).message}`);
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

/**
 * ws has no public way to change a socket's maxPayload once it is open; its Receiver keeps it in
 * `_maxPayload` and checks it when each message's header is read. Returns false if that is not there.
 */
function raiseMaxPayload(ws: WebSocket, bytes: number): boolean {
  const receiver = (ws as unknown as { _receiver?: { _maxPayload?: unknown } })._receiver;
  if (!receiver || typeof receiver._maxPayload !== "number") return false;
  receiver._maxPayload = bytes;
  return true;
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
