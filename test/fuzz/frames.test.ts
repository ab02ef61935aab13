// Sync frames (decodeFrame/encodeFrame, docs/protocol.md §2) from a peer that may send anything
// inside an authenticated link: a frame decodes to exactly what its bytes say, or DecodeError.
import { describe, expect, it } from "vitest";
import {
  DecodeError, decodeFrame, encodeFrame, MAX_IDS_PER_FRAME, MAX_PROBES_PER_FRAME, MAX_SLOTS, SKETCH_LEVELS, type SyncFrame,
} from "../../packages/model/src/index.js";
import { frameArb, frameBytes, plainFrame } from "./arbitraries.js";
import { attempt, check, expectOnly, fc, HUGE_CLAIMS, mutated, note, sameBytes, TEST_TIMEOUT, varintBytes } from "./fuzz.js";

/**
 * The decoder's contract for any input: it throws DecodeError, or it returns a frame that encodes to
 * exactly the input (one frame, one encoding: nothing read past, lost or normalised) and holds no more
 * than about twice the input in buffers (a length claim never allocates what the bytes do not carry).
 */
function decoderContract(bytes: Uint8Array): SyncFrame | undefined {
  note(bytes);
  const r = attempt("decodeFrame", () => decodeFrame(bytes));
  if (!r.ok) {
    expectOnly(r.error, DecodeError);
    return undefined;
  }
  const again = encodeFrame(r.value);
  if (!sameBytes(again, bytes))
    throw new Error(
      `decoded ${fc.stringify(plainFrame(r.value)).slice(0, 300)} re-encodes to ${Buffer.from(again).toString("hex").slice(0, 200)}`,
    );
  expect(frameBytes(r.value)).toBeLessThanOrEqual(2 * bytes.length + 64);
  return r.value;
}

/** The first byte of a frame is its type (1-17): arbitrary bytes behind a plausible type get further. */
const typedJunk = fc
  .tuple(fc.integer({ min: 0, max: 18 }), fc.uint8Array({ maxLength: 300 }))
  .map(([t, rest]) => Uint8Array.from([t, ...rest]));

