// PigeonNode as an embedder uses it: built from injected parts (here all in memory), opened, used,
// shut down; and the promises it makes when a part fails.
import { EventEmitter } from "node:events";
import { afterEach, describe, expect, it } from "vitest";
import { MemoryNetwork as BaseMemoryNetwork } from "./devices.test-helper.js";
import { fillableStorage } from "./disk-full.test-helper.js";
import { contactCard, generateIdentity, type Identity, type PeerLink } from "@pigeon/model";
import { memoryLinkPair, memoryStorage, PigeonNode, type FoundPeer, type NodeStorage, type PeerFinder } from "./index.js";
import { until as waitUntil } from "./until.test-helper.js";

const until = <T>(fn: () => Promise<T | undefined> | T | undefined, what: string, ms = 5000) => waitUntil(fn, what, ms);

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

/** In-process links (the tests' helper) whose close can be made to fail. */
class MemoryNetwork extends BaseMemoryNetwork {
  closeFails = false;
  override async close(): Promise<void> {
    await super.close();
    if (this.closeFails) throw new Error("the network would not close");
  }
}

async function open(name: string, storage: NodeStorage = memoryStorage()) {
  const id = generateIdentity(name);
  const net = new MemoryNetwork();
  const node = await PigeonNode.open({ identity: id, storage, network: net });
  cleanup.push(() => node.shutdown().catch(() => {}));
  return { id, net, node };
}

function link(a: Awaited<ReturnType<typeof open>>, b: Awaited<ReturnType<typeof open>>): void {
  const [la, lb] = memoryLinkPair(contactCard(a.id), contactCard(b.id));
  a.net.add(la);
  b.net.add(lb);
}

describe("PigeonNode", () => {
  it("delivers between two nodes built from memory parts, receipt included", async () => {
    const a = await open("amara");
    const b = await open("baraka");
    const arrived = new Promise((r) => b.node.once("message", r));
    link(a, b);
    await until(() => a.node.mailbox.contacts().length === 1 && b.node.mailbox.contacts().length === 1, "met");
    await b.node.mailbox.addBuddy("amara@local"); // baraka chose amara: her message gets its receipt
    const sent = await a.node.send("baraka@local", "hello");
    await arrived;
    await until(async () => (await a.node.mailbox.message(sent.id))?.state === "delivered", "delivered");
  });

  it("closes the store even when an earlier shutdown step fails, and says which", async () => {
    const a = await open("amara");
    a.net.closeFails = true;
    await expect(a.node.shutdown()).rejects.toThrow(/would not close/);
    expect(a.node.mailbox.envelopes.db.open).toBe(false);
  });

  it("a send whose document cannot be saved (disk full) is still sent: no error, nothing lost", async () => {
    const { storage: documents, full } = fillableStorage();
    const storage = { ...memoryStorage(), documents };
    const a = await open("amara", storage);
    const b = await open("baraka");
    link(a, b);
    await until(() => a.node.mailbox.contacts().length === 1 && b.node.mailbox.contacts().length === 1, "met");
    await b.node.mailbox.addBuddy("amara@local"); // so what amara writes is in baraka's inbox, not under requests
    await a.node.send("baraka@local", "before");
    full(true);
    const sent = await a.node.send("baraka@local", "while the documents cannot be saved"); // resolves: it is stored and sealed
    expect(sent.body).toBe("while the documents cannot be saved");
    await until(async () => (await b.node.mailbox.inbox()).length === 2, "both arrive");
    expect((await a.node.mailbox.outbox()).map((m) => m.body)).toEqual(["before", "while the documents cannot be saved"]);
    expect(a.node.mailbox.status().storageProblem).toMatch(/disk is full/);
    // baraka's acknowledgement is stored here (a write that fits): the disk is no emptier for it, and
    // the status keeps saying so until what waits for room is done
    await until(async () => (await a.node.mailbox.message(sent.id))?.state === "delivered", "the acknowledgement");
    expect(a.node.mailbox.status().storageProblem).toMatch(/disk is full/);
    full(false);
    await a.node.mailbox.retryAfterStorageTrouble(); // what the node's timer does every 10 s
    expect(a.node.mailbox.status().storageProblem).toBe(null);
  });
});


/** A finder that reports whatever the test says it heard. */
class FakeFinder extends EventEmitter<{ peer: [FoundPeer] }> implements PeerFinder {
  start(): void {}
  stop(): void {}
  hear(p: FoundPeer): void {
    this.emit("peer", p);
  }
}

