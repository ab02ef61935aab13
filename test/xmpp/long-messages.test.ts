// Long messages (issue 21): a message over one Pigeon message (8,000 characters) arrives at the peer
// as consecutive parts that join to the original; one over 32,000 characters is refused with an error
// that says the limit, and nothing of it arrives. slixmpp on both sides, across two Pigeon nodes; the
// same sends against Prosody (reference: it delivers both whole).
import { afterAll, describe, expect, it } from "vitest";
import { cleanupAll, pigeonJson } from "../helpers.js";
import { announceSkip, befriend, missing, slix, startProsody, startXmppNode } from "./xmpp-helpers.js";

afterAll(cleanupAll);

const why = missing("slixmpp");
if (why) announceSkip("long messages", why);

// a story of 20,000 characters in lines and words, and a 200 KB paste
const story = Array.from({ length: 500 }, (_, i) => `Line ${i}: the pigeon flew over the school and back again.`).join("\n").slice(0, 20_000);
const paste = "All work and no play. ".repeat(10_000).slice(0, 200 * 1024);

describe.skipIf(!!why)("long messages", () => {
  it("Pigeon: 20,000 characters arrive as three parts that join to the story; 200 KB is refused, saying the limit", async () => {
    const a = await startXmppNode("amara");
    const b = await startXmppNode("baraka", ["--peer", `127.0.0.1:${a.syncPort}`]);
    await befriend(a, b);
    const reader = slix({ jid: b.jid, password: b.password, port: b.xmppPort, scenario: "receive", count: 4, timeout: 20 });
    await new Promise((r) => setTimeout(r, 1500));
    const sent = await slix({ jid: a.jid, password: a.password, port: a.xmppPort, scenario: "send", to: b.jid, bodies: [story, paste, "the end"], errors: 1 });
    expect(sent.result.ok, JSON.stringify(sent.result).slice(0, 2000)).toBe(true);
    const errors = sent.result.errors as { id: string; condition: string; text: string }[];
    expect(errors.map((e) => [e.id, e.condition])).toEqual([[(sent.result.ids as string[])[1], "not-acceptable"]]);
    expect(errors[0]!.text).toMatch(/204800 characters; the longest message is 32000 characters/);
    const got = (await reader).result.messages as { body: string }[];
    const bodies = got.map((m) => m.body);
    expect(bodies.length).toBe(4);
    expect(bodies.slice(0, 3).join("")).toBe(story);
    for (const p of bodies) expect(p.length).toBeLessThanOrEqual(8000);
    expect(bodies[3]).toBe("the end");
    const inbox = await pigeonJson<{ body: string }[]>(b, "inbox");
    expect(inbox.some((m) => m.body.startsWith("All work"))).toBe(false);
  });

  it("Prosody (reference): both arrive whole", async () => {
    const p = await startProsody({ alice: "alice-password", bob: "bob-password" });
    const reader = slix({ jid: "bob@local", password: "bob-password", port: p.port, scenario: "receive", count: 3, timeout: 20 });
    await new Promise((r) => setTimeout(r, 1500));
    await slix({ jid: "alice@local", password: "alice-password", port: p.port, scenario: "send", to: "bob@local", bodies: [story, paste, "the end"] });
    const bodies = ((await reader).result.messages as { body: string }[]).map((m) => m.body);
    expect(bodies).toEqual([story, paste, "the end"]);
  });
});
