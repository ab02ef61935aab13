// profanity 0.13 (libstrophe) in tmux, driven with send-keys and read with capture-pane: log in and
// exchange a message with a slixmpp user, against Prosody (reference) and across two Pigeon nodes; and
// edit the buddy list (roster, groups, blocking) from profanity.
import { afterAll, describe, expect, it } from "vitest";
import { cleanupAll, pigeon, pigeonJson, startDaemon } from "../helpers.js";
import { announceSkip, befriend, missing, profanity, slix, startProsody, startXmppNode, waitFor } from "./xmpp-helpers.js";

afterAll(cleanupAll);

const why = missing("profanity") ?? missing("slixmpp");
if (why) announceSkip("profanity in tmux", why);

describe.skipIf(!!why)("profanity in tmux", () => {
  it("against Prosody (reference): logs in and exchanges a message", async () => {
    const p = await startProsody({ alice: "alice-password", bob: "bob-password" });
    const prof = profanity("prosody");
    await prof.login("alice@local", "alice-password", p.port, "disable");
    const bob = slix({ jid: "bob@local", password: "bob-password", port: p.port, scenario: "receive", count: 1, timeout: 30 });
    await new Promise((r) => setTimeout(r, 1000));
    prof.type("/msg bob@local hello bob from profanity");
    const got = await bob;
    expect((got.result.messages as { body: string }[]).map((m) => m.body)).toEqual(["hello bob from profanity"]);
    await slix({ jid: "bob@local", password: "bob-password", port: p.port, scenario: "send", to: "alice@local", bodies: ["hi alice from slixmpp"] });
    await waitFor(() => prof.screen().includes("hi alice from slixmpp"), "profanity to show the reply");
  });

  it("across two Pigeon nodes, with STARTTLS and the node's self-signed certificate", async () => {
    const a = await startXmppNode("amara");
    const b = await startXmppNode("baraka", ["--peer", `127.0.0.1:${a.syncPort}`]);
    await befriend(a, b); // met nearby, and made each other buddies
    const prof = profanity("pigeon");
    await prof.login(a.jid, a.password, a.xmppPort, "trust");
    expect(prof.screen()).not.toMatch(/TLS connection not established/);
    expect(prof.screen()).not.toMatch(/ping not supported/i);
    const reader = slix({ jid: b.jid, password: b.password, port: b.xmppPort, scenario: "receive", count: 1, timeout: 30 });
    await new Promise((r) => setTimeout(r, 1000));
    prof.type(`/msg ${b.jid} hello baraka from profanity`);
    const got = await reader;
    expect((got.result.messages as { body: string; from: string }[]).map((m) => [m.from, m.body])).toEqual([[a.jid, "hello baraka from profanity"]]);
    await slix({ jid: b.jid, password: b.password, port: b.xmppPort, scenario: "send", to: a.jid, bodies: ["hi amara from slixmpp"] });
    await waitFor(() => prof.screen().includes("hi amara from slixmpp"), `profanity to show the reply:\n${prof.screen()}`);
    const out = await pigeonJson<{ body: string; state: string }[]>(a, "outbox");
    expect(out.find((m) => m.body === "hello baraka from profanity")?.state).toMatch(/delivered|read/);
  });

  it("edits the buddy list from profanity: /roster add, /roster group, /blocked, /roster remove; a rename made with pigeon is pushed", async () => {
    const a = await startXmppNode("amara");
    const c = await startDaemon("chiku", { args: ["--no-mdns", "--no-xmpp", "--peer", `127.0.0.1:${a.syncPort}`] });
    await waitFor(async () => (await pigeonJson<unknown[]>(a, "nearby")).length === 1, "amara to meet chiku");
    type Buddy = { address: string; petname?: string; groups: string[]; blocked: boolean };
    const list = async () => (await pigeonJson<{ buddies: Buddy[]; blocked: { address: string }[] }>(a, "buddies"));
    const chiku = async () => (await list()).buddies.find((b) => b.address === "chiku@local");
    const prof = profanity("buddies");
    await prof.login(a.jid, a.password, a.xmppPort, "trust");
    prof.type("/roster add chiku@local chi");
    await waitFor(async () => (await chiku())?.petname === "chi", `the roster add to reach the buddy list:\n${prof.screen()}`);
    prof.type("/roster group add football chiku@local");
    await waitFor(async () => (await chiku())?.groups.join() === "football", "the group to reach the buddy list").catch((e: Error) => {
      throw new Error(`${e.message}\n${prof.screen()}\n${JSON.stringify(a.output().slice(-3000))}`);
    });
    // a rename with the pigeon command reaches profanity's roster by a push
    expect((await pigeon(a, "buddies", "rename", "chiku@local", "chikito")).code).toBe(0);
    for (let i = 0; i < 20 && !prof.screen().includes("chikito"); i++) {
      prof.type("/roster");
      await new Promise((r) => setTimeout(r, 1000));
    }
    expect(prof.screen(), "profanity's roster to show the new name").toContain("chikito");
    prof.type("/blocked add chiku@local");
    await waitFor(async () => (await chiku())?.blocked === true, `the block to reach the buddy list:\n${prof.screen()}`);
    prof.type("/blocked remove chiku@local");
    await waitFor(async () => (await chiku())?.blocked === false, `the unblock to reach the buddy list:\n${prof.screen()}`);
    prof.type("/roster remove chiku@local");
    await waitFor(async () => (await chiku()) === undefined, `the removal to reach the buddy list:\n${prof.screen()}`);
    void c;
  });
});
