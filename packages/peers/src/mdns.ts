// Finds other Pigeon laptops on the local network with mDNS / DNS-SD, and tells them about us.
//
//   _pigeon._tcp.local                      PTR  <id>._pigeon._tcp.local
//   <id>._pigeon._tcp.local                 SRV  0 0 <port> pigeon-<id>.local
//   <id>._pigeon._tcp.local                 TXT  "v=<handshake version>" "t=<16 hex digits>"
//   pigeon-<id>.local                       A    <IPv4 address>
//
// <id> is 16 random bytes in hex (32 characters), new at every start and every hour (rotateMs), and
// separate for each interface: it identifies nothing but this announcement. No name, no home, no key
// and no fingerprint is announced; who answers is learnt only inside the handshake's encryption
// (docs/protocol.md, "What each party learns"). Announcements of another version are ignored: the
// handshake would refuse that laptop anyway. The tag t is HMAC(link secret, "pigeon-mdns-v5" || id)
// cut to 8 bytes for a laptop with a link secret (its school's), random bytes otherwise: a schoolmate
// recognises it, anyone else sees noise that changes with the identifier. A laptop that shows itself
// to schoolmates only does not dial announcements it does not recognise (the handshake would go
// nowhere).
//
// Nothing here is trusted: an announcement only says where to dial. The handshake proves who answers.
import { EventEmitter } from "node:events";
import { isIP } from "node:net";
import { networkInterfaces } from "node:os";
import type { RemoteInfo } from "node:dgram";
import { HANDSHAKE_VERSION, fromHex, hmacSha256, OPEN_TRUST, randomBytes, toHex, utf8, type LinkTrust } from "@pigeon/model";
import makeMdns from "multicast-dns";
import type { Answer } from "dns-packet";
import type { PeersLog } from "./ws-network.js";

export const SERVICE_NAME = "_pigeon._tcp.local";
export const DEFAULT_QUERY_INTERVAL_MS = 5_000;
/** How often the announced identifier changes (besides at every start). */
export const DEFAULT_ROTATE_MS = 60 * 60_000;
/** Length of the announced identifier, in bytes (hex in the records). */
export const ANNOUNCED_ID_BYTES = 16;
const TTL_SECONDS = 120;
const ID_RE = /^[0-9a-f]{32}$/;

export interface MdnsDiscoveryOptions {
  /** The port our WsNetwork listens on (advertised in the SRV record). */
  port: number;
  /**
   * IPv4 address of the interface to use for multicast (passed to multicast-dns as `interface`).
   * Default: every interface.
   */
  interface?: string;
  /**
   * Address to bind the UDP socket to. Default "0.0.0.0": Linux does not deliver multicast datagrams to
   * a socket bound to a unicast address, so binding to the interface address would hear nothing.
   */
  bind?: string;
  /** Address put in our A record. Default: `interface`, else the first non-internal IPv4 address. */
  advertiseHost?: string;
  /** How often to send a PTR query. Default 5 s. */
  queryIntervalMs?: number;
  /** How often to pick a new announced identifier while running. Default 1 hour; 0: only at start. */
  rotateMs?: number;
  /** UDP port, default 5353 (tests only). */
  mdnsPort?: number;
  /** Where problems are written (once per distinct problem); 'error' events still fire. */
  log?: PeersLog;
  /** Link secrets for the announcement's tag (the node hands over its own: useTrust). Default: none. */
  trust?: LinkTrust;
}

const TAG_LABEL = utf8("pigeon-mdns-v5");
const TAG_BYTES = 8;

/** The announcement tag of identifier `id` under a link secret: schoolmates compute the same. */
export function announcementTag(secret: Uint8Array, id: Uint8Array): string {
  return toHex(hmacSha256(secret, TAG_LABEL, id).subarray(0, TAG_BYTES));
}

export interface DiscoveredPeer {
  /** The other laptop's announced identifier (16 opaque bytes; it changes, and proves nothing). */
  id: Uint8Array;
  /** Our own announced identifier on this discovery when we heard it (the node's dial rule compares the two). */
  ourId: Uint8Array;
  /** Whether its announcement's tag proves a link secret we hold (a schoolmate, a device being paired). */
  shared: boolean;
  /** Address from the A record, or the sender's address if there was none. */
  host: string;
  port: number;
}

export interface MdnsDiscoveryEvents {
  /** Another node answered or announced. Emitted every time it is heard, not only the first. */
  peer: [peer: DiscoveredPeer];
  /**
   * mDNS is not working (no multicast route, port not available, ...). Discovery keeps trying.
   * With neither a `log` nor an 'error' listener the problem is reported with process.emitWarning.
   */
  error: [error: Error];
}

