// Mail between three villages on running nodes (in memory), the way children send it: each village
// has a relay point, each child's laptop meets only its own relay point, and a bus (an ordinary node)
// goes 1 -> 2 -> 3 -> 2 -> 1. Every child writes to the other two; every message arrives exactly
// once, through the kind-7 envelope naming only the destination relay point, and the delivered
// receipt comes back the same way. Hostile envelopes are refused with a clear log line.
import { afterEach, describe, expect, it } from "vitest";
import {
  contactCard, decodeBetweenVillages, decodeSealed, forVillage, generateIdentity, generateSchool, issueRelayCertificate, relayKeyPair, toHex, type Identity,
} from "@pigeon/model";
import { memoryStorage, PigeonNode, RelayPoint, type Log } from "./index.js";
import { MemoryNetwork, meet, type Laptop } from "./devices.test-helper.js";
import { until } from "./until.test-helper.js";

const H = 3_600_000;
let clock = Date.UTC(2026, 10, 2, 6);
const now = () => clock;
const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

/** A log kept in memory, so the test reads what an administrator would. */
function memoryLog(lines: string[]): Log {
  const at = (level: string) => (msg: string) => void lines.push(`${level} ${msg}`);
  return { info: at("info"), warn: at("warn"), error: at("error"), debug: () => {} };
}

async function boot(id: Identity, lines: string[] = []): Promise<Laptop> {
  const net = new MemoryNetwork();
  const node = await PigeonNode.open({ identity: id, storage: memoryStorage(), network: net, now, log: memoryLog(lines) });
  cleanup.push(() => node.shutdown().catch(() => {}));
  return { id, net, node, m: node.mailbox };
}

const homes = ["village-one", "village-two", "village-three"];
const schools = homes.map((h) => generateSchool(h));
const federation = new Map(schools.map((s) => [s.home, s.signing.publicKey]));

/** Everything a node stores: the count that stops changing once a meeting has moved all it will. */
const held = (l: Laptop) => l.m.envelopes.idsAfter(new Uint8Array(32), 100_000).length;

/** Two nodes meet until nothing more moves between them, then part. */
async function visit(a: Laptop, b: Laptop): Promise<void> {
  const apart = meet(a, b);
  let last = "";
  let still = 0;
  await until(async () => {
    await new Promise((r) => setTimeout(r, 30));
    const seen = `${held(a)},${held(b)}`;
    still = seen === last ? still + 1 : 0;
    last = seen;
    return still >= 5;
  }, `${a.id.name} and ${b.id.name} to settle`);
  apart();
}

