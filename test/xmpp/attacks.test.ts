// Hostile input against a real daemon's XMPP port (loopback only, bounded in count and time): each
// attack gets the RFC 6120 stream error it deserves, the node stays up, and its memory stays bounded.
import { connect, type Socket } from "node:net";
import { readFileSync } from "node:fs";
import { WebSocket } from "ws";
import { afterAll, describe, expect, it } from "vitest";
import { cleanupAll, pigeonJson, startDaemon } from "../helpers.js";
import { announceSkip, befriend, missing, slix, startXmppNode, waitFor, type XmppNode } from "./xmpp-helpers.js";

afterAll(cleanupAll);

const HEADER = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='local' version='1.0'>`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function rssKb(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]);
}

/** Sends `chunks` (a delay between them) and collects what the server says until it closes. */
function talk(port: number, chunks: (string | Buffer)[], gapMs = 0, maxMs = 15_000): Promise<{ text: string; closed: boolean; ms: number }> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const s: Socket = connect(port, "127.0.0.1");
    let text = "";
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve({ text, closed, ms: Date.now() - t0 });
    };
    const timer = setTimeout(() => finish(false), maxMs);
    s.on("data", (d) => (text += d.toString()));
    s.on("close", () => finish(true));
    s.on("error", () => finish(true));
    s.on("connect", async () => {
      for (const c of chunks) {
        if (done || s.destroyed) return;
        s.write(c);
        if (gapMs) await new Promise((r) => setTimeout(r, gapMs));
      }
    });
  });
}

const condition = (text: string) => /<stream:error[^>]*><([a-z-]+) xmlns="urn:ietf:params:xml:ns:xmpp-streams"/.exec(text)?.[1];

describe("an XMPP port under attack", () => {
  let n: XmppNode;

  it("answers each bad stream with the right stream error and stays up", async () => {
    process.env.PIGEON_XMPP_LOGIN_TIMEOUT_MS = "3000"; // the slow-loris limit, short for the test
    n = await startXmppNode("amara");
    delete process.env.PIGEON_XMPP_LOGIN_TIMEOUT_MS;
    const rss0 = rssKb(n.proc.pid!);
    const laughs =
      `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">` +
      Array.from({ length: 9 }, (_, i) => `<!ENTITY lol${i + 2} "${`&lol${i || ""};`.repeat(10)}">`).join("") +
      `]><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='local' version='1.0'>&lol10;`;
    const utf8 = Buffer.from(`<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='local' version='1.0' xml:lang='fé😀'>`);
    const cut = utf8.indexOf(Buffer.from("😀")) + 1;
    const [billion, doctype, big, deep, entity, comment, split, slow, badNs] = await Promise.all([
      talk(n.xmppPort, [laughs]),
      talk(n.xmppPort, [`<?xml version='1.0'?><!DOCTYPE stream>`, HEADER]),
      talk(n.xmppPort, [HEADER, "<message><body>", ...Array.from({ length: 16 }, () => "x".repeat(64 * 1024)), "</body></message>"]),
      talk(n.xmppPort, [HEADER, "<a>".repeat(10_000)]),
      talk(n.xmppPort, [HEADER, "<message>&nbsp;</message>"]),
      talk(n.xmppPort, [HEADER, "<!-- hello -->"]),
      talk(n.xmppPort, [utf8.subarray(0, cut), utf8.subarray(cut)], 200, 1500),
      // slow loris: one byte every 200 ms, never finishing the login
      talk(n.xmppPort, [...HEADER.split(""), ..."<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>".split("")], 200, 15_000),
      talk(n.xmppPort, [`<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='local' version='1.0'>`]),
    ]);
    expect(condition(billion.text)).toBe("restricted-xml");
    expect(condition(doctype.text)).toBe("restricted-xml");
    expect(condition(big.text)).toBe("policy-violation");
    expect(condition(deep.text)).toBe("policy-violation");
    expect(condition(entity.text)).toBe("restricted-xml");
    expect(condition(comment.text)).toBe("restricted-xml");
    expect(condition(badNs.text)).toBe("invalid-namespace");
    for (const r of [billion, doctype, big, deep, entity, comment, badNs]) expect(r.closed).toBe(true);
    // the split character did not upset anything: the server answered with its features
    expect(split.text).toContain("<mechanism>SCRAM-SHA-256</mechanism>");
    expect(condition(split.text)).toBeUndefined();
    expect(condition(slow.text)).toBe("connection-timeout");
    expect(slow.ms).toBeLessThan(8000);
    expect(n.proc.exitCode).toBeNull();
    expect(rssKb(n.proc.pid!) - rss0).toBeLessThan(100 * 1024);
  });

  it("refuses a bad WebSocket stream the same way", async () => {
    const ws = new WebSocket(n.websocket, "xmpp");
    const got: string[] = [];
    await new Promise<void>((resolve, reject) => {
      ws.on("open", () => ws.send(`<!DOCTYPE x [<!ENTITY a "b">]><open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="local" version="1.0"/>`));
      ws.on("message", (d) => got.push(d.toString()));
      ws.on("close", () => resolve());
      ws.on("error", reject);
      setTimeout(() => reject(new Error(`no close; got ${got.join("")}`)), 5000);
    });
    expect(condition(got.join(""))).toBe("restricted-xml");
    expect(got[got.length - 1]).toBe(`<close xmlns="urn:ietf:params:xml:ns:xmpp-framing" />`);
    // no subprotocol: RFC 7395 says no
    const bad = new WebSocket(n.websocket);
    const status = await new Promise<number | string>((resolve) => {
      bad.on("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
      bad.on("open", () => resolve("opened"));
      bad.on("error", (e) => resolve(e.message));
    });
    expect(status).toBe(400);
  });

  it("holds 1,000 connections that never log in: the oldest make room, at most 500 stay, and it still serves", async () => {
    const rss0 = rssKb(n.proc.pid!);
    const sockets: Socket[] = [];
    const texts: string[] = [];
    const closed: boolean[] = [];
    try {
      await Promise.all(
        Array.from({ length: 1000 }, (_, i) =>
          new Promise<void>((resolve) => {
            const s = connect(n.xmppPort, "127.0.0.1");
            sockets.push(s);
            texts[i] = "";
            closed[i] = false;
            s.on("data", (d) => (texts[i] += d.toString()));
            s.on("close", () => (closed[i] = true));
            s.on("error", () => resolve());
            s.on("connect", () => {
              s.write(HEADER);
              resolve();
            });
          }),
        ),
      );
      await waitFor(() => texts.filter((t) => t.includes("</stream:features>") || condition(t)).length === 1000, "every connection to be answered", 20_000);
      await waitFor(() => closed.filter(Boolean).length >= 500, "the oldest to be closed to make room", 20_000);
      const refused = texts.filter((t) => condition(t) === "policy-violation").length;
      expect(refused).toBeGreaterThanOrEqual(450); // at most 500 may wait to log in at once
      expect(refused).toBeLessThanOrEqual(500); // and those may
      expect(closed.filter((c) => !c).length).toBeLessThanOrEqual(500);
      expect(rssKb(n.proc.pid!) - rss0).toBeLessThan(150 * 1024);
    } finally {
      for (const s of sockets) s.destroy();
    }
    expect(n.proc.exitCode).toBeNull();
    // once they are gone, a real login works
    await new Promise((r) => setTimeout(r, 500));
    const ok = await talk(n.xmppPort, [HEADER], 0, 1500);
    expect(ok.text).toContain("<mechanism>SCRAM-SHA-1</mechanism>");
  });
});

