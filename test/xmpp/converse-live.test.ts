// Converse.js in Chromium on baraka's node, with slixmpp on amara's (issue 21): amara's picture
// (vCard PHOTO) is Converse's avatar for her, her typing shows as a chat state in Converse, and her
// correction replaces the typo in Converse's chat instead of arriving as a second message.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cleanupAll, onCleanup, ROOT } from "../helpers.js";
import { startConverse } from "./clients/converse.js";
import { announceSkip, befriend, freePort, missing, slix, startXmppNode, waitFor } from "./xmpp-helpers.js";

afterAll(cleanupAll);

const why = missing("chromium") ?? missing("slixmpp");
if (why) announceSkip("Converse: avatar, typing, correction", why);
const ARTIFACTS = join(ROOT, "test-artifacts");

type Any = any; // eslint-disable-line @typescript-eslint/no-explicit-any

describe.skipIf(!!why)("Converse.js: avatar, typing and corrections from a buddy on another node", () => {
  it("shows amara's picture, her typing, and her corrected message once", async () => {
    const pagePort = await freePort();
    const a = await startXmppNode("amara");
    const b = await startXmppNode("baraka", ["--peer", `127.0.0.1:${a.syncPort}`, "--allow-origin", `http://127.0.0.1:${pagePort}`]);
    await befriend(a, b);
    const c = await startConverse({ websocket: b.websocket, jid: b.jid, password: b.password, port: pagePort });
    onCleanup(() => c.close());
    await c.page.evaluate(async (jid) => void (await (window as Any).__c.api.chats.open(jid)), a.jid);
    const picture = await c.page.evaluate(() => {
      const canvas = document.createElement("canvas");
      canvas.width = canvas.height = 64;
      const g = canvas.getContext("2d")!;
      g.fillStyle = "#7b2cbf";
      g.beginPath();
      g.arc(32, 32, 28, 0, 7);
      g.fill();
      return canvas.toDataURL("image/png").split(",")[1]!;
    });
    // the picture travels with amara's first message to baraka
    const set = await slix({ jid: a.jid, password: a.password, port: a.xmppPort, scenario: "vcard_set", type: "image/png", photo: picture, to: b.jid, body: "hello baraka" });
    expect(set.result.answer).toBe("result");
    await waitFor(async () => (await c.bodies(a.jid)).includes("hello baraka"), "the first message in Converse", 30_000);
    const avatar = async () =>
      c.page.evaluate(async (jid) => {
        const conv = (window as Any).__c;
        const data = await conv.api.vcard.get(jid, true);
        return data?.image as string | undefined;
      }, a.jid);
    await waitFor(async () => (await avatar()) === picture, "Converse to have amara's picture as her avatar", 30_000);

    // typing: Converse's chat with amara says she is composing while she types
    // (Converse keeps the contact's state in the chat's notifications, its own in the chat itself)
    const state = () => c.page.evaluate(async (jid) => (await (window as Any).__c.api.chats.get(jid))?.notifications?.get("chat_state") as string | undefined, a.jid);
    const typing = slix({ jid: a.jid, password: a.password, port: a.xmppPort, scenario: "typing", to: b.jid, states: ["composing"], linger: 6 });
    await waitFor(async () => (await state()) === "composing", "Converse to show amara typing", 20_000);
    expect((await typing).result.ok).toBe(true);

    // a typo and its correction: Converse shows the corrected text, once
    const sent = await slix({ jid: a.jid, password: a.password, port: a.xmppPort, scenario: "send", to: b.jid, bodies: ["see you at 5"], corrections: [{ index: 0, body: "see you at 6" }], wait: "received", timeout: 30 });
    expect(sent.result.ok).toBe(true);
    await waitFor(async () => (await c.bodies(a.jid)).includes("see you at 6"), "the correction in Converse", 30_000);
    await new Promise((r) => setTimeout(r, 1000));
    expect(await c.bodies(a.jid)).toEqual(["hello baraka", "see you at 6"]);
    mkdirSync(ARTIFACTS, { recursive: true });
    await c.screenshot(join(ARTIFACTS, "xmpp-converse-live.png"));
  }, 180_000);
});
