// The children's web app, served by the node on its loopback control port (docs/web-app.md). Who may
// use it: only whoever can read the data directory (the laptop's own user). The node keeps a random
// key in `web-key` there (owner-only) and prints the app's address with it; the page trades the key
// for a cookie once, and every API call then needs that cookie and a CSRF token the page can only
// read from a same-origin response. On top of the control port's Host and Origin checks
// (http-guard.ts), the app accepts only its own origin (not --allow-origin ones: those are for XMPP
// clients), refuses anything a browser marks as cross-site, and answers no CORS preflight. A page on
// another origin, even another port of 127.0.0.1 (same site, so the cookie would go along), can
// neither read an answer nor send.
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { extname, join, normalize, resolve, sep } from "node:path";
import { gzipSync } from "node:zlib";
import { WebSocketServer, type WebSocket } from "ws";
import type { Mailbox, MessageView, SyncEngine } from "@pigeon/sync";
import type { Endpoint, Route, Routes } from "./control-api.js";
import { writeFileAtomic } from "./data-dir.js";
import { SYNC_PATH, WebReplica } from "./web-replica.js";

export const APP_PATH = "/app/";
export const LIVE_PATH = "/app/live";
const COOKIE = "pigeon-app";
const MAX_BODY = 64 * 1024;

/** What the page may call: its path under /app/api/ and the control API's endpoint behind it. */
const API: Record<string, Endpoint> = {
  "GET whoami": "GET /api/whoami",
  "GET inbox": "GET /api/inbox",
  "GET outbox": "GET /api/outbox",
  "GET waiting": "GET /api/waiting",
  "GET drafts": "GET /api/drafts",
  "GET buddies": "GET /api/buddies",
  "GET nearby": "GET /api/nearby",
  "GET card": "GET /api/card",
  "GET requests": "GET /api/requests",
  "GET contacts": "GET /api/contacts",
  "POST send": "POST /api/send",
  "POST reply": "POST /api/reply",
  "POST drafts": "POST /api/drafts",
  "POST drafts/delete": "POST /api/drafts/delete",
  "POST drafts/send": "POST /api/drafts/send",
  "POST show": "POST /api/show",
  "POST read": "POST /api/read",
  "POST buddies/add": "POST /api/buddies/add",
  // without the replica (a browser without IndexedDB): the name the child gives a friend, straight to the node
  "POST buddies/rename": "POST /api/buddies/rename",
  "POST contacts": "POST /api/contacts",
  "POST requests/accept": "POST /api/requests/accept",
  // class channels and groups (docs/web-app.md, "Channels"): the node checks who may change them
  "GET channels": "GET /api/channels",
  "POST channels/create": "POST /api/channels/create",
  "POST channels/add": "POST /api/channels/add",
  "POST channels/remove": "POST /api/channels/remove",
  "POST channels/send": "POST /api/channels/send",
  // only the owner names admins and closes a channel: the node refuses anyone else
  "POST channels/admin": "POST /api/channels/admin",
  "POST channels/close": "POST /api/channels/close",
};

/** What GET /app/api/state answers at once: each listing the page shows (the folders trimmed, see state()). */
const STATE = ["whoami", "drafts", "buddies", "nearby", "contacts", "card", "channels"] as const;
/** Messages per folder the page gets at first; it asks for more ("show older") with ?shown=N. */
const FIRST = 50;

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".wasm": "application/wasm",
};

/** Where the built page lives: the static files beside the sources, the scripts tsc built. */
const STATIC_DIR = resolve(import.meta.dirname, "../web/static");
const SCRIPT_DIR = resolve(import.meta.dirname, "web");

/** The data directory's web key: made once, owner-only, kept across restarts (a bookmark keeps working). */
export function webKey(dataDir: string): string {
  const path = join(dataDir, "web-key");
  if (existsSync(path)) {
    const k = readFileSync(path, "utf8").trim();
    if (/^[0-9a-f]{64}$/.test(k)) return k;
  }
  const k = randomBytes(32).toString("hex");
  writeFileAtomic(path, k + "\n");
  return k;
}

