// Converse.js 14 (npm converse.js) in Debian's headless Chromium, driven by playwright-core: a page
// served from loopback loads converse.min.js, logs in over WebSocket (RFC 7395) and exposes
// `_converse` to the test through a tiny plugin.
import { createServer, type Server } from "node:http";
import { mkdtempSync, readFileSync, rmSync, existsSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, extname, join, normalize } from "node:path";
import type { BrowserContext, Page } from "playwright-core";

const require = createRequire(join(import.meta.dirname, "../../../packages/xmpp/package.json"));
const DIST = dirname(require.resolve("converse.js/dist/converse.min.js"));

const TYPES: Record<string, string> = { ".js": "text/javascript", ".css": "text/css", ".json": "application/json", ".wasm": "application/wasm", ".html": "text/html" };

export interface ConverseSession {
  page: Page;
  /** Sends a message in the chat with `to`; resolves with the message's msgid. */
  send(to: string, body: string): Promise<string>;
  /** Bodies of the messages in the chat with `peer`, oldest first. */
  bodies(peer: string): Promise<string[]>;
  /** Whether Converse has marked its message `msgid` as received (the delivered tick). */
  received(peer: string, msgid: string): Promise<boolean>;
  screenshot(path: string): Promise<void>;
  console: string[];
  close(): Promise<void>;
}

/**
 * Serves Converse from http://127.0.0.1:`port` (a free one if not given) and logs in. That origin is
 * not the node's own: a Pigeon node must be started with `--allow-origin` for it (http-guard.ts).
 */
export async function startConverse(opts: { websocket: string; jid: string; password: string; port?: number }): Promise<ConverseSession> {
  const { chromium } = (await import(require.resolve("playwright-core"))) as typeof import("playwright-core");
  const page = `<!doctype html><html><head><meta charset="utf-8"><link rel="stylesheet" href="/dist/converse.min.css">
<script type="module" src="/dist/converse.min.js"></script></head><body class="converse-fullscreen"><script type="module">
converse.plugins.add('testhook', { initialize() { window.__c = this._converse; } });
converse.initialize({
  websocket_url: ${JSON.stringify(opts.websocket)}, discover_connection_methods: false,
  jid: ${JSON.stringify(opts.jid)}, password: ${JSON.stringify(opts.password)}, auto_login: true, auto_reconnect: false,
  whitelisted_plugins: ['testhook'], view_mode: 'fullscreen', loglevel: 'debug', allow_non_roster_messaging: true,
  persistent_store: 'IndexedDB', play_sounds: false, show_desktop_notifications: false,
});
</script></body></html>`;
  const http: Server = createServer((req, res) => {
    const url = (req.url ?? "/").split("?")[0]!;
    if (url === "/") {
      res.writeHead(200, { "content-type": "text/html" });
      return res.end(page);
    }
    const file = normalize(join(DIST, url.replace(/^\/dist\//, "/")));
    if (!file.startsWith(DIST) || !existsSync(file)) {
      res.writeHead(404);
      return res.end();
    }
    res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" });
    res.end(readFileSync(file));
  });
  const port = await new Promise<number>((r) => http.listen(opts.port ?? 0, "127.0.0.1", () => r((http.address() as { port: number }).port)));
  const profile = mkdtempSync(join(tmpdir(), "pigeon-chromium-"));
  let browser: BrowserContext | undefined;
  try {
    // a fresh profile directory (playwright passes it as --user-data-dir)
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: "/usr/bin/chromium",
      headless: true,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"],
      timeout: 30_000,
      viewport: { width: 1100, height: 700 },
    });
  } catch (e) {
    http.close();
    rmSync(profile, { recursive: true, force: true });
    throw e;
  }
  const p = browser.pages()[0] ?? (await browser.newPage());
  const consoleLines: string[] = [];
  p.on("console", (m) => consoleLines.push(m.text()));
  p.on("pageerror", (e) => consoleLines.push(`pageerror: ${e.message}`));
  await p.goto(`http://127.0.0.1:${port}/`);
  try {
    // logged in and the roster fetched
    await p.waitForFunction(() => {
      const c = (window as unknown as { __c?: { api: { connection: { connected(): boolean } }; state?: { roster?: unknown } } }).__c;
      return !!c && c.api.connection.connected() && !!c.state?.roster;
    }, undefined, { timeout: 30_000 });
  } catch (e) {
    await browser.close().catch(() => {});
    http.close();
    throw new Error(`Converse did not log in: ${(e as Error).message}\n--- browser console ---\n${consoleLines.slice(-60).join("\n")}`);
  }
  return {
    page: p,
    console: consoleLines,
    async send(to, body) {
      return p.evaluate(async ([to, body]) => {
        const c = (window as unknown as { __c: any }).__c; // eslint-disable-line @typescript-eslint/no-explicit-any
        const chat = await c.api.chats.open(to, {}, true);
        const m = await chat.sendMessage({ body });
        return m.get("msgid") as string;
      }, [to, body] as const);
    },
    async bodies(peer) {
      return p.evaluate(async (peer) => {
        const c = (window as unknown as { __c: any }).__c; // eslint-disable-line @typescript-eslint/no-explicit-any
        const chat = await c.api.chats.get(peer);
        return chat ? (chat.messages.filter((m: any) => m.get("body")).map((m: any) => m.get("body")) as string[]) : []; // eslint-disable-line @typescript-eslint/no-explicit-any
      }, peer);
    },
    async received(peer, msgid) {
      return p.evaluate(async ([peer, msgid]) => {
        const c = (window as unknown as { __c: any }).__c; // eslint-disable-line @typescript-eslint/no-explicit-any
        const chat = await c.api.chats.get(peer);
        const m = chat?.messages.findWhere({ msgid });
        return !!m?.get("received");
      }, [peer, msgid] as const);
    },
    async screenshot(path) {
      await p.screenshot({ path });
    },
    async close() {
      await browser?.close().catch(() => {});
      http.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
