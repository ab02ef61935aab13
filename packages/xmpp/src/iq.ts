// IQ requests (RFC 6120 §8.2.3), answered in one place. Handlers are registered by the type, the
// namespace and the name of the request's one child element (like xmpp.js's iq-callee) and return
// the result's payload, or throw a StanzaError. The registry sends exactly one reply to every get and
// set, whatever the handler does, and none to a result or an error: answering those could make two
// entities bounce errors forever (RFC 6120 §8.3.1).
import { NS } from "./ns.js";
import { el, isElement, type XmlElement } from "./xml.js";

export type StanzaErrorType = "cancel" | "modify" | "auth" | "wait";

/** A stanza error (RFC 6120 §8.3) a handler throws to refuse a request. */
export class StanzaError extends Error {
  readonly type: StanzaErrorType;

  /** `text` is shown to the user by some clients; "" sends no <text/>. */
  constructor(readonly condition: string, text = "", type?: StanzaErrorType) {
    super(text);
    this.type = type ?? defaultErrorType(condition);
  }
}

/** The error type RFC 6120 §8.3.3 gives each condition in its examples, as far as this server uses them. */
function defaultErrorType(condition: string): StanzaErrorType {
  switch (condition) {
    case "bad-request":
    case "jid-malformed":
    case "not-acceptable":
      return "modify";
    case "not-authorized":
      return "auth";
    case "resource-constraint":
      return "wait";
    default:
      return "cancel";
  }
}

export function iqError(iq: XmlElement, from: string, condition: string, type: StanzaErrorType, message?: string): XmlElement {
  return el(
    "iq",
    { type: "error", id: iq.attrs.id, from: iq.attrs.to ?? from, to: iq.attrs.from },
    el("error", { type }, el(condition, { xmlns: NS.stanzas }), message ? el("text", { xmlns: NS.stanzas, "xml:lang": "en" }, message) : undefined),
  );
}

/** What a handler answers: the result's payload, or nothing for an empty result. */
export type IqAnswer = XmlElement | undefined;
export type IqHandler<C> = (element: XmlElement, ctx: C) => IqAnswer | Promise<IqAnswer>;

export interface IqRegistryOptions {
  /** The `from` of replies to requests without a `to` (the server answers for the account). */
  from: string;
  /** Told about errors that are not StanzaErrors (answered internal-server-error) and failed sends. */
  onError?: (error: unknown, iq: XmlElement) => void;
}

export class IqRegistry<C> {
  private readonly handlers = new Map<string, IqHandler<C>>();

  constructor(private readonly opts: IqRegistryOptions) {}

  get(ns: string, name: string, handler: IqHandler<C>): this {
    return this.add("get", ns, name, handler);
  }

  set(ns: string, name: string, handler: IqHandler<C>): this {
    return this.add("set", ns, name, handler);
  }

  private add(type: "get" | "set", ns: string, name: string, handler: IqHandler<C>): this {
    const key = `${type} ${ns} ${name}`;
    // a second handler would silently shadow the first: a wiring mistake, so fail at start
    if (this.handlers.has(key)) throw new Error(`two IQ handlers for ${key}`);
    this.handlers.set(key, handler);
    return this;
  }

  /**
   * Answers `iq` through `send`: exactly once if it is a get or a set, never otherwise. `context`
   * makes the handler's context and may throw a StanzaError to refuse the request (e.g. for its `to`).
   * Never throws: a synchronous handler is answered before this returns, an asynchronous one later.
   */
  handle(iq: XmlElement, send: (reply: XmlElement) => void, context: () => C): void {
    const type = iq.attrs.type;
    if (type !== "get" && type !== "set") return;
    let answered = false;
    const answer = (reply: XmlElement) => {
      if (answered) return;
      answered = true;
      try {
        send(reply);
      } catch (e) {
        this.opts.onError?.(e, iq);
      }
    };
    const ok = (payload: IqAnswer) =>
      answer(el("iq", { type: "result", id: iq.attrs.id, from: iq.attrs.to ?? this.opts.from, to: iq.attrs.from }, payload));
    const fail = (e: unknown) => {
      if (!(e instanceof StanzaError)) this.opts.onError?.(e, iq);
      const err = e instanceof StanzaError ? e : new StanzaError("internal-server-error");
      answer(iqError(iq, this.opts.from, err.condition, err.type, err.message || undefined));
    };
    try {
      const ctx = context();
      const elements = iq.children.filter(isElement);
      if (elements.length !== 1 || !iq.attrs.id) throw new StanzaError("bad-request");
      const element = elements[0]!;
      const handler = this.handlers.get(`${type} ${element.attrs.xmlns} ${element.name}`);
      if (!handler) throw new StanzaError("service-unavailable");
      const r = handler(element, ctx);
      if (r instanceof Promise) void r.then(ok, fail);
      else ok(r);
    } catch (e) {
      fail(e);
    }
  }
}
