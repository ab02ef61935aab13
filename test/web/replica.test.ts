// The browser's live replica of the child's drafts (docs/web-app.md, "The replica in the browser"), in
// Debian's Chromium: a draft typed in one tab shows in another at once; words typed while the node is
// stopped stay in the browser (IndexedDB), reach the node when it is back, and every tab ends with the
// same words; a page on another origin cannot open the replica's WebSocket, and even the app's own
// session gets nothing but its replica over it.
import { createServer as createHttpServer, type Server } from "node:http";
import { createServer } from "node:net";
import * as A from "@automerge/automerge";
import { cbor, generateAutomergeUrl, parseAutomergeUrl } from "@automerge/automerge-repo";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import NodeWebSocket from "ws";
import { api, cleanupAll, onCleanup } from "../helpers.js";
import { launch, look, makeFriends, missingChromium, openApp, profile, startWebNode, waitFor, type WebNode } from "./web-helpers.js";

const why = missingChromium();
if (why) console.log(`\n*** SKIPPED: the replica in Chromium: ${why} ***\n`);

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

interface DraftView { id: string; to: string; body: string; updatedAt: number }

const message = (p: Page) => p.getByLabel("Your message", { exact: true });
const draftStatus = (p: Page) => p.locator("#draft-status").textContent();

/** Opens the app and waits until its replica has started (loaded from IndexedDB or from the node). */
async function openWithReplica(ctx: BrowserContext, node: WebNode, hash = ""): Promise<Page> {
  const page = await openApp(ctx, node, hash);
  await page.waitForSelector("body[data-replica=ready]");
  return page;
}

/** The app's session cookie in this browser profile (HttpOnly: only the test, not a page, can read it). */
async function sessionCookie(ctx: BrowserContext, node: WebNode): Promise<string> {
  const cookies = await ctx.cookies(`${node.origin}/app/`);
  expect(cookies.length).toBe(1);
  return cookies.map((c) => `${c.name}=${c.value}`).join("; ");
}

/** Opens a draft from the Drafts screen, as a child does. */
async function keepWriting(page: Page, words: string): Promise<void> {
  await page.getByRole("link", { name: /Drafts/ }).click();
  await page.locator("li.draft", { hasText: words }).getByRole("link", { name: /Keep writing/ }).click();
}

