// Issue 2's user story: two real daemons, real sockets, the real `pigeon` command.
import { execFileSync } from "node:child_process";
import { afterAll, describe, expect, it } from "vitest";
import { cleanupAll, pigeon, pigeonJson, startDaemon, waitFor, type Daemon } from "./helpers.js";

interface Msg { from: string; to: string[]; body: string; state?: string; direction: string }

afterAll(cleanupAll);

async function chat(a: Daemon, b: Daemon) {
  await waitFor(async () => (await pigeonJson<unknown[]>(a, "peers")).length === 1, `${a.name} to see ${b.name}`);
  await waitFor(async () => (await pigeonJson<unknown[]>(b, "peers")).length === 1, `${b.name} to see ${a.name}`);
  // meeting makes no buddy: a chooses b from the laptops nearby (b chooses a by writing to them)
  await waitFor(async () => (await pigeonJson<unknown[]>(a, "nearby")).length === 1, `${b.name} nearby on ${a.name}'s laptop`);
  expect((await pigeon(a, "buddies", "add", `${b.name}@local`)).code).toBe(0);

  const sent = await pigeon(b, "send", `${a.name}@local`, "hello", a.name);
  expect(sent.code, sent.stderr).toBe(0);
  expect(sent.stdout).toContain(`to ${a.name}@local`);
  const inbox = await waitFor(async () => {
    const r = await pigeon(a, "inbox");
    return r.stdout.includes(`hello ${a.name}`) ? r.stdout : undefined;
  }, `${a.name}'s inbox`);
  expect(inbox).toContain(`from ${b.name}@local`);
  await waitFor(async () => (await pigeon(b, "outbox")).stdout.includes("delivered"), `${b.name}'s outbox to say delivered`);
  const out = await pigeonJson<Msg[]>(b, "outbox");
  expect(out.map((m) => [m.to, m.body, m.state])).toEqual([[[`${a.name}@local`], `hello ${a.name}`, "delivered"]]);

  // and the other way
  expect((await pigeon(a, "send", `${b.name}@local`, "hi back")).code).toBe(0);
  await waitFor(async () => (await pigeonJson<Msg[]>(b, "inbox")).some((m) => m.body === "hi back" && m.from === `${a.name}@local`), `${b.name}'s inbox`);
  await waitFor(async () => (await pigeonJson<Msg[]>(a, "outbox"))[0]?.state === "delivered", `${a.name}'s delivered state`);
}

describe("two nodes on loopback", () => {
  it("with a static peer: send, inbox, delivered, both ways", async () => {
    const a = await startDaemon("amara", { args: ["--no-mdns"] });
    const b = await startDaemon("baraka", { args: ["--no-mdns", "--peer", `127.0.0.1:${a.syncPort}`] });
    await chat(a, b);
    const who = await pigeonJson<{ address: string; fingerprint: string }>(a, "whoami");
    expect(who.address).toBe("amara@local");
    expect(who.fingerprint).toMatch(/^[a-z2-7]{4}(-[a-z2-7]{4}){3}$/);
    const contacts = await pigeonJson<{ address: string }[]>(a, "contacts");
    expect(contacts.map((c) => c.address)).toEqual(["baraka@local"]);
  });

  it("answers bad input and a stopped node clearly", async () => {
    const a = await startDaemon("chiku", { args: ["--no-mdns"] });
    const unknown = await pigeon(a, "send", "nobody@local", "hi");
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/unknown address nobody@local/);
    const usage = await pigeon(a, "send", "only-an-address");
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/needs an address and a message/);
    const badFlag = await pigeon(a, "inbox", "--frobnicate");
    expect(badFlag.code).toBe(2);
    const help = await pigeon(a, "--help");
    expect(help.code).toBe(0);
    for (const cmd of ["start", "send", "inbox", "outbox", "drafts", "peers", "whoami"]) expect(help.stdout).toContain(`  ${cmd}`);
    expect((await pigeon(a, "stop")).code).toBe(0);
    await waitFor(() => a.proc.exitCode !== null, "the node to stop");
    const down = await pigeon(a, "send", "nobody@local", "hi");
    expect(down.code).toBe(3);
    expect(down.stderr).toMatch(/Sending needs your pigeon node running, and no pigeon node is running/);
  });
});

function canUseNamespaces(): string | undefined {
  if (process.getuid?.() !== 0) return "not root";
  try {
    execFileSync("ip", ["netns", "list"], { stdio: "ignore" });
  } catch {
    return "no `ip netns` on this machine";
  }
  return undefined;
}

const why = canUseNamespaces();
if (why) console.log(`mDNS discovery test skipped: ${why} (it needs a private network namespace so mDNS never touches the real network)`);

describe.skipIf(!!why)("two nodes discovering each other by mDNS", () => {
  it("find each other with no configuration and chat", async () => {
    const ns = `pgn-e2e-${process.pid}`;
    execFileSync("ip", ["netns", "add", ns]);
    const { onCleanup } = await import("./helpers.js");
    onCleanup(() => execFileSync("ip", ["netns", "del", ns]));
    execFileSync("ip", ["-n", ns, "link", "set", "lo", "up", "multicast", "on"]);
    execFileSync("ip", ["-n", ns, "route", "add", "224.0.0.0/4", "dev", "lo"]);
    const args = ["--mdns-interface", "127.0.0.1"];
    const a = await startDaemon("dalia", { ns, args });
    const b = await startDaemon("ebo", { ns, args });
    await chat(a, b);
  });
});
