// A Pigeon node as a library: one object built from parts, opened, used, shut down (as one embeds
// automerge-repo's Repo). It owns what every embedder would otherwise copy: recovery before anything
// moves, the maintenance timers, the rule for dialling laptops that discovery finds, and a shutdown
// whose every step is guarded, so one failure never skips closing the store.
//
//   storage  (NodeStorage: fileStorage(dir) or memoryStorage())   -> Mailbox (sealed store, documents)
//   network  (LinkSource: WsNetwork from @pigeon/peers, ...)       -> SyncEngine, one session per link
//   finders  (PeerFinder: MdnsDiscovery, StaticPeers, ...)         -> dialled by the policy below
import { EventEmitter } from "node:events";
import { compareBytes, equalBytes, fingerprint, formatAddress, toHex, type Identity, type LinkTrust, type PeerLink, type SchoolKey } from "@pigeon/model";
import { silentLog, type Log } from "./log.js";
import { Mailbox } from "./mailbox/mailbox.js";
import type { CarrierLimits, MessageView } from "./mailbox/types.js";
import type { NodeStorage } from "./storage.js";
import { SyncEngine } from "./sync-engine.js";

/** Something that produces authenticated links (WebSocket today; later a USB drop or a relay). */
export interface LinkSource {
  /** Every link, accepted or dialled, after its handshake proved the peer. */
  on(event: "link", fn: (link: PeerLink) => void): unknown;
  off(event: "link", fn: (link: PeerLink) => void): unknown;
  links(): PeerLink[];
  /**
   * Takes whom this laptop shows who it is to in handshakes (its school's and an open pairing
   * window's secrets, and whether strangers too): the node hands over the mailbox's at start.
   */
  useTrust?(trust: LinkTrust): void;
  /** Opens a link to a found peer (needed only with finders that report addresses). */
  dial?(host: string, port: number): Promise<PeerLink>;
  close(): Promise<void>;
}

/**
 * A laptop heard of on the network, not yet proven: dialling it runs the handshake. A finder learns no
 * key and no name (mDNS announces none): only an opaque identifier that the other laptop picks and
 * changes, and its own identifier, so that the two sides can agree which one dials.
 */
export interface FoundPeer {
  /** The found laptop's current announced identifier (opaque bytes, new at every start and every hour). */
  id: Uint8Array;
  /** The finder's own announced identifier when it heard the peer. */
  ourId: Uint8Array;
  /**
   * Whether the announcement proves a link secret this laptop holds (mDNS: a schoolmate's tag). A
   * laptop that shows itself to schoolmates only does not dial one that is not (false); undefined: unknown.
   */
  shared?: boolean;
  host: string;
  port: number;
}

/** Finds peers (mDNS) or keeps links to fixed ones (StaticPeers): started with the node, stopped with it. */
export interface PeerFinder {
  start(): void;
  stop(): void | Promise<void>;
  /** Takes the node's link secrets (mDNS tags its announcements with the school's). */
  useTrust?(trust: LinkTrust): void;
  /** Finders that report peers let the node dial them (one side dials, with a growing pause after failures). */
  on?(event: "peer", fn: (p: FoundPeer) => void): unknown;
}

export interface NodeLimits {
  carrier?: Partial<CarrierLimits>;
  /** Envelopes that travelled this many hops go only to their recipients (default 6). */
  hopLimit?: number;
  /** Spray-and-wait copy tokens of the user's own envelopes (default 64). */
  copies?: number;
  /** How long envelopes live (default 24 h). */
  lifetimeSeconds?: number;
}

export interface PigeonNodeOptions {
  identity: Identity;
  storage: NodeStorage;
  network?: LinkSource;
  finders?: PeerFinder[];
  log?: Log;
  limits?: NodeLimits;
  /** Every this often, what had to wait for a full disk is retried (default 10 s). */
  retryMs?: number;
  /** Every this often, envelopes past their lifetime are dropped (default 60 s). */
  expiryMs?: number;
  /** Long-lived links reconcile again this often (default 30 s). */
  resyncMs?: number;
  now?: () => number;
  /** A school server's key: the node writes the school's directory (Mailbox.school). */
  school?: SchoolKey;
  /**
   * Whether the laptop shows who it is to laptops that share no secret with it (not of its school,
   * not being paired). Default: only when it belongs to no school (docs/protocol.md, handshake).
   */
  meetStrangers?: boolean;
}

