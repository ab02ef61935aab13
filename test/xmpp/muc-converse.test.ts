// A child joins their class channel from Converse.js 14 in headless Chromium (over WebSocket): the
// room opens with the occupants, the teacher's earlier post and the subject; the child posts, sees the
// teacher's next post live, and Converse shows the child removed when the teacher kicks them. The
// teacher is slixmpp (the MUC scenario of muc.test.ts). Against Prosody's MUC first (reference),
// then on two Pigeon nodes, where the teacher starts the channel with the pigeon command.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cleanupAll, onCleanup, pigeon, pigeonJson, ROOT, type Daemon } from "../helpers.js";
import { startConverse, type ConverseSession } from "./clients/converse.js";
import { announceSkip, freePort, missing, slix, startProsody, startXmppNode, waitFor } from "./xmpp-helpers.js";

afterAll(cleanupAll);

const why = missing("chromium") ?? missing("slixmpp") ?? missing("prosody");
if (why) announceSkip("a class channel in Converse.js", why);
const TITLE = "5B science";
const ARTIFACTS = join(ROOT, "test-artifacts");

interface RoomState { status: number; subject?: string; occupants: string[][]; bodies: string[][]; disconnected?: string }

/** What Converse holds of the room (its models, which its views draw). */
const roomState = (c: ConverseSession, jid: string) =>
  c.page.evaluate(async (jid) => {
    const conv = (window as unknown as { __c: any }).__c; // eslint-disable-line @typescript-eslint/no-explicit-any
    const room = await conv.api.rooms.get(jid);
    if (!room) return { status: -1, occupants: [], bodies: [] };
    return {
      status: room.session.get("connection_status") as number,
      subject: room.get("subject")?.text as string | undefined,
      occupants: room.occupants.map((o: any) => [o.get("nick"), o.get("affiliation"), o.get("role")]), // eslint-disable-line @typescript-eslint/no-explicit-any
      bodies: room.messages.filter((m: any) => m.get("body")).map((m: any) => [m.get("nick"), m.get("body")]), // eslint-disable-line @typescript-eslint/no-explicit-any
      disconnected: room.session.get("disconnection_message") as string | undefined,
    };
  }, jid) as Promise<RoomState>;

async function inRoom(teacher: { jid: string; password: string; port: number }, teacherExtra: Record<string, unknown>, c: ConverseSession, beforeJoin: () => Promise<void>) {
  let ready!: (room: string) => void;
  const found = new Promise<string>((r) => (ready = r));
  let room = "";
  const run = slix({
    ...teacher, scenario: "muc", title: TITLE, nick: "mwalimu", post: ["Bring a leaf tomorrow"], expect: ["I found a leaf"],
    post_after_expect: ["Lesson two: roots"], kick_delay: 3, kick: "amara", timeout: 40, overall: 90, ...teacherExtra,
  }, (e) => {
    if (e.event === "found") room = e.room as string;
    if (e.event === "posted") ready(room);
  });
  room = await Promise.race([found, run.then((r): string => { throw new Error(`the teacher's client stopped: ${JSON.stringify(r.result)}`); })]);
  await beforeJoin();
  await c.page.evaluate(async (jid) => {
    const conv = (window as unknown as { __c: any }).__c; // eslint-disable-line @typescript-eslint/no-explicit-any
    await conv.api.rooms.open(jid, { nick: "amara" }, true);
  }, room);
  const ENTERED = 5;
  await waitFor(async () => {
    const s = await roomState(c, room);
    return s.status === ENTERED && s.bodies.some((b) => b[1] === "Bring a leaf tomorrow") && s.subject === TITLE;
  }, `Converse to enter the room with its history and subject: ${JSON.stringify(await roomState(c, room))}\n${c.console.slice(-30).join("\n")}`, 30_000);
  const joined = await roomState(c, room);
  await c.page.evaluate(async ([jid, body]) => {
    const conv = (window as unknown as { __c: any }).__c; // eslint-disable-line @typescript-eslint/no-explicit-any
    const r = await conv.api.rooms.get(jid);
    await r.sendMessage({ body });
  }, [room, "I found a leaf"] as const);
  await waitFor(async () => (await roomState(c, room)).bodies.some((b) => b[1] === "Lesson two: roots"), "Converse to show the teacher's next post", 40_000);
  await waitFor(async () => (await roomState(c, room)).disconnected !== undefined, `Converse to show amara was kicked: ${JSON.stringify(await roomState(c, room))}`, 20_000);
  const after = await roomState(c, room);
  const teacherRun = await run;
  expect(teacherRun.result.ok, JSON.stringify(teacherRun.result)).toBe(true);
  return { room, joined, after, teacher: teacherRun.result };
}

