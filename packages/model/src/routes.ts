// Between villages: relay points, their certificates, route announcements and the routing table
// (docs/routing.md, "Between villages"). Pure: no I/O, no timers; times are ms passed in.
//
// A relay point is a node that keeps mail for and from its village. Its name is its school's home
// (kisumu-primary), and its school says so: a relay certificate is the school key's signature over
// the home and the relay point's key. Relay points of different villages trust each other through a
// federation: the set of (home, school key) pairs a school lists in a signed federation list, so a
// relay point checks another village's relay point by that village's school key.
//
// Every relay point announces its routes in a signed statement (kind 4, statement type 4) that
// relay points and mules carry like any statement:
//
//   author = the relay point key | conversation = routesTopic(relay key) | segment = seq
//   created = the hour | lifetime = how long the announcement counts | no recipients
//   payload = u8 4 | bytes certificate | varint sent (ms) | varint n
//             | n x (string destination | varint dest seq | varint cost (s) | u8 hops | string via)
//             [ | u8 1 | varint k | k x string label | n x varint carrier ]   (optional, since issue 18's
//             carrier labels: what takes mail the first step, "the tuesday bus", each label once and
//             each route naming one by its number from 1, 0 for none; older announcements end before it)
//
// The routing table is distance-vector (RIP-like): a route's cost is the expected delay in seconds,
// learnt from when links actually happen (how long until the carrier comes again, how long
// announcements take to arrive through it). One announcement goes to everyone, so it cannot leave a
// route out for one neighbour (split horizon): it names the first relay point on each route (`via`)
// and a receiver treats a route through itself as unreachable (poisoned reverse). As in DSDV, every
// route carries the newest sequence number of its destination's own announcements: a newer one
// always wins, and a relay point that loses its route announces the destination unreachable with
// that number plus one, which overrides every older route still going round, so a loop left by a
// cut link dies in a round or two instead of counting up. Costs stop at ROUTE_INFINITY and paths at
// MAX_ROUTE_HOPS; everything heard expires.
import { concat, DecodeError, equalBytes, Reader, toHex, utf8, Writer } from "./bytes.js";
import { generateSealingKeyPair, generateSigningKeyPair, sha256, sign, SIGNATURE_BYTES, verify, type SigningKeyPair } from "./crypto.js";
import { decodeEnvelope, EnvelopeKind, signEnvelope, verifyEnvelope, type Envelope } from "./envelope.js";
import { validHome, type Identity } from "./identity.js";
import type { SchoolKey } from "./school.js";

/** Statement type byte of a route announcement (1 keyring, 2 directory entry, 3 channel membership). */
export const STATEMENT_ROUTES = 4;
/** Unreachable: 30 days, in seconds. Mail older than this has expired anyway. */
export const ROUTE_INFINITY = 30 * 24 * 3600;
/** A path through more relay points than this is a loop or useless. */
export const MAX_ROUTE_HOPS = 15;
/** At most this many destinations in one announcement (a federation of villages, not the Internet). */
export const MAX_ROUTE_ENTRIES = 1024;
/** An announcement counts at most this long (a relay point away longer is not a route). */
export const MAX_ANNOUNCEMENT_LIFETIME_S = 7 * 24 * 3600;
/** A carrier's label in an announcement: at most this many bytes of UTF-8, no control characters. */
export const MAX_CARRIER_LABEL_BYTES = 64;
/** The version byte of the optional carrier-label section that follows the routes of an announcement. */
const CARRIER_LABELS_V1 = 1;
/** Before a carrier has come twice, its rhythm is unknown: assume it comes back within a day. */
export const UNKNOWN_WAIT_MS = 24 * 3600_000;

const CERT_TAG = utf8("pigeon-relay-point-v1");
const FEDERATION_TAG = utf8("pigeon-federation-v1");
const NO_KEY = new Uint8Array(8);

/** Every problem with a certificate, a federation list or an announcement, with a reason a log can show. */
export class RouteError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RouteError";
  }
}

// ---- Relay certificates ----

/** A relay point's own key (from its seed when it has one): it signs routing only, never a person's statements. */
export function relayKeyPair(seed?: Uint8Array): SigningKeyPair {
  return seed ? generateSigningKeyPair(seed) : generateSigningKeyPair();
}

/** "The relay point of `home` is this key", signed by the school of `home`. */
export interface RelayCertificate {
  home: string;
  schoolKey: Uint8Array;
  relayKey: Uint8Array;
  signature: Uint8Array;
}

function certBody(home: string, schoolKey: Uint8Array, relayKey: Uint8Array): Uint8Array {
  return new Writer().u8(1).string(home).raw(schoolKey).raw(relayKey).finish();
}