type NodeEvents = {
  message: [MessageView];
  "peer-up": [PeerLink];
  "peer-down": [PeerLink, string];
};

export class PigeonNode extends EventEmitter<NodeEvents> {
  readonly mailbox: Mailbox;
  readonly sync: SyncEngine;
  readonly identity: Identity;
  /** Whom this laptop shows itself to (handshakes, mDNS tags, which found laptops it dials). */
  private readonly trust: LinkTrust;
  private readonly network: LinkSource | undefined;
  private readonly finders: PeerFinder[];
  private readonly log: Log;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly dialing = new Set<string>();
  private readonly nextDial = new Map<string, { at: number; pause: number }>();
  /** The link each found address's last successful dial gave ("host:port" -> link). */
  private readonly dialled = new Map<string, PeerLink>();
  private readonly now: () => number;
  private shuttingDown: Promise<void> | undefined;
  private readonly onLink = (link: PeerLink) => {
    // a device its person (or the school) revoked gets no link: it receives nothing new from us
    const why = this.mailbox.devices.revoked(link.peer.device);
    if (why) {
      this.log.warn(`refused a link from a revoked device of ${formatAddress(link.peer)} (${why})`);
      link.close("revoked device");
      return;
    }
    this.sync.attach(link);
  };

  private constructor(opts: PigeonNodeOptions, mailbox: Mailbox) {
    super();
    this.identity = opts.identity;
    this.mailbox = mailbox;
    this.trust = mailbox.linkTrust(opts.meetStrangers);
    this.network = opts.network;
    this.finders = opts.finders ?? [];
    this.log = opts.log ?? silentLog;
    this.now = opts.now ?? Date.now;
    this.sync = new SyncEngine(mailbox, {
      hopLimit: opts.limits?.hopLimit, copies: opts.limits?.copies, resyncMs: opts.resyncMs, log: this.log, now: opts.now,
      pairing: { answer: (peer, request) => mailbox.devices.answerPairing(peer, request) },
    });
    mailbox.on("message", (m) => this.emit("message", m));
    // a device revoked while linked: the link goes now, not at its next reconnection
    mailbox.on("device-revoked", (device) => {
      for (const l of this.network?.links() ?? []) if (!l.closed && equalBytes(l.peer.device, device)) l.close("revoked device");
    });
    this.sync.on("peer-up", (l) => this.emit("peer-up", l));
    this.sync.on("peer-down", (l, r) => this.emit("peer-down", l, r));
  }

  /**
   * Opens the store, recovers what a crash or a full disk left (before any link can bring more),
   * then takes links from the network and starts the finders and the maintenance timers.
   */
  static async open(opts: PigeonNodeOptions): Promise<PigeonNode> {
    const log = opts.log ?? silentLog;
    const mailbox = new Mailbox({
      identity: opts.identity, storage: opts.storage, log, now: opts.now, carrier: opts.limits?.carrier, lifetimeSeconds: opts.limits?.lifetimeSeconds,
      school: opts.school,
    });
    try {
      await mailbox.recover();
    } catch (e) {
      await mailbox.close().catch(() => {});
      throw e;
    }
    const node = new PigeonNode(opts, mailbox);
    node.network?.useTrust?.(node.trust);
    for (const f of opts.finders ?? []) f.useTrust?.(node.trust);
    if (node.network) {
      node.network.on("link", node.onLink);
      for (const l of node.network.links()) if (!l.closed) node.onLink(l);
    }
    for (const f of node.finders) {
      f.on?.("peer", (p) => node.found(p));
      try {
        f.start();
      } catch (e) {
        log.warn(`a peer finder did not start: ${(e as Error).message}`);
      }
    }
    // once the disk has room again, open what had to wait (see Mailbox.retryAfterStorageTrouble)
    node.timers.push(setInterval(() => void mailbox.retryAfterStorageTrouble().catch(() => {}), opts.retryMs ?? 10_000).unref());
    // carried envelopes past their lifetime are dropped (a minute is fine: offers already skip them)
    node.timers.push(setInterval(() => void mailbox.dropExpired().catch(() => {}), opts.expiryMs ?? 60_000).unref());
    log.info(`pigeon node for ${formatAddress(opts.identity)} (fingerprint ${fingerprint(opts.identity.person)})`);
    return node;
  }

