// An in-process pair of PeerLinks: for tests and for the trace simulator, where laptops meet in
// virtual time without sockets. It keeps the PeerLink contract (packages/model/src/link.ts) like the
// WebSocket link does, flow control included, so what passes here behaves the same over sockets:
// frames are delivered asynchronously and in order; frames that arrive before anyone listens are held;
// a paused side reads nothing and what is sent to it waits "on the wire", counted by the sender's
// bufferedBytes(). Unlike a socket, closing is abrupt: frames still on the wire are dropped (the
// simulator counts on that, as a contact that ends mid-transfer).
import type { ContactCard, LinkPeer, PeerLink } from "@pigeon/model";

type FrameHandler = (frame: Uint8Array) => void;
type CloseHandler = (reason: string) => void;

class MemoryLink implements PeerLink {
  other!: MemoryLink;
  bytesSent = 0;
  framesSent = 0;
  private reason: string | undefined;
  private frameHandlers: FrameHandler[] = [];
  private closeHandlers: CloseHandler[] = [];
  /** Frames the other side sent to this one that this side has not read yet. */
  private wire: Uint8Array[] = [];
  private wireBytes = 0;
  /** Frames read before anyone called onFrame. */
  private held: Uint8Array[] = [];
  private paused = false;
  private readScheduled = false;

  constructor(readonly peer: LinkPeer, readonly description: string) {}

  get closed(): boolean {
    return this.reason !== undefined;
  }

  send(frame: Uint8Array): void {
    if (this.closed) return;
    this.bytesSent += frame.length;
    this.framesSent++;
    this.other.arrive(Uint8Array.from(frame));
  }

  /** Bytes sent to the other side that it has not read yet. */
  bufferedBytes(): number {
    return this.closed ? 0 : this.other.wireBytes;
  }

  pause(): void {
    if (!this.closed) this.paused = true;
  }

  resume(): void {
    if (this.closed || !this.paused) return;
    this.paused = false;
    this.scheduleRead();
  }

  onFrame(h: FrameHandler): void {
    if (this.closed) return;
    this.frameHandlers.push(h);
    if (this.frameHandlers.length === 1 && this.held.length > 0) this.scheduleRead();
  }

  onClose(h: CloseHandler): void {
    const reason = this.reason;
    if (reason !== undefined) queueMicrotask(() => h(reason));
    else this.closeHandlers.push(h);
  }

  close(reason = "closed"): void {
    if (this.closed) return;
    this.reason = reason;
    this.wire = [];
    this.wireBytes = 0;
    this.held = [];
    this.frameHandlers = [];
    const handlers = this.closeHandlers;
    this.closeHandlers = [];
    for (const h of handlers) {
      try {
        h(reason);
      } catch (e) {
        process.emitWarning(`pigeon memory link close handler threw: ${(e as Error).message}`);
      }
    }
    this.other.close(reason);
  }

  private arrive(frame: Uint8Array): void {
    if (this.closed) return;
    this.wire.push(frame);
    this.wireBytes += frame.length;
    this.scheduleRead();
  }

  private scheduleRead(): void {
    if (this.readScheduled || this.paused || this.closed) return;
    this.readScheduled = true;
    queueMicrotask(() => {
      this.readScheduled = false;
      this.read();
    });
  }

  /** Delivers held frames, then reads the wire, until paused, closed or empty. */
  private read(): void {
    while (!this.paused && !this.closed && this.frameHandlers.length > 0 && this.held.length > 0)
      this.dispatch(this.held.shift()!);
    while (!this.paused && !this.closed && this.wire.length > 0) {
      const frame = this.wire.shift()!;
      this.wireBytes -= frame.length;
      if (this.frameHandlers.length === 0 || this.held.length > 0) this.held.push(frame);
      else this.dispatch(frame);
    }
  }

  private dispatch(frame: Uint8Array): void {
    for (const h of [...this.frameHandlers]) {
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

/** A memory link: a PeerLink with flow control, and counters of what it sent. */
export type MemoryPeerLink = PeerLink & {
  readonly bytesSent: number;
  readonly framesSent: number;
  bufferedBytes(): number;
  pause(): void;
  resume(): void;
};

/**
 * Returns [link held by a (whose peer is b), link held by b (whose peer is a)]. A card without a device
 * is a person's first device (its device key is its person key).
 */
export function memoryLinkPair(a: ContactCard | LinkPeer, b: ContactCard | LinkPeer): [MemoryPeerLink, MemoryPeerLink] {
  const peer = (c: ContactCard | LinkPeer): LinkPeer => ({ ...c, device: "device" in c ? c.device : c.signPublicKey });
  const la = new MemoryLink(peer(b), "memory (a)");
  const lb = new MemoryLink(peer(a), "memory (b)");
  la.other = lb;
  lb.other = la;
  return [la, lb];
}
