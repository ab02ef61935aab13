// Relay points between villages: certificates from the school, the federation, signed route
// announcements, and the distance-vector table with poisoned reverse, expiry and bounded loops.
import { describe, expect, it } from "vitest";
import {
  MAX_ROUTE_HOPS, ROUTE_INFINITY, RoutingTable, announcementStatement, checkRelayCertificate, decodeEnvelope, generateIdentity, generateSchool,
  issueRelayCertificate, openFederation, readAnnouncement, signFederation, villagesAnnounced, safeCarrierLabel, encodeRelayCertificate,
  signEnvelope, EnvelopeKind, routesTopic, decodeRelayGrant, encodeRelayGrant,
  type Carrier, type Envelope, type RelayCertificate, type SchoolKey, type SigningKeyPair,
} from "./index.js";
import { generateSigningKeyPair } from "./crypto.js";
import { Writer } from "./bytes.js";

const H = 3_600_000;
const T0 = 1_800_000_000_000;

interface Village {
  home: string;
  school: SchoolKey;
  key: SigningKeyPair;
  cert: RelayCertificate;
}

function village(home: string): Village {
  const school = generateSchool(home);
  const key = generateSigningKeyPair();
  return { home, school, key, cert: issueRelayCertificate(school, key.publicKey) };
}

const [kisumu, siaya, bondo, homabay, migori] = ["kisumu-primary", "siaya-primary", "bondo-primary", "homabay-primary", "migori-primary"].map(village) as [
  Village, Village, Village, Village, Village,
];
const all = [kisumu, siaya, bondo, homabay, migori];
const federation = new Map(all.map((v) => [v.home, v.school.signing.publicKey]));
const carrierOf = (v: Village): Carrier => ({ id: v.home, label: `${v.home}'s link` });

