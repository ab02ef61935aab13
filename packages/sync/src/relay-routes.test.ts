// A relay point's table across a power cut, and whom it credits with a route (issue 18): two
// villages on running nodes in memory, a bus (a mule) between them, village one's relay point on a
// data directory of its own.
// - Restarted on the same directory, it still knows its routes (relay-routes.json) and hands mail
//   for the other village to the bus at once, before the bus has been to the other village again;
//   what has expired meanwhile does not come back, and a damaged file is set aside with a log line.
// - A laptop that took the other village's announcement from the bus before its relay point did,
//   and handed it over, is not named as the carrier of that route: the bus is.
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { contactCard, generateIdentity, issueRelayCertificate, relayKeyPair, type SigningKeyPair } from "@pigeon/model";
import { fileStorage, memoryStorage, RelayPoint, type NodeStorage } from "./index.js";
import { booter, homes, memoryLog, villages, visit } from "./villages.test-helper.js";
import type { Laptop } from "./devices.test-helper.js";

const H = 3_600_000;
let clock = Date.UTC(2026, 10, 2, 6);
const now = () => clock;
const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

const bootOn = booter(now, cleanup);
const { schools, federation } = villages();
/** The kind-7 envelopes (mail for another village) a node holds. */
const wrapped = (l: Laptop) => l.m.envelopes.idsAfter(new Uint8Array(32), 100_000).filter((id) => l.m.envelopes.bytesOf(id)?.[1] === 7).length;

async function setup(dir: string) {
  const ids = schools.map((s) => generateIdentity("school", s.home));
  const keys = schools.map(() => relayKeyPair());
  const logs = homes.map(() => [] as string[]);
  const start = async (i: number, storage: NodeStorage, key: SigningKeyPair) => {
    const node = await bootOn(ids[i]!, storage, logs[i]);
    const relay = new RelayPoint(node.node, {
      home: homes[i]!, signing: key, certificate: issueRelayCertificate(schools[i]!, key.publicKey), federation, announceLifetimeSeconds: 12 * 3600, now,
      ...(i === 0 ? { contactsFile: join(dir, "relay-contacts.json"), routesFile: join(dir, "relay-routes.json") } : {}), log: memoryLog(logs[i]!),
    });
    cleanup.push(() => relay.close());
    return { node, relay };
  };
  const one = await start(0, fileStorage(join(dir, "r1")), keys[0]!);
  const two = await start(1, memoryStorage(), keys[1]!);
  const bus = await bootOn(generateIdentity("tuesday-bus", "mule"));
  const restartOne = async () => {
    await one.node.node.shutdown();
    one.relay.close();
    return start(0, fileStorage(join(dir, "r1")), keys[0]!);
  };
  return { one, two, bus, logs, restartOne };
}

describe("a relay point's routing table", () => {
  it("survives a restart: routes come back at once and mail goes downhill without waiting for a fresh announcement", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pigeon-relay-routes-"));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const { one: first, two, bus, logs, restartOne } = await setup(dir);
    let one = first;
    const ama = await bootOn(generateIdentity("ama", homes[0]));
    const ben = generateIdentity("ben", homes[1]);
    await ama.m.addContact(contactCard(ben));
    // the bus's rounds: village two, then one, twice (one learns its rhythm and the way to two)
    for (let round = 0; round < 2; round++) {
      await visit(bus, two.node);
      clock += 3 * H;
      await visit(bus, one.node);
      clock += H;
    }
    expect(one.relay.routes().map((r) => `${r.dest} via ${r.viaRelay} with ${r.carrier.label}`)).toEqual(["village-two via village-two with the tuesday bus"]);
    const before = one.relay.routes();
    // ama writes to ben and hands it to her relay point; then the power goes
    await visit(ama, one.node);
    await ama.m.send("ben@village-two", "hello ben");
    await visit(ama, one.node);
    expect(wrapped(one.node)).toBeGreaterThan(0);
    expect(wrapped(bus)).toBe(0);
    one = await restartOne();
    expect(logs[0]!.some((l) => /took back 1 route announcements from before the restart/.test(l))).toBe(true);
    // the same routes at once, with the same carrier and cost
    expect(one.relay.routes()).toEqual(before);
    // the bus comes by again, not having been to village two since: nothing new to learn, and the mail goes with it
    await visit(bus, one.node);
    expect(wrapped(bus)).toBeGreaterThan(0);
    expect(logs[0]!.filter((l) => l.startsWith("warn"))).toEqual([]);

    // a long power cut: what it heard has expired by the time it starts again, and does not come back
    await one.node.node.shutdown();
    one.relay.close();
    clock += 13 * H;
    one = await restartOne();
    expect(one.relay.routes()).toEqual([]);
    expect(logs[0]!.some((l) => l.includes("left out (expired (from village-two"))).toBe(true);

    // a damaged file is set aside, said so, and the relay point starts with an empty table
    await one.node.node.shutdown();
    one.relay.close();
    writeFileSync(join(dir, "relay-routes.json"), '{"version":1,"heard":[{"announce');
    one = await restartOne();
    expect(one.relay.routes()).toEqual([]);
    expect(logs[0]!.some((l) => l.startsWith("warn") && l.includes("relay-routes.json is not JSON") && l.includes("set aside as"))).toBe(true);
    expect(readdirSync(dir).some((f) => f.startsWith("relay-routes.json.damaged-"))).toBe(true);
    expect(existsSync(join(dir, "relay-routes.json"))).toBe(true); // written again when it announced
  }, 60_000);

  it("credits the bus, not the laptop of the village that took the announcement from it first and handed it over", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pigeon-relay-credit-"));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const { one, two, bus, logs } = await setup(dir);
    const abi = await bootOn(generateIdentity("abi", homes[0]));
    const label = () => one.relay.routes().map((r) => `${r.dest} with ${r.carrier.label}`);
    // the bus comes from village two and parks at the school: abi's laptop meets it before the relay point does
    await visit(bus, two.node);
    clock += 3 * H;
    await visit(bus, abi);
    await visit(abi, one.node);
    await visit(bus, one.node);
    expect(label()).toEqual(["village-two with the tuesday bus"]);
    // next time the bus has come by before: abi hands a fresher announcement over after the bus has left
    clock += H;
    await visit(bus, two.node);
    clock += 3 * H;
    await visit(bus, abi);
    const seq = one.relay.routes()[0]!.seq;
    await visit(abi, one.node);
    expect(one.relay.routes()[0]!.seq).toBeGreaterThan(seq);
    expect(label()).toEqual(["village-two with the tuesday bus"]);
    expect(logs[0]!.some((l) => /route announcement \d+ of village-two through the tuesday bus \(handed over by abi@village-one\)/.test(l))).toBe(true);
    // and its announcement tells the village's laptops so: abi's outbox would name the bus
    expect(JSON.stringify(one.relay.table.announceEntries(clock, H))).toContain('"carrier":"the tuesday bus"');
  }, 60_000);
});
