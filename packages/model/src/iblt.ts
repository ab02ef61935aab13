// Invertible Bloom lookup table over 16-byte keys (envelope id prefixes), for set reconciliation:
// subtract the peer's table from ours and "peel" it, and what is left is exactly the difference of
// the two sets, at a cost that grows with the difference, not with the sets (Eppstein et al. 2011,
// "What's the difference?"). Pure: no I/O.
//
// Encoding (docs/protocol.md): varint cells | cells x (zigzag varint count, raw16 keySum, u32le hashSum)
import { DecodeError, Reader, Writer } from "./bytes.js";

export const IBLT_KEY_BYTES = 16;
/**
 * Cells per key: 3, or 4 in tables under 64 cells. A small table fails to peel mostly when two keys
 * share all their cells; with 4 that is rarer (10 differences in the 36-cell first sketch: ~0.6 %
 * fail, against ~3.5 % for 3 cells per key in 33, simulated), while larger tables keep 3, which
 * peels the most keys per cell.
 */
export function cellsPerKey(cells: number): number {
  return cells < 64 ? 4 : 3;
}

/** FNV-1a over the key, then a murmur-style finaliser: the check hash must not be linear in the key. */
function checkHash(key: Uint8Array, off = 0): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < IBLT_KEY_BYTES; i++) h = Math.imul(h ^ key[off + i]!, 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

export class Iblt {
  readonly count: Int32Array;
  readonly keySum: Uint8Array;
  readonly hashSum: Uint32Array;

  /** Cells per key (see cellsPerKey). */
  readonly hashes: number;

  constructor(readonly cells: number) {
    this.hashes = cellsPerKey(cells);
    if (cells % this.hashes !== 0 || cells < this.hashes) throw new RangeError(`cells must be a positive multiple of ${this.hashes}`);
    this.count = new Int32Array(cells);
    this.keySum = new Uint8Array(cells * IBLT_KEY_BYTES);
    this.hashSum = new Uint32Array(cells);
  }

  /**
   * The cell of `key` in partition `p`. Keys are uniform hashes, so their bytes index directly; bytes
   * 4-15 are used, not 0-3, because a sketch of one slice of the id space (id-range.ts) has its
   * leading bytes all alike: 4 bytes per partition with 3 cells per key, 3 bytes with 4.
   */
  private cell(key: Uint8Array, p: number, off = 0): number {
    const part = this.cells / this.hashes;
    let v: number;
    if (this.hashes === 3) {
      const o = off + 4 + 4 * p;
      v = (key[o]! | (key[o + 1]! << 8) | (key[o + 2]! << 16) | (key[o + 3]! << 24)) >>> 0;
    } else {
      const o = off + 4 + 3 * p;
      v = key[o]! | (key[o + 1]! << 8) | (key[o + 2]! << 16);
    }
    return p * part + (v % part);
  }

  /** Adds (sign 1) or removes (sign -1) a key; `off` lets callers pass a longer id without copying. */
  update(key: Uint8Array, sign: 1 | -1, off = 0): void {
    const h = checkHash(key, off);
    for (let p = 0; p < this.hashes; p++) {
      const c = this.cell(key, p, off);
      this.count[c]! += sign;
      this.hashSum[c]! ^= h;
      const base = c * IBLT_KEY_BYTES;
      for (let i = 0; i < IBLT_KEY_BYTES; i++) this.keySum[base + i]! ^= key[off + i]!;
    }
  }

  clone(): Iblt {
    const t = new Iblt(this.cells);
    t.count.set(this.count);
    t.keySum.set(this.keySum);
    t.hashSum.set(this.hashSum);
    return t;
  }

  /** this - other (both must have the same size). */
  subtract(other: Iblt): Iblt {
    if (other.cells !== this.cells) throw new RangeError("tables of different sizes");
    const t = this.clone();
    for (let c = 0; c < this.cells; c++) {
      t.count[c]! -= other.count[c]!;
      t.hashSum[c]! ^= other.hashSum[c]!;
    }
    for (let i = 0; i < t.keySum.length; i++) t.keySum[i]! ^= other.keySum[i]!;
    return t;
  }

  /**
   * Peels a difference table. `ours` are keys only in the minuend, `theirs` only in the subtrahend.
   * `complete` is false when the table was too small for the difference (ask for a bigger one).
   */
  decode(): { complete: boolean; ours: Uint8Array[]; theirs: Uint8Array[] } {
    const t = this.clone();
    const ours: Uint8Array[] = [];
    const theirs: Uint8Array[] = [];
    const queue: number[] = [];
    const pure = (c: number) => {
      const n = t.count[c]!;
      return (n === 1 || n === -1) && checkHash(t.keySum, c * IBLT_KEY_BYTES) === t.hashSum[c];
    };
    for (let c = 0; c < t.cells; c++) if (pure(c)) queue.push(c);
    let guard = 0;
    while (queue.length) {
      const c = queue.pop()!;
      if (!pure(c)) continue;
      if (++guard > t.cells * 4) break;
      const key = t.keySum.slice(c * IBLT_KEY_BYTES, (c + 1) * IBLT_KEY_BYTES);
      const sign = t.count[c] as 1 | -1;
      (sign === 1 ? ours : theirs).push(key);
      t.update(key, sign === 1 ? -1 : 1);
      for (let p = 0; p < this.hashes; p++) {
        const d = t.cell(key, p);
        if (pure(d)) queue.push(d);
      }
    }
    let complete = true;
    for (let c = 0; c < t.cells && complete; c++) if (t.count[c] !== 0 || t.hashSum[c] !== 0) complete = false;
    if (complete) for (let i = 0; i < t.keySum.length; i++) if (t.keySum[i] !== 0) { complete = false; break; }
    return { complete, ours, theirs };
  }

  encode(w: Writer = new Writer()): Writer {
    w.varint(this.cells);
    const u32 = new Uint8Array(4);
    for (let c = 0; c < this.cells; c++) {
      const n = this.count[c]!;
      w.varint(n >= 0 ? n * 2 : -n * 2 - 1);
      w.raw(this.keySum.subarray(c * IBLT_KEY_BYTES, (c + 1) * IBLT_KEY_BYTES));
      const h = this.hashSum[c]!;
      u32[0] = h & 0xff;
      u32[1] = (h >>> 8) & 0xff;
      u32[2] = (h >>> 16) & 0xff;
      u32[3] = (h >>> 24) & 0xff;
      w.raw(u32);
    }
    return w;
  }

  static decodeFrom(r: Reader, maxCells: number): Iblt {
    const cells = r.varint();
    if (cells > maxCells || cells === 0 || cells % cellsPerKey(cells) !== 0) throw new DecodeError(`bad table size ${cells}`);
    const t = new Iblt(cells);
    for (let c = 0; c < cells; c++) {
      const z = r.varint();
      // zigzag of an int32: anything larger would wrap silently in the Int32Array
      if (z > 0xffffffff) throw new DecodeError(`cell count out of range (zigzag ${z})`);
      t.count[c] = z % 2 === 0 ? z / 2 : -(z + 1) / 2;
      t.keySum.set(r.raw(IBLT_KEY_BYTES), c * IBLT_KEY_BYTES);
      const b = r.raw(4);
      t.hashSum[c] = (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;
    }
    return t;
  }
}

/**
 * Table sizes tried in turn, each about 8x the last: a contact pays about 1.5-3x its difference. The
 * largest (~390 KB) still fits a 1 MiB link frame; a difference beyond it (~13,000 keys) is split
 * into 16 slices of the id space, each sketched again from SPLIT_LEVEL (id-range.ts).
 */
export const SKETCH_LEVELS = [36, 264, 2112, 16896] as const;

/** The level a slice's first sketch uses: its parent failed at the largest level, so smaller ones would too. */
export const SPLIT_LEVEL = 2;
