// Arbitraries for valid wire values (sync frames, IBLT sketches, id ranges), shared by the fuzz files.
import { CHAT_STATES, Iblt, IBLT_KEY_BYTES, MAX_RANGE_DEPTH, SKETCH_LEVELS, type IdRange, type SyncFrame } from "../../packages/model/src/index.js";
import { fc } from "./fuzz.js";

export const id32 = fc.uint8Array({ minLength: 32, maxLength: 32 });
export const key16 = fc.uint8Array({ minLength: IBLT_KEY_BYTES, maxLength: IBLT_KEY_BYTES });
export const key8 = fc.uint8Array({ minLength: 8, maxLength: 8 });
/** Counts and sizes: mostly small, sometimes anything a varint may hold. */
export const count = fc.oneof({ arbitrary: fc.nat(1000), weight: 3 }, { arbitrary: fc.maxSafeNat(), weight: 1 });

export const rangeArb: fc.Arbitrary<IdRange> = fc
  .integer({ min: 0, max: MAX_RANGE_DEPTH })
  .chain((depth) => fc.array(fc.integer({ min: 0, max: 15 }), { minLength: depth, maxLength: depth }))
  .map((nibbles) => {
    const prefix = new Uint8Array(4);
    nibbles.forEach((n, i) => (prefix[i >> 1] = prefix[i >> 1]! | (i % 2 === 0 ? n << 4 : n)));
    return { depth: nibbles.length, prefix };
  });
export const sliceArb = rangeArb.filter((r) => r.depth > 0);

/** A table size the decoder accepts at `level`: a positive multiple of its cells per key, at most the level's size. */
function validCells(level: number): fc.Arbitrary<number> {
  const max = SKETCH_LEVELS[level]!;
  const round = (c: number) => (c < 64 ? Math.max(4, c - (c % 4)) : c - (c % 3) < 64 ? 60 : c - (c % 3));
  return fc.oneof({ arbitrary: fc.integer({ min: 1, max: Math.min(max, 72) }), weight: 4 }, { arbitrary: fc.integer({ min: 1, max }), weight: 1 }).map(round);
}

