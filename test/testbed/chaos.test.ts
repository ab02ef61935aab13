// Scenario 3: chaos. Hosts in several classrooms (bridges); for a bounded time, seeded random
// events: children walk to other classrooms, drop out of range and come back, a classroom's Wi-Fi
// fails, daemons are stopped (SIGTERM) or killed (kill -9) and restarted, while random messages are
// sent between laptops that have met. Then everything heals: every daemon runs, every link is up and
// everyone gathers in the hall (one bridge). Every message must then be delivered exactly once and
// confirmed to its sender.
//
// Bounded by default (CI); PIGEON_TESTBED=full for 20 hosts and minutes of chaos (see config.ts).
// Replay a run with the seed it prints: PIGEON_TESTBED_SEED=<seed>.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inPool, rng, sleep, Testbed, waitUntil } from "./testbed.js";
import { addr, CHAOS, MODE, skipReason, type Msg } from "./config.js";

/**
 * "Every carrier copy of a confirmed message is gone" needs delivery acknowledgements (issue 4).
 * On unless PIGEON_TESTBED_CHECK_CARRIED=0. It expects `pigeon status --json` to
 * report `carrying`: the envelopes this laptop holds for others, as a number or as
 * `{ envelopes, ... }`, and every host to reach 0 once every message is confirmed.
 */
const CARRIER_COPIES_GONE_CHECK = process.env.PIGEON_TESTBED_CHECK_CARRIED !== "0";

const why = skipReason("chaos");

interface Sent {
  id: string;
  from: string;
  to: string;
  body: string;
  at: number;
}

const timeoutMs = 120_000 + CHAOS.chaosMs + CHAOS.settleMs;

