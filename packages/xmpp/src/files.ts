// Files and drawings. HTTP upload (XEP-0363): the server offers upload slots (it is its own upload
// service: identity store/file on the domain, with max-file-size); the client PUTs the file to the
// node's loopback HTTP server (behind the same Host/Origin guard as everything there), then sends a
// message whose text is the slot's URL; that message goes to the buddy as a Pigeon file message (the
// file sealed inside it, MAX_FILE_BYTES at most: see conversation.ts). A file message or a drawing
// from the web app (stroke data) reaches the user's clients as a URL on this node (XEP-0066 OOB), which
// serves the file, or the drawing as an SVG the node draws itself (drawingSvg: numbers and a fixed
// palette only).
// What is served is a child's picture on a loopback port that web pages can reach: only pictures
// (PNG, JPEG, GIF, WebP and the node's own drawings) are shown inline; anything else is a download
// (application/octet-stream), and every answer forbids scripts (CSP sandbox, nosniff), so an uploaded
// HTML or SVG file cannot run on the node's origin.
import { randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { decodeDrawing, drawingSvg, MAX_FILE_BYTES } from "@pigeon/model";
import type { MessageView } from "@pigeon/sync";
import type { Account, Iqs } from "./account.js";
import { StanzaError } from "./iq.js";
import { NS } from "./ns.js";
import { el, type XmlElement } from "./xml.js";

export const UPLOAD_PATH = "/xmpp-upload/";
export const FILES_PATH = "/xmpp-files/";
/** Slots given out and not yet used, at most; a slot lasts 5 minutes. */
const MAX_SLOTS = 16;
const SLOT_MS = 5 * 60_000;
const INLINE = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);

interface Slot {
  name: string;
  size: number;
  type: string;
  at: number;
  bytes?: Uint8Array;
}

/** XEP-0363's form in the domain's disco#info: the limit, so clients refuse a bigger file before uploading. */
export function uploadForm(): XmlElement {
  return el(
    "x", { xmlns: NS.data, type: "result" },
    el("field", { var: "FORM_TYPE", type: "hidden" }, el("value", {}, NS.upload)),
    el("field", { var: "max-file-size" }, el("value", {}, String(MAX_FILE_BYTES))),
  );
}

export class Files {
  private readonly slots = new Map<string, Slot>();

  /** `base()`: the node's loopback HTTP origin (http://127.0.0.1:PORT), once known. */
  constructor(private readonly a: Account, private readonly base: () => string | undefined) {}

  get available(): boolean {
    return this.base() !== undefined;
  }

  register(iq: Iqs): void {
    iq.get(NS.upload, "request", (r, { to }) => {
      const base = this.base();
      if (to.kind !== "domain" || !base) throw new StanzaError("service-unavailable");
      const size = Number(r.attrs.size);
      const name = (r.attrs.filename ?? "").replace(/[\u0000-\u001f/\\]/g, "").slice(0, 200);
      if (!name || !Number.isSafeInteger(size) || size <= 0) throw new StanzaError("bad-request", "a slot needs a file name and a size");
      if (size > MAX_FILE_BYTES)
        throw new StanzaError("not-acceptable", `the file is ${size} bytes; a file travels between laptops only up to ${MAX_FILE_BYTES} bytes (${MAX_FILE_BYTES / 1024} KiB)`, "modify");
      this.expire();
      if (this.slots.size >= MAX_SLOTS) throw new StanzaError("resource-constraint", "too many uploads at once: try again in a few minutes", "wait");
      const type = /^[a-z]+\/[a-z0-9][a-z0-9.+-]{0,80}$/.test(r.attrs["content-type"] ?? "") ? r.attrs["content-type"]! : "application/octet-stream";
      const token = randomBytes(16).toString("hex");
      this.slots.set(token, { name, size, type, at: this.a.now() });
      const url = `${base}${UPLOAD_PATH}${token}/${encodeURIComponent(name)}`;
      return el("slot", { xmlns: NS.upload }, el("put", { url }), el("get", { url }));
    });
  }

  private expire(): void {
    const now = this.a.now();
    for (const [t, s] of this.slots) if (now - s.at > SLOT_MS) this.slots.delete(t);
  }

  /** A client's message whose text is one of our upload URLs, with the file uploaded: the file to send. */
  uploaded(body: string): { token: string; name: string; type: string; bytes: Uint8Array } | undefined {
    const base = this.base();
    if (!base) return undefined;
    const m = new RegExp(`^${base.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}${UPLOAD_PATH}([0-9a-f]{32})/[^\\s]*$`).exec(body.trim());
    const slot = m ? this.slots.get(m[1]!) : undefined;
    if (!slot?.bytes) return undefined;
    return { token: m![1]!, name: slot.name, type: slot.type, bytes: slot.bytes };
  }