export class MdnsDiscovery extends EventEmitter<MdnsDiscoveryEvents> {
  private readonly options: MdnsDiscoveryOptions;
  private id: Uint8Array = randomBytes(ANNOUNCED_ID_BYTES);
  /** The tag a laptop with no link secret announces: random, new with each identifier. */
  private noiseTag = toHex(randomBytes(TAG_BYTES));
  private trust: LinkTrust;
  /** Our identifier before the last change: an announcement of ours still in flight is not a peer. */
  private previousIdHex: string | undefined;
  private mdns: makeMdns.MulticastDNS | undefined;
  private timer: NodeJS.Timeout | undefined;
  private rotateTimer: NodeJS.Timeout | undefined;
  /** Problems already reported since mDNS last worked (two that alternate are still reported once each). */
  private readonly reported = new Set<string>();
  private stopping: Promise<void> | undefined;

  constructor(options: MdnsDiscoveryOptions) {
    super();
    if (!Number.isInteger(options.port) || options.port < 1 || options.port > 65535)
      throw new RangeError(`MdnsDiscovery: port must be 1-65535, got ${options.port}`);
    if (options.interface !== undefined && isIP(options.interface) !== 4)
      throw new RangeError(`MdnsDiscovery: interface must be an IPv4 address, got "${options.interface}"`);
    if (options.rotateMs !== undefined && (!Number.isFinite(options.rotateMs) || options.rotateMs < 0))
      throw new RangeError(`MdnsDiscovery: rotateMs must be 0 or more, got ${options.rotateMs}`);
    this.options = options;
    this.trust = options.trust ?? OPEN_TRUST;
  }

  /** Takes the node's link secrets for the tag (announced again at once if they changed it). */
  useTrust(trust: LinkTrust): void {
    const before = this.tag();
    this.trust = trust;
    if (this.tag() !== before) this.announce();
  }

  /** Our announcement's tag now. */
  tag(): string {
    const secret = this.trust.secrets()[0];
    return secret ? announcementTag(secret, this.id) : this.noiseTag;
  }

  /** Our announced identifier now (a copy). */
  get currentId(): Uint8Array {
    return this.id.slice();
  }

  get instanceName(): string {
    return `${toHex(this.id)}.${SERVICE_NAME}`;
  }

  get hostName(): string {
    return `pigeon-${toHex(this.id)}.local`;
  }

  /** Picks a new announced identifier and, if running, announces it. Called every rotateMs. */
  rotate(): void {
    this.previousIdHex = toHex(this.id);
    this.id = randomBytes(ANNOUNCED_ID_BYTES);
    this.noiseTag = toHex(randomBytes(TAG_BYTES));
    this.announce();
  }

  start(): this {
    if (this.mdns || this.stopping) return this;
    const o = this.options;
    this.previousIdHex = undefined;
    this.id = randomBytes(ANNOUNCED_ID_BYTES); // a new identifier at every start
    this.noiseTag = toHex(randomBytes(TAG_BYTES));
    let mdns: makeMdns.MulticastDNS;
    try {
      mdns = makeMdns({
        port: o.mdnsPort ?? 5353,
        interface: o.interface,
        bind: o.bind ?? "0.0.0.0",
        reuseAddr: true,
        loopback: true,
      });
    } catch (e) {
      this.report(`mDNS could not start: ${(e as Error).message}`);
      return this;
    }
    this.mdns = mdns;
    mdns.on("error", (e: Error) => {
      const code = (e as NodeJS.ErrnoException).code;
      const hint = code === "EADDRINUSE" || code === "EACCES" ? ` (UDP port ${o.mdnsPort ?? 5353} is not available)` : "";
      this.report(`mDNS socket error: ${e.message}${hint}`);
    });
    mdns.on("warning", (e: Error) => {
      // multicast-dns reports undecodable packets from others as warnings too: ignore those.
      const sys = (e as NodeJS.ErrnoException).syscall;
      if (sys) this.report(`mDNS ${sys} failed: ${e.message}`);
    });
    mdns.on("query", (packet, rinfo) => this.onQuery(packet.questions ?? [], rinfo));
    mdns.on("response", (packet, rinfo) => this.onResponse([...(packet.answers ?? []), ...(packet.additionals ?? [])], rinfo));
    this.announce();
    this.query();
    this.timer = setInterval(() => this.query(), o.queryIntervalMs ?? DEFAULT_QUERY_INTERVAL_MS);
    this.timer.unref();
    const rotateMs = o.rotateMs ?? DEFAULT_ROTATE_MS;
    if (rotateMs > 0) {
      this.rotateTimer = setInterval(() => this.rotate(), rotateMs);
      this.rotateTimer.unref();
    }
    return this;
  }

  /** Stops announcing and browsing; resolves when the UDP socket is closed. */
  stop(): Promise<void> {
    if (this.stopping) return this.stopping;
    clearInterval(this.timer);
    clearInterval(this.rotateTimer);
    const mdns = this.mdns;
    this.mdns = undefined;
    this.stopping = new Promise<void>((resolve) => {
      if (!mdns) return resolve();
      try {
        mdns.destroy(() => resolve());
      } catch {
        resolve();
      }
    });
    return this.stopping;
  }

