// The daemon's control API: JSON over HTTP on loopback only, guarded by a random token kept in the
// owner-only data directory. The `pigeon` command is its only client for now.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { timingSafeEqual } from "node:crypto";
import { decodeCard, encodeCard, fingerprint, formatAddress, mayMail, parseMailRequest, toHex, withinQuota } from "@pigeon/model";
import { mailsSentToday } from "./mail-quota.js";
import { MailboxError, type Contact, type Mailbox, type MessageView, type SyncEngine } from "@pigeon/sync";
import type { ContactInfo, Endpoint, Route, Routes, Status, Whoami } from "./control-api.js";
import type { HttpGuard } from "./http-guard.js";
import { WebApp } from "./web-app.js";

export interface ControlContext {
  mailbox: Mailbox;
  sync: SyncEngine;
  token: string;
  /** Host and Origin checks, shared with the WebSocket upgrades (http-guard.ts). */
  guard: HttpGuard;
  /** XMPP's HTTP upload and files (behind the guard, no token: the URLs are the capability). False: not its path. */
  xmppHttp?: (req: IncomingMessage, res: ServerResponse) => Promise<boolean>;
  info: () => Omit<Whoami, "address" | "fingerprint" | "signPublicKey">;
  /** The sync port's counts of connections that never proved who they are. */
  unproven: () => NonNullable<Status["unproven"]>;
  stop: () => void;
  /** More endpoints the shell adds (the school's, school.ts). */
  extraRoutes?: Partial<Routes<Endpoint>>;
  /** Serve the children's web app (web-app.ts) from this data directory's key. */
  webApp?: { dataDir: string };
}

/** The control server, and the web app it serves (if asked for). */
export interface ControlServer {
  server: Server;
  web?: WebApp;
}

const MAX_BODY = 64 * 1024;

export class HttpError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

/**
 * An e-mail the school's rules (signed, from the directory) do not let this person send is refused here,
 * before it leaves the laptop, without the gateway: the child is told at once, even with no way to the
 * gateway. So is one over today's quota, counted from this laptop's own messages (mail-quota.ts). The
 * gateway decides again (it alone asks teachers, and its count holds).
 */
async function mailAllowed(mailbox: Mailbox, body: string): Promise<void> {
  const request = parseMailRequest(body);
  if (!request.ok) return;
  let me, rules;
  try {
    me = mailbox.school.view()?.me;
    rules = mailbox.school.mailRules();
  } catch {
    return; // no school: the gateway answers
  }
  if (!rules || me?.status !== "vouched") return;
  const may = mayMail(rules, me, request.request.to);
  if (!may.ok) throw new HttpError(403, "not-allowed", `Not sent: ${may.reason} (your school's e-mail rules ${rules.serial}).`);
  const quota = withinQuota(rules, me, await mailsSentToday(mailbox, Date.now()));
  if (!quota.ok) throw new HttpError(403, "over-quota", `Not sent: ${quota.reason} (your school's e-mail rules ${rules.serial}).`);
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > MAX_BODY) throw new HttpError(413, "too-large", "request body too large");
    chunks.push(c);
  }
  if (n === 0) return {};
  try {
    const v = JSON.parse(Buffer.concat(chunks).toString("utf8")) as unknown;
    if (!v || typeof v !== "object" || Array.isArray(v)) throw new Error("not an object");
    return v as Record<string, unknown>;
  } catch {
    throw new HttpError(400, "bad-input", "request body is not a JSON object");
  }
}

function str(body: Record<string, unknown>, key: string): string {
  const v = body[key];
  if (typeof v !== "string") throw new HttpError(400, "bad-input", `"${key}" must be a string`);
  return v;
}

function isLoopback(addr: string | undefined): boolean {
  return !!addr && (addr.startsWith("127.") || addr === "::1" || addr.startsWith("::ffff:127."));
}

function contactInfoOf(c: Contact, mailbox?: Mailbox): ContactInfo {
  const vouch = mailbox?.vouchFor(c.signPublicKey);
  // someone calling themselves by an enrolled person's name is never listed as that person
  const mark = vouch?.status === "impostor" ? `#${fingerprint(c.signPublicKey).slice(0, 4)}` : "";
  return {
    address: formatAddress(c) + mark, fingerprint: fingerprint(c.signPublicKey), firstSeen: c.firstSeen, lastSeen: c.lastSeen, how: c.how,
    ...(c.petname ? { petname: c.petname } : {}),
    ...(vouch ? { vouch } : {}),
  };
}