/** The school server certifies the key of its relay point (the relay point may be the school server itself). */
export function issueRelayCertificate(school: SchoolKey, relayKey: Uint8Array): RelayCertificate {
  const signature = sign(school.signing.seed, concat([CERT_TAG, certBody(school.home, school.signing.publicKey, relayKey)]));
  return { home: school.home, schoolKey: school.signing.publicKey, relayKey, signature };
}

export function encodeRelayCertificate(c: RelayCertificate): Uint8Array {
  return concat([certBody(c.home, c.schoolKey, c.relayKey), c.signature]);
}

export function decodeRelayCertificate(bytes: Uint8Array): RelayCertificate {
  try {
    const r = new Reader(bytes);
    if (r.u8() !== 1) throw new RouteError("unknown relay certificate version");
    const home = r.string(64);
    const cert = { home, schoolKey: Uint8Array.from(r.raw(32)), relayKey: Uint8Array.from(r.raw(32)), signature: Uint8Array.from(r.raw(SIGNATURE_BYTES)) };
    r.end();
    return cert;
  } catch (e) {
    if (e instanceof DecodeError) throw new RouteError(`damaged relay certificate: ${e.message}`);
    throw e;
  }
}

// ---- The federation ----

/** Which school key speaks for which village: home -> school public key. */
export type Federation = ReadonlyMap<string, Uint8Array>;

/** A school's signed list of the villages it exchanges mail with (itself included). */
export function signFederation(school: SchoolKey, partners: ReadonlyMap<string, Uint8Array>): Uint8Array {
  const all = new Map(partners);
  all.set(school.home, school.signing.publicKey);
  const w = new Writer().u8(1).raw(school.signing.publicKey).varint(all.size);
  for (const [home, key] of [...all].sort(([a], [b]) => (a < b ? -1 : 1))) w.string(home).raw(key);
  const body = w.finish();
  return concat([body, sign(school.signing.seed, concat([FEDERATION_TAG, body]))]);
}

/** Opens a federation list signed by `schoolKey` (this relay point's own school: no one else decides whom it trusts). */
export function openFederation(bytes: Uint8Array, schoolKey: Uint8Array): Federation {
  let body: Uint8Array;
  const out = new Map<string, Uint8Array>();
  try {
    const r = new Reader(bytes);
    if (r.u8() !== 1) throw new RouteError("unknown federation list version");
    if (!equalBytes(r.raw(32), schoolKey)) throw new RouteError("a federation list of another school");
    const n = r.varint();
    if (n > MAX_ROUTE_ENTRIES) throw new RouteError(`a federation of ${n} villages is over the limit`);
    for (let i = 0; i < n; i++) {
      const home = r.string(64);
      if (!validHome(home) || out.has(home)) throw new RouteError(`bad or repeated home "${home}" in the federation list`);
      out.set(home, Uint8Array.from(r.raw(32)));
    }
    body = bytes.subarray(0, r.pos);
    const signature = r.raw(SIGNATURE_BYTES);
    r.end();
    if (!verify(schoolKey, concat([FEDERATION_TAG, body]), signature)) throw new RouteError("federation list: forged signature");
  } catch (e) {
    if (e instanceof DecodeError) throw new RouteError(`damaged federation list: ${e.message}`);
    throw e;
  }
  return out;
}

/** Throws unless `cert` is signed by the federation's school for its home. */
export function checkRelayCertificate(cert: RelayCertificate, federation: Federation): void {
  const school = federation.get(cert.home);
  if (!school) throw new RouteError(`"${cert.home}" is not a village of the federation`);
  if (!equalBytes(school, cert.schoolKey)) throw new RouteError(`relay certificate for ${cert.home} by another school key`);
  if (!verify(school, concat([CERT_TAG, certBody(cert.home, cert.schoolKey, cert.relayKey)]), cert.signature))
    throw new RouteError(`relay certificate for ${cert.home}: forged signature`);
}

// ---- A relay point on a box of its own: the school's grant ----
//   "pigeon-relay1:" + base64url(u8 version=1 | bytes relay certificate | bytes signed federation list)
// Both parts are signed by the school key already: the grant only carries them from the school server
// to the relay box, which checks that they certify its own relay key for its home.

const GRANT_PREFIX = "pigeon-relay1:";
const BASE64URL = /^[A-Za-z0-9_-]+$/;

export function encodeRelayGrant(certificate: RelayCertificate, signedFederation: Uint8Array): string {
  const body = new Writer().u8(1).bytes(encodeRelayCertificate(certificate)).bytes(signedFederation).finish();
  return GRANT_PREFIX + Buffer.from(body).toString("base64url");
}

/**
 * Reads a grant for the relay point of `home` whose own key is `relayKey`. Throws RouteError saying
 * why a grant is damaged, for another village or another key, or not its school's.
 */
