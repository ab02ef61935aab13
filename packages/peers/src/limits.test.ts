// What an attacker who is not a peer can hold: connections still in the handshake (per address and in
// all) and the bytes of a message before the handshake. Loopback only: 127.0.0.x addresses stand for
// different laptops.
import { once } from "node:events";
import { connect, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { generateIdentity, startHandshake, type Identity } from "@pigeon/model";
import { WebSocket } from "ws";
import { sourceOf } from "./slots.js";
import { WsNetwork, type WsLink, type WsNetworkOptions } from "./ws-network.js";

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

async function listening(opts: Partial<WsNetworkOptions> = {}) {
  const net = new WsNetwork({ identity: generateIdentity("ben"), host: "127.0.0.1", port: 0, ...opts });
  cleanups.push(() => net.close());
  const { port } = await net.listen();
  return { net, port };
}

async function waitFor(cond: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

interface Raw {
  socket: Socket;
  closed: boolean;
  closedAt: number;
  received: number;
}

/** A TCP connection from `from` that sends `data` (if any) and then nothing. */
async function stall(port: number, from: string, data?: Buffer | string): Promise<Raw> {
  const socket = connect({ port, host: "127.0.0.1", localAddress: from });
  const raw: Raw = { socket, closed: false, closedAt: 0, received: 0 };
  socket.on("error", () => {});
  socket.on("data", (d) => (raw.received += d.length));
  socket.on("close", () => {
    raw.closed = true;
    raw.closedAt = Date.now();
  });
  cleanups.push(() => socket.destroy());
  await once(socket, "connect");
  if (data !== undefined) socket.write(data);
  return raw;
}

const UPGRADE = (port: number) =>
  `GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
  `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`;

/** The start of a masked binary WebSocket message that says it is `length` bytes long, and `have` of them. */
function partialFrame(length: number, have: number): Buffer {
  const head = Buffer.alloc(14);
  head[0] = 0x82; // FIN, binary
  head[1] = 0x80 | 127; // masked, 64-bit length
  head.writeBigUInt64BE(BigInt(length), 2);
  head.writeUInt32BE(0x01020304, 10); // mask
  return Buffer.concat([head, Buffer.alloc(have, 7)]);
}

/** Completes a real handshake as `identity` from `from`; resolves once the listener proved itself. */
async function peer(port: number, from: string, identity: Identity = generateIdentity("ana")): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { localAddress: from });
  cleanups.push(() => ws.terminate());
  ws.on("error", () => {});
  const got: Uint8Array[] = [];
  ws.on("message", (d) => got.push(new Uint8Array(d as Buffer)));
  await once(ws, "open");
  const hs = startHandshake(identity, "dialer");
  ws.send(hs.opening!);
  await waitFor(() => got.length >= 1, "the listener's Reply");
  const step = hs.receive(got[0]!); // checks the listener's proof, then reveals us in the Confirm
  ws.send(step.reply!);
  if (!step.session) throw new Error("the dialer should have its session after the Reply");
  return ws;
}

describe("WsNetwork limits before a peer is proven", () => {
  it("closes a connection at once when its first message says it is larger than any handshake message, before the rest arrives", async () => {
    const { net, port } = await listening();
    const reasons: string[] = [];
    net.on("rejected", (r) => reasons.push(r.reason));
    const raw = await stall(port, "127.0.0.2", UPGRADE(port));
    await waitFor(() => raw.received > 0, "the upgrade answer");
    // announce 1 MiB, send 1 KiB of it, and stall: nothing waits for the rest
    const t0 = Date.now();
    raw.socket.write(partialFrame(1024 * 1024, 1024));
    await waitFor(() => raw.closed, "the connection to be closed", 3000);
    expect(raw.closedAt - t0).toBeLessThan(2500);
    expect(reasons).toEqual(["handshake message too large (a handshake message is at most 404 bytes)"]);
    await waitFor(() => net.stats().handshaking === 0, "the slot to be free");
  });

  it("takes full frames once the peer is proven", async () => {
    const { net, port } = await listening();
    const links: WsLink[] = [];
    net.on("link", (l) => links.push(l));
    const dialer = new WsNetwork({ identity: generateIdentity("ana"), host: "127.0.0.1", port: 0 });
    cleanups.push(() => dialer.close());
    const mine = await dialer.dial("127.0.0.1", port);
    await waitFor(() => links.length === 1, "the link");
    const got: Uint8Array[] = [];
    links[0]!.onFrame((f) => got.push(f));
    const back: Uint8Array[] = [];
    mine.onFrame((f) => back.push(f));
    mine.send(new Uint8Array(1024 * 1024).fill(1));
    links[0]!.send(new Uint8Array(512 * 1024).fill(2));
    await waitFor(() => got.length === 1 && back.length === 1, "a 1 MiB frame each way");
    expect(got[0]!.length).toBe(1024 * 1024);
    expect(back[0]!.length).toBe(512 * 1024);
  });

  it("holds at most maxHandshakesPerSource connections from one address; others still get in", async () => {
    const lines: string[] = [];
    const { net, port } = await listening({
      maxHandshakesPerSource: 3,
      maxHandshakes: 50,
      log: { info: (m) => lines.push(m), warn: (m) => lines.push(m) },
    });
    const held: Raw[] = [];
    for (let i = 0; i < 3; i++) held.push(await stall(port, "127.0.0.2"));
    const over: Raw[] = [];
    for (let i = 0; i < 20; i++) over.push(await stall(port, "127.0.0.2"));
    await waitFor(() => over.every((r) => r.closed), "the connections over the limit to be closed");
    expect(held.some((r) => r.closed)).toBe(false);
    expect(net.stats()).toMatchObject({ handshaking: 3, refusedPerSource: 20, closedForRoom: 0 });
    // one line says so; the other 19 are counted, not written
    expect(lines).toEqual([
      "refused a connection from 127.0.0.2: 3 connections from that address were already in the handshake (the limit) (more are counted and summed up every minute)",
    ]);
    // another laptop gets in, and a proven peer no longer holds a slot
    await peer(port, "127.0.0.3");
    await waitFor(() => net.links().length === 1, "the link");
    expect(net.stats().handshaking).toBe(3);
    held[0]!.socket.destroy();
    await waitFor(() => net.stats().handshaking === 2, "the closed connection's slot to be free");
    await stall(port, "127.0.0.2");
    expect(net.stats().handshaking).toBe(3);
  });

  it("when maxHandshakes are held, the oldest of the address holding the most makes room, and a real peer links", async () => {
    const lines: string[] = [];
    const { net, port } = await listening({
      maxHandshakesPerSource: 4,
      maxHandshakes: 6,
      log: { info: (m) => lines.push(m), warn: (m) => lines.push(m) },
      summaryIntervalMs: 1000,
    });
    const a: Raw[] = [];
    for (let i = 0; i < 4; i++) a.push(await stall(port, "127.0.0.2", UPGRADE(port)));
    const b: Raw[] = [];
    for (let i = 0; i < 2; i++) b.push(await stall(port, "127.0.0.3"));
    await waitFor(() => net.stats().handshaking === 6, "six in the handshake");
    const dialer = new WsNetwork({ identity: generateIdentity("ana"), host: "127.0.0.1", port: 0 });
    cleanups.push(() => dialer.close());
    const link = await dialer.dial("127.0.0.1", port);
    expect(link.peer.name).toBe("ben");
    await waitFor(() => a[0]!.closed, "the oldest connection of 127.0.0.2 to be closed");
    expect([...a.slice(1), ...b].some((r) => r.closed)).toBe(false);
    // the dialer's link is ready half a round trip before the listener has the Confirm
    await waitFor(() => net.links().length === 1, "the listener's side of the link");
    expect(net.stats()).toMatchObject({ handshaking: 5, closedForRoom: 1, refusedPerSource: 0 });
    // more of the same: 127.0.0.2 keeps making room for itself, and it is summed up
    for (let i = 0; i < 5; i++) await stall(port, "127.0.0.4");
    await waitFor(() => net.stats().closedForRoom === 5, "room for the newcomers");
    await waitFor(() => lines.length === 2, "the summary", 3000);
    expect(lines[0]).toBe("closed the oldest connection from 127.0.0.2 to make room: 6 connections were in the handshake (the limit) (more are counted and summed up every 1 s)");
    expect(lines[1]).toBe("in the last 1 s, closed connections still in the handshake: 4 to make room under the limit of 6 in all");
  });

  it("closes a connection that never sends a WebSocket upgrade after handshakeTimeoutMs", async () => {
    const { net, port } = await listening({ handshakeTimeoutMs: 300 });
    const raw = await stall(port, "127.0.0.2", "GET / HTTP/1.1\r\nHost: x\r\n"); // headers never finished
    const t0 = Date.now();
    await waitFor(() => raw.closed, "the connection to be closed", 3000);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    expect(net.stats()).toMatchObject({ handshaking: 0, upgradeTimeouts: 1 });
  });

  it("closes an upgrade request with more header than a peer ever sends", async () => {
    const { port } = await listening();
    const raw = await stall(port, "127.0.0.2", `GET / HTTP/1.1\r\nHost: x\r\nX-Junk: ${"j".repeat(8000)}\r\n`);
    await waitFor(() => raw.closed, "the connection to be closed", 3000);
  });

  it("counts an IPv6 /64 as one address", () => {
    expect(sourceOf("2001:db8:1:2:3:4:5:6")).toBe("2001:db8:1:2::/64");
    expect(sourceOf("2001:db8:1:2::99")).toBe(sourceOf("2001:0db8:0001:0002:ffff::1"));
    expect(sourceOf("fe80::1%eth0")).toBe("fe80:0:0:0::/64");
    expect(sourceOf("192.168.1.20")).toBe("192.168.1.20");
  });

  it("refuses bad limits", () => {
    expect(() => new WsNetwork({ identity: generateIdentity("x"), maxHandshakes: 0 })).toThrow(/maxHandshakes must be a positive integer/);
    expect(() => new WsNetwork({ identity: generateIdentity("x"), maxHandshakesPerSource: 1.5 })).toThrow(/maxHandshakesPerSource/);
  });
});
