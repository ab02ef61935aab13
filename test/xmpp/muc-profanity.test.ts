// A child joins their class channel from profanity 0.13 (in tmux, read from the screen): finds the
// room with /rooms, joins, sees the occupants, the teacher's earlier post and the subject, posts,
// sees the teacher's next post live, and is shown leaving when the teacher kicks them. The teacher
// is slixmpp (the MUC scenario of muc.test.ts). Against Prosody's MUC first (reference), then on two
// Pigeon nodes, where the teacher starts the channel with the pigeon command.
import { afterAll, describe, expect, it } from "vitest";
import { cleanupAll, pigeon, pigeonJson, type Daemon } from "../helpers.js";
import { announceSkip, missing, profanity, slix, startProsody, startXmppNode, waitFor } from "./xmpp-helpers.js";

afterAll(cleanupAll);

const why = missing("profanity") ?? missing("slixmpp") ?? missing("prosody");
if (why) announceSkip("a class channel in profanity", why);

const TITLE = "5B science";

async function inRoom(teacher: { jid: string; password: string; port: number }, teacherExtra: Record<string, unknown>, prof: ReturnType<typeof profanity>, service: string, beforeJoin: () => Promise<void>) {
  let ready!: () => void;
  const posted = new Promise<void>((r) => (ready = r));
  const run = slix({
    ...teacher, scenario: "muc", title: TITLE, nick: "mwalimu", post: ["Bring a leaf tomorrow"], expect: ["I found a leaf"],
    post_after_expect: ["Lesson two: roots"], kick_delay: 3, kick: "amara", timeout: 40, overall: 90, ...teacherExtra,
  }, (e) => e.event === "posted" && ready());
  await Promise.race([posted, run.then((r) => { throw new Error(`the teacher's client stopped: ${JSON.stringify(r.result)}`); })]);
  await beforeJoin();
  // the child looks for the room the way profanity offers: the service's rooms, by name
  let room: string | undefined;
  await waitFor(() => {
    prof.type(`/rooms service ${service}`);
    room = prof.screen().match(new RegExp(`([a-z0-9-]+@${service.replace(/\./g, "\\.")})[^\\n]*${TITLE}`))?.[1];
    return room !== undefined;
  }, `profanity to list the room:\n${prof.screen()}`, 20_000);
  prof.type(`/join ${room} nick amara`);
  await waitFor(() => prof.screen().includes("Bring a leaf tomorrow"), `profanity to show the history:\n${prof.screen()}`, 20_000);
  const joined = prof.screen();
  prof.type("I found a leaf");
  await waitFor(() => prof.screen().includes("Lesson two: roots"), `profanity to show the teacher's next post:\n${prof.screen()}`, 40_000);
  await waitFor(() => /kicked|removed/i.test(prof.screen()), `profanity to show amara was kicked:\n${prof.screen()}`, 20_000);
  const teacherRun = await run;
  expect(teacherRun.result.ok, JSON.stringify(teacherRun.result)).toBe(true);
  return { joined, after: prof.screen(), teacher: teacherRun.result, room: room! };
}

describe.skipIf(!!why)("a class channel in profanity (XEP-0045)", () => {
  it("Prosody's MUC (reference)", async () => {
    const p = await startProsody({ mwalimu: "mwalimu-password", amara: "amara-password" }, "local", undefined, { muc: true });
    const prof = profanity("muc-prosody");
    await prof.login("amara@local", "amara-password", p.port, "disable");
    const r = await inRoom({ jid: "mwalimu@local", password: "mwalimu-password", port: p.port },
      { room: "5b-science@conference.local", members: ["amara@local"] }, prof, "conference.local", async () => {});
    expect(r.joined).toContain("mwalimu"); // the teacher among the occupants
    expect(r.teacher.live).toEqual(expect.arrayContaining([["amara", "I found a leaf"]]));
  }, 90_000);

  it("Pigeon: the channel the teacher started with the pigeon command", async () => {
    const t = await startXmppNode("mwalimu");
    const a = await startXmppNode("amara", ["--peer", `127.0.0.1:${t.syncPort}`]);
    await waitFor(async () => (await pigeon(t, "peers")).stdout.includes("amara@local"), "amara to meet the teacher");
    expect((await pigeon(t, "channel", "create", TITLE)).code).toBe(0);
    expect((await pigeon(t, "channel", "add", TITLE, "amara")).code).toBe(0);
    const prof = profanity("muc-pigeon");
    await prof.login(a.jid, a.password, a.xmppPort, "trust");
    const inChannel = async (d: Daemon) => (await pigeonJson<{ body: string; channel?: string }[]>(d, "inbox")).filter((m) => m.channel === TITLE).map((m) => m.body);
    const r = await inRoom({ jid: t.jid, password: t.password, port: t.xmppPort }, {}, prof, "channels.local",
      () => waitFor(async () => (await inChannel(a)).includes("Bring a leaf tomorrow"), "amara's node to get the teacher's post"));
    expect(r.room).toMatch(/^5b-science-[0-9a-f]{8}@channels\.local$/);
    expect(r.joined).toContain("mwalimu");
    expect(r.joined).toContain(TITLE); // the subject
    // the teacher's client got it from the teacher's node: it crossed as a channel message
    expect(r.teacher.live).toEqual(expect.arrayContaining([["amara", "I found a leaf"]]));
    // the kick removed amara from the channel
    expect((await pigeonJson<{ members: { address: string }[] }[]>(t, "channels"))[0]!.members.map((m) => m.address)).toEqual(["mwalimu@local"]);
  }, 240_000);
});