export function decodeRelayGrant(text: string, home: string, relayKey: Uint8Array): { certificate: RelayCertificate; federation: Federation; signedFederation: Uint8Array } {
  const t = text.trim();
  if (!t.startsWith(GRANT_PREFIX)) throw new RouteError(`not a relay point's grant (it should start with ${GRANT_PREFIX})`);
  if (!BASE64URL.test(t.slice(GRANT_PREFIX.length))) throw new RouteError("damaged relay point's grant (characters a grant does not have); copy it again");
  let certificate: RelayCertificate;
  let signedFederation: Uint8Array;
  try {
    const r = new Reader(new Uint8Array(Buffer.from(t.slice(GRANT_PREFIX.length), "base64url")));
    if (r.u8() !== 1) throw new RouteError("unknown grant version");
    certificate = decodeRelayCertificate(r.bytes(512));
    signedFederation = Uint8Array.from(r.bytes(4 + MAX_ROUTE_ENTRIES * 97 + 128));
    r.end();
  } catch (e) {
    throw new RouteError(`damaged relay point's grant (${(e as Error).message}); copy it again`);
  }
  if (certificate.home !== home) throw new RouteError(`this grant is for the relay point of ${certificate.home}, not of ${home}`);
  if (!equalBytes(certificate.relayKey, relayKey)) throw new RouteError("this grant certifies another relay point's key, not this one's (give the school server the key this node printed)");
  const federation = openFederation(signedFederation, certificate.schoolKey);
  if (!equalBytes(federation.get(home) ?? new Uint8Array(), certificate.schoolKey)) throw new RouteError(`the grant's federation list does not name ${home}'s own school`);
  checkRelayCertificate(certificate, federation);
  return { certificate, federation, signedFederation };
}

// ---- Announcements ----

export interface RouteEntry {
  /** The destination relay point (a village's home). */
  dest: string;
  /** The newest sequence number of the destination's own announcements behind this route. */
  seq: number;
  /** Expected delay in seconds; ROUTE_INFINITY = unreachable. */
  cost: number;
  /** Relay points on the path after the announcer (0: the announcer's direct neighbour). */
  hops: number;
  /** The first relay point on the announcer's path (poisoned reverse: a receiver named here ignores the route). */
  via: string;
  /** What takes mail the first step ("the tuesday bus"), as the announcer names it; "" or absent when unknown. */
  carrier?: string;
}

/** A label fit to travel in an announcement (hostile text: bounded, no control characters), else "". */
export function safeCarrierLabel(label: string | undefined): string {
  if (!label || /[\u0000-\u001f\u007f-\u009f]/.test(label) || utf8(label).length > MAX_CARRIER_LABEL_BYTES) return "";
  return label;
}

/** Reads the routes of an announcement's payload after the certificate and `sent`, and the optional carrier labels. */
function readEntries(r: Reader): RouteEntry[] {
  const n = r.varint();
  if (n > MAX_ROUTE_ENTRIES) throw new RouteError(`${n} routes in one announcement is over the limit`);
  const entries: RouteEntry[] = [];
  for (let i = 0; i < n; i++) entries.push({ dest: r.string(64), seq: r.varint(), cost: r.varint(), hops: r.u8(), via: r.string(64) });
  if (r.remaining > 0) {
    const v = r.u8();
    if (v !== CARRIER_LABELS_V1) throw new RouteError(`unknown carrier-label section version ${v} in a route announcement`);
    const k = r.varint();
    if (k > n) throw new RouteError(`${k} carrier labels for ${n} routes in a route announcement`);
    const labels: string[] = [];
    for (let i = 0; i < k; i++) {
      const label = r.string(MAX_CARRIER_LABEL_BYTES);
      if (!label || label !== safeCarrierLabel(label)) throw new RouteError("an empty carrier label, or one with control characters, in a route announcement");
      labels.push(label);
    }
    for (const e of entries) {
      const i = r.varint();
      if (i > k) throw new RouteError(`carrier label ${i} of ${k} in a route announcement`);
      if (i > 0) e.carrier = labels[i - 1]!;
    }
  }
  r.end();
  return entries;
}

export interface Announcement {
  origin: string;
  relayKey: Uint8Array;
  seq: number;
  /** The announcer's clock when it signed, ms (the envelope's `created` is only the hour). */
  sent: number;
  /** Counts until this, by the announcer's clock (ms). */
  expires: number;
  entries: RouteEntry[];
  id: Uint8Array;
}

/** The 16-byte topic one relay point's announcements travel under. */
export function routesTopic(relayKey: Uint8Array): Uint8Array {
  return sha256(utf8("pigeon-routes-v1"), relayKey).subarray(0, 16);
}

