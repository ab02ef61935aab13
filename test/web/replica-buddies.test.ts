// The buddy list in the browser's replica (docs/web-app.md, "The replica in the browser"), in Debian's
// Chromium on two real nodes: the name amara gives baraka in one tab shows in her other tab at once
// and the node takes it; a name given while her node is stopped shows in both tabs, stays in the
// browser, and reaches the node when it is back; a name given on the node (as `pigeon buddy rename`
// does) shows in the tabs; a name the node refuses goes back to the one it holds.
import { createServer } from "node:net";
import type { BrowserContext, Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { api, cleanupAll } from "../helpers.js";
import { launch, makeFriends, missingChromium, openApp, profile, startWebNode, waitFor, type WebNode } from "./web-helpers.js";

const why = missingChromium();
if (why) console.log(`\n*** SKIPPED: the buddy list in the replica: ${why} ***\n`);

afterAll(cleanupAll);

/** A free loopback port: the node comes back on the same one, so the page's origin (and its IndexedDB) stays the same. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

interface BuddyView { address: string; petname?: string }
const petname = async (node: WebNode) => (await api<{ buddies: BuddyView[] }>(node, "GET", "/api/buddies")).buddies.find((b) => b.address === "baraka@local")?.petname;
/** The name the friends screen shows for baraka (his own, or the one amara gave him). */
const shownName = (p: Page) => p.locator(".friend", { hasText: "baraka@local" }).locator(".friend-name").textContent();

async function friendsWithReplica(ctx: BrowserContext, node: WebNode): Promise<Page> {
  const page = await openApp(ctx, node, "#friends");
  await page.waitForSelector("body[data-replica=ready]");
  await page.locator(".friend", { hasText: "baraka@local" }).waitFor();
  return page;
}

/** Gives baraka a name with the keyboard: the field, the words, Enter. */
async function rename(page: Page, name: string): Promise<void> {
  const field = page.getByLabel("The name I give baraka");
  await field.fill(name);
  await field.press("Enter");
}

describe.skipIf(!!why)("the buddy list in the browser's replica", () => {
  let browser: Browser;
  let amara: WebNode;
  let baraka: WebNode;
  let port: number;
  let ctx: BrowserContext;

  beforeAll(async () => {
    port = await freePort();
    amara = await startWebNode("amara", { args: ["--control-port", String(port)] });
    baraka = await startWebNode("baraka", { args: ["--peer", `127.0.0.1:${amara.syncPort}`] });
    browser = await launch();
    ctx = await profile(browser);
    const pa = await openApp(ctx, amara);
    const pb = await openApp(await profile(browser), baraka);
    await makeFriends({ page: pa, other: "baraka" }, { page: pb, other: "amara" });
    await pa.close();
  }, 150_000);

  it("a name given in one tab shows in the other at once, and the node takes it", async () => {
    const tab1 = await friendsWithReplica(ctx, amara);
    const tab2 = await friendsWithReplica(ctx, amara);
    await rename(tab1, "kaka");
    await expect(tab1.locator("#flash").textContent()).resolves.toBe("baraka is called kaka now.");
    await waitFor(async () => (await shownName(tab2)) === "kaka", "the other tab to show the new name");
    await waitFor(async () => (await petname(amara)) === "kaka", "the node to take the name");
    // given on the node (the command line, another device): the tabs show it
    await api(amara, "POST", "/api/buddies/rename", { who: "baraka@local", name: "rafiki" });
    await waitFor(async () => (await shownName(tab1)) === "rafiki" && (await shownName(tab2)) === "rafiki", "both tabs to show the node's name");
    // a name the node refuses: the tabs go back to the one it holds
    await rename(tab2, "no spaces here!");
    await waitFor(async () => (await shownName(tab1)) === "rafiki" && (await shownName(tab2)) === "rafiki", "the refused name to go");
    expect(await petname(amara)).toBe("rafiki");
    await tab1.close();
    await tab2.close();
  }, 120_000);

  it("a name given while the node is stopped shows in both tabs, and reaches the node when it is back", async () => {
    const tab1 = await friendsWithReplica(ctx, amara);
    const tab2 = await friendsWithReplica(ctx, amara);
    await amara.stop();
    await tab1.locator("#live.down").waitFor();
    await rename(tab1, "bwana");
    // no node in between: the other tab has it from the first (BroadcastChannel)
    await waitFor(async () => (await shownName(tab2)) === "bwana", "the other tab to show the name with the node stopped");
    await tab1.close();
    await tab2.close();
    amara = await startWebNode("amara", { dataDir: amara.dataDir, args: ["--control-port", String(port), "--peer", `127.0.0.1:${baraka.syncPort}`] });
    // a tab opened again has it from IndexedDB and gives it to the node, which signs the change
    const tab3 = await friendsWithReplica(ctx, amara);
    await waitFor(async () => (await petname(amara)) === "bwana", "the node to take the name given while it was stopped", 30_000);
    expect(await shownName(tab3)).toBe("bwana");
    await tab3.close();
  }, 150_000);
});
