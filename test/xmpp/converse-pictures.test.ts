// Pictures in Converse.js (issue 21): Converse on baraka's node, in headless Chromium, shows as images
// a PNG that slixmpp uploaded on amara's node and a drawing amara made in the web app (stroke data,
// written here with `pigeon send` as the web app writes it), both fetched from baraka's own node.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { encodeDrawing } from "@pigeon/model";
import { cleanupAll, onCleanup, pigeon, ROOT } from "../helpers.js";
import { startConverse } from "./clients/converse.js";
import { announceSkip, befriend, freePort, missing, slix, startXmppNode, waitFor } from "./xmpp-helpers.js";

afterAll(cleanupAll);

const why = missing("chromium") ?? missing("slixmpp");
if (why) announceSkip("pictures in Converse", why);
const ARTIFACTS = join(ROOT, "test-artifacts");

describe.skipIf(!!why)("pictures in Converse.js", () => {
  it("an uploaded PNG and a web-app drawing show as images in Converse on the peer's node", async () => {
    const pagePort = await freePort();
    const a = await startXmppNode("amara");
    const b = await startXmppNode("baraka", ["--peer", `127.0.0.1:${a.syncPort}`, "--allow-origin", `http://127.0.0.1:${pagePort}`]);
    await befriend(a, b);
    const c = await startConverse({ websocket: b.websocket, jid: b.jid, password: b.password, port: pagePort });
    onCleanup(() => c.close());
    // the chat with amara open, as a child who is talking to her has it
    await c.page.evaluate(async (jid) => {
      await (window as unknown as { __c: { api: { chats: { open(j: string): Promise<unknown> } } } }).__c.api.chats.open(jid);
    }, a.jid);
    // a real PNG, drawn by the browser itself: a green square
    const png = await c.page.evaluate(() => {
      const canvas = document.createElement("canvas");
      canvas.width = 120;
      canvas.height = 80;
      const g = canvas.getContext("2d")!;
      g.fillStyle = "#1b998b";
      g.fillRect(10, 10, 100, 60);
      return canvas.toDataURL("image/png").split(",")[1]!;
    });
    const up = await slix({ jid: a.jid, password: a.password, port: a.xmppPort, scenario: "upload", to: b.jid, filename: "square.png", type: "image/png", data: png });
    expect(up.result.error, JSON.stringify(up.result)).toBeUndefined();
    const drawing = encodeDrawing([{ colour: 1, size: 2, points: [20, 20, 580, 380] }, { colour: 5, size: 2, points: [20, 380, 580, 20] }]);
    expect((await pigeon(a, "send", "baraka@local", drawing)).code).toBe(0);
    // Converse opens the chat when the messages arrive; each URL is shown as an <img> that loaded
    const loaded = () =>
      c.page.evaluate(() =>
        [...document.querySelectorAll("img")]
          .filter((i) => i.src.includes("/xmpp-files/") && i.complete && i.naturalWidth > 0)
          .map((i) => [new URL(i.src).pathname.split("/").pop(), i.naturalWidth, i.naturalHeight]),
      );
    const shown = () => c.page.evaluate(() => [...document.querySelectorAll("converse-chat-message")].map((m) => m.innerHTML.replace(/<!---->/g, "").slice(0, 600)));
    try {
      await waitFor(async () => (await loaded()).length >= 2, "Converse to show both pictures", 40_000);
    } catch (e) {
      await c.screenshot(join(ARTIFACTS, "xmpp-converse-pictures-failed.png"));
      throw new Error(`${(e as Error).message}\n${(await shown()).join("\n---\n")}`);
    }
    expect((await loaded()).sort()).toEqual([["drawing.svg", 600, 400], ["square.png", 120, 80]]);
    mkdirSync(ARTIFACTS, { recursive: true });
    await c.screenshot(join(ARTIFACTS, "xmpp-converse-pictures.png"));
  }, 150_000);
});
