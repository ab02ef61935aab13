// Helpers for the web app's tests: real nodes (the built CLI), Debian's Chromium through playwright-core,
// and pages opened the way a child opens them (the address pigeon start printed, with its key).
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { onCleanup, ROOT, startDaemon, waitFor, type Daemon, type StartOptions } from "../helpers.js";

const require = createRequire(join(ROOT, "packages/xmpp/package.json"));

/** Why the browser tests cannot run here, or undefined. */
export function missingChromium(): string | undefined {
  if (!existsSync("/usr/bin/chromium")) return "chromium is not installed (apt-get install chromium)";
  try {
    require.resolve("playwright-core");
  } catch {
    return "playwright-core is missing from node_modules (npm ci)";
  }
  return undefined;
}

export interface WebNode extends Daemon {
  /** The address pigeon start printed for the browser (with the key). */
  appUrl: string;
  origin: string;
}

/** A node started with the built CLI; its app address is read from what it printed, as a child would. */
export async function startWebNode(name: string, opts: StartOptions = {}): Promise<WebNode> {
  // a browser test runs Chromium beside its nodes: on a loaded machine a node may take long to start
  const d = await startDaemon(name, { readyMs: 60_000, ...opts, args: ["--no-mdns", "--no-xmpp", ...(opts.args ?? [])] });
  const url = /Pigeon for you in this laptop's browser: (\S+)/.exec(d.output())?.[1];
  if (!url) throw new Error(`${name} printed no address for the browser:\n${d.output()}`);
  return Object.assign(d, { appUrl: url, origin: new URL(url).origin });
}

let built: Promise<void> | undefined;

/** Debian's Chromium, headless; `extra` adds switches (a fake camera showing a file, for one). */
export async function launch(extra: string[] = []): Promise<Browser> {
  // the replica's bundle (esbuild) from the sources, in case only tsc -b ran
  built ??= (import(join(ROOT, "packages/app/web/build.mjs")) as Promise<{ buildReplica(): Promise<void> }>).then((m) => m.buildReplica());
  await built;
  const { chromium } = (await import(require.resolve("playwright-core"))) as typeof import("playwright-core");
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync", ...extra],
    timeout: 30_000,
  });
  onCleanup(() => browser.close());
  return browser;
}

/** A fresh browser profile (its own cookies and storage) in the given language. */
export async function profile(browser: Browser, locale = "en-GB"): Promise<BrowserContext> {
  const ctx = await browser.newContext({ locale, viewport: { width: 1024, height: 720 } });
  onCleanup(() => ctx.close());
  ctx.setDefaultTimeout(15_000);
  return ctx;
}

/** Opens the app the way the child does: the printed address, then waits until it shows. */
export async function openApp(ctx: BrowserContext, node: WebNode, hash = ""): Promise<Page> {
  const page = await ctx.newPage();
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  if (process.env.PIGEON_WEB_DEBUG) page.on("console", (m) => console.log(`[${node.name} page] ${m.text()}`));
  onCleanup(() => {
    if (errors.length) console.log(`page errors on ${node.name}'s app: ${errors.join("; ")}`);
  });
  await page.goto(node.appUrl);
  await page.waitForSelector("body[data-ready]");
  if (hash) await page.evaluate((h) => (location.hash = h), hash);
  return page;
}

/** Each child makes the other a friend on the Friends screen once their laptops have met. */
export async function makeFriends(a: { page: Page; other: string }, b: { page: Page; other: string }): Promise<void> {
  for (const { page, other } of [a, b]) {
    await page.getByRole("link", { name: /Friends/ }).click();
    await page.getByRole("button", { name: `Make a friend: ${other}` }).click();
    await page.locator(".friend .friend-name", { hasText: other }).waitFor();
  }
}

/** Writes and sends words to a friend on the Write screen (mouse and keyboard, as a child would). */
export async function sendText(page: Page, to: string, text: string): Promise<void> {
  await page.getByRole("link", { name: /Write/ }).first().click();
  await page.getByLabel("Who is it for?").selectOption({ label: to });
  await page.getByLabel("Your message", { exact: true }).fill(text);
  await page.getByRole("button", { name: /Send/ }).click();
  await page.locator("main[data-screen=outbox] li.msg", { hasText: text }).first().waitFor();
}

/** Where the tests put screenshots; PIGEON_SCREENSHOTS=1 (npm run screenshots) puts them in docs/screenshots. */
export function screenshotDir(): string | undefined {
  if (!process.env.PIGEON_SCREENSHOTS) return undefined;
  const dir = join(ROOT, "docs/screenshots");
  mkdirSync(dir, { recursive: true });
  return dir;
}

const AXE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

export interface Violation {
  id: string;
  impact: string;
  help: string;
  nodes: string[];
}

/** axe-core's serious and critical findings on the page as it is now (WCAG 2.1 A and AA rules). */
export async function accessibility(page: Page): Promise<Violation[]> {
  // evaluated by the DevTools protocol: the app's CSP (no inline script) stays on for the check
  if (!(await page.evaluate(() => "axe" in window))) await page.evaluate(AXE);
  return page.evaluate(async () => {
    const axe = (window as unknown as { axe: { run: (c: Document, o: object) => Promise<{ violations: { id: string; impact: string; help: string; nodes: { target: string[] }[] }[] }> } }).axe;
    const r = await axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] }, resultTypes: ["violations"] });
    return r.violations
      .filter((v) => v.impact === "serious" || v.impact === "critical")
      .map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(" ")) }));
  });
}

/** Every screen a test reaches: checked with axe-core (no serious violations), and photographed for docs/. */
export async function look(page: Page, name: string): Promise<void> {
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r(null))));
  const found = await accessibility(page);
  if (found.length) throw new Error(`accessibility on the ${name} screen: ${JSON.stringify(found, null, 2)}`);
  const dir = screenshotDir();
  // the whole page, unless it is very long (a folder of a hundred messages): then what a child first sees
  const tall = await page.evaluate(() => document.documentElement.scrollHeight > 2000);
  if (dir) await page.screenshot({ path: join(dir, `${name}.png`), fullPage: !tall });
}

export { waitFor, readFileSync };
