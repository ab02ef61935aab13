// The attack from the issue, as a real page in Debian's Chromium (playwright-core): a page served from
// another origin on 127.0.0.1 (another port is another origin) opens ws://127.0.0.1:<control
// port>/xmpp-websocket and tries to log in with guesses (the right password among them), read the
// archive and send a message as the child. The node refuses the WebSocket (http-guard.ts): the page
// sees the error and the close, nothing is read or sent. The same page served from an origin given
// with --allow-origin does all of it, so the script itself works and the refusal is the Origin check.
import { createServer, type Server } from "node:http";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import { afterAll, describe, expect, it } from "vitest";
import { api, cleanupAll, onCleanup, pigeon, pigeonJson } from "../helpers.js";
import { announceSkip, befriend, missing, startXmppNode, waitFor } from "./xmpp-helpers.js";

afterAll(cleanupAll);

const why = missing("chromium");
if (why) announceSkip("a hostile web page in Chromium", why);

const require = createRequire(join(import.meta.dirname, "../../packages/xmpp/package.json"));

/** The page: SCRAM-SHA-1 over RFC 7395 with WebCrypto, then bind, read the archive (MAM), send. */
const PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>Free game!</title></head><body><p>Free game!</p><script>
const enc = new TextEncoder();
const b64 = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes)));
const unb64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
async function hmac(key, data) {
  const k = await crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-1" }, false, ["sign"]);
  return new Uint8Array(await crypto.subtle.sign("HMAC", k, typeof data === "string" ? enc.encode(data) : data));
}
async function scramFinal(user, password, cnonce, serverFirst) {
  const a = Object.fromEntries(serverFirst.split(",").map((p) => [p[0], p.slice(2)]));
  const pw = await crypto.subtle.importKey("raw", enc.encode(password), "PBKDF2", false, ["deriveBits"]);
  const salted = new Uint8Array(await crypto.subtle.deriveBits({ name: "PBKDF2", salt: unb64(a.s), iterations: Number(a.i), hash: "SHA-1" }, pw, 160));
  const clientKey = await hmac(salted, "Client Key");
  const storedKey = new Uint8Array(await crypto.subtle.digest("SHA-1", clientKey));
  const withoutProof = "c=biws,r=" + a.r;
  const sig = await hmac(storedKey, "n=" + user + ",r=" + cnonce + "," + serverFirst + "," + withoutProof);
  return withoutProof + ",p=" + b64(clientKey.map((x, i) => x ^ sig[i]));
}
const OPEN = '<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="local" version="1.0"/>';
function tryLogin(url, user, password, to) {
  return new Promise((resolve) => {
    const r = { password, opened: false, error: false, closeCode: null, frames: 0, result: "?", archive: [] };
    const done = (result) => {
      if (r.result !== "?") return;
      r.result = result;
      try { ws.close(); } catch {}
      resolve(r);
    };
    const ws = new WebSocket(url, "xmpp");
    const cnonce = b64(crypto.getRandomValues(new Uint8Array(18)));
    let stage = "open";
    setTimeout(() => done("timeout"), 20000);
    ws.onerror = () => { r.error = true; };
    ws.onclose = (e) => { r.closeCode = e.code; done(r.opened ? "closed" : "refused"); };
    ws.onopen = () => { r.opened = true; ws.send(OPEN); };
    ws.onmessage = async (m) => {
      const f = String(m.data);
      r.frames++;
      if (stage === "open" && f.includes("<mechanism>SCRAM-SHA-1</mechanism>")) {
        stage = "auth";
        ws.send('<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="SCRAM-SHA-1">' + btoa("n,,n=" + user + ",r=" + cnonce) + "</auth>");
      } else if (stage === "auth" && f.startsWith("<challenge")) {
        stage = "response";
        const final = await scramFinal(user, password, cnonce, atob(f.replace(/<[^>]+>/g, "")));
        ws.send('<response xmlns="urn:ietf:params:xml:ns:xmpp-sasl">' + btoa(final) + "</response>");
      } else if (f.startsWith("<failure")) {
        done(f.match(/<failure[^>]*><([a-z-]+)/)[1]);
      } else if (f.startsWith("<success")) {
        stage = "restart";
        ws.send(OPEN);
      } else if (stage === "restart" && f.includes("urn:ietf:params:xml:ns:xmpp-bind")) {
        stage = "bind";
        ws.send('<iq xmlns="jabber:client" type="set" id="b1"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"><resource>page</resource></bind></iq>');
      } else if (stage === "bind" && f.includes('id="b1"')) {
        stage = "mam";
        ws.send('<iq xmlns="jabber:client" type="set" id="m1"><query xmlns="urn:xmpp:mam:2"/></iq>');
      } else if (stage === "mam" && f.includes("<body")) {
        r.archive.push(f.match(/<body[^>]*>([^<]*)</)[1]);
      } else if (stage === "mam" && f.includes('id="m1"')) {
        stage = "sent";
        ws.send('<message xmlns="jabber:client" to="' + to + '" type="chat" id="page1"><body>sent by a web page</body></message>');
        setTimeout(() => done("logged-in"), 1500);
      }
    };
  });
}
window.attack = async (url, user, guesses, to) => {
  const out = [];
  for (const g of guesses) out.push(await tryLogin(url, user, g, to));
  return out;
};
</script></body></html>`;

interface Attempt {
  password: string;
  opened: boolean;
  error: boolean;
  closeCode: number | null;
  frames: number;
  result: string;
  archive: string[];
}

function servePage(): Promise<{ server: Server; origin: string }> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(PAGE);
  });
  onCleanup(() => void server.close());
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({ server, origin: `http://127.0.0.1:${(server.address() as { port: number }).port}` })));
}

