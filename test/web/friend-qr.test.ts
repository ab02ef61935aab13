// Making a friend without typing the long code, in Debian's Chromium on real nodes: amara's Friends
// screen shows her code as a QR code; baraka's laptop, whose camera (Chromium's fake camera, playing
// a video file) films what amara's screen shows, reads it and amara becomes his friend. Where there is
// no camera the page says so, and esi, whose laptop is near amara's, types amara's short code instead
// (and a short code no laptop nearby has is refused with words a child understands).
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cleanupAll, freePort, tempDir } from "../helpers.js";
import { launch, look, missingChromium, openApp, profile, sendText, startWebNode, waitFor, type WebNode } from "./web-helpers.js";

const why = missingChromium();
if (why) console.log(`\n*** SKIPPED: friends by QR code in the web app: ${why} ***\n`);

afterAll(cleanupAll);

const W = 640;
const H = 480;

/**
 * A camera's video of what the page shows in its QR image: the image as the browser draws it, grey
 * levels centred in a 640 x 480 frame (a YUV4MPEG2 file, which Chromium's fake camera plays in a loop).
 */
async function filmQr(page: Page, file: string): Promise<void> {
  const { size, grey } = await page.locator("svg.qr").evaluate(async (svg) => {
    const side = 360;
    const img = new Image();
    img.src = "data:image/svg+xml;base64," + btoa(new XMLSerializer().serializeToString(svg));
    await img.decode();
    const canvas = document.createElement("canvas");
    canvas.width = canvas.height = side;
    const ctx = canvas.getContext("2d")!;
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(img, 0, 0, side, side);
    const px = ctx.getImageData(0, 0, side, side).data;
    const grey: number[] = [];
    for (let i = 0; i < px.length; i += 4) grey.push(Math.round(0.299 * px[i]! + 0.587 * px[i + 1]! + 0.114 * px[i + 2]!));
    return { size: side, grey };
  });
  const y = Buffer.alloc(W * H, 235); // a light wall behind the screen
  const x0 = (W - size) / 2;
  const y0 = (H - size) / 2;
  for (let r = 0; r < size; r++) for (let c = 0; c < size; c++) y[(y0 + r) * W + x0 + c] = grey[r * size + c]!;
  const chroma = Buffer.alloc((W / 2) * (H / 2) * 2, 128); // no colour
  writeFileSync(file, Buffer.concat([Buffer.from(`YUV4MPEG2 W${W} H${H} F10:1 Ip A1:1 C420jpeg\nFRAME\n`), y, chroma]));
}

describe.skipIf(!!why)("friends by QR code and short code", () => {
  let browser: Browser;
  let amara: WebNode;
  let baraka: WebNode;
  let esi: WebNode;
  let pa: Page;

  beforeAll(async () => {
    const readyMs = 60_000;
    const portA = await freePort();
    amara = await startWebNode("amara", { readyMs, args: ["--port", String(portA)] });
    // baraka's laptop never meets amara's: the QR code is how he gets her card
    baraka = await startWebNode("baraka", { readyMs });
    esi = await startWebNode("esi", { readyMs, args: ["--peer", `127.0.0.1:${portA}`] });
    browser = await launch();
    pa = await openApp(await profile(browser), amara);
  }, 180_000);

  it("amara shows her code as a QR code; baraka's camera reads it and she is his friend", async () => {
    await pa.getByRole("link", { name: /Friends/ }).click();
    await pa.getByRole("img", { name: "QR code with my friend code" }).waitFor();
    await expect(pa.locator("#short-code").textContent()).resolves.toMatch(/^My short code: [a-z2-7]{4}-[a-z2-7]{4}$/);
    await look(pa, "friends-qr");

    const video = join(tempDir("camera"), "amara-qr.y4m");
    await filmQr(pa, video);
    const filming = await launch(["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream", `--use-file-for-fake-video-capture=${video}`]);
    const ctx = await profile(filming);
    await ctx.grantPermissions(["camera"]);
    const pb = await openApp(ctx, baraka);
    await pb.getByRole("link", { name: /Friends/ }).click();
    await pb.getByText("No friends yet", { exact: false }).waitFor();
    await pb.getByRole("button", { name: /Read a friend's code with the camera/ }).click();
    // (the camera reads the code in its first frames: "Hold your friend's code..." may never be seen)
    await waitFor(async () => (await pb.locator("#flash").textContent()) === "amara is now your friend.", "baraka's camera to read amara's code", 30_000);
    await pb.locator(".friend .friend-name", { hasText: "amara" }).waitFor();
    // the camera is off again: the button offers to read another code
    await pb.getByRole("button", { name: /Read a friend's code with the camera/ }).waitFor();
    expect(await pb.locator("video#camera").evaluate((v: HTMLVideoElement) => v.srcObject === null)).toBe(true);
    await look(pb, "friends-camera-read");
  }, 120_000);

  it("with no camera the page says to type; esi, near amara, types her short code", async () => {
    const pe = await openApp(await profile(browser), esi);
    await pe.getByRole("link", { name: /Friends/ }).click();
    await pe.getByRole("button", { name: /Read a friend's code with the camera/ }).click();
    await waitFor(async () => (await pe.locator("#flash").textContent()) === "No camera here: type your friend's code instead.", "the page to say there is no camera");
    // a short code no laptop nearby has
    await pe.getByLabel("Type or paste the code your friend shows you.").fill("AAAA-AAAA");
    await pe.getByRole("button", { name: /Add friend/ }).click();
    await waitFor(async () => /No laptop near yours has the code aaaa-aaaa/.test((await pe.locator("#flash").textContent()) ?? ""), "the unknown short code refused");
    // amara's, as her screen shows it, typed with the keyboard (capitals and no dash do as well)
    const code = (await pa.locator("#short-code").textContent())!.replace("My short code: ", "");
    await pe.locator(".seen", { hasText: "Nearby now" }).first().waitFor({ timeout: 30_000 });
    await pe.getByLabel("Type or paste the code your friend shows you.").fill(code.toUpperCase().replace("-", ""));
    await pe.getByLabel("Type or paste the code your friend shows you.").press("Tab");
    await pe.keyboard.press("Enter");
    await waitFor(async () => (await pe.locator("#flash").textContent()) === "amara is now your friend.", "esi to add amara by her short code");
    await pe.locator(".friend .friend-name", { hasText: "amara" }).waitFor();
  }, 90_000);

  it("a friend whose message came through another laptop is shown as 2 laptops away", async () => {
    // baraka's laptop comes back near esi's only; esi's is near amara's
    await baraka.stop();
    baraka = await startWebNode("baraka", { readyMs: 60_000, dataDir: baraka.dataDir, args: ["--peer", `127.0.0.1:${esi.syncPort}`] });
    const pb = await openApp(await profile(browser), baraka);
    await sendText(pb, "amara", "Hello from far away");
    // not her friend yet: his words wait among requests on amara's Friends screen until she accepts
    await pa.getByRole("link", { name: /Friends/ }).click();
    const request = pa.locator("section[aria-labelledby=requests-h] li", { hasText: "baraka" });
    await request.waitFor({ timeout: 30_000 });
    await request.getByRole("button", { name: /Accept/ }).click();
    const friend = pa.locator(".friend", { hasText: "baraka" });
    await friend.waitFor();
    await expect(friend.locator(".away").textContent()).resolves.toBe("⇢ 2 laptops away");
    await look(pa, "friends-away");
  }, 120_000);
});
