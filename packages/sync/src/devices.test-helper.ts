// For this package's tests only (not built): laptops as in-process nodes on memory links, meeting and
// walking apart, and a new device paired with its person's first one as a child does with the code.
import { EventEmitter } from "node:events";
import { contactCard, generateIdentity, newDeviceIdentity, type Identity, type PeerLink } from "@pigeon/model";
import { memoryLinkPair, memoryStorage, pairDevice, PigeonNode, type LinkSource, type Mailbox, type NodeStorage } from "./index.js";
import { until } from "./until.test-helper.js";

/** In-process links, as a simulator wires them. */
export class MemoryNetwork extends EventEmitter<{ link: [PeerLink] }> implements LinkSource {
  private readonly held: PeerLink[] = [];
  links(): PeerLink[] {
    return this.held.filter((l) => !l.closed);
  }
  add(link: PeerLink): void {
    this.held.push(link);
    this.emit("link", link);
  }
  async close(): Promise<void> {
    for (const l of this.held) l.close("network closed");
  }
}

export interface Laptop {
  id: Identity;
  net: MemoryNetwork;
  node: PigeonNode;
  m: Mailbox;
}

/** Opens a node on memory links; `cleanup` gets its shutdown. */
export async function boot(id: Identity, cleanup: (() => unknown)[], storage: NodeStorage = memoryStorage()): Promise<Laptop> {
  const net = new MemoryNetwork();
  const node = await PigeonNode.open({ identity: id, storage, network: net });
  cleanup.push(() => node.shutdown().catch(() => {}));
  return { id, net, node, m: node.mailbox };
}

/** Two laptops near each other (each side's link names the other's person and device); returns "walk apart". */
export function meet(a: Laptop, b: Laptop): () => void {
  const peer = (x: Laptop) => ({ ...contactCard(x.id), device: x.id.signing.publicKey });
  const [la, lb] = memoryLinkPair(peer(a), peer(b));
  a.net.add(la);
  b.net.add(lb);
  return () => la.close("walked apart");
}

/** Pairs a new device with the person's first one, as a child does with the code shown on it. */
export async function pair(first: Laptop, cleanup: (() => unknown)[]): Promise<Laptop> {
  const { code } = first.m.devices.openPairing();
  const fresh = newDeviceIdentity();
  const net = new MemoryNetwork();
  const paired = pairDevice({ device: fresh, code, network: net, timeoutMs: 10_000 });
  const [atFresh, atFirst] = memoryLinkPair({ ...contactCard(fresh), device: fresh.signing.publicKey }, contactCard(first.id));
  first.net.add(atFirst);
  net.add(atFresh);
  const { identity } = await paired;
  atFresh.close("paired");
  return boot(identity, cleanup);
}

/** One laptop per name, each a new person. */
export async function laptops(cleanup: (() => unknown)[], ...names: string[]): Promise<Laptop[]> {
  return Promise.all(names.map((n) => boot(generateIdentity(n), cleanup)));
}

/** The teacher meets each child once so their cards are known (as on a class's first day). */
export async function introduce(teacher: Laptop, kids: Laptop[]): Promise<void> {
  for (const k of kids) {
    const apart = meet(teacher, k);
    await until(() => teacher.m.contacts().some((c) => c.name === k.id.name) && k.m.contacts().some((c) => c.name === teacher.id.name), "met");
    apart();
  }
}
