// Typing states (XEP-0085, issue 21) between two nodes connected right now: slixmpp on amara's node
// types to baraka (composing, paused, composing, then the message with <active/>), and slixmpp on
// baraka's node sees those states from amara, in order, as they happen. They are live only: a client
// that logs in afterwards gets the message from the offline queue but no state. The same scenario
// against Prosody (reference).
import { afterAll, describe, expect, it } from "vitest";
import { cleanupAll, pigeonJson } from "../helpers.js";
import { announceSkip, befriend, missing, slix, startProsody, startXmppNode } from "./xmpp-helpers.js";

afterAll(cleanupAll);

const why = missing("slixmpp");
if (why) announceSkip("chat states", why);

type States = { from: string; state: string }[];
const typed = ["composing", "paused", "composing"];

describe.skipIf(!!why)("chat states (XEP-0085)", () => {
  it("Pigeon: the peer's client sees composing, paused, composing, active from the buddy; nothing is kept for later", async () => {
    const a = await startXmppNode("amara");
    const b = await startXmppNode("baraka", ["--peer", `127.0.0.1:${a.syncPort}`]);
    await befriend(a, b);
    const watcher = slix({ jid: b.jid, password: b.password, port: b.xmppPort, scenario: "watch", states: 4, count: 1, timeout: 20 });
    await new Promise((r) => setTimeout(r, 1500));
    const typing = await slix({ jid: a.jid, password: a.password, port: a.xmppPort, scenario: "typing", to: b.jid, states: typed, body: "hello" });
    expect(typing.result.ok, JSON.stringify(typing.result)).toBe(true);
    const seen = (await watcher).result;
    const states = seen.states as States;
    expect(states.map((s) => [s.from, s.state])).toEqual([...typed, "active"].map((s) => [a.jid, s]));
    expect((seen.messages as { body: string }[]).map((m) => m.body)).toEqual(["hello"]);
    // not stored: a client logging in now gets no state (the message was taken by the first client)
    const later = await slix({ jid: b.jid, password: b.password, port: b.xmppPort, scenario: "watch", states: 1, timeout: 3 });
    expect(later.result.states).toEqual([]);
    expect((await pigeonJson<{ body: string }[]>(b, "inbox")).map((m) => m.body)).toEqual(["hello"]);
  }, 120_000);

  it("Prosody (reference): the same states arrive", async () => {
    const p = await startProsody({ alice: "alice-password", bob: "bob-password" });
    const watcher = slix({ jid: "bob@local", password: "bob-password", port: p.port, scenario: "watch", states: 4, count: 1, timeout: 20 });
    await new Promise((r) => setTimeout(r, 1500));
    await slix({ jid: "alice@local", password: "alice-password", port: p.port, scenario: "typing", to: "bob@local", states: typed, body: "hello" });
    const states = (await watcher).result.states as States;
    expect(states.map((s) => s.state)).toEqual([...typed, "active"]);
  });
});
