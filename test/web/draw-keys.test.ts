// Drawing with the keyboard alone, in Debian's Chromium: amara, who uses no mouse, chooses red with
// Tab, draws a square and a dot with the arrow keys and Space/Enter, undoes a line, and sends it;
// baraka's page shows the very strokes her keys made. A screen reader hears where the pen is; in
// Arabic (right to left) the arrows still move the pen the way they point.
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cleanupAll } from "../helpers.js";
import { launch, look, makeFriends, missingChromium, openApp, profile, startWebNode, type WebNode } from "./web-helpers.js";

const why = missingChromium();
if (why) console.log(`\n*** SKIPPED: drawing with the keyboard in Chromium: ${why} ***\n`);

afterAll(cleanupAll);

/** What has the focus, as a child hears it: its id, else its name. */
const focused = (page: Page) => page.evaluate(() => {
  const e = document.activeElement;
  return e?.id || e?.getAttribute("aria-label") || e?.textContent?.trim() || "";
});

/** Tab (or Shift+Tab) until `what` has the focus, as a keyboard user does. */
async function tabTo(page: Page, what: string, back = false): Promise<void> {
  for (let i = 0; i < 40 && (await focused(page)) !== what; i++) await page.keyboard.press(back ? "Shift+Tab" : "Tab");
  expect(await focused(page)).toBe(what);
}

async function press(page: Page, key: string, times = 1): Promise<void> {
  for (let i = 0; i < times; i++) await page.keyboard.press(key);
}

describe.skipIf(!!why)("drawing with the keyboard alone", () => {
  let browser: Browser;
  let amara: WebNode;
  let baraka: WebNode;
  let pa: Page;
  let pb: Page;

  beforeAll(async () => {
    amara = await startWebNode("amara");
    baraka = await startWebNode("baraka", { args: ["--peer", `127.0.0.1:${amara.syncPort}`] });
    browser = await launch();
    pa = await openApp(await profile(browser), amara);
    pb = await openApp(await profile(browser), baraka);
    await makeFriends({ page: pa, other: "baraka" }, { page: pb, other: "amara" });
  }, 90_000);

  it("a square and a dot drawn with the arrows, Space and Enter arrive as those strokes", async () => {
    const status = pa.locator("#pen-status");
    await pa.evaluate(() => (document.activeElement as HTMLElement | null)?.blur());
    await tabTo(pa, "to-write");
    await pa.keyboard.press("Enter");
    await pa.locator("main[data-screen=write]").waitFor();
    await tabTo(pa, "to");
    await pa.keyboard.press("ArrowDown"); // the first friend: baraka
    await tabTo(pa, "kind-drawing");
    await pa.keyboard.press("Enter");
    await tabTo(pa, "red");
    await pa.keyboard.press("Enter");
    await tabTo(pa, "canvas");
    // the pen starts in the middle (300, 200 of 600 x 400); Space puts it down
    await pa.keyboard.press("Space");
    await expect(status.textContent()).resolves.toBe("Pen down at 300 across, 200 down");
    await expect(pa.locator("#canvas .cursor.down").count()).resolves.toBe(1);
    // a square, 100 a side: Shift makes steps of 50
    await press(pa, "Shift+ArrowRight", 2);
    await press(pa, "Shift+ArrowDown", 2);
    await press(pa, "Shift+ArrowLeft", 2);
    await press(pa, "Shift+ArrowUp", 2);
    await expect(status.textContent()).resolves.toBe("Pen down at 300 across, 200 down");
    await pa.keyboard.press("Enter"); // the pen lifts: the letter is not sent
    await expect(status.textContent()).resolves.toBe("Pen up at 300 across, 200 down");
    await expect(pa.locator("main[data-screen=write]").count()).resolves.toBe(1);
    // a line drawn by mistake, and undone with Tab and Enter
    await press(pa, "ArrowRight", 3); // small steps of 10, pen up: nothing drawn
    await pa.keyboard.press("Space");
    await press(pa, "ArrowDown", 5);
    await pa.keyboard.press("Space");
    await expect(pa.locator("#canvas polyline").count()).resolves.toBe(2);
    await tabTo(pa, "undo");
    await pa.keyboard.press("Enter");
    await expect(pa.locator("#canvas polyline").count()).resolves.toBe(1);
    // back to the drawing space: the pen is where it was, and a dot is Space twice
    await tabTo(pa, "canvas", true);
    await pa.keyboard.press("ArrowLeft");
    await pa.keyboard.press("Space");
    await expect(status.textContent()).resolves.toBe("Pen down at 320 across, 250 down");
    await pa.keyboard.press("Space");
    await expect(pa.locator("#size").textContent()).resolves.toMatch(/% of the space used/);
    await look(pa, "write-drawing-keys");
    await tabTo(pa, "send");
    await pa.keyboard.press("Enter");
    await pa.locator("main[data-screen=outbox]").waitFor();

    await pb.getByRole("link", { name: /Inbox/ }).click();
    const drawing = pb.getByRole("img", { name: "A drawing from amara" });
    await drawing.waitFor();
    const shapes = await drawing.evaluate((svg) => [...svg.children].map((e) => ({
      tag: e.tagName,
      points: e.getAttribute("points"),
      at: e.tagName === "circle" ? [e.getAttribute("cx"), e.getAttribute("cy")].join(" ") : null,
      colour: e.getAttribute("stroke") ?? e.getAttribute("fill"),
    })));
    expect(shapes).toEqual([
      // the square: four corners and back, each side one line however many keys made it
      { tag: "polyline", points: "300 200 400 200 400 300 300 300 300 200", at: null, colour: "#d7263d" },
      { tag: "circle", points: null, at: "320 250", colour: "#d7263d" },
    ]);
  });

  it("in Arabic, right to left, the arrows move the pen the way they point, and the pen is read out in Arabic", async () => {
    const page = await openApp(await profile(browser, "ar"), amara, "#write");
    await expect(page.locator("html").getAttribute("dir")).resolves.toBe("rtl");
    await page.locator("#kind-drawing").focus();
    await page.keyboard.press("Enter");
    await tabTo(page, "canvas");
    await page.keyboard.press("ArrowRight");
    await page.keyboard.press("Space");
    await expect(page.locator("#pen-status").textContent()).resolves.toBe("القلم على الورقة: 310 من اليسار، 200 من الأعلى");
    await page.keyboard.press("Shift+ArrowRight");
    await page.keyboard.press("Shift+PageDown"); // slanted, down and right: the number pad's 3
    await page.keyboard.press("Space");
    await expect(page.locator("#canvas polyline").getAttribute("points")).resolves.toBe("310 200 360 200 410 250");
    // the drawn line goes right on the screen too
    const [a, b] = await page.locator("#canvas").evaluate((svg) => {
      const r = svg.getBoundingClientRect();
      return [r.left, r.right];
    });
    const line = (await page.locator("#canvas polyline").boundingBox())!;
    expect(line.x + line.width / 2).toBeGreaterThan(a + (b - a) / 2);
    await look(page, "write-drawing-keys-ar");
    await page.close();
  });
});
