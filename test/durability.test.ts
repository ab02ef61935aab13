// Issue 3: a classmate met later, and nothing lost across restarts, kill -9, a full disk or damaged files.
// PIGEON_DURABILITY_ROUNDS sets the kill -9 rounds (CI runs a shortened version; `npm run test:durability` runs 100).
import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { api, cleanupAll, freePort, onCleanup, pigeon, pigeonJson, SLOW, startDaemon, tempDir, waitFor, type Daemon } from "./helpers.js";

interface Msg { id: string; from: string; to: string[]; body: string; state?: string; direction: string; deliveredVia?: string; sentVia?: string }

afterAll(cleanupAll);

const ROUNDS = Number(process.env.PIGEON_DURABILITY_ROUNDS ?? 12);

async function pair() {
  const [pa, pb] = [await freePort(), await freePort()];
  const dirA = tempDir("amara");
  const dirB = tempDir("baraka");
  const argsA = ["--no-mdns", "--port", String(pa), "--peer", `127.0.0.1:${pb}`];
  const argsB = ["--no-mdns", "--port", String(pb), "--peer", `127.0.0.1:${pa}`];
  const start = {
    a: () => startDaemon("amara", { dataDir: dirA, args: argsA }),
    b: () => startDaemon("baraka", { dataDir: dirB, args: argsB }),
  };
  return { start, dirA, dirB };
}

/** The two laptops met, and the children made each other buddies (meeting alone makes none). */
async function met(a: Daemon, b: Daemon) {
  await waitFor(async () => (await pigeonJson<unknown[]>(a, "contacts")).length === 1, "A to meet B");
  await waitFor(async () => (await pigeonJson<unknown[]>(b, "contacts")).length === 1, "B to meet A");
  expect((await pigeon(a, "buddies", "add", "baraka@local")).code).toBe(0);
  expect((await pigeon(b, "buddies", "add", "amara@local")).code).toBe(0);
}

describe("talk to a classmate later", () => {
  it("A writes while B is away; A restarts; they meet; B has it once; A sees delivered, then read", async () => {
    const { start } = await pair();
    let a = await start.a();
    let b = await start.b();
    await met(a, b);
    await b.stop(); // B goes home
    const sent = await pigeonJson<Msg>(a, "send", "baraka@local", "see you tomorrow");
    expect(sent.state).toBe("waiting");
    expect((await pigeon(a, "waiting")).stdout).toContain("see you tomorrow");
    await a.stop();
    a = await start.a(); // A's laptop was switched off and on
    expect((await pigeonJson<Msg[]>(a, "outbox")).map((m) => m.state)).toEqual(["waiting"]);
    b = await start.b(); // next morning
    const inbox = await waitFor(async () => {
      const i = await pigeonJson<Msg[]>(b, "inbox");
      return i.length ? i : undefined;
    }, "B's inbox");
    expect(inbox.map((m) => [m.from, m.body])).toEqual([["amara@local", "see you tomorrow"]]);
    const delivered = await waitFor(async () => (await pigeonJson<Msg[]>(a, "outbox")).find((m) => m.state === "delivered"), "delivered");
    expect(delivered.sentVia).toBe("direct");
    expect(delivered.deliveredVia).toBe("direct");
    expect((await pigeon(a, "outbox")).stdout).toMatch(/delivered .*direct/);
    expect((await pigeon(b, "read", "--all")).stdout).toContain("Marked 1 message read");
    await waitFor(async () => (await pigeonJson<Msg[]>(a, "outbox"))[0]?.state === "read", "read");
    expect((await pigeonJson<Msg[]>(b, "inbox")).length).toBe(1);
  });
});

