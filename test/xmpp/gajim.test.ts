// Gajim 1.7 (Debian) under Xvfb (issue 21): with its default connection settings (STARTTLS, the
// certificate checked against the system's trust store, no "accept this certificate" dialog) and the
// one documented step done — the node's certificate added to the system bundle, here only inside a
// private mount namespace so the machine's own store is never touched — Gajim logs in and chats with
// a Converse.js user (Chromium) on another Pigeon node: it receives their message, answers from its
// chat window (typed with xdotool), and each side gets the delivered mark for its own message.
// Then baraka sends a picture (uploaded from slixmpp on baraka's node) and a web-app drawing: Gajim, with
// its default preview settings and no further step, shows both as images, fetched from amara's node.
// Last, baraka's client types (XEP-0085 states, live between the laptops) and corrects a message
// (XEP-0308) and stores a vCard picture (XEP-0153): Gajim shows baraka typing, the corrected text in
// place of the first, and the picture as baraka's avatar.
// Screenshots: test-artifacts/xmpp-gajim.png, xmpp-gajim-converse.png, xmpp-gajim-pictures.png,
// xmpp-gajim-typing.png, xmpp-gajim-correction.png and xmpp-gajim-avatar.png; Gajim's log: test-artifacts/xmpp-gajim.log.
// Gajim refuses to run as root, so it runs as `nobody` with its own HOME and configuration folder;
// the account (server 127.0.0.1 and the port, as a teacher types them in its account window) is
// written into the settings database Gajim made on its first start.
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { encodeDrawing } from "@pigeon/model";
import { cleanupAll, onCleanup, pigeon, pigeonJson, ROOT, tempDir } from "../helpers.js";
import { startConverse } from "./clients/converse.js";
import { announceSkip, befriend, freePort, missing, PYTHON, slix, startXmppNode, waitFor } from "./xmpp-helpers.js";

afterAll(cleanupAll);

const NOBODY = 65534;

function gajimMissing(): string | undefined {
  for (const [bin, pkg] of [["/usr/bin/gajim", "gajim"], ["/usr/bin/Xvfb", "xvfb"], ["/usr/bin/xdotool", "xdotool"], ["/usr/bin/import", "imagemagick"]] as const)
    if (!existsSync(bin)) return `${pkg} is not installed (apt-get install ${pkg})`;
  if (process.getuid?.() !== 0) return "needs root (a private mount namespace for the trust store, and running Gajim as nobody)";
  return missing("chromium") ?? missing("slixmpp");
}

const why = gajimMissing();
if (why) announceSkip("Gajim under Xvfb", why);

/** An Xvfb on a free display (it picks the number itself); stopped at cleanup. */
async function xvfb(): Promise<string> {
  const p = spawn("Xvfb", ["-displayfd", "3", "-screen", "0", "1280x800x24", "-ac", "-nolisten", "tcp"], { stdio: ["ignore", "ignore", "pipe", "pipe"] });
  onCleanup(() => void p.kill("SIGTERM"));
  const n = await new Promise<string>((resolve, reject) => {
    let got = "";
    (p.stdio[3] as NodeJS.ReadableStream).on("data", (c: Buffer) => {
      got += c.toString();
      if (got.includes("\n")) resolve(got.trim());
    });
    p.once("exit", (code) => reject(new Error(`Xvfb exited with ${code}`)));
  });
  return `:${n}`;
}

function gajim(dir: string, display: string, bundle: string): ChildProcess {
  // the trust step, in this process tree only: the system bundle with the node's certificate added
  const script = `mount --bind "$1" /etc/ssl/certs/ca-certificates.crt && exec setpriv --reuid=${NOBODY} --regid=${NOBODY} --clear-groups env HOME="$2/home" DISPLAY="$3" NO_AT_BRIDGE=1 gajim -c "$2/cfg" --show -v`;
  const p = spawn("unshare", ["-m", "--propagation", "private", "sh", "-c", script, "sh", bundle, dir, display], { stdio: ["ignore", "pipe", "pipe"], detached: true });
  let out = "";
  p.stdout!.on("data", (c: Buffer) => (out += c.toString()));
  p.stderr!.on("data", (c: Buffer) => (out += c.toString()));
  (p as ChildProcess & { log: () => string }).log = () => out;
  onCleanup(async () => {
    if (p.exitCode !== null) return;
    // the process group: unshare, then Gajim as nobody
    try {
      process.kill(-p.pid!, "SIGTERM");
    } catch {
      /* gone */
    }
    await Promise.race([new Promise((r) => p.once("exit", r)), new Promise((r) => setTimeout(r, 3000))]);
    try {
      process.kill(-p.pid!, "SIGKILL");
    } catch {
      /* gone */
    }
  });
  return p;
}

