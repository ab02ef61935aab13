// How big and how long the testbed scenarios run: bounded for `npm test` (CI), full for
// `npm run testbed` (PIGEON_TESTBED=full). Knobs can be overridden one by one with env vars.
import { expect } from "vitest";
import { unavailableReason, waitUntil, type Testbed } from "./testbed.js";

export const MODE: "off" | "bounded" | "full" =
  process.env.PIGEON_TESTBED === "full" ? "full" : process.env.PIGEON_TESTBED === "off" ? "off" : "bounded";

const num = (name: string, dflt: number) => {
  const v = process.env[name];
  return v === undefined || v === "" ? dflt : Number(v);
};

export const CHAOS = {
  hosts: num("PIGEON_TESTBED_HOSTS", MODE === "full" ? 20 : 7),
  bridges: num("PIGEON_TESTBED_BRIDGES", MODE === "full" ? 5 : 3),
  chaosMs: num("PIGEON_TESTBED_CHAOS_S", MODE === "full" ? 300 : 45) * 1000,
  /** After heal-all: how long every message may take to be delivered and confirmed. */
  settleMs: num("PIGEON_TESTBED_SETTLE_S", MODE === "full" ? 300 : 120) * 1000,
  seed: num("PIGEON_TESTBED_SEED", Math.floor(Math.random() * 2 ** 31)),
};

export const CLASS = {
  /** Laptops: the teacher and the class (the 40 in the full run). */
  hosts: num("PIGEON_TESTBED_CLASS_HOSTS", MODE === "full" ? 40 : 7),
  /** How long each pair of rooms stays together. */
  meetMs: num("PIGEON_TESTBED_CLASS_MEET_S", MODE === "full" ? 60 : 20) * 1000,
  /** After everyone gathers: how long until every member has everything. */
  settleMs: num("PIGEON_TESTBED_SETTLE_S", MODE === "full" ? 300 : 90) * 1000,
};

/** Why the testbed scenarios are skipped here (printed once per file), or undefined. */
export function skipReason(file: string): string | undefined {
  const why = MODE === "off" ? "PIGEON_TESTBED=off" : unavailableReason();
  if (why) console.log(`testbed scenario ${file} skipped: ${why}`);
  return why;
}

export interface Msg {
  id: string;
  from: string;
  to: string[];
  body: string;
  direction: "in" | "out";
  state?: "waiting" | "sent" | "delivered" | "read";
}

export const addr = (name: string) => `${name}@local`;

/** Waits until `a` and `b` each list the other among connected peers. */
export async function waitConnected(tb: Testbed, a: string, b: string, ms = 30_000): Promise<void> {
  const sees = async (x: string, y: string) => (await tb.pigeon<{ address: string }[]>(x, "peers")).some((p) => p.address === addr(y));
  await waitUntil(async () => (await sees(a, b)) && (await sees(b, a)), `${a} and ${b} to be connected`, ms, 500);
}

/** `a` and `b` (who have met) make each other buddies, as the children would: meeting alone makes none. */
export async function befriend(tb: Testbed, a: string, b: string): Promise<void> {
  await tb.pigeon(a, "buddies", "add", addr(b));
  await tb.pigeon(b, "buddies", "add", addr(a));
}

/** Sends from a to b, waits for b's inbox and a's "delivered"; returns the message id. */
export async function chat(tb: Testbed, from: string, to: string, body: string, ms = 30_000): Promise<string> {
  const sent = await tb.pigeon<Msg>(from, "send", addr(to), body);
  expect(sent.to).toEqual([addr(to)]);
  const got = await waitUntil(async () => nonEmpty((await tb.pigeon<Msg[]>(to, "inbox", "--all")).filter((m) => m.id === sent.id)), `${to}'s inbox to hold "${body}"`, ms, 500);
  expect(got.map((m) => [m.from, m.body])).toEqual([[addr(from), body]]);
  await waitUntil(async () => (await tb.pigeon<Msg[]>(from, "outbox", "--all")).find((m) => m.id === sent.id)?.state === "delivered", `${from}'s outbox to say delivered`, ms, 500);
  return sent.id;
}

/** For waitUntil: an empty list is "not yet". */
export const nonEmpty = <T>(xs: T[]): T[] | undefined => (xs.length ? xs : undefined);
