// What the node ships to the browser: small (the budget is for slow laptops), and nothing fetched from
// anywhere else (no CDN, no web font: the app works with no internet). Reads the built files, so it
// runs after tsc -b (npm test builds first).
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { ROOT } from "../helpers.js";

const SCRIPTS = join(ROOT, "packages/app/dist/web");
const STATIC = join(ROOT, "packages/app/web/static");
/** The budget: under 300 KB of gzipped JavaScript. */
const BUDGET = 300 * 1024;

/** A vendored library's comments (its licence, the papers it cites) are not addresses the browser fetches. */
const withoutComments = (js: string) => js.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[\s;{}])\/\/.*$/gm, "$1");

describe("the web app's files", () => {
  // every script the browser may load, the vendored QR code library (dist/web/vendor/) included
  const scripts = (readdirSync(SCRIPTS, { recursive: true }) as string[]).filter((f) => f.endsWith(".js"));
  const files = [...scripts.map((f) => join(SCRIPTS, f)), ...readdirSync(STATIC).map((f) => join(STATIC, f))];

  it(`are under ${BUDGET / 1024} KB of gzipped JavaScript`, () => {
    expect(scripts).toContain("main.js");
    expect(scripts).toContain(join("vendor", "qr", "decode.js"));
    const gzipped = scripts.reduce((n, f) => n + gzipSync(readFileSync(join(SCRIPTS, f))).length, 0);
    console.log(`web app: ${scripts.length} scripts, ${(gzipped / 1024).toFixed(1)} KB gzipped`);
    expect(gzipped).toBeLessThan(BUDGET);
  });

  it("fetch nothing from anywhere else", () => {
    for (const f of files) {
      const text = f.includes(`${join("dist", "web", "vendor")}`) ? withoutComments(readFileSync(f, "utf8")) : readFileSync(f, "utf8");
      // the only absolute URL allowed is the SVG namespace, a name and not an address
      const urls = [...text.matchAll(/(?:https?:)?\/\/[a-z0-9.-]+\.[a-z]{2,}[^\s"'`)]*/gi)].map((m) => m[0]).filter((u) => u !== "http://www.w3.org/2000/svg");
      expect(urls, f).toEqual([]);
      expect(text, f).not.toMatch(/@import|@font-face|url\(/);
    }
  });
});
