// The node's loopback HTTP server (the control API and XMPP over WebSocket) answers only requests
// that come to it by its own name, and from no web page but its own. Every request passes here first:
// - Host must be the node's loopback name or address with its port (127.0.0.1:PORT, localhost:PORT,
//   [::1]:PORT): a page on evil.example whose name a DNS rebinding points at 127.0.0.1 still sends
//   Host: evil.example, and is refused.
// - Origin, when there is one, must be the node's own origin (http://127.0.0.1:PORT,
//   http://localhost:PORT) or one configured with `pigeon start --allow-origin URL`. Browsers send
//   Origin with every WebSocket handshake and every cross-origin request, so a page elsewhere gets
//   403 and no 101. Native clients (the pigeon command, slixmpp, profanity) send no Origin and pass.
// PORT is the port the request came in on (the socket's local port), so the check holds whatever
// port the node ended up listening on.
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";

export interface GuardRefusal {
  status: 403;
  code: "forbidden-host" | "forbidden-origin";
  message: string;
}

export interface HttpGuardOptions {
  /** Web origins allowed besides the node's own, e.g. "http://127.0.0.1:8080" (any form `parseOrigin` takes). */
  allowedOrigins?: readonly string[];
}

/**
 * The origin ("scheme://host[:port]") of a URL given on the command line, or an Error saying what is
 * wrong with it. Only http and https origins can be allowed; a path is tolerated and dropped.
 */
export function parseOrigin(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`"${url}" is not a URL; an origin looks like http://127.0.0.1:8080`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error(`"${url}": only http:// and https:// origins can be allowed`);
  if (u.username || u.password) throw new Error(`"${url}": an origin has no user name or password`);
  if ((u.pathname !== "/" && u.pathname !== "") || u.search || u.hash) throw new Error(`"${url}": an origin has no path, query or fragment (just scheme://host:port)`);
  return u.origin;
}

export class HttpGuard {
  private readonly allowed: ReadonlySet<string>;

  constructor(opts: HttpGuardOptions = {}) {
    this.allowed = new Set((opts.allowedOrigins ?? []).map(parseOrigin));
  }

  /** The configured origins, normalised (for the log and node.json). */
  get allowedOrigins(): string[] {
    return [...this.allowed];
  }

  /** Undefined if the request may go on; otherwise why it is refused. */
  check(req: IncomingMessage): GuardRefusal | undefined {
    const port = req.socket.localPort;
    const host = (req.headers.host ?? "").toLowerCase();
    if (port === undefined || (host !== `127.0.0.1:${port}` && host !== `localhost:${port}` && host !== `[::1]:${port}`)) {
      return { status: 403, code: "forbidden-host", message: `this node answers only to 127.0.0.1:${port}, localhost:${port} or [::1]:${port}, not to "${host.slice(0, 100)}"` };
    }
    // ws also honours the old hybi-08 header; treat it the same way
    for (const name of ["origin", "sec-websocket-origin"] as const) {
      const value = req.headers[name];
      if (value === undefined) continue;
      const origin = Array.isArray(value) ? value.join(", ") : value;
      const o = origin.toLowerCase();
      if (o === `http://127.0.0.1:${port}` || o === `http://localhost:${port}` || this.allowed.has(o)) continue;
      return {
        status: 403,
        code: "forbidden-origin",
        message: `web pages from ${origin.slice(0, 100)} may not use this node (allow one with pigeon start --allow-origin URL)`,
      };
    }
    return undefined;
  }

  /** For the HTTP server's "upgrade" event: answers 403 and closes if refused; true if it did. */
  refuseUpgrade(req: IncomingMessage, socket: Duplex): boolean {
    const r = this.check(req);
    if (!r) return false;
    const body = `${r.message}\n`;
    socket.on("error", () => {});
    socket.end(`HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
    setTimeout(() => socket.destroy(), 1000).unref();
    return true;
  }
}
