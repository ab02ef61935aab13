import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createLog } from "./log.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A different word for each number (no digits or hex, so every line has a shape of its own). */
const letters = (i: number) => [0, 1, 2].map((k) => "ghijklmnopqrstuvwxyz"[Math.floor(i / 20 ** k) % 20]).join("");

function clock(start = Date.UTC(2024, 0, 1, 10, 0, 0)) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe("the node's log under a flood", () => {
  it("writes the same line at most 5 times a minute, then its count when the minute is over", () => {
    const c = clock();
    const lines: string[] = [];
    const log = createLog({ now: c.now, write: (l) => lines.push(l) });
    for (let i = 0; i < 1000; i++) log.warn(`refused a connection from 10.0.0.${i % 250}:${40000 + i}: bad HELLO`);
    expect(lines).toHaveLength(5);
    c.advance(60_000);
    log.info("a new minute");
    expect(lines).toHaveLength(7);
    expect(lines[5]).toMatch(/^10:01:00 warning: \(995 more like "refused a connection from 10\.0\.0\.0:40000: bad HELLO" in the last minute\)$/);
    expect(lines[6]).toBe("10:01:00 a new minute");
  });

  it("writes at most 30 lines a minute that start alike when every line differs further on; other lines still get through", () => {
    const c = clock();
    const lines: string[] = [];
    const log = createLog({ now: c.now, write: (l) => lines.push(l) });
    // each line carries text a client chose (an XMPP 'to', a close reason): every shape is new
    for (let i = 0; i < 5000; i++) log.info(`xmpp: closing the stream of 127.0.0.1:1: host-unknown (this node serves local, not ${letters(i)})`);
    expect(lines).toHaveLength(30);
    log.info("delivery confirmed by chiku@local: dropped 2 carried envelope(s)");
    expect(lines.at(-1)).toBe("10:00:00 delivery confirmed by chiku@local: dropped 2 carried envelope(s)");
    c.advance(60_000);
    log.warn("next minute");
    expect(lines.at(-2)).toBe('10:01:00 (4970 more lines starting "xmpp: closing the" in the last minute not written: at most 30 a minute)');
    expect(lines.at(-1)).toBe("10:01:00 warning: next minute");
  });

  it("writes at most 120 lines a minute in all, and says how many were left out", () => {
    const c = clock();
    const lines: string[] = [];
    const log = createLog({ now: c.now, write: (l) => lines.push(l) });
    for (let i = 0; i < 3000; i++) log.warn(`${letters(i)} says ${letters(i + 1)} is ${letters(i + 2)}`);
    expect(lines).toHaveLength(120);
    c.advance(60_000);
    log.info("next minute");
    expect(lines.at(-2)).toBe("10:01:00 warning: (2880 more lines in the last minute not written: the log takes at most 120 lines a minute)");
  });

  it("writes the counts when the minute is over even if nothing else is logged", async () => {
    const lines: string[] = [];
    const log = createLog({ write: (l) => lines.push(l), windowMs: 300, perMinute: 2, groupPerMinute: 3, totalPerMinute: 6 });
    await new Promise((r) => setTimeout(r, 300 - (Date.now() % 300) + 10)); // all lines in one window
    for (let i = 0; i < 10; i++) log.warn(`carrier quota: evicted ${i} carried envelope(s) to make room`);
    for (let i = 0; i < 10; i++) log.warn(`noise from the ${"abcdefghij"[i]}`);
    for (let i = 0; i < 10; i++) log.warn(`${"abcdefghij"[i]} third kind`);
    expect(lines).toHaveLength(6);
    await new Promise((r) => setTimeout(r, 700));
    expect(lines.slice(6)).toEqual([
      expect.stringMatching(/warning: \(8 more like "carrier quota: evicted 0 carried envelope\(s\) to make room" in the last 0\.3 s\)$/),
      expect.stringMatching(/warning: \(7 more lines starting "noise from the" in the last 0\.3 s not written: at most 3 a minute\)$/),
      expect.stringMatching(/warning: \(9 more lines in the last 0\.3 s not written: the log takes at most 6 lines a minute\)$/),
    ]);
  });

  it("keeps text from the network on its line and cuts very long messages", () => {
    const lines: string[] = [];
    const log = createLog({ write: (l) => lines.push(l) });
    log.warn("refused a connection from 10.0.0.1:5: closed by peer: x\n12:00:00 error: forged\r\x1b[31mred");
    log.info("y".repeat(5000));
    expect(lines[0]).toContain("closed by peer: x\n    12:00:00 error: forged\\x0d\\x1b[31mred");
    expect(lines[0]!.split("\n").every((l, i) => i === 0 || l.startsWith("    "))).toBe(true);
    expect(lines[1]!.length).toBeLessThan(1100);
    expect(lines[1]).toMatch(/… \(4000 more characters\)$/);
  });

  it("moves a full log file aside to node.log.1", () => {
    const dir = mkdtempSync(join(tmpdir(), "pigeon-log-"));
    dirs.push(dir);
    const file = join(dir, "node.log");
    const log = createLog({ write: () => {}, file, maxFileBytes: 4096, perMinute: 1000, groupPerMinute: 1000, totalPerMinute: 1000 });
    for (let i = 0; i < 200; i++) log.info(`line ${"z".repeat(40)} ${String.fromCharCode(65 + (i % 26))}${i}`);
    expect(statSync(file).size).toBeLessThanOrEqual(4096);
    expect(statSync(`${file}.1`).size).toBeLessThanOrEqual(4096);
    expect(readFileSync(file, "utf8")).toMatch(/line z+ [A-Z]199\n$/);
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });
});
