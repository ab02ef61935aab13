// A village's relay point on a box of its own, not the school server (issue 18): its first start
// prints its key and stops; the school server certifies that key (`pigeon school relay-point KEY
// --federate ...`) and prints a grant; the box, enrolled in the school so that the school's laptops
// link with it, starts with the grant, and mail between a child of that village and a pen pal of
// another village goes through it and comes back delivered. A grant for another key is refused.
// Real processes on loopback.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cleanupAll, freePort, pigeon, pigeonJson, run, startDaemon, tempDir, waitFor, type Daemon } from "./helpers.js";

afterAll(cleanupAll);

const quiet = ["--no-mdns", "--no-xmpp"];
const env = { PIGEON_ANNOUNCE_GAP_MS: "500" };
const log = (d: Daemon) => readFileSync(join(d.dataDir, "node.log"), "utf8");
interface Msg { body: string; state: string }

/** Enrols the person of `laptop`'s data directory at `school` (the teacher copies the token). */
async function enrol(school: Daemon, laptop: Pick<Daemon, "dataDir">, ...options: string[]): Promise<void> {
  const card = (await pigeon(laptop, "card")).stdout.trim();
  const r = await pigeon(school, "school", "enrol", card, ...options);
  expect(r.code, r.stderr).toBe(0);
  const e = await pigeon(laptop, "enrol", r.stdout.match(/pigeon-school1:\S+/)![0]);
  expect(e.code, e.stderr).toBe(0);
}

describe("a relay point on a box of its own", () => {
  it("is certified by its school server's grant and carries mail between villages", async () => {
    // siaya-primary: its relay point is its school server, as before
    let siaya = await startDaemon("siaya", { readyMs: 90_000, env, args: [...quiet, "--school", "siaya-primary", "--relay-point", "siaya-primary"] });
    const siayaLine = siaya.output().match(/--federate (\S+=\S+)/)![1]!;
    // kisumu-primary: a school server, and a relay box beside it
    const kisumu = await startDaemon("kisumu", { readyMs: 90_000, args: [...quiet, "--school", "kisumu-primary"] });
    const box = { dataDir: tempDir("relay-box") };
    const first = await run(["start", "--data", box.dataDir, "--relay-point", "kisumu-primary", ...quiet, "--port", "0", "--control-port", "0"]);
    expect(first.code).not.toBe(0);
    expect(first.stdout).toContain("created identity relay@kisumu-primary");
    const key = first.stderr.match(/pigeon school relay-point (\S+) --federate/)![1]!;

    // a bad key and a grant for another key are refused, with the reason
    expect((await pigeon(kisumu, "school", "relay-point", "not-a-key")).stderr).toMatch(/is not a relay point's key/);
    const other = await pigeon(kisumu, "school", "relay-point", Buffer.alloc(32, 7).toString("base64"));
    const wrongGrant = other.stdout.match(/--relay-grant (\S+)/)![1]!;
    const refused = await run(["start", "--data", box.dataDir, "--relay-point", "kisumu-primary", "--relay-grant", wrongGrant, ...quiet, "--port", "0", "--control-port", "0"]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/--relay-grant: this grant certifies another relay point's key/);

    const granted = await pigeon(kisumu, "school", "relay-point", key, "--federate", siayaLine);
    expect(granted.code, granted.stderr).toBe(0);
    expect(granted.stdout).toContain("Certified the relay point of kisumu-primary, exchanging mail with siaya-primary.");
    const grant = granted.stdout.match(/--relay-grant (\S+)/)![1]!;
    const kisumuLine = granted.stdout.match(/--federate (\S+=\S+)/)![1]!;
    // the box is enrolled in the school like a teacher's laptop, so the school's laptops link with it
    await enrol(kisumu, box, "--class", "staff", "--role", "teacher");

    await siaya.stop();
    const [bPort, sPort] = [await freePort(), await freePort()];
    siaya = await startDaemon("siaya", { readyMs: 90_000, env, dataDir: siaya.dataDir, args: [...quiet, "--school", "siaya-primary", "--relay-point", "siaya-primary", "--port", String(sPort), "--federate", kisumuLine] });
    const relay = await startDaemon("relay", { readyMs: 90_000, env, dataDir: box.dataDir, args: [...quiet, "--relay-point", "kisumu-primary", "--relay-grant", grant, "--port", String(bPort), "--peer", `127.0.0.1:${sPort}`, "--peer", `127.0.0.1:${kisumu.syncPort}`] });
    expect(relay.output()).toContain("relay point of kisumu-primary (certified by its school server), exchanging mail with siaya-primary");
    await waitFor(async () => (await pigeonJson<{ routes: unknown[] }>(relay, "routes")).routes.length > 0, "the box to learn its route to siaya", 60_000);
    await waitFor(async () => (await pigeonJson<{ routes: unknown[] }>(siaya, "routes")).routes.length > 0, "siaya to learn its route to kisumu through the box", 60_000);

    // the pen pals, each enrolled by their own school; amara's laptop meets only the box
    const [amara, baraka] = await Promise.all([
      startDaemon("amara", { readyMs: 90_000, args: [...quiet, "--home", "kisumu-primary", "--peer", `127.0.0.1:${bPort}`] }),
      startDaemon("baraka", { readyMs: 90_000, args: [...quiet, "--home", "siaya-primary", "--peer", `127.0.0.1:${sPort}`] }),
    ]);
    await enrol(kisumu, amara, "--class", "5B");
    await enrol(siaya, baraka, "--class", "6A");
    // the school's entries (siaya among its villages) reach amara through the box, which sits beside the school server
    await waitFor(() => log(amara).includes("kisumu-primary exchanges mail with siaya-primary"), "amara to learn her school's villages through the box", 60_000);
    expect((await pigeon(amara, "contacts", "add", (await pigeon(baraka, "card")).stdout.trim())).code).toBe(0);
    expect((await pigeon(baraka, "contacts", "add", (await pigeon(amara, "card")).stdout.trim())).code).toBe(0);

    expect((await pigeon(amara, "send", "baraka@siaya-primary", "Habari from the relay box!")).code).toBe(0);
    const inbox = await waitFor(async () => {
      const i = await pigeonJson<Msg[]>(baraka, "inbox");
      return i.length ? i : undefined;
    }, "baraka to get amara's message", 90_000);
    expect(inbox.map((m) => m.body)).toEqual(["Habari from the relay box!"]);
    await waitFor(async () => (await pigeonJson<Msg[]>(amara, "outbox"))[0]?.state === "delivered", "the delivered receipt to come back to amara", 90_000);
  }, 400_000);
});