describe(`kill -9 at random moments (${ROUNDS} rounds)`, () => {
  it("loses and duplicates nothing", async () => {
    let seed = 12345;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const { start } = await pair();
    const nodes = { a: await start.a(), b: await start.b() };
    await met(nodes.a, nodes.b);
    const acked: { from: "a" | "b"; body: string }[] = [];
    const attempted: string[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const victim: "a" | "b" = rnd() < 0.5 ? "a" : "b";
      const sends: Promise<void>[] = [];
      for (const from of ["a", "b"] as const) {
        for (let i = 0; i < 1 + Math.floor(rnd() * 3); i++) {
          const body = `r${round} ${from}${i}`;
          attempted.push(body);
          sends.push(
            api(nodes[from], "POST", "/api/send", { to: from === "a" ? "baraka@local" : "amara@local", body }).then(
              () => void acked.push({ from, body }),
              () => undefined, // killed mid-request: it may or may not have been stored
            ),
          );
        }
      }
      await new Promise((r) => setTimeout(r, Math.floor(rnd() * 120)));
      nodes[victim].proc.kill("SIGKILL");
      await Promise.allSettled(sends);
      await new Promise<void>((r) => (nodes[victim].proc.exitCode !== null || nodes[victim].proc.signalCode !== null ? r() : nodes[victim].proc.once("exit", () => r())));
      nodes[victim] = await start[victim](); // the stores must open cleanly
    }
    // heal: every acknowledged message arrives exactly once and is shown delivered
    const check = async () => {
      const inA = await pigeonJson<Msg[]>(nodes.a, "inbox", "--all");
      const inB = await pigeonJson<Msg[]>(nodes.b, "inbox", "--all");
      const outA = await pigeonJson<Msg[]>(nodes.a, "outbox", "--all");
      const outB = await pigeonJson<Msg[]>(nodes.b, "outbox", "--all");
      return { inA, inB, outA, outB };
    };
    const final = await waitFor(async () => {
      const s = await check();
      const done = acked.every(({ from, body }) => (from === "a" ? s.inB : s.inA).some((m) => m.body === body))
        && [...s.outA, ...s.outB].every((m) => m.state === "delivered");
      return done ? s : undefined;
    }, "every acknowledged message delivered", 90_000);
    const count = (list: Msg[], body: string) => list.filter((m) => m.body === body).length;
    for (const { from, body } of acked) {
      expect(count(from === "a" ? final.inB : final.inA, body), body).toBe(1);
      expect(count(from === "a" ? final.outA : final.outB, body), body).toBe(1);
    }
    // nothing half-sent: whatever reached a recipient is also in its sender's outbox, once
    for (const m of final.inB) expect(count(final.outA, m.body), m.body).toBe(1);
    for (const m of final.inA) expect(count(final.outB, m.body), m.body).toBe(1);
    for (const body of attempted) {
      expect(count(final.inA, body) + count(final.inB, body)).toBeLessThanOrEqual(1);
    }
    console.log(`kill -9: ${ROUNDS} rounds, ${attempted.length} sends attempted, ${acked.length} acknowledged, ` +
      `${final.inA.length + final.inB.length} delivered, none lost or duplicated`);
  }, (120_000 + ROUNDS * 4_000) * SLOW);
});

function canMount(): string | undefined {
  if (process.getuid?.() !== 0) return "not root";
  const probe = tempDir("mount-probe");
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", probe], { stdio: "ignore" });
    execFileSync("umount", [probe], { stdio: "ignore" });
    return undefined;
  } catch {
    return "cannot mount a tmpfs here";
  }
}

const noMount = canMount();
if (noMount) console.log(`disk-full test skipped: ${noMount}`);

describe.skipIf(!!noMount)("disk full while receiving", () => {
  it("says so clearly, keeps serving what it has, damages nothing, and resumes when space returns", async () => {
    const { start, dirB } = await pair();
    mkdirSync(dirB, { recursive: true });
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=6m", "tmpfs", dirB]);
    onCleanup(() => void execFileSync("umount", ["-l", dirB]));
    const a = await start.a();
    const b = await start.b();
    await met(a, b);
    await pigeonJson<Msg>(a, "send", "baraka@local", "before the disk filled up");
    await waitFor(async () => (await pigeonJson<Msg[]>(a, "outbox"))[0]?.state === "delivered", "first delivery");
    // fill the disk
    const filler = join(dirB, "filler");
    const chunk = Buffer.alloc(64 * 1024, 1);
    try {
      for (let i = 0; i < 1000; i++) writeFileSync(filler, chunk, { flag: "a" });
    } catch {
      /* ENOSPC: full */
    }
    for (let i = 0; i < 3; i++) await pigeonJson<Msg>(a, "send", "baraka@local", `while full ${i}`);
    await waitFor(() => /disk is full/.test(b.output()), "B to report the full disk");
    expect(b.proc.exitCode).toBe(null);
    const status = await pigeonJson<{ storageProblem: string | null }>(b, "status");
    expect(status.storageProblem).toMatch(/disk is full/);
    expect((await pigeonJson<Msg[]>(b, "inbox")).map((m) => m.body)).toEqual(["before the disk filled up"]);
    // space returns
    rmSync(filler);
    await waitFor(async () => (await pigeonJson<Msg[]>(b, "inbox")).length === 4, "B to receive the rest once there is room", 60_000);
    await waitFor(async () => (await pigeonJson<Msg[]>(a, "outbox")).every((m) => m.state === "delivered"), "all delivered", 60_000);
    expect((await pigeonJson<{ storageProblem: string | null }>(b, "status")).storageProblem).toBe(null);
  });
});

