// Mail between three villages on running nodes (in memory), the way children send it: each village
// has a relay point, each child's laptop meets only its own relay point, and a bus (an ordinary node)
// goes 1 -> 2 -> 3 -> 2 -> 1. Every child writes to the other two; every message arrives exactly
// once, through the kind-7 envelope naming only the destination relay point, and the delivered
// receipt comes back the same way. Hostile envelopes are refused with a clear log line.
import { afterEach, describe, expect, it } from "vitest";
import { contactCard, decodeBetweenVillages, decodeSealed, forVillage, generateIdentity, issueRelayCertificate, relayKeyPair, toHex } from "@pigeon/model";
import { RelayPoint } from "./index.js";
import { booter, homes, villages, visit } from "./villages.test-helper.js";

const H = 3_600_000;
let clock = Date.UTC(2026, 10, 2, 6);
const now = () => clock;
const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

const bootOn = booter(now, cleanup);
const { schools, federation } = villages();

describe("mail between villages", () => {
  it("travels by relay points and a bus, arrives exactly once, and its receipts come back", async () => {
    const relayLogs = homes.map(() => [] as string[]);
    const relays = await Promise.all(
      schools.map(async (s, i) => {
        const node = await bootOn(generateIdentity("school", s.home), undefined, relayLogs[i]);
        const key = relayKeyPair();
        const relay = new RelayPoint(node.node, { home: s.home, signing: key, certificate: issueRelayCertificate(s, key.publicKey), federation, announceLifetimeSeconds: 48 * 3600, now });
        cleanup.push(() => relay.close());
        return { node, relay };
      }),
    );
    const kids = await Promise.all(["ama", "ben", "cyn"].map((n, i) => bootOn(generateIdentity(n, homes[i]))));
    const bus = await bootOn(generateIdentity("bus", "mule"));
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
    // written before ama's laptop knew of any other village: it goes there once it does
    await kids[0]!.m.send("ben@village-two", "early hello ben, from ama");
    // a first round of the bus: the relay points learn their routes, and the children their village's
    for (const v of [0, 1, 2, 1, 0]) await stop(v);
    await school();
    expect(relays[0]!.relay.routes().map((r) => `${r.dest} with ${r.carrier.label}`).sort()).toEqual(["village-three with the bus", "village-two with the bus"]);
    // once ama's laptop knows village-two (its relay point's announcement), what she wrote there before goes as kind 7 too
    const wrapped = new Set(
      kids[0]!.m.envelopes.idsAfter(new Uint8Array(32), 100_000).map((id) => kids[0]!.m.envelopes.bytesOf(id)!).filter((b) => b[1] === 7).map((b) => toHex(decodeBetweenVillages(b).sealed.id)),
    );
    const early = kids[0]!.m.envelopes.ownSealedFor(kids[0]!.id.person, kids[1]!.id.person);
    expect(early.length).toBe(1); // the message, its conversation key inside
    for (const e of early) expect(wrapped.has(toHex(e.id))).toBe(true);

    for (const k of kids) for (const o of kids) if (k !== o) await k.m.send(`${o.id.name}@${o.id.home}`, `hello ${o.id.name}, from ${k.id.name}`);
    // nothing for another village goes to a classmate or the bus straight from the child's laptop:
    // it waits for the relay point
    await school();
    // the outbox says where it is going, by which relay point and carrier, and when it is expected there
    const ama = await kids[0]!.m.outbox();
    expect(ama.map((m) => m.state)).toEqual(["sent", "sent", "sent"]);
    expect(ama.map((m) => m.sentTo)).toEqual(["school@village-one", "school@village-one", "school@village-one"]);
    for (const m of ama) {
      expect(m.village!.dest).toBe(m.to[0]!.split("@")[1]);
      expect(m.village!.via).toMatch(/^village-(two|three)$/);
      // and what takes it there: the relay point's own route names the bus, and its announcement says so
      expect(m.village!.carrier).toBe("the bus");
      expect(m.village!.expectedAt).toBeGreaterThan(m.handedAt!);
    }
    for (let round = 0; round < 2; round++) {
      for (const v of [0, 1, 2, 1, 0]) await stop(v);
      await school();
    }
    for (const k of kids) {
      const got = (await k.m.inbox()).map((m) => m.body).sort();
      const others = kids.filter((o) => o !== k).map((o) => `hello ${k.id.name}, from ${o.id.name}`);
      if (k === kids[1]) others.push("early hello ben, from ama");
      others.sort();
      expect(got).toEqual(others); // each exactly once
    }
    // relay points hand mail for another village only to the carrier their table chose: no child's
    // laptop holds any but its own
    for (const k of kids) {
      const wrappers = k.m.envelopes.idsAfter(new Uint8Array(32), 100_000).filter((id) => k.m.envelopes.bytesOf(id)?.[1] === 7);
      expect(wrappers.length).toBeGreaterThanOrEqual(1);
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
      const want = kids.filter((o) => o !== k).map((o) => `${o.id.name}@${o.id.home} delivered`);
      if (k === kids[0]) want.push("ben@village-two delivered");
      expect(out.map((m) => `${m.to.join()} ${m.state}`).sort()).toEqual(want.sort());
    }
  }, 120_000);

  it("refuses mail naming a village outside the federation, and forged envelopes, with a clear log", async () => {
    const lines: string[] = [];
    const relayNode = await bootOn(generateIdentity("school", "village-one"), undefined, lines);
    const key = relayKeyPair();
    const relay = new RelayPoint(relayNode.node, { home: "village-one", signing: key, certificate: issueRelayCertificate(schools[0]!, key.publicKey), federation, now });
    cleanup.push(() => relay.close());
    const mallory = await bootOn(generateIdentity("mallory", "village-one"));
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
