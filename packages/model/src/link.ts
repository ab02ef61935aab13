// The narrow interface between `sync` (which speaks the reconciliation protocol) and `peers`
// (which finds laptops, proves identities and carries encrypted frames): sync never sees sockets,
// peers never sees envelopes.
//
// A PeerLink is an authenticated, encrypted, ordered pipe of frames to ONE peer whose identity was
// proven before the link was handed over. (It is not automerge-repo's NetworkAdapter, which is a bus
// of messages to many peers that come and go; a PeerLink exists only while one peer is connected.)
//
// The rules below are the contract every implementation keeps. They are checked, for every
// implementation, by `runPeerLinkContract` in test/contracts/peer-link-contract.ts (run against the
// in-process memory link of @pigeon/sync and the WebSocket link of @pigeon/peers).
import type { LinkPeer } from "./handshake.js";

export interface PeerLink {
  /**
   * The other side's identity, proven by the handshake before the link is handed to sync: the person
   * (`signPublicKey` is the person key) and the device that proved itself. Fixed for the life of the link.
   */
  readonly peer: LinkPeer;
  /** Short human description, e.g. "ws 198.18.0.2:7480 (dialled)". */
  readonly description: string;
  /**
   * Send one protocol frame (any length from 0 bytes up to the link's frame limit, if it has one).
   *
   * - Frames arrive whole, byte for byte, one `onFrame` call per frame, in the order they were sent,
   *   or the link closes: what the other side receives is always a prefix of what was sent, never
   *   with a gap, a duplicate or a reordering. Frames still in flight when the link closes (either
   *   side's `close`, or a lost connection) may be lost; a protocol must not rely on them.
   * - The bytes are taken when `send` returns: the caller may reuse or change its buffer afterwards.
   * - `send` never calls a frame handler (of either side) before it returns: delivery is asynchronous.
   * - A frame larger than the link's limit is not split or cut: the link closes instead.
   * - On a closed link, `send` does nothing and does not throw.
   */
  send(frame: Uint8Array): void;
  /**
   * Register a frame handler. Every handler registered sees every frame delivered after its
   * registration, in registration order.
   *
   * - Frames that arrive before the first handler is registered are held, in order, and delivered to
   *   it once it is (and not before `resume`, if the link is paused).
   * - A handler that throws closes the link, with a reason that starts "frame handler failed:".
   * - A handler registered on a closed link is never called.
   */
  onFrame(handler: (frame: Uint8Array) => void): void;
  /**
   * Bytes sent but not yet taken by the other side (optional): on a socket, what is queued in this
   * process, not yet handed to the network. It grows while the other side is paused (or the network
   * is slow) and returns to 0 once the other side has taken everything.
   * A sender with much to send waits while this is high, so a large reconciliation streams instead of
   * queueing everything in memory at once.
   */
  bufferedBytes?(): number;
  /**
   * Stop / start reading from the peer (optional; an implementation has both or neither). A receiver
   * that has many envelopes still to store pauses, so the sender's socket fills and it waits (see
   * bufferedBytes) instead of the receiver holding an unbounded queue.
   *
   * - From the moment `pause` returns (even when it is called inside a frame handler) until `resume`,
   *   no frame handler is called. After `resume`, every frame that arrived or was held meanwhile is
   *   delivered, in order, none lost.
   * - Pausing is not counted: `pause` twice then `resume` once reads again; `resume` on a link that is
   *   not paused does nothing. Both do nothing on a closed link, and neither throws.
   * - Only reading stops: a paused side still sends, and its peer still receives.
   * - While paused, the link may not notice that the other side closed until it resumes.
   * - Pauses are short: on a socket, pings are not read while paused.
   */
  pause?(): void;
  resume?(): void;
  /**
   * Register a close handler. Each close handler is called exactly once, with the reason.
   * A handler registered after the link closed is called once, asynchronously (never inside
   * `onClose` itself), with the reason the link closed with.
   */
  onClose(handler: (reason: string) => void): void;
  /**
   * Close the link (both ends). On this side, `closed` is true when `close` returns and the close
   * handlers get exactly `reason` (a non-empty default if none is given). The other side closes
   * soon after; its handlers get a reason that includes this one where the transport can carry it
   * (short reasons always). Closing a closed link does nothing.
   */
  close(reason?: string): void;
  /** True once the link closed, by either side or by the network. Never becomes false again. */
  readonly closed: boolean;
}
