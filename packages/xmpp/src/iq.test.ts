// The IQ registry alone: one reply to every get and set whatever the handler does, none to results
// and errors, and the errors RFC 6120 asks for.
import { describe, expect, it } from "vitest";
import { IqRegistry, StanzaError } from "./iq.js";
import { NS } from "./ns.js";
import { child, childText, el, type XmlElement } from "./xml.js";

const PING = "urn:xmpp:ping";

function request(type: string, ...kids: XmlElement[]): XmlElement {
  return el("iq", { type, id: "q1", from: "amara@local/laptop" }, ...kids);
}

/** A registry with a recording `send`, and the errors it reports. */
function setup() {
  const errors: unknown[] = [];
  const iq = new IqRegistry<string>({ from: "amara@local", onError: (e) => errors.push(e) });
  const sent: XmlElement[] = [];
  const handle = (stanza: XmlElement, send: (r: XmlElement) => void = (r) => sent.push(r)) => iq.handle(stanza, send, () => "ctx");
  return { iq, sent, errors, handle };
}

function condition(reply: XmlElement): string | undefined {
  const error = child(reply, "error");
  return error ? child(error, undefined, NS.stanzas)?.name : undefined;
}

const tick = () => new Promise((r) => setImmediate(r));

describe("IqRegistry", () => {
  it("gives a registered handler its element and context, and answers with its payload", () => {
    const { iq, sent, handle } = setup();
    const seen: [string, string][] = [];
    iq.get("urn:example:time", "time", (e, ctx) => {
      seen.push([e.name, ctx]);
      return el("time", { xmlns: "urn:example:time" }, "noon");
    });
    handle(request("get", el("time", { xmlns: "urn:example:time" })));
    expect(seen).toEqual([["time", "ctx"]]);
    // answered before handle returns: a reply keeps its place among the stanzas that follow it
    expect(sent).toHaveLength(1);
    expect(sent[0]!.attrs).toEqual({ type: "result", id: "q1", from: "amara@local", to: "amara@local/laptop" });
    expect(childText(sent[0]!, "time")).toBe("noon");
  });

  it("answers an empty result when the handler returns nothing, from the `to` it was sent to", () => {
    const { iq, sent, handle } = setup();
    iq.get(PING, "ping", () => undefined);
    handle({ ...request("get", el("ping", { xmlns: PING })), attrs: { type: "get", id: "q2", to: "local", from: "amara@local/x" } });
    expect(sent).toEqual([el("iq", { type: "result", id: "q2", from: "local", to: "amara@local/x" })]);
  });

  it("answers service-unavailable for an unknown namespace, an unknown element, or the other type", () => {
    const { iq, sent, handle } = setup();
    iq.get(PING, "ping", () => undefined);
    handle(request("get", el("query", { xmlns: "urn:example:nothing" })));
    handle(request("get", el("pong", { xmlns: PING })));
    handle(request("set", el("ping", { xmlns: PING })));
    expect(sent.map((r) => [r.attrs.type, condition(r), child(r, "error")!.attrs.type])).toEqual([
      ["error", "service-unavailable", "cancel"],
      ["error", "service-unavailable", "cancel"],
      ["error", "service-unavailable", "cancel"],
    ]);
    expect(sent.every((r) => r.attrs.from === "amara@local" && r.attrs.to === "amara@local/laptop" && r.attrs.id === "q1")).toBe(true);
  });

  it("answers bad-request for no child, two children, or no id", () => {
    const { iq, sent, handle } = setup();
    iq.get(PING, "ping", () => undefined);
    handle(request("get"));
    handle(request("get", el("ping", { xmlns: PING }), el("ping", { xmlns: PING })));
    handle(el("iq", { type: "get" }, el("ping", { xmlns: PING })));
    expect(sent.map(condition)).toEqual(["bad-request", "bad-request", "bad-request"]);
  });

  it("answers a thrown StanzaError with its condition, type and text", () => {
    const { iq, sent, errors, handle } = setup();
    iq.set("jabber:iq:roster", "query", () => {
      throw new StanzaError("not-allowed", "the buddy list fills itself");
    });
    iq.get("urn:xmpp:mam:2", "query", () => {
      throw new StanzaError("feature-not-implemented", "", "modify");
    });
    handle(request("set", el("query", { xmlns: "jabber:iq:roster" })));
    handle(request("get", el("query", { xmlns: "urn:xmpp:mam:2" })));
    expect(sent.map((r) => [condition(r), child(r, "error")!.attrs.type])).toEqual([["not-allowed", "cancel"], ["feature-not-implemented", "modify"]]);
    expect(childText(child(sent[0]!, "error")!, "text")).toBe("the buddy list fills itself");
    expect(child(child(sent[1]!, "error")!, "text")).toBeUndefined();
    expect(errors).toEqual([]); // refusals are not failures
  });

  it("answers internal-server-error when a handler fails unexpectedly, and reports the failure", async () => {
    const { iq, sent, errors, handle } = setup();
    iq.get("urn:example:a", "a", () => {
      throw new TypeError("oops");
    });
    iq.get("urn:example:b", "b", async () => {
      await tick();
      throw new Error("disk gone");
    });
    handle(request("get", el("a", { xmlns: "urn:example:a" })));
    handle(request("get", el("b", { xmlns: "urn:example:b" })));
    expect(sent.map(condition)).toEqual(["internal-server-error"]);
    await tick();
    await tick();
    expect(sent.map(condition)).toEqual(["internal-server-error", "internal-server-error"]);
    expect(errors.map((e) => (e as Error).message)).toEqual(["oops", "disk gone"]);
  });

  it("answers an asynchronous handler once it settles, exactly once", async () => {
    const { iq, sent, handle } = setup();
    let finish!: (e: XmlElement) => void;
    iq.set("urn:xmpp:mam:2", "query", () => new Promise<XmlElement>((r) => (finish = r)));
    handle(request("set", el("query", { xmlns: "urn:xmpp:mam:2" })));
    expect(sent).toEqual([]);
    finish(el("fin", { xmlns: "urn:xmpp:mam:2" }));
    await tick();
    expect(sent.map((r) => [r.attrs.type, (r.children[0] as XmlElement).name])).toEqual([["result", "fin"]]);
  });

  it("sends no second reply when sending the first one fails", () => {
    const { iq, errors, handle } = setup();
    iq.get(PING, "ping", () => undefined);
    let calls = 0;
    expect(() =>
      handle(request("get", el("ping", { xmlns: PING })), () => {
        calls++;
        throw new Error("socket gone");
      }),
    ).not.toThrow();
    expect(calls).toBe(1);
    expect(errors.map((e) => (e as Error).message)).toEqual(["socket gone"]);
  });

  it("answers a refusal from the context instead of calling the handler", () => {
    const errors: unknown[] = [];
    const iq = new IqRegistry<string>({ from: "amara@local", onError: (e) => errors.push(e) });
    let called = false;
    iq.get(PING, "ping", () => void (called = true));
    const sent: XmlElement[] = [];
    iq.handle(request("get", el("ping", { xmlns: PING })), (r) => sent.push(r), () => {
      throw new StanzaError("jid-malformed");
    });
    expect(called).toBe(false);
    expect(sent.map((r) => [condition(r), child(r, "error")!.attrs.type])).toEqual([["jid-malformed", "modify"]]);
  });

  it("never answers results, errors or IQs of no known type, even for a registered element", () => {
    const { iq, sent, handle } = setup();
    let called = 0;
    iq.get(PING, "ping", () => void called++);
    for (const type of ["result", "error", "", "chat"]) handle(request(type, el("ping", { xmlns: PING })));
    handle(el("iq", { id: "q9" }, el("ping", { xmlns: PING })));
    handle(request("error")); // no child at all: still no bad-request back
    expect(sent).toEqual([]);
    expect(called).toBe(0);
  });

  it("refuses two handlers for the same request", () => {
    const { iq } = setup();
    iq.get(PING, "ping", () => undefined);
    expect(() => iq.get(PING, "ping", () => undefined)).toThrow(/two IQ handlers/);
    expect(() => iq.set(PING, "ping", () => undefined)).not.toThrow();
  });
});
