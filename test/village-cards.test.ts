// Pen pals in two villages, the way users meet it (issue 18): each child's laptop is enrolled by its
// own school; kisumu-primary's relay point exchanges mail with siaya-primary, and its laptops learn
// siaya's school key from their school's directory. A child adds her pen pal's card (`pigeon card`,
// `pigeon contacts add`) and sees him as his school vouches for him; a stranger whose card says he is
// that pen pal (with a "siaya-primary" school of his own behind it) is refused with the reason.
// Real processes on loopback.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cleanupAll, freePort, pigeon, pigeonJson, startDaemon, waitFor, type Daemon } from "./helpers.js";

afterAll(cleanupAll);

const quiet = ["--no-mdns", "--no-xmpp"];
const log = (d: Daemon) => readFileSync(join(d.dataDir, "node.log"), "utf8");

interface Contact { address: string; vouch?: { status: string; school: string; class?: string; role?: string; reason?: string } }

/** Enrols the laptop's person at the school server and on the laptop (the teacher copies the token). */
async function enrol(school: Daemon, laptop: Daemon, cls: string): Promise<void> {
  const card = (await pigeon(laptop, "card")).stdout.trim();
  const r = await pigeon(school, "school", "enrol", card, "--class", cls);
  expect(r.code, r.stderr).toBe(0);
  const e = await pigeon(laptop, "enrol", r.stdout.match(/pigeon-school1:\S+/)![0]);
  expect(e.code, e.stderr).toBe(0);
}

describe("pen pals' cards between villages", () => {
  it("a pen pal's card is shown as his school vouches for him; a stranger's card in his name is refused; he moves villages and keeps his keys", async () => {
    const siaya = await startDaemon("siaya", { readyMs: 90_000, args: [...quiet, "--school", "siaya-primary", "--relay-point", "siaya-primary"] });
    const siayaLine = siaya.output().match(/--federate (\S+=\S+)/)![1]!;
    const kPort = await freePort();
    const kisumu = await startDaemon("kisumu", { readyMs: 90_000, args: [...quiet, "--school", "kisumu-primary", "--relay-point", "kisumu-primary", "--port", String(kPort), "--federate", siayaLine] });
    expect(log(kisumu)).toContain("told the school's laptops the villages it exchanges mail with: siaya-primary");

    const amara = await startDaemon("amara", { args: [...quiet, "--home", "kisumu-primary", "--peer", `127.0.0.1:${kPort}`] });
    const baraka = await startDaemon("baraka", { args: [...quiet, "--home", "siaya-primary"] });
    await enrol(kisumu, amara, "5B");
    await enrol(siaya, baraka, "6A");
    // amara's laptop takes its school's entries from the relay point, the villages it exchanges mail with among them
    await waitFor(() => log(amara).includes("kisumu-primary exchanges mail with siaya-primary"), "amara's laptop to learn siaya-primary's school", 60_000);

    // a stranger calls himself baraka@siaya-primary, enrolled by a "siaya-primary" school of his own
    const stranger = await startDaemon("baraka", { args: [...quiet, "--home", "siaya-primary", "--school", "siaya-primary"] });
    await enrol(stranger, stranger, "6A");
    const fake = await pigeon(amara, "contacts", "add", (await pigeon(stranger, "card")).stdout.trim());
    expect(fake.code).not.toBe(0);
    expect(fake.stderr).toMatch(/this card says baraka@siaya-primary, but siaya-primary's school does not vouch for it: the school's word on the card does not hold \(not signed by the school\)/);
    // and one with no school's word at all (a laptop no school enrolled)
    const plain = await startDaemon("baraka", { args: [...quiet, "--home", "siaya-primary"] });
    const bare = await pigeon(amara, "contacts", "add", (await pigeon(plain, "card")).stdout.trim());
    expect(bare.code).not.toBe(0);
    expect(bare.stderr).toMatch(/carries no word of siaya-primary's school/);
    expect((await pigeonJson<Contact[]>(amara, "contacts")).map((c) => c.address).filter((a) => a.includes("siaya-primary"))).toEqual([]);

    // the real pen pal's card
    const added = await pigeon(amara, "contacts", "add", (await pigeon(baraka, "card")).stdout.trim());
    expect(added.code, added.stderr).toBe(0);
    expect(added.stdout).toContain("Added baraka@siaya-primary to your buddies");
    const contacts = await pigeonJson<Contact[]>(amara, "contacts");
    expect(contacts.find((c) => c.address === "baraka@siaya-primary")?.vouch).toEqual({ status: "vouched", school: "siaya-primary", name: "baraka", class: "6A", role: "student" });
    expect((await pigeon(amara, "contacts")).stdout).toMatch(/baraka@siaya-primary .*\n    vouched by siaya-primary: 6A, student/);

    // baraka's family moves to Kisumu: kisumu's school enrols him, and he keeps his keys
    const fp = (await pigeonJson<{ fingerprint: string }>(baraka, "whoami")).fingerprint;
    const r = await pigeon(kisumu, "school", "enrol", (await pigeon(baraka, "card")).stdout.trim(), "--class", "6C");
    expect(r.code, r.stderr).toBe(0);
    const token = r.stdout.match(/pigeon-school1:\S+/)![0];
    const refused = await pigeon(baraka, "enrol", token);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/already belongs to siaya-primary .*pigeon enrol --move TOKEN/);
    const moved = await pigeon(baraka, "enrol", "--move", token);
    expect(moved.code, moved.stderr).toBe(0);
    expect(moved.stdout).toContain("You left siaya-primary; your buddies, conversations and keys stay with you.\nYou belong to kisumu-primary now: vouched by kisumu-primary: 6C, student.");
    expect(await pigeonJson<{ address: string; fingerprint: string }>(baraka, "whoami")).toMatchObject({ address: "baraka@kisumu-primary", fingerprint: fp });
  }, 240_000);
});
