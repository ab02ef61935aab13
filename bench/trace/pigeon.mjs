// @ts-check
// Replays a contact trace through Pigeon's real code: one Mailbox + SyncEngine per person (own SQLite
// store and documents in a temp directory), virtual time, in-memory links (memoryLinkPair) wrapped to
// enforce a byte budget per contact slot and to count what crosses them. Nothing of the routing is
// re-implemented here: what is offered, to whom, in which order, what is kept and dropped is decided by
// packages/sync.
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileStorage, Mailbox, SyncEngine, memoryLinkPair } from "@pigeon/sync";
import { contactCard, decodeFrame, envelopeForm, generateIdentity, sha256, toHex, EnvelopeKind, FrameType } from "@pigeon/model";
import { slotAt, SLOT_SECONDS } from "./trace.mjs";

/** Trace seconds -> virtual epoch ms (the trace starts on a school day in October 2009). */
const EPOCH_MS = Date.UTC(2009, 9, 1);
const ms = (/** @type {number} */ t) => EPOCH_MS + t * 1000;

/**
 * A contact between two laptops: the pair of memory links plus a byte budget per slot shared by both
 * directions (one radio channel). Frames that do not fit wait for the next slot of the same contact;
 * if the contact ends first they are lost, as on a real link that drops.
 */
class Contact {
  /**
   * @param {Sim} sim @param {number} a @param {number} b
   */
  constructor(sim, a, b) {
    this.sim = sim;
    this.a = a;
    this.b = b;
    /** @type {{ from: number, frame: Uint8Array }[]} */
    this.queue = [];
    this.left = sim.bandwidth;
    this.inFlight = 0;
    this.closed = false;
    const na = /** @type {Node} */ (sim.nodes[a]);
    const nb = /** @type {Node} */ (sim.nodes[b]);
    const [la, lb] = memoryLinkPair(na.card, nb.card);
    // two laptops that met before in the replay (what "Since" rounds are for)
    const pair = a < b ? `${a}-${b}` : `${b}-${a}`;
    this.again = sim.metPairs.has(pair);
    sim.metPairs.add(pair);
    sim.meetings[this.again ? 1 : 0]++;
    this.la = this.wrap(la, a);
    this.lb = this.wrap(lb, b);
    na.engine.attach(this.la);
    nb.engine.attach(this.lb);
  }

  /** @param {import("@pigeon/model").PeerLink} inner @param {number} from @returns {import("@pigeon/model").PeerLink & { _inner: import("@pigeon/model").PeerLink }} */
  wrap(inner, from) {
    const self = this;
    return {
      peer: inner.peer,
      description: `trace contact ${self.sim.ids[self.a]}-${self.sim.ids[self.b]}`,
      get closed() { return inner.closed; },
      send(frame) {
        if (inner.closed) return;
        self.queue.push({ from, frame: Uint8Array.from(frame) });
        self.pump();
      },
      onFrame(h) {
        inner.onFrame((f) => {
          self.inFlight--;
          self.sim.inFlight--;
          self.sim.count(f);
          h(f);
        });
      },
      onClose(h) { inner.onClose(h); },
      close(reason) { self.close(reason); },
      _inner: inner,
    };
  }

  /** Sends queued frames while this slot's budget lasts. */
  pump() {
    while (this.queue.length && !this.closed) {
      const head = /** @type {{ from: number, frame: Uint8Array }} */ (this.queue[0]);
      if (head.frame.length > this.left) return;
      this.queue.shift();
      this.left -= head.frame.length;
      this.sim.bytes += head.frame.length;
      this.sim.countBytes(head.frame, this.again);
      this.inFlight++;
      this.sim.inFlight++;
      const inner = head.from === this.a ? /** @type {any} */ (this.la)._inner : /** @type {any} */ (this.lb)._inner;
      inner.send(head.frame);
    }
  }

  /** A new slot of the same contact: a fresh budget (a frame part-sent keeps its progress). */
  nextSlot() {
    this.left = this.queue.length ? this.left + this.sim.bandwidth : this.sim.bandwidth;
    this.pump();
  }

