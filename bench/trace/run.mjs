#!/usr/bin/env node
// @ts-check
// Trace benchmark: replays a contact trace through Pigeon's real sync and routing code and compares it
// with the oracle bound, direct delivery and unlimited epidemic on the same messages. See --help and
// docs/benchmarks.md ("Trace benchmark").
import { fileURLToPath } from "node:url";
import { resolve, dirname } from "node:path";
import { loadTrace, traceIds, rng, makeMessages, oracle, direct, epidemic, summarize, classGroups, makePosts, postPairs } from "./trace.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(here, "../..");
export const DEFAULT_TRACE = resolve(REPO, "../shared/data/traces/primary-school/contacts.tsv");
/** The traces `--all` runs, one after the other with the same options (issue 17). */
export const ALL_TRACES = ["primary-school", "thiers12", "InVS15"].map((t) => resolve(REPO, `../shared/data/traces/${t}/contacts.tsv`));

const HELP = `npm run bench:trace -- [options]      (or: node bench/trace/run.mjs [options] after "npm run build")

Replays a contact trace ("t i j" per line: time in seconds, two person ids; one line per contact per
20-second slot) through Pigeon's own Mailbox and SyncEngine: one node per person, each with its own
SQLite store in a temporary directory (under /dev/shm when it exists), in-memory links, virtual time.
The same seeded messages also go through three baselines computed by a small separate simulation:
the oracle (foremost journey over the same contacts, multi-hop within a slot), direct delivery, and
unlimited epidemic. Prints one markdown table, then for each Pigeon row the envelope frames that moved
and the bytes on links by frame type (Envelope, Sketch, Have8, Want8, Probe, ...) and how many of them
were in meetings of two laptops that had met before; progress goes to stderr.

Options:
  --trace PATH          contact trace (default: ../shared/data/traces/primary-school/contacts.tsv
                        beside the repository)
  --messages N          messages between random pairs of people, created at random contact times
                        (uniform over the time slots that have contacts) in the first half of the
                        window (default 100; the goal in issue 5 is stated for 400)
  --lifetime DUR        message lifetime, e.g. 3600, 90m, 6h, 1d (default 24h). A message counts as
                        delivered only if it arrives within its lifetime after creation.
  --seed S              seed for the messages (and for --nodes) (default 1)
  --window START-END    part of the trace to replay, as offsets from its first contact, e.g. 0-2h
                        or 0-1d; plain numbers are seconds (default: the whole trace)
  --nodes N             replay only N people drawn at random (seeded), and their contacts among
                        themselves (default: everyone)
  --bandwidth BYTES     bytes per contact slot, both directions together (default 5000000, i.e.
                        250 kB/s for 20 s); suffixes k, M (decimal) accepted
  --storage BYTES       carrier storage per node (Mailbox carrier.quotaBytes) (default 52428800);
                        suffixes k, M, Ki, Mi accepted
  --hop-limit N[,N...]  SyncEngine hopLimit (default: the engine's default). A list runs one Pigeon
                        row per value (same messages)
  --copies N[,N...]     SyncEngine copies: spray-and-wait tokens per message (default: the engine's
                        default); a list as above. "inf" hands every peer a copy (Pigeon's own code
                        as an epidemic: what its links and stores deliver with no spray limit)
  --body-chars N        length of each message body (default 160)
  --classes             class channels (issue 15): every class of the people.tsv beside the trace is
                        a channel, owned by whoever of the class and its teachers met the class most;
                        the channels are started before the replay (the class together once, not
                        counted); --messages posts go to a random class from a random member, and
                        delivery, latency and the baselines count each post once per other member
  --all                 every shared trace in turn (primary-school, thiers12, InVS15 under
                        ../shared/data/traces), the same options for each, and one table with a row
                        per trace against the goals of issue 17 (not with --trace)
  --no-pigeon           baselines only (seconds instead of minutes)
  --json                also print every figure as JSON on stdout, after the table
  -h, --help            this text

Definitions follow the ONE simulator's MessageStatsReport: delivery = delivered / created;
relayed = completed transfers of message copies (the final one included); transmissions per delivered
message = relayed / delivered; overhead_ratio = (relayed - delivered) / delivered; latency = creation to
first delivery over delivered messages; median = sorted[n/2], p90 = sorted[floor(0.9 n)].`;