/** What whoami says of the school, if this laptop belongs to one (or serves it). */
function whoamiSchool(mailbox: Mailbox): Pick<Whoami, "school"> {
  const s = mailbox.school.view();
  return s ? { school: { home: s.home, fingerprint: s.fingerprint, server: s.server, ...(s.me ? { me: s.me } : {}) } } : {};
}

/** What the mailbox alone answers (with the node running or stopped). */
export type MailboxEndpoint =
  | "GET /api/whoami" | "GET /api/inbox" | "GET /api/outbox" | "GET /api/waiting" | "GET /api/drafts" | "GET /api/contacts"
  | "GET /api/status" | "GET /api/card" | "GET /api/requests" | "GET /api/reports" | "POST /api/contacts" | "POST /api/contacts/rename"
  | "POST /api/contacts/remove" | "POST /api/requests/accept" | "POST /api/requests/ignore" | "POST /api/requests/report"
  | "POST /api/drafts" | "POST /api/drafts/delete" | "POST /api/show" | "POST /api/read-new" | "POST /api/read"
  | "GET /api/devices" | "POST /api/devices/revoke"
  | "GET /api/buddies" | "GET /api/nearby" | "POST /api/buddies/add" | "POST /api/buddies/remove" | "POST /api/buddies/rename"
  | "POST /api/buddies/block" | "POST /api/buddies/unblock" | "POST /api/buddies/group" | "POST /api/buddies/ungroup"
  | "GET /api/channels" | "POST /api/channels/create" | "POST /api/channels/add" | "POST /api/channels/remove" | "POST /api/channels/admin"
  | "POST /api/channels/close";

/** `?last=N` of a folder listing: its newest N (1 to 100,000); none: all of it. */
function lastOf(query: Record<string, unknown>): number | undefined {
  if (query.last === undefined) return undefined;
  const n = typeof query.last === "number" ? query.last : /^[0-9]{1,6}$/.test(String(query.last)) ? Number(query.last) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > 100_000) throw new HttpError(400, "bad-input", `"last" must be a whole number from 1 to 100000, got ${JSON.stringify(query.last)}`);
  return n;
}

function strings(body: Record<string, unknown>, key: string): string[] {
  const v = body[key] ?? [];
  if (!Array.isArray(v) || v.some((x) => typeof x !== "string") || v.length > 64) throw new HttpError(400, "bad-input", `"${key}" must be a list of at most 64 names`);
  return v as string[];
}

/** The mailbox's route for an endpoint, if it answers it without a running node. */
export function offlineRoute(routes: Partial<Routes<Endpoint>>, endpoint: Endpoint): Route<Endpoint> | undefined {
  return (Object.hasOwn(routes, endpoint) ? routes[endpoint] : undefined) as Route<Endpoint> | undefined;
}

/** A message by its id, or by the start of it (listings show the first 8 characters, in brackets). */
export async function findMessage(mailbox: Mailbox, text: string): Promise<MessageView> {
  const id = text.trim().toLowerCase().replace(/^\[(.*)\]$/, "$1");
  if (!/^[0-9a-f]{4,}$/.test(id))
    throw new HttpError(400, "bad-input", `"${text}" is not a message id: use the letters and digits in [brackets] in pigeon inbox (at least 4 of them)`);
  const exact = await mailbox.message(id);
  if (exact) return exact;
  const matches = await mailbox.messagesStartingWith(id, 10);
  if (matches.length === 1) return matches[0]!;
  if (matches.length > 1)
    throw new HttpError(400, "ambiguous", `${matches.length} messages start with ${id}: give more of the id (${matches.map((m) => m.id.slice(0, 12)).join(", ")})`);
  throw new HttpError(404, "not-found", `there is no message ${id} on this laptop (the ids are in [brackets] in pigeon inbox and pigeon outbox)`);
}

/**
 * What the mailbox alone answers: the same with the node running (over HTTP) and with it stopped
 * (the `pigeon` command opens the mailbox itself, offline.ts), so both print the same.
 */
