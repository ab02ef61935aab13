// Reconciles sealed stores over authenticated links (PeerLink, implemented by `peers`).
//
// On connect both send SINCE; then, unless they met before (below), the node with the smaller key
// sends a sketch of its set (an IBLT, SKETCH level 0). The
// other subtracts its own sketch and peels the difference: if it decodes, it asks for what it lacks
// (WANT8), sends what the other lacks (ENVELOPE, most important first) and says DONE; if not, it
// answers with its own sketch one level larger (8x), and the roles swap. Identical stores settle in
// one round trip after the SINCEs, with one sketch of under a kilobyte; the cost grows with the difference, not with
// what is stored. Past the largest level the id space is split into 16 slices, each reconciled the
// same way (recursively), so a relay point settles 100,000 differences without listing a million ids.
// Two laptops that met before, neither restarted since, skip all that: each lists only what entered
// its store since their last finished meeting (SINCE, MARK: docs/protocol.md), a few bytes where a
// sketch of every carried copy they both still hold would be kilobytes.
// Envelopes go out through one priority queue per link that waits while the socket is backed up.
// The link then stays open: every new envelope is announced at once (HAVE8), so a message to a
// neighbour goes through immediately.
// Longer than the other files on purpose: announcing, reconciling (sketches, slices, listings),
// sending and receiving all read and change one link's session (what the peer has and lacks, the
// queue, flow control), and split apart they would pass that state around instead.
import { EventEmitter } from "node:events";
import {
  decodeBetweenVillages, isBetweenVillages, compareBytes, EPOCH_BYTES, crowdHash, CROWD_SALT_BYTES, DecodeError, fromHex, MAX_CROWD, randomBytes, EnvelopeKind, equalBytes, type ChatState, decodeFrame, decodeSealed, encodeFrame, envelopeId, formatAddress, IBLT_KEY_BYTES, MAX_IDS_PER_FRAME, SHORT_KEY_BYTES, MAX_PROBES_PER_FRAME, MAX_RANGE_DEPTH,
  rangeBounds, rangeChildren, rangeWeight, SKETCH_LEVELS, SPLIT_LEVEL, toHex, WHOLE_RANGE, WHOLE_WEIGHT,
  type ContactCard, type Iblt, type IdRange, type NotMineEntry, type PeerLink, type ProbeEntry, type SyncFrame, probeCheck, sha256,
  type LinkPeer,
} from "@pigeon/model";
import type { EnvelopeStore } from "./envelope-store.js";
import { silentLog, type Log } from "./log.js";
import type { Incoming, ReceiveResult } from "./mailbox/index.js";
import { estimateDifference, nextStep } from "./difference.js";
import { Encounters } from "./encounters.js";
import { SendQueue } from "./send-queue.js";
import { VillageDestinations } from "./village-destinations.js";

/** A link with more than this waiting in its socket gets no more envelopes until it drains. */
export const SEND_HIGH_WATER = 1 << 20;
/** Envelopes received on a link and not yet stored: above the high mark the link is paused, below the low resumed. */
export const RECEIVE_HIGH_WATER = 512;
export const RECEIVE_LOW_WATER = 128;
/**
 * Ids a link remembers the peer holds (so they are not announced back). Only envelopes that moved or
 * were asked for are remembered, not a listing's known ids; past this many the memory starts afresh,
 * so a link that stays up for weeks does not grow without end.
 */
const PEER_HAS_MAX = 200_000;
/** An envelope's 16-byte id prefix: how sketches and Probes name it. */
const idKey = (id: Uint8Array): Uint8Array => id.subarray(0, IBLT_KEY_BYTES);
/** Its 8-byte id prefix: how listings, announcements and their answers name it (Have8, Want8, NotMine8). */
const shortKey = (key: Uint8Array): Uint8Array => key.subarray(0, SHORT_KEY_BYTES);
/** What a link's memory of the peer (peerHas, peerLacks, receipt keys, not-mine) is keyed by: the short key, hex. */
const nameOf = (key: Uint8Array): string => toHex(key.subarray(0, SHORT_KEY_BYTES));
type ProbeMeta = { carried: boolean; kind: number; receivedAt: number; lifetime: number; recipients: Uint8Array[] };
/**
 * Probe entries a link answers (each costs one X25519 per sealing key): past this, further probes on
 * the link are ignored, so a hostile peer cannot keep a laptop busy.
 */
const MAX_PROBES_ANSWERED = 20_000;
/**
 * Arrivals (envelopes that entered the store) remembered for "since we last met" listings: a peer whose
 * last finished meeting is older than this many arrivals reconciles in full.
 */
const ARRIVALS_KEPT = 32_768;
/**
 * Envelopes (by name, see nameOf) a Probe showed are not for us, remembered so that other carriers of the
 * same envelope are told so (NotMine8) instead of probing again; past this many the memory starts afresh.
 */
const NOT_MINE_REMEMBERED = 16_384;
/** Peers whose last finished meeting is remembered (for SINCE), the longest unseen forgotten first. */
const MEETINGS_REMEMBERED = 1024;
/** Envelopes stored in one transaction. */
const RECEIVE_BATCH = 256;

export const DEFAULT_HOP_LIMIT = 6;

/** Spray-and-wait copy tokens an author's envelope starts with (binary spray: half go with each hand-over). */
export const DEFAULT_COPIES = 64;
/** Tokens claimed in a frame are capped, so a peer cannot inflate an envelope's spread. */
export const MAX_COPIES = 256;
/** Probed envelopes remembered per peer, and peers remembered (forgetting costs a repeated probe, nothing else). */
const PROBES_REMEMBERED = 4096;
const PEERS_PROBED_REMEMBERED = 1024;
/** Copy tokens a relay point hands with mail for another village to the carrier its table chose. */
export const RELAY_HANDOVER_COPIES = 8;

/** Copies with no tokens an author hands, per message, to peers that meet its recipient often. */
export const MAX_FOCUS_COPIES = 4;

/**
 * What the engine needs of a node's store, and nothing more (Mailbox implements it): the sealed
 * envelopes' index and routing facts, the door through which received envelopes enter, and the
 * events that say a new envelope is there to announce.
 */
export interface SyncStore {
  /** This user's person key (what envelopes name). */
  readonly me: Uint8Array;
  /** This device's key (what links name: a person's two devices are two peers). */
  readonly myDevice: Uint8Array;
  readonly envelopes: Pick<
    EnvelopeStore,
    | "sketches" | "sliceSketch" | "batch" | "idsAfter" | "knowsKey" | "isOwn" | "markHanded" | "byKey" | "has"
    | "meta" | "bytesOf" | "ownReceiptNames" | "ownReceiptsNaming" | "ackConcerns" | "ackedByAllRecipients" | "isCarried" | "isParty" | "setCopies" | "opened"
  >;
  /**
   * Whether every recipient of this user's own envelope lives in another village: its copy goes
   * there behind a relay point's name (kind 7), so the sealed one goes only to its own parties.
   */
  elsewhere?(recipients: Uint8Array[]): boolean;
  /** A laptop was met over an authenticated link. */
  rememberContact(card: ContactCard, how: string): void;
  /** Checks and stores envelopes that arrived (see Mailbox.receiveMany). */
  receiveMany(items: Incoming[]): Promise<ReceiveResult[]>;
  /** Whether one of this person's sealing keys recognises one of a sealed envelope's tags (a Probe). */
  recognises(ephemeral: Uint8Array, tags: Uint8Array[]): boolean;
  /**
   * How many sealing keys the person has: a "not mine" judged with fewer (before a keyring brought a
   * new one) no longer holds.
   */
  sealingKeyCount?(): number;
  /** Something a user would see changed (an envelope was handed on). */
  changed(): void;
  on(event: "envelope", fn: (env: { id: Uint8Array }) => void): unknown;
  off(event: "envelope", fn: (env: { id: Uint8Array }) => void): unknown;
}

