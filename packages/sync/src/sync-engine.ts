// Reconciles sealed stores over authenticated links (PeerLink, implemented by `peers`).
//
// On connect the node with the smaller key sends a sketch of its set (an IBLT, SKETCH level 0). The
// other subtracts its own sketch and peels the difference: if it decodes, it asks for what it lacks
// (WANT16), sends what the other lacks (ENVELOPE, most important first) and says DONE; if not, it
// answers with its own sketch one level larger (8x), and the roles swap. Identical stores settle in
// one round trip with one sketch of under a kilobyte; the cost grows with the difference, not with
// what is stored. Past the largest level both sides fall back to listing ids (HAVE).
// The link then stays open: every new envelope is announced at once (HAVE), so a message to a
// neighbour goes through immediately.
import { EventEmitter } from "node:events";
import {
  compareBytes, DecodeError, EnvelopeKind, decodeFrame, encodeFrame, envelopeId, formatAddress, MAX_IDS_PER_FRAME, SKETCH_LEVELS, toHex,
  type Envelope, type PeerLink, type SyncFrame,
} from "@pigeon/model";
import type { Log, Mailbox } from "./mailbox.js";
import { silentLog } from "./mailbox.js";

export const DEFAULT_HOP_LIMIT = 6;

/** Spray-and-wait copy tokens an author's envelope starts with (binary spray: half go with each hand-over). */
export const DEFAULT_COPIES = 64;
/** Tokens claimed in a frame are capped, so a peer cannot inflate an envelope's spread. */
export const MAX_COPIES = 256;

export interface SyncOptions {
  /** Envelopes that have travelled this many hops are only handed to their own recipients. */
  hopLimit?: number;
  /**
   * Binary spray-and-wait: copy tokens our own envelopes start with. A node holding n > 1 tokens hands
   * a carrier n/2 of them and keeps the rest; with 1 left it waits to meet a recipient.
   */
  copies?: number;
  /**
   * Long-lived links reconcile again this often (a sketch of under 1 KB when nothing differs), so a
   * carrier learns that a recipient it stays connected to now holds what it carries. Default 30 s.
   */
  resyncMs?: number;
  /** "sketch" (default): IBLT set reconciliation; "list": every id listed (the simple baseline). */
  reconcile?: "sketch" | "list";
  log?: Log;
  now?: () => number;
}

export interface ReconcileStats {
  /** Sketches exchanged (levels tried) before the difference decoded. */
  sketches: number;
  /** Turns of the conversation until the difference was known: 1 = one round trip. */
  roundTrips: number;
  /** Ids found missing here / there. */
  wanted: number;
  offered: number;
  done: boolean;
  fallback: boolean;
  startedAt: number;
  doneAt?: number;
}

export interface PeerView {
  address: string;
  signPublicKey: string;
  link: string;
  since: number;
  sentEnvelopes: number;
  receivedEnvelopes: number;
  reconcile: ReconcileStats;
}

class Session {
  readonly peerHas = new Set<string>();
  /** Envelopes we could not store (disk full): asked for again later. */
  readonly retry = new Map<string, Uint8Array>();
  readonly since: number;
  sent = 0;
  received = 0;
  readonly recon: ReconcileStats;
  /** 16-byte keys (hex) the peer told us it lacks during reconciliation (its WANT16s). */
  readonly peerLacks = new Set<string>();
  /** Carried envelopes for the peer that were in our set when we last sent a sketch. */
  carriedAtSketch: Uint8Array[] = [];
  constructor(readonly link: PeerLink, now: number) {
    this.since = now;
    this.recon = { sketches: 0, roundTrips: 0, wanted: 0, offered: 0, done: false, fallback: false, startedAt: now };
  }
}

type Events = { "peer-up": [PeerLink]; "peer-down": [PeerLink, string] };

export class SyncEngine extends EventEmitter<Events> {
  private readonly sessions = new Set<Session>();
  private readonly hopLimit: number;
  private readonly copies: number;
  private readonly mode: "sketch" | "list";
  private readonly log: Log;
  private readonly now: () => number;
  private readonly onEnvelope = (env: Envelope) => this.announce(env);
  private retryTimer: NodeJS.Timeout | undefined;
  static RETRY_MS = 15_000;