/** A relay point's signed announcement. `relay` holds the key the certificate names. */
export function announcementStatement(
  relay: SigningKeyPair, cert: RelayCertificate, seq: number, sent: number, lifetimeSeconds: number, entries: readonly RouteEntry[],
): Envelope {
  if (!equalBytes(relay.publicKey, cert.relayKey)) throw new RouteError("the certificate names another relay key");
  if (entries.length > MAX_ROUTE_ENTRIES) throw new RouteError("too many routes for one announcement");
  const w = new Writer().u8(STATEMENT_ROUTES).bytes(encodeRelayCertificate(cert)).varint(sent).varint(entries.length);
  for (const e of entries) w.string(e.dest).varint(e.seq).varint(Math.min(ROUTE_INFINITY, Math.max(0, Math.round(e.cost)))).u8(Math.min(255, e.hops)).string(e.via);
  const labels = [...new Set(entries.map((e) => safeCarrierLabel(e.carrier)).filter((l) => l))];
  if (labels.length > 0) {
    // each label once (most routes share a few carriers), then each route's by its number
    w.u8(CARRIER_LABELS_V1).varint(labels.length);
    for (const l of labels) w.string(l);
    for (const e of entries) {
      const l = safeCarrierLabel(e.carrier);
      w.varint(l ? labels.indexOf(l) + 1 : 0);
    }
  }
  const signer: Identity = { name: "relay", home: cert.home, person: relay.publicKey, signing: relay, sealing: generateSealingKeyPair() };
  return signEnvelope(
    signer,
    { kind: EnvelopeKind.Statement, conversation: routesTopic(relay.publicKey), segment: seq, recipients: [], created: sent, lifetime: lifetimeSeconds, keyId: NO_KEY },
    w.finish(),
  );
}

/** True for a statement that claims to be a route announcement (cheap: no signature check). */
export function isAnnouncement(env: Envelope): boolean {
  return env.kind === EnvelopeKind.Statement && env.payload[0] === STATEMENT_ROUTES && equalBytes(env.conversation, routesTopic(env.author));
}

/**
 * Checks and reads an announcement: signed by the key its certificate names, the certificate by the
 * federation's school of that village; every destination a village of the federation. Throws
 * RouteError with the reason (a laptop pretending to be a relay point fails here).
 */
export function readAnnouncement(env: Envelope, federation: Federation): Announcement {
  if (!isAnnouncement(env)) throw new RouteError("not a route announcement");
  if (env.device || !verifyEnvelope(env)) throw new RouteError("route announcement: forged signature");
  if (env.recipients.length !== 0) throw new RouteError("a route announcement names no recipients");
  if (env.lifetime > MAX_ANNOUNCEMENT_LIFETIME_S) throw new RouteError(`a route announcement may live ${MAX_ANNOUNCEMENT_LIFETIME_S} s, not ${env.lifetime}`);
  let cert: RelayCertificate;
  let entries: RouteEntry[];
  let sent: number;
  try {
    const r = new Reader(env.payload);
    r.u8();
    cert = decodeRelayCertificate(r.bytes(512));
    sent = r.varint();
    entries = readEntries(r);
  } catch (e) {
    if (e instanceof DecodeError) throw new RouteError(`damaged route announcement: ${e.message}`);
    throw e;
  }
  if (!equalBytes(cert.relayKey, env.author)) throw new RouteError("route announcement signed by a key its certificate does not name (not a relay point)");
  checkRelayCertificate(cert, federation);
  if (Math.floor(sent / 3_600_000) * 3_600_000 !== env.created) throw new RouteError("route announcement: sent time does not match its envelope");
  const seen = new Set<string>();
  for (const e of entries) {
    if (!federation.has(e.dest)) throw new RouteError(`route announcement by ${cert.home} for "${e.dest}", which is no relay point of the federation`);
    if (e.via !== "" && !federation.has(e.via)) throw new RouteError(`route announcement by ${cert.home} via "${e.via}", which is no relay point of the federation`);
    if (e.dest === cert.home || seen.has(e.dest)) throw new RouteError(`route announcement by ${cert.home} repeats "${e.dest}"`);
    seen.add(e.dest);
  }
  return { origin: cert.home, relayKey: cert.relayKey, seq: env.segment, sent, expires: sent + env.lifetime * 1000, entries, id: env.id };
}

/**
 * The villages a laptop's own relay point says it exchanges mail with (every destination of its
 * announcement), or undefined when `env` is not an announcement by the relay point of `home` (when
 * the laptop knows its school's key, certified by it). A laptop wraps mail for these homes (kind 7).
 */
export interface VillageWay {
  dest: string;
  /** The first relay point on the way ("" when the announcer reaches it directly). */
  via: string;
  /** Expected delay from the announcer, seconds (ROUTE_INFINITY: no way). */
  cost: number;
  /** When the announcer signed it (its clock, ms). */
  sent: number;
  /** What takes mail the first step ("the tuesday bus"), as the relay point names it; absent in older announcements. */
  carrier?: string;
}