/** What a link does with pairing frames (keyring.ts has the protocol). */
export interface PairingHooks {
  /** A device waiting to pair: the request to send to this newly linked peer, if any. */
  requestFor?(peer: LinkPeer): Uint8Array | undefined;
  /** Any node: answer a request with a grant, or a one-byte refusal (mailbox/devices.ts). */
  answer?(peer: LinkPeer, request: Uint8Array): Promise<Uint8Array | undefined>;
  /** A device waiting to pair: a grant arrived. */
  granted?(peer: LinkPeer, grant: Uint8Array): void;
}

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
  /** Pairing a new device with its person over a link (mailbox/devices.ts and node.ts). */
  pairing?: PairingHooks;
  log?: Log;
  now?: () => number;
}

export interface ReconcileStats {
  /** Sketches sent and received (every level and slice tried) before the difference decoded. */
  sketches: number;
  /** Slices of the id space the difference was split into (0 when one sketch sufficed). */
  slices: number;
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

/**
 * Live frames (chat states) per link and direction: a burst of 5, then one a second. A client that
 * sends "composing" at every key press (against XEP-0085) costs the link at most that; the rest are
 * dropped, and so are a peer's frames past it.
 */
export const LIVE_BURST = 5;
export const LIVE_PER_SECOND = 1;

class Budget {
  private tokens: number;
  private at = 0;
  constructor(private readonly burst: number, private readonly perSecond: number) {
    this.tokens = burst;
  }
  take(now: number): boolean {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) / 1000) * this.perSecond);
    this.at = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

class Session {
  /** The peer is remembered as a contact (retried on later frames if the disk was full at first). */
  met = false;
  readonly peerHas = new Set<string>();
  /** Envelopes we could not store (disk full): asked for again later. */
  readonly retry = new Map<string, Uint8Array>();
  readonly since: number;
  sent = 0;
  received = 0;
  readonly recon: ReconcileStats;
  /** Names (nameOf) of envelopes the peer told us it lacks during reconciliation (its Want8s). */
  readonly peerLacks = new Set<string>();
  /**
   * Carried sealed envelopes (hex ids) we asked the peer about with a Probe in this round: a Want16
   * naming one is the peer's claim. Cleared when a new round starts, whoever starts it: a later
   * round's Want16 (the peer lacks it, as the sketch showed) is not a claim, and the answer to a
   * probe comes at once, never a round later (a round starts only after 15 s of quiet).
   */
  readonly probed = new Set<string>();

  newRound(): void {
    this.probed.clear();
  }
  /**
   * How this round reconciles: not known before the peer's Since; "full" (sketches, or listings of
   * everything); "since" (each side lists what entered its store since their last finished meeting).
   */
  round: "undecided" | "full" | "since" = "undecided";
  /** The peer's engine epoch (hex), from its Since. */
  peerEpoch: string | undefined;
  /** Our arrivals this round offers the peer (how many had arrived when it started): what our Mark says. */
  roundThrough = 0;
  /** Our record of the peer was usable when we sent Since: for its epoch (hex), and what to list then. */
  sinceFor: string | undefined;
  sinceList: Uint8Array[] | undefined;
  /** A since round: our listing has gone out / the peer's listing's last page came. */
  listedOurs = false;
  listedTheirs = false;
  /** Listings of ours still going out. */
  listing = 0;
  /** Something was queued for the peer since our last Mark, whose echo then does not count. */
  dirty = true;
  markSent: number | undefined;
  /** The peer's Mark, echoed once what came before it is stored. */
  echoPending: number | undefined;
  /** Envelopes (names, see nameOf) our receipts name that a since round listed: a key the peer did not ask for is one it holds. */
  receiptKeys: Set<string> | undefined;
  /** Of those, the ones the peer claimed (its Want16 answer): sent to it with no tokens, first. */
  readonly claimed = new Set<string>();
  /**
   * Copy tokens we handed over on this link (hex id -> tokens, and how many of its locks were open
   * then): if the peer opens a lock before the link ends, it was a recipient, who never spends them.
   */
  readonly gave = new Map<string, { id: Uint8Array; tokens: number; opened: number }>();
  /** The peer's Crowd frame: salted hashes of whom it meets often (hex), or undefined before it came. */
  peerCrowd: { salt: Uint8Array; hashes: Set<string> } | undefined;
  /** Probe entries waiting to go out. */
  probes: ProbeEntry[] = [];
  /** Our own receipts (hex ids) naming envelopes reconciliation showed the peer holds: they go to it. */
  readonly receiptsFor = new Set<string>();
  /** Probe entries of the peer's we checked (bounded: MAX_PROBES_ANSWERED). */
  probesAnswered = 0;
  /** Share of the id space settled in this round (WHOLE_WEIGHT = all of it). */
  settled = 0;
  /** Envelopes waiting to go out on this link, most important first. */
  readonly outgoing = new SendQueue();
  pumping = false;
  /** Envelopes received and not yet handed to the mailbox; stored a batch at a time. */
  readonly inbound: Incoming[] = [];
  /** Received and not yet stored (waiting in `inbound` or in the mailbox). */
  unstored = 0;
  flushQueued = false;
  paused = false;
  lastReceivedAt = 0;
  /** Live chat states: what was last sent (not sent again while unchanged), and both ways' rate budgets. */
  lastChatState: ChatState | undefined;
  /** The latest state held back by the budget, sent when the budget allows (only the latest counts). */
  heldChatState: ChatState | undefined;
  heldTimer: NodeJS.Timeout | undefined;
  readonly chatStatesOut = new Budget(LIVE_BURST, LIVE_PER_SECOND);
  readonly chatStatesIn = new Budget(LIVE_BURST, LIVE_PER_SECOND);
  constructor(readonly link: PeerLink, now: number) {
    this.since = now;
    this.recon = { sketches: 0, slices: 0, roundTrips: 0, wanted: 0, offered: 0, done: false, fallback: false, startedAt: now };
  }

  /** A new full round of reconciliation (every resync, either side). `through`: our arrivals so far. */
  restart(now: number, through: number): void {
    this.peerLacks.clear();
    this.newRound();
    this.round = "full";
    this.roundThrough = through;
    this.dirty = true;
    this.markSent = undefined;
    this.settled = 0;
    Object.assign(this.recon, { sketches: 0, slices: 0, roundTrips: 0, wanted: 0, offered: 0, done: false, fallback: false, startedAt: now, doneAt: undefined });
  }
}

type Events = { "peer-up": [PeerLink]; "peer-down": [PeerLink, string]; "chat-state": [PeerLink, ChatState] };

