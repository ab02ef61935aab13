// The slixmpp scenarios of slixmpp.test.ts against Prosody (Debian prosody, started here on loopback
// with its own config, not the system service). If a scenario fails here too, the script is wrong,
// not the Pigeon node.
import { afterAll, describe, expect, it } from "vitest";
import { cleanupAll } from "../helpers.js";
import { announceSkip, missing, slix, startProsody, type Prosody } from "./xmpp-helpers.js";

afterAll(cleanupAll);

const why = missing("slixmpp") ?? missing("prosody");
if (why) announceSkip("slixmpp scenarios against Prosody", why);

describe.skipIf(!!why)("the slixmpp scenarios against Prosody (reference)", () => {
  let p: Prosody;
  const users = { alice: "alice-password", bob: "bob-password", carol: "carol-password", dave: "dave-password", erin: "erin-password" };
  const as = (u: keyof typeof users, scenario: string, extra: Record<string, unknown> = {}) => ({
    jid: `${u}@local`, password: users[u], port: p.port, scenario, ...extra,
  });

  it("logs in with SCRAM-SHA-1 and PLAIN over STARTTLS (Prosody 0.12 has no SCRAM-SHA-256)", async () => {
    p = await startProsody(users);
    const runs = await Promise.all([
      slix(as("alice", "login", { mech: "SCRAM-SHA-1" })),
      slix(as("alice", "login", { mech: "PLAIN", tls: "starttls", cafile: p.certPath })),
    ]);
    // Prosody 0.12's internal_hashed store keeps SCRAM-SHA-1 keys only, so it never offers SCRAM-SHA-256
    const sha256 = await slix(as("alice", "login", { mech: "SCRAM-SHA-256" }));
    expect(sha256.result).toMatchObject({ ok: false, error: "no usable SASL mechanism" });
    for (const r of runs) {
      expect(r.result.ok, JSON.stringify(r.result) + r.stderr.slice(-1500)).toBe(true);
      expect(r.result.features).toEqual(expect.arrayContaining(["urn:xmpp:ping", "urn:xmpp:carbons:2"]));
      expect(r.result.account_features).toEqual(expect.arrayContaining(["urn:xmpp:mam:2"]));
      expect(r.result.unknown_iq).toBe("service-unavailable");
    }
    expect(runs.map((r) => r.result.mech)).toEqual(["SCRAM-SHA-1", "PLAIN"]);
    const wrong = await slix({ ...as("alice", "login"), password: "nope" });
    expect(wrong.result).toMatchObject({ ok: false, error: "auth failed" });
  });

  it("send and receive with receipts and a displayed marker", async () => {
    const reader = slix(as("bob", "receive", { count: 2, displayed: true, auto_ack: true }));
    await new Promise((r) => setTimeout(r, 1500));
    const sender = await slix(as("alice", "send", { to: "bob@local", bodies: ["hello bob", "second"], wait: "displayed" }));
    const got = await reader;
    expect((got.result.messages as { body: string }[]).map((m) => m.body)).toEqual(["hello bob", "second"]);
    expect(new Set(sender.result.receipts as string[])).toEqual(new Set(sender.result.ids as string[]));
    expect(sender.result.markers).toContain((sender.result.ids as string[])[1]);
  });

  it("offline delivery with delay stamps", async () => {
    await slix(as("alice", "send", { to: "carol@local", bodies: ["away 1", "away 2"] }));
    const got = await slix(as("carol", "receive", { count: 2 }));
    const msgs = got.result.messages as { body: string; delay: string | null }[];
    expect(msgs.map((m) => m.body)).toEqual(["away 1", "away 2"]);
    for (const m of msgs) expect(m.delay).not.toBeNull();
  });

  it("MAM paging", async () => {
    await slix(as("alice", "send", { to: "dave@local", bodies: Array.from({ length: 11 }, (_, i) => `archived ${i}`) }));
    const r = await slix(as("dave", "mam", { page: 3 }));
    expect(r.result.forward).toEqual(Array.from({ length: 11 }, (_, i) => `archived ${i}`));
    expect(r.result.last_page).toEqual(["archived 8", "archived 9", "archived 10"]);
  });

  it("stream management resume after a cut socket", async () => {
    const run = slix(as("erin", "resume", { sm: true, before_cut: 2, count: 5, away: 3 }), (e) => {
      if (e.event === "cut") void slix(as("alice", "send", { to: "erin@local", bodies: ["sm 2", "sm 3", "sm 4"] }));
    });
    await new Promise((r) => setTimeout(r, 1500));
    await slix(as("alice", "send", { to: "erin@local", bodies: ["sm 0", "sm 1"] }));
    const r = await run;
    expect(r.result.resumed, JSON.stringify(r.result)).toBe(true);
    expect(r.result.bodies).toEqual(["sm 0", "sm 1", "sm 2", "sm 3", "sm 4"]);
  });
});
