import { once } from "node:events";
import { createServer, type Server, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import {
  HANDSHAKE_MESSAGE_MAX_BYTES,
  HANDSHAKE_VERSION,
  compareBytes,
  equalBytes,
  generateIdentity,
  randomBytes,
  startHandshake,
  toHex,
  utf8,
  type Identity,
  type PeerLink,
  type Session,
} from "@pigeon/model";
import { WebSocket } from "ws";
import { WsNetwork, type Rejection, type WsLink, type WsNetworkOptions } from "./ws-network.js";

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  const fs = cleanups.splice(0).reverse();
  for (const f of fs) await f();
});

function network(identity: Identity | string, opts: Partial<WsNetworkOptions> = {}): WsNetwork {
  const id = typeof identity === "string" ? generateIdentity(identity) : identity;
  const n = new WsNetwork({ identity: id, host: "127.0.0.1", port: 0, ...opts });
  cleanups.push(() => n.close());
  return n;
}

async function listening(identity: Identity | string, opts: Partial<WsNetworkOptions> = {}) {
  const n = network(identity, opts);
  const { port } = await n.listen();
  return { net: n, port };
}

async function waitFor(cond: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function nextLink(n: WsNetwork): Promise<WsLink> {
  return once(n, "link").then(([l]) => l as WsLink);
}

function nextRejection(n: WsNetwork): Promise<Rejection> {
  return once(n, "rejected").then(([r]) => r as Rejection);
}

function closeOf(link: PeerLink): Promise<string> {
  return new Promise((resolve) => link.onClose(resolve));
}

function collect(link: PeerLink): Uint8Array[] {
  const got: Uint8Array[] = [];
  link.onFrame((f) => got.push(f));
  return got;
}

/** A hand-driven client: opens a raw WebSocket and lets the test decide what to send. */
async function rawClient(
  port: number,
  autoPong = true,
): Promise<{ ws: WebSocket; messages: Uint8Array[]; closed: Promise<[number, string]> }> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { autoPong });
  const messages: Uint8Array[] = [];
  ws.on("error", () => {});
  ws.on("message", (d) => messages.push(new Uint8Array(d as Buffer)));
  const closed = new Promise<[number, string]>((resolve) => ws.on("close", (code, r) => resolve([code, r.toString()])));
  cleanups.push(() => ws.terminate());
  await once(ws, "open");
  return { ws, messages, closed };
}

/** A raw client that completes a real handshake as `identity`, so tests can misbehave afterwards. */
async function rawAuthenticated(
  identity: Identity,
  port: number,
  autoPong = true,
): Promise<{ ws: WebSocket; session: Session; closed: Promise<[number, string]> }> {
  const c = await rawClient(port, autoPong);
  const hs = startHandshake(identity, "dialer");
  c.ws.send(hs.opening!);
  await waitFor(() => c.messages.length >= 1, "the listener's Reply");
  const { reply, session } = hs.receive(c.messages[0]!);
  c.ws.send(reply!);
  return { ws: c.ws, session: session!, closed: c.closed };
}