/** A network whose dials the test answers by hand, one promise per dial. */
class DialNetwork extends MemoryNetwork {
  readonly dials: { host: string; port: number; resolve: (l: PeerLink) => void; reject: (e: Error) => void }[] = [];
  dial(host: string, port: number): Promise<PeerLink> {
    return new Promise((resolve, reject) => this.dials.push({ host, port, resolve, reject }));
  }
}

const idOf = (byte: number) => new Uint8Array(16).fill(byte);
const settle = () => new Promise((r) => setTimeout(r, 0));

describe("PigeonNode's dial rule for found peers (opaque identifiers)", () => {
  async function setup(o: { meetStrangers?: boolean } = {}) {
    const id = generateIdentity("amara");
    const net = new DialNetwork();
    const finder = new FakeFinder();
    let clock = 1_000_000;
    const node = await PigeonNode.open({ identity: id, storage: memoryStorage(), network: net, finders: [finder], now: () => clock, ...o });
    cleanup.push(() => node.shutdown().catch(() => {}));
    const someone = () => memoryLinkPair(contactCard(id), contactCard(generateIdentity("baraka")))[0];
    return { net, finder, someone, advance: (ms: number) => (clock += ms) };
  }

  it("only the side whose identifier sorts lower dials; equal identifiers dial too", async () => {
    const { net, finder } = await setup();
    finder.hear({ id: idOf(1), ourId: idOf(2), host: "198.18.0.2", port: 7480 });
    expect(net.dials).toEqual([]); // ours is higher: the other side dials
    finder.hear({ id: idOf(3), ourId: idOf(2), host: "198.18.0.3", port: 7480 });
    finder.hear({ id: idOf(2), ourId: idOf(2), host: "198.18.0.4", port: 7480 });
    expect(net.dials.map((d) => d.host)).toEqual(["198.18.0.3", "198.18.0.4"]);
  });

  it("one dial at a time per identifier, and none while the link that dial gave is open", async () => {
    const { net, finder, someone } = await setup();
    const p = { id: idOf(9), ourId: idOf(1), host: "198.18.0.9", port: 7480 };
    finder.hear(p);
    finder.hear(p); // heard again while the dial is under way
    expect(net.dials.length).toBe(1);
    const link = someone();
    net.dials[0]!.resolve(link);
    await settle();
    for (let i = 0; i < 5; i++) finder.hear(p); // announced every few seconds while linked
    // a new identifier at the same address (it restarted, or its hour was up) while still linked
    finder.hear({ ...p, id: idOf(10) });
    expect(net.dials.length).toBe(1);
    link.close("walked away");
    finder.hear(p);
    expect(net.dials.length).toBe(2);
  });

  it("pauses longer after each failure, per identifier; a new identifier is dialled at once", async () => {
    const { net, finder, advance } = await setup();
    const p = { id: idOf(9), ourId: idOf(1), host: "198.18.0.9", port: 7480 };
    const fail = async () => {
      net.dials.at(-1)!.reject(new Error("connection refused"));
      await settle();
    };
    finder.hear(p);
    await fail();
    finder.hear(p);
    expect(net.dials.length).toBe(1); // paused 5 s
    advance(5_001);
    finder.hear(p);
    expect(net.dials.length).toBe(2);
    await fail();
    advance(5_001);
    finder.hear(p);
    expect(net.dials.length).toBe(2); // now 10 s
    advance(5_000);
    finder.hear(p);
    expect(net.dials.length).toBe(3);
    finder.hear({ ...p, id: idOf(11) });
    expect(net.dials.length).toBe(4);
  });

  it("a laptop that shows itself to schoolmates only does not dial an announcement it does not recognise", async () => {
    const hidden = await setup({ meetStrangers: false });
    hidden.finder.hear({ id: idOf(9), ourId: idOf(1), shared: false, host: "198.18.0.9", port: 7480 });
    expect(hidden.net.dials).toEqual([]);
    hidden.finder.hear({ id: idOf(8), ourId: idOf(1), shared: true, host: "198.18.0.8", port: 7480 }); // a schoolmate
    hidden.finder.hear({ id: idOf(7), ourId: idOf(1), host: "198.18.0.7", port: 7480 }); // a finder that cannot tell
    expect(hidden.net.dials.map((d) => d.host)).toEqual(["198.18.0.8", "198.18.0.7"]);
    // a laptop in no school (the default here) dials whoever it finds
    const open = await setup();
    open.finder.hear({ id: idOf(9), ourId: idOf(1), shared: false, host: "198.18.0.9", port: 7480 });
    expect(open.net.dials.map((d) => d.host)).toEqual(["198.18.0.9"]);
  });
});
