// Shared settings for the fuzz properties (test/fuzz/*.test.ts): one seed, a number of runs, a guard
// against hangs, and byte mutations of valid encodings.
//
//   PIGEON_FUZZ_SEED=1234   replay a failure (every failure prints the seed it ran with)
//   PIGEON_FUZZ_RUNS=20000  runs of the cheapest properties (default 500; `npm run fuzz` = 20000);
//                           expensive ones (signing, a real mailbox) run a fixed fraction of it
//
// A decoder that hangs cannot be interrupted by the test runner (it never yields), so each synchronous
// property runs under a node:vm timeout, which stops even an endless loop, and says what input it
// was working on. Each call is also timed: anything slower than PER_CALL_MS fails (and shrinks).
import fc from "fast-check";
import vm from "node:vm";

export { fc };

export const DEFAULT_RUNS = 500;

function envInt(name: string): number | undefined {
  const v = process.env[name];
  if (v === undefined || v.trim() === "") return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new Error(`${name} must be an integer, got ${JSON.stringify(v)}`);
  return n;
}

/** The seed of every property in this process: given, or a fresh one (printed on failure). */
export const SEED = envInt("PIGEON_FUZZ_SEED") ?? (Date.now() ^ Math.floor(Math.random() * 0x1_0000_0000)) | 0;
export const BASE_RUNS = Math.max(1, envInt("PIGEON_FUZZ_RUNS") ?? DEFAULT_RUNS);
/** How much longer than the default this run is (1 in `npm test`). */
export const SCALE = Math.max(1, BASE_RUNS / DEFAULT_RUNS);

/** No single decoder call on inputs of a few hundred KB may take this long (generous: 2 shared cores). */
export const PER_CALL_MS = 2_000;
/** A whole property may not take longer than this; past it, it is a hang. */
export const PROPERTY_MS = Math.min(60 * 60_000, 90_000 * SCALE);
/** For `it(name, fn, TEST_TIMEOUT)`: above PROPERTY_MS, so the guard speaks first. */
export const TEST_TIMEOUT = PROPERTY_MS + 30_000;

/** Number of runs for a property that costs `weight` times a cheap one (e.g. 1/10 for signing). */
export function runs(weight = 1): number {
  return Math.max(5, Math.round(BASE_RUNS * weight));
}

let current: unknown;
/** Remembers the input a property is working on, so a hang can say what it was. */
export function note<T>(input: T): T {
  current = input;
  return input;
}

function show(x: unknown): string {
  if (x instanceof Uint8Array) return `${x.length} bytes: ${Buffer.from(x).toString("hex").slice(0, 400)}`;
  if (typeof x === "string") return JSON.stringify(x.length > 400 ? x.slice(0, 400) + "…" : x);
  try {
    return fc.stringify(x).slice(0, 600);
  } catch {
    return String(x);
  }
}

function replayHint(runCount: number): string {
  return `replay: PIGEON_FUZZ_SEED=${SEED} PIGEON_FUZZ_RUNS=${BASE_RUNS} npx vitest run test/fuzz (this property: ${runCount} runs)`;
}

const guardContext = vm.createContext({ job: undefined as (() => void) | undefined });
const guardScript = new vm.Script("job()");

/** Runs a synchronous property with the seed, the runs and the hang guard. */
export function check<Ts extends [unknown, ...unknown[]]>(property: fc.IProperty<Ts>, weight = 1): void {
  const numRuns = runs(weight);
  current = undefined;
  guardContext.job = () => fc.assert(property, { seed: SEED, numRuns });
  try {
    guardScript.runInContext(guardContext, { timeout: PROPERTY_MS });
  } catch (e) {
    if ((e as { code?: string }).code === "ERR_SCRIPT_EXECUTION_TIMEOUT")
      throw new Error(`property still running after ${PROPERTY_MS} ms (a hang?) on input ${show(current)}\n${replayHint(numRuns)}`);
    throw withSeed(e, numRuns);
  } finally {
    guardContext.job = undefined;
  }
}

/** Runs an asynchronous property (real storage) with the seed and the runs. */
export async function checkAsync<Ts extends [unknown, ...unknown[]]>(property: fc.IAsyncProperty<Ts>, weight = 1): Promise<void> {
  const numRuns = runs(weight);
  try {
    await fc.assert(property, { seed: SEED, numRuns });
  } catch (e) {
    throw withSeed(e, numRuns);
  }
}

function withSeed(e: unknown, numRuns: number): Error {
  const err = e instanceof Error ? e : new Error(String(e));
  err.message = `${err.message}\n${replayHint(numRuns)}`;
  return err;
}

