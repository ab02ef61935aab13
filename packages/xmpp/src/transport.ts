// The two ways a client reaches the session layer: a TCP socket (with STARTTLS) and an RFC 7395
// WebSocket (subprotocol "xmpp", text messages only, one element each).
import type { Socket } from "node:net";
import { TLSSocket, type SecureContext } from "node:tls";
import type { WebSocket } from "ws";
import type { Session, Transport } from "./session.js";

export function isLoopback(addr: string | undefined): boolean {
  return !!addr && (addr.startsWith("127.") || addr === "::1" || addr.startsWith("::ffff:127."));
}

export class TcpTransport implements Transport {
  readonly kind = "tcp";
  readonly remote: string;
  readonly remoteAddress: string | undefined;
  readonly loopback: boolean;
  secure = false;
  owner: Session | undefined;
  private socket: Socket;
  private closed = false;

  constructor(socket: Socket, private readonly tls: SecureContext | undefined, private readonly onTlsError: (e: Error) => void) {
    this.socket = socket;
    this.remote = `${socket.remoteAddress}:${socket.remotePort}`;
    this.remoteAddress = socket.remoteAddress;
    this.loopback = isLoopback(socket.remoteAddress);
    socket.setNoDelay(true);
    this.attach(socket);
  }

  get canStartTls(): boolean {
    return this.tls !== undefined;
  }

  private attach(socket: Socket): void {
    socket.on("data", (b: Buffer) => this.owner?.data(b));
    socket.on("error", () => {});
    socket.on("close", () => this.gone());
  }

  private gone(): void {
    if (this.closed) return;
    this.closed = true;
    this.owner?.transportClosed();
  }

  write(data: string): void {
    if (!this.closed && this.socket.writable) this.socket.write(data);
  }

  startTls(onSecure: () => void): void {
    const plain = this.socket;
    plain.removeAllListeners("data");
    plain.removeAllListeners("close");
    plain.pause();
    const secure = new TLSSocket(plain, { isServer: true, secureContext: this.tls });
    this.socket = secure;
    secure.on("secure", () => {
      this.secure = true;
      onSecure();
    });
    secure.on("error", (e) => {
      this.onTlsError(e);
      secure.destroy();
    });
    plain.on("close", () => this.gone());
    secure.on("data", (b: Buffer) => this.owner?.data(b));
    secure.on("close", () => this.gone());
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.end();
    // do not wait for a client that never reads
    setTimeout(() => this.socket.destroy(), 2000).unref();
  }

  destroy(): void {
    this.closed = true;
    this.socket.destroy();
  }

  bufferedBytes(): number {
    return this.socket.writableLength;
  }
}

export class WsTransport implements Transport {
  readonly kind = "ws";
  readonly remote: string;
  readonly loopback: boolean;
  readonly secure = false;
  readonly canStartTls = false;
  owner: Session | undefined;
  private closed = false;

  constructor(private readonly ws: WebSocket, readonly remoteAddress: string | undefined, remotePort: number | undefined) {
    this.remote = `${remoteAddress}:${remotePort}`;
    this.loopback = isLoopback(remoteAddress);
    ws.on("message", (data, isBinary) => {
      if (isBinary) return this.owner?.streamError("unsupported-encoding", "RFC 7395 streams use text messages");
      this.owner?.wsMessage(Array.isArray(data) ? Buffer.concat(data).toString("utf8") : Buffer.isBuffer(data) ? data.toString("utf8") : Buffer.from(data).toString("utf8"));
    });
    ws.on("error", () => {});
    ws.on("close", () => {
      if (this.closed) return;
      this.closed = true;
      this.owner?.transportClosed();
    });
  }

  write(data: string): void {
    if (!this.closed && this.ws.readyState === this.ws.OPEN) this.ws.send(data);
  }

  startTls(): void {
    throw new Error("no STARTTLS on WebSocket");
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.ws.close(1000);
    setTimeout(() => this.ws.terminate(), 2000).unref();
  }

  destroy(): void {
    this.closed = true;
    this.ws.terminate();
  }
}
