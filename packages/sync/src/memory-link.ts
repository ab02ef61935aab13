// An in-process pair of PeerLinks: for tests and for the trace simulator, where laptops meet in
// virtual time without sockets. Frames are delivered asynchronously and in order, like a socket.
import type { ContactCard, PeerLink } from "@pigeon/model";

class MemoryLink implements PeerLink {
  other!: MemoryLink;
  closed = false;
  private frameHandlers: ((f: Uint8Array) => void)[] = [];
  private closeHandlers: ((r: string) => void)[] = [];
  bytesSent = 0;
  framesSent = 0;

  constructor(readonly peer: ContactCard, readonly description: string) {}

  send(frame: Uint8Array): void {
    if (this.closed) return;
    this.bytesSent += frame.length;
    this.framesSent++;
    const copy = Uint8Array.from(frame);
    queueMicrotask(() => {
      if (!this.other.closed) for (const h of this.other.frameHandlers) h(copy);
    });
  }

  onFrame(h: (f: Uint8Array) => void): void {
    this.frameHandlers.push(h);
  }

  onClose(h: (r: string) => void): void {
    this.closeHandlers.push(h);
  }

  close(reason = "closed"): void {
    if (this.closed) return;
    this.closed = true;
    for (const h of this.closeHandlers) h(reason);
    this.other.close(reason);
  }
}

/** Returns [link held by a (whose peer is b), link held by b (whose peer is a)]. */
export function memoryLinkPair(a: ContactCard, b: ContactCard): [PeerLink & { bytesSent: number }, PeerLink & { bytesSent: number }] {
  const la = new MemoryLink(b, "memory (a)");
  const lb = new MemoryLink(a, "memory (b)");
  la.other = lb;
  lb.other = la;
  return [la, lb];
}
