// slixmpp (Debian python3-slixmpp 1.8) against real Pigeon daemons: both SCRAM mechanisms (no PLAIN), STARTTLS,
// roster = the buddy list (edited from the client and the pigeon command, pushed), blocking (XEP-0191),
// messages across two nodes by Pigeon sync, offline delivery with delay stamps,
// receipts and displayed markers from Pigeon's signed receipts, MAM paging in arrival order, and
// stream management resuming after a cut socket. The same scenarios run against a loopback Prosody
// first (prosody.test.ts) so a failure can be told apart as ours or the script's.
import { afterAll, describe, expect, it } from "vitest";
import { cleanupAll, pigeon, pigeonJson, startDaemon } from "../helpers.js";
import { announceSkip, befriend, missing, slix, startXmppNode, waitFor, type XmppNode } from "./xmpp-helpers.js";

afterAll(cleanupAll);

const why = missing("slixmpp");
if (why) announceSkip("slixmpp end-to-end tests", why);

interface Msg { body: string; state?: string; id: string }

describe.skipIf(!!why)("slixmpp against Pigeon nodes", () => {
  let a: XmppNode;
  let b: XmppNode;
  const as = (n: XmppNode, scenario: string, extra: Record<string, unknown> = {}) => ({ jid: n.jid, password: n.password, port: n.xmppPort, scenario, ...extra });

  it("logs in with SCRAM-SHA-1, SCRAM-SHA-256 (also over STARTTLS), never PLAIN; the roster is the buddy list", async () => {
    a = await startXmppNode("amara");
    b = await startXmppNode("baraka", ["--peer", `127.0.0.1:${a.syncPort}`]);
    await befriend(a, b); // met nearby, and made each other buddies: the roster is the buddy list
    const runs = await Promise.all([
      slix(as(a, "login", { mech: "SCRAM-SHA-1" })),
      slix(as(a, "login", { mech: "SCRAM-SHA-256" })),
      slix(as(a, "login", { mech: "SCRAM-SHA-256", tls: "starttls", cafile: a.certPath })),
    ]);
    // PLAIN is not offered, not even over TLS: every client tested does SCRAM
    const plain = await slix(as(a, "login", { mech: "PLAIN", tls: "starttls", cafile: a.certPath }));
    expect(plain.result).toMatchObject({ ok: false, error: "no usable SASL mechanism" });
    for (const [i, r] of runs.entries()) {
      expect(r.result.ok, JSON.stringify(r.result) + r.stderr.slice(-2000)).toBe(true);
      expect(r.result.mech).toBe(["SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-256"][i]);
      expect(r.result.roster).toEqual(["baraka@local"]);
      expect(r.result.features).toEqual(expect.arrayContaining(["urn:xmpp:ping", "urn:xmpp:carbons:2"]));
      expect(r.result.account_features).toEqual(expect.arrayContaining(["urn:xmpp:mam:2", "urn:xmpp:sid:0"]));
      expect(r.result.unknown_iq).toBe("service-unavailable");
      expect(r.result.ver_again ?? r.result.ver).toBe(r.result.ver); // the same version: an empty result
    }
    const wrong = await slix({ ...as(a, "login", { mech: "SCRAM-SHA-256" }), password: "not-the-password" });
    expect(wrong.result).toMatchObject({ ok: false, error: "auth failed" });
  });

  it("sends across two nodes; Pigeon's delivered and read receipts come back as <received/> and <displayed/>", async () => {
    // baraka reads with slixmpp and marks the last one displayed; amara's client waits for both
    const reader = slix(as(b, "receive", { count: 2, displayed: true }));
    await new Promise((r) => setTimeout(r, 1500));
    const sender = await slix(as(a, "send", { to: b.jid, bodies: ["hello baraka", "second"], wait: "displayed" }));
    const got = await reader;
    expect(got.result.ok, JSON.stringify(got.result)).toBe(true);
    const msgs = got.result.messages as { body: string; from: string; stanza_id: string; id: string; markable: boolean }[];
    expect(msgs.map((m) => [m.from, m.body])).toEqual([[a.jid, "hello baraka"], [a.jid, "second"]]);
    expect(msgs[0]!.stanza_id).toBe(msgs[0]!.id); // the Pigeon message id is the stanza-id
    expect(msgs[0]!.markable).toBe(true);
    expect(sender.result.ok).toBe(true);
    expect(new Set(sender.result.receipts as string[])).toEqual(new Set(sender.result.ids as string[]));
    expect(sender.result.markers).toContain((sender.result.ids as string[])[1]);
    // the same facts in Pigeon
    const out = await pigeonJson<Msg[]>(a, "outbox");
    expect(out.map((m) => [m.body, m.state])).toEqual([["hello baraka", "read"], ["second", "read"]]);
  });

  it("delivers messages that arrived while no client was connected, with delay stamps", async () => {
    const before = Date.now();
    for (const t of ["while you were away 1", "while you were away 2"]) expect((await pigeon(a, "send", b.jid, t)).code).toBe(0);
    await waitFor(async () => (await pigeonJson<Msg[]>(a, "outbox")).filter((m) => m.state === "delivered").length === 2, "delivery to baraka's node");
    const got = await slix(as(b, "receive", { count: 2 }));
    const msgs = got.result.messages as { body: string; delay: string | null }[];
    expect(msgs.map((m) => m.body)).toEqual(["while you were away 1", "while you were away 2"]);
    for (const m of msgs) {
      expect(m.delay).not.toBeNull();
      expect(Math.abs(Date.parse(m.delay!) - before)).toBeLessThan(30_000);
    }
    // taken once: a new login gets nothing again
    const again = await slix(as(b, "receive", { count: 1, timeout: 2 }));
    expect(again.result.messages).toEqual([]);
  });

  it("pages the archive forwards and backwards in arrival order", async () => {
    for (let i = 0; i < 7; i++) expect((await pigeon(a, "send", b.jid, `archived ${i}`)).code).toBe(0);
    await waitFor(async () => (await pigeonJson<Msg[]>(b, "inbox")).length === 11, "baraka's node to have them all");
    const r = await slix(as(b, "mam", { page: 3 }));
    expect(r.result.ok, JSON.stringify(r.result)).toBe(true);
    const forward = r.result.forward as string[];
    expect(forward).toEqual([
      "hello baraka", "second", "while you were away 1", "while you were away 2",
      ...Array.from({ length: 7 }, (_, i) => `archived ${i}`),
    ]);
    expect([r.result.pages, r.result.complete]).toEqual([4, true]);
    expect(r.result.last_page).toEqual(["archived 4", "archived 5", "archived 6"]);
    // catching up after the last id seen finds what arrives later
    expect((await pigeon(a, "send", b.jid, "later")).code).toBe(0);
    await waitFor(async () => (await pigeonJson<Msg[]>(b, "inbox")).length === 12, "the later message");
    const after = await slix(as(b, "mam_after", { after: r.result.last_id }));
    expect(after.result.bodies).toEqual(["later"]);
  });

  it("resumes a stream-management session after a cut socket, losing and repeating nothing", async () => {
    // take the earlier pending message first so the count is exact
    await slix(as(b, "receive", { count: 1, timeout: 2 }));
    let sent = 0;
    const sendOne = async () => expect((await pigeon(a, "send", b.jid, `sm ${sent++}`)).code).toBe(0);
    const run = slix(as(b, "resume", { sm: true, before_cut: 2, count: 5, away: 3 }), (e) => {
      if (e.event === "cut") void (async () => { await sendOne(); await sendOne(); await sendOne(); })();
    });
    await new Promise((r) => setTimeout(r, 1500));
    await sendOne();
    await sendOne();
    const r = await run;
    expect(r.result.resumed, JSON.stringify(r.result) + r.stderr.slice(-1500)).toBe(true);
    expect(r.result.bodies).toEqual(["sm 0", "sm 1", "sm 2", "sm 3", "sm 4"]);
  });
});