  get address(): string {
    return formatAddress(this.identity);
  }

  /** Sends a message (see Mailbox.send): stored and sealed when this resolves; it travels by itself. */
  send(address: string, body: string): Promise<MessageView> {
    return this.mailbox.send(address, body);
  }

  /** Dials a peer at a known address (the network must be able to dial). */
  async connect(host: string, port: number): Promise<PeerLink> {
    if (!this.network?.dial) throw new Error("this node's network cannot dial");
    return this.network.dial(host, port);
  }

  /**
   * The dial rule for found peers: only the side whose announced identifier sorts lower dials (two
   * laptops that find each other do not race; equal identifiers, which never happen in practice, both
   * dial), not again while the link a dial to that address gave is open, one dial at a time per found
   * identifier, and a growing pause (5 s .. 60 s) after each failure, so twenty laptops in one room do
   * not drown each other in dials.
   *
   * Who is behind an identifier is learnt only by dialling, so a laptop that is already linked the
   * other way (it dialled us, or its identifier changed since) can be dialled once more: the network
   * keeps one link per peer and closes the duplicate.
   */
  private found(p: FoundPeer): void {
    const net = this.network;
    if (!net?.dial || this.shuttingDown) return;
    if (compareBytes(p.ourId, p.id) > 0) return;
    // a laptop that shows itself to schoolmates only does not dial one it does not recognise
    if (p.shared === false && !this.trust.showToStrangers()) return;
    const address = `${p.host}:${p.port}`;
    const earlier = this.dialled.get(address);
    if (earlier && !earlier.closed) return;
    const key = toHex(p.id);
    const wait = this.nextDial.get(key);
    if (this.dialing.has(key) || (wait && this.now() < wait.at)) return;
    if (this.nextDial.size > 1024) {
      // identifiers change every hour: forget the pauses that are over
      for (const [k, w] of this.nextDial) if (w.at <= this.now()) this.nextDial.delete(k);
    }
    this.dialing.add(key);
    net.dial(p.host, p.port).then(
      (link) => {
        this.nextDial.delete(key);
        this.dialled.set(address, link);
        link.onClose(() => {
          if (this.dialled.get(address) === link) this.dialled.delete(address);
        });
      },
      (e: Error) => {
        const pause = Math.min(60_000, (wait?.pause ?? 2_500) * 2);
        this.nextDial.set(key, { at: this.now() + pause, pause });
        this.log.info(`could not reach a laptop found nearby at ${p.host}:${p.port} (${e.message}); next try in ${Math.round(pause / 1000)} s`);
      },
    ).finally(() => this.dialing.delete(key));
  }

  /**
   * Stops finders and timers, closes links and the network, then the store. Each step is guarded: a
   * step that throws is logged and the next still runs, so the store is always closed (its owed
   * acknowledgements written). Rejects with the first failure after everything ran.
   */
  shutdown(): Promise<void> {
    this.shuttingDown ??= (async () => {
      const failures: unknown[] = [];
      const step = async (what: string, fn: () => unknown) => {
        try {
          await fn();
        } catch (e) {
          failures.push(e);
          this.log.warn(`while shutting down, ${what} failed: ${(e as Error).message}`);
        }
      };
      for (const t of this.timers.splice(0)) clearInterval(t);
      for (const f of this.finders) await step("stopping a peer finder", () => f.stop());
      await step("closing the sync engine", () => this.sync.close());
      if (this.network) {
        this.network.off("link", this.onLink);
        await step("closing the network", () => this.network!.close());
      }
      await step("closing the store", () => this.mailbox.close());
      if (failures.length) throw failures[0];
    })();
    return this.shuttingDown;
  }
}