export function villagesAnnounced(env: Envelope, home: string, schoolKey?: Uint8Array): VillageWay[] | undefined {
  if (!isAnnouncement(env) || env.device || !verifyEnvelope(env)) return undefined;
  try {
    const r = new Reader(env.payload);
    r.u8();
    const cert = decodeRelayCertificate(r.bytes(512));
    if (cert.home !== home || !equalBytes(cert.relayKey, env.author)) return undefined;
    if (schoolKey) checkRelayCertificate(cert, new Map([[home, schoolKey]]));
    const sent = r.varint();
    const ways: VillageWay[] = [];
    for (const { dest, via, cost, carrier } of readEntries(r))
      if (validHome(dest) && dest !== home) ways.push({ dest, via, cost, sent, ...(carrier ? { carrier } : {}) });
    return ways;
  } catch {
    return undefined;
  }
}

// ---- The routing table ----

/** What hands mail between two places: a relay point on a direct link, or a mule (a carrier id the caller picks, e.g. the key in hex). */
export interface Carrier {
  id: string;
  /** What the sender sees: "the Tuesday bus", "kisumu-primary's radio link". */
  label: string;
}

export interface Route {
  dest: string;
  /** The destination's sequence number this route is as new as. */
  seq: number;
  /** Expected delay from now, ms. */
  cost: number;
  hops: number;
  /** The relay point the carrier brings mail to (the first on the path). */
  viaRelay: string;
  carrier: Carrier;
  /** When the carrier is expected next (ms), from its rhythm; undefined if unknown. */
  nextContact?: number;
}

export type HearResult = { ok: true; origin: string; seq: number } | { ok: false; reason: string };

interface Heard {
  ann: Announcement;
  /** The signed announcement as it arrived, so a restart can check it again (snapshot, restore). */
  bytes: Uint8Array;
  carrier: Carrier;
  receivedAt: number;
}

/**
 * What a relay point's table must keep across a power cut (docs/routing.md, "What a relay point
 * keeps"): every live announcement it took, with the carrier that brought it, when, and the trip
 * measured through that carrier; and the villages it lost (DSDV numbers). Carriers' rhythm is kept
 * apart (relay-contacts.json). Plain data: the caller stores it; `restore` checks it all again.
 */
export interface TableSnapshot {
  heard: { bytes: Uint8Array; carrier: Carrier; receivedAt: number; transit: number }[];
  lost: [string, number][];
  announced: [string, { until: number; seq: number; lost: boolean }][];
}

/** A restored entry heard this far past the relay point's clock is not one it heard: its clock went back. */
const RESTORE_FUTURE_SLACK_MS = 60_000;
const MAX_CARRIER_ID = 128;

const CONTACTS_KEPT = 16;
const TRANSIT_WEIGHT = 0.3; // EWMA: recent trips count more, one odd trip does not swing the cost

/**
 * One relay point's view of the federation (docs/routing.md, "Between villages"). Fed with the
 * contacts its links make (`contact`) and the announcements carriers hand over (`hear`); answers
 * where mail for a village goes (`route`, `closerCarriers`) and what to announce (`announce`).
 */
export class RoutingTable {
  private newestSeq = new Map<string, { seq: number; carriers: Set<string> }>();
  private heard = new Map<string, Heard>(); // origin \0 carrier id
  private transit = new Map<string, number>(); // origin \0 carrier id -> ms
  private contacts = new Map<string, number[]>(); // carrier id -> contact starts
  private lost = new Map<string, number>(); // dest -> the number it was lost here with
  private announced = new Map<string, { until: number; seq: number; lost: boolean }>(); // dest -> until when it was last reachable, and its number
  readonly refusals: string[] = [];

  constructor(readonly self: string, private federation: Federation) {}

  setFederation(f: Federation): void {
    this.federation = f;
  }

  /** A link with this carrier began at `at`: its rhythm is learnt from these. */
  contact(carrier: Carrier, at: number): void {
    const list = this.contacts.get(carrier.id) ?? [];
    if (list.length > 0 && at <= list[list.length - 1]!) return;
    list.push(at);
    if (list.length > CONTACTS_KEPT) list.shift();
    this.contacts.set(carrier.id, list);
  }

  /** Contact starts known for a carrier (persisted by the caller so a power cut forgets no rhythm). */
  contactsOf(carrierId: string): readonly number[] {
    return this.contacts.get(carrierId) ?? [];
  }

  /** Expected wait for this carrier from a random moment: E[gap^2] / (2 E[gap]) over the gaps seen. */
  expectedWait(carrierId: string): number {
    const c = this.contacts.get(carrierId) ?? [];
    if (c.length < 2) return UNKNOWN_WAIT_MS;
    let sum = 0;
    let sq = 0;
    for (let i = 1; i < c.length; i++) {
      const g = c[i]! - c[i - 1]!;
      sum += g;
      sq += g * g;
    }
    return sum > 0 ? sq / (2 * sum) : 0;
  }

