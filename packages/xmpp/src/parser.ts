// The hardened streaming XML parser for an XMPP stream (RFC 6120 §11): saxes behind a StringDecoder
// (so a UTF-8 character split across two TCP reads is decoded whole), with our own limits.
//  - DOCTYPE, comments, processing instructions and entity references other than the five predefined
//    ones close the stream with <restricted-xml/>; any other syntax error with <not-well-formed/>.
//  - Elements nest at most `maxDepth` deep (the stream header is depth 1, a stanza depth 2).
//  - A stanza (and any run of whitespace between stanzas) is at most `maxStanzaChars` characters;
//    the check runs inside the parser's events, so an oversized or endless stanza is cut off while it
//    is still arriving, not after it was buffered, and one that arrived whole in a single chunk is
//    measured before it is handed over.
// After the first failure, and after the end of the stream, the parser ignores everything (the rest
// of the same chunk too): the caller closes the stream.
// Namespaces are resolved: every element of the tree carries its namespace in `attrs.xmlns` and its
// local name in `name`, whatever prefixes the sender used.
import { StringDecoder } from "node:string_decoder";
import { SaxesParser, type SaxesTagNS } from "saxes";
import type { XmlElement } from "./xml.js";

export type StreamErrorCondition =
  | "bad-format"
  | "conflict"
  | "connection-timeout"
  | "host-unknown"
  | "internal-server-error"
  | "invalid-namespace"
  | "not-authorized"
  | "not-well-formed"
  | "policy-violation"
  | "resource-constraint"
  | "restricted-xml"
  | "system-shutdown"
  | "undefined-condition"
  | "unsupported-encoding"
  | "unsupported-stanza-type"
  | "unsupported-version";

export class StreamError extends Error {
  constructor(readonly condition: StreamErrorCondition, message: string) {
    super(message);
    this.name = "StreamError";
  }
}

export interface StreamHeader {
  /** Local name and namespace of the root element (stream/http://etherx.jabber.org/streams). */
  name: string;
  xmlns: string;
  attrs: Record<string, string>;
  /** The default namespace in force for stanzas (jabber:client). */
  contentNamespace: string;
}

export interface ParserHandlers {
  streamStart(header: StreamHeader): void;
  stanza(stanza: XmlElement): void;
  streamEnd(): void;
  error(e: StreamError): void;
}

export interface ParserLimits {
  maxDepth?: number;
  maxStanzaChars?: number;
}

export const DEFAULT_MAX_DEPTH = 32;
export const UNAUTHENTICATED_MAX_STANZA = 10_000;
export const AUTHENTICATED_MAX_STANZA = 256 * 1024;

export class XmlStreamParser {
  private readonly sax: SaxesParser<{ xmlns: true }>;
  private readonly decoder = new StringDecoder("utf8");
  private readonly handlers: ParserHandlers;
  private readonly maxDepth: number;
  maxStanzaChars: number;
  private stack: XmlElement[] = [];
  private depth = 0;
  /** Parser position where the current stanza (or inter-stanza whitespace) began. */
  private boundary = 0;
  private failed = false;
  private writing = false;
  private consumed = 0;
  private ended = false;
  /** Completed top-level elements since the last `countStanzas()` call. */
  private completed = 0;

  constructor(handlers: ParserHandlers, limits: ParserLimits = {}) {
    this.handlers = handlers;
    this.maxDepth = limits.maxDepth ?? DEFAULT_MAX_DEPTH;
    this.maxStanzaChars = limits.maxStanzaChars ?? UNAUTHENTICATED_MAX_STANZA;
    this.sax = new SaxesParser({ xmlns: true, position: true });
    const sax = this.sax;
    sax.on("doctype", () => this.fail("restricted-xml", "DOCTYPE is not allowed in XMPP"));
    sax.on("comment", () => this.fail("restricted-xml", "comments are not allowed in XMPP"));
    sax.on("processinginstruction", () => this.fail("restricted-xml", "processing instructions are not allowed in XMPP"));
    sax.on("xmldecl", (d) => {
      if (d.version !== undefined && d.version !== "1.0") this.fail("unsupported-version", `XML version ${d.version}`);
      if (d.encoding !== undefined && d.encoding.toLowerCase() !== "utf-8") this.fail("unsupported-encoding", `encoding ${d.encoding}`);
    });
    sax.on("error", (e) => {
      const msg = e.message;
      if (/entity/i.test(msg)) this.fail("restricted-xml", `only the predefined entities are allowed (${msg})`);
      else this.fail("not-well-formed", msg);
    });
    sax.on("opentagstart", () => {
      if (this.depth + 1 > this.maxDepth) this.fail("policy-violation", `elements nested deeper than ${this.maxDepth}`);
      this.checkSize();
    });
    sax.on("opentag", (tag) => this.open(tag));
    sax.on("closetag", () => this.close());
    sax.on("text", (t) => this.textNode(t));
    sax.on("cdata", (t) => this.textNode(t));
  }

