// Password guessing against a real daemon (login-limiter.ts): wrong passwords over TCP take at least the
// back-off, guesses sent in parallel are refused unchecked (even the right password, over TCP or
// WebSocket, while the wait lasts), the right password works once the wait is over, and the log
// holds counts, not a line per guess. And the weak password the attack found cannot be set.
import { connect } from "node:net";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { WebSocket } from "ws";
import { afterAll, describe, expect, it } from "vitest";
import { ScramClient } from "@pigeon/xmpp";
import { cleanupAll, pigeon, pigeonJson } from "../helpers.js";
import { startXmppNode, type XmppNode } from "./xmpp-helpers.js";

afterAll(cleanupAll);

const HEADER = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='local' version='1.0'>`;
const SASL = "urn:ietf:params:xml:ns:xmpp-sasl";

interface Outcome {
  /** "success", or the SASL failure's condition, or "closed". */
  result: string;
  ms: number;
}

/** One SCRAM-SHA-1 login over a fresh TCP connection or WebSocket (no Origin: a native client). */
function login(how: { tcp: number } | { ws: string }, user: string, password: string): Promise<Outcome> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const scram = new ScramClient("sha1", user, password);
    let text = "";
    let step = 0;
    let done = false;
    let send: (x: string) => void = () => {};
    let close = () => {};
    const finish = (result: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      close();
      resolve({ result, ms: Date.now() - t0 });
    };
    const timer = setTimeout(() => finish("timeout"), 60_000);
    const onData = (d: string) => {
      text += d;
      if (step === 0 && text.includes("</stream:features>")) {
        step = 1;
        send(`<auth xmlns='${SASL}' mechanism='SCRAM-SHA-1'>${Buffer.from(scram.first()).toString("base64")}</auth>`);
      }
      const challenge = /<challenge xmlns="[^"]+">([^<]*)<\/challenge>/.exec(text);
      if (step === 1 && challenge) {
        step = 2;
        send(`<response xmlns='${SASL}'>${Buffer.from(scram.final(Buffer.from(challenge[1]!, "base64").toString())).toString("base64")}</response>`);
      }
      if (/<success /.test(text)) finish("success");
      const failure = /<failure xmlns="urn:ietf:params:xml:ns:xmpp-sasl"><([a-z-]+)\/>/.exec(text);
      if (failure) finish(failure[1]!);
    };
    if ("tcp" in how) {
      const s = connect(how.tcp, "127.0.0.1");
      send = (x) => s.write(x);
      close = () => s.destroy();
      s.on("connect", () => s.write(HEADER));
      s.on("data", (d) => onData(d.toString()));
      s.on("close", () => finish("closed"));
      s.on("error", () => finish("closed"));
    } else {
      const ws = new WebSocket(how.ws, "xmpp");
      send = (x) => ws.send(x);
      close = () => ws.terminate();
      ws.on("open", () => ws.send(`<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="local" version="1.0"/>`));
      ws.on("message", (d) => onData(d.toString()));
      ws.on("close", () => finish("closed"));
      ws.on("error", () => finish("closed"));
    }
  });
}

describe("guessing the XMPP password", () => {
  let n: XmppNode;

  it("N wrong passwords take at least the back-off; parallel guesses are refused; then the right one works", async () => {
    n = await startXmppNode("amara");
    const user = n.jid.split("@")[0]!;
    // 7 wrong passwords, one after another, each waiting for its answer: 5 free, then 1 s and 2 s... 4 s
    const t0 = Date.now();
    const wrong: Outcome[] = [];
    for (let i = 0; i < 7; i++) wrong.push(await login({ tcp: n.xmppPort }, user, `guess-${i}`));
    const elapsed = Date.now() - t0;
    expect(wrong.map((o) => o.result)).toEqual(Array(7).fill("not-authorized")); // a client that waits is never refused
    expect(wrong.slice(4).map((o) => o.ms >= 950)).toEqual([true, true, true]);
    expect(wrong[5]!.ms).toBeGreaterThanOrEqual(1950);
    expect(wrong[6]!.ms).toBeGreaterThanOrEqual(3950);
    expect(elapsed).toBeGreaterThanOrEqual(1000 + 2000 + 4000);
    // ten guesses at once: one is checked (the 8th failure: an 8 s wait), the others refused unchecked
    const burst = Array.from({ length: 10 }, (_, i) => login({ tcp: n.xmppPort }, user, `burst-${i}`));
    const settled: Outcome[] = [];
    for (const p of burst) void p.then((o) => settled.push(o));
    await new Promise((r) => setTimeout(r, 2000));
    expect(settled.map((o) => o.result)).toEqual(Array(9).fill("temporary-auth-failure"));
    // while that wait lasts, the right password is refused too, over TCP and over WebSocket
    expect((await login({ tcp: n.xmppPort }, user, n.password)).result).toBe("temporary-auth-failure");
    expect((await login({ ws: n.websocket }, user, n.password)).result).toBe("temporary-auth-failure");
    // the checked guess gets its answer when the wait is over; right after, the owner gets in
    const held = await Promise.all(burst);
    expect(held.filter((o) => o.result === "not-authorized")).toHaveLength(1);
    expect(held.find((o) => o.result === "not-authorized")!.ms).toBeGreaterThanOrEqual(7950);
    const owner = await login({ tcp: n.xmppPort }, user, n.password);
    expect(owner.result).toBe("success");
    expect(owner.ms).toBeLessThan(1500);
    expect((await login({ ws: n.websocket }, user, n.password)).result).toBe("success");
  });

  it("pigeon xmpp-password refuses a weak password, saying what is needed, and takes a good one", async () => {
    const weak = ["password123", "amara2024!", "aaaaaaaaaaaa", "1234567890", "kitemangor", "short-1"];
    for (const [i, r] of (await Promise.all(weak.map((w) => pigeon(n, "xmpp-password", w)))).entries()) {
      expect(r.code, weak[i]).toBe(2);
      expect(r.stderr, weak[i]).toMatch(/^pigeon: that password is too easy to guess: .*at least 10 characters/);
    }
    expect((await pigeonJson<{ password: string }>(n, "xmpp-password")).password).toBe(n.password);
    const set = await pigeonJson<{ password: string; changed: boolean }>(n, "xmpp-password", "kite-river-mango-47");
    expect(set).toMatchObject({ password: "kite-river-mango-47", changed: true });
    // the running node takes it at the next login
    const user = n.jid.split("@")[0]!;
    expect((await login({ tcp: n.xmppPort }, user, "kite-river-mango-47")).result).toBe("success");
  });

  it("logs counts, not a line per guess", async () => {
    await n.stop(); // the summary is written when the server closes
    const log = readFileSync(join(n.dataDir, "node.log"), "utf8");
    const lines = log.split("\n").filter((l) => /failed login|too many failed logins/.test(l));
    expect(lines.length, lines.join("\n")).toBeLessThanOrEqual(2);
    expect(lines[0]).toMatch(/failed login from 127\.0\.0\.1/);
    expect(lines[1]).toMatch(/7 more failed logins \(127\.0\.0\.1 ×7\) and 11 refused/);
  });
});
