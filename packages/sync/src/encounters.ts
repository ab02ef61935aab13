// Whom this laptop meets often, learned from its own contacts only (nothing is told to anyone): the
// forwarding policy sprays fewer copy tokens to the laptops of its own crowd (a class, a team), who
// meet the same people it does, and more to those it rarely meets, who carry a message into other
// crowds (docs/routing.md, "Who gets copy tokens").

/** Separate meetings (links) remembered per peer: enough to tell a classmate from a passer-by. */
const MEETINGS_KEPT = 8;
/** Peers remembered; past this the one met longest ago is forgotten (a busy relay point meets many). */
const PEERS_KEPT = 4096;
/** Meetings older than this no longer count: crowds change (a new term, a new class). */
export const FAMILIAR_WINDOW_MS = 2 * 24 * 3600 * 1000;
/** Meetings within the window that make a peer one of this laptop's own crowd. */
export const FAMILIAR_MEETINGS = 3;

export class Encounters {
  /** peer (hex person key) -> start times of its recent meetings, oldest first; Map order = least recently met first */
  private readonly met = new Map<string, number[]>();

  /** A link to `peer` came up at `now` (ms). */
  meet(peer: string, now: number): void {
    const times = this.met.get(peer) ?? [];
    this.met.delete(peer); // re-inserted last: most recently met
    times.push(now);
    if (times.length > MEETINGS_KEPT) times.shift();
    this.met.set(peer, times);
    if (this.met.size > PEERS_KEPT) this.met.delete(this.met.keys().next().value!);
  }

  /** Separate meetings with `peer` in the last FAMILIAR_WINDOW_MS, not counting one that started at `now`'s link. */
  meetings(peer: string, now: number): number {
    const times = this.met.get(peer);
    if (!times) return 0;
    return times.filter((t) => t > now - FAMILIAR_WINDOW_MS).length;
  }

  /** One of this laptop's own crowd: met at least FAMILIAR_MEETINGS separate times lately (this meeting included). */
  familiar(peer: string, now: number): boolean {
    return this.meetings(peer, now) >= FAMILIAR_MEETINGS;
  }

  /** This laptop's crowd now (hex person keys), the most met first, at most `max`. */
  crowd(now: number, max: number): string[] {
    return [...this.met.keys()]
      .map((k) => [k, this.meetings(k, now)] as const)
      .filter(([, n]) => n >= FAMILIAR_MEETINGS)
      .sort((a, b) => b[1] - a[1])
      .slice(0, max)
      .map(([k]) => k);
  }

  get size(): number {
    return this.met.size;
  }
}
