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
/** The budget: under 300 KB of gzipped JavaScript (the replica's bundle included). */
const BUDGET = 300 * 1024;
/**
 * Automerge's WebAssembly is not JavaScript and has its own bound: it is what the drafts' replica
 * needs (3.6 MB, 1.1 MB gzipped, Automerge 3.5.0), fetched once from the node on loopback, after
 * the first screen, and cached; a new Automerge that grows it much must be a decision.
 */
const WASM_BUDGET = 1400 * 1024;
/** Addresses that are text of an error message in a library, never fetched. */
const NOT_FETCHED = new Set(["http://www.w3.org/2000/svg", "https://github.com/uuidjs/uuid#getrandomvalues-not-supported"]);

/** A vendored library's comments (its licence, the papers it cites) are not addresses the browser fetches. */
const withoutComments = (js: string) => js.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[\s;{}])\/\/.*$/gm, "$1");

describe("the web app's files", () => {
  // every script the browser may load, the vendored QR code library (dist/web/vendor/) included
  const scripts = (readdirSync(SCRIPTS, { recursive: true }) as string[]).filter((f) => f.endsWith(".js"));
  const files = [...scripts.map((f) => join(SCRIPTS, f)), ...readdirSync(STATIC).map((f) => join(STATIC, f))];

  it(`are under ${BUDGET / 1024} KB of gzipped JavaScript`, () => {
    expect(scripts).toContain("main.js");
    expect(scripts).toContain(join("vendor", "qr", "decode.js"));
    expect(scripts, "the replica's bundle (npm run build)").toContain("replica-bundle.js");
    const gzipped = scripts.reduce((n, f) => n + gzipSync(readFileSync(join(SCRIPTS, f))).length, 0);
    console.log(`web app: ${scripts.length} scripts, ${(gzipped / 1024).toFixed(1)} KB gzipped`);
    expect(gzipped).toBeLessThan(BUDGET);
  });

  it(`carry Automerge's WebAssembly in under ${WASM_BUDGET / 1024} KB gzipped`, () => {
    const wasm = readFileSync(join(SCRIPTS, "automerge.wasm"));
    const gzipped = gzipSync(wasm).length;
    console.log(`automerge.wasm: ${(wasm.length / 1024).toFixed(0)} KB, ${(gzipped / 1024).toFixed(0)} KB gzipped`);
    expect(gzipped).toBeLessThan(WASM_BUDGET);
  });

  it("fetch nothing from anywhere else", () => {
    for (const f of files) {
      const text = f.includes(`${join("dist", "web", "vendor")}`) ? withoutComments(readFileSync(f, "utf8")) : readFileSync(f, "utf8");
      // the only absolute URLs allowed are the SVG namespace (a name) and an error message's text
      const urls = [...text.matchAll(/(?:https?:)?\/\/[a-z0-9.-]+\.[a-z]{2,}[^\s"'`)]*/gi)].map((m) => m[0]).filter((u) => !NOT_FETCHED.has(u));
      expect(urls, f).toEqual([]);
      // CSS fetching: in the styles and the page (in a script, "url(" is any minified function's name)
      if (!f.endsWith(".js")) expect(text, f).not.toMatch(/@import|@font-face|url\(/);
    }
  });
});
