// History and memory with a used archive (issue 21): a node that has sent 2,140 messages from
// slixmpp is restarted; its memory idle, then the last 50 messages as a client opening its history
// asks for them (MAM, <before/>, max 50), timed five times by slixmpp; the same against Prosody
// holding the same 2,140 (reference). Bounded: 2,140 messages, about two minutes.
import { readFileSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { cleanupAll } from "../helpers.js";
import { announceSkip, befriend, missing, slix, startProsody, startXmppNode, waitFor } from "./xmpp-helpers.js";

afterAll(cleanupAll);

const why = missing("slixmpp");
if (why) announceSkip("history and memory with 2,140 messages", why);

const N = 2140;
const bodies = Array.from({ length: N }, (_, i) => `message ${i}: what we did at school today, and what comes next`);
const rssMiB = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!!why)("history and memory with 2,140 messages", () => {
  let prosodyMedian = 0;

  it("Prosody (reference): the last 50 of 2,140", async () => {
    const p = await startProsody({ alice: "alice-password", bob: "bob-password" });
    await slix({ jid: "alice@local", password: "alice-password", port: p.port, scenario: "send", to: "bob@local", bodies }, undefined, 180_000);
    const r = await slix({ jid: "alice@local", password: "alice-password", port: p.port, scenario: "mam_last" });
    expect(r.result.bodies).toEqual(bodies.slice(-50));
    prosodyMedian = median(r.result.times as number[]);
    console.log(`prosody: last 50 of ${N}: ${(r.result.times as number[]).join(", ")} s`);
  }, 240_000);

  it("Pigeon: after a restart, idle memory stays near a fresh node's and the last 50 come as fast as Prosody's", async () => {
    const a = await startXmppNode("amara");
    const b = await startXmppNode("baraka", ["--peer", `127.0.0.1:${a.syncPort}`]);
    await befriend(a, b);
    await b.stop(); // amara's messages wait for baraka: only amara's node works
    await sleep(3000);
    const fresh = rssMiB(a.proc.pid!);
    const as = (scenario: string, extra: Record<string, unknown> = {}) => ({ jid: a.jid, password: a.password, port: a.xmppPort, scenario, ...extra });
    await slix(as("send", { to: b.jid, bodies }), undefined, 240_000);
    await waitFor(async () => ((await slix(as("mam_last", { repeat: 1 }))).result.bodies as string[]).at(-1) === bodies.at(-1), "all messages to be stored", 240_000);
    const used = rssMiB(a.proc.pid!);
    await a.stop();
    const again = await startXmppNode("amara", [], a.dataDir);
    await sleep(3000);
    const restarted = rssMiB(again.proc.pid!);
    const r = await slix({ jid: again.jid, password: again.password, port: again.xmppPort, scenario: "mam_last" });
    expect(r.result.bodies).toEqual(bodies.slice(-50));
    const times = r.result.times as number[];
    await sleep(3000);
    const afterHistory = rssMiB(again.proc.pid!);
    console.log(
      `pigeon: RSS fresh ${fresh.toFixed(0)} MiB, after ${N} messages ${used.toFixed(0)} MiB, restarted idle ${restarted.toFixed(0)} MiB, ` +
        `after the history ${afterHistory.toFixed(0)} MiB; last 50 of ${N}: ${times.join(", ")} s (Prosody median ${prosodyMedian} s)`,
    );
    // the first query opens the conversation's newest segment; the rest are what a client sees
    expect(median(times)).toBeLessThan(Math.max(0.25, prosodyMedian * 1.5));
    // a start loads no history (it checked every segment for missing receipts: 145-150 MiB here), and
    // the history loads one segment
    expect(restarted).toBeLessThan(fresh + 25);
    expect(afterHistory).toBeLessThan(fresh + 40);
  }, 480_000);
});
