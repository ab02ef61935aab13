// A child of one village writes to a pen-pal of another, the way they would: real processes on
// loopback. Two federated relay points (school servers) on a link between them; each child's laptop
// links only to its own village's relay point. The pen-pals swapped cards (`pigeon card`,
// `pigeon contacts add`); `pigeon send name@other-home` goes through both relay points inside the
// kind-7 envelope, the outbox says where it is going and when it is expected, the message arrives
// once, and the outbox then says delivered.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cleanupAll, freePort, pigeon, pigeonJson, startDaemon, waitFor, type Daemon } from "./helpers.js";

afterAll(cleanupAll);

const quiet = ["--no-mdns", "--no-xmpp"];
// a relay point signs a fresh route announcement at most once a minute; the test cannot wait for it
const env = { PIGEON_ANNOUNCE_GAP_MS: "1000" };
const federateLine = (d: Daemon) => d.output().match(/--federate (\S+=\S+)/)![1]!;
const log = (d: Daemon) => readFileSync(join(d.dataDir, "node.log"), "utf8");
interface Msg { body: string; to: string[]; state?: string; sentTo?: string; village?: { dest: string; via?: string; carrier?: string; expectedAt?: number } }

describe("mail between villages, real processes", () => {
  it("a child's message reaches a pen-pal of another village through both relay points, and comes back delivered", async () => {
    let [kisumu, siaya] = await Promise.all([
      startDaemon("kisumu", { readyMs: 90_000, env, args: [...quiet, "--school", "kisumu-primary", "--relay-point", "kisumu-primary"] }),
      startDaemon("siaya", { readyMs: 90_000, env, args: [...quiet, "--school", "siaya-primary", "--relay-point", "siaya-primary"] }),
    ]);
    const kisumuKey = federateLine(kisumu);
    const siayaKey = federateLine(siaya);
    await Promise.all([kisumu.stop(), siaya.stop()]);
    const [kPort, sPort] = [await freePort(), await freePort()];
    kisumu = await startDaemon("kisumu", { readyMs: 90_000, env, dataDir: kisumu.dataDir, args: [...quiet, "--school", "kisumu-primary", "--relay-point", "kisumu-primary", "--port", String(kPort), "--federate", siayaKey] });
    siaya = await startDaemon("siaya", { readyMs: 90_000, env, dataDir: siaya.dataDir, args: [...quiet, "--school", "siaya-primary", "--relay-point", "siaya-primary", "--port", String(sPort), "--federate", kisumuKey, "--peer", `127.0.0.1:${kPort}`] });
    await waitFor(async () => (await pigeonJson<{ routes: unknown[] }>(kisumu, "routes")).routes.length > 0, "kisumu to learn its route to siaya", 30_000);
    await waitFor(async () => (await pigeonJson<{ routes: unknown[] }>(siaya, "routes")).routes.length > 0, "siaya to learn its route to kisumu", 30_000);

    const [amara, baraka] = await Promise.all([
      startDaemon("amara", { readyMs: 90_000, args: [...quiet, "--home", "kisumu-primary", "--peer", `127.0.0.1:${kPort}`] }),
      startDaemon("baraka", { readyMs: 90_000, args: [...quiet, "--home", "siaya-primary", "--peer", `127.0.0.1:${sPort}`] }),
    ]);
    // the pen-pals' cards, swapped on paper
    const [ca, cb] = [(await pigeon(amara, "card")).stdout.trim(), (await pigeon(baraka, "card")).stdout.trim()];
    expect((await pigeon(amara, "contacts", "add", cb)).code).toBe(0);
    expect((await pigeon(baraka, "contacts", "add", ca)).code).toBe(0);
    // each laptop learns from its relay point's announcement that the other home is a village of the federation
    await waitFor(() => log(kisumu).includes("route announcement") && log(siaya).includes("route announcement"), "announcements", 30_000);

    const sent = await pigeon(amara, "send", "baraka@siaya-primary", "Habari from Kisumu!");
    expect(sent.code).toBe(0);
    const outbox = await waitFor(async () => {
      const o = await pigeonJson<Msg[]>(amara, "outbox");
      return o[0]?.village?.expectedAt !== undefined && o[0].state !== "waiting" ? o : undefined;
    }, "amara's outbox to say the message is on its way", 60_000);
    expect(outbox[0]!.village!.dest).toBe("siaya-primary");
    expect(outbox[0]!.sentTo).toBe("kisumu@kisumu-primary");
    const text = (await pigeon(amara, "outbox")).stdout;
    // (unless the receipt already came back: then it says delivered)
    // the carrier is the one kisumu's relay point announced: the link to siaya's relay point
    expect(outbox[0]!.village!.carrier).toBe("siaya@siaya-primary");
    if (!text.includes("Delivered")) expect(text).toMatch(/to kisumu@kisumu-primary; on its way to siaya-primary, directly with siaya@siaya-primary, expected \d{4}-\d\d-\d\d \d\d:\d\d; not yet delivered/);

    const inbox = await waitFor(async () => {
      const i = await pigeonJson<Msg[]>(baraka, "inbox");
      return i.length ? i : undefined;
    }, "baraka to get amara's message", 60_000);
    expect(inbox.map((m) => m.body)).toEqual(["Habari from Kisumu!"]);
    expect(log(siaya)).toContain("took mail for this village out of envelope");
    await waitFor(async () => (await pigeonJson<Msg[]>(amara, "outbox"))[0]?.state === "delivered", "the delivered receipt to come back to amara", 60_000);
    expect((await pigeonJson<Msg[]>(baraka, "inbox")).length).toBe(1);
  }, 300_000); // a minute or two; more on a loaded machine
});
