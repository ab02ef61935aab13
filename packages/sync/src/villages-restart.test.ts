// Mail between villages the way the three-village testbed sends it (issue 18): at each stop the bus
// meets the village's relay point AND its laptops (they share the school's network), and village
// one's relay point has a power cut midway (restarted on the same data directory). Every letter must
// still arrive exactly once, into village one too, and every sender's outbox must say delivered.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { toHex } from "@pigeon/model";
import { contactCard, decodeBetweenVillages, generateIdentity, issueRelayCertificate, relayKeyPair, type SigningKeyPair } from "@pigeon/model";
import { fileStorage, memoryStorage, RelayPoint, type NodeStorage } from "./index.js";
import { booter, homes, memoryLog, villages, visit } from "./villages.test-helper.js";

const H = 3_600_000;
let clock = Date.UTC(2026, 10, 2, 6);
const now = () => clock;
const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

const bootOn = booter(now, cleanup);
const { schools, federation } = villages();

describe("mail between villages, with laptops at the bus stops and a relay point restarted", () => {
  it("arrives exactly once everywhere and the delivered receipts come back", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pigeon-villages-restart-"));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const ids = schools.map((s) => generateIdentity("school", s.home));
    const keys = schools.map(() => relayKeyPair());
    const logs = homes.map(() => [] as string[]);
    const startRelay = async (i: number, storage: NodeStorage, key: SigningKeyPair) => {
      const node = await bootOn(ids[i]!, storage, logs[i]);
      const relay = new RelayPoint(node.node, {
        home: homes[i]!, signing: key, certificate: issueRelayCertificate(schools[i]!, key.publicKey), federation,
        announceLifetimeSeconds: 48 * 3600, now, contactsFile: i === 0 ? join(dir, "relay-contacts.json") : undefined, log: memoryLog(logs[i]!),
      });
      cleanup.push(() => relay.close());
      return { node, relay };
    };
    const relays = await Promise.all(schools.map((_, i) => startRelay(i, i === 0 ? fileStorage(join(dir, "r1")) : memoryStorage(), keys[i]!)));
    // each village: a pen pal and a classmate; the pen pals were given each other's cards
    const kids = await Promise.all(["ama", "ben", "cyn"].map((n, i) => bootOn(generateIdentity(n, homes[i]))));
    const classmates = await Promise.all(["abi", "bob", "cal"].map((n, i) => bootOn(generateIdentity(n, homes[i]))));
    const bus = await bootOn(generateIdentity("bus", "mule"));
    for (const k of kids) for (const o of kids) if (k !== o) await k.m.addContact(contactCard(o.id));

    // the bus parks on the school's network: it meets the relay point and the laptops there
    const stop = async (v: number) => {
      await visit(bus, relays[v]!.node);
      await visit(bus, kids[v]!);
      await visit(bus, classmates[v]!);
      clock += 6 * H;
    };
    const school = async () => {
      for (let v = 0; v < 3; v++) {
        await visit(kids[v]!, relays[v]!.node);
        await visit(classmates[v]!, relays[v]!.node);
        await visit(kids[v]!, classmates[v]!);
      }
      clock += H;
    };
    for (const v of [0, 1, 2, 1]) await stop(v);
    await school();
    for (const k of kids) for (const o of kids) if (k !== o) await k.m.send(`${o.id.name}@${o.id.home}`, `hello ${o.id.name}, from ${k.id.name}`);
    await school();

    // village one's relay point has a power cut: the same data directory, started again
    await relays[0]!.node.node.shutdown();
    relays[0]!.relay.close();
    relays[0] = await startRelay(0, fileStorage(join(dir, "r1")), keys[0]!);
    expect(logs[0]!.some((l) => /remembered the rhythm of [1-9]/.test(l))).toBe(true);

    const report = async () => {
      const lines: string[] = [];
      for (const k of kids) {
        const got = (await k.m.inbox()).map((m) => m.body);
        for (const o of kids) if (o !== k) lines.push(`${o.id.name}->${k.id.name}: ${got.filter((b) => b === `hello ${k.id.name}, from ${o.id.name}`).length}`);
        for (const m of await k.m.outbox()) lines.push(`${k.id.name} to ${m.to.join()}: ${m.state}`);
      }
      return lines.sort();
    };
    const want = [
      ...kids.flatMap((k) => kids.filter((o) => o !== k).map((o) => `${o.id.name}->${k.id.name}: 1`)),
      ...kids.flatMap((k) => kids.filter((o) => o !== k).map((o) => `${k.id.name} to ${o.id.name}@${o.id.home}: delivered`)),
    ].sort();
    for (let round = 0; round < 4 && JSON.stringify(await report()) !== JSON.stringify(want); round++) {
      for (const v of [0, 1, 2, 1]) await stop(v);
      await school();
    }
    expect(await report()).toEqual(want);
    // nothing refused but older announcements a laptop or the bus brought late
    for (const lines of logs) expect(lines.filter((l) => l.startsWith("warn") && !/replayed or stale announcement from /.test(l))).toEqual([]);
  }, 240_000);

  it("a laptop started anew still knows which homes are other villages, and wraps what it writes there", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pigeon-villages-laptop-"));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const relays = await Promise.all([0, 1].map(async (i) => {
      const node = await bootOn(generateIdentity("school", homes[i]!));
      const key = relayKeyPair();
      const relay = new RelayPoint(node.node, { home: homes[i]!, signing: key, certificate: issueRelayCertificate(schools[i]!, key.publicKey), federation, now });
      cleanup.push(() => relay.close());
      return node;
    }));
    const bus = await bootOn(generateIdentity("bus", "mule"));
    const amaId = generateIdentity("ama", homes[0]);
    const ben = generateIdentity("ben", homes[1]);
    let ama = await bootOn(amaId, fileStorage(join(dir, "ama")));
    await ama.m.addContact(contactCard(ben));
    await visit(bus, relays[1]!);
    clock += 6 * H;
    await visit(bus, relays[0]!);
    clock += H;
    await visit(ama, relays[0]!);
    // ama's laptop restarts (a flat battery) and she writes to ben before meeting anyone
    await ama.node.shutdown();
    ama = await bootOn(amaId, fileStorage(join(dir, "ama")));
    await ama.m.send("ben@village-two", "hello ben, after a flat battery");
    const sealed = ama.m.envelopes.ownSealedFor(amaId.person, ben.person).map((e) => toHex(e.id));
    const wrapped = ama.m.envelopes.idsAfter(new Uint8Array(32), 100_000).map((id) => ama.m.envelopes.bytesOf(id)!).filter((b) => b[1] === 7)
      .map((b) => decodeBetweenVillages(b)).filter((b) => b.dest === "village-two").map((b) => toHex(b.sealed.id));
    expect(sealed.length).toBeGreaterThanOrEqual(1); // the message, its conversation key inside
    for (const id of sealed) expect(wrapped).toContain(id);
  }, 60_000);
});
