// Resource exhaustion (the children's-safety issue), against a real `pigeon start`: what an attacker
// who is not a peer did to the sync port, done again, and what must hold now. Loopback only: the
// 127.0.x.y addresses stand for other laptops. Every attack is bounded in count and time.
import { once } from "node:events";
import { readdirSync, readFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { api, cleanupAll, pigeon, pigeonJson, startDaemon, waitFor } from "./helpers.js";

afterAll(cleanupAll);

const rssKb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]);
const openFiles = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const UPGRADE = (port: number) =>
  `GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
  `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`;

/** The start of a masked binary WebSocket message that says it is `length` bytes long, with `have` of them. */
function partialFrame(length: number, have: number): Buffer {
  const head = Buffer.alloc(14);
  head[0] = 0x82;
  head[1] = 0x80 | 127;
  head.writeBigUInt64BE(BigInt(length), 2);
  head.writeUInt32BE(0x01020304, 10);
  return Buffer.concat([head, Buffer.alloc(have, 7)]);
}

interface Conn {
  socket: Socket;
  closed: boolean;
}

/**
 * One attacker connection from `from`: a TCP connection that, if `frame` is given, upgrades to a
 * WebSocket and then sends `frame` and nothing more.
 */
function attacker(port: number, from: string, frame?: Buffer): Promise<Conn> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: "127.0.0.1", localAddress: from });
    const c: Conn = { socket, closed: false };
    let upgraded = false;
    socket.on("error", () => {});
    socket.on("close", () => {
      c.closed = true;
      resolve(c);
    });
    socket.on("connect", () => {
      if (frame) socket.write(UPGRADE(port));
      resolve(c);
    });
    socket.on("data", (d) => {
      if (frame && !upgraded && d.toString("latin1").startsWith("HTTP/1.1 101")) {
        upgraded = true;
        socket.write(frame);
      }
    });
  });
}

/** 127.0.<net>.1 … 127.0.<net>.<count> */
const addresses = (net: number, count: number) => Array.from({ length: count }, (_, i) => `127.0.${net}.${i + 1}`);

describe("the sync port under a resource-exhaustion attack", () => {
  it("200 connections holding an unfinished 1 MiB message do not grow the node; stalled handshakes do not keep a real peer out", async () => {
    const a = await startDaemon("amara", { args: ["--no-mdns"] });
    const pid = a.proc.pid!;
    const rss0 = rssKb(pid);
    let peak = rss0;
    let peakBigMessages = 0;
    const sampler = setInterval(() => (peak = Math.max(peak, rssKb(pid))), 100);
    const conns: Conn[] = [];
    try {
      // the attack as found: 25 laptops × 8 connections, each upgrades and sends all but the last byte
      // of a 1 MiB message, then stalls
      const big = partialFrame(1024 * 1024, 1024 * 1024 - 1);
      for (const from of addresses(1, 25)) for (let i = 0; i < 8; i++) conns.push(await attacker(a.syncPort, from, big));
      // each is closed as soon as it says how big its message is: nothing waits for the rest
      await waitFor(() => conns.every((c) => c.closed), "every connection with a 1 MiB message to be closed", 15_000);
      await sleep(1000);
      peakBigMessages = peak;

      // then 200 that upgrade, start a HELLO-sized message and stall: they hold handshake slots
      // (at most 64, the oldest making room), and keep coming back when closed, for as long as it takes
      let attacking = true;
      const stalled: Conn[] = [];
      const hold = async (from: string): Promise<void> => {
        while (attacking) {
          const c = await attacker(a.syncPort, from, partialFrame(200, 100));
          stalled.push(c);
          while (attacking && !c.closed) await sleep(50);
          if (attacking) await sleep(1000);
        }
      };
      const holders = addresses(2, 25).flatMap((from) => Array.from({ length: 8 }, () => hold(from)));
      await waitFor(() => stalled.filter((c) => c.closed).length >= 136, "the slots to fill and the oldest to make room");

      // a real laptop walks in: it links, sends, and the message arrives
      const b = await startDaemon("baraka", { args: ["--no-mdns", "--peer", `127.0.0.1:${a.syncPort}`] });
      await waitFor(async () => (await pigeonJson<unknown[]>(b, "peers")).length === 1, "baraka to link to amara", 20_000);
      await waitFor(async () => (await pigeonJson<unknown[]>(a, "nearby")).length === 1, "amara to meet baraka", 20_000);
      expect((await pigeon(a, "buddies", "add", "baraka@local")).code).toBe(0); // amara chooses baraka
      expect((await pigeon(b, "send", "amara@local", "hello through the crowd")).code).toBe(0);
      await waitFor(async () => (await api<{ body: string }[]>(a, "GET", "/api/inbox")).some((m) => m.body === "hello through the crowd"), "amara's inbox");
      // and the node answers its own user all along
      expect((await pigeonJson<{ peers: number }>(a, "status")).peers).toBe(1);
      attacking = false;
      for (const c of stalled) c.socket.destroy();
      await Promise.all(holders);
    } finally {
      clearInterval(sampler);
      for (const c of conns) c.socket.destroy();
    }
    const log = readFileSync(join(a.dataDir, "node.log"), "utf8");
    expect(log).toMatch(/refused a connection from 127\.0\.1\.\d+:\d+: handshake message too large \(a handshake message is at most 404 bytes\)/);
    expect(log).toMatch(/closed the oldest connection from 127\.0\.2\.\d+ to make room: 64 connections were in the handshake \(the limit\)/);
    const mb = (kb: number) => Math.round(kb / 1024);
    console.log(`amara's RSS: ${mb(rss0)} MB before, ${mb(peakBigMessages)} MB at most under the 1 MiB messages, ${mb(peak)} MB at most in all (with baraka's visit)`);
    expect(peakBigMessages - rss0).toBeLessThan(30 * 1024); // it was +205 MB: 200 × 1 MiB held
    // the whole attack and a real visit: bounded growth, and far under the 192 MB heap limit the attack
    // once broke through (a fixed 150 MB failed by a few MB when the idle node itself grew)
    expect(peak - rss0).toBeLessThan(50 * 1024);
    expect(peak).toBeLessThan(192 * 1024);
    expect(a.proc.exitCode).toBeNull();
  });

  it("1,100 connection attempts do not run a node with 1,024 file descriptors out of them (EMFILE): the control API answers", async () => {
    const a = await startDaemon("amara", { args: ["--no-mdns"], maxOpenFiles: 1024 });
    const pid = a.proc.pid!;
    expect(readFileSync(`/proc/${pid}/limits`, "utf8")).toMatch(/Max open files\s+1024\s/);
    const conns: Conn[] = [];
    try {
      // 11 laptops × 100 connections that say nothing
      for (const from of addresses(3, 11)) conns.push(...(await Promise.all(Array.from({ length: 100 }, () => attacker(a.syncPort, from)))));
      expect(conns).toHaveLength(1100);
      // all but 8 per address are closed at once
      await waitFor(() => conns.filter((c) => !c.closed).length <= 88, "the connections over the limit to be closed", 10_000);
      expect(openFiles(pid)).toBeLessThan(200);
      // the user's own commands still work
      const status = await pigeonJson<{ address: string; unproven: { refusedPerSource: number } }>(a, "status");
      expect(status.address).toBe("amara@local");
      expect(status.unproven.refusedPerSource).toBeGreaterThan(900); // pigeon status counts what was cut
      expect((await pigeon(a, "status")).stdout).toMatch(/connections cut before they proved who they are: \d+/);
      expect((await api<{ address: string }>(a, "GET", "/api/whoami")).address).toBe("amara@local");
      // and so does a real peer
      const b = await startDaemon("baraka", { args: ["--no-mdns", "--peer", `127.0.0.1:${a.syncPort}`] });
      await waitFor(async () => (await pigeonJson<unknown[]>(b, "peers")).length === 1, "baraka to link to amara", 20_000);
    } finally {
      for (const c of conns) c.socket.destroy();
    }
    const log = readFileSync(join(a.dataDir, "node.log"), "utf8");
    expect(log.match(/refused a connection from 127\.0\.3\.\d+: 8 connections from that address were already in the handshake/g)).toHaveLength(1);
    expect(a.proc.exitCode).toBeNull();
  });

  it("10 s of refused handshakes write a bounded log, with counts", async () => {
    process.env.PIGEON_LOG_WINDOW_MS = "4000"; // the log's "minute", short enough to see its counts
    const a = await startDaemon("amara", { args: ["--no-mdns"] });
    delete process.env.PIGEON_LOG_WINDOW_MS;
    const logFile = join(a.dataDir, "node.log");
    const before = readFileSync(logFile, "utf8").length;
    let attempts = 0;
    let n = 0;
    const word = (i: number) => [0, 1, 2, 3].map((k) => "ghijklmnopqrstuvwxyz"[Math.floor(i / 20 ** k) % 20]).join("");
    // 4 laptops × 8 at a time: half send a broken HELLO, half close with a reason of their own, so
    // that every line the node would write is different
    const end = Date.now() + 10_000;
    const worker = async (from: string, k: number) => {
      while (Date.now() < end) {
        const ws = new WebSocket(`ws://127.0.0.1:${a.syncPort}/`, { localAddress: from });
        ws.on("error", () => {});
        const closed = once(ws, "close").catch(() => {});
        try {
          await once(ws, "open");
        } catch {
          continue;
        }
        attempts++;
        if (k % 2) ws.send(Buffer.from(`\x09\x01 not a hello ${word(n++)}`));
        else ws.close(4000, `I am ${word(n++)} and you will log me`);
        await closed;
      }
    };
    await Promise.all(addresses(4, 4).flatMap((from) => Array.from({ length: 8 }, (_, k) => worker(from, k))));
    await sleep(5000); // the last window is over: its counts are written
    const log = readFileSync(logFile, "utf8").slice(before);
    const lines = log.split("\n").filter(Boolean);
    const refused = lines.filter((l) => /refused a connection from 127\.0\.4\./.test(l));
    const counted = [...log.matchAll(/\((\d+) more (?:like "refused a connection|lines starting "refused a connection)/g)].reduce((s, m) => s + Number(m[1]), 0);
    console.log(`${attempts} refused handshakes in 10 s: ${lines.length} lines (${log.length} bytes) in node.log, ${refused.length} of them refusals, ${counted} refusals counted`);
    expect(attempts).toBeGreaterThan(400); // each was a line of its own
    expect(refused.length).toBeLessThan(attempts / 3);
    // at most 30 refusals a "minute" (4 s here) are written one by one; the rest are counted
    expect(refused.length).toBeLessThanOrEqual(30 * 5);
    expect(lines.length).toBeLessThan(250);
    expect(log.length).toBeLessThan(40_000);
    expect(counted).toBeGreaterThan(attempts / 2);
    expect(log).toMatch(/\(\d+ more lines starting "refused a connection" in the last 4 s not written: at most 30 a minute\)/);
    // a peer's text stays on its line
    expect(refused.some((l) => /closed by peer: I am [g-z]{4} and you will log me during handshake/.test(l))).toBe(true);
    // the node is fine
    expect((await pigeonJson<{ address: string }>(a, "status")).address).toBe("amara@local");
    expect(a.proc.exitCode).toBeNull();
  });
});