describe.skipIf(!!why)("a class channel in Converse.js (XEP-0045)", () => {
  it("Prosody's MUC (reference)", async () => {
    const p = await startProsody({ mwalimu: "mwalimu-password", amara: "amara-password" }, "local", undefined, { muc: true });
    const c = await startConverse({ websocket: p.websocket, jid: "amara@local", password: "amara-password" });
    onCleanup(() => c.close());
    const r = await inRoom({ jid: "mwalimu@local", password: "mwalimu-password", port: p.port },
      { room: "5b-science@conference.local", members: ["amara@local"] }, c, async () => {});
    expect(r.joined.occupants).toEqual(expect.arrayContaining([["mwalimu", "owner", "moderator"], ["amara", "member", "participant"]]));
    expect(r.after.disconnected).toMatch(/kicked/i);
  }, 90_000);

  it("Pigeon: the channel the teacher started with the pigeon command", async () => {
    const pagePort = await freePort();
    const t = await startXmppNode("mwalimu");
    const a = await startXmppNode("amara", ["--peer", `127.0.0.1:${t.syncPort}`, "--allow-origin", `http://127.0.0.1:${pagePort}`]);
    await waitFor(async () => (await pigeon(t, "peers")).stdout.includes("amara@local"), "amara to meet the teacher");
    expect((await pigeon(t, "channel", "create", TITLE)).code).toBe(0);
    expect((await pigeon(t, "channel", "add", TITLE, "amara")).code).toBe(0);
    const c = await startConverse({ websocket: a.websocket, jid: a.jid, password: a.password, port: pagePort });
    onCleanup(() => c.close());
    const inChannel = async (d: Daemon) => (await pigeonJson<{ body: string; channel?: string }[]>(d, "inbox")).filter((m) => m.channel === TITLE).map((m) => m.body);
    const r = await inRoom({ jid: t.jid, password: t.password, port: t.xmppPort }, {}, c,
      () => waitFor(async () => (await inChannel(a)).includes("Bring a leaf tomorrow"), "amara's node to get the teacher's post"));
    console.log("Converse on Pigeon:", JSON.stringify({ joined: r.joined, after: r.after }));
    mkdirSync(ARTIFACTS, { recursive: true });
    await c.screenshot(join(ARTIFACTS, "xmpp-converse-channel.png"));
    expect(r.room).toMatch(/^5b-science-[0-9a-f]{8}@channels\.local$/);
    expect(r.joined.occupants).toEqual(expect.arrayContaining([["mwalimu", "owner", "moderator"], ["amara", "member", "participant"]]));
    expect(r.after.bodies).toEqual(expect.arrayContaining([["mwalimu", "Bring a leaf tomorrow"], ["amara", "I found a leaf"], ["mwalimu", "Lesson two: roots"]]));
    // the post appears once (the room's reflection is recognised as Converse's own message)
    expect(r.after.bodies.filter((b) => b[1] === "I found a leaf")).toHaveLength(1);
    expect(r.after.disconnected).toMatch(/kicked|removed/i);
    // the teacher's client got it from the teacher's node: it crossed as a channel message
    expect(r.teacher.live).toEqual(expect.arrayContaining([["amara", "I found a leaf"]]));
    expect((await pigeonJson<{ members: { address: string }[] }[]>(t, "channels"))[0]!.members.map((m) => m.address)).toEqual(["mwalimu@local"]);
  }, 240_000);
});
