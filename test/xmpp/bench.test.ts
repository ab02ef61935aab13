// `npm run bench:xmpp` (issue 21): a working --help, a clear refusal of bad options, and a small run
// that finishes, exits by itself and leaves no temporary directory behind. Bounded: 50 messages.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "../helpers.js";
import { announceSkip, missing } from "./xmpp-helpers.js";

const BENCH = join(ROOT, "bench/xmpp/bench.mjs");

function run(args: string[], timeoutMs = 10_000): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BENCH, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    p.stdout.on("data", (c: Buffer) => (out += c.toString()));
    p.stderr.on("data", (c: Buffer) => (err += c.toString()));
    const timer = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
    p.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}

describe("bench:xmpp", () => {
  it("--help says how to use it and exits 0; a bad option is refused with the usage and exit 2", async () => {
    const help = await run(["--help"]);
    expect(help.code).toBe(0);
    expect(help.out).toMatch(/^Usage: npm run bench:xmpp/);
    expect(help.out).toContain("--messages N");
    const bad = await run(["--messages", "lots"]);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('--messages must be a positive whole number, not "lots"');
    const unknown = await run(["--fast"]);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toContain("Usage:");
  });

  const why = missing("prosody");
  if (why) announceSkip("bench:xmpp small run", why);
  it.skipIf(!!why)("a small run prints the table, exits by itself and removes its temporary directory", async () => {
    const r = await run(["--messages", "50", "--sync-messages", "3"], 240_000);
    expect(r.code, r.err.slice(-2000)).toBe(0);
    expect(r.out).toMatch(/\| prosody 0\.12 .*\| 50 /);
    expect(r.out).toMatch(/\| pigeon, 2 nodes .*\| 3 /);
    const tmp = /temporary directory \(removed at the end\): (\S+)/.exec(r.out)![1]!;
    expect(existsSync(tmp)).toBe(false);
  }, 300_000);
});