  /** @param {string} [reason] */
  close(reason = "out of range") {
    if (this.closed) return;
    this.closed = true;
    this.sim.lostFrames += this.queue.length;
    this.queue = [];
    // frames already handed to the memory link but not yet delivered are dropped by it
    this.sim.inFlight -= this.inFlight;
    this.inFlight = 0;
    /** @type {any} */ (this.la)._inner.close(reason);
  }
}

/**
 * @typedef {{ id: string, identity: import("@pigeon/model").Identity, card: import("@pigeon/model").ContactCard,
 *   mailbox: Mailbox, engine: SyncEngine, dir: string, carried: () => [number, number] }} Node
 * @typedef {{ hopLimit?: number, copies?: number, bandwidth: number, storage: number, lifetime: number,
 *   bodyChars: number, dataDir?: string, progress?: (msg: string) => void,
 *   classes?: { groups: import("./trace.mjs").ClassGroup[], posts: import("./trace.mjs").Post[] } }} PigeonOptions
 *   classes: the messages are posts to class channels (msgs are then postPairs: one per post and member)
 */

class Sim {
  /** @param {import("./trace.mjs").Trace} trace @param {PigeonOptions} opts */
  constructor(trace, opts) {
    this.trace = trace;
    this.ids = trace.ids;
    this.bandwidth = opts.bandwidth;
    this.now = 0;
    this.inFlight = 0;
    this.bytes = 0;
    this.lostFrames = 0;
    /** @type {Node[]} */
    this.nodes = [];
    /** message envelope ids (hex) -> message number */
    this.msgEnvelopes = new Map();
    /** envelope id (hex) -> kind of the signed envelope inside, from its author's store */
    this.kinds = new Map();
    this.tx = { message: 0, key: 0, receipt: 0, ack: 0 };
    /** bytes of the envelopes that moved (ENVELOPE frames delivered, their envelope only) */
    this.envelopeBytes = 0;
    this.ackWaitMs = 0;
    this.settleMs = 0;
    /** bytes and frames put on links, by frame type name (FrameType), sent or cut off alike */
    /** @type {Record<string, { frames: number, bytes: number }>} */
    this.byFrame = {};
    /** pairs (a-b) that have met; meetings [first of their pair, of a pair met before]; bytes on links in the latter */
    this.metPairs = new Set();
    this.meetings = [0, 0];
    this.againBytes = 0;
    /** the same as byFrame, in meetings of two laptops that met before only */
    /** @type {Record<string, { frames: number, bytes: number }>} */
    this.byFrameAgain = {};
  }

  /** @param {Uint8Array} f a frame put on a link @param {boolean} again in a meeting of two laptops that met before */
  countBytes(f, again) {
    if (again) this.againBytes += f.length;
    const name = FRAME_NAMES.get(/** @type {number} */ (f[0])) ?? `type ${f[0]}`;
    for (const by of again ? [this.byFrame, this.byFrameAgain] : [this.byFrame]) {
      const e = (by[name] ??= { frames: 0, bytes: 0 });
      e.frames++;
      e.bytes += f.length;
    }
  }

  /** Counts ENVELOPE frames actually delivered, by what they carry. @param {Uint8Array} f */
  count(f) {
    if (f[0] !== 3) return; // HAVE / WANT
    const fr = decodeFrame(f);
    if (fr.type !== "envelope") return;
    this.envelopeBytes += fr.envelope.length;
    // sealed: what it holds is known from its author's store (the kinds map), as a carrier would not know
    const id = toHex(sha256(fr.envelope));
    if (this.msgEnvelopes.has(id)) this.tx.message++;
    else if (envelopeForm(fr.envelope) === "receipt") this.tx.ack++;
    else if (this.kinds.get(id) === EnvelopeKind.Key) this.tx.key++;
    else this.tx.receipt++;
  }
}