export class SyncEngine extends EventEmitter<Events> {
  private readonly sessions = new Set<Session>();
  /** Whom this laptop meets often (its own contacts only): who gets how many copy tokens. */
  readonly encounters = new Encounters();
  private readonly hopLimit: number;
  private readonly copies: number;
  /** Envelopes (hex ids) each peer (hex person key) was already asked about with a Probe, on any link. */
  private readonly probedPeers = new Map<string, Set<string>>();
  /** Copies with no tokens we handed to peers that meet a recipient often (hex id -> count): bounded per envelope. */
  private readonly focusCopies = new Map<string, number>();
  private readonly mode: "sketch" | "list";
  /** Drawn at each start: a peer's record of a meeting with us holds only while this engine runs. */
  private readonly epoch = nonZeroEpoch();
  /** Envelopes (ids) in the order they entered the store since this engine started; the first `arrivalsDropped` are forgotten. */
  private arrivals: Uint8Array[] = [];
  private arrivalsDropped = 0;
  /**
   * Per peer device (hex): its epoch then, and how many of our arrivals it confirmed (the echo of our
   * Mark) holding what we offered of them. In memory only: after a restart every first meeting is full.
   */
  private readonly metBefore = new Map<string, { epoch: string; through: number }>();
  /**
   * Per peer device (hex): a digest of the crowd we last told it, and the last Crowd it told us. Two
   * laptops meeting again (a since round) send a Crowd only when theirs changed; each keeps the other's.
   */
  private readonly crowdsMet = new Map<string, CrowdsMet>();
  /**
   * Keys (hex) of envelopes we lack that a carrier's Probe showed are for someone else -> that entry's
   * check, and how many sealing keys judged it.
   */
  private readonly notMine = new Map<string, { check: Uint8Array; keys: number }>();
  private readonly log: Log;
  private readonly pairing: PairingHooks | undefined;
  private readonly now: () => number;
  private readonly onEnvelope = (env: { id: Uint8Array }) => {
    this.arrived(env.id);
    this.announce(env);
  };
  private retryTimer: NodeJS.Timeout | undefined;
  static RETRY_MS = 15_000;

  /**
   * Set on a relay point (relay-point.ts): whether mail for another village (kind 7, by id) goes to this
   * peer. Without it such mail is carried like any sealed envelope (laptops, mules).
   */
  villageRoute?: (id: Uint8Array, peer: Uint8Array) => boolean;

  constructor(readonly store: SyncStore, opts: SyncOptions = {}) {
    super();
    this.hopLimit = opts.hopLimit ?? DEFAULT_HOP_LIMIT;
    // Infinity turns the spray limit off (plain epidemic within the hop limit: simulations, baselines)
    this.copies = opts.copies === Infinity ? Infinity : Math.min(MAX_COPIES, opts.copies ?? DEFAULT_COPIES);
    this.mode = opts.reconcile ?? "sketch";
    this.pairing = opts.pairing;
    this.log = opts.log ?? silentLog;
    this.now = opts.now ?? Date.now;
    store.on("envelope", this.onEnvelope);
    const resync = opts.resyncMs ?? 30_000;
    if (this.mode === "sketch" && resync > 0)
      this.resyncTimer = setInterval(() => {
        for (const s of this.sessions)
          // not while envelopes are still moving: the difference would be what is in flight
          if (s.recon.done && compareBytes(this.store.myDevice, s.link.peer.device) < 0 && this.quiet(s, resync)) {
            s.restart(this.now(), this.arrivalCount);
            this.sendSketch(s, WHOLE_RANGE, 0);
          }
      }, resync).unref();
  }

  private resyncTimer: NodeJS.Timeout | undefined;

  /** Nothing queued either way on this link, and nothing arrived on it for a while. */
  private quiet(s: Session, ms: number): boolean {
    return s.outgoing.size === 0 && s.unstored === 0 && this.now() - s.lastReceivedAt >= ms / 2;
  }

  attach(link: PeerLink): void {
    const s = new Session(link, this.now());
    this.sessions.add(s);
    this.encounters.meet(toHex(link.peer.signPublicKey), this.now());
    const who = formatAddress(link.peer);
    // handlers first: nothing below (a full disk, say) may leave a link that never exchanges anything
    link.onFrame((bytes) => {
      void this.onFrame(s, bytes).catch((e: unknown) => {
        this.log.warn(`dropping link to ${who}: ${e instanceof DecodeError ? "protocol error: " : ""}${(e as Error).message}`);
        link.close("protocol error");
      });
    });
    link.onClose((reason) => {
      this.sessions.delete(s);
      this.takeBackTokens(s);
      clearTimeout(s.heldTimer);
      this.log.info(`disconnected from ${who}${reason ? `: ${reason}` : ""}`);
      this.emit("peer-down", link, reason);
    });
    this.meet(s);
    this.log.info(`connected to ${who} (${link.description})`);
    const pairRequest = this.pairing?.requestFor?.(link.peer);
    if (pairRequest) this.send(s, { type: "pair-request", request: pairRequest });
    this.emit("peer-up", link);
    this.sendSince(s);
    if (this.mode === "list") this.listInBackground(s, WHOLE_RANGE);
  }

  private get arrivalCount(): number {
    return this.arrivalsDropped + this.arrivals.length;
  }

  private arrived(id: Uint8Array): void {
    this.arrivals.push(id.slice()); // a copy: the id may be a view into the whole envelope's bytes
    if (this.arrivals.length > ARRIVALS_KEPT + ARRIVALS_KEPT / 4) {
      const drop = this.arrivals.length - ARRIVALS_KEPT;
      this.arrivals = this.arrivals.slice(drop);
      this.arrivalsDropped += drop;
    }
  }

  /**
   * First frame of the reconciliation: our epoch, and the peer's we remember a finished meeting with,
   * if what it confirmed then is still in our arrivals (what we would list now is taken here).
   */
  private sendSince(s: Session): void {
    const rec = this.metBefore.get(toHex(s.link.peer.device));
    s.roundThrough = this.arrivalCount;
    if (this.mode === "sketch" && rec && rec.through >= this.arrivalsDropped) {
      s.sinceFor = rec.epoch;
      s.sinceList = this.arrivals.slice(rec.through - this.arrivalsDropped);
    }
    this.send(s, { type: "since", epoch: this.epoch, yours: s.sinceFor ? fromHex(s.sinceFor) : new Uint8Array(EPOCH_BYTES) });
  }

  /**
   * The peer's Since: a since round when each side remembers the other's current epoch (both sides
   * work that out alike from the two frames), else a full round, started by the node whose key sorts first.
   */
  private onSince(s: Session, epoch: Uint8Array, yours: Uint8Array): void {
    if (s.peerEpoch !== undefined) return; // once per link
    s.peerEpoch = toHex(epoch);
    if (s.round !== "undecided") return; // the peer sketched first (a node that sends no Since)
    const again = s.sinceFor === s.peerEpoch && equalBytes(yours, this.epoch);
    // the peer's crowd from our last meeting holds until it sends a new one (it sends one only if it changed)
    if (again) s.peerCrowd ??= this.crowdsMet.get(toHex(s.link.peer.device))?.got;
    this.sendCrowd(s, again);
    if (again) {
      s.round = "since";
      void this.listSince(s).catch((e: unknown) => this.log.warn(`listing to ${formatAddress(s.link.peer)} stopped: ${(e as Error).message}`));
      return;
    }
    s.round = "full";
    s.sinceList = undefined;
    try {
      if (this.mode === "sketch" && compareBytes(this.store.myDevice, s.link.peer.device) < 0) this.sendSketch(s, WHOLE_RANGE, 0);
    } catch (e) {
      // counted as a finished round, so the periodic resync starts it again once the store works
      s.recon.done = true;
      this.log.warn(`could not start reconciling with ${formatAddress(s.link.peer)}: ${(e as Error).message}`);
    }
  }

