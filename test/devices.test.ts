// A child with two devices, the way users do it with the pigeon command, in separate processes: the
// laptop shows a pairing code, the tablet is paired with it, the tablet then has the same outbox and
// inbox, what it sends arrives as the child's, read on one shows read on the other; the lost tablet is
// revoked, after which it gets nothing new and its classmate refuses it.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cleanupAll, freePort, pigeon, pigeonJson, startDaemon, tempDir, waitFor } from "./helpers.js";

interface Msg { id: string; from: string; to: string[]; body: string; state?: string; readAt?: number; direction: "in" | "out" }
interface Buddy { petname?: string; groups: string[] }
interface Device { id: string; thisDevice: boolean; holdsPersonKey: boolean; revoked?: { reason: string } }

afterAll(cleanupAll);

describe("one child, two devices", () => {
  it("pairs a tablet with the laptop: same mailbox on both, read state follows, a revoked tablet gets nothing new", async () => {
    const pa = await freePort();
    const pb = await freePort();
    const laptop = await startDaemon("amara", { args: ["--no-mdns", "--port", String(pa)] });
    const baraka = await startDaemon("baraka", { args: ["--no-mdns", "--port", String(pb), "--peer", `127.0.0.1:${pa}`] });
    await pigeonJson<Msg>(laptop, "send", "baraka@local", "hello from the laptop");
    await pigeonJson<Msg>(baraka, "send", "amara@local", "hi amara");
    await waitFor(async () => (await pigeonJson<Msg[]>(laptop, "inbox")).length === 1, "baraka's message on the laptop");

    // only the node can pair; the tablet's data directory is empty
    const before = await pigeonJson<Device[]>(laptop, "devices");
    expect(before).toHaveLength(1);
    expect(before[0]).toMatchObject({ thisDevice: true, holdsPersonKey: true });
    const shown = await pigeon(laptop, "devices", "add");
    expect(shown.code).toBe(0);
    const code = /pigeon pair ([a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4})/.exec(shown.stdout)![1]!;
    const tabletDir = tempDir("amara-tablet");
    // a wrong code is refused with a reason (and counts as a wrong try at the laptop)
    const wrong = await pigeon({ dataDir: tabletDir }, "pair", "aaaa-bbbb-cccc", "--no-mdns", "--peer", `127.0.0.1:${pa}`);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/amara@local is waiting for another code/);
    const paired = await pigeon({ dataDir: tabletDir }, "pair", code, "--no-mdns", "--peer", `127.0.0.1:${pa}`);
    expect(paired.stderr + paired.stdout).toContain("now a device of amara@local");
    expect(paired.code).toBe(0);
    const file = JSON.parse(readFileSync(join(tabletDir, "identity.json"), "utf8")) as { version: number; person: string; certificate?: string };
    expect(file.version).toBe(2);
    expect(file.certificate).toBeTruthy();
    const laptopWho = await pigeonJson<{ fingerprint: string }>(laptop, "whoami");
    expect((await pigeonJson<{ fingerprint: string; address: string }>({ dataDir: tabletDir }, "whoami"))).toMatchObject({
      address: "amara@local", fingerprint: laptopWho.fingerprint,
    });

    const tablet = await startDaemon("amara", { dataDir: tabletDir, args: ["--no-mdns", "--peer", `127.0.0.1:${pa}`, "--peer", `127.0.0.1:${pb}`] });
    // the same outbox (with its state) and inbox on the tablet
    await waitFor(async () => {
      const out = await pigeonJson<Msg[]>(tablet, "outbox");
      const inbox = await pigeonJson<Msg[]>(tablet, "inbox");
      return out.some((m) => m.body === "hello from the laptop" && m.to.includes("baraka@local")) && inbox.some((m) => m.body === "hi amara");
    }, "the laptop's conversations on the tablet", 30_000).catch((e) => {
      console.log("TABLET\n" + tablet.output() + "\nLAPTOP\n" + laptop.output());
      throw e;
    });
    const devices = await pigeonJson<Device[]>(laptop, "devices");
    expect(devices).toHaveLength(2);
    const tabletId = devices.find((d) => !d.thisDevice)!.id;

    // written on the tablet: it reaches baraka from amara, and shows in the laptop's outbox
    const hi = (await pigeonJson<Msg[]>(tablet, "inbox")).find((m) => m.body === "hi amara")!;
    await pigeonJson<Msg>(tablet, "reply", hi.id, "sent from the tablet");
    await waitFor(async () => (await pigeonJson<Msg[]>(baraka, "inbox")).some((m) => m.body === "sent from the tablet" && m.from === "amara@local"), "the tablet's message at baraka");
    await waitFor(async () => (await pigeonJson<Msg[]>(laptop, "outbox")).some((m) => m.body === "sent from the tablet"), "the tablet's message in the laptop's outbox");

    // read on the tablet shows read on the laptop (and to baraka)
    const second = await pigeonJson<Msg>(baraka, "send", "amara@local", "are you coming?");
    const onTablet = await waitFor(async () => (await pigeonJson<Msg[]>(tablet, "inbox")).find((m) => m.id === second.id), "baraka's second message on the tablet");
    expect(onTablet.readAt).toBeUndefined();
    expect((await pigeon(tablet, "read", second.id)).code).toBe(0);
    await waitFor(async () => (await pigeonJson<Msg[]>(laptop, "inbox")).find((m) => m.id === second.id)?.readAt !== undefined, "read on the laptop too");
    await waitFor(async () => (await pigeonJson<Msg[]>(baraka, "outbox")).find((m) => m.id === second.id)?.state === "read", "baraka sees read");

    // apart (the tablet's node stopped), each device edits the buddy list; when they meet again both
    // have both edits (the tablet edits with its node stopped, as a child does with the lid closed)
    await tablet.stop();
    expect((await pigeon(laptop, "buddies", "rename", "baraka@local", "bara")).code).toBe(0);
    const grouped = await pigeon(tablet, "buddies", "group", "baraka@local", "my-class");
    expect(grouped.code, grouped.stderr).toBe(0);
    const tablet2 = await startDaemon("amara", { dataDir: tabletDir, args: ["--no-mdns", "--peer", `127.0.0.1:${pa}`, "--peer", `127.0.0.1:${pb}`] });
    const both = (b: { petname?: string; groups: string[] } | undefined) => b?.petname === "bara" && b.groups.includes("my-class");
    for (const d of [laptop, tablet2])
      await waitFor(async () => both((await pigeonJson<{ buddies: (Buddy & { address: string })[] }>(d, "buddies")).buddies.find((b) => b.address === "baraka@local")), `both edits on ${d === laptop ? "the laptop" : "the tablet"}`, 30_000);

    // the tablet is lost: revoked on the laptop; the news reaches baraka, who refuses the tablet from then on
    const revoked = await pigeon(laptop, "devices", "revoke", tabletId, "lost on the bus");
    expect(revoked.code).toBe(0);
    expect((await pigeonJson<Device[]>(laptop, "devices")).find((d) => d.id === tabletId)?.revoked?.reason).toContain("lost on the bus");
    await waitFor(() => /refused a link from a revoked device/.test(baraka.output()) || /revoked 1 device/.test(baraka.output()), "baraka to learn of the revocation", 30_000);
    await pigeonJson<Msg>(tablet2, "reply", hi.id, "written on the lost tablet");
    const after = await pigeonJson<Msg>(baraka, "send", "amara@local", "see you tomorrow");
    await waitFor(async () => (await pigeonJson<Msg[]>(laptop, "inbox")).some((m) => m.id === after.id), "baraka's next message on the laptop");
    await new Promise((r) => setTimeout(r, 3000));
    expect((await pigeonJson<Msg[]>(tablet2, "inbox")).some((m) => m.id === after.id)).toBe(false);
    expect((await pigeonJson<Msg[]>(baraka, "inbox")).some((m) => m.body === "written on the lost tablet")).toBe(false);
  }, 180_000);
});