/** Calls `f` and fails if it took longer than PER_CALL_MS (a blow-up that is not yet a hang). */
export function timed<T>(what: string, f: () => T): T {
  const t = performance.now();
  try {
    return f();
  } finally {
    const ms = performance.now() - t;
    if (ms > PER_CALL_MS) throw new Error(`${what} took ${Math.round(ms)} ms (limit ${PER_CALL_MS})`);
  }
}

/** What a decoder did with one input: returned a value, or threw. */
export type Outcome<T> = { ok: true; value: T } | { ok: false; error: unknown };

export function attempt<T>(what: string, f: () => T): Outcome<T> {
  let out: Outcome<T> | undefined;
  timed(what, () => {
    try {
      out = { ok: true, value: f() };
    } catch (error) {
      out = { ok: false, error };
    }
  });
  return out!;
}

/** Fails unless `error` is one of the documented error classes; says what it was instead. */
export function expectOnly(error: unknown, ...classes: (abstract new (...args: never[]) => Error)[]): void {
  if (classes.some((c) => error instanceof c)) return;
  const e = error as Error;
  throw new Error(`undocumented exception ${e?.name ?? typeof e}: ${e?.message ?? String(e)}\n${e?.stack ?? ""}`);
}

// ---- byte mutations of valid encodings ----

/** Length claims a hostile peer likes: around the frame limits, 2^31, 2^32, 2^53-1. */
export const HUGE_CLAIMS = [64, 65, 4096, 4097, 65_536, 262_144, 262_145, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 53 - 1];

export function varintBytes(v: number): Uint8Array {
  const out: number[] = [];
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return Uint8Array.from(out);
}

export type Mutation =
  | { kind: "flip"; at: number; bit: number }
  | { kind: "set"; at: number; value: number }
  | { kind: "truncate"; at: number }
  | { kind: "insert"; at: number; bytes: Uint8Array }
  | { kind: "delete"; at: number; n: number }
  | { kind: "claim"; at: number; value: number; overwrite: boolean }
  | { kind: "duplicate"; from: number; n: number; at: number }
  | { kind: "append"; bytes: Uint8Array };

export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  { arbitrary: fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }), weight: 4 },
  { arbitrary: fc.record({ kind: fc.constant("set" as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }), weight: 3 },
  { arbitrary: fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant("insert" as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant("delete" as const), at: fc.nat(), n: fc.integer({ min: 1, max: 8 }) }), weight: 2 },
  {
    arbitrary: fc.record({ kind: fc.constant("claim" as const), at: fc.nat(), value: fc.constantFrom(...HUGE_CLAIMS), overwrite: fc.boolean() }),
    weight: 2,
  },
  { arbitrary: fc.record({ kind: fc.constant("duplicate" as const), from: fc.nat(), n: fc.integer({ min: 1, max: 64 }), at: fc.nat() }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant("append" as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }), weight: 1 },
);

export function applyMutation(b: Uint8Array, m: Mutation): Uint8Array {
  const pos = (at: number, extra = 0) => at % (b.length + extra);
  const cat = (...parts: Uint8Array[]) => Uint8Array.from(Buffer.concat(parts));
  switch (m.kind) {
    case "flip":
    case "set": {
      if (b.length === 0) return b;
      const out = Uint8Array.from(b);
      const i = pos(m.at);
      out[i] = m.kind === "flip" ? out[i]! ^ (1 << m.bit) : m.value;
      return out;
    }
    case "truncate":
      return b.slice(0, pos(m.at));
    case "insert": {
      const i = pos(m.at, 1);
      return cat(b.subarray(0, i), m.bytes, b.subarray(i));
    }
    case "delete": {
      if (b.length === 0) return b;
      const i = pos(m.at);
      return cat(b.subarray(0, i), b.subarray(i + m.n));
    }
    case "claim": {
      const i = pos(m.at, 1);
      const v = varintBytes(m.value);
      return cat(b.subarray(0, i), v, b.subarray(m.overwrite ? i + v.length : i));
    }
    case "duplicate": {
      if (b.length === 0) return b;
      const f = pos(m.from);
      const piece = b.slice(f, f + m.n);
      const i = pos(m.at, 1);
      return cat(b.subarray(0, i), piece, b.subarray(i));
    }
    case "append":
      return cat(b, m.bytes);
  }
}

export function mutate(b: Uint8Array, ms: readonly Mutation[]): Uint8Array {
  return ms.reduce(applyMutation, b);
}

export const mutationsArb = fc.array(mutationArb, { minLength: 1, maxLength: 4 });

/** Some valid encoding, mutated 1-4 times: the arbitrary most decoder properties start from. */
export function mutated(valid: fc.Arbitrary<Uint8Array>): fc.Arbitrary<{ original: Uint8Array; bytes: Uint8Array }> {
  return fc.tuple(valid, mutationsArb).map(([original, ms]) => ({ original, bytes: mutate(original, ms) }));
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}
