// What a link still has to send, most important first (a binary min-heap on priority, first come
// first served within one priority). One queue per link, so a large reconciliation split into many
// slices still sends the envelopes for the peer itself before others' carried envelopes.
export class SendQueue {
  private readonly heap: { id: Uint8Array; key: string; p: number; seq: number }[] = [];
  private readonly queued = new Set<string>();
  private seq = 0;

  get size(): number {
    return this.heap.length;
  }

  has(key: string): boolean {
    return this.queued.has(key);
  }

  /** Adds an id unless it is already waiting. */
  push(id: Uint8Array, key: string, p: number): void {
    if (this.queued.has(key)) return;
    this.queued.add(key);
    const h = this.heap;
    h.push({ id, key, p, seq: this.seq++ });
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(i, parent)) break;
      [h[i], h[parent]] = [h[parent]!, h[i]!];
      i = parent;
    }
  }

  /** Removes and returns the most important id. */
  pop(): Uint8Array | undefined {
    const h = this.heap;
    const top = h[0];
    if (!top) return undefined;
    const last = h.pop()!;
    if (h.length) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.before(l, m)) m = l;
        if (r < h.length && this.before(r, m)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    this.queued.delete(top.key);
    return top.id;
  }

  clear(): void {
    this.heap.length = 0;
    this.queued.clear();
  }

  private before(a: number, b: number): boolean {
    const x = this.heap[a]!;
    const y = this.heap[b]!;
    return x.p < y.p || (x.p === y.p && x.seq < y.seq);
  }
}
