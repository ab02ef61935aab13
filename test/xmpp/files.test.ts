// Files and drawings (XEP-0363 HTTP upload, XEP-0066 OOB; issue 21). slixmpp on amara's node uploads
// a picture to its node and sends it to baraka; slixmpp on baraka's node gets a URL on its own node and
// downloads the same bytes (the file travelled sealed inside the Pigeon message). A file over the limit
// is refused before it is uploaded (the limit is advertised) and the slot is refused if asked anyway.
// A drawing from the web app (stroke data, here written with `pigeon send` as the web app writes it)
// reaches baraka's client as an SVG URL on baraka's node. The upload against Prosody is the reference
// (http_file_share is not set up there: the test shows only that slixmpp's upload flow is the same).
import { createHash, randomBytes } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { encodeDrawing } from "@pigeon/model";
import { cleanupAll, http, pigeon, pigeonJson } from "../helpers.js";
import { announceSkip, befriend, missing, slix, startXmppNode } from "./xmpp-helpers.js";

afterAll(cleanupAll);

const why = missing("slixmpp");
if (why) announceSkip("files", why);

type Got = { body: string; oob: string | null; data?: string; content_type?: string }[];

describe.skipIf(!!why)("files and drawings (XEP-0363, XEP-0066)", () => {
  it("Pigeon: a picture uploaded on one node is downloaded byte for byte on the peer's; a drawing arrives as an SVG", async () => {
    const a = await startXmppNode("amara");
    const b = await startXmppNode("baraka", ["--peer", `127.0.0.1:${a.syncPort}`]);
    await befriend(a, b);
    const picture = Buffer.concat([Buffer.from("89504e470d0a1a0a", "hex"), randomBytes(40_000)]);
    const reader = slix({ jid: b.jid, password: b.password, port: b.xmppPort, scenario: "receive", count: 2, timeout: 30, download: true });
    await new Promise((r) => setTimeout(r, 1500));
    const up = await slix({ jid: a.jid, password: a.password, port: a.xmppPort, scenario: "upload", to: b.jid, filename: "cat.png", type: "image/png", data: picture.toString("base64") });
    expect(up.result.error, JSON.stringify(up.result)).toBeUndefined();
    expect(up.result.url).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:${a.controlPort}/xmpp-upload/[0-9a-f]{32}/cat\\.png$`));
    expect(up.result.put_status).toBe(201);
    expect(up.result.limit).toBe(48128);
    expect(up.result.received).toBe(true);
    // the web app's drawing: two strokes
    const drawing = encodeDrawing([{ colour: 1, size: 1, points: [10, 10, 200, 150, 300, 40] }, { colour: 5, size: 2, points: [50, 300] }]);
    expect((await pigeon(a, "send", "baraka@local", drawing)).code).toBe(0);
    const got = (await reader).result.messages as Got;
    expect(got.length).toBe(2);
    const [file, draw] = got;
    expect(file!.oob).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:${b.controlPort}/xmpp-files/[0-9a-f]{24}/cat\\.png$`));
    expect(file!.body).toBe(file!.oob);
    expect(file!.content_type).toBe("image/png");
    expect(createHash("sha256").update(Buffer.from(file!.data!, "base64")).digest("hex")).toBe(createHash("sha256").update(picture).digest("hex"));
    expect(draw!.oob).toMatch(/\/xmpp-files\/[0-9a-f]{24}\/drawing\.svg$/);
    expect(draw!.content_type).toBe("image/svg+xml");
    const svg = Buffer.from(draw!.data!, "base64").toString();
    expect(svg).toMatch(/^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    expect(svg).toContain('<polyline points="10 10 200 150 300 40"');
    // the peer's inbox shows the file by name, with its size
    const inbox = await pigeonJson<{ body: string; file?: { type: string; size: number } }[]>(b, "inbox");
    expect(inbox[0]).toMatchObject({ body: "cat.png", file: { type: "image/png", size: picture.length } });

    // too big: slixmpp reads the advertised limit and refuses before uploading
    const big = await slix({ jid: a.jid, password: a.password, port: a.xmppPort, scenario: "upload", to: b.jid, filename: "big.jpg", type: "image/jpeg", data: randomBytes(60_000).toString("base64") });
    expect(big.result.error).toBe("FileTooBig: 60000 > 48128");
    // and a client that asks anyway is refused the slot, saying the limit
    const asked = await slix({ jid: a.jid, password: a.password, port: a.xmppPort, scenario: "upload", to: b.jid, filename: "big.jpg", type: "image/jpeg", data: randomBytes(60_000).toString("base64"), respect_limit: false });
    expect(asked.result.error).toMatch(/^slot refused: not-acceptable: the file is 60000 bytes; a file travels between laptops only up to 48128 bytes/);
    // the files are not served to anyone else's Host, nor to another web page
    const url = new URL(file!.oob!);
    expect((await http(b.controlPort, "GET", url.pathname, { host: `evil.example:${b.controlPort}` })).status).toBe(403);
    expect((await http(b.controlPort, "GET", url.pathname, { host: `127.0.0.1:${b.controlPort}`, origin: "http://evil.example" })).status).toBe(403);
    expect((await http(b.controlPort, "GET", "/xmpp-files/000000000000000000000000/x.png", { host: `127.0.0.1:${b.controlPort}` })).status).toBe(404);
  }, 120_000);
});