export interface WebAppOptions {
  mailbox: Mailbox;
  sync: SyncEngine;
  dataDir: string;
  /** The control API's routes (the app calls a few of them, listed in API). */
  routes: Routes<Endpoint>;
  /** Where the replica's troubles are told (stderr when not given). */
  log?: { warn(msg: string): void };
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export class WebApp {
  private readonly key: string;
  private readonly session: string;
  private readonly csrf: string;
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 1024 });
  private readonly live = new Set<WebSocket>();
  private pending: NodeJS.Timeout | undefined;
  private readonly cache = new Map<string, { body: Buffer; gzip: Buffer; type: string; etag: string }>();
  private readonly unsubscribe: () => void;
  /** The browser's replica of the child's drafts (web-replica.ts), and when it is ready to sync. */
  private readonly replica: WebReplica;
  private readonly replicaReady: Promise<boolean>;

  constructor(private readonly opts: WebAppOptions) {
    this.key = webKey(opts.dataDir);
    // both derived from the key: a session survives a restart of the node, and a new key ends them all
    this.session = createHmac("sha256", this.key).update("pigeon web session").digest("hex");
    this.csrf = createHmac("sha256", this.key).update("pigeon web csrf").digest("hex");
    const log = opts.log ?? { warn: (m: string) => process.stderr.write(`pigeon web app: ${m}\n`) };
    this.replica = new WebReplica(opts.mailbox, opts.dataDir, this.key, log, async (id) => (opts.routes["POST /api/show"] as Route<Endpoint>)({ id }));
    this.replicaReady = this.replica.start().then(
      () => true,
      (e: unknown) => (log.warn(`the browser's replica could not start (${(e as Error).message}); the app works without it`), false),
    );
    const changed = () => this.changed();
    opts.mailbox.on("changed", changed);
    opts.sync.on("peer-up", changed);
    opts.sync.on("peer-down", changed);
    this.unsubscribe = () => {
      opts.mailbox.off("changed", changed);
      opts.sync.off("peer-up", changed);
      opts.sync.off("peer-down", changed);
    };
  }

  /** The address to open, with the key in the fragment (never sent over HTTP, nor kept in logs). */
  url(port: number): string {
    return `http://127.0.0.1:${port}${APP_PATH}#key=${this.key}`;
  }

  /** Whether a path is the app's (everything else on the port is the control API or XMPP). */
  static owns(path: string): boolean {
    return path === "/" || path === "/app" || path.startsWith("/app/");
  }

  /** Tells every open page that something changed (a few changes in a row make one message). */
  private changed(): void {
    if (this.pending || this.live.size === 0) return;
    this.pending = setTimeout(() => {
      this.pending = undefined;
      for (const ws of this.live) ws.send('{"changed":true}');
    }, 30);
  }

  async close(): Promise<void> {
    this.unsubscribe();
    clearTimeout(this.pending);
    for (const ws of this.live) ws.terminate();
    this.wss.close();
    if (await this.replicaReady) await this.replica.close();
  }

  /** Why a request must not reach the app (beyond the port's own Host and Origin checks), or undefined. */
  private refusal(req: IncomingMessage, navigation: boolean): string | undefined {
    const port = req.socket.localPort;
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== `http://127.0.0.1:${port}` && origin !== `http://localhost:${port}`) return "only the app's own page may use it";
    // Chromium and Firefox say where a request comes from; a page elsewhere is "same-site" or "cross-site"
    const site = req.headers["sec-fetch-site"];
    if (site !== undefined && site !== "same-origin" && !(navigation && site === "none")) return "only the app's own page may use it";
    return undefined;
  }

  private hasSession(req: IncomingMessage): boolean {
    for (const part of (req.headers.cookie ?? "").split(";")) {
      const [name, ...rest] = part.trim().split("=");
      if (name === COOKIE && same(rest.join("="), this.session)) return true;
    }
    return false;
  }

  private securityHeaders(req: IncomingMessage): Record<string, string> {
    const host = req.headers.host ?? "127.0.0.1";
    return {
      "content-security-policy":
        // 'wasm-unsafe-eval': the replica's Automerge is WebAssembly (served from here; no eval of text)
        `default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; connect-src 'self' ws://${host}; ` +
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
      "x-content-type-options": "nosniff",
      "x-frame-options": "DENY",
      "referrer-policy": "no-referrer",
      "cross-origin-opener-policy": "same-origin",
      "cross-origin-resource-policy": "same-origin",
    };
  }

  private json(req: IncomingMessage, res: ServerResponse, status: number, value: unknown, extra: Record<string, string> = {}): void {
    const text = JSON.stringify(value);
    res.writeHead(status, {
      ...this.securityHeaders(req),
      "content-type": "application/json; charset=utf-8",
      "cache-control": "no-store",
      "content-length": Buffer.byteLength(text),
      ...extra,
    });
    res.end(text);
  }

  /** Serves one request on an app path (the control server has checked loopback, Host and Origin). */
  async handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const method = req.method ?? "GET";
    if (path === "/" || path === "/app") {
      res.writeHead(302, { location: APP_PATH, ...this.securityHeaders(req) });
      res.end();
      return;
    }
    const isApi = path.startsWith("/app/api/") || path === "/app/login";
    const refused = this.refusal(req, !isApi && method === "GET");
    if (refused) return this.json(req, res, 403, { error: "forbidden-origin", message: refused });
    if (!isApi) {
      if (method !== "GET" && method !== "HEAD") return this.json(req, res, 405, { error: "method", message: "only GET here" });
      return this.serveFile(req, res, path === APP_PATH ? "index.html" : path.slice(APP_PATH.length));
    }
    if (method !== "GET" && method !== "POST") return this.json(req, res, 405, { error: "method", message: "only GET and POST" });
    if (path === "/app/login") {
      if (method !== "POST") return this.json(req, res, 405, { error: "method", message: "POST the key" });
      const body = await readBody(req);
      if (typeof body?.key !== "string" || !same(body.key, this.key)) return this.json(req, res, 401, { error: "wrong-key", message: "that is not this laptop's key" });
      // HttpOnly: no script reads it; Strict: no other site's navigation carries it
      return this.json(req, res, 200, { ok: true }, { "set-cookie": `${COOKIE}=${this.session}; Path=/app; HttpOnly; SameSite=Strict; Max-Age=31536000` });
    }
    if (!this.hasSession(req)) return this.json(req, res, 401, { error: "no-session", message: "open Pigeon from the address the node printed" });
    // the token, and everything the page shows with it: one round trip before the first screen
    const shown = Math.max(1, Math.min(Number(new URL(req.url ?? "/", "http://x").searchParams.get("shown")) || FIRST, 100_000));
    if (path === "/app/api/session") return this.json(req, res, 200, { csrf: this.csrf, replica: this.replica.url, state: await this.state(shown) });
    // a custom header: no page on another origin can add it without a CORS preflight, which is never answered
    const token = req.headers["x-pigeon-csrf"];
    if (typeof token !== "string" || !same(token, this.csrf)) return this.json(req, res, 403, { error: "csrf", message: "missing or wrong CSRF token" });
    // everything the page shows, in one answer (a slow laptop pays for each request)
    if (method === "GET" && path === "/app/api/state") return this.json(req, res, 200, await this.state(shown));
    // the talk with one person: what they sent and what was sent to them, oldest first (the newest 100)
    if (method === "GET" && path === "/app/api/conversation") {
      const who = new URL(req.url ?? "/", "http://x").searchParams.get("with") ?? "";
      const [inbox, outbox] = (await Promise.all([this.opts.routes["GET /api/inbox"]({}), this.opts.routes["GET /api/outbox"]({})])) as MessageView[][];
      const talk = [...inbox!.filter((m) => m.from === who), ...outbox!.filter((m) => m.to.includes(who))];
      talk.sort((a, b) => (a.arrivedAt ?? a.claimedSentAt) - (b.arrivedAt ?? b.claimedSentAt));
      return this.json(req, res, 200, talk.slice(-100));
    }
    // a channel's messages, everyone's, oldest first (the newest 100)
    if (method === "GET" && path === "/app/api/channel") {
      const id = new URL(req.url ?? "/", "http://x").searchParams.get("id") ?? "";
      const [inbox, outbox] = (await Promise.all([this.opts.routes["GET /api/inbox"]({}), this.opts.routes["GET /api/outbox"]({})])) as MessageView[][];
      const said = [...inbox!, ...outbox!].filter((m) => m.channel !== undefined && m.conversation === id);
      said.sort((a, b) => (a.arrivedAt ?? a.claimedSentAt) - (b.arrivedAt ?? b.claimedSentAt));
      return this.json(req, res, 200, said.slice(-100));
    }
    const endpoint = API[`${method} ${path.slice("/app/api/".length)}`];
    if (!endpoint) return this.json(req, res, 404, { error: "not-found", message: `no such endpoint: ${method} ${path}` });
    const body = method === "POST" ? await readBody(req) : {};
    if (!body) return this.json(req, res, 400, { error: "bad-input", message: "the body must be a JSON object (at most 64 KiB)" });
    const route = this.opts.routes[endpoint] as Route<Endpoint>;
    try {
      this.json(req, res, 200, await route(body));
    } catch (e) {
      const err = e as { status?: number; code?: string; message: string };
      const status = typeof err.status === "number" ? err.status : err.code === "not-found" ? 404 : err.code === "storage" ? 507 : err.code ? 400 : 500;
      this.json(req, res, status, { error: err.code ?? "internal", message: err.message });
    }
  }

  /**
   * Each listing the page shows, in one object (GET /app/api/state). A folder comes as its newest
   * `shown` messages and its counts: a thousand messages are a lot of JSON for a slow laptop to read.
   */
  private async state(shown = FIRST): Promise<Record<string, unknown>> {
    // the folders counted from the message index, with only the messages shown loaded (issue 20: a
    // child with 100 conversations of 10,000 messages opens the app without loading them all)
    const [folders, ...parts] = await Promise.all([this.opts.mailbox.folders(shown), ...STATE.map((p) => (this.opts.routes[API[`GET ${p}`]!] as Route<Endpoint>)({}))]);
    return { ...Object.fromEntries(STATE.map((p, i) => [p, parts[i]])), ...folders };
  }

  private serveFile(req: IncomingMessage, res: ServerResponse, name: string): void {
    let file = this.cache.get(name);
    if (!file) {
      // only plain names under the two folders: no "..", no hidden files
      if (!/^[a-z0-9][a-z0-9_-]*(\/[a-z0-9][a-z0-9_-]*)*\.(html|js|css|svg|wasm)$/.test(name)) return this.notFound(req, res);
      const dir = name.endsWith(".js") || name.endsWith(".wasm") ? SCRIPT_DIR : STATIC_DIR;
      const full = normalize(join(dir, name));
      if (!full.startsWith(dir + sep) || !existsSync(full) || !statSync(full).isFile()) return this.notFound(req, res);
      const body = readFileSync(full);
      file = { body, gzip: gzipSync(body), type: TYPES[extname(name)]!, etag: `"${createHash("sha256").update(body).digest("hex").slice(0, 16)}"` };
      this.cache.set(name, file);
    }
    const gzip = /\bgzip\b/.test(String(req.headers["accept-encoding"] ?? ""));
    const headers: Record<string, string | number> = {
      ...this.securityHeaders(req),
      "content-type": file.type,
      "cache-control": "no-cache",
      etag: file.etag,
      vary: "accept-encoding",
    };
    if (req.headers["if-none-match"] === file.etag) {
      res.writeHead(304, headers);
      res.end();
      return;
    }
    const body = gzip ? file.gzip : file.body;
    res.writeHead(200, { ...headers, ...(gzip ? { "content-encoding": "gzip" } : {}), "content-length": body.length });
    res.end(req.method === "HEAD" ? undefined : body);
  }

  private notFound(req: IncomingMessage, res: ServerResponse): void {
    this.json(req, res, 404, { error: "not-found", message: "no such page" });
  }

  /** Takes the live-updates WebSocket (/app/live) and the replica's (/app/sync); false for other paths. Host and Origin are checked already. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const url = new URL(req.url ?? "/", "http://x");
    if (url.pathname !== LIVE_PATH && url.pathname !== SYNC_PATH) return false;
    const origin = req.headers.origin;
    const port = req.socket.localPort;
    // a browser always sends Origin on a WebSocket: the page must be the app itself, with its session and token
    const ok =
      (origin === `http://127.0.0.1:${port}` || origin === `http://localhost:${port}`) &&
      this.hasSession(req) &&
      same(url.searchParams.get("csrf") ?? "", this.csrf);
    if (!ok) {
      socket.on("error", () => {});
      socket.end("HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nonly the app's own page may listen\n");
      return true;
    }
    if (url.pathname === SYNC_PATH) {
      socket.on("error", () => {});
      void this.replicaReady.then((ok) => (ok ? this.replica.upgrade(req, socket, head) : socket.destroy()));
      return true;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      this.live.add(ws);
      ws.on("error", () => {});
      ws.once("close", () => this.live.delete(ws));
      // the page says nothing over it; anything it sends is ignored
    });
    return true;
  }
}

async function readBody(req: IncomingMessage): Promise<Record<string, unknown> | undefined> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > MAX_BODY) return undefined;
    chunks.push(c);
  }
  if (n === 0) return {};
  try {
    const v = JSON.parse(Buffer.concat(chunks).toString("utf8")) as unknown;
    return v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
