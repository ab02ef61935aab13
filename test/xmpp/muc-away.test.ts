// Class channels' rooms show how fresh each member's presence is (issue 15): three real Pigeon nodes
// on loopback; the teacher's slixmpp joins the channel's room and sees amara (her laptop connected)
// as available and baraka, whose laptop went home a moment ago, as away ("near 1 minute ago"); when
// his laptop comes back, his occupant presence turns available without the client doing anything.
import { afterAll, describe, expect, it } from "vitest";
import { cleanupAll, pigeon, pigeonJson } from "../helpers.js";
import { announceSkip, missing, slix, startXmppNode, waitFor } from "./xmpp-helpers.js";

afterAll(cleanupAll);

const why = missing("slixmpp");
if (why) announceSkip("occupants shown away in class channel rooms", why);

describe.skipIf(!!why)("class channel rooms: occupants away when their laptop is not near", () => {
  it("a member whose laptop went home is away in the room, and available again when it comes back", async () => {
    const t = await startXmppNode("mwalimu");
    const near = ["--peer", `127.0.0.1:${t.syncPort}`];
    await startXmppNode("amara", near);
    let b = await startXmppNode("baraka", near);
    const peers = async () => (await pigeon(t, "peers")).stdout;
    await waitFor(async () => (await peers()).match(/amara@local|baraka@local/g)?.length === 2, "the class to meet the teacher");
    expect((await pigeon(t, "channel", "create", "5B science")).code).toBe(0);
    const added = await pigeon(t, "channel", "add", "5B science", "amara", "baraka");
    expect(added.code, added.stderr).toBe(0);
    const [ch] = await pigeonJson<{ id: string }[]>(t, "channels");
    const room = `5b-science-${ch!.id.slice(0, 8)}@channels.local`;
    // baraka goes home
    const dataDir = b.dataDir;
    await b.stop();
    await waitFor(async () => !(await peers()).includes("baraka@local"), "baraka's laptop to be gone");

    let joined!: () => void;
    const inRoom = new Promise<void>((r) => (joined = r));
    const run = slix(
      { jid: t.jid, password: t.password, port: t.xmppPort, scenario: "muc_shows", room, nick: "mwalimu", wait_shows: [["amara", ""], ["baraka", "away"], ["baraka", ""]], timeout: 90 },
      (e) => e.event === "joined" && joined(),
      120_000,
    );
    await Promise.race([inRoom, run.then((r) => { throw new Error(`the teacher's client stopped: ${JSON.stringify(r.result)} ${r.stderr.slice(-1000)}`); })]);
    // baraka's laptop comes back
    b = await startXmppNode("baraka", near, dataDir);
    const r = await run;
    expect(r.result.ok, JSON.stringify(r.result)).toBe(true);
    const shows = r.result.shows as string[][];
    // on joining: amara available, baraka away with when he was near, the teacher herself available
    const first = (nick: string) => shows.find((s) => s[0] === nick)!;
    expect(first("amara").slice(0, 2)).toEqual(["amara", ""]);
    expect(first("baraka")[1]).toBe("away");
    expect(first("baraka")[2]).toMatch(/^near \d+ minutes? ago: messages wait and travel when your laptops meet$/);
    expect(first("mwalimu")[1]).toBe("");
    // then, live, baraka available again
    expect(shows.filter((s) => s[0] === "baraka").map((s) => s[1])).toEqual(["away", ""]);
  }, 240_000);
});
