// The node's loopback HTTP server under DNS rebinding and cross-origin requests, without a browser:
// requests are written by hand with the Host and Origin a browser would send (http-guard.ts). Also the
// sync port (browsers are never peers) and the XMPP TCP port spoken to in HTTP (a cross-protocol POST).
import { connect } from "node:net";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { WebSocket } from "ws";
import { afterAll, describe, expect, it } from "vitest";
import { cleanupAll, http, pigeon } from "../helpers.js";
import { startXmppNode, type XmppNode } from "./xmpp-helpers.js";

afterAll(cleanupAll);


/** A WebSocket handshake with the given Host and Origin: the HTTP status, or 101 if it opened. */
function wsStatus(url: string, opts: { host?: string; origin?: string; protocol?: string }): Promise<number> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (opts.host) headers.host = opts.host;
    const ws = new WebSocket(url, opts.protocol ? [opts.protocol] : [], { headers, origin: opts.origin, handshakeTimeout: 5000 });
    ws.on("open", () => {
      ws.close();
      resolve(101);
    });
    ws.on("unexpected-response", (_req, res) => {
      resolve(res.statusCode ?? 0);
      res.resume();
      ws.terminate();
    });
    ws.on("error", (e) => reject(e));
  });
}

describe("the control port refuses other hosts and other web origins", () => {
  let n: XmppNode;
  let port: number;
  let token: string;

  it("answers the API only to its own Host, and only without a foreign Origin", async () => {
    n = await startXmppNode("amara", ["--allow-origin", "http://127.0.0.1:9/"]);
    const info = JSON.parse(readFileSync(join(n.dataDir, "node.json"), "utf8")) as { control: { port: number; token: string } };
    port = info.control.port;
    token = info.control.token;
    const auth = { authorization: `Bearer ${token}` };
    const get = (headers: Record<string, string>) => http(port, "GET", "/api/whoami", { ...auth, ...headers });
    // the pigeon command's own requests: Host 127.0.0.1:PORT, no Origin
    expect((await get({ host: `127.0.0.1:${port}` })).status).toBe(200);
    expect((await get({ host: `localhost:${port}` })).status).toBe(200);
    expect((await get({ host: `LOCALHOST:${port}` })).status).toBe(200);
    expect((await pigeon(n, "whoami")).code).toBe(0);
    // DNS rebinding: the page's own name in Host, even with the right token
    const rebound = await get({ host: `evil.example:${port}` });
    expect(rebound.status).toBe(403);
    expect(JSON.parse(rebound.body)).toMatchObject({ error: "forbidden-host" });
    expect((await get({ host: "evil.example" })).status).toBe(403);
    expect((await get({ host: "127.0.0.1" })).status).toBe(403); // no port: port 80, not us
    expect((await get({ host: `127.0.0.1:${port + 1}` })).status).toBe(403);
    expect((await get({})).status).toBe(400); // no Host at all: Node's HTTP server refuses it itself
    // a page elsewhere: its Origin, with the right Host
    for (const origin of ["http://evil.example", `http://127.0.0.1:${port + 1}`, "null", `https://127.0.0.1:${port}`]) {
      const r = await get({ host: `127.0.0.1:${port}`, origin });
      expect(r.status, origin).toBe(403);
      expect(JSON.parse(r.body)).toMatchObject({ error: "forbidden-origin" });
    }
    // a CORS preflight gets nothing either
    expect((await http(port, "OPTIONS", "/api/send", { host: `127.0.0.1:${port}`, origin: "http://evil.example", "access-control-request-method": "POST" })).status).toBe(403);
    // the node's own origin (a web app it will serve) and the configured one
    expect((await get({ host: `127.0.0.1:${port}`, origin: `http://127.0.0.1:${port}` })).status).toBe(200);
    expect((await get({ host: `localhost:${port}`, origin: `http://localhost:${port}` })).status).toBe(200);
    expect((await get({ host: `127.0.0.1:${port}`, origin: "http://127.0.0.1:9" })).status).toBe(200);
    // a send with a forbidden Origin sends nothing (and the token alone does not help)
    const send = await http(port, "POST", "/api/send", { ...auth, host: `127.0.0.1:${port}`, origin: "http://evil.example", "content-type": "application/json" }, JSON.stringify({ to: "amara@local", body: "x" }));
    expect(send.status).toBe(403);
  });

  it("opens the XMPP WebSocket only for its own Host and allowed origins", async () => {
    const url = `ws://127.0.0.1:${port}/xmpp-websocket`;
    expect(await wsStatus(url, { protocol: "xmpp" })).toBe(101); // a native client: no Origin
    expect(await wsStatus(url, { protocol: "xmpp", origin: `http://127.0.0.1:${port}` })).toBe(101);
    expect(await wsStatus(url, { protocol: "xmpp", origin: "http://127.0.0.1:9" })).toBe(101);
    expect(await wsStatus(url, { protocol: "xmpp", origin: "http://evil.example" })).toBe(403);
    expect(await wsStatus(url, { protocol: "xmpp", origin: `http://127.0.0.1:${port + 1}` })).toBe(403);
    expect(await wsStatus(url, { protocol: "xmpp", host: "evil.example" })).toBe(403);
    expect(await wsStatus(url, { protocol: "xmpp", host: `evil.example:${port}`, origin: `http://evil.example:${port}` })).toBe(403);
    // the old hybi-08 origin header is checked the same way
    expect(await new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(url, ["xmpp"], { protocolVersion: 8, origin: "http://evil.example" });
      ws.on("open", () => (ws.close(), resolve(101)));
      ws.on("unexpected-response", (_q, res) => (res.resume(), ws.terminate(), resolve(res.statusCode ?? 0)));
      ws.on("error", reject);
    })).toBe(403);
  });

  it("refuses web pages on the sync port, and an HTTP request on the XMPP port gets no login", async () => {
    const sync = `ws://127.0.0.1:${n.syncPort}/`;
    expect(await wsStatus(sync, { origin: "http://evil.example" })).toBe(403);
    expect(await wsStatus(sync, { origin: `http://127.0.0.1:${port}` })).toBe(403);
    // without an Origin the handshake opens (the Pigeon handshake comes after it)
    expect(await wsStatus(sync, {})).toBe(101);
    // a page's cross-protocol POST to the XMPP TCP port: a stream error, no mechanisms offered
    const text = await new Promise<string>((resolve) => {
      const s = connect(n.xmppPort, "127.0.0.1");
      let got = "";
      s.on("data", (d) => (got += d.toString()));
      s.on("close", () => resolve(got));
      s.on("error", () => resolve(got));
      s.on("connect", () => s.write(`POST / HTTP/1.1\r\nHost: 127.0.0.1:${n.xmppPort}\r\nOrigin: http://evil.example\r\ncontent-type: text/plain\r\n\r\n<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='local' version='1.0'>`));
      setTimeout(() => (s.destroy(), resolve(got)), 5000);
    });
    expect(text).toContain("<not-well-formed");
    expect(text).not.toContain("<mechanisms");
    expect(n.proc.exitCode).toBeNull();
  });

  it("refuses a bad --allow-origin at start", async () => {
    const r = await pigeon({ dataDir: n.dataDir }, "start", "--allow-origin", "file:///tmp/x");
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--allow-origin .*only http/);
    const r2 = await pigeon({ dataDir: n.dataDir }, "start", "--allow-origin", "http://example.com/app");
    expect(r2.code).toBe(2);
    expect(r2.stderr).toMatch(/no path/);
  });
});