describe.skipIf(!!why)("the drafts' live replica in the browser", () => {
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
    const pa = await openWithReplica(ctx, amara);
    const pb = await openApp(await profile(browser), baraka);
    await makeFriends({ page: pa, other: "baraka" }, { page: pb, other: "amara" });
    await pa.close();
  }, 150_000);

  it("shows a draft typed in one tab in another at once, and the node saves it", async () => {
    const tab1 = await openWithReplica(ctx, amara, "#write");
    const tab2 = await openWithReplica(ctx, amara, "#drafts");
    await tab1.getByLabel("Who is it for?").selectOption({ label: "baraka" });
    await message(tab1).pressSequentially("Dear Baraka,");
    // the other tab lists it without asking the node
    await tab2.locator("li.draft", { hasText: "Dear Baraka," }).waitFor();
    await waitFor(async () => (await draftStatus(tab1)) === "Draft saved", "the node to say it has the draft");
    await look(tab1, "write");
    // the node holds it in the drafts the child's devices share
    const onNode = await api<DraftView[]>(amara, "GET", "/api/drafts");
    expect(onNode.map((d) => d.body)).toEqual(["Dear Baraka,"]);
    // the second tab goes on writing; the first shows it
    await keepWriting(tab2, "Dear Baraka,");
    await expect(message(tab2).inputValue()).resolves.toBe("Dear Baraka,");
    await message(tab2).press("End");
    await message(tab2).pressSequentially(" Is it sunny?");
    await waitFor(async () => (await message(tab1).inputValue()) === "Dear Baraka, Is it sunny?", "the first tab to show the second tab's words");
    await look(tab2, "drafts-second-tab");
    await tab1.close();
    await tab2.close();
  }, 120_000);

  it("keeps words typed while the node is stopped, and they reach the node when it is back", async () => {
    const tab1 = await openWithReplica(ctx, amara);
    await keepWriting(tab1, "Is it sunny?");
    const tab2 = await openWithReplica(ctx, amara);
    await keepWriting(tab2, "Is it sunny?");
    await amara.stop();
    await tab1.locator("#live.down").waitFor();
    await message(tab1).press("End");
    await message(tab1).pressSequentially(" We can play outside.");
    // nobody to save it: kept in this browser, and the other tab has it too (no node in between)
    await waitFor(async () => (await draftStatus(tab1)) === "Kept on this laptop", "the draft to be kept in the browser");
    await waitFor(async () => (await message(tab2).inputValue()) === "Dear Baraka, Is it sunny? We can play outside.", "the other tab to show the words with the node stopped");
    // the lid closes: every tab goes
    await tab1.close();
    await tab2.close();
    // the node comes back on the same address; a tab opened again has the words, from IndexedDB, and the node gets them
    amara = await startWebNode("amara", { dataDir: amara.dataDir, args: ["--control-port", String(port), "--peer", `127.0.0.1:${baraka.syncPort}`] });
    const tab3 = await openWithReplica(ctx, amara);
    await tab3.getByRole("link", { name: /Drafts/ }).click();
    await tab3.locator("li.draft", { hasText: "We can play outside." }).waitFor();
    await waitFor(
      async () => (await api<DraftView[]>(amara, "GET", "/api/drafts")).some((d) => d.body === "Dear Baraka, Is it sunny? We can play outside."),
      "the node to have the words typed while it was stopped",
    );
    // two tabs after the restart end with the same words
    await keepWriting(tab3, "We can play outside.");
    const tab4 = await openWithReplica(ctx, amara);
    await keepWriting(tab4, "We can play outside.");
    await message(tab4).press("End");
    await message(tab4).pressSequentially(" Bring the ball!");
    const all = "Dear Baraka, Is it sunny? We can play outside. Bring the ball!";
    await waitFor(async () => (await message(tab3).inputValue()) === all, "the first tab to show the second tab's words after the restart");
    await waitFor(async () => (await draftStatus(tab4)) === "Draft saved", "the node to save them");
    expect((await api<DraftView[]>(amara, "GET", "/api/drafts")).map((d) => d.body)).toEqual([all]);
    // sent from the draft: the node seals and signs it; the draft goes from every tab and from the node
    await tab4.getByRole("button", { name: /Send/ }).click();
    await tab4.locator("main[data-screen=outbox] li.msg", { hasText: "Bring the ball!" }).waitFor();
    await tab3.getByRole("link", { name: /Drafts/ }).click();
    await tab3.getByText("No drafts.").waitFor();
    await waitFor(async () => (await api<DraftView[]>(amara, "GET", "/api/drafts")).length === 0, "the node's draft to go");
    await waitFor(async () => (await api<{ body: string }[]>(baraka, "GET", "/api/inbox")).some((m) => m.body === all), "baraka to get the message");
    await tab3.close();
    await tab4.close();
  }, 180_000);

  it("marks a message opened while the node is stopped read when it is back: the friend sees it read", async () => {
    const words = "Riddle: what has keys but cannot open a lock?";
    await api(baraka, "POST", "/api/send", { to: "amara@local", body: words });
    await waitFor(async () => (await api<{ body: string }[]>(amara, "GET", "/api/inbox")).some((m) => m.body === words), "amara's node to get the riddle");
    const tab = await openWithReplica(ctx, amara, "#inbox");
    const item = tab.locator("main li.msg", { hasText: words });
    await item.waitFor();
    await amara.stop();
    await tab.locator("#live.down").waitFor();
    // opened with the node stopped: the page has it, and keeps that it was opened in IndexedDB
    await item.getByRole("link").first().click();
    await tab.getByRole("heading", { name: "Message from baraka" }).waitFor();
    // kept in IndexedDB before the tab closes (CI once closed it first, and the node never heard of it)
    await tab.waitForFunction(() => document.body.dataset.shownKept !== undefined);
    await tab.close();
    const sentState = async () => (await api<{ body: string; state: string }[]>(baraka, "GET", "/api/outbox")).find((m) => m.body === words)?.state;
    expect(await sentState()).not.toBe("read");
    amara = await startWebNode("amara", { dataDir: amara.dataDir, args: ["--control-port", String(port), "--peer", `127.0.0.1:${baraka.syncPort}`] });
    const again = await openWithReplica(ctx, amara, "#inbox");
    // the node marks it read and signs the receipt; baraka's outbox says read
    await waitFor(async () => (await sentState()) === "read", "baraka to see the riddle read", 60_000);
    await again.locator("main li.msg:not(.new)", { hasText: words }).waitFor();
    await again.close();
  }, 180_000);

  it("a page on another origin cannot open the replica's WebSocket, even with the token", async () => {
    const page = await openWithReplica(ctx, amara);
    const csrf = await page.evaluate(async () => ((await (await fetch("/app/api/session")).json()) as { csrf: string }).csrf);
    // the attacker's page, on another port of the same loopback address (same site: the cookie would go along)
    const evil: Server = createHttpServer((_req, res) => {
      res.writeHead(200, { "content-type": "text/html" });
      res.end("<!doctype html><title>evil</title>");
    });
    await new Promise<void>((r) => evil.listen(0, "127.0.0.1", r));
    onCleanup(() => new Promise<void>((r) => evil.close(() => r())));
    const evilPage = await ctx.newPage();
    await evilPage.goto(`http://127.0.0.1:${(evil.address() as { port: number }).port}/`);
    const outcome = await evilPage.evaluate(
      ({ url }) =>
        new Promise<string>((resolve) => {
          const ws = new WebSocket(url);
          ws.binaryType = "arraybuffer";
          ws.onopen = () => resolve("open");
          ws.onmessage = () => resolve("message");
          ws.onerror = () => resolve("refused");
          setTimeout(() => resolve("nothing"), 5000);
        }),
      { url: `ws://127.0.0.1:${port}/app/sync?csrf=${csrf}` },
    );
    expect(outcome).toBe("refused");
    // the same from a program claiming that origin, with the app's own cookie and token: refused as well
    const cookie = await sessionCookie(ctx, amara);
    const status = await new Promise<number>((resolve) => {
      const ws = new NodeWebSocket(`ws://127.0.0.1:${port}/app/sync?csrf=${csrf}`, { headers: { origin: "http://127.0.0.1:1", cookie } });
      ws.on("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
      ws.on("open", () => (ws.close(), resolve(101)));
      ws.on("error", () => resolve(-1));
    });
    expect(status).toBe(403);
    await evilPage.close();
    await page.close();
  });

  it("gives the app's own session its replica and no other document", async () => {
    const page = await openWithReplica(ctx, amara);
    const { csrf, replica } = await page.evaluate(async () => (await (await fetch("/app/api/session")).json()) as { csrf: string; replica: string });
    await page.close();
    const cookie = await sessionCookie(ctx, amara);
    const ws = new NodeWebSocket(`ws://127.0.0.1:${port}/app/sync?csrf=${csrf}`, { headers: { origin: `http://127.0.0.1:${port}`, cookie } });
    onCleanup(() => ws.terminate());
    const got: { type: string; documentId?: string; data?: Uint8Array }[] = [];
    ws.on("message", (b: Buffer) => got.push(cbor.decode(new Uint8Array(b)) as (typeof got)[number]));
    await new Promise<void>((r, j) => (ws.once("open", () => r()), ws.once("error", j)));
    const send = (m: object) => ws.send(cbor.encode({ senderId: "test-peer", ...m }));
    send({ type: "join", peerMetadata: { isEphemeral: true }, supportedProtocolVersions: ["1"] });
    await waitFor(async () => got.some((m) => m.type === "peer"), "the node to greet the peer");
    const ask = A.generateSyncMessage(A.init(), A.initSyncState())[1]!;
    const node = got.find((m) => m.type === "peer") as { senderId: string };
    // another document, asked for; and a new one pushed with words in it, as a page could try to fill the node's disk
    const other = parseAutomergeUrl(generateAutomergeUrl()).documentId;
    send({ type: "request", targetId: node.senderId, documentId: other, data: ask });
    const pushed = parseAutomergeUrl(generateAutomergeUrl()).documentId;
    const full = A.from({ junk: "x".repeat(1000) });
    send({ type: "sync", targetId: node.senderId, documentId: pushed, data: A.generateSyncMessage(full, A.initSyncState())[1]! });
    const replicaId = replica.slice("automerge:".length);
    send({ type: "request", targetId: node.senderId, documentId: replicaId, data: ask });
    // the replica comes; the other documents get no answer at all, and nothing of them is stored
    await waitFor(async () => got.some((m) => m.type === "sync" && m.documentId === replicaId && (m.data?.length ?? 0) > 0), "the replica's first sync message");
    await new Promise((r) => setTimeout(r, 1000));
    expect(got.filter((m) => m.documentId === other || m.documentId === pushed)).toEqual([]);
    expect(readdirSync(join(amara.dataDir, "web-replica")).filter((f) => f.includes(other) || f.includes(pushed))).toEqual([]);
    console.log(`the node's replica folder: ${readdirSync(join(amara.dataDir, "web-replica")).join(", ")}`);
    ws.close();
  });
});
