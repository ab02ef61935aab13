// Nothing advertised that is not served (issue 21): slixmpp reads what the server and the account
// advertise in disco#info and uses each feature the way a client does. On Pigeon every advertised
// feature must be one the script knows how to use, and each use must get a result; on Prosody
// (reference) the features the script knows are answered the same way.
import { afterAll, describe, expect, it } from "vitest";
import { cleanupAll } from "../helpers.js";
import { announceSkip, missing, slix, startProsody, startXmppNode } from "./xmpp-helpers.js";

afterAll(cleanupAll);

const why = missing("slixmpp");
if (why) announceSkip("advertised features are served", why);

const REFUSALS = ["service-unavailable", "feature-not-implemented", "not-allowed", "item-not-found", "bad-request"];

describe.skipIf(!!why)("advertised features are served", () => {
  it("Pigeon: every feature in disco#info (server and account) answers a client's request", async () => {
    const a = await startXmppNode("amara");
    const r = await slix({ jid: a.jid, password: a.password, port: a.xmppPort, scenario: "advertised" });
    expect(r.result.ok, JSON.stringify(r.result) + r.stderr.slice(-2000)).toBe(true);
    const served = r.result.served as Record<string, string>;
    const notServed = Object.entries(served).filter(([, v]) => v !== "result" && v !== "no request");
    expect(notServed, JSON.stringify(served)).toEqual([]);
    expect(served["urn:xmpp:blocking"]).toBe("result");
    expect(served["jabber:iq:roster"]).toBe("result");
  });

  it("Prosody (reference): the same uses are answered", async () => {
    const p = await startProsody({ alice: "alice-password" });
    const r = await slix({ jid: "alice@local", password: "alice-password", port: p.port, scenario: "advertised" });
    expect(r.result.ok, JSON.stringify(r.result) + r.stderr.slice(-2000)).toBe(true);
    const served = r.result.served as Record<string, string>;
    const refused = Object.entries(served).filter(([, v]) => REFUSALS.includes(v));
    expect(refused, JSON.stringify(served)).toEqual([]);
    expect(served["urn:xmpp:blocking"]).toBe("result");
  });
});