class UsageError extends Error {}

/** @param {string} s @param {string} flag */
function duration(s, flag) {
  const m = /^(\d+(?:\.\d+)?)(s|m|h|d)?$/.exec(s.trim());
  if (!m) throw new UsageError(`${flag}: expected a duration like 3600, 90m, 6h or 1d, got ${JSON.stringify(s)}`);
  const unit = /** @type {"s" | "m" | "h" | "d"} */ (m[2] ?? "s");
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[unit];
}

/** @param {string} s @param {string} flag */
function bytes(s, flag) {
  const m = /^(\d+(?:\.\d+)?)(k|K|M|Ki|Mi)?B?$/.exec(s.trim());
  if (!m) throw new UsageError(`${flag}: expected a byte count like 5000000, 250k, 5M or 50Mi, got ${JSON.stringify(s)}`);
  const unit = /** @type {"" | "k" | "K" | "M" | "Ki" | "Mi"} */ (m[2] ?? "");
  const v = Math.floor(Number(m[1]) * { "": 1, k: 1e3, K: 1e3, M: 1e6, Ki: 1024, Mi: 1048576 }[unit]);
  if (v <= 0) throw new UsageError(`${flag} must be positive`);
  return v;
}

/** @param {string} s @param {string} flag @param {number} min */
function int(s, flag, min) {
  if (!/^\d+$/.test(s.trim()) || Number(s) < min) throw new UsageError(`${flag}: expected a whole number of at least ${min}, got ${JSON.stringify(s)}`);
  return Number(s);
}

/** @param {string} msg @returns {never} */
function usage(msg) {
  throw new UsageError(msg);
}

