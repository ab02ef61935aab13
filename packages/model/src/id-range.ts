// A slice of the envelope-id space, named by its first `depth` hex digits (nibbles). Reconciliation
// splits a difference too large for one sketch into 16 such slices, recursively, so each slice's
// difference fits a sketch. Ids are hashes, so every slice at one depth holds about the same share.
// Slices never go deeper than the 4 leading id bytes, which is why the IBLT's cells are chosen from
// id bytes 4-15 (iblt.ts): inside a slice the leading bytes are all alike. Pure: no I/O.
import { DecodeError, Reader, Writer } from "./bytes.js";

/** Deepest slice: 8 nibbles = the first 4 id bytes, 16^8 slices. */
export const MAX_RANGE_DEPTH = 8;

export interface IdRange {
  /** Leading nibbles fixed: 0 = the whole id space. */
  readonly depth: number;
  /** The fixed nibbles, high nibble first, in 4 bytes (nibbles past `depth` are 0). */
  readonly prefix: Uint8Array;
}

export const WHOLE_RANGE: IdRange = { depth: 0, prefix: new Uint8Array(4) };

function nibble(bytes: Uint8Array, i: number): number {
  const b = bytes[i >> 1]!;
  return i % 2 === 0 ? b >> 4 : b & 15;
}

/** The 16 slices that split `r` by its next nibble. */
export function rangeChildren(r: IdRange): IdRange[] {
  if (r.depth >= MAX_RANGE_DEPTH) throw new RangeError("range cannot be split further");
  const out: IdRange[] = [];
  for (let n = 0; n < 16; n++) {
    const prefix = Uint8Array.from(r.prefix);
    const i = r.depth >> 1;
    prefix[i] = r.depth % 2 === 0 ? (n << 4) | (prefix[i]! & 15) : (prefix[i]! & 0xf0) | n;
    out.push({ depth: r.depth + 1, prefix });
  }
  return out;
}

/** Whether the id (or 16-byte key) lies in the slice. */
export function inRange(r: IdRange, id: Uint8Array): boolean {
  for (let i = 0; i < r.depth; i++) if (nibble(id, i) !== nibble(r.prefix, i)) return false;
  return true;
}

/** Smallest and largest 32-byte ids in the slice (both inclusive), for an indexed range scan. */
export function rangeBounds(r: IdRange): { lo: Uint8Array; hi: Uint8Array } {
  const lo = new Uint8Array(32);
  const hi = new Uint8Array(32).fill(0xff);
  for (let i = 0; i < r.depth; i++) {
    const n = nibble(r.prefix, i);
    const j = i >> 1;
    if (i % 2 === 0) {
      lo[j] = n << 4;
      hi[j] = (n << 4) | 15;
    } else {
      lo[j] = lo[j]! | n;
      hi[j] = (hi[j]! & 0xf0) | n;
    }
  }
  return { lo, hi };
}

/** The slice's share of the id space in units of 16^-8, so shares of settled slices add up exactly. */
export function rangeWeight(r: IdRange): number {
  return 16 ** (MAX_RANGE_DEPTH - r.depth);
}

export const WHOLE_WEIGHT = 16 ** MAX_RANGE_DEPTH;

/** Map key for a slice. */
export function rangeKey(r: IdRange): string {
  let s = `${r.depth}:`;
  for (let i = 0; i < r.depth; i++) s += nibble(r.prefix, i).toString(16);
  return s;
}

/** Encoding (docs/protocol.md): varint depth | ceil(depth/2) bytes of nibbles, high nibble first. */
export function writeRange(w: Writer, r: IdRange): void {
  w.varint(r.depth);
  w.raw(r.prefix.subarray(0, Math.ceil(r.depth / 2)));
}

export function readRange(r: Reader): IdRange {
  const depth = r.varint();
  if (depth > MAX_RANGE_DEPTH) throw new DecodeError(`range depth ${depth} beyond ${MAX_RANGE_DEPTH}`);
  const prefix = new Uint8Array(4);
  prefix.set(r.raw(Math.ceil(depth / 2)));
  // the unused low nibble of an odd-depth prefix must be 0, so one slice has one encoding
  if (depth % 2 === 1 && (prefix[depth >> 1]! & 15) !== 0) throw new DecodeError("range prefix has stray bits");
  return { depth, prefix };
}
