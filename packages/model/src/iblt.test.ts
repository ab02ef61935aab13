import { describe, expect, it } from "vitest";
import { Reader } from "./bytes.js";
import { rangeKey } from "./id-range.js";
import {
  compareBytes, DecodeError, decodeFrame, encodeFrame, Iblt, inRange, MAX_RANGE_DEPTH, rangeBounds, rangeChildren, rangeWeight,
  sha256, SKETCH_LEVELS, toHex, utf8, WHOLE_RANGE, WHOLE_WEIGHT,
} from "./index.js";

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
    // a fixed set that peels: ~0.6 % of sets of 10 do not (the next test measures it), and the ten
    // keys right after `shared` are one of them (two share all four cells), so they are skipped
    for (let skip = 0; skip < 10; skip++) randomBytes(16);
    const onlyA = Array.from({ length: 6 }, () => randomBytes(16));
    const onlyB = Array.from({ length: 4 }, () => randomBytes(16));
    const a = table(SKETCH_LEVELS[0], [...shared, ...onlyA]);
    const b = table(SKETCH_LEVELS[0], [...shared, ...onlyB]);
    const d = a.subtract(b).decode();
    expect(d.complete).toBe(true);
    expect(d.ours.map(toHex).sort()).toEqual(onlyA.map(toHex).sort());
    expect(d.theirs.map(toHex).sort()).toEqual(onlyB.map(toHex).sort());
  });

  it("the first sketch holds 10 differences almost always (4 cells per key in small tables)", () => {
    // 2,000 fixed sets of 10 keys, split 6 / 4 between the sides as in a contact
    let failed = 0;
    for (let set = 0; set < 2000; set++) {
      const t = new Iblt(SKETCH_LEVELS[0]);
      for (let i = 0; i < 10; i++) t.update(randomBytes(16), i < 6 ? 1 : -1);
      if (!t.decode().complete) failed++;
    }
    expect(new Iblt(SKETCH_LEVELS[0]).hashes).toBe(4);
    expect(new Iblt(SKETCH_LEVELS[1]).hashes).toBe(3);
    // ~0.6 % expected; 3 cells per key in 33 cells failed ~3.5 %
    expect(failed / 2000).toBeLessThan(0.015);
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

  // Found by test/fuzz/iblt-ranges.test.ts (seed 2009018299): a count past int32 wrapped in the Int32Array.
  it("refuses a cell count that does not fit 32 bits instead of wrapping it", () => {
    const t = new Iblt(4);
    t.count[0] = -(2 ** 31);
    t.count[1] = 2 ** 31 - 1;
    const bytes = encodeFrame({ type: "sketch", range: WHOLE_RANGE, level: 0, size: 2, table: t });
    const back = decodeFrame(bytes);
    expect(back.type === "sketch" && [...back.table.count]).toEqual([-(2 ** 31), 2 ** 31 - 1, 0, 0]);
    // cell 0's zigzag count 2^32 - 1 (ff ff ff ff 0f) becomes 2^32 (80 80 80 80 10): 2^31 as a count
    const at = 4; // after type, level, size and cells, one byte each
    expect([...bytes.subarray(at, at + 5)]).toEqual([0xff, 0xff, 0xff, 0xff, 0x0f]);
    const over = Uint8Array.from(bytes);
    over.set([0x80, 0x80, 0x80, 0x80, 0x10], at);
    expect(() => decodeFrame(over)).toThrow(/cell count out of range/);
  });

  it("round-trips in a SKETCH frame well under a kilobyte at the first level", () => {
    const t = table(SKETCH_LEVELS[0], Array.from({ length: 10_000 }, () => randomBytes(16)));
    const bytes = encodeFrame({ type: "sketch", range: WHOLE_RANGE, level: 0, size: 10_000, table: t });
    expect(bytes.length).toBeLessThan(1000);
    const f = decodeFrame(bytes);
    expect(f.type).toBe("sketch");
    if (f.type === "sketch") expect(f.table.subtract(t).decode()).toEqual({ complete: true, ours: [], theirs: [] });
    expect(() => Iblt.decodeFrom(new Reader(Uint8Array.from([7])), 99)).toThrow();
  });
});