  /**
   * Our side of a since round: what entered our store since the peer last confirmed, as far as it could
   * cross to the peer (worthListing), and the envelopes named by our receipts that arrived since (the
   * peer's silence on one says it holds it: it gets the receipt, once its answers are in, onMark).
   */
  private async listSince(s: Session): Promise<void> {
    const store = this.store.envelopes;
    const list = s.sinceList ?? [];
    s.sinceList = undefined;
    s.listing++;
    try {
      const arrivedSince = new Set(list.map((id) => toHex(id)));
      const receipted = new Set<string>();
      for (const r of store.ownReceiptNames(WHOLE_RANGE)) if (arrivedSince.has(toHex(r.receipt))) receipted.add(nameOf(r.envelope));
      s.receiptKeys = receipted;
      const keys = new Map<string, Uint8Array>();
      for (const k of receipted) keys.set(k, fromHex(k));
      for (const id of list) if (this.worthListing(s, id, receipted)) keys.set(nameOf(id), shortKey(id));
      const all = [...keys.values()];
      for (let i = 0; ; i += MAX_IDS_PER_FRAME) {
        if (s.link.closed) return;
        const last = i + MAX_IDS_PER_FRAME >= all.length;
        this.send(s, { type: "have8", last, keys: all.slice(i, i + MAX_IDS_PER_FRAME) });
        if (last) break;
        await new Promise<void>((r) => setImmediate(r));
        await this.drained(s);
      }
    } finally {
      s.listing--;
    }
    s.listedOurs = true;
    this.sinceProgress(s);
  }

  /** A since round is over when both listings are in; then (and whenever the queue drains) we Mark. */
  private sinceProgress(s: Session): void {
    if (s.round === "since" && s.listedOurs && s.listedTheirs && !s.recon.done) {
      s.settled = WHOLE_WEIGHT;
      this.finishReconcile(s);
    }
    this.maybeMark(s);
  }

  /**
   * Once everything this round offers the peer has gone out (nothing queued, no listing under way),
   * Mark: the peer's echo, which comes after every answer it gave to what preceded the Mark, lets the
   * next meeting list only what arrived after `roundThrough`.
   */
  private maybeMark(s: Session): void {
    if (this.mode !== "sketch" || s.link.closed || !s.dirty) return;
    const offered = s.round === "since" ? s.listedOurs : s.round === "full" && s.recon.done;
    if (!offered || s.listing > 0 || s.pumping || s.outgoing.size > 0) return;
    this.flushProbes(s);
    s.dirty = false;
    s.markSent = s.roundThrough;
    this.send(s, { type: "mark", echo: false, n: s.roundThrough });
  }

  private onMark(s: Session, echo: boolean, n: number): void {
    if (!echo) {
      // echoed once the envelopes that came before it are stored (and none must be asked for again)
      if (s.unstored > 0) s.echoPending = n;
      else if (s.retry.size === 0) this.send(s, { type: "mark", echo: true, n });
      return;
    }
    // something went into the queue after our Mark (an answer of the peer's): a later Mark counts
    if (n !== s.markSent || s.dirty || s.peerEpoch === undefined) return;
    if (s.receiptKeys?.size) {
      const store = this.store.envelopes;
      const receipts: Uint8Array[] = [];
      for (const key of s.receiptKeys)
        if (!s.peerLacks.has(key))
          for (const r of store.ownReceiptsNaming(fromHex(key)))
            if (!s.receiptsFor.has(toHex(r))) {
              s.receiptsFor.add(toHex(r));
              receipts.push(r);
            }
      s.receiptKeys = undefined;
      if (receipts.length) return this.enqueue(s, receipts);
    }
    const device = toHex(s.link.peer.device);
    this.metBefore.delete(device);
    this.metBefore.set(device, { epoch: s.peerEpoch, through: n });
    if (this.metBefore.size > MEETINGS_REMEMBERED) this.metBefore.delete(this.metBefore.keys().next().value!);
  }

  /** Our sketch of the set, or of one slice of it (read from disk: only the whole set is kept in memory). */
  private ourSketch(range: IdRange, level: number): { size: number; table: Iblt } {
    if (range.depth === 0) {
      const idx = this.store.envelopes.sketches();
      return { size: idx.size, table: idx.levels[level]! };
    }
    const { size, tables } = this.store.envelopes.sliceSketch(range, [level]);
    return { size, table: tables.get(level)! };
  }

  private sendSketch(s: Session, range: IdRange, level: number): void {
    const { size, table } = this.ourSketch(range, level);
    this.countTurn(s, range, level);
    this.send(s, { type: "sketch", range, level, size, table });
  }

  /**
   * Turns of the conversation so far, from where a sketch sits in the ladder (the whole set's levels,
   * then SPLIT_LEVEL.. for each depth of slices); 2 turns = 1 round trip.
   */
  private countTurn(s: Session, range: IdRange, level: number): void {
    const perSlice = SKETCH_LEVELS.length - SPLIT_LEVEL;
    const turn = range.depth === 0 ? level + 1 : SKETCH_LEVELS.length + (range.depth - 1) * perSlice + (level - SPLIT_LEVEL) + 1;
    s.recon.sketches++;
    s.recon.roundTrips = Math.max(s.recon.roundTrips, Math.ceil(turn / 2));
  }

  private finishReconcile(s: Session): void {
    s.recon.done = true;
    s.recon.doneAt = this.now();
    this.store.changed();
    this.maybeMark(s);
  }

  /** A slice (or the whole set) is reconciled; the round is over when they add up to the whole set. */
  private settle(s: Session, range: IdRange): void {
    s.settled += rangeWeight(range);
    if (s.settled >= WHOLE_WEIGHT && !s.recon.done) this.finishReconcile(s);
  }

  /** The peer's sketch: peel the difference, or answer with a bigger sketch, or with 16 sketches of slices. */
  private async onSketch(s: Session, range: IdRange, level: number, theirSize: number, table: Iblt): Promise<void> {
    const store = this.store.envelopes;
    // sixteen slice sketches can arrive in one socket read; each is a range scan and a peel: one per turn
    if (range.depth > 0) await new Promise<void>((r) => setImmediate(r));
    if (s.link.closed) return;
    // the peer starts a new round (a resync) on a link whose last round is over
    if (range.depth === 0 && level === 0 && s.recon.done) s.restart(this.now(), this.arrivalCount);
    if (s.round === "undecided") s.round = "full"; // a node that sends no Since
    this.countTurn(s, range, level);
    const ours = this.ourSketch(range, level);
    const delta = ours.table.subtract(table);
    const estimate = estimateDifference(delta); // before peeling, which empties cells
    const diff = delta.decode();
    if (!diff.complete) {
      // estimate the difference first: a sketch big enough at once, or ids listed when that is cheaper
      const step = nextStep(level, estimate, ours.size + theirSize);
      if (step === "list") {
        s.recon.fallback = true;
        this.send(s, { type: "done", range, level: SKETCH_LEVELS.length });
        this.listInBackground(s, range);
        return this.settle(s, range);
      }
      if (step !== "climb") return this.sendSketch(s, range, step.level);
      if (level + 1 < SKETCH_LEVELS.length) return this.sendSketch(s, range, level + 1);
      if (range.depth < MAX_RANGE_DEPTH) {
        // too different for the largest sketch: split the id space and start each slice again
        const slices = rangeChildren(range);
        s.recon.slices += slices.length - (range.depth === 0 ? 0 : 1);
        for (const slice of slices) {
          if (s.link.closed) return;
          this.sendSketch(s, slice, SPLIT_LEVEL);
          await new Promise<void>((r) => setImmediate(r)); // each slice is a range scan: answer pings between them
        }
        return;
      }
      // 16^8 slices deep and still not peeling (only a hostile peer gets here): list this slice's ids
      s.recon.fallback = true;
      this.send(s, { type: "done", range, level: SKETCH_LEVELS.length });
      this.listInBackground(s, range);
      return this.settle(s, range);
    }
    // what they have and we lack (and never had): ask for it
    const want = diff.theirs.filter((k) => !store.knowsKey(k));
    s.recon.wanted += want.length;
    this.askFor(s, want);
    this.send(s, { type: "done", range, level });
    // what we have and they lack: send it, most important first
    const ids = diff.ours.map((k) => store.byKey(k)).filter((id): id is Uint8Array => !!id);
    this.noteReceipts(s, range, new Set(diff.ours.map(nameOf)));
    s.recon.offered += ids.length;
    this.enqueue(s, ids);
    this.settle(s, range);
  }

