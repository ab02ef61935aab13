// What the tests of mail between villages share: nodes in memory on a clock of the test's own, a log
// an administrator would read, and meetings that last until nothing more moves.
import { generateSchool, type Identity } from "@pigeon/model";
import { memoryStorage, PigeonNode, type Log, type NodeStorage } from "./index.js";
import { MemoryNetwork, meet, type Laptop } from "./devices.test-helper.js";
import { until } from "./until.test-helper.js";

/** A log kept in memory, so the test reads what an administrator would. */
export function memoryLog(lines: string[]): Log {
  const at = (level: string) => (msg: string) => void lines.push(`${level} ${msg}`);
  return { info: at("info"), warn: at("warn"), error: at("error"), debug: () => {} };
}

/** Starts nodes on the test's clock; each is shut down by the test's cleanup. */
export const booter = (now: () => number, cleanup: (() => unknown)[]) =>
  async (id: Identity, storage: NodeStorage = memoryStorage(), lines: string[] = []): Promise<Laptop> => {
    const net = new MemoryNetwork();
    const node = await PigeonNode.open({ identity: id, storage, network: net, now, log: memoryLog(lines) });
    cleanup.push(() => node.shutdown().catch(() => {}));
    return { id, net, node, m: node.mailbox };
  };

export const homes = ["village-one", "village-two", "village-three"];

/** Three schools, one per village, and the federation of their keys. */
export function villages() {
  const schools = homes.map((h) => generateSchool(h));
  return { schools, federation: new Map(schools.map((s) => [s.home, s.signing.publicKey])) };
}

/** Everything a node stores: the count that stops changing once a meeting has moved all it will. */
export const held = (l: Laptop) => l.m.envelopes.idsAfter(new Uint8Array(32), 100_000).length;

/** Two nodes meet until nothing more moves between them, then part. */
export async function visit(a: Laptop, b: Laptop): Promise<void> {
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
