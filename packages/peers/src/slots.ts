// Who may be in the handshake at once. Every inbound TCP connection takes a slot from the moment it is
// accepted until its peer is proven (or it closes): at most `perSource` slots per source address (an
// IPv6 /64 counts as one address) and `total` in all. A connection from an address that already holds
// its share is closed at once; when all slots are taken, the oldest connection of the address holding
// the most makes room, so many stalled connections cannot keep a real peer out for long. Nothing here
// logs: WsNetwork counts and sums up.
import { isIP, type Socket } from "node:net";

export interface Slot {
  readonly socket: Socket;
  readonly source: string;
  /** Closes the connection in this slot (the WebSocket, once upgraded) to make room. */
  evict: () => void;
}

export class HandshakeSlots {
  /** Slots per source, oldest first (a Set keeps insertion order). */
  private readonly bySource = new Map<string, Set<Slot>>();
  private count = 0;

  constructor(
    readonly perSource: number,
    readonly total: number,
  ) {
    for (const [name, v] of [["maxHandshakesPerSource", perSource], ["maxHandshakes", total]] as const)
      if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`${name} must be a positive integer, got ${v}`);
  }

  /** Connections holding a slot now. */
  get size(): number {
    return this.count;
  }

  /** How many slots `address` holds. */
  heldBy(address: string): number {
    return this.bySource.get(sourceOf(address))?.size ?? 0;
  }

  /**
   * A slot for a connection from `address`, or "source" when that address already holds its share.
   * When every slot is taken, one is freed first (the `evict` of the slot that makes room is called);
   * `madeRoom` says so.
   */
  take(socket: Socket, address: string, evict: () => void): { slot: Slot; madeRoom: boolean } | "source" {
    const source = sourceOf(address);
    const mine = this.bySource.get(source);
    if (mine && mine.size >= this.perSource) return "source";
    let madeRoom = false;
    if (this.count >= this.total) {
      const victim = this.oldestOfLargest();
      if (victim) {
        this.release(victim);
        victim.evict();
        madeRoom = true;
      }
    }
    const slot: Slot = { socket, source, evict };
    let set = this.bySource.get(source);
    if (!set) this.bySource.set(source, (set = new Set()));
    set.add(slot);
    this.count++;
    return { slot, madeRoom };
  }

  /** Frees a slot (the peer is proven, or the connection closed). Safe to call twice. */
  release(slot: Slot): void {
    const set = this.bySource.get(slot.source);
    if (!set?.delete(slot)) return;
    this.count--;
    if (set.size === 0) this.bySource.delete(slot.source);
  }

  /** The oldest slot of the source holding the most (the first such source found on a tie). */
  private oldestOfLargest(): Slot | undefined {
    let largest: Set<Slot> | undefined;
    for (const set of this.bySource.values()) if (!largest || set.size > largest.size) largest = set;
    return largest?.values().next().value;
  }
}

/** The address a slot is counted against: an IPv4 address, or the /64 of an IPv6 one. */
export function sourceOf(address: string): string {
  if (isIP(address) !== 6) return address;
  const [head = "", tail] = address.split("%")[0]!.toLowerCase().split("::");
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill("0"), ...right];
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, "")).join(":")}::/64`;
}
