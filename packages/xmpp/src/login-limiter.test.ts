import { describe, expect, it } from "vitest";
import type { Log } from "@pigeon/sync";
import { DEFAULT_LOGIN_LIMITS, LoginLimiter, sourceKey } from "./login-limiter.js";

function clock() {
  let t = 1_000_000;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

function memoryLog() {
  const lines: string[] = [];
  const log: Log = { debug: () => {}, info: (m) => lines.push(m), warn: (m) => lines.push(m), error: (m) => lines.push(m) };
  return { log, lines };
}

describe("LoginLimiter", () => {
  it("lets 5 failures through, then waits 1, 2, 4, 8, 16, 30, 30 s", () => {
    const c = clock();
    const l = new LoginLimiter({ now: c.now });
    const holds: number[] = [];
    for (let i = 0; i < 12; i++) {
      expect(l.admit("10.0.0.1"), `attempt ${i + 1}`).toBe(0); // each waited for its answer: never refused
      const hold = l.failed("10.0.0.1");
      holds.push(hold);
      c.advance(hold);
    }
    expect(holds).toEqual([0, 0, 0, 0, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
    l.close();
  });

  it("refuses attempts during the wait without extending it, and a success clears the source", () => {
    const c = clock();
    const l = new LoginLimiter({ now: c.now });
    for (let i = 0; i < 9; i++) l.failed("10.0.0.1");
    // 9 failures at once: the wait is 16 s; a thousand impatient attempts change nothing
    for (let i = 0; i < 1000; i++) {
      expect(l.admit("10.0.0.1")).toBeGreaterThan(0);
      c.advance(15);
    }
    c.advance(16_000 - 15_000);
    expect(l.admit("10.0.0.1")).toBe(0);
    // a hundred more failures never make anyone wait more than 30 s after the last one
    for (let i = 0; i < 100; i++) l.failed("10.0.0.1");
    expect(l.admit("10.0.0.1")).toBe(30_000);
    c.advance(30_000);
    expect(l.admit("10.0.0.1")).toBe(0);
    l.succeeded("10.0.0.1");
    expect(l.trackedSources).toBe(0);
    l.close();
  });

  it("counts the account across sources: many sources cannot each take 5 free guesses", () => {
    const c = clock();
    const l = new LoginLimiter({ now: c.now });
    for (let i = 0; i < 4; i++) l.failed(`10.0.0.${i}`);
    expect(l.admit("10.0.0.99")).toBe(0);
    expect(l.failed("10.0.0.4")).toBe(1000); // the account's 5th failure
    expect(l.admit("10.0.0.200")).toBe(1000); // a source never seen waits too
    // a success from one source does not clear the account
    c.advance(1000);
    l.succeeded("10.0.0.1");
    expect(l.failed("10.0.0.7")).toBe(2000);
    // the account's count is forgotten after 15 quiet minutes
    c.advance(DEFAULT_LOGIN_LIMITS.forgetAfterMs + 1);
    expect(l.failed("10.0.0.8")).toBe(0);
    l.close();
  });

  it("remembers a bounded number of sources", () => {
    const c = clock();
    const l = new LoginLimiter({ now: c.now, limits: { maxSources: 100 } });
    for (let i = 0; i < 5000; i++) l.failed(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
    expect(l.trackedSources).toBe(100);
    l.close();
  });

  it("logs the first failure, then counts, not lines", async () => {
    const { log, lines } = memoryLog();
    const l = new LoginLimiter({ log, limits: { summaryEveryMs: 50 } });
    for (let i = 0; i < 200; i++) {
      l.failed(i % 2 ? "127.0.0.1" : "192.168.1.7");
      l.admit("127.0.0.1");
    }
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/failed login from 192\.168\.1\.7/);
    await new Promise((r) => setTimeout(r, 120));
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatch(/199 more failed logins \(127\.0\.0\.1 ×100, 192\.168\.1\.7 ×99\) and 196 refused/); // the first 4 were before any wait
    // quiet for a whole period: the next failure is said at once again
    await new Promise((r) => setTimeout(r, 120));
    l.failed("127.0.0.1");
    expect(lines).toHaveLength(3);
    expect(lines[2]).toMatch(/^xmpp: failed login from 127\.0\.0\.1/);
    l.close();
  });

  it("counts an IPv6 /64 as one source", () => {
    expect(sourceKey("::ffff:127.0.0.1")).toBe("127.0.0.1");
    expect(sourceKey("192.168.1.7")).toBe("192.168.1.7");
    expect(sourceKey("2001:db8:1:2:aaaa::1")).toBe("2001:db8:1:2::/64");
    expect(sourceKey("2001:db8:1:2:bbbb:cccc:dddd:eeee")).toBe("2001:db8:1:2::/64");
    expect(sourceKey("2001:db8::1")).toBe("2001:db8:0:0::/64");
    expect(sourceKey("fe80::1%eth0")).toBe("fe80:0:0:0::/64");
    expect(sourceKey("::1")).toBe("0:0:0:0::/64");
    expect(sourceKey(undefined)).toBe("unknown");
  });
});