/** Frame type byte -> its name in docs/protocol.md (every type is below 128: one varint byte). */
const FRAME_NAMES = new Map(Object.entries(FrameType).map(([k, v]) => [v, k]));

const pendingAck = (/** @type {Mailbox} */ m) => m.pendingWork().acks;
const queueOf = (/** @type {Mailbox} */ m) => m.pendingWork().queue;

/**
 * Runs until nothing moves: no frame in flight, every active mailbox's serial queue drained, and no
 * acknowledgement batch pending (the mailbox batches acks on a 20 ms real-time timer).
 * @param {Sim} sim @param {Set<number>} active
 */
async function settle(sim, active) {
  for (let rounds = 0; ; rounds++) {
    await new Promise((r) => setImmediate(r));
    if (sim.inFlight > 0) continue;
    let busy = false;
    for (const i of active) {
      const m = /** @type {Node} */ (sim.nodes[i]).mailbox;
      const q = queueOf(m);
      await q;
      if (queueOf(m) !== q) busy = true;
    }
    if (busy || sim.inFlight > 0) continue;
    let acks = false;
    for (const i of active) if (pendingAck(/** @type {Node} */ (sim.nodes[i]).mailbox)) acks = true;
    if (acks) {
      const t = Date.now();
      await new Promise((r) => setTimeout(r, 2));
      sim.ackWaitMs += Date.now() - t;
      continue;
    }
    if (sim.inFlight === 0) return;
  }
}

/**
 * @param {import("./trace.mjs").Trace} trace @param {import("./trace.mjs").Msg[]} msgs @param {PigeonOptions} opts
 */