  constructor(readonly mailbox: Mailbox, opts: SyncOptions = {}) {
    super();
    this.hopLimit = opts.hopLimit ?? DEFAULT_HOP_LIMIT;
    // Infinity turns the spray limit off (plain epidemic within the hop limit: simulations, baselines)
    this.copies = opts.copies === Infinity ? Infinity : Math.min(MAX_COPIES, opts.copies ?? DEFAULT_COPIES);
    this.mode = opts.reconcile ?? "sketch";
    this.log = opts.log ?? silentLog;
    this.now = opts.now ?? Date.now;
    mailbox.on("envelope", this.onEnvelope);
    const resync = opts.resyncMs ?? 30_000;
    if (this.mode === "sketch" && resync > 0)
      this.resyncTimer = setInterval(() => {
        for (const s of this.sessions)
          if (s.recon.done && compareBytes(this.mailbox.me, s.link.peer.signPublicKey) < 0) {
            s.peerLacks.clear();
            s.recon.done = false;
            this.sendSketch(s, 0);
          }
      }, resync).unref();
  }

  private resyncTimer: NodeJS.Timeout | undefined;

  attach(link: PeerLink): void {
    const s = new Session(link, this.now());
    this.sessions.add(s);
    const who = formatAddress(link.peer);
    this.mailbox.rememberContact(link.peer, "met");
    this.log.info(`connected to ${who} (${link.description})`);
    link.onFrame((bytes) => {
      void this.onFrame(s, bytes).catch((e: unknown) => {
        this.log.warn(`dropping link to ${who}: ${e instanceof DecodeError ? "protocol error: " : ""}${(e as Error).message}`);
        link.close("protocol error");
      });
    });
    link.onClose((reason) => {
      this.sessions.delete(s);
      this.log.info(`disconnected from ${who}${reason ? `: ${reason}` : ""}`);
      this.emit("peer-down", link, reason);
    });
    this.emit("peer-up", link);
    if (this.mode === "list") void this.sendListing(s).catch((e: unknown) => this.log.warn(`listing to ${formatAddress(s.link.peer)} stopped: ${(e as Error).message}`));
    else if (compareBytes(this.mailbox.me, link.peer.signPublicKey) < 0) this.sendSketch(s, 0);
  }

  private sendSketch(s: Session, level: number): void {
    const idx = this.mailbox.envelopes.sketches();
    s.carriedAtSketch = this.mailbox.envelopes.carriedFor(s.link.peer.signPublicKey);
    s.recon.sketches++;
    s.recon.roundTrips = Math.ceil((s.recon.sketches + 1) / 2);
    this.send(s, { type: "sketch", level, size: idx.size, table: idx.levels[level]! });
  }

  private finishReconcile(s: Session): void {
    s.recon.done = true;
    s.recon.doneAt = this.now();
    this.mailbox.emit("changed");
  }

  /** The peer's sketch: peel the difference, or answer with a bigger sketch of our own. */
  private onSketch(s: Session, level: number, table: import("@pigeon/model").Iblt): void {
    const store = this.mailbox.envelopes;
    const mine = store.sketches().levels[level]!;
    const diff = mine.subtract(table).decode();
    s.recon.sketches++;
    s.recon.roundTrips = Math.ceil(s.recon.sketches / 2);
    if (!diff.complete) {
      if (level + 1 < SKETCH_LEVELS.length) return this.sendSketch(s, level + 1);
      // too different to peel: list everything instead (both sides)
      s.recon.fallback = true;
      this.send(s, { type: "done", level: SKETCH_LEVELS.length });
      void this.sendListing(s).catch((e: unknown) => this.log.warn(`listing to ${formatAddress(s.link.peer)} stopped: ${(e as Error).message}`));
      return this.finishReconcile(s);
    }
    // what they have and we lack (and never had): ask for it
    const want = diff.theirs.filter((k) => !store.knowsKey(k));
    s.recon.wanted = want.length;
    for (let i = 0; i < want.length; i += MAX_IDS_PER_FRAME) this.send(s, { type: "want16", keys: want.slice(i, i + MAX_IDS_PER_FRAME) });
    this.send(s, { type: "done", level });
    this.confirmHeld(s, new Set(diff.ours.map(toHex)), this.mailbox.envelopes.carriedFor(s.link.peer.signPublicKey));
    // what we have and they lack: send it, most important first
    const ids = diff.ours.map((k) => store.byKey(k)).filter((id): id is Uint8Array => !!id);
    s.recon.offered = ids.length;
    void this.sendEnvelopes(s, ids).catch((e: unknown) => this.log.warn(`sending to ${formatAddress(s.link.peer)} stopped: ${(e as Error).message}`));
    this.finishReconcile(s);
  }