  /** Our records, as sent in answers and announcements. */
  records(): Answer[] {
    const { port } = this.options;
    const answers: Answer[] = [
      { name: SERVICE_NAME, type: "PTR", ttl: TTL_SECONDS, data: this.instanceName },
      {
        name: this.instanceName,
        type: "SRV",
        ttl: TTL_SECONDS,
        data: { port, target: this.hostName, priority: 0, weight: 0 },
      },
      {
        name: this.instanceName,
        type: "TXT",
        ttl: TTL_SECONDS,
        data: [`v=${HANDSHAKE_VERSION}`, `t=${this.tag()}`],
      },
    ];
    const host = this.advertisedHost();
    if (host) answers.push({ name: this.hostName, type: "A", ttl: TTL_SECONDS, data: host });
    return answers;
  }

  private advertisedHost(): string | undefined {
    const o = this.options;
    if (o.advertiseHost && isIP(o.advertiseHost) === 4) return o.advertiseHost;
    if (o.interface && o.interface !== "0.0.0.0") return o.interface;
    for (const list of Object.values(networkInterfaces())) {
      for (const i of list ?? []) if (i.family === "IPv4" && !i.internal) return i.address;
    }
    return undefined;
  }

  private query(): void {
    this.mdns?.query({ questions: [{ name: SERVICE_NAME, type: "PTR" }] }, (err) => this.sent("query", err));
  }

  private announce(): void {
    this.mdns?.respond({ answers: this.records() }, (err) => this.sent("announcement", err));
  }

  private sent(what: string, err: Error | null): void {
    if (!err) {
      this.reported.clear();
      return;
    }
    const code = (err as NodeJS.ErrnoException).code;
    const hint =
      code === "ENETUNREACH" || code === "EHOSTUNREACH"
        ? " (no multicast route: is the network up? on Linux, `ip route add 224.0.0.0/4 dev <interface>`)"
        : "";
    this.report(`mDNS could not send ${what}: ${err.message}${hint}`);
  }

  private onQuery(questions: { name: string; type: string }[], _rinfo: RemoteInfo): void {
    const wanted = questions.some((q) => {
      const name = q.name.toLowerCase();
      return (
        (name === SERVICE_NAME && (q.type === "PTR" || q.type === "ANY")) ||
        name === this.instanceName ||
        name === this.hostName
      );
    });
    if (wanted) this.announce();
  }

  private onResponse(records: Answer[], rinfo: RemoteInfo): void {
    const instances = new Set<string>();
    for (const r of records) {
      if (r.type === "PTR" && r.name.toLowerCase() === SERVICE_NAME && typeof r.data === "string")
        instances.add(r.data.toLowerCase());
    }
    const ownId = toHex(this.id);
    for (const instance of instances) {
      if (!instance.endsWith(`.${SERVICE_NAME}`)) continue;
      const id = instance.slice(0, -SERVICE_NAME.length - 1);
      if (!ID_RE.test(id) || id === ownId || id === this.previousIdHex) continue;
      const srv = records.find((r) => r.type === "SRV" && r.name.toLowerCase() === instance);
      const txt = records.find((r) => r.type === "TXT" && r.name.toLowerCase() === instance);
      if (!srv || srv.type !== "SRV" || !txt || txt.type !== "TXT") continue;
      const fields = txtFields(txt.data);
      if (fields.get("v") !== String(HANDSHAKE_VERSION)) continue; // another version: it would be refused
      const port = srv.data.port;
      if (!Number.isInteger(port) || port < 1 || port > 65535) continue;
      const target = srv.data.target.toLowerCase();
      const a = records.find((r) => r.type === "A" && r.name.toLowerCase() === target);
      const aData = a && a.type === "A" ? a.data : undefined;
      const host = typeof aData === "string" && isIP(aData) === 4 ? aData : rinfo.address;
      const tag = fields.get("t")?.toLowerCase();
      const theirId = fromHex(id);
      const shared = !!tag && this.trust.secrets().some((s) => announcementTag(s, theirId) === tag);
      this.emit("peer", { id: theirId, ourId: this.id.slice(), shared, host, port });
    }
  }

  private report(message: string): void {
    if (this.reported.has(message)) return; // once per distinct problem, not every query interval
    if (this.reported.size < 32) this.reported.add(message);
    this.options.log?.warn(message);
    if (this.listenerCount("error") > 0) this.emit("error", new Error(message));
    else if (!this.options.log) process.emitWarning(message, "PigeonMdnsWarning");
  }
}

function txtFields(data: string | Buffer | (string | Buffer)[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const entry of Array.isArray(data) ? data : [data]) {
    const s = typeof entry === "string" ? entry : entry.toString("utf8");
    const eq = s.indexOf("=");
    if (eq > 0) out.set(s.slice(0, eq).toLowerCase(), s.slice(eq + 1));
  }
  return out;
}
