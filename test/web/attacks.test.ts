// Who else could use the child's web app: a page on another origin in the child's own browser (where
// the child is logged in, and where another port of 127.0.0.1 is the same site, so the session cookie
// goes along), a DNS-rebinding page, and another user of the laptop who can reach loopback but not
// the data directory. None of them reads or sends anything; the same script run by the app's own page
// does both, so the refusals are the checks and not a broken script.
import { request } from "node:http";
import { createServer, type Server } from "node:http";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { WebSocket } from "ws";
import { afterAll, describe, expect, it } from "vitest";
import { api, cleanupAll, http, onCleanup } from "../helpers.js";
import { launch, makeFriends, missingChromium, openApp, profile, startWebNode, waitFor } from "./web-helpers.js";

afterAll(cleanupAll);

const why = missingChromium();
if (why) console.log(`\n*** SKIPPED: attacks on the web app in Chromium: ${why} ***\n`);

/** Everything a hostile page tries; each step says what it got. */
const ATTACK = `window.attack = async (app, to, csrf) => {
  const r = {};
  const text = async (p) => { try { const res = await p; return res.type === "opaque" ? "opaque" : res.status + " " + (await res.text()); } catch (e) { return "blocked"; } };
  r.read = await text(fetch(app + "/app/api/inbox", { credentials: "include", headers: { "x-pigeon-csrf": csrf } }));
  r.readSimple = await text(fetch(app + "/app/api/inbox", { credentials: "include" }));
  r.session = await text(fetch(app + "/app/api/session", { credentials: "include" }));
  const body = JSON.stringify({ to, body: "sent by a web page" });
  r.sendSimple = await text(fetch(app + "/app/api/send", { method: "POST", mode: "no-cors", credentials: "include", headers: { "content-type": "text/plain" }, body }));
  r.send = await text(fetch(app + "/app/api/send", { method: "POST", credentials: "include", headers: { "content-type": "application/json", "x-pigeon-csrf": csrf }, body }));
  // a form posted into a hidden frame (a navigation: no CORS, the cookie goes if the site is the same)
  const sink = document.createElement("iframe");
  sink.name = "sink";
  document.body.append(sink);
  const form = document.createElement("form");
  form.method = "POST"; form.action = app + "/app/api/send"; form.target = "sink"; form.enctype = "text/plain";
  const input = document.createElement("input");
  input.name = body.slice(0, -1) + ',"x":"'; input.value = '"}';
  form.append(input); document.body.append(form); form.submit();
  await new Promise((res) => setTimeout(res, 1500));
  r.ws = await new Promise((res) => {
    const ws = new WebSocket(app.replace("http:", "ws:") + "/app/live?csrf=" + csrf);
    ws.onopen = () => res("open"); ws.onerror = () => res("refused"); setTimeout(() => res("timeout"), 5000);
  });
  // the app in a frame, to read it or click in it
  r.frame = await new Promise((res) => {
    const f = document.createElement("iframe");
    f.src = app + "/app/";
    f.onload = () => { try { res("read: " + f.contentDocument.body.textContent); } catch { res("blocked"); } };
    document.body.append(f);
    setTimeout(() => res("timeout"), 5000);
  });
  return r;
};`;

function servePage(): Promise<{ server: Server; origin: string }> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(`<!doctype html><html><head><meta charset="utf-8"><title>Free game!</title></head><body><p>Free game!</p><script>${ATTACK}</script></body></html>`);
  });
  onCleanup(() => void server.close());
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({ server, origin: `http://127.0.0.1:${(server.address() as { port: number }).port}` })));
}


describe.skipIf(!!why)("a page on another origin in the child's own browser", () => {
  it("cannot read, send, listen or frame the app, even holding the CSRF token; the app's own page can", async () => {
    const evil = await servePage();
    // amara allows the evil origin for XMPP clients: the app still refuses it (that flag is not for the app)
    const amara = await startWebNode("amara", { args: ["--allow-origin", evil.origin] });
    const baraka = await startWebNode("baraka", { args: ["--peer", `127.0.0.1:${amara.syncPort}`] });
    const browser = await launch();
    const ctx = await profile(browser);
    const app = await openApp(ctx, amara);
    const pb = await openApp(await profile(browser), baraka);
    await makeFriends({ page: app, other: "baraka" }, { page: pb, other: "amara" });
    const csrf = await app.evaluate(async () => ((await (await fetch("/app/api/session")).json()) as { csrf: string }).csrf);
    const before = await api<unknown[]>(amara, "GET", "/api/outbox");

    // the child, logged in, opens a game in another tab of the same browser
    const page = await ctx.newPage();
    await page.goto(`${evil.origin}/`);
    const got = (await page.evaluate(([a, to, c]) => (window as unknown as { attack: (...x: string[]) => Promise<Record<string, string>> }).attack(a, to, c), [amara.origin, "baraka@local", csrf])) as Record<string, string>;
    expect(got).toEqual({
      read: "blocked", // CORS: no answer is ever readable (and the node said 403)
      readSimple: "blocked",
      session: "blocked",
      sendSimple: "blocked", // no-cors: it went out (refused by the Origin check: see the outbox below); its answer is blocked by CORP
      send: "blocked", // the preflight is not answered
      ws: "refused",
      frame: "blocked",
    });
    await new Promise((r) => setTimeout(r, 1000));
    expect(await api<unknown[]>(amara, "GET", "/api/outbox")).toEqual(before);

    // the same script from the app's own page reads and sends: the refusals above are the checks
    const own = (await app.evaluate(
      async ([a, to, c]) => {
        const read = await fetch(a + "/app/api/inbox", { headers: { "x-pigeon-csrf": c } });
        const send = await fetch(a + "/app/api/send", { method: "POST", headers: { "content-type": "application/json", "x-pigeon-csrf": c }, body: JSON.stringify({ to, body: "sent by the app itself" }) });
        return [read.status, send.status];
      },
      [amara.origin, "baraka@local", csrf],
    )) as number[];
    expect(own).toEqual([200, 200]);
    await waitFor(async () => (await api<{ body: string }[]>(amara, "GET", "/api/outbox")).some((m) => m.body === "sent by the app itself"), "the app's own message");
  }, 120_000); // two nodes, two browser profiles and every page loading the drafts replica: over 60 s on a loaded machine
});