  /**
   * Once the difference is known, every other id in our set is one the (authenticated) peer holds.
   * A carried envelope the peer is a recipient of is then as good as acknowledged by it: the copy can
   * go even if the peer's signed acknowledgement never reaches us.
   */
  private confirmHeld(s: Session, peerLacks: Set<string>, candidates: Uint8Array[]): void {
    const peer = s.link.peer.signPublicKey;
    const held = candidates.filter((id) => !peerLacks.has(toHex(id.subarray(0, 16))));
    if (held.length === 0) return;
    const dropped = this.mailbox.confirmDelivered(peer, held);
    if (dropped) this.log.info(`${formatAddress(s.link.peer)} holds ${dropped} envelope(s) we carried for them: dropped our copies`);
  }

  /** Sends the envelopes the peer lacks and may take, in priority order. */
  private async sendEnvelopes(s: Session, ids: Uint8Array[]): Promise<void> {
    const order = ids.map((id) => ({ id, p: this.priority(id, s) })).sort((a, b) => a.p - b.p);
    let n = 0;
    for (const { id } of order) {
      // a long batch pauses now and then, so pings and other links are answered meanwhile
      if (++n % 256 === 0) await new Promise<void>((r) => setImmediate(r));
      if (s.link.closed) return;
      const meta = this.mailbox.envelopes.meta(id);
      if (!meta || !this.offerable(id, meta.hops, meta.receivedAt, meta.lifetime, s)) continue;
      const env = this.mailbox.envelopes.get(id)!;
      // spray: a carrier gets half our tokens; a party (its recipient or author) gets none to spend
      let give = 0;
      if (this.copies !== Infinity && !this.mailbox.envelopes.isParty(id, s.link.peer.signPublicKey) && meta.kind !== EnvelopeKind.Ack) {
        const have = this.tokens(meta);
        give = Math.floor(have / 2);
        this.mailbox.envelopes.setCopies(id, have - give);
      }
      this.send(s, { type: "envelope", hops: meta.hops, copies: give, envelope: env.bytes });
      s.sent++;
      s.peerHas.add(toHex(id));
      this.mailbox.envelopes.markHanded(id, s.link.peer.signPublicKey, this.now());
    }
  }

  peers(): PeerView[] {
    return [...this.sessions].map((s) => ({
      address: formatAddress(s.link.peer),
      signPublicKey: toHex(s.link.peer.signPublicKey),
      link: s.link.description,
      since: s.since,
      sentEnvelopes: s.sent,
      receivedEnvelopes: s.received,
      reconcile: { ...s.recon },
    }));
  }

  /**
   * The forwarding policy (docs/routing.md): an envelope's own parties always get it; other carriers
   * get it while it is alive, within the hop limit, within this node's copy budget for carried
   * envelopes, and only until every recipient has acknowledged it.
   */
  private offerable(id: Uint8Array, hops: number, receivedAt: number, lifetime: number, s: Session): boolean {
    const store = this.mailbox.envelopes;
    if (store.isParty(id, s.link.peer.signPublicKey)) return true;
    if (receivedAt + lifetime * 1000 < this.now()) return false;
    const meta = store.meta(id);
    if (!meta) return false;
    // acknowledgements follow the copies: to whoever we handed a named envelope, or had it from
    if (meta.kind === EnvelopeKind.Ack) return store.ackConcerns(id, s.link.peer.signPublicKey);
    if (hops >= this.hopLimit) return false;
    if (store.ackedByAllRecipients(id, meta.recipients)) return false;
    return this.copies === Infinity || this.tokens(meta) > 1;
  }

  private tokens(meta: { copies?: number; carried: boolean }): number {
    return meta.copies ?? (meta.carried ? 1 : this.copies);
  }

  /**
   * What a short contact should move first: envelopes for or from the peer itself, then this user's
   * own, then acknowledgements, then other carried envelopes, smaller before larger.
   */
  private priority(id: Uint8Array, s: Session): number {
    const store = this.mailbox.envelopes;
    const meta = store.meta(id);
    if (!meta) return 9;
    if (store.isParty(id, s.link.peer.signPublicKey)) return 0;
    if (!store.isCarried(id)) return 1;
    if (meta.kind === 3) return 2;
    return 3 + Math.min(0.99, meta.size / 65536);
  }

