// A relay point on a running node (docs/routing.md, "Between villages"): its routing table, fed by
// the links it makes (each one a contact with a carrier: a laptop, a mule, another village's relay
// point) and by the route announcements carriers hand over, which travel as statements like any
// other; and its own announcement, signed afresh when a link begins (at most once a minute) so a
// carrier always takes the newest away with it.
import {
  EnvelopeKind, RoutingTable, readAnnouncement, decodeEnvelope, formatAddress, isAnnouncement, toHex,
  type Carrier, type Envelope, type Federation, type RelayCertificate, type Route, type SigningKeyPair,
} from "@pigeon/model";
import type { PigeonNode } from "./node.js";
import { VillageDestinations } from "./village-destinations.js";
import { silentLog, type Log } from "./log.js";
import type { LinkPeer, PeerLink } from "@pigeon/model";
import { loadContacts, saveContacts } from "./relay-contacts.js";
import { loadRoutes, saveRoutes } from "./relay-routes.js";

/** The home a mule (`pigeon start --mule LABEL`) shows: relay points name it by its label, not as an address. */
export const MULE_HOME = "mule";

/** How a relay point names a carrier in its routes: "the tuesday bus" for a mule, else its address. */
export function carrierLabel(peer: Pick<LinkPeer, "name" | "home">): string {
  return peer.home === MULE_HOME ? `the ${peer.name.replace(/[-_.]+/g, " ")}` : formatAddress(peer);
}

export interface RelayPointOptions {
  /** The relay point's name: its village's home. */
  home: string;
  /** The key its certificate names (the node's own signing key). */
  signing: SigningKeyPair;
  certificate: RelayCertificate;
  federation: Federation;
  /** How long an announcement counts (default a day). */
  announceLifetimeSeconds?: number;
  /** At most one new announcement this often (default a minute). */
  announceGapMs?: number;
  /** Where learnt carriers' rhythm is kept across restarts (relay-contacts.ts); in memory only without it. */
  contactsFile?: string;
  /** Where the announcements the table took are kept across restarts (relay-routes.ts); in memory only without it. */
  routesFile?: string;
  now?: () => number;
  log?: Log;
}

export class RelayPoint {
  readonly table: RoutingTable;
  private readonly labels = new Map<string, string>();
  /** Carriers that link relay points (mules, other villages' relay points), by key: only these are credited with a route. */
  private readonly between = new Set<string>();
  /** Peers linked now, by key. */
  private readonly linked = new Set<string>();
  private readonly onPeerDown = (link: PeerLink) => void this.linked.delete(toHex(link.peer.signPublicKey));
  private lastSeq = 0;
  private lastAnnounced = -Infinity;
  private readonly now: () => number;
  private readonly log: Log;
  private readonly onPeer = (link: PeerLink) => this.met(link);
  private readonly onEnvelope = ({ id }: { id: Uint8Array }) => this.stored(id);

  constructor(private readonly node: PigeonNode, private readonly o: RelayPointOptions) {
    this.table = new RoutingTable(o.home, o.federation);
    this.now = o.now ?? Date.now;
    this.log = o.log ?? silentLog;
    node.sync.on("peer-up", this.onPeer);
    node.sync.on("peer-down", this.onPeerDown);
    node.mailbox.on("envelope", this.onEnvelope);
    if (o.contactsFile) {
      const { carriers, problems } = loadContacts(o.contactsFile, this.now());
      for (const p of problems) this.log.warn(p);
      for (const c of carriers) {
        this.labels.set(c.id, c.label);
        if (this.linksVillages(c.label)) this.between.add(c.id);
        for (const t of c.starts) this.table.contact({ id: c.id, label: c.label }, t);
      }
      if (carriers.length) this.log.info(`remembered the rhythm of ${carriers.length} carriers from before the restart`);
    }
    if (o.routesFile) {
      // before the first announcement below, so it announces what it knew and routes mail at once
      const { restored, problems } = loadRoutes(o.routesFile, this.table, this.now());
      for (const p of problems) this.log.warn(p);
      if (restored) this.log.info(`took back ${restored} route announcements from before the restart`);
    }
    // mail between villages: this node takes its village's out of kind 7, and hands the rest only downhill
    node.mailbox.setVillage(o.home, o.federation.keys());
    node.sync.villageRoute = (id, peer) => this.downhill(id, peer);
    // what it already carries (announcements that arrived before a restart) counts too
    void this.announce();
  }

