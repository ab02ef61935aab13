import { describe, expect, it } from "vitest";
import { SendQueue } from "./send-queue.js";

describe("SendQueue", () => {
  it("gives the most important first, first come first served within a priority, and no duplicates", () => {
    const q = new SendQueue();
    const items = [[5, 3], [1, 0], [2, 3], [3, 1], [4, 0], [6, 2]] as const;
    for (const [n, p] of items) q.push(Uint8Array.of(n), `k${n}`, p);
    q.push(Uint8Array.of(1), "k1", 9); // already waiting: ignored
    expect(q.size).toBe(6);
    const out: number[] = [];
    for (let id = q.pop(); id; id = q.pop()) out.push(id[0]!);
    expect(out).toEqual([1, 4, 3, 6, 5, 2]);
    expect(q.has("k1")).toBe(false);
  });

  it("stays ordered through many interleaved pushes and pops", () => {
    const q = new SendQueue();
    const popped: number[] = [];
    let k = 0;
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 40; i++) q.push(Uint8Array.of((i * 37 + round) % 10), `k${k++}`, (i * 37 + round) % 10);
      for (let i = 0; i < 30; i++) popped.push(q.pop()![0]!);
    }
    let last: number[] = [];
    for (let id = q.pop(); id; id = q.pop()) last.push(id[0]!);
    expect(last).toEqual([...last].sort((a, b) => a - b));
    expect(popped.length + last.length).toBe(2000);
  });
});
