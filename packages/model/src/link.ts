// The narrow interface between `sync` (which speaks the reconciliation protocol) and `peers`
// (which finds laptops, proves identities and carries encrypted frames). Like automerge-repo's
// NetworkAdapter: sync never sees sockets, peers never sees envelopes.
import type { ContactCard } from "./identity.js";

export interface PeerLink {
  /** The other side's identity, proven by the handshake before the link is handed to sync. */
  readonly peer: ContactCard;
  /** Short human description, e.g. "ws 198.18.0.2:7480 (dialled)". */
  readonly description: string;
  /** Send one protocol frame. Frames arrive whole and in order, or the link closes. */
  send(frame: Uint8Array): void;
  onFrame(handler: (frame: Uint8Array) => void): void;
  /**
   * Bytes sent but not yet on the network (optional). A sender with much to send waits while this is
   * high, so a large reconciliation streams instead of queueing everything in memory at once.
   */
  bufferedBytes?(): number;
  /**
   * Stop / start reading from the peer (optional). A receiver that has many envelopes still to store
   * pauses, so the sender's socket fills and it waits (see bufferedBytes) instead of the receiver
   * holding an unbounded queue. Pauses are short: pings are not read while paused.
   */
  pause?(): void;
  resume?(): void;
  onClose(handler: (reason: string) => void): void;
  close(reason?: string): void;
  readonly closed: boolean;
}
