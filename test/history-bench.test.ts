// A small, bounded run of the long-history benchmark (bench/node/history.mjs): a few conversations, a
// class channel of 3 read by all, and carried envelopes, every step in a process of its own, so the
// benchmark the memory goal is measured with keeps working. The full run is in docs/benchmarks.md.
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const run = promisify(execFile);
const BENCH = join(import.meta.dirname, "..", "bench", "node", "history.mjs");

describe("the long-history benchmark, bounded", () => {
  it("makes the history, the channel and the carried envelopes, and measures every step", { timeout: 240_000 }, async () => {
    const { stdout } = await run(process.execPath, [BENCH, "--conversations", "2", "--messages", "120", "--channel", "3", "--channel-messages", "30", "--carried", "2000", "--page", "20"], {
      timeout: 230_000,
      maxBuffer: 1 << 24,
    });
    const rows = stdout.split("\n").filter((l) => l.startsWith("| ") && !l.startsWith("| step"));
    expect(rows.map((r) => r.split(" | ")[0]!.slice(2))).toEqual([
      "open the mailbox (what a node holds at ready)",
      "the newest page of one conversation (20 messages)",
      "every page of that conversation, newest to oldest (120 messages)",
      "the newest page of each conversation in turn (2 conversations)",
      "the channel's newest page (3 members, 30 posts, each read by all)",
      "the sketches a peer's first contact builds (every envelope held: 2000 carried and the history's own)",
      "the web app's first screen: each folder's newest 20 and its counts",
      "a folder as `pigeon outbox` lists it (its newest 100)",
      "a whole folder, as `pigeon outbox --all` lists it (270 messages)",
    ]);
    // every step measured: a time and a resident size
    for (const r of rows) expect(r).toMatch(/\| \d+ ms \| \d+ MiB \|/);
    await expect(bad(() => run(process.execPath, [BENCH, "--carried", "lots"]))).resolves.toMatch(/--carried must be a whole number of at least 0, got lots/);
  });
});

async function bad(f: () => Promise<unknown>): Promise<string> {
  try {
    await f();
    return "it succeeded";
  } catch (e) {
    return String((e as { stderr?: string }).stderr);
  }
}