describe.skipIf(!!why)(`testbed 3: chaos (${MODE}: ${CHAOS.hosts} hosts, ${CHAOS.bridges} classrooms, ${CHAOS.chaosMs / 1000} s)`, () => {
  let tb: Testbed;
  const names = Array.from({ length: CHAOS.hosts }, (_, i) => `h${String(i + 1).padStart(2, "0")}`);
  const classrooms = Array.from({ length: CHAOS.bridges }, (_, i) => `c${i}`);
  const home = (i: number) => classrooms[i % classrooms.length]!;
  const sent: Sent[] = [];
  let healed = false;

  beforeAll(async () => {
    console.log(`chaos: seed ${CHAOS.seed} (replay with PIGEON_TESTBED_SEED=${CHAOS.seed})`);
    tb = await Testbed.create({ label: "chaos", lifetimeMs: timeoutMs + 90_000 });
    for (const c of [...classrooms, "hall"]) await tb.addBridge(c);
    for (const [i, n] of names.entries()) await tb.addHost(n, [home(i)]);
    await tb.startAll();
  }, 120_000);
  afterAll(() => tb?.teardown(), 60_000);

  it("every message is delivered exactly once and confirmed, after random partitions, walks and restarts", async ({ onTestFailed }) => {
    onTestFailed(() => void (tb.keepArtifacts = true));
    const r = rng(CHAOS.seed);
    const contacts = async (h: string) =>
      (await tb.pigeon<{ address: string }[]>(h, "contacts")).map((c) => c.address.replace(/@local$/, "")).filter((n) => names.includes(n));

    // classmates meet first
    await waitUntil(async () => (await inPool(names, 4, async (n) => (await contacts(n)).length > 0)).every(Boolean), "every host to meet a classmate", 60_000, 2_000);
    tb.log("chaos begins");

    const counts: Record<string, number> = {};
    /** "x>y": x made y a buddy. */
    const chosen = new Set<string>();
    const did = (what: string) => (counts[what] = (counts[what] ?? 0) + 1);
    const end = Date.now() + CHAOS.chaosMs;
    // roll values that select: walk, out of range, classroom down, restart, kill -9
    const forced = [0.5, 0.6, 0.82, 0.9, 0.97];
    for (let i = forced.length - 1; i > 0; i--) {
      const j = r.int(i + 1);
      [forced[i], forced[j]] = [forced[j]!, forced[i]!];
    }
    let step = 0;
    while (Date.now() < end) {
      await sleep(300 + r.int(900));
      // every kind of trouble happens at least once, even in a short run; then at random
      const roll = step++ % 2 === 1 && forced.length ? forced.shift()! : r.next();
      const h = r.pick(names);
      const v = tb.host(h).veths[0]!;
      if (roll < 0.4) {
        if (!tb.running(h)) continue;
        const known = await contacts(h);
        if (!known.length) continue;
        // mostly write to a friend who is not in reach right now (another classroom, out of range,
        // laptop off): those messages need carriers, waiting, or the final gathering
        const here = tb.whereIs(h);
        const away = known.filter((k) => !tb.running(k) || !tb.whereIs(k).some((b) => here.includes(b)));
        const to = away.length && r.chance(0.7) ? r.pick(away) : r.pick(known);
        // meeting makes no buddy: the classmate chooses the writer the first time (wherever their
        // laptop is: with it stopped, the pigeon command writes the data directory itself)
        if (!chosen.has(`${to}>${h}`)) {
          try {
            await tb.pigeon(to, "buddies", "add", addr(h));
          } catch (e) {
            tb.log(`${to} could not add ${h} now (${(e as Error).message.split("\n")[0]}): no message this time`);
            continue;
          }
          chosen.add(`${to}>${h}`);
          did("buddies add");
        }
        const body = `chaos ${sent.length + 1} from ${h} to ${to} (seed ${CHAOS.seed})`;
        const m = await tb.pigeon<Msg>(h, "send", addr(to), body);
        sent.push({ id: m.id, from: h, to, body, at: tb.elapsed() });
        tb.log(`send #${sent.length} ${h} -> ${to} (${m.id})${away.includes(to) ? " (not in reach)" : ""}`);
        did("send");
      } else if (roll < 0.55) {
        const others = classrooms.filter((c) => c !== v.attachedTo);
        await tb.move(h, r.pick(others));
        did("walk");
      } else if (roll < 0.67) {
        const down = names.filter((n) => !tb.host(n).veths[0]!.up).length;
        if (v.up && down < names.length / 3) {
          await tb.linkDown(h);
          did("out of range");
        }
      } else if (roll < 0.8) {
        const down = names.filter((n) => !tb.host(n).veths[0]!.up);
        if (down.length) {
          await tb.linkUp(r.pick(down));
          did("back in range");
        }
      } else if (roll < 0.84) {
        // a classroom's Wi-Fi fails for everyone in it
        const c = r.pick(classrooms);
        const inRoom = names.filter((n) => tb.host(n).veths[0]!.attachedTo === c && tb.host(n).veths[0]!.up);
        tb.log(`classroom ${c} loses Wi-Fi (${inRoom.join(" ") || "empty"})`);
        for (const n of inRoom) await tb.linkDown(n);
        did("classroom down");
      } else if (roll < 0.87) {
        for (const n of names) if (!tb.host(n).veths[0]!.up) await tb.linkUp(n);
        did("heal in place");
      } else if (roll < 0.94) {
        await tb.restart(h, "SIGTERM", r.int(3_000));
        did("restart");
      } else {
        await tb.restart(h, "SIGKILL", r.int(3_000));
        did("kill -9");
      }
    }
    console.log(`chaos: ${JSON.stringify(counts)}`);

    // heal all: every daemon runs, every link is up, everyone gathers in the hall
    for (const n of names) if (!tb.running(n)) await tb.start(n);
    for (const n of names) {
      await tb.move(n, "hall");
      if (!tb.host(n).veths[0]!.up) await tb.linkUp(n);
    }
    healed = true;
    const healedAt = Date.now();
    tb.log(`heal all: ${sent.length} messages to account for`);
    expect(sent.length).toBeGreaterThan(0);

    const byRecipient = new Map<string, Sent[]>();
    const bySender = new Map<string, Sent[]>();
    for (const s of sent) {
      byRecipient.set(s.to, [...(byRecipient.get(s.to) ?? []), s]);
      bySender.set(s.from, [...(bySender.get(s.from) ?? []), s]);
    }
    // Poll only the outboxes of senders with unconfirmed messages ("delivered" means the recipient
    // had it: the receipt is the recipient's own signed change). The CLI is a process per call, and 20
    // daemons meeting in one room keep two cores busy enough already.
    const unconfirmed = new Set(sent);
    let lastCount = -1;
    await waitUntil(
      async () => {
        const senders = [...new Set([...unconfirmed].map((s) => s.from))];
        await inPool(senders, 3, async (n) => {
          const out = await tb.pigeon<Msg[]>(n, "outbox", "--all");
          for (const s of bySender.get(n)!) {
            if (["delivered", "read"].includes(out.find((m) => m.id === s.id)?.state ?? "")) unconfirmed.delete(s);
          }
        });
        if (unconfirmed.size !== lastCount) tb.log(`settling: ${unconfirmed.size} of ${sent.length} not yet confirmed`);
        if (lastCount === -1) console.log(`chaos: at heal-all ${sent.length - unconfirmed.size} of ${sent.length} messages were already confirmed`);
        lastCount = unconfirmed.size;
        return unconfirmed.size === 0;
      },
      "every message to be delivered and confirmed",
      CHAOS.settleMs,
      MODE === "full" ? 5_000 : 3_000,
    ).catch(async (e: Error) => {
      const missing = await Promise.all(
        [...unconfirmed].map(async (s) => {
          const has = await tb.pigeon<Msg[]>(s.to, "inbox", "--all").then((i) => i.some((m) => m.id === s.id), () => "?");
          return `  #${sent.indexOf(s) + 1} ${s.from} -> ${s.to} ${s.id} (in ${s.to}'s inbox: ${has})`;
        }),
      );
      throw new Error(`${e.message}: ${unconfirmed.size} of ${sent.length} not confirmed\n${missing.join("\n")}`);
    });
    console.log(`chaos: ${sent.length} messages delivered and confirmed ${((Date.now() - healedAt) / 1000).toFixed(0)} s after heal-all`);

    const inboxes = new Map<string, Msg[]>();
    const outboxes = new Map<string, Msg[]>();
    await inPool(names, 3, async (n) => {
      inboxes.set(n, await tb.pigeon<Msg[]>(n, "inbox", "--all"));
      outboxes.set(n, await tb.pigeon<Msg[]>(n, "outbox", "--all"));
    });

    // exactly once: each recipient's inbox holds each of its messages once, and nothing else
    for (const n of names) {
      const inbox = inboxes.get(n)!;
      const expected = byRecipient.get(n) ?? [];
      for (const s of expected) {
        const copies = inbox.filter((m) => m.id === s.id);
        expect(copies.map((m) => [m.from, m.body]), `${n}'s inbox, message ${s.id}`).toEqual([[addr(s.from), s.body]]);
      }
      expect(inbox.length, `${n}'s inbox holds only the messages sent to ${n}`).toBe(expected.length);
      expect(new Set(inbox.map((m) => m.body)).size, `${n}'s inbox has no duplicate bodies`).toBe(inbox.length);
      // ... and each sender's outbox shows each message once, delivered
      for (const s of bySender.get(n) ?? []) {
        const copies = outboxes.get(n)!.filter((m) => m.id === s.id);
        expect(copies.length, `${n}'s outbox, message ${s.id}`).toBe(1);
        expect(["delivered", "read"], `${n}'s outbox state of ${s.id}`).toContain(copies[0]!.state);
      }
    }
  }, timeoutMs);

  it.skipIf(!CARRIER_COPIES_GONE_CHECK)("CARRIER_COPIES_GONE_CHECK: every carrier copy of a confirmed message is gone", async ({ onTestFailed }) => {
    onTestFailed(() => void (tb.keepArtifacts = true));
    expect(healed, "runs after the chaos test").toBe(true);
    // `carrying` is a number, or { envelopes, bytes, people, acks, ... } (acks are not copies of messages)
    const carried = (c: unknown) => (typeof c === "number" ? c : (c as { envelopes?: unknown } | undefined)?.envelopes);
    const carrying = async () =>
      inPool(names, 3, async (n) => [n, carried((await tb.pigeon<{ carrying?: unknown }>(n, "status")).carrying)] as const);
    for (const [n, c] of await carrying()) expect(typeof c, `${n}: pigeon status --json reports what it carries`).toBe("number");
    await waitUntil(async () => (await carrying()).every(([, c]) => c === 0), "every host to drop the copies it carried", 120_000, 3_000).catch(async (e: Error) => {
      throw new Error(`${e.message}: ${JSON.stringify(Object.fromEntries(await carrying()))}`);
    });
  }, 180_000);
});
