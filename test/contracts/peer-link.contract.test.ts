// Runs the PeerLink contract (packages/model/src/link.ts) against both implementations.
import { once } from "node:events";
import { contactCard, generateIdentity } from "@pigeon/model";
import { DEFAULT_MAX_FRAME_BYTES, WsNetwork, type WsLink } from "@pigeon/peers";
import { memoryLinkPair } from "@pigeon/sync";
import { runPeerLinkContract, type LinkPair } from "./peer-link-contract.js";

runPeerLinkContract(
  "memory link (memoryLinkPair)",
  async (): Promise<LinkPair> => {
    const cards = { a: contactCard(generateIdentity("amara")), b: contactCard(generateIdentity("baraka")) };
    const [a, b] = memoryLinkPair(cards.a, cards.b);
    return {
      a,
      b,
      cards,
      async teardown() {
        a.close("teardown");
      },
    };
  },
  { bufferedBytes: true, pauseResume: true, frameLimit: false },
);

runPeerLinkContract(
  "WebSocket link (WsNetwork, 127.0.0.1)",
  async (): Promise<LinkPair> => {
    const ida = generateIdentity("amara");
    const idb = generateIdentity("baraka");
    // b listens, a dials: a holds the dialled end, b the accepted one
    const netA = new WsNetwork({ identity: ida, host: "127.0.0.1", port: 0 });
    const netB = new WsNetwork({ identity: idb, host: "127.0.0.1", port: 0 });
    const teardown = async () => {
      await Promise.all([netA.close(), netB.close()]);
    };
    try {
      const { port } = await netB.listen();
      const accepted = once(netB, "link").then(([l]) => l as WsLink);
      const a = await netA.dial("127.0.0.1", port);
      const b = await accepted;
      return {
        a,
        b,
        cards: { a: contactCard(ida), b: contactCard(idb) },
        maxFrameBytes: DEFAULT_MAX_FRAME_BYTES,
        teardown,
      };
    } catch (e) {
      await teardown();
      throw e;
    }
  },
  { bufferedBytes: true, pauseResume: true, frameLimit: true },
);
