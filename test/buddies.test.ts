// The buddy list with the pigeon command, as a child uses it: laptops met nearby are offered, the
// child chooses buddies, names and groups them, blocks someone and lifts it, with the node running
// and with it stopped; the list survives restarts.
import { afterAll, describe, expect, it } from "vitest";
import { cleanupAll, pigeon, pigeonJson, startDaemon, waitFor } from "./helpers.js";

afterAll(cleanupAll);

const quiet = ["--no-mdns", "--no-xmpp"];

interface Buddy { address: string; fingerprint: string; petname?: string; groups: string[]; blocked: boolean; how: string }
interface Person { address: string; fingerprint: string }
interface Nearby extends Person { buddy: boolean; connected?: boolean; lastMet: number }
interface Msg { id: string; body: string; state?: string; from: string }

describe("pigeon buddies and pigeon nearby", () => {
  it("meeting offers a laptop as nearby; the child adds, names, groups, blocks and removes; stopped or running", async () => {
    const a = await startDaemon("amara", { args: quiet });
    const b = await startDaemon("baraka", { args: [...quiet, "--peer", `127.0.0.1:${a.syncPort}`] });
    const [near] = await waitFor(async () => {
      const n = await pigeonJson<Nearby[]>(a, "nearby");
      return n.length ? n : undefined;
    }, "amara to meet baraka");
    expect(near).toMatchObject({ address: "baraka@local", buddy: false, connected: true });
    expect((await pigeon(a, "nearby")).stdout).toContain("pigeon buddies add baraka@local");
    expect(await pigeonJson<{ buddies: Buddy[]; blocked: Person[] }>(a, "buddies")).toEqual({ buddies: [], blocked: [] });
    expect((await pigeon(a, "buddies")).stdout).toMatch(/^No buddies yet/);

    // until amara chooses him, what baraka writes is a request
    expect((await pigeon(b, "send", "amara@local", "hi amara")).code).toBe(0);
    await waitFor(async () => (await pigeonJson<unknown[]>(a, "requests")).length === 1, "the request");
    expect(await pigeonJson<Msg[]>(a, "inbox")).toEqual([]);
    const added = await pigeon(a, "buddies", "add", "baraka@local");
    expect(added).toMatchObject({ code: 0 });
    expect(added.stdout).toContain("baraka@local is one of your buddies");
    expect((await pigeonJson<Msg[]>(a, "inbox")).map((m) => m.body)).toEqual(["hi amara"]);
    await waitFor(async () => (await pigeonJson<Msg[]>(b, "outbox"))[0]?.state === "delivered", "the receipt, now that he is a buddy");

    expect((await pigeon(a, "buddies", "rename", "baraka@local", "bara")).stdout).toContain('You call baraka@local "bara" now');
    expect((await pigeonJson<Buddy>(a, "buddies", "group", "bara", "football")).groups).toEqual(["football"]);
    expect((await pigeonJson<Buddy>(a, "buddies", "group", "bara", "my class")).groups).toEqual(["football", "my class"]);
    expect((await pigeonJson<Buddy>(a, "buddies", "ungroup", "bara", "football")).groups).toEqual(["my class"]);
    const listed = (await pigeon(a, "buddies")).stdout;
    expect(listed).toMatch(/^Buddies \(1\)\n {2}baraka@local "bara" {2}\[my class\] {2}met nearby {2}[a-z2-7-]{19}$/m);
    // sending by the petname works
    expect((await pigeon(a, "send", "bara", "see you at the well")).code).toBe(0);

    // blocked: nothing he writes is shown, and a message to him is refused
    expect((await pigeon(a, "buddies", "block", "bara")).stdout).toContain("Blocked baraka@local");
    expect((await pigeonJson<{ buddies: Buddy[] }>(a, "buddies")).buddies[0]!.blocked).toBe(true);
    expect(await pigeonJson<Msg[]>(a, "inbox")).toEqual([]);
    const refused = await pigeon(a, "send", "bara", "hello?");
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/you blocked baraka@local/);
    expect(await pigeonJson<Nearby[]>(a, "nearby")).toEqual([]);
    expect((await pigeon(a, "buddies", "unblock", "bara")).stdout).toContain("Unblocked baraka@local");
    expect((await pigeonJson<Msg[]>(a, "inbox")).map((m) => m.body)).toEqual(["hi amara"]);

    // bad usage is exit 2; someone not on the list is the node's answer (exit 1)
    expect((await pigeon(a, "buddies", "rename", "bara")).code).toBe(2);
    expect((await pigeon(a, "buddies", "frobnicate", "bara")).code).toBe(2);
    expect((await pigeon(a, "buddies", "rename", "bara", "Two Words")).code).toBe(2);
    const nobody = await pigeon(a, "buddies", "add", "nobody@local");
    expect(nobody.code).toBe(1);
    expect(nobody.stderr).toMatch(/unknown address nobody@local/);

    // with the node stopped the list is still there and can be changed; the node takes it up at start
    await a.stop();
    expect((await pigeonJson<{ buddies: Buddy[] }>(a, "buddies")).buddies.map((x) => [x.address, x.petname, x.groups])).toEqual([
      ["baraka@local", "bara", ["my class"]],
    ]);
    expect((await pigeon(a, "buddies", "remove", "bara")).stdout).toContain("baraka@local is no longer one of your buddies");
    expect((await pigeonJson<{ buddies: Buddy[] }>(a, "buddies")).buddies).toEqual([]);
    const a2 = await startDaemon("amara", { dataDir: a.dataDir, args: quiet });
    expect((await pigeonJson<{ buddies: Buddy[] }>(a2, "buddies")).buddies).toEqual([]);
    // added back: the petname and group come back with him
    expect((await pigeonJson<Buddy>(a2, "buddies", "add", "baraka@local"))).toMatchObject({ petname: "bara", groups: ["my class"] });
    expect((await pigeon(a2, "--help")).stdout).toContain("buddies block WHO");
  }, 120_000);
});