  /**
   * Once the difference of a range is known, every other id of ours in it is one the peer holds (or
   * had). Our receipts for sealed envelopes the peer holds go to it, so a carrier that holds a copy
   * for us (it cannot know it is ours) learns from us that it was delivered. (`lacks`: names, see nameOf.)
   */
  private noteReceipts(s: Session, range: IdRange, lacks: Set<string>): void {
    const store = this.store.envelopes;
    for (const { receipt, envelope } of store.ownReceiptNames(range))
      if (!lacks.has(nameOf(envelope)) && store.has(envelope)) s.receiptsFor.add(toHex(receipt));
  }

  private listInBackground(s: Session, range: IdRange): void {
    s.listing++;
    void this.sendListing(s, range)
      .catch((e: unknown) => this.log.warn(`listing to ${formatAddress(s.link.peer)} stopped: ${(e as Error).message}`))
      .finally(() => {
        s.listing--;
        this.maybeMark(s);
      });
  }

  /** Queues envelopes the peer lacks; they go out in priority order as the link takes them. */
  private enqueue(s: Session, ids: Uint8Array[]): void {
    if (ids.length) s.dirty = true;
    for (const id of ids) {
      const key = toHex(id);
      if (!s.outgoing.has(key)) s.outgoing.push(id, key, this.priority(id, s));
    }
    void this.pump(s).catch((e: unknown) => this.log.warn(`sending to ${formatAddress(s.link.peer)} stopped: ${(e as Error).message}`));
  }

  /**
   * Drains a link's queue: a batch at a time (one store transaction for the bookkeeping), waiting
   * while the link is backed up, pausing between batches so pings and other links are answered.
   */
  private async pump(s: Session): Promise<void> {
    if (s.pumping) return;
    s.pumping = true;
    try {
      while (s.outgoing.size > 0 && !s.link.closed) {
        await this.drained(s);
        this.store.envelopes.batch(() => {
          for (let i = 0; i < 64 && s.outgoing.size > 0 && !s.link.closed; i++) this.sendOne(s, s.outgoing.pop()!);
        });
        this.flushProbes(s);
        if (s.outgoing.size > 0) await new Promise<void>((r) => setImmediate(r));
      }
    } finally {
      s.pumping = false;
    }
    this.store.changed();
    this.maybeMark(s);
  }

  /** Resolves once the link's socket holds at most SEND_HIGH_WATER bytes (or the link closed). */
  private async drained(s: Session): Promise<void> {
    while (!s.link.closed && (s.link.bufferedBytes?.() ?? 0) > SEND_HIGH_WATER) await new Promise<void>((r) => setTimeout(r, 5));
  }

  /** Sends one envelope if the forwarding policy still allows it, handing over spray tokens. */
  private sendOne(s: Session, id: Uint8Array): void {
    const store = this.store.envelopes;
    const meta = store.meta(id);
    if (!meta) return;
    if (!this.offerable(id, meta.hops, meta.receivedAt, meta.lifetime, s)) return this.probe(s, id, meta);
    const bytes = store.bytesOf(id);
    if (!bytes) return;
    // spray: a carrier gets half our tokens; a party (its recipient or author, or a peer that
    // recognised itself in a sealed envelope's tags) gets none to spend
    let give = 0;
    const claimed = s.claimed.has(toHex(id));
    // mail for the peer's own village (kind 7) arrives with it: no tokens, as to a recipient
    const arrives = meta.kind === EnvelopeKind.Between && this.forPeersVillage(id, s);
    if (this.copies !== Infinity && !claimed && !arrives && !store.isParty(id, s.link.peer.signPublicKey) && meta.kind !== EnvelopeKind.Ack) {
      const have = this.tokens(meta);
      const focus = this.focus(meta, s);
      give = focus ? this.focusShare(have) : this.share(have, s);
      // a relay point chose this carrier by its table: it gets a few copies to spread towards the
      // destination whatever the relay point holds (the table, not the tokens, bounds where it goes)
      if (meta.kind === EnvelopeKind.Between && this.villageRoute) give = Math.max(give, RELAY_HANDOVER_COPIES);
      if (focus && give === 0) this.focusCopies.set(toHex(id), (this.focusCopies.get(toHex(id)) ?? 0) + 1);
      store.setCopies(id, have - give);
      if (give > 0 && meta.kind === EnvelopeKind.Sealed) s.gave.set(toHex(id), { id, tokens: give, opened: store.opened(id) });
    }
    this.send(s, { type: "envelope", hops: meta.hops, copies: give, envelope: bytes });
    s.sent++;
    this.notePeerHas(s, id);
    store.markHanded(id, s.link.peer.signPublicKey, this.now());
    // our own message for another village left inside kind 7: the outbox says sent, and to whom
    if (meta.kind === EnvelopeKind.Between && isBetweenVillages(bytes)) {
      const inner = decodeBetweenVillages(bytes).sealed.id;
      if (store.isOwn(inner, this.store.me)) store.markHanded(inner, s.link.peer.signPublicKey, this.now());
    }
  }

  /**
   * A carried sealed envelope the policy does not let us hand this peer (one token left, or past the
   * hop limit): a carrier cannot tell whether the peer is one of its recipients, so it asks, with the
   * envelope's one-off key and tags. A peer that recognises itself answers Want16 and gets it with no
   * tokens; a peer that lies gets a useless copy, and cannot make us drop anything (only ack keys do).
   */
  private probe(s: Session, id: Uint8Array, meta: ProbeMeta): void {
    if (!this.wouldProbe(s, id, meta)) return;
    const hex = toHex(id);
    const bytes = this.store.envelopes.bytesOf(id);
    if (!bytes) return;
    const sealed = decodeSealed(bytes);
    s.probed.add(hex);
    this.rememberAsked(s, hex);
    s.probes.push({ key: id.subarray(0, 16), ephemeral: sealed.ephemeral, tags: sealed.slots.map((x) => x.tag) });
    if (s.probes.length >= MAX_PROBES_PER_FRAME) this.flushProbes(s);
  }

  /** The check of the Probe entry we would send about a carried sealed envelope (NotMine16 names it). */
  private probeEntryCheck(id: Uint8Array): Uint8Array | undefined {
    const meta = this.store.envelopes.meta(id);
    if (!meta?.carried || meta.kind !== EnvelopeKind.Sealed) return undefined;
    const bytes = this.store.envelopes.bytesOf(id);
    if (!bytes) return undefined;
    const sealed = decodeSealed(bytes);
    return probeCheck(sealed.ephemeral, sealed.slots.map((x) => x.tag));
  }

  /** The peer's answer about this envelope (hex id) is known, or asked for: it is not asked again, on any link. */
  private rememberAsked(s: Session, hex: string): void {
    const peer = toHex(s.link.peer.signPublicKey);
    const asked = this.probedPeers.get(peer) ?? new Set<string>();
    if (asked.size >= PROBES_REMEMBERED) asked.clear();
    asked.add(hex);
    this.probedPeers.delete(peer); // re-inserted last: the most recently probed peer
    this.probedPeers.set(peer, asked);
    if (this.probedPeers.size > PEERS_PROBED_REMEMBERED) this.probedPeers.delete(this.probedPeers.keys().next().value!);
  }

