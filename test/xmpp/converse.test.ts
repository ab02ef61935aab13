// Converse.js in headless Chromium over WebSocket: log in, send and receive, see the delivered tick.
// End to end: Converse on node A, slixmpp on node B, two Pigeon nodes; the message crosses by Pigeon
// sync and the receipt comes back. The same Converse script runs against Prosody first.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cleanupAll, onCleanup, pigeonJson, ROOT } from "../helpers.js";
import { startConverse } from "./clients/converse.js";
import { announceSkip, befriend, freePort, missing, slix, startProsody, startXmppNode, waitFor } from "./xmpp-helpers.js";

afterAll(cleanupAll);

const why = missing("chromium") ?? missing("slixmpp");
if (why) announceSkip("Converse.js in Chromium", why);
const ARTIFACTS = join(ROOT, "test-artifacts");

describe.skipIf(!!why)("Converse.js (WebSocket) in headless Chromium", () => {
  it("against Prosody (reference): log in, send, delivered tick, receive", async () => {
    const p = await startProsody({ alice: "alice-password", bob: "bob-password" });
    const bob = slix({ jid: "bob@local", password: "bob-password", port: p.port, scenario: "receive", count: 1, auto_ack: true, timeout: 40 });
    const c = await startConverse({ websocket: p.websocket, jid: "alice@local", password: "alice-password" });
    onCleanup(() => c.close());
    await new Promise((r) => setTimeout(r, 1000));
    const id = await c.send("bob@local", "hello bob from converse");
    const got = await bob;
    expect((got.result.messages as { body: string }[]).map((m) => m.body)).toEqual(["hello bob from converse"]);
    await waitFor(() => c.received("bob@local", id), "the delivered tick in Converse", 20_000);
  });

  it("end to end: Converse on node A, slixmpp on node B, across Pigeon sync, and the tick comes back", async () => {
    // Converse is served from another origin than the node's: the node must be told to allow it
    const pagePort = await freePort();
    const a = await startXmppNode("amara", ["--allow-origin", `http://127.0.0.1:${pagePort}`]);
    const b = await startXmppNode("baraka", ["--peer", `127.0.0.1:${a.syncPort}`]);
    await befriend(a, b); // met nearby, and made each other buddies
    const c = await startConverse({ websocket: a.websocket, jid: a.jid, password: a.password, port: pagePort });
    onCleanup(() => c.close());
    const reader = slix({ jid: b.jid, password: b.password, port: b.xmppPort, scenario: "receive", count: 1, timeout: 40 });
    await new Promise((r) => setTimeout(r, 1500));
    const id = await c.send(b.jid, "hello baraka, from Converse");
    const got = await reader;
    expect((got.result.messages as { body: string; from: string }[]).map((m) => [m.from, m.body])).toEqual([[a.jid, "hello baraka, from Converse"]]);
    // Pigeon's signed delivered receipt from baraka's node becomes Converse's tick
    await waitFor(() => c.received(b.jid, id), "the delivered tick in Converse", 20_000);
    // and back: slixmpp on B writes to amara, Converse shows it
    const back = await slix({ jid: b.jid, password: b.password, port: b.xmppPort, scenario: "send", to: a.jid, bodies: ["hi amara, from slixmpp"], wait: "received" });
    expect(back.result.receipts).toEqual(back.result.ids);
    await waitFor(async () => (await c.bodies(b.jid)).includes("hi amara, from slixmpp"), "Converse to show the reply", 20_000);
    mkdirSync(ARTIFACTS, { recursive: true });
    await c.screenshot(join(ARTIFACTS, "xmpp-converse-e2e.png"));
    const out = await pigeonJson<{ body: string; state: string }[]>(a, "outbox");
    expect(out.find((m) => m.body === "hello baraka, from Converse")?.state).toMatch(/delivered|read/);
  });
});
