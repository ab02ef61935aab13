// Two Pigeon nodes embedded in one program: each opens its own store, they meet over a WebSocket
// link on loopback, and a message goes from one to the other with its delivered receipt back.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateIdentity } from "@pigeon/model";
import { WsNetwork } from "@pigeon/peers";
import { fileStorage, PigeonNode } from "@pigeon/sync";

async function laptop(name) {
  const identity = generateIdentity(name); // a real app keeps this in a file (see pigeon start)
  const network = new WsNetwork({ identity, host: "127.0.0.1", port: 0 });
  const { port } = await network.listen();
  const storage = fileStorage(mkdtempSync(join(tmpdir(), `pigeon-${name}-`)));
  return { node: await PigeonNode.open({ identity, storage, network }), port };
}

const amara = await laptop("amara");
const baraka = await laptop("baraka");
const arrived = new Promise((resolve) => baraka.node.on("message", resolve));
const met = Promise.all([amara, baraka].map(({ node }) => new Promise((resolve) => node.once("peer-up", resolve))));
await amara.node.connect("127.0.0.1", baraka.port); // on a real network, mDNS finds them
await met;
await baraka.node.mailbox.addBuddy("amara@local"); // meeting makes no buddy: baraka chooses amara
const sent = await amara.node.send("baraka@local", "hello from amara"); // writing to him makes him hers
const got = await arrived;
console.log(`${got.to[0]} got "${got.body}" from ${got.from}`);
while ((await amara.node.mailbox.message(sent.id)).state !== "delivered") await new Promise((r) => setTimeout(r, 50));
console.log(`amara's outbox says: ${(await amara.node.mailbox.message(sent.id)).state}`);
await amara.node.shutdown();
await baraka.node.shutdown();
