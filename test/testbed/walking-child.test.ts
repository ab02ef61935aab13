// Scenario 2: A — B — C. Amara sits in classroom X, Chiku in classroom Y, the two never share a
// network. Baraka (the walking child, one Wi-Fi card) walks X -> Y -> X and carries Amara's sealed
// message to Chiku and Chiku's "delivered" receipt back to Amara.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Testbed, waitUntil } from "./testbed.js";
import { addr, nonEmpty, skipReason, waitConnected, type Msg } from "./config.js";

const why = skipReason("walking-child");

describe.skipIf(!!why)("testbed 2: a walking child carries a message between classrooms", () => {
  let tb: Testbed;
  beforeAll(async () => {
    tb = await Testbed.create({ label: "walking-child", lifetimeMs: 230_000 });
    await tb.addBridge("X");
    await tb.addBridge("Y");
    await tb.addHost("amara", ["X"]);
    await tb.addHost("chiku", ["Y"]);
    await tb.addHost("baraka", ["X"], { down: ["X"] }); // in the corridor, out of range
    await tb.startAll();
  }, 60_000);
  afterAll(() => tb?.teardown(), 30_000);

  it("delivers A's message to C through B, and the receipt back, exactly once", async ({ onTestFailed }) => {
    onTestFailed(() => void (tb.keepArtifacts = true));
    const outboxState = async (id: string) => (await tb.pigeon<Msg[]>("amara", "outbox")).find((m) => m.id === id)?.state;

    // Contacts come from meeting: Amara can only address Chiku if her laptop has met Chiku's. So
    // Chiku first visits classroom X (they meet, and Chiku makes Amara a buddy), then goes back to
    // Y: from now on they are apart.
    await tb.move("chiku", "X");
    await waitConnected(tb, "amara", "chiku");
    await tb.pigeon("chiku", "buddies", "add", addr("amara"));
    await tb.move("chiku", "Y");
    tb.log("chiku is back in Y: amara and chiku are apart");
    expect((await tb.pigeon<{ address: string }[]>("amara", "contacts")).map((c) => c.address)).toContain(addr("chiku"));

    const sent = await tb.pigeon<Msg>("amara", "send", addr("chiku"), "see you at the well");
    // Nobody in range took it (the link to chiku is dead even if not yet noticed: she is in Y).
    await new Promise((r) => setTimeout(r, 1_000));
    expect(await outboxState(sent.id)).toBe("waiting");
    expect((await tb.pigeon<Msg[]>("chiku", "inbox")).some((m) => m.id === sent.id)).toBe(false);

    // Baraka walks into X: he meets Amara and takes the sealed message (it is now "sent").
    await tb.linkUp("baraka");
    await waitUntil(async () => (await outboxState(sent.id)) === "sent", "baraka to take amara's message", 45_000, 500);
    // He cannot read it: it is not in his inbox.
    expect((await tb.pigeon<Msg[]>("baraka", "inbox")).some((m) => m.id === sent.id)).toBe(false);

    // He leaves X, walks to Y and meets Chiku: she gets it.
    await tb.linkDown("baraka");
    await tb.move("baraka", "Y");
    await tb.linkUp("baraka");
    const got = await waitUntil(
      async () => nonEmpty((await tb.pigeon<Msg[]>("chiku", "inbox")).filter((m) => m.id === sent.id)),
      "chiku to receive the message through baraka",
      60_000,
      500,
    );
    expect(got.map((m) => [m.from, m.body])).toEqual([[addr("amara"), "see you at the well"]]);
    // Amara does not know yet: the receipt is still with Chiku (and, once synced, Baraka).
    expect(await outboxState(sent.id)).toBe("sent");
    // give the receipt time to reach baraka before he walks back (it is announced at once)
    await waitUntil(async () => {
      const peer = (await tb.pigeon<{ address: string; sentEnvelopes: number }[]>("chiku", "peers")).find((p) => p.address === addr("baraka"));
      return peer && peer.sentEnvelopes > 0;
    }, "chiku to hand her receipt to baraka", 30_000, 500);

    // He walks back to X: Amara's outbox says delivered.
    await tb.linkDown("baraka");
    await tb.move("baraka", "X");
    await tb.linkUp("baraka");
    await waitUntil(async () => (await outboxState(sent.id)) === "delivered", "the receipt to reach amara through baraka", 90_000, 1_000);

    // Exactly once, and the direct route was never used.
    expect((await tb.pigeon<Msg[]>("chiku", "inbox")).filter((m) => m.id === sent.id)).toHaveLength(1);
    expect((await tb.pigeon<Msg[]>("amara", "outbox")).filter((m) => m.id === sent.id).map((m) => m.state)).toEqual(["delivered"]);
  }, 200_000);
});