/** @param {string[]} argv */
export function parseArgs(argv) {
  /** @type {{ trace: string, messages: number, lifetime: number, seed: number, window?: [number, number], nodes?: number,
   *   bandwidth: number, storage: number, hopLimits: (number|undefined)[], copiesList: (number|undefined)[], bodyChars: number,
   *   pigeon: boolean, json: boolean, help: boolean, all: boolean, classes: boolean }} */
  const o = {
    trace: DEFAULT_TRACE, messages: 100, lifetime: 86400, seed: 1, bandwidth: 5_000_000, storage: 50 * 1024 * 1024,
    hopLimits: [undefined], copiesList: [undefined], bodyChars: 160, pigeon: true, json: false, help: false, all: false, classes: false,
  };
  let traceGiven = false;
  for (let i = 0; i < argv.length; i++) {
    const a = /** @type {string} */ (argv[i]);
    const [flag, inline] = a.startsWith("--") && a.includes("=") ? [a.slice(0, a.indexOf("=")), a.slice(a.indexOf("=") + 1)] : [a, undefined];
    const val = () => {
      if (inline !== undefined) return inline;
      const v = argv[++i];
      if (v === undefined || v.startsWith("--")) throw new UsageError(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case "-h": case "--help": o.help = true; break;
      case "--trace": o.trace = resolve(val()); traceGiven = true; break;
      case "--all": o.all = true; break;
      case "--messages": o.messages = int(val(), flag, 1); break;
      case "--lifetime": o.lifetime = duration(val(), flag); if (o.lifetime <= 0) throw new UsageError("--lifetime must be positive"); break;
      case "--seed": o.seed = int(val(), flag, 0); break;
      case "--window": {
        const v = val();
        const m = /^([^-]+)-([^-]+)$/.exec(v);
        if (!m) throw new UsageError(`--window: expected START-END like 0-2h, got ${JSON.stringify(v)}`);
        const w = /** @type {[number, number]} */ ([duration(/** @type {string} */ (m[1]), flag), duration(/** @type {string} */ (m[2]), flag)]);
        if (w[1] <= w[0]) throw new UsageError(`--window: the end must be after the start`);
        o.window = w;
        break;
      }
      case "--nodes": o.nodes = int(val(), flag, 2); break;
      case "--bandwidth": o.bandwidth = bytes(val(), flag); break;
      case "--storage": o.storage = bytes(val(), flag); break;
      case "--hop-limit": o.hopLimits = val().split(",").map((x) => int(x, flag, 1)); break;
      case "--copies": o.copiesList = val().split(",").map((x) => (x === "inf" ? Infinity : /^\d+$/.test(x.trim()) ? int(x, flag, 1) : usage(`${flag}: expected a whole number of at least 1 or "inf", got ${JSON.stringify(x)}`))); break;
      case "--body-chars": o.bodyChars = int(val(), flag, 8); break;
      case "--no-pigeon": o.pigeon = false; break;
      case "--classes": o.classes = true; break;
      case "--json": o.json = true; break;
      default: throw new UsageError(`unknown option ${JSON.stringify(a)} (see --help)`);
    }
  }
  if (o.all && traceGiven) throw new UsageError("--all runs every shared trace: leave out --trace");
  return o;
}

const pct = (/** @type {number} */ x) => (Number.isFinite(x) ? `${(100 * x).toFixed(1)} %` : "—");
const mins = (/** @type {number} */ s) => (Number.isFinite(s) ? `${(s / 60).toFixed(0)} min` : "—");
const num = (/** @type {number} */ x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : "—");
const ratio = (/** @type {number} */ a, /** @type {number} */ b) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}x` : "—");
const kb = (/** @type {number | undefined} */ b) => (b === undefined ? "—" : b >= 1e6 ? `${(b / 1e6).toFixed(2)} MB` : `${(b / 1e3).toFixed(1)} kB`);

/**
 * Runs the whole benchmark. Returns every figure; `log` gets progress lines.
 * @param {ReturnType<typeof parseArgs>} o @param {(s: string) => void} log
 */
export async function bench(o, log) {
  const t0 = Date.now();
  /** @type {Set<string> | undefined} */
  let nodes;
  if (o.nodes !== undefined) {
    const all = traceIds(o.trace).sort();
    if (o.nodes > all.length) throw new UsageError(`--nodes ${o.nodes}: the trace has only ${all.length} people`);
    const r = rng(o.seed ^ 0x5eed);
    for (let i = all.length - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [all[i], all[j]] = [/** @type {string} */ (all[j]), /** @type {string} */ (all[i])];
    }
    nodes = new Set(all.slice(0, o.nodes));
  }
  const whole = loadTrace(o.trace);
  const from = o.window ? whole.first + o.window[0] : whole.first;
  const to = o.window ? whole.first + o.window[1] : whole.last;
  const trace = loadTrace(o.trace, { from, to, nodes });
  const createUntil = from + (to - from) / 2;
  // with --classes, the posts to class channels, and each as one message per other member of its class
  const groups = o.classes ? classGroups(trace, resolve(dirname(o.trace), "people.tsv")) : undefined;
  const posts = groups ? makePosts(trace, groups, o.messages, o.seed, createUntil) : undefined;
  const msgs = groups && posts ? postPairs(posts, groups) : makeMessages(trace, o.messages, o.seed, createUntil);
  log(`trace: ${trace.lines} contacts in ${trace.slots.length} slots, ${trace.ids.length} people, t ${trace.slots[0]?.t}..${trace.slots[trace.slots.length - 1]?.t}; ` +
    (posts ? `${posts.length} posts to ${groups?.length} class channels (${msgs.length} deliveries to members)` : `${msgs.length} messages`) + ` created up to t ${createUntil}`);

  /** @type {{ name: string, s: ReturnType<typeof summarize>, peak?: number, extra?: Record<string, unknown>, flood?: { untilDelivered: number, undelivered: number } }[]} */
  const rows = [];
  rows.push({ name: "oracle (foremost journey)", s: summarize(oracle(trace, msgs, o.lifetime), msgs) });
  rows.push({ name: "direct delivery", s: summarize(direct(trace, msgs, o.lifetime), msgs), peak: 0 });

  /** @type {Map<number, number>} */
  let sizes = new Map();
  const pigeonRows = [];
  if (o.pigeon) {
    const { runPigeon } = await import("./pigeon.mjs");
    for (const hopLimit of o.hopLimits)
      for (const copies of o.copiesList) {
        const label = `Pigeon (hop limit ${hopLimit ?? "default"}, copies ${copies ?? "default"})`;
        log(`${label}: replaying...`);
        const r = await runPigeon(trace, msgs, {
          hopLimit, copies, bandwidth: o.bandwidth, storage: o.storage, lifetime: o.lifetime, bodyChars: o.bodyChars,
          progress: (m) => log(`  ${m}`), classes: groups && posts ? { groups, posts } : undefined,
        });
        sizes = r.sizes;
        let late = 0;
        let duplicates = 0;
        const fates = r.arrivals.map((a, k) => {
          if (a.count > 1) duplicates++;
          const lat = a.at - /** @type {import("./trace.mjs").Msg} */ (msgs[k]).t0;
          if (!(lat <= o.lifetime)) {
            if (Number.isFinite(lat)) late++;
            return { transmissions: 0 };
          }
          return { at: a.at, transmissions: 0 };
        });
        const s = summarize(fates, msgs);
        // relayed = message-envelope frames delivered over links (keys, receipts and acks counted apart);
        // a channel post is one envelope for the whole class: not comparable with copies per member
        s.relayed = posts ? NaN : r.tx.message;
        s.perDelivered = s.delivered && !posts ? r.tx.message / s.delivered : NaN;
        s.overheadRatio = s.delivered && !posts ? (r.tx.message - s.delivered) / s.delivered : NaN;
        const row = { name: label, s, peak: r.peakCarried, extra: { ...r, arrivals: undefined, sizes: undefined, late, duplicates, hopLimit, copies, posts: posts?.length } };
        rows.push(row);
        pigeonRows.push(row);
        log(`${label}: ${s.delivered}/${msgs.length} delivered, ${Math.round(r.wallMs / 1000)} s`);
      }
  }
  const meanSize = sizes.size ? [...sizes.values()].reduce((a, b) => a + b, 0) / sizes.size : 0;
  const ep = epidemic(trace, msgs, o.lifetime, (m) => sizes.get(m.n) ?? meanSize);
  // how much of the epidemic's cost came before each delivery: what even a flood that stopped
  // everywhere the moment its message arrived would spend (the transmissions goal is against the whole)
  const untilDelivered = ep.fates.reduce((a, f) => a + (f.untilDelivered ?? 0), 0);
  const undelivered = ep.fates.reduce((a, f) => a + (f.at === undefined ? f.transmissions : 0), 0);
  rows.splice(2, 0, { name: "unlimited epidemic", s: summarize(ep.fates, msgs), peak: sizes.size ? ep.peakCarriedBytes : undefined, flood: { untilDelivered, undelivered } });
  return { options: o, trace: { path: o.trace, contacts: trace.lines, slots: trace.slots.length, people: trace.ids.length, from, to, createUntil }, rows, wallMs: Date.now() - t0, meanEnvelopeBytes: meanSize };
}

/**
 * Issue 17's goals: delivery >= 0.95x the oracle's, median latency <= 1.25x, transmissions <= 1/3 of
 * epidemic's, bytes on links <= 2x the bytes of the envelopes that moved.
 * @param {number} d @param {number} m @param {number} t @param {{ bytes: number, envelopeBytes: number }} x
 */
function goals(d, m, t, x) {
  return [
    d >= 0.95 ? "delivery ✓" : "delivery ✗",
    m <= 1.25 ? "median ✓" : "median ✗",
    Number.isNaN(t) ? "transmissions —" : t <= 1 / 3 ? "transmissions ✓" : "transmissions ✗",
    x.bytes <= 2 * x.envelopeBytes ? "bytes ✓" : "bytes ✗",
  ];
}

/**
 * One row per trace (the first Pigeon row of each) against the goals: what `--all` prints.
 * @param {Awaited<ReturnType<typeof bench>>[]} results
 */
export function summaryTable(results) {
  const out = [];
  out.push("| trace (people, contacts) | delivery / oracle's | median / oracle's | p90 / oracle's | transmissions / epidemic's | bytes on links / envelope bytes | replay | goals |");
  out.push("|---|---|---|---|---|---|---|---|");
  for (const res of results) {
    const o = /** @type {any} */ (res.rows[0]).s;
    const e = /** @type {any} */ (res.rows.find((r) => r.name === "unlimited epidemic")).s;
    const name = res.trace.path.split("/").slice(-2, -1)[0];
    const r = res.rows.find((x) => x.extra);
    if (!r) {
      out.push(`| ${name} (${res.trace.people}, ${res.trace.contacts}) | oracle ${o.delivered}/${o.created} | — | — | — | — | — | — |`);
      continue;
    }
    const x = /** @type {any} */ (r.extra);
    const d = r.s.deliveryProb / o.deliveryProb;
    const m = r.s.latencyMedian / o.latencyMedian;
    const t = r.s.relayed / e.relayed;
    out.push(
      `| ${name} (${res.trace.people}, ${res.trace.contacts}) | ${ratio(r.s.deliveryProb, o.deliveryProb)} (${r.s.delivered} / ${o.delivered}) | ${ratio(r.s.latencyMedian, o.latencyMedian)} | ` +
        `${ratio(r.s.latencyP90, o.latencyP90)} | ${Number.isNaN(t) ? "—" : `${num(t, 2)}x (${r.s.relayed} / ${e.relayed})`} | ${ratio(x.bytes, x.envelopeBytes)} (${kb(x.bytes)} / ${kb(x.envelopeBytes)}) | ` +
        `${Math.round(x.wallMs / 1000)} s | ${goals(d, m, t, x).join(", ")} |`,
    );
  }
  return out.join("\n");
}

/** @param {Awaited<ReturnType<typeof bench>>} res */
export function table(res) {
  const o = res.rows[0]?.s;
  const e = res.rows.find((r) => r.name === "unlimited epidemic")?.s;
  const out = [];
  out.push("| | delivered | delivery ratio | median latency | p90 latency | transmissions / delivered | overhead_ratio | peak carried / node |");
  out.push("|---|---|---|---|---|---|---|---|");
  for (const r of res.rows)
    out.push(`| ${r.name} | ${r.s.delivered}/${r.s.created} | ${pct(r.s.deliveryProb)} | ${mins(r.s.latencyMedian)} | ${mins(r.s.latencyP90)} | ${num(r.s.perDelivered)} | ${num(r.s.overheadRatio)} | ${r.peak === undefined ? "—" : kb(r.peak)} |`);
  const flood = res.rows.find((r) => r.flood)?.flood;
  if (flood && e?.relayed)
    out.push(
      "",
      `Unlimited epidemic: ${flood.untilDelivered} of its ${e.relayed} transmissions (${num(flood.untilDelivered / e.relayed, 2)}x) were made before each message arrived ` +
        `(up to the end of that slot), ${e.relayed - flood.untilDelivered - flood.undelivered} after, and ${flood.undelivered} for messages it never delivered.`,
    );
  const pig = res.rows.filter((r) => r.extra);
  if (pig.length && o && e) {
    out.push("");
    out.push("| | delivery / oracle's | median latency / oracle's | p90 latency / oracle's | transmissions / epidemic's | goal met? |");
    out.push("|---|---|---|---|---|---|");
    for (const r of pig) {
      const d = r.s.deliveryProb / o.deliveryProb;
      const m = r.s.latencyMedian / o.latencyMedian;
      const t = r.s.relayed / e.relayed;
      const goal = goals(d, m, t, /** @type {any} */ (r.extra)).join(", ");
      out.push(`| ${r.name} | ${ratio(r.s.deliveryProb, o.deliveryProb)} | ${ratio(r.s.latencyMedian, o.latencyMedian)} | ${ratio(r.s.latencyP90, o.latencyP90)} | ${Number.isNaN(t) ? "— (one envelope per post)" : `${num(t, 2)}x (${r.s.relayed} / ${e.relayed})`} | ${goal} |`);
    }
    out.push("");
    for (const r of pig) {
      const x = /** @type {any} */ (r.extra);
      if (x.posts) out.push(`${r.name}: ${x.posts} posts to class channels, each sealed once for its class: ${num(x.tx.message / x.posts)} channel-envelope frames delivered over links per post.`);
      out.push(
        `${r.name}: envelope frames delivered over links — messages ${x.tx.message}, conversation keys ${x.tx.key}, receipts ${x.tx.receipt}, ` +
          `acknowledgements ${x.tx.ack} (all: ${x.tx.message + x.tx.key + x.tx.receipt + x.tx.ack}); ${kb(x.bytes)} on links in all frames, ` +
          `${kb(x.envelopeBytes)} of them the envelopes that moved (${ratio(x.bytes, x.envelopeBytes)}); ` +
          `${x.lostFrames} frames cut off by a contact ending; peak carried incl. acknowledgements ${kb(x.peakCarriedAll)}; ` +
          `${x.late} delivered after their lifetime (not counted); ${x.duplicates} shown twice; replay took ${Math.round(x.wallMs / 1000)} s.`,
      );
      out.push(`${r.name}: bytes on links by frame — ${byFrame(x.byFrame, x.bytes)}.`);
      out.push(
        `${r.name}: ${x.meetings[1].toLocaleString("en")} of ${(x.meetings[0] + x.meetings[1]).toLocaleString("en")} meetings were of two laptops that had met before; ` +
          `they put ${kb(x.againBytes)} on links (${x.bytes ? Math.round((100 * x.againBytes) / x.bytes) : 0} %): ${byFrame(x.byFrameAgain, x.againBytes)}.`,
      );
    }
  }
  return out.join("\n");
}

/**
 * "Envelope 1.57 MB (62 %, 1,687 frames), Sketch ...", the biggest first.
 * @param {Record<string, { frames: number, bytes: number }>} by @param {number} total
 */
function byFrame(by, total) {
  return Object.entries(by)
    .sort((a, b) => b[1].bytes - a[1].bytes)
    .map(([name, e]) => `${name} ${kb(e.bytes)} (${total ? Math.round((100 * e.bytes) / total) : 0} %, ${e.frames.toLocaleString("en")} frames)`)
    .join(", ");
}

async function main() {
  let o;
  try {
    o = parseArgs(process.argv.slice(2));
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`bench:trace: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
  if (o.help) {
    process.stdout.write(HELP + "\n");
    return;
  }
  try {
    if (o.all) {
      const results = [];
      for (const trace of ALL_TRACES) {
        process.stderr.write(`${trace}\n`);
        const res = await bench({ ...o, trace }, (s) => process.stderr.write(`${s}\n`));
        results.push(res);
        // each trace's own table as soon as it is done: a long run shows something before its end
        process.stderr.write(`\n${table(res)}\n\n`);
      }
      const w = o.window ? `, window ${o.window[0]}-${o.window[1]} s` : "";
      const n = o.nodes ? `, ${o.nodes} people drawn from each` : "";
      process.stdout.write(
        `Every shared trace, the same options: ${o.messages} ${o.classes ? "posts to class channels" : "messages"} (seed ${o.seed}${w}${n}), lifetime ${o.lifetime / 3600} h, ` +
          `bandwidth ${o.bandwidth} B/slot, storage ${o.storage} B/node.\n\n${summaryTable(results)}\n\n` +
          results.map((r) => `${r.trace.path}:\n\n${table(r)}`).join("\n\n") + "\n",
      );
      if (o.json) process.stdout.write(JSON.stringify(results, null, 1) + "\n");
      return;
    }
    const res = await bench(o, (s) => process.stderr.write(`${s}\n`));
    const w = o.window ? ` --window ${o.window[0]}-${o.window[1]}` : "";
    process.stdout.write(
      `Trace ${res.trace.path}: ${res.trace.people} people, ${res.trace.contacts} contacts in ${res.trace.slots} slots; ` +
        `${o.messages} ${o.classes ? "posts to class channels" : "messages"} (seed ${o.seed}${w}), lifetime ${o.lifetime / 3600} h, bandwidth ${o.bandwidth} B/slot, storage ${o.storage} B/node` +
        `${res.meanEnvelopeBytes ? `, message envelopes ~${Math.round(res.meanEnvelopeBytes)} B` : ""}.\n\n${table(res)}\n\nwall time ${Math.round(res.wallMs / 1000)} s\n`,
    );
    if (o.json) process.stdout.write(JSON.stringify(res, null, 1) + "\n");
  } catch (e) {
    if (e instanceof UsageError || (e instanceof Error && /cannot read the trace|no contacts|fewer than two|no class of/.test(e.message))) {
      process.stderr.write(`bench:trace: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