  /** The file went as Pigeon message `id`: the upload URL keeps working, from the message. */
  sent(token: string, id: string): void {
    this.slots.delete(token);
    this.a.store.setMeta(`upload:${token}`, id);
  }

  /** How a message with a file, or a drawing, is shown to XMPP clients: its URL here, else undefined. */
  urlOf(v: MessageView): string | undefined {
    const base = this.base();
    if (!base) return undefined;
    if (v.file) return `${base}${FILES_PATH}${v.id}/${encodeURIComponent(v.body)}`;
    if (decodeDrawing(v.body)) return `${base}${FILES_PATH}${v.id}/drawing.svg`;
    return undefined;
  }

  /** Answers /xmpp-upload/ and /xmpp-files/ requests (the caller checked Host and Origin); false for other paths. */
  async handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<boolean> {
    if (path.startsWith(UPLOAD_PATH)) {
      const token = /^([0-9a-f]{32})\//.exec(path.slice(UPLOAD_PATH.length))?.[1];
      if (!token) return this.answer(res, 404, "no such upload");
      if (req.method === "PUT") return this.put(req, res, token);
      if (req.method !== "GET" && req.method !== "HEAD") return this.answer(res, 405, "PUT or GET");
      const slot = this.slots.get(token);
      if (slot?.bytes) return this.serve(res, slot.name, slot.type, slot.bytes, req.method === "HEAD");
      const id = this.a.store.meta(`upload:${token}`);
      return id ? this.serveMessage(res, id, req.method === "HEAD") : this.answer(res, 404, "no such upload");
    }
    if (path.startsWith(FILES_PATH)) {
      if (req.method !== "GET" && req.method !== "HEAD") return this.answer(res, 405, "GET only");
      const id = /^([0-9a-f]{24})\//.exec(path.slice(FILES_PATH.length))?.[1];
      return id ? this.serveMessage(res, id, req.method === "HEAD") : this.answer(res, 404, "no such file");
    }
    return false;
  }

  private async put(req: IncomingMessage, res: ServerResponse, token: string): Promise<boolean> {
    this.expire();
    const slot = this.slots.get(token);
    if (!slot || slot.bytes) return this.answer(res, 404, "no such slot (or it was used)");
    if (Number(req.headers["content-length"]) !== slot.size) return this.answer(res, 400, `the slot is for ${slot.size} bytes`);
    const chunks: Buffer[] = [];
    let got = 0;
    for await (const c of req as AsyncIterable<Buffer>) {
      got += c.length;
      if (got > slot.size) return this.answer(res, 413, `the slot is for ${slot.size} bytes`);
      chunks.push(c);
    }
    if (got !== slot.size) return this.answer(res, 400, `the slot is for ${slot.size} bytes`);
    slot.bytes = new Uint8Array(Buffer.concat(chunks));
    res.writeHead(201, { "content-length": 0 });
    res.end();
    return true;
  }

  private async serveMessage(res: ServerResponse, id: string, head: boolean): Promise<boolean> {
    const v = await this.a.mailbox.message(id);
    // not requests (from someone not a buddy) nor anything from someone blocked
    if (!v || v.request || v.blocked) return this.answer(res, 404, "no such file");
    if (v.file) {
      const f = await this.a.mailbox.file(id);
      return f ? this.serve(res, f.name, f.type, f.bytes, head) : this.answer(res, 404, "no such file");
    }
    const strokes = decodeDrawing(v.body);
    if (!strokes) return this.answer(res, 404, "no such file");
    return this.serve(res, "drawing.svg", "image/svg+xml", Buffer.from(drawingSvg(strokes)), head, true);
  }

  private serve(res: ServerResponse, name: string, type: string, bytes: Uint8Array, head: boolean, ours = false): boolean {
    const inline = ours || INLINE.has(type);
    res.writeHead(200, {
      "content-type": inline ? type : "application/octet-stream",
      "content-length": bytes.length,
      "content-disposition": `${inline ? "inline" : "attachment"}; filename*=UTF-8''${encodeURIComponent(name)}`,
      "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
      "x-content-type-options": "nosniff",
      "cache-control": "private, max-age=86400",
    });
    res.end(head ? undefined : Buffer.from(bytes));
    return true;
  }

  private answer(res: ServerResponse, status: number, text: string): boolean {
    res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "x-content-type-options": "nosniff", "content-length": Buffer.byteLength(text) });
    res.end(text);
    return true;
  }
}
