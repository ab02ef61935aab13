// Scenario 1: laptops in one Wi-Fi neighbourhood (one bridge) find each other by mDNS with no
// configuration and chat; a laptop in another neighbourhood is not seen. Plus a laptop with a
// second radio on two bridges at once (mDNS on its first, the --peer fallback on its second).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Testbed, waitUntil } from "./testbed.js";
import { addr, befriend, chat, skipReason, waitConnected, type Msg } from "./config.js";

const why = skipReason("neighbours");

describe.skipIf(!!why)("testbed 1: neighbours on one bridge", () => {
  let tb: Testbed;
  beforeAll(async () => {
    tb = await Testbed.create({ label: "neighbours", lifetimeMs: 170_000 });
    await tb.addBridge("class1");
    await tb.addBridge("class2");
    await tb.addHost("amara", ["class1"]);
    await tb.addHost("baraka", ["class1"]);
    await tb.addHost("chiku", ["class2"]);
    await tb.addHost("dede", ["class1", "class2"]); // two radios
    await tb.startAll();
  }, 60_000);
  afterAll(() => tb?.teardown(), 30_000);

  it("find each other by mDNS and chat both ways; the other bridge stays apart", async ({ onTestFailed }) => {
    onTestFailed(() => void (tb.keepArtifacts = true));
    await waitConnected(tb, "amara", "baraka");
    await befriend(tb, "amara", "baraka");
    await chat(tb, "baraka", "amara", "hello amara");
    await chat(tb, "amara", "baraka", "hi back");
    // chiku is on class2 only: amara never meets her
    const contacts = await tb.pigeon<{ address: string; how: string }[]>("amara", "contacts");
    expect(contacts.map((c) => c.address)).not.toContain(addr("chiku"));
    const peers = await tb.pigeon<{ address: string }[]>("chiku", "peers");
    expect(peers.map((p) => p.address)).not.toContain(addr("amara"));
  }, 60_000);

  it("a classmate steps out of range on a schedule: the message waits and goes when he is back", async ({ onTestFailed }) => {
    onTestFailed(() => void (tb.keepArtifacts = true));
    let id = "";
    const state = async () => (await tb.pigeon<Msg[]>("amara", "outbox")).find((m) => m.id === id)?.state;
    await tb.schedule([
      { at: 0, host: "baraka", action: "down" },
      {
        at: 1_000,
        action: "run",
        label: "amara writes while baraka is away",
        run: async () => (id = (await tb.pigeon<Msg>("amara", "send", addr("baraka"), "where are you?")).id),
      },
      {
        at: 4_000,
        action: "run",
        label: "it waits (dede, on class1 too, may carry it: it is sealed)",
        run: async () => {
          expect(["waiting", "sent"]).toContain(await state());
          expect((await tb.pigeon<Msg[]>("baraka", "inbox")).some((m) => m.id === id)).toBe(false);
        },
      },
      { at: 5_000, host: "baraka", action: "up" },
    ]);
    await waitUntil(async () => (await state()) === "delivered", "delivery once baraka is back", 60_000, 500);
    expect((await tb.pigeon<Msg[]>("baraka", "inbox")).filter((m) => m.id === id).map((m) => m.body)).toEqual(["where are you?"]);
  }, 90_000);

  it("a laptop on two bridges finds and talks to both by mDNS", async ({ onTestFailed }) => {
    onTestFailed(() => void (tb.keepArtifacts = true));
    await waitConnected(tb, "dede", "amara");
    await waitConnected(tb, "dede", "chiku");
    await befriend(tb, "dede", "amara");
    await befriend(tb, "dede", "chiku");
    await chat(tb, "dede", "chiku", "hello chiku");
    await chat(tb, "amara", "dede", "hello dede");
  }, 60_000);
});