  /** When the carrier is expected next after `now`, from its mean gap; undefined before its rhythm is known. */
  nextContact(carrierId: string, now: number): number | undefined {
    const c = this.contacts.get(carrierId) ?? [];
    if (c.length < 2) return undefined;
    const gap = (c[c.length - 1]! - c[0]!) / (c.length - 1);
    if (gap <= 0) return undefined;
    let next = c[c.length - 1]! + gap;
    while (next <= now) next += gap;
    return next;
  }

  /**
   * An announcement handed over by `carrier` at `at` (this relay point's clock). Refuses forged ones,
   * a laptop's, unknown villages, replays (a sequence number not above the newest heard, unless the
   * same one through another carrier), expired ones and this relay point's own.
   */
  hear(env: Envelope, carrier: Carrier, at: number): HearResult {
    let ann: Announcement;
    try {
      ann = readAnnouncement(env, this.federation);
    } catch (e) {
      if (e instanceof RouteError) return this.refuse(e.message);
      throw e;
    }
    if (ann.origin === this.self) return this.refuse(`an announcement in this relay point's own name (${this.self}), not taken`);
    if (ann.expires <= at) return this.refuse(`expired announcement from ${ann.origin} (seq ${ann.seq})`);
    const newest = this.newestSeq.get(ann.origin);
    if (newest && ann.seq < newest.seq) return this.refuse(`replayed or stale announcement from ${ann.origin}: seq ${ann.seq}, already have ${newest.seq}`);
    if (newest && ann.seq === newest.seq && newest.carriers.has(carrier.id))
      return this.refuse(`replayed announcement from ${ann.origin}: seq ${ann.seq} already heard through ${carrier.label}`);
    if (newest && ann.seq === newest.seq) newest.carriers.add(carrier.id);
    else this.newestSeq.set(ann.origin, { seq: ann.seq, carriers: new Set([carrier.id]) });
    const key = `${ann.origin}\0${carrier.id}`;
    const trip = Math.max(0, at - ann.sent);
    const before = this.transit.get(key);
    this.transit.set(key, before === undefined ? trip : before + TRANSIT_WEIGHT * (trip - before));
    this.heard.set(key, { ann, bytes: env.bytes, carrier, receivedAt: at });
    return { ok: true, origin: ann.origin, seq: ann.seq };
  }

  /** The carrier that last brought an announcement of `origin` here (the newest heard), if any still counts. */
  carrierOf(origin: string): Carrier | undefined {
    let best: Heard | undefined;
    for (const h of this.heard.values()) if (h.ann.origin === origin && (!best || h.receivedAt > best.receivedAt)) best = h;
    return best?.carrier;
  }

  /** Everything `restore` needs to rebuild this table after a restart (what has expired is left out). */
  snapshot(now: number): TableSnapshot {
    this.expire(now);
    return {
      heard: [...this.heard].map(([key, h]) => ({ bytes: h.bytes, carrier: { ...h.carrier }, receivedAt: h.receivedAt, transit: this.transit.get(key) ?? 0 })),
      lost: [...this.lost],
      announced: [...this.announced].map(([d, a]) => [d, { ...a }]),
    };
  }

  /**
   * Takes back what a snapshot kept, checking every entry as hostile (the file may be damaged or
   * edited): the signature and certificate against the federation, well-formed, not this relay
   * point's own, not expired by `now`, not heard after `now` (a clock gone back), a sane trip, a
   * carrier named within limits. Returns how many announcements came back, and why each left-out entry was left out.
   */
  restore(s: TableSnapshot, now: number): { restored: number; problems: string[] } {
    const problems: string[] = [];
    let restored = 0;
    for (const [i, e] of s.heard.entries()) {
      const why = this.restoreOne(e, now);
      if (why) problems.push(`announcement ${i} left out (${why})`);
      else restored++;
    }
    for (const [dest, seq] of s.lost) {
      if (!this.federation.has(dest) || dest === this.self || !Number.isSafeInteger(seq) || seq < 0) problems.push(`lost village "${String(dest).slice(0, 64)}" left out (not a village of the federation, or a bad number)`);
      else this.lost.set(dest, Math.max(this.lost.get(dest) ?? 0, seq));
    }
    for (const [dest, a] of s.announced) {
      if (!this.federation.has(dest) || dest === this.self || !Number.isSafeInteger(a?.seq) || a.seq < 0 || !Number.isSafeInteger(a.until) || typeof a.lost !== "boolean")
        problems.push(`announced village "${String(dest).slice(0, 64)}" left out (not a village of the federation, or bad numbers)`);
      else if (a.until > now && a.until <= now + MAX_ANNOUNCEMENT_LIFETIME_S * 1000) this.announced.set(dest, { until: a.until, seq: a.seq, lost: a.lost });
    }
    return { restored, problems };
  }

