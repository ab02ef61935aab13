// A small, bounded run of the trace benchmark (bench/trace): 20 messages over the first hour of
// the primary-school trace through Pigeon's real Mailbox and SyncEngine, checked against the oracle.
// The full benchmark is `npm run bench:trace` (docs/benchmarks.md).
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
// @ts-expect-error plain ESM JavaScript with JSDoc types, outside the TypeScript projects
import { loadTrace, makeMessages, oracle, direct, epidemic, summarize, classGroups, makePosts, postPairs } from "../bench/trace/trace.mjs";
// @ts-expect-error see above
import { runPigeon } from "../bench/trace/pigeon.mjs";
// @ts-expect-error see above
import { parseArgs, DEFAULT_TRACE } from "../bench/trace/run.mjs";

type Msg = { n: number; src: number; dst: number; t0: number };
type Fate = { at?: number; transmissions: number };
type Arrival = { at: number; count: number };

const LIFETIME = 24 * 3600;

/** The first two hours of the primary-school trace, among the people of these classes (people.tsv). */
function firstHoursOf(classes: string[]) {
  const people = readFileSync(join(dirname(DEFAULT_TRACE), "people.tsv"), "utf8")
    .split("\n")
    .map((l) => l.split(/\s+/))
    .filter((f) => classes.includes(f[1]!))
    .map((f) => f[0]!);
  const whole = loadTrace(DEFAULT_TRACE);
  return { whole, trace: loadTrace(DEFAULT_TRACE, { to: whole.first + 2 * 3600, nodes: new Set(people) }) };
}

describe.skipIf(!existsSync(DEFAULT_TRACE))("trace benchmark on the primary-school trace", () => {
  it("Pigeon never beats the oracle, delivers each message once, and without limits matches it exactly", { timeout: 180_000 }, async () => {
    const { whole, trace } = firstHoursOf(["1A", "1B", "2A"]);
    const msgs: Msg[] = makeMessages(trace, 20, 7, whole.first + 3600);
    const best: Fate[] = oracle(trace, msgs, LIFETIME);
    const opts = { bandwidth: 5_000_000, storage: 50 * 1024 * 1024, lifetime: LIFETIME, bodyChars: 160 };

    // the real policy (engine defaults)
    const pigeon = await runPigeon(trace, msgs, opts);
    const arrivals: Arrival[] = pigeon.arrivals;
    let delivered = 0;
    arrivals.forEach((a, k) => {
      expect(a.count, `message #${msgs[k]!.n} shown more than once`).toBeLessThanOrEqual(1);
      if (a.count === 0) return;
      delivered++;
      const o = best[k]!;
      expect(o.at, `message #${msgs[k]!.n} delivered but the oracle could not`).toBeDefined();
      expect(a.at).toBeGreaterThanOrEqual(o.at!);
    });
    expect(delivered).toBeGreaterThan(0);
    expect(delivered).toBeLessThanOrEqual(summarize(best, msgs).delivered);
    expect(pigeon.tx.message).toBeGreaterThanOrEqual(delivered);

    // with no hop or copy limit and ample bandwidth, Pigeon floods: exactly the oracle's deliveries and times
    const flood = await runPigeon(trace, msgs, { ...opts, hopLimit: 1000, copies: Infinity });
    expect(flood.arrivals.map((a: Arrival) => (a.count ? a.at : undefined))).toEqual(best.map((f) => f.at));

    // the baselines agree with each other: epidemic reaches what the oracle reaches; direct never sooner
    const ep: Fate[] = epidemic(trace, msgs, LIFETIME, () => 600).fates;
    expect(ep.map((f) => f.at)).toEqual(best.map((f) => f.at));
    // what the flood spent before each arrival: at least the journey's hops, at most all it spent
    ep.forEach((f, k) => {
      if (f.at === undefined) return expect(f.untilDelivered).toBeUndefined();
      expect(f.untilDelivered).toBeGreaterThanOrEqual(best[k]!.hops!);
      expect(f.untilDelivered).toBeLessThanOrEqual(f.transmissions);
    });
    expect(ep.some((f) => f.at !== undefined && f.untilDelivered! < f.transmissions), "the flood goes on after delivery").toBe(true);
    (direct(trace, msgs, LIFETIME) as Fate[]).forEach((f, k) => {
      if (f.at !== undefined) expect(f.at).toBeGreaterThanOrEqual(best[k]!.at!);
    });
  });
});

describe.skipIf(!existsSync(DEFAULT_TRACE))("trace benchmark with class channels (issue 15)", () => {
  it("delivers each post once to every other member of its class, never before the oracle, and to nobody else", { timeout: 240_000 }, async () => {
    const { whole, trace } = firstHoursOf(["1A", "1B", "Teachers"]);
    const groups: { title: string; owner: number; members: number[] }[] = classGroups(trace, join(dirname(DEFAULT_TRACE), "people.tsv"));
    // the two classes, each owned by one of its people or a teacher; the teachers are no class
    expect(groups.map((g) => g.title)).toEqual(["1A", "1B"]);
    const posts = makePosts(trace, groups, 6, 3, whole.first + 3600);
    const pairs: (Msg & { post: number })[] = postPairs(posts, groups);
    const best: Fate[] = oracle(trace, pairs, LIFETIME);
    // the mailbox throws if a post shows at anyone but the other members of its class
    const run = await runPigeon(trace, pairs, { bandwidth: 5_000_000, storage: 50 * 1024 * 1024, lifetime: LIFETIME, bodyChars: 160, classes: { groups, posts } });
    let delivered = 0;
    (run.arrivals as Arrival[]).forEach((a, k) => {
      expect(a.count, `post #${pairs[k]!.post} shown twice to one member`).toBeLessThanOrEqual(1);
      if (!a.count) return;
      delivered++;
      expect(best[k]!.at, `post #${pairs[k]!.post} reached a member the oracle could not reach`).toBeDefined();
      expect(a.at).toBeGreaterThanOrEqual(best[k]!.at!);
    });
    // in two hours of one school morning a class meets: nearly every member gets every post
    expect(delivered).toBeGreaterThan(pairs.length / 2);
    expect(delivered).toBeGreaterThanOrEqual(0.9 * summarize(best, pairs).delivered);
    // one envelope per post for the whole class, not one per member
    expect(run.tx.message).toBeLessThan(pairs.length * 2);
  });
});

describe("trace benchmark command line", () => {
  it("reads durations, byte counts and lists, and refuses bad input clearly", () => {
    const o = parseArgs(["--lifetime", "6h", "--bandwidth", "250k", "--storage=1Mi", "--hop-limit", "2,4", "--window", "0-2h"]);
    expect([o.lifetime, o.bandwidth, o.storage, o.hopLimits, o.window]).toEqual([21600, 250_000, 1048576, [2, 4], [0, 7200]]);
    expect(() => parseArgs(["--messages", "many"])).toThrow(/--messages: expected a whole number/);
    expect(() => parseArgs(["--lifetime", "1 week"])).toThrow(/duration/);
    expect(() => parseArgs(["--window", "2h-1h"])).toThrow(/end must be after the start/);
    expect(() => parseArgs(["--frobnicate"])).toThrow(/unknown option/);
    expect(() => parseArgs(["--seed"])).toThrow(/needs a value/);
    // "inf": Pigeon's own code as an epidemic (the flood above), from the command line
    expect(parseArgs(["--copies", "64,inf"]).copiesList).toEqual([64, Infinity]);
    expect(() => parseArgs(["--copies", "lots"])).toThrow(/--copies: expected a whole number of at least 1 or "inf"/);
  });
});