  /** Whether we would ask the peer about this envelope (`probe`): a live carried sealed copy we have not asked it about. */
  private wouldProbe(s: Session, id: Uint8Array, meta: ProbeMeta): boolean {
    if (!meta.carried || meta.kind !== EnvelopeKind.Sealed) return false;
    const hex = toHex(id);
    if (s.probed.has(hex) || meta.receivedAt + meta.lifetime * 1000 < this.now()) return false;
    // a peer's answer for an envelope never changes (its tags are fixed): ask each peer once, not once per link
    if (this.probedPeers.get(toHex(s.link.peer.signPublicKey))?.has(hex)) return false;
    return !this.store.envelopes.ackedByAllRecipients(id, meta.recipients);
  }

  private flushProbes(s: Session): void {
    while (s.probes.length) this.send(s, { type: "probe", entries: s.probes.splice(0, MAX_PROBES_PER_FRAME) });
  }

  /** A carrier asks which of its sealed envelopes are for us: Want16 for those whose tags our sealing keys match. */
  private async onProbe(s: Session, entries: ProbeEntry[]): Promise<void> {
    const want: Uint8Array[] = [];
    for (const e of entries) {
      if (s.probesAnswered >= MAX_PROBES_ANSWERED) break;
      s.probesAnswered++;
      if (this.store.envelopes.knowsKey(e.key)) continue;
      if (this.store.recognises(e.ephemeral, e.tags)) want.push(e.key);
      else {
        if (this.notMine.size >= NOT_MINE_REMEMBERED) this.notMine.clear();
        this.notMine.set(nameOf(e.key), { check: probeCheck(e.ephemeral, e.tags), keys: this.store.sealingKeyCount?.() ?? 0 });
      }
    }
    if (want.length) this.send(s, { type: "want8", keys: want.map(shortKey) });
    await new Promise<void>((r) => setImmediate(r)); // a frame of probes is up to a few hundred X25519: let pings in
  }

  /**
   * Tells `person` (their person key) whether the user is typing to them, over every open link to a
   * laptop of theirs, now or never: nothing is stored or carried, a link that is not up gets nothing.
   * Whether they may be told (a buddy) is the caller's decision. Returns the links it went over.
   */
  sendChatState(person: Uint8Array, state: ChatState): number {
    let n = 0;
    for (const s of this.sessions) {
      if (s.link.closed || !equalBytes(s.link.peer.signPublicKey, person)) continue;
      if (this.chatStateOn(s, state)) n++;
    }
    return n;
  }

