// Class channels through the `pigeon` command, with real daemons on loopback: a teacher starts a
// channel, adds the class, writes; a child added while away gets it later from a classmate; a child
// removed gets nothing written after; read counts come back.
import { afterAll, describe, expect, it } from "vitest";
import { cleanupAll, freePort, pigeon, pigeonJson, startDaemon, waitFor, type Daemon } from "./helpers.js";

afterAll(cleanupAll);

interface Msg { body: string; channel?: string; from: string; direction: string; state?: string; counts?: { members: number; delivered: number; read: number } }
interface Chan { title: string; member: boolean; members: { address: string }[] }

const inChannel = async (d: Daemon) => (await pigeonJson<Msg[]>(d, "inbox")).filter((m) => m.channel === "5B science").map((m) => m.body).sort();

describe("pigeon channel", () => {
  it("a teacher's class channel, written to while the class is apart", async () => {
    const pt = await freePort();
    const quiet = ["--no-mdns", "--no-xmpp"];
    const teacher = await startDaemon("mwalimu", { args: [...quiet, "--port", String(pt)] });
    const near = ["--peer", `127.0.0.1:${pt}`];
    const amara = await startDaemon("amara", { args: [...quiet, ...near] });
    const baraka = await startDaemon("baraka", { args: [...quiet, ...near] });
    let esi = await startDaemon("esi", { args: [...quiet, ...near] });
    await waitFor(async () => (await pigeon(teacher, "peers")).stdout.match(/amara@local|baraka@local|esi@local/g)?.length === 3, "the class to meet the teacher");
    // esi goes home before the channel exists
    await esi.stop();

    const created = await pigeon(teacher, "channel", "create", "5B science");
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toContain("Started the channel 5B science");
    const added = await pigeon(teacher, "channel", "add", "5B science", "amara", "baraka");
    expect(added.code, added.stderr).toBe(0);
    expect(added.stdout).toContain("5B science  owner mwalimu@local, 3 members");
    // a student cannot change who is in it
    await waitFor(async () => (await pigeonJson<Chan[]>(amara, "channels")).length === 1, "amara to learn of the channel");
    const refused = await pigeon(amara, "channel", "remove", "5B science", "baraka");
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("only the owner and admins");

    const sent = await pigeon(teacher, "send", "5B science", "Bring a leaf tomorrow");
    expect(sent.code, sent.stderr).toBe(0);
    for (const kid of [amara, baraka]) await waitFor(async () => (await inChannel(kid)).length === 1, `${kid.name} to get it`);
    const inbox = await pigeon(amara, "inbox");
    expect(inbox.stdout).toMatch(/from mwalimu@local in channel 5B science/);
    await waitFor(async () => (await pigeon(teacher, "outbox")).stdout.includes("delivered to 2 of 2, read by 0"), "delivered to 2 of 2");
    expect((await pigeon(amara, "read")).code).toBe(0);
    await waitFor(async () => (await pigeon(teacher, "outbox")).stdout.includes("delivered to 2 of 2, read by 1"), "read by 1");

    // a channel whose name is also a valid address ("club", no one's): pigeon send finds the channel
    expect((await pigeon(teacher, "channel", "create", "club")).code).toBe(0);
    expect((await pigeon(teacher, "channel", "add", "club", "amara")).code).toBe(0);
    const club = await pigeon(teacher, "send", "club", "Football at four");
    expect(club.code, club.stderr).toBe(0);
    expect(club.stdout).toContain("to channel club");

    // esi is added while away; the teacher writes; esi later meets only amara, who carries it
    expect((await pigeon(teacher, "channel", "add", "5B science", "esi")).code).toBe(0);
    // baraka is removed: what is written from now on is sealed with a key he never gets
    const removed = await pigeon(teacher, "channel", "remove", "5B science", "baraka");
    expect(removed.code, removed.stderr).toBe(0);
    expect(removed.stdout).toContain("a new key");
    expect((await pigeon(teacher, "send", "5B science", "Lesson two: roots")).code).toBe(0);
    await waitFor(async () => (await inChannel(amara)).includes("Lesson two: roots"), "amara to get lesson two");
    await teacher.stop();
    esi = await startDaemon("esi", { dataDir: esi.dataDir, args: [...quiet, "--peer", `127.0.0.1:${amara.syncPort}`] });
    await waitFor(async () => (await inChannel(esi)).includes("Lesson two: roots"), "esi to get lesson two through amara", 30_000);
    expect(await inChannel(esi)).toEqual(["Lesson two: roots"]); // written before she was added: not hers
    const channels = await pigeon(esi, "channels");
    expect(channels.stdout).toContain("5B science  owner mwalimu@local, 3 members");
    expect(channels.stdout).not.toContain("baraka");
    // esi answers in the channel; amara gets it
    expect((await pigeon(esi, "send", "5B science", "I have a bean plant")).code).toBe(0);
    await waitFor(async () => (await inChannel(amara)).includes("I have a bean plant"), "amara to get esi's answer");

    // baraka was connected to the teacher all along (until the teacher left): he learnt he was removed, and has nothing after
    await waitFor(async () => (await pigeonJson<Chan[]>(baraka, "channels"))[0]?.member === false, "baraka to see he was removed");
    expect((await pigeon(baraka, "channels")).stdout).toContain("you were removed");
    expect(await inChannel(baraka)).toEqual(["Bring a leaf tomorrow"]);
    const again = await pigeon(baraka, "send", "5B science", "let me back in");
    expect(again.code).toBe(2);
    expect(again.stderr).toContain("you are no longer in");
  }, 240_000);
});