describe("mail between villages", () => {
  it("travels by relay points and a bus, arrives exactly once, and its receipts come back", async () => {
    const relayLogs = homes.map(() => [] as string[]);
    const relays = await Promise.all(
      schools.map(async (s, i) => {
        const node = await boot(generateIdentity("school", s.home), relayLogs[i]);
        const key = relayKeyPair();
        const relay = new RelayPoint(node.node, { home: s.home, signing: key, certificate: issueRelayCertificate(s, key.publicKey), federation, announceLifetimeSeconds: 48 * 3600, now });
        cleanup.push(() => relay.close());
        return { node, relay };
      }),
    );
    const kids = await Promise.all(["ama", "ben", "cyn"].map((n, i) => boot(generateIdentity(n, homes[i]))));
    const bus = await boot(generateIdentity("bus", "road"));
    // each child was given the other two's cards (a pen-pal exchange the teachers organised)
    for (const k of kids) for (const o of kids) if (k !== o) await k.m.addContact(contactCard(o.id));

    const stop = async (v: number) => {
      await visit(bus, relays[v]!.node);
      clock += 6 * H;
    };
    const school = async () => {
      for (let v = 0; v < 3; v++) await visit(kids[v]!, relays[v]!.node);
      clock += H;
    };
    // a first round of the bus: the relay points learn their routes, and the children their village's
    for (const v of [0, 1, 2, 1, 0]) await stop(v);
    await school();
    expect(relays[0]!.relay.routes().map((r) => `${r.dest} with ${r.carrier.label}`).sort()).toEqual(["village-three with bus@road", "village-two with bus@road"]);

    for (const k of kids) for (const o of kids) if (k !== o) await k.m.send(`${o.id.name}@${o.id.home}`, `hello ${o.id.name}, from ${k.id.name}`);
    // nothing for another village goes to a classmate or the bus straight from the child's laptop:
    // it waits for the relay point
    await school();
    // the outbox says where it is going, by which relay point, and when it is expected there
    const ama = await kids[0]!.m.outbox();
    expect(ama.map((m) => m.state)).toEqual(["sent", "sent"]);
    expect(ama.map((m) => m.sentTo)).toEqual(["school@village-one", "school@village-one"]);
    for (const m of ama) {
      expect(m.village!.dest).toBe(m.to[0]!.split("@")[1]);
      expect(m.village!.via).toMatch(/^village-(two|three)$/);
      expect(m.village!.expectedAt).toBeGreaterThan(m.handedAt!);
    }
    for (let round = 0; round < 2; round++) {
      for (const v of [0, 1, 2, 1, 0]) await stop(v);
      await school();
    }
    for (const k of kids) {
      const got = (await k.m.inbox()).map((m) => m.body).sort();
      const others = kids.filter((o) => o !== k).map((o) => `hello ${k.id.name}, from ${o.id.name}`).sort();
      expect(got).toEqual(others); // each exactly once
    }
    // relay points hand mail for another village only to the carrier their table chose: no child's
    // laptop holds any but its own
    for (const k of kids) {
      const wrappers = k.m.envelopes.idsAfter(new Uint8Array(32), 100_000).filter((id) => k.m.envelopes.bytesOf(id)?.[1] === 7);
      expect(wrappers.length).toBeGreaterThanOrEqual(2);
      for (const id of wrappers) expect(decodeBetweenVillages(k.m.envelopes.bytesOf(id)!).sealed.id).toSatisfy((x: Uint8Array) => k.m.envelopes.isOwn(x, k.id.person));
    }
    // the destination relay points took them out of kind 7
    for (const lines of relayLogs) expect(lines.some((l) => l.includes("took mail for this village out of envelope"))).toBe(true);
    // and each once: the bus coming back with the same kind-7 copy is not taken (nor refused) again
    for (const lines of relayLogs) expect(lines.filter((l) => l.includes("took mail for this village out of envelope")).length).toBeLessThanOrEqual(8);
    for (const lines of relayLogs) expect(lines.filter((l) => l.startsWith("warn"))).toEqual([]);
    // and the delivered receipts came back the same way
    for (const k of kids) {
      const out = await k.m.outbox();
      expect(out.map((m) => `${m.to.join()} ${m.state}`).sort()).toEqual(kids.filter((o) => o !== k).map((o) => `${o.id.name}@${o.id.home} delivered`).sort());
    }
  }, 120_000);

  it("refuses mail naming a village outside the federation, and forged envelopes, with a clear log", async () => {
    const lines: string[] = [];
    const relayNode = await boot(generateIdentity("school", "village-one"), lines);
    const key = relayKeyPair();
    const relay = new RelayPoint(relayNode.node, { home: "village-one", signing: key, certificate: issueRelayCertificate(schools[0]!, key.publicKey), federation, now });
    cleanup.push(() => relay.close());
    const mallory = await boot(generateIdentity("mallory", "village-one"));
    const ben = generateIdentity("ben", "village-two");
    await mallory.m.addContact(contactCard(ben));
    // a real sealed message, wrapped for a village no relay point of the federation knows
    await mallory.m.send("ben@village-two", "hi");
    const sealedId = mallory.m.envelopes.idsAfter(new Uint8Array(32), 1000).find((id) => mallory.m.envelopes.bytesOf(id)?.[1] === 5)!;
    const sealed = decodeSealed(mallory.m.envelopes.bytesOf(sealedId)!);
    const forged = forVillage("atlantis-primary", sealed);
    const r1 = await relayNode.m.receive(forged.bytes, 1, "mallory@village-one", mallory.id.person);
    expect(r1.refused).toContain('"atlantis-primary", which is not a village of this relay point\'s federation');
    // changed in transit: the sealed envelope inside no longer parses
    const broken = Uint8Array.from(forVillage("village-two", sealed).bytes);
    broken.fill(0, broken.length - 80);
    const r2 = await relayNode.m.receive(broken.subarray(0, broken.length - 40), 1, "mallory@village-one", mallory.id.person);
    expect(r2.stored).toBe(false);
    expect(r2.refused).toBeTruthy();
    expect(lines.some((l) => l.startsWith("warn refused") && l.includes("atlantis-primary"))).toBe(true);
    expect(toHex(forged.id)).not.toBe(toHex(sealed.id));
  }, 30_000);
});
