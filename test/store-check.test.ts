// Issue 20, startup: a node stopped cleanly starts without reading its whole store (SQLite's
// quick_check, ~100 s for a million envelopes) and checks it in the background; a store found damaged
// there stops the node with the reason, and the next start refuses it, as damage found at start does.
import { closeSync, existsSync, openSync, readFileSync, statSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { api, cleanupAll, pigeon, run, startDaemon, waitFor } from "./helpers.js";

afterAll(cleanupAll);

describe("the store's check at start", () => {
  it("is skipped after a clean stop and run in the background; damage found there stops the node, and the next start refuses", async () => {
    const env = { PIGEON_STORE_CHECK_LATER_MS: "0" };
    const first = await startDaemon("amara", { args: ["--no-mdns", "--no-xmpp"], env });
    const firstCheck = (await api<{ storeCheck: { atStart: string; lastFullCheck: string } }>(first, "GET", "/api/status")).storeCheck;
    expect(firstCheck.atStart).toBe("full");
    await first.stop();
    const db = join(first.dataDir, "pigeon.db");
    expect(existsSync(`${db}-clean`)).toBe(true);

    const second = await startDaemon("amara", { dataDir: first.dataDir, args: ["--no-mdns", "--no-xmpp"], env });
    const status = await pigeon(second, "status");
    expect(status.stdout).toMatch(/store last checked in full: \d{4}-\d\d-\d\dT.* \(this start skipped it after a clean stop; it runs again in the background\)/);
    // the first start's full check, until the background one (right away here) is done
    const checked = async () => (await api<{ storeCheck: { lastFullCheck: string } }>(second, "GET", "/api/status")).storeCheck.lastFullCheck;
    await waitFor(async () => (await checked()) > firstCheck.lastFullCheck, "the background check to finish");
    await second.stop();
    expect(second.proc.exitCode).toBe(0);

    // pages rot while the laptop is off: bytes change, the file's size and times do not (so the mark
    // is made to match, as it would); a table big enough that the rotten page is one of its own
    const other = new Database(db);
    other.exec("CREATE TABLE old_notes (body BLOB NOT NULL)");
    const put = other.prepare("INSERT INTO old_notes VALUES (?)");
    other.transaction(() => {
      for (let i = 0; i < 400; i++) put.run(Buffer.alloc(500, i & 0xff));
    })();
    other.close();
    const { size } = statSync(db);
    const fd = openSync(db, "r+");
    writeSync(fd, Buffer.alloc(4096, 0xa5), 0, 4096, Math.floor(size / 4096 - 3) * 4096);
    closeSync(fd);
    const st = statSync(db, { bigint: true });
    const mark = readFileSync(`${db}-clean`, "utf8").split("\n");
    mark[1] = `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
    writeFileSync(`${db}-clean`, mark.join("\n"));

    // started as a user would: it says ready, finds the damage, stops itself and says why
    const third = await run(["start", "--data", first.dataDir, "--name", "amara", "--listen", "127.0.0.1", "--port", "0", "--control-port", "0", "--no-mdns", "--no-xmpp"], { env });
    expect(third.code).toBe(1);
    expect(third.stdout).toMatch(/\bready\b/);
    expect(third.stderr).toMatch(/pigeon: .*pigeon\.db is damaged \(sqlite quick_check after a start that skipped it: [^]*\)\. The node will not run on a damaged store/);
    expect(existsSync(`${db}-clean`)).toBe(false);

    const refused = await startDaemon("amara", { dataDir: first.dataDir, args: ["--no-mdns", "--no-xmpp"], env }).then(() => "started", (e: Error) => e.message);
    expect(refused).toMatch(/pigeon\.db is damaged \(sqlite quick_check: [^]*left as it is/);
  }, 120_000);
});