  private restoreOne(e: TableSnapshot["heard"][number], now: number): string | undefined {
    const c = e?.carrier;
    if (typeof c?.id !== "string" || c.id.length === 0 || c.id.length > MAX_CARRIER_ID || /[^0-9a-f]/.test(c.id)) return "not a carrier's key";
    if (typeof c.label !== "string" || c.label.length === 0 || c.label.length > 80 || /[\u0000-\u001f\u007f-\u009f]/.test(c.label)) return "a bad carrier name";
    if (!Number.isSafeInteger(e.receivedAt) || e.receivedAt <= 0) return "a bad time";
    if (e.receivedAt > now + RESTORE_FUTURE_SLACK_MS) return "heard after this relay point's clock now: the clock went back";
    if (!Number.isFinite(e.transit) || e.transit < 0 || e.transit > ROUTE_INFINITY * 1000) return "a bad trip measure";
    if (!(e.bytes instanceof Uint8Array)) return "no announcement";
    let env: Envelope;
    let ann: Announcement;
    try {
      env = decodeEnvelope(e.bytes);
      ann = readAnnouncement(env, this.federation);
    } catch (err) {
      return (err as Error).message;
    }
    if (ann.origin === this.self) return "this relay point's own";
    if (Math.min(ann.expires, e.receivedAt + (ann.expires - ann.sent)) <= now) return `expired (from ${ann.origin}, seq ${ann.seq})`;
    const key = `${ann.origin}\0${c.id}`;
    if (this.heard.has(key)) return "listed twice";
    const newest = this.newestSeq.get(ann.origin);
    if (!newest || ann.seq > newest.seq) this.newestSeq.set(ann.origin, { seq: ann.seq, carriers: new Set([c.id]) });
    else if (ann.seq === newest.seq) newest.carriers.add(c.id);
    this.transit.set(key, e.transit);
    this.heard.set(key, { ann, bytes: env.bytes, carrier: { id: c.id, label: c.label }, receivedAt: e.receivedAt });
    return undefined;
  }

  private refuse(reason: string): HearResult {
    this.refusals.push(reason);
    if (this.refusals.length > 100) this.refusals.shift();
    return { ok: false, reason };
  }

  /**
   * Forgets what has expired: an announcement counts until its announcer's end (carriers handing it on
   * cannot stretch it) and never longer than its lifetime from when it arrived here (a clock ahead
   * cannot stretch it either).
   */
  expire(now: number): void {
    const gone = [...this.heard].filter(([, h]) => Math.min(h.ann.expires, h.receivedAt + (h.ann.expires - h.ann.sent)) <= now);
    if (gone.length === 0) return;
    // a destination whose best route goes with them is lost here: unreachable with a newer number
    // (DSDV), so a stale route of the same age elsewhere (one that may lead back here) cannot replace it
    const before = this.bestOf(this.candidatesOf(now));
    for (const [key, h] of gone) {
      this.heard.delete(key);
      for (const r of before.values())
        if (r.viaRelay === h.ann.origin && r.carrier.id === h.carrier.id && r.cost < ROUTE_INFINITY * 1000)
          this.lost.set(r.dest, Math.max(this.lost.get(r.dest) ?? 0, r.seq + 1));
    }
  }

  /** Expected delay of mail handed to `carrier` until it reaches `origin`: waiting for the carrier, then its trip. */
  private linkCost(h: Heard): number {
    return this.expectedWait(h.carrier.id) + (this.transit.get(`${h.ann.origin}\0${h.carrier.id}`) ?? 0);
  }

  /**
   * Every route each live announcement offers (at most one per announcement and destination),
   * unreachable ones included (cost ROUTE_INFINITY * 1000): a newer unreachable beats an older route.
   */
  private candidates(now: number): Route[] {
    this.expire(now);
    const out = this.candidatesOf(now);
    for (const [dest, seq] of this.lost) out.push({ dest, seq, cost: ROUTE_INFINITY * 1000, hops: 0, viaRelay: "", carrier: { id: "", label: "" } });
    return out;
  }

  private candidatesOf(now: number): Route[] {
    const out: Route[] = [];
    const inf = ROUTE_INFINITY * 1000;
    for (const h of this.heard.values()) {
      const link = this.linkCost(h);
      const nextContact = this.nextContact(h.carrier.id, now);
      const base = { viaRelay: h.ann.origin, carrier: h.carrier, ...(nextContact !== undefined ? { nextContact } : {}) };
      out.push({ dest: h.ann.origin, seq: h.ann.seq, cost: Math.min(inf, link), hops: 0, ...base });
      for (const e of h.ann.entries) {
        if (e.dest === this.self) continue;
        // poisoned reverse: a route through this relay point is no route for it
        const dead = e.via === this.self || e.cost >= ROUTE_INFINITY || e.hops + 1 > MAX_ROUTE_HOPS;
        out.push({ dest: e.dest, seq: e.seq, cost: dead ? inf : Math.min(inf, link + e.cost * 1000), hops: e.hops + 1, ...base });
      }
    }
    return out;
  }