export function mailboxRoutes(mailbox: Mailbox): Routes<MailboxEndpoint> {
  const contactInfo = (c: Contact) => contactInfoOf(c, mailbox);
  return {
    "GET /api/whoami": () => ({ address: mailbox.address, fingerprint: fingerprint(mailbox.me), signPublicKey: toHex(mailbox.me), ...whoamiSchool(mailbox) }),
    "GET /api/inbox": (q) => mailbox.inbox({ last: lastOf(q) }),
    "GET /api/channels": () => mailbox.channels(),
    "POST /api/channels/create": (b) => mailbox.createChannel(str(b, "title")),
    "POST /api/channels/add": (b) =>
      mailbox.addToChannel(str(b, "channel"), { addresses: strings(b, "who"), ...(b.class !== undefined ? { class: str(b, "class") } : {}) }),
    "POST /api/channels/remove": (b) => mailbox.removeFromChannel(str(b, "channel"), strings(b, "who")),
    "POST /api/channels/admin": (b) => {
      if (typeof b.admin !== "boolean") throw new HttpError(400, "bad-input", `"admin" must be true or false`);
      return mailbox.setChannelAdmin(str(b, "channel"), str(b, "who"), b.admin);
    },
    "POST /api/channels/close": (b) => mailbox.closeChannel(str(b, "channel")),
    "GET /api/outbox": (q) => mailbox.outbox({ last: lastOf(q) }),
    "GET /api/waiting": (q) => mailbox.waiting({ last: lastOf(q) }),
    "GET /api/drafts": () => mailbox.drafts(),
    "GET /api/contacts": () => mailbox.contacts().map(contactInfo),
    "GET /api/status": () => mailbox.status(),
    "GET /api/card": () => ({ card: encodeCard(mailbox.identity, mailbox.school.ownWord()) }),
    // a card the child was given: the person is known, and a buddy (the child chose them)
    "POST /api/contacts": async (b) => {
      let card;
      try {
        card = decodeCard(str(b, "card"));
      } catch (e) {
        throw new HttpError(400, "bad-input", (e as Error).message);
      }
      if (Buffer.from(card.signPublicKey).equals(Buffer.from(mailbox.me))) throw new HttpError(400, "bad-input", "that is your own card");
      await mailbox.addContact(card);
      return { address: formatAddress(card), fingerprint: fingerprint(card.signPublicKey) };
    },
    "POST /api/contacts/rename": async (b) => contactInfo(await mailbox.renameContact(str(b, "who"), str(b, "name"))),
    "POST /api/contacts/remove": async (b) => contactInfo(await mailbox.removeContact(str(b, "who"))),
    "GET /api/buddies": async () => ({ buddies: await mailbox.buddies(), blocked: await mailbox.blocked() }),
    "GET /api/nearby": () => mailbox.nearby(),
    "POST /api/buddies/add": (b) => mailbox.addBuddy(str(b, "who")),
    "POST /api/buddies/remove": (b) => mailbox.removeBuddy(str(b, "who")),
    "POST /api/buddies/rename": (b) => mailbox.renameBuddy(str(b, "who"), str(b, "name")),
    "POST /api/buddies/block": (b) => mailbox.blockBuddy(str(b, "who")),
    "POST /api/buddies/unblock": (b) => mailbox.unblockBuddy(str(b, "who")),
    "POST /api/buddies/group": (b) => mailbox.addToGroup(str(b, "who"), str(b, "group")),
    "POST /api/buddies/ungroup": (b) => mailbox.removeFromGroup(str(b, "who"), str(b, "group")),
    "GET /api/devices": () => mailbox.devices.list(),
    "POST /api/devices/revoke": (b) => mailbox.devices.revoke(str(b, "device"), b.reason === undefined ? undefined : str(b, "reason")),
    "GET /api/requests": () => mailbox.requests(),
    "GET /api/reports": () => mailbox.reports(),
    "POST /api/requests/accept": async (b) => contactInfo(await mailbox.acceptRequest(str(b, "who"))),
    "POST /api/requests/ignore": async (b) => contactInfo(await mailbox.decideRequest(str(b, "who"), "ignored")),
    "POST /api/requests/report": async (b) =>
      contactInfo(await mailbox.decideRequest(str(b, "who"), "reported", b.note === undefined ? undefined : str(b, "note"))),
    // with an id, the draft is changed in place (the web app saves as the child types)
    "POST /api/drafts": (b) => mailbox.saveDraft(str(b, "to"), str(b, "body"), b.id === undefined ? undefined : str(b, "id")),
    "POST /api/drafts/delete": async (b) => {
      const id = str(b, "id");
      await mailbox.deleteDraft(id);
      return { deleted: id };
    },
    // one message, in full; a received one that was new is marked read (the sender sees "read")
    "POST /api/show": async (b) => {
      const m = await findMessage(mailbox, str(b, "id"));
      // a request (from someone who is not a buddy) gets no receipt: the stranger does not learn it was read
      if (m.direction !== "in" || m.readAt !== undefined || m.request) return { message: m, marked: false };
      await mailbox.markRead([m.id]);
      return { message: (await mailbox.message(m.id)) ?? m, marked: true };
    },
    // the received messages not read yet, marked read as they are shown
    "POST /api/read-new": async () => {
      const unread = await mailbox.inbox({ unread: true });
      if (unread.length) await mailbox.markRead(unread.map((m) => m.id));
      const now = await Promise.all(unread.map(async (m) => (await mailbox.message(m.id)) ?? m));
      return { messages: now };
    },
    "POST /api/read": async (b) => {
      const ids = b.ids === undefined ? undefined : Array.isArray(b.ids) && b.ids.every((x) => typeof x === "string") ? (b.ids as string[]) : null;
      if (ids === null) throw new HttpError(400, "bad-input", `"ids" must be a list of message ids`);
      return { marked: await mailbox.markRead(ids) };
    },
  };
}