describe("relay certificates and the federation", () => {
  it("a grant carries a relay box's certificate and federation from its school server; one for another key, village or school is refused", () => {
    const partners = new Map([[siaya.home, siaya.school.signing.publicKey]]);
    const grant = encodeRelayGrant(kisumu.cert, signFederation(kisumu.school, partners));
    expect(grant).toMatch(/^pigeon-relay1:[A-Za-z0-9_-]+$/);
    const got = decodeRelayGrant(` ${grant}\n`, kisumu.home, kisumu.key.publicKey);
    expect(got.certificate).toEqual(kisumu.cert);
    expect([...got.federation.keys()].sort()).toEqual([kisumu.home, siaya.home]);
    expect(() => decodeRelayGrant(grant, kisumu.home, generateSigningKeyPair().publicKey)).toThrow(/certifies another relay point's key/);
    expect(() => decodeRelayGrant(grant, siaya.home, kisumu.key.publicKey)).toThrow(/for the relay point of kisumu-primary, not of siaya-primary/);
    // a certificate of kisumu's school with a federation list some other "kisumu-primary" school signed
    const forged = encodeRelayGrant(kisumu.cert, signFederation(generateSchool(kisumu.home), partners));
    expect(() => decodeRelayGrant(forged, kisumu.home, kisumu.key.publicKey)).toThrow(/federation list of another school/);
    expect(() => decodeRelayGrant(grant.slice(0, -6), kisumu.home, kisumu.key.publicKey)).toThrow(/damaged relay point's grant/);
    expect(() => decodeRelayGrant(grant + "!", kisumu.home, kisumu.key.publicKey)).toThrow(/damaged relay point's grant/);
    expect(() => decodeRelayGrant("pigeon1:abc", kisumu.home, kisumu.key.publicKey)).toThrow(/not a relay point's grant/);
  });

  it("a school certifies its relay point; another key of the same home, or a damaged signature, is refused", () => {
    expect(() => checkRelayCertificate(kisumu.cert, federation)).not.toThrow();
    const impostor = issueRelayCertificate(generateSchool("kisumu-primary"), generateSigningKeyPair().publicKey);
    expect(() => checkRelayCertificate(impostor, federation)).toThrow("by another school key");
    const bad = { ...kisumu.cert, relayKey: generateSigningKeyPair().publicKey };
    expect(() => checkRelayCertificate(bad, federation)).toThrow("forged signature");
    expect(() => checkRelayCertificate(village("atlantis").cert, federation)).toThrow('"atlantis" is not a village of the federation');
  });

  it("a federation list opens only with its own school's key and says which school speaks for which village", () => {
    const list = signFederation(kisumu.school, new Map([[siaya.home, siaya.school.signing.publicKey]]));
    const f = openFederation(list, kisumu.school.signing.publicKey);
    expect([...f.keys()].sort()).toEqual(["kisumu-primary", "siaya-primary"]);
    expect(f.get("siaya-primary")).toEqual(siaya.school.signing.publicKey);
    expect(() => openFederation(list, siaya.school.signing.publicKey)).toThrow("a federation list of another school");
    const damaged = Uint8Array.from(list);
    damaged[damaged.length - 1]! ^= 1;
    expect(() => openFederation(damaged, kisumu.school.signing.publicKey)).toThrow("forged signature");
  });
});

describe("route announcements", () => {
  const entries = [{ dest: "bondo-primary", seq: 3, cost: 7200, hops: 1, via: "siaya-primary" }];

  it("travel as a signed statement that names villages and costs, nothing else, and read back the same", () => {
    const env = announcementStatement(kisumu.key, kisumu.cert, 7, T0 + 123, 3600, entries);
    const ann = readAnnouncement(decodeEnvelope(env.bytes), federation);
    expect(ann).toMatchObject({ origin: "kisumu-primary", seq: 7, sent: T0 + 123, expires: T0 + 123 + 3600_000, entries });
    expect(env.kind).toBe(4);
    expect(env.payload[0]).toBe(4);
  });

  it("a laptop pretending to be a relay point is refused, whether it signs with its own key or shows no school's certificate", () => {
    const laptop = generateIdentity("amara", "kisumu-primary");
    // the relay point's real certificate, signed by the laptop's key
    const stolen = announcementStatement(laptop.signing, { ...kisumu.cert, relayKey: laptop.signing.publicKey }, 1, T0, 3600, []);
    expect(() => readAnnouncement(stolen, federation)).toThrow("forged signature");
    const selfMade = village("kisumu-primary"); // a "school" of its own with the same home
    const fake = announcementStatement(selfMade.key, selfMade.cert, 1, T0, 3600, []);
    expect(() => readAnnouncement(fake, federation)).toThrow("relay certificate for kisumu-primary by another school key");
  });

  it("a route to a relay point that does not exist, a changed byte, and a lifetime over a week are refused", () => {
    const ghost = announcementStatement(kisumu.key, kisumu.cert, 1, T0, 3600, [{ dest: "atlantis", seq: 1, cost: 1, hops: 0, via: "atlantis" }]);
    expect(() => readAnnouncement(ghost, federation)).toThrow('for "atlantis", which is no relay point of the federation');
    const env = announcementStatement(kisumu.key, kisumu.cert, 1, T0, 3600, entries);
    const bytes = Uint8Array.from(env.bytes);
    bytes[env.signedLength - 5]! ^= 1;
    expect(() => readAnnouncement(decodeEnvelope(bytes), federation)).toThrow();
    const long = announcementStatement(kisumu.key, kisumu.cert, 1, T0, 8 * 24 * 3600, entries);
    expect(() => readAnnouncement(long, federation)).toThrow("may live");
  });

  it("a replayed or older announcement is refused; the same one through another carrier is another way, not a replay", () => {
    const t = new RoutingTable("siaya-primary", federation);
    const a5 = announcementStatement(kisumu.key, kisumu.cert, 5, T0, 3600, []);
    const a4 = announcementStatement(kisumu.key, kisumu.cert, 4, T0, 3600, []);
    const bus: Carrier = { id: "bus", label: "the Tuesday bus" };
    expect(t.hear(a5, carrierOf(kisumu), T0)).toEqual({ ok: true, origin: "kisumu-primary", seq: 5 });
    expect(t.hear(a5, carrierOf(kisumu), T0 + 1)).toMatchObject({ ok: false, reason: expect.stringContaining("replayed announcement from kisumu-primary: seq 5") });
    expect(t.hear(a4, carrierOf(kisumu), T0 + 2)).toMatchObject({ ok: false, reason: expect.stringContaining("replayed or stale") });
    expect(t.hear(a5, bus, T0 + H / 2)).toMatchObject({ ok: true });
    expect(t.hear(announcementStatement(kisumu.key, kisumu.cert, 6, T0, 3600, []), bus, T0 + 2 * H)).toMatchObject({ ok: false, reason: expect.stringContaining("expired") });
    const own = new RoutingTable("kisumu-primary", federation);
    expect(own.hear(a5, bus, T0)).toMatchObject({ ok: false, reason: expect.stringContaining("own name") });
    expect(t.refusals.length).toBe(3);
  });
});

/** Relay points that meet on schedules: `up(a, b, round)` says whether a link between two is up in that round (one round = one hour). */
class Federation5 {
  tables = new Map(all.map((v) => [v.home, new RoutingTable(v.home, federation)]));
  seq = 0;
  constructor(public up: (a: Village, b: Village, round: number) => boolean) {}

  round(r: number): void {
    const now = T0 + r * H;
    this.seq++;
    const anns = new Map<string, Envelope>(all.map((v) => [v.home, this.tables.get(v.home)!.announce(v.key, v.cert, this.seq, now, 6 * 3600)]));
    for (const a of all)
      for (const b of all) {
        if (a === b || !this.up(a, b, r)) continue;
        this.tables.get(b.home)!.contact(carrierOf(a), now);
        const res = this.tables.get(b.home)!.hear(anns.get(a.home)!, carrierOf(a), now + 60_000);
        expect(res.ok).toBe(true);
      }
  }

  at(home: string): RoutingTable {
    return this.tables.get(home)!;
  }
}

const isPair = (a: Village, b: Village, x: Village, y: Village) => (a === x && b === y) || (a === y && b === x);

describe("the routing table", () => {
  it("learns a carrier's rhythm: one every four hours is two hours away on average, and says when it comes next", () => {
    const t = new RoutingTable("siaya-primary", federation);
    const bus: Carrier = { id: "bus", label: "the bus" };
    for (let i = 0; i < 5; i++) t.contact(bus, T0 + i * 4 * H);
    expect(t.expectedWait("bus")).toBe(2 * H);
    expect(t.nextContact("bus", T0 + 17 * H)).toBe(T0 + 20 * H);
  });

  it("converges along a line of villages: costs add up, the way is named, the far end is reached through the middle", () => {
    // kisumu - siaya every hour; siaya - bondo every 4 hours
    const net = new Federation5((a, b, r) => isPair(a, b, kisumu, siaya) || (isPair(a, b, siaya, bondo) && r % 4 === 0));
    for (let r = 0; r < 20; r++) net.round(r);
    const now = T0 + 20 * H;
    const toBondo = net.at("kisumu-primary").route("bondo-primary", now)!;
    expect(toBondo).toMatchObject({ viaRelay: "siaya-primary", hops: 1, carrier: { id: "siaya-primary" } });
    const siayaToBondo = net.at("siaya-primary").route("bondo-primary", now)!;
    expect(siayaToBondo.cost).toBeGreaterThanOrEqual(2 * H); // waiting for the 1-in-4 link
    expect(toBondo.cost).toBeGreaterThan(siayaToBondo.cost);
    expect(net.at("bondo-primary").route("kisumu-primary", now)).toMatchObject({ viaRelay: "siaya-primary", hops: 1 });
    expect(net.at("kisumu-primary").closerCarriers("bondo-primary", now).map((c) => c.id)).toEqual(["siaya-primary"]);
    expect(net.at("kisumu-primary").route("homabay-primary", now)).toBeUndefined(); // no link there: honestly no route
  });

  it("poisoned reverse: when a village is cut off, its neighbour does not learn it back from the village it told", () => {
    let cut = false;
    const net = new Federation5((a, b) => isPair(a, b, siaya, bondo) || (!cut && isPair(a, b, kisumu, siaya)));
    for (let r = 0; r < 5; r++) net.round(r);
    expect(net.at("bondo-primary").route("kisumu-primary", T0 + 5 * H)).toBeDefined();
    cut = true;
    for (let r = 5; r < 13; r++) {
      net.round(r);
      // siaya never routes kisumu through bondo, which only knew it from siaya
      expect(net.at("siaya-primary").route("kisumu-primary", T0 + (r + 1) * H)?.viaRelay ?? "none").not.toBe("bondo-primary");
    }
    expect(net.at("siaya-primary").route("kisumu-primary", T0 + 13 * H)).toBeUndefined();
    expect(net.at("bondo-primary").route("kisumu-primary", T0 + 13 * H)).toBeUndefined();
    // the loss was announced as unreachable, so bondo forgot it at once rather than at expiry
    const last = net.at("siaya-primary").announceEntries(T0 + 13 * H, 6 * H);
    expect(last).toContainEqual({ dest: "kisumu-primary", seq: expect.any(Number), cost: ROUTE_INFINITY, hops: 0, via: "" });
  });

  it("a ring around a cut-off village forgets it within two rounds of the loss being noticed, and it stays forgotten", () => {
    // homabay hangs off kisumu; kisumu, siaya, bondo form a ring. Without sequence numbers the ring
    // would point round in a circle while the costs count up to the ceiling (RIP); kisumu's newer
    // "unreachable" overrides every older route at once.
    let cut = false;
    const ring = (a: Village, b: Village) => isPair(a, b, kisumu, siaya) || isPair(a, b, siaya, bondo) || isPair(a, b, bondo, kisumu);
    const net = new Federation5((a, b) => ring(a, b) || (!cut && isPair(a, b, kisumu, homabay)));
    for (let r = 0; r < 6; r++) net.round(r);
    expect(net.at("bondo-primary").route("homabay-primary", T0 + 6 * H)).toMatchObject({ viaRelay: "kisumu-primary" });
    cut = true;
    let gone = -1;
    for (let r = 6; r < 6 + 2 * MAX_ROUTE_HOPS; r++) {
      net.round(r);
      const now = T0 + (r + 1) * H;
      const alive = [kisumu, siaya, bondo].filter((v) => net.at(v.home).route("homabay-primary", now));
      if (gone < 0 && alive.length === 0) gone = r;
      // mail handed to a "closer" carrier never comes straight back
      for (const v of [kisumu, siaya, bondo])
        for (const c of net.at(v.home).closerCarriers("homabay-primary", now))
          expect(net.at(c.id).closerCarriers("homabay-primary", now).map((x) => x.id)).not.toContain(v.home);
      if (gone >= 0) expect(alive).toEqual([]);
      for (const v of [kisumu, siaya, bondo]) expect(net.at(v.home).route("homabay-primary", now)?.hops ?? 0).toBeLessThanOrEqual(MAX_ROUTE_HOPS);
    }
    expect(gone).toBeGreaterThan(0);
    // kisumu's own route lives until homabay's last announcement expires (6 hours), then two rounds
    expect(gone - 6).toBeLessThanOrEqual(6 + 1);
  });

  it("a loop made on purpose (a relay point claiming its way goes through the one it tells) is ignored by that one", () => {
    const t = new RoutingTable("siaya-primary", federation);
    const liar = announcementStatement(kisumu.key, kisumu.cert, 1, T0, 3600, [{ dest: "bondo-primary", seq: 1, cost: 1, hops: 1, via: "siaya-primary" }]);
    expect(t.hear(liar, carrierOf(kisumu), T0)).toMatchObject({ ok: true });
    expect(t.route("bondo-primary", T0)).toBeUndefined();
    expect(t.route("kisumu-primary", T0)).toBeDefined();
    const tooFar = announcementStatement(kisumu.key, kisumu.cert, 2, T0, 3600, [{ dest: "bondo-primary", seq: 1, cost: 1, hops: MAX_ROUTE_HOPS, via: "migori-primary" }]);
    expect(t.hear(tooFar, carrierOf(kisumu), T0)).toMatchObject({ ok: true });
    expect(t.route("bondo-primary", T0)).toBeUndefined();
  });

  it("two relay points that both reached a village directly do not route it through each other once it is gone", () => {
    // kisumu and siaya both heard bondo (6-hour announcements), and tell each other every hour
    let bondoUp = true;
    const net = new Federation5((a, b) => isPair(a, b, kisumu, siaya) || (bondoUp && (isPair(a, b, kisumu, bondo) || isPair(a, b, siaya, bondo))));
    net.round(0);
    net.round(1);
    bondoUp = false;
    // round 6 is the last before bondo's last announcement ends (signed at 1 h, for 6 hours): each
    // still tells the other "bondo, directly"
    for (let r = 2; r <= 6; r++) net.round(r);
    const justAfter = T0 + 7 * H;
    for (const v of [kisumu, siaya]) expect(net.at(v.home).route("bondo-primary", justAfter)).toBeUndefined();
    for (let r = 7; r < 12; r++) net.round(r);
    for (const v of [kisumu, siaya]) expect(net.at(v.home).route("bondo-primary", T0 + 12 * H)).toBeUndefined();
  });

  it("a route expires when nothing renews it", () => {
    const t = new RoutingTable("siaya-primary", federation);
    t.hear(announcementStatement(kisumu.key, kisumu.cert, 1, T0, 3600, []), carrierOf(kisumu), T0);
    expect(t.route("kisumu-primary", T0 + H - 1)).toBeDefined();
    expect(t.route("kisumu-primary", T0 + H)).toBeUndefined();
  });
});

describe("carrier labels in announcements (issue 18: the outbox names the bus)", () => {
  const entries = [
    { dest: "bondo-primary", seq: 3, cost: 7200, hops: 1, via: "siaya-primary", carrier: "the tuesday bus" },
    { dest: "siaya-primary", seq: 4, cost: 3600, hops: 0, via: "siaya-primary" },
  ];

  it("travel after the routes, read back the same, and older announcements without them still read", () => {
    const env = decodeEnvelope(announcementStatement(kisumu.key, kisumu.cert, 7, T0, 3600, entries).bytes);
    expect(readAnnouncement(env, federation).entries).toEqual(entries);
    expect(villagesAnnounced(env, "kisumu-primary")).toEqual([
      { dest: "bondo-primary", via: "siaya-primary", cost: 7200, sent: T0, carrier: "the tuesday bus" },
      { dest: "siaya-primary", via: "siaya-primary", cost: 3600, sent: T0 },
    ]);
    // an announcement as signed before labels existed: the routes and nothing after them
    const old = decodeEnvelope(announcementStatement(kisumu.key, kisumu.cert, 8, T0, 3600, entries.map(({ carrier: _, ...e }) => e)).bytes);
    expect(old.payload.length).toBeLessThan(env.payload.length);
    expect(readAnnouncement(old, federation).entries.map((e) => e.carrier)).toEqual([undefined, undefined]);
    expect(villagesAnnounced(old, "kisumu-primary")!.map((w) => w.carrier)).toEqual([undefined, undefined]);
  });

  it("a label with control characters or too long is never signed, and one in a signed announcement is refused", () => {
    const sneaky = [{ ...entries[0]!, carrier: "the bus\u001b[31m" }, { ...entries[1]!, carrier: "x".repeat(65) }];
    const env = decodeEnvelope(announcementStatement(kisumu.key, kisumu.cert, 9, T0, 3600, sneaky).bytes);
    expect(readAnnouncement(env, federation).entries.map((e) => e.carrier)).toEqual([undefined, undefined]);
    expect(safeCarrierLabel("the bus\n")).toBe("");
    // a relay point of the federation signing a control character itself (a hand-made payload)
    const w = new Writer().u8(4).bytes(encodeRelayCertificate(kisumu.cert)).varint(T0).varint(1)
      .string("bondo-primary").varint(1).varint(60).u8(0).string("").u8(1).varint(1).string("bus\u0007").varint(1);
    const signer = { name: "relay", home: kisumu.home, person: kisumu.key.publicKey, signing: kisumu.key, sealing: generateIdentity("x", "y").sealing };
    const forged = signEnvelope(signer, { kind: EnvelopeKind.Statement, conversation: routesTopic(kisumu.key.publicKey), segment: 10, recipients: [], created: T0 - (T0 % H), lifetime: 3600, keyId: new Uint8Array(8) }, w.finish());
    expect(() => readAnnouncement(decodeEnvelope(forged.bytes), federation)).toThrow("control characters");
    expect(villagesAnnounced(decodeEnvelope(forged.bytes), "kisumu-primary")).toBeUndefined();
    // a route naming a label that is not there
    const w2 = new Writer().u8(4).bytes(encodeRelayCertificate(kisumu.cert)).varint(T0).varint(1)
      .string("bondo-primary").varint(1).varint(60).u8(0).string("").u8(1).varint(1).string("the bus").varint(2);
    const dangling = signEnvelope(signer, { kind: EnvelopeKind.Statement, conversation: routesTopic(kisumu.key.publicKey), segment: 11, recipients: [], created: T0 - (T0 % H), lifetime: 3600, keyId: new Uint8Array(8) }, w2.finish());
    expect(() => readAnnouncement(decodeEnvelope(dangling.bytes), federation)).toThrow("carrier label 2 of 1");
  });

  it("a relay point announces the carrier of each route it learnt", () => {
    const t = new RoutingTable("siaya-primary", federation);
    const bus = { id: "bus", label: "the tuesday bus" };
    expect(t.hear(announcementStatement(kisumu.key, kisumu.cert, 1, T0, 3600, []), bus, T0 + 60_000).ok).toBe(true);
    expect(t.announceEntries(T0 + 120_000, H)).toMatchObject([{ dest: "kisumu-primary", via: "kisumu-primary", carrier: "the tuesday bus" }]);
  });
});

describe("the table across a restart (issue 18: a relay point survives power cuts)", () => {
  const bus = { id: "ab".repeat(32), label: "the tuesday bus" };

  it("comes back from its snapshot with the same routes and costs, and routes mail downhill at once", () => {
    const t = new RoutingTable("siaya-primary", federation);
    for (const at of [T0, T0 + 4 * H, T0 + 8 * H]) t.contact(bus, at);
    t.hear(announcementStatement(kisumu.key, kisumu.cert, 1, T0 + 7 * H, 24 * 3600, [{ dest: "bondo-primary", seq: 2, cost: 600, hops: 0, via: "" }]), bus, T0 + 8 * H);
    const now = T0 + 9 * H;
    const again = new RoutingTable("siaya-primary", federation);
    for (const at of t.contactsOf(bus.id)) again.contact(bus, at); // the rhythm comes back from relay-contacts.json
    const snap = JSON.parse(JSON.stringify(t.snapshot(now), (_, v) => (v instanceof Uint8Array ? [...v] : v)), (k, v) => (k === "bytes" ? Uint8Array.from(v) : v));
    expect(again.restore(snap, now)).toEqual({ restored: 1, problems: [] });
    expect(again.routes(now)).toEqual(t.routes(now));
    expect(again.closerCarriers("bondo-primary", now).map((c) => c.label)).toEqual(["the tuesday bus"]);
    // the same announcement again through the bus is a replay after the restart too
    expect(again.hear(announcementStatement(kisumu.key, kisumu.cert, 1, T0 + 7 * H, 24 * 3600, []), bus, now).ok).toBe(false);
  });

  it("leaves out what has expired, forged, another federation's, its own, a clock gone back, and bad numbers, saying why", () => {
    const t = new RoutingTable("siaya-primary", federation);
    const good = announcementStatement(kisumu.key, kisumu.cert, 1, T0, 3600, []);
    t.hear(good, bus, T0 + 60_000);
    const snap = t.snapshot(T0 + 120_000);
    const one = snap.heard[0]!;
    const forged = Uint8Array.from(one.bytes);
    forged[forged.length - 1]! ^= 1;
    const stranger = village("atlantis");
    const bad = {
      heard: [
        one,
        { ...one, bytes: forged },
        { ...one, bytes: announcementStatement(stranger.key, stranger.cert, 1, T0, 3600, []).bytes },
        { ...one, bytes: announcementStatement(siaya.key, siaya.cert, 1, T0, 3600, []).bytes },
        { ...one, bytes: announcementStatement(bondo.key, bondo.cert, 1, T0, 3600, []).bytes, receivedAt: T0 + 5 * H },
        { ...one, bytes: announcementStatement(bondo.key, bondo.cert, 2, T0, 3600, []).bytes, transit: -1 },
        { ...one, bytes: announcementStatement(bondo.key, bondo.cert, 3, T0, 3600, []).bytes, carrier: { id: "ab", label: "bus\u0000" } },
      ],
      lost: [["atlantis", 3], ["bondo-primary", 4]] as [string, number][],
      announced: [],
    };
    const again = new RoutingTable("siaya-primary", federation);
    const { restored, problems } = again.restore(bad, T0 + 30 * 60_000);
    expect(restored).toBe(1);
    expect(problems).toEqual([
      "announcement 1 left out (route announcement: forged signature)",
      'announcement 2 left out ("atlantis" is not a village of the federation)',
      "announcement 3 left out (this relay point's own)",
      "announcement 4 left out (heard after this relay point's clock now: the clock went back)",
      "announcement 5 left out (a bad trip measure)",
      "announcement 6 left out (a bad carrier name)",
      'lost village "atlantis" left out (not a village of the federation, or a bad number)',
    ]);
    expect(again.routes(T0 + 30 * 60_000).map((r) => r.dest)).toEqual(["kisumu-primary"]);
    // expired by the clock now: it does not come back
    const later = new RoutingTable("siaya-primary", federation);
    expect(later.restore(snap, T0 + H + 60_000)).toEqual({ restored: 0, problems: ["announcement 0 left out (expired (from kisumu-primary, seq 1))"] });
    expect(later.routes(T0 + H + 60_000)).toEqual([]);
  });
});
