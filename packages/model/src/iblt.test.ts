import { describe, expect, it } from "vitest";
import { decodeFrame, encodeFrame, Iblt, Reader, sha256, SKETCH_LEVELS, toHex, utf8 } from "./index.js";

// Seeded keys: peeling is probabilistic, so the tests use fixed sets (with margins) and cannot flake.
let counter = 0;
const randomBytes = (n: number) => sha256(utf8(`iblt-test-${counter++}`)).subarray(0, n);

function table(cells: number, keys: Uint8Array[]) {
  const t = new Iblt(cells);
  for (const k of keys) t.update(k, 1);
  return t;
}

describe("IBLT set reconciliation", () => {
  it("finds exactly the difference of two large sets with a table sized to the difference", () => {
    const shared = Array.from({ length: 20_000 }, () => randomBytes(16));
    const onlyA = Array.from({ length: 7 }, () => randomBytes(16));
    const onlyB = Array.from({ length: 5 }, () => randomBytes(16));
    const a = table(SKETCH_LEVELS[0], [...shared, ...onlyA]);
    const b = table(SKETCH_LEVELS[0], [...shared, ...onlyB]);
    const d = a.subtract(b).decode();
    expect(d.complete).toBe(true);
    expect(d.ours.map(toHex).sort()).toEqual(onlyA.map(toHex).sort());
    expect(d.theirs.map(toHex).sort()).toEqual(onlyB.map(toHex).sort());
  });

  it("says so when the table is too small, and the next level decodes it", () => {
    const onlyA = Array.from({ length: 200 }, () => randomBytes(16));
    const small = table(SKETCH_LEVELS[0], onlyA).subtract(new Iblt(SKETCH_LEVELS[0])).decode();
    expect(small.complete).toBe(false);
    const big = table(SKETCH_LEVELS[1], onlyA).subtract(new Iblt(SKETCH_LEVELS[1])).decode();
    expect(big.complete).toBe(true);
    expect(big.ours.length).toBe(200);
  });

  it("identical sets give an empty difference", () => {
    const keys = Array.from({ length: 1000 }, () => randomBytes(16));
    const d = table(SKETCH_LEVELS[0], keys).subtract(table(SKETCH_LEVELS[0], keys)).decode();
    expect(d).toEqual({ complete: true, ours: [], theirs: [] });
  });

  it("round-trips in a SKETCH frame well under a kilobyte at the first level", () => {
    const t = table(SKETCH_LEVELS[0], Array.from({ length: 10_000 }, () => randomBytes(16)));
    const bytes = encodeFrame({ type: "sketch", level: 0, size: 10_000, table: t });
    expect(bytes.length).toBeLessThan(1000);
    const f = decodeFrame(bytes);
    expect(f.type).toBe("sketch");
    if (f.type === "sketch") expect(f.table.subtract(t).decode()).toEqual({ complete: true, ours: [], theirs: [] });
    expect(() => Iblt.decodeFrom(new Reader(Uint8Array.from([7])), 99)).toThrow();
  });
});