describe("fuzz: sync frames", () => {
  it("every valid frame round-trips: decode(encode(f)) = f and encode(decode(b)) = b", () => {
    check(
      fc.property(frameArb, (f) => {
        const bytes = note(encodeFrame(f));
        const back = decodeFrame(bytes);
        expect(plainFrame(back)).toEqual(plainFrame(f));
        expect(sameBytes(encodeFrame(back), bytes)).toBe(true);
      }),
      1 / 2,
    );
  }, TEST_TIMEOUT);

  it("arbitrary bytes decode to a frame that re-encodes to them, or throw DecodeError", () => {
    check(fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }), typedJunk), (bytes) => void decoderContract(bytes)));
  }, TEST_TIMEOUT);

  it("mutated valid frames (bit flips, truncations, insertions, huge length claims) keep the same contract", () => {
    let decoded = 0;
    let runs = 0;
    check(
      fc.property(mutated(frameArb.map(encodeFrame)), ({ bytes }) => {
        runs++;
        if (decoderContract(bytes)) decoded++;
      }),
      1 / 2,
    );
    // not all damage is caught by the syntax: many mutants are frames too, and must re-encode exactly
    if (runs >= 100) expect(decoded, `${decoded} of ${runs} mutants decoded`).toBeGreaterThan(runs / 20);
  }, TEST_TIMEOUT);

  it("a count or length claiming up to 2^53-1 items is refused without allocating it", () => {
    // every field that says how many follow, for every frame type, with a few bytes behind it
    const heads = [
      [1, 1], // Have, flags, n
      [2], // Want, n
      [6], // Want16, n
      [14, 1], // Have16, flags, n
      [17], // NotMine16, n
      [19, 1], // Have8, flags, n
      [20], // Want8, n
      [21], // NotMine8, n
      [3, 0, 0], // Envelope, hops, copies, length
      [4, 3, 0], // Sketch level 3, size, cells
      [7, 8, 1, 2, 3, 4, 3, 0], // SliceSketch depth 8, prefix, level 3, size, cells
      [4], // Sketch, level
      [7], // SliceSketch, depth
      [5], // Done, level
    ];
    const before = process.memoryUsage().arrayBuffers;
    for (const head of heads)
      for (const claim of HUGE_CLAIMS)
        for (const tail of [0, 1, 40]) {
          const bytes = Uint8Array.from([...head, ...varintBytes(claim), ...new Uint8Array(tail).fill(7)]);
          const f = decoderContract(bytes);
          expect(f, Buffer.from(bytes).toString("hex")).toBeUndefined();
        }
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16 * 1024 * 1024);
  });

  it("accepts exactly the documented limits and refuses one past them", () => {
    const ids = Array.from({ length: MAX_IDS_PER_FRAME }, () => new Uint8Array(32));
    expect(decoderContract(encodeFrame({ type: "want", ids }))?.type).toBe("want");
    const over = encodeFrame({ type: "want", ids: ids.slice(1) });
    over.set(varintBytes(MAX_IDS_PER_FRAME), 1); // 4095 encodes in two bytes, like 4096
    expect(decoderContract(Uint8Array.from([...over, ...new Uint8Array(32)]))?.type).toBe("want");
    const past = Uint8Array.from([2, ...varintBytes(MAX_IDS_PER_FRAME + 1), ...new Uint8Array(32 * (MAX_IDS_PER_FRAME + 1))]);
    expect(decoderContract(past)).toBeUndefined();
    const keys = Array.from({ length: MAX_IDS_PER_FRAME }, () => new Uint8Array(16));
    expect(decoderContract(encodeFrame({ type: "have16", last: true, keys }))?.type).toBe("have16");
    expect(decoderContract(Uint8Array.from([14, 1, ...varintBytes(MAX_IDS_PER_FRAME + 1), ...new Uint8Array(16 * (MAX_IDS_PER_FRAME + 1))]))).toBeUndefined();
    const shortKeys = Array.from({ length: MAX_IDS_PER_FRAME }, () => new Uint8Array(8));
    expect(decoderContract(encodeFrame({ type: "have8", last: true, keys: shortKeys }))?.type).toBe("have8");
    expect(decoderContract(Uint8Array.from([19, 1, ...varintBytes(MAX_IDS_PER_FRAME + 1), ...new Uint8Array(8 * (MAX_IDS_PER_FRAME + 1))]))).toBeUndefined();
    const envelope = new Uint8Array(256 * 1024);
    expect(decoderContract(encodeFrame({ type: "envelope", hops: 0, copies: 0, envelope }))?.type).toBe("envelope");
    const bigger = Uint8Array.from([3, 0, 0, ...varintBytes(envelope.length + 1), ...envelope, 0]);
    expect(decoderContract(bigger)).toBeUndefined();
    expect(decoderContract(Uint8Array.from([5, SKETCH_LEVELS.length]))?.type).toBe("done");
    expect(decoderContract(Uint8Array.from([5, SKETCH_LEVELS.length + 1]))).toBeUndefined();
    // a Probe: at most MAX_PROBES_PER_FRAME entries of at most MAX_SLOTS tags
    const entry = { key: new Uint8Array(16), ephemeral: new Uint8Array(32), tags: Array.from({ length: MAX_SLOTS }, () => new Uint8Array(16)) };
    const probes = encodeFrame({ type: "probe", entries: Array.from({ length: MAX_PROBES_PER_FRAME }, () => entry) });
    expect(decoderContract(probes)?.type).toBe("probe");
    expect(decoderContract(Uint8Array.from([11, ...varintBytes(MAX_PROBES_PER_FRAME + 1), ...probes.subarray(3)]))).toBeUndefined();
    const tooManyTags = Uint8Array.from([11, 1, ...new Uint8Array(48), ...varintBytes(MAX_SLOTS + 1), ...new Uint8Array(16 * (MAX_SLOTS + 1))]);
    expect(decoderContract(tooManyTags)).toBeUndefined();
  });
});