export async function runPigeon(trace, msgs, opts) {
  const sim = new Sim(trace, opts);
  const root = mkdtempSync(join(opts.dataDir ?? (existsSync("/dev/shm") ? "/dev/shm" : tmpdir()), "pigeon-trace-"));
  const progress = opts.progress ?? (() => {});
  const started = Date.now();
  try {
    const now = () => ms(sim.now);
    for (let i = 0; i < trace.ids.length; i++) {
      const name = `p${String(trace.ids[i]).toLowerCase().replace(/[^a-z0-9._-]/g, "-")}`.slice(0, 32);
      const identity = generateIdentity(name);
      const dir = join(root, String(i));
      const mailbox = new Mailbox({ identity, storage: fileStorage(dir), now, carrier: { quotaBytes: opts.storage }, lifetimeSeconds: opts.lifetime });
      const engine = new SyncEngine(mailbox, { hopLimit: opts.hopLimit, copies: opts.copies, now });
      // what mailbox.status().carrying.bytes reports (carried envelopes other than acknowledgements), and
      // the same with acknowledgements; one prepared statement instead of status()'s three queries
      const carriedStmt = mailbox.envelopes.db.prepare(
        `SELECT coalesce(sum(CASE WHEN kind != 3 THEN size ELSE 0 END), 0) AS m, coalesce(sum(size), 0) AS a FROM envelopes WHERE carried = 1`,
      );
      const carried = () => {
        const r = /** @type {{ m: number, a: number }} */ (carriedStmt.get());
        return /** @type {[number, number]} */ ([r.m, r.a]);
      };
      sim.nodes.push({ id: /** @type {string} */ (trace.ids[i]), identity, card: contactCard(identity), mailbox, engine, dir, carried });
    }
    sim.now = trace.slots[0]?.t ?? 0;
    if (opts.classes) await startChannels(sim, opts.classes.groups, progress);
    // the school provisioned everyone's card: each sender has its recipients as buddies, and each
    // recipient its senders (so their messages are buddies' messages, not requests, and get delivered
    // receipts); a card the child adds makes a buddy
    else
      for (const m of msgs) {
        const s = /** @type {Node} */ (sim.nodes[m.src]);
        const d = /** @type {Node} */ (sim.nodes[m.dst]);
        await s.mailbox.addContact(d.card);
        await d.mailbox.addContact(s.card);
      }
    /** @type {{ at: number, count: number }[]} */
    const arrivals = msgs.map(() => ({ at: NaN, count: 0 }));
    // "#n" in a body is the message's number; for class posts, the post's, and each member's copy counts apart
    const byNumber = new Map(msgs.map((m, k) => [opts.classes ? `${/** @type {any} */ (m).post}|${m.dst}` : String(m.n), k]));
    for (let i = 0; i < sim.nodes.length; i++) {
      const node = /** @type {Node} */ (sim.nodes[i]);
      node.mailbox.on("message", (v) => {
        if (v.direction !== "in") return;
        const n = /^#(\d+)/.exec(v.body)?.[1];
        if (n === undefined) return;
        const k = byNumber.get(opts.classes ? `${n}|${i}` : n);
        if (k === undefined) throw new Error(`message #${v.body.slice(0, 6)} appeared at the wrong person`);
        const a = /** @type {{ at: number, count: number }} */ (arrivals[k]);
        if (/** @type {import("./trace.mjs").Msg} */ (msgs[k]).dst !== i) throw new Error(`message #${v.body.slice(0, 6)} appeared at the wrong person`);
        a.count++;
        if (a.count === 1) a.at = sim.now;
      });
    }

    /** @type {Set<number>} nodes that stored an envelope since the last sample */
    const dirty = new Set();
    sim.nodes.forEach((n, i) =>
      n.mailbox.on("envelope", ({ id }) => {
        dirty.add(i);
        const hex = toHex(id);
        if (!sim.kinds.has(hex)) {
          const env = n.mailbox.envelopes.get(id);
          if (env) sim.kinds.set(hex, env.kind);
        }
      }),
    );
    const setupMs = Date.now() - started;
    /** @type {Map<string, Contact>} */
    const open = new Map();
    let peakCarried = 0;
    let peakCarriedAll = 0;
    let next = 0;
    const end = slotAt(trace.slots, Infinity);
    let lastReport = Date.now();
    for (let k = 0; k < end; k++) {
      const slot = /** @type {import("./trace.mjs").Slot} */ (trace.slots[k]);
      sim.now = slot.t;
      // contacts that did not continue into this slot end (a pair in contact in consecutive slots keeps its link)
      const here = new Set(slot.pairs.map(([a, b]) => `${a} ${b}`));
      const prevT = k > 0 ? /** @type {import("./trace.mjs").Slot} */ (trace.slots[k - 1]).t : -Infinity;
      for (const [key, c] of open) {
        if (!here.has(key) || slot.t - prevT > SLOT_SECONDS) {
          c.close();
          open.delete(key);
        }
      }
      /** @type {Set<number>} */
      const active = new Set();
      for (const c of open.values()) {
        active.add(c.a);
        active.add(c.b);
        c.nextSlot();
      }
      // messages created at this time are written before this slot's contacts are met
      const written = opts.classes?.posts ?? msgs;
      while (next < written.length && /** @type {{ t0: number }} */ (written[next]).t0 <= slot.t) {
        const m = /** @type {import("./trace.mjs").Msg | import("./trace.mjs").Post} */ (written[next++]);
        const s = /** @type {Node} */ (sim.nodes[m.src]);
        const body = `#${m.n} `.padEnd(opts.bodyChars, "x");
        const view =
          "group" in m
            ? await s.mailbox.sendToChannel(/** @type {import("./trace.mjs").ClassGroup} */ (opts.classes?.groups[m.group]).title, body)
            : await s.mailbox.send(/** @type {Node} */ (sim.nodes[m.dst]).mailbox.address, body);
        const envId = s.mailbox.state.sentEnvelope(view.id);
        if (envId) sim.msgEnvelopes.set(toHex(envId), m.n);
        active.add(m.src);
      }
      for (const [a, b] of slot.pairs) {
        const key = `${a} ${b}`;
        if (open.has(key)) continue;
        open.set(key, new Contact(sim, a, b));
        active.add(a);
        active.add(b);
      }
      const st0 = Date.now();
      await settle(sim, active);
      sim.settleMs += Date.now() - st0;
      // carried bytes only grow when an envelope is stored: sample the nodes that stored one this slot
      for (const i of dirty) {
        const [msgBytes, allBytes] = /** @type {Node} */ (sim.nodes[i]).carried();
        peakCarried = Math.max(peakCarried, msgBytes);
        peakCarriedAll = Math.max(peakCarriedAll, allBytes);
      }
      dirty.clear();
      if (Date.now() - lastReport > 5000) {
        lastReport = Date.now();
        const done = arrivals.filter((a) => a.count > 0).length;
        progress(`pigeon: slot ${k + 1}/${end} (t=${slot.t}), ${done}/${msgs.length} delivered, ${Math.round((Date.now() - started) / 1000)} s`);
      }
    }
    for (const c of open.values()) c.close("end of trace");
    return { arrivals, tx: sim.tx, bytes: sim.bytes, byFrame: sim.byFrame, byFrameAgain: sim.byFrameAgain, meetings: sim.meetings, againBytes: sim.againBytes, envelopeBytes: sim.envelopeBytes, lostFrames: sim.lostFrames, peakCarried, peakCarriedAll, wallMs: Date.now() - started, ackWaitMs: sim.ackWaitMs, setupMs, settleMs: sim.settleMs, sizes: await envelopeSizes(sim, msgs) };
  } finally {
    for (const n of sim.nodes) {
      n.engine.close();
      await n.mailbox.close();
    }
    rmSync(root, { recursive: true, force: true });
  }
}