describe.skipIf(!!why)("a web page on another origin in Chromium", () => {
  it("cannot open the XMPP WebSocket, log in, read the archive or send; an allowed origin can", async () => {
    const evil = await servePage();
    const allowed = await servePage();
    const a = await startXmppNode("amara", ["--allow-origin", allowed.origin]);
    const b = await startXmppNode("baraka", ["--peer", `127.0.0.1:${a.syncPort}`]);
    await befriend(a, b); // met nearby, and made each other buddies
    // something in amara's archive for a page to steal
    expect((await pigeon(b, "send", a.jid, "a secret for amara")).code).toBe(0);
    await waitFor(async () => (await pigeonJson<unknown[]>(a, "inbox")).length === 1, "the message to reach amara");
    const before = { outbox: await api<unknown[]>(a, "GET", "/api/outbox"), inbox: await api<unknown[]>(a, "GET", "/api/inbox") };
    const logBefore = readFileSync(join(a.dataDir, "node.log"), "utf8");

    const { chromium } = (await import(require.resolve("playwright-core"))) as typeof import("playwright-core");
    const browser: Browser = await chromium.launch({
      executablePath: "/usr/bin/chromium",
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
      timeout: 30_000,
    });
    onCleanup(() => browser.close());
    const user = a.jid.split("@")[0]!;
    const guesses = ["123456", "password", a.password]; // even the right password does not help
    const run = async (origin: string): Promise<Attempt[]> => {
      const page = await browser.newPage();
      await page.goto(`${origin}/`);
      expect(await page.evaluate(() => window.location.origin)).toBe(origin);
      const out = await page.evaluate(([url, user, guesses, to]) => (window as unknown as { attack: (...a: unknown[]) => Promise<unknown> }).attack(url, user, guesses, to), [a.websocket, user, guesses, b.jid] as const);
      await page.close();
      return out as Attempt[];
    };

    const refused = await run(evil.origin);
    expect(refused).toHaveLength(3);
    for (const r of refused) {
      // the handshake failed: the page saw the error and a close without ever opening
      expect(r).toMatchObject({ opened: false, error: true, closeCode: 1006, frames: 0, result: "refused", archive: [] });
    }
    // nothing happened on the node: nothing sent, nothing read or marked, nobody logged in
    await new Promise((r) => setTimeout(r, 1000));
    expect(await api<unknown[]>(a, "GET", "/api/outbox")).toEqual(before.outbox);
    expect(await api<unknown[]>(a, "GET", "/api/inbox")).toEqual(before.inbox);
    expect(readFileSync(join(a.dataDir, "node.log"), "utf8").slice(logBefore.length)).not.toMatch(/logged in from/);

    // the same page from the allowed origin: the script works (so the refusal above is the Origin check)
    const ok = await run(allowed.origin);
    expect(ok.map((r) => [r.opened, r.result])).toEqual([[true, "not-authorized"], [true, "not-authorized"], [true, "logged-in"]]);
    expect(ok[2]!.archive).toEqual(["a secret for amara"]);
    await waitFor(async () => (await api<{ body: string }[]>(a, "GET", "/api/outbox")).some((m) => m.body === "sent by a web page"), "the allowed page's message");
  });
});