const sql = (db: string, code: string) => execFileSync(PYTHON, ["-c", `import sqlite3, json, sys\nc = sqlite3.connect(sys.argv[1])\n${code}`, db], { encoding: "utf8" });

describe.skipIf(!!why)("Gajim under Xvfb", () => {
  it("logs in with its defaults after the one step and chats with a Converse user on another node, delivered marks both ways, pictures shown as images, typing, corrections and an avatar", async () => {
    const pagePort = await freePort();
    const a = await startXmppNode("amara");
    const b = await startXmppNode("baraka", ["--peer", `127.0.0.1:${a.syncPort}`, "--allow-origin", `http://127.0.0.1:${pagePort}`]);
    await befriend(a, b);
    const display = await xvfb();
    const x = (...args: string[]) => execFileSync(args[0]!, args.slice(1), { env: { ...process.env, DISPLAY: display }, encoding: "utf8" });
    const dir = tempDir("gajim");
    chmodSync(dir, 0o755);
    for (const d of ["home", "cfg"]) mkdirSync(join(dir, d));
    const bundle = join(dir, "ca-certificates.crt");
    writeFileSync(bundle, readFileSync("/etc/ssl/certs/ca-certificates.crt", "utf8") + readFileSync(a.certPath, "utf8"));
    execFileSync("chown", ["-R", `${NOBODY}:${NOBODY}`, dir]);

    // first start: Gajim makes its settings database; then the account goes in, as its window would write it
    const first = gajim(dir, display, bundle);
    const db = join(dir, "cfg", "settings.sqlite");
    await waitFor(() => existsSync(db) && sql(db, "print(c.execute('select count(*) from settings').fetchone()[0])").trim() !== "0", "Gajim to make its settings", 30_000);
    await new Promise((r) => setTimeout(r, 2000));
    process.kill(-first.pid!, "SIGTERM");
    await new Promise((r) => first.once("exit", r));
    const account = {
      account: { name: "amara", hostname: "local", password: a.password, resource: "gajim", active: true, use_custom_host: true, custom_host: "127.0.0.1", custom_port: a.xmppPort },
      contact: {},
      group_chat: {},
    };
    sql(db, `c.execute("INSERT INTO account_settings(account, settings) VALUES (?, ?)", ("amara", ${JSON.stringify(JSON.stringify(account))}))
app = json.loads(c.execute("SELECT settings FROM settings WHERE name='app'").fetchone()[0])
app["use_keyring"] = False  # no keyring daemon under Xvfb: the password stays in the settings
app["check_for_update"] = False
c.execute("UPDATE settings SET settings=? WHERE name='app'", (json.dumps(app),))
c.commit()`);
    for (const f of ["settings.sqlite"]) chownSync(join(dir, "cfg", f), NOBODY, NOBODY);

    const g = gajim(dir, display, bundle) as ChildProcess & { log: () => string };
    // Gajim's own log (-v), kept beside the screenshots for whoever looks at a failure
    onCleanup(() => {
      mkdirSync(join(ROOT, "test-artifacts"), { recursive: true });
      writeFileSync(join(ROOT, "test-artifacts", "xmpp-gajim.log"), g.log());
    });
    await waitFor(() => /xmpp: amara@local logged in from/.test(a.output() + readFileSync(join(a.dataDir, "node.log"), "utf8")), `Gajim to log in:\n${g.log().slice(-3000)}`, 60_000);

    // baraka writes from Converse; Gajim has it (its own archive, logs.db) and Converse gets the tick
    const c = await startConverse({ websocket: b.websocket, jid: b.jid, password: b.password, port: pagePort });
    onCleanup(() => c.close());
    const id = await c.send(a.jid, "hello gajim, from Converse");
    const logs = join(dir, "cfg", "logs.db");
    const stored = () => JSON.parse(sql(logs, "print(json.dumps([r[0] for r in c.execute('select message from logs')]))")) as string[];
    await waitFor(() => existsSync(logs) && stored().includes("hello gajim, from Converse"), "Gajim to store the message", 30_000);
    await waitFor(() => c.received(a.jid, id), "the delivered tick in Converse", 30_000);

    // open the chat (the conversation row at the top of the list) and answer from the keyboard
    await new Promise((r) => setTimeout(r, 1500));
    x("xdotool", "mousemove", "240", "166", "click", "1");
    await new Promise((r) => setTimeout(r, 2000));
    x("xdotool", "type", "--delay", "30", "hi baraka from gajim");
    x("xdotool", "key", "Return");
    await waitFor(async () => (await pigeonJson<{ body: string; from: string }[]>(b, "inbox")).some((m) => m.from === "amara@local" && m.body === "hi baraka from gajim"), "the answer to reach baraka's laptop", 30_000);
    // Gajim asked for a receipt (the buddy's capabilities offer them) and got Pigeon's: the tick
    await waitFor(() => /<request xmlns="urn:xmpp:receipts"\s*\/>/.test(g.log()) && /<received xmlns="urn:xmpp:receipts" id="[^"]+"/.test(g.log()), `Gajim to get the delivered receipt:\n${g.log().slice(-4000)}`, 30_000);
    // and filed it against its message: marker 0 = received, 1 = displayed (Converse, with the chat
    // open, marks it displayed, and Pigeon's read receipt brings that back too)
    const marker = () => sql(logs, "print(json.dumps([r[0] for r in c.execute(\"select marker from logs where message='hi baraka from gajim'\")]))").trim();
    await waitFor(() => ["[0]", "[1]"].includes(marker()), `Gajim to mark its message received (markers ${marker()})`, 15_000);
    await new Promise((r) => setTimeout(r, 1500));
    mkdirSync(join(ROOT, "test-artifacts"), { recursive: true });
    x("import", "-window", "root", join(ROOT, "test-artifacts", "xmpp-gajim.png"));
    await waitFor(async () => (await c.bodies(a.jid)).includes("hi baraka from gajim"), "Converse to show Gajim's answer", 20_000);
    await c.screenshot(join(ROOT, "test-artifacts", "xmpp-gajim-converse.png"));
    // no certificate dialog was needed: Gajim's own certificate store stayed empty
    expect(spawnSync("ls", [join(dir, "cfg", "cert_store")], { encoding: "utf8" }).stdout.trim()).toBe("");

    // pictures: baraka's slixmpp uploads a PNG (drawn by the browser) on baraka's node, and baraka draws in
    // the web app (stroke data, written with `pigeon send` as the web app writes it). Gajim, with the chat
    // open and its default preview settings (http is previewed when the body is the XEP-0066 URL), fetches
    // each from amara's own node and shows it as an image: its downloads folder holds the very bytes and
    // its thumbnail folder the picture it drew in the chat.
    const png = await c.page.evaluate(() => {
      const canvas = document.createElement("canvas");
      canvas.width = 160;
      canvas.height = 100;
      const g = canvas.getContext("2d")!;
      g.fillStyle = "#1b998b";
      g.fillRect(10, 10, 140, 80);
      return canvas.toDataURL("image/png").split(",")[1]!;
    });
    const up = await slix({ jid: b.jid, password: b.password, port: b.xmppPort, scenario: "upload", to: a.jid, filename: "square.png", type: "image/png", data: png });
    expect(up.result.error, JSON.stringify(up.result)).toBeUndefined();
    const drawing = encodeDrawing([{ colour: 1, size: 2, points: [20, 20, 580, 380] }, { colour: 5, size: 2, points: [20, 380, 580, 20] }]);
    expect((await pigeon(b, "send", "amara@local", drawing)).code).toBe(0);
    const files = (sub: string) => (existsSync(join(dir, "cfg", sub)) ? readdirSync(join(dir, "cfg", sub)) : []);
    try {
      // archived, downloaded and drawn as thumbnails (each written on its own, in any order)
      const urlsStored = () => stored().filter((m) => m.includes("/xmpp-files/")).length;
      await waitFor(() => urlsStored() >= 2 && files("downloads").length >= 2 && files("downloads.thumb").length >= 2, "Gajim to show both pictures", 40_000);
    } catch (e) {
      x("import", "-window", "root", join(ROOT, "test-artifacts", "xmpp-gajim-pictures-failed.png"));
      throw new Error(`${(e as Error).message} (archived ${JSON.stringify(stored())}, downloads ${files("downloads")}, thumbnails ${files("downloads.thumb")})\n${g.log().slice(-4000)}`);
    }
    const got = files("downloads").map((f) => readFileSync(join(dir, "cfg", "downloads", f)));
    const sha = (d: Buffer) => createHash("sha256").update(d).digest("hex");
    expect(got.map(sha)).toContain(sha(Buffer.from(png, "base64")));
    expect(got.map((d) => d.toString()).find((d) => d.startsWith("<svg"))).toContain('<polyline points="20 20 580 380"');
    // both were fetched from amara's node (the URL Pigeon gave Gajim), not from baraka's
    const urls = stored().filter((m) => m.includes("/xmpp-files/"));
    expect(urls.length).toBe(2);
    for (const u of urls) expect(u).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:${a.controlPort}/xmpp-files/[0-9a-f]{24}/(square\\.png|drawing\\.svg)$`));
    await new Promise((r) => setTimeout(r, 1500));
    x("import", "-window", "root", join(ROOT, "test-artifacts", "xmpp-gajim-pictures.png"));

    // typing states (XEP-0085) from baraka's client, carried live between the two laptops: Gajim gets
    // composing, paused, composing and shows baraka typing
    const before = g.log().length;
    const typing = await slix({ jid: b.jid, password: b.password, port: b.xmppPort, scenario: "typing", to: a.jid, states: ["composing", "paused", "composing"], gap: 1, linger: 1 });
    expect(typing.result.ok).toBe(true);
    const states = () => [...g.log().slice(before).matchAll(/Recv: Chatstate\.(\w+) - baraka@local\/pigeon\n/g)].map((m) => m[1]);
    await waitFor(() => states().join().includes("COMPOSING,PAUSED,COMPOSING"), `Gajim to get baraka's typing states (got ${states()}):\n${g.log().slice(before).split("\n").filter((l) => /chatstate|composing|paused/i.test(l)).join("\n").slice(-3000)}`, 15_000);
    await new Promise((r) => setTimeout(r, 700)); // GTK redraws the banner ("is composing a message…")
    x("import", "-window", "root", join(ROOT, "test-artifacts", "xmpp-gajim-typing.png"));
    // a correction (XEP-0308) from baraka's client: Gajim replaces the text in place, keeping the first
    // as the original, and never shows it as a second message
    const fixed = await slix({ jid: b.jid, password: b.password, port: b.xmppPort, scenario: "send", to: a.jid, bodies: ["see you at 5"], corrections: [{ index: 0, body: "see you at 6" }], wait: "received", timeout: 20 });
    expect(fixed.result.ok, JSON.stringify(fixed.result)).toBe(true);
    const rows = () => JSON.parse(sql(logs, "print(json.dumps([[r[0], r[1]] for r in c.execute(\"select message, additional_data from logs where message like 'see you at %'\")]))")) as [string, string | null][];
    await waitFor(() => rows().some(([m]) => m === "see you at 6"), `Gajim to show the correction (rows ${JSON.stringify(rows())})`, 20_000);
    await new Promise((r) => setTimeout(r, 1000));
    expect(rows().map(([m]) => m)).toEqual(["see you at 6"]);
    expect(JSON.parse(rows()[0]![1]!)).toMatchObject({ corrected: { original_text: "see you at 5" } });
    x("import", "-window", "root", join(ROOT, "test-artifacts", "xmpp-gajim-correction.png"));

    // an avatar (XEP-0153): baraka's client stores a picture in baraka's vCard; it travels to amara's
    // laptop, amara's node announces its hash in baraka's presence, and Gajim fetches the vCard and
    // keeps the picture in its avatar folder, named by its SHA-1
    const face = await c.page.evaluate(() => {
      const canvas = document.createElement("canvas");
      canvas.width = canvas.height = 96;
      const g = canvas.getContext("2d")!;
      g.fillStyle = "#f4a259";
      g.beginPath();
      g.arc(48, 48, 40, 0, 2 * Math.PI);
      g.fill();
      return canvas.toDataURL("image/png").split(",")[1]!;
    });
    const faceSha1 = createHash("sha1").update(Buffer.from(face, "base64")).digest("hex");
    const card = await slix({ jid: b.jid, password: b.password, port: b.xmppPort, scenario: "vcard_set", type: "image/png", photo: face });
    expect(card.result.answer).toBe("result");
    await waitFor(() => files("avatars").includes(faceSha1), `Gajim to keep baraka's avatar (avatars ${files("avatars")})`, 40_000);
    expect(createHash("sha1").update(readFileSync(join(dir, "cfg", "avatars", faceSha1))).digest("hex")).toBe(faceSha1);
    await new Promise((r) => setTimeout(r, 1500));
    x("import", "-window", "root", join(ROOT, "test-artifacts", "xmpp-gajim-avatar.png"));
  }, 300_000);
});
