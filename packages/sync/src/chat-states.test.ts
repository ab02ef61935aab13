// Live chat-state frames (FrameType.ChatState): only over the open links to the named person's
// laptop, never stored, and within the per-link budget both ways (a flood costs the link at most
// LIVE_BURST frames, then one a second; the latest state still goes, a second later).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { contactCard, decodeFrame, encodeFrame, generateIdentity, type ChatState } from "@pigeon/model";
import { fileStorage, LIVE_BURST, Mailbox, memoryLinkPair, SyncEngine } from "./index.js";

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

function node(name: string) {
  const dir = mkdtempSync(join(tmpdir(), `pigeon-live-${name}-`));
  const m = new Mailbox({ identity: generateIdentity(name), storage: fileStorage(dir) });
  const s = new SyncEngine(m, { resyncMs: 0 });
  const seen: [string, ChatState][] = [];
  s.on("chat-state", (link, state) => seen.push([link.peer.name, state]));
  cleanup.push(async () => {
    s.close();
    await m.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { m, s, seen };
}

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("chat-state frames", () => {
  it("encode and decode; an unknown state is a protocol error", () => {
    for (const state of ["active", "composing", "paused", "inactive", "gone"] as const)
      expect(decodeFrame(encodeFrame({ type: "chat-state", state }))).toEqual({ type: "chat-state", state });
    expect(() => decodeFrame(Uint8Array.of(12, 5))).toThrow(/unknown chat state/);
    expect(() => decodeFrame(Uint8Array.of(12, 1, 0))).toThrow();
  });

  it("go only to the named person's connected laptop, are not stored, and are rate-limited", async () => {
    const a = node("amara");
    const b = node("baraka");
    const c = node("chidi");
    const [ab, ba] = memoryLinkPair(contactCard(a.m.identity), contactCard(b.m.identity));
    const [ac, ca] = memoryLinkPair(contactCard(a.m.identity), contactCard(c.m.identity));
    a.s.attach(ab), b.s.attach(ba), a.s.attach(ac), c.s.attach(ca);
    // nobody connected by that key: nothing is sent, nothing waits
    expect(a.s.sendChatState(generateIdentity("dora").person, "composing")).toBe(0);
    expect(a.s.sendChatState(b.m.identity.person, "composing")).toBe(1);
    await wait(50);
    expect(b.seen).toEqual([["amara", "composing"]]);
    expect(c.seen).toEqual([]);
    // the same state again is not sent again
    expect(a.s.sendChatState(b.m.identity.person, "composing")).toBe(0);
    // a flood: the burst goes, the rest is held; the latest state follows a second later
    const flood: ChatState[] = ["paused", "composing", "paused", "composing", "paused", "composing", "paused", "active"];
    for (const st of flood) a.s.sendChatState(b.m.identity.person, st);
    await wait(50);
    expect(b.seen.length).toBe(LIVE_BURST);
    await wait(1200);
    expect(b.seen.at(-1)).toEqual(["amara", "active"]);
    expect(b.seen.length).toBe(LIVE_BURST + 1);
    // never stored: neither side holds an envelope for them
    expect(b.m.envelopes.stats().envelopes).toBe(0);
    // a peer that floods the frames itself: the receiver shows at most the burst
    for (let i = 0; i < 50; i++) ca.send(encodeFrame({ type: "chat-state", state: i % 2 ? "composing" : "paused" }));
    await wait(100);
    expect(a.seen.length).toBe(LIVE_BURST);
    expect(ca.closed).toBe(false);
  });
});
