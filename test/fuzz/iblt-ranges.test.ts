// IBLT sketches and id ranges as they come off the wire (docs/protocol.md §2): the table a peer sends
// is decoded exactly or refused, peeling it always ends, and what a peel reports is what the table holds.
import { describe, expect, it } from "vitest";
import { DecodeError, Iblt, IBLT_KEY_BYTES, inRange, MAX_RANGE_DEPTH, rangeBounds, SKETCH_LEVELS } from "../../packages/model/src/index.js";
import { Reader, Writer } from "../../packages/model/src/bytes.js";
import { readRange, writeRange } from "../../packages/model/src/id-range.js";
import { ibltArb, key16, rangeArb } from "./arbitraries.js";
import { attempt, check, expectOnly, fc, mutated, note, sameBytes, TEST_TIMEOUT, timed } from "./fuzz.js";

const levelArb = fc.integer({ min: 0, max: SKETCH_LEVELS.length - 1 });
const tableArb = levelArb.chain((level) =>
  fc.integer({ min: 1, max: Math.min(SKETCH_LEVELS[level]!, 120) }).chain((c) => {
    const cells = c < 64 ? Math.max(4, c - (c % 4)) : c - (c % 3) < 64 ? 60 : c - (c % 3);
    return ibltArb(cells).map((table) => ({ level, table }));
  }),
);
const encodedTable = tableArb.map(({ level, table }) => Uint8Array.from([level, ...table.encode(new Writer()).finish()]));

/** Decodes `level byte ‖ table` as decodeFrame does: DecodeError, or a table that encodes to exactly the bytes it read. */
function tableContract(bytes: Uint8Array): Iblt | undefined {
  note(bytes);
  if (bytes.length === 0) return undefined;
  const maxCells = SKETCH_LEVELS[bytes[0]! % SKETCH_LEVELS.length]!;
  const r = new Reader(bytes.subarray(1), true); // as decodeFrame reads it
  const out = attempt("Iblt.decodeFrom", () => Iblt.decodeFrom(r, maxCells));
  if (!out.ok) {
    expectOnly(out.error, DecodeError);
    return undefined;
  }
  const t = out.value;
  expect(t.cells).toBeLessThanOrEqual(maxCells);
  expect(sameBytes(t.encode(new Writer()).finish(), bytes.subarray(1, 1 + r.pos))).toBe(true);
  return t;
}

/** Peeling any table ends; if it says "complete", the keys it found rebuild exactly that table. */
function peelContract(t: Iblt): void {
  const { complete, ours, theirs } = timed("Iblt.decode", () => t.decode());
  expect(ours.length + theirs.length).toBeLessThanOrEqual(4 * t.cells + 1);
  for (const k of [...ours, ...theirs]) expect(k.length).toBe(IBLT_KEY_BYTES);
  if (!complete) return;
  const rebuilt = new Iblt(t.cells);
  for (const k of ours) rebuilt.update(k, 1);
  for (const k of theirs) rebuilt.update(k, -1);
  expect([...rebuilt.count]).toEqual([...t.count]);
  expect([...rebuilt.hashSum]).toEqual([...t.hashSum]);
  expect(sameBytes(rebuilt.keySum, t.keySum)).toBe(true);
}

describe("fuzz: IBLT sketches and id ranges from the wire", () => {
  it("tables: arbitrary and mutated encodings decode exactly or throw DecodeError", () => {
    check(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 400 }), mutated(encodedTable).map((m) => m.bytes)), (bytes) => {
        const t = tableContract(bytes);
        if (t) peelContract(t);
      }),
    );
  }, TEST_TIMEOUT);

  it("peeling a table a peer made up ends, and a complete peel names exactly what the table holds", () => {
    check(fc.property(tableArb, ({ table }) => peelContract(table)), 1 / 2);
  }, TEST_TIMEOUT);

  it("an honest difference peels to exactly the keys each side lacks, or says it is incomplete", () => {
    const diff = fc.record({
      common: fc.array(key16, { maxLength: 30 }),
      mine: fc.uniqueArray(key16, { maxLength: 20, selector: (k) => Buffer.from(k).toString("hex") }),
      theirs: fc.uniqueArray(key16, { maxLength: 20, selector: (k) => Buffer.from(k).toString("hex") }),
      level: fc.integer({ min: 0, max: 1 }),
    });
    check(
      fc.property(diff, ({ common, mine, theirs, level }) => {
        const hex = (k: Uint8Array) => Buffer.from(k).toString("hex");
        fc.pre(!mine.some((k) => theirs.some((j) => hex(j) === hex(k))));
        const a = new Iblt(SKETCH_LEVELS[level]!);
        const b = new Iblt(SKETCH_LEVELS[level]!);
        for (const k of common) (a.update(k, 1), b.update(k, 1));
        for (const k of mine) a.update(k, 1);
        for (const k of theirs) b.update(k, 1);
        // a peer's table crosses the wire
        const fromWire = Iblt.decodeFrom(new Reader(b.encode(new Writer()).finish()), SKETCH_LEVELS[level]!);
        const d = a.subtract(fromWire).decode();
        if (!d.complete) return;
        expect(d.ours.map(hex).sort()).toEqual(mine.map(hex).sort());
        expect(d.theirs.map(hex).sort()).toEqual(theirs.map(hex).sort());
      }),
      1 / 2,
    );
  }, TEST_TIMEOUT);

  it("id ranges: arbitrary bytes give DecodeError or a range of depth 0-8 that encodes to exactly the bytes read", () => {
    const encodedRange = rangeArb.map((rg) => {
      const w = new Writer();
      writeRange(w, rg);
      return w.finish();
    });
    check(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 8 }), mutated(encodedRange).map((m) => m.bytes)), (bytes) => {
        note(bytes);
        const r = new Reader(bytes, true); // as decodeFrame reads it
        const out = attempt("readRange", () => readRange(r));
        if (!out.ok) return expectOnly(out.error, DecodeError);
        const rg = out.value;
        expect(rg.depth).toBeGreaterThanOrEqual(0);
        expect(rg.depth).toBeLessThanOrEqual(MAX_RANGE_DEPTH);
        expect(rg.prefix.length).toBe(4);
        const w = new Writer();
        writeRange(w, rg);
        expect(sameBytes(w.finish(), bytes.subarray(0, r.pos))).toBe(true);
        const { lo, hi } = rangeBounds(rg);
        expect(inRange(rg, lo) && inRange(rg, hi)).toBe(true);
      }),
    );
  }, TEST_TIMEOUT);
});
