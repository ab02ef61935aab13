// Relay points between villages the way a school's administrator meets them: each school server
// started as its village's relay point prints the line the other village adds (--federate), the two
// link across schools, and `pigeon routes` on each shows the other village, the way and the expected
// delay; a relay point of a village outside the federation links too, but its route announcements
// are refused, with the reason in the routes view and the log. Real processes on loopback.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cleanupAll, freePort, pigeon, pigeonJson, startDaemon, waitFor, type Daemon } from "./helpers.js";

afterAll(cleanupAll);

const quiet = ["--no-mdns", "--no-xmpp"];
interface RoutesView {
  relayPoint: string | null;
  federation: string[];
  routes: { village: string; via: string; carrier: string; expectedSeconds: number; hops: number }[];
  refused: string[];
}
const federateLine = (d: Daemon) => d.output().match(/--federate (\S+=\S+)/)![1]!;
const log = (d: Daemon) => readFileSync(join(d.dataDir, "node.log"), "utf8");

describe("relay points between villages", () => {
  it("two villages' relay points federate, link across schools and route to each other; an outsider's announcements are refused", async () => {
    // first starts make each school's key; each prints what the other village adds
    let [kisumu, siaya] = await Promise.all([
      startDaemon("kisumu", { readyMs: 90_000, args: [...quiet, "--school", "kisumu-primary", "--relay-point", "kisumu-primary"] }),
      startDaemon("siaya", { readyMs: 90_000, args: [...quiet, "--school", "siaya-primary", "--relay-point", "siaya-primary"] }),
    ]);
    expect(kisumu.output()).toContain("relay point of kisumu-primary, exchanging mail with no other village yet");
    const kisumuKey = federateLine(kisumu);
    const siayaKey = federateLine(siaya);
    expect(kisumuKey).toMatch(/^kisumu-primary=/);
    expect((await pigeonJson<RoutesView>(kisumu, "routes")).routes).toEqual([]);
    await Promise.all([kisumu.stop(), siaya.stop()]);

    const port = await freePort();
    kisumu = await startDaemon("kisumu", { readyMs: 90_000, dataDir: kisumu.dataDir, args: [...quiet, "--school", "kisumu-primary", "--relay-point", "kisumu-primary", "--port", String(port), "--federate", siayaKey] });
    expect(kisumu.output()).toContain("relay point of kisumu-primary, exchanging mail with siaya-primary");
    // the federation is remembered: siaya's second start names kisumu once, later starts need nothing
    siaya = await startDaemon("siaya", { readyMs: 90_000, dataDir: siaya.dataDir, args: [...quiet, "--school", "siaya-primary", "--relay-point", "siaya-primary", "--federate", kisumuKey, "--peer", `127.0.0.1:${port}`] });

    const k = await waitFor(async () => {
      const r = await pigeonJson<RoutesView>(kisumu, "routes");
      return r.routes.some((x) => x.village === "siaya-primary") ? r : undefined;
    }, "kisumu to learn a route to siaya", 30_000);
    expect(k.relayPoint).toBe("kisumu-primary");
    expect(k.federation).toEqual(["kisumu-primary", "siaya-primary"]);
    expect(k.routes).toEqual([{ village: "siaya-primary", via: "siaya-primary", carrier: "siaya@siaya-primary", expectedSeconds: expect.any(Number), nextContact: null, hops: 0 }]);
    const text = (await pigeon(kisumu, "routes")).stdout;
    expect(text).toContain("Relay point kisumu-primary; villages of the federation: kisumu-primary, siaya-primary");
    expect(text).toMatch(/siaya-primary: expected in .+, via a direct carrier with siaya@siaya-primary/);
    await waitFor(async () => (await pigeonJson<RoutesView>(siaya, "routes")).routes.some((x) => x.village === "kisumu-primary"), "siaya to learn a route to kisumu", 30_000);

    // a third school's relay point, not in the federation, links to kisumu: what it announces is refused
    const atlantis = await startDaemon("atlantis", { readyMs: 90_000, args: [...quiet, "--school", "atlantis-primary", "--relay-point", "atlantis-primary", "--federate", kisumuKey, "--peer", `127.0.0.1:${port}`] });
    const refused = await waitFor(async () => {
      const r = await pigeonJson<RoutesView>(kisumu, "routes");
      return r.refused.find((x) => x.includes("atlantis-primary"));
    }, "kisumu to refuse atlantis's announcement", 30_000);
    expect(refused).toContain('"atlantis-primary" is not a village of the federation');
    expect(log(kisumu)).toContain("refused a route announcement handed over by atlantis@atlantis-primary");
    expect((await pigeonJson<RoutesView>(kisumu, "routes")).routes.map((r) => r.village)).toEqual(["siaya-primary"]);
    // a laptop is no relay point
    const laptop = await startDaemon("amara", { readyMs: 90_000, args: quiet });
    expect((await pigeon(laptop, "routes")).stdout).toContain("This node is not a relay point");
    // a bad --federate is refused before anything starts
    const bad = await pigeon(laptop, "start", "--relay-point", "kisumu-primary", "--federate", "nowhere");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("is not HOME=KEY");
    // a mule travels between villages: it is nobody's school server, relay point or laptop, and needs a label
    const notMule = await pigeon(laptop, "start", "--mule", "Tuesday bus", "--relay-point", "kisumu-primary");
    expect(notMule.code).toBe(2);
    expect(notMule.stderr).toContain("--mule is a node that travels between villages");
    const noLabel = await pigeon(laptop, "start", "--mule", "!!!");
    expect(noLabel.code).toBe(2);
    expect(noLabel.stderr).toContain('needs a label with letters or digits, e.g. --mule "Tuesday bus"');
    await atlantis.stop();
  }, 240_000); // about a minute; several times that on a loaded machine
});