describe("idle sockets against the owner's own login", () => {
  const why = missing("slixmpp");
  if (why) announceSkip("the owner logs in past 550 idle sockets", why);

  it.skipIf(!!why)("550 idle sockets do not lock the owner out: slixmpp logs in and sends", async () => {
    const a = await startXmppNode("amara"); // the default login timeout (30 s): the idle sockets stay for the whole test
    const b = await startDaemon("baraka", { args: ["--no-mdns", "--peer", `127.0.0.1:${a.syncPort}`] });
    await befriend(a, b); // met nearby, and made each other buddies
    const sockets: Socket[] = [];
    const closed: boolean[] = [];
    try {
      for (let i = 0; i < 550; i++) {
        const s = connect(a.xmppPort, "127.0.0.1");
        closed[i] = false;
        s.on("close", () => (closed[i] = true));
        s.on("error", () => {});
        s.resume(); // reads what it is sent (a stream error, once closed), so it sees the close
        sockets.push(s);
        await new Promise<void>((resolve) => s.once("connect", () => resolve()));
      }
      // they say nothing at all; past 500 the oldest made room for the newer
      await waitFor(() => closed.filter(Boolean).length >= 50, "50 idle sockets to be closed");
      const run = await slix({ jid: a.jid, password: a.password, port: a.xmppPort, scenario: "send", to: "baraka@local", bodies: ["past the idle sockets"], wait: "received", overall: 30 });
      expect(run.result.ok, JSON.stringify(run.result) + run.stderr.slice(-2000)).toBe(true);
      expect(run.result.receipts).toEqual(run.result.ids);
      const inbox = await pigeonJson<{ from: string; body: string }[]>(b, "inbox");
      expect(inbox.map((m) => [m.from, m.body])).toEqual([["amara@local", "past the idle sockets"]]);
      // the oldest made room: 50 for the newer idle sockets, one for the owner's client; the rest still wait
      await sleep(300);
      expect(closed.filter(Boolean).length).toBe(51);
      expect(closed.slice(0, 51).every(Boolean)).toBe(true);
    } finally {
      for (const s of sockets) s.destroy();
    }
    expect(a.proc.exitCode).toBeNull();
  });
});
