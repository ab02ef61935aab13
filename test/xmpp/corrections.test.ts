// Corrections (XEP-0308, issue 21): slixmpp on one node corrects its message; slixmpp on the peer's
// node gets the correction as a <replace/> of the original (not a second message), and the peer's
// `pigeon inbox` shows the corrected text once. A correction naming someone else's message arrives
// as a plain message and changes nothing. The same scenario against Prosody (reference).
import { afterAll, describe, expect, it } from "vitest";
import { cleanupAll, pigeonJson } from "../helpers.js";
import { announceSkip, befriend, missing, slix, startProsody, startXmppNode } from "./xmpp-helpers.js";

afterAll(cleanupAll);

const why = missing("slixmpp");
if (why) announceSkip("corrections", why);

type Got = { body: string; id: string; replace: string | null }[];

describe.skipIf(!!why)("corrections (XEP-0308)", () => {
  it("Pigeon: the peer's client gets a <replace/> of the original and the peer's inbox shows the fix once", async () => {
    const a = await startXmppNode("amara");
    const b = await startXmppNode("baraka", ["--peer", `127.0.0.1:${a.syncPort}`]);
    await befriend(a, b);
    const reader = slix({ jid: b.jid, password: b.password, port: b.xmppPort, scenario: "receive", count: 3, timeout: 20 });
    await new Promise((r) => setTimeout(r, 1500));
    const sent = await slix({
      jid: a.jid, password: a.password, port: a.xmppPort, scenario: "send", to: b.jid,
      bodies: ["see you at 5", "bring the ball"], corrections: [{ index: 0, body: "see you at 6" }], wait: "received", timeout: 20,
    });
    expect(sent.result.ok, JSON.stringify(sent.result)).toBe(true);
    // the correction is delivered like any message (Pigeon's signed receipt)
    expect(sent.result.receipts).toEqual(expect.arrayContaining(sent.result.ids as string[]));
    const got = (await reader).result.messages as Got;
    expect(got.map((m) => [m.body, m.replace])).toEqual([["see you at 5", null], ["bring the ball", null], ["see you at 6", got[0]!.id]]);
    const inbox = await pigeonJson<{ id: string; body: string; correctedAt?: number }[]>(b, "inbox");
    expect(inbox.map((m) => m.body)).toEqual(["see you at 6", "bring the ball"]);
    expect(inbox[0]!.id).toBe(got[0]!.id);
    expect(inbox[0]!.correctedAt).toBeGreaterThan(0);
    expect((await pigeonJson<{ body: string }[]>(a, "outbox")).map((m) => m.body)).toEqual(["see you at 6", "bring the ball"]);

    // baraka's client "corrects" amara's message: it goes as baraka's own new message; amara's stays
    const reader2 = slix({ jid: a.jid, password: a.password, port: a.xmppPort, scenario: "receive", count: 1, timeout: 20 });
    await new Promise((r) => setTimeout(r, 1500));
    const forged = await slix({
      jid: b.jid, password: b.password, port: b.xmppPort, scenario: "send", to: a.jid,
      bodies: [], corrections: [{ id: got[0]!.id, body: "see you never" }], wait: "received", timeout: 20,
    });
    expect(forged.result.ok).toBe(true);
    const got2 = (await reader2).result.messages as Got;
    expect(got2.map((m) => [m.body, m.replace])).toEqual([["see you never", null]]);
    expect((await pigeonJson<{ body: string }[]>(a, "outbox")).map((m) => m.body)).toEqual(["see you at 6", "bring the ball"]);
    expect((await pigeonJson<{ body: string }[]>(a, "inbox")).map((m) => m.body)).toEqual(["see you never"]);
  }, 120_000);

  it("Prosody (reference): the correction arrives as a <replace/> of the original", async () => {
    const p = await startProsody({ alice: "alice-password", bob: "bob-password" });
    const reader = slix({ jid: "bob@local", password: "bob-password", port: p.port, scenario: "receive", count: 3, timeout: 20 });
    await new Promise((r) => setTimeout(r, 1500));
    const sent = await slix({
      jid: "alice@local", password: "alice-password", port: p.port, scenario: "send", to: "bob@local",
      bodies: ["see you at 5", "bring the ball"], corrections: [{ index: 0, body: "see you at 6" }],
    });
    expect(sent.result.ok).toBe(true);
    const got = (await reader).result.messages as Got;
    expect(got.map((m) => [m.body, m.replace])).toEqual([["see you at 5", null], ["bring the ball", null], ["see you at 6", got[0]!.id]]);
  });
});