describe("slices of the id space", () => {
  it("split a range into 16 children that cover it exactly, with bounds that agree", () => {
    const ids = Array.from({ length: 2000 }, () => randomBytes(32));
    const a = rangeChildren(WHOLE_RANGE)[0xb]!;
    const kids = rangeChildren(a);
    expect(kids.map(rangeKey)).toEqual(Array.from({ length: 16 }, (_, n) => `2:b${n.toString(16)}`));
    expect(kids.reduce((w, k) => w + rangeWeight(k), 0)).toBe(rangeWeight(a));
    expect(rangeWeight(WHOLE_RANGE)).toBe(WHOLE_WEIGHT);
    for (const id of ids) {
      expect(kids.filter((k) => inRange(k, id)).length).toBe(inRange(a, id) ? 1 : 0);
      for (const k of kids) {
        const { lo, hi } = rangeBounds(k);
        const between = compareBytes(lo, id) <= 0 && compareBytes(id, hi) <= 0;
        expect(between).toBe(inRange(k, id));
      }
    }
    // odd depth: the low nibble of a byte
    const odd = rangeChildren(kids[3]!)[7]!;
    expect(rangeKey(odd)).toBe("3:b37");
    expect(toHex(rangeBounds(odd).lo).slice(0, 4)).toBe("b370");
    expect(toHex(rangeBounds(odd).hi).slice(0, 6)).toBe("b37fff");
    let deepest = WHOLE_RANGE;
    for (let i = 0; i < MAX_RANGE_DEPTH; i++) deepest = rangeChildren(deepest)[i]!;
    expect(() => rangeChildren(deepest)).toThrow(RangeError);
  });

  it("a slice's sketch peels as well as the whole set's, though its keys share their leading bytes", () => {
    let slice = WHOLE_RANGE;
    for (let i = 0; i < MAX_RANGE_DEPTH; i++) slice = rangeChildren(slice)[(i * 5) % 16]!;
    const inSlice = () => {
      const k = randomBytes(16);
      k.set(slice.prefix, 0);
      return k;
    };
    const shared = Array.from({ length: 5000 }, inSlice);
    const onlyA = Array.from({ length: 800 }, inSlice);
    const onlyB = Array.from({ length: 800 }, inSlice);
    const d = table(SKETCH_LEVELS[2], [...shared, ...onlyA]).subtract(table(SKETCH_LEVELS[2], [...shared, ...onlyB])).decode();
    expect(d.complete).toBe(true);
    expect(d.ours.length).toBe(800);
    expect(d.theirs.length).toBe(800);
  });

  it("travel in SLICE_SKETCH and SLICE_DONE frames; malformed ones are refused", () => {
    const r = rangeChildren(rangeChildren(rangeChildren(WHOLE_RANGE)[1]!)[2]!)[3]!;
    const t = table(SKETCH_LEVELS[1], Array.from({ length: 50 }, () => randomBytes(16)));
    const sk = decodeFrame(encodeFrame({ type: "sketch", range: r, level: 1, size: 50, table: t }));
    expect(sk.type === "sketch" && rangeKey(sk.range) === "3:123" && sk.level === 1 && sk.size === 50).toBe(true);
    const done = encodeFrame({ type: "done", range: r, level: 4 });
    expect(Array.from(done)).toEqual([8, 3, 0x12, 0x30, 4]);
    expect(decodeFrame(done)).toEqual({ type: "done", range: r, level: 4 });
    expect(Array.from(encodeFrame({ type: "done", range: WHOLE_RANGE, level: 2 }))).toEqual([5, 2]);
    expect(() => decodeFrame(Uint8Array.from([8, 3, 0x12, 0x31, 4]))).toThrow(/stray bits/); // low nibble set
    expect(() => decodeFrame(Uint8Array.from([8, 9, 1, 2, 3, 4, 5, 0]))).toThrow(DecodeError); // too deep
    expect(() => decodeFrame(Uint8Array.from([8, 0, 1]))).toThrow(/whole set/);
    expect(() => decodeFrame(Uint8Array.from([5, 5]))).toThrow(/level/);
  });
});