  /** Whether a carrier brings mail held here (kind 7) closer to its village, by the table (`closerWays`). */
  private downhill(id: Uint8Array, peer: Uint8Array): boolean {
    const dest = this.destOf(id);
    if (!dest) return false;
    const who = toHex(peer);
    return this.table.closerWays(dest, this.now()).some((w) => w.carrier.id === who);
  }

  private readonly dests = new VillageDestinations((id) => this.node.mailbox.envelopes.bytesOf(id));
  private destOf(id: Uint8Array): string | undefined {
    return this.dests.of(id);
  }

  /** Where mail for another village held here is (for the outbox): the table's route to it. */
  routeTo(dest: string): Route | undefined {
    return this.routes().find((r) => r.dest === dest);
  }

  close(): void {
    if (this.saveTimer) this.saveRoutes();
    if (this.announceTimer) clearTimeout(this.announceTimer);
    this.announceTimer = undefined;
    this.node.sync.off("peer-up", this.onPeer);
    this.node.sync.off("peer-down", this.onPeerDown);
    this.node.mailbox.off("envelope", this.onEnvelope);
  }

  private carrier(personKey: Uint8Array): Carrier {
    const id = toHex(personKey);
    return { id, label: this.labels.get(id) ?? `the carrier ${id.slice(0, 8)}` };
  }

  /**
   * Whether a peer named so links relay points: a mule ("the tuesday bus": only carrierLabel makes
   * such names) or another village's relay point ("school@siaya-primary", a village of the federation).
   * A laptop of this village never leaves it, so it carries no route.
   */
  private linksVillages(label: string): boolean {
    const at = label.lastIndexOf("@");
    if (at < 0) return label.startsWith("the ");
    const home = label.slice(at + 1);
    return home !== this.o.home && this.o.federation.has(home);
  }

  private met(link: PeerLink): void {
    const id = toHex(link.peer.signPublicKey);
    const label = carrierLabel(link.peer);
    this.labels.set(id, label);
    this.linked.add(id);
    if (link.peer.home === MULE_HOME || this.linksVillages(formatAddress(link.peer))) this.between.add(id);
    else this.between.delete(id);
    this.table.contact(this.carrier(link.peer.signPublicKey), this.now());
    if (this.between.has(id)) for (const { env, hand } of this.pending.splice(0)) this.take(env, { id, label }, hand);
    this.save();
    void this.announce();
  }

  private stored(id: Uint8Array): void {
    const meta = this.node.mailbox.envelopes.meta(id);
    if (!meta || meta.kind !== EnvelopeKind.Statement || !meta.source) return;
    const held = this.node.mailbox.envelopes.get(id);
    if (!held) return;
    let env;
    try {
      env = decodeEnvelope(held.bytes);
    } catch {
      return;
    }
    if (!isAnnouncement(env)) return;
    const hand = this.carrier(meta.source);
    const from = this.between.has(hand.id) ? hand : this.traveller(env);
    if (!from) {
      // credited to the next carrier between villages that comes by (the bus the laptop took it from)
      this.pending.push({ env, hand });
      if (this.pending.length > 64) this.pending.shift();
      this.log.info(`route announcement handed over by ${hand.label} kept for the next carrier between villages: none has come by yet to credit it to`);
      return;
    }
    this.take(env, from, hand);
  }

  /** Announcements a laptop of the village handed over before any carrier between villages came by. */
  private pending: { env: Envelope; hand: Carrier }[] = [];

  private take(env: Envelope, from: Carrier, hand: Carrier): void {
    const heard = this.table.hear(env, from, this.now());
    const through = from === hand ? from.label : `${from.label} (handed over by ${hand.label})`;
    if (heard.ok) this.log.info(`route announcement ${heard.seq} of ${heard.origin} through ${through}`);
    else this.log.warn(`refused a route announcement handed over by ${hand.label}${from === hand ? "" : ` (brought by ${from.label})`}: ${heard.reason}`);
    if (heard.ok) {
      this.saveRoutesSoon();
      this.announceSoon();
    }
  }

