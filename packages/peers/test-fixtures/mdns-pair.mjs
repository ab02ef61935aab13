// Run by src/mdns.test.ts inside a private network namespace (`ip netns exec`), never on the host's
// real interfaces. Uses the BUILT package. Prints one JSON line and exits.
//
//   node mdns-pair.mjs pair       two discoveries + two WsNetworks on 127.0.0.1 find each other and link
//   node mdns-pair.mjs no-route   a discovery with no multicast route reports an error, does not crash
import { generateIdentity, toHex } from "@pigeon/model";
import { MdnsDiscovery, WsNetwork } from "../dist/index.js";

const mode = process.argv[2] ?? "pair";
const deadline = setTimeout(() => finish(1, { error: "fixture timed out after 15 s" }), 15_000);
const closers = [];
let finished = false;

function finish(code, result) {
  if (finished) return;
  finished = true;
  clearTimeout(deadline);
  process.stdout.write(JSON.stringify(result) + "\n");
  Promise.race([Promise.allSettled(closers.map((c) => c())), new Promise((r) => setTimeout(r, 2_000))]).then(() =>
    process.exit(code),
  );
}

process.on("uncaughtException", (e) => finish(1, { error: `uncaught: ${e.stack ?? e}` }));

if (mode === "no-route") {
  const d = new MdnsDiscovery({ port: 7480, queryIntervalMs: 200 });
  closers.push(() => d.stop());
  d.on("error", (e) => finish(0, { error: e.message }));
  d.start();
} else {
  const ids = { ana: generateIdentity("ana", "ns-test"), ben: generateIdentity("ben", "ns-test") };
  const nodes = {};
  const result = { found: {}, links: {}, received: null, dialled: [] };
  for (const name of ["ana", "ben"]) {
    const net = new WsNetwork({ identity: ids[name], host: "127.0.0.1", port: 0 });
    closers.push(() => net.close());
    const { port } = await net.listen();
    const disc = new MdnsDiscovery({ port, interface: "127.0.0.1", queryIntervalMs: 500 });
    closers.push(() => disc.stop());
    disc.on("error", (e) => finish(1, { error: `${name}: ${e.message}` }));
    nodes[name] = { net, disc, port, dialing: false };
  }
  const other = { ana: "ben", ben: "ana" };
  const heardByBen = new Set();
  for (const name of ["ana", "ben"]) {
    const me = nodes[name];
    const them = other[name];
    me.disc.on("peer", (p) => {
      const id = toHex(p.id);
      if (name === "ben") heardByBen.add(id);
      if (id !== toHex(nodes[them].disc.currentId) && !(name === "ben" && result.rotated)) {
        result.strangers = (result.strangers ?? 0) + 1;
        return;
      }
      result.found[name] ??= { host: p.host, port: p.port, expectedPort: nodes[them].port, id, ourId: toHex(p.ourId) };
      // Like the node's dial rule: the lower identifier dials, unless already linked.
      if (toHex(p.ourId) > id || me.dialing || me.net.links().length > 0) return;
      me.dialing = true;
      result.dialled.push(name);
      me.net
        .dial(p.host, p.port)
        .catch(() => {})
        .finally(() => (me.dialing = false));
    });
    me.net.on("link", (l) => l.onFrame((f) => (result.received = new TextDecoder().decode(f))));
  }
  nodes.ana.disc.start();
  nodes.ben.disc.start();

  const poll = setInterval(() => {
    const la = nodes.ana.net.links();
    const lb = nodes.ben.net.links();
    if (!result.found.ana || !result.found.ben || la.length !== 1 || lb.length !== 1) return;
    if (la[0].connectionId !== lb[0].connectionId) return;
    clearInterval(poll);
    result.ids = { ana: toHex(nodes.ana.disc.currentId), ben: toHex(nodes.ben.disc.currentId) };
    result.links = {
      ana: { peer: `${la[0].peer.name}@${la[0].peer.home}`, key: toHex(la[0].peer.signPublicKey), id: la[0].connectionId },
      ben: { peer: `${lb[0].peer.name}@${lb[0].peer.home}`, key: toHex(lb[0].peer.signPublicKey), id: lb[0].connectionId },
    };
    result.keys = { ana: toHex(ids.ana.signing.publicKey), ben: toHex(ids.ben.signing.publicKey) };
    la[0].send(new TextEncoder().encode("hello ben, found you by mDNS"));
    const wait = setInterval(() => {
      if (result.received === null) return;
      clearInterval(wait);
      // ana's identifier changes: ben hears the new one
      nodes.ana.disc.rotate();
      const newId = toHex(nodes.ana.disc.currentId);
      result.rotated = { newId, heardByBen: false };
      const rotated = setInterval(() => {
        if (!heardByBen.has(newId)) return;
        clearInterval(rotated);
        result.rotated.heardByBen = true;
        finish(0, result);
      }, 20);
    }, 20);
  }, 50);
}