describe.skipIf(!!why)("slixmpp editing the buddy list", () => {
  it("roster set adds and names, the pigeon command's rename is pushed, remove removes; block and unblock (XEP-0191)", async () => {
    const a = await startXmppNode("amara");
    const b = await startXmppNode("baraka", ["--peer", `127.0.0.1:${a.syncPort}`]);
    const c = await startDaemon("chiku", { args: ["--no-mdns", "--no-xmpp", "--peer", `127.0.0.1:${a.syncPort}`] });
    await befriend(a, b);
    await waitFor(async () => (await pigeonJson<{ address: string }[]>(a, "nearby")).some((n) => n.address === "chiku@local"), "amara to meet chiku");
    const run = await slix(
      { jid: a.jid, password: a.password, port: a.xmppPort, scenario: "roster", who: "chiku@local", name: "Chi", groups: ["Football"], cli_name: "chikito", block: "baraka@local" },
      (e) => {
        if (e.event === "added") void pigeon(a, "buddies", "rename", "chiku@local", "chikito");
      },
    );
    const r = run.result;
    expect(r.ok, JSON.stringify(r) + run.stderr.slice(-2000)).toBe(true);
    expect(r.before).toEqual(["baraka@local"]); // chiku was met, not a buddy
    expect(r.added).toEqual({ name: "chi", groups: ["Football"], subscription: "both" });
    expect(r.renamed).toBe(true); // the rename made with the pigeon command reached the client
    expect([r.bad_name, r.unknown]).toEqual(["not-acceptable", "item-not-found"]);
    expect(r.removed).toBe(true);
    expect(r.after).toEqual(["baraka@local"]);
    expect(r.blocked_list).toEqual(["baraka@local"]);
    expect(r.errors).toEqual([{ to: "baraka@local", condition: "not-acceptable", blocked: true }]);
    expect(r.blocks).toEqual([["block", ["baraka@local"]], ["unblock", ["baraka@local"]]]);
    expect(r.unblocked_list).toEqual([]);
    // every push carried a version; Pigeon's buddy list says the same as the client did
    expect((r.pushes as { ver: string }[]).every((p) => /^[0-9a-f]{16}$/.test(p.ver))).toBe(true);
    const list = await pigeonJson<{ buddies: { address: string; petname?: string; groups: string[] }[]; blocked: unknown[] }>(a, "buddies");
    expect(list.buddies.map((x) => x.address)).toEqual(["baraka@local"]);
    expect(list.blocked).toEqual([]);
    // chiku is still known (met nearby); added back, the name and group the client gave come back
    expect(await pigeonJson<{ petname?: string; groups: string[] }>(a, "buddies", "add", "chiku@local")).toMatchObject({ petname: "chikito", groups: ["Football"] });
    void c;
  });
});
