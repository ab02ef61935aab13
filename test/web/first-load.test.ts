// The first screen on a slow laptop: the page asks the node for it (boot.js) before the app's own
// modules have arrived, and every module main.js needs is fetched at once (modulepreload in
// index.html) instead of level by level as each import is found. See docs/benchmarks.md, "Web app:
// time to interactive". Read from the built files (npm run build) and in Debian's Chromium.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cleanupAll, ROOT } from "../helpers.js";
import { launch, missingChromium, profile, startWebNode, type WebNode } from "./web-helpers.js";

const SCRIPTS = join(ROOT, "packages/app/dist/web");
const INDEX = readFileSync(join(ROOT, "packages/app/web/static/index.html"), "utf8");

/** Every module main.js loads before it runs: its static imports, and theirs. */
function graph(from: string, seen = new Set<string>()): Set<string> {
  if (seen.has(from)) return seen;
  seen.add(from);
  const js = readFileSync(join(SCRIPTS, from), "utf8");
  for (const m of js.matchAll(/^\s*import\s[^;]*?from\s*["'](\.\/[^"']+)["']/gm)) {
    graph(join(from, "..", m[1]!).replaceAll("\\", "/"), seen);
  }
  return seen;
}

afterAll(cleanupAll);

describe("the first screen", () => {
  it("index.html preloads every module main.js needs, and asks for the session (boot.js) before main.js", () => {
    const needed = [...graph("main.js")].sort();
    expect(needed).toContain("vendor/qr/decode.js");
    const preloaded = [...INDEX.matchAll(/<link rel="modulepreload" href="\/app\/([^"]+)">/g)].map((m) => m[1]).sort();
    expect(preloaded).toEqual(needed);
    expect(INDEX.indexOf('src="/app/boot.js"')).toBeGreaterThan(0);
    expect(INDEX.indexOf('src="/app/boot.js"')).toBeLessThan(INDEX.indexOf('src="/app/main.js"'));
    // boot.js runs before the rest has arrived only if it waits for nothing
    expect(readFileSync(join(SCRIPTS, "boot.js"), "utf8")).not.toMatch(/^\s*(import|export)\s/m);
    expect(INDEX).toMatch(/<script src="\/app\/boot.js"><\/script>\n<link rel="stylesheet"/);
  });

  describe.skipIf(!!missingChromium())("in Chromium", () => {
    let browser: Browser;
    let amara: WebNode;
    beforeAll(async () => {
      amara = await startWebNode("amara");
      browser = await launch();
    }, 60_000);

    it("asks the node for the first screen before any script runs, once from the bookmark; the first time after trading the key, which leaves the address", async () => {
      const page = await (await profile(browser)).newPage();
      const asked: string[] = [];
      page.on("request", (r) => {
        const u = new URL(r.url());
        if (u.pathname.startsWith("/app/api/") || u.pathname === "/app/login") asked.push(u.pathname + u.search);
      });
      await page.goto(amara.appUrl);
      await page.waitForSelector("body[data-ready]");
      // the preload (no session yet: refused), then the login, then the session with it
      expect(asked.filter((p) => p.startsWith("/app/api/session") || p === "/app/login")).toEqual(["/app/api/session", "/app/login", "/app/api/session?login"]);
      expect(page.url()).not.toContain("key=");
      // the refused preload was used up: the page asking again gets its session, not that refusal
      expect(await page.evaluate(async () => (await fetch("/app/api/session")).status)).toBe(200);
      await expect(page.locator("#to-inbox").count()).resolves.toBe(1);
      asked.length = 0;
      await page.goto(amara.origin + "/app/");
      await page.waitForSelector("body[data-ready]");
      // from the bookmark: the preload's answer is the one the page uses (asked once, not twice)
      expect(asked.filter((p) => p.startsWith("/app/api/session") || p === "/app/login")).toEqual(["/app/api/session"]);
      await expect(page.getByRole("link", { name: /Inbox/ }).count()).resolves.toBe(1);
    });
  });
});
