// @ts-check
// Trace loading, seeded messages, metrics, and the three baselines (oracle, direct delivery, unlimited
// epidemic). The baselines are small separate simulations on purpose: they are yardsticks, not
// Pigeon's routing. Pigeon itself is driven through its real code in pigeon.mjs.
import { readFileSync } from "node:fs";

export const SLOT_SECONDS = 20;

/**
 * @typedef {{ t: number, pairs: [number, number][] }} Slot  contacts of one time slot (node indices, a < b)
 * @typedef {{ ids: string[], slots: Slot[], first: number, last: number, lines: number }} Trace
 * @typedef {{ n: number, src: number, dst: number, t0: number }} Msg  t0 = creation time (trace seconds)
 * @typedef {{ at?: number, transmissions: number, hops?: number, untilDelivered?: number }} Fate  at = first delivery time, if within lifetime;
 *   untilDelivered (epidemic): its transmissions up to the end of the slot that delivered it
 */

/**
 * Reads a `t i j` trace (whitespace separated, one contact per line and slot). Lines starting with
 * `#` and blank lines are skipped; anything else malformed is an error naming the line.
 * @param {string} path
 * @param {{ from?: number, to?: number, nodes?: Set<string> }} [opts] window (absolute trace seconds, inclusive) and node subset
 * @returns {Trace}
 */
export function loadTrace(path, opts = {}) {
  let text;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new Error(`cannot read the trace ${path}: ${/** @type {Error} */ (e).message}`);
  }
  /** @type {Map<string, number>} */
  const index = new Map();
  /** @type {string[]} */
  const ids = [];
  const node = (/** @type {string} */ id) => {
    let i = index.get(id);
    if (i === undefined) {
      i = ids.length;
      ids.push(id);
      index.set(id, i);
    }
    return i;
  };
  /** @type {Map<number, Map<string, [number, number]>>} */
  const bySlot = new Map();
  let lines = 0;
  let lineNo = 0;
  let first = Infinity;
  let last = -Infinity;
  for (const raw of text.split("\n")) {
    lineNo++;
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const f = line.split(/\s+/);
    if (f.length < 3) throw new Error(`${path}:${lineNo}: expected "t i j", got ${JSON.stringify(raw)}`);
    const t = Number(f[0]);
    if (!Number.isFinite(t)) throw new Error(`${path}:${lineNo}: time ${JSON.stringify(f[0])} is not a number`);
    const a = /** @type {string} */ (f[1]);
    const b = /** @type {string} */ (f[2]);
    if (a === b) continue; // a contact with oneself carries nothing
    first = Math.min(first, t);
    last = Math.max(last, t);
    if (opts.from !== undefined && t < opts.from) continue;
    if (opts.to !== undefined && t > opts.to) continue;
    if (opts.nodes && (!opts.nodes.has(a) || !opts.nodes.has(b))) continue;
    const ia = node(a);
    const ib = node(b);
    const key = ia < ib ? `${ia} ${ib}` : `${ib} ${ia}`;
    let m = bySlot.get(t);
    if (!m) bySlot.set(t, (m = new Map()));
    m.set(key, ia < ib ? [ia, ib] : [ib, ia]); // a pair listed twice in one slot is one contact
    lines++;
  }
  if (lines === 0) throw new Error(`${path}: no contacts${opts.from !== undefined || opts.nodes ? " in the chosen window / node set" : ""}`);
  const slots = [...bySlot.entries()].sort((x, y) => x[0] - y[0]).map(([t, m]) => ({ t, pairs: [...m.values()] }));
  return { ids, slots, first, last, lines };
}

/** Every person id in a trace file (for --nodes N sampling). @param {string} path */
export function traceIds(path) {
  const s = new Set();
  for (const line of readFileSync(path, "utf8").split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length >= 3 && !line.trim().startsWith("#")) {
      s.add(f[1]);
      s.add(f[2]);
    }
  }
  return [...s];
}

