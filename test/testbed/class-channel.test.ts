// Scenario 5: a class channel. The teacher and the class in three rooms (bridges); the teacher walks
// through the rooms so that everyone meets them, starts the channel and adds the whole class. Then the
// rooms meet in pairs on a schedule (every laptop of one room walks to the other and back), everyone
// writes in the channel while apart, and the teacher removes one child in the middle. At the end every
// remaining member has the whole history exactly once, the removed child has nothing written by
// anyone who knew of the removal, and no laptop carries a copy any more.
//
// Bounded by default (CI: 7 laptops); PIGEON_TESTBED=full for the 40 (see config.ts).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inPool, Testbed, waitUntil } from "./testbed.js";
import { addr, CLASS, MODE, skipReason, type Msg } from "./config.js";

const why = skipReason("class-channel");
const TITLE = "5B science";
const timeoutMs = 600_000 + 4 * CLASS.meetMs + CLASS.settleMs + CLASS.hosts * 30_000;

interface ChannelView { title: string; member: boolean; epoch: number; members: { address: string }[] }
interface Written { from: string; body: string; knewOfRemoval: boolean }
type ChannelMsg = Msg & { channel?: string };

describe.skipIf(!!why)(`testbed 5: a class channel (${MODE}: ${CLASS.hosts} laptops in 3 rooms)`, () => {
  let tb: Testbed;
  const rooms = ["r0", "r1", "r2"];
  const kids = Array.from({ length: CLASS.hosts - 1 }, (_, i) => `k${String(i + 1).padStart(2, "0")}`);
  const home = (k: string) => rooms[kids.indexOf(k) % 3]!;
  const inRoom = (r: string) => kids.filter((k) => home(k) === r);
  const removed = kids.find((k) => home(k) === "r2")!;
  const written: Written[] = [];

  beforeAll(async () => {
    tb = await Testbed.create({ label: "class", lifetimeMs: timeoutMs + 120_000 });
    for (const r of rooms) await tb.addBridge(r);
    await tb.addHost("mwalimu", ["r0"]);
    for (const k of kids) await tb.addHost(k, [home(k)]);
    // two at a time, with time to start: 40 daemons starting at once on a busy two-core machine are slow
    await inPool(["mwalimu", ...kids], 2, (h) => tb.start(h, 120_000));
  }, 120_000 + CLASS.hosts * 15_000);
  afterAll(() => tb?.teardown(), 120_000);

  /** A command, tried again when it timed out (a busy machine: the CLI is a process per call). */
  const ask = async <T>(h: string, ...args: string[]): Promise<T> => {
    for (let i = 0; ; i++) {
      try {
        return await tb.pigeon<T>(h, ...args);
      } catch (e) {
        if (i >= 3 || !/Command failed/.test((e as Error).message)) throw e;
        tb.log(`pigeon ${args[0]} on ${h} timed out; again`);
      }
    }
  };
  const channels = (h: string) => ask<ChannelView[]>(h, "channels");
  const history = async (h: string) => {
    const [inbox, outbox] = await Promise.all([ask<ChannelMsg[]>(h, "inbox"), ask<ChannelMsg[]>(h, "outbox")]);
    return [...inbox, ...outbox].filter((m) => m.channel === TITLE);
  };
  /** Everyone of room `from` walks into room `to` (or back home with to = undefined). */
  const walk = async (from: string, to: string | undefined) => {
    for (const k of inRoom(from)) await tb.move(k, to ?? home(k));
  };
  const post = async (h: string, body: string) => {
    const mine = (await channels(h)).find((c) => c.title === TITLE)!;
    const knew = !mine.members.some((m) => m.address === addr(removed));
    // a send that timed out may have been sent: look before sending again (never twice)
    for (let i = 0; ; i++) {
      try {
        await tb.pigeon(h, "send", TITLE, body);
        break;
      } catch (e) {
        if (i >= 3 || !/Command failed/.test((e as Error).message)) throw e;
        if ((await history(h)).some((m) => m.body === body)) break;
      }
    }
    written.push({ from: h, body, knewOfRemoval: knew });
  };

  it("rooms that meet in pairs converge; the removed child gets nothing after; no copies stay", async ({ onTestFailed }) => {
    onTestFailed(() => void (tb.keepArtifacts = true));
    // the teacher visits each room until every child there has met them
    for (const r of ["r1", "r2", "r0"]) {
      await tb.move("mwalimu", r);
      await waitUntil(async () => {
        const met = (await ask<{ address: string }[]>("mwalimu", "contacts")).map((c) => c.address);
        return inRoom(r).every((k) => met.includes(addr(k)));
      }, `the teacher to meet room ${r}`, 90_000 + inRoom(r).length * 5_000, 3_000);
    }
    await tb.pigeon("mwalimu", "channel", "create", TITLE);
    await tb.pigeon("mwalimu", "channel", "add", TITLE, ...kids);
    // the teacher walks through the rooms again: every child learns of the channel
    for (const r of ["r1", "r2", "r0"]) {
      await tb.move("mwalimu", r);
      await waitUntil(async () => (await inPool(inRoom(r), 3, async (k) => (await channels(k)).some((c) => c.title === TITLE && c.member))).every(Boolean),
        `room ${r} to know the channel`, 90_000 + inRoom(r).length * 5_000, 3_000);
    }
    tb.log("the class is apart: everyone writes");
    await post("mwalimu", "Bring a leaf tomorrow");
    await inPool(kids, 3, (k) => post(k, `${k}: my leaf`));

    // rooms meet in pairs; the teacher removes a child after the first meeting
    const meetings: [string, string][] = [["r1", "r0"], ["r2", "r1"], ["r0", "r2"]];
    for (const [i, [a, b]] of meetings.entries()) {
      tb.log(`room ${a} visits room ${b}`);
      await walk(a, b);
      if (a === "r0" || b === "r0") await tb.move("mwalimu", b === "r0" ? "r0" : b);
      await new Promise((r) => setTimeout(r, CLASS.meetMs));
      if (i === 0) {
        await tb.pigeon("mwalimu", "channel", "remove", TITLE, removed);
        await post("mwalimu", "Lesson two: roots");
      }
      // everyone in the meeting writes one more, apart or not yet knowing of the removal
      await inPool([...inRoom(a), ...inRoom(b)].filter((k) => k !== removed || i === 0), 3, async (k) => {
        if ((await channels(k)).find((c) => c.title === TITLE)?.member) await post(k, `${k}: meeting ${i + 1}`);
      });
      await walk(a, undefined);
      await tb.move("mwalimu", "r0");
    }

    tb.log("everyone gathers in room r0");
    for (const r of ["r1", "r2"]) await walk(r, "r0");
    const members = ["mwalimu", ...kids.filter((k) => k !== removed)];
    const all = written.map((w) => w.body).sort();
    const missing = new Map<string, number>();
    await waitUntil(async () => {
      await inPool(members.filter((m) => missing.get(m) !== 0), 3, async (m) => {
        const have = new Set((await history(m)).map((x) => x.body));
        missing.set(m, all.filter((b) => !have.has(b)).length);
      });
      tb.log(`converging: ${[...missing.values()].reduce((a, b) => a + b, 0)} missing`);
      return members.every((m) => missing.get(m) === 0);
    }, "every member to have the whole history", CLASS.settleMs, 3_000).catch((e: Error) => {
      throw new Error(`${e.message}: ${JSON.stringify(Object.fromEntries(missing))}`);
    });

    // exactly once, on every remaining member's laptop
    await inPool(members, 3, async (m) => {
      const h = await history(m);
      expect(h.map((x) => x.body).sort(), `${m}'s channel history`).toEqual(all);
      for (const x of h) expect(x.from, `who wrote "${x.body}"`).toBe(addr(written.find((w) => w.body === x.body)!.from));
    });
    // the removed child: nothing written by anyone who knew of the removal; knows they were removed
    const theirs = (await history(removed)).map((x) => x.body);
    expect(written.filter((w) => w.knewOfRemoval).length).toBeGreaterThan(0);
    for (const w of written.filter((x) => x.knewOfRemoval)) expect(theirs, `${removed} has "${w.body}"`).not.toContain(w.body);
    expect((await channels(removed)).find((c) => c.title === TITLE)?.member).toBe(false);

    // carriers hold no copies: every lock opened, every carried copy dropped
    const carrying = async () =>
      inPool(["mwalimu", ...kids], 3, async (n) => [n, (await ask<{ carrying: { envelopes: number } }>(n, "status")).carrying.envelopes] as const);
    await waitUntil(async () => (await carrying()).every(([, c]) => c === 0), "every laptop to drop the copies it carried", 120_000, 5_000).catch(async (e: Error) => {
      throw new Error(`${e.message}: ${JSON.stringify(Object.fromEntries(await carrying()))}`);
    });
    console.log(`class channel: ${CLASS.hosts} laptops, ${written.length} messages, converged; ${removed} removed after meeting 1`);
  }, timeoutMs);
});