describe("DNS rebinding and the laptop's other users", () => {
  it("need the key from the owner-only data directory, the app's own Host and Origin, and the CSRF token", async () => {
    const amara = await startWebNode("amara");
    const port = Number(new URL(amara.origin).port);
    const key = new URL(amara.appUrl).hash.slice("#key=".length);
    // the key is in web-key (owner-only, as the data directory) and printed once; not in node.json nor the log
    expect(readFileSync(join(amara.dataDir, "web-key"), "utf8").trim()).toBe(key);
    expect(statSync(join(amara.dataDir, "web-key")).mode & 0o077).toBe(0);
    expect(readFileSync(join(amara.dataDir, "node.json"), "utf8")).not.toContain(key);
    expect(readFileSync(join(amara.dataDir, "node.log"), "utf8")).not.toContain(key);

    const host = `127.0.0.1:${port}`;
    // another user can load the page, but without the key there is no session
    expect((await http(port, "GET", "/app/", { host })).status).toBe(200);
    expect((await http(port, "GET", "/app/api/session", { host })).status).toBe(401);
    expect((await http(port, "POST", "/app/login", { host, "content-type": "application/json" }, JSON.stringify({ key: "0".repeat(64) }))).status).toBe(401);
    const login = await new Promise<string>((resolve, reject) => {
      const req = request({ host: "127.0.0.1", port, method: "POST", path: "/app/login", headers: { host, "content-type": "application/json" } }, (res) => {
        res.resume();
        resolve(String(res.headers["set-cookie"]?.[0] ?? ""));
      });
      req.on("error", reject);
      req.end(JSON.stringify({ key }));
    });
    expect(login).toMatch(/HttpOnly/);
    expect(login).toMatch(/SameSite=Strict/);
    const cookie = login.split(";")[0]!;
    const csrf = (JSON.parse((await http(port, "GET", "/app/api/session", { host, cookie })).body) as { csrf: string }).csrf;
    const send = JSON.stringify({ to: "baraka@local", body: "sent by a stranger" });
    const post = (headers: Record<string, string>) => http(port, "POST", "/app/api/send", { "content-type": "application/json", ...headers }, send);
    // a rebinding page: its browser says Host: evil.example
    expect((await http(port, "GET", "/app/api/inbox", { host: `evil.example:${port}`, cookie, "x-pigeon-csrf": csrf })).status).toBe(403);
    expect((await http(port, "GET", "/app/", { host: `evil.example:${port}` })).status).toBe(403);
    // another origin, or a browser that marks the request cross-site
    expect((await post({ host, cookie, "x-pigeon-csrf": csrf, origin: "http://127.0.0.1:9" })).status).toBe(403);
    expect((await post({ host, cookie, "x-pigeon-csrf": csrf, "sec-fetch-site": "same-site" })).status).toBe(403);
    // no CSRF token, or a wrong one
    expect((await post({ host, cookie })).status).toBe(403);
    expect((await post({ host, cookie, "x-pigeon-csrf": "0".repeat(64) })).status).toBe(403);
    // only the endpoints the app needs: not the command's (stop, pairing, school)
    expect((await http(port, "POST", "/app/api/stop", { host, cookie, "x-pigeon-csrf": csrf })).status).toBe(404);
    expect((await http(port, "POST", "/app/api/devices/pair", { host, cookie, "x-pigeon-csrf": csrf })).status).toBe(404);
    // the live WebSocket: needs the app's Origin, the cookie and the token
    const ws = (headers: Record<string, string>, origin: string | undefined, token: string) =>
      new Promise<number>((resolve) => {
        const w = new WebSocket(`ws://127.0.0.1:${port}/app/live?csrf=${token}`, { headers, origin, handshakeTimeout: 5000 });
        w.on("open", () => (w.close(), resolve(101)));
        w.on("unexpected-response", (_q, res) => (res.resume(), w.terminate(), resolve(res.statusCode ?? 0)));
        w.on("error", () => resolve(0));
      });
    expect(await ws({ cookie }, amara.origin, csrf)).toBe(101);
    expect(await ws({ cookie }, "http://127.0.0.1:9", csrf)).toBe(403);
    expect(await ws({ cookie }, undefined, csrf)).toBe(403);
    expect(await ws({}, amara.origin, csrf)).toBe(403);
    expect(await ws({ cookie }, amara.origin, "0".repeat(64))).toBe(403);
    // with everything right, it works (so each refusal above is that one check)
    const ok = await post({ host, cookie, "x-pigeon-csrf": csrf, origin: amara.origin, "sec-fetch-site": "same-origin" });
    expect(ok.status).toBe(400); // baraka is unknown here: the mailbox answered, the guard let it through
    expect(ok.body).toMatch(/baraka/);
  });
});