  /** The best candidate per destination: the newest sequence number, then the least cost; unreachable ones included. */
  private best(now: number): Map<string, Route> {
    return this.bestOf(this.candidates(now));
  }

  private bestOf(candidates: Route[]): Map<string, Route> {
    const best = new Map<string, Route>();
    for (const r of candidates) {
      const b = best.get(r.dest);
      if (
        !b || r.seq > b.seq ||
        (r.seq === b.seq && (r.cost < b.cost || (r.cost === b.cost && (r.hops < b.hops || (r.hops === b.hops && r.carrier.id < b.carrier.id)))))
      )
        best.set(r.dest, r);
    }
    return best;
  }

  /** The best route to every reachable relay point, by destination. */
  routes(now: number): Route[] {
    return [...this.best(now).values()].filter((r) => r.cost < ROUTE_INFINITY * 1000).sort((a, b) => (a.dest < b.dest ? -1 : 1));
  }

  route(dest: string, now: number): Route | undefined {
    return this.routes(now).find((r) => r.dest === dest);
  }

  /**
   * Carriers that bring mail for `dest` closer: to a relay point whose own cost to it is below this
   * one's (so mail only ever goes downhill), best first, with the relay point each brings it to.
   */
  closerWays(dest: string, now: number): { carrier: Carrier; viaRelay: string; cost: number }[] {
    if (dest === this.self) return [];
    const mine = this.route(dest, now);
    if (!mine) return [];
    const byCarrier = new Map<string, { carrier: Carrier; viaRelay: string; cost: number }>();
    for (const h of this.heard.values()) {
      let theirs: number | undefined;
      if (h.ann.origin === dest) theirs = 0;
      else {
        const e = h.ann.entries.find((x) => x.dest === dest);
        if (e && e.seq >= mine.seq && e.via !== this.self && e.cost < ROUTE_INFINITY && e.hops + 1 <= MAX_ROUTE_HOPS) theirs = e.cost * 1000;
      }
      if (theirs === undefined || theirs >= mine.cost) continue;
      const total = this.linkCost(h) + theirs;
      const was = byCarrier.get(h.carrier.id);
      if (!was || total < was.cost) byCarrier.set(h.carrier.id, { carrier: h.carrier, viaRelay: h.ann.origin, cost: total });
    }
    return [...byCarrier.values()].sort((a, b) => a.cost - b.cost);
  }

  /** The carriers of closerWays. */
  closerCarriers(dest: string, now: number): Carrier[] {
    return this.closerWays(dest, now).map((w) => w.carrier);
  }

  /**
   * The entries of this relay point's next announcement: every reachable relay point with its cost
   * and the first relay point on the way, and those lost since, as unreachable, until they would
   * have expired elsewhere.
   */
  announceEntries(now: number, lifetimeMs: number): RouteEntry[] {
    const best = this.best(now);
    const out: RouteEntry[] = [];
    for (const r of best.values()) {
      if (r.cost >= ROUTE_INFINITY * 1000) continue;
      out.push({ dest: r.dest, seq: r.seq, cost: Math.ceil(r.cost / 1000), hops: r.hops, via: r.viaRelay, carrier: safeCarrierLabel(r.carrier.label) });
      this.announced.set(r.dest, { until: now + lifetimeMs, seq: r.seq, lost: false });
    }
    for (const [dest, was] of this.announced) {
      const b = best.get(dest);
      if (b && b.cost < ROUTE_INFINITY * 1000) continue;
      if (was.until <= now) {
        this.announced.delete(dest);
        continue;
      }
      // lost here: unreachable with a newer number than any route still going round (DSDV), unless
      // someone already said so with a newer one
      if (!was.lost) was.seq = Math.max(was.seq + 1, b?.seq ?? 0);
      else if (b && b.seq > was.seq) was.seq = b.seq;
      was.lost = true;
      out.push({ dest, seq: was.seq, cost: ROUTE_INFINITY, hops: 0, via: "" });
    }
    return out.sort((a, b) => (a.dest < b.dest ? -1 : 1));
  }

  /** Signs this relay point's next announcement. `seq` must go up across restarts (the caller persists it). */
  announce(relay: SigningKeyPair, cert: RelayCertificate, seq: number, now: number, lifetimeSeconds = 24 * 3600): Envelope {
    if (cert.home !== this.self) throw new RouteError(`the certificate is for ${cert.home}, not ${this.self}`);
    return announcementStatement(relay, cert, seq, now, lifetimeSeconds, this.announceEntries(now, lifetimeSeconds * 1000));
  }
}

/** A short fingerprint of a relay key for logs. */
export function relayKeyId(key: Uint8Array): string {
  return toHex(key.subarray(0, 6));
}