  /**
   * Lists every stored id (the baseline exchange, and the fallback past the largest sketch), a page
   * at a time straight from SQLite with a pause between pages, so a relay point with a million
   * envelopes neither loads them all nor stops answering its links. The other side asks (WANT) and
   * the forwarding policy decides what is actually sent.
   */
  private async sendListing(s: Session): Promise<void> {
    let after: Uint8Array = new Uint8Array(0);
    for (;;) {
      if (s.link.closed) return;
      const page = this.mailbox.envelopes.idsAfter(after, MAX_IDS_PER_FRAME);
      const last = page.length < MAX_IDS_PER_FRAME;
      this.send(s, { type: "have", last, ids: page });
      if (last) return;
      after = page[page.length - 1]!;
      await new Promise<void>((r) => setImmediate(r));
    }
  }

  private send(s: Session, f: SyncFrame): void {
    if (!s.link.closed) s.link.send(encodeFrame(f));
  }

  private peerHasIt(s: Session, id: Uint8Array): void {
    s.peerHas.add(toHex(id));
    // "sent" = handed to at least one other device; only our own messages need that fact
    if (this.mailbox.envelopes.isOwn(id, this.mailbox.me)) this.mailbox.envelopes.markHanded(id, s.link.peer.signPublicKey, this.now());
  }

  private async onFrame(s: Session, bytes: Uint8Array): Promise<void> {
    const f = decodeFrame(bytes);
    switch (f.type) {
      case "have": {
        const want: Uint8Array[] = [];
        let n = 0;
        for (const id of f.ids) {
          // a listing from a relay point is a million ids: pause now and then so pings are answered
          if (++n % 512 === 0) await new Promise<void>((r) => setImmediate(r));
          this.peerHasIt(s, id);
          if (!this.mailbox.envelopes.knowsId(id)) want.push(id);
        }
        if (want.length) this.send(s, { type: "want", ids: want });
        if (f.last) this.mailbox.emit("changed");
        return;
      }
      case "want": {
        await this.sendEnvelopes(s, f.ids);
        this.mailbox.emit("changed");
        return;
      }
      case "want16": {
        for (const k of f.keys) s.peerLacks.add(toHex(k));
        const ids = f.keys.map((k) => this.mailbox.envelopes.byKey(k)).filter((id): id is Uint8Array => !!id);
        await this.sendEnvelopes(s, ids);
        this.mailbox.emit("changed");
        return;
      }
      case "sketch":
        this.onSketch(s, f.level, f.table);
        return;
      case "done":
        if (f.level >= SKETCH_LEVELS.length) {
          s.recon.fallback = true;
          void this.sendListing(s).catch((e: unknown) => this.log.warn(`listing to ${formatAddress(s.link.peer)} stopped: ${(e as Error).message}`));
        } else this.confirmHeld(s, s.peerLacks, s.carriedAtSketch); // only what our sketch showed them
        this.finishReconcile(s);
        return;
      case "envelope": {
        s.received++;
        // the sender has it: never announce it back
        s.peerHas.add(toHex(envelopeId(f.envelope)));
        const id = envelopeId(f.envelope);
        const r = await this.mailbox.receive(f.envelope, f.hops + 1, formatAddress(s.link.peer), s.link.peer.signPublicKey, Math.min(MAX_COPIES, f.copies));
        if (r.retry) this.retryLater(s, id);
        return;
      }
    }
  }

  private retryLater(s: Session, id: Uint8Array): void {
    s.retry.set(toHex(id), id);
    this.retryTimer ??= setInterval(() => {
      let pending = 0;
      for (const sess of this.sessions) {
        const ids = [...sess.retry.values()].filter((x) => !this.mailbox.envelopes.has(x)).slice(0, MAX_IDS_PER_FRAME);
        sess.retry.clear();
        if (ids.length) this.send(sess, { type: "want", ids });
        pending += ids.length;
      }
      if (pending === 0 && this.retryTimer) {
        clearInterval(this.retryTimer);
        this.retryTimer = undefined;
      }
    }, SyncEngine.RETRY_MS).unref();
  }

  /** A new envelope entered our store: tell every peer that may take it and does not have it. */
  private announce(env: Envelope): void {
    const meta = this.mailbox.envelopes.meta(env.id);
    if (!meta) return;
    const hex = toHex(env.id);
    for (const s of this.sessions) {
      if (s.peerHas.has(hex)) continue;
      if (!this.offerable(env.id, meta.hops, meta.receivedAt, meta.lifetime, s)) continue;
      this.send(s, { type: "have", last: false, ids: [env.id] });
    }
  }

  close(): void {
    if (this.retryTimer) clearInterval(this.retryTimer);
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    this.mailbox.off("envelope", this.onEnvelope);
    for (const s of [...this.sessions]) s.link.close("shutting down");
  }
}