/** xorshift32: fills a big table from one seed, much faster than one arbitrary per cell. */
function filler(seed: number): () => number {
  let x = seed | 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

/** An IBLT of `cells` cells: keys added and removed (what honest peers send), or any cell contents. */
export function ibltArb(cells: number): fc.Arbitrary<Iblt> {
  const fromKeys = fc.array(fc.tuple(key16, fc.boolean()), { maxLength: 40 }).map((keys) => {
    const t = new Iblt(cells);
    for (const [k, add] of keys) t.update(k, add ? 1 : -1);
    return t;
  });
  const anyCells = fc.tuple(fc.integer(), fc.constantFrom(0, 1, 2, 3)).map(([seed, extremes]) => {
    const next = filler(seed);
    const t = new Iblt(cells);
    for (let c = 0; c < cells; c++) {
      const r = next();
      // counts of every magnitude, including the int32 extremes
      t.count[c] = extremes === 0 ? (r % 7) - 3 : extremes === 1 ? r | 0 : r % 2 === 0 ? 2 ** 31 - 1 : -(2 ** 31);
      t.hashSum[c] = next();
      for (let i = 0; i < IBLT_KEY_BYTES; i++) t.keySum[c * IBLT_KEY_BYTES + i] = next() & 0xff;
    }
    return t;
  });
  return fc.oneof(fromKeys, anyCells);
}

export const sketchArb: fc.Arbitrary<SyncFrame> = fc
  .record({ range: rangeArb, level: fc.integer({ min: 0, max: SKETCH_LEVELS.length - 1 }), size: count })
  .chain(({ range, level, size }) =>
    validCells(level).chain((cells) => ibltArb(cells).map((table): SyncFrame => ({ type: "sketch", range, level, size, table }))),
  );

export const frameArb: fc.Arbitrary<SyncFrame> = fc.oneof(
  fc.record({ type: fc.constant("have" as const), last: fc.boolean(), ids: fc.array(id32, { maxLength: 12 }) }),
  fc.record({ type: fc.constant("want" as const), ids: fc.array(id32, { maxLength: 12 }) }),
  fc.record({ type: fc.constant("envelope" as const), hops: count, copies: count, envelope: fc.uint8Array({ maxLength: 600 }) }),
  sketchArb,
  fc.record({ type: fc.constant("done" as const), range: rangeArb, level: fc.integer({ min: 0, max: SKETCH_LEVELS.length }) }),
  fc.record({ type: fc.constant("want16" as const), keys: fc.array(key16, { maxLength: 12 }) }),
  fc.record({ type: fc.constant("have16" as const), last: fc.boolean(), keys: fc.array(key16, { maxLength: 12 }) }),
  fc.record({
    type: fc.constant("probe" as const),
    entries: fc.array(fc.record({ key: key16, ephemeral: id32, tags: fc.array(key16, { maxLength: 5 }) }), { maxLength: 6 }),
  }),
  fc.record({ type: fc.constant("chat-state" as const), state: fc.constantFrom(...CHAT_STATES) }),
  fc.record({ type: fc.constant("since" as const), epoch: fc.uint8Array({ minLength: 8, maxLength: 8 }), yours: fc.uint8Array({ minLength: 8, maxLength: 8 }) }),
  fc.record({ type: fc.constant("mark" as const), echo: fc.boolean(), n: fc.nat() }),
  fc.record({
    type: fc.constant("not-mine16" as const),
    entries: fc.array(fc.record({ key: key16, check: fc.uint8Array({ minLength: 8, maxLength: 8 }) }), { maxLength: 12 }),
  }),
  fc.record({ type: fc.constant("want8" as const), keys: fc.array(key8, { maxLength: 12 }) }),
  fc.record({ type: fc.constant("have8" as const), last: fc.boolean(), keys: fc.array(key8, { maxLength: 12 }) }),
  fc.record({
    type: fc.constant("not-mine8" as const),
    entries: fc.array(fc.record({ key: key8, check: fc.uint8Array({ minLength: 8, maxLength: 8 }) }), { maxLength: 12 }),
  }),
  fc.record({
    type: fc.constant("crowd-change" as const),
    gone: fc.array(fc.uint8Array({ minLength: 4, maxLength: 4 }), { maxLength: 32 }),
    added: fc.array(fc.uint8Array({ minLength: 4, maxLength: 4 }), { maxLength: 32 }),
  }),
);

/** A frame as plain data (the table's typed arrays as arrays), for deep equality. */
export function plainFrame(f: SyncFrame): unknown {
  if (f.type !== "sketch") return f;
  const t = f.table;
  return { ...f, table: { cells: t.cells, count: [...t.count], keySum: Buffer.from(t.keySum).toString("hex"), hashSum: [...t.hashSum] } };
}

/** Bytes a decoded frame holds in its buffers (ids, envelope, table): what a frame can make us allocate. */
export function frameBytes(f: SyncFrame): number {
  switch (f.type) {
    case "have":
    case "want":
      return f.ids.reduce((n, id) => n + id.byteLength, 0);
    case "not-mine16":
    case "not-mine8":
      return f.entries.reduce((n, e) => n + e.key.byteLength + e.check.byteLength, 0);
    case "want16":
    case "have16":
    case "want8":
    case "have8":
      return f.keys.reduce((n, k) => n + k.byteLength, 0);
    case "probe":
      return f.entries.reduce((n, e) => n + e.key.byteLength + e.ephemeral.byteLength + e.tags.reduce((m, t) => m + t.byteLength, 0), 0);
    case "envelope":
      return f.envelope.byteLength;
    case "sketch":
      return f.table.count.byteLength + f.table.keySum.byteLength + f.table.hashSum.byteLength;
    case "done":
      return 0;
    case "pair-request":
      return f.request.byteLength;
    case "pair-grant":
      return f.grant.byteLength;
    case "chat-state":
      return 0;
    case "crowd":
      return f.salt.byteLength + f.hashes.reduce((n, h) => n + h.byteLength, 0);
    case "crowd-change":
      return [...f.gone, ...f.added].reduce((n, h) => n + h.byteLength, 0);
    case "since":
      return f.epoch.byteLength + f.yours.byteLength;
    case "mark":
      return 0;
  }
}