  private announceTimer: ReturnType<typeof setTimeout> | undefined;
  /**
   * What a carrier just brought may change the routes: the village's laptops, linked all day, learn
   * them (for the outbox) from a fresh announcement, which otherwise waits for the next link to begin.
   * At most one per announce gap, as always.
   */
  private announceSoon(): void {
    if (this.announceTimer) return;
    const wait = Math.max(0, this.lastAnnounced + (this.o.announceGapMs ?? 60_000) - this.now());
    this.announceTimer = setTimeout(() => {
      this.announceTimer = undefined;
      // (a node shut down before its relay point was closed refuses it: nothing to announce to then)
      this.announce().catch((e: Error) => this.log.debug(`no announcement: ${e.message}`));
    }, wait + 50);
    this.announceTimer.unref?.();
  }

  private saveTimer: ReturnType<typeof setTimeout> | undefined;
  /** A bus hands over dozens of announcements at once: one write (with its fsyncs) a second at most. */
  private saveRoutesSoon(): void {
    if (!this.o.routesFile || this.saveTimer) return;
    this.saveTimer = setTimeout(() => {
      this.saveTimer = undefined;
      this.saveRoutes();
    }, 1000);
    this.saveTimer.unref?.();
  }

  /**
   * Who brought an announcement that a laptop of this village handed over (it took it from the bus
   * first): the carrier between villages linked now that came last, else the one that came by last,
   * else the one that brought this relay point's earlier announcements. The laptop is never credited.
   */
  private traveller(env: Envelope): Carrier | undefined {
    const last = (ids: Iterable<string>) => {
      let best: string | undefined;
      let at = -Infinity;
      for (const id of ids) {
        const starts = this.table.contactsOf(id);
        const t = starts[starts.length - 1] ?? -Infinity;
        if (this.between.has(id) && (best === undefined || t > at)) [best, at] = [id, t];
      }
      return best;
    };
    const id = last(this.linked) ?? last(this.between);
    if (id) return { id, label: this.labels.get(id) ?? `the carrier ${id.slice(0, 8)}` };
    try {
      return this.table.carrierOf(readAnnouncement(env, this.o.federation).origin);
    } catch {
      return undefined;
    }
  }

  private saveRoutes(): void {
    if (!this.o.routesFile) return;
    if (this.saveTimer) clearTimeout(this.saveTimer);
    this.saveTimer = undefined;
    try {
      saveRoutes(this.o.routesFile, this.table, this.now());
    } catch (e) {
      this.log.warn(`could not keep the routing table in ${this.o.routesFile}: ${(e as Error).message}`);
    }
  }

  private save(): void {
    if (!this.o.contactsFile) return;
    const carriers = [...this.labels].map(([id, label]) => ({ id, label, starts: [...this.table.contactsOf(id)] })).filter((c) => c.starts.length > 0);
    try {
      saveContacts(this.o.contactsFile, carriers);
    } catch (e) {
      this.log.warn(`could not keep the carriers' rhythm in ${this.o.contactsFile}: ${(e as Error).message}`);
    }
  }

  /** Signs a fresh announcement and stores it, so the sync engine offers it to every peer. */
  async announce(): Promise<void> {
    const now = this.now();
    if (now - this.lastAnnounced < (this.o.announceGapMs ?? 60_000)) return;
    this.lastAnnounced = now;
    // the clock in seconds: numbers still go up after a power cut, with nothing to save
    this.lastSeq = Math.max(this.lastSeq + 1, Math.floor(now / 1000));
    const env = this.table.announce(this.o.signing, this.o.certificate, this.lastSeq, now, this.o.announceLifetimeSeconds ?? 24 * 3600);
    // what it lost and announced unreachable (DSDV numbers) must survive a power cut too
    this.saveRoutes();
    const r = await this.node.mailbox.receive(env.bytes, 0);
    if (r.refused) this.log.warn(`could not store this relay point's route announcement: ${r.refused}`);
  }

  /** The sequence number of the newest announcement this relay point signed (0: none yet). */
  get seq(): number {
    return this.lastSeq;
  }

  routes(): Route[] {
    return this.table.routes(this.now());
  }
}
