// Three villages' relay points as running nodes (in memory), linked only by a bus, an ordinary node
// that carries their announcements like any statement (1 -> 2 -> 3 -> 2 -> 1), and by a radio link
// between 2 and 3 that is up one hour in four; hours pass on a shared clock. The tables converge, name
// the carrier, and when the radio link and then the bus's visits to 3 stop for good, say honestly
// that 3 cannot be reached once what they heard has expired.
import { afterEach, describe, expect, it } from "vitest";
import { decodeEnvelope, generateIdentity, generateSchool, isAnnouncement, issueRelayCertificate, relayKeyPair, toHex, type Identity } from "@pigeon/model";
import { memoryStorage, PigeonNode, RelayPoint } from "./index.js";
import { MemoryNetwork, meet, type Laptop } from "./devices.test-helper.js";
import { until } from "./until.test-helper.js";

const H = 3_600_000;
let clock = Date.UTC(2026, 10, 2, 6);
const now = () => clock;
const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function boot(id: Identity): Promise<Laptop> {
  const net = new MemoryNetwork();
  const node = await PigeonNode.open({ identity: id, storage: memoryStorage(), network: net, now });
  cleanup.push(() => node.shutdown().catch(() => {}));
  return { id, net, node, m: node.mailbox };
}

const homes = ["village-one", "village-two", "village-three"];
const schools = homes.map((h) => generateSchool(h));
const federation = new Map(schools.map((s) => [s.home, s.signing.publicKey]));

describe("relay points on running nodes", () => {
  it("learn routes through a bus and a part-time radio link, and forget a village cut off for good", async () => {
    const relays = await Promise.all(
      schools.map(async (s) => {
        const laptop = await boot(generateIdentity("school", s.home));
        const key = relayKeyPair();
        const relay = new RelayPoint(laptop.node, { home: s.home, signing: key, certificate: issueRelayCertificate(s, key.publicKey), federation, announceLifetimeSeconds: 48 * 3600, now });
        cleanup.push(() => relay.close());
        return { laptop, relay, key: toHex(key.publicKey) };
      }),
    );
    const bus = await boot(generateIdentity("bus", "mule"));
    const [one, two, three] = relays as [(typeof relays)[0], (typeof relays)[0], (typeof relays)[0]];
    type Relay = (typeof relays)[0];
    /** The newest route announcement a node holds of each relay point (what else it holds differs: its own, the expired). */
    const count = (l: Laptop) => {
      const newest = new Map<string, number>();
      for (const id of l.m.envelopes.idsAfter(new Uint8Array(32), 10_000)) {
        const held = l.m.envelopes.get(id);
        if (!held || held.bytes[0] !== 2) continue;
        const env = decodeEnvelope(held.bytes);
        if (isAnnouncement(env)) newest.set(toHex(env.author), Math.max(newest.get(toHex(env.author)) ?? 0, env.segment));
      }
      return [...newest].sort().join();
    };
    /** Two nodes linked until each holds what the other does (announcements are statements: everyone takes them). */
    const exchange = async (a: Laptop, b: Laptop, ...signers: Relay[]) => {
      const before = signers.map((r) => r.relay.seq);
      const apart = meet(a, b);
      // each relay point signs a fresh announcement when the link begins; then both hold the same newest ones
      await until(() => signers.every((r, i) => r.relay.seq > before[i]!), "fresh announcements");
      await until(() => count(a) === count(b) && signers.every((r) => count(a).includes(`${r.key},${r.relay.seq}`)), `${a.id.name}@${a.id.home} and ${b.id.name}@${b.id.home} to hold the same`);
      apart();
    };
    /** The bus stops at a relay point, then drives on for six hours. */
    const stop = async (r: Relay) => {
      await exchange(bus, r.laptop, r);
      clock += 6 * H;
    };
    /** The radio link between two and three, up one hour in four. */
    const radio = async (up: boolean) => {
      if (up) await exchange(two.laptop, three.laptop, two, three);
      clock += H;
    };
    clock += H; // the relay points signed their first announcements when they started
    let hour = 0;
    for (const r of [one, two, three, two, one, two, three, two, one]) {
      await stop(r);
      await radio(hour++ % 4 === 0);
    }
    const at = () => clock;
    const names = (r: Relay) => r.relay.routes().map((x) => `${x.dest} via ${x.viaRelay} with ${x.carrier.label}`);
    expect(names(one)).toContain("village-two via village-two with the bus");
    expect(one.relay.routes().map((x) => x.dest)).toEqual(["village-three", "village-two"]);
    expect(three.relay.routes().map((x) => x.dest)).toEqual(["village-one", "village-two"]);
    expect(two.relay.routes().find((x) => x.dest === "village-three")).toBeDefined();
    // the bus's rhythm is known at village two (it came four times)
    expect(two.relay.routes().find((x) => x.dest === "village-one")!.nextContact).toBeGreaterThan(at());
    // cut: no more radio, and the bus only goes between one and two
    for (let i = 0; i < 4; i++) {
      await stop(one);
      await stop(two);
    }
    expect(one.relay.routes().map((x) => x.dest)).toEqual(["village-two"]);
    expect(two.relay.routes().map((x) => x.dest)).toEqual(["village-one"]);
  }, 60_000);
});