export function createControlServer(ctx: ControlContext): ControlServer {
  const { mailbox, sync } = ctx;
  const expected = Buffer.from(`Bearer ${ctx.token}`);
  const offline = mailboxRoutes(mailbox);
  const routes = {
    ...offline,
    ...ctx.extraRoutes,
    // what only a running node knows or does
    "GET /api/whoami": async (b) => ({ ...(await offline["GET /api/whoami"](b)), ...ctx.info() }),
    "GET /api/peers": () => sync.peers(),
    // who of the laptops met nearby is connected right now (only a running node knows)
    "GET /api/nearby": async () => {
      const now = new Set(sync.peers().map((p) => p.signPublicKey));
      return (await mailbox.nearby()).map((n) => ({ ...n, connected: now.has(n.signPublicKey) }));
    },
    "GET /api/status": () => ({ ...mailbox.status(), peers: sync.peers().length, unproven: ctx.unproven() }),
    "POST /api/send": async (b) => (await mailAllowed(mailbox, str(b, "body")), mailbox.send(str(b, "to"), str(b, "body"))),
    "POST /api/reply": async (b) => (await mailAllowed(mailbox, str(b, "body")), mailbox.reply(str(b, "id"), str(b, "body"))),
    "POST /api/channels/send": (b) => mailbox.sendToChannel(str(b, "channel"), str(b, "body")),
    "POST /api/drafts/send": (b) => mailbox.sendDraft(str(b, "id")),
    // pairing needs the node: the new device reaches it over the network while the window is open
    "POST /api/devices/pair": () => mailbox.devices.openPairing(),
    "POST /api/stop": () => {
      setImmediate(ctx.stop);
      return { stopping: true };
    },
  } as Routes<Endpoint>;
  const web = ctx.webApp ? new WebApp({ mailbox, sync, dataDir: ctx.webApp.dataDir, routes }) : undefined;

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const reply = (status: number, value: unknown) => {
      const text = JSON.stringify(value);
      res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(text) });
      res.end(text);
    };
    void (async () => {
      try {
        if (!isLoopback(req.socket.remoteAddress)) throw new HttpError(403, "forbidden", "the control API answers loopback only");
        const refused = ctx.guard.check(req);
        if (refused) throw new HttpError(refused.status, refused.code, refused.message);
        const path = (req.url ?? "/").split("?")[0]!;
        // the web app has its own session and CSRF checks (web-app.ts), not the command's token
        if (web && WebApp.owns(path)) return await web.handle(req, res, path);
        if (ctx.xmppHttp && (await ctx.xmppHttp(req, res))) return;
        const auth = Buffer.from(req.headers.authorization ?? "");
        if (auth.length !== expected.length || !timingSafeEqual(auth, expected)) throw new HttpError(401, "unauthorized", "missing or wrong token");
        const endpoint = `${req.method} ${path}`;
        if (!Object.hasOwn(routes, endpoint)) throw new HttpError(404, "not-found", `no such endpoint: ${req.method} ${path}`);
        const route = routes[endpoint as Endpoint] as Route<Endpoint>;
        // a GET's options are in its query (?last=50), a POST's in its JSON body
        const body = req.method === "POST" ? await readJson(req) : Object.fromEntries(new URLSearchParams((req.url ?? "").split("?")[1] ?? ""));
        reply(200, await route(body));
      } catch (e) {
        if (e instanceof HttpError) reply(e.status, { error: e.code, message: e.message });
        else if (e instanceof MailboxError) reply(e.code === "storage" ? 507 : e.code === "not-found" ? 404 : 400, { error: e.code, message: e.message });
        else reply(500, { error: "internal", message: (e as Error).message });
      }
    })();
  });
  return { server, web };
}
