// Villages at scale (docs/benchmarks.md, "Between villages"): relay points on a road, mules (buses)
// going back and forth along stretches of it, and a few radio links between nearby relay points that
// are up one hour in four. Every relay point runs the real routing table (packages/model routes.ts)
// on real signed announcements, learns each carrier's rhythm from its contacts, and hands a message
// only to a carrier that brings it closer (RoutingTable.closerWays); mules carry announcements and
// messages, one copy of each message. Compared with an oracle that knows every schedule (the earliest
// arrival over all contacts), and the routing traffic per day.
//
//   node bench/villages/run.mjs [--villages 50] [--days 30] [--messages 1000] [--seed 1]
import {
  RoutingTable, generateSchool, issueRelayCertificate, relayKeyPair,
} from "@pigeon/model";

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const V = arg("villages", 50);
const DAYS = arg("days", 30);
const MESSAGES = arg("messages", 1000);
let seed = arg("seed", 1);
const H = 3_600_000;
const T0 = Date.UTC(2026, 0, 5);
const LIFETIME_H = 14 * 24; // a message's lifetime
const ANN_LIFETIME_S = arg("announce-days", 7) * 24 * 3600;

function rand() {
  // mulberry32: the same run for the same seed
  seed |= 0;
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (n) => Math.floor(rand() * n);

// ---- the federation ----
const homes = Array.from({ length: V }, (_, i) => `village-${String(i).padStart(2, "0")}`);
const relays = homes.map((home) => {
  const school = generateSchool(home);
  const key = relayKeyPair();
  return { home, key, cert: issueRelayCertificate(school, key.publicKey), schoolKey: school.signing.publicKey };
});
const federation = new Map(relays.map((r) => [r.home, r.schoolKey]));
for (const r of relays) {
  r.table = new RoutingTable(r.home, federation);
  r.seq = 0;
  r.lastSigned = -1;
  r.ann = undefined;
  r.held = new Map(); // message id -> message
  r.heardIds = new Set();
}

// ---- schedules: where every mule is each hour; which radio links are up ----
// mule i drives villages [4i .. 4i+5] and back (1 -> 2 -> 3 -> 2 -> 1), staying `stay` hours in each
const mules = [];
for (let start = 0; start < V - 1; start += 4) {
  const stretch = [];
  for (let v = start; v <= Math.min(V - 1, start + 5); v++) stretch.push(v);
  const tour = [...stretch, ...stretch.slice(1, -1).reverse()];
  const stay = 2 + pick(3);
  const travel = 4 + pick(12);
  const offset = pick(24 * 3);
  mules.push({ id: `bus-${mules.length}`, label: `bus ${mules.length}`, tour, stay, travel, offset, anns: new Map(), held: new Map(), seenIds: new Set() });
}
/** Where a mule is at hour h (a village index while it stays, -1 on the road), and whether the stay just began. */
function muleAt(m, h) {
  const leg = m.stay + m.travel;
  const t = h + m.offset;
  const i = Math.floor(t / leg) % m.tour.length;
  const inLeg = t % leg;
  return inLeg < m.stay ? { v: m.tour[i], first: inLeg === 0 } : { v: -1, first: false };
}
const radios = [];
while (radios.length < Math.round(V / 5)) {
  const a = pick(V);
  const b = a + 1 + pick(3);
  if (b < V) radios.push({ a, b, phase: pick(4) });
}
const radioUp = (r, h) => (h + r.phase) % 4 === 0;

// ---- messages ----
const msgs = [];
for (let i = 0; i < MESSAGES; i++) {
  const src = pick(V);
  let dst = pick(V - 1);
  if (dst >= src) dst++;
  msgs.push({ id: i, src, dst, created: pick((DAYS - 10) * 24), delivered: -1, lost: false });
}

// ---- the oracle: earliest arrival over every contact, knowing all schedules ----
const HOURS = DAYS * 24;
const events = []; // per hour: [kind, x, y]
for (let h = 0; h < HOURS; h++) {
  const e = [];
  for (const [mi, m] of mules.entries()) {
    const at = muleAt(m, h);
    if (at.v >= 0) e.push(["m", mi, at.v]);
  }
  for (const r of radios) if (radioUp(r, h)) e.push(["r", r.a, r.b]);
  events.push(e);
}
function oracle(msg) {
  const village = new Array(V).fill(false);
  const mule = new Array(mules.length).fill(false);
  village[msg.src] = true;
  for (let h = msg.created; h < Math.min(HOURS, msg.created + LIFETIME_H); h++) {
    for (let pass = 0; pass < 2; pass++)
      for (const [k, x, y] of events[h]) {
        if (k === "m") {
          if (village[y]) mule[x] = true;
          if (mule[x]) village[y] = true;
        } else if (village[x] || village[y]) village[x] = village[y] = true;
      }
    if (village[msg.dst]) return h - msg.created;
  }
  return -1;
}

// ---- the routing run ----
let annBytes = 0;
let annTransfers = 0;
let handovers = 0;
function sign(r, h) {
  if (r.lastSigned === h) return;
  r.lastSigned = h;
  r.ann = r.table.announce(r.key, r.cert, ++r.seq, T0 + h * H, ANN_LIFETIME_S);
}
function hear(r, env, carrier, h) {
  const key = `${carrier.id}/${Buffer.from(env.id).toString("hex")}`;
  if (r.heardIds.has(key)) return;
  r.heardIds.add(key);
  annBytes += env.bytes.length;
  annTransfers++;
  r.table.hear(env, carrier, T0 + h * H + 60_000);
}
/** Relay point r hands what it holds to `carrier` when the table says it brings it closer. */
function handOver(r, carrier, h, take) {
  const byDest = new Map();
  for (const msg of r.held.values()) {
    if (!byDest.has(msg.dst)) byDest.set(msg.dst, r.table.closerWays(homes[msg.dst], T0 + h * H));
    const way = byDest.get(msg.dst).find((w) => w.carrier.id === carrier.id);
    if (!way) continue;
    r.held.delete(msg.id);
    handovers++;
    take(msg, homes.indexOf(way.viaRelay));
  }
}
function arrive(r, msg, h) {
  if (msg.lost || msg.delivered >= 0) return;
  if (h >= msg.created + LIFETIME_H) {
    msg.lost = true;
    return;
  }
  if (relays.indexOf(r) === msg.dst) msg.delivered = h;
  else r.held.set(msg.id, msg);
}

const started = Date.now();
let next = 0;
const byCreated = [...msgs].sort((a, b) => a.created - b.created);
for (let h = 0; h < HOURS; h++) {
  while (next < byCreated.length && byCreated[next].created === h) {
    const m = byCreated[next++];
    relays[m.src].held.set(m.id, m);
  }
  for (const m of mules) {
    const at = muleAt(m, h);
    if (at.v < 0) continue;
    const r = relays[at.v];
    const carrier = { id: m.id, label: m.label };
    if (at.first) r.table.contact(carrier, T0 + h * H);
    sign(r, h);
    // the mule hands over the announcements it carries and takes this relay point's newest
    for (const [home, env] of m.anns) if (home !== r.home) hear(r, env, carrier, h);
    const mine = r.ann;
    if (!m.seenIds.has(mine.id)) {
      m.seenIds.add(mine.id);
      annBytes += mine.bytes.length;
      annTransfers++;
    }
    m.anns.set(r.home, mine);
    // messages: what the mule brought here, then what this relay point gives it
    for (const [id, { msg, target }] of m.held) if (target === at.v || msg.dst === at.v) {
      m.held.delete(id);
      arrive(r, msg, h);
    }
    handOver(r, carrier, h, (msg, target) => m.held.set(msg.id, { msg, target }));
  }
  for (const link of radios) {
    if (!radioUp(link, h)) continue;
    const a = relays[link.a];
    const b = relays[link.b];
    const ca = { id: a.home, label: `${a.home}'s radio` };
    const cb = { id: b.home, label: `${b.home}'s radio` };
    a.table.contact(cb, T0 + h * H);
    b.table.contact(ca, T0 + h * H);
    sign(a, h);
    sign(b, h);
    hear(a, b.ann, cb, h);
    hear(b, a.ann, ca, h);
    handOver(a, cb, h, (msg) => arrive(b, msg, h));
    handOver(b, ca, h, (msg) => arrive(a, msg, h));
  }
}
const simSeconds = (Date.now() - started) / 1000;

const oracleDelays = msgs.map(oracle);
const routed = msgs.filter((m) => m.delivered >= 0);
const oracleOk = oracleDelays.filter((d) => d >= 0);
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : NaN;
};
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const bothDelivered = msgs.filter((m, i) => m.delivered >= 0 && oracleDelays[i] >= 0);
const stretch = bothDelivered.map((m) => (m.delivered - m.created + 1) / (oracleDelays[m.id] + 1));
const reachable = relays.map((r) => r.table.routes(T0 + HOURS * H).length);
console.log(JSON.stringify({
  villages: V, mules: mules.length, radioLinks: radios.length, days: DAYS, messages: MESSAGES, lifetimeHours: LIFETIME_H,
  oracle: { delivered: oracleOk.length, medianDelayH: median(oracleOk), meanDelayH: +mean(oracleOk).toFixed(1) },
  routing: {
    delivered: routed.length, ofOracle: +(routed.length / oracleOk.length).toFixed(3),
    medianDelayH: median(routed.map((m) => m.delivered - m.created)), meanDelayH: +mean(routed.map((m) => m.delivered - m.created)).toFixed(1),
    medianDelayVsOracle: +median(stretch).toFixed(2), handovers, stillHeld: msgs.filter((m) => m.delivered < 0 && !m.lost).length,
  },
  routingTraffic: {
    announcementsPerDay: Math.round(annTransfers / DAYS), bytesPerDay: Math.round(annBytes / DAYS),
    bytesPerRelayPointPerDay: Math.round(annBytes / DAYS / V),
  },
  tables: { medianVillagesReachable: median(reachable), minReachable: Math.min(...reachable) },
  simSeconds,
}, null, 2));