/** mulberry32: small, seeded, good enough for picking messages. @param {number} seed */
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Messages between random pairs (any two distinct people of the trace) created at random contact
 * times: uniform over the time slots that have at least one contact, up to `until`. (Uniform over slots
 * rather than over contact lines reproduces the reference figures of the primary-school README best.)
 * @param {Trace} trace @param {number} count @param {number} seed @param {number} until
 * @returns {Msg[]} sorted by creation time
 */
export function makeMessages(trace, count, seed, until) {
  const r = rng(seed);
  /** @type {number[]} */
  const times = [];
  for (const s of trace.slots) if (s.t <= until) times.push(s.t);
  if (times.length === 0) throw new Error("no contacts in the message-creation part of the window");
  const n = trace.ids.length;
  if (n < 2) throw new Error("the trace has fewer than two people");
  /** @type {Msg[]} */
  const out = [];
  for (let i = 0; i < count; i++) {
    const src = Math.floor(r() * n);
    let dst = Math.floor(r() * (n - 1));
    if (dst >= src) dst++;
    const t0 = /** @type {number} */ (times[Math.floor(r() * times.length)]);
    out.push({ n: i, src, dst, t0 });
  }
  return out.sort((a, b) => a.t0 - b.t0 || a.n - b.n);
}

/** Index of the first slot at or after t. @param {Slot[]} slots @param {number} t */
export function slotAt(slots, t) {
  let lo = 0;
  let hi = slots.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (/** @type {Slot} */ (slots[mid]).t < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Spreads from `reached` over one slot's contacts, as far as the slot's graph goes (multi-hop within
 * one slot). Calls onNew(node) for every newly reached node. @param {Slot} slot @param {Set<number>} reached
 * @param {(n: number) => void} onNew
 */
function spreadInSlot(slot, reached, onNew) {
  let grew = true;
  while (grew) {
    grew = false;
    for (const [a, b] of slot.pairs) {
      const ha = reached.has(a);
      if (ha === reached.has(b)) continue;
      const n = ha ? b : a;
      reached.add(n);
      onNew(n);
      grew = true;
    }
  }
}

/**
 * Oracle: foremost journey over the same contacts (knows every future contact; multi-hop within a
 * slot). A bound on delivery and latency, not a forwarding scheme: it has no transmission count
 * (`hops` is the length of one foremost journey found, which is not unique).
 * @param {Trace} trace @param {Msg[]} msgs @param {number} lifetime seconds @returns {Fate[]}
 */
export function oracle(trace, msgs, lifetime) {
  return msgs.map((m) => {
    /** @type {Map<number, number>} */
    const parent = new Map([[m.src, -1]]);
    const reached = new Set([m.src]);
    for (let k = slotAt(trace.slots, m.t0); k < trace.slots.length; k++) {
      const slot = /** @type {Slot} */ (trace.slots[k]);
      if (slot.t - m.t0 > lifetime) break;
      // BFS within the slot, recording parents, to count the hops of the journey
      let grew = true;
      while (grew) {
        grew = false;
        for (const [a, b] of slot.pairs) {
          const ha = reached.has(a);
          if (ha === reached.has(b)) continue;
          const [from, to] = ha ? [a, b] : [b, a];
          reached.add(to);
          parent.set(to, from);
          grew = true;
        }
      }
      if (reached.has(m.dst)) {
        let hops = 0;
        for (let x = m.dst; x !== m.src; x = /** @type {number} */ (parent.get(x))) hops++;
        return { at: slot.t, transmissions: NaN, hops };
      }
    }
    return { transmissions: NaN };
  });
}

/**
 * Direct delivery: the source hands the message to the destination at their first contact after
 * creation, within the lifetime. Carries nothing for others.
 * @param {Trace} trace @param {Msg[]} msgs @param {number} lifetime @returns {Fate[]}
 */
export function direct(trace, msgs, lifetime) {
  return msgs.map((m) => {
    const [a, b] = m.src < m.dst ? [m.src, m.dst] : [m.dst, m.src];
    for (let k = slotAt(trace.slots, m.t0); k < trace.slots.length; k++) {
      const slot = /** @type {Slot} */ (trace.slots[k]);
      if (slot.t - m.t0 > lifetime) break;
      if (slot.pairs.some(([x, y]) => x === a && y === b)) return { at: slot.t, transmissions: 1 };
    }
    return { transmissions: 0 };
  });
}

/**
 * Unlimited epidemic (ONE's EpidemicRouter with unlimited buffer and bandwidth, no acknowledgements):
 * at every contact each side gives the other every message it lacks, repeatedly within a slot, until
 * the message's lifetime (from creation) ends. Every copy made is one transmission.
 * Also returns each node's peak carried bytes (messages held for others: neither source nor destination).
 * @param {Trace} trace @param {Msg[]} msgs @param {number} lifetime @param {(m: Msg) => number} size
 * @returns {{ fates: Fate[], peakCarriedBytes: number }}
 */
export function epidemic(trace, msgs, lifetime, size) {
  /** @type {Map<number, [number, number][]>} node -> [time, +/-bytes] events */
  const events = new Map();
  const fates = msgs.map((m) => {
    const reached = new Set([m.src]);
    /** @type {number | undefined} */
    let at;
    let transmissions = 0;
    /** transmissions made up to the end of the slot that delivered it */
    let untilDelivered = 0;
    const end = m.t0 + lifetime;
    for (let k = slotAt(trace.slots, m.t0); k < trace.slots.length; k++) {
      const slot = /** @type {Slot} */ (trace.slots[k]);
      if (slot.t > end) break;
      spreadInSlot(slot, reached, (n) => {
        transmissions++;
        if (n === m.dst) at ??= slot.t;
        else {
          let ev = events.get(n);
          if (!ev) events.set(n, (ev = []));
          ev.push([slot.t, size(m)], [end, -size(m)]);
        }
      });
      if (at === slot.t) untilDelivered = transmissions;
    }
    return at === undefined ? { transmissions } : { at, transmissions, untilDelivered };
  });
  let peak = 0;
  for (const ev of events.values()) {
    ev.sort((x, y) => x[0] - y[0] || x[1] - y[1]); // at equal times, drops before additions
    let cur = 0;
    for (const [, d] of ev) peak = Math.max(peak, (cur += d));
  }
  return { fates, peakCarriedBytes: peak };
}

/**
 * Summary in the ONE simulator's MessageStatsReport terms: delivery_prob = delivered / created;
 * relayed = every completed transfer (including the final one); overhead_ratio = (relayed - delivered)
 * / delivered; latency over delivered messages, creation to first delivery; median = sorted[n/2]
 * (as ONE's Report.getMedian), p90 = sorted[floor(0.9 n)].
 * @param {Fate[]} fates @param {Msg[]} msgs
 */
export function summarize(fates, msgs) {
  /** @type {number[]} */
  const lat = [];
  let relayed = 0;
  for (let i = 0; i < fates.length; i++) {
    const f = /** @type {Fate} */ (fates[i]);
    relayed += f.transmissions;
    if (f.at !== undefined) lat.push(f.at - /** @type {Msg} */ (msgs[i]).t0);
  }
  lat.sort((a, b) => a - b);
  const delivered = lat.length;
  const pick = (/** @type {number} */ q) => (delivered ? /** @type {number} */ (lat[Math.min(delivered - 1, Math.floor(q * delivered))]) : NaN);
  return {
    created: msgs.length,
    delivered,
    deliveryProb: msgs.length ? delivered / msgs.length : NaN,
    latencyMedian: pick(0.5),
    latencyP90: pick(0.9),
    relayed,
    perDelivered: delivered ? relayed / delivered : NaN,
    overheadRatio: delivered ? (relayed - delivered) / delivered : NaN,
  };
}

/**
 * @typedef {{ title: string, owner: number, members: number[] }} ClassGroup  a class as a channel: the
 *   owner (who creates it and adds everyone) and the other members (node indices)
 * @typedef {{ n: number, src: number, t0: number, group: number }} Post  a message written to a class channel
 */

/**
 * The classes of a trace as channels, from the `people.tsv` beside it ("id class ..." per line). A
 * group named like "Teachers" is not a class: its people may own one. Each class's owner is, of its
 * members and the teachers, the one with the most contacts with the class's members over the whole
 * replayed trace (the class's own teacher, where the trace has one); nothing is tuned per trace.
 * Classes with fewer than two people in the replay are left out.
 * @param {Trace} trace @param {string} peoplePath @returns {ClassGroup[]}
 */
export function classGroups(trace, peoplePath) {
  let text;
  try {
    text = readFileSync(peoplePath, "utf8");
  } catch (e) {
    throw new Error(`cannot read the trace's classes (${peoplePath}): ${/** @type {Error} */ (e).message}`);
  }
  const index = new Map(trace.ids.map((id, i) => [id, i]));
  /** @type {Map<string, number[]>} */
  const classes = new Map();
  /** @type {number[]} */
  const teachers = [];
  for (const line of text.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length < 2 || line.trim().startsWith("#")) continue;
    const i = index.get(/** @type {string} */ (f[0]));
    if (i === undefined) continue;
    const c = /** @type {string} */ (f[1]);
    if (/^teachers?$/i.test(c)) teachers.push(i);
    else classes.set(c, [...(classes.get(c) ?? []), i]);
  }
  /** contacts between two people over the replay (slots in contact) */
  const met = new Map();
  for (const s of trace.slots) for (const [a, b] of s.pairs) met.set(a * 65536 + b, (met.get(a * 65536 + b) ?? 0) + 1);
  const between = (/** @type {number} */ a, /** @type {number} */ b) => met.get(Math.min(a, b) * 65536 + Math.max(a, b)) ?? 0;
  /** @type {ClassGroup[]} */
  const out = [];
  for (const [title, members] of [...classes].sort(([a], [b]) => a.localeCompare(b))) {
    if (members.length < 2) continue;
    let owner = /** @type {number} */ (members[0]);
    let best = -1;
    for (const c of [...members, ...teachers]) {
      let n = 0;
      for (const m of members) if (m !== c) n += between(c, m);
      if (n > best) [owner, best] = [c, n];
    }
    out.push({ title, owner, members: members.filter((m) => m !== owner) });
  }
  if (out.length === 0) throw new Error(`no class of ${peoplePath} has two people in the replay`);
  return out;
}

/**
 * Posts to the class channels at random contact times (as makeMessages): a class drawn at random,
 * then its writer (the owner or a member) at random.
 * @param {Trace} trace @param {ClassGroup[]} groups @param {number} count @param {number} seed @param {number} until
 * @returns {Post[]} sorted by creation time
 */
export function makePosts(trace, groups, count, seed, until) {
  const r = rng(seed);
  /** @type {number[]} */
  const times = [];
  for (const s of trace.slots) if (s.t <= until) times.push(s.t);
  if (times.length === 0) throw new Error("no contacts in the message-creation part of the window");
  /** @type {Post[]} */
  const out = [];
  for (let i = 0; i < count; i++) {
    const group = Math.floor(r() * groups.length);
    const g = /** @type {ClassGroup} */ (groups[group]);
    const writers = [g.owner, ...g.members];
    const src = /** @type {number} */ (writers[Math.floor(r() * writers.length)]);
    const t0 = /** @type {number} */ (times[Math.floor(r() * times.length)]);
    out.push({ n: i, src, t0, group });
  }
  return out.sort((a, b) => a.t0 - b.t0 || a.n - b.n);
}

/**
 * Each post as one message to each other person of its class (what the oracle and the baselines are
 * measured on: delivery to every member). `n` numbers the pairs; `post` says which post.
 * @param {Post[]} posts @param {ClassGroup[]} groups @returns {(Msg & { post: number })[]}
 */
export function postPairs(posts, groups) {
  /** @type {(Msg & { post: number })[]} */
  const out = [];
  for (const p of posts) {
    const g = /** @type {ClassGroup} */ (groups[p.group]);
    for (const dst of [g.owner, ...g.members]) if (dst !== p.src) out.push({ n: out.length, src: p.src, dst, t0: p.t0, post: p.n });
  }
  return out;
}