describe.skipIf(!!noMount)("disk full when a link is formed", () => {
  it("a link that starts while the disk is full exchanges everything by itself once space returns", async () => {
    const { start, dirB } = await pair();
    mkdirSync(dirB, { recursive: true });
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=6m", "tmpfs", dirB]);
    onCleanup(() => void execFileSync("umount", ["-l", dirB]));
    let a = await start.a();
    const b = await start.b();
    await met(a, b);
    await a.stop(); // A walks away
    const filler = join(dirB, "filler");
    const chunk = Buffer.alloc(64 * 1024, 1);
    try {
      for (let i = 0; i < 1000; i++) writeFileSync(filler, chunk, { flag: "a" });
    } catch {
      /* ENOSPC: full */
    }
    a = await start.a(); // A comes back: a new link forms while B's disk is full
    for (let i = 0; i < 2; i++) await pigeonJson<Msg>(a, "send", "baraka@local", `sent to a full laptop ${i}`);
    await waitFor(() => /disk is full/.test(b.output()), "B to report the full disk");
    expect(b.proc.exitCode).toBe(null);
    rmSync(filler); // space returns; nobody reconnects anything
    await waitFor(async () => (await pigeonJson<Msg[]>(b, "inbox")).length === 2, "B to receive both over the same link", 90_000);
    await waitFor(async () => (await pigeonJson<Msg[]>(a, "outbox")).every((m) => m.state === "delivered"), "delivered", 60_000);
  }, 180_000 * SLOW);
});

describe("damaged files in the data directory", () => {
  it("names the damaged file, rebuilds documents from the sealed store, and refuses a damaged identity or store", async () => {
    const { start, dirB } = await pair();
    const a = await start.a();
    let b = await start.b();
    await met(a, b);
    await pigeonJson<Msg>(a, "send", "baraka@local", "keep me safe");
    await waitFor(async () => (await pigeonJson<Msg[]>(a, "outbox"))[0]?.state === "delivered", "delivered");
    await pigeonJson<Msg>(b, "send", "amara@local", "me too");
    await b.stop();
    // damage every document chunk on B (torn writes, bad sectors)
    const chunks: string[] = [];
    const walk = (d: string) => {
      for (const e of readdirSync(d)) {
        const p = join(d, e);
        if (statSync(p).isDirectory()) walk(p);
        else if (p.endsWith(".chunk") && !p.includes("storage-adapter-id")) chunks.push(p);
      }
    };
    walk(join(dirB, "documents"));
    expect(chunks.length).toBeGreaterThan(0);
    chunks.forEach((c, i) => (i % 2 ? truncateSync(c, 20) : writeFileSync(c, "garbage")));
    b = await start.b();
    expect(b.output()).toMatch(/documents\/.*\.chunk is damaged .*moved it to documents-damaged\/.*rebuilding the document from the sealed store/);
    const inbox = await pigeonJson<Msg[]>(b, "inbox");
    expect(inbox.map((m) => m.body)).toEqual(["keep me safe"]);
    expect((await pigeonJson<Msg[]>(b, "outbox")).map((m) => m.body)).toEqual(["me too"]);
    await b.stop();

    // a damaged identity: clear error naming the file, file untouched
    const idPath = join(dirB, "identity.json");
    const original = readFileSync(idPath);
    writeFileSync(idPath, original.subarray(0, 30));
    const badId = await startDaemon("baraka", { dataDir: dirB, args: ["--no-mdns"] }).then(() => "started", (e: Error) => e.message);
    expect(badId).toMatch(/identity\.json is not a valid Pigeon identity .*left untouched/);
    expect(readFileSync(idPath).length).toBe(30);
    writeFileSync(idPath, original);

    // a damaged sealed store: refuse to run on it, name it, change nothing
    const db = join(dirB, "pigeon.db");
    const dbBytes = readFileSync(db);
    writeFileSync(db, Buffer.concat([Buffer.from("this is not sqlite"), dbBytes.subarray(18)]));
    const badDb = await startDaemon("baraka", { dataDir: dirB, args: ["--no-mdns"] }).then(() => "started", (e: Error) => e.message);
    expect(badDb).toMatch(/pigeon\.db is damaged .*left as it is/);
  });
});