  private chatStateOn(s: Session, state: ChatState): boolean {
    s.heldChatState = undefined;
    if (s.lastChatState === state) return false;
    if (!s.chatStatesOut.take(this.now())) {
      // over the budget: the last state still goes, a second later (the peer must not see "typing" forever)
      s.heldChatState = state;
      s.heldTimer ??= setTimeout(() => {
        s.heldTimer = undefined;
        if (s.heldChatState && !s.link.closed) this.chatStateOn(s, s.heldChatState);
      }, 1000 / LIVE_PER_SECOND).unref();
      return false;
    }
    s.lastChatState = state;
    this.send(s, { type: "chat-state", state });
    return true;
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
   * envelopes, and only until every recipient has acknowledged it. A person's own buddy list goes to
   * that person's devices only.
   */
  private offerable(id: Uint8Array, hops: number, receivedAt: number, lifetime: number, s: Session): boolean {
    const store = this.store.envelopes;
    if (store.isParty(id, s.link.peer.signPublicKey)) return true;
    if (receivedAt + lifetime * 1000 < this.now()) return false;
    const meta = store.meta(id);
    if (!meta) return false;
    // statements (a person's keyring: its revocations) go to everyone while they live: they are small,
    // and a revocation must reach laptops that never meet the person
    if (meta.kind === EnvelopeKind.Statement) return true;
    // acknowledgements (receipts) follow the copies: to whoever we handed a named envelope, or had it from
    if (meta.kind === EnvelopeKind.Ack) return s.receiptsFor.has(toHex(id)) || store.ackConcerns(id, s.link.peer.signPublicKey);
    // the person's own document (the buddy list: no recipients; sealed, no locks) is for the person's
    // own devices only: no receipt could ever clear a carrier's copy, and no one else has any use for it
    if (meta.recipients.length === 0) return false;
    // delivered: every lock of a sealed envelope open
    if (store.ackedByAllRecipients(id, meta.locks ?? meta.recipients)) return false;
    // our own message for other villages: the kind-7 copy travels, not this one (it would only spray
    // through a village where no one can open it)
    if (!meta.carried && this.store.elsewhere?.(meta.recipients)) return false;
    // mail for another village reaching someone of that village (its relay point, or a laptop there
    // that takes it out): handed over whatever the tokens, like a recipient. Without this a bus that
    // gave its last copies away at earlier stops (to relay points and laptops on the way) could never
    // hand it to the village it is for.
    if (meta.kind === EnvelopeKind.Between && this.forPeersVillage(id, s)) return true;
    // mail for another village on a relay point: only downhill, to a carrier its table says brings it closer
    if (meta.kind === EnvelopeKind.Between && this.villageRoute) return this.villageRoute(id, s.link.peer.signPublicKey);
    // the peer recognised itself in this sealed envelope's tags (a Probe): like a recipient
    if (s.claimed.has(toHex(id))) return true;
    if (hops >= this.hopLimit) return false;
    if (this.copies === Infinity || this.share(this.tokens(meta), s) >= 1) return true;
    // our own message, and the peer meets its recipient often: a copy even from our last token
    return this.focus(meta, s) && (this.focusCopies.get(toHex(id)) ?? 0) < MAX_FOCUS_COPIES;
  }

  /** Where mail for another village (kind 7) goes, by id (read once: the wrapper never changes). */
  private readonly villageDests = new VillageDestinations((id) => this.store.envelopes.bytesOf(id));
  /** Whether this kind-7 envelope is for the village the peer says it lives in. */
  private forPeersVillage(id: Uint8Array, s: Session): boolean {
    const dest = this.villageDests.of(id);
    return dest !== undefined && dest === s.link.peer.home;
  }

  /**
   * Tells the peer whom we meet often lately (our crowd), as hashes salted afresh for this link, so
   * an author can hand its messages to us when we meet their recipient. A peer can test a person it
   * knows against it, nothing more (docs/routing.md, "What a laptop tells about whom it meets").
   */
  private sendCrowd(s: Session, again: boolean): void {
    const crowd = this.encounters.crowd(this.now(), MAX_CROWD).filter((k) => k !== toHex(s.link.peer.signPublicKey));
    const met = this.rememberCrowds(s);
    // the set, not its order: the peer only tests membership, and the order moves with every meeting
    const digest = toHex(sha256(new TextEncoder().encode([...crowd].sort().join(","))).subarray(0, 8));
    // met again and nothing changed: the peer still holds the last one (an empty crowd is said once)
    if (again ? met.sent === digest : crowd.length === 0) return;
    met.sent = digest;
    // met again: the peer keeps our last one, so who left it and who joined, under its salt, when that
    // is smaller than a fresh frame (in a classroom a crowd moves by one or two people between meetings)
    const told = again ? met.told : undefined;
    if (told) {
      const now = new Set(crowd);
      const before = new Set(told.keys);
      const gone = told.keys.filter((k) => !now.has(k));
      const added = crowd.filter((k) => !before.has(k));
      if (4 * (gone.length + added.length) + 3 < CROWD_SALT_BYTES + 2 + 4 * crowd.length) {
        met.told = { salt: told.salt, keys: crowd };
        const hash = (k: string) => crowdHash(told.salt, fromHex(k));
        this.send(s, { type: "crowd-change", gone: gone.map(hash), added: added.map(hash) });
        return;
      }
    }
    const salt = randomBytes(CROWD_SALT_BYTES);
    met.told = { salt, keys: crowd };
    this.send(s, { type: "crowd", salt, hashes: crowd.map((k) => crowdHash(salt, fromHex(k))) });
  }

  private rememberCrowds(s: Session): CrowdsMet {
    const device = toHex(s.link.peer.device);
    const met = this.crowdsMet.get(device) ?? {};
    this.crowdsMet.delete(device); // re-inserted last: the most recently met
    this.crowdsMet.set(device, met);
    if (this.crowdsMet.size > MEETINGS_REMEMBERED) this.crowdsMet.delete(this.crowdsMet.keys().next().value!);
    return met;
  }

  /**
   * Our own envelope (we know its recipients), and the peer's crowd holds one of them, whom we do not
   * meet often ourselves: the peer is a better carrier for it than we are.
   */
  private focus(meta: { carried: boolean; recipients: Uint8Array[] }, s: Session): boolean {
    const crowd = s.peerCrowd;
    if (!crowd || meta.carried) return false;
    const now = this.now();
    return meta.recipients.some(
      (r) => !equalBytes(r, this.store.me) && crowd.hashes.has(toHex(crowdHash(crowd.salt, r))) && !this.encounters.familiar(toHex(r), now),
    );
  }

  /** A focused hand-over: most of our tokens (we keep a quarter), or a copy with none from our last one. */
  private focusShare(have: number): number {
    return have > 1 ? have - Math.max(1, Math.floor(have / 4)) : 0;
  }

  /**
   * A carrier cannot tell a recipient from any other peer, so a recipient may get half our tokens,
   * which it never spends. Its receipt opens one more lock while the link is up (receipts follow the
   * copies, back to us): then we take those tokens back, for the message's other recipients.
   */
  private takeBackTokens(s: Session): void {
    const store = this.store.envelopes;
    try {
      for (const g of s.gave.values()) {
        const meta = store.meta(g.id);
        if (!meta || store.opened(g.id) <= g.opened) continue;
        store.setCopies(g.id, Math.min(MAX_COPIES, this.tokens(meta) + g.tokens));
      }
    } catch (e) {
      this.log.warn(`could not take back copy tokens: ${(e as Error).message}`);
    }
    s.gave.clear();
  }

  /**
   * How many of our `have` copy tokens a carrier peer gets: half (binary spray), whoever it is. Giving
   * none to one's own crowd (met often lately) was measured: fewer transmissions, but copies travelled
   * further and arrived later (the high school's median doubled), so it was not kept (docs/routing.md).
   */
  private share(have: number, s: Session): number {
    if (have <= 1) return 0;
    return Math.floor(have / 2);
  }

  private tokens(meta: { copies?: number; carried: boolean }): number {
    return meta.copies ?? (meta.carried ? 1 : this.copies);
  }

  /**
   * What a short contact should move first: envelopes for or from the peer itself, then this user's
   * own, then acknowledgements, then other carried envelopes, smaller before larger.
   */
  private priority(id: Uint8Array, s: Session): number {
    const store = this.store.envelopes;
    const meta = store.meta(id);
    if (!meta) return 9;
    if (store.isParty(id, s.link.peer.signPublicKey) || s.claimed.has(toHex(id))) return 0;
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
  private async sendListing(s: Session, range: IdRange = WHOLE_RANGE): Promise<void> {
    const { lo, hi } = rangeBounds(range);
    // envelopes our own receipts name: listed whatever else, so that the peer's Want16 tells us whether
    // it holds them (and then gets the receipt, and drops its copy: noteReceipts)
    const receipted = new Set(this.store.envelopes.ownReceiptNames(range).map((r) => nameOf(r.envelope)));
    let after: Uint8Array = range.depth === 0 ? new Uint8Array(0) : lo.subarray(0, Math.ceil(range.depth / 2));
    for (;;) {
      if (s.link.closed) return;
      const page = this.store.envelopes.idsAfter(after, MAX_IDS_PER_FRAME, hi);
      const last = page.length < MAX_IDS_PER_FRAME;
      const listed = page.filter((id) => this.worthListing(s, id, receipted));
      if (listed.length || last) this.send(s, { type: "have8", last, keys: listed.map(shortKey) });
      if (last) return;
      after = page[page.length - 1]!;
      await new Promise<void>((r) => setImmediate(r));
      await this.drained(s);
    }
  }

  /**
   * Whether a listing names this envelope to the peer: only what could cross to it. A carried copy the
   * policy would not hand this peer (one token left) and that we already asked it about with a Probe
   * cannot move, and each meeting would list it and be asked for it again (on the whole traces most
   * of a contact's bytes: docs/benchmarks.md, "Issue 17 at the goal's own setup").
   */
  private worthListing(s: Session, id: Uint8Array, receipted: Set<string>): boolean {
    const meta = this.store.envelopes.meta(id);
    if (!meta) return false;
    if (receipted.has(nameOf(id))) return true;
    return this.offerable(id, meta.hops, meta.receivedAt, meta.lifetime, s) || this.wouldProbe(s, id, meta);
  }

  private send(s: Session, f: SyncFrame): void {
    if (!s.link.closed) s.link.send(encodeFrame(f));
  }

  /** Remembers that the peer holds an envelope, so it is not announced back (bounded: see PEER_HAS_MAX). */
  private notePeerHas(s: Session, id: Uint8Array): void {
    if (s.peerHas.size >= PEER_HAS_MAX) s.peerHas.clear(); // forgetting costs an 8-byte Have8 now and then
    s.peerHas.add(nameOf(id));
  }

  private meet(s: Session): void {
    try {
      this.store.rememberContact(s.link.peer, "met");
      s.met = true;
    } catch (e) {
      this.log.warn(`could not remember meeting ${formatAddress(s.link.peer)} yet: ${(e as Error).message}`);
    }
  }

  /**
   * A listing or an announcement (Have8; Have16 or Have from an older node), by id prefix: Want8 for
   * what we never had; our own messages the peer holds count as sent.
   */
  private async onHave(s: Session, keys: Uint8Array[], last: boolean): Promise<void> {
    const store = this.store.envelopes;
    const want: Uint8Array[] = [];
    const receipts: Uint8Array[] = [];
    let n = 0;
    for (const key of keys) {
      // a listing from a relay point is a million ids: pause now and then so pings are answered
      if (++n % 512 === 0) await new Promise<void>((r) => setImmediate(r));
      if (!store.knowsKey(key)) {
        this.notePeerHas(s, key);
        want.push(key);
        continue;
      }
      // "sent" = handed to at least one other device; only our own messages need that fact
      const id = store.byKey(key);
      if (id && store.isOwn(id, this.store.me)) store.markHanded(id, s.link.peer.signPublicKey, this.now());
      // the peer holds an envelope our receipt names (a carrier cannot know it was for us): it gets the receipt
      for (const r of store.ownReceiptsNaming(key))
        if (!s.receiptsFor.has(toHex(r))) {
          s.receiptsFor.add(toHex(r));
          receipts.push(r);
        }
    }
    this.askFor(s, want);
    if (receipts.length) this.enqueue(s, receipts);
    if (last) this.store.changed();
    if (last && s.round === "since" && !s.listedTheirs) {
      s.listedTheirs = true;
      this.sinceProgress(s);
    }
  }

  /**
   * Asks for envelopes we lack: Want16, or NotMine16 for those a carrier's Probe already showed are
   * not ours (the peer then sends them only as a carrier's copy, without probing us about them again).
   */
  private askFor(s: Session, keys: Uint8Array[]): void {
    const want: Uint8Array[] = [];
    const notMine: NotMineEntry[] = [];
    const sealingKeys = this.store.sealingKeyCount?.() ?? 0;
    for (const key of keys) {
      const judged = this.notMine.get(nameOf(key));
      if (judged && judged.keys === sealingKeys) notMine.push({ key: shortKey(key), check: judged.check });
      else want.push(shortKey(key));
    }
    for (let i = 0; i < want.length; i += MAX_IDS_PER_FRAME) this.send(s, { type: "want8", keys: want.slice(i, i + MAX_IDS_PER_FRAME) });
    for (let i = 0; i < notMine.length; i += MAX_IDS_PER_FRAME) this.send(s, { type: "not-mine8", entries: notMine.slice(i, i + MAX_IDS_PER_FRAME) });
  }

  private async onFrame(s: Session, bytes: Uint8Array): Promise<void> {
    if (!s.met) this.meet(s);
    const f = decodeFrame(bytes);
    switch (f.type) {
      case "have":
        return this.onHave(s, f.ids.map(idKey), f.last);
      case "have16":
      case "have8":
        return this.onHave(s, f.keys, f.last);
      case "want":
        this.enqueue(s, f.ids);
        return;
      case "want16":
      case "want8": {
        for (const k of f.keys) s.peerLacks.add(nameOf(k));
        // an answer to our Probe: the peer says it is a recipient of these
        if (s.probed.size)
          for (const k of f.keys) {
            const id = this.store.envelopes.byKey(k);
            if (id && s.probed.has(toHex(id))) s.claimed.add(toHex(id));
          }
        this.noteReceipts(s, WHOLE_RANGE, s.peerLacks);
        this.enqueue(s, f.keys.map((k) => this.store.envelopes.byKey(k)).filter((id): id is Uint8Array => !!id));
        return;
      }
      case "not-mine16":
      case "not-mine8": {
        // as Want16, but the peer is not a recipient of these: never a claim, and no Probe about them,
        // if the Probe it judged was our envelope's own (else it was fooled, and a Probe still goes)
        const ids: Uint8Array[] = [];
        for (const e of f.entries) {
          s.peerLacks.add(nameOf(e.key));
          const id = this.store.envelopes.byKey(e.key);
          if (!id) continue;
          if (this.probeEntryCheck(id)?.every((b, i) => b === e.check[i])) this.rememberAsked(s, toHex(id));
          ids.push(id);
        }
        this.noteReceipts(s, WHOLE_RANGE, s.peerLacks);
        this.enqueue(s, ids);
        return;
      }
      case "sketch":
        return this.onSketch(s, f.range, f.level, f.size, f.table);
      case "probe":
        return this.onProbe(s, f.entries);
      case "done":
        if (f.level >= SKETCH_LEVELS.length) {
          s.recon.fallback = true;
          this.listInBackground(s, f.range);
        }
        this.settle(s, f.range);
        return;
      case "pair-request": {
        const grant = await this.pairing?.answer?.(s.link.peer, f.request);
        if (grant) this.send(s, { type: "pair-grant", grant });
        return;
      }
      case "pair-grant":
        this.pairing?.granted?.(s.link.peer, f.grant);
        return;
      case "crowd":
        s.peerCrowd = { salt: f.salt, hashes: new Set(f.hashes.map(toHex)) };
        this.rememberCrowds(s).got = s.peerCrowd;
        return;
      case "crowd-change": {
        // applied to the crowd we keep for the peer (from this link, or our last meeting); without one
        // there is nothing to change (we forgot it): the peer's crowd is unknown until it sends a fresh one
        const base = s.peerCrowd;
        if (!base) return;
        const hashes = new Set(base.hashes);
        for (const h of f.gone) hashes.delete(toHex(h));
        for (const h of f.added) hashes.add(toHex(h));
        if (hashes.size > MAX_CROWD) throw new DecodeError(`a crowd change that makes ${hashes.size} people, limit ${MAX_CROWD}`);
        s.peerCrowd = { salt: base.salt, hashes };
        this.rememberCrowds(s).got = s.peerCrowd;
        return;
      }
      case "since":
        return this.onSince(s, f.epoch, f.yours);
      case "mark":
        return this.onMark(s, f.echo, f.n);
      case "chat-state":
        // shown only to the user's clients, and only if the link's person is a buddy (the listener's check)
        if (s.chatStatesIn.take(this.now())) this.emit("chat-state", s.link, f.state);
        return;
      case "envelope": {
        s.received++;
        s.lastReceivedAt = this.now();
        // the sender has it: never announce it back
        this.notePeerHas(s, envelopeId(f.envelope));
        s.inbound.push({ bytes: f.envelope, hops: f.hops + 1, from: formatAddress(s.link.peer), source: s.link.peer.signPublicKey, copies: Math.min(MAX_COPIES, f.copies) });
        if (++s.unstored > RECEIVE_HIGH_WATER && !s.paused) {
          s.paused = true;
          s.link.pause?.();
        }
        // a burst read from the socket arrives in one go: store it in one transaction
        if (!s.flushQueued) {
          s.flushQueued = true;
          queueMicrotask(() => this.storeInbound(s));
        }
        return;
      }
    }
  }

  private storeInbound(s: Session): void {
    s.flushQueued = false;
    while (s.inbound.length) {
      const batch = s.inbound.splice(0, RECEIVE_BATCH);
      void this.store
        .receiveMany(batch)
        .then((results) => results.forEach((r, i) => r.retry && this.retryLater(s, envelopeId(batch[i]!.bytes))))
        .catch((e: unknown) => this.log.warn(`storing envelopes from ${formatAddress(s.link.peer)} failed: ${(e as Error).message}`))
        .finally(() => {
          s.unstored -= batch.length;
          if (s.unstored === 0 && s.echoPending !== undefined) {
            const n = s.echoPending;
            s.echoPending = undefined;
            this.onMark(s, false, n);
          }
          if (s.paused && s.unstored < RECEIVE_LOW_WATER) {
            s.paused = false;
            s.link.resume?.();
          }
        });
    }
  }

  private retryLater(s: Session, id: Uint8Array): void {
    s.retry.set(toHex(id), id);
    this.retryTimer ??= setInterval(() => {
      let pending = 0;
      for (const sess of this.sessions) {
        const ids = [...sess.retry.values()].filter((x) => !this.store.envelopes.has(x)).slice(0, MAX_IDS_PER_FRAME);
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
  private announce(env: { id: Uint8Array }): void {
    const hex = nameOf(env.id);
    // most arrivals come from the only peer there is: no store lookup for them
    const lacking = [...this.sessions].filter((s) => !s.peerHas.has(hex));
    if (lacking.length === 0) return;
    const meta = this.store.envelopes.meta(env.id);
    if (!meta) return;
    for (const s of lacking) {
      if (!this.offerable(env.id, meta.hops, meta.receivedAt, meta.lifetime, s)) {
        this.probe(s, env.id, meta);
        this.flushProbes(s);
        continue;
      }
      this.send(s, { type: "have8", last: false, keys: [shortKey(env.id)] });
    }
  }

  close(): void {
    if (this.retryTimer) clearInterval(this.retryTimer);
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    this.store.off("envelope", this.onEnvelope);
    for (const s of [...this.sessions]) s.link.close("shutting down");
  }
}

/**
 * What two laptops that met keep of each other's crowds: a digest and the salt and people of the last
 * one we told (a change is said under that salt), and the last one we were told.
 */
type CrowdsMet = {
  sent?: string;
  told?: { salt: Uint8Array; keys: string[] };
  got?: { salt: Uint8Array; hashes: Set<string> };
};

/** An engine epoch: random, never all zeros (which says "none" in Since). */
function nonZeroEpoch(): Uint8Array {
  for (;;) {
    const e = randomBytes(EPOCH_BYTES);
    if (e.some((b) => b !== 0)) return e;
  }
}