  /** Feeds bytes (or already-decoded text, for WebSocket frames). */
  write(chunk: Buffer | string): void {
    if (this.failed || this.ended) return;
    const s = typeof chunk === "string" ? chunk : this.decoder.write(chunk);
    if (s.length === 0) return;
    try {
      this.writing = true;
      this.sax.write(s);
      this.writing = false;
      this.consumed += s.length;
      this.checkSize();
    } catch (e) {
      this.writing = false;
      if (e instanceof Abort) return;
      this.fail("not-well-formed", (e as Error).message, false);
    }
  }

  /** How many top-level elements completed since the last call (WebSocket: one per message). */
  takeCompleted(): number {
    const n = this.completed;
    this.completed = 0;
    return n;
  }

  get atTopLevel(): boolean {
    return this.depth <= 1;
  }

  get hasFailed(): boolean {
    return this.failed;
  }

  /** Characters consumed so far (saxes' own `position` is only right inside its events). */
  private pos(): number {
    return this.writing ? this.sax.position : this.consumed;
  }

  private checkSize(): void {
    if (this.pos() - this.boundary > this.maxStanzaChars)
      this.fail("policy-violation", `stanza larger than ${this.maxStanzaChars} characters`);
  }

  private fail(condition: StreamErrorCondition, message: string, abort = true): void {
    if (this.failed) {
      if (abort) throw new Abort();
      return;
    }
    this.failed = true;
    this.stack = [];
    this.handlers.error(new StreamError(condition, message));
    if (abort) throw new Abort();
  }

  private open(tag: SaxesTagNS): void {
    this.depth++;
    const attrs: Record<string, string> = {};
    for (const a of Object.values(tag.attributes)) {
      if (a.name === "xmlns") continue;
      attrs[a.name] = a.value;
    }
    attrs.xmlns = tag.uri;
    if (this.depth === 1) {
      this.checkSize(); // the header too, when it arrived whole in one chunk
      this.boundary = this.pos();
      this.handlers.streamStart({ name: tag.local, xmlns: tag.uri, attrs, contentNamespace: tag.ns[""] ?? "" });
      if (tag.isSelfClosing) this.ended = true; // a WebSocket-style <open/> arrives through its own parser
      return;
    }
    const e: XmlElement = { name: tag.local, attrs, children: [] };
    const parent = this.stack[this.stack.length - 1];
    if (parent) parent.children.push(e);
    this.stack.push(e);
  }

  private close(): void {
    this.depth--;
    if (this.depth === 0) {
      this.ended = true;
      this.handlers.streamEnd();
      throw new Abort(); // nothing after the end of the stream is read, even in the same chunk
    }
    const e = this.stack.pop();
    if (this.depth === 1 && e) {
      this.checkSize(); // a stanza that arrived whole in one chunk was not measured yet
      this.boundary = this.pos();
      this.completed++;
      this.handlers.stanza(e);
    }
  }

  private textNode(t: string): void {
    if (this.depth <= 1) {
      // between stanzas only whitespace (keepalives) may appear
      if (/[^ \t\r\n]/.test(t)) this.fail("not-well-formed", "text outside a stanza");
      this.checkSize();
      this.boundary = this.pos();
      return;
    }
    const parent = this.stack[this.stack.length - 1];
    if (!parent) return;
    const last = parent.children[parent.children.length - 1];
    if (typeof last === "string") parent.children[parent.children.length - 1] = last + t;
    else parent.children.push(t);
  }
}

class Abort extends Error {}
