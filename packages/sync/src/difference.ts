// How different two stores are, from a sketch that did not peel: so a contact asks for a sketch big
// enough at once (or lists ids, when that is cheaper), instead of climbing every level of the ladder.
import { IBLT_KEY_BYTES, SKETCH_LEVELS, type Iblt } from "@pigeon/model";

/** Bytes one sketch cell takes on the wire (count varint ~1, key sum, check hash). */
const CELL_BYTES = 1 + IBLT_KEY_BYTES + 4;
/** Bytes one id takes in a listing (Have16: its 16-byte prefix). */
const ID_BYTES = IBLT_KEY_BYTES;
/** A sketch is asked to hold this many times the estimated difference: it peels reliably well below its size. */
const HEADROOM = 2;

/**
 * The number of ids two sets differ by, estimated from the difference of their sketches before
 * peeling: each id lands in one cell of each of the table's partitions, so the share of cells still
 * empty tells how many there are. A table with no empty cell says only "at least about its size".
 */
export function estimateDifference(delta: Iblt): number {
  let busy = 0;
  for (let c = 0; c < delta.cells; c++) {
    if (delta.count[c] !== 0 || delta.hashSum[c] !== 0) {
      busy++;
      continue;
    }
    const k = delta.keySum.subarray(c * IBLT_KEY_BYTES, (c + 1) * IBLT_KEY_BYTES);
    if (k.some((b) => b !== 0)) busy++;
  }
  if (busy === 0) return 0;
  if (busy >= delta.cells) return delta.cells;
  const part = delta.cells / delta.hashes;
  return Math.log(1 - busy / delta.cells) / Math.log(1 - 1 / part);
}

/**
 * What to do after the sketch at `level` did not peel: the smallest larger level that should hold
 * `estimate` differences, or "list" when both sides listing their ids costs less than that sketch
 * (small stores), or "climb" (the next level: the estimate says nothing fits; the ladder goes on to
 * slices as before). `sizes`: both sets' sizes (the peer's as it claims).
 */
export function nextStep(level: number, estimate: number, sizes: number): { level: number } | "list" | "climb" {
  const listing = ID_BYTES * sizes;
  for (let l = level + 1; l < SKETCH_LEVELS.length; l++) {
    const cells = SKETCH_LEVELS[l]!;
    if (cells * CELL_BYTES > listing) return "list";
    if (cells >= HEADROOM * estimate) return { level: l };
  }
  return listing < SKETCH_LEVELS[SKETCH_LEVELS.length - 1]! * CELL_BYTES ? "list" : "climb";
}