/**
 * The class channels exist before the replay: each owner has the cards of their class (the school's
 * directory), creates the channel and adds everyone, and the class is together once (a morning in the
 * classroom, links without a byte budget) until every member has the channel. What that moved is not
 * counted: the replay measures the posts.
 * @param {Sim} sim @param {import("./trace.mjs").ClassGroup[]} groups @param {(msg: string) => void} progress
 */
async function startChannels(sim, groups, progress) {
  const node = (/** @type {number} */ i) => /** @type {Node} */ (sim.nodes[i]);
  const links = [];
  for (const g of groups) {
    const owner = node(g.owner);
    for (const m of g.members) {
      await owner.mailbox.addContact(node(m).card);
      await node(m).mailbox.addContact(owner.card);
    }
    await owner.mailbox.createChannel(g.title);
    await owner.mailbox.addToChannel(g.title, { addresses: g.members.map((m) => node(m).mailbox.address) });
    for (const m of g.members) {
      const [a, b] = memoryLinkPair(owner.card, node(m).card);
      owner.engine.attach(a);
      node(m).engine.attach(b);
      links.push(a);
    }
  }
  const has = () => groups.every((g) => g.members.every((m) => node(m).mailbox.channels().some((c) => c.title === g.title && c.member)));
  const end = Date.now() + 10 * 60_000;
  while (!has()) {
    if (Date.now() > end) throw new Error("the class channels did not reach every member in 10 minutes");
    await new Promise((r) => setTimeout(r, 20));
  }
  await settle(sim, new Set(groups.flatMap((g) => [g.owner, ...g.members])));
  for (const l of links) l.close("the morning in class is over");
  progress(`${groups.length} class channels started (${groups.map((g) => `${g.title}: ${g.members.length + 1}`).join(", ")})`);
}

/** Each message's envelope size in bytes (for the baselines' carried bytes). @param {Sim} sim @param {import("./trace.mjs").Msg[]} msgs */
async function envelopeSizes(sim, msgs) {
  /** @type {Map<number, number>} */
  const out = new Map();
  for (const [hex, n] of sim.msgEnvelopes) {
    const m = msgs.find((x) => x.n === n);
    if (!m) continue;
    const meta = /** @type {Node} */ (sim.nodes[m.src]).mailbox.envelopes.meta(Uint8Array.from(Buffer.from(hex, "hex")));
    if (meta) out.set(n, meta.size);
  }
  return out;
}
