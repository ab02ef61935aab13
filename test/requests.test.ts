// A stranger who never met the child writes through a carrier: the child sees a request (never in the
// inbox), can answer it, accept, ignore or report it, and manages contacts by name and fingerprint,
// all with the pigeon command.
import { afterAll, describe, expect, it } from "vitest";
import { cleanupAll, freePort, pigeon, pigeonJson, startDaemon, waitFor } from "./helpers.js";

interface Msg { id: string; from: string; body: string; state?: string; request?: boolean }
interface Request { from: string; fingerprint: string; messages: Msg[] }
interface Contact { address: string; fingerprint: string; how: string; petname?: string }

afterAll(cleanupAll);

describe("requests and contacts from the command line", () => {
  it("a stranger's message waits under requests; the child answers, accepts, renames and removes", async () => {
    const pk = await freePort();
    const bus = await startDaemon("bus", { args: ["--no-mdns", "--port", String(pk)] });
    const child = await startDaemon("zawadi", { args: ["--no-mdns", "--peer", `127.0.0.1:${pk}`] });
    const stranger = await startDaemon("amara", { args: ["--no-mdns", "--peer", `127.0.0.1:${pk}`] });
    // the stranger has the child's card; the child never met nor added the stranger
    const card = (await pigeon(child, "card")).stdout.trim();
    expect((await pigeon(stranger, "contacts", "add", card)).code).toBe(0);
    await pigeonJson<Msg>(stranger, "send", "zawadi@local", "meet me after school");
    const [req] = await waitFor(async () => {
      const r = await pigeonJson<Request[]>(child, "requests");
      return r.length ? r : undefined;
    }, "the request to reach the child through the bus");
    expect(req!.from).toMatch(/^amara@local#[a-z2-7]{4}$/);
    expect(req!.messages.map((m) => m.body)).toEqual(["meet me after school"]);
    expect(await pigeonJson<Msg[]>(child, "inbox")).toEqual([]);
    const shown = await pigeon(child, "requests");
    expect(shown.stdout).toContain("not verified");
    expect(shown.stdout).toContain(`pigeon requests accept ${req!.from}`);

    // answering works without knowing the stranger's name
    const answer = await pigeonJson<Msg>(child, "reply", req!.messages[0]!.id, "who are you?");
    expect(answer.body).toBe("who are you?");
    await waitFor(async () => (await pigeonJson<Msg[]>(stranger, "inbox")).some((m) => m.body === "who are you?"), "the answer");
    // no receipt went back while it was a request
    expect((await pigeonJson<Msg[]>(stranger, "outbox"))[0]!.state).not.toBe("delivered");

    // accepted: now a buddy; the message moves to the inbox and the receipt travels back
    expect((await pigeon(child, "requests", "accept", req!.from)).code).toBe(0);
    expect((await pigeonJson<Msg[]>(child, "inbox")).map((m) => m.body)).toEqual(["meet me after school"]);
    await waitFor(async () => (await pigeonJson<Msg[]>(stranger, "outbox"))[0]!.state === "delivered", "the delivered receipt");

    // the child's own name for them, then removal
    const renamed = await pigeonJson<Contact>(child, "contacts", "rename", req!.from, "amara-from-far");
    expect(renamed.petname).toBe("amara-from-far");
    expect((await pigeonJson<Msg>(child, "send", "amara-from-far", "hello again")).body).toBe("hello again");
    expect((await pigeon(child, "contacts", "remove", req!.fingerprint)).code).toBe(0);
    expect((await pigeonJson<Contact[]>(child, "contacts")).map((c) => c.address)).toEqual(["bus@local"]);
    const bad = await pigeon(child, "requests", "accept", "nobody@local");
    expect(bad.code).toBe(1); // a valid address nobody has: refused (1), not bad usage (2)
    expect(bad.stderr).toMatch(/unknown address nobody@local/);
  }, 120_000);

  it("ignored and reported requests stay hidden; reports are kept for the school", async () => {
    const pk = await freePort();
    const bus = await startDaemon("bus", { args: ["--no-mdns", "--port", String(pk)] });
    const child = await startDaemon("zawadi", { args: ["--no-mdns", "--peer", `127.0.0.1:${pk}`] });
    const card = (await pigeon(child, "card")).stdout.trim();
    for (const name of ["x1", "x2"]) {
      const s = await startDaemon(name, { args: ["--no-mdns", "--peer", `127.0.0.1:${pk}`] });
      expect((await pigeon(s, "contacts", "add", card)).code).toBe(0);
      await pigeonJson<Msg>(s, "send", "zawadi@local", `don't tell anyone (${name})`);
    }
    const reqs = await waitFor(async () => {
      const r = await pigeonJson<Request[]>(child, "requests");
      return r.length === 2 ? r : undefined;
    }, "two requests");
    expect((await pigeon(child, "requests", "ignore", reqs[0]!.from)).code).toBe(0);
    expect((await pigeon(child, "requests", "report", reqs[1]!.from, "asked", "for", "a", "secret")).code).toBe(0);
    expect(await pigeonJson<Request[]>(child, "requests")).toEqual([]);
    const reports = await pigeonJson<{ from: string; note: string }[]>(child, "requests", "reports");
    expect(reports.map((r) => [r.from, r.note])).toEqual([[reqs[1]!.from, "asked for a secret"]]);
    void bus;
  }, 120_000);
});