describe("WsNetwork", () => {
  it("A dials B: both get an authenticated link and frames flow both ways", async () => {
    const alice = generateIdentity("alice", "kisumu-primary");
    const bob = generateIdentity("bob", "kisumu-primary");
    const a = network(alice);
    const { net: b, port } = await listening(bob);
    const bLink = nextLink(b);
    const aLink = nextLink(a);
    const dialled = await a.dial("127.0.0.1", port);
    const [la, lb] = await Promise.all([aLink, bLink]);
    expect(dialled).toBe(la);

    expect(la.peer.name).toBe("bob");
    expect(la.peer.home).toBe("kisumu-primary");
    expect(equalBytes(la.peer.signPublicKey, bob.signing.publicKey)).toBe(true);
    expect(equalBytes(la.peer.sealPublicKey, bob.sealing.publicKey)).toBe(true);
    expect(equalBytes(lb.peer.signPublicKey, alice.signing.publicKey)).toBe(true);
    expect(equalBytes(lb.peer.sealPublicKey, alice.sealing.publicKey)).toBe(true);
    expect(la.description).toBe(`ws 127.0.0.1:${port} (dialled)`);
    expect(lb.description).toMatch(/^ws 127\.0\.0\.1:\d+ \(accepted\)$/);
    expect(la.connectionId).toBe(lb.connectionId);
    expect(a.links()).toEqual([la]);
    expect(b.links()).toEqual([lb]);

    const atA = collect(la);
    const atB = collect(lb);
    for (let i = 0; i < 20; i++) {
      la.send(utf8(`a->b ${i}`));
      lb.send(utf8(`b->a ${i}`));
    }
    la.send(new Uint8Array(0));
    await waitFor(() => atA.length === 20 && atB.length === 21, "frames");
    expect(atB.slice(0, 20).map((f) => new TextDecoder().decode(f))).toEqual(
      Array.from({ length: 20 }, (_, i) => `a->b ${i}`),
    );
    expect(atB[20]!.length).toBe(0);
    expect(new TextDecoder().decode(atA[19])).toBe("b->a 19");

    const reasonAtB = closeOf(lb);
    la.close("bye now");
    expect(la.closed).toBe(true);
    expect(await reasonAtB).toMatch(/bye now/);
    expect(a.links()).toEqual([]);
    await waitFor(() => b.links().length === 0, "B to forget the link");
    // send on a closed link is a silent no-op
    expect(() => la.send(utf8("ignored"))).not.toThrow();
    expect(() => lb.send(utf8("ignored"))).not.toThrow();
    // onClose registered after the close still fires
    expect(await closeOf(la)).toBe("bye now");
  });

  it("buffers frames until someone calls onFrame", async () => {
    const a = network("ana");
    const { net: b, port } = await listening("ben");
    const bLink = nextLink(b);
    const la = await a.dial("127.0.0.1", port);
    const lb = await bLink;
    la.send(utf8("one"));
    la.send(utf8("two"));
    await new Promise((r) => setTimeout(r, 100));
    const got = collect(lb);
    await waitFor(() => got.length === 2, "buffered frames");
    expect(got.map((f) => new TextDecoder().decode(f))).toEqual(["one", "two"]);
  });

  it("a frame of exactly maxFrameBytes passes; one byte more closes the link", async () => {
    const max = 4096;
    const a = network("ana", { maxFrameBytes: max });
    const { net: b, port } = await listening("ben", { maxFrameBytes: max });
    const bLink = nextLink(b);
    const la = await a.dial("127.0.0.1", port);
    const lb = await bLink;
    const got = collect(lb);
    la.send(randomBytes(max));
    await waitFor(() => got.length === 1, "the max-size frame");
    expect(got[0]!.length).toBe(max);

    const atA = closeOf(la);
    const atB = closeOf(lb);
    la.send(new Uint8Array(max + 1));
    expect(await atA).toMatch(/exceeds maxFrameBytes \(4096\)/);
    expect(await atB).toMatch(/exceeds maxFrameBytes/);
    expect(got.length).toBe(1);
  });

  it("the receiver enforces its own maxFrameBytes on a bigger sender", async () => {
    const a = network("ana", { maxFrameBytes: 64 * 1024 });
    const { net: b, port } = await listening("ben", { maxFrameBytes: 1024 });
    const bLink = nextLink(b);
    const la = await a.dial("127.0.0.1", port);
    const lb = await bLink;
    const got = collect(lb);
    const atA = closeOf(la);
    const atB = closeOf(lb);
    la.send(new Uint8Array(1024));
    la.send(new Uint8Array(1025));
    expect(await atB).toMatch(/incoming frame exceeds maxFrameBytes \(1024\)/);
    expect(await atA).toMatch(/closed by peer|frame too large/);
    expect(got.length).toBe(1);
  });

  it("rejects garbage from a raw client and keeps serving good links", async () => {
    const { net: b, port } = await listening("ben");
    for (const junk of [randomBytes(200), new Uint8Array(0), Uint8Array.of(9, 1, 2, 3), randomBytes(4000)]) {
      const c = await rawClient(port);
      const rejected = nextRejection(b);
      c.ws.send(junk);
      const r = await rejected;
      expect(r.remote).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(r.reason).toMatch(/wrong version|wrong message type|truncated|too large|malformed/);
      const [code] = await c.closed;
      // larger than any HELLO: "message too big", and the connection is cut (the close frame may be lost to the reset)
      if (junk.length > HANDSHAKE_MESSAGE_MAX_BYTES) expect([1009, 1006]).toContain(code);
      else expect(code).toBe(1008);
      if (junk.length > HANDSHAKE_MESSAGE_MAX_BYTES) expect(r.reason).toBe(`handshake message too large (a handshake message is at most ${HANDSHAKE_MESSAGE_MAX_BYTES} bytes)`);
    }
    // a text frame is refused too
    const t = await rawClient(port);
    const rejected = nextRejection(b);
    t.ws.send("hello?");
    expect((await rejected).reason).toMatch(/text frame/);

    const a = network("ana");
    const la = await a.dial("127.0.0.1", port);
    expect(la.peer.name).toBe("ben");
    // the dialer has its link once it checked ben's proof and sent its Confirm; ben, once that arrives
    await waitFor(() => b.links().length === 1, "ben's side of the link");
  });

  it("says nothing to a client before its Hello, and rejects a forged Confirm from a raw client", async () => {
    const { net: b, port } = await listening("ben");
    const c = await rawClient(port);
    await new Promise((r) => setTimeout(r, 100));
    expect(c.messages).toEqual([]); // the listener never speaks first
    const hs = startHandshake(generateIdentity("mallory"), "dialer");
    c.ws.send(hs.opening!);
    await waitFor(() => c.messages.length >= 1, "B's Reply");
    expect(hs.receive(c.messages[0]!).session!.peer.name).toBe("ben");
    const rejected = nextRejection(b);
    c.ws.send(Uint8Array.of(HANDSHAKE_VERSION, 3, ...randomBytes(HANDSHAKE_MESSAGE_MAX_BYTES - 34))); // a Confirm sealed under no key of ours
    expect((await rejected).reason).toBe("the dialer's identity did not open (not sealed for this connection)");
    const [code, reason] = await c.closed;
    expect(code).toBe(1008);
    expect(reason).toMatch(/did not open/);
    expect(b.links()).toEqual([]);
  });

  it("rejects a peer impersonating someone else's key", async () => {
    const alice = generateIdentity("alice");
    const mallory = generateIdentity("mallory");
    const fakeAlice: Identity = { ...alice, signing: { publicKey: alice.signing.publicKey, seed: mallory.signing.seed } };
    const { net: b, port } = await listening("ben");
    const links: WsLink[] = [];
    b.on("link", (l) => links.push(l));
    const m = network(fakeAlice);
    const rejected = nextRejection(b);
    // Mallory can check Ben's proof (it is genuine), so her dial may "succeed" briefly; Ben closes it.
    const dialled = await m.dial("127.0.0.1", port).catch((e: Error) => e);
    expect((await rejected).reason).toBe("bad signature");
    if (!(dialled instanceof Error)) await closeOf(dialled);
    expect(links).toEqual([]);
    expect(b.links()).toEqual([]);
  });

  it("rejects a client that never finishes the handshake, after handshakeTimeoutMs", async () => {
    const { net: b, port } = await listening("ben", { handshakeTimeoutMs: 300 });
    const c = await rawClient(port);
    const r = await nextRejection(b);
    expect(r.reason).toMatch(/handshake timed out after 300 ms/);
    await c.closed;
  });

  it("closes the link on a tampered or replayed frame, and survives a connection reset", async () => {
    const alice = generateIdentity("alice");
    const { net: b, port } = await listening("ben");
    {
      const bLink = nextLink(b);
      const c = await rawAuthenticated(alice, port);
      const lb = await bLink;
      const got = collect(lb);
      const good = c.session.seal(utf8("fine"));
      c.ws.send(good);
      await waitFor(() => got.length === 1, "good frame");
      const closed = closeOf(lb);
      c.ws.send(good); // replay
      expect(await closed).toMatch(/did not open/);
      expect((await c.closed)[0]).toBe(1008);
    }
    {
      const bLink = nextLink(b);
      const c = await rawAuthenticated(alice, port);
      const lb = await bLink;
      const f = c.session.seal(utf8("fine"));
      f[3]! ^= 1;
      const closed = closeOf(lb);
      c.ws.send(f);
      expect(await closed).toMatch(/did not open/);
    }
    {
      const bLink = nextLink(b);
      const c = await rawAuthenticated(alice, port);
      const lb = await bLink;
      const closed = closeOf(lb);
      (c.ws as unknown as { _socket: Socket })._socket.resetAndDestroy();
      expect(await closed).toMatch(/ECONNRESET|connection lost/);
    }
    // still serving
    const la = await network("ana").dial("127.0.0.1", port);
    expect(la.closed).toBe(false);
  });

  it("closes a link whose peer stops answering pings", async () => {
    const { net: b, port } = await listening("ben", { pingIntervalMs: 100 });
    const bLink = nextLink(b);
    await rawAuthenticated(generateIdentity("alice"), port, false);
    const lb = await bLink;
    const started = Date.now();
    expect(await closeOf(lb)).toMatch(/stopped answering pings/);
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it("keeps a link whose peer is busy sending, even if its pongs are late: anything heard is a sign of life", async () => {
    const { net: b, port } = await listening("ben", { pingIntervalMs: 100 });
    const bLink = nextLink(b);
    const raw = await rawAuthenticated(generateIdentity("alice"), port, false); // never answers a ping
    const lb = await bLink;
    const got = collect(lb);
    for (let i = 0; i < 12; i++) {
      raw.ws.send(raw.session.seal(Uint8Array.of(i)));
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(lb.closed).toBe(false); // 600 ms, six ping intervals, no pong at all
    expect(got.length).toBe(12);
    expect(await closeOf(lb)).toMatch(/stopped answering pings/); // and once it falls silent, it goes
  });

  it("refuses to talk to itself", async () => {
    const { net: a, port } = await listening("ana");
    const rejected = nextRejection(a);
    await expect(a.dial("127.0.0.1", port)).rejects.toThrow(/talking to ourselves/);
    expect((await rejected).reason).toMatch(/talking to ourselves/);
    expect(a.links()).toEqual([]);
  });

  it("dial failures reject without crashing: refused, and a server that never answers", async () => {
    const a = network("ana", { handshakeTimeoutMs: 300 });
    const probe = createServer();
    probe.listen(0, "127.0.0.1");
    await once(probe, "listening");
    const freePort = (probe.address() as { port: number }).port;
    await new Promise((r) => probe.close(r));
    await expect(a.dial("127.0.0.1", freePort)).rejects.toThrow(/could not connect to 127\.0\.0\.1:\d+: .*ECONNREFUSED/);

    const silent: Server = createServer((s) => s.on("error", () => {}));
    silent.listen(0, "127.0.0.1");
    await once(silent, "listening");
    cleanups.push(() => new Promise((r) => { silent.close(r); }));
    const sockets: Socket[] = [];
    silent.on("connection", (s) => sockets.push(s));
    cleanups.push(() => sockets.forEach((s) => s.destroy()));
    const port = (silent.address() as { port: number }).port;
    await expect(a.dial("127.0.0.1", port)).rejects.toThrow(/timed out/);
    await expect(a.dial("127.0.0.1", 0)).rejects.toThrow(/bad port/);
  });

  it("both dial each other at once: exactly one link survives, the same connection on both sides", async () => {
    for (let round = 0; round < 6; round++) {
      const ida = generateIdentity("ana");
      const idb = generateIdentity("ben");
      const { net: a, port: pa } = await listening(ida);
      const { net: b, port: pb } = await listening(idb);
      const emitted = { a: [] as WsLink[], b: [] as WsLink[] };
      a.on("link", (l) => emitted.a.push(l));
      b.on("link", (l) => emitted.b.push(l));
      const results = await Promise.allSettled([a.dial("127.0.0.1", pb), b.dial("127.0.0.1", pa)]);
      expect(results.every((r) => r.status === "fulfilled")).toBe(true);
      const stable = () =>
        a.links().length === 1 && b.links().length === 1 && a.links()[0]!.connectionId === b.links()[0]!.connectionId;
      await waitFor(stable, "one shared link");
      await new Promise((r) => setTimeout(r, 150));
      expect(stable()).toBe(true);
      const [la] = a.links();
      const [lb] = b.links();
      // the kept connection is the one dialled by the smaller key
      const smaller = compareBytes(ida.signing.publicKey, idb.signing.publicKey) < 0 ? "a" : "b";
      expect(la!.role).toBe(smaller === "a" ? "dialer" : "listener");
      expect(lb!.role).toBe(smaller === "b" ? "dialer" : "listener");
      // every other emitted link has closed, as a duplicate
      for (const l of [...emitted.a, ...emitted.b]) {
        if (l === la || l === lb) continue;
        expect(l.closed).toBe(true);
        expect(l.closeReason).toMatch(/duplicate/);
      }
      expect(emitted.a.at(-1)).toBe(la);
      expect(emitted.b.at(-1)).toBe(lb);
      const got = collect(lb!);
      la!.send(utf8(`round ${round}`));
      await waitFor(() => got.length === 1, "a frame over the kept link");
      await a.close();
      await b.close();
    }
  });

  it("listen falls back to a free port when asked, and explains EADDRINUSE otherwise", async () => {
    const { port } = await listening("ana");
    const strict = network("ben", { port });
    await expect(strict.listen()).rejects.toThrow(/cannot listen on 127\.0\.0\.1:\d+: the port is already in use/);
    const relaxed = network("cleo", { port, fallbackToEphemeral: true });
    const addr = await relaxed.listen();
    expect(addr.port).not.toBe(port);
    expect(addr.port).toBeGreaterThan(0);
    expect(relaxed.address()).toEqual(addr);
  });

  it("close() closes every link and later dials are refused", async () => {
    const a = network("ana");
    const { net: b, port } = await listening("ben");
    const bLink = nextLink(b);
    const la = await a.dial("127.0.0.1", port);
    const lb = await bLink;
    const atA = closeOf(la);
    await b.close();
    expect(lb.closed).toBe(true);
    expect(lb.closeReason).toBe("network closed");
    expect(await atA).toMatch(/network closed|went away|connection lost/);
    await expect(b.dial("127.0.0.1", port)).rejects.toThrow(/network is closed/);
    await expect(a.dial("127.0.0.1", port)).rejects.toThrow(/ECONNREFUSED/);
    expect(toHex(la.peer.signPublicKey)).toBe(toHex(b.identity.signing.publicKey));
  });
});
